"""Golden-input replay at capture: a dumped module call also run on golden's inputs of that call.

``DumpConfig(replay=GOLDEN)`` and ``llmprec dump --exec CMD --replay GOLDEN``. Before a dumped module
runs, each tensor among its arguments is replaced by golden's tensor of the same token, module call
and name (``input_N``, ``kwarg_{name}``, nested ``_i``), cast to the device and dtype of mine, and the
module is called on them; the dumper writes the result as ``replay_output*.pth`` beside my files.
The model's own computation is left as it was: no autograd, the random generators forked, buffers
changed in place restored, every other argument deep-copied. An argument holding tensors that is
not a plain container (a key/value cache) carries my side's history of earlier calls, so such calls
are replayed only in the first forward call, where there is none.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from ..dumps.base import TensorRecord

_SCALARS = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device)


class ReplaySkipped(Exception):
    """Why one module call was not replayed (a message for the dump's summary)."""


class GoldenInputs:
    """The input tensors of a golden torch dump, by rank, token and module call folder."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from ..dumps import load_dump

        dump = load_dump(path, kind="torch")
        self.path = os.fspath(path)
        self._inputs: dict[tuple[Any, ...], dict[str, TensorRecord]] = {}
        for record in dump.records:
            if record.role == "input":
                self._inputs.setdefault((record.rank, record.token, record.node), {})[record.leaf] = record
        if not self._inputs:
            raise ValueError(
                f"replay: the golden dump {self.path} holds no module inputs "
                "(dump it with tensor_part=0 or 2, the default)"
            )
        self.ranks = {rank for rank, _, _ in self._inputs}

    def of_call(self, rank: int | None, token: int, folder: str) -> dict[str, TensorRecord]:
        """Golden's inputs of one call by file stem; the only rank when golden has one."""
        if rank not in self.ranks and len(self.ranks) == 1:
            (rank,) = self.ranks
        found = self._inputs.get((rank, token, folder))
        if found is None:
            raise ReplaySkipped(f"the golden dump has no inputs for token {token} {folder}")
        return found


class _Arguments:
    """My call's arguments rebuilt with golden's tensors in place of mine."""

    def __init__(self, golden: dict[str, TensorRecord]) -> None:
        self.golden = golden
        self.memo: dict[int, Any] = {}
        self.used: set[str] = set()

    def rebuild(self, stem: str, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value if value.device.type == "meta" else self._golden_tensor(stem, value)
        if isinstance(value, _SCALARS) or callable(value):
            return value
        if type(value) in (tuple, list):
            return type(value)(self.rebuild(f"{stem}_{i}", item) for i, item in enumerate(value))
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
            return type(value)(*(self.rebuild(f"{stem}_{i}", item) for i, item in enumerate(value)))
        if type(value) is dict:
            return {key: self.rebuild(f"{stem}_{i}", item) for i, (key, item) in enumerate(value.items())}
        if isinstance(value, (tuple, list, Mapping)):
            raise ReplaySkipped(f"{stem} is a {type(value).__name__}, which replay cannot rebuild")
        return copy.deepcopy(value, self.memo)

    def holds_state(self) -> bool:
        """Whether a deep-copied argument held tensors (state such as a key/value cache)."""
        return any(isinstance(item, torch.Tensor) for item in self.memo.values())

    def _golden_tensor(self, stem: str, mine: torch.Tensor) -> torch.Tensor:
        record = self.golden.get(stem)
        if record is None:
            raise ReplaySkipped(f"the golden dump has no {stem}")
        golden = record.load()
        if tuple(golden.shape) != tuple(mine.shape):
            raise ReplaySkipped(
                f"{stem}: golden's shape {tuple(golden.shape)} differs from mine {tuple(mine.shape)}"
            )
        self.used.add(stem)
        return golden.to(device=mine.device, dtype=mine.dtype)


def replay_call(
    module: nn.Module,
    golden: dict[str, TensorRecord],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first_call: bool,
) -> Any:
    """``module`` called on golden's tensors in place of the tensors of ``args``/``kwargs``; raises
    ``ReplaySkipped`` when that cannot be done faithfully. The model's state is left as it was."""
    arguments = _Arguments(golden)
    replay_args = tuple(arguments.rebuild(f"input_{i}", arg) for i, arg in enumerate(args))
    replay_kwargs = {name: arguments.rebuild(f"kwarg_{name}", value) for name, value in kwargs.items()}
    if arguments.holds_state() and not first_call:
        raise ReplaySkipped(
            "an argument holds state from earlier calls (a key/value cache): replayed in the first "
            "forward call only"
        )
    if not arguments.used:
        raise ReplaySkipped("the call has no tensor inputs to replace")
    devices = _accelerators(args, kwargs)
    with ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        for device_type, indices in devices.items():
            stack.enter_context(torch.random.fork_rng(devices=indices, device_type=device_type))
        if not devices:
            stack.enter_context(torch.random.fork_rng(devices=[]))
        buffers = [(buffer, buffer._version, buffer.clone()) for buffer in module.buffers()]
        try:
            return module(*replay_args, **replay_kwargs)
        except ReplaySkipped:
            raise
        except Exception as error:
            raise ReplaySkipped(f"the module raised {error!r} on golden's inputs") from error
        finally:
            for buffer, version, saved in buffers:
                if buffer._version != version:
                    buffer.copy_(saved)


def _accelerators(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, list[int]]:
    """The accelerator devices (type → indices) of the call's tensors, for ``fork_rng``."""
    from .tensors import input_leaves

    found: dict[str, set[int]] = {}
    for _, tensor in input_leaves(args, kwargs):
        device = tensor.device
        if device.type not in ("cpu", "meta"):
            found.setdefault(device.type, set()).add(device.index or 0)
    return {device_type: sorted(indices) for device_type, indices in found.items()}
