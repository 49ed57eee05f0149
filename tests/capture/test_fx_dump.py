"""fx_dump_backend: torchair FX dump naming and layout from torch.compile on CPU."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tiny_llm
import torch
import torch.nn.functional as F

from pytest_llmprec.capture import fx_dump_backend

NAME = re.compile(
    r"(?P<node>[A-Za-z0-9_]+)-(?P<target>aten\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+)"
    r"\.(?P<role>INPUT|OUTPUT)\.(?P<index>\d+)\.(?P<stamp>\d{20})\.npy"
)


def parse_folder(folder) -> dict[str, dict[str, dict[int, np.ndarray]]]:
    """``{op key: {"INPUT": {i: array}, "OUTPUT": {i: array}}}``; every file name must parse."""
    ops: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    for path in folder.iterdir():
        match = NAME.fullmatch(path.name)
        assert match, path.name
        op = ops.setdefault(f"{match['node']}-{match['target']}", {"INPUT": {}, "OUTPUT": {}})
        op[match["role"]][int(match["index"])] = np.load(path, allow_pickle=False)
    return ops


def test_compiled_tiny_model_dumps_every_aten_op(tmp_path):
    model = tiny_llm.build_model(seed=0, config=tiny_llm.TinyConfig(num_layers=1))
    compiled = torch.compile(model, backend=fx_dump_backend(tmp_path, model_name="tiny"))
    prompt = tiny_llm.sample_prompt(length=6)
    with torch.no_grad():
        for _ in range(2):
            assert torch.allclose(compiled(prompt), model(prompt), atol=1e-5)
    model_dir = tmp_path / "msit_fx_dump" / "worldsize1_global_rank0" / "tiny"
    assert sorted(path.name for path in model_dir.iterdir()) == ["0", "1"]
    ops = parse_folder(model_dir / "0")
    assert parse_folder(model_dir / "1").keys() == ops.keys()

    (embedding,) = (op for key, op in ops.items() if key.endswith("-aten.embedding.default"))
    weight, ids = embedding["INPUT"][0], embedding["INPUT"][1]
    assert np.array_equal(ids, prompt.numpy())
    assert np.array_equal(
        embedding["OUTPUT"][0], F.embedding(torch.from_numpy(ids), torch.from_numpy(weight)).numpy()
    )

    mms = [op for key, op in ops.items() if key.split("-")[1] == "aten.mm.default"]
    assert len(mms) == 8  # q, k, v, o, gate, up, down, lm_head
    for op in mms:
        a, b = (torch.from_numpy(op["INPUT"][i]) for i in (0, 1))
        assert np.array_equal(op["OUTPUT"][0], torch.mm(a, b).numpy())


def test_bf16_is_saved_as_float32_and_tokens_count_across_recompiles(tmp_path):
    def scale(x):
        return x * 3

    compiled = torch.compile(scale, backend=fx_dump_backend(tmp_path))
    inputs = [torch.randn(2, 4, dtype=torch.bfloat16), torch.randn(5, 4, dtype=torch.bfloat16)]
    for x in inputs:
        compiled(x)
    model_dir = tmp_path / "msit_fx_dump" / "worldsize1_global_rank0" / "model"
    assert sorted(path.name for path in model_dir.iterdir()) == ["0", "1"]
    for token, x in enumerate(inputs):
        (op,) = parse_folder(model_dir / str(token)).values()
        assert op["INPUT"][0].dtype == np.float32
        assert np.array_equal(op["INPUT"][0], x.float().numpy())
        assert np.array_equal(op["OUTPUT"][0], (x * 3).float().numpy())


def test_functions_after_a_graph_break_get_their_own_folder(tmp_path):
    def broken(x):
        y = x + 1
        torch._dynamo.graph_break()
        return y * 2

    compiled = torch.compile(broken, backend=fx_dump_backend(tmp_path, model_name="m"))
    compiled(torch.ones(3))
    rank_dir = tmp_path / "msit_fx_dump" / "worldsize1_global_rank0"
    assert sorted(path.name for path in rank_dir.iterdir()) == ["m", "m_1"]
    (add,) = parse_folder(rank_dir / "m" / "0").values()
    (mul,) = parse_folder(rank_dir / "m_1" / "0").values()
    assert np.array_equal(add["OUTPUT"][0], np.full(3, 2.0, dtype=np.float32))
    assert np.array_equal(mul["OUTPUT"][0], np.full(3, 4.0, dtype=np.float32))


@pytest.mark.parametrize("name", ["", "a/b", ".."])
def test_model_name_must_be_a_folder_name(tmp_path, name):
    with pytest.raises(ValueError, match="model_name must be a plain folder name"):
        fx_dump_backend(tmp_path, model_name=name)
