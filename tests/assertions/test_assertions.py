"""The assertion API: pass/fail of every helper and the content of its failure message."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_llmprec import (
    CompareResult,
    PrecisionError,
    assert_close_cos,
    assert_kl_div,
    assert_max_abs_error,
    assert_max_rel_error,
    assert_mean_rel_error,
    assert_precision,
    assert_red,
    assert_sqnr,
    assert_ulp,
)
from pytest_llmprec.standards import Tolerance

GOLDEN = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.25, 8.0]])
CLOSE = GOLDEN * (1 + 1e-4)
OFF = GOLDEN.clone()
OFF[1, 3] = 9.0  # one element off by 1.0 (12.5 %)


@pytest.mark.parametrize(
    ("helper", "loose", "tight"),
    [
        (assert_close_cos, 0.99, 0.9999),
        (assert_max_abs_error, 1.5, 0.5),
        (assert_max_rel_error, 0.2, 0.1),
        (assert_mean_rel_error, 0.02, 0.01),
        (assert_red, 0.2, 0.05),
        (assert_sqnr, 15.0, 30.0),
        (assert_ulp, 2.0**20, 2.0**18),
    ],
)
def test_single_metric_helpers_pass_and_fail_at_their_threshold(helper, loose, tight):
    assert isinstance(helper(GOLDEN, OFF, loose), CompareResult)
    with pytest.raises(PrecisionError) as failure:
        helper(GOLDEN, OFF, tight)
    assert isinstance(failure.value, AssertionError)
    assert failure.value.result.max_absolute_error == 1.0


def test_message_names_value_threshold_source_shapes_worst_element_and_passing_setting():
    with pytest.raises(PrecisionError) as failure:
        assert_max_abs_error(GOLDEN, OFF.to(torch.bfloat16), 0.01)
    message = str(failure.value)
    assert message.splitlines()[0] == (
        "assert_max_abs_error failed for golden torch.float32 [2, 4] vs my torch.bfloat16 [2, 4] "
        "(standard 'assert_max_abs_error')"
    )
    assert (
        "FAILED max_absolute_error = 1 fails <= 0.01 [source: call argument]; passes with max_abs_err=1"
        in message
    )
    assert "elements with |my - golden| > 0.01: 1" in message
    assert "worst element at index (1, 3): golden 8, my 9 (|diff| 1)" in message
    assert "non-finite: golden 0 NaN / 0 Inf, my 0 NaN / 0 Inf" in message


def test_assert_precision_uses_the_dtype_default_and_reports_every_check():
    golden = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(PrecisionError) as failure:
        assert_precision(golden, golden * 1.05)
    message = str(failure.value)
    assert "(standard 'default')" in message
    assert (
        "FAILED relative_euclidean_distance = 0.05 fails <= 0.001 [source: dtype default (torch.float32)]"
        in message
    )
    assert "passes with max_red=0.05" in message
    assert "ok     cosine_similarity = 1 meets >= 0.99999" in message
    assert failure.value.verdict.failures[0].check.metric == "relative_euclidean_distance"
    assert_precision(golden, golden * 1.05, max_red=0.06)  # the call argument replaces the default


def test_assert_precision_with_a_named_profile_and_tolerance():
    golden = torch.linspace(-4, 4, 100)
    my = golden.to(torch.float16)
    assert_precision(golden, my, "msit")
    with pytest.raises(
        PrecisionError, match=r"tolerance_pass_rate = .* fails >= 0.999 \[source: profile 'msit'"
    ):
        assert_precision(golden, my * 1.01, "msit")
    assert_precision(golden, my * 1.01, "msit", tolerance=Tolerance(rtol=0.02))


def test_nan_where_golden_is_finite_fails_even_a_single_metric_helper():
    my = GOLDEN.clone()
    my[0, 0] = math.nan
    with pytest.raises(PrecisionError) as failure:
        assert_close_cos(GOLDEN, my, 0.9)
    assert "FAILED NaN/Inf positions differ between golden and my" in str(failure.value)
    assert "golden 0 NaN / 0 Inf, my 1 NaN / 0 Inf" in str(failure.value)


def test_shape_count_mismatch_fails_with_the_reason():
    with pytest.raises(PrecisionError) as failure:
        assert_close_cos(GOLDEN, torch.ones(3), 0.9)
    assert str(failure.value) == (
        "assert_close_cos failed for golden torch.float32 [2, 4] vs my torch.float32 [3]: "
        "the element counts differ (8 vs 3); no metric can pass"
    )  # one line: no threshold's "passes with" hint, no repeated FAILED lines


def test_assert_kl_div_is_row_wise_and_names_the_worst_row():
    golden = torch.zeros(3, 5)
    my = golden.clone()
    my[2, 0] = 2.0
    assert_kl_div(golden, golden.clone(), 1e-12)
    with pytest.raises(PrecisionError) as failure:
        assert_kl_div(golden, my, 1e-3)
    message = str(failure.value)
    expected = math.log(0.2) + math.log(math.exp(2.0) + 4) - 0.2 * 2.0  # KL of the bad row, by hand
    assert f"worst row (2,) = {expected:.6g}" in message
    assert "rows over the bound: 1 of 3" in message
    with pytest.raises(PrecisionError, match=r"worst row \(2,\)"):
        assert_kl_div(golden.t(), my.t(), 1e-3, dim=0)


def test_assertions_accept_numpy_and_lists():
    assert_close_cos([1.0, 2.0, 3.0], [1.0, 2.0, 3.0001], 0.999)


def test_pytest_shows_the_whole_message(pytester):
    pytester.makepyfile(
        """
        import torch
        from pytest_llmprec import assert_close_cos, assert_precision

        def test_cos():
            g = torch.tensor([1.0, 0.0, 0.0])
            assert_close_cos(g, torch.tensor([0.0, 1.0, 0.0]), min_cos=0.999)

        def test_precision():
            g = torch.arange(1.0, 9.0)
            assert_precision(g, g * 1.05)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*PrecisionError: assert_close_cos failed for golden torch.float32 [[]3[]] vs my torch.float32 [[]3[]]*",
            "*FAILED cosine_similarity = 0 fails >= 0.999 [[]source: call argument[]]; passes with min_cos=0*",
            "*worst element at index (0,): golden 1, my 0 (|diff| 1)*",
            "*FAILED relative_euclidean_distance = 0.0499* fails <= 0.001*",
        ]
    )
