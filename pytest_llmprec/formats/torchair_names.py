"""GE and FX dump file names (torchair dumps): parsed without torch or protobuf."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GeFileName:
    """The parts of a GE dump file name ``{OpType}.{OpName}.{taskId}.{streamId}.{timestamp}``."""

    op_type: str
    op_name: str
    task_id: int
    stream_id: int
    timestamp: int


def parse_ge_file_name(name: str) -> GeFileName | None:
    """Split a GE dump file name; the op name is everything between the type and the last three numbers.

    None when the name has fewer than five dot-separated parts or the last three are not numbers
    (graph ``.txt``, ``.npy``, ``.bin`` files and the ``.npz`` summaries; strip ``.npz`` first to
    parse a summary's name).
    """
    parts = name.split(".")
    if len(parts) < 5 or not all(part.isdigit() for part in parts[-3:]):
        return None
    return GeFileName(parts[0], ".".join(parts[1:-3]), int(parts[-3]), int(parts[-2]), int(parts[-1]))


@dataclass(frozen=True)
class FxFileName:
    """The parts of an FX dump file name ``{node}-{aten target}.{INPUT|OUTPUT}.{index}.{timestamp}.npy``.

    ``op_key`` (``{node}-{aten target}``) is what GE graphs name in ``_fx_tensor_name``.
    """

    op_key: str
    node: str
    target: str
    role: str
    index: int
    timestamp: int


_FX_NAME = re.compile(
    r"(?P<key>(?P<node>[^-]+)-(?P<target>.+))\.(?P<role>INPUT|OUTPUT)\.(?P<index>\d+)\.(?P<ts>\d+)\.npy"
)


def parse_fx_file_name(name: str) -> FxFileName | None:
    """Split an FX ``.npy`` dump file name (role lower-cased: ``input``/``output``); None if not one."""
    match = _FX_NAME.fullmatch(name)
    if match is None:
        return None
    return FxFileName(
        match["key"],
        match["node"],
        match["target"],
        match["role"].lower(),
        int(match["index"]),
        int(match["ts"]),
    )
