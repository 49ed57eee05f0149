"""The extra reports of cross-runtime runs, written next to the comparison report (pytest-free).

``--llm-stats``: the statistics report; ``--llm-weights``: the weight report; ``--llm-explain-mapping``:
the mapping report. ``write_cross_runtime_reports`` writes the ones asked for from the match result
and the comparison report rows of a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..matching.base import MatchResult
from ..matching.explain import explanation_rows
from .mapping import write_mapping_report
from .rows import row_sort_key
from .statistics import statistics_rows, write_statistics_report
from .weights import weight_rows, write_weight_report


def write_cross_runtime_reports(
    match: MatchResult,
    comparison_rows: Sequence[Mapping[str, Any]],
    folder: Path,
    stamp: str,
    *,
    stats: bool = False,
    weights: bool = False,
    explain: bool = False,
) -> list[Path]:
    """Write the statistics / weight / mapping reports asked for; returns their paths."""
    written = []
    if stats:
        written.append(write_statistics_report(folder, stamp, statistics_rows(match.pairs)))
    if weights:
        rows = sorted(comparison_rows, key=row_sort_key)
        written.append(write_weight_report(folder, stamp, weight_rows(rows)))
    if explain:
        written.append(write_mapping_report(folder, stamp, explanation_rows(match)))
    return written
