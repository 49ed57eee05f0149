"""Layout detection and :func:`load_dump`, the entry point that indexes any supported dump."""

from __future__ import annotations

import os

from ..errors import DumpFormatError
from . import atb_dump, files, logits, manual, msprobe, torch_dump, torchair
from .base import Dump
from .layouts import layout_of, register_layout, registered_layouts

for _layout in (
    msprobe.LAYOUT,
    manual.LAYOUT,
    torch_dump.LAYOUT,
    atb_dump.LAYOUT,
    logits.LAYOUT,
    torchair.GE_LAYOUT,
    torchair.FX_LAYOUT,
    files.LAYOUT,
):
    register_layout(_layout)

_MARKER_FILES = {"dump.json", "model_tree.json", "metadata.json"}
"""Files that stand for their folder when a path names them."""


def dump_kinds() -> tuple[str, ...]:
    """The kinds of dump ``load_dump`` reads, in detection order."""
    return tuple(layout.kind for layout in registered_layouts())


def _normalise(path: str | os.PathLike[str]) -> str:
    path = os.path.abspath(path)
    if os.path.basename(path) in _MARKER_FILES and os.path.isfile(path):
        return os.path.dirname(path)
    return path


def detect_kind(path: str | os.PathLike[str]) -> str | None:
    """The layout of the dump ``path`` is in (or is), or None."""
    path = _normalise(path)
    return next((layout.kind for layout in registered_layouts() if layout.locate(path) is not None), None)


def load_dump(path: str | os.PathLike[str], *, kind: str | None = None) -> Dump:
    """Index the dump at ``path`` (a dump root, an inner folder or one file) without reading tensors.

    ``kind`` forces a layout (one of ``dump_kinds()``: torch atb manual logits ge fx msprobe files).
    A path inside a token folder pins that token (``dump.info["pinned_token"]``). Raises
    :class:`DumpFormatError` when no layout fits; problems inside a recognised dump are listed in
    ``dump.problems``.
    """
    candidates = (layout_of(kind),) if kind is not None else registered_layouts()
    if not os.path.exists(path):
        raise DumpFormatError(path, "no such file or folder")
    path = _normalise(path)
    for layout in candidates:
        location = layout.locate(path)
        if location is not None:
            return layout.index(location)
    if kind is not None:
        raise DumpFormatError(path, f"no {kind} dump here; looked for: {candidates[0].looks_for}")
    looked_for = "; ".join(layout.looks_for for layout in candidates)
    raise DumpFormatError(path, f"no recognisable dump layout; looked for: {looked_for}")
