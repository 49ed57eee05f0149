"""Precision standards: thresholds per metric, per-dtype defaults, named profiles, rules, verdicts.

A ``Standard`` is a set of checks on a ``CompareResult``. Profiles (``default``, ``strict``,
``msit``, ``msprobe``) build a standard for a pair of dtypes; ``resolve_standard`` then applies
override layers in increasing precedence (ini rule < marker < command line < call argument) and
every threshold remembers where it came from, so a ``Verdict`` can say which threshold failed
and why it applied. docs/standards.md documents the tables and how the defaults were chosen.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch

from .kernel import Tolerance
from .metrics import CompareResult, coarser_dtype, msit_error_level
from .names import KEYWORD_OF, METRICS, PROFILE_NAMES, THRESHOLD_KEYWORDS

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Threshold:
    """``metric op value`` (e.g. ``cosine_similarity >= 0.999``) and where it came from."""

    metric: str
    op: str
    value: float
    source: str = ""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known metrics: {', '.join(METRICS)}")
        if self.op not in _OPS:
            raise ValueError(f"unknown comparison {self.op!r}; use one of {', '.join(_OPS)}")

    @classmethod
    def from_keyword(cls, keyword: str, value: float, source: str = "") -> Threshold:
        if keyword not in THRESHOLD_KEYWORDS:
            raise ValueError(f"unknown threshold {keyword!r}; known: {', '.join(THRESHOLD_KEYWORDS)}")
        metric, op = THRESHOLD_KEYWORDS[keyword]
        return cls(metric, op, float(value), source)

    def passes(self, actual: float) -> bool:
        return not math.isnan(actual) and _OPS[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def relaxed_to(self, actual: float) -> str:
        """The keyword setting this threshold would need for ``actual`` to pass."""
        if math.isnan(actual):
            return "no threshold passes a NaN value"
        name = KEYWORD_OF.get(self.metric, self.metric)
        lower_is_better = self.op in ("<=", "<")
        return f"{name}={round_outward(actual, up=lower_is_better)}"


def round_outward(value: float, up: bool) -> str:
    """``value`` to 4 significant digits (of its distance to 1 when close to 1, as cosines are),
    rounded up or down so that the printed number still lets ``value`` pass."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    significant = 4
    if 0 < abs(1 - abs(value)) < 0.1:
        significant += -math.floor(math.log10(abs(1 - abs(value)))) - 1
    exponent = significant - 1 - math.floor(math.log10(abs(value)))
    scaled = value * 10.0**exponent
    rounded = (math.ceil(scaled - 1e-9) if up else math.floor(scaled + 1e-9)) / 10.0**exponent
    return f"{rounded:.{significant}g}"


@dataclass(frozen=True)
class AnyOf:
    """Passes when any of its thresholds passes (msprobe's compound verdict needs this)."""

    options: tuple[Threshold, ...]

    def __str__(self) -> str:
        return " or ".join(str(t) for t in self.options)


Check = Threshold | AnyOf


@dataclass(frozen=True)
class Standard:
    """Checks applied to a comparison, plus the element tolerance behind ``tolerance_pass_rate``."""

    name: str
    checks: tuple[Check, ...] = ()
    tolerance: Tolerance | None = None
    require_nonfinite_match: bool = True
    require_finite: bool = False

    def metrics(self) -> set[str]:
        names = set()
        for check in self.checks:
            options = check.options if isinstance(check, AnyOf) else (check,)
            names.update(t.metric for t in options)
        return names

    def with_thresholds(self, thresholds: Iterable[Threshold]) -> Standard:
        """A copy where each given threshold replaces every check on the same metric."""
        checks = list(self.checks)
        for new in thresholds:
            checks = [c for c in checks if new.metric not in _metrics_of(c)]
            checks.append(new)
        return replace(self, checks=tuple(checks))


def _metrics_of(check: Check) -> set[str]:
    return {t.metric for t in check.options} if isinstance(check, AnyOf) else {check.metric}


# --- profiles ------------------------------------------------------------------------------------

_DEFAULT = {
    torch.float64: (0.9999999, 1e-6),
    torch.float32: (0.99999, 1e-3),
    torch.float16: (0.999, 1e-2),
    torch.bfloat16: (0.995, 5e-2),
    torch.float8_e4m3fn: (0.98, 0.15),
    torch.float8_e4m3fnuz: (0.98, 0.15),
    torch.float8_e5m2: (0.95, 0.3),
    torch.float8_e5m2fnuz: (0.95, 0.3),
}
"""Our per-dtype (min cosine, max relative Euclidean distance); see docs/standards.md for the data."""

_STRICT = {
    torch.float64: (1 - 1e-10, 1e-8),
    torch.float32: (0.999999, 1e-4),
    torch.float16: (0.9999, 2e-3),
    torch.bfloat16: (0.999, 1e-2),
    torch.float8_e4m3fn: (0.99, 0.08),
    torch.float8_e4m3fnuz: (0.99, 0.08),
    torch.float8_e5m2: (0.98, 0.15),
    torch.float8_e5m2fnuz: (0.98, 0.15),
}

_MSIT_PASS_RATES = {
    torch.float32: 0.9999,
    torch.float16: 0.999,
    torch.bfloat16: 0.999,
    torch.float64: 0.9999,
    torch.int32: 0.9999,
    torch.int64: 0.9999,
    torch.uint32: 0.9999,
    torch.uint64: 0.9999,
    torch.int8: 0.999,
    torch.int16: 0.999,
    torch.uint16: 0.999,
    torch.uint8: 0.99,
    torch.bool: 1.0,
}
"""msit opcheck's required share of elements within the error level (msit-spec §6.4), ``>=``."""

_MSPROBE_TIERS = {
    torch.float16: (0.01, 2.0**-10),
    torch.bfloat16: (0.01, 2.0**-8),
    torch.float32: (0.001, 2.0**-23),
    torch.float64: (0.001, 2.0**-52),
}
"""msprobe's legacy run_ut tier (msprobe-spec §4.3/§4.5): share of RE < rtol must exceed 1 - rtol,
with RE = |my - golden| / (|golden| + eps); dtype -> (rtol, eps)."""


def _exact(source: str) -> Standard:
    return Standard("exact", (Threshold("max_absolute_error", "<=", 0.0, source),))


def _cos_red(name: str, table: Mapping[torch.dtype, tuple[float, float]], dtype: torch.dtype, source: str):
    if dtype not in table:
        if dtype.is_floating_point:
            raise ValueError(f"profile {name!r} has no thresholds for {dtype}")
        return replace(_exact(source), name=name)
    min_cos, max_red = table[dtype]
    return Standard(
        name,
        (
            Threshold("cosine_similarity", ">=", min_cos, source),
            Threshold("relative_euclidean_distance", "<=", max_red, source),
        ),
    )


def _default_profile(golden: torch.dtype, my: torch.dtype) -> Standard:
    dtype = coarser_dtype(golden, my)
    return _cos_red("default", _DEFAULT, dtype, f"dtype default ({dtype})")


def _strict_profile(golden: torch.dtype, my: torch.dtype) -> Standard:
    dtype = coarser_dtype(golden, my)
    standard = _cos_red("strict", _STRICT, dtype, f"profile 'strict' ({dtype})")
    return replace(standard, require_finite=True)


def _msit_profile(golden: torch.dtype, my: torch.dtype) -> Standard:
    rate = _MSIT_PASS_RATES.get(my, 0.999)
    source = f"profile 'msit' ({my})"
    return Standard(
        "msit",
        (Threshold("tolerance_pass_rate", ">=", rate, source),),
        tolerance=Tolerance(msit_error_level(my), small=2.0**-23),
    )


def _msprobe_profile(golden: torch.dtype, my: torch.dtype) -> Standard:
    source = "profile 'msprobe'"
    if not golden.is_floating_point and not my.is_floating_point:
        return replace(_exact(source), name="msprobe")
    checks: list[Check] = [
        AnyOf(
            (
                Threshold("cosine_similarity", ">=", 0.99, source),
                Threshold("max_absolute_error", "<=", 0.001, source),
            )
        ),
        Threshold("cosine_similarity", ">=", 0.9, source),
        Threshold("max_absolute_error", "<=", 1.0, source),
    ]
    tier = _MSPROBE_TIERS.get(golden) or _MSPROBE_TIERS.get(my)
    tolerance = None
    if tier is not None:
        rtol, eps = tier
        checks.append(Threshold("tolerance_pass_rate", ">", 1 - rtol, f"{source} ({golden})"))
        tolerance = Tolerance(rtol, atol=rtol * eps)
    return Standard("msprobe", tuple(checks), tolerance=tolerance)


PROFILES: dict[str, Callable[[torch.dtype, torch.dtype], Standard]] = dict(
    zip(PROFILE_NAMES, (_default_profile, _strict_profile, _msit_profile, _msprobe_profile), strict=True)
)


def get_standard(
    profile: str = "default", golden_dtype: torch.dtype = torch.float32, my_dtype: torch.dtype | None = None
) -> Standard:
    """The standard a named profile applies to a golden/my dtype pair."""
    if profile not in PROFILES:
        raise ValueError(f"unknown precision standard {profile!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[profile](golden_dtype, my_dtype or golden_dtype)


# --- override layers and rules -------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One source of settings: an optional profile name, thresholds, and an element tolerance."""

    source: str
    profile: str | Standard | None = None
    thresholds: tuple[Threshold, ...] = ()
    tolerance: Tolerance | None = None

    @classmethod
    def from_keywords(
        cls, source: str, profile: str | Standard | None = None, tolerance: Tolerance | None = None, **values
    ) -> Layer:
        thresholds = tuple(
            Threshold.from_keyword(name, value, source) for name, value in values.items() if value is not None
        )
        return cls(source, profile, thresholds, tolerance)


def resolve_standard(
    golden_dtype: torch.dtype, my_dtype: torch.dtype, layers: Sequence[Layer] = ()
) -> Standard:
    """The standard for a pair of dtypes under ``layers`` given in increasing precedence.

    The profile is the one named by the highest layer that names one (else ``default``);
    thresholds then override the profile's checks layer by layer.
    """
    profile: str | Standard = "default"
    for layer in layers:
        if layer.profile is not None:
            profile = layer.profile
    standard = profile if isinstance(profile, Standard) else get_standard(profile, golden_dtype, my_dtype)
    for layer in layers:
        standard = standard.with_thresholds(layer.thresholds)
        if layer.tolerance is not None:
            standard = replace(standard, tolerance=layer.tolerance)
    return standard


_RULE_TERM = re.compile(r"^([A-Za-z_0-9]+)\s*(>=|<=|>|<|=)\s*([-+0-9.eEinfINFnaN]+)$")


@dataclass(frozen=True)
class Rule:
    """An ini ``llm_rules`` line: a glob over node names and the thresholds it sets."""

    pattern: str
    thresholds: tuple[Threshold, ...]

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)


def parse_rule(line: str, source: str = "ini llm_rules") -> Rule:
    """Parse ``GLOB metric>=value ...``; keyword terms such as ``min_cos=0.999`` work too."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError(
            f"rule {line!r}: expected a node glob followed by thresholds such as cosine_similarity>=0.99"
        )
    pattern, terms = parts[0], parts[1:]
    rule_source = f"{source} '{pattern}'"
    thresholds = []
    for term in terms:
        found = _RULE_TERM.match(term)
        if not found:
            raise ValueError(f"rule {line!r}: cannot read {term!r}; write metric>=value or metric<=value")
        name, op, text = found.groups()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"rule {line!r}: {text!r} is not a number") from None
        if op == "=":
            thresholds.append(Threshold.from_keyword(name, value, rule_source))
        else:
            thresholds.append(Threshold(name, op, value, rule_source))
    return Rule(pattern, tuple(thresholds))


def parse_rules(lines: Iterable[str], source: str = "ini llm_rules") -> list[Rule]:
    """Rules from ini lines; blank lines and ``#`` comments are skipped."""
    return [parse_rule(line, source) for line in lines if line.strip() and not line.strip().startswith("#")]


def rule_layer(rules: Iterable[Rule], name: str) -> Layer | None:
    """The thresholds of every rule matching ``name`` (later rules win), as one layer."""
    thresholds = [t for rule in rules if rule.matches(name) for t in rule.thresholds]
    if not thresholds:
        return None
    return Layer("ini rule", thresholds=tuple(thresholds))


# --- verdicts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
