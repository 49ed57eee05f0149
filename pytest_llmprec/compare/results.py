"""``CompareResult`` and how it is computed from the kernel's accumulators; importable without torch."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from ..dtypes import coarser_dtype, msit_error_level
from ..standards.names import METRICS
from ..standards.thresholds import Tolerance
from .accumulators import REL_EPS

COUNTS_DIFFER = "element counts differ"
"""How ``fail_reason`` begins when the pair has no metrics because its element counts differ."""


@dataclass(frozen=True, slots=True)
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


class Side(NamedTuple):
    """What a result records of one side: dtype name (``"torch.float32"``) and shape."""

    dtype: str
    shape: tuple[int, ...]


def default_tolerance(golden_dtype: Any, my_dtype: Any) -> Tolerance:
    """msit's element-wise error level for the coarser of the two dtypes."""
    return Tolerance(msit_error_level(coarser_dtype(golden_dtype, my_dtype)), small=REL_EPS)


def compare_sides(
    golden: Side,
    my: Side,
    tol: Tolerance,
    accumulate: Callable[[], dict[str, float]],
    unravel: Callable[[int], tuple[int, ...]] | None = None,
) -> CompareResult:
    """The result of a pair: incomparable when the element counts differ, else computed from
    ``accumulate()`` over both sides flattened (noting different shapes). ``unravel`` turns the
    accumulated position of the worst element into its index (default: row-major in the golden's
    shape)."""
    g_count, m_count = math.prod(golden.shape), math.prod(my.shape)
    if g_count != m_count:
        reason = (
            f"{COUNTS_DIFFER}: golden has {g_count} elements {list(golden.shape)}, "
            f"my has {m_count} {list(my.shape)}"
        )
        return _incomparable(golden, my, tol, reason)
    note = ""
    if golden.shape != my.shape:
        note = f"shapes differ (golden {list(golden.shape)}, my {list(my.shape)}); compared flattened"
    return _finalize(accumulate(), golden, my, tol, note, unravel)


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
    if acc["max_ad"] == 0:  # equal tensors: exactly 1, whatever the rounding of the three sums
        return 1.0
    return max(-1.0, min(1.0, acc["sum_gm"] / math.sqrt(gg) / math.sqrt(mm)))


def _kl(acc: dict[str, float]) -> float:
    lse_g = acc["kl_g_max"] + math.log(acc["kl_g_sum"])
    lse_m = acc["kl_m_max"] + math.log(acc["kl_m_sum"])
    kl = acc["kl_g_dot"] / acc["kl_g_sum"] - lse_g + lse_m
    return 0.0 if kl < 0 else kl  # rounding can go below 0; a NaN (broken sums) stays visible


def _red(acc: dict[str, float]) -> float:
    if acc["sum_gg"] == 0:
        return 0.0 if acc["sum_dd"] == 0 else math.inf
    return math.sqrt(acc["sum_dd"] / acc["sum_gg"])


def _sqnr(acc: dict[str, float]) -> float:
    if acc["sum_dd"] == 0:
        return math.inf
    if acc["sum_gg"] == 0:
        return -math.inf
    # a difference of logarithms: the quotient itself can underflow to 0 (or overflow)
    return 10.0 * (math.log10(acc["sum_gg"]) - math.log10(acc["sum_dd"]))


def unravel_index(flat_index: int, shape: Sequence[int]) -> tuple[int, ...]:
    """The multi-index of a flat (row-major) position."""
    if not shape:
        return ()
    index = []
    for size in reversed(shape):
        flat_index, position = divmod(flat_index, size)
        index.append(position)
    return tuple(reversed(index))


def _finalize(
    acc: dict[str, float],
    golden: Side,
    my: Side,
    tol: Tolerance,
    note: str = "",
    unravel: Callable[[int], tuple[int, ...]] | None = None,
) -> CompareResult:
    """The result from the accumulators of the whole pair."""
    n = int(acc["both_finite"])
    mismatch = int(acc["nonfinite_mismatch"])
    if n == 0:
        metrics = {
            "cosine_similarity": 1.0, "max_relative_error": 0.0, "mean_relative_error": 0.0,
            "max_absolute_error": 0.0, "mean_absolute_error": 0.0, "kl_divergence": 0.0,
            "relative_euclidean_distance": 0.0, "sqnr_db": math.inf, "rel_err_ratio_0_001": 1.0,
            "rel_err_ratio_0_005": 1.0, "max_ulp_error": 0.0, "tolerance_pass_rate": 1.0,
        }  # fmt: skip
        empty = "both tensors are empty" if not acc["count"] else "no position is finite on both sides"
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
        position = int(acc["worst_index"])
        worst = unravel(position) if unravel is not None else unravel_index(position, golden.shape)
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
        golden_dtype=golden.dtype,
        golden_shape=golden.shape,
        golden_max_value=g_max,
        golden_min_value=g_min,
        golden_mean_value=g_mean,
        my_dtype=my.dtype,
        my_shape=my.shape,
        my_max_value=m_max,
        my_min_value=m_min,
        my_mean_value=m_mean,
        fail_reason=fail_reason,
        note=note,
    )


def _incomparable(golden: Side, my: Side, tol: Tolerance, reason: str) -> CompareResult:
    """The result of a pair whose element counts differ: NaN metrics and ``reason``."""
    nan_fields = {f.name: math.nan for f in fields(CompareResult) if f.name in METRICS}
    return CompareResult(
        **nan_fields,
        tolerance=str(tol),
        golden_nan_count=0,
        golden_inf_count=0,
        my_nan_count=0,
        my_inf_count=0,
        nonfinite_positions_match=True,
        element_count=math.prod(golden.shape),
        compared_count=0,
        worst_index=(),
        worst_golden_value=math.nan,
        worst_my_value=math.nan,
        golden_dtype=golden.dtype,
        golden_shape=golden.shape,
        golden_max_value=math.nan,
        golden_min_value=math.nan,
        golden_mean_value=math.nan,
        my_dtype=my.dtype,
        my_shape=my.shape,
        my_max_value=math.nan,
        my_min_value=math.nan,
        my_mean_value=math.nan,
        fail_reason=reason,
    )
