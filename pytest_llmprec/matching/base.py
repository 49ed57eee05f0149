"""What matching produces: golden/my pairs in execution order, and what stayed unmatched.

A matcher turns two indexed dumps into ``Pair``s. The same-kind matcher pairs records by name;
cross-runtime matchers (torch module tree vs ATB operators, GE vs FX) plug into the same
``Matcher`` protocol and the registry in ``pytest_llmprec.matching``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..dumps.base import Dump, TensorRecord
from .mapping_file import NameMapping


@dataclass(frozen=True)
class Pair:
    """A golden tensor and the tensor under test that should equal it.

    ``key`` is the readable, unique id (``token0/root.model.layers.3.mlp/output_0``);
    ``token`` the token shown in reports (the my side's); ``order`` the pair's position in
    execution order, which locates the first divergence.
    """

    key: str
    golden: TensorRecord
    my: TensorRecord
    token: int | str
    order: int


@dataclass(frozen=True)
class Unmatched:
    side: str
    record: TensorRecord
    reason: str


@dataclass
class MatchResult:
    pairs: list[Pair] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MatchOptions:
    """User choices that narrow matching: token ids, node-name globs, a name mapping."""

    tokens: frozenset[int | str] | None = None
    select: tuple[str, ...] = ()
    mapping: NameMapping | None = None


class Matcher(Protocol):
    name: str

    def applies(self, golden: Dump, my: Dump) -> bool:
        """Whether this matcher knows how to pair these two dumps."""

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        """Pairs in execution order, plus every selected record left without a partner."""


def token_label(token: int | str) -> str:
    return f"token{token}" if isinstance(token, int) else str(token)
