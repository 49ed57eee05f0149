"""pytest glue of cross-runtime runs: the extra reports and the printed mapping.

Registered by the plugin for every run; it acts only when dumps are compared with ``--llm-stats``,
``--llm-weights`` or ``--llm-explain-mapping``, after the comparison session wrote its reports, and
only in the process that writes reports (not in xdist workers).
"""

from __future__ import annotations

import time

import pytest

from .hooks import STASH
from .options import Settings

PRINTED_LINES = 60
"""Mapping lines printed in the terminal summary (all with -v); the CSV holds every line."""


class CrossRuntimeReports:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.lines: list[str] = []

    def _wanted(self) -> bool:
        s = self.settings
        return s.compares_dumps and (s.stats or s.weights or s.explain_mapping)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if not self._wanted():
            return
        llm = self.config.stash[STASH].session()
        if llm.is_worker:
            return
        try:
            match = llm.match()
        except pytest.UsageError:
            return
        from ..matching.explain import explanation_lines, explanation_rows
        from ..report.cross_runtime import write_cross_runtime_reports

        written = write_cross_runtime_reports(
            match,
            llm.rows,
            self.settings.report_dir,
            time.strftime("%Y%m%d%H%M%S", llm.started),
            stats=self.settings.stats,
            weights=self.settings.weights,
            explain=self.settings.explain_mapping,
        )
        llm.report_paths += [str(path) for path in written]
        if self.settings.explain_mapping:
            limit = None if self.config.option.verbose > 0 else PRINTED_LINES
            self.lines = explanation_lines(explanation_rows(match), limit)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lines:
            terminalreporter.section("llmprec mapping")
            for line in self.lines:
                terminalreporter.write_line(line)
