"""Fixtures: Llama-style torch and ATB dumps written once per session (llama_dumps)."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_dumps import PLANTED, LlamaConfig, build_llama, plant, sequences, write_atb_dump, write_torch_dump


@pytest.fixture(scope="session")
def llama_calls() -> list:
    return sequences(LlamaConfig())


@pytest.fixture(scope="session")
def llama_dumps(tmp_path_factory, llama_calls):
    """``make(runtime, planted=False, **options) -> dump root``, each written once per session."""
    made: dict[tuple, Path] = {}

    def make(runtime: str, planted: bool = False, **options) -> Path:
        key = (runtime, planted, tuple(sorted(options.items())))
        if key not in made:
            model = build_llama()
            if planted:
                plant(model, PLANTED)
            folder = tmp_path_factory.mktemp(f"{runtime}-dump")
            if runtime == "torch":
                made[key] = write_torch_dump(model, llama_calls, folder, **options)
            else:
                made[key] = write_atb_dump(model, llama_calls, folder, **options).root
        return made[key]

    return make
