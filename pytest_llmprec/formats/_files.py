"""File checks shared by the readers (no torch needed): sizes, leading bytes, element counts."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence

from ..errors import DumpFormatError

PathLike = str | os.PathLike[str]


class DumpFormatWarning(UserWarning):
    """A file was read, but something in it disagrees with itself (e.g. a length field)."""


def checked_size(path: PathLike) -> int:
    """Size in bytes of the regular file at ``path``; DumpFormatError if it is missing, a folder or empty."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DumpFormatError(path, "no such file") from None
    except OSError as exc:
        raise DumpFormatError(path, f"cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DumpFormatError(path, "is a directory, not a tensor file")
    if not stat.S_ISREG(info.st_mode):
        raise DumpFormatError(path, "is not a regular file")
    if info.st_size == 0:
        raise DumpFormatError(path, "file is empty")
    return info.st_size


def read_bytes(path: PathLike, count: int, offset: int = 0) -> bytes:
    """``count`` bytes of the file from ``offset`` (fewer at its end)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(count)
    except OSError as exc:
        raise DumpFormatError(path, f"cannot be read: {exc.strerror or exc}") from None


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def packed_int4_bytes(count: int) -> int:
    return (count + 1) // 2
