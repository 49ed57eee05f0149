"""The ATB dump layout of msit llm dump: tensors/{device}_{pid}/{round}/{i}_{OpType}/.../after/*.bin."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from dump_trees import LINEAR_PARAM, atb_bin, bloom_atb_model, write_atb_bin, write_atb_op, write_json

from pytest_llmprec.dumps import load_dump
from pytest_llmprec.errors import DumpFormatError

LAYER = "1_BloomLayer"
PREFILL_NODES = [
    "0_WordEmbedding",
    "1_BloomLayer/0_LayerNormOperation",
    "1_BloomLayer/1_ParallelLinearBaseV2/0_LinearOperation",
    "1_BloomLayer/1_ParallelLinearBaseV2",
    "1_BloomLayer",
    "2_LmHead",
]
DECODE_NODES = [
    "3_WordEmbedding",
    "4_BloomLayer/0_LayerNormOperation",
    "4_BloomLayer/1_ParallelLinearBaseV2/0_LinearOperation",
    "4_BloomLayer/1_ParallelLinearBaseV2",
    "4_BloomLayer",
    "5_LmHead",
]


def _nodes(dump, token):
    return list(dict.fromkeys(r.node for r in dump.records if r.token == token))


def test_two_model_jsons_warmup_and_prefill_decode_split(bloom_atb_dump: Path) -> None:
    dump = load_dump(bloom_atb_dump)
    assert dump.kind == "atb"
    assert dump.problems == []
    assert list(dict.fromkeys(r.token for r in dump.records)) == ["warmup", 0, 1, 2, 10]
    assert _nodes(dump, "warmup") == PREFILL_NODES
    assert _nodes(dump, 0) == PREFILL_NODES
    assert _nodes(dump, 1) == DECODE_NODES
    assert _nodes(dump, 2) == DECODE_NODES
    assert _nodes(dump, 10) == DECODE_NODES
    assert [r.order for r in dump.records] == list(range(len(dump.records)))
    token1 = [r for r in dump.records if r.token == 1]
    assert all(r.path.startswith(str(bloom_atb_dump / "tensors/2_4321/1") + os.sep) for r in token1)
    assert "decode-model operations start at folder index 3" in dump.info["token_rule"]["4321"]


def test_record_fields(bloom_atb_dump: Path) -> None:
    dump = load_dump(bloom_atb_dump)
    node = "4_BloomLayer/1_ParallelLinearBaseV2/0_LinearOperation"
    records = [r for r in dump.records if r.token == 2 and r.node == node]
    assert [(r.leaf, r.role, r.index, r.node_type, r.rank, r.member) for r in records] == [
        ("before/intensor0", "input", 0, "LinearOperation", 2, None),
        ("after/outtensor0", "output", 0, "LinearOperation", 2, None),
    ]
    assert records[1].path == str(bloom_atb_dump / "tensors/2_4321/2" / node / "after/outtensor0.bin")
    layer = next(r for r in dump.records if r.token == 2 and r.node == "4_BloomLayer")
    assert layer.node_type == "BloomLayer"


def test_record_load_reads_the_bin_payload(bloom_atb_dump: Path) -> None:
    values = np.array([[1.5, -2.0, 3.25], [0.0, 4.0, -8.5]], dtype=np.float16)
    path = bloom_atb_dump / "tensors/2_4321/10/5_LmHead/after/outtensor0.bin"
    path.write_bytes(atb_bin(values))
    record = next(r for r in load_dump(bloom_atb_dump).records if r.path == str(path))
    assert np.array_equal(record.load().numpy(), values)


def test_topology_and_op_params_are_kept(bloom_atb_dump: Path) -> None:
    dump = load_dump(bloom_atb_dump)
    models = dump.info["topology"]["4321"]
    assert [(m["model"]["modelName"], m["start_order"]) for m in models] == [
        ("Bloom7BPrefill", 0),
        ("Bloom7BDecode", 3),
    ]
    layer = models[0]["model"]["nodes"][1]
    assert layer["param"]["layerNormEps"] is None
    assert layer["nodes"][0]["param"]["epsilon"] is None
    node = "1_BloomLayer/1_ParallelLinearBaseV2/0_LinearOperation"
    op_param = Path(dump.info["op_params"][(0, node, 2)])
    assert op_param == bloom_atb_dump / "tensors/2_4321/1" / node / "op_param.json"
    assert ("warmup", node, 2) in dump.info["op_params"]
    assert dump.info["statistics_only"] is False


def test_transdata_layer_shifts_the_decode_start(bloom_atb_dump: Path) -> None:
    write_json(
        bloom_atb_dump / "layer/4321/TransdataOperation_0.json", {"modelName": "Transdata", "nodes": []}
    )
    dump = load_dump(bloom_atb_dump)
    assert [m["start_order"] for m in dump.info["topology"]["4321"]] == [1, 4]
    assert _nodes(dump, 0) == [*PREFILL_NODES, "3_WordEmbedding"]
    assert _nodes(dump, 1) == DECODE_NODES[1:]


def test_unknown_split_puts_round_one_under_token_zero(bloom_atb_dump: Path) -> None:
    write_json(bloom_atb_dump / "model/4321/Bloom7BDecode.json", bloom_atb_model("Bloom7BDecode", 0))
    dump = load_dump(bloom_atb_dump)
    assert _nodes(dump, 0) == PREFILL_NODES + DECODE_NODES
    assert 1 not in dump.tokens()
    assert "split is unknown" in dump.info["token_rule"]["4321"]


def test_single_model_json_maps_round_k_to_token_k(bloom_atb_dump: Path) -> None:
    (bloom_atb_dump / "model/4321/Bloom7BDecode.json").unlink()
    dump = load_dump(bloom_atb_dump)
    assert dump.tokens() == [0, 1, 2, 10]
    assert _nodes(dump, 0) == PREFILL_NODES
    assert _nodes(dump, 1) == PREFILL_NODES + DECODE_NODES


def test_without_model_jsons_round_k_is_token_k(bloom_atb_dump: Path) -> None:
    for path in (bloom_atb_dump / "model/4321").iterdir():
        path.unlink()
    (bloom_atb_dump / "model/4321").rmdir()
    dump = load_dump(bloom_atb_dump)
    assert dump.kind == "atb"
    assert dump.tokens() == [0, 1, 2, 10]
    assert dump.info["topology"] is None


def test_natural_order_of_ops_and_tensors(tmp_path: Path) -> None:
    token = tmp_path / "ait_dump" / "tensors" / "0_77" / "0"
    for index in (10, 2, 1):
        write_atb_op(token, f"{index}_ElewiseOperation")
    write_atb_op(token, "0_MlpGateLayerV2", inputs=12, outputs=3)
    for index in (0, 1):
        write_atb_bin(token / "0_MlpGateLayerV2" / "after" / f"intensor{index}.bin")
        write_atb_bin(token / "0_MlpGateLayerV2" / "before" / f"outtensor{index}.bin")
    dump = load_dump(tmp_path / "ait_dump")
    assert _nodes(dump, 0) == [
        "0_MlpGateLayerV2",
        "1_ElewiseOperation",
        "2_ElewiseOperation",
        "10_ElewiseOperation",
    ]
    leaves = [r.leaf for r in dump.records if r.node == "0_MlpGateLayerV2"]
    assert leaves == [
        "before/intensor0",
        "after/intensor0",
        "before/intensor1",
        "after/intensor1",
        *(f"before/intensor{i}" for i in range(2, 12)),
        "before/outtensor0",
        "after/outtensor0",
        "before/outtensor1",
        "after/outtensor1",
        "after/outtensor2",
    ]
    assert [r.index for r in dump.records if r.node == "0_MlpGateLayerV2"][:6] == [0, 0, 1, 1, 2, 3]


@pytest.mark.parametrize(
    ("inner", "pinned", "tokens"),
    [
        ("tensors", None, [0, 1, 2, 10, "warmup"]),
        ("tensors/2_4321", None, [0, 1, 2, 10, "warmup"]),
        ("tensors/2_4321/10", 10, [10]),
        ("tensors/2_4321/0", "warmup", ["warmup"]),
        ("tensors/2_4321/1", [0, 1], [0, 1]),
        ("tensors/2_4321/2/4_BloomLayer/0_LayerNormOperation", 2, [2]),
    ],
)
def test_detected_from_inner_folders(bloom_atb_dump: Path, inner: str, pinned: object, tokens: list) -> None:
    dump = load_dump(bloom_atb_dump / inner)
    assert dump.kind == "atb"
    assert dump.root == bloom_atb_dump
    assert dump.info.get("pinned_token") == pinned
    assert dump.tokens() == tokens


def test_several_devices_are_ranks(bloom_atb_dump: Path) -> None:
    write_atb_op(bloom_atb_dump / "tensors" / "3_4322" / "2", "3_WordEmbedding")
    dump = load_dump(bloom_atb_dump)
    first = [(r.rank, r.leaf) for r in dump.records if r.token == 2 and r.node == "3_WordEmbedding"]
    assert first == [
        (2, "before/intensor0"),
        (2, "after/outtensor0"),
        (3, "before/intensor0"),
        (3, "after/outtensor0"),
    ]
    orders = [r.order for r in dump.records if r.token == 2 and r.node == "3_WordEmbedding"]
    assert orders == list(range(orders[0], orders[0] + 4))
    assert dump.info["token_rule"]["4322"].startswith("no model topology JSON")
    only = load_dump(bloom_atb_dump / "tensors" / "3_4322")
    assert {r.rank for r in only.records} == {3}


def test_statistics_only_dump_is_flagged(tmp_path: Path) -> None:
    folder = tmp_path / "msit_dump_20240102_030405" / "tensors" / "0_1" / "0" / "0_LinearOperation" / "after"
    folder.mkdir(parents=True)
    stats = "format=2\ndtype=1\ndims=2,4\nmax=3.5\nmin=-1\nmean=0.25\nl2norm=4.5\n$End=1\n"
    (folder / "outtensor0.bin").write_text(stats)
    dump = load_dump(tmp_path / "msit_dump_20240102_030405")
    assert dump.info["statistics_only"] is True
    assert [r.leaf for r in dump.records] == ["after/outtensor0"]


def test_symlinks_inside_are_followed_outside_refused(bloom_atb_dump: Path, tmp_path: Path) -> None:
    round2 = bloom_atb_dump / "tensors/2_4321/2"
    (round2 / "5_LmHead/after/outtensor1.bin").symlink_to(round2 / "5_LmHead/after/outtensor0.bin")
    outside = tmp_path / "secret.bin"
    write_atb_bin(outside)
    (round2 / "5_LmHead/after/outtensor2.bin").symlink_to(outside)
    (round2 / "6_Escape").symlink_to(tmp_path, target_is_directory=True)
    (round2 / "7_Loop").symlink_to(round2, target_is_directory=True)
    dump = load_dump(bloom_atb_dump)
    leaves = [r.leaf for r in dump.records if r.token == 2 and r.node == "5_LmHead"]
    assert leaves == ["before/intensor0", "after/outtensor0", "after/outtensor1"]
    assert not any(r.path.startswith(str(tmp_path / "secret")) for r in dump.records)
    assert not any("6_Escape" in r.node or "7_Loop" in r.node for r in dump.records)
    problems = {Path(p.path).name: p.message for p in dump.problems}
    assert "outside the dump root" in problems["outtensor2.bin"]
    assert "outside the dump root" in problems["6_Escape"]
    assert "own parent folders" in problems["7_Loop"]


def test_device_folder_linked_out_of_the_root_is_refused(bloom_atb_dump: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write_atb_op(elsewhere / "0", "0_LinearOperation")
    os.symlink(elsewhere, bloom_atb_dump / "tensors" / "5_999")
    with pytest.raises(DumpFormatError, match="outside the dump root"):
        load_dump(bloom_atb_dump / "tensors" / "5_999")
    dump = load_dump(bloom_atb_dump)
    assert 5 not in {r.rank for r in dump.records}


def test_unexpected_entries_are_problems(bloom_atb_dump: Path) -> None:
    round2 = bloom_atb_dump / "tensors/2_4321/2"
    (round2 / "notes.txt").write_text("x")
    (round2 / "Misc").mkdir()
    write_atb_bin(round2 / "5_LmHead/after/weird.bin")
    (round2 / "5_LmHead/tiling.dat").write_bytes(b"\0")
    dump = load_dump(bloom_atb_dump)
    messages = {Path(p.path).name: p.message for p in dump.problems}
    assert set(messages) == {"notes.txt", "Misc", "weird.bin", "tiling.dat"}
    assert len(dump.records) == 5 * 12


def test_broken_topology_json_is_a_problem(bloom_atb_dump: Path) -> None:
    (bloom_atb_dump / "model/4321/Bloom7BDecode.json").write_text('{"modelName": "x", "nodes": [')
    dump = load_dump(bloom_atb_dump)
    assert [Path(p.path).name for p in dump.problems] == ["Bloom7BDecode.json"]
    assert dump.tokens() == [0, 1, 2, 10]


def test_not_an_atb_dump(tmp_path: Path) -> None:
    with pytest.raises(DumpFormatError, match="no atb dump here"):
        load_dump(tmp_path, kind="atb")


def test_op_param_contents_are_reachable(bloom_atb_dump: Path) -> None:
    import json

    dump = load_dump(bloom_atb_dump)
    path = dump.info["op_params"][(2, "4_BloomLayer/1_ParallelLinearBaseV2/0_LinearOperation", 2)]
    assert json.loads(Path(path).read_text()) == LINEAR_PARAM
