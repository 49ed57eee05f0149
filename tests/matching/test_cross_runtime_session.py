"""The pytest session on cross-runtime dumps: items, exit codes, first divergence, options, reports."""

from __future__ import annotations

import csv
import json

import pytest
from llama_dumps import PLANTED, build_llama, write_weights
from test_atb_torch import API_TOKEN0
from torchair_dumps import write_fx_dump, write_ge_dump_tree

DOWN_PAIR = f"token0/root.{PLANTED}/output ↔ 2_LlamaLayer/2_Mlp/5_LinearOperation/after/outtensor0"


def run(pytester, golden, my, *args):
    return pytester.runpytest(f"--llm-golden={golden}", f"--llm-my={my}", "-p", "no:cacheprovider", *args)


def item_ids(result) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith("llm/")]


def report(folder, prefix):
    """The newest report file of that name (several runs of one test write into one folder)."""
    path = max(folder.glob(f"{prefix}*.csv"), key=lambda p: p.stat().st_mtime_ns)
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_torch_vs_atb_items_name_both_sides(pytester, llama_dumps):
    result = run(pytester, llama_dumps("torch"), llama_dumps("atb"), "--collect-only", "-q", "--llm-tokens=0")
    assert item_ids(result) == [f"llm/{key}" for key in API_TOKEN0]


def test_a_clean_port_passes_and_a_planted_change_fails_first_at_its_operator(pytester, llama_dumps):
    clean = run(pytester, llama_dumps("torch"), llama_dumps("atb", world=2))
    clean.assert_outcomes(passed=3 * len(API_TOKEN0))
    planted = run(pytester, llama_dumps("torch"), llama_dumps("atb", planted=True))
    assert planted.ret == 1
    summary = planted.stdout.str()
    first = summary.split("first divergence", 1)[1].splitlines()[0]
    assert DOWN_PAIR in first
    rows = report(pytester.path / "llmprec-report", "llmprec_cmp_report_")
    failed = [row for row in rows if row["verdict"] == "failed"]
    assert failed[0]["pair_key"] == DOWN_PAIR and failed[0]["my_op_type"] == "LinearOperation"


def test_level_and_op_mapping_options(pytester, llama_dumps, tmp_path):
    golden, my = llama_dumps("torch"), llama_dumps("atb")
    module = run(pytester, golden, my, "--collect-only", "-q", "--llm-level=module")
    assert len(item_ids(module)) == 12 and all("self_attn" in i or ".mlp/" in i for i in item_ids(module))
    bad = run(pytester, golden, my, "--llm-level=token")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--llm-level=token: unknown level; choose one of layer, module, api, logits" in bad.stderr.str()
    mapping = tmp_path / "op_mapping_file.json"
    mapping.write_text(json.dumps({"Mlp": ["LlamaMLP"]}))
    mapped = run(
        pytester, golden, my, "--collect-only", "-q", f"--llm-op-mapping-file={tmp_path}", "--llm-tokens=0"
    )
    assert "llm/token0/root.model.layers.0.mlp/output ↔ 1_LlamaLayer/2_Mlp/after/outtensor0" in item_ids(
        mapped
    )
    mapping.write_text('{"Mlp": ["Llama MLP"]}')
    broken = run(pytester, golden, my, f"--llm-op-mapping-file={mapping}")
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--llm-op-mapping-file: {mapping}: 'Mlp': 'Llama MLP' is not a type name" in broken.stderr.str()


def test_explain_mapping_prints_and_writes_the_mapping(pytester, llama_dumps):
    result = run(
        pytester, llama_dumps("torch"), llama_dumps("atb"), "--llm-explain-mapping", "--llm-tokens=0"
    )
    result.assert_outcomes(passed=len(API_TOKEN0))
    text = result.stdout.str()
    assert "llmprec mapping" in text
    assert "root.model.layers.1.mlp.down_proj ↔ 2_LlamaLayer/2_Mlp/5_LinearOperation  [enhanced_name]" in text
    assert "my only: 1_LlamaLayer/1_ElewiseOperation: in layer 0, no api-level rule pairs" in text
    rows = report(pytester.path / "llmprec-report", "llmprec_mapping_")
    assert {"rule", "reason", "golden_node", "my_node"} <= set(rows[0])
    assert "llmprec_mapping_" in text.split("llmprec mapping")[0], "listed with the other reports"


def test_stats_items_and_report(pytester, llama_dumps):
    golden, my = llama_dumps("torch", statistics=True), llama_dumps("atb", statistics=True, planted=True)
    result = run(pytester, golden, my, "--llm-stats", "--llm-tokens=0")
    assert result.ret == 1
    assert DOWN_PAIR in result.stdout.str().split("first divergence", 1)[1].splitlines()[0]
    rows = report(pytester.path / "llmprec-report", "llmprec_stats_report_")
    assert (
        len(rows) == len([key for key in API_TOKEN0 if "rotary_emb" not in key])
        and rows[0]["token_id"] == "0"
    )
    both = run(pytester, golden, my, "--llm-stats", "--llm-weights")
    assert both.ret == pytest.ExitCode.USAGE_ERROR and "give one of them" in both.stderr.str()


def test_weights_items_and_report(pytester, tmp_path):
    model = build_llama()
    golden = write_weights(model, tmp_path / "float")
    my = write_weights(model, tmp_path / "quant", quant=True, scale_error=f"{PLANTED}.weight")
    result = run(pytester, golden, my, "--llm-weights", "--llm-max-red=0.01", "--llm-min-cos=0.9999")
    result.assert_outcomes(passed=20, failed=1)
    assert f"llm/weights/{PLANTED}.weight" in result.stdout.str()
    rows = report(pytester.path / "llmprec-report", "llmprec_weights_report_")
    assert len(rows) == 21 and {
        row["verdict"] for row in rows if row["weight_name"] == f"{PLANTED}.weight"
    } == {"failed"}


@pytest.fixture(scope="module")
def torchair_roots(tmp_path_factory):
    """Written outside the pytester fixture: pytester forgets the modules imported while it is active,
    and torch.compile's backend registry does not survive that."""
    folder = tmp_path_factory.mktemp("torchair")
    return write_fx_dump(folder / "fx"), write_ge_dump_tree(
        folder / "ge", fuse=("add", "relu"), transdata_after="mul"
    )


def test_ge_vs_fx_items(pytester, torchair_roots):
    fx, ge = torchair_roots
    result = run(pytester, fx, ge, "-q", "--llm-tokens=0")
    result.assert_outcomes(passed=13)
    collected = run(pytester, fx, ge, "--collect-only", "-q", "--llm-tokens=0")
    assert "llm/token0/rank0/relu-aten.relu.default/output_0 ↔ Add_3Relu_4/output_0" in item_ids(collected)


def test_cross_runtime_pairs_run_under_xdist(pytester, llama_dumps):
    pytest.importorskip("xdist")
    result = run(
        pytester, llama_dumps("torch"), llama_dumps("atb", planted=True), "-n", "2", "--llm-explain-mapping"
    )
    result.assert_outcomes(
        passed=3 * len(API_TOKEN0) - len(_failing_keys(pytester)), failed=len(_failing_keys(pytester))
    )
    assert report(pytester.path / "llmprec-report", "llmprec_mapping_")


def _failing_keys(pytester) -> list[str]:
    rows = report(pytester.path / "llmprec-report", "llmprec_cmp_report_")
    return [row["pair_key"] for row in rows if row["verdict"] == "failed"]


def test_ini_keys_set_the_level_and_the_modes(pytester, llama_dumps):
    pytester.makeini("[pytest]\nllm_level = layer\nllm_explain_mapping = true\n")
    result = run(pytester, llama_dumps("torch"), llama_dumps("atb"), "--llm-tokens=0")
    result.assert_outcomes(passed=5)
    assert "llmprec mapping" in result.stdout.str()
