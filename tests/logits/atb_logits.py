"""A torch last-logits dump of a greedy generation and the ATB last-layer dump of the same
generation, in their real layouts (msit-spec §8.5).

The torch side is written by the project's capture (``DumpConfig(dump_last_logits=True)``). The ATB
side is what ``msit llm dump --type model tensor -ids <last ids> -child False -stp 1`` leaves for a
MindIE-style model with a prefill and a decode topology: ``model/{pid}/{Name}{Prefill,Decode}.json``
and, per round, only the last layer's folder with ``after/outtensor0.bin`` (the logits, written with
``formats.save_atb_bin``): round 0 the warm-up, round 1 the prefill (op ``P-1``) and the first decode
step (op ``2P-1``), round ``k >= 2`` decode step ``k``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pytest_llmprec.capture import DumpConfig, register_hook
from pytest_llmprec.formats import save_atb_bin
from pytest_llmprec.testing.llama import greedy_ids, prompt

PID = 4242
MODEL = "LlamaModel"


def torch_last_logits(model, folder: Path, prompt_length: int, new_tokens: int) -> tuple[Path, list, list]:
    """Greedy generation under ``dump_last_logits``: (dump root, generated ids, the last-position
    logits of every token ``0..new_tokens``, fp32 ``[vocab]``)."""
    logits: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        logits.append(output[0, -1].detach().clone())

    hook = model.lm_head.register_forward_hook(keep)
    config = DumpConfig(dump_path=str(folder), token_range=list(range(new_tokens + 1)), dump_last_logits=True)
    try:
        with register_hook(model, config) as handle:
            ids = greedy_ids(model, prompt(model, prompt_length, seed=5), new_tokens)
            root = Path(handle.root_dir)
    finally:
        hook.remove()
    return root, ids[0, prompt_length:].tolist(), logits


def _topology(name: str, layers: int, first: int) -> dict:
    ops = ["WordEmbedding", *["LlamaLayer"] * layers, "RmsNormOperation", "LmHead"]
    nodes = []
    for offset, op_type in enumerate(ops):
        node = {"opName": f"{op_type}_{first + offset}", "opType": op_type, "param": {}}
        if op_type == "LmHead":
            node["nodes"] = [{"opName": f"LinearOperation_{first + offset}_0", "opType": "LinearOperation"}]
        nodes.append(node)
    return {"modelName": name, "nodes": nodes}


def write_atb_last_layer(
    root: Path, logits: list[torch.Tensor | None], layers: int, dtype: torch.dtype = torch.float32
) -> Path:
    """The ATB last-layer dump holding ``logits[t]`` (``[vocab]``, written as ``[1, vocab]``) for
    token t; a None entry leaves that token's folder out. Returns the ``msit_dump_*`` root."""
    root = root / "msit_dump_20261202_101010"
    ops = layers + 3
    models = root / "model" / str(PID)
    models.mkdir(parents=True)
    for suffix, first in (("Prefill", 0), ("Decode", ops)):
        (models / f"{MODEL}{suffix}.json").write_text(
            json.dumps(_topology(f"{MODEL}{suffix}", layers, first))
        )
    tensors = root / "tensors" / f"0_{PID}"

    def write(round_folder: str, op: int, values: torch.Tensor) -> None:
        folder = tensors / round_folder / f"{op}_LmHead" / "after"
        folder.mkdir(parents=True, exist_ok=True)
        save_atb_bin(values.reshape(1, -1).to(dtype).contiguous(), folder / "outtensor0.bin")

    if logits and logits[0] is not None:
        write("0", ops - 1, logits[0])  # the warm-up runs the prefill model
    for token, values in enumerate(logits):
        if values is None:
            continue
        if token == 0:
            write("1", ops - 1, values)
        else:
            write("1" if token == 1 else str(token), 2 * ops - 1, values)
    return root
