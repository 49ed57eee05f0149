"""The opcheck report: msit's opcheck columns (msit-spec §4.6) in their order, then ours.

One row per (case, output), in execution order; a case without outputs compared (not checkable,
unreadable) has one row with an empty ``out_tensor_id``. Written atomically as
``llmprec_opcheck_report_{YYYYmmddHHMMSS}.csv`` with spreadsheet formulas neutralised.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..dtypes import msit_error_level
from ..report.csv_files import write_csv
from ..report.rows import STAMP_FORMAT
from .check import ERROR, FAILED, NOT_CHECKABLE, PASSED, CaseResult, OutputCheck, msit_pass_rate

REPORT_PREFIX = "llmprec_opcheck_report_"

MSIT_BASE = (
    "op_id", "op_name", "op_param", "tensor_path", "out_tensor_id", "precision_standard",
    "precision_result", "rel_precision_rate(%)", "max_rel_error",
)  # fmt: skip
MSIT_OPTIONAL = {
    "abs": ("abs_precision_rate(%)", "max_abs_error"),
    "cos_sim": ("cosine_similarity",),
    "kl": ("kl_divergence",),
}
"""msit's optional columns by ``-metric`` choice, in report order."""

EXTRA_COLUMNS = (
    "case_id", "kind", "token_id", "rank", "node", "node_order", "status", "verdict", "standard",
    "failed_checks", "check_sources", "actual_dtype", "actual_shape", "reference_shape",
    "max_ulp_error", "relative_euclidean_distance", "tolerance_pass_rate", "tolerance",
    "opcheck_max_abs_error", "reason",
)  # fmt: skip
"""Ours, after msit's: ``verdict`` is the deciding standard's (``standard``), ``status`` the case's."""

MSIT_PASS, MSIT_FAILED, MSIT_UNSUPPORTED = "PASS", "FAILED", "addition failed"


def columns(metrics: Iterable[str] = ("abs", "cos_sim", "kl")) -> tuple[str, ...]:
    """The report columns for the chosen optional msit metrics."""
    chosen = set(metrics)
    unknown = chosen - set(MSIT_OPTIONAL)
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(sorted(unknown))}; choose from abs cos_sim kl")
    optional = tuple(name for key, names in MSIT_OPTIONAL.items() if key in chosen for name in names)
    return (*MSIT_BASE, *optional, "fail_reason", *EXTRA_COLUMNS)


def case_rows(result: CaseResult) -> list[dict[str, Any]]:
    """The report rows of one checked case."""
    case = result.case
    common = {
        "op_id": case.op_id,
        "op_name": case.op_type,
        "op_param": case.op_param_text or "",
        "tensor_path": case.path,
        "case_id": case.case_id,
        "kind": case.kind,
        "token_id": case.token,
        "rank": case.rank,
        "node": case.node,
        "node_order": case.order,
        "status": result.status,
        "standard": result.standard,
    }
    if not result.outputs:
        msit_result = MSIT_UNSUPPORTED if result.status == NOT_CHECKABLE else MSIT_FAILED
        return [
            {
                **common,
                "precision_result": msit_result,
                "verdict": FAILED if result.status == ERROR else result.status,
                "fail_reason": result.reason,
                "reason": result.reason,
            }
        ]
    return [_output_row(common, check, result, result.count_differs) for check in result.outputs]


def _output_row(common: dict[str, Any], check: OutputCheck, result: CaseResult, count_problem: bool) -> dict:
    msit, ours = check.msit_result, check.result
    dtype = ours.my_dtype
    level = msit_error_level(dtype)
    required = msit_pass_rate(check.msit_verdict.standard)
    msit_passed = check.msit_verdict.passed and not count_problem
    reasons = []
    if not check.msit_verdict.passed:
        rate = 100.0 * msit.tolerance_pass_rate
        reasons.append(f"relative pass rate: {rate} not met standard: {required:g}.")
        reasons += list(check.msit_verdict.problems)
    if count_problem:
        reasons.append(result.reason.split(";")[0])
    failed, sources = _checks(check)
    row = {
        **common,
        "out_tensor_id": check.index,
        "precision_standard": f"{required:g}%(error<{level!r})",
        "precision_result": MSIT_PASS if msit_passed else MSIT_FAILED,
        "rel_precision_rate(%)": 100.0 * msit.tolerance_pass_rate,
        "max_rel_error": msit.max_relative_error,
        "cosine_similarity": msit.cosine_similarity,
        "kl_divergence": msit.kl_divergence,
        "fail_reason": ", ".join(reasons),
        "verdict": PASSED if check.verdict.passed and not count_problem else FAILED,
        "standard": check.verdict.standard.name,
        "failed_checks": failed,
        "check_sources": sources,
        "actual_dtype": dtype,
        "actual_shape": str(list(ours.my_shape)),
        "reference_shape": str(list(ours.golden_shape)),
        "max_ulp_error": ours.max_ulp_error,
        "relative_euclidean_distance": ours.relative_euclidean_distance,
        "tolerance_pass_rate": ours.tolerance_pass_rate,
        "tolerance": ours.tolerance,
        "opcheck_max_abs_error": ours.max_absolute_error,
        "reason": result.reason if not check.verdict.passed or count_problem else "",
    }
    if check.abs_result is not None:
        row["abs_precision_rate(%)"] = 100.0 * check.abs_result.tolerance_pass_rate
        row["max_abs_error"] = check.abs_result.max_absolute_error
    return row


def _checks(check: OutputCheck) -> tuple[str, str]:
    failed, sources = [], []
    for outcome in check.verdict.failures:
        options = getattr(outcome.check, "options", (outcome.check,))
        values = ", ".join(f"{t.metric} = {v:.6g}" for t, v in zip(options, outcome.actual, strict=True))
        failed.append(f"{values} (needs {' or '.join(f'{t.op} {t.value:g}' for t in options)})")
        sources += [t.source for t in options]
    return "; ".join(failed + list(check.verdict.problems)), "; ".join(dict.fromkeys(sources))


def report_path(folder: Path, started: time.struct_time | None = None) -> Path:
    stamp = time.strftime(STAMP_FORMAT, started or time.gmtime())
    return folder / f"{REPORT_PREFIX}{stamp}.csv"


def write_report(
    path: Path, rows: Sequence[dict[str, Any]], metrics: Iterable[str] = ("abs", "cos_sim", "kl")
) -> Path:
    """Write ``rows`` (from ``case_rows``) to ``path`` atomically, in execution order."""
    ordered = sorted(rows, key=row_sort_key)
    return write_csv(path, columns(metrics), ordered)


def row_sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    order = row.get("node_order")
    index = row.get("out_tensor_id")
    return (
        not isinstance(order, int),
        order if isinstance(order, int) else 0,
        str(row.get("case_id")),
        index if isinstance(index, int) else -1,
    )
