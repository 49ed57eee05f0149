"""load_dump: layout detection, forced kinds, failures, and problems that do not lose the dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from dump_trees import save_pth, write_json
from safetensors.torch import save_file

import pytest_llmprec
from pytest_llmprec.dumps import detect_kind, dump_kinds, load_dump, walk
from pytest_llmprec.errors import DumpFormatError


def test_public_export(bloom_torch_dump: Path) -> None:
    dump = pytest_llmprec.load_dump(bloom_torch_dump)
    assert isinstance(dump, pytest_llmprec.Dump)
    assert isinstance(dump.records[0], pytest_llmprec.TensorRecord)


def test_detect_kind(bloom_torch_dump: Path, bloom_atb_dump: Path, tmp_path: Path) -> None:
    assert detect_kind(bloom_torch_dump) == "torch"
    assert detect_kind(bloom_atb_dump / "tensors") == "atb"
    assert detect_kind(bloom_torch_dump / "torch_tensors/npu3_4242/0/root/output.pth") == "files"
    (tmp_path / "empty").mkdir()
    assert detect_kind(tmp_path / "empty") is None


def test_forced_kind(bloom_torch_dump: Path) -> None:
    dump = load_dump(bloom_torch_dump / "torch_tensors/npu3_4242/0", kind="files")
    assert dump.kind == "files"
    assert dump.records[0].node == "root/input_0"
    with pytest.raises(DumpFormatError, match="looked for: ATB dump") as info:
        load_dump(bloom_torch_dump, kind="atb")
    assert info.value.path == str(bloom_torch_dump)


def test_unknown_kind_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dump kind 'tensorflow'"):
        load_dump(tmp_path, kind="tensorflow")
    with pytest.raises(DumpFormatError, match="no such file or folder"):
        load_dump(tmp_path / "missing")


def test_nothing_recognisable_lists_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DumpFormatError) as info:
        load_dump(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: no recognisable dump layout; looked for: ")
    assert len(message.split("looked for: ")[1].split("; ")) == len(dump_kinds())
    assert "model_tree.json" in message and "dump.json" in message


def test_unreadable_folder_is_a_problem_and_the_rest_loads(bloom_torch_dump: Path, monkeypatch) -> None:
    blocked = str(bloom_torch_dump / "torch_tensors/npu3_4242/1")
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    dump = load_dump(bloom_torch_dump)
    assert [(p.path, p.message) for p in dump.problems] == [
        (blocked, "cannot list folder: Permission denied")
    ]
    assert dump.tokens() == [0, 2, 10, "weights"]


def test_oversized_json_is_not_parsed(bloom_torch_dump: Path, monkeypatch) -> None:
    monkeypatch.setattr(walk, "JSON_SIZE_LIMIT", 100)
    dump = load_dump(bloom_torch_dump)
    assert len(dump.problems) == 1
    assert "exceeds the 100-byte limit" in dump.problems[0].message
    assert {r.node_type for r in dump.records} == {""}


def test_json_file_linked_out_of_the_root_is_not_read(tmp_path: Path) -> None:
    outside = write_json(tmp_path / "elsewhere" / "model_tree.json", {"name": "root", "type": "Secret"})
    device = tmp_path / "msit_dump_20240102_030405" / "torch_tensors" / "npu0_1"
    save_pth(device / "0" / "root" / "output.pth")
    (device / "model_tree.json").symlink_to(outside)
    dump = load_dump(device)
    assert [r.node_type for r in dump.records] == [""]
    assert "outside the dump root" in dump.problems[0].message


def test_directory_named_like_a_file(tmp_path: Path) -> None:
    device = tmp_path / "torch_tensors" / "npu0_1"
    (device / "model_tree.json").mkdir(parents=True)
    save_pth(device / "0" / "root" / "output.pth")
    (device / "0" / "root" / "output_1.pth").mkdir()
    dump = load_dump(device)
    assert [r.leaf for r in dump.records] == ["output"]
    names = sorted(Path(p.path).name for p in dump.problems)
    assert names == ["model_tree.json"]


def test_indexing_does_not_import_torch(
    bloom_torch_dump: Path,
    bloom_atb_dump: Path,
    ge_dump: Path,
    msprobe_dump: Path,
    manual_dump: Path,
    tmp_path: Path,
) -> None:
    """Every layout indexes without torch, and only GE dumps (whose headers are protobuf) import protobuf."""
    assert bloom_torch_dump == bloom_atb_dump  # one msit_dump folder holding both dumps: torch is found first
    logits = tmp_path / "logits"
    save_pth(logits / "logits_dev.jsonl_7_0.pth")
    fx = tmp_path / "msit_fx_dump" / "worldsize1_global_rank0" / "graph_1" / "0"
    fx.mkdir(parents=True)
    np.save(fx / "add_1-aten.add.Tensor.OUTPUT.0.1700000000.npy", np.zeros(3, dtype=np.float32))
    plain = tmp_path / "plain"
    plain.mkdir()
    np.save(plain / "a.npy", np.zeros(3, dtype=np.float32))
    np.savez(plain / "b.npz", x=np.zeros(2), y=np.ones(2))
    save_file({"w": torch.zeros(2)}, str(plain / "c.safetensors"))
    cases = [
        (bloom_torch_dump, "torch", 119),
        (bloom_atb_dump, "atb", 60),
        (msprobe_dump, "msprobe", 72),
        (manual_dump, "manual", 3),
        (logits, "logits", 1),
        (fx.parents[2], "fx", 1),
        (plain, "files", 4),
        (ge_dump, "ge", 21),
    ]
    lines = ["import sys, pytest_llmprec"]
    for path, kind, count in cases:
        lines.append(
            f"assert len(pytest_llmprec.load_dump({str(path)!r}, kind={kind!r})) == {count}, {kind!r}"
        )
        if kind != "ge":
            lines.append(f"assert 'google.protobuf' not in sys.modules, {kind!r}")
        lines.append(f"assert 'torch' not in sys.modules, {kind!r}")
    code = "\n".join(lines)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _move_out_and_link(folder: Path, outside: Path) -> None:
    folder.rename(outside)
    folder.symlink_to(outside, target_is_directory=True)


def test_fixed_name_folders_linked_out_of_the_root_are_not_followed(
    bloom_torch_dump: Path, bloom_atb_dump: Path, tmp_path: Path
) -> None:
    _move_out_and_link(bloom_atb_dump / "tensors", tmp_path / "atb_tensors_elsewhere")
    _move_out_and_link(bloom_torch_dump / "torch_tensors", tmp_path / "torch_tensors_elsewhere")
    for kind in ("atb", "torch"):
        dump = load_dump(bloom_atb_dump, kind=kind)
        assert dump.records == []
        assert [p.message for p in dump.problems] == [
            "folder is outside the dump root (symbolic link), not followed"
        ]


def test_msprobe_tensor_folder_linked_out_of_the_root(tmp_path: Path) -> None:
    rank = tmp_path / "dump" / "step0" / "rank0"
    save_pth(tmp_path / "elsewhere" / "Functional.relu.0.forward.output.0.pt")
    entry = {"type": "torch.Tensor", "dtype": "torch.float32", "shape": [2, 3]}
    entry["data_name"] = "Functional.relu.0.forward.output.0.pt"
    write_json(
        rank / "dump.json", {"task": "tensor", "data": {"Functional.relu.0.forward": {"output": [entry]}}}
    )
    (rank / "dump_tensor_data").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    dump = load_dump(tmp_path / "dump")
    assert dump.records == []
    outside = "folder is outside the dump root (symbolic link), not followed"
    assert [p.message for p in dump.problems] == [
        outside,
        "Functional.relu.0.forward output.0: tensor file 'Functional.relu.0.forward.output.0.pt' not found",
    ]
