"""Softmax, Reduce, Cumsum, Sort, Where, Fill, Onehot, Nonzero, IndexAdd and Gating against numpy
and explicit loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.opcheck import reference

from .atb_support import FLOATS, SEEDS, assert_close, assert_fails, np64, randint, randn, wide


@given(seed=SEEDS, dtype=FLOATS, axes=st.sampled_from([[0], [1], [2], [-1], [1, 2], [0, 1]]))
def test_softmax_over_one_or_several_axes(seed, dtype, axes):
    x = randn(seed, (2, 3, 4), dtype, scale=3.0)
    a = np64(x)
    shifted = np.exp(a - a.max(axis=tuple(axes), keepdims=True))
    (out,) = wide("SoftmaxOperation", [x], {"axes": axes})
    assert_close(out, shifted / shifted.sum(axis=tuple(axes), keepdims=True), rtol=1e-12)
    assert reference("SoftmaxOperation", [x], {"axes": axes})[0].dtype == dtype


@given(
    seed=SEEDS,
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.int32]),
    kind=st.sampled_from([1, 2, 3]),
    axes=st.sampled_from([[0], [2], [0, 1], [1, 2]]),
)
def test_reduce_removes_every_listed_axis(seed, dtype, kind, axes):
    x = randn(seed, (2, 3, 4), torch.float32, scale=10).to(dtype)
    a = x.to(torch.float64).numpy()
    expected = {1: np.max, 2: np.min, 3: np.sum}[kind](a, axis=tuple(axes))
    (out,) = reference("ReduceOperation", [x], {"reduceType": kind, "axis": axes})
    assert out.dtype == dtype
    assert_close(wide("ReduceOperation", [x], {"reduceType": kind, "axis": axes})[0], expected, rtol=1e-12)


@given(
    seed=SEEDS,
    dtype=st.sampled_from([torch.float32, torch.float16, torch.int32]),
    axis=st.integers(-2, 1),
    exclusive=st.booleans(),
    reverse=st.booleans(),
)
def test_cumsum(seed, dtype, axis, exclusive, reverse):
    x = randn(seed, (3, 4), torch.float32, scale=5).to(dtype)
    a = np.moveaxis(x.to(torch.float64).numpy(), axis, -1)
    expected = np.zeros_like(a)
    for index in np.ndindex(a.shape[:-1]):
        running = 0.0
        positions = range(a.shape[-1] - 1, -1, -1) if reverse else range(a.shape[-1])
        for i in positions:
            if exclusive:
                expected[(*index, i)] = running
                running += a[(*index, i)]
            else:
                running += a[(*index, i)]
                expected[(*index, i)] = running
    params = {"axes": [axis], "exclusive": exclusive, "reverse": reverse}
    assert_close(wide("CumsumOperation", [x], params)[0], np.moveaxis(expected, -1, axis), rtol=1e-12)
    assert reference("CumsumOperation", [x], params)[0].dtype == dtype


@given(seed=SEEDS, dtype=FLOATS, width=st.sampled_from([6, 40]), nan=st.booleans(), data=st.data())
def test_sort_keeps_the_k_largest_with_int32_indices(seed, dtype, width, nan, data):
    k = data.draw(st.integers(1, width))
    x = randint(seed, (3, width), -3, 4).to(dtype)  # ties on purpose
    if nan:
        x[1, 2] = float("nan")
    values, indices = reference("SortOperation", [x], {"num": [k]})
    assert values.dtype == dtype and indices.dtype == torch.int32
    for row in range(3):
        key = [float("inf") if torch.isnan(x[row, i]) else float(x[row, i]) for i in range(width)]
        order = sorted(range(width), key=lambda i: (-key[i], i))[:k]
        assert indices[row].tolist() == order
        torch.testing.assert_close(values[row], x[row, order], rtol=0, atol=0, equal_nan=True)


@given(seed=SEEDS, dtype=FLOATS)
def test_where_broadcasts(seed, dtype):
    cond = randint(seed, (3, 1), 0, 2, torch.int8)
    x, y = randn(seed, (3, 4), dtype), randn(seed + 1, (4,), dtype)
    (out,) = reference("WhereOperation", [cond, x, y])
    assert out.dtype == dtype
    assert np.array_equal(np64(out), np.where(cond.numpy() != 0, np64(x), np64(y)))


@given(seed=SEEDS, dtype=FLOATS, value=st.floats(-5, 5))
def test_fill_masked_and_unmasked(seed, dtype, value):
    x = randn(seed, (3, 4), dtype)
    mask = randint(seed, (4,), 0, 2, torch.int8)
    (out,) = reference("FillOperation", [x, mask], {"value": [value]})
    expected = np.where(mask.numpy() != 0, np.float64(torch.tensor(value).to(dtype).item()), np64(x))
    assert out.dtype == dtype and np.array_equal(np64(out), expected)
    (full,) = reference("FillOperation", [], {"withMask": False, "outDim": [2, 3], "value": [value]})
    assert full.dtype == torch.float16 and full.shape == (2, 3)
    assert np.all(np64(full) == np.float16(value))


@given(
    seed=SEEDS,
    dtype=st.sampled_from([torch.int32, torch.int64]),
    axis=st.integers(-3, 2),
    depth=st.integers(1, 5),
)
def test_onehot_inserts_the_depth_axis(seed, dtype, axis, depth):
    indices = randint(seed, (2, 3), -1, depth + 1, dtype)
    (out,) = reference(
        "OnehotOperation",
        [indices, torch.tensor([7], dtype=dtype), torch.tensor([2], dtype=dtype)],
        {"axis": axis, "depth": depth},
    )
    expected = np.full((2, 3, depth), 2)
    for i, j in np.ndindex(2, 3):
        if 0 <= indices[i, j] < depth:
            expected[i, j, indices[i, j]] = 7
    assert out.dtype == dtype
    assert np.array_equal(out.numpy(), np.moveaxis(expected, -1, axis))


@given(seed=SEEDS, shape=st.sampled_from([(5,), (2, 3), (2, 2, 2)]))
def test_nonzero_pads_coordinates_to_numel(seed, shape):
    x = randint(seed, shape, -1, 2, torch.int64)
    indices, count = reference("NonzeroOperation", [x])
    coordinates = [index for index in np.ndindex(shape) if x[index] != 0]
    assert count.tolist() == [len(coordinates)] and indices.dtype == torch.int64
    assert indices.shape == (len(shape), x.numel())
    for column, index in enumerate(coordinates):
        assert tuple(indices[:, column].tolist()) == index
    assert indices[:, len(coordinates) :].abs().sum() == 0


@given(seed=SEEDS, dtype=FLOATS, axis=st.integers(-2, 1), alpha=st.floats(-2, 2))
def test_index_add(seed, dtype, axis, alpha):
    var = randn(seed, (4, 5), dtype)
    count = 6
    index = randint(seed, (count,), 0, var.shape[axis], torch.int32)
    shape = [4, 5]
    shape[axis] = count
    updates = randn(seed + 1, shape, dtype)
    params = {"indexType": 1, "axis": axis}
    alpha_tensor = torch.tensor([alpha])
    alpha = float(alpha_tensor)  # the operator receives alpha as a float32 tensor
    (out,) = wide("IndexAddOperation", [var, index, updates, alpha_tensor], params)
    expected = np64(var).copy()
    moved, source = np.moveaxis(expected, axis, 0), np.moveaxis(np64(updates), axis, 0)
    for i, target in enumerate(index.tolist()):
        moved[target] += alpha * source[i]
    assert_close(out, expected, rtol=1e-12)
    assert (
        reference("IndexAddOperation", [var, index, updates, torch.tensor([alpha])], params)[0].dtype == dtype
    )


def test_index_add_valid_uses_the_first_entries():
    var, updates = torch.zeros(3, 2), torch.ones(4, 2)
    (out,) = reference(
        "IndexAddOperation",
        [var, torch.tensor([0, 2, 1, 1]), updates, torch.tensor([2])],
        {"indexType": 2, "axis": 0},
    )
    assert out.tolist() == [[1, 1], [0, 0], [1, 1]]


@given(
    seed=SEEDS, tokens=st.integers(1, 6), topk=st.integers(1, 3), experts=st.integers(1, 5), data=st.data()
)
def test_gating_inverts_token_to_expert_routing(seed, tokens, topk, experts, data):
    ids = randint(seed, (tokens * topk,), 0, experts, torch.int32)
    positions = torch.arange(tokens * topk, dtype=torch.int32)
    device = data.draw(st.lists(st.integers(0, experts - 1), unique=True, max_size=experts))
    params = {"topkExpertNum": topk, "cumSumNum": experts, "deviceExpert": device}
    outputs = reference("GatingOperation", [ids, positions], params)
    by_expert = {e: [i for i in range(tokens * topk) if ids[i] == e] for e in range(experts)}
    counts = [len(by_expert[e]) for e in range(experts)]
    chosen = sorted(device) if device else list(range(experts))
    front = [i for e in chosen for i in by_expert[e]]
    if not device:
        assert outputs[2].tolist() == front
        assert outputs[1].tolist() == list(np.cumsum(counts))
    else:
        assert outputs[2].tolist()[: len(front)] == front
        assert outputs[1].tolist() == list(np.cumsum([counts[e] for e in chosen]))
        assert outputs[3].tolist() == [len(front)]
    assert outputs[0].tolist()[: len(front)] == [i // topk for i in front]
    assert all(t.dtype == torch.int32 for t in outputs)


@pytest.mark.parametrize(
    ("op", "inputs", "params", "words"),
    [
        ("SoftmaxOperation", [torch.zeros(2, 3, 4)], {"axes": [0, 2]}, ["consecutive"]),
        ("SoftmaxOperation", [torch.zeros(2, 3)], {"axes": []}, ["at least one axis"]),
        ("SoftmaxOperation", [torch.zeros(2, 3)], {"axes": [2]}, ["axes=2"]),
        ("ReduceOperation", [torch.zeros(2, 3)], {"reduceType": 4, "axis": [0]}, ["reduceType=4"]),
        ("ReduceOperation", [torch.zeros(2, 3)], {"reduceType": 1, "axis": [0, 0]}, ["twice"]),
        ("ReduceOperation", [torch.zeros(2, 3)], {"reduceType": 1}, ["axis"]),
        ("CumsumOperation", [torch.zeros(2, 3)], {"axes": [0, 1]}, ["exactly one axis"]),
        ("SortOperation", [torch.zeros(2, 3)], {"num": [4]}, ["num=[4]"]),
        ("WhereOperation", [torch.zeros(2), torch.zeros(3), torch.zeros(3)], {}, ["cannot be broadcast"]),
        ("FillOperation", [torch.zeros(2, 3), torch.zeros(3, 3)], {"value": [1.0]}, ["cannot be broadcast"]),
        ("FillOperation", [torch.zeros(2)], {"value": [1.0]}, ["expected 2 inputs"]),
        ("FillOperation", [], {"withMask": False, "value": [1.0]}, ["outDim"]),
        ("FillOperation", [torch.zeros(2), torch.zeros(2)], {"value": [1.0, 2.0]}, ["one number"]),
        ("OnehotOperation", [torch.tensor([0])], {"axis": 0, "depth": 0}, ["depth=0"]),
        ("OnehotOperation", [torch.tensor([0.5])], {"axis": 0, "depth": 2}, ["integer"]),
        (
            "IndexAddOperation",
            [torch.zeros(3), torch.tensor([3]), torch.zeros(1), torch.tensor([1.0])],
            {"indexType": 1, "axis": 0},
            ["[0, 3)"],
        ),
        (
            "IndexAddOperation",
            [torch.zeros(3), torch.tensor([0]), torch.zeros(2), torch.tensor([1.0])],
            {"indexType": 1, "axis": 0},
            ["updates has shape"],
        ),
        (
            "IndexAddOperation",
            [torch.zeros(3), torch.tensor([0]), torch.zeros(1), torch.tensor([1.0])],
            {"indexType": 0, "axis": 0},
            ["indexType=0"],
        ),
        (
            "GatingOperation",
            [torch.tensor([0, 5]), torch.tensor([0, 1])],
            {"topkExpertNum": 1, "cumSumNum": 3},
            ["[0, cumSumNum=3)"],
        ),
        (
            "GatingOperation",
            [torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])],
            {"topkExpertNum": 2, "cumSumNum": 3},
            ["must divide"],
        ),
        (
            "GatingOperation",
            [torch.tensor([0, 1]), torch.tensor([0, 1])],
            {"topkExpertNum": 1, "cumSumNum": 3, "deviceExpert": [1, 1]},
            ["distinct"],
        ),
    ],
)
def test_tensor_op_errors(op, inputs, params, words):
    assert_fails(op, inputs, params, *words)
