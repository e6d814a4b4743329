/* eval.c: perplexity and KL divergence over windows of a token sequence
 * (see citadel/eval.h for the window layout and the numerics).
 *
 * One driver (run_windows) walks the windows for one or two models in
 * lockstep: it builds a window's tokens, decodes them batch by batch in each
 * model's context (logits asked only for the scored positions), and hands
 * every scored position's logits, from every model, to a per-item scorer.
 * Perplexity and KL are two scorers over the same driver, so both see
 * exactly the same tokens, positions and batches. */
#include "citadel/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "citadel/model.h"
#include "citadel/tokenizer.h"
#include "sample/rng.h"

#define EVAL_DEFAULT_CTX 128u
#define EVAL_MAX_MODELS 2

void cit_eval_params_default(struct cit_eval_params *p)
{
    memset(p, 0, sizeof *p);
    p->n_ctx = EVAL_DEFAULT_CTX;
    p->bos = CIT_EVAL_NO_BOS;
}

/* Text tokens consumed per window: BOS takes one of the n_ctx positions. */
static size_t window_stride(const struct cit_eval_params *p)
{
    return p->bos >= 0 ? (size_t)p->n_ctx - 1 : (size_t)p->n_ctx;
}

/* Scored positions per window: logits at n_ctx/2 .. n_ctx-2. */
static size_t window_scored(const struct cit_eval_params *p)
{
    return (size_t)p->n_ctx - 1 - p->n_ctx / 2;
}

enum cit_status cit_eval_count(const struct cit_eval_params *p, size_t n_tokens, size_t *n_windows,
                               size_t *n_scored, char *err, size_t errlen)
{
    if (p->n_ctx < CIT_EVAL_MIN_CTX)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "eval: n_ctx %u is below the smallest window of %u positions",
                        p->n_ctx, CIT_EVAL_MIN_CTX);
    size_t w = n_tokens / window_stride(p);
    if (p->n_chunks && w > p->n_chunks)
        w = p->n_chunks;
    size_t s;
    if (!cit_mul_size(w, window_scored(p), &s))
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "eval: %zu windows overflow the scored-position count", w);
    *n_windows = w;
    *n_scored = s;
    return CIT_OK;
}

/* ---- numerics ---- */

/* out[v] = z[v] - log(sum_u exp(z[u])), in double with the maximum taken
 * out first. Returns false when a logit is NaN or infinite. */
static bool log_softmax(const float *z, size_t n, double *out)
{
    double mx = -INFINITY;
    for (size_t v = 0; v < n; v++) {
        if (!isfinite(z[v]))
            return false;
        if (z[v] > mx)
            mx = z[v];
    }
    double s = 0.0;
    for (size_t v = 0; v < n; v++)
        s += exp((double)z[v] - mx);
    double lse = mx + log(s); /* s >= 1: the maximum contributes exp(0) */
    for (size_t v = 0; v < n; v++)
        out[v] = (double)z[v] - lse;
    return true;
}

/* First index of the largest logit. */
static size_t argmax(const float *z, size_t n)
{
    size_t best = 0;
    for (size_t v = 1; v < n; v++)
        if (z[v] > z[best])
            best = v;
    return best;
}

static double mean_of(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return n ? s / (double)n : 0.0;
}

/* Standard error of the mean (sample sd / sqrt(n)), two-pass; 0 for n < 2. */
static double se_of(const double *x, size_t n, double mean)
{
    if (n < 2)
        return 0.0;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - mean) * (x[i] - mean);
    return sqrt(ss / (double)(n - 1) / (double)n);
}

void cit_eval_ppl_summary(const double *logprobs, size_t n, struct cit_eval_ppl *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    double m = -mean_of(logprobs, n);
    out->nll_mean = m;
    out->nll_se = se_of(logprobs, n, -m); /* sd of -x equals sd of x */
    out->ppl = exp(m);
    out->ppl_se = out->ppl * out->nll_se;
}

/* ---- the window driver ---- */

struct runner {
    const struct cit_model *model;
    struct cit_context *ctx;
};

/* Scores one position: lg[k] are the logits of model k (n_vocab floats). */
typedef enum cit_status (*score_fn)(void *arg, size_t index, int32_t target, const float *const *lg,
                                    char *err, size_t errlen);

struct drive {
    const int32_t *tokens;
    const struct cit_eval_params *p;
    size_t n_windows;
    uint32_t n_vocab;
    struct runner run[EVAL_MAX_MODELS];
    size_t n_models;
    score_fn score;
    void *score_arg;
};

/* Checks the parameters and tokens against the models and counts windows. */
static enum cit_status check_inputs(const struct cit_model *const *models, size_t n_models, const int32_t *tokens,
                                    size_t n_tokens, const struct cit_eval_params *p, size_t *n_windows,
                                    size_t *n_scored, char *err, size_t errlen)
{
    enum cit_status st = cit_eval_count(p, n_tokens, n_windows, n_scored, err, errlen);
    if (st != CIT_OK)
        return st;
    uint32_t n_vocab = cit_model_info(models[0])->n_vocab;
    for (size_t k = 1; k < n_models; k++)
        if (cit_model_info(models[k])->n_vocab != n_vocab)
            return cit_fail(CIT_ERR_INVALID_ARG, err, errlen,
                            "eval: the base model has a vocabulary of %u tokens but the test model has %u",
                            n_vocab, cit_model_info(models[k])->n_vocab);
    if (*n_windows == 0)
        return cit_fail(CIT_ERR_LIMIT, err, errlen,
                        "eval: %zu tokens do not fill one window of %u positions (%zu tokens needed%s)", n_tokens,
                        p->n_ctx, window_stride(p), p->bos >= 0 ? " after the BOS token" : "");
    if (p->bos != CIT_EVAL_NO_BOS && (p->bos < 0 || (uint32_t)p->bos >= n_vocab))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "eval: BOS token %d is outside the vocabulary [0, %u)", p->bos,
                        n_vocab);
    size_t used = *n_windows * window_stride(p);
    for (size_t i = 0; i < used; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab)
            return cit_fail(CIT_ERR_RANGE, err, errlen, "eval: token %zu is %d, outside the vocabulary [0, %u)", i,
                            tokens[i], n_vocab);
    return CIT_OK;
}

static enum cit_status open_runners(struct drive *d, const struct cit_model *const *models, char *err,
                                    size_t errlen)
{
    const struct cit_eval_params *p = d->p;
    uint32_t n_dec = p->n_ctx - 1; /* the last position is only a target */
    uint32_t n_batch = p->n_batch && p->n_batch < n_dec ? p->n_batch : n_dec;
    struct cit_context_params cp = {.n_ctx = p->n_ctx, .n_seq_max = 1, .n_batch_max = n_batch,
                                    .n_threads = p->n_threads};
    for (size_t k = 0; k < d->n_models; k++) {
        d->run[k].model = models[k];
        enum cit_status st = cit_context_new(models[k], &cp, &d->run[k].ctx, err, errlen);
        if (st != CIT_OK)
            return st;
    }
    return CIT_OK;
}

static void close_runners(struct drive *d)
{
    for (size_t k = 0; k < d->n_models; k++) {
        cit_context_free(d->run[k].ctx);
        d->run[k].ctx = NULL;
    }
}

/* Runs every window through every model and calls d->score for each scored
 * position, with the scored positions numbered in order from 0. */
static enum cit_status run_windows(struct drive *d, char *err, size_t errlen)
{
    const struct cit_eval_params *p = d->p;
    const uint32_t n_ctx = p->n_ctx, first = n_ctx / 2, n_dec = n_ctx - 1;
    const size_t stride = window_stride(p);
    const uint32_t n_batch = cit_context_params(d->run[0].ctx)->n_batch_max;
    enum cit_status st = CIT_OK;
    int32_t *win = malloc((size_t)n_ctx * sizeof *win);                  /* (n_ctx) window tokens */
    struct cit_batch_item *items = malloc((size_t)n_batch * sizeof *items); /* (n_batch) */
    if (!win || !items) {
        st = cit_fail(CIT_ERR_NOMEM, err, errlen, "eval: out of memory for a window of %u tokens", n_ctx);
        goto out;
    }
    size_t index = 0;
    for (size_t w = 0; w < d->n_windows; w++) {
        const int32_t *src = d->tokens + w * stride;
        size_t o = 0;
        if (p->bos >= 0)
            win[o++] = p->bos;
        memcpy(win + o, src, stride * sizeof *win);
        for (size_t k = 0; k < d->n_models; k++)
            cit_kv_seq_rm(d->run[k].ctx, 0, 0);
        for (uint32_t b0 = 0; b0 < n_dec; b0 += n_batch) {
            uint32_t nb = n_dec - b0 < n_batch ? n_dec - b0 : n_batch;
            for (uint32_t i = 0; i < nb; i++)
                items[i] = (struct cit_batch_item){.token = win[b0 + i], .pos = (int32_t)(b0 + i), .seq = 0,
                                                   .logits = b0 + i >= first};
            for (size_t k = 0; k < d->n_models; k++) {
                st = cit_decode(d->run[k].ctx, items, nb, err, errlen);
                if (st != CIT_OK)
                    goto out;
            }
            for (uint32_t i = 0; i < nb; i++) {
                uint32_t pos = b0 + i;
                if (pos < first)
                    continue;
                const float *lg[EVAL_MAX_MODELS];
                for (size_t k = 0; k < d->n_models; k++)
                    lg[k] = cit_logits(d->run[k].ctx, i);
                st = d->score(d->score_arg, index, win[pos + 1], lg, err, errlen);
                if (st != CIT_OK) {
                    /* name where it happened after the scorer's own words */
                    size_t len = err ? strlen(err) : 0;
                    if (err && len + 1 < errlen)
                        snprintf(err + len, errlen - len, " (window %zu, position %u)", w, pos);
                    goto out;
                }
                index++;
            }
        }
        if (p->progress)
            p->progress(p->progress_arg, w + 1, d->n_windows);
    }
out:
    for (size_t k = 0; k < d->n_models; k++)
        cit_kv_seq_rm(d->run[k].ctx, 0, 0);
    free(items);
    free(win);
    return st;
}

/* ---- perplexity ---- */

struct lp_state {
    double *logsm; /* (n_vocab) */
    size_t n_vocab;
    double *logprobs;
    cit_eval_dist_fn dist;
    void *dist_arg;
};

static enum cit_status score_logprob(void *arg, size_t index, int32_t target, const float *const *lg, char *err,
                                     size_t errlen)
{
    struct lp_state *s = arg;
    if (!log_softmax(lg[0], s->n_vocab, s->logsm))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "eval: the model's logits are not all finite");
    s->logprobs[index] = s->logsm[target];
    if (s->dist)
        s->dist(s->dist_arg, index, target, s->logsm, s->n_vocab);
    return CIT_OK;
}

enum cit_status cit_eval_logprobs(const struct cit_model *model, const int32_t *tokens, size_t n_tokens,
                                  const struct cit_eval_params *p, double *logprobs, size_t cap,
                                  cit_eval_dist_fn dist, void *dist_arg, size_t *n_out, char *err,
                                  size_t errlen)
{
    const struct cit_model *models[1] = {model};
    size_t n_windows = 0, n_scored = 0;
    *n_out = 0;
    enum cit_status st = check_inputs(models, 1, tokens, n_tokens, p, &n_windows, &n_scored, err, errlen);
    if (st != CIT_OK)
        return st;
    *n_out = n_scored;
    if (cap < n_scored)
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "eval: room for %zu log-probabilities but %zu are scored", cap,
                        n_scored);
    struct lp_state s = {.n_vocab = cit_model_info(model)->n_vocab, .logprobs = logprobs, .dist = dist,
                         .dist_arg = dist_arg};
    s.logsm = malloc(s.n_vocab * sizeof *s.logsm);
    if (!s.logsm)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "eval: out of memory for %zu log-probabilities", s.n_vocab);
    struct drive d = {.tokens = tokens, .p = p, .n_windows = n_windows, .n_vocab = (uint32_t)s.n_vocab,
                      .n_models = 1, .score = score_logprob, .score_arg = &s};
    st = open_runners(&d, models, err, errlen);
    if (st == CIT_OK)
        st = run_windows(&d, err, errlen);
    close_runners(&d);
    free(s.logsm);
    return st;
}

/* ---- KL divergence ---- */

struct kl_state {
    size_t n_vocab;
    double *ls_base, *ls_test; /* (n_vocab) each */
    double *kl, *lp_base, *lp_test; /* (n_scored) each */
    size_t agree;
};

static enum cit_status score_kl(void *arg, size_t index, int32_t target, const float *const *lg, char *err,
                                size_t errlen)
{
    struct kl_state *s = arg;
    if (!log_softmax(lg[0], s->n_vocab, s->ls_base))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "eval: the base model's logits are not all finite");
    if (!log_softmax(lg[1], s->n_vocab, s->ls_test))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "eval: the test model's logits are not all finite");
    double kl = 0.0;
    for (size_t v = 0; v < s->n_vocab; v++)
        kl += exp(s->ls_base[v]) * (s->ls_base[v] - s->ls_test[v]);
    s->kl[index] = kl;
    s->lp_base[index] = s->ls_base[target];
    s->lp_test[index] = s->ls_test[target];
    s->agree += argmax(lg[0], s->n_vocab) == argmax(lg[1], s->n_vocab);
    return CIT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fills the summary fields of out from the per-position arrays (n >= 1);
 * sorts kl in place. */
static void kl_summarize(struct kl_state *s, size_t n, struct cit_eval_kl *out)
{
    out->kl_mean = mean_of(s->kl, n);
    out->kl_se = se_of(s->kl, n, out->kl_mean);
    out->top1 = (double)s->agree / (double)n;
    cit_eval_ppl_summary(s->lp_base, n, &out->base);
    cit_eval_ppl_summary(s->lp_test, n, &out->test);
    /* ratio of perplexities from paired per-token differences (reuses lp_test) */
    for (size_t i = 0; i < n; i++)
        s->lp_test[i] = s->lp_base[i] - s->lp_test[i]; /* nll_test - nll_base */
    double dm = mean_of(s->lp_test, n);
    out->ppl_ratio = exp(dm);
    out->ppl_ratio_se = out->ppl_ratio * se_of(s->lp_test, n, dm);
    qsort(s->kl, n, sizeof *s->kl, cmp_double);
    out->kl_median = n % 2 ? s->kl[n / 2] : 0.5 * (s->kl[n / 2 - 1] + s->kl[n / 2]);
    size_t r = (size_t)ceil(0.99 * (double)n); /* nearest rank, 1-based */
    out->kl_p99 = s->kl[(r ? r : 1) - 1];
    out->kl_max = s->kl[n - 1];
}

enum cit_status cit_eval_kl(const struct cit_model *base, const struct cit_model *test, const int32_t *tokens,
                            size_t n_tokens, const struct cit_eval_params *p, struct cit_eval_kl *out,
                            double *kl_out, size_t cap, char *err, size_t errlen)
{
    const struct cit_model *models[2] = {base, test};
    memset(out, 0, sizeof *out);
    size_t n_windows = 0, n_scored = 0;
    enum cit_status st = check_inputs(models, 2, tokens, n_tokens, p, &n_windows, &n_scored, err, errlen);
    if (st != CIT_OK)
        return st;
    struct kl_state s = {.n_vocab = cit_model_info(base)->n_vocab};
    s.ls_base = malloc(s.n_vocab * sizeof(double));
    s.ls_test = malloc(s.n_vocab * sizeof(double));
    s.kl = malloc(n_scored * sizeof(double));
    s.lp_base = malloc(n_scored * sizeof(double));
    s.lp_test = malloc(n_scored * sizeof(double));
    struct drive d = {.tokens = tokens, .p = p, .n_windows = n_windows, .n_vocab = (uint32_t)s.n_vocab,
                      .n_models = 2, .score = score_kl, .score_arg = &s};
    if (!s.ls_base || !s.ls_test || !s.kl || !s.lp_base || !s.lp_test) {
        st = cit_fail(CIT_ERR_NOMEM, err, errlen, "eval: out of memory for %zu scored positions", n_scored);
        goto out;
    }
    st = open_runners(&d, models, err, errlen);
    if (st == CIT_OK)
        st = run_windows(&d, err, errlen);
    if (st != CIT_OK)
        goto out;
    if (kl_out)
        memcpy(kl_out, s.kl, (cap < n_scored ? cap : n_scored) * sizeof *kl_out);
    out->n_windows = n_windows;
    out->n_scored = n_scored;
    kl_summarize(&s, n_scored, out);
out:
    close_runners(&d);
    free(s.ls_base);
    free(s.ls_test);
    free(s.kl);
    free(s.lp_base);
    free(s.lp_test);
    return st;
}

/* ---- random tokens ---- */

enum cit_status cit_eval_random_tokens(const struct cit_tokenizer *tok, uint64_t seed, int32_t *out, size_t n,
                                       char *err, size_t errlen)
{
    uint32_t n_vocab = cit_tokenizer_n_vocab(tok);
    int32_t *ok = malloc((n_vocab ? n_vocab : 1) * sizeof *ok); /* (n_vocab) eligible ids */
    if (!ok)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "eval: out of memory for a vocabulary of %u", n_vocab);
    uint32_t n_ok = 0;
    for (uint32_t v = 0; v < n_vocab; v++) {
        enum cit_token_type t = cit_tokenizer_token_type(tok, (int32_t)v);
        if (t != CIT_TOKEN_CONTROL && t != CIT_TOKEN_UNKNOWN && t != CIT_TOKEN_UNUSED)
            ok[n_ok++] = (int32_t)v;
    }
    if (n_ok == 0) {
        free(ok);
        return cit_fail(CIT_ERR_RANGE, err, errlen,
                        "eval: the vocabulary of %u tokens has no ordinary token to draw from", n_vocab);
    }
    struct cit_rng rng;
    cit_rng_seed(&rng, seed);
    /* rejection sampling: take the top bits below the largest multiple of n_ok */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n_ok;
    for (size_t i = 0; i < n; i++) {
        uint64_t r;
        do
            r = cit_rng_next(&rng);
        while (r >= limit);
        out[i] = ok[r % n_ok];
    }
    free(ok);
    return CIT_OK;
}
