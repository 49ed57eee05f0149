"""ActivationOperation and ElewiseOperation against formulas written here (numpy, math, autograd)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.opcheck import reference

from .atb_support import FLOATS, SEEDS, assert_close, assert_fails, np64, randint, randn, wide

ACT = "ActivationOperation"
ELE = "ElewiseOperation"
SHAPES = st.tuples(st.integers(1, 4), st.integers(1, 3), st.sampled_from([2, 8, 16]))


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


@given(seed=SEEDS, shape=SHAPES, dtype=FLOATS, mode=st.sampled_from([0, 1]))
def test_gelu_both_modes(seed, shape, dtype, mode):
    x = randn(seed, shape, dtype, scale=3.0)
    a = np64(x)
    if mode == 1:
        expected = np.vectorize(lambda v: v * (1 + math.erf(v / math.sqrt(2))) / 2)(a)
    else:
        expected = np.vectorize(
            lambda v: v / 2 * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
        )(a)
    (out,) = wide(ACT, [x], {"activationType": 2, "geluMode": mode})
    assert_close(out, expected)
    assert reference(ACT, [x], {"activationType": 2})[0].dtype == dtype


@given(seed=SEEDS, shape=SHAPES, dtype=FLOATS, scale=st.floats(0.1, 3.0))
def test_relu_fast_gelu_swish_log_sigmoid(seed, shape, dtype, scale):
    x = randn(seed, shape, dtype, scale=2.0)
    a = np64(x)
    fast = a * np.exp(0.851 * (a - np.abs(a))) / (1 + np.exp(-1.702 * np.abs(a)))
    cases = {
        1: np.maximum(a, 0),
        3: fast,
        4: a / (1 + np.exp(-scale * a)),
        8: _sigmoid(a),
        9: fast,
    }
    for kind, expected in cases.items():
        (out,) = wide(ACT, [x], {"activationType": kind, "scale": scale})
        assert_close(out, expected)
        assert reference(ACT, [x], {"activationType": kind, "scale": scale})[0].dtype == dtype
    positive = x.abs() + 0.5
    assert_close(wide(ACT, [positive], {"activationType": 5})[0], np.log(np64(positive)))


@given(seed=SEEDS, shape=SHAPES, dtype=FLOATS, dim=st.sampled_from([-1, 0, 2]))
def test_swiglu_forward_splits_along_dim(seed, shape, dtype, dim):
    shape = list(shape)
    shape[dim] *= 2
    x = randn(seed, shape, dtype)
    a, b = np.split(np64(x), 2, axis=dim)
    (out,) = wide(ACT, [x], {"activationType": 6, "dim": dim})
    assert_close(out, a * _sigmoid(a) * b)
    assert reference(ACT, [x], {"activationType": 6, "dim": dim})[0].dtype == dtype


@given(seed=SEEDS, shape=SHAPES, dtype=FLOATS)
def test_swiglu_backward_is_the_gradient_of_the_forward(seed, shape, dtype):
    x = randn(seed, (*shape[:-1], 2 * shape[-1]), dtype)
    dy = randn(seed + 1, shape, dtype)
    leaf = x.to(torch.float64).requires_grad_()
    gate, up = leaf.chunk(2, -1)
    (torch.nn.functional.silu(gate) * up * dy.to(torch.float64)).sum().backward()
    (out,) = wide(ACT, [dy, x], {"activationType": 7})
    assert_close(out, leaf.grad.numpy())
    assert reference(ACT, [dy, x], {"activationType": 7})[0].dtype == dtype


def test_activation_errors():
    x = torch.randn(2, 4)
    assert_fails(ACT, [x], {}, "activationType")
    assert_fails(ACT, [x], {"activationType": 11}, "activationType=11")
    assert_fails(ACT, [x], {"activationType": 0}, "activationType=0")
    assert_fails(ACT, [x], {"activationType": 2, "geluMode": 3}, "geluMode=3")
    assert_fails(ACT, [torch.randn(2, 3)], {"activationType": 6}, "even size")
    assert_fails(ACT, [x], {"activationType": 6, "dim": 4}, "dim=4")
    assert_fails(ACT, [x], {"activationType": 7}, "expected 2 inputs")
    assert_fails(ACT, [torch.randn(2, 3), x], {"activationType": 7}, "dy has shape")
    assert_fails(ACT, [x], {"activationType": "relu"}, "integer")


# ---------------------------------------------------------------- Elewise

UNARY = {3: np.cos, 4: np.sin, 5: np.negative, 20: np.tanh}
BINARY = {8: np.add, 9: np.multiply, 10: np.divide, 15: np.subtract}
COMPARE = {13: np.less, 14: np.greater, 16: np.equal}


@given(seed=SEEDS, shape=SHAPES, dtype=FLOATS, factor=st.floats(-4, 4))
def test_elewise_unary_and_muls(seed, shape, dtype, factor):
    x = randn(seed, shape, dtype)
    for kind, formula in UNARY.items():
        assert_close(wide(ELE, [x], {"elewiseType": kind})[0], formula(np64(x)))
        assert reference(ELE, [x], {"elewiseType": kind})[0].dtype == dtype
    for params in (
        {"elewiseType": 2, "mulsParam": {"varAttr": factor}},
        {"elewiseType": 2, "varAttr": factor},
    ):
        assert_close(wide(ELE, [x], params)[0], np64(x) * factor)


@given(seed=SEEDS, shape=SHAPES, dtype=FLOATS, broadcast_first=st.booleans())
def test_elewise_binary_broadcast(seed, shape, dtype, broadcast_first):
    x = randn(seed, shape, dtype)
    y = randn(seed + 1, shape[-1:], dtype, shift=3.0)
    a, b = (y, x) if broadcast_first else (x, y)
    for kind, formula in BINARY.items():
        (out,) = wide(ELE, [a, b], {"elewiseType": kind})
        assert_close(out, formula(np64(a), np64(b)))
        assert reference(ELE, [a, b], {"elewiseType": kind})[0].shape == torch.Size(shape)
    b_equal = torch.where(randint(seed, b.shape, 0, 2) == 1, b, b + 1)
    for kind, formula in COMPARE.items():
        out = reference(ELE, [a, b_equal], {"elewiseType": kind})[0]
        assert out.dtype == torch.int8
        np.testing.assert_array_equal(out.numpy(), formula(np64(a), np64(b_equal)).astype(np.int8))


@given(seed=SEEDS, shape=SHAPES)
def test_elewise_logical_ops_on_int8(seed, shape):
    a, b = randint(seed, shape, -2, 3, torch.int8), randint(seed + 1, shape, -2, 3, torch.int8)
    na, nb = a.numpy() != 0, b.numpy() != 0
    for kind, expected in ((7, ~na), (11, na & nb), (12, na | nb)):
        inputs = [a] if kind == 7 else [a, b]
        out = reference(ELE, inputs, {"elewiseType": kind})[0]
        assert out.dtype == torch.int8
        np.testing.assert_array_equal(out.numpy(), expected.astype(np.int8))


def test_elewise_integer_arithmetic_stays_integer():
    a = torch.tensor([7, -7, 9], dtype=torch.int32)
    b = torch.tensor([2, 2, 3], dtype=torch.int32)
    assert reference(ELE, [a, b], {"elewiseType": 8})[0].tolist() == [9, -5, 12]
    out = reference(ELE, [a, b], {"elewiseType": 10})[0]
    assert out.dtype == torch.int32 and out.tolist() == [3, -3, 3]


@pytest.mark.parametrize(
    ("source", "code", "target"),
    [
        (torch.float16, 0, torch.float32),
        (torch.float32, 1, torch.float16),
        (torch.float32, 27, torch.bfloat16),
        (torch.float16, 3, torch.int32),
        (torch.float32, 9, torch.int64),
        (torch.float32, -1, torch.float16),
        (torch.float16, -1, torch.float32),
        (torch.int32, -1, torch.float32),
    ],
)
def test_elewise_cast_by_out_tensor_type(source, code, target):
    x = torch.tensor([1.75, -2.5, 3.0]).to(source)
    for key in ("outTensorType", "OutTensorType"):
        (out,) = reference(ELE, [x], {"elewiseType": 1, key: code})
        assert out.dtype == target
        expected = x.to(torch.float64).trunc() if not target.is_floating_point else x.to(torch.float64)
        assert out.to(torch.float64).tolist() == expected.to(target).to(torch.float64).tolist()


@given(seed=SEEDS, shape=SHAPES, dtype=FLOATS, scale=st.floats(0.05, 20), offset=st.integers(-20, 20))
def test_elewise_quant_scales_offsets_rounds_and_saturates(seed, shape, dtype, scale, offset):
    x = randn(seed, shape, dtype, scale=40.0)
    params = {"elewiseType": 6, "quantParam": {"inputScale": scale, "inputOffset": offset}}
    out = reference(ELE, [x], params)[0]
    assert out.dtype == torch.int8
    expected = np.clip(np.rint(np64(x) * scale + offset), -128, 127)
    np.testing.assert_array_equal(out.numpy(), expected)


@given(seed=SEEDS, shape=SHAPES, with_offset=st.booleans())
def test_elewise_quant_per_channel(seed, shape, with_offset):
    x = randn(seed, shape, torch.float16, scale=30.0)
    scale = (randn(seed + 1, shape[-1:], torch.float16).abs() + 0.1).to(torch.float16)
    offset = (
        randint(seed, shape[-1:], -10, 10, torch.int8) if with_offset else torch.tensor([], dtype=torch.int8)
    )
    out = reference(ELE, [x, scale, offset], {"elewiseType": 17})[0]
    assert out.dtype == torch.int8
    q = np.rint(np64(x) / np64(scale)) + (offset.numpy() if with_offset else 0)
    np.testing.assert_array_equal(out.numpy(), np.clip(q, -128, 127))


@given(seed=SEEDS, shape=SHAPES, with_offset=st.booleans())
def test_elewise_dequant_per_channel_subtracts_the_offset_first(seed, shape, with_offset):
    y = randint(seed, shape, -128, 128, torch.int8)
    scale = randn(seed + 1, shape[-1:], torch.float16, scale=300.0)
    offset = (
        randint(seed, shape[-1:], -10, 10, torch.int8) if with_offset else torch.tensor([], dtype=torch.int8)
    )
    (out,) = wide(ELE, [y, scale, offset], {"elewiseType": 18})
    shifted = y.numpy().astype(np.float64) - (offset.numpy() if with_offset else 0)
    assert_close(out, np.clip(shifted * np64(scale), -65504, 65504))
    assert reference(ELE, [y, scale, offset], {"elewiseType": 18})[0].dtype == torch.float16


def _row_quant(row, asymmetric):
    if asymmetric:
        high, low = max(row), min(row)
        scale = (high - low) / 255
        offset = -(high + low) / (2 * scale) if scale else 0.0
        q = [min(127, max(-128, round(v / scale + offset))) if scale else 0 for v in row]
        return q, scale, offset
    peak = max(abs(v) for v in row)
    q = [min(127, max(-128, round(v * 127 / peak))) if peak else 0 for v in row]
    return q, peak / 127, None


@given(seed=SEEDS, shape=SHAPES, dtype=FLOATS, asymmetric=st.booleans())
def test_elewise_dynamic_quant_per_row(seed, shape, dtype, asymmetric):
    x = randn(seed, shape, dtype, scale=5.0)
    params = {"elewiseType": 19, "quantParam": {"asymmetric": asymmetric}}
    outputs = reference(ELE, [x], params)
    assert [t.dtype for t in outputs] == [torch.int8, torch.float32] + [torch.float32] * asymmetric
    wide_outputs = wide(ELE, [x], params)
    rows = np64(x).reshape(-1, shape[-1])
    for index, row in enumerate(rows):
        q, scale, offset = _row_quant(list(row), asymmetric)
        assert outputs[0].reshape(-1, shape[-1])[index].tolist() == q
        assert math.isclose(wide_outputs[1].reshape(-1)[index].item(), scale, rel_tol=1e-12)
        if asymmetric:
            assert math.isclose(
                wide_outputs[2].reshape(-1)[index].item(), offset, rel_tol=1e-12, abs_tol=1e-12
            )


def test_dynamic_quant_of_a_zero_row_is_zero():
    q, scale = reference(ELE, [torch.zeros(2, 4)], {"elewiseType": 19})
    assert q.abs().sum() == 0 and scale.abs().sum() == 0


def test_elewise_errors():
    x = torch.randn(2, 4)
    assert_fails(ELE, [x], {}, "elewiseType")
    assert_fails(ELE, [x], {"elewiseType": 0}, "elewiseType=0")
    assert_fails(ELE, [x], {"elewiseType": 21}, "elewiseType=21", "expected one of")
    assert_fails(ELE, [x], {"elewiseType": 8}, "expected 2 inputs")
    assert_fails(ELE, [x, x], {"elewiseType": 3}, "expected 1 inputs")
    assert_fails(ELE, [x, torch.randn(3)], {"elewiseType": 8}, "cannot be broadcast")
    assert_fails(ELE, [x], {"elewiseType": 1, "outTensorType": 2}, "outTensorType=2")
    assert_fails(ELE, [x], {"elewiseType": 1, "outTensorType": 99}, "outTensorType=99")
    assert_fails(ELE, [torch.randn(4)], {"elewiseType": 19}, "at least 2 dimensions")
    assert_fails(ELE, [x], {"elewiseType": 2, "mulsParam": 3}, "mulsParam must be an object")
    assert_fails(ELE, [x], {"elewiseType": 6, "quantParam": {"inputScale": "a"}}, "quantParam.inputScale")
    assert_fails(ELE, [x], {"elewiseType": 19, "quantParam": {"asymmetric": 2}}, "quantParam.asymmetric")
