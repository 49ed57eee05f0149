"""TorchAir dumps: GE dump files under msit_ge_dump and FX .npy files under msit_fx_dump / data_dump."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dump_trees import GE_GRAPH, write_ge_file

from pytest_llmprec.dumps import load_dump
from pytest_llmprec.errors import DumpFormatError


def test_ge_records(ge_dump: Path) -> None:
    dump = load_dump(ge_dump)
    assert dump.kind == "ge"
    assert dump.problems == []
    rank0_token0 = [
        (r.node, r.leaf, r.role, r.index, r.node_type, r.member)
        for r in dump.records
        if (r.rank, r.token) == (0, 0)
    ]
    assert rank0_token0 == [
        ("TransData_1.1", "input_0", "input", 0, "TransData", "input.0"),
        ("TransData_1.1", "output_0", "output", 0, "TransData", "output.0"),
        ("ConcatV2", "input_0", "input", 0, "ConcatV2D", "input.0"),
        ("ConcatV2", "input_1", "input", 1, "ConcatV2D", "input.1"),
        ("ConcatV2", "input_2", "input", 2, "ConcatV2D", "input.2"),
        ("ConcatV2", "output_0", "output", 0, "ConcatV2D", "output.0"),
        ("Add_2", "input_0", "input", 0, "Add", "input.0"),
        ("Add_2", "input_1", "input", 1, "Add", "input.1"),
        ("Add_2", "output_0", "output", 0, "Add", "output.0"),
    ]
    assert dump.tokens() == [0, 1]
    assert [r.order for r in dump.records] == list(range(len(dump.records)))
    assert [(r.token, r.rank) for r in dump.records][-3:] == [(1, 0)] * 3
    assert dump.info["graphs"] == [str(ge_dump / GE_GRAPH)]
    concat = next(r for r in dump.records if r.node == "ConcatV2" and r.leaf == "output_0" and r.rank == 1)
    assert torch.equal(concat.load(), torch.full((4,), 10.0))


@pytest.mark.parametrize(
    ("inner", "pinned", "ranks"),
    [
        ("worldsize2_global_rank1", None, {1}),
        ("worldsize2_global_rank0/20240125031118/0/graph_1/1/1", 1, {0}),
    ],
)
def test_ge_inner_folders(ge_dump: Path, inner: str, pinned: int | None, ranks: set) -> None:
    dump = load_dump(ge_dump / inner)
    assert dump.kind == "ge"
    assert dump.info.get("pinned_token") == pinned
    assert {r.rank for r in dump.records} == ranks
    assert dump.info["graphs"] == [str(ge_dump / GE_GRAPH)]


def test_ge_found_from_the_folder_above(ge_dump: Path) -> None:
    dump = load_dump(ge_dump.parent)
    assert (dump.kind, dump.root) == ("ge", ge_dump)


def test_ge_duplicate_op_keeps_the_larger_file(ge_dump: Path) -> None:
    token = ge_dump / "worldsize2_global_rank1" / "20240125031118" / "1" / "graph_1" / "1" / "0"
    larger = write_ge_file(token, "Add.Add_2.44.6.17065969121699", size=64)
    dump = load_dump(ge_dump, kind="ge")
    adds = {r.path for r in dump.records if r.node == "Add_2" and r.rank == 1}
    assert adds == {str(larger)}
    assert [(Path(p.path).name, p.message) for p in dump.problems] == [
        ("Add.Add_2.44.6.17065969121619", f"second dump of op Add_2 in token 0, kept the larger {larger}")
    ]


def test_ge_bad_names_and_broken_files_are_problems(ge_dump: Path) -> None:
    token = ge_dump / "worldsize2_global_rank1" / "20240125031118" / "1" / "graph_1" / "1" / "0"
    (token / "Add.Add_3.x.6.1").write_bytes(b"")
    (token / "Mul.Mul_1.45.6.17065969121650").write_bytes(b"\x00" * 4)
    np.savez(token / "Sub.Sub_1.46.6.17065969121651.npz", inputs=np.zeros(2), outputs=np.zeros(2))
    dump = load_dump(ge_dump, kind="ge")
    messages = {Path(p.path).name: p.message for p in dump.problems}
    assert messages["Add.Add_3.x.6.1"].startswith("not a GE dump file name")
    assert "too short for a GE dump" in messages["Mul.Mul_1.45.6.17065969121650"]
    assert (
        messages["Sub.Sub_1.46.6.17065969121651.npz"]
        == "GE .npz summary (inputs/outputs arrays), not indexed"
    )
    assert len(dump.records) == 9 + 9 + 3


def test_ge_single_file(ge_dump: Path) -> None:
    path = next(ge_dump.rglob("ConcatV2D.*"))
    dump = load_dump(path)
    assert dump.kind == "ge"
    assert [r.leaf for r in dump.records] == ["input_0", "input_1", "input_2", "output_0"]


def _fx(folder: Path, name: str, value: float = 0.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / name, np.full(3, value, dtype=np.float32))


def test_fx_rank_layout(tmp_path: Path) -> None:
    token = tmp_path / "msit_fx_dump" / "worldsize2_global_rank1" / "model_0" / "3"
    _fx(token, "mm-aten.mm.default.OUTPUT.0.20240125031118787360.npy", 7.0)
    _fx(token, "mm-aten.mm.default.INPUT.1.20240125031118787351.npy")
    _fx(token, "mm-aten.mm.default.INPUT.0.20240125031118787351.npy")
    _fx(token, "add_1-aten.add.Tensor.INPUT.0.20240125031118787340.npy")
    (token / "junk.npy").write_bytes(b"")
    dump = load_dump(tmp_path / "msit_fx_dump")
    assert dump.kind == "fx"
    assert [(r.node, r.leaf, r.role, r.index, r.node_type, r.token, r.rank) for r in dump.records] == [
        ("add_1-aten.add.Tensor", "input_0", "input", 0, "aten.add.Tensor", 3, 1),
        ("mm-aten.mm.default", "input_0", "input", 0, "aten.mm.default", 3, 1),
        ("mm-aten.mm.default", "input_1", "input", 1, "aten.mm.default", 3, 1),
        ("mm-aten.mm.default", "output_0", "output", 0, "aten.mm.default", 3, 1),
    ]
    assert [Path(p.path).name for p in dump.problems] == ["junk.npy"]
    assert torch.equal(dump.records[-1].load(), torch.full((3,), 7.0))
    pinned = load_dump(token)
    assert (pinned.kind, pinned.info["pinned_token"], len(pinned)) == ("fx", 3, 4)


@pytest.mark.parametrize("top", ["msit_fx_dump/data_dump", "data_dump"])
def test_fx_old_layouts_count_tokens_from_one(tmp_path: Path, top: str) -> None:
    for folder in ("1", "2"):
        _fx(
            tmp_path / top / folder / "gm_20240125_dump",
            "mm-aten.mm.default.OUTPUT.0.20240125031118787360.npy",
        )
    dump = load_dump(tmp_path / top)
    assert dump.kind == "fx"
    assert [(r.token, r.node) for r in dump.records] == [(0, "mm-aten.mm.default"), (1, "mm-aten.mm.default")]
    assert load_dump(tmp_path / top / "2").info["pinned_token"] == 1
    assert load_dump(tmp_path / top / "2" / "gm_20240125_dump").info["pinned_token"] == 1


def test_not_torchair_dumps(tmp_path: Path) -> None:
    with pytest.raises(DumpFormatError, match="no ge dump here"):
        load_dump(tmp_path, kind="ge")
    with pytest.raises(DumpFormatError, match="no fx dump here"):
        load_dump(tmp_path, kind="fx")
