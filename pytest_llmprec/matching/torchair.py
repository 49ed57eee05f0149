"""TorchAir graph dumps: GE vs FX and GE (fused) vs GE (fusion off), msit-spec §5.7, as a ``Matcher``.

The GE graph text files (``dynamo_original_graph_*.txt``, ``formats.ge_graph``) link GE operations
to FX nodes (``_fx_tensor_name``) and name the operations a fused dump file stands for (its name is
their names run together). Per rank and graph group, for each token of both dumps:

* GE vs FX: a dumped GE op is split into graph op names (longest known prefix first); one op pairs
  its inputs and outputs with its FX node's, a fused op pairs the first op's FX inputs and the last
  op's FX outputs; a Cast or TransData that is not in the graph pairs its own input i with output i.
* GE vs GE: a fused op (``AutomaticBufferFusionOp``) is rebuilt from the fusion-off dump: the
  inputs of its constituents that no other constituent produces, the last constituent's outputs;
  other ops pair with the golden op of the same name.

Pair keys: ``token0/[rank0/][graph1/]{golden op}/{tensor} ↔ {my op}/{tensor}``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..dumps.base import Dump, TensorRecord, natural_key
from ..errors import DumpFormatError
from .base import Explanation, MatchOptions, MatchResult, Pair, Unmatched, token_label
from .by_name import _wanted
from .tokens import align_tokens

FUSED_TYPE = "AutomaticBufferFusionOp"
SELF_CHECKED = ("Cast", "TransData")
_ORIGINAL_GRAPH = re.compile(r"dynamo_original_graph_.*\.txt")
_FIRST_NUMBER = re.compile(r"\d+")
_FX_OUTPUT = re.compile(r"(.+)\.OUTPUT\.(\d+)")


@dataclass
class _Op:
    """One dumped GE op or FX node in one token: its tensors by (role, index)."""

    name: str
    type: str
    tensors: dict[tuple[str, int], TensorRecord] = field(default_factory=dict)

    def sorted(self, role: str) -> list[TensorRecord]:
        return [self.tensors[key] for key in sorted(k for k in self.tensors if k[0] == role)]


Groups = dict[int | None, list[dict[int | str, dict[str, _Op]]]]
"""rank -> graph groups in order -> token -> op name -> op."""


def _fx_group(record: TensorRecord, cache: dict[str, list[str]]) -> str:
    """FX: the model folder of the rank layout, or the position of an old layout's ``gm_*_dump``."""
    folder = os.path.dirname(record.path)
    name = os.path.basename(folder)
    if name.startswith("gm_") and name.endswith("_dump"):
        token_folder = os.path.dirname(folder)
        if token_folder not in cache:
            with os.scandir(token_folder) as entries:
                cache[token_folder] = sorted((e.name for e in entries if e.is_dir()), key=natural_key)
        return f"{cache[token_folder].index(name):08d}"
    return os.path.dirname(folder)


def _groups(dump: Dump) -> Groups:
    keys: dict[int | None, dict[str, dict[int | str, dict[str, _Op]]]] = {}
    cache: dict[str, list[str]] = {}
    for record in dump:
        if dump.kind == "ge":
            key = os.path.dirname(os.path.dirname(record.path))  # the model_id folder
        else:
            key = _fx_group(record, cache)
        ops = keys.setdefault(record.rank, {}).setdefault(key, {}).setdefault(record.token, {})
        op = ops.setdefault(record.node, _Op(record.node, record.node_type))
        op.tensors[(record.role, record.index)] = record
    return {rank: [groups[key] for key in sorted(groups, key=natural_key)] for rank, groups in keys.items()}


def _graph_files(dump: Dump, rank: int | None) -> list[str]:
    paths = [p for p in dump.info.get("graphs") or [] if _ORIGINAL_GRAPH.fullmatch(os.path.basename(p))]
    if rank is not None and any("rank_" in os.path.basename(p) for p in paths):
        paths = [p for p in paths if f"rank_{rank}_" in os.path.basename(p)]

    def number(path: str) -> int:
        found = _FIRST_NUMBER.search(os.path.basename(path))
        return int(found.group()) if found else 0

    return sorted(paths, key=lambda p: (number(p), p))


def decompose(name: str, graph) -> list[str]:
    """Split a dumped op name into graph op names, longest known prefix first ([] if it does not split)."""
    if graph is None:
        return []
    if name in graph:
        return [name]
    parts, rest = [], name
    while rest:
        for length in range(len(rest), 0, -1):
            if rest[:length] in graph:
                parts.append(rest[:length])
                rest = rest[length:]
                break
        else:
            return []
    return parts


def _fx_output(name: str) -> tuple[str, int] | None:
    found = _FX_OUTPUT.fullmatch(name)
    return (found.group(1), int(found.group(2))) if found else None


@dataclass
class _Line:
    tokens: list[int | str] = field(default_factory=list)
    pairs: int = 0
    types: tuple[str, str] = ("", "")


class TorchairMatcher:
    """GE vs FX dumps (either side golden) and GE vs GE dumps (fusion off as golden)."""

    name = "torchair graphs (GE vs FX, GE fused vs GE fusion off)"

    def applies(self, golden: Dump, my: Dump) -> bool:
        return {golden.kind, my.kind} == {"ge", "fx"} or golden.kind == my.kind == "ge"

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        return _TorchairRun(golden, my, options).match()


class _TorchairRun:
    def __init__(self, golden: Dump, my: Dump, options: MatchOptions) -> None:
        self.golden, self.my, self.options = golden, my, options
        self.ge_vs_ge = golden.kind == my.kind == "ge"
        self.ge = my if my.kind == "ge" else golden
        self.result = MatchResult()
        self.found: list[tuple[tuple, Pair]] = []
        self.keys: set[str] = set()
        self.used: set[tuple[str, str | None]] = set()
        self.lines: dict[tuple[str, str, str, str], _Line] = {}
        self.graph_cache: dict[str, object] = {}
        self.reasons: dict[tuple[str, str], str] = {}

    def graph(self, path: str | None):
        if path is None:
            return None
        if path not in self.graph_cache:
            from ..formats.ge_graph import read_ge_graph

            try:
                self.graph_cache[path] = read_ge_graph(path)
            except DumpFormatError as exc:
                self.result.notes.append(f"{exc}; its operations are not known to the matching")
                self.graph_cache[path] = None
        return self.graph_cache[path]

    def match(self) -> MatchResult:
        golden_groups, my_groups = _groups(self.golden), _groups(self.my)
        token_pairs, note = align_tokens(self.golden, self.my, self.options.tokens)
        if note:
            self.result.notes.append(note)
        for g_rank, m_rank in self._rank_pairs(golden_groups, my_groups):
            g_list, m_list = golden_groups[g_rank], my_groups[m_rank]
            ge_rank = m_rank if self.ge is self.my else g_rank
            graphs = _graph_files(self.my if self.ge_vs_ge or self.ge is self.my else self.golden, ge_rank)
            if self.ge_vs_ge and not graphs:
                graphs = _graph_files(self.golden, g_rank)
            ge_groups = m_list if self.ge is self.my else g_list
            if graphs and len(graphs) != len(ge_groups):
                self.result.notes.append(
                    f"rank {ge_rank}: {len(ge_groups)} GE graph dump folders but {len(graphs)} graph files; "
                    "they pair by position"
                )
            if len(g_list) != len(m_list):
                self.result.notes.append(
                    f"rank {ge_rank}: the golden dump has {len(g_list)} graph groups, "
                    f"the my dump {len(m_list)}"
                )
            rank_part = (
                ""
                if g_rank is None and m_rank is None
                else f"rank{m_rank if m_rank is not None else g_rank}/"
            )
            for index in range(min(len(g_list), len(m_list))):
                graph = self.graph(graphs[index] if index < len(graphs) else None)
                group_part = f"graph{index}/" if max(len(g_list), len(m_list)) > 1 else ""
                for position, (g_token, m_token) in enumerate(token_pairs):
                    g_ops, m_ops = g_list[index].get(g_token), m_list[index].get(m_token)
                    if g_ops is None or m_ops is None:
                        continue
                    context = (position, m_token, rank_part + group_part)
                    if self.ge_vs_ge:
                        self._ge_vs_ge(g_ops, m_ops, graph, context)
                    else:
                        self._ge_vs_fx(g_ops, m_ops, graph, context)
        self._leftovers()
        ordered = [pair for _, pair in sorted(self.found, key=lambda item: item[0])]
        self.result.pairs = [Pair(p.key, p.golden, p.my, p.token, i) for i, p in enumerate(ordered)]
        self.result.explanation += [
            Explanation(tuple(line.tokens), g, line.types[0], m, line.types[1], rule, reason, line.pairs)
            for (g, m, rule, reason), line in self.lines.items()
        ]
        return self.result

    def _rank_pairs(self, golden: Groups, my: Groups) -> list[tuple[int | None, int | None]]:
        g_ranks, m_ranks = set(golden), set(my)
        if g_ranks == {None} or m_ranks == {None}:
            if g_ranks != m_ranks and len(g_ranks | m_ranks) > 1:
                self.result.notes.append(
                    "only one dump has worldsize*_global_rank* folders: "
                    "its lowest rank pairs with the other dump"
                )
            return [(min(g_ranks, key=_rank_key), min(m_ranks, key=_rank_key))] if g_ranks and m_ranks else []
        common = sorted(g_ranks & m_ranks)
        missing = sorted((g_ranks ^ m_ranks) - {None})
        if missing:
            self.result.notes.append(
                f"ranks {missing} are in only one dump and are not compared (golden ranks {sorted(g_ranks)}, "
                f"my ranks {sorted(m_ranks)})"
            )
        return [(rank, rank) for rank in common]

    # --- pairs ------------------------------------------------------------------------------

    def _pair(
        self,
        golden: TensorRecord,
        my: TensorRecord,
        context: tuple,
        rule: str,
        reason: str,
        nodes: tuple[str, str],
    ) -> None:
        position, my_token, prefix = context
        if self.options.select and not (_wanted(golden, self.options) or _wanted(my, self.options)):
            return
        key = f"{token_label(my_token)}/{prefix}{golden.node}/{golden.leaf} ↔ {my.node}/{my.leaf}"
        if key in self.keys:
            return
        self.keys.add(key)
        ge_side = my if self.ge is self.my else golden
        self.found.append(((position, ge_side.order, golden.order, key), Pair(key, golden, my, my_token, 0)))
        self.used.update([(golden.path, golden.member), (my.path, my.member)])
        line = self.lines.setdefault(
            (nodes[0], nodes[1], rule, reason), _Line(types=(golden.node_type, my.node_type))
        )
        line.pairs += 1
        if my_token not in line.tokens:
            line.tokens.append(my_token)

    def _note_op(self, golden_node: str, my_node: str, reason: str, token: int | str) -> None:
        """Record why an op found no partner (for the explanation and its unmatched tensors)."""
        line = self.lines.setdefault((golden_node, my_node, "", reason), _Line())
        if token not in line.tokens:
            line.tokens.append(token)
        for role, nodes in (("golden", golden_node), ("my", my_node)):
            for node in filter(None, nodes.split("+")):
                self.reasons.setdefault((role, node), reason)

    def _ge_vs_fx(self, g_ops: dict[str, _Op], m_ops: dict[str, _Op], graph, context: tuple) -> None:
        ge_ops, fx_ops = (m_ops, g_ops) if self.ge is self.my else (g_ops, m_ops)
        token = context[1]
        for op in ge_ops.values():
            parts = decompose(op.name, graph)
            if not parts:
                if any(kind in op.type for kind in SELF_CHECKED):
                    for i, (inp, out) in enumerate(
                        zip(op.sorted("input"), op.sorted("output"), strict=False)
                    ):
                        self._pair(
                            inp,
                            out,
                            context,
                            "self-check",
                            f"{op.type} not in the graph: input {i} vs output {i}",
                            (op.name, op.name),
                        )
                else:
                    where = graph.path if graph is not None else "no graph file"
                    self._note_op(*self._sides(op.name, ""), f"not an op of the GE graph ({where})", token)
                continue
            first, last = graph.op(parts[0]), graph.op(parts[-1])
            rule = "fx tensor name" if len(parts) == 1 else "fused: first op's inputs, last op's outputs"
            if len(parts) > 1:
                inner = f"inside the fused GE op {op.name}: "
                inner += "only its first op's inputs and last op's outputs exist"
                for part in parts:
                    for fx_name in graph.op(part).fx_tensor_names:
                        named = _fx_output(fx_name)
                        if named:
                            self.reasons.setdefault((self._fx_role, named[0]), inner)
            input_node = next((_fx_output(n)[0] for n in first.fx_tensor_names if _fx_output(n)), None)
            fx_in = fx_ops.get(input_node) if input_node else None
            if fx_in is not None:
                for i, record in enumerate(op.sorted("input")):
                    partner = fx_in.tensors.get(("input", i))
                    if partner is not None:
                        self._pair_sides(record, partner, context, rule, f"{'+'.join(parts)} -> {fx_in.name}")
            for j, record in enumerate(op.sorted("output")):
                named = _fx_output(last.fx_tensor_names[j]) if j < len(last.fx_tensor_names) else None
                if named is None:
                    continue
                fx_out = fx_ops.get(named[0])
                partner = fx_out.tensors.get(("output", named[1])) if fx_out else None
                if partner is None:
                    self._note_op(
                        *self._sides(op.name, named[0]),
                        f"the graph names FX tensor {last.fx_tensor_names[j]}, not in the FX dump",
                        token,
                    )
                    continue
                self._pair_sides(record, partner, context, rule, f"{'+'.join(parts)} -> {fx_out.name}")

    @property
    def _fx_role(self) -> str:
        return "golden" if self.ge is self.my else "my"

    def _sides(self, ge_name: str, other: str) -> tuple[str, str]:
        return (other, ge_name) if self.ge is self.my else (ge_name, other)

    def _pair_sides(
        self, ge_record: TensorRecord, other: TensorRecord, context: tuple, rule: str, reason: str
    ) -> None:
        golden, my = (other, ge_record) if self.ge is self.my else (ge_record, other)
        self._pair(golden, my, context, rule, reason, (golden.node, my.node))

    def _ge_vs_ge(self, g_ops: dict[str, _Op], m_ops: dict[str, _Op], graph, context: tuple) -> None:
        token = context[1]
        for op in m_ops.values():
            if op.type.startswith(FUSED_TYPE):
                self._fused(op, g_ops, graph, context)
            elif op.name in g_ops:
                golden = g_ops[op.name]
                for key, record in op.tensors.items():
                    partner = golden.tensors.get(key)
                    if partner is not None:
                        self._pair(partner, record, context, "same op name", "", (op.name, op.name))
            else:
                self._note_op("", op.name, f"golden data missing: no op {op.name} in the golden dump", token)

    def _fused(self, op: _Op, g_ops: dict[str, _Op], graph, context: tuple) -> None:
        token = context[1]
        parts = decompose(op.name, graph)
        if len(parts) < 2:
            where = graph.path if graph is not None else "no graph file"
            self._note_op(
                "", op.name, f"the fused op's name does not split into op names of the graph ({where})", token
            )
            return
        names = set(parts)
        inner = f"inside the fused op {op.name} of the my dump: only its outer inputs and last outputs exist"
        for part in parts:
            self.reasons.setdefault(("golden", part), inner)
        inputs: list[tuple[TensorRecord | None, str]] = []
        for part in parts:
            golden = g_ops.get(part)
            for j, producer in enumerate(graph.op(part).producers()):
                if producer is None or producer in names:
                    continue
                inputs.append((golden.tensors.get(("input", j)) if golden else None, part))
        rule, reason = "fusion rebuilt", f"{'+'.join(parts)} from the fusion-off dump"
        golden_name = "+".join(parts)
        for i, record in enumerate(op.sorted("input")):
            partner, part = inputs[i] if i < len(inputs) else (None, parts[-1])
            if partner is None:
                self._note_op(golden_name, op.name, f"golden op {part} has no dump of this input", token)
                continue
            self._pair(partner, record, context, rule, reason, (golden_name, op.name))
        last = g_ops.get(parts[-1])
        for i, record in enumerate(op.sorted("output")):
            partner = last.tensors.get(("output", i)) if last else None
            if partner is None:
                self._note_op(golden_name, op.name, f"golden op {parts[-1]} has no dump of output {i}", token)
                continue
            self._pair(partner, record, context, rule, reason, (golden_name, op.name))

    # --- leftovers --------------------------------------------------------------------------

    def _leftovers(self) -> None:
        reasons = {"golden": "no my tensor pairs with it", "my": "no golden tensor pairs with it"}
        for role, dump in (("golden", self.golden), ("my", self.my)):
            for record in dump:
                if (record.path, record.member) in self.used or not _wanted(record, self.options):
                    continue
                reason = self.reasons.get((role, record.node), reasons[role])
                self.result.unmatched.append(Unmatched(role, record, reason))


def _rank_key(rank: int | None) -> int:
    return -1 if rank is None else rank
