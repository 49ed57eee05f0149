"""Payload bytes as torch tensors: memory maps, dtype views, packed int4, and back to bytes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from ..errors import DumpFormatError
from ._files import PathLike, element_count


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
