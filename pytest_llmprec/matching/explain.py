"""``--llm-explain-mapping``: which golden node was paired with which my node by which rule, and why
each unpaired node found no partner, as rows (for a CSV) and as printable lines.

Matchers that pair node by node (tree, torchair) explain themselves in ``MatchResult.explanation``;
for the others (same-kind name pairing, single files, manual dumps, weights) the rows are derived
from the pairs and the unmatched tensors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import MatchResult


def _tokens(tokens: Iterable[int | str]) -> str:
    return " ".join(str(token) for token in tokens)


def explanation_rows(result: MatchResult) -> list[dict[str, Any]]:
    """One row per linked node pair (``rule`` set) and per unpaired node (``rule`` empty), with the
    columns of ``report.mapping.EXPLAIN_COLUMNS``."""
    if result.explanation:
        return [
            {
                "tokens": _tokens(line.tokens),
                "golden_node": line.golden_node,
                "golden_type": line.golden_type,
                "my_node": line.my_node,
                "my_type": line.my_type,
                "rule": line.rule,
                "pairs": line.pairs,
                "reason": line.reason,
            }
            for line in result.explanation
        ]
    rows: dict[tuple, dict[str, Any]] = {}
    for pair in result.pairs:
        key = (pair.golden.node, pair.my.node, "same name")
        row = rows.setdefault(
            key,
            {
                "tokens": [],
                "golden_node": pair.golden.node,
                "golden_type": pair.golden.node_type,
                "my_node": pair.my.node,
                "my_type": pair.my.node_type,
                "rule": "same name" if pair.golden.node == pair.my.node else "name mapping",
                "pairs": 0,
                "reason": "",
            },
        )
        row["pairs"] += 1
        if pair.token not in row["tokens"]:
            row["tokens"].append(pair.token)
    for unmatched in result.unmatched:
        record = unmatched.record
        golden = unmatched.side == "golden"
        key = (unmatched.side, record.node, unmatched.reason)
        row = rows.setdefault(
            key,
            {
                "tokens": [],
                "golden_node": record.node if golden else "",
                "golden_type": record.node_type if golden else "",
                "my_node": "" if golden else record.node,
                "my_type": "" if golden else record.node_type,
                "rule": "",
                "pairs": 0,
                "reason": unmatched.reason,
            },
        )
        if record.token not in row["tokens"]:
            row["tokens"].append(record.token)
    return [{**row, "tokens": _tokens(row["tokens"])} for row in rows.values()]


def explanation_lines(rows: list[dict[str, Any]], limit: int | None = None) -> list[str]:
    """Readable lines: ``golden ↔ my  [rule] reason (n pairs; tokens ...)``, then the unpaired nodes."""
    paired = [row for row in rows if row["rule"]]
    lonely = [row for row in rows if not row["rule"]]
    lines = [f"{len(paired)} node pairs, {len(lonely)} nodes without a partner"]
    for row in paired:
        detail = f"; {row['reason']}" if row["reason"] else ""
        tokens = f"; tokens {row['tokens']}" if row["tokens"] else ""
        pairs = f"{row['pairs']} pairs{tokens}"
        lines.append(f"  {row['golden_node']} ↔ {row['my_node']}  [{row['rule']}] ({pairs}){detail}")
    for row in lonely:
        side, node = ("golden", row["golden_node"]) if row["golden_node"] else ("my", row["my_node"])
        lines.append(f"  {side} only: {node}: {row['reason']}")
    if limit is not None and len(lines) > limit + 1:
        hidden = len(lines) - 1 - limit
        lines = [*lines[: limit + 1], f"  ... and {hidden} more lines (see the mapping report)"]
    return lines
