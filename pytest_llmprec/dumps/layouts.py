"""The dump layout registry: each layout says how to find its dump from a path and how to index it.

``load_dump`` tries the registered layouts in order; the built-in ones are registered by
``discover``. A layout for another runtime plugs in with ``register_layout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import Dump


@dataclass(frozen=True)
class Layout:
    """A dump layout: ``locate(path)`` returns where its dump is (a location the layout defines) or
    None; ``index(location)`` builds the ``Dump``; ``looks_for`` describes it for error messages."""

    kind: str
    looks_for: str
    locate: Callable[[str], Any]
    index: Callable[[Any], Dump]


_LAYOUTS: list[Layout] = []


def register_layout(layout: Layout, *, before: str | None = None) -> None:
    """Add ``layout`` to the detection order, at the end or before the layout of kind ``before``;
    a layout of the same kind is replaced."""
    _LAYOUTS[:] = [known for known in _LAYOUTS if known.kind != layout.kind]
    kinds = [known.kind for known in _LAYOUTS]
    if before is not None and before not in kinds:
        raise ValueError(f"no layout {before!r} to insert before; known: {', '.join(kinds)}")
    _LAYOUTS.insert(kinds.index(before) if before else len(_LAYOUTS), layout)


def registered_layouts() -> tuple[Layout, ...]:
    """The layouts in detection order."""
    return tuple(_LAYOUTS)


def layout_of(kind: str) -> Layout:
    """The layout named ``kind``; ``ValueError`` listing the known kinds otherwise."""
    for layout in _LAYOUTS:
        if layout.kind == kind:
            return layout
    raise ValueError(f"unknown dump kind {kind!r}; expected one of {', '.join(k.kind for k in _LAYOUTS)}")
