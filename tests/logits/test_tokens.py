"""Near-tie-aware token verdicts and case classes, on crafted logits."""

from __future__ import annotations

import torch

from pytest_llmprec.logits.metrics import LogitsThresholds, compare_logits
from pytest_llmprec.logits.tokens import (
    DIVERGED,
    EQUAL,
    FLIP,
    NEAR_TIE,
    NEAR_TIE_ONLY,
    NUMERICS,
    ONLY_MY,
    SAME,
    classify,
    outcome,
    tie_tolerance,
    token_verdict,
)


def _golden(top: float, runner_up: float, vocab: int = 32000) -> torch.Tensor:
    logits = torch.linspace(-6.0, 2.0, vocab)[
        torch.randperm(vocab, generator=torch.Generator().manual_seed(0))
    ]
    logits[100], logits[200] = top, runner_up  # token 100 wins, token 200 is second
    return logits


def test_tie_tolerance_is_ulps_of_the_dtype_at_the_logits():
    assert tie_tolerance(10.0, "bf16", 4) == 4 * 2**3 * 2**-7  # spacing of bf16 in [8, 16)
    assert tie_tolerance(0.2, "fp16", 4) == 4 * 2**-10  # below 1: the spacing at 1
    assert tie_tolerance(3.0, "fp32", 1) == 2 * 2**-23


def test_a_flip_between_near_equal_logits_is_a_near_tie_and_passes():
    golden = _golden(9.0, 9.0 - 0.03)  # margin 0.03 < 4 bf16 ulps at 9 (0.25)
    my = golden.clone()
    my[100], my[200] = 9.0 - 0.03, 9.0  # the two swap: a top-1 change
    metrics = compare_logits(golden, my, LogitsThresholds(dtype="bf16"))
    assert (metrics.top1_golden, metrics.top1_my) == (100, 200)
    assert abs(metrics.flip_margin - 0.03) < 1e-6
    assert metrics.passed == "True"
    assert token_verdict(metrics) == NEAR_TIE
    assert outcome(token_verdict(metrics), classify([]))[0] == "passed"


def test_a_real_margin_change_is_a_flip_and_fails_even_when_msit_passes():
    golden = _golden(9.0, 8.0)  # margin 1.0 > 0.25
    my = golden.clone()
    my[200] = 9.5  # one logit moved by 1.5: msit's aggregate metrics barely notice
    metrics = compare_logits(golden, my, LogitsThresholds(dtype="bf16", kl_divergence=1.0))
    assert metrics.passed == "True"
    assert metrics.flip_margin == 1.0
    assert token_verdict(metrics) == FLIP
    assert outcome(FLIP, classify([]))[0] == "failed"


def test_same_top1_with_bad_numerics_is_numerics_differ():
    golden = _golden(9.0, 5.0)
    my = golden * 1.5  # cosine 1 but l1 +0.5 and the max moves by 4.5
    metrics = compare_logits(golden, my)
    assert metrics.top1_match and metrics.passed == "False"
    assert token_verdict(metrics) == NUMERICS


def test_near_tie_with_bad_numerics_is_numerics_differ():
    golden = _golden(9.0, 9.0 - 0.03)
    my = golden * 1.2
    my[100], my[200] = my[200], my[100].clone()
    metrics = compare_logits(golden, my, LogitsThresholds(dtype="bf16"))
    assert not metrics.top1_match and metrics.passed == "False"
    assert token_verdict(metrics) == NUMERICS


def test_case_classes():
    assert classify([(0, SAME), (1, SAME)]).kind == EQUAL
    diverged = classify([(0, SAME), (1, FLIP), (2, NEAR_TIE)])
    assert (diverged.kind, diverged.token) == (DIVERGED, 1)
    assert diverged.describe() == "diverged at token 1 (flip)"
    near = classify([(0, SAME), (1, NEAR_TIE), (2, FLIP)])
    assert (near.kind, near.token) == (NEAR_TIE_ONLY, 1)
    assert classify([(0, ONLY_MY)]).describe() == "diverged at token 0 (only_in_my_path)"


def test_failures_after_a_near_tie_flip_are_skipped_not_failed():
    earlier = classify([(0, SAME), (1, NEAR_TIE)])
    assert outcome(FLIP, earlier) == (
        "skipped",
        "follows the near-tie flip at token 1: the runs continued from different tokens",
    )
    assert outcome(SAME, earlier) == ("passed", None)
    assert outcome(FLIP, classify([(0, FLIP)])) == ("failed", None)
