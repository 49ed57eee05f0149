"""Shared fixtures of the format tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch


def _mapped_file(address: int) -> str | None:
    """The file whose memory mapping of this process contains ``address`` (Linux /proc), or None."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, stop = (int(part, 16) for part in fields[0].split("-"))
            if start <= address < stop:
                return fields[5].strip() if len(fields) == 6 else None
    return None


@pytest.fixture
def mapped_from() -> Callable[[torch.Tensor, Path], bool]:
    """``mapped_from(tensor, path)``: True when the tensor's data lie in a memory map of ``path``."""
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps (Linux)")

    def check(tensor: torch.Tensor, path: Path) -> bool:
        return _mapped_file(tensor.data_ptr()) == os.path.realpath(path)

    return check


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bytes (NaN-safe, works for float8 and unsigned types)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return (
        a.contiguous().reshape(-1).view(torch.uint8).tolist()
        == b.contiguous().reshape(-1).view(torch.uint8).tolist()
    )


@pytest.fixture
def same_bits() -> Callable[[torch.Tensor, torch.Tensor], bool]:
    return bits_equal


def sample(dtype: torch.dtype, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Deterministic values of ``dtype`` covering its range (extremes included for integers)."""
    generator = torch.Generator().manual_seed(seed)
    count = 1
    for d in shape:
        count *= d
    if dtype == torch.bool:
        return (torch.rand(count, generator=generator) > 0.5).reshape(shape)
    if dtype.is_complex:
        real = torch.randn(count, 2, generator=generator, dtype=torch.float64)
        return torch.view_as_complex(real).to(dtype).reshape(shape)
    if dtype.is_floating_point:
        values = torch.randn(count, generator=generator, dtype=torch.float64) * 4
        return values.to(dtype).reshape(shape)
    raw = torch.randint(0, 256, (count * dtype.itemsize,), generator=generator, dtype=torch.uint8)
    if count >= 2:  # the extremes: minimum then maximum, written as little-endian bytes
        size = dtype.itemsize
        raw[:size], raw[size : 2 * size] = 0x00, 0xFF
        if torch.iinfo(dtype).min < 0:
            raw[size - 1], raw[2 * size - 1] = 0x80, 0x7F
    return raw.view(dtype).reshape(shape)


@pytest.fixture
def make_sample() -> Callable[..., torch.Tensor]:
    return sample
