"""The terminal summary's per-layer sparkline of the worst 1 - cos."""

from __future__ import annotations

from report_rows import BROKEN, decoder_rows

from pytest_llmprec.report.summary import SPARK, layer_lines, sparkline, summary_lines, worst_per_layer


def test_sparkline_is_logarithmic_between_the_extremes():
    assert (
        sparkline([1e-8, 1e-6, 1e-4, 0.0, float("inf")])
        == SPARK[0] + SPARK[4] + SPARK[7] + SPARK[0] + SPARK[7]
    )
    assert sparkline([1e-3, 1e-3]) == SPARK[7] * 2
    assert sparkline([0.0, 0.0]) == SPARK[0] * 2


def test_worst_per_layer_and_the_lines(tmp_path):
    rows = decoder_rows(tmp_path, layers=4, tokens=2)
    layers = worst_per_layer(rows)
    assert list(layers) == [0, 1, 2, 3]
    for layer, (deficit, row, failed) in layers.items():
        in_layer = [r for r in rows if f".layers.{layer}." in r["pair_key"]]
        assert deficit == max(1 - r["cosine_similarity"] for r in in_layer)
        assert row in in_layer and failed == (layer == BROKEN[0])
    title, blocks, marks, worst = layer_lines(rows)
    assert title.startswith("worst 1-cos per layer, layers 0-3 (log scale ")
    assert blocks.split()[0][BROKEN[0]] == SPARK[-1] and blocks.endswith("layers 0-3")
    assert marks.strip() == ".x.."
    assert worst == f"  worst layer 1: 1-cos {layers[1][0]:.3g} at {layers[1][1]['pair_key']}"
    assert title in summary_lines(rows, {})


def test_long_models_wrap_and_short_ones_have_no_lines(tmp_path):
    rows = [{"pair_key": f"token0/root.model.layers.{i}.mlp/output", "node_order": i, "token_id": 0,
             "cosine_similarity": 1 - 10.0 ** -(1 + i % 5), "verdict": "passed"} for i in range(80)]  # fmt: skip
    lines = layer_lines(rows)
    assert [line.split()[-1] for line in lines[1:5:2]] == ["0-63", "64-79"]
    assert len(lines[1].split()[0]) == 64 and len(lines[3].split()[0]) == 16
    assert layer_lines(rows[:1]) == []
    plain = [dict(r, pair_key=f"token0/root.n{i}/output") for i, r in enumerate(rows)]
    assert layer_lines(plain) == []
