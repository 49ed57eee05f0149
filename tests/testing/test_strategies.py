"""The Hypothesis strategies: dtypes, shapes, special values, LLM-shaped data, perturbations."""

from __future__ import annotations

import torch
from hypothesis import find, given
from hypothesis import strategies as st

from pytest_llmprec.testing.strategies import FLOAT_DTYPES, activations, logits, perturbed, tensors


@given(tensors(st.sampled_from(FLOAT_DTYPES), st.sampled_from([(3,), (2, 5)])))
def test_tensors_have_the_requested_dtype_and_shape_and_are_finite_by_default(tensor):
    assert tensor.dtype in FLOAT_DTYPES and tuple(tensor.shape) in {(3,), (2, 5)}
    assert torch.isfinite(tensor.double()).all()


@given(tensors(st.sampled_from(FLOAT_DTYPES), (64,), allow_subnormal=False))
def test_subnormals_can_be_excluded(tensor):
    values = tensor.double().abs()
    assert ((values == 0) | (values >= torch.finfo(tensor.dtype).smallest_normal)).all()


def test_special_values_and_the_whole_bf16_range_are_reachable():
    find(tensors(torch.bfloat16, (4,), allow_nan=True), lambda t: bool(torch.isnan(t).any()))
    find(tensors(torch.float16, (4,), allow_infinity=True), lambda t: bool(torch.isinf(t).any()))
    find(tensors(torch.bfloat16, (4,)), lambda t: bool((t.double().abs() > 1e30).any()))
    find(tensors(torch.float8_e4m3fn, (4,)), lambda t: bool((t.double().abs() == 448).any()))
    find(tensors(torch.float32, (4,)), lambda t: bool(((t != 0) & (t.abs() < 1.17e-38)).any()))


@given(tensors(st.sampled_from([torch.int8, torch.int64, torch.bool, torch.uint8]), (5,)))
def test_integer_tensors(tensor):
    assert tensor.dtype in {torch.int8, torch.int64, torch.bool, torch.uint8}


@given(activations(shape=(2, 8, 64), dtype=torch.bfloat16))
def test_activations_shape_and_dtype(tensor):
    assert tensor.shape == (2, 8, 64) and tensor.dtype == torch.bfloat16
    assert torch.isfinite(tensor.float()).all()


def test_activations_can_have_outlier_channels():
    def has_outliers(t: torch.Tensor) -> bool:
        per_channel = t.abs().amax(dim=(0, 1))
        return bool(per_channel.max() > 20 * per_channel.median())

    find(activations(shape=(1, 16, 64)), has_outliers)


@given(logits(vocab=100, rows=3, kind="near_tie"))
def test_near_tie_logits_have_two_close_leaders(values):
    top = values.topk(2, dim=-1).values
    assert ((top[:, 0] - top[:, 1]) <= 0.1 + 1e-5).all()


@given(logits(vocab=100, rows=3, kind="peaked"))
def test_peaked_logits_have_a_clear_winner(values):
    top = values.topk(2, dim=-1).values
    assert ((top[:, 0] - top[:, 1]) >= 5.0 - 1e-4).all()


@given(
    st.sampled_from(FLOAT_DTYPES).flatmap(
        lambda dtype: tensors(dtype, (32,)).flatmap(lambda t: st.tuples(st.just(t), perturbed(t, ulps=3)))
    )
)
def test_perturbed_moves_each_element_by_at_most_k_encodings(pair):
    original, moved = pair
    assert moved.dtype == original.dtype and moved.shape == original.shape
    signed = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[original.element_size()]

    def ordinal(t: torch.Tensor) -> torch.Tensor:  # position on the number line of encodings
        bits = t.view(signed).to(torch.int64)
        magnitude = bits & torch.iinfo(signed).max
        return torch.where(bits < 0, -magnitude, magnitude)

    distance = (ordinal(moved) - ordinal(original)).abs()
    crossing_zero = (original.double() != 0) & (moved.double() == 0)
    assert ((distance <= 3) | crossing_zero).all()
    assert torch.isfinite(moved.double()).all()
