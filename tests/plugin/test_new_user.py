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
