"""The header of a GE dump file, read with protobuf only (no torch).

A GE dump file is ``[uint64 LE header length H][H bytes of toolkit.dumpdata.DumpData][data]``;
the data segment holds the inputs then the outputs, ``size`` bytes each. Every offset and size
is checked against the file size before anything is read.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from ..errors import DumpFormatError
from ._files import PathLike, checked_size, read_bytes

LENGTH = struct.Struct("<Q")
_FIRST_TAGS = frozenset({0x0A, 0x10, 0x1A, 0x22, 0x2A, 0x32})
"""The tag bytes DumpData's fields 1 to 6 start with: a cheap test before parsing a header."""
_MEMBER = re.compile(r"(input|output)s?\.(\d+)")


def dump_data_class() -> Any:
    """The DumpData message class; reuses an already registered ``toolkit.dumpdata`` (e.g. msprobe's)."""
    try:
        from .ge_dump_pb2 import DumpData
    except TypeError:
        from google.protobuf import descriptor_pool, message_factory

        descriptor = descriptor_pool.Default().FindMessageTypeByName("toolkit.dumpdata.DumpData")
        return message_factory.GetMessageClass(descriptor)
    return DumpData


@dataclass(frozen=True)
class Entry:
    """Where one tensor of a GE dump is: its header message and its bytes in the file (or inline)."""

    member: str
    message: Any
    offset: int
    size: int
    inline: bool


def looks_like_ge(path: PathLike, size: int) -> bool:
    """True when the file starts with a header length that fits and a DumpData header with tensors."""
    head = read_bytes(path, LENGTH.size + 1)
    if len(head) <= LENGTH.size or head[LENGTH.size] not in _FIRST_TAGS:
        return False
    if not 0 < LENGTH.unpack_from(head)[0] <= size - LENGTH.size:
        return False
    try:
        message = parse_header(path, size)[0]
    except DumpFormatError:
        return False
    return bool(message.input or message.output)


def parse_header(path: PathLike, size: int) -> tuple[Any, int]:
    """The DumpData message and the offset of the data segment, validated against the file size."""
    if size < LENGTH.size:
        raise DumpFormatError(
            path, f"too short for a GE dump ({size} bytes, the header length alone takes 8)"
        )
    length = LENGTH.unpack(read_bytes(path, LENGTH.size))[0]
    if length > size - LENGTH.size:
        raise DumpFormatError(path, f"GE header length {length} exceeds the file ({size} bytes)")
    header = read_bytes(path, length, offset=LENGTH.size)
    try:
        message = dump_data_class().FromString(header)
    except DecodeError as exc:
        raise DumpFormatError(
            path, f"GE header does not parse as a DumpData protobuf message ({exc})"
        ) from None
    return message, LENGTH.size + length


def read_entries(path: PathLike) -> tuple[Any, list[Entry]]:
    size = checked_size(path)
    message, cursor = parse_header(path, size)
    entries = []
    for role, items in (("input", message.input), ("output", message.output)):
        for index, item in enumerate(items):
            member = f"{role}.{index}"
            if item.data:
                entries.append(Entry(member, item, 0, len(item.data), inline=True))
                continue
            if item.size > size - cursor:
                raise DumpFormatError(
                    path,
                    f"tensor sizes overrun the data segment: {member} needs {item.size} bytes at offset "
                    f"{cursor}, but the file ends at {size}",
                )
            entries.append(Entry(member, item, cursor, item.size, inline=False))
            cursor += item.size
    return message, entries


def ge_members(path: PathLike) -> list[str]:
    """The member names of a GE dump: ``input.0``, ..., ``output.0``, ..."""
    return [entry.member for entry in read_entries(path)[1]]


def find_entry(path: PathLike, member: str | None) -> Entry:
    """The entry ``member`` names (``input.0``, ``outputs.1``), or the only one when ``member`` is None."""
    entries = read_entries(path)[1]
    if member is None and len(entries) == 1:
        return entries[0]
    match = None if member is None else _MEMBER.fullmatch(member)
    if match is not None:
        wanted = f"{match[1]}.{int(match[2])}"
        for entry in entries:
            if entry.member == wanted:
                return entry
    names = ", ".join(entry.member for entry in entries) or "none"
    if member is None:
        raise DumpFormatError(path, f"holds {len(entries)} tensors; choose a member: {names}")
    raise DumpFormatError(path, f"has no member {member!r}; members: {names}")
