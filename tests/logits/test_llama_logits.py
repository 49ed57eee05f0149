"""End to end on a small random-weight Hugging Face Llama: greedy generations in fp32 and bf16
dumped with ``LogitsDumper`` and ``DumpConfig(dump_last_logits=True)``, compared token by token.
The oracle is the generated ids themselves: the report's top-1 tokens must be them."""

from __future__ import annotations

import csv

import torch

from pytest_llmprec.capture import DumpConfig, LogitsDumper, register_hook
from pytest_llmprec.cli import main
from pytest_llmprec.testing.llama import greedy_ids, plant, port, prompt

PROMPT, NEW = 8, 10


def _generate(model, folder, case=0):
    handle = LogitsDumper(folder, token_range=NEW + 1).attach(model, task="dev.jsonl", batch_id=case)
    try:
        ids = greedy_ids(model, prompt(model, PROMPT, seed=5), NEW)
    finally:
        handle.remove()
    return ids[0, PROMPT:].tolist()


def _rows(folder):
    (path,) = folder.glob("logits_cmp_res_*.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)


def test_fp32_reruns_are_numerically_equal(tmp_path, golden_model):
    ids = _generate(golden_model, tmp_path / "g")
    assert _generate(golden_model, tmp_path / "m") == ids
    assert (
        main(["logitscmp", "-gp", str(tmp_path / "g"), "-mp", str(tmp_path / "m"), "-o", str(tmp_path)]) == 0
    )
    rows = _rows(tmp_path)
    assert len(rows) == NEW + 1
    assert [int(r["top1_golden"]) for r in rows[:NEW]] == ids  # token t's logits chose generated id t
    assert {r["case_verdict"] for r in rows} == {"numerically equal"}
    assert {r["cosine_similarity"] for r in rows} == {"1.0"}


def test_bf16_port_against_fp32_tokens_and_first_divergence(tmp_path, golden_model):
    golden_ids = _generate(golden_model, tmp_path / "g")
    my_ids = _generate(port(golden_model, torch.bfloat16), tmp_path / "m")
    args = [
        "logitscmp",
        "-gp",
        str(tmp_path / "g"),
        "-mp",
        str(tmp_path / "m"),
        "-d",
        "bf16",
        "-o",
        str(tmp_path),
    ]
    main(args)
    rows = _rows(tmp_path)
    assert {r["dtype"] for r in rows} == {"bf16"}
    first = _first_difference(golden_ids, my_ids)
    last = NEW if first is None else first  # up to the first different id both runs saw the same context
    for row in rows[: last + 1][:NEW]:
        token = int(row["token_id"])
        assert (int(row["top1_golden"]), int(row["top1_my"])) == (golden_ids[token], my_ids[token])
    verdicts = [r["token_verdict"] for r in rows]
    if first is not None:
        assert verdicts[first] in ("flip", "near-tie flip", "numerics differ")
    case = rows[0]["case_verdict"]
    if case != "numerically equal":
        decided = int(case.split("token ")[1].split(")")[0].split(" ")[0])
        assert first is None or decided <= first


def test_a_planted_defect_diverges_at_token_0(tmp_path, golden_model):
    golden_ids = _generate(golden_model, tmp_path / "g")
    my_ids = _generate(plant(port(golden_model, torch.float32), "gelu", layer=0), tmp_path / "m")
    assert (
        main(
            [
                "logitscmp",
                "-gp",
                str(tmp_path / "g"),
                "-mp",
                str(tmp_path / "m"),
                "-d",
                "fp32",
                "-o",
                str(tmp_path),
            ]
        )
        == 1
    )
    rows = _rows(tmp_path)
    assert rows[0]["case_verdict"] == "diverged at token 0 (numerics differ)"
    assert float(rows[0]["cosine_similarity"]) < 0.999
    assert (int(rows[0]["top1_golden"]), int(rows[0]["top1_my"])) == (golden_ids[0], my_ids[0])


def test_torch_last_logits_dumps_pair_by_token(tmp_path, golden_model, pytester, monkeypatch):
    def dump(model, folder):
        config = DumpConfig(dump_path=folder, token_range=list(range(NEW + 1)), dump_last_logits=True)
        handle = register_hook(model, config)
        try:
            ids = greedy_ids(model, prompt(model, PROMPT, seed=5), NEW)
        finally:
            handle.flush()
            handle.remove()
        return ids[0, PROMPT:].tolist(), handle.root_dir

    golden_ids, golden = dump(golden_model, tmp_path / "g")
    _, my = dump(golden_model, tmp_path / "m")
    monkeypatch.setenv("CI", "1")
    result = pytester.runpytest(f"--llm-golden={golden}", f"--llm-my={my}", "-v", "-rN")
    result.assert_outcomes(passed=NEW + 1)
    result.stdout.fnmatch_lines(
        ["logits/root.lm_head/token0 PASSED*", f"logits: 1 cases, {NEW + 1} tokens: 1 numerically equal*"]
    )
    rows = _rows(pytester.path / "llmprec-report")
    assert [int(r["top1_golden"]) for r in rows[:NEW]] == golden_ids
    # against the LogitsDumper folder of the same generation: one case each side, paired by token
    _generate(golden_model, tmp_path / "d")
    assert main(["logitscmp", "-gp", str(golden), "-mp", str(tmp_path / "d"), "-o", str(tmp_path / "x")]) == 0
