"""``scan``: counts against an independent float64 reference, every dtype, chunks, device-side scans."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.overflow import OverflowFinding, PendingScan, resolve_all, scan, scanning
from pytest_llmprec.testing.strategies import FLOAT_DTYPES, tensors

NEARS = st.sampled_from([None, 0.5, 0.3, 0.9, 1.0])


def reference(tensor: torch.Tensor, near: float | None, saturation: bool) -> dict:
    """The expected counts, from float64 NumPy arrays and torch.finfo (not from the scanner)."""
    dtype = tensor.dtype
    values = tensor
    if dtype.is_complex:
        values = torch.view_as_real(tensor)
        dtype = values.dtype
    flat = values.double().numpy().ravel()
    limit = float(torch.finfo(dtype).max)
    nan, pos, neg = np.isnan(flat), flat == np.inf, flat == -np.inf
    magnitude = np.abs(flat)
    saturated = magnitude == limit
    if near is None:
        close = np.zeros_like(nan)
    else:
        bound = torch.tensor(near * limit, dtype=torch.float64).to(dtype).double().item()
        close = np.isfinite(flat) & (magnitude >= bound)
    over = nan | pos | neg | (saturated & saturation)
    first = None
    positions = np.flatnonzero(over) if over.any() else np.flatnonzero(close)
    if positions.size:
        first = int(positions[0]) // (2 if tensor.dtype.is_complex else 1)
    return {
        "nan": int(nan.sum()),
        "pos_inf": int(pos.sum()),
        "neg_inf": int(neg.sum()),
        "saturated": int(saturated.sum()),
        "near": int((close & ~saturated).sum()),
        "first": first,
    }


def plant(draw, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with a few specials written at drawn positions: NaN, ±Inf, ±max, values near max."""
    flat = tensor.clone().reshape(-1)
    info = torch.finfo(tensor.dtype)
    specials = [math.nan, math.inf, -math.inf, info.max, -info.max, info.max / 2, -info.max * 0.75, 0.0]
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, flat.numel() - 1))
        flat[index] = draw(st.sampled_from(specials))
    return flat.reshape(tensor.shape)


def as_dict(finding: OverflowFinding, shape) -> dict:
    flat = None
    if finding.first_index is not None:
        flat = int(np.ravel_multi_index(finding.first_index, shape)) if shape else 0
    fields = ("nan", "pos_inf", "neg_inf", "saturated", "near")
    return {**{name: getattr(finding, name) for name in fields}, "first": flat}


@given(data=st.data(), dtype=st.sampled_from(FLOAT_DTYPES), near=NEARS, saturation=st.booleans())
def test_float_counts_match_a_float64_reference(data, dtype, near, saturation):
    shape = data.draw(st.sampled_from([(7,), (3, 5), (2, 3, 4)]))
    tensor = data.draw(tensors(dtype, shape, allow_nan=True, allow_infinity=True))
    tensor = plant(data.draw, tensor)
    finding = scan(tensor, near=near, saturation=saturation)
    assert as_dict(finding, shape) == reference(tensor, near, saturation)
    assert finding.count == tensor.numel()
    assert finding.overflowed == (
        finding.nan + finding.pos_inf + finding.neg_inf + (finding.saturated if saturation else 0)
    )
    if finding.first_index is not None:
        value = tensor[finding.first_index].double().item()
        assert (math.isnan(value) and math.isnan(finding.first_value)) or value == finding.first_value


@given(data=st.data(), near=NEARS)
def test_chunked_counts_equal_whole_counts(data, near, monkeypatch_chunk):
    tensor = plant(data.draw, data.draw(tensors(torch.float16, (5, 9), allow_nan=True, allow_infinity=True)))
    with monkeypatch_chunk(7):
        chunked = scan(tensor, near=near)
    assert as_dict(chunked, (5, 9)) == reference(tensor, near, True)


@pytest.fixture
def monkeypatch_chunk():
    class Chunk:
        def __init__(self, size):
            self.size = size

        def __enter__(self):
            self.saved = scanning.CHUNK, scanning.CPU_CHUNK
            scanning.CHUNK = scanning.CPU_CHUNK = self.size

        def __exit__(self, *exc):
            scanning.CHUNK, scanning.CPU_CHUNK = self.saved

    return Chunk


def test_pending_scans_read_back_together_equal_scan():
    rng = torch.Generator().manual_seed(0)
    tensors_ = [torch.randn(4, 5, generator=rng).half() for _ in range(3)]
    tensors_[1][2, 3] = math.inf
    tensors_[2][0, 0] = math.nan
    tensors_.append(torch.ones(0))
    tensors_.append(torch.tensor([True, False]))
    pending = [PendingScan(t) for t in tensors_]
    assert [repr(f) for f in resolve_all(pending)] == [repr(scan(t)) for t in tensors_]  # repr: NaN == NaN
    assert pending[1].resolve().pos_inf == 1


def test_cpu_fast_path_and_full_count_agree():
    tensor = torch.linspace(-30000, 30000, 101).half()  # below the near bound: the fast path decides
    assert scan(tensor) == scanning._resolve(scanning._plan(tensor, 0.5, True), [[0.0] * 15])
    tensor[50] = 40000
    finding = scan(tensor)
    assert (finding.near, finding.first_index, finding.first_value) == (1, (50,), 40000.0)


def test_bfloat16_saturation_and_its_switch():
    top = torch.finfo(torch.bfloat16).max
    tensor = torch.tensor([[1.0, top], [-top, 2.0]], dtype=torch.bfloat16)
    finding = scan(tensor)
    assert (finding.saturated, finding.overflowed, finding.first_index, finding.kind()) == (
        2,
        2,
        (0, 1),
        "saturated",
    )
    assert "2 saturated at ±3.38953e+38" in finding.describe()
    relaxed = scan(tensor, saturation=False)
    assert (relaxed.saturated, relaxed.near, relaxed.overflowed, relaxed.kind()) == (2, 0, 0, "")
    assert "not counted: saturation off" in relaxed.describe()


@pytest.mark.parametrize(
    ("dtype", "values", "saturated", "near"),
    [
        (torch.int8, [127, -128, 64, -64, 63, 0], 2, 2),
        (torch.int16, [32767, 5, -16384], 1, 1),
        (torch.int32, [2**31 - 1, -(2**31), 0], 2, 0),
        (torch.int64, [2**63 - 1, -(2**63), 2**62], 2, 1),
        (torch.uint8, [255, 0, 128, 127], 1, 1),  # 0 is an ordinary unsigned value
        (torch.uint16, [65535, 0, 40000], 1, 1),
        (torch.uint32, [2**32 - 1, 1], 1, 0),
    ],
)
def test_integers_saturate_at_their_limits(dtype, values, saturated, near):
    finding = scan(torch.tensor(values, dtype=dtype))
    assert (finding.nan, finding.inf, finding.saturated, finding.near) == (0, 0, saturated, near)
    assert finding.overflowed == saturated
    if saturated:
        assert f"saturated at the {str(dtype)[6:]} limits" in finding.describe()


def test_float8_dtypes_are_scanned_in_their_own_limits():
    e4m3 = torch.tensor([1.0, 448.0, -448.0, 300.0]).to(torch.float8_e4m3fn)
    finding = scan(e4m3)
    assert (finding.saturated, finding.near, finding.limit) == (2, 1, 448.0)
    e5m2 = torch.tensor([math.inf, 1.0]).to(torch.float8_e5m2)
    assert scan(e5m2).pos_inf == 1


def test_complex_values_count_both_parts_and_index_the_element():
    tensor = torch.tensor(
        [[1 + 1j, 2 + 0j], [complex(0, math.inf), complex(math.nan, 0)]], dtype=torch.complex64
    )
    finding = scan(tensor)
    assert (finding.count, finding.pos_inf, finding.nan, finding.first_index) == (8, 1, 1, (1, 0))
    assert "complex" in finding.note
    assert scan(tensor.conj()).neg_inf == 1  # the conjugate bit is honoured


def test_shapes_layouts_and_empty_tensors():
    base = torch.arange(12.0).reshape(3, 4).half()
    base[2, 1] = math.inf
    transposed = base.t()  # not contiguous
    assert scan(transposed).first_index == (1, 2)
    assert scan(torch.tensor(math.nan)).first_index == ()
    empty = scan(torch.empty(0, 5, dtype=torch.float16))
    assert (empty.count, empty.overflowed, empty.first_index) == (0, 0, None)
    assert "no overflow in 0 values" in empty.describe()
    flags = scan(torch.tensor([True, False]))
    assert (flags.overflowed, flags.note) == (0, "bool values cannot overflow")
    grad = torch.tensor([1.0, math.inf], requires_grad=True) * 2
    assert scan(grad).pos_inf == 1


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: torch.eye(3).to_sparse(), ValueError, "sparse"),
        (lambda: torch.empty(3, device="meta"), ValueError, "meta tensor"),
        (lambda: torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8), ValueError, "quantized"),
        (lambda: torch.ones(2, dtype=torch.uint64), ValueError, "uint64"),
        (lambda: [1.0, 2.0], TypeError, "expected a torch.Tensor"),
    ],
)
def test_what_cannot_be_scanned_says_why(make, error, message):
    with pytest.raises(error, match=message):
        scan(make())


@pytest.mark.parametrize("near", [0, -0.5, 1.5, "0.5", True])
def test_bad_near_fraction(near):
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        scan(torch.ones(2), near=near)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scans_stay_on_the_device_and_match_cpu():
    rng = torch.Generator().manual_seed(1)
    host = torch.randn(64, 257, generator=rng).half()
    host[3, 7], host[10, 0], host[20, 20] = math.inf, -65504.0, math.nan
    device = host.cuda()
    pending = PendingScan(device)
    assert pending.stats.device == device.device  # nothing was copied to the host yet
    assert repr(pending.resolve()) == repr(scan(host)) == repr(scan(device))


@given(
    data=st.data(),
    dtype=st.sampled_from([*FLOAT_DTYPES, torch.int8, torch.int32, torch.uint8, torch.int64]),
    near=NEARS,
)
def test_the_accelerator_counts_equal_the_cpu_counts(data, dtype, near):
    """The torch statistics that run on accelerators, run here on the CPU, against the NumPy ones."""
    if dtype.is_floating_point:
        tensor = plant(data.draw, data.draw(tensors(dtype, (4, 6), allow_nan=True, allow_infinity=True)))
    else:
        tensor = data.draw(tensors(dtype, (4, 6)))
    plan = scanning._plan(tensor, near, True)
    flat = plan.values.reshape(-1)
    device = scanning._device_chunk_stats(flat, plan, 10).tolist()
    cpu = scanning._cpu_chunk_stats(flat, plan, 10).tolist()
    assert repr(device) == repr(cpu)
