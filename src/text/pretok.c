/* pretok.c: regex sets of the byte-level BPE pre-tokenizers and the
 * split-by-matches-and-gaps procedure (see pretok.h).
 *
 * The patterns are the published pre-tokenizer regexes of each model family
 * in the form the reference engine (llama.cpp) uses them: case-insensitive
 * contractions spelled out as [sS] etc., and the GPT-2 pattern without its
 * final "|\s+" alternative (a lone whitespace it would catch ends up as a
 * one-character gap piece instead, which is the same piece). Non-ASCII
 * characters are written as \x{...} so this file stays ASCII. The long
 * deepseek-llm letter class lists the cased-letter ranges of its tokenizer. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/pretok.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "text/utf8.h"

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define LLAMA3_RE                                                                                     \
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|" \
                 "\\s+(?!\\S)|\\s+"
#define QWEN2_RE                                                                                   \
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|" \
                 "\\s+(?!\\S)|\\s+"
#define CJK_RE "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define DS_LETTERS                                                                                       \
    "[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"        \
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"  \
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"         \
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"       \
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"       \
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"                  \
    "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"                \
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"       \
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"         \
    "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"                 \
    "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"                 \
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"        \
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"       \
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}" \
    "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]"};
static const char *const re_gpt2[] = {GPT2_RE};
static const char *const re_llama3[] = {LLAMA3_RE};
static const char *const re_qwen2[] = {QWEN2_RE};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_RE, "[0-9][0-9][0-9]"};
static const char *const re_starcoder[] = {"\\p{N}", GPT2_RE};
static const char *const re_deepseek_coder[] = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_RE, "\\p{N}"};
static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    "\\s?" DS_LETTERS "+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    CJK_RE,
    "\\p{N}+",
};

#define SET(a) a, sizeof a / sizeof a[0]

struct pre_set {
    const char *name;
    const char *const *re;
    unsigned n;
    bool ignore_merges;
    bool add_bos;
};

static const struct pre_set sets[] = {
    {"default", SET(re_default), false, false},
    {"gpt-2", SET(re_gpt2), false, false},
    {"llama3", SET(re_llama3), true, true},
    {"dbrx", SET(re_llama3), false, false},
    {"qwen2", SET(re_qwen2), false, false},
    {"falcon", SET(re_falcon), false, false},
    {"starcoder", SET(re_starcoder), false, false},
    {"deepseek-coder", SET(re_deepseek_coder), false, false},
    {"deepseek-llm", SET(re_deepseek_llm), false, false},
};

/* tokenizer.ggml.pre values and the set each selects (the reference's
 * grouping: families that share a pattern share a set). */
static const struct {
    const char *pre;
    const char *set;
} aliases[] = {
    {"default", "default"},
    {"llama3", "llama3"},       {"llama-v3", "llama3"},      {"llama-bpe", "llama3"},
    {"falcon3", "llama3"},      {"falcon-h1", "llama3"},     {"pixtral", "llama3"},
    {"dbrx", "dbrx"},           {"smaug-bpe", "dbrx"},
    {"deepseek-llm", "deepseek-llm"},
    {"deepseek-coder", "deepseek-coder"},
    {"falcon", "falcon"},
    {"gpt-2", "gpt-2"},         {"mpt", "gpt-2"},            {"olmo", "gpt-2"},
    {"phi-2", "gpt-2"},         {"jais", "gpt-2"},           {"gpt-neox", "gpt-2"},
    {"roberta-bpe", "gpt-2"},   {"jina-es", "gpt-2"},        {"jina-de", "gpt-2"},
    {"jina-v1-en", "gpt-2"},    {"jina-v2-es", "gpt-2"},     {"jina-v2-de", "gpt-2"},
    {"jina-v2-code", "gpt-2"},  {"exaone4", "gpt-2"},
    {"starcoder", "starcoder"}, {"refact", "starcoder"},     {"smollm", "starcoder"},
    {"command-r", "starcoder"}, {"codeshell", "starcoder"},  {"exaone", "starcoder"},
    {"minerva-7b", "starcoder"},
    {"qwen2", "qwen2"},         {"stablelm2", "qwen2"},      {"deepseek-r1-qwen", "qwen2"},
    {"megrez", "qwen2"},
};

bool span_push(struct span_vec *v, uint32_t start, uint32_t len)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        if (nc > SIZE_MAX / sizeof *v->v)
            return false;
        struct span *p = realloc(v->v, nc * sizeof *p);
        if (!p)
            return false;
        v->v = p;
        v->cap = nc;
    }
    v->v[v->n].start = start;
    v->v[v->n].len = len;
    v->n++;
    return true;
}

void span_vec_free(struct span_vec *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

enum cit_status pretok_init(struct pretok *p, const char *name, size_t len, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    const char *set_name = NULL;
    if (!name) {
        set_name = "default";
    } else {
        for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
            if (strlen(aliases[i].pre) == len && memcmp(aliases[i].pre, name, len) == 0)
                set_name = aliases[i].set;
    }
    if (!set_name) {
        int shown = len > 64 ? 64 : (int)len;
        return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen, "tokenizer.ggml.pre: unknown pre-tokenizer \"%.*s%s\"",
                        shown, name, len > 64 ? "..." : "");
    }
    const struct pre_set *s = NULL;
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (strcmp(sets[i].name, set_name) == 0)
            s = &sets[i];
    p->name = s->name;
    p->ignore_merges = s->ignore_merges;
    p->add_bos = s->add_bos;
    for (unsigned i = 0; i < s->n; i++) {
        int ec;
        PCRE2_SIZE eo;
        /* DOLLAR_ENDONLY: "$" means the end of the piece, as in ECMAScript
         * regexes, not also "before a final newline". */
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)s->re[i], PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                                         &ec, &eo, NULL);
        if (!code) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(ec, msg, sizeof msg);
            pretok_free(p);
            return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen, "pre-tokenizer %s regex %u: %s at offset %zu",
                            s->name, i, (const char *)msg, (size_t)eo);
        }
        /* Without JIT (not built in, or no executable memory) the
         * interpreter gives the same matches, only slower. */
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        p->code[p->n_regex++] = code;
    }
    return CIT_OK;
}

void pretok_free(struct pretok *p)
{
    for (unsigned i = 0; i < p->n_regex; i++)
        pcre2_code_free((pcre2_code *)p->code[i]);
    p->n_regex = 0;
}

void pretok_work_free(struct pretok_work *w)
{
    pcre2_match_data_free((pcre2_match_data *)w->match_data);
    pcre2_match_context_free((pcre2_match_context *)w->mcontext);
    pcre2_jit_stack_free((pcre2_jit_stack *)w->jit_stack);
    span_vec_free(&w->tmp);
    memset(w, 0, sizeof *w);
}

static bool work_ready(struct pretok_work *w)
{
    if (w->match_data)
        return true;
    w->match_data = pcre2_match_data_create(1, NULL);
    w->mcontext = pcre2_match_context_create(NULL);
    /* The default 32 KiB JIT stack is plenty for these patterns; allow up
     * to 1 MiB so a pathological input fails late rather than early. */
    w->jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    if (!w->match_data || !w->mcontext)
        return false;
    if (w->jit_stack)
        pcre2_jit_stack_assign((pcre2_match_context *)w->mcontext, NULL, w->jit_stack);
    return true;
}

/* Splits one piece with one regex, appending pieces to out. */
static enum cit_status split_one(const pcre2_code *code, struct pretok_work *w, const char *text, struct span in,
                                 struct span_vec *out, char *err, size_t errlen)
{
    const uint8_t *subj = (const uint8_t *)text + in.start;
    size_t n = in.len, pos = 0, gap = 0;
    pcre2_match_data *md = (pcre2_match_data *)w->match_data;
    while (pos < n) {
        int rc = pcre2_match(code, subj, n, pos, 0, md, (pcre2_match_context *)w->mcontext);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return cit_fail(CIT_ERR_LIMIT, err, errlen, "pre-tokenizer: regex match failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms || ms < pos || me > n) {
            /* Empty match (no current pattern has one): step one character
             * and keep the gap open. */
            pos = (ms >= pos && ms < n ? ms : pos);
            pos += cit_utf8_next(subj + pos, n - pos, NULL, NULL);
            continue;
        }
        if (ms > gap && !span_push(out, in.start + (uint32_t)gap, (uint32_t)(ms - gap)))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "pre-tokenizer: out of memory");
        if (!span_push(out, in.start + (uint32_t)ms, (uint32_t)(me - ms)))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "pre-tokenizer: out of memory");
        gap = pos = me;
    }
    if (gap < n && !span_push(out, in.start + (uint32_t)gap, (uint32_t)(n - gap)))
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "pre-tokenizer: out of memory");
    return CIT_OK;
}

enum cit_status pretok_split(const struct pretok *p, struct pretok_work *w, const char *text, size_t len,
                             struct span_vec *out, char *err, size_t errlen)
{
    out->n = 0;
    if (len == 0)
        return CIT_OK;
    if (len > UINT32_MAX)
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "pre-tokenizer: text of %zu bytes is too long", len);
    if (!work_ready(w) || !span_push(out, 0, (uint32_t)len))
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "pre-tokenizer: out of memory");
    for (unsigned r = 0; r < p->n_regex; r++) {
        w->tmp.n = 0;
        for (size_t i = 0; i < out->n; i++) {
            enum cit_status st = split_one((const pcre2_code *)p->code[r], w, text, out->v[i], &w->tmp, err, errlen);
            if (st != CIT_OK)
                return st;
        }
        struct span_vec t = *out;
        *out = w->tmp;
        w->tmp = t;
    }
    return CIT_OK;
}
