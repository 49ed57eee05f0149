"""Precision assertions for tests: ``assert_close_cos(golden, mine, 0.999)`` and friends.

Each raises ``PrecisionError`` (an ``AssertionError``) carrying the ``CompareResult`` and the
``Verdict``, with a message built here (pytest's assertion rewriting does not reach helper
functions): every failed check with its value, threshold and source, the setting that would
have passed, both dtypes and shapes, how many elements exceed the element-wise bound and the
worst element.
"""

from __future__ import annotations

from .messages import failure_message, result_details
from .metrics import TensorLike, as_tensor, compare_tensors, row_kl_divergence
from .results import CompareResult, unravel_index
from .standards import Layer, Standard, Threshold, Verdict, judge, resolve_standard, round_outward
from .thresholds import Tolerance


class PrecisionError(AssertionError):
    """A precision assertion failed; ``result`` and ``verdict`` hold the details."""

    def __init__(self, message: str, result: CompareResult, verdict: Verdict | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.verdict = verdict


def assert_precision(
    golden: TensorLike,
    mine: TensorLike,
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
    g, m = as_tensor(golden, "golden"), as_tensor(mine, "my")
    layer = Layer.from_keywords("call argument", profile=standard, tolerance=tolerance, **thresholds)
    return check_precision(g, m, resolve_standard(g.dtype, m.dtype, [layer]), "assert_precision")


def check_precision(golden: TensorLike, mine: TensorLike, standard: Standard, what: str) -> CompareResult:
    """Compare, judge against ``standard`` and raise ``PrecisionError`` on failure."""
    __tracebackhide__ = True
    result = compare_tensors(golden, mine, tolerance=standard.tolerance)
    verdict = judge(result, standard)
    if not verdict.passed:
        raise PrecisionError(failure_message(what, golden, mine, result, verdict), result, verdict)
    return result


def _single(golden: TensorLike, mine: TensorLike, keyword: str, value: float, what: str) -> CompareResult:
    __tracebackhide__ = True
    threshold = Threshold.from_keyword(keyword, value, "call argument")
    return check_precision(golden, mine, Standard(what, (threshold,)), what)


def assert_close_cos(golden: TensorLike, mine: TensorLike, min_cos: float = 0.999) -> CompareResult:
    """Cosine similarity of the flattened tensors is at least ``min_cos``."""
    __tracebackhide__ = True
    return _single(golden, mine, "min_cos", min_cos, "assert_close_cos")


def assert_max_abs_error(golden: TensorLike, mine: TensorLike, atol: float) -> CompareResult:
    """Every ``|mine - golden|`` is at most ``atol``."""
    __tracebackhide__ = True
    return _single(golden, mine, "max_abs_err", atol, "assert_max_abs_error")


def assert_max_rel_error(golden: TensorLike, mine: TensorLike, rtol: float) -> CompareResult:
    """Every relative error (positions with ``|golden| <= 2**-23`` excluded) is at most ``rtol``."""
    __tracebackhide__ = True
    return _single(golden, mine, "max_rel_err", rtol, "assert_max_rel_error")


def assert_mean_rel_error(golden: TensorLike, mine: TensorLike, max_mean_rel: float) -> CompareResult:
    """The mean relative error is at most ``max_mean_rel``."""
    __tracebackhide__ = True
    return _single(golden, mine, "max_mean_rel_err", max_mean_rel, "assert_mean_rel_error")


def assert_red(golden: TensorLike, mine: TensorLike, max_red: float) -> CompareResult:
    """The relative Euclidean distance ``||mine - golden|| / ||golden||`` is at most ``max_red``."""
    __tracebackhide__ = True
    return _single(golden, mine, "max_red", max_red, "assert_red")


def assert_sqnr(golden: TensorLike, mine: TensorLike, min_db: float) -> CompareResult:
    """The signal-to-quantisation-noise ratio is at least ``min_db`` decibels."""
    __tracebackhide__ = True
    return _single(golden, mine, "min_sqnr_db", min_db, "assert_sqnr")


def assert_ulp(golden: TensorLike, mine: TensorLike, max_ulp: float) -> CompareResult:
    """Every error is at most ``max_ulp`` units of last place of mine's dtype at the golden value."""
    __tracebackhide__ = True
    return _single(golden, mine, "max_ulp", max_ulp, "assert_ulp")


def assert_kl_div(golden: TensorLike, mine: TensorLike, max_kl: float, dim: int = -1) -> CompareResult:
    """KL(softmax(golden) || softmax(mine)) along ``dim`` is at most ``max_kl`` for every row."""
    __tracebackhide__ = True
    g, m = as_tensor(golden, "golden"), as_tensor(mine, "my")
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
