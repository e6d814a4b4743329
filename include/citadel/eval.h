/* eval.h: how well a model predicts a token sequence (perplexity), and how
 * far a quantized model's next-token distributions are from those of its
 * f32 source (KL divergence). `citadel eval` is a thin layer over this.
 *
 * Windows. The tokens are cut into consecutive, non-overlapping windows of
 * n_ctx positions: with a BOS token, each window is BOS followed by the next
 * n_ctx - 1 tokens of the sequence; without one, it is the next n_ctx
 * tokens. Every window starts from an empty KV cache. As in the usual
 * perplexity tools, the first half of a window is context only: the logits
 * at positions p = n_ctx/2 .. n_ctx-2 are scored against the token at p+1,
 * so a window scores n_ctx - 1 - n_ctx/2 tokens, each seen with at least
 * n_ctx/2 tokens before it. A trailing part shorter than a window is left
 * out. The last position of a window is only a target and never decoded.
 *
 * Numerics. Logits come from cit_decode as floats; the log-softmax is taken
 * in double, with the maximum subtracted before exponentiating (so no
 * overflow for any finite logits), and KL(P_base || P_test) =
 * sum_v p_base(v) (log p_base(v) - log p_test(v)) is summed in double.
 * Identical logits give a KL of exactly 0.
 *
 * Memory. Distributions are never stored beyond the item being scored: KL
 * runs the two models in lockstep, batch by batch, with one context each,
 * and keeps one double per scored position (for the median and the
 * percentile). */
#ifndef CITADEL_EVAL_H
#define CITADEL_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cit_model;
struct cit_tokenizer;

/* Smallest window: two context positions and one scored token after them. */
#define CIT_EVAL_MIN_CTX 4u

/* No BOS token at the start of each window. */
#define CIT_EVAL_NO_BOS (-1)

/* Called after each window with the windows done and the total. */
typedef void (*cit_eval_progress_fn)(void *arg, size_t done, size_t total);

/* Called for every scored position, in order, with its index among the
 * scored positions, the target token, and the model's log-softmax over the
 * vocabulary (n_vocab doubles, valid during the call only). */
typedef void (*cit_eval_dist_fn)(void *arg, size_t index, int32_t target, const double *logsm,
                                 size_t n_vocab);

struct cit_eval_params {
    uint32_t n_ctx;     /* window length in positions, BOS included; >= CIT_EVAL_MIN_CTX, <= n_ctx_train */
    uint32_t n_chunks;  /* windows to run at most; 0 = every complete window */
    uint32_t n_batch;   /* items per cit_decode; 0 = a whole window (n_ctx - 1) in one batch */
    uint32_t n_threads; /* threads per context; 0 = the context default (physical cores) */
    int32_t bos;        /* token put first in every window, or CIT_EVAL_NO_BOS */
    cit_eval_progress_fn progress; /* may be NULL */
    void *progress_arg;
};

/* Fills p with the defaults: n_ctx 128, all windows, whole-window batches,
 * default threads, no BOS (callers set bos from the tokenizer:
 * cit_tokenizer_add_bos ? cit_tokenizer_bos : CIT_EVAL_NO_BOS). */
void cit_eval_params_default(struct cit_eval_params *p);

/* Windows and scored positions that n_tokens give under p (n_ctx as given,
 * not checked against a model). CIT_ERR_RANGE when n_ctx is below
 * CIT_EVAL_MIN_CTX; *n_windows = 0 when there is not one whole window. */
enum cit_status cit_eval_count(const struct cit_eval_params *p, size_t n_tokens, size_t *n_windows,
                               size_t *n_scored, char *err, size_t errlen);

/* Runs model over the windows of tokens[0..n_tokens) and writes the
 * log-probability (natural log, <= 0) of each scored target into
 * logprobs[0..cap); *n_out gets the number of scored positions. If dist is
 * not NULL it also receives each scored position's whole log-softmax.
 * Errors: CIT_ERR_RANGE (n_ctx out of range, a token outside [0, n_vocab)
 * naming its index, BOS outside the vocabulary), CIT_ERR_LIMIT (fewer tokens
 * than one window: the message says how many are needed; or cap smaller
 * than the scored count, with *n_out = the count needed and nothing run),
 * and those of cit_context_new / cit_decode. */
enum cit_status cit_eval_logprobs(const struct cit_model *model, const int32_t *tokens, size_t n_tokens,
                                  const struct cit_eval_params *p, double *logprobs, size_t cap,
                                  cit_eval_dist_fn dist, void *dist_arg, size_t *n_out, char *err,
                                  size_t errlen);

/* Perplexity from per-token log-probabilities. */
struct cit_eval_ppl {
    size_t n;        /* scored tokens */
    double nll_mean; /* mean negative log-likelihood (nats per token) */
    double nll_se;   /* its standard error (sample sd / sqrt(n)); 0 for n < 2 */
    double ppl;      /* exp(nll_mean) */
    double ppl_se;   /* ppl * nll_se (first-order) */
};

void cit_eval_ppl_summary(const double *logprobs, size_t n, struct cit_eval_ppl *out);

/* KL(P_base || P_test) and agreement over the scored positions. */
struct cit_eval_kl {
    size_t n_windows, n_scored;
    double kl_mean, kl_se;             /* nats; se = sample sd / sqrt(n) */
    double kl_median, kl_p99, kl_max;  /* p99: the value with 99% of positions at or below it */
    double top1;                       /* fraction of positions whose argmax agrees, in [0, 1] */
    struct cit_eval_ppl base, test;    /* perplexity of each model on the same targets */
    double ppl_ratio, ppl_ratio_se;    /* ppl_test / ppl_base = exp(mean(nll_test - nll_base)), paired se */
};

/* Runs base and test over the same windows in lockstep (two contexts) and
 * fills *out. If kl_out is not NULL it receives the KL of every scored
 * position (cap entries at most; the count is out->n_scored). The models
 * must have the same vocabulary size. Errors: those of cit_eval_logprobs,
 * and CIT_ERR_INVALID_ARG when the vocabulary sizes differ (naming both). */
enum cit_status cit_eval_kl(const struct cit_model *base, const struct cit_model *test, const int32_t *tokens,
                            size_t n_tokens, const struct cit_eval_params *p, struct cit_eval_kl *out,
                            double *kl_out, size_t cap, char *err, size_t errlen);

/* Writes n token ids drawn uniformly and independently from the vocabulary's
 * ordinary tokens (every id whose type is not control, unknown or unused)
 * with a seeded xoshiro256** generator: the same seed and vocabulary give
 * the same ids on every machine. For synthetic models, whose text
 * perplexity means nothing, but whose KL against f32 still measures
 * quantization damage. CIT_ERR_RANGE when no token qualifies. */
enum cit_status cit_eval_random_tokens(const struct cit_tokenizer *tok, uint64_t seed, int32_t *out, size_t n,
                                       char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
