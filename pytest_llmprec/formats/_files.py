"""File checks and byte-level helpers shared by the readers: sizes, memory maps, packed int4."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence

import torch

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


def map_bytes(path: PathLike, offset: int, length: int) -> torch.Tensor:
    """A uint8 tensor over ``length`` bytes of the file from ``offset``, memory-mapped copy-on-write.

    The caller has checked the range against the file size. Pages are read when used; writes to
    the tensor stay private; no file descriptor stays open (unlike ``np.memmap``).
    """
    if length == 0:
        return torch.empty(0, dtype=torch.uint8)
    try:
        whole = torch.from_file(os.fspath(path), shared=False, size=offset + length, dtype=torch.uint8)
    except RuntimeError as exc:
        raise DumpFormatError(path, f"cannot be memory-mapped: {exc}") from None
    return whole[offset:]


def view_as(raw: torch.Tensor, dtype: torch.dtype, shape: Sequence[int]) -> torch.Tensor:
    """Reinterpret a uint8 tensor as ``dtype`` with ``shape`` (no copy unless the data are misaligned)."""
    if raw.numel() == 0:
        return torch.empty(tuple(shape), dtype=dtype)
    if raw.data_ptr() % dtype.itemsize:
        raw = raw.clone()
    return raw.view(dtype).reshape(tuple(shape))


def unpack_int4(raw: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Signed 4-bit values packed two per byte, low nibble first, as an int8 tensor of ``shape``."""
    signed = raw.view(torch.int8)
    low = torch.bitwise_left_shift(signed, 4).bitwise_right_shift(4)
    high = torch.bitwise_right_shift(signed, 4)
    values = torch.stack((low, high), dim=-1).reshape(-1)
    return values[: element_count(shape)].reshape(tuple(shape))


def pack_int4(values: torch.Tensor) -> bytes:
    """Pack int values in [-8, 7] two per byte, low nibble first (the inverse of :func:`unpack_int4`)."""
    if values.is_floating_point() or values.is_complex():
        raise ValueError(f"int4 packing needs an integer tensor, not {values.dtype}")
    flat = values.reshape(-1).to(torch.int16)
    if flat.numel() and (flat.min() < -8 or flat.max() > 7):
        raise ValueError("int4 values must lie in [-8, 7]")
    if flat.numel() % 2:
        flat = torch.cat((flat, flat.new_zeros(1)))
    nibbles = (flat & 0x0F).reshape(-1, 2)
    return (nibbles[:, 0] | (nibbles[:, 1] << 4)).to(torch.uint8).numpy().tobytes()


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """The raw little-endian bytes of a CPU tensor in row-major order."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()
