/* chat_template.c: the public face of the Jinja interpreter (citadel/template.h).
 *
 * Converts JSON variables into interpreter values, sets up a render's
 * budgets and clock, and turns the interpreter's result into a status and
 * message. Also: loading a model's template (and its BOS/EOS texts) from
 * GGUF metadata, and the ChatML fallback for models that have none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "citadel/gguf.h"
#include "citadel/template.h"
#include "text/jinja_internal.h"

#define JSON_MAX_DEPTH 200

struct cit_template {
    struct jtpl *tpl;
    char *source;
    size_t len;
    char *bos, *eos;
    bool fallback;
};

static const char fallback_src[] =
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "{{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}\n";

const char *cit_template_fallback_source(void) { return fallback_src; }

void cit_template_options_default(struct cit_template_options *o)
{
    memset(o, 0, sizeof *o);
    o->limits.max_depth = 500;
    o->limits.max_steps = 20u * 1000 * 1000;
    o->limits.max_output = (size_t)16 << 20;
    o->limits.max_memory = (size_t)128 << 20;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

enum cit_status cit_template_parse(const char *src, size_t len, struct cit_template **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!src)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "template: no source");
    if (len > CIT_TEMPLATE_MAX_SOURCE)
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "template: source of %zu bytes exceeds the %zu-byte limit", len,
                        CIT_TEMPLATE_MAX_SOURCE);
    struct cit_template *t = calloc(1, sizeof *t);
    if (!t || !(t->source = dup_n(src, len)) || !(t->bos = dup_n("", 0)) || !(t->eos = dup_n("", 0))) {
        cit_template_free(t);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "template: out of memory");
    }
    t->len = len;
    enum cit_status st = jparse(src, len, &t->tpl, err, errlen);
    if (st != CIT_OK) {
        cit_template_free(t);
        return st;
    }
    *out = t;
    return CIT_OK;
}

void cit_template_free(struct cit_template *t)
{
    if (!t)
        return;
    jtpl_free(t->tpl);
    free(t->source);
    free(t->bos);
    free(t->eos);
    free(t);
}

bool cit_template_is_fallback(const struct cit_template *t) { return t && t->fallback; }

const char *cit_template_source(const struct cit_template *t, size_t *len)
{
    if (len)
        *len = t ? t->len : 0;
    return t ? t->source : "";
}

const char *cit_template_bos(const struct cit_template *t) { return t && t->bos ? t->bos : ""; }
const char *cit_template_eos(const struct cit_template *t) { return t && t->eos ? t->eos : ""; }

/* ---------------------------------------------------------------- JSON -> values */

static int from_json(struct jrt *rt, const json_t *j, struct jv *out, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return jerr(rt, NULL, CIT_ERR_LIMIT, "variables nested more than %d deep", JSON_MAX_DEPTH);
    switch (json_typeof(j)) {
    case JSON_NULL: *out = JV_NONE_V; return 0;
    case JSON_TRUE: *out = jv_bool(true); return 0;
    case JSON_FALSE: *out = jv_bool(false); return 0;
    case JSON_INTEGER: *out = jv_int((int64_t)json_integer_value(j)); return 0;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return 0;
    case JSON_STRING: {
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        if (!ju_valid(s, n))
            return jerr(rt, NULL, CIT_ERR_FORMAT, "variable string is not valid UTF-8");
        return js_new(rt, NULL, s, n, out);
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        struct jlist *l = jl_new(rt, NULL, n);
        if (!l)
            return -1;
        for (size_t i = 0; i < n; i++) {
            struct jv v;
            if (from_json(rt, json_array_get(j, i), &v, depth + 1) || jl_push(rt, NULL, l, v)) {
                jv_drop(rt, jv_list(l));
                return -1;
            }
        }
        *out = jv_list(l);
        return 0;
    }
    case JSON_OBJECT: {
        struct jdict *d = jd_new(rt, NULL);
        if (!d)
            return -1;
        const char *key;
        size_t klen;
        json_t *val;
        void *tmp;
        json_object_keylen_foreach_safe((json_t *)j, tmp, key, klen, val)
        {
            struct jv k, v;
            if (!ju_valid(key, klen)) {
                jerr(rt, NULL, CIT_ERR_FORMAT, "variable key is not valid UTF-8");
                goto fail;
            }
            if (js_new(rt, NULL, key, klen, &k))
                goto fail;
            if (from_json(rt, val, &v, depth + 1)) {
                jv_drop(rt, k);
                goto fail;
            }
            if (jd_set(rt, NULL, d, k, v))
                goto fail;
        }
        *out = jv_dict(d);
        return 0;
    fail:
        jv_drop(rt, jv_dict(d));
        return -1;
    }
    default: return jerr(rt, NULL, CIT_ERR_TYPE, "unsupported JSON value");
    }
}

static int set_var(struct jrt *rt, struct jdict *vars, const char *name, struct jv v)
{
    struct jv k;
    if (js_new(rt, NULL, name, strlen(name), &k)) {
        jv_drop(rt, v);
        return -1;
    }
    return jd_set(rt, NULL, vars, k, v);
}

static void rt_init(struct jrt *rt, const struct cit_template_options *opts, char *err, size_t errlen)
{
    struct cit_template_options def;
    if (!opts) {
        cit_template_options_default(&def);
        opts = &def;
    }
    memset(rt, 0, sizeof *rt);
    rt->mem_limit = opts->limits.max_memory ? opts->limits.max_memory : ((size_t)128 << 20);
    rt->max_steps = opts->limits.max_steps ? opts->limits.max_steps : 20u * 1000 * 1000;
    rt->max_depth = opts->limits.max_depth ? opts->limits.max_depth : 500;
    rt->max_str = opts->limits.max_output ? opts->limits.max_output : ((size_t)16 << 20);
    rt->now = (time_t)(opts->now ? opts->now : (int64_t)time(NULL)) + opts->utc_offset_s;
    rt->err = err;
    rt->errlen = errlen;
    rt->st = CIT_OK;
}

/* Renders with vars (an owned dict, which the render releases). */
static enum cit_status finish_render(struct jrt *rt, const struct jtpl *t, struct jdict *vars, char **out,
                                     size_t *out_len)
{
    int rc = jrender(rt, t, vars, out, out_len);
    if (rc) {
        free(*out);
        *out = NULL;
        *out_len = 0;
        return rt->st != CIT_OK ? rt->st : CIT_ERR_FORMAT;
    }
    return CIT_OK;
}

int jrender_json(const struct jtpl *t, const json_t *vars, const struct cit_template_options *opts, char **out,
                 size_t *out_len, size_t *mem_left, enum cit_status *st, char *err, size_t errlen)
{
    struct jrt rt;
    rt_init(&rt, opts, err, errlen);
    struct jv root = {.t = JT_NONE};
    *st = CIT_OK;
    if (vars) {
        if (from_json(&rt, vars, &root, 0))
            *st = rt.st;
    } else {
        struct jdict *d = jd_new(&rt, NULL);
        if (!d)
            *st = rt.st;
        else
            root = jv_dict(d);
    }
    if (*st == CIT_OK)
        *st = finish_render(&rt, t, root.u.d, out, out_len);
    if (mem_left)
        *mem_left = rt.mem_used;
    return *st == CIT_OK ? 0 : -1;
}

enum cit_status cit_template_render(const struct cit_template *t, const json_t *vars,
                                    const struct cit_template_options *opts, char **out, size_t *out_len, char *err,
                                    size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    if (!t)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "template: no template");
    if (vars && !json_is_object(vars))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "template: variables must be a JSON object");
    enum cit_status st;
    jrender_json(t->tpl, vars, opts, out, out_len, NULL, &st, err, errlen);
    return st;
}

enum cit_status cit_template_render_chat(const struct cit_template *t, const json_t *messages,
                                         bool add_generation_prompt, const char *bos_token, const char *eos_token,
                                         const json_t *extra, const struct cit_template_options *opts, char **out,
                                         size_t *out_len, char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    if (!t)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "template: no template");
    if (!json_is_array(messages))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "template: messages must be a JSON array");
    if (extra && !json_is_object(extra))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "template: extra variables must be a JSON object");
    struct jrt rt;
    rt_init(&rt, opts, err, errlen);
    struct jv root, v;
    if (extra) {
        if (from_json(&rt, extra, &root, 0))
            return rt.st;
    } else {
        struct jdict *d = jd_new(&rt, NULL);
        if (!d)
            return rt.st;
        root = jv_dict(d);
    }
    struct jdict *d = root.u.d;
    const char *bos = bos_token ? bos_token : cit_template_bos(t);
    const char *eos = eos_token ? eos_token : cit_template_eos(t);
    if (!ju_valid(bos, strlen(bos)) || !ju_valid(eos, strlen(eos))) {
        jv_drop(&rt, root);
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "template: bos/eos token text is not valid UTF-8");
    }
    if (from_json(&rt, messages, &v, 0) || set_var(&rt, d, "messages", v) ||
        set_var(&rt, d, "add_generation_prompt", jv_bool(add_generation_prompt)) ||
        js_new(&rt, NULL, bos, strlen(bos), &v) || set_var(&rt, d, "bos_token", v) ||
        js_new(&rt, NULL, eos, strlen(eos), &v) || set_var(&rt, d, "eos_token", v)) {
        jv_drop(&rt, root);
        return rt.st;
    }
    return finish_render(&rt, t->tpl, d, out, out_len);
}

/* ---------------------------------------------------------------- GGUF */

static char *token_text(const struct cit_gguf *g, const char *id_key)
{
    uint64_t id;
    struct cit_gguf_str s;
    if (cit_gguf_get_uint(g, id_key, &id, NULL, 0) != CIT_OK ||
        cit_gguf_arr_str(g, "tokenizer.ggml.tokens", id, &s, NULL, 0) != CIT_OK || s.len > 4096 ||
        memchr(s.ptr, '\0', s.len) || !ju_valid(s.ptr, s.len))
        return dup_n("", 0);
    return dup_n(s.ptr, s.len);
}

enum cit_status cit_template_from_gguf(const struct cit_gguf *g, struct cit_template **out, char *err, size_t errlen)
{
    *out = NULL;
    struct cit_gguf_str src;
    bool fallback = false;
    enum cit_status st = cit_gguf_get_str(g, "tokenizer.chat_template", &src, err, errlen);
    if (st == CIT_ERR_NOT_FOUND) {
        if (err && errlen)
            err[0] = '\0';
        src.ptr = fallback_src;
        src.len = strlen(fallback_src);
        fallback = true;
    } else if (st != CIT_OK) {
        return st;
    }
    if (src.len > CIT_TEMPLATE_MAX_SOURCE)
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "tokenizer.chat_template: %llu bytes exceeds the %zu-byte limit",
                        (unsigned long long)src.len, CIT_TEMPLATE_MAX_SOURCE);
    char msg[512] = "";
    st = cit_template_parse(src.ptr, (size_t)src.len, out, msg, sizeof msg);
    if (st != CIT_OK)
        return cit_fail(st, err, errlen, "tokenizer.chat_template: %s", msg);
    struct cit_template *t = *out;
    t->fallback = fallback;
    free(t->bos);
    free(t->eos);
    t->bos = token_text(g, "tokenizer.ggml.bos_token_id");
    t->eos = token_text(g, "tokenizer.ggml.eos_token_id");
    if (!t->bos || !t->eos) {
        cit_template_free(t);
        *out = NULL;
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "template: out of memory");
    }
    return CIT_OK;
}
