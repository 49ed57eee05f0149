"""The tensors inside a module's output (or any nested value), each with a readable name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 16
_PLAIN = (type(None), bool, int, float, complex, str, bytes)


@dataclasses.dataclass
class Leaves:
    """``tensors``: (name, tensor) in order; ``skipped``: why some values were not scanned."""

    tensors: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def _child_name(name: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{name}[{key}]"
    if isinstance(key, str) and key.isidentifier():
        return f"{name}.{key}"
    return f"{name}[{key!r}]"


def named_leaves(value: Any, name: str = "output", is_tensor: Any = None) -> Leaves:
    """The tensors of ``value``: ``output`` for a tensor, ``output[0]`` for tuple/list items,
    ``output.logits`` for mapping keys (``ModelOutput`` included) and dataclass fields.

    ``is_tensor(x)`` decides what a leaf is (default: ``torch.Tensor`` instances). Numbers, strings
    and None hold nothing to scan and are passed over; other objects are listed in ``skipped``.
    """
    if is_tensor is None:
        import torch

        def is_tensor(item: Any) -> bool:
            return isinstance(item, torch.Tensor)

    leaves = Leaves()
    seen: set[int] = set()

    def visit(item: Any, where: str, depth: int) -> None:
        if is_tensor(item):
            leaves.tensors.append((where, item))
            return
        if isinstance(item, _PLAIN):
            return
        if depth >= MAX_DEPTH or id(item) in seen:
            leaves.skipped.append(f"{where}: nested too deeply or contains itself")
            return
        seen.add(id(item))  # the containers being visited: a cycle meets one again
        try:
            if isinstance(item, Mapping):
                for key, child in item.items():
                    visit(child, _child_name(where, key), depth + 1)
            elif isinstance(item, (tuple, list)):
                for index, child in enumerate(item):
                    visit(child, _child_name(where, index), depth + 1)
            elif dataclasses.is_dataclass(item) and not isinstance(item, type):
                for field in dataclasses.fields(item):
                    visit(getattr(item, field.name, None), _child_name(where, field.name), depth + 1)
            else:
                leaves.skipped.append(f"{where}: a {type(item).__name__} is not a tensor, not scanned")
        finally:
            seen.discard(id(item))

    visit(value, name, 0)
    return leaves
