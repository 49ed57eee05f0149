"""GE (Graph Engine) dump files of TorchAir graphs, and the GE / FX dump file names.

A GE dump file is ``[uint64 LE header length H][H bytes of toolkit.dumpdata.DumpData][data]``;
the data segment holds the inputs then the outputs, ``size`` bytes each. Tensors are
memory-mapped from the segment and converted from their device layout to the host layout.
"""

from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from google.protobuf.message import DecodeError

from ..errors import DumpFormatError
from . import device_layouts, layout_codes
from ._files import DumpFormatWarning, PathLike, checked_size, element_count, packed_int4_bytes, read_bytes
from ._payloads import map_bytes, tensor_bytes, unpack_int4, view_as

INT4 = 28
DATA_TYPES: dict[int, torch.dtype] = {
    1: torch.float32,
    2: torch.float16,
    3: torch.int8,
    4: torch.uint8,
    5: torch.int16,
    6: torch.uint16,
    7: torch.int32,
    8: torch.int64,
    9: torch.uint32,
    10: torch.uint64,
    11: torch.bool,
    12: torch.float64,
    16: torch.complex64,
    17: torch.complex128,
    27: torch.bfloat16,
    INT4: torch.int8,
}
"""GE OutputDataType code (not aclDataType!) -> torch dtype of the loaded tensor (int4 unpacked to int8)."""

DATA_TYPE_CODES = {dtype: code for code, dtype in DATA_TYPES.items() if code != INT4}

_LENGTH = struct.Struct("<Q")
_FIRST_TAGS = frozenset({0x0A, 0x10, 0x1A, 0x22, 0x2A, 0x32})
"""The tag bytes DumpData's fields 1 to 6 start with: a cheap test before parsing a header."""
_MEMBER = re.compile(r"(input|output)s?\.(\d+)")


def _dump_data_class() -> Any:
    """The DumpData message class; reuses an already registered ``toolkit.dumpdata`` (e.g. msprobe's)."""
    try:
        from .ge_dump_pb2 import DumpData
    except TypeError:
        from google.protobuf import descriptor_pool, message_factory

        descriptor = descriptor_pool.Default().FindMessageTypeByName("toolkit.dumpdata.DumpData")
        return message_factory.GetMessageClass(descriptor)
    return DumpData


@dataclass(frozen=True)
class GeFileName:
    """The parts of a GE dump file name ``{OpType}.{OpName}.{taskId}.{streamId}.{timestamp}``."""

    op_type: str
    op_name: str
    task_id: int
    stream_id: int
    timestamp: int


def parse_ge_file_name(name: str) -> GeFileName | None:
    """Split a GE dump file name; the op name is everything between the type and the last three numbers.

    None when the name has fewer than five dot-separated parts or the last three are not numbers
    (graph ``.txt``, ``.npy``, ``.bin`` files and the ``.npz`` summaries; strip ``.npz`` first to
    parse a summary's name).
    """
    parts = name.split(".")
    if len(parts) < 5 or not all(part.isdigit() for part in parts[-3:]):
        return None
    return GeFileName(parts[0], ".".join(parts[1:-3]), int(parts[-3]), int(parts[-2]), int(parts[-1]))


@dataclass(frozen=True)
class FxFileName:
    """The parts of an FX dump file name ``{node}-{aten target}.{INPUT|OUTPUT}.{index}.{timestamp}.npy``.

    ``op_key`` (``{node}-{aten target}``) is what GE graphs name in ``_fx_tensor_name``.
    """

    op_key: str
    node: str
    target: str
    role: str
    index: int
    timestamp: int


_FX_NAME = re.compile(
    r"(?P<key>(?P<node>[^-]+)-(?P<target>.+))\.(?P<role>INPUT|OUTPUT)\.(?P<index>\d+)\.(?P<ts>\d+)\.npy"
)


def parse_fx_file_name(name: str) -> FxFileName | None:
    """Split an FX ``.npy`` dump file name (role lower-cased: ``input``/``output``); None if not one."""
    match = _FX_NAME.fullmatch(name)
    if match is None:
        return None
    return FxFileName(
        match["key"],
        match["node"],
        match["target"],
        match["role"].lower(),
        int(match["index"]),
        int(match["ts"]),
    )


@dataclass(frozen=True)
class GeTensor:
    """One input or output of a GE dump: the host-layout tensor and the header fields."""

    tensor: torch.Tensor
    data_type: int
    format: int
    shape: tuple[int, ...]
    original_shape: tuple[int, ...]

    @property
    def format_name(self) -> str:
        return layout_codes.format_name(self.format)


@dataclass(frozen=True)
class GeDump:
    """A decoded GE dump file."""

    op_name: str
    version: str
    dump_time: int
    inputs: list[GeTensor]
    outputs: list[GeTensor]


@dataclass(frozen=True)
class _Entry:
    """Where one tensor of a GE dump is: its header message and its bytes in the file (or inline)."""

    member: str
    message: Any
    offset: int
    size: int
    inline: bool


def looks_like_ge(path: PathLike, size: int) -> bool:
    """True when the file starts with a header length that fits and a DumpData header with tensors."""
    head = read_bytes(path, _LENGTH.size + 1)
    if len(head) <= _LENGTH.size or head[_LENGTH.size] not in _FIRST_TAGS:
        return False
    if not 0 < _LENGTH.unpack_from(head)[0] <= size - _LENGTH.size:
        return False
    try:
        message = _parse_header(path, size)[0]
    except DumpFormatError:
        return False
    return bool(message.input or message.output)


def _parse_header(path: PathLike, size: int) -> tuple[Any, int]:
    """The DumpData message and the offset of the data segment, validated against the file size."""
    if size < _LENGTH.size:
        raise DumpFormatError(
            path, f"too short for a GE dump ({size} bytes, the header length alone takes 8)"
        )
    length = _LENGTH.unpack(read_bytes(path, _LENGTH.size))[0]
    if length > size - _LENGTH.size:
        raise DumpFormatError(path, f"GE header length {length} exceeds the file ({size} bytes)")
    header = read_bytes(path, length, offset=_LENGTH.size)
    try:
        message = _dump_data_class().FromString(header)
    except DecodeError as exc:
        raise DumpFormatError(
            path, f"GE header does not parse as a DumpData protobuf message ({exc})"
        ) from None
    return message, _LENGTH.size + length


def _entries(path: PathLike) -> tuple[Any, list[_Entry]]:
    size = checked_size(path)
    message, cursor = _parse_header(path, size)
    entries = []
    for role, items in (("input", message.input), ("output", message.output)):
        for index, item in enumerate(items):
            member = f"{role}.{index}"
            if item.data:
                entries.append(_Entry(member, item, 0, len(item.data), inline=True))
                continue
            if item.size > size - cursor:
                raise DumpFormatError(
                    path,
                    f"tensor sizes overrun the data segment: {member} needs {item.size} bytes at offset "
                    f"{cursor}, but the file ends at {size}",
                )
            entries.append(_Entry(member, item, cursor, item.size, inline=False))
            cursor += item.size
    return message, entries


def _dtype(path: PathLike, entry: _Entry) -> torch.dtype:
    code = entry.message.data_type
    if code not in DATA_TYPES:
        raise DumpFormatError(path, f"{entry.member} has unsupported data type code {code} (OutputDataType)")
    return DATA_TYPES[code]


def _host_shape(entry: _Entry) -> tuple[int, ...]:
    """The shape the loaded tensor will have: the original shape when the format is converted."""
    item = entry.message
    if item.format in device_layouts.TO_HOST and item.original_shape.dim:
        return tuple(item.original_shape.dim)
    return tuple(item.shape.dim)


def _decode(path: PathLike, entry: _Entry) -> GeTensor:
    item = entry.message
    dtype = _dtype(path, entry)
    shape = tuple(item.shape.dim)
    count = element_count(shape)
    needed = packed_int4_bytes(count) if item.data_type == INT4 else count * dtype.itemsize
    if entry.size != needed:
        raise DumpFormatError(
            path,
            f"{entry.member} holds {entry.size} bytes, but shape {shape} of its data type needs {needed}",
        )
    if entry.inline:
        raw = torch.frombuffer(bytearray(item.data), dtype=torch.uint8)
    else:
        raw = map_bytes(path, entry.offset, entry.size)
    tensor = unpack_int4(raw, shape) if item.data_type == INT4 else view_as(raw, dtype, shape)
    original = tuple(item.original_shape.dim)
    convert = device_layouts.TO_HOST.get(item.format)
    if convert is not None and original:
        try:
            tensor = convert(tensor, original)
        except ValueError as exc:
            raise DumpFormatError(path, f"{entry.member}: {exc}") from None
    elif item.format not in layout_codes.PLAIN_FORMATS:
        reason = "without an original shape" if convert else "(no conversion known)"
        warnings.warn(
            f"{path}: {entry.member} is stored as {layout_codes.format_name(item.format)}, not converted "
            f"{reason}; kept the stored shape {shape}",
            DumpFormatWarning,
            stacklevel=2,
        )
    return GeTensor(tensor, item.data_type, item.format, shape, original)


def read_ge_dump(path: PathLike) -> GeDump:
    """Read a GE dump file: every input and output, converted to the host layout."""
    message, entries = _entries(path)
    tensors = [_decode(path, entry) for entry in entries]
    count = len(message.input)
    return GeDump(message.op_name, message.version, message.dump_time, tensors[:count], tensors[count:])


def ge_members(path: PathLike) -> list[str]:
    """The member names of a GE dump: ``input.0``, ..., ``output.0``, ..."""
    return [entry.member for entry in _entries(path)[1]]


def _find_entry(path: PathLike, member: str | None) -> _Entry:
    """The entry ``member`` names (``input.0``, ``outputs.1``), or the only one when ``member`` is None."""
    entries = _entries(path)[1]
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


def load_ge_member(path: PathLike, member: str | None) -> GeTensor:
    """One input or output (``input.0``, ``output.1``; ``inputs.0`` is accepted too)."""
    return _decode(path, _find_entry(path, member))


def probe_ge_member(path: PathLike, member: str | None) -> tuple[torch.dtype, tuple[int, ...], int]:
    """dtype, loaded shape and storage format code of one member, from the header alone."""
    entry = _find_entry(path, member)
    return _dtype(path, entry), _host_shape(entry), entry.message.format


def write_ge_dump(
    path: PathLike,
    *,
    inputs: Sequence[torch.Tensor],
    outputs: Sequence[torch.Tensor],
    op_name: str = "",
    formats: Mapping[str, int] | None = None,
    original_shapes: Mapping[str, Sequence[int]] | None = None,
    inline: bool = False,
    version: str = "2.0",
    dump_time: int = 0,
) -> None:
    """Write a GE dump file from host-layout tensors.

    ``formats`` maps member names (``"input.0"``, ``"output.1"``) to OutputFormat codes (default
    ND); FRACTAL_NZ and NC1HWC0 tensors are converted to that storage layout and their host shape
    is recorded as ``original_shape``; other formats are written as given. ``original_shapes``
    overrides the recorded original shape per member. With ``inline`` the bytes go into each
    tensor's ``data`` field (as old dump versions did) instead of the data segment.
    """
    formats = formats or {}
    original_shapes = original_shapes or {}
    message = _dump_data_class()(version=version, dump_time=dump_time, op_name=op_name)
    segment = []
    for role, tensors, container in (("input", inputs, message.input), ("output", outputs, message.output)):
        for index, tensor in enumerate(tensors):
            member = f"{role}.{index}"
            if tensor.dtype not in DATA_TYPE_CODES:
                raise ValueError(f"{member}: no GE OutputDataType code for {tensor.dtype}")
            format_code = formats.get(member, layout_codes.ND)
            to_device = device_layouts.TO_DEVICE.get(format_code)
            stored = tensor if to_device is None else to_device(tensor)
            payload = tensor_bytes(stored)
            item = container.add(
                data_type=DATA_TYPE_CODES[tensor.dtype], format=format_code, size=len(payload)
            )
            item.shape.dim.extend(stored.shape)
            item.original_shape.dim.extend(original_shapes.get(member, tensor.shape))
            if inline:
                item.data = payload
            else:
                segment.append(payload)
    header = message.SerializeToString()
    with open(path, "wb") as handle:
        handle.write(_LENGTH.pack(len(header)))
        handle.write(header)
        handle.writelines(segment)
