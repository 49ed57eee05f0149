"""Dump folders → :class:`Dump` indexes of :class:`TensorRecord` (no tensor payload is read).

``load_dump(path, kind=None)`` finds the layout (``Layout`` objects in a registry, see
``layouts``) and indexes the dump; torch is not imported for any layout.
"""

from .base import Dump, DumpProblem, TensorRecord, natural_key
from .discover import detect_kind, dump_kinds, load_dump
from .layouts import Layout, layout_of, register_layout, registered_layouts

__all__ = [
    "Dump",
    "DumpProblem",
    "Layout",
    "TensorRecord",
    "detect_kind",
    "dump_kinds",
    "layout_of",
    "load_dump",
    "natural_key",
    "register_layout",
    "registered_layouts",
]
