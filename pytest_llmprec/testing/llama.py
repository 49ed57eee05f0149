"""Random-weight Hugging Face Llama models built in code, their ports, planted porting defects, and a
token loop that feeds both runs the same token ids: for tests and benchmarks of precision tooling.

Needs ``transformers`` (imported when a model is built). No weights are downloaded.

    golden = build_llama(hidden=256, layers=4)
    my = port(golden, torch.bfloat16)                 # an honest bf16 port (rotary buffers kept fp32)
    plant(my, "gelu", layer=2)                        # ... with a wrong activation in layer 2
    ids = greedy_ids(golden, prompt(golden, 32), new_tokens=3)
    run_tokens(golden, ids, prompt_length=32)         # one forward per token, prefill then decode
    dump_tokens(my, ids, 32, "dumps/my")              # the same, dumped by register_hook
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

DEFECTS = (
    "rotary_bf16",
    "norm_scale",
    "gelu",
    "unscaled_attention",
    "int8_down_proj",
    "swapped_gate_up",
    "rotary_theta",
    "head_order",
    "attention_output_scaled",
)
"""Porting defects ``plant`` knows: rotary ``inv_freq`` rounded to bfloat16 (what a plain
``model.to(torch.bfloat16)`` does), a norm weight x 1.05, SiLU replaced by GELU(tanh), attention
scores not scaled by 1/sqrt(head_dim), the MLP's down projection fake-quantised to int8 with one
scale per tensor, the MLP's gate and up projections wired the wrong way round (every operator
right, the module wrong), the rotary base mis-configured (500,000 for 10,000: model-wide), the
output projection's columns of two attention heads swapped (weights loaded in the wrong head
order), and the attention block's output scaled by 0.9 after its output projection (a residual
multiplier the model does not have: every operator right, the module wrong)."""
ROTARY_BASE = 500_000.0
OUTPUT_SCALE = 0.9


def build_llama(
    *,
    hidden: int = 256,
    layers: int = 4,
    intermediate: int | None = None,
    heads: int = 4,
    kv_heads: int | None = None,
    vocab: int = 1024,
    max_positions: int = 2048,
    seed: int = 0,
) -> nn.Module:
    """A float32 ``LlamaForCausalLM`` with random weights (``seed``), in eval mode, eager attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate or int(hidden * 8 / 3 // 64 * 64) or 64,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or max(1, heads // 2),
        vocab_size=vocab,
        max_position_embeddings=max_positions,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def port(model: nn.Module, dtype: torch.dtype = torch.bfloat16, *, keep_rotary: bool = True) -> nn.Module:
    """A copy of ``model`` in ``dtype``; with ``keep_rotary`` the rotary ``inv_freq`` buffers stay
    float32, as serving stacks keep them (a plain ``.to(dtype)`` rounds them: ``keep_rotary=False``)."""
    ported = copy.deepcopy(model).to(dtype)
    if keep_rotary:
        for name, module in model.named_modules():
            if hasattr(module, "inv_freq"):
                target = ported.get_submodule(name)
                target.inv_freq = module.inv_freq.detach().clone()
                if hasattr(module, "original_inv_freq"):
                    target.original_inv_freq = module.original_inv_freq.detach().clone()
    return ported


def _decoder_layer(model: nn.Module, layer: int) -> nn.Module:
    return model.model.layers[layer]


def _fake_int8(weight: torch.Tensor) -> torch.Tensor:
    scale = weight.detach().abs().max().float() / 127
    return ((weight.float() / scale).round().clamp(-127, 127) * scale).to(weight.dtype)


def _swapped_gate_up(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(self.act_fn(self.up_proj(x)) * self.gate_proj(x))


def plant(model: nn.Module, defect: str, layer: int = 0) -> nn.Module:
    """Plant ``defect`` (one of ``DEFECTS``) in decoder layer ``layer`` of ``model`` (the rotary
    defect is model-wide); returns the model, changed in place."""
    changes: dict[str, Callable[[], None]] = {
        "rotary_bf16": lambda: _round_rotary(model),
        "norm_scale": lambda: _decoder_layer(model, layer).post_attention_layernorm.weight.data.mul_(1.05),
        "gelu": lambda: setattr(_decoder_layer(model, layer).mlp, "act_fn", nn.GELU(approximate="tanh")),
        "unscaled_attention": lambda: setattr(_decoder_layer(model, layer).self_attn, "scaling", 1.0),
        "int8_down_proj": lambda: _quantise(_decoder_layer(model, layer).mlp.down_proj),
        "swapped_gate_up": lambda: _rewire(_decoder_layer(model, layer).mlp),
        "rotary_theta": lambda: _rebase_rotary(model),
        "head_order": lambda: _swap_heads(model, _decoder_layer(model, layer).self_attn.o_proj),
        "attention_output_scaled": lambda: _decoder_layer(model, layer).self_attn.register_forward_hook(
            _scaled_output
        ),
    }
    if defect not in changes:
        raise ValueError(f"unknown defect {defect!r}; choose one of {', '.join(DEFECTS)}")
    changes[defect]()
    return model


def _round_rotary(model: nn.Module) -> None:
    for module in model.modules():
        if hasattr(module, "inv_freq"):
            module.inv_freq = module.inv_freq.to(torch.bfloat16).to(module.inv_freq.dtype)


def _rebase_rotary(model: nn.Module) -> None:
    for module in model.modules():
        if hasattr(module, "inv_freq"):
            dim = 2 * module.inv_freq.numel()
            exponents = torch.arange(0, dim, 2, dtype=torch.float32) / dim
            module.inv_freq = (1.0 / ROTARY_BASE**exponents).to(module.inv_freq)


def _swap_heads(model: nn.Module, linear: nn.Module) -> None:
    head_dim = (
        getattr(model.config, "head_dim", None)
        or model.config.hidden_size // model.config.num_attention_heads
    )
    weight = linear.weight.data
    first, second = weight[:, :head_dim].clone(), weight[:, head_dim : 2 * head_dim].clone()
    weight[:, :head_dim], weight[:, head_dim : 2 * head_dim] = second, first


def _scaled_output(_module: nn.Module, _inputs: object, output: tuple) -> tuple:
    return (output[0] * OUTPUT_SCALE, *output[1:])


def _quantise(linear: nn.Module) -> None:
    linear.weight.data = _fake_int8(linear.weight.data)


def _rewire(mlp: nn.Module) -> None:
    mlp.forward = types.MethodType(_swapped_gate_up, mlp)


def prompt(model: nn.Module, length: int, seed: int = 1) -> torch.Tensor:
    """``[1, length]`` random token ids in the model's vocabulary."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (1, length), generator=generator)


@torch.no_grad()
def greedy_ids(model: nn.Module, prompt_ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """``prompt_ids`` followed by ``new_tokens`` greedily generated ids (KV cache, one call per token)."""
    ids = prompt_ids
    out = model(ids, use_cache=True)
    for _ in range(new_tokens):
        step = out.logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, step], dim=1)
        out = _decode(model, step, out)
    return ids


@torch.no_grad()
def run_tokens(model: nn.Module, ids: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """Run ``ids`` as a prefill of the first ``prompt_length`` ids then one decode call per further id
    (teacher forcing: every run sees these ids whatever it would generate); returns the last logits."""
    out = model(ids[:, :prompt_length], use_cache=True)
    for position in range(prompt_length, ids.shape[1]):
        out = _decode(model, ids[:, position : position + 1], out)
    return out.logits


def dump_tokens(model: nn.Module, ids: torch.Tensor, prompt_length: int, folder, replay=None) -> Path:
    """``run_tokens`` under ``register_hook``, every token dumped into ``folder``; the dump root.
    ``replay``: a golden dump whose inputs each module is also run on (``DumpConfig(replay=)``)."""
    from ..capture import DumpConfig, register_hook

    tokens = list(range(ids.shape[1] - prompt_length + 1))
    config = DumpConfig(dump_path=folder, token_range=tokens, replay=replay)
    with register_hook(model, config) as handle:
        run_tokens(model, ids, prompt_length)
    return Path(handle.root_dir)


def _decode(model: nn.Module, ids: torch.Tensor, previous) -> object:
    """One decode call on the key/value cache of ``previous`` (transformers 5 names it ``cache``,
    earlier releases ``past_key_values``)."""
    if "cache" in previous:
        return model(ids, cache=previous["cache"], use_cache=True)
    return model(ids, past_key_values=previous.past_key_values, use_cache=True)
