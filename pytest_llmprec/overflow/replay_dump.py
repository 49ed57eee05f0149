"""The offending module call's tensors saved in the msit torch dump layout, for an opcheck replay.

Written with the capture writers, so ``load_dump(folder, kind="torch")`` reads it::

    {folder}/msit_dump_{TS}/torch_tensors/{device}_{pid}/
        model_tree.json  execution_order.json
        {forward}/{module}/input_N.pth  kwarg_{name}.pth  output.pth | output_N.pth
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..capture.dumper import claim_process_dir, device_folder, model_tree
from ..capture.tensors import host_copies, input_leaves, output_leaves
from ..capture.writer import save_tensor_atomic, write_text_atomic
from ..dumps.torch_dump import ORDER_FILE, TREE_FILE
from .monitor import CallContext, Detection, ModuleNames


def write_call_dump(
    folder: str | os.PathLike[str], detection: Detection, context: CallContext, names: ModuleNames
) -> Path:
    """Save the inputs (positional and keyword) and outputs of the detection's call; returns the
    ``{device}_{pid}`` folder. Inputs are saved as they are after the call (a module that changes
    its inputs in place shows the changed values)."""
    call = detection.call
    leaves = input_leaves(context.args, context.kwargs) + output_leaves(context.output)
    tensors = [tensor for _, tensor in leaves]
    device = tensors[0].device if tensors else torch.device("cpu")
    _, process_dir = claim_process_dir(os.fspath(folder), device_folder(device))
    target = process_dir / str(call.forward) / call.name
    target.mkdir(parents=True, exist_ok=True)
    for (stem, _), copy in zip(leaves, host_copies(tensors), strict=True):
        save_tensor_atomic(str(target / f"{stem}.pth"), copy)
    root = names.root_of(call.name)
    tree = _tree(root, context.module, call.name)
    write_text_atomic(str(process_dir / TREE_FILE), json.dumps(tree, indent=2))
    write_text_atomic(str(process_dir / ORDER_FILE), json.dumps({str(call.forward): [call.name]}, indent=1))
    return process_dir


def _tree(root: tuple[str, nn.Module] | None, module: nn.Module, name: str) -> dict:
    """The model tree of the call's root model, or of the module alone when the root is unknown."""
    if root is not None:
        prefix, model = root
        return model_tree(model, prefix)
    return model_tree(module, name)
