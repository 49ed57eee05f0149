"""The ATB dump of ``msit llm dump``: ``tensors/{device}_{pid}/{exec}/{i}_{OpType}/.../after/outtensorN.bin``.

Token folders follow msit's rules (``model/{pid}/*.json`` counts the models): with several topology
JSONs folder 0 is the warm-up and folder 1 holds token 0 (prefill model) and token 1 (decode model);
otherwise folder k is token k. Execution order is depth-first, children before their graph operation.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DumpFormatError
from .base import Dump, DumpProblem
from .layouts import Layout
from .ordering import Row, as_number, build_records, rank_sort_key, token_sort_key
from .walk import SafeWalker

DUMP_ROOT_PREFIXES = ("msit_dump", "ait_dump")
WARMUP_TOKEN = "warmup"
OP_PARAM_FILE = "op_param.json"
TRANSDATA_LAYER = "TransdataOperation_0.json"

_DEVICE_FOLDER = re.compile(r"(\d+)_(\d+)")
_OP_FOLDER = re.compile(r"(\d+)_(.+)")
_TENSOR_FILE = re.compile(r"(in|out)tensor(\d+)\.bin")
_PHASES = ("before", "after")


@dataclass(frozen=True)
class AtbLocation:
    """An ATB dump root and, when the path pointed inside it, the device and token folder it named."""

    root: str
    device: str | None = None
    token: str | None = None


def _is_atb_root(folder: str) -> bool:
    if not os.path.isdir(os.path.join(folder, "tensors")):
        return False
    return os.path.basename(folder).startswith(DUMP_ROOT_PREFIXES) or os.path.isdir(
        os.path.join(folder, "model")
    )


def locate(path: str | os.PathLike[str]) -> AtbLocation | None:
    """Find the ATB dump root above (or at) ``path``, searching upward, and what the path pins."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        return None
    parts: list[str] = []
    current = path
    while True:
        if _is_atb_root(current) and (not parts or parts[-1] == "tensors"):
            inner = parts[::-1][1:]
            device = inner[0] if inner else None
            token = inner[1] if len(inner) > 1 else None
            return AtbLocation(current, device, token)
        parent = os.path.dirname(current)
        if parent == current:
            return None
        parts.append(os.path.basename(current))
        current = parent


def _start_order(model: Any, transdata: bool) -> int | None:
    """The folder index of a model JSON's first top-level node (msit's ``json_start_order``)."""
    nodes = model.get("nodes") if isinstance(model, dict) else None
    if not isinstance(nodes, list) or not nodes or not isinstance(nodes[0], dict):
        return None
    suffix = str(nodes[0].get("opName", "")).rsplit("_", 1)[-1]
    number = as_number(suffix)
    return (0 if number is None else number) + int(transdata)


@dataclass
class _Topology:
    """What the model JSONs of one pid say about its token folders."""

    models: list[dict[str, Any]]
    decode_start: int | None = None
    note: str = ""

    def tokens(self, folder: str) -> tuple[int | str, int | str | None, int | None]:
        """(token, decode token, first decode op index) of a token folder name."""
        number = as_number(folder)
        if number is None:
            return folder, None, None
        if len(self.models) < 2:
            return number, None, None
        if number == 0:
            return WARMUP_TOKEN, None, None
        if number == 1 and self.decode_start is not None:
            return 0, 1, self.decode_start
        return (0 if number == 1 else number), None, None


class _AtbIndexer:
    def __init__(self, location: AtbLocation) -> None:
        self.location = location
        self.problems: list[DumpProblem] = []
        self.walker = SafeWalker(location.root, self.problems)
        self.rows: list[Row] = []
        self.op_params: dict[tuple[int | str, str, int | None], str] = {}
        self.first_bin: str | None = None

    def run(self) -> Dump:
        root, location = self.location.root, self.location
        tensors = os.path.join(root, "tensors")
        if location.device is not None:
            device_folders = [os.path.join(tensors, location.device)]
            if not self.walker.contains(device_folders[0]):
                raise DumpFormatError(device_folders[0], "folder is outside the dump root (symbolic link)")
        else:
            folders, _ = self.walker.listdir(tensors) if self.walker.enter(tensors) else ([], [])
            device_folders = [entry.path for entry in folders if _DEVICE_FOLDER.fullmatch(entry.name)]
        topologies: dict[str, _Topology] = {}
        info: dict[str, Any] = {"processes": {}}
        tokens: list[int | str] = []
        for folder in device_folders:
            name = os.path.basename(folder)
            match = _DEVICE_FOLDER.fullmatch(name)
            if match is None:
                self.walker.report(folder, "not a {device}_{pid} folder")
                continue
            pid = match.group(2)
            info["processes"][name] = {"path": folder, "device": int(match.group(1)), "pid": pid}
            if pid not in topologies:
                topologies[pid] = self._topology(pid)
            tokens += self._device(folder, int(match.group(1)), topologies[pid])
        info["topology"] = {pid: t.models for pid, t in topologies.items() if t.models} or None
        info["token_rule"] = {pid: t.note for pid, t in topologies.items()}
        info["op_params"] = self.op_params
        info["statistics_only"] = self._statistics_only()
        if location.token is not None:
            pinned = sorted(set(tokens), key=token_sort_key)
            info["pinned_token"] = pinned[0] if len(pinned) == 1 else pinned
        return Dump("atb", Path(root), build_records(self.rows), self.problems, info)

    def _topology(self, pid: str) -> _Topology:
        folder = os.path.join(self.location.root, "model", pid)
        if not os.path.isdir(folder) or not self.walker.enter(folder):
            return _Topology([], note="no model topology JSON: folder k is token k")
        transdata = os.path.isfile(os.path.join(self.location.root, "layer", pid, TRANSDATA_LAYER))
        _, files = self.walker.listdir(folder)
        models = []
        for entry in files:
            if not entry.name.endswith(".json"):
                continue
            model = self.walker.read_json(entry.path)
            if model is None:
                continue
            start = _start_order(model, transdata)
            models.append({"path": entry.path, "start_order": start, "model": model})
        models.sort(key=lambda m: (m["start_order"] is None, m["start_order"] or 0))
        if len(models) < 2:
            return _Topology(models, note=f"{len(models)} model topology JSON: folder k is token k")
        note = "several model topology JSONs: folder 0 is the warm-up, folder 1 holds tokens 0 and 1"
        starts = [model["start_order"] for model in models[:2]]
        if None in starts or starts[1] <= starts[0]:
            note += f"; the prefill/decode split is unknown (start orders {starts}), folder 1 is token 0 only"
            return _Topology(models, note=note)
        note += f"; decode-model operations start at folder index {starts[1]}"
        return _Topology(models, decode_start=starts[1], note=note)

    def _device(self, folder: str, rank: int, topology: _Topology) -> list[int | str]:
        """Index the token folders of one device; returns the tokens they hold."""
        tokens: list[int | str] = []
        folders, files = self.walker.listdir(folder)
        for entry in files:
            self.walker.report(entry.path, "unexpected file in a device folder, ignored")
        for entry in folders:
            if self.location.token is not None and entry.name != self.location.token:
                continue
            token, decode_token, decode_start = topology.tokens(entry.name)
            tokens.append(token)
            if decode_token is not None:
                tokens.append(decode_token)
            ops, stray = self.walker.listdir(entry.path)
            for stray_entry in stray:
                self.walker.report(stray_entry.path, "unexpected file in a token folder, ignored")
            positions = itertools.count()
            for op in ops:
                match = _OP_FOLDER.fullmatch(op.name)
                if match is None:
                    self.walker.report(op.path, "not an {index}_{OpType} operation folder, ignored")
                    continue
                in_decode = decode_start is not None and int(match.group(1)) >= decode_start
                op_token = decode_token if in_decode else token
                self._operation(op, match.group(2), op.name, op_token, rank, positions)
        return tokens

    def _operation(
        self,
        op: os.DirEntry[str],
        op_type: str,
        node: str,
        token: int | str,
        rank: int,
        positions: Iterator[int],
    ) -> None:
        """Index one operation folder: its children first (depth-first), then its own tensors."""
        folders, files = self.walker.listdir(op.path)
        tensors: list[tuple[tuple[Any, ...], str, str, str, int]] = []
        for entry in folders:
            if entry.name in _PHASES:
                tensors += self._phase(entry)
                continue
            match = _OP_FOLDER.fullmatch(entry.name)
            if match is None:
                self.walker.report(entry.path, "not an {index}_{OpType} operation folder, ignored")
                continue
            self._operation(entry, match.group(2), f"{node}/{entry.name}", token, rank, positions)
        for entry in files:
            if entry.name == OP_PARAM_FILE:
                self.op_params[(token, node, rank)] = entry.path
            else:
                self.walker.report(entry.path, "unexpected file in an operation folder, ignored")
        head = (token_sort_key(token), next(positions), rank_sort_key(rank))
        tensors.sort(key=lambda tensor: tensor[0])
        for key, path, leaf, role, index in tensors:
            self.rows.append(Row((*head, key), path, token, node, leaf, role, index, op_type, rank, None))

    def _phase(self, folder: os.DirEntry[str]) -> list[tuple[tuple[Any, ...], str, str, str, int]]:
        phase = _PHASES.index(folder.name)
        found = []
        _, files = self.walker.listdir(folder.path)
        for entry in files:
            match = _TENSOR_FILE.fullmatch(entry.name)
            if match is None:
                self.walker.report(entry.path, "not an intensorN.bin/outtensorN.bin file, ignored")
                continue
            if self.first_bin is None:
                self.first_bin = entry.path
            role = "input" if match.group(1) == "in" else "output"
            index = int(match.group(2))
            leaf = f"{folder.name}/{entry.name[:-4]}"
            found.append(((role == "output", index, phase), entry.path, leaf, role, index))
        return found

    def _statistics_only(self) -> bool:
        """Whether the dump holds statistics text files (``--type tensor stats``), sniffing one file."""
        if self.first_bin is None:
            return False
        try:
            with open(self.first_bin, "rb") as handle:
                head = handle.read(512)
        except OSError as exc:
            self.walker.report(self.first_bin, f"cannot read: {exc.strerror or exc}")
            return False
        lines = head.split(b"$End=1", 1)[0].split(b"\n")
        if any(line.startswith(b"$Object") for line in lines):
            return False
        return any(line.startswith((b"max=", b"l2norm=")) for line in lines)


def index_atb_dump(location: AtbLocation) -> Dump:
    """Index the ATB dump found by :func:`locate`."""
    return _AtbIndexer(location).run()


LAYOUT = Layout("atb", "ATB dump msit_dump*/ait_dump* with tensors/", locate, index_atb_dump)
