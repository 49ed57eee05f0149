"""The replay estimate: a module's introduced error from its output replayed on golden's inputs.

A replay (``capture/replay.py``) runs my module on golden's inputs of the same call, so its distance
to golden's output is the error the module's whole subtree adds, free of inherited error. For a leaf
that is its own error. A composite module's replay also holds what its children add; their replays
(or, without one, their estimates) say how much, and the module's own code is charged with the
part they do not explain, in quadrature, as the propagation estimate does. A composite output that
is a child's output handed on (a model's last norm output) was not computed by the module's own
code: its replay holds the error of the whole chain of children, amplified on the way, and the
propagation estimate (carried or wiring) stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .observations import Observation
from .propagation import Estimate, ModuleTree, excess

CARRIED = ("carried", "wiring")
"""Propagation evidence of a module output that is a child's output handed on (or, on my side, a
different value handed on instead): the replay does not judge those, the propagation does."""
DETAIL = "my module run on golden's inputs at capture, against golden's output"


def replay_estimates(
    observations: Sequence[Observation],
    estimates: Mapping[str, Estimate],
    replayed: Mapping[str, float],
) -> dict[str, Estimate]:
    """The replay estimate of each observation in ``replayed`` (distances by pair key); ``estimates``
    (the propagation estimates) stand in for children that have no replay."""
    tree = ModuleTree(sorted(observations, key=lambda o: o.order))
    found = {}
    for observation in observations:
        if observation.key not in replayed:
            continue
        distance = replayed[observation.key]
        child_nodes = tree.children.get(observation.node, ())
        if child_nodes and estimates[observation.key].evidence in CARRIED:
            continue  # a child's value handed on: the module's own code did not compute it
        children = [_child_error(tree, child, estimates, replayed) for child in child_nodes]
        expected = sum(error * error for error in children) ** 0.5
        detail = DETAIL if not children else f"{DETAIL}; its {len(children)} children add {expected:.3g}"
        found[observation.key] = Estimate(
            excess(distance, expected), expected, observation.node, "replay", detail
        )
    return found


def _child_error(
    tree: ModuleTree, child: str, estimates: Mapping[str, Estimate], replayed: Mapping[str, float]
) -> float:
    """What ``child``'s subtree adds: the largest replay distance of its outputs, else the largest
    introduced error its outputs are estimated to have."""
    outputs = [o for o in tree.by_node[child] if o.role == "output" and o.floating]
    distances = [replayed[o.key] for o in outputs if o.key in replayed]
    if distances:
        return max(distances)
    return max((estimates[o.key].introduced for o in outputs if o.key in estimates), default=0.0)
