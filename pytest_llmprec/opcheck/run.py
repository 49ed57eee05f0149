"""The opcheck engine shared by ``llmprec opcheck`` and the pytest items: cases of a dump, checked
one by one (or by ``jobs`` worker processes), with progress, rows and a summary.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..dumps.base import Dump
from ..standards import Layer
from .cases import CaseIndex, OpCase
from .check import ERROR, FAILED, NOT_CHECKABLE, OPTIONAL_METRICS, PASSED, CaseResult, Kernel, check_case

if TYPE_CHECKING:
    from torch import nn

MAX_JOBS = 8
SUMMARY_LISTED = 10


@dataclass
class OpcheckPlan:
    """What a run will check: the dump, its cases in execution order, and what was left out."""

    dump: Dump
    cases: list[OpCase]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def empty_reason(self) -> str | None:
        """Why there is nothing to check (None when there are cases)."""
        if self.cases:
            return None
        where = self.dump.root
        if not self.dump.records:
            return f"{where}: no operator tensors found (no op folders with before/ or after/ tensors)"
        kinds = ", ".join(sorted(self.skipped)) or "none"
        return f"{where}: no operator with a reference among the dumped node types ({kinds})"


def plan_opcheck(
    dump: Dump | str | os.PathLike[str],
    *,
    ids: Iterable[str] | str | None = None,
    names: Iterable[str] | str | None = None,
    model: nn.Module | None = None,
) -> OpcheckPlan:
    """Index ``dump`` (a ``Dump`` or a path for ``load_dump``) and find its cases."""
    if not isinstance(dump, Dump):
        from ..dumps import load_dump

        dump = load_dump(dump)
    index = CaseIndex(dump, model=model)
    cases = index.cases(ids, names)
    return OpcheckPlan(dump, cases, dict(index.skipped))


def check_cases(
    cases: Sequence[OpCase],
    *,
    kernels: Mapping[str, Kernel] | None = None,
    device: Any = None,
    layers: Sequence[Layer] = (),
    metrics: Sequence[str] = OPTIONAL_METRICS,
    jobs: int = 1,
) -> Iterator[CaseResult]:
    """Check ``cases``, yielding results in case order. ``kernels`` map op types to a ``Kernel``
    producing the actual outputs (else the dumped ones); ``jobs`` > 1 uses worker processes
    (not with kernels, which need not be picklable)."""
    if not 1 <= jobs <= MAX_JOBS:
        raise ValueError(f"jobs must be 1..{MAX_JOBS}, got {jobs}")
    kernels = dict(kernels or {})
    if jobs == 1 or kernels or len(cases) < 2:
        for case in cases:
            yield check_case(case, kernels.get(case.op_type), layers=layers, metrics=metrics, device=device)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, initargs=(jobs,)) as pool:
        futures = [pool.submit(check_case, case, None, layers=layers, metrics=metrics) for case in cases]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _worker_init(jobs: int) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))


def summary_lines(
    results: Sequence[CaseResult], plan: OpcheckPlan | None = None, report: str | None = None
) -> list[str]:
    """The terminal summary: counts by status, the failed cases, what had no reference."""
    counts = Counter(result.status for result in results)
    parts = [
        f"{counts[status]} {status}" for status in (PASSED, FAILED, ERROR, NOT_CHECKABLE) if counts[status]
    ]
    lines = [f"{len(results)} operator cases checked: " + (", ".join(parts) or "none")]
    bad = [result for result in results if result.status in (FAILED, ERROR)]
    for result in bad[:SUMMARY_LISTED]:
        lines.append(
            f"  {result.status.upper()} {result.case.case_id} ({result.case.op_type}): {result.reason}"
        )
    if len(bad) > SUMMARY_LISTED:
        lines.append(f"  ... and {len(bad) - SUMMARY_LISTED} more (see the report)")
    unchecked = [r for r in results if r.status == NOT_CHECKABLE]
    if unchecked:
        lines.append(f"  not checkable, e.g. {unchecked[0].case.case_id}: {unchecked[0].reason}")
    if plan is not None and plan.skipped:
        kinds = ", ".join(f"{name} ({count})" for name, count in sorted(plan.skipped.items()))
        lines.append(f"  nodes without a reference, not checked: {kinds}")
    if report:
        lines.append(f"report: {report}")
    return lines
