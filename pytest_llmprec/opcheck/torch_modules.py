"""References of torch modules, keyed by the class name ``model_tree.json`` records.

Parameters are the module's scalar attributes (``eps``, ``variance_epsilon``, ``approximate`` ...,
recorded by the capture as each tree node's ``attributes``); weights are its parameters and
buffers by attribute name (``weight``, ``bias``, ``inv_freq``). Everything is computed in float64
from the float64 copies the registry passes; docs/opcheck.md ("torch modules") lists the maths of
each class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .module_names import GEMMA_RMS_NORMS, HF_RMS_NORMS, REQUIRED_WEIGHTS, ROTARY_EMBEDDINGS
from .registry import INPUT_DTYPES, NotCheckable, OpcheckError, register_op

Tensors = Sequence[torch.Tensor]
Weights = Mapping[str, torch.Tensor]


def _register(
    names: Sequence[str],
    *,
    inputs: int | tuple[int, int | None] = 1,
    required_params: Sequence[str] = (),
    optional_weights: Sequence[str] = (),
    output_dtype: Callable[[Sequence[Any], Mapping[str, Any]], Sequence[Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``function`` for each class of ``names``, with the weights ``REQUIRED_WEIGHTS`` names."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            register_op(
                name,
                inputs=inputs,
                required_params=required_params,
                weights=REQUIRED_WEIGHTS.get(name, ()),
                optional_weights=optional_weights,
                output_dtype=output_dtype,
            )(function)
        return function

    return decorate


# --- linear layers and embeddings -----------------------------------------------------------------


@_register(["Linear"], optional_weights=("bias",))
def linear(inputs: Tensors, params: Mapping[str, Any], weights: Weights) -> list[torch.Tensor]:
    """``x @ weight.T + bias``."""
    return [F.linear(inputs[0], weights["weight"], weights.get("bias"))]


@_register(["Embedding"])
def embedding(inputs: Tensors, params: Mapping[str, Any], weights: Weights) -> list[torch.Tensor]:
    """Rows of ``weight`` at the integer ids (``max_norm`` renormalisation is not supported)."""
    if params.get("max_norm") is not None:
        raise NotCheckable("Embedding: max_norm renormalises the weight in place; not supported")
    ids = inputs[0]
    if ids.is_floating_point():
        raise OpcheckError(f"Embedding: the ids must be integers, got {ids.dtype}")
    return [F.embedding(ids, weights["weight"])]


# --- normalisations -------------------------------------------------------------------------------


def _normalized_dims(params: Mapping[str, Any], x: torch.Tensor) -> tuple[int, ...]:
    shape = params.get("normalized_shape")
    if shape is None:
        raise OpcheckError("missing required parameter normalized_shape")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if tuple(x.shape[-len(shape) :]) != shape:
        raise OpcheckError(f"normalized_shape {list(shape)} does not end the input shape {list(x.shape)}")
    return tuple(range(-len(shape), 0))


@_register(["LayerNorm"], required_params=("eps",), optional_weights=("weight", "bias"))
def layer_norm(inputs: Tensors, params: Mapping[str, Any], weights: Weights) -> list[torch.Tensor]:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``normalized_shape`` dims."""
    x = inputs[0]
    dims = _normalized_dims(params, x)
    centred = x - x.mean(dims, keepdim=True)
    out = centred / torch.sqrt(centred.pow(2).mean(dims, keepdim=True) + float(params["eps"]))
    return [_affine(out, weights, gemma=False)]


def _affine(out: torch.Tensor, weights: Weights, *, gemma: bool) -> torch.Tensor:
    weight, bias = weights.get("weight"), weights.get("bias")
    if weight is not None:
        out = out * (1.0 + weight if gemma else weight)
    return out + bias if bias is not None else out


def _rms(x: torch.Tensor, dims: tuple[int, ...], eps: float) -> torch.Tensor:
    return x / torch.sqrt(x.pow(2).mean(dims, keepdim=True) + eps)


@_register(["RMSNorm"], optional_weights=("weight",))
def torch_rms_norm(inputs: Tensors, params: Mapping[str, Any], weights: Weights) -> list[torch.Tensor]:
    """``torch.nn.RMSNorm``: ``x / sqrt(mean(x²) + eps) * weight``; ``eps`` None means the eps of
    the input's dtype."""
    x = inputs[0]
    eps = params.get("eps")
    if eps is None:
        eps = torch.finfo(params[INPUT_DTYPES][0]).eps
    return [_affine(_rms(x, _normalized_dims(params, x), float(eps)), weights, gemma=False)]


@_register(HF_RMS_NORMS, required_params=("variance_epsilon",))
def hf_rms_norm(inputs: Tensors, params: Mapping[str, Any], weights: Weights) -> list[torch.Tensor]:
    x = inputs[0]
    return [_affine(_rms(x, (-1,), float(params["variance_epsilon"])), weights, gemma=False)]


@_register(GEMMA_RMS_NORMS, required_params=("eps",))
def gemma_rms_norm(inputs: Tensors, params: Mapping[str, Any], weights: Weights) -> list[torch.Tensor]:
    x = inputs[0]
    return [_affine(_rms(x, (-1,), float(params["eps"])), weights, gemma=True)]


# --- activations ----------------------------------------------------------------------------------

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_exact(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x.pow(3))))


def _elementwise(names: Sequence[str], required_params: Sequence[str] = ()):
    def decorate(formula: Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor]):
        @_register(names, required_params=required_params)
        def reference(inputs: Tensors, params: Mapping[str, Any]) -> list[torch.Tensor]:
            return [formula(inputs[0], params)]

        reference.__doc__ = formula.__doc__
        return formula

    return decorate


@_elementwise(["SiLU", "SiLUActivation"])
def silu(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``x * sigmoid(x)``."""
    return x / (1.0 + torch.exp(-x))


@_elementwise(["GELU"])
def gelu(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``approximate`` ``"none"``: ``x·Φ(x)`` with the error function; ``"tanh"``: the tanh form."""
    approximate = params.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise OpcheckError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _gelu_tanh(x) if approximate == "tanh" else _gelu_exact(x)


@_elementwise(["GELUActivation"])
def gelu_exact(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``x·Φ(x)`` (error function)."""
    return _gelu_exact(x)


@_elementwise(["GELUTanh", "PytorchGELUTanh", "NewGELUActivation", "AccurateGELUActivation"])
def gelu_tanh(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³)))``."""
    return _gelu_tanh(x)


@_elementwise(["FastGELUActivation"])
def fast_gelu(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``0.5·x·(1 + tanh(0.7978845608·x·(1 + 0.044715·x²)))`` (the constant as transformers writes it)."""
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


@_elementwise(["QuickGELUActivation"])
def quick_gelu(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``x·sigmoid(1.702·x)``."""
    return x / (1.0 + torch.exp(-1.702 * x))


@_elementwise(["ClippedGELUActivation"], required_params=("min", "max"))
def clipped_gelu(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """Exact GELU clipped to ``[min, max]``."""
    return _gelu_exact(x).clamp(float(params["min"]), float(params["max"]))


@_elementwise(["ReLU"])
def relu(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``max(x, 0)``."""
    return x.clamp_min(0.0)


@_elementwise(["ReLU6"])
def relu6(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``min(max(x, 0), 6)``."""
    return x.clamp(0.0, 6.0)


@_elementwise(["ReLUSquaredActivation"])
def relu_squared(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``max(x, 0)²``."""
    return x.clamp_min(0.0).pow(2)


@_elementwise(["LeakyReLU"])
def leaky_relu(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``x`` where positive, else ``negative_slope·x`` (default 0.01)."""
    return torch.where(x >= 0, x, float(params.get("negative_slope", 0.01)) * x)


@_elementwise(["Sigmoid"])
def sigmoid(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``1 / (1 + exp(-x))``."""
    return 1.0 / (1.0 + torch.exp(-x))


@_elementwise(["Tanh"])
def tanh(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``tanh(x)``."""
    return torch.tanh(x)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 30, x, torch.log1p(torch.exp(x.clamp_max(30.0))))


@_elementwise(["Mish", "MishActivation"])
def mish(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``x·tanh(softplus(x))``."""
    return x * torch.tanh(_softplus(x))


@_elementwise(["SqrtSoftplusActivation"])
def sqrt_softplus(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``sqrt(softplus(x))``."""
    return _softplus(x).sqrt()


@_elementwise(["Hardswish"])
def hardswish(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """``x·min(max(x + 3, 0), 6) / 6``."""
    return x * (x + 3.0).clamp(0.0, 6.0) / 6.0


@_elementwise(["Identity", "LinearActivation", "Dropout"])
def identity(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """The input (Dropout: in eval mode, as inference dumps are taken)."""
    return x


# --- rotary embeddings ----------------------------------------------------------------------------


def _rotary_dtypes(inputs: Sequence[Any], params: Mapping[str, Any]) -> list[Any]:
    return [inputs[0].dtype, inputs[0].dtype]


@_register(ROTARY_EMBEDDINGS, inputs=2, output_dtype=_rotary_dtypes)
def rotary_embedding(inputs: Tensors, params: Mapping[str, Any], weights: Weights) -> list[torch.Tensor]:
    """``angle = position · inv_freq`` rounded to float32 (the module computes it in float32 with
    autocast off, so that rounding is part of its definition); ``cos``/``sin`` of
    ``cat(angle, angle)`` times ``attention_scaling`` (default 1)."""
    rope_type = str(params.get("rope_type", "default"))
    if rope_type in ("dynamic", "longrope") or rope_type.startswith("dynamic"):
        raise NotCheckable(f"rotary embedding: rope_type {rope_type!r} changes inv_freq during forward")
    positions = inputs[1]
    angle = (positions[..., None].to(torch.float32) * weights["inv_freq"].to(torch.float32)).double()
    emb = torch.cat((angle, angle), dim=-1)
    scaling = float(params.get("attention_scaling", 1.0))
    return [emb.cos() * scaling, emb.sin() * scaling]
