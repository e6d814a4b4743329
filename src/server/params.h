/* params.h: the one table of every request parameter the HTTP API accepts
 * (field, JSON type, range, default, which endpoints), and validation of a
 * request body against it.
 *
 * Request bodies are attacker-controlled. srv_json_parse checks the raw
 * bytes first (size, nesting depth, UTF-8) and then parses with jansson;
 * srv_params_parse checks every field against the table and fills a plain
 * struct. Any problem becomes a struct srv_error with the HTTP status, the
 * OpenAI error type, the offending field (param) and a message naming the
 * field, the value and the limit, e.g.
 *   400 invalid_request_error param "temperature":
 *   "temperature must be in [0, 2]; got 3.5".
 * Unknown fields are ignored (as OpenAI does), so clients that send newer
 * fields keep working. The same table produces the parameter reference in
 * docs/api.md (srv_params_doc), so the two cannot drift apart. */
#ifndef CITADEL_SERVER_PARAMS_H
#define CITADEL_SERVER_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "citadel/engine.h"
#include "citadel/sampler.h"

#define SRV_JSON_MAX_DEPTH 64 /* nesting of arrays/objects in a request body */
#define SRV_MAX_N 16          /* choices per request (`n`) */
#define SRV_MAX_LOGIT_BIAS 1024

enum srv_endpoint {
    SRV_EP_CHAT = 1u << 0,       /* POST /v1/chat/completions */
    SRV_EP_COMPLETION = 1u << 1, /* POST /v1/completions */
    SRV_EP_EMBEDDING = 1u << 2,  /* POST /v1/embeddings */
    SRV_EP_TOKENIZE = 1u << 3,   /* POST /tokenize */
    SRV_EP_DETOKENIZE = 1u << 4, /* POST /detokenize */
};

/* An error answer: {"error": {"message", "type", "param", "code"}} with
 * HTTP status `status`. param/code "" are sent as null. */
struct srv_error {
    int status;       /* 400, 404, 413, 429, 500, 503 ... */
    const char *type; /* "invalid_request_error", "not_found_error", "server_error", ... (static) */
    char param[64];
    char code[48];    /* "context_length_exceeded", "model_not_found", "invalid_value", ... */
    char message[512];
};

/* printf-style fill of e; returns false so parsers can `return srv_fail(...)`. */
bool srv_fail(struct srv_error *e, int status, const char *type, const char *param, const char *code,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Parses a request body. Checks, in order: len <= max_bytes (413
 * "request body is N bytes; the limit is M"), nesting depth <=
 * SRV_JSON_MAX_DEPTH outside strings (400), valid JSON and valid UTF-8
 * (400 naming the byte offset), top level is an object (400). On success
 * *out is a new reference the caller json_decref's. */
bool srv_json_parse(const char *body, size_t len, size_t max_bytes, json_t **out, struct srv_error *e);

/* A validated generation / embedding / tokenize request. Pointers are
 * borrowed from the json_t body (valid while it is) unless noted. */
struct srv_request {
    enum srv_endpoint ep;
    const char *model;       /* "model" ("" when absent; the server picks the only model) */
    /* chat: the "messages" array (each {"role": string, "content": string or
     * array of {"type":"text","text":...} parts, or null for assistant}),
     * checked non-empty with known roles (system, user, assistant, tool, developer). */
    const json_t *messages;
    /* completion / embedding / tokenize: "prompt" (completion), "input"
     * (embedding), "content" (tokenize): a string, or an array of token ids
     * (then tokens/n_tokens, malloc'd, freed by srv_request_clear). For
     * embeddings an array of strings / array of arrays of ids is several
     * inputs: n_inputs of them in inputs[] (each a string or a token array). */
    const char *text;
    size_t text_len;
    int32_t *tokens;
    size_t n_tokens;
    struct srv_input {
        const char *text;
        size_t text_len;
        int32_t *tokens; /* malloc'd */
        size_t n_tokens;
    } *inputs;           /* malloc'd; embeddings only */
    size_t n_inputs;
    /* generation */
    uint32_t max_tokens;        /* max_tokens / max_completion_tokens; 0 = not given */
    struct cit_sampler_params sampling; /* logit_bias points to `bias` below */
    struct cit_logit_bias *bias; /* malloc'd, n = sampling.n_logit_bias */
    bool seed_given;
    const char *stop[CIT_ENGINE_MAX_STOP];
    size_t n_stop;
    uint32_t n;                 /* choices, 1..SRV_MAX_N */
    bool stream;
    bool include_usage;         /* stream_options.include_usage */
    bool logprobs;
    uint32_t top_logprobs;      /* chat: top_logprobs; completion: logprobs (an integer there) */
    bool echo;                  /* completion: prompt text prepended to the output */
    bool ignore_eos;
    const char *user;           /* accepted and recorded, "" when absent */
    /* tokenize / detokenize */
    bool add_special;           /* tokenize: default true */
    bool with_pieces;           /* tokenize: return {id, piece} objects */
};

/* Validates body for endpoint ep against the parameter table and fills out
 * (zeroed first; defaults applied). n_vocab bounds token ids and logit_bias
 * keys (400 naming the field, the index and the vocabulary size). Returns
 * false with e filled on the first problem; out is then cleared. */
bool srv_params_parse(enum srv_endpoint ep, const json_t *body, uint32_t n_vocab, struct srv_request *out,
                      struct srv_error *e);

/* Frees what srv_params_parse allocated; accepts a zeroed struct. */
void srv_request_clear(struct srv_request *r);

/* Writes the parameter table as Markdown (one row per parameter: name, type,
 * range, default, endpoints, meaning) for docs/api.md and `citadel serve
 * --list-params`. */
void srv_params_doc(FILE *f);

#endif
