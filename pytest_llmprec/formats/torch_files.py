"""``torch.save`` files (``.pt``/``.pth``), loaded only with ``weights_only=True``.

A file holding one bare dense tensor (what dumps hold) is memory-mapped copy-on-write from the
layout the torch-free reader (``torch_zip``) finds, without torch's unpickler (about 0.6 ms less a
file). Any other zip-format checkpoint is loaded with ``mmap=True`` when its storage records are
intact (torch does not check them when it maps them); otherwise, and for a legacy (pickle protocol
2) file, it is read whole and torch checks every record. Containers (dicts, lists, tuples of
tensors, nested) are addressed by member paths such as ``"weight"``, ``"0"`` or ``"layers.0.weight"``.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from ..dtypes import dtype_facts
from ..errors import DumpFormatError
from . import sniff
from ._files import PathLike, checked_size, read_bytes
from ._payloads import map_bytes, view_as
from .raw import HEAD_READ
from .torch_zip import bare_tensor_layout, storage_records_intact

_MISSING = object()


def _refusal_detail(message: str) -> str:
    """The specific reason in torch's weights-only error message, without its advice paragraphs."""
    paragraphs = [p.strip() for p in message.split("\n\n") if p.strip()]
    if len(paragraphs) < 3:
        return message.strip()
    return " ".join(paragraphs[1:-1])


def load_object(path: PathLike) -> Any:
    """Whatever the file holds, loaded with ``weights_only=True`` onto the CPU."""
    checked_size(path)
    kind = sniff.head_format(read_bytes(path, sniff.HEAD_BYTES))
    zipped = kind == "zip"
    if not zipped and kind != "pickle":
        raise DumpFormatError(path, "is not a torch file: neither a zip archive nor a pickle (protocol 2+)")
    try:
        mmap = zipped and storage_records_intact(path)  # else torch reads and checks each record
        return torch.load(os.fspath(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise DumpFormatError(
            path,
            f"refused: torch.load(weights_only=True) rejected it ({_refusal_detail(str(exc))}); "
            "loading it with full unpickling could execute code from the file, so that is never done",
        ) from None
    except Exception as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DumpFormatError(path, f"cannot be read as a torch file: {first_line}") from None


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts/lists/tuples, with its member path (``""`` for a bare tensor)."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from iter_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from iter_tensors(value, f"{prefix}.{index}" if prefix else str(index))


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = ", ".join(repr(k) for k in list(obj)[:5])
        return (
            f"a {type(obj).__name__} with keys {keys}{', ...' if len(obj) > 5 else ''}"
            if obj
            else "an empty dict"
        )
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items without tensors"
    return f"a {type(obj).__name__}"


def _lookup(obj: Any, member: str) -> Any:
    """Follow a dotted member path; dict keys may contain dots themselves (longest key wins)."""
    if member == "":
        return obj
    if isinstance(obj, Mapping):
        keys = {str(key): key for key in obj}
        cuts = [len(member)] + [i for i in range(len(member) - 1, 0, -1) if member[i] == "."]
        for cut in cuts:
            head = member[:cut]
            if head in keys:
                found = _lookup(obj[keys[head]], member[cut + 1 :])
                if found is not _MISSING:
                    return found
    elif isinstance(obj, (list, tuple)):
        head, _, rest = member.partition(".")
        if head.isdigit() and int(head) < len(obj):
            return _lookup(obj[int(head)], rest)
    return _MISSING


def select_tensor(path: PathLike, obj: Any, member: str | None) -> torch.Tensor:
    """The tensor ``member`` names in a loaded object, or its only tensor when ``member`` is None."""
    if member is None:
        found = list(iter_tensors(obj))
        if len(found) == 1:
            return found[0][1].detach()
        if not found:
            raise DumpFormatError(path, f"holds no tensor (found {_describe(obj)})")
        names = ", ".join(name for name, _ in found)
        raise DumpFormatError(path, f"holds {len(found)} tensors; choose a member: {names}")
    value = _lookup(obj, member)
    if isinstance(value, torch.Tensor):
        return value.detach()
    if value is _MISSING:
        names = ", ".join(name for name, _ in iter_tensors(obj)) or "none"
        raise DumpFormatError(path, f"has no member {member!r}; tensor members: {names}")
    raise DumpFormatError(path, f"member {member!r} is {_describe(value)}, not a tensor")


def load_torch(path: PathLike, member: str | None) -> torch.Tensor:
    if member is None:
        tensor = _mapped_bare_tensor(path)
        if tensor is not None:
            return tensor
    return select_tensor(path, load_object(path), member)


def _mapped_bare_tensor(path: PathLike) -> torch.Tensor | None:
    """The one bare dense tensor of a zip-format file, mapped copy-on-write; None for any other file
    (``load_object`` then loads it, or explains why it cannot)."""
    try:
        with open(path, "rb") as handle:
            dtype, shape, start, strides = bare_tensor_layout(os.fspath(path), handle, handle.read(HEAD_READ))
            size = os.fstat(handle.fileno()).st_size
    except Exception:  # whatever the content: torch.load reads it again and explains the problem
        return None
    count = math.prod(shape)
    nbytes = count * dtype_facts(dtype).itemsize
    if start + nbytes > size:
        return None
    flat = view_as(map_bytes(path, start, nbytes), getattr(torch, dtype.removeprefix("torch.")), (count,))
    return flat.reshape(shape) if strides is None else flat.as_strided(shape, strides)


def torch_members(path: PathLike) -> list[str]:
    """Member paths of every tensor in the file; ``[]`` for a file holding one bare tensor."""
    return [name for name, _ in iter_tensors(load_object(path)) if name]
