"""Matchers that pair tensors by name: same-kind dumps, two single files, manual dumps."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from ..dumps.base import Dump, TensorRecord
from .base import MatchOptions, MatchResult, Pair, Unmatched, token_label
from .tokens import align_tokens


def _wanted(record: TensorRecord, options: MatchOptions) -> bool:
    """Whether the user's node globs and token selection keep ``record``."""
    if options.tokens is not None and record.token not in options.tokens:
        return False
    return not options.select or any(fnmatch.fnmatchcase(record.node, glob) for glob in options.select)


def _ordered(pairs: Iterable[tuple[tuple, Pair]]) -> list[Pair]:
    """Pairs sorted by their sort key, with ``order`` renumbered 0..n-1."""
    ordered = [pair for _, pair in sorted(pairs, key=lambda item: item[0])]
    return [Pair(pair.key, pair.golden, pair.my, pair.token, index) for index, pair in enumerate(ordered)]


class SameKindMatcher:
    """Two dumps of one layout: tokens aligned, then records paired by (node, leaf).

    Records pair rank with rank when both dumps carry ranks. A name mapping rewrites golden
    node names into my node names before the lookup.
    """

    name = "same kind, by name"

    def applies(self, golden: Dump, my: Dump) -> bool:
        return golden.kind == my.kind

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        result = MatchResult()
        token_pairs, note = align_tokens(golden, my, options.tokens)
        if note:
            result.notes.append(note)
        use_rank = _all_ranked(golden) and _all_ranked(my)
        rename = options.mapping or (lambda node: node)
        my_tokens = {mt: position for position, (_, mt) in enumerate(token_pairs)}
        golden_tokens = {gt: mt for gt, mt in token_pairs}

        waiting: dict[tuple, TensorRecord] = {}
        for record in my:
            if record.token not in my_tokens or not _wanted(record, options):
                continue
            key = (record.token, record.rank if use_rank else None, record.node, record.leaf)
            if key in waiting:
                result.unmatched.append(Unmatched("my", record, "duplicate name in the my dump"))
            else:
                waiting[key] = record

        found: list[tuple[tuple, Pair]] = []
        for record in golden:
            if not _wanted(record, options):
                continue
            if record.token not in golden_tokens:
                result.unmatched.append(Unmatched("golden", record, "token not in the my dump"))
                continue
            my_token = golden_tokens[record.token]
            rank = record.rank if use_rank else None
            partner = waiting.pop((my_token, rank, rename(record.node), record.leaf), None)
            if partner is None:
                result.unmatched.append(Unmatched("golden", record, "no my tensor with this name"))
                continue
            key = "/".join(
                [token_label(my_token)]
                + ([f"rank{rank}"] if rank is not None else [])
                + [record.node, record.leaf]
            )
            sort_key = (my_tokens[my_token], partner.order, record.order)
            found.append((sort_key, Pair(key, record, partner, my_token, 0)))
        result.unmatched += [Unmatched("my", r, "no golden tensor with this name") for r in waiting.values()]
        lonely = [r for r in my if r.token not in my_tokens and _wanted(r, options)]
        result.unmatched += [Unmatched("my", r, "token not in the golden dump") for r in lonely]
        result.pairs = _ordered(found)
        return result


def _all_ranked(dump: Dump) -> bool:
    return bool(dump.records) and all(record.rank is not None for record in dump)


class SingleFileMatcher:
    """Two single files, whatever their names: their tensors pair by member name (or directly)."""

    name = "single file vs single file"

    def applies(self, golden: Dump, my: Dump) -> bool:
        return golden.root.is_file() and my.root.is_file()

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        result = MatchResult()
        if len(golden.records) == 1 and len(my.records) == 1:
            g, m = golden.records[0], my.records[0]
            result.pairs = [Pair(f"{g.node}/{g.leaf}", g, m, m.token, 0)]
            return result
        by_leaf = {record.leaf: record for record in my}
        found = []
        for record in golden:
            partner = by_leaf.pop(record.leaf, None)
            if partner is None:
                result.unmatched.append(
                    Unmatched("golden", record, "no member with this name in the my file")
                )
            else:
                found.append(
                    (
                        (partner.order, record.order),
                        Pair(f"{record.node}/{record.leaf}", record, partner, partner.token, 0),
                    )
                )
        result.unmatched += [
            Unmatched("my", r, "no member with this name in the golden file") for r in by_leaf.values()
        ]
        result.pairs = _ordered(found)
        return result


class ManualMatcher:
    """A manual dump (``golden_tensor/metadata.json``) names the my file of every golden tensor."""

    name = "manual dump metadata"

    def applies(self, golden: Dump, my: Dump) -> bool:
        return golden.kind == "manual"

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        result = MatchResult()
        my_paths = golden.info.get("my_paths", {})
        found = []
        for record in golden:
            if not _wanted(record, options):
                continue
            path = my_paths.get((record.token, record.node))
            if path is None:
                result.unmatched.append(Unmatched("golden", record, "metadata.json names no my file"))
                continue
            partner = TensorRecord(path, record.token, record.node, record.leaf, order=record.order)
            key = f"{token_label(record.token)}/{record.node}/{record.leaf}"
            found.append(((record.order,), Pair(key, record, partner, record.token, 0)))
        result.pairs = _ordered(found)
        return result
