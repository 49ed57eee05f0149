"""Per-item cost and memory of large dump pairs: many small tensors, where pytest's per-item protocol
and ours, not the data, are the cost.

Writes two plain folders of ``--pairs`` small ``.npy`` tensors (256 float32 each; "my" is the golden
with relative noise of 1e-6, so every pair passes), laid out as ``layers.{L}/{module}/{leaf}.npy``:
four tensors per module folder, ten modules per layer. Measured, page cache warm:
  read loop       a Python process that memory-maps and sums every file of both folders
                  (listed in a file);
  empty items     ``pytest`` on as many empty parametrised tests as there are pairs;
  tensor mode     ``pytest --llm-golden=G --llm-my=M -q`` (one item per pair);
  module mode     the same with ``--llm-item=module`` (one item per module folder);
  llmprec compare the same comparison without pytest.
Printed: wall time, CPU time (user + system, all processes: steadier on a shared machine) and peak
RSS of each; in both wall and CPU terms our own cost per item in tensor mode (tensor mode minus the
empty items, divided by the pairs), module mode's time, and ``llmprec compare`` over the read loop.

Run: python benchmarks/bench_scale.py [--pairs 20000] [--keep DIR] [--repeats 1] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import run_process_cpu

SIZE = 256
LEAVES = ("input_0", "output_0", "output_1", "output_2")
MODULES_PER_LAYER = 10

READ_LOOP = """
import sys
import numpy as np
total = 0.0
for path in open(sys.argv[1]).read().splitlines():
    total += float(np.load(path, mmap_mode="r").sum())
"""


def file_names(pairs: int) -> list[str]:
    names = []
    for index in range(pairs):
        module, leaf = divmod(index, len(LEAVES))
        layer, position = divmod(module, MODULES_PER_LAYER)
        names.append(f"layers.{layer}/module{position}/{LEAVES[leaf]}.npy")
    return names


def write_pair(folder: Path, pairs: int) -> tuple[Path, Path]:
    generator = np.random.default_rng(0)
    golden, my = folder / "golden", folder / "my"
    for name in file_names(pairs):
        values = generator.standard_normal(SIZE, dtype=np.float32)
        noisy = values * (1 + 1e-6 * generator.standard_normal(SIZE, dtype=np.float32))
        for root, data in ((golden, values), (my, noisy.astype(np.float32))):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, data)
    return golden, my


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the pair here once and reuse it (not removed)")
    parser.add_argument("--only", default="", help="comma-separated run names to measure (default: all)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="llmprec-bench-scale-"))
    try:
        start = time.perf_counter()
        golden, my = folder / "golden", folder / "my"
        if not (args.keep and (folder / f"written-{args.pairs}").exists()):
            shutil.rmtree(golden, ignore_errors=True)
            shutil.rmtree(my, ignore_errors=True)
            write_pair(folder, args.pairs)
            (folder / f"written-{args.pairs}").touch()
        print(f"{args.pairs} pairs of {SIZE} float32 .npy, ready in {time.perf_counter() - start:.0f} s")
        work = folder / "run"
        work.mkdir(exist_ok=True)
        empty = folder / "empty" / "test_empty.py"
        empty.parent.mkdir(exist_ok=True)
        empty.write_text(
            "import pytest\n\n\n"
            f"@pytest.mark.parametrize('i', range({args.pairs}))\ndef test_nothing(i):\n    pass\n"
        )
        files = folder / "files.txt"  # too many for a command line
        names = file_names(args.pairs)
        files.write_text("\n".join(str(root / name) for name in names for root in (golden, my)))
        pytest_cmd = [sys.executable, "-m", "pytest", f"--llm-golden={golden}", f"--llm-my={my}", "-q",
                      "-p", "no:cacheprovider", f"--llm-report-dir={folder / 'report'}"]  # fmt: skip
        runs = {
            "read loop": [sys.executable, "-c", READ_LOOP, str(files)],
            "empty items": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(empty)],
            "tensor mode": pytest_cmd,
            "module mode": [*pytest_cmd, "--llm-item=module"],
            "llmprec compare": [sys.executable, "-m", "pytest_llmprec.cli", "compare", "-gp", str(golden),
                                "-mp", str(my), "-o", str(folder / "report-cli"), "-l", "warning"],
        }  # fmt: skip
        wanted = [name.strip() for name in args.only.split(",") if name.strip()] or list(runs)
        run_process_cpu(runs["read loop"], work)  # warm the page cache
        results = {}
        for name in wanted:
            best = min((run_process_cpu(runs[name], work) for _ in range(args.repeats)), key=lambda r: r[0])
            results[name] = best
            wall, rss, code, cpu = best
            print(
                f"{name:<16} {wall:7.2f} s   cpu {cpu:7.2f} s   peak RSS {rss / 2**20:7.0f} MiB   exit {code}"
            )
        for index, what in ((0, "wall"), (3, "cpu")):
            took = {name: result[index] for name, result in results.items()}
            if "tensor mode" in took and "empty items" in took:
                own = (took["tensor mode"] - took["empty items"]) / args.pairs * 1e3
                print(
                    f"{what}: tensor mode's own cost per item {own:.3f} ms on top of pytest's "
                    "(target <= 0.2 ms)"
                )
            if "module mode" in took:
                print(
                    f"{what}: module mode {took['module mode']:.2f} s for {args.pairs} pairs "
                    "(target < 8 s at 20,000)"
                )
            if "llmprec compare" in took and "read loop" in took:
                ratio = took["llmprec compare"] / took["read loop"]
                print(f"{what}: llmprec compare / read loop {ratio:.2f}x (target <= 1.5x)")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
