"""``seed_all``: make a run repeatable (msit-spec §1.10)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import random

DETERMINISM_ENV = {
    "LCCL_DETERMINISTIC": "1",
    "HCCL_DETERMINISTIC": "true",
    "ATB_MATMUL_SHUFFLE_K_ENABLE": "0",
    "ATB_LLM_LCOC_ENABLE": "0",
}


def seed_all(seed: int = 2024) -> None:
    """Seed Python, numpy and torch (CUDA and, when ``torch_npu`` is installed, NPU devices) and
    switch torch and the Ascend libraries to deterministic algorithms.

    Sets ``PYTHONHASHSEED`` (seen by child processes), the Ascend determinism variables
    (``LCCL_DETERMINISTIC``, ``HCCL_DETERMINISTIC``, ``ATB_MATMUL_SHUFFLE_K_ENABLE``,
    ``ATB_LLM_LCOC_ENABLE``) and, if unset, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` which
    deterministic cuBLAS needs.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    import numpy as np
    import torch

    os.environ.update(DETERMINISM_ENV)
    os.environ["PYTHONHASHSEED"] = str(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if importlib.util.find_spec("torch_npu") is not None:
        torch_npu = importlib.import_module("torch_npu")
        torch_npu.npu.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
