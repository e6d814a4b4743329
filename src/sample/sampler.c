/* sampler.c: the sampler object: parameter validation, the penalty window,
 * and the bias -> penalties -> (greedy | filters -> temperature -> draw)
 * pipeline described in citadel/sampler.h.
 *
 * The penalty window is a ring of the last penalty_last_n accepted ids plus
 * a per-token count, updated as tokens enter and leave, so a sample costs
 * O(window) for penalties rather than a rescan of the history. With
 * penalty_last_n = -1 nothing ever leaves, so instead of a ring the sampler
 * keeps the list of distinct ids seen. */
#include "citadel/sampler.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "sample/cands.h"
#include "sample/rng.h"

struct cit_sampler {
    int32_t n_vocab;
    struct cit_sampler_params p; /* p.logit_bias points at bias below */
    struct cit_logit_bias *bias; /* (n_logit_bias) owned copy */
    struct cit_rng rng;

    bool penalize;     /* some penalty is on and the window is not 0 */
    int32_t *count;    /* (n_vocab) occurrences of each id in the window; NULL if !penalize */
    int32_t *ring;     /* (ring_cap) window, oldest at ring_head; NULL unless window > 0 */
    int32_t ring_cap, ring_head, ring_len;
    int32_t *distinct; /* (n_vocab) ids with count > 0; only for the whole-history window */
    int32_t n_distinct;

    float *work;           /* (n_vocab) logits after bias and penalties */
    struct cit_cand *cand; /* (n_vocab) tokens still in play */
};

void cit_sampler_params_default(struct cit_sampler_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->penalty_last_n = 64;
    p->seed = 0;
    p->logit_bias = NULL;
    p->n_logit_bias = 0;
}

static enum cit_status check_finite(const char *field, float v, char *err, size_t errlen)
{
    if (!isfinite(v))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "sampler: %s = %g is not finite", field,
                        (double)v);
    return CIT_OK;
}

static enum cit_status validate(const struct cit_sampler_params *p, int32_t n_vocab, char *err,
                                size_t errlen)
{
    enum cit_status st;
    if (n_vocab < 1)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "sampler: n_vocab = %d, must be >= 1",
                        (int)n_vocab);
    if ((st = check_finite("temperature", p->temperature, err, errlen)) != CIT_OK)
        return st;
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "sampler: top_p = %g outside (0, 1]",
                        (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "sampler: min_p = %g outside [0, 1]",
                        (double)p->min_p);
    if (!(isfinite(p->repeat_penalty) && p->repeat_penalty > 0.0f))
        return cit_fail(CIT_ERR_RANGE, err, errlen,
                        "sampler: repeat_penalty = %g, must be finite and > 0",
                        (double)p->repeat_penalty);
    if ((st = check_finite("presence_penalty", p->presence_penalty, err, errlen)) != CIT_OK)
        return st;
    if ((st = check_finite("frequency_penalty", p->frequency_penalty, err, errlen)) != CIT_OK)
        return st;
    if (p->penalty_last_n < -1 || p->penalty_last_n > CIT_SAMPLER_MAX_PENALTY_WINDOW)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "sampler: penalty_last_n = %d outside [-1, %d]",
                        (int)p->penalty_last_n, CIT_SAMPLER_MAX_PENALTY_WINDOW);
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen,
                        "sampler: logit_bias is NULL but n_logit_bias = %zu", p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const struct cit_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return cit_fail(CIT_ERR_RANGE, err, errlen,
                            "sampler: logit_bias[%zu].token = %d outside [0, %d)", i,
                            (int)b->token, (int)n_vocab);
        if (isnan(b->bias) || b->bias == INFINITY)
            return cit_fail(CIT_ERR_RANGE, err, errlen,
                            "sampler: logit_bias[%zu].bias = %g (token %d), must be finite or -inf",
                            i, (double)b->bias, (int)b->token);
    }
    return CIT_OK;
}

/* calloc of n elements of size sz, NULL on overflow as well as on failure. */
static void *alloc_array(size_t n, size_t sz)
{
    size_t total;
    if (!cit_mul_size(n, sz, &total))
        return NULL;
    return calloc(n ? n : 1, sz);
}

enum cit_status cit_sampler_new(const struct cit_sampler_params *p, int32_t n_vocab,
                                struct cit_sampler **out, char *err, size_t errlen)
{
    if (!out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "sampler: out is NULL");
    *out = NULL;
    if (!p)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "sampler: params is NULL");
    enum cit_status st = validate(p, n_vocab, err, errlen);
    if (st != CIT_OK)
        return st;

    struct cit_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "sampler: out of memory");
    s->n_vocab = n_vocab;
    s->p = *p;
    size_t nv = (size_t)n_vocab;
    bool ok = true;

    if (p->n_logit_bias > 0) {
        s->bias = alloc_array(p->n_logit_bias, sizeof *s->bias);
        if ((ok = s->bias != NULL))
            memcpy(s->bias, p->logit_bias, p->n_logit_bias * sizeof *s->bias);
    }
    s->p.logit_bias = s->bias;

    s->penalize = p->penalty_last_n != 0 &&
                  (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f ||
                   p->frequency_penalty != 0.0f);
    if (ok && s->penalize) {
        ok = (s->count = alloc_array(nv, sizeof *s->count)) != NULL;
        if (ok && p->penalty_last_n > 0) {
            s->ring_cap = p->penalty_last_n;
            ok = (s->ring = alloc_array((size_t)s->ring_cap, sizeof *s->ring)) != NULL;
        } else if (ok) {
            ok = (s->distinct = alloc_array(nv, sizeof *s->distinct)) != NULL;
        }
    }
    if (ok)
        ok = (s->work = alloc_array(nv, sizeof *s->work)) != NULL &&
             (s->cand = alloc_array(nv, sizeof *s->cand)) != NULL;
    if (!ok) {
        cit_sampler_free(s);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "sampler: out of memory for n_vocab = %d",
                        (int)n_vocab);
    }
    cit_rng_seed(&s->rng, p->seed);
    *out = s;
    return CIT_OK;
}

void cit_sampler_free(struct cit_sampler *s)
{
    if (!s)
        return;
    free(s->bias);
    free(s->count);
    free(s->ring);
    free(s->distinct);
    free(s->work);
    free(s->cand);
    free(s);
}

void cit_sampler_reset(struct cit_sampler *s)
{
    if (!s)
        return;
    if (s->count)
        memset(s->count, 0, (size_t)s->n_vocab * sizeof *s->count);
    s->ring_head = s->ring_len = 0;
    s->n_distinct = 0;
    cit_rng_seed(&s->rng, s->p.seed);
}

/* Records a token already checked to be in range. */
static void record(struct cit_sampler *s, int32_t t)
{
    if (s->ring) {
        if (s->ring_len == s->ring_cap) {
            s->count[s->ring[s->ring_head]]--;
            s->ring[s->ring_head] = t;
            s->ring_head = (s->ring_head + 1) % s->ring_cap;
        } else {
            s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = t;
            s->ring_len++;
        }
        s->count[t]++;
    } else {
        if (s->count[t] == 0)
            s->distinct[s->n_distinct++] = t;
        if (s->count[t] < INT32_MAX)
            s->count[t]++;
    }
}

enum cit_status cit_sampler_accept(struct cit_sampler *s, int32_t token, char *err, size_t errlen)
{
    return cit_sampler_accept_many(s, &token, 1, err, errlen);
}

enum cit_status cit_sampler_accept_many(struct cit_sampler *s, const int32_t *tokens, size_t n,
                                        char *err, size_t errlen)
{
    if (!s || (n > 0 && !tokens))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "sampler: accept: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->n_vocab)
            return cit_fail(CIT_ERR_RANGE, err, errlen,
                            "sampler: accepted token[%zu] = %d outside [0, %d)", i,
                            (int)tokens[i], (int)s->n_vocab);
    if (!s->penalize)
        return CIT_OK;
    /* Only the last ring_cap tokens can still be in a bounded window. */
    size_t first = s->ring && n > (size_t)s->ring_cap ? n - (size_t)s->ring_cap : 0;
    for (size_t i = first; i < n; i++)
        record(s, tokens[i]);
    return CIT_OK;
}

/* A finite result that overflowed float is pinned to the largest finite
 * value: only a -inf bias bans a token, and +inf would poison the softmax. */
static float clamp_finite(double v)
{
    if (v > FLT_MAX)
        return FLT_MAX;
    if (v < -FLT_MAX)
        return -FLT_MAX;
    return (float)v;
}

static float penalized(const struct cit_sampler *s, float logit, int32_t count)
{
    if (logit == -INFINITY)
        return logit;
    double l = logit, r = s->p.repeat_penalty;
    if (r != 1.0)
        l = l > 0.0 ? l / r : l * r;
    l -= (double)count * s->p.frequency_penalty + s->p.presence_penalty;
    return clamp_finite(l);
}

/* Copies logits into out (which may alias it) with bias and penalties. */
static enum cit_status adjust(struct cit_sampler *s, const float *logits, float *out, char *err,
                              size_t errlen)
{
    int32_t nv = s->n_vocab;
    /* Branch-free scan first (it vectorises); look for the culprit only if
     * there is one. !(l < inf) holds exactly for NaN and +inf. */
    int bad = 0;
    for (int32_t i = 0; i < nv; i++)
        bad |= !(logits[i] < INFINITY);
    if (bad)
        for (int32_t i = 0; i < nv; i++)
            if (!(logits[i] < INFINITY))
                return cit_fail(CIT_ERR_RANGE, err, errlen, "sampler: logits[%d] = %g", (int)i,
                                (double)logits[i]);
    if (out != logits)
        memmove(out, logits, (size_t)nv * sizeof *out);
    for (size_t i = 0; i < s->p.n_logit_bias; i++) {
        const struct cit_logit_bias *b = &s->bias[i];
        float *l = &out[b->token];
        if (b->bias == -INFINITY || *l == -INFINITY)
            *l = -INFINITY;
        else
            *l = clamp_finite((double)*l + b->bias);
    }
    if (!s->penalize)
        return CIT_OK;
    if (s->ring) {
        /* A token may sit in the ring several times but is penalised once:
         * its count is negated once applied, then restored. */
        for (int32_t k = 0; k < s->ring_len; k++) {
            int32_t t = s->ring[(s->ring_head + k) % s->ring_cap];
            if (s->count[t] > 0) {
                out[t] = penalized(s, out[t], s->count[t]);
                s->count[t] = -s->count[t];
            }
        }
        for (int32_t k = 0; k < s->ring_len; k++) {
            int32_t t = s->ring[(s->ring_head + k) % s->ring_cap];
            if (s->count[t] < 0)
                s->count[t] = -s->count[t];
        }
    } else {
        for (int32_t k = 0; k < s->n_distinct; k++) {
            int32_t t = s->distinct[k];
            out[t] = penalized(s, out[t], s->count[t]);
        }
    }
    return CIT_OK;
}

enum cit_status cit_sampler_adjusted_logits(struct cit_sampler *s, const float *logits,
                                            float *out, char *err, size_t errlen)
{
    if (!s || !logits || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "sampler: NULL argument");
    return adjust(s, logits, out, err, errlen);
}

static enum cit_status all_banned(char *err, size_t errlen)
{
    return cit_fail(CIT_ERR_RANGE, err, errlen,
                    "sampler: every token is banned (-inf logit or logit_bias)");
}

/* Draws from c[0, n) with weights exp((l - lmax) / temperature). */
static int32_t draw(struct cit_rng *rng, const struct cit_cand *c, size_t n, float lmax,
                    double temperature)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += exp(((double)c[i].logit - lmax) / temperature);
    /* The max has weight exp(0) = 1, so sum >= 1 and the walk below ends. */
    double target = cit_rng_uniform(rng) * sum, cum = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        double w = exp(((double)c[i].logit - lmax) / temperature);
        if (w > 0.0)
            last = i;
        cum += w;
        if (target < cum)
            return c[i].id;
    }
    /* Rounding left target at or past the total: the last live candidate. */
    return c[last].id;
}

enum cit_status cit_sampler_sample(struct cit_sampler *s, const float *logits, int32_t *token,
                                   char *err, size_t errlen)
{
    if (!s || !logits || !token)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "sampler: NULL argument");
    enum cit_status st = adjust(s, logits, s->work, err, errlen);
    if (st != CIT_OK)
        return st;
    const float *l = s->work;
    int32_t nv = s->n_vocab;

    if (s->p.temperature <= 0.0f) {
        int32_t best = -1;
        for (int32_t i = 0; i < nv; i++)
            if (l[i] != -INFINITY && (best < 0 || l[i] > l[best]))
                best = i;
        if (best < 0)
            return all_banned(err, errlen);
        *token = best;
        return CIT_OK;
    }

    size_t n = 0;
    float lmax = -INFINITY;
    for (int32_t i = 0; i < nv; i++) {
        if (l[i] == -INFINITY)
            continue;
        s->cand[n].logit = l[i];
        s->cand[n].id = i;
        n++;
        if (l[i] > lmax)
            lmax = l[i];
    }
    if (n == 0)
        return all_banned(err, errlen);
    n = cit_cand_filter(s->cand, n, lmax, s->p.top_k, s->p.top_p, s->p.min_p);
    *token = draw(&s->rng, s->cand, n, lmax, s->p.temperature);
    return CIT_OK;
}
