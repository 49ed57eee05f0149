"""Overflow columns of a compared golden/my pair and the summary line naming the first overflow of the
my side, for the dump comparison (``--llm-golden``/``--llm-my``) reports.

``overflow_columns`` scans the pair's two tensors (torch tensors or ``formats.RawTensor`` raw reads);
``first_overflow_line`` reads only report rows (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .finding import DEFAULT_NEAR, dtype_limits

PAIR_COLUMNS = (
    "golden_overflow", "my_overflow", "my_overflow_counts", "golden_saturated_count", "my_saturated_count",
    "golden_near_overflow_ratio", "my_near_overflow_ratio", "my_first_overflow_index",
)  # fmt: skip
"""The columns ``overflow_columns`` fills, to append to the comparison report's extra columns.
``*_overflow`` is ``nan``, ``inf``, ``saturated``, ``near`` (only near overflow) or empty."""

OVERFLOW_KINDS = ("nan", "inf", "saturated")


def overflow_columns(
    golden: Any, my: Any, *, near: float | None = DEFAULT_NEAR, saturation: bool = True
) -> dict[str, Any]:
    """The ``PAIR_COLUMNS`` of one compared pair, scanning each tensor once on its device."""
    from ..formats.raw import RawTensor
    from .scanning import scan

    golden_finding, my_finding = (
        scan(value.to_torch() if isinstance(value, RawTensor) else value, near=near, saturation=saturation)
        for value in (golden, my)
    )
    return {
        "golden_overflow": golden_finding.kind(),
        "my_overflow": my_finding.kind(),
        "my_overflow_counts": my_finding.counts_text() if my_finding.kind() else "",
        "golden_saturated_count": golden_finding.saturated,
        "my_saturated_count": my_finding.saturated,
        "golden_near_overflow_ratio": golden_finding.near_ratio,
        "my_near_overflow_ratio": my_finding.near_ratio,
        "my_first_overflow_index": "" if my_finding.first_index is None else str(my_finding.first_index),
    }


RESULT_COLUMNS = ("golden_overflow", "my_overflow", "my_overflow_counts")
"""The columns every dump comparison row carries, from the pair's ``CompareResult`` alone."""


def _side_overflow(result: Any, side: str) -> tuple[str, str]:
    """(kind, counts) of one side of ``result``: NaN, Inf, or values at the dtype's largest finite
    magnitude (``saturated``, counted by the full scan of ``overflow_columns``, here only seen)."""
    nan, inf = getattr(result, f"{side}_nan_count"), getattr(result, f"{side}_inf_count")
    parts = [f"{count} {label}" for count, label in ((nan, "NaN"), (inf, "Inf")) if count]
    limits = dtype_limits(getattr(result, f"{side}_dtype"))
    extremes = (getattr(result, f"{side}_max_value"), getattr(result, f"{side}_min_value"))
    saturated = (
        limits is not None and limits.floating and any(abs(v) >= limits.high for v in extremes if v == v)
    )
    if saturated:
        parts.append(f"values at ±{limits.high:g}")
    kind = "nan" if nan else "inf" if inf else "saturated" if saturated else ""
    return kind, ", ".join(parts)


def result_overflow_columns(result: Any) -> dict[str, Any]:
    """The ``RESULT_COLUMNS`` of a compared pair, from its ``CompareResult`` (no tensor read)."""
    golden_kind, _ = _side_overflow(result, "golden")
    my_kind, my_counts = _side_overflow(result, "my")
    return {"golden_overflow": golden_kind, "my_overflow": my_kind, "my_overflow_counts": my_counts}


def first_overflow_line(rows: Sequence[dict[str, Any]]) -> str | None:
    """``first overflow (my): <pair> (<op type>): <counts>; golden: ...`` for the dump pair earliest in
    execution order (``node_order``) whose my side overflowed; None when none did."""
    overflowing = [
        row
        for row in rows
        if row.get("my_overflow") in OVERFLOW_KINDS and isinstance(row.get("node_order"), int)
    ]
    if not overflowing:
        return None
    first = min(overflowing, key=lambda row: row["node_order"])
    op_type = first.get("my_op_type") or first.get("golden_op_type")
    where = f"{first['pair_key']}" + (f" ({op_type})" if op_type else "")
    golden = first.get("golden_overflow")
    golden_text = f"golden also {golden}" if golden in OVERFLOW_KINDS else "golden has no overflow"
    counts = first.get("my_overflow_counts") or first["my_overflow"]
    return f"first overflow (my): {where}: {counts}; {golden_text}"
