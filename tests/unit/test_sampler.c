/* test_sampler.c: unit tests for the token sampler (citadel/sampler.h) and
 * its internals (sample/cands.h selection and filters, sample/rng.h).
 *
 * Filters are checked two ways: by which tokens ever appear over many seeded
 * draws on hand-built distributions, and by comparing cit_cand_filter on
 * large random rows against a naive full-sort reference written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citadel/sampler.h"
#include "sample/cands.h"
#include "sample/rng.h"

/* ---- helpers ---------------------------------------------------------- */

/* Parameters with every filter and penalty off, at the given temperature. */
static struct cit_sampler_params plain(float temperature)
{
    struct cit_sampler_params p;
    cit_sampler_params_default(&p);
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.penalty_last_n = 0;
    return p;
}

static struct cit_sampler *make(const struct cit_sampler_params *p, int32_t n_vocab)
{
    struct cit_sampler *s = NULL;
    char err[256] = "";
    enum cit_status st = cit_sampler_new(p, n_vocab, &s, err, sizeof err);
    if (st != CIT_OK)
        fprintf(stderr, "cit_sampler_new: %s\n", err);
    assert_int_equal(st, CIT_OK);
    assert_non_null(s);
    return s;
}

static int32_t sample1(struct cit_sampler *s, const float *logits)
{
    int32_t tok = -1;
    char err[256] = "";
    enum cit_status st = cit_sampler_sample(s, logits, &tok, err, sizeof err);
    if (st != CIT_OK)
        fprintf(stderr, "cit_sampler_sample: %s\n", err);
    assert_int_equal(st, CIT_OK);
    return tok;
}

/* Bitmask of the tokens (n <= 32) that appear over `seeds` samplers drawing
 * `draws` tokens each from one logit row. */
static uint32_t seen_set(struct cit_sampler_params p, const float *logits, int32_t n, int seeds,
                         int draws)
{
    uint32_t seen = 0;
    for (int k = 0; k < seeds; k++) {
        p.seed = 1000 + (uint64_t)k;
        struct cit_sampler *s = make(&p, n);
        for (int d = 0; d < draws; d++) {
            int32_t t = sample1(s, logits);
            assert_true(t >= 0 && t < n);
            seen |= 1u << t;
        }
        cit_sampler_free(s);
    }
    return seen;
}

/* logits[i] = log(prob[i]). */
static void log_of(const double *prob, float *logits, int n)
{
    for (int i = 0; i < n; i++)
        logits[i] = (float)log(prob[i]);
}

static uint64_t test_rng_state = 88172645463325252ull;
static double urand(void) /* [0, 1) */
{
    return (double)(cit_splitmix64(&test_rng_state) >> 11) * 0x1.0p-53;
}

static void random_logits(float *l, int32_t n, double scale)
{
    for (int32_t i = 0; i < n; i++)
        l[i] = (float)((urand() * 2.0 - 1.0) * scale);
}

/* A fixed "model" distribution: sorted, id 2 (0.50), 1 (0.30), 3 (0.15), 0 (0.05). */
static const double four_p[4] = { 0.05, 0.30, 0.50, 0.15 };
#define BIT(i) (1u << (i))

/* ---- generator ---------------------------------------------------------- */

static void test_rng_reference(void **state)
{
    (void)state;
    uint64_t sm = 1234567;
    const uint64_t sm_want[5] = { 6457827717110365317ull, 3203168211198807973ull,
                                  9817491932198370423ull, 4593380528125082431ull,
                                  16408922859458223821ull };
    for (int i = 0; i < 5; i++)
        assert_true(cit_splitmix64(&sm) == sm_want[i]);

    struct cit_rng r = { { 1, 2, 3, 4 } };
    const uint64_t x_want[10] = { 11520ull,
                                  0ull,
                                  1509978240ull,
                                  1215971899390074240ull,
                                  1216172134540287360ull,
                                  607988272756665600ull,
                                  16172922978634559625ull,
                                  8476171486693032832ull,
                                  10595114339597558777ull,
                                  2904607092377533576ull };
    for (int i = 0; i < 10; i++)
        assert_true(cit_rng_next(&r) == x_want[i]);

    cit_rng_seed(&r, 0);
    assert_false(r.s[0] == 0 && r.s[1] == 0 && r.s[2] == 0 && r.s[3] == 0);
    for (int i = 0; i < 10000; i++) {
        double u = cit_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
    }
}

/* ---- defaults and validation ------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    struct cit_sampler_params p;
    memset(&p, 0xAB, sizeof p);
    cit_sampler_params_default(&p);
    assert_true(p.temperature == 0.8f);
    assert_int_equal(p.top_k, 40);
    assert_true(p.top_p == 0.95f);
    assert_true(p.min_p == 0.05f);
    assert_true(p.repeat_penalty == 1.0f);
    assert_true(p.presence_penalty == 0.0f);
    assert_true(p.frequency_penalty == 0.0f);
    assert_int_equal(p.penalty_last_n, 64);
    assert_true(p.seed == 0);
    assert_null(p.logit_bias);
    assert_int_equal(p.n_logit_bias, 0);
    struct cit_sampler *s = make(&p, 10);
    cit_sampler_free(s);
    cit_sampler_free(NULL);
}

struct bad_case {
    const char *name;
    void (*mutate)(struct cit_sampler_params *p);
    int32_t n_vocab;
    enum cit_status want;
    const char *field; /* must appear in the error message */
};

static const struct cit_logit_bias bias_oob[2] = { { 3, 1.0f }, { 10, -1.0f } };
static const struct cit_logit_bias bias_neg[1] = { { -1, 1.0f } };
static const struct cit_logit_bias bias_nan[1] = { { 2, NAN } };
static const struct cit_logit_bias bias_pinf[1] = { { 2, INFINITY } };

static void m_temp_nan(struct cit_sampler_params *p) { p->temperature = NAN; }
static void m_temp_inf(struct cit_sampler_params *p) { p->temperature = INFINITY; }
static void m_top_p_0(struct cit_sampler_params *p) { p->top_p = 0.0f; }
static void m_top_p_15(struct cit_sampler_params *p) { p->top_p = 1.5f; }
static void m_top_p_nan(struct cit_sampler_params *p) { p->top_p = NAN; }
static void m_min_p_neg(struct cit_sampler_params *p) { p->min_p = -1.0f; }
static void m_min_p_big(struct cit_sampler_params *p) { p->min_p = 1.01f; }
static void m_min_p_nan(struct cit_sampler_params *p) { p->min_p = NAN; }
static void m_rep_0(struct cit_sampler_params *p) { p->repeat_penalty = 0.0f; }
static void m_rep_nan(struct cit_sampler_params *p) { p->repeat_penalty = NAN; }
static void m_pres_inf(struct cit_sampler_params *p) { p->presence_penalty = -INFINITY; }
static void m_freq_nan(struct cit_sampler_params *p) { p->frequency_penalty = NAN; }
static void m_last_n(struct cit_sampler_params *p) { p->penalty_last_n = -2; }
static void m_last_n_big(struct cit_sampler_params *p)
{
    p->penalty_last_n = CIT_SAMPLER_MAX_PENALTY_WINDOW + 1;
}
static void m_bias_oob(struct cit_sampler_params *p)
{
    p->logit_bias = bias_oob;
    p->n_logit_bias = 2;
}
static void m_bias_neg(struct cit_sampler_params *p)
{
    p->logit_bias = bias_neg;
    p->n_logit_bias = 1;
}
static void m_bias_nan(struct cit_sampler_params *p)
{
    p->logit_bias = bias_nan;
    p->n_logit_bias = 1;
}
static void m_bias_pinf(struct cit_sampler_params *p)
{
    p->logit_bias = bias_pinf;
    p->n_logit_bias = 1;
}
static void m_bias_null(struct cit_sampler_params *p)
{
    p->logit_bias = NULL;
    p->n_logit_bias = 3;
}
static void m_none(struct cit_sampler_params *p) { (void)p; }

static void test_validation(void **state)
{
    (void)state;
    const struct bad_case cases[] = {
        { "temperature NaN", m_temp_nan, 10, CIT_ERR_RANGE, "temperature" },
        { "temperature inf", m_temp_inf, 10, CIT_ERR_RANGE, "temperature" },
        { "top_p 0", m_top_p_0, 10, CIT_ERR_RANGE, "top_p" },
        { "top_p 1.5", m_top_p_15, 10, CIT_ERR_RANGE, "top_p" },
        { "top_p NaN", m_top_p_nan, 10, CIT_ERR_RANGE, "top_p" },
        { "min_p -1", m_min_p_neg, 10, CIT_ERR_RANGE, "min_p" },
        { "min_p 1.01", m_min_p_big, 10, CIT_ERR_RANGE, "min_p" },
        { "min_p NaN", m_min_p_nan, 10, CIT_ERR_RANGE, "min_p" },
        { "repeat 0", m_rep_0, 10, CIT_ERR_RANGE, "repeat_penalty" },
        { "repeat NaN", m_rep_nan, 10, CIT_ERR_RANGE, "repeat_penalty" },
        { "presence -inf", m_pres_inf, 10, CIT_ERR_RANGE, "presence_penalty" },
        { "frequency NaN", m_freq_nan, 10, CIT_ERR_RANGE, "frequency_penalty" },
        { "penalty_last_n -2", m_last_n, 10, CIT_ERR_RANGE, "penalty_last_n" },
        { "penalty_last_n huge", m_last_n_big, 10, CIT_ERR_RANGE, "penalty_last_n" },
        { "bias token 10 of 10", m_bias_oob, 10, CIT_ERR_RANGE, "logit_bias[1].token = 10" },
        { "bias token -1", m_bias_neg, 10, CIT_ERR_RANGE, "logit_bias[0].token = -1" },
        { "bias NaN", m_bias_nan, 10, CIT_ERR_RANGE, "logit_bias[0].bias" },
        { "bias +inf", m_bias_pinf, 10, CIT_ERR_RANGE, "logit_bias[0].bias" },
        { "bias NULL", m_bias_null, 10, CIT_ERR_INVALID_ARG, "logit_bias" },
        { "n_vocab 0", m_none, 0, CIT_ERR_RANGE, "n_vocab" },
        { "n_vocab -5", m_none, -5, CIT_ERR_RANGE, "n_vocab" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cit_sampler_params p;
        cit_sampler_params_default(&p);
        cases[i].mutate(&p);
        struct cit_sampler *s = (struct cit_sampler *)&p; /* must be reset to NULL */
        char err[256] = "";
        enum cit_status st = cit_sampler_new(&p, cases[i].n_vocab, &s, err, sizeof err);
        if (st != cases[i].want || !strstr(err, cases[i].field))
            fprintf(stderr, "case '%s': status %d, err '%s'\n", cases[i].name, (int)st, err);
        assert_int_equal(st, cases[i].want);
        assert_non_null(strstr(err, cases[i].field));
        assert_null(s);
    }

    /* Accepted edge values. */
    struct cit_sampler_params p = plain(-1.0f); /* negative temperature: greedy */
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.penalty_last_n = -1;
    p.presence_penalty = -2.0f;
    cit_sampler_free(make(&p, 1));

    /* NULL pointers. */
    struct cit_sampler *s = NULL;
    assert_int_equal(cit_sampler_new(NULL, 10, &s, NULL, 0), CIT_ERR_INVALID_ARG);
    assert_int_equal(cit_sampler_new(&p, 10, NULL, NULL, 0), CIT_ERR_INVALID_ARG);
    /* A too-small error buffer is truncated, never overrun. */
    char tiny[4];
    p.top_p = 2.0f;
    assert_int_equal(cit_sampler_new(&p, 10, &s, tiny, sizeof tiny), CIT_ERR_RANGE);
    assert_int_equal(strlen(tiny), 3);
}

/* ---- greedy ------------------------------------------------------------- */

static void test_greedy_argmax(void **state)
{
    (void)state;
    enum { N = 1000 };
    float l[N];
    random_logits(l, N, 5.0);
    int32_t best = 0;
    for (int32_t i = 1; i < N; i++)
        if (l[i] > l[best])
            best = i;

    struct cit_sampler_params p;
    cit_sampler_params_default(&p); /* filters on: greedy ignores them */
    p.temperature = 0.0f;
    struct cit_sampler *s = make(&p, N);
    for (int k = 0; k < 20; k++)
        assert_int_equal(sample1(s, l), best);
    cit_sampler_free(s);

    p.temperature = -0.5f;
    s = make(&p, N);
    assert_int_equal(sample1(s, l), best);
    cit_sampler_free(s);

    /* Ties go to the lowest id. */
    const float tie[5] = { 1.0f, 5.0f, 2.0f, 5.0f, 5.0f };
    s = make(&p, 5);
    assert_int_equal(sample1(s, tie), 1);
    cit_sampler_free(s);

    /* One-token vocabulary. */
    const float one[1] = { -3.0f };
    s = make(&p, 1);
    assert_int_equal(sample1(s, one), 0);
    cit_sampler_free(s);
}

static void test_greedy_bias(void **state)
{
    (void)state;
    const float l[5] = { 0.5f, 3.0f, 2.5f, -1.0f, 2.9f };
    struct cit_sampler_params p = plain(0.0f);

    struct cit_logit_bias ban[1] = { { 1, -INFINITY } };
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    struct cit_sampler *s = make(&p, 5);
    ban[0].token = 2; /* the sampler copied the list: this must not matter */
    assert_int_equal(sample1(s, l), 4);
    cit_sampler_free(s);

    struct cit_logit_bias two[2] = { { 1, -INFINITY }, { 4, -INFINITY } };
    p.logit_bias = two;
    p.n_logit_bias = 2;
    s = make(&p, 5);
    assert_int_equal(sample1(s, l), 2);
    cit_sampler_free(s);

    /* Positive bias lifts a token; entries for one token add up. */
    struct cit_logit_bias up[3] = { { 3, 2.0f }, { 3, 2.5f }, { 0, 0.1f } };
    p.logit_bias = up;
    p.n_logit_bias = 3;
    s = make(&p, 5);
    assert_int_equal(sample1(s, l), 3); /* -1 + 4.5 = 3.5 > 3.0 */
    float adj[5];
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_true(adj[3] == 3.5f);
    assert_true(adj[0] == 0.5f + 0.1f);
    assert_true(adj[1] == 3.0f);
    cit_sampler_free(s);
}

/* ---- filters: which tokens can appear ----------------------------------- */

static void test_top_k(void **state)
{
    (void)state;
    enum { N = 300 };
    float l[N];
    random_logits(l, N, 2.0);
    int32_t best = 0;
    for (int32_t i = 1; i < N; i++)
        if (l[i] > l[best])
            best = i;
    struct cit_sampler_params p = plain(2.0f);
    p.top_k = 1;
    for (int k = 0; k < 50; k++) {
        p.seed = (uint64_t)k * 7919u;
        struct cit_sampler *s = make(&p, N);
        for (int d = 0; d < 20; d++)
            assert_int_equal(sample1(s, l), best);
        cit_sampler_free(s);
    }

    /* top_k = 1 among tied maxima keeps the lowest id. */
    const float tie[4] = { 0.0f, 1.0f, 0.5f, 1.0f };
    assert_int_equal(seen_set(p, tie, 4, 20, 10), BIT(1));

    float f[4];
    log_of(four_p, f, 4);
    p.top_k = 2;
    assert_int_equal(seen_set(p, f, 4, 100, 20), BIT(2) | BIT(1));
    p.top_k = 3;
    assert_int_equal(seen_set(p, f, 4, 100, 20), BIT(2) | BIT(1) | BIT(3));
    p.top_k = 4; /* == n_vocab: off */
    assert_int_equal(seen_set(p, f, 4, 200, 20), 0xFu);
    p.top_k = 1000;
    assert_int_equal(seen_set(p, f, 4, 200, 20), 0xFu);
}

static void test_top_p(void **state)
{
    (void)state;
    float f[4];
    log_of(four_p, f, 4);
    struct cit_sampler_params p = plain(1.0f);
    /* Sorted probabilities 0.50 (id 2), 0.30 (id 1), 0.15 (id 3), 0.05 (id 0). */
    p.top_p = 0.4f;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2));
    p.top_p = 0.75f;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1));
    p.top_p = 0.85f;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1) | BIT(3));
    p.top_p = 0.97f;
    assert_int_equal(seen_set(p, f, 4, 300, 20), 0xFu);
    /* Temperature comes after the filters: it reshapes, never re-admits. */
    p.top_p = 0.75f;
    p.temperature = 50.0f;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1));
}

static void test_min_p(void **state)
{
    (void)state;
    float f[4];
    log_of(four_p, f, 4);
    struct cit_sampler_params p = plain(1.0f);
    p.min_p = 0.25f; /* keep p >= 0.125 */
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1) | BIT(3));
    p.min_p = 0.5f; /* keep p >= 0.25 */
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1));
    p.min_p = 0.7f; /* keep p >= 0.35 */
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2));
    p.min_p = 1.0f;
    assert_int_equal(seen_set(p, f, 4, 50, 20), BIT(2));
    p.min_p = 0.05f; /* keep p >= 0.025: everything */
    assert_int_equal(seen_set(p, f, 4, 300, 20), 0xFu);
    p.temperature = 50.0f;
    p.min_p = 0.5f;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1));
}

static void test_filters_combined(void **state)
{
    (void)state;
    float f[4];
    log_of(four_p, f, 4);
    struct cit_sampler_params p = plain(1.0f);
    /* top-p alone at 0.83: 0.50 + 0.30 = 0.80 falls short, so id 3 stays. */
    p.top_p = 0.83f;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1) | BIT(3));
    /* After top-k 3 the set renormalises (0.526, 0.316, 0.158): two reach 0.83. */
    p.top_k = 3;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1));
    /* min-p after top-p: top-p 0.9 keeps {2, 1, 3}, min-p 0.5 drops 3. */
    p.top_k = 0;
    p.top_p = 0.9f;
    p.min_p = 0.5f;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1));
    /* And the reverse: min-p 0.25 keeps {2, 1, 3}, top-p 0.75 keeps {2, 1}. */
    p.top_p = 0.75f;
    p.min_p = 0.25f;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(2) | BIT(1));
    /* Banned tokens are never candidates, so top-k skips them. */
    struct cit_logit_bias ban[1] = { { 2, -INFINITY } };
    p = plain(1.0f);
    p.top_k = 2;
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    assert_int_equal(seen_set(p, f, 4, 200, 20), BIT(1) | BIT(3));
}

/* ---- internals against a naive reference -------------------------------- */

static int cmp_ref(const void *a, const void *b)
{
    const struct cit_cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_id(const void *a, const void *b)
{
    const struct cit_cand *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* The filters done the slow, obvious way: full sort, then each in order. */
static size_t ref_filter(struct cit_cand *c, size_t n, int32_t top_k, float top_p, float min_p)
{
    qsort(c, n, sizeof *c, cmp_ref);
    if (top_k > 0 && (size_t)top_k < n)
        n = (size_t)top_k;
    double lmax = c[0].logit;
    if (top_p < 1.0f) {
        double z = 0.0, cum = 0.0;
        for (size_t i = 0; i < n; i++)
            z += exp(c[i].logit - lmax);
        for (size_t i = 0; i < n; i++) {
            cum += exp(c[i].logit - lmax) / z;
            if (cum >= top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (min_p > 0.0f) {
        size_t keep = 0;
        while (keep < n && exp(c[keep].logit - lmax) >= min_p)
            keep++;
        n = keep;
    }
    return n;
}

static void fill_cands(struct cit_cand *c, const float *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c[i].logit = l[i];
        c[i].id = (int32_t)i;
    }
}

static void test_cand_sort_select(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct cit_cand *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    float *l = malloc(N * sizeof *l);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(l);
    /* Patterns: random, few distinct values (many ties), ascending, descending, constant. */
    for (int pat = 0; pat < 5; pat++) {
        for (int32_t i = 0; i < N; i++) {
            switch (pat) {
            case 0: l[i] = (float)(urand() * 20.0 - 10.0); break;
            case 1: l[i] = (float)(int)(urand() * 4.0); break;
            case 2: l[i] = (float)i; break;
            case 3: l[i] = (float)(N - i); break;
            default: l[i] = 1.0f; break;
            }
        }
        fill_cands(a, l, N);
        fill_cands(b, l, N);
        qsort(b, N, sizeof *b, cmp_ref);
        cit_cand_sort(a, N);
        assert_memory_equal(a, b, N * sizeof *a);

        const size_t ks[] = { 0, 1, 2, 17, 40, 1000, N - 1, N };
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
            size_t k = ks[j];
            fill_cands(a, l, N);
            cit_cand_select(a, N, k);
            qsort(a, k, sizeof *a, cmp_ref);
            assert_memory_equal(a, b, k * sizeof *a);
        }
    }
    free(a);
    free(b);
    free(l);
}

static void test_cand_filter_reference(void **state)
{
    (void)state;
    enum { N = 60000 };
    struct cit_cand *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    float *l = malloc(N * sizeof *l);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(l);
    const double scales[] = { 0.05, 1.0, 8.0, 30.0 }; /* flat ... peaked */
    const struct {
        int32_t k;
        float p, m;
    } combos[] = {
        { 40, 1.0f, 0.0f },  { 0, 0.95f, 0.0f },   { 0, 0.5f, 0.0f },  { 0, 1.0f, 0.05f },
        { 0, 0.9f, 0.05f },  { 40, 0.95f, 0.05f }, { 1, 0.9f, 0.1f },  { 0, 0.999f, 0.0f },
        { 5000, 0.7f, 0.0f }, { 0, 0.3f, 0.9f },   { 0, 1.0f, 1.0f },
    };
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        random_logits(l, N, scales[si]);
        float lmax = l[0];
        for (int32_t i = 1; i < N; i++)
            lmax = l[i] > lmax ? l[i] : lmax;
        for (size_t ci = 0; ci < sizeof combos / sizeof combos[0]; ci++) {
            fill_cands(a, l, N);
            fill_cands(b, l, N);
            size_t na = cit_cand_filter(a, N, lmax, combos[ci].k, combos[ci].p, combos[ci].m);
            size_t nb = ref_filter(b, N, combos[ci].k, combos[ci].p, combos[ci].m);
            if (na != nb)
                fprintf(stderr, "scale %g k %d p %g m %g: kept %zu, reference %zu\n", scales[si],
                        combos[ci].k, (double)combos[ci].p, (double)combos[ci].m, na, nb);
            assert_int_equal(na, nb);
            assert_true(na >= 1);
            qsort(a, na, sizeof *a, cmp_id);
            qsort(b, nb, sizeof *b, cmp_id);
            assert_memory_equal(a, b, na * sizeof *a);
        }
    }
    free(a);
    free(b);
    free(l);
}

/* ---- temperature: frequencies match the softmax ------------------------- */

static void check_frequencies(float temperature)
{
    enum { N = 5, DRAWS = 40000 };
    const float l[N] = { 1.0f, 0.5f, 0.0f, -0.5f, -1.0f };
    double prob[N], z = 0.0;
    for (int i = 0; i < N; i++)
        z += (prob[i] = exp(l[i] / temperature));
    for (int i = 0; i < N; i++)
        prob[i] /= z;

    struct cit_sampler_params p = plain(temperature);
    p.seed = 42;
    struct cit_sampler *s = make(&p, N);
    long count[N] = { 0 };
    for (int d = 0; d < DRAWS; d++)
        count[sample1(s, l)]++;
    cit_sampler_free(s);

    double chi2 = 0.0;
    for (int i = 0; i < N; i++) {
        double e = prob[i] * DRAWS;
        chi2 += (count[i] - e) * (count[i] - e) / e;
        assert_true(fabs(count[i] / (double)DRAWS - prob[i]) < 0.015);
    }
    /* 4 degrees of freedom: P(chi2 > 18.47) = 0.001 for a correct sampler. */
    if (chi2 >= 18.47)
        fprintf(stderr, "temperature %g: chi2 = %g\n", (double)temperature, chi2);
    assert_true(chi2 < 18.47);
}

static void test_temperature_distribution(void **state)
{
    (void)state;
    check_frequencies(0.7f);
    check_frequencies(1.0f);
    check_frequencies(1.5f);
    check_frequencies(4.0f);
}

/* ---- penalties ---------------------------------------------------------- */

static void accept_ok(struct cit_sampler *s, int32_t t)
{
    assert_int_equal(cit_sampler_accept(s, t, NULL, 0), CIT_OK);
}

static void test_penalties_exact(void **state)
{
    (void)state;
    const float l[5] = { 2.0f, -1.0f, 0.5f, 3.0f, 0.0f };
    float adj[5];
    struct cit_sampler_params p = plain(0.0f);
    p.repeat_penalty = 2.0f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.penalty_last_n = 64;
    struct cit_sampler *s = make(&p, 5);

    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_memory_equal(adj, l, sizeof l); /* empty history: untouched */

    accept_ok(s, 0);
    accept_ok(s, 1);
    accept_ok(s, 0);
    accept_ok(s, 4);
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_true(adj[0] == 2.0f / 2.0f - 0.5f - 2 * 0.25f); /* positive: divided */
    assert_true(adj[1] == -1.0f * 2.0f - 0.5f - 1 * 0.25f); /* negative: multiplied */
    assert_true(adj[2] == 0.5f);
    assert_true(adj[3] == 3.0f);
    assert_true(adj[4] == 0.0f - 0.5f - 0.25f); /* zero stays zero under repeat */
    /* adjusted_logits leaves the history alone: the same answer twice. */
    float again[5];
    assert_int_equal(cit_sampler_adjusted_logits(s, l, again, NULL, 0), CIT_OK);
    assert_memory_equal(adj, again, sizeof adj);
    /* out may alias logits. */
    float inplace[5];
    memcpy(inplace, l, sizeof l);
    assert_int_equal(cit_sampler_adjusted_logits(s, inplace, inplace, NULL, 0), CIT_OK);
    assert_memory_equal(adj, inplace, sizeof adj);

    /* reset clears the history. */
    cit_sampler_reset(s);
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_memory_equal(adj, l, sizeof l);
    cit_sampler_free(s);

    /* A window of 2: after 0 1 0 4 only {0, 4} count, once each. */
    p.penalty_last_n = 2;
    s = make(&p, 5);
    const int32_t hist[4] = { 0, 1, 0, 4 };
    assert_int_equal(cit_sampler_accept_many(s, hist, 4, NULL, 0), CIT_OK);
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_true(adj[0] == 1.0f - 0.5f - 0.25f);
    assert_true(adj[1] == -1.0f);
    assert_true(adj[4] == -0.75f);
    accept_ok(s, 3); /* window now {4, 3} */
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_true(adj[0] == 2.0f);
    assert_true(adj[3] == 1.5f - 0.75f);
    assert_true(adj[4] == -0.75f);
    cit_sampler_free(s);

    /* The whole history (-1): counts never expire. */
    p.penalty_last_n = -1;
    s = make(&p, 5);
    for (int i = 0; i < 100; i++)
        accept_ok(s, 3);
    accept_ok(s, 0);
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_true(adj[3] == 1.5f - 0.5f - 100 * 0.25f);
    assert_true(adj[0] == 1.0f - 0.5f - 0.25f);
    cit_sampler_reset(s);
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_memory_equal(adj, l, sizeof l);
    cit_sampler_free(s);

    /* Window 0: penalties off whatever their values. */
    p.penalty_last_n = 0;
    s = make(&p, 5);
    accept_ok(s, 3);
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_memory_equal(adj, l, sizeof l);
    cit_sampler_free(s);

    /* A banned token stays banned under penalties; bias comes first. */
    struct cit_logit_bias b[2] = { { 3, -INFINITY }, { 2, 1.5f } };
    p.penalty_last_n = 8;
    p.logit_bias = b;
    p.n_logit_bias = 2;
    s = make(&p, 5);
    accept_ok(s, 3);
    accept_ok(s, 2);
    assert_int_equal(cit_sampler_adjusted_logits(s, l, adj, NULL, 0), CIT_OK);
    assert_true(adj[3] == -INFINITY);
    assert_true(adj[2] == (0.5f + 1.5f) / 2.0f - 0.5f - 0.25f);
    cit_sampler_free(s);
}

static void test_penalty_greedy_flip(void **state)
{
    (void)state;
    struct cit_sampler_params p = plain(0.0f);
    p.penalty_last_n = 16;

    const float pos[2] = { 3.0f, 2.9f };
    p.repeat_penalty = 1.1f; /* 3.0 / 1.1 = 2.73 < 2.9 */
    struct cit_sampler *s = make(&p, 2);
    assert_int_equal(sample1(s, pos), 0);
    accept_ok(s, 0);
    assert_int_equal(sample1(s, pos), 1);
    cit_sampler_free(s);

    const float neg[2] = { -1.0f, -1.05f }; /* -1.0 * 1.1 = -1.1 < -1.05 */
    s = make(&p, 2);
    assert_int_equal(sample1(s, neg), 0);
    accept_ok(s, 0);
    assert_int_equal(sample1(s, neg), 1);
    cit_sampler_free(s);

    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.3f; /* subtracted once, however often a token repeats */
    const float pres[2] = { 1.0f, 0.8f };
    s = make(&p, 2);
    assert_int_equal(sample1(s, pres), 0);
    accept_ok(s, 0);
    assert_int_equal(sample1(s, pres), 1); /* 0.7 < 0.8 */
    accept_ok(s, 0);
    accept_ok(s, 0);
    assert_int_equal(sample1(s, pres), 1); /* still 0.7 */
    accept_ok(s, 1);
    assert_int_equal(sample1(s, pres), 0); /* 0.7 > 0.5 */
    cit_sampler_free(s);
}

static void test_frequency_flip(void **state)
{
    (void)state;
    struct cit_sampler_params p = plain(0.0f);
    p.penalty_last_n = 16;
    p.frequency_penalty = 0.2f;
    const float l[2] = { 1.0f, 0.5f };
    struct cit_sampler *s = make(&p, 2);
    int32_t picks[4];
    for (int i = 0; i < 4; i++) {
        picks[i] = sample1(s, l);
        if (i < 3)
            accept_ok(s, 0); /* the caller keeps token 0 three times */
    }
    /* 1.0, 0.8, 0.6 beat 0.5; 0.4 does not. */
    assert_int_equal(picks[0], 0);
    assert_int_equal(picks[1], 0);
    assert_int_equal(picks[2], 0);
    assert_int_equal(picks[3], 1);
    cit_sampler_free(s);
}

static void test_accept(void **state)
{
    (void)state;
    struct cit_sampler_params p = plain(0.0f);
    p.penalty_last_n = 3;
    p.frequency_penalty = 1.0f;
    const float l[6] = { 0 };
    float a1[6], a2[6];

    /* accept_many keeps only what the window can hold, same as one by one. */
    struct cit_sampler *s1 = make(&p, 6), *s2 = make(&p, 6);
    const int32_t toks[8] = { 5, 1, 1, 2, 3, 3, 4, 3 };
    assert_int_equal(cit_sampler_accept_many(s1, toks, 8, NULL, 0), CIT_OK);
    for (int i = 0; i < 8; i++)
        accept_ok(s2, toks[i]);
    assert_int_equal(cit_sampler_adjusted_logits(s1, l, a1, NULL, 0), CIT_OK);
    assert_int_equal(cit_sampler_adjusted_logits(s2, l, a2, NULL, 0), CIT_OK);
    assert_memory_equal(a1, a2, sizeof a1);
    const float want[6] = { 0.0f, 0.0f, 0.0f, -2.0f, -1.0f, 0.0f };
    assert_memory_equal(a1, want, sizeof want);

    /* Out-of-range ids are refused and record nothing. */
    char err[128] = "";
    assert_int_equal(cit_sampler_accept(s1, 6, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "6"));
    assert_int_equal(cit_sampler_accept(s1, -1, NULL, 0), CIT_ERR_RANGE);
    const int32_t bad[3] = { 0, 1, 99 };
    assert_int_equal(cit_sampler_accept_many(s1, bad, 3, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "token[2] = 99"));
    assert_int_equal(cit_sampler_adjusted_logits(s1, l, a1, NULL, 0), CIT_OK);
    assert_memory_equal(a1, want, sizeof want);
    assert_int_equal(cit_sampler_accept_many(s1, NULL, 0, NULL, 0), CIT_OK);
    assert_int_equal(cit_sampler_accept(NULL, 0, NULL, 0), CIT_ERR_INVALID_ARG);
    cit_sampler_free(s1);
    cit_sampler_free(s2);

    /* With penalties off, accept still checks ids but records nothing. */
    p = plain(1.0f);
    s1 = make(&p, 6);
    assert_int_equal(cit_sampler_accept(s1, 2, NULL, 0), CIT_OK);
    assert_int_equal(cit_sampler_accept(s1, 7, NULL, 0), CIT_ERR_RANGE);
    cit_sampler_free(s1);
}

/* ---- determinism -------------------------------------------------------- */

static void draw_seq(struct cit_sampler *s, const float *l, int32_t *out, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = sample1(s, l);
}

static void test_determinism(void **state)
{
    (void)state;
    enum { V = 50, D = 100 };
    float l[V];
    random_logits(l, V, 0.5);
    struct cit_sampler_params p;
    cit_sampler_params_default(&p);
    p.top_k = 0;
    p.min_p = 0.0f;
    p.top_p = 1.0f;
    p.seed = 12345;
    int32_t a[D], b[D], c[D], r[D];
    struct cit_sampler *s1 = make(&p, V), *s2 = make(&p, V);
    draw_seq(s1, l, a, D);
    draw_seq(s2, l, b, D);
    assert_memory_equal(a, b, sizeof a);

    p.seed = 12346;
    struct cit_sampler *s3 = make(&p, V);
    draw_seq(s3, l, c, D);
    int differ = 0;
    for (int i = 0; i < D; i++)
        differ += a[i] != c[i];
    assert_true(differ > D / 2);

    /* reset re-seeds: the first sampler replays its sequence. */
    cit_sampler_reset(s1);
    draw_seq(s1, l, r, D);
    assert_memory_equal(a, r, sizeof a);

    /* The sequence covers many tokens (it is not stuck). */
    uint64_t seen = 0;
    for (int i = 0; i < D; i++)
        seen |= 1ull << a[i];
    assert_true(__builtin_popcountll(seen) > 20);
    cit_sampler_free(s1);
    cit_sampler_free(s2);
    cit_sampler_free(s3);

    /* Seed 0 is an ordinary seed: deterministic too. */
    p.seed = 0;
    s1 = make(&p, V);
    s2 = make(&p, V);
    draw_seq(s1, l, a, D);
    draw_seq(s2, l, b, D);
    assert_memory_equal(a, b, sizeof a);
    cit_sampler_free(s1);
    cit_sampler_free(s2);
}

/* ---- banned tokens and bad logits --------------------------------------- */

static void test_banned(void **state)
{
    (void)state;
    const float l[4] = { 9.0f, 1.0f, 0.0f, -INFINITY };
    struct cit_logit_bias ban[1] = { { 0, -INFINITY } };
    struct cit_sampler_params p = plain(100.0f); /* nearly uniform over live tokens */
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    assert_int_equal(seen_set(p, l, 4, 100, 20), BIT(1) | BIT(2));

    /* Everything banned: by bias and by -inf logits, greedy and sampled. */
    struct cit_logit_bias all[3] = { { 0, -INFINITY }, { 1, -INFINITY }, { 2, -INFINITY } };
    p.logit_bias = all;
    p.n_logit_bias = 3;
    for (int greedy = 0; greedy < 2; greedy++) {
        p.temperature = greedy ? 0.0f : 1.0f;
        struct cit_sampler *s = make(&p, 4);
        int32_t tok = 77;
        char err[128] = "";
        assert_int_equal(cit_sampler_sample(s, l, &tok, err, sizeof err), CIT_ERR_RANGE);
        assert_non_null(strstr(err, "banned"));
        assert_int_equal(tok, 77);
        cit_sampler_free(s);
    }
    const float none[3] = { -INFINITY, -INFINITY, -INFINITY };
    p = plain(0.7f);
    struct cit_sampler *s = make(&p, 3);
    int32_t tok;
    assert_int_equal(cit_sampler_sample(s, none, &tok, NULL, 0), CIT_ERR_RANGE);
    cit_sampler_free(s);

    /* NaN and +inf logits are errors naming the index. */
    p = plain(1.0f);
    s = make(&p, 3);
    char err[128] = "";
    const float has_nan[3] = { 0.0f, NAN, 1.0f };
    assert_int_equal(cit_sampler_sample(s, has_nan, &tok, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "logits[1]"));
    const float has_inf[3] = { 0.0f, 1.0f, INFINITY };
    assert_int_equal(cit_sampler_sample(s, has_inf, &tok, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "logits[2]"));
    assert_int_equal(cit_sampler_sample(s, NULL, &tok, NULL, 0), CIT_ERR_INVALID_ARG);
    assert_int_equal(cit_sampler_sample(s, has_nan, NULL, NULL, 0), CIT_ERR_INVALID_ARG);
    assert_int_equal(cit_sampler_sample(NULL, has_nan, &tok, NULL, 0), CIT_ERR_INVALID_ARG);
    cit_sampler_free(s);

    /* Huge logits and biases stay finite (no +inf into the softmax). */
    const float big[2] = { 3.0e38f, 3.0e38f };
    struct cit_logit_bias up[1] = { { 1, 3.0e38f } };
    p = plain(1.0f);
    p.logit_bias = up;
    p.n_logit_bias = 1;
    s = make(&p, 2);
    float adj[2];
    assert_int_equal(cit_sampler_adjusted_logits(s, big, adj, NULL, 0), CIT_OK);
    assert_true(isfinite(adj[1]));
    assert_int_equal(sample1(s, big), 1);
    cit_sampler_free(s);
}

/* ---- logprobs ----------------------------------------------------------- */

static void test_logprobs(void **state)
{
    (void)state;
    enum { N = 2000, TOP = 10 };
    float *l = malloc(N * sizeof *l);
    assert_non_null(l);
    random_logits(l, N, 6.0);
    l[17] = l[18] = 50.0f; /* a tie at the top: lowest id first */
    l[5] = -INFINITY;

    double m = -INFINITY, z = 0.0;
    for (int i = 0; i < N; i++)
        m = l[i] > m ? l[i] : m;
    for (int i = 0; i < N; i++)
        z += exp((double)l[i] - m);
    double lse = m + log(z);

    struct cit_token_logprob top[TOP];
    float chosen = 0.0f;
    char err[128] = "";
    for (int32_t t = 0; t < N; t += 97) {
        assert_int_equal(cit_sampler_logprobs(l, N, t, TOP, top, &chosen, err, sizeof err),
                         CIT_OK);
        assert_true(fabs((double)chosen - ((double)l[t] - lse)) < 1e-5);
    }
    struct cit_cand *ref = malloc(N * sizeof *ref);
    assert_non_null(ref);
    fill_cands(ref, l, N);
    qsort(ref, N, sizeof *ref, cmp_ref);
    assert_int_equal(top[0].token, 17);
    assert_int_equal(top[1].token, 18);
    for (int i = 0; i < TOP; i++) {
        assert_int_equal(top[i].token, ref[i].id);
        assert_true(fabs((double)top[i].logprob - ((double)ref[i].logit - lse)) < 1e-5);
    }

    assert_int_equal(cit_sampler_logprobs(l, N, 5, 0, NULL, &chosen, NULL, 0), CIT_OK);
    assert_true(chosen == -INFINITY);

    /* n_top = n_vocab: a full sort, probabilities summing to 1. */
    const float small[5] = { 0.1f, -2.0f, 3.0f, 0.1f, 1.0f };
    struct cit_token_logprob all[5];
    assert_int_equal(cit_sampler_logprobs(small, 5, 0, 5, all, NULL, NULL, 0), CIT_OK);
    const int32_t order[5] = { 2, 4, 0, 3, 1 };
    double total = 0.0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(all[i].token, order[i]);
        total += exp(all[i].logprob);
    }
    assert_true(fabs(total - 1.0) < 1e-6);

    /* Errors. */
    assert_int_equal(cit_sampler_logprobs(small, 5, 0, 6, all, NULL, err, sizeof err),
                     CIT_ERR_RANGE);
    assert_non_null(strstr(err, "n_top"));
    assert_int_equal(cit_sampler_logprobs(small, 5, 5, 1, all, &chosen, err, sizeof err),
                     CIT_ERR_RANGE);
    assert_non_null(strstr(err, "token"));
    assert_int_equal(cit_sampler_logprobs(small, 0, 0, 0, NULL, NULL, err, sizeof err),
                     CIT_ERR_RANGE);
    assert_int_equal(cit_sampler_logprobs(small, 5, 0, 2, NULL, NULL, NULL, 0),
                     CIT_ERR_INVALID_ARG);
    const float bad[3] = { 0.0f, NAN, 0.0f };
    assert_int_equal(cit_sampler_logprobs(bad, 3, 0, 1, all, &chosen, err, sizeof err),
                     CIT_ERR_RANGE);
    assert_non_null(strstr(err, "logits[1]"));
    const float dead[2] = { -INFINITY, -INFINITY };
    assert_int_equal(cit_sampler_logprobs(dead, 2, 0, 1, all, &chosen, NULL, 0), CIT_ERR_RANGE);
    free(ref);
    free(l);
}

/* ---- a realistic vocabulary --------------------------------------------- */

static void test_large_vocab(void **state)
{
    (void)state;
    enum { V = 151936, DRAWS = 50 };
    float *l = malloc(V * sizeof *l);
    struct cit_cand *ref = malloc(V * sizeof *ref);
    assert_non_null(l);
    assert_non_null(ref);
    random_logits(l, V, 10.0);
    fill_cands(ref, l, V);
    qsort(ref, V, sizeof *ref, cmp_ref);

    struct cit_sampler_params p;
    cit_sampler_params_default(&p);
    p.repeat_penalty = 1.1f;
    const struct {
        int32_t k;
        float top_p, min_p;
        size_t bound; /* every draw must be among the `bound` best */
    } cfg[] = {
        { 40, 0.95f, 0.05f, 40 + DRAWS }, /* each penalised pick can let one more in */
        { 0, 0.95f, 0.0f, V },
        { 0, 1.0f, 0.05f, V },
        { 0, 0.5f, 0.0f, V },
    };
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        p.top_k = cfg[c].k;
        p.top_p = cfg[c].top_p;
        p.min_p = cfg[c].min_p;
        struct cit_sampler *s = make(&p, V);
        clock_t t0 = clock();
        for (int d = 0; d < DRAWS; d++) {
            int32_t t = sample1(s, l);
            accept_ok(s, t);
            int rank = -1;
            for (size_t i = 0; i < cfg[c].bound && rank < 0; i++)
                if (ref[i].id == t)
                    rank = (int)i;
            assert_true(rank >= 0);
        }
        double ms = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC / DRAWS;
        printf("# V=%d top_k=%d top_p=%g min_p=%g: %.3f ms/sample\n", V, cfg[c].k,
               (double)cfg[c].top_p, (double)cfg[c].min_p, ms);
        cit_sampler_free(s);
    }
    free(ref);
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_reference),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_greedy_argmax),
        cmocka_unit_test(test_greedy_bias),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_filters_combined),
        cmocka_unit_test(test_cand_sort_select),
        cmocka_unit_test(test_cand_filter_reference),
        cmocka_unit_test(test_temperature_distribution),
        cmocka_unit_test(test_penalties_exact),
        cmocka_unit_test(test_penalty_greedy_flip),
        cmocka_unit_test(test_frequency_flip),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_banned),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_large_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
