"""Token verdicts: did the next token change, and does the change mean anything.

A top-1 change is a **near-tie flip** when the golden's margin between the two tokens
(``golden[top1_golden] − golden[top1_my]``) is at most ``tie_ulps`` ULPs of the working dtype at
those logits: two logits that close are within the rounding noise of that dtype, and either
token is a faithful choice. A larger margin is a **flip**, a real divergence. Within a case
(one generation) the first token that is not ``same`` decides its class; tokens after a near-tie
flip follow different contexts in free generation, so their failures are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .metrics import ULP_UNITS, LogitsMetrics

SAME = "same"
NEAR_TIE = "near-tie flip"
FLIP = "flip"
NUMERICS = "numerics differ"
INVALID = "invalid"
ONLY_GOLDEN = "only_in_golden_path"
ONLY_MY = "only_in_my_path"
FAILING = (FLIP, NUMERICS, INVALID, ONLY_GOLDEN, ONLY_MY)
"""Token verdicts that fail their item (unless they follow a near-tie flip of their case)."""

EQUAL = "numerically equal"
DIVERGED = "diverged"
NEAR_TIE_ONLY = "near-tie flip only"


def tie_tolerance(magnitude: float, dtype: str, ulps: float) -> float:
    """``ulps`` units of last place of ``dtype`` at ``magnitude`` (at least at 1.0's spacing below 1)."""
    exponent = math.floor(math.log2(magnitude)) if magnitude > 0 and math.isfinite(magnitude) else 0
    return ulps * 2.0 ** max(exponent, 0) * ULP_UNITS[dtype]


def token_verdict(metrics: LogitsMetrics) -> str:
    """``same``, ``near-tie flip``, ``flip``, ``numerics differ`` or ``invalid``."""
    if not metrics.compared:
        return INVALID
    if not metrics.top1_match:
        assert metrics.flip_margin is not None and metrics.tie_tolerance is not None
        if metrics.flip_margin > metrics.tie_tolerance:
            return FLIP
        return NEAR_TIE if metrics.passed == "True" else NUMERICS
    return SAME if metrics.passed == "True" else NUMERICS


@dataclass(frozen=True)
class CaseVerdict:
    """A case's class (``numerically equal``, ``diverged``, ``near-tie flip only``), the token that
    decided it (None when equal) and that token's verdict."""

    kind: str
    token: int | str | None = None
    token_verdict: str = SAME

    def describe(self) -> str:
        if self.kind == EQUAL:
            return EQUAL
        if self.kind == DIVERGED:
            return f"diverged at token {self.token} ({self.token_verdict})"
        return f"near-tie flip only (at token {self.token})"


def classify(verdicts: Iterable[tuple[int | str, str]]) -> CaseVerdict:
    """The class of a case from its ``(token, token verdict)`` in token order."""
    for token, verdict in verdicts:
        if verdict == SAME:
            continue
        if verdict == NEAR_TIE:
            return CaseVerdict(NEAR_TIE_ONLY, token, verdict)
        return CaseVerdict(DIVERGED, token, verdict)
    return CaseVerdict(EQUAL)


def outcome(verdict: str, earlier: CaseVerdict) -> tuple[str, str | None]:
    """``passed``, ``failed`` or ``skipped`` for a token whose earlier tokens classify as ``earlier``,
    and the skip reason."""
    if verdict not in FAILING:
        return "passed", None
    if earlier.kind == NEAR_TIE_ONLY:
        return "skipped", (
            f"follows the near-tie flip at token {earlier.token}: the runs continued from different tokens"
        )
    return "failed", None
