"""Measure honest low-precision error per module, to choose the default standards.

Runs the example Llama-shaped model at several sizes in float32 (golden) and in bfloat16 /
float16 (the same weights cast), captures every module's output with forward hooks, compares
each pair with compare_tensors and prints the distribution of cosine similarity and relative
Euclidean distance (RED), plus how many pairs the current default standard would fail.
A uniform 5% scale error injected into one layer is checked as the defect the defaults must
catch in float32.

Run: python benchmarks/calibrate_standards.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from tiny_llm import TinyConfig, build_model, sample_prompt

from pytest_llmprec import compare_tensors
from pytest_llmprec.standards import get_standard, judge

SIZES = [
    TinyConfig(vocab_size=1024, hidden_size=256, intermediate_size=688, num_layers=4, num_heads=8),
    TinyConfig(vocab_size=4096, hidden_size=1024, intermediate_size=2752, num_layers=8, num_heads=16),
    TinyConfig(vocab_size=4096, hidden_size=512, intermediate_size=1376, num_layers=24, num_heads=8),
]


def module_outputs(model: torch.nn.Module, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():

        def keep(_module, _inputs, output, name=name or "root"):
            if isinstance(output, torch.Tensor):
                outputs[name] = output.detach().clone()

        handles.append(module.register_forward_hook(keep))
    with torch.no_grad():
        model(ids)
    for handle in handles:
        handle.remove()
    return outputs


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    pick = [ordered[0], ordered[len(ordered) // 2], ordered[int(0.9 * (len(ordered) - 1))], ordered[-1]]
    return " ".join(f"{v:.3g}" for v in pick)


def main() -> None:
    for config in SIZES:
        golden_model = build_model(seed=0, config=config)
        ids = sample_prompt(length=64, seed=1, vocab_size=config.vocab_size)
        golden = module_outputs(golden_model, ids)
        print(f"\nhidden {config.hidden_size}, {config.num_layers} layers, {len(golden)} module outputs")
        columns = f"{'1-cos min/median/p90/max':>34}{'RED min/median/p90/max':>34}{'default fails':>15}"
        print(f"{'my dtype':<16}{columns}")
        for dtype in (torch.bfloat16, torch.float16):
            mine = module_outputs(build_model(seed=0, config=config, dtype=dtype), ids)
            results = [compare_tensors(golden[name], mine[name]) for name in golden]
            standard = get_standard("default", torch.float32, dtype)
            fails = sum(not judge(r, standard).passed for r in results)
            deficits = [1 - r.cosine_similarity for r in results]
            reds = [r.relative_euclidean_distance for r in results]
            print(f"{dtype!s:<16}{quantiles(deficits):>34}{quantiles(reds):>34}{fails:>10} / {len(results)}")
        scaled = build_model(seed=0, config=config)
        with torch.no_grad():
            scaled.model.layers[1].mlp.down_proj.weight.mul_(1.05)
        defect = module_outputs(scaled, ids)["model.layers.1.mlp.down_proj"]
        result = compare_tensors(golden["model.layers.1.mlp.down_proj"], defect)
        verdict = judge(result, get_standard("default", torch.float32))
        print(
            f"float32 with a 5% scale error in layers.1.mlp.down_proj: cos {result.cosine_similarity:.9f}, "
            f"RED {result.relative_euclidean_distance:.4f} -> {'passes (BAD)' if verdict.passed else 'fails'}"
        )


if __name__ == "__main__":
    main()
