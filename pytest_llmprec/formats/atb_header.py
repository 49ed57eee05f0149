"""ATB tensor ``.bin`` headers, without torch: a text header of ``key=value`` lines ending ``$End=1``.

``read_layout`` parses and checks a tensor file's header against the file (the payload follows
it); ``read_atb_stats`` reads the statistics-only variant (text lines ``format, dtype, dims,
max, min, mean, l2norm``, no payload) written by ATB dumps of type ``stats``.
``atb_bin`` reads and writes the payloads as torch tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..dtypes import dtype_facts
from ..errors import DumpFormatError
from . import layout_codes
from ._files import DumpFormatWarning, PathLike, checked_size, element_count, packed_int4_bytes, read_bytes

HEADER_LIMIT = 1 << 20
"""The header (or a statistics file) must end within this many bytes."""

INT4 = 29
DTYPE_NAMES = {
    0: "torch.float32", 1: "torch.float16", 2: "torch.int8", 3: "torch.int32", 4: "torch.uint8",
    6: "torch.int16", 7: "torch.uint16", 8: "torch.uint32", 9: "torch.int64", 10: "torch.uint64",
    11: "torch.float64", 12: "torch.bool", 16: "torch.complex64", 17: "torch.complex128",
    27: "torch.bfloat16", INT4: "torch.int8",
}  # fmt: skip
"""aclDataType code -> dtype of the loaded tensor (int4 is unpacked to int8)."""

STATS_KEYS = ("max", "min", "mean", "l2norm")
_STATS_TAIL = 64
"""Blank bytes tolerated after the ``$End=1`` line of a statistics file."""
_END = b"$End=1"


@dataclass(frozen=True)
class AtbHeader:
    """The parsed header of an ATB file: every ``key=value`` line, in order, and where the payload starts."""

    attributes: dict[str, str]
    length: int
    file_size: int
    has_end: bool


def _read_header_bytes(path: PathLike, size: int, head: bytes = b"") -> bytes:
    """The file's first bytes, read in growing blocks until they hold the ``$End=1`` line; ``head``:
    its first bytes when the caller read them already."""
    limit = min(size, HEADER_LIMIT)
    head = head[:limit] or read_bytes(path, min(limit, 4096))
    while len(head) < limit and b"\n" + _END + b"\n" not in head and not head.startswith(_END + b"\n"):
        head += read_bytes(path, min(limit - len(head), len(head)), offset=len(head))
    return head


def parse_header(path: PathLike, head: bytes = b"") -> AtbHeader:
    """Parse the ``key=value`` lines up to ``$End=1`` (or to the end of a text-only file); ``head``:
    the file's first bytes when the caller read them already."""
    size = checked_size(path)
    head = _read_header_bytes(path, size, head)
    attributes: dict[str, str] = {}
    start = number = 0
    while start < len(head):
        newline = head.find(b"\n", start)
        if newline < 0:
            if len(head) < size:
                break
            newline = len(head)
        line = head[start:newline]
        start = newline + 1
        if line == _END:
            return AtbHeader(attributes, min(start, size), size, has_end=True)
        number += 1
        key, value = _split_line(path, line, number)
        attributes[key] = value
    if start < size:
        raise DumpFormatError(path, f"header has no '$End=1' line within its first {HEADER_LIMIT} bytes")
    return AtbHeader(attributes, size, size, has_end=False)


def _split_line(path: PathLike, line: bytes, number: int) -> tuple[str, str]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise DumpFormatError(
            path, f"header line {number} is not UTF-8 text (binary data before any '$End=1' line)"
        ) from None
    parts = text.split("=")
    if len(parts) != 2 or not parts[0]:
        raise DumpFormatError(path, f"header line {number} is not a 'key=value' line: {text[:80]!r}")
    return parts[0], parts[1]


def _int_field(path: PathLike, attributes: dict[str, str], key: str, default: int | None = None) -> int:
    value = attributes.get(key)
    if value is None:
        if default is None:
            raise DumpFormatError(path, f"header has no '{key}=' line")
        return default
    try:
        return int(value)
    except ValueError:
        raise DumpFormatError(path, f"header field {key}={value!r} is not an integer") from None


def _dims(path: PathLike, attributes: dict[str, str]) -> tuple[int, ...]:
    value = attributes.get("dims")
    if value is None:
        raise DumpFormatError(path, "header has no 'dims=' line")
    if not value:
        return ()
    try:
        dims = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise DumpFormatError(path, f"dims={value!r} is not a comma-separated list of integers") from None
    if any(d < 0 for d in dims):
        raise DumpFormatError(path, f"dims={value!r} has a negative size")
    return dims


def _dtype(path: PathLike, attributes: dict[str, str]) -> int:
    code = _int_field(path, attributes, "dtype")
    if code not in DTYPE_NAMES:
        raise DumpFormatError(path, f"unknown or unsupported dtype code {code} (aclDataType)")
    return code


def payload_bytes(code: int, dims: Sequence[int]) -> int:
    """Bytes of the payload of a tensor of aclDataType ``code`` and ``dims``."""
    count = element_count(dims)
    return packed_int4_bytes(count) if code == INT4 else count * _itemsize(DTYPE_NAMES[code])


def _check_declared_lengths(path: PathLike, attributes: dict[str, str], payload: int, count: int) -> None:
    """Warn when ``$Object.Length`` or ``$Object.data`` is neither the payload bytes nor the element count."""
    declared = []
    if "$Object.Length" in attributes:
        declared.append(("$Object.Length", attributes["$Object.Length"]))
    if "$Object.data" in attributes:
        declared.append(("$Object.data", attributes["$Object.data"].rpartition(",")[2]))
    for key, value in declared:
        if value.strip() not in (str(payload), str(count)):
            warnings.warn(
                f"{path}: {key} declares {value!r} but the payload holds {payload} bytes "
                f"({count} elements); the file size is used",
                DumpFormatWarning,
                stacklevel=2,
            )


def _reject_stats(path: PathLike, header: AtbHeader) -> None:
    if any(key in header.attributes for key in STATS_KEYS):
        raise DumpFormatError(
            path, "holds statistics only (an ATB 'stats' dump), no tensor data; use read_atb_stats"
        )
    if not header.has_end:
        raise DumpFormatError(path, "header has no '$End=1' line")


@dataclass(frozen=True)
class AtbLayout:
    """What the header says about the payload: dtype, format, dims, where the payload is."""

    dtype_code: int
    format_code: int
    dims: tuple[int, ...]
    header: AtbHeader


def read_layout(path: PathLike, head: bytes = b"") -> AtbLayout:
    """Parse and validate the header against the file size, without touching the payload (``head``:
    the file's first bytes when the caller read them already)."""
    header = parse_header(path, head)
    _reject_stats(path, header)
    attributes = header.attributes
    code = _dtype(path, attributes)
    dims = _dims(path, attributes)
    format_code = _int_field(path, attributes, "format", default=layout_codes.ND)
    count = _int_field(path, attributes, "$Object.Count", default=1)
    if count != 1:
        raise DumpFormatError(path, f"$Object.Count={count}; an ATB tensor file holds exactly one object")
    expected = payload_bytes(code, dims)
    actual = header.file_size - header.length
    if actual < expected:
        raise DumpFormatError(
            path, f"truncated payload: {actual} bytes, but dims {dims} of dtype {code} need {expected} bytes"
        )
    if actual > expected:
        raise DumpFormatError(
            path, f"payload is {actual} bytes, more than the {expected} bytes that dims {dims} need"
        )
    _check_declared_lengths(path, attributes, actual, element_count(dims))
    return AtbLayout(code, format_code, dims, header)


def read_atb_stats(path: PathLike) -> dict[str, Any]:
    """Read a statistics-only ATB file: ``format``/``dtype`` as int, ``dims`` as a tuple, stats as float.

    Other keys are kept as strings. A missing ``$End=1`` line gives a warning, as in msit.
    """
    header = parse_header(path)
    rest = header.file_size - header.length
    if rest > _STATS_TAIL or read_bytes(path, rest, offset=header.length).strip():
        raise DumpFormatError(path, "holds tensor data after its header, not statistics; use read_atb_bin")
    attributes = header.attributes
    if not any(key in attributes for key in STATS_KEYS):
        raise DumpFormatError(path, f"has no statistics lines ({', '.join(STATS_KEYS)})")
    if not header.has_end:
        warnings.warn(f"{path}: statistics file has no '$End=1' line", DumpFormatWarning, stacklevel=2)
    stats: dict[str, Any] = dict(attributes)
    for key in ("format", "dtype"):
        if key in attributes:
            stats[key] = _int_field(path, attributes, key)
    if "dims" in attributes:
        stats["dims"] = _dims(path, attributes)
    for key in STATS_KEYS:
        if key in attributes:
            try:
                stats[key] = float(attributes[key])
            except ValueError:
                raise DumpFormatError(path, f"statistic {key}={attributes[key]!r} is not a number") from None
    return stats


_COMPLEX_ITEMSIZES = {"torch.complex64": 8, "torch.complex128": 16}


def _itemsize(name: str) -> int:
    return _COMPLEX_ITEMSIZES.get(name) or dtype_facts(name).itemsize
