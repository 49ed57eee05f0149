"""msprobe dumps: {dump_path}/step{N}/rank{R}/dump.json with dump_tensor_data/*.pt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dump_trees import tensor_for, write_json, write_msprobe_rank

from pytest_llmprec.dumps import load_dump
from pytest_llmprec.errors import DumpFormatError

EXPECTED_LEAVES = [
    ("Module.layer1.Linear.forward.0", "input.0", "input", 0, "Linear"),
    ("Module.layer1.Linear.forward.0", "output.0", "output", 0, "Linear"),
    ("Module.layer1.Linear.forward.0", "parameters.weight", "weight", 0, "Linear"),
    ("Module.layer1.Linear.forward.0", "parameters.bias", "weight", 0, "Linear"),
    ("Functional.linear.5.forward", "input.0", "input", 0, "Functional.linear"),
    ("Functional.linear.5.forward", "input.1.0", "input", 1, "Functional.linear"),
    ("Functional.linear.5.forward", "input.1.1", "input", 1, "Functional.linear"),
    ("Functional.linear.5.forward", "input_kwargs.bias", "input", 0, "Functional.linear"),
    ("Functional.linear.5.forward", "output.0", "output", 0, "Functional.linear"),
    ("Functional.linear.5.backward", "input.0", "input", 0, "Functional.linear"),
    ("Functional.linear.5.backward", "output.0", "output", 0, "Functional.linear"),
    ("Module.layer1.Linear.parameters_grad", "weight.0", "weight", 0, "Linear"),
]


def test_records_follow_dump_json_order(msprobe_dump: Path) -> None:
    dump = load_dump(msprobe_dump)
    assert dump.kind == "msprobe"
    assert dump.problems == []
    assert dump.tokens() == [0, 1, 10]
    step0_rank1 = [
        (r.node, r.leaf, r.role, r.index, r.node_type) for r in dump.records if (r.token, r.rank) == (0, 1)
    ]
    assert step0_rank1 == EXPECTED_LEAVES
    assert [r.order for r in dump.records] == list(range(len(dump.records)))
    first_two = [(r.token, r.rank, r.leaf) for r in dump.records[:3]]
    assert first_two == [(0, 0, "input.0"), (0, 0, "output.0"), (0, 0, "parameters.weight")]
    assert [r.token for r in dump.records][-1] == 10
    record = next(r for r in dump.records if r.leaf == "input_kwargs.bias" and r.token == 10)
    assert record.path == str(
        msprobe_dump / "step10/rank0/dump_tensor_data/Functional.linear.5.forward.input.bias.pt"
    )
    assert torch.equal(record.load(), tensor_for(record.path))


@pytest.mark.parametrize(
    ("inner", "pinned", "ranks"),
    [
        ("step1", 1, {0, 1}),
        ("step1/rank1", 1, {1}),
        ("step1/rank1/dump_tensor_data", 1, {1}),
        ("step1/rank1/dump.json", 1, {1}),
    ],
)
def test_detected_from_inner_paths(msprobe_dump: Path, inner: str, pinned: int, ranks: set) -> None:
    dump = load_dump(msprobe_dump / inner)
    assert dump.kind == "msprobe"
    assert dump.info["pinned_token"] == pinned
    assert {r.rank for r in dump.records} == ranks
    assert dump.tokens() == [pinned]


def test_non_distributed_rank_folder_and_statistics_only(tmp_path: Path) -> None:
    write_msprobe_rank(tmp_path / "dump_path" / "step0" / "rank", with_data=False)
    dump = load_dump(tmp_path / "dump_path", kind="msprobe")
    assert dump.records == []
    statistics = dump.info["statistics"]
    assert len(statistics) == len(EXPECTED_LEAVES)
    assert statistics[(0, "Functional.linear.5.forward", "input_kwargs.bias", None)]["Max"] == 5.0


def test_missing_tensor_file_and_bad_data_name_are_problems(msprobe_dump: Path) -> None:
    rank = msprobe_dump / "step0" / "rank0"
    (rank / "dump_tensor_data" / "Functional.linear.5.forward.output.0.pt").unlink()
    text = (rank / "dump.json").read_text()
    text = text.replace('"Module.layer1.Linear.forward.0.input.0.pt"', '"../../../../etc/passwd"')
    (rank / "dump.json").write_text(text)
    dump = load_dump(rank)
    assert len(dump.records) == len(EXPECTED_LEAVES) - 2
    missing = "Functional.linear.5.forward.output.0.pt"
    assert [p.message for p in dump.problems] == [
        "Module.layer1.Linear.forward.0 input.0: tensor file '../../../../etc/passwd' not found",
        f"Functional.linear.5.forward output.0: tensor file '{missing}' not found",
    ]


def test_dump_json_without_data_is_a_problem(tmp_path: Path) -> None:
    write_json(tmp_path / "step0" / "rank0" / "dump.json", {"task": "tensor", "data": []})
    dump = load_dump(tmp_path)
    assert dump.records == []
    assert [p.message for p in dump.problems] == ["no 'data' object in dump.json"]


def test_not_an_msprobe_dump(tmp_path: Path) -> None:
    with pytest.raises(DumpFormatError, match="no msprobe dump here"):
        load_dump(tmp_path, kind="msprobe")
