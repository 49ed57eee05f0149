"""Speed and memory of load_tensor against the usual way of reading each format, in one process.

For one float16 tensor of N elements (default 32M, 64 MiB) written as ATB .bin, .npy,
.safetensors and .pt, each reader is timed on "load, then sum every element" (so lazy memory
maps pay for their page reads) with the files in the page cache:
  ours      pytest_llmprec.load_tensor (memory-mapped);
  baseline  ATB: read the whole file, split at "$End=1\\n", copy into a tensor (msit's way);
            npy: np.load + torch.from_numpy; safetensors: safetensors.torch.load_file;
            pt: torch.load(weights_only=True) without mmap.
Times are the best of several runs; "peak extra" is the rise of the peak resident set during one
load-and-sum, as a share of the tensor's size (a memory map's pages count there too, although
they are page cache the kernel can drop, not a private copy).

Run: python benchmarks/bench_formats.py [--elements N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from measure import best_time, peak_extra_bytes
from safetensors.torch import load_file, save_file

from pytest_llmprec.formats import load_tensor, save_atb_bin


def atb_read_whole(path: Path) -> torch.Tensor:
    data = path.read_bytes()
    header, _, payload = data.partition(b"$End=1\n")
    dims = next(line for line in header.split(b"\n") if line.startswith(b"dims=")).split(b"=")[1]
    shape = [int(d) for d in dims.split(b",")]
    return torch.frombuffer(bytearray(payload), dtype=torch.float16).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=32 << 20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tensor = torch.randn(args.elements).to(torch.float16)
    size = tensor.numel() * tensor.element_size()
    with tempfile.TemporaryDirectory() as folder:
        paths = {name: Path(folder) / f"t.{name}" for name in ("bin", "npy", "safetensors", "pt")}
        save_atb_bin(tensor, paths["bin"])
        np.save(paths["npy"], tensor.numpy())
        save_file({"x": tensor}, paths["safetensors"])
        torch.save(tensor, paths["pt"])
        baselines = {
            "bin": lambda: atb_read_whole(paths["bin"]),
            "npy": lambda: torch.from_numpy(np.load(paths["npy"])),
            "safetensors": lambda: load_file(paths["safetensors"])["x"],
            "pt": lambda: torch.load(paths["pt"], weights_only=True),
        }
        print(f"{args.elements} float16 elements ({size / 2**20:.0f} MiB), best of {args.repeats}")
        print(f"{'format':<12} {'ours s':>8} {'base s':>8} {'ours/base':>10} {'peak extra':>11} {'base':>6}")
        for name, path in paths.items():

            def ours(path=path):
                return load_tensor(path).sum()

            def base(name=name):
                return baselines[name]().sum()

            assert ours().item() == base().item()
            ours_s, base_s = best_time(ours, args.repeats), best_time(base, args.repeats)
            ours_mem, base_mem = peak_extra_bytes(ours) / size, peak_extra_bytes(base) / size
            ratio = ours_s / base_s
            print(f"{name:<12} {ours_s:8.3f} {base_s:8.3f} {ratio:10.2f} {ours_mem:11.2f} {base_mem:6.2f}")


if __name__ == "__main__":
    main()
