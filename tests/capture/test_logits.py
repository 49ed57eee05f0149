"""Logits dumps: the bad-case list, LogitsDumper files, ``llmprec logitsdump`` environment contract."""

from __future__ import annotations

import ast
import json
import sys
import textwrap

import pytest
import tiny_llm
import torch
from capture_helpers import load, names

from pytest_llmprec.capture.logits import LogitsDumper, bad_case_list
from pytest_llmprec.cli import main
from pytest_llmprec.errors import DumpFormatError


def write_csv(path, keys, header="key,passed_golden,passed_test"):
    path.write_text(header + "\n" + "".join(f"{key},true,false\n" for key in keys))
    return path


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["12", "3", "1352"], [12, 3, 1352]),
        (["HumanEval/7", "HumanEval/120"], [7, 120]),
        (["Python/4", "CPP/1", "Go/2", "Python/9", "JavaScript/0"], [[1], [2], [], [0], [4, 9]]),
    ],
)
def test_bad_case_list_follows_the_dataset_rules(tmp_path, keys, expected):
    assert bad_case_list(write_csv(tmp_path / "bad.csv", keys)) == expected


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "no 'key' column"),
        ("queries,passed\nq,true\n", "no 'key' column"),
        ("key,passed\n,true\n", "the 'key' column is empty"),
        (
            "key,passed\n1,true\nHumanEval/2,false\n",
            r"line 3: key 'HumanEval/2' does not have the form of the first key \(integer\)",
        ),
        ("key,passed\nRust/1,true\n", "line 2: key 'Rust/1' is not an integer"),
        ("key,passed\n-4,true\n", "line 2: key '-4'"),
    ],
)
def test_bad_case_csv_problems_name_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DumpFormatError, match=problem) as caught:
        bad_case_list(path)
    assert caught.value.path == str(path)


def test_missing_bad_case_csv_is_a_format_error(tmp_path):
    with pytest.raises(DumpFormatError, match="cannot read"):
        bad_case_list(tmp_path / "absent.csv")


def test_logits_dumper_writes_asked_cases_and_tokens(tmp_path):
    dumper = LogitsDumper(tmp_path, case_keys=[1352], token_range=2)
    logits = torch.randn(1, 256)
    assert dumper.dump("dev.jsonl", 1352, 0, logits) == str(tmp_path / "logits_dev.jsonl_1352_0.pth")
    assert dumper.dump("dev.jsonl", 1352, 2, logits) is None
    assert dumper.dump("dev.jsonl", 7, 0, logits) is None
    assert names(tmp_path) == {"logits_dev.jsonl_1352_0.pth"}
    assert torch.equal(load(tmp_path / "logits_dev.jsonl_1352_0.pth"), logits)
    with pytest.raises(ValueError, match="plain file-name part"):
        dumper.dump("../escape", 1352, 0, logits)


def test_logits_dumper_attached_to_a_model_saves_last_position_logits(tmp_path, model, prompt):
    dumper = LogitsDumper(tmp_path, case_keys=None, token_range=2)
    handle = dumper.attach(model, "boolq", 5)
    ids = tiny_llm.generate(model, prompt, 3)
    handle.remove()
    assert names(tmp_path) == {"logits_boolq_5_0.pth", "logits_boolq_5_1.pth"}
    for token in (0, 1):
        with torch.no_grad():
            expected = model(ids[:, : prompt.shape[1] + token])[:, -1, :]
        assert torch.equal(load(tmp_path / f"logits_boolq_5_{token}.pth"), expected)


def test_from_env_reads_the_logitsdump_contract(tmp_path, monkeypatch):
    monkeypatch.delenv("BAD_CASE_LOGITS_DUMP", raising=False)
    assert LogitsDumper.from_env(tmp_path) is None
    monkeypatch.setenv("BAD_CASE_LOGITS_DUMP", "True")
    monkeypatch.setenv("LOGITS_DUMP_TOKEN_MAX_LENGTH", "4")
    monkeypatch.setenv("BAD_CASE_LIST", "[[1], [2], [], [0], [4, 9]]")
    dumper = LogitsDumper.from_env(tmp_path, language="Python")
    assert (dumper.case_keys, dumper.token_range) == ({4, 9}, 4)
    with pytest.raises(ValueError, match="language="):
        LogitsDumper.from_env(tmp_path)


HARNESS = textwrap.dedent(
    """
    import json, os, sys
    keys = ["BAD_CASE_LOGITS_DUMP", "LOGITS_DUMP_TOKEN_MAX_LENGTH", "BAD_CASE_LIST"]
    print(json.dumps({key: os.environ.get(key) for key in keys}))
    sys.exit(int(sys.argv[1]))
    """
)


def test_logitsdump_exports_the_contract_and_returns_the_exit_code(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("BAD_CASE_LIST", raising=False)
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    csv_path = write_csv(tmp_path / "bad.csv", ["HumanEval/3", "HumanEval/11"])
    command = f"{sys.executable} {harness} 5"
    code = main(["logitsdump", "--exec", command, "-bcr", str(csv_path), "-tr", "8", "--any-command"])
    captured = capfd.readouterr()
    assert code == 5
    env = json.loads(captured.out)
    assert env == {
        "BAD_CASE_LOGITS_DUMP": "True",
        "LOGITS_DUMP_TOKEN_MAX_LENGTH": "8",
        "BAD_CASE_LIST": "[3, 11]",
    }
    assert ast.literal_eval(env["BAD_CASE_LIST"]) == [3, 11]
    assert "BAD_CASE_LIST" not in __import__("os").environ


def test_logitsdump_requires_torchrun_or_modeltest_by_default(tmp_path, capfd):
    csv_path = write_csv(tmp_path / "bad.csv", ["1"])
    code = main(["logitsdump", "--exec", f"{sys.executable} -c pass", "--bad-case-result", str(csv_path)])
    assert code == 2
    assert "must start with torchrun or modeltest" in capfd.readouterr().err


def test_logitsdump_rejects_a_bad_csv_before_running(tmp_path, capfd):
    marker = tmp_path / "ran"
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("name\nx\n")
    command = f"{sys.executable} -c \"open('{marker}', 'w')\""
    code = main(["logitsdump", "--exec", command, "--bad-case-result", str(csv_path), "--any-command"])
    assert code == 2
    assert "no 'key' column" in capfd.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_logitsdump_token_range_must_be_positive(tmp_path, capfd, value):
    with pytest.raises(SystemExit) as caught:
        main(["logitsdump", "--exec", "torchrun x.py", "-bcr", "b.csv", "--token-range", value])
    assert caught.value.code == 2
    assert "must be an integer > 0" in capfd.readouterr().err
