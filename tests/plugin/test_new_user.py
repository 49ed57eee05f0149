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
