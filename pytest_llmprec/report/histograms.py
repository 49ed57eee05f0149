"""Histograms of element errors for the worst pairs of a report, read back from their tensor files.

Time is bounded twice: each pair contributes at most ``MAX_ELEMENTS`` elements (``BLOCKS`` evenly
spaced contiguous runs, so a memory-mapped file is only read where sampled), and pairs stop once
``seconds`` have been spent. Files ``formats.read_raw`` handles are read without torch; others
are loaded with ``formats.load_tensor``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .rows import ERROR, FAILED, split_member

HISTOGRAM_PAIRS = 6
MAX_ELEMENTS = 1 << 18
BLOCKS = 64
TIME_BUDGET_S = 1.0
BINS = 40

_NUMPY_TYPES = {
    "torch.float64": "<f8", "torch.float32": "<f4", "torch.float16": "<f2",
    "torch.int8": "i1", "torch.int16": "<i2", "torch.int32": "<i4", "torch.int64": "<i8",
    "torch.uint8": "u1", "torch.uint16": "<u2", "torch.uint32": "<u4", "torch.uint64": "<u8",
    "torch.bool": "u1", "torch.bfloat16": "<u2",
}  # fmt: skip
"""Raw dtypes as NumPy reads their bytes (bfloat16 as its 16 bits, widened in ``_gather``)."""


@dataclass(frozen=True)
class Histogram:
    """Counts of positive values in log10 bins: ``counts[i]`` in ``[10**edges[i], 10**edges[i+1])``;
    ``zeros`` counts exact zeros (no bin on a log scale)."""

    label: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    zeros: int


@dataclass(frozen=True)
class ErrorHistogram:
    """The element errors of one pair: absolute ``|my - golden|`` and relative ``|my - golden| / |golden|``
    (elements with ``golden == 0`` have no relative error), over ``sampled`` of ``elements``."""

    pair_key: str
    absolute: Histogram | None = None
    relative: Histogram | None = None
    elements: int = 0
    sampled: int = 0
    nonfinite: int = 0
    note: str = ""


def worst_rows(rows: Sequence[Mapping[str, Any]], count: int) -> list[Mapping[str, Any]]:
    """The ``count`` rows with tensor files on both sides whose comparison is worst: failing rows
    first, then by cosine similarity, then by relative euclidean distance (largest first)."""
    scored = [
        row
        for row in rows
        if isinstance(row.get("cosine_similarity"), float)
        and row.get("golden_data_path")
        and row.get("my_data_path")
    ]

    def badness(row: Mapping[str, Any]) -> tuple:
        cosine, red = row["cosine_similarity"], row.get("relative_euclidean_distance")
        red = red if isinstance(red, float) and not math.isnan(red) else 0.0
        return (row.get("verdict") not in (FAILED, ERROR), 2.0 if math.isnan(cosine) else cosine, -red)

    return sorted(scored, key=badness)[:count]


def error_histograms(
    rows: Sequence[Mapping[str, Any]], count: int = HISTOGRAM_PAIRS, seconds: float = TIME_BUDGET_S
) -> list[ErrorHistogram]:
    """Histograms for the worst ``count`` pairs; pairs past the time budget get a note instead."""
    started = time.perf_counter()
    histograms = []
    for row in worst_rows(rows, count):
        key = str(row.get("pair_key"))
        if time.perf_counter() - started > seconds:
            histograms.append(ErrorHistogram(key, note=f"skipped: the {seconds:g} s budget was spent"))
            continue
        histograms.append(pair_histogram(key, str(row["golden_data_path"]), str(row["my_data_path"])))
    return histograms


def pair_histogram(key: str, golden_path: str, my_path: str) -> ErrorHistogram:
    """The error histogram of one pair from its two files (``path`` or ``path[member]``)."""
    try:
        (golden, golden_bf16), (my, my_bf16) = _flat(golden_path), _flat(my_path)
    except Exception as exc:  # any reader error: the report says why and goes on
        return ErrorHistogram(key, note=f"cannot read the tensors: {exc}")
    if golden.size != my.size:
        return ErrorHistogram(key, elements=golden.size, note="element counts differ")
    picked = _sample(golden.size)
    g, m = _gather(golden, golden_bf16, picked), _gather(my, my_bf16, picked)
    finite = np.isfinite(g) & np.isfinite(m)
    g, m = g[finite], m[finite]
    difference = np.abs(m - g)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = difference[g != 0] / np.abs(g[g != 0])
    return ErrorHistogram(
        key,
        _histogram("|my - golden|", difference),
        _histogram("|my - golden| / |golden|", relative),
        elements=golden.size,
        sampled=int(finite.size),
        nonfinite=int(finite.size - np.count_nonzero(finite)),
    )


def _sample(size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` runs covering at most ``MAX_ELEMENTS`` elements, evenly spread."""
    if size <= MAX_ELEMENTS:
        return [(0, size)]
    run = MAX_ELEMENTS // BLOCKS
    step = size // BLOCKS
    return [(i * step, i * step + run) for i in range(BLOCKS)]


def _gather(values: np.ndarray, bfloat16: bool, runs: list[tuple[int, int]]) -> np.ndarray:
    """The sampled runs of ``values`` as float64; bfloat16 bits become the float32 values they
    are the upper halves of."""
    picked = np.concatenate([values[a:b] for a, b in runs])
    if bfloat16:
        picked = (picked.astype(np.uint32) << 16).view(np.float32)
    return picked.astype(np.float64)


def _histogram(label: str, values: np.ndarray) -> Histogram:
    positive = values[values > 0]
    zeros = int(values.size - positive.size)
    if positive.size == 0:
        return Histogram(label, (), (), zeros)
    logs = np.log10(positive)
    low, high = math.floor(float(logs.min())), math.ceil(float(logs.max()))
    high = max(high, low + 1)
    counts, edges = np.histogram(logs, bins=BINS, range=(low, high))
    return Histogram(label, tuple(float(e) for e in edges), tuple(int(c) for c in counts), zeros)


def _flat(text: str) -> tuple[np.ndarray, bool]:
    """The elements of a tensor file, flat, as a NumPy array (memory-mapped where possible), and
    whether they are bfloat16 bits."""
    from ..formats.raw import read_raw

    path, member = (text, None) if os.path.exists(text) else split_member(text)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    raw = read_raw(path, member)
    if raw is not None:
        return np.frombuffer(raw.data, dtype=_NUMPY_TYPES[raw.dtype]), raw.dtype == "torch.bfloat16"
    import torch

    from ..formats import load_tensor

    tensor = load_tensor(path, member=member)
    return tensor.detach().reshape(-1).to(torch.float64).numpy(), False
