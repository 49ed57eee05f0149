"""Member lists of container files (``.npz``, ``.safetensors``) from their headers alone, without torch.

Dump indexing lists members here; the tensor readers (``numpy_files``, ``safetensors_file``) open
the same headers through these functions.
"""

from __future__ import annotations

import json
import struct
import zipfile
from typing import Any

from ..errors import DumpFormatError
from ._files import PathLike, checked_size, read_bytes

SAFETENSORS_MAX_HEADER = 100 << 20
"""The safetensors library refuses larger JSON headers too."""

_LENGTH = struct.Struct("<Q")


def open_npz(path: PathLike) -> zipfile.ZipFile:
    """The ``.npz`` file opened as a zip archive; DumpFormatError naming the file when it is not one."""
    checked_size(path)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DumpFormatError(path, f"not a readable .npz (zip) archive: {exc}") from None


def npz_members(path: PathLike) -> list[str]:
    """The array names of an ``.npz`` file (zip entries ending ``.npy``, without that suffix)."""
    with open_npz(path) as archive:
        return [name[:-4] for name in archive.namelist() if name.endswith(".npy")]


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """True when ``head`` starts with a header length that fits the file, followed by ``{``."""
    if len(head) < _LENGTH.size + 1:
        return False
    length = _LENGTH.unpack_from(head)[0]
    return 0 < length <= size - _LENGTH.size and head[_LENGTH.size : _LENGTH.size + 1] == b"{"


def safetensors_header(path: PathLike) -> tuple[dict[str, Any], int, int]:
    """The parsed JSON header of a safetensors file, the offset of its data and the file size; the
    header length is checked against the file size before it is read."""
    size = checked_size(path)
    head = read_bytes(path, _LENGTH.size)
    if len(head) < _LENGTH.size:
        raise DumpFormatError(path, f"too short for a safetensors file ({size} bytes)")
    length = _LENGTH.unpack(head)[0]
    if length > size - _LENGTH.size or length > SAFETENSORS_MAX_HEADER:
        raise DumpFormatError(path, f"safetensors header length {length} exceeds the file ({size} bytes)")
    raw = read_bytes(path, length, offset=_LENGTH.size)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DumpFormatError(path, f"safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise DumpFormatError(path, "safetensors header is not a JSON object")
    return header, _LENGTH.size + length, size


def safetensors_members(path: PathLike) -> list[str]:
    """The tensor names of a safetensors file, in header order."""
    return [name for name in safetensors_header(path)[0] if name != "__metadata__"]
