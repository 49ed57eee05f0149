"""``EvaluationProcess``: a forked child sends what it made of each planned pair; the parent reads
ahead of what it takes (at most ``HELD_AHEAD`` pairs), so a full pipe does not hold the child up."""

from __future__ import annotations

import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from pytest_llmprec.pipeline import evaluation_process
from pytest_llmprec.pipeline.evaluation_process import EvaluationProcess

# the child runs only the planned work and exits, so a worker's own threads (xdist) do not matter
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")

Pair = namedtuple("Pair", "key")
PAIRS = [Pair(f"pair{i}") for i in range(64)]
PAYLOAD = 4096  # bytes a pair: 64 of them fill a pipe (64 KiB) four times over


def made(pair: Pair) -> str:
    return pair.key * (PAYLOAD // len(pair.key))


def started(ended: Path) -> EvaluationProcess:
    def closing_notes() -> list[str]:
        ended.touch()  # in the child, once it has sent every pair
        return ["done"]

    return EvaluationProcess(PAIRS, made, closing_notes)


def take_slowly(process: EvaluationProcess, pairs: list[Pair], ended: Path) -> bool:
    """Take ``pairs`` as a busy parent would; whether the child had sent every pair by then."""
    for pair in pairs:
        assert process.take(pair.key) == made(pair)
        time.sleep(0.05)  # the child's work for all pairs takes far less
    return ended.exists()


def test_the_parent_reads_ahead_so_the_child_finishes_early(tmp_path):
    ended = tmp_path / "ended"
    process = started(ended)
    try:
        assert take_slowly(process, PAIRS[:12], ended)  # a pipe holds 16 pairs: blocked without reading
        assert process.plans(PAIRS[12].key) and not process.plans(PAIRS[0].key)
        assert [process.take(pair.key) for pair in PAIRS[12:]] == [made(pair) for pair in PAIRS[12:]]
    finally:
        process.stop()
    assert process.notes() == ["done"] and process.problem is None


def test_what_is_read_ahead_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation_process, "HELD_AHEAD", 2)
    ended = tmp_path / "ended"
    process = started(ended)
    try:
        assert not take_slowly(process, PAIRS[:12], ended)  # 12 taken + 2 held + a pipe's worth < 64
        assert [process.take(pair.key) for pair in PAIRS[12:]] == [made(pair) for pair in PAIRS[12:]]
    finally:
        process.stop()
    assert process.notes() == ["done"]
