"""Reference evidence of the local verdict: golden's operator applied to my inputs.

Where golden's node is an operator the opcheck library knows (``opcheck.CaseIndex``: its type,
parameters, and weights from golden's ``weights/`` folder when dumped), the reference output on my
side's inputs, in float64, against my output is what my operator — kernel and parameters — adds,
whatever its inputs inherited. A wrong operator (GELU for SiLU) shows, since golden's type is used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from ..compare.dispatch import compare_any
from ..dumps.base import Dump
from ..matching import Pair

CASE_KINDS = ("torch", "atb", "fx")
"""Dump kinds whose nodes ``opcheck.CaseIndex`` turns into operator cases."""
_UNUSABLE = (ArithmeticError, LookupError, OSError, RuntimeError, TypeError, ValueError)


class References:
    """Reference distances of my outputs, for the pairs of one comparison."""

    def __init__(self, golden: Dump, pairs: Iterable[Pair]) -> None:
        from ..opcheck.cases import CaseIndex

        self.index = CaseIndex(golden)
        self._mine = {(p.golden.path, p.golden.member): p.my for p in pairs}
        self._outputs: dict[tuple[Any, ...], list[Any] | None] = {}
        self.notes: list[str] = []
        """References that could not be computed, one line each."""

    def distance(self, pair: Pair) -> float | None:
        """RED of ``pair``'s my output to golden's operator on my inputs, or None (no reference for
        the node, or one that cannot be computed: noted)."""
        from ..opcheck.cases import load_outputs

        golden = pair.golden
        if golden.role != "output":
            return None
        records = self.index.records(golden.token, golden.node, golden.rank)
        if not any(record.role == "input" for record in records):
            return None  # nothing to apply golden's operator to (and no torch import for it)
        if self.index.lacks_weights(golden.token, golden.node, golden.rank):
            return None  # a Linear of a dump without weights: no reference (and no torch import)
        case = self.index.case(golden.token, golden.node, golden.rank)
        if case is None or not case.checkable or golden not in case.outputs:
            return None
        references = self._references(case)
        if references is None:
            return None
        reference = references[case.outputs.index(golden)]
        try:
            mine = dataclasses.replace(case, outputs=[pair.my], output_dtypes=[pair.my.original_dtype])
            result = compare_any(reference, load_outputs(mine)[0])
        except _UNUSABLE as exc:
            self.notes.append(f"{pair.key}: reference not used: {exc}")
            return None
        if not result.comparable or not math.isfinite(result.relative_euclidean_distance):
            self.notes.append(f"{pair.key}: reference not used: {result.fail_reason or 'not finite'}")
            return None
        return result.relative_euclidean_distance

    def _references(self, case: Any) -> list[Any] | None:
        key = (case.token, case.node, case.rank)
        if key not in self._outputs:
            self._outputs[key] = self._compute(case)
        return self._outputs[key]

    def _compute(self, case: Any) -> list[Any] | None:
        from ..opcheck.cases import load_inputs
        from ..opcheck.check import case_reference

        mine = [self._mine.get((record.path, record.member)) for record in case.inputs]
        if any(record is None for record in mine):
            return None  # an input without a partner (a golden-only tensor): no like-for-like inputs
        mine_case = dataclasses.replace(case, inputs=mine, input_dtypes=[r.original_dtype for r in mine])
        try:
            return case_reference(mine_case, inputs=load_inputs(mine_case))
        except _UNUSABLE as exc:
            self.notes.append(f"{case.node} (token {case.token}): reference not used: {exc}")
            return None
