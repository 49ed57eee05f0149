"""Manual dumps: ``dump_data`` saves one golden tensor and records its pairing (msit-spec §2.4).

Layout::

    {output_path}/msit_dump_{TS}/{pid}_{device}/golden_tensor/{token_id}/{data_id}_tensor.pth
    {output_path}/msit_dump_{TS}/{pid}_{device}/golden_tensor/metadata.json
        {"<data_id>": {"<token_id>": ["<golden .pth path>", "<my data path>"], ...}, ...}

Unlike msit, every token of a data_id is kept in ``metadata.json`` (msit keeps the last one).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from ..errors import DumpFormatError
from .config import dump_timestamp
from .writer import save_tensor_atomic, write_text_atomic

_lock = threading.Lock()
_timestamps: dict[tuple[int, str], str] = {}


def _check_id(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def dump_data(
    token_id: int,
    data_id: int,
    golden_data: Any,
    my_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str] = "./",
) -> str:
    """Save ``golden_data`` as the golden tensor ``data_id`` of token ``token_id``, paired with the
    file ``my_path`` (a ``.bin``/``.npy``/``.pth`` of the implementation under test).

    The ``msit_dump_{TS}`` folder is chosen once per process and output path. The tensor is saved
    as a CPU copy; paths in ``metadata.json`` are absolute. Returns the saved ``.pth`` path.
    """
    import torch

    _check_id("token_id", token_id)
    _check_id("data_id", data_id)
    if not isinstance(golden_data, torch.Tensor):
        raise ValueError(f"golden_data must be a torch.Tensor, got {type(golden_data).__name__}")
    if not isinstance(my_path, (str, os.PathLike)) or not os.fspath(my_path):
        raise ValueError(f"my_path must be the path of the data to compare with, got {my_path!r}")
    my_file = os.path.abspath(os.fspath(my_path))
    if not os.path.isfile(my_file) or not os.access(my_file, os.R_OK):
        raise ValueError(f"my_path {my_file!r} is not a readable file")
    output = os.path.abspath(os.fspath(output_path))
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"output_path {output!r} is not a directory")

    device = golden_data.get_device()
    with _lock:
        timestamp = _timestamps.setdefault((os.getpid(), output), dump_timestamp())
        golden_dir = os.path.join(
            output, f"msit_dump_{timestamp}", f"{os.getpid()}_{device}", "golden_tensor"
        )
        token_dir = os.path.join(golden_dir, str(token_id))
        os.makedirs(token_dir, exist_ok=True)
        golden_file = os.path.join(token_dir, f"{data_id}_tensor.pth")
        save_tensor_atomic(golden_file, golden_data.detach().to("cpu", copy=True))
        metadata_file = os.path.join(golden_dir, "metadata.json")
        metadata = _read_metadata(metadata_file)
        metadata.setdefault(str(data_id), {})[str(token_id)] = [golden_file, my_file]
        write_text_atomic(metadata_file, json.dumps(metadata, indent=2))
    return golden_file


def _read_metadata(path: str) -> dict[str, dict[str, list[str]]]:
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, ValueError) as error:
        raise DumpFormatError(path, f"cannot update the manual dump index: {error}") from error
    if not isinstance(metadata, dict):
        raise DumpFormatError(path, "cannot update the manual dump index: not a JSON object")
    return metadata
