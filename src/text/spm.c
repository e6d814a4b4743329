/* spm.c: SentencePiece-style BPE over token scores ("llama" vocabularies).
 *
 * The reference engine's algorithm: spaces become U+2581 (with one put in
 * front when a space prefix applies), the text starts as one symbol per
 * UTF-8 character, and the adjacent pair whose concatenation is a token with
 * the highest score is merged, leftmost first on ties, until no pair is a
 * token. Symbols that are still not tokens fall back to byte tokens <0xXX>.
 * A byte that is not valid UTF-8 is a symbol of its own, so it reaches byte
 * fallback unchanged. */
#include <string.h>

#include "base/err.h"
#include "text/tok_impl.h"
#include "text/utf8.h"

static const char SPACE_MARK[3] = {'\xE2', '\x96', '\x81'}; /* U+2581 */

/* Queues the merge of symbols left and right if their text is a token. */
static bool add_bigram(const struct cit_tokenizer *tok, struct tok_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return true;
    const struct sym *l = &w->syms[left], *r = &w->syms[right];
    int64_t e = strtab_find(&tok->strs, w->buf + l->start, (size_t)l->n + r->n);
    if (e < 0 || e >= (int64_t)tok->n_vocab)
        return true;
    struct bigram b = {
        .key = ((uint64_t)score_key(tok->scores[e]) << 32) | (uint32_t)left,
        .left = left,
        .right = right,
        .result = (int32_t)e,
        .n_left = l->n,
        .n_right = r->n,
    };
    return bigram_push(&w->heap, &b);
}

enum cit_status spm_tokenize(const struct cit_tokenizer *tok, struct tok_work *w, const char *text, size_t len,
                             bool with_prefix, struct idvec *out, char *err, size_t errlen)
{
    size_t spaces = with_prefix ? 1 : 0;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    /* len <= CIT_TOKENIZE_MAX_BYTES (2^28): this cannot overflow. */
    size_t n = len + (with_prefix ? 1 : 0) + 2 * spaces;
    if (n == 0)
        return CIT_OK;
    if (!tok_work_reserve_buf(w, n) || !tok_work_reserve_syms(w, n))
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");

    char *buf = w->buf;
    size_t o = 0;
    if (with_prefix) {
        memcpy(buf, SPACE_MARK, 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + o, SPACE_MARK, 3);
            o += 3;
        } else {
            buf[o++] = text[i];
        }
    }

    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = cit_utf8_next((const uint8_t *)buf + i, n - i, NULL, NULL);
        w->syms[ns] = (struct sym){.prev = ns - 1, .next = i + cl < n ? ns + 1 : -1, .start = (uint32_t)i,
                                   .n = (uint32_t)cl, .id = -1};
        ns++;
        i += cl;
    }

    w->heap.n = 0;
    for (int32_t i = 1; i < ns; i++)
        if (!add_bigram(tok, w, i - 1, i))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
    struct bigram b;
    while (bigram_pop(&w->heap, &b)) {
        struct sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n != b.n_left || r->n != b.n_right)
            continue; /* one side changed since it was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->syms[r->next].prev = b.left;
        if (!add_bigram(tok, w, l->prev, b.left) || !add_bigram(tok, w, b.left, l->next))
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
    }

    for (int32_t i = 0; i >= 0; i = w->syms[i].next) {
        const struct sym *s = &w->syms[i];
        int64_t e = strtab_find(&tok->strs, buf + s->start, s->n);
        if (e >= 0 && e < (int64_t)tok->n_vocab) {
            if (!idvec_push(out, (int32_t)e))
                return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) {
            uint8_t byte = (uint8_t)buf[s->start + j];
            int32_t id = tok->byte_tok[byte];
            if (id < 0)
                return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen,
                                "tokenize: byte 0x%02X has no token and the vocabulary has no unknown token", byte);
            if (!idvec_push(out, id))
                return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenize: out of memory");
        }
    }
    return CIT_OK;
}
