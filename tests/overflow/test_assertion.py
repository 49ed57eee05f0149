"""``assert_no_overflow`` on tensors and nested values, and its messages."""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

import pytest_llmprec
from pytest_llmprec import OverflowFailure, PrecisionError, assert_no_overflow


def test_a_finite_tensor_passes_and_returns_its_finding():
    findings = assert_no_overflow(torch.randn(4, 4).half())
    assert list(findings) == ["value"]
    assert findings["value"].overflowed == 0


def test_an_overflowing_tensor_fails_saying_what_where_and_how_much():
    tensor = torch.zeros(2, 3, dtype=torch.float16)
    tensor[1, 2] = math.inf
    tensor[0, 1] = math.nan
    with pytest.raises(OverflowFailure) as info:
        assert_no_overflow(tensor)
    message = str(info.value)
    assert message.splitlines() == [
        "assert_no_overflow: 1 of 1 tensors overflowed",
        "  value: float16 [2, 3]: 1 NaN, 1 +Inf of 6 values; first at index (0, 1) = nan",
    ]
    assert isinstance(info.value, PrecisionError) and isinstance(info.value, AssertionError)
    ((name, finding),) = info.value.findings
    assert (name, finding.nan, finding.pos_inf) == ("value", 1, 1)


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    extra: object = None


def test_nested_values_name_each_tensor():
    top = torch.finfo(torch.bfloat16).max
    value = {
        "hidden": (torch.ones(2), [torch.tensor([1.0, -top], dtype=torch.bfloat16)]),
        "out": Output(torch.tensor([math.inf, 0.0]), extra="text"),
        "mapping": OrderedDict(logits=np.array([1.0, np.nan], dtype=np.float32)),
        "none": None,
        3: 7,
    }
    with pytest.raises(OverflowFailure) as info:
        assert_no_overflow(value)
    lines = str(info.value).splitlines()
    assert lines[0] == "assert_no_overflow: 3 of 4 tensors overflowed"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "value.hidden[1][0]",
        "value.out.logits",
        "value.mapping.logits",
    ]
    assert "1 saturated at ±3.38953e+38" in lines[1]


def test_saturation_off_lets_clamped_values_pass():
    top = torch.finfo(torch.float16).max
    tensor = torch.tensor([top, -top, 1.0], dtype=torch.float16)
    with pytest.raises(OverflowFailure, match="2 saturated at ±65504"):
        assert_no_overflow(tensor)
    assert assert_no_overflow(tensor, saturation=False)["value"].saturated == 2


def test_near_overflow_fails_only_when_asked():
    tensor = torch.tensor([1.0, 40000.0], dtype=torch.float16)
    assert assert_no_overflow(tensor)["value"].near == 0  # near=None: not counted
    with pytest.raises(OverflowFailure) as info:
        assert_no_overflow(tensor, near=0.5)
    assert str(info.value).startswith("assert_no_overflow: 1 of 1 came near overflow (near=0.5)")
    assert "1 near overflow (50.00% at >= 0.5 × 65504)" in str(info.value)
    assert assert_no_overflow(tensor, near=0.9)["value"].near == 0


@pytest.mark.parametrize("value", [3, "text", None, [1, 2], {"a": None}])
def test_values_without_tensors_are_a_type_error(value):
    with pytest.raises(TypeError, match="holds none"):
        assert_no_overflow(value)


def test_a_tensor_that_cannot_be_scanned_is_named():
    with pytest.raises(ValueError, match=r"value\[1\] cannot be scanned: .*sparse"):
        assert_no_overflow([torch.ones(2), torch.eye(2).to_sparse()])


def test_bad_near():
    with pytest.raises(ValueError, match="near must be"):
        assert_no_overflow(torch.ones(2), near=2)


def test_the_root_package_exports_the_overflow_api_lazily():
    for name in ("assert_no_overflow", "OverflowFailure", "OverflowFinding", "OverflowGuard"):
        assert name in pytest_llmprec.__all__
        assert getattr(pytest_llmprec, name).__module__.startswith("pytest_llmprec.overflow")
