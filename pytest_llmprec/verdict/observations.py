"""``Observation``: what the local verdict needs of one compared pair — where it sits, its
accumulated error, and fingerprints of both tensors to follow values from node to node."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..dtypes import dtype_facts

if TYPE_CHECKING:
    from ..compare.results import CompareResult
    from ..matching import Pair

MASK_MAGNITUDE = 1e30
"""Golden values this large are a mask's "minus infinity" stand-ins, not data: such tensors are
not judged by their error (fp32's and bf16's smallest values differ by 0.4%, harmlessly)."""

FLOAT, EXACT, MASK = "float", "exact", "mask"


@dataclass(frozen=True, slots=True)
class Observation:
    """One compared pair seen by the local verdict. ``error`` is the accumulated relative Euclidean
    distance; ``golden_print``/``my_print`` identify a tensor's values (shape and statistics), so a
    node's input can be traced to the output that produced it; ``order`` is golden's execution order."""

    key: str
    token: int | str
    node: str
    leaf: str
    role: str
    order: int
    kind: str
    error: float
    golden_print: tuple
    my_print: tuple
    dtype: str

    @property
    def floating(self) -> bool:
        return self.kind == FLOAT


def _kind(result: CompareResult, my_dtype: str) -> str:
    if not dtype_facts(result.golden_dtype).floating or not dtype_facts(my_dtype).floating:
        return EXACT
    extremes = (result.golden_max_value, result.golden_min_value)
    if any(math.isfinite(v) and abs(v) >= MASK_MAGNITUDE for v in extremes):
        return MASK
    return FLOAT


def observe(pair: Pair, result: CompareResult) -> Observation:
    """The observation of ``pair`` compared into ``result``."""
    golden_print = (
        result.golden_shape,
        result.golden_mean_value,
        result.golden_max_value,
        result.golden_min_value,
    )
    my_print = (result.my_shape, result.my_mean_value, result.my_max_value, result.my_min_value)
    error = result.relative_euclidean_distance
    if result.max_absolute_error == 0 and result.element_count == result.compared_count:
        error = 0.0
    return Observation(
        pair.key,
        pair.token,
        pair.golden.node,
        pair.golden.leaf,
        pair.golden.role,
        pair.golden.order,
        _kind(result, pair.my.original_dtype or result.my_dtype),
        error,
        golden_print,
        my_print,
        pair.my.original_dtype or result.my_dtype,  # FX dumps save bf16 as float32 and say so
    )
