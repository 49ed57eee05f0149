"""ATB LayerNormOperation and RmsNormOperation (norm, prenorm, postnorm and their quant variants)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registry import register_op
from ._common import choice, count_inputs, dynamic_quant, fail, flag, integer, number, scalar, to_int8

LAYER_NORM = "LayerNormOperation"
RMS_NORM = "RmsNormOperation"

NORM, PRENORM, POSTNORM = 1, 2, 3
_SECTIONS = {NORM: "normParam", PRENORM: "preNormParam", POSTNORM: "postNormParam"}
_UNQUANT, _INT8 = 0, 2
_DYNAMIC_NONE, _DYNAMIC_SYMMETRIC, _DYNAMIC_ASYMMETRIC = 0, 1, 2


def _layer_type(op: str, params: Mapping[str, Any]) -> int:
    return choice(
        op, "layerType", integer(params, op, "layerType"), (1, 2, 3), "1 norm, 2 prenorm, 3 postnorm"
    )


def _setting(op: str, params: Mapping[str, Any], name: str) -> str:
    """The dotted name of a setting of the section that ``layerType`` selects."""
    return f"{_SECTIONS[_layer_type(op, params)]}.{name}"


def _quant_type(op: str, params: Mapping[str, Any]) -> int:
    name = _setting(op, params, "quantType")
    return choice(op, name, integer(params, op, name, _UNQUANT), (_UNQUANT, _INT8), "0 unquantised, 2 int8")


def _dynamic_type(op: str, params: Mapping[str, Any]) -> int:
    if _layer_type(op, params) != NORM or _quant_type(op, params) != _INT8:
        return _DYNAMIC_NONE
    name = "normParam.dynamicQuantType"
    return choice(op, name, integer(params, op, name, _DYNAMIC_NONE), (0, 1, 2))


def _epsilon(op: str, params: Mapping[str, Any]) -> float:
    return number(params, op, _setting(op, params, "epsilon"), 1e-5)


def _weight(op: str, x: torch.Tensor, weight: torch.Tensor, what: str) -> tuple[torch.Tensor, int]:
    """``weight`` shaped for the trailing axes of ``x`` it covers, and their count.

    Leading size-1 axes of the weight are dropped, so ``[1, h]`` and ``[h]`` both cover the
    last axis of ``x``.
    """
    shape = list(weight.shape)
    while len(shape) > 1 and shape[0] == 1:
        shape.pop(0)
    if not shape or len(shape) > x.dim() or list(x.shape[x.dim() - len(shape) :]) != shape:
        raise fail(
            op, f"{what} of shape {list(weight.shape)} does not match the last axes of x {list(x.shape)}"
        )
    return weight.reshape(shape), len(shape)


def _axes(count: int) -> tuple[int, ...]:
    return tuple(range(-count, 0))


def _quantise_static(
    op: str, values: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    return to_int8(values / scale_value(op, scale) + scalar(op, "the quant offset", offset))


def scale_value(op: str, scale: torch.Tensor) -> float:
    value = scalar(op, "the quant scale", scale)
    if value == 0:
        raise fail(op, "the quant scale is 0")
    return value


def _dynamic(op: str, values: torch.Tensor, params: Mapping[str, Any]) -> list[torch.Tensor]:
    return dynamic_quant(values, _dynamic_type(op, params) == _DYNAMIC_ASYMMETRIC)


def _norm_dtypes(op: str, x_dtype: torch.dtype, params: Mapping[str, Any], rstd: bool) -> list[torch.dtype]:
    layer, quant = _layer_type(op, params), _quant_type(op, params)
    dynamic = _dynamic_type(op, params)
    if dynamic != _DYNAMIC_NONE:
        return [torch.int8, torch.float32, torch.float32][: 3 if dynamic == _DYNAMIC_ASYMMETRIC else 2]
    if layer == NORM:
        if quant == _INT8:
            return [torch.int8]
        return [x_dtype, torch.float32] if rstd else [x_dtype]
    if layer == PRENORM:
        return [torch.int8 if quant == _INT8 else x_dtype, x_dtype]
    if quant != _INT8:
        return [x_dtype]
    # postnorm quant: LayerNorm gives [norm, int8], RmsNorm [int8, norm] (ATB's output orders)
    return [x_dtype, torch.int8] if op == LAYER_NORM else [torch.int8, x_dtype]


# ---------------------------------------------------------------- LayerNormOperation


def _layer_norm(
    op: str, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
) -> torch.Tensor:
    gamma, count = _weight(op, x, gamma, "gamma")
    beta, _ = _weight(op, x, beta, "beta") if beta.numel() else (torch.zeros_like(gamma), count)
    axes = _axes(count)
    mean = x.mean(dim=axes, keepdim=True)
    centred = x - mean
    variance = (centred * centred).mean(dim=axes, keepdim=True)
    return centred / torch.sqrt(variance + eps) * gamma + beta


def _layer_norm_counts(params: Mapping[str, Any]) -> tuple[int, str]:
    layer, quant = _layer_type(LAYER_NORM, params), _quant_type(LAYER_NORM, params)
    if layer == NORM:
        if quant == _INT8 and _dynamic_type(LAYER_NORM, params) == _DYNAMIC_NONE:
            return 5, "[x, gamma, beta, scale, offset]"
        return 3, "[x, gamma, beta]"
    if layer == PRENORM:
        return 4, "[x, residual, gamma, beta]"
    if quant == _INT8:
        return 6, "[x, residual, gamma, beta, scale, offset]"
    return 4, "[x, residual, gamma, beta]"


def _layer_norm_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    return _norm_dtypes(LAYER_NORM, inputs[0].dtype, params, rstd=False)


def _check_begin_axis(x: torch.Tensor, gamma: torch.Tensor, params: Mapping[str, Any]) -> None:
    begin = integer(params, LAYER_NORM, "normParam.beginNormAxis", 0)
    if begin == 0:
        return  # 0 (the default) normalises the trailing axes gamma covers
    _, count = _weight(LAYER_NORM, x, gamma, "gamma")
    if not -x.dim() <= begin < x.dim() or begin % x.dim() != x.dim() - count:
        raise fail(
            LAYER_NORM,
            f"parameter normParam.beginNormAxis={begin} does not match gamma {list(gamma.shape)} "
            f"for x {list(x.shape)} (expected {x.dim() - count} or {-count})",
        )


@register_op(LAYER_NORM, required_params=("layerType",), inputs=(3, 6), output_dtype=_layer_norm_dtypes)
def layer_norm(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """LayerNorm: ``layerType`` 1 norm, 2 prenorm (``x + zoomScaleValue * residual``), 3 postnorm."""
    layer, quant = _layer_type(LAYER_NORM, params), _quant_type(LAYER_NORM, params)
    expected, layout = _layer_norm_counts(params)
    count_inputs(LAYER_NORM, inputs, expected, layout)
    eps = _epsilon(LAYER_NORM, params)
    x = inputs[0]
    if layer == NORM:
        gamma, beta = inputs[1], inputs[2]
        _check_begin_axis(x, gamma, params)
        normed = _layer_norm(LAYER_NORM, x, gamma, beta, eps)
        if quant == _UNQUANT:
            return [normed]
        if _dynamic_type(LAYER_NORM, params) != _DYNAMIC_NONE:
            return _dynamic(LAYER_NORM, normed, params)
        return [_quantise_static(LAYER_NORM, normed, inputs[3], inputs[4])]
    if layer == PRENORM and quant == _INT8:
        raise fail(
            LAYER_NORM, "parameter preNormParam.quantType=2 is not supported (ATB has no quantised prenorm)"
        )
    residual, gamma, beta = inputs[1], inputs[2], inputs[3]
    if residual.shape != x.shape:
        raise fail(LAYER_NORM, f"residual has shape {list(residual.shape)}, expected {list(x.shape)}")
    if quant == _INT8:  # postnorm quant: no zoom
        normed = _layer_norm(LAYER_NORM, x + residual, gamma, beta, eps)
        return [normed, _quantise_static(LAYER_NORM, normed, inputs[4], inputs[5])]
    zoom = number(params, LAYER_NORM, _setting(LAYER_NORM, params, "zoomScaleValue"), 1.0)
    total = x + zoom * residual
    normed = _layer_norm(LAYER_NORM, total, gamma, beta, eps)
    return [normed, total] if layer == PRENORM else [normed]


# ---------------------------------------------------------------- RmsNormOperation


def _rms_normalised(
    op: str, x: torch.Tensor, gamma: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x * rstd, rstd)`` with ``rstd = 1 / sqrt(mean(x^2) + eps)`` over the axes gamma covers."""
    _, count = _weight(op, x, gamma, "gamma")
    rstd = torch.rsqrt((x * x).mean(dim=_axes(count), keepdim=True) + eps)
    return x * rstd, rstd


def _rms_counts(params: Mapping[str, Any]) -> tuple[int, str]:
    layer, quant = _layer_type(RMS_NORM, params), _quant_type(RMS_NORM, params)
    if layer == NORM:
        if quant == _UNQUANT:
            return 2, "[x, gamma]"
        if _dynamic_type(RMS_NORM, params) != _DYNAMIC_NONE:
            return 3, "[x, gamma, beta]"
        return 5, "[x, gamma, beta, scale, offset]"
    if quant == _INT8:
        if layer == PRENORM:
            return 6, "[x, residual, gamma, beta, scale, offset]"
        return 5, "[x, residual, gamma, scale, offset]"
    if _has_bias(params):
        return 4, "[x, bias, residual, gamma]"
    return 3, "[x, residual, gamma]"


def _has_bias(params: Mapping[str, Any]) -> bool:
    return flag(params, RMS_NORM, _setting(RMS_NORM, params, "hasBias"), False)


def _rstd(params: Mapping[str, Any]) -> bool:
    return _layer_type(RMS_NORM, params) == NORM and flag(params, RMS_NORM, "normParam.rstd", False)


def _rms_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    return _norm_dtypes(RMS_NORM, inputs[0].dtype, params, rstd=_rstd(params))


@register_op(RMS_NORM, required_params=("layerType",), inputs=(2, 6), output_dtype=_rms_dtypes)
def rms_norm(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """RMSNorm ``x * gamma / sqrt(mean(x^2) + eps)``: ``layerType`` 1 norm (Gemma ``1 + gamma``,
    ``precisionMode``, ``rstd``, quant, dynamic quant), 2 prenorm and 3 postnorm (residual, bias)."""
    layer, quant = _layer_type(RMS_NORM, params), _quant_type(RMS_NORM, params)
    expected, layout = _rms_counts(params)
    count_inputs(RMS_NORM, inputs, expected, layout)
    eps = _epsilon(RMS_NORM, params)
    x = inputs[0]
    if layer == NORM:
        return _rms_norm_only(x, inputs, params, eps, quant)
    if quant == _INT8:
        residual, gamma = inputs[1], inputs[2]
        total = _sum(x, residual)
        normed, _ = _rms_normalised(RMS_NORM, total, gamma, eps)
        normed = normed * _weight(RMS_NORM, total, gamma, "gamma")[0]
        if layer == PRENORM:
            beta = inputs[3]
            shifted = normed + _weight(RMS_NORM, total, beta, "beta")[0] if beta.numel() else normed
            return [_quantise_static(RMS_NORM, shifted, inputs[4], inputs[5]), total]
        return [_quantise_static(RMS_NORM, normed, inputs[3], inputs[4]), normed]
    if _has_bias(params):
        bias, residual, gamma = inputs[1], inputs[2], inputs[3]
        total = _sum(_sum(x, residual), bias, what="bias")
    else:
        residual, gamma = inputs[1], inputs[2]
        total = _sum(x, residual)
    normed, _ = _rms_normalised(RMS_NORM, total, gamma, eps)
    normed = normed * _weight(RMS_NORM, total, gamma, "gamma")[0]
    return [normed, total] if layer == PRENORM else [normed]


def _sum(x: torch.Tensor, other: torch.Tensor, what: str = "residual") -> torch.Tensor:
    try:
        total = x + other
    except RuntimeError:
        raise fail(RMS_NORM, f"{what} of shape {list(other.shape)} does not fit x {list(x.shape)}") from None
    if total.shape != x.shape:
        raise fail(RMS_NORM, f"{what} of shape {list(other.shape)} does not fit x {list(x.shape)}")
    return total


def _rms_norm_only(
    x: torch.Tensor, inputs: Sequence[torch.Tensor], params: Mapping[str, Any], eps: float, quant: int
) -> list[torch.Tensor]:
    gamma = inputs[1]
    shaped_gamma, _ = _weight(RMS_NORM, x, gamma, "gamma")
    normed, rstd = _rms_normalised(RMS_NORM, x, gamma, eps)
    if quant == _INT8:
        beta = inputs[2]
        shifted = normed * shaped_gamma
        if beta.numel():
            shifted = shifted + _weight(RMS_NORM, x, beta, "beta")[0]
        if _dynamic_type(RMS_NORM, params) != _DYNAMIC_NONE:
            return _dynamic(RMS_NORM, shifted, params)
        return [_quantise_static(RMS_NORM, shifted, inputs[3], inputs[4])]
    model = choice(
        RMS_NORM,
        "normParam.modelType",
        integer(params, RMS_NORM, "normParam.modelType", 0),
        (0, 1),
        "0 Llama, 1 Gemma",
    )
    precision = choice(
        RMS_NORM,
        "normParam.precisionMode",
        integer(params, RMS_NORM, "normParam.precisionMode", 0),
        (0, 1),
        "0 float32 intermediates, 1 float16 intermediates",
    )
    if model == 1:
        shaped_gamma = shaped_gamma + 1.0
    if precision == 1:
        normed = normed.to(torch.float16).to(torch.float64)
    result = normed * shaped_gamma
    return [result, rstd] if _rstd(params) else [result]
