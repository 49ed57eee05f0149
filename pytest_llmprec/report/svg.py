"""SVG drawings of the report figures, written as text: no plotting library, nothing fetched.

A series longer than two points per pixel column is decimated to each column's minimum and
maximum, so a plot of 50,000 pairs stays a few tens of kilobytes and no spike is lost.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from .figures import LinePlot
from .histograms import Histogram

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 40
COLORS = ("#1f6fb4", "#e07b00", "#2a9d3a", "#8e44ad", "#8c564b", "#00a0b0", "#7f7f7f")
FAILING = "#d62728"
DIVERGENCE = "#8b0000"
LAYER_LABEL_GAP = 26
"""Fewest pixels between two layer labels; boundaries in between are drawn without a label."""
DOTS_UP_TO = 200
"""Series of at most this many points also get a dot per point."""
FAILING_DOTS_UP_TO = 400
CHAR_WIDTH = 6.2
"""Approximate width of a character of the 11 px sans-serif text, for laying out the legend."""


class _LogAxis:
    """A base-10 logarithmic y axis over the positive values given; values <= 0 sit at the bottom."""

    def __init__(self, arrays: list[np.ndarray], top: float, bottom: float) -> None:
        values = np.concatenate(arrays) if arrays else np.empty(0)
        positive = values[np.isfinite(values) & (values > 0)]
        if positive.size:
            self.low = math.floor(math.log10(float(positive.min())))
            self.high = math.ceil(math.log10(float(positive.max())))
        else:
            self.low, self.high = -8, 0
        self.high = max(self.high, self.low + 1)
        self.top, self.bottom = top, bottom

    def pixels(self, values: np.ndarray) -> np.ndarray:
        """Pixel rows of ``values``; NaN stays NaN (a gap), +inf goes to the top."""
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(np.clip(values, 10.0**self.low, 10.0**self.high))
        share = (logs - self.low) / (self.high - self.low)
        return self.bottom - share * (self.bottom - self.top)

    def ticks(self) -> list[tuple[float, str]]:
        step = max(1, math.ceil((self.high - self.low) / 8))
        exponents = range(self.high, self.low - 1, -step)
        return [(float(self.pixels(np.array([10.0**e]))[0]), f"1e{e}") for e in exponents]


def _decimated(positions: np.ndarray, pixels: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """All points when they fit two per pixel column, else each column's lowest and highest pixel."""
    count = pixels.size
    if count <= 2 * columns:
        return positions, pixels
    starts = (np.arange(columns) * count) // columns
    ends = np.append(starts[1:], count)
    with np.errstate(invalid="ignore"):
        lowest, highest = np.fmin.reduceat(pixels, starts), np.fmax.reduceat(pixels, starts)
    middle = np.repeat((positions[starts] + positions[ends - 1]) / 2, 2)
    both = np.empty(2 * columns)
    both[0::2], both[1::2] = highest, lowest
    return middle, both


def _path(xs: np.ndarray, ys: np.ndarray) -> str:
    """An SVG path through the points, lifting the pen over NaN."""
    parts, lifted = [], True
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        if y != y:
            lifted = True
            continue
        parts.append(f"{'M' if lifted else 'L'}{x:.1f} {y:.1f}")
        lifted = False
    return "".join(parts)


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> str:
    attributes = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{attributes}>{escape(text)}</text>'


def line_plot_svg(plot: LinePlot, width: int = WIDTH, height: int = HEIGHT) -> str:
    """``plot`` as an inline ``<svg>``; ``data-*`` attributes let a script map a pointer to a pair."""
    count = len(plot.keys)
    right, bottom = width - RIGHT, height - BOTTOM
    span = right - LEFT
    values = [np.asarray(s.values, dtype=np.float64) for s in plot.series]
    axis = _LogAxis(values, TOP, bottom)

    def x_of(position: np.ndarray | float) -> np.ndarray | float:
        return LEFT + np.asarray(position, dtype=np.float64) * span / max(count - 1, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" id="plot-{escape(plot.name)}" '
        f'viewBox="0 0 {width} {height}" data-left="{LEFT}" data-span="{span}" data-count="{count}" '
        f'role="img" aria-label="{escape(plot.title)}">',
        f'<rect x="{LEFT}" y="{TOP}" width="{span}" height="{bottom - TOP}" class="frame"/>',
    ]
    for y, label in axis.ticks():
        parts.append(f'<path class="grid" d="M{LEFT} {y:.1f}H{right}"/>')
        parts.append(_text(LEFT - 6, y + 4, label, "end", "tick"))
    for tick in sorted({round(p * (count - 1) / 5) for p in range(6)} if count > 1 else {0}):
        parts.append(_text(float(x_of(tick)), bottom + 16, str(tick), "middle", "tick"))
    parts.append(_text(LEFT + span / 2, height - 6, plot.x_label, "middle", "axis-label"))
    parts.append(
        f'<text class="axis-label" transform="translate(14 {(TOP + bottom) / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(plot.y_label)}</text>'
    )
    parts += _layer_marks(plot, x_of, bottom)
    positions = np.arange(count, dtype=np.float64)
    for number, array in enumerate(values):
        color = COLORS[number % len(COLORS)]
        xs, ys = _decimated(x_of(positions), axis.pixels(array), int(span))
        parts.append(f'<path class="series" stroke="{color}" d="{_path(xs, ys)}"/>')
        if count <= DOTS_UP_TO:
            pixels = axis.pixels(array)
            dots = "".join(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2"/>'
                for x, y in zip(x_of(positions).tolist(), pixels.tolist(), strict=True)
                if y == y
            )
            parts.append(f'<g fill="{color}">{dots}</g>')
    parts += _failing_marks(plot, values, axis, x_of)
    parts += _divergence_mark(plot, values, axis, x_of, bottom, width)
    parts += _legend(plot, right)
    parts.append(_text(LEFT, 20, plot.title, "start", "plot-title"))
    hover = f'x="{LEFT}" y="{TOP}" width="{span}" height="{bottom - TOP}"'
    parts.append(f'<rect class="hover" {hover} fill="transparent"/>')
    parts.append("</svg>")
    return "".join(parts)


def _layer_marks(plot: LinePlot, x_of, bottom: float) -> list[str]:
    if not plot.boundaries:
        return []
    lines, labels, last = [], [], -math.inf
    for position, label in plot.boundaries:
        x = float(x_of(position))
        lines.append(f"M{x:.1f} {TOP}V{bottom}")
        if x - last >= LAYER_LABEL_GAP:
            labels.append(_text(x + 2, bottom - 4, label, "start", "layer-label"))
            last = x
    return [f'<g class="layers"><path class="layer" d="{"".join(lines)}"/>{"".join(labels)}</g>']


def _failing_marks(plot: LinePlot, values: list[np.ndarray], axis: _LogAxis, x_of) -> list[str]:
    if not plot.failing:
        return []
    failing = np.asarray(plot.failing)
    columns = np.unique(np.round(x_of(failing), 1))
    ticks = "".join(f"M{x:.1f} {TOP}v8" for x in columns.tolist())
    marks = [f'<g class="failing"><path stroke="{FAILING}" d="{ticks}"/>']
    if values and failing.size <= FAILING_DOTS_UP_TO:
        ys = axis.pixels(values[0][failing])
        marks += [
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="none" stroke="{FAILING}"/>'
            for x, y in zip(x_of(failing).tolist(), ys.tolist(), strict=True)
            if y == y
        ]
    marks.append("</g>")
    return marks


def _divergence_mark(plot: LinePlot, values, axis: _LogAxis, x_of, bottom: float, width: int) -> list[str]:
    if plot.divergence is None:
        return []
    position = plot.divergence
    x = float(x_of(position))
    label = f"first divergence: {plot.keys[position]}"
    left_of_line = x > (LEFT + width - RIGHT) / 2
    mark = [
        f'<g class="first-divergence" data-position="{position}">',
        f'<path stroke="{DIVERGENCE}" d="M{x:.1f} {TOP}V{bottom}"/>',
        _text(
            x - 4 if left_of_line else x + 4,
            TOP + 22,
            label,
            "end" if left_of_line else "start",
            "annotation",
        ),
    ]
    if values:
        y = float(axis.pixels(values[0][position : position + 1])[0])
        if y == y:
            mark.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="none" stroke="{DIVERGENCE}"/>')
    mark.append("</g>")
    return mark


def _legend(plot: LinePlot, right: float) -> list[str]:
    items = [(s.label, f'stroke="{COLORS[n % len(COLORS)]}"') for n, s in enumerate(plot.series)]
    if plot.failing:
        items.append(("failing", f'stroke="{FAILING}"'))
    parts, x = [], right
    for label, stroke in reversed(items):
        x -= len(label) * CHAR_WIDTH + 4
        parts.append(_text(x, 20, label, "start", "legend"))
        x -= 22
        parts.append(f'<path class="legend-line" {stroke} d="M{x:.1f} 16h18"/>')
        x -= 10
    return parts


def histogram_svg(histogram: Histogram, width: int = 450, height: int = 200) -> str:
    """A bar chart of ``histogram`` (log10 bins) as an inline ``<svg>``."""
    left, right, top, bottom = 48, width - 18, 24, height - 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(histogram.label)}">',
        _text(left, 15, histogram.label + (f" ({histogram.zeros} exact zeros)" if histogram.zeros else ""),
              "start", "plot-title"),
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" class="frame"/>',
    ]  # fmt: skip
    if not histogram.counts:
        parts += [
            _text((left + right) / 2, (top + bottom) / 2, "no nonzero errors", "middle", "tick"),
            "</svg>",
        ]
        return "".join(parts)
    low, high = histogram.edges[0], histogram.edges[-1]
    peak = max(histogram.counts) or 1

    def x_of(edge: float) -> float:
        return left + (edge - low) / (high - low) * (right - left)

    bars = []
    for count, start, stop in zip(histogram.counts, histogram.edges, histogram.edges[1:], strict=False):
        if count:
            h = (bottom - top) * count / peak
            wide = max(x_of(stop) - x_of(start) - 1, 1)
            bars.append(
                f'<rect x="{x_of(start):.1f}" y="{bottom - h:.1f}" width="{wide:.1f}" height="{h:.1f}">'
                f"<title>{count} in [1e{start:.2f}, 1e{stop:.2f})</title></rect>"
            )
    parts.append(f'<g class="bars">{"".join(bars)}</g>')
    step = max(1, math.ceil((high - low) / 8))
    for exponent in range(math.ceil(low), math.floor(high) + 1, step):
        parts.append(_text(x_of(exponent), bottom + 14, f"1e{exponent}", "middle", "tick"))
    parts.append(_text(left - 6, top + 8, str(peak), "end", "tick"))
    parts.append(_text(left - 6, bottom, "0", "end", "tick"))
    parts.append("</svg>")
    return "".join(parts)
