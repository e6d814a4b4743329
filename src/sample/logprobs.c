/* logprobs.c: log-softmax of a raw logit row for an API's `logprobs` field:
 * the chosen token's log-probability and the n most likely alternatives.
 *
 * Reported on the model's own distribution (temperature 1, before bias and
 * penalties), as the OpenAI-style APIs do. One pass finds the max, one sums
 * exp in double for the log-sum-exp, and the top n are kept in the caller's
 * array as a heap whose root is the weakest entry, so nothing is allocated
 * and the cost is O(n_vocab log n). */
#include <math.h>
#include <stdbool.h>

#include "base/err.h"
#include "citadel/sampler.h"

/* Higher logit first, then lower id: the same order the sampler uses. */
static inline bool better(struct cit_token_logprob a, struct cit_token_logprob b)
{
    return a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token);
}

static void sift_down(struct cit_token_logprob *h, int32_t i, int32_t n)
{
    for (;;) {
        int32_t l = 2 * i + 1, w = i;
        if (l < n && better(h[w], h[l]))
            w = l;
        if (l + 1 < n && better(h[w], h[l + 1]))
            w = l + 1;
        if (w == i)
            return;
        struct cit_token_logprob t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(struct cit_token_logprob *h, int32_t i)
{
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!better(h[parent], h[i]))
            return;
        struct cit_token_logprob t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

enum cit_status cit_sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token,
                                     int32_t n_top, struct cit_token_logprob *top,
                                     float *chosen_logprob, char *err, size_t errlen)
{
    if (!logits || (n_top > 0 && !top))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "logprobs: NULL argument");
    if (n_vocab < 1)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "logprobs: n_vocab = %d, must be >= 1",
                        (int)n_vocab);
    if (n_top < 0 || n_top > n_vocab)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "logprobs: n_top = %d outside [0, %d]",
                        (int)n_top, (int)n_vocab);
    if (chosen_logprob && (token < 0 || token >= n_vocab))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "logprobs: token = %d outside [0, %d)",
                        (int)token, (int)n_vocab);

    float lmax = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) {
        float l = logits[i];
        if (isnan(l) || l == INFINITY)
            return cit_fail(CIT_ERR_RANGE, err, errlen, "logprobs: logits[%d] = %g", (int)i,
                            (double)l);
        if (l > lmax)
            lmax = l;
    }
    if (lmax == -INFINITY)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "logprobs: every logit is -inf");

    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - (double)lmax);
    double lse = (double)lmax + log(sum);

    if (chosen_logprob)
        *chosen_logprob = (float)((double)logits[token] - lse);

    if (n_top > 0) {
        /* h[0, filled) is a heap of raw logits with the weakest at the root. */
        struct cit_token_logprob *h = top;
        int32_t filled = 0;
        for (int32_t i = 0; i < n_vocab; i++) {
            struct cit_token_logprob e = { .token = i, .logprob = logits[i] };
            if (filled < n_top) {
                h[filled] = e;
                sift_up(h, filled++);
            } else if (better(e, h[0])) {
                h[0] = e;
                sift_down(h, 0, n_top);
            }
        }
        /* Pop the weakest to the back: the array ends up best first. */
        for (int32_t end = n_top; end > 1; end--) {
            struct cit_token_logprob t = h[0];
            h[0] = h[end - 1];
            h[end - 1] = t;
            sift_down(h, 0, end - 1);
        }
        for (int32_t i = 0; i < n_top; i++)
            h[i].logprob = (float)((double)h[i].logprob - lse);
    }
    return CIT_OK;
}
