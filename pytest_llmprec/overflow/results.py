"""The result files of ``llmprec errcheck``, one pair per process, created at its first detection:

* ``msit_overflow_res_{pid}.txt``: msit's format (msit-spec §4.7), one line
  ``Overflow detected! Operator name: <module>:<class>`` per module call whose outputs overflowed
  while no module called inside it had (the operator the overflow arose in, or one that received
  overflowed values from an earlier operator);
* ``llmprec_overflow_details_{pid}.csv``: one row per overflowing tensor of every detection.

Each line is written and flushed as it is found, so the files are complete up to the detection that
ended the program (``--exit``) or an interrupt.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import IO, Any

from ..report.csv_files import cell
from .monitor import Detection
from .report import FINDING_COLUMNS, finding_columns, msit_line

RESULT_FILE = "msit_overflow_res_{pid}.txt"
DETAILS_FILE = "llmprec_overflow_details_{pid}.csv"
DETAIL_COLUMNS = (
    "detection", "forward", "module", "class", "call", "role", "tensor", *FINDING_COLUMNS,
    "inner_overflow", "last_finite_module",
)  # fmt: skip


def detection_rows(detection: Detection) -> list[dict[str, Any]]:
    """The details rows of one detection, one per flagged tensor."""
    call = detection.call
    clean = detection.last_clean
    head = {
        "detection": detection.order,
        "forward": call.forward,
        "module": call.name,
        "class": call.class_name,
        "call": call.call,
        "role": detection.role,
        "inner_overflow": detection.inner,
        "last_finite_module": "" if clean is None else f"{clean.name} (call {clean.call})",
    }
    return [{**head, "tensor": name, **finding_columns(finding)} for name, finding in detection.tensors]


class ResultFiles:
    """Appends detections to this process's result files in ``folder`` (opened at the first one)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.paths: list[Path] = []
        self._pid: int | None = None
        self._text: IO[str] | None = None
        self._details: IO[str] | None = None
        self._writer: Any = None

    def _open(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        self._pid = pid  # a forked child writes its own files
        self.folder.mkdir(parents=True, exist_ok=True)
        text = self.folder / RESULT_FILE.format(pid=pid)
        details = self.folder / DETAILS_FILE.format(pid=pid)
        self._text = open(text, "a", encoding="utf-8")  # noqa: SIM115 - kept open across detections
        self._details = open(details, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._details)
        if not self._details.tell():
            self._writer.writerow(DETAIL_COLUMNS)
        self.paths = [text, details]

    def add(self, detection: Detection) -> None:
        self._open()
        if not detection.inner:
            self._text.write(msit_line(detection.call.name, detection.call.class_name))
            self._text.flush()
        for row in detection_rows(detection):
            self._writer.writerow([cell(row.get(column)) for column in DETAIL_COLUMNS])
        self._details.flush()

    def close(self) -> None:
        for handle in (self._text, self._details):
            if handle is not None and self._pid == os.getpid():
                handle.close()
        self._text = self._details = None
