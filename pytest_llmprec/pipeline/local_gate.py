"""The local gate: an evaluated pair re-judged by the error its node introduces.

The local verdict of a tensor needs every tensor of its token (its sources come earlier in execution
order, its node's inputs are recorded with the node), so the first pair asked for of a token has its
whole token evaluated; the other evaluations are kept until their items ask for them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..compare.dispatch import compare_any
from ..dumps.base import TensorRecord
from ..errors import DumpFormatError
from ..matching import Pair
from ..report.rows import FAILED, PASSED
from ..standards import Verdict
from ..standards.profiles import DEFAULT_SOURCE
from ..verdict.local import LocalVerdict, judge_token
from ..verdict.observations import observe
from .collector import collector_paused
from .evaluate import EvaluatedPair, read_pair
from .references import References

INFERRED = ("leaf", "inline", "unknown source")
"""Evidence kinds inferred from accumulated errors, which a reference can check."""
SUSPECT_SHARE = 0.5
"""An inferred introduced error above this share of its allowed limit is checked against the
operator reference where golden's node has one (the reference then judges it)."""


class LocalGate:
    """Local verdicts of one comparison's pairs, judged a token at a time."""

    def __init__(
        self,
        pairs: Iterable[Pair],
        max_introduced: float | None = None,
        replays: Mapping[tuple[Any, str, str], TensorRecord] | None = None,
        references: References | None = None,
        golden_only: Iterable[TensorRecord] = (),
    ) -> None:
        self.max_introduced = max_introduced
        self.references = references
        """Golden's operators on my inputs (``references.References``), or None."""
        self.replays = replays or {}
        """My dump's replay outputs by (token, node, leaf, rank) (``Dump.replays``)."""
        self._tokens: dict[Any, list[Pair]] = {}
        for pair in pairs:
            self._tokens.setdefault(pair.token, []).append(pair)
        self._uncompared: dict[Any, set[str]] = {}
        """Nodes with a golden input that has no partner on my side, by token."""
        for record in golden_only:
            if record.role == "input":
                self._uncompared.setdefault(record.token, set()).add(record.node)
        self._stand_ins: list[tuple[int, str]] = []
        self._verdicts: dict[str, LocalVerdict] = {}
        self._judged: set[Any] = set()
        self.notes: list[str] = []
        """Replays that could not be used, one line each."""
        self.context: dict[str, EvaluatedPair] = {}
        """Evaluations made for a token's judgement, waiting for their own items."""

    def all_notes(self) -> list[str]:
        """The replays and references that could not be used, and the outputs estimated without
        their inputs, one line each."""
        notes = list(self.notes)
        if self._stand_ins:
            notes.append(
                f"{len(self._stand_ins)} outputs estimated from the outputs before them: their node has "
                f"a golden input without a readable partner on my side (first: {min(self._stand_ins)[1]})"
            )
        return notes + (self.references.notes if self.references is not None else [])

    def judged(
        self, done: EvaluatedPair, evaluate_all: Callable[[Sequence[Pair]], Iterable[EvaluatedPair]]
    ) -> EvaluatedPair:
        """``done`` with its row, message and verdict turned to the local verdict; ``evaluate_all``
        evaluates the other pairs of its token when the token is not judged yet."""
        token = done.pair.token
        if token not in self._judged:
            with collector_paused():  # the token's evaluations all live until their items ask
                self._judge(token, done, evaluate_all)
        verdict = self._verdicts.get(done.pair.key)
        if verdict is not None and verdict.passed:
            del self._verdicts[done.pair.key]  # a pair is judged once; a failing one may be run again
        if done.result is None or verdict is None:
            return done
        return _localised(done, verdict)

    def _judge(self, token: Any, done: EvaluatedPair, evaluate_all) -> None:
        others = [
            p for p in self._tokens.get(token, ()) if p.key != done.pair.key and p.key not in self.context
        ]
        for evaluated in evaluate_all(others):
            self.context[evaluated.pair.key] = evaluated
        evaluations = [
            done,
            *(self.context[p.key] for p in self._tokens.get(token, ()) if p.key in self.context),
        ]
        judged = [e for e in evaluations if e.result is not None]
        replayed = {}
        for evaluated in judged:
            distance = self._replayed(evaluated)
            if distance is not None:
                replayed[evaluated.pair.key] = distance
        uncompared = set(self._uncompared.get(token, ()))
        uncompared.update(
            e.pair.golden.node for e in evaluations if e.result is None and e.pair.golden.role == "input"
        )
        observations = [observe(e.pair, e.result) for e in judged]
        verdicts = judge_token(observations, self.max_introduced, replayed, uncompared_inputs=uncompared)
        referenced = self._referenced(judged, verdicts)
        if referenced:
            verdicts = judge_token(observations, self.max_introduced, replayed, referenced, uncompared)
        self._verdicts.update(verdicts)
        self._stand_ins += [
            (o.order, o.key) for o in observations if o.node in uncompared and o.role == "output"
        ]
        self._judged.add(token)

    def _referenced(
        self, judged: Sequence[EvaluatedPair], verdicts: Mapping[str, LocalVerdict]
    ) -> dict[str, float]:
        """Reference distances of the outputs whose estimate is suspect: an inference from the
        dumps (not a replay, not exact) above ``SUSPECT_SHARE`` of what it is allowed."""
        if self.references is None:
            return {}
        referenced = {}
        for evaluated in judged:
            verdict = verdicts.get(evaluated.pair.key)
            estimate = verdict.estimate if verdict is not None else None
            if (
                estimate is None
                or estimate.evidence not in INFERRED
                or evaluated.pair.golden.role != "output"
            ):
                continue
            if estimate.introduced > SUSPECT_SHARE * verdict.limit:
                distance = self.references.distance(evaluated.pair)
                if distance is not None:
                    referenced[evaluated.pair.key] = distance
        return referenced

    def _replayed(self, evaluated: EvaluatedPair) -> float | None:
        """The distance of ``evaluated``'s replay output to golden's output, or None (no replay, or one
        that cannot be used: the pair keeps the propagation estimate, and its note says why)."""
        pair = evaluated.pair
        replay = self.replays.get((pair.my.token, pair.my.node, pair.my.leaf, pair.my.rank))
        if replay is None or pair.golden.role != "output":
            return None
        try:
            golden, replayed = read_pair(Pair(pair.key, pair.golden, replay, pair.token, pair.order))
            result = compare_any(golden, replayed)
        except (DumpFormatError, OSError, TypeError, ValueError) as exc:
            self.notes.append(f"{pair.key}: replay {replay.describe()} not used: {exc}")
            return None
        if not result.comparable or not math.isfinite(result.relative_euclidean_distance):
            reason = result.fail_reason or "its distance to golden's output is not finite"
            self.notes.append(f"{pair.key}: replay {replay.describe()} not used: {reason}")
            return None
        return result.relative_euclidean_distance


def _enforced(verdict: Verdict) -> bool:
    """Whether the accumulated verdict fails on something the local verdict does not replace: a
    threshold the user set (command line, ini, marker, a chosen profile) or a problem (NaN/Inf
    positions differ, element counts differ); the dtype defaults are replaced."""
    if verdict.problems:
        return True
    for outcome in verdict.failures:
        options = getattr(outcome.check, "options", (outcome.check,))
        if any(not t.source.startswith(DEFAULT_SOURCE) for t in options):
            return True
    return False


def _localised(done: EvaluatedPair, verdict: LocalVerdict) -> EvaluatedPair:
    """``done`` judged by ``verdict``: its row gets the local columns, its verdict and message follow
    the local verdict, the thresholds the user set and the baseline."""
    row = dict(done.row)
    accumulated = row["verdict"]
    row.update(verdict.columns())
    row["local_limit"] = verdict.limit if verdict.estimate else ""
    row["accumulated_verdict"] = accumulated
    enforced = done.verdict is not None and _enforced(done.verdict)
    checks, sources = (row["failed_checks"], row["check_sources"]) if enforced else ("", "")
    if done.regressions and not enforced:
        checks = "; ".join(done.regressions)
        sources = "baseline"
    lines = []
    if not verdict.passed:
        estimate = verdict.estimate
        lines.append(verdict.failure(done.pair.key))
        local_check = f"introduced_red = {estimate.introduced:.6g} (needs <= {verdict.limit:.6g})"
        checks = "; ".join(filter(None, [local_check, checks]))
        sources = "; ".join(filter(None, [verdict.source, sources]))
    row["failed_checks"], row["check_sources"] = checks, sources
    failed = not verdict.passed or enforced or bool(done.regressions)
    row["verdict"] = FAILED if failed else PASSED
    if not failed:
        return dataclasses.replace(done, message=None, _row=row)
    if enforced or done.regressions:
        lines.append(done.message)  # the accumulated failure, regressions and both paths
    else:
        result = done.result
        lines.append(
            f"  accumulated: cosine_similarity {result.cosine_similarity:.6g}, relative_euclidean_distance "
            f"{result.relative_euclidean_distance:.6g} ({accumulated} by the {row.get('standard')} standard)"
        )
        lines.append(f"  golden: {done.pair.golden.describe()}\n  my:     {done.pair.my.describe()}")
    return dataclasses.replace(done, message="\n".join(lines), _row=row)
