"""``LogitsComparison``: the logits half of a dump comparison, pytest-free.

Each pair's metrics are computed once and kept (a token's outcome depends on the earlier tokens
of its case: failures after a near-tie flip are skipped), so items may run in any order and in
any process. Used by ``pipeline.Comparison`` (pytest, ``llmprec compare``) and ``llmprec logitscmp``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dumps.base import Dump, TensorRecord
from ..dumps.ordering import token_sort_key
from ..errors import DumpFormatError
from ..report.rows import STAMP_FORMAT
from . import report
from .metrics import LogitsMetrics, LogitsThresholds, compare_logits
from .pairing import LogitsPair, LogitsProblem, logits_pairs, problems
from .tokens import NEAR_TIE, ONLY_GOLDEN, ONLY_MY, SAME, classify, outcome, token_verdict


@dataclass
class LogitsEvaluation:
    """One evaluated pair: its row, metrics (None when one-sided), token verdict, outcome
    (``passed``/``failed``/``skipped``) and the message of a failure or skip."""

    pair: LogitsPair
    row: dict[str, Any]
    metrics: LogitsMetrics | None
    verdict: str
    outcome: str
    message: str | None = None

    @property
    def passed(self) -> bool:
        return self.outcome != "failed"


class LogitsComparison:
    def __init__(
        self,
        golden: Dump,
        my: Dump,
        thresholds: LogitsThresholds | None = None,
        tokens: frozenset | None = None,
        level: str | None = None,
    ) -> None:
        self.thresholds = thresholds or LogitsThresholds()
        self.pairs = logits_pairs(golden, my, tokens, level)
        self.problems: list[LogitsProblem] = problems(golden, "golden") + problems(my, "my")
        self._metrics: dict[str, tuple[LogitsMetrics | None, str]] = {}
        self._cases: dict[str, list[LogitsPair]] = defaultdict(list)
        for pair in self.pairs:
            self._cases[pair.case].append(pair)
        for case_pairs in self._cases.values():
            case_pairs.sort(key=lambda pair: token_sort_key(pair.token))

    def problem_rows(self) -> list[dict[str, Any]]:
        return [report.problem_row(problem) for problem in self.problems]

    def metrics(self, pair: LogitsPair) -> tuple[LogitsMetrics | None, str]:
        """The pair's metrics and token verdict, computed once (a file that cannot be read is ``invalid``)."""
        known = self._metrics.get(pair.key)
        if known is None:
            known = self._metrics[pair.key] = self._compute(pair)
        return known

    def _compute(self, pair: LogitsPair) -> tuple[LogitsMetrics | None, str]:
        if pair.golden is None:
            return None, ONLY_MY
        if pair.my is None:
            return None, ONLY_GOLDEN
        try:
            golden, my = load_logits(pair.golden), load_logits(pair.my)
            found = compare_logits(golden, my, self.thresholds)
        except (DumpFormatError, OSError, TypeError, ValueError, RuntimeError) as exc:
            found = LogitsMetrics(fail_reason=f"cannot read or compare: {exc}")
        return found, token_verdict(found)

    def evaluate(self, pair: LogitsPair) -> LogitsEvaluation:
        metrics, verdict = self.metrics(pair)
        earlier = []
        for other in self._cases[pair.case]:
            if other is pair:
                break
            earlier.append((other.token, self.metrics(other)[1]))
        result, skip_reason = outcome(verdict, classify(earlier))
        row = report.pair_row(pair, metrics, verdict, result)
        message = skip_reason if result == "skipped" else None
        if result == "failed":
            message = failure_message(pair, metrics, verdict)
        return LogitsEvaluation(pair, row, metrics, verdict, result, message)

    def write_report(self, folder: Path, started: time.struct_time, rows: list[dict[str, Any]]) -> Path:
        return report.write_report(folder, time.strftime(STAMP_FORMAT, started), rows)


def load_logits(record: TensorRecord) -> Any:
    """The record's tensor: a zero-copy view of the memory-mapped file where the torch-free reader
    reads it (``formats.read_raw``), else ``torch.load``."""
    raw = record.load_raw()
    return raw.to_torch() if raw is not None else record.load()


def failure_message(pair: LogitsPair, metrics: LogitsMetrics | None, verdict: str) -> str:
    """What failed for the token: the first differing position, both tokens and the golden's margin."""
    head = f"{pair.key}: {verdict}"
    if metrics is None:
        side = "golden" if pair.golden is not None else "my"
        return f"{head}: {pair.file_name} is only in the {side} dump"
    if not metrics.compared:
        paths = f"golden: {pair.golden.describe()}\n  my:     {pair.my.describe()}"  # type: ignore[union-attr]
        return f"{head}: {metrics.fail_reason}\n  {paths}"
    lines = [head, *describe_metrics(metrics)]
    lines += [f"  golden: {pair.golden.describe()}", f"  my:     {pair.my.describe()}"]  # type: ignore[union-attr]
    return "\n".join(lines)


def describe_metrics(metrics: LogitsMetrics) -> list[str]:
    """The lines of a logits failure: tokens and margin, then msit's metrics against the rule."""
    lines = [f"  top-1 token: golden {metrics.top1_golden}, my {metrics.top1_my}"]
    if not metrics.top1_match:
        kind = "a near tie" if token_verdict(metrics) in (NEAR_TIE, SAME) else "a real margin"
        lines.append(
            f"  golden margin between them {metrics.flip_margin:.6g} vs tolerance "
            f"{metrics.tie_tolerance:.3g} ({metrics.dtype}): {kind}"
        )
    lines.append(
        f"  golden's top-1 margin {metrics.golden_margin:.6g}, top-k overlap {metrics.topk_overlap:.3g}"
    )
    lines.append(
        f"  cosine {metrics.cosine_similarity!r}, kl {metrics.kl_divergence!r}, l1 {metrics.l1_norm!r}, "
        f"ulp_max_diff {metrics.ulp_max_diff!r} vs ulp {metrics.ulp!r}: msit passed={metrics.passed}"
    )
    return lines
