/* engine.c: the serving engine's scheduler (see citadel/engine.h).
 *
 * One engine thread owns the context and the slots. Each loop: under the
 * engine lock, drop cancelled requests and admit queued ones into free
 * slots (choosing the slot, and copying or trimming its cache, for prefix
 * reuse); then, without the lock, build one batch (a decode token per
 * generating slot, then prompt chunks in admission order, n_batch items at
 * most), run cit_decode, and turn each slot's logits into events; finally,
 * under the lock again, free the slots whose requests ended and update the
 * counters, and only then queue the terminal events (so a caller who sees
 * DONE also sees the slot free in the stats). When nothing is queued or
 * running, the thread sleeps on the condition variable.
 *
 * Slot state other than `req` is touched by the engine thread only; `req`
 * changes under the lock, so cit_engine_cancel_all can read it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "citadel/model.h"
#include "citadel/tokenizer.h"
#include "engine/engine_impl.h"
#include "engine/stopper.h"

#define ENGINE_MAX_SLOTS 256u
#define ENGINE_DEFAULT_CTX 4096u
#define ENGINE_DEFAULT_BATCH 512u
#define ENGINE_DEFAULT_QUEUE 64u
#define ENGINE_MAX_QUEUE 65536u
#define ENGINE_MAX_BATCH 65536u

struct slot {
    struct cit_request *req; /* NULL: free */
    int32_t *cache;          /* (n_ctx) tokens whose keys/values sequence `seq` holds */
    uint32_t n_cache;        /* == cit_kv_seq_len(ctx, seq) */
    bool generating;         /* prompt done: next_token is due for decoding */
    int32_t next_token;
    uint64_t admitted;       /* admission order, for prompt chunk order */
    uint32_t n_cached;       /* prompt tokens reused at admission */
    uint32_t n_generated;
    int32_t item;            /* batch item with this step's logits, -1: none */
    int32_t chunk_first;     /* this step's prompt items [chunk_first, +chunk_n) */
    uint32_t chunk_n;
    struct cit_detok dt;
    struct cit_stopper stopper;
    double *emb;             /* (n_embd) embedding requests: sum of hidden states */
    /* The terminal event decided this step, queued after the slot is freed. */
    bool ended;
    enum cit_event_kind end_kind;
    enum cit_finish end_finish;
    char end_text[ENGINE_FINAL_TEXT];
    size_t end_len;
};

/* A request ended outside a step (cancelled), finished after unlocking. */
struct dropped {
    struct cit_request *req;
    uint32_t n_cached, n_generated;
};

struct cit_engine {
    const struct cit_model *m;
    const struct cit_tokenizer *tok;
    struct cit_engine_params p;
    struct cit_context *ctx;
    uint32_t n_vocab, n_embd;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;    /* cit_engine_free: end the thread */
    bool wake;    /* a cancel arrived: look at the queue */
    struct cit_request **queue; /* (queue_max) ring buffer */
    size_t q_head, q_len;
    struct slot *slots;         /* (n_slots) slot i uses sequence i */
    uint64_t n_admitted;
    struct cit_engine_stats st;

    /* Engine-thread scratch. */
    struct cit_batch_item *batch; /* (n_batch) */
    uint32_t *order;              /* (n_slots) prefilling slots by admission */
    struct dropped *drop;         /* (n_slots + queue_max) */
    struct cit_request **ended;   /* (n_slots) requests that ended this step */
    uint32_t *ended_slot;         /* (n_slots) their slots */
    char *txt;                    /* (txt_cap) detokenized piece */
    char *rel;                    /* (CIT_ENGINE_MAX_STOP_LEN + txt_cap) released text */
    size_t txt_cap;
    float *embf;                  /* (n_embd) */
    struct cit_token_logprob top[CIT_ENGINE_MAX_TOP_LOGPROBS];
};

void cit_engine_params_default(struct cit_engine_params *p)
{
    *p = (struct cit_engine_params){.n_slots = 4, .n_ctx = 0, .n_threads = 0, .n_batch = ENGINE_DEFAULT_BATCH,
                                    .queue_max = ENGINE_DEFAULT_QUEUE};
}

const struct cit_engine_params *cit_engine_params(const struct cit_engine *e)
{
    return &e->p;
}

void eng_wake(struct cit_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->wake = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* ---- admission (engine lock held) ---- */

static uint32_t common_prefix(const int32_t *a, uint32_t na, const int32_t *b, size_t nb)
{
    uint32_t n = 0;
    while (n < na && n < nb && a[n] == b[n])
        n++;
    return n;
}

/* Puts r into a free slot, reusing the longest cached prefix of its prompt
 * (never its last token, whose logits are needed; none for embeddings,
 * which need every token's hidden state).
 *
 * The slot: a free one whose cache continues into the prompt for at least
 * half of what it holds (the longest such prefix wins); failing that, the
 * free slot whose cache loses least, so that an unrelated request does not
 * wipe a long cached conversation or system prompt. Then, when another
 * slot (busy or free) holds a longer prefix, that prefix is copied in. */
static void admit(struct cit_engine *e, struct cit_request *r)
{
    size_t usable = r->embedding ? 0 : r->n_prompt - 1;
    int32_t best = -1, fallback = -1, donor = -1;
    uint32_t best_len = 0, fallback_len = 0, donor_len = 0, fallback_loss = 0;
    uint32_t lens[ENGINE_MAX_SLOTS];
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        struct slot *s = &e->slots[i];
        uint32_t l = common_prefix(s->cache, s->n_cache, r->prompt, usable);
        lens[i] = l;
        if (s->req)
            continue;
        if (l > 0 && 2 * (uint64_t)l >= s->n_cache && l > best_len) {
            best = (int32_t)i;
            best_len = l;
        }
        uint32_t loss = s->n_cache - l;
        if (fallback < 0 || loss < fallback_loss) {
            fallback = (int32_t)i;
            fallback_loss = loss;
            fallback_len = l;
        }
    }
    if (best < 0) {
        best = fallback;
        best_len = fallback_len;
    }
    for (uint32_t i = 0; i < e->p.n_slots; i++)
        if ((int32_t)i != best && lens[i] > donor_len) {
            donor = (int32_t)i;
            donor_len = lens[i];
        }
    struct slot *s = &e->slots[best];
    uint32_t reuse = best_len;
    if (donor >= 0 && donor_len > best_len &&
        cit_kv_seq_cp(e->ctx, donor, best, (int32_t)donor_len, NULL, 0) == CIT_OK) {
        memcpy(s->cache, e->slots[donor].cache, donor_len * sizeof *s->cache);
        reuse = donor_len;
    } else {
        cit_kv_seq_rm(e->ctx, best, (int32_t)best_len);
    }
    s->n_cache = reuse;
    s->req = r;
    s->generating = false;
    s->admitted = e->n_admitted++;
    s->n_cached = reuse;
    s->n_generated = 0;
    s->ended = false;
    s->end_len = 0;
    cit_detok_init(&s->dt, e->tok, false);
    cit_stopper_init(&s->stopper, (const char *const *)r->stop, r->stop_len, r->n_stop);
    if (r->embedding)
        memset(s->emb, 0, e->n_embd * sizeof *s->emb);
    e->st.busy_slots++;
    e->st.cached_tokens += reuse;
}

/* kv_used: positions held by busy slots (lock held). */
static void update_kv_used(struct cit_engine *e)
{
    uint64_t kv = 0;
    for (uint32_t i = 0; i < e->p.n_slots; i++)
        if (e->slots[i].req)
            kv += e->slots[i].n_cache;
    e->st.kv_used = kv;
}

static bool has_free_slot(const struct cit_engine *e)
{
    return e->st.busy_slots < e->p.n_slots;
}

/* Removes cancelled requests from the queue and the slots into e->drop;
 * returns how many. */
static size_t collect_cancelled(struct cit_engine *e, bool all)
{
    size_t n = 0, kept = 0, cap = e->p.queue_max;
    for (size_t i = 0; i < e->q_len; i++) {
        struct cit_request *r = e->queue[(e->q_head + i) % cap];
        if (all || atomic_load(&r->cancelled))
            e->drop[n++] = (struct dropped){r, 0, 0};
        else
            e->queue[(e->q_head + kept++) % cap] = r;
    }
    e->q_len = kept;
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->req && (all || atomic_load(&s->req->cancelled))) {
            e->drop[n++] = (struct dropped){s->req, s->n_cached, s->n_generated};
            s->req = NULL;
            e->st.busy_slots--;
        }
    }
    return n;
}

static void finish_dropped(struct cit_engine *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct dropped *d = &e->drop[i];
        eng_push_final(d->req, CIT_EVENT_DONE, CIT_FINISH_CANCELLED, NULL, 0, (uint32_t)d->req->n_prompt,
                       d->n_cached, d->n_generated);
        eng_request_release(d->req);
    }
}

/* ---- one step (no lock) ---- */

static void end_slot(struct slot *s, enum cit_event_kind kind, enum cit_finish finish)
{
    s->ended = true;
    s->end_kind = kind;
    s->end_finish = finish;
}

/* Ends the slot's request normally: the held-back text is released. */
static void end_released(struct slot *s, enum cit_finish finish)
{
    size_t n = cit_stopper_flush(&s->stopper, s->end_text);
    n += cit_detok_flush(&s->dt, s->end_text + n, sizeof s->end_text - n);
    s->end_len = n;
    end_slot(s, CIT_EVENT_DONE, finish);
}

static void end_error(struct slot *s, const char *fmt, const char *msg)
{
    s->end_len = (size_t)snprintf(s->end_text, sizeof s->end_text, fmt, msg);
    if (s->end_len >= sizeof s->end_text)
        s->end_len = sizeof s->end_text - 1;
    end_slot(s, CIT_EVENT_ERROR, CIT_FINISH_NONE);
}

/* Samples the slot's next token from logits and emits it; decides whether
 * the request goes on. Returns 1 when a token was generated. */
static int generate(struct cit_engine *e, struct slot *s, const float *logits)
{
    struct cit_request *r = s->req;
    char msg[256];
    int32_t id;
    if (cit_sampler_sample(r->smp, logits, &id, msg, sizeof msg) != CIT_OK) {
        end_error(s, "sampling failed: %s", msg);
        return 0;
    }
    s->n_generated++;
    if (!r->ignore_eos && cit_tokenizer_is_eog(e->tok, id)) {
        end_released(s, CIT_FINISH_STOP);
        return 1;
    }
    cit_sampler_accept(r->smp, id, NULL, 0);
    float lp = 0.0f;
    if (r->logprobs && cit_sampler_logprobs(logits, (int32_t)e->n_vocab, id, (int32_t)r->top_logprobs, e->top, &lp,
                                            msg, sizeof msg) != CIT_OK) {
        end_error(s, "logprobs failed: %s", msg);
        return 1;
    }
    size_t n_txt = 0, n_rel = 0, piece_len = 0;
    if (cit_detok_push(&s->dt, id, e->txt, e->txt_cap, &n_txt, msg, sizeof msg) != CIT_OK) {
        end_error(s, "detokenization failed: %s", msg);
        return 1;
    }
    bool matched = cit_stopper_feed(&s->stopper, e->txt, n_txt, e->rel, &n_rel);
    const char *piece = cit_token_piece(e->tok, id, false, &piece_len);
    if (eng_push_token(r, e->rel, n_rel, id, piece ? piece : "", piece ? piece_len : 0, r->logprobs, lp, e->top,
                       r->logprobs ? r->top_logprobs : 0) != CIT_OK) {
        end_error(s, "%s", "out of memory for an event");
        return 1;
    }
    if (matched) {
        s->end_len = 0;
        end_slot(s, CIT_EVENT_DONE, CIT_FINISH_STOP);
    } else if (s->n_generated >= r->max_tokens || s->n_cache >= e->p.n_ctx) {
        end_released(s, CIT_FINISH_LENGTH);
    } else {
        s->next_token = id;
        s->generating = true;
    }
    return 1;
}

/* Adds the hidden states of this step's prompt items; at the end of the
 * prompt, emits the mean, L2-normalised. */
static void embed(struct cit_engine *e, struct slot *s)
{
    for (uint32_t k = 0; k < s->chunk_n; k++) {
        const float *h = cit_hidden(e->ctx, (size_t)s->chunk_first + k);
        if (!h) {
            end_error(s, "%s", "no hidden state for a prompt token");
            return;
        }
        for (uint32_t j = 0; j < e->n_embd; j++)
            s->emb[j] += h[j];
    }
    if (s->n_cache < s->req->n_prompt)
        return;
    double norm = 0.0, n = (double)s->req->n_prompt;
    for (uint32_t j = 0; j < e->n_embd; j++) {
        double v = s->emb[j] / n;
        s->emb[j] = v;
        norm += v * v;
    }
    norm = sqrt(norm);
    for (uint32_t j = 0; j < e->n_embd; j++)
        e->embf[j] = (float)(norm > 0.0 ? s->emb[j] / norm : 0.0);
    if (eng_push_embedding(s->req, e->embf, e->n_embd) != CIT_OK)
        end_error(s, "%s", "out of memory for the embedding");
    else
        end_slot(s, CIT_EVENT_DONE, CIT_FINISH_STOP);
}

/* Builds and runs one batch; counts what it computed. Returns whether a
 * batch was run. */
static bool step(struct cit_engine *e, uint64_t *n_prompt_done, uint64_t *n_gen)
{
    size_t n = 0, n_order = 0;
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        struct slot *s = &e->slots[i];
        s->item = -1;
        s->chunk_n = 0;
        if (!s->req)
            continue;
        if (s->generating) {
            s->item = (int32_t)n;
            e->batch[n++] = (struct cit_batch_item){s->next_token, (int32_t)s->n_cache, (int32_t)i, true};
        } else {
            /* insertion by admission order (n_slots is small) */
            size_t k = n_order++;
            while (k > 0 && e->slots[e->order[k - 1]].admitted > s->admitted) {
                e->order[k] = e->order[k - 1];
                k--;
            }
            e->order[k] = i;
        }
    }
    for (size_t o = 0; o < n_order && n < e->p.n_batch; o++) {
        uint32_t i = e->order[o];
        struct slot *s = &e->slots[i];
        struct cit_request *r = s->req;
        size_t left = r->n_prompt - s->n_cache, room = e->p.n_batch - n;
        size_t take = left < room ? left : room;
        s->chunk_first = (int32_t)n;
        s->chunk_n = (uint32_t)take;
        for (size_t k = 0; k < take; k++) {
            size_t pos = s->n_cache + k;
            bool last = pos == r->n_prompt - 1;
            e->batch[n++] = (struct cit_batch_item){r->prompt[pos], (int32_t)pos, (int32_t)i, r->embedding || last};
            if (last && !r->embedding)
                s->item = (int32_t)(n - 1);
        }
    }
    if (n == 0)
        return false;
    char msg[512];
    if (cit_decode(e->ctx, e->batch, n, msg, sizeof msg) != CIT_OK) {
        /* Nothing was computed: every request in the batch fails. */
        for (uint32_t i = 0; i < e->p.n_slots; i++)
            if (e->slots[i].req && (e->slots[i].item >= 0 || e->slots[i].chunk_n))
                end_error(&e->slots[i], "decode failed: %s", msg);
        return true;
    }
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (!s->req)
            continue;
        if (s->generating && s->item >= 0) {
            s->cache[s->n_cache++] = s->next_token;
            s->generating = false;
            *n_gen += (uint64_t)generate(e, s, cit_logits(e->ctx, (size_t)s->item));
        } else if (s->chunk_n) {
            memcpy(s->cache + s->n_cache, s->req->prompt + s->n_cache, s->chunk_n * sizeof *s->cache);
            s->n_cache += s->chunk_n;
            *n_prompt_done += s->chunk_n;
            if (s->req->embedding)
                embed(e, s);
            else if (s->item >= 0)
                *n_gen += (uint64_t)generate(e, s, cit_logits(e->ctx, (size_t)s->item));
        }
    }
    return true;
}

/* The engine thread: sleep, admit, step, finish (see the file comment). */
static void *engine_main(void *arg)
{
    struct cit_engine *e = arg;
    struct cit_request **ended = e->ended;
    uint32_t *ended_slot = e->ended_slot;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->wake && e->st.busy_slots == 0 && e->q_len == 0)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop)
            break;
        e->wake = false;
        size_t n_drop = collect_cancelled(e, false);
        while (e->q_len && has_free_slot(e)) {
            struct cit_request *r = e->queue[e->q_head];
            e->q_head = (e->q_head + 1) % e->p.queue_max;
            e->q_len--;
            admit(e, r);
        }
        e->st.queue_depth = (uint32_t)e->q_len;
        e->st.requests_cancelled += n_drop;
        update_kv_used(e);
        pthread_mutex_unlock(&e->mu);
        finish_dropped(e, n_drop);

        uint64_t n_prompt_done = 0, n_gen = 0;
        bool ran = step(e, &n_prompt_done, &n_gen);

        pthread_mutex_lock(&e->mu);
        e->st.steps += ran;
        e->st.prompt_tokens += n_prompt_done;
        e->st.generated_tokens += n_gen;
        size_t n_ended = 0;
        for (uint32_t i = 0; i < e->p.n_slots; i++) {
            struct slot *s = &e->slots[i];
            if (s->req && s->ended) {
                ended[n_ended] = s->req;
                ended_slot[n_ended++] = i;
                s->req = NULL;
                e->st.busy_slots--;
                if (s->end_kind == CIT_EVENT_ERROR)
                    e->st.requests_failed++;
                else
                    e->st.requests_done++;
            }
        }
        update_kv_used(e);
        pthread_mutex_unlock(&e->mu);
        for (size_t k = 0; k < n_ended; k++) {
            struct slot *s = &e->slots[ended_slot[k]];
            struct cit_request *r = ended[k];
            eng_push_final(r, s->end_kind, s->end_finish, s->end_text, s->end_len, (uint32_t)r->n_prompt,
                           s->n_cached, s->n_generated);
            eng_request_release(r);
        }
        pthread_mutex_lock(&e->mu);
    }
    /* Shutting down: everything still queued or running is cancelled. */
    size_t n_drop = collect_cancelled(e, true);
    e->st.requests_cancelled += n_drop;
    e->st.queue_depth = 0;
    e->st.kv_used = 0;
    pthread_mutex_unlock(&e->mu);
    finish_dropped(e, n_drop);
    return NULL;
}

/* ---- public API ---- */

static void engine_destroy(struct cit_engine *e)
{
    if (e->slots)
        for (uint32_t i = 0; i < e->p.n_slots; i++) {
            free(e->slots[i].cache);
            free(e->slots[i].emb);
        }
    free(e->slots);
    free(e->queue);
    free(e->batch);
    free(e->order);
    free(e->drop);
    free(e->ended);
    free(e->ended_slot);
    free(e->txt);
    free(e->rel);
    free(e->embf);
    cit_context_free(e->ctx);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

enum cit_status cit_engine_new(const struct cit_model *m, const struct cit_tokenizer *tok,
                               const struct cit_engine_params *p, struct cit_engine **out, char *err,
                               size_t errlen)
{
    if (!m || !tok || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_engine_new: model, tokenizer and out are required");
    *out = NULL;
    const struct cit_model_info *info = cit_model_info(m);
    struct cit_engine_params q;
    if (p)
        q = *p;
    else
        cit_engine_params_default(&q);
    if (q.n_slots == 0)
        q.n_slots = 4;
    if (q.n_slots > ENGINE_MAX_SLOTS)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "n_slots %u out of range [1, %u]", q.n_slots, ENGINE_MAX_SLOTS);
    if (q.n_ctx == 0)
        q.n_ctx = info->n_ctx_train < ENGINE_DEFAULT_CTX ? info->n_ctx_train : ENGINE_DEFAULT_CTX;
    if (q.n_batch == 0)
        q.n_batch = ENGINE_DEFAULT_BATCH;
    if (q.n_batch > ENGINE_MAX_BATCH)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "n_batch %u out of range [1, %u]", q.n_batch, ENGINE_MAX_BATCH);
    if (q.n_batch < q.n_slots + 1)
        q.n_batch = q.n_slots + 1;
    if (q.queue_max == 0)
        q.queue_max = ENGINE_DEFAULT_QUEUE;
    if (q.queue_max > ENGINE_MAX_QUEUE)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "queue_max %u out of range [1, %u]", q.queue_max,
                        ENGINE_MAX_QUEUE);
    if (cit_tokenizer_n_vocab(tok) != info->n_vocab)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "the tokenizer has %u tokens but the model's vocabulary %u",
                        cit_tokenizer_n_vocab(tok), info->n_vocab);

    struct cit_engine *e = calloc(1, sizeof *e);
    if (!e)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for the engine");
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->m = m;
    e->tok = tok;
    e->n_vocab = info->n_vocab;
    e->n_embd = info->n_embd;
    struct cit_context_params cp = {.n_ctx = q.n_ctx, .n_seq_max = q.n_slots, .n_batch_max = q.n_batch,
                                    .n_threads = q.n_threads};
    enum cit_status st = cit_context_new(m, &cp, &e->ctx, err, errlen);
    if (st != CIT_OK) {
        engine_destroy(e);
        return st;
    }
    q.n_threads = cit_context_params(e->ctx)->n_threads;
    e->p = q;
    e->txt_cap = cit_tokenizer_max_piece_len(tok) + 8;
    e->slots = calloc(q.n_slots, sizeof *e->slots);
    e->queue = calloc(q.queue_max, sizeof *e->queue);
    e->batch = calloc(q.n_batch, sizeof *e->batch);
    e->order = calloc(q.n_slots, sizeof *e->order);
    e->drop = calloc((size_t)q.n_slots + q.queue_max, sizeof *e->drop);
    e->ended = calloc(q.n_slots, sizeof *e->ended);
    e->ended_slot = calloc(q.n_slots, sizeof *e->ended_slot);
    e->txt = malloc(e->txt_cap);
    e->rel = malloc(CIT_ENGINE_MAX_STOP_LEN + e->txt_cap);
    e->embf = calloc(e->n_embd, sizeof *e->embf);
    bool ok = e->slots && e->queue && e->batch && e->order && e->drop && e->ended && e->ended_slot && e->txt && e->rel && e->embf;
    for (uint32_t i = 0; ok && i < q.n_slots; i++) {
        e->slots[i].cache = malloc((size_t)q.n_ctx * sizeof *e->slots[i].cache);
        e->slots[i].emb = calloc(e->n_embd, sizeof *e->slots[i].emb);
        ok = e->slots[i].cache && e->slots[i].emb;
    }
    if (!ok) {
        engine_destroy(e);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for %u slots of %u positions", q.n_slots,
                        q.n_ctx);
    }
    e->st.n_slots = q.n_slots;
    e->st.kv_total = (uint64_t)q.n_slots * q.n_ctx;
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        engine_destroy(e);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "cannot start the engine thread");
    }
    e->thread_started = true;
    *out = e;
    return CIT_OK;
}

void cit_engine_free(struct cit_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started)
        pthread_join(e->thread, NULL);
    engine_destroy(e);
}

enum cit_status cit_engine_submit(struct cit_engine *e, const struct cit_gen_params *p, struct cit_request **out,
                                  char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!e || !p || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_engine_submit: engine, params and out are required");
    struct cit_request *r = NULL;
    enum cit_status st = eng_request_new(p, e->n_vocab, e->p.n_ctx, &r, err, errlen);
    if (st != CIT_OK)
        return st;
    r->engine = e;
    pthread_mutex_lock(&e->mu);
    if (e->stop || e->q_len >= e->p.queue_max) {
        bool stopping = e->stop;
        pthread_mutex_unlock(&e->mu);
        r->engine = NULL;
        r->refs = 1;
        cit_request_free(r);
        if (stopping)
            return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen, "busy: the engine is shutting down");
        return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen, "busy: %u requests are already waiting (queue_max %u)",
                        e->p.queue_max, e->p.queue_max);
    }
    e->queue[(e->q_head + e->q_len++) % e->p.queue_max] = r;
    e->st.queue_depth = (uint32_t)e->q_len;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    *out = r;
    return CIT_OK;
}

void cit_engine_cancel_all(struct cit_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->q_len; i++)
        atomic_store(&e->queue[(e->q_head + i) % e->p.queue_max]->cancelled, true);
    for (uint32_t i = 0; i < e->p.n_slots; i++)
        if (e->slots[i].req)
            atomic_store(&e->slots[i].req->cancelled, true);
    e->wake = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void cit_engine_stats(struct cit_engine *e, struct cit_engine_stats *out)
{
    if (!out)
        return;
    if (!e) {
        *out = (struct cit_engine_stats){0};
        return;
    }
    pthread_mutex_lock(&e->mu);
    *out = e->st;
    pthread_mutex_unlock(&e->mu);
}
