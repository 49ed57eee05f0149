"""DumpConfig validation and the token-range / wildcard parsers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pytest_llmprec import DumpConfig
from pytest_llmprec.capture.config import parse_token_range, wildcard_pattern


def test_defaults_are_msit_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = DumpConfig()
    assert config.dump_path == str(tmp_path)
    assert (config.token_range, config.module_list, config.api_list) == ([0], (), ())
    assert (config.tensor_part, config.device_id, config.dump_statistics_mode) == (2, None, 0)
    assert (config.dump_last_logits, config.mode, config.dump_weight) == (False, ("module",), False)
    assert (config.layer_name, config.seed, config.analyze) == (None, None, False)


def test_configs_are_independent_objects(tmp_path):
    first = DumpConfig(dump_path=tmp_path, token_range=[1])
    second = DumpConfig(dump_path=tmp_path, token_range=[2])
    assert first is not second
    assert (first.token_range, second.token_range) == ([1], [2])
    assert "token_range=[1]" in repr(first)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_range": 3}, "token_range must be a list of token ids"),
        ({"token_range": "0-3"}, "token_range must be a list of token ids"),
        ({"token_range": [0, -1]}, "token_range must hold non-negative ints"),
        ({"token_range": [0.5]}, "token_range must hold non-negative ints"),
        ({"module_list": torch.nn.Linear}, "module_list must be a list"),
        ({"module_list": ["Linear"]}, "module_list must hold nn.Module classes"),
        ({"api_list": F.silu}, "api_list must be a list"),
        ({"api_list": [print]}, "cannot be intercepted"),
        ({"tensor_part": 3}, r"tensor_part must be one of \[0, 1, 2\], got 3"),
        ({"tensor_part": "2"}, "tensor_part must be an int"),
        ({"device_id": -1}, "device_id must be >= 0"),
        ({"device_id": "0"}, "device_id must be an int"),
        ({"dump_statistics_mode": 4}, "dump_statistics_mode must be one of"),
        ({"dump_last_logits": 1}, "dump_last_logits must be True or False"),
        ({"mode": "layer"}, "mode must be 'module', 'api' or a list of both"),
        ({"mode": []}, "mode must be 'module', 'api'"),
        ({"dump_weight": "yes"}, "dump_weight must be True or False"),
        ({"layer_name": ""}, "layer_name must be a non-empty string"),
        ({"analyze": None}, "analyze must be True or False"),
        ({"writer_queue_mb": 0}, "writer_queue_mb must be >= 1"),
    ],
)
def test_invalid_arguments_name_the_argument(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DumpConfig(dump_path=tmp_path, **kwargs)


def test_dump_path_must_be_a_writable_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        DumpConfig(dump_path=tmp_path / "file" / "below")
    with pytest.raises(ValueError, match="dump_path must be a non-empty path"):
        DumpConfig(dump_path="")
    assert DumpConfig(dump_path=tmp_path / "new" / "dir").dump_path == str(tmp_path / "new" / "dir")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0,2,5-7", [0, 2, 5, 6, 7]), (" 3 , 1-2,2", [1, 2, 3])],
)
def test_parse_token_range(text, tokens):
    assert parse_token_range(text) == tokens


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a token id"),
        ("1-", "is not a token id"),
        ("-1", "is not"),
        ("5-2", "ends before"),
        ("0-1000000", "more than 1000000 tokens"),
    ],
)
def test_parse_token_range_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_token_range(text)


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("root.model.layers.1*", "root.model.layers.10.mlp", True),
        ("root.model.layers.1*", "xroot.model.layers.1", False),
        ("root.model", "rootXmodel", False),
        ("*.mlp", "root.model.layers.0.mlp", True),
        ("*.mlp", "root.model.layers.0.mlp.up_proj", False),
        ("root.layers.[0]", "root.layers.[0]", True),
        ("root.layers.[0]", "root.layers.0", False),
        ("a+b", "aab", False),
    ],
)
def test_wildcards_full_match_with_only_star_special(pattern, name, matches):
    assert (wildcard_pattern(pattern).fullmatch(name) is not None) is matches
