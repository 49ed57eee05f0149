"""--llm-stats, --llm-weights and --llm-explain-mapping without pytest: matchers, rows, report files."""

from __future__ import annotations

import csv
import math

import pytest
from llama_dumps import PLANTED, build_llama, write_weights
from test_atb_torch import API_TOKEN0

from pytest_llmprec.compare.metrics import compare_tensors
from pytest_llmprec.dumps import Dump, load_dump
from pytest_llmprec.errors import LlmprecError
from pytest_llmprec.matching import MatchOptions, match_dumps
from pytest_llmprec.matching.explain import explanation_lines, explanation_rows
from pytest_llmprec.matching.records import DequantRecord, StatsRecord
from pytest_llmprec.report.cross_runtime import write_cross_runtime_reports
from pytest_llmprec.report.rows import comparison_row
from pytest_llmprec.report.statistics import STATS_COLUMNS, statistics_errors, statistics_rows
from pytest_llmprec.report.weights import WEIGHT_COLUMNS
from pytest_llmprec.standards import judge, resolve_standard

STATS = MatchOptions(mode="stats")
WEIGHTS = MatchOptions(mode="weights")
DOWN_WEIGHT = f"{PLANTED}.weight"


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- statistics ----------------------------------------------------------------------------------


def test_statistic_errors_follow_msit_formulas():
    golden = {"max": 2.0, "min": -1.0, "mean": 0.0, "l2norm": 4.0}
    my = {"max": 2.5, "min": -1.0, "mean": 1e-9, "l2norm": math.nan}
    assert statistics_errors(golden, my) == {
        "max_stat_absolute_error": 0.5,
        "max_stat_relative_error": 0.25,
        "min_stat_absolute_error": 0.0,
        "min_stat_relative_error": 0.0,
        "mean_stat_absolute_error": 1e-9,
        "mean_stat_relative_error": 1e-9 / 2.0**-23,  # |golden| below eps: divided by eps
    }


def test_torch_statistics_pair_with_atb_statistics(llama_dumps):
    golden = load_dump(llama_dumps("torch", statistics=True))
    my = load_dump(llama_dumps("atb", statistics=True))
    assert golden.records == [] and my.info["statistics_only"]
    result = match_dumps(golden, my, STATS)
    # msit's rope special case cuts the rope tables: only tensors can be cut, so statistics skip it
    assert [p.key for p in result.pairs if p.token == 0] == [k for k in API_TOKEN0 if "rotary_emb" not in k]
    assert all(isinstance(p.golden, StatsRecord) and isinstance(p.my, StatsRecord) for p in result.pairs)
    q = next(p for p in result.pairs if p.key == API_TOKEN0[2])  # q_proj ↔ the split's output 0
    assert q.golden.member and q.golden.path.endswith("statistics.csv") and q.golden.shape == "(1, 5, 16)"
    assert q.my.dtype == "torch.float16" and q.my.shape == "[5, 16]"
    # the statistics of a float16 copy of the same tensor: float32-standard close
    for pair in result.pairs:
        golden_values, my_values = pair.golden.load(), pair.my.load()
        assert judge(
            compare_tensors(golden_values, my_values), resolve_standard("torch.float32", "torch.float32", [])
        ).passed
    raw = q.my.load_raw()
    assert raw.dtype == "torch.float32" and raw.shape == (4,)


def test_a_planted_divergence_shows_in_the_statistics(llama_dumps, tmp_path):
    golden = load_dump(llama_dumps("torch", statistics=True))
    my = load_dump(llama_dumps("atb", statistics=True, planted=True))
    result = match_dumps(golden, my, STATS)
    rows = statistics_rows(result.pairs)
    assert [row["data_id"] for row in rows] == list(range(len(rows)))
    first = next(row for row in rows if row["l2norm_stat_relative_error"] > 0.05)
    assert (
        first["pair_key"]
        == f"token0/root.{PLANTED}/output ↔ 2_LlamaLayer/2_Mlp/5_LinearOperation/after/outtensor0"
    )
    (path,) = write_cross_runtime_reports(result, [], tmp_path, "20240101000000", stats=True)
    assert path.name == "llmprec_stats_report_20240101000000.csv"
    with open(path, newline="") as handle:
        assert next(csv.reader(handle)) == list(STATS_COLUMNS)
    written = read(path)
    assert len(written) == len(rows) and written[0]["token_id"] == "0"
    assert float(written[0]["max_stat_relative_error"]) == pytest.approx(rows[0]["max_stat_relative_error"])


def test_stats_mode_needs_statistics(llama_dumps):
    result = match_dumps(
        load_dump(llama_dumps("torch")), load_dump(llama_dumps("atb", statistics=True)), STATS
    )
    assert result.pairs == [] and result.notes[0].startswith("the golden dump")
    ge = Dump("ge", load_dump(llama_dumps("atb")).root, [])
    with pytest.raises(LlmprecError, match="cannot pair the statistics of a 'ge' golden dump"):
        match_dumps(ge, load_dump(llama_dumps("atb")), STATS)


# --- weights -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weight_folders(tmp_path_factory):
    model = build_llama()
    root = tmp_path_factory.mktemp("weights")
    return (
        write_weights(model, root / "float"),
        write_weights(model, root / "quant", quant=True),
        write_weights(model, root / "broken", quant=True, scale_error=DOWN_WEIGHT),
    )


def test_quantised_weights_are_compared_de_quantised(weight_folders):
    golden, quant, _ = (load_dump(path) for path in weight_folders)
    result = match_dumps(golden, quant, WEIGHTS)
    assert len(result.pairs) == 21 and result.unmatched == []
    by_key = {p.key: p for p in result.pairs}
    down = by_key[f"weights/{DOWN_WEIGHT}"]
    assert isinstance(down.my, DequantRecord) and down.my.scale.member == f"{PLANTED}.weight_scale"
    assert not isinstance(by_key["weights/model.norm.weight"].my, DequantRecord)
    for pair in result.pairs:
        assert compare_tensors(pair.golden.load(), pair.my.load()).relative_euclidean_distance < 0.01
    assert "14 quantised my weights are compared de-quantised" in result.notes[-1]


def test_a_wrong_scale_is_the_failing_weight(weight_folders, tmp_path):
    golden, _, broken = (load_dump(path) for path in weight_folders)
    result = match_dumps(golden, broken, WEIGHTS)
    rows = []
    for pair in result.pairs:
        g, m = pair.golden.load(), pair.my.load()
        outcome = compare_tensors(g, m)
        standard = resolve_standard(g.dtype, m.dtype, [])
        rows.append(
            comparison_row(
                pair.key, pair.order, pair.token, pair.golden, pair.my, outcome, judge(outcome, standard)
            )
        )
    bad = [row["pair_key"] for row in rows if row["relative_euclidean_distance"] > 0.01]
    assert bad == [f"weights/{DOWN_WEIGHT}"]
    (path,) = write_cross_runtime_reports(result, rows, tmp_path, "20240101000000", weights=True)
    with open(path, newline="") as handle:
        assert next(csv.reader(handle)) == list(WEIGHT_COLUMNS)
    written = {row["weight_name"]: row for row in read(path)}
    assert set(written) == {key.removeprefix("weights/") for key in (p.key for p in result.pairs)}
    assert float(written[DOWN_WEIGHT]["relative_euclidean_distance"]) > 0.9


def test_torch_dump_weights_pair_with_safetensors(weight_folders, tmp_path):
    from pytest_llmprec.capture import DumpConfig, register_hook

    model = build_llama()
    with register_hook(model, DumpConfig(dump_path=str(tmp_path), dump_weight=True)) as handle:
        root = handle.root_dir
    result = match_dumps(load_dump(root), load_dump(weight_folders[1]), WEIGHTS)
    buffers = {f"root.{name}" for name, _ in model.named_buffers()}  # dump_weight saves them too
    assert len(result.pairs) == 21
    assert {u.record.node for u in result.unmatched} == buffers and all(
        u.side == "golden" for u in result.unmatched
    )


def test_weights_only_on_one_side_are_unmatched(weight_folders, tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file(
        {"model.norm.weight": torch.ones(16), "extra.bias": torch.zeros(2)}, str(tmp_path / "x.safetensors")
    )
    result = match_dumps(load_dump(weight_folders[0]), load_dump(tmp_path), WEIGHTS)
    assert [p.key for p in result.pairs] == ["weights/model.norm.weight"]
    reasons = {(u.side, u.record.member): u.reason for u in result.unmatched}
    assert reasons[("my", "extra.bias")] == "no weight of this name in the golden model"
    assert reasons[("golden", "lm_head.weight")] == "no weight of this name in the my model"


# --- explain mapping -----------------------------------------------------------------------------


def test_the_mapping_explains_pairs_and_lonely_nodes(llama_dumps, tmp_path):
    result = match_dumps(load_dump(llama_dumps("torch")), load_dump(llama_dumps("atb")))
    rows = explanation_rows(result)
    linked = {(r["golden_node"], r["my_node"]): r for r in rows if r["rule"]}
    down = linked[("root.model.layers.1.mlp.down_proj", "2_LlamaLayer/2_Mlp/5_LinearOperation")]
    assert (down["rule"], down["reason"], down["tokens"], down["pairs"]) == (
        "enhanced_name",
        "mlp+linearoperation <-> mlp.down_proj",
        "0",
        1,
    )
    elewise = next(r for r in rows if r["my_node"] == "1_LlamaLayer/1_ElewiseOperation")
    assert elewise["rule"] == "" and elewise["reason"].startswith("in layer 0, no api-level rule pairs")
    gate_up = linked[("root.model.layers.0.mlp.down_proj", "1_LlamaLayer/2_Mlp/1_LinearOperation")]
    assert gate_up["pairs"] == 0 and "differ in size" in gate_up["reason"]
    lines = explanation_lines(rows)
    assert lines[0].endswith("nodes without a partner")
    assert (
        "  root.model.layers.1.mlp.down_proj ↔ 2_LlamaLayer/2_Mlp/5_LinearOperation  [enhanced_name]"
        in "\n".join(lines)
    )
    assert explanation_lines(rows, limit=3)[-1].startswith("  ... and ")
    (path,) = write_cross_runtime_reports(result, [], tmp_path, "20240101000000", explain=True)
    assert path.name == "llmprec_mapping_20240101000000.csv" and len(read(path)) == len(rows)


def test_name_matchers_are_explained_from_their_pairs(llama_dumps):
    dump = load_dump(llama_dumps("torch"))
    rows = explanation_rows(match_dumps(dump, dump))
    assert all(row["rule"] == "same name" for row in rows)
    assert rows[0]["tokens"] == "0 1 2"
