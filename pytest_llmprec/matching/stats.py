"""``--llm-stats``: pairing dumped statistics instead of tensors (msit-spec §3.5).

A torch dump made with ``dump_statistics_mode`` 1 or 2 holds a ``statistics.csv`` per module
folder (one row per tensor), an ATB dump made with ``--type tensor stats`` holds statistics text
files under the tensor file names. Each row or file becomes a ``StatsRecord`` named like the tensor
file it stands for (``output``/``output_1``/``input_0``; ``after/outtensor0``), and the statistics
views of the two dumps are paired by the tensor matchers: by name for dumps of one layout, by the
model trees for torch vs ATB. Unlike msit, every row is kept (msit keeps the last ``Output`` row of
a module), both directions work, and ranks pair as tensors do.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from dataclasses import replace
from typing import Any

from ..dumps.base import Dump, DumpProblem, TensorRecord
from ..errors import DumpFormatError
from .base import MatchOptions, MatchResult
from .records import StatsRecord

MAX_CSV_BYTES = 1 << 30
STATISTIC_COLUMNS = ("Max", "Min", "Mean", "L2Norm")
ATB_DTYPE_NAMES = {0: "float32", 1: "float16", 2: "int8", 3: "int32", 9: "int64", 12: "bool", 27: "bfloat16"}


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _csv_rows(path: str, problems: list[DumpProblem]) -> list[dict[str, str]]:
    try:
        if os.path.getsize(path) > MAX_CSV_BYTES:
            problems.append(DumpProblem(path, f"statistics file larger than {MAX_CSV_BYTES} bytes, not read"))
            return []
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(io.StringIO(handle.read())))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(DumpProblem(path, f"cannot read statistics.csv: {exc}"))
        return []
    if rows and "InputOutput" not in rows[0]:
        problems.append(DumpProblem(path, "no InputOutput column: not a statistics.csv of the torch dump"))
        return []
    return rows


def _torch_view(dump: Dump) -> tuple[list[StatsRecord], list[DumpProblem]]:
    from ..dumps.torch_dump import module_positions

    problems: list[DumpProblem] = []
    positions: dict[tuple[int | None, str], int] = {}
    for entry in (dump.info.get("processes") or {}).values():
        tree = entry.get("model_tree")
        if tree is not None:
            for name, position in module_positions(tree).items():
                positions.setdefault((entry.get("device"), name), position)
    found = []
    for (token, node, rank), path in (dump.info.get("statistics") or {}).items():
        rows = _csv_rows(path, problems)
        outputs = Counter(row.get("InputOutput") for row in rows)
        for number, row in enumerate(rows):
            role = "input" if row.get("InputOutput") == "Input" else "output"
            index = int(_number(row.get("Index"))) if not math.isnan(_number(row.get("Index"))) else 0
            single = role == "output" and index == 0 and outputs["Output"] == 1
            leaf = "output" if single else f"{role}_{index}"
            values = tuple(_number(row.get(column)) for column in STATISTIC_COLUMNS)
            key = (
                isinstance(token, str),
                token if isinstance(token, int) else 0,
                positions.get((rank, node), math.inf),
            )
            found.append(
                (
                    (*key, node, number),
                    StatsRecord(
                        path, token, node, leaf, role, index, row.get("NodeType") or "", 0, rank,
                        f"row{number + 1}", values, row.get("DataType") or "", row.get("Shape") or "",
                    ),
                )
            )  # fmt: skip
    found.sort(key=lambda item: item[0])
    return [replace(record, order=order) for order, (_, record) in enumerate(found)], problems


def _atb_view(dump: Dump) -> tuple[list[StatsRecord], list[DumpProblem]]:
    from ..formats.atb_header import read_atb_stats

    problems: list[DumpProblem] = []
    found = []
    for record in dump:
        try:
            stats = read_atb_stats(record.path)
        except (DumpFormatError, OSError) as exc:
            problems.append(DumpProblem(record.path, str(getattr(exc, "problem", exc))))
            continue
        values = tuple(_number(stats.get(key)) for key in ("max", "min", "mean", "l2norm"))
        dtype = ATB_DTYPE_NAMES.get(stats.get("dtype"), str(stats.get("dtype", "")))
        shape = str(list(stats.get("dims", ())))
        found.append(StatsRecord(**_fields(record), values=values, dtype=f"torch.{dtype}", shape=shape))
    return found, problems


def _fields(record: TensorRecord) -> dict[str, Any]:
    from .records import base_fields

    return base_fields(record)


def statistics_view(dump: Dump) -> Dump:
    """The dump's statistics as a dump of ``StatsRecord`` (same kind, root and info)."""
    records, problems = _torch_view(dump) if dump.kind == "torch" else _atb_view(dump)
    return Dump(dump.kind, dump.root, list(records), problems, dict(dump.info), dict(dump.replays))


class StatsMatcher:
    """Pairs the statistics of torch and ATB dumps (any combination)."""

    name = "dumped statistics (--llm-stats)"
    mode = "stats"

    def applies(self, golden: Dump, my: Dump) -> bool:
        return golden.kind in ("torch", "atb") and my.kind in ("torch", "atb")

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        from . import match_dumps

        views = statistics_view(golden), statistics_view(my)
        result = match_dumps(*views, replace(options, mode="tensors"))
        for role, view in zip(("golden", "my"), views, strict=True):
            if not view.records:
                result.notes.insert(
                    0, f"the {role} dump {view.root} holds no statistics (statistics.csv or ATB stats files)"
                )
            for problem in view.problems[:1]:
                result.notes.append(
                    f"{len(view.problems)} statistics entries of the {role} dump are unreadable, "
                    f"e.g. {problem.path}: {problem.message}"
                )
        return result
