"""Logits comparison of many cases against a plain read of the same files.

Writes once (under ``--dir``, reused while the size matches) ``--cases`` cases x ``--tokens``
tokens of ``--vocab`` float32 logits per side, modeltest names (``logits_bench_{case}_{token}.pth``,
``torch.save`` of ``[1, vocab]``); my = golden + noise, with a real flip in every 50th case. Then,
each in its own process so that its peak RSS is its own, after one warm-up read (the page cache
then holds both sides in every phase):

  read     torch.load(weights_only=True) of every golden and my file, as a script comparing them must
  bytes    open().read() of every file (the floor of any reader)
  compare  the llmprec logits comparison: index, pair, read, metrics, verdicts, logits_cmp_res CSV
           (what ``llmprec logitscmp`` / ``pytest --llm-golden --llm-my`` run)

and prints wall times, compare / read (target <= 1.5) and each phase's peak RSS.

Run: python benchmarks/bench_logits.py [--cases 500] [--tokens 8] [--vocab 152064] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def write_dumps(folder: Path, cases: int, tokens: int, vocab: int) -> tuple[Path, Path]:
    golden, my = folder / "golden", folder / "my"
    marker = folder / f"done_{cases}_{tokens}_{vocab}"
    if marker.exists():
        return golden, my
    for side in (golden, my):
        side.mkdir(parents=True, exist_ok=True)
        for stale in side.glob("logits_*.pth"):
            stale.unlink()
    generator = torch.Generator().manual_seed(0)
    for case in range(cases):
        for token in range(tokens):
            logits = torch.randn(1, vocab, generator=generator) * 3
            noisy = logits + torch.randn(1, vocab, generator=generator) * 1e-4
            if case % 50 == 49 and token == tokens // 2:
                noisy[0, 0] = logits.max() + 1.0
            name = f"logits_bench_{case}_{token}.pth"
            torch.save(logits, golden / name)
            torch.save(noisy, my / name)
    marker.touch()
    return golden, my


def _files(golden: Path, my: Path) -> list[tuple[Path, Path]]:
    return [(path, my / path.name) for path in sorted(golden.glob("logits_*.pth"))]


def phase_read(golden: Path, my: Path) -> None:
    for g, m in _files(golden, my):
        torch.load(g, weights_only=True)
        torch.load(m, weights_only=True)


def phase_bytes(golden: Path, my: Path) -> None:
    for g, m in _files(golden, my):
        g.read_bytes()
        m.read_bytes()


def phase_compare(golden: Path, my: Path) -> None:
    from pytest_llmprec.pipeline.comparison import Comparison
    from pytest_llmprec.pipeline.settings import CompareSettings

    out = Path(tempfile.mkdtemp(prefix="bench-logits-report-"))
    comparison = Comparison(CompareSettings(golden=golden, my=my, report_dir=out, html=False))
    failed = sum(not done.passed for done in comparison.evaluations())
    (report,) = comparison.write_reports()
    comparison.close()
    print(json.dumps({"failed": failed, "report_bytes": report.stat().st_size}), file=sys.stderr)


PHASES = {"read": phase_read, "bytes": phase_bytes, "compare": phase_compare}


def run_phase(name: str, golden: Path, my: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one phase in a fresh process."""
    command = [sys.executable, __file__, "--phase", name, "--golden", str(golden), "--my", str(my)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if done.stderr.strip():
        print(f"  {name}: {done.stderr.strip().splitlines()[-1]}")
    return result["wall"], result["rss_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=152064)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "llmprec-bench-logits"))
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--golden", help=argparse.SUPPRESS)
    parser.add_argument("--my", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        start = time.perf_counter()
        PHASES[args.phase](Path(args.golden), Path(args.my))
        wall = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"wall": wall, "rss_mib": rss}))
        return
    started = time.perf_counter()
    golden, my = write_dumps(Path(args.dir), args.cases, args.tokens, args.vocab)
    pairs = args.cases * args.tokens
    size = sum(path.stat().st_size for path in golden.glob("logits_*.pth")) * 2 / 2**30
    print(f"{pairs} token pairs of {args.vocab} fp32 logits, {size:.2f} GiB on disk "
          f"(written or found in {time.perf_counter() - started:.1f} s)")  # fmt: skip
    run_phase("bytes", golden, my)  # warm-up: both sides in the page cache
    timings = {name: run_phase(name, golden, my) for name in ("bytes", "read", "compare", "read")}
    read = min(run_phase("read", golden, my)[0], timings["read"][0])
    compare, compare_rss = timings["compare"]
    print(f"bytes    {timings['bytes'][0]:7.2f} s   peak RSS {timings['bytes'][1]:7.1f} MiB")
    print(f"read     {read:7.2f} s   peak RSS {timings['read'][1]:7.1f} MiB   (torch.load, both sides)")
    per_pair = compare / pairs * 1e3
    print(f"compare  {compare:7.2f} s   peak RSS {compare_rss:7.1f} MiB   ({per_pair:.2f} ms per token pair)")
    print(f"compare / read  = {compare / read:.2f}x (target <= 1.5x)")
    print(f"compare / bytes = {compare / timings['bytes'][0]:.2f}x")


if __name__ == "__main__":
    main()
