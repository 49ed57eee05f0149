"""ATB collective operators, recomputed from the inputs of every rank.

``inputs`` is the concatenation of each rank's input list for ranks ``0 .. rankSize - 1`` in rank
order (rank 0's inputs first); the result is the output of rank ``params["rank"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registry import register_op
from ._common import ACL_UNDEFINED, acl_dtype, choice, fail, flag, integer
from .linear import add_bias, dequantise, matmul

ALL_GATHER = "AllGatherOperation"
ALL_REDUCE = "AllReduceOperation"
BROADCAST = "BroadcastOperation"
LINEAR_PARALLEL = "LinearParallelOperation"

_RANK_PARAMS = ("rank", "rankRoot", "rankSize")


def per_rank(
    op: str, inputs: Sequence[torch.Tensor], params: Mapping[str, Any], count: int | None = None
) -> tuple[list[list[torch.Tensor]], int]:
    """The inputs split into one list per rank (``count`` each, or an equal share), and ``rank``."""
    size = integer(params, op, "rankSize", len(inputs) if count is None else len(inputs) // max(count, 1))
    rank = integer(params, op, "rank", 0)
    if size <= 0 or not 0 <= rank < size:
        raise fail(op, f"parameters rank={rank} and rankSize={size} must satisfy 0 <= rank < rankSize")
    share = len(inputs) // size if count is None else count
    if share == 0 or share * size != len(inputs):
        expected = f"{count} inputs for each of {size} ranks" if count else f"the inputs of {size} ranks"
        raise fail(op, f"expected {expected} in rank order, got {len(inputs)} inputs")
    return [list(inputs[r * share : (r + 1) * share]) for r in range(size)], rank


def _same_shapes(op: str, tensors: Sequence[torch.Tensor]) -> None:
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise fail(op, f"the ranks' inputs have different shapes {sorted(list(s) for s in shapes)}")


@register_op(ALL_GATHER, required_params=_RANK_PARAMS, inputs=(1, None))
def all_gather(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """The ranks' inputs stacked along a new first axis ``[rankSize, ...]``."""
    ranks, _ = per_rank(ALL_GATHER, inputs, params, 1)
    tensors = [r[0] for r in ranks]
    _same_shapes(ALL_GATHER, tensors)
    return [torch.stack(tensors)]


_REDUCTIONS = {"sum": torch.sum, "prod": torch.prod, "max": torch.amax, "min": torch.amin}


@register_op(ALL_REDUCE, required_params=("allReduceType", *_RANK_PARAMS), inputs=(1, None))
def all_reduce(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """The element-wise ``allReduceType`` ("sum", "prod", "max", "min") of the ranks' inputs."""
    kind = params["allReduceType"]
    if kind not in _REDUCTIONS:
        raise fail(ALL_REDUCE, f"parameter allReduceType={kind!r} is not one of {sorted(_REDUCTIONS)}")
    choice(
        ALL_REDUCE,
        "quantType",
        integer(params, ALL_REDUCE, "quantType", 0),
        (0,),
        "quantised all-reduce is not supported",
    )
    ranks, _ = per_rank(ALL_REDUCE, inputs, params, 1)
    tensors = [r[0] for r in ranks]
    _same_shapes(ALL_REDUCE, tensors)
    stacked = torch.stack(tensors)
    reduced = _REDUCTIONS[kind](stacked, dim=0)
    return [reduced if reduced.is_floating_point() else reduced.to(tensors[0].dtype)]


@register_op(BROADCAST, required_params=("rankRoot",), inputs=(1, None))
def broadcast(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """The input of rank ``rankRoot``."""
    ranks, _ = per_rank(BROADCAST, inputs, params, 1)
    root = integer(params, BROADCAST, "rankRoot")
    if not 0 <= root < len(ranks):
        raise fail(BROADCAST, f"parameter rankRoot={root} is not one of the {len(ranks)} ranks given")
    return [ranks[root][0]]


# ---------------------------------------------------------------- LinearParallelOperation

_ALL_REDUCE, _REDUCE_SCATTER, _ALL_GATHER, _PURE = 0, 1, 2, 3
_UNQUANT = -1


def _parallel_layout(params: Mapping[str, Any]) -> tuple[int, int, list[str]]:
    op = LINEAR_PARALLEL
    kind = choice(
        op,
        "type",
        integer(params, op, "type", _ALL_REDUCE),
        (0, 1, 2, 3),
        "0 linear+all-reduce, 1 linear+reduce-scatter, 2 all-gather+linear, 3 linear (MoE types are "
        "not supported)",
    )
    quant = choice(
        op,
        "quantType",
        integer(params, op, "quantType", _UNQUANT),
        (-1, 0, 1),
        "-1 none, 0 per tensor, 1 per channel (per-group and per-token are not supported)",
    )
    names = ["x", "weight"] + ["bias", "deqScale"] * (quant != _UNQUANT)
    return kind, quant, names + ["residual"] * flag(params, op, "hasResidual", False)


def _parallel_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    kind, quant, _ = _parallel_layout(params)
    x_dtype = inputs[0].dtype
    out = x_dtype
    if quant != _UNQUANT:
        code = integer(params, LINEAR_PARALLEL, "outDataType", ACL_UNDEFINED)
        out = torch.float16 if code == ACL_UNDEFINED else acl_dtype(LINEAR_PARALLEL, "outDataType", code)
    keep = kind == _ALL_GATHER and flag(params, LINEAR_PARALLEL, "keepIntermediate", False)
    return [out, x_dtype] if keep else [out]


def _rank_linear(
    tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any], x: torch.Tensor
) -> torch.Tensor:
    op = LINEAR_PARALLEL
    weight = tensors["weight"]
    if x.is_floating_point() and not weight.is_floating_point():
        raise fail(
            op, "weight-only int8 quantisation (float x, int8 weight) is not supported by the reference"
        )
    result = matmul(op, x, weight, False, flag(params, op, "transWeight", True))
    if "deqScale" in tensors:
        if tensors["bias"].numel():
            result = add_bias(op, result, tensors["bias"])
        result = dequantise(op, result, tensors["deqScale"])
    return result


@register_op(
    LINEAR_PARALLEL,
    required_params=("backend", *_RANK_PARAMS),
    inputs=(2, None),
    output_dtype=_parallel_dtypes,
)
def linear_parallel(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Tensor-parallel linear; each rank gives ``[x, weight, (bias, deqScale), (residual)]``.
    type 0: sum over ranks of ``x_r @ W_r``; 1: that sum split along rows, chunk ``rank``;
    2: ``concat(x_r) @ W_rank`` (plus the gathered x with keepIntermediate); 3: ``x @ W``; the
    residual of rank ``rank`` is added last."""
    kind, _, names = _parallel_layout(params)
    ranks, rank = per_rank(LINEAR_PARALLEL, inputs, params, len(names))
    mine = dict(zip(names, ranks[rank], strict=True))
    gathered = None
    if kind == _ALL_GATHER:
        gathered = torch.cat([r[0] for r in ranks], 0)
        result = _rank_linear(mine, params, gathered)
    elif kind == _PURE:
        result = _rank_linear(mine, params, mine["x"])
    else:
        partials = [_rank_linear(dict(zip(names, r, strict=True)), params, r[0]) for r in ranks]
        _same_shapes(LINEAR_PARALLEL, partials)
        result = torch.stack(partials).sum(0)
        if kind == _REDUCE_SCATTER:
            if result.shape[0] % len(ranks):
                raise fail(LINEAR_PARALLEL, f"{result.shape[0]} rows do not split into {len(ranks)} ranks")
            result = result.chunk(len(ranks), 0)[rank]
    if "residual" in mine:
        result = add_bias(LINEAR_PARALLEL, result, mine["residual"], "residual")
    if gathered is not None and flag(params, LINEAR_PARALLEL, "keepIntermediate", False):
        return [result, gathered]
    return [result]
