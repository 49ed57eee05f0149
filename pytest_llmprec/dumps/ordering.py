"""Helpers shared by the layout readers: token and number parsing, execution order, record building."""

from __future__ import annotations

from typing import Any

from .base import TensorRecord, natural_key


def as_number(text: str) -> int | None:
    """The value of an all-ASCII-digit string, else None."""
    return int(text) if text.isascii() and text.isdigit() else None


def token_sort_key(token: int | str) -> tuple[Any, ...]:
    """Named tokens (``warmup``, ``weights``: written before the first forward) first, then by number."""
    return (0, natural_key(token)) if isinstance(token, str) else (1, token)


def rank_sort_key(rank: int | None) -> int:
    return -1 if rank is None else rank


def build_records(rows: list[tuple[Any, ...]]) -> list[TensorRecord]:
    """Records from ``(sort_key, path, token, node, leaf, role, index, node_type, rank, member)`` rows.

    The rows are sorted by their key and numbered 0..n-1 in that order (the ``order`` field).
    """
    rows.sort(key=lambda row: row[0])
    return [
        TensorRecord(path, token, node, leaf, role, index, node_type, order, rank, member)
        for order, (_, path, token, node, leaf, role, index, node_type, rank, member) in enumerate(rows)
    ]
