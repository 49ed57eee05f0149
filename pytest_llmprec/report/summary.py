"""The terminal summary of a comparison session: counts, the first divergence, the worst pairs."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..dumps.torch_dump import WEIGHTS_TOKEN
from ..overflow.compare_columns import first_overflow_line
from .layers import layer_index
from .rows import ERROR, FAILED, PASSED

WORST_COUNT = 10
SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 64
"""Layers per sparkline line."""


@dataclass(frozen=True)
class Counts:
    """Pairs compared, by verdict, and tensors without a partner on each side."""

    compared: int = 0
    passed: int = 0
    failed: int = 0
    unreadable: int = 0
    unmatched_golden: int = 0
    unmatched_my: int = 0

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]], unmatched: Mapping[str, int] | None = None) -> Counts:
        verdicts = [row.get("verdict") for row in rows]
        unmatched = unmatched or {}
        return cls(
            len(rows),
            verdicts.count(PASSED),
            verdicts.count(FAILED),
            verdicts.count(ERROR),
            unmatched.get("golden", 0),
            unmatched.get("my", 0),
        )

    def line(self) -> str:
        return (
            f"{self.compared} pairs compared: {self.passed} passed, {self.failed} failed, "
            f"{self.unreadable} unreadable; unmatched tensors: {self.unmatched_golden} golden, "
            f"{self.unmatched_my} my"
        )


def _failing_dump_pairs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failed or unreadable dump pairs (rows of hand-written tests excluded)."""
    return [r for r in rows if r.get("verdict") in (FAILED, ERROR) and isinstance(r.get("node_order"), int)]


def first_divergence(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The failing dump pair earliest in execution order. Weights are not executed (a quantised
    model differs there by design), so they count only when nothing else fails."""
    failing = _failing_dump_pairs(rows)
    executed = [r for r in failing if r.get("token_id") != WEIGHTS_TOKEN]
    return min(executed or failing, key=lambda r: r["node_order"]) if failing else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _divergence_reason(row: Mapping[str, Any]) -> str:
    """Why the first divergence fails: the introduced error with its evidence and both errors under
    the local verdict, else the failed checks."""
    reason = row.get("failed_checks") or row.get("cmp_fail_reason") or row["verdict"]
    if row.get("local_verdict") != FAILED or not _is_number(row.get("introduced_red")):
        return reason
    red, cosine = row.get("relative_euclidean_distance"), row.get("cosine_similarity")
    return (
        f"introduced RED {row['introduced_red']:.4g} > {row['local_limit']:.4g} at {row['introduced_by']} "
        f"({row['evidence']}); accumulated RED {red:.4g}, cosine {cosine:.6g}"
    )


def summary_lines(
    rows: Sequence[dict[str, Any]],
    unmatched: dict[str, int],
    notes: Sequence[str] = (),
    reports: Sequence[str] = (),
    counts: Counts | None = None,
    weights_failing: int | None = None,
) -> list[str]:
    """The summary of ``rows``; ``counts`` and ``weights_failing`` (the failing weight pairs) when
    ``rows`` are a digest of more rows (``pipeline.row_store.RowDigest``)."""
    lines = [(counts or Counts.of(rows, unmatched)).line()]
    groups = alias_groups(rows)
    aliases = len(rows) - len(groups)
    if aliases:
        lines.append(
            f"{len(groups)} distinct tensor pairs: {aliases} pairs are aliases (the same saved files "
            "under another name, e.g. hard-linked inputs), listed once below"
        )
    lines += [f"note: {note}" for note in notes]
    first = first_divergence(rows)
    if first is not None:
        op_type = first.get("my_op_type") or first.get("golden_op_type")
        where = f"{first['pair_key']}" + (f" ({op_type})" if op_type else "")
        lines.append(f"first divergence: {where}: {_divergence_reason(first)}")
    # golden overflowing alike (an attention mask at the dtype's lowest value on both sides) is by design
    overflow = first_overflow_line([r for r in rows if r.get("my_overflow") != r.get("golden_overflow")])
    if overflow is not None:
        lines.append(overflow)
    weights = [r for r in _failing_dump_pairs(rows) if r.get("token_id") == WEIGHTS_TOKEN]
    if weights:
        earliest = min(weights, key=lambda r: r["node_order"])["pair_key"]
        differing = len(weights) if weights_failing is None else weights_failing
        lines.append(f"weights differing: {differing} (first: {earliest})")
    lines += layer_lines(rows)
    local = [r for r in rows if _is_number(r.get("introduced_red")) and r["introduced_red"] > 0]
    local = [r for r in local if _is_number(r.get("local_limit"))]
    if local:
        local.sort(key=lambda r: -r["introduced_red"] / r["local_limit"] if r["local_limit"] else 0.0)
        lines.append(f"worst {min(WORST_COUNT, len(local))} by introduced error (share of its limit):")
        for row in local[:WORST_COUNT]:
            share = row["introduced_red"] / row["local_limit"] if row["local_limit"] else math.inf
            red = row.get("relative_euclidean_distance", math.nan)
            scores = f"introduced {row['introduced_red']:<9.3g} {share:>6.2f}x  accumulated red {red:<9.3g}"
            lines.append(f"  {scores}  {row['verdict']:<6}  {row['pair_key']}")
    scored = [g for g in groups if isinstance(g[0].get("cosine_similarity"), float)]
    scored.sort(key=lambda g: (g[0]["cosine_similarity"], -(g[0].get("relative_euclidean_distance") or 0.0)))
    if scored:
        lines.append(f"worst {min(WORST_COUNT, len(scored))} by cosine similarity:")
        for group in scored[:WORST_COUNT]:
            row = group[0]
            cosine, red = row["cosine_similarity"], row.get("relative_euclidean_distance")
            # 1 - cos tells apart pairs whose cosines round to the same 8 decimals
            scores = f"{cosine:.8f}  1-cos {1 - cosine:<8.2g}  red {red:<10.3g}"
            more = f" and {len(group) - 1} aliases" if len(group) > 1 else ""
            lines.append(f"  {scores}  {row['verdict']:<6}  {row['pair_key']}{more}")
    lines += [f"report: {path}" for path in reports]
    return lines


def alias_groups(rows: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """The rows grouped by the files they read (same path or same inode on both sides, so one
    saved tensor under several names is one group), each group in row order, groups by first row."""
    groups: dict[tuple[Any, Any], list[Mapping[str, Any]]] = {}
    for row in rows:
        key = (_file_identity(row.get("golden_data_path")), _file_identity(row.get("my_data_path")))
        if None in key:
            key = (id(row), None)  # no file (a hand-written comparison): its own group
        groups.setdefault(key, []).append(row)
    return list(groups.values())


def _file_identity(described: Any) -> Any:
    """(device, inode, member) of a row's data path (``path`` or ``path[member]``), the path when it
    cannot be read, None for no path."""
    if not described:
        return None
    path, member = str(described), None
    if path.endswith("]") and "[" in path:
        path, member = path[:-1].split("[", 1)
    try:
        status = os.stat(path)
    except OSError:
        return (path, member)
    return (status.st_dev, status.st_ino, member)


def worst_per_layer(rows: Sequence[Mapping[str, Any]]) -> dict[int, tuple[float, Mapping[str, Any], bool]]:
    """For each decoder layer of the executed dump pairs: the worst 1 - cos, its row, and whether
    any pair of the layer failed."""
    layers: dict[int, tuple[float, Mapping[str, Any], bool]] = {}
    for row in rows:
        cosine = row.get("cosine_similarity")
        if not isinstance(row.get("node_order"), int) or row.get("token_id") == WEIGHTS_TOKEN:
            continue
        layer = layer_index(str(row.get("pair_key", "")))
        if layer is None:
            continue
        deficit = 1.0 - cosine if isinstance(cosine, float) and not math.isnan(cosine) else math.inf
        failed = row.get("verdict") in (FAILED, ERROR)
        worst, worst_row, any_failed = layers.get(layer, (-math.inf, row, False))
        if deficit > worst:
            worst, worst_row = deficit, row
        layers[layer] = (worst, worst_row, any_failed or failed)
    return dict(sorted(layers.items()))


def sparkline(values: Sequence[float]) -> str:
    """One block per value on a log scale between the smallest and largest positive value
    (values <= 0 get the lowest block, infinite ones the highest)."""
    finite = [v for v in values if 0 < v < math.inf]
    if not finite:
        return SPARK[0] * len(values)
    low, high = math.log10(min(finite)), math.log10(max(finite))
    top = len(SPARK) - 1

    def block(value: float) -> str:
        if value == math.inf:
            return SPARK[top]
        if value <= 0 or high == low:
            return SPARK[0] if value <= 0 else SPARK[top]
        return SPARK[round((math.log10(value) - low) / (high - low) * top)]

    return "".join(block(v) for v in values)


def layer_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The worst 1 - cos of each decoder layer as a sparkline, with the failing layers marked
    beneath (``x``); nothing for models without at least two layers."""
    layers = worst_per_layer(rows)
    if len(layers) < 2:
        return []
    numbers = list(layers)
    deficits = [layers[n][0] for n in numbers]
    finite = [d for d in deficits if 0 < d < math.inf]
    scale = f"{min(finite):.2g} .. {max(finite):.2g}" if finite else "all 0"
    lines = [
        f"worst 1-cos per layer, layers {numbers[0]}-{numbers[-1]} (log scale {scale}; x: a failing pair):"
    ]
    blocks = sparkline(deficits)
    marks = "".join("x" if layers[n][2] else "." for n in numbers)
    for start in range(0, len(numbers), SPARK_WIDTH):
        chunk = numbers[start : start + SPARK_WIDTH]
        lines.append(f"  {blocks[start : start + SPARK_WIDTH]}  layers {chunk[0]}-{chunk[-1]}")
        lines.append(f"  {marks[start : start + SPARK_WIDTH]}")
    worst = max(numbers, key=lambda n: layers[n][0])
    deficit, row, _ = layers[worst]
    lines.append(f"  worst layer {worst}: 1-cos {deficit:.3g} at {row.get('pair_key')}")
    return lines
