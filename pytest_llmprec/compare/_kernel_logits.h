/*
 * The statistics of one row of logits, golden and my, in one pass: what
 * logits.metrics needs and nothing else (accumulate computes some thirty
 * accumulators; a logits comparison uses six of them and the k largest values
 * of each side). Included by _kernel.c after kl_block.
 *
 * Per block of BLOCK elements, widened to float64: the dot products, the sums
 * of |g| and |m|, both maxima and the largest |m - g| in one vectorised loop;
 * then the KL terms (kl_block) and, only when the block's maximum beats the
 * smallest of the k kept so far, a scan that inserts its larger values. A
 * block whose sum of |x| is not finite is scanned for NaN and infinity; once
 * either side holds one, only the flags are kept (msit then reports the pair
 * as not comparable).
 */

/* The k largest values of one side seen so far, largest first; a later equal
 * value does not displace an earlier one, so ties keep increasing indices. */
typedef struct {
    Py_ssize_t k, filled;
    double *values;
    Py_ssize_t *indices;
} top_t;

static inline void top_insert(top_t *t, double v, Py_ssize_t index)
{
    Py_ssize_t j = t->filled < t->k ? t->filled++ : t->k - 1;
    for (; j > 0 && t->values[j - 1] < v; j--) {
        t->values[j] = t->values[j - 1];
        t->indices[j] = t->indices[j - 1];
    }
    t->values[j] = v;
    t->indices[j] = index;
}

static void top_block(top_t *t, const double *x, int n, double block_max, Py_ssize_t base)
{
    if (t->k == 0 || (t->filled == t->k && !(block_max > t->values[t->k - 1])))
        return;
    for (int i = 0; i < n; i++)
        if (t->filled < t->k || x[i] > t->values[t->k - 1])
            top_insert(t, x[i], base + i);
}

/* What logits_range accumulates; kl holds only the KL fields of acc_t. */
typedef struct {
    double gg, mm, gm, g_abs, m_abs, g_max, m_max;
    int g_bad, m_bad;
    acc_t kl;
    top_t g_top, m_top;
} logits_t;

static inline __attribute__((always_inline)) void logits_range(const char *g, int g_kind, const double *glut,
                                                               const char *m, int m_kind, const double *mlut,
                                                               Py_ssize_t n, logits_t *out, const int isa)
{
    double gblock[BLOCK] __attribute__((aligned(64))), mblock[BLOCK] __attribute__((aligned(64)));
    for (Py_ssize_t start = 0; start < n; start += BLOCK) {
        const int len = (int)(n - start < BLOCK ? n - start : BLOCK);
        widen(g + start * kind_size[g_kind], g_kind, glut, len, gblock, isa);
        widen(m + start * kind_size[m_kind], m_kind, mlut, len, mblock, isa);
        double gg = 0, mm = 0, gm = 0, ga = 0, ma = 0, g_max = -INFINITY, m_max = -INFINITY, max_ad = 0;
        int i;
#pragma omp simd reduction(+ : gg, mm, gm, ga, ma) reduction(max : g_max, m_max, max_ad)
        for (i = 0; i < len; i++) {
            const double gv = gblock[i], mv = mblock[i], ad = fabs(mv - gv);
            gg += gv * gv;
            mm += mv * mv;
            gm += gv * mv;
            ga += fabs(gv);
            ma += fabs(mv);
            g_max = gv > g_max ? gv : g_max;
            m_max = mv > m_max ? mv : m_max;
            max_ad = ad > max_ad ? ad : max_ad;
        }
        if (!((ga - ga) == 0.0 && (ma - ma) == 0.0)) {
            for (i = 0; i < len; i++) {
                out->g_bad |= (gblock[i] - gblock[i]) != 0.0;
                out->m_bad |= (mblock[i] - mblock[i]) != 0.0;
            }
        }
        if (out->g_bad || out->m_bad)
            continue;
        out->gg += gg; out->mm += mm; out->gm += gm; out->g_abs += ga; out->m_abs += ma;
        out->g_max = g_max > out->g_max ? g_max : out->g_max;
        out->m_max = m_max > out->m_max ? m_max : out->m_max;
        kl_rescale(&out->kl, g_max, m_max);
        kl_block(gblock, mblock, len, max_ad, 0, &out->kl);
        top_block(&out->g_top, gblock, len, g_max, start);
        top_block(&out->m_top, mblock, len, m_max, start);
    }
}

#define LOGITS_ARGS const char *g, int g_kind, const double *glut, const char *m, int m_kind, const double *mlut, \
                    Py_ssize_t n, logits_t *out
typedef void (*logits_fn)(LOGITS_ARGS);

static void logits_baseline(LOGITS_ARGS) { logits_range(g, g_kind, glut, m, m_kind, mlut, n, out, ISA_BASELINE); }
#ifdef X86_VARIANTS
__attribute__((target("arch=x86-64-v3"))) static void logits_v3(LOGITS_ARGS)
{
    logits_range(g, g_kind, glut, m, m_kind, mlut, n, out, ISA_V3);
}
__attribute__((target("arch=x86-64-v4"))) static void logits_v4(LOGITS_ARGS)
{
    logits_range(g, g_kind, glut, m, m_kind, mlut, n, out, ISA_V4);
}
static const logits_fn logits_functions[ISA_COUNT] = {logits_baseline, logits_v3, logits_v4};
#else
static const logits_fn logits_functions[ISA_COUNT] = {logits_baseline, NULL, NULL};
#endif
