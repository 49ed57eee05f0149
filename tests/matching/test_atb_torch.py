"""torch vs ATB tree matching on dumps of one Llama-style model: levels, tokens, sides, divergences."""

from __future__ import annotations

import json

import pytest
from llama_dumps import PLANTED

from pytest_llmprec.compare.metrics import compare_tensors
from pytest_llmprec.dumps import load_dump
from pytest_llmprec.matching import MatchOptions, OpMapping, TreeMatcher, match_dumps
from pytest_llmprec.standards import judge, resolve_standard

L0, L1 = "1_LlamaLayer", "2_LlamaLayer"
PACK = "0_Attention/0_QKVLinearSplitPack"
ROPE = "0_Attention/1_RotaryPositionEmbedding/0_RopeOperation"


def layer_keys(i: int, folder: str) -> list[str]:
    t = f"token0/root.model.layers.{i}"
    return [
        f"{t}.input_layernorm/output ↔ {folder}/{PACK}/0_NormLinear/0_RmsNormOperation/after/outtensor0",
        f"{t}.self_attn.q_proj/output ↔ {folder}/{PACK}/1_SplitOperation/after/outtensor0",
        f"{t}.self_attn.k_proj/output ↔ {folder}/{PACK}/1_SplitOperation/after/outtensor1",
        f"{t}.self_attn.v_proj/output ↔ {folder}/{PACK}/1_SplitOperation/after/outtensor2",
        f"{t}.self_attn.q_proj/output ↔ {folder}/{PACK}/after/outtensor0",
        f"{t}.self_attn.k_proj/output ↔ {folder}/{PACK}/after/outtensor1",
        f"{t}.self_attn.v_proj/output ↔ {folder}/{PACK}/after/outtensor2",
        f"{t}.self_attn.rotary_emb/output_0 ↔ {folder}/{ROPE}/before/intensor2",
        f"{t}.self_attn.rotary_emb/output_1 ↔ {folder}/{ROPE}/before/intensor3",
        f"{t}.self_attn.o_proj/output ↔ {folder}/0_Attention/3_LinearOperation/after/outtensor0",
        f"{t}.post_attention_layernorm/output ↔ {folder}/2_Mlp/0_RmsNormOperation/after/outtensor0",
        f"{t}.mlp.gate_proj/output ↔ {folder}/2_Mlp/2_SplitOperation/after/outtensor0",
        f"{t}.mlp.act_fn/output ↔ {folder}/2_Mlp/3_ActivationOperation/after/outtensor0",
        f"{t}.mlp.down_proj/input_0 ↔ {folder}/2_Mlp/4_ElewiseOperation/after/outtensor0",
        f"{t}.mlp.down_proj/output ↔ {folder}/2_Mlp/5_LinearOperation/after/outtensor0",
        f"{t}/output ↔ {folder}/after/outtensor0",
    ]


API_TOKEN0 = [
    "token0/root.model.embed_tokens/output ↔ 0_WordEmbedding/after/outtensor0",
    *layer_keys(0, L0),
    *layer_keys(1, L1),
    "token0/root.model.norm/output ↔ 3_RmsNormOperation/after/outtensor0",
    "token0/root.lm_head/output ↔ 4_LmHead/0_LinearOperation/after/outtensor0",
    "token0/root.lm_head/output ↔ 4_LmHead/after/outtensor0",
]
"""msit's api-level policies on this model, written out by hand from §5.4/§5.5 (in ATB execution order)."""


def token0(result) -> list[str]:
    return [pair.key for pair in result.pairs if pair.token == 0]


def failing(result) -> list[str]:
    """Keys of the pairs that fail the default standard, in pair order."""
    failed = []
    for pair in result.pairs:
        golden, my = pair.golden.load(), pair.my.load()
        verdict = judge(compare_tensors(golden, my), resolve_standard(golden.dtype, my.dtype, []))
        if not verdict.passed:
            failed.append(pair.key)
    return failed


@pytest.fixture(scope="module")
def clean(llama_dumps):
    return load_dump(llama_dumps("torch")), load_dump(llama_dumps("atb"))


def test_the_tree_matcher_takes_torch_with_atb_either_way(clean):
    torch_dump, atb_dump = clean
    assert TreeMatcher().applies(torch_dump, atb_dump) and TreeMatcher().applies(atb_dump, torch_dump)
    assert not TreeMatcher().applies(torch_dump, torch_dump) and not TreeMatcher().applies(atb_dump, atb_dump)


def test_api_level_pairs_every_llama_operator_msit_knows(clean):
    result = match_dumps(*clean)
    assert token0(result) == API_TOKEN0
    assert any("compared at level api" in note for note in result.notes)
    assert failing(result) == []


def test_item_ids_name_both_sides_and_are_unique(clean):
    result = match_dumps(*clean)
    keys = [pair.key for pair in result.pairs]
    assert len(keys) == len(set(keys)) == 3 * len(API_TOKEN0)
    assert [pair.order for pair in result.pairs] == list(range(len(keys)))


def test_prefill_and_decode_models_serve_their_tokens(clean):
    """Round 1 holds token 0 (prefill ops 0-4) and token 1 (decode ops 5-9); round 2 is token 2."""
    result = match_dumps(*clean)
    by_token = {token: [p for p in result.pairs if p.token == token] for token in (0, 1, 2)}
    assert {p.my.node.split("/")[0] for p in by_token[0]} == {
        "0_WordEmbedding",
        L0,
        L1,
        "3_RmsNormOperation",
        "4_LmHead",
    }
    for token in (1, 2):
        tops = {p.my.node.split("/")[0] for p in by_token[token]}
        assert tops == {"5_WordEmbedding", "6_LlamaLayer", "7_LlamaLayer", "8_RmsNormOperation", "9_LmHead"}
        assert all(f"/{token if token > 1 else 1}/" in p.my.path for p in by_token[token])
    assert by_token[1][0].key == "token1/root.model.embed_tokens/output ↔ 5_WordEmbedding/after/outtensor0"
    assert any("warm-up round" in note for note in result.notes)
    assert not any(u.record.token == "warmup" for u in result.unmatched)


def test_the_golden_side_may_be_the_atb_dump(clean):
    torch_dump, atb_dump = clean
    result = match_dumps(atb_dump, torch_dump)
    expected = [f"{key.split(' ↔ ')[1]} ↔ {key.split(' ↔ ')[0].split('/', 1)[1]}" for key in API_TOKEN0]
    assert sorted(token0(result)) == sorted("token0/" + key for key in expected)
    assert all(pair.golden.path.endswith(".bin") and pair.my.path.endswith(".pth") for pair in result.pairs)
    my_orders = [pair.my.order for pair in result.pairs]
    assert my_orders == sorted(my_orders), "pairs follow the my dump's execution order"
    assert failing(result) == []


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (
            "layer",
            [
                "token0/root.model.layers.0/output ↔ 1_LlamaLayer/after/outtensor0",
                "token0/root.model.layers.1/output ↔ 2_LlamaLayer/after/outtensor0",
                "token0/root.model.embed_tokens/output ↔ 0_WordEmbedding/after/outtensor0",
                "token0/root.model.norm/output ↔ 3_RmsNormOperation/after/outtensor0",
                "token0/root.lm_head/output ↔ 4_LmHead/after/outtensor0",
            ],
        ),
        (
            "module",
            [
                "token0/root.model.layers.0.self_attn/output ↔ 1_LlamaLayer/0_Attention/after/outtensor0",
                "token0/root.model.layers.0.mlp/output ↔ 1_LlamaLayer/2_Mlp/after/outtensor0",
                "token0/root.model.layers.1.self_attn/output ↔ 2_LlamaLayer/0_Attention/after/outtensor0",
                "token0/root.model.layers.1.mlp/output ↔ 2_LlamaLayer/2_Mlp/after/outtensor0",
            ],
        ),
        (
            "logits",
            [
                "token0/root.lm_head/output ↔ 4_LmHead/0_LinearOperation/after/outtensor0",
                "token0/root.lm_head/output ↔ 4_LmHead/after/outtensor0",
            ],
        ),
    ],
)
def test_levels_select_msit_policy_sets(clean, level, expected):
    result = match_dumps(*clean, MatchOptions(level=level))
    assert sorted(token0(result)) == sorted(expected)
    assert not any("--llm-level not given" in note for note in result.notes)
    reasons = {u.reason for u in result.unmatched}
    assert any(reason.startswith(f"not compared at --llm-level={level}") for reason in reasons)


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown level 'token'"):
        MatchOptions(level="token")


def test_unpaired_nodes_say_why(clean):
    result = match_dumps(*clean)
    reasons = {(u.side, u.record.node): u.reason for u in result.unmatched if u.record.token == 0}
    assert reasons[("my", f"{L0}/0_Attention/2_SelfAttentionOperation")] == (
        "op mapping SelfAttentionOperation -> CoreAttention (built-in): layer 0 has 1 such ATB and 0 such "
        "torch nodes, so none pair"
    )
    assert reasons[("my", f"{L0}/1_ElewiseOperation")].startswith(
        "in layer 0, no api-level rule pairs a ElewiseOperation"
    )
    assert reasons[("golden", "root")] == "outside the LlamaDecoderLayer layers, and no rule pairs it by name"
    up = reasons[("my", f"{L0}/2_Mlp/2_SplitOperation")]
    assert (
        up
        == "its node is paired with root.model.layers.0.mlp.gate_proj by rule enhanced_name, but no rule pairs this file"
    )
    assert any("input tensors of paired nodes are not compared" in note for note in result.notes)


def test_a_planted_weight_change_fails_first_at_its_operator(llama_dumps):
    golden = load_dump(llama_dumps("torch"))
    my = load_dump(llama_dumps("atb", planted=True))
    failed = failing(match_dumps(golden, my))
    assert failed[0] == f"token0/root.{PLANTED}/output ↔ {L1}/2_Mlp/5_LinearOperation/after/outtensor0"
    # downstream pairs diverge too, upstream ones (layer 0, layer 1 before the MLP's down projection) do not
    assert not any("layers.0" in key for key in failed)
    assert (
        f"token0/root.model.layers.1.mlp.down_proj/input_0 ↔ {L1}/2_Mlp/4_ElewiseOperation/after/outtensor0"
        not in failed
    )


def test_token_selection_and_pinned_token_folders(llama_dumps):
    torch_root, atb_root = llama_dumps("torch"), llama_dumps("atb")
    golden, my = load_dump(torch_root), load_dump(atb_root)
    only2 = match_dumps(golden, my, MatchOptions(tokens=frozenset({2})))
    assert {pair.token for pair in only2.pairs} == {2} and len(only2.pairs) == len(API_TOKEN0)
    device = next((torch_root / "torch_tensors").iterdir())
    across = match_dumps(load_dump(device / "0"), load_dump(atb_root / "tensors" / "0_4321" / "2"))
    assert across.pairs and {pair.golden.token for pair in across.pairs} == {0}
    assert {pair.token for pair in across.pairs} == {2}
    assert "comparing golden token 0 with my token 2" in across.notes


def test_select_globs_keep_pairs_with_a_matching_side(clean):
    result = match_dumps(*clean, MatchOptions(select=("*mlp.down_proj",)))
    assert {pair.key.split(" ↔ ")[0].split("/", 1)[1] for pair in result.pairs} == {
        f"root.model.layers.{i}.mlp.down_proj/{leaf}" for i in (0, 1) for leaf in ("output", "input_0")
    }
    result = match_dumps(*clean, MatchOptions(select=("*_LlamaLayer",)))
    assert {pair.my.node for pair in result.pairs} == {L0, L1, "6_LlamaLayer", "7_LlamaLayer"}


# --- op mapping files ----------------------------------------------------------------------------


def test_an_op_mapping_entry_pairs_more_nodes(clean, tmp_path):
    path = tmp_path / "op_mapping_file.json"
    path.write_text(json.dumps({"Mlp": ["LlamaMLP"]}))
    for given in (path, tmp_path):  # the file, or msit's -mf folder holding it
        result = match_dumps(*clean, MatchOptions(op_mapping=OpMapping.load(given)))
        assert f"token0/root.model.layers.1.mlp/output ↔ {L1}/2_Mlp/after/outtensor0" in token0(result)
    assert f"token0/root.model.layers.1.mlp/output ↔ {L1}/2_Mlp/after/outtensor0" not in token0(
        match_dumps(*clean)
    )


def test_op_mapping_file_stems_choose_files(clean):
    mapping = OpMapping.from_dict({"SplitOperation_outtensor1": ["Linear_output"]}, "map.json")
    result = match_dumps(*clean, MatchOptions(op_mapping=mapping, level="api"))
    # two SplitOperations but seven Linear modules in a layer: the entry pairs nothing
    assert not any("2_Mlp/2_SplitOperation/after/outtensor1" in key for key in token0(result))
    mapping = OpMapping.from_dict({"ActivationOperation_outtensor0": ["SiLU_output"]}, "map.json")
    assert (
        f"token0/root.model.layers.0.mlp.act_fn/output ↔ {L0}/2_Mlp/3_ActivationOperation/after/outtensor0"
        in token0(match_dumps(*clean, MatchOptions(op_mapping=mapping)))
    )


def test_op_mapping_entries_with_unknown_types_are_noted(clean):
    mapping = OpMapping.from_dict({"NoSuchOperation": ["Nothing"], "Mlp": ["LlamaMLP"]}, "map.json")
    result = match_dumps(*clean, MatchOptions(op_mapping=mapping))
    assert (
        "op mapping map.json: NoSuchOperation -> Nothing: no ATB operation type contains 'NoSuchOperation' "
        "and no torch node type contains 'Nothing'"
    ) in result.notes
    assert token0(result)[: len(API_TOKEN0)] != [] and result.unmatched


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"Linear-Op": ["Linear"]}', "'Linear-Op' is not a type name"),
        ('{"LinearOperation": [3]}', "the value must be a list of torch type names"),
        ('{"LinearOperation": ["Lin ear"]}', "'Lin ear' is not a type name"),
    ],
)
def test_bad_op_mapping_files_are_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "op_mapping_file.json"
    path.write_text(content)
    with pytest.raises(Exception, match=message) as error:
        OpMapping.load(path)
    assert str(path) in str(error.value)


def test_op_mapping_plain_string_values_count_as_one_type(tmp_path):
    """msit's doc example writes "LayerNormOperation": "LayerNorm" (msit iterates the letters)."""
    mapping = OpMapping.from_dict({"LayerNormOperation": "LayerNorm"}, "doc")
    (entry,) = mapping.user_entries()
    assert (entry.atb_type, entry.torch_type, entry.atb_location) == (
        "LayerNormOperation",
        "LayerNorm",
        "*output",
    )
    assert {e.key for e in mapping.entries} >= {"RmsNormOperation", "CommonLayer_outtensor0"}
    with pytest.raises(Exception, match="cannot read the op mapping file"):
        OpMapping.load(tmp_path / "missing")
