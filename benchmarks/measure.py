"""Timing and memory helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

_RUN_AND_REPORT = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(time.perf_counter() - start, usage.ru_maxrss, code, usage.ru_utime + usage.ru_stime)
"""


def best_time(function: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` wall-clock runs of ``function``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_bytes(function: Callable[[], object]) -> int:
    """Rise of this process's peak resident set while ``function`` runs (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak resident set size to the current one
    before = _status_kib("VmRSS:")
    function()
    return (_status_kib("VmHWM:") - before) * 1024


def run_process(command: list[str], cwd: Path) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in bytes of any process it started, exit code) of ``command``.

    The command gets the environment without PYTHONDONTWRITEBYTECODE: with it set, pytest cannot
    cache the plugins' assertion-rewritten modules and re-parses them at every start (about 2 s
    that have nothing to do with what is measured).
    """
    wall, rss, code, _ = run_process_cpu(command, cwd)
    return wall, rss, code


def run_process_cpu(command: list[str], cwd: Path) -> tuple[float, int, int, float]:
    """``run_process``'s figures and the CPU seconds (user + system) of every process it started: on a
    machine shared with other work the CPU time varies less than the wall time."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", _RUN_AND_REPORT, *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=environment,
    )
    wall, rss_kib, code, cpu = out.stdout.split()
    return float(wall), int(rss_kib) * 1024, int(code), float(cpu)
