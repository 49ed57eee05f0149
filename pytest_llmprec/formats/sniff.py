"""The one table of how tensor files are recognised: by extension, else by their first bytes.

Torch-free; the readers (``registry``) and the raw reader (``raw``) both decide with it.
"""

from __future__ import annotations

import os

SUFFIX_FORMATS = {
    ".pt": "torch",
    ".pth": "torch",
    ".npy": "npy",
    ".npz": "npz",
    ".safetensors": "safetensors",
}
"""Extensions that decide the format by themselves (``.bin`` does not: ATB tensors and
``pytorch_model.bin`` checkpoints share it)."""

ZIP_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
ATB_STARTS = (b"$Version=", b"dtype=", b"format=", b"dims=")
"""The lines an ATB ``.bin`` header may begin with."""

HEAD_BYTES = 16
"""Bytes read from a file's start to recognise it."""


def suffix_format(path: str | os.PathLike[str]) -> str | None:
    """The format the file's extension names, or None."""
    return SUFFIX_FORMATS.get(os.path.splitext(os.fspath(path))[1].lower())


def head_format(head: bytes) -> str | None:
    """``atb``, ``npy``, ``zip`` (a torch checkpoint or an ``.npz``) or ``pickle`` (a legacy torch
    checkpoint: pickle protocol 2 to 5) from a file's first bytes; None when none of them fits
    (safetensors and GE dumps need the file size and header to tell)."""
    if head.startswith(ATB_STARTS):
        return "atb"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    return None
