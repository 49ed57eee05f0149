"""``--llm-path-map OLD=NEW``: dumps that remote xdist workers see under another path prefix.

The controller indexes and reports the dumps at the paths it was given; a worker reads a path
that starts with ``OLD`` at ``NEW`` instead, and its report rows name the ``OLD`` paths again, so
the merged report equals a serial run's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .settings import CompareSettings

PATH_SETTINGS = ("golden", "my", "mapping_file", "op_mapping_file", "baseline")
PATH_COLUMNS = ("golden_data_path", "my_data_path")


def parse_path_map(texts: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``OLD=NEW`` texts as ``(old, new)`` prefixes, trailing separators removed."""
    pairs = []
    for text in texts:
        old, equals, new = text.partition("=")
        if not equals or not old or not new:
            raise ValueError(f"{text!r}: expected OLD=NEW (two path prefixes)")
        pairs.append((old.rstrip("/") or "/", new.rstrip("/") or "/"))
    return tuple(pairs)


def rewrite(path: str, pairs: Sequence[tuple[str, str]]) -> str:
    """``path`` with the first matching whole-component prefix ``old`` replaced by ``new``."""
    for old, new in pairs:
        if path == old:
            return new
        if path.startswith(old if old.endswith("/") else old + "/"):
            return new.rstrip("/") + "/" + path[len(old) :].lstrip("/")
    return path


def on_worker(settings: CompareSettings) -> CompareSettings:
    """The settings with every input path rewritten by ``settings.path_map``."""
    if not settings.path_map:
        return settings
    changed = {
        name: Path(rewrite(str(value), settings.path_map))
        for name in PATH_SETTINGS
        if (value := getattr(settings, name)) is not None
    }
    return dataclasses.replace(settings, **changed)


def restore_rows(rows: list[dict[str, Any]], path_map: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Rows whose data paths name the controller's paths again (``NEW`` back to ``OLD``)."""
    back = [(new, old) for old, new in path_map]
    for row in rows:
        for column in PATH_COLUMNS:
            if isinstance(row.get(column), str):
                row[column] = rewrite(row[column], back)
    return rows
