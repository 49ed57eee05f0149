"""The report's plots as PNG files, drawn with matplotlib (the optional extra ``plots``).

The same figures as the HTML report (``figures.Figures``): one file per token, the baseline
comparison, and the error histograms of the worst pairs. matplotlib is imported here only,
through its object API (no pyplot state, no backend switched for the rest of the process).
Importing this module imports neither (the plugin's options read ``MATPLOTLIB_MISSING``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LlmprecError
from .csv_files import atomic_open

if TYPE_CHECKING:
    from .figures import Figures, LinePlot
    from .histograms import ErrorHistogram

MATPLOTLIB_MISSING = "PNG plots need matplotlib: pip install 'pytest-llmprec[plots]'"
FAILING, DIVERGENCE = "#d62728", "#8b0000"
LAYER_LABELS = 20
"""Most layer labels on one plot (every layer boundary is drawn)."""


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise LlmprecError(MATPLOTLIB_MISSING) from None
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path


def line_plot_png(plot: LinePlot, path: Path) -> Path:
    """``plot`` as a PNG file (the full series: matplotlib draws them without decimating)."""
    import numpy as np

    figure = _figure(11, 3.6)
    axes = figure.add_subplot()
    positions = range(len(plot.keys))
    floor = _floor(plot)
    for series in plot.series:
        values = np.where(series.values <= 0, floor, series.values)  # zeros at the bottom; NaN stays a gap
        axes.plot(
            positions, values, linewidth=1.1, marker="." if len(values) <= 200 else None, label=series.label
        )
    axes.set_yscale("log")
    axes.set_xlabel(plot.x_label)
    axes.set_ylabel(plot.y_label)
    axes.set_title(plot.title, loc="left", fontsize=10)
    if plot.boundaries:
        positions = [position for position, _ in plot.boundaries]
        axes.vlines(positions, 0, 1, transform=axes.get_xaxis_transform(), colors="#b7bec6", linestyles="--",
                    linewidth=0.7)  # fmt: skip
        step = max(1, math.ceil(len(plot.boundaries) / LAYER_LABELS))
        for position, label in plot.boundaries[::step]:
            axes.annotate(label, (position, 0), xycoords=("data", "axes fraction"), xytext=(2, 3),
                          textcoords="offset points", fontsize=7, color="#7a838d")  # fmt: skip
    if plot.failing:
        axes.plot(plot.failing, [1.0] * len(plot.failing), "|", color=FAILING, markersize=8,
                  transform=axes.get_xaxis_transform(), label="failing")  # fmt: skip
    if plot.divergence is not None:
        axes.axvline(plot.divergence, color=DIVERGENCE, linewidth=1)
        axes.annotate(f"first divergence: {plot.keys[plot.divergence]}", (plot.divergence, 0.92),
                      xycoords=("data", "axes fraction"), color=DIVERGENCE, fontsize=8, fontweight="bold",
                      xytext=(4, 0), textcoords="offset points")  # fmt: skip
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(True, which="major", axis="y", color="#e6e9ed")
    return _save(figure, path)


def _floor(plot: LinePlot) -> float:
    """The decade below the smallest positive value: where zeros are drawn."""
    import numpy as np

    values = np.concatenate([s.values for s in plot.series]) if plot.series else np.empty(0)
    positive = values[np.isfinite(values) & (values > 0)]
    return 10.0 ** math.floor(math.log10(float(positive.min()))) if positive.size else 1e-8


def histogram_png(histogram: ErrorHistogram, path: Path) -> Path:
    """The absolute and relative error histograms of one pair side by side."""
    figure = _figure(10, 3.2)
    figure.suptitle(histogram.pair_key, fontsize=10)
    for number, part in enumerate((histogram.absolute, histogram.relative), start=1):
        axes = figure.add_subplot(1, 2, number)
        if part is None or not part.counts:
            axes.text(0.5, 0.5, "no nonzero errors", ha="center", transform=axes.transAxes)
            continue
        edges = [10.0**e for e in part.edges]
        axes.stairs(part.counts, edges, fill=True, color="#1f6fb4")
        axes.set_xscale("log")
        zeros = f" ({part.zeros} exact zeros)" if part.zeros else ""
        axes.set_title(part.label + zeros, fontsize=9)
    return _save(figure, path)


def write_png_plots(folder: Path, figures: Figures, stamp: str) -> list[Path]:
    """Every figure as ``llmprec_{what}_{stamp}.png`` in ``folder``; raises ``LlmprecError``
    when matplotlib is missing."""
    written = [line_plot_png(plot, folder / f"llmprec_{plot.name}_{stamp}.png") for plot in figures.tokens]
    if figures.baseline is not None:
        written.append(line_plot_png(figures.baseline, folder / f"llmprec_baseline_{stamp}.png"))
    for number, histogram in enumerate(figures.histograms):
        if histogram.absolute is not None:
            written.append(histogram_png(histogram, folder / f"llmprec_histogram-{number}_{stamp}.png"))
    return written
