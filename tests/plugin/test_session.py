"""pytest --llm-golden --llm-my: items, exit codes, selection, precedence, reports, baselines."""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from torch_dumps import read_report, write_torch_dump

STANDARD_COLUMNS = [
    "token_id",
    "data_id",
    "golden_data_path",
    "golden_op_type",
    "golden_dtype",
    "golden_shape",
    "golden_max_value",
    "golden_min_value",
    "golden_mean_value",
    "my_data_path",
    "my_op_type",
    "my_dtype",
    "my_shape",
    "my_max_value",
    "my_min_value",
    "my_mean_value",
    "cosine_similarity",
    "max_relative_error",
    "mean_relative_error",
    "max_absolute_error",
    "mean_absolute_error",
    "kl_divergence",
    "relative_euclidean_distance",
    "cmp_fail_reason",
]  # fmt: skip  (msit-spec §4.1, typed in from the spec)

ONES = torch.ones(2, 4)
ARANGE = torch.arange(1.0, 9.0).reshape(2, 4)


def model_dump(scale_b: float = 1.0) -> dict:
    """Two tokens of a three-module model; ``scale_b`` multiplies root.b.c's output."""

    def token(t: int) -> dict:
        return {
            "root.a": {"input_0": ONES + t, "output": ARANGE + t},
            "root.b.c": {"output_0": ARANGE * scale_b + t, "output_1": ONES},
            "root.b": {"output": ARANGE - t},
        }

    return {0: token(0), 1: token(1)}


@pytest.fixture
def dumps(tmp_path):
    def make(golden: dict | None = None, my: dict | None = None) -> tuple[Path, Path]:
        g = write_torch_dump(tmp_path / "golden", golden or model_dump())
        m = write_torch_dump(tmp_path / "my", my or model_dump())
        return g, m

    return make


def run(pytester, golden, my, *args):
    return pytester.runpytest(f"--llm-golden={golden}", f"--llm-my={my}", "-p", "no:cacheprovider", *args)


def run_accumulated(pytester, golden, my, *args):
    """``run`` judging the error as dumped: for the thresholds, standards and messages of that verdict."""
    return run(pytester, golden, my, "--llm-verdict=accumulated", *args)


def test_every_pair_is_an_item_in_execution_order(pytester, dumps):
    golden, my = dumps()
    result = run(pytester, golden, my, "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if line.startswith("llm/")]
    assert ids == [
        "llm/token0/root.a/input_0",
        "llm/token0/root.a/output",
        "llm/token0/root.b.c/output_0",
        "llm/token0/root.b.c/output_1",
        "llm/token0/root.b/output",
        "llm/token1/root.a/input_0",
        "llm/token1/root.a/output",
        "llm/token1/root.b.c/output_0",
        "llm/token1/root.b.c/output_1",
        "llm/token1/root.b/output",
    ]


def test_identical_dumps_pass_with_exit_code_zero(pytester, dumps):
    golden, my = dumps()
    result = run(pytester, golden, my)
    result.assert_outcomes(passed=10)
    assert result.ret == 0


def test_a_regression_fails_the_run_and_names_the_first_divergence(pytester, dumps):
    golden, my = dumps(my=model_dump(scale_b=1.0625))
    result = run(pytester, golden, my)
    result.assert_outcomes(passed=8, failed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*= llmprec =*",
            "10 pairs compared: 8 passed, 2 failed, 0 unreadable; unmatched tensors: 0 golden, 0 my",
            "first divergence: token0/root.b.c/output_0 (C): introduced RED 0.0625 > 0.0001 at root.b.c "
            "(leaf: no inputs dumped: 0 from the outputs before it (token0/root.a/output)); "
            "accumulated RED 0.0625, cosine 1",
            "*FAILED llm/token0/root.b.c/output_0*",
        ]
    )


def test_failure_message_is_the_assertion_message_with_paths(pytester, dumps):
    golden, my = dumps(my=model_dump(scale_b=1.0625))
    result = run_accumulated(pytester, golden, my, "-k", "token0 and output_0")
    result.stdout.fnmatch_lines(
        [
            "*pair token0/root.b.c/output_0 failed for golden torch.float32 [[]2, 4[]] vs my torch.float32 [[]2, 4[]]*",
            "*FAILED relative_euclidean_distance = 0.0625 fails <= 0.001 [[]source: dtype default (torch.float32)[]]*",
            "*worst element at index (1, 3): golden 8, my 8.5 (|diff| 0.5)",
            "*golden: *root.b.c*output_0.pth",
        ]
    )


def test_keyword_and_marker_selection(pytester, dumps):
    golden, my = dumps()
    run(pytester, golden, my, "-k", "root.b and token1").assert_outcomes(passed=3)
    run(pytester, golden, my, "-m", "llm_compare").assert_outcomes(passed=10)
    run(pytester, golden, my, "-m", "not llm_compare").assert_outcomes()


def test_pairs_run_alongside_the_users_tests(pytester, dumps):
    golden, my = dumps()
    pytester.makepyfile(test_mine="def test_one():\n    assert True\n")
    run(pytester, golden, my).assert_outcomes(passed=11)


def test_tokens_and_select_narrow_the_pairs(pytester, dumps):
    golden, my = dumps()
    run(pytester, golden, my, "--llm-tokens=1").assert_outcomes(passed=5)
    run(pytester, golden, my, "--llm-select=root.b*").assert_outcomes(passed=6)
    run(pytester, golden, my, "--llm-tokens=0-1", "--llm-select=root.a").assert_outcomes(passed=4)


def test_precedence_cli_over_ini_rule_over_default(pytester, dumps):
    golden, my = dumps(my=model_dump(scale_b=1.0625))
    run_accumulated(pytester, golden, my).assert_outcomes(passed=8, failed=2)
    pytester.makeini("[pytest]\nllm_rules =\n    root.b.c max_red=0.07\n")
    run_accumulated(pytester, golden, my).assert_outcomes(passed=10)
    result = run_accumulated(pytester, golden, my, "--llm-max-red=0.01")
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines(["*[[]source: command line --llm-max-red[]]*"])


def test_standard_profile_from_the_command_line(pytester, dumps):
    golden, my = dumps(my=model_dump(scale_b=1.002))
    run_accumulated(pytester, golden, my).assert_outcomes(passed=8, failed=2)
    result = run_accumulated(pytester, golden, my, "--llm-standard=msprobe")
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines(
        ["*FAILED tolerance_pass_rate = 0 fails > 0.999 [[]source: profile 'msprobe' (torch.float32)[]]*"]
    )
    run_accumulated(pytester, golden, my, "--llm-standard=msprobe", "--llm-min-pass-rate=0").assert_outcomes(
        passed=10
    )
    result = run_accumulated(pytester, golden, my, "--llm-standard=nonsense")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown profile; choose one of default, strict, msit, msprobe*"])


def test_report_has_the_standard_columns_then_ours_with_correct_values(pytester, dumps, tmp_path):
    golden, my = dumps(my=model_dump(scale_b=1.5))
    report_dir = tmp_path / "reports"
    run_accumulated(pytester, golden, my, f"--llm-report-dir={report_dir}")
    header, rows = read_report(report_dir)
    assert header[:24] == STANDARD_COLUMNS
    assert header[24:] and {
        "sqnr_db",
        "max_ulp_error",
        "verdict",
        "failed_checks",
        "check_sources",
        "node_order",
    } <= set(header)
    assert [row["data_id"] for row in rows] == [str(i) for i in range(10)]
    row = next(r for r in rows if r["pair_key"] == "token0/root.b.c/output_0")
    # golden 1..8, my 1.5 * (1..8): every element off by half its value, computed by hand
    assert float(row["max_absolute_error"]) == 4.0
    assert float(row["mean_absolute_error"]) == pytest.approx(sum(0.5 * v for v in range(1, 9)) / 8)
    assert float(row["relative_euclidean_distance"]) == pytest.approx(0.5)
    assert float(row["max_relative_error"]) == pytest.approx(0.5)
    assert float(row["cosine_similarity"]) == pytest.approx(1.0)
    assert float(row["sqnr_db"]) == pytest.approx(10 * math.log10(4))
    assert row["golden_dtype"] == "torch.float32" and row["golden_shape"] == "[2, 4]"
    assert row["golden_max_value"] == "8.0" and row["my_max_value"] == "12.0"
    assert row["golden_op_type"] == "C" and row["token_id"] == "0"
    assert row["golden_data_path"].endswith("0/root.b.c/output_0.pth")
    assert row["verdict"] == "failed"
    assert row["failed_checks"] == "relative_euclidean_distance = 0.5 (needs <= 0.001)"
    assert row["check_sources"] == "dtype default (torch.float32)"
    passing = next(r for r in rows if r["pair_key"] == "token1/root.a/output")
    assert (
        passing["verdict"] == "passed" and passing["cmp_fail_reason"] == "" and passing["failed_checks"] == ""
    )


def test_unmatched_tensors_are_reported_and_fail_only_on_request(pytester, dumps, tmp_path):
    golden_tokens = model_dump()
    my_tokens = model_dump()
    del my_tokens[1]["root.a"]
    my_tokens[0]["root.extra"] = {"output": ONES}
    golden, my = dumps(golden_tokens, my_tokens)
    report_dir = tmp_path / "reports"
    result = run(pytester, golden, my, f"--llm-report-dir={report_dir}")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*unmatched tensors: 2 golden, 1 my"])
    header, rows = read_report(report_dir, "llmprec_unmatched_")
    assert header == ["side", "token_id", "node", "leaf", "node_type", "data_path", "reason"]
    assert sorted((r["side"], r["token_id"], r["node"], r["leaf"]) for r in rows) == [
        ("golden", "1", "root.a", "input_0"),
        ("golden", "1", "root.a", "output"),
        ("my", "0", "root.extra", "output"),
    ]
    strict = run(pytester, golden, my, "--llm-fail-on-unmatched")
    strict.assert_outcomes(passed=8, failed=1)
    strict.stdout.fnmatch_lines(["*3 tensors have no partner (--llm-fail-on-unmatched):*"])


def test_unreadable_file_fails_one_item_and_the_rest_run(pytester, dumps):
    golden, my = dumps()
    broken = my / "torch_tensors" / "cpu_4242" / "0" / "root.a" / "output.pth"
    broken.write_bytes(b"\x80\x02garbage that is no checkpoint")
    result = run(pytester, golden, my)
    result.assert_outcomes(passed=9, failed=1)
    result.stdout.fnmatch_lines(["*cannot read pair token0/root.a/output: *output.pth: *", "*1 unreadable*"])


def test_junit_properties_with_xunit1(pytester, dumps, tmp_path):
    golden, my = dumps(my=model_dump(scale_b=1.5))
    xml = tmp_path / "junit.xml"
    run(pytester, golden, my, f"--junitxml={xml}", "-o", "junit_family=xunit1", "-k", "token0 and output_0")
    case = next(c for c in ET.parse(xml).iter("testcase") if "output_0" in c.get("name", ""))
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert float(properties["relative_euclidean_distance"]) == pytest.approx(0.5)
    assert properties["verdict"] == "failed"


def test_baseline_update_then_gate(pytester, dumps, tmp_path):
    baseline = tmp_path / "baseline.csv"
    golden, my = dumps(my=model_dump(scale_b=1.015625))
    loose = ["--llm-max-red=0.1"]
    run_accumulated(
        pytester, golden, my, *loose, f"--llm-baseline={baseline}", "--llm-update-baseline"
    ).assert_outcomes(passed=10)
    header, rows = read_report(tmp_path, "baseline")
    assert header[0] == "pair_key" and len(rows) == 10
    run_accumulated(pytester, golden, my, *loose, f"--llm-baseline={baseline}").assert_outcomes(passed=10)
    worse = write_torch_dump(tmp_path / "worse", model_dump(scale_b=1.03125))
    result = run_accumulated(pytester, golden, worse, *loose, f"--llm-baseline={baseline}")
    result.assert_outcomes(passed=8, failed=2)  # still within max_red=0.1, but twice main's error
    result.stdout.fnmatch_lines(
        [
            "*FAILED relative_euclidean_distance regressed against the baseline: 0.03125 now, 0.015625 before (tolerance 0.1)"
        ]
    )
    run_accumulated(
        pytester, golden, worse, *loose, f"--llm-baseline={baseline}", "--llm-baseline-tolerance=4"
    ).assert_outcomes(passed=10)


def test_missing_baseline_is_a_usage_error(pytester, dumps, tmp_path):
    golden, my = dumps()
    result = run(pytester, golden, my, f"--llm-baseline={tmp_path / 'none.csv'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no such file (create it with --llm-update-baseline)*"])


def test_bad_dump_path_is_a_usage_error(pytester, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(pytester, tmp_path / "empty", tmp_path / "empty")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llm-golden=*empty*"])


def test_report_is_written_after_an_interrupt(pytester, dumps, tmp_path):
    golden, my = dumps()
    pytester.makeconftest(
        """
        def pytest_runtest_teardown(item):
            if item.name == "llm/token0/root.b/output":
                raise KeyboardInterrupt
        """
    )
    report_dir = tmp_path / "reports"
    result = pytester.runpytest_subprocess(
        f"--llm-golden={golden}", f"--llm-my={my}", f"--llm-report-dir={report_dir}"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    _, rows = read_report(report_dir)
    assert [row["pair_key"] for row in rows] == [
        "token0/root.a/input_0", "token0/root.a/output", "token0/root.b.c/output_0",
        "token0/root.b.c/output_1", "token0/root.b/output",
    ]  # fmt: skip
    assert not list(report_dir.glob(".*.tmp"))


def test_xdist_report_equals_the_serial_report(pytester, dumps, tmp_path):
    golden, my = dumps(my=model_dump(scale_b=1.0625))
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    common = [f"--llm-golden={golden}", f"--llm-my={my}", "-p", "no:cacheprovider"]
    pytester.runpytest_subprocess(*common, f"--llm-report-dir={serial}").assert_outcomes(passed=8, failed=2)
    result = pytester.runpytest_subprocess(*common, f"--llm-report-dir={parallel}", "-n", "2")
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines(["*first divergence: token0/root.b.c/output_0*"])
    assert read_report(serial) == read_report(parallel)
    assert read_report(serial, "llmprec_unmatched_") == read_report(parallel, "llmprec_unmatched_")


def test_report_is_written_when_an_xdist_worker_dies(pytester, dumps, tmp_path):
    golden, my = dumps()
    pytester.makeconftest(
        """
        import os

        def pytest_runtest_call(item):
            if item.name == "llm/token1/root.a/output":
                os._exit(3)
        """
    )
    report_dir = tmp_path / "reports"
    result = pytester.runpytest_subprocess(
        f"--llm-golden={golden}",
        f"--llm-my={my}",
        f"--llm-report-dir={report_dir}",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*worker*crashed*"])
    _, rows = read_report(report_dir)
    keys = {row["pair_key"] for row in rows}
    assert "token1/root.a/output" not in keys
    assert len(keys) >= 5  # every pair that finished before or after the crash


def test_mapping_file_and_ini_paths(pytester, tmp_path):
    golden = write_torch_dump(
        tmp_path / "g", {0: {"root.model.x": {"output": ONES}, "root.head": {"output": ONES}}}
    )
    my = write_torch_dump(
        tmp_path / "m", {0: {"root.transformer.x": {"output": ONES}, "root.head": {"output": ONES}}}
    )
    (pytester.path / "names.json").write_text('{"root.model.*": "root.transformer.*"}')
    pytester.makeini(f"[pytest]\nllm_golden = {golden}\nllm_my = {my}\nllm_mapping_file = names.json\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*llm/token0/root.model.x/output PASSED*"])
    bad = pytester.runpytest("-p", "no:cacheprovider", f"--llm-mapping-file={tmp_path / 'missing.json'}")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*missing.json: cannot read the mapping file*"])


def test_logits_folders_compare_case_by_case(pytester, tmp_path):
    for side, shift in (("golden", 0.0), ("my", 0.5)):
        folder = tmp_path / side / "logits"
        folder.mkdir(parents=True)
        for key in (12, 40):
            for token in (0, 1):
                torch.save(
                    torch.arange(8.0) + (shift if (key, token) == (40, 1) else 0.0),
                    folder / f"logits_dev.jsonl_{key}_{token}.pth",
                )
    result = run(pytester, tmp_path / "golden" / "logits", tmp_path / "my" / "logits", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*logits/40/token1 FAILED*", "*case 40: diverged at token 1 (numerics differ)*"]
    )


def test_torch_and_npy_dumps_are_compared_without_importing_torch(pytester, dumps, tmp_path):
    golden, my = dumps(my=model_dump(scale_b=1.0625))
    pytester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            print("torch imported:", "torch" in sys.modules)
        """
    )
    result = pytester.runpytest_subprocess(
        f"--llm-golden={golden}", f"--llm-my={my}", "-p", "no:cacheprovider", "-s", "--llm-max-abs-err=0.1"
    )
    result.assert_outcomes(passed=8, failed=2)
    # |diff| = 0.0625 * (1 ... 8): seven elements are over 0.1, counted by the C kernel
    result.stdout.fnmatch_lines(["*elements with |my - golden| > 0.1: 7"])
    result.stdout.fnmatch_lines(["*torch imported: False*"])
    passing = pytester.runpytest_subprocess(
        f"--llm-golden={golden}", f"--llm-my={golden}", "-p", "no:cacheprovider", "-s"
    )
    passing.assert_outcomes(passed=10)
    passing.stdout.fnmatch_lines(["*torch imported: False*"])


def test_reports_are_the_same_with_and_without_torch(pytester, dumps, tmp_path, monkeypatch):
    from pytest_llmprec.dumps.base import TensorRecord

    golden, my = dumps(my=model_dump(scale_b=1.0625))
    run(pytester, golden, my, f"--llm-report-dir={tmp_path / 'raw'}").assert_outcomes(passed=8, failed=2)
    monkeypatch.setattr(TensorRecord, "load_raw", lambda self: None)
    run(pytester, golden, my, f"--llm-report-dir={tmp_path / 'torch'}").assert_outcomes(passed=8, failed=2)
    assert read_report(tmp_path / "raw") == read_report(tmp_path / "torch")


def test_the_worst_pairs_show_one_minus_cosine_where_the_cosines_look_equal(pytester, dumps):
    signs = torch.tensor([1.0, -1.0] * 4).reshape(2, 4)
    golden = {0: {"root.a": {"output": ARANGE}, "root.b": {"output": ARANGE}}}
    my = {
        0: {
            "root.a": {"output": ARANGE * (1 + 1e-5 * signs)},
            "root.b": {"output": ARANGE * (1 + 3e-5 * signs)},
        }
    }
    result = run(pytester, *dumps(golden, my))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "worst 2 by cosine similarity:",
            "  1.00000000  1-cos *  red *  passed  token0/root.b/output",
            "  1.00000000  1-cos *  red *  passed  token0/root.a/output",
        ]
    )
    listed = [line.split("1-cos")[1].split()[0] for line in result.outlines if "1-cos" in line]
    worse, better = (float(value) for value in listed)
    assert worse > better > 0  # the cosines print alike; 1 - cos keeps them apart


def test_differing_weights_do_not_hide_the_first_executed_divergence(pytester, dumps, tmp_path):
    golden, my = dumps(my=model_dump(scale_b=1.0625))
    for root, scale in ((golden, 1.0), (my, 1.5)):  # a quantised model's weights differ by design
        weights = next(root.glob("torch_tensors/*")) / "weights"
        weights.mkdir()
        torch.save(ARANGE * scale, weights / "root.a.weight.pth")
        torch.save(ONES * scale, weights / "root.b.c.weight.pth")
    result = run(pytester, golden, my)
    result.assert_outcomes(passed=8, failed=4)
    result.stdout.fnmatch_lines(
        [
            "12 pairs compared: 8 passed, 4 failed*",
            "first divergence: token0/root.b.c/output_0 (C): *",
            "weights differing: 2 (first: weights/root.a.weight/weight)",
        ]
    )


def test_first_divergence_prefers_executed_pairs_over_weights():
    from pytest_llmprec.report.summary import first_divergence

    def row(key, order, token, verdict="failed"):
        return {"pair_key": key, "node_order": order, "token_id": token, "verdict": verdict}

    weight, later = row("weights/w/weight", 0, "weights"), row("token0/b/output", 5, 0)
    assert first_divergence([weight, row("token0/a/output", 3, 0, "passed"), later]) is later
    assert first_divergence([weight, row("token0/a/output", 3, 0, "passed")]) is weight
    assert first_divergence([row("t", None, 0)]) is None  # hand-written comparisons have no order


def test_xdist_workers_crowding_the_cores_are_noted(pytester, dumps):
    golden, my = dumps()
    cores = len(os.sched_getaffinity(0))
    workers = max(2, cores // 2 + 1)  # more than half the cores: the note is due
    result = run(pytester, golden, my, "-n", str(workers))
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines([f"llmprec: {workers} xdist workers on {cores} cores: *slower here"])
    assert "xdist workers on" not in run(pytester, golden, my).stdout.str()


def test_a_collect_only_run_writes_no_report(pytester, dumps):
    golden, my = dumps()
    result = run(pytester, golden, my, "--co", "-q")
    assert result.ret == 0
    assert not (pytester.path / "llmprec-report").exists()


def chained_pair(error: float = 0.01) -> tuple[dict, dict]:
    """``root.a`` feeding ``root.b``; in the second, root.a's output is off by ``error``."""

    def model(scale: float) -> dict:
        a = ARANGE * scale
        return {0: {"root.a": {"input_0": ONES, "output": a}, "root.b": {"input_0": a, "output": a * 2}}}

    return model(1.0), model(1 + error)


def test_the_local_verdict_is_the_default_and_the_ini_can_choose_accumulated(pytester, dumps):
    golden, my = dumps(*chained_pair())
    local = run(pytester, golden, my)
    local.assert_outcomes(passed=3, failed=1)  # only root.a's output introduces the error
    local.stdout.fnmatch_lines(
        ["first divergence: token0/root.a/output*introduced RED 0.01*", "*FAILED llm/token0/root.a/output*"]
    )
    pytester.makeini("[pytest]\nllm_verdict = accumulated\n")
    run(pytester, golden, my).assert_outcomes(passed=1, failed=3)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--llm-verdict=strict", "--llm-verdict=strict: choose one of local, accumulated"),
        ("--llm-max-introduced=0", "--llm-max-introduced=0: needs a number above 0"),
        ("--llm-max-introduced=abc", "--llm-max-introduced=abc: needs a number above 0"),
    ],
)
def test_bad_verdict_options_are_usage_errors(pytester, dumps, option, message):
    golden, my = dumps()
    result = run(pytester, golden, my, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_a_marker_chooses_the_verdict_of_the_items_it_marks(pytester, dumps):
    golden, my = dumps(*chained_pair())
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if "root.b/" in item.nodeid:
                    item.add_marker(pytest.mark.llm_precision(verdict="accumulated"))
        """
    )
    result = run(pytester, golden, my)
    result.assert_outcomes(passed=1, failed=3)  # root.a by what it introduces, root.b's as dumped
    result.stdout.fnmatch_lines(["*FAILED llm/token0/root.b/output - pair token0/root.b/output failed for*"])


@pytest.mark.parametrize(
    ("options", "noted"),
    [
        (["--dist", "load"], True),
        (["--dist", "loadgroup"], False),
        (["--dist", "load", "--llm-verdict=accumulated"], False),
        (["--dist", "load", "--llm-item=token"], False),
    ],
)
def test_xdist_spreading_tokens_under_the_local_verdict_is_noted(pytester, dumps, options, noted):
    golden, my = dumps()
    result = run(pytester, golden, my, "-n", "2", *options)
    result.assert_outcomes(passed={"--llm-item=token": 2}.get(options[-1], 10))  # two tokens
    line = "llmprec: --dist load under the local verdict: every worker reads the whole of each token *"
    if noted:
        result.stdout.fnmatch_lines([line + "loadgroup gives each token to one worker"])
    else:
        assert "under the local verdict" not in result.stdout.str()
