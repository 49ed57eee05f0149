"""msit logitscmp metrics (msit-spec §3.6) against float64 references, the UT pins, validity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmprec.logits.metrics import (
    MAX_ZERO,
    LogitsThresholds,
    compare_logits,
    l1_ratio,
    msit_passed,
    ulp_of,
)

PINS = LogitsThresholds(cosine_similarity=0.9, kl_divergence=0.1, l1_norm=0.1)


def test_msit_ut_pins_of_the_pass_rule():
    assert msit_passed(0.95, 0.05, 0.08, None, None, PINS) == "True"
    assert msit_passed(0.8, 0.05, 0.08, 0.5, 1.0, PINS) == "True"  # the ULP fallback
    assert msit_passed(0.8, 0.05, 0.08, 1.5, 1.0, PINS) == "False"


@pytest.mark.parametrize(
    "cosine, kl, l1",
    [(0.9, 0.05, 0.08), (0.95, 0.1, 0.08), (0.95, 0.05, 0.1)],  # each at its threshold: strict inequalities
)
def test_a_metric_at_its_threshold_fails_the_first_rule(cosine, kl, l1):
    assert msit_passed(cosine, kl, l1, 2.0, 1.0, PINS) == "False"
    assert msit_passed(cosine, kl, l1, 1.0, 1.0, PINS) == "True"  # ulp_max_diff <= ulp is not strict


def test_l1_ratio_cases():
    assert l1_ratio(0.0, 0.0) == 0.0
    assert l1_ratio(0.0, 3.0) == 1.0
    assert l1_ratio(4.0, 3.0) == pytest.approx(-0.25)  # signed: my smaller is negative
    assert l1_ratio(4.0, 5.0) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "value, dtype, expected",
    [
        (1.0, "fp16", 2**-10),
        (3.9, "bf16", 2**-6),
        (0.3, "fp32", 2**-25),
        (-5.0, "fp16", 2**-8),
        (0.0, "fp16", None),
    ],
)
def test_ulp_of_the_max(value, dtype, expected):
    assert ulp_of(value, dtype) == expected


def test_zero_max_records_the_reason_and_uses_the_thresholds_only():
    golden = torch.tensor([[-1.0, 0.0, -2.0]])
    result = compare_logits(golden, golden.clone(), LogitsThresholds(dtype="fp16"))
    assert result.ulp is None and result.ulp_max_diff is None
    assert result.fail_reason == MAX_ZERO
    assert result.passed == "True"  # cosine 1, kl 0, l1 0 pass the thresholds


def _reference(g: np.ndarray, m: np.ndarray) -> tuple[float, float, float]:
    g, m = g.astype(np.float64), m.astype(np.float64)
    cosine = float(g @ m / (max(np.linalg.norm(g), 1e-8) * max(np.linalg.norm(m), 1e-8)))
    log_p = g - g.max() - math.log(np.exp(g - g.max()).sum())
    log_q = m - m.max() - math.log(np.exp(m - m.max()).sum())
    kl = max(float(np.sum(np.exp(log_p) * (log_p - log_q))), 0.0)
    l1 = float(np.abs(m).sum() / np.abs(g).sum() - 1)
    return cosine, kl, l1


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    vocab=st.integers(2, 3000),
    scale=st.floats(0.1, 30.0),
    noise=st.floats(0.0, 0.5),
)
def test_metrics_match_a_float64_reference(seed, vocab, scale, noise):
    rng = np.random.default_rng(seed)
    g = (rng.standard_normal(vocab) * scale).astype(np.float32)
    m = (g + rng.standard_normal(vocab) * noise).astype(np.float32)
    result = compare_logits(torch.from_numpy(g)[None], torch.from_numpy(m)[None])
    cosine, kl, l1 = _reference(g, m)
    assert result.cosine_similarity == pytest.approx(round(cosine, 10), abs=1e-9)
    assert result.kl_divergence == pytest.approx(kl, rel=1e-4, abs=1e-7)
    assert result.l1_norm == pytest.approx(l1, rel=1e-9, abs=1e-12)
    assert result.ulp_max_diff == abs(float(g.max()) - float(m.max()))
    assert result.top1_golden == int(np.argmax(g)) and result.top1_my == int(np.argmax(m))
    top2 = np.sort(g)[-2:]
    assert result.golden_margin == pytest.approx(float(top2[1] - top2[0]))
    assert result.flip_margin == float(g[np.argmax(g)]) - float(g[np.argmax(m)])
    k = min(5, vocab)
    overlap = len(set(np.argsort(-g, kind="stable")[:k]) & set(np.argsort(-m, kind="stable")[:k])) / k
    if len(set(g.tolist())) == vocab and len(set(m.tolist())) == vocab:  # no ties at the top-k border
        assert result.topk_overlap == overlap


def test_kl_is_summed_over_rows_of_the_last_dim():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((3, 50)).astype(np.float32)
    m = (g + 0.1 * rng.standard_normal((3, 50))).astype(np.float32)
    result = compare_logits(torch.from_numpy(g), torch.from_numpy(m))
    expected = sum(_reference(g[row], m[row])[1] for row in range(3))
    assert result.kl_divergence == pytest.approx(expected, rel=1e-4)


def test_shape_mismatch_gives_msit_reason_with_shapes():
    result = compare_logits(torch.zeros(1, 10), torch.zeros(1, 12))
    assert not result.compared and result.passed == "NA"
    assert result.fail_reason.startswith("data shape doesn't match.")
    assert "golden [10], my [12]" in result.fail_reason


def test_nonfinite_reasons_are_all_listed():
    golden, my = torch.zeros(8), torch.zeros(8)
    golden[2], my[5] = math.nan, math.inf
    result = compare_logits(golden, my)
    assert result.fail_reason == "golden_data includes NAN or inf. my_data includes NAN or inf."
    assert result.passed == "NA" and result.cosine_similarity is None


def test_dtype_option_and_default_dtype():
    g = torch.randn(100)
    assert compare_logits(g, g.bfloat16()).dtype == "bf16"  # coarser of the two files
    assert compare_logits(g, g.clone()).dtype == "fp32"
    assert compare_logits(g, g.clone(), LogitsThresholds(dtype="fp16")).dtype == "fp16"
    with pytest.raises(ValueError, match="dtype must be one of"):
        LogitsThresholds(dtype="int8")


@pytest.mark.parametrize("kernel", [True, False], ids=["c-kernel", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_both_engines_match_the_reference(monkeypatch, kernel, dtype):
    from pytest_llmprec.compare import native

    if not kernel:
        monkeypatch.setattr(native, "available", lambda: False)
    rng = np.random.default_rng(11)
    g = torch.from_numpy(rng.standard_normal((2, 4000)).astype(np.float32) * 4).to(dtype)
    m = (g.float() + torch.from_numpy(rng.standard_normal((2, 4000)).astype(np.float32)) * 0.05).to(dtype)
    result = compare_logits(g, m)
    g64, m64 = g.double().numpy(), m.double().numpy()
    cosine = float((g64 * m64).sum() / (np.linalg.norm(g64) * np.linalg.norm(m64)))
    kl = sum(_reference(g64[row], m64[row])[1] for row in range(2))
    assert result.cosine_similarity == pytest.approx(cosine, abs=1e-9)
    assert result.kl_divergence == pytest.approx(kl, rel=1e-9)
    assert result.ulp_max_diff == abs(g64.max() - m64.max())


@pytest.mark.parametrize("kernel", [True, False], ids=["c-kernel", "torch"])
def test_nonfinite_reasons_on_both_engines(monkeypatch, kernel):
    from pytest_llmprec.compare import native

    if not kernel:
        monkeypatch.setattr(native, "available", lambda: False)
    golden, my = torch.zeros(1, 8), torch.zeros(1, 8)
    golden[0, 2], my[0, 5] = -math.inf, math.nan
    assert (
        compare_logits(golden, my).fail_reason
        == "golden_data includes NAN or inf. my_data includes NAN or inf."
    )
    assert compare_logits(golden.abs().nan_to_num(posinf=1.0), my.nan_to_num(0.0)).compared


def test_a_prefill_against_one_position_compares_its_last_row():
    prefill = torch.randn(1, 5, 64)
    result = compare_logits(prefill, prefill[:, -1, :].clone())
    assert result.cosine_similarity == 1.0 and result.vocab == 64
    assert result.top1_golden == int(prefill[0, -1].argmax())


@pytest.mark.parametrize("use_numpy", [True, False], ids=["numpy", "torch"])
@pytest.mark.parametrize("vocab", [152064, 152061, 100])
def test_top_k_is_exact_with_blocks_and_a_tail(use_numpy, vocab):
    from pytest_llmprec.logits.metrics import top_k

    row = torch.randn(vocab, generator=torch.Generator().manual_seed(8))
    row[vocab - 1], row[5] = 10.0, 10.0  # a tie at the top: the first index wins, the tail is searched
    values, indices = top_k(row, 5, use_numpy=use_numpy)
    expected = torch.topk(row, 5)
    assert values == pytest.approx(expected.values.double().tolist())
    assert indices[:2] == [5, vocab - 1] and set(indices) == set(expected.indices.tolist())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_both_engines_agree_on_tokens_and_margins(monkeypatch, dtype):
    from pytest_llmprec.compare import native

    rng = np.random.default_rng(5)
    g = torch.from_numpy(rng.integers(0, 40, (3, 3000)) / 4.0).to(dtype)  # many ties at the top
    m = (g.double() + torch.from_numpy(rng.integers(-1, 2, (3, 3000)) / 4.0)).to(dtype)
    kernel = compare_logits(g, m, LogitsThresholds(top_k=7))
    monkeypatch.setattr(native, "available", lambda: False)
    torch_engine = compare_logits(g, m, LogitsThresholds(top_k=7))
    assert kernel.top1_golden == int(g[-1].double().argmax()) and kernel.top1_my == int(
        m[-1].double().argmax()
    )
    for field in ("top1_golden", "top1_my", "topk_overlap", "golden_margin", "flip_margin", "tie_tolerance"):
        assert getattr(kernel, field) == getattr(torch_engine, field), field
    assert kernel.l1_norm == pytest.approx(torch_engine.l1_norm, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("use_numpy", [True, False], ids=["numpy", "torch"])
@pytest.mark.parametrize("vocab", [152064, 300])
def test_top_k_breaks_ties_beyond_k_by_the_first_indices(use_numpy, vocab):
    from pytest_llmprec.logits.metrics import top_k

    row = torch.zeros(vocab)
    tied = sorted(torch.randperm(vocab, generator=torch.Generator().manual_seed(2))[:40].tolist())
    row[tied] = 3.0
    row[tied[-1]] = 4.0  # the largest is the last of them
    values, indices = top_k(row, 5, use_numpy=use_numpy)
    assert values == [4.0, 3.0, 3.0, 3.0, 3.0]
    assert indices == [tied[-1], *tied[:4]]
