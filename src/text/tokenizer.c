/* tokenizer.c: loading a tokenizer from GGUF metadata, the accessors, and
 * tokenization's outer loop (special-token splitting, BOS/EOS).
 *
 * Everything read from the file is checked here once: array lengths against
 * the vocabulary, token lengths, types, scores and every special id, so the
 * tokenizing and rendering code can index its tables without further checks
 * (ids from callers are still checked at each public entry point).
 *
 * The conventions follow the reference engine (llama.cpp), whose outputs the
 * conformance vectors record: a later token with the same text as an earlier
 * one shadows it in lookups; user-defined tokens are split out of the text
 * even when special tokens are not parsed; SentencePiece puts its space
 * prefix before the text and before any text that follows a special token. */
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "citadel/gguf.h"
#include "text/tok_impl.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_PRE "tokenizer.ggml.pre"

/* ---- small vectors ---- */

bool idvec_push(struct idvec *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 256;
        if (nc > SIZE_MAX / sizeof *v->v)
            return false;
        int32_t *p = realloc(v->v, nc * sizeof *p);
        if (!p)
            return false;
        v->v = p;
        v->cap = nc;
    }
    v->v[v->n++] = id;
    return true;
}

bool tok_work_reserve_syms(struct tok_work *w, size_t n)
{
    if (n <= w->sym_cap)
        return true;
    size_t nc = w->sym_cap ? w->sym_cap : 256;
    while (nc < n) {
        if (nc > SIZE_MAX / 2 / sizeof *w->syms)
            return false;
        nc *= 2;
    }
    struct sym *p = realloc(w->syms, nc * sizeof *p);
    if (!p)
        return false;
    w->syms = p;
    w->sym_cap = nc;
    return true;
}

bool tok_work_reserve_buf(struct tok_work *w, size_t n)
{
    if (n <= w->buf_cap)
        return true;
    size_t nc = w->buf_cap ? w->buf_cap : 1024;
    while (nc < n) {
        if (nc > SIZE_MAX / 2)
            return false;
        nc *= 2;
    }
    char *p = realloc(w->buf, nc);
    if (!p)
        return false;
    w->buf = p;
    w->buf_cap = nc;
    return true;
}

static void tok_work_free(struct tok_work *w)
{
    free(w->syms);
    free(w->buf);
    bigram_heap_free(&w->heap);
    span_vec_free(&w->words);
    pretok_work_free(&w->pre);
}

/* ---- loading ---- */

/* Element i of a numeric metadata array (unaligned little-endian data). */
static bool arr_int(enum cit_gguf_type t, const void *data, uint64_t i, int64_t *out)
{
    const uint8_t *p = (const uint8_t *)data + i * cit_gguf_type_size(t);
    switch (t) {
    case CIT_GGUF_UINT8: *out = p[0]; return true;
    case CIT_GGUF_INT8: *out = (int8_t)p[0]; return true;
    case CIT_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case CIT_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case CIT_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case CIT_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case CIT_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return true; }
    case CIT_GGUF_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        *out = v > INT64_MAX ? -1 : (int64_t)v;
        return true;
    }
    default: return false;
    }
}

static enum cit_status load_tokens(struct cit_tokenizer *tok, const struct cit_gguf *g, char *err, size_t errlen)
{
    enum cit_gguf_type et;
    uint64_t n;
    const void *data;
    enum cit_status st = cit_gguf_get_arr(g, KEY_TOKENS, &et, &n, &data, err, errlen);
    if (st != CIT_OK)
        return st == CIT_ERR_NOT_FOUND ? cit_fail(st, err, errlen, "%s: missing", KEY_TOKENS) : st;
    if (et != CIT_GGUF_STRING)
        return cit_fail(CIT_ERR_TYPE, err, errlen, "%s: array of %s, expected strings", KEY_TOKENS,
                        cit_gguf_type_name(et));
    if (n == 0 || n > TOK_MAX_VOCAB)
        return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s: %llu tokens (allowed 1..%u)", KEY_TOKENS,
                        (unsigned long long)n, TOK_MAX_VOCAB);
    tok->n_vocab = (uint32_t)n;

    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct cit_gguf_str s;
        if ((st = cit_gguf_arr_str(g, KEY_TOKENS, i, &s, err, errlen)) != CIT_OK)
            return st;
        if (s.len > TOK_MAX_TOKEN_BYTES)
            return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s[%llu]: %llu bytes (limit %u)", KEY_TOKENS,
                            (unsigned long long)i, (unsigned long long)s.len, TOK_MAX_TOKEN_BYTES);
        if (!cit_add_u64(total, s.len, &total) || total > STRTAB_MAX_BYTES / 2)
            return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s: token texts too large in total", KEY_TOKENS);
    }
    if (!strtab_init(&tok->strs, tok->n_vocab, total))
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "%s: out of memory for %u tokens", KEY_TOKENS, tok->n_vocab);
    for (uint64_t i = 0; i < n; i++) {
        struct cit_gguf_str s;
        uint32_t idx;
        if ((st = cit_gguf_arr_str(g, KEY_TOKENS, i, &s, err, errlen)) != CIT_OK)
            return st;
        if (!strtab_append(&tok->strs, s.ptr, (size_t)s.len, &idx))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "%s: out of memory", KEY_TOKENS);
    }
    /* In id order, so a later duplicate text wins the lookup. */
    for (uint32_t i = 0; i < tok->n_vocab; i++)
        if (!strtab_index(&tok->strs, i))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "%s: out of memory", KEY_TOKENS);
    return CIT_OK;
}

static enum cit_status load_scores_types(struct cit_tokenizer *tok, const struct cit_gguf *g, char *err,
                                         size_t errlen)
{
    uint32_t nv = tok->n_vocab;
    tok->scores = calloc(nv, sizeof *tok->scores);
    tok->types = malloc(nv);
    tok->eog = calloc(nv, 1);
    if (!tok->scores || !tok->types || !tok->eog)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenizer: out of memory");
    memset(tok->types, CIT_TOKEN_NORMAL, nv);

    enum cit_gguf_type et;
    uint64_t n;
    const void *data;
    enum cit_status st = cit_gguf_get_arr(g, KEY_SCORES, &et, &n, &data, err, errlen);
    if (st == CIT_OK) {
        if (et != CIT_GGUF_FLOAT32 && et != CIT_GGUF_FLOAT64)
            return cit_fail(CIT_ERR_TYPE, err, errlen, "%s: array of %s, expected floats", KEY_SCORES,
                            cit_gguf_type_name(et));
        if (n != nv)
            return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s: %llu scores for %u tokens", KEY_SCORES,
                            (unsigned long long)n, nv);
        for (uint32_t i = 0; i < nv; i++) {
            float f;
            if (et == CIT_GGUF_FLOAT32) {
                memcpy(&f, (const uint8_t *)data + (size_t)i * 4, 4);
            } else {
                double d;
                memcpy(&d, (const uint8_t *)data + (size_t)i * 8, 8);
                f = (float)d;
            }
            if (f != f)
                return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s[%u]: NaN", KEY_SCORES, i);
            tok->scores[i] = f == 0.0f ? 0.0f : f; /* -0 == +0, as the reference compares */
        }
    } else if (st != CIT_ERR_NOT_FOUND) {
        return st;
    }

    st = cit_gguf_get_arr(g, KEY_TYPES, &et, &n, &data, err, errlen);
    if (st == CIT_OK) {
        int64_t v;
        if (!arr_int(et, data, 0, &v))
            return cit_fail(CIT_ERR_TYPE, err, errlen, "%s: array of %s, expected integers", KEY_TYPES,
                            cit_gguf_type_name(et));
        if (n != nv)
            return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s: %llu types for %u tokens", KEY_TYPES,
                            (unsigned long long)n, nv);
        for (uint32_t i = 0; i < nv; i++) {
            arr_int(et, data, i, &v);
            if (v < CIT_TOKEN_UNDEFINED || v > CIT_TOKEN_BYTE)
                return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s[%u]: type %lld (allowed 0..6)", KEY_TYPES, i,
                                (long long)v);
            tok->types[i] = (uint8_t)v;
        }
    } else if (st != CIT_ERR_NOT_FOUND) {
        return st;
    }
    return CIT_OK;
}

/* Reads a special id: absent keeps *id; 0xFFFFFFFF or -1 mean "none". */
static enum cit_status load_id(const struct cit_tokenizer *tok, const struct cit_gguf *g, const char *key,
                               int32_t *id, char *err, size_t errlen)
{
    int64_t v;
    enum cit_status st = cit_gguf_get_int(g, key, &v, err, errlen);
    if (st == CIT_ERR_NOT_FOUND)
        return CIT_OK;
    if (st == CIT_ERR_TYPE) {
        /* An unsigned 64-bit value past INT64_MAX: all-ones also means none. */
        uint64_t u;
        if (cit_gguf_get_uint(g, key, &u, NULL, 0) != CIT_OK)
            return st;
        if (u == UINT64_MAX) {
            *id = CIT_TOKEN_NONE;
            return CIT_OK;
        }
        return cit_fail(CIT_ERR_RANGE, err, errlen, "%s: id %llu outside the vocabulary of %u tokens", key,
                        (unsigned long long)u, tok->n_vocab);
    }
    if (st != CIT_OK)
        return st;
    if (v == -1 || v == (int64_t)UINT32_MAX) {
        *id = CIT_TOKEN_NONE;
        return CIT_OK;
    }
    if (v < 0 || v >= (int64_t)tok->n_vocab)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "%s: id %lld outside the vocabulary of %u tokens", key,
                        (long long)v, tok->n_vocab);
    *id = (int32_t)v;
    return CIT_OK;
}

static enum cit_status load_bool(const struct cit_gguf *g, const char *key, bool *b, char *err, size_t errlen)
{
    enum cit_status st = cit_gguf_get_bool(g, key, b, err, errlen);
    return st == CIT_ERR_NOT_FOUND ? CIT_OK : st;
}

static int32_t find_cstr(const struct cit_tokenizer *tok, const char *s)
{
    int64_t e = strtab_find(&tok->strs, s, strlen(s));
    return e >= 0 && e < (int64_t)tok->n_vocab ? (int32_t)e : CIT_TOKEN_NONE;
}

/* First token of the list present in the vocabulary. */
static int32_t find_first(const struct cit_tokenizer *tok, const char *const *texts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int32_t id = find_cstr(tok, texts[i]);
        if (id != CIT_TOKEN_NONE)
            return id;
    }
    return CIT_TOKEN_NONE;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* End-of-generation tokens: the reference recognises them by text, since
 * GGUF metadata names at most eos/eot/eom. */
static void build_eog(struct cit_tokenizer *tok)
{
    static const char *const eot_texts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
        "_<EOT>", "<\xEF\xBD\234end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<end_of_utterance>",
    };
    static const char *const eog_texts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
        "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
    };
    static const char *const fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"};
    static const char *const fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
    static const char *const fim_sep[] = {"<|file_sep|>"};

    if (tok->eot == CIT_TOKEN_NONE)
        tok->eot = find_first(tok, eot_texts, COUNT(eot_texts));
    if (tok->eom == CIT_TOKEN_NONE)
        tok->eom = find_cstr(tok, "<|eom_id|>");

    int32_t ids[] = {tok->eos, tok->eot, tok->eom, find_first(tok, fim_pad, COUNT(fim_pad)),
                     find_first(tok, fim_rep, COUNT(fim_rep)), find_first(tok, fim_sep, COUNT(fim_sep))};
    for (size_t i = 0; i < COUNT(ids); i++)
        if (ids[i] != CIT_TOKEN_NONE)
            tok->eog[ids[i]] = 1;
    for (size_t i = 0; i < COUNT(eog_texts); i++) {
        int32_t id = find_cstr(tok, eog_texts[i]);
        if (id != CIT_TOKEN_NONE)
            tok->eog[id] = 1;
    }
    /* gpt-oss (harmony): "<|end|>" ends a message, not the generation, when
     * "<|return|>" and "<|call|>" exist. */
    int32_t ret = find_cstr(tok, "<|return|>"), call = find_cstr(tok, "<|call|>"), end = find_cstr(tok, "<|end|>");
    if (ret != CIT_TOKEN_NONE && call != CIT_TOKEN_NONE && end != CIT_TOKEN_NONE && end != tok->eos)
        tok->eog[end] = 0;
}

static enum cit_status build_specials(struct cit_tokenizer *tok, char *err, size_t errlen)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < tok->n_vocab; i++) {
        uint8_t t = tok->types[i];
        if ((t == CIT_TOKEN_CONTROL || t == CIT_TOKEN_USER_DEFINED || t == CIT_TOKEN_UNKNOWN) && tok->strs.len[i])
            n++;
    }
    tok->specials = malloc((n ? n : 1) * sizeof *tok->specials);
    if (!tok->specials)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenizer: out of memory");
    n = 0;
    for (uint32_t i = 0; i < tok->n_vocab; i++) {
        uint8_t t = tok->types[i];
        if ((t == CIT_TOKEN_CONTROL || t == CIT_TOKEN_USER_DEFINED || t == CIT_TOKEN_UNKNOWN) && tok->strs.len[i])
            tok->specials[n++] = (int32_t)i;
    }
    tok->n_specials = n;
    /* Bottom-up merge sort on (length descending, id ascending): a total
     * order, so the split never depends on an unstable sort's whims. */
    if (n > 1) {
        int32_t *tmp = malloc(n * sizeof *tmp);
        if (!tmp)
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenizer: out of memory");
        int32_t *src = tok->specials, *dst = tmp;
        for (uint32_t w = 1; w < n; w *= 2) {
            for (uint32_t lo = 0; lo < n; lo += 2 * w) {
                uint32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
                uint32_t i = lo, j = mid, k = lo;
                while (i < mid && j < hi) {
                    uint32_t li = tok->strs.len[src[i]], lj = tok->strs.len[src[j]];
                    /* ids are ascending within each run, so ties keep order */
                    dst[k++] = lj > li ? src[j++] : src[i++];
                }
                while (i < mid)
                    dst[k++] = src[i++];
                while (j < hi)
                    dst[k++] = src[j++];
            }
            int32_t *t = src;
            src = dst;
            dst = t;
        }
        if (src != tok->specials)
            memcpy(tok->specials, src, n * sizeof *src);
        free(tmp);
    }
    return CIT_OK;
}

/* SentencePiece byte fallback: "<0xXX>", else the byte as a one-byte token,
 * else the unknown token. */
static void build_byte_tokens(struct cit_tokenizer *tok)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char s[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int64_t e = strtab_find(&tok->strs, s, 6);
        if (e < 0) {
            char c = (char)b;
            e = strtab_find(&tok->strs, &c, 1);
        }
        tok->byte_tok[b] = e >= 0 && e < (int64_t)tok->n_vocab ? (int32_t)e : tok->unk;
    }
}

static enum cit_status load_all(struct cit_tokenizer *tok, const struct cit_gguf *g, char *err, size_t errlen)
{
    struct cit_gguf_str model;
    enum cit_status st = cit_gguf_get_str(g, KEY_MODEL, &model, err, errlen);
    if (st == CIT_ERR_NOT_FOUND)
        return cit_fail(st, err, errlen, "%s: missing (the file has no tokenizer)", KEY_MODEL);
    if (st != CIT_OK)
        return st;
    if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) {
        tok->kind = CIT_TOKENIZER_SPM;
    } else if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) {
        tok->kind = CIT_TOKENIZER_BPE;
    } else {
        int shown = model.len > 64 ? 64 : (int)model.len;
        return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen, "%s: tokenizer \"%.*s\" is not supported (llama, gpt2)",
                        KEY_MODEL, shown, model.ptr);
    }

    if ((st = load_tokens(tok, g, err, errlen)) != CIT_OK)
        return st;
    if ((st = load_scores_types(tok, g, err, errlen)) != CIT_OK)
        return st;

    /* Defaults of the reference for each model, before the metadata. */
    tok->bos = tok->eos = tok->eot = tok->eom = tok->unk = tok->pad = CIT_TOKEN_NONE;
    if (tok->kind == CIT_TOKENIZER_SPM) {
        tok->unk = tok->n_vocab > 0 ? 0 : CIT_TOKEN_NONE;
        tok->bos = tok->n_vocab > 1 ? 1 : CIT_TOKEN_NONE;
        tok->eos = tok->n_vocab > 2 ? 2 : CIT_TOKEN_NONE;
        tok->add_bos = true;
        tok->add_eos = false;
        tok->add_space_prefix = true;
    } else {
        struct cit_gguf_str pre;
        st = cit_gguf_get_str(g, KEY_PRE, &pre, err, errlen);
        if (st != CIT_OK && st != CIT_ERR_NOT_FOUND)
            return st;
        if ((st = pretok_init(&tok->pre, st == CIT_OK ? pre.ptr : NULL, st == CIT_OK ? (size_t)pre.len : 0, err,
                              errlen)) != CIT_OK)
            return st;
        tok->add_bos = tok->pre.add_bos;
        tok->add_eos = false;
        tok->add_space_prefix = false;
        if ((st = bpe_load_merges(tok, g, err, errlen)) != CIT_OK)
            return st;
    }

    static const struct {
        const char *key;
        size_t off;
    } ids[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(struct cit_tokenizer, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(struct cit_tokenizer, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(struct cit_tokenizer, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(struct cit_tokenizer, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(struct cit_tokenizer, unk)},
        {"tokenizer.ggml.padding_token_id", offsetof(struct cit_tokenizer, pad)},
    };
    for (size_t i = 0; i < COUNT(ids); i++)
        if ((st = load_id(tok, g, ids[i].key, (int32_t *)((char *)tok + ids[i].off), err, errlen)) != CIT_OK)
            return st;
    if ((st = load_bool(g, "tokenizer.ggml.add_bos_token", &tok->add_bos, err, errlen)) != CIT_OK ||
        (st = load_bool(g, "tokenizer.ggml.add_eos_token", &tok->add_eos, err, errlen)) != CIT_OK)
        return st;
    if (tok->kind == CIT_TOKENIZER_SPM &&
        (st = load_bool(g, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix, err, errlen)) != CIT_OK)
        return st;
    if (tok->bos == CIT_TOKEN_NONE)
        tok->add_bos = false;
    if (tok->eos == CIT_TOKEN_NONE)
        tok->add_eos = false;

    build_eog(tok);
    if ((st = build_specials(tok, err, errlen)) != CIT_OK)
        return st;
    if (tok->kind == CIT_TOKENIZER_SPM)
        build_byte_tokens(tok);
    return tok_build_pieces(tok, err, errlen);
}

enum cit_status cit_tokenizer_load(const struct cit_gguf *g, struct cit_tokenizer **out, char *err, size_t errlen)
{
    if (!out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_tokenizer_load: out is NULL");
    *out = NULL;
    if (!g)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_tokenizer_load: no GGUF handle");
    struct cit_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenizer: out of memory");
    for (int b = 0; b < 256; b++)
        tok->byte_tok[b] = tok->byte_sym[b] = CIT_TOKEN_NONE;
    enum cit_status st = load_all(tok, g, err, errlen);
    if (st != CIT_OK) {
        cit_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return CIT_OK;
}

void cit_tokenizer_free(struct cit_tokenizer *tok)
{
    if (!tok)
        return;
    strtab_free(&tok->strs);
    free(tok->scores);
    free(tok->types);
    free(tok->eog);
    free(tok->piece_pool);
    free(tok->piece_off);
    free(tok->specials);
    pretok_free(&tok->pre);
    pairmap_free(&tok->merges);
    free(tok);
}

/* ---- accessors ---- */

static inline bool id_ok(const struct cit_tokenizer *tok, int32_t id)
{
    return id >= 0 && (uint32_t)id < tok->n_vocab;
}

enum cit_tokenizer_kind cit_tokenizer_kind(const struct cit_tokenizer *tok) { return tok->kind; }
const char *cit_tokenizer_pre(const struct cit_tokenizer *tok) { return tok->pre.name ? tok->pre.name : ""; }
uint32_t cit_tokenizer_n_vocab(const struct cit_tokenizer *tok) { return tok->n_vocab; }
uint32_t cit_tokenizer_n_merges(const struct cit_tokenizer *tok) { return tok->n_merges; }
int32_t cit_tokenizer_bos(const struct cit_tokenizer *tok) { return tok->bos; }
int32_t cit_tokenizer_eos(const struct cit_tokenizer *tok) { return tok->eos; }
int32_t cit_tokenizer_eot(const struct cit_tokenizer *tok) { return tok->eot; }
int32_t cit_tokenizer_eom(const struct cit_tokenizer *tok) { return tok->eom; }
int32_t cit_tokenizer_unk(const struct cit_tokenizer *tok) { return tok->unk; }
int32_t cit_tokenizer_pad(const struct cit_tokenizer *tok) { return tok->pad; }
bool cit_tokenizer_add_bos(const struct cit_tokenizer *tok) { return tok->add_bos; }
bool cit_tokenizer_add_eos(const struct cit_tokenizer *tok) { return tok->add_eos; }
bool cit_tokenizer_add_space_prefix(const struct cit_tokenizer *tok) { return tok->add_space_prefix; }

bool cit_tokenizer_is_eog(const struct cit_tokenizer *tok, int32_t id)
{
    return id_ok(tok, id) && tok->eog[id];
}

enum cit_token_type cit_tokenizer_token_type(const struct cit_tokenizer *tok, int32_t id)
{
    return id_ok(tok, id) ? (enum cit_token_type)tok->types[id] : CIT_TOKEN_UNDEFINED;
}

float cit_tokenizer_token_score(const struct cit_tokenizer *tok, int32_t id)
{
    return id_ok(tok, id) ? tok->scores[id] : 0.0f;
}

const char *cit_tokenizer_token_text(const struct cit_tokenizer *tok, int32_t id, size_t *len)
{
    if (!id_ok(tok, id)) {
        if (len)
            *len = 0;
        return NULL;
    }
    size_t l;
    const char *s = strtab_str(&tok->strs, (uint32_t)id, &l);
    if (len)
        *len = l;
    return s;
}

int32_t cit_tokenizer_find(const struct cit_tokenizer *tok, const char *text, size_t len)
{
    if (!text)
        return CIT_TOKEN_NONE;
    int64_t e = strtab_find(&tok->strs, text, len);
    return e >= 0 && e < (int64_t)tok->n_vocab ? (int32_t)e : CIT_TOKEN_NONE;
}

/* ---- tokenization ---- */

/* A piece of the input: raw text, or a special token split out of it. */
struct frag {
    int32_t id; /* special token, or -1 for text */
    size_t start, len;
};

struct fragvec {
    struct frag *v;
    size_t n, cap;
};

static bool frag_push(struct fragvec *f, int32_t id, size_t start, size_t len)
{
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        if (nc > SIZE_MAX / sizeof *f->v)
            return false;
        struct frag *p = realloc(f->v, nc * sizeof *p);
        if (!p)
            return false;
        f->v = p;
        f->cap = nc;
    }
    f->v[f->n++] = (struct frag){id, start, len};
    return true;
}

/* Splits the text fragments of *frags on every occurrence of each special
 * token in turn, longest token first (the reference's order: a longer token
 * claims its text before a shorter one can match inside it). */
static enum cit_status split_specials(const struct cit_tokenizer *tok, const char *text, size_t len,
                                      bool parse_special, struct fragvec *frags, char *err, size_t errlen)
{
    bool present[256] = {false};
    for (size_t i = 0; i < len; i++)
        present[(uint8_t)text[i]] = true;
    struct fragvec next = {0};
    enum cit_status st = CIT_OK;
    for (uint32_t k = 0; k < tok->n_specials; k++) {
        int32_t id = tok->specials[k];
        uint8_t t = tok->types[id];
        if (!parse_special && (t == CIT_TOKEN_CONTROL || t == CIT_TOKEN_UNKNOWN))
            continue;
        size_t sl;
        const char *s = strtab_str(&tok->strs, (uint32_t)id, &sl);
        if (sl > len || !present[(uint8_t)s[0]] || !memmem(text, len, s, sl))
            continue;
        next.n = 0;
        for (size_t f = 0; f < frags->n; f++) {
            struct frag fr = frags->v[f];
            bool ok = true;
            if (fr.id < 0) {
                size_t pos = fr.start, end = fr.start + fr.len;
                const char *hit;
                while (ok && end - pos >= sl && (hit = memmem(text + pos, end - pos, s, sl)) != NULL) {
                    size_t at = (size_t)(hit - text);
                    if (at > pos)
                        ok = frag_push(&next, -1, pos, at - pos);
                    ok = ok && frag_push(&next, id, at, sl);
                    pos = at + sl;
                }
                if (ok && pos < end)
                    ok = frag_push(&next, -1, pos, end - pos);
            } else {
                ok = frag_push(&next, fr.id, fr.start, fr.len);
            }
            if (!ok) {
                st = cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
                goto done;
            }
        }
        struct fragvec t2 = *frags;
        *frags = next;
        next = t2;
    }
done:
    free(next.v);
    return st;
}

static enum cit_status tokenize_into(const struct cit_tokenizer *tok, const char *text, size_t len, bool add_special,
                                     bool parse_special, struct idvec *ids, char *err, size_t errlen)
{
    if (len > CIT_TOKENIZE_MAX_BYTES)
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "tokenize: %zu bytes of text (limit %zu)", len,
                        (size_t)CIT_TOKENIZE_MAX_BYTES);
    if (!text && len)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "tokenize: text is NULL");
    struct fragvec frags = {0};
    struct tok_work w = {0};
    enum cit_status st = CIT_OK;
    if (len && !frag_push(&frags, -1, 0, len)) {
        st = cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
        goto done;
    }
    if (len && (st = split_specials(tok, text, len, parse_special, &frags, err, errlen)) != CIT_OK)
        goto done;

    if (add_special && tok->add_bos && !idvec_push(ids, tok->bos))
        goto nomem;
    bool prev_special = true; /* SentencePiece: prefix the first text */
    for (size_t f = 0; f < frags.n; f++) {
        struct frag fr = frags.v[f];
        if (fr.id >= 0) {
            if (!idvec_push(ids, fr.id))
                goto nomem;
            prev_special = true;
            continue;
        }
        if (tok->kind == CIT_TOKENIZER_SPM)
            st = spm_tokenize(tok, &w, text + fr.start, fr.len, tok->add_space_prefix && prev_special, ids, err,
                              errlen);
        else
            st = bpe_tokenize(tok, &w, text + fr.start, fr.len, ids, err, errlen);
        if (st != CIT_OK)
            goto done;
        prev_special = false;
    }
    if (add_special && tok->add_eos && !idvec_push(ids, tok->eos))
        goto nomem;
    goto done;
nomem:
    st = cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
done:
    free(frags.v);
    tok_work_free(&w);
    return st;
}

enum cit_status cit_tokenize(const struct cit_tokenizer *tok, const char *text, size_t len, bool add_special,
                             bool parse_special, int32_t *out, size_t cap, size_t *n_out, char *err, size_t errlen)
{
    if (!tok || !n_out || (!out && cap))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_tokenize: NULL argument");
    *n_out = 0;
    struct idvec ids = {0};
    enum cit_status st = tokenize_into(tok, text, len, add_special, parse_special, &ids, err, errlen);
    if (st == CIT_OK) {
        *n_out = ids.n;
        if (ids.n && cap)
            memcpy(out, ids.v, (ids.n < cap ? ids.n : cap) * sizeof *ids.v);
        if (ids.n > cap)
            st = cit_fail(CIT_ERR_LIMIT, err, errlen, "tokenize: %zu tokens do not fit in %zu", ids.n, cap);
    }
    free(ids.v);
    return st;
}

enum cit_status cit_tokenize_alloc(const struct cit_tokenizer *tok, const char *text, size_t len, bool add_special,
                                   bool parse_special, int32_t **out, size_t *n_out, char *err, size_t errlen)
{
    if (!tok || !out || !n_out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_tokenize_alloc: NULL argument");
    *out = NULL;
    *n_out = 0;
    struct idvec ids = {0};
    enum cit_status st = tokenize_into(tok, text, len, add_special, parse_special, &ids, err, errlen);
    if (st != CIT_OK || ids.n == 0) {
        free(ids.v);
        return st;
    }
    *out = ids.v;
    *n_out = ids.n;
    return CIT_OK;
}

enum cit_status cit_tokenize_prompt(const struct cit_tokenizer *tok, const char *text, size_t len, int32_t **out,
                                    size_t *n_out, char *err, size_t errlen)
{
    size_t bl = 0;
    const char *bos = tok ? cit_tokenizer_token_text(tok, cit_tokenizer_bos(tok), &bl) : NULL;
    bool has_bos = bos && bl > 0 && len >= bl && memcmp(text, bos, bl) == 0;
    return cit_tokenize_alloc(tok, text, len, !has_bos, true, out, n_out, err, errlen);
}
