/* bpe.c: byte-level BPE ("gpt2" vocabularies): the byte-to-unicode alphabet,
 * loading the ranked merges, and tokenizing one text fragment.
 *
 * The text is cut into words by the pre-tokenizer; each word starts as one
 * symbol per byte (its character in GPT-2's byte-to-unicode alphabet) and
 * the pair with the lowest merge rank is merged, leftmost first on ties,
 * until no listed merge applies. Symbols carry their string-table entry, and
 * merges are looked up by the pair of entries, so the inner loop hashes two
 * integers instead of strings. Any byte sequence, valid UTF-8 or not, maps
 * to symbols, so every input byte is represented. */
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "citadel/gguf.h"
#include "text/tok_impl.h"
#include "text/utf8.h"

#define KEY_MERGES "tokenizer.ggml.merges"
#define MAX_MERGES (1u << 24)

/* Bytes that GPT-2 keeps as themselves: '!'..'~', U+00A1..U+00AC and
 * U+00AE..U+00FF. The other 68 (controls, space, DEL, NBSP, soft hyphen)
 * are moved, in byte order, to U+0100.. so every byte is a visible char. */
static bool kept(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t bpe_byte_to_cp(uint8_t b)
{
    if (kept(b))
        return b;
    if (b <= 0x20)
        return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu);
    return 0x100u + 67; /* 0xAD */
}

int bpe_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return kept(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    uint32_t i = cp - 0x100;
    if (i < 33)
        return (int)i;
    if (i < 67)
        return (int)(0x7F + (i - 33));
    return 0xAD;
}

/* Writes the mapped form of bytes s[0..n) to out (2 * n bytes suffice). */
static size_t map_bytes(const uint8_t *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += cit_utf8_encode(bpe_byte_to_cp(s[i]), (uint8_t *)out + o);
    return o;
}

enum cit_status bpe_load_merges(struct cit_tokenizer *tok, const struct cit_gguf *g, char *err, size_t errlen)
{
    enum cit_gguf_type et;
    uint64_t n;
    const void *data;
    enum cit_status st = cit_gguf_get_arr(g, KEY_MERGES, &et, &n, &data, err, errlen);
    if (st == CIT_ERR_NOT_FOUND)
        return cit_fail(st, err, errlen, "%s: missing (needed by a gpt2 tokenizer)", KEY_MERGES);
    if (st != CIT_OK)
        return st;
    if (et != CIT_GGUF_STRING)
        return cit_fail(CIT_ERR_TYPE, err, errlen, "%s: array of %s, expected strings", KEY_MERGES,
                        cit_gguf_type_name(et));
    if (n > MAX_MERGES)
        return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s: %llu merges (limit %u)", KEY_MERGES,
                        (unsigned long long)n, MAX_MERGES);
    if (!pairmap_init(&tok->merges, (uint32_t)n))
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "%s: out of memory", KEY_MERGES);

    char *cat = malloc(2 * (size_t)TOK_MAX_TOKEN_BYTES);
    if (!cat)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "%s: out of memory", KEY_MERGES);
    for (uint64_t i = 0; i < n; i++) {
        struct cit_gguf_str s;
        if ((st = cit_gguf_arr_str(g, KEY_MERGES, i, &s, err, errlen)) != CIT_OK)
            break;
        /* "left right": split at the first space after the first byte, so a
         * left side may itself begin with a space. */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp || (uint64_t)(sp - s.ptr) + 1 >= s.len || s.len > 2 * (uint64_t)TOK_MAX_TOKEN_BYTES) {
            st = cit_fail(CIT_ERR_FORMAT, err, errlen, "%s[%llu]: not \"left right\" (%llu bytes)", KEY_MERGES,
                          (unsigned long long)i, (unsigned long long)s.len);
            break;
        }
        size_t ll = (size_t)(sp - s.ptr), rl = (size_t)s.len - ll - 1;
        uint32_t l, r, m;
        memcpy(cat, s.ptr, ll);
        memcpy(cat + ll, sp + 1, rl);
        if (!strtab_intern(&tok->strs, s.ptr, ll, &l) || !strtab_intern(&tok->strs, sp + 1, rl, &r) ||
            !strtab_intern(&tok->strs, cat, ll + rl, &m) || !pairmap_add(&tok->merges, l, r, (uint32_t)i, m)) {
            st = cit_fail(CIT_ERR_NOMEM, err, errlen, "%s: out of memory", KEY_MERGES);
            break;
        }
    }
    free(cat);
    if (st != CIT_OK)
        return st;
    tok->n_merges = (uint32_t)n;

    for (int b = 0; b < 256; b++) {
        char c[4];
        uint8_t byte = (uint8_t)b;
        size_t cl = map_bytes(&byte, 1, c);
        int64_t e = strtab_find(&tok->strs, c, cl);
        tok->byte_sym[b] = e >= 0 ? (int32_t)e : -1;
    }
    return CIT_OK;
}

static bool add_bigram(const struct cit_tokenizer *tok, struct tok_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return true;
    const struct sym *l = &w->syms[left], *r = &w->syms[right];
    if (l->id < 0 || r->id < 0)
        return true;
    const struct pairmap_slot *m = pairmap_find(&tok->merges, (uint32_t)l->id, (uint32_t)r->id);
    if (!m)
        return true;
    struct bigram b = {
        .key = ((uint64_t)m->rank << 32) | (uint32_t)left,
        .left = left,
        .right = right,
        .result = (int32_t)m->result,
        .n_left = l->n,
        .n_right = r->n,
    };
    return bigram_push(&w->heap, &b);
}

/* A symbol whose text is no token (a byte whose character the vocabulary
 * lacks, like 0xC0/0xC1/0xF5..0xFF in many vocabularies, or a merge result
 * that is no token): as the reference, emit the one-byte tokens among the
 * bytes of its mapped text and drop the rest. Substituting the "unknown"
 * token instead would be worse: several vocabularies declare <|endoftext|>
 * as unknown, and a stray byte must not end a prompt. */
static bool emit_fallback(const struct cit_tokenizer *tok, const uint8_t *word, const struct sym *s,
                          struct idvec *out)
{
    char mapped[8];
    for (uint32_t j = 0; j < s->n; j++) {
        size_t ml = map_bytes(word + s->start + j, 1, mapped);
        for (size_t k = 0; k < ml; k++) {
            int64_t e = strtab_find(&tok->strs, mapped + k, 1);
            if (e >= 0 && e < (int64_t)tok->n_vocab && !idvec_push(out, (int32_t)e))
                return false;
        }
    }
    return true;
}

static enum cit_status merge_word(const struct cit_tokenizer *tok, struct tok_work *w, const uint8_t *word,
                                  size_t n, struct idvec *out, char *err, size_t errlen)
{
    if (tok->pre.ignore_merges) {
        /* llama3-style: a word that is a token as a whole is taken as is. */
        size_t ml = map_bytes(word, n, w->buf);
        int64_t e = strtab_find(&tok->strs, w->buf, ml);
        if (e >= 0 && e < (int64_t)tok->n_vocab)
            return idvec_push(out, (int32_t)e) ? CIT_OK : cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        w->syms[i] = (struct sym){.prev = (int32_t)i - 1, .next = i + 1 < n ? (int32_t)i + 1 : -1,
                                  .start = (uint32_t)i, .n = 1, .id = tok->byte_sym[word[i]]};
    w->heap.n = 0;
    for (size_t i = 1; i < n; i++)
        if (!add_bigram(tok, w, (int32_t)i - 1, (int32_t)i))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
    struct bigram b;
    while (bigram_pop(&w->heap, &b)) {
        struct sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n != b.n_left || r->n != b.n_right)
            continue;
        l->n += r->n;
        l->id = b.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->syms[r->next].prev = b.left;
        if (!add_bigram(tok, w, l->prev, b.left) || !add_bigram(tok, w, b.left, l->next))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
    }
    for (int32_t i = 0; i >= 0; i = w->syms[i].next) {
        const struct sym *s = &w->syms[i];
        bool ok = s->id >= 0 && (uint32_t)s->id < tok->n_vocab ? idvec_push(out, s->id)
                                                               : emit_fallback(tok, word, s, out);
        if (!ok)
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
    }
    return CIT_OK;
}

enum cit_status bpe_tokenize(const struct cit_tokenizer *tok, struct tok_work *w, const char *text, size_t len,
                             struct idvec *out, char *err, size_t errlen)
{
    enum cit_status st = pretok_split(&tok->pre, &w->pre, text, len, &w->words, err, errlen);
    if (st != CIT_OK)
        return st;
    for (size_t i = 0; i < w->words.n; i++) {
        struct span sp = w->words.v[i];
        if (sp.len == 0)
            continue;
        if (!tok_work_reserve_syms(w, sp.len) || !tok_work_reserve_buf(w, 2 * (size_t)sp.len))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
        if ((st = merge_word(tok, w, (const uint8_t *)text + sp.start, sp.len, out, err, errlen)) != CIT_OK)
            return st;
    }
    return CIT_OK;
}
