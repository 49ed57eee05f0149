"""Precision standards: profile tables, precedence of override layers, rules, verdicts."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from pytest_llmprec import compare_tensors
from pytest_llmprec.standards import (
    AnyOf,
    Layer,
    Standard,
    Threshold,
    get_standard,
    judge,
    parse_rule,
    parse_rules,
    resolve_standard,
    rule_layer,
)


def checks_by_metric(standard: Standard) -> dict[str, Threshold]:
    return {c.metric: c for c in standard.checks if isinstance(c, Threshold)}


def fake_result(**metrics):
    """A real CompareResult with chosen metric values (other fields from a trivial comparison)."""
    base = compare_tensors(torch.ones(4), torch.ones(4))
    return replace(base, **metrics)


# --- profiles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "rate", "level"),
    [
        (torch.float32, 0.9999, 2.0**-20),
        (torch.float16, 0.999, 2.0**-10),
        (torch.bfloat16, 0.999, 2.0**-8),
        (torch.float64, 0.9999, 1e-4),
        (torch.int8, 0.999, 1.0),
        (torch.uint8, 0.99, 1.0),
        (torch.bool, 1.0, 1e-4),
    ],
)
def test_msit_profile_follows_the_opcheck_table_with_greater_or_equal(dtype, rate, level):
    standard = get_standard("msit", torch.float32, dtype)
    (check,) = standard.checks
    assert (check.metric, check.op, check.value) == ("tolerance_pass_rate", ">=", rate)
    assert standard.tolerance.rtol == level and standard.tolerance.small == 2.0**-23


def test_msit_bool_output_can_pass_unlike_msit_itself():
    golden = torch.tensor([True, False, True])
    standard = get_standard("msit", torch.bool, torch.bool)
    result = compare_tensors(golden, golden.clone(), tolerance=standard.tolerance)
    assert judge(result, standard).passed


@pytest.mark.parametrize(
    ("cos", "max_abs", "passed"),
    [
        (0.995, 0.5, True),  # cosine high enough
        (0.95, 0.0005, True),  # cosine low but errors tiny
        (0.95, 0.01, False),  # (cos < 0.99 and abs > 0.001)
        (0.85, 0.0001, False),  # cos < 0.9
        (0.999, 1.5, False),  # abs > 1
        (math.nan, 0.0, False),
    ],
)
def test_msprobe_compare_rule(cos, max_abs, passed):
    standard = get_standard("msprobe", torch.int32, torch.float32)  # no dtype tier for int golden
    standard = replace(standard, checks=standard.checks[:3])
    result = fake_result(cosine_similarity=cos, max_absolute_error=max_abs)
    assert judge(result, standard).passed is passed


def test_msprobe_profile_adds_the_legacy_run_ut_tier_per_dtype():
    standard = get_standard("msprobe", torch.float16, torch.float16)
    tier = checks_by_metric(standard)["tolerance_pass_rate"]
    assert (tier.op, tier.value) == (">", pytest.approx(0.99))
    assert standard.tolerance.rtol == 0.01 and standard.tolerance.atol == pytest.approx(0.01 * 2.0**-10)
    assert isinstance(standard.checks[0], AnyOf)


def test_default_profile_uses_the_coarser_dtype_and_integers_are_exact():
    mixed = get_standard("default", torch.float32, torch.bfloat16)
    assert checks_by_metric(mixed)["cosine_similarity"].source == "dtype default (torch.bfloat16)"
    exact = get_standard("default", torch.int64, torch.int64)
    assert str(exact.checks[0]) == "max_absolute_error <= 0"


def test_strict_profile_requires_finite_values():
    standard = get_standard("strict", torch.float16)
    result = compare_tensors(torch.tensor([1.0, math.inf]), torch.tensor([1.0, math.inf]))
    verdict = judge(result, standard)
    assert not verdict.passed and "requires finite values" in verdict.problems[0]


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="default, strict, msit, msprobe"):
        get_standard("loose")


# --- the scale-error requirement ---------------------------------------------------------------------


def test_default_fp32_standard_fails_a_uniform_five_percent_scale_error_despite_cosine_one():
    golden = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    result = compare_tensors(golden, golden * 1.05)
    verdict = judge(result, get_standard("default", torch.float32))
    assert result.cosine_similarity > 0.9999999
    assert not verdict.passed
    assert [o.check.metric for o in verdict.failures] == ["relative_euclidean_distance"]


def test_default_bf16_standard_passes_an_honest_bf16_rounding():
    golden = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    result = compare_tensors(golden, golden.to(torch.bfloat16))
    assert judge(result, get_standard("default", torch.float32, torch.bfloat16)).passed


# --- precedence ----------------------------------------------------------------------------------------


def test_layers_override_in_order_call_over_cli_over_marker_over_rule_over_profile():
    layers = [
        Layer("ini rule", thresholds=(Threshold("cosine_similarity", ">=", 0.9, "ini rule"),)),
        Layer.from_keywords("marker", min_cos=0.95, max_red=0.5),
        Layer.from_keywords("command line", min_cos=0.97),
        Layer.from_keywords("call argument", min_cos=0.99),
    ]
    standard = resolve_standard(torch.float32, torch.float32, layers)
    checks = checks_by_metric(standard)
    assert (checks["cosine_similarity"].value, checks["cosine_similarity"].source) == (0.99, "call argument")
    assert (checks["relative_euclidean_distance"].value, checks["relative_euclidean_distance"].source) == (
        0.5,
        "marker",
    )
    # dropping the call layer lets the command line win, and so on down
    assert checks_by_metric(resolve_standard(torch.float32, torch.float32, layers[:3]))[
        "cosine_similarity"
    ].source == ("command line")
    assert checks_by_metric(resolve_standard(torch.float32, torch.float32, layers[:1]))[
        "relative_euclidean_distance"
    ].source == ("dtype default (torch.float32)")


def test_the_highest_layer_naming_a_profile_chooses_it():
    layers = [Layer("marker", profile="strict"), Layer("command line", profile="msit")]
    assert resolve_standard(torch.float16, torch.float16, layers).name == "msit"
    assert resolve_standard(torch.float16, torch.float16, layers[:1]).name == "strict"


def test_a_threshold_replaces_a_compound_check_on_the_same_metric():
    layers = [Layer.from_keywords("call argument", profile="msprobe", min_cos=0.5)]
    standard = resolve_standard(torch.int32, torch.int32, layers)
    assert standard.name == "msprobe"
    layers = [Layer.from_keywords("call argument", profile="msprobe", min_cos=0.5)]
    standard = resolve_standard(torch.float32, torch.float32, layers)
    metrics = [c.metric if isinstance(c, Threshold) else str(c) for c in standard.checks]
    assert metrics == ["max_absolute_error", "tolerance_pass_rate", "cosine_similarity"]


def test_unknown_threshold_keyword_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match="min_cos"):
        Layer.from_keywords("call argument", min_cosine=0.9)


# --- rules ---------------------------------------------------------------------------------------------


def test_rule_lines_parse_into_thresholds_with_their_source():
    rule = parse_rule("*lm_head* cosine_similarity>=0.999 kl_divergence<=1e-4 max_red=0.01")
    assert rule.pattern == "*lm_head*"
    assert [str(t) for t in rule.thresholds] == [
        "cosine_similarity >= 0.999",
        "kl_divergence <= 0.0001",
        "relative_euclidean_distance <= 0.01",
    ]
    assert rule.thresholds[0].source == "ini llm_rules '*lm_head*'"
    assert rule.matches("root.lm_head") and not rule.matches("root.model.norm")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("*mlp*", "expected a node glob followed by thresholds"),
        ("*mlp* cosine_similarity~0.9", "cannot read"),
        ("*mlp* cosine>=0.9", "unknown metric 'cosine'"),
        ("*mlp* cosine_similarity>=abc", "cannot read"),
    ],
)
def test_bad_rule_lines_say_what_is_wrong(line, message):
    with pytest.raises(ValueError, match=message):
        parse_rule(line)


def test_later_matching_rules_win_and_comments_are_skipped():
    rules = parse_rules(
        [
            "# per-node overrides",
            "",
            "root.model.* cosine_similarity>=0.99",
            "root.model.layers.1* cosine_similarity>=0.9",
        ]
    )
    layer = rule_layer(rules, "root.model.layers.1.mlp")
    standard = resolve_standard(torch.float32, torch.float32, [layer])
    assert checks_by_metric(standard)["cosine_similarity"].value == 0.9
    assert rule_layer(rules, "root.lm_head") is None


# --- verdicts --------------------------------------------------------------------------------------------


def test_verdict_lists_failures_with_sources_and_problems():
    golden = torch.tensor([1.0, 2.0, 3.0, 4.0])
    my = torch.tensor([1.0, 2.0, math.nan, 4.4])
    standard = Standard("mine", (Threshold("max_absolute_error", "<=", 0.1, "call argument"),))
    verdict = judge(compare_tensors(golden, my), standard)
    assert not verdict.passed
    assert verdict.problems == ("NaN/Inf positions differ between golden and my",)
    assert "max_absolute_error = 0.4 fails <= 0.1 [source: call argument]" in verdict.summary()


def test_count_mismatch_fails_with_the_reason():
    verdict = judge(compare_tensors(torch.ones(3), torch.ones(4)), get_standard())
    assert not verdict.passed and "element counts differ" in verdict.problems[0]


def test_pass_rate_needs_the_standards_tolerance():
    standard = get_standard("msit", torch.float16, torch.float16)
    result = compare_tensors(torch.ones(3), torch.ones(3))  # computed with the float32 level
    with pytest.raises(ValueError, match=r"pass tolerance=standard\.tolerance"):
        judge(result, standard)


def test_relaxed_threshold_suggestion_would_pass():
    threshold = Threshold("cosine_similarity", ">=", 0.9999)
    hint = threshold.relaxed_to(0.99912345)
    assert hint == "min_cos=0.9991234"  # four significant digits of the distance to 1
    assert threshold.__class__("cosine_similarity", ">=", float(hint.split("=")[1])).passes(0.99912345)
    red = Threshold("relative_euclidean_distance", "<=", 0.01)
    value = float(red.relaxed_to(0.0123456).split("=")[1])
    assert value == 0.01235 and Threshold("relative_euclidean_distance", "<=", value).passes(0.0123456)
