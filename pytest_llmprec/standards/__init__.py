"""Precision standards: the vocabulary of checks, per-dtype profiles, override layers and verdicts.

Importable without torch. ``thresholds`` holds the vocabulary (``Threshold``, ``AnyOf``,
``Standard``, ``Tolerance``, ``Layer``, ini ``Rule``), ``profiles`` the named standards and their
resolution for a pair of dtypes, ``verdicts`` the judgement of a ``CompareResult``.
"""

from .names import KEYWORD_OF, METRICS, PROFILE_NAMES, STANDARD_METRICS, THRESHOLD_KEYWORDS
from .profiles import PROFILES, get_standard, resolve_standard
from .thresholds import (
    AnyOf,
    Check,
    Layer,
    Rule,
    Standard,
    Threshold,
    Tolerance,
    parse_rule,
    parse_rules,
    round_outward,
    rule_layer,
)
from .verdicts import Outcome, Verdict, judge

__all__ = [
    "KEYWORD_OF",
    "METRICS",
    "PROFILES",
    "PROFILE_NAMES",
    "STANDARD_METRICS",
    "THRESHOLD_KEYWORDS",
    "AnyOf",
    "Check",
    "Layer",
    "Outcome",
    "Rule",
    "Standard",
    "Threshold",
    "Tolerance",
    "Verdict",
    "get_standard",
    "judge",
    "parse_rule",
    "parse_rules",
    "resolve_standard",
    "round_outward",
    "rule_layer",
]
