"""``Comparison``: one golden/my dump comparison, pytest-free — dumps, pairs, standards, evaluated
pairs with a background read-ahead, report rows, report files and the summary.

The pytest plugin pulls pairs one item at a time (``prefetch`` the next, ``evaluation`` of the
current); ``llmprec compare`` iterates ``evaluations()``. Both add the rows to ``rows`` and end
with ``write_reports`` and ``summary``, so they write the same files.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dumps.base import Dump
from ..errors import DumpFormatError, LlmprecError
from ..matching import MatchOptions, MatchResult, NameMapping, Pair, match_dumps, parse_tokens
from ..report.baseline import Baseline
from ..standards import Layer, Standard, resolve_standard, rule_layer
from . import reports
from .collector import collector_paused
from .evaluate import EvaluatedPair, evaluate_pair
from .evaluation_process import EvaluationProcess, can_fork
from .local_gate import LocalGate
from .references import CASE_KINDS, References
from .row_store import RowStore
from .settings import CompareSettings

if TYPE_CHECKING:
    from ..logits.pairing import LogitsPair
    from ..logits.run import LogitsComparison, LogitsEvaluation

NOTES_SHOWN = 5
"""Notes of the local gate shown in the summary."""
SLOW_PHASE_S = 1.0
"""Indexing or matching that takes longer is announced (``Comparison.announce``) while it runs."""
READ_AHEAD = 2
SPLIT_PAIRS = 64
"""A token judged at once with at least this many pairs to evaluate, whose golden files average at
least ``SPLIT_BYTES``, has every other pair evaluated in a forked child process (``settings.fork``),
on another core. Small pairs cost little more to evaluate than their results cost to send back."""
SPLIT_BYTES = 1 << 18
SPLIT_SAMPLE = 16
"""Golden files whose sizes estimate a token's average."""
"""Pairs read and compared in the background ahead of the one being used."""
AHEAD_ELEMENTS = 1 << 16
"""Read ahead only while recent pairs average at least this many elements: for small tensors the
hand-over between threads costs more than the overlap saves."""


def _large(pairs: list[Pair]) -> bool:
    """Whether ``SPLIT_SAMPLE`` golden files spread over ``pairs`` average ``SPLIT_BYTES`` or more."""
    step = max(1, len(pairs) // SPLIT_SAMPLE)
    sizes = []
    for pair in pairs[::step]:
        try:
            sizes.append(os.stat(pair.golden.path).st_size)
        except OSError:  # its evaluation says why
            continue
    return bool(sizes) and sum(sizes) >= SPLIT_BYTES * len(sizes)


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
        self._standards: dict[tuple[Any, ...], Standard] = {}  # by dtypes and layers (few distinct)
        self._gate: LocalGate | None = None
        self._process: EvaluationProcess | None = None
        self._process_notes: list[str] = []
        self.announce: Callable[[str], None] | None = None
        """Where a slow indexing or matching phase says what it is doing (None: silent)."""
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
        self.notes: list[str] = []
        """Lines the end of the run adds to the summary (what the baseline update did)."""
        self.baseline = self._load_baseline()
        self.earlier_baseline = self._load_earlier_baseline()
        self._logits: LogitsComparison | None = None
        self._logits_checked = False

    def _load_earlier_baseline(self) -> Baseline | None:
        """The baseline an update replaces, whose rows of pairs not compared this run are kept."""
        path = self.settings.baseline
        if path is None or not self.settings.update_baseline or not path.is_file():
            return None
        try:
            return Baseline.load(path, self.settings.baseline_tolerance)
        except LlmprecError as exc:
            raise SetupError(f"{exc} (remove the file to write a new baseline)") from None

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
                with self._phase(f"indexing the {side} dump {path}"):
                    self._dumps[side] = load_dump(path)
            except (DumpFormatError, OSError) as exc:
                raise SetupError(f"{self.settings.named(side)}={path}: {exc}") from None
        return self._dumps[side]

    def logits(self) -> LogitsComparison | None:
        """The logits comparison when the dumps are compared as per-token logits (logits dumps, torch
        vs ATB at level logits: ``logits.pairing.logits_mode``), else None."""
        if not self._logits_checked:
            self._logits_checked = True
            golden, my = self.dump("golden"), self.dump("my")
            from ..logits.pairing import logits_mode

            if logits_mode(golden, my, self.settings.level):
                from ..logits.metrics import LogitsThresholds
                from ..logits.run import LogitsComparison

                settings = self.settings
                try:
                    thresholds = LogitsThresholds(
                        settings.logits_cosine, settings.logits_kl, settings.logits_l1, settings.logits_dtype
                    )
                except ValueError as exc:
                    raise SetupError(str(exc)) from None
                assert golden is not None and my is not None
                try:
                    self._logits = LogitsComparison(golden, my, thresholds, self.tokens, settings.level)
                except LlmprecError as exc:
                    raise SetupError(str(exc)) from None
        return self._logits

    def pairs(self) -> list[Pair] | list[LogitsPair]:
        """What is compared: the logits pairs of logits dumps, else the matched tensor pairs."""
        logits = self.logits()
        return logits.pairs if logits is not None else self.match().pairs

    def match(self) -> MatchResult:
        """The pairs of the two dumps, in execution order (empty when either dump is not given, and for
        logits dumps, whose pairs are ``pairs()``)."""
        if self._match is None:
            golden, my = self.dump("golden"), self.dump("my")
            if golden is None or my is None or self.logits() is not None:
                self._match = MatchResult()
            else:
                settings = self.settings
                if self.tokens is not None:
                    from ..matching.tokens import missing_tokens_problem

                    problem = missing_tokens_problem(golden, my, self.tokens)
                    if problem is not None:
                        raise SetupError(f"{settings.named('tokens')}={settings.tokens}: {problem}")
                options = MatchOptions(
                    self.tokens,
                    settings.select,
                    self.mapping,
                    level=settings.level,
                    op_mapping=self.op_mapping,
                    mode=settings.match_mode,
                )
                try:
                    with self._phase(f"matching {len(golden)} golden and {len(my)} my tensors"):
                        self._match = match_dumps(golden, my, options)
                except LlmprecError as exc:
                    raise SetupError(str(exc)) from None
        return self._match

    @contextlib.contextmanager
    def _phase(self, what: str) -> Iterator[None]:
        """A bulk phase: announced when slow, with the garbage collector paused (``collector``)."""
        with collector_paused(), self._announced(what):
            yield

    @contextlib.contextmanager
    def _announced(self, what: str) -> Iterator[None]:
        """Announce ``what`` once it has run for ``SLOW_PHASE_S``, and then its end."""
        if self.announce is None:
            yield
            return
        announce, start, started = self.announce, time.perf_counter(), threading.Event()

        def begin() -> None:
            started.set()
            announce(f"llmprec: {what} ...")

        timer = threading.Timer(SLOW_PHASE_S, begin)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            timer.join()
            if started.is_set():
                announce(f"llmprec: {what}: done in {time.perf_counter() - start:.1f} s")

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
        layers = self.layers(name, marker, call)
        key = (golden_dtype, my_dtype, *layers)
        try:
            return self._standards[key]
        except KeyError:
            standard = self._standards[key] = resolve_standard(golden_dtype, my_dtype, layers)
            return standard
        except TypeError:  # a layer holding something unhashable
            return resolve_standard(golden_dtype, my_dtype, layers)

    # --- evaluating pairs -----------------------------------------------------------------------

    def evaluate(self, pair: Any, marker: Layer | None = None) -> EvaluatedPair | LogitsEvaluation:
        """Read, compare and judge ``pair`` now (``marker``: the layer of a pytest marker; logits pairs
        are judged by the logits thresholds)."""
        logits = self.logits()
        if logits is not None:
            return logits.evaluate(pair)

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

    def prefetch(self, pair: Any, marker: Layer | None = None) -> None:
        """Start evaluating ``pair`` in the background (the comparison kernel runs without the GIL);
        the pair in use and at most ``READ_AHEAD`` after it are held; none while recent pairs were small."""
        if self._process is not None and self._process.plans(pair.key):
            return
        key = (pair.key, marker)
        held = marker is None and self._gate is not None and pair.key in self._gate.context
        if key in self._pending or held or not self.reads_ahead:
            return
        while len(self._pending) > READ_AHEAD:  # the pair in use and READ_AHEAD after it are kept
            self._pending.pop(next(iter(self._pending))).cancel()
        self._pending[key] = self._ahead.submit(self.evaluate, pair, marker)

    def evaluation(
        self, pair: Any, marker: Layer | None = None, verdict: str | None = None
    ) -> EvaluatedPair | LogitsEvaluation:
        """``pair``'s evaluation, from the background when it was started there; a tensor pair is
        judged by the error its node introduces under the local verdict (``verdict``, e.g. a
        marker's, else the settings'); taken from the evaluation process when it made it."""
        if self._process is not None and marker is None and verdict is None:
            made = self._process.take(pair.key)
            if made is not None:
                row, message = made
                return EvaluatedPair(pair, message=message, _row=row)
        gate = self._gate
        if gate is not None and marker is None and pair.key in gate.context:
            done = gate.context.pop(pair.key)
        else:
            done = self._evaluation(pair, marker)
        if self._logits is not None:
            return done
        local = (verdict or self.settings.verdict) == "local" and self.settings.match_mode == "tensors"
        return self.local_gate(force=True).judged(done, self._evaluate_all) if local else done

    def _evaluation(self, pair: Pair, marker: Layer | None = None) -> EvaluatedPair:
        future = self._pending.pop((pair.key, marker), None)
        return future.result() if future is not None else self.evaluate(pair, marker)

    def _evaluate_all(self, pairs: list[Pair]) -> Iterator[EvaluatedPair]:
        """``pairs`` evaluated (in no particular order), reading ahead; for the local gate."""
        if self.settings.fork and len(pairs) >= SPLIT_PAIRS and _large(pairs) and self._threads_stopped():
            yield from self._evaluate_halves(pairs)
            return
        yield from self._evaluate_in_order(pairs)

    def _threads_stopped(self) -> bool:
        """Whether this process can fork now: on Linux, once the read-ahead and kernel threads have
        finished their work and ended (they start again when next needed), and no other remains."""
        if not sys.platform.startswith("linux"):
            return False
        from ..compare import native

        self._ahead.shutdown(wait=True)
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="llmprec-ahead")
        native.stop_threads()
        return can_fork()

    def _evaluate_halves(self, pairs: list[Pair]) -> Iterator[EvaluatedPair]:
        """Every other pair evaluated in a forked child while this process evaluates the rest (the
        kernel and the Python work of both halves run on two cores); whatever the child does not
        deliver is evaluated here."""
        theirs = pairs[1::2]
        child = EvaluationProcess(theirs, self._child_evaluation(theirs))
        try:
            yield from self._evaluate_in_order(pairs[0::2], child.drain)
            for pair in theirs:
                made = child.take(pair.key)
                if made is None:
                    yield self._evaluation(pair)
                else:
                    result, verdict, regressions, message, row = made
                    yield EvaluatedPair(pair, result, verdict, regressions, message, row)
        finally:
            child.stop()
            if child.problem is not None:
                self._process_notes.append(
                    f"a child process evaluating half of a token stopped ({child.problem}); its pairs "
                    "were evaluated in this process"
                )

    def _child_evaluation(self, pairs: list[Pair]) -> Callable[[Pair], tuple]:
        """What the child sends for each of ``pairs`` (evaluated in order, reading ahead): the
        evaluation without its pair (the row only for pairs that could not be compared)."""
        position = {pair.key: index for index, pair in enumerate(pairs)}

        def evaluate(pair: Pair) -> tuple:
            start = position[pair.key] + 1
            for ahead in pairs[start : start + READ_AHEAD]:
                self.prefetch(ahead)
            done = self._evaluation(pair)
            row = done.row if done.result is None else None
            return done.result, done.verdict, done.regressions, done.message, row

        return evaluate

    def _evaluate_in_order(
        self, pairs: list[Pair], between: Callable[[], None] | None = None
    ) -> Iterator[EvaluatedPair]:
        """``pairs`` evaluated in order, reading ahead; ``between`` is called after each."""
        for position, pair in enumerate(pairs):
            for ahead in pairs[position + 1 : position + 1 + READ_AHEAD]:
                self.prefetch(ahead)
            done = self._evaluation(pair)
            if between is not None:
                between()
            yield done

    def evaluate_in_child(self, pairs: Sequence[Pair]) -> bool:
        """Evaluate ``pairs``, in this order, in a forked child process from now on (see
        ``evaluation_process``); ``evaluation`` with no marker layer or verdict of its own takes them
        from there. False when this process cannot fork (then nothing changes)."""
        if not pairs or self._process is not None or not can_fork():
            return False

        def row_and_message(pair: Pair) -> tuple[dict[str, Any], str | None]:
            done = self.evaluation(pair)
            return done.row, done.message

        def closing_notes() -> list[str]:
            return self._process_notes + (self._gate.all_notes() if self._gate is not None else [])

        self._process = EvaluationProcess(pairs, row_and_message, closing_notes)
        return True

    def stop_child(self) -> None:
        """End the evaluation process, keeping its notes for the summary."""
        process, self._process = self._process, None
        if process is None:
            return
        process.stop()
        self._process_notes += process.notes()
        if process.problem is not None:
            self._process_notes.append(
                f"the evaluation process stopped ({process.problem}); the pairs after it were evaluated "
                "in pytest's process"
            )

    def local_gate(self, force: bool = False) -> LocalGate | None:
        """The local gate when the settings judge introduced error (or ``force``), else None."""
        if self._gate is None and (force or self.settings.judges_locally):
            golden, my = self.dump("golden"), self.dump("my")
            matched = self.match()
            pairs = matched.pairs
            replays = my.replays if my else {}
            references = (
                References(golden, pairs) if golden is not None and golden.kind in CASE_KINDS else None
            )
            golden_only = [u.record for u in matched.unmatched if u.side == "golden"]
            self._gate = LocalGate(pairs, self.settings.max_introduced, replays, references, golden_only)
        return self._gate

    def evaluated(self, pairs: Iterable[Any], marker: Layer | None = None) -> Iterator[Any]:
        """``pairs`` evaluated in order, reading ahead in the background; the rows are not added."""
        queue = list(pairs)
        for position, pair in enumerate(queue):
            for ahead in queue[position + 1 : position + 1 + READ_AHEAD]:
                self.prefetch(ahead, marker)
            yield self.evaluation(pair, marker)

    def evaluations(self, pairs: Iterable[Any] | None = None) -> Iterator[EvaluatedPair | LogitsEvaluation]:
        """Every pair (default: ``pairs()``) evaluated in order, reading ahead in the background;
        each row is added to ``rows``."""
        for done in self.evaluated(self.pairs() if pairs is None else pairs):
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
        """Write the report files (none when nothing was compared and nothing is unmatched); a report
        that cannot be written adds one line to the summary, nothing is raised; for logits dumps
        ``logits_cmp_res_{ts}.csv``."""
        logits = self._logits
        if logits is not None:
            if not self.rows and not logits.problems:
                return []
            rows = list(self.rows.ordered()) + logits.problem_rows()
            return [logits.write_report(self.settings.report_dir, self.started, rows)]
        try:
            with collector_paused():
                return reports.write_reports(
                    self.settings,
                    self.started,
                    self.rows,
                    self.matched(),
                    self.baseline,
                    self.earlier_baseline,
                    self.notes,
                )
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            self.notes.append(f"reports not written{where}: {exc.strerror or exc}")
            return []

    def mapping_lines(self, limit: int | None = None) -> list[str]:
        """With ``explain_mapping``: which nodes paired by which rule, and why others did not."""
        match = self.matched()
        if not self.settings.explain_mapping or match is None:
            return []
        from ..matching.explain import explanation_lines, explanation_rows

        return explanation_lines(explanation_rows(match), limit)

    def summary(self, report_paths: Iterable[Path] = ()) -> list[str]:
        """The terminal summary: counts, notes, the first divergence, the worst pairs, report paths; for
        logits dumps each case's class and first diverging token."""
        if self._logits is not None:
            from ..logits.report import summary_lines

            rows = list(self.rows.ordered()) + self._logits.problem_rows()
            return summary_lines(rows, [str(path) for path in report_paths]) if rows else []
        all_notes = self._gate.all_notes() if self._gate is not None else []
        all_notes = list(dict.fromkeys(self._process_notes + all_notes))
        gate_notes = all_notes[:NOTES_SHOWN]
        if len(all_notes) > NOTES_SHOWN:
            gate_notes.append(f"... and {len(all_notes) - NOTES_SHOWN} more replays or references not used")
        lines = reports.summary(self.rows, self.matched(), self._dumps, report_paths, gate_notes)
        return lines + self.notes if lines else list(self.notes)

    def close(self) -> None:
        self.stop_child()
        self._ahead.shutdown(wait=False, cancel_futures=True)
        self.rows.close()
