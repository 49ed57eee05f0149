"""The node sidecar of ``fx_dump_backend``: per FX token folder, what the ``.npy`` files cannot say.

FX dump files hold tensors only (bfloat16 and float8 saved as float32). For every token folder
``msit_fx_dump/{rank}/{model}/{token}/`` the backend writes ``msit_fx_nodes/{rank}/{model}/{token}.json``
beside ``msit_fx_dump`` (outside it, so readers of the FX layout see only their ``.npy`` files)::

    {"format": "llmprec-fx-nodes", "version": 1,
     "nodes": {"mm-aten.mm.default": {"target": "aten.mm.default",
                                      "args": [{"tensor": 0}, {"tensor": 1}], "kwargs": {},
                                      "inputs": ["torch.bfloat16", "torch.bfloat16"],
                                      "outputs": ["torch.bfloat16"]}}}

``nodes`` is keyed by the file names' op key (``{node}-{target}``); ``args``/``kwargs`` are the
call's arguments with each tensor replaced by ``{"tensor": i}`` (``i`` = the ``INPUT.{i}`` file);
``inputs``/``outputs`` the ORIGINAL dtype of each ``INPUT.{i}``/``OUTPUT.{i}`` tensor. Values JSON has
no form for: ``{"dtype": "torch.float32"}``, ``{"device": "cpu"}``, ``{"torch": "torch.contiguous_format"}``
(layouts, memory formats), ``{"float": "inf"}`` (non-finite floats), ``{"unknown": repr}``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

FORMAT = "llmprec-fx-nodes"
VERSION = 1
NODES_FOLDER = "msit_fx_nodes"
FX_FOLDER = "msit_fx_dump"
SIZE_LIMIT = 1 << 28
"""Sidecars above this size are refused."""


class UnknownArgument(ValueError):
    """An argument the sidecar recorded only by its repr."""


def sidecar_path(token_folder: str | os.PathLike[str]) -> Path | None:
    """The sidecar of an FX token folder (``.../msit_fx_dump/.../{token}``); None outside ``msit_fx_dump``."""
    folder = Path(os.path.abspath(token_folder))
    parts = folder.parts
    if FX_FOLDER not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index(FX_FOLDER)
    relative = parts[at + 1 :]
    if not relative:
        return None
    return Path(*parts[:at], NODES_FOLDER, *relative[:-1], f"{relative[-1]}.json")


def encode_call(args: Any, kwargs: dict[str, Any]) -> tuple[Any, Any, int]:
    """(args, kwargs, tensor count) in sidecar form; tensors numbered in ``tree_leaves`` order."""
    counter = [0]
    return _encode(list(args), counter), {k: _encode(v, counter) for k, v in kwargs.items()}, counter[0]


def _encode(value: Any, counter: list[int]) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        counter[0] += 1
        return {"tensor": counter[0] - 1}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(item, counter) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {"dict": {key: _encode(item, counter) for key, item in value.items()}}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value)}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, (torch.layout, torch.memory_format)):
        return {"torch": str(value)}
    return {"unknown": repr(value)[:200]}


def decode_value(value: Any, tensors: list[Any]) -> Any:
    """The Python value of a sidecar argument, with ``{"tensor": i}`` taken from ``tensors``.

    Raises ``UnknownArgument`` for an argument recorded only by its repr, ``ValueError`` for a
    malformed entry or a tensor index out of range.
    """
    import torch

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode_value(item, tensors) for item in value]
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"malformed argument {value!r}")
    ((kind, payload),) = value.items()
    if kind == "tensor":
        if not isinstance(payload, int) or not 0 <= payload < len(tensors):
            raise ValueError(f"tensor index {payload!r} out of range (the op has {len(tensors)} tensors)")
        return tensors[payload]
    if kind == "dict" and isinstance(payload, dict):
        return {key: decode_value(item, tensors) for key, item in payload.items()}
    if kind == "float" and payload in ("inf", "-inf", "nan"):
        return float(payload)
    if kind == "dtype":
        return _torch_attribute(payload, torch.dtype)
    if kind == "device":
        return torch.device(str(payload))
    if kind == "torch":
        return _torch_attribute(payload, (torch.layout, torch.memory_format))
    if kind == "unknown":
        raise UnknownArgument(f"argument {payload} was not recorded")
    raise ValueError(f"malformed argument {value!r}")


def _torch_attribute(name: Any, kinds: Any) -> Any:
    import torch

    text = str(name)
    found = getattr(torch, text.removeprefix("torch."), None) if text.startswith("torch.") else None
    if not isinstance(found, kinds):
        raise ValueError(f"unknown torch value {text!r}")
    return found


def sidecar_text(nodes: dict[str, dict[str, Any]]) -> str:
    """The JSON text of a sidecar holding ``nodes``."""
    return json.dumps({"format": FORMAT, "version": VERSION, "nodes": nodes}, allow_nan=False)


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The ``nodes`` of a sidecar; ``ValueError`` naming the file when it is not one."""
    size = os.stat(path).st_size
    if size > SIZE_LIMIT:
        raise ValueError(f"{path}: sidecar of {size} bytes exceeds the {SIZE_LIMIT}-byte limit")
    with open(path, "rb") as handle:
        try:
            data = json.loads(handle.read())
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("nodes"), dict):
        raise ValueError(f"{path}: not an {FORMAT} sidecar")
    nodes = data["nodes"]
    if not all(isinstance(node, dict) for node in nodes.values()):
        raise ValueError(f"{path}: every node entry must be an object")
    return nodes
