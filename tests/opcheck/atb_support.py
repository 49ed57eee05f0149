"""Shared pieces of the ATB reference tests: seeded tensors, dtypes, the float64 comparison."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

from pytest_llmprec.opcheck import OpcheckError, reference

FLOATS = st.sampled_from([torch.float32, torch.float16, torch.bfloat16])
SEEDS = st.integers(0, 2**32 - 1)


def randn(seed: int, shape, dtype=torch.float32, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """A seeded normal tensor rounded to ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=generator, dtype=torch.float64) * scale + shift).to(dtype)


def randint(seed: int, shape, low: int, high: int, dtype=torch.int64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, tuple(shape), generator=generator).to(dtype)


def np64(tensor: torch.Tensor) -> np.ndarray:
    """A tensor's values as a float64 numpy array (the rounded values the operator received)."""
    return tensor.detach().to(torch.float64).numpy()


def wide(op: str, inputs, params=None) -> list[torch.Tensor]:
    """The unrounded (float64) reference outputs."""
    return reference(op, inputs, params or {}, dtype=torch.float64)


def assert_close(actual: torch.Tensor, expected, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    expected = torch.as_tensor(np.asarray(expected), dtype=torch.float64)
    torch.testing.assert_close(actual.to(torch.float64), expected, rtol=rtol, atol=atol, equal_nan=True)


def assert_fails(op: str, inputs, params, *words: str) -> None:
    """The reference raises OpcheckError naming ``op`` and every word."""
    with pytest.raises(OpcheckError) as info:
        reference(op, inputs, params)
    message = str(info.value)
    assert op in message
    for word in words:
        assert word in message, message
