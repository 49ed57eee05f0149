"""Torch-free reading of the common dump files, for comparisons that never need a torch tensor.

``read_raw`` gives a memory-mapped view of the elements of a zip-format ``torch.save`` file
holding one bare contiguous tensor, of a C-order ``.npy`` file or of a row-major ATB ``.bin``
file, together with its dtype name and shape. For anything else it returns None and the caller
loads the file with ``load_tensor`` (which also produces every error message): a raw read never
raises for the file's content and never runs code from it. The pickle of a torch file is read by
an unpickler that knows only the handful of names a saved tensor uses; any other name stops it.
"""

from __future__ import annotations

import io
import math
import mmap
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dtypes import NUMPY_CODES, dtype_facts
from . import atb_header
from .layout_codes import PLAIN_FORMATS

MAX_PICKLE = 1 << 16
"""Larger ``data.pkl`` entries are left to torch (a bare tensor's pickle is a few hundred bytes)."""

RAW_DTYPES = frozenset(
    f"torch.{name}"
    for name in (
        "float64", "float32", "float16", "bfloat16", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64", "bool",
    )
)  # fmt: skip
"""Dtypes a raw read returns."""

_TYPED_STORAGES = {
    "DoubleStorage": "torch.float64", "FloatStorage": "torch.float32", "HalfStorage": "torch.float16",
    "BFloat16Storage": "torch.bfloat16", "CharStorage": "torch.int8", "ShortStorage": "torch.int16",
    "IntStorage": "torch.int32", "LongStorage": "torch.int64", "ByteStorage": "torch.uint8",
    "BoolStorage": "torch.bool",
}  # fmt: skip


@dataclass(frozen=True)
class RawTensor:
    """The elements of a dumped tensor: contiguous little-endian bytes (memory-mapped), dtype
    name (``"torch.float32"``) and shape; ``path``/``member`` say where it was read from."""

    data: memoryview
    dtype: str
    shape: tuple[int, ...]
    path: str
    member: str | None = None

    def to_torch(self):
        """The same tensor as ``load_tensor`` gives (imports torch)."""
        from .registry import load_tensor

        return load_tensor(self.path, member=self.member)


class _Declined(Exception):
    """The file is not one a raw read handles."""


def read_raw(path: str | os.PathLike[str], member: str | None = None) -> RawTensor | None:
    """The tensor of ``path`` without torch, or None when the file needs ``load_tensor``."""
    if member is not None:
        return None
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
            kind = _SUFFIX_KINDS[suffix] if suffix in _SUFFIX_KINDS else _sniff(head)
            if kind is None:
                return None
            dtype, shape, start = _LAYOUTS[kind](path, handle)
            size = os.fstat(handle.fileno()).st_size
            nbytes = dtype_facts(dtype).itemsize * math.prod(shape)
            if start + nbytes > size:
                return None
            data = memoryview(b"") if nbytes == 0 else _mapped(handle, start, nbytes)
    except Exception:  # whatever the content: load_tensor reads it again and explains the problem
        return None
    return RawTensor(data, dtype, shape, path)


_SUFFIX_KINDS = {".pt": "torch", ".pth": "torch", ".npy": "npy", ".npz": None, ".safetensors": None}
"""As ``load_tensor`` does, the extension decides first; other files are recognised by content."""


def _sniff(head: bytes) -> str | None:
    if atb_header.looks_like_atb(head):
        return "atb"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    return None


def _mapped(handle, start: int, nbytes: int) -> memoryview:
    mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return memoryview(mapping)[start : start + nbytes]


# --- ATB .bin ------------------------------------------------------------------------------------


def _atb_layout(path: str, handle) -> tuple[str, tuple[int, ...], int]:
    layout = atb_header.read_layout(path)
    name = atb_header.DTYPE_NAMES[layout.dtype_code]
    if layout.format_code not in PLAIN_FORMATS or layout.dtype_code == atb_header.INT4:
        raise _Declined  # device layouts and packed int4 need converting
    if name not in RAW_DTYPES:
        raise _Declined
    return name, layout.dims, layout.header.length


# --- .npy ---------------------------------------------------------------------------------------


def _npy_layout(path: str, handle) -> tuple[str, tuple[int, ...], int]:
    handle.seek(0)
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle, max_header_size=1 << 16)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle, max_header_size=1 << 16)
    else:
        raise _Declined
    name = NUMPY_CODES.get(dtype.str[1:])
    if name not in RAW_DTYPES or dtype.str[0] == ">":  # structured dtypes have no code
        raise _Declined
    if fortran and len(shape) > 1:
        raise _Declined
    return name, tuple(int(size) for size in shape), handle.tell()


# --- zip-format torch.save files ----------------------------------------------------------------


@dataclass(frozen=True)
class _StorageType:
    dtype: str | None  # None: an untyped storage, the dtype comes with the tensor


@dataclass(frozen=True)
class _Storage:
    dtype: str | None
    key: str
    numel: int  # elements of a typed storage, bytes of an untyped one (dtype None)

    def nbytes(self, itemsize: int) -> int:
        return self.numel if self.dtype is None else self.numel * itemsize


@dataclass(frozen=True)
class _Stored:
    storage: _Storage
    dtype: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _stored(storage: Any, dtype: str | None, offset: Any, size: Any, stride: Any) -> _Stored:
    numbers = [offset, *size, *stride]
    if dtype is None or not all(type(n) is int and n >= 0 for n in numbers):
        raise _Declined
    return _Stored(storage, dtype, offset, tuple(size), tuple(stride))


def _rebuild_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> _Stored:
    if not isinstance(storage, _Storage):
        raise _Declined
    return _stored(storage, storage.dtype, offset, size, stride)


def _rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None) -> _Stored:
    if not isinstance(storage, _Storage) or storage.dtype is not None or not isinstance(dtype, _DType):
        raise _Declined
    return _stored(storage, dtype.name, offset, size, stride)


@dataclass(frozen=True)
class _DType:
    name: str


def _empty_ordered_dict(*args: Any) -> dict:
    if args:
        raise _Declined
    return {}


_GLOBALS: dict[str, Any] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_v3,
    "collections.OrderedDict": _empty_ordered_dict,
    "torch.storage.UntypedStorage": _StorageType(None),
    **{f"torch.{name}": _StorageType(dtype) for name, dtype in _TYPED_STORAGES.items()},
    **{name: _DType(name) for name in RAW_DTYPES},
}


class _TensorUnpickler(pickle.Unpickler):
    """Knows only the names a pickled bare tensor uses; everything else declines."""

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get(f"{module}.{name}")
        if found is None:
            raise _Declined
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Declined
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or type(numel) is not int or numel < 0:
            raise _Declined
        return _Storage(storage_type.dtype, str(key), numel)


class _Placeholder:
    """Stands for every other global while storages are counted: nothing real is imported or run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _StorageCensus(_TensorUnpickler):
    """Reads any tensor pickle only to record the bytes each storage record must hold."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.needed: dict[str, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get(f"{module}.{name}")
        return found if isinstance(found, _StorageType) else _Placeholder

    def persistent_load(self, pid: Any) -> _Storage:
        storage = super().persistent_load(pid)
        nbytes = storage.nbytes(1 if storage.dtype is None else dtype_facts(storage.dtype).itemsize)
        self.needed[storage.key] = max(self.needed.get(storage.key, 0), nbytes)
        return storage


def _pickle_entry(archive: zipfile.ZipFile) -> tuple[dict[str, zipfile.ZipInfo], str]:
    """The archive's entries by name and the folder prefix of its one ``data.pkl``."""
    entries = {info.filename: info for info in archive.infolist()}
    pickles = [name for name in entries if name.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise _Declined
    return entries, pickles[0][: -len("data.pkl")]


def _stored_intact(info: zipfile.ZipInfo | None, nbytes: int) -> bool:
    return info is not None and info.compress_type == zipfile.ZIP_STORED and info.file_size >= nbytes


def storage_records_intact(path: str | os.PathLike[str]) -> bool:
    """Whether every storage record the pickle of a zip torch file names is stored uncompressed
    and holds the bytes the pickle declares: what ``torch.load(mmap=True)`` assumes unchecked."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries, prefix = _pickle_entry(archive)
            census = _StorageCensus(io.BytesIO(archive.read(prefix + "data.pkl")))
            census.load()
    except Exception:  # torch.load without mmap reads it again and checks everything
        return False
    return all(_stored_intact(entries.get(f"{prefix}data/{key}"), n) for key, n in census.needed.items())


def _torch_layout(path: str, handle) -> tuple[str, tuple[int, ...], int]:
    with zipfile.ZipFile(handle) as archive:
        entries, prefix = _pickle_entry(archive)
        order = entries.get(prefix + "byteorder")
        if order is not None and archive.read(order) != b"little":
            raise _Declined
        if entries[prefix + "data.pkl"].file_size > MAX_PICKLE:
            raise _Declined
        tensor = _TensorUnpickler(io.BytesIO(archive.read(prefix + "data.pkl"))).load()
    if not isinstance(tensor, _Stored) or tensor.dtype not in RAW_DTYPES:
        raise _Declined
    itemsize = dtype_facts(tensor.dtype).itemsize
    storage_bytes = tensor.storage.nbytes(itemsize)
    if not _contiguous(tensor.size, tensor.stride):
        raise _Declined
    if (tensor.offset + math.prod(tensor.size)) * itemsize > storage_bytes:
        raise _Declined
    info = entries.get(f"{prefix}data/{tensor.storage.key}")
    if not _stored_intact(info, storage_bytes):
        raise _Declined
    handle.seek(info.header_offset)
    local = handle.read(30)
    if len(local) != 30 or not local.startswith(b"PK\x03\x04"):
        raise _Declined
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    return tensor.dtype, tensor.size, start + tensor.offset * itemsize


def _contiguous(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    if len(size) != len(stride):
        return False
    expected = 1
    for dim, step in zip(reversed(size), reversed(stride), strict=True):
        if dim != 1 and step != expected:
            return False
        expected *= dim
    return True


_LAYOUTS = {"atb": _atb_layout, "npy": _npy_layout, "torch": _torch_layout}
"""Format -> (path, open file) -> (dtype name, shape, payload offset); raising declines the file."""
