"""seed_all: environment, generators and deterministic mode (msit-spec §1.10)."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from pytest_llmprec import DumpConfig, seed_all

ENV = (
    "LCCL_DETERMINISTIC",
    "HCCL_DETERMINISTIC",
    "ATB_MATMUL_SHUFFLE_K_ENABLE",
    "ATB_LLM_LCOC_ENABLE",
    "PYTHONHASHSEED",
)


@pytest.fixture
def restore_determinism(monkeypatch):
    for name in (*ENV, "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    deterministic = torch.are_deterministic_algorithms_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def draws() -> tuple:
    return random.random(), np.random.rand(), torch.rand(3)


def test_seed_all_sets_environment_and_deterministic_mode(restore_determinism):
    seed_all(7)
    assert {name: os.environ[name] for name in ENV} == {
        "LCCL_DETERMINISTIC": "1",
        "HCCL_DETERMINISTIC": "true",
        "ATB_MATMUL_SHUFFLE_K_ENABLE": "0",
        "ATB_LLM_LCOC_ENABLE": "0",
        "PYTHONHASHSEED": "7",
    }
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_same_seed_same_draws(restore_determinism):
    seed_all()
    first = draws()
    seed_all(2024)
    second = draws()
    seed_all(2025)
    third = draws()
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    assert first[:2] != third[:2]


def test_dump_config_seed_calls_seed_all(tmp_path, restore_determinism):
    DumpConfig(dump_path=tmp_path, seed=11)
    first = draws()
    seed_all(11)
    assert draws()[:2] == first[:2]


@pytest.mark.parametrize("seed", ["1", 1.5, True, None])
def test_seed_must_be_an_int(seed, restore_determinism):
    with pytest.raises(ValueError, match="seed must be an int"):
        seed_all(seed)
