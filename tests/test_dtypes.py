"""The torch-free dtype table against torch's own dtypes."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_llmprec.dtypes import _TABLE, coarser_dtype, dtype_facts, dtype_name, msit_error_level


def spacing_at_one(dtype: torch.dtype) -> float:
    one = torch.tensor([1.0]).to(dtype)
    as_int = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[one.element_size()]
    return float((one.view(as_int) + 1).view(dtype)[0]) - 1.0


@pytest.mark.parametrize("name", sorted(_TABLE))
def test_every_entry_matches_torch(name):
    dtype = getattr(torch, name.removeprefix("torch."))
    facts = dtype_facts(name)
    assert facts.name == str(dtype)
    assert facts.itemsize == dtype.itemsize
    assert facts.floating == dtype.is_floating_point
    if facts.floating:
        assert facts.eps == spacing_at_one(dtype)
        assert 2.0**facts.emin == torch.finfo(dtype).smallest_normal


def test_names_torch_dtypes_and_short_names_are_the_same_key():
    assert (
        dtype_name(torch.bfloat16)
        == dtype_name("bfloat16")
        == dtype_name("torch.bfloat16")
        == "torch.bfloat16"
    )
    assert dtype_facts(torch.float16) is dtype_facts("float16")


def test_dtypes_outside_the_table_come_from_torch_or_are_refused_by_name():
    facts = dtype_facts(torch.complex64)
    assert not facts.floating and facts.itemsize == 8
    with pytest.raises(ValueError, match="unknown dtype 'float1'"):
        dtype_facts("float1")


def test_msit_error_levels_and_the_coarser_dtype():
    assert msit_error_level("torch.float16") == 2.0**-10
    assert msit_error_level(torch.float8_e5m2fnuz) == 2.0**-3  # half its spacing at 1 (2**-2)
    assert coarser_dtype(torch.float32, "bfloat16") == "torch.bfloat16"
    assert coarser_dtype("int32", torch.float16) == "torch.float16"
    assert coarser_dtype("float8_e4m3fnuz", "float8_e5m2fnuz") == "torch.float8_e5m2fnuz"
    assert math.isclose(dtype_facts("float8_e4m3fn").eps, 0.125)
