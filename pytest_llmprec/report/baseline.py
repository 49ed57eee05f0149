"""Metric baselines: a small CSV of each pair's key metrics from an earlier run, kept in git.

A pair regresses when an error metric grows, or the cosine deficit (1 - cosine) grows, by more
than the tolerance relative to its baseline value (plus a floor of 1e-12 so noise around zero
does not count), even if the absolute thresholds still pass.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LlmprecError
from .csv_files import read_csv, restore_cell, write_csv

if TYPE_CHECKING:
    from ..compare.results import CompareResult

METRICS = ("cosine_similarity", "relative_euclidean_distance", "max_absolute_error", "kl_divergence")
COLUMNS = ("pair_key", *METRICS)
FLOOR = 1e-12


def _error_like(metric: str, value: float) -> float:
    return 1.0 - value if metric == "cosine_similarity" else value


@dataclass
class Baseline:
    path: Path
    values: dict[str, dict[str, float]]
    tolerance: float

    @classmethod
    def load(cls, path: Path, tolerance: float) -> Baseline:
        try:
            rows = read_csv(path)
        except OSError as exc:
            raise LlmprecError(f"{path}: cannot read the baseline: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise LlmprecError(
                f"{path}: not a baseline CSV: byte {exc.object[exc.start]:#04x} at offset {exc.start} "
                "is not UTF-8 (save it as CSV UTF-8)"
            ) from None
        except csv.Error as exc:
            raise LlmprecError(f"{path}: not a baseline CSV: {exc}") from None
        values = {}
        for number, row in enumerate(rows, start=2):
            if "pair_key" not in row:
                raise LlmprecError(f"{path}: not a baseline CSV (no pair_key column)")
            try:
                values[restore_cell(row["pair_key"])] = {
                    m: float(row[m]) for m in METRICS if row.get(m) not in (None, "")
                }
            except ValueError as exc:
                raise LlmprecError(f"{path}, line {number}: {exc}") from None
        return cls(path, values, tolerance)

    def check(self, key: str, result: CompareResult) -> list[str]:
        """Why ``result`` regressed against this baseline; empty when it did not (or is new)."""
        reference = self.values.get(key)
        if reference is None:
            return []
        reasons = []
        for metric, before in reference.items():
            now = getattr(result, metric)
            then_error, now_error = _error_like(metric, before), _error_like(metric, now)
            allowed = then_error * (1 + self.tolerance) + FLOOR
            if math.isnan(now_error) or now_error > allowed:
                reasons.append(
                    f"{metric} regressed against the baseline: {now:.9g} now, {before:.9g} before "
                    f"(tolerance {self.tolerance:g})"
                )
        return reasons


def write_baseline(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """A baseline from report rows (rows without metrics are left out)."""
    kept = [row for row in rows if isinstance(row.get("cosine_similarity"), float)]
    return write_csv(path, COLUMNS, kept)


def update_baseline(path: Path, rows: Iterable[Mapping[str, Any]], earlier: Baseline | None) -> str:
    """Write the baseline at ``path`` from report rows, keeping the rows of ``earlier`` (the baseline
    there before) whose pairs this run did not compare (a ``-k`` or token selection, a stopped run);
    returns the line that says what changed."""
    fresh = {str(row["pair_key"]): row for row in rows if isinstance(row.get("cosine_similarity"), float)}
    previous = earlier.values if earlier is not None else {}
    merged = [fresh.get(key) or {"pair_key": key, **values} for key, values in previous.items()]
    merged += [row for key, row in fresh.items() if key not in previous]
    write_csv(path, COLUMNS, merged)
    if not previous:
        return f"baseline {path} written: {len(fresh)} pairs"
    updated = sum(key in previous for key in fresh)
    kept = len(previous) - updated
    return (
        f"baseline {path} updated: {updated} pairs updated, {len(fresh) - updated} added, "
        f"{kept} kept from the earlier baseline (not compared in this run)"
    )
