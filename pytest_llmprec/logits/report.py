"""The logits report ``logits_cmp_res_{ts}.csv`` (msit-spec §4.5: msit's columns in order, then
ours) and the terminal summary: one line per case with its class and first diverging token."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..dumps.ordering import token_sort_key
from ..report.csv_files import write_csv
from .metrics import LogitsMetrics
from .pairing import LogitsPair, LogitsProblem, case_sort_key
from .tokens import DIVERGED, EQUAL, NEAR_TIE_ONLY, CaseVerdict, classify

MSIT_COLUMNS = (
    "file_name", "key", "token_id", "cosine_similarity", "kl_divergence", "l1_norm", "ulp_max_diff", "ulp",
    "passed", "cmp_fail_reason",
)  # fmt: skip
OUR_COLUMNS = (
    "top1_golden", "top1_my", "top1_match", "topk_overlap", "golden_margin", "flip_margin", "tie_tolerance",
    "dtype", "token_verdict", "outcome", "case_verdict", "golden_path", "my_path",
)  # fmt: skip
COLUMNS = MSIT_COLUMNS + OUR_COLUMNS
NA = "NA"
REPORT_PREFIX = "logits_cmp_res_"


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return value


def pair_row(pair: LogitsPair, metrics: LogitsMetrics | None, verdict: str, outcome: str) -> dict[str, Any]:
    """The report row of one pair (``metrics`` None for a one-sided pair)."""
    row: dict[str, Any] = {
        "file_name": pair.file_name,
        "key": pair.case,
        "token_id": pair.token,
        "token_verdict": verdict,
        "outcome": outcome,
        "golden_path": pair.golden.describe() if pair.golden else NA,
        "my_path": pair.my.describe() if pair.my else NA,
    }
    if metrics is None:
        row["cmp_fail_reason"] = verdict
        row["passed"] = NA
    else:
        row.update(
            cosine_similarity=metrics.cosine_similarity,
            kl_divergence=metrics.kl_divergence,
            l1_norm=metrics.l1_norm,
            ulp_max_diff=metrics.ulp_max_diff,
            ulp=metrics.ulp,
            passed=metrics.passed,
            cmp_fail_reason=metrics.fail_reason,
            top1_golden=metrics.top1_golden,
            top1_my=metrics.top1_my,
            top1_match=metrics.top1_match,
            topk_overlap=metrics.topk_overlap,
            golden_margin=metrics.golden_margin,
            flip_margin=metrics.flip_margin,
            tie_tolerance=metrics.tie_tolerance,
            dtype=metrics.dtype,
        )
    return {column: _cell(row.get(column)) for column in COLUMNS} | {
        "cmp_fail_reason": row["cmp_fail_reason"]
    }


def problem_row(problem: LogitsProblem) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS, NA)
    row.update(file_name=problem.file_name, cmp_fail_reason=problem.reason, outcome="not compared")
    row[f"{problem.side}_path"] = problem.file_name
    return row


def case_verdicts(rows: Iterable[dict[str, Any]]) -> dict[str, CaseVerdict]:
    """Each case's class from its rows."""
    tokens: dict[str, list[tuple[int | str, str]]] = defaultdict(list)
    for row in rows:
        if row.get("key") not in (None, NA):
            tokens[row["key"]].append((row["token_id"], row["token_verdict"]))
    return {
        case: classify(sorted(found, key=lambda item: token_sort_key(item[0])))
        for case, found in sorted(tokens.items(), key=lambda item: case_sort_key(item[0]))
    }


def ordered(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """msit's sort: integer keys, then ``lang/n`` keys, then the rest; parse errors last."""

    def key(row: dict[str, Any]) -> tuple:
        case = row.get("key")
        if case in (None, NA):
            return (1, (), (), str(row.get("file_name")))
        return (0, case_sort_key(case), token_sort_key(row["token_id"]), str(row.get("file_name")))

    return sorted(rows, key=key)


def write_report(folder: Path, stamp: str, rows: Sequence[dict[str, Any]]) -> Path:
    """``{folder}/logits_cmp_res_{stamp}.csv`` with each row's case verdict filled in."""
    verdicts = case_verdicts(rows)
    table = []
    for row in ordered(rows):
        case = verdicts.get(row.get("key"))
        table.append({**row, "case_verdict": case.describe() if case else NA})
    return write_csv(folder / f"{REPORT_PREFIX}{stamp}.csv", COLUMNS, table)


def summary_lines(
    rows: Sequence[dict[str, Any]], report_paths: Iterable[str] = (), limit: int = 50
) -> list[str]:
    """Counts by class, then one line per case that is not numerically equal, and the reports."""
    verdicts = case_verdicts(rows)
    counts = defaultdict(int)
    for verdict in verdicts.values():
        counts[verdict.kind] += 1
    by_case = {(row["key"], row["token_id"]): row for row in rows if row.get("key") not in (None, NA)}
    lines = [
        f"logits: {len(verdicts)} cases, {len(by_case)} tokens: {counts[EQUAL]} numerically equal, "
        f"{counts[DIVERGED]} diverged, {counts[NEAR_TIE_ONLY]} near-tie flip only"
    ]
    listed = [(case, verdict) for case, verdict in verdicts.items() if verdict.kind != EQUAL]
    for case, verdict in listed[:limit]:
        lines.append(f"  case {case}: {verdict.describe()}{_detail(by_case.get((case, verdict.token)))}")
    if len(listed) > limit:
        lines.append(f"  ... and {len(listed) - limit} more cases (see the report)")
    problems = [row for row in rows if row.get("key") in (None, NA)]
    if problems:
        first = problems[0]
        lines.append(
            f"  {len(problems)} files not compared, e.g. {first['file_name']}: {first['cmp_fail_reason']}"
        )
    lines += [f"report: {path}" for path in report_paths]
    return lines


def _detail(row: dict[str, Any] | None) -> str:
    if row is None or row.get("top1_golden") in (None, NA):
        return f": {row['cmp_fail_reason']}" if row and row.get("cmp_fail_reason") not in ("", NA) else ""
    text = f": golden token {row['top1_golden']}, my token {row['top1_my']}"
    if row["top1_match"] is not True:
        text += f", golden margin {row['flip_margin']:.6g} (tolerance {row['tie_tolerance']:.3g})"
    if row["passed"] != "True":
        text += f", cosine {row['cosine_similarity']:.6g}, kl {row['kl_divergence']:.3g}"
    return text
