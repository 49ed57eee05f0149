"""Peak memory of comparing one very large tensor: a 152k-vocabulary prefill logits pair.

Writes (in a temporary folder, removed afterwards) golden logits of shape [1, SEQ, 152064] in
float32 and my logits in bfloat16 as ``.pt`` files, then runs
``pytest --llm-golden=golden.pt --llm-my=my.pt`` (single file against single file) and prints
the wall time and the peak resident set of the run against the size of the golden tensor.
The files are memory-mapped and compared in one pass without float copies, so the peak stays
near the two tensors' mapped pages (about 1.5x the golden's size for a float32/bfloat16 pair),
under the 3x bound. A plain ``torch.load`` of both files is measured as the baseline.

Run: python benchmarks/bench_large_tensor.py [--seq 2048]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from measure import run_process

VOCAB = 152064

LOAD_BOTH = """
import sys, torch
golden, my = (torch.load(path, weights_only=True) for path in sys.argv[1:])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=2048)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="llmprec-bench-large-"))
    try:
        generator = torch.Generator().manual_seed(0)
        golden = torch.randn(1, args.seq, VOCAB, generator=generator) * 4
        golden_bytes = golden.nbytes
        torch.save(golden, folder / "golden.pt")
        torch.save(golden.to(torch.bfloat16), folder / "my.pt")
        del golden
        print(f"logits [1, {args.seq}, {VOCAB}]: golden float32 {golden_bytes / 2**30:.2f} GiB, my bfloat16")
        work = folder / "run"
        work.mkdir()
        paths = [str(folder / "golden.pt"), str(folder / "my.pt")]
        command = [
            sys.executable, "-m", "pytest", f"--llm-golden={paths[0]}", f"--llm-my={paths[1]}", "-q",
            "-p", "no:cacheprovider", f"--llm-report-dir={folder / 'report'}",
        ]  # fmt: skip
        run_process(command, work)  # warm the page cache and pytest's caches
        baseline = [sys.executable, "-c", LOAD_BOTH, *paths]
        for name, run in (("torch.load both", baseline), ("pytest", command)):
            wall, peak, code = run_process(run, work)
            print(
                f"{name:<16} {wall:6.2f} s   peak RSS {peak / 2**30:5.2f} GiB "
                f"({peak / golden_bytes:.2f}x the golden tensor)   exit {code}"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
