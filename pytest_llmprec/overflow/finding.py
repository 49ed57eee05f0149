"""What a scan of one tensor found (``OverflowFinding``) and the limits of each dtype (no torch needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..dtypes import dtype_name

DEFAULT_NEAR = 0.5
"""Default near-overflow fraction of the largest finite value reported by ``scan``."""

_FLOAT_LIMITS = {
    "torch.float64": 1.7976931348623157e308,
    "torch.float32": 3.4028234663852886e38,
    "torch.float16": 65504.0,
    "torch.bfloat16": 3.3895313892515355e38,
    "torch.float8_e4m3fn": 448.0,
    "torch.float8_e4m3fnuz": 240.0,
    "torch.float8_e5m2": 57344.0,
    "torch.float8_e5m2fnuz": 57344.0,
}
_INTEGER_LIMITS = {
    "torch.int8": (-(2**7), 2**7 - 1),
    "torch.int16": (-(2**15), 2**15 - 1),
    "torch.int32": (-(2**31), 2**31 - 1),
    "torch.int64": (-(2**63), 2**63 - 1),
    "torch.uint8": (0, 2**8 - 1),
    "torch.uint16": (0, 2**16 - 1),
    "torch.uint32": (0, 2**32 - 1),
    "torch.uint64": (0, 2**64 - 1),
}


@dataclass(frozen=True)
class Limits:
    """The values a dtype saturates at: ``low``/``high`` (floats: ∓ the largest finite value;
    integers: exact ``int`` limits, ``low`` None for unsigned ones, whose 0 is an ordinary value);
    ``floating`` for NaN/Inf."""

    high: float | int
    low: float | int | None
    floating: bool

    def near_bound(self, near: float | None) -> float:
        """The magnitude from which a value is near overflow (the limit itself when ``near`` is None)."""
        return self.high if near is None else near * self.high


def dtype_limits(dtype: Any) -> Limits | None:
    """The saturation limits of ``dtype`` (a ``torch.dtype`` or its name); None for bool and complex."""
    name = dtype_name(dtype)
    if name in _FLOAT_LIMITS:
        high = _FLOAT_LIMITS[name]
        return Limits(high, -high, True)
    if name in _INTEGER_LIMITS:
        low, high = _INTEGER_LIMITS[name]
        return Limits(high, low or None, False)
    if isinstance(dtype, str) or name in ("torch.bool",) or "complex" in name:
        return None
    import torch

    if dtype.is_floating_point:
        high = float(torch.finfo(dtype).max)
        return Limits(high, -high, True)
    info = torch.iinfo(dtype)
    return Limits(info.max, info.min or None, False)


def check_near(near: float | None, what: str = "near") -> float | None:
    """``near`` if it is None or a fraction in (0, 1]; ``ValueError`` otherwise."""
    if near is None:
        return None
    if isinstance(near, bool) or not isinstance(near, (int, float)) or not 0 < near <= 1:
        raise ValueError(f"{what} must be a fraction of the largest finite value in (0, 1], got {near!r}")
    return float(near)


def unravel(index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The row-major multi-index of flat position ``index`` in ``shape``."""
    position = []
    for size in reversed(shape):
        index, rest = divmod(index, size)
        position.append(rest)
    return tuple(reversed(position))


@dataclass(frozen=True)
class OverflowFinding:
    """The overflow counts of one tensor.

    ``saturated`` counts values at ± the largest finite value of the dtype (integers: at the type's
    limits), which is where Ascend's saturation mode clamps overflowing results; whether they count as
    overflow is ``saturation``. ``near`` counts the other finite values whose magnitude is at least
    ``near_fraction`` × that value, rounded to the dtype (0 when ``near_fraction`` is None).
    ``first_index`` is the first overflowing element in row-major order; when nothing overflowed, the
    first finite one at or above the near bound (saturated ones included); ``first_value`` its value.
    ``note`` says how an unusual dtype was scanned.
    """

    dtype: str
    shape: tuple[int, ...]
    count: int
    nan: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    saturated: int = 0
    near: int = 0
    limit: float | int | None = None
    near_fraction: float | None = DEFAULT_NEAR
    saturation: bool = True
    first_index: tuple[int, ...] | None = None
    first_value: float | None = None
    note: str = ""

    @property
    def inf(self) -> int:
        return self.pos_inf + self.neg_inf

    @property
    def overflowed(self) -> int:
        """How many values overflowed: NaN, ±Inf and, with ``saturation``, saturated values."""
        return self.nan + self.inf + (self.saturated if self.saturation else 0)

    @property
    def near_ratio(self) -> float:
        """The share of the values that are near overflow (0 for an empty tensor)."""
        return self.near / self.count if self.count else 0.0

    def flagged(self, near: bool = False) -> bool:
        """Whether anything overflowed (or, with ``near``, came near it)."""
        return bool(self.overflowed or (near and self.near))

    def kind(self) -> str:
        """The worst thing found: ``nan``, ``inf``, ``saturated``, ``near`` or ``""``."""
        if self.nan:
            return "nan"
        if self.inf:
            return "inf"
        if self.saturated and self.saturation:
            return "saturated"
        return "near" if self.near else ""

    def counts_text(self) -> str:
        """``3 NaN, 12 +Inf, 4 saturated at ±65504 of 384 values`` (only the non-zero counts)."""
        parts = [
            f"{count} {label}"
            for count, label in ((self.nan, "NaN"), (self.pos_inf, "+Inf"), (self.neg_inf, "-Inf"))
            if count
        ]
        if self.saturated:
            integer = self.dtype.startswith(("torch.int", "torch.uint"))
            where = f"the {self.dtype.removeprefix('torch.')} limits" if integer else f"±{self.limit:g}"
            counted = "" if self.saturation else " (not counted: saturation off)"
            parts.append(f"{self.saturated} saturated at {where}{counted}")
        if self.near and self.near_fraction is not None:
            share = f"{self.near_ratio:.2%} at >= {self.near_fraction:g} × {self.limit:g}"
            parts.append(f"{self.near} near overflow ({share})")
        if not parts:
            return f"no overflow in {self.count} values"
        return f"{', '.join(parts)} of {self.count} values"

    def describe(self) -> str:
        """One line: dtype, shape, the counts and the first offending element."""
        text = f"{self.dtype.removeprefix('torch.')} {list(self.shape)}: {self.counts_text()}"
        if self.first_index is not None:
            text += f"; first at index {self.first_index} = {_value_text(self.first_value)}"
        return text + (f" ({self.note})" if self.note else "")


def _value_text(value: float | None) -> str:
    if value is None:
        return "?"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.8g}"
