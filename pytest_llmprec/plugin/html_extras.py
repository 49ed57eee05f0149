"""pytest-html integration, registered only when pytest-html writes a report (``--html``).

Each comparison item's row in the pytest-html results table carries the pair's key metrics and
verdict (from the report row the item kept, ``item.llmprec_rows``, which travels on the test
report), links to that pair in the llmprec HTML report, and the summary links to that report.
"""

from __future__ import annotations

import os
import time
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from .hooks import LlmPlugin

COLUMNS = (
    ("llmVerdict", "llm verdict", "verdict", None),
    ("llmCosine", "cosine", "cosine_similarity", 9),
    ("llmRed", "RED", "relative_euclidean_distance", 4),
    ("llmMaxAbs", "max abs", "max_absolute_error", 4),
)
"""(pytest-html column type, header, report row column, significant digits) of the added cells."""


TIP_COLUMNS = ("failed_checks", "cmp_fail_reason")
"""Report row columns shown as the verdict cell's tooltip."""


def table_row(row: dict[str, Any]) -> dict[str, Any]:
    """The columns of a report row that the results table shows (a run keeps one per test)."""
    names = [column for _, _, column, _ in COLUMNS] + [*TIP_COLUMNS, "pair_key"]
    return {name: row[name] for name in names if name in row}


def _cell(value: Any, digits: int | None) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.{digits or 6}g}"
    return "" if value is None else str(value)


class HtmlExtras:
    def __init__(self, config: pytest.Config, plugin: LlmPlugin) -> None:
        self.config = config
        self.plugin = plugin
        self._link: str | None = None  # the report's href, the same for every test of the run

    def _report_path(self) -> str | None:
        """The llmprec HTML report this run writes, when it writes one."""
        comparison = self.plugin.active_comparison()
        if comparison is None or not self.plugin.settings.html:
            return None
        from ..report.visual import STAMP_FORMAT, html_report_path  # the report modules import numpy

        stamp = time.strftime(STAMP_FORMAT, comparison.started)
        return str(html_report_path(self.plugin.settings.report_dir, stamp))

    def _href(self, target: str) -> str:
        """``target`` relative to the folder of the pytest-html report."""
        own = os.path.abspath(self.config.getoption("htmlpath") or ".")
        relative = os.path.relpath(os.path.abspath(target), os.path.dirname(own))
        return quote(relative.replace(os.sep, "/"))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        for offset, (kind, header, _column, _digits) in enumerate(COLUMNS):
            cells.insert(2 + offset, f'<th class="sortable" data-column-type="{kind}">{escape(header)}</th>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        rows = getattr(report, "llmprec_rows", None) or [{}]
        row = rows[0]
        for offset, (kind, _header, column, digits) in enumerate(COLUMNS):
            text = escape(_cell(row.get(column), digits))
            title = escape(str(next((row[c] for c in TIP_COLUMNS if row.get(c)), "")))
            tip = f' title="{title}"' if title and column == "verdict" else ""
            cells.insert(2 + offset, f'<td class="col-{kind}"{tip}>{text}</td>')

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session
    ) -> None:
        path = next((str(p) for p in self.plugin.report_paths if p.suffix == ".html"), None)
        if path is not None:
            link = f'<a href="{escape(self._href(path))}">{escape(os.path.basename(path))}</a>'
            prefix.append(
                f"<p>pytest-llmprec: {link} (per-layer plots, the first divergence, every pair)</p>"
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rows = getattr(report, "llmprec_rows", None)
        if report.when != "call" or not rows:
            return
        if self._link is None:
            target = self._report_path()
            if target is None:
                return
            self._link = self._href(target)
        from pytest_html import extras

        href = f"{self._link}#filter={quote(str(rows[0].get('pair_key', '')), safe='')}"
        report.extras = [*getattr(report, "extras", []), extras.url(href, name="llmprec report")]
