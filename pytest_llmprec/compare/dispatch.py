"""``compare_any``: two raw reads go to the C kernel without torch, anything else to ``compare_tensors``."""

from __future__ import annotations

from typing import Any

from ..formats.raw_tensor import RawTensor
from ..standards.thresholds import Tolerance
from . import native
from .results import CompareResult


def compare_any(golden: Any, my: Any, *, tolerance: Tolerance | None = None) -> CompareResult:
    """``compare_tensors(golden, my)``; when both are ``RawTensor`` reads of the same element order
    and the C kernel is built, computed by it without importing torch."""
    if raw_comparable(golden, my):
        return native.compare_raw(golden, my, tolerance=tolerance)
    from .metrics import compare_tensors

    return compare_tensors(golden, my, tolerance=tolerance)


def raw_comparable(golden: Any, my: Any) -> bool:
    """Whether the C kernel compares ``golden`` and ``my`` directly (no torch)."""
    return (
        isinstance(golden, RawTensor)
        and isinstance(my, RawTensor)
        and native.available()
        and golden.same_order(my)
    )
