"""Exception types shared by every part of pytest-llmprec."""

from __future__ import annotations

import os


class LlmprecError(Exception):
    """Base class of the errors this package raises on purpose."""


class DumpFormatError(LlmprecError, ValueError):
    """A file or dump folder that cannot be read; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
