"""The mapping report of ``--llm-explain-mapping`` (rows from ``matching.explain.explanation_rows``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .csv_files import write_csv

EXPLAIN_COLUMNS = ("tokens", "golden_node", "golden_type", "my_node", "my_type", "rule", "pairs", "reason")


def write_mapping_report(folder: Path, stamp: str, rows: list[dict[str, Any]]) -> Path:
    """``{folder}/llmprec_mapping_{stamp}.csv``, written atomically."""
    return write_csv(Path(folder) / f"llmprec_mapping_{stamp}.csv", EXPLAIN_COLUMNS, rows)
