"""Pairing golden and my records: tokens, names, ranks, selections, mappings, matchers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pytest_llmprec.dumps.base import Dump, TensorRecord
from pytest_llmprec.errors import DumpFormatError, LlmprecError
from pytest_llmprec.matching import (
    MATCHERS,
    MatchOptions,
    NameMapping,
    match_dumps,
    parse_tokens,
    register_matcher,
)


def record(token, node, leaf="output", order=0, rank=None, path="x.pth"):
    return TensorRecord(path, token, node, leaf, order=order, rank=rank)


def dump(*records, kind="torch", root="/dumps", info=None):
    return Dump(kind, Path(root), list(records), [], dict(info or {}))


def keys(result):
    return [pair.key for pair in result.pairs]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("0", {0}), ("0,3-5", {0, 3, 4, 5}), (" 2 , 1 ", {1, 2}), ("warmup,1", {"warmup", 1})],
)
def test_token_lists(text, tokens):
    assert parse_tokens(text) == frozenset(tokens)


@pytest.mark.parametrize(
    ("text", "message"), [("5-3", "runs backwards"), ("0;1", "cannot read"), (",", "no token")]
)
def test_bad_token_lists(text, message):
    with pytest.raises(ValueError, match=message):
        parse_tokens(text)


def test_pairs_by_token_node_and_leaf_in_my_execution_order():
    golden = dump(record(0, "b", order=0), record(0, "a", order=1), record(1, "a", order=2))
    my = dump(record(1, "a", order=9), record(0, "a", order=3), record(0, "b", order=4))
    result = match_dumps(golden, my)
    assert keys(result) == ["token0/a/output", "token0/b/output", "token1/a/output"]
    assert [pair.order for pair in result.pairs] == [0, 1, 2]
    assert result.unmatched == [] and result.notes == []


def test_unmatched_records_and_tokens_are_listed_with_reasons():
    golden = dump(record(0, "a"), record(0, "gone"), record(2, "a"))
    my = dump(record(0, "a"), record(0, "new"), record(3, "a"))
    result = match_dumps(golden, my)
    assert keys(result) == ["token0/a/output"]
    reasons = sorted((u.side, u.record.token, u.record.node, u.reason) for u in result.unmatched)
    assert reasons == [
        ("golden", 0, "gone", "no my tensor with this name"),
        ("golden", 2, "a", "token not in the my dump"),
        ("my", 0, "new", "no golden tensor with this name"),
        ("my", 3, "a", "token not in the golden dump"),
    ]


def test_no_common_token_pairs_nothing_unless_both_sides_pinned_one():
    golden = dump(record(0, "a"))
    my = dump(record(5, "a"))
    result = match_dumps(golden, my)
    assert result.pairs == [] and "none in common" in result.notes[0]
    pinned = match_dumps(
        dump(record(0, "a"), info={"pinned_token": 0}), dump(record(5, "a"), info={"pinned_token": 5})
    )
    assert keys(pinned) == ["token5/a/output"] and pinned.pairs[0].golden.token == 0
    assert "comparing golden token 0 with my token 5" in pinned.notes[0]


def test_ranks_pair_with_ranks_when_both_dumps_have_them():
    golden = dump(record(0, "a", rank=0), record(0, "a", rank=1))
    my = dump(record(0, "a", rank=1, order=0), record(0, "a", rank=0, order=1))
    result = match_dumps(golden, my)
    assert keys(result) == ["token0/rank1/a/output", "token0/rank0/a/output"]
    assert all(pair.golden.rank == pair.my.rank for pair in result.pairs)


def test_select_and_token_options_narrow_without_reporting_the_rest():
    golden = dump(record(0, "root.a"), record(0, "root.b"), record(1, "root.a"))
    my = dump(record(0, "root.a"), record(0, "root.b"), record(1, "root.a"))
    result = match_dumps(golden, my, MatchOptions(tokens=frozenset({0}), select=("root.b*",)))
    assert keys(result) == ["token0/root.b/output"] and result.unmatched == []


def test_duplicate_names_on_the_my_side_are_reported():
    result = match_dumps(
        dump(record(0, "a")), dump(record(0, "a", path="1.pth"), record(0, "a", path="2.pth"))
    )
    assert len(result.pairs) == 1
    assert [(u.side, u.reason) for u in result.unmatched] == [("my", "duplicate name in the my dump")]


def test_name_mapping_exact_and_prefixes(tmp_path):
    mapping_file = tmp_path / "map.json"
    mapping_file.write_text(
        json.dumps(
            {
                "root.model.*": "root.transformer.*",
                "root.model.head": "root.lm_head",
                "root.model.layers.*": "root.transformer.h.*",
            }
        )
    )
    mapping = NameMapping.load(mapping_file)
    assert mapping("root.model.head") == "root.lm_head"
    assert mapping("root.model.layers.3.mlp") == "root.transformer.h.3.mlp"  # longest prefix wins
    assert mapping("root.model.norm") == "root.transformer.norm"
    assert mapping("root.other") == "root.other"
    golden = dump(record(0, "root.model.layers.0"))
    my = dump(record(0, "root.transformer.h.0"))
    result = match_dumps(golden, my, MatchOptions(mapping=mapping))
    assert keys(result) == ["token0/root.model.layers.0/output"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected a JSON object of names"),
        ('{"a": 1}', "expected a JSON object of names"),
        ('{"a.*": "b"}', "use '\\*' on both sides"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_mapping_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(DumpFormatError, match=message) as failure:
        NameMapping.load(path)
    assert str(path) in str(failure.value)


def test_single_files_pair_whatever_their_names(tmp_path):
    golden_file, my_file = tmp_path / "ref.pt", tmp_path / "npu_out.npy"
    golden_file.touch()
    my_file.touch()
    result = match_dumps(
        dump(record(0, "ref", "tensor", path=str(golden_file)), kind="files", root=str(golden_file)),
        dump(record(0, "npu_out", "tensor", path=str(my_file)), kind="files", root=str(my_file)),
    )
    assert keys(result) == ["ref/tensor"]


def test_manual_dump_pairs_with_the_files_its_metadata_names():
    golden = dump(
        record(0, "attn"),
        record(1, "attn"),
        record(0, "mlp"),
        kind="manual",
        info={"my_paths": {(0, "attn"): "/mine/a0.bin", (1, "attn"): "/mine/a1.bin"}},
    )
    result = match_dumps(golden, dump(kind="torch"))
    assert keys(result) == ["token0/attn/output", "token1/attn/output"]
    assert [pair.my.path for pair in result.pairs] == ["/mine/a0.bin", "/mine/a1.bin"]
    assert [(u.record.node, u.reason) for u in result.unmatched] == [
        ("mlp", "metadata.json names no my file")
    ]


def test_layouts_no_matcher_knows_are_refused():
    with pytest.raises(
        LlmprecError, match="cannot pair the tensors of a 'logits' golden dump with a 'atb' my"
    ):
        match_dumps(dump(record(0, "a"), kind="logits"), dump(record(0, "a"), kind="atb"))


def test_registered_matchers_are_tried_first(monkeypatch):
    class Everything:
        name = "test"

        def applies(self, golden, my):
            return True

        def match(self, golden, my, options):
            from pytest_llmprec.matching import MatchResult

            return MatchResult(notes=["custom"])

    monkeypatch.setattr("pytest_llmprec.matching.MATCHERS", list(MATCHERS))
    register_matcher(Everything())
    assert match_dumps(dump(record(0, "a")), dump(record(0, "a"), kind="atb")).notes == ["custom"]


def test_record_probe_reads_dtype_and_shape_from_the_header(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(3, 5, dtype=torch.bfloat16), path)
    info = record(0, "a", path=str(path)).probe()
    assert (info.dtype, info.shape) == (torch.bfloat16, (3, 5))
