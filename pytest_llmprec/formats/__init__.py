"""Tensor file readers and writers: ATB ``.bin``, GE dumps, torch, NumPy and safetensors files.

``load_tensor`` / ``probe_tensor`` / ``list_members`` work on any of them; the format
modules give the details (header metadata, statistics files, writers for fixtures).
``read_raw`` reads the common dump files without torch. Names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "DumpFormatWarning": "_files",
    "AtbTensor": "atb_bin",
    "read_atb_bin": "atb_bin",
    "read_atb_stats": "atb_header",
    "save_atb_bin": "atb_bin",
    "nc1hwc0_to_nchw": "device_layouts",
    "nchw_to_nc1hwc0": "device_layouts",
    "nd_to_nz": "device_layouts",
    "nz_to_nd": "device_layouts",
    "FxFileName": "torchair_names",
    "GeDump": "ge_dump",
    "GeFileName": "torchair_names",
    "GeGraph": "ge_graph",
    "GeGraphOp": "ge_graph",
    "GeTensor": "ge_dump",
    "parse_fx_file_name": "torchair_names",
    "parse_ge_file_name": "torchair_names",
    "read_ge_dump": "ge_dump",
    "read_ge_graph": "ge_graph",
    "write_ge_dump": "ge_dump",
    "write_ge_graph": "ge_graph",
    "TensorInfo": "registry",
    "detect_format": "registry",
    "list_members": "registry",
    "load_tensor": "registry",
    "probe_tensor": "registry",
    "RawTensor": "raw_tensor",
    "read_raw": "raw",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from ._files import DumpFormatWarning
    from .atb_bin import AtbTensor, read_atb_bin, save_atb_bin
    from .atb_header import read_atb_stats
    from .device_layouts import nc1hwc0_to_nchw, nchw_to_nc1hwc0, nd_to_nz, nz_to_nd
    from .ge_dump import GeDump, GeTensor, read_ge_dump, write_ge_dump
    from .ge_graph import GeGraph, GeGraphOp, read_ge_graph, write_ge_graph
    from .raw import read_raw
    from .raw_tensor import RawTensor
    from .registry import TensorInfo, detect_format, list_members, load_tensor, probe_tensor
    from .torchair_names import FxFileName, GeFileName, parse_fx_file_name, parse_ge_file_name

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
