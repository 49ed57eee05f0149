"""The kernel's one-pass logits statistics (``native.logits_row``) against float64 NumPy references,
on every instruction set this CPU runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmprec.compare import native

pytestmark = pytest.mark.skipif(not native.available(), reason="the C kernel was not built")

INSTRUCTION_SETS = native.instruction_sets() if native.available() else ()
DTYPES = {"torch.float32": np.float32, "torch.float64": np.float64, "torch.float16": np.float16}


def rows_on_every_instruction_set(g: np.ndarray, m: np.ndarray, dtype: str, k: int) -> list[native.LogitsRow]:
    found = []
    for name in INSTRUCTION_SETS:
        was = native.use_instruction_set(name)
        try:
            found.append(native.logits_row(native.Buffer(g, dtype), native.Buffer(m, dtype), k))
        finally:
            native.use_instruction_set(was)
    return found


def reference_top(x: np.ndarray, k: int) -> list[tuple[float, int]]:
    """The k largest, largest first, equal values by increasing index (a stable sort of -x)."""
    order = np.argsort(-x.astype(np.float64), kind="stable")[:k]
    return [(float(x[i]), int(i)) for i in order]


def reference_kl(g: np.ndarray, m: np.ndarray) -> float:
    log_p = g - g.max() - math.log(np.exp(g - g.max()).sum())
    log_q = m - m.max() - math.log(np.exp(m - m.max()).sum())
    return float(np.sum(np.exp(log_p) * (log_p - log_q)))


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 5000),
    k=st.integers(0, 24),
    dtype=st.sampled_from(sorted(DTYPES)),
    levels=st.sampled_from([0, 7, 1000]),
    noise=st.sampled_from([0.0, 1e-3, 0.5, 3.0]),
)
def test_statistics_and_top_values_match_float64(seed, n, k, dtype, levels, noise):
    rng = np.random.default_rng(seed)
    # A few levels make many ties, which the top values must break by increasing index.
    base = rng.integers(0, levels, n) / 2.0 if levels else rng.standard_normal(n) * 5
    g = base.astype(DTYPES[dtype])
    m = (base + rng.standard_normal(n) * noise).astype(DTYPES[dtype])
    g64, m64 = g.astype(np.float64), m.astype(np.float64)
    for row in rows_on_every_instruction_set(g, m, dtype, k):
        assert not row.g_bad and not row.m_bad
        assert row.gg == pytest.approx(float(g64 @ g64), rel=1e-12)
        assert row.mm == pytest.approx(float(m64 @ m64), rel=1e-12)
        assert row.gm == pytest.approx(float(g64 @ m64), rel=1e-12, abs=1e-9)
        assert row.g_abs == pytest.approx(float(np.abs(g64).sum()), rel=1e-12)
        assert row.m_abs == pytest.approx(float(np.abs(m64).sum()), rel=1e-12)
        assert (row.g_max, row.m_max) == (float(g64.max()), float(m64.max()))
        assert row.kl == pytest.approx(reference_kl(g64, m64), rel=1e-6, abs=1e-12)
        assert row.g_top == reference_top(g, min(k, n))
        assert row.m_top == reference_top(m, min(k, n))


@pytest.mark.parametrize("where", [0, 1023, 1024, 4999])
def test_nan_and_infinity_are_flagged_on_their_own_side(where):
    g = np.linspace(-3, 3, 5000).astype(np.float32)
    m = g.copy()
    for bad, flags in ((np.nan, (True, False)), (np.inf, (True, False)), (-np.inf, (True, False))):
        g_bad = g.copy()
        g_bad[where] = bad
        (row, *_) = rows_on_every_instruction_set(g_bad, m, "torch.float32", 5)
        assert (row.g_bad, row.m_bad) == flags
        (row, *_) = rows_on_every_instruction_set(m, g_bad, "torch.float32", 5)
        assert (row.g_bad, row.m_bad) == flags[::-1]
    both_g, both_m = g.copy(), m.copy()
    both_g[where], both_m[4999 - where] = np.nan, np.inf
    for row in rows_on_every_instruction_set(both_g, both_m, "torch.float32", 5):
        assert row.g_bad and row.m_bad


def test_large_finite_float64_values_are_not_taken_for_infinity():
    g = np.full(10, 1e308)
    for row in rows_on_every_instruction_set(g, g.copy(), "torch.float64", 3):
        assert not row.g_bad and not row.m_bad  # the sum of |g| overflows; the values are finite
        assert row.g_top == [(1e308, 0), (1e308, 1), (1e308, 2)]


def test_buffers_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="hold 4 and 5 elements"):
        native.logits_row(
            native.Buffer(np.zeros(4), "torch.float64"), native.Buffer(np.zeros(5), "torch.float64"), 2
        )
