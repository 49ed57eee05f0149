"""The report files of a comparison and its terminal summary, from the rows of its evaluated pairs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..dumps.base import Dump
from ..matching import MatchResult, Unmatched
from ..report.baseline import Baseline, update_baseline
from ..report.csv_files import write_csv
from ..report.rows import COLUMNS, STAMP_FORMAT, UNMATCHED_COLUMNS, row_sort_key
from ..report.summary import summary_lines
from .row_store import RowStore
from .settings import CompareSettings


def write_reports(
    settings: CompareSettings,
    started: time.struct_time,
    rows: RowStore,
    match: MatchResult | None,
    baseline: Baseline | None = None,
    earlier_baseline: Baseline | None = None,
    notes: list[str] | None = None,
) -> list[Path]:
    """``llmprec_cmp_report_{ts}.csv``, ``llmprec_unmatched_{ts}.csv``, the baseline when asked
    (``update_baseline`` keeps ``earlier_baseline``'s rows of pairs not compared), and the HTML
    report and PNG plots (``settings.html``, ``settings.plots_dir``); lines for the summary (what
    the baseline update did) are appended to ``notes``.

    Nothing is written when no pair was compared and nothing is unmatched (a run that failed to
    start, a collect-only run, a selection of nothing). When ``rows`` were spooled (a large run),
    the CSV reports and the baseline are streamed from the spool and the HTML report shows the
    digest's rows (``RowStore``).
    """
    unmatched = match.unmatched if match is not None else []
    if not rows and not unmatched:
        return []
    stamp = time.strftime(STAMP_FORMAT, started)
    folder = settings.report_dir
    ordered = None if rows.spooled else list(rows.ordered())

    def in_order() -> Iterable[dict[str, Any]]:
        return rows.ordered() if ordered is None else ordered

    written = [write_csv(folder / f"llmprec_cmp_report_{stamp}.csv", COLUMNS, in_order())]
    if settings.compares_dumps and match is not None:
        table = [_unmatched_row(u) for u in unmatched]
        written.append(write_csv(folder / f"llmprec_unmatched_{stamp}.csv", UNMATCHED_COLUMNS, table))
    if settings.update_baseline and settings.baseline is not None:
        line = update_baseline(settings.baseline, in_order(), earlier_baseline)
        written.append(settings.baseline)
        if notes is not None:
            notes.append(line)
    if (
        settings.compares_dumps
        and match is not None
        and (settings.stats or settings.weights or settings.explain_mapping)
    ):
        from ..report.cross_runtime import write_cross_runtime_reports

        written += write_cross_runtime_reports(
            match,
            list(in_order()),
            settings.report_dir,
            stamp,
            stats=settings.stats,
            weights=settings.weights,
            explain=settings.explain_mapping,
        )
    if settings.html or settings.plots_dir:
        from ..report.visual import ReportContext, describe_standard, write_visual_reports

        profile = settings.cli_standard or settings.ini_standard
        shown, notes, exact = ordered, [], {}
        if ordered is None:
            shown, notes, exact = _digest_fields(rows, unmatched, settings.fail_on_unmatched)
        context = ReportContext.from_rows(
            shown,
            golden=str(settings.golden or ""),
            my=str(settings.my or ""),
            standard=describe_standard(profile, settings.cli_thresholds),
            unmatched=Counter(u.side for u in unmatched),
            fail_on_unmatched=settings.fail_on_unmatched,
            baseline=baseline,
            reports=[str(path) for path in written],
            notes=[*(match.notes if match is not None else []), *notes],
            **exact,
        )
        written += write_visual_reports(
            settings.report_dir, stamp, shown, context, html=settings.html, plots_dir=settings.plots_dir
        )
    return written


def _digest_fields(
    rows: RowStore, unmatched: Sequence[Unmatched], fail_on_unmatched: bool
) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """The rows, a note and the exact figures of the HTML report of a spooled run."""
    from ..report.rows import FAILED, PASSED

    digest = rows.digest
    assert digest is not None
    shown = digest.rows()
    counts = digest.counts(Counter(u.side for u in unmatched))
    note = (
        f"this report shows {len(shown)} of the {len(rows)} pairs (the first divergence, the worst and a "
        "failing pair of each layer, the worst by cosine, the first failing pairs); the CSV report has all"
    )
    failed = counts.failed or counts.unreadable or (fail_on_unmatched and unmatched)
    return shown, [note], {"counts": counts, "verdict": FAILED if failed else PASSED}


def summary(
    rows: RowStore,
    match: MatchResult | None,
    dumps: Mapping[str, Dump],
    report_paths: Iterable[Path] = (),
    extra_notes: Sequence[str] = (),
) -> list[str]:
    """The summary lines; none when nothing was compared or matched."""
    if not rows and (match is None or not (match.pairs or match.unmatched)):
        return []
    counts = {"golden": 0, "my": 0}
    notes: list[str] = []
    if match is not None:
        for unmatched in match.unmatched:
            counts[unmatched.side] += 1
        notes += match.notes
    for side in ("golden", "my"):
        dump = dumps.get(side)
        if dump is not None and dump.problems:
            first, count = dump.problems[0], len(dump.problems)
            notes.append(f"{count} unreadable entries in the {side} dump, e.g. {first.path}: {first.message}")
    notes += extra_notes
    paths = [str(path) for path in report_paths]
    if rows.spooled:
        digest = rows.digest
        exact = digest.counts(counts)
        return summary_lines(digest.rows(), counts, notes, paths, exact, digest.weights_failing)
    ordered = sorted(rows, key=row_sort_key)
    lines = structure_lines(ordered, match) + decode_lines(ordered)
    return lines + summary_lines(ordered, counts, notes, paths)


DECODE_INPUTS = ("root/kwarg_input_ids", "root/input_0")
"""Pair keys (after ``token{t}/``) of the ids a model's root module is called with."""


def decode_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A line when the ids fed to the model differ between the runs (greedy decoding diverged):
    from that token on, the pairs compare different sequences."""
    for row in rows:
        key = str(row.get("pair_key", ""))
        if key.split("/", 1)[-1] in DECODE_INPUTS and row.get("verdict") == "failed":
            token = row.get("token_id")
            return [
                f"my run's decode inputs differ from golden's from token {token} ({key}); later tokens "
                "compare different sequences (feed golden's ids to my run: "
                "pytest_llmprec.capture.golden_decode_inputs)"
            ]
    return []


def structure_lines(rows: Sequence[dict[str, Any]], match: MatchResult | None) -> list[str]:
    """One line each when the two model trees differ in their nodes (nodes without a partner) or in
    the shapes of paired tensors: said once, before the pair-by-pair results."""
    lines = []
    if match is not None and match.unmatched:
        nodes = {
            side: list(dict.fromkeys(u.record.node for u in match.unmatched if u.side == side))
            for side in ("golden", "my")
        }
        parts = [
            f"{len(found)} {side} nodes have no {'my' if side == 'golden' else 'golden'} partner "
            f"(first {found[0]})"
            for side, found in nodes.items()
            if found
        ]
        lines.append(f"the model trees differ: {'; '.join(parts)}")
    reshaped = [
        row
        for row in rows
        if row.get("golden_shape") and row.get("my_shape") and row["golden_shape"] != row["my_shape"]
    ]
    if reshaped:
        first = reshaped[0]
        lines.append(
            f"the model trees differ in shapes: {len(reshaped)} of {len(rows)} pairs have different "
            f"shapes (first {first['pair_key']}: golden {first['golden_shape']}, my {first['my_shape']})"
        )
    return lines


def _unmatched_row(unmatched: Unmatched) -> dict[str, Any]:
    record = unmatched.record
    return {
        "side": unmatched.side,
        "token_id": record.token,
        "node": record.node,
        "leaf": record.leaf,
        "node_type": record.node_type,
        "data_path": record.describe(),
        "reason": unmatched.reason,
    }
