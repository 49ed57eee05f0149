"""``fx_dump_backend``: a ``torch.compile`` backend that dumps every aten op's tensors like torchair's
FX data dump (msit-spec §2.5.2, §2.5.6), on any device and without torchair.

The graph is lowered to aten with AOTAutograd and run node by node by ``torch.fx.Interpreter``;
each aten op's tensor inputs and outputs are saved (before and after the op runs) as::

    {dump_path}/msit_fx_dump/worldsize{N}_global_rank{R}/{model_name}/{token_id}/
        {fx_node_name}-{aten_target}.{INPUT|OUTPUT}.{index}.{timestamp}.npy

``token_id`` counts the calls of the compiled function (recompilations of the same function keep
counting). Graphs of other functions (e.g. after a graph break) go to ``{model_name}_{k}``. numpy
has no bfloat16 or float8: such tensors are saved as float32. Non-tensor arguments are skipped;
``index`` counts the tensor arguments (flattened) of the op.

Beside ``msit_fx_dump``, ``msit_fx_nodes/.../{token_id}.json`` records per dumped node its target,
its non-tensor arguments and the original dtype of every tensor (``formats.fx_sidecar``), so that an
op can be recomputed (``pytest_llmprec.opcheck``) and bfloat16 tensors judged as bfloat16: the FX
layout reader sets each record's ``original_dtype`` from it, and comparisons choose the standard by
that dtype. Torchair's own FX dumps have no sidecar: their bfloat16 tensors are judged as the files' float32.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx
from torch.utils._pytree import tree_leaves

from ..formats.fx_sidecar import encode_call, sidecar_path, sidecar_text
from .writer import atomic_write, write_text_atomic

FX_DUMP_DIR = "msit_fx_dump"


def _rank_folder() -> str:
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized():
        return f"worldsize{distributed.get_world_size()}_global_rank{distributed.get_rank()}"
    return "worldsize1_global_rank0"


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:  # bfloat16, float8, ...: no numpy dtype
        return tensor.float().numpy()


def _save_npy(path: str, tensor: torch.Tensor) -> None:
    array = _to_numpy(tensor)

    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            np.save(handle, array)

    atomic_write(path, write)


class _DumpingInterpreter(torch.fx.Interpreter):
    """Runs an aten graph, saving each aten op's tensor inputs and outputs into ``folder``."""

    def __init__(self, graph_module: torch.fx.GraphModule, folder: Path) -> None:
        super().__init__(graph_module)
        self.folder = folder
        self.nodes: dict[str, dict[str, Any]] = {}

    def run_node(self, node: torch.fx.Node) -> Any:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            return super().run_node(node)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d%H%M%S%f")
        key = f"{node.name}-{node.target}"
        args, kwargs = self.fetch_args_kwargs_from_env(node)
        inputs = self._save(key, "INPUT", stamp, (args, kwargs))
        result = super().run_node(node)
        outputs = self._save(key, "OUTPUT", stamp, result)
        self.nodes[key] = _node_entry(str(node.target), args, kwargs, inputs, outputs)
        return result

    def run(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().run(*args, **kwargs)
        finally:
            path = sidecar_path(self.folder)
            if path is not None and self.nodes:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(str(path), sidecar_text(self.nodes))

    def _save(self, key: str, role: str, stamp: str, value: Any) -> list[torch.Tensor]:
        tensors = [leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor)]
        for index, tensor in enumerate(tensors):
            _save_npy(str(self.folder / f"{key}.{role}.{index}.{stamp}.npy"), tensor)
        return tensors


def _node_entry(
    target: str, args: Any, kwargs: dict[str, Any], inputs: list[torch.Tensor], outputs: list[torch.Tensor]
) -> dict[str, Any]:
    """The sidecar entry of one node; arguments left out when their tensors cannot be numbered."""
    encoded_args, encoded_kwargs, count = encode_call(args, kwargs)
    entry: dict[str, Any] = {"target": target}
    if count == len(inputs):
        entry.update(args=encoded_args, kwargs=encoded_kwargs)
    entry["inputs"] = [str(tensor.dtype) for tensor in inputs]
    entry["outputs"] = [str(tensor.dtype) for tensor in outputs]
    return entry


@dataclass
class _Function:
    """The dump folder and call counter of one compiled Python function (all its recompilations)."""

    folder: str
    calls: int = 0


class FxDumpBackend:
    """The backend object ``fx_dump_backend`` returns; pass it to ``torch.compile(backend=...)``."""

    def __init__(self, dump_path: str | os.PathLike[str], model_name: str = "model") -> None:
        if not model_name or any(sep in model_name for sep in "/\\") or model_name in (".", ".."):
            raise ValueError(f"model_name must be a plain folder name, got {model_name!r}")
        self.dump_dir = Path(os.path.abspath(os.fspath(dump_path))) / FX_DUMP_DIR
        self.model_name = model_name
        self._functions: dict[object, _Function] = {}

    def __call__(self, graph_module: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        from torch._dynamo.backends.common import aot_autograd

        compile_id = torch._guards.CompileContext.current_compile_id()
        key = compile_id.frame_id if compile_id is not None else id(graph_module)
        if key not in self._functions:
            count = len(self._functions)
            self._functions[key] = _Function(self.model_name if count == 0 else f"{self.model_name}_{count}")
        function = self._functions[key]

        def forward_compiler(aten_graph: torch.fx.GraphModule, _: list[Any]) -> Any:
            def run(*args: Any) -> Any:
                token = function.calls
                function.calls += 1
                folder = self.dump_dir / _rank_folder() / function.folder / str(token)
                folder.mkdir(parents=True, exist_ok=True)
                return _DumpingInterpreter(aten_graph, folder).run(*args)

            return run

        def backward_compiler(aten_graph: torch.fx.GraphModule, _: list[Any]) -> Any:
            return aten_graph

        return aot_autograd(fw_compiler=forward_compiler, bw_compiler=backward_compiler)(
            graph_module, example_inputs
        )


def fx_dump_backend(dump_path: str | os.PathLike[str], model_name: str = "model") -> FxDumpBackend:
    """A ``torch.compile`` backend that dumps aten-level tensors in torchair's FX layout (module doc)."""
    return FxDumpBackend(dump_path, model_name)
