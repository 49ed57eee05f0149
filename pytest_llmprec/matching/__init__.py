"""Pairing golden and my tensors: the matcher registry and ``match_dumps``."""

from __future__ import annotations

from ..dumps.base import Dump
from ..errors import LlmprecError
from .atb_torch import TreeMatcher
from .base import LEVELS, MODES, Explanation, Matcher, MatchOptions, MatchResult, Pair, Unmatched
from .by_name import ManualMatcher, SameKindMatcher, SingleFileMatcher
from .mapping_file import NameMapping
from .op_mapping import OpMapping
from .stats import StatsMatcher
from .tokens import parse_tokens
from .torchair import TorchairMatcher
from .weights import WeightsMatcher

MATCHERS: list[Matcher] = [
    ManualMatcher(),
    SingleFileMatcher(),
    TreeMatcher(),
    TorchairMatcher(),
    SameKindMatcher(),
    StatsMatcher(),
    WeightsMatcher(),
]
"""Tried in order; the first of the run's mode whose ``applies`` is true pairs the dumps."""


def register_matcher(matcher: Matcher) -> None:
    """Try ``matcher`` before the built-in ones (for cross-runtime layouts)."""
    MATCHERS.insert(0, matcher)


def match_dumps(golden: Dump, my: Dump, options: MatchOptions | None = None) -> MatchResult:
    """Pair the tensors of two dumps with the first matcher of ``options.mode`` that applies."""
    options = options or MatchOptions()
    for matcher in MATCHERS:
        if getattr(matcher, "mode", "tensors") == options.mode and matcher.applies(golden, my):
            return matcher.match(golden, my, options)
    what = {"tensors": "tensors", "stats": "statistics", "weights": "weights"}[options.mode]
    raise LlmprecError(
        f"cannot pair the {what} of a {golden.kind!r} golden dump with a {my.kind!r} my dump: "
        "no matcher knows this combination"
    )


__all__ = [
    "LEVELS",
    "MATCHERS",
    "MODES",
    "Explanation",
    "MatchOptions",
    "MatchResult",
    "Matcher",
    "NameMapping",
    "OpMapping",
    "Pair",
    "StatsMatcher",
    "TorchairMatcher",
    "TreeMatcher",
    "Unmatched",
    "WeightsMatcher",
    "match_dumps",
    "parse_tokens",
    "register_matcher",
]
