"""One pass over two equally long tensors, reduced to the accumulators of every metric.

Two backends fill the same accumulators (named by ``FIELDS``): the C kernel for CPU tensors,
which reads each element once with no temporaries and splits large tensors over threads,
and float64 torch operations on fixed-size chunks for other devices (CUDA tensors stay on
their device) or when the C kernel was not built. Accumulators of consecutive pieces merge
exactly as if the pieces had been one tensor (``merge``), with an online log-sum-exp for KL.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .thresholds import Tolerance

try:
    from . import _kernel
except ImportError:  # the optional extension was not built
    _kernel = None

FIELDS = (
    "count", "both_finite", "g_nan", "g_inf", "m_nan", "m_inf", "nonfinite_mismatch",
    "g_finite", "g_sum", "g_max", "g_min", "m_finite", "m_sum", "m_max", "m_min",
    "sum_gg", "sum_mm", "sum_gm", "sum_dd", "sum_ad", "max_ad", "worst_index", "worst_golden", "worst_my",
    "sum_rel", "max_rel", "within_0_001", "within_0_005", "within_tolerance", "max_ulp",
    "kl_g_max", "kl_g_sum", "kl_g_dot", "kl_m_max", "kl_m_sum",
)  # fmt: skip

if _kernel is not None and tuple(_kernel.FIELDS) != FIELDS:  # pragma: no cover - build mismatch
    raise ImportError("pytest_llmprec._kernel is out of date; rebuild the package")

REL_EPS = 2.0**-23
"""Golden magnitudes at or below this are left out of the relative errors (as msit does)."""

THREAD_SPLIT_MIN = 1 << 18
"""Elements per thread below which a CPU comparison is not split further."""

TORCH_PIECE = {"cpu": 1 << 16}
DEVICE_PIECE = 1 << 22
"""Elements per piece for the torch backend: its float64 temporaries are bounded by this."""

COPY_PIECE = 1 << 20
"""Elements copied at once from a non-contiguous tensor."""


@dataclass(frozen=True)
class UlpGrid:
    """Units of last place of a dtype: ``bits`` explicit mantissa bits, smallest normal exponent ``emin``.

    ``bits < 0`` marks integer and bool dtypes, whose unit is 1.
    """

    bits: int
    emin: int

    @classmethod
    def of(cls, dtype: torch.dtype) -> UlpGrid:
        if not dtype.is_floating_point:
            return cls(-1, 0)
        info = torch.finfo(dtype)
        return cls(round(-math.log2(info.eps)), round(math.log2(info.smallest_normal)))


def empty_accumulators() -> dict[str, float]:
    acc = dict.fromkeys(FIELDS, 0.0)
    acc.update(
        g_max=-math.inf, m_max=-math.inf, g_min=math.inf, m_min=math.inf,
        max_ad=-1.0, worst_index=-1.0, worst_golden=math.nan, worst_my=math.nan,
        kl_g_max=-math.inf, kl_m_max=-math.inf,
    )  # fmt: skip
    return acc


_SUMMED = (
    "count", "both_finite", "g_nan", "g_inf", "m_nan", "m_inf", "nonfinite_mismatch", "g_finite", "g_sum",
    "m_finite", "m_sum", "sum_gg", "sum_mm", "sum_gm", "sum_dd", "sum_ad", "sum_rel",
    "within_0_001", "within_0_005", "within_tolerance",
)  # fmt: skip


def _rescaled(total: float, top: float, new_top: float) -> float:
    return total * math.exp(top - new_top) if total else 0.0


def merge(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Accumulators of ``first`` followed by ``second`` (positions of ``second`` come later)."""
    out = {name: first[name] + second[name] for name in _SUMMED}
    for name in ("g_max", "m_max", "max_rel", "max_ulp"):
        out[name] = max(first[name], second[name])
    for name in ("g_min", "m_min"):
        out[name] = min(first[name], second[name])
    worst = second if second["max_ad"] > first["max_ad"] else first
    for name in ("max_ad", "worst_index", "worst_golden", "worst_my"):
        out[name] = worst[name]
    g_top = max(first["kl_g_max"], second["kl_g_max"])
    m_top = max(first["kl_m_max"], second["kl_m_max"])
    out["kl_g_max"], out["kl_m_max"] = g_top, m_top
    for name in ("kl_g_sum", "kl_g_dot"):
        out[name] = _rescaled(first[name], first["kl_g_max"], g_top) + _rescaled(
            second[name], second["kl_g_max"], g_top
        )
    out["kl_m_sum"] = _rescaled(first["kl_m_sum"], first["kl_m_max"], m_top) + _rescaled(
        second["kl_m_sum"], second["kl_m_max"], m_top
    )
    return out


def accumulate(golden: torch.Tensor, my: torch.Tensor, tolerance: Tolerance) -> dict[str, float]:
    """Accumulators over all elements of ``golden`` and ``my`` in flattened order.

    Both must have the same element count and live on the same device.
    """
    ulp = UlpGrid.of(my.dtype)
    use_c = golden.device.type == "cpu" and _kernel is not None and _c_kind(golden) and _c_kind(my)
    acc = empty_accumulators()
    limit = None if use_c else TORCH_PIECE.get(golden.device.type, DEVICE_PIECE)
    for g_piece, m_piece, offset in aligned_pieces(golden, my, limit):
        if use_c:
            piece = _accumulate_c(g_piece, m_piece, offset, ulp, tolerance)
        else:
            piece = _accumulate_torch(g_piece, m_piece, offset, ulp, tolerance)
        acc = merge(acc, piece)
    return acc


# --- flat pieces -------------------------------------------------------------------------------


def _flat_pieces(tensor: torch.Tensor, limit: int | None) -> Iterator[torch.Tensor]:
    """Contiguous 1-D pieces covering ``tensor`` in flattened order, copying at most ``limit`` at once."""
    if tensor.is_contiguous():
        flat = tensor.reshape(-1)
        step = limit or max(flat.numel(), 1)
        for start in range(0, flat.numel(), step):
            yield flat[start : start + step]
        return
    if tensor.dim() <= 1:
        step = limit or max(tensor.numel(), 1)
        for start in range(0, tensor.numel(), step):
            yield tensor[start : start + step].contiguous()
        return
    budget = limit or COPY_PIECE
    row = tensor[0].numel()
    rows = max(1, budget // max(row, 1))
    if row > budget:
        for index in range(tensor.shape[0]):
            yield from _flat_pieces(tensor[index], limit)
        return
    for start in range(0, tensor.shape[0], rows):
        yield tensor[start : start + rows].reshape(-1)


def aligned_pieces(
    golden: torch.Tensor, my: torch.Tensor, limit: int | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """Pairs of equally long pieces of both tensors with their flat offset."""
    g_iter, m_iter = _flat_pieces(golden, limit), _flat_pieces(my, limit)
    g_piece = m_piece = None
    offset = 0
    while True:
        if g_piece is None or g_piece.numel() == 0:
            g_piece = next(g_iter, None)
        if m_piece is None or m_piece.numel() == 0:
            m_piece = next(m_iter, None)
        if g_piece is None or m_piece is None:
            return
        length = min(g_piece.numel(), m_piece.numel())
        yield g_piece[:length], m_piece[:length], offset
        offset += length
        g_piece, m_piece = g_piece[length:], m_piece[length:]


# --- C backend ---------------------------------------------------------------------------------

_C_KINDS: dict[torch.dtype, str] = {
    torch.float64: "f64", torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16",
    torch.int16: "i16", torch.int32: "i32", torch.int64: "i64",
    torch.uint16: "u16", torch.uint32: "u32", torch.uint64: "u64",
}  # fmt: skip
_LUTS: dict[torch.dtype, bytes] = {}
_threads_wanted = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def set_threads(count: int) -> None:
    """Use at most ``count`` threads per comparison (default: torch's intra-op thread count)."""
    global _threads_wanted, _pool
    if count < 1:
        raise ValueError("at least one thread")
    with _pool_lock:
        if count != _threads_wanted and _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None
        _threads_wanted = count


def _c_kind(tensor: torch.Tensor) -> bool:
    return tensor.dtype in _C_KINDS or (tensor.element_size() == 1 and not tensor.is_complex())


def _c_args(tensor: torch.Tensor) -> tuple[object, int, bytes | None]:
    data = tensor.view(torch.uint8).numpy() if tensor.numel() else b""
    name = _C_KINDS.get(tensor.dtype)
    if name is not None:
        return data, getattr(_kernel, name), None
    lut = _LUTS.get(tensor.dtype)
    if lut is None:
        lut = torch.arange(256, dtype=torch.uint8).view(tensor.dtype).to(torch.float64).numpy().tobytes()
        _LUTS[tensor.dtype] = lut
    return data, _kernel.lut8, lut


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_threads_wanted, thread_name_prefix="llmprec-kernel")
        return _pool


def _accumulate_c(
    golden: torch.Tensor, my: torch.Tensor, offset: int, ulp: UlpGrid, tol: Tolerance
) -> dict[str, float]:
    settings = (ulp.bits, ulp.emin, tol.rtol, tol.atol, tol.small)

    def run(start: int, stop: int) -> dict[str, float]:
        g_data, g_kind, g_lut = _c_args(golden[start:stop])
        m_data, m_kind, m_lut = _c_args(my[start:stop])
        values = _kernel.accumulate(g_data, g_kind, g_lut, m_data, m_kind, m_lut, *settings, offset + start)
        return dict(zip(FIELDS, values, strict=True))

    n = golden.numel()
    parts = min(_threads_wanted, max(1, n // THREAD_SPLIT_MIN))
    if parts == 1:
        return run(0, n)
    bounds = [n * k // parts for k in range(parts + 1)]
    futures = [_threads().submit(run, a, b) for a, b in itertools.pairwise(bounds)]
    acc = futures[0].result()
    for future in futures[1:]:
        acc = merge(acc, future.result())
    return acc


# --- torch backend -----------------------------------------------------------------------------


def ulp_errors(abs_error: torch.Tensor, golden: torch.Tensor, ulp: UlpGrid) -> torch.Tensor:
    """``abs_error`` in units of last place of the ``ulp`` grid at the (float64) golden values."""
    if ulp.bits < 0:
        return abs_error
    exponent = torch.frexp(golden).exponent - 1
    exponent = torch.where(golden == 0, ulp.emin, exponent).clamp(ulp.emin, 1022)
    return torch.ldexp(abs_error, ulp.bits - exponent.to(torch.float64))


def _accumulate_torch(
    golden: torch.Tensor, my: torch.Tensor, offset: int, ulp: UlpGrid, tol: Tolerance
) -> dict[str, float]:
    """The same accumulators with float64 torch operations on the tensors' device."""
    g = golden.to(torch.float64)
    m = my.to(torch.float64)

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float64, device=g.device)

    zero = scalar(0.0)
    g_fin, m_fin = torch.isfinite(g), torch.isfinite(m)
    g_nan, m_nan = torch.isnan(g), torch.isnan(m)
    ok = g_fin & m_fin
    same_nonfinite = (g_nan & m_nan) | (g == m)
    mismatch = (g_fin != m_fin) | (~g_fin & ~m_fin & ~same_nonfinite)
    gz, mz = torch.where(ok, g, zero), torch.where(ok, m, zero)
    d = mz - gz
    ad, ag = d.abs(), gz.abs()
    counted = ag > REL_EPS
    rel = torch.where(counted, ad / torch.where(counted, ag, 1.0), zero)
    ulps = ulp_errors(ad, gz, ulp)
    g_only, m_only = torch.where(g_fin, g, zero), torch.where(m_fin, m, zero)
    neg_inf, pos_inf = scalar(-math.inf), scalar(math.inf)
    g_top = torch.where(ok, g, neg_inf).max() if g.numel() else neg_inf
    m_top = torch.where(ok, m, neg_inf).max() if g.numel() else neg_inf
    g_weight = torch.where(ok, torch.exp(g - g_top), zero)
    masked_ad = torch.where(ok, ad, -1.0)
    worst = masked_ad.argmax() if g.numel() else torch.zeros((), dtype=torch.int64, device=g.device)
    within = ok & ((ad < 1e-3 * ag) | (ad == 0))
    within5 = ok & ((ad < 5e-3 * ag) | (ad == 0))
    within_tol = ok & ((ag <= tol.small) | (ad <= tol.atol + tol.rtol * ag))

    def top(values: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor, largest: bool) -> torch.Tensor:
        if not values.numel():
            return fill
        picked = torch.where(mask, values, fill)
        return picked.max() if largest else picked.min()

    stats = torch.stack(
        [
            scalar(float(g.numel())),
            ok.sum(dtype=torch.float64),
            g_nan.sum(dtype=torch.float64),
            (~g_fin & ~g_nan).sum(dtype=torch.float64),
            m_nan.sum(dtype=torch.float64),
            (~m_fin & ~m_nan).sum(dtype=torch.float64),
            mismatch.sum(dtype=torch.float64),
            g_fin.sum(dtype=torch.float64),
            g_only.sum(),
            top(g, g_fin, neg_inf, True),
            top(g, g_fin, pos_inf, False),
            m_fin.sum(dtype=torch.float64),
            m_only.sum(),
            top(m, m_fin, neg_inf, True),
            top(m, m_fin, pos_inf, False),
            (gz * gz).sum(),
            (mz * mz).sum(),
            (gz * mz).sum(),
            (d * d).sum(),
            ad.sum(),
            masked_ad.max() if g.numel() else scalar(-1.0),
            worst.to(torch.float64) + offset,
            g[worst] if g.numel() else scalar(math.nan),
            m[worst] if g.numel() else scalar(math.nan),
            rel.sum(),
            rel.max() if g.numel() else zero,
            within.sum(dtype=torch.float64),
            within5.sum(dtype=torch.float64),
            within_tol.sum(dtype=torch.float64),
            ulps.max() if g.numel() else zero,
            g_top,
            g_weight.sum(),
            torch.where(ok, g_weight * (g - m), zero).sum(),
            m_top,
            torch.where(ok, torch.exp(m - m_top), zero).sum(),
        ]
    )
    acc = dict(zip(FIELDS, stats.tolist(), strict=True))
    if acc["max_ad"] < 0:  # no position finite on both sides
        acc.update(worst_index=-1.0, worst_golden=math.nan, worst_my=math.nan)
    return acc
