/* fuzz_tokenizer.c: libFuzzer harness for the tokenizers (src/text).
 *
 * Prompt text is attacker-controlled. Each input is tokenized by a
 * SentencePiece vocabulary (stories260K) and two byte-level BPE ones (gpt-2,
 * deepseek-llm), with and without special-token parsing. Invariants: every
 * id is inside the vocabulary; the streaming detokenizer emits exactly what
 * whole-sequence detokenization gives (for BPE, which has no space prefix);
 * gpt-2 (which covers all 256 bytes) gives valid UTF-8 input back byte for
 * byte when special tokens are not parsed. The input's first byte also picks
 * random ids for detokenization, which must never read out of bounds.
 *
 * Vocabularies are read from $CITADEL_SHARED (default ../shared).
 * Build: CC=clang cmake -S . -B build-fuzz -DCITADEL_FUZZ=ON && cmake --build build-fuzz --target fuzz_tokenizer */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citadel/gguf.h"
#include "citadel/tokenizer.h"
#include "text/utf8.h"

#define CHECK(c)                                                                           \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "fuzz_tokenizer: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

enum { N_VOCABS = 3 };
static struct cit_tokenizer *toks[N_VOCABS];
static const char *files[N_VOCABS] = {"models/stories260K.gguf", "vocab/ggml-vocab-gpt-2.gguf",
                                      "vocab/ggml-vocab-deepseek-llm.gguf"};
static char *buf_a, *buf_b;
static size_t buf_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = getenv("CITADEL_SHARED");
    if (!base || !*base)
        base = "../shared";
    for (int i = 0; i < N_VOCABS; i++) {
        char path[4096], err[512];
        snprintf(path, sizeof path, "%s/%s", base, files[i]);
        struct cit_gguf *g = NULL;
        if (cit_gguf_open(path, &g, err, sizeof err) != CIT_OK ||
            cit_tokenizer_load(g, &toks[i], err, sizeof err) != CIT_OK) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s (set CITADEL_SHARED)\n", path, err);
            abort();
        }
        cit_gguf_free(g); /* the tokenizer keeps no pointer into the file */
    }
    buf_cap = 1 << 20;
    buf_a = malloc(buf_cap);
    buf_b = malloc(buf_cap);
    CHECK(buf_a && buf_b);
    return 0;
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        bool ok;
        size_t k = cit_utf8_next(s + i, n - i, &cp, &ok);
        if (!ok || k == 0)
            return false;
        i += k;
    }
    return true;
}

/* Streams ids through cit_detok into buf_b; returns the length. */
static size_t stream(const struct cit_tokenizer *tok, const int32_t *ids, size_t n)
{
    struct cit_detok d;
    cit_detok_init(&d, tok, false);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        CHECK(len + cit_tokenizer_max_piece_len(tok) + 4 <= buf_cap);
        CHECK(cit_detok_push(&d, ids[i], buf_b + len, buf_cap - len, &k, NULL, 0) == CIT_OK);
        len += k;
    }
    len += cit_detok_flush(&d, buf_b + len, buf_cap - len);
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    for (int v = 0; v < N_VOCABS; v++) {
        const struct cit_tokenizer *tok = toks[v];
        uint32_t n_vocab = cit_tokenizer_n_vocab(tok);
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK(cit_tokenize_alloc(tok, (const char *)data, size, special, special, &ids, &n, NULL, 0) == CIT_OK);
            for (size_t i = 0; i < n; i++)
                CHECK(ids[i] >= 0 && (uint32_t)ids[i] < n_vocab);
            size_t whole = 0;
            if (n * (cit_tokenizer_max_piece_len(tok) + 4) < buf_cap) {
                CHECK(cit_detokenize(tok, ids, n, special, false, buf_a, buf_cap, &whole, NULL, 0) == CIT_OK);
                if (cit_tokenizer_kind(tok) == CIT_TOKENIZER_BPE && !special) {
                    size_t streamed = stream(tok, ids, n);
                    CHECK(streamed == whole && memcmp(buf_a, buf_b, whole) == 0);
                    if (v == 1 && valid_utf8(data, size))
                        CHECK(whole == size && memcmp(buf_a, data, size) == 0);
                }
            }
            free(ids);
        }
        /* Arbitrary ids, in and out of range: errors, never out-of-bounds reads. */
        if (size >= 4) {
            int32_t raw[64];
            size_t m = size / 4 < 64 ? size / 4 : 64;
            memcpy(raw, data, m * 4);
            size_t k = 0;
            enum cit_status st = cit_detokenize(tok, raw, m, false, true, buf_a, buf_cap, &k, NULL, 0);
            bool all_ok = true;
            for (size_t i = 0; i < m; i++)
                all_ok &= raw[i] >= 0 && (uint32_t)raw[i] < n_vocab;
            CHECK((st == CIT_OK) == all_ok);
        }
    }
    return 0;
}
