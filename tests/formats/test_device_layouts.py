"""FRACTAL_NZ and NC1HWC0 conversions, checked element by element against the layout definitions."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmprec.formats import nc1hwc0_to_nchw, nchw_to_nc1hwc0, nd_to_nz, nz_to_nd


def test_nd_to_nz_places_every_element_by_the_definition():
    matrix = torch.arange(1, 5 * 20 + 1, dtype=torch.float16).reshape(5, 20)
    storage = nd_to_nz(matrix)
    assert storage.shape == (2, 1, 16, 16)  # [c1, rows / 16, 16, c0]
    for i in range(16):
        for j in range(32):
            expected = matrix[i, j].item() if i < 5 and j < 20 else 0.0
            assert storage[j // 16, i // 16, i % 16, j % 16].item() == expected


def test_int8_blocks_are_32_wide():
    storage = nd_to_nz(torch.ones(3, 40, dtype=torch.int8))
    assert storage.shape == (2, 1, 16, 32)


def test_batched_nz_keeps_leading_dims():
    tensor = torch.randn(2, 3, 17, 5)
    storage = nd_to_nz(tensor)
    assert storage.shape == (2, 3, 1, 2, 16, 16)
    assert torch.equal(storage[1, 2, 0, 1, 0, :5], tensor[1, 2, 16])


def test_nz_to_nd_accepts_the_atb_storage_spelling():
    matrix = torch.randn(33, 20)
    ge_style = nd_to_nz(matrix)  # [2, 3, 16, 16]
    atb_style = ge_style.reshape(1, 2, 48, 16)  # [b, c1, rows, c0]
    assert torch.equal(nz_to_nd(atb_style, (33, 20)), matrix)


def test_vector_is_one_row():
    vector = torch.arange(20.0)
    assert torch.equal(nz_to_nd(nd_to_nz(vector), (20,)), vector)


@settings(max_examples=60, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2),
    rows=st.integers(1, 40),
    cols=st.integers(1, 70),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.int8]),
)
def test_nz_round_trip(batch, rows, cols, dtype):
    tensor = (
        torch.arange(1, 1 + torch.Size([*batch, rows, cols]).numel()).reshape(*batch, rows, cols).to(dtype)
    )
    assert torch.equal(nz_to_nd(nd_to_nz(tensor), tensor.shape), tensor)


def test_nz_storage_too_small_for_the_original_shape():
    with pytest.raises(ValueError, match="cannot hold"):
        nz_to_nd(torch.zeros(2, 1, 16, 16), (17, 20))
    with pytest.raises(ValueError, match="cannot hold"):
        nz_to_nd(torch.zeros(2, 1, 16, 16), (5, 40))


def test_empty_original_shape():
    assert nz_to_nd(torch.zeros(0, 1, 16, 16), (0, 16)).shape == (0, 16)
    with pytest.raises(ValueError, match="not empty"):
        nz_to_nd(torch.zeros(1, 1, 16, 16), (0, 16))


def test_nchw_to_nc1hwc0_places_every_element_by_the_definition():
    tensor = torch.arange(1, 2 * 20 * 3 * 2 + 1, dtype=torch.float32).reshape(2, 20, 3, 2)
    storage = nchw_to_nc1hwc0(tensor)
    assert storage.shape == (2, 2, 3, 2, 16)
    for n in range(2):
        for c in range(32):
            for h in range(3):
                for w in range(2):
                    expected = tensor[n, c, h, w].item() if c < 20 else 0.0
                    assert storage[n, c // 16, h, w, c % 16].item() == expected


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 40), h=st.integers(1, 4), w=st.integers(1, 4))
def test_nc1hwc0_round_trip(n, c, h, w):
    tensor = torch.randn(n, c, h, w)
    assert torch.equal(nc1hwc0_to_nchw(nchw_to_nc1hwc0(tensor), (n, c, h, w)), tensor)


def test_nc1hwc0_shape_mismatch():
    with pytest.raises(ValueError, match="cannot hold"):
        nc1hwc0_to_nchw(torch.zeros(1, 1, 2, 2, 16), (1, 17, 2, 2))
    with pytest.raises(ValueError, match="5-D storage"):
        nc1hwc0_to_nchw(torch.zeros(1, 1, 2, 16), (1, 16, 2, 1))
