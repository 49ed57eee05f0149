"""dump_data: golden tensors and metadata.json (msit-spec §2.4), every token kept."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch
from capture_helpers import hidden_files, load

from pytest_llmprec import dump_data
from pytest_llmprec.errors import DumpFormatError


@pytest.fixture
def my_file(tmp_path):
    path = tmp_path / "my" / "attn_out.npy"
    path.parent.mkdir()
    path.write_bytes(b"\x93NUMPY")
    return path


def test_dump_data_writes_golden_tensors_and_keeps_every_token(tmp_path, my_file):
    out = tmp_path / "out"
    tensors = {(token, data): torch.randn(2, 3) for token in (0, 1) for data in (4, 9)}
    for (token, data), tensor in tensors.items():
        dump_data(token, data, tensor, str(my_file), output_path=str(out))
    (root,) = out.iterdir()
    assert re.fullmatch(r"msit_dump_\d{8}_\d{6}", root.name)
    golden = root / f"{os.getpid()}_-1" / "golden_tensor"
    metadata = json.loads((golden / "metadata.json").read_text())
    assert metadata == {
        str(data): {
            str(token): [str(golden / str(token) / f"{data}_tensor.pth"), str(my_file)] for token in (0, 1)
        }
        for data in (4, 9)
    }
    for (token, data), tensor in tensors.items():
        assert torch.equal(load(golden / str(token) / f"{data}_tensor.pth"), tensor)
    assert hidden_files(tmp_path) == []


def test_dump_data_saves_a_compact_cpu_copy_of_a_view(tmp_path, my_file):
    base = torch.arange(1000.0)
    path = dump_data(0, 1, base[10:13], my_file, output_path=tmp_path)
    saved = load(path)
    assert torch.equal(saved, torch.tensor([10.0, 11.0, 12.0]))
    assert saved.untyped_storage().nbytes() == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, torch.ones(1)), "token_id must be an int >= 0"),
        ((0, -1, torch.ones(1)), "data_id must be an int >= 0"),
        ((0, True, torch.ones(1)), "data_id must be an int >= 0"),
        ((0, 0, [1.0]), "golden_data must be a torch.Tensor"),
    ],
)
def test_dump_data_rejects_bad_arguments(tmp_path, my_file, args, message):
    with pytest.raises(ValueError, match=message):
        dump_data(*args, my_file, output_path=tmp_path)
    assert list(tmp_path.glob("msit_dump_*")) == []


def test_dump_data_requires_a_readable_my_path(tmp_path):
    with pytest.raises(ValueError, match="my_path must be"):
        dump_data(0, 0, torch.ones(1), "", output_path=tmp_path)
    with pytest.raises(ValueError, match="is not a readable file"):
        dump_data(0, 0, torch.ones(1), tmp_path / "absent.bin", output_path=tmp_path)
    with pytest.raises(ValueError, match="is not a readable file"):
        dump_data(0, 0, torch.ones(1), tmp_path, output_path=tmp_path)


def test_dump_data_refuses_a_corrupt_metadata_file(tmp_path, my_file):
    path = dump_data(0, 0, torch.ones(1), my_file, output_path=tmp_path / "out")
    metadata = os.path.join(os.path.dirname(os.path.dirname(path)), "metadata.json")
    with open(metadata, "w") as handle:
        handle.write("{truncated")
    with pytest.raises(DumpFormatError, match="cannot update the manual dump index") as caught:
        dump_data(1, 0, torch.ones(1), my_file, output_path=tmp_path / "out")
    assert caught.value.path == metadata
