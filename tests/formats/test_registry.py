"""Format detection by extension and content, and the package-level API."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import pytest_llmprec
from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import detect_format, load_tensor, probe_tensor, save_atb_bin, write_ge_dump


def write_each_format(folder, name_of):
    """One file per format holding ``arange(6)`` as float32 (shape 2x3), named by ``name_of(kind)``."""
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    paths = {kind: folder / name_of(kind) for kind in ("atb", "ge", "torch", "npy", "npz", "safetensors")}
    save_atb_bin(tensor, paths["atb"])
    write_ge_dump(paths["ge"], inputs=[], outputs=[tensor])
    torch.save(tensor, paths["torch"])
    with open(paths["npy"], "wb") as handle:
        np.save(handle, tensor.numpy())
    with open(paths["npz"], "wb") as handle:
        np.savez(handle, x=tensor.numpy())
    save_file({"x": tensor}, paths["safetensors"])
    return paths


EXTENSIONS = {
    "atb": ".bin",
    "ge": "",
    "torch": ".pt",
    "npy": ".npy",
    "npz": ".npz",
    "safetensors": ".safetensors",
}


@pytest.mark.parametrize("named", ["with extension", "without extension"])
def test_every_format_is_detected_and_loaded(tmp_path, named):
    if named == "with extension":
        paths = write_each_format(
            tmp_path,
            lambda kind: f"Add.Add_1.2.3.4{EXTENSIONS[kind]}" if kind == "ge" else f"t{EXTENSIONS[kind]}",
        )
    else:
        paths = write_each_format(tmp_path, lambda kind: f"{kind}_data")
    for kind, path in paths.items():
        assert detect_format(path) == kind, path
        assert load_tensor(path).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], kind
        info = probe_tensor(path)
        assert (info.dtype, info.shape) == (torch.float32, (2, 3)), kind


def test_a_bin_file_holding_a_torch_checkpoint(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.ones(2)}, path)
    assert detect_format(path) == "torch"
    assert load_tensor(path, member="w").tolist() == [1.0, 1.0]


def test_legacy_pickle_without_extension(tmp_path):
    path = tmp_path / "logits"
    torch.save(torch.ones(2), path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "torch"


def test_unknown_content_without_extension(tmp_path):
    path = tmp_path / "notes"
    path.write_bytes(pickle.dumps("text", protocol=0))
    with pytest.raises(DumpFormatError, match="unrecognised tensor file format"):
        load_tensor(path)


def test_original_shape_only_for_atb(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros(4))
    with pytest.raises(ValueError, match="original_shape applies to ATB"):
        load_tensor(path, original_shape=(2, 2))


def test_member_on_a_single_array_file(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros(4))
    with pytest.raises(DumpFormatError, match="single tensor"):
        probe_tensor(path, member="x")


def test_package_level_exports(tmp_path):
    from pytest_llmprec import formats

    path = tmp_path / "t.bin"
    formats.save_atb_bin(torch.ones(2), path)
    assert pytest_llmprec.load_tensor(path).tolist() == [1.0, 1.0]
    assert pytest_llmprec.probe_tensor(path) == formats.TensorInfo(torch.float32, (2,), None)
    assert formats.list_members(path) == []
    assert "save_atb_bin" not in pytest_llmprec.__all__  # writers live in formats, not the root


def test_importing_the_package_does_not_import_torch():
    code = "import sys, pytest_llmprec; "
    code += "assert 'load_tensor' in dir(pytest_llmprec); assert 'torch' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(Path(pytest_llmprec.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_mapped_tensors_keep_no_file_descriptor_open(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.arange(1000, dtype=np.float32))
    before = len(os.listdir("/proc/self/fd"))
    tensors = [load_tensor(path) for _ in range(100)]
    assert len(os.listdir("/proc/self/fd")) - before < 10
    assert all(t[999].item() == 999.0 for t in tensors)
