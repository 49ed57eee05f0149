"""The accumulators every metric is computed from, and how those of consecutive pieces merge.

Both kernel backends (``native`` over raw buffers, ``kernel``'s torch operations) fill the
same fields (``FIELDS``); ``merge`` combines the accumulators of consecutive pieces exactly as
if they had been one, with an online log-sum-exp for KL. Importable without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..dtypes import dtype_facts

FIELDS = (
    "count", "both_finite", "g_nan", "g_inf", "m_nan", "m_inf", "nonfinite_mismatch",
    "g_finite", "g_sum", "g_max", "g_min", "m_finite", "m_sum", "m_max", "m_min",
    "sum_gg", "sum_mm", "sum_gm", "sum_dd", "sum_ad", "max_ad", "worst_index", "worst_golden", "worst_my",
    "sum_rel", "max_rel", "within_0_001", "within_0_005", "within_tolerance", "max_ulp",
    "kl_g_max", "kl_g_sum", "kl_g_dot", "kl_m_max", "kl_m_sum",
)  # fmt: skip

REL_EPS = 2.0**-23
"""Golden magnitudes at or below this are left out of the relative errors (as msit does)."""

SMALLEST_SUBNORMAL = 2.0**-1074
"""Stands in for a zero golden magnitude in the quotient |my - golden| / |golden| behind the
msprobe ratios, so that 0 / 0 = 0 and x / 0 = inf."""


@dataclass(frozen=True)
class UlpGrid:
    """Units of last place of a dtype: ``bits`` explicit mantissa bits, smallest normal exponent ``emin``.

    ``bits < 0`` marks integer and bool dtypes, whose unit is 1.
    """

    bits: int
    emin: int

    @classmethod
    def of(cls, dtype: Any) -> UlpGrid:
        """The grid of a ``torch.dtype`` or dtype name."""
        facts = dtype_facts(dtype)
        return cls(facts.bits, facts.emin) if facts.floating else cls(-1, 0)


def empty_accumulators() -> dict[str, float]:
    acc = dict.fromkeys(FIELDS, 0.0)
    acc.update(
        g_max=-math.inf, m_max=-math.inf, g_min=math.inf, m_min=math.inf,
        max_ad=-1.0, worst_index=-1.0, worst_golden=math.nan, worst_my=math.nan,
        kl_g_max=-math.inf, kl_m_max=-math.inf,
    )  # fmt: skip
    return acc


_SUMMED = (
    "count", "both_finite", "g_nan", "g_inf", "m_nan", "m_inf", "nonfinite_mismatch", "g_finite", "g_sum",
    "m_finite", "m_sum", "sum_gg", "sum_mm", "sum_gm", "sum_dd", "sum_ad", "sum_rel",
    "within_0_001", "within_0_005", "within_tolerance",
)  # fmt: skip


def _rescaled(total: float, top: float, new_top: float) -> float:
    return total * math.exp(top - new_top) if total else 0.0


def merge(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Accumulators of ``first`` followed by ``second`` (positions of ``second`` come later)."""
    out = {name: first[name] + second[name] for name in _SUMMED}
    for name in ("g_max", "m_max", "max_rel", "max_ulp"):
        out[name] = max(first[name], second[name])
    for name in ("g_min", "m_min"):
        out[name] = min(first[name], second[name])
    worst = second if second["max_ad"] > first["max_ad"] else first
    for name in ("max_ad", "worst_index", "worst_golden", "worst_my"):
        out[name] = worst[name]
    g_top = max(first["kl_g_max"], second["kl_g_max"])
    m_top = max(first["kl_m_max"], second["kl_m_max"])
    out["kl_g_max"], out["kl_m_max"] = g_top, m_top
    for name in ("kl_g_sum", "kl_g_dot"):
        out[name] = _rescaled(first[name], first["kl_g_max"], g_top) + _rescaled(
            second[name], second["kl_g_max"], g_top
        )
    out["kl_m_sum"] = _rescaled(first["kl_m_sum"], first["kl_m_max"], m_top) + _rescaled(
        second["kl_m_sum"], second["kl_m_max"], m_top
    )
    return out
