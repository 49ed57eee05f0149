"""The weight comparison report of ``--llm-weights`` (msit-spec §4.4 columns, then ours).

Built from the comparison report rows of the weight pairs (``weights/{name}`` keys): no tensor
is read twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .csv_files import write_csv

WEIGHT_PREFIX = "weights/"

WEIGHT_COLUMNS = (
    "weight_name",
    "golden_dtype", "golden_shape", "golden_max_value", "golden_min_value", "golden_mean_value",
    "my_dtype", "my_shape", "my_max_value", "my_min_value", "my_mean_value",
    "cosine_similarity", "max_relative_error", "mean_relative_error", "max_absolute_error",
    "mean_absolute_error", "kl_divergence", "relative_euclidean_distance",
    "verdict", "failed_checks", "golden_data_path", "my_data_path",
)  # fmt: skip
"""msit's 18 columns (§4.4) in its order, then the verdict, its reasons and the two files."""


def weight_rows(comparison_rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The weight report rows of the comparison rows of weight pairs, in their order."""
    rows = []
    for row in comparison_rows:
        key = str(row.get("pair_key", ""))
        if key.startswith(WEIGHT_PREFIX):
            rows.append({**{c: row.get(c) for c in WEIGHT_COLUMNS}, "weight_name": key[len(WEIGHT_PREFIX) :]})
    return rows


def write_weight_report(folder: Path, stamp: str, rows: list[dict[str, Any]]) -> Path:
    """``{folder}/llmprec_weights_report_{stamp}.csv``, written atomically."""
    return write_csv(Path(folder) / f"llmprec_weights_report_{stamp}.csv", WEIGHT_COLUMNS, rows)
