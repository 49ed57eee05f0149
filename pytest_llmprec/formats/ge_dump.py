"""GE (Graph Engine) dump files of TorchAir graphs: tensors read and written with torch.

Headers are read by ``ge_header`` (``[uint64 length][DumpData protobuf][data segment]``); tensors
are memory-mapped from the data segment and converted from their device layout to the host layout.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..errors import DumpFormatError
from . import device_layouts, ge_header, layout_codes
from ._files import DumpFormatWarning, PathLike, element_count, packed_int4_bytes
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


def _dtype(path: PathLike, entry: ge_header.Entry) -> torch.dtype:
    code = entry.message.data_type
    if code not in DATA_TYPES:
        raise DumpFormatError(path, f"{entry.member} has unsupported data type code {code} (OutputDataType)")
    return DATA_TYPES[code]


def _host_shape(entry: ge_header.Entry) -> tuple[int, ...]:
    """The shape the loaded tensor will have: the original shape when the format is converted."""
    item = entry.message
    if item.format in device_layouts.TO_HOST and item.original_shape.dim:
        return tuple(item.original_shape.dim)
    return tuple(item.shape.dim)


def _decode(path: PathLike, entry: ge_header.Entry) -> GeTensor:
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
    message, entries = ge_header.read_entries(path)
    tensors = [_decode(path, entry) for entry in entries]
    count = len(message.input)
    return GeDump(message.op_name, message.version, message.dump_time, tensors[:count], tensors[count:])


def load_ge_member(path: PathLike, member: str | None) -> GeTensor:
    """One input or output (``input.0``, ``output.1``; ``inputs.0`` is accepted too)."""
    return _decode(path, ge_header.find_entry(path, member))


def probe_ge_member(path: PathLike, member: str | None) -> tuple[torch.dtype, tuple[int, ...], int]:
    """dtype, loaded shape and storage format code of one member, from the header alone."""
    entry = ge_header.find_entry(path, member)
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
    message = ge_header.dump_data_class()(version=version, dump_time=dump_time, op_name=op_name)
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
        handle.write(ge_header.LENGTH.pack(len(header)))
        handle.write(header)
        handle.writelines(segment)
