"""The overflow columns of a compared pair and the summary line of the my side's first overflow."""

from __future__ import annotations

import math

import torch

from pytest_llmprec.dumps.base import TensorRecord
from pytest_llmprec.formats import save_atb_bin
from pytest_llmprec.overflow import PAIR_COLUMNS, first_overflow_line, overflow_columns


def test_columns_of_a_pair_of_torch_tensors():
    golden = torch.tensor([1.0, 40000.0, 2.0, 3.0], dtype=torch.float16)
    my = torch.tensor([1.0, math.inf, 65504.0, 3.0], dtype=torch.float16)
    columns = overflow_columns(golden, my)
    assert list(columns) == list(PAIR_COLUMNS)
    assert columns == {
        "golden_overflow": "near",
        "my_overflow": "inf",
        "my_overflow_counts": "1 +Inf, 1 saturated at ±65504 of 4 values",
        "golden_saturated_count": 0,
        "my_saturated_count": 1,
        "golden_near_overflow_ratio": 0.25,
        "my_near_overflow_ratio": 0.0,
        "my_first_overflow_index": "(1,)",
    }
    assert overflow_columns(golden, my, saturation=False, near=None)["my_saturated_count"] == 1


def test_columns_of_raw_reads(tmp_path):
    values = torch.zeros(2, 3, dtype=torch.float16)
    values[1, 1] = math.nan
    save_atb_bin(values, tmp_path / "my.bin")
    save_atb_bin(torch.zeros(2, 3, dtype=torch.float16), tmp_path / "golden.bin")
    golden, my = (
        TensorRecord(str(tmp_path / f"{side}.bin"), 0, "n", "after/outtensor0").load_raw()
        for side in ("golden", "my")
    )
    columns = overflow_columns(golden, my)
    assert (columns["golden_overflow"], columns["my_overflow"], columns["my_first_overflow_index"]) == (
        "",
        "nan",
        "(1, 1)",
    )


def rows():
    return [
        {"pair_key": "token0/root.a/output", "node_order": 0, "my_overflow": "near", "my_op_type": "Linear"},
        {"pair_key": "token0/root.c/output", "node_order": 5, "my_overflow": "nan", "my_overflow_counts": "3 NaN of 8 values"},
        {"pair_key": "token0/root.b/output", "node_order": 2, "my_overflow": "inf", "golden_overflow": "inf",
         "my_overflow_counts": "1 +Inf of 8 values", "my_op_type": "Linear"},
        {"pair_key": "test_x.py::test_y", "node_order": None, "my_overflow": "nan"},  # a hand-written comparison
    ]  # fmt: skip


def test_the_summary_line_names_the_first_overflow_of_the_my_side():
    assert first_overflow_line(rows()) == (
        "first overflow (my): token0/root.b/output (Linear): 1 +Inf of 8 values; golden also inf"
    )
    assert first_overflow_line(rows()[1:2]) == (
        "first overflow (my): token0/root.c/output: 3 NaN of 8 values; golden has no overflow"
    )
    assert first_overflow_line(rows()[:1]) is None
    assert first_overflow_line([]) is None


def test_the_dump_comparison_reports_overflow_and_names_my_first(tmp_path):
    from torch_dumps import write_torch_dump

    from pytest_llmprec.pipeline import CompareSettings, Comparison

    x = torch.linspace(-3, 3, 32).reshape(4, 8)
    mask = torch.full((4, 4), torch.finfo(torch.float32).min)

    def tokens(dtype):
        big = (x * 10000).to(dtype)
        out = big * 3  # float16: 90000 overflows to inf
        low = torch.finfo(dtype).min
        return {0: {"root.attn": {"kwarg_mask": mask.clamp(min=low).to(dtype), "output": big.to(dtype)},
                    "root.mlp": {"input_0": big, "output": out}}}  # fmt: skip

    golden = write_torch_dump(tmp_path / "g", tokens(torch.float32))
    my = write_torch_dump(tmp_path / "m", tokens(torch.float16))
    comparison = Comparison(CompareSettings(golden=golden, my=my, report_dir=tmp_path / "r"))
    rows = {d.pair.key: d.row for d in comparison.evaluations()}
    assert rows["token0/root.mlp/output"]["my_overflow"] == "inf"
    assert rows["token0/root.mlp/output"]["golden_overflow"] == ""
    mask_row = rows["token0/root.attn/kwarg_mask"]
    assert (mask_row["golden_overflow"], mask_row["my_overflow"]) == ("saturated", "saturated")
    lines = [line for line in comparison.summary() if line.startswith("first overflow")]
    assert len(lines) == 1 and lines[0].startswith("first overflow (my): token0/root.mlp/output (")
    assert "Inf" in lines[0] and lines[0].endswith("golden has no overflow")
    comparison.close()
