"""Helpers shared by the layout readers: token and number parsing, execution order, record building."""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import TensorRecord, natural_key


def as_number(text: str) -> int | None:
    """The value of an all-ASCII-digit string, else None."""
    return int(text) if text.isascii() and text.isdigit() else None


def token_sort_key(token: int | str) -> tuple[Any, ...]:
    """Named tokens (``warmup``, ``weights``: written before the first forward) first, then by number."""
    return (0, natural_key(token)) if isinstance(token, str) else (1, token)


def rank_sort_key(rank: int | None) -> int:
    return -1 if rank is None else rank


class Row(NamedTuple):
    """A record before numbering; ``key`` sorts the rows of a dump into execution order."""

    key: tuple[Any, ...]
    path: str
    token: int | str
    node: str
    leaf: str
    role: str
    index: int
    node_type: str
    rank: int | None
    member: str | None = None
    original_dtype: str | None = None


def build_records(rows: list[Row]) -> list[TensorRecord]:
    """The records of ``rows`` sorted by key, with ``order`` numbering them 0..n-1."""
    rows.sort(key=lambda row: row.key)
    return [
        TensorRecord(
            row.path,
            row.token,
            row.node,
            row.leaf,
            row.role,
            row.index,
            row.node_type,
            order,
            row.rank,
            row.member,
            original_dtype=row.original_dtype,
        )
        for order, row in enumerate(rows)
    ]
