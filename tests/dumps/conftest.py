"""Fixtures: dump trees written in the real layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from dump_trees import (
    BLOOM_POST_ORDER,
    BLOOM_TREE,
    bloom_atb_model,
    save_pth,
    write_bloom_atb_round,
    write_json,
)


@pytest.fixture
def bloom_torch_dump(tmp_path: Path) -> Path:
    """msit_dump_{TS}/torch_tensors/npu3_4242 with model_tree.json, tokens 0, 1, 2, 10 and weights/."""
    device = tmp_path / "msit_dump_20240102_030405" / "torch_tensors" / "npu3_4242"
    write_json(device / "model_tree.json", BLOOM_TREE)
    for token in (0, 1, 2, 10):
        for module in BLOOM_POST_ORDER:
            save_pth(device / str(token) / module / "input_0.pth")
            save_pth(device / str(token) / module / "output.pth")
    token0 = device / "0"
    for name in ("output_0.pth", "output_1.pth", "output_1_0.pth", "input_1.pth"):
        save_pth(token0 / "root.transformer.h.2.self_attention" / name)
    (token0 / "root.transformer.h.2.self_attention" / "output.pth").unlink()
    save_pth(token0 / "root.transformer.h.2.mlp.gelu_impl.tanh" / "input_0.pth")
    save_pth(token0 / "root.transformer.h.2.mlp.gelu_impl.tanh" / "output.pth")
    (token0 / "root.lm_head" / "statistics.csv").write_text(
        "NodeName,NodeType,InputOutput,Index,DataType,Shape,Max,Min,Mean,L2Norm\n"
    )
    save_pth(device / "weights" / "root.lm_head.weight.pth")
    save_pth(device / "weights" / "root.transformer.h.2.mlp.dense_4h_to_h.bias.pth")
    return tmp_path / "msit_dump_20240102_030405"


@pytest.fixture
def bloom_atb_dump(tmp_path: Path) -> Path:
    """An ATB dump with a prefill and a decode model: rounds 0 (warm-up), 1 (prefill + decode), 2, 10."""
    root = tmp_path / "msit_dump_20240102_030405"
    write_json(root / "model" / "4321" / "Bloom7BPrefill.json", bloom_atb_model("Bloom7BPrefill", 0))
    write_json(root / "model" / "4321" / "Bloom7BDecode.json", bloom_atb_model("Bloom7BDecode", 3))
    tensors = root / "tensors" / "2_4321"
    write_bloom_atb_round(tensors / "0", 0)
    write_bloom_atb_round(tensors / "1", 0)
    for folder in ("1", "2", "10"):
        write_bloom_atb_round(tensors / folder, 3)
    return root
