"""The hooks of a configured session: items, prefetching, row transport, reports, summary."""

from __future__ import annotations

import pytest

from .items import PairItem, comparison_items
from .session import LlmSession


class LlmPlugin:
    def __init__(self, llm: LlmSession) -> None:
        self.llm = llm

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        added = comparison_items(session, self.llm)
        if added:  # before -k/-m deselection runs; reported like a collector's result
            items.extend(added)
            report = pytest.CollectReport("llm", "passed", None, added)
            session.ihook.pytest_collectreport(report=report)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        if isinstance(nextitem, PairItem):
            self.llm.prefetch(nextitem.pair)
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
            self.llm.add_rows(rows)

    def pytest_sessionfinish(self) -> None:
        self.llm.write_reports()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        lines = self.llm.summary()
        if lines:
            terminalreporter.section("llmprec")
            for line in lines:
                terminalreporter.write_line(line)

    def pytest_unconfigure(self) -> None:
        self.llm.close()
