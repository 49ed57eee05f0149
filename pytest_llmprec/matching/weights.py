"""``--llm-weights``: pairing the weights of two models, de-quantising quantised ones (msit-spec §4.4).

A side is a folder of ``.safetensors`` files (every shard, not only the first as msit reads),
plain tensor files named after the weights, or the ``weights/`` folder of a torch dump
(``root.`` is dropped from its names). Weights pair by name; a my weight ``{name}`` with a
``{base}weight_scale`` (and ``{base}weight_offset``) beside it, integer-typed, is compared as
``(weight - offset) * scale`` (``records.DequantRecord``). Only the final ``weight`` of a name is
replaced (msit replaces every occurrence of ``weight`` in it).
"""

from __future__ import annotations

import fnmatch

from ..dumps.base import Dump, TensorRecord
from ..errors import DumpFormatError
from .base import MatchOptions, MatchResult, Pair, Unmatched
from .records import DequantRecord, base_fields

WEIGHTS_TOKEN = "weights"
SCALE, OFFSET = "weight_scale", "weight_offset"


def weight_records(dump: Dump) -> tuple[dict[str, TensorRecord], list[str]]:
    """The weights of a dump by name, and notes on names found twice."""
    found: dict[str, TensorRecord] = {}
    notes = []
    for record in dump:
        if dump.kind == "torch":
            if record.token != WEIGHTS_TOKEN:
                continue
            name = record.node.removeprefix("root.")
        else:
            name = record.member if record.member is not None else record.node
        if name in found:
            notes.append(
                f"weight {name} is in {found[name].describe()} and {record.describe()}: the first is used"
            )
            continue
        found[name] = record
    return found, notes


def _quant_partners(
    name: str, weights: dict[str, TensorRecord]
) -> tuple[TensorRecord | None, TensorRecord | None]:
    if not name.endswith("weight"):
        return None, None
    base = name[: -len("weight")]
    return weights.get(base + SCALE), weights.get(base + OFFSET)


def _is_integer(record: TensorRecord) -> bool:
    import torch

    try:
        dtype = record.probe().dtype
    except (DumpFormatError, OSError):
        return False
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def _selected(name: str, options: MatchOptions) -> bool:
    return not options.select or any(fnmatch.fnmatchcase(name, glob) for glob in options.select)


class WeightsMatcher:
    """Float weights against float or quantised weights, by name."""

    name = "weights (--llm-weights)"
    mode = "weights"

    def applies(self, golden: Dump, my: Dump) -> bool:
        return golden.kind in ("files", "torch") and my.kind in ("files", "torch")

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        result = MatchResult()
        golden_weights, notes = weight_records(golden)
        my_weights, my_notes = weight_records(my)
        result.notes += notes + my_notes
        consumed: set[str] = set()
        found: list[tuple[tuple, Pair]] = []
        dequantised = 0
        for name, record in golden_weights.items():
            if not _selected(name, options):
                continue
            partner = my_weights.get(name)
            if partner is None:
                result.unmatched.append(Unmatched("golden", record, "no weight of this name in the my model"))
                continue
            consumed.add(name)
            scale, offset = _quant_partners(name, my_weights)
            if scale is not None and name not in (SCALE, OFFSET) and _is_integer(partner):
                partner = DequantRecord(**base_fields(partner), scale=scale, offset=offset)
                consumed.update(n for n, r in my_weights.items() if r is scale or r is offset)
                dequantised += 1
            key = f"{WEIGHTS_TOKEN}/{name}"
            found.append(((partner.order, record.order), Pair(key, record, partner, WEIGHTS_TOKEN, 0)))
        for name, record in my_weights.items():
            if name not in consumed and name not in golden_weights and _selected(name, options):
                result.unmatched.append(Unmatched("my", record, "no weight of this name in the golden model"))
        ordered = [pair for _, pair in sorted(found, key=lambda item: item[0])]
        result.pairs = [Pair(p.key, p.golden, p.my, p.token, i) for i, p in enumerate(ordered)]
        if dequantised:
            result.notes.append(
                f"{dequantised} quantised my weights are compared de-quantised: (w - offset) * scale"
            )
        if not golden_weights or not my_weights:
            empty = "golden" if not golden_weights else "my"
            result.notes.append(
                f"the {empty} side holds no weights (safetensors, tensor files or a weights/ folder)"
            )
        return result
