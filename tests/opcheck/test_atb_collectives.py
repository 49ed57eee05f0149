"""AllGather, AllReduce, Broadcast and LinearParallel from every rank's inputs, in rank order."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.opcheck import reference

from .atb_support import FLOATS, SEEDS, assert_close, assert_fails, np64, randint, randn, wide

RANKS = st.integers(1, 4)


def _ranks(size, rank):
    return {"rank": rank, "rankRoot": 0, "rankSize": size}


@given(seed=SEEDS, dtype=FLOATS, size=RANKS, data=st.data())
def test_all_gather_stacks_the_ranks(seed, dtype, size, data):
    inputs = [randn(seed + r, (2, 3), dtype) for r in range(size)]
    (out,) = reference("AllGatherOperation", inputs, _ranks(size, data.draw(st.integers(0, size - 1))))
    assert out.shape == (size, 2, 3) and out.dtype == dtype
    for r in range(size):
        assert torch.equal(out[r], inputs[r])


@given(
    seed=SEEDS,
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.int32]),
    size=RANKS,
    kind=st.sampled_from(["sum", "prod", "max", "min"]),
)
def test_all_reduce(seed, dtype, size, kind):
    inputs = [randint(seed + r, (2, 3), -4, 5).to(dtype) for r in range(size)]
    expected = np64(inputs[0]).copy()
    for tensor in inputs[1:]:
        value = np64(tensor)
        expected = {
            "sum": expected + value,
            "prod": expected * value,
            "max": np.maximum(expected, value),
            "min": np.minimum(expected, value),
        }[kind]
    params = {"allReduceType": kind, **_ranks(size, 0)}
    (out,) = reference("AllReduceOperation", inputs, params)
    assert out.dtype == dtype
    assert_close(wide("AllReduceOperation", inputs, params)[0], expected)


@given(seed=SEEDS, size=RANKS, data=st.data())
def test_broadcast_returns_the_root_input(seed, size, data):
    inputs = [randn(seed + r, (3,), torch.float16) for r in range(size)]
    root = data.draw(st.integers(0, size - 1))
    (out,) = reference("BroadcastOperation", inputs, {"rankRoot": root, "rankSize": size})
    assert torch.equal(out, inputs[root])


@given(
    seed=SEEDS,
    dtype=FLOATS,
    size=st.integers(1, 3),
    kind=st.sampled_from([0, 1, 3]),
    residual=st.booleans(),
    data=st.data(),
)
def test_linear_parallel_reduce_types(seed, dtype, size, kind, residual, data):
    m, k, n = 2 * size, 4, 3
    rank = data.draw(st.integers(0, size - 1))
    per_rank = []
    for r in range(size):
        tensors = [randn(seed + 3 * r, (m, k), dtype), randn(seed + 3 * r + 1, (n, k), dtype)]
        rows = m // size if kind == 1 else m
        if residual:
            tensors.append(randn(seed + 3 * r + 2, (rows, n), dtype))
        per_rank.append(tensors)
    products = [np64(x) @ np64(w).T for x, w, *_ in per_rank]
    if kind == 3:
        expected = products[rank]
    else:
        expected = sum(products)
        if kind == 1:
            expected = expected[rank * (m // size) : (rank + 1) * (m // size)]
    if residual:
        expected = expected + np64(per_rank[rank][2])
    params = {"backend": "lcoc", "type": kind, "hasResidual": residual, **_ranks(size, rank)}
    flat = [t for tensors in per_rank for t in tensors]
    assert_close(wide("LinearParallelOperation", flat, params)[0], expected, rtol=1e-9, atol=1e-9)
    assert reference("LinearParallelOperation", flat, params)[0].dtype == dtype


@given(seed=SEEDS, size=st.integers(1, 3), keep=st.booleans(), data=st.data())
def test_linear_parallel_all_gather_then_linear(seed, size, keep, data):
    rank = data.draw(st.integers(0, size - 1))
    per_rank = [[randn(seed + 2 * r, (2, 4)), randn(seed + 2 * r + 1, (4, 3))] for r in range(size)]
    params = {
        "backend": "lcoc",
        "type": 2,
        "transWeight": False,
        "keepIntermediate": keep,
        **_ranks(size, rank),
    }
    outputs = wide("LinearParallelOperation", [t for pair in per_rank for t in pair], params)
    gathered = np.concatenate([np64(x) for x, _ in per_rank])
    assert_close(outputs[0], gathered @ np64(per_rank[rank][1]), rtol=1e-9, atol=1e-9)
    assert len(outputs) == (2 if keep else 1)
    if keep:
        assert_close(outputs[1], gathered)


@given(seed=SEEDS, size=st.integers(1, 3), per_channel=st.booleans())
def test_linear_parallel_int8_all_reduce(seed, size, per_channel):
    m, k, n = 3, 8, 4
    per_rank, expected = [], 0
    for r in range(size):
        x, w = (
            randint(seed + r, (m, k), -128, 128, torch.int8),
            randint(seed + 7 * r, (n, k), -128, 128, torch.int8),
        )
        bias = randint(seed + 11 * r, (n,), -50, 50, torch.int32)
        scale = np.random.default_rng(seed + r).uniform(0.01, 0.1, n if per_channel else 1).astype(np.float32)
        encoded = torch.from_numpy(scale.view(np.uint32).astype(np.int64))
        per_rank += [x, w, bias, encoded]
        expected = expected + (
            x.numpy().astype(np.int32) @ w.numpy().astype(np.int32).T + bias.numpy()
        ) * scale.astype(np.float64)
    params = {
        "backend": "lcoc",
        "type": 0,
        "quantType": int(per_channel),
        "outDataType": 27,
        **_ranks(size, 0),
    }
    assert_close(wide("LinearParallelOperation", per_rank, params)[0], expected, rtol=1e-12)
    assert reference("LinearParallelOperation", per_rank, params)[0].dtype == torch.bfloat16


def test_collective_errors():
    x = torch.zeros(2, 3)
    assert_fails("AllGatherOperation", [x, x], {"rank": 0, "rankRoot": 0}, "rankSize")
    assert_fails("AllGatherOperation", [x, x], _ranks(3, 0), "1 inputs for each of 3 ranks")
    assert_fails("AllGatherOperation", [x, torch.zeros(3)], _ranks(2, 0), "different shapes")
    assert_fails("AllGatherOperation", [x, x], _ranks(2, 2), "0 <= rank < rankSize")
    assert_fails(
        "AllReduceOperation", [x, x], {"allReduceType": "mean", **_ranks(2, 0)}, "allReduceType='mean'"
    )
    assert_fails(
        "AllReduceOperation", [x, x], {"allReduceType": "sum", "quantType": 1, **_ranks(2, 0)}, "quantType=1"
    )
    assert_fails("BroadcastOperation", [x, x], {"rankRoot": 2}, "rankRoot=2")
    params = {"backend": "lcoc", **_ranks(2, 0)}
    assert_fails("LinearParallelOperation", [x, x, x], params, "2 inputs for each of 2 ranks")
    assert_fails("LinearParallelOperation", [x, x, x, x], {**params, "type": 5}, "type=5")
    assert_fails("LinearParallelOperation", [x, x, x, x], {**params, "quantType": 2}, "quantType=2")
    assert_fails(
        "LinearParallelOperation",
        [x, torch.zeros(4, 3, dtype=torch.int8)] * 2,
        {**params, "quantType": -1},
        "weight-only int8",
    )
    assert_fails("LinearParallelOperation", [x, x], {"rank": 0, "rankRoot": 0, "rankSize": 1}, "backend")
