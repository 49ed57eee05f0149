"""The child side of ``llmprec errcheck --exec``: an ``OverflowMonitor`` on every module of the
process, writing the result files as it detects (installed by the start-up hook of
``llmprec dump --exec`` when the program imports torch; see ``capture/_sitecustomize.py``).

At exit the process writes a status file (``{status}/{pid}.json``) that the command reads for its
summary. With ``--exit`` the process ends at the first detection with ``OVERFLOW_EXIT_CODE``.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

from .errcheck import ERRCHECK_ENV, OVERFLOW_EXIT_CODE
from .monitor import CallContext, Detection, OverflowMonitor, describe_detections
from .results import ResultFiles


class ErrcheckRun:
    """The monitor, result files and status file of one process of an errcheck run."""

    def __init__(self, output: str, status: str, stop: bool, saturation: bool) -> None:
        self.files = ResultFiles(output)
        self.status = Path(status)
        self.stop = stop
        self.pid = os.getpid()
        self.monitor = OverflowMonitor(saturation=saturation, synchronous=stop, on_detection=self._detected)
        self.monitor.install()
        atexit.register(self.finish)

    def _detected(self, detection: Detection, context: CallContext | None) -> None:
        self.files.add(detection)
        if self.stop:
            self.finish(stopped=True)
            print(
                f"llmprec errcheck: overflow in {detection.call.describe()}: ending the program (--exit)",
                file=sys.stderr,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(OVERFLOW_EXIT_CODE)

    def finish(self, stopped: bool = False) -> None:
        """Close the result files and write the status file (once per process)."""
        if os.getpid() != self.pid:
            return  # a forked child that inherited the handler
        self.files.close()
        monitor = self.monitor
        counts = monitor.counts
        status = {
            "pid": self.pid,
            "forwards": counts.forwards,
            "calls": counts.calls,
            "tensors": counts.tensors,
            "detections": counts.detections,
            "first": describe_detections(monitor.detections[:1], 1),
            "skipped": list(monitor.skipped)[:5],
            "files": [str(path) for path in self.files.paths],
            "stopped": stopped,
        }
        path = self.status / f"{self.pid}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status), encoding="utf-8")
        os.replace(temporary, path)
        self.pid = -1  # written


def install_from_environment() -> ErrcheckRun:
    """Install the monitor described by ``$LLMPREC_ERRCHECK`` (set by ``llmprec errcheck``)."""
    spec = json.loads(os.environ[ERRCHECK_ENV])
    return ErrcheckRun(spec["output"], spec["status"], spec["exit"], spec["saturation"])
