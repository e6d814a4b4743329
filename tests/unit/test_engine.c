/* test_engine.c: unit tests of the serving engine (src/engine).
 *
 * The reference for every generation is an independent single-sequence
 * loop written here: its own context, cit_decode of the prompt, then argmax
 * (or a sampler with the same parameters) and one cit_decode per token. The
 * engine's outputs (16 concurrent requests, prompts chunked by a small
 * n_batch, reused prefixes, copied prefixes, a neighbour cancelled) must
 * equal it token for token, and its logprobs and embeddings must equal
 * values computed here from that loop's logits and hidden states. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "citadel/engine.h"
#include "citadel/model.h"
#include "citadel/sampler.h"
#include "citadel/tokenizer.h"
#include "support.h"

#define MAXGEN 512

static struct cit_model *g_model;
static struct cit_tokenizer *g_tok;

static void load(const char *rel, struct cit_model **m, struct cit_tokenizer **t)
{
    char err[512] = "", path[1024];
    snprintf(path, sizeof path, "%s", test_shared_path(rel));
    if (cit_model_load(path, m, err, sizeof err) != CIT_OK)
        fail_msg("%s: %s", rel, err);
    if (cit_tokenizer_load(cit_model_gguf(*m), t, err, sizeof err) != CIT_OK)
        fail_msg("%s: tokenizer: %s", rel, err);
}

static int setup(void **state)
{
    (void)state;
    load("models/stories260K.gguf", &g_model, &g_tok);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cit_tokenizer_free(g_tok);
    cit_model_free(g_model);
    return 0;
}

/* ---- the reference loop ---- */

struct gen {
    int32_t ids[MAXGEN];
    size_t n;
    float lp[MAXGEN];
    struct cit_token_logprob top[MAXGEN][5];
    char text[8192]; /* streamed text (TOKEN texts + DONE text) */
    size_t text_len;
    size_t tok_end[MAXGEN]; /* reference: text length after token i */
    bool held;              /* engine: some TOKEN event released less than its text */
    /* engine: the terminal event */
    enum cit_event_kind end_kind;
    enum cit_finish finish;
    uint32_t n_prompt, n_cached, n_generated;
    char end_text[1100];
    size_t end_len;
    float *emb;
    uint32_t n_embd;
};

/* Greedy when sp is NULL, else a sampler with sp. Logprobs (top 5) for
 * every kept token. Stops at end-of-generation unless ignore_eos. */
static void reference(const struct cit_model *m, const struct cit_tokenizer *tok, const int32_t *prompt, size_t n_prompt,
                      uint32_t max_tokens, const struct cit_sampler_params *sp, bool ignore_eos, uint32_t n_ctx,
                      struct gen *g)
{
    char err[512] = "";
    memset(g, 0, sizeof *g);
    uint32_t n_vocab = cit_model_info(m)->n_vocab;
    struct cit_context_params cp = {.n_ctx = n_ctx, .n_seq_max = 1, .n_batch_max = n_ctx};
    struct cit_context *c = NULL;
    if (cit_context_new(m, &cp, &c, err, sizeof err) != CIT_OK)
        fail_msg("context: %s", err);
    struct cit_sampler *s = NULL;
    if (sp && cit_sampler_new(sp, (int32_t)n_vocab, &s, err, sizeof err) != CIT_OK)
        fail_msg("sampler: %s", err);
    struct cit_batch_item *items = calloc(n_prompt, sizeof *items);
    assert_non_null(items);
    for (size_t i = 0; i < n_prompt; i++)
        items[i] = (struct cit_batch_item){prompt[i], (int32_t)i, 0, i == n_prompt - 1};
    if (cit_decode(c, items, n_prompt, err, sizeof err) != CIT_OK)
        fail_msg("decode: %s", err);
    const float *logits = cit_logits(c, n_prompt - 1);
    struct cit_detok dt;
    cit_detok_init(&dt, tok, false);
    int32_t pos = (int32_t)n_prompt;
    while (g->n < max_tokens) {
        int32_t id = 0;
        if (s) {
            assert_int_equal(cit_sampler_sample(s, logits, &id, err, sizeof err), CIT_OK);
        } else {
            for (uint32_t v = 1; v < n_vocab; v++)
                if (logits[v] > logits[id])
                    id = (int32_t)v;
        }
        if (!ignore_eos && cit_tokenizer_is_eog(tok, id))
            break;
        if (s)
            cit_sampler_accept(s, id, NULL, 0);
        assert_int_equal(cit_sampler_logprobs(logits, (int32_t)n_vocab, id, 5, g->top[g->n], &g->lp[g->n], err,
                                              sizeof err),
                         CIT_OK);
        size_t k = 0;
        assert_int_equal(cit_detok_push(&dt, id, g->text + g->text_len, sizeof g->text - g->text_len - 8, &k, NULL, 0),
                         CIT_OK);
        g->text_len += k;
        g->tok_end[g->n] = g->text_len;
        g->ids[g->n++] = id;
        if (g->n == max_tokens)
            break;
        struct cit_batch_item it = {id, pos++, 0, true};
        if (cit_decode(c, &it, 1, err, sizeof err) != CIT_OK)
            fail_msg("decode: %s", err);
        logits = cit_logits(c, 0);
    }
    g->text_len += cit_detok_flush(&dt, g->text + g->text_len, 8);
    free(items);
    cit_sampler_free(s);
    cit_context_free(c);
}

/* ---- engine helpers ---- */

static struct cit_engine *engine(const struct cit_model *m, const struct cit_tokenizer *tok, uint32_t n_slots,
                                 uint32_t n_batch, uint32_t queue_max)
{
    struct cit_engine_params p;
    cit_engine_params_default(&p);
    p.n_slots = n_slots;
    if (n_batch)
        p.n_batch = n_batch;
    if (queue_max)
        p.queue_max = queue_max;
    p.n_threads = 1;
    p.n_ctx = 512; /* the reference loops use the same */
    struct cit_engine *e = NULL;
    char err[512] = "";
    if (cit_engine_new(m, tok, &p, &e, err, sizeof err) != CIT_OK)
        fail_msg("engine: %s", err);
    return e;
}

static struct cit_gen_params greedy(const int32_t *prompt, size_t n, uint32_t max_tokens)
{
    struct cit_gen_params p = {.prompt = prompt, .n_prompt = n, .max_tokens = max_tokens};
    cit_sampler_params_default(&p.sampling);
    p.sampling.temperature = 0.0f;
    return p;
}

static struct cit_request *submit(struct cit_engine *e, const struct cit_gen_params *p)
{
    struct cit_request *r = NULL;
    char err[512] = "";
    if (cit_engine_submit(e, p, &r, err, sizeof err) != CIT_OK)
        fail_msg("submit: %s", err);
    return r;
}

/* Reads one event (waiting at most a minute: a hang fails the test). */
static struct cit_event next(struct cit_request *r)
{
    struct cit_event ev;
    if (cit_request_next(r, 60000, &ev) != CIT_OK)
        fail_msg("no event within a minute");
    return ev;
}

/* Reads events up to the terminal one into g. */
static void collect(struct cit_request *r, struct gen *g)
{
    memset(g, 0, sizeof *g);
    for (;;) {
        struct cit_event ev = next(r);
        assert_non_null(ev.text);
        assert_int_equal(ev.text[ev.text_len], 0);
        if (ev.kind == CIT_EVENT_TOKEN) {
            assert_true(g->n < MAXGEN);
            assert_non_null(ev.piece);
            assert_int_equal(ev.piece[ev.piece_len], 0);
            g->lp[g->n] = ev.logprob;
            assert_true(ev.n_top <= 5);
            if (ev.n_top)
                memcpy(g->top[g->n], ev.top, ev.n_top * sizeof *ev.top);
            g->ids[g->n++] = ev.token;
            if (ev.text_len < ev.piece_len)
                g->held = true;
        } else if (ev.kind == CIT_EVENT_EMBEDDING) {
            g->emb = malloc(ev.n_embd * sizeof *g->emb);
            assert_non_null(g->emb);
            memcpy(g->emb, ev.embedding, ev.n_embd * sizeof *g->emb);
            g->n_embd = ev.n_embd;
            continue;
        }
        assert_true(g->text_len + ev.text_len < sizeof g->text);
        memcpy(g->text + g->text_len, ev.text, ev.text_len);
        g->text_len += ev.text_len;
        if (ev.kind == CIT_EVENT_DONE || ev.kind == CIT_EVENT_ERROR) {
            g->end_kind = ev.kind;
            g->finish = ev.finish;
            g->n_prompt = ev.n_prompt;
            g->n_cached = ev.n_cached;
            g->n_generated = ev.n_generated;
            memcpy(g->end_text, ev.text, ev.text_len);
            g->end_len = ev.text_len;
            /* the terminal event is returned again */
            struct cit_event again = next(r);
            assert_int_equal(again.kind, ev.kind);
            assert_ptr_equal(again.text, ev.text);
            return;
        }
    }
}

static void assert_same_ids(const struct gen *got, const struct gen *want, const char *what, size_t i)
{
    if (got->n != want->n || memcmp(got->ids, want->ids, want->n * sizeof *want->ids) != 0) {
        size_t k = 0;
        while (k < got->n && k < want->n && got->ids[k] == want->ids[k])
            k++;
        fail_msg("%s request %zu: %zu tokens, reference %zu; first difference at %zu", what, i, got->n, want->n, k);
    }
}

/* ---- prompts ---- */

static const char *const texts[] = {
    "Once upon a time, there was a little girl named Lily.",
    "Tom had a big red ball. He liked to play with it in the park with his friends every day.",
    "The cat",
    "One day, a bird flew into the garden and saw a shiny",
    "Sam and his mom went to the store to buy some food. They saw many toys.",
    "There was a tree.",
    "Once upon a time, there was a little boy who loved to run. He ran fast and far, and one day",
    "Mia found a box",
};
#define N_TEXTS (sizeof texts / sizeof texts[0])

struct prompt {
    int32_t ids[160];
    size_t n;
};

/* Sixteen prompts: the texts tokenized, and random id strings (BOS first). */
static void make_prompts(const struct cit_tokenizer *tok, struct prompt *p, size_t n)
{
    test_rng_seed(77);
    for (size_t i = 0; i < n; i++) {
        if (i < N_TEXTS) {
            assert_int_equal(cit_tokenize(tok, texts[i], strlen(texts[i]), true, false, p[i].ids, 160, &p[i].n,
                                          NULL, 0),
                             CIT_OK);
        } else {
            p[i].n = 2 + test_rng_next() % 40;
            p[i].ids[0] = cit_tokenizer_bos(tok);
            for (size_t k = 1; k < p[i].n; k++)
                p[i].ids[k] = (int32_t)(259 + test_rng_next() % 253);
        }
    }
}

/* ---- tests ---- */

/* 16 requests submitted at once, with 4 and 16 slots and with prompts
 * chunked by a small n_batch, give each the reference loop's tokens and
 * text, and the same as the request run alone in a one-slot engine. */
static void concurrent_case(const struct cit_model *m, const struct cit_tokenizer *tok, size_t n_req)
{
    struct prompt pr[16];
    make_prompts(tok, pr, n_req);
    uint32_t max_tokens[16];
    struct gen *want = calloc(n_req, sizeof *want), *got = calloc(1, sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    uint32_t n_ctx = 512;
    for (size_t i = 0; i < n_req; i++) {
        max_tokens[i] = (uint32_t)(5 + (i * 7) % 50);
        reference(m, tok, pr[i].ids, pr[i].n, max_tokens[i], NULL, false, n_ctx, &want[i]);
    }
    static const uint32_t slots[] = {4, 16, 4, 1};
    static const uint32_t batch[] = {0, 0, 9, 0};
    for (size_t c = 0; c < 4; c++) {
        struct cit_engine *e = engine(m, tok, slots[c], batch[c], 0);
        struct cit_request *r[16];
        bool one = slots[c] == 1;
        for (size_t i = 0; i < n_req; i++) {
            struct cit_gen_params p = greedy(pr[i].ids, pr[i].n, max_tokens[i]);
            r[i] = submit(e, &p);
            if (one) { /* alone: each request runs by itself */
                collect(r[i], got);
                assert_same_ids(got, &want[i], "alone", i);
                cit_request_free(r[i]);
            }
        }
        for (size_t i = 0; !one && i < n_req; i++) {
            collect(r[i], got);
            assert_same_ids(got, &want[i], "concurrent", i);
            assert_int_equal(got->end_kind, CIT_EVENT_DONE);
            assert_int_equal(got->finish, want[i].n == max_tokens[i] ? CIT_FINISH_LENGTH : CIT_FINISH_STOP);
            assert_int_equal(got->n_prompt, pr[i].n);
            assert_int_equal(got->text_len, want[i].text_len);
            assert_memory_equal(got->text, want[i].text, want[i].text_len);
            cit_request_free(r[i]);
        }
        struct cit_engine_stats st;
        cit_engine_stats(e, &st);
        assert_int_equal(st.busy_slots, 0);
        assert_int_equal(st.queue_depth, 0);
        assert_int_equal(st.requests_done, n_req);
        uint64_t total_prompt = 0;
        for (size_t i = 0; i < n_req; i++)
            total_prompt += pr[i].n;
        assert_int_equal(st.prompt_tokens + st.cached_tokens, total_prompt);
        assert_true(st.steps >= 1);
        cit_engine_free(e);
    }
    free(want);
    free(got);
}

static void test_concurrent_greedy(void **state)
{
    (void)state;
    concurrent_case(g_model, g_tok, 16);
}

static void test_concurrent_q4_0(void **state)
{
    (void)state;
    struct cit_model *m = NULL;
    struct cit_tokenizer *t = NULL;
    load("models/micro-llama-Q4_0.gguf", &m, &t);
    concurrent_case(m, t, 8);
    cit_tokenizer_free(t);
    cit_model_free(m);
}

/* A second request sharing a prefix reuses it (from a free slot's cache,
 * or copied from a busy slot) without changing its output. */
static void test_prefix_reuse(void **state)
{
    (void)state;
    struct cit_engine *e = engine(g_model, g_tok, 2, 0, 0);
    struct gen *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    int32_t a[48], b[48];
    test_rng_seed(5);
    a[0] = b[0] = 1;
    for (size_t i = 1; i < 48; i++)
        a[i] = b[i] = (int32_t)(259 + test_rng_next() % 253);
    for (size_t i = 30; i < 48; i++)
        b[i] = (int32_t)(259 + (b[i] + 17 - 259) % 253);

    struct cit_gen_params p = greedy(a, 40, 12);
    struct cit_request *r = submit(e, &p);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->n_cached, 0);

    p = greedy(b, 36, 12);
    reference(g_model, g_tok, b, 36, 12, NULL, false, 512, want);
    r = submit(e, &p);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->n_cached, 30);
    assert_same_ids(got, want, "reused", 0);
    struct cit_engine_stats st;
    cit_engine_stats(e, &st);
    assert_int_equal(st.cached_tokens, 30);
    assert_int_equal(st.prompt_tokens, 40 + 6);

    /* The whole prompt cached: its last token is still computed. */
    r = submit(e, &p);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->n_cached, 35);
    assert_same_ids(got, want, "reused whole", 0);

    /* From a busy slot: a long request runs in one slot, a request sharing
     * 33 tokens of its prompt goes to the other and copies them. */
    int32_t q[48];
    memcpy(q, a, sizeof q);
    q[1] = 300; /* shares only the BOS with what the slots hold */
    struct cit_gen_params pl = greedy(q, 40, 400);
    pl.ignore_eos = true;
    struct cit_request *rl = submit(e, &pl);
    struct cit_event ev = next(rl);
    assert_int_equal(ev.kind, CIT_EVENT_TOKEN);
    int32_t f[48];
    memcpy(f, q, 33 * sizeof *f);
    for (size_t i = 33; i < 45; i++)
        f[i] = (int32_t)(300 + i);
    p = greedy(f, 45, 10);
    reference(g_model, g_tok, f, 45, 10, NULL, false, 512, want);
    r = submit(e, &p);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->n_cached, 33);
    assert_same_ids(got, want, "copied", 0);
    /* the slot remembers the copied prefix as its own */
    r = submit(e, &p);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->n_cached, 44);
    assert_same_ids(got, want, "after a copy", 0);
    cit_request_free(rl);
    cit_engine_free(e);
    free(want);
    free(got);
}

/* An unrelated request does not wipe a slot's long cached prompt when a
 * slot with less to lose is free: the first prompt is still cached after. */
static void test_prefix_kept_from_unrelated(void **state)
{
    (void)state;
    struct cit_engine *e = engine(g_model, g_tok, 2, 0, 0);
    struct gen *got = calloc(1, sizeof *got);
    int32_t a[40], u[8];
    test_rng_seed(9);
    a[0] = u[0] = 1;
    for (size_t i = 1; i < 40; i++)
        a[i] = (int32_t)(259 + test_rng_next() % 253);
    for (size_t i = 1; i < 8; i++)
        u[i] = (int32_t)(259 + (a[i] + 5 - 259) % 253); /* shares only the BOS */
    struct cit_gen_params pa = greedy(a, 40, 4), pu = greedy(u, 8, 4);
    struct cit_request *r = submit(e, &pa);
    collect(r, got);
    cit_request_free(r);
    for (int k = 0; k < 2; k++) { /* twice: both slots then hold something */
        r = submit(e, &pu);
        collect(r, got);
        cit_request_free(r);
    }
    r = submit(e, &pa);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->n_cached, 39);
    cit_engine_free(e);
    free(got);
}

/* Finds a 2-byte stop string spanning the boundary of tokens k and k+1. */
static size_t boundary_token(const struct gen *g)
{
    for (size_t k = 3; k + 1 < g->n; k++) {
        size_t s = k ? g->tok_end[k - 1] : 0;
        if (g->tok_end[k] - s >= 2 && g->tok_end[k + 1] - g->tok_end[k] >= 2)
            return k;
    }
    fail_msg("no two long pieces in a row");
    return 0;
}

static void test_stop_strings(void **state)
{
    (void)state;
    struct cit_engine *e = engine(g_model, g_tok, 4, 0, 0);
    struct gen *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    int32_t prompt[160];
    size_t n = 0;
    assert_int_equal(cit_tokenize(g_tok, texts[0], strlen(texts[0]), true, false, prompt, 160, &n, NULL, 0), CIT_OK);
    reference(g_model, g_tok, prompt, n, 60, NULL, true, 512, want);
    size_t k = boundary_token(want);
    char stop[8] = {want->text[want->tok_end[k] - 1], want->text[want->tok_end[k]], 0};
    /* the earliest occurrence decides */
    const char *hit = NULL;
    for (size_t i = 0; i + 1 < want->text_len && !hit; i++)
        if (memcmp(want->text + i, stop, 2) == 0)
            hit = want->text + i;
    assert_non_null(hit);
    size_t at = (size_t)(hit - want->text), j = 0;
    while (want->tok_end[j] < at + 2)
        j++;

    const char *never = "qq\x01";
    const char *stops[] = {never, stop};
    struct cit_gen_params p = greedy(prompt, n, 60);
    p.ignore_eos = true;
    p.stop = stops;
    p.n_stop = 2;
    struct cit_request *r = submit(e, &p);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->end_kind, CIT_EVENT_DONE);
    assert_int_equal(got->finish, CIT_FINISH_STOP);
    assert_int_equal(got->n, j + 1);
    assert_int_equal(got->n_generated, j + 1);
    assert_memory_equal(got->ids, want->ids, (j + 1) * sizeof *got->ids);
    assert_int_equal(got->text_len, at);
    assert_memory_equal(got->text, want->text, at);
    assert_int_equal(got->end_len, 0);

    /* A stop string that never completes: its start is held back, then
     * released; what is held when max_tokens ends the request comes with
     * DONE. */
    char partial[8] = {want->text[want->tok_end[k] - 1], '\x01', 0};
    const char *stops2[] = {partial};
    p = greedy(prompt, n, (uint32_t)k + 1);
    p.ignore_eos = true;
    p.stop = stops2;
    p.n_stop = 1;
    r = submit(e, &p);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->finish, CIT_FINISH_LENGTH);
    assert_int_equal(got->n, k + 1);
    assert_true(got->held);
    assert_int_equal(got->end_len, 1);
    assert_int_equal(got->end_text[0], partial[0]);
    assert_int_equal(got->text_len, want->tok_end[k]);
    assert_memory_equal(got->text, want->text, got->text_len);
    cit_engine_free(e);
    free(want);
    free(got);
}

static void test_max_tokens(void **state)
{
    (void)state;
    struct cit_engine *e = engine(g_model, g_tok, 2, 0, 0);
    struct gen *got = calloc(1, sizeof *got);
    static const int32_t prompt[] = {1, 403, 407};
    for (uint32_t mt = 1; mt <= 9; mt += 4) {
        struct cit_gen_params p = greedy(prompt, 3, mt);
        p.ignore_eos = true;
        struct cit_request *r = submit(e, &p);
        collect(r, got);
        cit_request_free(r);
        assert_int_equal(got->finish, CIT_FINISH_LENGTH);
        assert_int_equal(got->n, mt);
        assert_int_equal(got->n_generated, mt);
    }
    /* the context exactly filled: prompt + max_tokens == n_ctx */
    int32_t longp[500];
    for (size_t i = 0; i < 500; i++)
        longp[i] = (int32_t)(259 + i % 200);
    struct cit_gen_params p = greedy(longp, 500, 12);
    p.ignore_eos = true;
    struct cit_request *r = submit(e, &p);
    collect(r, got);
    cit_request_free(r);
    assert_int_equal(got->finish, CIT_FINISH_LENGTH);
    assert_int_equal(got->n, 12);
    cit_engine_free(e);
    free(got);
}

/* Cancelling one request mid-generation frees its slot and leaves the
 * others' outputs as they were. */
static void test_cancel(void **state)
{
    (void)state;
    struct cit_engine *e = engine(g_model, g_tok, 4, 0, 0);
    struct gen *want = calloc(2, sizeof *want), *got = calloc(1, sizeof *got);
    struct prompt pr[3];
    make_prompts(g_tok, pr, 3);
    reference(g_model, g_tok, pr[1].ids, pr[1].n, 40, NULL, false, 512, &want[0]);
    reference(g_model, g_tok, pr[2].ids, pr[2].n, 40, NULL, false, 512, &want[1]);
    struct cit_gen_params pa = greedy(pr[0].ids, pr[0].n, 400);
    pa.ignore_eos = true;
    struct cit_request *ra = submit(e, &pa);
    struct cit_gen_params pb = greedy(pr[1].ids, pr[1].n, 40), pc = greedy(pr[2].ids, pr[2].n, 40);
    struct cit_request *rb = submit(e, &pb), *rc = submit(e, &pc);
    assert_int_equal(next(ra).kind, CIT_EVENT_TOKEN);
    cit_request_cancel(ra);
    cit_request_cancel(ra); /* idempotent */
    collect(ra, got);
    assert_int_equal(got->end_kind, CIT_EVENT_DONE);
    struct cit_engine_stats st;
    cit_engine_stats(e, &st);
    /* (only a test thread stalled for the whole generation sees it end) */
    bool cancelled = got->finish == CIT_FINISH_CANCELLED;
    if (cancelled) {
        assert_true(got->n < 400);
        assert_true(st.busy_slots <= 2);
        assert_int_equal(st.requests_cancelled, 1);
    } else {
        assert_int_equal(got->finish, CIT_FINISH_LENGTH);
    }
    collect(rb, got);
    assert_same_ids(got, &want[0], "beside a cancelled one", 1);
    collect(rc, got);
    assert_same_ids(got, &want[1], "beside a cancelled one", 2);
    cit_engine_stats(e, &st);
    assert_int_equal(st.busy_slots, 0);
    assert_int_equal(st.kv_used, 0);
    cit_request_free(ra);
    cit_request_free(rb);
    cit_request_free(rc);

    /* Freed without being read: the engine drops it by itself. */
    struct cit_request *rd = submit(e, &pa);
    cit_request_free(rd);
    for (int i = 0; i < 6000; i++) {
        cit_engine_stats(e, &st);
        if (st.requests_cancelled + st.requests_done == 4 && st.busy_slots == 0)
            break;
        usleep(10000);
    }
    /* cancelled, unless the test thread stalled for its whole generation */
    assert_int_equal(st.requests_cancelled + st.requests_done, 4);
    assert_true(st.requests_cancelled >= (uint64_t)cancelled);
    assert_int_equal(st.busy_slots, 0);
    assert_int_equal(st.kv_used, 0);
    assert_int_equal(st.queue_depth, 0);
    /* and the engine serves the next one as before */
    struct cit_request *rb2 = submit(e, &pb);
    collect(rb2, got);
    assert_same_ids(got, &want[0], "after a cancel", 1);
    cit_request_free(rb2);
    cit_engine_free(e);
    free(want);
    free(got);
}

/* A full queue refuses with "busy:"; queued requests can be cancelled.
 * One slot and two queue places: while the first (long) request holds the
 * slot, the next two wait and the fourth must be refused. That the first
 * was still running is checked afterwards (it ends CANCELLED, not LENGTH);
 * if a stalled test thread let it finish, the round is tried again. */
static void test_queue_full(void **state)
{
    (void)state;
    static const int32_t prompt[] = {1, 403, 407};
    struct cit_gen_params p = greedy(prompt, 3, 500);
    p.ignore_eos = true;
    struct gen *got = calloc(1, sizeof *got);
    bool decided = false;
    for (int round = 0; round < 10 && !decided; round++) {
        struct cit_engine *e = engine(g_model, g_tok, 1, 0, 2);
        struct cit_request *r[4] = {0};
        enum cit_status st[4];
        char errs[4][512] = {""};
        for (size_t i = 0; i < 4; i++) {
            st[i] = cit_engine_submit(e, &p, &r[i], errs[i], sizeof errs[i]);
            assert_true(st[i] == CIT_OK || (st[i] == CIT_ERR_UNSUPPORTED && !r[i]));
        }
        assert_int_equal(st[0], CIT_OK);
        assert_int_equal(st[1], CIT_OK);
        cit_request_cancel(r[1]); /* queued behind the first, unless it ended */
        struct gen g1;
        collect(r[1], &g1);
        assert_int_equal(g1.finish, CIT_FINISH_CANCELLED);
        cit_engine_cancel_all(e);
        collect(r[0], got);
        if (got->finish == CIT_FINISH_CANCELLED) {
            decided = true;
            assert_int_equal(g1.n, 0);
            assert_int_equal(g1.n_generated, 0);
            /* the third is refused if the first was still queued, else the fourth */
            size_t refused = st[2] != CIT_OK ? 2 : 3;
            assert_int_equal(st[refused], CIT_ERR_UNSUPPORTED);
            assert_memory_equal(errs[refused], "busy:", 5);
        }
        for (size_t i = 0; i < 4; i++) {
            if (r[i] && i >= 2) {
                collect(r[i], got);
                if (decided)
                    assert_int_equal(got->finish, CIT_FINISH_CANCELLED);
            }
            cit_request_free(r[i]);
        }
        if (decided) { /* accepted again afterwards */
            struct cit_gen_params ps = p;
            ps.max_tokens = 3;
            struct cit_request *ok = submit(e, &ps);
            collect(ok, got);
            assert_int_equal(got->finish, CIT_FINISH_LENGTH);
            cit_request_free(ok);
            struct cit_engine_stats es;
            cit_engine_stats(e, &es);
            assert_int_equal(es.queue_depth, 0);
            assert_int_equal(es.requests_cancelled, 2 + (st[2] == CIT_OK) + (st[3] == CIT_OK));
        }
        cit_engine_free(e);
    }
    assert_true(decided);
    free(got);
}

static void expect_refused(struct cit_engine *e, const struct cit_gen_params *p, enum cit_status want,
                           const char *prefix)
{
    struct cit_request *r = (struct cit_request *)1;
    char err[512] = "";
    assert_int_equal(cit_engine_submit(e, p, &r, err, sizeof err), want);
    assert_null(r);
    assert_true(err[0] != 0);
    if (prefix && strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("message '%s' does not start with '%s'", err, prefix);
}

static void test_errors(void **state)
{
    (void)state;
    char err[512] = "";
    struct cit_engine *e = NULL;
    struct cit_engine_params ep;
    cit_engine_params_default(&ep);
    ep.n_slots = 257;
    assert_int_equal(cit_engine_new(g_model, g_tok, &ep, &e, err, sizeof err), CIT_ERR_RANGE);
    cit_engine_params_default(&ep);
    ep.n_ctx = 2049; /* stories260K: llama.context_length 2048 */
    assert_int_equal(cit_engine_new(g_model, g_tok, &ep, &e, err, sizeof err), CIT_ERR_RANGE);
    assert_null(e);
    assert_int_equal(cit_engine_new(g_model, g_tok, NULL, &e, err, sizeof err), CIT_OK);
    assert_int_equal(cit_engine_params(e)->n_ctx, 2048);
    assert_int_equal(cit_engine_params(e)->n_slots, 4);
    assert_int_equal(cit_engine_params(e)->n_batch, 512);
    assert_int_equal(cit_engine_params(e)->queue_max, 64);
    assert_true(cit_engine_params(e)->n_threads >= 1);
    cit_engine_free(e);
    cit_engine_params_default(&ep);
    ep.n_slots = 16;
    ep.n_batch = 4;
    ep.n_threads = 1;
    ep.n_ctx = 512;
    assert_int_equal(cit_engine_new(g_model, g_tok, &ep, &e, err, sizeof err), CIT_OK);
    assert_int_equal(cit_engine_params(e)->n_batch, 17);
    assert_int_equal(cit_engine_params(e)->n_ctx, 512);
    struct cit_engine_stats st;
    cit_engine_stats(e, &st);
    assert_int_equal(st.n_slots, 16);
    assert_int_equal(st.kv_total, 16 * 512);

    int32_t prompt[600];
    for (size_t i = 0; i < 600; i++)
        prompt[i] = (int32_t)(1 + i % 500);
    struct cit_gen_params p = greedy(prompt, 400, 113);
    expect_refused(e, &p, CIT_ERR_LIMIT, "context_length_exceeded:");
    p.max_tokens = 112;
    struct cit_request *r = submit(e, &p);
    cit_request_free(r);
    p.embedding = true;
    p.n_prompt = 513;
    expect_refused(e, &p, CIT_ERR_LIMIT, "context_length_exceeded:");
    p = greedy(prompt, 4, 5);
    prompt[2] = 512;
    expect_refused(e, &p, CIT_ERR_RANGE, "prompt[2] = 512");
    prompt[2] = -1;
    expect_refused(e, &p, CIT_ERR_RANGE, "prompt[2] = -1");
    prompt[2] = 3;
    p.n_prompt = 0;
    expect_refused(e, &p, CIT_ERR_RANGE, "n_prompt");
    p.n_prompt = 4;
    p.max_tokens = 0;
    expect_refused(e, &p, CIT_ERR_RANGE, "max_tokens");
    p.max_tokens = 5;
    const char *five[] = {"a", "b", "c", "d", "e"};
    p.stop = five;
    p.n_stop = 5;
    expect_refused(e, &p, CIT_ERR_RANGE, NULL);
    const char *empty[] = {"a", ""};
    p.stop = empty;
    p.n_stop = 2;
    expect_refused(e, &p, CIT_ERR_RANGE, "stop[1]");
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    const char *toolong[] = {big};
    p.stop = toolong;
    p.n_stop = 1;
    expect_refused(e, &p, CIT_ERR_RANGE, "stop[0]");
    big[CIT_ENGINE_MAX_STOP_LEN] = 0; /* exactly the limit is fine */
    r = submit(e, &p);
    cit_request_free(r);
    p.n_stop = 0;
    p.logprobs = true;
    p.top_logprobs = CIT_ENGINE_MAX_TOP_LOGPROBS + 1;
    expect_refused(e, &p, CIT_ERR_RANGE, "top_logprobs");
    p.logprobs = false;
    p.top_logprobs = 3;
    expect_refused(e, &p, CIT_ERR_RANGE, "top_logprobs");
    p.top_logprobs = 0;
    p.sampling.top_p = 0.0f;
    expect_refused(e, &p, CIT_ERR_RANGE, NULL);
    p.sampling.top_p = 1.0f;
    assert_int_equal(cit_engine_submit(e, &p, NULL, err, sizeof err), CIT_ERR_INVALID_ARG);
    cit_engine_free(e);
    cit_engine_free(NULL);
    cit_request_free(NULL);
    cit_request_cancel(NULL);
}

/* The embedding is the mean of the final hidden states over the prompt,
 * unit-normalised, computed here from a one-sequence decode. */
static void test_embedding(void **state)
{
    (void)state;
    struct prompt pr[8];
    make_prompts(g_tok, pr, 8);
    const struct prompt *in = &pr[6];
    uint32_t n_embd = cit_model_info(g_model)->n_embd;
    char err[512] = "";
    struct cit_context_params cp = {.n_ctx = 512, .n_seq_max = 1, .n_batch_max = 512};
    struct cit_context *c = NULL;
    assert_int_equal(cit_context_new(g_model, &cp, &c, err, sizeof err), CIT_OK);
    struct cit_batch_item items[160];
    for (size_t i = 0; i < in->n; i++)
        items[i] = (struct cit_batch_item){in->ids[i], (int32_t)i, 0, true};
    assert_int_equal(cit_decode(c, items, in->n, err, sizeof err), CIT_OK);
    double *sum = calloc(n_embd, sizeof *sum), norm = 0.0;
    for (size_t i = 0; i < in->n; i++)
        for (uint32_t j = 0; j < n_embd; j++)
            sum[j] += cit_hidden(c, i)[j];
    for (uint32_t j = 0; j < n_embd; j++)
        norm += (sum[j] / (double)in->n) * (sum[j] / (double)in->n);
    norm = sqrt(norm);
    cit_context_free(c);

    /* small n_batch: the prompt spans several steps, beside a generation */
    struct cit_engine *e = engine(g_model, g_tok, 2, 5, 0);
    struct gen *got = calloc(1, sizeof *got), *other = calloc(1, sizeof *other), *want = calloc(1, sizeof *want);
    reference(g_model, g_tok, pr[0].ids, pr[0].n, 30, NULL, false, 512, want);
    struct cit_gen_params pg = greedy(pr[0].ids, pr[0].n, 30);
    struct cit_request *rg = submit(e, &pg);
    struct cit_gen_params p = {.prompt = in->ids, .n_prompt = in->n, .embedding = true};
    for (int rep = 0; rep < 2; rep++) {
        struct cit_request *r = submit(e, &p);
        collect(r, got);
        cit_request_free(r);
        assert_int_equal(got->end_kind, CIT_EVENT_DONE);
        assert_int_equal(got->n, 0);
        assert_int_equal(got->n_cached, 0);
        assert_int_equal(got->n_prompt, in->n);
        assert_int_equal(got->n_embd, n_embd);
        double n2 = 0.0;
        for (uint32_t j = 0; j < n_embd; j++) {
            n2 += (double)got->emb[j] * got->emb[j];
            assert_float_equal(got->emb[j], sum[j] / (double)in->n / norm, 1e-6);
        }
        assert_float_equal(n2, 1.0, 1e-5);
        free(got->emb);
    }
    collect(rg, other);
    assert_same_ids(other, want, "beside embeddings", 0);
    cit_request_free(rg);
    cit_engine_free(e);
    free(sum);
    free(got);
    free(other);
    free(want);
}

/* Sampling with temperature > 0 and a seed gives the reference sampler's
 * tokens, alone or beside others, every time. */
static void test_seeded(void **state)
{
    (void)state;
    struct prompt pr[4];
    make_prompts(g_tok, pr, 4);
    struct gen *want = calloc(4, sizeof *want), *got = calloc(1, sizeof *got);
    struct cit_gen_params p[4];
    for (size_t i = 0; i < 4; i++) {
        p[i] = greedy(pr[i].ids, pr[i].n, 40);
        cit_sampler_params_default(&p[i].sampling);
        p[i].sampling.temperature = 0.9f;
        p[i].sampling.repeat_penalty = 1.1f;
        p[i].sampling.seed = 1000 + i;
        reference(g_model, g_tok, pr[i].ids, pr[i].n, 40, &p[i].sampling, false, 512, &want[i]);
    }
    struct cit_engine *e = engine(g_model, g_tok, 4, 0, 0);
    for (int rep = 0; rep < 2; rep++) {
        struct cit_request *r[4];
        for (size_t i = 0; i < 4; i++)
            r[i] = submit(e, &p[i]);
        for (size_t i = 0; i < 4; i++) {
            collect(r[i], got);
            assert_same_ids(got, &want[i], "seeded", i);
            cit_request_free(r[i]);
        }
    }
    cit_engine_free(e);
    free(want);
    free(got);
}

/* logprob and top_logprobs equal cit_sampler_logprobs on the reference
 * loop's logits. */
static void test_logprobs(void **state)
{
    (void)state;
    struct prompt pr[2];
    make_prompts(g_tok, pr, 2);
    struct gen *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    reference(g_model, g_tok, pr[1].ids, pr[1].n, 25, NULL, false, 512, want);
    struct cit_engine *e = engine(g_model, g_tok, 2, 0, 0);
    struct cit_gen_params p0 = greedy(pr[0].ids, pr[0].n, 25), p = greedy(pr[1].ids, pr[1].n, 25);
    p.logprobs = true;
    p.top_logprobs = 5;
    struct cit_request *r0 = submit(e, &p0), *r = submit(e, &p);
    collect(r, got);
    assert_same_ids(got, want, "logprobs", 1);
    for (size_t i = 0; i < want->n; i++) {
        assert_true(got->lp[i] == want->lp[i]);
        assert_true(got->lp[i] <= 0.0f);
        for (size_t k = 0; k < 5; k++) {
            assert_int_equal(got->top[i][k].token, want->top[i][k].token);
            assert_true(got->top[i][k].logprob == want->top[i][k].logprob);
        }
    }
    cit_request_free(r);
    cit_request_free(r0);
    cit_engine_free(e);
    free(want);
    free(got);
}

/* Freeing the engine with requests running and queued (some handles
 * already freed): every surviving handle ends with CANCELLED (or its
 * normal end) and can be freed after the engine; nothing leaks (ASan). */
static void test_free_in_flight(void **state)
{
    (void)state;
    struct cit_engine *e = engine(g_model, g_tok, 4, 0, 0);
    static const int32_t prompt[] = {1, 403, 407, 261};
    struct cit_gen_params p = greedy(prompt, 4, 300);
    p.ignore_eos = true;
    struct cit_request *r[8];
    for (size_t i = 0; i < 8; i++)
        r[i] = submit(e, &p);
    assert_int_equal(next(r[0]).kind, CIT_EVENT_TOKEN);
    struct cit_event ev;
    enum cit_status st = cit_request_next(r[7], 0, &ev); /* queued: usually nothing yet */
    assert_true(st == CIT_OK || st == CIT_ERR_LIMIT);
    cit_request_free(r[1]);
    cit_request_free(r[5]);
    cit_engine_free(e);
    struct gen *got = calloc(1, sizeof *got);
    for (size_t i = 0; i < 8; i++) {
        if (i == 1 || i == 5)
            continue;
        collect(r[i], got);
        assert_int_equal(got->end_kind, CIT_EVENT_DONE);
        assert_true(got->finish == CIT_FINISH_CANCELLED || got->finish == CIT_FINISH_LENGTH);
        cit_request_free(r[i]);
    }
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_greedy),
        cmocka_unit_test(test_concurrent_q4_0),
        cmocka_unit_test(test_prefix_reuse),
        cmocka_unit_test(test_prefix_kept_from_unrelated),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_max_tokens),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_seeded),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_free_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
