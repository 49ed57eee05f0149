"""The local verdict: each tensor judged by the error its node introduces (``propagation``), against
what one operator of the dtype may add.

A node passes when ``introduced <= max(limit, resolution * expected)``: ``limit`` is the dtype's
per-node limit (``LOCAL_LIMITS``, or the user's ``max_introduced``), and ``resolution`` is how
finely the estimate can tell a node's own error from the error it passes on — none for values
carried unchanged, a third of the inherited error through an operator (whose gain is known to about
5%), half of it through code inside a module (attention maths, residual adds) and of what a replayed
module's children add. docs/verdict.md.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from .observations import FLOAT, MASK, Observation
from .propagation import Estimate, estimate_token
from .replay import replay_estimates

LOCAL_LIMITS = {
    "torch.float64": 1e-8,
    "torch.float32": 1e-4,
    "torch.float16": 2e-3,
    "torch.bfloat16": 1e-2,
    "torch.float8_e4m3fn": 0.08,
    "torch.float8_e4m3fnuz": 0.08,
    "torch.float8_e5m2": 0.15,
    "torch.float8_e5m2fnuz": 0.15,
}
"""The relative Euclidean distance one node may add, by my side's dtype: the 'strict' profile's
distance, a few roundings of the dtype (an honest bf16 operator adds 0.1-0.7%, measured in
benchmarks/bench_verdict.py)."""

REFERENCE_DETAIL = "golden's operator (opcheck reference, float64) on my inputs, against my output"

RESOLUTION = {"leaf": 1 / 4, "inline": 0.5, "replay": 0.5}
"""Share of the expected error below which an introduced error is not told apart from how the node
passes its inputs' error on, by evidence kind (carried values, weights: 0)."""


@dataclass(frozen=True, slots=True)
class LocalVerdict:
    """The local verdict of one tensor: its estimate, the limit applied and where it came from."""

    estimate: Estimate | None
    limit: float
    source: str
    passed: bool
    note: str = ""

    def columns(self) -> dict[str, object]:
        """The report columns of this verdict."""
        estimate = self.estimate
        return {
            "introduced_red": estimate.introduced if estimate else "",
            "inherited_red": estimate.expected if estimate else "",
            "evidence": f"{estimate.evidence}: {estimate.detail}" if estimate else self.note,
            "introduced_by": estimate.owner if estimate else "",
            "local_verdict": "passed" if self.passed else "failed",
        }

    def failure(self, key: str) -> str:
        """The first lines of the failure message of the tensor ``key``."""
        estimate = self.estimate
        assert estimate is not None
        return (
            f"pair {key} introduces error at {estimate.owner}: introduced RED {estimate.introduced:.4g} "
            f"> {self.limit:.4g} [source: {self.source}]\n"
            f"  evidence: {estimate.evidence} ({estimate.detail}); expected from its sources "
            f"{estimate.expected:.4g}"
        )


def limit_for(dtype: str, max_introduced: float | None = None) -> tuple[float, str]:
    """The per-node limit of ``dtype`` and its source; ``max_introduced`` overrides it."""
    if max_introduced is not None:
        return max_introduced, "max_introduced setting"
    if dtype not in LOCAL_LIMITS:
        raise ValueError(f"no local limit for {dtype}")
    return LOCAL_LIMITS[dtype], f"local limit ({dtype})"


def judge_token(
    observations: Sequence[Observation],
    max_introduced: float | None = None,
    replayed: Mapping[str, float] | None = None,
    referenced: Mapping[str, float] | None = None,
    uncompared_inputs: Collection[str] = (),
) -> dict[str, LocalVerdict]:
    """The local verdict of every observation of one token, by pair key. ``replayed`` holds, by pair
    key, the distance of my module's output when replayed on golden's inputs at capture (the exact
    introduced error of its subtree), which replaces the propagation estimate of that output;
    ``referenced`` the distance of my output to golden's operator applied to my inputs (the error
    my operator adds), which replaces it where there is no replay. ``uncompared_inputs``: the nodes
    with a golden input that was not compared (they are explained by the outputs before them)."""
    estimates = estimate_token(observations, uncompared_inputs)
    for observation in observations:
        if referenced and observation.key in referenced:
            estimates[observation.key] = Estimate(
                referenced[observation.key], 0.0, observation.node, "reference", REFERENCE_DETAIL
            )
    if replayed:
        estimates.update(replay_estimates(observations, estimates, replayed))
    verdicts = {}
    for observation in observations:
        verdicts[observation.key] = _judge(observation, estimates[observation.key], max_introduced)
    return verdicts


def _judge(observation: Observation, estimate: Estimate, max_introduced: float | None) -> LocalVerdict:
    if observation.kind == MASK:
        return LocalVerdict(None, 0.0, "", True, "values at the dtype's limits (a mask): not judged by error")
    if observation.kind != FLOAT:
        if observation.error == 0:
            return LocalVerdict(None, 0.0, "", True, "exact tensor, equal")
        exact = Estimate(
            observation.error, 0.0, observation.node, "exact", "integer or bool tensors must be equal"
        )
        return LocalVerdict(exact, 0.0, "exact comparison", False)
    limit, source = limit_for(observation.dtype, max_introduced)
    allowed = max(limit, RESOLUTION.get(estimate.evidence, 0.0) * estimate.expected)
    if allowed > limit:
        source += f"; resolution {RESOLUTION[estimate.evidence]:.2g} x expected {estimate.expected:.3g}"
    return LocalVerdict(estimate, allowed, source, estimate.introduced <= allowed)
