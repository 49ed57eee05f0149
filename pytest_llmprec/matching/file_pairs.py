"""From a linked node pair to tensor file pairs (msit-spec §5.5 steps 1-5).

Files are chosen by location (all outputs, all inputs, one file), the torch side drops nested
outputs (``output_1_0``), msit's QKV and rope special cases narrow or transform the lists, and
the two lists pair in order when they are as long, else every combination whose element counts
agree (msit pairs every combination and its report writer drops the count mismatches).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..dumps.base import TensorRecord
from ..errors import DumpFormatError
from .op_mapping import ALL_INPUT, ALL_OUTPUT
from .policies import NodeLink
from .records import RopeRecord, ShardedRecord, StatsRecord, merge_dim, record_shape

_NESTED_OUTPUT = re.compile(r"output_\d+_\d+")
_QKV_PROJECTION = re.compile(r"\.self_attn\.([qkv])_proj$")
_QKV_INDEX = {"q": 0, "k": 1, "v": 2}


def select(records: list[TensorRecord], location: str, runtime: str) -> list[TensorRecord]:
    """The records of one node at ``location``: torch ``output*``/``input*`` files or one stem;
    ATB ``after/outtensor*``, ``after/intensor*`` + ``before/intensor*`` or ``after/{stem}``."""
    if runtime == "torch":
        if location == ALL_OUTPUT:
            return [r for r in records if r.role == "output" and not _NESTED_OUTPUT.fullmatch(r.leaf)]
        if location == ALL_INPUT:
            return [r for r in records if r.role == "input"]
        return [r for r in records if r.leaf == location]
    if location == ALL_OUTPUT:
        return [r for r in records if r.leaf.startswith("after/outtensor")]
    if location == ALL_INPUT:
        after = [r for r in records if r.leaf.startswith("after/intensor")]
        return after + [r for r in records if r.leaf.startswith("before/intensor")]
    return [r for r in records if r.leaf == location]


def qkv_special(
    torch_node: str, torch_files: list[TensorRecord], atb_files: list[TensorRecord]
) -> list[TensorRecord]:
    """A q/k/v projection's output pairs with the matching output of the packed QKV operation."""
    found = _QKV_PROJECTION.search(torch_node)
    if found is None or not any(r.leaf == "output" for r in torch_files):
        return atb_files
    index = _QKV_INDEX[found.group(1)]
    passes = [
        [f"0_Attention/0_QKVLinearSplitPack/after/outtensor{index}"]
        + (["0_Attention/1_RotaryPositionEmbedding/before/intensor0"] if index == 0 else []),
        [f"0_QKVLinearSplitPack/1_SplitOperation/after/outtensor{index}"],
    ]
    for needles in passes:
        kept = [r for r in atb_files if any(f"{r.node}/{r.leaf}".endswith(n) for n in needles)]
        if kept:
            return kept
    return atb_files


def rope_special(
    torch_node: str, torch_files: list[TensorRecord], atb_files: list[TensorRecord]
) -> tuple[list[TensorRecord], list[TensorRecord]] | None:
    """msit's rope case: five ATB rope inputs (q, k, cos, sin, seqlen) -> the cos and sin tables,
    de-interleaved; the torch rotary tables cut to the positions they stand for. None if it does
    not apply."""
    if len(atb_files) != 5 or not any("ropeoperation" in r.node.lower() for r in atb_files):
        return None
    by_stem = {r.leaf.rsplit("/", 1)[-1]: r for r in atb_files}
    seqlen, cos, sin = by_stem.get("intensor4"), by_stem.get("intensor2"), by_stem.get("intensor3")
    if seqlen is None or cos is None or sin is None:
        return None
    atb = [RopeRecord(**_fields(cos)), RopeRecord(**_fields(sin))]
    if "rotary" not in torch_node.lower():
        return torch_files, atb
    tables = [
        RopeRecord(**_fields(record), seqlen=seqlen, partner=partner, table=table)
        for record, partner, table in zip(torch_files, (cos, sin), ("cos", "sin"), strict=False)
    ]
    return tables, atb


def _fields(record: TensorRecord) -> dict:
    from .records import base_fields

    return base_fields(record)


def element_count(record: TensorRecord, cache: dict[tuple[str, str | None], int | None]) -> int | None:
    """The element count of a record's tensor from the file headers; None if unreadable."""
    if isinstance(record, StatsRecord):
        return record.tensor_elements()
    if isinstance(record, ShardedRecord) and len(record.shards) > 1:
        shapes = [_shape(shard, cache) for shard in record.shards]
        partner = _shape(record.partner_shards[0], cache)
        if shapes[0] is None or partner is None or any(s is None for s in shapes):
            return None
        dim = merge_dim(shapes[0], len(shapes), partner, len(record.partner_shards))
        if dim is None:
            return math.prod(shapes[0])
        return math.prod(shapes[0]) // max(shapes[0][dim], 1) * sum(s[dim] for s in shapes)
    if isinstance(record, ShardedRecord):
        record = record.shards[0]
    shape = _shape(record, cache)
    return None if shape is None else math.prod(shape)


def _shape(record: TensorRecord, cache: dict) -> tuple[int, ...] | None:
    key = (record.path, record.member)
    if key not in cache:
        try:
            cache[key] = record_shape(record)
        except (DumpFormatError, OSError, ValueError, RuntimeError):
            cache[key] = None
    return cache[key]


@dataclass
class LinkFiles:
    """The file pairs of one link, and why candidate files did not pair."""

    pairs: list[tuple[TensorRecord, TensorRecord]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


Wrap = Callable[[TensorRecord, TensorRecord], tuple[TensorRecord, TensorRecord]]


def link_files(
    link: NodeLink,
    torch_records: list[TensorRecord],
    atb_records: list[TensorRecord],
    torch_runtime: str,
    wrap: Wrap,
    counts: dict[tuple[str, str | None], int | None],
) -> LinkFiles:
    """Pair the files of ``link``: select, special cases, pair; ``wrap`` turns a (torch, ATB) file
    pair into the records compared (e.g. merged rank shards)."""
    result = LinkFiles()
    torch_files = select(torch_records, link.torch_location, torch_runtime)
    atb_files = select(atb_records, link.atb_location, "atb")
    transformed = False
    if torch_runtime == "torch":
        atb_files = qkv_special(link.torch.name, torch_files, atb_files)
        statistics = any(isinstance(r, StatsRecord) for r in atb_files)  # no tensor to cut
        rope = None if statistics else rope_special(link.torch.name, torch_files, atb_files)
        if rope is not None:
            torch_files, atb_files = rope
            transformed = True
    if not torch_files or not atb_files:
        missing = []
        if not torch_files:
            missing.append(f"no {_where(link.torch_location)} of {link.torch.path} dumped")
        if not atb_files:
            missing.append(f"no {_where(link.atb_location)} of {link.atb.path} dumped")
        result.problems.append("; ".join(missing))
        return result
    same_length = len(torch_files) == len(atb_files)
    if same_length:
        combos = list(zip(torch_files, atb_files, strict=True))
    else:
        combos = [(t, a) for t in torch_files for a in atb_files]
    check = (link.checked or not same_length) and not transformed
    for t, a in combos:
        t, a = wrap(t, a)
        if check:
            t_count, a_count = element_count(t, counts), element_count(a, counts)
            if t_count is not None and a_count is not None and t_count != a_count:
                if same_length:
                    result.problems.append(
                        f"{t.node}/{t.leaf} ({t_count} elements) and {a.node}/{a.leaf} ({a_count}) "
                        "differ in size"
                    )
                continue
        result.pairs.append((t, a))
    if not same_length and not result.pairs:
        result.problems.append(
            f"{len(torch_files)} files of {link.torch.path} and {len(atb_files)} of {link.atb.path}, "
            "no two of the same size"
        )
    return result


def _where(location: str) -> str:
    return {ALL_OUTPUT: "output", ALL_INPUT: "input"}.get(location, f"file {location}")
