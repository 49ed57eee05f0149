"""GE dump files: writer round trips, files built without the writer, layouts, file names."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import descriptor_pb2

from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import (
    DumpFormatWarning,
    detect_format,
    ge_dump_pb2,
    list_members,
    load_tensor,
    parse_fx_file_name,
    parse_ge_file_name,
    probe_tensor,
    read_ge_dump,
    write_ge_dump,
)
from pytest_llmprec.formats.ge_dump_pb2 import DumpData

ND, NC1HWC0, FRACTAL_Z, FRACTAL_NZ = 2, 3, 4, 29


def test_writer_round_trip_with_layouts(tmp_path, make_sample, same_bits):
    inputs = [
        make_sample(torch.float16, (3, 4)),
        make_sample(torch.int32, (7,)),
        make_sample(torch.bfloat16, (5, 20)),
    ]
    outputs = [
        make_sample(torch.float32, (1, 20, 2, 3)),
        make_sample(torch.bool, (2, 2)),
        make_sample(torch.uint64, (3,)),
        make_sample(torch.complex64, (2,)),
    ]
    path = tmp_path / "MatMul.MatMul_3.12.6.17065969121619"
    write_ge_dump(
        path,
        inputs=inputs,
        outputs=outputs,
        op_name="MatMul_3",
        formats={"input.2": FRACTAL_NZ, "output.0": NC1HWC0},
        dump_time=1706596912,
    )
    dump = read_ge_dump(path)
    assert (dump.op_name, dump.version, dump.dump_time) == ("MatMul_3", "2.0", 1706596912)
    for written, read in zip(inputs + outputs, dump.inputs + dump.outputs, strict=True):
        assert same_bits(read.tensor, written)
    nz, nc = dump.inputs[2], dump.outputs[0]
    assert (nz.format, nz.format_name, nz.shape, nz.original_shape) == (
        FRACTAL_NZ,
        "FRACTAL_NZ",
        (2, 1, 16, 16),
        (5, 20),
    )
    assert (nc.format_name, nc.shape, nc.original_shape) == ("NC1HWC0", (1, 2, 2, 3, 16), (1, 20, 2, 3))
    assert [t.data_type for t in dump.inputs] == [2, 7, 27]  # OutputDataType, not aclDataType
    assert [t.data_type for t in dump.outputs] == [1, 11, 10, 16]

    assert detect_format(path) == "ge"
    members = ["input.0", "input.1", "input.2", "output.0", "output.1", "output.2", "output.3"]
    assert list_members(path) == members
    for member, written in zip(members, inputs + outputs, strict=True):
        assert same_bits(load_tensor(path, member=member), written)
        info = probe_tensor(path, member=member)
        assert (info.dtype, info.shape) == (written.dtype, tuple(written.shape))
    assert probe_tensor(path, member="input.2").format == "FRACTAL_NZ"
    assert probe_tensor(path, member="input.0").format is None
    assert same_bits(load_tensor(path, member="inputs.1"), inputs[1])


def test_inline_data_has_no_segment(tmp_path):
    path = tmp_path / "Cast.Cast_1.1.2.3"
    tensor = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    write_ge_dump(path, inputs=[tensor], outputs=[tensor.float()], inline=True)
    header_length = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert path.stat().st_size == 8 + header_length
    dump = read_ge_dump(path)
    assert torch.equal(dump.inputs[0].tensor, tensor)
    assert torch.equal(dump.outputs[0].tensor, tensor.float())


def test_segment_tensors_are_memory_mapped(tmp_path, mapped_from):
    path = tmp_path / "Add.Add_1.1.2.3"
    write_ge_dump(path, inputs=[torch.arange(100, dtype=torch.uint8)], outputs=[])
    tensor = load_tensor(path)
    assert tensor.tolist() == list(range(100))
    assert mapped_from(tensor, path)


def nz_by_hand(matrix: torch.Tensor) -> torch.Tensor:
    """GE FRACTAL_NZ storage [c1, r1, 16, 16] of a 2-D matrix, element by element."""
    rows, cols = matrix.shape
    storage = torch.zeros(-(-cols // 16), -(-rows // 16), 16, 16, dtype=matrix.dtype)
    for i in range(rows):
        for j in range(cols):
            storage[j // 16, i // 16, i % 16, j % 16] = matrix[i, j]
    return storage


def nc1hwc0_by_hand(tensor: torch.Tensor) -> torch.Tensor:
    n, c, h, w = tensor.shape
    storage = torch.zeros(n, -(-c // 16), h, w, 16, dtype=tensor.dtype)
    for ni in range(n):
        for ci in range(c):
            storage[ni, ci // 16, :, :, ci % 16] = tensor[ni, ci]
    return storage


def raw(tensor: torch.Tensor) -> bytes:
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def test_file_built_from_the_message_without_the_writer(tmp_path):
    matrix = torch.arange(3 * 18, dtype=torch.float32).reshape(3, 18).to(torch.bfloat16)
    image = torch.arange(2 * 17 * 2 * 1, dtype=torch.float32).reshape(2, 17, 2, 1)
    message = DumpData(version="2.0", dump_time=123, op_name="Fused_1")
    segment = b""

    item = message.input.add(data_type=1, format=ND, size=8)  # DT_FLOAT is 1 (aclDataType 1 is fp16)
    item.shape.dim.extend([2])
    segment += struct.pack("<2f", 1.5, -2.0)

    item = message.input.add(data_type=28, format=ND, size=2)  # INT4, packed low nibble first
    item.shape.dim.extend([3])
    segment += bytes([0x8F, 0x07])

    storage = nz_by_hand(matrix)
    item = message.input.add(data_type=27, format=FRACTAL_NZ, size=storage.numel() * 2)
    item.shape.dim.extend(storage.shape)
    item.original_shape.dim.extend([3, 18])
    segment += raw(storage)

    storage = nc1hwc0_by_hand(image)
    item = message.output.add(data_type=1, format=NC1HWC0, size=storage.numel() * 4)
    item.shape.dim.extend(storage.shape)
    item.original_shape.dim.extend(image.shape)
    segment += raw(storage)

    item = message.output.add(data_type=6, format=ND, data=struct.pack("<2H", 65535, 7))  # inline UINT16
    item.shape.dim.extend([1, 2])

    item = message.output.add(data_type=2, format=1, size=4)  # FLOAT16 in NHWC: passthrough
    item.shape.dim.extend([1, 1, 1, 2])
    segment += np.array([0.25, -8.0], dtype="<f2").tobytes()

    header = message.SerializeToString()
    path = tmp_path / "AutomaticBufferFusionOp.Fused_1.5.6.17065969121611"
    path.write_bytes(struct.pack("<Q", len(header)) + header + segment)

    dump = read_ge_dump(path)
    assert (dump.op_name, dump.dump_time) == ("Fused_1", 123)
    assert dump.inputs[0].tensor.dtype == torch.float32
    assert dump.inputs[0].tensor.tolist() == [1.5, -2.0]
    assert dump.inputs[1].tensor.tolist() == [-1, -8, 7]
    assert torch.equal(dump.inputs[2].tensor, matrix)
    assert torch.equal(dump.outputs[0].tensor, image)
    assert dump.outputs[1].tensor.dtype == torch.uint16
    assert dump.outputs[1].tensor.tolist() == [[65535, 7]]
    assert dump.outputs[2].tensor.tolist() == [[[[0.25, -8.0]]]]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | int) -> bytes:
    """One protobuf field: varint (wire type 0) for ints, length-delimited (2) for bytes."""
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_wire_level_header_matches_the_published_field_numbers(tmp_path):
    shape = field(1, 2) + field(1, 3)  # Shape.dim = [2, 3] (unpacked encoding)
    op_input = field(1, 7) + field(2, ND) + field(3, shape) + field(5, 24) + field(6, shape)  # INT32, size 24
    op_output = (
        field(1, 3) + field(2, ND) + field(3, field(1, 4)) + field(6, 4) + field(7, field(1, 4))
    )  # INT8
    header = field(1, b"2.0") + field(2, 99) + field(3, op_output) + field(4, op_input) + field(6, b"Mul_7")
    data = struct.pack("<6i", 1, 2, 3, -4, -5, -6) + bytes([1, 255, 3, 128])
    path = tmp_path / "Mul.Mul_7.1.2.3"
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    dump = read_ge_dump(path)
    assert (dump.version, dump.dump_time, dump.op_name) == ("2.0", 99, "Mul_7")
    assert dump.inputs[0].tensor.tolist() == [[1, 2, 3], [-4, -5, -6]]
    assert dump.inputs[0].original_shape == (2, 3)
    assert dump.outputs[0].tensor.tolist() == [1, -1, 3, -128]


def test_unconverted_device_format_warns_and_keeps_the_stored_shape(tmp_path):
    path = tmp_path / "Conv2D.conv.1.2.3"
    weight = torch.arange(32, dtype=torch.float16).reshape(2, 16)
    write_ge_dump(
        path, inputs=[weight], outputs=[], formats={"input.0": FRACTAL_Z}, original_shapes={"input.0": [4, 8]}
    )
    with pytest.warns(DumpFormatWarning, match=r"FRACTAL_Z.*no conversion known"):
        tensor = load_tensor(path)
    assert torch.equal(tensor, weight)


def test_nz_without_original_shape_warns(tmp_path):
    message = DumpData()
    item = message.output.add(data_type=2, format=FRACTAL_NZ, size=512)
    item.shape.dim.extend([1, 1, 16, 16])
    header = message.SerializeToString()
    path = tmp_path / "MatMul.mm.1.2.3"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(512))
    with pytest.warns(DumpFormatWarning, match="without an original shape"):
        assert load_tensor(path).shape == (1, 1, 16, 16)


def test_member_selection(tmp_path):
    path = tmp_path / "Add.Add_2.1.2.3"
    write_ge_dump(path, inputs=[torch.ones(2), torch.zeros(2)], outputs=[torch.ones(2) * 3])
    with pytest.raises(DumpFormatError, match=r"choose a member: input\.0, input\.1, output\.0"):
        load_tensor(path)
    with pytest.raises(DumpFormatError, match=r"no member 'output\.1'"):
        load_tensor(path, member="output.1")
    single = tmp_path / "Relu.Relu_1.1.2.3"
    write_ge_dump(single, inputs=[], outputs=[torch.ones(3)])
    assert load_tensor(single).tolist() == [1.0, 1.0, 1.0]


def test_header_length_starting_like_a_pickle_is_still_ge(tmp_path):
    """A 640-byte header begins with bytes 0x80 0x02, the start of a protocol-2 pickle."""
    path = tmp_path / "Add.Add_1.1.2.3"
    op_name = "x"
    for _ in range(4):  # the op name's length prefix grows as the name does
        write_ge_dump(path, inputs=[torch.ones(2)], outputs=[], op_name=op_name)
        length = struct.unpack("<Q", path.read_bytes()[:8])[0]
        op_name = "x" * (len(op_name) + 640 - length)
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert detect_format(path) == "ge"
    assert load_tensor(path).tolist() == [1.0, 1.0]


def test_ge_summary_npz(tmp_path):
    path = tmp_path / "Add.Add_2.44.6.17065969121619.npz"
    inputs = np.array([[3.0, -1.0, 0.5], [2.0, 0.0, 1.0]])
    np.savez(path, inputs=inputs, outputs=np.array([[4.0, -2.0, 1.0]]))
    assert list_members(path) == ["inputs", "outputs"]
    assert load_tensor(path, member="inputs").tolist() == inputs.tolist()
    assert load_tensor(path, member="inputs.1").tolist() == [2.0, 0.0, 1.0]
    assert probe_tensor(path, member="outputs.0").shape == (3,)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Add.Add_2.44.6.17065969121619", ("Add", "Add_2", 44, 6, 17065969121619)),
        ("ConcatV2D.ConcatV2.42.6.17065969121611", ("ConcatV2D", "ConcatV2", 42, 6, 17065969121611)),
        ("TransData.TransData_1.1.42.6.1700000000", ("TransData", "TransData_1.1", 42, 6, 1700000000)),
        (
            "AutomaticBufferFusionOp.Add_2Cast_9ConcatV2.3.6.17065969121612",
            ("AutomaticBufferFusionOp", "Add_2Cast_9ConcatV2", 3, 6, 17065969121612),
        ),
    ],
)
def test_parse_ge_file_name(name, expected):
    parsed = parse_ge_file_name(name)
    assert parsed is not None
    assert (parsed.op_type, parsed.op_name, parsed.task_id, parsed.stream_id, parsed.timestamp) == expected


@pytest.mark.parametrize(
    "name",
    [
        "Add.Add_2.44.6",
        "dynamo_original_graph_1.txt",
        "mm-aten.mm.default.INPUT.0.2024.npy",
        "a.b.c.d.e",
        "x.bin",
    ],
)
def test_parse_ge_file_name_rejects(name):
    assert parse_ge_file_name(name) is None


def test_parse_fx_file_name():
    parsed = parse_fx_file_name("mm-aten.mm.default.INPUT.0.20240125031118787351.npy")
    assert parsed is not None
    assert (parsed.op_key, parsed.node, parsed.target, parsed.role, parsed.index, parsed.timestamp) == (
        "mm-aten.mm.default",
        "mm",
        "aten.mm.default",
        "input",
        0,
        20240125031118787351,
    )
    output = parse_fx_file_name("add_3-aten.add.Tensor.OUTPUT.12.20240125031118787351.npy")
    assert output is not None
    assert (output.node, output.role, output.index) == ("add_3", "output", 12)
    assert parse_fx_file_name("mm-aten.mm.default.INPUT.0.2024.bin") is None
    assert parse_fx_file_name("Add.Add_2.44.6.17065969121619") is None


def test_reader_works_when_another_module_registered_toolkit_dumpdata(tmp_path):
    """msprobe's AclDumpMsg.proto declares the same package and message: reuse it instead of failing."""
    path = tmp_path / "Add.Add_1.1.2.3"
    write_ge_dump(path, inputs=[torch.arange(3.0)], outputs=[])
    proto = descriptor_pb2.FileDescriptorProto()
    ge_dump_pb2.DESCRIPTOR.CopyToProto(proto)
    definition = proto.SerializeToString()
    script = textwrap.dedent(
        f"""
        import sys
        from google.protobuf import descriptor_pb2, descriptor_pool
        proto = descriptor_pb2.FileDescriptorProto.FromString(sys.stdin.buffer.read())
        proto.name = "AclDumpMsg.proto"
        descriptor_pool.Default().Add(proto)
        from pytest_llmprec.formats import load_tensor
        print(load_tensor({str(path)!r}).tolist())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(ge_dump_pb2.__file__).parents[2])}
    result = subprocess.run([sys.executable, "-c", script], input=definition, capture_output=True, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "[0.0, 1.0, 2.0]"
