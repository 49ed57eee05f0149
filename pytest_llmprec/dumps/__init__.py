"""Dump folders → :class:`Dump` indexes of :class:`TensorRecord` (no tensor payload is read)."""

from .atb_dump import load_atb_dump
from .base import Dump, DumpProblem, TensorRecord, natural_key
from .discover import KINDS, detect_kind, load_dump
from .files import load_files
from .logits import load_logits_dump
from .manual import load_manual_dump
from .msprobe import load_msprobe_dump
from .torch_dump import load_torch_dump
from .torchair import load_fx_dump, load_ge_dump

__all__ = [
    "KINDS",
    "Dump",
    "DumpProblem",
    "TensorRecord",
    "detect_kind",
    "load_atb_dump",
    "load_dump",
    "load_files",
    "load_fx_dump",
    "load_ge_dump",
    "load_logits_dump",
    "load_manual_dump",
    "load_msprobe_dump",
    "load_torch_dump",
    "natural_key",
]
