"""assert_logits_close and assert_same_tokens: near ties pass, real changes fail with the position."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_llmprec import LogitsError, assert_logits_close, assert_same_tokens


def _sequence(positions: int = 4, vocab: int = 3000) -> torch.Tensor:
    logits = torch.randn(positions, vocab, generator=torch.Generator().manual_seed(2))
    logits[:, 10] = 8.0
    logits[:, 11] = 8.0 - 0.01  # the runner-up, 0.01 behind
    return logits


def test_identical_logits_pass_and_return_each_position():
    golden = _sequence()
    found = assert_logits_close(golden, golden.clone())
    assert len(found) == 4 and all(m.top1_golden == 10 for m in found)


def test_a_near_tie_flip_passes_in_bf16():
    golden = _sequence()
    my = golden.clone()
    my[2, 10], my[2, 11] = golden[2, 11], golden[2, 10]  # 0.01 < 4 bf16 ulps at 8 (0.25)
    assert_logits_close(golden, my, dtype="bf16")
    with pytest.raises(LogitsError, match="position 2 of 4: flip"):  # in fp32 0.01 is far above 4 ulps
        assert_logits_close(golden, my, dtype="fp32")


def test_a_real_change_fails_with_tokens_and_margin():
    golden = _sequence()
    my = golden.clone()
    my[1, 500] = 9.0
    with pytest.raises(LogitsError) as failure:
        assert_logits_close(golden, my, dtype="bf16", kl_divergence=1.0, l1_norm=1.0)
    text = str(failure.value)
    assert failure.value.position == 1
    assert "top-1 token: golden 10, my 500" in text
    assert "golden margin between them" in text and "a real margin" in text


def test_nan_and_shapes():
    golden = _sequence()
    my = golden.clone()
    my[3, 0] = math.nan
    with pytest.raises(LogitsError, match=r"position 3 of 4: my_data includes NAN or inf\."):
        assert_logits_close(golden, my)
    with pytest.raises(LogitsError, match=r"golden \[4, 3000\], my \[4, 2999\]"):
        assert_logits_close(golden, golden[:, :-1])


def test_same_tokens_from_ids_and_logits():
    assert_same_tokens([1, 2, 3], torch.tensor([[1, 2, 3]]))
    with pytest.raises(LogitsError, match="position 1: golden 2, my 5 \\(no golden logits"):
        assert_same_tokens([1, 2, 3], [1, 5, 3])
    with pytest.raises(LogitsError, match="differ in length: golden 3, my 2"):
        assert_same_tokens([1, 2, 3], [1, 2])


def test_same_tokens_near_tie_stops_and_real_margin_fails():
    golden = _sequence()
    ids = golden.argmax(-1).tolist()
    near = [*ids[:2], 11, 99]  # position 2 flips to the runner-up; position 3 follows another context
    assert_same_tokens(ids, near, golden_logits=golden, dtype="bf16")
    far = [*ids[:2], 0, ids[3]]
    with pytest.raises(LogitsError) as failure:
        assert_same_tokens(ids, far, golden_logits=golden, dtype="bf16")
    assert failure.value.position == 2
    assert "tokens differ at position 2: golden 10, my 0" in str(failure.value)
    assert "a real divergence" in str(failure.value)
    assert_same_tokens(golden, golden.clone())
