"""ATB tensor .bin files: the header strings of the spec, every dtype, stats files, NZ conversion."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import torch

from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import (
    DumpFormatWarning,
    atb_header,
    list_members,
    load_tensor,
    probe_tensor,
    read_atb_bin,
    read_atb_stats,
    save_atb_bin,
)

SPEC_HEADER = (
    b"$Version=1.0\n$Object.Count=1\n$Object.Length=16\n"
    b"format=2\ndtype=1\ndims=2,4\n$Object.data=0,16\n$End=1\n"
)
FP16_VALUES = [0.5, -1.0, 2.0, 65504.0, -0.0, 1e-3, 3.0, -7.25]


def fp16_payload() -> bytes:
    return np.array(FP16_VALUES, dtype="<f2").tobytes()


def test_spec_header_fp16_2x4_reads_values(tmp_path):
    path = tmp_path / "outtensor0.bin"
    path.write_bytes(SPEC_HEADER + fp16_payload())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atb = read_atb_bin(path)
    assert atb.tensor.dtype == torch.float16
    assert atb.tensor.shape == (2, 4)
    assert atb.tensor.reshape(-1).tolist() == [float(np.float16(v)) for v in FP16_VALUES]
    assert (atb.dtype_code, atb.format_code, atb.format_name, atb.dims) == (1, 2, "ND", (2, 4))
    assert atb.attributes["$Version"] == "1.0"
    assert atb.attributes["$Object.data"] == "0,16"


def test_save_writes_the_spec_header_byte_for_byte(tmp_path):
    path = tmp_path / "t.bin"
    tensor = torch.tensor(FP16_VALUES, dtype=torch.float16).reshape(2, 4)
    save_atb_bin(tensor, path)
    assert path.read_bytes() == SPEC_HEADER + fp16_payload()


def test_save_with_length_in_elements_writes_the_st_fixture_header(tmp_path):
    path = tmp_path / "t.bin"
    save_atb_bin(torch.zeros(2, 4, dtype=torch.float16), path, length_in="elements")
    assert path.read_bytes()[:-16] == SPEC_HEADER.replace(b"=16", b"=8").replace(b"0,16", b"0,8")


def test_st_fixture_with_length_in_elements_is_accepted_silently(tmp_path):
    path = tmp_path / "intensor0.bin"
    header = (
        b"$Version=1.0\n$Object.Count=1\n$Object.Length=8\n"
        b"format=2\ndtype=1\ndims=2,4\n$Object.data=0,8\n$End=1\n"
    )
    path.write_bytes(header + fp16_payload())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = load_tensor(path)
    assert tensor.reshape(-1).tolist() == [float(np.float16(v)) for v in FP16_VALUES]


def test_ut_fixture_1x1x2(tmp_path):
    path = tmp_path / "outtensor0.bin"
    header = (
        b"$Version=1.0\n$Object.Count=1\n$Object.Length=4\nformat=2\ndtype=1\ndims=1,1,2\n"
        b"$Object.data=0,4\n$End=1\n"
    )
    path.write_bytes(header + np.array([1.5, -2.0], dtype="<f2").tobytes())
    tensor = load_tensor(path)
    assert tensor.shape == (1, 1, 2)
    assert tensor.reshape(-1).tolist() == [1.5, -2.0]


def test_minimal_msit_writer_header(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"dtype=3\ndims=3\n$End=1\n" + struct.pack("<3i", 7, -1, 2147483647))
    atb = read_atb_bin(path)
    assert atb.tensor.tolist() == [7, -1, 2147483647]
    assert atb.tensor.dtype == torch.int32
    assert atb.format_code == 2


def test_length_that_matches_nothing_warns_and_uses_the_file_size(tmp_path):
    path = tmp_path / "x.bin"
    header = SPEC_HEADER.replace(b"$Object.Length=16", b"$Object.Length=99")
    path.write_bytes(header + fp16_payload())
    with pytest.warns(DumpFormatWarning, match=r"\$Object.Length declares '99'"):
        tensor = load_tensor(path)
    assert tensor.shape == (2, 4)


def test_object_data_length_that_matches_nothing_warns(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(SPEC_HEADER.replace(b"0,16", b"0,3") + fp16_payload())
    with pytest.warns(DumpFormatWarning, match=r"\$Object.data declares '3'"):
        load_tensor(path)


def test_scalar_with_empty_dims(tmp_path):
    path = tmp_path / "s.bin"
    path.write_bytes(b"dtype=0\ndims=\n$End=1\n" + struct.pack("<f", 2.5))
    tensor = load_tensor(path)
    assert tensor.shape == ()
    assert tensor.item() == 2.5


def test_empty_tensor(tmp_path):
    path = tmp_path / "e.bin"
    path.write_bytes(b"dtype=0\ndims=0,4\n$End=1\n")
    assert load_tensor(path).shape == (0, 4)


# Exact little-endian byte patterns of one known value per aclDataType code, written by hand.
KNOWN_BYTES = [
    (0, b"\x00\x00\xc0\x3f", torch.float32, 1.5),
    (1, b"\x00\x3e", torch.float16, 1.5),
    (2, b"\xfe", torch.int8, -2),
    (3, b"\xfe\xff\xff\xff", torch.int32, -2),
    (4, b"\xfe", torch.uint8, 254),
    (6, b"\xfe\xff", torch.int16, -2),
    (7, b"\xfe\xff", torch.uint16, 65534),
    (8, b"\xfe\xff\xff\xff", torch.uint32, 4294967294),
    (9, b"\xfe" + b"\xff" * 7, torch.int64, -2),
    (10, b"\xff" * 8, torch.uint64, 18446744073709551615),
    (11, b"\x00\x00\x00\x00\x00\x00\xf8\x3f", torch.float64, 1.5),
    (12, b"\x01", torch.bool, True),
    (27, b"\xc0\x3f", torch.bfloat16, 1.5),
]


@pytest.mark.parametrize(
    ("code", "payload", "dtype", "value"), KNOWN_BYTES, ids=[str(c[0]) for c in KNOWN_BYTES]
)
def test_every_dtype_code_decodes_known_bytes(tmp_path, code, payload, dtype, value):
    path = tmp_path / "v.bin"
    path.write_bytes(f"dtype={code}\ndims=1\n$End=1\n".encode() + payload)
    tensor = load_tensor(path)
    assert tensor.dtype == dtype
    assert tensor.tolist() == [value]


def test_complex64_known_bytes(tmp_path):
    path = tmp_path / "c.bin"
    path.write_bytes(b"dtype=16\ndims=1\n$End=1\n" + struct.pack("<2f", 1.5, -2.0))
    assert load_tensor(path).tolist() == [complex(1.5, -2.0)]


def test_int4_unpacks_low_nibble_first_with_sign(tmp_path):
    path = tmp_path / "q.bin"
    # 0x8F: low nibble 0xF = -1, high nibble 0x8 = -8; 0x71: 1, 7; 0x03: 3 then the padding nibble.
    path.write_bytes(b"dtype=29\ndims=5\n$End=1\n" + bytes([0x8F, 0x71, 0x03]))
    tensor = load_tensor(path)
    assert tensor.dtype == torch.int8
    assert tensor.tolist() == [-1, -8, 1, 7, 3]


def test_save_int4_packs_two_values_per_byte(tmp_path):
    path = tmp_path / "q.bin"
    save_atb_bin(torch.tensor([-1, -8, 1, 7, 3], dtype=torch.int8), path, dtype_code=29)
    assert path.read_bytes().endswith(b"dims=5\n$Object.data=0,3\n$End=1\n" + bytes([0x8F, 0x71, 0x03]))


ROUND_TRIP_DTYPES = [
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float64,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.uint16,
    torch.uint32,
    torch.uint64,
    torch.bool,
    torch.complex64,
    torch.complex128,
]


@pytest.mark.parametrize("length_in", ["bytes", "elements"])
@pytest.mark.parametrize("dtype", ROUND_TRIP_DTYPES, ids=str)
def test_round_trip_every_dtype(tmp_path, make_sample, same_bits, dtype, length_in):
    tensor = make_sample(dtype, (3, 5, 2))
    path = tmp_path / "t.bin"
    save_atb_bin(tensor, path, length_in=length_in)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_tensor(path)
    assert same_bits(loaded, tensor)
    assert probe_tensor(path).dtype == dtype
    assert probe_tensor(path).shape == (3, 5, 2)


@pytest.mark.parametrize("count", [1, 6, 7])
def test_round_trip_int4(tmp_path, count):
    values = torch.arange(count, dtype=torch.int8) % 16 - 8
    path = tmp_path / "q.bin"
    save_atb_bin(values, path, dtype_code=29)
    assert load_tensor(path).tolist() == values.tolist()
    assert (
        path.stat().st_size - len(path.read_bytes().split(b"$End=1\n")[0]) - len(b"$End=1\n")
        == (count + 1) // 2
    )


def test_save_refuses_int4_out_of_range(tmp_path):
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        save_atb_bin(torch.tensor([8], dtype=torch.int8), tmp_path / "q.bin", dtype_code=29)


def test_payload_is_memory_mapped(tmp_path, mapped_from):
    path = tmp_path / "t.bin"
    save_atb_bin(torch.arange(4096, dtype=torch.float16).reshape(64, 64), path)
    assert (path.read_bytes().index(b"$End=1\n") + 7) % 2 == 0  # the fp16 payload starts aligned
    tensor = load_tensor(path)
    assert mapped_from(tensor, path)
    tensor += 1  # copy-on-write: the file keeps its bytes
    assert load_tensor(path)[0, 1].item() == 1.0


def test_misaligned_payload_is_still_read_correctly(tmp_path):
    path = tmp_path / "t.bin"
    header = b"dtype=0\ndims=3\n$End=1\n"  # 22 bytes: float32 data start misaligned
    path.write_bytes(header + struct.pack("<3f", 1.0, 2.0, 3.0))
    assert load_tensor(path).tolist() == [1.0, 2.0, 3.0]


def test_stats_file(tmp_path):
    path = tmp_path / "outtensor0.bin"
    path.write_text("format=2\ndtype=1\ndims=2,4\nmax=3.5\nmin=-1.25\nmean=0.5\nl2norm=4.0\n$End=1\n")
    stats = read_atb_stats(path)
    assert stats == {
        "format": 2,
        "dtype": 1,
        "dims": (2, 4),
        "max": 3.5,
        "min": -1.25,
        "mean": 0.5,
        "l2norm": 4.0,
    }
    with pytest.raises(DumpFormatError, match=r"statistics only.*read_atb_stats") as info:
        load_tensor(path)
    assert "outtensor0.bin" in str(info.value)


def test_stats_file_without_end_warns(tmp_path):
    path = tmp_path / "s.bin"
    path.write_text("max=nan\nmin=-inf\nmean=0\nl2norm=1")
    with pytest.warns(DumpFormatWarning, match=r"no '\$End=1'"):
        stats = read_atb_stats(path)
    assert stats["min"] == float("-inf")
    assert stats["max"] != stats["max"]


def test_read_atb_stats_refuses_a_tensor_file(tmp_path):
    path = tmp_path / "t.bin"
    path.write_bytes(SPEC_HEADER + fp16_payload())
    with pytest.raises(DumpFormatError, match="holds tensor data"):
        read_atb_stats(path)


def nz_storage_by_hand(matrix: torch.Tensor, c0: int = 16) -> torch.Tensor:
    """FRACTAL_NZ storage [c1, rows padded to 16, c0] of a 2-D matrix, element by element."""
    rows, cols = matrix.shape
    c1, padded_rows = -(-cols // c0), -(-rows // 16) * 16
    storage = torch.zeros(1, c1, padded_rows, c0, dtype=matrix.dtype)
    for i in range(rows):
        for j in range(cols):
            storage[0, j // c0, i, j % c0] = matrix[i, j]
    return storage


def test_fractal_nz_to_nd_with_original_shape(tmp_path):
    matrix = torch.arange(5 * 20, dtype=torch.float16).reshape(5, 20)
    path = tmp_path / "w.bin"
    save_atb_bin(nz_storage_by_hand(matrix), path, format=29)
    raw = read_atb_bin(path)
    assert raw.format_name == "FRACTAL_NZ"
    assert raw.dims == (1, 2, 16, 16)
    assert raw.tensor.shape == (1, 2, 16, 16)
    assert probe_tensor(path).format == "FRACTAL_NZ"
    assert torch.equal(read_atb_bin(path, original_shape=(5, 20)).tensor, matrix)
    assert torch.equal(load_tensor(path, original_shape=[5, 20]), matrix)


def test_original_shape_that_does_not_fit_the_nz_storage(tmp_path):
    path = tmp_path / "w.bin"
    save_atb_bin(torch.zeros(1, 2, 16, 16, dtype=torch.float16), path, format=29)
    with pytest.raises(DumpFormatError, match="cannot hold original shape"):
        load_tensor(path, original_shape=(17, 20))


def test_original_shape_is_ignored_for_nd(tmp_path):
    path = tmp_path / "t.bin"
    save_atb_bin(torch.ones(2, 3), path)
    assert load_tensor(path, original_shape=(3, 2)).shape == (2, 3)


def test_member_on_a_single_tensor_file_is_an_error(tmp_path):
    path = tmp_path / "t.bin"
    save_atb_bin(torch.ones(2), path)
    assert list_members(path) == []
    with pytest.raises(DumpFormatError, match="single tensor"):
        load_tensor(path, member="0")


def test_header_without_extension_is_sniffed(tmp_path):
    path = tmp_path / "outtensor0"
    save_atb_bin(torch.arange(3, dtype=torch.int64), path)
    assert load_tensor(path).tolist() == [0, 1, 2]


def test_long_header_is_read_in_growing_blocks(tmp_path):
    path = tmp_path / "long.bin"
    attributes = "".join(f"attribute{i}=value{i}\n" for i in range(2000))  # about 40 KB of header
    path.write_bytes(f"$Version=1.0\n{attributes}dtype=2\ndims=2\n$End=1\n".encode() + b"\x05\xfb")
    atb = read_atb_bin(path)
    assert atb.tensor.tolist() == [5, -5]
    assert atb.attributes["attribute1999"] == "value1999"


def test_probe_reads_the_header_not_the_payload(tmp_path, monkeypatch):
    path = tmp_path / "big.bin"
    save_atb_bin(torch.zeros(1024, 1024), path)  # 4 MiB payload
    requested = []
    original = atb_header.read_bytes

    def counting(path, count, offset=0):
        requested.append(count)
        return original(path, count, offset)

    monkeypatch.setattr(atb_header, "read_bytes", counting)
    assert probe_tensor(path).shape == (1024, 1024)
    assert sum(requested) <= 4096


def test_stats_file_with_a_blank_line_after_end(tmp_path):
    path = tmp_path / "s.bin"
    path.write_text("max=1\nmin=0\nmean=0.5\nl2norm=2\n$End=1\n\n")
    assert read_atb_stats(path)["l2norm"] == 2.0
