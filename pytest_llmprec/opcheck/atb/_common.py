"""Helpers shared by the ATB operator references: parameter reading, ACL dtype codes, quantisation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..registry import OpcheckError

_MISSING = object()

ACL_DTYPES: dict[int, torch.dtype] = {
    0: torch.float32,
    1: torch.float16,
    2: torch.int8,
    3: torch.int32,
    4: torch.uint8,
    6: torch.int16,
    7: torch.uint16,
    8: torch.uint32,
    9: torch.int64,
    10: torch.uint64,
    11: torch.float64,
    12: torch.bool,
    27: torch.bfloat16,
}
"""``aclDataType`` codes (as written in ``op_param.json``) and their torch dtypes."""

ACL_UNDEFINED = -1
INT8_MIN, INT8_MAX = -128, 127
FP16_MAX = 65504.0


def fail(op: str, message: str) -> OpcheckError:
    """The error for a wrong parameter or input of ``op``: ``raise fail(op, "...")``."""
    return OpcheckError(f"{op}: {message}")


def section(params: Mapping[str, Any], op: str, name: str) -> Mapping[str, Any]:
    """A nested parameter object such as ``normParam`` (``{}`` when absent or null)."""
    value = params.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(op, f"parameter {name} must be an object, got {value!r}")
    return value


def _lookup(params: Mapping[str, Any], op: str, name: str, default: Any) -> Any:
    """The value of ``name``; a dotted name (``normParam.epsilon``) walks nested objects."""
    *parents, leaf = name.split(".")
    for depth, parent in enumerate(parents):
        params = section(params, op, ".".join([*parents[:depth], parent]))
    value = params.get(leaf, default)
    if value is _MISSING:
        raise fail(op, f"missing required parameter {name}")
    return value


def integer(params: Mapping[str, Any], op: str, name: str, default: Any = _MISSING) -> int:
    """An integer parameter (``true``/``false`` are not integers); ``default`` when absent."""
    value = _lookup(params, op, name, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail(op, f"parameter {name} must be an integer, got {value!r}")
    return int(value)


def number(params: Mapping[str, Any], op: str, name: str, default: Any = _MISSING) -> float:
    """A real parameter; ``default`` when absent."""
    value = _lookup(params, op, name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise fail(op, f"parameter {name} must be a number, got {value!r}")
    return float(value)


def flag(params: Mapping[str, Any], op: str, name: str, default: bool = False) -> bool:
    """A boolean parameter (``0``/``1`` accepted, as some dumps write them)."""
    value = _lookup(params, op, name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise fail(op, f"parameter {name} must be true or false, got {value!r}")


def integers(params: Mapping[str, Any], op: str, name: str, default: Any = _MISSING) -> list[int]:
    """A list-of-integers parameter."""
    value = _lookup(params, op, name, default)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        raise fail(op, f"parameter {name} must be a list of integers, got {value!r}")
    return [int(v) for v in value]


def numbers(params: Mapping[str, Any], op: str, name: str, default: Any = _MISSING) -> list[float]:
    """A list-of-numbers parameter."""
    value = _lookup(params, op, name, default)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise fail(op, f"parameter {name} must be a list of numbers, got {value!r}")
    return [float(v) for v in value]


def choice(op: str, name: str, value: int, allowed: Sequence[int], meaning: str = "") -> int:
    """``value`` when it is one of ``allowed``, else an error listing them."""
    if value not in allowed:
        hint = f" ({meaning})" if meaning else ""
        raise fail(op, f"parameter {name}={value!r} is not supported; expected one of {list(allowed)}{hint}")
    return value


def acl_dtype(op: str, name: str, code: int) -> torch.dtype:
    """The torch dtype of an ``aclDataType`` code."""
    found = ACL_DTYPES.get(code)
    if found is None:
        raise fail(op, f"parameter {name}={code} is not a known aclDataType code ({sorted(ACL_DTYPES)})")
    return found


def axis_of(op: str, name: str, axis: int, ndim: int) -> int:
    """``axis`` made non-negative for a tensor of ``ndim`` dimensions."""
    if not -ndim <= axis < ndim:
        raise fail(op, f"parameter {name}={axis} is out of range for a {ndim}-D input")
    return axis % ndim


def count_inputs(op: str, inputs: Sequence[torch.Tensor], expected: int, layout: str) -> None:
    """Check that ``inputs`` holds ``expected`` tensors; ``layout`` names them for the message."""
    if len(inputs) != expected:
        raise fail(op, f"expected {expected} inputs ({layout}) for these parameters, got {len(inputs)}")


def broadcast(op: str, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """``tensors`` broadcast to one shape, or an error naming the shapes."""
    try:
        return list(torch.broadcast_tensors(*tensors))
    except RuntimeError:
        shapes = ", ".join(str(list(t.shape)) for t in tensors)
        raise fail(op, f"input shapes {shapes} cannot be broadcast together") from None


def scalar(op: str, what: str, tensor: torch.Tensor) -> float:
    """The single value of a one-element tensor."""
    if tensor.numel() != 1:
        raise fail(op, f"{what} must hold one value, got shape {list(tensor.shape)}")
    return float(tensor.reshape(-1)[0])


def as_index(op: str, what: str, tensor: torch.Tensor) -> torch.Tensor:
    """An integer tensor as int64 indices (floating index tensors are refused)."""
    if tensor.is_floating_point() or tensor.is_complex():
        raise fail(op, f"{what} must be an integer tensor, got {tensor.dtype}")
    return tensor.to(torch.int64)


def deq_scale(tensor: torch.Tensor) -> torch.Tensor:
    """De-quantisation scales as float64.

    ATB passes them either as floats, or as int64 (or uint64/int32) whose low 32 bits are the
    bits of a float32 scale; the integers are reinterpreted bit for bit.
    """
    if tensor.is_floating_point():
        return tensor.to(torch.float64)
    bits = tensor.detach().cpu().reshape(-1).numpy().astype(np.int64) & 0xFFFFFFFF
    values = bits.astype(np.uint32).view(np.float32).astype(np.float64)
    return torch.from_numpy(values).reshape(tensor.shape)


def to_int8(values: torch.Tensor) -> torch.Tensor:
    """Round half to even and saturate to int8 (NaN becomes 0)."""
    rounded = torch.nan_to_num(torch.round(values), nan=0.0)
    return rounded.clamp(INT8_MIN, INT8_MAX).to(torch.int8)


def dynamic_quant(values: torch.Tensor, asymmetric: bool) -> list[torch.Tensor]:
    """Per-row (last axis) dynamic int8 quantisation: ``[quantised, scale(, offset)]``.

    Symmetric: ``scale = max|x| / 127``, ``q = round(x / scale)``. Asymmetric:
    ``scale = (max - min) / 255``, ``offset = -(max + min) / (2 scale)``,
    ``q = round(x / scale + offset)``. A row whose scale is 0 quantises to 0.
    """
    if asymmetric:
        high = values.amax(dim=-1, keepdim=True)
        low = values.amin(dim=-1, keepdim=True)
        scale = (high - low) / 255.0
        safe = torch.where(scale == 0, torch.ones_like(scale), scale)
        offset = torch.where(scale == 0, torch.zeros_like(scale), -(high + low) / (2.0 * safe))
        quantised = to_int8(torch.where(scale == 0, torch.zeros_like(values), values / safe + offset))
        return [quantised, scale.squeeze(-1), offset.squeeze(-1)]
    peak = values.abs().amax(dim=-1, keepdim=True)
    safe = torch.where(peak == 0, torch.ones_like(peak), peak)
    quantised = to_int8(values * 127.0 / safe)
    return [quantised, (peak / 127.0).squeeze(-1)]


def like_input(index: int = 0):
    """An ``output_dtype`` rule: every output takes the dtype of input ``index``."""

    def rule(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
        return [inputs[index].dtype]

    return rule


def prod(values: Sequence[int]) -> int:
    return math.prod(int(v) for v in values)


def top_k(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest values of the last axis, descending, ties in index order, and their indices.

    Equal to the first ``k`` of a stable descending sort, at the cost of ``topk`` plus a sort of
    ``k`` candidates (NaN rows fall back to the full sort).
    """
    largest = torch.topk(x, k, dim=-1).values
    if largest.isnan().any():  # topk ranks NaN first, so a NaN anywhere shows here
        order = torch.sort(x, dim=-1, descending=True, stable=True)
        return order.values[..., :k], order.indices[..., :k]
    threshold = largest[..., -1:]
    above = x > threshold
    tied = x == threshold
    room = k - above.sum(-1, keepdim=True)
    chosen = above | (tied & (torch.cumsum(tied.to(torch.int32), -1) <= room))
    index = torch.nonzero(chosen.reshape(-1, x.shape[-1]))[:, 1].reshape(*x.shape[:-1], k)
    values = x.gather(-1, index)
    order = torch.sort(values, dim=-1, descending=True, stable=True)
    return order.values, index.gather(-1, order.indices)
