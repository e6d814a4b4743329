/* test_eval.c: perplexity and KL divergence (citadel/eval.h) and the
 * `citadel eval` command.
 *
 * The library's numbers are checked against an independent path: the test
 * lays out the windows itself from the documented rule, decodes them one
 * token per cit_decode in a fresh context, and takes log-softmax and KL in
 * long double. Then the properties KL must have (a model against itself is
 * exactly 0 with full top-1 agreement; F16 is closer to f32 than Q4_0, both
 * above 0), and the CLI as a user runs it: --help, bad arguments (exit 2
 * naming the option), missing files, and JSON output that must equal the
 * library's result for the same settings. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "citadel/eval.h"
#include "citadel/model.h"
#include "citadel/tokenizer.h"
#include "support.h"

/* ---- helpers ---- */

static struct cit_model *load(const char *rel)
{
    char err[512] = "";
    struct cit_model *m = NULL;
    if (cit_model_load(test_shared_path(rel), &m, err, sizeof err) != CIT_OK)
        fail_msg("%s: %s", rel, err);
    return m;
}

static struct cit_tokenizer *load_tok(const struct cit_model *m)
{
    char err[512] = "";
    struct cit_tokenizer *t = NULL;
    if (cit_tokenizer_load(cit_model_gguf(m), &t, err, sizeof err) != CIT_OK)
        fail_msg("tokenizer: %s", err);
    return t;
}

static int32_t *random_ids(const struct cit_model *m, uint64_t seed, size_t n)
{
    struct cit_tokenizer *t = load_tok(m);
    int32_t *ids = malloc(n * sizeof *ids);
    assert_non_null(ids);
    char err[256] = "";
    assert_int_equal(cit_eval_random_tokens(t, seed, ids, n, err, sizeof err), CIT_OK);
    cit_tokenizer_free(t);
    return ids;
}

/* Independent reference: every scored position's logits, obtained by
 * decoding each window one token per call in a fresh context. The window
 * layout is rebuilt here from the rule in eval.h. Returns (n_scored, n_vocab)
 * floats and the targets. */
static float *tokenwise_logits(const struct cit_model *m, const int32_t *tokens, size_t n_tokens, uint32_t n_ctx,
                               int32_t bos, int32_t **targets, size_t *n_scored)
{
    uint32_t n_vocab = cit_model_info(m)->n_vocab;
    size_t stride = bos >= 0 ? n_ctx - 1 : n_ctx;
    size_t n_win = n_tokens / stride, per = n_ctx - 1 - n_ctx / 2;
    float *out = malloc(n_win * per * n_vocab * sizeof *out);
    *targets = malloc(n_win * per * sizeof **targets);
    int32_t *win = malloc(n_ctx * sizeof *win);
    assert_true(out && *targets && win);
    size_t k = 0;
    for (size_t w = 0; w < n_win; w++) {
        size_t o = 0;
        if (bos >= 0)
            win[o++] = bos;
        for (size_t i = 0; i < stride; i++)
            win[o++] = tokens[w * stride + i];
        struct cit_context_params cp = {.n_ctx = n_ctx, .n_seq_max = 1, .n_batch_max = 1, .n_threads = 1};
        struct cit_context *c = NULL;
        char err[512] = "";
        if (cit_context_new(m, &cp, &c, err, sizeof err) != CIT_OK)
            fail_msg("context: %s", err);
        for (uint32_t pos = 0; pos + 1 < n_ctx; pos++) {
            struct cit_batch_item it = {.token = win[pos], .pos = (int32_t)pos, .seq = 0, .logits = true};
            if (cit_decode(c, &it, 1, err, sizeof err) != CIT_OK)
                fail_msg("decode: %s", err);
            if (pos >= n_ctx / 2) {
                memcpy(out + k * n_vocab, cit_logits(c, 0), n_vocab * sizeof *out);
                (*targets)[k++] = win[pos + 1];
            }
        }
        cit_context_free(c);
    }
    assert_int_equal(k, n_win * per);
    *n_scored = k;
    free(win);
    return out;
}

/* log p(v) from logits, in long double. */
static long double ref_logprob(const float *z, size_t n, size_t v)
{
    long double mx = z[0], s = 0;
    for (size_t i = 1; i < n; i++)
        if (z[i] > mx)
            mx = z[i];
    for (size_t i = 0; i < n; i++)
        s += expl((long double)z[i] - mx);
    return (long double)z[v] - mx - logl(s);
}

static long double ref_kl(const float *zb, const float *zt, size_t n)
{
    long double kl = 0;
    for (size_t v = 0; v < n; v++) {
        long double lb = ref_logprob(zb, n, v), lt = ref_logprob(zt, n, v);
        kl += expl(lb) * (lb - lt);
    }
    return kl;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- counting and summaries ---- */

static void test_count(void **state)
{
    (void)state;
    struct cit_eval_params p;
    cit_eval_params_default(&p);
    size_t w = 0, s = 0;
    char err[256] = "";
    p.n_ctx = 8;
    p.bos = 1; /* 7 text tokens per window, logits at 4..6 scored */
    assert_int_equal(cit_eval_count(&p, 20, &w, &s, err, sizeof err), CIT_OK);
    assert_int_equal(w, 2);
    assert_int_equal(s, 6);
    p.bos = CIT_EVAL_NO_BOS; /* 8 per window */
    assert_int_equal(cit_eval_count(&p, 23, &w, &s, err, sizeof err), CIT_OK);
    assert_int_equal(w, 2);
    p.n_chunks = 1;
    assert_int_equal(cit_eval_count(&p, 23, &w, &s, err, sizeof err), CIT_OK);
    assert_int_equal(w, 1);
    assert_int_equal(s, 3);
    assert_int_equal(cit_eval_count(&p, 7, &w, &s, err, sizeof err), CIT_OK);
    assert_int_equal(w, 0);
    p.n_ctx = 3;
    assert_int_equal(cit_eval_count(&p, 100, &w, &s, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "n_ctx 3"));
}

/* Hand-computed: logprobs -1, -2, -3: mean nll 2, sample sd 1, se 1/sqrt(3). */
static void test_ppl_summary(void **state)
{
    (void)state;
    const double lp[3] = {-1, -2, -3};
    struct cit_eval_ppl r;
    cit_eval_ppl_summary(lp, 3, &r);
    assert_int_equal(r.n, 3);
    assert_true(fabs(r.nll_mean - 2.0) < 1e-15);
    assert_true(fabs(r.nll_se - 1.0 / sqrt(3.0)) < 1e-15);
    assert_true(fabs(r.ppl - exp(2.0)) < 1e-12);
    assert_true(fabs(r.ppl_se - exp(2.0) / sqrt(3.0)) < 1e-12);
    cit_eval_ppl_summary(lp, 1, &r);
    assert_true(r.nll_se == 0.0 && fabs(r.ppl - exp(1.0)) < 1e-15);
}

/* ---- (b) log-probabilities against the token-by-token path ---- */

struct dist_check {
    const double *logprobs;
    size_t calls;
    int bad;
};

static void on_dist(void *arg, size_t index, int32_t target, const double *logsm, size_t n_vocab)
{
    struct dist_check *d = arg;
    long double s = 0;
    for (size_t v = 0; v < n_vocab; v++)
        s += expl(logsm[v]);
    if (index != d->calls || fabsl(s - 1) > 1e-12L || logsm[target] != d->logprobs[index])
        d->bad = 1;
    d->calls++;
}

/* Batched windows (whole-window and split batches, with and without BOS)
 * give the log-probabilities of one-token decodes to 1e-9. */
static void check_logprobs(const char *rel, uint32_t n_ctx, uint32_t n_batch, bool with_bos)
{
    struct cit_model *m = load(rel);
    struct cit_tokenizer *t = load_tok(m);
    int32_t bos = with_bos ? cit_tokenizer_bos(t) : CIT_EVAL_NO_BOS;
    cit_tokenizer_free(t);
    const size_t n_tokens = 3 * n_ctx - 2; /* 3 windows with BOS, 2 without, and a left-over tail */
    int32_t *ids = random_ids(m, 11, n_tokens);
    uint32_t n_vocab = cit_model_info(m)->n_vocab;

    int32_t *targets = NULL;
    size_t n_ref = 0;
    float *ref = tokenwise_logits(m, ids, n_tokens, n_ctx, bos, &targets, &n_ref);

    struct cit_eval_params p;
    cit_eval_params_default(&p);
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.bos = bos;
    p.n_threads = 2;
    double *lp = calloc(n_ref + 1, sizeof *lp);
    assert_non_null(lp);
    struct dist_check dc = {.logprobs = lp};
    size_t n_out = 0;
    char err[512] = "";
    /* too small a buffer: the count needed, nothing run */
    assert_int_equal(cit_eval_logprobs(m, ids, n_tokens, &p, lp, n_ref - 1, NULL, NULL, &n_out, err, sizeof err),
                     CIT_ERR_LIMIT);
    assert_int_equal(n_out, n_ref);
    if (cit_eval_logprobs(m, ids, n_tokens, &p, lp, n_ref + 1, on_dist, &dc, &n_out, err, sizeof err) != CIT_OK)
        fail_msg("eval: %s", err);
    assert_int_equal(n_out, n_ref);
    assert_int_equal(dc.calls, n_ref);
    assert_int_equal(dc.bad, 0);
    double sum = 0;
    for (size_t i = 0; i < n_ref; i++) {
        long double want = ref_logprob(ref + i * n_vocab, n_vocab, (size_t)targets[i]);
        if (fabsl((long double)lp[i] - want) > 1e-9L)
            fail_msg("%s position %zu: eval %.12f, token-by-token %.12Lf", rel, i, lp[i], want);
        assert_true(lp[i] < 0);
        sum += (double)want;
    }
    struct cit_eval_ppl r;
    cit_eval_ppl_summary(lp, n_out, &r);
    assert_true(fabs(r.ppl - exp(-sum / (double)n_ref)) < 1e-9 * r.ppl);

    free(lp);
    free(ref);
    free(targets);
    free(ids);
    cit_model_free(m);
}

static void test_logprobs_match_tokenwise(void **state)
{
    (void)state;
    check_logprobs("models/stories260K.gguf", 16, 0, true);
    check_logprobs("models/stories260K.gguf", 16, 5, true);
    check_logprobs("models/stories260K.gguf", 12, 0, false);
    check_logprobs("models/micro-qwen2-Q8_0.gguf", 8, 3, true);
}

/* A real text: stories260K on a story has a low perplexity, far below the
 * uniform 512 (a check that targets are the *next* tokens, not the current). */
static void test_story_perplexity(void **state)
{
    (void)state;
    struct cit_model *m = load("models/stories260K.gguf");
    struct cit_tokenizer *t = load_tok(m);
    const char *text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
                       "One day, she saw a big, red ball in the park. She wanted to play with it, so she ran to the "
                       "ball and kicked it. The ball went very far and Lily laughed. Her mom said, \"Lily, be "
                       "careful!\" Lily said, \"I will, Mom!\" They went home and had a nice dinner together.";
    int32_t *ids = NULL;
    size_t n = 0;
    char err[512] = "";
    assert_int_equal(cit_tokenize_alloc(t, text, strlen(text), false, false, &ids, &n, err, sizeof err), CIT_OK);
    struct cit_eval_params p;
    cit_eval_params_default(&p);
    p.n_ctx = 32;
    p.bos = cit_tokenizer_bos(t);
    double lp[256];
    size_t n_out = 0;
    if (cit_eval_logprobs(m, ids, n, &p, lp, 256, NULL, NULL, &n_out, err, sizeof err) != CIT_OK)
        fail_msg("eval: %s", err);
    assert_true(n_out >= 30);
    struct cit_eval_ppl r;
    cit_eval_ppl_summary(lp, n_out, &r);
    if (!(r.ppl > 1.0 && r.ppl < 30.0))
        fail_msg("stories260K perplexity on a story: %g", r.ppl);
    free(ids);
    cit_tokenizer_free(t);
    cit_model_free(m);
}

static void test_errors(void **state)
{
    (void)state;
    struct cit_model *m = load("models/micro-llama-Q8_0.gguf");
    struct cit_eval_params p;
    cit_eval_params_default(&p);
    p.n_ctx = 8;
    int32_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = 100 + i;
    double lp[64];
    size_t n_out = 0;
    char err[512] = "";
    ids[9] = 512;
    assert_int_equal(cit_eval_logprobs(m, ids, 20, &p, lp, 64, NULL, NULL, &n_out, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "token 9 is 512"));
    ids[9] = -1;
    assert_int_equal(cit_eval_logprobs(m, ids, 20, &p, lp, 64, NULL, NULL, &n_out, err, sizeof err), CIT_ERR_RANGE);
    ids[9] = 5;
    assert_int_equal(cit_eval_logprobs(m, ids, 7, &p, lp, 64, NULL, NULL, &n_out, err, sizeof err), CIT_ERR_LIMIT);
    assert_non_null(strstr(err, "7 tokens"));
    p.bos = 600;
    assert_int_equal(cit_eval_logprobs(m, ids, 20, &p, lp, 64, NULL, NULL, &n_out, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "BOS"));
    p.bos = CIT_EVAL_NO_BOS;
    p.n_ctx = 1024; /* above the training context of 512 */
    int32_t *many = random_ids(m, 3, 2048);
    double *lp2 = malloc(2048 * sizeof *lp2);
    assert_non_null(lp2);
    assert_int_equal(cit_eval_logprobs(m, many, 2048, &p, lp2, 2048, NULL, NULL, &n_out, err, sizeof err),
                     CIT_ERR_RANGE);
    assert_non_null(strstr(err, "1024"));
    free(lp2);
    free(many);
    cit_model_free(m);
}

static void test_random_tokens(void **state)
{
    (void)state;
    struct cit_model *m = load("models/micro-llama-Q8_0.gguf");
    const size_t n = 20000;
    int32_t *a = random_ids(m, 5, n), *b = random_ids(m, 5, n), *c = random_ids(m, 6, n);
    assert_memory_equal(a, b, n * sizeof *a);
    assert_true(memcmp(a, c, n * sizeof *a) != 0);
    unsigned *hist = calloc(512, sizeof *hist);
    assert_non_null(hist);
    for (size_t i = 0; i < n; i++) {
        assert_true(a[i] >= 0 && a[i] < 512);
        hist[a[i]]++;
    }
    /* <unk> 0 (unknown), <s> 1 and </s> 2 (control) never; every other id seen */
    assert_int_equal(hist[0] + hist[1] + hist[2], 0);
    for (int v = 3; v < 512; v++)
        assert_true(hist[v] > 0);
    free(hist);
    free(a);
    free(b);
    free(c);
    cit_model_free(m);
}

/* ---- (a) KL of a model against itself ---- */

static void test_kl_self_is_zero(void **state)
{
    (void)state;
    struct cit_model *a = load("models/micro-llama-Q4_0.gguf"), *b = load("models/micro-llama-Q4_0.gguf");
    int32_t *ids = random_ids(a, 21, 64);
    struct cit_eval_params p;
    cit_eval_params_default(&p);
    p.n_ctx = 16;
    p.bos = 1;
    struct cit_eval_kl r;
    double kl[64];
    char err[512] = "";
    if (cit_eval_kl(a, b, ids, 64, &p, &r, kl, 64, err, sizeof err) != CIT_OK)
        fail_msg("kl: %s", err);
    assert_int_equal(r.n_windows, 4);
    assert_int_equal(r.n_scored, 4 * 7);
    for (size_t i = 0; i < r.n_scored; i++)
        assert_true(kl[i] == 0.0);
    assert_true(r.kl_mean == 0.0 && r.kl_se == 0.0 && r.kl_max == 0.0 && r.kl_median == 0.0 && r.kl_p99 == 0.0);
    assert_true(r.top1 == 1.0);
    assert_true(r.ppl_ratio == 1.0);
    assert_true(r.base.ppl == r.test.ppl && r.base.ppl > 1.0);
    free(ids);
    cit_model_free(a);
    cit_model_free(b);
}

/* ---- KL against the independent path, and (c) its ordering ---- */

static struct cit_eval_kl kl_of(const struct cit_model *base, const struct cit_model *test, const int32_t *ids,
                                size_t n, uint32_t n_ctx, double *kl_out, size_t cap)
{
    struct cit_eval_params p;
    cit_eval_params_default(&p);
    p.n_ctx = n_ctx;
    p.bos = 1;
    struct cit_eval_kl r;
    char err[512] = "";
    if (cit_eval_kl(base, test, ids, n, &p, &r, kl_out, cap, err, sizeof err) != CIT_OK)
        fail_msg("kl: %s", err);
    return r;
}

static void test_kl_matches_tokenwise(void **state)
{
    (void)state;
    struct cit_model *base = load("models/micro-llama-f32.gguf"), *test = load("models/micro-llama-Q4_0.gguf");
    const size_t n = 44; /* 2 windows of 16 positions (15 tokens each) and a tail of 14 */
    int32_t *ids = random_ids(base, 31, n);
    double kl[32];
    struct cit_eval_kl r = kl_of(base, test, ids, n, 16, kl, 32);
    assert_int_equal(r.n_scored, 14);

    int32_t *tb = NULL, *tt = NULL;
    size_t nb = 0, nt = 0;
    float *zb = tokenwise_logits(base, ids, n, 16, 1, &tb, &nb);
    float *zt = tokenwise_logits(test, ids, n, 16, 1, &tt, &nt);
    assert_int_equal(nb, r.n_scored);
    assert_int_equal(nt, r.n_scored);
    double sorted[32], mean = 0, lpb = 0, lpt = 0;
    size_t agree = 0;
    for (size_t i = 0; i < nb; i++) {
        const float *b = zb + i * 512, *t = zt + i * 512;
        long double want = ref_kl(b, t, 512);
        if (fabsl((long double)kl[i] - want) > 1e-9L)
            fail_msg("position %zu: eval KL %.12g, token-by-token %.12Lg", i, kl[i], want);
        assert_true(want > 0);
        mean += kl[i];
        sorted[i] = kl[i];
        size_t ab = 0, at = 0;
        for (size_t v = 1; v < 512; v++) {
            ab = b[v] > b[ab] ? v : ab;
            at = t[v] > t[at] ? v : at;
        }
        agree += ab == at;
        lpb += (double)ref_logprob(b, 512, (size_t)tb[i]);
        lpt += (double)ref_logprob(t, 512, (size_t)tt[i]);
    }
    mean /= (double)nb;
    qsort(sorted, nb, sizeof *sorted, cmp_d);
    assert_true(fabs(r.kl_mean - mean) < 1e-12);
    assert_true(r.kl_median == 0.5 * (sorted[6] + sorted[7]));
    assert_true(r.kl_p99 == sorted[13] && r.kl_max == sorted[13]); /* ceil(0.99 * 14) = 14th */
    assert_true(r.top1 == (double)agree / (double)nb);
    assert_true(fabs(r.base.nll_mean + lpb / (double)nb) < 1e-9);
    assert_true(fabs(r.test.nll_mean + lpt / (double)nb) < 1e-9);
    assert_true(fabs(log(r.ppl_ratio) - (lpb - lpt) / (double)nb) < 1e-9);
    assert_true(r.kl_se > 0 && r.kl_se < r.kl_mean);
    free(zb);
    free(zt);
    free(tb);
    free(tt);
    free(ids);
    cit_model_free(base);
    cit_model_free(test);
}

static void test_kl_f16_below_q4_0(void **state)
{
    (void)state;
    struct cit_model *f32 = load("models/micro-llama-f32.gguf"), *f16 = load("models/micro-llama-F16.gguf"),
                     *q4 = load("models/micro-llama-Q4_0.gguf");
    const size_t n = 4 * 15;
    int32_t *ids = random_ids(f32, 41, n);
    struct cit_eval_kl a = kl_of(f32, f16, ids, n, 16, NULL, 0);
    struct cit_eval_kl b = kl_of(f32, q4, ids, n, 16, NULL, 0);
    assert_int_equal(a.n_scored, 4 * 7);
    if (!(a.kl_mean > 0 && b.kl_mean > 0 && a.kl_mean < b.kl_mean))
        fail_msg("KL(f32||F16) = %g, KL(f32||Q4_0) = %g", a.kl_mean, b.kl_mean);
    /* F16 rounding barely moves the distributions: well separated, not a close call */
    assert_true(a.kl_mean + 3 * a.kl_se < b.kl_mean - 3 * b.kl_se);
    assert_true(a.top1 >= b.top1);
    free(ids);
    cit_model_free(f32);
    cit_model_free(f16);
    cit_model_free(q4);
}

/* ---- (d) the command line ---- */

static void expect_usage_error(const char *args, const char *needle)
{
    struct test_cli r = test_cli_run(args);
    if (r.status != 2 || !strstr(r.err, needle))
        fail_msg("citadel %s: exit %d, stderr '%s' (wanted exit 2 naming '%s')", args, r.status, r.err, needle);
    assert_string_equal(r.out, "");
    test_cli_free(&r);
}

static void test_cli_help_and_usage_errors(void **state)
{
    (void)state;
    struct test_cli r = test_cli_run("eval --help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: citadel eval"));
    assert_non_null(strstr(r.out, "--base"));
    assert_non_null(strstr(r.out, "--random-tokens"));
    test_cli_free(&r);

    char a[4096];
    const char *m = test_shared_quoted("models/micro-llama-Q8_0.gguf");
    expect_usage_error("eval --random-tokens 100", "-m");
    snprintf(a, sizeof a, "eval -m %s", m);
    expect_usage_error(a, "--random-tokens");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 100 -f /dev/null", m);
    expect_usage_error(a, "-f TEXT_FILE");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 100 -c 3", m);
    expect_usage_error(a, "--ctx");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 100 -c 12x", m);
    expect_usage_error(a, "--ctx");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 0", m);
    expect_usage_error(a, "--random-tokens");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 100 --chunks 0", m);
    expect_usage_error(a, "--chunks");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 100 -o xml", m);
    expect_usage_error(a, "--output");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 100 -t 0", m);
    expect_usage_error(a, "--threads");
    snprintf(a, sizeof a, "eval -m %s -f /dev/null --seed 4", m);
    expect_usage_error(a, "--seed");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 100 stray", m);
    expect_usage_error(a, "stray");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 100 --bogus", m);
    expect_usage_error(a, "bogus");
    snprintf(a, sizeof a, "eval -m %s --random-tokens 10 -c 16", m); /* fewer tokens than a window */
    expect_usage_error(a, "--ctx 16");
}

static void test_cli_runtime_errors(void **state)
{
    (void)state;
    char a[4096];
    assert_int_equal(test_cli_check("eval -m /nonexistent/model.gguf --random-tokens 100", 1, "/nonexistent/model.gguf"), 0);
    snprintf(a, sizeof a, "eval -m %s --base /nonexistent/base.gguf --random-tokens 100",
             test_shared_quoted("models/micro-llama-Q8_0.gguf"));
    assert_int_equal(test_cli_check(a, 1, "--base /nonexistent/base.gguf"), 0);
    snprintf(a, sizeof a, "eval -m %s -f /nonexistent/text.txt", test_shared_quoted("models/micro-llama-Q8_0.gguf"));
    assert_int_equal(test_cli_check(a, 1, "/nonexistent/text.txt"), 0);
    snprintf(a, sizeof a, "eval -m %s --random-tokens 2000 -c 1024", test_shared_quoted("models/micro-llama-Q8_0.gguf"));
    struct test_cli r = test_cli_run(a);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "--ctx 1024"));
    assert_non_null(strstr(r.err, "512"));
    test_cli_free(&r);
}

static double jnum(json_t *o, const char *k1, const char *k2)
{
    json_t *v = json_object_get(o, k1);
    if (k2)
        v = json_object_get(v, k2);
    if (!json_is_number(v))
        fail_msg("JSON has no number at %s%s%s", k1, k2 ? "." : "", k2 ? k2 : "");
    return json_number_value(v);
}

/* KL mode: the JSON numbers equal the library's for the same settings. */
static void test_cli_json_kl(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "eval -m %s", test_shared_quoted("models/micro-qwen2-Q8_0.gguf"));
    snprintf(a + strlen(a), sizeof a - strlen(a), " --base %s --random-tokens 48 --seed 9 -c 16 -t 1 -o json",
             test_shared_quoted("models/micro-qwen2-Q4_0.gguf"));
    struct test_cli r = test_cli_run(a);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    json_error_t je;
    json_t *j = json_loads(r.out, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, r.out);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "micro-qwen2-Q8_0.gguf");
    assert_string_equal(json_string_value(json_object_get(j, "base")), "micro-qwen2-Q4_0.gguf");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "tokens"), "kind")), "random");
    assert_true(jnum(j, "n_tokens", NULL) == 48 && jnum(j, "n_ctx", NULL) == 16);
    assert_true(jnum(j, "n_windows", NULL) == 3 && jnum(j, "n_scored", NULL) == 21);
    assert_true(json_is_true(json_object_get(j, "bos")));

    struct cit_model *base = load("models/micro-qwen2-Q4_0.gguf"), *test = load("models/micro-qwen2-Q8_0.gguf");
    int32_t *ids = random_ids(base, 9, 48);
    struct cit_eval_kl k = kl_of(base, test, ids, 48, 16, NULL, 0);
    assert_true(jnum(j, "kl", "mean") == k.kl_mean && jnum(j, "kl", "se") == k.kl_se);
    assert_true(jnum(j, "kl", "median") == k.kl_median && jnum(j, "kl", "p99") == k.kl_p99);
    assert_true(jnum(j, "kl", "max") == k.kl_max && jnum(j, "top1", NULL) == k.top1);
    assert_true(jnum(j, "test", "ppl") == k.test.ppl && jnum(j, "base_ppl", "ppl") == k.base.ppl);
    assert_true(jnum(j, "ppl_ratio", NULL) == k.ppl_ratio);
    assert_true(k.kl_mean > 0);
    json_decref(j);
    test_cli_free(&r);

    /* the text table carries the same numbers */
    snprintf(a, sizeof a, "eval -m %s", test_shared_quoted("models/micro-qwen2-Q8_0.gguf"));
    snprintf(a + strlen(a), sizeof a - strlen(a), " --base %s --random-tokens 48 --seed 9 -c 16 --chunks 1",
             test_shared_quoted("models/micro-qwen2-Q4_0.gguf"));
    r = test_cli_run(a);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "KL mean"));
    assert_non_null(strstr(r.out, "top-1 agree"));
    assert_non_null(strstr(r.out, "1 of 16 positions (BOS first), 7 scored tokens"));
    assert_null(strchr(r.err, '\r')); /* no progress line when stderr is not a terminal */
    test_cli_free(&r);
    free(ids);
    cit_model_free(base);
    cit_model_free(test);
}

/* Perplexity mode on a text file: the text tokenized and windowed as the
 * library does it gives the same perplexity. */
static void test_cli_json_text(void **state)
{
    (void)state;
    const char *text = "Once upon a time, there was a little dog named Max. Max liked to run and jump in the park "
                       "with his friend, a small cat. One day the cat got stuck in a tree. Max barked and barked "
                       "until a kind man came and helped the cat down. They were happy and played all day.";
    char path[512], a[4096];
    snprintf(path, sizeof path, "%s/story.txt", test_tmpdir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(a, sizeof a, "eval -m %s -f '%s' -c 16 -o json", test_shared_quoted("models/stories260K.gguf"), path);
    struct test_cli r = test_cli_run(a);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_null(json_object_get(j, "kl"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "tokens"), "kind")), "file");

    struct cit_model *m = load("models/stories260K.gguf");
    struct cit_tokenizer *t = load_tok(m);
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(cit_tokenize_alloc(t, text, strlen(text), false, false, &ids, &n, NULL, 0), CIT_OK);
    struct cit_eval_params p;
    cit_eval_params_default(&p);
    p.n_ctx = 16;
    p.bos = cit_tokenizer_bos(t);
    double lp[512];
    size_t n_out = 0;
    assert_int_equal(cit_eval_logprobs(m, ids, n, &p, lp, 512, NULL, NULL, &n_out, NULL, 0), CIT_OK);
    struct cit_eval_ppl pp;
    cit_eval_ppl_summary(lp, n_out, &pp);
    assert_true(jnum(j, "n_tokens", NULL) == (double)n);
    assert_true(jnum(j, "n_scored", NULL) == (double)n_out);
    assert_true(jnum(j, "test", "ppl") == pp.ppl);
    assert_true(jnum(j, "test", "nll_se") == pp.nll_se);
    json_decref(j);
    test_cli_free(&r);
    free(ids);
    cit_tokenizer_free(t);
    cit_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_ppl_summary),
        cmocka_unit_test(test_logprobs_match_tokenwise),
        cmocka_unit_test(test_story_perplexity),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_random_tokens),
        cmocka_unit_test(test_kl_self_is_zero),
        cmocka_unit_test(test_kl_matches_tokenwise),
        cmocka_unit_test(test_kl_f16_below_q4_0),
        cmocka_unit_test(test_cli_help_and_usage_errors),
        cmocka_unit_test(test_cli_runtime_errors),
        cmocka_unit_test(test_cli_json_kl),
        cmocka_unit_test(test_cli_json_text),
    };
    return cmocka_run_group_tests(tests, test_tmpdir_setup, test_tmpdir_teardown);
}
