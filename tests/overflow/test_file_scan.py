"""The dump scan's one-pass check of float files: the C kernel's largest magnitude, and the findings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmprec import load_dump
from pytest_llmprec.compare import native
from pytest_llmprec.formats import save_atb_bin
from pytest_llmprec.overflow import scan, scan_record
from pytest_llmprec.overflow.dump_scan import _clean_raw
from pytest_llmprec.overflow.scanning import bound_pattern

pytestmark = pytest.mark.skipif(not native.available(), reason="the C kernel was not built")

FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}
SPECIALS = [math.nan, math.inf, -math.inf, "max", "-max", "near", 0.0]
CHUNK_ELEMENTS = 256 * 1024 // 4  # float32 elements in one read of the kernel


@pytest.fixture(params=native.instruction_sets() if native.available() else ())
def instruction_set(request):
    was = native.use_instruction_set(request.param)
    yield request.param
    native.use_instruction_set(was)


def planted(dtype: torch.dtype, size: int, specials: list, seed: int) -> torch.Tensor:
    """Random normal values of ``dtype`` with ``specials`` at seeded positions."""
    generator = torch.Generator().manual_seed(seed)
    tensor = torch.randn(size, generator=generator, dtype=torch.float64).to(dtype)
    high = torch.finfo(dtype).max
    positions = torch.randint(0, size, (len(specials),), generator=generator).tolist()
    for index, special in zip(positions, specials, strict=True):
        value = {"max": high, "-max": -high, "near": 0.75 * high}.get(special, special)
        tensor[index] = value
    return tensor


def largest_by_numpy(tensor: torch.Tensor) -> int:
    """The largest bit pattern with the sign bit cleared, computed by NumPy (the test's oracle)."""
    width = tensor.element_size()
    bits = tensor.view(torch.uint8).numpy().view(BITS[width])
    return int((bits & BITS[width]((1 << (8 * width - 1)) - 1)).max()) if bits.size else 0


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(FLOATS),
    size=st.sampled_from([0, 1, 7, 31, 1000, 65_537]),
    specials=st.lists(st.sampled_from(SPECIALS), max_size=3),
    offset=st.integers(0, 9),
    seed=st.integers(0, 2**16),
)
def test_the_largest_magnitude_of_a_buffer_is_numpys(instruction_set, dtype, size, specials, offset, seed):
    tensor = planted(dtype, max(size, 1), specials, seed)[:size]
    # elements from any byte offset, as in an ATB file whose text header has an odd length
    data = memoryview(b"h" * offset + tensor.view(torch.uint8).numpy().tobytes())[offset:]
    assert native._kernel.largest_magnitude(data, tensor.element_size()) == largest_by_numpy(tensor)


def test_the_kernel_says_what_is_wrong_with_its_buffer():
    with pytest.raises(ValueError, match="6 bytes of 3-byte elements"):
        native._kernel.largest_magnitude(bytes(6), 3)
    with pytest.raises(ValueError, match="whole elements"):
        native._kernel.largest_magnitude(bytes(6), 4)
    with pytest.raises(TypeError):
        native._kernel.largest_magnitude([1, 2], 2)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("near", [0.5, None])
def test_a_value_at_the_bound_is_not_clean_one_just_below_is(tmp_path, dtype, near):
    # the pattern comparison must agree with scan's: at the bound counts, one step below does not
    bound = torch.finfo(dtype).max * (near or 1.0)
    at = torch.tensor(bound, dtype=torch.float64).to(dtype)
    signed = {2: torch.int16, 4: torch.int32, 8: torch.int64}[at.element_size()]
    below = (at.view(signed) - 1).view(dtype)  # the next smaller magnitude of the dtype
    assert below < at
    for value, clean in ((at, False), (below, True), (-at, False), (-below, True)):
        tensor = torch.zeros(20_000, dtype=dtype)
        tensor[12_345] = value
        path = tmp_path / f"{value.item()}.bin"
        save_atb_bin(tensor, path)
        (record,) = load_dump(path).records
        assert (_clean_raw(record.load_raw(), near, True) is not None) == clean, (value.item(), near)
        assert repr(scan_record(record, near=near)) == repr(scan(tensor, near=near))
    assert bound_pattern(str(dtype), near) == largest_by_numpy(at.reshape(1))


def save(tensor: torch.Tensor, path, kind: str) -> None:
    if kind == "pth":
        torch.save(tensor, path)
    elif kind == "npy":
        np.save(path, tensor.numpy())
    else:
        save_atb_bin(tensor, path)


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(FLOATS),
    kind=st.sampled_from(["pth", "npy", "bin"]),
    specials=st.lists(st.sampled_from(SPECIALS), max_size=2),
    near=st.sampled_from([0.5, 0.9, None]),
    saturation=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_files_scanned_through_the_kernel_give_scans_finding(
    tmp_path_factory, dtype, kind, specials, near, saturation, seed
):
    if kind == "npy" and dtype == torch.bfloat16:
        kind = "bin"  # NumPy has no bfloat16
    tensor = planted(dtype, 3 * 4099, specials, seed).reshape(3, 4099)
    path = tmp_path_factory.mktemp("files") / f"x.{kind}"
    save(tensor, path, kind)
    (record,) = load_dump(path).records
    want = scan(tensor, near=near, saturation=saturation)
    clean = _clean_raw(record.load_raw(), near, saturation)
    assert (clean is not None) == (want.nan + want.pos_inf + want.neg_inf + want.saturated + want.near == 0)
    assert repr(scan_record(record, near=near, saturation=saturation)) == repr(want)
