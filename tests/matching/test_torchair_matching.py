"""GE vs FX and GE fused vs GE fusion-off matching on dumps of one compiled function."""

from __future__ import annotations

import shutil

import pytest
from torchair_dumps import write_fx_dump, write_ge_dump_tree

from pytest_llmprec.compare.metrics import compare_tensors
from pytest_llmprec.dumps import load_dump
from pytest_llmprec.matching import TorchairMatcher, match_dumps

FX_VS_GE = [
    "mm-aten.mm.default/input_0 ↔ MatMulV2_2/input_0",
    "mm-aten.mm.default/input_1 ↔ MatMulV2_2/input_1",
    "mm-aten.mm.default/output_0 ↔ MatMulV2_2/output_0",
    "add-aten.add.Tensor/input_0 ↔ Add_3Relu_4/input_0",
    "add-aten.add.Tensor/input_1 ↔ Add_3Relu_4/input_1",
    "relu-aten.relu.default/output_0 ↔ Add_3Relu_4/output_0",
    "mul-aten.mul.Tensor/input_0 ↔ Mul_5/input_0",
    "mul-aten.mul.Tensor/output_0 ↔ Mul_5/output_0",
    "trans_TransData_8/input_0 ↔ trans_TransData_8/output_0",
    "_to_copy-aten._to_copy.default/input_0 ↔ Cast_6/input_0",
    "_to_copy-aten._to_copy.default/output_0 ↔ Cast_6/output_0",
    "sum_1-aten.sum.dim_IntList/input_0 ↔ ReduceSum_7/input_0",
    "sum_1-aten.sum.dim_IntList/output_0 ↔ ReduceSum_7/output_0",
]
"""§5.7 by hand: one op per FX node, Add+Relu fused (first op's inputs, last op's outputs), the GE-inserted
TransData checked against itself, in GE execution order."""

FUSION_OFF_VS_ON = [
    "MatMulV2_2/input_0 ↔ MatMulV2_2/input_0",
    "MatMulV2_2/input_1 ↔ MatMulV2_2/input_1",
    "MatMulV2_2/output_0 ↔ MatMulV2_2/output_0",
    "Add_3/input_0 ↔ Add_3Relu_4/input_0",
    "Add_3/input_1 ↔ Add_3Relu_4/input_1",
    "Relu_4/output_0 ↔ Add_3Relu_4/output_0",
    "Mul_5/input_0 ↔ Mul_5/input_0",
    "Mul_5/output_0 ↔ Mul_5/output_0",
    "Cast_6/input_0 ↔ Cast_6/input_0",
    "Cast_6/output_0 ↔ Cast_6/output_0",
    "ReduceSum_7/input_0 ↔ ReduceSum_7/input_0",
    "ReduceSum_7/output_0 ↔ ReduceSum_7/output_0",
]

FUSED = ("add", "relu")


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """Dumps written once: FX, GE fused (with a TransData), GE fusion off, GE fused with noise after relu."""
    made = {}

    def make(name: str, **options):
        if name not in made:
            folder = tmp_path_factory.mktemp(name)
            made[name] = write_fx_dump(folder) if name == "fx" else write_ge_dump_tree(folder, **options)
        return made[name]

    return make


def keys(result, token=0, prefix="rank0/"):
    return [p.key.split("/", 1)[1].removeprefix(prefix) for p in result.pairs if p.token == token]


def low_cosine(result) -> list[str]:
    return [
        p.key for p in result.pairs if compare_tensors(p.golden.load(), p.my.load()).cosine_similarity < 0.999
    ]


def test_ge_pairs_with_fx_through_the_graph_text(dumps):
    fx = load_dump(dumps("fx"))
    ge = load_dump(dumps("ge-fused", fuse=FUSED, transdata_after="mul"))
    assert TorchairMatcher().applies(fx, ge) and TorchairMatcher().applies(ge, fx)
    result = match_dumps(fx, ge)
    assert keys(result) == FX_VS_GE and keys(result, token=1) == FX_VS_GE
    assert low_cosine(result) == []
    leftovers = {
        (u.side, u.record.node, u.record.leaf, u.reason) for u in result.unmatched if u.record.token == 0
    }
    inside = "inside the fused GE op Add_3Relu_4: only its first op's inputs and last op's outputs exist"
    assert leftovers == {
        ("golden", "add-aten.add.Tensor", "output_0", inside),
        ("golden", "relu-aten.relu.default", "input_0", inside),
    }
    rules = {(line.golden_node, line.my_node, line.rule) for line in result.explanation}
    assert ("trans_TransData_8", "trans_TransData_8", "self-check") in rules
    assert ("relu-aten.relu.default", "Add_3Relu_4", "fused: first op's inputs, last op's outputs") in rules


def test_the_golden_side_may_be_the_ge_dump(dumps):
    result = match_dumps(
        load_dump(dumps("ge-fused", fuse=FUSED, transdata_after="mul")), load_dump(dumps("fx"))
    )
    swapped = [" ↔ ".join(reversed(key.split(" ↔ "))) for key in FX_VS_GE]
    swapped[FX_VS_GE.index("trans_TransData_8/input_0 ↔ trans_TransData_8/output_0")] = (
        "trans_TransData_8/input_0 ↔ trans_TransData_8/output_0"
    )
    assert keys(result) == swapped


def test_a_planted_change_is_found_at_its_ge_op(dumps):
    ge = load_dump(dumps("ge-noisy", fuse=FUSED, perturb="relu"))
    assert low_cosine(match_dumps(load_dump(dumps("fx")), ge))[0] == (
        "token0/rank0/relu-aten.relu.default/output_0 ↔ Add_3Relu_4/output_0"
    )


def test_fused_ops_are_rebuilt_from_the_fusion_off_dump(dumps):
    off = load_dump(dumps("ge-off"))
    result = match_dumps(off, load_dump(dumps("ge-fused", fuse=FUSED, transdata_after="mul")))
    assert keys(result) == FUSION_OFF_VS_ON
    (transdata,) = {u.reason for u in result.unmatched if "TransData" in u.record.node}
    assert transdata == "golden data missing: no op trans_TransData_8 in the golden dump"
    inner = {
        u.record.node for u in result.unmatched if u.reason.startswith("inside the fused op Add_3Relu_4")
    }
    assert inner == {"Add_3", "Relu_4"}
    assert low_cosine(result) == []
    planted = match_dumps(off, load_dump(dumps("ge-noisy", fuse=FUSED, perturb="relu")))
    assert low_cosine(planted)[0] == "token0/rank0/Relu_4/output_0 ↔ Add_3Relu_4/output_0"


def test_a_broken_graph_file_leaves_only_the_self_checks(dumps, tmp_path):
    ge_root = tmp_path / "msit_ge_dump"
    shutil.copytree(dumps("ge-fused", fuse=FUSED, transdata_after="mul"), ge_root)
    graph = next(ge_root.glob("dynamo_original_graph_*.txt"))
    graph.write_text('op {\n  name: "Add_3"\n  input {\n')
    result = match_dumps(load_dump(dumps("fx")), load_dump(ge_root))
    assert any(str(graph) in note and "ends inside a block" in note for note in result.notes)
    assert keys(result) == [
        "trans_TransData_8/input_0 ↔ trans_TransData_8/output_0",
        "Cast_6/input_0 ↔ Cast_6/output_0",
    ]
    reasons = {u.record.node: u.reason for u in result.unmatched if u.side == "my"}
    assert reasons["MatMulV2_2"] == "not an op of the GE graph (no graph file)"


def test_ranks_pair_with_the_same_rank_and_lone_ranks_are_reported(dumps, tmp_path):
    ge = load_dump(write_ge_dump_tree(tmp_path / "ge", ranks=(0, 1)))
    fx_root = dumps("fx")
    result = match_dumps(load_dump(fx_root), ge)
    assert {p.key.split("/")[1] for p in result.pairs} == {"rank0"}
    assert any("ranks [1] are in only one dump" in note for note in result.notes)
    assert {u.record.rank for u in result.unmatched if u.side == "my"} == {1}
    both = tmp_path / "fx" / "msit_fx_dump"
    shutil.copytree(fx_root, both)
    shutil.copytree(both / "worldsize1_global_rank0", both / "worldsize1_global_rank1")
    result = match_dumps(load_dump(both), ge)
    assert {p.key.split("/")[1] for p in result.pairs} == {"rank0", "rank1"}
    assert all(p.golden.rank == p.my.rank for p in result.pairs)


def test_old_fx_layout_counts_tokens_from_one(dumps, tmp_path):
    """PTA 7.1.0: ``data_dump/{token + 1}/gm_{time}_dump/*.npy`` against the GE layout without ranks."""
    fx_root = dumps("fx")
    old = tmp_path / "old" / "data_dump"
    for token in (0, 1):
        target = old / str(token + 1) / "gm_20240101_dump"
        shutil.copytree(fx_root / "worldsize1_global_rank0" / "model" / str(token), target)
    ge = load_dump(write_ge_dump_tree(tmp_path / "ge", fuse=FUSED, transdata_after="mul", rank_layout=False))
    result = match_dumps(load_dump(old), ge)
    assert keys(result, prefix="") == FX_VS_GE and keys(result, token=1, prefix="") == FX_VS_GE
    assert all(
        "/1/gm_" in p.golden.path for p in result.pairs if p.token == 0 and p.golden.path.endswith(".npy")
    )


def test_a_missing_constituent_dump_leaves_its_inputs_unpaired(dumps, tmp_path):
    off_root = tmp_path / "msit_ge_dump"
    shutil.copytree(dumps("ge-off"), off_root)
    for path in off_root.rglob("Add.Add_3.*"):
        path.unlink()
    result = match_dumps(load_dump(off_root), load_dump(dumps("ge-fused", fuse=FUSED, transdata_after="mul")))
    assert "Relu_4/output_0 ↔ Add_3Relu_4/output_0" in keys(result)
    assert not any(key.startswith("Add_3/") for key in keys(result))
    reasons = {
        (u.record.node, u.record.leaf): u.reason
        for u in result.unmatched
        if u.side == "my" and u.record.token == 0
    }
    assert reasons[("Add_3Relu_4", "input_0")] == "golden op Add_3 has no dump of this input"
