/* engine.h: serving one model to many concurrent requests.
 *
 * An engine owns one inference context with n_slots sequences and one
 * engine thread. Requests are queued by cit_engine_submit (from any thread),
 * admitted into free slots in arrival order, and every scheduler step runs
 * ONE cit_decode batch holding a decode token for each generating sequence
 * plus chunks of pending prompts (continuous batching), so a long prompt
 * never stalls the others: each step's prompt tokens are capped by n_batch.
 *
 * Prompt prefixes are reused: every slot remembers the tokens its cache
 * holds after its request ends. A new request goes to the free slot whose
 * cached tokens share the longest prefix with its prompt; when a busy slot
 * shares a longer prefix, that prefix is copied (cit_kv_seq_cp) instead of
 * recomputed. At least the last prompt token is always computed (its logits
 * are needed). Because the engine's logits do not depend on batch
 * composition (model.h), none of this changes any output: greedy output is
 * the same whether a request runs alone, beside 15 others, or from a reused
 * prefix.
 *
 * The engine thread samples (citadel/sampler.h), detokenizes incrementally
 * and matches stop strings: text that might be the start of a stop string is
 * held back until it is known not to be; a matched stop string and anything
 * after it is never emitted. Each request gets its events through its own
 * channel (cit_request_next), so the HTTP thread never touches the model.
 *
 * A cancelled request (cit_request_cancel / cit_request_free, e.g. because
 * its client went away) is dropped at the start of the next step and its
 * slot freed; the other sequences' outputs are not affected. */
#ifndef CITADEL_ENGINE_H
#define CITADEL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/sampler.h"
#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cit_model;
struct cit_tokenizer;
struct cit_engine;
struct cit_request;

#define CIT_ENGINE_MAX_STOP 4          /* stop strings per request */
#define CIT_ENGINE_MAX_STOP_LEN 256    /* bytes per stop string */
#define CIT_ENGINE_MAX_TOP_LOGPROBS 20 /* top_logprobs per token */

struct cit_engine_params {
    uint32_t n_slots;   /* concurrent sequences; default 4, at most 256 */
    uint32_t n_ctx;     /* positions per slot; default min(n_ctx_train, 4096) */
    uint32_t n_threads; /* threads per decode; 0 = physical cores */
    uint32_t n_batch;   /* most tokens in one step (decode + prompt chunks); default 512,
                         * raised to n_slots + 1 when smaller */
    uint32_t queue_max; /* requests waiting for a slot before submit refuses; default 64 */
};

/* What a request asks for. Everything is copied by cit_engine_submit. */
struct cit_gen_params {
    const int32_t *prompt; /* n_prompt >= 1 token ids, each in [0, n_vocab) */
    size_t n_prompt;
    uint32_t max_tokens;   /* >= 1 generated tokens at most (embedding: ignored) */
    struct cit_sampler_params sampling; /* validated by submit (cit_sampler_new's rules) */
    const char *const *stop; /* n_stop NUL-terminated strings, each 1..CIT_ENGINE_MAX_STOP_LEN bytes */
    size_t n_stop;           /* <= CIT_ENGINE_MAX_STOP */
    bool logprobs;           /* fill cit_event.logprob (+ top) for every generated token */
    uint32_t top_logprobs;   /* <= CIT_ENGINE_MAX_TOP_LOGPROBS; needs logprobs */
    bool ignore_eos;         /* keep generating past end-of-generation tokens */
    bool embedding;          /* no generation: one CIT_EVENT_EMBEDDING with the mean over
                              * the prompt of the final (output-normed) hidden state,
                              * L2-normalised, then CIT_EVENT_DONE */
};

enum cit_event_kind {
    CIT_EVENT_TOKEN = 1, /* one generated token (not an end-of-generation token that
                          * ends the request: that one only counts in n_generated) */
    CIT_EVENT_EMBEDDING, /* the pooled embedding (embedding requests) */
    CIT_EVENT_DONE,      /* the request ended normally; always the last event */
    CIT_EVENT_ERROR,     /* the request failed (message in text); always the last event */
};

enum cit_finish {
    CIT_FINISH_NONE = 0,
    CIT_FINISH_STOP,      /* end-of-generation token or a stop string (embedding: done) */
    CIT_FINISH_LENGTH,    /* max_tokens reached, or the slot's context is full */
    CIT_FINISH_CANCELLED, /* cancelled (client gone, engine shutting down) */
};

/* One event. Owned by the request; valid until the next cit_request_next or
 * cit_request_free on it. */
struct cit_event {
    enum cit_event_kind kind;
    /* TOKEN: the visible text this token releases (may be empty when held
     * back as a possible stop-string start, or longer than the token when
     * earlier held-back text is released). DONE: the held-back text still
     * due (normally empty). ERROR: the message. NUL-terminated. */
    const char *text;
    size_t text_len;
    /* TOKEN only. */
    int32_t token;
    const char *piece;  /* the token's own bytes (cit_token_piece, special false: a
                         * control token is ""), NUL-terminated */
    size_t piece_len;
    float logprob;      /* natural log, temperature-1 softmax of the raw logits; if logprobs */
    const struct cit_token_logprob *top; /* n_top entries, most likely first */
    uint32_t n_top;
    /* EMBEDDING only: n_embd floats. */
    const float *embedding;
    uint32_t n_embd;
    /* DONE (and ERROR, as far as it got). */
    enum cit_finish finish;
    uint32_t n_prompt;    /* prompt tokens */
    uint32_t n_cached;    /* of which reused from the cache (not recomputed) */
    uint32_t n_generated; /* generated tokens, the stop-matching one included */
};

/* Counters for /metrics (a snapshot taken under the engine's lock). */
struct cit_engine_stats {
    uint32_t n_slots, busy_slots; /* busy: holding an admitted request */
    uint32_t queue_depth;         /* submitted, not yet admitted */
    uint64_t kv_used;             /* positions held by busy slots */
    uint64_t kv_total;            /* n_slots * n_ctx */
    uint64_t prompt_tokens;       /* prompt tokens computed (total since start) */
    uint64_t cached_tokens;       /* prompt tokens reused from the cache instead */
    uint64_t generated_tokens;    /* tokens generated */
    uint64_t steps;               /* cit_decode batches run */
    uint64_t requests_done, requests_cancelled, requests_failed;
};

/* Fills defaults (all 0 = default, see the field comments). */
void cit_engine_params_default(struct cit_engine_params *p);

/* Creates the context (n_seq_max = n_slots) and starts the engine thread.
 * m and tok are borrowed: they must outlive the engine. Errors are
 * cit_context_new's, plus CIT_ERR_RANGE for a parameter out of range. */
enum cit_status cit_engine_new(const struct cit_model *m, const struct cit_tokenizer *tok,
                               const struct cit_engine_params *p, struct cit_engine **out, char *err,
                               size_t errlen);

/* Cancels every request (their channels get CIT_EVENT_DONE with
 * CIT_FINISH_CANCELLED), stops and joins the engine thread, frees the
 * context. Requests not yet freed stay valid until cit_request_free.
 * Accepts NULL. */
void cit_engine_free(struct cit_engine *e);

/* The parameters in effect (defaults resolved). */
const struct cit_engine_params *cit_engine_params(const struct cit_engine *e);

/* Queues a request. Errors (nothing queued, *out NULL), message naming the
 * field, value and limit:
 *  - CIT_ERR_RANGE: a token id outside the vocabulary, n_prompt 0,
 *    max_tokens 0, a sampling field out of range, too many / empty / too long
 *    stop strings, top_logprobs too large;
 *  - CIT_ERR_LIMIT, message starting "context_length_exceeded:": n_prompt +
 *    max_tokens exceeds n_ctx (embedding: n_prompt exceeds n_ctx);
 *  - CIT_ERR_UNSUPPORTED, message starting "busy:": the queue holds
 *    queue_max requests, or the engine is shutting down (the HTTP layer
 *    answers 429/503 with Retry-After);
 *  - CIT_ERR_NOMEM. */
enum cit_status cit_engine_submit(struct cit_engine *e, const struct cit_gen_params *p, struct cit_request **out,
                                  char *err, size_t errlen);

/* Waits up to timeout_ms (0: don't wait, < 0: forever) for the request's
 * next event. CIT_OK and *ev filled; CIT_ERR_LIMIT on timeout (nothing
 * consumed). After the last event (DONE or ERROR) it returns that event
 * again. Only one thread may wait on a request at a time. */
enum cit_status cit_request_next(struct cit_request *r, int timeout_ms, struct cit_event *ev);

/* Asks the engine to drop the request at its next step (thread-safe,
 * idempotent). Its channel then ends with DONE / CIT_FINISH_CANCELLED
 * unless it had already ended. */
void cit_request_cancel(struct cit_request *r);

/* Cancels if still running and releases the caller's reference. Accepts NULL. */
void cit_request_free(struct cit_request *r);

/* Cancels every queued and running request (for a drain timeout). */
void cit_engine_cancel_all(struct cit_engine *e);

void cit_engine_stats(struct cit_engine *e, struct cit_engine_stats *out);

#ifdef __cplusplus
}
#endif
#endif
