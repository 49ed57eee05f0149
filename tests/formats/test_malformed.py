"""A corpus of malformed files: each must give a DumpFormatError naming the file and the problem.

Every case runs under a timer (a hang fails the test) and under tracemalloc (a size declared in a
header must be refused before anything of that size is allocated).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import load_tensor, read_atb_stats, read_ge_dump, save_atb_bin, write_ge_dump
from pytest_llmprec.formats.ge_dump_pb2 import DumpData

TIME_LIMIT_S = 10
ALLOCATION_LIMIT = 64 << 20


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], Path]
    phrase: str
    read: Callable[[Path], object] = load_tensor


def file(name: str, content: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content)
        return path

    return build


def ge_file(name: str, message: DumpData, segment: bytes = b"") -> Callable[[Path], Path]:
    header = message.SerializeToString()
    return file(name, struct.pack("<Q", len(header)) + header + segment)


def ge_message(data_type: int, shape: list[int], size: int, fmt: int = 2, original: list[int] | None = None):
    message = DumpData(op_name="op")
    item = message.output.add(data_type=data_type, format=fmt, size=size)
    item.shape.dim.extend(shape)
    item.original_shape.dim.extend(original or [])
    return message


def safetensors_file(name: str, header: bytes | dict, data: bytes = b"", length: int | None = None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return file(name, struct.pack("<Q", len(raw) if length is None else length) + raw + data)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz_with(name: str, members: dict[str, bytes], patch: Callable[[bytes], bytes] = lambda b: b):
    def build(folder: Path) -> Path:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for member, content in members.items():
                archive.writestr(member + ".npy", content)
        path = folder / name
        path.write_bytes(patch(buffer.getvalue()))
        return path

    return build


def central_size_lie(data: bytes) -> bytes:
    """Claim a 2 GiB uncompressed size in the central directory of a one-entry stored zip."""
    at = data.index(b"PK\x01\x02") + 24
    return data[:at] + struct.pack("<I", 0x7FFFFFFF) + data[at + 4 :]


def flip_last_data_byte(data: bytes) -> bytes:
    """Corrupt the stored payload of the first entry (the CRC no longer matches)."""
    at = data.index(b"PK\x01\x02") - 1
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def directory(folder: Path) -> Path:
    path = folder / "layer.bin"
    path.mkdir()
    return path


def fp16_header(dims: str, extra: str = "") -> bytes:
    return f"$Version=1.0\n$Object.Count=1\nformat=2\ndtype=1\ndims={dims}\n{extra}$End=1\n".encode()


class _MakesMarker:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def malicious_torch(name: str, legacy: bool) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        torch.save(
            [torch.ones(1), _MakesMarker(str(folder / "marker"))],
            path,
            _use_new_zipfile_serialization=not legacy,
        )
        return path

    return build


def malicious_pickle(folder: Path) -> Path:
    path = folder / "evil.pth"
    path.write_bytes(pickle.dumps(_MakesMarker(str(folder / "marker")), protocol=2))
    return path


def truncated_torch(folder: Path) -> Path:
    path = folder / "cut.pt"
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:700])
    return path


def saved_torch(name: str, obj: object) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        torch.save(obj, path)
        return path

    return build


def nz_atb(folder: Path) -> Path:
    path = folder / "weight.bin"
    save_atb_bin(torch.zeros(1, 2, 16, 16, dtype=torch.float16), path, format=29)
    return path


def ge_written(name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        write_ge_dump(path, inputs=[torch.ones(2)], outputs=[torch.ones(2)])
        return path

    return build


def safetensors_two_tensors(folder: Path) -> Path:
    path = folder / "two.safetensors"
    save_file({"a": torch.ones(2), "b": torch.ones(3)}, path)
    return path


GOOD_ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

CASES: dict[str, Case] = {
    # any format
    "empty file": Case(file("empty.bin", b""), "file is empty"),
    "directory as a file": Case(directory, "is a directory"),
    "missing file": Case(lambda folder: folder / "absent.npy", "no such file"),
    "unrecognised bytes": Case(file("blob", b"\x01\x02\x03 not a tensor"), "unrecognised tensor file format"),
    # ATB .bin
    "atb dims claim 1e15 elements": Case(
        file("huge.bin", fp16_header("1000000,1000000,1000") + bytes(16)), "truncated payload"
    ),
    "atb truncated payload": Case(
        file("cut.bin", fp16_header("2,4") + bytes(10)), "truncated payload: 10 bytes"
    ),
    "atb extra payload": Case(file("long.bin", fp16_header("2,4") + bytes(20)), "more than the 16 bytes"),
    "atb unknown dtype code": Case(
        file("d.bin", b"dtype=99\ndims=1\n$End=1\n\x00"), "unknown or unsupported dtype code 99"
    ),
    "atb string dtype": Case(file("s.bin", b"dtype=13\ndims=1\n$End=1\n\x00"), "unsupported dtype code 13"),
    "atb dtype not a number": Case(
        file("n.bin", b"dtype=fp16\ndims=1\n$End=1\n\x00\x00"), "is not an integer"
    ),
    "atb non-UTF-8 header": Case(file("u.bin", b"dtype=1\ndims=\xff\xfe\n$End=1\n"), "is not UTF-8 text"),
    "atb line without '='": Case(
        file("l.bin", b"$Version=1.0\ngarbage\n$End=1\n"), "is not a 'key=value' line"
    ),
    "atb missing $End": Case(file("e.bin", b"$Version=1.0\ndtype=1\ndims=2\n"), "no '$End=1' line"),
    "atb header never ends": Case(
        file("h.bin", b"key=" + b"v" * (2 << 20)), "no '$End=1' line within its first"
    ),
    "atb dims not integers": Case(
        file("x.bin", fp16_header("2,x")), "not a comma-separated list of integers"
    ),
    "atb negative dims": Case(file("neg.bin", fp16_header("-1,4")), "negative size"),
    "atb no dims": Case(file("nd.bin", b"dtype=1\n$End=1\n\x00\x00"), "no 'dims=' line"),
    "atb no dtype": Case(file("nt.bin", b"dims=1\n$End=1\n\x00\x00"), "no 'dtype=' line"),
    "atb two objects": Case(
        file("o.bin", b"$Object.Count=2\ndtype=2\ndims=1\n$End=1\n\x00"), "exactly one object"
    ),
    "atb stats loaded as a tensor": Case(
        file("outtensor0.bin", b"format=2\ndtype=1\ndims=2\nmax=1\nmin=0\nmean=0.5\nl2norm=1\n$End=1\n"),
        "statistics only",
    ),
    "atb stats value not a number": Case(
        file("st.bin", b"max=high\nmin=0\n$End=1\n"), "statistic max='high' is not a number", read_atb_stats
    ),
    "atb nz original shape too big": Case(
        nz_atb, "cannot hold original shape", lambda path: load_tensor(path, original_shape=(17, 20))
    ),
    # GE dumps
    "ge too short": Case(file("Add.Add_1.1.2.3", b"\x01\x00"), "too short for a GE dump", read_ge_dump),
    "ge header length beyond the file": Case(
        file("Add.Add_1.1.2.4", struct.pack("<Q", 1 << 40) + b"\x0a\x01x"),
        "GE header length 1099511627776 exceeds",
        read_ge_dump,
    ),
    "ge header not protobuf": Case(
        file("Add.Add_1.1.2.5", struct.pack("<Q", 4) + b"\xff\xff\xff\xff"),
        "does not parse as a DumpData",
        read_ge_dump,
    ),
    "ge sizes overrun the segment": Case(
        ge_file("Add.Add_1.1.2.6", ge_message(1, [250], 1000), bytes(10)),
        "overrun the data segment",
        read_ge_dump,
    ),
    "ge size does not match shape": Case(
        ge_file("Add.Add_1.1.2.7", ge_message(2, [2, 2], 6), bytes(6)), "holds 6 bytes, but shape (2, 2)"
    ),
    "ge shape claims 1e18 elements": Case(
        ge_file("Add.Add_1.1.2.8", ge_message(1, [10**9, 10**9], 8), bytes(8)), "needs 4000000000000000000"
    ),
    "ge unsupported data type": Case(
        ge_file("Add.Add_1.1.2.9", ge_message(13, [1], 1), bytes(1)), "unsupported data type code 13"
    ),
    "ge nz original shape too big": Case(
        ge_file("MatMul.mm.1.2.3", ge_message(2, [1, 1, 16, 16], 512, 29, [40, 8]), bytes(512)),
        "output.0: FRACTAL_NZ storage",
    ),
    "ge missing member": Case(
        ge_written("Add.Add_2.1.2.3"), "has no member 'output.3'", lambda p: load_tensor(p, member="output.3")
    ),
    # safetensors
    "safetensors too short": Case(file("s.safetensors", b"\x01\x02\x03"), "too short for a safetensors file"),
    "safetensors header length beyond the file": Case(
        safetensors_file("h.safetensors", {"x": GOOD_ENTRY}, bytes(8), length=1 << 50),
        "header length 1125899906842624 exceeds",
    ),
    "safetensors invalid JSON": Case(safetensors_file("j.safetensors", b'{"x": {'), "not valid JSON"),
    "safetensors non-UTF-8 header": Case(safetensors_file("u.safetensors", b'{"\xff": 1}'), "not valid JSON"),
    "safetensors header not an object": Case(
        safetensors_file("l.safetensors", b"[1, 2]"), "not a JSON object"
    ),
    "safetensors overlapping offsets": Case(
        safetensors_file(
            "o.safetensors",
            {"a": GOOD_ENTRY, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            bytes(12),
        ),
        "overlapping data_offsets",
    ),
    "safetensors offsets out of range": Case(
        safetensors_file(
            "r.safetensors", {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)
        ),
        "out of range",
    ),
    "safetensors unknown dtype": Case(
        safetensors_file(
            "d.safetensors", {"x": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, bytes(1)
        ),
        "unknown or unsupported dtype 'F4'",
    ),
    "safetensors shape does not match offsets": Case(
        safetensors_file(
            "m.safetensors", {"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)
        ),
        "data_offsets span 8 bytes, shape [3] needs 12",
    ),
    "safetensors shape claims 1e15 elements": Case(
        safetensors_file(
            "b.safetensors", {"x": {"dtype": "F32", "shape": [10**15], "data_offsets": [0, 8]}}, bytes(8)
        ),
        "needs 4000000000000000",
    ),
    "safetensors malformed entry": Case(
        safetensors_file(
            "e.safetensors", {"x": {"dtype": "F32", "shape": [2], "data_offsets": "0-8"}}, bytes(8)
        ),
        "are not two integers",
    ),
    "safetensors without member": Case(safetensors_two_tensors, "choose a member: a, b"),
    # NumPy
    "npy corrupt header": Case(
        file("c.npy", npy_bytes(np.zeros(2)).replace(b"'shape'", b"'shapX'")), "corrupt .npy header"
    ),
    "npy wrong magic": Case(file("m.npy", b"\x93NUMPX" + bytes(60)), "corrupt .npy header"),
    "npy object dtype": Case(
        file("o.npy", npy_bytes(np.array([None, 1], dtype=object))), "holds Python objects"
    ),
    "npy structured dtype": Case(
        file("s.npy", npy_bytes(np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]))), "has no torch equivalent"
    ),
    "npy truncated": Case(file("t.npy", npy_bytes(np.zeros(100))[:-8]), "truncated data"),
    "npy shape claims 1e15 elements": Case(
        file(
            "h.npy",
            npy_bytes(np.zeros(2)).replace(b"(2,)", b"(10**15,)".replace(b"10**15", b"1000000000000000")),
        ),
        "truncated data",
    ),
    "npy extra bytes": Case(file("x.npy", npy_bytes(np.zeros(2)) + b"junk"), "extra bytes after the data"),
    "npz not a zip": Case(file("n.npz", b"PK\x03\x04 but not really a zip"), "not a readable .npz"),
    "npz object member": Case(
        npz_with("o.npz", {"x": npy_bytes(np.array([None], dtype=object))}), "member x: holds Python objects"
    ),
    "npz member smaller than its header says": Case(
        npz_with("s.npz", {"x": npy_bytes(np.zeros(4))[:-8]}),
        "member x: shape (4,) of float64 needs 32 bytes",
    ),
    "npz declared size beyond its data": Case(
        npz_with("z.npz", {"x": npy_bytes(np.zeros(4))}, central_size_lie),
        "more than its compressed data can hold",
    ),
    "npz corrupted data": Case(
        npz_with("crc.npz", {"x": npy_bytes(np.zeros(4))}, flip_last_data_byte), "damaged .npz member"
    ),
    "npz missing member": Case(
        npz_with("m.npz", {"x": npy_bytes(np.zeros(1))}),
        "has no member 'y'",
        lambda p: load_tensor(p, member="y"),
    ),
    # torch
    "torch malicious pickle in a zip checkpoint": Case(malicious_torch("evil.pt", legacy=False), "refused"),
    "torch malicious pickle in a legacy checkpoint": Case(
        malicious_torch("evil_legacy.pth", legacy=True), "refused"
    ),
    "torch file that is a bare malicious pickle": Case(malicious_pickle, "execute code from the file"),
    "torch file neither zip nor pickle": Case(
        file("junk.pth", b"just some text"), "neither a zip archive nor a pickle"
    ),
    "torch truncated zip": Case(truncated_torch, "cannot be read as a torch file"),
    "torch plain pickle, not torch.save": Case(
        file("plain.pt", pickle.dumps({"a": 1}, protocol=2)), "cannot be read as a torch file"
    ),
    "torch without tensors": Case(
        saved_torch("cfg.pt", {"name": "llama"}), "holds no tensor (found a dict with keys 'name')"
    ),
    "torch member not a tensor": Case(
        saved_torch("m.pt", {"w": torch.ones(1), "step": 3}),
        "member 'step' is a int, not a tensor",
        lambda p: load_tensor(p, member="step"),
    ),
}


@pytest.fixture(autouse=True)
def time_and_memory_guard():
    """Fail a case that runs longer than TIME_LIMIT_S or allocates more than ALLOCATION_LIMIT."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"a malformed-file case ran longer than {TIME_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert peak < ALLOCATION_LIMIT, f"peak traced allocation {peak} bytes"


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_malformed_file_gives_a_clear_error(tmp_path, case):
    path = case.build(tmp_path)
    with pytest.raises(DumpFormatError) as info:
        case.read(path)
    message = str(info.value)
    assert path.name in message
    assert case.phrase in message
    assert info.value.path == str(path)
    assert not (tmp_path / "marker").exists()
