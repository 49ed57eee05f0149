"""CSV cells: formula neutralising is undone exactly by restore_cell."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.report.csv_files import cell, read_csv, restore_cell, write_csv


@given(st.text())
def test_restore_cell_gives_back_any_text(text):
    assert restore_cell(cell(text)) == text


def test_formula_cells_are_neutralised_and_numbers_are_not():
    assert cell("=1+1") == "'=1+1" and cell("@SUM(A1)") == "'@SUM(A1)" and cell("-1.5") == "-1.5"
    assert cell("'already") == "''already"


def test_a_written_file_reads_back(tmp_path):
    texts = ["=cmd|'/c calc'!A0", "'q", "+x", "plain", "-2"]
    path = write_csv(tmp_path / "c.csv", ("text",), [{"text": t} for t in texts])
    assert [restore_cell(row["text"]) for row in read_csv(path)] == texts
