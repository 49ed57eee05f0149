"""``register_hook(model, DumpConfig(...))``: dump a model's tensors through per-module forward hooks."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from torch import nn

from .config import DumpConfig
from .dumper import Dumper
from .writer import DumpWriteError


class DumpHandle:
    """What ``register_hook`` returns: ``remove()`` (also on leaving a ``with`` block) stops dumping
    and flushes the files; writer errors are raised there."""

    def __init__(self, dumper: Dumper, hooks: list[Any]) -> None:
        self._dumper = dumper
        self._hooks = hooks

    @property
    def dump_dir(self) -> Path:
        """The ``torch_tensors/{device}_{pid}`` folder of this dump."""
        return self._dumper.dir

    @property
    def root_dir(self) -> Path:
        """The ``msit_dump_{TS}`` folder of this dump."""
        return self._dumper.root_dir

    def flush(self) -> None:
        """Wait until every tensor dumped so far is on disk."""
        self._dumper.flush()

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._dumper.close()

    def __enter__(self) -> DumpHandle:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc is None:
            self.remove()
            return
        try:
            self.remove()
        except DumpWriteError as error:
            warnings.warn(str(error), stacklevel=2)


def register_hook(model: nn.Module, config: DumpConfig) -> DumpHandle:
    """Dump ``model``'s tensors per ``config``; each call starts its own ``msit_dump_{TS}`` dump."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, DumpConfig):
        raise ValueError(f"config must be a DumpConfig, got {type(config).__name__}")
    dumper = Dumper(model, config)

    def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        dumper.on_pre(module, args, kwargs)

    def post_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        dumper.on_post(module, kwargs, output)

    hooks = []
    for module in model.modules():
        hooks.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        hooks.append(module.register_forward_hook(post_hook, with_kwargs=True, always_call=True))
    return DumpHandle(dumper, hooks)
