"""CSV reading and atomic writing, with spreadsheet formula cells neutralised."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

_FORMULA_FIRST = frozenset("=+-@\t\r")
"""First characters of text a spreadsheet would run as a formula."""
QUOTE = "'"
"""The prefix that neutralises a formula cell; text that starts with it gets one more, so that
``restore_cell`` gives back every text exactly."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def cell(value: Any) -> str:
    """The text of one CSV cell: NaN and None empty, floats in full precision, and text that a
    spreadsheet would run as a formula (leading ``= + - @``, tab, carriage return) prefixed with a
    quote. Called for every cell of every report (the common types are tested first)."""
    kind = type(value)
    if kind is float:
        return repr(value) if value == value else ""
    if kind is str:
        text = value
    elif kind is int or kind is bool:
        return str(value)
    elif value is None:
        return ""
    elif isinstance(value, (float, np.floating)):  # numpy's: their repr names the type
        return repr(float(value)) if value == value else ""
    else:
        text = str(value)
    if text and (text[0] == QUOTE or (text[0] in _FORMULA_FIRST and not _is_number(text))):
        return QUOTE + text
    return text


def restore_cell(text: str) -> str:
    """The text ``cell`` was given: its neutralising quote removed."""
    return text[1:] if text.startswith(QUOTE) else text


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file that appears at ``path`` only when the block ends without an exception (a temporary
    file in the same folder, then a rename); text modes write UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    text = {} if "b" in mode else {"newline": "", "encoding": "utf-8"}
    try:
        with os.fdopen(descriptor, mode, **text) as handle:
            yield handle
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_QUOTED = re.compile('[,"\r\n]')
"""Characters that make a CSV field quoted (as the csv module's minimal quoting does)."""


def _field(value: Any) -> str:
    """``cell(value)`` as one field of a CSV line: quoted, its quotes doubled, when it holds a
    delimiter, a quote or a line break."""
    if type(value) is float:  # most cells: no quoting possible
        return repr(value) if value == value else ""
    text = cell(value)
    if _QUOTED.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` to ``path`` atomically (a temporary file in the same folder, then a rename).

    The lines are what ``csv.writer`` writes (minimal quoting, CR LF line ends), joined here: the
    writer took most of the time of a large report."""
    if len(columns) < 2:  # a lone empty field, which the writer quotes, cannot be told from no field
        with atomic_open(path) as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([cell(row.get(column)) for column in columns] for row in rows)
        return path
    with atomic_open(path) as handle:
        handle.write(",".join(map(_field, columns)) + "\r\n")
        for row in rows:
            handle.write(",".join(map(_field, map(row.get, columns))) + "\r\n")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a UTF-8 CSV file (a leading byte order mark, as spreadsheets save, is skipped)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))
