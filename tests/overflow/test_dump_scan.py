"""Scanning dumps node by node: which tensors, in which order, read how."""

from __future__ import annotations

import math

import pytest
import torch
from dump_writers import atb_dump, atb_statistics_dump, fx_dump, ge_dump, plain_folder, torch_dump
from overflow_models import OVERFLOWING

from pytest_llmprec import load_dump
from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import save_atb_bin
from pytest_llmprec.overflow import scan, scan_nodes, scan_record
from pytest_llmprec.overflow.report import dump_row, dump_summary_lines


def flagged(dump, **options):
    statistics = bool(dump.info.get("statistics_only"))
    return [
        (node.key, record.leaf, scan_record(record, statistics=statistics, **options).kind())
        for node in scan_nodes(dump)
        for record in node.records
        if scan_record(record, statistics=statistics, **options).overflowed
    ]


def test_atb_dumps_scan_after_outtensors_in_execution_order(tmp_path):
    dump = load_dump(atb_dump(tmp_path))
    assert dump.kind == "atb"
    nodes = scan_nodes(dump)
    assert [node.key for node in nodes] == [
        "rank0/token0/0_EmbeddingOperation",
        "rank0/token0/1_DecoderLayer/0_LinearOperation",
        "rank0/token0/1_DecoderLayer/1_LinearOperation",
        "rank0/token0/1_DecoderLayer",
        "rank0/token0/2_ElewiseOperation",
        "rank0/token0/3_RmsNormOperation",
        "rank0/token0/4_ArgmaxOperation",
    ]
    assert all(r.leaf.startswith("after/outtensor") for node in nodes for r in node.records)
    assert flagged(dump) == [
        ("rank0/token0/1_DecoderLayer/1_LinearOperation", "after/outtensor0", "inf"),
        ("rank0/token0/1_DecoderLayer/1_LinearOperation", "after/outtensor1", "nan"),
        ("rank0/token0/1_DecoderLayer", "after/outtensor0", "inf"),
        ("rank0/token0/2_ElewiseOperation", "after/outtensor0", "saturated"),
        ("rank0/token0/3_RmsNormOperation", "after/outtensor0", "saturated"),
    ]
    assert [key for key, _, _ in flagged(dump, saturation=False)][-1] == "rank0/token0/1_DecoderLayer"


def test_torch_dumps_name_the_module_that_overflowed_first(tmp_path):
    dump = load_dump(torch_dump(tmp_path, tokens=1))
    first = flagged(dump)[0]
    assert first == (f"token0/{OVERFLOWING}", "output", "inf")
    assert all(r.role == "output" for node in scan_nodes(dump) for r in node.records)


def test_ge_fx_and_plain_dumps(tmp_path):
    assert flagged(load_dump(ge_dump(tmp_path / "ge"))) == [("token0/MatMul_3", "output_0", "inf")]
    assert flagged(load_dump(fx_dump(tmp_path / "fx"))) == [
        ("rank0/token0/mm-aten.mm.default", "output_0", "inf")
    ]
    plain = load_dump(plain_folder(tmp_path / "plain"))
    assert plain.kind == "files"
    assert [(leaf, kind) for _, leaf, kind in flagged(plain)] == [("tensor", "saturated")]


def test_statistics_only_atb_dumps_are_judged_from_max_and_min(tmp_path):
    dump = load_dump(atb_statistics_dump(tmp_path))
    assert dump.info["statistics_only"]
    results = {node.node: scan_record(node.records[0], statistics=True) for node in scan_nodes(dump)}
    assert {node: finding.kind() for node, finding in results.items()} == {
        "0_LinearOperation": "",
        "1_LinearOperation": "inf",
        "2_AddOperation": "saturated",
    }
    assert "from the statistics file" in results["1_LinearOperation"].describe()


def test_raw_reads_and_torch_loads_give_the_same_finding(tmp_path):
    tensor = torch.randn(5, 7).half()
    tensor[4, 6] = -math.inf
    path = tmp_path / "x.bin"
    save_atb_bin(tensor, path)
    (record,) = load_dump(path).records
    assert record.load_raw() is not None
    assert repr(scan_record(record)) == repr(scan(record.load())) == repr(scan(tensor))


def test_a_transposed_view_in_a_torch_file_is_indexed_in_row_major_order(tmp_path):
    # torch dumps save views as they are: the bytes of a transposed tensor are in its base's order
    base = torch.zeros(6, 4)
    base[1, 3] = math.inf  # element (3, 1) of the transposed view; its bytes come before (2, 0)'s
    base[0, 2] = math.nan  # (2, 0): first in row-major order, later in the bytes
    path = tmp_path / "t.pth"
    torch.save(base.t(), path)
    (record,) = load_dump(path).records
    raw = record.load_raw()
    assert raw is not None and raw.strides == (1, 4)
    finding = scan_record(record)
    assert (finding.shape, finding.first_index, math.isnan(finding.first_value)) == ((4, 6), (2, 0), True)
    assert repr(finding) == repr(scan(base.t()))


def test_unreadable_files_raise_the_readers_error(tmp_path):
    dump = load_dump(atb_dump(tmp_path))
    record = scan_nodes(dump)[2].records[0]
    with open(record.path, "r+b") as handle:
        handle.truncate(60)
    with pytest.raises(DumpFormatError, match=r"outtensor0\.bin"):
        scan_record(record)


def test_report_rows_and_summary(tmp_path):
    dump = load_dump(atb_dump(tmp_path))
    rows = [dump_row(r, scan_record(r)) for node in scan_nodes(dump) for r in node.records]
    rows.append(dump_row(dump.records[0], None, error="broken"))
    lines = dump_summary_lines(rows, ["report.csv"])
    assert lines == [
        "7 nodes scanned, 9 tensors: 5 overflowed, 0 near overflow, 1 unreadable",
        "first overflow: token 0 1_DecoderLayer/1_LinearOperation (LinearOperation) after/outtensor0: "
        "1 +Inf of 8 values",
        "report: report.csv",
    ]
