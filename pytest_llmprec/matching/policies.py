"""msit's node matching policies (msit-spec §5.4), chosen by level, as links between two trees.

The rules are written for a torch module tree and an ATB operator tree; in ATB float vs ATB
quant the golden ATB tree takes the torch tree's place (the torch-specific rules then find
nothing). A ``NodeLink`` pairs a torch node's files at ``torch_location`` with an ATB node's files
at ``atb_location`` (``ALL_OUTPUT``, ``ALL_INPUT`` or one file stem). Differences from msit:
layers are found without the "more than 10 layers" minimum; name matches also need equal
(normalised) types; candidate lists are in tree order, never in set order.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .op_mapping import ALL_INPUT, ALL_OUTPUT, BUILTIN_LEAF, OpMapping
from .trees import TreeNode, find_layers

QUANT_TYPES = {
    "LinearQuantOperation": "LinearOperation",
    "LinearDequantOnly": "LinearNoQuant",
    "LinearRowParallelNoAdd": "LinearRowParallelAndAdd",
}
"""ATB quantised operation types and the float types they stand for (layer_type_cnt_match)."""

ELEWISE_ADD = 8


@dataclass(frozen=True)
class NodeLink:
    """``torch``'s files at ``torch_location`` pair with ``atb``'s files at ``atb_location``.

    ``checked`` links come from name heuristics: their file pairs are kept only when both tensors
    have the same element count (the pairs msit's report writer would drop are not made).
    """

    torch: TreeNode
    torch_location: str
    atb: TreeNode
    atb_location: str
    rule: str
    detail: str = ""
    checked: bool = False


@dataclass
class TreePair:
    """A torch (or golden ATB) tree and an ATB tree, with their layers and the op mapping."""

    torch: TreeNode
    atb: TreeNode
    op_mapping: OpMapping = field(default_factory=OpMapping.builtin)

    def __post_init__(self) -> None:
        self.torch_layer_type, self.torch_layers = find_layers(self.torch)
        self.atb_layer_type, self.atb_layers = find_layers(self.atb)

    def layer_pairs(self) -> list[tuple[TreeNode, TreeNode]]:
        return list(zip(self.torch_layers, self.atb_layers, strict=False))


def _normalised(op_type: str) -> str:
    return QUANT_TYPES.get(op_type, op_type)


# --- whole-tree policies -----------------------------------------------------------------------


def output_match(pair: TreePair) -> list[NodeLink]:
    """The last-child chains of the two roots, every torch x ATB combination (final outputs)."""

    def chain(root: TreeNode) -> list[TreeNode]:
        nodes, node = [], root
        while node.children:
            node = node.children[-1]
            nodes.append(node)
        return nodes

    return [
        NodeLink(t, ALL_OUTPUT, a, ALL_OUTPUT, "output", "last-child chains of the two models", True)
        for t in chain(pair.torch)
        for a in chain(pair.atb)
    ]


def name_full_match(pair: TreePair) -> list[NodeLink]:
    """Nodes with the same name (except the root) and the same type (quant types normalised)."""
    atb = {}
    for node in pair.atb.descendants():
        atb.setdefault(node.name, node)
    links = []
    for node in pair.torch.descendants():
        partner = atb.get(node.name)
        if partner is not None and _normalised(partner.type) == _normalised(node.type):
            links.append(NodeLink(node, ALL_OUTPUT, partner, ALL_OUTPUT, "name_full", "same name and type"))
    return links


def layer_type_cnt_match(pair: TreePair) -> list[NodeLink]:
    """From the two roots down: children of each paired node grouped by type (quant types
    normalised); groups of equal size pair in order, and their pairs are visited in turn."""
    links = []
    queue = deque([(pair.torch, pair.atb)])
    while queue:
        t, a = queue.popleft()
        links.append(
            NodeLink(
                t, ALL_OUTPUT, a, ALL_OUTPUT, "layer_type_cnt", "same position among children of one type"
            )
        )
        t_groups: dict[str, list[TreeNode]] = {}
        a_groups: dict[str, list[TreeNode]] = {}
        for child in t.children:
            t_groups.setdefault(_normalised(child.type), []).append(child)
        for child in a.children:
            a_groups.setdefault(_normalised(child.type), []).append(child)
        for kind, t_children in t_groups.items():
            a_children = a_groups.get(kind, [])
            if len(a_children) == len(t_children):
                queue.extend(zip(t_children, a_children, strict=True))
    return links


SPECIAL_NAMES: tuple[tuple[str, Callable[[str], bool], Callable[[str], bool]], ...] = (
    (
        "word embedding",
        lambda atb: "wordembedding" in atb.lower(),
        lambda t: ("embed_tokens" in t or "word_embeddings" in t) and "word_embeddings_layernorm" not in t,
    ),
    (
        "final norm",
        lambda atb: re.fullmatch(r"RmsNormOperation_\d+", atb) is not None,
        lambda t: "root.model.norm" in t,
    ),
    ("lm head", lambda atb: "lmhead" in atb.lower(), lambda t: "lm_head" in t),
    (
        "bloom embedding norm",
        lambda atb: "layernormoperation_35" in atb.lower(),
        lambda t: "embeddings_layernorm" in t,
    ),
    ("bloom final norm", lambda atb: "layernormoperation_66" in atb.lower(), lambda t: "ln_f" in t),
)
"""layer_special_match: (label, test of the ATB op name, test of the torch module name)."""


def _special(pair: TreePair, labels: Iterable[str]) -> list[NodeLink]:
    links = []
    atb_nodes, torch_nodes = pair.atb.descendants(), pair.torch.descendants()
    for label, atb_test, torch_test in SPECIAL_NAMES:
        if label not in labels:
            continue
        atb = [node for node in atb_nodes if atb_test(node.name)]
        torch = [node for node in torch_nodes if torch_test(node.name)]
        links += [
            NodeLink(t, ALL_OUTPUT, a, ALL_OUTPUT, "layer_special", label, True)
            for t, a in zip(torch, atb, strict=False)
        ]
    return links


def layer_special_match(pair: TreePair) -> list[NodeLink]:
    """Embedding, final norm and LM head by their well-known names."""
    return _special(pair, [label for label, _, _ in SPECIAL_NAMES])


def lm_head_match(pair: TreePair) -> list[NodeLink]:
    return _special(pair, ["lm head"])


# --- per-layer policies ------------------------------------------------------------------------


def layer_match(pair: TreePair) -> list[NodeLink]:
    """The layers, in order."""
    return [
        NodeLink(t, ALL_OUTPUT, a, ALL_OUTPUT, "layer", f"layer {i} (types {t.type} / {a.type})")
        for i, (t, a) in enumerate(pair.layer_pairs())
    ]


MODULE_RULES = (
    ("Attention", ("self_attn", "self_attention", "Attention")),
    ("Mlp", ("mlp", "Mlp")),
    ("mlp", ("mlp",)),
    ("self_attn", ("self_attn",)),
    ("self_attention", ("self_attention",)),
)
"""module_match: ATB child folder keyword -> torch child name keywords."""


def module_match(pair: TreePair) -> list[NodeLink]:
    """The direct children of each layer pair: attention with attention, MLP with MLP."""
    links = []
    for t_layer, a_layer in pair.layer_pairs():
        for atb_key, torch_keys in MODULE_RULES:
            atb = [child for child in a_layer.children if atb_key in child.path.rsplit("/", 1)[-1]]
            torch = [
                child
                for child in t_layer.children
                if any(k in child.name.rsplit(".", 1)[-1] for k in torch_keys)
            ]
            links += [
                NodeLink(
                    t, ALL_OUTPUT, a, ALL_OUTPUT, "module", f"{atb_key} <-> {'/'.join(torch_keys)}", True
                )
                for t, a in zip(torch, atb, strict=False)
            ]
    return links


def _bias_add(node: TreeNode) -> TreeNode:
    """A bias-free ATB linear followed by an element-wise ADD stands for the ADD (its bias)."""
    if node.param.get("hasBias") is False:
        following = node.next_sibling()
        is_add = following is not None and following.type == "ElewiseOperation"
        if is_add and following.param.get("elewiseType") == ELEWISE_ADD:
            return following
    return node


def map_count(pair: TreePair) -> list[NodeLink]:
    """Layers in order; in each layer pair, leaves of the built-in exact types and nodes of the op
    mapping's (substring) types, paired in order where both sides have as many."""
    links = []
    for index, (t_layer, a_layer) in enumerate(pair.layer_pairs()):
        links.append(NodeLink(t_layer, ALL_OUTPUT, a_layer, ALL_OUTPUT, "map_count", f"layer {index}"))
        t_leaves, a_leaves = t_layer.leaves(), a_layer.leaves()
        for atb_type, torch_type in BUILTIN_LEAF:
            atb = [node for node in a_leaves if node.type == atb_type]
            torch = [node for node in t_leaves if node.type == torch_type]
            if atb_type == "LinearOperation":
                atb = [_bias_add(node) for node in atb]
            if atb and len(atb) == len(torch):
                detail = f"{atb_type} -> {torch_type}, {len(atb)} in layer {index}"
                links += [
                    NodeLink(t, "output", a, "after/outtensor0", "map_count", detail)
                    for t, a in zip(torch, atb, strict=True)
                ]
        t_all, a_all = t_layer.descendants(), a_layer.descendants()
        for entry in pair.op_mapping.entries:
            atb = [node for node in a_all if entry.atb_type in node.type]
            torch = [node for node in t_all if entry.torch_type in node.type]
            if atb and len(atb) == len(torch):
                mapped = f"{entry.key} -> {entry.torch_type} ({entry.source})"
                detail = f"op mapping {mapped}, {len(atb)} in layer {index}"
                links += [
                    NodeLink(t, entry.torch_location, a, entry.atb_location, "map_count", detail, True)
                    for t, a in zip(torch, atb, strict=True)
                ]
    return links


def rope_operator_match(pair: TreePair) -> list[NodeLink]:
    """Per layer pair: torch rotary modules' outputs with the ATB rope operations' inputs."""
    links = []
    for t_layer, a_layer in pair.layer_pairs():
        torch = [node for node in t_layer.leaves() if "rotary" in node.name.lower()]
        atb = [node for node in a_layer.leaves() if "ropeoperation" in node.name.lower()]
        links += [
            NodeLink(t, ALL_OUTPUT, a, ALL_INPUT, "rope_operator", "rotary tables vs rope inputs")
            for t, a in zip(torch, atb, strict=False)
        ]
    return links


ENHANCED_NAME_RULES: tuple[tuple[tuple[str, ...], str, str, str, str], ...] = (
    (("qkv", "linearoperation"), "self_attn.w_pack", "", ALL_OUTPUT, ALL_OUTPUT),
    (("qkv", "splitoperation"), "self_attn.v_proj", "", ALL_OUTPUT, ALL_OUTPUT),
    (("qkvlinear", "splitoperation"), "self_attn.k_proj", "", ALL_OUTPUT, ALL_OUTPUT),
    (("qkvlinearsplit", "splitoperation"), "self_attn.q_proj", "", ALL_OUTPUT, ALL_OUTPUT),
    (("attention", "linearoperation"), "self_attn.o_proj", "qkv", ALL_OUTPUT, ALL_OUTPUT),
    (("mlp", "rmsnormoperation"), "mlp.post_attention_layernorm", "", ALL_OUTPUT, ALL_OUTPUT),
    (("mlp", "splitoperation"), "mlp.gate_proj", "", ALL_OUTPUT, "after/outtensor0"),
    (("mlp", "activationoperation"), "mlp.act_fn", "", ALL_OUTPUT, ALL_OUTPUT),
    (("mlp", "elewiseoperation"), "mlp.down_proj", "", "input_0", ALL_OUTPUT),
    (("mlp", "linearoperation"), "mlp.down_proj", "", ALL_OUTPUT, ALL_OUTPUT),
)
"""enhanced_name_match: (ATB path keywords, torch path keyword, ATB exclusion keyword, torch
location, ATB location), over the lower-cased paths of the leaves of a layer pair."""


def enhanced_name_match(pair: TreePair) -> list[NodeLink]:
    """Per layer pair, leaves whose paths carry Llama/Baichuan-style keywords."""
    links = []
    for t_layer, a_layer in pair.layer_pairs():
        t_leaves = [(node, node.path.lower()) for node in t_layer.leaves()]
        a_leaves = [(node, node.path.lower()) for node in a_layer.leaves()]
        for atb_keys, torch_key, exclude, torch_location, atb_location in ENHANCED_NAME_RULES:
            atb = [n for n, p in a_leaves if all(k in p for k in atb_keys) and not (exclude and exclude in p)]
            torch = [n for n, p in t_leaves if torch_key in p]
            detail = f"{'+'.join(atb_keys)} <-> {torch_key}"
            links += [
                NodeLink(t, torch_location, a, atb_location, "enhanced_name", detail, True)
                for t in torch
                for a in atb
            ]
    return links


def qwen_match(pair: TreePair) -> list[NodeLink]:
    """Per layer pair: the ATB grandchild holding ``qkv`` with every torch q/k/v projection."""
    links = []
    for t_layer, a_layer in pair.layer_pairs():
        atb = [g for child in a_layer.children for g in child.children if "qkv" in g.path.lower()]
        keys = ("self_attn.v_proj", "self_attn.k_proj", "self_attn.q_proj")
        torch = [g for child in t_layer.children for g in child.children if any(k in g.path for k in keys)]
        links += [
            NodeLink(t, ALL_OUTPUT, a, ALL_OUTPUT, "qwen", "packed qkv <-> q/k/v projections", True)
            for t in torch
            for a in atb
        ]
    return links


LEVEL_POLICIES: dict[str, tuple[Callable[[TreePair], list[NodeLink]], ...]] = {
    "layer": (layer_match, layer_special_match),
    "module": (module_match,),
    "api": (
        output_match,
        name_full_match,
        layer_type_cnt_match,
        map_count,
        rope_operator_match,
        enhanced_name_match,
        layer_special_match,
        qwen_match,
    ),
    "logits": (output_match, lm_head_match),
}
"""The policies of each ``--llm-level`` (msit's sets; ``logits`` keeps the final-output rules of
msit's logits workflow, §8.5)."""

DETAIL_ORDER = ("api", "module", "layer")
"""Without ``--llm-level``: the first of these levels whose links pair any tensors."""


def level_links(pair: TreePair, level: str) -> list[NodeLink]:
    """The links of ``level``'s policies; one link per (torch node, location, ATB node, location),
    the first rule that made it kept. A heuristic link stays ``checked`` only where a node has more
    than one partner (the sizes then tell the right one); a node's only partner is kept as found.
    At ``logits`` no link is checked: a prefill's ``[seq, vocab]`` against the last row an ATB
    head computes, or a vocab mismatch, is for the logits comparison to judge."""
    seen: set[tuple[int, str, int, str]] = set()
    links = []
    for policy in LEVEL_POLICIES[level]:
        for link in policy(pair):
            key = (id(link.torch), link.torch_location, id(link.atb), link.atb_location)
            if key not in seen:
                seen.add(key)
                links.append(link)
    if level == "logits":  # the logits' shapes are compared as tokens are (a prefill's rows, the vocab)
        return [replace(link, checked=False) for link in links]
    partners = Counter(id(link.torch) for link in links) + Counter(-id(link.atb) - 1 for link in links)
    return [
        link
        if not link.checked or partners[id(link.torch)] > 1 or partners[-id(link.atb) - 1] > 1
        else replace(link, checked=False)
        for link in links
    ]
