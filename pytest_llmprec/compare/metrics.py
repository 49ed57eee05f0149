"""The metric kernel: ``compare_tensors(golden, my) -> CompareResult``.

Every metric of the standard comparison report (msit-spec §3.2) plus SQNR, relative-error
ratios, ULP error, an element-wise tolerance pass rate, NaN/Inf accounting and statistics of
both sides, from one pass over the data (see ``kernel``). docs/metrics.md gives each
definition and every deliberate deviation from msit.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..formats.raw_tensor import RawTensor
from ..standards.thresholds import Tolerance
from . import torch_backend
from .results import CompareResult, Side, compare_sides, default_tolerance

TensorLike = Any
"""A torch tensor, a NumPy array (ml_dtypes bfloat16/float8 included), a Python number or nested
list, or a raw read of a dump file (``formats.RawTensor``)."""


def compare_tensors(
    golden: TensorLike, my: TensorLike, *, tolerance: Tolerance | None = None
) -> CompareResult:
    """Compare ``my`` against ``golden`` in one pass; never raises for numeric content.

    Tensors are compared on the golden's device (``my`` is moved there when it lives
    elsewhere). ``tolerance`` sets the element-wise test behind ``tolerance_pass_rate``; by
    default msit's error level for the coarser of the two dtypes (``dtypes.msit_error_level``).
    """
    g = as_tensor(golden, "golden")
    m = as_tensor(my, "my")
    if m.device != g.device:
        m = m.to(g.device)
    tol = tolerance or default_tolerance(g.dtype, m.dtype)
    return compare_sides(_side(g), _side(m), tol, lambda: torch_backend.accumulate(g, m, tol))


def _side(tensor: torch.Tensor) -> Side:
    return Side(str(tensor.dtype), tuple(tensor.shape))


# --- inputs --------------------------------------------------------------------------------------

_ML_DTYPES = {
    "bfloat16": torch.bfloat16,
    "float8_e4m3fn": torch.float8_e4m3fn,
    "float8_e5m2": torch.float8_e5m2,
    "float8_e4m3fnuz": torch.float8_e4m3fnuz,
    "float8_e5m2fnuz": torch.float8_e5m2fnuz,
}


def as_tensor(value: TensorLike, side: str = "input") -> torch.Tensor:
    """A real-valued, dense torch tensor view of ``value`` (no copy where avoidable)."""
    if isinstance(value, RawTensor):
        value = value.to_torch()
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.is_quantized:
            tensor = tensor.dequantize()
        if tensor.layout != torch.strided:
            raise TypeError(f"{side}: {tensor.layout} tensors are not supported; pass a dense tensor")
        if tensor.device.type == "meta":
            raise TypeError(f"{side}: a meta tensor has no values to compare")
    elif isinstance(value, (np.ndarray, np.generic)):
        tensor = _from_numpy(np.asarray(value), side)
    elif isinstance(value, (numbers.Number, Sequence)) and not isinstance(value, (str, bytes)):
        try:
            array = np.asarray(value)
        except ValueError:
            array = np.empty(0, dtype=object)
        if array.dtype == object:
            raise TypeError(f"{side}: a ragged or non-numeric sequence cannot be compared")
        tensor = _from_numpy(array, side)
    else:
        raise TypeError(f"{side}: cannot compare a {type(value).__name__}; pass a tensor, array or number")
    if tensor.is_complex():
        raise TypeError(f"{side}: complex tensors are not supported; compare .real and .imag separately")
    return tensor


def _from_numpy(array: np.ndarray, side: str) -> torch.Tensor:
    special = _ML_DTYPES.get(array.dtype.name)
    if special is not None:
        raw = np.ascontiguousarray(array).view(np.uint8 if array.itemsize == 1 else np.uint16)
        return torch.from_numpy(raw).view(special)
    if array.dtype.kind not in "biufc":
        raise TypeError(f"{side}: NumPy dtype {array.dtype} is not numeric")
    if any(stride < 0 for stride in array.strides):
        array = np.ascontiguousarray(array)
    return torch.from_numpy(array)


# --- helpers for messages and per-row metrics ----------------------------------------------------

ROW_BYTES = 1 << 26
"""Float64 working set of ``row_kl_divergence`` per chunk of rows."""


def row_kl_divergence(golden: TensorLike, my: TensorLike, dim: int = -1) -> torch.Tensor:
    """KL(softmax(golden) || softmax(my)) along ``dim`` for every row, in float64.

    Returns a tensor of the other dimensions' shape (NaN for rows with non-finite values).
    """
    g = as_tensor(golden, "golden")
    m = as_tensor(my, "my").to(g.device)
    if g.shape != m.shape:
        raise ValueError(f"row-wise KL needs equal shapes, got golden {list(g.shape)} and my {list(m.shape)}")
    if g.dim() == 0:
        g, m = g.reshape(1), m.reshape(1)
    g, m = g.movedim(dim, -1), m.movedim(dim, -1)
    out_shape = g.shape[:-1]
    width = g.shape[-1]
    g2, m2 = g.reshape(-1, width), m.reshape(-1, width)
    rows_per_chunk = max(1, ROW_BYTES // (8 * max(width, 1)))
    parts = []
    for start in range(0, g2.shape[0], rows_per_chunk):
        log_p = torch.log_softmax(g2[start : start + rows_per_chunk].to(torch.float64), dim=-1)
        log_q = torch.log_softmax(m2[start : start + rows_per_chunk].to(torch.float64), dim=-1)
        parts.append((log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0.0))
    rows = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=g.device)
    return rows.reshape(out_shape)


def count_exceeding(golden: TensorLike, my: TensorLike, kind: str, bound: float) -> int:
    """How many elements finite on both sides have an error above ``bound``.

    ``kind``: ``"abs"`` (|my - golden|), ``"rel"`` (the relative error of ``max_relative_error``)
    or ``"ulp"`` (in units of last place of my's dtype).
    """
    g = as_tensor(golden, "golden")
    m = as_tensor(my, "my").to(g.device)
    ulp = torch_backend.UlpGrid.of(m.dtype)
    total = 0
    for g_piece, m_piece, _ in torch_backend.aligned_pieces(g, m, torch_backend.DEVICE_PIECE):
        gd, md = g_piece.to(torch.float64), m_piece.to(torch.float64)
        ok = torch.isfinite(gd) & torch.isfinite(md)
        err = (md - gd).abs()
        if kind == "rel":
            ag = gd.abs()
            err = torch.where(ag > torch_backend.REL_EPS, err / ag.clamp_min(torch_backend.REL_EPS), 0.0)
        elif kind == "ulp":
            err = torch_backend.ulp_errors(err, gd, ulp)
        elif kind != "abs":
            raise ValueError(f"unknown error kind {kind!r}")
        total += int((ok & (err > bound)).sum())
    return total
