"""Models for the overflow tests: the tiny Llama-shaped model of ``examples/`` with one chosen layer
made to overflow, and small modules with unusual outputs."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import tiny_llm
import torch
from torch import nn

OVERFLOWING = "root.model.layers.1.mlp.down_proj"
BEFORE_IT = "root.model.layers.1.mlp.up_proj"  # the last module called before it (execution order)


def overflowing_model(dtype: torch.dtype = torch.float16, scale: float = 1e5) -> nn.Module:
    """The tiny model whose layer 1 ``down_proj`` outputs overflow float16 (its weight is scaled)."""
    model = tiny_llm.build_model(seed=0, dtype=dtype)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.mul_(scale)
    return model


class SaturatingLinear(nn.Linear):
    """A linear layer with a huge gain whose results are clamped to ± the largest finite value of
    its dtype, as Ascend's saturation mode does with results that overflow."""

    gain = 1e39

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = torch.finfo(x.dtype).max
        wide = nn.functional.linear(x.double(), self.weight.double()) * self.gain
        return wide.clamp(-top, top).to(x.dtype)


def saturating_model() -> nn.Module:
    """A bfloat16 tiny model whose layer 1 ``down_proj`` saturates."""
    model = tiny_llm.build_model(seed=0, dtype=torch.bfloat16)
    mlp = model.model.layers[1].mlp
    saturating = SaturatingLinear(mlp.down_proj.in_features, mlp.down_proj.out_features, bias=False)
    saturating.weight = mlp.down_proj.weight
    mlp.down_proj = saturating
    return model


def prompt() -> torch.Tensor:
    return tiny_llm.sample_prompt(length=6)


@dataclasses.dataclass
class Pair:
    first: torch.Tensor
    second: object


class Returns(nn.Module):
    """Returns whatever ``make(x)`` builds: for outputs of every shape."""

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make

    def forward(self, x: torch.Tensor):
        return self.make(x)


class Odd(nn.Module):
    """Children with unusual outputs, then one that overflows."""

    def __init__(self) -> None:
        super().__init__()
        self.none = Returns(lambda x: None)
        self.number = Returns(lambda x: 3)
        self.text = Returns(lambda x: "text")
        self.obj = Returns(lambda x: object())
        self.empty = Returns(lambda x: x[:0])
        self.complex = Returns(lambda x: torch.complex(x, x))
        self.sparse = Returns(lambda x: x.to_sparse())
        self.dataclass = Returns(lambda x: Pair(x * 2, "note"))
        self.mapping = Returns(lambda x: OrderedDict(logits=x + 1, cache=object()))
        self.nested = Returns(lambda x: (x, [x, {"deep": (x,)}]))
        self.boom = Returns(lambda x: x * 1e39)  # beyond float32

    def forward(self, x: torch.Tensor):
        for child in (self.none, self.number, self.text, self.obj, self.empty, self.complex, self.sparse):
            child(x)
        self.dataclass(x)
        self.mapping(x)
        self.nested(x)
        return self.boom(x)
