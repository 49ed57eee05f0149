"""CSV cells and files: formula neutralising, number formatting, atomic writes."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest

from pytest_llmprec.report.csv_files import cell, read_csv, write_csv


@pytest.mark.parametrize(
    "text", ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\tTAB", "\rCR", '=HYPERLINK("x")']
)
def test_text_a_spreadsheet_would_run_is_quoted(text):
    assert cell(text) == "'" + text


@pytest.mark.parametrize("text", ["-1.5", "+2", "-inf", "1e-5", "token0/root.model", "a=b", ""])
def test_numbers_and_plain_text_are_kept(text):
    assert cell(text) == text


def test_floats_keep_full_precision_and_nan_is_empty():
    value = 0.1 + 0.2
    assert float(cell(value)) == value
    assert cell(math.nan) == ""
    assert cell(None) == ""
    assert cell(math.inf) == "inf"
    assert cell(-3) == "-3"
    assert (cell(True), cell(np.float64(0.25)), cell(np.float32(math.nan)), cell(np.int64(-7))) == (
        "True",
        "0.25",  # not numpy's repr "np.float64(0.25)"
        "",
        "-7",
    )


def test_write_read_round_trip_keeps_columns_and_neutralises(tmp_path):
    path = write_csv(tmp_path / "sub" / "r.csv", ("a", "b"), [{"a": "=x", "b": 1.5}, {"a": "y"}])
    with open(path, newline="") as handle:
        assert list(csv.reader(handle)) == [["a", "b"], ["'=x", "1.5"], ["y", ""]]
    assert read_csv(path) == [{"a": "'=x", "b": "1.5"}, {"a": "y", "b": ""}]
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_csv(tmp_path / "r.csv", ("a",), [{"a": 1}])

    def broken_rows():
        yield {"a": 2}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_csv(path, ("a",), broken_rows())
    assert read_csv(path) == [{"a": "1"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]
