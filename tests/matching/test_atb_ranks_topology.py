"""Tree matching across ranks and quantisation, and with broken or inconsistent ATB topologies."""

from __future__ import annotations

import json
import shutil

import pytest
from llama_dumps import PLANTED
from test_atb_torch import API_TOKEN0, failing, token0

from pytest_llmprec.compare.metrics import compare_tensors
from pytest_llmprec.dumps import load_dump
from pytest_llmprec.matching import TreeMatcher, match_dumps
from pytest_llmprec.matching.records import ShardedRecord, merge_dim

PREFILL_JSON = "model/4321/Llama2bPrefill.json"


@pytest.fixture(scope="module")
def torch_dump(llama_dumps):
    return load_dump(llama_dumps("torch"))


# --- ranks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("own", "own_count", "partner", "partner_count", "expected"),
    [
        ((5, 8), 2, (1, 5, 16), 1, 1),  # ATB shards [s, h/2] against a torch [1, s, h]
        ((1, 5, 16), 1, (5, 8), 2, 2),  # the same pair seen from the torch side
        ((5, 16), 2, (5, 16), 1, None),  # replicated: first rank only
        ((4, 6), 4, (8, 6), 2, 0),  # 4 ranks against 2
        ((5, 8), 2, (5, 24), 1, None),  # sizes that no rank count explains
        ((2, 5, 8), 2, (5, 16), 1, None),  # a leading dimension that is not 1
    ],
)
def test_merge_dimension_rule(own, own_count, partner, partner_count, expected):
    assert merge_dim(own, own_count, partner, partner_count) == expected


def test_tensor_parallel_shards_are_merged_against_one_golden_rank(llama_dumps, torch_dump):
    my = load_dump(llama_dumps("atb", world=2))
    result = match_dumps(torch_dump, my)
    assert token0(result) == API_TOKEN0
    q_proj = next(p for p in result.pairs if p.key == API_TOKEN0[2])
    assert isinstance(q_proj.my, ShardedRecord) and len(q_proj.my.shards) == 2
    assert q_proj.my.dimension() == 1 and q_proj.my.load().shape == (5, 16)
    assert [s.path.split("/tensors/")[1].split("/")[0] for s in q_proj.my.shards] == ["0_4321", "1_4322"]
    assert q_proj.my.load_raw() is None and " + " in q_proj.my.describe()
    o_proj = next(p for p in result.pairs if "o_proj" in p.key)
    assert o_proj.my.dimension() is None, "o_proj's output is replicated (all-reduced) on both ranks"
    assert any("golden has 1 rank(s) (devices cpu), my has 2 (devices 0, 1)" in n for n in result.notes)
    assert failing(result) == []


def test_equal_rank_counts_pair_rank_with_rank(llama_dumps):
    golden = load_dump(llama_dumps("atb", world=2))
    my = load_dump(llama_dumps("atb", world=2, quant=True))
    result = match_dumps(golden, my)
    assert {pair.key.split("/")[1] for pair in result.pairs} == {"rank0", "rank1"}
    assert all(pair.golden.rank == pair.my.rank for pair in result.pairs)
    assert "rank i pairs with rank i" in " ".join(result.notes)


def test_an_unrelated_process_under_the_root_is_not_merged(llama_dumps, torch_dump):
    my = load_dump(llama_dumps("atb", world=2, unrelated_pid=9999))
    result = match_dumps(torch_dump, my)
    assert token0(result) == API_TOKEN0
    assert {len(p.my.shards) for p in result.pairs if isinstance(p.my, ShardedRecord)} == {2}
    stray = [u for u in result.unmatched if "0_9999" in u.record.path]
    assert stray and {u.reason for u in stray} == {"process 0_9999 is not a rank of the compared run"}
    assert any("not merged with them: 0_9999" in note for note in result.notes)


def test_rank_counts_that_no_dimension_explains_compare_rank_zero(llama_dumps, torch_dump):
    """Three ranks of tensors that do not split in three: every tensor is replicated."""
    my = load_dump(llama_dumps("atb", world=3))
    result = match_dumps(torch_dump, my)
    assert token0(result) == API_TOKEN0
    assert all(p.my.dimension() is None for p in result.pairs if isinstance(p.my, ShardedRecord))
    assert any("my has 3 (devices 0, 1, 2)" in note for note in result.notes)
    assert failing(result) == []


# --- ATB float vs ATB quant ----------------------------------------------------------------------

DOWN = "2_LlamaLayer/2_Mlp/5_LinearOperation/after/outtensor0 ↔ 2_LlamaLayer/2_Mlp/6_LinearQuantOperation/after/outtensor0"


def low_cosine(result, bound: float = 0.999) -> list[str]:
    """Pairs whose cosine similarity is under ``bound`` (int8 weights of a 16-wide model stay above)."""
    return [
        p.key for p in result.pairs if compare_tensors(p.golden.load(), p.my.load()).cosine_similarity < bound
    ]


def test_float_and_quant_atb_pair_by_type_counts(llama_dumps):
    golden, my = load_dump(llama_dumps("atb")), load_dump(llama_dumps("atb", quant=True))
    assert TreeMatcher().applies(golden, my)
    result = match_dumps(golden, my)
    keys = token0(result)
    assert f"token0/{DOWN}" in keys
    assert "token0/1_LlamaLayer/0_Attention/3_LinearOperation/after/outtensor0 ↔ " in " ".join(keys) + " "
    assert (
        "token0/1_LlamaLayer/1_ElewiseOperation/after/outtensor0 ↔ 1_LlamaLayer/1_ElewiseOperation/after/outtensor0"
        in keys
    )
    # the MLP has one element-wise op in float and two in quant (the quantisation): they do not pair
    # (the multiplication keeps its position, and so its name: name_full_match pairs it)
    unpaired = {(u.side, u.record.node) for u in result.unmatched if u.record.token == 0}
    assert unpaired == {
        ("my", f"{layer}/2_Mlp/5_ElewiseOperation") for layer in ("1_LlamaLayer", "2_LlamaLayer")
    }
    assert low_cosine(result) == []


def test_a_planted_quant_error_is_found_at_its_operator(llama_dumps):
    golden = load_dump(llama_dumps("atb"))
    my = load_dump(llama_dumps("atb", quant=True, planted=True))
    assert low_cosine(match_dumps(golden, my))[0] == f"token0/{DOWN}"


def test_identical_atb_structures_pair_by_name(llama_dumps):
    dump = load_dump(llama_dumps("atb"))
    assert not TreeMatcher().applies(dump, dump)
    assert (
        match_dumps(dump, dump).pairs[0].key
        == "token0/rank0/0_WordEmbedding/0_GatherOperation/before/intensor0"
    )


# --- broken topologies ---------------------------------------------------------------------------


@pytest.fixture
def atb_copy(llama_dumps, tmp_path):
    """A private copy of the clean ATB dump, to break."""
    target = tmp_path / "msit_dump_20240506_070809"
    shutil.copytree(llama_dumps("atb"), target)
    return target


def edit_model(root, change) -> None:
    path = root / PREFILL_JSON
    model = json.loads(path.read_text())
    change(model)
    path.write_text(json.dumps(model))


def test_a_truncated_topology_json_falls_back_to_the_folders(atb_copy, torch_dump):
    path = atb_copy / PREFILL_JSON
    path.write_text(path.read_text()[:300])
    my = load_dump(atb_copy)
    assert any(p.path == str(path) and "broken JSON" in p.message for p in my.problems)
    result = match_dumps(torch_dump, my)
    assert token0(result) == API_TOKEN0, "the folder names rebuild the same tree"
    assert any("are in no usable model topology JSON" in note for note in result.notes)


def test_a_node_without_op_type_is_reported(atb_copy, torch_dump):
    edit_model(atb_copy, lambda model: model["nodes"][1]["nodes"][0].pop("opType"))
    result = match_dumps(torch_dump, load_dump(atb_copy))
    assert any("operation Attention_1_0 has no 'opType' string" in note for note in result.notes)
    assert token0(result) == API_TOKEN0


def test_a_cyclic_topology_is_reported_and_matching_goes_on(atb_copy, torch_dump):
    def cycle(model):
        first, second = model["nodes"][1], model["nodes"][2]
        first["inTensors"].append(second["outTensors"][0])

    edit_model(atb_copy, cycle)
    result = match_dumps(torch_dump, load_dump(atb_copy))
    assert any(
        "in a cycle, in Llama2bPrefill: LlamaLayer_1 -> LlamaLayer_2 -> LlamaLayer_1" in n
        for n in result.notes
    )
    assert token0(result) == API_TOKEN0


def test_tensors_the_topology_never_defines_are_reported(atb_copy, torch_dump):
    edit_model(atb_copy, lambda model: model["nodes"][1]["nodes"][0]["inTensors"].append("ghost_tensor"))
    result = match_dumps(torch_dump, load_dump(atb_copy))
    (note,) = [n for n in result.notes if "ghost_tensor" in n]
    assert "1 tensor references name tensors" in note and "Attention_1_0 reads 'ghost_tensor'" in note
    assert token0(result) == API_TOKEN0


def test_topology_operations_without_folders_and_folders_without_operations(atb_copy, torch_dump):
    def extra(model):
        model["nodes"][1]["nodes"].append(
            {"opName": "ExtraOperation_1_4", "opType": "ExtraOperation", "param": {}}
        )

    edit_model(atb_copy, extra)
    stray = atb_copy / "tensors/0_4321/1/1_LlamaLayer/7_StrayOperation/after"
    stray.mkdir(parents=True)
    shutil.copy(atb_copy / "tensors/0_4321/1/1_LlamaLayer/after/outtensor0.bin", stray)
    result = match_dumps(torch_dump, load_dump(atb_copy))
    assert any(
        "1 of its" in n and "no tensor folder in the dump, e.g. 1_LlamaLayer/4_ExtraOperation" in n
        for n in result.notes
    )
    (unmatched,) = [u for u in result.unmatched if "StrayOperation" in u.record.node]
    assert (
        unmatched.reason
        == f"not a node of the my model tree ({atb_copy / 'model/4321/Llama2bDecode.json'}, {atb_copy / PREFILL_JSON})"
    )
    assert token0(result) == API_TOKEN0


def test_a_planted_divergence_is_found_with_two_ranks(llama_dumps, torch_dump):
    my = load_dump(llama_dumps("atb", world=2, planted=True))
    assert (
        failing(match_dumps(torch_dump, my))[0]
        == f"token0/root.{PLANTED}/output ↔ 2_LlamaLayer/2_Mlp/5_LinearOperation/after/outtensor0"
    )


@pytest.fixture
def torch_ranks(llama_dumps, tmp_path):
    """The torch dump's process folder copied as ranks npu0 and npu1 (and, unrelated, npu0 of another pid)."""
    root = tmp_path / "msit_dump_20240101_000000"
    (process,) = (llama_dumps("torch") / "torch_tensors").iterdir()
    for name in ("npu0_1000", "npu1_1001"):
        shutil.copytree(process, root / "torch_tensors" / name)
    return root


def test_torch_ranks_pair_with_atb_ranks(torch_ranks, llama_dumps):
    result = match_dumps(load_dump(torch_ranks), load_dump(llama_dumps("atb", world=2)))
    assert {p.key.split("/")[1] for p in result.pairs} == {"rank0", "rank1"}
    assert next(p.key for p in result.pairs if p.key.startswith("token0/rank0/")) == API_TOKEN0[0].replace(
        "token0/", "token0/rank0/"
    )
    assert all(p.golden.path.split("/torch_tensors/")[1][:4] == f"npu{p.my.rank}" for p in result.pairs)


def test_torch_processes_of_another_run_are_not_merged(torch_ranks, llama_dumps):
    other = torch_ranks / "torch_tensors" / "npu0_2000"
    shutil.copytree(torch_ranks / "torch_tensors" / "npu0_1000", other)
    tree = json.loads((other / "model_tree.json").read_text())
    tree["type"] = "AnotherModel"
    (other / "model_tree.json").write_text(json.dumps(tree))
    result = match_dumps(load_dump(torch_ranks), load_dump(llama_dumps("atb")))
    assert token0(result) == API_TOKEN0, "two replicated ranks against one: rank 0 of the merge"
    assert all(len(p.golden.shards) == 2 for p in result.pairs if isinstance(p.golden, ShardedRecord))
    assert {u.reason for u in result.unmatched if "npu0_2000" in u.record.path} == {
        "process npu0_2000 is not a rank of the compared run"
    }
    assert failing(result) == []
