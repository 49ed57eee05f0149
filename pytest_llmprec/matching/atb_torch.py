"""Tree matching of a torch dump with an ATB dump (either side golden) and of ATB float with ATB
quant: msit's tree comparison (msit-spec §5.1-§5.6) as a ``Matcher``.

Per aligned token pair, the golden and my model trees are linked by the policies of the level
(``policies``), each link's files are paired (``file_pairs``), and ranks are paired rank with rank
(same rank count) or merged (tensor-parallel shards, ``records.ShardedRecord``). Pair keys name
both sides: ``token0/root.model.layers.3.self_attn/output ↔ 3_LlamaLayer/0_Attention/after/outtensor0``
(with ``rank{R}/`` after the token when ranks pair one to one). Cross-runtime levels compare
what nodes produce: the inputs of a paired node are not listed as unmatched (a note counts them).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from ..dumps.base import Dump, TensorRecord, natural_key
from .base import Explanation, MatchOptions, MatchResult, Pair, Unmatched, token_label
from .file_pairs import LinkFiles, link_files
from .op_mapping import OpMapping
from .policies import DETAIL_ORDER, NodeLink, TreePair, level_links
from .ranks import Process, compared_run
from .records import RopeRecord, ShardedRecord
from .tokens import align_tokens
from .trees import (
    TopologyError,
    TreeNode,
    atb_tree,
    atb_tree_from_folders,
    torch_tree,
    tree_from_module_names,
)

WARMUP_TOKEN = "warmup"
PAIR_ARROW = " ↔ "


@dataclass
class _Tree:
    root: TreeNode
    source: str
    tops: frozenset[str] = frozenset()
    nodes: dict[str, TreeNode] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = {node.path: node for node in self.root.walk() if node.path}


class _Side:
    """One dump in tree matching: its compared run, record indexes and model trees."""

    def __init__(self, dump: Dump, role: str, notes: list[str]) -> None:
        self.dump = dump
        self.role = role
        self.runtime = dump.kind
        self.notes = notes
        self.run, self.others, note = compared_run(dump)
        if note:
            notes.append(note)
        if not self.run:  # a dump without process folders (hand-built index): one process
            self.run = [Process("", str(dump.root), None, "", "", list(dump.records))]
        self.nodes: list[dict[tuple[int | str, str], list[TensorRecord]]] = []
        self.leaves: list[dict[tuple[int | str, str, str], TensorRecord]] = []
        for process in self.run:
            nodes: dict[tuple[int | str, str], list[TensorRecord]] = {}
            leaves: dict[tuple[int | str, str, str], TensorRecord] = {}
            for record in process.records:
                nodes.setdefault((record.token, record.node), []).append(record)
                leaves[(record.token, record.node, record.leaf)] = record
            self.nodes.append(nodes)
            self.leaves.append(leaves)
        self.trees = self._torch_trees(notes) if self.runtime == "torch" else self._atb_trees(notes)
        self._token_trees: dict[int | str, list[_Tree]] = {}

    @property
    def primary(self) -> Process:
        return self.run[0]

    def _torch_trees(self, notes: list[str]) -> list[_Tree]:
        entry = (self.dump.info.get("processes") or {}).get(self.primary.folder) or {}
        data = entry.get("model_tree")
        source = f"{self.primary.path}/model_tree.json"
        if data is not None:
            try:
                return [_Tree(torch_tree(data, source), source)]
            except TopologyError as exc:
                notes.append(f"{exc}; the module tree is rebuilt from the module folder names")
        else:
            notes.append(
                f"no model_tree.json in {self.primary.path}: the module tree is rebuilt from the folder names"
            )
        names = {r.node for r in self.primary.records if "@" not in r.node and isinstance(r.token, int)}
        return [_Tree(tree_from_module_names(names), "module folder names")]

    def _atb_trees(self, notes: list[str]) -> list[_Tree]:
        models = (self.dump.info.get("topology") or {}).get(self.primary.pid) or []
        trees = []
        for model in models:
            try:
                root, problems = atb_tree(model.get("model"), model.get("start_order") or 0, model["path"])
            except TopologyError as exc:
                notes.append(f"{exc}; its operations are matched by their folder names")
                continue
            notes.extend(problems)
            tops = frozenset(child.path for child in root.children)
            trees.append(_Tree(root, model["path"], tops))
        dumped = {r.node for r in self.primary.records}
        for tree in trees:
            missing = [path for path in tree.nodes if path not in dumped]
            if missing and len(missing) < len(tree.nodes):
                notes.append(
                    f"{tree.source}: {len(missing)} of its {len(tree.nodes)} operations have no tensor "
                    f"folder in the dump, e.g. {missing[0]}"
                )
        if not models:
            notes.append(
                f"no model topology JSON for process {self.primary.folder}: "
                "operations are matched by their folder names"
            )
        return trees

    def trees_for(self, token: int | str) -> list[_Tree]:
        """The model trees that hold ``token``'s operations (ATB: prefill or decode model)."""
        if self.runtime == "torch":
            return self.trees
        if token not in self._token_trees:
            tops = {node.split("/", 1)[0] for (t, node) in self.nodes[0] if t == token}
            chosen = [tree for tree in self.trees if tree.tops & tops]
            covered = set().union(*(tree.tops for tree in chosen)) if chosen else set()
            loose = tops - covered
            if loose:
                paths = [node for (t, node) in self.nodes[0] if t == token and node.split("/", 1)[0] in loose]
                name = self.trees[0].root.type if self.trees else "model"
                chosen.append(
                    _Tree(atb_tree_from_folders(paths, name), "operation folder names", frozenset(loose))
                )
                if self.trees:
                    shown = ", ".join(sorted(loose, key=natural_key)[:3])
                    self.notes.append(
                        f"{self.role} token {token}: {len(loose)} top-level operation folders ({shown}, ...) "
                        "are in no usable model topology JSON; their tree is rebuilt from the folder names"
                    )
            self._token_trees[token] = chosen
        return self._token_trees[token]


@dataclass
class _LinkStats:
    link: NodeLink
    tokens: list[int | str] = field(default_factory=list)
    pairs: int = 0
    problems: list[str] = field(default_factory=list)


def _structure(dump: Dump) -> set[str]:
    return {record.node for record in dump}


class TreeMatcher:
    """torch vs ATB (either side golden), and ATB vs ATB dumps whose operation folders differ
    (ATB float vs ATB quant; identical ATB structures pair by name)."""

    name = "model trees (torch vs ATB, ATB float vs quant)"

    def applies(self, golden: Dump, my: Dump) -> bool:
        kinds = {golden.kind, my.kind}
        if kinds == {"torch", "atb"}:
            return True
        return golden.kind == my.kind == "atb" and _structure(golden) != _structure(my)

    def match(self, golden: Dump, my: Dump, options: MatchOptions) -> MatchResult:
        notes: list[str] = []
        golden_side, my_side = _Side(golden, "golden", notes), _Side(my, "my", notes)
        # the torch-role side: torch, or the golden ATB dump when both are ATB
        ref, atb = (
            (my_side, golden_side) if golden.kind == "atb" and my.kind == "torch" else (golden_side, my_side)
        )
        token_pairs, token_note = align_tokens(golden, my, options.tokens)
        if token_note:
            notes.append(token_note)
        notes += _rank_notes(golden_side, my_side)
        notes += _mapping_notes(options.op_mapping, ref, atb)
        notes += [
            f"the {side.role} dump {side.dump.root} holds statistics only: compare it with --llm-stats"
            for side in (golden_side, my_side)
            if side.dump.info.get("statistics_only")
        ]
        levels = [options.level] if options.level else list(DETAIL_ORDER)
        for level in levels:
            run = _LevelRun(golden_side, my_side, ref, atb, token_pairs, options, level)
            result = run.match()
            if result.pairs or level == levels[-1]:
                break
        if not options.level:
            notes.append(
                f"--llm-level not given: compared at level {level}, the most detailed that pairs tensors "
                f"(levels tried: {', '.join(levels[: levels.index(level) + 1])})"
            )
        result.notes = notes + result.notes
        return result


def _mapping_notes(mapping: OpMapping | None, ref: _Side, atb: _Side) -> list[str]:
    """The op mapping file's entries that name types no node has (they cannot pair anything)."""
    if mapping is None:
        return []
    atb_types = {node.type for tree in atb.trees for node in tree.root.walk()}
    ref_types = {node.type for tree in ref.trees for node in tree.root.walk()}
    notes = []
    for entry in mapping.user_entries():
        unknown = []
        if not any(entry.atb_type in kind for kind in atb_types):
            unknown.append(f"no {atb.runtime.upper()} operation type contains {entry.atb_type!r}")
        if not any(entry.torch_type in kind for kind in ref_types):
            unknown.append(f"no {ref.runtime} node type contains {entry.torch_type!r}")
        if unknown:
            notes.append(
                f"op mapping {entry.source}: {entry.key} -> {entry.torch_type}: {' and '.join(unknown)}"
            )
    return notes


def _rank_notes(golden: _Side, my: _Side) -> list[str]:
    g, m = len(golden.run), len(my.run)
    if g == m == 1:
        return []
    devices = {
        side.role: ", ".join("cpu" if p.device is None else str(p.device) for p in side.run)
        for side in (golden, my)
    }
    if g == m:
        return [
            f"golden and my dumps have {g} ranks each (devices {devices['golden']} / {devices['my']}): "
            "rank i pairs with rank i"
        ]
    return [
        f"golden has {g} rank(s) (devices {devices['golden']}), my has {m} (devices {devices['my']}): "
        "tensor-parallel shards are concatenated along the first dimension where shard size x rank count "
        "agrees on both sides (msit's rule); a tensor without such a dimension (replicated) compares rank 0"
    ]


class _LevelRun:
    """Matching at one level: links per tree pair, file pairs per token and rank, the leftovers."""

    def __init__(
        self,
        golden: _Side,
        my: _Side,
        ref: _Side,
        atb: _Side,
        token_pairs: list[tuple[int | str, int | str]],
        options: MatchOptions,
        level: str,
    ) -> None:
        self.golden, self.my, self.ref, self.atb = golden, my, ref, atb
        self.token_pairs = token_pairs
        self.options = options
        self.level = level
        self.op_mapping = options.op_mapping or OpMapping.builtin()
        self.tree_pairs: dict[tuple[int, int], tuple[TreePair, list[_LinkStats]]] = {}
        self.counts: dict[tuple[str, str | None], int | None] = {}
        self.paired: dict[str, set[tuple[str, str | None]]] = {"golden": set(), "my": set()}
        self.linked: dict[str, dict[tuple[int | str, str], str]] = {"golden": {}, "my": {}}
        """(token, node) of each side's paired nodes -> how the first pair of that node was made."""
        self.pairwise = len(golden.run) == len(my.run) > 1
        self._reasons: dict[tuple[str, str], str] | None = None

    def _tree_pair(self, ref_tree: _Tree, atb_tree: _Tree) -> tuple[TreePair, list[_LinkStats]]:
        key = (id(ref_tree), id(atb_tree))
        if key not in self.tree_pairs:
            pair = TreePair(ref_tree.root, atb_tree.root, self.op_mapping)
            self.tree_pairs[key] = (pair, [_LinkStats(link) for link in level_links(pair, self.level)])
        return self.tree_pairs[key]

    def match(self) -> MatchResult:
        found: list[tuple[tuple, Pair]] = []
        keys: set[str] = set()
        for position, (golden_token, my_token) in enumerate(self.token_pairs):
            ref_token = golden_token if self.ref is self.golden else my_token
            atb_token = my_token if self.atb is self.my else golden_token
            ref_trees, atb_trees = self.ref.trees_for(ref_token), self.atb.trees_for(atb_token)
            if not ref_trees or not atb_trees:
                continue
            for i in range(max(len(ref_trees), len(atb_trees))):
                _, stats = self._tree_pair(ref_trees[i % len(ref_trees)], atb_trees[i % len(atb_trees)])
                for entry in stats:
                    for pair in self._link_pairs(entry, ref_token, atb_token, my_token, position):
                        if pair[1].key not in keys:
                            keys.add(pair[1].key)
                            found.append(pair)
        result = MatchResult()
        ordered = [pair for _, pair in sorted(found, key=lambda item: item[0])]
        result.pairs = [Pair(p.key, p.golden, p.my, p.token, i) for i, p in enumerate(ordered)]
        self._leftovers(result)
        result.explanation = self._explanation()
        return result

    def _link_pairs(
        self,
        entry: _LinkStats,
        ref_token: int | str,
        atb_token: int | str,
        my_token: int | str,
        position: int,
    ) -> list[tuple[tuple, Pair]]:
        link = entry.link
        made: list[tuple[tuple, Pair]] = []
        rank_pairs = range(len(self.ref.run)) if self.pairwise else [0]
        for rank in rank_pairs:
            ref_records = self.ref.nodes[rank].get((ref_token, link.torch.path), [])
            atb_records = self.atb.nodes[rank].get((atb_token, link.atb.path), [])
            if not ref_records and not atb_records:
                continue
            wrap = _identity if self.pairwise else self._merger(ref_token, atb_token)
            files: LinkFiles = link_files(link, ref_records, atb_records, self.ref.runtime, wrap, self.counts)
            entry.problems += [p for p in files.problems if p not in entry.problems]
            segment = ""
            if self.pairwise:
                g_dev, m_dev = self.golden.run[rank].device, self.my.run[rank].device
                segment = f"rank{g_dev}/" if g_dev == m_dev else f"rank{g_dev}-{m_dev}/"
            for t, a in files.pairs:
                g, m = (t, a) if self.ref is self.golden else (a, t)
                if not self._selected(g, m):
                    continue
                key = f"{token_label(my_token)}/{segment}{g.node}/{g.leaf}{PAIR_ARROW}{m.node}/{m.leaf}"
                made.append(((position, m.order, g.order, key), Pair(key, g, m, my_token, 0)))
                self._mark("golden", g, f"paired with {m.node} by rule {link.rule}")
                self._mark("my", m, f"paired with {g.node} by rule {link.rule}")
            if files.pairs:
                if my_token not in entry.tokens:
                    entry.tokens.append(my_token)
                entry.pairs += len(files.pairs)
        return made

    def _selected(self, golden: TensorRecord, my: TensorRecord) -> bool:
        select = self.options.select
        return not select or any(
            fnmatch.fnmatchcase(golden.node, glob) or fnmatch.fnmatchcase(my.node, glob) for glob in select
        )

    def _mark(self, role: str, record: TensorRecord, how: str) -> None:
        files = record.shards if isinstance(record, ShardedRecord) else (record,)
        for file in files:
            self.paired[role].add((file.path, file.member))
        self.linked[role].setdefault((record.token, record.node), how)

    def _merger(self, ref_token: int | str, atb_token: int | str) -> Callable:
        ref, atb = self.ref, self.atb
        if len(ref.run) == len(atb.run) == 1:
            return _identity

        def shards(side: _Side, token: int | str, record: TensorRecord) -> list[TensorRecord]:
            found = [leaves.get((token, record.node, record.leaf)) for leaves in side.leaves]
            return [r for r in found if r is not None] or [record]

        def wrap(t: TensorRecord, a: TensorRecord) -> tuple[TensorRecord, TensorRecord]:
            if isinstance(t, RopeRecord) or isinstance(a, RopeRecord):
                return t, a
            t_shards, a_shards = shards(ref, ref_token, t), shards(atb, atb_token, a)
            if len(t_shards) == len(a_shards) == 1:
                return t, a
            return ShardedRecord.of(t_shards, a_shards), ShardedRecord.of(a_shards, t_shards)

        return wrap

    # --- what stayed unpaired ---------------------------------------------------------------

    def _leftovers(self, result: MatchResult) -> None:
        aligned = {"golden": {g for g, _ in self.token_pairs}, "my": {m for _, m in self.token_pairs}}
        reasons = self._node_reasons()
        skipped_inputs = 0
        warmup = 0
        for side in (self.golden, self.my):
            other = "my" if side.role == "golden" else "golden"
            for process in side.others:
                result.unmatched += [
                    Unmatched(side.role, r, f"process {process.folder} is not a rank of the compared run")
                    for r in process.records
                    if self._wanted(r)
                ]
            for process in side.run:
                for record in process.records:
                    if not self._wanted(record):
                        continue
                    if record.token not in aligned[side.role]:
                        if record.token == WARMUP_TOKEN:
                            warmup += 1
                        else:
                            result.unmatched.append(
                                Unmatched(side.role, record, f"token not in the {other} dump")
                            )
                        continue
                    if (record.path, record.member) in self.paired[side.role]:
                        continue
                    how = self.linked[side.role].get((record.token, record.node))
                    if how is not None:
                        if record.role == "input":
                            skipped_inputs += 1
                            continue
                        reason = f"its node is {how}, but no rule pairs this file"
                    else:
                        reason = reasons.get((side.role, record.node)) or _outside_tree(side, record)
                    result.unmatched.append(Unmatched(side.role, record, reason))
        if skipped_inputs:
            result.notes.append(
                f"{skipped_inputs} input tensors of paired nodes are not compared: across runtimes the "
                "outputs of paired nodes are compared (an input is the output of its producer)"
            )
        if warmup:
            result.notes.append(f"the ATB warm-up round (folder 0, {warmup} tensors) is not compared")

    def _wanted(self, record: TensorRecord) -> bool:
        tokens, select = self.options.tokens, self.options.select
        if tokens is not None and record.token not in tokens:
            return False
        return not select or any(fnmatch.fnmatchcase(record.node, glob) for glob in select)

    def _node_reasons(self) -> dict[tuple[str, str], str]:
        """Why each node of the trees in use found no partner, keyed by (role, node path)."""
        if self._reasons is not None:
            return self._reasons
        reasons: dict[tuple[str, str], str] = {}
        self._reasons = reasons
        for pair, _ in self.tree_pairs.values():
            for side, root, layers, layer_type, is_atb in (
                (self.ref, pair.torch, pair.torch_layers, pair.torch_layer_type, False),
                (self.atb, pair.atb, pair.atb_layers, pair.atb_layer_type, True),
            ):
                other_layers = pair.atb_layers if side is self.ref else pair.torch_layers
                for node in root.walk():
                    key = (side.role, node.path)
                    if node.path and key not in reasons:
                        reasons[key] = _why(
                            node, side.role, is_atb, layers, layer_type, other_layers, self.level, pair
                        )
        return reasons

    def _explanation(self) -> list[Explanation]:
        lines: list[Explanation] = []
        for _, stats in self.tree_pairs.values():
            for entry in stats:
                link = entry.link
                if not entry.pairs and not entry.problems:
                    continue
                t_node, a_node = link.torch, link.atb
                g, m = (t_node, a_node) if self.ref is self.golden else (a_node, t_node)
                reason = link.detail if entry.pairs else "; ".join(entry.problems)
                if entry.pairs and entry.problems:
                    reason += "; " + "; ".join(entry.problems)
                lines.append(
                    Explanation(
                        tuple(entry.tokens), g.path, g.type, m.path, m.type, link.rule, reason, entry.pairs
                    )
                )
        linked_nodes = {(role, node) for role, nodes in self.linked.items() for _, node in nodes}
        reasons = self._node_reasons()
        for side in (self.golden, self.my):
            seen = set()
            for record in side.primary.records:
                key = (side.role, record.node)
                if key in linked_nodes or key in seen or not self._wanted(record):
                    continue
                seen.add(key)
                reason = reasons.get(key) or _outside_tree(side, record)
                node_type = record.node_type
                golden_node, my_node = (record.node, "") if side.role == "golden" else ("", record.node)
                golden_type, my_type = (node_type, "") if side.role == "golden" else ("", node_type)
                lines.append(Explanation((), golden_node, golden_type, my_node, my_type, "", reason))
        return lines


def _outside_tree(side: _Side, record: TensorRecord) -> str:
    """The reason for a record whose node is in none of the model trees used."""
    base, at, call = record.node.rpartition("@")
    if side.runtime == "torch" and at and call.isdigit():
        return f"call {call} of {base} (a module called more than once): only its first call is matched"
    sources = ", ".join(sorted({tree.source for tree in side.trees})) or "the dumped folders"
    return f"not a node of the {side.role} model tree ({sources})"


def _identity(t: TensorRecord, a: TensorRecord) -> tuple[TensorRecord, TensorRecord]:
    return t, a


def _why(
    node: TreeNode,
    role: str,
    is_atb: bool,
    layers: list[TreeNode],
    layer_type: str | None,
    other_layers: list[TreeNode],
    level: str,
    pair: TreePair,
) -> str:
    """A readable reason why ``node`` got no partner at ``level``."""
    what = {
        "layer": "layers and the embedding/norm/head",
        "module": "the attention and MLP blocks of each layer",
    }
    if level in what:
        return f"not compared at --llm-level={level} (it compares {what[level]})"
    if level == "logits":
        return "not compared at --llm-level=logits (it compares the final outputs)"
    if layer_type is None:
        return f"no layers found in the {role} model tree (no node has two or more sub-trees of one type)"
    layer = next((lay for lay in layers if node is lay or _inside(node, lay)), None)
    if layer is None:
        return f"outside the {layer_type} layers, and no rule pairs it by name"
    index = layers.index(layer)
    if index >= len(other_layers):
        return (
            f"layer {index} has no partner layer ({len(layers)} {role} layers, "
            f"{len(other_layers)} on the other side)"
        )
    if node is layer:
        return f"a {layer_type} layer: layers pair at --llm-level=layer or by map_count, which found no files"
    for entry in pair.op_mapping.entries:
        if entry.atb_type in node.type if is_atb else entry.torch_type in node.type:
            atb_layer, torch_layer = (layer, other_layers[index]) if is_atb else (other_layers[index], layer)
            atb_count = sum(entry.atb_type in n.type for n in atb_layer.descendants())
            torch_count = sum(entry.torch_type in n.type for n in torch_layer.descendants())
            return (
                f"op mapping {entry.key} -> {entry.torch_type} ({entry.source}): layer {index} has "
                f"{atb_count} such ATB and {torch_count} such torch nodes, so none pair"
            )
    kind = node.type or "node"
    return f"in layer {index}, no {level}-level rule pairs a {kind} node (add an op mapping entry)"


def _inside(node: TreeNode, ancestor: TreeNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False
