"""What the reports plot, apart from how it is drawn (SVG in the HTML report, PNG files).

A line plot follows the pairs of one token in execution order and draws any number of metric
series on one logarithmic error axis: 1 - cosine, the relative euclidean distance, and every
``introduced_*`` column the rows carry (the error a node introduces itself, from the local
verdict). Failing pairs are marked, the first divergence annotated, decoder layers delimited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .layers import layer_index
from .rows import ERROR, FAILED

if TYPE_CHECKING:
    from .baseline import Baseline
    from .histograms import ErrorHistogram
    from .html import ReportContext

INTRODUCED_PREFIX = "introduced_"
NAN = float("nan")


@dataclass(frozen=True)
class Metric:
    """A plotted metric: the row column it comes from, as an error (``deficit``: 1 - value)."""

    label: str
    column: str
    deficit: bool = False

    def values(self, rows: Iterable[Mapping[str, Any]]) -> np.ndarray:
        """The metric of each row as an error; NaN where a row has no number."""
        cells = [row.get(self.column) for row in rows]
        array = np.array([c if c.__class__ is float else _number(c) for c in cells], dtype=np.float64)
        return 1.0 - array if self.deficit else array


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return NAN
    return float(value)


ACCUMULATED = (
    Metric("1-cos", "cosine_similarity", deficit=True),
    Metric("RED", "relative_euclidean_distance"),
)


def _introduced(column: str) -> Metric:
    name = column[len(INTRODUCED_PREFIX) :]
    for metric in ACCUMULATED:
        if name == metric.column:
            return Metric(f"introduced {metric.label}", column, metric.deficit)
    return Metric(f"introduced {name.replace('_', ' ')}", column)


def plotted_metrics(rows: Sequence[Mapping[str, Any]]) -> list[Metric]:
    """1 - cos and RED, then one series per numeric ``introduced_*`` column of ``rows``."""
    columns = set().union(*(row.keys() for row in rows))
    return [*ACCUMULATED, *(_introduced(c) for c in sorted(columns) if c.startswith(INTRODUCED_PREFIX))]


@dataclass(frozen=True, eq=False)
class Series:
    label: str
    values: np.ndarray
    """One float64 value per position of the plot; NaN where the pair has none."""


@dataclass(frozen=True, eq=False)
class LinePlot:
    """Metric series over positions (pairs in execution order) with markers.

    ``rows`` are the positions' indexes in the rows the plot was made from (so a drawing can
    point at a table row), ``failing`` the positions of failed or unreadable pairs,
    ``boundaries`` (position, label) where a decoder layer starts.
    """

    title: str
    name: str
    keys: tuple[str, ...]
    rows: tuple[int, ...]
    series: tuple[Series, ...]
    failing: tuple[int, ...] = ()
    divergence: int | None = None
    boundaries: tuple[tuple[int, str], ...] = ()
    x_label: str = "pair, in execution order"
    y_label: str = "error (log scale)"


def _boundaries(keys: Sequence[str]) -> tuple[tuple[int, str], ...]:
    found, previous = [], None
    for position, key in enumerate(keys):
        layer = layer_index(key)
        if layer is not None and layer != previous:
            found.append((position, f"L{layer}"))
            previous = layer
    return tuple(found)


def _line_plot(
    title: str,
    name: str,
    indexed: Sequence[tuple[int, Mapping[str, Any]]],
    series: Iterable[tuple[str, np.ndarray]],
    failing: Iterable[int],
    divergence: int | None = None,
) -> LinePlot:
    keys = tuple(str(row.get("pair_key", "")) for _, row in indexed)
    kept = tuple(Series(label, values) for label, values in series if np.isfinite(values).any())
    return LinePlot(
        title, name, keys, tuple(i for i, _ in indexed), kept, tuple(failing), divergence, _boundaries(keys)
    )


def token_plots(
    rows: Sequence[Mapping[str, Any]], first_divergence: Mapping[str, Any] | None = None
) -> list[LinePlot]:
    """One plot per token of the dump pairs in ``rows`` (rows with a ``node_order``), in order."""
    metrics = plotted_metrics(rows)
    tokens: dict[Any, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, row in enumerate(rows):
        if isinstance(row.get("node_order"), int):
            tokens.setdefault(row.get("token_id"), []).append((index, row))
    divergence_key = first_divergence.get("pair_key") if first_divergence else None
    plots = []
    for number, (token, indexed) in enumerate(tokens.items()):
        indexed.sort(key=lambda pair: pair[1]["node_order"])
        failing = [p for p, (_, row) in enumerate(indexed) if row.get("verdict") in (FAILED, ERROR)]
        divergence = next(
            (
                p
                for p, (_, row) in enumerate(indexed)
                if divergence_key and row.get("pair_key") == divergence_key
            ),
            None,
        )
        title = f"token {token}" if isinstance(token, int) else str(token)
        ordered = [row for _, row in indexed]
        series = [(m.label, m.values(ordered)) for m in metrics]
        plots.append(_line_plot(title, f"token-{number}", indexed, series, failing, divergence))
    return plots


def baseline_plot(rows: Sequence[Mapping[str, Any]], baseline: Baseline) -> LinePlot | None:
    """This run's and the baseline's 1 - cos and RED for every pair the baseline holds, in
    execution order; regressed pairs are the failing marks. None when no pair is in the baseline."""
    indexed = [
        (i, row)
        for i, row in enumerate(rows)
        if isinstance(row.get("node_order"), int) and row.get("pair_key") in baseline.values
    ]
    if not indexed:
        return None
    indexed.sort(key=lambda pair: pair[1]["node_order"])
    ordered = [row for _, row in indexed]
    then = [baseline.values[row["pair_key"]] for row in ordered]
    series = []
    for metric in ACCUMULATED:
        series += [(f"{metric.label} this run", metric.values(ordered))]
        series += [(f"{metric.label} baseline", metric.values(then))]
    failing = [p for p, (_, row) in enumerate(indexed) if row.get("baseline") == "regressed"]
    title = f"this run against the baseline {baseline.path}"
    return _line_plot(title, "baseline", indexed, series, failing)


@dataclass(frozen=True, eq=False)
class Figures:
    """Everything the reports draw, computed once for the HTML report and the PNG files."""

    tokens: tuple[LinePlot, ...]
    baseline: LinePlot | None
    histograms: tuple[ErrorHistogram, ...]

    @classmethod
    def build(cls, rows: Sequence[Mapping[str, Any]], context: ReportContext) -> Figures:
        from .histograms import error_histograms

        tokens = tuple(token_plots(rows, context.first_divergence))
        baseline = baseline_plot(rows, context.baseline) if context.baseline is not None else None
        histograms = tuple(error_histograms(rows, context.histogram_pairs)) if context.histogram_pairs else ()
        return cls(tokens, baseline, histograms)
