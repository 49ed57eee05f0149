"""The statistics comparison report of ``--llm-stats`` (msit-spec §4.3 columns, then ours).

``{stat}_stat_absolute_error = |my - golden|`` and ``{stat}_stat_relative_error =
|my - golden| / max(|golden|, 2**-23)`` for max, min, mean and the L2 norm (msit-spec §3.5); a
statistic missing on either side leaves its two cells empty (msit crashes there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..matching.base import Pair
from ..matching.records import STATISTICS, StatsRecord
from .csv_files import write_csv

EPS = 2.0**-23

STATS_COLUMNS = (
    "token_id", "data_id", "golden_data_path", "golden_op_type", "my_data_path", "my_op_type",
    *(f"{stat}_stat_{kind}_error" for stat in STATISTICS for kind in ("absolute", "relative")),
    "pair_key", "golden_dtype", "golden_shape", "my_dtype", "my_shape",
)  # fmt: skip
"""msit's 14 columns (§4.3) in its order, then the pair key and the dumped tensors' dtype and shape."""


def statistics_errors(golden: dict[str, float], my: dict[str, float]) -> dict[str, float]:
    """The absolute and relative error of each statistic present (not NaN) on both sides."""
    errors: dict[str, float] = {}
    for stat in STATISTICS:
        g, m = golden.get(stat, math.nan), my.get(stat, math.nan)
        if math.isnan(g) or math.isnan(m):
            continue
        difference = abs(m - g)
        errors[f"{stat}_stat_absolute_error"] = difference
        errors[f"{stat}_stat_relative_error"] = (
            difference / max(abs(g), EPS) if math.isfinite(difference) else math.inf
        )
    return errors


def statistics_rows(pairs: Iterable[Pair]) -> list[dict[str, Any]]:
    """One row per statistics pair (pairs of other records are skipped), ``data_id`` in pair order."""
    rows = []
    for pair in pairs:
        golden, my = pair.golden, pair.my
        if not (isinstance(golden, StatsRecord) and isinstance(my, StatsRecord)):
            continue
        row = {
            "token_id": pair.token,
            "data_id": len(rows),
            "golden_data_path": golden.describe(),
            "golden_op_type": golden.node_type,
            "my_data_path": my.describe(),
            "my_op_type": my.node_type,
            "pair_key": pair.key,
            "golden_dtype": golden.dtype,
            "golden_shape": golden.shape,
            "my_dtype": my.dtype,
            "my_shape": my.shape,
        }
        row.update(statistics_errors(golden.statistics(), my.statistics()))
        rows.append(row)
    return rows


def write_statistics_report(folder: Path, stamp: str, rows: list[dict[str, Any]]) -> Path:
    """``{folder}/llmprec_stats_report_{stamp}.csv``, written atomically."""
    return write_csv(Path(folder) / f"llmprec_stats_report_{stamp}.csv", STATS_COLUMNS, rows)
