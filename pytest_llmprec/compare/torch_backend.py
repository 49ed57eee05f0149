"""One pass over two equally long torch tensors, reduced to the accumulators of every metric.

Two backends fill the same accumulators (``accumulators.FIELDS``): the C kernel (``native``)
for CPU tensors, which reads each element once with no temporaries and splits large tensors
over threads, and float64 torch operations on fixed-size chunks for other devices (CUDA
tensors stay on their device) or when the C kernel was not built.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..standards.thresholds import Tolerance
from . import native
from .accumulators import FIELDS, REL_EPS, SMALLEST_SUBNORMAL, UlpGrid, empty_accumulators, merge

TORCH_PIECE = {"cpu": 1 << 16}
DEVICE_PIECE = 1 << 22
"""Elements per piece for the torch backend: its float64 temporaries are bounded by this."""

COPY_PIECE = 1 << 20
"""Elements copied at once from a non-contiguous tensor."""


def accumulate(golden: torch.Tensor, my: torch.Tensor, tolerance: Tolerance) -> dict[str, float]:
    """Accumulators over all elements of ``golden`` and ``my`` in flattened order.

    Both must have the same element count and live on the same device.
    """
    ulp = UlpGrid.of(my.dtype)
    use_c = golden.device.type == "cpu" and native.available() and _c_kind(golden) and _c_kind(my)
    acc = empty_accumulators()
    limit = None if use_c else TORCH_PIECE.get(golden.device.type, DEVICE_PIECE)
    for g_piece, m_piece, offset in aligned_pieces(golden, my, limit):
        if use_c:
            piece = native.accumulate_buffers(_c_buffer(g_piece), _c_buffer(m_piece), offset, ulp, tolerance)
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
        yield tensor[start : start + rows].reshape(-1).contiguous()  # a 1-D view may keep a stride


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

_TABLES: dict[torch.dtype, bytes] = {}


def _c_kind(tensor: torch.Tensor) -> bool:
    return native.readable(tensor.dtype) or (tensor.element_size() == 1 and not tensor.is_complex())


def _c_buffer(tensor: torch.Tensor) -> native.Buffer:
    data = tensor.view(torch.uint8).numpy() if tensor.numel() else b""
    if native.readable(tensor.dtype):
        return native.Buffer(data, tensor.dtype)
    table = _TABLES.get(tensor.dtype)
    if table is None:
        table = torch.arange(256, dtype=torch.uint8).view(tensor.dtype).to(torch.float64).numpy().tobytes()
        _TABLES[tensor.dtype] = table
    return native.Buffer(data, tensor.dtype, table)


# --- torch backend -----------------------------------------------------------------------------


def ulp_errors(abs_error: torch.Tensor, golden: torch.Tensor, ulp: UlpGrid) -> torch.Tensor:
    """``abs_error`` in units of last place of the ``ulp`` grid at the (float64) golden values."""
    if ulp.bits < 0:
        return abs_error
    exponent = torch.frexp(golden).exponent - 1
    exponent = torch.where(golden == 0, ulp.emin, exponent).clamp_min(ulp.emin)
    scale = ulp.bits - exponent.to(torch.float64)  # up to 52 + 1022 for float64
    half = torch.floor(scale / 2)  # torch.ldexp multiplies by 2**scale, which overflows above 2**1023
    return torch.ldexp(torch.ldexp(abs_error, half), scale - half)


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
    quotient = ad / ag.clamp_min(SMALLEST_SUBNORMAL)  # 0 / 0 = 0, x / 0 = inf
    rel = torch.where(ag > REL_EPS, quotient, zero)
    ulps = ulp_errors(ad, gz, ulp)
    g_only, m_only = torch.where(g_fin, g, zero), torch.where(m_fin, m, zero)
    neg_inf, pos_inf = scalar(-math.inf), scalar(math.inf)
    g_top = torch.where(ok, g, neg_inf).max() if g.numel() else neg_inf
    m_top = torch.where(ok, m, neg_inf).max() if g.numel() else neg_inf
    g_weight = torch.where(ok, torch.exp(g - g_top), zero)
    masked_ad = torch.where(ok, ad, -1.0)
    worst = masked_ad.argmax() if g.numel() else torch.zeros((), dtype=torch.int64, device=g.device)
    within = ok & (quotient < 1e-3)
    within5 = ok & (quotient < 5e-3)
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
