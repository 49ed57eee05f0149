"""The manual dump of ``dump_data``: ``{pid}_{device}/golden_tensor/{token}/{data_id}_tensor.pth``.

``golden_tensor/metadata.json`` maps ``{data_id: {token: [golden_path, my_path]}}``; the golden
tensors become records and the *my* paths are kept in ``info["my_paths"]`` for pairing.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DumpFormatError
from .base import Dump, DumpProblem, natural_key
from .layouts import Layout
from .ordering import Row, as_number, build_records, rank_sort_key, token_sort_key
from .walk import SafeWalker, scan

GOLDEN_FOLDER = "golden_tensor"
METADATA_FILE = "metadata.json"
TENSOR_SUFFIX = "_tensor.pth"

_PROCESS_FOLDER = re.compile(r"\d+_(-?\d+)")


@dataclass(frozen=True)
class ManualLocation:
    """A manual dump root and, when the path pointed inside it, the process folder and token folder."""

    root: str
    process: str | None = None
    token: str | None = None


def _is_process_folder(folder: str) -> bool:
    return os.path.isdir(os.path.join(folder, GOLDEN_FOLDER))


def locate(path: str | os.PathLike[str]) -> ManualLocation | None:
    """Find the manual dump ``path`` is in: its root, a ``{pid}_{device}`` folder, golden_tensor or below."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        return None
    if os.path.basename(path) == GOLDEN_FOLDER:
        path = os.path.dirname(path)
    elif os.path.basename(os.path.dirname(path)) == GOLDEN_FOLDER:
        process = os.path.dirname(os.path.dirname(path))
        return ManualLocation(os.path.dirname(process), os.path.basename(process), os.path.basename(path))
    if _is_process_folder(path):
        return ManualLocation(os.path.dirname(path), os.path.basename(path))
    if any(_is_process_folder(entry.path) for entry in scan(path)[0]):
        return ManualLocation(path)
    return None


class _ManualIndexer:
    def __init__(self, location: ManualLocation) -> None:
        self.location = location
        self.problems: list[DumpProblem] = []
        self.walker = SafeWalker(location.root, self.problems)
        self.rows: list[Row] = []
        self.my_paths: dict[tuple[int, str], str] = {}

    def run(self) -> Dump:
        location = self.location
        if location.process is not None:
            processes = [os.path.join(location.root, location.process)]
            if not self.walker.contains(processes[0]):
                raise DumpFormatError(processes[0], "folder is outside the dump root (symbolic link)")
        else:
            folders, _ = self.walker.listdir(location.root)
            processes = [entry.path for entry in folders if _is_process_folder(entry.path)]
        for process in processes:
            self._process(process)
        info: dict[str, Any] = {"my_paths": self.my_paths}
        if location.token is not None:
            number = as_number(location.token)
            info["pinned_token"] = location.token if number is None else number
        return Dump("manual", Path(location.root), build_records(self.rows), self.problems, info)

    def _process(self, folder: str) -> None:
        match = _PROCESS_FOLDER.fullmatch(os.path.basename(folder))
        device = int(match.group(1)) if match else -1
        rank = None if device < 0 else device
        golden = os.path.join(folder, GOLDEN_FOLDER)
        if not self.walker.enter(golden):
            return
        token_folders, files = self.walker.listdir(golden)
        metadata: Any = None
        for entry in files:
            if entry.name == METADATA_FILE:
                metadata = self.walker.read_json(entry.path)
                if metadata is not None and not isinstance(metadata, dict):
                    self.walker.report(entry.path, "metadata is not a JSON object {data_id: {token: [...]}}")
                    metadata = None
        data_ids = list(metadata) if metadata else []
        listed = {data_id: position for position, data_id in enumerate(data_ids)}
        found: set[tuple[int, str]] = set()
        for entry in token_folders:
            if self.location.token is not None and entry.name != self.location.token:
                continue
            token = as_number(entry.name)
            if token is None:
                self.walker.report(entry.path, "not a token folder (expected a number), ignored")
                continue
            _, tensor_files = self.walker.listdir(entry.path)
            for tensor in tensor_files:
                if not tensor.name.endswith(TENSOR_SUFFIX):
                    self.walker.report(tensor.path, f"not a {{data_id}}{TENSOR_SUFFIX} file, ignored")
                    continue
                data_id = tensor.name[: -len(TENSOR_SUFFIX)]
                found.add((token, data_id))
                key = (token_sort_key(token), listed.get(data_id, math.inf), natural_key(data_id))
                key = (*key, rank_sort_key(rank))
                self.rows.append(Row(key, tensor.path, token, data_id, "tensor", "tensor", 0, "", rank, None))
        if metadata:
            self._my_paths(os.path.join(golden, METADATA_FILE), metadata, found)

    def _my_paths(self, metadata_path: str, metadata: dict[str, Any], found: set[tuple[int, str]]) -> None:
        base = os.path.dirname(metadata_path)
        for data_id, tokens in metadata.items():
            if not isinstance(tokens, dict):
                self.walker.report(
                    metadata_path, f"entry {data_id!r} is not a {{token: [golden, my]}} object"
                )
                continue
            for token_name, paths in tokens.items():
                token = as_number(str(token_name))
                valid = isinstance(paths, list) and len(paths) == 2 and all(isinstance(p, str) for p in paths)
                if token is None or not valid:
                    self.walker.report(metadata_path, f"entry {data_id!r}/{token_name!r} is not [golden, my]")
                    continue
                if self.location.token is not None and token_name != self.location.token:
                    continue
                if (token, data_id) not in found:
                    self.walker.report(
                        metadata_path, f"golden tensor of {data_id!r} token {token} is missing"
                    )
                my_path = os.path.join(base, paths[1])
                if not os.path.isfile(my_path):
                    self.walker.report(my_path, f"my data of {data_id!r} token {token} does not exist")
                elif (token, data_id) in self.my_paths:
                    self.walker.report(
                        my_path, f"my data of {data_id!r} token {token} listed twice, kept first"
                    )
                else:
                    self.my_paths[(token, data_id)] = os.path.abspath(my_path)


def index_manual_dump(location: ManualLocation) -> Dump:
    """Index the manual dump found by :func:`locate`."""
    return _ManualIndexer(location).run()


LAYOUT = Layout("manual", "manual dump {pid}_{device}/golden_tensor/", locate, index_manual_dump)
