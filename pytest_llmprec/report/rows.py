"""One report row per compared pair: the 24 standard columns of msit's compare report, then ours."""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..compare.results import CompareResult
    from ..dumps.base import TensorRecord
    from ..standards import Verdict

STANDARD_COLUMNS = (
    "token_id", "data_id",
    "golden_data_path", "golden_op_type", "golden_dtype", "golden_shape",
    "golden_max_value", "golden_min_value", "golden_mean_value",
    "my_data_path", "my_op_type", "my_dtype", "my_shape",
    "my_max_value", "my_min_value", "my_mean_value",
    "cosine_similarity", "max_relative_error", "mean_relative_error", "max_absolute_error",
    "mean_absolute_error", "kl_divergence", "relative_euclidean_distance",
    "cmp_fail_reason",
)  # fmt: skip
"""msit-spec §4.1, in that order."""

EXTRA_COLUMNS = (
    "pair_key", "node_order", "verdict", "failed_checks", "check_sources", "standard",
    "sqnr_db", "rel_err_ratio_0_001", "rel_err_ratio_0_005", "max_ulp_error",
    "tolerance_pass_rate", "tolerance",
    "golden_nan_count", "golden_inf_count", "my_nan_count", "my_inf_count", "compared_count",
    "worst_index", "worst_golden_value", "worst_my_value", "baseline", "note",
)  # fmt: skip

LOCAL_COLUMNS = (
    "introduced_red", "inherited_red", "local_limit", "introduced_by", "evidence", "local_verdict",
    "accumulated_verdict",
)  # fmt: skip
"""The local verdict (``verdict.local``): the error the node introduces, the error its sources
explain, the limit applied, the node answerable, the evidence used, and both verdicts."""

OVERFLOW_COLUMNS = ("golden_overflow", "my_overflow", "my_overflow_counts")
"""NaN, Inf or saturated values on either side (``overflow.compare_columns.result_overflow_columns``)."""

COLUMNS = STANDARD_COLUMNS + EXTRA_COLUMNS + OVERFLOW_COLUMNS + LOCAL_COLUMNS

PASSED, FAILED, ERROR = "passed", "failed", "error"

STAMP_FORMAT = "%Y%m%d%H%M%S"
"""The time stamp in report file names (the UTC time the run started)."""

UNMATCHED_COLUMNS = ("side", "token_id", "node", "leaf", "node_type", "data_path", "reason")
"""The unmatched report: one row per tensor without a partner."""

_MEMBER = re.compile(r"(.*)\[([^\[\]/]*)\]")


def _shape(shape: tuple[int, ...]) -> str:
    return str(list(shape))


def _checks(verdict: Verdict) -> tuple[str, str]:
    """``metric = value (needs op threshold)`` for each failed check, and their sources."""
    failed, sources = [], []
    for outcome in verdict.failures:
        options = getattr(outcome.check, "options", (outcome.check,))
        values = ", ".join(f"{t.metric} = {v:.6g}" for t, v in zip(options, outcome.actual, strict=True))
        needs = " or ".join(f"{t.op} {t.value:g}" for t in options)
        failed.append(f"{values} (needs {needs})")
        sources += [t.source for t in options]
    return "; ".join(failed + list(verdict.problems)), "; ".join(dict.fromkeys(sources))


def comparison_row(
    key: str,
    order: int,
    token: int | str,
    golden: TensorRecord | None,
    my: TensorRecord | None,
    result: CompareResult,
    verdict: Verdict,
    regressions: list[str] = (),
) -> dict[str, Any]:
    """The report row of a compared pair; ``golden``/``my`` are None for hand-written comparisons."""
    failed, sources = _checks(verdict)
    if regressions:
        failed = "; ".join(filter(None, [failed, *regressions]))
        sources = "; ".join(filter(None, [sources, "baseline"]))
    row = {
        "token_id": token,
        "golden_data_path": golden.describe() if golden else "",
        "golden_op_type": golden.node_type if golden else "",
        "my_data_path": my.describe() if my else "",
        "my_op_type": my.node_type if my else "",
        "cmp_fail_reason": result.fail_reason,
        "pair_key": key,
        "node_order": order,
        "verdict": PASSED if verdict.passed and not regressions else FAILED,
        "failed_checks": failed,
        "check_sources": sources,
        "standard": verdict.standard.name,
        "baseline": "regressed" if regressions else "",
    }
    names, read = _result_columns(type(result), tuple(row))
    row.update(zip(names, read(result), strict=True))
    row["golden_shape"] = _shape(result.golden_shape)
    row["my_shape"] = _shape(result.my_shape)
    row["worst_index"] = str(tuple(result.worst_index)) if result.compared_count else ""
    return row


@functools.cache
def _result_columns(
    kind: type, filled: tuple[str, ...]
) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """The columns a result of type ``kind`` fills besides those ``filled`` already, and a reader of
    their values in that order."""
    names = tuple(c for c in COLUMNS if c not in filled and c in {f.name for f in fields(kind)})
    read = operator.attrgetter(*names) if len(names) > 1 else lambda result: (getattr(result, names[0]),)
    return names, read


def error_row(
    key: str, order: int, token: int | str, golden: TensorRecord, my: TensorRecord, message: str
) -> dict[str, Any]:
    """The row of a pair that could not be compared (an unreadable file)."""
    return {
        "token_id": token,
        "golden_data_path": golden.describe(),
        "golden_op_type": golden.node_type,
        "my_data_path": my.describe(),
        "my_op_type": my.node_type,
        "cmp_fail_reason": message,
        "pair_key": key,
        "node_order": order,
        "verdict": ERROR,
    }


def row_sort_key(row: dict[str, Any]) -> tuple:
    """Dump pairs in execution order first, then hand-written comparisons by id."""
    order = row.get("node_order")
    return (order is None or order == "", order if isinstance(order, int) else 0, str(row.get("pair_key")))


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def split_member(text: str) -> tuple[str, str | None]:
    """A path cell (``TensorRecord.describe``: ``path`` or ``path[member]``) as the file and member."""
    match = _MEMBER.fullmatch(text)
    return (match.group(1), match.group(2)) if match else (text, None)
