"""The main job on the shipped example: dump a golden and a target run, compare them with pytest.

1. The tiny Llama-shaped model of ``tiny_llm.py`` generates 3 tokens in float32; each forward call
   (one per token) is the golden run, dumped with ``register_hook`` in msit's PyTorch layout.
2. The same weights run in bfloat16 with one planted porting bug (layer 1's MLP activation is a
   tanh-approximated GELU instead of SiLU) on the same token sequence (teacher forcing, so every
   token sees the same input): the run under test, dumped the same way.
3. ``pytest --llm-golden=... --llm-my=...`` compares every module output: bfloat16 rounding passes
   the bfloat16 standard, the bug fails, and the summary names the first divergence.

The dumps and the CSV reports stay in ``llmprec-demo/`` (or the folder given as argument).
Run: python examples/demo.py [FOLDER]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_llm import build_model, generate, sample_prompt

from pytest_llmprec import DumpConfig, register_hook

TOKENS = 3
DEFECT = "root.model.layers.1.mlp.act_fn"


def dump_run(model: nn.Module, ids: torch.Tensor, folder: Path) -> Path:
    """Dump one forward call per token over the growing prefixes of ``ids``."""
    prompt = ids.shape[1] - TOKENS
    config = DumpConfig(dump_path=str(folder), token_range=list(range(TOKENS)))
    with register_hook(model, config) as handle, torch.no_grad():
        for step in range(TOKENS):
            model(ids[:, : prompt + step])
    return handle.dump_dir


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "llmprec-demo").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"[1/3] golden: float32 run, {TOKENS} tokens, every module's inputs and outputs dumped")
    golden_model = build_model(seed=0)
    ids = generate(golden_model, sample_prompt(length=12), steps=TOKENS)
    golden = dump_run(golden_model, ids, out / "golden")
    print("[2/3] my: bfloat16 run with a planted bug: layer 1's MLP activation is GELU(tanh), not SiLU")
    mine = build_model(seed=0, dtype=torch.bfloat16)
    mine.model.layers[1].mlp.act_fn = nn.GELU(approximate="tanh")
    my = dump_run(mine, ids, out / "my")
    print("[3/3] pytest --llm-golden=... --llm-my=...  (failure details hidden with --tb=no)\n", flush=True)
    command = [
        sys.executable, "-m", "pytest", f"--llm-golden={golden}", f"--llm-my={my}",
        f"--llm-report-dir={out / 'report'}", "-q", "--tb=no", "-rN", "-p", "no:cacheprovider",
    ]  # fmt: skip
    code = subprocess.run(command, cwd=out).returncode
    print(f"\npytest exit code {code}; dumps and reports are in {out}")
    print(f"details of the first divergence: {' '.join(command[:5])} -k '{DEFECT.split('.', 1)[1]}'")
    if code != 1:
        print("unexpected: the planted bug should fail the run with exit code 1")
        return 1
    print("as expected, the run failed on the planted bug and bfloat16 rounding alone passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
