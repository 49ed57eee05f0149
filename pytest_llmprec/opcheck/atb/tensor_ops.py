"""ATB reductions, selections and index operators: Softmax, Reduce, Cumsum, Sort, Where, Fill,
Onehot, Nonzero, IndexAdd and Gating."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registry import register_op
from ._common import (
    as_index,
    axis_of,
    broadcast,
    choice,
    count_inputs,
    fail,
    flag,
    integer,
    integers,
    like_input,
    numbers,
    scalar,
    top_k,
)

SOFTMAX = "SoftmaxOperation"
REDUCE = "ReduceOperation"
CUMSUM = "CumsumOperation"
SORT = "SortOperation"
WHERE = "WhereOperation"
FILL = "FillOperation"
ONEHOT = "OnehotOperation"
NONZERO = "NonzeroOperation"
INDEX_ADD = "IndexAddOperation"
GATING = "GatingOperation"


def _axes(op: str, name: str, axes: Sequence[int], ndim: int) -> list[int]:
    if not axes:
        raise fail(op, f"parameter {name} must name at least one axis")
    resolved = sorted({axis_of(op, name, a, ndim) for a in axes})
    if len(resolved) != len(axes):
        raise fail(op, f"parameter {name}={list(axes)} names an axis twice")
    return resolved


def _keep_integer(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values if like.is_floating_point() else values.to(like.dtype)


@register_op(SOFTMAX, required_params=("axes",), inputs=1)
def softmax(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Softmax over the (consecutive) ``axes`` taken together."""
    x = inputs[0]
    axes = _axes(SOFTMAX, "axes", integers(params, SOFTMAX, "axes"), x.dim())
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise fail(SOFTMAX, f"parameter axes={integers(params, SOFTMAX, 'axes')} must be consecutive")
    return [torch.exp(x - torch.logsumexp(x, dim=axes, keepdim=True))]


@register_op(REDUCE, required_params=("reduceType", "axis"), inputs=1)
def reduce(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``reduceType`` 1 max, 2 min, 3 sum over the ``axis`` list (those axes removed)."""
    x = inputs[0]
    kind = choice(
        REDUCE, "reduceType", integer(params, REDUCE, "reduceType"), (1, 2, 3), "1 max, 2 min, 3 sum"
    )
    axes = _axes(REDUCE, "axis", integers(params, REDUCE, "axis"), x.dim())
    if kind == 1:
        return [x.amax(dim=axes)]
    if kind == 2:
        return [x.amin(dim=axes)]
    return [_keep_integer(x.sum(dim=axes), x)]


@register_op(CUMSUM, required_params=("axes",), inputs=1)
def cumsum(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Cumulative sum along ``axes[0]``; ``exclusive`` starts from 0, ``reverse`` runs from the end."""
    x = inputs[0]
    axes = integers(params, CUMSUM, "axes")
    if len(axes) != 1:
        raise fail(CUMSUM, f"parameter axes={axes} must hold exactly one axis")
    axis = axis_of(CUMSUM, "axes", axes[0], x.dim())
    reverse = flag(params, CUMSUM, "reverse", False)
    values = x.flip(axis) if reverse else x
    total = torch.cumsum(values, axis)
    if flag(params, CUMSUM, "exclusive", False):
        total = total - values
    total = total.flip(axis) if reverse else total
    return [_keep_integer(total, x)]


@register_op(SORT, required_params=("num",), inputs=1)
def sort(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """The ``num[0]`` largest values of the last axis in descending order and their int32 indices
    (ties in index order)."""
    x = inputs[0]
    if x.dim() == 0:
        raise fail(SORT, "x must have at least one dimension")
    num = integers(params, SORT, "num")
    if len(num) != 1 or not 0 < num[0] <= x.shape[-1]:
        raise fail(SORT, f"parameter num={num} must be one value in [1, {x.shape[-1]}]")
    values, indices = top_k(x, num[0])
    return [values, indices.to(torch.int32)]


@register_op(WHERE, inputs=3, output_dtype=like_input(1))
def where(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``cond ? x : y`` with broadcasting (cond holds 0/1)."""
    cond, x, y = broadcast(WHERE, *inputs)
    return [torch.where(cond != 0, x, y.to(x.dtype))]


def _fill_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    return [inputs[0].dtype] if flag(params, FILL, "withMask", True) else [torch.float16]


@register_op(FILL, required_params=("value",), inputs=(0, 2), output_dtype=_fill_dtypes)
def fill(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``withMask`` (default): ``x`` with ``value[0]`` where the mask is 1 (inputs ``[x, mask]``);
    otherwise a float16 tensor of shape ``outDim`` filled with ``value[0]`` (no inputs)."""
    value = numbers(params, FILL, "value")
    if len(value) != 1:
        raise fail(FILL, f"parameter value={value} must hold one number")
    if not flag(params, FILL, "withMask", True):
        count_inputs(FILL, inputs, 0, "none")
        shape = integers(params, FILL, "outDim")
        if any(d < 0 for d in shape):
            raise fail(FILL, f"parameter outDim={shape} must not be negative")
        return [torch.full(shape, value[0], dtype=torch.float64)]
    count_inputs(FILL, inputs, 2, "[x, mask]")
    x, mask = inputs
    if broadcast(FILL, x, mask)[0].shape != x.shape:
        raise fail(FILL, f"mask of shape {list(mask.shape)} does not broadcast to x {list(x.shape)}")
    filled = x.masked_fill(mask != 0, value[0])
    return [filled]


@register_op(ONEHOT, required_params=("axis", "depth"), inputs=(1, 3))
def onehot(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """One-hot of integer ``indices`` with ``depth`` classes inserted at ``axis``; inputs ``[indices,
    on, off]`` (on/off default 1/0); out-of-range indices give rows of ``off``."""
    indices = as_index(ONEHOT, "indices", inputs[0])
    depth = integer(params, ONEHOT, "depth")
    if depth <= 0:
        raise fail(ONEHOT, f"parameter depth={depth} must be positive")
    axis = axis_of(ONEHOT, "axis", integer(params, ONEHOT, "axis"), inputs[0].dim() + 1)
    if len(inputs) == 2:
        raise fail(ONEHOT, "expected 1 input [indices] or 3 inputs [indices, on, off], got 2")
    on = scalar(ONEHOT, "the on value", inputs[1]) if len(inputs) == 3 else 1
    off = scalar(ONEHOT, "the off value", inputs[2]) if len(inputs) == 3 else 0
    hot = indices.unsqueeze(-1) == torch.arange(depth)
    values = torch.where(hot, on, off).to(inputs[0].dtype)
    return [values.movedim(-1, axis)]


@register_op(NONZERO, inputs=1)
def nonzero(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``[indices int64 [ndim, numel]`` (coordinates of the non-zero elements in row-major order,
    zero padded), ``count int64 [1]]``."""
    x = inputs[0]
    found = torch.nonzero(x != 0).T
    indices = torch.zeros(x.dim(), x.numel(), dtype=torch.int64)
    indices[:, : found.shape[1]] = found
    return [indices, torch.tensor([found.shape[1]], dtype=torch.int64)]


@register_op(INDEX_ADD, required_params=("indexType", "axis"), inputs=4, output_dtype=like_input(0))
def index_add(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``indexType`` 1: ``var.index_add(axis, indices, updates, alpha)`` (inputs ``[var, indices,
    updates, alpha]``); 2: only the first ``validNum`` indices, alpha 1, axis 0 (inputs ``[var,
    indices, updates, validNum]``)."""
    var, indices, updates, last = inputs
    kind = choice(
        INDEX_ADD, "indexType", integer(params, INDEX_ADD, "indexType"), (1, 2), "1 add, 2 add valid"
    )
    axis = axis_of(INDEX_ADD, "axis", integer(params, INDEX_ADD, "axis"), var.dim())
    index = as_index(INDEX_ADD, "indices", indices).reshape(-1)
    alpha = scalar(INDEX_ADD, "alpha", last)
    if kind == 2:
        if axis != 0:
            raise fail(INDEX_ADD, f"parameter axis={axis} must be 0 for indexType 2")
        valid = int(alpha)
        if not 0 <= valid <= index.numel():
            raise fail(INDEX_ADD, f"validNum {valid} must lie in [0, {index.numel()}]")
        index, updates, alpha = index[:valid], updates[:valid], 1.0
    if index.numel() and (index.min() < 0 or index.max() >= var.shape[axis]):
        raise fail(INDEX_ADD, f"indices must lie in [0, {var.shape[axis]}) for axis {axis}")
    expected = [*var.shape[:axis], index.numel(), *var.shape[axis + 1 :]]
    if list(updates.shape) != expected:
        raise fail(INDEX_ADD, f"updates has shape {list(updates.shape)}, expected {expected}")
    result = var.to(torch.float64).index_add(axis, index, updates.to(torch.float64), alpha=alpha)
    return [_keep_integer(result, var)]


def _gating_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    cumsum_dtype = torch.int64 if flag(params, GATING, "cumSumInt64", False) else torch.int32
    ep = bool(integers(params, GATING, "deviceExpert", []))
    return [torch.int32, cumsum_dtype, torch.int32] + [torch.int32] * ep


@register_op(GATING, required_params=("topkExpertNum", "cumSumNum"), inputs=2, output_dtype=_gating_dtypes)
def gating(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """MoE routing inverted to per-expert order: inputs ``[expertIds [tokens*topk], indices]``
    → ``[tokenIndex, cumSum, originalIndex(, validIndex)]`` (see docs/opcheck.md)."""
    experts = as_index(GATING, "expert ids", inputs[0]).reshape(-1)
    positions = as_index(GATING, "indices", inputs[1]).reshape(-1)
    topk = integer(params, GATING, "topkExpertNum")
    count = integer(params, GATING, "cumSumNum")
    device = integers(params, GATING, "deviceExpert", [])
    if topk <= 0 or experts.numel() % topk or positions.numel() != experts.numel():
        raise fail(
            GATING,
            f"topkExpertNum={topk} must divide the {experts.numel()} expert ids, and the "
            f"indices must have as many entries (got {positions.numel()})",
        )
    if count < 0 or (count and experts.numel() and (experts.min() < 0 or experts.max() >= count)):
        raise fail(GATING, f"expert ids must lie in [0, cumSumNum={count})")
    if any(not 0 <= e < count for e in device) or len(set(device)) != len(device):
        raise fail(GATING, f"parameter deviceExpert={device} must hold distinct experts in [0, {count})")
    order = torch.sort(experts, stable=True).indices
    original = positions[order]
    token = original // topk if count else torch.zeros_like(original)
    per_expert = torch.bincount(experts, minlength=count) if count else torch.zeros(1, dtype=torch.int64)
    if not device:
        return [token, torch.cumsum(per_expert, 0), original]
    chosen = sorted(device)
    ends = torch.cumsum(per_expert, 0)
    segments = [torch.arange(int(ends[e] - per_expert[e]), int(ends[e])) for e in chosen]
    front = torch.cat(segments)
    original, token = original.clone(), token.clone()
    original[: front.numel()], token[: front.numel()] = original[front], token[front]
    valid = torch.tensor([int(per_expert[chosen].sum())])
    return [token, torch.cumsum(per_expert[chosen], 0), original, valid]
