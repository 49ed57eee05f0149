"""TorchAir (Ascend torch.compile backend) dump configurations (msit-spec §2.5.1).

``get_ge_dump_config`` makes GE dump its graphs and op tensors into ``{dump_path}/msit_ge_dump``;
``get_fx_dump_config`` makes torchair dump the FX graph's aten tensors as ``.npy`` into
``{dump_path}/msit_fx_dump``. torchair (which needs torch_npu) is imported only when called.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Sequence
from typing import Any

from ..errors import LlmprecError

GE_DUMP_DIR = "msit_ge_dump"
FX_DUMP_DIR = "msit_fx_dump"
DUMP_MODES = ("input", "output", "all")


class MissingDependencyError(LlmprecError, ImportError):
    """An optional package the called function needs is not installed."""


def _import_torchair() -> Any:
    try:
        return importlib.import_module("torchair")
    except ImportError as error:
        missing = getattr(error, "name", None) or "torchair"
        package = "torch_npu" if missing.split(".")[0] == "torch_npu" else "torchair"
        raise MissingDependencyError(
            f"TorchAir dump configs need the '{package}' package (torchair, Ascend's torch.compile backend, "
            f"runs on torch_npu); it could not be imported: {error}. Without an NPU, use "
            "pytest_llmprec.capture.fx_dump_backend for FX-level dumps."
        ) from error


def _dump_dir(dump_path: str | os.PathLike[str], name: str) -> str:
    path = os.path.abspath(os.path.join(os.fspath(dump_path), name))
    os.makedirs(path, exist_ok=True)
    if os.listdir(path):
        warnings.warn(
            f"{path} is not empty; the new dump files will be mixed with the old ones", stacklevel=3
        )
    return path


def get_ge_dump_config(
    dump_path: str | os.PathLike[str] = "",
    dump_mode: str = "all",
    fusion_switch_file: str | os.PathLike[str] | None = None,
    dump_token: Sequence[int] | None = None,
    dump_layer: Sequence[str] | None = None,
    compiler_config: Any = None,
) -> Any:
    """A torchair ``CompilerConfig`` dumping GE graphs (text) and op tensors to ``{dump_path}/msit_ge_dump``.

    ``dump_mode``: ``input``, ``output`` or ``all``; ``fusion_switch_file``: a GE fusion switch
    JSON (e.g. all fusion off); ``dump_token``: token ids to dump (GE ``dump_step``);
    ``dump_layer``: GE op names to dump. ``compiler_config`` is updated in place if given.
    """
    if dump_mode not in DUMP_MODES:
        raise ValueError(f"dump_mode must be one of {DUMP_MODES}, got {dump_mode!r}")
    if fusion_switch_file is not None and not os.path.isfile(fusion_switch_file):
        raise ValueError(f"fusion_switch_file {os.fspath(fusion_switch_file)!r} is not a file")
    if dump_token is not None and (
        isinstance(dump_token, str)
        or any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in dump_token)
    ):
        raise ValueError(f"dump_token must be a list of token ids (ints >= 0), got {dump_token!r}")
    if dump_layer is not None and (
        isinstance(dump_layer, str) or any(not isinstance(name, str) or not name for name in dump_layer)
    ):
        raise ValueError(f"dump_layer must be a list of op names, got {dump_layer!r}")
    torchair = _import_torchair()
    config = torchair.CompilerConfig() if compiler_config is None else compiler_config
    path = _dump_dir(dump_path, GE_DUMP_DIR)
    config.debug.graph_dump.type = "txt"
    _set_if_supported(config.debug.graph_dump, "path", path)
    if fusion_switch_file is not None:
        config.fusion_config.fusion_switch_file = os.path.abspath(fusion_switch_file)
    config.dump_config.enable_dump = True
    config.dump_config.dump_mode = dump_mode
    config.dump_config.dump_path = path
    if dump_token:
        config.dump_config.dump_step = "|".join(str(token) for token in dump_token)
    if dump_layer:
        config.dump_config.dump_layer = " ".join(dump_layer)
    return config


def get_fx_dump_config(dump_path: str | os.PathLike[str] = "", compiler_config: Any = None) -> Any:
    """A torchair ``CompilerConfig`` that dumps the FX graph's aten inputs/outputs as ``.npy`` into
    ``{dump_path}/msit_fx_dump`` (older torchair versions ignore the path and use ``./data_dump``)."""
    torchair = _import_torchair()
    config = torchair.CompilerConfig() if compiler_config is None else compiler_config
    path = _dump_dir(dump_path, FX_DUMP_DIR)
    config.debug.data_dump.type = "npy"
    _set_if_supported(config.debug.data_dump, "path", path)
    return config


def _set_if_supported(options: Any, name: str, value: Any) -> None:
    """Set an option that only newer torchair versions have."""
    if hasattr(options, name):
        setattr(options, name, value)
    else:
        warnings.warn(
            f"this torchair version has no {name!r} option; its default folder is used", stacklevel=3
        )
