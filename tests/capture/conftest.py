"""Fixtures of the capture tests: the tiny Llama-shaped model from ``examples/``."""

from __future__ import annotations

import pytest
import tiny_llm
import torch


@pytest.fixture
def model() -> torch.nn.Module:
    return tiny_llm.build_model(seed=0)


@pytest.fixture
def prompt() -> torch.Tensor:
    return tiny_llm.sample_prompt(length=6)
