"""Reports: the comparison row model, CSV files, metric baselines, the terminal summary, the HTML
report with its plots, and ``read_report`` (any report CSV as a pandas DataFrame)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "read_report": "frames",
    "register_report_kind": "frames",
    "ReportContext": "html",
    "Section": "html",
    "write_html_report": "html",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .frames import read_report, register_report_kind
    from .html import ReportContext, Section, write_html_report

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
