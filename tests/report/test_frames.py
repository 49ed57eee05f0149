"""read_report: every report CSV of the project back as a typed DataFrame."""

from __future__ import annotations

import csv
import math

import pandas as pd
import pytest
from report_rows import decoder_rows

from pytest_llmprec.errors import LlmprecError
from pytest_llmprec.report import read_report, register_report_kind
from pytest_llmprec.report.baseline import write_baseline
from pytest_llmprec.report.csv_files import write_csv
from pytest_llmprec.report.rows import COLUMNS, UNMATCHED_COLUMNS

OPCHECK_COLUMNS = (
    "op_id", "op_name", "op_param", "tensor_path", "out_tensor_id", "precision_standard", "precision_result",
    "rel_precision_rate(%)", "max_rel_error", "cosine_similarity", "fail_reason",
)  # fmt: skip
"""msit-spec §4.6 (with -metric cos_sim), typed in from the spec."""
LOGITS_COLUMNS = (
    "file_name", "key", "token_id", "cosine_similarity", "kl_divergence", "l1_norm", "ulp_max_diff", "ulp",
    "passed", "cmp_fail_reason",
)  # fmt: skip
"""msit-spec §4.5."""


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_the_comparison_report_round_trips(tmp_path):
    rows = decoder_rows(tmp_path / "dumps", unreadable="mlp.down_proj")
    rows[0]["pair_key"] = "=HYPERLINK(1)"
    rows[1]["note"] = "'quoted"
    rows[2]["failed_checks"] = "-1.5e3"
    path = write_csv(tmp_path / "llmprec_cmp_report_1.csv", COLUMNS, rows)
    frame = read_report(path)
    assert frame.attrs["report_kind"] == "comparison"
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(rows)
    assert frame["cosine_similarity"].dtype == "float64" and frame["sqnr_db"].dtype == "float64"
    assert frame["data_id"].dtype == "Int64" and frame["golden_nan_count"].dtype == "Int64"
    for number, row in enumerate(rows):
        record = frame.iloc[number]
        for column in ("pair_key", "verdict", "failed_checks", "golden_data_path", "note", "tolerance"):
            assert record[column] == (row.get(column) or ""), column
        for column in ("cosine_similarity", "relative_euclidean_distance", "max_ulp_error", "worst_my_value"):
            assert same(record[column], row.get(column, math.nan)), column
        assert record["token_id"] == row["token_id"] and record["data_id"] == row["data_id"]
        if row["verdict"] == "error":
            assert record["golden_shape"] is None and pd.isna(record["compared_count"])
        else:
            assert record["golden_shape"] == (256,) and record["compared_count"] == 256
            assert record["worst_index"] == tuple(int(i) for i in row["worst_index"].strip("(),").split(","))
    assert frame["pair_key"][0] == "=HYPERLINK(1)" and frame["note"][1] == "'quoted"
    assert frame["failed_checks"][2] == "-1.5e3"


def test_tokens_are_ints_where_they_are_numbers(tmp_path):
    rows = [{"token_id": 0, "pair_key": "a", "verdict": "passed"}, {"token_id": "weights", "pair_key": "b"},
            {"token_id": "", "pair_key": "tests/t.py::x"}]  # fmt: skip
    frame = read_report(write_csv(tmp_path / "r.csv", COLUMNS, rows))
    assert frame["token_id"].tolist() == [0, "weights", None]
    assert frame["golden_shape"].tolist() == [None, None, None]


def test_extra_columns_are_typed_from_their_cells(tmp_path):
    columns = (*COLUMNS, "introduced_relative_euclidean_distance", "note_2", "flag")
    rows = [{"pair_key": "a", "introduced_relative_euclidean_distance": 0.25, "note_2": "propagation",
             "introduced_red": 0.5, "flag": True}, {"pair_key": "b", "flag": False}]  # fmt: skip
    frame = read_report(write_csv(tmp_path / "r.csv", columns, rows))
    assert frame["introduced_relative_euclidean_distance"].dtype == "float64"
    assert frame["introduced_relative_euclidean_distance"][0] == 0.25
    assert frame["flag"].dtype == "boolean" and frame["flag"].tolist() == [True, False]
    assert frame["note_2"].tolist() == ["propagation", ""]
    assert frame["introduced_red"].dtype == "float64" and frame["introduced_red"][0] == 0.5


def test_the_unmatched_report_round_trips(tmp_path):
    rows = [{"side": "golden", "token_id": 3, "node": "root.a", "leaf": "output", "node_type": "Linear",
             "data_path": "/d/3/root.a/output.pth", "reason": "no partner in the my dump"},
            {"side": "my", "token_id": "weights", "node": "root.b", "leaf": "weight", "node_type": "",
             "data_path": "/d/w.pth", "reason": "+1 only"}]  # fmt: skip
    frame = read_report(write_csv(tmp_path / "llmprec_unmatched_1.csv", UNMATCHED_COLUMNS, rows))
    assert frame.attrs["report_kind"] == "unmatched"
    assert frame.to_dict("records") == rows


def test_the_baseline_round_trips(tmp_path):
    rows = [r for r in decoder_rows(tmp_path / "dumps", layers=2, tokens=1)]
    frame = read_report(write_baseline(tmp_path / "baseline.csv", rows))
    assert frame.attrs["report_kind"] == "baseline"
    assert frame["pair_key"].tolist() == [r["pair_key"] for r in rows]
    assert frame["kl_divergence"].tolist() == [r["kl_divergence"] for r in rows]
    assert all(frame[c].dtype == "float64" for c in frame.columns[1:])


def test_the_opcheck_report_is_recognised(tmp_path):
    lines = [
        OPCHECK_COLUMNS,
        ("3_4_0", "LinearOperation", '{"transposeB": true}', "/d/0/3_LinearOperation", "0",
         "99.9%(error<0.0009765625)", "PASS", "100.0000000000000000", "0.0004882812500000", "0.9999999881", ""),
        ("3_5", "SelfAttention", "{}", "/d/0/5_SelfAttention", "", "99.9%(error<0.001)", "addition failed",
         "NaN", "NaN", "NaN", "float8 not supported!"),
    ]  # fmt: skip
    path = tmp_path / "llmprec_opcheck_report_20261122.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_ALL).writerows(lines)
    frame = read_report(path)
    assert frame.attrs["report_kind"] == "opcheck"
    assert frame["op_id"].tolist() == ["3_4_0", "3_5"]
    assert frame["out_tensor_id"].dtype == "Int64" and frame["out_tensor_id"].tolist()[0] == 0
    assert pd.isna(frame["out_tensor_id"][1])
    assert frame["max_rel_error"][0] == 0.00048828125 and math.isnan(frame["max_rel_error"][1])
    assert (
        frame["rel_precision_rate(%)"].dtype == "float64" and frame["op_param"][0] == '{"transposeB": true}'
    )


def test_the_logits_report_is_recognised(tmp_path):
    lines = [
        LOGITS_COLUMNS,
        ("logits_0_0.pth", "0", "0", "0.99999", "1e-06", "0.01", "2", "1", "True", ""),
        ("logits_0_1.pth", "lang/3", "1", "0.9", "0.1", "0.2", "NA", "NA", "False", "ulp over bound"),
        ("only_in_golden_path", "7", "NA", "NA", "NA", "NA", "NA", "NA", "NA", "only_in_golden_path"),
    ]  # fmt: skip
    path = tmp_path / "logits_cmp_res_20261122.csv"
    path.write_text("\n".join(",".join(line) for line in lines) + "\n")
    frame = read_report(path)
    assert frame.attrs["report_kind"] == "logits"
    assert frame["key"].tolist() == ["0", "lang/3", "7"]
    assert frame["token_id"].tolist() == [0, 1, None]
    assert frame["passed"].dtype == "boolean" and frame["passed"].tolist()[:2] == [True, False]
    assert pd.isna(frame["passed"][2])
    assert frame["ulp_max_diff"][0] == 2.0 and math.isnan(frame["ulp_max_diff"][1])


def test_other_features_register_their_reports(tmp_path):
    register_report_kind("test-overflow", ("node", "overflow_kind"), {"node": "text", "count": "int"})
    path = write_csv(tmp_path / "o.csv", ("node", "overflow_kind", "count"), [{"node": "a", "overflow_kind": "inf",
                                                                              "count": 3}])  # fmt: skip
    frame = read_report(path)
    assert frame.attrs["report_kind"] == "test-overflow" and frame["count"].dtype == "Int64"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("a,b\n1,2\n", "not a report of pytest-llmprec"),
        ("pair_key,cosine_similarity,relative_euclidean_distance,max_absolute_error,kl_divergence\na,0.9,0.1\n",
         "line 2: 3 cells where the header has 5"),
        ("pair_key,cosine_similarity,relative_euclidean_distance,max_absolute_error,kl_divergence\na,high,0,0,0\n",
         "column cosine_similarity, line 2: 'high' is not a number"),
        (b"\xff\xfe\x00bad", "not a readable CSV report"),
    ],
)  # fmt: skip
def test_bad_files_give_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LlmprecError, match=message) as error:
        read_report(path)
    assert str(path) in str(error.value)


def test_a_bad_int_or_shape_cell_names_its_column(tmp_path):
    path = write_csv(tmp_path / "r.csv", COLUMNS, [{"pair_key": "a", "verdict": "passed", "node_order": "x"}])
    with pytest.raises(LlmprecError, match="column node_order, line 2: 'x' is not an integer"):
        read_report(path)
    path = write_csv(tmp_path / "r.csv", COLUMNS, [{"pair_key": "a", "verdict": "passed", "my_shape": "2x4"}])
    with pytest.raises(LlmprecError, match="column my_shape, line 2: '2x4' is not a shape"):
        read_report(path)


def test_a_missing_file(tmp_path):
    with pytest.raises(LlmprecError, match="no such report"):
        read_report(tmp_path / "nothing.csv")
