"""Dumping a model on a CUDA device (skipped where there is none)."""

from __future__ import annotations

import json

import pytest
import tiny_llm
import torch
from capture_helpers import load, names

from pytest_llmprec import DumpConfig, register_hook

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_bf16_model_dumps_cpu_copies(tmp_path):
    model = tiny_llm.build_model(seed=0, dtype=torch.bfloat16).cuda()
    prompt = tiny_llm.sample_prompt(length=6).cuda()
    config = DumpConfig(dump_path=tmp_path, token_range=[0, 1], dump_statistics_mode=2, device_id=0)
    with register_hook(model, config) as handle:
        ids = tiny_llm.generate(model, prompt, 2)
    assert handle.dump_dir.name.startswith("cuda0_")
    assert names(handle.dump_dir) == {"0", "1", "model_tree.json", "execution_order.json"}
    for token in (0, 1):
        output = load(handle.dump_dir / str(token) / "root" / "output.pth")
        assert (output.device.type, output.dtype) == ("cpu", torch.bfloat16)
        with torch.no_grad():
            assert torch.equal(output, model(ids[:, : 6 + token]).cpu())
    order = json.loads((handle.dump_dir / "execution_order.json").read_text())
    assert len(order["0"]) == len(list((handle.dump_dir / "0").iterdir()))
    stats = (handle.dump_dir / "0" / "root.lm_head" / "statistics.csv").read_text()
    assert "torch.bfloat16" in stats
