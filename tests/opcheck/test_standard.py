"""The opcheck default standard and msit's, on outputs with known errors."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.compare import compare_tensors
from pytest_llmprec.opcheck import msit_standard, opcheck_standard
from pytest_llmprec.opcheck.check import deciding_standard
from pytest_llmprec.standards import Layer, judge
from pytest_llmprec.testing.strategies import activations

HALF = st.sampled_from([torch.bfloat16, torch.float16])
SHAPES = st.tuples(st.integers(1, 8), st.sampled_from([16, 64, 256]))


def verdicts(reference, actual):
    ours = opcheck_standard(actual.dtype, reference)
    msit = msit_standard(actual.dtype)
    return (
        judge(compare_tensors(reference, actual, tolerance=ours.tolerance), ours).passed,
        judge(compare_tensors(reference, actual, tolerance=msit.tolerance), msit).passed,
    )


@given(values=activations(SHAPES, torch.float64), dtype=HALF)
def test_correctly_rounded_outputs_pass_both(values, dtype):
    ours, msit = verdicts(values, values.to(dtype))
    assert ours
    tiny = torch.finfo(dtype).tiny
    subnormal = ((values.abs() < tiny) & (values.abs() > 2.0**-23)).double().mean()
    if subnormal <= 1e-3:  # msit's relative test fails on subnormal outputs, ours does not
        assert msit


@given(values=activations(SHAPES, torch.float64), dtype=HALF)
def test_twice_rounded_outputs_pass_ours(values, dtype):
    """Rounded to the dtype, times a weight of the dtype, rounded again (Hugging Face's RMSNorm)."""
    weight = (1 + 0.1 * torch.randn(values.shape[-1], dtype=torch.float64)).to(dtype)
    actual = values.to(dtype) * weight
    assert verdicts(values * weight.double(), actual)[0]


@given(values=activations(SHAPES, torch.float64), dtype=HALF, scale=st.sampled_from([1.03, 0.97, 1.05]))
def test_a_few_percent_scale_error_fails_both(values, dtype, scale):
    if float(values.abs().max()) == 0:
        return
    assert verdicts(values, (values * scale).to(dtype)) == (False, False)


def test_float32_outputs_allow_the_accumulation_error_of_long_reductions():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4096, generator=generator)
    w = torch.randn(1024, 4096, generator=generator) / 64
    reference = x.double() @ w.double().T
    assert verdicts(reference, x @ w.T)[0]
    assert not verdicts(reference, (x @ w.T) * (1 + 1e-4))[0]


def test_integer_outputs_must_be_exact():
    ids = torch.arange(10)
    standard = opcheck_standard(ids.dtype, ids)
    assert judge(compare_tensors(ids, ids, tolerance=standard.tolerance), standard).passed
    assert not judge(compare_tensors(ids, ids + (ids == 3)), standard).passed


def test_layers_choose_and_override_the_deciding_standard():
    ref = torch.ones(4, dtype=torch.float64)
    assert deciding_standard(torch.bfloat16, ref).name == "opcheck"
    assert deciding_standard(torch.bfloat16, ref, [Layer("marker", profile="msit")]).name == "msit"
    chosen = deciding_standard(torch.bfloat16, ref, [Layer.from_keywords("marker", max_ulp=3)])
    assert "max_ulp_error <= 3" in [str(check) for check in chosen.checks]
    assert chosen.checks[0].source == "opcheck default (torch.bfloat16)"
