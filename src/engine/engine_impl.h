/* engine_impl.h: the request object and its event channel, shared by
 * request.c (channel, validation, the caller's side) and engine.c (the
 * scheduler). Private to src/engine.
 *
 * Locking: a request has its own mutex (its channel and reference count);
 * the engine has one mutex (queue, slot table, stats). The order is request
 * then engine (cit_request_cancel wakes the engine while holding the
 * request's lock, so that the engine cannot be freed under it); the engine
 * thread never takes a request's lock while holding the engine's. */
#ifndef CITADEL_ENGINE_IMPL_H
#define CITADEL_ENGINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/engine.h"

/* Bytes of text a terminal event (DONE / ERROR) can carry: held-back stop
 * text (< CIT_ENGINE_MAX_STOP_LEN) plus an incomplete UTF-8 tail, or an
 * error message (truncated to fit). */
#define ENGINE_FINAL_TEXT 1024

/* One queued event; its strings and arrays live in the same allocation. */
struct evnode {
    struct evnode *next;
    struct cit_event ev;
};

struct cit_request {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* signalled when an event is queued */
    int refs;                   /* caller + engine */
    struct cit_engine *engine;  /* set while the engine holds its reference */
    atomic_bool cancelled;
    struct evnode *head, *tail; /* events not yet returned */
    struct evnode *cur;         /* the event last returned (freed by the next call) */
    struct evnode *final;       /* preallocated terminal event, NULL once queued */

    /* Immutable after submit (read by the engine thread without a lock). */
    int32_t *prompt; /* (n_prompt) */
    size_t n_prompt;
    uint32_t max_tokens;
    struct cit_sampler *smp; /* NULL for embedding requests */
    char *stop[CIT_ENGINE_MAX_STOP];
    size_t stop_len[CIT_ENGINE_MAX_STOP];
    size_t n_stop;
    bool logprobs;
    uint32_t top_logprobs;
    bool ignore_eos;
    bool embedding;
};

/* Validates p against the vocabulary and the context size and builds a
 * request with two references (caller + engine). Errors as cit_engine_submit
 * (all but "busy:"). */
enum cit_status eng_request_new(const struct cit_gen_params *p, uint32_t n_vocab, uint32_t n_ctx,
                                struct cit_request **out, char *err, size_t errlen);

/* Queues a TOKEN event (strings copied). CIT_ERR_NOMEM if it cannot. */
enum cit_status eng_push_token(struct cit_request *r, const char *text, size_t text_len, int32_t token,
                               const char *piece, size_t piece_len, bool with_logprob, float logprob,
                               const struct cit_token_logprob *top, uint32_t n_top);

/* Queues an EMBEDDING event (n floats copied). CIT_ERR_NOMEM if it cannot. */
enum cit_status eng_push_embedding(struct cit_request *r, const float *emb, uint32_t n);

/* Queues the terminal event (DONE or ERROR) from the preallocated node; a
 * no-op when one was already queued. Never fails (text is truncated). */
void eng_push_final(struct cit_request *r, enum cit_event_kind kind, enum cit_finish finish, const char *text,
                    size_t text_len, uint32_t n_prompt, uint32_t n_cached, uint32_t n_generated);

/* Drops the engine's reference (frees the request if the caller's is gone). */
void eng_request_release(struct cit_request *r);

/* Called by cit_request_cancel with the request's lock held and r->engine
 * set: wakes the engine thread so it drops the request at its next step. */
void eng_wake(struct cit_engine *e);

#endif
