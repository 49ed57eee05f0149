"""The manual dump (dump_data + metadata.json) and the per-token logits dump files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dump_trees import save_pth, tensor_for, write_json

from pytest_llmprec.dumps import load_dump
from pytest_llmprec.dumps.logits import parse_logits_name
from pytest_llmprec.errors import DumpFormatError


def test_manual_records_and_my_paths(manual_dump: Path, tmp_path: Path) -> None:
    dump = load_dump(manual_dump)
    assert dump.kind == "manual"
    assert dump.problems == []
    assert [(r.token, r.node, r.leaf, r.role, r.rank, r.order) for r in dump.records] == [
        (0, "mlp_out", "tensor", "tensor", 1, 0),
        (0, "attn_out", "tensor", "tensor", 1, 1),
        (2, "attn_out", "tensor", "tensor", 1, 2),
    ]
    assert dump.info["my_paths"] == {
        (0, "mlp_out"): str(tmp_path / "mine" / "mlp_out_0.npy"),
        (0, "attn_out"): str(tmp_path / "mine" / "attn_out_0.npy"),
        (2, "attn_out"): str(tmp_path / "mine" / "attn_out_2.npy"),
    }
    record = dump.records[2]
    assert torch.equal(record.load(), tensor_for(record.path))


@pytest.mark.parametrize(
    ("inner", "pinned"), [("4242_1", None), ("4242_1/golden_tensor", None), ("4242_1/golden_tensor/2", 2)]
)
def test_manual_detected_from_inner_folders(manual_dump: Path, inner: str, pinned: int | None) -> None:
    dump = load_dump(manual_dump / inner)
    assert dump.kind == "manual"
    assert dump.info.get("pinned_token") == pinned
    assert dump.tokens() == ([0, 2] if pinned is None else [pinned])
    assert set(dump.info["my_paths"]) == {(r.token, r.node) for r in dump.records}


def test_manual_missing_files_are_problems(manual_dump: Path, tmp_path: Path) -> None:
    (tmp_path / "mine" / "attn_out_2.npy").unlink()
    (manual_dump / "4242_1/golden_tensor/0/mlp_out_tensor.pth").unlink()
    dump = load_dump(manual_dump, kind="manual")
    assert [(r.token, r.node) for r in dump.records] == [(0, "attn_out"), (2, "attn_out")]
    assert (2, "attn_out") not in dump.info["my_paths"]
    messages = sorted(p.message for p in dump.problems)
    assert messages == [
        "golden tensor of 'mlp_out' token 0 is missing",
        "my data of 'attn_out' token 2 does not exist",
    ]


def test_manual_relative_my_path_is_taken_from_the_metadata_folder(manual_dump: Path) -> None:
    golden = manual_dump / "4242_1" / "golden_tensor"
    np.save(golden / "mine.npy", np.zeros(3, dtype=np.float32))
    write_json(golden / "metadata.json", {"mlp_out": {"0": ["ignored", "mine.npy"]}})
    dump = load_dump(manual_dump, kind="manual")
    assert dump.info["my_paths"] == {(0, "mlp_out"): str(golden / "mine.npy")}
    assert dump.problems == []


def test_manual_cpu_device_and_broken_metadata(tmp_path: Path) -> None:
    golden = tmp_path / "msit_dump_20240102_030405" / "99_-1" / "golden_tensor"
    save_pth(golden / "0" / "x_tensor.pth")
    (golden / "metadata.json").write_text("[1, 2")
    dump = load_dump(tmp_path / "msit_dump_20240102_030405")
    assert [(r.node, r.rank) for r in dump.records] == [("x", None)]
    assert dump.info["my_paths"] == {}
    assert dump.problems[0].message.startswith("broken JSON")


def test_not_a_manual_dump(tmp_path: Path) -> None:
    with pytest.raises(DumpFormatError, match="no manual dump here"):
        load_dump(tmp_path, kind="manual")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("logits_dev.jsonl_1352_0.pth", ("dev.jsonl_1352", 0)),
        ("logits_ceval_3_17.pth", ("ceval_3", 17)),
        ("logits_humaneval_x_python_123_4.pth", ("python/123", 4)),
        ("logits_humanevalx_cpp_7_12.pth", ("cpp/7", 12)),
        ("logits_humanevalx_go_only_0.pth", "missing_digits_after_go"),
        ("logits_dev_a_b.pth", "invalid_format_a_b"),
        ("logits_5.pth", "invalid logits file name"),
        ("scores_1_2.pth", "invalid logits file name"),
    ],
)
def test_logits_name_parsing(name: str, expected: object) -> None:
    assert parse_logits_name(name) == expected


def test_logits_folder(tmp_path: Path) -> None:
    folder = tmp_path / "logits"
    for name in ("logits_dev.jsonl_1352_10.pth", "logits_dev.jsonl_1352_2.pth", "logits_dev.jsonl_7_2.pth"):
        save_pth(folder / name)
    save_pth(folder / "logits_dev.jsonl_x_y.pth")
    save_pth(folder / "nested" / "logits_dev.jsonl_1_0.pth")
    dump = load_dump(folder)
    assert dump.kind == "logits"
    assert [(r.token, r.node, r.leaf, r.order) for r in dump.records] == [
        (2, "dev.jsonl_7", "logits", 0),
        (2, "dev.jsonl_1352", "logits", 1),
        (10, "dev.jsonl_1352", "logits", 2),
    ]
    assert [(Path(p.path).name, p.message) for p in dump.problems] == [
        ("logits_dev.jsonl_x_y.pth", "invalid_format_x_y")
    ]
    record = dump.records[2]
    assert torch.equal(record.load(), tensor_for(record.path))
    single = load_dump(folder / "logits_dev.jsonl_7_2.pth")
    assert (single.kind, [r.node for r in single.records]) == ("logits", ["dev.jsonl_7"])


def test_not_a_logits_dump(tmp_path: Path) -> None:
    with pytest.raises(DumpFormatError, match="no logits dump here"):
        load_dump(tmp_path, kind="logits")
