/* openai.c: POST /v1/chat/completions and POST /v1/completions.
 *
 * A request is validated against the parameter table (params.h), turned
 * into token ids (the model's chat template for chat), and submitted to the
 * model's engine as `n` engine requests (choice i samples with seed + i).
 * The connection's thread then waits on their channels: it builds one JSON
 * answer, or, with stream: true, writes each event as a Server-Sent Event in
 * OpenAI's chunk format from libmicrohttpd's reader callback. A client that
 * goes away is noticed within POLL_MS (its socket is polled while waiting)
 * and its requests are cancelled, which frees their slots at the engine's
 * next step. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "citadel/template.h"
#include "citadel/tokenizer.h"
#include "server/http.h"
#include "server/json_out.h"

#define POLL_MS 50

struct choice {
    struct cit_request *req;
    bool ended;
    bool failed;
    enum cit_finish finish;
    char error[256];
    uint32_t n_prompt, n_cached, n_generated;
    bool got_token;
    double t_last;
    size_t text_offset; /* bytes of text so far (completion logprobs' text_offset) */
    /* non-streamed answer */
    struct srv_buf text;
    json_t *logprobs; /* chat: array of entries; completion: the legacy object */
};

struct gen {
    struct srv *srv;
    struct srv_model *sm;
    size_t model_index;
    bool chat, stream, include_usage, logprobs, echo;
    uint32_t top;
    char id[64];
    long created;
    double t_start;
    struct MHD_Connection *conn;
    size_t n;
    struct choice ch[SRV_MAX_N];
    char *echo_text;
    size_t echo_len;
    /* streaming */
    struct srv_buf out;
    size_t out_off;
    bool head_sent, tail_sent;
};

/* ---- prompts ---- */

/* Content given as an array of parts becomes the concatenation of its
 * text parts; null becomes "". Other message keys are kept. */
static json_t *normalise_messages(const json_t *messages)
{
    json_t *out = json_array();
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m)
    {
        json_t *c = json_deep_copy(m);
        const json_t *content = json_object_get(m, "content");
        if (!c || !out) {
            json_decref(c);
            json_decref(out);
            return NULL;
        }
        if (json_is_array(content)) {
            struct srv_buf b = {0};
            size_t k;
            const json_t *part;
            json_array_foreach(content, k, part)
            {
                const json_t *t = json_object_get(part, "text");
                if (json_is_string(t))
                    srv_buf_add(&b, json_string_value(t), json_string_length(t));
            }
            json_object_set_new(c, "content", json_stringn(b.data ? b.data : "", b.len));
            free(b.data);
        } else if (!json_is_string(content)) {
            json_object_set_new(c, "content", json_string(""));
        }
        json_array_append_new(out, c);
    }
    return out;
}

/* Tokenizes prompt text (cit_tokenize_prompt: one BOS, special tokens parsed). */
static bool tokenize_text(struct srv_model *sm, const char *text, size_t len, const char *param, int32_t **ids,
                          size_t *n, struct srv_error *e)
{
    char err[256];
    if (cit_tokenize_prompt(sm->tok, text, len, ids, n, err, sizeof err) != CIT_OK)
        return srv_fail(e, 400, "invalid_request_error", param, "invalid_value", "%s: %s", param, err);
    if (*n == 0)
        return srv_fail(e, 400, "invalid_request_error", param, "invalid_value",
                        "%s is empty: it gives no tokens", param);
    return true;
}

static bool chat_prompt(struct srv_model *sm, const json_t *messages, int32_t **ids, size_t *n,
                        struct srv_error *e)
{
    json_t *msgs = normalise_messages(messages);
    if (!msgs)
        return srv_fail(e, 500, "server_error", "", "", "out of memory");
    char *text = NULL, err[512];
    size_t len = 0;
    enum cit_status st =
        cit_template_render_chat(sm->tmpl, msgs, true, NULL, NULL, NULL, NULL, &text, &len, err, sizeof err);
    json_decref(msgs);
    if (st != CIT_OK)
        return srv_fail(e, 400, "invalid_request_error", "messages", "invalid_value",
                        "the model's chat template cannot render these messages: %s", err);
    bool ok = tokenize_text(sm, text, len, "messages", ids, n, e);
    free(text);
    return ok;
}

/* ---- events ---- */

static const char *finish_name(enum cit_finish f)
{
    return f == CIT_FINISH_LENGTH ? "length" : "stop";
}

/* The logprobs of one token: chat's {"token", "logprob", "bytes",
 * "top_logprobs"} entry. */
static json_t *chat_logprob_entry(const struct gen *g, const struct cit_event *ev)
{
    json_t *top = json_array();
    for (uint32_t k = 0; k < ev->n_top; k++) {
        size_t len = 0;
        const char *p = cit_token_piece(g->sm->tok, ev->top[k].token, true, &len);
        json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", srv_json_text(p, len), "logprob",
                                             (double)ev->top[k].logprob, "bytes", srv_json_bytes(p, len)));
    }
    return json_pack("{s:o,s:f,s:o,s:o}", "token", srv_json_text(ev->piece, ev->piece_len), "logprob",
                     (double)ev->logprob, "bytes", srv_json_bytes(ev->piece, ev->piece_len), "top_logprobs", top);
}

/* Legacy completions logprobs: parallel arrays. */
static json_t *completion_logprobs_new(void)
{
    return json_pack("{s:[],s:[],s:[],s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

static void completion_logprobs_add(const struct gen *g, json_t *lp, const struct cit_event *ev, size_t offset)
{
    json_array_append_new(json_object_get(lp, "tokens"), srv_json_text(ev->piece, ev->piece_len));
    json_array_append_new(json_object_get(lp, "token_logprobs"), json_real(ev->logprob));
    json_t *top = json_object();
    for (uint32_t k = 0; k < ev->n_top; k++) {
        size_t len = 0;
        const char *p = cit_token_piece(g->sm->tok, ev->top[k].token, true, &len);
        json_t *key = srv_json_text(p, len);
        if (key && !json_object_get(top, json_string_value(key)))
            json_object_set_new(top, json_string_value(key), json_real(ev->top[k].logprob));
        json_decref(key);
    }
    json_array_append_new(json_object_get(lp, "top_logprobs"), top);
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)offset));
}

static json_t *usage_json(const struct gen *g)
{
    uint64_t completion = 0;
    for (size_t i = 0; i < g->n; i++)
        completion += g->ch[i].n_generated;
    uint32_t prompt = g->ch[0].n_prompt;
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                     (json_int_t)completion, "total_tokens", (json_int_t)(prompt + completion),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)g->ch[0].n_cached);
}

/* One streamed chunk for choice i: delta text (may be NULL), logprobs entry
 * (stolen, may be NULL), finish reason (NULL while going on). */
static void stream_chunk(struct gen *g, size_t i, const char *text, size_t len, bool role, json_t *lp,
                         const char *finish)
{
    json_t *choice;
    if (g->chat) {
        json_t *delta = json_object();
        if (role)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (text)
            json_object_set_new(delta, "content", srv_json_text(text, len));
        json_t *lpo = lp ? json_pack("{s:[o]}", "content", lp) : json_null();
        choice = json_pack("{s:I,s:o,s:o,s:o}", "index", (json_int_t)i, "delta", delta, "logprobs", lpo,
                           "finish_reason", finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:I,s:o,s:o,s:o}", "index", (json_int_t)i, "text",
                           srv_json_text(text ? text : "", text ? len : 0), "logprobs", lp ? lp : json_null(),
                           "finish_reason", finish ? json_string(finish) : json_null());
    }
    json_t *chunk = json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", g->id, "object",
                              g->chat ? "chat.completion.chunk" : "text_completion", "created",
                              (json_int_t)g->created, "model", g->sm->id, "choices", choice);
    if (g->include_usage)
        json_object_set_new(chunk, "usage", json_null());
    srv_sse_json(&g->out, chunk);
}

static void on_event(struct gen *g, size_t i, const struct cit_event *ev)
{
    struct choice *c = &g->ch[i];
    double t = srv_now();
    if (ev->kind == CIT_EVENT_TOKEN) {
        if (!c->got_token)
            srv_metrics_ttft(g->srv->metrics, g->model_index, t - g->t_start);
        else
            srv_metrics_itl(g->srv->metrics, g->model_index, t - c->t_last);
        c->got_token = true;
        c->t_last = t;
        c->n_generated++;
        json_t *lp = NULL;
        if (g->logprobs && g->chat)
            lp = chat_logprob_entry(g, ev);
        if (g->stream) {
            if (g->logprobs && !g->chat) {
                lp = completion_logprobs_new();
                completion_logprobs_add(g, lp, ev, c->text_offset);
            }
            if (ev->text_len || lp)
                stream_chunk(g, i, ev->text, ev->text_len, false, lp, NULL);
        } else {
            srv_buf_add(&c->text, ev->text, ev->text_len);
            if (lp)
                json_array_append_new(c->logprobs, lp);
            else if (g->logprobs)
                completion_logprobs_add(g, c->logprobs, ev, c->text_offset);
        }
        c->text_offset += ev->text_len;
        return;
    }
    /* DONE or ERROR: the last event. */
    c->ended = true;
    c->n_prompt = ev->n_prompt;
    c->n_cached = ev->n_cached;
    c->n_generated = ev->n_generated;
    if (ev->kind == CIT_EVENT_ERROR || ev->finish == CIT_FINISH_CANCELLED) {
        c->failed = true;
        snprintf(c->error, sizeof c->error, "%s",
                 ev->kind == CIT_EVENT_ERROR ? ev->text : "the request was cancelled (server shutting down)");
        return;
    }
    c->finish = ev->finish;
    if (g->stream) {
        if (ev->text_len)
            stream_chunk(g, i, ev->text, ev->text_len, false, NULL, NULL);
        stream_chunk(g, i, g->chat ? NULL : "", 0, false, NULL, finish_name(c->finish));
    } else {
        srv_buf_add(&c->text, ev->text, ev->text_len);
    }
}

static bool all_ended(const struct gen *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (!g->ch[i].ended)
            return false;
    return true;
}

/* Handles every event already waiting; when there is none, waits up to
 * POLL_MS on the first unfinished choice. Returns whether any came. */
static bool pump(struct gen *g)
{
    bool any = false;
    struct cit_event ev;
    for (size_t i = 0; i < g->n; i++)
        while (!g->ch[i].ended && cit_request_next(g->ch[i].req, 0, &ev) == CIT_OK) {
            on_event(g, i, &ev);
            any = true;
        }
    if (any)
        return true;
    for (size_t i = 0; i < g->n; i++)
        if (!g->ch[i].ended) {
            if (cit_request_next(g->ch[i].req, POLL_MS, &ev) == CIT_OK) {
                on_event(g, i, &ev);
                return true;
            }
            return false;
        }
    return false;
}

static void cancel_all(struct gen *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->ch[i].req)
            cit_request_cancel(g->ch[i].req);
}

static void gen_free(struct gen *g)
{
    if (!g)
        return;
    bool counted = false;
    for (size_t i = 0; i < g->n; i++) {
        if (g->ch[i].req)
            counted = true;
        cit_request_free(g->ch[i].req);
        free(g->ch[i].text.data);
        json_decref(g->ch[i].logprobs);
    }
    if (counted)
        atomic_fetch_sub(&g->srv->in_flight, 1);
    free(g->echo_text);
    free(g->out.data);
    free(g);
}

/* ---- the answers ---- */

static const char *first_error(const struct gen *g)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->ch[i].failed)
            return g->ch[i].error;
    return NULL;
}

static enum MHD_Result answer_whole(struct srv_req *r, struct gen *g)
{
    double next_check = 0;
    while (!all_ended(g)) {
        bool any = pump(g);
        /* events may flow without a pause, so the socket is looked at on a clock */
        double t = srv_now();
        if (any && t < next_check)
            continue;
        next_check = t + POLL_MS * 1e-3;
        if (srv_client_gone(r->conn)) {
            cancel_all(g);
            gen_free(g);
            r->status = 499;
            return MHD_NO; /* closes the connection */
        }
    }
    const char *error = first_error(g);
    if (error) {
        struct srv_error e;
        srv_fail(&e, 503, "server_error", "", "cancelled", "%s", error);
        gen_free(g);
        return srv_reply_error(r, &e);
    }
    json_t *choices = json_array();
    for (size_t i = 0; i < g->n; i++) {
        struct choice *c = &g->ch[i];
        json_t *lp = c->logprobs ? c->logprobs : json_null();
        c->logprobs = NULL;
        if (g->chat && json_is_array(lp))
            lp = json_pack("{s:o}", "content", lp);
        json_t *item;
        if (g->chat) {
            item = json_pack("{s:I,s:{s:s,s:o},s:o,s:s}", "index", (json_int_t)i, "message", "role", "assistant",
                             "content", srv_json_text(c->text.data ? c->text.data : "", c->text.len), "logprobs",
                             lp, "finish_reason", finish_name(c->finish));
        } else {
            struct srv_buf t = {0};
            if (g->echo)
                srv_buf_add(&t, g->echo_text, g->echo_len);
            srv_buf_add(&t, c->text.data, c->text.len);
            item = json_pack("{s:I,s:o,s:o,s:s}", "index", (json_int_t)i, "text",
                             srv_json_text(t.data ? t.data : "", t.len), "logprobs", lp, "finish_reason",
                             finish_name(c->finish));
            free(t.data);
        }
        json_array_append_new(choices, item);
    }
    json_t *doc = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", g->id, "object",
                            g->chat ? "chat.completion" : "text_completion", "created", (json_int_t)g->created,
                            "model", g->sm->id, "choices", choices, "usage", usage_json(g));
    gen_free(g);
    return srv_reply_json(r, 200, doc);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct gen *g = cls;
    while (g->out_off == g->out.len) {
        g->out.len = 0;
        g->out_off = 0;
        if (g->tail_sent)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (!g->head_sent) {
            g->head_sent = true;
            for (size_t i = 0; i < g->n; i++) {
                if (g->chat)
                    stream_chunk(g, i, "", 0, true, NULL, NULL);
                else if (g->echo)
                    stream_chunk(g, i, g->echo_text, g->echo_len, false, NULL, NULL);
            }
            continue;
        }
        if (all_ended(g)) {
            const char *error = first_error(g);
            if (error) {
                json_t *ev = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", error, "type", "server_error",
                                       "param", "code", "cancelled");
                srv_sse_json(&g->out, ev);
            } else {
                if (g->include_usage) {
                    json_t *chunk = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", g->id, "object",
                                              g->chat ? "chat.completion.chunk" : "text_completion", "created",
                                              (json_int_t)g->created, "model", g->sm->id, "choices", "usage",
                                              usage_json(g));
                    srv_sse_json(&g->out, chunk);
                }
                srv_buf_add(&g->out, "data: [DONE]\n\n", 14);
            }
            g->tail_sent = true;
            continue;
        }
        if (!pump(g) && g->out.len == 0 && srv_client_gone(g->conn)) {
            cancel_all(g);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = g->out.len - g->out_off;
    if (n > max)
        n = max;
    memcpy(buf, g->out.data + g->out_off, n);
    g->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct gen *g = cls;
    cancel_all(g);
    gen_free(g);
}

static enum MHD_Result answer_stream(struct srv_req *r, struct gen *g)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, g,
                                                                  stream_free);
    if (!resp) {
        cancel_all(g);
        gen_free(g);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return srv_queue(r, 200, resp);
}

/* ---- the handlers ---- */

/* Fresh randomness for a request that gives no seed. */
static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)(srv_now() * 1e9);
    return seed;
}

static bool submit_error(enum cit_status st, const char *msg, struct srv_error *e)
{
    if (st == CIT_ERR_LIMIT)
        return srv_fail(e, 400, "invalid_request_error", "messages", "context_length_exceeded", "%s", msg);
    if (st == CIT_ERR_UNSUPPORTED)
        return srv_fail(e, 429, "rate_limit_error", "", "queue_full",
                        "%s; every slot is busy and the queue is full: retry after a moment", msg);
    if (st == CIT_ERR_RANGE)
        return srv_fail(e, 400, "invalid_request_error", "", "invalid_value", "%s", msg);
    return srv_fail(e, 500, "server_error", "", "", "%s", msg);
}

static enum MHD_Result generate(struct srv_req *r, json_t *body, bool chat)
{
    struct srv *s = r->srv;
    struct srv_error e = {0};
    struct srv_request q = {0};
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct gen *g = NULL;
    struct srv_model *sm = srv_parse_request(r, body, chat ? SRV_EP_CHAT : SRV_EP_COMPLETION, &q, &e);
    if (!sm)
        goto fail;
    if (chat) {
        if (!chat_prompt(sm, q.messages, &ids, &n_ids, &e))
            goto fail;
    } else if (q.tokens) {
        ids = q.tokens;
        n_ids = q.n_tokens;
        q.tokens = NULL;
    } else if (!tokenize_text(sm, q.text, q.text_len, "prompt", &ids, &n_ids, &e)) {
        goto fail;
    }
    /* unset (chat): the rest of the slot's context */
    uint64_t max_tokens = q.max_tokens ? q.max_tokens : (n_ids < sm->n_ctx ? sm->n_ctx - n_ids : 0);
    if (max_tokens == 0 || n_ids + max_tokens > sm->n_ctx) {
        const char *what = chat ? "messages" : "prompt";
        srv_fail(&e, 400, "invalid_request_error", what, "context_length_exceeded",
                 "This model's maximum context length is %u tokens. However, you requested %llu tokens (%zu in "
                 "the %s, %llu in the completion). Please reduce the length of the %s or completion.",
                 sm->n_ctx, (unsigned long long)(n_ids + (max_tokens ? max_tokens : 1)), n_ids, what,
                 (unsigned long long)(max_tokens ? max_tokens : 1), what);
        goto fail;
    }
    g = calloc(1, sizeof *g);
    if (!g) {
        srv_fail(&e, 500, "server_error", "", "", "out of memory");
        goto fail;
    }
    g->srv = s;
    g->sm = sm;
    g->model_index = (size_t)(sm - s->models);
    g->chat = chat;
    g->stream = q.stream;
    g->include_usage = q.include_usage;
    g->logprobs = q.logprobs;
    g->top = q.top_logprobs;
    g->echo = !chat && q.echo;
    g->created = (long)time(NULL);
    g->t_start = r->t_start;
    g->conn = r->conn;
    srv_make_id(g->id, sizeof g->id, chat ? "chatcmpl-" : "cmpl-");
    if (g->echo) {
        size_t need = 0;
        cit_detokenize(sm->tok, ids, n_ids, true, false, NULL, 0, &need, NULL, 0);
        g->echo_text = malloc(need + 1);
        if (g->echo_text &&
            cit_detokenize(sm->tok, ids, n_ids, true, false, g->echo_text, need + 1, &g->echo_len, NULL, 0) !=
                CIT_OK)
            g->echo_len = 0;
    }
    uint64_t seed = q.seed_given ? q.sampling.seed : random_seed();
    struct cit_gen_params gp = {.prompt = ids, .n_prompt = n_ids, .max_tokens = (uint32_t)max_tokens,
                                .sampling = q.sampling, .stop = q.stop, .n_stop = q.n_stop,
                                .logprobs = q.logprobs, .top_logprobs = q.top_logprobs,
                                .ignore_eos = q.ignore_eos};
    atomic_fetch_add(&s->in_flight, 1);
    for (size_t i = 0; i < q.n; i++) {
        gp.sampling.seed = seed + i;
        char err[512];
        enum cit_status st = cit_engine_submit(sm->eng, &gp, &g->ch[i].req, err, sizeof err);
        if (st != CIT_OK) {
            submit_error(st, err, &e);
            g->n = i + 1;
            cancel_all(g);
            if (i == 0)
                atomic_fetch_sub(&s->in_flight, 1);
            goto fail;
        }
        g->n = i + 1;
        if (q.logprobs)
            g->ch[i].logprobs = chat ? json_array() : completion_logprobs_new();
    }
    free(ids);
    srv_request_clear(&q);
    return g->stream ? answer_stream(r, g) : answer_whole(r, g);
fail:
    gen_free(g);
    free(ids);
    srv_request_clear(&q);
    return srv_reply_error(r, &e);
}

enum MHD_Result srv_handle_chat(struct srv_req *r, json_t *body)
{
    return generate(r, body, true);
}

enum MHD_Result srv_handle_completion(struct srv_req *r, json_t *body)
{
    return generate(r, body, false);
}
