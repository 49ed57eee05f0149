"""Ascend device storage layouts and their host (row-major) equivalents.

FRACTAL_NZ stores a matrix ``[..., M, N]`` as column blocks: the columns are padded to
``c1 * c0`` and the rows to a multiple of 16, and the storage is ``[..., c1, rows, c0]``
(GE writes the rows as two axes ``[..., c1, rows / 16, 16, c0]``, ATB as one; the bytes are the
same). NC1HWC0 stores ``[N, C, H, W]`` as ``[N, C1, H, W, C0]`` with C padded to ``C1 * C0``.
``c0`` is 16 elements, 32 for one-byte types (the cube block of 32 bytes for int8).

The functions raise ``ValueError`` when a storage tensor cannot hold the requested shape;
the file readers turn that into a DumpFormatError naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .layout_codes import FRACTAL_NZ, NC1HWC0

NZ_ROW_BLOCK = 16


def default_c0(dtype: torch.dtype) -> int:
    """The block width used by Ascend for ``dtype``: 32 for one-byte types, otherwise 16."""
    return 32 if dtype.itemsize == 1 else 16


def _ceil_to(value: int, block: int) -> int:
    return -(-value // block) * block


def _as_matrix_shape(shape: Sequence[int]) -> tuple[tuple[int, ...], int, int]:
    """Split a host shape into (batch, rows, columns); a vector is one row."""
    shape = tuple(int(d) for d in shape)
    if not shape:
        raise ValueError("FRACTAL_NZ needs a shape with at least one dimension")
    if len(shape) == 1:
        return (), 1, shape[0]
    return shape[:-2], shape[-2], shape[-1]


def nz_to_nd(storage: torch.Tensor, original_shape: Sequence[int]) -> torch.Tensor:
    """FRACTAL_NZ storage (``[..., c1, rows, c0]`` or ``[..., c1, r1, 16, c0]``) as ``original_shape``.

    ``c0`` is the last storage axis; the padded row count follows from the element count,
    so both the GE and the ATB spellings of the storage shape are accepted.
    """
    batch, rows, cols = _as_matrix_shape(original_shape)
    if storage.dim() < 2:
        raise ValueError(
            f"FRACTAL_NZ storage must have at least 2 dimensions, got shape {tuple(storage.shape)}"
        )
    c0 = storage.shape[-1]
    if c0 == 0:
        raise ValueError("FRACTAL_NZ storage has an empty last dimension")
    if math.prod(original_shape) == 0:
        if storage.numel():
            raise ValueError(
                f"FRACTAL_NZ storage {tuple(storage.shape)} is not empty but {original_shape} is"
            )
        return storage.new_empty(tuple(original_shape))
    c1 = -(-cols // c0)
    batch_count = math.prod(batch)
    per_row = batch_count * c1 * c0
    padded_rows, remainder = divmod(storage.numel(), per_row)
    if remainder or padded_rows < rows:
        raise ValueError(
            f"FRACTAL_NZ storage {tuple(storage.shape)} cannot hold original shape {tuple(original_shape)}"
        )
    blocks = storage.reshape(batch_count, c1, padded_rows, c0)
    matrix = blocks.transpose(1, 2).reshape(batch_count, padded_rows, c1 * c0)
    return matrix[:, :rows, :cols].reshape(tuple(original_shape)).contiguous()


def nd_to_nz(tensor: torch.Tensor, c0: int | None = None) -> torch.Tensor:
    """Convert ``[..., M, N]`` (a vector counts as one row) to GE-style FRACTAL_NZ ``[..., c1, r1, 16, c0]``.

    Rows are zero-padded to a multiple of 16 and columns to a multiple of ``c0``.
    """
    c0 = default_c0(tensor.dtype) if c0 is None else c0
    batch, rows, cols = _as_matrix_shape(tensor.shape)
    matrix = tensor.reshape(math.prod(batch), rows, cols)
    padded_rows, padded_cols = _ceil_to(rows, NZ_ROW_BLOCK), _ceil_to(cols, c0)
    padded = matrix.new_zeros(matrix.shape[0], padded_rows, padded_cols)
    padded[:, :rows, :cols] = matrix
    blocks = padded.reshape(-1, padded_rows, padded_cols // c0, c0).transpose(1, 2)
    return blocks.reshape(
        *batch, padded_cols // c0, padded_rows // NZ_ROW_BLOCK, NZ_ROW_BLOCK, c0
    ).contiguous()


def nc1hwc0_to_nchw(storage: torch.Tensor, original_shape: Sequence[int]) -> torch.Tensor:
    """Convert NC1HWC0 storage ``[N, C1, H, W, C0]`` to NCHW ``original_shape`` (channels cropped)."""
    if storage.dim() != 5 or len(original_shape) != 4:
        raise ValueError(
            f"NC1HWC0 needs 5-D storage and a 4-D original shape, got {tuple(storage.shape)} "
            f"and {tuple(original_shape)}"
        )
    n, c, h, w = (int(d) for d in original_shape)
    sn, c1, sh, sw, c0 = storage.shape
    if (sn, sh, sw) != (n, h, w) or c1 * c0 < c:
        raise ValueError(
            f"NC1HWC0 storage {tuple(storage.shape)} cannot hold original shape {tuple(original_shape)}"
        )
    channels_first = storage.permute(0, 1, 4, 2, 3).reshape(n, c1 * c0, h, w)
    return channels_first[:, :c].contiguous()


def nchw_to_nc1hwc0(tensor: torch.Tensor, c0: int | None = None) -> torch.Tensor:
    """Convert NCHW ``[N, C, H, W]`` to NC1HWC0 ``[N, C1, H, W, C0]``, channels zero-padded to ``C1 * C0``."""
    if tensor.dim() != 4:
        raise ValueError(f"NCHW needs a 4-D tensor, got shape {tuple(tensor.shape)}")
    c0 = default_c0(tensor.dtype) if c0 is None else c0
    n, c, h, w = tensor.shape
    c1 = -(-c // c0)
    padded = tensor.new_zeros(n, c1 * c0, h, w)
    padded[:, :c] = tensor
    return padded.reshape(n, c1, c0, h, w).permute(0, 1, 3, 4, 2).contiguous()


TO_HOST = {FRACTAL_NZ: nz_to_nd, NC1HWC0: nc1hwc0_to_nchw}
"""Device format code -> ``f(storage, original_shape)`` returning the host-layout tensor."""

TO_DEVICE = {FRACTAL_NZ: nd_to_nz, NC1HWC0: nchw_to_nc1hwc0}
"""Device format code -> ``f(host_tensor)`` returning the storage tensor."""
