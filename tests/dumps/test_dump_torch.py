"""The msit PyTorch hook dump layout: torch_tensors/{device}_{pid}/{token}/{module}/*.pth."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dump_trees import BLOOM_POST_ORDER, BLOOM_TREE, H2, save_pth, write_json

from pytest_llmprec.dumps import load_dump
from pytest_llmprec.errors import DumpFormatError


def _keys(dump, token):
    return [(r.node, r.leaf) for r in dump.records if r.token == token]


def test_records_follow_the_module_tree_post_order(bloom_torch_dump: Path) -> None:
    dump = load_dump(bloom_torch_dump)
    assert dump.kind == "torch"
    assert dump.problems == []
    expected_token0 = [
        (f"{H2}.input_layernorm", "input_0"),
        (f"{H2}.input_layernorm", "output"),
        (f"{H2}.self_attention.query_key_value", "input_0"),
        (f"{H2}.self_attention.query_key_value", "output"),
        (f"{H2}.self_attention.attention_dropout", "input_0"),
        (f"{H2}.self_attention.attention_dropout", "output"),
        (f"{H2}.self_attention.dense", "input_0"),
        (f"{H2}.self_attention.dense", "output"),
        (f"{H2}.self_attention", "input_0"),
        (f"{H2}.self_attention", "input_1"),
        (f"{H2}.self_attention", "output_0"),
        (f"{H2}.self_attention", "output_1"),
        (f"{H2}.self_attention", "output_1_0"),
        (f"{H2}.post_attention_layernorm", "input_0"),
        (f"{H2}.post_attention_layernorm", "output"),
        (f"{H2}.mlp.dense_h_to_4h", "input_0"),
        (f"{H2}.mlp.dense_h_to_4h", "output"),
        (f"{H2}.mlp.gelu_impl.tanh", "input_0"),
        (f"{H2}.mlp.gelu_impl.tanh", "output"),
        (f"{H2}.mlp.gelu_impl", "input_0"),
        (f"{H2}.mlp.gelu_impl", "output"),
        (f"{H2}.mlp.dense_4h_to_h", "input_0"),
        (f"{H2}.mlp.dense_4h_to_h", "output"),
        (f"{H2}.mlp", "input_0"),
        (f"{H2}.mlp", "output"),
        (H2, "input_0"),
        (H2, "output"),
        ("root.transformer", "input_0"),
        ("root.transformer", "output"),
        ("root.lm_head", "input_0"),
        ("root.lm_head", "output"),
        ("root", "input_0"),
        ("root", "output"),
    ]
    assert _keys(dump, 0) == expected_token0
    assert _keys(dump, 10) == [(node, leaf) for node in BLOOM_POST_ORDER for leaf in ("input_0", "output")]


def test_order_is_global_weights_first_then_tokens_in_numeric_order(bloom_torch_dump: Path) -> None:
    dump = load_dump(bloom_torch_dump)
    assert [r.order for r in dump.records] == list(range(len(dump.records)))
    tokens_in_order = list(dict.fromkeys(r.token for r in dump.records))
    assert tokens_in_order == ["weights", 0, 1, 2, 10]
    assert len(dump.records) == 2 + 33 + 3 * 28


def test_record_fields(bloom_torch_dump: Path) -> None:
    dump = load_dump(bloom_torch_dump)
    by_key = {(r.token, r.node, r.leaf): r for r in dump.records}
    record = by_key[(0, f"{H2}.self_attention", "output_1_0")]
    assert record.role == "output"
    assert record.index == 1
    assert record.node_type == "BloomAttention"
    assert record.rank == 3
    assert record.member is None
    assert record.path == str(
        bloom_torch_dump / "torch_tensors/npu3_4242/0" / f"{H2}.self_attention" / "output_1_0.pth"
    )
    inputs = by_key[(2, f"{H2}.mlp.dense_h_to_4h", "input_0")]
    assert (inputs.role, inputs.index, inputs.node_type) == ("input", 0, "Linear")
    api = by_key[(0, f"{H2}.mlp.gelu_impl.tanh", "output")]
    assert (api.node_type, api.index) == ("", 0)
    weight = by_key[("weights", "root.lm_head.weight", "weight")]
    assert (weight.role, weight.order) == ("weight", 0)
    assert by_key[("weights", f"{H2}.mlp.dense_4h_to_h.bias", "weight")].order == 1


def test_info_keeps_tree_and_statistics_paths(bloom_torch_dump: Path) -> None:
    dump = load_dump(bloom_torch_dump)
    device = bloom_torch_dump / "torch_tensors" / "npu3_4242"
    assert dump.info["model_trees"] == {3: str(device / "model_tree.json")}
    statistics = str(device / "0" / "root.lm_head" / "statistics.csv")
    assert dump.info["statistics"] == {(0, "root.lm_head", 3): statistics}
    assert "pinned_token" not in dump.info
    assert dump.root == bloom_torch_dump


def test_record_load_returns_the_saved_tensor(bloom_torch_dump: Path) -> None:
    import torch
    from dump_trees import tensor_for

    dump = load_dump(bloom_torch_dump)
    record = next(r for r in dump.records if r.node == "root.lm_head" and r.token == 1 and r.leaf == "output")
    assert torch.equal(record.load(), tensor_for(record.path))


@pytest.mark.parametrize(
    ("inner", "pinned"),
    [
        ("torch_tensors", None),
        ("torch_tensors/npu3_4242", None),
        ("torch_tensors/npu3_4242/2", 2),
        (f"torch_tensors/npu3_4242/2/{H2}.mlp", 2),
        ("torch_tensors/npu3_4242/weights", "weights"),
    ],
)
def test_detected_from_inner_folders(bloom_torch_dump: Path, inner: str, pinned: object) -> None:
    dump = load_dump(bloom_torch_dump / inner)
    assert dump.kind == "torch"
    assert dump.root == bloom_torch_dump
    if pinned is None:
        assert "pinned_token" not in dump.info
        assert dump.tokens() == [0, 1, 2, 10, "weights"]
    else:
        assert dump.info["pinned_token"] == pinned
        assert dump.tokens() == [pinned]


def test_model_tree_file_stands_for_its_device_folder(bloom_torch_dump: Path) -> None:
    dump = load_dump(bloom_torch_dump / "torch_tensors/npu3_4242/model_tree.json")
    assert dump.kind == "torch"
    assert len(dump) == 119


def test_several_device_folders_are_ranks_interleaved_by_module(tmp_path: Path) -> None:
    tensors = tmp_path / "msit_dump_20240102_030405" / "torch_tensors"
    for device in ("npu0_11", "npu1_12", "cuda2_13", "cpu_14"):
        write_json(tensors / device / "model_tree.json", BLOOM_TREE)
        save_pth(tensors / device / "0" / "root.lm_head" / "output.pth")
        save_pth(tensors / device / "0" / "root" / "output.pth")
    dump = load_dump(tmp_path / "msit_dump_20240102_030405")
    assert [(r.node, r.rank) for r in dump.records] == [
        ("root.lm_head", None),
        ("root.lm_head", 0),
        ("root.lm_head", 1),
        ("root.lm_head", 2),
        ("root", None),
        ("root", 0),
        ("root", 1),
        ("root", 2),
    ]
    only_rank1 = load_dump(tensors / "npu1_12")
    assert {r.rank for r in only_rank1.records} == {1}


def test_without_model_tree_modules_are_ordered_children_first_in_natural_order(tmp_path: Path) -> None:
    token = tmp_path / "ait_dump" / "torch_tensors" / "npu0_77" / "0"
    modules = ("root", "root.layers.10", "root.layers.2", "root.layers.2.mlp", "root.layers", "root.norm")
    for module in modules:
        save_pth(token / module / "output.pth")
    for index in (10, 2, 0, 1):
        save_pth(token / "root.norm" / f"output_{index}.pth")
    dump = load_dump(tmp_path / "ait_dump")
    assert [(r.node, r.leaf) for r in dump.records] == [
        ("root.layers.2.mlp", "output"),
        ("root.layers.2", "output"),
        ("root.layers.10", "output"),
        ("root.layers", "output"),
        ("root.norm", "output"),
        ("root.norm", "output_0"),
        ("root.norm", "output_1"),
        ("root.norm", "output_2"),
        ("root.norm", "output_10"),
        ("root", "output"),
    ]
    assert {r.node_type for r in dump.records} == {""}
    assert dump.info["model_trees"] == {}


def test_v1_layout_pid_npu_folder(tmp_path: Path) -> None:
    folder = tmp_path / "dumps" / "3141_npu5"
    write_json(folder / "model_tree.json", BLOOM_TREE)
    save_pth(folder / "0" / "root.lm_head" / "output.pth")
    dump = load_dump(tmp_path / "dumps")
    assert dump.kind == "torch"
    assert [(r.node, r.rank, r.node_type) for r in dump.records] == [("root.lm_head", 5, "Linear")]


def test_last_logits_dump(tmp_path: Path) -> None:
    device = tmp_path / "msit_dump_20240102_030405" / "torch_tensors" / "npu0_5"
    write_json(device / "model_tree.json", BLOOM_TREE)
    for token in range(3):
        save_pth(device / str(token) / "root.lm_head" / "output.pth")
    dump = load_dump(device)
    assert [(r.token, r.node, r.leaf, r.order) for r in dump.records] == [
        (0, "root.lm_head", "output", 0),
        (1, "root.lm_head", "output", 1),
        (2, "root.lm_head", "output", 2),
    ]


def test_unexpected_entries_and_broken_tree_are_problems(tmp_path: Path) -> None:
    device = tmp_path / "msit_dump_20240102_030405" / "torch_tensors" / "npu0_5"
    device.mkdir(parents=True)
    (device / "model_tree.json").write_text('{"name": "root", "children": [')
    save_pth(device / "0" / "root.b" / "output.pth")
    save_pth(device / "0" / "root.a" / "output.pth")
    save_pth(device / "0" / "root.a" / "grad.pth")
    save_pth(device / "notes" / "x.pth")
    (device / "0" / "stray.txt").write_text("x")
    dump = load_dump(device)
    assert [r.node for r in dump.records] == ["root.a", "root.b"]
    messages = {Path(p.path).name: p.message for p in dump.problems}
    assert messages["model_tree.json"].startswith("broken JSON")
    assert "input_N/output_N" in messages["grad.pth"]
    assert "not a token folder" in messages["notes"]
    assert "unexpected file" in messages["stray.txt"]


def test_tree_json_of_wrong_shape_is_reported(tmp_path: Path) -> None:
    device = tmp_path / "torch_tensors" / "npu0_5"
    write_json(device / "model_tree.json", ["not", "a", "tree"])
    save_pth(device / "0" / "root" / "output.pth")
    dump = load_dump(device, kind="torch")
    assert len(dump) == 1
    assert [p.message for p in dump.problems] == ["no module tree ({name, type, children}) in the file"]


def test_not_a_torch_dump(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DumpFormatError, match="no torch dump here") as info:
        load_dump(tmp_path / "empty", kind="torch")
    assert info.value.path == str(tmp_path / "empty")


def test_too_deeply_nested_tree_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    device = tmp_path / "torch_tensors" / "npu0_5"
    device.mkdir(parents=True)
    (device / "model_tree.json").write_text('{"name": "root", "children": [' * 50000 + "]}" * 50000)
    save_pth(device / "0" / "root" / "output.pth")
    dump = load_dump(device, kind="torch")
    assert len(dump) == 1
    assert dump.problems[0].message.startswith("broken JSON")


def test_tree_deeper_than_the_recursion_limit_is_walked(tmp_path: Path) -> None:
    depth = 2 * sys.getrecursionlimit()
    names = ["root"] + [f"root.m{level}" for level in range(1, depth)]
    text = "".join(f'{{"name": "{name}", "children": [' for name in names)
    text += "]}" * depth
    device = tmp_path / "torch_tensors" / "npu0_5"
    device.mkdir(parents=True)
    (device / "model_tree.json").write_text(text)
    deepest = names[-1]
    save_pth(device / "0" / "root" / "output.pth")
    save_pth(device / "0" / deepest / "output.pth")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(4 * depth)
    try:
        dump = load_dump(device, kind="torch")
    finally:
        sys.setrecursionlimit(limit)
    assert [r.node for r in dump.records] == [deepest, "root"]


def test_repeated_call_folders_follow_their_module_and_kwargs_follow_positional_inputs(
    tmp_path: Path,
) -> None:
    device = tmp_path / "msit_dump_1" / "torch_tensors" / "cpu_9"
    tree = {
        "name": "root",
        "type": "M",
        "children": [
            {"name": "root.a", "type": "L", "children": []},
            {"name": "root.b", "type": "L", "children": []},
        ],
    }
    write_json(device / "model_tree.json", tree)
    for module in ("root", "root.a", "root.a@1", "root.a@2", "root.b"):
        save_pth(device / "0" / module / "output.pth")
    for leaf in ("kwarg_scale", "input_1", "input_0", "kwarg_bias"):
        save_pth(device / "0" / "root.b" / f"{leaf}.pth")
    dump = load_dump(device)
    assert [(r.node, r.leaf, r.role) for r in dump.records] == [
        ("root.a", "output", "output"),
        ("root.a@1", "output", "output"),
        ("root.a@2", "output", "output"),
        ("root.b", "input_0", "input"),
        ("root.b", "input_1", "input"),
        ("root.b", "kwarg_bias", "input"),
        ("root.b", "kwarg_scale", "input"),
        ("root.b", "output", "output"),
        ("root", "output", "output"),
    ]
    assert dump.problems == []


def test_execution_order_file_sets_the_order_of_each_token(tmp_path: Path) -> None:
    device = tmp_path / "msit_dump_1" / "torch_tensors" / "cpu_9"
    write_json(device / "model_tree.json", {"name": "root", "type": "M", "children": []})
    write_json(device / "execution_order.json", {"0": ["root.b", "root.a", "root"], "1": ["root.a", "root"]})
    for token, modules in ((0, ("root", "root.a", "root.b")), (1, ("root", "root.a", "root.extra"))):
        for module in modules:
            save_pth(device / str(token) / module / "output.pth")
    dump = load_dump(device)
    assert [(r.token, r.node) for r in dump.records] == [
        (0, "root.b"), (0, "root.a"), (0, "root"), (1, "root.a"), (1, "root"), (1, "root.extra"),
    ]  # fmt: skip
    assert dump.problems == []
