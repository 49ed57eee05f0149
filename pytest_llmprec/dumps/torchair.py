"""TorchAir (torch.compile) dumps: GE graph dumps (``msit_ge_dump``) and FX ``.npy`` dumps (``msit_fx_dump``).

GE: ``[worldsize{N}_global_rank{R}/]{time}/{device}/{model}/{model_id}/{token}/`` holding
``{OpType}.{OpName}.{task}.{stream}.{time}`` files, with graph text files ``dynamo_*.txt`` at the top.
FX: ``worldsize{N}_global_rank{R}/{model}/{token}/*.npy``, or the older
``data_dump/{token + 1}/gm_{time}_dump/*.npy``. Records are ordered by the time stamp in the file names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DumpFormatError
from .base import Dump, DumpProblem
from .layouts import Layout
from .ordering import Row, as_number, build_records, rank_sort_key, token_sort_key
from .walk import SafeWalker, scan

GE_FOLDER = "msit_ge_dump"
FX_FOLDER = "msit_fx_dump"
OLD_FX_FOLDER = "data_dump"
GRAPH_PREFIX = "dynamo_"
GE_IGNORED_SUFFIXES = (".txt", ".npy", ".bin")

_RANK_FOLDER = re.compile(r"worldsize\d+_global_rank(\d+)")
_GM_FOLDER = re.compile(r"gm_.*_dump")


@dataclass(frozen=True)
class TorchairLocation:
    """A GE or FX dump root and the folder (or file) below it that is to be indexed."""

    root: str
    scope: str


def _rank_of(relative_parts: list[str]) -> int | None:
    for part in relative_parts:
        match = _RANK_FOLDER.fullmatch(part)
        if match:
            return int(match.group(1))
    return None


def _files(folder: str) -> list[str]:
    return [entry.name for entry in scan(folder)[1]]


def _named_ancestor(path: str, names: tuple[str, ...]) -> str | None:
    current = path
    while True:
        if os.path.basename(current) in names:
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _is_ge_file(name: str) -> bool:
    from ..formats.torchair_names import parse_ge_file_name

    return not name.endswith(GE_IGNORED_SUFFIXES) and parse_ge_file_name(name) is not None


def _is_fx_file(name: str) -> bool:
    from ..formats.torchair_names import parse_fx_file_name

    return parse_fx_file_name(name) is not None


def locate_ge(path: str | os.PathLike[str]) -> TorchairLocation | None:
    """Find the GE dump ``path`` is in: ``msit_ge_dump`` above or below it, graph files, or GE files in it."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        name = os.path.basename(path)
        return TorchairLocation(os.path.dirname(path), path) if _is_ge_file(name) else None
    if not os.path.isdir(path):
        return None
    root = _named_ancestor(path, (GE_FOLDER,))
    if root is not None:
        return TorchairLocation(root, path)
    if os.path.isdir(os.path.join(path, GE_FOLDER)):
        return TorchairLocation(os.path.join(path, GE_FOLDER), os.path.join(path, GE_FOLDER))
    names = _files(path)
    if any(name.startswith(GRAPH_PREFIX) and name.endswith(".txt") for name in names):
        return TorchairLocation(path, path)
    if any(_is_ge_file(name) for name in names):
        return TorchairLocation(path, path)
    return None


def locate_fx(path: str | os.PathLike[str]) -> TorchairLocation | None:
    """Find the FX dump ``path`` is in: msit_fx_dump/data_dump above or below it, or FX files in it."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        name = os.path.basename(path)
        return TorchairLocation(os.path.dirname(path), path) if _is_fx_file(name) else None
    if not os.path.isdir(path):
        return None
    root = _named_ancestor(path, (FX_FOLDER,))
    if root is None:
        old = _named_ancestor(path, (OLD_FX_FOLDER,))
        if old is not None and _has_gm_folders(old):
            root = old
    if root is not None:
        return TorchairLocation(root, path)
    for name in (FX_FOLDER, OLD_FX_FOLDER):
        inner = os.path.join(path, name)
        if os.path.isdir(inner) and (name == FX_FOLDER or _has_gm_folders(inner)):
            return TorchairLocation(inner, inner)
    if any(_is_fx_file(name) for name in _files(path)):
        return TorchairLocation(path, path)
    return None


def _has_gm_folders(folder: str) -> bool:
    """Whether ``folder`` is an old FX ``data_dump``: numbered folders holding ``gm_*_dump`` folders."""
    tokens = [entry.path for entry in scan(folder)[0] if as_number(entry.name) is not None]
    return bool(tokens) and _has_gm_folder(tokens[0])


def _has_gm_folder(folder: str) -> bool:
    return any(_GM_FOLDER.fullmatch(entry.name) for entry in scan(folder)[0])


class _TorchairIndexer:
    """Walks the scope of a GE or FX dump, handing each folder's files to :meth:`folder`."""

    kind = ""

    def __init__(self, location: TorchairLocation) -> None:
        self.location = location
        self.problems: list[DumpProblem] = []
        self.walker = SafeWalker(location.root, self.problems)
        self.rows: list[Row] = []
        self.info: dict[str, Any] = {}

    def run(self) -> Dump:
        root, scope = self.location.root, self.location.scope
        if not self.walker.contains(scope):
            raise DumpFormatError(scope, "path is outside the dump root (symbolic link)")
        if os.path.isfile(scope):
            self.folder(
                os.path.relpath(os.path.dirname(scope), root).split(os.sep),
                [(os.path.basename(scope), scope)],
            )
        else:
            pending = [scope]
            while pending:
                folder = pending.pop()
                folders, files = self.walker.listdir(folder)
                pending += [entry.path for entry in reversed(folders)]
                if files:
                    parts = os.path.relpath(folder, root).split(os.sep)
                    self.folder(parts, [(entry.name, entry.path) for entry in files])
            pinned = self.token_of_folder(scope)
            if pinned is not None:
                self.info["pinned_token"] = pinned
        self.finish()
        return Dump(self.kind, Path(root), build_records(self.rows), self.problems, self.info)

    def folder(self, parts: list[str], files: list[tuple[str, str]]) -> None:
        """Index the files (name, path) of the folder at ``parts`` (relative to the root)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Turn what :meth:`folder` collected into rows."""

    def token_of_folder(self, folder: str) -> int | None:
        """The token of ``folder`` when it is a token folder (the path pinned a token), else None."""
        raise NotImplementedError


class _GeIndexer(_TorchairIndexer):
    kind = "ge"

    def __init__(self, location: TorchairLocation) -> None:
        super().__init__(location)
        self.info["graphs"] = []
        self.ops: dict[tuple[int | None, int, str], tuple[str, Any]] = {}

    def run(self) -> Dump:
        if self.location.scope != self.location.root:
            _, files = self.walker.listdir(self.location.root)
            self.info["graphs"] += [entry.path for entry in files if _is_graph(entry.name)]
        return super().run()

    def folder(self, parts: list[str], files: list[tuple[str, str]]) -> None:
        from ..formats.torchair_names import parse_ge_file_name

        token = as_number(parts[-1]) or 0
        rank = _rank_of(parts)
        for name, path in files:
            if _is_graph(name):
                self.info["graphs"].append(path)
                continue
            if name.endswith(GE_IGNORED_SUFFIXES):
                continue
            if name.endswith(".npz"):
                self.walker.report(path, "GE .npz summary (inputs/outputs arrays), not indexed")
                continue
            parsed = parse_ge_file_name(name)
            if parsed is None:
                self.walker.report(path, "not a GE dump file name ({OpType}.{OpName}.{task}.{stream}.{time})")
                continue
            key = (rank, token, parsed.op_name)
            previous = self.ops.get(key)
            if previous is None:
                self.ops[key] = (path, parsed)
                continue
            kept, dropped = previous, (path, parsed)
            if os.path.getsize(path) > os.path.getsize(previous[0]):
                kept, dropped = dropped, kept
            self.ops[key] = kept
            self.walker.report(
                dropped[0], f"second dump of op {parsed.op_name} in token {token}, kept the larger {kept[0]}"
            )

    def finish(self) -> None:
        from ..formats.ge_header import ge_members

        for (rank, token, op_name), (path, parsed) in self.ops.items():
            try:
                members = ge_members(path)
            except DumpFormatError as exc:
                self.walker.report(path, exc.problem)
                continue
            except OSError as exc:
                self.walker.report(path, f"cannot read: {exc.strerror or exc}")
                continue
            head = (token_sort_key(token), parsed.timestamp, os.path.basename(path), rank_sort_key(rank))
            for position, member in enumerate(members):
                role, _, index = member.partition(".")
                leaf = f"{role}_{index}"
                key = (head, position)
                self.rows.append(
                    Row(key, path, token, op_name, leaf, role, int(index), parsed.op_type, rank, member)
                )

    def token_of_folder(self, folder: str) -> int | None:
        if any(_is_ge_file(name) for name in _files(folder)):
            return as_number(os.path.basename(folder)) or 0
        return None


class _FxIndexer(_TorchairIndexer):
    kind = "fx"

    def __init__(self, location: TorchairLocation) -> None:
        super().__init__(location)
        self.seen: set[tuple[int | None, int, str, str]] = set()

    def folder(self, parts: list[str], files: list[tuple[str, str]]) -> None:
        from ..formats.torchair_names import parse_fx_file_name

        token = _fx_token(parts)
        rank = _rank_of(parts)
        dtypes = self._sidecar_dtypes(os.path.join(self.location.root, *parts))
        for name, path in files:
            parsed = parse_fx_file_name(name)
            if parsed is None:
                self.walker.report(
                    path, "not an FX dump file name ({node}-{target}.{INPUT|OUTPUT}.{i}.{time}.npy)"
                )
                continue
            leaf = f"{parsed.role}_{parsed.index}"
            identity = (rank, token, parsed.op_key, leaf)
            if identity in self.seen:
                self.walker.report(path, f"second dump of {parsed.op_key} {leaf} in token {token}, ignored")
                continue
            self.seen.add(identity)
            key = (
                token_sort_key(token),
                parsed.timestamp,
                parsed.role == "output",
                parsed.index,
                name,
                rank_sort_key(rank),
            )
            node, role, index = parsed.op_key, parsed.role, parsed.index
            dtype = dtypes.get((node, role, index))
            self.rows.append(Row(key, path, token, node, leaf, role, index, parsed.target, rank, None, dtype))

    def _sidecar_dtypes(self, folder: str) -> dict[tuple[str, str, int], str]:
        """The original dtypes ``fx_dump_backend`` recorded for the files of ``folder`` by (op key,
        role, index); empty without a sidecar, a broken sidecar is reported as a problem."""
        from ..dtypes import dtype_facts
        from ..formats.fx_sidecar import read_sidecar, sidecar_path

        path = sidecar_path(folder)
        if path is None or not path.is_file():
            return {}
        try:
            nodes = read_sidecar(path)
        except (OSError, ValueError) as exc:
            self.walker.report(str(path), f"node sidecar not read, dtypes are the files': {exc}")
            return {}
        dtypes: dict[tuple[str, str, int], str] = {}
        for op_key, entry in nodes.items():
            for role in ("input", "output"):
                names = entry.get(f"{role}s") if isinstance(entry, dict) else None
                for index, name in enumerate(names if isinstance(names, list) else []):
                    try:
                        dtype_facts(name)
                    except (TypeError, ValueError):
                        continue  # not a dtype this package knows: the file's dtype is used
                    dtypes[(op_key, role, index)] = str(name)
        return dtypes

    def token_of_folder(self, folder: str) -> int | None:
        if any(_is_fx_file(name) for name in _files(folder)):
            return _fx_token(folder.split(os.sep))
        return _fx_token([*folder.split(os.sep), "gm_0_dump"]) if _has_gm_folder(folder) else None


def _is_graph(name: str) -> bool:
    return name.startswith(GRAPH_PREFIX) and name.endswith(".txt")


def _fx_token(parts: list[str]) -> int:
    """Token of an FX folder: its number, or for ``{n}/gm_*_dump`` (folders counted from 1) ``n - 1``."""
    if _GM_FOLDER.fullmatch(parts[-1]) and len(parts) > 1:
        number = as_number(parts[-2])
        return max(number - 1, 0) if number is not None else 0
    return as_number(parts[-1]) or 0


def index_ge_dump(location: TorchairLocation) -> Dump:
    """Index the GE dump found by :func:`locate_ge`."""
    return _GeIndexer(location).run()


def index_fx_dump(location: TorchairLocation) -> Dump:
    """Index the FX dump found by :func:`locate_fx`."""
    return _FxIndexer(location).run()


GE_LAYOUT = Layout("ge", "GE dump (msit_ge_dump, dynamo_*.txt, GE-named files)", locate_ge, index_ge_dump)
FX_LAYOUT = Layout("fx", "FX dump (msit_fx_dump, data_dump/{n}/gm_*_dump)", locate_fx, index_fx_dump)
