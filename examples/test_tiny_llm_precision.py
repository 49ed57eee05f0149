"""Example precision tests: the tiny model in bfloat16 against its float32 golden."""

import pytest
import torch
from tiny_llm import build_model, generate, sample_prompt

from pytest_llmprec import assert_kl_div, assert_precision


@pytest.fixture(scope="module")
def prompt():
    return sample_prompt(length=16)


@pytest.fixture(scope="module")
def golden_logits(prompt):
    with torch.no_grad():
        return build_model(seed=0)(prompt)


def test_bf16_logits_meet_the_bf16_default_standard(prompt, golden_logits):
    with torch.no_grad():
        mine = build_model(seed=0, dtype=torch.bfloat16)(prompt)
    assert_precision(golden_logits, mine)  # default standard for bfloat16: cosine and RED


def test_bf16_next_token_distributions_stay_close(prompt, golden_logits):
    with torch.no_grad():
        mine = build_model(seed=0, dtype=torch.bfloat16)(prompt)
    assert_kl_div(golden_logits.float(), mine.float(), max_kl=1e-3, dim=-1)


@pytest.mark.llm_precision(min_cos=0.9999)
def test_greedy_decoding_agrees(prompt):
    golden = generate(build_model(seed=0), prompt, steps=4)
    mine = generate(build_model(seed=0, dtype=torch.bfloat16), prompt, steps=4)
    assert torch.equal(golden, mine)
