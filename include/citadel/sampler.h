/* sampler.h: turns one row of logits into one token id.
 *
 * The pipeline, in the order the common engines apply it:
 *
 *   logit bias -> repetition / presence / frequency penalties over a window
 *   of recently accepted tokens -> greedy argmax when temperature <= 0,
 *   otherwise top-k -> top-p -> min-p (all three on temperature-1
 *   probabilities) -> temperature -> softmax -> one draw from a seeded
 *   xoshiro256** generator.
 *
 * A sampler owns every buffer it needs (allocated once by cit_sampler_new,
 * sized by the vocabulary), so cit_sampler_sample never allocates. The same
 * seed, parameters, accepted tokens and logits always give the same tokens;
 * the sampler never reads a clock, so a caller that wants fresh randomness
 * picks the seed. A sampler is not thread-safe: use one per sequence.
 *
 * cit_sampler_sample does not record the token it returns: the caller calls
 * cit_sampler_accept for every token it keeps (and for prompt tokens, if they
 * should be penalised too), so a rejected or rolled-back draw leaves no trace. */
#ifndef CITADEL_SAMPLER_H
#define CITADEL_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest penalty_last_n accepted (a ring buffer of that many token ids is
 * allocated); -1 ("whole history") needs no ring and has no limit. */
#define CIT_SAMPLER_MAX_PENALTY_WINDOW (1 << 20)

/* Added to the raw logit of `token` before anything else. -INFINITY bans the
 * token outright; several entries for one token add up. */
struct cit_logit_bias {
    int32_t token;
    float bias; /* finite or -INFINITY */
};

struct cit_sampler_params {
    float temperature;       /* finite; <= 0 means greedy (argmax, ties to the lowest id) */
    int32_t top_k;           /* keep the k most likely tokens; <= 0 or >= n_vocab: off */
    float top_p;             /* in (0, 1]: keep the smallest most-likely set whose
                              * probability reaches top_p; 1: off */
    float min_p;             /* in [0, 1]: keep tokens with p >= min_p * p_max; 0: off */
    float repeat_penalty;    /* finite, > 0: a penalised logit l becomes l / r if l > 0,
                              * l * r otherwise; 1: off */
    float presence_penalty;  /* finite: subtracted once from each penalised token; 0: off */
    float frequency_penalty; /* finite: subtracted count times (count in the window); 0: off */
    int32_t penalty_last_n;  /* penalty window in accepted tokens: 0 off, -1 the whole
                              * history, else 1..CIT_SAMPLER_MAX_PENALTY_WINDOW */
    uint64_t seed;           /* any value, 0 included; always used as given */
    const struct cit_logit_bias *logit_bias; /* n_logit_bias entries; copied by _new */
    size_t n_logit_bias;
};

/* One entry of a top-N log-probability list. */
struct cit_token_logprob {
    int32_t token;
    float logprob; /* natural log */
};

struct cit_sampler;

/* Fills p with the defaults: temperature 0.8, top_k 40, top_p 0.95,
 * min_p 0.05, repeat_penalty 1.0 (off), presence and frequency 0 (off),
 * penalty_last_n 64, seed 0, no logit bias. */
void cit_sampler_params_default(struct cit_sampler_params *p);

/* Validates every field of p against n_vocab and creates a sampler, seeded
 * from p->seed with an empty history. A field out of range (NaN, infinity,
 * top_p outside (0, 1], min_p outside [0, 1], repeat_penalty <= 0, a bias
 * token outside [0, n_vocab) or a NaN/+inf bias, n_vocab < 1) gives
 * CIT_ERR_RANGE with a message naming the field and its value; a NULL
 * pointer gives CIT_ERR_INVALID_ARG; CIT_ERR_NOMEM if allocation fails.
 * p is not referenced after the call returns. */
enum cit_status cit_sampler_new(const struct cit_sampler_params *p, int32_t n_vocab,
                                struct cit_sampler **out, char *err, size_t errlen);

/* Frees a sampler; NULL is a no-op. */
void cit_sampler_free(struct cit_sampler *s);

/* Picks one token from logits (n_vocab floats, read only) into *token.
 * Does not allocate and does not record the token (see cit_sampler_accept).
 * CIT_ERR_RANGE if a logit is NaN or +inf, or if every token is banned
 * (bias -INFINITY or a -inf logit); CIT_ERR_INVALID_ARG on NULL pointers. */
enum cit_status cit_sampler_sample(struct cit_sampler *s, const float *logits, int32_t *token,
                                   char *err, size_t errlen);

/* Records a token in the penalty window (evicting the oldest when the window
 * is full). A no-op when penalties are off. CIT_ERR_RANGE if token is outside
 * [0, n_vocab), and then nothing is recorded. */
enum cit_status cit_sampler_accept(struct cit_sampler *s, int32_t token, char *err, size_t errlen);

/* cit_sampler_accept for n tokens in order (e.g. a prompt). All ids are
 * checked first: on CIT_ERR_RANGE nothing is recorded. */
enum cit_status cit_sampler_accept_many(struct cit_sampler *s, const int32_t *tokens, size_t n,
                                        char *err, size_t errlen);

/* Clears the history and re-seeds the generator from the seed given to
 * cit_sampler_new: afterwards the sampler behaves as if freshly created. */
void cit_sampler_reset(struct cit_sampler *s);

/* Writes the logits the filters would see (n_vocab floats into out, which
 * may alias logits): logits plus bias, then penalties from the current
 * window. For debugging and tests; same errors as cit_sampler_sample except
 * that an all-banned row is not an error here. Leaves the sampler's history
 * and generator as they were (s is non-const only for scratch use). */
enum cit_status cit_sampler_adjusted_logits(struct cit_sampler *s, const float *logits,
                                            float *out, char *err, size_t errlen);

/* Log-softmax of the raw logits (temperature 1, no bias or penalty), as an
 * API's `logprobs` reports it. Needs no sampler and does not allocate.
 *   chosen_logprob (may be NULL): log-probability of `token`, which must be
 *     in [0, n_vocab) when chosen_logprob is not NULL;
 *   top (may be NULL when n_top is 0): the n_top most likely tokens, most
 *     likely first, ties to the lowest id; 0 <= n_top <= n_vocab.
 * Computed in double precision. CIT_ERR_RANGE for a NaN/+inf logit, a row
 * that is all -inf, or an out-of-range token/n_top/n_vocab. */
enum cit_status cit_sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token,
                                     int32_t n_top, struct cit_token_logprob *top,
                                     float *chosen_logprob, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
