"""The child side of ``llmprec dump --exec``: torch's global module hooks feeding a ``Dumper``.

The root is the first module whose forward is called while no other module's forward is running
(and whose class name matches ``--root`` if given); it is then dumped exactly as
``register_hook(root, config)`` would. Top-level calls of other modules are not dumped.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from .config import DumpConfig, wildcard_pattern
from .dumper import Dumper

CONFIG_ENV = "LLMPREC_DUMP_CONFIG"


class GlobalCapture:
    """Dumps the forward calls of the first top-level module (matching ``root_class``) of the process."""

    def __init__(
        self, config: DumpConfig, root_class: str | None = None, timestamp: str | None = None
    ) -> None:
        self.config = config
        self.timestamp = timestamp
        self.dumper: Dumper | None = None
        self.root_class = root_class
        self._root_pattern = None if root_class is None else wildcard_pattern(root_class)
        self._depth = threading.local()
        self._skipped: set[str] = set()
        self._hooks = [
            register_module_forward_pre_hook(self._pre_hook),
            register_module_forward_hook(self._post_hook, with_kwargs=True, always_call=True),
        ]

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()

    def _pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        depth = getattr(self._depth, "value", 0)
        self._depth.value = depth + 1
        if self.dumper is not None and self.dumper.pid != os.getpid():
            self.dumper = None  # a forked child dumps on its own
        if depth == 0 and self.dumper is None:
            self._consider_root(module)
        if self.dumper is not None:
            self.dumper.on_pre(module, args, None)

    def _post_hook(self, module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        # torch passes (kwargs, output), or only (output,) when forward raised
        self._depth.value = max(getattr(self._depth, "value", 1) - 1, 0)
        kwargs, output = rest if len(rest) == 2 else ({}, rest[-1])
        if self.dumper is not None:
            self.dumper.on_post(module, kwargs, output)

    def _consider_root(self, module: nn.Module) -> None:
        class_name = type(module).__name__
        if self._root_pattern is None or self._root_pattern.fullmatch(class_name):
            self.dumper = Dumper(module, self.config, self.timestamp)
            print(f"llmprec dump: dumping {class_name} to {self.dumper.dir}", file=sys.stderr)
        elif class_name not in self._skipped:
            self._skipped.add(class_name)
            print(
                f"llmprec dump: not dumping top-level {class_name} (--root {self.root_class})",
                file=sys.stderr,
            )


def install_from_environment() -> GlobalCapture:
    """Install the global hooks described by ``$LLMPREC_DUMP_CONFIG`` (set by ``llmprec dump``)."""
    spec = json.loads(os.environ[CONFIG_ENV])
    return GlobalCapture(DumpConfig(**spec["config"]), spec.get("root"), spec.get("timestamp"))
