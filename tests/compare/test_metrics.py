"""compare_tensors against an independent float64 NumPy reference, on both kernel backends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec import compare_tensors
from pytest_llmprec.compare import native
from pytest_llmprec.standards import Tolerance
from pytest_llmprec.testing.strategies import FLOAT_DTYPES, activations, logits, perturbed, tensors

NARROW_FLOATS = [d for d in FLOAT_DTYPES if d != torch.float64]
INTEGERS = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


KERNEL_VARIANTS = [f"c-{name}" for name in (native.instruction_sets() if native.available() else ["?"])]


@pytest.fixture(params=[*KERNEL_VARIANTS, "torch"])
def backend(request, monkeypatch):
    """Run a test with the C kernel compiled for each instruction set this CPU runs, and again
    with the torch backend."""
    if request.param == "torch":
        monkeypatch.setattr(native, "_kernel", None)
        return "torch"
    if not native.available():
        pytest.fail("the C kernel was not built; reinstall the package with a C compiler")
    was = native.use_instruction_set(request.param.removeprefix("c-"))
    request.addfinalizer(lambda: native.use_instruction_set(was))
    return "c"


# --- the reference ---------------------------------------------------------------------------------


def _ulp_bits(dtype: torch.dtype) -> tuple[int, int] | None:
    """Mantissa bits and smallest normal exponent, from the spacing of the values themselves
    (torch.finfo(float8_e5m2fnuz).eps is 2**-3 although its values near 1 are 2**-2 apart)."""
    if not dtype.is_floating_point:
        return None
    one = torch.tensor([1.0]).to(dtype)
    bits_view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[one.element_size()]
    spacing = float((one.view(bits_view) + 1).view(dtype)[0]) - 1.0
    return round(-math.log2(spacing)), round(math.log2(torch.finfo(dtype).smallest_normal))


def reference(golden: torch.Tensor, my: torch.Tensor, tol: Tolerance) -> dict:
    """Every metric from its definition, in float64 NumPy with exact (fsum) accumulation."""
    g = golden.reshape(-1).to(torch.float64).numpy()
    m = my.reshape(-1).to(torch.float64).numpy()
    g_fin, m_fin = np.isfinite(g), np.isfinite(m)
    ok = g_fin & m_fin
    same = (np.isnan(g) & np.isnan(m)) | (g == m)
    mismatch = (g_fin != m_fin) | (~g_fin & ~m_fin & ~same)
    gg, mm = g[ok], m[ok]
    n = len(gg)
    out = {
        "golden_nan_count": int(np.isnan(g).sum()),
        "golden_inf_count": int(np.isinf(g).sum()),
        "my_nan_count": int(np.isnan(m).sum()),
        "my_inf_count": int(np.isinf(m).sum()),
        "nonfinite_positions_match": not mismatch.any(),
        "compared_count": n,
        "element_count": g.size,
        "golden_max_value": g[g_fin].max() if g_fin.any() else math.nan,
        "golden_min_value": g[g_fin].min() if g_fin.any() else math.nan,
        "golden_mean_value": math.fsum(g[g_fin]) / g_fin.sum() if g_fin.any() else math.nan,
        "my_max_value": m[m_fin].max() if m_fin.any() else math.nan,
        "my_min_value": m[m_fin].min() if m_fin.any() else math.nan,
        "my_mean_value": math.fsum(m[m_fin]) / m_fin.sum() if m_fin.any() else math.nan,
        # a float64 sum of k values is off by at most about k * 2^-52 * sum |x|: with values that
        # cancel (int64 near +-2^63 and small ones) no relative bound holds for the means
        "_golden_mean_value_error": g_fin.sum() * 2.0**-52 * np.abs(g[g_fin]).mean() if g_fin.any() else 0,
        "_my_mean_value_error": m_fin.sum() * 2.0**-52 * np.abs(m[m_fin]).mean() if m_fin.any() else 0,
    }
    if n == 0:
        return out
    d = mm - gg
    ad, ag = np.abs(d), np.abs(gg)
    norm_g, norm_m = math.sqrt(math.fsum(gg * gg)), math.sqrt(math.fsum(mm * mm))
    if norm_g == 0 and norm_m == 0:
        cos = 1.0
    elif norm_g == 0 or norm_m == 0:
        cos = 0.0
    else:
        cos = math.fsum(gg * mm) / (norm_g * norm_m)
    rel = np.where(ag > 2.0**-23, ad / np.where(ag > 2.0**-23, ag, 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        quotient = np.where(ag > 0, ad / np.where(ag > 0, ag, 1.0), np.where(ad == 0, 0.0, math.inf))
    log_p = gg - (gg.max() + math.log(math.fsum(np.exp(gg - gg.max()))))
    log_q = mm - (mm.max() + math.log(math.fsum(np.exp(mm - mm.max()))))
    kl = max(0.0, math.fsum(np.exp(log_p) * (log_p - log_q)))
    sum_dd = math.fsum(d * d)
    grid = _ulp_bits(my.dtype)
    if grid is None:
        ulps = ad
    else:
        bits, emin = grid
        _, exponent = np.frexp(gg)
        exponent = np.where(gg == 0, emin, np.maximum(exponent - 1, emin))
        ulps = ad / np.exp2(exponent.astype(np.float64) - bits)
    with np.errstate(invalid="ignore"):
        worst = int(np.argmax(np.where(ok, np.abs(m - g), -1.0)))
    if norm_g:
        red = math.sqrt(sum_dd) / norm_g
    else:
        red = 0.0 if sum_dd == 0 else math.inf
    if sum_dd == 0:
        sqnr = math.inf
    else:
        sqnr = -math.inf if norm_g == 0 else 10 * math.log10(norm_g**2 / sum_dd)
    out.update(
        cosine_similarity=cos,
        max_relative_error=rel.max(),
        mean_relative_error=math.fsum(rel) / n,
        max_absolute_error=ad.max(),
        mean_absolute_error=math.fsum(ad) / n,
        kl_divergence=kl,
        relative_euclidean_distance=red,
        sqnr_db=sqnr,
        rel_err_ratio_0_001=float(np.mean(quotient < 1e-3)),
        rel_err_ratio_0_005=float(np.mean(quotient < 5e-3)),
        max_ulp_error=ulps.max(),
        tolerance_pass_rate=float(np.mean((ag <= tol.small) | (ad <= tol.atol + tol.rtol * ag))),
        worst_index=tuple(int(i) for i in np.unravel_index(worst, golden.shape)) if golden.dim() else (),
        worst_golden_value=g[worst],
        worst_my_value=m[worst],
    )
    return out


EXACT = {
    "golden_nan_count", "golden_inf_count", "my_nan_count", "my_inf_count", "nonfinite_positions_match",
    "compared_count", "element_count", "golden_max_value", "golden_min_value", "my_max_value",
    "my_min_value", "max_absolute_error", "max_relative_error", "worst_index", "worst_golden_value",
    "worst_my_value", "rel_err_ratio_0_001", "rel_err_ratio_0_005", "tolerance_pass_rate",
}  # fmt: skip


def assert_matches_reference(result, expected: dict, *, kl_abs: float | None = 1e-9, cos_abs: float = 1e-9):
    for name, want in expected.items():
        if name.startswith("_"):
            continue
        got = getattr(result, name)
        if name == "kl_divergence" and kl_abs is None:
            assert got >= 0 or math.isnan(got)
            continue
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(got), name
        elif name in EXACT:
            assert got == want, f"{name}: got {got!r}, reference {want!r}"
        elif name == "cosine_similarity":
            assert got == pytest.approx(want, abs=cos_abs), name
        elif name == "kl_divergence":
            assert got == pytest.approx(want, rel=1e-6, abs=kl_abs), name
        elif name.endswith("_mean_value"):
            bound = expected[f"_{name}_error"]
            assert got == pytest.approx(want, rel=1e-9, abs=bound), f"{name}: got {got!r}, reference {want!r}"
        elif name == "sqnr_db":
            assert got == pytest.approx(want, abs=1e-9) if math.isfinite(want) else got == want, name
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-300), (
                f"{name}: got {got!r}, reference {want!r}"
            )


def default_tol(golden: torch.Tensor, my: torch.Tensor) -> Tolerance:
    from pytest_llmprec.dtypes import coarser_dtype, msit_error_level

    return Tolerance(msit_error_level(coarser_dtype(golden.dtype, my.dtype)), small=2.0**-23)


# --- properties ------------------------------------------------------------------------------------

SHAPES = st.sampled_from([(), (1,), (7,), (3, 5), (2, 3, 4), (33,), (2, 2050)])


@st.composite
def wide_pairs(draw):
    """Same-shape pairs of arbitrary bit patterns (NaN, Inf, subnormals), any narrow dtype mix."""
    shape = draw(SHAPES)
    dtypes = st.sampled_from(NARROW_FLOATS + INTEGERS)
    golden = draw(tensors(dtypes, shape, allow_nan=True, allow_infinity=True))
    my = draw(tensors(dtypes, shape, allow_nan=True, allow_infinity=True))
    if draw(st.booleans()):  # make most positions agree so the metrics are exercised near zero
        mask = torch.rand(shape) < 0.8
        my = torch.where(mask, golden.to(torch.float64), my.to(torch.float64)).to(my.dtype)
    return golden, my


@given(wide_pairs())
def test_every_field_matches_the_reference_on_arbitrary_bit_patterns(backend, pair):
    golden, my = pair
    tol = default_tol(golden, my)
    # KL of values spanning 1e-45..3e38 is dominated by cancellation in any float64 evaluation:
    # here only its sign is pinned; realistic data below pins its value.
    assert_matches_reference(compare_tensors(golden, my), reference(golden, my, tol), kl_abs=None)


@given(
    activations(dtype=st.sampled_from([torch.float32, torch.float64])).flatmap(
        lambda x: st.tuples(st.just(x), st.sampled_from(FLOAT_DTYPES[:4]))
    )
)
def test_realistic_activations_match_the_reference_including_kl(backend, case):
    golden, low_dtype = case
    my = golden.to(low_dtype)
    tol = default_tol(golden, my)
    assert_matches_reference(compare_tensors(golden, my), reference(golden, my, tol))


@given(logits(dtype=torch.float32).flatmap(lambda x: st.tuples(st.just(x), perturbed(x.bfloat16(), ulps=3))))
def test_logits_kl_matches_the_reference(backend, case):
    golden, my = case
    tol = default_tol(golden, my)
    assert_matches_reference(compare_tensors(golden, my), reference(golden, my, tol))


@given(tensors(st.sampled_from(NARROW_FLOATS), st.sampled_from([(5,), (4, 6), (100,), (3, 257)])))
def test_identical_tensors_are_perfect(backend, tensor):
    result = compare_tensors(tensor, tensor.clone())
    assert result.cosine_similarity == 1.0  # exactly: assert_close_cos(g, g.clone(), 1.0) must pass
    assert result.kl_divergence == 0.0
    assert result.max_absolute_error == 0.0
    assert result.relative_euclidean_distance == 0.0
    assert result.max_ulp_error == 0.0
    assert result.rel_err_ratio_0_001 == 1.0
    assert result.sqnr_db == math.inf


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_identical_large_random_tensors_have_cosine_exactly_one(backend, dtype):
    # a million random values: the three float64 sums of the cosine round differently
    tensor = torch.randn(1_000_000, generator=torch.Generator().manual_seed(3)).to(dtype)
    result = compare_tensors(tensor, tensor.clone())
    assert (result.cosine_similarity, result.relative_euclidean_distance) == (1.0, 0.0)


@given(tensors(torch.float16, (16,)).flatmap(lambda x: st.tuples(st.just(x), perturbed(x, ulps=2))))
def test_perturbation_by_k_ulps_reports_at_most_2k_ulps(backend, case):
    golden, my = case
    # within a binade one step is one ULP; a step across a binade edge measures up to 2 ULP
    # of the smaller side, so k steps can measure up to 2k
    assert compare_tensors(golden, my).max_ulp_error <= 4.0


# --- explicit cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_one_step_up_is_one_ulp_from_the_smallest_normal_to_the_largest_finite_value(backend, dtype):
    info = torch.finfo(dtype)
    exponents = torch.arange(math.log2(info.smallest_normal), math.log2(info.max) + 1)
    golden = torch.cat([torch.exp2(exponents.double()).to(dtype), torch.tensor([info.max], dtype=dtype)])
    above = torch.nextafter(golden, torch.tensor(math.inf, dtype=dtype))
    my = torch.where(torch.isinf(above), torch.nextafter(golden, torch.tensor(0.0, dtype=dtype)), above)
    # one step down from the largest value is also one ULP: it stays in the same binade
    assert compare_tensors(golden, my).max_ulp_error == 1.0


def exact_kl(golden: torch.Tensor, my: torch.Tensor) -> float:
    """KL(softmax(golden) || softmax(my)) in 40-digit arithmetic."""
    import mpmath

    with mpmath.workdps(40):
        g = [mpmath.mpf(float(x)) for x in golden.double()]
        m = [mpmath.mpf(float(x)) for x in my.double()]
        lse_g = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in g))
        lse_m = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in m))
        return float(
            mpmath.fsum(mpmath.exp(a - lse_g) * (a - lse_g - b + lse_m) for a, b in zip(g, m, strict=True))
        )


@pytest.mark.parametrize("spread", [1e-3, 2e-2, 0.5])
def test_kl_is_accurate_to_a_billionth_of_itself(backend, spread):
    # spread 1e-3 and 2e-2 keep |my - golden| <= 1/16 (one exp per pair, shared softmax weights),
    # 0.5 takes the path with two exps; the absolute floor is float64 rounding of the log-sum-exps
    generator = torch.Generator().manual_seed(7)
    golden = 3 * torch.randn(3000, dtype=torch.float64, generator=generator)
    my = golden + spread * torch.randn(3000, dtype=torch.float64, generator=generator).clamp(-3, 3)
    want = exact_kl(golden, my)
    assert compare_tensors(golden, my).kl_divergence == pytest.approx(want, rel=1e-9, abs=1e-14)


def test_spec_pinned_values(backend):
    ones = torch.ones(2, 3)
    same = compare_tensors(ones, ones.clone())
    assert (same.cosine_similarity, same.max_relative_error, same.relative_euclidean_distance) == (
        1.0,
        0.0,
        0.0,
    )
    assert compare_tensors(ones, 10 * ones).relative_euclidean_distance == pytest.approx(9.0)


def test_uniform_scale_error_keeps_cosine_but_shows_in_red_and_relative_errors(backend):
    golden = torch.randn(64, 64, generator=torch.Generator().manual_seed(1))
    result = compare_tensors(golden, golden * 1.05)
    assert result.cosine_similarity == pytest.approx(1.0, abs=1e-12)
    assert result.relative_euclidean_distance == pytest.approx(0.05, rel=1e-6)
    assert result.mean_relative_error == pytest.approx(0.05, rel=1e-6)


def test_kl_follows_values_far_from_zero_that_jump_between_blocks(backend):
    # The AVX-512 kernel weighs a block against the running maximum of the blocks before it (the
    # first block against its own first value) and must fall back when a block jumps far above it.
    generator = torch.Generator().manual_seed(3)
    golden = torch.randn(4 * 1024, generator=generator, dtype=torch.float64) - 1000.0
    golden[2 * 1024 : 3 * 1024] += 800.0  # far above the maximum so far: exp(800) overflows
    my = golden + 1e-3 * torch.randn(golden.shape, generator=generator, dtype=torch.float64)
    assert_matches_reference(compare_tensors(golden, my), reference(golden, my, default_tol(golden, my)))


def test_ratios_and_tolerance_count_strictly_below_and_at_most_their_bounds(backend):
    # relative errors exactly 1e-3, 5e-4 and 5e-3 (correctly rounded quotients), over three blocks
    golden = torch.tensor([1000.0, 1000.0, 200.0], dtype=torch.float64).repeat(1024)
    my = torch.tensor([1001.0, 1000.5, 201.0], dtype=torch.float64).repeat(1024)
    result = compare_tensors(golden, my, tolerance=Tolerance(1e-3))
    assert (result.rel_err_ratio_0_001, result.rel_err_ratio_0_005) == (1 / 3, 2 / 3)
    assert result.tolerance_pass_rate == 2 / 3  # |d| = 1 <= 1e-3 * 1000 passes, 1 <= 0.2 does not


def test_sqnr_beyond_the_float64_range_of_its_quotient(backend):
    tiny, huge = torch.tensor([2.0**-500], dtype=torch.float64), torch.tensor([2.0**500], dtype=torch.float64)
    # signal 2^-1000 over noise about 2^1000: the quotient 2^-2000 underflows to 0
    assert compare_tensors(tiny, huge).sqnr_db == pytest.approx(-2000 * 10 * math.log10(2))
    assert compare_tensors(huge, huge + huge * 2.0**-40).sqnr_db == pytest.approx(80 * 10 * math.log10(2))


def test_all_zero_cases(backend):
    zeros = torch.zeros(4)
    both = compare_tensors(zeros, zeros)
    assert both.cosine_similarity == 1.0 and both.relative_euclidean_distance == 0.0
    one_sided = compare_tensors(zeros, torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert one_sided.cosine_similarity == 0.0
    assert one_sided.max_absolute_error == 1.0  # not masked where golden is zero (unlike msit)
    assert one_sided.relative_euclidean_distance == math.inf
    assert one_sided.max_relative_error == 0.0  # golden ~ 0 positions are left out, as msit
    assert compare_tensors(torch.tensor([0.0, 2.0]), torch.zeros(2)).cosine_similarity == 0.0


def test_nan_and_inf_at_the_same_positions_are_comparable(backend):
    golden = torch.tensor([1.0, math.nan, math.inf, -math.inf, 2.0])
    my = torch.tensor([1.0, math.nan, math.inf, -math.inf, 2.5])
    result = compare_tensors(golden, my)
    assert result.nonfinite_positions_match and result.fail_reason == ""
    assert (result.golden_nan_count, result.golden_inf_count) == (1, 2)
    assert result.compared_count == 2
    assert result.max_absolute_error == 0.5
    assert result.worst_index == (4,)


def test_nan_at_different_positions_is_reported_and_the_rest_compared(backend):
    golden = torch.tensor([1.0, 2.0, 3.0, math.inf])
    my = torch.tensor([math.nan, 2.0, 3.5, -math.inf])
    result = compare_tensors(golden, my)
    assert not result.nonfinite_positions_match
    assert "differ at 2 positions" in result.fail_reason
    assert "metrics use the 2 positions" in result.fail_reason
    assert result.compared_count == 2 and result.max_absolute_error == 0.5
    assert (result.my_nan_count, result.my_inf_count, result.golden_inf_count) == (1, 1, 1)


def test_empty_tensors_give_a_defined_result(backend):
    result = compare_tensors(torch.empty(0, 4), torch.empty(0, 4, dtype=torch.bfloat16))
    assert result.comparable and result.compared_count == 0
    assert result.cosine_similarity == 1.0 and result.max_absolute_error == 0.0
    assert "empty" in result.note and result.worst_index == ()
    assert math.isnan(result.golden_max_value)


def test_all_nan_on_both_sides_gives_a_defined_result(backend):
    nan = torch.full((3,), math.nan)
    result = compare_tensors(nan, nan.clone())
    assert result.compared_count == 0 and result.nonfinite_positions_match
    assert "no position is finite" in result.note


def test_element_count_mismatch_gives_a_reason_and_no_metrics(backend):
    result = compare_tensors(torch.ones(2, 3), torch.ones(2, 4))
    assert not result.comparable
    assert result.fail_reason == "element counts differ: golden has 6 elements [2, 3], my has 8 [2, 4]"
    assert all(math.isnan(result.metric(name)) for name in ("cosine_similarity", "kl_divergence"))


def test_equal_counts_with_different_shapes_compare_flattened_with_a_note(backend):
    golden = torch.arange(6.0).reshape(2, 3)
    my = golden.reshape(3, 2).clone()
    my[2, 1] += 1.0
    result = compare_tensors(golden, my)
    assert result.fail_reason == "" and "compared flattened" in result.note
    assert result.worst_index == (1, 2)  # indexed in the golden's shape


def test_huge_fp16_magnitudes_do_not_overflow(backend):
    golden = torch.tensor([65504.0, -65504.0, 60000.0, 1.0], dtype=torch.float16)
    my = torch.tensor([65504.0, -65472.0, 60000.0, 1.0], dtype=torch.float16)
    result = compare_tensors(golden, my)
    assert math.isfinite(result.cosine_similarity) and result.cosine_similarity > 0.999999
    assert result.max_absolute_error == 32.0
    assert result.max_ulp_error == 1.0  # one fp16 step at 65504 is 32
    assert math.isfinite(result.kl_divergence)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2])
def test_low_precision_inputs(backend, dtype):
    values = torch.tensor([0.5, -1.25, 3.0, 0.0]).to(dtype)
    result = compare_tensors(values.float(), values)
    assert result.max_absolute_error == 0.0
    assert result.my_dtype == str(dtype)
    int_type = torch.int16 if values.element_size() == 2 else torch.int8
    one_step = (values.view(int_type) + 1).view(dtype)  # next encoding: one step away from zero
    assert compare_tensors(values.float(), one_step).max_ulp_error == 1.0


def test_integer_and_bool_inputs_count_ulps_in_units(backend):
    result = compare_tensors(
        torch.tensor([1, 2, 3], dtype=torch.int32), torch.tensor([1, 5, 3], dtype=torch.int64)
    )
    assert result.max_absolute_error == 3.0 and result.max_ulp_error == 3.0
    flags = compare_tensors(torch.tensor([True, False]), torch.tensor([True, True]))
    assert flags.max_absolute_error == 1.0 and flags.golden_dtype == "torch.bool"


def test_numpy_numbers_and_lists_are_accepted(backend):
    assert compare_tensors(np.arange(4.0), [0.0, 1.0, 2.0, 3.5]).max_absolute_error == 0.5
    scalar = compare_tensors(2.0, 2.5)
    assert scalar.golden_shape == () and scalar.worst_index == () and scalar.max_absolute_error == 0.5
    with pytest.raises(TypeError, match="ragged"):
        compare_tensors([[1.0], [1.0, 2.0]], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="complex"):
        compare_tensors(torch.ones(2, dtype=torch.complex64), torch.ones(2))


def test_non_contiguous_inputs_are_read_in_flattened_order(backend):
    base = torch.randn(300, 200, generator=torch.Generator().manual_seed(3))
    golden, my = base.t(), (base * 1.001)[:, ::2].t()
    golden = golden[::2]
    expected = reference(golden.contiguous(), my.contiguous(), default_tol(golden, my))
    assert_matches_reference(compare_tensors(golden, my), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_column_slices_whose_rows_flatten_to_a_strided_view(backend, dtype):
    base = torch.randn(64, 4, 3, generator=torch.Generator().manual_seed(4))
    golden, my = base[:, :1, 0].to(dtype), (base * 1.001)[:, 1:2, 0].to(dtype)
    expected = reference(golden.contiguous(), my.contiguous(), default_tol(golden, my))
    assert_matches_reference(compare_tensors(golden, my), expected)


def test_large_tensors_split_over_threads_match_the_reference(backend):
    generator = torch.Generator().manual_seed(5)
    golden = torch.randn(2_500_000, generator=generator)
    my = (golden + torch.randn(2_500_000, generator=generator) * 1e-3).to(torch.bfloat16)
    my[1_700_001] = 100.0  # the worst element sits in the second thread's range
    result = compare_tensors(golden, my)
    assert result.worst_index == (1_700_001,)
    assert_matches_reference(result, reference(golden, my, default_tol(golden, my)))


def test_worst_element_ties_across_ranges_report_the_first(backend, monkeypatch):
    monkeypatch.setattr(native, "_threads_wanted", 3)  # ranges taken by three threads in any order
    golden = torch.zeros(3_000_000)
    my = golden.clone()
    my[[2_900_000, 1_000_000, 2_000_000]] = torch.tensor([-7.0, 7.0, 7.0])
    assert compare_tensors(golden, my).worst_index == (1_000_000,)


def test_as_dict_has_plain_values(backend):
    data = compare_tensors(torch.ones(2, 2), torch.ones(2, 2)).as_dict()
    assert data["golden_shape"] == [2, 2] and data["golden_dtype"] == "torch.float32"
    assert all(isinstance(v, (int, float, str, bool, list)) for v in data.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_are_compared_on_their_device_and_match_cpu():
    golden = torch.randn(1000, 37, generator=torch.Generator().manual_seed(7))
    my = golden.to(torch.bfloat16)
    on_cpu = compare_tensors(golden, my)
    on_gpu = compare_tensors(golden.cuda(), my.cuda())
    mixed = compare_tensors(golden.cuda(), my)  # my moves to the golden's device
    for result in (on_gpu, mixed):
        assert result.worst_index == on_cpu.worst_index
        assert result.cosine_similarity == pytest.approx(on_cpu.cosine_similarity, abs=1e-12)
        assert result.kl_divergence == pytest.approx(on_cpu.kl_divergence, rel=1e-6, abs=1e-12)
        assert result.max_ulp_error == pytest.approx(on_cpu.max_ulp_error, rel=1e-12)
