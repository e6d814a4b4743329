/* detok.c: ids back to text: per-token pieces (rendered once at load), the
 * whole-sequence detokenizer and the streaming detokenizer.
 *
 * Pieces follow the reference engine: SentencePiece turns U+2581 into a
 * space and <0xXX> into its byte; byte-level BPE maps each character of the
 * GPT-2 alphabet back to its byte (a character outside the alphabet is kept
 * as it is); user-defined tokens render verbatim; control and unknown tokens
 * render verbatim only on request; unused and undefined tokens render as
 * nothing. The pieces are stored with control text included, and hidden at
 * lookup time by type. */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "text/tok_impl.h"
#include "text/utf8.h"

static inline bool id_ok(const struct cit_tokenizer *tok, int32_t id)
{
    return id >= 0 && (uint32_t)id < tok->n_vocab;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Renders token text s[0..n) into out (at most n bytes); returns the length. */
static size_t render(const struct cit_tokenizer *tok, uint8_t type, const char *s, size_t n, char *out)
{
    if (type == CIT_TOKEN_CONTROL || type == CIT_TOKEN_UNKNOWN || type == CIT_TOKEN_USER_DEFINED) {
        memcpy(out, s, n);
        return n;
    }
    if (type == CIT_TOKEN_UNUSED || type == CIT_TOKEN_UNDEFINED)
        return 0;
    size_t o = 0;
    if (tok->kind == CIT_TOKENIZER_SPM) {
        if (type == CIT_TOKEN_BYTE && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && hexval(s[3]) >= 0 &&
            hexval(s[4]) >= 0) {
            out[0] = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            return 1;
        }
        /* NORMAL (and a BYTE token that is not <0xXX>): unescape spaces. */
        for (size_t i = 0; i < n;) {
            if (n - i >= 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                out[o++] = ' ';
                i += 3;
            } else {
                out[o++] = s[i++];
            }
        }
        return o;
    }
    if (type != CIT_TOKEN_NORMAL)
        return 0; /* the reference renders BPE byte-type tokens as nothing */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        bool valid;
        size_t cl = cit_utf8_next((const uint8_t *)s + i, n - i, &cp, &valid);
        int b = valid ? bpe_cp_to_byte(cp) : -1;
        if (b >= 0) {
            out[o++] = (char)b;
        } else {
            memcpy(out + o, s + i, cl);
            o += cl;
        }
        i += cl;
    }
    return o;
}

enum cit_status tok_build_pieces(struct cit_tokenizer *tok, char *err, size_t errlen)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < tok->n_vocab; i++)
        total += tok->strs.len[i]; /* bounded at load: < 2^31 */
    tok->piece_pool = malloc(total ? (size_t)total : 1);
    tok->piece_off = malloc(((size_t)tok->n_vocab + 1) * sizeof *tok->piece_off);
    if (!tok->piece_pool || !tok->piece_off)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "tokenizer: out of memory for pieces");
    uint32_t o = 0;
    tok->max_piece = 0;
    for (uint32_t i = 0; i < tok->n_vocab; i++) {
        size_t n;
        const char *s = strtab_str(&tok->strs, i, &n);
        size_t pl = render(tok, tok->types[i], s, n, tok->piece_pool + o);
        tok->piece_off[i] = o;
        o += (uint32_t)pl;
        if (pl > tok->max_piece)
            tok->max_piece = pl;
    }
    tok->piece_off[tok->n_vocab] = o;
    return CIT_OK;
}

const char *cit_token_piece(const struct cit_tokenizer *tok, int32_t id, bool special, size_t *len)
{
    if (!id_ok(tok, id)) {
        if (len)
            *len = 0;
        return NULL;
    }
    uint8_t t = tok->types[id];
    size_t n = tok->piece_off[id + 1] - tok->piece_off[id];
    if (!special && (t == CIT_TOKEN_CONTROL || t == CIT_TOKEN_UNKNOWN))
        n = 0;
    if (len)
        *len = n;
    return tok->piece_pool + tok->piece_off[id];
}

size_t cit_tokenizer_max_piece_len(const struct cit_tokenizer *tok)
{
    return tok->max_piece;
}

enum cit_status cit_token_to_piece(const struct cit_tokenizer *tok, int32_t id, bool special, char *buf, size_t cap,
                                   size_t *n_out, char *err, size_t errlen)
{
    if (!tok || !n_out || (!buf && cap))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_token_to_piece: NULL argument");
    *n_out = 0;
    size_t n;
    const char *p = cit_token_piece(tok, id, special, &n);
    if (!p)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "token id %ld outside the vocabulary of %u tokens", (long)id,
                        tok->n_vocab);
    *n_out = n;
    if (n > cap)
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "piece of %zu bytes does not fit in %zu", n, cap);
    if (n)
        memcpy(buf, p, n);
    return CIT_OK;
}

enum cit_status cit_detokenize(const struct cit_tokenizer *tok, const int32_t *ids, size_t n, bool remove_special,
                               bool unparse_special, char *buf, size_t cap, size_t *n_out, char *err, size_t errlen)
{
    if (!tok || !n_out || (!ids && n) || (!buf && cap))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_detokenize: NULL argument");
    *n_out = 0;
    size_t begin = 0, end = n;
    if (remove_special && tok->add_bos && end > begin && ids[begin] == tok->bos)
        begin++;
    if (remove_special && tok->add_eos && end > begin && ids[end - 1] == tok->eos)
        end--;
    bool strip = tok->add_space_prefix;
    size_t total = 0;
    for (size_t i = begin; i < end; i++) {
        size_t pl;
        const char *p = cit_token_piece(tok, ids[i], unparse_special, &pl);
        if (!p)
            return cit_fail(CIT_ERR_RANGE, err, errlen, "ids[%zu] = %ld outside the vocabulary of %u tokens", i,
                            (long)ids[i], tok->n_vocab);
        if (strip && pl) {
            /* Undo the space prefix on the first text that shows. */
            if (p[0] == ' ') {
                p++;
                pl--;
            }
            strip = false;
        }
        if (total < cap)
            memcpy(buf + total, p, pl < cap - total ? pl : cap - total);
        total += pl; /* <= n * max_piece: cannot wrap for any array in memory */
    }
    *n_out = total;
    if (total > cap)
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "detokenized text of %zu bytes does not fit in %zu", total, cap);
    return CIT_OK;
}

void cit_detok_init(struct cit_detok *d, const struct cit_tokenizer *tok, bool special)
{
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->special = special;
}

enum cit_status cit_detok_push(struct cit_detok *d, int32_t id, char *buf, size_t cap, size_t *n_out, char *err,
                               size_t errlen)
{
    if (!d || !d->tok || !n_out || (!buf && cap))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_detok_push: NULL argument");
    *n_out = 0;
    size_t pl;
    const char *p = cit_token_piece(d->tok, id, d->special, &pl);
    if (!p)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "token id %ld outside the vocabulary of %u tokens", (long)id,
                        d->tok->n_vocab);
    /* The held bytes followed by the piece; only its last 3 bytes can be an
     * unfinished character. */
    size_t total = d->n_held + pl;
    uint8_t last[3];
    size_t nl = total < 3 ? total : 3;
    for (size_t k = 0; k < nl; k++) {
        size_t at = total - nl + k; /* index into held ++ piece */
        last[k] = at < d->n_held ? d->held[at] : (uint8_t)p[at - d->n_held];
    }
    size_t tail = cit_utf8_incomplete_tail(last, nl);
    size_t emit = total - tail;
    *n_out = emit;
    if (emit > cap)
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "streamed text of %zu bytes does not fit in %zu", emit, cap);
    size_t o = 0;
    for (size_t k = 0; k < d->n_held && o < emit; k++)
        buf[o++] = (char)d->held[k];
    size_t from_piece = emit - o;
    if (from_piece)
        memcpy(buf + o, p, from_piece);
    /* What remains (tail bytes) becomes the new held prefix. */
    uint8_t nh[4];
    size_t k = 0;
    for (size_t at = emit; at < total; at++)
        nh[k++] = at < d->n_held ? d->held[at] : (uint8_t)p[at - d->n_held];
    memcpy(d->held, nh, k);
    d->n_held = (uint8_t)k;
    return CIT_OK;
}

size_t cit_detok_flush(struct cit_detok *d, char *buf, size_t cap)
{
    if (!d)
        return 0;
    size_t n = d->n_held < cap ? d->n_held : cap;
    if (n)
        memcpy(buf, d->held, n);
    d->n_held = 0;
    return n;
}
