"""Dumps of a small Llama-style model in the torch hook layout and in the ATB layout.

The torch dump is written by the project's capture (``register_hook``). The ATB dump is written
here the way msit's ATB dump backend lays it out (msit-spec §2.2): ``model/{pid}/*.json``
topologies (prefill and decode models, nested graph operations, ``param``), and
``tensors/{device}_{pid}/{round}/{i}_{OpType}/{before,after}/{in,out}tensor{k}.bin`` written with
``formats.save_atb_bin`` (float16, as ATB runs), ``op_param.json`` per operation, a warm-up round,
round 1 holding the prefill and the first decode model, and optionally several ranks (the
column-parallel tensors split across ranks), a quantised variant and statistics-only files.

The ATB tensors are computed by running the torch model's own modules in the operator structure
of a MindIE-style Llama (``llama_ops``), so a float ATB dump of the same weights matches the torch
dump within float16 rounding, and a planted change shows up where it was planted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pytest_llmprec.capture import DumpConfig, register_hook
from pytest_llmprec.formats import save_atb_bin

ELEWISE_ADD, ELEWISE_MUL, ELEWISE_QUANT = 8, 9, 17
PLANTED = "model.layers.1.mlp.down_proj"
"""The linear whose weights the "planted" models perturb."""


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int = 32
    hidden_size: int = 16
    intermediate_size: int = 20
    num_layers: int = 2
    num_heads: int = 2
    max_positions: int = 32
    rms_eps: float = 1e-6


class LlamaRMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LlamaRotaryEmbedding(nn.Module):
    """The cached cos/sin tables of the older transformers Llama: ``[1, 1, seq, head_dim]`` each."""

    def __init__(self, head_dim: int, max_positions: int) -> None:
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(max_positions).float(), inv_freq)
        table = torch.cat([angles, angles], -1)
        self.register_buffer("cos_cached", table.cos()[None, None], persistent=False)
        self.register_buffer("sin_cached", table.sin()[None, None], persistent=False)

    def forward(self, x: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos_cached[:, :, :seq_len], self.sin_cached[:, :, :seq_len]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


class LlamaAttention(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.num_heads = config.num_heads
        self.head_dim = hidden // config.num_heads
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden, bias=False)
        self.v_proj = nn.Linear(hidden, hidden, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.rotary_emb = LlamaRotaryEmbedding(self.head_dim, config.max_positions)

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        batch, length, _ = t.shape
        return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        batch, _, length, _ = q.shape
        out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return out.transpose(1, 2).reshape(batch, length, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(self.q_proj(x)), self.heads(self.k_proj(x)), self.heads(self.v_proj(x))
        cos, sin = self.rotary_emb(v, x.shape[1])
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        return self.o_proj(self.attend(q, k, v))


class LlamaMLP(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, config.rms_eps)
        self.self_attn = LlamaAttention(config)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, config.rms_eps)
        self.mlp = LlamaMLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config) for _ in range(config.num_layers))
        self.norm = LlamaRMSNorm(config.hidden_size, config.rms_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.model(ids))


def build_llama(config: LlamaConfig | None = None, seed: int = 0) -> LlamaForCausalLM:
    """A model with deterministic random weights (norm weights near 1)."""
    config = config or LlamaConfig()
    generator = torch.Generator().manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("norm.weight"):
                param.copy_(1 + 0.1 * noise)
            else:
                param.copy_(noise / param.shape[-1] ** 0.5)
    return model.eval()


def plant(model: LlamaForCausalLM, module: str, scale: float = 0.5, seed: int = 7) -> LlamaForCausalLM:
    """Perturb the weight of one linear module (e.g. ``model.layers.1.mlp.down_proj``) in place."""
    weight = model.get_submodule(module).weight
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight.add_(scale * weight.abs().mean() * torch.randn(weight.shape, generator=generator) * 4)
    return model


def sequences(config: LlamaConfig, prompt: int = 5, steps: int = 2) -> list[torch.Tensor]:
    """The input ids of each forward call: the prompt, then one more token per decode step
    (no KV cache: every call runs the whole sequence, the same inputs on both runtimes)."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (1, prompt + steps), generator=generator)
    return [ids[:, : prompt + step] for step in range(steps + 1)]


def write_torch_dump(
    model: LlamaForCausalLM, calls: list[torch.Tensor], dump_path: Path, statistics: bool = False
) -> Path:
    """The msit torch dump of the forward calls (token k = call k); returns the ``msit_dump_*`` root."""
    config = DumpConfig(
        dump_path=str(dump_path),
        token_range=list(range(len(calls))),
        dump_statistics_mode=1 if statistics else 0,
    )
    with torch.no_grad(), register_hook(model, config) as handle:
        for ids in calls:
            model(ids)
        root = handle.root_dir
    return Path(root)


# --- the ATB operator structure ----------------------------------------------------------------


@dataclass
class AtbOp:
    """One ATB operation: a leaf with its tensors, or a graph operation with children whose inputs
    are what its children read from outside it."""

    type: str
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    children: list[AtbOp] = field(default_factory=list)
    param: dict = field(default_factory=dict)
    split_dim: int | None = None
    """Tensor-parallel ranks hold slices of this op's tensors along this dimension (None: replicated)."""
    whole: tuple[int, ...] = ()
    """Inputs every rank holds whole (rope tables, sequence lengths)."""

    def graph_inputs(self) -> list[torch.Tensor]:
        if not self.children:
            return self.inputs
        made: set[int] = set()
        found: dict[int, torch.Tensor] = {}
        for child in self.children:
            for tensor in child.graph_inputs():
                if id(tensor) not in made:
                    found.setdefault(id(tensor), tensor)
            made.update(id(t) for t in child.outputs)
        return list(found.values())


LINEAR_PARAM = {"hasBias": False, "outDataType": -1, "transposeA": False, "transposeB": True}


def _flat(t: torch.Tensor) -> torch.Tensor:
    """ATB keeps activations as ``[tokens, features]``."""
    return t.reshape(-1, t.shape[-1])


def _linear(x: torch.Tensor, weight: torch.Tensor, quant: bool, split_dim: int | None = None) -> AtbOp:
    if quant:
        scale = weight.abs().amax(1, keepdim=True) / 127
        weight = (weight / scale).round().clamp(-128, 127) * scale
    out = x @ weight.T
    kind = "LinearQuantOperation" if quant else "LinearOperation"
    return AtbOp(kind, [x, weight], [out], param=dict(LINEAR_PARAM), split_dim=split_dim)


def _rms(x: torch.Tensor, norm: LlamaRMSNorm) -> AtbOp:
    return AtbOp("RmsNormOperation", [x, norm.weight.detach()], [norm(x)], param={"epsilon": norm.eps})


def layer_ops(layer: LlamaDecoderLayer, x: torch.Tensor, rope: list[torch.Tensor], quant: bool) -> AtbOp:
    """One decoder layer as a MindIE-style ATB layer graph (``x`` is ``[tokens, hidden]``)."""
    attn, mlp = layer.self_attn, layer.mlp
    tokens = x.shape[0]
    norm1 = _rms(x, layer.input_layernorm)
    w_qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).detach()
    qkv_linear = _linear(norm1.outputs[0], w_qkv, quant, split_dim=-1)
    q, k, v = qkv_linear.outputs[0].chunk(3, -1)
    split = AtbOp(
        "SplitOperation",
        [qkv_linear.outputs[0]],
        [q, k, v],
        param={"splitDim": -1, "splitNum": 3},
        split_dim=-1,
    )
    norm_linear = AtbOp("NormLinear", children=[norm1, qkv_linear], outputs=qkv_linear.outputs, split_dim=-1)
    pack = AtbOp("QKVLinearSplitPack", children=[norm_linear, split], outputs=[q, k, v], split_dim=-1)

    cos, sin, seqlen = rope
    shaped = [attn.heads(t.reshape(1, tokens, -1)) for t in (q, k, v)]
    cos_t, sin_t = attn.rotary_emb(shaped[2], tokens)
    q_rot = _flat((shaped[0] * cos_t + rotate_half(shaped[0]) * sin_t).transpose(1, 2))
    k_rot = _flat((shaped[1] * cos_t + rotate_half(shaped[1]) * sin_t).transpose(1, 2))
    tables = (2, 3, 4)  # cos, sin and the sequence length are whole on every rank
    rope_op = AtbOp(
        "RopeOperation",
        [q, k, cos, sin, seqlen],
        [q_rot, k_rot],
        param={"rotaryCoeff": 2},
        split_dim=-1,
        whole=tables,
    )
    rotary = AtbOp(
        "RotaryPositionEmbedding", children=[rope_op], outputs=[q_rot, k_rot], split_dim=-1, whole=tables
    )
    context = _flat(attn.attend(*(attn.heads(t.reshape(1, tokens, -1)) for t in (q_rot, k_rot)), shaped[2]))
    self_attention = AtbOp(
        "SelfAttentionOperation",
        [q_rot, k_rot, v],
        [context],
        param={"headNum": attn.num_heads},
        split_dim=-1,
    )
    o_proj = _linear(context, attn.o_proj.weight.detach(), quant)
    attention = AtbOp("Attention", children=[pack, rotary, self_attention, o_proj], outputs=o_proj.outputs)
    h = x + o_proj.outputs[0]
    add1 = AtbOp("ElewiseOperation", [x, o_proj.outputs[0]], [h], param={"elewiseType": ELEWISE_ADD})

    norm2 = _rms(h, layer.post_attention_layernorm)
    w_gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach()
    gate_up_linear = _linear(norm2.outputs[0], w_gate_up, quant, split_dim=-1)
    gate, up = gate_up_linear.outputs[0].chunk(2, -1)
    split2 = AtbOp(
        "SplitOperation", [gate_up_linear.outputs[0]], [gate, up], param={"splitNum": 2}, split_dim=-1
    )
    act = mlp.act_fn(gate)
    activation = AtbOp("ActivationOperation", [gate], [act], param={"activationType": 4}, split_dim=-1)
    product = act * up
    mul = AtbOp("ElewiseOperation", [act, up], [product], param={"elewiseType": ELEWISE_MUL}, split_dim=-1)
    mlp_ops = [norm2, gate_up_linear, split2, activation, mul]
    if quant:
        mlp_ops.append(
            AtbOp(
                "ElewiseOperation",
                [product],
                [product.clone()],
                param={"elewiseType": ELEWISE_QUANT},
                split_dim=-1,
            )
        )
    down = _linear(mlp_ops[-1].outputs[0], mlp.down_proj.weight.detach(), quant)
    mlp_ops.append(down)
    mlp_op = AtbOp("Mlp", children=mlp_ops, outputs=down.outputs)
    out = h + down.outputs[0]
    add2 = AtbOp("ElewiseOperation", [h, down.outputs[0]], [out], param={"elewiseType": ELEWISE_ADD})
    return AtbOp("LlamaLayer", children=[attention, add1, mlp_op, add2], outputs=[out])


@torch.no_grad()
def llama_ops(model: LlamaForCausalLM, ids: torch.Tensor, quant: bool = False) -> list[AtbOp]:
    """The top-level ATB operations of one forward call of ``model`` on ``ids``."""
    config = model.config
    flat_ids = ids.reshape(-1)
    tokens = flat_ids.numel()
    embed = model.model.embed_tokens.weight.detach()
    x = embed[flat_ids]
    gather = AtbOp("GatherOperation", [embed, flat_ids], [x])
    ops = [AtbOp("WordEmbedding", children=[gather], outputs=[x])]
    head_dim = config.hidden_size // config.num_heads
    rotary = model.model.layers[0].self_attn.rotary_emb
    cos_full, sin_full = rotary(torch.zeros(1), tokens)
    # ATB rope tables: one row per token, every value twice (msit's rope special case de-interleaves)
    cos = cos_full[0, 0].repeat_interleave(2, -1)
    sin = sin_full[0, 0].repeat_interleave(2, -1)
    assert cos.shape == (tokens, 2 * head_dim)
    seqlen = torch.tensor([tokens], dtype=torch.int32)
    for layer in model.model.layers:
        op = layer_ops(layer, x, [cos, sin, seqlen], quant)
        ops.append(op)
        x = op.outputs[0]
    normed = model.model.norm(x)
    ops.append(
        AtbOp(
            "RmsNormOperation",
            [x, model.model.norm.weight.detach()],
            [normed],
            param={"epsilon": config.rms_eps},
        )
    )
    head = _linear(normed, model.lm_head.weight.detach(), False)
    ops.append(AtbOp("LmHead", children=[head], outputs=head.outputs))
    return ops


# --- writing the ATB layout --------------------------------------------------------------------


def _op_name(op_type: str, ids: list[int]) -> str:
    return f"{op_type}_{'_'.join(str(i) for i in ids)}"


class _Names:
    """ATB tensor names by tensor identity (the tensors stay alive in the op trees)."""

    def __init__(self, model_name: str) -> None:
        self.model = model_name
        self.names: dict[int, str] = {}

    def name(self, tensor: torch.Tensor, kind: str) -> str:
        if id(tensor) not in self.names:
            self.names[id(tensor)] = f"{self.model}_{kind}_{len(self.names)}"
        return self.names[id(tensor)]


def topology(model_name: str, ops: list[AtbOp], first: int) -> dict:
    """The model topology JSON of ``ops`` whose top-level op ids start at ``first``."""
    names = _Names(model_name)

    def node(op: AtbOp, ids: list[int]) -> dict:
        inputs = op.graph_inputs()
        entry = {
            "opName": _op_name(op.type, ids),
            "opType": op.type,
            "param": op.param,
            "inTensors": [names.name(t, "input") for t in inputs],
            "outTensors": [names.name(t, "internal") for t in op.outputs],
        }
        if op.children:
            entry["nodes"] = [node(child, [*ids, i]) for i, child in enumerate(op.children)]
            outside = {id(t) for t in inputs} | {id(t) for t in op.outputs}
            entry["internalTensors"] = [
                names.name(t, "internal")
                for child in op.children
                for t in child.outputs
                if id(t) not in outside
            ]
        return entry

    graph = AtbOp("model", children=ops, outputs=ops[-1].outputs)
    model_inputs = [names.name(t, "input") for t in graph.graph_inputs()]
    nodes = [node(op, [first + i]) for i, op in enumerate(ops)]
    return {
        "modelName": model_name,
        "inTensors": model_inputs,
        "outTensors": [names.name(t, "output") for t in ops[-1].outputs],
        "internalTensors": [names.name(t, "internal") for op in ops[:-1] for t in op.outputs],
        "nodes": nodes,
    }


def _shard(tensor: torch.Tensor, split_dim: int | None, rank: int, world: int) -> torch.Tensor:
    if split_dim is None or world == 1 or tensor.ndim == 0 or tensor.shape[split_dim] % world:
        return tensor
    return tensor.chunk(world, split_dim)[rank]


def _atb_dtype(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.half() if tensor.is_floating_point() else tensor


def atb_statistics_text(tensor: torch.Tensor) -> str:
    """The statistics-only ATB tensor file (``--type tensor stats``): header lines, no payload."""
    values = tensor.double()
    dims = ",".join(str(d) for d in tensor.shape)
    code = {torch.float16: 1, torch.float32: 0, torch.int32: 3, torch.int64: 9}[tensor.dtype]
    return (
        f"format=2\ndtype={code}\ndims={dims}\nmax={values.max().item()!r}\nmin={values.min().item()!r}\n"
        f"mean={values.mean().item()!r}\nl2norm={values.norm().item()!r}\n$End=1\n"
    )


def write_round(
    folder: Path, ops: list[AtbOp], first: int, rank: int = 0, world: int = 1, statistics: bool = False
) -> None:
    """The tensor folders of one model run in a round folder: top-level op ``i`` in ``{first + i}_{Type}``."""

    def write(op: AtbOp, path: Path) -> None:
        for index, child in enumerate(op.children):
            write(child, path / f"{index}_{child.type}")
        for phase, role, tensors in (
            ("before", "intensor", op.graph_inputs()),
            ("after", "outtensor", op.outputs),
        ):
            (path / phase).mkdir(parents=True, exist_ok=True)
            for index, tensor in enumerate(tensors):
                whole = role == "intensor" and index in op.whole
                value = _atb_dtype(_shard(tensor.detach(), None if whole else op.split_dim, rank, world))
                target = path / phase / f"{role}{index}.bin"
                if statistics:
                    target.write_text(atb_statistics_text(value))
                else:
                    save_atb_bin(value.contiguous(), target)
        if op.param:
            (path / "op_param.json").write_text(json.dumps(op.param))

    for index, op in enumerate(ops):
        write(op, folder / f"{first + index}_{op.type}")


@dataclass
class AtbRun:
    """Where an ATB dump was written and what it holds."""

    root: Path
    pids: list[int]
    prefill_ops: int
    model_files: list[Path]


def write_atb_dump(
    model: LlamaForCausalLM,
    calls: list[torch.Tensor],
    root: Path,
    *,
    world: int = 1,
    quant: bool = False,
    statistics: bool = False,
    pid: int = 4321,
    unrelated_pid: int | None = None,
) -> AtbRun:
    """An ATB dump of the forward ``calls`` (call 0 = prefill, call k = decode step k) in msit's layout.

    Round 0 is the warm-up (the prefill model on the first call's input), round 1 holds the prefill
    model (ops ``0..P-1``) and the first decode step (the decode model, ops ``P..2P-1``), round
    ``k >= 2`` decode step ``k``. ``world`` ranks are devices ``0..world-1`` with pids ``pid + r``;
    ``unrelated_pid`` adds the folder of another process on device 0 (a second run).
    """
    root = root / "msit_dump_20240506_070809"
    pids = [pid + rank for rank in range(world)]
    runs = [llama_ops(model, ids, quant) for ids in calls]
    prefill = len(runs[0])
    rounds: list[list[tuple[list[AtbOp], int]]] = [[(llama_ops(model, calls[0], quant), 0)]]
    rounds.append([(runs[0], 0)] + ([(runs[1], prefill)] if len(runs) > 1 else []))
    rounds += [[(ops, prefill)] for ops in runs[2:]]
    model_files = []
    processes = [(rank, p) for rank, p in enumerate(pids)]
    if unrelated_pid is not None:
        processes.append((0, unrelated_pid))
    for rank, process in processes:
        models = root / "model" / str(process)
        models.mkdir(parents=True, exist_ok=True)
        name = "Llama2bQuant" if quant else "Llama2b"
        if process == unrelated_pid:
            name = "OtherModel"
        for suffix, ops, first in (("Prefill", runs[0], 0), ("Decode", runs[min(1, len(runs) - 1)], prefill)):
            path = models / f"{name}{suffix}.json"
            path.write_text(json.dumps(topology(f"{name}{suffix}", ops, first), indent=1))
            model_files.append(path)
        for number, parts in enumerate(rounds):
            folder = root / "tensors" / f"{rank}_{process}" / str(number)
            for ops, first in parts:
                write_round(folder, ops, first, rank if process != unrelated_pid else 0, world, statistics)
    return AtbRun(root, pids, prefill, model_files)


def layer_folder(layer: int) -> str:
    """The ATB folder of decoder layer ``layer`` in a prefill round (the embedding is op 0)."""
    return f"{layer + 1}_LlamaLayer"


# --- weights -------------------------------------------------------------------------------------


def quantise(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric per-output-channel int8: ``weight ≈ (q - offset) * scale`` (msit's convention)."""
    low, high = weight.amin(1), weight.amax(1)
    scale = (high - low).clamp_min(1e-8) / 255
    offset = (-128 - low / scale).round()
    q = (weight / scale[:, None] + offset[:, None]).round().clamp(-128, 127).to(torch.int8)
    return q, scale, offset


def write_weights(
    model: LlamaForCausalLM,
    folder: Path,
    quant: bool = False,
    shards: int = 2,
    scale_error: str | None = None,
) -> Path:
    """The model's weights as ``model-0000k-of-0000n.safetensors`` shards; with ``quant``, every
    linear weight as int8 with ``weight_scale``/``weight_offset`` (``scale_error``: that weight's
    scale is written twice too large)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, param in model.state_dict().items():
        if quant and name.endswith("_proj.weight"):
            q, scale, offset = quantise(param)
            base = name[: -len("weight")]
            tensors[name] = q
            tensors[base + "weight_scale"] = scale * (2 if name == scale_error else 1)
            tensors[base + "weight_offset"] = offset
        else:
            tensors[name] = param.detach().clone()
    folder.mkdir(parents=True, exist_ok=True)
    names = list(tensors)
    for shard in range(shards):
        part = {name: tensors[name].contiguous() for name in names[shard::shards]}
        save_file(part, str(folder / f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"))
    return folder
