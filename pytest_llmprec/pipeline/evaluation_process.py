"""``EvaluationProcess``: pairs evaluated in a forked child process, in a planned order, while this
process does other work: a serial pytest run's pairs while pytest runs the items, or half of a large
token's pairs while this process evaluates the other half (``Comparison``).

In a serial run pytest's per-item protocol and the comparison each take about half the time, and a
thread of the same process shares the GIL with pytest (measured: slower than none). A child forked
once the items are collected inherits the indexed and paired dumps, evaluates the planned pairs in
order and sends each one's report row and failure message through a pipe; at the end it sends its
notes (its local gate's, its half-token children's). The parent takes them in the same order, and
at each take reads what has arrived, up to ``HELD_AHEAD`` pairs ahead, so that the child is not
held up by a full pipe (under the local verdict it judges the next token meanwhile). A pair asked
for out of order, or after the child stopped, is not waited for: ``take`` returns None and the
caller evaluates it in its own process.

Forking needs a platform with ``fork`` and a process with no other thread (a forked child holds
only the thread that forked; locks other threads held would stay held there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, Pipe
from typing import Any

from ..matching import Pair

END = "end"
FAILED = "failed"
MADE = "made"
HELD_AHEAD = 4096
"""Pairs read from the child before they are asked for, at most (a few KB each)."""
END_WAIT_S = 10.0
"""How long ``stop`` waits for the notes of a child that has sent every pair."""


def can_fork() -> bool:
    """Whether this process may fork a child that evaluates pairs (Linux, no other thread)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


class EvaluationProcess:
    """The child process sending ``evaluate(pair)`` (any picklable value) for each of ``pairs``;
    ``notes()`` gives its ``closing_notes()`` once it ended."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        evaluate: Callable[[Pair], Any],
        closing_notes: Callable[[], list[str]] = list,
    ) -> None:
        self._position = {pair.key: index for index, pair in enumerate(pairs)}
        self._next = 0  # the position of the next message from the child
        self._received: dict[str, Any] = {}  # sent and read (``drain``), not taken yet
        self._notes: list[str] = []
        self.problem: str | None = None
        """Why the child stopped before the end (its exception), or None."""
        receiving, sending = Pipe(duplex=False)
        self._pid = os.fork()
        if self._pid == 0:  # the child: never returns
            receiving.close()
            _evaluate_all(sending, pairs, evaluate, closing_notes)
        sending.close()
        self._connection: Connection | None = receiving

    def plans(self, key: str) -> bool:
        """Whether the child evaluates the pair ``key`` and it has not been taken yet."""
        if key in self._received:
            return True
        position = self._position.get(key)
        return position is not None and position >= self._next and self._connection is not None

    def take(self, key: str) -> Any | None:
        """What the child made of the pair ``key``, waiting for it; None when the pair is not
        planned, was passed, or the child stopped."""
        if key in self._received:
            made = self._received.pop(key)
            self.drain()
            return made
        position = self._position.get(key)
        if position is None or position < self._next:
            return None
        while self._connection is not None:
            sent = self._read_one()
            if sent is None:
                return None
            if sent[0] == key:
                self.drain()
                return sent[1]
        return None

    def drain(self) -> None:
        """Read what the child has sent so far without waiting, up to ``HELD_AHEAD`` pairs not taken
        yet (so that it is not held up by a full pipe while this process is busy: under the local
        verdict it judges the next token meanwhile); ``take`` hands them out."""
        while self._connection is not None and len(self._received) < HELD_AHEAD and self._connection.poll(0):
            sent = self._read_one()
            if sent is not None:
                self._received[sent[0]] = sent[1]

    def _read_one(self) -> tuple[str, Any] | None:
        """The next pair the child sent, as (key, what it made); None once the child has ended (its
        notes or its problem are kept, the pipe is closed)."""
        try:
            kind, key, payload = self._connection.recv()
        except (EOFError, OSError):
            self._ended(FAILED, "the evaluation process ended without a word")
            return None
        if kind != MADE:
            self._ended(kind, payload)
            return None
        self._next = self._position[key] + 1
        return key, payload

    def _ended(self, kind: str, payload: Any) -> None:
        if kind == END:
            self._notes = list(payload)
        else:
            self.problem = str(payload)
        self._close()

    def notes(self) -> list[str]:
        """The child's closing notes (its local gate's), once it has ended."""
        return list(self._notes)

    def stop(self) -> None:
        """End the child: after its closing notes when it has sent every pair, else at once."""
        connection = self._connection
        if connection is not None and self._next == len(self._position) and connection.poll(END_WAIT_S):
            self._read_one()  # the closing notes
        if self._connection is not None:
            self._close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGTERM)
        self._reap()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _reap(self) -> None:
        if self._pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            self._pid = 0


def _evaluate_all(
    sending: Connection,
    pairs: Sequence[Pair],
    evaluate: Callable[[Pair], Any],
    closing_notes: Callable[[], list[str]],
) -> None:
    """The child's work: every pair in order, then the notes; it exits without running the parent's
    exit handlers (pytest's, which would write reports and summaries of their own)."""
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for pair in pairs:
            sending.send((MADE, pair.key, evaluate(pair)))
        sending.send((END, "", closing_notes()))
    except BrokenPipeError:  # the parent stopped listening
        code = 1
    except BaseException as exc:  # the parent evaluates the rest itself, and says why
        code = 1
        with contextlib.suppress(Exception):
            sending.send((FAILED, "", f"{type(exc).__name__}: {exc}"))
    finally:
        try:
            sending.close()
        finally:
            os._exit(code)
