"""TorchAir dumps of one small function: FX dumps from ``capture.fx_dump_backend``, and GE dumps as
the GE dump of a torchair run lays them out (msit-spec §2.5), written with the project's writers
(``formats.write_ge_dump`` for the op files, ``formats.write_ge_graph`` for the graph text).

The GE ops are the aten nodes of the function's AOT graph (the graph ``fx_dump_backend`` runs),
each named ``{GeType}_{k}``, their tensors computed by running that graph; the graph text ties
each op's outputs to its FX node (``_fx_tensor_name``). Options: fuse ops into one
``AutomaticBufferFusionOp`` file (as GE's buffer fusion does), add a GE-inserted TransData that
the graph does not know, perturb one node's output (the change propagates downstream), ranks.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.fx
from torch._dynamo.backends.common import aot_autograd
from torch.utils._pytree import tree_leaves

from pytest_llmprec.capture import fx_dump_backend
from pytest_llmprec.formats import GeGraphOp, write_ge_dump, write_ge_graph

GE_TYPES = {
    "mm": "MatMulV2",
    "add": "Add",
    "relu": "Relu",
    "mul": "Mul",
    "_to_copy": "Cast",
    "sum": "ReduceSum",
}


def sample(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    y = torch.mm(x, w)
    z = torch.relu(y + x)
    return (z * 2.0).to(torch.float16).sum(0)


def sample_inputs(token: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(10 + token)
    return torch.randn(4, 4, generator=generator), torch.randn(
        4, 4, generator=torch.Generator().manual_seed(3)
    )


def write_fx_dump(folder: Path, tokens: int = 2) -> Path:
    """``msit_fx_dump`` of ``sample`` called ``tokens`` times (token k = call k), by ``fx_dump_backend``."""
    torch._dynamo.reset()
    compiled = torch.compile(sample, backend=fx_dump_backend(folder))
    for token in range(tokens):
        compiled(*sample_inputs(token))
    torch._dynamo.reset()
    return folder / "msit_fx_dump"


def aten_graph() -> torch.fx.GraphModule:
    """The AOT (aten) graph of ``sample``: the graph fx_dump_backend runs and names its files after."""
    graphs: list[torch.fx.GraphModule] = []

    def keep(graph_module, _):
        graphs.append(graph_module)
        return graph_module

    torch._dynamo.reset()
    torch.compile(sample, backend=aot_autograd(fw_compiler=keep))(*sample_inputs(0))
    torch._dynamo.reset()
    return graphs[0]


def _values(graph: torch.fx.GraphModule, inputs, perturb: str | None) -> dict[str, tuple[list, list]]:
    """Each aten node's tensor inputs and outputs when ``graph`` runs on ``inputs``."""
    seen: dict[str, tuple[list, list]] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            if node.op == "call_function":
                if node.name == perturb:
                    result = result + torch.randn(result.shape, generator=torch.Generator().manual_seed(5))
                args, kwargs = self.fetch_args_kwargs_from_env(node)
                ins = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
                seen[node.name] = (ins, [t for t in tree_leaves(result) if isinstance(t, torch.Tensor)])
            return result

    Recorder(graph).run(*inputs)
    return seen


def ge_ops(graph: torch.fx.GraphModule) -> tuple[list[GeGraphOp], dict[str, str]]:
    """The GE graph of the aten graph, and the GE op name of each aten node."""
    names: dict[str, str] = {}
    ops: list[GeGraphOp] = []
    for node in graph.graph.nodes:
        if node.op == "placeholder":
            names[node.name] = node.name
            ops.append(GeGraphOp(node.name, "Data", (), ("",)))
        elif node.op == "call_function":
            kind = GE_TYPES[node.target.__name__.split(".")[0]]
            names[node.name] = f"{kind}_{len(ops)}"
            inputs = tuple(f"{names[arg.name]}:0" for arg in node.all_input_nodes)
            ops.append(GeGraphOp(names[node.name], kind, inputs, (f"{node.name}-{node.target}.OUTPUT.0",)))
    return ops, names


def write_ge_dump_tree(
    folder: Path,
    tokens: int = 2,
    *,
    fuse: tuple[str, ...] = (),
    transdata_after: str | None = None,
    perturb: str | None = None,
    ranks: tuple[int, ...] = (0,),
    rank_layout: bool = True,
) -> Path:
    """``msit_ge_dump`` of ``sample``: per rank ``worldsize{N}_global_rank{R}/{time}/{device}/{model}/{model_id}/{token}/``
    op files, graph text files at the top. ``fuse`` names aten nodes dumped as one fused op;
    ``transdata_after`` adds a GE-inserted TransData on that node's output; ``perturb`` adds noise to
    one node's output."""
    root = folder / "msit_ge_dump"
    graph = aten_graph()
    ops, names = ge_ops(graph)
    world = len(ranks)
    for rank in ranks:
        graph_file = root / f"dynamo_original_graph_1_rank_{rank}_pid_123_ts_456.txt"
        root.mkdir(parents=True, exist_ok=True)
        write_ge_graph(graph_file, ops, "graph_1")
        (root / f"dynamo_optimized_graph_1_rank_{rank}_pid_123_ts_456.txt").write_text('name: "optimized"\n')
        base = root / f"worldsize{world}_global_rank{rank}" if rank_layout else root
        for token in range(tokens):
            values = _values(graph, sample_inputs(token), perturb)
            out = base / "20240102030405" / str(rank) / "graph_1" / "1" / str(token)
            out.mkdir(parents=True, exist_ok=True)
            stamp = 17000000000000
            fused = [n for n in values if n in fuse]
            for node, (ins, outs) in values.items():
                stamp += 10
                if node in fuse:
                    if node != fused[-1]:
                        continue
                    first = values[fused[0]][0]
                    name = "".join(names[n] for n in fused)
                    produced = {id(t) for n in fused[:-1] for t in values[n][1]}
                    ins = [t for n in fused for t in values[n][0] if id(t) not in produced]
                    assert ins[: len(first)] == first
                    write_ge_dump(
                        out / f"AutomaticBufferFusionOp.{name}.1.2.{stamp}",
                        inputs=ins,
                        outputs=outs,
                        op_name=name,
                    )
                    continue
                kind = names[node].rsplit("_", 1)[0]
                write_ge_dump(
                    out / f"{kind}.{names[node]}.1.2.{stamp}", inputs=ins, outputs=outs, op_name=names[node]
                )
                if node == transdata_after:
                    stamp += 5
                    write_ge_dump(
                        out / f"TransData.trans_TransData_{len(ops)}.1.2.{stamp}",
                        inputs=outs,
                        outputs=[t.clone() for t in outs],
                        op_name=f"trans_TransData_{len(ops)}",
                    )
    return root
