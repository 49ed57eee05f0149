"""Torch-free reading of the common dump files, for comparisons that never need a torch tensor.

``read_raw`` gives a memory-mapped view of the elements of a zip-format ``torch.save`` file
holding one bare dense tensor (a transposed view too), of a ``.npy`` file (C or Fortran order) or
of a row-major ATB ``.bin`` file, with its dtype name, shape and strides. For anything else it
returns None and the caller loads the file with ``load_tensor`` (which also produces every error
message): a raw read never raises for the file's content and never runs code from it
(``torch_zip`` reads torch pickles).
"""

from __future__ import annotations

import math
import mmap
import os
import re

import numpy as np

from ..dtypes import KERNEL_DTYPES, NUMPY_CODES, dtype_facts
from . import atb_header, sniff
from .layout_codes import PLAIN_FORMATS
from .raw_tensor import RawTensor, dense_strides
from .torch_zip import bare_tensor_layout

RAW_DTYPES = KERNEL_DTYPES
"""Dtypes a raw read returns: those the C kernel reads without torch."""


HEAD_READ = 1 << 14
"""Bytes read at once from a file's start: the header, and the whole of a small file."""


class _Declined(Exception):
    """The file is not one a raw read handles."""


def read_raw(path: str | os.PathLike[str], member: str | None = None) -> RawTensor | None:
    """The tensor of ``path`` without torch, or None when the file needs ``load_tensor``."""
    if member is not None:
        return None
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_READ)
            kind = sniff.suffix_format(path) or sniff.head_format(head[: sniff.HEAD_BYTES])
            if kind not in _LAYOUTS:
                return None
            dtype, shape, start, strides = _LAYOUTS[kind](path, handle, head)  # header from the bytes read
            nbytes = dtype_facts(dtype).itemsize * math.prod(shape)
            if start + nbytes <= len(head):  # a small file: already read
                data = memoryview(head)[start : start + nbytes]
            elif start + nbytes > os.fstat(handle.fileno()).st_size:
                return None
            else:
                data = _mapped(handle, start, nbytes)
    except Exception:  # whatever the content: load_tensor reads it again and explains the problem
        return None
    return RawTensor(data, dtype, shape, path, strides=strides)


def _mapped(handle, start: int, nbytes: int) -> memoryview:
    mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return memoryview(mapping)[start : start + nbytes]


# --- ATB .bin ------------------------------------------------------------------------------------


def _atb_layout(path: str, handle, head: bytes = b"") -> tuple[str, tuple[int, ...], int]:
    layout = atb_header.read_layout(path, head)
    name = atb_header.DTYPE_NAMES[layout.dtype_code]
    if layout.format_code not in PLAIN_FORMATS or layout.dtype_code == atb_header.INT4:
        raise _Declined  # device layouts and packed int4 need converting
    if name not in RAW_DTYPES:
        raise _Declined
    return name, layout.dims, layout.header.length, None


# --- .npy ---------------------------------------------------------------------------------------


_NPY_HEADER = re.compile(
    rb"\{'descr': '([<|])(\w+)', 'fortran_order': (True|False), 'shape': \(((?:\d+, ?)*\d*)\), \} *\n"
)
"""The header numpy writes (``numpy.lib.format``); anything else is parsed by numpy."""


def _npy_header(head: bytes) -> tuple[tuple[int, ...], bool, str, int] | None:
    """(shape, Fortran order, dtype code, payload offset) of a header as numpy writes it, else None."""
    if head[6:7] == b"\x01":
        length, start = int.from_bytes(head[8:10], "little"), 10
    elif head[6:7] in (b"\x02", b"\x03"):
        length, start = int.from_bytes(head[8:12], "little"), 12
    else:
        return None
    match = _NPY_HEADER.fullmatch(head, start, start + length)
    if match is None:
        return None
    shape = tuple(int(size) for size in match.group(4).split(b",") if size.strip())
    return shape, match.group(3) == b"True", match.group(2).decode(), start + length


def _npy_layout(path: str, handle, head: bytes = b"") -> tuple[str, tuple[int, ...], int]:
    parsed = _npy_header(head)
    if parsed is not None:
        shape, fortran, code, offset = parsed
    else:
        handle.seek(0)
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle, max_header_size=1 << 16)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle, max_header_size=1 << 16)
        else:
            raise _Declined
        if dtype.str[0] == ">":
            raise _Declined
        code, offset = dtype.str[1:], handle.tell()
    name = NUMPY_CODES.get(code)
    if name not in RAW_DTYPES:  # structured dtypes have no code
        raise _Declined
    shape = tuple(int(size) for size in shape)
    strides = None
    if fortran and len(shape) > 1:  # column-major: the first index varies fastest
        strides = tuple(math.prod(shape[:axis]) for axis in range(len(shape)))
    return name, shape, offset, dense_strides(shape, strides) if strides else None


_LAYOUTS = {"atb": _atb_layout, "npy": _npy_layout, "torch": bare_tensor_layout, "zip": bare_tensor_layout}
"""Format -> (path, open file, its first bytes) -> (dtype name, shape, payload offset, dense strides or
None); raising declines the file."""
