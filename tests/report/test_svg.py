"""SVG drawing: the log axis, decimation that keeps every extreme, gaps, markers, histograms."""

from __future__ import annotations

import math
import re

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.report.figures import LinePlot, Series
from pytest_llmprec.report.histograms import Histogram
from pytest_llmprec.report.svg import (
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    _decimated,
    _LogAxis,
    histogram_svg,
    line_plot_svg,
)

BOTTOM_PIXEL = HEIGHT - 40
SPAN = WIDTH - LEFT - RIGHT


def plot(values, **kwargs) -> LinePlot:
    values = np.asarray(values, dtype=np.float64)
    keys = tuple(f"token0/root.model.layers.{i // 3}.n{i}/output" for i in range(values.size))
    return LinePlot(
        "token 0", "token-0", keys, tuple(range(values.size)), (Series("1-cos", values),), **kwargs
    )


def path_points(svg: str) -> list[list[tuple[float, float]]]:
    """The polylines of the first series path, split where the pen lifts."""
    d = re.search(r'<path class="series" stroke="[^"]+" d="([^"]*)"', svg).group(1)
    lines = []
    for command, x, y in re.findall(r"([ML])([\d.]+) ([\d.]+)", d):
        if command == "M":
            lines.append([])
        lines[-1].append((float(x), float(y)))
    return lines


def test_the_log_axis_spans_whole_decades_and_puts_zeros_at_the_bottom():
    axis = _LogAxis([np.array([3e-7, 0.0, 2e-3, np.nan])], TOP, 100.0)
    assert (axis.low, axis.high) == (-7, -2)
    pixels = axis.pixels(np.array([1e-7, 1e-2, 0.0, np.inf, np.nan, 10**-4.5]))
    assert pixels[0] == 100.0 and pixels[1] == TOP and pixels[2] == 100.0 and pixels[3] == TOP
    assert math.isnan(pixels[4])
    assert math.isclose(pixels[5], (100.0 + TOP) / 2)
    assert [label for _, label in axis.ticks()] == ["1e-2", "1e-3", "1e-4", "1e-5", "1e-6", "1e-7"]


def test_an_axis_without_positive_values_still_has_a_range():
    axis = _LogAxis([np.array([0.0, np.nan])], TOP, 100.0)
    assert axis.high > axis.low


@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=3000), st.integers(5, 400))
def test_decimation_keeps_each_columns_extremes(values, columns):
    pixels = np.asarray(values)
    positions = np.arange(pixels.size, dtype=np.float64)
    xs, ys = _decimated(positions, pixels, columns)
    assert ys.max() == pixels.max() and ys.min() == pixels.min()
    if pixels.size <= 2 * columns:
        assert np.array_equal(ys, pixels)
    else:
        assert ys.size == 2 * columns
        starts = (np.arange(columns) * pixels.size) // columns
        ends = np.append(starts[1:], pixels.size)
        for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
            assert {ys[2 * number], ys[2 * number + 1]} == {pixels[start:end].max(), pixels[start:end].min()}
            assert start <= xs[2 * number] <= end - 1
    assert np.all(np.diff(xs) >= 0)


def test_a_long_series_is_drawn_with_two_points_per_pixel_column_and_its_spike():
    values = np.full(50_000, 1e-6)
    values[31_337] = 1.0
    svg = line_plot_svg(plot(values))
    (line,) = path_points(svg)
    assert len(line) == 2 * SPAN
    assert min(y for _, y in line) == TOP  # the spike reaches the top decade
    assert "<circle" not in svg.split('class="failing"')[0]  # no dots on long series
    assert len(svg) < 60_000


def test_nan_lifts_the_pen():
    svg = line_plot_svg(plot([1e-3, 1e-4, math.nan, 1e-5, 1e-6]))
    assert [len(line) for line in path_points(svg)] == [2, 2]


def test_markers_layers_and_annotation():
    values = np.geomspace(1e-7, 1e-2, 12)
    svg = line_plot_svg(
        plot(values, failing=(4, 5), divergence=4, boundaries=((0, "L0"), (3, "L1"), (6, "L2")))
    )
    assert re.findall(r'class="layer-label">(L\d)<', svg) == ["L0", "L1", "L2"]
    ticks = re.search(r'<g class="failing"><path stroke="[^"]+" d="([^"]*)"', svg).group(1)
    assert len(re.findall("M", ticks)) == 2
    annotation = re.search(r'<g class="first-divergence".*?</g>', svg, re.S).group(0)
    assert "first divergence: token0/root.model.layers.1.n4/output" in annotation
    x = LEFT + 4 * SPAN / 11
    assert f'd="M{x:.1f} {TOP}V{BOTTOM_PIXEL}"' in annotation


def test_layer_labels_closer_than_the_gap_are_left_out():
    boundaries = tuple((i, f"L{i}") for i in range(0, 2000, 10))
    svg = line_plot_svg(plot(np.full(2000, 1e-4), boundaries=boundaries))
    labels = re.findall(r'class="layer-label">(L\d+)<', svg)
    assert 20 < len(labels) < len(boundaries)
    assert svg.count("V", svg.index('class="layer"'), svg.index("</g>", svg.index('class="layer"'))) == 200


def test_histogram_bars_follow_the_counts():
    histogram = Histogram("|my - golden|", (-6.0, -5.0, -4.0, -3.0), (1, 0, 4), zeros=2)
    svg = histogram_svg(histogram)
    heights = [float(h) for h in re.findall(r'height="([\d.]+)"><title>', svg)]
    assert len(heights) == 2 and math.isclose(heights[1] / heights[0], 4.0)
    assert "(2 exact zeros)" in svg and ">1e-6<" in svg and ">1e-3<" in svg
    assert "no nonzero errors" in histogram_svg(Histogram("x", (), (), 7))
