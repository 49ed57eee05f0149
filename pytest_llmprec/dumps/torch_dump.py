"""The msit PyTorch hook dump: ``torch_tensors/{device}_{pid}/{token}/{module}/input_N.pth``.

Also the older ``ait_dump/torch_tensors/...`` root, the v1.0 ``{dump_path}/{pid}_npu{id}`` layout,
last-logits dumps and ``weights/``. Execution order is the post-order of ``model_tree.json``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DumpFormatError
from .base import Dump, DumpProblem, TensorRecord, natural_key
from .layouts import Layout
from .ordering import Row, as_number, build_records, rank_sort_key, token_sort_key
from .walk import SafeWalker, scan

TREE_FILE = "model_tree.json"
ORDER_FILE = "execution_order.json"
STATISTICS_FILE = "statistics.csv"
WEIGHTS_FOLDER = "weights"
WEIGHTS_TOKEN = "weights"
REPLAY_PREFIX = "replay_"
"""Files ``replay_output*.pth``: the module's output when run on golden's inputs (capture/replay.py)."""

_DEVICE_FOLDER = re.compile(r"(?:(?:npu|cuda)(\d+)|cpu)_\d+")
_V1_DEVICE_FOLDER = re.compile(r"\d+_(?:npu|cuda)(\d+)")


@dataclass(frozen=True)
class TorchLocation:
    """Where a torch dump is: its root, the folder of its ``{device}_{pid}`` folders, what is pinned."""

    root: str
    container: str
    device: str | None = None
    token: str | None = None


def _device_rank(name: str) -> tuple[bool, int | None]:
    """Whether ``name`` is a ``{device}_{pid}`` (or v1.0 ``{pid}_npu{id}``) folder, and its device index."""
    match = _DEVICE_FOLDER.fullmatch(name) or _V1_DEVICE_FOLDER.fullmatch(name)
    if match is None:
        return False, None
    return True, None if match.group(1) is None else int(match.group(1))


def _is_device_folder(folder: str) -> bool:
    name = os.path.basename(folder)
    if os.path.isfile(os.path.join(folder, TREE_FILE)):
        return True
    if _V1_DEVICE_FOLDER.fullmatch(name):
        return True
    return (
        bool(_DEVICE_FOLDER.fullmatch(name)) and os.path.basename(os.path.dirname(folder)) == "torch_tensors"
    )


def _root_of(container: str) -> str:
    return os.path.dirname(container) if os.path.basename(container) == "torch_tensors" else container


def locate(path: str | os.PathLike[str]) -> TorchLocation | None:
    """Find the torch dump that ``path`` (root, ``torch_tensors``, device, token or module folder) is in."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        return None
    current, below = path, None
    for _ in range(3):
        if _is_device_folder(current):
            container = os.path.dirname(current)
            return TorchLocation(_root_of(container), container, os.path.basename(current), below)
        below, current = os.path.basename(current), os.path.dirname(current)
    for container in (path, os.path.join(path, "torch_tensors")):
        if any(_is_device_folder(entry.path) for entry in scan(container)[0]):
            return TorchLocation(_root_of(container), container)
    return None


def _tree_order(tree: Any) -> tuple[dict[str, int], dict[str, str]]:
    """Post-order position and class name of every module of a ``model_tree.json`` tree."""
    positions: dict[str, int] = {}
    types: dict[str, str] = {}
    stack: list[tuple[Any, bool]] = [(tree, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, dict) or not isinstance(node.get("name"), str):
            continue
        name = node["name"]
        if children_done:
            positions.setdefault(name, len(positions))
            types.setdefault(name, str(node.get("type") or ""))
            continue
        stack.append((node, True))
        children = node.get("children")
        if isinstance(children, list):
            stack.extend((child, False) for child in reversed(children))
    return positions, types


def module_positions(tree: Any) -> dict[str, int]:
    """Post-order position of every module of a ``model_tree.json`` tree (the execution order of outputs)."""
    return _tree_order(tree)[0]


def _implied_key(name: str) -> tuple[Any, ...]:
    """Post-order by name alone: ``a.b.c`` before ``a.b``, siblings in natural order."""
    return (*((0, natural_key(part)) for part in name.split(".")), (1,))


def _node_key(name: str, positions: dict[str, int]) -> tuple[Any, ...]:
    """Sort key of a module folder: its tree position, or right before its nearest ancestor in the tree.

    A repeated call's folder ``{module}@k`` sorts right after ``{module}``.
    """
    base, at, call = name.rpartition("@")
    if at and call.isdigit():
        position, rank, implied = _node_key(base, positions)
        return (position, rank, (*implied, int(call)))
    position = positions.get(name)
    if position is not None:
        return (position, 1, ())
    parent = name
    while "." in parent:
        parent = parent.rsplit(".", 1)[0]
        position = positions.get(parent)
        if position is not None:
            return (position, 0, _implied_key(name))
    return (math.inf, 0, _implied_key(name))


def _parse_leaf(name: str) -> tuple[str, str, tuple[Any, ...]] | None:
    """``input_1.pth`` → (stem, role, sort key) for ``input[_N...]``/``output[_N...]`` ``.pth`` files.

    Keyword-argument inputs ``kwarg_{name}.pth`` (written by our capture) are inputs sorted after
    the positional ones.
    """
    if not name.endswith(".pth"):
        return None
    stem = name[:-4]
    if stem.startswith("kwarg_") and len(stem) > 6:
        return stem, "input", (1, natural_key(stem))
    if stem.startswith("input"):
        role, rest = "input", stem[5:]
    elif stem.startswith("output"):
        role, rest = "output", stem[6:]
    else:
        return None
    if not rest:
        return stem, role, (0, ())
    parts = rest.split("_")
    if parts[0] or not all(part.isascii() and part.isdigit() for part in parts[1:]):
        return None
    return stem, role, (0, tuple(int(part) for part in parts[1:]))


class _TorchIndexer:
    def __init__(self, location: TorchLocation) -> None:
        self.location = location
        self.problems: list[DumpProblem] = []
        self.walker = SafeWalker(location.root, self.problems)
        self.rows: list[Row] = []
        self.model_trees: dict[int | None, str] = {}
        self.processes: dict[str, dict[str, Any]] = {}
        self.statistics: dict[tuple[int | str, str, int | None], str] = {}
        self.replays: dict[tuple[Any, ...], TensorRecord] = {}

    def run(self) -> Dump:
        location = self.location
        if location.device is not None:
            device_folders = [os.path.join(location.container, location.device)]
            if not self.walker.contains(device_folders[0]):
                raise DumpFormatError(device_folders[0], "folder is outside the dump root (symbolic link)")
        else:
            container = location.container
            folders, _ = self.walker.listdir(container) if self.walker.enter(container) else ([], [])
            device_folders = [entry.path for entry in folders if _device_rank(entry.name)[0]]
        for folder in device_folders:
            self._device(folder)
        info: dict[str, Any] = {
            "model_trees": self.model_trees,
            "statistics": self.statistics,
            "processes": self.processes,
        }
        if location.token is not None:
            number = as_number(location.token)
            info["pinned_token"] = location.token if number is None else number
        records = build_records(self.rows)
        return Dump("torch", Path(location.root), records, self.problems, info, self.replays)

    def _device(self, folder: str) -> None:
        rank = _device_rank(os.path.basename(folder))[1]
        folders, files = self.walker.listdir(folder)
        positions: dict[str, int] = {}
        types: dict[str, str] = {}
        calls: dict[str, list[str]] = {}
        process: dict[str, Any] = {"path": folder, "device": rank, "model_tree": None}
        self.processes[os.path.basename(folder)] = process
        for entry in files:
            if entry.name == ORDER_FILE:
                calls = _execution_order(self.walker.read_json(entry.path))
                if not calls:
                    self.walker.report(entry.path, "no {token: [module folders]} object in the file")
            elif entry.name == TREE_FILE:
                tree = self.walker.read_json(entry.path)
                if tree is not None:
                    positions, types = _tree_order(tree)
                    if positions:
                        self.model_trees[rank] = entry.path
                        process["model_tree"] = tree
                    else:
                        self.walker.report(entry.path, "no module tree ({name, type, children}) in the file")
            else:
                self.walker.report(entry.path, "unexpected file in a device folder, ignored")
        keys: dict[str, tuple[Any, ...]] = {}
        for entry in folders:
            if self.location.token is not None and entry.name != self.location.token:
                continue
            token = as_number(entry.name)
            if token is not None:
                self._token(
                    entry.path, token, rank, types, _sort_keys(calls.get(str(token)), positions, keys)
                )
            elif entry.name == WEIGHTS_FOLDER:
                self._weights(entry.path, rank)
            else:
                self.walker.report(entry.path, "not a token folder (expected a number or weights), ignored")

    def _token(
        self,
        folder: str,
        token: int,
        rank: int | None,
        types: dict[str, str],
        node_key_of: Callable[[str], tuple[Any, ...]],
    ) -> None:
        token_key = token_sort_key(token)
        rank_key = rank_sort_key(rank)
        modules, stray = self.walker.listdir(folder)
        for entry in stray:
            self.walker.report(entry.path, "unexpected file in a token folder, ignored")
        for module in modules:
            node = module.name
            node_key = node_key_of(node)
            node_type = types.get(node, "")
            _, files = self.walker.listdir(module.path)
            for entry in files:
                if entry.name.startswith(REPLAY_PREFIX) and self._replay(entry, token, node, node_type, rank):
                    continue
                leaf = _parse_leaf(entry.name)
                if leaf is None:
                    if entry.name == STATISTICS_FILE:
                        self.statistics[(token, node, rank)] = entry.path
                    else:
                        self.walker.report(entry.path, "not an input_N/output_N .pth file, ignored")
                    continue
                stem, role, leaf_key = leaf
                numbers = leaf_key[1] if leaf_key[0] == 0 else ()
                self.rows.append(
                    Row(
                        (token_key, node_key, rank_key, role == "output", leaf_key),
                        entry.path,
                        token,
                        node,
                        stem,
                        role,
                        numbers[0] if numbers else 0,
                        node_type,
                        rank,
                        None,
                    )
                )

    def _replay(self, entry: os.DirEntry, token: int, node: str, node_type: str, rank: int | None) -> bool:
        """Index ``replay_output*.pth``; False for other names (reported as stray files)."""
        leaf = _parse_leaf(entry.name[len(REPLAY_PREFIX) :])
        if leaf is None or leaf[1] != "output":
            return False
        record = TensorRecord(entry.path, token, node, leaf[0], "replay", node_type=node_type, rank=rank)
        self.replays[(token, node, leaf[0], rank)] = record
        return True

    def _weights(self, folder: str, rank: int | None) -> None:
        token_key = token_sort_key(WEIGHTS_TOKEN)
        _, files = self.walker.listdir(folder)
        for entry in files:
            if not entry.name.endswith(".pth"):
                self.walker.report(entry.path, "not a .pth weight file, ignored")
                continue
            node = entry.name[:-4]
            key = (token_key, (0, 0, natural_key(node)), rank_sort_key(rank), False, ())
            self.rows.append(Row(key, entry.path, WEIGHTS_TOKEN, node, "weight", "weight", 0, "", rank, None))


def _sort_keys(
    called: list[str] | None, positions: dict[str, int], cache: dict[str, tuple[Any, ...]]
) -> Callable[[str], tuple[Any, ...]]:
    """Node sort keys for one token: the recorded call order when there is one (folders not in it
    come last), else the model tree's post-order (cached across tokens)."""
    if called:
        index = {name: position for position, name in enumerate(called)}
        return lambda name: (index[name], 1, ()) if name in index else (math.inf, 0, _implied_key(name))

    def from_tree(name: str) -> tuple[Any, ...]:
        if name not in cache:
            cache[name] = _node_key(name, positions)
        return cache[name]

    return from_tree


def _execution_order(data: Any) -> dict[str, list[str]]:
    """``execution_order.json`` (token -> module folders in completion order), or {} if malformed."""
    if not isinstance(data, dict):
        return {}
    return {
        str(token): folders
        for token, folders in data.items()
        if isinstance(folders, list) and all(isinstance(folder, str) for folder in folders)
    }


def index_torch_dump(location: TorchLocation) -> Dump:
    """Index the torch dump found by :func:`locate`."""
    return _TorchIndexer(location).run()


LAYOUT = Layout(
    "torch", "msit torch dump (model_tree.json, torch_tensors/{device}_{pid}/)", locate, index_torch_dump
)
