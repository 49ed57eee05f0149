"""Wall time and peak memory of ``pytest --llm-golden --llm-my`` and ``llmprec compare`` on a dump pair.

Two profiles of msit-layout PyTorch dumps (written in a temporary folder, removed afterwards, or
kept in ``--keep DIR`` and reused):
  realistic  (default) a Hugging Face LlamaForCausalLM (random weights, built in code: hidden 2048,
             20 layers, 32 heads, 4 KV heads, intermediate 5632) dumped by register_hook over a
             256-token prefill and 3 decode tokens, every module's inputs and outputs: the golden
             in float32; "my" is every golden file rounded to bfloat16 (strides kept), so every
             pair passes the bfloat16 standard. Thousands of files of every size, many of them
             transposed views, the way real dumps are. With --my port, "my" is the same model
             run in bfloat16: errors grow through the layers as in a real port, and the local
             verdict checks the operators it suspects against float64 references;
  synthetic  a Llama-shaped set of large activation files (hidden 2048, a 384-token prompt) plus
             small ones; "my" is the golden with relative noise of 1e-4.

Measured, with the page cache warm:
  read floor   a separate Python process that imports torch and torch.load()s every file
               of both dumps once (the least any comparison must do);
  serial       pytest --llm-golden=G --llm-my=M -q;
  accumulated  the same with --llm-verdict=accumulated, where a serial run evaluates the pairs in a
               forked child process while pytest runs the items, and with --llm-no-fork;
  -n 2         the same with pytest-xdist on two workers;
  empty tests  as many empty test functions as there are pairs, serial and with -n 2: what
               pytest and pytest-xdist cost by themselves;
  msit         with --msit PATH, msit's own ``msit llm compare`` on the same pair (its report
               holds the decoder layers' outputs only: 80 rows for the realistic pair).
The plugin reads msit torch dumps without importing torch (formats.read_raw), so a run can
beat the read floor, whose process imports torch.
Peak RSS is the largest resident set of any process of the run (see measure.run_process).

Run: python benchmarks/bench_compare.py [--profile realistic|synthetic] [--my rounded|port]
     [--keep DIR] [--layers N] [--msit PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from measure import run_process

HIDDEN, INTERMEDIATE, HEADS = 2048, 5632, 16

READ_FLOOR = """
import sys, torch
for path in sys.argv[1:]:
    torch.load(path, weights_only=True)
"""


def module_tensors(seq: int, generator: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
    """One decoder layer's dumped tensors, keyed by module suffix and file stem."""

    def act(*shape):
        return torch.randn(*shape, generator=generator)

    hidden = (1, seq, HIDDEN)
    return {
        "input_layernorm": {"input_0": act(*hidden), "output": act(*hidden)},
        "self_attn.q_proj": {"output": act(*hidden)},
        "self_attn.k_proj": {"output": act(*hidden)},
        "self_attn.v_proj": {"output": act(*hidden)},
        "self_attn.rotary_emb": {"input_0": act(1, HEADS, seq, 128), "output": act(1, HEADS, seq, 128)},
        "self_attn.o_proj": {"input_0": act(*hidden), "output": act(*hidden)},
        "self_attn": {"input_0": act(*hidden), "input_1": torch.ones(1, 1, 64, 64, dtype=torch.bool),
                      "output": act(*hidden)},
        "post_attention_layernorm": {"output": act(*hidden)},
        "mlp.gate_proj": {"output": act(1, seq, INTERMEDIATE)},
        "mlp.up_proj": {"output": act(1, seq, INTERMEDIATE)},
        "mlp.act_fn": {"output": act(1, seq, INTERMEDIATE)},
        "mlp.down_proj": {"input_0": act(1, seq, INTERMEDIATE), "output": act(*hidden)},
        "mlp": {"output": act(*hidden)},
        "": {"input_1": torch.arange(seq).unsqueeze(0), "output": act(*hidden)},
    }  # fmt: skip


def small_files(generator: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
    """The many small tensors of a real dump: scalars, norms' statistics, ids, flags."""
    return {
        f"rotary_cache.{i}": {"output": torch.randn(64, generator=generator), "input_0": torch.tensor([i])}
        for i in range(40)
    }


def write_pair(folder: Path, layers: int, tokens: int, seq: int) -> tuple[Path, Path, int]:
    generator = torch.Generator().manual_seed(0)
    noise = torch.Generator().manual_seed(1)
    roots = {side: folder / side / "msit_dump_20261122_000000" for side in ("golden", "my")}
    tree = {"name": "root", "type": "LlamaForCausalLM", "children": []}
    total = 0
    for token in range(tokens):
        modules: dict[str, dict[str, torch.Tensor]] = {}
        for layer in range(layers):
            for suffix, leaves in module_tensors(seq, generator).items():
                modules[f"root.model.layers.{layer}" + (f".{suffix}" if suffix else "")] = leaves
        modules.update({f"root.model.{k}": v for k, v in small_files(generator).items()})
        for module, leaves in modules.items():
            for leaf, golden in leaves.items():
                my = golden
                if golden.is_floating_point():
                    my = golden * (1 + 1e-4 * torch.randn(golden.shape, generator=noise))
                for side, tensor in (("golden", golden), ("my", my)):
                    path = roots[side] / "torch_tensors" / "cpu_1" / str(token) / module / f"{leaf}.pth"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    torch.save(tensor, path)
                    total += path.stat().st_size
    for side in roots.values():
        (side / "torch_tensors" / "cpu_1" / "model_tree.json").write_text(json.dumps(tree))
    return roots["golden"], roots["my"], total


def to_bfloat16(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` rounded to bfloat16, clamped to its finite range first: float32's finfo.min (the
    attention mask's "masked" value) rounds to -inf in bfloat16, which no standard passes."""
    bf16 = torch.finfo(torch.bfloat16)
    return tensor.clamp(bf16.min, bf16.max).to(torch.bfloat16)


def write_realistic_pair(
    folder: Path, layers: int, tokens: int, seq: int, port: bool = False
) -> tuple[Path, Path, int]:
    """A golden float32 dump of a random-weight HF Llama and its bfloat16-rounded copy, or with
    ``port`` the dump of the same model run in bfloat16 (errors that grow through the layers)."""
    from pytest_llmprec import DumpConfig, register_hook
    from pytest_llmprec.testing import llama

    shape = {"hidden": 2048, "intermediate": 5632, "heads": 32, "kv_heads": 4, "vocab": 32000}
    model = llama.build_llama(layers=layers, **shape)
    ids = llama.prompt(model, seq + tokens - 1)
    roots = {}
    for side, run in {"golden": model, **({"my": llama.port(model)} if port else {})}.items():
        config = DumpConfig(dump_path=str(folder / side), token_range=list(range(tokens)))
        with register_hook(run, config) as handle, torch.no_grad():
            llama.run_tokens(run, ids, seq)
        roots[side] = handle.root_dir
    golden = roots["golden"]
    del model
    if port:
        return golden, roots["my"], sum(p.stat().st_size for p in folder.rglob("*.pth"))
    my = folder / "my" / golden.name
    total = 0
    for path in sorted(golden.rglob("*")):
        target = my / path.relative_to(golden)
        if path.is_dir():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".pth":
            tensor = torch.load(path, weights_only=True)
            torch.save(to_bfloat16(tensor) if tensor.is_floating_point() else tensor, target)
            total += path.stat().st_size + target.stat().st_size
        else:
            shutil.copyfile(path, target)
    return golden, my, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("realistic", "synthetic"), default="realistic")
    parser.add_argument(
        "--my",
        choices=("rounded", "port"),
        default="rounded",
        help="realistic: my = golden's files rounded to bfloat16 (every pair passes), or the model run "
        "in bfloat16 (port: the local verdict checks suspect operators against float64 references)",
    )
    parser.add_argument("--layers", type=int, help="decoder layers (realistic 20, synthetic 4)")
    parser.add_argument(
        "--tokens", type=int, default=None, help="tokens (realistic 4: prefill + 3, synthetic 3)"
    )
    parser.add_argument("--seq", type=int, default=None, help="prompt length (realistic 256, synthetic 384)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write the pair here once and reuse it (not removed)")
    parser.add_argument(
        "--msit", type=Path, help="an msit executable (msit with its llm component): its compare is timed too"
    )
    args = parser.parse_args()
    realistic = args.profile == "realistic"
    layers = args.layers or (20 if realistic else 4)
    tokens = args.tokens or (4 if realistic else 3)
    seq = args.seq or (256 if realistic else 384)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="llmprec-bench-compare-"))
    try:
        start = time.perf_counter()
        existing = sorted(folder.glob("golden/msit_dump_*")) if args.keep else []
        if existing:
            golden, my = existing[0], sorted(folder.glob("my/msit_dump_*"))[0]
            total = sum(p.stat().st_size for p in folder.rglob("*.pth"))
        elif realistic:
            golden, my, total = write_realistic_pair(folder, layers, tokens, seq, port=args.my == "port")
        else:
            golden, my, total = write_pair(folder, layers, tokens, seq)
        files = sorted(str(p) for p in folder.rglob("*.pth") if "report" not in p.parts)
        print(
            f"dump pair ({args.profile}): {len(files)} files, {total / 2**30:.2f} GiB "
            f"(hidden {HIDDEN}, seq {seq}, {layers} layers x {tokens} tokens), "
            f"ready in {time.perf_counter() - start:.0f} s"
        )
        work = folder / "run"
        work.mkdir(exist_ok=True)
        empty_tests = folder / "empty" / "test_empty.py"  # pytest's own cost for as many items
        empty_tests.parent.mkdir(exist_ok=True)
        empty_tests.write_text(
            f"import pytest\n\n\n@pytest.mark.parametrize('i', range({len(files) // 2}))\n"
            "def test_nothing(i):\n    pass\n"
        )
        pytest_cmd = [sys.executable, "-m", "pytest", f"--llm-golden={golden}", f"--llm-my={my}", "-q",
                      "-p", "no:cacheprovider", f"--llm-report-dir={folder / 'report'}"]  # fmt: skip
        empty_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(empty_tests)]
        compare_cmd = [sys.executable, "-m", "pytest_llmprec.cli", "compare", "-gp", str(golden),
                       "-mp", str(my), "-o", str(folder / "report-cli"), "-l", "warning"]  # fmt: skip
        runs = {
            "read floor": [sys.executable, "-c", READ_FLOOR, *files],
            "serial": pytest_cmd,
            "llmprec compare": compare_cmd,
            "serial, accumulated": [*pytest_cmd, "--llm-verdict=accumulated"],
            "same, --llm-no-fork": [*pytest_cmd, "--llm-verdict=accumulated", "--llm-no-fork"],
            "-n 2": [*pytest_cmd, "-n", "2"],
            "empty tests, serial": [*empty_cmd],
            "empty tests, -n 2": [*empty_cmd, "-n", "2"],
        }
        if args.msit is not None:  # msit compares the process folders of a torch dump
            (golden_process,), (my_process,) = (sorted(root.glob("torch_tensors/*")) for root in (golden, my))
            runs["msit llm compare"] = [str(args.msit), "llm", "compare", "-gp", str(golden_process),
                                        "-mp", str(my_process), "-o", str(folder / "report-msit"),
                                        "-l", "warning"]  # fmt: skip
        run_process(runs["read floor"], work)  # warm the page cache
        run_process(pytest_cmd, work)  # let pytest cache its rewritten plugin modules
        results = {}
        for name, command in runs.items():
            best = min((run_process(command, work) for _ in range(args.repeats)), key=lambda r: r[0])
            results[name] = best
            wall, rss, code = best
            print(f"{name:<22} {wall:7.2f} s   peak RSS {rss / 2**20:7.0f} MiB   exit {code}")
        floor, serial, cli, forked, unforked, parallel, empty, empty_parallel = (
            results[name][0] for name in list(runs)[:8]
        )
        print(
            f"serial / read floor: {serial / floor:.2f}x   llmprec compare / floor: {cli / floor:.2f}x   "
            f"serial / -n 2: {serial / parallel:.2f}x\n"
            f"accumulated verdict: serial / read floor {forked / floor:.2f}x (evaluated in a forked child), "
            f"{unforked / floor:.2f}x with --llm-no-fork\n"
            f"the same number of empty tests: serial / -n 2: {empty / empty_parallel:.2f}x "
            f"(pytest-xdist's own start-up and per-item cost)"
        )
        if "msit llm compare" in results:
            msit = results["msit llm compare"][0]
            print(
                f"msit llm compare / serial: {msit / serial:.2f}x, / llmprec compare: {msit / cli:.2f}x "
                "(msit compares the decoder layers' outputs of a torch dump only)"
            )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
