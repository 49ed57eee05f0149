"""Verdicts: a ``Standard`` applied to a ``CompareResult``, with every check's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .thresholds import AnyOf, Check, Standard

if TYPE_CHECKING:
    from ..compare.results import CompareResult


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check and its result; ``actual`` holds the metric value(s) it looked at."""

    check: Check
    passed: bool
    actual: tuple[float, ...]

    def describe(self) -> str:
        if isinstance(self.check, AnyOf):
            parts = [f"{t.metric} = {_fmt(v)}" for t, v in zip(self.check.options, self.actual, strict=True)]
            sources = {t.source for t in self.check.options}
            return f"{', '.join(parts)}: needs {self.check} [source: {', '.join(sorted(sources))}]"
        t = self.check
        relation = "meets" if self.passed else "fails"
        source = t.source or "given"
        return f"{t.metric} = {_fmt(self.actual[0])} {relation} {t.op} {t.value:g} [source: {source}]"


def _fmt(value: float) -> str:
    return f"{value:.10g}" if 0.9 < value < 1 else f"{value:.6g}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Pass/fail of a comparison under a standard, with every check's outcome."""

    passed: bool
    standard: Standard
    outcomes: tuple[Outcome, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)

    def summary(self) -> str:
        """One line: ``passed`` or the failed checks and problems."""
        if self.passed:
            return "passed"
        parts = [o.describe() for o in self.failures] + list(self.problems)
        return "; ".join(parts)


def judge(result: CompareResult, standard: Standard) -> Verdict:
    """Apply ``standard`` to ``result``."""
    problems = []
    if not result.comparable:
        problems.append(result.fail_reason)
    if standard.require_nonfinite_match and not result.nonfinite_positions_match:
        problems.append("NaN/Inf positions differ between golden and my")
    if standard.require_finite:
        counts = (result.golden_nan_count, result.golden_inf_count, result.my_nan_count, result.my_inf_count)
        if any(counts):
            problems.append(
                f"the {standard.name!r} standard requires finite values: golden has {counts[0]} NaN and "
                f"{counts[1]} Inf, my has {counts[2]} NaN and {counts[3]} Inf"
            )
    needs_tolerance = "tolerance_pass_rate" in standard.metrics() and standard.tolerance is not None
    if needs_tolerance and str(standard.tolerance) != result.tolerance:
        raise ValueError(
            f"the result was computed with tolerance ({result.tolerance}) but the standard needs "
            f"({standard.tolerance}); pass tolerance=standard.tolerance to compare_tensors"
        )
    outcomes = []
    for check in standard.checks:
        options = check.options if isinstance(check, AnyOf) else (check,)
        actual = tuple(result.metric(t.metric) for t in options)
        passed = any(t.passes(v) for t, v in zip(options, actual, strict=True))
        outcomes.append(Outcome(check, passed, actual))
    passed = not problems and all(o.passed for o in outcomes)
    return Verdict(passed, standard, tuple(outcomes), tuple(problems))
