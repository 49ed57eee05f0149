"""A precision check: compare, judge against a standard, and raise ``PrecisionError`` with a message
that says what failed, by how much, and what would pass. Shared by the assertions, the plugin's
``llm_compare`` fixture and the dump comparison pipeline.

Importable without torch: two raw reads of dump files (``formats.RawTensor``) are compared, and the
elements over a bound counted, by the C kernel; other inputs go through torch.
"""

from __future__ import annotations

import math
from typing import Any

from ..compare import native
from ..compare.dispatch import compare_any, raw_comparable
from ..compare.results import COUNTS_DIFFER, CompareResult
from ..standards import Outcome, Standard, Verdict, judge

_ELEMENTWISE = {"max_absolute_error": "abs", "max_relative_error": "rel", "max_ulp_error": "ulp"}
_ERROR_TEXT = {"abs": "|my - golden|", "rel": "relative error", "ulp": "error in ULP"}


class PrecisionError(AssertionError):
    """A precision check failed; ``result`` and ``verdict`` hold the details."""

    def __init__(self, message: str, result: CompareResult, verdict: Verdict | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.verdict = verdict


def check_precision(golden: Any, my: Any, standard: Standard, what: str) -> tuple[CompareResult, Verdict]:
    """Compare ``my`` with ``golden``, judge the result against ``standard``; raise ``PrecisionError``
    (naming ``what``) when it fails, else return the result and the verdict."""
    __tracebackhide__ = True
    result = compare_any(golden, my, tolerance=standard.tolerance)
    verdict = judge(result, standard)
    if not verdict.passed:
        raise PrecisionError(failure_message(what, golden, my, result, verdict), result, verdict)
    return result, verdict


def count_exceeding(golden: Any, my: Any, kind: str, bound: float) -> int:
    """How many elements finite on both sides have an error of ``kind`` above ``bound``."""
    if raw_comparable(golden, my):
        return native.count_exceeding_raw(golden, my, kind, bound)
    from ..compare.metrics import count_exceeding as count_with_torch

    return count_with_torch(golden, my, kind, bound)


def failure_message(what: str, golden: Any, my: Any, result: CompareResult, verdict: Verdict) -> str:
    """The multi-line explanation of a failed verdict."""
    head = (
        f"{what} failed for golden {result.golden_dtype} {list(result.golden_shape)} vs my "
        f"{result.my_dtype} {list(result.my_shape)}"
    )
    if result.fail_reason.startswith(COUNTS_DIFFER):
        counts = math.prod(result.golden_shape), math.prod(result.my_shape)
        return f"{head}: the element counts differ ({counts[0]} vs {counts[1]}); no metric can pass"
    lines = [f"{head} (standard {verdict.standard.name!r})"]
    for outcome in verdict.failures:
        lines.append(f"  FAILED {outcome.describe()}; {_would_pass(outcome)}")
        lines += _exceeding(golden, my, outcome)
    lines += [f"  FAILED {problem}" for problem in verdict.problems]
    passed = [o for o in verdict.outcomes if o.passed]
    lines += [f"  ok     {o.describe()}" for o in passed]
    lines += result_details(result)
    return "\n".join(lines)


def _would_pass(outcome: Outcome) -> str:
    check = outcome.check
    options = check.options if hasattr(check, "options") else (check,)
    hints = [t.relaxed_to(v) for t, v in zip(options, outcome.actual, strict=True)]
    return "passes with " + " or ".join(hints)


def _exceeding(golden: Any, my: Any, outcome: Outcome) -> list[str]:
    check = outcome.check
    kind = _ELEMENTWISE.get(getattr(check, "metric", ""))
    if kind is None or check.op not in ("<=", "<"):
        return []
    count = count_exceeding(golden, my, kind, check.value)
    return [f"         elements with {_ERROR_TEXT[kind]} > {check.value:g}: {count}"]


def result_details(result: CompareResult) -> list[str]:
    lines = []
    if result.compared_count:
        share = 1.0 - result.tolerance_pass_rate
        lines.append(
            f"  elements outside the element-wise bound ({result.tolerance}): "
            f"{round(share * result.compared_count)} of {result.compared_count} ({share:.2%})"
        )
        diff = abs(result.worst_my_value - result.worst_golden_value)
        lines.append(
            f"  worst element at index {result.worst_index}: golden {result.worst_golden_value:.8g}, "
            f"my {result.worst_my_value:.8g} (|diff| {diff:.6g})"
        )
    lines.append(
        "  metrics: "
        f"cosine {result.cosine_similarity:.10g}, max_abs {result.max_absolute_error:.6g}, "
        f"mean_abs {result.mean_absolute_error:.6g}, max_rel {result.max_relative_error:.6g}, "
        f"mean_rel {result.mean_relative_error:.6g}, red {result.relative_euclidean_distance:.6g}, "
        f"kl {result.kl_divergence:.6g}, sqnr {result.sqnr_db:.4g} dB, max_ulp {result.max_ulp_error:.6g}"
    )
    lines.append(
        f"  non-finite: golden {result.golden_nan_count} NaN / {result.golden_inf_count} Inf, "
        f"my {result.my_nan_count} NaN / {result.my_inf_count} Inf"
    )
    for extra in (result.fail_reason, result.note):
        if extra:
            lines.append(f"  note: {extra}")
    return lines
