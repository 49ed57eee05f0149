"""Plain tensor files: one file, or a folder tree of ``.pt .pth .npy .npz .bin .safetensors`` files.

Each file is keyed by its path relative to the folder without the extension (``layers/0/attn``);
containers (``.npz``, ``.safetensors``) give one record per member, listed from their headers.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DumpFormatError
from .base import Dump, DumpProblem, natural_key
from .layouts import Layout
from .ordering import Row, build_records
from .walk import SafeWalker, scan

SINGLE_TENSOR_SUFFIXES = (".pt", ".pth", ".npy", ".bin")
CONTAINER_SUFFIXES = (".npz", ".safetensors")
SUFFIXES = SINGLE_TENSOR_SUFFIXES + CONTAINER_SUFFIXES


def _is_tensor_file(name: str) -> bool:
    return name.endswith(SUFFIXES)


def _contains_tensor_file(folder: str) -> bool:
    pending = [folder]
    while pending:
        folders, files = scan(pending.pop())
        if any(_is_tensor_file(entry.name) for entry in files):
            return True
        pending += [entry.path for entry in folders if not entry.is_symlink()]
    return False


def locate(path: str | os.PathLike[str]) -> str | None:
    """``path`` when it is a tensor file or a folder holding one (at any depth), else None."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        return path if _is_tensor_file(os.path.basename(path)) else None
    return path if os.path.isdir(path) and _contains_tensor_file(path) else None


def _stem(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def index_files(location: str) -> Dump:
    """Index the file or folder found by :func:`locate`."""
    problems: list[DumpProblem] = []
    if os.path.isfile(location):
        found = [(_stem(os.path.basename(location)), location)]
    else:
        found = []
        walker = SafeWalker(location, problems)
        pending = [("", location)]
        while pending:
            prefix, folder = pending.pop()
            folders, files = walker.listdir(folder)
            found += [
                (prefix + _stem(entry.name), entry.path) for entry in files if _is_tensor_file(entry.name)
            ]
            pending += [(f"{prefix}{entry.name}/", entry.path) for entry in folders]
    part_keys: dict[str, tuple] = {}  # folder and file names recur under every layer and token

    def part_key(part: str) -> tuple:
        key = part_keys.get(part)
        if key is None:
            key = part_keys[part] = natural_key(part)
        return key

    found.sort(key=lambda item: tuple(map(part_key, item[0].split("/"))))
    rows: list[Row] = []
    seen: dict[str, str] = {}
    for node, path in found:
        if node in seen:
            problems.append(DumpProblem(path, f"same name as {seen[node]} without the extension, ignored"))
            continue
        seen[node] = path
        for member in _members(path, problems):
            leaf = "tensor" if member is None else member
            rows.append(Row((len(rows),), path, 0, node, leaf, "tensor", 0, "", None, member))
    return Dump("files", Path(location), build_records(rows), problems, {})


def _members(path: str, problems: list[DumpProblem]) -> list[str | None]:
    """The members of a container file (from its header), or ``[None]`` for a single-tensor file."""
    if not path.endswith(CONTAINER_SUFFIXES):
        return [None]
    from ..formats import container_headers

    listing = (
        container_headers.npz_members if path.endswith(".npz") else container_headers.safetensors_members
    )
    try:
        return list(listing(path))
    except DumpFormatError as exc:
        problems.append(DumpProblem(path, exc.problem))
    except OSError as exc:
        problems.append(DumpProblem(path, f"cannot read: {exc.strerror or exc}"))
    return []


LAYOUT = Layout("files", f"tensor files ({' '.join(SUFFIXES)})", locate, index_files)
