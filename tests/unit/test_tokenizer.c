/* test_tokenizer.c: unit tests of the tokenizers (include/citadel/tokenizer.h).
 *
 * Covers the model vocabulary of stories260K against the reference engine's
 * recorded prompts and generations, the streaming detokenizer on characters
 * split across byte tokens, special-token parsing, BOS/EOS rules, hostile
 * inputs (out-of-range ids, invalid UTF-8, empty text, small buffers), and
 * the metadata validation of cit_tokenizer_load on small GGUF files built
 * in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "citadel/gguf.h"
#include "citadel/tokenizer.h"
#include "support.h"
#include "text/pretok.h"

/* ---- helpers ---- */

struct loaded {
    struct cit_gguf *g;
    struct cit_tokenizer *tok;
};

static struct loaded load_path(const char *rel)
{
    struct loaded l = {0};
    char err[256] = "";
    enum cit_status st = cit_gguf_open(test_shared_path(rel), &l.g, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("open %s: %s: %s", rel, cit_status_str(st), err);
    st = cit_tokenizer_load(l.g, &l.tok, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("load tokenizer %s: %s: %s", rel, cit_status_str(st), err);
    return l;
}

static void unload(struct loaded *l)
{
    cit_tokenizer_free(l->tok);
    cit_gguf_free(l->g);
}

/* Tokenizes s (NUL-terminated) into a fresh array. */
static int32_t *tok_str(const struct cit_tokenizer *tok, const char *s, size_t len, bool add_special,
                        bool parse_special, size_t *n)
{
    int32_t *ids = NULL;
    char err[256] = "";
    enum cit_status st = cit_tokenize_alloc(tok, s, len, add_special, parse_special, &ids, n, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("tokenize: %s: %s", cit_status_str(st), err);
    return ids;
}

static char *detok_all(const struct cit_tokenizer *tok, const int32_t *ids, size_t n, bool remove_special,
                       bool unparse, size_t *len)
{
    char err[256] = "";
    size_t need = 0;
    enum cit_status st = cit_detokenize(tok, ids, n, remove_special, unparse, NULL, 0, &need, err, sizeof err);
    assert_true(st == CIT_OK || st == CIT_ERR_LIMIT);
    char *buf = malloc(need + 1);
    st = cit_detokenize(tok, ids, n, remove_special, unparse, buf, need + 1, len, err, sizeof err);
    assert_int_equal(st, CIT_OK);
    assert_int_equal(*len, need);
    buf[*len] = 0;
    return buf;
}

static bool contains(const int32_t *ids, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* ---- stories260K: the model's own vocabulary vs the reference ---- */

static void test_stories_golden(void **state)
{
    (void)state;
    struct loaded l = load_path("models/stories260K.gguf");
    const struct cit_tokenizer *tok = l.tok;
    assert_int_equal(cit_tokenizer_kind(tok), CIT_TOKENIZER_SPM);
    assert_int_equal(cit_tokenizer_n_vocab(tok), 512);
    assert_int_equal(cit_tokenizer_bos(tok), 1);
    assert_int_equal(cit_tokenizer_eos(tok), 2);
    assert_int_equal(cit_tokenizer_unk(tok), 0);
    assert_int_equal(cit_tokenizer_pad(tok), CIT_TOKEN_NONE); /* stored as 0xFFFFFFFF */
    assert_true(cit_tokenizer_add_bos(tok));
    assert_false(cit_tokenizer_add_eos(tok));
    assert_true(cit_tokenizer_is_eog(tok, 2));
    assert_false(cit_tokenizer_is_eog(tok, 1));

    size_t flen;
    char *file = test_read_file(test_shared_path("golden/stories260K-free-greedy.jsonl"), &flen);
    assert_non_null(file);
    size_t n_prompts = 0;
    for (char *line = file; *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (*line) {
            json_error_t jerr;
            json_t *j = json_loads(line, 0, &jerr);
            assert_non_null(j);
            const char *prompt = json_string_value(json_object_get(j, "prompt"));
            const char *content = json_string_value(json_object_get(j, "content"));
            json_t *pids = json_object_get(j, "prompt_ids"), *steps = json_object_get(j, "steps");
            assert_non_null(prompt);
            assert_non_null(content);

            /* prompt -> ids, with BOS, as the reference tokenized it */
            size_t n;
            int32_t *ids = tok_str(tok, prompt, strlen(prompt), true, false, &n);
            assert_int_equal(n, json_array_size(pids));
            for (size_t i = 0; i < n; i++)
                assert_int_equal(ids[i], json_integer_value(json_array_get(pids, i)));

            /* and back: BOS hidden, the space prefix undone */
            size_t dl;
            char *d = detok_all(tok, ids, n, true, false, &dl);
            assert_string_equal(d, prompt);
            free(d);
            d = detok_all(tok, ids, n, false, false, &dl);
            assert_string_equal(d, prompt);
            free(d);
            free(ids);

            /* generated ids -> content: the reference streams pieces and keeps
             * the first piece's leading space */
            size_t ns = json_array_size(steps);
            int32_t *gen = malloc(ns * sizeof *gen);
            for (size_t i = 0; i < ns; i++)
                gen[i] = (int32_t)json_integer_value(json_object_get(json_array_get(steps, i), "id"));
            struct cit_detok dt;
            cit_detok_init(&dt, tok, false);
            size_t cap = strlen(content) + 64, used = 0;
            char *stream = malloc(cap);
            for (size_t i = 0; i < ns; i++) {
                size_t got;
                char err[128];
                assert_int_equal(cit_detok_push(&dt, gen[i], stream + used, cap - used, &got, err, sizeof err), CIT_OK);
                used += got;
            }
            used += cit_detok_flush(&dt, stream + used, cap - used);
            assert_int_equal(used, strlen(content));
            assert_memory_equal(stream, content, used);

            /* the whole-sequence detokenizer drops that one leading space */
            d = detok_all(tok, gen, ns, false, false, &dl);
            const char *want = content[0] == ' ' ? content + 1 : content;
            assert_string_equal(d, want);
            free(d);
            free(stream);
            free(gen);
            json_decref(j);
            n_prompts++;
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    printf("stories260K: %zu prompts tokenized as the reference, generations detokenized to its content\n",
           n_prompts);
    assert_true(n_prompts >= 8);
    free(file);
    unload(&l);
}

/* ---- streaming detokenizer ---- */

static void test_stream_split_emoji(void **state)
{
    (void)state;
    struct loaded l = load_path("vocab/ggml-vocab-llama-spm.gguf");
    const struct cit_tokenizer *tok = l.tok;
    /* U+1F999 (llama) has no token: byte fallback F0 9F A6 99 */
    const char *text = "a \xF0\x9F\xA6\x99!";
    size_t n;
    int32_t *ids = tok_str(tok, text, strlen(text), false, false, &n);
    int32_t b0 = cit_tokenizer_find(tok, "<0xF0>", 6);
    assert_true(contains(ids, n, b0));
    assert_int_equal(cit_tokenizer_token_type(tok, b0), CIT_TOKEN_BYTE);

    struct cit_detok d;
    cit_detok_init(&d, tok, false);
    char out[64], err[128];
    size_t used = 0, got;
    for (size_t i = 0; i < n; i++) {
        size_t before = used;
        assert_int_equal(cit_detok_push(&d, ids[i], out + used, sizeof out - used, &got, err, sizeof err), CIT_OK);
        used += got;
        /* never a partial character out */
        if (cit_tokenizer_token_type(tok, ids[i]) == CIT_TOKEN_BYTE && ids[i] != b0 - 0xF0 + 0x99)
            assert_int_equal(used, before);
    }
    assert_int_equal(cit_detok_flush(&d, out + used, sizeof out - used), 0);
    /* streaming keeps the prefix space; the text came out whole */
    assert_int_equal(used, strlen(text) + 1);
    assert_memory_equal(out, " ", 1);
    assert_memory_equal(out + 1, text, strlen(text));

    /* a too-small buffer leaves the state untouched and reports the need */
    cit_detok_init(&d, tok, false);
    static const uint8_t lead[] = {0xF0, 0x9F, 0xA6};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(cit_detok_push(&d, b0 - 0xF0 + lead[k], out, sizeof out, &got, err, sizeof err), CIT_OK);
        assert_int_equal(got, 0);
    }
    int32_t last = b0 - 0xF0 + 0x99;
    assert_int_equal(cit_detok_push(&d, last, out, 3, &got, err, sizeof err), CIT_ERR_LIMIT);
    assert_int_equal(got, 4);
    assert_int_equal(cit_detok_push(&d, last, out, 4, &got, err, sizeof err), CIT_OK);
    assert_int_equal(got, 4);
    assert_memory_equal(out, "\xF0\x9F\xA6\x99", 4);

    /* an unfinished character is released by flush, as is */
    cit_detok_init(&d, tok, false);
    assert_int_equal(cit_detok_push(&d, b0, out, sizeof out, &got, err, sizeof err), CIT_OK);
    assert_int_equal(got, 0);
    assert_int_equal(cit_detok_flush(&d, out, sizeof out), 1);
    assert_int_equal((uint8_t)out[0], 0xF0);
    assert_int_equal(cit_detok_flush(&d, out, sizeof out), 0);

    /* a byte that can never complete a character passes straight through */
    cit_detok_init(&d, tok, false);
    assert_int_equal(cit_detok_push(&d, b0 - 0xF0 + 0xFF, out, sizeof out, &got, err, sizeof err), CIT_OK);
    assert_int_equal(got, 1);
    assert_int_equal((uint8_t)out[0], 0xFF);
    /* an incomplete character followed by ASCII is released as is */
    assert_int_equal(cit_detok_push(&d, b0, out, sizeof out, &got, err, sizeof err), CIT_OK);
    assert_int_equal(got, 0);
    int32_t bang = cit_tokenizer_find(tok, "!", 1);
    assert_int_equal(cit_detok_push(&d, bang, out, sizeof out, &got, err, sizeof err), CIT_OK);
    assert_int_equal(got, 2);
    assert_memory_equal(out, "\xF0!", 2);
    free(ids);
    unload(&l);
}

/* Byte-level BPE splits multi-byte characters across tokens too. */
static void test_stream_bpe(void **state)
{
    (void)state;
    struct loaded l = load_path("vocab/ggml-vocab-gpt-2.gguf");
    const struct cit_tokenizer *tok = l.tok;
    const char *text = "\xF0\x9F\x9A\x80 rocket \xE2\x9C\x85 \xF0\x9F\xA6\x99\xF0\x9F\xA6\x99 caf\xC3\xA9";
    size_t n;
    int32_t *ids = tok_str(tok, text, strlen(text), false, false, &n);
    struct cit_detok d;
    cit_detok_init(&d, tok, false);
    char out[256], err[128];
    size_t used = 0, got;
    size_t max = cit_tokenizer_max_piece_len(tok) + 4;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(cit_detok_push(&d, ids[i], out + used, max, &got, err, sizeof err), CIT_OK);
        /* every chunk is whole characters */
        for (size_t k = 0; k < got;) {
            unsigned char c = (unsigned char)out[used + k];
            size_t cl = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            assert_true(k + cl <= got);
            k += cl;
        }
        used += got;
    }
    used += cit_detok_flush(&d, out + used, sizeof out - used);
    assert_int_equal(used, strlen(text));
    assert_memory_equal(out, text, used);
    free(ids);
    unload(&l);
}

/* ---- special tokens ---- */

static void test_special_parsing(void **state)
{
    (void)state;
    struct loaded l = load_path("vocab/ggml-vocab-llama-spm.gguf");
    const struct cit_tokenizer *tok = l.tok;
    const char *text = "<s>Hello</s>";
    size_t n;
    int32_t *ids = tok_str(tok, text, strlen(text), false, true, &n);
    int32_t hello = cit_tokenizer_find(tok, "\xE2\x96\x81Hello", 8); /* the prefix follows a special token */
    assert_true(hello >= 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], hello);
    assert_int_equal(ids[2], 2);
    /* rendered: control tokens hidden unless asked for */
    size_t dl;
    char *d = detok_all(tok, ids, n, false, false, &dl);
    assert_string_equal(d, "Hello");
    free(d);
    d = detok_all(tok, ids, n, false, true, &dl);
    assert_string_equal(d, "<s> Hello</s>");
    free(d);
    free(ids);

    ids = tok_str(tok, text, strlen(text), false, false, &n);
    assert_false(contains(ids, n, 1));
    assert_false(contains(ids, n, 2));
    d = detok_all(tok, ids, n, false, false, &dl);
    assert_string_equal(d, text); /* plain text round-trips */
    free(d);
    free(ids);
    unload(&l);

    l = load_path("vocab/ggml-vocab-gpt-2.gguf");
    tok = l.tok;
    text = "a<|endoftext|>b<|endoftext|>";
    ids = tok_str(tok, text, strlen(text), false, true, &n);
    assert_int_equal(n, 4);
    assert_int_equal(ids[1], 50256);
    assert_int_equal(ids[3], 50256);
    assert_true(cit_tokenizer_is_eog(tok, 50256));
    free(ids);
    ids = tok_str(tok, text, strlen(text), false, false, &n);
    assert_false(contains(ids, n, 50256));
    free(ids);
    unload(&l);

    /* user-defined tokens are split out even without parse_special */
    l = load_path("vocab/ggml-vocab-deepseek-coder.gguf");
    tok = l.tok;
    int32_t u = cit_tokenizer_find(l.tok, "\xC3\xBC", 2);
    assert_int_equal(cit_tokenizer_token_type(tok, u), CIT_TOKEN_USER_DEFINED);
    ids = tok_str(tok, "F\xC3\xBChrer", 7, false, false, &n);
    assert_true(contains(ids, n, u));
    free(ids);
    unload(&l);

    /* phi-3: end-of-turn markers are end of generation */
    l = load_path("vocab/ggml-vocab-phi-3.gguf");
    tok = l.tok;
    int32_t end = cit_tokenizer_find(tok, "<|end|>", 7);
    assert_int_equal(end, 32007);
    assert_int_equal(cit_tokenizer_eot(tok), end);
    assert_true(cit_tokenizer_is_eog(tok, end));
    assert_true(cit_tokenizer_is_eog(tok, cit_tokenizer_eos(tok)));
    assert_false(cit_tokenizer_is_eog(tok, cit_tokenizer_bos(tok)));
    text = "<|user|>\nHi<|end|>";
    ids = tok_str(tok, text, strlen(text), true, true, &n);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], cit_tokenizer_find(tok, "<|user|>", 8));
    assert_int_equal(ids[n - 1], end);
    free(ids);
    unload(&l);
}

/* Longest special token first: a longer token is not broken by a shorter
 * one that it contains. */
static void test_special_longest_first(void **state)
{
    (void)state;
    struct loaded l = load_path("vocab/ggml-vocab-mpt.gguf");
    const struct cit_tokenizer *tok = l.tok;
    /* mpt has user-defined runs of spaces of every length 2..24 */
    char spaces[8];
    memset(spaces, ' ', 7);
    spaces[7] = 'x';
    size_t n;
    int32_t *ids = tok_str(tok, spaces, 8, false, false, &n);
    int32_t run7 = cit_tokenizer_find(tok, spaces, 7);
    assert_true(run7 >= 0);
    assert_int_equal(cit_tokenizer_token_type(tok, run7), CIT_TOKEN_USER_DEFINED);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], run7);
    free(ids);
    unload(&l);
}

/* ---- BOS / EOS ---- */

static void test_bos_eos(void **state)
{
    (void)state;
    struct loaded l = load_path("vocab/ggml-vocab-llama-spm.gguf");
    size_t n;
    int32_t *ids = tok_str(l.tok, "Hi", 2, true, false, &n);
    assert_true(n >= 2);
    assert_int_equal(ids[0], 1);
    assert_int_not_equal(ids[n - 1], 2); /* add_eos_token = false */
    free(ids);
    ids = tok_str(l.tok, "", 0, true, false, &n); /* as the reference: [BOS] */
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    free(ids);
    ids = tok_str(l.tok, "", 0, false, false, &n);
    assert_int_equal(n, 0);
    assert_null(ids);
    /* remove_special drops the leading BOS only */
    int32_t seq[] = {1, 1};
    size_t dl;
    char *d = detok_all(l.tok, seq, 2, true, true, &dl);
    assert_string_equal(d, "<s>");
    free(d);
    unload(&l);

    l = load_path("vocab/ggml-vocab-gpt-2.gguf"); /* no add_bos_token: BPE default is no BOS */
    assert_false(cit_tokenizer_add_bos(l.tok));
    ids = tok_str(l.tok, "Hi", 2, true, false, &n);
    assert_int_equal(n, 1);
    free(ids);
    unload(&l);

    l = load_path("vocab/ggml-vocab-deepseek-coder.gguf"); /* add_bos_token = true */
    assert_true(cit_tokenizer_add_bos(l.tok));
    ids = tok_str(l.tok, "Hi", 2, true, false, &n);
    assert_int_equal(ids[0], 32013);
    assert_int_not_equal(ids[n - 1], 32014);
    free(ids);
    unload(&l);
}

/* cit_tokenize_prompt: one BOS whether or not the text writes it. */
static void test_prompt_single_bos(void **state)
{
    (void)state;
    struct loaded l = load_path("vocab/ggml-vocab-llama-spm.gguf");
    int32_t *a, *b, *c;
    size_t na, nb, nc;
    assert_int_equal(cit_tokenize_prompt(l.tok, "Hi there", 8, &a, &na, NULL, 0), CIT_OK);
    assert_int_equal(cit_tokenize_prompt(l.tok, "<s>Hi there", 11, &b, &nb, NULL, 0), CIT_OK);
    /* plain text: what add_special + parse_special give */
    assert_int_equal(cit_tokenize_alloc(l.tok, "Hi there", 8, true, true, &c, &nc, NULL, 0), CIT_OK);
    assert_int_equal(na, nc);
    assert_memory_equal(a, c, na * sizeof *a);
    assert_int_equal(a[0], 1);
    assert_int_equal(b[0], 1);
    assert_int_not_equal(b[1], 1); /* the written BOS is the only one */
    free(a);
    free(b);
    free(c);
    unload(&l);
}

/* ---- hostile input ---- */

static void test_out_of_range_ids(void **state)
{
    (void)state;
    struct loaded l = load_path("models/stories260K.gguf");
    const struct cit_tokenizer *tok = l.tok;
    char buf[64], err[128];
    size_t n;
    int32_t bad[] = {-1, 512, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(cit_token_to_piece(tok, bad[i], true, buf, sizeof buf, &n, err, sizeof err), CIT_ERR_RANGE);
        assert_null(cit_token_piece(tok, bad[i], true, &n));
        assert_int_equal(n, 0);
        assert_null(cit_tokenizer_token_text(tok, bad[i], &n));
        assert_false(cit_tokenizer_is_eog(tok, bad[i]));
        assert_int_equal(cit_tokenizer_token_type(tok, bad[i]), CIT_TOKEN_UNDEFINED);
        assert_true(cit_tokenizer_token_score(tok, bad[i]) == 0.0f);
    }
    int32_t seq[] = {1, 403, 512, 407};
    assert_int_equal(cit_detokenize(tok, seq, 4, false, false, buf, sizeof buf, &n, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "ids[2]"));
    struct cit_detok d;
    cit_detok_init(&d, tok, false);
    assert_int_equal(cit_detok_push(&d, 3 + 0xE2, buf, sizeof buf, &n, err, sizeof err), CIT_OK); /* <0xE2> held */
    assert_int_equal(cit_detok_push(&d, -5, buf, sizeof buf, &n, err, sizeof err), CIT_ERR_RANGE);
    assert_int_equal(d.n_held, 1);
    unload(&l);
}

/* Tokenizes s[0..len): every id in range; with exact, detokenizing gives s. */
static void roundtrip_bytes(const struct cit_tokenizer *tok, const char *s, size_t len, bool exact)
{
    size_t n, dl;
    int32_t *ids = tok_str(tok, s, len, false, false, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(ids[i] >= 0 && (uint32_t)ids[i] < cit_tokenizer_n_vocab(tok));
    char *d = detok_all(tok, ids, n, false, false, &dl);
    if (exact && (dl != len || memcmp(d, s, len) != 0)) {
        printf("round trip of %zu bytes:", len);
        for (size_t i = 0; i < len && i < 16; i++)
            printf(" %02x", (unsigned char)s[i]);
        printf(" -> %zu ids, %zu bytes\n", n, dl);
        fail();
    }
    free(d);
    free(ids);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "\xFF", "\xC3", "a\xC3(", "\xE2\x82", "\xF0\x9F\xA6", "\xED\xA0\x80 surrogate", "\xC0\xAF overlong",
        "\xF4\x90\x80\x80 too big", "ok \x80\x80 cont", "\xF0\x9F\xA6\x99\xF0", "  \xFE\xFF  ", "nul\0in",
    };
    static const size_t lens[] = {1, 1, 3, 2, 3, 13, 11, 12, 10, 5, 6, 6};
    /* Not exact: deepseek-llm has user-defined tokens for the GPT-2
     * characters of the bytes that never occur in UTF-8 (C0, C1, F5..FF),
     * which render as those characters; falcon and starcoder have no token
     * at all for some bytes, which are dropped. Both as the reference. */
    static const struct {
        const char *path;
        bool exact;
    } vocabs[] = {
        {"vocab/ggml-vocab-llama-spm.gguf", true},
        {"vocab/ggml-vocab-gpt-2.gguf", true},
        {"vocab/ggml-vocab-falcon.gguf", false},
        {"vocab/ggml-vocab-starcoder.gguf", false},
        {"vocab/ggml-vocab-deepseek-llm.gguf", false},
    };
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        struct loaded l = load_path(vocabs[v].path);
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
            roundtrip_bytes(l.tok, cases[i], lens[i], vocabs[v].exact);
        /* every byte value, alone and all together */
        char all[256];
        for (int b = 0; b < 256; b++) {
            all[b] = (char)b;
            roundtrip_bytes(l.tok, all + b, 1, vocabs[v].exact);
        }
        roundtrip_bytes(l.tok, all, 256, vocabs[v].exact);
        /* a stray byte never turns into a special token (starcoder's
         * "unknown" is <|endoftext|>) */
        size_t n;
        int32_t *ids = tok_str(l.tok, all, 256, false, false, &n);
        for (size_t i = 0; i < n; i++)
            assert_false(cit_tokenizer_is_eog(l.tok, ids[i]));
        free(ids);
        unload(&l);
    }
}

static void test_empty_and_limits(void **state)
{
    (void)state;
    struct loaded l = load_path("models/stories260K.gguf");
    const struct cit_tokenizer *tok = l.tok;
    char err[128];
    size_t n = 99;
    assert_int_equal(cit_tokenize(tok, NULL, 0, false, false, NULL, 0, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cit_tokenize(tok, "", 0, false, true, NULL, 0, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 0);
    /* too small: the count needed, and the first cap ids */
    const char *text = "Once upon a time";
    int32_t out[8] = {0};
    assert_int_equal(cit_tokenize(tok, text, strlen(text), true, false, out, 2, &n, err, sizeof err), CIT_ERR_LIMIT);
    assert_int_equal(n, 5);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 403);
    assert_int_equal(out[2], 0);
    assert_int_equal(cit_tokenize(tok, text, strlen(text), true, false, out, 5, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 5);
    assert_int_equal(cit_tokenize(tok, text, strlen(text), true, false, NULL, 3, &n, err, sizeof err),
                     CIT_ERR_INVALID_ARG);
    assert_int_equal(cit_tokenize(tok, text, CIT_TOKENIZE_MAX_BYTES + 1, false, false, NULL, 0, &n, err, sizeof err),
                     CIT_ERR_LIMIT);

    char small[4];
    assert_int_equal(cit_detokenize(tok, out, 5, true, false, small, sizeof small, &n, err, sizeof err),
                     CIT_ERR_LIMIT);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(small, "Once", 4);
    assert_int_equal(cit_detokenize(tok, NULL, 0, true, false, NULL, 0, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cit_token_to_piece(tok, 403, false, small, 2, &n, err, sizeof err), CIT_ERR_LIMIT);
    assert_int_equal(n, 5); /* " Once" */
    assert_int_equal(cit_token_to_piece(tok, 1, false, small, 0, &n, err, sizeof err), CIT_OK); /* hidden <s> */
    assert_int_equal(n, 0);
    assert_int_equal(cit_token_to_piece(tok, 1, true, small, sizeof small, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(small, "<s>", 3);
    unload(&l);
}

/* ---- metadata validation, on GGUF files built in memory ---- */

struct gb {
    uint8_t *p;
    size_t n, cap;
    uint64_t n_kv;
};

static void gb_put(struct gb *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(struct gb *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(struct gb *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(struct gb *b, const char *s) { gb_u64(b, strlen(s)); gb_put(b, s, strlen(s)); }
static void gb_key(struct gb *b, const char *k, uint32_t type) { gb_str(b, k); gb_u32(b, type); b->n_kv++; }
static void kv_str(struct gb *b, const char *k, const char *v) { gb_key(b, k, CIT_GGUF_STRING); gb_str(b, v); }
static void kv_u32(struct gb *b, const char *k, uint32_t v) { gb_key(b, k, CIT_GGUF_UINT32); gb_u32(b, v); }
static void kv_bool(struct gb *b, const char *k, bool v) { gb_key(b, k, CIT_GGUF_BOOL); uint8_t x = v; gb_put(b, &x, 1); }
static void kv_strs(struct gb *b, const char *k, const char *const *v, size_t n)
{
    gb_key(b, k, CIT_GGUF_ARRAY);
    gb_u32(b, CIT_GGUF_STRING);
    gb_u64(b, n);
    for (size_t i = 0; i < n; i++)
        gb_str(b, v[i]);
}
static void kv_f32s(struct gb *b, const char *k, const float *v, size_t n)
{
    gb_key(b, k, CIT_GGUF_ARRAY);
    gb_u32(b, CIT_GGUF_FLOAT32);
    gb_u64(b, n);
    gb_put(b, v, n * 4);
}
static void kv_i32s(struct gb *b, const char *k, const int32_t *v, size_t n)
{
    gb_key(b, k, CIT_GGUF_ARRAY);
    gb_u32(b, CIT_GGUF_INT32);
    gb_u64(b, n);
    gb_put(b, v, n * 4);
}

/* Wraps the key/values in a GGUF v3 header (no tensors). */
static uint8_t *gb_finish(struct gb *b, size_t *size)
{
    struct gb f = {0};
    gb_put(&f, "GGUF", 4);
    gb_u32(&f, 3);
    gb_u64(&f, 0);
    gb_u64(&f, b->n_kv);
    gb_put(&f, b->p, b->n);
    while (f.n % 32)
        gb_put(&f, "", 1);
    free(b->p);
    memset(b, 0, sizeof *b);
    *size = f.n;
    return f.p;
}

/* Loads a tokenizer from the built file; returns the status (tokenizer in *out). */
static enum cit_status load_built(struct gb *b, struct cit_tokenizer **out, struct cit_gguf **g, uint8_t **mem,
                                  char *err, size_t errlen)
{
    size_t size;
    *mem = gb_finish(b, &size);
    char gerr[256] = "";
    enum cit_status st = cit_gguf_open_memory(*mem, size, g, gerr, sizeof gerr);
    if (st != CIT_OK)
        fail_msg("gguf: %s: %s", cit_status_str(st), gerr);
    return cit_tokenizer_load(*g, out, err, errlen);
}

static const char *const spm_tokens[] = {"<unk>", "<s>", "</s>", "<0x41>", "\xE2\x96\x81", "a", "b", "c",
                                         "ab", "bc", "\xE2\x96\201a", "<|user|>"};
#define SPM_N (sizeof spm_tokens / sizeof spm_tokens[0])

static void spm_base(struct gb *b, const float *scores)
{
    static const int32_t types[SPM_N] = {2, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 4};
    kv_str(b, "tokenizer.ggml.model", "llama");
    kv_strs(b, "tokenizer.ggml.tokens", spm_tokens, SPM_N);
    kv_f32s(b, "tokenizer.ggml.scores", scores, SPM_N);
    kv_i32s(b, "tokenizer.ggml.token_type", types, SPM_N);
}

static void expect_load(struct gb *b, enum cit_status want, const char *msg_part)
{
    struct cit_tokenizer *tok = NULL;
    struct cit_gguf *g = NULL;
    uint8_t *mem;
    char err[256] = "";
    enum cit_status st = load_built(b, &tok, &g, &mem, err, sizeof err);
    if (st != want)
        fail_msg("load: got %s (%s), want %s", cit_status_str(st), err, cit_status_str(want));
    if (msg_part && !strstr(err, msg_part))
        fail_msg("error \"%s\" does not mention \"%s\"", err, msg_part);
    if (want != CIT_OK)
        assert_null(tok);
    cit_tokenizer_free(tok);
    cit_gguf_free(g);
    free(mem);
}

static void test_load_validation(void **state)
{
    (void)state;
    static const float sc[SPM_N] = {0};
    struct gb b = {0};

    spm_base(&b, sc);
    expect_load(&b, CIT_OK, NULL);

    spm_base(&b, sc);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", SPM_N); /* one past the end */
    expect_load(&b, CIT_ERR_RANGE, "bos_token_id");

    spm_base(&b, sc);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 0xFFFFFFFFu); /* "none" */
    kv_bool(&b, "tokenizer.ggml.add_eos_token", true);
    expect_load(&b, CIT_OK, NULL);

    spm_base(&b, sc);
    kv_u32(&b, "tokenizer.ggml.padding_token_id", 123456);
    expect_load(&b, CIT_ERR_RANGE, "padding_token_id");

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, SPM_N);
    kv_f32s(&b, "tokenizer.ggml.scores", sc, SPM_N - 1);
    expect_load(&b, CIT_ERR_FORMAT, "scores");

    static const int32_t bad_types[SPM_N] = {2, 3, 3, 6, 1, 1, 1, 9, 1, 1, 1, 4};
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, SPM_N);
    kv_i32s(&b, "tokenizer.ggml.token_type", bad_types, SPM_N);
    expect_load(&b, CIT_ERR_FORMAT, "token_type[7]");

    float nan_sc[SPM_N] = {0};
    nan_sc[4] = __builtin_nanf("");
    spm_base(&b, nan_sc);
    expect_load(&b, CIT_ERR_FORMAT, "NaN");

    kv_str(&b, "tokenizer.ggml.model", "rwkv");
    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, SPM_N);
    expect_load(&b, CIT_ERR_UNSUPPORTED, "rwkv");

    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, SPM_N);
    expect_load(&b, CIT_ERR_NOT_FOUND, "tokenizer.ggml.model");

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_u32(&b, "tokenizer.ggml.tokens", 5); /* not an array */
    expect_load(&b, CIT_ERR_TYPE, NULL);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", spm_tokens, 0);
    expect_load(&b, CIT_ERR_FORMAT, "tokens");

    static const char *const bpe_tokens[] = {"a", "b", "c", "ab", "bc", "abc"};
    static const char *const merges[] = {"b c", "a b", "a bc"};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "no-such-pre");
    kv_strs(&b, "tokenizer.ggml.tokens", bpe_tokens, 6);
    kv_strs(&b, "tokenizer.ggml.merges", merges, 3);
    expect_load(&b, CIT_ERR_UNSUPPORTED, "no-such-pre");

    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_strs(&b, "tokenizer.ggml.tokens", bpe_tokens, 6);
    expect_load(&b, CIT_ERR_NOT_FOUND, "merges");

    static const char *const bad_merges[] = {"b c", "abc"};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_strs(&b, "tokenizer.ggml.tokens", bpe_tokens, 6);
    kv_strs(&b, "tokenizer.ggml.merges", bad_merges, 2);
    expect_load(&b, CIT_ERR_FORMAT, "merges[1]");
}

/* Tiny vocabularies where the merge order decides the result. */
static void test_merge_order(void **state)
{
    (void)state;
    static const char *const bpe_tokens[] = {"a", "b", "c", "ab", "bc", "abc", "x"};
    struct gb b = {0};
    struct cit_tokenizer *tok;
    struct cit_gguf *g;
    uint8_t *mem;
    char err[256];
    size_t n;
    int32_t out[8];

    /* "b c" ranks first: a + bc -> abc through "a bc" */
    static const char *const m1[] = {"b c", "a b", "a bc"};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "gpt-2");
    kv_strs(&b, "tokenizer.ggml.tokens", bpe_tokens, 7);
    kv_strs(&b, "tokenizer.ggml.merges", m1, 3);
    assert_int_equal(load_built(&b, &tok, &g, &mem, err, sizeof err), CIT_OK);
    assert_int_equal(cit_tokenize(tok, "abc", 3, false, false, out, 8, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 5);
    assert_int_equal(cit_tokenize(tok, "abx", 3, false, false, out, 8, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 6);
    cit_tokenizer_free(tok);
    cit_gguf_free(g);
    free(mem);

    /* "a b" first, and no "ab c" merge: stuck at ab + c */
    static const char *const m2[] = {"a b", "b c", "a bc"};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_strs(&b, "tokenizer.ggml.tokens", bpe_tokens, 7);
    kv_strs(&b, "tokenizer.ggml.merges", m2, 3);
    assert_int_equal(load_built(&b, &tok, &g, &mem, err, sizeof err), CIT_OK);
    assert_string_equal(cit_tokenizer_pre(tok), "default"); /* no tokenizer.ggml.pre */
    assert_int_equal(cit_tokenize(tok, "abc", 3, false, false, out, 8, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 2);
    /* "d" has no token and no byte token: nothing comes out for it (the
     * reference drops it too) and nothing crashes */
    assert_int_equal(cit_tokenize(tok, "d", 1, false, false, out, 8, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 0);
    cit_tokenizer_free(tok);
    cit_gguf_free(g);
    free(mem);

    /* SentencePiece: the highest-scoring pair merges first */
    float sc[SPM_N] = {0};
    sc[8] = -1.0f;  /* ab */
    sc[9] = -0.5f;  /* bc: better */
    sc[10] = -2.0f; /* _a */
    spm_base(&b, sc);
    kv_bool(&b, "tokenizer.ggml.add_space_prefix", false);
    assert_int_equal(load_built(&b, &tok, &g, &mem, err, sizeof err), CIT_OK);
    assert_int_equal(cit_tokenize(tok, "abc", 3, false, false, out, 8, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 9);
    /* byte fallback: "A" -> <0x41>; "Z" has no byte token -> <unk> */
    assert_int_equal(cit_tokenize(tok, "AZ", 2, false, false, out, 8, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 0);
    /* user-defined token split out, verbatim in both directions */
    assert_int_equal(cit_tokenize(tok, "a<|user|>b", 10, false, false, out, 8, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 3);
    assert_int_equal(out[1], 11);
    char buf[32];
    assert_int_equal(cit_detokenize(tok, out, n, false, false, buf, sizeof buf, &n, err, sizeof err), CIT_OK);
    assert_int_equal(n, 10);
    assert_memory_equal(buf, "a<|user|>b", 10);
    cit_tokenizer_free(tok);
    cit_gguf_free(g);
    free(mem);
}

/* The tokenizer owns its data: it outlives the GGUF handle. */
static void test_outlives_gguf(void **state)
{
    (void)state;
    struct loaded l = load_path("vocab/ggml-vocab-deepseek-llm.gguf");
    cit_gguf_free(l.g);
    l.g = NULL;
    const char *text = "Hello, y'all! How are you \xF0\x9F\x98\x81 ?\xE6\x88\x91\xE6\x83\xB3";
    roundtrip_bytes(l.tok, text, strlen(text), true);
    size_t len;
    const char *t = cit_tokenizer_token_text(l.tok, 100000, &len);
    assert_non_null(t);
    assert_true(len > 0);
    cit_tokenizer_free(l.tok);
    cit_tokenizer_free(NULL);
}

/* ---- pre-tokenizer regex sets ---- */

static void expect_split(const char *pre, const char *text, const char *const *want, size_t n_want)
{
    struct pretok p;
    struct pretok_work w = {0};
    struct span_vec out = {0};
    char err[256] = "";
    assert_int_equal(pretok_init(&p, pre, strlen(pre), err, sizeof err), CIT_OK);
    assert_int_equal(pretok_split(&p, &w, text, strlen(text), &out, err, sizeof err), CIT_OK);
    assert_int_equal(out.n, n_want);
    for (size_t i = 0; i < n_want; i++) {
        assert_int_equal(out.v[i].len, strlen(want[i]));
        assert_memory_equal(text + out.v[i].start, want[i], out.v[i].len);
    }
    span_vec_free(&out);
    pretok_work_free(&w);
    pretok_free(&p);
}

/* Sets without conformance vectors here (llama3, qwen2) were checked against
 * Python's regex module on all the shared test strings; pin one case each,
 * and make sure every known name compiles. */
static void test_pretok_sets(void **state)
{
    (void)state;
    const char *text = "Hello world's 12345 abc\n\n  x";
    static const char *const llama3[] = {"Hello", " world", "'s", " ", "123", "45", " abc", "\n\n", " ", " x"};
    static const char *const qwen2[] = {"Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " abc", "\n\n", " ", " x"};
    static const char *const gpt2[] = {"Hello", " world", "'s", " 12345", " abc", "\n\n ", " x"};
    expect_split("llama-bpe", text, llama3, sizeof llama3 / sizeof llama3[0]);
    expect_split("qwen2", text, qwen2, sizeof qwen2 / sizeof qwen2[0]);
    expect_split("gpt-2", text, gpt2, sizeof gpt2 / sizeof gpt2[0]);

    static const char *const names[] = {
        "default", "llama3", "llama-v3", "llama-bpe", "dbrx", "smaug-bpe", "qwen2", "stablelm2", "falcon",
        "starcoder", "refact", "smollm", "command-r", "gpt-2", "mpt", "olmo", "phi-2", "deepseek-coder",
        "deepseek-llm",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct pretok p;
        char err[256] = "";
        enum cit_status st = pretok_init(&p, names[i], strlen(names[i]), err, sizeof err);
        if (st != CIT_OK)
            fail_msg("pre %s: %s", names[i], err);
        pretok_free(&p);
    }
    struct pretok p;
    char err[256] = "";
    assert_int_equal(pretok_init(&p, "klingon", 7, err, sizeof err), CIT_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "klingon"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_golden),   cmocka_unit_test(test_stream_split_emoji),
        cmocka_unit_test(test_stream_bpe),       cmocka_unit_test(test_special_parsing),
        cmocka_unit_test(test_special_longest_first), cmocka_unit_test(test_bos_eos),
        cmocka_unit_test(test_prompt_single_bos),
        cmocka_unit_test(test_out_of_range_ids), cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_empty_and_limits), cmocka_unit_test(test_load_validation),
        cmocka_unit_test(test_merge_order),      cmocka_unit_test(test_outlives_gguf),
        cmocka_unit_test(test_pretok_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
