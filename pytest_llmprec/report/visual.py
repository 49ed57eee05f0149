"""The visual reports of a comparison run, written together: the HTML report and the PNG plots.

This is the one call a comparison session makes after its CSV reports; the figures are
computed once for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .figures import Figures
from .html import ReportContext, write_html_report
from .rows import STAMP_FORMAT

if TYPE_CHECKING:
    from ..standards.thresholds import Threshold

__all__ = ["STAMP_FORMAT", "ReportContext", "describe_standard", "html_report_path", "write_visual_reports"]


def describe_standard(profile: str | None, thresholds: Sequence[Threshold] = ()) -> str:
    """The run's standard in words: the profile, then thresholds given for every pair."""
    text = profile or "default (dtype-aware)"
    if thresholds:
        text += "; for every pair: " + ", ".join(f"{t.metric} {t.op} {t.value:g}" for t in thresholds)
    return text


def html_report_path(folder: Path, stamp: str) -> Path:
    """Where a run stamped ``stamp`` (``YYYYmmddHHMMSS``, as the CSV reports) writes its HTML report."""
    return folder / f"llmprec_report_{stamp}.html"


def write_visual_reports(
    folder: Path,
    stamp: str,
    rows: Sequence[Mapping[str, Any]],
    context: ReportContext,
    *,
    html: bool = True,
    plots_dir: Path | None = None,
) -> list[Path]:
    """The HTML report (``html``) into ``folder`` and the PNG plots into ``plots_dir`` (when given);
    the paths written."""
    if not html and plots_dir is None:
        return []
    figures = Figures.build(rows, context)
    written = [write_html_report(html_report_path(folder, stamp), rows, context, figures)] if html else []
    if plots_dir is not None:
        from .png_plots import write_png_plots

        written += write_png_plots(plots_dir, figures, stamp)
    return written
