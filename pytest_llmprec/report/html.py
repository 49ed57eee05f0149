"""The HTML report: one self-contained file (inline SVG, CSS and script; nothing is fetched).

``write_html_report(path, rows, context)`` takes the comparison report's rows (dicts as
``rows.comparison_row`` / ``rows.error_row`` build them, in report order) and a
``ReportContext`` (the dumps, the standard, the counts, the first divergence, the baseline, the
other report files and any extra sections), and writes:

* a header with the verdict, the counts and the first divergence with its evidence and errors;
* per token, the pairs' errors along execution order (``figures.token_plots``), and this run
  against the baseline when one is given;
* error histograms of the worst pairs (``histograms.error_histograms``);
* a sortable, filterable table of all pairs, each linking to its two tensor files;
* one table per extra section (opcheck, overflow, logits reports: any ``Section``).

Plots are decimated (``svg``); the tables carry every row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .csv_files import atomic_open
from .figures import Figures
from .histograms import HISTOGRAM_PAIRS, ErrorHistogram
from .html_table import file_href, pair_columns, section_columns, table_data
from .rows import FAILED, PASSED, split_member
from .summary import Counts, first_divergence
from .svg import histogram_svg, line_plot_svg

if TYPE_CHECKING:
    from .baseline import Baseline


OPEN_PLOTS = 4
"""Token plots shown open; later ones (except the first divergence's) are folded."""


@dataclass(frozen=True)
class Section:
    """An extra table of the report: ``rows`` (dicts) shown in ``columns`` (default: every key,
    in first-seen order). Columns ending in ``_path`` link to their files."""

    title: str
    rows: Sequence[Mapping[str, Any]]
    columns: Sequence[str] | None = None
    note: str = ""


@dataclass(frozen=True)
class ReportContext:
    """What the report says besides the rows. ``verdict`` is the comparison's: ``failed`` when a
    pair failed or could not be read (or tensors lacked a partner and that fails the run)."""

    golden: str = ""
    my: str = ""
    standard: str = "default"
    counts: Counts = field(default_factory=Counts)
    verdict: str = PASSED
    first_divergence: Mapping[str, Any] | None = None
    baseline: Baseline | None = None
    reports: Sequence[str] = ()
    notes: Sequence[str] = ()
    sections: Sequence[Section] = ()
    created: str = ""
    histogram_pairs: int = HISTOGRAM_PAIRS

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        *,
        unmatched: Mapping[str, int] | None = None,
        fail_on_unmatched: bool = False,
        **fields: Any,
    ) -> ReportContext:
        """A context whose counts, verdict and first divergence (``summary.first_divergence``)
        come from ``rows``; ``fields`` set the rest (and may override those)."""
        counts = Counts.of(rows, unmatched)
        unmatched_fail = fail_on_unmatched and (counts.unmatched_golden or counts.unmatched_my)
        failed = counts.failed or counts.unreadable or unmatched_fail
        defaults = {
            "counts": counts,
            "verdict": FAILED if failed else PASSED,
            "first_divergence": first_divergence(rows),
            "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        return cls(**{**defaults, **fields})


def write_html_report(
    path: Path, rows: Sequence[Mapping[str, Any]], context: ReportContext, figures: Figures | None = None
) -> Path:
    """Write the report to ``path`` atomically; ``figures`` (from ``Figures.build``) when the
    caller already has them."""
    figures = figures if figures is not None else Figures.build(rows, context)
    report_dir = os.path.abspath(path.parent)
    text = _page(rows, context, figures, report_dir)
    with atomic_open(path) as handle:
        handle.write(text)
    return path


def _json_script(name: str, data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c")  # no text from a dump can end or bend the script element
    return f'<script type="application/json" id="data-{name}">{text}</script>'


# --- page -------------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _value(value: Any, digits: int = 6) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _file_link(text: str, report_dir: str) -> str:
    if not text:
        return ""
    href = file_href(split_member(text)[0], report_dir)
    return f'<a href="{escape(href)}"><code>{escape(text)}</code></a>'


def _errors_line(row: Mapping[str, Any]) -> str:
    cosine = row.get("cosine_similarity")
    if not isinstance(cosine, float):
        return "not compared"
    parts = [f"cosine {_value(cosine, 9)} (1-cos {_value(1 - cosine, 3)})"]
    for label, column in (("RED", "relative_euclidean_distance"), ("max abs", "max_absolute_error")):
        if isinstance(row.get(column), float):
            parts.append(f"{label} {_value(row[column], 4)}")
    return ", ".join(parts)


def _divergence_block(context: ReportContext, report_dir: str) -> str:
    row = context.first_divergence
    if row is None:
        return (
            '<div class="divergence none"><strong>No divergence:</strong> every pair met its standard.</div>'
        )
    op_type = row.get("my_op_type") or row.get("golden_op_type")
    introduced = {k: v for k, v in row.items() if k.startswith("introduced_") and v not in (None, "")}
    failed = row.get("failed_checks") or row.get("cmp_fail_reason") or row.get("verdict")
    facts = [
        ("failed checks", escape(str(failed))),
        ("evidence", escape(str(row["evidence"])) if row.get("evidence") else
         "accumulated error only (this run has no local verdict)"),
        ("accumulated error", escape(_errors_line(row))),
        ("introduced error", ", ".join(f"{escape(k[len('introduced_'):])} {escape(_value(v, 4))}"
                                       for k, v in introduced.items()) or "not estimated in this run"),
        ("golden file", _file_link(str(row.get("golden_data_path") or ""), report_dir)),
        ("my file", _file_link(str(row.get("my_data_path") or ""), report_dir)),
    ]  # fmt: skip
    if row.get("local_verdict"):
        facts.insert(1, ("local verdict", escape(str(row["local_verdict"]))))
    items = "".join(f"<dt>{name}</dt><dd>{text}</dd>" for name, text in facts if text)
    where = escape(str(row.get("pair_key"))) + (f" ({escape(str(op_type))})" if op_type else "")
    return (
        '<div class="divergence" id="first-divergence"><strong>First divergence:</strong> '
        f'<code>{where}</code><dl class="facts">{items}</dl></div>'
    )


def _header(context: ReportContext, report_dir: str) -> str:
    counts = context.counts
    facts = [
        ("golden dump", f"<code>{escape(context.golden)}</code>" if context.golden else ""),
        ("my dump", f"<code>{escape(context.my)}</code>" if context.my else ""),
        ("standard", escape(context.standard)),
        ("pairs", f"{counts.compared} compared: {counts.passed} passed, {counts.failed} failed, "
                  f"{counts.unreadable} unreadable"),
        ("unmatched tensors", f"{counts.unmatched_golden} golden, {counts.unmatched_my} my"),
        ("baseline", f"<code>{escape(str(context.baseline.path))}</code>" if context.baseline else ""),
        ("written", escape(context.created)),
    ]  # fmt: skip
    reports = "".join(
        f'<li><a href="{escape(file_href(p, report_dir))}">{escape(os.path.basename(p))}</a></li>'
        for p in context.reports
    )
    if reports:
        facts.append(("other reports", f"<ul>{reports}</ul>"))
    facts += [("note", escape(note)) for note in context.notes]
    items = "".join(f"<dt>{name}</dt><dd>{text}</dd>" for name, text in facts if text)
    verdict = "failed" if context.verdict == FAILED else "passed"
    return (
        f'<h1>pytest-llmprec report<span class="badge {verdict}" id="verdict">{verdict.upper()}</span></h1>'
        f'<dl class="facts">{items}</dl>{_divergence_block(context, report_dir)}'
    )


def _histogram_block(histogram: ErrorHistogram) -> str:
    title = f"<h3><code>{escape(histogram.pair_key)}</code></h3>"
    if histogram.note:
        return f'<div class="histogram-pair">{title}<p class="note">{escape(histogram.note)}</p></div>'
    sampled = (
        f"{histogram.sampled:,} of {histogram.elements:,} elements (evenly spaced runs)"
        if histogram.sampled < histogram.elements
        else f"all {histogram.elements:,} elements"
    )
    nonfinite = f"; {histogram.nonfinite:,} with NaN or Inf left out" if histogram.nonfinite else ""
    charts = "".join(histogram_svg(h) for h in (histogram.absolute, histogram.relative) if h is not None)
    return (
        f'<div class="histogram-pair">{title}<p class="note">{sampled}{nonfinite}</p>'
        f'<div class="histograms">{charts}</div></div>'
    )


def _page(
    rows: Sequence[Mapping[str, Any]], context: ReportContext, figures: Figures, report_dir: str
) -> str:
    body, scripts, nav = [_header(context, report_dir)], [], []

    def section(anchor: str, title: str, content: str) -> None:
        nav.append(f'<a href="#{anchor}">{escape(title)}</a>')
        body.append(f'<section id="{anchor}"><h2>{escape(title)}</h2>{content}</section>')

    if figures.tokens:
        shown = [p for n, p in enumerate(figures.tokens) if n < OPEN_PLOTS or p.divergence is not None]
        folded = [p for p in figures.tokens if p not in shown]
        plots = "".join(line_plot_svg(plot) for plot in shown)
        if folded:
            more = "".join(line_plot_svg(plot) for plot in folded)
            plots += f"<details><summary>{len(folded)} more tokens</summary>{more}</details>"
        legend = (
            '<p class="note">Errors of each pair along execution order, on a log scale (values of 0 at the '
            "bottom); red ticks: failing pairs; dashed lines: decoder layers. Point at a plot for the pair, "
            "click to show it in the table.</p>"
        )
        section("plots", "Errors along the model", legend + plots)
    if figures.baseline is not None:
        section("baseline", "Against the baseline", line_plot_svg(figures.baseline))
    if figures.histograms:
        section(
            "histograms",
            "Element errors of the worst pairs",
            "".join(map(_histogram_block, figures.histograms)),
        )
    section("pairs", "All pairs", '<div class="table" id="pairs-table" data-table="pairs"></div>')
    scripts.append(_json_script("pairs", table_data(rows, pair_columns(rows), report_dir)))
    plot_rows = {f"plot-{p.name}": list(p.rows) for p in (*figures.tokens, figures.baseline) if p is not None}
    scripts.append(_json_script("plot-rows", plot_rows))
    for number, extra in enumerate(context.sections):
        name = f"section-{number}"
        note = f'<p class="note">{escape(extra.note)}</p>' if extra.note else ""
        section(name, extra.title, f'{note}<div class="table" data-table="{name}"></div>')
        columns = section_columns(extra.rows, extra.columns)
        scripts.append(_json_script(name, table_data(extra.rows, columns, report_dir)))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pytest-llmprec report{' — failed' if context.verdict == FAILED else ''}</title>"
        f"<style>{_asset('report.css')}</style></head><body>"
        f"{body[0]}<nav>{''.join(nav)}</nav>{''.join(body[1:])}"
        f"{''.join(scripts)}<script>{_asset('report.js')}</script></body></html>"
    )
