"""The dump index: what every layout reader produces and the matcher consumes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..formats import TensorInfo
    from ..formats.raw_tensor import RawTensor

ROLES = ("input", "output", "weight", "tensor")

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs by value: ``outtensor2`` before ``outtensor10``."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(text))


@dataclass(frozen=True, slots=True)
class TensorRecord:
    """One dumped tensor: where it is and what it belongs to; the payload is read on demand.

    ``node`` is the producing module or operator (e.g. ``root.model.layers.3.mlp``),
    ``leaf`` the tensor's name within the node (e.g. ``output_0``, ``after/outtensor0``),
    ``member`` the entry inside a container file (npz array, safetensors name, GE
    ``inputs.0``) or None for single-tensor files. ``order`` is the execution order within
    the dump (monotone over tokens), used to find the first divergence. ``original_dtype`` is
    the tensor's dtype when the file stores it in another (``fx_dump_backend`` saves bfloat16 as
    float32 ``.npy`` and records the original in its sidecar); None when the file's dtype is it.
    """

    path: str
    token: int | str
    node: str
    leaf: str
    role: str = "output"
    index: int = 0
    node_type: str = ""
    order: int = 0
    rank: int | None = None
    member: str | None = None
    original_dtype: str | None = field(default=None, kw_only=True)

    def load(self) -> torch.Tensor:
        from ..formats import load_tensor

        return load_tensor(self.path, member=self.member)

    def load_raw(self) -> RawTensor | None:
        """The payload read without torch (``formats.read_raw``), or None when ``load`` is needed."""
        from ..formats.raw import read_raw

        return read_raw(self.path, self.member)

    def probe(self) -> TensorInfo:
        """dtype, shape and storage format, read from the file's header (not its payload)."""
        from ..formats import probe_tensor

        return probe_tensor(self.path, member=self.member)

    def describe(self) -> str:
        return self.path if self.member is None else f"{self.path}[{self.member}]"


@dataclass(frozen=True)
class DumpProblem:
    """An entry of a dump that could not be indexed, kept for the report."""

    path: str
    message: str


@dataclass
class Dump:
    """An index of the tensors of one dump folder (or file), in execution order."""

    kind: str
    root: Path
    records: list[TensorRecord]
    problems: list[DumpProblem] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    replays: dict[tuple[Any, ...], TensorRecord] = field(default_factory=dict)
    """Outputs of modules replayed on golden's inputs at capture (``replay_output*.pth``), by
    ``(token, node, output leaf, rank)``; kept apart from ``records``, which are compared."""

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[TensorRecord]:
        return iter(self.records)

    def tokens(self) -> list[int | str]:
        """Token ids present, numbers first in numeric order, then names."""
        seen = {record.token for record in self.records}
        return sorted(seen, key=lambda t: (isinstance(t, str), t if isinstance(t, int) else natural_key(t)))
