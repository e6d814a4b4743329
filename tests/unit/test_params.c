/* test_params.c: unit tests for request-body parsing and the parameter
 * table (server/params.h).
 *
 * The expected ranges, defaults, types and messages are written out here
 * from the API contract (OpenAI's reference and the brief), not read from
 * the table under test, so a wrong row fails. Every error path also checks
 * that the message is printable ASCII (it goes into a JSON answer) and that
 * the request struct was cleared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citadel/sampler.h"
#include "server/params.h"

#define VOCAB 32000u
#define MAX_BODY (1u << 22)

/* ---- helpers ---------------------------------------------------------- */

static json_t *g_body;
static struct srv_request g_req;
static struct srv_error g_err;

static void reset(void)
{
    srv_request_clear(&g_req);
    json_decref(g_body);
    g_body = NULL;
    memset(&g_err, 0, sizeof g_err);
}

/* Parses a body of len bytes for ep into g_req (g_body keeps it alive). */
static bool run_len(enum srv_endpoint ep, const char *json, size_t len)
{
    reset();
    json_t *b;
    if (!srv_json_parse(json, len, MAX_BODY, &b, &g_err)) {
        assert_null(b);
        return false;
    }
    g_body = b;
    return srv_params_parse(ep, b, VOCAB, &g_req, &g_err);
}

static bool run(enum srv_endpoint ep, const char *json)
{
    return run_len(ep, json, strlen(json));
}

static const char *base(enum srv_endpoint ep)
{
    switch (ep) {
    case SRV_EP_CHAT: return "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]";
    case SRV_EP_COMPLETION: return "\"prompt\": \"hi\"";
    case SRV_EP_EMBEDDING: return "\"input\": \"hi\"";
    case SRV_EP_TOKENIZE: return "\"content\": \"hi\"";
    case SRV_EP_DETOKENIZE: return "\"tokens\": [1]";
    }
    return "";
}

/* "{<base>, <extra>}" in a static buffer (grown as needed). */
static const char *with(enum srv_endpoint ep, const char *extra)
{
    static char *buf;
    static size_t cap;
    size_t need = strlen(base(ep)) + strlen(extra) + 8;
    if (need > cap) {
        free(buf);
        cap = need * 2;
        buf = malloc(cap);
        assert_non_null(buf);
    }
    snprintf(buf, cap, "{%s%s%s}", base(ep), extra[0] ? ", " : "", extra);
    return buf;
}

static bool ascii_only(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static bool request_is_zero(const struct srv_request *r)
{
    static const struct srv_request zero;
    return memcmp(r, &zero, sizeof zero) == 0;
}

/* Runs json and checks it fails with status, param, code and a message
 * containing needle (NULL: any). Returns 0 or prints and returns -1. */
static int expect_err_len(enum srv_endpoint ep, const char *json, size_t len, int status, const char *param,
                          const char *code, const char *needle)
{
    if (run_len(ep, json, len)) {
        fprintf(stderr, "expected an error for %.200s\n", json);
        return -1;
    }
    bool ok = g_err.status == status && strcmp(g_err.param, param) == 0 && strcmp(g_err.code, code) == 0 &&
              (!needle || strstr(g_err.message, needle)) && ascii_only(g_err.message) && g_err.type &&
              strcmp(g_err.type, "invalid_request_error") == 0 && request_is_zero(&g_req);
    if (!ok) {
        fprintf(stderr, "body %.200s\n  want %d param=%s code=%s msg~%s\n  got  %d param=%s code=%s msg=%s\n", json,
                status, param, code, needle ? needle : "(any)", g_err.status, g_err.param, g_err.code,
                g_err.message);
        return -1;
    }
    return 0;
}

static int expect_err(enum srv_endpoint ep, const char *json, const char *param, const char *code,
                      const char *needle)
{
    return expect_err_len(ep, json, strlen(json), 400, param, code, needle);
}

static void expect_ok(enum srv_endpoint ep, const char *json)
{
    if (!run(ep, json))
        fail_msg("unexpected error for %.200s: %d %s %s: %s", json, g_err.status, g_err.param, g_err.code,
                 g_err.message);
}

static const enum srv_endpoint all_eps[] = {SRV_EP_CHAT, SRV_EP_COMPLETION, SRV_EP_EMBEDDING, SRV_EP_TOKENIZE,
                                            SRV_EP_DETOKENIZE};

/* ---- numeric rows ----------------------------------------------------- */

static double g_max_tokens(const struct srv_request *r) { return r->max_tokens; }
static double g_temperature(const struct srv_request *r) { return r->sampling.temperature; }
static double g_top_p(const struct srv_request *r) { return r->sampling.top_p; }
static double g_top_k(const struct srv_request *r) { return r->sampling.top_k; }
static double g_min_p(const struct srv_request *r) { return r->sampling.min_p; }
static double g_presence(const struct srv_request *r) { return r->sampling.presence_penalty; }
static double g_frequency(const struct srv_request *r) { return r->sampling.frequency_penalty; }
static double g_repeat(const struct srv_request *r) { return r->sampling.repeat_penalty; }
static double g_n(const struct srv_request *r) { return r->n; }
static double g_top_logprobs(const struct srv_request *r) { return r->top_logprobs; }

struct num_row {
    enum srv_endpoint ep;
    const char *name;
    bool integer;
    double lo, hi;
    bool excl;         /* lo itself is out of range */
    const char *range; /* as the message prints it */
    double def;
    const char *extra; /* other fields the row needs */
    double (*get)(const struct srv_request *r);
};

static const struct num_row num_rows[] = {
    {SRV_EP_CHAT, "max_tokens", true, 1, 1048576, false, "[1, 1048576]", 0, "", g_max_tokens},
    {SRV_EP_CHAT, "max_completion_tokens", true, 1, 1048576, false, "[1, 1048576]", 0, "", g_max_tokens},
    {SRV_EP_COMPLETION, "max_tokens", true, 1, 1048576, false, "[1, 1048576]", 16, "", g_max_tokens},
    {SRV_EP_CHAT, "temperature", false, 0, 2, false, "[0, 2]", 1, "", g_temperature},
    {SRV_EP_COMPLETION, "temperature", false, 0, 2, false, "[0, 2]", 1, "", g_temperature},
    {SRV_EP_CHAT, "top_p", false, 0, 1, false, "[0, 1]", 1, "", g_top_p},
    {SRV_EP_COMPLETION, "top_p", false, 0, 1, false, "[0, 1]", 1, "", g_top_p},
    {SRV_EP_CHAT, "top_k", true, -1, 1048576, false, "[-1, 1048576]", -1, "", g_top_k},
    {SRV_EP_COMPLETION, "top_k", true, -1, 1048576, false, "[-1, 1048576]", -1, "", g_top_k},
    {SRV_EP_CHAT, "min_p", false, 0, 1, false, "[0, 1]", 0, "", g_min_p},
    {SRV_EP_COMPLETION, "min_p", false, 0, 1, false, "[0, 1]", 0, "", g_min_p},
    {SRV_EP_CHAT, "presence_penalty", false, -2, 2, false, "[-2, 2]", 0, "", g_presence},
    {SRV_EP_COMPLETION, "presence_penalty", false, -2, 2, false, "[-2, 2]", 0, "", g_presence},
    {SRV_EP_CHAT, "frequency_penalty", false, -2, 2, false, "[-2, 2]", 0, "", g_frequency},
    {SRV_EP_COMPLETION, "frequency_penalty", false, -2, 2, false, "[-2, 2]", 0, "", g_frequency},
    {SRV_EP_CHAT, "repetition_penalty", false, 0, 10, true, "(0, 10]", 1, "", g_repeat},
    {SRV_EP_COMPLETION, "repetition_penalty", false, 0, 10, true, "(0, 10]", 1, "", g_repeat},
    {SRV_EP_CHAT, "n", true, 1, 16, false, "[1, 16]", 1, "", g_n},
    {SRV_EP_COMPLETION, "n", true, 1, 16, false, "[1, 16]", 1, "", g_n},
    {SRV_EP_CHAT, "top_logprobs", true, 0, 20, false, "[0, 20]", 0, "\"logprobs\": true", g_top_logprobs},
    {SRV_EP_COMPLETION, "logprobs", true, 0, 20, false, "[0, 20]", 0, "", g_top_logprobs},
};

static const char *field_json(const struct num_row *r, const char *value)
{
    static char extra[256];
    snprintf(extra, sizeof extra, "%s%s\"%s\": %s", r->extra, r->extra[0] ? ", " : "", r->name, value);
    return with(r->ep, extra);
}

static void test_numeric_rows(void **state)
{
    char v[64], msg[160];
    for (size_t i = 0; i < sizeof num_rows / sizeof num_rows[0]; i++) {
        const struct num_row *r = &num_rows[i];
        const char *want = r->integer ? "an integer" : "a number";
        /* wrong types */
        const char *bad[] = {"\"1\"", "true", "[1]", "{}"};
        const char *got[] = {"string", "boolean", "array", "object"};
        for (size_t k = 0; k < 4; k++) {
            snprintf(msg, sizeof msg, "%s must be %s; got %s", r->name, want, got[k]);
            assert_int_equal(expect_err(r->ep, field_json(r, bad[k]), r->name, "invalid_type", msg), 0);
        }
        /* below min, above max */
        double below = r->excl ? r->lo : r->integer ? r->lo - 1 : r->lo - 0.25;
        double above = r->integer ? r->hi + 1 : r->hi + 0.25;
        snprintf(v, sizeof v, "%.17g", below);
        snprintf(msg, sizeof msg, "%s must be in %s; got %s", r->name, r->range, v);
        assert_int_equal(expect_err(r->ep, field_json(r, v), r->name, "invalid_value", msg), 0);
        snprintf(v, sizeof v, "%.17g", above);
        snprintf(msg, sizeof msg, "%s must be in %s; got %s", r->name, r->range, v);
        assert_int_equal(expect_err(r->ep, field_json(r, v), r->name, "invalid_value", msg), 0);
        /* the limits themselves (top_p 0 is remapped: test_top_p_zero) */
        if (!r->excl && !(r->get == g_top_p && r->lo == 0)) {
            snprintf(v, sizeof v, "%.17g", r->lo);
            expect_ok(r->ep, field_json(r, v));
            assert_true(r->get(&g_req) == (r->integer ? r->lo : (double)(float)r->lo));
        }
        snprintf(v, sizeof v, "%.17g", r->hi);
        expect_ok(r->ep, field_json(r, v));
        assert_true(r->get(&g_req) == (r->integer ? r->hi : (double)(float)r->hi));
        /* null is absent: the default */
        expect_ok(r->ep, field_json(r, "null"));
        assert_true(r->get(&g_req) == r->def);
        if (r->integer) {
            /* 2.0-style numbers are integers; 2.5 is not */
            snprintf(v, sizeof v, "%.1f", r->hi);
            expect_ok(r->ep, field_json(r, v));
            assert_true(r->get(&g_req) == r->hi);
            snprintf(v, sizeof v, "%.1f", r->lo + 0.5);
            snprintf(msg, sizeof msg, "%s must be an integer; got %s", r->name, v);
            assert_int_equal(expect_err(r->ep, field_json(r, v), r->name, "invalid_type", msg), 0);
            assert_int_equal(expect_err(r->ep, field_json(r, "1e300"), r->name, "invalid_value", "got 1e+300"), 0);
        } else {
            /* an integer is a number */
            snprintf(v, sizeof v, "%d", (int)r->hi);
            expect_ok(r->ep, field_json(r, v));
            assert_true(r->get(&g_req) == (double)(float)(int)r->hi);
        }
        /* default when absent */
        expect_ok(r->ep, with(r->ep, r->extra));
        assert_true(r->get(&g_req) == r->def);
        /* not a parameter of the other endpoints: ignored there */
        for (size_t k = 0; k < 5; k++)
            if (all_eps[k] != r->ep && all_eps[k] != SRV_EP_CHAT && all_eps[k] != SRV_EP_COMPLETION) {
                char extra[96];
                snprintf(extra, sizeof extra, "\"%s\": \"ignored\"", r->name);
                expect_ok(all_eps[k], with(all_eps[k], extra));
            }
    }
    reset();
}

/* ---- bool and string rows --------------------------------------------- */

struct bool_row {
    enum srv_endpoint ep;
    const char *name;
    bool def;
    size_t off;
};

#define BOFF(f) offsetof(struct srv_request, f)
static const struct bool_row bool_rows[] = {
    {SRV_EP_CHAT, "stream", false, BOFF(stream)},
    {SRV_EP_COMPLETION, "stream", false, BOFF(stream)},
    {SRV_EP_CHAT, "logprobs", false, BOFF(logprobs)},
    {SRV_EP_COMPLETION, "echo", false, BOFF(echo)},
    {SRV_EP_CHAT, "ignore_eos", false, BOFF(ignore_eos)},
    {SRV_EP_COMPLETION, "ignore_eos", false, BOFF(ignore_eos)},
    {SRV_EP_TOKENIZE, "add_special", true, BOFF(add_special)},
    {SRV_EP_TOKENIZE, "with_pieces", false, BOFF(with_pieces)},
};

static bool bool_at(const struct srv_request *r, size_t off)
{
    return *(const bool *)((const char *)r + off);
}

static void test_bool_rows(void **state)
{
    char extra[96], msg[128];
    for (size_t i = 0; i < sizeof bool_rows / sizeof bool_rows[0]; i++) {
        const struct bool_row *r = &bool_rows[i];
        const char *bad[] = {"1", "0", "\"true\"", "[]", "{}"};
        const char *got[] = {"number", "number", "string", "array", "object"};
        for (size_t k = 0; k < 5; k++) {
            snprintf(extra, sizeof extra, "\"%s\": %s", r->name, bad[k]);
            snprintf(msg, sizeof msg, "%s must be a boolean; got %s", r->name, got[k]);
            assert_int_equal(expect_err(r->ep, with(r->ep, extra), r->name, "invalid_type", msg), 0);
        }
        for (int b = 0; b < 2; b++) {
            snprintf(extra, sizeof extra, "\"%s\": %s", r->name, b ? "true" : "false");
            expect_ok(r->ep, with(r->ep, extra));
            assert_int_equal(bool_at(&g_req, r->off), b);
        }
        snprintf(extra, sizeof extra, "\"%s\": null", r->name);
        expect_ok(r->ep, with(r->ep, extra));
        assert_int_equal(bool_at(&g_req, r->off), r->def);
        expect_ok(r->ep, with(r->ep, ""));
        assert_int_equal(bool_at(&g_req, r->off), r->def);
    }
    reset();
}

static void test_string_rows(void **state)
{
    char *extra = malloc(2048);
    assert_non_null(extra);
    enum srv_endpoint eps[] = {SRV_EP_CHAT, SRV_EP_COMPLETION, SRV_EP_EMBEDDING};
    for (size_t k = 0; k < 3; k++) {
        enum srv_endpoint ep = eps[k];
        expect_ok(ep, with(ep, ""));
        assert_string_equal(g_req.model, "");
        assert_string_equal(g_req.user, "");
        expect_ok(ep, with(ep, "\"model\": \"tiny\", \"user\": \"u-1\""));
        assert_string_equal(g_req.model, "tiny");
        assert_string_equal(g_req.user, "u-1");
        assert_int_equal(expect_err(ep, with(ep, "\"model\": 5"), "model", "invalid_type",
                                    "model must be a string; got number"),
                         0);
        assert_int_equal(expect_err(ep, with(ep, "\"user\": false"), "user", "invalid_type",
                                    "user must be a string; got boolean"),
                         0);
        /* user: at most 256 bytes (UTF-8 bytes, not characters) */
        strcpy(extra, "\"user\": \"");
        for (int i = 0; i < 128; i++)
            strcat(extra, "\xc3\xa9"); /* e-acute: 2 bytes */
        strcat(extra, "\"");
        expect_ok(ep, with(ep, extra));
        assert_int_equal(strlen(g_req.user), 256);
        extra[strlen(extra) - 1] = '\0';
        strcat(extra, "x\"");
        assert_int_equal(expect_err(ep, with(ep, extra), "user", "invalid_value",
                                    "user must be at most 256 bytes; got 257"),
                         0);
    }
    free(extra);
    reset();
}

/* ---- defaults --------------------------------------------------------- */

static void check_gen_defaults(const struct srv_request *r)
{
    assert_true(r->sampling.temperature == 1.0f);
    assert_true(r->sampling.top_p == 1.0f);
    assert_int_equal(r->sampling.top_k, -1);
    assert_true(r->sampling.min_p == 0.0f);
    assert_true(r->sampling.presence_penalty == 0.0f);
    assert_true(r->sampling.frequency_penalty == 0.0f);
    assert_true(r->sampling.repeat_penalty == 1.0f);
    assert_int_equal(r->sampling.penalty_last_n, 0);
    assert_null(r->sampling.logit_bias);
    assert_int_equal(r->sampling.n_logit_bias, 0);
    assert_false(r->seed_given);
    assert_int_equal(r->n_stop, 0);
    assert_int_equal(r->n, 1);
    assert_false(r->stream);
    assert_false(r->include_usage);
    assert_false(r->logprobs);
    assert_int_equal(r->top_logprobs, 0);
    assert_false(r->echo);
    assert_false(r->ignore_eos);
    assert_string_equal(r->model, "");
    assert_string_equal(r->user, "");
}

static void test_defaults(void **state)
{
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, ""));
    assert_int_equal(g_req.ep, SRV_EP_CHAT);
    check_gen_defaults(&g_req);
    assert_int_equal(g_req.max_tokens, 0); /* chat: the rest of the context */
    assert_non_null(g_req.messages);
    assert_true(g_req.messages == json_object_get(g_body, "messages"));

    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, ""));
    assert_int_equal(g_req.ep, SRV_EP_COMPLETION);
    check_gen_defaults(&g_req);
    assert_int_equal(g_req.max_tokens, 16); /* OpenAI's legacy default */
    assert_string_equal(g_req.text, "hi");
    assert_int_equal(g_req.text_len, 2);
    assert_null(g_req.tokens);

    expect_ok(SRV_EP_TOKENIZE, with(SRV_EP_TOKENIZE, ""));
    assert_true(g_req.add_special);
    assert_false(g_req.with_pieces);
    assert_string_equal(g_req.text, "hi");

    /* the defaults make a sampler the sampler accepts */
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, ""));
    struct cit_sampler *s = NULL;
    char err[256];
    assert_int_equal(cit_sampler_new(&g_req.sampling, (int32_t)VOCAB, &s, err, sizeof err), CIT_OK);
    cit_sampler_free(s);
    reset();
}

/* Every parameter at once, checked field by field, then handed to the
 * sampler, whose own validation must accept it. */
static void test_full_request(void **state)
{
    expect_ok(SRV_EP_CHAT,
              "{\"model\": \"m\", \"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", "
              "\"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}],"
              " \"max_completion_tokens\": 7, \"temperature\": 0.5, \"top_p\": 0.9, \"top_k\": 40, \"min_p\": 0.05,"
              " \"presence_penalty\": 0.5, \"frequency_penalty\": -0.5, \"repetition_penalty\": 1.1, \"seed\": 42,"
              " \"logit_bias\": {\"5\": 2.5, \"31999\": -100}, \"stop\": [\"x\", \"yy\"], \"n\": 3, \"stream\": true,"
              " \"stream_options\": {\"include_usage\": true}, \"logprobs\": true, \"top_logprobs\": 5,"
              " \"user\": \"me\", \"ignore_eos\": true, \"unknown_future_field\": {\"x\": [1, 2]}}");
    struct srv_request *r = &g_req;
    assert_string_equal(r->model, "m");
    assert_int_equal(json_array_size(r->messages), 2);
    assert_int_equal(r->max_tokens, 7);
    assert_true(r->sampling.temperature == 0.5f);
    assert_true(r->sampling.top_p == 0.9f);
    assert_int_equal(r->sampling.top_k, 40);
    assert_true(r->sampling.min_p == 0.05f);
    assert_true(r->sampling.presence_penalty == 0.5f);
    assert_true(r->sampling.frequency_penalty == -0.5f);
    assert_true(r->sampling.repeat_penalty == 1.1f);
    assert_int_equal(r->sampling.penalty_last_n, -1);
    assert_true(r->seed_given);
    assert_int_equal(r->sampling.seed, 42);
    assert_int_equal(r->sampling.n_logit_bias, 2);
    assert_true(r->sampling.logit_bias == r->bias);
    float b5 = 0, b31999 = 0;
    for (size_t i = 0; i < 2; i++) {
        if (r->bias[i].token == 5)
            b5 = r->bias[i].bias;
        if (r->bias[i].token == 31999)
            b31999 = r->bias[i].bias;
    }
    assert_true(b5 == 2.5f && b31999 == -100.0f);
    assert_int_equal(r->n_stop, 2);
    assert_string_equal(r->stop[0], "x");
    assert_string_equal(r->stop[1], "yy");
    assert_int_equal(r->n, 3);
    assert_true(r->stream && r->include_usage && r->logprobs && r->ignore_eos);
    assert_int_equal(r->top_logprobs, 5);
    assert_string_equal(r->user, "me");
    struct cit_sampler *s = NULL;
    char err[256];
    assert_int_equal(cit_sampler_new(&r->sampling, (int32_t)VOCAB, &s, err, sizeof err), CIT_OK);
    cit_sampler_free(s);
    reset();
}

/* ---- cross-field rules ------------------------------------------------ */

static void test_top_p_zero(void **state)
{
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"top_p\": 0"));
    assert_true(g_req.sampling.top_p == 1e-9f);
    struct cit_sampler *s = NULL;
    char err[256];
    assert_int_equal(cit_sampler_new(&g_req.sampling, (int32_t)VOCAB, &s, err, sizeof err), CIT_OK);
    cit_sampler_free(s);
    reset();
}

static void test_penalty_window(void **state)
{
    const char *on[] = {"\"presence_penalty\": 0.1", "\"frequency_penalty\": -0.1", "\"repetition_penalty\": 1.05",
                        "\"repetition_penalty\": 0.9"};
    for (size_t i = 0; i < 4; i++) {
        expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, on[i]));
        assert_int_equal(g_req.sampling.penalty_last_n, -1);
    }
    const char *off[] = {"\"presence_penalty\": 0", "\"frequency_penalty\": 0.0", "\"repetition_penalty\": 1",
                         "\"temperature\": 0.3"};
    for (size_t i = 0; i < 4; i++) {
        expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, off[i]));
        assert_int_equal(g_req.sampling.penalty_last_n, 0);
    }
    reset();
}

static void test_max_tokens_precedence(void **state)
{
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"max_tokens\": 10"));
    assert_int_equal(g_req.max_tokens, 10);
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"max_tokens\": 10, \"max_completion_tokens\": 20"));
    assert_int_equal(g_req.max_tokens, 20);
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"max_completion_tokens\": 20, \"max_tokens\": 10"));
    assert_int_equal(g_req.max_tokens, 20);
    /* legacy completions have no max_completion_tokens: ignored */
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"max_completion_tokens\": 20"));
    assert_int_equal(g_req.max_tokens, 16);
    assert_int_equal(expect_err(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"max_tokens\": 0"), "max_tokens",
                                "invalid_value", "max_tokens must be in [1, 1048576]; got 0"),
                     0);
    reset();
}

static void test_stream_options(void **state)
{
    enum srv_endpoint eps[] = {SRV_EP_CHAT, SRV_EP_COMPLETION};
    for (size_t k = 0; k < 2; k++) {
        enum srv_endpoint ep = eps[k];
        expect_ok(ep, with(ep, "\"stream\": true, \"stream_options\": {\"include_usage\": true}"));
        assert_true(g_req.stream && g_req.include_usage);
        expect_ok(ep, with(ep, "\"stream\": true, \"stream_options\": {\"include_usage\": false}"));
        assert_false(g_req.include_usage);
        expect_ok(ep, with(ep, "\"stream\": true, \"stream_options\": {}"));
        assert_false(g_req.include_usage);
        expect_ok(ep, with(ep, "\"stream\": true, \"stream_options\": {\"include_usage\": null, \"other\": 1}"));
        assert_false(g_req.include_usage);
        expect_ok(ep, with(ep, "\"stream_options\": null"));
        assert_int_equal(expect_err(ep, with(ep, "\"stream_options\": {\"include_usage\": true}"), "stream_options",
                                    "invalid_value", "only allowed when stream is true"),
                         0);
        assert_int_equal(expect_err(ep, with(ep, "\"stream\": false, \"stream_options\": {}"), "stream_options",
                                    "invalid_value", NULL),
                         0);
        assert_int_equal(expect_err(ep, with(ep, "\"stream\": true, \"stream_options\": {\"include_usage\": \"yes\"}"),
                                    "stream_options.include_usage", "invalid_type",
                                    "stream_options.include_usage must be a boolean; got string"),
                         0);
        assert_int_equal(expect_err(ep, with(ep, "\"stream\": true, \"stream_options\": true"), "stream_options",
                                    "invalid_type", "stream_options must be an object; got boolean"),
                         0);
    }
    reset();
}

static void test_logprobs(void **state)
{
    /* chat: a boolean, with top_logprobs beside it */
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"logprobs\": true, \"top_logprobs\": 3"));
    assert_true(g_req.logprobs);
    assert_int_equal(g_req.top_logprobs, 3);
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"logprobs\": true"));
    assert_int_equal(g_req.top_logprobs, 0);
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"top_logprobs\": 3"), "top_logprobs",
                                "invalid_value", "top_logprobs requires logprobs to be true"),
                     0);
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"logprobs\": false, \"top_logprobs\": 0"),
                                "top_logprobs", "invalid_value", NULL),
                     0);
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"logprobs\": 5"), "logprobs", "invalid_type",
                                "logprobs must be a boolean; got number"),
                     0);
    /* completion: an integer, the number of alternatives; present = on */
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, ""));
    assert_false(g_req.logprobs);
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"logprobs\": null"));
    assert_false(g_req.logprobs);
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"logprobs\": 0"));
    assert_true(g_req.logprobs);
    assert_int_equal(g_req.top_logprobs, 0);
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"logprobs\": 5"));
    assert_true(g_req.logprobs);
    assert_int_equal(g_req.top_logprobs, 5);
    assert_int_equal(expect_err(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"logprobs\": true"), "logprobs",
                                "invalid_type", "logprobs must be an integer; got boolean"),
                     0);
    /* top_logprobs is not a completion parameter */
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"top_logprobs\": 99"));
    assert_false(g_req.logprobs);
    reset();
}

static void test_seed(void **state)
{
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, ""));
    assert_false(g_req.seed_given);
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"seed\": null"));
    assert_false(g_req.seed_given);
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"seed\": 0"));
    assert_true(g_req.seed_given);
    assert_int_equal(g_req.sampling.seed, 0);
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"seed\": -1"));
    assert_true(g_req.sampling.seed == UINT64_MAX);
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"seed\": 9223372036854775807"));
    assert_true(g_req.sampling.seed == (uint64_t)INT64_MAX);
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"seed\": -9223372036854775808"));
    assert_true(g_req.sampling.seed == (uint64_t)1 << 63);
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"seed\": 12.0"));
    assert_true(g_req.sampling.seed == 12);
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"seed\": 1.5"), "seed", "invalid_type",
                                "seed must be an integer; got 1.5"),
                     0);
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"seed\": \"7\""), "seed", "invalid_type",
                                "seed must be an integer; got string"),
                     0);
    /* a real past int64 is out of range; an integer literal past it is not JSON jansson holds */
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"seed\": 1e19"), "seed", "invalid_value", NULL), 0);
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"seed\": 9223372036854775808"), "", "invalid_json",
                                "too big"),
                     0);
    reset();
}

/* ---- messages --------------------------------------------------------- */

static void test_messages(void **state)
{
    const enum srv_endpoint C = SRV_EP_CHAT;
    expect_ok(C, "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"developer\", \"content\":"
                 " \"d\"}, {\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": null},"
                 " {\"role\": \"assistant\", \"tool_calls\": []}, {\"role\": \"tool\", \"content\": \"t\","
                 " \"tool_call_id\": \"x\"}, {\"role\": \"user\", \"content\": []}, {\"role\": \"assistant\","
                 " \"content\": [{\"type\": \"text\", \"text\": \"\"}]}]}");
    assert_int_equal(json_array_size(g_req.messages), 8);
    struct {
        const char *body, *param, *code, *needle;
    } bad[] = {
        {"{}", "messages", "missing_required_field", "messages is required"},
        {"{\"messages\": null}", "messages", "missing_required_field", NULL},
        {"{\"messages\": []}", "messages", "invalid_value", "non-empty"},
        {"{\"messages\": \"hi\"}", "messages", "invalid_type", "messages must be an array of messages; got string"},
        {"{\"messages\": {}}", "messages", "invalid_type", NULL},
        {"{\"messages\": [\"hi\"]}", "messages[0]", "invalid_type", "messages[0] must be an object; got string"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"content\": \"b\"}]}", "messages[1].role",
         "missing_required_field", "messages[1].role is required"},
        {"{\"messages\": [{\"role\": 1, \"content\": \"a\"}]}", "messages[0].role", "invalid_type",
         "messages[0].role must be a string; got number"},
        {"{\"messages\": [{\"role\": \"wizard\", \"content\": \"a\"}]}", "messages[0].role", "invalid_value",
         "got \"wizard\""},
        {"{\"messages\": [{\"role\": \"User\", \"content\": \"a\"}]}", "messages[0].role", "invalid_value", NULL},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\"}, {}]}",
         "messages[1].content", "missing_required_field", NULL},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"},"
         " {\"role\": \"user\", \"content\": null}]}",
         "messages[2].content", "missing_required_field", NULL},
        {"{\"messages\": [{\"role\": \"system\", \"content\": 5}]}", "messages[0].content", "invalid_type",
         "messages[0].content must be a string or array of text parts; got number"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [\"x\"]}]}", "messages[0].content[0]", "invalid_type",
         NULL},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {}}]}]}",
         "messages[0].content[0].type", "invalid_value", "got \"image_url\""},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"text\": \"x\"}]}]}", "messages[0].content[0].type",
         "missing_required_field", NULL},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": 3, \"text\": \"x\"}]}]}",
         "messages[0].content[0].type", "invalid_type", NULL},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\":"
         " \"text\"}]}]}",
         "messages[0].content[1].text", "missing_required_field", NULL},
        {"{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": [\"a\"]}]}]}",
         "messages[0].content[0].text", "invalid_type", "got array"},
        /* a role with bytes that are not printable ASCII is quoted safely */
        {"{\"messages\": [{\"role\": \"\\u00e9\\n\\\"\", \"content\": \"a\"}]}", "messages[0].role", "invalid_value",
         "got \"????\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(expect_err(C, bad[i].body, bad[i].param, bad[i].code, bad[i].needle), 0);
    /* a long path still fits param (63 bytes + NUL) */
    char *big = malloc(64 * 1024);
    assert_non_null(big);
    strcpy(big, "{\"messages\": [");
    for (int i = 0; i < 1000; i++)
        strcat(big, "{\"role\": \"user\", \"content\": \"a\"},");
    strcat(big, "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 1}]}]}");
    assert_int_equal(expect_err(C, big, "messages[1000].content[0].text", "invalid_type", NULL), 0);
    free(big);
    reset();
}

/* ---- prompt / input / tokenize / detokenize ---------------------------- */

static void test_prompt(void **state)
{
    const enum srv_endpoint P = SRV_EP_COMPLETION;
    expect_ok(P, "{\"prompt\": \"hello\"}");
    assert_string_equal(g_req.text, "hello");
    assert_int_equal(g_req.text_len, 5);
    expect_ok(P, "{\"prompt\": \"\"}");
    assert_int_equal(g_req.text_len, 0);
    expect_ok(P, "{\"prompt\": \"a\\u00e9\"}");
    assert_int_equal(g_req.text_len, 3);
    expect_ok(P, "{\"prompt\": [\"only\"]}");
    assert_string_equal(g_req.text, "only");
    expect_ok(P, "{\"prompt\": [1, 2, 31999, 0, 2.0]}");
    assert_null(g_req.text);
    assert_int_equal(g_req.n_tokens, 5);
    int32_t want[] = {1, 2, 31999, 0, 2};
    assert_memory_equal(g_req.tokens, want, sizeof want);
    expect_ok(P, "{\"prompt\": [[7, 8]]}");
    assert_int_equal(g_req.n_tokens, 2);
    assert_int_equal(g_req.tokens[1], 8);
    struct {
        const char *body, *param, *code, *needle;
    } bad[] = {
        {"{}", "prompt", "missing_required_field", "prompt is required"},
        {"{\"prompt\": null}", "prompt", "missing_required_field", NULL},
        {"{\"prompt\": 5}", "prompt", "invalid_type", "prompt must be a string or array of token ids; got number"},
        {"{\"prompt\": {}}", "prompt", "invalid_type", NULL},
        {"{\"prompt\": []}", "prompt", "invalid_value", "empty"},
        {"{\"prompt\": [[]]}", "prompt[0]", "invalid_value", "empty"},
        {"{\"prompt\": [\"a\", \"b\"]}", "prompt", "invalid_value", "exactly one"},
        {"{\"prompt\": [[1], [2]]}", "prompt", "invalid_value", "exactly one"},
        {"{\"prompt\": [1, \"a\"]}", "prompt[1]", "invalid_type", "prompt[1] must be an integer; got string"},
        {"{\"prompt\": [1, 2, 3, 70000]}", "prompt[3]", "invalid_value",
         "prompt[3] = 70000 is outside the vocabulary [0, 32000)"},
        {"{\"prompt\": [32000]}", "prompt[0]", "invalid_value", "prompt[0] = 32000 is outside the vocabulary"},
        {"{\"prompt\": [-1]}", "prompt[0]", "invalid_value", "prompt[0] = -1 is outside"},
        {"{\"prompt\": [1e300]}", "prompt[0]", "invalid_value", "outside the vocabulary"},
        {"{\"prompt\": [-5.0]}", "prompt[0]", "invalid_value", "outside the vocabulary"},
        {"{\"prompt\": [2.5]}", "prompt[0]", "invalid_type", "prompt[0] must be an integer; got 2.5"},
        {"{\"prompt\": [true]}", "prompt[0]", "invalid_type", NULL},
        {"{\"prompt\": [null]}", "prompt[0]", "invalid_type", NULL},
        {"{\"prompt\": [[1, null]]}", "prompt[0][1]", "invalid_type", NULL},
        {"{\"prompt\": [[1, 99999]]}", "prompt[0][1]", "invalid_value", "prompt[0][1] = 99999 is outside"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(expect_err(P, bad[i].body, bad[i].param, bad[i].code, bad[i].needle), 0);
    reset();
}

static void test_embedding_input(void **state)
{
    const enum srv_endpoint E = SRV_EP_EMBEDDING;
    expect_ok(E, "{\"input\": \"hello\"}");
    assert_int_equal(g_req.n_inputs, 1);
    assert_string_equal(g_req.inputs[0].text, "hello");
    assert_int_equal(g_req.inputs[0].text_len, 5);
    assert_string_equal(g_req.text, "hello");

    expect_ok(E, "{\"input\": [\"a\", \"bc\", \"def\"]}");
    assert_int_equal(g_req.n_inputs, 3);
    assert_string_equal(g_req.inputs[2].text, "def");
    assert_int_equal(g_req.inputs[1].text_len, 2);
    assert_null(g_req.inputs[0].tokens);

    expect_ok(E, "{\"input\": [5, 6, 7]}");
    assert_int_equal(g_req.n_inputs, 1);
    assert_int_equal(g_req.inputs[0].n_tokens, 3);
    assert_int_equal(g_req.inputs[0].tokens[2], 7);
    assert_int_equal(g_req.n_tokens, 3);
    assert_true(g_req.tokens != g_req.inputs[0].tokens); /* freed separately */
    assert_int_equal(g_req.tokens[0], 5);

    expect_ok(E, "{\"input\": [[1, 2], [3], [4, 5, 6]]}");
    assert_int_equal(g_req.n_inputs, 3);
    assert_int_equal(g_req.inputs[0].n_tokens, 2);
    assert_int_equal(g_req.inputs[1].tokens[0], 3);
    assert_int_equal(g_req.inputs[2].n_tokens, 3);
    assert_int_equal(g_req.inputs[2].tokens[2], 6);

    /* 256 inputs pass, 257 do not */
    char *big = malloc(16 * 1024);
    assert_non_null(big);
    strcpy(big, "{\"input\": [\"x\"");
    for (int i = 1; i < 256; i++)
        strcat(big, ", \"x\"");
    size_t pre = strlen(big);
    strcpy(big + pre, "]}");
    expect_ok(E, big);
    assert_int_equal(g_req.n_inputs, 256);
    strcpy(big + pre, ", \"x\"]}");
    assert_int_equal(expect_err(E, big, "input", "invalid_value", "input has 257 items; the limit is 256"), 0);
    /* a single array of 1000 ids is one input, not 1000 */
    strcpy(big, "{\"input\": [1");
    for (int i = 1; i < 1000; i++)
        strcat(big, ",1");
    strcat(big, "]}");
    expect_ok(E, big);
    assert_int_equal(g_req.n_inputs, 1);
    assert_int_equal(g_req.inputs[0].n_tokens, 1000);
    free(big);

    struct {
        const char *body, *param, *code, *needle;
    } bad[] = {
        {"{}", "input", "missing_required_field", NULL},
        {"{\"input\": null}", "input", "missing_required_field", NULL},
        {"{\"input\": \"\"}", "input", "invalid_value", "input must not be an empty string"},
        {"{\"input\": []}", "input", "invalid_value", "empty"},
        {"{\"input\": 3}", "input", "invalid_type", NULL},
        {"{\"input\": {}}", "input", "invalid_type", NULL},
        {"{\"input\": [\"a\", \"\"]}", "input[1]", "invalid_value", "empty"},
        {"{\"input\": [[1], []]}", "input[1]", "invalid_value", "empty"},
        {"{\"input\": [\"a\", [1]]}", "input[1]", "invalid_type", "input[1] must be a string; got array"},
        {"{\"input\": [[1], \"a\"]}", "input[1]", "invalid_type", "got string"},
        {"{\"input\": [1, \"a\"]}", "input[1]", "invalid_type", NULL},
        {"{\"input\": [1, [2]]}", "input[1]", "invalid_type", NULL},
        {"{\"input\": [[70000]]}", "input[0][0]", "invalid_value", "input[0][0] = 70000 is outside the vocabulary"},
        {"{\"input\": [[1, 1.5]]}", "input[0][1]", "invalid_type", NULL},
        {"{\"input\": [{}]}", "input[0]", "invalid_type", NULL},
        {"{\"input\": [null]}", "input[0]", "invalid_type", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(expect_err(E, bad[i].body, bad[i].param, bad[i].code, bad[i].needle), 0);
    reset();
}

static void test_tokenize(void **state)
{
    const enum srv_endpoint T = SRV_EP_TOKENIZE, D = SRV_EP_DETOKENIZE;
    expect_ok(T, "{\"content\": \"Hello world\", \"add_special\": false, \"with_pieces\": true}");
    assert_string_equal(g_req.text, "Hello world");
    assert_int_equal(g_req.text_len, 11);
    assert_false(g_req.add_special);
    assert_true(g_req.with_pieces);
    expect_ok(T, "{\"content\": \"\"}");
    assert_int_equal(g_req.text_len, 0);
    assert_int_equal(expect_err(T, "{}", "content", "missing_required_field", "content is required"), 0);
    assert_int_equal(expect_err(T, "{\"content\": [1]}", "content", "invalid_type",
                                "content must be a string; got array"),
                     0);
    assert_int_equal(expect_err(T, "{\"content\": 1}", "content", "invalid_type", NULL), 0);

    expect_ok(D, "{\"tokens\": [3, 2, 1]}");
    assert_int_equal(g_req.n_tokens, 3);
    assert_int_equal(g_req.tokens[0], 3);
    expect_ok(D, "{\"tokens\": []}");
    assert_int_equal(g_req.n_tokens, 0);
    assert_int_equal(expect_err(D, "{}", "tokens", "missing_required_field", NULL), 0);
    assert_int_equal(expect_err(D, "{\"tokens\": \"1 2\"}", "tokens", "invalid_type",
                                "tokens must be an array of token ids; got string"),
                     0);
    assert_int_equal(expect_err(D, "{\"tokens\": [1, 32000]}", "tokens[1]", "invalid_value",
                                "tokens[1] = 32000 is outside the vocabulary [0, 32000)"),
                     0);
    assert_int_equal(expect_err(D, "{\"tokens\": [[1]]}", "tokens[0]", "invalid_type", NULL), 0);
    /* detokenize takes no generation fields: they are ignored */
    expect_ok(D, "{\"tokens\": [1], \"temperature\": \"hot\", \"add_special\": 3}");
    reset();
}

/* ---- logit_bias and stop ------------------------------------------------ */

static void test_logit_bias(void **state)
{
    enum srv_endpoint eps[] = {SRV_EP_CHAT, SRV_EP_COMPLETION};
    for (size_t k = 0; k < 2; k++) {
        enum srv_endpoint ep = eps[k];
        expect_ok(ep, with(ep, "\"logit_bias\": {}"));
        assert_int_equal(g_req.sampling.n_logit_bias, 0);
        expect_ok(ep, with(ep, "\"logit_bias\": {\"0\": 100, \"007\": -100, \"31999\": 0.5}"));
        assert_int_equal(g_req.sampling.n_logit_bias, 3);
        int seen = 0;
        for (size_t i = 0; i < 3; i++) {
            const struct cit_logit_bias *b = &g_req.sampling.logit_bias[i];
            seen |= (b->token == 0 && b->bias == 100.0f) << 0;
            seen |= (b->token == 7 && b->bias == -100.0f) << 1;
            seen |= (b->token == 31999 && b->bias == 0.5f) << 2;
        }
        assert_int_equal(seen, 7);
        struct {
            const char *extra, *param, *code, *needle;
        } bad[] = {
            {"\"logit_bias\": {\"abc\": 1}", "logit_bias", "invalid_value", "logit_bias key \"abc\" is not a token id"},
            {"\"logit_bias\": {\"-1\": 1}", "logit_bias", "invalid_value", "\"-1\" is not a token id"},
            {"\"logit_bias\": {\"+1\": 1}", "logit_bias", "invalid_value", NULL},
            {"\"logit_bias\": {\" 1\": 1}", "logit_bias", "invalid_value", NULL},
            {"\"logit_bias\": {\"1.0\": 1}", "logit_bias", "invalid_value", NULL},
            {"\"logit_bias\": {\"\": 1}", "logit_bias", "invalid_value", NULL},
            {"\"logit_bias\": {\"99999999999\": 1}", "logit_bias", "invalid_value",
             "logit_bias key \"99999999999\" is outside the vocabulary [0, 32000)"},
            {"\"logit_bias\": {\"999999999999999999999999999999\": 1}", "logit_bias", "invalid_value",
             "outside the vocabulary"},
            {"\"logit_bias\": {\"32000\": 1}", "logit_bias", "invalid_value", "outside the vocabulary [0, 32000)"},
            {"\"logit_bias\": {\"5\": 100.5}", "logit_bias.5", "invalid_value",
             "logit_bias.5 must be in [-100, 100]; got 100.5"},
            {"\"logit_bias\": {\"5\": -101}", "logit_bias.5", "invalid_value", "got -101"},
            {"\"logit_bias\": {\"5\": \"1\"}", "logit_bias.5", "invalid_type",
             "logit_bias.5 must be a number; got string"},
            {"\"logit_bias\": {\"5\": null}", "logit_bias.5", "invalid_type", NULL},
            {"\"logit_bias\": [1]", "logit_bias", "invalid_type", "logit_bias must be an object; got array"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
            assert_int_equal(expect_err(ep, with(ep, bad[i].extra), bad[i].param, bad[i].code, bad[i].needle), 0);
    }
    /* SRV_MAX_LOGIT_BIAS entries pass, one more does not */
    char *big = malloc(64 * 1024);
    assert_non_null(big);
    strcpy(big, "\"logit_bias\": {\"0\": 1");
    for (int i = 1; i < 1024; i++)
        sprintf(big + strlen(big), ", \"%d\": 1", i);
    strcat(big, "}");
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, big));
    assert_int_equal(g_req.sampling.n_logit_bias, 1024);
    big[strlen(big) - 1] = '\0';
    strcat(big, ", \"1024\": 1}");
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, big), "logit_bias", "invalid_value",
                                "logit_bias has 1025 entries; the limit is 1024"),
                     0);
    free(big);
    reset();
}

static void test_stop(void **state)
{
    const enum srv_endpoint C = SRV_EP_COMPLETION;
    expect_ok(C, with(C, "\"stop\": \"\\n\""));
    assert_int_equal(g_req.n_stop, 1);
    assert_string_equal(g_req.stop[0], "\n");
    expect_ok(C, with(C, "\"stop\": [\"a\", \"b\", \"c\", \"d\"]"));
    assert_int_equal(g_req.n_stop, 4);
    assert_string_equal(g_req.stop[3], "d");
    expect_ok(C, with(C, "\"stop\": []"));
    assert_int_equal(g_req.n_stop, 0);
    expect_ok(C, with(C, "\"stop\": null"));
    assert_int_equal(g_req.n_stop, 0);
    assert_int_equal(expect_err(C, with(C, "\"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]"), "stop", "invalid_value",
                                "stop has 5 strings; the limit is 4"),
                     0);
    assert_int_equal(expect_err(C, with(C, "\"stop\": \"\""), "stop", "invalid_value",
                                "stop must be 1..256 bytes long; got 0"),
                     0);
    assert_int_equal(expect_err(C, with(C, "\"stop\": [\"a\", \"\"]"), "stop[1]", "invalid_value", NULL), 0);
    assert_int_equal(expect_err(C, with(C, "\"stop\": [1]"), "stop[0]", "invalid_type",
                                "stop[0] must be a string; got number"),
                     0);
    assert_int_equal(expect_err(C, with(C, "\"stop\": [null]"), "stop[0]", "invalid_type", NULL), 0);
    assert_int_equal(expect_err(C, with(C, "\"stop\": 5"), "stop", "invalid_type",
                                "stop must be a string or array of strings; got number"),
                     0);
    /* 256 bytes pass, 257 do not */
    char extra[600];
    strcpy(extra, "\"stop\": [\"");
    memset(extra + strlen(extra), 'z', 256);
    strcpy(extra + 10 + 256, "\"]");
    expect_ok(C, with(C, extra));
    assert_int_equal(strlen(g_req.stop[0]), 256);
    strcpy(extra + 10 + 256, "z\"]");
    assert_int_equal(expect_err(C, with(C, extra), "stop[0]", "invalid_value", "got 257"), 0);
    reset();
}

/* ---- srv_json_parse --------------------------------------------------- */

static int parse_err(const char *body, size_t len, size_t max, int status, const char *code, const char *needle)
{
    json_t *j = (json_t *)1;
    struct srv_error e;
    memset(&e, 0, sizeof e);
    if (srv_json_parse(body, len, max, &j, &e)) {
        json_decref(j);
        fprintf(stderr, "expected a parse error for %.100s\n", body);
        return -1;
    }
    if (j != NULL || e.status != status || strcmp(e.code, code) != 0 || strcmp(e.param, "") != 0 ||
        (needle && !strstr(e.message, needle)) || !ascii_only(e.message)) {
        fprintf(stderr, "body %.100s\n  want %d %s ~%s\n  got %d %s %s\n", body, status, code, needle ? needle : "",
                e.status, e.code, e.message);
        return -1;
    }
    return 0;
}

static void parse_ok(const char *body, size_t len)
{
    json_t *j = NULL;
    struct srv_error e;
    if (!srv_json_parse(body, len, MAX_BODY, &j, &e))
        fail_msg("unexpected parse error for %.100s: %s", body, e.message);
    assert_true(json_is_object(j));
    json_decref(j);
}

static void test_json_size(void **state)
{
    const char *b = "{\"a\": 1}"; /* 8 bytes */
    json_t *j = NULL;
    struct srv_error e;
    assert_true(srv_json_parse(b, 8, 8, &j, &e));
    json_decref(j);
    assert_int_equal(parse_err(b, 8, 7, 413, "request_too_large", "request body is 8 bytes; the limit is 7"), 0);
    assert_int_equal(parse_err("", 0, 100, 400, "invalid_json", NULL), 0);
    assert_int_equal(parse_err(NULL, 0, 100, 400, "invalid_json", NULL), 0);
}

/* {"a": [[[...]]]}: the object is depth 1, so n arrays make depth n + 1. */
static char *nested(int arrays, const char *inner)
{
    char *s = malloc((size_t)arrays * 2 + strlen(inner) + 16);
    assert_non_null(s);
    strcpy(s, "{\"a\": ");
    size_t o = strlen(s);
    for (int i = 0; i < arrays; i++)
        s[o++] = '[';
    strcpy(s + o, inner);
    o += strlen(inner);
    for (int i = 0; i < arrays; i++)
        s[o++] = ']';
    strcpy(s + o, "}");
    return s;
}

static void test_json_depth(void **state)
{
    char *s = nested(SRV_JSON_MAX_DEPTH - 1, "");
    parse_ok(s, strlen(s)); /* exactly the limit */
    free(s);
    s = nested(SRV_JSON_MAX_DEPTH, "");
    assert_int_equal(parse_err(s, strlen(s), MAX_BODY, 400, "json_too_deep", "the limit is 64"), 0);
    free(s);
    s = nested(SRV_JSON_MAX_DEPTH - 2, "{}"); /* objects count too */
    parse_ok(s, strlen(s));
    free(s);
    s = nested(SRV_JSON_MAX_DEPTH - 1, "{}");
    assert_int_equal(parse_err(s, strlen(s), MAX_BODY, 400, "json_too_deep", NULL), 0);
    free(s);
    /* deep but sequential is fine: depth, not count */
    s = malloc(64 * 1024);
    assert_non_null(s);
    strcpy(s, "{\"a\": [");
    for (int i = 0; i < 5000; i++)
        strcat(s, i ? ",[]" : "[]");
    strcat(s, "]}");
    parse_ok(s, strlen(s));
    /* brackets inside strings (escaped quotes included) do not count */
    strcpy(s, "{\"a\": \"\\\"");
    for (int i = 0; i < 1000; i++)
        strcat(s, "[{");
    strcat(s, "\"}");
    parse_ok(s, strlen(s));
    /* 100k opening brackets: rejected by the scan, never reaching jansson */
    char *deep = malloc(100001);
    assert_non_null(deep);
    memset(deep, '[', 100000);
    deep[100000] = '\0';
    assert_int_equal(parse_err(deep, 100000, MAX_BODY, 400, "json_too_deep", NULL), 0);
    free(deep);
    free(s);
}

static void test_json_invalid(void **state)
{
    struct {
        const char *body;
        size_t len;
        const char *code, *needle;
    } bad[] = {
        {"{", 1, "invalid_json", "line 1"},
        {"{\"a\": 1,}", 9, "invalid_json", NULL},
        {"{\"a\" 1}", 7, "invalid_json", NULL},
        {"{} x", 4, "invalid_json", NULL},
        {"{}\0", 3, "invalid_json", NULL},         /* a NUL byte after the object */
        {"{\"a\": \"x\0y\"}", 12, "invalid_json", NULL}, /* a raw NUL inside a string */
        {"{\"a\": \"\\u0000\"}", 15, "invalid_json", NULL},
        {"{\"a\": \"\xff\"}", 10, "invalid_json", "(byte 7): unable to decode byte 0xff"},
        {"{\"a\": \"\xc0\xaf\"}", 11, "invalid_json", NULL},        /* overlong '/' */
        {"{\"a\": \"\xed\xa0\x80\"}", 12, "invalid_json", NULL},   /* a UTF-16 surrogate */
        {"{\"a\": \"\xf4\x90\x80\x80\"}", 13, "invalid_json", NULL}, /* past U+10FFFF */
        {"{\"a\": \"\xe2\x82\"}", 11, "invalid_json", NULL},       /* truncated sequence */
        {"{\"\xff\": 1}", 8, "invalid_json", NULL},               /* in a key */
        {"{\"a\": 1e400}", 12, "invalid_json", NULL},             /* jansson: real number overflow */
        {"{\"a\": -1e400}", 13, "invalid_json", NULL},
        {"{\"a\": 99999999999999999999}", 27, "invalid_json", "too big"},
        {"{\"a\": NaN}", 10, "invalid_json", NULL},
        {"{\"a\": Infinity}", 15, "invalid_json", NULL},
        {"{\"a\": 01}", 9, "invalid_json", NULL},
        {"{\"a\": 'x'}", 10, "invalid_json", NULL},
        {"{\"a\": 1, \"a\": 2}", 16, "duplicate_key", "duplicate object key near '\"a\"'"},
        {"[1, 2]", 6, "invalid_type", "request body must be a JSON object; got array"},
        {"\"s\"", 3, "invalid_type", "got string"},
        {"5", 1, "invalid_type", "got number"},
        {"null", 4, "invalid_type", "got null"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_err(bad[i].body, bad[i].len, MAX_BODY, 400, bad[i].code, bad[i].needle), 0);
    /* the error names line and column */
    assert_int_equal(parse_err("{\n\"a\": 1,\n\"b\": x}", 17, MAX_BODY, 400, "invalid_json", "line 3"), 0);
    /* valid forms: whitespace, escapes, 4-byte UTF-8, tiny reals (1e-400 underflows to 0) */
    const char *good[] = {" \t\r\n{ } \n", "{\"a\": \"\\ud83d\\ude00 \xf0\x9f\x98\x80 \\\" \\\\ \\/\"}",
                          "{\"a\": 1e-400}", "{\"a\": -0, \"b\": 1E+2, \"c\": [true, false, null]}"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        parse_ok(good[i], strlen(good[i]));
    /* 1e-400 reaches a number field as 0 */
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"temperature\": 1e-400"));
    assert_true(g_req.sampling.temperature == 0.0f);
    reset();
}

/* Unknown fields and fields of other endpoints are ignored (OpenAI's rule). */
static void test_unknown_fields(void **state)
{
    expect_ok(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"tools\": [{}], \"response_format\": 3, \"prompt\": 5, \"echo\": 1"));
    expect_ok(SRV_EP_COMPLETION, with(SRV_EP_COMPLETION, "\"messages\": 5, \"suffix\": null, \"best_of\": \"x\""));
    expect_ok(SRV_EP_EMBEDDING, with(SRV_EP_EMBEDDING, "\"encoding_format\": \"float\", \"stream\": 5"));
    expect_ok(SRV_EP_TOKENIZE, with(SRV_EP_TOKENIZE, "\"model\": 5, \"tokens\": \"x\""));
    /* srv_params_parse on a non-object fails cleanly */
    json_t *arr = json_array();
    struct srv_request r;
    struct srv_error e;
    assert_false(srv_params_parse(SRV_EP_CHAT, arr, VOCAB, &r, &e));
    assert_int_equal(e.status, 400);
    assert_true(request_is_zero(&r));
    json_decref(arr);
    /* ep must be exactly one endpoint: a caller bug, a 500 */
    json_t *obj = json_object();
    enum srv_endpoint bad_eps[] = {0, SRV_EP_CHAT | SRV_EP_COMPLETION, 1u << 5};
    for (size_t i = 0; i < 3; i++) {
        assert_false(srv_params_parse(bad_eps[i], obj, VOCAB, &r, &e));
        assert_int_equal(e.status, 500);
        assert_true(request_is_zero(&r));
    }
    json_decref(obj);
    /* clearing a zeroed request is fine, twice */
    memset(&r, 0, sizeof r);
    srv_request_clear(&r);
    srv_request_clear(&r);
    srv_request_clear(NULL);
    reset();
}

/* An error after allocation (tokens parsed, then a bad later field) frees
 * everything (ASan checks the leak) and leaves the struct zeroed. */
static void test_error_after_alloc(void **state)
{
    assert_int_equal(expect_err(SRV_EP_COMPLETION, "{\"prompt\": [1, 2, 3], \"logit_bias\": {\"1\": 2}, \"n\": 99}",
                                "n", "invalid_value", NULL),
                     0);
    assert_int_equal(expect_err(SRV_EP_EMBEDDING, "{\"input\": [[1], [2], [\"x\"]]}", "input[2][0]", "invalid_type",
                                NULL),
                     0);
    assert_int_equal(expect_err(SRV_EP_CHAT, with(SRV_EP_CHAT, "\"logit_bias\": {\"1\": 2, \"2\": \"x\"}"),
                                "logit_bias.2", "invalid_type", NULL),
                     0);
    reset();
}

static void test_srv_fail(void **state)
{
    struct srv_error e;
    char longp[200];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_false(srv_fail(&e, 404, "not_found_error", longp, "model_not_found", "model %s not found", "x"));
    assert_int_equal(e.status, 404);
    assert_string_equal(e.type, "not_found_error");
    assert_int_equal(strlen(e.param), sizeof e.param - 1);
    assert_string_equal(e.code, "model_not_found");
    assert_string_equal(e.message, "model x not found");
    assert_false(srv_fail(&e, 500, NULL, NULL, NULL, "%s", "m"));
    assert_string_equal(e.param, "");
    assert_string_equal(e.code, "");
    assert_false(srv_fail(NULL, 500, NULL, NULL, NULL, "x"));
}

/* ---- srv_params_doc --------------------------------------------------- */

static void test_doc(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    srv_params_doc(f);
    fclose(f);
    assert_non_null(strstr(buf, "| Parameter | Type | Range | Default | Endpoints | Meaning |"));
    const char *names[] = {"model", "messages", "prompt", "input", "content", "tokens", "add_special",
                           "with_pieces", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
                           "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "seed",
                           "logit_bias", "stop", "n", "stream", "stream_options", "logprobs", "top_logprobs", "echo",
                           "user", "ignore_eos"};
    char needle[64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(needle, sizeof needle, "| `%s` |", names[i]);
        if (!strstr(buf, needle))
            fail_msg("doc lacks %s", names[i]);
    }
    /* a few rows in full detail */
    assert_non_null(strstr(buf, "| `temperature` | number | [0, 2] | 1 | chat, completions |"));
    assert_non_null(strstr(buf, "| `repetition_penalty` | number | (0, 10] | 1 |"));
    assert_non_null(strstr(buf, "| `max_tokens` | integer | [1, 1048576] | 16 | completions |"));
    assert_non_null(strstr(buf, "| `messages` | array of messages | at least 1 | required | chat |"));
    assert_non_null(strstr(buf, "| `add_special` | boolean | - | true | tokenize |"));
    /* every line is a table row of 6 cells, ASCII only */
    size_t lines = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        int bars = 0;
        for (char *p = line; *p; p++)
            bars += *p == '|';
        assert_int_equal(bars, 7);
        assert_true(ascii_only(line));
    }
    assert_true(lines >= 2 + sizeof names / sizeof names[0]);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric_rows),
        cmocka_unit_test(test_bool_rows),
        cmocka_unit_test(test_string_rows),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_request),
        cmocka_unit_test(test_top_p_zero),
        cmocka_unit_test(test_penalty_window),
        cmocka_unit_test(test_max_tokens_precedence),
        cmocka_unit_test(test_stream_options),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_prompt),
        cmocka_unit_test(test_embedding_input),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_json_size),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_json_invalid),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_error_after_alloc),
        cmocka_unit_test(test_srv_fail),
        cmocka_unit_test(test_doc),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    reset();
    return rc;
}
