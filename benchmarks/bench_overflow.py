"""Cost of the overflow checks: live checks on a forward pass, dump scans, and the scan kernel itself.

A Llama-shaped model (hidden 1024, 4 layers, sequence 256 by default) runs on CPU in one process.
  live     forward passes without hooks, then under an OverflowGuard (every module's outputs
           scanned), interleaved; the slowdown is guarded / plain (target <= 1.3).
  dumps    the model's tensors dumped once (msit torch layout, .pth, and the same tensors as ATB
           .bin files); a plain read of every file (Path.read_bytes, and readinto one reused buffer:
           the cheapest read) against scan_record of every file, interleaved, all from the page
           cache (target: scan / read <= 1.5). Best and median of the rounds are printed: on a
           shared machine the spread is large.
  kernel   one scan of a large float16 tensor: torch.aminmax (the CPU fast path of ``scan``), the
           full device-side counts, and the C comparison kernel of pytest_llmprec.compare reading
           the tensor against itself (the alternative one-pass reader), in GB/s.
With a CUDA device, the live part is also run there: plain, deferred (read back once per forward)
and synchronous (read back per module) checks.
Each figure is the best of --repeat rounds.

Run: python benchmarks/bench_overflow.py [--hidden 1024] [--layers 4] [--seq 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny_llm
from measure import best_time

from pytest_llmprec import DumpConfig, OverflowGuard, load_dump, register_hook
from pytest_llmprec.compare import native
from pytest_llmprec.compare.accumulators import UlpGrid
from pytest_llmprec.formats import save_atb_bin
from pytest_llmprec.overflow import scan_record, scanning
from pytest_llmprec.standards.thresholds import Tolerance


def rounds(functions: dict, repeat: int) -> dict[str, list[float]]:
    """The times of each function over ``repeat`` rounds, run in turn (all meet the same machine state)."""
    times: dict[str, list[float]] = {key: [] for key in functions}
    for _ in range(repeat):
        for key, function in functions.items():
            times[key].append(best_time(function, 1))
    return times


def interleaved(first, second, repeat: int) -> tuple[float, float]:
    """Best times of two functions run alternately."""
    times = rounds({"first": first, "second": second}, repeat)
    return min(times["first"]), min(times["second"])


def live(model: torch.nn.Module, ids: torch.Tensor, repeat: int, device: str) -> None:
    def plain() -> None:
        with torch.no_grad():
            model(ids)
        if device == "cuda":
            torch.cuda.synchronize()

    def guarded(synchronous: bool = False):
        def run() -> None:
            guard = OverflowGuard()
            guard.monitor.synchronous = synchronous
            with guard:
                plain()
            assert not guard.detections

        return run

    plain()
    guarded()()
    base, checked = interleaved(plain, guarded(), repeat)
    print(f"[{device}] forward without hooks      {base * 1000:8.1f} ms")
    print(f"[{device}] forward, outputs checked   {checked * 1000:8.1f} ms   slowdown x{checked / base:.3f}")
    if device == "cuda":
        _, synchronous = interleaved(plain, guarded(True), repeat)
        print(
            f"[{device}] read back per module      {synchronous * 1000:8.1f} ms   x{synchronous / base:.3f}"
        )


def dumps(model: torch.nn.Module, ids: torch.Tensor, scratch: Path, repeat: int) -> None:
    with register_hook(model, DumpConfig(dump_path=scratch / "torch")) as handle, torch.no_grad():
        model(ids)
    torch_dump = load_dump(handle.root_dir)
    atb_root = scratch / "atb" / "msit_dump_20260101_000000"
    for index, record in enumerate(r for r in torch_dump.records if r.role == "output"):
        folder = atb_root / "tensors" / "0_1" / "0" / f"{index}_{record.node_type}" / "after"
        folder.mkdir(parents=True)
        save_atb_bin(record.load(), folder / "outtensor0.bin")
    for name, dump in (("torch .pth", torch_dump), ("ATB .bin", load_dump(atb_root))):
        records = list(dump.records)
        sizes = [Path(r.path).stat().st_size for r in records]
        size = sum(sizes) / 2**20
        buffer = bytearray(max(sizes))

        def read(records=records) -> None:
            for record in records:
                Path(record.path).read_bytes()

        def read_into(records=records, buffer=buffer) -> None:
            for record in records:
                with open(record.path, "rb", buffering=0) as handle:
                    handle.readinto(buffer)

        def scanned(records=records) -> None:
            for record in records:
                scan_record(record)

        times = rounds({"read": read, "readinto": read_into, "scan": scanned}, repeat)
        best = {key: min(values) for key, values in times.items()}
        median = {key: statistics.median(values) for key, values in times.items()}
        print(
            f"[dump {name}] {len(records)} files, {size:.0f} MiB: read_bytes {size / best['read']:6.0f} "
            f"MiB/s, readinto {size / best['readinto']:6.0f} MiB/s, scan {size / best['scan']:6.0f} MiB/s"
        )
        for label, figures in (("best", best), ("median", median)):
            print(
                f"    {label:6s} scan / read_bytes x{figures['scan'] / figures['read']:.2f}, "
                f"scan / readinto x{figures['scan'] / figures['readinto']:.2f}"
            )


def kernel(repeat: int) -> None:
    tensor = torch.randn(32 << 20, generator=torch.Generator().manual_seed(0)).half()
    gigabytes = tensor.numel() * tensor.element_size() / 1e9
    plan = scanning._plan(tensor, 0.5, True)
    fast = best_time(lambda: scanning._clean_by_extremes(plan), repeat)
    counted = best_time(lambda: scanning._device_stats(plan).tolist(), repeat)
    print(f"[kernel] float16, 32M values: aminmax pass {gigabytes / fast:6.1f} GB/s, ", end="")
    print(f"full counts {gigabytes / counted:6.1f} GB/s", end="")
    if native.available():
        buffer = native.Buffer(tensor.view(torch.uint8).numpy(), tensor.dtype)
        grid, tolerance = UlpGrid.of(tensor.dtype), Tolerance(0.0, 0.0)
        c = best_time(lambda: native.accumulate_buffers(buffer, buffer, 0, grid, tolerance), repeat)
        print(f", C comparison kernel (x against x) {gigabytes / c:6.1f} GB/s")
    else:
        print(", C kernel not built")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config = tiny_llm.TinyConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 11 // 4,
        num_layers=args.layers,
        num_heads=args.hidden // 64,
        max_positions=args.seq,
    )
    model = tiny_llm.build_model(seed=0, config=config, dtype=getattr(torch, args.dtype))
    ids = tiny_llm.sample_prompt(length=args.seq, vocab_size=args.vocab)
    print(f"model: hidden {args.hidden}, {args.layers} layers, sequence {args.seq}, {args.dtype}")
    live(model, ids, args.repeat, "cpu")
    scratch = Path(tempfile.mkdtemp(prefix="llmprec-bench-overflow-"))
    try:
        dumps(model, ids, scratch, args.repeat)
    finally:
        shutil.rmtree(scratch)
    kernel(args.repeat)
    if torch.cuda.is_available():
        live(model.cuda(), ids.cuda(), args.repeat, "cuda")


if __name__ == "__main__":
    main()
