"""The local gate of the pipeline: items judged by introduced error, the accumulated error reported,
user thresholds and the baseline still enforced, bad input falling back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch_dumps import read_report, write_torch_dump

from pytest_llmprec.dumps.base import TensorRecord
from pytest_llmprec.pipeline import CompareSettings, Comparison
from pytest_llmprec.report.rows import COLUMNS, LOCAL_COLUMNS
from pytest_llmprec.standards import Threshold

X = torch.linspace(-2.0, 3.0, 64).reshape(4, 16)


def chain(bump_a: float = 1.0, bump_b: float = 1.0) -> dict:
    """``root.a -> root.b -> root.c``, each fed the previous output; ``bump_*`` scales one output."""
    a = X * 2 * bump_a
    b = a * 3 * bump_b  # scaling keeps a relative error as it is (gain 1)
    c = b * 0.5
    modules = {
        "root.a": {"input_0": X, "output": a},
        "root.b": {"input_0": a, "output": b},
        "root.c": {"input_0": b, "output": c},
    }
    return {0: modules}


def compare(tmp_path, golden: dict, my: dict, **settings):
    g = write_torch_dump(tmp_path / "g", golden)
    m = write_torch_dump(tmp_path / "m", my)
    comparison = Comparison(CompareSettings(golden=g, my=m, report_dir=tmp_path / "r", **settings))
    done = {d.pair.key: d for d in comparison.evaluations()}
    return comparison, done


def failed(done) -> list[str]:
    return [key for key, d in done.items() if not d.passed]


def test_only_the_node_that_introduces_the_error_fails(tmp_path):
    comparison, done = compare(tmp_path, chain(), chain(bump_a=1.01))
    assert failed(done) == ["token0/root.a/output"]
    downstream = done["token0/root.c/output"].row
    assert downstream["accumulated_verdict"] == "failed"  # 1% > fp32's accumulated 1e-3
    assert (downstream["local_verdict"], downstream["verdict"], downstream["introduced_red"]) == (
        "passed",
        "passed",
        0,
    )
    assert downstream["evidence"].startswith("leaf: inherited")
    carried = done["token0/root.b/input_0"].row
    assert carried["evidence"] == "carried: carried from token0/root.a/output"
    message = done["token0/root.a/output"].message
    assert message.startswith(
        "pair token0/root.a/output introduces error at root.a: introduced RED 0.01 > 0.0001"
    )
    assert "[source: local limit (torch.float32)]" in message
    assert (
        "accumulated: cosine_similarity 1, relative_euclidean_distance 0.00999999 (failed by the default"
        in message
    )
    summary = comparison.summary()
    assert summary[1].startswith(
        "first divergence: token0/root.a/output (A): introduced RED 0.01 > 0.0001 at root.a"
    )
    comparison.close()


def test_the_accumulated_verdict_fails_everything_downstream(tmp_path):
    comparison, done = compare(tmp_path, chain(), chain(bump_a=1.01), verdict="accumulated")
    assert failed(done) == [
        "token0/root.a/output", "token0/root.b/input_0", "token0/root.b/output",
        "token0/root.c/input_0", "token0/root.c/output",
    ]  # fmt: skip
    assert "local_verdict" not in done["token0/root.a/output"].row
    comparison.close()


def test_a_defect_downstream_is_found_behind_an_earlier_one(tmp_path):
    comparison, done = compare(tmp_path, chain(), chain(bump_a=1.01, bump_b=1.05))
    assert failed(done) == ["token0/root.a/output", "token0/root.b/output"]
    assert done["token0/root.b/output"].row["introduced_by"] == "root.b"
    comparison.close()


def test_thresholds_the_user_sets_still_gate_the_accumulated_error(tmp_path):
    cli = (Threshold("relative_euclidean_distance", "<=", 0.005, "command line --llm-max-red"),)
    comparison, done = compare(tmp_path, chain(), chain(bump_a=1.01), cli_thresholds=cli)
    assert len(failed(done)) == 5  # every tensor carrying the 1% error fails the user's 0.5%
    downstream = done["token0/root.c/output"]
    assert downstream.row["local_verdict"] == "passed"
    assert "fails <= 0.005 [source: command line --llm-max-red]" in downstream.message
    comparison.close()


def test_max_introduced_overrides_the_dtype_limit(tmp_path):
    comparison, done = compare(tmp_path, chain(), chain(bump_a=1.01), max_introduced=0.02)
    assert failed(done) == []
    assert done["token0/root.a/output"].row["local_limit"] == 0.02
    comparison.close()


def test_the_report_has_the_local_columns_last(tmp_path):
    comparison, _ = compare(tmp_path, chain(), chain(bump_a=1.01))
    comparison.write_reports()
    header, rows = read_report(tmp_path / "r")
    assert tuple(header) == COLUMNS and header[-len(LOCAL_COLUMNS) :] == list(LOCAL_COLUMNS)
    by_key = {row["pair_key"]: row for row in rows}
    assert by_key["token0/root.a/output"]["local_verdict"] == "failed"
    assert float(by_key["token0/root.a/output"]["introduced_red"]) == pytest.approx(0.01)
    comparison.close()


def test_an_unreadable_pair_stays_an_error_and_its_neighbours_are_judged(tmp_path):
    g = write_torch_dump(tmp_path / "g", chain())
    m = write_torch_dump(tmp_path / "m", chain(bump_a=1.01))
    next(m.rglob("root.b/input_0.pth")).write_bytes(b"PK\x03\x04 broken")
    comparison = Comparison(CompareSettings(golden=g, my=m, report_dir=tmp_path / "r"))
    done = {d.pair.key: d for d in comparison.evaluations()}
    assert done["token0/root.b/input_0"].row["verdict"] == "error"
    assert done["token0/root.a/output"].row["local_verdict"] == "failed"
    assert done["token0/root.c/output"].row["local_verdict"] == "passed"
    # root.b's input is unreadable: the output before it (root.a's, 1% off) stands in for it, so
    # root.b, which only passes that error on, passes, and the summary says how it was judged
    row = done["token0/root.b/output"].row
    assert row["evidence"].startswith("leaf: inputs not compared: 0.01 from the outputs before it")
    assert row["local_verdict"] == "passed"
    notes = [line for line in comparison.summary() if "estimated from the outputs before them" in line]
    assert notes == [
        "note: 1 outputs estimated from the outputs before them: their node has a golden input without "
        "a readable partner on my side (first: token0/root.b/output)"
    ]
    comparison.close()


def test_a_node_whose_input_my_side_lacks_is_judged_from_the_outputs_before_it(tmp_path):
    my = chain(bump_a=1.01)
    del my[0]["root.c"]["input_0"]
    comparison, done = compare(tmp_path, chain(), my)
    assert failed(done) == ["token0/root.a/output"]  # root.c inherits root.a's error: not its own
    row = done["token0/root.c/output"].row
    assert row["evidence"].startswith("leaf: inputs not compared:") and row["introduced_red"] == 0
    comparison.close()
    bumped = chain(bump_a=1.01)
    bumped[0]["root.c"]["output"] = bumped[0]["root.c"]["output"] * 1.05
    del bumped[0]["root.c"]["input_0"]
    comparison, done = compare(tmp_path / "defect", chain(), bumped)
    assert failed(done) == ["token0/root.a/output", "token0/root.c/output"]  # still seen past the 1%
    comparison.close()


def test_a_dump_without_inputs_judges_each_output_by_the_outputs_before_it(tmp_path):
    def outputs_only(tokens):
        return {
            t: {n: {k: v for k, v in leaves.items() if k != "input_0"} for n, leaves in m.items()}
            for t, m in tokens.items()
        }

    comparison, done = compare(tmp_path, outputs_only(chain()), outputs_only(chain(bump_b=1.01)))
    assert failed(done) == ["token0/root.b/output"]
    assert done["token0/root.c/output"].row["evidence"].startswith("leaf: no inputs dumped:")
    comparison.close()


def test_a_pair_asked_for_alone_is_judged_with_its_token(tmp_path):
    g = write_torch_dump(tmp_path / "g", chain())
    m = write_torch_dump(tmp_path / "m", chain(bump_a=1.01))
    comparison = Comparison(CompareSettings(golden=g, my=m, report_dir=tmp_path / "r"))
    pair = next(p for p in comparison.match().pairs if p.key == "token0/root.c/output")
    assert comparison.evaluation(pair).row["local_verdict"] == "passed"  # its sources were compared too
    comparison.close()


def test_the_evaluations_held_for_a_token_carry_no_report_row_until_asked(tmp_path):
    g = write_torch_dump(tmp_path / "g", chain())
    m = write_torch_dump(tmp_path / "m", chain(bump_a=1.01))
    comparison = Comparison(CompareSettings(golden=g, my=m, report_dir=tmp_path / "r"))
    first, *others = comparison.match().pairs
    comparison.evaluation(first)
    held = comparison.local_gate().context
    assert sorted(held) == sorted(p.key for p in others)
    assert all(done._row is None for done in held.values())  # about half of a held pair's memory
    row = held["token0/root.a/output"].row  # built from the result and verdict when first used
    assert (row["pair_key"], row["verdict"], row["relative_euclidean_distance"]) == (
        "token0/root.a/output",
        "failed",  # the accumulated verdict: the local one replaces it when the item asks
        pytest.approx(0.01, rel=1e-3),
    )
    comparison.close()


def test_llmprec_compare_takes_the_verdict_options(tmp_path):
    g = write_torch_dump(tmp_path / "g", chain())
    m = write_torch_dump(tmp_path / "m", chain(bump_a=1.01))
    base = [sys.executable, "-m", "pytest_llmprec.cli", "compare", "-gp", str(g), "-mp", str(m), "--no-html"]
    base += ["-o", str(tmp_path / "r")]
    local = subprocess.run(base, capture_output=True, text=True)
    assert local.returncode == 1 and "6 pairs compared: 5 passed, 1 failed" in local.stdout
    accumulated = subprocess.run([*base, "--verdict", "accumulated"], capture_output=True, text=True)
    assert "6 pairs compared: 1 passed, 5 failed" in accumulated.stdout
    bad = subprocess.run([*base, "--max-introduced", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--max-introduced: -1 is not above 0" in bad.stderr


def gate_with_replay(tmp_path, replay: torch.Tensor, my: dict):
    g = write_torch_dump(tmp_path / "g", chain())
    m = write_torch_dump(tmp_path / "m", my)
    path = next(m.rglob("root.a/output.pth")).with_name("replay_output.pth")
    torch.save(replay, path)
    comparison = Comparison(CompareSettings(golden=g, my=m, report_dir=tmp_path / "r"))
    record = TensorRecord(str(path), 0, "root.a", "output", role="replay")
    comparison.local_gate().replays[(0, "root.a", "output", None)] = record  # as Dump.replays indexes it
    return comparison, {d.pair.key: d for d in comparison.evaluations()}


def test_a_replay_on_golden_inputs_is_the_evidence_for_its_output(tmp_path):
    # the replay, not the propagation estimate, judges root.a's output: a replay equal to golden's
    # output clears it (whatever its dumped output shows); one 5% off fails it by 5%
    my = chain(bump_a=1.01)
    comparison, done = gate_with_replay(tmp_path, X * 2, my)
    row = done["token0/root.a/output"].row
    assert (row["local_verdict"], row["introduced_red"]) == ("passed", 0.0)
    assert row["evidence"].startswith("replay: my module run on golden's inputs")
    comparison.close()
    comparison, done = gate_with_replay(tmp_path / "2", X * 2 * 1.05, my)
    row = done["token0/root.a/output"].row
    assert row["local_verdict"] == "failed" and row["introduced_red"] == pytest.approx(0.05, rel=1e-5)
    comparison.close()


def test_a_replay_of_another_shape_falls_back_to_propagation_and_says_so(tmp_path):
    comparison, done = gate_with_replay(tmp_path, torch.ones(3), chain(bump_a=1.01))
    row = done["token0/root.a/output"].row
    assert row["evidence"].startswith("leaf:") and row["local_verdict"] == "failed"
    notes = [line for line in comparison.summary() if line.startswith("note: token0/root.a/output: replay")]
    assert len(notes) == 1 and "not used" in notes[0]
    comparison.close()


def linear_golden(tmp_path, weight: torch.Tensor):
    """The chain's golden dump with ``root.a`` typed a Linear and ``weight`` in its weights folder."""
    golden = write_torch_dump(tmp_path / "g", chain())
    (device,) = golden.glob("torch_tensors/cpu_*")
    tree = json.loads((device / "model_tree.json").read_text())
    tree["children"][0]["type"] = "Linear"
    tree["children"][0]["attributes"] = {"in_features": 16, "out_features": 16}
    (device / "model_tree.json").write_text(json.dumps(tree))
    (device / "weights").mkdir()
    torch.save(weight, device / "weights" / "root.a.weight.pth")
    return golden


@pytest.mark.parametrize("bump", [1.0, 1.01])
def test_golden_linear_on_my_inputs_judges_a_suspect_output(tmp_path, bump):
    # golden's root.a is x @ (2 I).T: my output, 1% off, is judged by golden's Linear on my input
    golden = linear_golden(tmp_path, 2 * torch.eye(16))
    mine = write_torch_dump(tmp_path / "m", chain(bump_a=bump))
    comparison = Comparison(CompareSettings(golden=golden, my=mine, report_dir=tmp_path / "r"))
    row = {d.pair.key: d for d in comparison.evaluations()}["token0/root.a/output"].row
    comparison.close()
    if bump == 1.0:  # nothing suspect: the reference is not consulted
        assert row["evidence"].startswith("leaf:") and row["introduced_red"] == 0
    else:
        assert row["evidence"].startswith("reference: golden's operator")
        assert row["introduced_red"] == pytest.approx(0.01, rel=1e-4) and row["local_verdict"] == "failed"


def test_a_reference_that_raises_falls_back_to_propagation_and_says_so(tmp_path):
    golden = linear_golden(tmp_path, torch.ones(3, 5))  # a weight of the wrong shape
    mine = write_torch_dump(tmp_path / "m", chain(bump_a=1.01))
    comparison = Comparison(CompareSettings(golden=golden, my=mine, report_dir=tmp_path / "r"))
    row = {d.pair.key: d for d in comparison.evaluations()}["token0/root.a/output"].row
    assert row["evidence"].startswith("leaf:") and row["local_verdict"] == "failed"
    notes = [line for line in comparison.summary() if "reference not used" in line]
    comparison.close()
    assert len(notes) == 1 and notes[0].startswith("note: root.a (token 0): reference not used:")


@pytest.mark.parametrize("verdict", ["local", "accumulated"])
def test_reading_ahead_evaluates_each_pair_once(tmp_path, monkeypatch, verdict):
    from pytest_llmprec.pipeline import comparison as module

    evaluated = []
    original = module.evaluate_pair

    def counted(pair, *args, **kwargs):
        evaluated.append(pair.key)
        return original(pair, *args, **kwargs)

    monkeypatch.setattr(module, "evaluate_pair", counted)
    large = torch.linspace(-1.0, 1.0, module.AHEAD_ELEMENTS)  # large enough to be read ahead
    tokens = {0: {f"root.m{i}": {"input_0": large + i, "output": large * (i + 2)} for i in range(8)}}
    g, m = write_torch_dump(tmp_path / "g", tokens), write_torch_dump(tmp_path / "m", tokens)
    settings = CompareSettings(golden=g, my=m, report_dir=tmp_path / "r", verdict=verdict, fork=False)
    comparison = Comparison(settings)
    done = list(comparison.evaluations())
    comparison.close()
    assert len(done) == 16 and sorted(evaluated) == sorted(d.pair.key for d in done)


def test_a_passed_verdict_is_not_held_after_its_pair_a_failed_one_is_for_a_second_run(tmp_path):
    comparison, done = compare(tmp_path, chain(), chain(bump_a=1.01))
    gate = comparison.local_gate()
    assert list(gate._verdicts) == ["token0/root.a/output"]  # what a rerun plugin runs again
    again = comparison.evaluation(done["token0/root.a/output"].pair)
    assert (again.passed, again.row["local_verdict"]) == (False, "failed")
