"""Split, Concat, Gather, Slice, Transpose, Transdata, Repeat, AsStrided, SetValue, Pad, Unpad
against numpy and element-by-element index formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.opcheck import reference, spec

from .atb_support import FLOATS, SEEDS, assert_fails, randint, randn

DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.int32])


def _tensor(seed, shape, dtype):
    if dtype.is_floating_point:
        return randn(seed, shape, dtype)
    return randint(seed, shape, -100, 100, dtype)


def _same(out, expected):
    assert out.dtype == expected.dtype and torch.equal(out, expected), (out, expected)


@given(seed=SEEDS, dtype=DTYPES, parts=st.sampled_from([2, 3]), dim=st.sampled_from([0, 1, -1]))
def test_split_equal_and_sized(seed, dtype, parts, dim):
    shape = [2, 3, 4]
    shape[dim] = 6
    x = _tensor(seed, shape, dtype)
    for out, expected in zip(
        reference("SplitOperation", [x], {"splitNum": parts, "splitDim": dim}),
        np.split(x.float().numpy(), parts, axis=dim),
        strict=True,
    ):
        assert out.dtype == dtype and np.array_equal(out.float().numpy(), expected)
    sized = reference("SplitOperation", [x], {"splitNum": 2, "splitDim": dim, "splitSizes": [1, 5]})
    assert [t.shape[dim] for t in sized] == [1, 5]
    assert torch.equal(torch.cat(sized, dim), x)


@given(seed=SEEDS, dtype=DTYPES, dim=st.integers(-3, 2))
def test_concat(seed, dtype, dim):
    a = _tensor(seed, (2, 3, 4), dtype)
    other = [2, 3, 4]
    other[dim] = 1
    b = _tensor(seed + 1, other, dtype)
    (out,) = reference("ConcatOperation", [a, b], {"concatDim": dim})
    assert out.dtype == dtype and np.array_equal(
        out.float().numpy(), np.concatenate([a.float().numpy(), b.float().numpy()], dim)
    )


@given(seed=SEEDS, dtype=DTYPES, axis=st.integers(0, 2), index_shape=st.sampled_from([(3,), (2, 2)]))
def test_gather_without_batch_dims_is_take(seed, dtype, axis, index_shape):
    x = _tensor(seed, (3, 4, 5), dtype)
    indices = randint(seed, index_shape, 0, x.shape[axis], torch.int32)
    (out,) = reference("GatherOperation", [x, indices], {"axis": axis, "batchDims": 0})
    assert out.dtype == dtype
    assert np.array_equal(out.float().numpy(), np.take(x.float().numpy(), indices.numpy(), axis=axis))


@given(seed=SEEDS, dtype=DTYPES, axis=st.integers(1, 2))
def test_gather_with_batch_dims(seed, dtype, axis):
    x = _tensor(seed, (2, 3, 4), dtype)
    indices = randint(seed, (2, 5), 0, x.shape[axis], torch.int64)
    (out,) = reference("GatherOperation", [x, indices], {"axis": axis, "batchDims": 1})
    expected = [np.take(x[b].float().numpy(), indices[b].numpy(), axis=axis - 1) for b in range(2)]
    assert np.array_equal(out.float().numpy(), np.stack(expected))


@given(seed=SEEDS, dtype=DTYPES, data=st.data())
def test_slice_with_negative_offsets_and_open_sizes(seed, dtype, data):
    shape = (4, 5, 6)
    x = _tensor(seed, shape, dtype)
    offsets, sizes, index = [], [], []
    for length in shape:
        start = data.draw(st.integers(0, length))
        size = data.draw(st.integers(-1, length - start))
        negative = data.draw(st.booleans()) and start < length
        offsets.append(start - length if negative else start)
        sizes.append(size)
        index.append(slice(start, length if size == -1 else start + size))
    (out,) = reference("SliceOperation", [x], {"offsets": offsets, "size": sizes})
    _same(out, x[tuple(index)])


@given(seed=SEEDS, dtype=DTYPES, perm=st.permutations([0, 1, 2]))
def test_transpose(seed, dtype, perm):
    x = _tensor(seed, (2, 3, 4), dtype)
    (out,) = reference("TransposeOperation", [x], {"perm": list(perm)})
    assert np.array_equal(out.float().numpy(), np.transpose(x.float().numpy(), perm))


@given(
    seed=SEEDS,
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.int8]),
    batch=st.sampled_from([None, 2]),
    m=st.integers(1, 20),
    n=st.integers(1, 40),
)
def test_transdata_nd_to_nz_and_back(seed, dtype, batch, m, n):
    x = _tensor(seed, (m, n) if batch is None else (batch, m, n), dtype)
    (nz,) = reference("TransdataOperation", [x], {"transdataType": 2})
    c0 = 32 if dtype == torch.int8 else 16
    b = batch or 1
    assert list(nz.shape) == [b, -(-n // c0), -(-m // 16) * 16, c0]
    nd = x.reshape(b, m, n)
    for index in np.ndindex(nz.shape):
        bb, col_block, row, lane = index
        column = col_block * c0 + lane
        inside = row < m and column < n
        assert nz[index] == (nd[bb, row, column] if inside else 0)
    (back,) = reference("TransdataOperation", [nz], {"transdataType": 1, "outCrops": [m, n]})
    _same(back, nd)


@given(seed=SEEDS, dtype=DTYPES, multiples=st.lists(st.integers(1, 3), min_size=2, max_size=4))
def test_repeat(seed, dtype, multiples):
    x = _tensor(seed, (2, 3), dtype)
    (out,) = reference("RepeatOperation", [x], {"multiples": multiples})
    assert np.array_equal(out.float().numpy(), np.tile(x.float().numpy(), multiples))


@given(seed=SEEDS, dtype=DTYPES, data=st.data())
def test_as_strided_reads_the_flat_storage(seed, dtype, data):
    x = _tensor(seed, (4, 6), dtype)
    size = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    stride = data.draw(st.lists(st.integers(0, 3), min_size=len(size), max_size=len(size)))
    reach = sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    offset = data.draw(st.integers(0, x.numel() - 1 - reach))
    (out,) = reference("AsStridedOperation", [x], {"size": size, "stride": stride, "offset": [offset]})
    flat = x.reshape(-1)
    for index in np.ndindex(*size):
        assert out[index] == flat[offset + sum(i * s for i, s in zip(index, stride, strict=True))]


@given(seed=SEEDS, dtype=DTYPES, data=st.data())
def test_set_value_writes_the_window_in_place(seed, dtype, data):
    dst = _tensor(seed, (4, 5), dtype)
    starts = [data.draw(st.integers(0, 3)), data.draw(st.integers(0, 4))]
    ends = [data.draw(st.integers(starts[0], 4)), data.draw(st.integers(starts[1], 5))]
    src = _tensor(seed + 1, (ends[0] - starts[0], ends[1] - starts[1]), dtype)
    (out,) = reference("SetValueOperation", [dst, src], {"starts": starts, "ends": ends, "strides": [1, 1]})
    expected = dst.clone()
    for i in range(starts[0], ends[0]):
        for j in range(starts[1], ends[1]):
            expected[i, j] = src[i - starts[0], j - starts[1]]
    _same(out, expected)
    assert spec("SetValueOperation").inplace_outputs == (0,)


@given(seed=SEEDS, dtype=FLOATS, lengths=st.lists(st.integers(0, 4), min_size=1, max_size=4))
def test_pad_takes_the_last_token_of_each_sequence(seed, dtype, lengths):
    hidden = randn(seed, (max(sum(lengths), 1), 3), dtype)
    seq = torch.tensor(lengths, dtype=torch.int32).reshape(-1, 1)
    ids = torch.zeros(len(lengths), 4, dtype=torch.int64)
    (out,) = reference("PadOperation", [hidden, torch.zeros(1, sum(lengths)), seq, ids])
    end = 0
    for b, n in enumerate(lengths):
        end += n
        _same(out[b], hidden[end - 1] if n else torch.zeros(3, dtype=dtype))


@given(seed=SEEDS, lengths=st.lists(st.integers(0, 4), min_size=1, max_size=4))
def test_unpad_packs_valid_tokens(seed, lengths):
    batch, total = len(lengths), 4
    ids = randint(seed, (batch, total), 1, 100)
    cum = torch.tensor(np.cumsum([total - n for n in lengths]), dtype=torch.int32).reshape(-1, 1)
    seq = torch.tensor(lengths, dtype=torch.int32).reshape(-1, 1)
    tokens, offsets, padding = reference("UnpadOperation", [ids, cum, torch.tensor([[sum(lengths)]]), seq])
    packed = [int(ids[b, j]) for b in range(batch) for j in range(lengths[b])]
    assert tokens.dtype == torch.int64 and tokens.tolist() == [packed + [0] * (batch * total - len(packed))]
    shifted = [0, *cum.reshape(-1).tolist()[:-1]]
    assert offsets.dtype == torch.int32 and offsets.reshape(-1).tolist() == shifted
    pad = [shifted[b] for b in range(batch) for _ in range(lengths[b])]
    assert padding.dtype == torch.int32 and padding.tolist() == [pad + [0] * (batch * total - len(pad))]


@pytest.mark.parametrize(
    ("op", "inputs", "params", "words"),
    [
        (
            "SplitOperation",
            [torch.zeros(5, 2)],
            {"splitNum": 2, "splitDim": 0},
            ["splitNum=2", "does not divide"],
        ),
        ("SplitOperation", [torch.zeros(6, 2)], {"splitNum": 4, "splitDim": 0}, ["splitNum=4"]),
        ("SplitOperation", [torch.zeros(6, 2)], {"splitNum": 2, "splitDim": 2}, ["splitDim=2"]),
        (
            "SplitOperation",
            [torch.zeros(6, 2)],
            {"splitNum": 2, "splitDim": 0, "splitSizes": [2, 2]},
            ["sum to 6"],
        ),
        ("SplitOperation", [torch.zeros(6, 2)], {"splitDim": 0}, ["splitNum"]),
        (
            "ConcatOperation",
            [torch.zeros(2, 3), torch.zeros(2, 4)],
            {"concatDim": 0},
            ["differ outside axis 0"],
        ),
        ("GatherOperation", [torch.zeros(3, 2), torch.tensor([3])], {"axis": 0, "batchDims": 0}, ["[0, 3)"]),
        (
            "GatherOperation",
            [torch.zeros(3, 2), torch.tensor([0.0])],
            {"axis": 0, "batchDims": 0},
            ["integer"],
        ),
        (
            "GatherOperation",
            [torch.zeros(3, 2), torch.tensor([0])],
            {"axis": 1, "batchDims": 2},
            ["batchDims=2"],
        ),
        ("SliceOperation", [torch.zeros(3, 2)], {"offsets": [0], "size": [1]}, ["need 2 entries"]),
        ("SliceOperation", [torch.zeros(3, 2)], {"offsets": [2, 0], "size": [2, 1]}, ["outside axis 0"]),
        ("TransposeOperation", [torch.zeros(3, 2)], {"perm": [0, 0]}, ["not a permutation"]),
        ("TransdataOperation", [torch.zeros(3)], {"transdataType": 2}, ["2-D or 3-D"]),
        ("TransdataOperation", [torch.zeros(3, 3)], {"transdataType": 0}, ["transdataType=0"]),
        (
            "TransdataOperation",
            [torch.zeros(1, 1, 16, 16)],
            {"transdataType": 1, "outCrops": [17, 3]},
            ["outCrops"],
        ),
        ("RepeatOperation", [torch.zeros(3, 2)], {"multiples": [2]}, ["at least 2"]),
        ("AsStridedOperation", [torch.zeros(4)], {"size": [3], "stride": [2], "offset": [0]}, ["reach past"]),
        ("AsStridedOperation", [torch.zeros(4)], {"size": [3], "stride": [1], "offset": [0, 1]}, ["offset"]),
        (
            "SetValueOperation",
            [torch.zeros(4), torch.zeros(2)],
            {"starts": [0], "ends": [2], "strides": [2]},
            ["strides all 1"],
        ),
        (
            "SetValueOperation",
            [torch.zeros(4), torch.zeros(3)],
            {"starts": [0], "ends": [2], "strides": [1]},
            ["does not match src"],
        ),
        (
            "PadOperation",
            [torch.zeros(2, 3), torch.zeros(1, 2), torch.tensor([[2], [2]]), torch.zeros(2, 2)],
            {},
            ["seqLen sums to 4"],
        ),
        (
            "UnpadOperation",
            [
                torch.zeros(2, 3, dtype=torch.int64),
                torch.zeros(2, 1, dtype=torch.int32),
                torch.tensor([[5]]),
                torch.tensor([[2], [2]]),
            ],
            {},
            ["tokenNum"],
        ),
    ],
)
def test_shape_op_errors(op, inputs, params, words):
    assert_fails(op, inputs, params, *words)
