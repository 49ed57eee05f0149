"""Reports as pandas DataFrames: ``read_report(path)`` for every CSV the project writes.

A report is recognised by its columns (``ReportKind``: the columns that identify it and the
type of each); columns a kind does not declare get their type from their cells. Types:
floats (empty, ``NA`` and ``NaN`` cells are NaN), nullable ints (``Int64``), nullable booleans
(``boolean``), shapes and indexes as tuples of ints, token ids as ints where they are numbers,
and text with the quote that neutralised a spreadsheet formula removed
(``csv_files.restore_cell``). Other features register their reports with ``register_report_kind``.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LlmprecError
from . import baseline, rows
from .csv_files import restore_cell

if TYPE_CHECKING:
    import pandas

FLOAT, INT, BOOL, SHAPE, TOKEN, TEXT = "float", "int", "bool", "shape", "token", "text"
MISSING = frozenset({"", "NA", "NaN", "nan", "None"})
"""Cells that stand for no value in a typed column."""
_BOOLEANS = {"True": True, "true": True, "False": False, "false": False}
_SHAPE = re.compile(r"[\[(]\s*(?:-?\d+\s*(?:,\s*-?\d+\s*)*,?)?\s*[\])]")
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class ReportKind:
    """A CSV report: ``required`` columns identify it, ``types`` give column types (FLOAT, INT,
    BOOL, SHAPE, TOKEN, TEXT); undeclared columns are typed from their cells."""

    name: str
    required: frozenset[str]
    types: Mapping[str, str]


_KINDS: dict[str, ReportKind] = {}


def register_report_kind(name: str, required: Iterable[str], types: Mapping[str, str]) -> ReportKind:
    """Make ``read_report`` recognise a report that has all ``required`` columns (the kind with
    the most required columns wins when several match)."""
    kind = ReportKind(name, frozenset(required), dict(types))
    _KINDS[name] = kind
    return kind


def report_kind(columns: Iterable[str]) -> ReportKind | None:
    present = set(columns)
    matching = [kind for kind in _KINDS.values() if kind.required <= present]
    return max(matching, key=lambda kind: len(kind.required), default=None)


def _types(**groups: Sequence[str]) -> dict[str, str]:
    return {column: kind for kind, columns in groups.items() for column in columns}


_METRICS = (
    "cosine_similarity", "max_relative_error", "mean_relative_error", "max_absolute_error",
    "mean_absolute_error", "kl_divergence", "relative_euclidean_distance",
)  # fmt: skip

register_report_kind(
    "comparison",
    (*rows.STANDARD_COLUMNS, "pair_key", "verdict"),
    _types(
        float=(
            *(f"{side}_{stat}_value" for side in ("golden", "my") for stat in ("max", "min", "mean")),
            *_METRICS, "sqnr_db", "rel_err_ratio_0_001", "rel_err_ratio_0_005", "max_ulp_error",
            "tolerance_pass_rate", "worst_golden_value", "worst_my_value",
        ),
        int=("data_id", "node_order", "golden_nan_count", "golden_inf_count", "my_nan_count", "my_inf_count",
             "compared_count"),
        shape=("golden_shape", "my_shape", "worst_index"),
        token=("token_id",),
        text=(*(c for c in rows.COLUMNS if c.endswith(("_path", "_type", "_dtype"))),
              "cmp_fail_reason", "pair_key", "verdict", "failed_checks", "check_sources", "standard",
              "tolerance", "baseline", "note", "evidence", "local_verdict"),
    ),
)  # fmt: skip
register_report_kind(
    "unmatched", rows.UNMATCHED_COLUMNS, _types(token=("token_id",), text=rows.UNMATCHED_COLUMNS[2:])
)
register_report_kind("baseline", baseline.COLUMNS, _types(text=("pair_key",), float=baseline.METRICS))
register_report_kind(  # msit-spec §4.6, as llmprec_opcheck_report_{ts}.csv
    "opcheck",
    ("op_id", "op_name", "precision_standard", "precision_result"),
    _types(
        text=("op_id", "op_name", "op_param", "tensor_path", "precision_standard", "precision_result",
              "fail_reason", "optimization_closed"),
        int=("out_tensor_id",),
        float=("rel_precision_rate(%)", "max_rel_error", "abs_precision_rate(%)", "max_abs_error",
               "cosine_similarity", "kl_divergence"),
    ),
)  # fmt: skip
register_report_kind(  # msit-spec §4.5, logits_cmp_res_{ts}.csv
    "logits",
    (
        "file_name",
        "key",
        "token_id",
        "cosine_similarity",
        "kl_divergence",
        "l1_norm",
        "passed",
        "cmp_fail_reason",
    ),
    _types(
        text=("file_name", "key", "cmp_fail_reason"),
        token=("token_id",),
        float=("cosine_similarity", "kl_divergence", "l1_norm", "ulp_max_diff", "ulp"),
        bool=("passed",),
    ),
)


class _BadCell(ValueError):
    def __init__(self, line: int, text: str, expected: str) -> None:
        super().__init__(f"line {line}: {text!r} is not {expected}")


def _floats(cells: list[str]) -> list[float]:
    values = []
    for line, text in enumerate(cells, start=2):
        try:
            values.append(float("nan") if text in MISSING else float(text))
        except ValueError:
            raise _BadCell(line, text, "a number") from None
    return values


def _ints(cells: list[str]) -> list[int | None]:
    values = []
    for line, text in enumerate(cells, start=2):
        if text in MISSING:
            values.append(None)
        elif _INTEGER.fullmatch(text.strip()):
            values.append(int(text))
        else:
            raise _BadCell(line, text, "an integer")
    return values


def _bools(cells: list[str]) -> list[bool | None]:
    values = []
    for line, text in enumerate(cells, start=2):
        if text in MISSING:
            values.append(None)
        elif text in _BOOLEANS:
            values.append(_BOOLEANS[text])
        else:
            raise _BadCell(line, text, "True or False")
    return values


def _shapes(cells: list[str]) -> list[tuple[int, ...] | None]:
    values = []
    for line, text in enumerate(cells, start=2):
        if text in MISSING:
            values.append(None)
        elif _SHAPE.fullmatch(text.strip()):
            values.append(tuple(int(n) for n in re.findall(r"-?\d+", text)))
        else:
            raise _BadCell(line, text, "a shape such as [2, 4]")
    return values


def _tokens(cells: list[str]) -> list[int | str | None]:
    return [None if t in MISSING else int(t) if _INTEGER.fullmatch(t) else restore_cell(t) for t in cells]


def _inferred(cells: list[str]) -> str:
    present = [text for text in cells if text not in MISSING]
    if not present:
        return TEXT
    if all(text in _BOOLEANS for text in present):
        return BOOL
    try:
        _floats(present)
    except _BadCell:
        return TEXT
    return FLOAT


_CONVERTERS = {FLOAT: (_floats, "float64"), INT: (_ints, "Int64"), BOOL: (_bools, "boolean"),
               SHAPE: (_shapes, object), TOKEN: (_tokens, object)}  # fmt: skip


def _cells(path: str | os.PathLike[str]) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a CSV file, every row as long as the header."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except FileNotFoundError:
        raise LlmprecError(f"{path}: no such report") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LlmprecError(f"{path}: not a readable CSV report: {exc}") from None
    if not lines:
        raise LlmprecError(f"{path}: empty file, not a report")
    header, body = lines[0], lines[1:]
    for number, line in enumerate(body, start=2):
        if len(line) != len(header):
            raise LlmprecError(
                f"{path}, line {number}: {len(line)} cells where the header has {len(header)} "
                "(a truncated file?)"
            )
    return header, body


def read_report(path: str | os.PathLike[str]) -> pandas.DataFrame:
    """A report CSV of this project as a DataFrame with typed columns (``frame.attrs["report_kind"]``
    names the kind); raises ``LlmprecError`` naming the file for a missing, unreadable, truncated or
    unknown report or a cell that does not fit its column."""
    import pandas as pd

    header, body = _cells(path)
    kind = report_kind(header)
    if kind is None:
        known = ", ".join(sorted(_KINDS))
        raise LlmprecError(f"{path}: not a report of pytest-llmprec (known kinds: {known}); columns: "
                           f"{', '.join(header)}")  # fmt: skip
    if len(set(header)) != len(header):
        raise LlmprecError(f"{path}: a column name appears twice in the header")
    frame = pd.DataFrame(index=pd.RangeIndex(len(body)))
    for number, name in enumerate(header):
        texts = [line[number] for line in body]
        convert, dtype = _CONVERTERS.get(kind.types.get(name) or _inferred(texts), (None, None))
        try:
            values = convert(texts) if convert else [restore_cell(text) for text in texts]
        except _BadCell as exc:
            raise LlmprecError(f"{path}, column {name}, {exc}") from None
        frame[name] = pd.Series(values, index=frame.index, dtype=dtype)
    frame.attrs["report_kind"] = kind.name
    return frame
