"""The terminal summary of a comparison session: counts, the first divergence, the worst pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..dumps.torch_dump import WEIGHTS_TOKEN
from .rows import ERROR, FAILED, PASSED

WORST_COUNT = 10


def _failing_dump_pairs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failed or unreadable dump pairs (rows of hand-written tests excluded)."""
    return [r for r in rows if r.get("verdict") in (FAILED, ERROR) and isinstance(r.get("node_order"), int)]


def first_divergence(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The failing dump pair earliest in execution order. Weights are not executed (a quantised
    model differs there by design), so they count only when nothing else fails."""
    failing = _failing_dump_pairs(rows)
    executed = [r for r in failing if r.get("token_id") != WEIGHTS_TOKEN]
    return min(executed or failing, key=lambda r: r["node_order"]) if failing else None


def summary_lines(
    rows: Sequence[dict[str, Any]],
    unmatched: dict[str, int],
    notes: Sequence[str] = (),
    reports: Sequence[str] = (),
) -> list[str]:
    verdicts = [row.get("verdict") for row in rows]
    lines = [
        f"{len(rows)} pairs compared: {verdicts.count(PASSED)} passed, {verdicts.count(FAILED)} failed, "
        f"{verdicts.count(ERROR)} unreadable; unmatched tensors: {unmatched.get('golden', 0)} golden, "
        f"{unmatched.get('my', 0)} my"
    ]
    lines += [f"note: {note}" for note in notes]
    first = first_divergence(rows)
    if first is not None:
        op_type = first.get("my_op_type") or first.get("golden_op_type")
        where = f"{first['pair_key']}" + (f" ({op_type})" if op_type else "")
        reason = first.get("failed_checks") or first.get("cmp_fail_reason") or first["verdict"]
        lines.append(f"first divergence: {where}: {reason}")
    weights = [r for r in _failing_dump_pairs(rows) if r.get("token_id") == WEIGHTS_TOKEN]
    if weights:
        earliest = min(weights, key=lambda r: r["node_order"])["pair_key"]
        lines.append(f"weights differing: {len(weights)} (first: {earliest})")
    scored = [r for r in rows if isinstance(r.get("cosine_similarity"), float)]
    scored.sort(key=lambda r: (r["cosine_similarity"], -(r.get("relative_euclidean_distance") or 0.0)))
    if scored:
        lines.append(f"worst {min(WORST_COUNT, len(scored))} by cosine similarity:")
        for row in scored[:WORST_COUNT]:
            cosine, red = row["cosine_similarity"], row.get("relative_euclidean_distance")
            # 1 - cos tells apart pairs whose cosines round to the same 8 decimals
            scores = f"{cosine:.8f}  1-cos {1 - cosine:<8.2g}  red {red:<10.3g}"
            lines.append(f"  {scores}  {row['verdict']:<6}  {row['pair_key']}")
    lines += [f"report: {path}" for path in reports]
    return lines
