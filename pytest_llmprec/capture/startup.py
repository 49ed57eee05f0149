"""The child side of ``llmprec dump --exec``: torch's global module hooks feeding a ``Dumper``.

The root is the first module whose forward is called while no other module's forward is running
(and whose class name matches ``--root`` if given); it is then dumped exactly as
``register_hook(root, config)`` would. Top-level calls of other modules are not dumped. With
``--replay`` the root's modules also get pre-hooks that see keyword arguments, which the replay
needs; the root's first call runs before they exist and is not replayed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from .config import DumpConfig, parse_token_range, wildcard_pattern
from .dumper import Dumper
from .exec import CONFIG_ENV
from .function_modules import is_function_module


class GlobalCapture:
    """Dumps the forward calls of the first top-level module (matching ``root_class``) of the process."""

    def __init__(
        self,
        config: DumpConfig,
        root_class: str | None = None,
        timestamp: str | None = None,
        seen_file: str | None = None,
    ) -> None:
        self.config = config
        self.seen_file = seen_file
        """Where the class names of top-level modules not dumped are appended (for ``llmprec dump``)."""
        self.timestamp = timestamp
        self.dumper: Dumper | None = None
        self.root_class = root_class
        self._root_pattern = None if root_class is None else wildcard_pattern(root_class)
        self._depth = threading.local()
        self._skipped: set[str] = set()
        register_module_forward_pre_hook(self._pre_hook)
        register_module_forward_hook(self._post_hook, with_kwargs=True, always_call=True)

    def _pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if is_function_module(module):
            return
        depth = getattr(self._depth, "value", 0)
        self._depth.value = depth + 1
        if self.dumper is not None and self.dumper.pid != os.getpid():
            self.dumper = None  # a forked child dumps on its own
        if depth == 0:
            self._top_level_call(module)
        if self.dumper is not None:
            self.dumper.on_pre(module, args, None)

    def _post_hook(self, module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        # torch passes (kwargs, output), or only (output,) when forward raised
        if is_function_module(module):
            return
        self._depth.value = max(getattr(self._depth, "value", 1) - 1, 0)
        kwargs, output = rest if len(rest) == 2 else ({}, rest[-1])
        if self.dumper is not None:
            self.dumper.on_post(module, kwargs, output)

    def _top_level_call(self, module: nn.Module) -> None:
        """Take ``module`` as the root if none is chosen yet and it matches; else say it is not dumped."""
        class_name = type(module).__name__
        if self.dumper is None and (self._root_pattern is None or self._root_pattern.fullmatch(class_name)):
            self.dumper = Dumper(module, self.config, self.timestamp)
            print(f"llmprec dump: dumping {class_name} to {self.dumper.dir}", file=sys.stderr)
            if self.config.golden_inputs is not None:
                self._hand_over_kwargs(self.dumper)
        elif (self.dumper is None or module is not self.dumper.root) and class_name not in self._skipped:
            self._skipped.add(class_name)
            root = type(self.dumper.root).__name__ if self.dumper else f"--root {self.root_class}"
            print(f"llmprec dump: not dumping top-level {class_name} (dumping {root})", file=sys.stderr)
            if self.seen_file is not None:
                with open(self.seen_file, "a", encoding="utf-8") as handle:
                    handle.write(class_name + "\n")

    @staticmethod
    def _hand_over_kwargs(dumper: Dumper) -> None:
        """Per-module pre-hooks that give the dumper each call's keyword arguments before it runs
        (torch's global pre-hooks do not see them), for the replay; from the root's next call on."""

        def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            dumper.on_call_kwargs(module, args, kwargs)

        for module in dumper.root.modules():
            module.register_forward_pre_hook(pre_hook, with_kwargs=True)


def install_from_environment() -> GlobalCapture:
    """Install the global hooks described by ``$LLMPREC_DUMP_CONFIG`` (set by ``llmprec dump``)."""
    spec = json.loads(os.environ[CONFIG_ENV])
    config = DumpConfig(token_range=parse_token_range(spec["tokens"]), **spec["config"])
    return GlobalCapture(config, spec.get("root"), spec.get("timestamp"), spec.get("seen_file"))
