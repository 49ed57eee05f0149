"""The vocabulary of precision checks, importable without torch.

``Tolerance`` (the element-wise test behind ``tolerance_pass_rate``), ``Threshold`` and ``AnyOf``
(checks on metrics, each with its source), ``Standard`` (a named set of checks), ``Layer`` (one
source of settings) and ini ``Rule`` parsing. ``pytest_llmprec.standards`` builds standards for
dtypes and judges results with them.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from .names import KEYWORD_OF, METRICS, THRESHOLD_KEYWORDS

_BOUNDED = {
    "cosine_similarity": (-1.0, 1.0),
    "sqnr_db": (-math.inf, math.inf),
    "rel_err_ratio_0_001": (0.0, 1.0),
    "rel_err_ratio_0_005": (0.0, 1.0),
    "tolerance_pass_rate": (0.0, 1.0),
}
_RANGES = {metric: _BOUNDED.get(metric, (0.0, math.inf)) for metric in METRICS}
"""The values each metric can take; a threshold outside them is a mistake (``min_cos=2``)."""


@dataclass(frozen=True)
class Tolerance:
    """Element-wise tolerance: an element passes when ``|g| <= small`` or ``|m - g| <= atol + rtol*|g|``."""

    rtol: float
    atol: float = 0.0
    small: float = 0.0

    def __str__(self) -> str:
        parts = [f"rtol={self.rtol:g}"]
        if self.atol:
            parts.append(f"atol={self.atol:g}")
        if self.small:
            parts.append(f"|golden|<={self.small:g} passes")
        return ", ".join(parts)


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
        low, high = _RANGES.get(self.metric, (-math.inf, math.inf))
        if not low <= self.value <= high:  # NaN too
            name = KEYWORD_OF.get(self.metric, self.metric)
            raise ValueError(
                f"{name}={self.value:g} is out of range: {self.metric} lies in [{low:g}, {high:g}]"
            )

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


# --- rules ---------------------------------------------------------------------------------------


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
