"""Torch vs ATB token logits (msit-spec §8.5 ``-cl logits``): a greedy generation of a small random
Llama dumped with ``dump_last_logits`` against an ATB last-layer dump of the same generation.
The oracle is the generation itself: the report's top-1 tokens must be the generated ids, and a
token whose ATB logits were changed must be the one named."""

from __future__ import annotations

import csv

import pytest
import torch
from atb_logits import torch_last_logits, write_atb_last_layer

from pytest_llmprec.capture import DumpConfig, register_hook
from pytest_llmprec.cli import main
from pytest_llmprec.testing.llama import greedy_ids, prompt

PROMPT, NEW, LAYERS = 8, 5, 2
pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def generation(tmp_path_factory, golden_model):
    folder = tmp_path_factory.mktemp("torch-logits")
    return torch_last_logits(golden_model, folder, PROMPT, NEW)


def _rows(folder):
    (path,) = folder.glob("logits_cmp_res_*.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _flipped(logits: torch.Tensor, to: int) -> torch.Tensor:
    """``logits`` with token ``to`` raised one unit above the maximum: a real top-1 change."""
    changed = logits.clone()
    changed[to] = logits.max() + 1.0
    return changed


def test_same_values_every_token_equal_either_side_golden(tmp_path, generation):
    torch_root, ids, logits = generation
    assert len(set(ids)) > 1  # a generation, not one token repeated
    atb_root = write_atb_last_layer(tmp_path, logits, LAYERS)
    out = tmp_path / "out"
    assert (
        main(["compare", "-gp", str(torch_root), "-mp", str(atb_root), "-cl", "logits", "-o", str(out)]) == 0
    )
    rows = _rows(out)
    assert [int(r["token_id"]) for r in rows] == list(range(NEW + 1))
    assert [int(r["top1_golden"]) for r in rows[:NEW]] == ids  # token t's logits chose generated id t
    assert {r["key"] for r in rows} == {"root.lm_head"}
    assert {r["case_verdict"] for r in rows} == {"numerically equal"}
    assert rows[0]["my_path"].endswith("/1/4_LmHead/after/outtensor0.bin")  # prefill model, round 1
    assert rows[1]["my_path"].endswith("/1/9_LmHead/after/outtensor0.bin")  # first decode, round 1
    assert rows[2]["my_path"].endswith("/2/9_LmHead/after/outtensor0.bin")
    back = tmp_path / "back"
    assert main(["logitscmp", "-gp", str(atb_root), "-mp", str(torch_root), "-o", str(back)]) == 0
    assert [r["top1_my"] for r in _rows(back)] == [r["top1_golden"] for r in rows]


def test_fp16_atb_logits_pass_msit_rule(tmp_path, generation):
    torch_root, _, logits = generation
    atb_root = write_atb_last_layer(tmp_path, logits, LAYERS, dtype=torch.float16)
    assert main(["logitscmp", "-gp", str(torch_root), "-mp", str(atb_root), "-o", str(tmp_path)]) == 0
    rows = _rows(tmp_path)
    assert {r["dtype"] for r in rows} == {"fp16"}
    assert {r["passed"] for r in rows} == {"True"}


def test_diverging_token_is_named(tmp_path, generation, capsys):
    torch_root, ids, logits = generation
    changed = list(logits)
    changed[3] = _flipped(logits[3], to=(ids[3] + 1) % 512)
    atb_root = write_atb_last_layer(tmp_path, changed, LAYERS)
    assert main(["compare", "-gp", str(torch_root), "-mp", str(atb_root), "-o", str(tmp_path)]) == 1
    assert "case root.lm_head: diverged at token 3" in capsys.readouterr().out
    rows = _rows(tmp_path)
    assert [r["token_verdict"] for r in rows] == ["same"] * 3 + ["flip"] + ["same"] * (NEW - 3)
    assert int(rows[3]["top1_golden"]) == ids[3]
    assert int(rows[3]["top1_my"]) == (ids[3] + 1) % 512


def test_vocab_mismatch_and_missing_tokens_are_rows(tmp_path, generation):
    torch_root, _, logits = generation
    atb = list(logits)
    atb[1] = logits[1][:500]  # a head with another vocabulary
    atb[2] = None  # the ATB run did not dump this round
    atb.append(logits[-1])  # one token more than the torch dump
    atb_root = write_atb_last_layer(tmp_path, atb, LAYERS)
    assert main(["logitscmp", "-gp", str(torch_root), "-mp", str(atb_root), "-o", str(tmp_path)]) == 1
    rows = {int(r["token_id"]): r for r in _rows(tmp_path)}
    assert rows[1]["cmp_fail_reason"].startswith("data shape doesn't match. (golden [1, 512], my [500])")
    assert rows[1]["passed"] == "NA"
    assert rows[2]["cmp_fail_reason"] == "only_in_golden_path"
    assert rows[2]["my_path"] == "NA"
    extra = rows[NEW + 1]
    assert extra["cmp_fail_reason"] == "only_in_my_path"
    assert extra["key"] == "root.lm_head"
    assert extra["file_name"].endswith(f"{NEW + 1}/9_LmHead/after/outtensor0.bin")
    assert rows[0]["token_verdict"] == "same"


def test_pytest_items_per_token(pytester, monkeypatch, tmp_path, generation):
    monkeypatch.setenv("CI", "1")
    torch_root, ids, logits = generation
    changed = list(logits)
    changed[2] = _flipped(logits[2], to=(ids[2] + 7) % 512)
    atb_root = write_atb_last_layer(tmp_path, changed, LAYERS)
    result = pytester.runpytest(
        f"--llm-golden={torch_root}", f"--llm-my={atb_root}", "-v", "-rN", "-p", "no:cacheprovider"
    )
    assert result.ret == 1
    result.assert_outcomes(passed=NEW, failed=1)
    result.stdout.fnmatch_lines(
        [
            "logits/root.lm_head/token0 PASSED*",
            "logits/root.lm_head/token2 FAILED*",
            f"*top-1 token: golden {ids[2]}, my {(ids[2] + 7) % 512}*",
            "*case root.lm_head: diverged at token 2*",
        ]
    )


def test_level_api_keeps_tensor_comparison(tmp_path, generation):
    torch_root, _, logits = generation
    atb_root = write_atb_last_layer(tmp_path, logits, LAYERS)
    main(
        [
            "compare",
            "-gp",
            str(torch_root),
            "-mp",
            str(atb_root),
            "-cl",
            "api",
            "-o",
            str(tmp_path),
            "--no-html",
        ]
    )
    assert not list(tmp_path.glob("logits_cmp_res_*.csv"))
    assert list(tmp_path.glob("llmprec_cmp_report_*.csv"))  # the tensors were compared instead


def test_full_torch_dump_at_level_logits(tmp_path, golden_model, generation):
    _, ids, logits = generation
    config = DumpConfig(dump_path=str(tmp_path / "full"), token_range=list(range(NEW + 1)))
    with register_hook(golden_model, config) as handle:
        greedy_ids(golden_model, prompt(golden_model, PROMPT, seed=5), NEW)
        full_root = handle.root_dir
    atb_root = write_atb_last_layer(tmp_path, logits, LAYERS)
    out = tmp_path / "out"
    assert (
        main(["compare", "-gp", str(full_root), "-mp", str(atb_root), "-cl", "logits", "-o", str(out)]) == 0
    )
    rows = _rows(out)
    assert {r["key"] for r in rows} == {"root.lm_head"}
    assert [int(r["token_id"]) for r in rows] == list(range(NEW + 1))
    assert [int(r["top1_golden"]) for r in rows[:NEW]] == ids  # the prefill's last row chose token 0
    assert {r["case_verdict"] for r in rows} == {"numerically equal"}
