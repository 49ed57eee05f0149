"""Atomic file writes and the background writer thread of a dump.

Every file is written to a hidden temporary name in its final folder and renamed into place,
so a reader never sees a half-written file. ``DumpWriter`` runs write jobs in submission
order on one thread; the bytes held by queued jobs are bounded (a full queue makes the
submitting thread wait), and errors are kept until ``close`` hands them back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import LlmprecError

KEPT_ERRORS = 20


class DumpWriteError(LlmprecError):
    """Some files of a dump could not be written; the message gives the count and the first errors."""

    def __init__(self, errors: list[BaseException], failures: int) -> None:
        self.errors = errors
        self.failures = failures
        shown = "\n".join(f"  {type(err).__name__}: {err}" for err in errors[:5])
        super().__init__(f"{failures} dump write(s) failed:\n{shown}")


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)`` then rename the result to ``path``; no partial file is left."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_text_atomic(path: str, text: str) -> None:
    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)

    atomic_write(path, write)


def link_atomic(path: str, source: str) -> None:
    """Make ``path`` a hard link to ``source`` (a copy where the file system has no hard links)."""

    def link(temporary: str) -> None:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)

    atomic_write(path, link)


def save_tensor_atomic(path: str, tensor: Any) -> None:
    import torch

    atomic_write(path, lambda temporary: torch.save(tensor, temporary))


class DumpWriter:
    """Runs file-writing jobs in order on a daemon thread, holding at most ``max_pending_bytes``."""

    def __init__(self, max_pending_bytes: int) -> None:
        self._max_pending = max_pending_bytes
        self._jobs: deque[tuple[Callable[[], None], int]] = deque()
        self._condition = threading.Condition()
        self._pending_bytes = 0
        self._unfinished = 0
        self._closed = False
        self._errors: list[BaseException] = []
        self._failures = 0
        self._made_dirs: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="llmprec-dump-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None], nbytes: int = 0) -> None:
        """Queue ``job``; waits while the queued bytes would exceed the bound (one job may exceed it)."""
        with self._condition:
            if self._closed:
                raise RuntimeError("the dump writer is closed")
            while self._pending_bytes and self._pending_bytes + nbytes > self._max_pending:
                self._condition.wait()
            self._jobs.append((job, nbytes))
            self._pending_bytes += nbytes
            self._unfinished += 1
            self._condition.notify_all()

    def save_tensor(self, path: str, tensor: Any) -> None:
        """Queue ``torch.save(tensor, path)`` (atomic); ``tensor`` must be a private CPU copy."""
        nbytes = tensor.numel() * tensor.element_size()
        self.submit(lambda: self._in_folder(path, save_tensor_atomic, tensor), nbytes)

    def link(self, source: str, path: str) -> None:
        """Queue ``path`` as a hard link to ``source`` (written by an earlier job)."""
        self.submit(lambda: self._in_folder(path, link_atomic, source))

    def write_text(self, path: str, text: str) -> None:
        self.submit(lambda: self._in_folder(path, write_text_atomic, text), len(text))

    def append_text(self, path: str, text: str, header: str) -> None:
        """Append whole lines to ``path`` in one write, writing ``header`` first if the file is new."""

        def append() -> None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                data = text if os.fstat(fd).st_size else header + text
                os.write(fd, data.encode("utf-8"))
            finally:
                os.close(fd)

        self.submit(append, len(text))

    def flush(self) -> None:
        """Wait until every queued job has run."""
        with self._condition:
            while self._unfinished:
                self._condition.wait()

    def record_error(self, error: Exception) -> None:
        """Keep ``error`` for ``take_errors`` (also used for failures while preparing a write)."""
        with self._condition:
            self._failures += 1
            if len(self._errors) < KEPT_ERRORS:
                self._errors.append(error)

    def take_errors(self) -> DumpWriteError | None:
        """The errors collected so far (then forgotten), or None."""
        with self._condition:
            if not self._failures:
                return None
            error = DumpWriteError(self._errors, self._failures)
            self._errors, self._failures = [], 0
            return error

    def close(self) -> None:
        """Run the remaining jobs and stop the thread."""
        self.flush()
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join()

    def _in_folder(self, path: str, write: Callable[[str, Any], None], payload: Any) -> None:
        directory = os.path.dirname(path)
        if directory not in self._made_dirs:
            os.makedirs(directory, exist_ok=True)
            self._made_dirs.add(directory)
        write(path, payload)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._jobs and not self._closed:
                    self._condition.wait()
                if not self._jobs:
                    return
                job, nbytes = self._jobs.popleft()
            try:
                job()
            except Exception as error:
                self.record_error(error)
            finally:
                del job
                with self._condition:
                    self._pending_bytes -= nbytes
                    self._unfinished -= 1
                    self._condition.notify_all()
