"""Tensor helpers of the dumpers: file stems of nested values, host copies, statistics rows."""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

STATISTICS_HEADER = "NodeName,NodeType,InputOutput,Index,DataType,Shape,Max,Min,Mean,L2Norm\n"
ANALYZE_HEADER = "Node Name,Node Type,Tensor Path,dtype,shape,max,min,variance,mean\n"


def tensor_leaves(stem: str, value: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """``(stem, tensor)`` pairs of a value: a tuple/list (or a mapping's values) adds ``_i`` per level."""
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta":
            yield stem, value
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from tensor_leaves(f"{stem}_{index}", item)
    elif isinstance(value, Mapping):
        for index, item in enumerate(value.values()):
            yield from tensor_leaves(f"{stem}_{index}", item)


def input_leaves(args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> list[tuple[str, torch.Tensor]]:
    """Positional arguments as ``input_i`` (nested ``input_i_j``), keyword ones as ``kwarg_{name}``."""
    leaves = [leaf for index, arg in enumerate(args) for leaf in tensor_leaves(f"input_{index}", arg)]
    for name, value in (kwargs or {}).items():
        leaves.extend(tensor_leaves(f"kwarg_{name}", value))
    return leaves


def output_leaves(output: Any) -> list[tuple[str, torch.Tensor]]:
    """A single tensor as ``output``; a tuple/list (or mapping) as ``output_i`` (nested ``output_i_j``)."""
    return list(tensor_leaves("output", output))


def host_copies(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Private, compact CPU copies (CUDA: asynchronous copies into pinned memory, then one wait)."""
    copies = []
    cuda_devices = set()
    for tensor in tensors:
        tensor = tensor.detach()
        if tensor.device.type == "cpu":
            copies.append(tensor.clone())
        elif tensor.is_cuda:
            host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            host.copy_(tensor, non_blocking=True)
            copies.append(host)
            cuda_devices.add(tensor.device)
        else:
            copies.append(tensor.to("cpu"))
    for device in cuda_devices:
        torch.cuda.current_stream(device).synchronize()
    return copies


class WrittenTensors:
    """The file written for each tensor seen in this token, to find a tensor seen again unchanged.

    A tensor matches an earlier one when it has the same device, dtype, data pointer, shape and
    strides, the earlier tensor is still alive and still at that address, and neither was changed
    in place since (version counter). Only weak references are kept. Tensors without a version
    counter (made under ``torch.inference_mode``) or without plain strided storage never match.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[object, ...], tuple[weakref.ref[torch.Tensor], int, str]] = {}

    @staticmethod
    def _key(tensor: torch.Tensor) -> tuple[object, ...] | None:
        if tensor.layout != torch.strided or tensor.is_inference():
            return None
        return (tensor.device, tensor.dtype, tensor.data_ptr(), tuple(tensor.shape), tensor.stride())

    def path_of(self, tensor: torch.Tensor) -> str | None:
        """The file already holding exactly ``tensor``'s values, or None."""
        key = self._key(tensor)
        entry = None if key is None else self._entries.get(key)
        if entry is None:
            return None
        reference, version, path = entry
        earlier = reference()
        unchanged = (
            earlier is not None
            and earlier.data_ptr() == tensor.data_ptr()
            and earlier._version == version
            and tensor._version == version
        )
        return path if unchanged else None

    def add(self, tensor: torch.Tensor, path: str) -> None:
        key = self._key(tensor)
        if key is not None:
            self._entries[key] = (weakref.ref(tensor), tensor._version, path)

    def clear(self) -> None:
        self._entries.clear()


def tensor_statistics(tensor: torch.Tensor, variance: bool = False) -> list[float]:
    """``[max, min, mean, l2norm]`` (plus the unbiased variance) of the tensor cast to float32."""
    values = tensor.detach()
    values = values if values.layout == torch.strided else values.to_dense()
    values = values.abs() if values.is_complex() else values
    values = values.float()
    count = values.numel()
    if count == 0:
        stats = [math.nan, math.nan, math.nan, 0.0]
        return [*stats, math.nan] if variance else stats
    parts = [values.max(), values.min(), values.mean(), torch.linalg.vector_norm(values)]
    if variance:
        parts.append(values.var() if count > 1 else values.new_tensor(math.nan))
    return torch.stack(parts).tolist()


def shape_text(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def statistics_row(node: str, node_type: str, stem: str, tensor: torch.Tensor, stats: list[float]) -> str:
    """One ``statistics.csv`` line; ``InputOutput``/``Index`` from the file stem as msit derives them."""
    role = "Input" if stem.startswith(("input", "kwarg")) else "Output"
    last = stem.rsplit("_", 1)[-1]
    index = int(last) if "_" in stem and last.isdigit() else 0
    cells = [node, node_type, role, str(index), str(tensor.dtype), shape_text(tensor)]
    return ",".join([_quoted(cell) for cell in cells] + [repr(value) for value in stats[:4]]) + "\n"


def analyze_row(node: str, node_type: str, path: str, tensor: torch.Tensor, stats: list[float]) -> str:
    """One ``tensor_analyze.csv`` line: max, min, variance, mean."""
    maximum, minimum, mean, _, var = stats
    cells = [node, node_type, path, str(tensor.dtype), shape_text(tensor)]
    return (
        ",".join([_quoted(cell) for cell in cells] + [repr(maximum), repr(minimum), repr(var), repr(mean)])
        + "\n"
    )


def _quoted(text: str) -> str:
    if any(char in text for char in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
