"""safetensors files written by the safetensors library, read by our own parser."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import TensorInfo, detect_format, list_members, load_tensor, probe_tensor

SAFETENSORS_DTYPES = [
    torch.float64,
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.float8_e4m3fnuz,
    torch.float8_e5m2fnuz,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.uint16,
    torch.uint32,
    torch.uint64,
    torch.bool,
    torch.complex64,
]


@pytest.mark.parametrize("dtype", SAFETENSORS_DTYPES, ids=str)
def test_round_trip_every_dtype(tmp_path, make_sample, same_bits, dtype):
    tensor = make_sample(dtype, (2, 3, 5))
    path = tmp_path / "model.safetensors"
    save_file({"x": tensor}, path)
    assert same_bits(load_tensor(path), tensor)
    assert probe_tensor(path) == TensorInfo(dtype, (2, 3, 5), None)


def test_members_metadata_and_scalars(tmp_path, make_sample, same_bits):
    tensors = {
        "model.embed.weight": make_sample(torch.bfloat16, (8, 4)),
        "model.norm.weight": make_sample(torch.float32, (4,)),
        "scale": torch.tensor(0.5),
        "empty": torch.zeros(0, 3, dtype=torch.int8),
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, path, metadata={"format": "pt"})
    assert sorted(list_members(path)) == sorted(tensors)
    for name, tensor in tensors.items():
        assert same_bits(load_tensor(path, member=name), tensor)
    with pytest.raises(DumpFormatError, match="holds 4 tensors; choose a member"):
        load_tensor(path)
    with pytest.raises(DumpFormatError, match="has no member 'lm_head'"):
        load_tensor(path, member="lm_head")


def test_payload_is_memory_mapped_not_read(tmp_path, mapped_from):
    path = tmp_path / "big.safetensors"
    save_file({"a": torch.ones(3), "b": torch.arange(100_000, dtype=torch.float32)}, path)
    tensor = load_tensor(path, member="b")
    assert mapped_from(tensor, path)
    assert tensor[-1].item() == 99_999.0


def test_detected_without_extension(tmp_path):
    path = tmp_path / "weights"
    save_file({"x": torch.ones(2)}, path)
    assert detect_format(path) == "safetensors"
    assert load_tensor(path).tolist() == [1.0, 1.0]
