"""Pairing golden and my tensors: the matcher registry and ``match_dumps``."""

from __future__ import annotations

from ..dumps.base import Dump
from ..errors import LlmprecError
from .base import Matcher, MatchOptions, MatchResult, Pair, Unmatched
from .by_name import ManualMatcher, SameKindMatcher, SingleFileMatcher
from .mapping_file import NameMapping
from .tokens import parse_tokens

MATCHERS: list[Matcher] = [ManualMatcher(), SingleFileMatcher(), SameKindMatcher()]
"""Tried in order; the first whose ``applies`` is true pairs the dumps."""


def register_matcher(matcher: Matcher) -> None:
    """Try ``matcher`` before the built-in ones (for cross-runtime layouts)."""
    MATCHERS.insert(0, matcher)


def match_dumps(golden: Dump, my: Dump, options: MatchOptions | None = None) -> MatchResult:
    """Pair the tensors of two dumps with the first matcher that applies."""
    for matcher in MATCHERS:
        if matcher.applies(golden, my):
            return matcher.match(golden, my, options or MatchOptions())
    raise LlmprecError(
        f"cannot pair a {golden.kind!r} golden dump with a {my.kind!r} my dump: "
        "pairing different layouts (e.g. torch vs ATB) needs a cross-runtime matcher"
    )


__all__ = [
    "MATCHERS",
    "MatchOptions",
    "MatchResult",
    "Matcher",
    "NameMapping",
    "Pair",
    "Unmatched",
    "match_dumps",
    "parse_tokens",
    "register_matcher",
]
