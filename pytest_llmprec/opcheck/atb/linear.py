"""ATB LinearOperation and LinearSparseOperation, and the matmul both share with LinearParallel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...formats.device_layouts import nz_to_nd
from ..registry import register_op
from ._common import ACL_UNDEFINED, acl_dtype, choice, count_inputs, deq_scale, fail, flag, integer

LINEAR = "LinearOperation"
LINEAR_SPARSE = "LinearSparseOperation"

_PER_TOKEN = 2


def fold_weight(op: str, weight: torch.Tensor) -> torch.Tensor:
    """A 4-D FRACTAL_NZ weight ``[b, c1, rows, c0]`` as ND ``[rows, c1 * c0]`` (``[b, ...]`` for b > 1).

    The padding rows and columns stay; other ranks are returned unchanged.
    """
    if weight.dim() != 4:
        return weight
    batch, c1, rows, c0 = weight.shape
    try:
        matrix = nz_to_nd(weight, (batch, rows, c1 * c0))
    except ValueError as exc:
        raise fail(op, f"the 4-D (FRACTAL_NZ) weight cannot be folded: {exc}") from None
    return matrix[0] if batch == 1 else matrix


def _transposed(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.transpose(-1, -2)


def matmul(
    op: str, x: torch.Tensor, weight: torch.Tensor, transpose_a: bool, transpose_b: bool
) -> torch.Tensor:
    """``op(x) @ op(weight)`` in float64 (exact for int8 operands: their int32 sums fit in float64).

    A folded NZ weight whose contraction axis is longer than x's (zero padding) is cropped.
    """
    if x.dim() < 2 or weight.dim() < 2:
        raise fail(op, f"x {list(x.shape)} and weight {list(weight.shape)} must have at least 2 dimensions")
    if x.is_floating_point() != weight.is_floating_point():
        raise fail(op, f"x ({x.dtype}) and weight ({weight.dtype}) must both be floating or both be integer")
    a = _transposed(x) if transpose_a else x
    b = fold_weight(op, weight)
    b = _transposed(b) if transpose_b else b
    k = a.shape[-1]
    if b.shape[-2] > k and weight.dim() == 4:
        b = b[..., :k, :]
    if b.shape[-2] != k:
        raise fail(
            op,
            f"x {list(x.shape)} (transposeA={transpose_a}) and weight {list(weight.shape)} "
            f"(transposeB={transpose_b}) have different contraction sizes {k} and {b.shape[-2]}",
        )
    try:
        return torch.matmul(a.to(torch.float64), b.to(torch.float64))
    except RuntimeError as exc:
        raise fail(
            op, f"x {list(x.shape)} and weight {list(weight.shape)} cannot be multiplied: {exc}"
        ) from None


def add_bias(op: str, values: torch.Tensor, bias: torch.Tensor, what: str = "bias") -> torch.Tensor:
    """``values + bias`` where the bias broadcasts onto the output."""
    bias = bias.to(torch.float64)
    try:
        total = values + bias
    except RuntimeError:
        total = None
    if total is None or total.shape != values.shape:
        raise fail(op, f"{what} of shape {list(bias.shape)} does not fit the output {list(values.shape)}")
    return total


def dequantise(op: str, values: torch.Tensor, scale: torch.Tensor, what: str = "deqScale") -> torch.Tensor:
    """``values * scale`` with ``scale`` per tensor or per output column (int64-encoded or float)."""
    factors = deq_scale(scale).reshape(-1)
    columns = values.shape[-1]
    if factors.numel() not in (1, columns):
        raise fail(
            op, f"{what} has {factors.numel()} values, expected 1 or {columns} (one per output column)"
        )
    return values * factors


def _quantised(inputs: Sequence[torch.Tensor]) -> bool:
    return not inputs[0].is_floating_point()


def _has_bias(op: str, inputs: Sequence[torch.Tensor], params: Mapping[str, Any], extra: int) -> bool:
    """Whether a bias input is present: from ``hasBias`` when given, else from the input count."""
    if "hasBias" in params:
        return flag(params, op, "hasBias")
    return len(inputs) > 2 + extra


def _linear_layout(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> tuple[bool, bool, list[str]]:
    quant = _quantised(inputs)
    per_token = quant and integer(params, LINEAR, "quantMode", 0) == _PER_TOKEN
    accum = flag(params, LINEAR, "enAccum", False)
    extra = (1 + per_token) if quant else int(accum)
    bias = _has_bias(LINEAR, inputs, params, extra)
    names = ["x", "weight"] + ["bias"] * bias + ["accum"] * (accum and not quant)
    names += ["deqScale"] * quant + ["perTokenScale"] * per_token
    return quant, per_token, names


def _out_dtype(op: str, params: Mapping[str, Any], x_dtype: torch.dtype, quant: bool) -> torch.dtype:
    code = integer(params, op, "outDataType", ACL_UNDEFINED)
    if code == ACL_UNDEFINED:
        return torch.float16 if quant else x_dtype
    return acl_dtype(op, "outDataType", choice(op, "outDataType", code, (1, 27), "1 float16, 27 bfloat16"))


def _linear_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    return [_out_dtype(LINEAR, params, inputs[0].dtype, _quantised(inputs))]


@register_op(LINEAR, inputs=(2, 5), output_dtype=_linear_dtypes)
def linear(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``x @ W`` (transposeA, transposeB), + bias or accumulator; int8 x and W: ``(x @ W + bias) * deqScale``
    (``* perTokenScale`` with quantMode 2), cast to ``outDataType``."""
    if integer(params, LINEAR, "matmulType", 0) != 0:
        raise fail(LINEAR, "parameter matmulType=1 (einsum) is not supported by the reference")
    quant, per_token, names = _linear_layout(inputs, params)
    count_inputs(LINEAR, inputs, len(names), "[" + ", ".join(names) + "]")
    tensors = dict(zip(names, inputs, strict=True))
    result = matmul(
        LINEAR,
        tensors["x"],
        tensors["weight"],
        flag(params, LINEAR, "transposeA", False),
        flag(params, LINEAR, "transposeB", True),
    )
    for addend in ("bias", "accum"):
        if addend in tensors:
            result = add_bias(LINEAR, result, tensors[addend], addend)
    if quant:
        result = dequantise(LINEAR, result, tensors["deqScale"])
    if per_token:
        token_scale = tensors["perTokenScale"].to(torch.float64).reshape(-1)
        if token_scale.numel() != result.shape[-2]:
            raise fail(LINEAR, f"perTokenScale has {token_scale.numel()} values, expected {result.shape[-2]}")
        result = result * token_scale.unsqueeze(-1)
    return [result]


@register_op(LINEAR_SPARSE, inputs=(4, 5), output_dtype=lambda inputs, params: [torch.float16])
def linear_sparse(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Sparse int8 linear ``(x @ W^T + bias) * deqScale`` → float16, inputs
    ``[x, weight, bias, deqScale(, compressIdx)]``; only an uncompressed (dense) weight can be checked."""
    x, weight, bias, scale = inputs[:4]
    transpose_b = flag(params, LINEAR_SPARSE, "transposeB", True)
    if x.dim() < 2:
        raise fail(LINEAR_SPARSE, f"x must have at least 2 dimensions, got {list(x.shape)}")
    dense = fold_weight(LINEAR_SPARSE, weight)
    k_axis = -1 if transpose_b else -2
    k = x.shape[-2] if flag(params, LINEAR_SPARSE, "transposeA", False) else x.shape[-1]
    if dense.dim() < 2 or dense.shape[k_axis] != k:
        raise fail(
            LINEAR_SPARSE,
            f"weight of shape {list(weight.shape)} is compressed (tilingK/tilingN); the reference can only "
            f"check a dense weight with {k} columns",
        )
    result = matmul(LINEAR_SPARSE, x, weight, flag(params, LINEAR_SPARSE, "transposeA", False), transpose_b)
    result = add_bias(LINEAR_SPARSE, result, bias)
    return [dequantise(LINEAR_SPARSE, result, scale)]
