"""The local verdict on random-weight Hugging Face Llama models: honest bf16 ports must pass, each
planted porting defect must fail at its own module with few failing pairs.

For each model size, a float32 golden and bfloat16 ports (honest, and each defect of
``testing.llama.DEFECTS`` planted two thirds deep; the rotary defect model-wide) are dumped with
``register_hook`` (prefill plus decode tokens, teacher-forced), then compared with ``llmprec
compare`` under both verdicts. Printed per scenario: exit code, failing pairs (count and share),
the first divergence, and whether it lies in the defective module.

With ``--replay`` every port is dumped a second time with ``DumpConfig(replay=golden)`` (each
module also run on golden's inputs, ``replay_output*.pth``) and compared under the local verdict,
which then uses the replays as evidence; the dump times with and without replay are printed.

Run: python benchmarks/bench_verdict.py [--size small|medium|large|all] [--keep DIR] [--replay]
  small  hidden 256,  6 layers, prefill 128 + 1 decode token (what the tests use, smaller still)
  medium hidden 1024, 16 layers, prefill 128 + 1 decode token
  large  hidden 2048, 20 layers, prefill 256 + 3 decode tokens (about 4.3 GB of dumps)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from pytest_llmprec.testing.llama import DEFECTS, build_llama, dump_tokens, greedy_ids, plant, port, prompt

SIZES = {
    "small": {"hidden": 256, "layers": 6, "prompt": 128, "decode": 1},
    "medium": {"hidden": 1024, "layers": 16, "prompt": 128, "decode": 1},
    "large": {"hidden": 2048, "layers": 20, "prompt": 256, "decode": 3},
}
SCENARIOS = ("honest", *DEFECTS)
MAX_FAILING_SHARE = 0.10


def defective_module(defect: str, layer: int) -> str | None:
    """The module whose tensors the first divergence must name (None for the honest port)."""
    return {
        "honest": None,
        "rotary_bf16": "root.model.rotary_emb",
        "norm_scale": f"root.model.layers.{layer}.post_attention_layernorm",
        "gelu": f"root.model.layers.{layer}.mlp.act_fn",
        "unscaled_attention": f"root.model.layers.{layer}.self_attn",
        "int8_down_proj": f"root.model.layers.{layer}.mlp.down_proj",
        "swapped_gate_up": f"root.model.layers.{layer}.mlp",
        "rotary_theta": "root.model.rotary_emb",
        "head_order": f"root.model.layers.{layer}.self_attn.o_proj",
        "attention_output_scaled": f"root.model.layers.{layer}.self_attn",
    }[defect]


def write_dumps(
    folder: Path, size: dict[str, int], replay: bool
) -> tuple[Path, dict[str, Path], int, dict[str, float]]:
    """(golden dump, {scenario (``-replay``: with replays): my dump}, defect layer, {scenario: dump
    seconds}), written once into ``folder`` (dumps found there are reused, not timed)."""
    layer = size["layers"] * 2 // 3
    names = [*SCENARIOS, *(f"{s}-replay" for s in SCENARIOS if replay)]
    existing = {path.parent.name: path for path in folder.glob("*/msit_dump_*")}
    if set(existing) >= {"golden", *names}:
        return existing["golden"], {name: existing[name] for name in names}, layer, {}
    heads = max(4, size["hidden"] // 64)
    golden = build_llama(hidden=size["hidden"], layers=size["layers"], heads=heads)
    ids = greedy_ids(golden, prompt(golden, size["prompt"]), new_tokens=size["decode"])
    golden_dump = existing.get("golden") or dump_tokens(golden, ids, size["prompt"], folder / "golden")
    mine, seconds = {}, {}
    for name in names:
        scenario = name.removesuffix("-replay")
        if name in existing:
            mine[name] = existing[name]
            continue
        model = port(golden, torch.bfloat16, keep_rotary=scenario != "rotary_bf16")
        if scenario not in ("honest", "rotary_bf16"):
            plant(model, scenario, layer=layer)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # calls on the key/value cache are not replayed
            replay_from = golden_dump if name != scenario else None
            mine[name] = dump_tokens(model, ids, size["prompt"], folder / name, replay_from)
        seconds[name] = time.perf_counter() - start
    return golden_dump, mine, layer, seconds


def compare(golden: Path, my: Path, verdict: str, report_dir: Path) -> tuple[int, int, int, str, float]:
    """(exit code, failing pairs, compared pairs, first divergence line, seconds) of llmprec compare."""
    command = [sys.executable, "-m", "pytest_llmprec.cli", "compare", "-gp", str(golden), "-mp", str(my)]
    command += ["-o", str(report_dir), "--no-html", "--verdict", verdict]
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    counts = re.search(r"(\d+) pairs compared: \d+ passed, (\d+) failed", run.stdout)
    first = next((line for line in run.stdout.splitlines() if line.startswith("first divergence")), "")
    if counts is None:
        raise RuntimeError(f"llmprec compare printed no counts:\n{run.stdout}\n{run.stderr}")
    return run.returncode, int(counts.group(2)), int(counts.group(1)), first, seconds


def bench_size(name: str, folder: Path, replay: bool) -> bool:
    size = SIZES[name]
    print(f"\n== {name}: hidden {size['hidden']}, {size['layers']} layers, prefill {size['prompt']} + "
          f"{size['decode']} decode token(s)")  # fmt: skip
    start = time.perf_counter()
    golden, mine, layer, dump_seconds = write_dumps(folder, size, replay)
    print(f"dumps ready in {time.perf_counter() - start:.0f} s (defects planted in layer {layer})")
    if replay and dump_seconds:
        plain = sum(dump_seconds[s] for s in SCENARIOS if s in dump_seconds)
        replayed = sum(dump_seconds[f"{s}-replay"] for s in SCENARIOS if f"{s}-replay" in dump_seconds)
        print(
            f"dump time of the ports: {plain:.1f} s, with replay {replayed:.1f} s (x{replayed / plain:.2f})"
        )
    good = True
    runs = [(scenario, scenario, verdict) for scenario in SCENARIOS for verdict in ("local", "accumulated")]
    runs += [(f"{scenario}-replay", scenario, "local") for scenario in SCENARIOS if replay]
    for name, scenario, verdict in runs:
        module = defective_module(scenario, layer)
        code, failing, pairs, first, seconds = compare(golden, mine[name], verdict, folder / "reports")
        located = module is not None and re.search(
            rf"first divergence: token\d+/{re.escape(module)}[./]", first
        )
        if verdict == "local":
            expected = code == 0 and failing == 0 if module is None else bool(located)
            expected = expected and failing <= MAX_FAILING_SHARE * pairs
            good = good and expected
        mark = "" if verdict == "accumulated" else ("  ok" if expected else "  MISSED")
        where = first.split(": ", 2)[1] if first else "-"
        print(f"  {name:<26} {verdict:<11} exit {code}  failing {failing:>5}/{pairs} "
              f"({failing / pairs:6.1%})  {seconds:5.1f} s  first: {where}{mark}")  # fmt: skip
    return good


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=[*SIZES, "all"], default="small")
    parser.add_argument("--keep", type=Path, help="write the dumps here once and reuse them (not removed)")
    parser.add_argument("--replay", action="store_true", help="also dump with golden-input replay and judge")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="llmprec-bench-verdict-"))
    try:
        names = list(SIZES) if args.size == "all" else [args.size]
        results = [bench_size(name, root / name, args.replay) for name in names]
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("\nall scenarios as required" if all(results) else "\nSOME SCENARIOS MISSED (marked above)")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
