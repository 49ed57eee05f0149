"""Overflow columns of a compared golden/my pair and the summary line naming the first overflow of the
my side, for the dump comparison (``--llm-golden``/``--llm-my``) reports.

``overflow_columns`` scans the pair's two tensors (torch tensors or ``formats.RawTensor`` raw reads);
``first_overflow_line`` reads only report rows (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .finding import DEFAULT_NEAR

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
    from .dump_scan import tensor_from_raw
    from .scanning import scan

    golden_finding, my_finding = (
        scan(
            tensor_from_raw(value) if isinstance(value, RawTensor) else value,
            near=near,
            saturation=saturation,
        )
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
