"""Dumps with overflowing tensors, written in the real layouts with the project's writers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from overflow_models import overflowing_model, prompt

from pytest_llmprec import DumpConfig, register_hook
from pytest_llmprec.formats import save_atb_bin, write_ge_dump

ATB_ROOT = "msit_dump_20261201_101500"
FP16_MAX = 65504.0


def torch_dump(folder: Path, tokens: int = 2) -> Path:
    """The msit torch dump of the tiny model whose layer 1 ``down_proj`` overflows float16."""
    model = overflowing_model()
    with register_hook(model, DumpConfig(dump_path=folder, token_range=list(range(tokens)))) as handle:
        import tiny_llm

        tiny_llm.generate(model, prompt(), tokens)
    return handle.root_dir


def _op(token: Path, op: str, outputs: list[torch.Tensor], before: list[torch.Tensor] | None = None) -> None:
    folder = token / op
    (folder / "after").mkdir(parents=True, exist_ok=True)
    save_atb_bin(torch.ones(2, 4, dtype=torch.float16), folder / "after" / "intensor0.bin")
    for index, tensor in enumerate(outputs):
        save_atb_bin(tensor, folder / "after" / f"outtensor{index}.bin")
    for index, tensor in enumerate(before or []):
        (folder / "before").mkdir(exist_ok=True)
        save_atb_bin(tensor, folder / "before" / f"outtensor{index}.bin")
    (folder / "op_param.json").write_text("{}")


def atb_dump(folder: Path) -> Path:
    """An ATB tensor dump (msit-spec §2.2) of one token: a clean embedding (whose before/ output buffer
    holds garbage NaN), then a layer whose second linear operation overflows with Inf and NaN, a
    saturated float16 add, a saturated bfloat16 norm and a clean int32 argmax."""
    token = folder / ATB_ROOT / "tensors" / "0_4242" / "0"
    clean = torch.ones(2, 4, dtype=torch.float16)
    infinite = clean.clone()
    infinite[1, 2] = math.inf
    undefined = clean.clone()
    undefined[0, 3] = math.nan
    saturated = clean.clone()
    saturated[0, 0] = -FP16_MAX
    bf16 = torch.ones(2, 4, dtype=torch.bfloat16)
    bf16[1, 1] = torch.finfo(torch.bfloat16).max
    _op(token, "0_EmbeddingOperation", [clean], before=[torch.full((2, 4), math.nan, dtype=torch.float16)])
    _op(token, "1_DecoderLayer/0_LinearOperation", [clean])
    _op(token, "1_DecoderLayer/1_LinearOperation", [infinite, undefined])
    _op(token, "1_DecoderLayer", [infinite])
    _op(token, "2_ElewiseOperation", [saturated])
    _op(token, "3_RmsNormOperation", [bf16])
    _op(token, "4_ArgmaxOperation", [torch.tensor([1, 2], dtype=torch.int32)])
    model = folder / ATB_ROOT / "model" / "4242"
    model.mkdir(parents=True)
    (model / "Model.json").write_text(json.dumps({"name": "Model", "nodes": [{"opName": "Embedding_0"}]}))
    return folder / ATB_ROOT


def atb_statistics_dump(folder: Path) -> Path:
    """An ATB statistics-only dump (``--type tensor stats``): key=value text files, no payload."""
    token = folder / ATB_ROOT / "tensors" / "0_4242" / "0"
    for op, maximum, minimum in (("0_LinearOperation", 3.0, -2.0), ("1_LinearOperation", math.inf, -1.0),
                                 ("2_AddOperation", FP16_MAX, 0.0)):  # fmt: skip
        after = token / op / "after"
        after.mkdir(parents=True)
        text = f"format=2\ndtype=1\ndims=2,4\nmax={maximum}\nmin={minimum}\nmean=0.5\nl2norm=1.0\n$End=1\n"
        (after / "outtensor0.bin").write_text(text)
    return folder / ATB_ROOT


def ge_dump(folder: Path) -> Path:
    """A GE graph dump with a clean Add and a MatMul whose output holds +Inf."""
    token = folder / "msit_ge_dump" / "20240125031118" / "0" / "graph_1" / "1" / "0"
    token.mkdir(parents=True)
    write_ge_dump(token / "Add.Add_2.44.6.17065969121600", inputs=[torch.ones(4)], outputs=[torch.ones(4)])
    bad = torch.ones(4, dtype=torch.float16)
    bad[2] = math.inf
    write_ge_dump(token / "MatMul.MatMul_3.45.6.17065969121700", inputs=[torch.ones(4)], outputs=[bad])
    return folder / "msit_ge_dump"


def fx_dump(folder: Path) -> Path:
    """An FX dump: an add with a NaN input (not scanned) and a clean output, then a mm with -Inf."""
    token = folder / "msit_fx_dump" / "worldsize1_global_rank0" / "model_0" / "0"
    token.mkdir(parents=True)
    np.save(token / "add_1-aten.add.Tensor.INPUT.0.20240125031118787340.npy", np.array([np.nan], np.float32))
    np.save(token / "add_1-aten.add.Tensor.OUTPUT.0.20240125031118787341.npy", np.ones(3, np.float32))
    np.save(
        token / "mm-aten.mm.default.OUTPUT.0.20240125031118787360.npy", np.array([1, -np.inf], np.float16)
    )
    return folder / "msit_fx_dump"


def plain_folder(folder: Path) -> Path:
    """A plain folder of tensor files, one of which saturates int8."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(torch.ones(3), folder / "a.pt")
    np.save(folder / "b.npy", np.array([127, 0], dtype=np.int8))
    return folder
