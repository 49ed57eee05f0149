"""Fixtures of the capture tests: the tiny Llama-shaped model from ``examples/``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import tiny_llm  # noqa: E402


@pytest.fixture
def model() -> torch.nn.Module:
    return tiny_llm.build_model(seed=0)


@pytest.fixture
def prompt() -> torch.Tensor:
    return tiny_llm.sample_prompt(length=6)
