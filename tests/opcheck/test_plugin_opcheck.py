"""pytest --llm-opcheck=DUMP items, the opcheck marker and fixture, the report (pytester)."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import pytest
import torch
from atb_layout import token_folder, write_op

from pytest_llmprec.opcheck.report import EXTRA_COLUMNS, MSIT_BASE

pytest_plugins = ["pytester"]

CONFTEST = """
from pytest_llmprec.opcheck import register_op

@register_op("PtScaleOperation", required_params=("factor",), inputs=1)
def _scale(inputs, params):
    return [inputs[0] * params["factor"]]
"""


def x(n, seed=0, dtype=torch.float16):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.fixture
def dump(pytester):
    """Token 0: 0_PtScaleOperation (right), 1_Layer/0_PtScaleOperation (3% wrong),
    1_Layer/1_PtScaleOperation (no parameter: not checkable), 2_PtScaleOperation (op_param.json broken)."""
    pytester.makeconftest(CONFTEST)
    token = token_folder(pytester.path / "dumps")
    a, b = x(64), x(64, 1)
    write_op(token / "0_PtScaleOperation", [a], [a * 2], {"factor": 2})
    write_op(token / "1_Layer" / "0_PtScaleOperation", [b], [b * 2.06], {"factor": 2})
    write_op(token / "1_Layer" / "1_PtScaleOperation", [b], [b], {})
    write_op(token / "2_PtScaleOperation", [a], [a], "{oops")
    return token


def report_rows(pytester, folder="llmprec-report"):
    (path,) = (pytester.path / folder).glob("llmprec_opcheck_report_*.csv")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_one_item_per_case_in_execution_order(pytester, dump):
    result = pytester.runpytest(f"--llm-opcheck={dump}", "--collect-only", "-q")
    lines = [line for line in result.outlines if line.startswith("opcheck/")]
    assert lines == [
        "opcheck/0_PtScaleOperation",
        "opcheck/1_0_PtScaleOperation",
        "opcheck/1_1_PtScaleOperation",
        "opcheck/2_PtScaleOperation",
    ]


def test_outcomes_messages_and_report(pytester, dump):
    result = pytester.runpytest(f"--llm-opcheck={dump}", "-rs")
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*opcheck 1_0_PtScaleOperation (PtScaleOperation) output 0 failed for golden torch.float64 [[]64[]] vs my torch.float16*",
            "*FAILED tolerance_pass_rate = * fails >= 1 [[]source: opcheck default (torch.float16)[]]; passes with min_pass_rate=*",
            "*msit opcheck standard: FAILED (relative pass rate: *",
            "*op_param.json is not readable JSON*",
            "*4 operator cases, 4 report rows*",
            "*SKIPPED*1_1_PtScaleOperation: not checkable: PtScaleOperation needs the parameter(s) factor*",
        ]
    )
    columns, rows = report_rows(pytester)
    assert columns[: len(MSIT_BASE)] == list(MSIT_BASE)
    assert columns[len(MSIT_BASE) : len(MSIT_BASE) + 5] == [
        "abs_precision_rate(%)", "max_abs_error", "cosine_similarity", "kl_divergence", "fail_reason",
    ]  # fmt: skip
    assert columns[-len(EXTRA_COLUMNS) :] == list(EXTRA_COLUMNS)
    assert [(r["op_id"], r["precision_result"], r["status"]) for r in rows] == [
        ("0", "PASS", "passed"),
        ("1_0", "FAILED", "failed"),
        ("1_1", "addition failed", "not checkable"),
        ("2", "FAILED", "error"),
    ]
    assert rows[0]["precision_standard"] == "99.9%(error<0.0009765625)" and rows[0]["out_tensor_id"] == "0"
    assert rows[1]["fail_reason"].startswith("relative pass rate: ") and rows[2]["out_tensor_id"] == ""


def test_filters_select_and_mark(pytester, dump):
    ids = pytester.runpytest(f"--llm-opcheck={dump}", "--llm-opcheck-ids=1", "--collect-only", "-q")
    assert [line for line in ids.outlines if line.startswith("opcheck/")] == [
        "opcheck/1_0_PtScaleOperation",
        "opcheck/1_1_PtScaleOperation",
    ]
    name = pytester.runpytest(f"--llm-opcheck={dump}", "--llm-opcheck-name=linear", "-q")
    name.stdout.fnmatch_lines(["*no operator with a reference*"])
    assert name.ret == 1
    keyword = pytester.runpytest(f"--llm-opcheck={dump}", "-k", "0_Pt and not 1_0", "-m", "opcheck")
    keyword.assert_outcomes(passed=1)


def test_junit_properties(pytester, dump):
    pytester.runpytest(f"--llm-opcheck={dump}", "--junitxml=out.xml", "-o", "junit_family=xunit1")
    cases = ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    first = next(case for case in cases if case.get("name") == "opcheck.0_PtScaleOperation")
    properties = {p.get("name"): p.get("value") for p in first.iter("property")}
    assert properties["op_name"] == "PtScaleOperation" and properties["precision_result"] == "PASS"
    assert properties["verdict"] == "passed" and properties["status"] == "passed"


def test_standard_and_threshold_options(pytester, dump):
    strict = pytester.runpytest(f"--llm-opcheck={dump}", "--llm-opcheck-ids=0", "--llm-max-ulp=0")
    strict.assert_outcomes(passed=1)  # exact output
    loose = pytester.runpytest(
        f"--llm-opcheck={dump}", "--llm-opcheck-ids=1_0", "--llm-min-pass-rate=0", "--llm-max-red=0.1"
    )
    loose.assert_outcomes(passed=1)
    msit = pytester.runpytest(
        f"--llm-opcheck={dump}", "--llm-opcheck-ids=0", "--llm-standard=msit", "--llm-report-dir=msit"
    )
    msit.assert_outcomes(passed=1)
    assert [row["standard"] for row in report_rows(pytester, "msit")[1]] == ["msit"]


def test_bad_input_can_be_skipped(pytester, dump):
    result = pytester.runpytest(
        f"--llm-opcheck={dump}", "--llm-opcheck-skip-bad-input", "--llm-opcheck-ids=2"
    )
    result.assert_outcomes(skipped=1)


def test_xdist_workers_send_rows_to_one_report(pytester, dump):
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(f"--llm-opcheck={dump}", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    _, rows = report_rows(pytester)
    assert [r["op_id"] for r in rows] == ["0", "1_0", "1_1", "2"]


def test_a_path_that_is_no_dump_is_one_failed_item(pytester, tmp_path):
    empty = pytester.mkdir("empty")
    result = pytester.runpytest(f"--llm-opcheck={empty}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*opcheck/load*", "*no recognisable dump layout*"])
    assert report_rows(pytester)[1] == []
    missing = pytester.runpytest("--llm-opcheck=nowhere")
    missing.stderr.fnmatch_lines(["*--llm-opcheck=*nowhere: no such file or folder*"])
    assert missing.ret == pytest.ExitCode.USAGE_ERROR


def test_report_is_written_after_an_interrupt(pytester, dump):
    pytester.makeconftest(
        CONFTEST
        + """
def pytest_runtest_teardown(item):
    if item.nodeid == "opcheck/1_0_PtScaleOperation":
        raise KeyboardInterrupt
"""
    )
    result = pytester.runpytest_subprocess(f"--llm-opcheck={dump}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    _, rows = report_rows(pytester)
    assert [row["op_id"] for row in rows] == ["0", "1_0"]


MARKER_TESTS = """
import pytest, torch
from hypothesis import given, settings, strategies as st

@pytest.mark.opcheck("PtScaleOperation", params={"factor": 2.0})
def test_right_kernel(opcheck):
    (x,) = opcheck.inputs([(4, 64)], dtype=torch.bfloat16)
    opcheck.check(x * 2)

@pytest.mark.opcheck("PtScaleOperation", params={"factor": 2.0})
def test_wrong_kernel(opcheck):
    (x,) = opcheck.inputs([(4, 64)], dtype=torch.bfloat16)
    opcheck.check(x * 2.06)

@pytest.mark.opcheck("PtScaleOperation", params={"factor": 2.0}, standard="msit")
def test_msit_standard(opcheck):
    (x,) = opcheck.inputs([(4, 64)], dtype=torch.float16)
    opcheck.check(x * 2)

@pytest.mark.opcheck("PtScaleOperation", params={"factor": 2.0}, min_pass_rate=0.0, max_red=0.05)
def test_loosened(opcheck):
    (x,) = opcheck.inputs([(4, 64)], dtype=torch.bfloat16)
    opcheck.check(x * 2.06)

@pytest.mark.opcheck("LlamaRMSNorm", params={"variance_epsilon": 1e-6})
def test_module_reference(opcheck):
    x, w = opcheck.inputs([(3, 32), (32,)], dtype=torch.bfloat16)
    h = x.float()
    out = w * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)
    opcheck.check(out, inputs=[x], weights={"weight": w})

@settings(max_examples=10, deadline=None)
@given(data=st.data(), factor=st.sampled_from([0.5, 3.0]))
@pytest.mark.opcheck("PtScaleOperation")
def test_given(opcheck, data, factor):
    (x,) = opcheck.inputs([(2, 16)], dtype=torch.float16, data=data)
    opcheck.check(x * factor, params={"factor": factor})

@settings(max_examples=10, deadline=None)
@given(data=st.data())
@pytest.mark.opcheck("PtScaleOperation", params={"factor": 3.0})
def test_given_wrong(opcheck, data):
    (x,) = opcheck.inputs([(2, 16)], dtype=torch.float16, data=data)
    opcheck.check((x * 3 + (x.abs() > 0.5) * 0.25).to(x.dtype))
"""


def test_marker_and_fixture(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_kernels=MARKER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_wrong_kernel*",
            "*opcheck test_kernels.py::test_wrong_kernel (PtScaleOperation) output 0 failed*(standard 'opcheck')*",
            "*FAILED relative_euclidean_distance = * fails <= 0.0078125*",
        ]
    )
    assert "Failing test case" in result.stdout.str() or "Falsifying example" in result.stdout.str()
    _, rows = report_rows(pytester)
    by_test = {row["case_id"].split("::")[1]: row for row in rows}
    assert by_test["test_msit_standard"]["standard"] == "msit"
    assert by_test["test_wrong_kernel"]["verdict"] == "failed"
    assert by_test["test_module_reference"]["verdict"] == "passed"


def test_marker_usage_errors(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_usage="""
        import pytest, torch
        def test_no_operator(opcheck):
            opcheck.check(torch.ones(2), inputs=[torch.ones(2)])
        @pytest.mark.opcheck("PtScaleOperation", params={"factor": 1})
        def test_no_inputs(opcheck):
            opcheck.check(torch.ones(2))
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*name the operator*", "*no inputs: call opcheck.inputs*"])
