"""``RawTensor``: a dumped tensor's elements as bytes, with dtype name and shape; torch-free.

Raw reads of dump files (``formats.raw``) produce it, and the C kernel (``compare.native``)
compares two of them without torch. The bytes hold the elements row-major, or in another dense
order (a saved transposed view: ``strides``), which two tensors of the same layout can be compared in.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass


def dense_strides(shape: Sequence[int], strides: Sequence[int]) -> tuple[int, ...] | None:
    """None when ``strides`` are row-major for ``shape``; the strides when the elements fill exactly
    ``prod(shape)`` consecutive slots in another order (a permuted view); ``ValueError`` when they
    do not (gaps, overlaps, a wrong number of strides)."""
    if len(shape) != len(strides):
        raise ValueError("one stride per dimension")
    if math.prod(shape) == 0:
        return None
    expected = 1
    row_major = True
    for size, stride in zip(reversed(shape), reversed(strides), strict=True):
        if size != 1 and stride != expected:
            row_major = False
        expected *= size
    if row_major:
        return None
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(shape, strides, strict=True) if sz != 1):
        if stride != expected:
            raise ValueError(f"strides {tuple(strides)} of shape {tuple(shape)} are not dense")
        expected *= size
    return tuple(strides)


@dataclass(frozen=True)
class RawTensor:
    """The elements of a dumped tensor: contiguous little-endian bytes (memory-mapped), dtype
    name (``"torch.float32"``) and shape; ``path``/``member`` say where it was read from."""

    data: memoryview
    dtype: str
    shape: tuple[int, ...]
    path: str
    member: str | None = None
    strides: tuple[int, ...] | None = None
    """Element strides of a dense non-row-major layout (see ``dense_strides``); None: row-major."""

    def same_order(self, other: RawTensor) -> bool:
        """Whether the bytes of both hold their elements in the same logical order (an element-wise
        comparison of the bytes then compares element ``i`` with element ``i``)."""
        if self.strides is None and other.strides is None:
            return True
        return self.shape == other.shape and _order(self) == _order(other)

    def unravel(self, position: int) -> tuple[int, ...]:
        """The multi-index of the element at ``position`` in the bytes."""
        strides = self.strides or _row_major(self.shape)
        return tuple(
            (position // stride) % size if size > 1 else 0
            for size, stride in zip(self.shape, strides, strict=True)
        )

    def to_torch(self):
        """A torch tensor over the same bytes (no copy; imports torch)."""
        import torch

        dtype = getattr(torch, self.dtype.removeprefix("torch."))
        if not len(self.data):
            return torch.empty(self.shape, dtype=dtype)
        with warnings.catch_warnings():  # the mapping is read-only, and so is the tensor's use here
            warnings.filterwarnings("ignore", "The given buffer is not writable")
            flat = torch.frombuffer(self.data, dtype=dtype)
        return flat.reshape(self.shape) if self.strides is None else flat.as_strided(self.shape, self.strides)


def _order(tensor: RawTensor) -> tuple[int, ...]:
    strides = tensor.strides or _row_major(tensor.shape)
    return tuple(stride for size, stride in zip(tensor.shape, strides, strict=True) if size != 1)


def _row_major(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))
