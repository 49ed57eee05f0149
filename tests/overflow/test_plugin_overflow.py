"""The pytest side: the overflow marker, the overflow_guard fixture and --llm-overflow=DUMP items."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
from dump_writers import atb_dump, torch_dump
from overflow_models import OVERFLOWING

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"

HEADER = textwrap.dedent(
    f"""
    import sys
    sys.path[:0] = [{str(HERE)!r}, {str(EXAMPLES)!r}]
    import math
    import pytest
    import tiny_llm
    import torch
    from overflow_models import overflowing_model, prompt
    """
)


def write_tests(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_models=HEADER + textwrap.dedent(body))


def failure_text(result, name: str) -> str:
    (report,) = [
        r for r in result.getreports("pytest_runtest_logreport") if r.when == "call" and name in r.nodeid
    ]
    return str(report.longrepr)


def test_marker_and_fixture_fail_with_the_first_overflowing_module(pytester):
    write_tests(
        pytester,
        """
        @pytest.mark.overflow
        def test_marked():
            with torch.no_grad():
                overflowing_model()(prompt())

        def test_fixture(overflow_guard):
            with torch.no_grad():
                overflowing_model()(prompt())

        @pytest.mark.overflow
        def test_clean():
            tiny_llm.generate(tiny_llm.build_model(seed=0, dtype=torch.float16), prompt(), 2)

        def test_unguarded():
            with torch.no_grad():
                overflowing_model()(prompt())
        """,
    )
    result = pytester.inline_run("-p", "no:cacheprovider")
    result.assertoutcome(passed=2, failed=2)
    for name in ("test_marked", "test_fixture"):
        text = failure_text(result, name)
        assert text.splitlines()[0] == f"overflow first in {OVERFLOWING} (Linear), call 0 in forward 0"
        assert "last module with finite outputs: root.model.layers.1.mlp.up_proj (Linear)" in text
        assert "Traceback" not in text and "plugin" not in text


def test_marker_options_stop_dump_and_globs(pytester):
    write_tests(
        pytester,
        """
        @pytest.mark.overflow(stop=True, dump="overflow-dump")
        def test_stop_and_dump():
            with torch.no_grad():
                overflowing_model()(prompt())
            raise AssertionError("not reached: the guard stops the forward")

        @pytest.mark.overflow(exclude=["*.down_proj", "*.mlp"])
        def test_excluded():
            with torch.no_grad():
                overflowing_model()(prompt())

        @pytest.mark.overflow(include="*.lm_head", saturation=False, near=0.9)
        def test_included():
            with torch.no_grad():
                overflowing_model()(prompt())

        @pytest.mark.overflow(stop=True)
        def test_guard_is_shared_with_the_fixture(overflow_guard):
            assert overflow_guard.stop
        """,
    )
    result = pytester.inline_run("-p", "no:cacheprovider")
    result.assertoutcome(passed=1, failed=3)
    stopped = failure_text(result, "test_stop_and_dump")
    assert "not reached" not in stopped and OVERFLOWING in stopped
    assert "the first offending call's tensors: " in stopped
    (folder,) = (pytester.path / "overflow-dump").glob("msit_dump_*/torch_tensors/cpu_*/0")
    assert sorted(p.name for p in (folder / OVERFLOWING).iterdir()) == ["input_0.pth", "output.pth"]
    assert failure_text(result, "test_excluded").startswith(
        "overflow first in root.model.layers.1 (DecoderLayer)"
    )
    assert failure_text(result, "test_included").startswith("overflow first in root.lm_head (Linear)")


def test_bad_marker_arguments_fail_the_test_clearly(pytester):
    write_tests(
        pytester,
        """
        @pytest.mark.overflow(stops=True)
        def test_unknown():
            pass

        @pytest.mark.overflow("root.*")
        def test_positional():
            pass

        @pytest.mark.overflow(near=3)
        def test_bad_value(overflow_guard):
            pass
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.overflow: near must be a fraction of the largest finite value in (0, 1], got 3*",
            "*@pytest.mark.overflow: unknown option(s) stops; the options are include, exclude, *",
            "*@pytest.mark.overflow takes keyword arguments only, got ('root.*',)*",
        ]
    )


def test_a_test_failing_on_its_own_keeps_its_failure_and_gets_the_overflow_report(pytester):
    write_tests(
        pytester,
        """
        def test_asserts(overflow_guard):
            with torch.no_grad():
                logits = overflowing_model()(prompt())
            assert torch.isfinite(logits).all(), "logits are not finite"
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: logits are not finite*",
            "*Captured overflow call*",
            f"overflow first in {OVERFLOWING}*",
        ]
    )


def test_the_fixture_checks_and_clears_on_demand(pytester):
    write_tests(
        pytester,
        """
        from pytest_llmprec import OverflowFailure

        def test_expected_overflow(overflow_guard):
            with torch.no_grad():
                overflowing_model()(prompt())
            assert overflow_guard.first.call.name == "root.model.layers.1.mlp.down_proj"
            with pytest.raises(OverflowFailure):
                overflow_guard.check()

        def test_cleared(overflow_guard):
            with torch.no_grad():
                overflowing_model()(prompt())
            overflow_guard.clear()
        """,
    )
    pytester.inline_run("-p", "no:cacheprovider").assertoutcome(passed=2)


# --- --llm-overflow=DUMP ------------------------------------------------------------------------


def report_rows(folder: Path) -> list[dict[str, str]]:
    (path,) = folder.glob("llmprec_overflow_*.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_dump_scan_items_fail_the_overflowing_nodes_and_name_the_first(pytester):
    root = torch_dump(pytester.path / "dump", tokens=2)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--llm-overflow={root}", "--llm-report-dir=rep", "-rf"
    )
    result.assert_outcomes(passed=56, failed=14)
    result.stdout.fnmatch_lines(
        [
            "*= llmprec overflow =*",
            "70 nodes scanned, 70 tensors: 14 overflowed, 0 near overflow, 0 unreadable",
            f"first overflow: token 0 {OVERFLOWING} (Linear) output: * +Inf, * -Inf of 384 values",
            "report: *rep*llmprec_overflow_*.csv",
            f"FAILED overflow/token0/{OVERFLOWING} - overflow in token0*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    rows = report_rows(pytester.path / "rep")
    assert len(rows) == 70
    first = next(row for row in rows if row["verdict"] == "overflow")
    assert (first["token_id"], first["node"], first["node_type"], first["dtype"]) == (
        "0",
        OVERFLOWING,
        "Linear",
        "float16",
    )
    assert int(first["pos_inf_count"]) > 0


def test_dump_scan_of_an_atb_dump_with_options(pytester):
    root = atb_dump(pytester.path)
    result = pytester.runpytest("-p", "no:cacheprovider", f"--llm-overflow={root}", "-v")
    result.assert_outcomes(passed=3, failed=4)
    result.stdout.fnmatch_lines(
        [
            "overflow/rank0/token0/0_EmbeddingOperation PASSED*",
            "overflow/rank0/token0/1_DecoderLayer/1_LinearOperation FAILED*",
            "*first overflow: token 0 1_DecoderLayer/1_LinearOperation (LinearOperation) after/outtensor0: 1 +Inf*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*after/outtensor1: float16 ?2, 4?: 1 NaN of 8 values; first at index (0, 3) = nan"]
    )
    relaxed = pytester.runpytest(
        "-p", "no:cacheprovider", f"--llm-overflow={root}", "--llm-overflow-saturation=off"
    )
    relaxed.assert_outcomes(passed=5, failed=2)
    strict = pytester.runpytest(
        "-p", "no:cacheprovider", f"--llm-overflow={root}", "--llm-overflow-near=0.00001"
    )
    strict.assert_outcomes(passed=1, failed=6)  # ones are near 0.00001 × 65504; the int32 argmax is not
    selected = pytester.runpytest("-p", "no:cacheprovider", f"--llm-overflow={root}", "-k", "Elewise")
    selected.assert_outcomes(failed=1)
    selected.stdout.fnmatch_lines(["1 nodes scanned, 1 tensors: 1 overflowed*"])


def test_dump_scan_under_xdist_reports_on_the_controller(pytester):
    root = atb_dump(pytester.path)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--llm-overflow={root}", "-n", "2")
    result.assert_outcomes(passed=3, failed=4)
    result.stdout.fnmatch_lines(
        [
            "7 nodes scanned, 8 tensors: 5 overflowed, 0 near overflow, 0 unreadable",
            "*first overflow: token 0 1_DecoderLayer/1_LinearOperation*",
        ]
    )


def test_an_unreadable_file_fails_its_node_naming_the_file(pytester):
    root = atb_dump(pytester.path)
    broken = next(root.rglob("2_ElewiseOperation/after/outtensor0.bin"))
    broken.write_bytes(broken.read_bytes()[:70])
    result = pytester.runpytest("-p", "no:cacheprovider", f"--llm-overflow={root}")
    result.assert_outcomes(passed=3, failed=4)
    result.stdout.fnmatch_lines(
        ["*after/outtensor0: cannot be read: *2_ElewiseOperation/after/outtensor0.bin*", "*1 unreadable*"]
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--llm-overflow=missing"], "*--llm-overflow=*missing: *no such file or folder*"),
        (
            ["--llm-overflow=.", "--llm-overflow-near=2"],
            "*--llm-overflow-near=2: expected a fraction in (0, 1]*",
        ),
        (["--llm-overflow=.", "--llm-overflow-saturation=maybe"], "*invalid choice: 'maybe'*"),
    ],
)
def test_bad_options_are_usage_errors(pytester, options, message):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_help_lists_the_overflow_options_and_the_marker(pytester):
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        ["*--llm-overflow=DUMP*", "*--llm-overflow-near=FRACTION*", "*--llm-overflow-saturation=on|off*"]
    )
    markers = pytester.runpytest_subprocess("--markers")
    markers.stdout.fnmatch_lines(["*@pytest.mark.overflow(include=None, exclude=None, saturation=True, *"])
