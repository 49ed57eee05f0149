"""``compare_any``: two raw reads go to the C kernel without torch, anything else to ``compare_tensors``."""

from __future__ import annotations

from typing import Any

from ..formats.raw_tensor import RawTensor
from ..standards.thresholds import Tolerance
from . import native
from .results import CompareResult


def compare_any(golden: Any, my: Any, *, tolerance: Tolerance | None = None) -> CompareResult:
    """``compare_tensors(golden, my)``; when both are ``RawTensor`` reads and the C kernel is built,
    computed by it without importing torch."""
    if isinstance(golden, RawTensor) and isinstance(my, RawTensor) and native.available():
        return native.compare_raw(golden, my, tolerance=tolerance)
    from .metrics import compare_tensors

    return compare_tensors(golden, my, tolerance=tolerance)
