"""NumPy ``.npy`` (memory-mapped) and ``.npz`` (one member at a time) files, never unpickled."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import numpy as np
import torch

from ..dtypes import NUMPY_CODES
from ..errors import DumpFormatError
from ._files import PathLike, checked_size, element_count
from ._payloads import map_bytes, view_as
from .container_headers import open_npz

NUMPY_DTYPES: dict[str, torch.dtype] = {
    code: getattr(torch, name.removeprefix("torch.")) for code, name in NUMPY_CODES.items()
}
"""NumPy dtype (kind + item size, any byte order) -> torch dtype."""

MAX_HEADER = 1 << 16
_MAX_DEFLATE_RATIO = 1100
"""Deflate expands at most about 1032 times: a larger declared size is a lie (or a zip bomb)."""
_CHUNK = 1 << 24


@dataclass(frozen=True)
class NpyHeader:
    """A parsed ``.npy`` header; ``offset`` is where the data start."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    torch_dtype: torch.dtype
    offset: int

    @property
    def nbytes(self) -> int:
        return element_count(self.shape) * self.dtype.itemsize


def _read_header(path: PathLike, handle: IO[bytes], where: str = "") -> NpyHeader:
    """Parse the ``.npy`` header at the handle's position; ``where`` names an npz member in messages."""
    start = handle.tell()
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle, max_header_size=MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle, max_header_size=MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, SyntaxError, TypeError, EOFError) as exc:
        raise DumpFormatError(path, f"{where}corrupt .npy header: {exc}") from None
    if dtype.hasobject:
        raise DumpFormatError(
            path, f"{where}holds Python objects (dtype {dtype}); reading them needs pickle, which is refused"
        )
    torch_dtype = NUMPY_DTYPES.get(dtype.str[1:]) if dtype.fields is None else None
    if torch_dtype is None:
        raise DumpFormatError(path, f"{where}dtype {dtype} has no torch equivalent")
    return NpyHeader(tuple(shape), fortran, dtype, torch_dtype, handle.tell() - start)


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return torch.from_numpy(array)


def read_npy_header(path: PathLike) -> NpyHeader:
    """The header of a ``.npy`` file, checked against the file size."""
    size = checked_size(path)
    try:
        with open(path, "rb") as handle:
            header = _read_header(path, handle)
    except OSError as exc:
        raise DumpFormatError(path, f"cannot be read: {exc.strerror or exc}") from None
    available = size - header.offset
    if available != header.nbytes:
        problem = "truncated data" if available < header.nbytes else "extra bytes after the data"
        raise DumpFormatError(
            path,
            f"{problem}: shape {header.shape} of {header.dtype} needs {header.nbytes} bytes, "
            f"found {available}",
        )
    return header


def load_npy(path: PathLike) -> torch.Tensor:
    """A ``.npy`` array as a tensor over a copy-on-write memory map of the file.

    No copy, except once for arrays stored in big-endian order. Fortran-ordered arrays come
    back as a transposed (non-contiguous) view.
    """
    header = read_npy_header(path)
    raw = map_bytes(path, header.offset, header.nbytes)
    stored_shape = header.shape[::-1] if header.fortran_order else header.shape
    if header.dtype.isnative:
        tensor = view_as(raw, header.torch_dtype, stored_shape)
    else:
        tensor = _to_tensor(raw.numpy().view(header.dtype).reshape(stored_shape))
    return tensor.permute(*reversed(range(tensor.dim()))) if header.fortran_order else tensor


def _resolve(path: PathLike, names: list[str], member: str | None) -> tuple[str, int | None]:
    """The array name and optional row index that ``member`` selects (``name`` or ``name.N``)."""
    if member is None:
        if len(names) == 1:
            return names[0], None
        raise DumpFormatError(
            path, f"holds {len(names)} arrays; choose a member: {', '.join(names) or 'none'}"
        )
    if member in names:
        return member, None
    base, _, index = member.rpartition(".")
    if base in names and index.isdigit():
        return base, int(index)
    raise DumpFormatError(path, f"has no member {member!r}; members: {', '.join(names) or 'none'}")


def _check_entry(path: PathLike, info: zipfile.ZipInfo, archive_size: int) -> None:
    if info.compress_size > archive_size:
        raise DumpFormatError(
            path, f"member {info.filename} claims more compressed bytes than the archive holds"
        )
    if info.compress_type == zipfile.ZIP_STORED:
        limit = info.compress_size
    else:
        limit = info.compress_size * _MAX_DEFLATE_RATIO + 1024
    if info.file_size > limit:
        raise DumpFormatError(
            path,
            f"member {info.filename} declares {info.file_size} bytes, more than its compressed data can hold",
        )


@contextmanager
def _member(path: PathLike, member: str | None) -> Iterator[tuple[IO[bytes], NpyHeader, int | None]]:
    """The open stream of one ``.npz`` entry after its header, the header and the selected row."""
    with open_npz(path) as archive:
        names = [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
        name, index = _resolve(path, names, member)
        info = archive.getinfo(name + ".npy")
        _check_entry(path, info, checked_size(path))
        where = f"member {name}: "
        try:
            with archive.open(info) as stream:
                header = _read_header(path, stream, where)
                if header.offset + header.nbytes != info.file_size:
                    raise DumpFormatError(
                        path,
                        f"{where}shape {header.shape} of {header.dtype} needs {header.nbytes} bytes, "
                        f"the entry holds {info.file_size - header.offset}",
                    )
                if index is not None and not (header.shape and index < header.shape[0]):
                    raise DumpFormatError(
                        path, f"{where}row {index} is out of range for shape {header.shape}"
                    )
                yield stream, header, index
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
            raise DumpFormatError(path, f"{where}damaged .npz member: {exc}") from None


def _read_payload(path: PathLike, stream: IO[bytes], nbytes: int) -> bytearray:
    """Decompress ``nbytes`` into one buffer, chunk by chunk; reading to the end checks the CRC."""
    buffer = bytearray(nbytes)
    position = 0
    while position < nbytes:
        chunk = stream.read(min(_CHUNK, nbytes - position))
        if not chunk:
            raise DumpFormatError(path, f"truncated .npz member: read {position} of {nbytes} bytes")
        buffer[position : position + len(chunk)] = chunk
        position += len(chunk)
    stream.read(1)
    return buffer


def load_npz_member(path: PathLike, member: str | None) -> torch.Tensor:
    """One array of an ``.npz`` (or one row ``name.N`` of it), decompressed into memory once."""
    with _member(path, member) as (stream, header, index):
        buffer = _read_payload(path, stream, header.nbytes)
    order = "F" if header.fortran_order else "C"
    array = np.frombuffer(buffer, dtype=header.dtype).reshape(header.shape, order=order)
    tensor = _to_tensor(array)
    return tensor if index is None else tensor[index]


def probe_npz_member(path: PathLike, member: str | None) -> tuple[torch.dtype, tuple[int, ...]]:
    """dtype and shape of one ``.npz`` member from its header."""
    with _member(path, member) as (_, header, index):
        return header.torch_dtype, header.shape if index is None else header.shape[1:]
