"""``llmprec opcheck``: msit's options on the opcheck engine."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch
from atb_layout import token_folder, write_op

from pytest_llmprec.cli import main


def x(n, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)).to(torch.float16)


@pytest.fixture
def dump(tmp_path):
    token = token_folder(tmp_path / "dump")
    a, b = x(32), x(32, 1)
    write_op(token / "0_TestScaleOperation", [a], [a * 2], {"factor": 2})
    write_op(token / "1_TestScaleOperation", [b], [b * 2.1], {"factor": 2})
    return token


def rows(folder):
    (path,) = folder.glob("llmprec_opcheck_report_*.csv")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_summary_report_and_exit_status(dump, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert main(["opcheck", "-i", str(dump), "-o", str(out), "-metric", "cos_sim"]) == 1
    printed = capsys.readouterr().out
    assert "2 operator cases checked: 1 passed, 1 failed" in printed
    assert "FAILED 1_TestScaleOperation (TestScaleOperation): output 0:" in printed
    columns, found = rows(out)
    assert (
        "cosine_similarity" in columns
        and "abs_precision_rate(%)" not in columns
        and "kl_divergence" not in columns
    )
    assert [row["precision_result"] for row in found] == ["PASS", "FAILED"]


def test_filters_and_the_msit_standard(dump, tmp_path, capsys):
    assert main(["opcheck", "-i", str(dump), "-o", str(tmp_path), "-ids", "0"]) == 0
    assert "1 operator cases checked: 1 passed" in capsys.readouterr().out
    assert main(["opcheck", "-i", str(dump), "-o", str(tmp_path), "-opname", "linear"]) == 2
    assert "no operator with a reference" in capsys.readouterr().err


def test_usage_errors(dump, tmp_path, capsys):
    assert main(["opcheck", "-i", str(dump), "-o", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["opcheck", "-i", str(tmp_path / "nothing"), "-o", str(tmp_path)]) == 2
    assert "-i" in capsys.readouterr().err
    assert main(["opcheck", "-i", str(dump), "-o", str(tmp_path), "-j", "9"]) == 2


def test_rerun_needs_torch_npu_and_says_so(dump, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_npu", None)
    assert main(["opcheck", "-i", str(dump), "-o", str(tmp_path), "-rerun"]) == 2
    assert "-rerun needs torch_npu" in capsys.readouterr().err


def test_jobs_run_in_worker_processes(tmp_path):
    """The only test of -j: it starts spawned workers (each imports torch), a few seconds."""
    token = token_folder(tmp_path / "dump")
    for i in range(3):
        write_op(token / f"{i}_SiLU", [x(16, i)], [torch.nn.functional.silu(x(16, i))], {})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_llmprec.cli",
            "opcheck",
            "-i",
            str(token),
            "-o",
            str(tmp_path),
            "-j",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "3 operator cases checked: 3 passed" in done.stdout
    assert len(rows(tmp_path)[1]) == 3
