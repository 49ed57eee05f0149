"""Report rows of overflow findings, msit's result line, and the first overflow of a set of rows
(torch-free: used by the plugin's summary, ``llmprec errcheck`` and the comparison reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .finding import OverflowFinding

if TYPE_CHECKING:
    from ..dumps.base import TensorRecord

FINDING_COLUMNS = (
    "dtype", "shape", "count", "nan_count", "pos_inf_count", "neg_inf_count", "saturated_count",
    "near_count", "near_ratio", "first_index", "first_value", "note",
)  # fmt: skip
"""The columns ``finding_columns`` fills."""

DUMP_COLUMNS = (
    "order", "token_id", "rank", "node", "node_type", "leaf", "data_path", "verdict", "overflow",
    *FINDING_COLUMNS, "error",
)  # fmt: skip
"""The overflow report of a dump scan (``llmprec_overflow_{ts}.csv``), one row per scanned tensor."""

OVERFLOW, NEAR, OK, ERROR = "overflow", "near", "ok", "error"


def msit_line(operator: str, kernel: str) -> str:
    """One line of msit's errcheck result file (msit-spec §4.7), newline included."""
    return f"Overflow detected! Operator name: {operator}:{kernel}\n"


def finding_columns(finding: OverflowFinding) -> dict[str, Any]:
    return {
        "dtype": finding.dtype.removeprefix("torch."),
        "shape": str(list(finding.shape)),
        "count": finding.count,
        "nan_count": finding.nan,
        "pos_inf_count": finding.pos_inf,
        "neg_inf_count": finding.neg_inf,
        "saturated_count": finding.saturated,
        "near_count": finding.near,
        "near_ratio": finding.near_ratio,
        "first_index": "" if finding.first_index is None else str(finding.first_index),
        "first_value": finding.first_value,
        "note": finding.note,
    }


def verdict_of(finding: OverflowFinding, near: bool) -> str:
    """``overflow``, ``near`` (only when near-overflow values fail) or ``ok``."""
    if finding.overflowed:
        return OVERFLOW
    return NEAR if near and finding.near else OK


def dump_row(
    record: TensorRecord, finding: OverflowFinding | None, *, near: bool = False, error: str = ""
) -> dict[str, Any]:
    """The report row of one scanned tensor of a dump (``finding`` None: it could not be read)."""
    row = {
        "order": record.order,
        "token_id": record.token,
        "rank": record.rank,
        "node": record.node,
        "node_type": record.node_type,
        "leaf": record.leaf,
        "data_path": record.describe(),
    }
    if finding is None:
        return {**row, "verdict": ERROR, "error": error}
    verdict = verdict_of(finding, near)
    return {**row, "verdict": verdict, "overflow": finding.counts_text(), **finding_columns(finding)}


def first_flagged(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The row earliest in execution order (``order``) whose verdict is overflow, else near."""
    for verdict in (OVERFLOW, NEAR):
        flagged = [row for row in rows if row.get("verdict") == verdict]
        if flagged:
            return min(flagged, key=lambda row: row["order"])
    return None


def dump_summary_lines(rows: Sequence[dict[str, Any]], reports: Sequence[str] = ()) -> list[str]:
    """The terminal summary of a dump scan: counts and the first overflow in execution order."""
    nodes = len({(row.get("token_id"), row.get("rank"), row.get("node")) for row in rows})
    counts = {verdict: 0 for verdict in (OVERFLOW, NEAR, OK, ERROR)}
    for row in rows:
        counts[row.get("verdict", ERROR)] += 1
    lines = [
        f"{nodes} nodes scanned, {len(rows)} tensors: {counts[OVERFLOW]} overflowed, "
        f"{counts[NEAR]} near overflow, {counts[ERROR]} unreadable"
    ]
    first = first_flagged(rows)
    if first is not None:
        where = f"token {first['token_id']} {first['node']}" + (
            f" ({first['node_type']})" if first.get("node_type") else ""
        )
        lines.append(f"first {first['verdict']}: {where} {first['leaf']}: {first['overflow']}")
    lines += [f"report: {path}" for path in reports]
    return lines
