"""Fixtures: dump trees written in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dump_trees import (
    BLOOM_POST_ORDER,
    BLOOM_TREE,
    GE_GRAPH,
    bloom_atb_model,
    save_pth,
    write_bloom_atb_round,
    write_ge_file,
    write_json,
    write_msprobe_rank,
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


@pytest.fixture
def ge_dump(tmp_path: Path) -> Path:
    """msit_ge_dump with two ranks; rank 0 has tokens 0 and 1, rank 1 token 0."""
    root = tmp_path / "msit_ge_dump"
    root.mkdir()
    (root / GE_GRAPH).write_text('graph {\n  op {\n    name: "Add_2"\n  }\n}\n')
    for rank in (0, 1):
        model = root / f"worldsize2_global_rank{rank}" / "20240125031118" / str(rank) / "graph_1" / "1"
        write_ge_file(model / "0", "Add.Add_2.44.6.17065969121619")
        write_ge_file(model / "0", "ConcatV2D.ConcatV2.42.6.17065969121611", inputs=3)
        write_ge_file(model / "0", "TransData.TransData_1.1.42.6.17065969121600", inputs=1, outputs=1)
        if rank == 0:
            write_ge_file(model / "1", "Add.Add_2.44.6.17065969122619")
            (model / "1" / "Add.Add_2.44.6.17065969122619.npy").write_bytes(b"")
            (model / "1" / "notes.txt").write_text("ignored")
    return root


@pytest.fixture
def msprobe_dump(tmp_path: Path) -> Path:
    root = tmp_path / "dump_path"
    for step in ("step0", "step1", "step10"):
        for rank in ("rank0", "rank1"):
            write_msprobe_rank(root / step / rank)
    return root


@pytest.fixture
def manual_dump(tmp_path: Path) -> Path:
    """dump_data output for data ids attn_out (tokens 0 and 2) and mlp_out (token 0), my files outside."""
    root = tmp_path / "out" / "msit_dump_20240102_030405"
    golden = root / "4242_1" / "golden_tensor"
    mine = tmp_path / "mine"
    mine.mkdir()
    metadata = {}
    for data_id, tokens in (("mlp_out", [0]), ("attn_out", [0, 2])):
        metadata[data_id] = {}
        for token in tokens:
            golden_path = golden / str(token) / f"{data_id}_tensor.pth"
            save_pth(golden_path)
            my_path = mine / f"{data_id}_{token}.npy"
            np.save(my_path, np.zeros(3, dtype=np.float32))
            metadata[data_id][str(token)] = [str(golden_path), str(my_path)]
    write_json(golden / "metadata.json", metadata)
    return root
