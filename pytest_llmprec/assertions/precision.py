"""Precision assertions for tests: ``assert_close_cos(golden, my, 0.999)`` and friends.

Each raises ``PrecisionError`` (an ``AssertionError``) carrying the ``CompareResult`` and the
``Verdict``, with a message built here (pytest's assertion rewriting does not reach helper
functions): every failed check with its value, threshold and source, the setting that would
have passed, both dtypes and shapes, how many elements exceed the element-wise bound and the
worst element.
"""

from __future__ import annotations

from ..compare.metrics import TensorLike, as_tensor, compare_tensors, row_kl_divergence
from ..compare.results import CompareResult, unravel_index
from ..standards import Layer, Standard, Threshold, resolve_standard, round_outward
from ..standards.thresholds import Tolerance
from .checks import PrecisionError, check_precision, result_details


def assert_precision(
    golden: TensorLike,
    my: TensorLike,
    standard: str | Standard | None = None,
    *,
    tolerance: Tolerance | None = None,
    **thresholds: float,
) -> CompareResult:
    """Check several metrics at once against a standard (``default`` unless named).

    Keyword thresholds (``min_cos``, ``max_red``, ``max_abs_err``, ... see
    ``names.THRESHOLD_KEYWORDS``) replace the standard's checks on the same metric.
    Returns the ``CompareResult`` when the check passes.
    """
    __tracebackhide__ = True
    g, m = as_tensor(golden, "golden"), as_tensor(my, "my")
    layer = Layer.from_keywords("call argument", profile=standard, tolerance=tolerance, **thresholds)
    return check_precision(g, m, resolve_standard(g.dtype, m.dtype, [layer]), "assert_precision")[0]


def _single(golden: TensorLike, my: TensorLike, keyword: str, value: float, what: str) -> CompareResult:
    __tracebackhide__ = True
    threshold = Threshold.from_keyword(keyword, value, "call argument")
    return check_precision(golden, my, Standard(what, (threshold,)), what)[0]


def assert_close_cos(golden: TensorLike, my: TensorLike, min_cos: float = 0.999) -> CompareResult:
    """Cosine similarity of the flattened tensors is at least ``min_cos``."""
    __tracebackhide__ = True
    return _single(golden, my, "min_cos", min_cos, "assert_close_cos")


def assert_max_abs_error(golden: TensorLike, my: TensorLike, atol: float) -> CompareResult:
    """Every ``|my - golden|`` is at most ``atol``."""
    __tracebackhide__ = True
    return _single(golden, my, "max_abs_err", atol, "assert_max_abs_error")


def assert_max_rel_error(golden: TensorLike, my: TensorLike, rtol: float) -> CompareResult:
    """Every relative error (positions with ``|golden| <= 2**-23`` excluded) is at most ``rtol``."""
    __tracebackhide__ = True
    return _single(golden, my, "max_rel_err", rtol, "assert_max_rel_error")


def assert_mean_rel_error(golden: TensorLike, my: TensorLike, max_mean_rel: float) -> CompareResult:
    """The mean relative error is at most ``max_mean_rel``."""
    __tracebackhide__ = True
    return _single(golden, my, "max_mean_rel_err", max_mean_rel, "assert_mean_rel_error")


def assert_red(golden: TensorLike, my: TensorLike, max_red: float) -> CompareResult:
    """The relative Euclidean distance ``||my - golden|| / ||golden||`` is at most ``max_red``."""
    __tracebackhide__ = True
    return _single(golden, my, "max_red", max_red, "assert_red")


def assert_sqnr(golden: TensorLike, my: TensorLike, min_db: float) -> CompareResult:
    """The signal-to-quantisation-noise ratio is at least ``min_db`` decibels."""
    __tracebackhide__ = True
    return _single(golden, my, "min_sqnr_db", min_db, "assert_sqnr")


def assert_ulp(golden: TensorLike, my: TensorLike, max_ulp: float) -> CompareResult:
    """Every error is at most ``max_ulp`` units of last place of my's dtype at the golden value."""
    __tracebackhide__ = True
    return _single(golden, my, "max_ulp", max_ulp, "assert_ulp")


def assert_kl_div(golden: TensorLike, my: TensorLike, max_kl: float, dim: int = -1) -> CompareResult:
    """KL(softmax(golden) || softmax(my)) along ``dim`` is at most ``max_kl`` for every row."""
    __tracebackhide__ = True
    g, m = as_tensor(golden, "golden"), as_tensor(my, "my")
    result = compare_tensors(g, m)
    if g.shape != m.shape:
        raise PrecisionError(
            f"assert_kl_div failed: golden {result.golden_dtype} {list(g.shape)} and my "
            f"{result.my_dtype} {list(m.shape)} must have equal shapes for a row-wise KL",
            result,
        )
    rows = row_kl_divergence(g, m, dim)
    bad = ~(rows <= max_kl)
    if not bool(bad.any()):
        return result
    flat = rows.reshape(-1).nan_to_num(nan=float("inf"))
    worst_flat = int(flat.argmax())
    worst_row = unravel_index(worst_flat, tuple(rows.shape))
    worst = float(rows.reshape(-1)[worst_flat])
    lines = [
        f"assert_kl_div failed for golden {result.golden_dtype} {list(g.shape)} vs my {result.my_dtype} "
        f"{list(m.shape)}, softmax along dim {dim}",
        f"  kl_divergence of the worst row {worst_row} = {worst:.6g} > {max_kl:g} allowed "
        f"[source: call argument]; passes with max_kl={round_outward(worst, up=True)}",
        f"  rows over the bound: {int(bad.sum())} of {rows.numel()}; mean row KL {float(rows.nanmean()):.6g}",
    ]
    lines += result_details(result)
    raise PrecisionError("\n".join(lines), result)
