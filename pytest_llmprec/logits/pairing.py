"""Which dumps hold logits, and their golden/my pairs: one per (case, token), one-sided ones kept.

Logits dumps are the ``logits`` layout (``logits_{task}_{batch}_{token}.pth``: msit/modeltest,
``LogitsDumper``), paired by identical file name as msit does, and torch last-logits dumps
(``DumpConfig(dump_last_logits=True)``: one output node per token), paired by token, node and
file. A folder of one case on each side (a torch last-logits dump and a ``LogitsDumper``
folder of one generation) pairs by token.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

from ..dumps.base import Dump, TensorRecord, natural_key
from ..dumps.logits import LANGUAGES, PREFIX, SUFFIX
from ..dumps.ordering import token_sort_key

ID_PREFIX = "logits"


@dataclass(frozen=True)
class LogitsEntry:
    """One side's logits of one token: the case's display key, the token, the file name as the
    report shows it, what pairs it (``identity``) and the record."""

    case: str
    token: int | str
    file_name: str
    identity: tuple
    record: TensorRecord


@dataclass(frozen=True)
class LogitsPair:
    """The golden and my logits of one token of one case; a side is None when its file is missing."""

    key: str
    case: str
    token: int | str
    file_name: str
    golden: TensorRecord | None
    my: TensorRecord | None
    order: int


@dataclass(frozen=True)
class LogitsProblem:
    """A file that is not a usable logits file (a name that does not parse, an unreadable entry)."""

    side: str
    file_name: str
    reason: str


def is_last_logits(dump: Dump) -> bool:
    """A torch dump with one node per token and outputs only (``dump_last_logits``)."""
    if dump.kind != "torch" or not dump.records:
        return False
    nodes: dict[tuple, set[str]] = defaultdict(set)
    for record in dump.records:
        if record.role != "output" or not isinstance(record.token, int):
            return False
        nodes[(record.rank, record.token)].add(record.node)
    return all(len(names) == 1 for names in nodes.values())


def logits_like(dump: Dump | None) -> bool:
    return dump is not None and (dump.kind == "logits" or is_last_logits(dump))


def msit_key(file_name: str) -> str | None:
    """The ``key`` column msit writes for a logits file: ``{lang}/{n}`` with a HumanEval-X language
    part, else the batch number (``logits_dev.jsonl_1352_0.pth`` → ``1352``); None when it does not parse."""
    parts = file_name[len(PREFIX) : -len(SUFFIX)].split("_")
    lowered = [part.lower() for part in parts]
    language = next((part for part in lowered if part in LANGUAGES), None)
    if language is not None:
        after = [part for part in parts[lowered.index(language) + 1 :] if part.isascii() and part.isdigit()]
        return f"{language}/{int(after[-2])}" if len(after) >= 2 else None
    batch = parts[-2] if len(parts) >= 2 else ""
    return str(int(batch)) if batch.isascii() and batch.isdigit() else None


def entries(dump: Dump) -> list[LogitsEntry]:
    """The logits entries of a logits-like dump, with display keys unique within the dump."""
    found: list[tuple[str, LogitsEntry]] = []
    for record in dump.records:
        if dump.kind == "logits":
            name = os.path.basename(record.path)
            short = msit_key(name) or record.node
            found.append((record.node, LogitsEntry(short, record.token, name, ("file", name), record)))
        else:
            name = file_name(record, dump)
            case = torch_case(record)
            identity = ("torch", record.rank, record.token, record.node, record.leaf)
            found.append((case, LogitsEntry(case, record.token, name, identity, record)))
    owners: dict[str, set[str]] = defaultdict(set)
    for case, entry in found:
        owners[entry.case].add(case)
    return [entry if len(owners[entry.case]) == 1 else _renamed(entry, case) for case, entry in found]


def file_name(record: TensorRecord, dump: Dump) -> str:
    """``record``'s file as the report names it: relative to the dump root (a folder), else its name."""
    root = str(dump.root)
    return os.path.relpath(record.path, root) if os.path.isdir(root) else os.path.basename(record.path)


def torch_case(record: TensorRecord) -> str:
    """The case key of a torch logits record: its node (``root.lm_head``), the file when it is not
    the node's only output, the rank when the dump has several."""
    case = record.node if record.leaf in ("output", "output_0") else f"{record.node}/{record.leaf}"
    return case if record.rank is None else f"rank{record.rank}/{case}"


def _renamed(entry: LogitsEntry, case: str) -> LogitsEntry:
    return LogitsEntry(case, entry.token, entry.file_name, entry.identity, entry.record)


def problems(dump: Dump, side: str) -> list[LogitsProblem]:
    """The dump's unusable entries as msit's ``parse_error:<reason>`` rows."""
    return [
        LogitsProblem(side, os.path.basename(problem.path), f"parse_error:{problem.message}")
        for problem in dump.problems
    ]


def logits_mode(golden: Dump | None, my: Dump | None, level: str | None = None) -> bool:
    """Whether two dumps are compared as per-token logits: both logits-like, or a torch dump
    against an ATB dump at level ``logits`` (``tree_pairs``)."""
    if golden is None or my is None:
        return False
    from . import tree_pairs

    return (logits_like(golden) and logits_like(my)) or tree_pairs.applies(golden, my, level)


def logits_pairs(
    golden: Dump, my: Dump, tokens: frozenset | None = None, level: str | None = None
) -> list[LogitsPair]:
    """The pairs of two dumps in ``logits_mode``."""
    from . import tree_pairs

    if tree_pairs.applies(golden, my, level):
        return tree_pairs.pair_tree_logits(golden, my, tokens)
    return pair_logits(golden, my, tokens)


def pair_logits(golden: Dump, my: Dump, tokens: frozenset | None = None) -> list[LogitsPair]:
    """The pairs of two logits-like dumps, sorted by case (numbers first) then token; a file on one
    side only is a pair with the other side None. ``tokens`` keeps only those tokens."""
    g_entries, m_entries = entries(golden), entries(my)
    if tokens is not None:
        g_entries = [e for e in g_entries if e.token in tokens]
        m_entries = [e for e in m_entries if e.token in tokens]
    g_cases, m_cases = {e.case for e in g_entries}, {e.case for e in m_entries}
    by_token = (
        len(g_cases) == 1
        and len(m_cases) == 1
        and not {e.identity for e in g_entries} & {e.identity for e in m_entries}
    )

    def identity(entry: LogitsEntry) -> tuple:
        return ("token", entry.token) if by_token else entry.identity

    mine = {identity(entry): entry for entry in m_entries}
    found: list[tuple[str, int | str, str, TensorRecord | None, TensorRecord | None]] = []
    for entry in g_entries:
        partner = mine.pop(identity(entry), None)
        found.append((entry.case, entry.token, entry.file_name, entry.record, partner and partner.record))
    found += [(e.case, e.token, e.file_name, None, e.record) for e in mine.values()]
    found.sort(key=lambda item: (case_sort_key(item[0]), token_sort_key(item[1]), item[2]))
    return [
        LogitsPair(item_key(case, token), case, token, name, g, m, order)
        for order, (case, token, name, g, m) in enumerate(found)
    ]


def item_key(case: str, token: int | str) -> str:
    label = f"token{token}" if isinstance(token, int) else str(token)
    return f"{ID_PREFIX}/{case}/{label}"


def case_sort_key(case: str) -> tuple:
    """msit's order: integer keys by value, then ``lang/n`` keys by language and n, then the rest."""
    if case.isascii() and case.isdigit():
        return (0, int(case))
    language, slash, number = case.partition("/")
    if slash and language in LANGUAGES and number.isdigit():
        return (1, language, int(number))
    return (2, natural_key(case))
