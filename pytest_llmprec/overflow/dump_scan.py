"""Scanning the tensors of a dump for overflow, node by node, in execution order.

A node's scanned tensors are its outputs: ``after/outtensor*`` of an ATB operation (its
``before/outtensor*`` files hold the output buffers before the operation ran) and the outputs of a
torch, GE or FX node; in plain folders of tensor files every file. Inputs are the outputs of
earlier nodes and weights are not computed, so neither is scanned. Files that ``formats.read_raw``
reads are scanned through its memory map (no copy): where the C kernel is built, one pass over the
bit patterns of a float file finds its largest magnitude, and a file whose values are all finite
and below the near bound is clean; any other is counted in detail by ``scan``. Files a raw read
declines are loaded with ``load_tensor``. ATB statistics-only dumps (``--type tensor stats``) are
judged from their max/min lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..compare.native import _kernel
from ..dumps.base import Dump, TensorRecord
from ..formats.atb_header import DTYPE_NAMES, read_atb_stats
from ..formats.raw_tensor import RawTensor
from .finding import DEFAULT_NEAR, OverflowFinding, dtype_limits
from .scanning import MAGNITUDE_WIDTHS, bound_pattern, clean_finding, scan

SCANNED_ROLES = ("output", "tensor")


@dataclass(frozen=True)
class ScanNode:
    """The scanned tensors of one node of one token (and rank), in the dump's execution order."""

    token: int | str
    node: str
    node_type: str
    rank: int | None
    records: tuple[TensorRecord, ...]

    @property
    def order(self) -> int:
        return self.records[0].order

    @property
    def key(self) -> str:
        """``token0/root.model.layers.1.mlp`` (``rank1/...`` first for multi-device dumps)."""
        rank = "" if self.rank is None else f"rank{self.rank}/"
        return f"{rank}token{self.token}/{self.node}"


def is_scanned(record: TensorRecord, kind: str) -> bool:
    if record.role not in SCANNED_ROLES:
        return False
    return kind != "atb" or record.leaf.startswith("after/")


def scan_nodes(dump: Dump) -> list[ScanNode]:
    """The nodes of ``dump`` with at least one scanned tensor, ordered by their first tensor."""
    groups: dict[tuple[int | str, str, int | None], list[TensorRecord]] = {}
    for record in dump.records:
        if is_scanned(record, dump.kind):
            groups.setdefault((record.token, record.node, record.rank), []).append(record)
    nodes = [
        ScanNode(token, node, records[0].node_type, rank, tuple(records))
        for (token, node, rank), records in groups.items()
    ]
    return sorted(nodes, key=lambda node: node.order)


def finding_from_statistics(path: str, near: float | None, saturation: bool) -> OverflowFinding:
    """What the max/min lines of an ATB statistics file show: each kind present counts once."""
    stats = read_atb_stats(path)
    dtype = DTYPE_NAMES.get(stats.get("dtype"), "torch.float32")
    shape = tuple(stats.get("dims", ()))
    extremes = [stats[key] for key in ("max", "min") if isinstance(stats.get(key), float)]
    limits = dtype_limits(dtype)
    high = limits.high if limits else math.inf
    finite = [v for v in extremes if math.isfinite(v)]
    bound = limits.near_bound(near) if limits else math.inf
    return OverflowFinding(
        dtype,
        shape,
        math.prod(shape),
        nan=int(any(math.isnan(v) for v in extremes)),
        pos_inf=int(math.inf in extremes),
        neg_inf=int(-math.inf in extremes),
        saturated=int(any(abs(v) == high for v in finite)),
        near=int(near is not None and any(bound <= abs(v) < high for v in finite)),
        limit=limits.high if limits else None,
        near_fraction=near,
        saturation=saturation,
        note="from the statistics file's max/min: each kind found counts once",
    )


def scan_record(
    record: TensorRecord,
    *,
    near: float | None = DEFAULT_NEAR,
    saturation: bool = True,
    statistics: bool = False,
) -> OverflowFinding:
    """The finding of one dumped tensor; raises the reader's ``DumpFormatError`` or ``OSError``.

    ``statistics``: the dump holds ATB statistics files instead of tensors.
    """
    if statistics:
        return finding_from_statistics(record.path, near, saturation)
    raw = record.load_raw()
    clean = _clean_raw(raw, near, saturation) if raw is not None else None
    if clean is not None:
        return clean
    tensor = raw.to_torch() if raw is not None else record.load()
    return scan(tensor, near=near, saturation=saturation)


def _clean_raw(raw: RawTensor, near: float | None, saturation: bool) -> OverflowFinding | None:
    """The finding of a raw float tensor whose values are all finite and below the near bound, from
    the largest magnitude the C kernel finds in one pass; None for any other (to be counted)."""
    if _kernel is None or raw.dtype not in MAGNITUDE_WIDTHS:
        return None
    if _kernel.largest_magnitude(raw.data, MAGNITUDE_WIDTHS[raw.dtype]) >= bound_pattern(raw.dtype, near):
        return None
    return clean_finding(raw.dtype, raw.shape, near, saturation)
