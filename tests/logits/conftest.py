"""Writers of logits dumps in their real formats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def write_logits(folder: Path, cases: dict, task: str = "dev.jsonl") -> Path:
    """``logits_{task}_{case}_{token}.pth`` (torch.save of ``[1, vocab]``) for ``{case: [tensors]}``."""
    folder.mkdir(parents=True, exist_ok=True)
    for case, tokens in cases.items():
        for token, tensor in enumerate(tokens):
            if tensor is not None:
                torch.save(tensor.reshape(1, -1), folder / f"logits_{task}_{case}_{token}.pth")
    return folder


@pytest.fixture
def logits_dump():
    return write_logits


def peaked(seed: int, vocab: int = 2000, margin: float = 2.0) -> torch.Tensor:
    """Random logits whose top-1 (token 7) leads the runner-up (token 8) by ``margin``."""
    logits = torch.randn(vocab, generator=torch.Generator().manual_seed(seed))
    logits[7], logits[8] = 6.0, 6.0 - margin
    return logits


@pytest.fixture
def peaked_logits():
    return peaked


@pytest.fixture(scope="session")
def golden_model():
    """A small random-weight Hugging Face Llama, weights x4 (std 0.08): at the default 0.02 init the
    tiny model's output hardly depends on its input and it generates one token forever."""
    from pytest_llmprec.testing.llama import build_llama

    model = build_llama(hidden=64, layers=2, heads=4, vocab=512, seed=3)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                module.weight.mul_(4.0)
    return model
