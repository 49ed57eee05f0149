"""Cost of dumping every module's tensors with register_hook, against a plain torch.save loop.

A Llama-shaped model with realistic tensor sizes (hidden 1024, 4 layers, sequence 256 by
default) runs on CPU, in one process. Per round:
  forward   --tokens forward passes without hooks;
  dump      the same passes under one register_hook(DumpConfig(token_range=all)), every module's
            inputs and outputs saved, including the final wait for the last file (handle.remove());
  loop      the same tensors (--tokens times: the same volume), already in memory, written one
            by one with torch.save;
  replay    the dump with DumpConfig(replay=GOLDEN): every dumped module also run on a golden
            dump's inputs (here a dump of the same model) and its output saved (with --replay).
Rounds are interleaved (files deleted after each) so that all meet the same machine state; each
figure is the best of --repeat rounds, per forward pass. The dump's throughput is reported on its
extra time (dump - forward) and on its whole time, counting every file's bytes (a tensor seen
again unchanged is hard-linked, not written again: the written share is printed too).

Run: python benchmarks/bench_dump.py [--hidden 1024] [--layers 4] [--seq 256] [--tokens 4] [--repeat 3]
     [--replay]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import tiny_llm

from pytest_llmprec import DumpConfig, register_hook


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=4, help="forward passes per round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--replay", action="store_true", help="also time the dump with golden-input replay")
    args = parser.parse_args()

    config = tiny_llm.TinyConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 11 // 4,
        num_layers=args.layers,
        num_heads=args.hidden // 64,
        max_positions=args.seq,
    )
    model = tiny_llm.build_model(seed=0, config=config)
    ids = tiny_llm.sample_prompt(length=args.seq, vocab_size=args.vocab)
    scratch = Path(tempfile.mkdtemp(prefix="llmprec-bench-dump-"))

    def forwards() -> None:
        with torch.no_grad():
            for _ in range(args.tokens):
                model(ids)

    def dump(target: Path, replay: Path | None = None) -> Path:
        config = DumpConfig(dump_path=target, token_range=list(range(args.tokens)), replay=replay)
        with register_hook(model, config) as handle:
            forwards()
        return handle.dump_dir

    forwards()
    dumped = dump(scratch / "reference")
    golden = dumped.parents[1]
    files = sorted((dumped / "0").rglob("*.pth"))
    tensors = [torch.load(path, weights_only=True) for path in files]
    megabytes = sum(path.stat().st_size for path in files) / 2**20
    distinct = {path.stat().st_ino: path.stat().st_size for path in files}
    written = sum(distinct.values()) / 2**20

    def loop(target: Path) -> None:
        target.mkdir()
        for token in range(args.tokens):
            for index, tensor in enumerate(tensors):
                torch.save(tensor, target / f"{token}_{index}.pth")

    plain_times, dump_times, loop_times, replay_times = [], [], [], []
    for _ in range(args.repeat):
        if args.replay:
            replay_times.append(timed(lambda: dump(scratch / "replay", golden)) / args.tokens)
            shutil.rmtree(scratch / "replay")
        plain_times.append(timed(forwards) / args.tokens)
        dump_times.append(timed(lambda: dump(scratch / "dump")) / args.tokens)
        shutil.rmtree(scratch / "dump")
        loop_times.append(timed(lambda: loop(scratch / "loop")) / args.tokens)
        shutil.rmtree(scratch / "loop")
    shutil.rmtree(scratch)

    plain, with_dump, loop_time = min(plain_times), min(dump_times), min(loop_times)
    extra = with_dump - plain
    print(f"model: hidden {args.hidden}, {args.layers} layers, sequence {args.seq}, vocab {args.vocab}, CPU")
    print(f"dumped: {len(files)} files, {megabytes:.0f} MiB per forward pass, {args.tokens} passes per round")
    print(
        f"  of which {len(distinct)} files ({written:.0f} MiB) written, the rest hard links to equal tensors"
    )
    print(f"forward without hooks    {plain * 1000:8.1f} ms")
    print(f"forward with full dump   {with_dump * 1000:8.1f} ms   slowdown x{with_dump / plain:.2f}")
    print(f"plain torch.save loop    {loop_time * 1000:8.1f} ms   {megabytes / loop_time:8.0f} MiB/s")
    print(f"dump, on its extra time  {extra * 1000:8.1f} ms   {megabytes / extra:8.0f} MiB/s")
    print(f"dump, on its whole time  {with_dump * 1000:8.1f} ms   {megabytes / with_dump:8.0f} MiB/s")
    print(f"dump / loop throughput (extra time): {loop_time / extra:.2f}  (target >= 0.5)")
    if replay_times:
        replay = min(replay_times)
        print(
            f"forward with dump+replay {replay * 1000:8.1f} ms   x{replay / plain:.2f} the forward, "
            f"x{replay / with_dump:.2f} the dump alone"
        )


if __name__ == "__main__":
    main()
