/* request.c: a request's side of the engine: validating and copying what it
 * asks for, its event channel (a FIFO of events the engine thread pushes and
 * the HTTP thread pops with cit_request_next), cancellation and the
 * two-reference lifetime (the caller's and the engine's, so either side may
 * let go first). */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/checked.h"
#include "base/err.h"
#include "engine/engine_impl.h"

/* ---- events ---- */

/* Allocates a node with room for n_top entries, n_emb floats and two
 * strings of the given lengths (each NUL-terminated), pointers set. */
static struct evnode *node_alloc(uint32_t n_top, uint32_t n_emb, size_t text_cap, size_t piece_cap)
{
    size_t size = sizeof(struct evnode), t;
    size_t top_off = size;
    if (!cit_mul_size(n_top, sizeof(struct cit_token_logprob), &t) || !cit_add_size(size, t, &size))
        return NULL;
    size_t emb_off = size;
    if (!cit_mul_size(n_emb, sizeof(float), &t) || !cit_add_size(size, t, &size))
        return NULL;
    size_t text_off = size;
    if (!cit_add_size(size, text_cap, &size) || !cit_add_size(size, 1, &size))
        return NULL;
    size_t piece_off = size;
    if (!cit_add_size(size, piece_cap, &size) || !cit_add_size(size, 1, &size))
        return NULL;
    _Static_assert(sizeof(struct evnode) % alignof(float) == 0, "event arrays follow the node");
    char *base = calloc(1, size);
    if (!base)
        return NULL;
    struct evnode *nd = (struct evnode *)base;
    nd->ev.top = n_top ? (const struct cit_token_logprob *)(base + top_off) : NULL;
    nd->ev.embedding = n_emb ? (const float *)(base + emb_off) : NULL;
    nd->ev.text = base + text_off;
    nd->ev.piece = base + piece_off;
    return nd;
}

static bool is_final(const struct evnode *nd)
{
    return nd->ev.kind == CIT_EVENT_DONE || nd->ev.kind == CIT_EVENT_ERROR;
}

static void enqueue(struct cit_request *r, struct evnode *nd)
{
    pthread_mutex_lock(&r->mu);
    nd->next = NULL;
    if (r->tail)
        r->tail->next = nd;
    else
        r->head = nd;
    r->tail = nd;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

enum cit_status eng_push_token(struct cit_request *r, const char *text, size_t text_len, int32_t token,
                               const char *piece, size_t piece_len, bool with_logprob, float logprob,
                               const struct cit_token_logprob *top, uint32_t n_top)
{
    struct evnode *nd = node_alloc(n_top, 0, text_len, piece_len);
    if (!nd)
        return CIT_ERR_NOMEM;
    struct cit_event *ev = &nd->ev;
    ev->kind = CIT_EVENT_TOKEN;
    if (text_len)
        memcpy((char *)ev->text, text, text_len);
    ev->text_len = text_len;
    ev->token = token;
    if (piece_len)
        memcpy((char *)ev->piece, piece, piece_len);
    ev->piece_len = piece_len;
    ev->logprob = with_logprob ? logprob : 0.0f;
    if (n_top)
        memcpy((struct cit_token_logprob *)ev->top, top, n_top * sizeof *top);
    ev->n_top = n_top;
    enqueue(r, nd);
    return CIT_OK;
}

enum cit_status eng_push_embedding(struct cit_request *r, const float *emb, uint32_t n)
{
    struct evnode *nd = node_alloc(0, n, 0, 0);
    if (!nd)
        return CIT_ERR_NOMEM;
    nd->ev.kind = CIT_EVENT_EMBEDDING;
    memcpy((float *)nd->ev.embedding, emb, (size_t)n * sizeof *emb);
    nd->ev.n_embd = n;
    enqueue(r, nd);
    return CIT_OK;
}

void eng_push_final(struct cit_request *r, enum cit_event_kind kind, enum cit_finish finish, const char *text,
                    size_t text_len, uint32_t n_prompt, uint32_t n_cached, uint32_t n_generated)
{
    struct evnode *nd = r->final; /* only the engine thread pushes: no race on r->final */
    if (!nd)
        return;
    r->final = NULL;
    struct cit_event *ev = &nd->ev;
    ev->kind = kind;
    if (text_len > ENGINE_FINAL_TEXT)
        text_len = ENGINE_FINAL_TEXT;
    if (text_len)
        memcpy((char *)ev->text, text, text_len);
    ev->text_len = text_len;
    ev->finish = finish;
    ev->n_prompt = n_prompt;
    ev->n_cached = n_cached;
    ev->n_generated = n_generated;
    enqueue(r, nd);
}

/* ---- lifetime ---- */

static void request_destroy(struct cit_request *r)
{
    for (struct evnode *nd = r->head, *next; nd; nd = next) {
        next = nd->next;
        free(nd);
    }
    free(r->cur);
    free(r->final);
    cit_sampler_free(r->smp);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->prompt);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Drops one reference (the engine's when engine_side); frees on the last. */
static void unref(struct cit_request *r, bool engine_side)
{
    pthread_mutex_lock(&r->mu);
    if (engine_side)
        r->engine = NULL;
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        request_destroy(r);
}

void eng_request_release(struct cit_request *r)
{
    unref(r, true);
}

enum cit_status eng_request_new(const struct cit_gen_params *p, uint32_t n_vocab, uint32_t n_ctx,
                                struct cit_request **out, char *err, size_t errlen)
{
    if (p->n_prompt == 0)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "n_prompt 0: a request needs at least one prompt token");
    if (!p->prompt)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "prompt is NULL but n_prompt is %zu", p->n_prompt);
    for (size_t i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || (uint32_t)p->prompt[i] >= n_vocab)
            return cit_fail(CIT_ERR_RANGE, err, errlen, "prompt[%zu] = %d is outside the vocabulary [0, %u)", i,
                            p->prompt[i], n_vocab);
    if (!p->embedding && p->max_tokens == 0)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "max_tokens 0: at least 1 token must be allowed");
    if (p->n_stop > CIT_ENGINE_MAX_STOP)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "%zu stop strings: at most %d", p->n_stop, CIT_ENGINE_MAX_STOP);
    if (p->n_stop && !p->stop)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "stop is NULL but n_stop is %zu", p->n_stop);
    for (size_t i = 0; i < p->n_stop; i++) {
        if (!p->stop[i])
            return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "stop[%zu] is NULL", i);
        size_t len = strnlen(p->stop[i], CIT_ENGINE_MAX_STOP_LEN + 1);
        if (len == 0 || len > CIT_ENGINE_MAX_STOP_LEN)
            return cit_fail(CIT_ERR_RANGE, err, errlen, "stop[%zu] is %s%zu bytes: must be 1..%d", i,
                            len > CIT_ENGINE_MAX_STOP_LEN ? "over " : "", len > CIT_ENGINE_MAX_STOP_LEN ? len - 1 : len,
                            CIT_ENGINE_MAX_STOP_LEN);
    }
    if (p->top_logprobs > CIT_ENGINE_MAX_TOP_LOGPROBS)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "top_logprobs %u exceeds %d", p->top_logprobs,
                        CIT_ENGINE_MAX_TOP_LOGPROBS);
    if (p->top_logprobs && !p->logprobs)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "top_logprobs %u needs logprobs", p->top_logprobs);
    if (p->embedding) {
        if (p->n_prompt > n_ctx)
            return cit_fail(CIT_ERR_LIMIT, err, errlen,
                            "context_length_exceeded: the input has %zu tokens but the context holds %u",
                            p->n_prompt, n_ctx);
    } else {
        size_t total;
        if (!cit_add_size(p->n_prompt, p->max_tokens, &total) || total > n_ctx)
            return cit_fail(CIT_ERR_LIMIT, err, errlen,
                            "context_length_exceeded: %zu prompt tokens + max_tokens %u exceed the context of %u",
                            p->n_prompt, p->max_tokens, n_ctx);
    }

    struct cit_request *r = calloc(1, sizeof *r);
    if (!r)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for a request");
    enum cit_status st = CIT_OK;
    if (!p->embedding) {
        st = cit_sampler_new(&p->sampling, (int32_t)n_vocab, &r->smp, err, errlen);
        if (st != CIT_OK) {
            free(r);
            return st;
        }
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->refs = 2;
    atomic_init(&r->cancelled, false);
    r->final = node_alloc(0, 0, ENGINE_FINAL_TEXT, 0);
    r->prompt = malloc(p->n_prompt * sizeof *r->prompt);
    if (!r->final || !r->prompt) {
        request_destroy(r);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for a request of %zu tokens", p->n_prompt);
    }
    memcpy(r->prompt, p->prompt, p->n_prompt * sizeof *r->prompt);
    r->n_prompt = p->n_prompt;
    r->max_tokens = p->max_tokens;
    for (size_t i = 0; i < p->n_stop; i++) {
        r->stop_len[i] = strlen(p->stop[i]);
        r->stop[i] = malloc(r->stop_len[i] + 1);
        if (!r->stop[i]) {
            request_destroy(r);
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for stop strings");
        }
        memcpy(r->stop[i], p->stop[i], r->stop_len[i] + 1);
        r->n_stop = i + 1;
    }
    r->logprobs = p->logprobs;
    r->top_logprobs = p->top_logprobs < n_vocab ? p->top_logprobs : n_vocab;
    r->ignore_eos = p->ignore_eos;
    r->embedding = p->embedding;
    *out = r;
    return CIT_OK;
}

/* ---- the caller's side ---- */

enum cit_status cit_request_next(struct cit_request *r, int timeout_ms, struct cit_event *ev)
{
    if (!r || !ev)
        return CIT_ERR_INVALID_ARG;
    pthread_mutex_lock(&r->mu);
    if (r->cur && is_final(r->cur)) {
        *ev = r->cur->ev;
        pthread_mutex_unlock(&r->mu);
        return CIT_OK;
    }
    free(r->cur);
    r->cur = NULL;
    if (!r->head && timeout_ms != 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        if (timeout_ms > 0) {
            until.tv_sec += timeout_ms / 1000;
            until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
        }
        while (!r->head) {
            if (timeout_ms < 0)
                pthread_cond_wait(&r->cv, &r->mu);
            else if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
                break;
        }
    }
    if (!r->head) {
        pthread_mutex_unlock(&r->mu);
        return CIT_ERR_LIMIT;
    }
    r->cur = r->head;
    r->head = r->head->next;
    if (!r->head)
        r->tail = NULL;
    *ev = r->cur->ev;
    pthread_mutex_unlock(&r->mu);
    return CIT_OK;
}

void cit_request_cancel(struct cit_request *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->cancelled, true);
    if (r->engine)
        eng_wake(r->engine);
    pthread_mutex_unlock(&r->mu);
}

void cit_request_free(struct cit_request *r)
{
    if (!r)
        return;
    cit_request_cancel(r);
    unref(r, false);
}
