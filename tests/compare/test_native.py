"""compare_raw (torch-free, on raw reads of dump files) gives exactly what compare_tensors gives."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from pytest_llmprec import compare_tensors
from pytest_llmprec.compare import native
from pytest_llmprec.formats import load_tensor, read_raw
from pytest_llmprec.formats.raw_tensor import RawTensor
from pytest_llmprec.standards import Tolerance
from pytest_llmprec.testing.strategies import tensors

RAW = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.uint8, torch.int16,
       torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64, torch.bool]  # fmt: skip

pytestmark = pytest.mark.skipif(not native.available(), reason="the C kernel was not built")


def raw_of(tensor: torch.Tensor) -> RawTensor:
    data = tensor.contiguous().reshape(-1).view(torch.uint8).numpy() if tensor.numel() else b""
    return RawTensor(memoryview(data), str(tensor.dtype), tuple(tensor.shape), path="<memory>")


def assert_same(got, want) -> None:
    for name, value in want.as_dict().items():
        other = got.as_dict()[name]
        if isinstance(value, float) and math.isnan(value):
            assert isinstance(other, float) and math.isnan(other), name
        else:
            assert other == value, f"{name}: raw {other!r}, torch {value!r}"


SHAPES = st.sampled_from([(), (0,), (1,), (5,), (3, 7), (2, 3, 4), (300_000,)])


@st.composite
def raw_pairs(draw):
    """Any two raw dtypes, shapes that match, differ only in shape, or differ in element count."""
    g_shape = draw(SHAPES)
    m_shape = draw(st.sampled_from([g_shape, tuple(reversed(g_shape))]) | SHAPES)
    golden = draw(tensors(st.sampled_from(RAW), g_shape, allow_nan=True, allow_infinity=True))
    my = draw(tensors(st.sampled_from(RAW), m_shape, allow_nan=True, allow_infinity=True))
    return golden, my


@given(raw_pairs(), st.sampled_from([None, Tolerance(1e-3), Tolerance(0.0, atol=0.5)]))
def test_raw_and_torch_comparisons_agree_field_for_field(pair, tolerance):
    golden, my = pair
    want = compare_tensors(golden, my, tolerance=tolerance)
    assert_same(native.compare_raw(raw_of(golden), raw_of(my), tolerance=tolerance), want)


@st.composite
def equal_count_pairs(draw):
    """Two raw dtypes of one shape (3000 elements span several kernel blocks); my is either
    golden converted or independent."""
    shape = draw(st.sampled_from([(0,), (5,), (3, 7), (3000,)]))
    golden = draw(tensors(st.sampled_from(RAW), shape, allow_nan=True, allow_infinity=True))
    my_dtype = draw(st.sampled_from(RAW))
    converted = st.just(golden.to(my_dtype))
    return golden, draw(converted | tensors(st.just(my_dtype), shape, allow_nan=True, allow_infinity=True))


@given(
    equal_count_pairs(), st.sampled_from(["abs", "rel", "ulp"]), st.sampled_from([0.0, 1e-3, 0.5, 2.0, 1e4])
)
def test_raw_counts_of_elements_over_a_bound_match_the_torch_counts(pair, kind, bound):
    from pytest_llmprec.compare.metrics import count_exceeding

    golden, my = pair
    assert native.count_exceeding_raw(raw_of(golden), raw_of(my), kind, bound) == count_exceeding(
        golden, my, kind, bound
    )


@given(equal_count_pairs(), st.sampled_from(["abs", "rel", "ulp"]))
def test_no_element_exceeds_the_largest_error_and_one_exceeds_just_below_it(pair, kind):
    from pytest_llmprec.compare.metrics import count_exceeding

    golden, my = pair
    field = {"abs": "max_absolute_error", "rel": "max_relative_error", "ulp": "max_ulp_error"}[kind]
    largest = compare_tensors(golden, my).as_dict()[field]
    assume(math.isfinite(largest) and largest > 0)
    below = math.nextafter(largest, 0.0)
    raw_g, raw_m = raw_of(golden), raw_of(my)
    assert native.count_exceeding_raw(raw_g, raw_m, kind, largest) == 0
    assert native.count_exceeding_raw(raw_g, raw_m, kind, below) >= 1
    assert native.count_exceeding_raw(raw_g, raw_m, kind, below) == count_exceeding(golden, my, kind, below)


def test_raw_counts_refuse_unknown_kinds_and_unequal_counts():
    one, two = raw_of(torch.ones(1)), raw_of(torch.ones(2))
    with pytest.raises(ValueError, match="unknown error kind 'cos'"):
        native.count_exceeding_raw(one, one, "cos", 0.0)
    with pytest.raises(ValueError, match="different element counts"):
        native.count_exceeding_raw(one, two, "abs", 0.0)


def test_raw_reads_of_files_compare_like_loaded_tensors(tmp_path):
    golden = torch.randn(64, 1000, generator=torch.Generator().manual_seed(0))
    for name, tensor in {"g": golden, "m": (golden * 1.001).to(torch.bfloat16)}.items():
        torch.save(tensor, tmp_path / f"{name}.pt")
    g, m = tmp_path / "g.pt", tmp_path / "m.pt"
    assert_same(native.compare_raw(read_raw(g), read_raw(m)), compare_tensors(load_tensor(g), load_tensor(m)))


def test_transposed_views_compare_raw_like_the_loaded_tensors(tmp_path):
    golden = torch.randn(8, 300, generator=torch.Generator().manual_seed(0))
    my = golden * 1.001
    my[5, 17] += 1.0  # the worst element, at a position the transposed bytes hold elsewhere
    for name, tensor in {"g": golden.t(), "m": my.to(torch.bfloat16).t()}.items():
        torch.save(tensor, tmp_path / f"{name}.pt")
    g, m = read_raw(tmp_path / "g.pt"), read_raw(tmp_path / "m.pt")
    assert g.same_order(m) and g.strides == (1, 300)
    result = native.compare_raw(g, m)
    assert result.worst_index == (17, 5)
    want = compare_tensors(load_tensor(tmp_path / "g.pt"), load_tensor(tmp_path / "m.pt")).as_dict()
    for name, value in result.as_dict().items():  # sums in another order: equal to rounding
        if isinstance(value, float):
            # The KL weights are exact to about 1e-10 of the divergence (see kl_block in _kernel.c).
            rel_tol = 1e-9 if name == "kl_divergence" else 1e-12
            assert math.isclose(value, want[name], rel_tol=rel_tol, abs_tol=1e-300), name
        else:
            assert value == want[name], name


def test_raw_reads_in_different_orders_are_compared_through_torch(tmp_path):
    from pytest_llmprec.compare.dispatch import compare_any, raw_comparable

    golden = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    torch.save(golden.t(), tmp_path / "g.pt")
    torch.save(golden.t().contiguous(), tmp_path / "m.pt")
    g, m = read_raw(tmp_path / "g.pt"), read_raw(tmp_path / "m.pt")
    assert not raw_comparable(g, m)
    with pytest.raises(ValueError, match="different orders"):
        native.compare_raw(g, m)
    assert compare_any(g, m).max_absolute_error == 0.0


def test_a_raw_read_converts_to_the_loaded_tensor(tmp_path):
    torch.save(torch.arange(6.0).reshape(2, 3), tmp_path / "a.pt")
    raw = read_raw(tmp_path / "a.pt")
    assert torch.equal(raw.to_torch(), torch.arange(6.0).reshape(2, 3))


INSTRUCTION_SETS = native.instruction_sets() if native.available() else ()


@pytest.fixture(params=INSTRUCTION_SETS)
def instruction_set(request):
    """Run a test with the kernel compiled for each instruction set this CPU runs."""
    was = native.use_instruction_set(request.param)
    yield request.param
    native.use_instruction_set(was)


def test_every_float16_is_widened_exactly(instruction_set):
    import numpy as np

    from pytest_llmprec.compare.accumulators import UlpGrid

    halves = np.arange(1 << 16, dtype=np.uint16)
    exact = halves.view(np.float16).astype(np.float64)  # NumPy's own conversion
    # Offsets 0 and 5 put the blocks' vector loops and their scalar tails on different halves.
    for skip in (0, 5):
        acc = native.accumulate_buffers(
            native.Buffer(halves[skip:], "torch.float16"), native.Buffer(exact[skip:], "torch.float64"),
            0, UlpGrid.of("torch.float64"), Tolerance(0.0),
        )  # fmt: skip
        assert acc["max_ad"] == 0.0  # every finite value identical
        assert acc["nonfinite_mismatch"] == 0.0  # NaN and Inf at the same positions
        assert (acc["g_nan"], acc["g_inf"]) == (int(np.isnan(exact[skip:]).sum()), 2)
        assert acc["g_sum"] == acc["m_sum"] and acc["sum_gg"] == acc["sum_mm"]


def test_the_best_instruction_set_is_used_and_unknown_ones_are_refused():
    assert native.use_instruction_set(INSTRUCTION_SETS[0]) == INSTRUCTION_SETS[0]
    assert INSTRUCTION_SETS[-1] == "baseline"
    with pytest.raises(ValueError, match="avx-9000 is not an instruction set this CPU runs"):
        native.use_instruction_set("avx-9000")
