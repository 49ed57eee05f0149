"""``OverflowGuard``: live overflow checks around a block of code (the engine of the overflow marker
and of the ``overflow_guard`` fixture; usable without pytest)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from .assertion import OverflowFailure
from .finding import check_near
from .monitor import CallContext, Detection, ModuleNames, OverflowMonitor, describe_detections
from .replay_dump import write_call_dump

OPTIONS = ("include", "exclude", "saturation", "near", "inputs", "stop", "dump")


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


class OverflowGuard:
    """Scans every module's outputs while installed (``with OverflowGuard(): model(x)``).

    ``include``/``exclude``: globs on module names; ``saturation``: values at the dtype's limits
    count as overflow; ``near``: also flag values reaching this fraction of the largest finite
    value; ``inputs``: scan inputs too; ``stop``: raise ``OverflowFailure`` inside the forward at
    the first detection; ``dump``: save the first offending call's inputs and outputs under this
    folder in the msit torch layout. ``stop`` and ``dump`` check each module as it returns (on an
    accelerator that is one synchronisation per module); otherwise accelerator counts are read back
    once per forward. ``check()`` raises ``OverflowFailure`` naming the first overflowing module.
    """

    def __init__(
        self,
        *,
        include: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        saturation: bool = True,
        near: float | None = None,
        inputs: bool = False,
        stop: bool = False,
        dump: str | os.PathLike[str] | None = None,
    ) -> None:
        if dump is not None and not isinstance(dump, (str, os.PathLike)):
            raise ValueError(f"dump must be a folder path, got {dump!r}")
        self.stop = _flag("stop", stop)
        self.dump = None if dump is None else Path(dump)
        self.dump_dir: Path | None = None
        self.dump_error: str | None = None
        self.names = ModuleNames()
        self.monitor = OverflowMonitor(
            include=include,
            exclude=exclude,
            saturation=_flag("saturation", saturation),
            near=check_near(near),
            inputs=_flag("inputs", inputs),
            synchronous=self.stop or self.dump is not None,
            on_detection=self._on_detection,
            names=self.names,
        )

    # ----- installing ----------------------------------------------------------------------------
    def install(self) -> OverflowGuard:
        self.monitor.install()
        return self

    def remove(self) -> None:
        self.monitor.remove()

    def __enter__(self) -> OverflowGuard:
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def add_model(self, model: nn.Module, prefix: str = "root") -> None:
        """Name ``model``'s modules ``prefix.<attribute path>`` (instead of the automatic names)."""
        self.names.add_model(model, prefix)

    # ----- results -------------------------------------------------------------------------------
    @property
    def detections(self) -> list[Detection]:
        """The detections since the guard was installed or cleared, in execution order."""
        return self.monitor.detections

    @property
    def first(self) -> Detection | None:
        return self.detections[0] if self.detections else None

    @property
    def skipped(self) -> list[str]:
        """Why some module outputs were not scanned (non-tensor values, unsupported tensors)."""
        return list(self.monitor.skipped)

    def message(self) -> str:
        lines = describe_detections(self.detections, self.monitor.counts.detections, self.skipped)
        if self.dump_dir is not None:
            lines.append(f"  the first offending call's tensors: {self.dump_dir}")
        if self.dump_error is not None:
            lines.append(f"  {self.dump_error}")
        return "\n".join(lines)

    def failure(self) -> OverflowFailure:
        return OverflowFailure(self.message(), list(self.detections))

    def check(self) -> None:
        """Raise ``OverflowFailure`` if anything overflowed since the last check; then forget it."""
        __tracebackhide__ = True
        if self.detections:
            failure = self.failure()
            self.clear()
            raise failure

    def clear(self) -> None:
        self.monitor.clear()
        self.monitor.counts.detections = 0

    def _on_detection(self, detection: Detection, context: CallContext | None) -> None:
        if (
            self.dump is not None
            and self.dump_dir is None
            and self.dump_error is None
            and context is not None
        ):
            try:
                self.dump_dir = write_call_dump(self.dump, detection, context, self.names)
            except Exception as error:  # a failed dump must not break the model's forward
                self.dump_error = (
                    f"the offending call's tensors could not be saved under {self.dump}: {error}"
                )

        if self.stop:
            raise self.failure()
