"""``llmprec logitscmp`` and ``llmprec compare`` on logits folders: report columns, rows, bad input."""

from __future__ import annotations

import csv
import math

import torch

from pytest_llmprec.cli import main
from pytest_llmprec.logits.report import COLUMNS, MSIT_COLUMNS


def _report(folder):
    (path,) = folder.glob("logits_cmp_res_*.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def test_msit_columns_come_first_in_order():
    assert COLUMNS[: len(MSIT_COLUMNS)] == (
        "file_name", "key", "token_id", "cosine_similarity", "kl_divergence", "l1_norm", "ulp_max_diff",
        "ulp", "passed", "cmp_fail_reason",
    )  # fmt: skip


def test_equal_folders_pass(tmp_path, logits_dump, peaked_logits, capsys):
    cases = {3: [peaked_logits(1), peaked_logits(2)], 12: [peaked_logits(3)]}
    golden, my = logits_dump(tmp_path / "g", cases), logits_dump(tmp_path / "m", cases)
    assert main(["logitscmp", "-gp", str(golden), "-mp", str(my), "-o", str(tmp_path / "out")]) == 0
    header, rows = _report(tmp_path / "out")
    assert header == list(COLUMNS)
    assert [(r["key"], r["token_id"]) for r in rows] == [("3", "0"), ("3", "1"), ("12", "0")]
    assert all(r["passed"] == "True" and r["cmp_fail_reason"] == "" for r in rows)
    assert all(r["case_verdict"] == "numerically equal" for r in rows)
    assert "2 cases, 3 tokens: 2 numerically equal, 0 diverged" in capsys.readouterr().out


def test_bad_input_becomes_rows_with_reasons(tmp_path, logits_dump, peaked_logits):
    nan = peaked_logits(4)
    nan[0] = math.nan
    golden = logits_dump(
        tmp_path / "g", {1: [peaked_logits(1), peaked_logits(2), peaked_logits(3)], 2: [nan]}
    )
    my = logits_dump(
        tmp_path / "m", {1: [peaked_logits(1), peaked_logits(2, vocab=1999)], 2: [peaked_logits(4)]}
    )
    (my / "logits_dev.jsonl_9_0.pth").write_bytes(b"PK\x03\x04 truncated")  # corrupt, my side only
    (golden / "=HYPERLINK(1).pth").write_bytes(b"")  # wrong name
    assert main(["logitscmp", "-gp", str(golden), "-mp", str(my), "-o", str(tmp_path / "out")]) == 1
    _, rows = _report(tmp_path / "out")
    by_name = {r["file_name"]: r for r in rows}
    vocab = by_name["logits_dev.jsonl_1_1.pth"]
    assert vocab["passed"] == "NA" and vocab["cmp_fail_reason"].startswith("data shape doesn't match.")
    assert by_name["logits_dev.jsonl_1_2.pth"]["cmp_fail_reason"] == "only_in_golden_path"
    assert by_name["logits_dev.jsonl_2_0.pth"]["cmp_fail_reason"] == "golden_data includes NAN or inf."
    assert by_name["logits_dev.jsonl_9_0.pth"]["cmp_fail_reason"] == "only_in_my_path"
    wrong = by_name["'=HYPERLINK(1).pth"]  # the formula cell is neutralised
    assert wrong["cmp_fail_reason"] == "parse_error:invalid logits file name"
    assert rows[-1] is wrong  # parse errors last
    assert by_name["logits_dev.jsonl_1_0.pth"]["case_verdict"] == "diverged at token 1 (invalid)"


def test_a_corrupt_file_on_both_sides_is_an_invalid_row(tmp_path, logits_dump, peaked_logits):
    golden = logits_dump(tmp_path / "g", {1: [peaked_logits(1)]})
    my = logits_dump(tmp_path / "m", {1: [peaked_logits(1)]})
    (my / "logits_dev.jsonl_1_0.pth").write_bytes(b"PK\x03\x04 truncated")
    assert main(["logitscmp", "-gp", str(golden), "-mp", str(my), "-o", str(tmp_path / "out")]) == 1
    _, (row,) = _report(tmp_path / "out")
    assert row["token_verdict"] == "invalid" and "logits_dev.jsonl_1_0.pth" in row["cmp_fail_reason"]


def test_thresholds_and_dtype_options(tmp_path, logits_dump, peaked_logits):
    golden = peaked_logits(1)
    my = golden + 0.1 * torch.randn(golden.shape, generator=torch.Generator().manual_seed(5))
    g, m = logits_dump(tmp_path / "g", {0: [golden]}), logits_dump(tmp_path / "m", {0: [my]})
    args = ["logitscmp", "-gp", str(g), "-mp", str(m)]
    assert main([*args, "-o", str(tmp_path / "a")]) == 1  # cosine below 0.999, max moved
    assert main([*args, "-cs", "0.99", "-kl", "0.05", "-l1", "0.1", "-o", str(tmp_path / "b")]) == 0
    _, (row,) = _report(tmp_path / "b")
    assert row["dtype"] == "fp16" and float(row["ulp"]) == 2**2 * 2**-10  # msit's default -d fp16


def test_llmprec_compare_writes_the_same_report(tmp_path, logits_dump, peaked_logits):
    changed = peaked_logits(2)
    changed[8] = 7.0  # the runner-up now wins by 1.0: a real flip
    golden = logits_dump(tmp_path / "g", {5: [peaked_logits(1), peaked_logits(2)]})
    my = logits_dump(tmp_path / "m", {5: [peaked_logits(1), changed]})
    assert (
        main(["compare", "-gp", str(golden), "-mp", str(my), "-o", str(tmp_path / "c"), "-l", "error"]) == 1
    )
    assert (
        main(["logitscmp", "-gp", str(golden), "-mp", str(my), "-d", "fp32", "-o", str(tmp_path / "l")]) == 1
    )
    a, b = _report(tmp_path / "c")[1], _report(tmp_path / "l")[1]
    assert a == b
    assert a[1]["token_verdict"] == "flip" and a[1]["case_verdict"] == "diverged at token 1 (flip)"
    assert (a[1]["top1_golden"], a[1]["top1_my"]) == ("7", "8")


def test_logitscmp_refuses_tensor_dumps(tmp_path, torch_dump, capsys):
    tree = {0: {"root.layer": {"output": torch.ones(3)}, "root": {"output": torch.ones(3)}}}
    torch_dump(tmp_path / "g", tree)
    torch_dump(tmp_path / "m", tree)
    assert main(["logitscmp", "-gp", str(tmp_path / "g"), "-mp", str(tmp_path / "m")]) == 2
    assert "not logits dumps" in capsys.readouterr().err
