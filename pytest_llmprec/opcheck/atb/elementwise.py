"""ATB ActivationOperation and ElewiseOperation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registry import register_op
from ._common import (
    ACL_UNDEFINED,
    FP16_MAX,
    acl_dtype,
    broadcast,
    choice,
    count_inputs,
    dynamic_quant,
    fail,
    flag,
    integer,
    number,
    section,
    to_int8,
)

ACTIVATION = "ActivationOperation"
ELEWISE = "ElewiseOperation"

# ---------------------------------------------------------------- ActivationOperation

_GELU_TANH, _GELU_EXACT = 0, 1


def _silu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def _fast_gelu(x: torch.Tensor) -> torch.Tensor:
    # x * sigmoid(1.702 |x|) * exp(0.851 (x - |x|)), ATB's FAST_GELU and FASTER_GELU_FORWARD
    magnitude = x.abs()
    return x * torch.sigmoid(1.702 * magnitude) * torch.exp(0.851 * (x - magnitude))


def _gelu(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    mode = choice(ACTIVATION, "geluMode", integer(params, ACTIVATION, "geluMode", _GELU_TANH), (0, 1))
    if mode == _GELU_EXACT:
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1.0 + torch.tanh(inner))


def _halves(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not -x.dim() <= dim < x.dim():
        raise fail(ACTIVATION, f"parameter dim={dim} is out of range for a {x.dim()}-D input")
    if x.shape[dim] % 2:
        raise fail(ACTIVATION, f"swiglu needs an even size along dim={dim}, got {x.shape[dim]}")
    first, second = x.chunk(2, dim)
    return first, second


def _activation_inputs(params: Mapping[str, Any]) -> int:
    return 2 if params.get("activationType") == 7 else 1


@register_op(ACTIVATION, required_params=("activationType",), inputs=(1, 2))
def activation(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Activation by ``activationType``: 1 relu, 2 gelu, 3 fast gelu, 4 swish, 5 log, 6 swiglu,
    7 swiglu backward (inputs ``[dy, x]``), 8 sigmoid, 9 faster gelu."""
    kind = choice(
        ACTIVATION, "activationType", integer(params, ACTIVATION, "activationType"), tuple(range(1, 10))
    )
    count_inputs(ACTIVATION, inputs, _activation_inputs(params), "[dy, x]" if kind == 7 else "[x]")
    x = inputs[-1]
    if kind == 1:
        return [torch.relu(x)]
    if kind == 2:
        return [_gelu(x, params)]
    if kind in (3, 9):
        return [_fast_gelu(x)]
    if kind == 4:
        scale = number(params, ACTIVATION, "scale", 1.0)
        return [x * torch.sigmoid(scale * x)]
    if kind == 5:
        return [torch.log(x)]
    if kind == 8:
        return [torch.sigmoid(x)]
    dim = integer(params, ACTIVATION, "dim", -1)
    gate, up = _halves(x, dim)
    if kind == 6:
        return [_silu(gate) * up]
    grad = inputs[0]
    if grad.shape != gate.shape:
        raise fail(
            ACTIVATION,
            f"swiglu backward: dy has shape {list(grad.shape)}, expected {list(gate.shape)} (half of x)",
        )
    sig = torch.sigmoid(gate)
    d_gate = grad * up * (sig + gate * sig * (1.0 - sig))
    d_up = grad * gate * sig
    return [torch.cat((d_gate, d_up), dim)]


# ---------------------------------------------------------------- ElewiseOperation

_ONE_INPUT = {1, 2, 3, 4, 5, 6, 7, 19, 20}
_TWO_INPUTS = {8, 9, 10, 11, 12, 13, 14, 15, 16}
_THREE_INPUTS = {17, 18}
_NAMES = {
    1: "cast",
    2: "muls",
    3: "cos",
    4: "sin",
    5: "neg",
    6: "quant",
    7: "logical_not",
    8: "add",
    9: "mul",
    10: "realdiv",
    11: "logical_and",
    12: "logical_or",
    13: "less",
    14: "greater",
    15: "sub",
    16: "equal",
    17: "quant_per_channel",
    18: "dequant_per_channel",
    19: "dynamic_quant",
    20: "tanh",
}


def _elewise_type(params: Mapping[str, Any]) -> int:
    return choice(
        ELEWISE,
        "elewiseType",
        integer(params, ELEWISE, "elewiseType"),
        tuple(sorted(_NAMES)),
        ", ".join(f"{k} {v}" for k, v in sorted(_NAMES.items())),
    )


def _cast_code(params: Mapping[str, Any]) -> int:
    # ATB's key is outTensorType; msit reads OutTensorType, accepted as an alias
    key = "outTensorType" if "outTensorType" in params else "OutTensorType"
    return integer(params, ELEWISE, key, ACL_UNDEFINED)


def _cast_dtype(source: torch.dtype, params: Mapping[str, Any]) -> torch.dtype:
    code = _cast_code(params)
    if code == ACL_UNDEFINED:
        return torch.float16 if source == torch.float32 else torch.float32
    choice(ELEWISE, "outTensorType", code, (0, 1, 3, 9, 27), "float, float16, int32, int64, bfloat16")
    return acl_dtype(ELEWISE, "outTensorType", code)


def _asymmetric(params: Mapping[str, Any]) -> bool:
    return flag(params, ELEWISE, "quantParam.asymmetric", False)


def _elewise_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    kind = _elewise_type(params)
    if kind == 1:
        return [_cast_dtype(inputs[0].dtype, params)]
    if kind in (6, 7, 11, 12, 13, 14, 16, 17):
        return [torch.int8]
    if kind == 18:
        return [torch.float16]
    if kind == 19:
        return [torch.int8, torch.float32, torch.float32][: 3 if _asymmetric(params) else 2]
    return [inputs[0].dtype]


def _same_dtype_result(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # integer arithmetic stays in the input's integer dtype; floats stay float64 until the final cast
    return values if like.is_floating_point() else values.to(like.dtype)


@register_op(ELEWISE, required_params=("elewiseType",), inputs=(1, 3), output_dtype=_elewise_dtypes)
def elewise(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Element-wise operations by ``elewiseType`` (see docs/opcheck.md for the table)."""
    kind = _elewise_type(params)
    expected = 1 if kind in _ONE_INPUT else 2 if kind in _TWO_INPUTS else 3
    layout = {1: "[x]", 2: "[x, y]", 3: "[x, scale, offset]"}[expected]
    count_inputs(ELEWISE, inputs, expected, layout)
    x = inputs[0]
    if kind == 1:
        target = _cast_dtype(x.dtype, params)
        if target.is_floating_point:
            return [x.to(torch.float64)]
        return [torch.nan_to_num(x.to(torch.float64)).trunc().to(target)]
    if kind == 2:
        nested = "varAttr" in section(params, ELEWISE, "mulsParam")
        factor = number(params, ELEWISE, "mulsParam.varAttr" if nested else "varAttr", 0.0)
        return [_same_dtype_result(x * factor, x)]
    if kind == 3:
        return [torch.cos(x)]
    if kind == 4:
        return [torch.sin(x)]
    if kind == 5:
        return [_same_dtype_result(-x, x)]
    if kind == 6:
        scale = number(params, ELEWISE, "quantParam.inputScale", 1.0)
        offset = number(params, ELEWISE, "quantParam.inputOffset", 0)
        return [to_int8(x.to(torch.float64) * scale + offset)]
    if kind == 7:
        return [torch.logical_not(x).to(torch.int8)]
    if kind == 19:
        if x.dim() < 2:
            raise fail(ELEWISE, f"dynamic quant needs an input of at least 2 dimensions, got {list(x.shape)}")
        return dynamic_quant(x.to(torch.float64), _asymmetric(params))
    if kind == 20:
        return [torch.tanh(x)]
    if kind in _TWO_INPUTS:
        a, b = broadcast(ELEWISE, x, inputs[1])
        return [_binary(kind, a, b)]
    return [_per_channel(kind, x, inputs[1], inputs[2])]


def _binary(kind: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if kind == 8:
        return _same_dtype_result(a + b, a)
    if kind == 9:
        return _same_dtype_result(a * b, a)
    if kind == 15:
        return _same_dtype_result(a - b, a)
    if kind == 10:
        if a.is_floating_point():
            return a / b
        return torch.div(a, b, rounding_mode="trunc").to(a.dtype)
    if kind == 11:
        return torch.logical_and(a != 0, b != 0).to(torch.int8)
    if kind == 12:
        return torch.logical_or(a != 0, b != 0).to(torch.int8)
    if kind == 13:
        return (a < b).to(torch.int8)
    if kind == 14:
        return (a > b).to(torch.int8)
    return (a == b).to(torch.int8)


def _per_channel(kind: int, x: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    x, scale = x.to(torch.float64), scale.to(torch.float64)
    has_offset = offset.numel() > 0
    offset = offset.to(torch.float64)
    if kind == 17:
        # quant per channel: clamp(round(x / scale) + offset)
        quotient = torch.round(broadcast(ELEWISE, x, scale)[0] / scale)
        if has_offset:
            quotient = broadcast(ELEWISE, quotient, offset)[0] + offset
        return to_int8(quotient)
    # dequant per channel: (y - offset) * scale, saturated to the float16 range
    if has_offset:
        x = broadcast(ELEWISE, x, offset)[0] - offset
    values = broadcast(ELEWISE, x, scale)[0] * scale
    return values.clamp(-FP16_MAX, FP16_MAX)
