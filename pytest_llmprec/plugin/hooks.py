"""The hooks of a configured run: items, prefetching, row transport, reports, summary.

The comparison session (``session.LlmSession``) is created on first need, so a run that uses
no feature of this plugin never imports torch through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .options import Settings

if TYPE_CHECKING:
    from .session import LlmSession


class LlmPlugin:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self._session: LlmSession | None = None

    def session(self) -> LlmSession:
        if self._session is None:
            from .session import LlmSession

            self._session = LlmSession(self.config, self.settings)
        return self._session

    def _active(self) -> LlmSession | None:
        """The session if this run compares dumps or already used it."""
        if self._session is None and self.settings.compares_dumps:
            return self.session()
        return self._session

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        if not self.settings.compares_dumps:
            return
        from .items import comparison_items

        added = comparison_items(session, self.session())
        if added:  # before -k/-m deselection runs; reported like a collector's result
            items.extend(added)
            report = pytest.CollectReport("llm", "passed", None, added)
            session.ihook.pytest_collectreport(report=report)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        pair = getattr(nextitem, "pair", None)
        if self._session is not None and pair is not None:
            self._session.prefetch(pair, nextitem.get_closest_marker("llm_precision"))
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        rows = getattr(item, "llmprec_rows", None)
        if call.when == "call" and rows:
            outcome.get_result().llmprec_rows = rows  # travels to the xdist controller with the report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rows = getattr(report, "llmprec_rows", None)
        if rows and report.when == "call":
            self.session().add_rows(rows)

    def pytest_sessionfinish(self) -> None:
        llm = self._active()
        if llm is not None:
            llm.write_reports()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        llm = self._active()
        lines = llm.summary() if llm is not None else []
        if lines:
            terminalreporter.section("llmprec")
            for line in lines:
                terminalreporter.write_line(line)

    def pytest_unconfigure(self) -> None:
        if self._session is not None:
            self._session.close()


STASH = pytest.StashKey[LlmPlugin]()
