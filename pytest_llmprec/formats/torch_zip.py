"""Zip-format ``torch.save`` files read without torch: the storage census and the bare-tensor layout.

The pickle of a torch file is read by unpicklers that know only the handful of names a saved tensor
uses; nothing is imported or run from the file. ``storage_records_intact`` checks what
``torch.load(mmap=True)`` assumes unchecked; ``bare_tensor_layout`` finds the payload of a file
holding one bare contiguous tensor (``formats.raw``).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..dtypes import KERNEL_DTYPES, dtype_facts
from .raw_tensor import dense_strides

MAX_PICKLE = 1 << 16
"""Larger ``data.pkl`` entries are left to torch (a bare tensor's pickle is a few hundred bytes)."""

_TYPED_STORAGES = {
    "DoubleStorage": "torch.float64", "FloatStorage": "torch.float32", "HalfStorage": "torch.float16",
    "BFloat16Storage": "torch.bfloat16", "CharStorage": "torch.int8", "ShortStorage": "torch.int16",
    "IntStorage": "torch.int32", "LongStorage": "torch.int64", "ByteStorage": "torch.uint8",
    "BoolStorage": "torch.bool",
}  # fmt: skip


class NotABareTensor(Exception):
    """The file is not a zip torch file holding one bare, contiguous tensor of a kernel dtype."""


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
        raise NotABareTensor
    return _Stored(storage, dtype, offset, tuple(size), tuple(stride))


def _rebuild_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> _Stored:
    if not isinstance(storage, _Storage) or requires_grad or metadata:
        raise NotABareTensor
    return _stored(storage, storage.dtype, offset, size, stride)


def _rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None) -> _Stored:
    plain = isinstance(storage, _Storage) and storage.dtype is None and isinstance(dtype, _DType)
    if requires_grad or metadata or not plain:
        raise NotABareTensor
    return _stored(storage, dtype.name, offset, size, stride)


@dataclass(frozen=True)
class _DType:
    name: str


def _empty_ordered_dict(*args: Any) -> dict:
    if args:
        raise NotABareTensor
    return {}


_GLOBALS: dict[str, Any] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_v3,
    "collections.OrderedDict": _empty_ordered_dict,
    "torch.storage.UntypedStorage": _StorageType(None),
    **{f"torch.{name}": _StorageType(dtype) for name, dtype in _TYPED_STORAGES.items()},
    **{name: _DType(name) for name in KERNEL_DTYPES},
}


class _TensorUnpickler(pickle.Unpickler):
    """Knows only the names a pickled bare tensor uses; everything else declines."""

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get(f"{module}.{name}")
        if found is None:
            raise NotABareTensor
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise NotABareTensor
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or type(numel) is not int or numel < 0:
            raise NotABareTensor
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
        raise NotABareTensor
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


class _Entry(NamedTuple):
    """The central-directory facts of one zip member (the names ``zipfile.ZipInfo`` uses)."""

    filename: str
    compress_type: int
    compress_size: int
    file_size: int
    header_offset: int


TAIL_READ = 1 << 13
"""Bytes read from a file's end for its central directory (a saved tensor's is a few hundred)."""
_CENTRAL, _END = b"PK\x01\x02", b"PK\x05\x06"
_CENTRAL_HEADER = struct.Struct("<4s6xH8xIIHHH8xI")
"""A central directory header (46 bytes): signature, method, compressed and plain sizes, the name,
extra and comment lengths, and the local header's offset."""


def _central_directory(handle, size: int) -> dict[str, _Entry] | None:
    """The members of a plain (not zip64, not multi-disk) archive whose central directory ends the
    file, from one read of its tail; None for anything else (``zipfile`` reads those)."""
    start = max(0, size - TAIL_READ)
    handle.seek(start)
    tail = handle.read(size - start)
    end = tail.rfind(_END, max(0, len(tail) - 22 - 0xFFFF))
    if end < 0 or len(tail) < end + 22:
        return None
    disk, cd_disk, _, count, cd_size, cd_offset, comment = struct.unpack("<HHHHIIH", tail[end + 4 : end + 22])
    if disk or cd_disk or count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        return None
    cd_end = start + end  # where the central directory ends: the end record, or torch's zip64 records
    locator = tail[end - 20 : end] if end >= 20 else b""
    if locator.startswith(b"PK\x06\x07"):  # the zip64 end record's locator (torch writes one always)
        cd_end = struct.unpack("<Q", locator[8:16])[0]
        if cd_end >= start + end - 20:
            return None
    if end + 22 + comment != len(tail) or cd_offset + cd_size != cd_end or cd_offset < start:
        return None
    entries: dict[str, _Entry] = {}
    position = cd_offset - start
    for _ in range(count):
        if position + 46 > len(tail):
            return None
        signature, method, compressed, plain, name_length, extra_length, comment_length, offset = (
            _CENTRAL_HEADER.unpack_from(tail, position)
        )
        if signature != _CENTRAL or 0xFFFFFFFF in (compressed, plain, offset):
            return None
        name = tail[position + 46 : position + 46 + name_length].decode("utf-8", "replace")
        entries[name] = _Entry(name, method, compressed, plain, offset)
        position += 46 + name_length + extra_length + comment_length
    return entries if position == cd_end - start else None


def _payload_start(handle, head: bytes, entry: _Entry) -> int:
    """Where the bytes of a stored member begin (after its local header)."""
    local = head[entry.header_offset : entry.header_offset + 30]
    if len(local) != 30:
        handle.seek(entry.header_offset)
        local = handle.read(30)
    if len(local) != 30 or not local.startswith(b"PK\x03\x04"):
        raise NotABareTensor
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    return entry.header_offset + 30 + name_length + extra_length


def _member(handle, head: bytes, entry: _Entry) -> bytes:
    """A stored member's bytes (compressed ones: ``NotABareTensor``)."""
    if entry.compress_type != zipfile.ZIP_STORED:
        raise NotABareTensor
    start = _payload_start(handle, head, entry)
    if start + entry.file_size <= len(head):
        return head[start : start + entry.file_size]
    handle.seek(start)
    data = handle.read(entry.file_size)
    if len(data) != entry.file_size:
        raise NotABareTensor
    return data


def _pickle_and_entries(handle, head: bytes) -> tuple[Any, dict[str, Any], str]:
    """The tensor the pickle describes, the archive's entries and the pickle's folder prefix: from
    the central directory directly when it is plain, else through ``zipfile``."""
    size = os.fstat(handle.fileno()).st_size
    entries = _central_directory(handle, size)
    if entries is None:
        with zipfile.ZipFile(handle) as archive:
            entries, prefix = _pickle_entry(archive)
            order = entries.get(prefix + "byteorder")
            if order is not None and archive.read(order) != b"little":
                raise NotABareTensor
            if entries[prefix + "data.pkl"].file_size > MAX_PICKLE:
                raise NotABareTensor
            return _TensorUnpickler(io.BytesIO(archive.read(prefix + "data.pkl"))).load(), entries, prefix
    pickles = [name for name in entries if name.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise NotABareTensor
    prefix = pickles[0][: -len("data.pkl")]
    order = entries.get(prefix + "byteorder")
    if order is not None and _member(handle, head, order) != b"little":
        raise NotABareTensor
    data = entries[pickles[0]]
    if data.file_size > MAX_PICKLE:
        raise NotABareTensor
    return _TensorUnpickler(io.BytesIO(_member(handle, head, data))).load(), entries, prefix


def bare_tensor_layout(
    path: str, handle, head: bytes = b""
) -> tuple[str, tuple[int, ...], int, tuple[int, ...] | None]:
    """(dtype name, shape, payload offset, dense strides or None) of the one tensor in the file;
    ``NotABareTensor`` for anything else (containers, views with gaps, compressed records).
    ``head``: the file's first bytes, when already read."""
    tensor, entries, prefix = _pickle_and_entries(handle, head)
    if not isinstance(tensor, _Stored) or tensor.dtype not in KERNEL_DTYPES:
        raise NotABareTensor
    itemsize = dtype_facts(tensor.dtype).itemsize
    storage_bytes = tensor.storage.nbytes(itemsize)
    try:
        strides = dense_strides(tensor.size, tensor.stride)
    except ValueError:
        raise NotABareTensor from None
    if (tensor.offset + math.prod(tensor.size)) * itemsize > storage_bytes:
        raise NotABareTensor
    info = entries.get(f"{prefix}data/{tensor.storage.key}")
    if not _stored_intact(info, storage_bytes):
        raise NotABareTensor
    start = _payload_start(handle, head, info)
    return tensor.dtype, tensor.size, start + tensor.offset * itemsize, strides
