"""The C kernel over raw little-endian element buffers, split over threads; importable without torch.

``accumulate_buffers`` reads each element once with no temporaries; the kernel releases the
GIL, so large buffers are cut into consecutive ranges reduced by a pool of threads and merged.
``compare_raw`` compares two raw reads of dump files (``formats.raw``) this way. ``_kernel``
is None when the optional extension was not built (callers then use torch).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from array import array
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple

from ..dtypes import KERNEL_ELEMENT_KINDS, dtype_facts, dtype_name
from ..standards.thresholds import Tolerance
from .accumulators import FIELDS, UlpGrid, merge
from .results import CompareResult, Side, compare_sides, default_tolerance

if TYPE_CHECKING:
    from ..formats.raw_tensor import RawTensor

try:
    from . import _kernel
except ImportError:  # the optional extension was not built
    _kernel = None

if _kernel is not None and tuple(_kernel.FIELDS) != FIELDS:  # pragma: no cover - build mismatch
    raise ImportError("pytest_llmprec._kernel is out of date; rebuild the package")

THREAD_SPLIT_MIN = 1 << 18
"""Elements per range below which a comparison is not split further."""

RANGES_PER_THREAD = 4
"""A large comparison is cut into this many ranges per thread, taken by the threads as they come
free, so a thread on a slower or busier core does less of the work."""

ONE_BYTE_TABLES = {
    "torch.uint8": array("d", range(256)).tobytes(),
    "torch.int8": array("d", [b - 256 if b > 127 else b for b in range(256)]).tobytes(),
    "torch.bool": array("d", [float(b != 0) for b in range(256)]).tobytes(),
}
"""Value tables of the one-byte integer dtypes (float8 tables come from torch, see ``torch_backend``)."""


class Buffer:
    """Elements of one dtype in a contiguous bytes-like object (no copy is made).

    ``table`` (256 float64 values, as bytes) maps each byte of a one-byte dtype to its value;
    it is needed for dtypes outside ``dtypes.KERNEL_ELEMENT_KINDS`` and ``ONE_BYTE_TABLES``.
    """

    def __init__(self, data, dtype, table: bytes | None = None) -> None:
        name = dtype_name(dtype)
        self.data = memoryview(data).cast("B")
        table = table or ONE_BYTE_TABLES.get(name)
        if table is not None:
            self.kind, self.itemsize = _kernel.lut8, 1
        else:
            self.kind = getattr(_kernel, KERNEL_ELEMENT_KINDS[name])
            self.itemsize = dtype_facts(name).itemsize
        self.table = table
        self.count = len(self.data) // self.itemsize

    def slice(self, start: int, stop: int) -> memoryview:
        return self.data[start * self.itemsize : stop * self.itemsize]


def available() -> bool:
    """Whether the C kernel was built."""
    return _kernel is not None


def instruction_sets() -> tuple[str, ...]:
    """Instruction sets the kernel is compiled for that this CPU runs, the one in use by default
    first (with GCC on x86-64: ``x86-64-v4`` (AVX-512), ``x86-64-v3`` (AVX2), ``baseline``)."""
    return tuple(_kernel.INSTRUCTION_SETS)


def use_instruction_set(name: str) -> str:
    """Reduce with the named instruction set (one of ``instruction_sets()``) from now on, in this
    process; returns the one used until now."""
    return _kernel.use_instruction_set(name)


def readable(dtype) -> bool:
    """Whether the kernel reads ``dtype`` without a table from the caller."""
    name = dtype_name(dtype)
    return name in KERNEL_ELEMENT_KINDS or name in ONE_BYTE_TABLES


_threads_wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def set_threads(count: int) -> None:
    """Use at most ``count`` threads per comparison (default: the CPUs this process may run on)."""
    global _threads_wanted, _pool
    if count < 1:
        raise ValueError("at least one thread")
    with _pool_lock:
        if count != _threads_wanted and _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None
        _threads_wanted = count


def stop_threads() -> None:
    """End the kernel's threads once their work is done (the next comparison starts them again):
    a process about to fork has no other thread then."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_threads_wanted, thread_name_prefix="llmprec-kernel")
        return _pool


def accumulate_buffers(
    golden: Buffer, my: Buffer, offset: int, ulp: UlpGrid, tolerance: Tolerance
) -> dict[str, float]:
    """Accumulators over the elements of two equally long buffers; ``offset`` is the flat
    position of their first element (for ``worst_index``)."""
    if golden.count != my.count:
        raise ValueError(f"the buffers hold {golden.count} and {my.count} elements")
    settings = (ulp.bits, ulp.emin, tolerance.rtol, tolerance.atol, tolerance.small)

    def run(start: int, stop: int) -> dict[str, float]:
        values = _kernel.accumulate(
            golden.slice(start, stop), golden.kind, golden.table,
            my.slice(start, stop), my.kind, my.table, *settings, offset + start,
        )  # fmt: skip
        return dict(zip(FIELDS, values, strict=True))

    n = golden.count
    parts = min(_threads_wanted * RANGES_PER_THREAD, max(1, n // THREAD_SPLIT_MIN))
    if parts == 1 or _threads_wanted == 1:
        return run(0, n)
    bounds = [n * k // parts for k in range(parts + 1)]
    futures = [_threads().submit(run, a, b) for a, b in itertools.pairwise(bounds)]
    acc = futures[0].result()
    for future in futures[1:]:
        acc = merge(acc, future.result())
    return acc


class LogitsRow(NamedTuple):
    """The float64 statistics of one row of logits, golden and my: Σg², Σm², Σgm, Σ|g|, Σ|m|,
    max g, max m, whether either side holds NaN/Inf (the rest is then undefined), the KL
    divergence of softmax(my) from softmax(golden), and the ``(value, index)`` of each side's k
    largest values, largest first, equal values by increasing index."""

    gg: float
    mm: float
    gm: float
    g_abs: float
    m_abs: float
    g_max: float
    m_max: float
    g_bad: bool
    m_bad: bool
    kl: float
    g_top: list[tuple[float, int]]
    m_top: list[tuple[float, int]]


def logits_row(golden: Buffer, my: Buffer, k: int) -> LogitsRow:
    """``LogitsRow`` of two equally long buffers, in one pass of the kernel."""
    if golden.count != my.count:
        raise ValueError(f"the buffers hold {golden.count} and {my.count} elements")
    *sums, g_bad, m_bad, g_top_max, g_sum, g_dot, m_top_max, m_sum, g_top, m_top = _kernel.logits(
        golden.data, golden.kind, golden.table, my.data, my.kind, my.table, k
    )
    kl = math.nan
    if not (g_bad or m_bad):
        kl = g_dot / g_sum - (g_top_max + math.log(g_sum)) + (m_top_max + math.log(m_sum))
    return LogitsRow(*sums, bool(g_bad), bool(m_bad), kl, g_top, m_top)


def count_exceeding_raw(golden: RawTensor, my: RawTensor, kind: str, bound: float) -> int:
    """``metrics.count_exceeding`` for two raw reads, without torch (the C kernel must be built)."""
    codes = {"abs": _kernel.error_abs, "rel": _kernel.error_rel, "ulp": _kernel.error_ulp}
    if kind not in codes:
        raise ValueError(f"unknown error kind {kind!r}")
    g, m, ulp = Buffer(golden.data, golden.dtype), Buffer(my.data, my.dtype), UlpGrid.of(my.dtype)
    return _kernel.count_over(
        g.data, g.kind, g.table, m.data, m.kind, m.table, ulp.bits, ulp.emin, codes[kind], bound
    )


def compare_raw(golden: RawTensor, my: RawTensor, *, tolerance: Tolerance | None = None) -> CompareResult:
    """``compare_tensors`` for two raw reads, without torch (the C kernel must be built); both must
    hold their elements in the same order (``RawTensor.same_order``)."""
    if not golden.same_order(my):
        raise ValueError(f"{golden.path} and {my.path} store their elements in different orders")
    g_side, m_side = Side(golden.dtype, golden.shape), Side(my.dtype, my.shape)
    tol = tolerance or default_tolerance(golden.dtype, my.dtype)
    ulp = UlpGrid.of(my.dtype)

    def accumulate() -> dict[str, float]:
        return accumulate_buffers(Buffer(golden.data, golden.dtype), Buffer(my.data, my.dtype), 0, ulp, tol)

    return compare_sides(g_side, m_side, tol, accumulate, golden.unravel if golden.strides else None)
