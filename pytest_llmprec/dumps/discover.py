"""Layout detection and :func:`load_dump`, the entry point that indexes any supported dump."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..errors import DumpFormatError
from . import atb_dump, files, logits, manual, msprobe, torch_dump, torchair
from .base import Dump

_LAYOUTS: dict[str, tuple[Callable[[str], Any], Callable[[Any], Dump], str]] = {
    "msprobe": (msprobe.locate, msprobe.index_msprobe_dump, "msprobe step{N}/rank{R}/dump.json"),
    "manual": (manual.locate, manual.index_manual_dump, "manual dump {pid}_{device}/golden_tensor/"),
    "torch": (
        torch_dump.locate,
        torch_dump.index_torch_dump,
        "msit torch dump (model_tree.json, torch_tensors/{device}_{pid}/)",
    ),
    "atb": (atb_dump.locate, atb_dump.index_atb_dump, "ATB dump msit_dump*/ait_dump* with tensors/"),
    "logits": (logits.locate, logits.index_logits_dump, "logits_{task}_{batch}_{token}.pth files"),
    "ge": (
        torchair.locate_ge,
        torchair.index_ge_dump,
        "GE dump (msit_ge_dump, dynamo_*.txt, GE-named files)",
    ),
    "fx": (torchair.locate_fx, torchair.index_fx_dump, "FX dump (msit_fx_dump, data_dump/{n}/gm_*_dump)"),
    "files": (files.locate, files.index_files, "tensor files (.pt .pth .npy .npz .bin .safetensors)"),
}
"""kind -> (locate, index, what is looked for), in detection order."""

KINDS = tuple(_LAYOUTS)

_MARKER_FILES = {"dump.json", "model_tree.json", "metadata.json"}
"""Files that stand for their folder when a path names them."""


def _normalise(path: str | os.PathLike[str]) -> str:
    path = os.path.abspath(path)
    if os.path.basename(path) in _MARKER_FILES and os.path.isfile(path):
        return os.path.dirname(path)
    return path


def detect_kind(path: str | os.PathLike[str]) -> str | None:
    """The layout of the dump ``path`` is in (or is), or None."""
    path = _normalise(path)
    return next((kind for kind, (locate, _, _) in _LAYOUTS.items() if locate(path) is not None), None)


def load_dump(path: str | os.PathLike[str], *, kind: str | None = None) -> Dump:
    """Index the dump at ``path`` (a dump root, an inner folder or one file) without reading tensors.

    ``kind`` forces a layout: one of ``torch atb manual logits ge fx msprobe files``. A path inside a
    token folder pins that token (``dump.info["pinned_token"]``). Raises :class:`DumpFormatError`
    when no layout fits; problems inside a recognised dump are listed in ``dump.problems``.
    """
    if kind is not None and kind not in _LAYOUTS:
        raise ValueError(f"unknown dump kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not os.path.exists(path):
        raise DumpFormatError(path, "no such file or folder")
    path = _normalise(path)
    for name in (kind,) if kind else KINDS:
        locate, index, _ = _LAYOUTS[name]
        location = locate(path)
        if location is not None:
            return index(location)
    looked_for = [_LAYOUTS[kind][2]] if kind else [what for _, _, what in _LAYOUTS.values()]
    raise DumpFormatError(path, "no recognisable dump layout; looked for: " + "; ".join(looked_for))
