"""What the reports plot: token series in execution order, layer boundaries, metrics, baseline."""

from __future__ import annotations

import math

import numpy as np

from pytest_llmprec.report.baseline import Baseline
from pytest_llmprec.report.figures import baseline_plot, plotted_metrics, token_plots
from pytest_llmprec.report.layers import layer_index


def row(order, token, key, cos=0.999, red=0.01, verdict="passed", **extra):
    return {"node_order": order, "token_id": token, "pair_key": key, "cosine_similarity": cos,
            "relative_euclidean_distance": red, "verdict": verdict, **extra}  # fmt: skip


def test_layer_index_reads_decoder_style_names():
    assert layer_index("token0/root.model.layers.12.mlp.down_proj/output") == 12
    assert layer_index("bert.encoder.layer.3.attention") == 3
    assert layer_index("transformer.h.7.attn") == 7
    assert layer_index("model/blocks/2/conv") == 2
    assert layer_index("root.model.layers.4") == 4
    assert layer_index("root.model.norm") is None
    assert layer_index("root.players.3") is None and layer_index("root.layers.x.3") is None


def test_one_plot_per_token_in_execution_order_without_hand_written_rows():
    rows = [
        row(3, 1, "token1/root.model.layers.0.mlp/output"),
        row(0, 0, "token0/root.model.embed/output"),
        row(2, 0, "token0/root.model.layers.1.mlp/output", cos=0.9, verdict="failed"),
        row(1, 0, "token0/root.model.layers.0.mlp/output"),
        row("", "", "tests/test_a.py::test_b::x"),
        row(9, "weights", "weights/root.model.layers.0.mlp.weight", verdict="failed"),
    ]
    plots = token_plots(rows, first_divergence=rows[2])
    assert [p.title for p in plots] == ["token 1", "token 0", "weights"]
    token0 = plots[1]
    assert token0.keys == ("token0/root.model.embed/output", "token0/root.model.layers.0.mlp/output",
                           "token0/root.model.layers.1.mlp/output")  # fmt: skip
    assert token0.rows == (1, 3, 2)
    assert token0.failing == (2,) and token0.divergence == 2
    assert token0.boundaries == ((1, "L0"), (2, "L1"))
    deficit, red = token0.series
    assert deficit.label == "1-cos" and red.label == "RED"
    assert np.allclose(deficit.values, [1 - 0.999, 1 - 0.999, 1 - 0.9])
    assert plots[0].divergence is None and plots[2].failing == (0,)


def test_missing_metrics_are_gaps_and_an_empty_series_is_left_out():
    rows = [
        row(0, 0, "a", cos=math.nan, red=""),
        row(1, 0, "b", red=None),
        row(2, 0, "c", red=None, verdict="error"),
    ]
    (plot,) = token_plots(rows)
    assert [s.label for s in plot.series] == ["1-cos"]
    assert math.isnan(plot.series[0].values[0]) and plot.failing == (2,)


def test_introduced_columns_are_plotted_as_errors():
    rows = [row(0, 0, "a", introduced_cosine_similarity=0.9999, introduced_relative_euclidean_distance=0.002,
                introduced_max_absolute_error=0.5)]  # fmt: skip
    labels = [m.label for m in plotted_metrics(rows)]
    assert labels == ["1-cos", "RED", "introduced 1-cos", "introduced max absolute error", "introduced RED"]
    (plot,) = token_plots(rows)
    values = {s.label: float(s.values[0]) for s in plot.series}
    assert math.isclose(values["introduced 1-cos"], 1e-4, rel_tol=1e-9)
    assert values["introduced RED"] == 0.002 and values["introduced max absolute error"] == 0.5


def test_baseline_plot_pairs_this_run_with_the_baseline_values():
    rows = [row(1, 0, "b", cos=0.99, red=0.1, baseline="regressed"), row(0, 0, "a"), row(2, 0, "new")]
    baseline = Baseline("b.csv", {"a": {"cosine_similarity": 0.9995, "relative_euclidean_distance": 0.005},
                                  "b": {"cosine_similarity": 0.999}}, 0.1)  # fmt: skip
    plot = baseline_plot(rows, baseline)
    assert plot.keys == ("a", "b") and plot.failing == (1,)
    values = {s.label: s.values for s in plot.series}
    assert np.allclose(values["1-cos this run"], [0.001, 0.01])
    assert np.allclose(values["1-cos baseline"], [0.0005, 0.001])
    assert values["RED baseline"][0] == 0.005 and math.isnan(values["RED baseline"][1])
    assert baseline_plot([row(0, 0, "other")], baseline) is None
