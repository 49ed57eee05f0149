"""The comparison pipeline without pytest (``Comparison``) and ``llmprec compare``: same rows, same files."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch_dumps import read_report, write_torch_dump

from pytest_llmprec.cli import main
from pytest_llmprec.pipeline import CompareSettings, Comparison, SetupError

ARANGE = torch.arange(1.0, 9.0).reshape(2, 4)


def dump_pair(folder: Path, scale: float = 1.0) -> tuple[Path, Path]:
    def tokens(factor: float) -> dict:
        return {
            t: {
                "root.a": {"input_0": ARANGE + t, "output": ARANGE * 2},
                "root.b": {"output": ARANGE * factor + t},
            }
            for t in (0, 1)
        }

    return write_torch_dump(folder / "g", tokens(1.0)), write_torch_dump(folder / "m", tokens(scale))


def test_evaluations_follow_execution_order_and_judge_each_pair(tmp_path):
    golden, my = dump_pair(tmp_path, scale=1.0625)
    settings = CompareSettings(golden=golden, my=my, report_dir=tmp_path / "r", verdict="accumulated")
    comparison = Comparison(settings)
    done = list(comparison.evaluations())
    assert [d.pair.key for d in done] == [
        "token0/root.a/input_0", "token0/root.a/output", "token0/root.b/output",
        "token1/root.a/input_0", "token1/root.a/output", "token1/root.b/output",
    ]  # fmt: skip
    assert [d.passed for d in done] == [True, True, False, True, True, False]
    assert "relative_euclidean_distance = 0.0625 fails <= 0.001" in done[2].message
    assert done[2].message.endswith("output.pth")  # both files are named
    assert [row["verdict"] for row in comparison.rows] == ["passed"] * 2 + ["failed"] + ["passed"] * 2 + [
        "failed"
    ]
    paths = comparison.write_reports()
    assert [p.name.split("_2")[0] for p in paths] == [
        "llmprec_cmp_report",
        "llmprec_unmatched",
        "llmprec_report",
    ]
    summary = comparison.summary(paths)
    assert (
        summary[0] == "6 pairs compared: 4 passed, 2 failed, 0 unreadable; unmatched tensors: 0 golden, 0 my"
    )
    assert summary[1].startswith("first divergence: token0/root.b/output")
    comparison.close()


def test_setup_errors_name_the_setting(tmp_path):
    golden, _ = dump_pair(tmp_path)
    names = {"my": "--my-path", "tokens": "--tokens"}
    with pytest.raises(SetupError, match=r"^--my-path=.*missing: .*no such file or folder"):
        Comparison(CompareSettings(golden=golden, my=tmp_path / "missing", option_names=names)).match()
    with pytest.raises(SetupError, match=r"^--tokens=3-1: token range '3-1' runs backwards"):
        Comparison(CompareSettings(golden=golden, my=golden, tokens="3-1", option_names=names))


def test_nothing_compared_writes_no_report(tmp_path):
    golden, my = dump_pair(tmp_path)
    comparison = Comparison(
        CompareSettings(golden=golden, my=my, select=("nothing*",), report_dir=tmp_path / "r")
    )
    assert list(comparison.evaluations()) == []
    assert comparison.write_reports() == []
    assert comparison.summary() == []


def test_an_unreadable_file_is_an_error_row_and_the_rest_goes_on(tmp_path):
    golden, my = dump_pair(tmp_path)
    broken = next(my.rglob("root.a/output.pth"))
    broken.write_bytes(b"PK\x03\x04 not a zip")
    comparison = Comparison(CompareSettings(golden=golden, my=my, report_dir=tmp_path / "r"))
    done = list(comparison.evaluations())
    assert [d.row["verdict"] for d in done].count("error") == 1
    error = next(d for d in done if d.row["verdict"] == "error")
    assert error.message.startswith("cannot read pair token0/root.a/output: ")
    assert str(broken) in error.row["cmp_fail_reason"]


def run_cli(*args: str) -> int:
    return main(["compare", *args])


def test_llmprec_compare_exit_codes_and_summary(tmp_path, capsys):
    golden, my = dump_pair(tmp_path)
    assert run_cli("-gp", str(golden), "-mp", str(my), "-o", str(tmp_path / "ok")) == 0
    out = capsys.readouterr()
    assert out.out.startswith("6 pairs compared: 6 passed, 0 failed")
    assert "6/6 pairs, 0 failed" in out.err  # the progress, as plain lines off a terminal
    golden, my = dump_pair(tmp_path / "bad", scale=1.0625)
    assert run_cli("-gp", str(golden), "-mp", str(my), "-o", str(tmp_path / "bad-r"), "-l", "warning") == 1
    out = capsys.readouterr()
    assert out.err == "" and "first divergence: token0/root.b/output" in out.out
    assert run_cli("-gp", str(tmp_path / "nowhere"), "-mp", str(my)) == 2
    assert "llmprec compare: error: --golden-path=" in capsys.readouterr().err


def test_llmprec_compare_writes_the_rows_of_the_pytest_run(tmp_path, pytester):
    golden, my = dump_pair(tmp_path, scale=1.0625)
    run_cli("-gp", str(golden), "-mp", str(my), "-o", str(tmp_path / "cli"), "--min-cos=0.9")
    pytester.runpytest(f"--llm-golden={golden}", f"--llm-my={my}", f"--llm-report-dir={tmp_path / 'pytest'}",
                       "--llm-min-cos=0.9", "-p", "no:cacheprovider")  # fmt: skip
    for prefix in ("llmprec_cmp_report_", "llmprec_unmatched_"):
        assert read_report(tmp_path / "cli", prefix) == read_report(tmp_path / "pytest", prefix)
    _, rows = read_report(tmp_path / "cli")
    assert [row["verdict"] for row in rows].count("failed") == 2 and rows[2]["standard"] == "default"


def test_llmprec_compare_does_not_import_torch(tmp_path):
    golden, my = dump_pair(tmp_path)
    code = (
        "import sys\nfrom pytest_llmprec.cli import main\n"
        f"code = main(['compare', '-gp', {str(golden)!r}, '-mp', {str(my)!r}, '-o', {str(tmp_path / 'r')!r}])\n"
        "assert 'torch' not in sys.modules\nsys.exit(code)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    with open(next((tmp_path / "r").glob("llmprec_cmp_report_*.csv")), newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 6


def test_the_front_ends_offer_the_matchers_levels():
    from pytest_llmprec.matching.base import LEVELS
    from pytest_llmprec.pipeline.settings import MATCH_LEVELS

    assert MATCH_LEVELS == LEVELS


def test_a_slow_indexing_phase_is_announced_while_it_runs(tmp_path, monkeypatch):
    import time

    from pytest_llmprec.pipeline import comparison as comparison_module

    golden, my = dump_pair(tmp_path)
    monkeypatch.setattr(comparison_module, "SLOW_PHASE_S", 0.05)
    comparison = Comparison(CompareSettings(golden=golden, my=my))
    lines: list[str] = []
    comparison.announce = lines.append
    real_match = comparison_module.match_dumps

    def slow_match(*args, **kwargs):
        time.sleep(0.3)  # a big dump: longer than the announcing delay
        return real_match(*args, **kwargs)

    monkeypatch.setattr(comparison_module, "match_dumps", slow_match)
    comparison.match()
    matching = [line for line in lines if "matching" in line]  # (indexing may be announced too)
    assert matching[0] == "llmprec: matching 6 golden and 6 my tensors ..."
    assert matching[1].startswith("llmprec: matching 6 golden and 6 my tensors: done in 0.")
    assert len(matching) == 2
    comparison.close()
