"""Hypothesis strategies for LLM numerics: tensors of every dtype, activations, logits, perturbations.

``tensors`` draws raw bit patterns, so bfloat16 and the float8 formats are covered across
every exponent (NumPy has no such dtypes, and drawing float32 then casting would miss most
bf16/fp8 encodings); NaN, Inf and subnormals are opt-in. ``activations`` and ``logits`` draw a
few shape and distribution parameters and fill the tensor from a seeded generator, so large
LLM-shaped tensors stay cheap to draw and shrink through their parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

_BITS_DTYPE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}

_MANTISSA_BITS = {
    torch.float64: 52,
    torch.float32: 23,
    torch.float16: 10,
    torch.bfloat16: 7,
    torch.float8_e4m3fn: 3,
    torch.float8_e4m3fnuz: 3,
    torch.float8_e5m2: 2,
    torch.float8_e5m2fnuz: 2,
}

_INTEGER_NUMPY = {
    torch.bool: np.bool_,
    torch.uint8: np.uint8,
    torch.int8: np.int8,
    torch.int16: np.int16,
    torch.int32: np.int32,
    torch.int64: np.int64,
    torch.uint16: np.uint16,
    torch.uint32: np.uint32,
    torch.uint64: np.uint64,
}

FLOAT_DTYPES = tuple(_MANTISSA_BITS)
"""Every floating dtype ``tensors`` supports."""

ACTIVATION_SHAPES = st.tuples(st.integers(1, 4), st.integers(1, 16), st.sampled_from([16, 64, 128]))
VOCAB_SIZES = st.sampled_from([32, 256, 1000])
LOGIT_ROWS = st.integers(1, 4)
LOGIT_KINDS = st.sampled_from(["peaked", "near_tie", "flat"])


def _strategy(value):
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def _shapes(shape):
    if isinstance(shape, int):
        shape = (shape,)
    return _strategy(tuple(shape) if isinstance(shape, Sequence) else shape)


@st.composite
def tensors(
    draw,
    dtype: torch.dtype | st.SearchStrategy[torch.dtype] = torch.float32,
    shape: int | Sequence[int] | st.SearchStrategy[tuple[int, ...]] = (8,),
    *,
    allow_nan: bool = False,
    allow_infinity: bool = False,
    allow_subnormal: bool = True,
) -> torch.Tensor:
    """A CPU tensor of ``dtype`` and ``shape`` (each may be a strategy) from raw bit patterns.

    Disallowed encodings are mapped onto allowed ones (NaN/Inf to the largest finite binade,
    subnormals to the smallest normal one) instead of being filtered, so no draw is rejected.
    """
    dtype = draw(_strategy(dtype))
    shape = draw(_shapes(shape))
    if dtype in _INTEGER_NUMPY:
        return torch.from_numpy(draw(hnp.arrays(_INTEGER_NUMPY[dtype], shape)).copy())
    if dtype not in _MANTISSA_BITS:
        raise ValueError(f"tensors() does not support {dtype}")
    width = torch.empty((), dtype=dtype).element_size()
    bits = draw(hnp.arrays(_BITS_DTYPE[width], shape)).copy()
    exponent_bit = np.array(1 << _MANTISSA_BITS[dtype], dtype=bits.dtype)

    def disallowed() -> np.ndarray:
        values = torch.from_numpy(bits).view(dtype).double()  # float8 has no isnan/isinf
        bad = torch.zeros(values.shape, dtype=torch.bool)
        if not allow_nan:
            bad |= torch.isnan(values)
        if not allow_infinity:
            bad |= torch.isinf(values)
        return bad.numpy()

    bits[disallowed()] &= ~exponent_bit  # exponent all ones -> one below: a finite binade
    bits[disallowed()] = 0  # what is left: the fnuz NaN, whose encoding is negative zero's
    if not allow_subnormal:
        values = torch.from_numpy(bits).view(dtype).double()
        tiny = torch.finfo(dtype).smallest_normal
        subnormal = (values != 0) & (values.abs() < tiny)
        bits[subnormal.numpy()] |= exponent_bit
    result = torch.from_numpy(bits).view(dtype)
    specials = _special_values(dtype, allow_nan, allow_infinity)
    if specials and result.numel():
        flat = result.reshape(-1)
        slots = st.tuples(st.integers(0, flat.numel() - 1), st.sampled_from(specials))
        for index, value in draw(st.lists(slots, max_size=min(3, flat.numel()))):
            flat[index] = value  # a few explicit NaN/Inf: random bit patterns rarely hit Inf
    return result


def _special_values(dtype: torch.dtype, allow_nan: bool, allow_infinity: bool) -> list[float]:
    wanted = ([math.nan] if allow_nan else []) + ([math.inf, -math.inf] if allow_infinity else [])
    encodable = []
    for value in wanted:
        back = torch.tensor(value).to(dtype).double().item()
        if math.isnan(value) == math.isnan(back) and (math.isnan(value) or back == value):
            encodable.append(value)
    return encodable


@st.composite
def activations(
    draw,
    shape: Sequence[int] | st.SearchStrategy[tuple[int, ...]] = ACTIVATION_SHAPES,
    dtype: torch.dtype | st.SearchStrategy[torch.dtype] = torch.float32,
    *,
    max_outlier_channels: int = 3,
) -> torch.Tensor:
    """Hidden states shaped ``(..., hidden)``: roughly normal rows with a few outlier channels.

    LLM activations carry a handful of channels tens to hundreds of times larger than the
    rest (the "massive activations" that break per-tensor quantisation); the channel count,
    scale and offset are drawn, the values come from a seeded generator.
    """
    shape = tuple(draw(_shapes(shape)))
    dtype = draw(_strategy(dtype))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.02, 0.5, 1.0, 4.0]))
    count = draw(st.integers(0, min(max_outlier_channels, shape[-1] if shape else 1)))
    boost = draw(st.floats(10.0, 300.0)) if count else 1.0
    return activation_values(shape, dtype, seed, scale=scale, outlier_channels=count, boost=boost)


def activation_values(
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    *,
    scale: float = 1.0,
    outlier_channels: int = 0,
    boost: float = 30.0,
) -> torch.Tensor:
    """What ``activations`` draws, from explicit parameters: normal values times ``scale``, with
    ``outlier_channels`` channels of the last dimension ``boost`` times larger and offset."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(tuple(shape), generator=generator) * scale
    if outlier_channels and values.dim():
        channels = torch.randperm(values.shape[-1], generator=generator)[:outlier_channels]
        values[..., channels] = values[..., channels] * boost + boost * scale
    return values.to(dtype)


@st.composite
def logits(
    draw,
    vocab: int | st.SearchStrategy[int] = VOCAB_SIZES,
    rows: int | st.SearchStrategy[int] = LOGIT_ROWS,
    kind: str | st.SearchStrategy[str] = LOGIT_KINDS,
    dtype: torch.dtype | st.SearchStrategy[torch.dtype] = torch.float32,
) -> torch.Tensor:
    """Next-token logits ``(rows, vocab)``: ``peaked`` (one clear winner), ``near_tie`` (the top
    two within 1e-3 to 1e-1) or ``flat`` (low temperature spread)."""
    vocab, rows, kind = draw(_strategy(vocab)), draw(_strategy(rows)), draw(_strategy(kind))
    dtype = draw(_strategy(dtype))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    values = torch.randn(rows, vocab, generator=generator) * 2.0
    top = torch.randint(0, vocab, (rows,), generator=generator)
    row_index = torch.arange(rows)
    if kind == "peaked":
        values[row_index, top] = values.max(-1).values + draw(st.floats(5.0, 30.0))
    elif kind == "near_tie":
        runner_up = (top + 1) % vocab
        best = values.max(-1).values + draw(st.floats(1.0, 10.0))
        values[row_index, top] = best
        values[row_index, runner_up] = best - draw(st.floats(1e-3, 1e-1))
    elif kind == "flat":
        values = values * 0.05
    else:
        raise ValueError(f"unknown logits kind {kind!r}; use peaked, near_tie or flat")
    return values.to(dtype)


@st.composite
def perturbed(draw, tensor: torch.Tensor, ulps: int = 1) -> torch.Tensor:
    """``tensor`` with every finite element moved by up to ``ulps`` representable steps.

    Steps are taken on the encoding (sign-magnitude), so the result stays on the dtype's grid;
    a step towards zero stops at zero, a step away stops at the largest finite value.
    """
    dtype = tensor.dtype
    if dtype not in _MANTISSA_BITS:
        raise ValueError(f"perturbed() needs a floating tensor, got {dtype}")
    width = tensor.element_size()
    signed = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[width]
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    steps = torch.randint(-ulps, ulps + 1, tensor.shape, generator=generator).to(torch.int64)
    bits = tensor.contiguous().view(signed).to(torch.int64)
    magnitude = bits & torch.iinfo(signed).max
    largest = torch.tensor(torch.finfo(dtype).max, dtype=dtype).view(signed).item()
    moved = (magnitude + steps).clamp(0, largest)
    # zero is written as +0: in the fnuz float8 formats the -0 encoding means NaN
    encoded = torch.where((bits < 0) & (moved != 0), moved + torch.iinfo(signed).min, moved).to(signed)
    result = encoded.view(dtype).reshape(tensor.shape)
    return torch.where(torch.isfinite(tensor.double()), result, tensor)
