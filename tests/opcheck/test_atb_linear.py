"""LinearOperation and LinearSparseOperation against numpy matmuls (int32 for the int8 paths)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.formats.device_layouts import nd_to_nz
from pytest_llmprec.opcheck import reference

from .atb_support import FLOATS, SEEDS, assert_close, assert_fails, np64, randint, randn, wide

LINEAR = "LinearOperation"
SPARSE = "LinearSparseOperation"
DIMS = st.sampled_from([1, 3, 16, 32])


def encoded_scale(values: np.ndarray) -> torch.Tensor:
    """float32 scales as ATB's int64 deqScale: the float32 bits in the low 32 bits."""
    return torch.from_numpy(values.astype(np.float32).view(np.uint32).astype(np.int64))


@given(
    seed=SEEDS,
    m=DIMS,
    k=DIMS,
    n=DIMS,
    dtype=FLOATS,
    ta=st.booleans(),
    tb=st.booleans(),
    bias=st.booleans(),
    batch=st.sampled_from([None, 2]),
)
def test_float_linear(seed, m, k, n, dtype, ta, tb, bias, batch):
    lead = () if batch is None else (batch,)
    x = randn(seed, (*lead, k, m) if ta else (*lead, m, k), dtype)
    w = randn(seed + 1, (*lead, n, k) if tb else (*lead, k, n), dtype)
    b = randn(seed + 2, (n,), dtype)
    a_np, w_np = np64(x), np64(w)
    a_np = np.swapaxes(a_np, -1, -2) if ta else a_np
    w_np = np.swapaxes(w_np, -1, -2) if tb else w_np
    expected = np.einsum("...mk,...kn->...mn", a_np, w_np) + (np64(b) if bias else 0)
    params = {"transposeA": ta, "transposeB": tb, "hasBias": bias}
    inputs = [x, w, b] if bias else [x, w]
    (out,) = wide(LINEAR, inputs, params)
    assert_close(out, expected, rtol=1e-9, atol=1e-9)
    assert reference(LINEAR, inputs, params)[0].dtype == dtype


def test_has_bias_follows_the_input_count_when_absent():
    x, w, b = torch.randn(2, 4), torch.randn(3, 4), torch.randn(3)
    assert_close(wide(LINEAR, [x, w, b])[0], x.double().numpy() @ w.double().numpy().T + b.double().numpy())
    assert_close(wide(LINEAR, [x, w])[0], x.double().numpy() @ w.double().numpy().T)


@given(seed=SEEDS, m=DIMS, k=st.sampled_from([16, 32]), n=st.sampled_from([16, 32]), dtype=FLOATS)
def test_nz_weight_is_folded(seed, m, k, n, dtype):
    x, w = randn(seed, (m, k), dtype), randn(seed + 1, (n, k), dtype)
    nz = nd_to_nz(w)  # [k/16, n/16, 16, 16]
    folded = nz.reshape(1, nz.shape[0], -1, nz.shape[-1])  # ATB's [1, k1, n, k0]
    assert_close(wide(LINEAR, [x, folded], {"hasBias": False})[0], np64(x) @ np64(w).T, rtol=1e-9, atol=1e-9)


@given(
    seed=SEEDS,
    m=DIMS,
    k=DIMS,
    n=DIMS,
    bias=st.booleans(),
    per_channel=st.booleans(),
    out=st.sampled_from([(-1, torch.float16), (1, torch.float16), (27, torch.bfloat16)]),
)
def test_int8_linear_with_deq_scale(seed, m, k, n, bias, per_channel, out):
    code, out_dtype = out
    x = randint(seed, (m, k), -128, 128, torch.int8)
    w = randint(seed + 1, (n, k), -128, 128, torch.int8)
    b = randint(seed + 2, (n,), -1000, 1000, torch.int32)
    scales = np.random.default_rng(seed).uniform(1e-4, 1e-2, n if per_channel else 1).astype(np.float32)
    inputs = [x, w, b, encoded_scale(scales)] if bias else [x, w, encoded_scale(scales)]
    params = {"outDataType": code, "hasBias": bias}
    acc = x.numpy().astype(np.int32) @ w.numpy().astype(np.int32).T + (b.numpy() if bias else 0)
    (result,) = wide(LINEAR, inputs, params)
    assert_close(result, acc.astype(np.float64) * scales.astype(np.float64), rtol=1e-12)
    assert reference(LINEAR, inputs, params)[0].dtype == out_dtype
    float_scale = torch.from_numpy(scales)
    assert_close(wide(LINEAR, [*inputs[:-1], float_scale], params)[0], result.numpy(), rtol=1e-12)


@given(seed=SEEDS, m=DIMS, k=DIMS, n=DIMS)
def test_int8_per_token_scale(seed, m, k, n):
    x = randint(seed, (m, k), -128, 128, torch.int8)
    w = randint(seed + 1, (n, k), -128, 128, torch.int8)
    scale = np.random.default_rng(seed).uniform(0.1, 1, n).astype(np.float32)
    token = torch.rand(m, generator=torch.Generator().manual_seed(seed))
    params = {"quantMode": 2, "hasBias": False, "outDataType": 1}
    (out,) = wide(LINEAR, [x, w, torch.from_numpy(scale), token], params)
    acc = x.numpy().astype(np.int32) @ w.numpy().astype(np.int32).T
    assert_close(out, acc * scale.astype(np.float64) * token.double().numpy()[:, None], rtol=1e-12)


@given(seed=SEEDS, m=DIMS, k=DIMS, n=DIMS)
def test_linear_sparse_with_a_dense_weight(seed, m, k, n):
    x = randint(seed, (m, k), -128, 128, torch.int8)
    w = randint(seed + 1, (n, k), -128, 128, torch.int8)
    b = randint(seed + 2, (n,), -100, 100, torch.int32)
    scale = np.full(n, 0.01, np.float32)
    inputs = [x, w, b, encoded_scale(scale), torch.zeros(8, dtype=torch.int8)]
    assert reference(SPARSE, inputs, {})[0].dtype == torch.float16
    acc = (x.numpy().astype(np.int32) @ w.numpy().astype(np.int32).T + b.numpy()) * scale.astype(np.float64)
    assert_close(wide(SPARSE, inputs)[0], acc, rtol=1e-12)


def test_linear_errors():
    x, w = torch.randn(2, 4), torch.randn(3, 4)
    assert_fails(LINEAR, [x, torch.randn(3, 5)], {}, "contraction sizes 4 and 5")
    assert_fails(LINEAR, [x, w, torch.randn(2)], {}, "bias of shape [2]")
    assert_fails(LINEAR, [x, w, torch.randn(3)], {"hasBias": False}, "expected 2 inputs")
    assert_fails(LINEAR, [x, w], {"hasBias": True}, "expected 3 inputs", "[x, weight, bias]")
    xi, wi = torch.ones(2, 4, dtype=torch.int8), torch.ones(3, 4, dtype=torch.int8)
    assert_fails(LINEAR, [xi, wi, torch.ones(2)], {"hasBias": False}, "deqScale has 2 values")
    assert_fails(LINEAR, [x, wi], {}, "both be floating or both be integer")
    assert_fails(LINEAR, [xi, wi, torch.ones(3)], {"outDataType": 0}, "outDataType=0")
    assert_fails(LINEAR, [x, w], {"matmulType": 1}, "matmulType=1")
    assert_fails(LINEAR, [torch.randn(4), w], {}, "at least 2 dimensions")
    assert_fails(LINEAR, [x, w], {"transposeB": "yes"}, "transposeB")
    assert_fails(
        SPARSE, [xi, torch.ones(3, 2, dtype=torch.int8), torch.ones(3), torch.ones(3)], {}, "compressed"
    )
