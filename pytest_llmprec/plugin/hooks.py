"""The hooks of a configured run: items, read-ahead, row transport, reports, summary.

The comparison (``pipeline.Comparison``) is created on first need, so a run that uses no feature of
this plugin never imports torch through it. Every process (a serial run, each xdist worker, the
xdist controller) builds it from the same settings; workers compare pairs and send their report
rows to the controller on the test reports; only the controller (or the serial process) writes the
report files and the summary.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..errors import LlmprecError
from ..pipeline.settings import VERDICTS, CompareSettings
from ..standards import Layer
from .items import ID_PREFIX

if TYPE_CHECKING:
    from ..pipeline import Comparison


def marker_layer(item: pytest.Item) -> Layer | None:
    """The override layer of the closest ``llm_precision`` marker of ``item``, or None."""
    marker = item.get_closest_marker("llm_precision")
    if marker is None:
        return None
    options = dict(marker.kwargs)
    options.pop("verdict", None)
    try:
        return Layer.from_keywords("marker llm_precision", profile=options.pop("standard", None), **options)
    except ValueError as exc:  # fails the marked test, not the run
        raise LlmprecError(f"@pytest.mark.llm_precision: {exc}") from None


def marker_verdict(item: pytest.Item) -> str | None:
    """The ``verdict`` of the closest ``llm_precision`` marker of ``item`` (``local`` or
    ``accumulated``), or None; another value fails the item."""
    marker = item.get_closest_marker("llm_precision")
    verdict = marker.kwargs.get("verdict") if marker is not None else None
    if verdict is not None and verdict not in VERDICTS:
        raise LlmprecError(
            f"@pytest.mark.llm_precision(verdict={verdict!r}): choose one of {', '.join(VERDICTS)}"
        )
    return verdict


MAPPING_LINES = 60
"""Lines of ``--llm-explain-mapping`` printed in the terminal summary (all with -v; the CSV has all)."""


class LlmPlugin:
    def __init__(self, config: pytest.Config, settings: CompareSettings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self._comparison: Comparison | None = None
        self.report_paths: list[Path] = []
        self._silent = False
        self.pair_tests: dict[str, str] = {}
        """Outcome of each hand-written test that takes ``llm_pair``, counted apart from the pairs."""
        self.html_table = config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))
        """Whether pytest-html writes a report (``--html``): its table row, made at the test's
        teardown, shows a few columns of the item's first row (``html_extras``)."""

    def comparison(self) -> Comparison:
        if self._comparison is None:
            from ..pipeline import Comparison, SetupError

            try:
                self._comparison = Comparison(self.settings)
            except SetupError as exc:
                raise pytest.UsageError(str(exc)) from None
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None and not self.is_worker:
                self._comparison.announce = reporter.write_line
            workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
            if self.is_worker and workers > 1:  # share the cores between the workers' comparisons
                from ..compare.native import set_threads

                set_threads(max(1, (os.cpu_count() or 1) // workers))
        return self._comparison

    def active_comparison(self) -> Comparison | None:
        """The comparison if this run compares dumps or already used one (it is created then)."""
        if self._comparison is None and self.settings.compares_dumps:
            return self.comparison()
        return self._comparison

    def matched_pairs(self):
        """The matched pairs; a dump that cannot be indexed or paired is a usage error."""
        from ..pipeline import SetupError

        try:
            return self.comparison().match()
        except SetupError as exc:
            raise pytest.UsageError(str(exc)) from None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.settings.compares_dumps and not self.is_worker:  # the xdist controller reports it too
            from ..pipeline.reports import structure_lines

            match = self.matched_pairs()
            lines = [_crowded_workers_line(self.config), _split_tokens_line(self.config, self.settings)]
            lines += [f"llmprec: {line}" for line in structure_lines([], match)]  # the tree difference
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            for line in filter(None, lines):
                if reporter is not None:
                    reporter.write_line(line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        if not self.settings.compares_dumps:
            problem = _lone_dump_problem(self.settings, items)
            if problem is not None and self.is_worker:  # xdist drops a worker's usage error
                report = pytest.CollectReport("llm", "failed", f"ERROR: {problem}", [])
                session.ihook.pytest_collectreport(report=report)
            elif problem is not None:
                raise pytest.UsageError(problem)
            return
        from .items import comparison_items

        try:
            added = comparison_items(session, self)
        except pytest.UsageError as exc:
            if not self.is_worker:
                raise
            # a worker that cannot read the dumps (another machine): a collection error that ends the
            # run, where raising would make xdist start replacement workers for ever
            worker = self.config.workerinput.get("workerid", "worker")
            message = f"llmprec on xdist worker {worker}: {exc}"
            session.ihook.pytest_collectreport(report=pytest.CollectReport("llm", "failed", message, []))
            return
        if added:  # before -k/-m deselection runs; reported like a collector's result
            items.extend(added)
            report = pytest.CollectReport("llm", "passed", None, added)
            session.ihook.pytest_collectreport(report=report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """A serial run evaluates its items' pairs in a forked child process, in the items' order,
        while pytest runs the items (``pipeline.evaluation_process``); not with --llm-no-fork, not on
        xdist workers (which take items as they come). Under the local verdict the child judges a
        token while pytest runs the items of the token before it, so with a single token it would
        only add the cost of sending the results back: then none is forked."""
        comparison = self._comparison
        config = session.config
        if comparison is None or self.is_worker or config.option.collectonly or not self.settings.fork:
            return
        from .items import planned_pairs

        pairs = planned_pairs(session.items, self.settings.item)
        if self.settings.judges_locally and len({pair.token for pair in pairs}) < 2:
            return
        comparison.evaluate_in_child(pairs)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        pairs = getattr(nextitem, "pairs", None)
        # under the local verdict a token is evaluated at its first item (reading ahead itself)
        reads_ahead = self._comparison is not None and self._comparison.reads_ahead
        if reads_ahead and pairs and not self.settings.judges_locally:
            with contextlib.suppress(LlmprecError):  # a bad marker fails that item when it runs
                self._comparison.prefetch(pairs[0], marker_layer(nextitem))
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        rows = getattr(item, "llmprec_rows", None)
        if call.when == "call" and rows:
            if self.is_worker and self.settings.path_map:
                from ..pipeline.path_map import restore_rows

                rows = restore_rows(rows, self.settings.path_map)
            outcome.get_result().llmprec_rows = rows  # travels to the xdist controller with the report
            item.llmprec_rows = None  # the report holds them until the controller has taken them
        if "llm_pair" in getattr(item, "fixturenames", ()):
            outcome.get_result().llmprec_pair_test = True

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rows = getattr(report, "llmprec_rows", None)
        if rows and report.when == "call" and not self.is_worker:
            self.comparison().add_rows(rows)
            # the terminal reporter keeps every report until the end: only what pytest-html shows stays
            if self.html_table:
                from .html_extras import table_row

                report.llmprec_rows = [table_row(rows[0])]
            else:
                del report.llmprec_rows
        decisive = report.when == "call" or report.failed or report.skipped  # one outcome per test
        if getattr(report, "llmprec_pair_test", False) and decisive and not self.is_worker:
            self.pair_tests.setdefault(report.nodeid, report.outcome)
        if report.passed and report.when != "call" and report.nodeid.startswith(ID_PREFIX + "/"):
            # the terminal reporter keeps every report to the end; these ("" category) nobody reads,
            # and at 100,000 pair items they are 130 MB
            kept = self._terminal_stats.get("")
            if kept and kept[-1] is report:
                kept.pop()

    @functools.cached_property
    def _terminal_stats(self) -> dict[str, list]:
        """The terminal reporter's statistics by category (empty without a terminal reporter)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        return getattr(reporter, "stats", {})

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._comparison is None or self.is_worker or self.config.option.collectonly:
            return
        self._comparison.stop_child()
        if not self._comparison.rows and exitstatus in (
            pytest.ExitCode.USAGE_ERROR,
            pytest.ExitCode.INTERRUPTED,
        ):
            self._silent = True  # nothing compared: the run's error is the message, no report or summary
            return
        self.report_paths = self._comparison.write_reports()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self._comparison is None or self.is_worker or self._silent:
            return
        limit = None if self.config.option.verbose > 0 else MAPPING_LINES
        summary = self._comparison.summary(self.report_paths)
        if self.pair_tests:
            outcomes = list(self.pair_tests.values())
            summary.insert(
                1 if summary else 0,
                f"{len(outcomes)} tests using llm_pair (counted apart from the pairs): "
                f"{outcomes.count('passed')} passed, {outcomes.count('failed')} failed, "
                f"{outcomes.count('skipped')} skipped",
            )
        sections = {
            "llmprec": summary,
            "llmprec mapping": self._comparison.mapping_lines(limit),
        }
        for title, lines in sections.items():
            if lines:
                terminalreporter.section(title)
                for line in lines:
                    terminalreporter.write_line(line)

    def pytest_unconfigure(self) -> None:
        if self._comparison is not None:
            self._comparison.close()


def _lone_dump_problem(settings: CompareSettings, items: list[pytest.Item]) -> str | None:
    """One of ``--llm-golden``/``--llm-my`` without the other compares nothing: the usage error,
    unless a test uses the given dump through its fixture (``llm_golden``, ``llm_my``)."""
    given = [side for side in ("golden", "my") if getattr(settings, side) is not None]
    if len(given) != 1:
        return None
    (side,) = given
    if any(f"llm_{side}" in getattr(item, "fixturenames", ()) for item in items):
        return None
    other = "my" if side == "golden" else "golden"
    return (
        f"{settings.named(side)} needs {settings.named(other)}: a dump comparison takes both dumps "
        f"(no test uses the llm_{side} fixture either)"
    )


def _crowded_workers_line(config: pytest.Config) -> str | None:
    """A note when pytest-xdist runs more workers than half the cores: each worker's comparison
    wants a core for the item and one for its read-ahead, which a serial run already uses."""
    workers = getattr(config.option, "numprocesses", None)
    if hasattr(config, "workerinput") or not isinstance(workers, int) or workers < 2:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores >= 2 * workers:
        return None
    return (
        f"llmprec: {workers} xdist workers on {cores} cores: a serial run already compares on two cores "
        "(the next pair is read and compared while pytest reports the current one), so -n pays "
        "xdist's overhead without more cores to use; expect it to be slower here"
    )


def _split_tokens_line(config: pytest.Config, settings: CompareSettings) -> str | None:
    """A note when pytest-xdist spreads a token's items over its workers under the local verdict:
    each worker then judges, and reads, every pair of every token it is given an item of."""
    dist = getattr(config.option, "dist", "no")
    if hasattr(config, "workerinput") or dist in ("no", "loadgroup", "each"):
        return None
    if not settings.judges_locally or settings.item == "token":  # a token's items: one item
        return None
    return (
        f"llmprec: --dist {dist} under the local verdict: every worker reads the whole of each token it "
        "is given an item of; --dist loadgroup gives each token to one worker"
    )


STASH = pytest.StashKey[LlmPlugin]()
