"""msit-layout torch dumps written with torch.save, and reading back the report CSVs (shared test helpers)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

DUMP_ROOT = "msit_dump_20261122_000000"
DEVICE = "cpu_4242"


def _tree(names: list[str]) -> dict:
    """model_tree.json for dotted module names (every prefix becomes a node)."""
    full = {"root"}
    for name in names:
        parts = name.split(".")
        full.update(".".join(parts[: i + 1]) for i in range(len(parts)))

    def node(name: str) -> dict:
        depth = name.count(".") + 1
        children = sorted(n for n in full if n.startswith(name + ".") and n.count(".") + 1 == depth + 1)
        return {
            "name": name,
            "type": name.rsplit(".", 1)[-1].title(),
            "children": [node(c) for c in children],
        }

    return node("root")


def write_torch_dump(
    folder: Path, tokens: dict[int, dict[str, dict[str, torch.Tensor]]], order: list[str] | None = None
) -> Path:
    """An msit PyTorch dump: ``{folder}/msit_dump_*/torch_tensors/cpu_4242/{token}/{module}/{leaf}.pth``."""
    device = folder / DUMP_ROOT / "torch_tensors" / DEVICE
    names: list[str] = []
    for token, modules in tokens.items():
        for module, leaves in modules.items():
            names.append(module)
            for leaf, tensor in leaves.items():
                path = device / str(token) / module / f"{leaf}.pth"
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(tensor, path)
    device.mkdir(parents=True, exist_ok=True)
    (device / "model_tree.json").write_text(json.dumps(_tree(order or names)))
    return folder / DUMP_ROOT


def read_report(folder: Path, prefix: str = "llmprec_cmp_report_") -> tuple[list[str], list[dict[str, str]]]:
    (path,) = sorted(folder.glob(f"{prefix}*.csv"))
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]
