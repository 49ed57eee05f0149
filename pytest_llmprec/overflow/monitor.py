"""Live overflow checks: global forward hooks that scan every module's outputs (and, optionally, inputs).

Hooks are process-wide (``torch.nn.modules.module.register_module_forward_hook``), so modules are
named from the models the hooks see: each module whose forward is called while no other module's
forward runs is a top-level module; the first one becomes ``root``, later unnamed ones ``root1``,
``root2``..., and every submodule is named ``{root}.{attribute path}`` as in the msit torch dump
(``root.model.layers.1.mlp.down_proj``). ``ModuleNames.add_model`` names a model explicitly.

CPU tensors are scanned as their module returns. Tensors on an accelerator are scanned there and
their counts stay queued on the device until the top-level forward returns, when all are read back
with one copy (``synchronous=True`` reads each module's counts at once: needed to stop or dump at
the offending module). Detections come out in execution order either way.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ..capture.function_modules import is_function_module
from .finding import OverflowFinding
from .leaves import named_leaves
from .scanning import PendingScan, resolve_all, scan

ROOT = "root"
KEPT_DETECTIONS = 1000
KEPT_SKIPS = 100


@dataclass(frozen=True)
class ModuleCall:
    """One forward call: the module's name and class, the index of this call of that module since
    the checks started, and the index of the top-level forward call it ran in."""

    name: str
    class_name: str
    call: int
    forward: int

    def describe(self) -> str:
        return f"{self.name} ({self.class_name}), call {self.call} in forward {self.forward}"


@dataclass(frozen=True)
class Detection:
    """A module call whose outputs (``role`` "output") or inputs overflowed.

    ``tensors`` holds the flagged tensors as (name, finding), e.g. ``("output[0]", ...)``;
    ``last_clean`` the last module call before it whose outputs were all finite; ``inner`` is True
    when a module called inside this one had overflowed first (the overflow came from there).
    """

    call: ModuleCall
    role: str
    tensors: tuple[tuple[str, OverflowFinding], ...]
    last_clean: ModuleCall | None
    inner: bool
    order: int

    @property
    def which(self) -> str:
        return self.tensors[0][0]

    @property
    def finding(self) -> OverflowFinding:
        return self.tensors[0][1]

    def describe(self) -> str:
        lines = [self.call.describe()]
        lines += [f"  {name}: {finding.describe()}" for name, finding in self.tensors]
        return "\n".join(lines)


@dataclass(frozen=True)
class CallContext:
    """The arguments and output of the module call of a detection (only in synchronous mode)."""

    module: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any] | None
    output: Any


class ModuleNames:
    """Dotted names of modules, from the models added or seen at top level (weakly referenced)."""

    def __init__(self) -> None:
        self._names: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
        self._roots: weakref.WeakValueDictionary[str, nn.Module] = weakref.WeakValueDictionary()
        self._automatic = 0

    def add_model(self, model: nn.Module, prefix: str | None = None) -> str:
        """Name ``model`` ``prefix`` and its submodules ``prefix.<attribute path>``; returns the prefix.

        Without ``prefix`` the next free ``root``, ``root1``, ... is taken and names given earlier stay.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
        explicit = prefix is not None
        if prefix is None:
            prefix = ROOT if self._automatic == 0 else f"{ROOT}{self._automatic}"
            self._automatic += 1
            while prefix in self._roots:
                prefix = f"{ROOT}{self._automatic}"
                self._automatic += 1
        for name, module in model.named_modules(prefix=prefix):
            if explicit:
                self._names[module] = name
            else:
                self._names.setdefault(module, name)
        self._roots[prefix] = model
        return prefix

    def top_level(self, module: nn.Module) -> str:
        """The name of a module called at top level (named as a new root if it has no name yet)."""
        name = self._names.get(module)
        return name if name is not None else self.add_model(module)

    def nested(self, module: nn.Module, parent: str) -> str:
        """The name of a module called inside ``parent``'s forward."""
        name = self._names.get(module)
        return name if name is not None else f"{parent}.{type(module).__name__}"

    def root_of(self, name: str) -> tuple[str, nn.Module] | None:
        """The prefix and root module that ``name`` belongs to, if that root is still alive."""
        prefix = name.split(".", 1)[0]
        root = self._roots.get(prefix)
        return None if root is None else (prefix, root)


def _globs(value: str | Iterable[str] | None, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    globs = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else None
    if globs is None or not all(isinstance(glob, str) and glob for glob in globs):
        raise ValueError(f"{what} must be a glob or a list of globs on module names, got {value!r}")
    return globs


@dataclass
class _Frame:
    module: nn.Module
    call: ModuleCall
    start: int
    selected: bool


@dataclass
class _Entry:
    """The scans of one module call's inputs or outputs, in the order they were made."""

    call: ModuleCall
    start: int
    role: str
    names: list[str]
    scans: list[PendingScan | OverflowFinding]
    context: CallContext | None = None


@dataclass
class MonitorCounts:
    forwards: int = 0
    calls: int = 0
    tensors: int = 0
    detections: int = 0


class OverflowMonitor:
    """Scans module outputs (``inputs=True``: inputs too) through global forward hooks.

    ``include``/``exclude`` are globs on module names (``fnmatch``); ``near`` a fraction of the
    largest finite value from which values are flagged too (None: not flagged); ``saturation`` says
    whether values at the dtype's limits count as overflow. ``on_detection(detection, context)`` is
    called for each detection in execution order (``context`` only in synchronous mode); an exception
    it raises propagates out of the model's forward (that is how a guard stops at the first finding).
    ``synchronous`` reads every scan back as its module returns; ``deferred`` queues CPU tensors'
    scans to the end of the forward too, as those of accelerator tensors always are otherwise.
    """

    def __init__(
        self,
        *,
        include: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        saturation: bool = True,
        near: float | None = None,
        inputs: bool = False,
        synchronous: bool = False,
        deferred: bool = False,
        on_detection: Callable[[Detection, CallContext | None], None] | None = None,
        names: ModuleNames | None = None,
    ) -> None:
        self.include = _globs(include, "include")
        self.exclude = _globs(exclude, "exclude")
        self.saturation = saturation
        self.near = near
        self.inputs = inputs
        self.synchronous = synchronous
        self.deferred = deferred
        self.on_detection = on_detection
        self.names = names or ModuleNames()
        self.detections: list[Detection] = []
        self.skipped: dict[str, None] = {}
        self.counts = MonitorCounts()
        self.last_clean: ModuleCall | None = None
        self._selected: dict[str, bool] = {}
        self._calls: dict[str, int] = {}
        self._sequence = itertools.count()
        self._local = threading.local()
        self._handles: list[Any] = []

    # ----- installing ----------------------------------------------------------------------------
    def install(self) -> None:
        if not self._handles:
            self._handles = [
                register_module_forward_pre_hook(self._pre_hook),
                register_module_forward_hook(self._post_hook, with_kwargs=True, always_call=True),
            ]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def installed(self) -> bool:
        return bool(self._handles)

    def clear(self) -> None:
        """Forget the detections and skips so far (the counters and names stay)."""
        self.detections = []
        self.skipped = {}

    # ----- hooks ---------------------------------------------------------------------------------
    def _state(self) -> Any:
        state = self._local
        if not hasattr(state, "stack"):
            state.stack, state.queue, state.detected = [], [], []
        return state

    def _pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if is_function_module(module):
            return  # a function call inside its caller's forward
        state = self._state()
        try:
            if state.stack:
                name = self.names.nested(module, state.stack[-1].call.name)
            else:
                name = self.names.top_level(module)
                state.detected = []
                self.counts.forwards += 1
            call = self._calls.get(name, 0)
            self._calls[name] = call + 1
            frame = _Frame(
                module,
                ModuleCall(name, type(module).__name__, call, self.counts.forwards - 1),
                next(self._sequence),
                self._selects(name),
            )
        except Exception as error:  # never break the model's forward
            self._skip(f"{type(module).__name__}: not checked: {type(error).__name__}: {error}")
            frame = _Frame(module, ModuleCall("?", type(module).__name__, 0, 0), next(self._sequence), False)
        state.stack.append(frame)
        if frame.selected and self.inputs:
            self._check(state, frame, "input", args, CallContext(module, args, None, None))

    def _post_hook(self, module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        # torch passes (kwargs, output), or only (output,) when the forward raised
        state = self._state()
        if not any(frame.module is module for frame in state.stack):
            return  # the checks started inside this call
        while state.stack[-1].module is not module:
            state.stack.pop()
        frame = state.stack.pop()
        completed = len(rest) == 2
        try:
            if frame.selected and completed:
                kwargs, output = rest
                self.counts.calls += 1
                context = CallContext(module, args, kwargs, output)
                if self.inputs and kwargs:
                    self._check(state, frame, "input", kwargs, context, "kwargs")
                self._check(state, frame, "output", output, context)
        finally:
            if not state.stack and state.queue:
                self._flush(state)

    # ----- scanning ------------------------------------------------------------------------------
    def _selects(self, name: str) -> bool:
        selected = self._selected.get(name)
        if selected is None:
            included = not self.include or any(fnmatch.fnmatchcase(name, g) for g in self.include)
            selected = included and not any(fnmatch.fnmatchcase(name, g) for g in self.exclude)
            self._selected[name] = selected
        return selected

    def _skip(self, reason: str) -> None:
        if len(self.skipped) < KEPT_SKIPS:
            self.skipped[reason] = None

    def _check(
        self, state: Any, frame: _Frame, role: str, value: Any, context: CallContext, label: str | None = None
    ) -> None:
        """Scan the tensors of ``value``; findings are handled now or when the forward ends."""
        try:
            leaves = named_leaves(value, label or role)
            names, scans = [], []
            queued = bool(state.queue)
            for where, tensor in leaves.tensors:
                try:
                    if self.synchronous or (tensor.device.type == "cpu" and not self.deferred):
                        scans.append(scan(tensor, near=self.near, saturation=self.saturation))
                    else:
                        scans.append(PendingScan(tensor, near=self.near, saturation=self.saturation))
                        queued = True
                except (TypeError, ValueError, RuntimeError) as error:
                    self._skip(f"{frame.call.name} {where}: not scanned: {error}")
                    continue
                names.append(where)
            for reason in leaves.skipped:
                self._skip(f"{frame.call.name} {reason}")
            self.counts.tensors += len(scans)
        except Exception as error:  # never break the model's forward
            self._skip(f"{frame.call.name} {role}: not scanned: {type(error).__name__}: {error}")
            return
        entry = _Entry(frame.call, frame.start, role, names, scans)
        if queued and not self.synchronous:
            state.queue.append(entry)  # handled in order when the top-level forward returns
        else:
            entry.context = context
            self._handle(state, entry, [s.resolve() if isinstance(s, PendingScan) else s for s in scans])

    def _flush(self, state: Any) -> None:
        """Read back the queued scans of this forward (one copy per device) and handle them in order."""
        queue, state.queue = state.queue, []
        try:
            pending = [s for entry in queue for s in entry.scans if isinstance(s, PendingScan)]
            resolve_all(pending)
        except Exception as error:
            self._skip(f"forward {self.counts.forwards - 1}: the queued scans could not be read: {error}")
            return
        for entry in queue:
            findings = [s.resolve() if isinstance(s, PendingScan) else s for s in entry.scans]
            self._handle(state, entry, findings)

    def _handle(self, state: Any, entry: _Entry, findings: Sequence[OverflowFinding]) -> None:
        flagged = tuple(
            (name, finding)
            for name, finding in zip(entry.names, findings, strict=True)
            if finding.flagged(near=self.near is not None)
        )
        if not flagged:
            if entry.role == "output" and findings:
                self.last_clean = entry.call
            return
        inner = any(start > entry.start for start in state.detected)
        state.detected.append(entry.start)
        detection = Detection(entry.call, entry.role, flagged, self.last_clean, inner, self.counts.detections)
        self.counts.detections += 1
        if len(self.detections) < KEPT_DETECTIONS:
            self.detections.append(detection)
        if self.on_detection is not None:
            self.on_detection(detection, entry.context)


def describe_detections(
    detections: Sequence[Detection], total: int | None = None, skipped: Iterable[str] = (), listed: int = 5
) -> list[str]:
    """The lines of a report: the first detection in full, then the next ones by name."""
    if not detections:
        return []
    first = detections[0]
    lines = [f"overflow first in {first.call.describe()}"]
    lines += [f"  {name}: {finding.describe()}" for name, finding in first.tensors]
    clean = first.last_clean
    lines.append(
        f"  last module with finite outputs: {clean.describe()}"
        if clean is not None
        else "  no module had finite outputs before it"
    )
    more = (total if total is not None else len(detections)) - 1
    if more > 0:
        names = ", ".join(f"{d.call.name} ({d.role})" for d in detections[1 : 1 + listed])
        lines.append(
            f"  then {more} more overflowing module call(s): {names}{', ...' if more > listed else ''}"
        )
    skipped = list(skipped)
    if skipped:
        lines.append(f"  not scanned ({len(skipped)}): " + "; ".join(skipped[:listed]))
    return lines
