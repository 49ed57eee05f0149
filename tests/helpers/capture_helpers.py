"""Small readers shared by the capture tests (independent of the code under test)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # tests/helpers -> repository root


def load(path: Path) -> torch.Tensor:
    return torch.load(path, weights_only=True)


def names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def hidden_files(root: Path) -> list[Path]:
    """Temporary files (dot-names) left anywhere under ``root``."""
    return [path for path in root.rglob(".*")]


def completion_order(model: torch.nn.Module, run) -> list[str]:
    """Module names (``root``-prefixed) in the order their forward calls complete during ``run()``."""
    order: list[str] = []
    handles = [
        module.register_forward_hook(lambda m, a, o, name=name: order.append(name))
        for name, module in model.named_modules(prefix="root")
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return order


def outputs_by_name(model: torch.nn.Module, run) -> dict[str, list[torch.Tensor]]:
    """Each module's outputs (cloned), per call, recorded with plain torch hooks during ``run()``."""
    outputs: dict[str, list[torch.Tensor]] = {}

    def record(name: str, output: torch.Tensor) -> None:
        outputs.setdefault(name, []).append(output.detach().clone())

    handles = [
        module.register_forward_hook(lambda m, a, o, name=name: record(name, o))
        for name, module in model.named_modules(prefix="root")
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return outputs
