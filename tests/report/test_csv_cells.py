"""CSV cells: formula neutralising is undone exactly by restore_cell."""

from __future__ import annotations

import csv
import io

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


cell_values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.text(alphabet=st.sampled_from(["a", " ", ",", '"', "\n", "\r", "=", "-", "1", "'", "é"])),
)


@given(st.lists(st.lists(cell_values, min_size=3, max_size=3), max_size=8))
def test_written_rows_are_what_the_csv_module_writes(tmp_path_factory, rows):
    columns = ("a", "b", "c")
    path = write_csv(
        tmp_path_factory.mktemp("csv") / "r.csv", columns, [dict(zip(columns, r, strict=True)) for r in rows]
    )
    expected = io.StringIO(newline="")
    writer = csv.writer(expected)
    writer.writerow(columns)
    writer.writerows([cell(value) for value in row] for row in rows)
    assert path.read_bytes() == expected.getvalue().encode("utf-8")
