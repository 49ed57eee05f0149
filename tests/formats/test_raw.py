"""read_raw: the torch-free view of .pt/.pth and .npy files, and every file it must leave to load_tensor."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import torch

from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import load_tensor, nd_to_nz, save_atb_bin
from pytest_llmprec.formats.atb_bin import DTYPE_CODES
from pytest_llmprec.formats.raw import RAW_DTYPES, read_raw
from pytest_llmprec.formats.torch_zip import MAX_PICKLE, storage_records_intact

DTYPES = [getattr(torch, name.removeprefix("torch.")) for name in sorted(RAW_DTYPES)]
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 4)]


def sample(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    values = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 50
    return values.to(dtype)


def raw_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same_as_load_tensor(path) -> None:
    raw = read_raw(path)
    assert raw is not None, f"{path} was declined"
    tensor = load_tensor(path)
    assert raw.dtype == str(tensor.dtype)
    assert raw.shape == tuple(tensor.shape)
    if raw.strides is None:
        assert bytes(raw.data) == raw_bytes(tensor)
    assert torch.equal(raw.to_torch(), tensor)
    assert all(raw.to_torch()[raw.unravel(i)] == value for i, value in enumerate(_stored(raw)))


def _stored(raw) -> list:
    """The elements in the order the bytes hold them."""
    if not len(raw.data):
        return []
    return torch.frombuffer(bytearray(raw.data), dtype=getattr(torch, raw.dtype[6:])).tolist()


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(lambda t: t.reshape(3, 4).t(), id="transposed"),
        pytest.param(lambda t: t.reshape(2, 3, 2).permute(2, 0, 1), id="permuted"),
        pytest.param(lambda t: t.reshape(1, 3, 1, 4).transpose(1, 3), id="with-unit-dims"),
    ],
)
def test_dense_permuted_views_are_read_with_their_strides(tmp_path, view):
    path = tmp_path / "v.pt"
    torch.save(view(torch.arange(12.0)), path)
    assert read_raw(path).strides is not None
    assert_same_as_load_tensor(path)


def test_a_fortran_order_npy_is_read_with_its_strides(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)))
    assert read_raw(path).strides == (1, 2, 6)
    assert_same_as_load_tensor(path)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_torch_files_of_every_dtype_and_shape(tmp_path, dtype, shape):
    path = tmp_path / "t.pth"
    torch.save(sample(dtype, shape), path)
    assert_same_as_load_tensor(path)


def test_a_contiguous_slice_saved_with_its_storage_offset(tmp_path):
    base = torch.arange(100, dtype=torch.float32)
    path = tmp_path / "slice.pt"
    torch.save(base[10:40].reshape(5, 6), path)  # the file holds all 100 elements, offset 10
    assert_same_as_load_tensor(path)


@pytest.mark.parametrize(
    "dtype", ["<f8", "<f4", "<f2", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1"]
)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_npy_files_of_every_dtype_and_shape(tmp_path, dtype, shape):
    path = tmp_path / "a.npy"
    np.save(path, (np.random.default_rng(0).standard_normal(shape) * 50).astype(dtype))
    assert_same_as_load_tensor(path)


def test_a_one_dimensional_fortran_array_is_also_row_major(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.asfortranarray(np.arange(5, dtype=np.float32)))
    assert_same_as_load_tensor(path)


# --- what is left to load_tensor -------------------------------------------------------------------


def saved(tmp_path, obj, name="x.pt", **kwargs):
    path = tmp_path / name
    torch.save(obj, path, **kwargs)
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: saved(p, torch.arange(12.0).reshape(3, 4)[:, ::2]), id="strided-with-gaps"),
        pytest.param(lambda p: saved(p, torch.ones(3, 1).expand(3, 4)), id="broadcast-view"),
        pytest.param(lambda p: saved(p, {"w": torch.ones(3)}), id="dict-container"),
        pytest.param(lambda p: saved(p, [torch.ones(3)]), id="list-container"),
        pytest.param(lambda p: saved(p, torch.ones(3).to(torch.float8_e4m3fn)), id="float8"),
        pytest.param(lambda p: saved(p, torch.ones(3, dtype=torch.complex64)), id="complex"),
        pytest.param(
            lambda p: saved(p, torch.ones(3), _use_new_zipfile_serialization=False), id="legacy-pickle"
        ),
        pytest.param(lambda p: _npy(p, np.ones((2, 3), dtype=">f4")), id="big-endian-npy"),
    ],
)
def test_files_it_does_not_handle_are_declined_and_still_load(tmp_path, make):
    path = make(tmp_path)
    assert read_raw(path) is None
    load_tensor(path)  # the full reader handles them


def _npy(folder, array):
    path = folder / "a.npy"
    np.save(path, array)
    return path


def test_structured_npy_files_are_declined_and_refused_by_load_tensor(tmp_path):
    path = _npy(tmp_path, np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
    assert read_raw(path) is None
    with pytest.raises(DumpFormatError, match="has no torch equivalent"):
        load_tensor(path)


def test_a_member_is_always_left_to_load_tensor(tmp_path):
    assert read_raw(saved(tmp_path, torch.ones(3)), member="0") is None


def _rezip(path, change) -> None:
    """Rewrite a torch zip file, passing each (name, data, compress_type) through ``change``."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info), info.compress_type) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for entry in entries:
            name, data, compress = change(*entry)
            archive.writestr(name, data, compress_type=compress)


@pytest.mark.parametrize(
    "obj", [torch.arange(64.0), {"a": torch.arange(64.0), "b": torch.ones(2)}], ids=["bare", "dict"]
)
def test_a_compressed_payload_is_declined_and_not_memory_mapped_by_load_tensor(tmp_path, obj):
    path = saved(tmp_path, obj)
    _rezip(path, lambda n, d, c: (n, d, zipfile.ZIP_DEFLATED if "/data/" in n else c))
    assert read_raw(path) is None
    assert not storage_records_intact(path)  # torch would map the compressed bytes as values
    assert torch.equal(
        load_tensor(path, member=None if isinstance(obj, torch.Tensor) else "a"), torch.arange(64.0)
    )


def test_a_payload_shorter_than_the_tensor_is_declined_and_reported_by_load_tensor(tmp_path):
    path = saved(tmp_path, {"a": torch.arange(64.0)})
    _rezip(path, lambda n, d, c: (n, d[:100] if "/data/" in n else d, c))
    assert read_raw(path) is None
    assert not storage_records_intact(path)  # torch would map whatever follows the record
    with pytest.raises(DumpFormatError, match="record size"):
        load_tensor(path)


def test_intact_files_are_memory_mapped(tmp_path):
    assert storage_records_intact(
        saved(tmp_path, {"a": torch.ones(3), "b": [torch.zeros(2, dtype=torch.float8_e5m2)]})
    )


def test_big_endian_torch_files_are_declined(tmp_path):
    path = saved(tmp_path, torch.arange(4.0))
    _rezip(path, lambda n, d, c: (n, b"big" if n.endswith("/byteorder") else d, c))
    assert read_raw(path) is None


@pytest.mark.parametrize("cut", [10, 200, -30, -1])
def test_truncated_files_are_declined_and_reported_by_load_tensor(tmp_path, cut):
    path = saved(tmp_path, torch.arange(256.0))
    path.write_bytes(path.read_bytes()[:cut])
    assert read_raw(path) is None
    with pytest.raises(DumpFormatError, match=str(path)):
        load_tensor(path)


def test_garbage_and_empty_files_are_declined(tmp_path):
    garbage, empty = tmp_path / "g.pt", tmp_path / "e.npy"
    garbage.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    empty.write_bytes(b"")
    assert read_raw(garbage) is None
    assert read_raw(empty) is None
    assert read_raw(tmp_path / "missing.pt") is None
    assert read_raw(tmp_path) is None


def _torch_zip(path, pickle_bytes: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", b"little")
        archive.writestr("archive/data/0", bytes(16))
        archive.writestr("archive/version", b"3\n")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    _torch_zip(path, pickle.dumps(_RunsCode(marker), protocol=2))
    assert read_raw(path) is None
    with pytest.raises(DumpFormatError, match="refused"):
        load_tensor(path)
    assert not marker.exists()


def test_a_tensor_pickle_with_impossible_sizes_is_declined(tmp_path):
    buffer = io.BytesIO()
    torch.save(torch.ones(4), buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        good = archive.read(name)
    # the pickled size tuple (4,) becomes (-4,)
    bad = good.replace(b"K\x04\x85", b"J\xfc\xff\xff\xff\x85")
    assert bad != good
    path = tmp_path / "neg.pt"
    _torch_zip(path, bad)
    assert read_raw(path) is None


def test_an_oversized_pickle_is_left_to_torch(tmp_path):
    path = tmp_path / "big.pt"
    _torch_zip(path, pickle.dumps(list(range(MAX_PICKLE)), protocol=2))
    assert read_raw(path) is None


# --- ATB .bin ---------------------------------------------------------------------------------------

ATB_DTYPES = [d for d in DTYPES if d in DTYPE_CODES]


@pytest.mark.parametrize("dtype", ATB_DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_atb_files_of_every_dtype_and_shape(tmp_path, dtype, shape):
    path = tmp_path / "outtensor0.bin"
    save_atb_bin(sample(dtype, shape), path)
    assert_same_as_load_tensor(path)


def test_an_atb_file_with_any_extension_is_recognised_by_its_header(tmp_path):
    path = tmp_path / "outtensor0"
    save_atb_bin(sample(torch.float16, (4, 5)), path)
    assert_same_as_load_tensor(path)
    assert read_raw(tmp_path / "renamed.pt") is None  # a missing file
    (tmp_path / "renamed.pt").write_bytes(path.read_bytes())
    assert read_raw(tmp_path / "renamed.pt") is None  # the extension says torch, as for load_tensor


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda p: save_atb_bin(nd_to_nz(torch.ones(16, 32, dtype=torch.float16)), p, format=29),
            id="fractal-nz",
        ),
        pytest.param(
            lambda p: save_atb_bin(torch.tensor([1, -2, 3], dtype=torch.int8), p, dtype_code=29), id="int4"
        ),
        pytest.param(lambda p: save_atb_bin(torch.ones(3, dtype=torch.complex64), p), id="complex"),
    ],
)
def test_atb_files_that_need_converting_are_declined_and_still_load(tmp_path, write):
    path = tmp_path / "outtensor0.bin"
    write(path)
    assert read_raw(path) is None
    load_tensor(path)


def test_atb_statistics_and_truncated_files_are_declined_and_reported_by_load_tensor(tmp_path):
    stats, cut = tmp_path / "stats.bin", tmp_path / "cut.bin"
    stats.write_bytes(b"format=2\ndtype=0\ndims=2,3\nmax=1.0\nmin=0.0\nmean=0.5\nl2norm=2.0\n$End=1\n")
    save_atb_bin(torch.ones(64), cut)
    cut.write_bytes(cut.read_bytes()[:-10])
    for path, problem in ((stats, "statistics only"), (cut, "truncated payload")):
        assert read_raw(path) is None
        with pytest.raises(DumpFormatError, match=problem):
            load_tensor(path)
