"""A serial run's pairs evaluated in a forked child process (``pipeline.evaluation_process``): the same
items, failures and report as one process; a child that fails or is stopped early costs nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch_dumps import read_report, write_torch_dump

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")

X = torch.arange(1.0, 9.0).reshape(2, 4)
MODULES = ("root.model.layers.0.attn", "root.model.layers.0.mlp", "root.model.layers.1.attn")
PAIRS = 2 * 2 * len(MODULES)  # two tokens, input_0 and output_0 of each module

# Records the process that evaluates each pair: pytest's ("main"), one it forked ("child": the
# evaluation process, or the half-token child of pytest's process) or one a child forked ("grandchild":
# the half-token child of the evaluation process); FAIL_AFTER makes the processes FAILING raise after
# that many pairs (counted on from the pairs their parent had evaluated before forking them).
CONFTEST = """
import os
from pytest_llmprec.pipeline import comparison

MAIN = os.getpid()
FAIL_AFTER = {fail_after}
FAILING = {failing!r}
evaluated = 0
original = comparison.evaluate_pair


def role():
    return "main" if os.getpid() == MAIN else "child" if os.getppid() == MAIN else "grandchild"


def recorded(pair, *args, **kwargs):
    global evaluated
    evaluated += 1
    if role() in FAILING and FAIL_AFTER is not None and evaluated > FAIL_AFTER:
        raise RuntimeError("planted failure")
    with open({log!r}, "a") as log:
        log.write(f"{{role()}} {{pair.key}}\\n")
    return original(pair, *args, **kwargs)


comparison.evaluate_pair = recorded
"""


def model_dump(scale: float) -> dict:
    def token(t: int) -> dict:
        return {
            module: {"input_0": X + i + t, "output_0": (X + i + t) * (scale if module == MODULES[1] else 1.0)}
            for i, module in enumerate(MODULES)
        }

    return {0: token(0), 1: token(1)}


@pytest.fixture
def dumps(tmp_path):
    golden = write_torch_dump(tmp_path / "golden", model_dump(1.0), list(MODULES))
    my = write_torch_dump(tmp_path / "my", model_dump(1.0625), list(MODULES))  # the mlp outputs fail
    return golden, my


def run(pytester, dumps, report_dir, *args, fail_after=None, failing=("child", "grandchild")):
    log = report_dir.parent / f"{report_dir.name}.log"
    pytester.makeconftest(CONFTEST.format(fail_after=fail_after, failing=failing, log=str(log)))
    golden, my = dumps
    result = pytester.runpytest_subprocess(
        f"--llm-golden={golden}", f"--llm-my={my}", "-p", "no:cacheprovider", "-rf",
        f"--llm-report-dir={report_dir}", *args,
    )  # fmt: skip
    evaluated_in = [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []
    return result, evaluated_in


def failure_lines(result) -> list[str]:
    return sorted(line for line in result.outlines if line.startswith("FAILED "))


@pytest.mark.parametrize("verdict", ["accumulated", "local"])
@pytest.mark.parametrize("item", ["tensor", "module"])
def test_the_child_evaluates_what_one_process_would(pytester, dumps, tmp_path, item, verdict):
    options = (f"--llm-verdict={verdict}", f"--llm-item={item}")
    forked, forked_in = run(pytester, dumps, tmp_path / "forked", *options)
    alone, alone_in = run(pytester, dumps, tmp_path / "alone", *options, "--llm-no-fork")
    assert forked_in == ["child"] * PAIRS and alone_in == ["main"] * PAIRS
    assert forked.ret == alone.ret == 1
    assert failure_lines(forked) == failure_lines(alone) != []
    assert read_report(tmp_path / "forked") == read_report(tmp_path / "alone")
    forked.stdout.fnmatch_lines(["*first divergence: token0/root.model.layers.0.mlp/output_0*"])
    assert forked.stdout.str().count("relative_euclidean_distance") == alone.stdout.str().count(
        "relative_euclidean_distance"
    )  # the failure messages came back whole


def test_a_child_that_fails_leaves_the_rest_to_pytests_process(pytester, dumps, tmp_path):
    forked, evaluated_in = run(
        pytester, dumps, tmp_path / "forked", "--llm-verdict=accumulated", fail_after=3
    )
    alone, _ = run(pytester, dumps, tmp_path / "alone", "--llm-verdict=accumulated", "--llm-no-fork")
    assert evaluated_in == ["child"] * 3 + ["main"] * (PAIRS - 3)
    assert failure_lines(forked) == failure_lines(alone)
    assert read_report(tmp_path / "forked") == read_report(tmp_path / "alone")
    forked.stdout.fnmatch_lines(
        ["*the evaluation process stopped (RuntimeError: planted failure); the pairs after it*"]
    )


def test_a_run_stopped_at_its_first_failure_ends_the_child(pytester, dumps, tmp_path):
    result, _ = run(pytester, dumps, tmp_path / "r", "--llm-verdict=accumulated", "-x")
    assert result.ret == 1
    result.assert_outcomes(passed=3, failed=1)
    _, rows = read_report(tmp_path / "r")
    assert len(rows) == 4  # the reports hold the pairs that ran, not the ones the child made ahead


def test_under_the_local_verdict_the_child_judges_tokens_ahead_of_the_items(pytester, dumps, tmp_path):
    # it judges token 1 while pytest runs token 0's items (reading them from the pipe meanwhile)
    result, evaluated_in = run(pytester, dumps, tmp_path / "r")
    assert evaluated_in == ["child"] * PAIRS
    result.assert_outcomes(passed=PAIRS - 2, failed=2)


LAYERS = 40  # 40 modules x 2 tensors: 80 pairs in each token, enough to split a token's evaluation
LARGE = 1 << 16  # float32 elements: 256 KiB files, large enough to split (comparison.SPLIT_BYTES)


def layered_dumps(tmp_path, elements: int, tokens: int = 1):
    modules = [f"root.model.layers.{i}.mlp" for i in range(LAYERS)]
    base = torch.linspace(-1.0, 1.0, elements)

    def model(scale: float) -> dict:
        return {
            token: {
                module: {"input_0": base + i, "output_0": (base + i) * (scale if i == 7 else 1.0)}
                for i, module in enumerate(modules)
            }
            for token in range(tokens)
        }

    golden = write_torch_dump(tmp_path / "golden", model(1.0), modules)
    my = write_torch_dump(tmp_path / "my", model(1.0625), modules)  # layer 7's output fails
    return golden, my


@pytest.fixture
def large_dumps(tmp_path):
    return layered_dumps(tmp_path, LARGE)


def test_a_token_of_small_pairs_is_not_split(pytester, tmp_path):
    result, evaluated_in = run(pytester, layered_dumps(tmp_path, 8), tmp_path / "r")
    # one token: no evaluation process (pytest would wait for it); small pairs: no half-token child
    assert evaluated_in == ["main"] * 2 * LAYERS  # their results would cost as much to send back
    result.assert_outcomes(passed=2 * LAYERS - 1, failed=1)


@pytest.mark.parametrize("fail_after", [None, 5])
def test_a_large_token_is_evaluated_half_in_a_child(pytester, large_dumps, tmp_path, fail_after):
    split, split_in = run(pytester, large_dumps, tmp_path / "split", fail_after=fail_after)
    alone, alone_in = run(pytester, large_dumps, tmp_path / "alone", "--llm-no-fork")
    assert set(alone_in) == {"main"} and len(alone_in) == 2 * LAYERS
    child = split_in.count("child")
    if fail_after:  # the child counts on from the pairs evaluated before it was forked
        assert 0 < child < fail_after
    else:
        assert child == LAYERS - 1  # every other pair after the first (asked for first)
    assert len(split_in) == 2 * LAYERS  # the pairs the child did not deliver were evaluated here
    assert split.ret == alone.ret == 1
    failed = failure_lines(split)
    assert failed == failure_lines(alone)
    assert [line.split(" - ")[0] for line in failed] == ["FAILED llm/token0/root.model.layers.7.mlp/output_0"]
    assert read_report(tmp_path / "split") == read_report(tmp_path / "alone")
    if fail_after:
        split.stdout.fnmatch_lines(["*a child process evaluating half of a token stopped (RuntimeError*"])


@pytest.mark.parametrize("fail_after", [None, 5])
def test_the_evaluation_process_splits_large_tokens_with_a_child_of_its_own(pytester, tmp_path, fail_after):
    dumps = layered_dumps(tmp_path, LARGE, tokens=2)
    split, split_in = run(pytester, dumps, tmp_path / "split", fail_after=fail_after, failing=["grandchild"])
    alone, _ = run(pytester, dumps, tmp_path / "alone", "--llm-no-fork")
    assert "main" not in split_in and len(split_in) == 4 * LAYERS
    half = split_in.count("grandchild")
    if fail_after:  # the half-token children stop (the counts go on); the evaluation process does the rest
        assert 0 < half < fail_after
    else:
        assert half == 2 * (LAYERS - 1)  # every other pair after each token's first
    assert failure_lines(split) == failure_lines(alone) != []
    assert read_report(tmp_path / "split") == read_report(tmp_path / "alone")
    if fail_after:  # the evaluation process's notes came back with its last message
        split.stdout.fnmatch_lines(["*a child process evaluating half of a token stopped (RuntimeError*"])


def test_llmprec_compare_splits_a_large_token_and_no_fork_does_not(large_dumps, tmp_path):
    golden, my = large_dumps
    for name, extra in (("split", []), ("alone", ["--no-fork"])):
        command = [sys.executable, "-m", "pytest_llmprec.cli", "compare", "-gp", str(golden), "-mp", str(my)]
        done = subprocess.run([*command, "-o", str(tmp_path / name), *extra], capture_output=True, text=True)
        assert done.returncode == 1, done.stderr
    assert read_report(tmp_path / "split") == read_report(tmp_path / "alone")
