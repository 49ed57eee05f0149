"""Builders of dump trees in the exact layouts of msit, msprobe and TorchAir (real files, tiny tensors)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from pytest_llmprec.formats import write_ge_dump


def tree_node(name: str, type_: str, *children: dict) -> dict:
    """One ``model_tree.json`` node: ``{"name", "type", "children"}``."""
    return {"name": name, "type": type_, "children": list(children)}


H2 = "root.transformer.h.2"
BLOOM_TREE = tree_node(
    "root",
    "BloomForCausalLM",
    tree_node(
        "root.transformer",
        "BloomModel",
        tree_node(
            H2,
            "BloomBlock",
            tree_node(f"{H2}.input_layernorm", "LayerNorm"),
            tree_node(
                f"{H2}.self_attention",
                "BloomAttention",
                tree_node(f"{H2}.self_attention.query_key_value", "Linear"),
                tree_node(f"{H2}.self_attention.attention_dropout", "Dropout"),
                tree_node(f"{H2}.self_attention.dense", "Linear"),
            ),
            tree_node(f"{H2}.post_attention_layernorm", "LayerNorm"),
            tree_node(
                f"{H2}.mlp",
                "BloomMLP",
                tree_node(f"{H2}.mlp.dense_h_to_4h", "Linear"),
                tree_node(f"{H2}.mlp.gelu_impl", "BloomGelu"),
                tree_node(f"{H2}.mlp.dense_4h_to_h", "Linear"),
            ),
        ),
    ),
    tree_node("root.lm_head", "Linear"),
)
"""A model_tree.json as msit's hook writes it (the Bloom layer subtree of msit's UT resource, plus a head)."""

BLOOM_POST_ORDER = [
    "root.transformer.h.2.input_layernorm",
    "root.transformer.h.2.self_attention.query_key_value",
    "root.transformer.h.2.self_attention.attention_dropout",
    "root.transformer.h.2.self_attention.dense",
    "root.transformer.h.2.self_attention",
    "root.transformer.h.2.post_attention_layernorm",
    "root.transformer.h.2.mlp.dense_h_to_4h",
    "root.transformer.h.2.mlp.gelu_impl",
    "root.transformer.h.2.mlp.dense_4h_to_h",
    "root.transformer.h.2.mlp",
    "root.transformer.h.2",
    "root.transformer",
    "root.lm_head",
    "root",
]


def tensor_for(name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A small tensor whose values depend on ``name``, so that a mixed-up file is noticed."""
    seed = sum(name.encode()) % 97
    return (torch.arange(6, dtype=torch.float32).reshape(2, 3) + seed).to(dtype)


def save_pth(path: Path, name: str | None = None) -> torch.Tensor:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor = tensor_for(name or str(path))
    torch.save(tensor, path)
    return tensor


def write_json(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=4))
    return path


def atb_bin(values: np.ndarray) -> bytes:
    """An ATB tensor ``.bin`` (Mki BinFile) byte for byte as the ATB dump writes it (float16 only here)."""
    data = np.ascontiguousarray(values, dtype=np.float16).tobytes()
    dims = ",".join(str(d) for d in values.shape)
    header = (
        f"$Version=1.0\n$Object.Count=1\n$Object.Length={len(data)}\nformat=2\ndtype=1\ndims={dims}\n"
        f"$Object.data=0,{len(data)}\n$End=1\n"
    )
    return header.encode() + data


def write_atb_bin(path: Path, values: np.ndarray | None = None) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    if values is None:
        values = np.arange(8, dtype=np.float16).reshape(2, 4) + (sum(str(path).encode()) % 31)
    path.write_bytes(atb_bin(values))
    return values


def atb_node(op_name: str, op_type: str, *children: dict, param: dict | None = None) -> dict:
    """One node of an ATB topology JSON; graph operations have ``nodes`` and internal tensors."""
    node: dict = {
        "opName": op_name,
        "opType": op_type,
        "param": param or {},
        "inTensors": [f"{op_name}_input_0"],
        "outTensors": [f"{op_name}_output_0"],
    }
    if children:
        node["internalTensors"] = [f"{op_name}_internal_0"]
        node["nodes"] = list(children)
    return node


def bloom_atb_model(model_name: str, first: int) -> dict:
    """A Bloom-like ATB model topology whose top-level op names end in ``first``, ``first + 1``, ..."""
    layer = first + 1
    return {
        "modelName": model_name,
        "inTensors": [f"{model_name}_input_0"],
        "outTensors": [f"{model_name}_output_0"],
        "nodes": [
            atb_node(f"WordEmbedding_{first}", "WordEmbedding"),
            atb_node(
                f"Bloom7bCommonLayer_{layer}",
                "BloomLayer",
                atb_node(f"LayerNormOperation_{layer}_0", "LayerNormOperation", param={"epsilon": math.nan}),
                atb_node(
                    f"ParallelLinearBaseV2_{layer}_1",
                    "ParallelLinearBaseV2",
                    atb_node(f"LinearOperation_{layer}_1_0", "LinearOperation", param={"hasBias": False}),
                ),
                param={"headNum": 32, "layerNormEps": float("inf")},
            ),
            atb_node(f"LmHead_{first + 2}", "LmHead"),
        ],
    }


LINEAR_PARAM = {"hasBias": False, "outDataType": -1, "transposeA": False, "transposeB": True}


def write_atb_op(token_folder: Path, op_path: str, inputs: int = 1, outputs: int = 1) -> None:
    """An operation folder as the ATB dump writes it with --save-time 3 (inputs before, outputs after)."""
    folder = token_folder / op_path
    for index in range(inputs):
        write_atb_bin(folder / "before" / f"intensor{index}.bin")
    for index in range(outputs):
        write_atb_bin(folder / "after" / f"outtensor{index}.bin")


def write_bloom_atb_round(token_folder: Path, first: int) -> list[str]:
    """The op folders of one Bloom model run whose top-level folders start at ``first``; their node names."""
    layer = f"{first + 1}_BloomLayer"
    ops = [
        f"{first}_WordEmbedding",
        f"{layer}/0_LayerNormOperation",
        f"{layer}/1_ParallelLinearBaseV2/0_LinearOperation",
        f"{layer}/1_ParallelLinearBaseV2",
        layer,
        f"{first + 2}_LmHead",
    ]
    for op in ops:
        write_atb_op(token_folder, op)
    write_json(token_folder / f"{layer}/1_ParallelLinearBaseV2/0_LinearOperation/op_param.json", LINEAR_PARAM)
    return ops


GE_GRAPH = "dynamo_original_graph_1_rank_0_pid_123_ts_456.txt"


def write_ge_file(folder: Path, name: str, inputs: int = 2, outputs: int = 1, size: int = 4) -> Path:
    """A GE dump file of float32 inputs 0, 1, ... and outputs 10, 11, ... of ``size`` elements."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write_ge_dump(
        path,
        inputs=[torch.full((size,), float(i)) for i in range(inputs)],
        outputs=[torch.full((size,), 10.0 + i) for i in range(outputs)],
        op_name=name.split(".")[1],
    )
    return path


def msprobe_tensor_entry(folder: Path | None, data_name: str | None) -> dict:
    """A dump.json tensor entry, its fields in msprobe's order; with a folder, the .pt file is written too."""
    entry = {
        "type": "torch.Tensor",
        "dtype": "torch.float32",
        "shape": [2, 3],
        "Max": 5.0,
        "Min": 0.0,
        "Mean": 2.5,
        "Norm": 7.4,
        "requires_grad": False,
    }
    if folder is not None and data_name is not None:
        entry["data_name"] = data_name
        save_pth(folder / "dump_tensor_data" / data_name)
    return entry


def write_msprobe_rank(folder: Path, with_data: bool = True) -> None:
    """A mix-level dump.json: a module call with parameters, an API call with kwargs and a backward."""
    data_folder = folder if with_data else None
    module = "Module.layer1.Linear.forward.0"
    api = "Functional.linear.5.forward"
    data = {
        module: {
            "input_args": [msprobe_tensor_entry(data_folder, f"{module}.input.0.pt")],
            "input_kwargs": {},
            "output": [msprobe_tensor_entry(data_folder, f"{module}.output.0.pt")],
            "parameters": {
                "weight": msprobe_tensor_entry(data_folder, f"{module}.parameters.weight.pt"),
                "bias": msprobe_tensor_entry(data_folder, f"{module}.parameters.bias.pt"),
            },
        },
        api: {
            "input_args": [
                msprobe_tensor_entry(data_folder, f"{api}.input.0.pt"),
                [
                    msprobe_tensor_entry(data_folder, f"{api}.input.1.0.pt"),
                    msprobe_tensor_entry(data_folder, f"{api}.input.1.1.pt"),
                ],
                {"type": "int", "value": 3},
                None,
            ],
            "input_kwargs": {"bias": msprobe_tensor_entry(data_folder, f"{api}.input.bias.pt")},
            "output": [msprobe_tensor_entry(data_folder, f"{api}.output.0.pt")],
        },
        "Functional.linear.5.backward": {
            "input": [msprobe_tensor_entry(data_folder, "Functional.linear.5.backward.input.0.pt")],
            "output": [msprobe_tensor_entry(data_folder, "Functional.linear.5.backward.output.0.pt")],
        },
        "Module.layer1.Linear.parameters_grad": {
            "weight": [msprobe_tensor_entry(data_folder, "Module.layer1.Linear.parameters_grad.weight.0.pt")],
        },
    }
    write_json(
        folder / "dump.json",
        {
            "task": "tensor" if with_data else "statistics",
            "level": "mix",
            "framework": "pytorch",
            "dump_data_dir": str(folder / "dump_tensor_data") if with_data else None,
            "data": data,
        },
    )
