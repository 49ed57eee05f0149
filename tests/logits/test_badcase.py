"""bcanalyze (msit-spec §8.1) on modeltest debug CSVs, Analyzer and Synthesizer (§8.2)."""

from __future__ import annotations

import csv

import pytest

from pytest_llmprec.cli import main
from pytest_llmprec.logits.badcase import Analyzer, BadCaseError, Synthesizer, bad_cases, bcanalyze

HEADER = "key,queries,input_token_ids,output_token_ids,test_result,golden_result,pass\n"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def debug_csvs(tmp_path):
    golden = _write(
        tmp_path / "gpu.csv",
        HEADER
        + '0,q0,"[1, 2]","[3]",A,A,Correct\n'
        + '1,q1,"[4]","[5]",B,B,Correct\n'
        + '2,q2,"[6]","[7]",C,D,Wrong\n'
        + '3,q3,"[8]",,C,C,Correct\n'  # a NaN cell: the row is dropped
        + '4,=HYPERLINK("x"),"[9]","[1]",E,E,True\n',
    )
    test = _write(
        tmp_path / "npu.csv",
        HEADER
        + '0,q0,"[1, 2]","[3]",A,A,correct\n'  # same result, other spelling
        + '1,q1,"[4]","[9]",X,B,Wrong\n'
        + '2,q2,"[6]","[7]",D,D,Correct\n'
        + '3,q3,"[8]","[2]",X,C,Wrong\n'
        + '4,=HYPERLINK("x"),"[9]","[2]",F,E,false\n',
    )
    return golden, test


def test_bad_cases_normalise_drop_nan_rows_and_keep_the_columns(debug_csvs):
    bad = bad_cases(*debug_csvs)
    assert list(bad.columns) == [
        "key", "queries", "input_token_ids_golden", "input_token_ids_test", "output_token_ids_golden",
        "output_token_ids_test", "passed_golden", "passed_test",
    ]  # fmt: skip
    assert bad["key"].tolist() == ["1", "2", "4"]  # 0 agrees; 3 has an empty cell in the golden file
    assert bad["passed_golden"].tolist() == ["true", "false", "true"]
    assert bad["passed_test"].tolist() == ["false", "true", "false"]


def test_bcanalyze_writes_the_file_with_formula_cells_neutralised(debug_csvs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bcanalyze", "-gp", str(debug_csvs[0]), "-mp", str(debug_csvs[1]), "-o", str(out)]) == 0
    (path,) = out.glob("msit_bad_case_result_*.csv")
    rows = _read(path)
    assert rows[0][:2] == ["key", "queries"]
    assert rows[3][1] == '\'=HYPERLINK("x")'
    assert f"bad cases: {path}" in capsys.readouterr().out


def test_merge_on_key_only_without_queries_and_no_token_columns(tmp_path):
    golden = _write(
        tmp_path / "g.csv", "key,pass\nHumanEval/1,Correct\nHumanEval/2,Correct\nHumanEval/3,Wrong\n"
    )
    test = _write(tmp_path / "t.csv", "key,passed\nHumanEval/1,Wrong\nHumanEval/2,Correct\n")
    with pytest.warns(UserWarning, match="1 golden cases have no test row, e.g. HumanEval/3"):
        bad = bad_cases(golden, test)
    assert list(bad.columns) == ["key", "passed_golden", "passed_test"]
    assert bad.values.tolist() == [["HumanEval/1", "true", "false"]]


def test_no_difference_writes_nothing(tmp_path):
    golden = _write(tmp_path / "g.csv", "key,pass\n1,Correct\n")
    with pytest.warns(UserWarning, match="no bad cases"):
        assert bcanalyze(golden, golden, tmp_path / "out") is None
    assert not (tmp_path / "out").exists()


def test_missing_columns_and_unreadable_files_are_errors(tmp_path, capsys):
    no_pass = _write(tmp_path / "g.csv", "key,result\n1,A\n")
    with pytest.raises(BadCaseError, match="no 'passed' column"):
        bad_cases(no_pass, no_pass)
    assert main(["bcanalyze", "-gp", str(tmp_path / "missing.csv"), "-mp", str(no_pass)]) == 2
    assert "cannot read the CSV" in capsys.readouterr().err


def test_synthesizer_rows_and_error_modes(tmp_path):
    synth = Synthesizer(
        queries=["a", "b"], input_token_ids=[[1, 2], [3]], output_token_ids=[[4], [5]], passed="x"
    )
    assert synth.columns["input_token_ids"] == ["[1, 2]", "[3]"]
    assert synth.to_dataframe("trunc").shape == (1, 4)
    padded = synth.to_dataframe("pad")
    assert padded.shape == (2, 4) and padded["passed"].isna().tolist() == [False, True]
    with pytest.raises(ValueError, match="different lengths"):
        synth.to_dataframe("strict")
    assert Synthesizer(queries=5).columns["queries"] == ["5"]
    path = synth.to_csv("pad", tmp_path)
    assert _read(path)[0] == ["queries", "input_token_ids", "output_token_ids", "passed"]
    assert _read(path)[2] == ["b", "[3]", "[5]", ""]


def test_analyzer_on_synthesizers_and_csvs(tmp_path):
    golden = Synthesizer(
        queries=["a", "b"], input_token_ids=["1", "2"], output_token_ids=["3", "4"], passed=["T", "T"]
    )
    test = Synthesizer(
        queries=["a", "b"], input_token_ids=["1", "2"], output_token_ids=["3", "9"], passed=["T", "F"]
    )
    path = Analyzer.analyze(golden, test, tmp_path)
    rows = _read(path)
    assert rows[0] == [
        "queries", "input_token_ids_golden", "input_token_ids_test", "output_token_ids_golden",
        "output_token_ids_test", "passed_golden", "passed_test",
    ]  # fmt: skip
    assert rows[1:] == [["b", "2", "2", "4", "9", "T", "F"]]
    g_csv, t_csv = golden.to_csv("strict", tmp_path / "g"), test.to_csv("strict", tmp_path / "t")
    assert main(["analyze", "-g", str(g_csv), "-t", str(t_csv), "-o", str(tmp_path / "cli")]) == 0
    (written,) = (tmp_path / "cli").glob("*.csv")
    assert _read(written) == rows
