"""The metric kernel: ``compare_tensors(golden, my) -> CompareResult``.

Every metric of the standard comparison report (msit-spec §3.2) plus SQNR, relative-error
ratios, ULP error, an element-wise tolerance pass rate, NaN/Inf accounting and statistics of
both sides, from one pass over the data (see ``kernel``). docs/metrics.md gives each
definition and every deliberate deviation from msit.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from . import kernel
from .names import METRICS
from .thresholds import Tolerance

TensorLike = Any
"""A torch tensor, a NumPy array (ml_dtypes bfloat16/float8 included), a Python number or nested list."""


@dataclass(frozen=True)
class CompareResult:
    """Metrics and bookkeeping of one golden/my comparison; plain Python values only.

    Metrics are NaN when the element counts differ (``fail_reason`` says so). ``note`` carries
    information that does not make the pair incomparable (flattened shapes, empty tensors).
    """

    cosine_similarity: float
    max_relative_error: float
    mean_relative_error: float
    max_absolute_error: float
    mean_absolute_error: float
    kl_divergence: float
    relative_euclidean_distance: float
    sqnr_db: float
    rel_err_ratio_0_001: float
    rel_err_ratio_0_005: float
    max_ulp_error: float
    tolerance_pass_rate: float
    tolerance: str
    golden_nan_count: int
    golden_inf_count: int
    my_nan_count: int
    my_inf_count: int
    nonfinite_positions_match: bool
    element_count: int
    compared_count: int
    worst_index: tuple[int, ...]
    worst_golden_value: float
    worst_my_value: float
    golden_dtype: str
    golden_shape: tuple[int, ...]
    golden_max_value: float
    golden_min_value: float
    golden_mean_value: float
    my_dtype: str
    my_shape: tuple[int, ...]
    my_max_value: float
    my_min_value: float
    my_mean_value: float
    fail_reason: str = ""
    note: str = ""

    @property
    def comparable(self) -> bool:
        """False when no metric could be computed (element counts differ)."""
        return not math.isnan(self.cosine_similarity)

    def metric(self, name: str) -> float:
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        return getattr(self, name)

    def as_dict(self) -> dict[str, Any]:
        """Field name to value, with shapes and the worst index as lists."""
        out = asdict(self)
        for name in ("golden_shape", "my_shape", "worst_index"):
            out[name] = list(out[name])
        return out


def compare_tensors(
    golden: TensorLike, my: TensorLike, *, tolerance: Tolerance | None = None
) -> CompareResult:
    """Compare ``my`` against ``golden`` in one pass; never raises for numeric content.

    Tensors are compared on the golden's device (``my`` is moved there when it lives
    elsewhere). ``tolerance`` sets the element-wise test behind ``tolerance_pass_rate``; by
    default msit's error level for the coarser of the two dtypes (see ``msit_error_level``).
    """
    g = as_tensor(golden, "golden")
    m = as_tensor(my, "my")
    if m.device != g.device:
        m = m.to(g.device)
    tol = tolerance or Tolerance(msit_error_level(coarser_dtype(g.dtype, m.dtype)), small=kernel.REL_EPS)
    if g.numel() != m.numel():
        reason = (
            f"element counts differ: golden has {g.numel()} elements {list(g.shape)}, "
            f"my has {m.numel()} {list(m.shape)}"
        )
        return _incomparable(g, m, tol, reason)
    note = ""
    if g.shape != m.shape:
        note = f"shapes differ (golden {list(g.shape)}, my {list(m.shape)}); compared flattened"
    return _finalize(kernel.accumulate(g, m, tol), g, m, tol, note)


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


# --- dtype helpers -------------------------------------------------------------------------------

_MSIT_ERROR_LEVELS = {
    torch.float32: 2.0**-20,
    torch.float16: 2.0**-10,
    torch.bfloat16: 2.0**-8,
    torch.float64: 1e-4,
    torch.int32: 1e-4,
    torch.int64: 1e-4,
    torch.uint32: 1e-4,
    torch.uint64: 1e-4,
    torch.int8: 1.0,
    torch.int16: 1.0,
    torch.uint16: 1.0,
    torch.uint8: 1.0,
    torch.bool: 1e-4,
}


def msit_error_level(dtype: torch.dtype) -> float:
    """msit opcheck's relative error level for ``dtype`` (msit-spec §6.4); float8: half their eps."""
    level = _MSIT_ERROR_LEVELS.get(dtype)
    if level is None:
        return torch.finfo(dtype).eps / 2 if dtype.is_floating_point else 1.0
    return level


def coarser_dtype(first: torch.dtype, second: torch.dtype) -> torch.dtype:
    """The dtype with the coarser grid (a float beats an integer; larger eps beats smaller)."""
    if first.is_floating_point != second.is_floating_point:
        return first if first.is_floating_point else second
    if not first.is_floating_point:
        return first
    return first if torch.finfo(first).eps >= torch.finfo(second).eps else second


# --- results -------------------------------------------------------------------------------------


def _side_stats(acc: dict[str, float], prefix: str) -> tuple[float, float, float]:
    finite = acc[f"{prefix}_finite"]
    if not finite:
        return math.nan, math.nan, math.nan
    return acc[f"{prefix}_max"], acc[f"{prefix}_min"], acc[f"{prefix}_sum"] / finite


def _cosine(acc: dict[str, float]) -> float:
    gg, mm = acc["sum_gg"], acc["sum_mm"]
    if gg == 0 and mm == 0:
        return 1.0
    if gg == 0 or mm == 0:
        return 0.0
    return max(-1.0, min(1.0, acc["sum_gm"] / math.sqrt(gg) / math.sqrt(mm)))


def _kl(acc: dict[str, float]) -> float:
    lse_g = acc["kl_g_max"] + math.log(acc["kl_g_sum"])
    lse_m = acc["kl_m_max"] + math.log(acc["kl_m_sum"])
    return max(0.0, acc["kl_g_dot"] / acc["kl_g_sum"] - lse_g + lse_m)


def _red(acc: dict[str, float]) -> float:
    if acc["sum_gg"] == 0:
        return 0.0 if acc["sum_dd"] == 0 else math.inf
    return math.sqrt(acc["sum_dd"] / acc["sum_gg"])


def _sqnr(acc: dict[str, float]) -> float:
    if acc["sum_dd"] == 0:
        return math.inf
    if acc["sum_gg"] == 0:
        return -math.inf
    return 10.0 * math.log10(acc["sum_gg"] / acc["sum_dd"])


def unravel_index(flat_index: int, shape: Sequence[int]) -> tuple[int, ...]:
    """The multi-index of a flat (row-major) position."""
    if not shape:
        return ()
    return tuple(int(i) for i in np.unravel_index(flat_index, tuple(shape)))


def _finalize(
    acc: dict[str, float], g: torch.Tensor, m: torch.Tensor, tol: Tolerance, note: str
) -> CompareResult:
    n = int(acc["both_finite"])
    mismatch = int(acc["nonfinite_mismatch"])
    if n == 0:
        metrics = {
            "cosine_similarity": 1.0, "max_relative_error": 0.0, "mean_relative_error": 0.0,
            "max_absolute_error": 0.0, "mean_absolute_error": 0.0, "kl_divergence": 0.0,
            "relative_euclidean_distance": 0.0, "sqnr_db": math.inf, "rel_err_ratio_0_001": 1.0,
            "rel_err_ratio_0_005": 1.0, "max_ulp_error": 0.0, "tolerance_pass_rate": 1.0,
        }  # fmt: skip
        empty = "both tensors are empty" if g.numel() == 0 else "no position is finite on both sides"
        note = "; ".join(filter(None, [note, empty]))
        worst: tuple[int, ...] = ()
    else:
        metrics = {
            "cosine_similarity": _cosine(acc),
            "max_relative_error": acc["max_rel"],
            "mean_relative_error": acc["sum_rel"] / n,
            "max_absolute_error": acc["max_ad"],
            "mean_absolute_error": acc["sum_ad"] / n,
            "kl_divergence": _kl(acc),
            "relative_euclidean_distance": _red(acc),
            "sqnr_db": _sqnr(acc),
            "rel_err_ratio_0_001": acc["within_0_001"] / n,
            "rel_err_ratio_0_005": acc["within_0_005"] / n,
            "max_ulp_error": acc["max_ulp"],
            "tolerance_pass_rate": acc["within_tolerance"] / n,
        }
        worst = unravel_index(int(acc["worst_index"]), g.shape)
    fail_reason = ""
    if mismatch:
        fail_reason = (
            f"non-finite values differ at {mismatch} positions (golden {int(acc['g_nan'])} NaN, "
            f"{int(acc['g_inf'])} Inf; my {int(acc['m_nan'])} NaN, {int(acc['m_inf'])} Inf); "
            f"metrics use the {n} positions finite on both sides"
        )
    g_max, g_min, g_mean = _side_stats(acc, "g")
    m_max, m_min, m_mean = _side_stats(acc, "m")
    return CompareResult(
        **metrics,
        tolerance=str(tol),
        golden_nan_count=int(acc["g_nan"]),
        golden_inf_count=int(acc["g_inf"]),
        my_nan_count=int(acc["m_nan"]),
        my_inf_count=int(acc["m_inf"]),
        nonfinite_positions_match=mismatch == 0,
        element_count=int(acc["count"]),
        compared_count=n,
        worst_index=worst,
        worst_golden_value=acc["worst_golden"] if n else math.nan,
        worst_my_value=acc["worst_my"] if n else math.nan,
        golden_dtype=str(g.dtype),
        golden_shape=tuple(g.shape),
        golden_max_value=g_max,
        golden_min_value=g_min,
        golden_mean_value=g_mean,
        my_dtype=str(m.dtype),
        my_shape=tuple(m.shape),
        my_max_value=m_max,
        my_min_value=m_min,
        my_mean_value=m_mean,
        fail_reason=fail_reason,
        note=note,
    )


def _incomparable(g: torch.Tensor, m: torch.Tensor, tol: Tolerance, reason: str) -> CompareResult:
    nan_fields = {f.name: math.nan for f in fields(CompareResult) if f.name in METRICS}
    return CompareResult(
        **nan_fields,
        tolerance=str(tol),
        golden_nan_count=0,
        golden_inf_count=0,
        my_nan_count=0,
        my_inf_count=0,
        nonfinite_positions_match=True,
        element_count=g.numel(),
        compared_count=0,
        worst_index=(),
        worst_golden_value=math.nan,
        worst_my_value=math.nan,
        golden_dtype=str(g.dtype),
        golden_shape=tuple(g.shape),
        golden_max_value=math.nan,
        golden_min_value=math.nan,
        golden_mean_value=math.nan,
        my_dtype=str(m.dtype),
        my_shape=tuple(m.shape),
        my_max_value=math.nan,
        my_min_value=math.nan,
        my_mean_value=math.nan,
        fail_reason=reason,
    )


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
    ulp = kernel.UlpGrid.of(m.dtype)
    total = 0
    for g_piece, m_piece, _ in kernel.aligned_pieces(g, m, kernel.DEVICE_PIECE):
        gd, md = g_piece.to(torch.float64), m_piece.to(torch.float64)
        ok = torch.isfinite(gd) & torch.isfinite(md)
        err = (md - gd).abs()
        if kind == "rel":
            ag = gd.abs()
            err = torch.where(ag > kernel.REL_EPS, err / ag.clamp_min(kernel.REL_EPS), 0.0)
        elif kind == "ulp":
            err = kernel.ulp_errors(err, gd, ulp)
        elif kind != "abs":
            raise ValueError(f"unknown error kind {kind!r}")
        total += int((ok & (err > bound)).sum())
    return total
