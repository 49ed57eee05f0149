"""Listing dump folders safely: scandir-based, natural order, no way out of the dump root."""

from __future__ import annotations

import json
import os
from typing import Any

from .base import DumpProblem, natural_key

JSON_SIZE_LIMIT = 1 << 30
"""JSON files (trees, topologies, metadata, dump.json) above this size are reported, not parsed."""


def scan(folder: str) -> tuple[list[os.DirEntry[str]], list[os.DirEntry[str]]]:
    """The sub-folders and files directly in ``folder``, unsorted (symbolic links followed), or two
    empty lists when it cannot be listed: for the cheap probes of ``locate`` functions."""
    folders: list[os.DirEntry[str]] = []
    files: list[os.DirEntry[str]] = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    if entry.is_dir():
                        folders.append(entry)
                    elif entry.is_file():
                        files.append(entry)
                except OSError:
                    continue
    except OSError:
        pass
    return folders, files


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class SafeWalker:
    """Lists folders below ``root`` and reports, instead of raising, what cannot be read.

    Symbolic links are followed only when their target is inside the root (msit's
    ``--enable-symlink`` writes such links); a link out of the root, or a folder link to one of its own
    ancestors, is reported in ``problems`` and skipped.
    """

    def __init__(self, root: str | os.PathLike[str], problems: list[DumpProblem]) -> None:
        self.root = os.path.abspath(root)
        self.real_root = os.path.realpath(self.root)
        self.problems = problems
        self._sort_keys: dict[str, tuple[Any, ...]] = {}

    def report(self, path: str, message: str) -> None:
        self.problems.append(DumpProblem(path, message))

    def contains(self, path: str) -> bool:
        """Whether ``path`` (symlinks resolved) lies inside the dump root."""
        return _inside(os.path.realpath(path), self.real_root)

    def enter(self, folder: str) -> bool:
        """Whether a folder reached by name (not by listing) is inside the root; reported when not."""
        if self.contains(folder):
            return True
        self.report(folder, "folder is outside the dump root (symbolic link), not followed")
        return False

    def listdir(self, folder: str) -> tuple[list[os.DirEntry[str]], list[os.DirEntry[str]]]:
        """The sub-folders and files of ``folder``, each in natural order; problems are reported."""
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            self.report(folder, f"cannot list folder: {exc.strerror or exc}")
            return [], []
        folders: list[os.DirEntry[str]] = []
        files: list[os.DirEntry[str]] = []
        for entry in entries:
            try:
                if entry.is_symlink():
                    kind = self._link_kind(folder, entry)
                elif entry.is_dir(follow_symlinks=False):
                    kind = "dir"
                elif entry.is_file(follow_symlinks=False):
                    kind = "file"
                else:
                    self.report(entry.path, "not a regular file or folder, ignored")
                    continue
            except OSError as exc:
                self.report(entry.path, f"cannot read entry: {exc.strerror or exc}")
                continue
            if kind == "dir":
                folders.append(entry)
            elif kind == "file":
                files.append(entry)
        if len(folders) > 1:
            folders.sort(key=self._sort_key)
        if len(files) > 1:
            files.sort(key=self._sort_key)
        return folders, files

    def _sort_key(self, entry: os.DirEntry[str]) -> tuple[Any, ...]:
        """Natural sort key of an entry's name, cached: the same names recur in every token folder."""
        key = self._sort_keys.get(entry.name)
        if key is None:
            key = self._sort_keys[entry.name] = natural_key(entry.name)
        return key

    def _link_kind(self, folder: str, entry: os.DirEntry[str]) -> str | None:
        target = os.path.realpath(entry.path)
        if not _inside(target, self.real_root):
            self.report(entry.path, f"symbolic link points outside the dump root ({target}), not followed")
            return None
        if os.path.isdir(target):
            if _inside(os.path.realpath(folder), target):
                self.report(entry.path, "symbolic link to one of its own parent folders, not followed")
                return None
            return "dir"
        if os.path.isfile(target):
            return "file"
        self.report(entry.path, "broken symbolic link, ignored")
        return None

    def read_json(self, path: str) -> Any:
        """Parse a JSON file inside the root (NaN/Infinity read as None); None and a problem if it fails."""
        if not self.contains(path):
            self.report(path, "points outside the dump root, not read")
            return None
        try:
            size = os.stat(path).st_size
            if size > JSON_SIZE_LIMIT:
                self.report(
                    path, f"JSON file of {size} bytes exceeds the {JSON_SIZE_LIMIT}-byte limit, not read"
                )
                return None
            with open(path, "rb") as handle:
                return json.loads(handle.read(), parse_constant=lambda _constant: None)
        except OSError as exc:
            self.report(path, f"cannot read JSON file: {exc.strerror or exc}")
        except (ValueError, RecursionError) as exc:
            self.report(path, f"broken JSON: {exc}")
        return None
