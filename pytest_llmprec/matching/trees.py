"""Model trees for cross-runtime matching (msit-spec §5.3): torch module trees, ATB operator trees.

A ``TreeNode`` has the node's name (torch: the dotted module name; ATB: the ``opName``), its type
(class name / ``opType``), ``path`` (the node name the dump's records carry: the module folder, or
the ATB operation folder path ``3_LlamaLayer/0_Attention``) and its children in execution order.
Trees come from ``model_tree.json`` / the ATB topology JSONs, or, when those are missing or broken,
from the dumped folder names. All traversals are iterative.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..dumps.base import natural_key
from ..errors import LlmprecError

MAX_DEPTH = 256
"""Deeper trees are refused (no real model nests operators this deep)."""

_DIGITS = re.compile(r"\d+")
_ATB_FOLDER = re.compile(r"(\d+)_(.+)")


class TopologyError(LlmprecError):
    """A model tree file that cannot be used; the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


@dataclass(eq=False)
class TreeNode:
    name: str
    type: str
    path: str
    param: dict[str, Any] = field(default_factory=dict)
    children: list[TreeNode] = field(default_factory=list)
    parent: TreeNode | None = None
    order: int = 0

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def walk(self) -> Iterator[TreeNode]:
        """This node and its descendants, pre-order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def descendants(self) -> list[TreeNode]:
        return list(self.walk())[1:]

    def leaves(self) -> list[TreeNode]:
        return [node for node in self.walk() if node.is_leaf and node is not self]

    def next_sibling(self) -> TreeNode | None:
        if self.parent is None:
            return None
        siblings = self.parent.children
        position = next(i for i, child in enumerate(siblings) if child is self)
        return siblings[position + 1] if position + 1 < len(siblings) else None

    def __repr__(self) -> str:
        return f"TreeNode({self.path or self.name!r}, {self.type!r})"


def _number(root: TreeNode) -> TreeNode:
    for order, node in enumerate(root.walk()):
        node.order = order
    return root


# --- torch -------------------------------------------------------------------------------------


def torch_tree(data: Any, source: str) -> TreeNode:
    """The module tree of a ``model_tree.json`` (``{"name", "type", "children"}``)."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise TopologyError(
            source, 'no module tree here: expected {"name": ..., "type": ..., "children": [...]}'
        )
    root = TreeNode(data["name"], str(data.get("type") or ""), data["name"])
    pending = [(data, root, 0)]
    while pending:
        item, node, depth = pending.pop()
        children = item.get("children") or []
        if not isinstance(children, list):
            raise TopologyError(source, f"module {node.name}: 'children' is not a list")
        if depth > MAX_DEPTH:
            raise TopologyError(source, f"module tree nested deeper than {MAX_DEPTH} levels")
        for child in children:
            if not isinstance(child, dict) or not isinstance(child.get("name"), str):
                raise TopologyError(source, f"module {node.name}: a child without a 'name'")
            name = child["name"]
            child_node = TreeNode(name, str(child.get("type") or ""), name, parent=node)
            node.children.append(child_node)
            pending.append((child, child_node, depth + 1))
    return _number(root)


def tree_from_module_names(names: Iterable[str]) -> TreeNode:
    """A torch tree rebuilt from dotted module names (no ``model_tree.json``).

    The parent of ``a.b.c`` is the longest dotted prefix that is a module; types are the names with
    numbers replaced by ``#`` (``root.model.layers.#``), so that repeated layers share a type.
    """
    root = TreeNode("root", "root", "root")
    nodes = {"root": root}
    for name in sorted(set(names), key=lambda n: (n.count("."), n)):
        if name in nodes:
            continue
        parent_name = name
        parent = root
        while "." in parent_name:
            parent_name = parent_name.rsplit(".", 1)[0]
            if parent_name in nodes:
                parent = nodes[parent_name]
                break
        node = TreeNode(name, _DIGITS.sub("#", name), name, parent=parent)
        nodes[name] = node
        parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda child: natural_key(child.name))
    return _number(root)


# --- ATB ---------------------------------------------------------------------------------------


def atb_tree(model: Any, start_order: int, source: str) -> tuple[TreeNode, list[str]]:
    """The operator tree of an ATB model topology JSON and notes on its data flow.

    Node paths follow msit's folder rule (§2.2.2): ``{order}_{opType}`` segments, the top level
    numbered from ``start_order``. Raises ``TopologyError`` for a file whose structure is unusable.
    """
    if not isinstance(model, dict) or not isinstance(model.get("nodes"), list):
        raise TopologyError(source, "not an ATB model topology: expected an object with a 'nodes' list")
    root = TreeNode("root", str(model.get("modelName") or "model"), "")
    pending = [(model["nodes"], root, "", start_order, 0)]
    while pending:
        items, parent, prefix, first, depth = pending.pop()
        if depth >= MAX_DEPTH:
            raise TopologyError(source, f"operations nested deeper than {MAX_DEPTH} levels")
        for position, item in enumerate(items):
            op_type = item.get("opType") if isinstance(item, dict) else None
            if not isinstance(op_type, str) or not op_type:
                label = item.get("opName") if isinstance(item, dict) else None
                raise TopologyError(
                    source, f"operation {label or prefix + str(position + first)} has no 'opType' string"
                )
            path = f"{prefix}{position + first}_{op_type}"
            param = item.get("param")
            name = item.get("opName")
            node = TreeNode(
                name if isinstance(name, str) and name else _atb_name(op_type, path),
                op_type,
                path,
                param if isinstance(param, dict) else {},
                parent=parent,
            )
            parent.children.append(node)
            children = item.get("nodes")
            if children is not None and not isinstance(children, list):
                raise TopologyError(source, f"node {node.name}: 'nodes' is not a list")
            if children:
                pending.append((children, node, path + "/", 0, depth + 1))
    return _number(root), dataflow_problems(model, source)


def _atb_name(op_type: str, path: str) -> str:
    """ATB's op naming: ``LinearOperation_3_1_0`` for the folder path ``3_X/1_Y/0_LinearOperation``."""
    numbers = [segment.split("_", 1)[0] for segment in path.split("/")]
    return f"{op_type}_{'_'.join(numbers)}"


def atb_tree_from_folders(paths: Iterable[str], model_name: str = "model") -> TreeNode:
    """An ATB tree rebuilt from dumped operation folder paths (no usable topology JSON)."""
    root = TreeNode("root", model_name, "")
    nodes: dict[str, TreeNode] = {"": root}
    for path in sorted(set(paths), key=lambda p: tuple(natural_key(s) for s in p.split("/"))):
        segments = path.split("/")
        for depth in range(1, len(segments) + 1):
            prefix = "/".join(segments[:depth])
            if prefix in nodes:
                continue
            match = _ATB_FOLDER.fullmatch(segments[depth - 1])
            op_type = match.group(2) if match else segments[depth - 1]
            parent = nodes["/".join(segments[: depth - 1])]
            node = TreeNode(_atb_name(op_type, prefix), op_type, prefix, parent=parent)
            parent.children.append(node)
            nodes[prefix] = node
    return _number(root)


def dataflow_problems(model: dict[str, Any], source: str) -> list[str]:
    """Notes on tensors the topology names but never defines, and on cycles between operations.

    Checked in every scope (the model, each graph operation) that lists its own tensors
    (``inTensors``/``outTensors``/``internalTensors``); a scope without those lists is not checked.
    """
    undefined: list[str] = []
    cycles: list[str] = []
    scopes = [(model, str(model.get("modelName") or "model"))]
    while scopes:
        scope, scope_name = scopes.pop()
        children = [child for child in scope.get("nodes") or [] if isinstance(child, dict)]
        scopes += [(child, str(child.get("opName"))) for child in children if child.get("nodes")]
        lists = [scope.get(key) for key in ("inTensors", "weightTensors", "internalTensors", "outTensors")]
        if not isinstance(scope.get("inTensors"), list):
            continue
        known = {
            name for names in lists if isinstance(names, list) for name in names if isinstance(name, str)
        }
        producers: dict[str, int] = {}
        for position, child in enumerate(children):
            for name in _names(child.get("outTensors")):
                producers.setdefault(name, position)
        edges: dict[int, set[int]] = {}
        for position, child in enumerate(children):
            for name in _names(child.get("inTensors")):
                if name in producers and producers[name] != position:
                    edges.setdefault(producers[name], set()).add(position)
                elif name not in known and name not in producers:
                    undefined.append(f"{child.get('opName')} reads {name!r}")
            for name in _names(child.get("outTensors")):
                if name not in known:
                    undefined.append(f"{child.get('opName')} writes {name!r}")
        cycle = _find_cycle(len(children), edges)
        if cycle:
            names = " -> ".join(str(children[i].get("opName")) for i in cycle)
            cycles.append(f"in {scope_name}: {names}")
    notes = []
    if undefined:
        notes.append(
            f"{source}: {len(undefined)} tensor references name tensors that the enclosing model or "
            f"graph does not list and no operation writes, e.g. {undefined[0]}"
        )
    if cycles:
        notes.append(f"{source}: operations depend on each other in a cycle, {cycles[0]}")
    return notes


def _names(value: Any) -> list[str]:
    return [name for name in value if isinstance(name, str)] if isinstance(value, list) else []


def _find_cycle(count: int, edges: dict[int, set[int]]) -> list[int]:
    """One cycle (a list of node indices, first repeated at the end) of a directed graph, or []."""
    state = [0] * count  # 0 new, 1 on the stack, 2 done
    for start in range(count):
        if state[start]:
            continue
        stack = [(start, iter(sorted(edges.get(start, ()))))]
        trail = [start]
        state[start] = 1
        while stack:
            node, successors = stack[-1]
            step = next(successors, None)
            if step is None:
                stack.pop()
                trail.pop()
                state[node] = 2
            elif state[step] == 1:
                return [*trail[trail.index(step) :], step]
            elif state[step] == 0:
                state[step] = 1
                trail.append(step)
                stack.append((step, iter(sorted(edges.get(step, ())))))
    return []


# --- layers ------------------------------------------------------------------------------------


def find_layers(root: TreeNode) -> tuple[str | None, list[TreeNode]]:
    """The layer type and layer nodes of a tree (msit's layer detection, without its minimum count).

    The first node in pre-order with two or more non-leaf children of one type defines the layer
    type (the most common such type); the layers are the nodes of that type found from the root
    without descending into a layer.
    """
    layer_type = None
    for node in root.walk():
        counts = Counter(child.type for child in node.children if child.children)
        if counts:
            kind, count = counts.most_common(1)[0]
            if count >= 2:
                layer_type = kind
                break
    if layer_type is None:
        return None, []
    layers = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == layer_type and node is not root:
            layers.append(node)
            continue
        stack.extend(reversed(node.children))
    return layer_type, layers
