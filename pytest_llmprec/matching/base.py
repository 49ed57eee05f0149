"""What matching produces: golden/my pairs in execution order, and what stayed unmatched.

A matcher turns two indexed dumps into ``Pair``s. The same-kind matcher pairs records by name;
cross-runtime matchers (torch module tree vs ATB operators, GE vs FX) plug into the same
``Matcher`` protocol and the registry in ``pytest_llmprec.matching``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..dumps.base import Dump, TensorRecord
from .mapping_file import NameMapping

if TYPE_CHECKING:
    from .op_mapping import OpMapping

LEVELS = ("layer", "module", "api", "logits")
"""``--llm-level`` values for tree matching (torch vs ATB, ATB vs ATB); None: the most detailed that pairs."""

MODES = ("tensors", "stats", "weights")
"""What is compared: dumped tensors, dumped statistics (``--llm-stats``) or weights (``--llm-weights``)."""


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True)
class Explanation:
    """Why a golden node and a my node were paired (``rule``), or why a node found no partner.

    An unpaired node has an empty ``golden_node`` or ``my_node`` and an empty ``rule``; ``tokens``
    lists the tokens the line stands for; ``pairs`` counts the tensor pairs it produced.
    """

    tokens: tuple[int | str, ...]
    golden_node: str
    golden_type: str
    my_node: str
    my_type: str
    rule: str
    reason: str
    pairs: int = 0


@dataclass
class MatchResult:
    pairs: list[Pair] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explanation: list[Explanation] = field(default_factory=list)
    """Node-level account of the pairing (tree and torchair matchers); see ``matching.explain``."""


@dataclass(frozen=True)
class MatchOptions:
    """User choices that narrow matching: token ids, node-name globs, a name mapping; for the
    cross-runtime matchers the level (``LEVELS``), an op mapping (``--llm-op-mapping-file``) and
    the mode (``MODES``)."""

    tokens: frozenset[int | str] | None = None
    select: tuple[str, ...] = ()
    mapping: NameMapping | None = None
    level: str | None = None
    op_mapping: OpMapping | None = None
    mode: str = "tensors"

    def __post_init__(self) -> None:
        if self.level is not None and self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r}; choose one of {', '.join(LEVELS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")


class Matcher(Protocol):
    """Pairs two dumps. A matcher may set ``mode`` (one of ``MODES``, default ``"tensors"``): it is
    only asked for runs in that mode."""

    name: str

    def applies(self, golden: Dump, my: Dump) -> bool:
        """Whether this matcher knows how to pair these two dumps."""

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        """Pairs in execution order, plus every selected record left without a partner."""


def token_label(token: int | str) -> str:
    return f"token{token}" if isinstance(token, int) else str(token)
