"""Pair sides that are more than one dumped file: merged rank shards, rope tables, de-quantised
weights, dumped statistics.

Each is a ``TensorRecord`` (its own fields describe the first file), so a ``Pair`` carries it like
any record: ``load()`` returns the torch tensor to compare and ``load_raw()`` returns None (the
comparison then calls ``load()``), except where the tensor can be built without torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from ..dumps.base import TensorRecord

if TYPE_CHECKING:
    import torch

    from ..formats.raw_tensor import RawTensor

STATISTICS = ("max", "min", "mean", "l2norm")


def base_fields(record: TensorRecord) -> dict[str, Any]:
    """The ``TensorRecord`` fields of ``record``, to build a derived record on the same file."""
    return {f.name: getattr(record, f.name) for f in fields(TensorRecord)}


def record_shape(record: TensorRecord) -> tuple[int, ...]:
    """The shape of a record's tensor from its header (no payload read)."""
    raw = record.load_raw()
    if raw is not None:
        return raw.shape
    return tuple(record.probe().shape)


# --- tensor-parallel shards --------------------------------------------------------------------


def merge_dim(
    own: tuple[int, ...], own_count: int, partner: tuple[int, ...], partner_count: int
) -> int | None:
    """The dimension along which ``own_count`` shards of shape ``own`` concatenate to match
    ``partner_count`` shards of shape ``partner`` (msit-spec §5.5 step 6), or None (no merge).

    It is the first dimension where the shard sizes differ and size x count agree on both sides.
    Shapes are aligned on their last dimensions (a torch ``[1, s, h]`` against an ATB ``[s, h]``),
    the extra leading dimensions of the longer shape must be 1. The rule is symmetric, so both
    sides of a pair agree on the dimension.
    """
    common = min(len(own), len(partner))
    if any(size != 1 for size in own[: len(own) - common]) or any(
        size != 1 for size in partner[: len(partner) - common]
    ):
        return None
    offset = len(own) - common
    for d in range(common):
        mine, theirs = own[offset + d], partner[len(partner) - common + d]
        if mine != theirs and mine * own_count == theirs * partner_count:
            return offset + d
    return None


@dataclass(frozen=True)
class ShardedRecord(TensorRecord):
    """One tensor dumped as tensor-parallel shards, one file per rank (``shards``, rank order).

    ``partner_shards`` are the other side's files: the concatenation dimension depends on both
    (``merge_dim``). Without such a dimension (a replicated tensor) the first rank's tensor is used.
    """

    shards: tuple[TensorRecord, ...] = ()
    partner_shards: tuple[TensorRecord, ...] = ()

    @classmethod
    def of(cls, shards: list[TensorRecord], partner_shards: list[TensorRecord]) -> ShardedRecord:
        return cls(**base_fields(shards[0]), shards=tuple(shards), partner_shards=tuple(partner_shards))

    def dimension(self) -> int | None:
        """The concatenation dimension of the shards (None: first rank only)."""
        if len(self.shards) == len(self.partner_shards) == 1:
            return None
        own, partner = record_shape(self.shards[0]), record_shape(self.partner_shards[0])
        return merge_dim(own, len(self.shards), partner, len(self.partner_shards))

    def load(self) -> torch.Tensor:
        if len(self.shards) == 1:
            return self.shards[0].load()
        dim = self.dimension()
        if dim is None:
            return self.shards[0].load()
        import torch

        return torch.cat([shard.load() for shard in self.shards], dim)

    def load_raw(self) -> RawTensor | None:
        return self.shards[0].load_raw() if len(self.shards) == 1 else None

    def probe(self):
        info = self.shards[0].probe()
        dim = self.dimension() if len(self.shards) > 1 else None
        if dim is None:
            return info
        shape = list(info.shape)
        shape[dim] = sum(record_shape(shard)[dim] for shard in self.shards)
        return replace(info, shape=tuple(shape))

    def describe(self) -> str:
        return " + ".join(shard.describe() for shard in self.shards)


# --- rope tables -------------------------------------------------------------------------------


def _deinterleave(tensor: torch.Tensor) -> torch.Tensor:
    """``[..., 2n]`` whose even and odd columns are equal -> the even columns (ATB rope tables)."""
    if tensor.ndim and tensor.shape[-1] % 2 == 0 and tensor.shape[-1]:
        even, odd = tensor[..., 0::2], tensor[..., 1::2]
        if bool((even == odd).all()):
            return even
    return tensor


@dataclass(frozen=True)
class RopeRecord(TensorRecord):
    """A rope table of msit's rope special case (msit-spec §5.5 step 4).

    On the ATB side (``seqlen`` None) the table with duplicated columns is de-interleaved. On the
    torch side the rotary module's cached table is cut to the positions the ATB table holds:
    ``seqlen`` is the ATB ``intensor4`` (the sequence length ``s``), ``partner`` the ATB table with
    ``n`` rows, and positions ``s - n .. s - 1`` are kept (msit keeps ``s - 1`` only, ``n = 1``).
    ``table`` is ``cos`` or ``sin`` (the column of a 3-D table).
    """

    seqlen: TensorRecord | None = None
    partner: TensorRecord | None = None
    table: str = "cos"

    def load(self) -> torch.Tensor:
        tensor = super().load()
        if self.seqlen is None:
            return _deinterleave(tensor).contiguous()
        length = self.seqlen.load().reshape(-1)
        if length.numel() != 1:
            from ..errors import DumpFormatError

            raise DumpFormatError(
                self.seqlen.path, f"rope sequence length has {length.numel()} values, not 1"
            )
        s = int(length[0])
        rows = 1
        if self.partner is not None:
            shape = record_shape(self.partner)
            rows = shape[0] if len(shape) == 2 else 1
        return _positions(tensor, s, rows, self.table).contiguous()

    def load_raw(self) -> RawTensor | None:
        return None

    def describe(self) -> str:
        return f"{super().describe()} (rope {self.table} table)"


def _positions(tensor: torch.Tensor, s: int, rows: int, table: str) -> torch.Tensor:
    first = max(s - rows, 0)
    if tensor.ndim == 4:
        for dim in (2, 1):
            if 1 <= s <= tensor.shape[dim]:
                return tensor.narrow(dim, first, s - first).squeeze(0).reshape(s - first, -1)
        return tensor
    if tensor.ndim == 3 and 1 <= s <= tensor.shape[0] and tensor.shape[2] >= 2:
        return tensor[first:s, :, 0 if table == "cos" else 1]
    return tensor


# --- de-quantised weights ----------------------------------------------------------------------


def _per_row(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A 1-D per-output-channel scale/offset as a column that broadcasts over ``weight``."""
    values = values.float()
    if values.ndim == 1 and weight.ndim >= 2 and values.numel() == weight.shape[0]:
        return values.reshape(-1, *([1] * (weight.ndim - 1)))
    return values


@dataclass(frozen=True)
class DequantRecord(TensorRecord):
    """A quantised integer weight read as ``(weight - offset) * scale`` (msit-spec §4.4)."""

    scale: TensorRecord | None = None
    offset: TensorRecord | None = None

    def load(self) -> torch.Tensor:
        weight = super().load()
        result = weight.float()
        if self.offset is not None:
            result = result - _per_row(self.offset.load(), weight)
        if self.scale is not None:
            result = result * _per_row(self.scale.load(), weight)
        return result

    def load_raw(self) -> RawTensor | None:
        return None

    def describe(self) -> str:
        parts = [p.describe() for p in (self.offset, self.scale) if p is not None]
        return f"{super().describe()} de-quantised with {' and '.join(parts)}"


# --- statistics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsRecord(TensorRecord):
    """A dumped tensor known by its statistics only (``statistics.csv`` row or ATB stats file).

    ``values`` are max, min, mean and L2 norm (NaN where the dump lacks one); the record loads as
    that float32 vector, so a statistics pair can be compared and judged like a tensor pair (the
    float32 standard applies to it). ``dtype``/``shape`` are the dumped tensor's, as text.
    """

    values: tuple[float, float, float, float] = (math.nan,) * 4
    dtype: str = ""
    shape: str = ""

    def load(self) -> torch.Tensor:
        import torch

        return torch.tensor(self.values, dtype=torch.float32)

    def load_raw(self) -> RawTensor | None:
        import numpy as np

        from ..formats.raw_tensor import RawTensor

        with np.errstate(over="ignore"):  # a statistic beyond float32 becomes inf
            data = memoryview(np.asarray(self.values, dtype="<f4").tobytes())
        return RawTensor(data, "torch.float32", (len(self.values),), self.path, self.member)

    def statistics(self) -> dict[str, float]:
        return dict(zip(STATISTICS, self.values, strict=True))

    def tensor_elements(self) -> int | None:
        """The element count of the dumped tensor, from its shape text (``(1, 5, 16)``), or None."""
        if not self.shape:
            return None
        return math.prod(int(size) for size in re.findall(r"\d+", self.shape))

    def describe(self) -> str:
        return self.path if self.member is None else f"{self.path}[{self.member}]"
