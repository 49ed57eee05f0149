"""Torch vs ATB token logits (msit-spec §8.5, ``-cl logits``): the last logits of a torch dump
against the ATB last-layer dump of the same generation.

The two dumps are paired by the tree matcher at level ``logits`` (msit's token alignment §5.2 and
its final-output rules: the last-child chains, ``lm_head`` ↔ ``LmHead``), then each torch logits
record keeps one ATB partner per token: the outermost operation (an ``LmHead`` graph op rather
than its ``LinearOperation`` child, when both were dumped). A logits record of one side without a
partner (a token the other run did not dump) is a one-sided pair.
"""

from __future__ import annotations

from ..dumps.base import Dump, TensorRecord
from ..dumps.ordering import token_sort_key
from ..matching import MatchOptions, match_dumps
from .pairing import LogitsPair, case_sort_key, file_name, is_last_logits, item_key, torch_case

LEVEL = "logits"


def applies(golden: Dump, my: Dump, level: str | None) -> bool:
    """A torch dump against an ATB dump at ``level`` logits, or without a level when the torch
    dump holds last logits only (``dump_last_logits``)."""
    if {golden.kind, my.kind} != {"torch", "atb"}:
        return False
    torch_dump = golden if golden.kind == "torch" else my
    return level == LEVEL or (level is None and is_last_logits(torch_dump))


def pair_tree_logits(golden: Dump, my: Dump, tokens: frozenset | None = None) -> list[LogitsPair]:
    """The logits pairs of a torch and an ATB dump, sorted by case then token."""
    golden_is_torch = golden.kind == "torch"
    result = match_dumps(golden, my, MatchOptions(tokens, level=LEVEL))
    chosen: dict[tuple[str, int | str], tuple[TensorRecord, TensorRecord]] = {}
    atb_cases: dict[tuple[str, str], str] = {}
    for pair in result.pairs:
        torch_record, atb_record = (pair.golden, pair.my) if golden_is_torch else (pair.my, pair.golden)
        case = torch_case(torch_record)
        atb_cases[(atb_record.node, atb_record.leaf)] = case
        known = chosen.get((case, pair.token))
        if known is None or _depth(atb_record) < _depth(known[1]):
            chosen[(case, pair.token)] = (torch_record, atb_record)
    torch_dump = golden if golden_is_torch else my
    torch_leaves = {(t.node, t.leaf) for t, _ in chosen.values()}
    every_torch_record = is_last_logits(torch_dump)
    found: list[tuple[str, int | str, TensorRecord | None, TensorRecord | None]] = []
    for (case, token), (torch_record, atb_record) in chosen.items():
        g, m = (torch_record, atb_record) if golden_is_torch else (atb_record, torch_record)
        found.append((case, token, g, m))
    seen = set(chosen)
    for unmatched in result.unmatched:
        record = unmatched.record
        is_torch = (unmatched.side == "golden") == golden_is_torch
        if is_torch:
            wanted = every_torch_record or (record.node, record.leaf) in torch_leaves
            case = torch_case(record) if wanted else None
        else:
            case = atb_cases.get((record.node, record.leaf))
        if case is None or (case, record.token) in seen:
            continue
        seen.add((case, record.token))
        found.append(
            (case, record.token, record, None)
            if unmatched.side == "golden"
            else (case, record.token, None, record)
        )
    found.sort(key=lambda item: (case_sort_key(item[0]), token_sort_key(item[1])))
    return [
        LogitsPair(item_key(case, token), case, token, file_name(g or m, golden if g else my), g, m, order)  # type: ignore[arg-type]
        for order, (case, token, g, m) in enumerate(found)
    ]


def _depth(record: TensorRecord) -> int:
    return record.node.count("/")
