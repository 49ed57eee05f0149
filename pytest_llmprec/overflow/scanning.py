"""Scanning a tensor for overflow on its own device: ``scan`` and the queued ``PendingScan``.

On the CPU one ``torch.aminmax`` pass (no temporary, NaN-propagating) decides for the common case
that nothing is near overflow; only a tensor that fails it is counted in detail. On other devices
the counts are computed there and stay there (``PendingScan``) until the caller reads them back,
so many scans cost one synchronisation: masks for NaN, +Inf, -Inf, saturation and near overflow
are written into one buffer, summed and searched for their first element in two reductions. The
CPU's detailed counts use NumPy on bit patterns, in chunks small enough to stay in the caches.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .finding import DEFAULT_NEAR, Limits, OverflowFinding, check_near, dtype_limits, unravel

CHUNK = 1 << 24
"""Elements counted at a time on an accelerator, bounding the masks' memory (5 bytes per element)."""
CPU_CHUNK = 1 << 20
"""Elements counted at a time on the CPU: temporaries this small are reused by the allocator instead of
being faulted in afresh, which costs more than the counting."""

_COUNTS = 5  # rows of the masks: nan, +inf, -inf, saturated, at or above the near bound
STATS_WIDTH = 3 * _COUNTS
"""One chunk's statistics: the 5 counts, the 5 first positions, the 5 values there."""


@dataclass(frozen=True)
class _Plan:
    """How to scan one tensor: the values compared, their limits and what the finding reports."""

    values: torch.Tensor
    limits: Limits
    dtype: str
    shape: tuple[int, ...]
    near: float | None
    saturation: bool
    bound: float = math.inf  # the near bound, exact in the dtype (see ``_exact_bound``)
    note: str = ""
    per_element: int = 1  # complex tensors are scanned as (real, imaginary) pairs

    def finding(self, **fields) -> OverflowFinding:
        return OverflowFinding(
            self.dtype,
            self.shape,
            self.values.numel(),
            limit=self.limits.high,
            near_fraction=self.near,
            saturation=self.saturation,
            note=self.note,
            **fields,
        )


def _plan(tensor: torch.Tensor, near: float | None, saturation: bool) -> _Plan | OverflowFinding:
    """The scan plan of ``tensor``, or its finding when there is nothing to compare."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    near = check_near(near)
    dtype, shape = str(tensor.dtype), tuple(tensor.shape)
    if tensor.layout != torch.strided:
        raise ValueError(f"a {tensor.layout} tensor cannot be scanned; pass tensor.to_dense()")
    if tensor.device.type == "meta":
        raise ValueError("a meta tensor holds no values")
    if tensor.is_quantized:
        raise ValueError(f"a quantized {dtype} tensor; scan tensor.int_repr() or tensor.dequantize()")
    values, note, per_element = tensor.detach(), "", 1
    if values.is_complex():
        values, per_element = torch.view_as_real(values.resolve_conj()), 2
        note = "complex: real and imaginary parts counted as values"
    elif values.dtype == torch.bool:
        return OverflowFinding(dtype, shape, tensor.numel(), near_fraction=near, saturation=saturation,
                               note="bool values cannot overflow")  # fmt: skip
    limits = dtype_limits(values.dtype)
    if limits is None:
        raise ValueError(f"{dtype} is not a numeric dtype the overflow scan reads")
    if "float8" in str(values.dtype):
        values = values.float()  # exact; the comparisons have no float8 kernels
    elif values.dtype in (torch.uint16, torch.uint32):
        values = values.long()  # exact; min/max have no kernels for these
    elif values.dtype == torch.uint64:
        raise ValueError("uint64 tensors are not scanned (torch has no min/max for them)")
    bound = _exact_bound(limits.near_bound(near), values.dtype, tensor.dtype)
    plan = _Plan(values, limits, dtype, shape, near, saturation, bound, note, per_element)
    return plan.finding() if values.numel() == 0 else plan


@functools.lru_cache(maxsize=256)
def _exact_bound(bound: float, dtype: torch.dtype, stored: torch.dtype) -> float:
    """The near bound as the comparisons see it: rounded to the stored dtype (floats; to nearest), or
    the smallest integer not below it, at most the type's largest value (integers), so that every scan
    path counts the same values (a float bound above 2**63 would round int64 values up to it)."""
    if not dtype.is_floating_point:
        return min(math.ceil(bound), torch.iinfo(dtype).max) if dtype != torch.bool else math.ceil(bound)
    real = stored.to_real() if stored.is_complex else stored
    return torch.tensor(bound, dtype=torch.float64).to(real).item()


MAGNITUDE_WIDTHS = {"torch.float16": 2, "torch.bfloat16": 2, "torch.float32": 4, "torch.float64": 8}
"""Element widths of the float dtypes whose bit patterns, sign bit cleared, order their magnitudes."""


@functools.lru_cache(maxsize=64)
def bound_pattern(dtype: str, near: float | None) -> int:
    """The bit pattern, sign bit cleared, of the near bound of the float ``dtype`` (its largest
    finite value when ``near`` is None): a value is finite and below the bound exactly when its
    pattern is below this one (NaN and Inf patterns lie above every finite one)."""
    torch_dtype = getattr(torch, dtype.removeprefix("torch."))
    limits = dtype_limits(torch_dtype)
    bound = _exact_bound(limits.near_bound(check_near(near)), torch_dtype, torch_dtype)
    bits = torch.tensor(bound, dtype=torch_dtype).view(_BITS[MAGNITUDE_WIDTHS[dtype]]).item()
    return bits & ((1 << (8 * MAGNITUDE_WIDTHS[dtype] - 1)) - 1)


def clean_finding(
    dtype: str, shape: tuple[int, ...], near: float | None, saturation: bool
) -> OverflowFinding:
    """The finding of a float ``dtype`` tensor whose values are all finite and below the near bound."""
    high, near = dtype_limits(dtype).high, check_near(near)
    return OverflowFinding(
        dtype, shape, math.prod(shape), limit=high, near_fraction=near, saturation=saturation
    )


def _in_memory_order(values: torch.Tensor) -> torch.Tensor:
    """``values`` with its dimensions permuted into storage order (a full reduction does not care about
    the order, and walking memory in order is faster); as is when that is not contiguous."""
    order = sorted(range(values.dim()), key=lambda d: -values.stride(d))
    permuted = values.permute(order)
    return permuted if permuted.is_contiguous() else values


def _clean_by_extremes(plan: _Plan) -> bool:
    """Whether one min/max pass shows every value finite and below the near bound (CPU fast path)."""
    low, high = (value.item() for value in torch.aminmax(_in_memory_order(plan.values)))
    bound = plan.bound
    if plan.limits.floating:
        return -bound < low and high < bound  # False for NaN
    lowest = plan.limits.low
    return high < bound and (lowest is None or low > -bound)


def _device_chunk_stats(piece: torch.Tensor, plan: _Plan, start: int) -> torch.Tensor:
    """The ``STATS_WIDTH`` statistics of one flat chunk, computed with torch on its device (no
    synchronisation): masks of NaN, +Inf, -Inf, saturated values and of values at or above the near
    bound (NaN included), summed and searched for their first element in two reductions."""
    high, bound = plan.limits.high, plan.bound
    masks = torch.empty((_COUNTS, piece.numel()), dtype=torch.bool, device=piece.device)
    if plan.limits.floating:
        magnitude = piece.abs()
        torch.ne(piece, piece, out=masks[0])
        torch.eq(piece, math.inf, out=masks[1])
        torch.eq(piece, -math.inf, out=masks[2])
        torch.eq(magnitude, high, out=masks[3])
        torch.lt(magnitude, bound, out=masks[4])
        masks[4].logical_not_()
    else:
        masks[:3].zero_()
        torch.eq(piece, high, out=masks[3])
        torch.ge(piece, bound, out=masks[4])
        if plan.limits.low is not None:
            masks[3] |= piece == plan.limits.low
            masks[4] |= piece <= -bound
    counts = masks.sum(dim=1, dtype=torch.float64)
    firsts = masks.view(torch.uint8).argmax(dim=1)
    found = piece[firsts].double()
    return torch.cat((counts, (firsts + start).double(), found))


_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _cpu_chunk_stats(piece: torch.Tensor, plan: _Plan, start: int) -> torch.Tensor:
    """The same statistics on the CPU with NumPy, which compares, counts and finds far faster than torch
    here. Floats are compared as bit patterns: with the sign bit cleared, the order of the patterns is
    the order of the magnitudes, NaN above Inf (this also covers bfloat16, which NumPy lacks)."""
    if plan.limits.floating:
        bits_dtype = _BITS[piece.element_size()]
        special = torch.tensor([math.inf, -math.inf, plan.limits.high, plan.bound], dtype=piece.dtype)
        pos_inf, neg_inf, high, bound = special.view(bits_dtype).tolist()
        bits = piece.view(bits_dtype).numpy()
        magnitude = bits & np.iinfo(bits.dtype).max
        masks = [magnitude > pos_inf, bits == pos_inf, bits == neg_inf, magnitude == high, magnitude >= bound]
    else:
        values = piece.numpy()
        low, high, bound = plan.limits.low, plan.limits.high, plan.bound
        at_limit, at_bound = values == high, values >= bound
        if low is not None:
            at_limit |= values == low
            at_bound |= values <= -bound
        masks = [None, None, None, at_limit, at_bound]
    counts = [0.0 if mask is None else float(np.count_nonzero(mask)) for mask in masks]
    firsts = [0 if mask is None else int(mask.argmax()) for mask in masks]
    found = piece[firsts].double().tolist()
    return torch.tensor([*counts, *(float(first + start) for first in firsts), *found], dtype=torch.float64)


def _device_stats(plan: _Plan) -> torch.Tensor:
    """``[chunks, STATS_WIDTH]`` float64 statistics of the plan's values, on their device."""
    flat = plan.values.reshape(-1)
    on_cpu = flat.device.type == "cpu"
    size, stats = (CPU_CHUNK, _cpu_chunk_stats) if on_cpu else (CHUNK, _device_chunk_stats)
    rows = [stats(flat[start : start + size], plan, start) for start in range(0, flat.numel(), size)]
    return torch.stack(rows)


def _resolve(plan: _Plan, rows: Sequence[Sequence[float]]) -> OverflowFinding:
    """The finding from the statistics rows read back from the device."""
    totals = [round(sum(row[k] for row in rows)) for k in range(_COUNTS)]
    nan, pos_inf, neg_inf, saturated, at_bound = totals
    # the bound row holds NaN, ±Inf and the saturated values too
    near = 0 if plan.near is None else at_bound - nan - pos_inf - neg_inf - saturated
    overflow_rows = (0, 1, 2, 3) if plan.saturation else (0, 1, 2)
    first = None
    for row in rows:
        found = [(row[_COUNTS + k], row[2 * _COUNTS + k]) for k in overflow_rows if row[k]]
        if found:
            first = min(found)
            break
    if first is None and plan.near is not None and at_bound:  # nothing overflowed: the first value
        row = next(row for row in rows if row[4])  # at or above the near bound (saturated ones too)
        first = (row[_COUNTS + 4], row[2 * _COUNTS + 4])
    index = value = None
    if first is not None:
        index = unravel(int(first[0]) // plan.per_element, plan.shape)
        value = float(first[1])
    return plan.finding(
        nan=nan, pos_inf=pos_inf, neg_inf=neg_inf, saturated=saturated, near=near,
        first_index=index, first_value=value,
    )  # fmt: skip


def scan(
    tensor: torch.Tensor, *, near: float | None = DEFAULT_NEAR, saturation: bool = True
) -> OverflowFinding:
    """Count the NaN, ±Inf, saturated and near-overflow values of ``tensor`` on its device.

    ``near`` is the fraction of the dtype's largest finite value from which a finite value counts
    as near overflow (None: not counted); ``saturation`` says whether values at the limits count as
    overflow. Only the counts come back to the host (one synchronisation on an accelerator).
    Raises ``TypeError``/``ValueError`` for what cannot be scanned (sparse, meta, quantized tensors).
    """
    plan = _plan(tensor, near, saturation)
    if isinstance(plan, OverflowFinding):
        return plan
    if plan.values.device.type == "cpu" and _clean_by_extremes(plan):
        return plan.finding()
    return _resolve(plan, _device_stats(plan).tolist())


class PendingScan:
    """A scan whose statistics are still on the tensor's device; ``resolve`` turns them into a finding.

    Queue many, then read them back together with ``resolve_all`` (one copy per device).
    """

    def __init__(self, tensor: torch.Tensor, *, near: float | None = DEFAULT_NEAR, saturation: bool = True):
        plan = _plan(tensor, near, saturation)
        self._plan = plan if isinstance(plan, _Plan) else None
        self._finding = plan if isinstance(plan, OverflowFinding) else None
        self.stats = None if self._plan is None else _device_stats(self._plan)

    def resolve(self, rows: Sequence[Sequence[float]] | None = None) -> OverflowFinding:
        if self._finding is None:
            self._finding = _resolve(self._plan, self.stats.tolist() if rows is None else rows)
            self.stats = None
        return self._finding


def resolve_all(pending: Sequence[PendingScan]) -> list[OverflowFinding]:
    """The findings of ``pending``, reading the statistics back with one copy per device."""
    by_device: dict[torch.device, list[PendingScan]] = {}
    for scan_ in pending:
        if scan_.stats is not None:
            by_device.setdefault(scan_.stats.device, []).append(scan_)
    for scans in by_device.values():
        rows = torch.cat([s.stats for s in scans]).tolist()
        offset = 0
        for s in scans:
            chunks = s.stats.shape[0]
            s.resolve(rows[offset : offset + chunks])
            offset += chunks
    return [s.resolve() for s in pending]
