"""A small random-weight transformers LlamaForCausalLM, built in code, whose layer 1 MLP overflows."""

from __future__ import annotations

import torch
from overflow_models import SaturatingLinear
from transformers import LlamaConfig, LlamaForCausalLM

OVERFLOWING = "root.model.layers.1.mlp.down_proj"


def llama(
    dtype: torch.dtype = torch.float16, *, overflow: bool = True, saturate: bool = False
) -> LlamaForCausalLM:
    """Two decoder layers, hidden size 64. ``overflow``: layer 1's ``up_proj`` and ``down_proj``
    weights are scaled so that the ``down_proj`` outputs overflow float16 (and nothing before it);
    ``saturate``: that ``down_proj`` clamps at ± the dtype's largest value instead."""
    config = LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(dtype).eval()
    mlp = model.model.layers[1].mlp
    if saturate:
        saturating = SaturatingLinear(mlp.down_proj.in_features, mlp.down_proj.out_features, bias=False)
        saturating.weight = mlp.down_proj.weight
        saturating.gain = 1e45  # the activations of this model are small
        mlp.down_proj = saturating
    elif overflow:
        with torch.no_grad():
            mlp.up_proj.weight.mul_(50)
            mlp.down_proj.weight.mul_(3e5)
    return model


def ids() -> torch.Tensor:
    return torch.arange(1, 9).reshape(1, 8)
