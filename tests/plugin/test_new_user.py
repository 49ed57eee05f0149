"""What a new user hit (issue 17): setup errors under xdist, selections and baselines, output paths,
option validation, report headings."""

from __future__ import annotations

import pytest
import torch
from torch_dumps import write_torch_dump

ONES = torch.ones(2, 4)
ARANGE = torch.arange(1.0, 9.0).reshape(2, 4)


def model_dump(scale: float = 1.0, tokens: int = 2) -> dict:
    return {
        t: {"root.a": {"output": ARANGE + t}, "root.b": {"output": ARANGE * scale - t, "input_0": ONES}}
        for t in range(tokens)
    }


def test_xdist_controller_reports_setup_errors_as_usage_errors(pytester, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    my = write_torch_dump(tmp_path / "my", model_dump())
    for golden, message in [
        (tmp_path / "nonexist", "*--llm-golden=*nonexist: *no such file or folder*"),
        (empty, "*--llm-golden=*empty: *no recognisable dump layout*"),
    ]:
        result = pytester.runpytest_subprocess(
            f"--llm-golden={golden}", f"--llm-my={my}", "-n", "2", "-p", "no:cacheprovider"
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["ERROR: " + message.lstrip("*")])


def run(pytester, golden, my, *args):
    return pytester.runpytest(f"--llm-golden={golden}", f"--llm-my={my}", "-p", "no:cacheprovider", *args)


def _baseline_rows(path) -> dict[str, str]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return {row["pair_key"]: row["relative_euclidean_distance"] for row in csv.DictReader(handle)}


@pytest.mark.parametrize(
    "selection",
    [("-k", "token0"), ("--llm-tokens=0",), ("-x",)],
    ids=["k", "tokens", "exitfirst"],
)
def test_updating_the_baseline_with_a_selection_keeps_the_other_rows(pytester, tmp_path, selection):
    baseline = tmp_path / "baseline.csv"
    golden = write_torch_dump(tmp_path / "g", model_dump())
    loose = ("--llm-max-red=0.5",)
    first = write_torch_dump(tmp_path / "m1", model_dump(scale=1.0625))
    run(pytester, golden, first, *loose, f"--llm-baseline={baseline}", "--llm-update-baseline")
    before = _baseline_rows(baseline)
    assert len(before) == 6
    # token0's root.b fails hard (-x stops there); every other pair passes and is selected by -k/tokens
    worse = model_dump(scale=1.0625)
    worse[0]["root.b"]["output"] = ARANGE * 4
    second = write_torch_dump(tmp_path / "m2", worse)
    result = run(
        pytester, golden, second, *loose, f"--llm-baseline={baseline}", "--llm-update-baseline", *selection
    )
    after = _baseline_rows(baseline)
    assert after.keys() == before.keys()
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {"token0/root.b/output"}
    compared = 3  # token0: -k and --llm-tokens select it, -x stops after its third pair
    result.stdout.fnmatch_lines(
        [
            f"baseline {baseline} updated: {compared} pairs updated, 0 added, "
            f"{6 - compared} kept from the earlier baseline (not compared in this run)"
        ]
    )


def test_a_report_dir_that_is_a_file_is_a_one_line_usage_error_before_anything_runs(pytester, tmp_path):
    golden = write_torch_dump(tmp_path / "g", model_dump())
    report = tmp_path / "report"
    report.write_text("a file")
    result = run(pytester, golden, golden, f"--llm-report-dir={report}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines == [f"ERROR: --llm-report-dir={report}: exists and is not a folder", ""]
    assert "passed" not in result.stdout.str()
    below = run(pytester, golden, golden, f"--llm-report-dir={report / 'inner'}")
    assert below.ret == pytest.ExitCode.USAGE_ERROR
    below.stderr.fnmatch_lines([f"ERROR: --llm-report-dir={report / 'inner'}: cannot be created: *"])


def test_a_report_that_cannot_be_written_at_the_end_is_one_line_and_the_summary_still_prints(
    pytester, tmp_path
):
    golden = write_torch_dump(tmp_path / "g", model_dump())
    reports = tmp_path / "reports"
    pytester.makeconftest(
        f"""
        import pathlib

        def pytest_runtest_teardown(item):  # the folder turns into a file while the run goes on
            path = pathlib.Path({str(reports)!r})
            if path.is_dir():
                path.rmdir()
            if not path.exists():
                path.write_text("in the way")
        """
    )
    result = run(pytester, golden, golden, f"--llm-report-dir={reports}", "-rN")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["6 pairs compared: 6 passed, 0 failed, 0 unreadable*", "reports not written: *reports*: *"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "FileExistsError" not in result.stdout.str()


def test_failure_sections_are_headed_by_the_item_id_and_verbose_lines_keep_it(pytester, tmp_path):
    golden = write_torch_dump(tmp_path / "g", model_dump())
    my = write_torch_dump(tmp_path / "m", model_dump(scale=1.5))
    result = run(pytester, golden, my, "-v", "-k", "token0")
    result.stdout.fnmatch_lines(["llm/token0/root.b/output FAILED*", "*_ llm/token0/root.b/output _*"])
    assert "_ test session _" not in result.stdout.str()
    assert "root::b" not in result.stdout.str()


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_junit_testcases_have_a_classname_of_token_and_node(pytester, tmp_path, family):
    import xml.etree.ElementTree as ET

    golden = write_torch_dump(tmp_path / "g", model_dump())
    xml = tmp_path / "junit.xml"
    run(pytester, golden, golden, f"--junitxml={xml}", "-o", f"junit_family={family}", "-k", "token1")
    testcases = list(ET.parse(xml).iter("testcase"))
    for case in testcases:  # docs/plugin.md: the metric properties in both families
        names = {p.get("name") for p in case.iter("property")}
        assert {"cosine_similarity", "verdict"} <= names
    cases = [(c.get("classname"), c.get("name")) for c in testcases]
    assert sorted(cases) == [
        ("llm.token1.root.a", "output"),
        ("llm.token1.root.b", "input_0"),
        ("llm.token1.root.b", "output"),
    ]


def test_one_dump_without_the_other_is_a_usage_error(pytester, tmp_path):
    golden = write_torch_dump(tmp_path / "g", model_dump())
    result = pytester.runpytest(f"--llm-golden={golden}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-golden needs --llm-my: *"])
    result = pytester.runpytest(f"--llm-my={golden}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-my needs --llm-golden: *"])
    parallel = pytester.runpytest_subprocess(f"--llm-golden={golden}", "-p", "no:cacheprovider", "-n", "2")
    assert parallel.ret not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    parallel.stdout.fnmatch_lines(["ERROR: --llm-golden needs --llm-my: *"])
    pytester.makepyfile("def test_golden_only(llm_golden):\n    assert len(llm_golden) == 6\n")
    pytester.runpytest(f"--llm-golden={golden}", "-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize("tokens", ["abc", "5", "1,7-8"])
def test_tokens_that_neither_dump_has_are_a_usage_error_naming_the_dumps_tokens(pytester, tmp_path, tokens):
    golden = write_torch_dump(tmp_path / "g", model_dump(tokens=3))
    my = write_torch_dump(tmp_path / "m", model_dump(tokens=2))
    result = run(pytester, golden, my, f"--llm-tokens={tokens}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    absent = {"abc": "abc", "5": "5", "1,7-8": "7-8"}[tokens]
    assert result.stderr.lines[0] == (
        f"ERROR: --llm-tokens={tokens}: token {absent} is in neither dump: "
        "golden has tokens 0-2, my has tokens 0-1"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--llm-min-cos=2", "--llm-min-cos=2 is out of range: cosine_similarity lies in [-1, 1]"),
        (
            "--llm-max-red=-0.1",
            "--llm-max-red=-0.1 is out of range: relative_euclidean_distance lies in [0, inf]",
        ),
        (
            "--llm-min-pass-rate=1.5",
            "--llm-min-pass-rate=1.5 is out of range: tolerance_pass_rate lies in [0, 1]",
        ),
    ],
)
def test_thresholds_out_of_range_are_usage_errors(pytester, tmp_path, option, message):
    golden = write_torch_dump(tmp_path / "g", model_dump())
    result = run(pytester, golden, golden, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == f"ERROR: {message}"


def test_a_marker_threshold_out_of_range_fails_the_marked_test(pytester):
    pytester.makepyfile(
        """
        import pytest, torch

        @pytest.mark.llm_precision(min_cos=1.5)
        def test_marked(llm_compare):
            llm_compare(torch.ones(3), torch.ones(3))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*min_cos=1.5 is out of range: cosine_similarity lies in [[]-1, 1[]]*"])


def test_pairs_whose_element_counts_differ_say_so_in_one_line(pytester, tmp_path):
    # (an input beside the output: a dump of one output per token reads as a last-logits dump)
    golden = write_torch_dump(tmp_path / "g", {0: {"root.a": {"input_0": ONES, "output": ONES}}})
    my = write_torch_dump(tmp_path / "m", {0: {"root.a": {"input_0": ONES, "output": torch.ones(3)}}})
    result = run(pytester, golden, my)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the element counts differ (8 vs 3); no metric can pass*"])
    assert "no threshold passes a NaN value" not in result.stdout.str()


def _write_baseline_text(path, text: str, encoding: str) -> None:
    path.write_bytes(text.encode(encoding))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_baseline_csv_with_a_bom_is_read_and_one_in_another_encoding_is_one_line(
    pytester, tmp_path, encoding
):
    golden = write_torch_dump(tmp_path / "g", model_dump())
    baseline = tmp_path / "baseline.csv"
    run(pytester, golden, golden, f"--llm-baseline={baseline}", "--llm-update-baseline")
    text = baseline.read_text(encoding="utf-8")
    _write_baseline_text(baseline, text, encoding)  # a spreadsheet round trip
    result = run(pytester, golden, golden, f"--llm-baseline={baseline}")
    if encoding == "utf-8-sig":
        result.assert_outcomes(passed=6)
        return
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        f"ERROR: {baseline}: not a baseline CSV: byte 0xff at offset 0 is not UTF-8 (save it as CSV UTF-8)"
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("error", [("nothere.py",), ("-k", "a and (")], ids=["path", "expression"])
def test_a_run_that_errors_before_comparing_writes_no_report_and_prints_only_the_error(
    pytester, tmp_path, error
):
    golden = write_torch_dump(tmp_path / "g", model_dump())
    my = write_torch_dump(tmp_path / "m", {0: {"root.a": {"output": ARANGE}, "root.z": {"output": ONES}}})
    reports = tmp_path / "reports"
    result = run(pytester, golden, my, f"--llm-report-dir={reports}", *error)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0].startswith("ERROR: ")
    assert "= llmprec =" not in result.stdout.str()
    assert "pairs compared" not in result.stdout.str()
    assert not reports.exists()


def test_pytest_does_not_walk_dump_folders_for_tests(pytester):
    other = write_torch_dump(pytester.path / "old", model_dump())  # msit_dump_*: not an option's path
    golden, my = pytester.path / "gold", pytester.path / "mine"
    for folder in (golden, my):
        folder.mkdir()
        torch.save(ONES, folder / "x.pth")
    # a test file inside each dump: collecting it would prove the walk went in
    for folder in (golden, my, other, other / "torch_tensors"):
        (folder / f"test_in_{folder.name}.py").write_text("def test_inside():\n    pass\n")
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = run(pytester, golden, my, "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "::" in line]
    assert ids == ["test_mine.py::test_mine"]
    named = pytester.runpytest(
        str(other / "torch_tensors" / "test_in_torch_tensors.py"), "-p", "no:cacheprovider"
    )
    named.assert_outcomes(passed=1)  # a path given on the command line is still collected


def test_tests_using_llm_pair_are_counted_apart_from_the_pairs(pytester, tmp_path):
    golden = write_torch_dump(tmp_path / "g", model_dump())
    my = write_torch_dump(tmp_path / "m", model_dump(scale=1.5))
    pytester.makepyfile(
        """
        def test_same_shape(llm_pair):
            assert "root.b/output" not in llm_pair.key
        """
    )
    result = run(pytester, golden, my, "-rN")
    result.assert_outcomes(passed=8, failed=4)  # 6 plugin items (2 fail) and 6 user tests (2 fail)
    result.stdout.fnmatch_lines(
        [
            "6 pairs compared: 4 passed, 2 failed, 0 unreadable; *",
            "6 tests using llm_pair (counted apart from the pairs): 4 passed, 2 failed, 0 skipped",
        ]
    )


def test_dumps_of_different_models_say_so_once_before_the_pairs(pytester, tmp_path):
    def model(width: int, layers: int) -> dict:
        return {
            0: {f"root.layers.{i}": {"output": torch.ones(2, width) * (i + 1)} for i in range(layers)},
        }

    golden = write_torch_dump(tmp_path / "g", model(4, 2))
    my = write_torch_dump(tmp_path / "m", model(8, 3))
    result = run(pytester, golden, my, "-rN")
    text = result.stdout.str()
    nodes = "the model trees differ: 1 my nodes have no golden partner (first root.layers.2)"
    shapes = (
        "the model trees differ in shapes: 2 of 2 pairs have different shapes "
        "(first token0/root.layers.0/output: golden [2, 4], my [2, 8])"
    )
    assert text.count(nodes) == 2  # at the start, and first in the summary
    assert text.index("llmprec: " + nodes) < text.index("FAILURES")
    result.stdout.fnmatch_lines(["*= llmprec =*", nodes, shapes, "2 pairs compared: *"])


def _decoding_dump(folder, ids: list[int]):
    """A torch dump of a greedy decode: the prompt [1, 2] at token 0, then one id per call."""
    calls = [torch.tensor([[1, 2]])] + [torch.tensor([[i]]) for i in ids]
    return write_torch_dump(
        folder,
        {t: {"root": {"kwarg_input_ids": x, "output": x.float() * 2}} for t, x in enumerate(calls)},
    )


def test_diverged_decode_inputs_are_named_with_the_token_and_golden_ids_can_be_fed_back(pytester, tmp_path):
    from pytest_llmprec.capture import golden_decode_inputs

    golden = _decoding_dump(tmp_path / "g", [5, 6, 7])
    my = _decoding_dump(tmp_path / "m", [5, 9, 4])
    result = run(pytester, golden, my, "-rN")
    result.stdout.fnmatch_lines(
        [
            "*= llmprec =*",
            "my run's decode inputs differ from golden's from token 2 (token2/root/kwarg_input_ids); "
            "later tokens compare different sequences *",
        ]
    )
    ids = golden_decode_inputs(golden)
    assert [x.tolist() for x in ids] == [[[1, 2]], [[5]], [[6]], [[7]]]


def test_one_saved_tensor_under_several_names_is_listed_once_with_its_aliases(pytester, tmp_path):
    import os

    def dump(folder, scale):
        tokens = {
            0: {
                "root.a": {"output": ARANGE * scale},
                "root.b": {"input_0": ARANGE * scale, "output": ARANGE + 1},
                "root.c": {"input_0": ARANGE * scale},
            }
        }
        root = write_torch_dump(folder, tokens)
        token = root / "torch_tensors" / "cpu_4242" / "0"
        for alias in ("root.b/input_0.pth", "root.c/input_0.pth"):  # hard links, as dumps link inputs
            (token / alias).unlink()
            os.link(token / "root.a" / "output.pth", token / alias)
        return root

    golden, my = dump(tmp_path / "g", 1.0), dump(tmp_path / "m", 1.25)
    result = run(pytester, golden, my, "-rN")
    result.stdout.fnmatch_lines(
        [
            "4 pairs compared: *",
            "2 distinct tensor pairs: 2 pairs are aliases (the same saved files under another name, *",
            "worst 2 by cosine similarity:",
            "*failed  token0/root.a/output and 2 aliases",
            "*passed  token0/root.b/output",
        ]
    )
