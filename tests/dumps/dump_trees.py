"""Builders of dump trees in the exact layouts of msit, msprobe and TorchAir (real files, tiny tensors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


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
