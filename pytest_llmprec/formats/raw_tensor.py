"""``RawTensor``: a dumped tensor's elements as bytes, with dtype name and shape; torch-free.

Raw reads of dump files (``formats.raw``) produce it, and the C kernel (``compare.native``)
compares two of them without torch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class RawTensor:
    """The elements of a dumped tensor: contiguous little-endian bytes (memory-mapped), dtype
    name (``"torch.float32"``) and shape; ``path``/``member`` say where it was read from."""

    data: memoryview
    dtype: str
    shape: tuple[int, ...]
    path: str
    member: str | None = None

    def to_torch(self):
        """A torch tensor over the same bytes (no copy; imports torch)."""
        import torch

        dtype = getattr(torch, self.dtype.removeprefix("torch."))
        if not len(self.data):
            return torch.empty(self.shape, dtype=dtype)
        with warnings.catch_warnings():  # the mapping is read-only, and so is the tensor's use here
            warnings.filterwarnings("ignore", "The given buffer is not writable")
            return torch.frombuffer(self.data, dtype=dtype).reshape(self.shape)
