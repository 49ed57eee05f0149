/*
 * One-pass accumulation of the comparison statistics of two equally long
 * flat tensors on the CPU: the fast path behind pytest_llmprec.kernel.
 *
 *   accumulate(golden, g_kind, g_lut, my, m_kind, m_lut, ulp_bits, ulp_emin,
 *              tol_rtol, tol_atol, tol_small, offset) -> tuple of floats named by FIELDS
 *   count_over(golden, g_kind, g_lut, my, m_kind, m_lut, ulp_bits, ulp_emin,
 *              error_kind, bound) -> int (to explain a failure; see enum error_kind)
 *   largest_magnitude(buffer, width) -> int: the largest bit pattern, sign bit
 *          cleared, of a buffer's elements (the overflow scan; _kernel_scan.h)
 *   logits(golden, g_kind, g_lut, my, m_kind, m_lut, k) -> (gg, mm, gm, g_abs, m_abs,
 *          g_max, m_max, g_bad, m_bad, kl_g_max, kl_g_sum, kl_g_dot, kl_m_max, kl_m_sum,
 *          g_top, m_top): one row of logits (_kernel_logits.h); the tops are lists of
 *          (value, index) of each side's k largest values, largest first
 *
 * golden and my are read-only contiguous buffers of the element kinds below
 * (any one-byte dtype goes through a 256-entry float64 look-up table). Each
 * block of BLOCK elements is widened to float64 on the stack (float16 by the
 * CPU's F16C instruction where it has one) and reduced by branch-free loops
 * that the compiler vectorises; nothing is allocated. The
 * GIL is released while the data are read, so a caller may split a tensor
 * into ranges, reduce them on several threads and merge the tuples.
 *
 * With GCC on x86-64 the reduction is compiled for three instruction sets
 * (INSTRUCTION_SETS); the best one the CPU runs is used unless
 * use_instruction_set(name) picks another, which lets the tests check each.
 * With AVX-512 most blocks go through the single hand-written loop of
 * _kernel_avx512.h instead of the portable loops below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 1024 /* two blocks of float64 (16 KiB) stay in a 32 KiB L1 data cache */

enum kind { K_F64, K_F32, K_F16, K_BF16, K_LUT8, K_I16, K_U16, K_I32, K_U32, K_I64, K_U64, K_COUNT };
static const Py_ssize_t kind_size[K_COUNT] = {8, 4, 2, 2, 1, 2, 2, 4, 4, 8, 8};

/* One accumulator per field, in the order of field_names. */
typedef struct {
    double count, both_finite, g_nan, g_inf, m_nan, m_inf, nonfinite_mismatch;
    double g_finite, g_sum, g_max, g_min, m_finite, m_sum, m_max, m_min;
    double sum_gg, sum_mm, sum_gm, sum_dd, sum_ad, max_ad, worst_index, worst_golden, worst_my;
    double sum_rel, max_rel, within_0_001, within_0_005, within_tolerance, max_ulp;
    double kl_g_max, kl_g_sum, kl_g_dot, kl_m_max, kl_m_sum;
} acc_t;

static const char *field_names[] = {
    "count", "both_finite", "g_nan", "g_inf", "m_nan", "m_inf", "nonfinite_mismatch",
    "g_finite", "g_sum", "g_max", "g_min", "m_finite", "m_sum", "m_max", "m_min",
    "sum_gg", "sum_mm", "sum_gm", "sum_dd", "sum_ad", "max_ad", "worst_index", "worst_golden", "worst_my",
    "sum_rel", "max_rel", "within_0_001", "within_0_005", "within_tolerance", "max_ulp",
    "kl_g_max", "kl_g_sum", "kl_g_dot", "kl_m_max", "kl_m_sum",
};
#define NFIELDS ((Py_ssize_t)(sizeof(acc_t) / sizeof(double)))
_Static_assert(sizeof(field_names) / sizeof(field_names[0]) == sizeof(acc_t) / sizeof(double),
               "every accumulator needs a name");

/* Golden magnitudes at or below this are left out of the relative errors of
 * the standard report (float32 machine epsilon, as msit does). */
#define REL_EPS 1.1920928955078125e-07

/* The ULP grid of the "my" dtype, see ulp_error; made by ulp_grid. */
typedef struct {
    int integer;       /* integer dtype: one unit is 1 */
    double bits, emin; /* explicit mantissa bits, smallest normal exponent */
    double unit_scale; /* 2^(bits - 1) */
    int64_t lo;        /* bit pattern of 2^emin */
} ulp_grid_t;

/* Per-call settings: the ULP grid and the element-wise tolerance counted in
 * within_tolerance: an element passes when |golden| <= tol_small or
 * |my - golden| <= tol_atol + tol_rtol * |golden|. */
typedef struct {
    ulp_grid_t ulp;
    double tol_rtol, tol_atol, tol_small;
} params_t;

static inline double bits_to_double(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static inline uint64_t double_to_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static inline float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* IEEE half -> float, branch-free (normal, subnormal, inf and NaN). */
static inline float half_to_float(uint16_t h)
{
    uint32_t body = (uint32_t)(h & 0x7fffu) << 13;
    uint32_t expo = body & 0x0f800000u;
    uint32_t normal = body + (112u << 23);
    float special = bits_to_float(normal + (112u << 23));
    float sub = bits_to_float(body + (113u << 23)) - bits_to_float(113u << 23);
    float mag = expo == 0x0f800000u ? special : (expo == 0 ? sub : bits_to_float(normal));
    return (h & 0x8000u) ? -mag : mag;
}

/* Instruction sets the range reduction is compiled for, from the most portable. */
enum isa { ISA_BASELINE, ISA_V3, ISA_V4, ISA_COUNT };
static const char *isa_names[ISA_COUNT] = {"baseline", "x86-64-v3", "x86-64-v4"};

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define X86_VARIANTS 1
#include <immintrin.h>

/* Halves to float64 with the F16C conversion instruction, 8 at a time (AVX2). */
__attribute__((target("arch=x86-64-v3"))) static void widen_half_v3(const uint16_t *s, int n, double *dst)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i)));
        _mm256_storeu_pd(dst + i, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
        _mm256_storeu_pd(dst + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
    }
    for (; i < n; i++)
        dst[i] = half_to_float(s[i]);
}

/* The same, 16 at a time (AVX-512). */
__attribute__((target("arch=x86-64-v4"))) static void widen_half_v4(const uint16_t *s, int n, double *dst)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 f = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i)));
        _mm512_storeu_pd(dst + i, _mm512_cvtps_pd(_mm512_castps512_ps256(f)));
        _mm512_storeu_pd(dst + i + 8, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1))));
    }
    for (; i < n; i++)
        dst[i] = half_to_float(s[i]);
}
#endif

static inline __attribute__((always_inline)) void widen(const char *src, int kind, const double *lut, int n,
                                                        double *dst, const int isa)
{
    int i;
    switch (kind) {
    case K_F64: memcpy(dst, src, (size_t)n * 8); break;
    case K_F32: { const float *s = (const float *)src; for (i = 0; i < n; i++) dst[i] = s[i]; } break;
    case K_F16:
#ifdef X86_VARIANTS
        if (isa == ISA_V4) {
            widen_half_v4((const uint16_t *)src, n, dst);
            break;
        }
        if (isa == ISA_V3) {
            widen_half_v3((const uint16_t *)src, n, dst);
            break;
        }
#endif
        { const uint16_t *s = (const uint16_t *)src; for (i = 0; i < n; i++) dst[i] = half_to_float(s[i]); } break;
    case K_BF16: {
        const uint16_t *s = (const uint16_t *)src;
        for (i = 0; i < n; i++) dst[i] = bits_to_float((uint32_t)s[i] << 16);
    } break;
    case K_LUT8: { const uint8_t *s = (const uint8_t *)src; for (i = 0; i < n; i++) dst[i] = lut[s[i]]; } break;
    case K_I16: { const int16_t *s = (const int16_t *)src; for (i = 0; i < n; i++) dst[i] = s[i]; } break;
    case K_U16: { const uint16_t *s = (const uint16_t *)src; for (i = 0; i < n; i++) dst[i] = s[i]; } break;
    case K_I32: { const int32_t *s = (const int32_t *)src; for (i = 0; i < n; i++) dst[i] = s[i]; } break;
    case K_U32: { const uint32_t *s = (const uint32_t *)src; for (i = 0; i < n; i++) dst[i] = s[i]; } break;
    case K_I64: { const int64_t *s = (const int64_t *)src; for (i = 0; i < n; i++) dst[i] = (double)s[i]; } break;
    case K_U64: { const uint64_t *s = (const uint64_t *)src; for (i = 0; i < n; i++) dst[i] = (double)s[i]; } break;
    }
}

#define LOG2_E 1.4426950408889634
#define LN2_HIGH 0x1.62e42fefa39efp-1 /* ln 2 rounded to double */
#define LN2_LOW 0x1.abc9e3b39803fp-56 /* ln 2 - LN2_HIGH */

/* exp(x) for x <= 0 to about 2e-16 relative (Estrin-evaluated Taylor
 * polynomial after reduction by ln 2); arguments below -708 give exp(-708),
 * about 3e-308, which is negligible against the largest term 1. */
static inline double exp_nonpositive(double x)
{
    x = x < -708.0 ? -708.0 : x;
    const double shifted = x * LOG2_E + 0x1.8p52;
    const uint64_t n_bits = double_to_bits(shifted);
    const double n = shifted - 0x1.8p52;
    const double r = x - n * LN2_HIGH - n * LN2_LOW;
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double p01 = 1.0 + r, p23 = 0.5 + r * (1.0 / 6), p45 = 1.0 / 24 + r * (1.0 / 120);
    const double p67 = 1.0 / 720 + r * (1.0 / 5040), p89 = 1.0 / 40320 + r * (1.0 / 362880);
    const double p1011 = 1.0 / 3628800 + r * (1.0 / 39916800), p12 = 1.0 / 479001600;
    const double low = (p01 + r2 * p23) + r4 * (p45 + r2 * p67);
    const double high = (p89 + r2 * p1011) + r4 * p12;
    const int64_t exponent = (int64_t)(n_bits & 0xfffffffffffffULL) - (1LL << 51);
    return (low + r8 * high) * bits_to_double((uint64_t)(exponent + 1023) << 52);
}

/* exp(x) for x <= 0 to 6e-11 relative, cheaper than exp_nonpositive: the
 * same reduction by ln 2 (without its low-order term, far below that error),
 * a degree-7 polynomial (mpmath.chebyfit of exp on
 * [-ln2/2, ln2/2] with 8 terms, rounded to double), and 2^n added to the
 * exponent field. Arguments below -708 give about exp(-708) (the result
 * is then subnormal and rough, negligible against the largest term 1). */
static const double exp_weight_poly[8] = {0x1.ffffffffa7135p-1, 0x1.fffffffff61fdp-1, 0x1.0000005c89e4ep-1,
                                          0x1.5555557e7125ep-3, 0x1.555464a0f079ep-5, 0x1.1110a6222ea35p-7,
                                          0x1.6da753185ad01p-10, 0x1.a17df2ec2bc60p-13};

static inline double exp_weight(double x)
{
    x = x < -708.0 ? -708.0 : x;
    const double *c = exp_weight_poly;
    const double shifted = x * LOG2_E + 0x1.8p52;
    const double n = shifted - 0x1.8p52;
    const double r = x - n * LN2_HIGH;
    const double r2 = r * r, r4 = r2 * r2;
    const double p01 = c[0] + r * c[1], p23 = c[2] + r * c[3], p45 = c[4] + r * c[5], p67 = c[6] + r * c[7];
    const double poly = (p01 + r2 * p23) + r4 * (p45 + r2 * p67);
    /* The low bits of `shifted` hold n + 2^51; shifted left by 52 that is n << 52. */
    return bits_to_double(double_to_bits(poly) + (double_to_bits(shifted) << 52));
}

/* exp(d) for |d| <= 1/16 to about 1e-16 relative: Taylor polynomial of
 * degree 8 (remainder below 4e-17), evaluated like exp_nonpositive. */
static inline double exp_small(double d)
{
    const double d2 = d * d, d4 = d2 * d2;
    const double p01 = 1.0 + d, p23 = 0.5 + d * (1.0 / 6), p45 = 1.0 / 24 + d * (1.0 / 120);
    const double p67 = 1.0 / 720 + d * (1.0 / 5040), p8 = 1.0 / 40320;
    return (p01 + d2 * p23) + d4 * ((p45 + d2 * p67) + d4 * p8);
}

/* The grid of a dtype with `bits` explicit mantissa bits and smallest normal
 * exponent `emin`; bits < 0 marks integers. */
static ulp_grid_t ulp_grid(int bits, int emin)
{
    const int integer = bits < 0;
    if (integer)
        bits = emin = 0;
    const ulp_grid_t grid = {integer, bits, emin, bits_to_double((uint64_t)(1022 + bits) << 52),
                             (int64_t)(1023 + emin) << 52};
    return grid;
}

/* Error of `ad` in units of last place, 2^(e - bits), at the finite golden
 * value g, whose power of two 2^e is raised to 2^emin. 2^(1 - e) is built
 * from the bits of 2^e by mirroring the exponent field, which stays a normal
 * double for every e from -1022 to 1023 (all in 64-bit lanes, so it
 * vectorises). */
static inline double ulp_error(double ad, double g, const ulp_grid_t *grid)
{
    int64_t pow2 = (int64_t)(double_to_bits(g) & 0x7ff0000000000000ULL);
    pow2 = pow2 < grid->lo ? grid->lo : pow2;
    const double u = ad * bits_to_double((uint64_t)(0x7ff0000000000000LL - pow2)) * grid->unit_scale;
    return grid->integer ? ad : u;
}

/* Largest |my - golden| of a block for which KL takes the shortcut below. */
#define KL_SHARED_MAX_DIFF 0.0625

/* One block's statistics, before they are added to the accumulators. */
typedef struct {
    double both, g_nan, g_inf, m_nan, m_inf, mismatch, g_fin, m_fin;
    double g_sum, g_max, g_min, m_sum, m_max, m_min;
    double sgg, smm, sgm, sdd, sad, max_ad, srel, max_rel, w1, w5, wt, max_ulp;
    double kg_max, km_max; /* largest values at positions finite on both sides, for KL */
} block_t;

/* The statistics of one block. With checked == 0 every value is taken to be
 * finite and the compiler drops the masks (always_inline with a constant
 * argument); the plain sums g_sum and m_sum then tell whether that was
 * true (an infinity or a NaN anywhere makes them non-finite), and if not, 0
 * is returned, for the caller to rerun checked. */
static inline __attribute__((always_inline)) int block_stats(const double *g, const double *m, int n,
                                                              const params_t *p, const int checked, block_t *b)
{
    double both = 0, g_nan = 0, g_inf = 0, m_nan = 0, m_inf = 0, mismatch = 0;
    double g_fin = 0, g_sum = 0, g_max = -INFINITY, g_min = INFINITY;
    double m_fin = 0, m_sum = 0, m_max = -INFINITY, m_min = INFINITY;
    double sgg = 0, smm = 0, sgm = 0, sdd = 0, sad = 0, max_ad = -1.0;
    double srel = 0, max_rel = 0, w1 = 0, w5 = 0, wt = 0, max_ulp = 0;
    double kg_max = -INFINITY, km_max = -INFINITY;
    const ulp_grid_t grid = p->ulp;
    const double tol_rtol = p->tol_rtol, tol_atol = p->tol_atol, tol_small = p->tol_small;
    int i;

#pragma omp simd reduction(+ : both, g_nan, g_inf, m_nan, m_inf, mismatch, g_fin, g_sum, m_fin, m_sum, \
                               sgg, smm, sgm, sdd, sad, srel, w1, w5, wt)                            \
    reduction(max : g_max, m_max, max_ad, max_rel, max_ulp, kg_max, km_max) reduction(min : g_min, m_min)
    for (i = 0; i < n; i++) {
        const double gv = g[i], mv = m[i];
        const int gf = checked ? (gv - gv) == 0.0 : 1, mf = checked ? (mv - mv) == 0.0 : 1;
        const int ok = gf & mf;
        if (checked) {
            const int gn = gv != gv, mn = mv != mv;
            g_nan += gn ? 1.0 : 0.0;
            m_nan += mn ? 1.0 : 0.0;
            g_inf += !gf & !gn ? 1.0 : 0.0;
            m_inf += !mf & !mn ? 1.0 : 0.0;
            mismatch += (gf != mf) | (!gf & !mf & !((gn & mn) | (gv == mv))) ? 1.0 : 0.0;
            g_fin += gf ? 1.0 : 0.0;
            m_fin += mf ? 1.0 : 0.0;
            both += ok ? 1.0 : 0.0;
            kg_max = ok & (gv > kg_max) ? gv : kg_max;
            km_max = ok & (mv > km_max) ? mv : km_max;
        }
        g_sum += gf ? gv : 0.0;
        m_sum += mf ? mv : 0.0;
        g_max = gf & (gv > g_max) ? gv : g_max;
        g_min = gf & (gv < g_min) ? gv : g_min;
        m_max = mf & (mv > m_max) ? mv : m_max;
        m_min = mf & (mv < m_min) ? mv : m_min;

        const double gz = ok ? gv : 0.0, mz = ok ? mv : 0.0;
        const double d = mz - gz, ad = fabs(d), ag = fabs(gz);
        sgg += gz * gz;
        smm += mz * mz;
        sgm += gz * mz;
        sdd += d * d;
        sad += ad;
        max_ad = ok & (ad > max_ad) ? ad : max_ad;
        /* |d| / |g|, with 0 / 0 = 0 and x / 0 = inf (the smallest subnormal
         * stands in for 0), counted in the msprobe ratios; the standard
         * relative errors leave out golden values at or below REL_EPS. */
        const double quotient = ad / (ag > 0x1p-1074 ? ag : 0x1p-1074);
        const double rel = ag > REL_EPS ? quotient : 0.0;
        srel += rel;
        max_rel = rel > max_rel ? rel : max_rel;
        w1 += ok & (quotient < 1e-3) ? 1.0 : 0.0;
        w5 += ok & (quotient < 5e-3) ? 1.0 : 0.0;
        /* The bound is rounded twice, as in NumPy: the second use of slack
         * (a test that changes nothing: a NaN slack fails the first one
         * too) keeps the compiler from fusing it into the addition. */
        const double slack = tol_rtol * ag;
        wt += ok & ((ag <= tol_small) | ((ad <= tol_atol + slack) & (slack <= INFINITY))) ? 1.0 : 0.0;
        const double u = ulp_error(ad, gz, &grid);
        max_ulp = u > max_ulp ? u : max_ulp;
    }
    if (!checked) {
        if (!((g_sum - g_sum) == 0.0 && (m_sum - m_sum) == 0.0))
            return 0;
        both = g_fin = m_fin = n;
        kg_max = g_max;
        km_max = m_max;
    }
    const block_t out = {both, g_nan, g_inf, m_nan, m_inf, mismatch, g_fin, m_fin,
                         g_sum, g_max, g_min, m_sum, m_max, m_min,
                         sgg, smm, sgm, sdd, sad, max_ad, srel, max_rel, w1, w5, wt, max_ulp,
                         kg_max, km_max};
    *b = out;
    return 1;
}

/* Online log-sum-exp of both sides: rescale the running KL sums of `a` to
 * new maxima. */
static inline void kl_rescale(acc_t *a, double kg_max, double km_max)
{
    if (kg_max > a->kl_g_max) {
        const double s = a->kl_g_sum > 0 ? exp(a->kl_g_max - kg_max) : 0.0;
        a->kl_g_sum *= s;
        a->kl_g_dot *= s;
        a->kl_g_max = kg_max;
    }
    if (km_max > a->kl_m_max) {
        a->kl_m_sum *= a->kl_m_sum > 0 ? exp(a->kl_m_max - km_max) : 0.0;
        a->kl_m_max = km_max;
    }
}

/* Add a block's statistics to `a`: sums, extremes, the worst element (the
 * first one of the largest |d|, searched in g and m at flat position base),
 * and the KL maxima, to which the running KL sums are rescaled. */
static void add_block(acc_t *a, const block_t *b, const double *g, const double *m, int n, double base)
{
    a->count += n;
    a->both_finite += b->both;
    a->g_nan += b->g_nan; a->g_inf += b->g_inf; a->m_nan += b->m_nan; a->m_inf += b->m_inf;
    a->nonfinite_mismatch += b->mismatch;
    a->g_finite += b->g_fin; a->g_sum += b->g_sum;
    a->g_max = b->g_max > a->g_max ? b->g_max : a->g_max;
    a->g_min = b->g_min < a->g_min ? b->g_min : a->g_min;
    a->m_finite += b->m_fin; a->m_sum += b->m_sum;
    a->m_max = b->m_max > a->m_max ? b->m_max : a->m_max;
    a->m_min = b->m_min < a->m_min ? b->m_min : a->m_min;
    a->sum_gg += b->sgg; a->sum_mm += b->smm; a->sum_gm += b->sgm; a->sum_dd += b->sdd; a->sum_ad += b->sad;
    a->sum_rel += b->srel;
    a->max_rel = b->max_rel > a->max_rel ? b->max_rel : a->max_rel;
    a->within_0_001 += b->w1; a->within_0_005 += b->w5; a->within_tolerance += b->wt;
    a->max_ulp = b->max_ulp > a->max_ulp ? b->max_ulp : a->max_ulp;
    if (b->max_ad > a->max_ad) {
        for (int i = 0; i < n; i++) {
            if ((g[i] - g[i]) == 0.0 && (m[i] - m[i]) == 0.0 && fabs(m[i] - g[i]) == b->max_ad) {
                a->max_ad = b->max_ad;
                a->worst_index = base + i;
                a->worst_golden = g[i];
                a->worst_my = m[i];
                break;
            }
        }
    }
    kl_rescale(a, b->kg_max, b->km_max);
}

/* Whether a block whose largest |my - golden| is max_ad takes the shared-weight
 * KL shortcut (|gtop - mtop| <= 64 keeps exp(gtop - mtop) and the sums in range). */
static inline int kl_shared(double max_ad, const acc_t *a)
{
    return max_ad <= KL_SHARED_MAX_DIFF && fabs(a->kl_g_max - a->kl_m_max) <= 64;
}

/* Add a block's KL terms to `a`, whose maxima add_block has already raised. */
static inline __attribute__((always_inline)) void kl_block(const double *g, const double *m, int n,
                                                           double max_ad, const int checked, acc_t *a)
{
    const double gtop = a->kl_g_max, mtop = a->kl_m_max;
    double sg = 0, sdot = 0, sm = 0;
    int i;
    if (max_ad < 0)
        return; /* no position is finite on both sides */
    if (kl_shared(max_ad, a)) {
        /* One exp per pair: exp(m - mtop) = exp(g - gtop) * exp(m - g) * exp(gtop - mtop),
         * with exp(m - g) from exp_small and the last factor once per block.
         * The weights exp(g - gtop) come from exp_weight: all three sums share
         * them, so an error of relative size e in a weight only reweights one
         * pair in both distributions, which moves the divergence by at most
         * about 2e of itself (about 1e-10); the exp(m - g) factors stay exact
         * to 1e-16, which the small divergences of close tensors need. */
#pragma omp simd reduction(+ : sg, sdot, sm)
        for (i = 0; i < n; i++) {
            const double gv = g[i], mv = m[i];
            const int ok = checked ? ((gv - gv) == 0.0) & ((mv - mv) == 0.0) : 1;
            const double eg = exp_weight(ok ? gv - gtop : 0.0);
            const double d = ok ? mv - gv : 0.0;
            sg += ok ? eg : 0.0;
            sdot += ok ? eg * d : 0.0;
            sm += ok ? eg * exp_small(d) : 0.0;
        }
        a->kl_g_sum += sg;
        a->kl_g_dot -= sdot;
        a->kl_m_sum += exp(gtop - mtop) * sm;
        return;
    }
#pragma omp simd reduction(+ : sg, sdot, sm)
    for (i = 0; i < n; i++) {
        const double gv = g[i], mv = m[i];
        const int ok = checked ? ((gv - gv) == 0.0) & ((mv - mv) == 0.0) : 1;
        const double eg = exp_nonpositive(ok ? gv - gtop : 0.0);
        const double em = exp_nonpositive(ok ? mv - mtop : 0.0);
        sg += ok ? eg : 0.0;
        sdot += ok ? eg * (gv - mv) : 0.0;
        sm += ok ? em : 0.0;
    }
    a->kl_g_sum += sg;
    a->kl_g_dot += sdot;
    a->kl_m_sum += sm;
}

/* Reduce one block into `a` with the portable loops: unchecked first, checked
 * when the block holds an infinity or a NaN. */
static inline __attribute__((always_inline)) void reduce_block(const double *g, const double *m, int n,
                                                               double base, const params_t *p, acc_t *a)
{
    block_t b;
    if (block_stats(g, m, n, p, 0, &b)) {
        add_block(a, &b, g, m, n, base);
        kl_block(g, m, n, b.max_ad, 0, a);
    } else {
        block_stats(g, m, n, p, 1, &b);
        add_block(a, &b, g, m, n, base);
        kl_block(g, m, n, b.max_ad, 1, a);
    }
}

#ifdef X86_VARIANTS
#include "_kernel_avx512.h"
#endif

#define RANGE_ARGS const char *g, int g_kind, const double *glut, const char *m, int m_kind, \
                   const double *mlut, Py_ssize_t n, Py_ssize_t offset, const params_t *p, acc_t *a
typedef void (*range_fn)(RANGE_ARGS);

static inline __attribute__((always_inline)) void reduce_range(RANGE_ARGS, const int isa)
{
    double gblock[BLOCK] __attribute__((aligned(64))), mblock[BLOCK] __attribute__((aligned(64)));
    for (Py_ssize_t start = 0; start < n; start += BLOCK) {
        const int len = (int)(n - start < BLOCK ? n - start : BLOCK);
        widen(g + start * kind_size[g_kind], g_kind, glut, len, gblock, isa);
        widen(m + start * kind_size[m_kind], m_kind, mlut, len, mblock, isa);
        const double base = (double)(offset + start);
#ifdef X86_VARIANTS
        if (isa == ISA_V4 && reduce_block_v4(gblock, mblock, len, base, p, a))
            continue;
#endif
        reduce_block(gblock, mblock, len, base, p, a);
    }
}

static void reduce_range_baseline(RANGE_ARGS) { reduce_range(g, g_kind, glut, m, m_kind, mlut, n, offset, p, a, ISA_BASELINE); }
#ifdef X86_VARIANTS
__attribute__((target("arch=x86-64-v3"))) static void reduce_range_v3(RANGE_ARGS)
{
    reduce_range(g, g_kind, glut, m, m_kind, mlut, n, offset, p, a, ISA_V3);
}
__attribute__((target("arch=x86-64-v4"))) static void reduce_range_v4(RANGE_ARGS)
{
    reduce_range(g, g_kind, glut, m, m_kind, mlut, n, offset, p, a, ISA_V4);
}
static const range_fn isa_functions[ISA_COUNT] = {reduce_range_baseline, reduce_range_v3, reduce_range_v4};
#else
static const range_fn isa_functions[ISA_COUNT] = {reduce_range_baseline, NULL, NULL};
#endif
#include "_kernel_logits.h"

static int isa_best;    /* the best instruction set this CPU runs, set at import */
static int isa_current; /* the one accumulate uses */
#include "_kernel_scan.h"

static int read_lut(PyObject *obj, int kind, Py_buffer *view, const double **lut)
{
    *lut = NULL;
    view->obj = NULL;
    if (kind != K_LUT8)
        return 0;
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->len != 256 * (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "a one-byte kind needs a table of 256 float64 values");
        PyBuffer_Release(view);
        return -1;
    }
    *lut = (const double *)view->buf;
    return 0;
}

/* Two element buffers and their look-up tables, as a call passed them. */
typedef struct {
    Py_buffer g, m, g_lut_view, m_lut_view;
    int g_kind, m_kind;
    const double *g_lut, *m_lut;
    Py_ssize_t n;
} pair_t;

static void close_pair(pair_t *pair)
{
    if (pair->g_lut_view.obj) PyBuffer_Release(&pair->g_lut_view);
    if (pair->m_lut_view.obj) PyBuffer_Release(&pair->m_lut_view);
    PyBuffer_Release(&pair->g);
    PyBuffer_Release(&pair->m);
}

/* Check the kinds, tables and element counts of a pair whose buffers were just
 * parsed; on failure set an exception, release everything and return -1. */
static int open_pair(pair_t *pair, PyObject *g_lut, PyObject *m_lut)
{
    pair->g_lut_view.obj = pair->m_lut_view.obj = NULL;
    if (pair->g_kind < 0 || pair->g_kind >= K_COUNT || pair->m_kind < 0 || pair->m_kind >= K_COUNT) {
        PyErr_SetString(PyExc_ValueError, "unknown element kind");
        goto fail;
    }
    if (read_lut(g_lut, pair->g_kind, &pair->g_lut_view, &pair->g_lut) < 0 ||
        read_lut(m_lut, pair->m_kind, &pair->m_lut_view, &pair->m_lut) < 0)
        goto fail;
    const Py_ssize_t g_size = kind_size[pair->g_kind], m_size = kind_size[pair->m_kind];
    pair->n = pair->g.len / g_size;
    if (pair->g.len % g_size || pair->m.len % m_size || pair->m.len / m_size != pair->n) {
        PyErr_SetString(PyExc_ValueError, "the two buffers hold different element counts");
        goto fail;
    }
    return 0;
fail:
    close_pair(pair);
    return -1;
}

static PyObject *accumulate(PyObject *self, PyObject *args)
{
    pair_t pair;
    PyObject *g_lut, *m_lut, *result;
    int ulp_bits, ulp_emin;
    params_t p;
    Py_ssize_t offset;
    acc_t a;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*iOy*iOiidddn", &pair.g, &pair.g_kind, &g_lut, &pair.m, &pair.m_kind, &m_lut,
                          &ulp_bits, &ulp_emin, &p.tol_rtol, &p.tol_atol, &p.tol_small, &offset))
        return NULL;
    if (open_pair(&pair, g_lut, m_lut) < 0)
        return NULL;
    p.ulp = ulp_grid(ulp_bits, ulp_emin);
    memset(&a, 0, sizeof(a));
    a.g_max = a.m_max = a.kl_g_max = a.kl_m_max = -INFINITY;
    a.g_min = a.m_min = INFINITY;
    a.max_ad = -1.0;
    a.worst_index = -1.0;
    a.worst_golden = a.worst_my = NAN;

    Py_BEGIN_ALLOW_THREADS
    isa_functions[isa_current]((const char *)pair.g.buf, pair.g_kind, pair.g_lut, (const char *)pair.m.buf,
                               pair.m_kind, pair.m_lut, pair.n, offset, &p, &a);
    Py_END_ALLOW_THREADS

    close_pair(&pair);
    result = PyTuple_New(NFIELDS);
    if (result) {
        const double *values = (const double *)&a;
        for (Py_ssize_t k = 0; k < NFIELDS; k++)
            PyTuple_SET_ITEM(result, k, PyFloat_FromDouble(values[k]));
    }
    return result;
}

/* Error kinds count_over counts: |my - golden|, the relative error of
 * max_relative_error (0 where |golden| <= REL_EPS), the error in ULP. */
enum error_kind { E_ABS, E_REL, E_ULP, E_COUNT };

static Py_ssize_t count_range_over(const pair_t *pair, const ulp_grid_t *grid, int kind, double bound)
{
    double gblock[BLOCK] __attribute__((aligned(64))), mblock[BLOCK] __attribute__((aligned(64)));
    Py_ssize_t total = 0;
    for (Py_ssize_t start = 0; start < pair->n; start += BLOCK) {
        const int len = (int)(pair->n - start < BLOCK ? pair->n - start : BLOCK);
        widen((const char *)pair->g.buf + start * kind_size[pair->g_kind], pair->g_kind, pair->g_lut, len, gblock,
              ISA_BASELINE);
        widen((const char *)pair->m.buf + start * kind_size[pair->m_kind], pair->m_kind, pair->m_lut, len, mblock,
              ISA_BASELINE);
        double over = 0;
#pragma omp simd reduction(+ : over)
        for (int i = 0; i < len; i++) {
            const double gv = gblock[i], mv = mblock[i];
            const int ok = ((gv - gv) == 0.0) & ((mv - mv) == 0.0);
            const double gz = ok ? gv : 0.0, ad = fabs((ok ? mv : 0.0) - gz), ag = fabs(gz);
            const double err = kind == E_ABS ? ad : kind == E_REL ? (ag > REL_EPS ? ad / ag : 0.0)
                                                                  : ulp_error(ad, gz, grid);
            over += ok & (err > bound) ? 1.0 : 0.0;
        }
        total += (Py_ssize_t)over;
    }
    return total;
}

static PyObject *count_over(PyObject *self, PyObject *args)
{
    pair_t pair;
    PyObject *g_lut, *m_lut;
    int ulp_bits, ulp_emin, kind;
    double bound;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*iOy*iOiiid", &pair.g, &pair.g_kind, &g_lut, &pair.m, &pair.m_kind, &m_lut,
                          &ulp_bits, &ulp_emin, &kind, &bound))
        return NULL;
    if (open_pair(&pair, g_lut, m_lut) < 0)
        return NULL;
    if (kind < 0 || kind >= E_COUNT) {
        close_pair(&pair);
        return PyErr_Format(PyExc_ValueError, "unknown error kind %d", kind);
    }
    const ulp_grid_t grid = ulp_grid(ulp_bits, ulp_emin);
    Py_ssize_t total;
    Py_BEGIN_ALLOW_THREADS
    total = count_range_over(&pair, &grid, kind, bound);
    Py_END_ALLOW_THREADS
    close_pair(&pair);
    return PyLong_FromSsize_t(total);
}

/* The k largest values of a top_t as a list of (value, index), largest first. */
static PyObject *top_list(const top_t *t)
{
    PyObject *list = PyList_New(t->filled);
    for (Py_ssize_t j = 0; list && j < t->filled; j++) {
        PyObject *item = Py_BuildValue("(dn)", t->values[j], t->indices[j]);
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, j, item);
    }
    return list;
}

static PyObject *logits(PyObject *self, PyObject *args)
{
    pair_t pair;
    PyObject *g_lut, *m_lut, *g_top = NULL, *m_top = NULL, *result = NULL;
    Py_ssize_t k;
    logits_t out;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*iOy*iOn", &pair.g, &pair.g_kind, &g_lut, &pair.m, &pair.m_kind, &m_lut, &k))
        return NULL;
    if (open_pair(&pair, g_lut, m_lut) < 0)
        return NULL;
    k = k < 0 ? 0 : k > pair.n ? pair.n : k;
    memset(&out, 0, sizeof(out));
    out.g_max = out.m_max = out.kl.kl_g_max = out.kl.kl_m_max = -INFINITY;
    out.g_top.k = out.m_top.k = k;
    out.g_top.values = PyMem_Malloc((size_t)(k ? k : 1) * sizeof(double));
    out.m_top.values = PyMem_Malloc((size_t)(k ? k : 1) * sizeof(double));
    out.g_top.indices = PyMem_Malloc((size_t)(k ? k : 1) * sizeof(Py_ssize_t));
    out.m_top.indices = PyMem_Malloc((size_t)(k ? k : 1) * sizeof(Py_ssize_t));
    if (!out.g_top.values || !out.m_top.values || !out.g_top.indices || !out.m_top.indices) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    logits_functions[isa_current]((const char *)pair.g.buf, pair.g_kind, pair.g_lut, (const char *)pair.m.buf,
                                  pair.m_kind, pair.m_lut, pair.n, &out);
    Py_END_ALLOW_THREADS
    g_top = top_list(&out.g_top);
    m_top = top_list(&out.m_top);
    if (g_top && m_top)
        result = Py_BuildValue("(dddddddiidddddOO)", out.gg, out.mm, out.gm, out.g_abs, out.m_abs, out.g_max,
                               out.m_max, out.g_bad, out.m_bad, out.kl.kl_g_max, out.kl.kl_g_sum, out.kl.kl_g_dot,
                               out.kl.kl_m_max, out.kl.kl_m_sum, g_top, m_top);
done:
    Py_XDECREF(g_top);
    Py_XDECREF(m_top);
    PyMem_Free(out.g_top.values);
    PyMem_Free(out.m_top.values);
    PyMem_Free(out.g_top.indices);
    PyMem_Free(out.m_top.indices);
    close_pair(&pair);
    return result;
}

/* use_instruction_set(name) -> str: reduce with the named instruction set (one of
 * INSTRUCTION_SETS) from now on, and say which one was in use. */
static PyObject *use_instruction_set(PyObject *self, PyObject *arg)
{
    (void)self;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    for (int k = 0; k <= isa_best; k++) {
        if (strcmp(name, isa_names[k]) == 0) {
            const int was = isa_current;
            isa_current = k;
            return PyUnicode_FromString(isa_names[was]);
        }
    }
    return PyErr_Format(PyExc_ValueError, "%s is not an instruction set this CPU runs", name);
}

static PyMethodDef methods[] = {
    {"accumulate", accumulate, METH_VARARGS, "Reduce two flat buffers to the comparison accumulators."},
    {"count_over", count_over, METH_VARARGS, "Count the elements whose error of one kind exceeds a bound."},
    {"logits", logits, METH_VARARGS, "The statistics of one row of logits and the k largest values of each side."},
    {"largest_magnitude", largest_magnitude, METH_VARARGS, "The largest sign-cleared bit pattern of a buffer."},
    {"use_instruction_set", use_instruction_set, METH_O, "Reduce with the named instruction set from now on."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernel(void)
{
#ifdef X86_VARIANTS
    __builtin_cpu_init();
    isa_best = __builtin_cpu_supports("x86-64-v4") ? ISA_V4 : __builtin_cpu_supports("x86-64-v3") ? ISA_V3 : ISA_BASELINE;
#endif
    isa_current = isa_best;
    PyObject *mod = PyModule_Create(&module);
    if (!mod)
        return NULL;
    PyObject *names = PyTuple_New(NFIELDS);
    if (!names)
        goto fail;
    for (Py_ssize_t k = 0; k < NFIELDS; k++)
        PyTuple_SET_ITEM(names, k, PyUnicode_FromString(field_names[k]));
    if (PyModule_AddObject(mod, "FIELDS", names) < 0) {
        Py_DECREF(names);
        goto fail;
    }
    static const char *kinds[K_COUNT] = {"f64", "f32", "f16", "bf16", "lut8", "i16", "u16", "i32", "u32", "i64", "u64"};
    for (int k = 0; k < K_COUNT; k++)
        if (PyModule_AddIntConstant(mod, kinds[k], k) < 0)
            goto fail;
    if (PyModule_AddIntConstant(mod, "error_abs", E_ABS) < 0 || PyModule_AddIntConstant(mod, "error_rel", E_REL) < 0 ||
        PyModule_AddIntConstant(mod, "error_ulp", E_ULP) < 0)
        goto fail;
    if (PyModule_AddIntConstant(mod, "BLOCK", BLOCK) < 0)
        goto fail;
    PyObject *sets = PyTuple_New(isa_best + 1); /* best first */
    if (!sets)
        goto fail;
    for (int k = isa_best; k >= 0; k--)
        PyTuple_SET_ITEM(sets, isa_best - k, PyUnicode_FromString(isa_names[k]));
    if (PyModule_AddObject(mod, "INSTRUCTION_SETS", sets) < 0) {
        Py_DECREF(sets);
        goto fail;
    }
    return mod;
fail:
    Py_DECREF(mod);
    return NULL;
}
