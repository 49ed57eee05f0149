"""Operator cases found in dumps: one ``OpCase`` per operator call whose type has a reference.

``CaseIndex(dump)`` groups a dump's records once (ATB op folders, torch module folders, FX op keys)
and answers ``case(token, node, rank)`` in constant time and ``cases(ids, names)`` in execution
order; ``find_cases`` is the one-call form. A case that cannot be checked carries ``problem`` (and
``bad_input`` when the dump itself is at fault: unreadable parameters, missing outputs).
Discovery follows msit's opcheck (msit-spec §6.1, §6.2) for ATB dumps; docs/opcheck.md ("Cases").
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dumps.base import Dump, TensorRecord
from .module_names import REQUIRED_WEIGHTS
from .registry import OpcheckError, OpSpec, spec

if TYPE_CHECKING:
    import torch
    from torch import nn

COLLECTIVE_OPS = frozenset(
    {"AllGatherOperation", "AllReduceOperation", "BroadcastOperation", "LinearParallelOperation"}
)
"""ATB operators whose reference takes every rank's inputs, in rank order."""

SPECIAL_INPLACE = {"KvCacheOperation": (2,), "ReshapeAndCacheOperation": (2, 3)}
"""msit's in-place output indices (§6.1), used when the registered reference names none."""

WEIGHTS_TOKEN = "weights"
OP_PARAM_LIMIT = 1 << 24
_ID_PART = re.compile(r"(\d+)_")
_RANK_FOLDER = re.compile(r"(\d+)_(\d+)")

WeightSource = Any
"""A weight of a case: a ``TensorRecord`` of the dump's weights folder, or a tensor of a model."""


@dataclass
class OpCase:
    """One operator call to check: what it is, its parameters, and where its tensors are.

    ``inputs``/``outputs`` are records in index order (collective ATB ops: every rank's inputs,
    rank by rank); ``weights`` maps a module's attribute names (``weight``, ``bias``,
    ``inv_freq``) to records or tensors; ``input_dtypes``/``output_dtypes`` the original dtypes
    where the files lost them (FX dumps save bfloat16 as float32), else None. ``problem`` says
    why the case cannot be checked (None: it can); ``bad_input`` marks problems of the dump itself.
    """

    case_id: str
    op_type: str
    node: str
    token: int | str
    rank: int | None
    params: dict[str, Any]
    inputs: list[TensorRecord]
    outputs: list[TensorRecord]
    weights: dict[str, WeightSource] = field(default_factory=dict)
    order: int = 0
    problem: str | None = None
    bad_input: bool = False
    kind: str = ""
    op_id: str = ""
    path: str = ""
    op_param_text: str = ""
    input_dtypes: list[str | None] = field(default_factory=list)
    output_dtypes: list[str | None] = field(default_factory=list)

    @property
    def checkable(self) -> bool:
        return self.problem is None


# --- loading ----------------------------------------------------------------------------------------


def _restored(tensor: torch.Tensor, dtype_name: str | None) -> torch.Tensor:
    """``tensor`` in its original dtype (exact: the file held that dtype's values widened)."""
    if not dtype_name or str(tensor.dtype) == dtype_name:
        return tensor
    import torch

    dtype = getattr(torch, dtype_name.removeprefix("torch."), None)
    return tensor.to(dtype) if isinstance(dtype, torch.dtype) else tensor


INFER_BF16_MIN = 16
"""FX files without recorded dtypes: a float32 tensor of at least this many elements whose every
value is a bfloat16 value is taken for the bfloat16 tensor numpy could not save."""


def _inferred(tensor: torch.Tensor) -> torch.Tensor:
    import torch

    if tensor.dtype != torch.float32 or tensor.numel() < INFER_BF16_MIN:
        return tensor
    low_bits = tensor.contiguous().view(torch.int32) & 0xFFFF
    return tensor.to(torch.bfloat16) if not bool(low_bits.any()) else tensor


def _load(records: Sequence[TensorRecord], dtypes: Sequence[str | None], infer: bool) -> list[torch.Tensor]:
    dtypes = list(dtypes) + [None] * (len(records) - len(dtypes))
    tensors = []
    for record, dtype in zip(records, dtypes, strict=False):
        tensor = record.load()
        tensors.append(_restored(tensor, dtype) if dtype or not infer else _inferred(tensor))
    return tensors


def load_inputs(case: OpCase) -> list[torch.Tensor]:
    """The case's dumped inputs, on the CPU, in their original dtypes (FX dumps without a sidecar:
    bfloat16 inferred from float32 files holding only bfloat16 values)."""
    return _load(case.inputs, case.input_dtypes, case.kind == "fx")


def load_outputs(case: OpCase) -> list[torch.Tensor]:
    """The case's dumped outputs, on the CPU, in their original dtypes (as ``load_inputs``)."""
    return _load(case.outputs, case.output_dtypes, case.kind == "fx")


def load_weights(case: OpCase) -> dict[str, torch.Tensor]:
    """The case's weights by attribute name (records read, model tensors detached)."""
    return {
        name: source.load() if isinstance(source, TensorRecord) else source.detach()
        for name, source in case.weights.items()
    }


# --- the index --------------------------------------------------------------------------------------


def _node_key(record: TensorRecord) -> tuple[Any, str, Any]:
    return (record.token, record.node, record.rank)


def atb_op_id(node: str) -> str:
    """msit's op id: the numeric prefixes of the op folders below the token folder (``3_4_0``)."""
    parts = []
    for folder in node.split("/"):
        found = _ID_PART.match(folder)
        if found:
            parts.append(found.group(1))
    return "_".join(parts)


def _module_name(node: str) -> str:
    """The module of a torch dump folder (``name@2``: the third call of ``name``)."""
    base, at, call = node.rpartition("@")
    return base if at and call.isdigit() else node


class CaseIndex:
    """The operator cases of one dump, grouped once; ``model`` supplies torch modules' weights and
    attributes instead of the dump's weights folder and ``model_tree.json``."""

    def __init__(self, dump: Dump, *, model: nn.Module | None = None) -> None:
        self.dump = dump
        self.model = model
        self._groups: dict[tuple[Any, str, Any], list[TensorRecord]] = {}
        self._weights: dict[tuple[Any, str], TensorRecord] = {}
        self._attributes: dict[Any, dict[str, dict[str, Any]]] = {}
        self._sidecars: dict[str, dict[str, dict[str, Any]] | str] = {}
        self._cases: dict[tuple[Any, str, Any], OpCase | None] = {}
        ranks, tokens = set(), set()
        for record in dump.records:
            if dump.kind == "torch" and record.token == WEIGHTS_TOKEN:
                self._weights[(record.rank, record.node)] = record
                continue
            self._groups.setdefault(_node_key(record), []).append(record)
            ranks.add(record.rank)
            tokens.add(record.token)
        self._prefix_rank = len(ranks) > 1
        self._prefix_token = len(tokens) > 1 or dump.kind != "atb"
        self.skipped: dict[str, int] = {}
        """Node types without a reference -> how many calls were left out."""

    # ----- lookups ----------------------------------------------------------------------------------
    def records(self, token: int | str, node: str, rank: int | None = None) -> list[TensorRecord]:
        """The dumped records of one node call (no torch, no operator lookup)."""
        return self._groups.get((token, node, rank), [])

    def lacks_weights(self, token: int | str, node: str, rank: int | None = None) -> bool:
        """Whether the node is a torch module whose reference needs weights that neither the dump's
        weights folder nor a model supplies (found without torch and without building the case)."""
        records = self._groups.get((token, node, rank))
        if self.dump.kind != "torch" or self.model is not None or not records:
            return False
        module = _module_name(node)
        required = REQUIRED_WEIGHTS.get(records[0].node_type, ())
        return any((rank, f"{module}.{name}") not in self._weights for name in required)

    def case(self, token: int | str, node: str, rank: int | None = None) -> OpCase | None:
        """The case of one node (None: no such node, or its type has no reference)."""
        key = (token, node, rank)
        if key not in self._cases:
            records = self._groups.get(key)
            self._cases[key] = self._build(records) if records else None
        return self._cases[key]

    def cases(
        self, ids: Iterable[str] | str | None = None, names: Iterable[str] | str | None = None
    ) -> list[OpCase]:
        """Every case in execution order; ``ids`` (msit ``-ids``) and ``names`` (``-opname``) filter."""
        id_patterns = _split(ids)
        name_patterns = [name.lower() for name in _split(names)]
        found = []
        self.skipped = {}
        for token, node, rank in self._groups:
            case = self.case(token, node, rank)
            if case is None:
                node_type = self._groups[(token, node, rank)][0].node_type or "(no type)"
                self.skipped[node_type] = self.skipped.get(node_type, 0) + 1
                continue
            if id_patterns and not any(_id_matches(case, pattern) for pattern in id_patterns):
                continue
            if name_patterns and not any(pattern in case.op_type.lower() for pattern in name_patterns):
                continue
            found.append(case)
        found.sort(key=lambda case: case.order)
        return found

    # ----- building ---------------------------------------------------------------------------------
    def _build(self, records: list[TensorRecord]) -> OpCase | None:
        first = records[0]
        op_type = first.node_type
        if not op_type:
            return None
        try:
            found = spec(op_type)
        except OpcheckError:
            return None
        builder = {"atb": self._atb_case, "torch": self._torch_case, "fx": self._fx_case}.get(self.dump.kind)
        if builder is None:
            return None
        case = builder(records, found)
        case.order = min(record.order for record in records)
        return case

    def _prefix(self, token: int | str, rank: int | None) -> str:
        parts = []
        if self._prefix_rank:
            parts.append(f"rank{rank}")
        if self._prefix_token:
            parts.append(f"token{token}")
        return "".join(f"{part}/" for part in parts)

    def _base(self, records: list[TensorRecord], kind: str, case_id: str, op_id: str) -> OpCase:
        first = records[0]
        return OpCase(
            case_id=case_id,
            op_type=first.node_type,
            node=first.node,
            token=first.token,
            rank=first.rank,
            params={},
            inputs=[r for r in records if r.role == "input"],
            outputs=[r for r in records if r.role == "output"],
            kind=kind,
            op_id=op_id,
        )

    # ATB --------------------------------------------------------------------------------------------
    def _atb_case(self, records: list[TensorRecord], found: OpSpec) -> OpCase:
        first = records[0]
        op_id = atb_op_id(first.node)
        case = self._base(
            records, "atb", f"{self._prefix(first.token, first.rank)}{op_id}_{first.node_type}", op_id
        )
        case.path = _op_folder(first)
        phases = {record.leaf.split("/", 1)[0] for record in records}
        source = "before" if "before" in phases else "after"
        case.inputs = _indexed(r for r in records if r.role == "input" and r.leaf.startswith(source + "/"))
        inplace = found.inplace_outputs or SPECIAL_INPLACE.get(first.node_type, ())
        after_inputs = {r.index: r for r in records if r.role == "input" and r.leaf.startswith("after/")}
        outputs = _indexed(r for r in records if r.role == "output" and r.leaf.startswith("after/"))
        if not outputs and inplace and all(k in after_inputs for k in inplace):
            outputs = [after_inputs[k] for k in inplace]
        case.outputs = outputs
        self._atb_params(case)
        if case.problem is None and not outputs:
            case.problem = (
                f"{case.path}: no after/outtensor*.bin files: the dumped outputs are missing "
                "(only a rerun could check the operator from its before/ inputs)"
            )
            case.bad_input = True
        if case.problem is None and first.node_type in COLLECTIVE_OPS:
            self._gather_ranks(case, source)
        if case.problem is None:
            case.problem = _missing_params(found, case.params)
        return case

    def _atb_params(self, case: OpCase) -> None:
        path = self.dump.info.get("op_params", {}).get((case.token, case.node, case.rank))
        if path is None:
            return
        try:
            size = os.stat(path).st_size
            if size > OP_PARAM_LIMIT:
                raise ValueError(f"{size} bytes exceeds the {OP_PARAM_LIMIT}-byte limit")
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8")
            params = json.loads(text, parse_constant=lambda _constant: None)
        except (OSError, ValueError, RecursionError) as exc:
            case.problem = f"{path}: op_param.json is not readable JSON: {exc}"
            case.bad_input = True
            return
        if not isinstance(params, dict):
            case.problem = f"{path}: op_param.json holds a {type(params).__name__}, expected a JSON object"
            case.bad_input = True
            return
        case.params = params
        case.op_param_text = json.dumps(params, sort_keys=True)

    def _gather_ranks(self, case: OpCase, source: str) -> None:
        """Every rank's inputs of the same op (the ``{rank}_{pid}`` folder replaced, msit-spec §6.2)."""
        params = case.params
        size = params.get("rankSize")
        folder = Path(case.path)
        parts = folder.parts
        at = next((i for i in range(len(parts) - 1, -1, -1) if _RANK_FOLDER.fullmatch(parts[i])), None)
        if at is None or parts[at - 1] != "tensors":
            case.problem = f"{case.path}: not inside tensors/{{rank}}_{{pid}}/, cannot find the other ranks"
            return
        tensors = Path(*parts[:at])
        ranks: dict[int, Path] = {}
        for entry in sorted(os.listdir(tensors)):
            match = _RANK_FOLDER.fullmatch(entry)
            if match:
                ranks.setdefault(int(match.group(1)), tensors / entry)
        if not isinstance(size, int) or isinstance(size, bool):
            if size is not None:
                case.problem = f"{case.op_type}: rankSize must be an integer, got {size!r}"
                case.bad_input = True
                return
            wanted = sorted(ranks)
        else:
            wanted = list(range(size))
        inputs: list[TensorRecord] = []
        for rank in wanted:
            if rank not in ranks:
                case.problem = f"{case.op_type}: rank {rank}'s dump is missing under {tensors}"
                case.bad_input = True
                return
            other = ranks[rank].joinpath(*parts[at + 1 :])
            files = _tensor_files(other / source, "intensor")
            if not files:
                case.problem = f"{other / source}: rank {rank}'s inputs of this operator are missing"
                case.bad_input = True
                return
            inputs += [
                TensorRecord(
                    str(path),
                    case.token,
                    case.node,
                    f"{source}/intensor{k}",
                    "input",
                    k,
                    case.op_type,
                    0,
                    rank,
                )
                for k, path in files
            ]
        case.inputs = inputs

    # torch ------------------------------------------------------------------------------------------
    def _torch_case(self, records: list[TensorRecord], found: OpSpec) -> OpCase:
        first = records[0]
        case = self._base(
            records, "torch", f"{self._prefix(first.token, first.rank)}{first.node}", first.node
        )
        case.path = os.path.dirname(first.path)
        module_name = _module_name(first.node)
        wanted = (*found.weights, *found.optional_weights)
        module = self._module(module_name) if self.model is not None else None
        if self.model is not None and module is None:
            case.problem = f"not checkable: the model passed has no module {module_name}"
            return case
        if module is not None:
            from ..capture.dumper import module_attributes

            case.params = module_attributes(module)
            held = {
                **dict(module.named_parameters(recurse=False)),
                **dict(module.named_buffers(recurse=False)),
            }
            case.weights = {name: held[name] for name in wanted if held.get(name) is not None}
        else:
            case.params = dict(self._attributes_of(first.rank).get(module_name, {}))
            for name in wanted:
                record = self._weights.get((first.rank, f"{module_name}.{name}"))
                if record is not None:
                    case.weights[name] = record
        missing = [name for name in found.weights if name not in case.weights]
        if missing:
            where = "the model passed" if module is not None else "the dump's weights folder"
            names = ", ".join(f"{module_name}.{name}" for name in missing)
            hint = "" if module is not None else " (capture with dump_weight=True, or pass the model)"
            case.problem = f"not checkable: {names} not in {where}{hint}"
            return case
        case.problem = _missing_params(found, case.params, attributes=True)
        if case.problem is None and not case.outputs:
            case.problem = f"{case.path}: no output files"
            case.bad_input = True
        return case

    def _module(self, name: str) -> nn.Module | None:
        target = name.removeprefix("root").removeprefix(".")
        try:
            return self.model.get_submodule(target)
        except AttributeError:
            return None

    def _attributes_of(self, rank: int | None) -> dict[str, dict[str, Any]]:
        """``{module name: attributes}`` from the rank's ``model_tree.json`` (read once)."""
        if rank not in self._attributes:
            found: dict[str, dict[str, Any]] = {}
            path = self.dump.info.get("model_trees", {}).get(rank)
            tree = _read_json(path) if path else None
            pending = [tree]
            while pending:
                node = pending.pop()
                if not isinstance(node, dict):
                    continue
                if isinstance(node.get("name"), str) and isinstance(node.get("attributes"), dict):
                    found[node["name"]] = node["attributes"]
                if isinstance(node.get("children"), list):
                    pending += node["children"]
            self._attributes[rank] = found
        return self._attributes[rank]

    # FX ---------------------------------------------------------------------------------------------
    def _fx_case(self, records: list[TensorRecord], found: OpSpec) -> OpCase:
        from ..formats.fx_sidecar import sidecar_path
        from .aten import ARGS, KWARGS, OUTPUT_DTYPES, not_checkable_reason

        first = records[0]
        case = self._base(records, "fx", f"{self._prefix(first.token, first.rank)}{first.node}", first.node)
        case.path = os.path.dirname(first.path)
        case.inputs = _indexed(case.inputs)
        case.outputs = _indexed(case.outputs)
        entry = None
        sidecar = sidecar_path(case.path)
        if sidecar is not None:
            nodes = self._sidecar(str(sidecar))
            if isinstance(nodes, str):
                case.problem, case.bad_input = nodes, True
                return case
            entry = nodes.get(first.node) if nodes else None
        if isinstance(entry, dict):
            if isinstance(entry.get(ARGS), list):
                case.params[ARGS] = entry[ARGS]
                case.params[KWARGS] = entry.get(KWARGS) if isinstance(entry.get(KWARGS), dict) else {}
            case.input_dtypes = _names(entry.get("inputs"))
            case.output_dtypes = _names(entry.get("outputs"))
            if any(case.output_dtypes):
                case.params[OUTPUT_DTYPES] = case.output_dtypes
        reason = not_checkable_reason(first.node_type, case.params)
        if reason is not None:
            case.problem = f"not checkable: {reason}"
        elif not case.outputs:
            case.problem = f"{case.path}: no OUTPUT files of {first.node}"
            case.bad_input = True
        return case

    def _sidecar(self, path: str) -> dict[str, dict[str, Any]] | str | None:
        """The nodes of a sidecar (None when there is none, a problem text when it is broken)."""
        if path not in self._sidecars:
            from ..formats.fx_sidecar import read_sidecar

            if not os.path.isfile(path):
                self._sidecars[path] = {}
            else:
                try:
                    self._sidecars[path] = read_sidecar(path)
                except (OSError, ValueError) as exc:
                    self._sidecars[path] = f"{path}: {exc}"
        return self._sidecars[path]


def find_cases(
    dump: Dump,
    ids: Iterable[str] | str | None = None,
    names: Iterable[str] | str | None = None,
    *,
    model: nn.Module | None = None,
) -> list[OpCase]:
    """The operator cases of ``dump`` in execution order (``CaseIndex(dump, model=model).cases(ids, names)``).

    ``ids``: msit ``-ids`` (a case matches an id or any descendant, ``3`` matches ``3_0_1``; for
    torch and FX dumps a node name or a dotted module prefix); ``names``: case-insensitive
    substrings of the op type (``-opname``). Both accept comma-separated strings.
    """
    return CaseIndex(dump, model=model).cases(ids, names)


# --- helpers ----------------------------------------------------------------------------------------


def _split(value: Iterable[str] | str | None) -> list[str]:
    if value is None:
        return []
    items = (
        value.split(",") if isinstance(value, str) else [part for item in value for part in item.split(",")]
    )
    return [item.strip() for item in items if item.strip()]


def _id_matches(case: OpCase, pattern: str) -> bool:
    if case.kind == "atb":
        return re.fullmatch(re.escape(pattern) + r"(_[0-9]+){0,20}", case.op_id) is not None
    node = _module_name(case.node)
    return node == pattern or node.startswith(pattern + ".") or case.node == pattern


def _indexed(records: Iterable[TensorRecord]) -> list[TensorRecord]:
    return sorted(records, key=lambda record: record.index)


def _op_folder(record: TensorRecord) -> str:
    return os.path.dirname(os.path.dirname(record.path))


def _tensor_files(folder: Path, stem: str) -> list[tuple[int, Path]]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        match = re.fullmatch(rf"{stem}(\d+)\.bin", name)
        if match:
            found.append((int(match.group(1)), folder / name))
    return sorted(found, key=lambda item: item[0])


def _missing_params(found: OpSpec, params: Mapping[str, Any], attributes: bool = False) -> str | None:
    missing = [name for name in found.required_params if params.get(name) is None]
    if not missing:
        return None
    what = "attribute" if attributes else "parameter"
    hint = (
        " (the dump's model_tree.json records no module attributes: capture with pytest-llmprec, "
        "or pass the model)"
        if attributes and not params
        else ""
    )
    return f"not checkable: {found.op_type} needs the {what}(s) {', '.join(missing)}{hint}"


def _names(value: Any) -> list[str | None]:
    if not isinstance(value, list):
        return []
    return [item if isinstance(item, str) else None for item in value]


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read(), parse_constant=lambda _constant: None)
    except (OSError, ValueError, RecursionError):
        return None
