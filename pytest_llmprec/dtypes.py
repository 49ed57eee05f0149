"""Facts about element types, by name, importable without torch.

A dtype is named as torch prints it (``"torch.bfloat16"``); every function here also accepts
a ``torch.dtype`` or the short name (``"bfloat16"``). Dtypes outside the table (newer torch
float kinds) are described from ``torch.finfo`` when a ``torch.dtype`` is given.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DTypeFacts:
    """``bits`` explicit mantissa bits and ``emin`` smallest normal exponent of a float type;
    ``bits == -1`` for integers and bool, whose unit of last place is 1."""

    name: str
    itemsize: int
    floating: bool
    bits: int = -1
    emin: int = 0

    @property
    def eps(self) -> float:
        """The gap between 1 and the next value (1 for integers)."""
        return 2.0**-self.bits if self.floating else 1.0


def _float(name: str, itemsize: int, bits: int, emin: int) -> DTypeFacts:
    return DTypeFacts(f"torch.{name}", itemsize, True, bits, emin)


def _integer(name: str, itemsize: int) -> DTypeFacts:
    return DTypeFacts(f"torch.{name}", itemsize, False)


_TABLE = {
    facts.name: facts
    for facts in (
        _float("float64", 8, 52, -1022),
        _float("float32", 4, 23, -126),
        _float("float16", 2, 10, -14),
        _float("bfloat16", 2, 7, -126),
        _float("float8_e4m3fn", 1, 3, -6),
        _float("float8_e4m3fnuz", 1, 3, -7),
        _float("float8_e5m2", 1, 2, -14),
        _float("float8_e5m2fnuz", 1, 2, -15),
        _integer("int8", 1),
        _integer("int16", 2),
        _integer("int32", 4),
        _integer("int64", 8),
        _integer("uint8", 1),
        _integer("uint16", 2),
        _integer("uint32", 4),
        _integer("uint64", 8),
        _integer("bool", 1),
    )
}

NUMPY_CODES = {
    "f8": "torch.float64", "f4": "torch.float32", "f2": "torch.float16",
    "i1": "torch.int8", "i2": "torch.int16", "i4": "torch.int32", "i8": "torch.int64",
    "u1": "torch.uint8", "u2": "torch.uint16", "u4": "torch.uint32", "u8": "torch.uint64",
    "b1": "torch.bool", "c8": "torch.complex64", "c16": "torch.complex128",
}  # fmt: skip
"""NumPy dtype (kind and item size, any byte order) -> the dtype's name."""

KERNEL_ELEMENT_KINDS = {
    "torch.float64": "f64", "torch.float32": "f32", "torch.float16": "f16", "torch.bfloat16": "bf16",
    "torch.int16": "i16", "torch.int32": "i32", "torch.int64": "i64",
    "torch.uint16": "u16", "torch.uint32": "u32", "torch.uint64": "u64",
}  # fmt: skip
"""Dtypes the C kernel (``compare.native``) reads directly: name -> its element kind."""

KERNEL_TABLE_DTYPES = ("torch.uint8", "torch.int8", "torch.bool")
"""One-byte dtypes the C kernel reads through a 256-entry table of their values."""

KERNEL_DTYPES = frozenset(KERNEL_ELEMENT_KINDS) | frozenset(KERNEL_TABLE_DTYPES)
"""Every dtype the C kernel reads without help from torch (and so every dtype a raw read returns)."""

_MSIT_ERROR_LEVELS = {
    "torch.float32": 2.0**-20,
    "torch.float16": 2.0**-10,
    "torch.bfloat16": 2.0**-8,
    "torch.float64": 1e-4,
    "torch.int32": 1e-4,
    "torch.int64": 1e-4,
    "torch.uint32": 1e-4,
    "torch.uint64": 1e-4,
    "torch.int8": 1.0,
    "torch.int16": 1.0,
    "torch.uint16": 1.0,
    "torch.uint8": 1.0,
    "torch.bool": 1e-4,
}


@functools.cache  # called for every tensor of every pair; dtypes are few
def dtype_name(dtype: Any) -> str:
    """``"torch.float32"`` for ``torch.float32``, ``"float32"`` or ``"torch.float32"``."""
    name = str(dtype)
    return name if name.startswith("torch.") else f"torch.{name}"


@functools.cache
def dtype_facts(dtype: Any) -> DTypeFacts:
    """Size, kind and float grid of ``dtype``; ``ValueError`` for an unknown name."""
    name = dtype_name(dtype)
    facts = _TABLE.get(name)
    if facts is not None:
        return facts
    if isinstance(dtype, str):
        raise ValueError(f"unknown dtype {dtype!r}")
    import torch

    if dtype.is_floating_point:
        info = torch.finfo(dtype)
        bits, emin = round(-math.log2(info.eps)), round(math.log2(info.smallest_normal))
        return DTypeFacts(name, info.bits // 8, True, bits, emin)
    return DTypeFacts(name, dtype.itemsize, False)


def msit_error_level(dtype: Any) -> float:
    """msit opcheck's relative error level for ``dtype`` (msit-spec §6.4); float8: half their eps."""
    level = _MSIT_ERROR_LEVELS.get(dtype_name(dtype))
    if level is not None:
        return level
    facts = dtype_facts(dtype)
    return facts.eps / 2 if facts.floating else 1.0


def coarser_dtype(first: Any, second: Any) -> str:
    """The name of the dtype with the coarser grid (a float beats an integer; larger eps wins)."""
    a, b = dtype_facts(first), dtype_facts(second)
    if a.floating != b.floating:
        return a.name if a.floating else b.name
    if not a.floating:
        return a.name
    return a.name if a.eps >= b.eps else b.name
