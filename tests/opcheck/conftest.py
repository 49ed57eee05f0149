"""Operators registered for the opcheck tests, under names no real operator set uses.

``registered`` restores the registry after a test that registers (or overrides) operators.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_llmprec.opcheck import register_op, registry

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@register_op("TestScaleOperation", required_params=("factor",), inputs=1)
def _scale(inputs, params):
    if not isinstance(params["factor"], (int, float)):
        raise TypeError(f"factor must be a number, got {params['factor']!r}")
    return [inputs[0] * params["factor"]]


@register_op("TestCacheOperation", inplace_outputs=(1,), inputs=2)
def _cache(inputs, params):
    """Writes input 0 into the first rows of the cache (input 1), in place."""
    cache = inputs[1].clone()
    cache[: inputs[0].shape[0]] = inputs[0]
    return [cache]


@pytest.fixture
def registered():
    """Registrations made in the test are undone afterwards (the built-in sets are loaded first, so
    that a test's registration overrides them for the test only)."""
    registry.op_types()
    saved = dict(registry._REGISTRY)
    yield register_op
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
