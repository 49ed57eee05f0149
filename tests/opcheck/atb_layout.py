"""Writes ATB dumps in msit's layout (msit-spec §2.2) with real ``.bin`` files (``save_atb_bin``).

Used by the opcheck tests and by benchmarks/bench_opcheck.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pytest_llmprec.formats import save_atb_bin

ROOT = "msit_dump_20261201_000000"
PID = 4242


def token_folder(base: Path, token: int = 0, rank: int = 0, pid: int = PID) -> Path:
    """``{base}/msit_dump_*/tensors/{rank}_{pid}/{token}``."""
    return base / ROOT / "tensors" / f"{rank}_{pid}" / str(token)


def write_op(
    folder: Path,
    inputs: Sequence[torch.Tensor],
    outputs: Sequence[torch.Tensor],
    params: Mapping[str, Any] | str | None = None,
    *,
    before: bool = False,
    after_inputs: Sequence[torch.Tensor] | None = None,
) -> Path:
    """One op folder ``{i}_{OpType}``: inputs in ``after/`` (or ``before/``), outputs in ``after/``,
    ``op_param.json`` (a dict, or raw text for broken files)."""
    folder.mkdir(parents=True, exist_ok=True)
    phase = folder / ("before" if before else "after")
    phase.mkdir(exist_ok=True)
    for k, tensor in enumerate(inputs):
        save_atb_bin(tensor, phase / f"intensor{k}.bin")
    if after_inputs is not None:
        (folder / "after").mkdir(exist_ok=True)
        for k, tensor in enumerate(after_inputs):
            save_atb_bin(tensor, folder / "after" / f"intensor{k}.bin")
    if outputs:
        (folder / "after").mkdir(exist_ok=True)
        for k, tensor in enumerate(outputs):
            save_atb_bin(tensor, folder / "after" / f"outtensor{k}.bin")
    if params is not None:
        text = params if isinstance(params, str) else json.dumps(params)
        (folder / "op_param.json").write_text(text)
    return folder
