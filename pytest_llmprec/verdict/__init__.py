"""The local verdict: the error each node of a dump comparison introduces, not the error it inherits.

``observe`` turns a compared pair into an ``Observation``; ``estimate_token`` (``propagation``)
estimates every tensor's introduced error from one token's observations; ``judge_token``
(``local``) judges them against the per-node limits. docs/verdict.md.
"""

from .local import LOCAL_LIMITS, LocalVerdict, judge_token, limit_for
from .observations import Observation, observe
from .propagation import Estimate, estimate_token

__all__ = [
    "LOCAL_LIMITS",
    "Estimate",
    "LocalVerdict",
    "Observation",
    "estimate_token",
    "judge_token",
    "limit_for",
    "observe",
]
