/* test_vocab.c: tokenizer conformance against the reference engine's vectors.
 *
 * For each vocabulary in $CITADEL_SHARED/vocab with .inp/.out files, every
 * case is tokenized the way the vectors were made (no BOS/EOS, special
 * tokens not parsed: add_special = parse_special = false; SentencePiece with
 * its space prefix) and compared id for id. Each case is then detokenized
 * and compared with its input, to report which tokenizers are lossless.
 * Vocabularies without vectors (baichuan, gpt-neox) must load and round-trip
 * the same inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citadel/gguf.h"
#include "citadel/tokenizer.h"
#include "support.h"

#define SEP "\n__ggml_vocab_test__\n"

struct cases {
    char *inp_buf;
    const char **text; /* [n] pointers into inp_buf */
    size_t *len;       /* [n] */
    int32_t **ids;     /* [n] expected ids */
    size_t *n_ids;     /* [n] */
    size_t n;
};

static void cases_free(struct cases *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ids ? c->ids[i] : NULL);
    free(c->ids);
    free(c->n_ids);
    free(c->text);
    free(c->len);
    free(c->inp_buf);
    memset(c, 0, sizeof *c);
}

/* Reads name.gguf.inp (cases separated by SEP, the last one followed by it)
 * and, when want_out, name.gguf.out (one line of ids per case). */
static int cases_load(const char *name, bool want_out, struct cases *c)
{
    char rel[256];
    memset(c, 0, sizeof *c);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", name);
    size_t inp_len;
    c->inp_buf = test_read_file(test_shared_path(rel), &inp_len);
    if (!c->inp_buf)
        return -1;
    size_t cap = 64;
    c->text = malloc(cap * sizeof *c->text);
    c->len = malloc(cap * sizeof *c->len);
    char *p = c->inp_buf, *end = c->inp_buf + inp_len;
    for (;;) {
        char *s = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        if (!s)
            break;
        if (c->n == cap) {
            cap *= 2;
            c->text = realloc(c->text, cap * sizeof *c->text);
            c->len = realloc(c->len, cap * sizeof *c->len);
        }
        c->text[c->n] = p;
        c->len[c->n] = (size_t)(s - p);
        c->n++;
        p = s + strlen(SEP);
    }
    if (!want_out)
        return 0;

    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", name);
    size_t out_len;
    char *out = test_read_file(test_shared_path(rel), &out_len);
    if (!out)
        return -1;
    c->ids = calloc(c->n, sizeof *c->ids);
    c->n_ids = calloc(c->n, sizeof *c->n_ids);
    char *line = out;
    for (size_t k = 0; k < c->n; k++) {
        char *nl = strchr(line, '\n');
        if (!nl) {
            free(out);
            return -1;
        }
        *nl = 0;
        size_t m = 0, mcap = 16;
        c->ids[k] = malloc(mcap * sizeof(int32_t));
        char *q = line;
        for (;;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q)
                break;
            if (m == mcap) {
                mcap *= 2;
                c->ids[k] = realloc(c->ids[k], mcap * sizeof(int32_t));
            }
            c->ids[k][m++] = (int32_t)v;
            q = e;
        }
        c->n_ids[k] = m;
        line = nl + 1;
    }
    free(out);
    return 0;
}

static struct cit_gguf *open_vocab(const char *name)
{
    char rel[256], err[256] = "";
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    struct cit_gguf *g = NULL;
    enum cit_status st = cit_gguf_open(test_shared_path(rel), &g, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("open %s: %s: %s", rel, cit_status_str(st), err);
    return g;
}

static void print_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n && i < 80; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n')
            printf("\\n");
        else if (ch == '\t')
            printf("\\t");
        else if (ch < 0x20)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
}

static size_t total_pass, total_cases;

/* Tokenizes and detokenizes every case; returns the number of round trips
 * that reproduced the input. */
static size_t round_trips(const struct cit_tokenizer *tok, const struct cases *c, size_t *n_match)
{
    size_t lossless = 0, match = 0;
    char err[256];
    for (size_t k = 0; k < c->n; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        enum cit_status st = cit_tokenize_alloc(tok, c->text[k], c->len[k], false, false, &ids, &n, err, sizeof err);
        assert_int_equal(st, CIT_OK);
        if (c->ids) {
            bool same = n == c->n_ids[k] && (n == 0 || memcmp(ids, c->ids[k], n * sizeof *ids) == 0);
            if (same) {
                match++;
            } else {
                printf("  case %zu \"", k);
                print_text(c->text[k], c->len[k]);
                printf("\"\n    want:");
                for (size_t i = 0; i < c->n_ids[k]; i++)
                    printf(" %d", c->ids[k][i]);
                printf("\n    got: ");
                for (size_t i = 0; i < n; i++)
                    printf(" %d", ids[i]);
                printf("\n");
            }
        }
        size_t cap = c->len[k] + 16, got = 0;
        char *buf = malloc(cap);
        st = cit_detokenize(tok, ids, n, false, false, buf, cap, &got, err, sizeof err);
        assert_int_equal(st, CIT_OK);
        if (got == c->len[k] && memcmp(buf, c->text[k], got) == 0) {
            lossless++;
        } else {
            printf("  not lossless: case %zu \"", k);
            print_text(c->text[k], c->len[k]);
            printf("\" -> \"");
            print_text(buf, got);
            printf("\"\n");
        }
        free(buf);
        free(ids);
    }
    if (n_match)
        *n_match = match;
    return lossless;
}

static void check_vocab(const char *name, enum cit_tokenizer_kind kind)
{
    struct cases c;
    assert_int_equal(cases_load(name, true, &c), 0);
    struct cit_gguf *g = open_vocab(name);
    struct cit_tokenizer *tok = NULL;
    char err[256] = "";
    enum cit_status st = cit_tokenizer_load(g, &tok, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("load %s: %s: %s", name, cit_status_str(st), err);
    assert_int_equal(cit_tokenizer_kind(tok), kind);

    size_t match = 0;
    size_t lossless = round_trips(tok, &c, &match);
    printf("%-15s %s pre=%-14s passed %zu/%zu, lossless %zu/%zu\n", name, kind == CIT_TOKENIZER_SPM ? "SPM" : "BPE",
           cit_tokenizer_pre(tok), match, c.n, lossless, c.n);
    total_pass += match;
    total_cases += c.n;
    assert_int_equal(match, c.n);
    assert_int_equal(lossless, c.n);

    cit_tokenizer_free(tok);
    cit_gguf_free(g);
    cases_free(&c);
}

static void test_llama_spm(void **state) { (void)state; check_vocab("llama-spm", CIT_TOKENIZER_SPM); }
static void test_phi_3(void **state) { (void)state; check_vocab("phi-3", CIT_TOKENIZER_SPM); }
static void test_gpt_2(void **state) { (void)state; check_vocab("gpt-2", CIT_TOKENIZER_BPE); }
static void test_falcon(void **state) { (void)state; check_vocab("falcon", CIT_TOKENIZER_BPE); }
static void test_starcoder(void **state) { (void)state; check_vocab("starcoder", CIT_TOKENIZER_BPE); }
static void test_refact(void **state) { (void)state; check_vocab("refact", CIT_TOKENIZER_BPE); }
static void test_mpt(void **state) { (void)state; check_vocab("mpt", CIT_TOKENIZER_BPE); }
static void test_deepseek_coder(void **state) { (void)state; check_vocab("deepseek-coder", CIT_TOKENIZER_BPE); }
static void test_deepseek_llm(void **state) { (void)state; check_vocab("deepseek-llm", CIT_TOKENIZER_BPE); }

/* No vectors: must load, and round-trip the shared inputs. */
static void check_no_vectors(const char *name, enum cit_tokenizer_kind kind, uint32_t n_vocab)
{
    struct cases c;
    assert_int_equal(cases_load("llama-spm", false, &c), 0);
    struct cit_gguf *g = open_vocab(name);
    struct cit_tokenizer *tok = NULL;
    char err[256] = "";
    enum cit_status st = cit_tokenizer_load(g, &tok, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("load %s: %s: %s", name, cit_status_str(st), err);
    cit_gguf_free(g); /* the tokenizer keeps no pointer into the file */
    assert_int_equal(cit_tokenizer_kind(tok), kind);
    assert_int_equal(cit_tokenizer_n_vocab(tok), n_vocab);
    size_t lossless = round_trips(tok, &c, NULL);
    printf("%-15s %s pre=%-14s loaded (%u tokens, %u merges), lossless %zu/%zu\n", name,
           kind == CIT_TOKENIZER_SPM ? "SPM" : "BPE", cit_tokenizer_pre(tok), cit_tokenizer_n_vocab(tok),
           cit_tokenizer_n_merges(tok), lossless, c.n);
    assert_int_equal(lossless, c.n);
    cit_tokenizer_free(tok);
    cases_free(&c);
}

static void test_baichuan(void **state)
{
    (void)state;
    check_no_vectors("baichuan", CIT_TOKENIZER_SPM, 64000);
}

static void test_gpt_neox(void **state)
{
    (void)state;
    check_no_vectors("gpt-neox", CIT_TOKENIZER_BPE, 50432);
}

/* WordPiece is not implemented: loading says so instead of mis-tokenizing. */
static void test_bert_unsupported(void **state)
{
    (void)state;
    struct cit_gguf *g = open_vocab("bert-bge");
    struct cit_tokenizer *tok = NULL;
    char err[256] = "";
    assert_int_equal(cit_tokenizer_load(g, &tok, err, sizeof err), CIT_ERR_UNSUPPORTED);
    assert_null(tok);
    assert_non_null(strstr(err, "bert"));
    printf("bert-bge        WPM unsupported: %s\n", err);
    cit_gguf_free(g);
}

static void test_total(void **state)
{
    (void)state;
    printf("total: passed %zu/%zu\n", total_pass, total_cases);
    assert_int_equal(total_pass, total_cases);
    assert_true(total_cases > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_spm),  cmocka_unit_test(test_phi_3),          cmocka_unit_test(test_gpt_2),
        cmocka_unit_test(test_falcon),     cmocka_unit_test(test_starcoder),      cmocka_unit_test(test_refact),
        cmocka_unit_test(test_mpt),        cmocka_unit_test(test_deepseek_coder), cmocka_unit_test(test_deepseek_llm),
        cmocka_unit_test(test_baichuan),   cmocka_unit_test(test_gpt_neox),       cmocka_unit_test(test_bert_unsupported),
        cmocka_unit_test(test_total),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
