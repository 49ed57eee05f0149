"""The propagation estimate: how much error each tensor of one token adds to what it inherits, from
the accumulated errors of both dumps alone (no weights, no replay).

Every tensor gets an *expected* error, what its sources would hand on, and the introduced error is
the part of its own error that the expected one does not explain (errors of independent causes add
in quadrature: ``introduced = sqrt(max(0, e**2 - expected**2))``). The sources follow the module tree
of the golden dump, which is the reference execution:

- a node input that equals (golden values) an earlier output is *carried* from it; when my side
  does not carry the same values there, the enclosing module wired something else;
- a leaf's output is explained by its largest input error;
- a module's output that equals a child's output is carried from it;
- anything else was computed in a module's own code (the attention maths of ``self_attn``, a
  residual add, ``act(gate) * up``): explained by its two largest candidate sources (the module's
  inputs, its children's outputs, and its own earlier values), added in quadrature.

How a node passes on its inputs' error differs by operator (a linear layer's gain is about 1, not
exactly), so the expected error is scaled by the gain measured on the node's *peers* — the same
tensor of the other decoder layers (``layers.*.mlp.down_proj/output``) — bounded to ``GAIN_RANGE`` so
that a defect repeated in every layer is not explained away. docs/verdict.md states the limits.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .observations import Observation

GAIN_RANGE = (1.0, 1.1)
"""Bounds of the peer gain: below 1 a node is known to damp its inputs' error; above 1.1 an
amplification that every layer shows would hide a defect repeated in every layer."""
MIN_PEERS = 4
"""Peers needed to measure a gain; with fewer the gain is 1."""

RECENT_SOURCES = 4
"""A node whose inputs were not compared is explained by the latest outputs before it, at most this many."""


_DIGITS = re.compile(r"(?<=\.)\d+(?=\.|$)")


@dataclass(frozen=True, slots=True)
class Estimate:
    """The introduced error of one tensor (relative Euclidean distance), the error its sources
    explain (``expected``), who is answerable for it (``owner``: a node) and how it was reached."""

    introduced: float
    expected: float
    owner: str
    evidence: str
    detail: str


def peer_key(observation: Observation) -> str:
    """The node with its layer numbers wildcarded, and the leaf: ``root.model.layers.*.mlp/output``."""
    return f"{_DIGITS.sub('*', observation.node)}/{observation.leaf}"


def excess(error: float, expected: float) -> float:
    """The part of ``error`` that ``expected`` does not explain, in quadrature."""
    return math.sqrt(max(0.0, error * error - expected * expected))


def _quadrature_top2(errors: Sequence[float]) -> float:
    largest = sorted(errors, reverse=True)[:2]
    return math.sqrt(sum(e * e for e in largest))


class ModuleTree:
    """The module tree of one token's observations: parents, children, inputs and outputs."""

    def __init__(self, observations: Sequence[Observation]) -> None:
        self.by_node: dict[str, list[Observation]] = defaultdict(list)
        for observation in observations:
            self.by_node[observation.node].append(observation)
        self.parent = {node: self._find_parent(node) for node in self.by_node}
        self.children: dict[str | None, list[str]] = defaultdict(list)
        for node, parent in self.parent.items():
            self.children[parent].append(node)
        self._sorted_outputs: dict[str | None, tuple[list[int], list[Observation]]] = {}

    def _find_parent(self, node: str) -> str | None:
        while "." in node:
            node = node.rsplit(".", 1)[0]
            if node in self.by_node:
                return node
        return None

    def inputs(self, node: str | None) -> list[Observation]:
        return [o for o in self.by_node.get(node, ()) if o.role == "input" and o.floating]

    def child_outputs(self, node: str | None) -> list[Observation]:
        return [
            o
            for child in self.children.get(node, ())
            for o in self.by_node[child]
            if o.role == "output" and o.floating
        ]

    def has_inputs(self, node: str) -> bool:
        """Whether any input of ``node`` was compared (floating or not)."""
        return any(o.role == "input" for o in self.by_node.get(node, ()))

    def preceding(self, node: str, order: int) -> list[Observation]:
        """The latest ``RECENT_SOURCES`` floating outputs computed before ``order`` outside ``node``,
        in the nearest enclosing module that has any: what ``node``'s inputs most likely came from."""
        scope = self.parent[node]
        while True:
            orders, outputs = self._scope_outputs(scope)
            found: list[Observation] = []
            for position in range(bisect.bisect_left(orders, order) - 1, -1, -1):
                if not self.within(outputs[position], node):
                    found.append(outputs[position])
                    if len(found) == RECENT_SOURCES:
                        break
            if found or scope is None:
                return found[::-1]
            scope = self.parent[scope]

    def _scope_outputs(self, scope: str | None) -> tuple[list[int], list[Observation]]:
        """The floating outputs of ``scope``'s children in execution order, and their orders (cached)."""
        if scope not in self._sorted_outputs:
            outputs = sorted(self.child_outputs(scope), key=lambda o: o.order)
            self._sorted_outputs[scope] = ([o.order for o in outputs], outputs)
        return self._sorted_outputs[scope]

    def within(self, observation: Observation, node: str | None) -> bool:
        return node is None or observation.node == node or observation.node.startswith(node + ".")


def estimate_token(
    observations: Sequence[Observation], uncompared_inputs: Collection[str] = ()
) -> dict[str, Estimate]:
    """The introduced error of every observation of one token (keyed by pair key); observations
    in any order (the golden execution order is used). ``uncompared_inputs``: the nodes with a golden
    input that has no observation (no partner on my side, or unreadable); they, and nodes whose
    inputs were not dumped, are explained by the outputs computed just before them."""
    ordered = sorted(observations, key=lambda o: o.order)
    tree = ModuleTree(ordered)
    producers: dict[tuple, Observation] = {}
    for observation in ordered:
        if observation.role == "output":
            producers.setdefault(observation.golden_print, observation)
    raw: dict[str, tuple[float, str, str, str]] = {}
    inline_values: dict[str | None, list[Observation]] = defaultdict(list)
    uncompared = set(uncompared_inputs)
    for observation in ordered:
        raw[observation.key] = _raw_expected(observation, tree, producers, inline_values, uncompared)
    gains = _peer_gains(ordered, raw)
    estimates = {}
    for observation in ordered:
        expected, owner, evidence, detail = raw[observation.key]
        gain = gains.get(peer_key(observation), 1.0) if evidence in ("leaf", "inline") else 1.0
        scaled = gain * expected
        if gain != 1.0:
            detail += f" x peer gain {gain:.3f}"
        estimates[observation.key] = Estimate(
            excess(observation.error, scaled), scaled, owner, evidence, detail
        )
    return estimates


def _raw_expected(
    observation: Observation,
    tree: ModuleTree,
    producers: dict[tuple, Observation],
    inline_values: dict[str | None, list[Observation]],
    uncompared_inputs: Collection[str],
) -> tuple[float, str, str, str]:
    """(expected error before the peer gain, owner, evidence kind, detail) of one observation."""
    node, parent = observation.node, tree.parent[observation.node]
    if observation.role == "weight":
        return 0.0, node, "weight", "a weight: all of its error is introduced"
    source = producers.get(observation.golden_print)
    carried = source is not None and source is not observation and source.order < observation.order
    if observation.role == "input":
        if carried:
            return _carried(observation, source, parent or node)
        return _inline(observation, parent, tree, inline_values)
    unseen_inputs = node in uncompared_inputs or not tree.has_inputs(node)
    if not tree.children.get(node):
        inputs = tree.inputs(node)
        if unseen_inputs:
            why = "inputs not compared" if node in uncompared_inputs else "no inputs dumped"
            sources = inputs + tree.preceding(node, observation.order)
            if not sources:
                return 0.0, node, "leaf", f"{why}, no output before it"
            worst = max(sources, key=lambda o: o.error)
            expected = _quadrature_top2([o.error for o in sources])
            return expected, node, "leaf", f"{why}: {expected:.3g} from the outputs before it ({worst.key})"
        if not inputs:
            return 0.0, node, "leaf", "no floating-point inputs"
        worst = max(inputs, key=lambda o: o.error)
        return worst.error, node, "leaf", f"inherited {worst.error:.3g} at {worst.leaf}"
    if carried and tree.within(source, node):
        return _carried(observation, source, node)
    return _inline(observation, node, tree, inline_values, unseen_inputs)


def _carried(observation: Observation, source: Observation, owner: str) -> tuple[float, str, str, str]:
    """A value golden carries unchanged from ``source``: carried on my side too, or wired to
    something else by ``owner``."""
    if source.my_print == observation.my_print:
        return source.error, owner, "carried", f"carried from {source.key}"
    return source.error, owner, "wiring", f"golden's is {source.key}, my side's is not"


def _inline(
    observation: Observation,
    owner: str | None,
    tree: ModuleTree,
    inline_values: dict[str | None, list[Observation]],
    unseen_inputs: bool = False,
) -> tuple[float, str, str, str]:
    """A value computed in ``owner``'s own code: explained by its two largest candidate sources (with
    ``unseen_inputs``, the owner's inputs were not compared: the outputs just before it stand in). A
    value outside any module (flat dumps) comes from somewhere the dump does not show: not charged."""
    if owner is None:
        return observation.error, observation.node, "unknown source", "produced by nothing in the dump"
    candidates = tree.inputs(owner) + [o for o in tree.child_outputs(owner) if o.order < observation.order]
    if unseen_inputs:
        candidates += tree.preceding(owner, observation.order)
    candidates += inline_values[owner]
    candidates = [c for c in candidates if c is not observation]
    inline_values[owner].append(observation)
    owner_name = owner or observation.node
    if not candidates:
        return 0.0, owner_name, "inline", f"computed in {owner_name} from no compared tensor"
    expected = _quadrature_top2([c.error for c in candidates])
    return expected, owner_name, "inline", f"computed in {owner_name} from {len(candidates)} tensors"


def _peer_gains(
    ordered: Sequence[Observation], raw: dict[str, tuple[float, str, str, str]]
) -> dict[str, float]:
    """The highest ratio of error to expected error that is not an outlier among each peer group
    (Tukey's upper fence: the third quartile plus 1.5 times the interquartile range), bounded to
    ``GAIN_RANGE``. Ratios scatter around the typical gain (by several percent over the layers of
    a decode token, whose tensors are small): only a node outside that scatter adds error."""
    ratios: dict[str, list[float]] = defaultdict(list)
    for observation in ordered:
        expected, _, evidence, _ = raw[observation.key]
        if evidence in ("leaf", "inline") and expected > 0 and math.isfinite(observation.error):
            ratios[peer_key(observation)].append(observation.error / expected)
    low, high = GAIN_RANGE
    gains = {}
    for key, values in ratios.items():
        if len(values) >= MIN_PEERS:
            first, _, third = statistics.quantiles(values, n=4, method="inclusive")
            gains[key] = min(high, max(low, third + 1.5 * (third - first)))
    return gains
