"""What capture writes loads back with ``pytest_llmprec.load_dump`` (the readers of ``dumps/``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tiny_llm
import torch
from capture_helpers import load
from torch import nn

from pytest_llmprec import DumpConfig, dump_data, load_dump, register_hook
from pytest_llmprec.capture import LogitsDumper, fx_dump_backend


def written_files(dump_dir: Path) -> dict[tuple[object, str, str], Path]:
    """``(token, node, stem) → path`` of every tensor file under a torch dump's process folder."""
    files = {}
    for path in dump_dir.rglob("*.pth"):
        folder, token = path.parent.name, path.parent.parent.name
        if folder == "weights":
            files[("weights", path.stem, "weight")] = path
        else:
            files[(int(token), folder, path.stem)] = path
    return files


def test_torch_dump_loads_back_record_by_record(tmp_path, model, prompt):
    config = DumpConfig(dump_path=tmp_path, token_range=[0, 1], dump_weight=True, dump_statistics_mode=2)
    with register_hook(model, config) as handle:
        tiny_llm.generate(model, prompt, 2)
    dump = load_dump(handle.root_dir)
    assert dump.kind == "torch"
    assert dump.tokens() == [0, 1, "weights"]
    records = {(record.token, record.node, record.leaf): record for record in dump.records}
    files = written_files(handle.dump_dir)
    assert len(records) == len(dump.records) == len(files) > 100
    assert {key: Path(record.path) for key, record in records.items()} == files
    types = dict(model.named_modules(prefix="root"))
    for (token, node, leaf), record in records.items():
        assert torch.equal(record.load(), load(files[(token, node, leaf)]))
        if token != "weights":
            assert record.role == leaf.split("_")[0]
            if "@" not in node:
                assert record.node_type == type(types[node]).__name__
    assert [problem.path for problem in dump.problems] in (
        [],
        [str(handle.dump_dir / "execution_order.json")],
    )


def test_execution_order_file_is_accepted_and_orders_repeated_calls(tmp_path):
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.a(self.b(self.a(x)))

    model = Twice()
    with register_hook(model, DumpConfig(dump_path=tmp_path, tensor_part=1)) as handle:
        model(torch.ones(2))
    dump = load_dump(handle.dump_dir)
    assert dump.problems == []
    order = json.loads((handle.dump_dir / "execution_order.json").read_text())["0"]
    assert order == ["root.a", "root.b", "root.a@1", "root"]
    assert [record.node for record in dump.records] == order


def test_keyword_argument_tensors_are_indexed_as_inputs(tmp_path):
    class Scaled(nn.Module):
        def forward(self, x, *, scale):
            return x * scale

    model = Scaled()
    with register_hook(model, DumpConfig(dump_path=tmp_path)) as handle:
        model(torch.ones(2), scale=torch.full((2,), 3.0))
    dump = load_dump(handle.dump_dir)
    leaves = {(record.leaf, record.role) for record in dump.records}
    assert leaves == {("input_0", "input"), ("kwarg_scale", "input"), ("output", "output")}


def test_manual_dump_loads_back_with_its_pairs(tmp_path):
    mine = tmp_path / "mine.pth"
    torch.save(torch.zeros(2), mine)
    golden = {token: torch.randn(2, 2) for token in (0, 1)}
    paths = {
        token: Path(dump_data(token, 3, tensor, mine, output_path=tmp_path))
        for token, tensor in golden.items()
    }
    root = paths[0].parents[3]
    dump = load_dump(root)
    assert dump.kind == "manual"
    assert [(record.token, record.node) for record in dump.records] == [(0, "3"), (1, "3")]
    for record in dump.records:
        assert Path(record.path) == paths[record.token]
        assert torch.equal(record.load(), golden[record.token])
    assert dump.info["my_paths"] == {(0, "3"): str(mine), (1, "3"): str(mine)}


def test_logits_dump_loads_back(tmp_path, model, prompt):
    dumper = LogitsDumper(tmp_path, token_range=2)
    handle = dumper.attach(model, "dev.jsonl", 12)
    tiny_llm.generate(model, prompt, 2)
    handle.remove()
    dump = load_dump(tmp_path)
    assert dump.kind == "logits"
    assert [(record.token, record.node) for record in dump.records] == [
        (0, "dev.jsonl_12"),
        (1, "dev.jsonl_12"),
    ]
    for record in dump.records:
        assert torch.equal(record.load(), load(tmp_path / f"logits_dev.jsonl_12_{record.token}.pth"))


def test_fx_dump_loads_back(tmp_path):
    compiled = torch.compile(lambda x: x * 2 + 1, backend=fx_dump_backend(tmp_path))
    for value in (1.0, 5.0):
        compiled(torch.full((3,), value))
    dump = load_dump(tmp_path)
    assert dump.kind == "fx"
    keys = [(record.token, record.node, record.role) for record in dump.records]
    assert keys == [
        (token, node, role)
        for token in (0, 1)
        for node in ("mul-aten.mul.Tensor", "add-aten.add.Tensor")
        for role in ("input", "output")
    ]
    for record in dump.records:
        assert np.array_equal(record.load().numpy(), np.load(record.path))
    (mul_out,) = (
        r for r in dump.records if (r.token, r.node, r.role) == (1, "mul-aten.mul.Tensor", "output")
    )
    assert torch.equal(mul_out.load(), torch.full((3,), 10.0))
