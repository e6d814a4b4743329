/* params.c: request-body checks and the parameter table (server/params.h).
 *
 * Every request parameter is one row of `rows` below: name, accepted JSON
 * types, range, default, endpoints, where it lands in struct srv_request,
 * and its one-line meaning. srv_params_parse loops over the rows (defaults
 * first, then each field present), so adding a parameter is adding a row;
 * only parameters with structure (messages, prompt, input, stop,
 * logit_bias, stream_options, ...) have a `store` function, and the few
 * rules that tie two fields together run after the loop (finish()).
 * srv_params_doc prints the same rows, so docs/api.md cannot drift.
 *
 * Decisions where OpenAI's reference is silent or loose (documented in the
 * doc column too):
 *  - Duplicate object keys are rejected (400 "duplicate_key"): a proxy in
 *    front of us and we must never read different values from one body.
 *  - An integer parameter accepts a JSON number with no fraction (2.0, as
 *    OpenAI's own validation does) and rejects 2.5 with "invalid_type".
 *  - Numbers jansson cannot hold (1e400, integers beyond int64) make the
 *    body invalid JSON (jansson rejects them); "\u0000" in strings too, so
 *    every string we hand out is a plain C string.
 *  - null for an optional parameter means "absent"; for a required one it
 *    is "missing_required_field".
 *  - Completion `logprobs: N` (legacy API, as vLLM reads it): present and
 *    not null turns logprobs on with N top alternatives (0 = only the
 *    chosen token's log-probability).
 *  - Completion `prompt`: a string (may be empty: the server still adds
 *    BOS), an array of ids, or an array holding exactly one string or one
 *    array of ids. Embedding `input` must not be empty anywhere; for
 *    embeddings inputs[] always holds every input (n_inputs >= 1), and the
 *    single forms (one string, one id array) are also in text / tokens (a
 *    separate copy, so srv_request_clear frees each once).
 *  - max_completion_tokens is chat-only (as in OpenAI's legacy completions
 *    API) and wins over max_tokens: it comes later in the table.
 *  - srv_params_parse with an `ep` that is not exactly one SRV_EP_* value
 *    is a caller bug: 500 "internal_error".
 *  - Error messages quote client bytes only as printable ASCII (others
 *    become '?'), truncated, so a message is always valid UTF-8 JSON. */
#include "server/params.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"

/* ---- errors ----------------------------------------------------------- */

static void copy_trunc(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    if (src)
        for (; src[i] && i + 1 < n; i++)
            dst[i] = src[i];
    dst[i] = '\0';
}

bool srv_fail(struct srv_error *e, int status, const char *type, const char *param, const char *code,
              const char *fmt, ...)
{
    if (!e)
        return false;
    e->status = status;
    e->type = type ? type : "invalid_request_error";
    copy_trunc(e->param, sizeof e->param, param);
    copy_trunc(e->code, sizeof e->code, code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

#define INVALID "invalid_request_error"

/* Client bytes as a short printable-ASCII quote for messages: bytes outside
 * 0x20..0x7e (and '"', '\\') become '?', more than 40 are cut with "...". */
static const char *quote(char *buf, size_t n, const char *s, size_t len)
{
    size_t o = 0, lim = 40;
    if (n < 8) {
        buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < len && i < lim && o + 6 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    if (len > lim && o + 5 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Shortest %g form that reads back as d (limits and client numbers). */
static const char *fmt_num(char *buf, size_t n, double d)
{
    snprintf(buf, n, "%.15g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, n, "%.17g", d);
    return buf;
}

/* Type name of v for invalid_type messages. */
static const char *type_str(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_STRING: return "string";
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* A JSON value for "got ...": numbers by value, the rest by type name. */
static const char *got_str(char *buf, size_t n, const json_t *v)
{
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return json_is_real(v) ? fmt_num(buf, n, json_real_value(v)) : type_str(v);
}

/* "a " or "an " before a type description. */
static const char *article(const char *t)
{
    return strchr("aeiou", t[0]) ? "an " : "a ";
}

/* ---- srv_json_parse --------------------------------------------------- */

/* Deepest nesting of [ and { outside strings, and the byte offset where it
 * first exceeds `limit` (len when it never does). Tolerates malformed input
 * (jansson reports that next). */
static size_t depth_scan(const char *b, size_t len, int limit, int *deepest)
{
    int d = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        if (in_str) {
            if (c == '\\')
                i++; /* the escaped byte cannot end the string */
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++d > max)
                max = d;
            if (d > limit) {
                *deepest = d;
                return i;
            }
        } else if ((c == ']' || c == '}') && d > 0) {
            d--;
        }
    }
    *deepest = max;
    return len;
}

bool srv_json_parse(const char *body, size_t len, size_t max_bytes, json_t **out, struct srv_error *e)
{
    *out = NULL;
    if (len > max_bytes)
        return srv_fail(e, 413, INVALID, "", "request_too_large", "request body is %zu bytes; the limit is %zu",
                        len, max_bytes);
    if (!body && len)
        return srv_fail(e, 400, INVALID, "", "invalid_json", "request body is missing");
    int deepest = 0;
    size_t at = depth_scan(body ? body : "", len, SRV_JSON_MAX_DEPTH, &deepest);
    if (at < len)
        return srv_fail(e, 400, INVALID, "", "json_too_deep",
                        "request body nests arrays/objects more than %d deep (at byte %zu); the limit is %d",
                        SRV_JSON_MAX_DEPTH, at, SRV_JSON_MAX_DEPTH);
    json_error_t je;
    json_t *j = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j) {
        /* jansson's text quotes the bytes near the error: keep it ASCII */
        char text[sizeof je.text];
        size_t tl = strnlen(je.text, sizeof je.text - 1);
        for (size_t i = 0; i < tl; i++)
            text[i] = (je.text[i] >= 0x20 && je.text[i] < 0x7f) ? je.text[i] : '?';
        text[tl] = '\0';
        bool dup = json_error_code(&je) == json_error_duplicate_key;
        bool utf8 = json_error_code(&je) == json_error_invalid_utf8 || strstr(text, "decode byte") != NULL;
        return srv_fail(e, 400, INVALID, "", dup ? "duplicate_key" : "invalid_json",
                        "%s at line %d, column %d (byte %d): %s",
                        utf8 ? "invalid JSON: the body is not valid UTF-8" : "invalid JSON", je.line, je.column,
                        je.position, text);
    }
    if (!json_is_object(j)) {
        const char *t = type_str(j);
        json_decref(j);
        return srv_fail(e, 400, INVALID, "", "invalid_type", "request body must be a JSON object; got %s", t);
    }
    *out = j;
    return true;
}

/* ---- the table -------------------------------------------------------- */

enum { T_STR = 1, T_INT = 2, T_NUM = 4, T_BOOL = 8, T_ARR = 16, T_OBJ = 32 };

enum kind {
    K_BOOL,   /* bool at off */
    K_U32,    /* uint32_t at off, integer in [min, max] */
    K_I32,    /* int32_t at off, integer in [min, max] */
    K_I64,    /* uint64_t at off holding any int64 (two's complement) */
    K_F32,    /* float at off, number in [min, max] (min exclusive with F_MIN_EXCL) */
    K_STR,    /* const char * at off, length in [min, max] bytes (max 0: no limit) */
    K_CUSTOM, /* store() does the work */
};

enum {
    F_REQUIRED = 1,
    F_MIN_EXCL = 2, /* range is (min, max] */
};

#define EP_GEN (SRV_EP_CHAT | SRV_EP_COMPLETION)
#define OFF(f) offsetof(struct srv_request, f)
#define GIVEN(f) (OFF(f) + 1) /* bool set when the field is present; 0: none */

struct ctx;
struct param {
    const char *name;
    unsigned types;  /* T_* accepted (null is always "absent") */
    enum kind kind;
    size_t off;      /* into struct srv_request (simple kinds) */
    double min, max; /* numbers: range; strings: length in bytes */
    double def;      /* default for the simple kinds */
    unsigned flags;  /* F_* */
    unsigned eps;    /* SRV_EP_* the row applies to */
    size_t given;    /* GIVEN(field) or 0 */
    bool (*store)(const struct param *p, const json_t *v, struct ctx *c);
    const char *type_doc;  /* "number", "string or array of strings", ... */
    const char *range_doc; /* overrides the range column; NULL: from min/max */
    const char *def_doc;   /* overrides the default column; NULL: from def */
    const char *doc;
};

struct ctx {
    enum srv_endpoint ep;
    struct srv_request *r;
    struct srv_error *e;
    uint32_t n_vocab;
    uint64_t present; /* bit i: rows[i] was given (not null) */
};

static bool st_messages(const struct param *p, const json_t *v, struct ctx *c);
static bool st_prompt(const struct param *p, const json_t *v, struct ctx *c);
static bool st_input(const struct param *p, const json_t *v, struct ctx *c);
static bool st_content(const struct param *p, const json_t *v, struct ctx *c);
static bool st_tokens(const struct param *p, const json_t *v, struct ctx *c);
static bool st_logit_bias(const struct param *p, const json_t *v, struct ctx *c);
static bool st_stop(const struct param *p, const json_t *v, struct ctx *c);
static bool st_stream_options(const struct param *p, const json_t *v, struct ctx *c);

#define ALL_EP (EP_GEN | SRV_EP_EMBEDDING | SRV_EP_TOKENIZE | SRV_EP_DETOKENIZE)

static const struct param rows[] = {
    {.name = "model", .types = T_STR, .kind = K_STR, .off = OFF(model), .eps = EP_GEN | SRV_EP_EMBEDDING,
     .type_doc = "string", .def_doc = "the served model",
     .doc = "Model name; absent or empty: the one model the server serves."},
    {.name = "messages", .types = T_ARR, .kind = K_CUSTOM, .flags = F_REQUIRED, .eps = SRV_EP_CHAT,
     .store = st_messages, .type_doc = "array of messages", .range_doc = "at least 1",
     .doc = "The conversation: objects {role, content}; role is system, user, assistant, tool or developer; "
            "content is a string, an array of {\"type\": \"text\", \"text\": string} parts, or null (assistant only)."},
    {.name = "prompt", .types = T_STR | T_ARR, .kind = K_CUSTOM, .flags = F_REQUIRED, .eps = SRV_EP_COMPLETION,
     .store = st_prompt, .type_doc = "string or array of token ids",
     .doc = "The prompt: a string, an array of token ids, or an array holding exactly one string or one "
            "array of ids. Ids must be in [0, n_vocab)."},
    {.name = "input", .types = T_STR | T_ARR, .kind = K_CUSTOM, .flags = F_REQUIRED, .eps = SRV_EP_EMBEDDING,
     .store = st_input, .type_doc = "string or array", .range_doc = "1..256 inputs, none empty",
     .doc = "Text to embed: a string, an array of strings, an array of token ids, or an array of arrays of "
            "token ids (one embedding per input)."},
    {.name = "content", .types = T_STR, .kind = K_CUSTOM, .flags = F_REQUIRED, .eps = SRV_EP_TOKENIZE,
     .store = st_content, .type_doc = "string", .doc = "Text to tokenize."},
    {.name = "tokens", .types = T_ARR, .kind = K_CUSTOM, .flags = F_REQUIRED, .eps = SRV_EP_DETOKENIZE,
     .store = st_tokens, .type_doc = "array of token ids", .range_doc = "ids in [0, n_vocab)",
     .doc = "Token ids to turn back into text."},
    {.name = "add_special", .types = T_BOOL, .kind = K_BOOL, .off = OFF(add_special), .def = 1,
     .eps = SRV_EP_TOKENIZE, .type_doc = "boolean", .doc = "Add the model's special tokens (BOS) as a prompt would."},
    {.name = "with_pieces", .types = T_BOOL, .kind = K_BOOL, .off = OFF(with_pieces), .eps = SRV_EP_TOKENIZE,
     .type_doc = "boolean", .doc = "Return {id, piece} objects instead of bare ids."},
    {.name = "max_tokens", .types = T_INT, .kind = K_U32, .off = OFF(max_tokens), .min = 1, .max = 1048576,
     .eps = SRV_EP_CHAT, .type_doc = "integer", .def_doc = "rest of the context",
     .doc = "Most tokens to generate (deprecated by OpenAI for chat in favour of max_completion_tokens)."},
    {.name = "max_completion_tokens", .types = T_INT, .kind = K_U32, .off = OFF(max_tokens), .min = 1,
     .max = 1048576, .eps = SRV_EP_CHAT, .type_doc = "integer", .def_doc = "rest of the context",
     .doc = "Most tokens to generate; wins over max_tokens when both are given."},
    {.name = "max_tokens", .types = T_INT, .kind = K_U32, .off = OFF(max_tokens), .min = 1, .max = 1048576,
     .def = 16, .eps = SRV_EP_COMPLETION, .type_doc = "integer", .doc = "Most tokens to generate."},
    {.name = "temperature", .types = T_NUM, .kind = K_F32, .off = OFF(sampling.temperature), .min = 0, .max = 2,
     .def = 1, .eps = EP_GEN, .type_doc = "number", .doc = "Sampling temperature; 0 picks the most likely token."},
    {.name = "top_p", .types = T_NUM, .kind = K_F32, .off = OFF(sampling.top_p), .min = 0, .max = 1, .def = 1,
     .eps = EP_GEN, .type_doc = "number",
     .doc = "Nucleus sampling: keep the most likely tokens up to this probability mass; 0 keeps only the top token."},
    {.name = "top_k", .types = T_INT, .kind = K_I32, .off = OFF(sampling.top_k), .min = -1, .max = 1048576,
     .def = -1, .eps = EP_GEN, .type_doc = "integer", .doc = "Keep the k most likely tokens; -1 or 0: off (extension)."},
    {.name = "min_p", .types = T_NUM, .kind = K_F32, .off = OFF(sampling.min_p), .min = 0, .max = 1, .eps = EP_GEN,
     .type_doc = "number", .doc = "Drop tokens less likely than min_p times the top token's probability (extension)."},
    {.name = "presence_penalty", .types = T_NUM, .kind = K_F32, .off = OFF(sampling.presence_penalty), .min = -2,
     .max = 2, .eps = EP_GEN, .type_doc = "number",
     .doc = "Subtracted once from the logit of every token already in the prompt or output."},
    {.name = "frequency_penalty", .types = T_NUM, .kind = K_F32, .off = OFF(sampling.frequency_penalty), .min = -2,
     .max = 2, .eps = EP_GEN, .type_doc = "number",
     .doc = "Subtracted from a token's logit once per earlier occurrence in the prompt or output."},
    {.name = "repetition_penalty", .types = T_NUM, .kind = K_F32, .off = OFF(sampling.repeat_penalty), .min = 0,
     .max = 10, .def = 1, .flags = F_MIN_EXCL, .eps = EP_GEN, .type_doc = "number",
     .doc = "Divides positive (multiplies negative) logits of tokens already seen; 1: off (extension)."},
    {.name = "seed", .types = T_INT, .kind = K_I64, .off = OFF(sampling.seed), .eps = EP_GEN,
     .given = GIVEN(seed_given), .type_doc = "integer", .range_doc = "any int64", .def_doc = "server's choice",
     .doc = "Seed of the sampler: the same seed and parameters give the same output."},
    {.name = "logit_bias", .types = T_OBJ, .kind = K_CUSTOM, .eps = EP_GEN, .store = st_logit_bias,
     .type_doc = "object", .range_doc = "keys: ids in [0, n_vocab); values in [-100, 100]; <= 1024 entries",
     .def_doc = "none", .doc = "Added to the logits of the given token ids (keys are decimal ids)."},
    {.name = "stop", .types = T_STR | T_ARR, .kind = K_CUSTOM, .eps = EP_GEN, .store = st_stop,
     .type_doc = "string or array of strings", .range_doc = "<= 4 strings of 1..256 bytes", .def_doc = "none",
     .doc = "Generation ends before the first occurrence of any of these strings."},
    {.name = "n", .types = T_INT, .kind = K_U32, .off = OFF(n), .min = 1, .max = SRV_MAX_N, .def = 1, .eps = EP_GEN,
     .type_doc = "integer", .doc = "Number of choices to generate."},
    {.name = "stream", .types = T_BOOL, .kind = K_BOOL, .off = OFF(stream), .eps = EP_GEN, .type_doc = "boolean",
     .doc = "Send the output as server-sent events as it is generated."},
    {.name = "stream_options", .types = T_OBJ, .kind = K_CUSTOM, .eps = EP_GEN, .store = st_stream_options,
     .type_doc = "object", .range_doc = "only with stream: true", .def_doc = "none",
     .doc = "{\"include_usage\": boolean}: send a last chunk with token usage."},
    {.name = "logprobs", .types = T_BOOL, .kind = K_BOOL, .off = OFF(logprobs), .eps = SRV_EP_CHAT,
     .type_doc = "boolean", .doc = "Return the log-probability of each output token."},
    {.name = "top_logprobs", .types = T_INT, .kind = K_U32, .off = OFF(top_logprobs), .min = 0,
     .max = CIT_ENGINE_MAX_TOP_LOGPROBS, .eps = SRV_EP_CHAT, .type_doc = "integer", .def_doc = "0",
     .doc = "Also return this many most likely alternatives per token; needs logprobs: true."},
    {.name = "logprobs", .types = T_INT, .kind = K_U32, .off = OFF(top_logprobs), .min = 0,
     .max = CIT_ENGINE_MAX_TOP_LOGPROBS, .eps = SRV_EP_COMPLETION, .given = GIVEN(logprobs), .type_doc = "integer",
     .def_doc = "none",
     .doc = "Return each output token's log-probability and this many most likely alternatives (0: none)."},
    {.name = "echo", .types = T_BOOL, .kind = K_BOOL, .off = OFF(echo), .eps = SRV_EP_COMPLETION,
     .type_doc = "boolean", .doc = "Prepend the prompt to the output text."},
    {.name = "user", .types = T_STR, .kind = K_STR, .off = OFF(user), .max = 256, .eps = EP_GEN | SRV_EP_EMBEDDING,
     .type_doc = "string", .def_doc = "\"\"", .doc = "End-user id; accepted, does not change the output."},
    {.name = "ignore_eos", .types = T_BOOL, .kind = K_BOOL, .off = OFF(ignore_eos), .eps = EP_GEN,
     .type_doc = "boolean", .doc = "Keep generating past end-of-generation tokens (extension)."},
};

#define N_ROWS (sizeof rows / sizeof rows[0])
_Static_assert(N_ROWS <= 64, "ctx.present is a 64-bit mask");

/* ---- value helpers ---------------------------------------------------- */

static bool type_ok(unsigned types, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return types & T_STR;
    case JSON_INTEGER: return types & (T_INT | T_NUM);
    case JSON_REAL: return types & (T_INT | T_NUM); /* T_INT: checked integral later */
    case JSON_TRUE:
    case JSON_FALSE: return types & T_BOOL;
    case JSON_ARRAY: return types & T_ARR;
    case JSON_OBJECT: return types & T_OBJ;
    default: return false;
    }
}

static bool fail_type(struct ctx *c, const char *path, const char *want, const json_t *v)
{
    return srv_fail(c->e, 400, INVALID, path, "invalid_type", "%s must be %s%s; got %s", path, article(want), want,
                    type_str(v));
}

/* An integer (or a real with no fraction) into *out; false with
 * invalid_type otherwise. Reals beyond int64 are reported as out of range
 * against [lo, hi]. */
static bool get_int(struct ctx *c, const char *path, const json_t *v, double lo, double hi, int64_t *out)
{
    char g[40], a[40], b[40];
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if ((double)x < lo || (double)x > hi)
            return srv_fail(c->e, 400, INVALID, path, "invalid_value", "%s must be in [%s, %s]; got %lld", path,
                            fmt_num(a, sizeof a, lo), fmt_num(b, sizeof b, hi), (long long)x);
        *out = x;
        return true;
    }
    if (!json_is_real(v))
        return fail_type(c, path, "integer", v);
    double d = json_real_value(v);
    if (!isfinite(d) || d != floor(d))
        return srv_fail(c->e, 400, INVALID, path, "invalid_type", "%s must be an integer; got %s", path,
                        fmt_num(g, sizeof g, d));
    /* -2^63 is exact in double; 2^63 is the first double past INT64_MAX. */
    if (d < lo || d > hi || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return srv_fail(c->e, 400, INVALID, path, "invalid_value", "%s must be in [%s, %s]; got %s", path,
                        fmt_num(a, sizeof a, lo), fmt_num(b, sizeof b, hi), fmt_num(g, sizeof g, d));
    *out = (int64_t)d;
    return true;
}

/* A number in [lo, hi] (lo exclusive when excl). */
static bool get_num(struct ctx *c, const char *path, const json_t *v, double lo, double hi, bool excl, double *out)
{
    char g[40], a[40], b[40];
    if (!json_is_number(v))
        return fail_type(c, path, "number", v);
    double d = json_number_value(v);
    if (!(excl ? d > lo : d >= lo) || !(d <= hi))
        return srv_fail(c->e, 400, INVALID, path, "invalid_value", "%s must be in %c%s, %s]; got %s", path,
                        excl ? '(' : '[', fmt_num(a, sizeof a, lo), fmt_num(b, sizeof b, hi), got_str(g, sizeof g, v));
    *out = d;
    return true;
}

static void path_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void path_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* A JSON array of token ids (each in [0, n_vocab)) into a malloc'd array.
 * `path` names the array ("prompt", "input[2]"). */
static bool get_tokens(struct ctx *c, const char *path, const json_t *arr, bool allow_empty, int32_t **out,
                       size_t *n_out)
{
    char ep[96], g[40];
    size_t n = json_array_size(arr), bytes;
    *out = NULL;
    *n_out = 0;
    if (n == 0 && !allow_empty)
        return srv_fail(c->e, 400, INVALID, path, "invalid_value", "%s must not be an empty array", path);
    if (!cit_mul_size(n ? n : 1, sizeof(int32_t), &bytes))
        return srv_fail(c->e, 400, INVALID, path, "invalid_value", "%s has too many token ids (%zu)", path, n);
    int32_t *t = malloc(bytes);
    if (!t)
        return srv_fail(c->e, 500, "server_error", path, "out_of_memory", "out of memory for %zu token ids", n);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        path_fmt(ep, sizeof ep, "%s[%zu]", path, i);
        int64_t id = 0;
        if (json_is_real(v) && isfinite(json_real_value(v)) && json_real_value(v) == floor(json_real_value(v)) &&
            (json_real_value(v) < 0 || json_real_value(v) >= (double)c->n_vocab)) {
            free(t);
            return srv_fail(c->e, 400, INVALID, ep, "invalid_value", "%s = %s is outside the vocabulary [0, %u)", ep,
                            fmt_num(g, sizeof g, json_real_value(v)), c->n_vocab);
        }
        if (json_is_integer(v) && (json_integer_value(v) < 0 || json_integer_value(v) >= (json_int_t)c->n_vocab)) {
            free(t);
            return srv_fail(c->e, 400, INVALID, ep, "invalid_value", "%s = %lld is outside the vocabulary [0, %u)",
                            ep, (long long)json_integer_value(v), c->n_vocab);
        }
        if (!get_int(c, ep, v, 0, (double)c->n_vocab, &id)) { /* type errors */
            free(t);
            return false;
        }
        t[i] = (int32_t)id;
    }
    *out = t;
    *n_out = n;
    return true;
}

/* ---- structured parameters -------------------------------------------- */

static const char *const roles[] = {"system", "user", "assistant", "tool", "developer"};

static bool check_content(struct ctx *c, size_t i, const json_t *content, bool assistant)
{
    char path[96], pp[128];
    path_fmt(path, sizeof path, "messages[%zu].content", i);
    if (!content || json_is_null(content)) {
        if (assistant)
            return true;
        return srv_fail(c->e, 400, INVALID, path, "missing_required_field",
                        "%s is required (only an assistant message may omit it)", path);
    }
    if (json_is_string(content))
        return true;
    if (!json_is_array(content))
        return fail_type(c, path, "string or array of text parts", content);
    for (size_t k = 0; k < json_array_size(content); k++) {
        const json_t *part = json_array_get(content, k);
        path_fmt(pp, sizeof pp, "%s[%zu]", path, k);
        if (!json_is_object(part))
            return fail_type(c, pp, "object", part);
        const json_t *type = json_object_get(part, "type");
        const json_t *text = json_object_get(part, "text");
        char tp[140], q[64];
        path_fmt(tp, sizeof tp, "%s.type", pp);
        if (!type || json_is_null(type))
            return srv_fail(c->e, 400, INVALID, tp, "missing_required_field", "%s is required", tp);
        if (!json_is_string(type))
            return fail_type(c, tp, "string", type);
        if (strcmp(json_string_value(type), "text") != 0)
            return srv_fail(c->e, 400, INVALID, tp, "invalid_value",
                            "%s must be \"text\" (the only part type supported); got %s", tp,
                            quote(q, sizeof q, json_string_value(type), json_string_length(type)));
        path_fmt(tp, sizeof tp, "%s.text", pp);
        if (!text || json_is_null(text))
            return srv_fail(c->e, 400, INVALID, tp, "missing_required_field", "%s is required", tp);
        if (!json_is_string(text))
            return fail_type(c, tp, "string", text);
    }
    return true;
}

static bool st_messages(const struct param *p, const json_t *v, struct ctx *c)
{
    char path[96], q[64];
    size_t n = json_array_size(v);
    if (n == 0)
        return srv_fail(c->e, 400, INVALID, "messages", "invalid_value", "messages must be a non-empty array");
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(v, i);
        path_fmt(path, sizeof path, "messages[%zu]", i);
        if (!json_is_object(m))
            return fail_type(c, path, "object", m);
        const json_t *role = json_object_get(m, "role");
        path_fmt(path, sizeof path, "messages[%zu].role", i);
        if (!role || json_is_null(role))
            return srv_fail(c->e, 400, INVALID, path, "missing_required_field", "%s is required", path);
        if (!json_is_string(role))
            return fail_type(c, path, "string", role);
        size_t r = 0;
        while (r < sizeof roles / sizeof roles[0] && strcmp(json_string_value(role), roles[r]) != 0)
            r++;
        if (r == sizeof roles / sizeof roles[0])
            return srv_fail(c->e, 400, INVALID, path, "invalid_value",
                            "%s must be one of system, user, assistant, tool, developer; got %s", path,
                            quote(q, sizeof q, json_string_value(role), json_string_length(role)));
        if (!check_content(c, i, json_object_get(m, "content"), r == 2))
            return false;
    }
    c->r->messages = v;
    return true;
}

static bool st_prompt(const struct param *p, const json_t *v, struct ctx *c)
{
    struct srv_request *r = c->r;
    if (json_is_string(v)) {
        r->text = json_string_value(v);
        r->text_len = json_string_length(v);
        return true;
    }
    size_t n = json_array_size(v);
    if (n == 0)
        return srv_fail(c->e, 400, INVALID, "prompt", "invalid_value", "prompt must not be an empty array");
    const json_t *first = json_array_get(v, 0);
    if (json_is_number(first))
        return get_tokens(c, "prompt", v, false, &r->tokens, &r->n_tokens);
    if (!json_is_string(first) && !json_is_array(first))
        return fail_type(c, "prompt[0]", "integer, string or array of token ids", first);
    if (n != 1)
        return srv_fail(c->e, 400, INVALID, "prompt", "invalid_value",
                        "prompt must hold exactly one prompt (one request per prompt); got %zu", n);
    if (json_is_array(first))
        return get_tokens(c, "prompt[0]", first, false, &r->tokens, &r->n_tokens);
    r->text = json_string_value(first);
    r->text_len = json_string_length(first);
    return true;
}

#define SRV_MAX_INPUTS 256

/* One embedding input (string or id array) at path into *in. */
static bool get_input(struct ctx *c, const char *path, const json_t *v, unsigned want, struct srv_input *in)
{
    if (!(json_is_string(v) ? want & T_STR : json_is_array(v) ? want & T_ARR : 0))
        return fail_type(c, path, (want & T_STR) ? "string" : "array of token ids", v);
    if (json_is_array(v))
        return get_tokens(c, path, v, false, &in->tokens, &in->n_tokens);
    if (json_string_length(v) == 0)
        return srv_fail(c->e, 400, INVALID, path, "invalid_value", "%s must not be an empty string", path);
    in->text = json_string_value(v);
    in->text_len = json_string_length(v);
    return true;
}

static bool st_input(const struct param *p, const json_t *v, struct ctx *c)
{
    struct srv_request *r = c->r;
    char path[64];
    bool single = json_is_string(v) || (json_array_size(v) > 0 && json_is_number(json_array_get(v, 0)));
    size_t n = single ? 1 : json_array_size(v);
    if (n == 0)
        return srv_fail(c->e, 400, INVALID, "input", "invalid_value", "input must not be an empty array");
    if (n > SRV_MAX_INPUTS)
        return srv_fail(c->e, 400, INVALID, "input", "invalid_value", "input has %zu items; the limit is %d", n,
                        SRV_MAX_INPUTS);
    r->inputs = calloc(n, sizeof *r->inputs);
    if (!r->inputs)
        return srv_fail(c->e, 500, "server_error", "input", "out_of_memory", "out of memory for %zu inputs", n);
    r->n_inputs = n;
    if (single) {
        if (!get_input(c, "input", v, T_STR | T_ARR, &r->inputs[0]))
            return false;
        r->text = r->inputs[0].text;
        r->text_len = r->inputs[0].text_len;
        if (r->inputs[0].tokens) { /* a second copy: tokens and inputs[0].tokens are freed separately */
            r->tokens = malloc(r->inputs[0].n_tokens * sizeof *r->tokens);
            if (!r->tokens)
                return srv_fail(c->e, 500, "server_error", "input", "out_of_memory", "out of memory");
            memcpy(r->tokens, r->inputs[0].tokens, r->inputs[0].n_tokens * sizeof *r->tokens);
            r->n_tokens = r->inputs[0].n_tokens;
        }
        return true;
    }
    /* Several inputs: all strings or all id arrays, as the first one. */
    unsigned want = json_is_string(json_array_get(v, 0)) ? T_STR : T_ARR;
    if (!json_is_string(json_array_get(v, 0)) && !json_is_array(json_array_get(v, 0)))
        return fail_type(c, "input[0]", "string, integer or array of token ids", json_array_get(v, 0));
    for (size_t i = 0; i < n; i++) {
        path_fmt(path, sizeof path, "input[%zu]", i);
        if (!get_input(c, path, json_array_get(v, i), want, &r->inputs[i]))
            return false;
    }
    return true;
}

static bool st_content(const struct param *p, const json_t *v, struct ctx *c)
{
    c->r->text = json_string_value(v);
    c->r->text_len = json_string_length(v);
    return true;
}

static bool st_tokens(const struct param *p, const json_t *v, struct ctx *c)
{
    return get_tokens(c, "tokens", v, true, &c->r->tokens, &c->r->n_tokens);
}

static bool st_logit_bias(const struct param *p, const json_t *v, struct ctx *c)
{
    struct srv_request *r = c->r;
    char q[64], path[64];
    size_t n = json_object_size(v);
    if (n > SRV_MAX_LOGIT_BIAS)
        return srv_fail(c->e, 400, INVALID, "logit_bias", "invalid_value", "logit_bias has %zu entries; the limit is %d",
                        n, SRV_MAX_LOGIT_BIAS);
    if (n == 0)
        return true;
    r->bias = calloc(n, sizeof *r->bias);
    if (!r->bias)
        return srv_fail(c->e, 500, "server_error", "logit_bias", "out_of_memory", "out of memory");
    size_t k = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        /* Decimal digits only (no sign, no spaces); the value is accumulated
         * while it can still be a token id, so "99999999999" cannot overflow. */
        uint64_t id = 0;
        size_t len = strlen(key), i = 0;
        for (; i < len && key[i] >= '0' && key[i] <= '9'; i++)
            if (id <= UINT32_MAX)
                id = id * 10 + (uint64_t)(key[i] - '0');
        if (len == 0 || i != len)
            return srv_fail(c->e, 400, INVALID, "logit_bias", "invalid_value",
                            "logit_bias key %s is not a token id (decimal digits)", quote(q, sizeof q, key, len));
        if (id >= c->n_vocab)
            return srv_fail(c->e, 400, INVALID, "logit_bias", "invalid_value",
                            "logit_bias key %s is outside the vocabulary [0, %u)", quote(q, sizeof q, key, len),
                            c->n_vocab);
        path_fmt(path, sizeof path, "logit_bias.%s", key); /* digits only by now */
        double b = 0;
        if (!get_num(c, path, val, -100, 100, false, &b))
            return false;
        r->bias[k].token = (int32_t)id;
        r->bias[k].bias = (float)b;
        k++;
    }
    r->sampling.logit_bias = r->bias;
    r->sampling.n_logit_bias = k;
    return true;
}

static bool st_stop(const struct param *p, const json_t *v, struct ctx *c)
{
    struct srv_request *r = c->r;
    char path[32];
    bool single = json_is_string(v);
    size_t n = single ? 1 : json_array_size(v);
    if (n > CIT_ENGINE_MAX_STOP)
        return srv_fail(c->e, 400, INVALID, "stop", "invalid_value", "stop has %zu strings; the limit is %d", n,
                        CIT_ENGINE_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = single ? v : json_array_get(v, i);
        if (single)
            path_fmt(path, sizeof path, "stop");
        else
            path_fmt(path, sizeof path, "stop[%zu]", i);
        if (!json_is_string(s))
            return fail_type(c, path, "string", s);
        size_t len = json_string_length(s);
        if (len < 1 || len > CIT_ENGINE_MAX_STOP_LEN)
            return srv_fail(c->e, 400, INVALID, path, "invalid_value", "%s must be 1..%d bytes long; got %zu", path,
                            CIT_ENGINE_MAX_STOP_LEN, len);
        r->stop[i] = json_string_value(s);
    }
    r->n_stop = n;
    return true;
}

static bool st_stream_options(const struct param *p, const json_t *v, struct ctx *c)
{
    const json_t *iu = json_object_get(v, "include_usage");
    if (!iu || json_is_null(iu))
        return true;
    if (!json_is_boolean(iu))
        return fail_type(c, "stream_options.include_usage", "boolean", iu);
    c->r->include_usage = json_is_true(iu);
    return true;
}

/* ---- the loop --------------------------------------------------------- */

static void *field(struct srv_request *r, size_t off)
{
    return (char *)r + off;
}

static void apply_default(const struct param *p, struct srv_request *r)
{
    void *f = field(r, p->off);
    switch (p->kind) {
    case K_BOOL: *(bool *)f = p->def != 0; break;
    case K_U32: *(uint32_t *)f = (uint32_t)p->def; break;
    case K_I32: *(int32_t *)f = (int32_t)p->def; break;
    case K_I64: *(uint64_t *)f = 0; break;
    case K_F32: *(float *)f = (float)p->def; break;
    case K_STR: *(const char **)f = ""; break;
    case K_CUSTOM: break;
    }
}

static bool store_simple(const struct param *p, const json_t *v, struct ctx *c)
{
    void *f = field(c->r, p->off);
    int64_t i = 0;
    double d = 0;
    switch (p->kind) {
    case K_BOOL: *(bool *)f = json_is_true(v); return true;
    case K_U32:
    case K_I32:
        if (!get_int(c, p->name, v, p->min, p->max, &i))
            return false;
        if (p->kind == K_U32)
            *(uint32_t *)f = (uint32_t)i;
        else
            *(int32_t *)f = (int32_t)i;
        return true;
    case K_I64:
        if (!get_int(c, p->name, v, -9223372036854775808.0, 9223372036854775807.0, &i))
            return false;
        *(uint64_t *)f = (uint64_t)i;
        return true;
    case K_F32:
        if (!get_num(c, p->name, v, p->min, p->max, p->flags & F_MIN_EXCL, &d))
            return false;
        *(float *)f = (float)d;
        return true;
    case K_STR: {
        size_t len = json_string_length(v);
        if (p->max > 0 && (double)len > p->max)
            return srv_fail(c->e, 400, INVALID, p->name, "invalid_value", "%s must be at most %.0f bytes; got %zu",
                            p->name, p->max, len);
        *(const char **)f = json_string_value(v);
        return true;
    }
    case K_CUSTOM: break;
    }
    return p->store(p, v, c);
}

static bool is_present(const struct ctx *c, const char *name)
{
    for (size_t i = 0; i < N_ROWS; i++)
        if ((rows[i].eps & c->ep) && strcmp(rows[i].name, name) == 0 && (c->present >> i & 1))
            return true;
    return false;
}

/* Rules that tie fields together, after every field is stored. */
static bool finish(struct ctx *c)
{
    struct srv_request *r = c->r;
    if (!(c->ep & EP_GEN))
        return true;
    if (is_present(c, "stream_options") && !r->stream)
        return srv_fail(c->e, 400, INVALID, "stream_options", "invalid_value",
                        "stream_options is only allowed when stream is true");
    if (c->ep == SRV_EP_CHAT && is_present(c, "top_logprobs") && !r->logprobs)
        return srv_fail(c->e, 400, INVALID, "top_logprobs", "invalid_value",
                        "top_logprobs requires logprobs to be true");
    if (r->sampling.top_p == 0.0f) /* the sampler wants (0, 1]: keep only the top token */
        r->sampling.top_p = 1e-9f;
    bool penalties = r->sampling.presence_penalty != 0.0f || r->sampling.frequency_penalty != 0.0f ||
                     r->sampling.repeat_penalty != 1.0f;
    r->sampling.penalty_last_n = penalties ? -1 : 0;
    return true;
}

bool srv_params_parse(enum srv_endpoint ep, const json_t *body, uint32_t n_vocab, struct srv_request *out,
                      struct srv_error *e)
{
    memset(out, 0, sizeof *out);
    out->ep = ep;
    out->model = "";
    out->user = "";
    struct ctx c = {.ep = ep, .r = out, .e = e, .n_vocab = n_vocab};
    if (ep == 0 || (ep & (ep - 1)) != 0 || ep > SRV_EP_DETOKENIZE) {
        srv_fail(e, 500, "server_error", "", "internal_error", "srv_params_parse: endpoint %#x is not one endpoint",
                 (unsigned)ep);
        goto fail;
    }
    if (!json_is_object(body)) {
        srv_fail(e, 400, INVALID, "", "invalid_type", "request body must be a JSON object");
        goto fail;
    }
    for (size_t i = 0; i < N_ROWS; i++)
        if (rows[i].eps & ep)
            apply_default(&rows[i], out);
    for (size_t i = 0; i < N_ROWS; i++) {
        const struct param *p = &rows[i];
        if (!(p->eps & ep))
            continue;
        const json_t *v = json_object_get(body, p->name);
        if (!v || json_is_null(v)) {
            if (p->flags & F_REQUIRED) {
                srv_fail(e, 400, INVALID, p->name, "missing_required_field", "%s is required", p->name);
                goto fail;
            }
            continue;
        }
        if (!type_ok(p->types, v)) {
            fail_type(&c, p->name, p->type_doc, v);
            goto fail;
        }
        if (!store_simple(p, v, &c))
            goto fail;
        c.present |= (uint64_t)1 << i;
        if (p->given)
            *(bool *)field(out, p->given - 1) = true;
    }
    if (finish(&c))
        return true;
fail:
    srv_request_clear(out);
    return false;
}

void srv_request_clear(struct srv_request *r)
{
    if (!r)
        return;
    free(r->tokens);
    for (size_t i = 0; r->inputs && i < r->n_inputs; i++)
        free(r->inputs[i].tokens);
    free(r->inputs);
    free(r->bias);
    memset(r, 0, sizeof *r);
}

/* ---- srv_params_doc --------------------------------------------------- */

void srv_params_doc(FILE *f)
{
    static const struct {
        unsigned bit;
        const char *name;
    } eps[] = {{SRV_EP_CHAT, "chat"},
               {SRV_EP_COMPLETION, "completions"},
               {SRV_EP_EMBEDDING, "embeddings"},
               {SRV_EP_TOKENIZE, "tokenize"},
               {SRV_EP_DETOKENIZE, "detokenize"}};
    char a[40], b[40];
    fprintf(f, "| Parameter | Type | Range | Default | Endpoints | Meaning |\n");
    fprintf(f, "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < N_ROWS; i++) {
        const struct param *p = &rows[i];
        fprintf(f, "| `%s` | %s | ", p->name, p->type_doc);
        if (p->range_doc)
            fprintf(f, "%s", p->range_doc);
        else if (p->kind == K_U32 || p->kind == K_I32 || p->kind == K_F32)
            fprintf(f, "%c%s, %s]", (p->flags & F_MIN_EXCL) ? '(' : '[', fmt_num(a, sizeof a, p->min),
                    fmt_num(b, sizeof b, p->max));
        else if (p->kind == K_STR && p->max > 0)
            fprintf(f, "<= %.0f bytes", p->max);
        else
            fprintf(f, "-");
        fprintf(f, " | ");
        if (p->flags & F_REQUIRED)
            fprintf(f, "required");
        else if (p->def_doc)
            fprintf(f, "%s", p->def_doc);
        else if (p->kind == K_BOOL)
            fprintf(f, "%s", p->def != 0 ? "true" : "false");
        else
            fprintf(f, "%s", fmt_num(a, sizeof a, p->def));
        fprintf(f, " | ");
        const char *sep = "";
        for (size_t k = 0; k < sizeof eps / sizeof eps[0]; k++)
            if (p->eps & eps[k].bit) {
                fprintf(f, "%s%s", sep, eps[k].name);
                sep = ", ";
            }
        fprintf(f, " | %s |\n", p->doc);
    }
}
