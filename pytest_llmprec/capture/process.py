"""Checking and running the command given to ``--exec`` (no shell; output and exit code pass through)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

from ..errors import LlmprecError


class CommandError(LlmprecError):
    """An ``--exec`` command that cannot be run; nothing was started."""


def split_command(text: str) -> list[str]:
    """The argument list of ``text`` split like a POSIX shell would (quotes honoured, no expansion)."""
    try:
        argv = shlex.split(text)
    except ValueError as error:
        raise CommandError(f"cannot split the command {text!r}: {error}") from error
    if not argv:
        raise CommandError('the command is empty; give the program to run, e.g. --exec "python run.py"')
    program = argv[0]
    if os.sep in program or (os.altsep and os.altsep in program):
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise CommandError(f"{program!r} is not an executable file")
    elif shutil.which(program) is None:
        raise CommandError(f"{program!r} was not found on PATH")
    return argv


_PYTHON = re.compile(r"python[0-9.]*(?:\.exe)?")
_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def check_script(argv: list[str]) -> None:
    """For ``python [options] script.py ...``: the script must be a non-empty file (``-m``, ``-c``
    and ``-`` run no script file; other programs are not looked into)."""
    if not _PYTHON.fullmatch(os.path.basename(argv[0])):
        return
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument in ("-m", "-c", "-") or argument.startswith(("-m", "-c")):
            return
        if argument in _OPTIONS_WITH_VALUE:
            next(arguments, None)
        elif not argument.startswith("-"):
            if not os.path.isfile(argument):
                raise CommandError(f"{argument!r}: no such file (the Python script to run)")
            if os.path.getsize(argument) == 0:
                raise CommandError(f"{argument!r} is empty: there is no program to run")
            return


def run_command(argv: list[str], env: dict[str, str]) -> int:
    """Run ``argv`` with this process's stdin/stdout/stderr; its exit code (128+N if killed by signal N)."""
    process = subprocess.Popen(argv, env=env)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        code = process.wait()  # the child got the interrupt as well; let it finish
    return code if code >= 0 else 128 - code
