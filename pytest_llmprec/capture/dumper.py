"""The dump engine: one ``Dumper`` per dump of one root module (msit-spec §2.3 layout).

Layout written::

    {dump_path}/msit_dump_{TS}/torch_tensors/{device}_{pid}/
        model_tree.json  execution_order.json  weights/root.<param or buffer>.pth
        {token}/{module}[@k]/input_N.pth  kwarg_{name}.pth  output.pth | output_N.pth  statistics.csv
    {dump_path}/msit_dump_{TS}/tensor_analyze.csv

A ``Dumper`` is driven by forward hooks (``on_pre``/``on_post``): the per-module hooks of
``register_hook`` (``hooks.py``) or the global module hooks of ``llmprec dump --exec``
(``startup.py``). Api mode routes torch function calls through a ``TorchFunctionMode``.
Dumps still open at interpreter exit are flushed by an ``atexit`` handler. A forked child
process does not inherit the dumps of its parent (their writer thread does not survive the fork).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..dumps.torch_dump import ORDER_FILE, REPLAY_PREFIX, TREE_FILE, WEIGHTS_FOLDER
from .config import DumpConfig, dump_timestamp
from .tensors import (
    ANALYZE_HEADER,
    STATISTICS_HEADER,
    WrittenTensors,
    analyze_row,
    host_copies,
    input_leaves,
    output_leaves,
    statistics_row,
    tensor_statistics,
)
from .writer import DumpWriteError, DumpWriter

ROOT = "root"
REPLAY_CALLS_SHOWN = 3
_open_dumpers: set[Dumper] = set()
_FUNCTIONAL_APIS = (
    "linear", "embedding", "layer_norm", "rms_norm", "group_norm", "normalize", "dropout", "one_hot",
    "scaled_dot_product_attention", "softmax", "log_softmax", "relu", "gelu", "silu", "sigmoid", "tanh",
    "mish", "softplus", "elu", "leaky_relu", "hardswish", "glu", "conv1d", "conv2d", "pad",
)  # fmt: skip
_TORCH_APIS = (
    "matmul", "mm", "bmm", "baddbmm", "addmm", "einsum", "softmax", "log_softmax", "cat", "stack",
    "exp", "log", "sqrt", "rsqrt", "pow", "square", "erf", "tanh", "sigmoid", "mean", "sum", "cumsum",
    "topk", "argmax", "where", "clamp", "add", "sub", "mul", "div", "masked_fill", "layer_norm",
)  # fmt: skip
DEFAULT_APIS = tuple(
    getattr(namespace, name)
    for namespace, names in ((torch.nn.functional, _FUNCTIONAL_APIS), (torch, _TORCH_APIS))
    for name in names
    if hasattr(namespace, name)
)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's last parameter (or buffer), as msit takes it; CPU if it has none."""
    tensors = list(model.parameters()) or list(model.buffers())
    return tensors[-1].device if tensors else torch.device("cpu")


def device_folder(device: torch.device) -> str:
    """``cpu``, ``cuda0``, ``npu1``: the device with its ``:`` removed."""
    return device.type if device.index is None else f"{device.type}{device.index}"


_SCALARS = (bool, int, float, str, type(None))


def module_attributes(module: nn.Module) -> dict[str, Any]:
    """The module's public scalar attributes (``eps``, ``approximate``, ``in_features`` ...): values
    of ``vars(module)`` that are bool/int/float/str/None or tuples of them; ``training`` left out."""
    found = {}
    for key, value in vars(module).items():
        if key.startswith("_") or key == "training":
            continue
        if isinstance(value, _SCALARS) or (
            isinstance(value, (tuple, list)) and all(isinstance(item, _SCALARS) for item in value)
        ):
            found[key] = list(value) if isinstance(value, (tuple, list)) else value
    return found


def model_tree(module: nn.Module, name: str = ROOT) -> dict[str, Any]:
    """The ``model_tree.json`` node of ``module``: name, class name, scalar ``attributes``, children in
    ``named_children`` order."""
    children = [model_tree(child, f"{name}.{child_name}") for child_name, child in module.named_children()]
    return {
        "name": name,
        "type": type(module).__name__,
        "attributes": module_attributes(module),
        "children": children,
    }


def claim_process_dir(dump_path: str, device: str, timestamp: str | None = None) -> tuple[Path, Path]:
    """Create ``msit_dump_{TS}/torch_tensors/{device}_{pid}``; a taken TS moves on by one second."""
    moment = (
        _dt.datetime.strptime(timestamp, "%Y%m%d_%H%M%S").replace(tzinfo=_dt.timezone.utc)
        if timestamp
        else _dt.datetime.now(_dt.timezone.utc)
    )
    for _ in range(3600):
        root = Path(dump_path) / f"msit_dump_{dump_timestamp(moment)}"
        process_dir = root / "torch_tensors" / f"{device}_{os.getpid()}"
        process_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            process_dir.mkdir()
        except FileExistsError:
            moment += _dt.timedelta(seconds=1)
            continue
        return root, process_dir
    raise RuntimeError(f"no free msit_dump_* folder name under {dump_path}")


@dataclass
class _Call:
    """One forward call of a module (or one api call) within a token."""

    module: nn.Module | None
    name: str
    folder: str
    node_type: str
    dumped: bool
    kwargs_pending: bool = False
    replay_pending: bool = False
    rows: list[str] = field(default_factory=list)
    wrote: bool = False


class _ApiMode(TorchFunctionMode):
    """Routes calls of the dumped torch functions to ``Dumper.api_call`` while a token runs."""

    def __init__(self, dumper: Dumper) -> None:
        super().__init__()
        self.dumper = dumper

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func in self.dumper.apis and not self.dumper.busy:
            return self.dumper.api_call(func, args, kwargs)
        return func(*args, **kwargs)


class Dumper:
    """The state of one dump of one root module: token counter, call stack, folders, writer."""

    def __init__(self, model: nn.Module, config: DumpConfig, timestamp: str | None = None) -> None:
        self.root = model
        self.config = config
        self.pid = os.getpid()
        self._names = {id(module): name for name, module in model.named_modules(prefix=ROOT)}
        device = model_device(model)
        self.device_selected = config.device_id is None or (
            device.type != "cpu" and device.index == config.device_id
        )
        if not self.device_selected:
            warnings.warn(
                f"DumpConfig(device_id={config.device_id}) but the model is on {device}: "
                "nothing will be dumped",
                stacklevel=3,
            )
        self.rank = None if device.type == "cpu" else device.index
        self.root_dir, self.dir = claim_process_dir(config.dump_path, device_folder(device), timestamp)
        self.writer = DumpWriter(config.writer_queue_mb << 20)
        api_mode = "api" in config.mode and not config.dump_last_logits
        self.apis = frozenset(config.api_list or DEFAULT_APIS) if api_mode else frozenset()
        self.busy = False
        self._local = threading.local()
        self._token = -1
        self._active = False
        self._api_mode: _ApiMode | None = None
        self._calls: dict[str, int] = {}
        self._written = WrittenTensors()
        self._order: dict[int, list[str]] = {}
        self._last_output: tuple[_Call, Any] | None = None
        self._closed = False
        self.replayed = 0
        self.replay_skips: dict[str, list[str]] = {}
        """Module calls not replayed on golden's inputs (``token T folder``), by reason."""
        _open_dumpers.add(self)
        if config.dump_weight:
            self._dump_weights()

    # ----- events from the hooks -------------------------------------------------------------
    def on_pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> None:
        """Before ``module.forward``; ``kwargs`` None means they are only known after (global hooks)."""
        if getattr(self._local, "replaying", False):
            return
        stack = self._stack()
        if not stack:
            if module is not self.root or self._closed or os.getpid() != self.pid:
                return
            self._begin_token()
            name = ROOT
        else:
            name = self._names.get(id(module)) or f"{stack[-1].name}.{type(module).__name__}"
        config = self.config
        dumped = (
            self._active
            and "module" in config.mode
            and not config.dump_last_logits
            and self._selects(module, name)
        )
        call = _Call(module, name, self._folder(name), type(module).__name__, dumped)
        stack.append(call)
        if dumped and config.save_inputs:
            call.kwargs_pending = kwargs is None
            self._dump(call, input_leaves(args, kwargs))
        if dumped and config.golden_inputs is not None:
            if kwargs is None:
                call.replay_pending = True
            else:
                self._replay(call, args, kwargs)

    def on_call_kwargs(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The keyword arguments of the call ``on_pre`` saw without them (global hooks): replay it."""
        stack = self._stack()
        if stack and stack[-1].module is module and stack[-1].replay_pending:
            stack[-1].replay_pending = False
            self._replay(stack[-1], args, kwargs)

    def on_post(self, module: nn.Module, kwargs: dict[str, Any], output: Any) -> None:
        """After ``module.forward`` (also after it raised, then ``output`` is None)."""
        if getattr(self._local, "replaying", False):
            return
        stack = self._stack()
        if os.getpid() != self.pid or not any(call.module is module for call in stack):
            return
        while stack[-1].module is not module:
            stack.pop()
        call = stack.pop()
        if call.dumped:
            if call.replay_pending:
                self._skip_replay(call, "its keyword arguments were not seen before it ran")
            if call.kwargs_pending:
                self._dump(call, input_leaves((), kwargs))
            if self.config.save_outputs:
                self._dump(call, output_leaves(output))
            self._finish(call)
        elif self._active and self.config.dump_last_logits and stack and output_leaves(output):
            self._last_output = (call, output)
        if not stack:
            self._end_token()

    def api_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run one intercepted torch function inside the current module, dumping its tensors."""
        stack = self._stack()
        if not stack:
            return func(*args, **kwargs)
        parent = stack[-1]
        api_name = getattr(func, "__name__", type(func).__name__)
        name = f"{parent.name}.{api_name}"
        dumped = self._active and self._selects(parent.module, parent.name)
        call = _Call(None, name, self._folder(name), api_name, dumped)
        if dumped and self.config.save_inputs:
            self._dump(call, input_leaves(args, kwargs))
        output = func(*args, **kwargs)
        if dumped:
            if self.config.save_outputs:
                self._dump(call, output_leaves(output))
            self._finish(call)
        return output

    def _replay(self, call: _Call, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Run ``call``'s module on golden's inputs and queue ``replay_output*.pth``; a call that
        cannot be replayed is noted in ``replay_skips``, the model's forward goes on regardless."""
        from .replay import ReplaySkipped, replay_call

        self._local.replaying = True
        self.busy = True
        try:
            golden = self.config.golden_inputs.of_call(self.rank, self._token, call.folder)
            output = replay_call(call.module, golden, args, kwargs, first_call=self._token == 0)
            leaves = [(f"{REPLAY_PREFIX}{stem}", tensor) for stem, tensor in output_leaves(output)]
            folder = self.dir / str(self._token) / call.folder
            for (stem, _), copy in zip(leaves, host_copies([t for _, t in leaves]), strict=True):
                self.writer.save_tensor(str(folder / f"{stem}.pth"), copy)
            self.replayed += 1
        except ReplaySkipped as skipped:
            self._skip_replay(call, str(skipped))
        except Exception as error:
            self._skip_replay(call, repr(error))
        finally:
            self._local.replaying = False
            self.busy = False

    # ----- tokens ----------------------------------------------------------------------------
    def _begin_token(self) -> None:
        self._token += 1
        self._active = self.device_selected and self.config.selects_token(self._token)
        self._calls = {}
        self._written.clear()
        self._last_output = None
        if self._active and self.apis:
            self._api_mode = _ApiMode(self)
            self._api_mode.__enter__()

    def _end_token(self) -> None:
        if self._api_mode is not None:
            self._api_mode.__exit__(None, None, None)
            self._api_mode = None
        if self._last_output is not None:
            last, output = self._last_output
            self._last_output = None
            call = _Call(None, last.name, last.name, last.node_type, True)
            self._dump(call, output_leaves(output))
            self._finish(call)
        if self._token == 0:
            tree = json.dumps(model_tree(self.root), indent=2)
            self.writer.write_text(str(self.dir / TREE_FILE), tree)

    # ----- writing ---------------------------------------------------------------------------
    def _stack(self) -> list[_Call]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _folder(self, name: str) -> str:
        count = self._calls.get(name, 0)
        self._calls[name] = count + 1
        return name if count == 0 else f"{name}@{count}"

    def _selects(self, module: nn.Module | None, name: str) -> bool:
        config = self.config
        if not config.selects_name(name):
            return False
        return not config.module_list or isinstance(module, config.module_list)

    def _dump(self, call: _Call, leaves: list[tuple[str, torch.Tensor]]) -> None:
        """Dump ``leaves``; a failure is kept for ``close`` instead of breaking the model's forward."""
        if not leaves:
            return
        self.busy = True
        try:
            self._dump_leaves(call, leaves)
        except Exception as error:
            self.writer.record_error(RuntimeError(f"token {self._token}, {call.folder}: {error!r}"))
        finally:
            self.busy = False

    def _dump_leaves(self, call: _Call, leaves: list[tuple[str, torch.Tensor]]) -> None:
        config = self.config
        folder = self.dir / str(self._token) / call.folder
        tensors = [tensor for _, tensor in leaves]
        if config.save_statistics or config.analyze:
            for (stem, tensor), stats in zip(leaves, self._statistics(tensors), strict=True):
                if config.save_statistics:
                    call.rows.append(statistics_row(call.folder, call.node_type, stem, tensor, stats))
                if config.analyze:
                    path = str(folder / f"{stem}.pth")
                    row = analyze_row(call.folder, call.node_type, path, tensor, stats)
                    self.writer.append_text(str(self.root_dir / "tensor_analyze.csv"), row, ANALYZE_HEADER)
        if config.save_tensors:
            self._save(folder, leaves)
        call.wrote = True

    def _save(self, folder: Path, leaves: list[tuple[str, torch.Tensor]]) -> None:
        """Queue the files; a tensor already written in this token unchanged is hard-linked, not copied."""
        new = []
        for stem, tensor in leaves:
            path = str(folder / f"{stem}.pth")
            earlier = self._written.path_of(tensor)
            if earlier is None:
                new.append((path, tensor))
            else:
                self.writer.link(earlier, path)
        for (path, tensor), copy in zip(new, host_copies([tensor for _, tensor in new]), strict=True):
            self.writer.save_tensor(path, copy)
            self._written.add(tensor, path)

    def _statistics(self, tensors: list[torch.Tensor]) -> list[list[float]]:
        return [tensor_statistics(tensor, variance=self.config.analyze) for tensor in tensors]

    def _finish(self, call: _Call) -> None:
        if not call.wrote:
            return
        folder = self.dir / str(self._token) / call.folder
        if call.rows:
            self.writer.write_text(str(folder / "statistics.csv"), STATISTICS_HEADER + "".join(call.rows))
        self._order.setdefault(self._token, []).append(call.folder)

    def _dump_weights(self) -> None:
        """Queue ``weights/root.<name>.pth`` for the selected parameters and buffers (persistent or
        not, e.g. a rotary ``inv_freq``), one copy at a time."""
        tensors = [
            *self.root.named_parameters(prefix=ROOT, remove_duplicate=False),
            *self.root.named_buffers(prefix=ROOT, remove_duplicate=False),
        ]
        written: dict[int, str] = {}  # a tied tensor (lm_head and embedding) is linked, not copied
        for name, tensor in tensors:
            if self.config.selects_name(name) or self.config.selects_name(name.rsplit(".", 1)[0]):
                path = str(self.dir / WEIGHTS_FOLDER / f"{name}.pth")
                if id(tensor) in written:
                    self.writer.link(written[id(tensor)], path)
                    continue
                (copy,) = host_copies([tensor])
                self.writer.save_tensor(path, copy)
                written[id(tensor)] = path

    # ----- end -------------------------------------------------------------------------------
    def flush(self) -> None:
        """Wait for the queued files and write ``execution_order.json``."""
        order = {str(token): folders for token, folders in sorted(self._order.items())}
        self.writer.write_text(str(self.dir / ORDER_FILE), json.dumps(order, indent=1))
        self.writer.flush()

    def close(self) -> None:
        """Flush, stop the writer thread and raise ``DumpWriteError`` if some file failed."""
        if self._closed:
            return
        self._closed = True
        _open_dumpers.discard(self)
        self.flush()
        self.writer.close()
        self._report_replay()
        error = self.writer.take_errors()
        if error is not None:
            raise error

    def _skip_replay(self, call: _Call, reason: str) -> None:
        self.replay_skips.setdefault(reason, []).append(f"token {self._token} {call.folder}")

    def _report_replay(self) -> None:
        """One warning for the module calls not replayed (their verdict falls back to propagation)."""
        if not self.replay_skips:
            return
        lines = []
        for reason, calls in self.replay_skips.items():
            shown = ", ".join(calls[:REPLAY_CALLS_SHOWN]) + (
                ", ..." if len(calls) > REPLAY_CALLS_SHOWN else ""
            )
            lines.append(f"{len(calls)} calls: {reason} ({shown})")
        skipped = sum(len(calls) for calls in self.replay_skips.values())
        warnings.warn(
            f"replay {self.dir}: {self.replayed} module calls replayed on golden's inputs, {skipped} not:\n  "
            + "\n  ".join(lines),
            stacklevel=3,
        )


def close_open_dumpers() -> None:
    """At interpreter exit: finish every dump still open; failures and warnings go to stderr."""
    for dumper in list(_open_dumpers):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                dumper.close()
            except DumpWriteError as error:
                print(f"llmprec: dump {dumper.dir}: {error}", file=sys.stderr)
        for warning in caught:
            print(f"llmprec: {warning.message}", file=sys.stderr)


atexit.register(close_open_dumpers)
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_open_dumpers.clear)
