"""One entry point for every tensor file: find the format, then load, probe or list members."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DumpFormatError
from . import (
    atb_bin,
    atb_header,
    container_headers,
    ge_dump,
    ge_header,
    layout_codes,
    numpy_files,
    safetensors_file,
    sniff,
    torch_files,
)
from ._files import PathLike, checked_size, read_bytes


@dataclass(frozen=True)
class TensorInfo:
    """What :func:`load_tensor` would return, read from the header.

    ``format`` names the device storage layout of ATB and GE tensors (``"FRACTAL_NZ"``),
    None for row-major data.
    """

    dtype: torch.dtype
    shape: tuple[int, ...]
    format: str | None = None


def _storage_format(code: int) -> str | None:
    return None if code in layout_codes.PLAIN_FORMATS else layout_codes.format_name(code)


def _zip_kind(path: PathLike) -> str:
    """``npz`` for a zip of ``.npy`` entries, otherwise ``torch`` (whose reader reports a bad zip)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "torch"
    is_npz = names and all(name.endswith(".npy") for name in names)
    return "npz" if is_npz else "torch"


def detect_format(path: PathLike) -> str:
    """The format of a tensor file: by extension, else (and for ``.bin``) by its first bytes.

    One of ``atb``, ``ge``, ``torch``, ``npy``, ``npz``, ``safetensors``. A ``.bin`` holding a
    torch zip checkpoint (``pytorch_model.bin``) is ``torch``; any other ``.bin`` is ``atb``.
    """
    size = checked_size(path)
    by_suffix = sniff.suffix_format(path)
    if by_suffix is not None:
        return by_suffix
    head = read_bytes(path, sniff.HEAD_BYTES)
    kind = sniff.head_format(head)
    if kind in ("atb", "npy"):
        return kind
    if kind == "zip":
        return _zip_kind(path)
    if container_headers.looks_like_safetensors(head, size):
        return "safetensors"
    if ge_header.looks_like_ge(path, size):
        return "ge"
    if kind == "pickle":
        return "torch"
    if Path(path).suffix.lower() == ".bin":
        return "atb"
    raise DumpFormatError(
        path, "unrecognised tensor file format (not ATB .bin, GE dump, torch, .npy, .npz nor safetensors)"
    )


def _single(path: PathLike, member: str | None) -> None:
    if member is not None:
        raise DumpFormatError(path, f"holds a single tensor, so it has no member {member!r}")


def _load_atb(path: PathLike, member: str | None, original_shape: Sequence[int] | None) -> torch.Tensor:
    _single(path, member)
    return atb_bin.read_atb_bin(path, original_shape=original_shape).tensor


def _probe_atb(path: PathLike, member: str | None) -> TensorInfo:
    _single(path, member)
    layout = atb_header.read_layout(path)
    return TensorInfo(atb_bin.DTYPES[layout.dtype_code], layout.dims, _storage_format(layout.format_code))


def _probe_ge(path: PathLike, member: str | None) -> TensorInfo:
    dtype, shape, format_code = ge_dump.probe_ge_member(path, member)
    return TensorInfo(dtype, shape, _storage_format(format_code))


def _load_npy(path: PathLike, member: str | None) -> torch.Tensor:
    _single(path, member)
    return numpy_files.load_npy(path)


def _probe_npy(path: PathLike, member: str | None) -> TensorInfo:
    _single(path, member)
    header = numpy_files.read_npy_header(path)
    return TensorInfo(header.torch_dtype, header.shape)


def _probe_safetensors(path: PathLike, member: str | None) -> TensorInfo:
    entry = safetensors_file.select(path, safetensors_file.read_entries(path), member)
    return TensorInfo(entry.dtype, entry.shape)


def _probe_torch(path: PathLike, member: str | None) -> TensorInfo:
    tensor = torch_files.load_torch(path, member)
    return TensorInfo(tensor.dtype, tuple(tensor.shape))


@dataclass(frozen=True)
class _Reader:
    load: Callable[[PathLike, str | None], torch.Tensor]
    probe: Callable[[PathLike, str | None], TensorInfo]
    members: Callable[[PathLike], list[str]]


_READERS = {
    "atb": _Reader(lambda p, m: _load_atb(p, m, None), _probe_atb, lambda p: []),
    "ge": _Reader(lambda p, m: ge_dump.load_ge_member(p, m).tensor, _probe_ge, ge_header.ge_members),
    "npy": _Reader(_load_npy, _probe_npy, lambda p: []),
    "npz": _Reader(
        numpy_files.load_npz_member,
        lambda p, m: TensorInfo(*numpy_files.probe_npz_member(p, m)),
        container_headers.npz_members,
    ),
    "safetensors": _Reader(
        safetensors_file.load_safetensors,
        _probe_safetensors,
        lambda p: list(safetensors_file.read_entries(p)),
    ),
    "torch": _Reader(torch_files.load_torch, _probe_torch, torch_files.torch_members),
}


def load_tensor(
    path: PathLike, *, member: str | None = None, original_shape: Sequence[int] | None = None
) -> torch.Tensor:
    """Load one tensor from any supported file onto the CPU, memory-mapped where the format allows.

    ``member`` selects a tensor in a container (npz array, safetensors name, ``.pt`` key/index
    path such as ``"a.0"``, GE ``"input.0"``/``"output.1"``); a container holding one tensor
    needs none. ``original_shape`` converts an ATB FRACTAL_NZ / NC1HWC0 tensor to that host
    shape (GE files carry their own original shapes); it is an error for other formats.
    """
    kind = detect_format(path)
    if original_shape is not None:
        if kind != "atb":
            raise ValueError(f"original_shape applies to ATB .bin files only, {path} is a {kind} file")
        return _load_atb(path, member, original_shape)
    return _READERS[kind].load(path, member)


def probe_tensor(path: PathLike, *, member: str | None = None) -> TensorInfo:
    """dtype, shape and storage format of the tensor :func:`load_tensor` would return, from headers only.

    (``.pt`` files are loaded memory-mapped: their pickle is read, not their tensor data.)
    """
    return _READERS[detect_format(path)].probe(path, member)


def list_members(path: PathLike) -> list[str]:
    """The member names of a container file, in file order; ``[]`` for single-tensor formats."""
    return _READERS[detect_format(path)].members(path)
