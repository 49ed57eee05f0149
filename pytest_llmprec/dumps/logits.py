"""Per-token logits dumps (modeltest / MindIE-LLM): ``logits_{task}_{batch}_{token}.pth`` in one folder."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Dump, DumpProblem, natural_key
from .layouts import Layout
from .ordering import Row, as_number, build_records
from .walk import SafeWalker, scan

PREFIX = "logits_"
SUFFIX = ".pth"
LANGUAGES = ("cpp", "go", "java", "js", "python")
"""HumanEval-X language keys recognised in file names (lower-cased)."""


def parse_logits_name(name: str) -> tuple[str, int] | str:
    """``logits_dev.jsonl_1352_0.pth`` → (``"dev.jsonl_1352"``, 0); a reason string when it does not parse.

    With a HumanEval-X language part the case key is ``"{lang}/{n}"`` (``n`` the second-to-last
    number after the language), as msit's logits comparison reports it.
    """
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return "invalid logits file name"
    parts = name[len(PREFIX) : -len(SUFFIX)].split("_")
    if len(parts) < 2:
        return "invalid logits file name"
    lowered = [part.lower() for part in parts]
    language = next((part for part in lowered if part in LANGUAGES), None)
    if language is not None:
        after = parts[lowered.index(language) + 1 :]
        numbers = [number for number in map(as_number, after) if number is not None]
        if len(numbers) < 2:
            return f"missing_digits_after_{language}"
        return f"{language}/{numbers[-2]}", numbers[-1]
    batch, token = as_number(parts[-2]), as_number(parts[-1])
    if batch is None or token is None:
        return f"invalid_format_{parts[-2]}_{parts[-1]}"
    return "_".join(parts[:-1]), token


def locate(path: str | os.PathLike[str]) -> str | None:
    """The logits file or the folder holding ``logits_*.pth`` files directly, else None."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        name = os.path.basename(path)
        return path if name.startswith(PREFIX) and name.endswith(SUFFIX) else None
    if any(entry.name.startswith(PREFIX) and entry.name.endswith(SUFFIX) for entry in scan(path)[1]):
        return path
    return None


def index_logits_dump(location: str) -> Dump:
    """Index the logits file or folder found by :func:`locate`."""
    problems: list[DumpProblem] = []
    if os.path.isfile(location):
        names = [(os.path.basename(location), location)]
    else:
        _, files = SafeWalker(location, problems).listdir(location)
        names = [(entry.name, entry.path) for entry in files if entry.name.endswith(SUFFIX)]
    rows: list[Row] = []
    for name, file_path in names:
        parsed = parse_logits_name(name)
        if isinstance(parsed, str):
            problems.append(DumpProblem(file_path, parsed))
            continue
        case, token = parsed
        rows.append(
            Row((token, natural_key(case)), file_path, token, case, "logits", "output", 0, "", None, None)
        )
    return Dump("logits", Path(location), build_records(rows), problems, {})


LAYOUT = Layout("logits", "logits_{task}_{batch}_{token}.pth files", locate, index_logits_dump)
