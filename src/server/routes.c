/* routes.c: the endpoints that do not generate text: embeddings, tokenize,
 * detokenize, models, health and metrics. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "citadel/model.h"
#include "citadel/tokenizer.h"
#include "server/http.h"
#include "server/json_out.h"

#define EMBED_POLL_MS 50

static json_t *embedding_json(const float *v, uint32_t n, bool base64)
{
    if (!base64) {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < n; i++)
            json_array_append_new(a, json_real(v[i]));
        return a;
    }
    /* base64 of the little-endian float32 array, as OpenAI's clients expect. */
    size_t bytes = (size_t)n * sizeof(float);
    size_t cap = sodium_base64_encoded_len(bytes, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(cap);
    if (!b64)
        return NULL;
    sodium_bin2base64(b64, cap, (const unsigned char *)v, bytes, sodium_base64_VARIANT_ORIGINAL);
    json_t *s = json_string(b64);
    free(b64);
    return s;
}

/* Submits input i as an embedding request; false with e filled. */
static bool submit_input(struct srv_model *sm, const struct srv_input *in, size_t i, struct cit_request **out,
                         uint64_t *n_tokens, struct srv_error *e)
{
    int32_t *ids = in->tokens;
    size_t n = in->n_tokens;
    char err[512];
    if (!ids && cit_tokenize_alloc(sm->tok, in->text, in->text_len, true, true, &ids, &n, err, sizeof err) != CIT_OK)
        return srv_fail(e, 400, "invalid_request_error", "input", "invalid_value", "input[%zu]: %s", i, err);
    if (n == 0)
        return srv_fail(e, 400, "invalid_request_error", "input", "invalid_value", "input[%zu] gives no tokens", i);
    struct cit_gen_params gp = {.prompt = ids, .n_prompt = n, .max_tokens = 1, .embedding = true};
    cit_sampler_params_default(&gp.sampling);
    enum cit_status st = cit_engine_submit(sm->eng, &gp, out, err, sizeof err);
    if (ids != in->tokens)
        free(ids);
    if (st == CIT_ERR_LIMIT)
        return srv_fail(e, 400, "invalid_request_error", "input", "context_length_exceeded", "input[%zu]: %s", i,
                        err);
    if (st == CIT_ERR_UNSUPPORTED)
        return srv_fail(e, 429, "rate_limit_error", "", "queue_full", "%s; retry after a moment", err);
    if (st != CIT_OK)
        return srv_fail(e, 400, "invalid_request_error", "input", "invalid_value", "input[%zu]: %s", i, err);
    *n_tokens += n;
    return true;
}

/* Waits for request i's embedding; NULL with e filled when it failed, or
 * with *gone set when the client went away. */
static json_t *await_embedding(struct srv_req *r, struct cit_request *req, size_t i, bool base64, bool *gone,
                               struct srv_error *e)
{
    json_t *vec = NULL;
    for (;;) {
        struct cit_event ev;
        if (cit_request_next(req, EMBED_POLL_MS, &ev) != CIT_OK) {
            if ((*gone = srv_client_gone(r->conn)))
                return NULL;
            continue;
        }
        if (ev.kind == CIT_EVENT_EMBEDDING)
            vec = embedding_json(ev.embedding, ev.n_embd, base64);
        if (ev.kind != CIT_EVENT_DONE && ev.kind != CIT_EVENT_ERROR)
            continue;
        if (ev.kind == CIT_EVENT_DONE && ev.finish != CIT_FINISH_CANCELLED && vec)
            return vec;
        json_decref(vec);
        srv_fail(e, 503, "server_error", "", "cancelled", "input[%zu]: %s", i,
                 ev.kind == CIT_EVENT_ERROR ? ev.text : "the request was cancelled");
        return NULL;
    }
}

enum MHD_Result srv_handle_embeddings(struct srv_req *r, json_t *body)
{
    struct srv_error e = {0};
    struct srv_request q = {0};
    struct srv_model *sm = srv_parse_request(r, body, SRV_EP_EMBEDDING, &q, &e);
    if (!sm)
        return srv_reply_error(r, &e);
    const json_t *fmt = json_object_get(body, "encoding_format");
    const char *f = json_string_value(fmt);
    if (fmt && !json_is_null(fmt) && (!f || (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0))) {
        srv_request_clear(&q);
        srv_fail(&e, 400, "invalid_request_error", "encoding_format", "invalid_value",
                 "encoding_format must be \"float\" or \"base64\"");
        return srv_reply_error(r, &e);
    }
    bool base64 = f && strcmp(f, "base64") == 0;
    /* Every input is submitted first, so the engine batches them. */
    struct cit_request **reqs = calloc(q.n_inputs, sizeof *reqs);
    json_t *data = json_array(), *doc = NULL;
    size_t n_submitted = 0;
    uint64_t n_tokens = 0;
    bool ok = reqs && data, gone = false;
    if (!ok)
        srv_fail(&e, 500, "server_error", "", "", "out of memory");
    atomic_fetch_add(&r->srv->in_flight, 1);
    for (size_t i = 0; ok && i < q.n_inputs; i++)
        if ((ok = submit_input(sm, &q.inputs[i], i, &reqs[i], &n_tokens, &e)))
            n_submitted++;
    for (size_t i = 0; ok && i < q.n_inputs; i++) {
        json_t *vec = await_embedding(r, reqs[i], i, base64, &gone, &e);
        ok = vec != NULL;
        if (ok)
            json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index", (json_int_t)i,
                                                  "embedding", vec));
    }
    for (size_t k = 0; k < n_submitted; k++)
        cit_request_free(reqs[k]);
    atomic_fetch_sub(&r->srv->in_flight, 1);
    free(reqs);
    srv_request_clear(&q);
    if (ok)
        doc = json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", sm->id, "usage",
                        "prompt_tokens", (json_int_t)n_tokens, "total_tokens", (json_int_t)n_tokens);
    else
        json_decref(data);
    if (gone) {
        r->status = 499;
        return MHD_NO; /* closes the connection */
    }
    return ok ? srv_reply_json(r, 200, doc) : srv_reply_error(r, &e);
}

enum MHD_Result srv_handle_tokenize(struct srv_req *r, json_t *body)
{
    struct srv_error e = {0};
    struct srv_request q = {0};
    struct srv_model *sm = srv_parse_request(r, body, SRV_EP_TOKENIZE, &q, &e);
    if (!sm)
        return srv_reply_error(r, &e);
    int32_t *ids = NULL;
    size_t n = 0;
    char err[512];
    if (cit_tokenize_alloc(sm->tok, q.text, q.text_len, q.add_special, true, &ids, &n, err, sizeof err) != CIT_OK) {
        srv_fail(&e, 400, "invalid_request_error", "content", "invalid_value", "content: %s", err);
        srv_request_clear(&q);
        return srv_reply_error(r, &e);
    }
    json_t *tokens = json_array();
    for (size_t i = 0; tokens && i < n; i++) {
        if (q.with_pieces) {
            size_t len = 0;
            const char *p = cit_token_piece(sm->tok, ids[i], true, &len);
            json_array_append_new(tokens, json_pack("{s:i,s:o}", "id", (int)ids[i], "piece", srv_json_text(p, len)));
        } else {
            json_array_append_new(tokens, json_integer(ids[i]));
        }
    }
    free(ids);
    srv_request_clear(&q);
    return srv_reply_json(r, 200, json_pack("{s:o}", "tokens", tokens));
}

enum MHD_Result srv_handle_detokenize(struct srv_req *r, json_t *body)
{
    struct srv_error e = {0};
    struct srv_request q = {0};
    struct srv_model *sm = srv_parse_request(r, body, SRV_EP_DETOKENIZE, &q, &e);
    if (!sm)
        return srv_reply_error(r, &e);
    size_t need = 0;
    char err[512] = "out of memory";
    enum cit_status st = cit_detokenize(sm->tok, q.tokens, q.n_tokens, true, false, NULL, 0, &need, err, sizeof err);
    char *text = NULL;
    if (st == CIT_OK || st == CIT_ERR_LIMIT) {
        text = malloc(need + 1);
        st = text ? cit_detokenize(sm->tok, q.tokens, q.n_tokens, true, false, text, need + 1, &need, err, sizeof err)
                  : CIT_ERR_NOMEM;
    }
    srv_request_clear(&q);
    if (st != CIT_OK) {
        free(text);
        srv_fail(&e, 400, "invalid_request_error", "tokens", "invalid_value", "tokens: %s", err);
        return srv_reply_error(r, &e);
    }
    json_t *doc = json_pack("{s:o}", "content", srv_json_text(text, need));
    free(text);
    return srv_reply_json(r, 200, doc);
}

enum MHD_Result srv_handle_models(struct srv_req *r, json_t *body)
{
    json_t *data = json_array();
    for (size_t i = 0; i < r->srv->n_models; i++) {
        const struct srv_model *sm = &r->srv->models[i];
        json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:{s:I,s:I,s:I}}", "id", sm->id, "object", "model",
                                              "created", (json_int_t)sm->created, "owned_by", "citadel", "meta",
                                              "n_ctx", (json_int_t)sm->n_ctx, "n_vocab", (json_int_t)sm->n_vocab,
                                              "n_embd", (json_int_t)sm->n_embd));
    }
    return srv_reply_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

enum MHD_Result srv_handle_health(struct srv_req *r, json_t *body)
{
    int state = atomic_load(&r->srv->state);
    const char *name = state == SRV_READY ? "ok" : state == SRV_LOADING ? "loading" : "shutting_down";
    return srv_reply_json(r, state == SRV_READY ? 200 : 503, json_pack("{s:s}", "status", name));
}

enum MHD_Result srv_handle_metrics(struct srv_req *r, json_t *body)
{
    struct srv *s = r->srv;
    struct srv_metrics_model mm[SRV_MAX_MODELS];
    bool ready = atomic_load(&s->state) != SRV_LOADING;
    for (size_t i = 0; i < s->n_models; i++) {
        mm[i].name = s->models[i].id;
        memset(&mm[i].stats, 0, sizeof mm[i].stats);
        if (ready && s->models[i].eng)
            cit_engine_stats(s->models[i].eng, &mm[i].stats);
    }
    char *text = srv_metrics_render(s->metrics, mm, s->n_models);
    if (!text)
        return MHD_NO;
    enum MHD_Result ret = srv_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
    return ret;
}
