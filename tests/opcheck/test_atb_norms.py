"""LayerNormOperation and RmsNormOperation against per-row statistics computed here."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.opcheck import reference

from .atb_support import FLOATS, SEEDS, assert_close, assert_fails, np64, randn, wide

LN = "LayerNormOperation"
RMS = "RmsNormOperation"
ROWS = st.tuples(st.integers(1, 3), st.integers(1, 4))
HIDDEN = st.sampled_from([16, 32, 64])
EPS = st.sampled_from([1e-5, 1e-6, 0.1])


def _layer_norm_rows(x, gamma, beta, eps):
    out = np.empty_like(x)
    for index in np.ndindex(x.shape[:-1]):
        row = x[index]
        mean = sum(row) / len(row)
        var = sum((v - mean) ** 2 for v in row) / len(row)
        out[index] = [
            (v - mean) / math.sqrt(var + eps) * g + b for v, g, b in zip(row, gamma, beta, strict=True)
        ]
    return out


def _rms_rows(x, gamma, eps):
    out = np.empty_like(x)
    for index in np.ndindex(x.shape[:-1]):
        row = x[index]
        rms = math.sqrt(sum(v * v for v in row) / len(row) + eps)
        out[index] = [v / rms * g for v, g in zip(row, gamma, strict=True)]
    return out


def _quant(values, scale, offset):
    return np.clip(np.rint(values / scale + offset), -128, 127)


@given(
    seed=SEEDS,
    rows=ROWS,
    hidden=HIDDEN,
    dtype=FLOATS,
    eps=EPS,
    axis_form=st.sampled_from([None, "pos", "neg"]),
)
def test_layer_norm_norm(seed, rows, hidden, dtype, eps, axis_form):
    x = randn(seed, (*rows, hidden), dtype, scale=3.0, shift=1.0)
    gamma, beta = randn(seed + 1, (hidden,), dtype), randn(seed + 2, (hidden,), dtype)
    norm = {"epsilon": eps}
    if axis_form:
        norm["beginNormAxis"] = len(rows) if axis_form == "pos" else -1
    params = {"layerType": 1, "normParam": norm}
    (out,) = wide(LN, [x, gamma, beta], params)
    assert_close(out, _layer_norm_rows(np64(x), np64(gamma), np64(beta), eps), rtol=1e-9, atol=1e-9)
    assert reference(LN, [x, gamma, beta], params)[0].dtype == dtype


@given(seed=SEEDS, hidden=HIDDEN, dtype=FLOATS)
def test_layer_norm_over_two_axes(seed, hidden, dtype):
    x = randn(seed, (3, 2, hidden), dtype)
    gamma, beta = randn(seed + 1, (2, hidden), dtype), randn(seed + 2, (2, hidden), dtype)
    (out,) = wide(LN, [x, gamma, beta], {"layerType": 1, "normParam": {"beginNormAxis": 1}})
    flat = _layer_norm_rows(np64(x).reshape(3, -1), np64(gamma).reshape(-1), np64(beta).reshape(-1), 1e-5)
    assert_close(out, flat.reshape(3, 2, hidden), rtol=1e-9, atol=1e-9)


@given(
    seed=SEEDS,
    rows=ROWS,
    hidden=HIDDEN,
    dtype=FLOATS,
    zoom=st.floats(0.25, 2.0),
    layer=st.sampled_from([2, 3]),
)
def test_layer_norm_prenorm_and_postnorm(seed, rows, hidden, dtype, zoom, layer):
    x, residual = randn(seed, (*rows, hidden), dtype), randn(seed + 3, (*rows, hidden), dtype)
    gamma, beta = randn(seed + 1, (hidden,), dtype), randn(seed + 2, (hidden,), dtype)
    section = "preNormParam" if layer == 2 else "postNormParam"
    params = {"layerType": layer, section: {"zoomScaleValue": zoom}}
    total = np64(x) + zoom * np64(residual)
    outputs = wide(LN, [x, residual, gamma, beta], params)
    assert_close(outputs[0], _layer_norm_rows(total, np64(gamma), np64(beta), 1e-5), rtol=1e-9, atol=1e-9)
    if layer == 2:
        assert_close(outputs[1], total)
    assert [t.dtype for t in reference(LN, [x, residual, gamma, beta], params)] == [dtype] * (
        2 if layer == 2 else 1
    )


@given(seed=SEEDS, rows=ROWS, hidden=HIDDEN, scale=st.floats(0.01, 0.5), offset=st.integers(-5, 5))
def test_layer_norm_static_quant_norm_and_postnorm(seed, rows, hidden, scale, offset):
    x, residual = randn(seed, (*rows, hidden), torch.float16), randn(seed + 3, (*rows, hidden), torch.float16)
    gamma, beta = randn(seed + 1, (hidden,), torch.float16), randn(seed + 2, (hidden,), torch.float16)
    s, o = torch.tensor([scale], dtype=torch.float16), torch.tensor([offset], dtype=torch.int8)
    normed = _layer_norm_rows(np64(x), np64(gamma), np64(beta), 1e-5)
    (q,) = reference(LN, [x, gamma, beta, s, o], {"layerType": 1, "normParam": {"quantType": 2}})
    assert q.dtype == torch.int8
    np.testing.assert_array_equal(q.numpy(), _quant(normed, np64(s)[0], offset))
    post = reference(
        LN, [x, residual, gamma, beta, s, o], {"layerType": 3, "postNormParam": {"quantType": 2}}
    )
    assert [t.dtype for t in post] == [torch.float16, torch.int8]
    summed = _layer_norm_rows(np64(x) + np64(residual), np64(gamma), np64(beta), 1e-5)
    np.testing.assert_array_equal(post[1].numpy(), _quant(summed, np64(s)[0], offset))


@given(seed=SEEDS, rows=ROWS, hidden=HIDDEN, dtype=FLOATS, dynamic=st.sampled_from([1, 2]))
def test_layer_norm_dynamic_quant(seed, rows, hidden, dtype, dynamic):
    x = randn(seed, (*rows, hidden), dtype)
    gamma, beta = randn(seed + 1, (hidden,), dtype), randn(seed + 2, (hidden,), dtype)
    params = {"layerType": 1, "normParam": {"quantType": 2, "dynamicQuantType": dynamic}}
    outputs = reference(LN, [x, gamma, beta], params)
    assert [t.dtype for t in outputs] == [torch.int8, torch.float32] + [torch.float32] * (dynamic == 2)
    normed = _layer_norm_rows(np64(x), np64(gamma), np64(beta), 1e-5)
    if dynamic == 1:
        peak = np.abs(normed).max(-1, keepdims=True)
        np.testing.assert_array_equal(outputs[0].numpy(), np.clip(np.rint(normed * 127 / peak), -128, 127))
        assert_close(wide(LN, [x, gamma, beta], params)[1], peak[..., 0] / 127, rtol=1e-9)


@given(seed=SEEDS, rows=ROWS, hidden=HIDDEN, dtype=FLOATS, eps=EPS, gemma=st.booleans())
def test_rms_norm_llama_and_gemma(seed, rows, hidden, dtype, eps, gemma):
    x = randn(seed, (*rows, hidden), dtype, scale=2.0)
    gamma = randn(seed + 1, (hidden,), dtype)
    params = {"layerType": 1, "normParam": {"epsilon": eps, "modelType": int(gemma)}}
    (out,) = wide(RMS, [x, gamma], params)
    assert_close(out, _rms_rows(np64(x), np64(gamma) + gemma, eps), rtol=1e-9, atol=1e-9)
    assert reference(RMS, [x, gamma], params)[0].dtype == dtype


@given(seed=SEEDS, rows=ROWS, hidden=HIDDEN)
def test_rms_norm_float16_precision_mode_rounds_the_normalised_values(seed, rows, hidden):
    x, gamma = randn(seed, (*rows, hidden), torch.float16), randn(seed + 1, (hidden,), torch.float16)
    (out,) = wide(RMS, [x, gamma], {"layerType": 1, "normParam": {"precisionMode": 1}})
    normalised = _rms_rows(np64(x), np.ones(hidden), 1e-5).astype(np.float16).astype(np.float64)
    # the two formulations may round a value on a float16 tie boundary differently: one ulp apart
    assert_close(out, normalised * np64(gamma), rtol=2**-10, atol=0)
    (unit,) = wide(
        RMS, [x, torch.ones(hidden, dtype=torch.float16)], {"layerType": 1, "normParam": {"precisionMode": 1}}
    )
    assert torch.equal(unit, unit.to(torch.float16).to(torch.float64))  # on the float16 grid


@given(seed=SEEDS, rows=ROWS, hidden=HIDDEN, dtype=FLOATS)
def test_rms_norm_rstd_output(seed, rows, hidden, dtype):
    x, gamma = randn(seed, (*rows, hidden), dtype), randn(seed + 1, (hidden,), dtype)
    params = {"layerType": 1, "normParam": {"rstd": True}}
    out, rstd = wide(RMS, [x, gamma], params)
    a = np64(x)
    expected_rstd = 1 / np.sqrt((a * a).mean(-1, keepdims=True) + 1e-5)
    assert_close(rstd, expected_rstd, rtol=1e-12)
    assert_close(out, _rms_rows(a, np64(gamma), 1e-5), rtol=1e-9, atol=1e-9)
    assert [t.dtype for t in reference(RMS, [x, gamma], params)] == [dtype, torch.float32]
    assert rstd.shape == (*rows, 1)


@given(seed=SEEDS, rows=ROWS, hidden=HIDDEN, dtype=FLOATS, layer=st.sampled_from([2, 3]), bias=st.booleans())
def test_rms_norm_prenorm_postnorm_with_bias(seed, rows, hidden, dtype, layer, bias):
    x, residual = randn(seed, (*rows, hidden), dtype), randn(seed + 3, (*rows, hidden), dtype)
    gamma, b = randn(seed + 1, (hidden,), dtype), randn(seed + 2, (hidden,), dtype)
    section = "preNormParam" if layer == 2 else "postNormParam"
    params = {"layerType": layer, section: {"hasBias": bias}}
    inputs = [x, b, residual, gamma] if bias else [x, residual, gamma]
    total = np64(x) + np64(residual) + (np64(b) if bias else 0)
    outputs = wide(RMS, inputs, params)
    assert_close(outputs[0], _rms_rows(total, np64(gamma), 1e-5), rtol=1e-9, atol=1e-9)
    if layer == 2:
        assert_close(outputs[1], total)
    assert [t.dtype for t in reference(RMS, inputs, params)] == [dtype] * (2 if layer == 2 else 1)


@given(seed=SEEDS, rows=ROWS, hidden=HIDDEN, scale=st.floats(0.01, 0.5), offset=st.integers(-5, 5))
def test_rms_norm_static_quant_variants(seed, rows, hidden, scale, offset):
    h = torch.float16
    x, residual = randn(seed, (*rows, hidden), h), randn(seed + 3, (*rows, hidden), h)
    gamma, beta = randn(seed + 1, (hidden,), h), randn(seed + 2, (hidden,), h)
    s, o = torch.tensor([scale], dtype=h), torch.tensor([offset], dtype=torch.int8)
    sv = np64(s)[0]
    (q,) = reference(RMS, [x, gamma, beta, s, o], {"layerType": 1, "normParam": {"quantType": 2}})
    np.testing.assert_array_equal(
        q.numpy(), _quant(_rms_rows(np64(x), np64(gamma), 1e-5) + np64(beta), sv, offset)
    )
    total = np64(x) + np64(residual)
    pre = reference(RMS, [x, residual, gamma, beta, s, o], {"layerType": 2, "preNormParam": {"quantType": 2}})
    assert [t.dtype for t in pre] == [torch.int8, h]
    np.testing.assert_array_equal(
        pre[0].numpy(), _quant(_rms_rows(total, np64(gamma), 1e-5) + np64(beta), sv, offset)
    )
    post = reference(RMS, [x, residual, gamma, s, o], {"layerType": 3, "postNormParam": {"quantType": 2}})
    assert [t.dtype for t in post] == [torch.int8, h]
    np.testing.assert_array_equal(post[0].numpy(), _quant(_rms_rows(total, np64(gamma), 1e-5), sv, offset))


@given(seed=SEEDS, rows=ROWS, hidden=HIDDEN, with_beta=st.booleans())
def test_rms_norm_dynamic_quant(seed, rows, hidden, with_beta):
    x, gamma = randn(seed, (*rows, hidden), torch.float16), randn(seed + 1, (hidden,), torch.float16)
    beta = randn(seed + 2, (hidden,), torch.float16) if with_beta else torch.tensor([], dtype=torch.float16)
    params = {"layerType": 1, "normParam": {"quantType": 2, "dynamicQuantType": 1}}
    q, scale = reference(RMS, [x, gamma, beta], params)
    shifted = _rms_rows(np64(x), np64(gamma), 1e-5) + (np64(beta) if with_beta else 0)
    peak = np.abs(shifted).max(-1, keepdims=True)
    np.testing.assert_array_equal(q.numpy(), np.clip(np.rint(shifted * 127 / peak), -128, 127))
    assert scale.dtype == torch.float32 and scale.shape == rows


def test_norm_errors():
    x, g = torch.randn(2, 8), torch.randn(8)
    assert_fails(RMS, [x, g], {}, "layerType")
    assert_fails(RMS, [x, g], {"layerType": 4}, "layerType=4")
    assert_fails(RMS, [x, g], {"layerType": 1, "normParam": {"quantType": 1}}, "normParam.quantType=1")
    assert_fails(RMS, [x, torch.randn(7)], {"layerType": 1}, "gamma of shape [7]")
    assert_fails(RMS, [x, g, g], {"layerType": 1}, "expected 2 inputs", "[x, gamma]")
    assert_fails(
        RMS, [x, g, g], {"layerType": 2, "preNormParam": {"hasBias": True}}, "[x, bias, residual, gamma]"
    )
    assert_fails(RMS, [x, torch.randn(3, 8), g], {"layerType": 3}, "residual of shape [3, 8]")
    assert_fails(RMS, [x, g], {"layerType": 1, "normParam": {"modelType": 2}}, "normParam.modelType=2")
    assert_fails(RMS, [x, g], {"layerType": 1, "normParam": {"epsilon": "x"}}, "normParam.epsilon")
    zero = torch.tensor([0.0])
    assert_fails(
        RMS, [x, g, g, zero, zero], {"layerType": 1, "normParam": {"quantType": 2}}, "quant scale is 0"
    )
    assert_fails(LN, [x, g, g], {"layerType": 1, "normParam": {"beginNormAxis": 0.5}}, "beginNormAxis")
    assert_fails(LN, [x, g, g], {"layerType": 1, "normParam": {"beginNormAxis": 0 + 5}}, "beginNormAxis=5")
    assert_fails(
        LN, [x, x, g, g], {"layerType": 2, "preNormParam": {"quantType": 2}}, "preNormParam.quantType=2"
    )
    assert_fails(LN, [x, g, g], {"layerType": 1, "normParam": "fast"}, "normParam must be an object")
    assert_fails(
        LN,
        [x, g, g],
        {"layerType": 1, "normParam": {"quantType": 2, "dynamicQuantType": 3}},
        "dynamicQuantType=3",
    )
