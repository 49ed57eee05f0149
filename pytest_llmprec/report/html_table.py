"""The tables of the HTML report as compact JSON for its script (``assets/report.js`` decodes it).

Every row is kept; the encoding only avoids repeating itself. Columns are stored one after the
other: numbers as they are (NaN as null, infinities as ``"inf"``), text with a prefix common to
all cells taken off or, when few distinct values recur, as a dictionary and codes, ``1-cos`` as
a rule the script applies to the cosine column, and file paths relative to their common folder
(a cell equal to the same row's cell of another link column as 0).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .figures import INTRODUCED_PREFIX

STATUS_COLUMNS = ("verdict", "local_verdict", "status", "precision_result", "passed")
"""Column keys a table offers as its status filter (the first one present)."""
PREFIX_MIN = 4
"""Shortest common prefix of a text column worth storing once."""
DICTIONARY_SHARE = 4
"""A text column with at most one distinct value per this many rows is stored as a dictionary."""
WRAP_LENGTH = 60
"""Text columns with a longer cell wrap in the table; others stay on one line."""


@dataclass(frozen=True)
class TableColumn:
    """A column of a report table: ``key`` of the row (or ``value`` computing the cell), its kind
    (int, float, text, link), how many significant digits the table shows, whether pointing at a
    plot shows it, and ``derive`` (``"deficit"``: 1 minus the column ``source``) for computed columns."""

    key: str
    label: str
    kind: str
    value: Callable[[Mapping[str, Any]], Any] | None = None
    digits: int = 4
    tooltip: bool = False
    derive: str = ""
    source: str = ""
    same_as: str = ""
    wrap: bool = False


def row_columns(rows: Sequence[Mapping[str, Any]]) -> set[str]:
    return set().union(*(row.keys() for row in rows))


def _short_dtype(row: Mapping[str, Any]) -> str:
    return _dtypes(row.get("golden_dtype"), row.get("my_dtype"))


@functools.lru_cache(maxsize=256)
def _dtypes(golden: Any, my: Any) -> str:
    golden, my = (str(name or "").replace("torch.", "") for name in (golden, my))
    return golden if golden == my else f"{golden} → {my}".strip(" →")


def pair_columns(rows: Sequence[Mapping[str, Any]]) -> list[TableColumn]:
    """The table of all pairs: ids, verdicts, the metrics, the failure reason and both files."""
    present = row_columns(rows)
    columns = [
        TableColumn("data_id", "#", "int"),
        TableColumn("token_id", "token", "text"),
        TableColumn("pair_key", "pair", "text", tooltip=True),
        TableColumn("op_type", "op type", "text", lambda r: r.get("my_op_type") or r.get("golden_op_type")),
        TableColumn("dtype", "dtype", "text", _short_dtype),
        TableColumn("shape", "shape", "text", lambda r: r.get("golden_shape") or r.get("my_shape")),
        TableColumn("verdict", "verdict", "text", tooltip=True),
    ]
    local = [key for key in ("local_verdict", "evidence") if key in present]
    columns += [TableColumn(key, key.replace("_", " "), "text") for key in local]
    columns += [
        TableColumn("cosine_similarity", "cosine", "float", digits=9),
        TableColumn("cosine_deficit", "1-cos", "float", tooltip=True, derive="deficit",
                    source="cosine_similarity"),
        TableColumn("relative_euclidean_distance", "RED", "float", tooltip=True),
        TableColumn("max_absolute_error", "max abs", "float"),
        TableColumn("max_relative_error", "max rel", "float"),
        TableColumn("mean_relative_error", "mean rel", "float"),
        TableColumn("kl_divergence", "KL", "float"),
        TableColumn("sqnr_db", "SQNR dB", "float"),
    ]  # fmt: skip
    introduced = sorted(key for key in present if key.startswith(INTRODUCED_PREFIX))
    columns += [TableColumn(key, key.replace("_", " "), "float", tooltip=True) for key in introduced]
    reason = TableColumn(
        "reason", "reason", "text", lambda r: r.get("failed_checks") or r.get("cmp_fail_reason"), wrap=True
    )
    columns += [
        TableColumn("baseline", "baseline", "text"),
        reason,
        TableColumn("golden_data_path", "golden file", "link"),
        TableColumn("my_data_path", "my file", "link", same_as="golden_data_path"),
    ]
    return columns


def section_columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str] | None) -> list[TableColumn]:
    """Columns for rows of any report: ``*_path`` columns link, numbers are numbers, the rest text."""
    names = list(names or dict.fromkeys(k for row in rows for k in row))
    columns = []
    for name in names:
        present = [v for v in (row.get(name) for row in rows) if v is not None and v != ""]
        numbers = [v for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if name.endswith("_path"):
            kind = "link"
        elif present and len(numbers) == len(present):
            kind = "int" if all(isinstance(v, int) for v in numbers) else "float"
        else:
            kind = "text"
        wrap = kind == "text" and any(len(str(v)) > WRAP_LENGTH for v in present)
        columns.append(TableColumn(name, name, kind, wrap=wrap))
    return columns


def folder_href(folder: str, report_dir: str) -> str:
    """A link to ``folder`` (ending in ``/``): relative when it shares a parent other than the
    file system root with the report folder (the links survive copying the whole tree), file://
    otherwise."""
    try:
        shared = os.path.commonpath([folder, report_dir])
    except ValueError:  # different drives
        shared = ""
    if shared and os.path.dirname(shared) != shared:
        relative = os.path.relpath(folder, report_dir).replace(os.sep, "/")
        return "./" if relative == "." else "./" + quote(relative) + "/"
    return Path(folder).as_uri().rstrip("/") + "/"


def file_href(path: str, report_dir: str) -> str:
    absolute = os.path.abspath(path)
    return folder_href(os.path.dirname(absolute), report_dir) + quote(os.path.basename(absolute))


def _numbers(values: list[Any]) -> list[Any]:
    def number(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return None
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else value

    return [v if v.__class__ is float and math.isfinite(v) else number(v) for v in values]


def _texts(values: list[Any]) -> dict[str, Any]:
    """Text cells (None for empty, int ids kept as numbers) as a dictionary and codes, or as
    values with their common prefix taken off."""
    cells = [None if v is None or v == "" else v if v.__class__ is int else str(v) for v in values]
    distinct = list(dict.fromkeys(cells))
    if len(distinct) * DICTIONARY_SHARE <= len(cells):
        code = {value: number for number, value in enumerate(distinct)}
        return {"dictionary": distinct, "codes": [code[c] for c in cells]}
    strings = [c for c in cells if isinstance(c, str)]
    prefix = os.path.commonprefix(strings) if len(strings) > 1 else ""  # noqa: RUF071 (text, not paths)
    if len(prefix) < PREFIX_MIN:
        return {"values": cells}
    cut = len(prefix)
    return {"values": [c[cut:] if isinstance(c, str) else c for c in cells], "prefix": prefix}


def _links(values: list[Any], report_dir: str) -> tuple[list[str | None], dict[str, str]]:
    """Path cells relative to their common folder (a ``[member]`` suffix kept), and the folder
    with its link."""
    cells = [str(v) if v else None for v in values]
    absolute = [c if c is None or c.startswith(os.sep) else os.path.abspath(c) for c in cells]
    present = [c for c in absolute if c is not None]
    if not present:
        return cells, {"base": "", "folder": ""}
    prefix = os.path.commonprefix(present)  # noqa: RUF071 (cut at a separator below)
    folder = prefix[: prefix.rfind(os.sep)] or os.sep
    cut = len(folder.rstrip(os.sep)) + 1
    relative = [None if c is None else c[cut:] for c in absolute]
    if os.sep != "/":
        relative = [None if c is None else c.replace(os.sep, "/") for c in relative]
    return relative, {"base": folder_href(folder, report_dir), "folder": folder}


def table_data(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[TableColumn], report_dir: str
) -> dict[str, Any]:
    """The JSON object of one table."""
    encoded, keys = [], [c.key for c in columns]
    for column in columns:
        info: dict[str, Any] = {"key": column.key, "label": column.label, "kind": column.kind}
        info.update({name: True for name in ("tooltip", "wrap") if getattr(column, name)})
        if column.derive:
            info.update(derive=column.derive, source=keys.index(column.source), digits=column.digits)
            encoded.append(info)
            continue
        key = column.key
        values = [column.value(r) for r in rows] if column.value else [r.get(key) for r in rows]
        if column.kind in ("int", "float"):
            info.update(values=_numbers(values), digits=column.digits)
        elif column.kind == "link":
            cells, place = _links(values, report_dir)
            info.update(place, title=f"{column.label} (under {place['folder']})")
            if column.same_as in keys:
                other = encoded[keys.index(column.same_as)]["values"]
                cells = [0 if c is not None and c == o else c for c, o in zip(cells, other, strict=True)]
                info.update(same=keys.index(column.same_as))
            info["values"] = cells
        else:
            info.update(_texts(values))
        encoded.append(info)
    status = next((keys.index(name) for name in STATUS_COLUMNS if name in keys), -1)
    return {"count": len(rows), "status": status, "columns": encoded}
