"""pytest over logits dumps: one item per (case, token), the case classes in the summary, the report."""

from __future__ import annotations

import csv

import pytest
import torch

pytest_plugins = ["pytester"]


@pytest.fixture
def near_tie_case(tmp_path, logits_dump, peaked_logits):
    """Case 1: equal. Case 2: real flip at token 1. Case 3: near-tie flip at token 1, then tokens
    from another context (which would fail). Case 4: token 2 missing on my side."""
    tie = peaked_logits(30, margin=1e-6)  # tokens 7 and 8 within a few fp32 ulps
    tie_my = tie.clone()
    tie_my[7], tie_my[8] = tie[8], tie[7]
    flip = peaked_logits(21)
    flip[8] = 7.0
    elsewhere = peaked_logits(99)
    elsewhere[7] = 6.5  # another context: msit's ULP-of-max fallback would pass an equal max
    golden = {
        1: [peaked_logits(10), peaked_logits(11)],
        2: [peaked_logits(20), peaked_logits(21)],
        3: [peaked_logits(30), tie, peaked_logits(32)],
        4: [peaked_logits(40), peaked_logits(41), peaked_logits(42)],
    }
    my = {
        1: [peaked_logits(10), peaked_logits(11)],
        2: [peaked_logits(20), flip],
        3: [peaked_logits(30), tie_my, elsewhere],
        4: [peaked_logits(40), peaked_logits(41), None],
    }
    return logits_dump(tmp_path / "golden", golden), logits_dump(tmp_path / "my", my)


def test_items_outcomes_summary_and_report(pytester, monkeypatch, near_tie_case):
    monkeypatch.setenv("CI", "1")
    golden, my = near_tie_case
    result = pytester.runpytest(
        f"--llm-golden={golden}", f"--llm-my={my}", "-v", "-rN", "-p", "no:cacheprovider"
    )
    assert result.ret == 1
    result.assert_outcomes(passed=7, failed=2, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "logits/1/token0 PASSED*",
            "logits/2/token1 FAILED*",
            "logits/3/token1 PASSED*",
            "logits/3/token2 SKIPPED*",
            "logits/4/token2 FAILED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*logits/2/token1: flip",
            "*top-1 token: golden 7, my 8*",
            "*golden margin between them 2 vs tolerance*a real margin*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "logits: 4 cases, 10 tokens: 1 numerically equal, 2 diverged, 1 near-tie flip only",
            "  case 2: diverged at token 1 (flip): golden token 7, my token 8*",
            "  case 3: near-tie flip only (at token 1): golden token 7, my token 8*",
            "  case 4: diverged at token 2 (only_in_golden_path)*",
            "report: *logits_cmp_res_*.csv",
        ]
    )
    (report,) = (pytester.path / "llmprec-report").glob("logits_cmp_res_*.csv")
    with open(report, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10
    skipped = next(r for r in rows if (r["key"], r["token_id"]) == ("3", "2"))
    assert skipped["outcome"] == "skipped" and skipped["passed"] == "False"
    assert skipped["case_verdict"] == "near-tie flip only (at token 1)"


def test_thresholds_options_reach_the_items(pytester, tmp_path, logits_dump, peaked_logits):
    golden = peaked_logits(1)
    my = golden + 0.1 * torch.randn(golden.shape, generator=torch.Generator().manual_seed(5))
    g, m = logits_dump(tmp_path / "g", {0: [golden]}), logits_dump(tmp_path / "m", {0: [my]})
    strict = pytester.runpytest(f"--llm-golden={g}", f"--llm-my={m}", "-p", "no:cacheprovider")
    strict.assert_outcomes(failed=1)
    loose = pytester.runpytest(
        f"--llm-golden={g}", f"--llm-my={m}", "--llm-logits-cs=0.99", "--llm-logits-kl=0.05",
        "--llm-logits-l1=0.1", "-p", "no:cacheprovider",
    )  # fmt: skip
    loose.assert_outcomes(passed=1)


def test_xdist_workers_send_the_rows(pytester, monkeypatch, near_tie_case):
    pytest.importorskip("xdist")
    golden, my = near_tie_case
    result = pytester.runpytest(
        f"--llm-golden={golden}", f"--llm-my={my}", "-n", "2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=7, failed=2, skipped=1)
    result.stdout.fnmatch_lines(
        ["logits: 4 cases, 10 tokens: 1 numerically equal, 2 diverged, 1 near-tie flip only"]
    )
