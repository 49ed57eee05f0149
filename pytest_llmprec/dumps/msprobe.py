"""msprobe dumps: ``{dump_path}/step{N}/rank{R}/dump.json`` with tensors in ``dump_tensor_data/*.pt``.

One record per tensor entry of ``dump.json`` that names a ``data_name`` file; entries without one
(the statistics task) are kept in ``info["statistics"]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Dump, DumpProblem
from .layouts import Layout
from .ordering import Row, as_number, build_records, rank_sort_key, token_sort_key
from .walk import SafeWalker, scan

DUMP_FILE = "dump.json"
DATA_FOLDER = "dump_tensor_data"

_STEP_FOLDER = re.compile(r"step(\d+)")
_RANK_FOLDER = re.compile(r"rank(\d*)")
_ROLES = {"input_args": "input", "input_kwargs": "input", "input": "input", "output": "output"}
_LEAF_PREFIX = {"input_args": "input"}


@dataclass(frozen=True)
class MsprobeLocation:
    """An msprobe dump path and, when the path pointed inside it, the step and rank folder it named."""

    root: str
    step: str | None = None
    rank: str | None = None


def _is_rank_folder(folder: str) -> bool:
    return bool(_RANK_FOLDER.fullmatch(os.path.basename(folder))) and os.path.isfile(
        os.path.join(folder, DUMP_FILE)
    )


def _is_step_folder(folder: str) -> bool:
    return bool(_STEP_FOLDER.fullmatch(os.path.basename(folder))) and any(
        _is_rank_folder(sub.path) for sub in scan(folder)[0]
    )


def locate(path: str | os.PathLike[str]) -> MsprobeLocation | None:
    """Find the msprobe dump ``path`` is in: the dump path, a step or rank folder, or dump_tensor_data."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        return None
    if os.path.basename(path) == DATA_FOLDER:
        path = os.path.dirname(path)
    if _is_rank_folder(path):
        step = os.path.dirname(path)
        if _STEP_FOLDER.fullmatch(os.path.basename(step)):
            return MsprobeLocation(os.path.dirname(step), os.path.basename(step), os.path.basename(path))
        return None
    if _is_step_folder(path):
        return MsprobeLocation(os.path.dirname(path), os.path.basename(path))
    if any(_is_step_folder(sub.path) for sub in scan(path)[0]):
        return MsprobeLocation(path)
    return None


def _tensor_items(value: Any, leaf: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(leaf path, tensor entry) of every tensor entry in a nested list/dict of dump.json values."""
    if isinstance(value, dict):
        if "dtype" in value or "data_name" in value:
            yield leaf, value
            return
        for key, item in value.items():
            yield from _tensor_items(item, f"{leaf}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _tensor_items(item, f"{leaf}.{position}")


def _call_type(name: str) -> str:
    """The class of a module call, the API of an API call.

    ``Module.layer1.Linear.forward.0`` → ``Linear``; ``Functional.linear.5.forward`` → ``Functional.linear``.
    """
    parts = name.split(".")
    if parts[0] == "Module":
        for position, part in enumerate(parts):
            if part in ("forward", "backward", "parameters_grad") and position > 1:
                return parts[position - 1]
        return ""
    return ".".join(parts[:-2]) if len(parts) > 2 else name


def _first_number(leaf: str) -> int:
    for part in leaf.split("."):
        number = as_number(part)
        if number is not None:
            return number
    return 0


class _MsprobeIndexer:
    def __init__(self, location: MsprobeLocation) -> None:
        self.location = location
        self.problems: list[DumpProblem] = []
        self.walker = SafeWalker(location.root, self.problems)
        self.rows: list[Row] = []
        self.statistics: dict[tuple[int, str, str, int | None], dict[str, Any]] = {}
        self.dump_files: list[str] = []

    def run(self) -> Dump:
        location = self.location
        steps, _ = self.walker.listdir(location.root)
        for step in steps:
            match = _STEP_FOLDER.fullmatch(step.name)
            if match is None or (location.step is not None and step.name != location.step):
                continue
            ranks, _ = self.walker.listdir(step.path)
            for rank in ranks:
                rank_match = _RANK_FOLDER.fullmatch(rank.name)
                if rank_match is None or (location.rank is not None and rank.name != location.rank):
                    continue
                rank_id = int(rank_match.group(1)) if rank_match.group(1) else None
                self._rank(rank.path, int(match.group(1)), rank_id)
        info: dict[str, Any] = {"statistics": self.statistics, "dump_json": self.dump_files}
        if location.step is not None:
            info["pinned_token"] = int(location.step[4:])
        return Dump("msprobe", Path(location.root), build_records(self.rows), self.problems, info)

    def _rank(self, folder: str, step: int, rank: int | None) -> None:
        dump_path = os.path.join(folder, DUMP_FILE)
        dump = self.walker.read_json(dump_path)
        if dump is None:
            return
        data = dump.get("data") if isinstance(dump, dict) else None
        if not isinstance(data, dict):
            self.walker.report(dump_path, "no 'data' object in dump.json")
            return
        self.dump_files.append(dump_path)
        data_folder = os.path.join(folder, DATA_FOLDER)
        available: set[str] = set()
        if os.path.isdir(data_folder) and self.walker.enter(data_folder):
            _, files = self.walker.listdir(data_folder)
            available = {entry.name for entry in files}
        head = token_sort_key(step)
        rank_key = rank_sort_key(rank)
        for call_position, (call, entry) in enumerate(data.items()):
            if not isinstance(entry, dict):
                self.walker.report(dump_path, f"entry {call!r} is not an object, ignored")
                continue
            node_type = _call_type(call)
            weights = ".parameters_grad" in call
            items = (
                (leaf, item, "weight" if weights or key == "parameters" else _ROLES.get(key, "tensor"))
                for key, value in entry.items()
                for leaf, item in _tensor_items(value, _LEAF_PREFIX.get(key, key))
            )
            for item_position, (leaf, item, role) in enumerate(items):
                data_name = item.get("data_name")
                if data_name is None:
                    self.statistics[(step, call, leaf, rank)] = item
                    continue
                if not isinstance(data_name, str) or data_name not in available:
                    self.walker.report(dump_path, f"{call} {leaf}: tensor file {data_name!r} not found")
                    continue
                key = (head, call_position, rank_key, item_position)
                path = os.path.join(data_folder, data_name)
                self.rows.append(
                    Row(key, path, step, call, leaf, role, _first_number(leaf), node_type, rank, None)
                )


def index_msprobe_dump(location: MsprobeLocation) -> Dump:
    """Index the msprobe dump found by :func:`locate`."""
    return _MsprobeIndexer(location).run()


LAYOUT = Layout("msprobe", "msprobe step{N}/rank{R}/dump.json", locate, index_msprobe_dump)
