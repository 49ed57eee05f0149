"""Fixtures and markers for hand-written tests: llm_golden, llm_my, llm_pair, llm_compare."""

from __future__ import annotations

from torch_dumps import read_report, write_torch_dump


def test_dump_fixtures_skip_cleanly_without_options(pytester):
    pytester.makepyfile(
        """
        def test_golden(llm_golden):
            pass

        def test_pairs(llm_pair):
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*no golden dump: pass --llm-golden=PATH*"])


def test_llm_pair_parametrises_over_pairs_with_lazy_tensors(pytester, tmp_path):
    import torch

    tensors = {0: {"root.x": {"output": torch.ones(3)}, "root.y": {"output": torch.zeros(2)}}}
    golden = write_torch_dump(tmp_path / "g", tensors)
    my = write_torch_dump(tmp_path / "m", tensors)
    pytester.makepyfile(
        """
        import torch

        def test_shapes(llm_pair, llm_golden, llm_my):
            assert llm_pair.golden.shape == llm_pair.my.shape
            assert llm_pair.node in {"root.x", "root.y"}
            assert llm_golden.kind == llm_my.kind == "torch"
        """
    )
    result = pytester.runpytest(f"--llm-golden={golden}", f"--llm-my={my}", "-v", "-k", "test_shapes")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_shapes[[]token0/root.x/output[]] PASSED*"])


def test_llm_compare_uses_marker_and_records_rows(pytester, tmp_path):
    pytester.makepyfile(
        """
        import pytest, torch

        @pytest.mark.llm_precision(max_red=0.2)
        def test_marked(llm_compare):
            g = torch.arange(1.0, 5.0)
            llm_compare(g, g * 1.1, name="scaled")

        def test_unmarked(llm_compare):
            g = torch.arange(1.0, 5.0)
            llm_compare(g, g * 1.1)

        def test_call_beats_marker(llm_compare):
            g = torch.arange(1.0, 5.0)
            llm_compare(g, g * 1.1, max_red=0.2)
        """
    )
    report_dir = tmp_path / "reports"
    result = pytester.runpytest(f"--llm-report-dir={report_dir}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*llm_compare test_*unmarked failed*", "*source: dtype default (torch.float32)*"]
    )
    _, rows = read_report(report_dir)
    keys = {row["pair_key"]: row["verdict"] for row in rows}
    assert keys == {
        "test_llm_compare_uses_marker_and_records_rows.py::test_marked::scaled": "passed",
        "test_llm_compare_uses_marker_and_records_rows.py::test_unmarked": "failed",
        "test_llm_compare_uses_marker_and_records_rows.py::test_call_beats_marker": "passed",
    }
    cli = pytester.runpytest(f"--llm-report-dir={report_dir}", "--llm-max-red=0.05")
    cli.assert_outcomes(
        passed=1, failed=2
    )  # the command line beats the marker, the call beats the command line


def test_unknown_marker_threshold_is_reported(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_precision(max_cosine=0.2)
        def test_bad(llm_compare):
            llm_compare([1.0], [1.0])
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*llm_precision: unknown threshold 'max_cosine'*"])
