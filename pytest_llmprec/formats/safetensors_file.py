"""``.safetensors`` files, parsed here: 8-byte LE header length, JSON header, memory-mapped tensors."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from ..errors import DumpFormatError
from ._files import PathLike, element_count
from ._payloads import map_bytes, view_as
from .container_headers import safetensors_header

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3FNUZ": torch.float8_e4m3fnuz,
    "F8_E5M2FNUZ": torch.float8_e5m2fnuz,
    "C64": torch.complex64,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U64": torch.uint64,
    "U32": torch.uint32,
    "U16": torch.uint16,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class SafetensorsEntry:
    """One tensor of a safetensors file: dtype, shape and its absolute byte range in the file."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    stop: int


def read_entries(path: PathLike) -> dict[str, SafetensorsEntry]:
    """Parse and validate the header: dtypes, shapes and offsets, all checked against the file size."""
    header, data_start, size = safetensors_header(path)
    entries = {}
    for name, spec in header.items():
        if name != "__metadata__":
            entries[name] = _entry(path, name, spec, data_start, size)
    _check_overlaps(path, entries)
    return entries


def _entry(path: PathLike, name: str, spec: object, data_start: int, size: int) -> SafetensorsEntry:
    if not isinstance(spec, dict):
        raise DumpFormatError(path, f"tensor {name!r}: header entry is not an object")
    dtype_name = spec.get("dtype")
    dtype = DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise DumpFormatError(path, f"tensor {name!r}: unknown or unsupported dtype {spec.get('dtype')!r}")
    shape, offsets = spec.get("shape"), spec.get("data_offsets")
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise DumpFormatError(path, f"tensor {name!r}: shape {shape!r} is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise DumpFormatError(path, f"tensor {name!r}: data_offsets {offsets!r} are not two integers")
    begin, end = offsets
    if not 0 <= begin <= end <= size - data_start:
        raise DumpFormatError(
            path,
            f"tensor {name!r}: data_offsets [{begin}, {end}] are out of range "
            f"(the data holds {size - data_start} bytes)",
        )
    needed = element_count(shape) * dtype.itemsize
    if end - begin != needed:
        raise DumpFormatError(
            path, f"tensor {name!r}: data_offsets span {end - begin} bytes, shape {shape} needs {needed}"
        )
    return SafetensorsEntry(name, dtype, tuple(shape), data_start + begin, data_start + end)


def _check_overlaps(path: PathLike, entries: dict[str, SafetensorsEntry]) -> None:
    ordered = sorted((e for e in entries.values() if e.stop > e.start), key=lambda e: e.start)
    for before, after in itertools.pairwise(ordered):
        if after.start < before.stop:
            raise DumpFormatError(
                path, f"tensors {before.name!r} and {after.name!r} have overlapping data_offsets"
            )


def select(path: PathLike, entries: dict[str, SafetensorsEntry], member: str | None) -> SafetensorsEntry:
    """The entry ``member`` names, or the only one when ``member`` is None."""
    if member is None and len(entries) == 1:
        return next(iter(entries.values()))
    if member is not None and member in entries:
        return entries[member]
    names = ", ".join(entries) or "none"
    if member is None:
        raise DumpFormatError(path, f"holds {len(entries)} tensors; choose a member: {names}")
    raise DumpFormatError(path, f"has no member {member!r}; members: {names}")


def load_safetensors(path: PathLike, member: str | None) -> torch.Tensor:
    """One tensor, memory-mapped from the file (only its pages are read, when used)."""
    entry = select(path, read_entries(path), member)
    return view_as(map_bytes(path, entry.start, entry.stop - entry.start), entry.dtype, entry.shape)
