"""Groups of pairs compared and reported together: one per tensor pair, node, decoder layer or token.

A group is what one pytest item compares (``--llm-item``); the report keeps one row per pair
whatever the grouping. Groups come in execution order (of their first pair) and keep their pairs
in execution order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..matching.base import Pair, token_label
from ..report.layers import layer_index
from .settings import ITEM_GRANULARITIES as GRANULARITIES


@dataclass(frozen=True, slots=True)
class PairGroup:
    """``name``: the group's id (a pair key, ``token0/root.model.layers.3.mlp``,
    ``token0/layer3``, ``token0``) and its pairs in execution order."""

    name: str
    pairs: tuple[Pair, ...]

    @property
    def nodes(self) -> set[str]:
        """The node names of both sides, for selection."""
        return {n for p in self.pairs for n in (p.golden.node, p.my.node)}


def group_pairs(pairs: Sequence[Pair], granularity: str, folder_nodes: bool = False) -> list[PairGroup]:
    """``pairs`` grouped by ``granularity``. ``folder_nodes``: the golden dump is a folder of plain
    files, whose node is a file's path, so a module is the folder holding the files."""
    if granularity not in GRANULARITIES:
        choices = ", ".join(GRANULARITIES)
        raise ValueError(f"unknown item granularity {granularity!r}; choose one of {choices}")
    if granularity == "tensor":
        return [PairGroup(p.key, (p,)) for p in pairs]
    grouped: dict[str, list[Pair]] = {}
    for pair in pairs:
        grouped.setdefault(group_name(pair, granularity, folder_nodes), []).append(pair)
    return [PairGroup(name, tuple(members)) for name, members in grouped.items()]


def group_name(pair: Pair, granularity: str, folder_nodes: bool = False) -> str:
    """The name of the group of ``pair`` (not for ``tensor``: there the pair's key is the name)."""
    rank = pair.golden.rank
    prefix = token_label(pair.token) + (f"/rank{rank}" if rank is not None else "")
    if granularity == "token":
        return prefix
    node = pair.golden.node
    if folder_nodes and "/" in node:
        node = node.rsplit("/", 1)[0]
    if granularity == "layer":
        layer = layer_index(node)
        if layer is not None:
            return f"{prefix}/layer{layer}"
    return f"{prefix}/{node}"
