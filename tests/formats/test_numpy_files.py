"""NumPy .npy (memory-mapped) and .npz (members) files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import TensorInfo, list_members, load_tensor, probe_tensor

NUMPY_TO_TORCH = [
    (np.bool_, torch.bool),
    (np.int8, torch.int8),
    (np.int16, torch.int16),
    (np.int32, torch.int32),
    (np.int64, torch.int64),
    (np.uint8, torch.uint8),
    (np.uint16, torch.uint16),
    (np.uint32, torch.uint32),
    (np.uint64, torch.uint64),
    (np.float16, torch.float16),
    (np.float32, torch.float32),
    (np.float64, torch.float64),
    (np.complex64, torch.complex64),
    (np.complex128, torch.complex128),
]


def numpy_sample(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """Random bytes reinterpreted as ``dtype`` (bool from a comparison): every bit pattern may occur."""
    rng = np.random.default_rng(0)
    if dtype is np.bool_:
        return rng.random(shape) > 0.5
    itemsize = np.dtype(dtype).itemsize
    return (
        rng.integers(0, 256, size=int(np.prod(shape)) * itemsize, dtype=np.uint8).view(dtype).reshape(shape)
    )


def same_bytes(tensor: torch.Tensor, array: np.ndarray) -> bool:
    expected = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("=")).tobytes()
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() == expected


@pytest.mark.parametrize(("np_dtype", "torch_dtype"), NUMPY_TO_TORCH, ids=[str(t) for _, t in NUMPY_TO_TORCH])
def test_npy_round_trip_every_dtype(tmp_path, np_dtype, torch_dtype):
    array = numpy_sample(np_dtype, (3, 4))
    path = tmp_path / "a.npy"
    np.save(path, array)
    tensor = load_tensor(path)
    assert tensor.dtype == torch_dtype
    assert tensor.shape == (3, 4)
    assert same_bytes(tensor, array)
    assert probe_tensor(path) == TensorInfo(torch_dtype, (3, 4), None)


def test_npy_is_memory_mapped_copy_on_write(tmp_path, mapped_from):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(10_000, dtype=np.float32))
    tensor = load_tensor(path)
    assert mapped_from(tensor, path)
    tensor[0] = 42.0
    assert np.load(path)[0] == 0.0


def test_fx_style_npy_name_and_fortran_and_big_endian(tmp_path):
    path = tmp_path / "mm-aten.mm.default.INPUT.0.20240125031118787351.npy"
    array = np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4))
    np.save(path, array)
    tensor = load_tensor(path)
    assert tensor.dtype == torch.int32
    assert tensor.tolist() == array.tolist()


def test_npy_zero_size_and_scalar(tmp_path):
    empty, scalar = tmp_path / "e.npy", tmp_path / "s.npy"
    np.save(empty, np.zeros((0, 3), dtype=np.float16))
    np.save(scalar, np.float64(2.5))
    assert load_tensor(empty).shape == (0, 3)
    assert load_tensor(scalar).shape == ()
    assert load_tensor(scalar).item() == 2.5


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_npz_members(tmp_path, compressed):
    path = tmp_path / "arrays.npz"
    save = np.savez_compressed if compressed else np.savez
    save(
        path, weight=np.arange(6, dtype=np.uint16).reshape(2, 3), bias=np.array([1.5, -2.0], dtype=np.float32)
    )
    assert list_members(path) == ["weight", "bias"]
    weight = load_tensor(path, member="weight")
    assert weight.dtype == torch.uint16
    assert weight.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert load_tensor(path, member="weight.1").tolist() == [3, 4, 5]
    assert probe_tensor(path, member="bias") == TensorInfo(torch.float32, (2,), None)
    with pytest.raises(DumpFormatError, match="holds 2 arrays; choose a member: weight, bias"):
        load_tensor(path)
    with pytest.raises(DumpFormatError, match="row 2 is out of range"):
        load_tensor(path, member="weight.2")


def test_npz_with_one_array_needs_no_member(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, np.arange(3))
    assert list_members(path) == ["arr_0"]
    assert load_tensor(path).tolist() == [0, 1, 2]


@pytest.mark.parametrize("np_dtype", [np.float16, np.bool_, np.uint64, np.complex128], ids=str)
def test_npz_round_trip(tmp_path, np_dtype):
    array = numpy_sample(np_dtype, (5, 2))
    path = tmp_path / "a.npz"
    np.savez_compressed(path, x=array)
    assert same_bytes(load_tensor(path, member="x"), array)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DumpFormatError, match=r"Python objects.*pickle, which is refused"):
        load_tensor(path)
