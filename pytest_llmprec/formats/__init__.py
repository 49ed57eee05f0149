"""Tensor file readers and writers: ATB ``.bin``, GE dumps, torch, NumPy and safetensors files.

``load_tensor`` / ``probe_tensor`` / ``list_members`` work on any of them; the format
modules give the details (header metadata, statistics files, writers for fixtures).
"""

from ._files import DumpFormatWarning
from .atb_bin import AtbTensor, read_atb_bin, read_atb_stats, save_atb_bin
from .device_layouts import nc1hwc0_to_nchw, nchw_to_nc1hwc0, nd_to_nz, nz_to_nd
from .ge_dump import (
    FxFileName,
    GeDump,
    GeFileName,
    GeTensor,
    parse_fx_file_name,
    parse_ge_file_name,
    read_ge_dump,
    write_ge_dump,
)
from .registry import TensorInfo, detect_format, list_members, load_tensor, probe_tensor

__all__ = [
    "AtbTensor",
    "DumpFormatWarning",
    "FxFileName",
    "GeDump",
    "GeFileName",
    "GeTensor",
    "TensorInfo",
    "detect_format",
    "list_members",
    "load_tensor",
    "nc1hwc0_to_nchw",
    "nchw_to_nc1hwc0",
    "nd_to_nz",
    "nz_to_nd",
    "parse_fx_file_name",
    "parse_ge_file_name",
    "probe_tensor",
    "read_atb_bin",
    "read_atb_stats",
    "read_ge_dump",
    "save_atb_bin",
    "write_ge_dump",
]
