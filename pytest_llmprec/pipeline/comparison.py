"""``Comparison``: one golden/my dump comparison, pytest-free — dumps, pairs, standards, evaluated
pairs with a background read-ahead, report rows, report files and the summary.

The pytest plugin pulls pairs one item at a time (``prefetch`` the next, ``evaluation`` of the
current); ``llmprec compare`` iterates ``evaluations()``. Both add the rows to ``rows`` and end
with ``write_reports`` and ``summary``, so they write the same files.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..dumps.base import Dump
from ..errors import DumpFormatError, LlmprecError
from ..matching import MatchOptions, MatchResult, NameMapping, Pair, match_dumps, parse_tokens
from ..report.baseline import Baseline
from ..standards import Layer, Standard, resolve_standard, rule_layer
from . import reports
from .evaluate import EvaluatedPair, evaluate_pair
from .row_store import RowStore
from .settings import CompareSettings

READ_AHEAD = 2
"""Pairs read and compared in the background ahead of the one being used."""
AHEAD_ELEMENTS = 1 << 16
"""Read ahead only while recent pairs average at least this many elements: for small tensors the
hand-over between threads costs more than the overlap saves."""


class SetupError(LlmprecError):
    """The comparison cannot start: a dump that cannot be indexed or paired, a bad setting."""


class Comparison:
    def __init__(self, settings: CompareSettings) -> None:
        self.settings = settings
        self.started = time.gmtime()
        self.rows = RowStore()
        self._dumps: dict[str, Dump] = {}
        self._match: MatchResult | None = None
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="llmprec-ahead")
        self._pending: dict[tuple[str, Layer | None], Future[EvaluatedPair]] = {}
        self._elements = float(AHEAD_ELEMENTS)  # running mean of the elements of recent pairs
        try:
            self.tokens = parse_tokens(settings.tokens) if settings.tokens else None
        except ValueError as exc:
            raise SetupError(f"{settings.named('tokens')}={settings.tokens}: {exc}") from None
        try:
            self.mapping = NameMapping.load(settings.mapping_file) if settings.mapping_file else None
        except LlmprecError as exc:
            raise SetupError(f"{settings.named('mapping_file')}: {exc}") from None
        self.op_mapping = None
        if settings.op_mapping_file is not None:
            from ..matching.op_mapping import OpMapping

            try:
                self.op_mapping = OpMapping.load(settings.op_mapping_file)
            except LlmprecError as exc:
                raise SetupError(f"{settings.named('op_mapping_file')}: {exc}") from None
        self.baseline = self._load_baseline()

    def _load_baseline(self) -> Baseline | None:
        path = self.settings.baseline
        if path is None or self.settings.update_baseline:
            return None
        name = self.settings.named("baseline")
        if not path.is_file():
            update = self.settings.named("update_baseline")
            raise SetupError(f"{name}={path}: no such file (create it with {update})")
        try:
            return Baseline.load(path, self.settings.baseline_tolerance)
        except LlmprecError as exc:
            raise SetupError(str(exc)) from None

    # --- dumps and pairs ------------------------------------------------------------------------

    def dump(self, side: str) -> Dump | None:
        """The golden or my dump, indexed once; None when it was not given."""
        path = self.settings.golden if side == "golden" else self.settings.my
        if path is None:
            return None
        if side not in self._dumps:
            from ..dumps import load_dump

            try:
                self._dumps[side] = load_dump(path)
            except (DumpFormatError, OSError) as exc:
                raise SetupError(f"{self.settings.named(side)}={path}: {exc}") from None
        return self._dumps[side]

    def match(self) -> MatchResult:
        """The pairs of the two dumps, in execution order (empty when either dump is not given)."""
        if self._match is None:
            golden, my = self.dump("golden"), self.dump("my")
            if golden is None or my is None:
                self._match = MatchResult()
            else:
                settings = self.settings
                options = MatchOptions(
                    self.tokens,
                    settings.select,
                    self.mapping,
                    level=settings.level,
                    op_mapping=self.op_mapping,
                    mode=settings.match_mode,
                )
                try:
                    self._match = match_dumps(golden, my, options)
                except LlmprecError as exc:
                    raise SetupError(str(exc)) from None
        return self._match

    # --- standards ------------------------------------------------------------------------------

    def layers(self, name: str, marker: Layer | None = None, call: Layer | None = None) -> list[Layer]:
        """Override layers for node ``name`` in increasing precedence: ini profile, ini rules, marker,
        command line, call."""
        settings = self.settings
        layers = [Layer("ini llm_standard", profile=settings.ini_standard)] if settings.ini_standard else []
        matched = rule_layer(settings.rules, name)
        if matched is not None:
            layers.append(matched)
        if marker is not None:
            layers.append(marker)
        layers.append(Layer("command line", settings.cli_standard, settings.cli_thresholds))
        if call is not None:
            layers.append(call)
        return layers

    def standard(
        self,
        name: str,
        golden_dtype: Any,
        my_dtype: Any,
        marker: Layer | None = None,
        call: Layer | None = None,
    ) -> Standard:
        return resolve_standard(golden_dtype, my_dtype, self.layers(name, marker, call))

    # --- evaluating pairs -----------------------------------------------------------------------

    def evaluate(self, pair: Pair, marker: Layer | None = None) -> EvaluatedPair:
        """Read, compare and judge ``pair`` now (``marker``: the layer of a pytest marker)."""

        def standard_for(golden_dtype: Any, my_dtype: Any) -> Standard:
            return self.standard(pair.golden.node, golden_dtype, my_dtype, marker)

        done = evaluate_pair(pair, standard_for, self.baseline, f"baseline {self.settings.baseline}")
        elements = done.result.compared_count if done.result is not None else 0
        self._elements += (elements - self._elements) / 4
        return done

    @property
    def reads_ahead(self) -> bool:
        """Whether ``prefetch`` starts anything: recent pairs were large enough."""
        return self._elements >= AHEAD_ELEMENTS

    def prefetch(self, pair: Pair, marker: Layer | None = None) -> None:
        """Start evaluating ``pair`` in the background (the comparison kernel runs without the GIL);
        at most ``READ_AHEAD`` evaluations are held; none while recent pairs were small."""
        key = (pair.key, marker)
        if key in self._pending or not self.reads_ahead:
            return
        while len(self._pending) >= READ_AHEAD:
            self._pending.pop(next(iter(self._pending))).cancel()
        self._pending[key] = self._ahead.submit(self.evaluate, pair, marker)

    def evaluation(self, pair: Pair, marker: Layer | None = None) -> EvaluatedPair:
        """``pair``'s evaluation, from the background when it was started there."""
        future = self._pending.pop((pair.key, marker), None)
        return future.result() if future is not None else self.evaluate(pair, marker)

    def evaluated(self, pairs: Iterable[Pair], marker: Layer | None = None) -> Iterator[EvaluatedPair]:
        """``pairs`` evaluated in order, reading ahead in the background; the rows are not added."""
        queue = list(pairs)
        for position, pair in enumerate(queue):
            for ahead in queue[position + 1 : position + 1 + READ_AHEAD]:
                self.prefetch(ahead, marker)
            yield self.evaluation(pair, marker)

    def evaluations(self, pairs: Iterable[Pair] | None = None) -> Iterator[EvaluatedPair]:
        """Every pair (default: all matched pairs) evaluated in order, reading ahead in the background;
        each row is added to ``rows``."""
        for done in self.evaluated(self.match().pairs if pairs is None else pairs):
            self.rows.add(done.row)
            yield done

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    # --- the end --------------------------------------------------------------------------------

    def matched(self) -> MatchResult | None:
        """The match result when matching succeeded, else None (nothing raised)."""
        try:
            return self.match()
        except SetupError:
            return None

    def write_reports(self) -> list[Path]:
        """Write the report files (none when nothing was compared and nothing is unmatched)."""
        return reports.write_reports(self.settings, self.started, self.rows, self.matched(), self.baseline)

    def mapping_lines(self, limit: int | None = None) -> list[str]:
        """With ``explain_mapping``: which nodes paired by which rule, and why others did not."""
        match = self.matched()
        if not self.settings.explain_mapping or match is None:
            return []
        from ..matching.explain import explanation_lines, explanation_rows

        return explanation_lines(explanation_rows(match), limit)

    def summary(self, report_paths: Iterable[Path] = ()) -> list[str]:
        """The terminal summary: counts, notes, the first divergence, the worst pairs, report paths."""
        return reports.summary(self.rows, self.matched(), self._dumps, report_paths)

    def close(self) -> None:
        self._ahead.shutdown(wait=False, cancel_futures=True)
        self.rows.close()
