"""Plain tensor files: a single file or a folder tree keyed by relative path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dump_trees import atb_bin, save_pth, tensor_for
from safetensors.torch import save_file

from pytest_llmprec.dumps import load_dump
from pytest_llmprec.errors import DumpFormatError


@pytest.fixture
def tensor_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tensors_out"
    save_pth(folder / "a.pt")
    (folder / "b").mkdir()
    np.save(folder / "b" / "c.npy", np.arange(4, dtype=np.float32))
    np.save(folder / "layer10.npy", np.zeros(2, dtype=np.float16))
    np.save(folder / "layer2.npy", np.ones(2, dtype=np.float16))
    np.savez(folder / "arr.npz", first=np.arange(3), second=np.arange(5.0))
    save_file({"w": torch.ones(2, 2), "v": torch.zeros(3)}, str(folder / "weights.safetensors"))
    (folder / "x.bin").write_bytes(atb_bin(np.array([[1.0, 2.0]], dtype=np.float16)))
    (folder / "README.txt").write_text("not a tensor")
    return folder


def test_folder_of_tensor_files(tensor_folder: Path) -> None:
    dump = load_dump(tensor_folder)
    assert dump.kind == "files"
    assert dump.problems == []
    keys = [(r.node, r.leaf, r.member) for r in dump.records]
    assert keys[:3] == [("a", "tensor", None), ("arr", "first", "first"), ("arr", "second", "second")]
    assert keys[3:6] == [("b/c", "tensor", None), ("layer2", "tensor", None), ("layer10", "tensor", None)]
    assert sorted(keys[6:8]) == [("weights", "v", "v"), ("weights", "w", "w")]
    assert keys[8:] == [("x", "tensor", None)]
    assert {(r.token, r.role, r.rank) for r in dump.records} == {(0, "tensor", None)}
    assert [r.order for r in dump.records] == list(range(9))


def test_loading_records_back(tensor_folder: Path) -> None:
    records = {(r.node, r.leaf): r for r in load_dump(tensor_folder).records}
    assert torch.equal(records[("a", "tensor")].load(), tensor_for(str(tensor_folder / "a.pt")))
    assert torch.equal(records[("arr", "second")].load(), torch.arange(5.0, dtype=torch.float64))
    assert torch.equal(records[("weights", "w")].load(), torch.ones(2, 2))
    assert torch.equal(records[("x", "tensor")].load(), torch.tensor([[1.0, 2.0]], dtype=torch.float16))


def test_single_file(tensor_folder: Path) -> None:
    dump = load_dump(tensor_folder / "b" / "c.npy")
    assert dump.kind == "files"
    assert [(r.node, r.leaf) for r in dump.records] == [("c", "tensor")]
    assert torch.equal(dump.records[0].load(), torch.arange(4, dtype=torch.float32))


def test_same_stem_and_broken_container_are_problems(tensor_folder: Path) -> None:
    np.save(tensor_folder / "a.npy", np.zeros(1))
    (tensor_folder / "broken.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    dump = load_dump(tensor_folder, kind="files")
    messages = {Path(p.path).name: p.message for p in dump.problems}
    assert messages["a.pt"] == f"same name as {tensor_folder / 'a.npy'} without the extension, ignored"
    assert "header length" in messages["broken.safetensors"]
    assert [r.path for r in dump.records if r.node == "a"] == [str(tensor_folder / "a.npy")]


def test_folder_without_tensor_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DumpFormatError, match="no files dump here"):
        load_dump(tmp_path, kind="files")
