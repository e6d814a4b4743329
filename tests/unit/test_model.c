/* test_model.c: unit tests of model loading, contexts and cit_decode.
 *
 * On the real models in $CITADEL_SHARED/models: batch invariance (mixed
 * sequences in one batch, prefill vs token by token, thread counts all give
 * bit-identical logits), KV cache operations (remove and re-decode, copy a
 * prefix), every decode validation error, context limits. On small GGUF
 * files written by this test: every class of bad hyper-parameter and bad
 * tensor is refused with an error naming the key or tensor. */
#include <assert.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/asan.h"
#include "base/threadpool.h"
#include "citadel/gguf.h"
#include "citadel/model.h"
#include "citadel/quantize.h"
#include "citadel/tensor.h"
#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "model/model_impl.h"
#include "support.h"

/* ---- thread pool ---- */

struct visit {
    unsigned char *seen; /* (n) times each index was handed out */
    size_t *len;         /* (n) length of the chunk that begins at each index, 0 elsewhere */
    unsigned n_threads;
    atomic_int bad_tid;
};

static void visit_range(void *arg, size_t begin, size_t end, unsigned tid)
{
    struct visit *v = arg;
    if (tid >= v->n_threads || begin >= end)
        atomic_store(&v->bad_tid, 1);
    v->len[begin] = end - begin;
    for (size_t i = begin; i < end; i++)
        v->seen[i]++; /* ranges are disjoint */
}

/* Every index of every loop is run exactly once, for many shapes, and the
 * pool survives many back-to-back loops. Chunks start at multiples of the
 * grain, are whole grains except the one that ends the range, and shrink
 * (never grow) from the start of the range to its end, down to one grain
 * when the range is long enough: what lets the threads finish together.
 * The first chunk is 1/threads of the range in whole grains: as few chunks
 * (new streams of rows) as that allows (docs/engine.md). */
static void test_threadpool(void **state)
{
    (void)state;
    static const unsigned threads[] = {1, 2, 3, 8};
    static const size_t sizes[] = {0, 1, 2, 7, 64, 1000, 4099};
    static const size_t grains[] = {0, 1, 5, 100, 5000};
    char err[128];
    struct cit_threadpool *p = NULL;
    assert_int_equal(cit_threadpool_new(0, &p, err, sizeof err), CIT_ERR_RANGE);
    assert_int_equal(cit_threadpool_new(CIT_THREADPOOL_MAX_THREADS + 1, &p, err, sizeof err), CIT_ERR_RANGE);
    for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
        assert_int_equal(cit_threadpool_new(threads[ti], &p, err, sizeof err), CIT_OK);
        assert_int_equal(cit_threadpool_size(p), threads[ti]);
        for (int rep = 0; rep < 20; rep++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
                for (size_t gi = 0; gi < sizeof grains / sizeof grains[0]; gi++) {
                    const size_t n = sizes[si], g = grains[gi] ? grains[gi] : 1;
                    struct visit v = {calloc(n + 1, 1), calloc(n + 1, sizeof(size_t)), threads[ti], 0};
                    assert_non_null(v.seen);
                    assert_non_null(v.len);
                    cit_threadpool_for(p, n, grains[gi], visit_range, &v);
                    size_t prev = SIZE_MAX, smallest = SIZE_MAX;
                    for (size_t i = 0; i < n; i++) {
                        assert_int_equal(v.seen[i], 1);
                        if (!v.len[i])
                            continue;
                        if (threads[ti] > 1 && n > g) {
                            assert_int_equal(i % g, 0);
                            if (i + v.len[i] < n)
                                assert_int_equal(v.len[i] % g, 0);
                            assert_true(v.len[i] <= prev);
                            if (i + v.len[i] < n && v.len[i] < smallest)
                                smallest = v.len[i];
                        }
                        prev = v.len[i];
                    }
                    if (threads[ti] > 1 && n >= 16 * threads[ti] * g) {
                        assert_int_equal(smallest, g);
                        assert_int_equal(v.len[0], n / threads[ti] / g * g);
                    }
                    assert_int_equal(atomic_load(&v.bad_tid), 0);
                    free(v.seen);
                    free(v.len);
                }
        cit_threadpool_free(p);
    }
    cit_threadpool_free(NULL);
    assert_true(cit_cpu_count() >= 1);
}

/* ---- several matrices in one parallel loop ---- */

/* cit_matmul_packed_n over matrices of mixed types and row counts (some not
 * whole 16-row tiles, which the fused index space rounds up) must give each
 * matrix exactly what cit_matmul_packed gives it alone, for every pool size
 * and token count, and write nothing past each output. */
static void test_matmul_fused(void **state)
{
    (void)state;
    enum { N_IN = 512, PAD = 7 };
    static const uint32_t types[] = {CIT_TYPE_Q4_K, CIT_TYPE_Q6_K, CIT_TYPE_Q4_K, CIT_TYPE_Q6_K};
    static const uint32_t outs[] = {37, 16, 5, 100};
    static const size_t toks[] = {1, 3, 20};
    static const unsigned threads[] = {1, 2, 3};
    enum { NM = sizeof types / sizeof types[0] };
    static_assert(NM <= CIT_MATMUL_MAX_FUSED, "one fused call");
    test_rng_seed(99);
    struct cit_matrix m[NM];
    const struct cit_matrix *mp[NM];
    float *tmp = malloc(N_IN * sizeof(float)), *x = malloc(N_IN * 20 * sizeof(float));
    assert_non_null(tmp);
    assert_non_null(x);
    for (size_t i = 0; i < N_IN * 20; i++)
        x[i] = test_rng_gauss();
    for (size_t i = 0; i < NM; i++) {
        /* Q6_K beside Q4_K where the tier's kernels share activations (x86), else Q4_K again */
        uint32_t type = i == 0 || cit_kernel_same_act(cit_kernel_get(types[0]), cit_kernel_get(types[i]), 20)
                            ? types[i]
                            : types[0];
        const struct cit_type_traits *tr = cit_type_traits(type);
        uint64_t rb = 0;
        assert_true(cit_type_row_size(type, N_IN, &rb));
        unsigned char *d = malloc(rb * outs[i]);
        assert_non_null(d);
        for (size_t r = 0; r < outs[i]; r++) {
            for (size_t e = 0; e < N_IN; e++)
                tmp[e] = test_rng_gauss();
            tr->from_float(tmp, d + r * rb, N_IN);
        }
        m[i] = (struct cit_matrix){d, tr, type, N_IN, outs[i], rb, CIT_LAYOUT_ROWS};
        mp[i] = &m[i];
        if (i > 0)
            assert_true(cit_matmul_same_act(&m[0], &m[i], 20));
    }
    for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
        struct cit_threadpool *p = NULL;
        char err[128] = "";
        assert_int_equal(cit_threadpool_new(threads[ti], &p, err, sizeof err), CIT_OK);
        for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
            size_t n = toks[k];
            uint64_t ab = 0;
            assert_true(cit_matmul_act_bytes(types[0], N_IN, n, &ab));
            void *act = malloc(ab);
            assert_non_null(act);
            cit_matmul_pack(p, &m[0], x, n, act);
            float *want[NM], *got[NM];
            for (size_t i = 0; i < NM; i++) {
                size_t len = n * outs[i] + PAD;
                want[i] = malloc(len * sizeof(float));
                got[i] = malloc(len * sizeof(float));
                assert_non_null(want[i]);
                assert_non_null(got[i]);
                for (size_t e = 0; e < len; e++)
                    want[i][e] = got[i][e] = -1.0f; /* what nothing writes */
                cit_matmul_packed(p, &m[i], act, n, want[i]);
            }
            cit_matmul_packed_n(p, mp, NM, act, n, got);
            for (size_t i = 0; i < NM; i++) {
                if (memcmp(want[i], got[i], (n * outs[i] + PAD) * sizeof(float)) != 0)
                    fail_msg("matrix %zu (%u rows), %zu tokens, %u threads: fused output differs", i, outs[i], n,
                             threads[ti]);
                free(want[i]);
                free(got[i]);
            }
            free(act);
        }
        cit_threadpool_free(p);
    }
    for (size_t i = 0; i < NM; i++)
        free((void *)m[i].data);
    free(tmp);
    free(x);
}

/* ---- helpers over real models ---- */

static struct cit_model *load(const char *rel)
{
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s", test_shared_path(rel));
    struct cit_model *m = NULL;
    enum cit_status st = cit_model_load(path, &m, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("%s: %s", rel, err);
    return m;
}

static struct cit_context *new_ctx(const struct cit_model *m, uint32_t n_ctx, uint32_t n_seq, uint32_t n_batch,
                                   uint32_t n_threads)
{
    struct cit_context_params p = {n_ctx, n_seq, n_batch, n_threads};
    struct cit_context *c = NULL;
    char err[512] = "";
    if (cit_context_new(m, &p, &c, err, sizeof err) != CIT_OK)
        fail_msg("context: %s", err);
    return c;
}

static void decode_ok(struct cit_context *c, const struct cit_batch_item *items, size_t n)
{
    char err[512] = "";
    if (cit_decode(c, items, n, err, sizeof err) != CIT_OK)
        fail_msg("decode: %s", err);
}

/* Three prompts of different lengths (token ids valid for a 512 vocab). */
static const int32_t prompt0[] = {1, 403, 407, 261, 378, 432};
static const int32_t prompt1[] = {1, 72, 300, 19, 260, 411, 290, 275, 33};
static const int32_t prompt2[] = {1, 500, 12, 97};
static const int32_t *const prompts[3] = {prompt0, prompt1, prompt2};
static const size_t prompt_len[3] = {6, 9, 4};

/* Logits (n_vocab) of every token of sequence s's prompt, decoded alone in
 * a fresh context, either as one batch or one token per decode. */
static float *alone(const struct cit_model *m, int s, bool one_batch, uint32_t n_threads)
{
    uint32_t n_vocab = cit_model_info(m)->n_vocab;
    size_t n = prompt_len[s];
    float *out = malloc(n * n_vocab * sizeof *out);
    assert_non_null(out);
    struct cit_context *c = new_ctx(m, 64, 1, 16, n_threads);
    struct cit_batch_item items[16];
    for (size_t i = 0; i < n; i++)
        items[i] = (struct cit_batch_item){prompts[s][i], (int32_t)i, 0, true};
    if (one_batch) {
        decode_ok(c, items, n);
        for (size_t i = 0; i < n; i++)
            memcpy(out + i * n_vocab, cit_logits(c, i), n_vocab * sizeof *out);
    } else {
        for (size_t i = 0; i < n; i++) {
            decode_ok(c, &items[i], 1);
            memcpy(out + i * n_vocab, cit_logits(c, 0), n_vocab * sizeof *out);
        }
    }
    cit_context_free(c);
    return out;
}

static const char *const invariance_models[] = {"models/stories260K.gguf", "models/micro-llama-Q4_K_M.gguf",
                                                "models/micro-qwen2-Q8_0.gguf", "models/micro-llama-F16.gguf"};

/* Three sequences interleaved in one batch == each decoded alone, bit for bit. */
static void batch_invariance_of(struct cit_model *m, const char *name)
{
    uint32_t n_vocab = cit_model_info(m)->n_vocab;
    struct cit_context *c = new_ctx(m, 64, 3, 32, 2);
    struct cit_batch_item items[32];
    size_t n = 0, at[3] = {0, 0, 0};
    /* Round robin over the sequences, in the order 2, 0, 1. */
    for (bool more = true; more;) {
        more = false;
        for (int k = 0; k < 3; k++) {
            int s = (k + 2) % 3;
            if (at[s] < prompt_len[s]) {
                items[n++] = (struct cit_batch_item){prompts[s][at[s]], (int32_t)at[s], s, true};
                at[s]++;
                more = true;
            }
        }
    }
    decode_ok(c, items, n);
    for (int s = 0; s < 3; s++) {
        float *ref = alone(m, s, true, 1);
        for (size_t i = 0; i < n; i++) {
            if (items[i].seq != s)
                continue;
            const float *got = cit_logits(c, i);
            assert_non_null(got);
            if (memcmp(got, ref + (size_t)items[i].pos * n_vocab, n_vocab * sizeof(float)) != 0)
                fail_msg("%s: seq %d pos %d differs in a mixed batch", name, s, items[i].pos);
        }
        assert_int_equal(cit_kv_seq_len(c, s), (int32_t)prompt_len[s]);
        free(ref);
    }
    cit_context_free(c);
}

static void test_batch_invariance(void **state)
{
    (void)state;
    for (size_t mi = 0; mi < sizeof invariance_models / sizeof invariance_models[0]; mi++) {
        struct cit_model *m = load(invariance_models[mi]);
        batch_invariance_of(m, invariance_models[mi]);
        cit_model_free(m);
    }
}

/* The same for BF16 weights (micro-llama-f32 quantized to BF16 here; no
 * shared file has them), whose kernels follow the bf16 dot-product
 * instruction's order on every tier. */
static void test_batch_invariance_bf16(void **state)
{
    (void)state;
    char dir[] = "/tmp/citadel-test-model-XXXXXX", path[64], err[512] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/bf16.gguf", dir);
    struct cit_quantize_params qp = {.ftype = CIT_FTYPE_BF16, .n_threads = 1};
    struct cit_quantize_stats qs;
    if (cit_quantize_file(test_shared_path("models/micro-llama-f32.gguf"), path, &qp, &qs, err, sizeof err) != CIT_OK)
        fail_msg("quantize to BF16: %s", err);
    struct cit_model *m = NULL;
    if (cit_model_load(path, &m, err, sizeof err) != CIT_OK)
        fail_msg("%s: %s", path, err);
    assert_int_equal(cit_model_info(m)->weight_type, CIT_TYPE_BF16);
    batch_invariance_of(m, "micro-llama BF16");
    cit_model_free(m);
    unlink(path);
    rmdir(dir);
}

/* A batch of 104 tokens (8 sequences x 13, interleaved), past the size at
 * which every tier switches to its batch kernels (the amx tier's tile
 * kernels start at 16 to 96 tokens by type), gives each sequence exactly
 * the logits it gets decoded alone one token at a time (the decode kernels). */
static const char *const large_batch_models[] = {"models/micro-llama-Q4_0.gguf", "models/micro-qwen2-Q8_0.gguf",
                                                 "models/micro-llama-Q4_K_M.gguf", "models/micro-qwen2-Q5_K_M.gguf",
                                                 "models/micro-llama-Q6_K.gguf"};
static void test_batch_invariance_large(void **state)
{
    (void)state;
    enum { NS = 8, NT = 13 };
    for (size_t mi = 0; mi < sizeof large_batch_models / sizeof large_batch_models[0]; mi++) {
        struct cit_model *m = load(large_batch_models[mi]);
        uint32_t n_vocab = cit_model_info(m)->n_vocab;
        int32_t tok[NS][NT];
        for (int s = 0; s < NS; s++)
            for (int i = 0; i < NT; i++)
                tok[s][i] = i == 0 ? 1 : (int32_t)((37u * (unsigned)s + 101u * (unsigned)i + 7u) % (n_vocab - 3) + 3);
        struct cit_context *c = new_ctx(m, 32, NS, NS * NT, 2);
        struct cit_batch_item items[NS * NT];
        size_t n = 0;
        for (int i = 0; i < NT; i++)
            for (int s = 0; s < NS; s++)
                items[n++] = (struct cit_batch_item){tok[s][i], i, s, true};
        decode_ok(c, items, n);
        struct cit_context *one = new_ctx(m, 32, 1, 1, 2);
        for (int s = 0; s < NS; s++) {
            cit_kv_seq_rm(one, 0, 0);
            for (int i = 0; i < NT; i++) {
                struct cit_batch_item it = {tok[s][i], i, 0, true};
                decode_ok(one, &it, 1);
                if (memcmp(cit_logits(one, 0), cit_logits(c, (size_t)i * NS + (size_t)s), n_vocab * sizeof(float)))
                    fail_msg("%s: seq %d pos %d differs between a 104-token batch and one-token decodes",
                             large_batch_models[mi], s, i);
            }
        }
        cit_context_free(one);
        cit_context_free(c);
        cit_model_free(m);
    }
}

/* A prompt as one batch == the same prompt one token per decode. */
static void test_prefill_vs_tokenwise(void **state)
{
    (void)state;
    for (size_t mi = 0; mi < sizeof invariance_models / sizeof invariance_models[0]; mi++) {
        struct cit_model *m = load(invariance_models[mi]);
        uint32_t n_vocab = cit_model_info(m)->n_vocab;
        float *a = alone(m, 1, true, 2);
        float *b = alone(m, 1, false, 2);
        assert_memory_equal(a, b, prompt_len[1] * n_vocab * sizeof(float));
        free(a);
        free(b);
        cit_model_free(m);
    }
}

/* cit_model_repack (the R16 copy of Q4_0 / Q8_0 / Q4_K / Q6_K matrices) changes no logit: one
 * token per decode (the native interleaved kernel), a 9-token batch (its
 * passes of up to 4 tokens) and a 40-token batch (the batch kernels reading
 * groups turned back into rows), against the same model left in place.
 * Where the tier has no interleaved kernel (the capped runs of this test),
 * repacking is refused and leaves the model as it was. */
static void test_repack_same_logits(void **state)
{
    (void)state;
    static const char *const models[] = {"models/micro-llama-Q4_0.gguf", "models/micro-qwen2-Q4_0.gguf",
                                         "models/micro-qwen2-Q8_0.gguf", "models/micro-llama-Q4_K_M.gguf"};
    enum { NT = 40 };
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
        struct cit_model *plain = load(models[mi]), *packed = load(models[mi]);
        uint32_t n_vocab = cit_model_info(plain)->n_vocab;
        char err[512] = "";
        uint64_t bytes = 1;
        enum cit_status st = cit_model_repack(packed, 2, &bytes, err, sizeof err);
        if (st == CIT_ERR_UNSUPPORTED) {
            /* Q4_0 is read natively from the avx2 tier up, Q8_0, Q4_K and Q6_K from avx512vnni */
            const char *type = strstr(models[mi], "Q8_0") ? "Q8_0" : strstr(models[mi], "Q4_K") ? "Q4_K" : "Q4_0";
            assert_true(cit_isa_active() < (strcmp(type, "Q4_0") ? CIT_ISA_AVX512_VNNI : CIT_ISA_AVX2));
            assert_non_null(strstr(err, type));
            assert_int_equal(bytes, 0);
        } else {
            assert_int_equal(st, CIT_OK);
            /* the layer matrices are Q4_0 / Q8_0 / Q4_K (Q4_K_M: and Q6_K, also interleaved), rows a multiple of 16 */
            assert_true(bytes > 0);
            assert_int_equal(cit_model_repack(packed, 2, NULL, err, sizeof err), CIT_ERR_INVALID_ARG);
        }
        int32_t tok[NT];
        for (int i = 0; i < NT; i++)
            tok[i] = i == 0 ? 1 : (int32_t)((101u * (unsigned)i + 7u) % (n_vocab - 3) + 3);
        struct cit_batch_item items[NT];
        for (int i = 0; i < NT; i++)
            items[i] = (struct cit_batch_item){tok[i], i, 0, true};
        const struct cit_model *ms[2] = {plain, packed};
        float *out[2][3];
        for (int v = 0; v < 2; v++) {
            for (int k = 0; k < 3; k++) {
                out[v][k] = malloc((size_t)NT * n_vocab * sizeof(float));
                assert_non_null(out[v][k]);
            }
            struct cit_context *c = new_ctx(ms[v], 64, 1, NT, 2);
            for (int i = 0; i < 12; i++) { /* one token per decode */
                decode_ok(c, &items[i], 1);
                memcpy(out[v][0] + (size_t)i * n_vocab, cit_logits(c, 0), n_vocab * sizeof(float));
            }
            cit_kv_seq_rm(c, 0, 0);
            decode_ok(c, items, 9);
            for (int i = 0; i < 9; i++)
                memcpy(out[v][1] + (size_t)i * n_vocab, cit_logits(c, (size_t)i), n_vocab * sizeof(float));
            cit_kv_seq_rm(c, 0, 0);
            decode_ok(c, items, NT);
            for (int i = 0; i < NT; i++)
                memcpy(out[v][2] + (size_t)i * n_vocab, cit_logits(c, (size_t)i), n_vocab * sizeof(float));
            cit_context_free(c);
        }
        static const char *const what[3] = {"one-token decodes", "a 9-token batch", "a 40-token batch"};
        static const int count[3] = {12, 9, NT};
        for (int k = 0; k < 3; k++)
            if (memcmp(out[0][k], out[1][k], (size_t)count[k] * n_vocab * sizeof(float)))
                fail_msg("%s: repacked logits differ from the file layout's in %s", models[mi], what[k]);
        for (int v = 0; v < 2; v++)
            for (int k = 0; k < 3; k++)
                free(out[v][k]);
        cit_model_free(plain);
        cit_model_free(packed);
    }
    char err[128] = "";
    assert_int_equal(cit_model_repack(NULL, 1, NULL, err, sizeof err), CIT_ERR_INVALID_ARG);
}

/* 1 and 3 threads give the same bits. */
static void test_thread_counts(void **state)
{
    (void)state;
    for (size_t mi = 0; mi < sizeof invariance_models / sizeof invariance_models[0]; mi++) {
        struct cit_model *m = load(invariance_models[mi]);
        uint32_t n_vocab = cit_model_info(m)->n_vocab;
        float *a = alone(m, 0, true, 1);
        float *b = alone(m, 0, true, 3);
        assert_memory_equal(a, b, prompt_len[0] * n_vocab * sizeof(float));
        free(a);
        free(b);
        cit_model_free(m);
    }
}

/* Logits are requested per item; the others return NULL. */
static void test_logits_selection(void **state)
{
    (void)state;
    struct cit_model *m = load("models/stories260K.gguf");
    struct cit_context *c = new_ctx(m, 64, 1, 16, 2);
    assert_null(cit_logits(c, 0)); /* nothing decoded yet */
    struct cit_batch_item items[6];
    for (size_t i = 0; i < 6; i++)
        items[i] = (struct cit_batch_item){prompt0[i], (int32_t)i, 0, i == 2 || i == 5};
    decode_ok(c, items, 6);
    for (size_t i = 0; i < 6; i++)
        assert_true((cit_logits(c, i) != NULL) == (i == 2 || i == 5));
    assert_null(cit_logits(c, 6));
    float *ref = alone(m, 0, true, 1);
    uint32_t n_vocab = cit_model_info(m)->n_vocab;
    assert_memory_equal(cit_logits(c, 2), ref + 2 * n_vocab, n_vocab * sizeof(float));
    assert_memory_equal(cit_logits(c, 5), ref + 5 * n_vocab, n_vocab * sizeof(float));
    free(ref);
    cit_context_free(c);
    cit_model_free(m);
}

/* Removing the tail of a sequence and decoding it again reproduces its logits. */
static void test_kv_seq_rm(void **state)
{
    (void)state;
    struct cit_model *m = load("models/micro-qwen2-Q6_K.gguf");
    uint32_t n_vocab = cit_model_info(m)->n_vocab;
    struct cit_context *c = new_ctx(m, 64, 2, 16, 2);
    struct cit_batch_item items[16];
    size_t n = prompt_len[1];
    for (size_t i = 0; i < n; i++)
        items[i] = (struct cit_batch_item){prompt1[i], (int32_t)i, 1, i + 1 == n};
    decode_ok(c, items, n);
    float *want = malloc(n_vocab * sizeof *want);
    assert_non_null(want);
    memcpy(want, cit_logits(c, n - 1), n_vocab * sizeof *want);
    assert_int_equal(cit_kv_seq_len(c, 1), (int32_t)n);
    assert_int_equal(cit_kv_seq_len(c, 0), 0);

    cit_kv_seq_rm(c, 1, 4);
    assert_int_equal(cit_kv_seq_len(c, 1), 4);
    decode_ok(c, items + 4, n - 4);
    assert_memory_equal(cit_logits(c, n - 5), want, n_vocab * sizeof *want);

    /* Whole sequence, and a different batch split. */
    cit_kv_seq_rm(c, 1, 0);
    assert_int_equal(cit_kv_seq_len(c, 1), 0);
    decode_ok(c, items, 3);
    decode_ok(c, items + 3, n - 3);
    assert_memory_equal(cit_logits(c, n - 4), want, n_vocab * sizeof *want);

    /* Out of range ids are ignored; seq -1 clears every sequence. */
    cit_kv_seq_rm(c, 7, 0);
    cit_kv_seq_rm(c, 1, 100);
    assert_int_equal(cit_kv_seq_len(c, 1), (int32_t)n);
    assert_int_equal(cit_kv_seq_len(c, -1), 0);
    assert_int_equal(cit_kv_seq_len(c, 2), 0);
    cit_kv_seq_rm(c, -1, 0);
    assert_int_equal(cit_kv_seq_len(c, 1), 0);
    free(want);
    cit_context_free(c);
    cit_model_free(m);
}

/* A copied prefix continues exactly like the original. */
static void test_kv_seq_cp(void **state)
{
    (void)state;
    struct cit_model *m = load("models/micro-llama-Q8_0.gguf");
    uint32_t n_vocab = cit_model_info(m)->n_vocab;
    struct cit_context *c = new_ctx(m, 64, 3, 16, 2);
    struct cit_batch_item items[16];
    for (size_t i = 0; i < 6; i++)
        items[i] = (struct cit_batch_item){prompt0[i], (int32_t)i, 0, false};
    decode_ok(c, items, 6);
    char err[256] = "";
    assert_int_equal(cit_kv_seq_cp(c, 0, 2, 4, err, sizeof err), CIT_OK);
    assert_int_equal(cit_kv_seq_len(c, 2), 4);
    assert_int_equal(cit_kv_seq_cp(c, 0, 1, 7, err, sizeof err), CIT_ERR_RANGE);
    assert_int_equal(cit_kv_seq_cp(c, 0, 3, -1, err, sizeof err), CIT_ERR_RANGE);
    assert_int_equal(cit_kv_seq_cp(c, -1, 1, -1, err, sizeof err), CIT_ERR_RANGE);

    /* Continue seq 2 from position 4 with prompt0[4..6): same as the original. */
    struct cit_batch_item cont[2] = {{prompt0[4], 4, 2, false}, {prompt0[5], 5, 2, true}};
    decode_ok(c, cont, 2);
    float *ref = alone(m, 0, true, 1);
    assert_memory_equal(cit_logits(c, 1), ref + 5 * n_vocab, n_vocab * sizeof(float));
    free(ref);
    cit_context_free(c);
    cit_model_free(m);
}

static void expect_range(struct cit_context *c, const struct cit_batch_item *items, size_t n, const char *w1,
                         const char *w2)
{
    char err[512] = "";
    enum cit_status st = cit_decode(c, items, n, err, sizeof err);
    if (st != CIT_ERR_RANGE || !strstr(err, w1) || !strstr(err, w2))
        fail_msg("status %d, message \"%s\"; wanted RANGE with \"%s\" and \"%s\"", st, err, w1, w2);
}

static void test_decode_validation(void **state)
{
    (void)state;
    struct cit_model *m = load("models/stories260K.gguf");
    struct cit_context *c = new_ctx(m, 32, 2, 8, 1);
    struct cit_batch_item ok[3] = {{1, 0, 0, false}, {403, 1, 0, false}, {1, 0, 1, true}};
    decode_ok(c, ok, 3);
    assert_int_equal(cit_kv_seq_len(c, 0), 2);
    assert_int_equal(cit_kv_seq_len(c, 1), 1);

    struct cit_batch_item b[9];
    for (int i = 0; i < 9; i++)
        b[i] = (struct cit_batch_item){5, 2 + i, 0, false};
    b[1].token = 512;
    expect_range(c, b, 3, "item 1", "token 512");
    b[1].token = -1;
    expect_range(c, b, 3, "item 1", "token -1");
    b[1].token = 5;
    b[2].seq = 2;
    expect_range(c, b, 3, "item 2", "seq 2");
    b[2].seq = -3;
    expect_range(c, b, 3, "item 2", "seq -3");
    b[2].seq = 0;
    b[0].pos = 32;
    expect_range(c, b, 1, "item 0", "n_ctx");
    b[0].pos = -1;
    expect_range(c, b, 1, "item 0", "pos -1");
    b[0].pos = 3; /* seq 0 holds 2 positions: the next must be 2 */
    expect_range(c, b, 1, "item 0", "expected pos 2");
    b[0].pos = 2;
    b[2].pos = 5; /* gap inside the batch */
    expect_range(c, b, 3, "item 2", "expected pos 4");
    b[2].pos = 3; /* repeat */
    expect_range(c, b, 3, "item 2", "expected pos 4");
    b[2].pos = 4;
    expect_range(c, b, 9, "batch of 9", "n_batch_max 8");

    /* Nothing changed by the failures; logits of the last good decode stay. */
    assert_int_equal(cit_kv_seq_len(c, 0), 2);
    assert_int_equal(cit_kv_seq_len(c, 1), 1);
    assert_non_null(cit_logits(c, 2));
    char err[256];
    assert_int_equal(cit_decode(c, NULL, 1, err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_int_equal(cit_decode(c, b, 0, err, sizeof err), CIT_OK);
    decode_ok(c, b, 3); /* now valid */
    assert_int_equal(cit_kv_seq_len(c, 0), 5);

    /* Filling the context exactly is fine; one more position is not. */
    struct cit_batch_item last = {7, 31, 1, true};
    expect_range(c, &last, 1, "item 0", "expected pos 1");
    for (int32_t p = 1; p < 32; p++) {
        struct cit_batch_item it = {7, p, 1, p == 31};
        decode_ok(c, &it, 1);
    }
    assert_int_equal(cit_kv_seq_len(c, 1), 32);
    assert_non_null(cit_logits(c, 0));
    last.pos = 32;
    expect_range(c, &last, 1, "item 0", "pos 32");
    cit_context_free(c);
    cit_model_free(m);
}

static void test_model_info(void **state)
{
    (void)state;
    struct cit_model *m = load("models/stories260K.gguf");
    const struct cit_model_info *i = cit_model_info(m);
    assert_string_equal(i->arch, "llama");
    assert_int_equal(i->n_vocab, 512);
    assert_int_equal(i->n_embd, 64);
    assert_int_equal(i->n_layer, 5);
    assert_int_equal(i->n_head, 8);
    assert_int_equal(i->n_head_kv, 4);
    assert_int_equal(i->n_ff, 172);
    assert_int_equal(i->head_dim, 8);
    assert_int_equal(i->n_rot, 8);
    assert_int_equal(i->n_ctx_train, 2048);
    assert_false(i->tied_output);
    assert_false(i->rope_neox);
    assert_false(i->qkv_bias);
    assert_true(i->rope_theta == 10000.0f);
    assert_true(i->rope_scale == 1.0f);
    assert_int_equal(i->weight_type, CIT_TYPE_F32);
    /* 2 * 512 * 64 + 64 + 5 * (2 * 64 + 64*64*2 + 64*32*2 + 3 * 64*172) */
    assert_int_equal(i->n_params, 2 * 512 * 64 + 64 + 5 * (2 * 64 + 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 172));
    assert_int_equal(i->weight_bytes, i->n_params * 4);
    assert_non_null(cit_model_gguf(m));
    cit_model_free(m);

    m = load("models/micro-qwen2-Q4_K_M.gguf");
    i = cit_model_info(m);
    assert_string_equal(i->arch, "qwen2");
    assert_true(i->rope_neox);
    assert_true(i->qkv_bias);
    assert_int_equal(i->n_embd, 256);
    assert_int_equal(i->n_rot, 64);
    assert_int_equal(i->weight_type, CIT_TYPE_Q4_K);
    cit_model_free(m);
}

static void test_context_limits(void **state)
{
    (void)state;
    struct cit_model *m = load("models/stories260K.gguf");
    char err[512] = "";
    struct cit_context *c = NULL;
    struct cit_context_params p = {4096, 1, 0, 1};
    assert_int_equal(cit_context_new(m, &p, &c, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "2048"));
    assert_null(c);

    p = (struct cit_context_params){2048, 1u << 20, 0, 1}; /* terabytes of KV cache */
    assert_int_equal(cit_context_new(m, &p, &c, err, sizeof err), CIT_ERR_LIMIT);
    assert_non_null(strstr(err, "MiB"));
    assert_null(c);
    p.n_seq_max = (1u << 20) + 1;
    assert_int_equal(cit_context_new(m, &p, &c, err, sizeof err), CIT_ERR_RANGE);
    p = (struct cit_context_params){0, 0, 1u << 20, 0};
    assert_int_equal(cit_context_new(m, &p, &c, err, sizeof err), CIT_ERR_RANGE);
    p = (struct cit_context_params){0, 0, 0, 100000};
    assert_int_equal(cit_context_new(m, &p, &c, err, sizeof err), CIT_ERR_RANGE);

    /* Defaults and the memory report: 5 layers * 2 seqs * 100 positions * 32 kv dims * 2 * 4 bytes. */
    p = (struct cit_context_params){100, 2, 0, 0};
    uint64_t kv = 0, scratch = 0;
    assert_int_equal(cit_context_memory(m, &p, &kv, &scratch, err, sizeof err), CIT_OK);
    assert_int_equal(kv, 5u * 2 * 100 * 32 * 2 * 4);
    assert_true(scratch > 0);
    assert_int_equal(cit_context_new(m, &p, &c, err, sizeof err), CIT_OK);
    const struct cit_context_params *rp = cit_context_params(c);
    assert_int_equal(rp->n_ctx, 100);
    assert_int_equal(rp->n_batch_max, 200);
    assert_true(rp->n_threads >= 1);
    cit_context_free(c);
    assert_int_equal(cit_context_new(m, NULL, &c, err, sizeof err), CIT_OK);
    assert_int_equal(cit_context_params(c)->n_ctx, 2048);
    assert_int_equal(cit_context_params(c)->n_seq_max, 1);
    assert_int_equal(cit_context_params(c)->n_batch_max, 512);
    cit_context_free(c);
    cit_context_free(NULL);
    cit_model_free(m);
}

/* Pages of [p, p + bytes) (p page-aligned) that are resident. */
static size_t resident_pages(const void *p, size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (bytes + page - 1) / page;
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore((void *)p, bytes, vec), 0);
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    free(vec);
    return r;
}

/* The scratch is sized for the largest batch (here 16,384 items: 32 MiB of
 * logits alone) but mapped, not written: a new context and a one-token
 * decode leave nearly all of it out of memory (the resident-memory target,
 * file + KV cache + 100 MiB, for `citadel run`), and a prompt after that
 * decodes as in a fresh context. */
static void test_context_scratch_resident(void **state)
{
    (void)state;
    struct cit_model *m = load("models/stories260K.gguf");
    struct cit_context *c = new_ctx(m, 256, 1, 16384, 1);
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (c->scratch_bytes + page - 1) / page;
    assert_true(c->scratch_bytes >= (size_t)64 << 20);
    struct cit_batch_item one = {1, 0, 0, true};
    decode_ok(c, &one, 1);
    if (!CIT_ASAN) { /* there the scratch is a calloc */
        size_t r = resident_pages(c->scratch, c->scratch_bytes);
        print_message("scratch %zu pages, %zu resident after one token\n", pages, r);
        assert_true(r * 64 < pages);
    }
    /* then a prompt: the logits a fresh context of the usual size gives, bit for bit */
    const uint32_t n_vocab = cit_model_info(m)->n_vocab;
    float *ref = alone(m, 1, true, 1);
    struct cit_batch_item items[16];
    for (size_t i = 0; i < prompt_len[1]; i++)
        items[i] = (struct cit_batch_item){prompts[1][i], (int32_t)i, 0, true};
    cit_kv_seq_rm(c, 0, 0);
    decode_ok(c, items, prompt_len[1]);
    for (size_t i = 0; i < prompt_len[1]; i++)
        assert_memory_equal(cit_logits(c, i), ref + i * n_vocab, n_vocab * sizeof(float));
    free(ref);
    cit_context_free(c);
    cit_model_free(m);
}

/* ---- load errors on real files ---- */

static void expect_load(const char *path, enum cit_status want, const char *needle)
{
    char err[512] = "";
    struct cit_model *m = (struct cit_model *)&err; /* must be reset to NULL on failure */
    enum cit_status st = cit_model_load(path, &m, err, sizeof err);
    if (st != want || (needle && !strstr(err, needle)))
        fail_msg("%s: status %d \"%s\"; wanted %d with \"%s\"", path, st, err, want, needle ? needle : "");
    assert_null(m);
}

static void test_load_errors_files(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", test_shared_path("models/no-such-model.gguf"));
    expect_load(path, CIT_ERR_NOT_FOUND, "no-such-model.gguf");
    snprintf(path, sizeof path, "%s", test_shared_path("golden"));
    expect_load(path, CIT_ERR_IO, NULL);
    snprintf(path, sizeof path, "%s", test_shared_path("golden/stories260K.jsonl"));
    expect_load(path, CIT_ERR_FORMAT, NULL);
    snprintf(path, sizeof path, "%s", test_shared_path("vocab/ggml-vocab-llama-spm.gguf"));
    expect_load(path, CIT_ERR_NOT_FOUND, "missing tensor token_embd.weight");
    snprintf(path, sizeof path, "%s", test_shared_path("vocab/ggml-vocab-gpt-2.gguf"));
    expect_load(path, CIT_ERR_UNSUPPORTED, "\"gpt2\"");
    cit_model_free(NULL);
}

/* ---- synthetic GGUF files ---- */

struct buf {
    unsigned char *p;
    size_t len, cap;
};

static void put(struct buf *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); } /* little-endian host */
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

enum kv_kind { KV_U32, KV_F32, KV_STR };
struct kv {
    const char *key;
    enum kv_kind kind;
    uint32_t u;
    float f;
    const char *s;
};
struct tensor {
    const char *name;
    uint64_t ne0, ne1; /* ne1 == 0: one dimension */
    uint32_t type;
};

/* A tiny llama: n_embd 32, 1 layer, 4 heads, 2 KV heads, n_ff 64, vocab 16. */
static const struct kv base_kvs[] = {
    {"general.architecture", KV_STR, 0, 0, "llama"},
    {"llama.context_length", KV_U32, 64, 0, NULL},
    {"llama.embedding_length", KV_U32, 32, 0, NULL},
    {"llama.block_count", KV_U32, 1, 0, NULL},
    {"llama.feed_forward_length", KV_U32, 64, 0, NULL},
    {"llama.attention.head_count", KV_U32, 4, 0, NULL},
    {"llama.attention.head_count_kv", KV_U32, 2, 0, NULL},
    {"llama.attention.layer_norm_rms_epsilon", KV_F32, 0, 1e-5f, NULL},
};
#define N_BASE_KVS (sizeof base_kvs / sizeof base_kvs[0])

static const struct tensor base_tensors[] = {
    {"token_embd.weight", 32, 16, CIT_TYPE_F16},
    {"output_norm.weight", 32, 0, CIT_TYPE_F32},
    {"output.weight", 32, 16, CIT_TYPE_Q8_0},
    {"blk.0.attn_norm.weight", 32, 0, CIT_TYPE_F32},
    {"blk.0.attn_q.weight", 32, 32, CIT_TYPE_F32},
    {"blk.0.attn_k.weight", 32, 16, CIT_TYPE_F32},
    {"blk.0.attn_v.weight", 32, 16, CIT_TYPE_F32},
    {"blk.0.attn_output.weight", 32, 32, CIT_TYPE_F32},
    {"blk.0.ffn_norm.weight", 32, 0, CIT_TYPE_F32},
    {"blk.0.ffn_gate.weight", 32, 64, CIT_TYPE_Q4_0},
    {"blk.0.ffn_up.weight", 32, 64, CIT_TYPE_Q8_0},
    {"blk.0.ffn_down.weight", 64, 32, CIT_TYPE_F16},
};
#define N_BASE_TENSORS (sizeof base_tensors / sizeof base_tensors[0])

/* Edits applied to the base model: a kv or tensor with a matching name is
 * replaced (kind/type < 0 style: `drop` removes it); new names are added. */
struct edits {
    struct kv kvs[4];
    size_t n_kvs;
    bool drop_kv[N_BASE_KVS];
    struct tensor tensors[4];
    size_t n_tensors;
    bool drop_tensor[N_BASE_TENSORS];
};

static void write_kv(struct buf *b, const struct kv *kv)
{
    put_str(b, kv->key);
    if (kv->kind == KV_U32) {
        put_u32(b, CIT_GGUF_UINT32);
        put_u32(b, kv->u);
    } else if (kv->kind == KV_F32) {
        put_u32(b, CIT_GGUF_FLOAT32);
        put(b, &kv->f, 4);
    } else {
        put_u32(b, CIT_GGUF_STRING);
        put_str(b, kv->s);
    }
}

static uint64_t tensor_bytes(const struct tensor *t)
{
    uint64_t row;
    assert_true(cit_type_row_size(t->type, t->ne0, &row));
    return row * (t->ne1 ? t->ne1 : 1);
}

/* Writes the edited tiny model to a temporary file; returns its path (static). */
static const char *write_model(const struct edits *e)
{
    struct kv kvs[N_BASE_KVS + 4];
    size_t nk = 0;
    for (size_t i = 0; i < N_BASE_KVS; i++) {
        if (e->drop_kv[i])
            continue;
        kvs[nk] = base_kvs[i];
        for (size_t j = 0; j < e->n_kvs; j++)
            if (strcmp(e->kvs[j].key, base_kvs[i].key) == 0)
                kvs[nk] = e->kvs[j];
        nk++;
    }
    for (size_t j = 0; j < e->n_kvs; j++) {
        bool found = false;
        for (size_t i = 0; i < N_BASE_KVS; i++)
            found = found || strcmp(e->kvs[j].key, base_kvs[i].key) == 0;
        if (!found)
            kvs[nk++] = e->kvs[j];
    }
    struct tensor ts[N_BASE_TENSORS + 4];
    size_t nt = 0;
    for (size_t i = 0; i < N_BASE_TENSORS; i++) {
        if (e->drop_tensor[i])
            continue;
        ts[nt] = base_tensors[i];
        for (size_t j = 0; j < e->n_tensors; j++)
            if (strcmp(e->tensors[j].name, base_tensors[i].name) == 0)
                ts[nt] = e->tensors[j];
        nt++;
    }
    for (size_t j = 0; j < e->n_tensors; j++) {
        bool found = false;
        for (size_t i = 0; i < N_BASE_TENSORS; i++)
            found = found || strcmp(e->tensors[j].name, base_tensors[i].name) == 0;
        if (!found)
            ts[nt++] = e->tensors[j];
    }

    struct buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, nt);
    put_u64(&b, nk);
    for (size_t i = 0; i < nk; i++)
        write_kv(&b, &kvs[i]);
    uint64_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        put_str(&b, ts[i].name);
        put_u32(&b, ts[i].ne1 ? 2 : 1);
        put_u64(&b, ts[i].ne0);
        if (ts[i].ne1)
            put_u64(&b, ts[i].ne1);
        put_u32(&b, ts[i].type);
        put_u64(&b, off);
        off += (tensor_bytes(&ts[i]) + 31) / 32 * 32;
    }
    while (b.len % 32)
        put(&b, "", 1);
    /* Data: small deterministic values (1.0 for F32 vectors such as norms
     * and rope_freqs; zero bytes decode as zeros in every type). */
    size_t data_start = b.len;
    for (uint64_t i = 0; i < off; i++)
        put(&b, "", 1);
    uint64_t o = 0;
    for (size_t i = 0; i < nt; i++) {
        if (ts[i].type == CIT_TYPE_F32 && ts[i].ne1 == 0)
            for (uint64_t k = 0; k < ts[i].ne0; k++) {
                float one = 1.0f;
                memcpy(b.p + data_start + o + k * 4, &one, 4);
            }
        o += (tensor_bytes(&ts[i]) + 31) / 32 * 32;
    }

    static char path[256];
    snprintf(path, sizeof path, "/tmp/citadel-test-model-%d.gguf", (int)getpid());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.p, 1, b.len, f), b.len);
    fclose(f);
    free(b.p);
    return path;
}

static size_t kv_index(const char *key)
{
    for (size_t i = 0; i < N_BASE_KVS; i++)
        if (strcmp(base_kvs[i].key, key) == 0)
            return i;
    fail_msg("no base key %s", key);
    return 0;
}

static size_t tensor_index(const char *name)
{
    for (size_t i = 0; i < N_BASE_TENSORS; i++)
        if (strcmp(base_tensors[i].name, name) == 0)
            return i;
    fail_msg("no base tensor %s", name);
    return 0;
}

static void expect_synthetic(const struct edits *e, enum cit_status want, const char *n1, const char *n2)
{
    const char *path = write_model(e);
    char err[512] = "";
    struct cit_model *m = NULL;
    enum cit_status st = cit_model_load(path, &m, err, sizeof err);
    unlink(path);
    if (st != want || (n1 && !strstr(err, n1)) || (n2 && !strstr(err, n2)))
        fail_msg("status %d \"%s\"; wanted %d with \"%s\" and \"%s\"", st, err, want, n1 ? n1 : "", n2 ? n2 : "");
    cit_model_free(m);
}

static struct edits with_kv(struct kv kv)
{
    struct edits e = {0};
    e.kvs[e.n_kvs++] = kv;
    return e;
}

static struct edits with_tensor(struct tensor t)
{
    struct edits e = {0};
    e.tensors[e.n_tensors++] = t;
    return e;
}

static struct edits without_kv(const char *key)
{
    struct edits e = {0};
    e.drop_kv[kv_index(key)] = true;
    return e;
}

static struct edits without_tensor(const char *name)
{
    struct edits e = {0};
    e.drop_tensor[tensor_index(name)] = true;
    return e;
}

/* The unedited tiny model loads, decodes, and a missing output is tied. */
static void test_synthetic_valid(void **state)
{
    (void)state;
    struct edits e = {0};
    expect_synthetic(&e, CIT_OK, NULL, NULL);

    e = without_tensor("output.weight");
    const char *path = write_model(&e);
    char err[512] = "";
    struct cit_model *m = NULL;
    assert_int_equal(cit_model_load(path, &m, err, sizeof err), CIT_OK);
    unlink(path);
    const struct cit_model_info *i = cit_model_info(m);
    assert_true(i->tied_output);
    assert_int_equal(i->n_vocab, 16);
    assert_int_equal(i->head_dim, 8);
    assert_int_equal(i->n_rot, 8);
    assert_true(i->rope_theta == 10000.0f);
    struct cit_context *c = new_ctx(m, 0, 1, 0, 1);
    struct cit_batch_item items[2] = {{3, 0, 0, false}, {15, 1, 0, true}};
    decode_ok(c, items, 2);
    const float *logits = cit_logits(c, 1);
    for (int k = 0; k < 16; k++)
        assert_true(logits[k] == 0.0f); /* zero embeddings */
    cit_context_free(c);
    cit_model_free(m);

    /* Linear RoPE scaling and rope_freqs are accepted and reported. */
    e = (struct edits){0};
    e.kvs[e.n_kvs++] = (struct kv){"llama.rope.scaling.type", KV_STR, 0, 0, "linear"};
    e.kvs[e.n_kvs++] = (struct kv){"llama.rope.scaling.factor", KV_F32, 0, 4.0f, NULL};
    e.tensors[e.n_tensors++] = (struct tensor){"rope_freqs.weight", 4, 0, CIT_TYPE_F32};
    path = write_model(&e);
    assert_int_equal(cit_model_load(path, &m, err, sizeof err), CIT_OK);
    unlink(path);
    assert_true(cit_model_info(m)->rope_scale == 4.0f);
    assert_true(cit_model_info(m)->rope_freqs);
    cit_model_free(m);
}

static void test_synthetic_hparams(void **state)
{
    (void)state;
    struct edits e = without_kv("general.architecture");
    expect_synthetic(&e, CIT_ERR_NOT_FOUND, "general.architecture", NULL);
    e = with_kv((struct kv){"general.architecture", KV_STR, 0, 0, "mamba"});
    expect_synthetic(&e, CIT_ERR_UNSUPPORTED, "\"mamba\"", "llama, qwen2");
    e = with_kv((struct kv){"general.architecture", KV_U32, 1, 0, NULL});
    expect_synthetic(&e, CIT_ERR_TYPE, "general.architecture", NULL);
    e = without_kv("llama.embedding_length");
    expect_synthetic(&e, CIT_ERR_NOT_FOUND, "llama.embedding_length", NULL);
    e = without_kv("llama.attention.layer_norm_rms_epsilon");
    expect_synthetic(&e, CIT_ERR_NOT_FOUND, "layer_norm_rms_epsilon", NULL);
    e = with_kv((struct kv){"llama.block_count", KV_U32, 0, 0, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "llama.block_count = 0", NULL);
    e = with_kv((struct kv){"llama.attention.head_count", KV_U32, 5, 0, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "embedding_length = 32", "head_count = 5");
    e = with_kv((struct kv){"llama.attention.head_count_kv", KV_U32, 3, 0, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "head_count_kv = 3", NULL);
    e = with_kv((struct kv){"llama.attention.head_count_kv", KV_U32, 8, 0, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "head_count_kv = 8", NULL);
    e = with_kv((struct kv){"llama.attention.key_length", KV_U32, 16, 0, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "llama.attention.key_length = 16", NULL);
    e = with_kv((struct kv){"llama.rope.dimension_count", KV_U32, 7, 0, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "rope.dimension_count = 7", NULL);
    e = with_kv((struct kv){"llama.rope.dimension_count", KV_U32, 16, 0, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "rope.dimension_count = 16", NULL);
    e = with_kv((struct kv){"llama.rope.freq_base", KV_F32, 0, -1.0f, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "llama.rope.freq_base", NULL);
    e = with_kv((struct kv){"llama.attention.layer_norm_rms_epsilon", KV_F32, 0, 0.0f, NULL});
    expect_synthetic(&e, CIT_ERR_RANGE, "layer_norm_rms_epsilon", NULL);
    e = with_kv((struct kv){"llama.rope.scaling.type", KV_STR, 0, 0, "yarn"});
    expect_synthetic(&e, CIT_ERR_UNSUPPORTED, "\"yarn\"", NULL);
    e = with_kv((struct kv){"llama.rope.scaling.type", KV_STR, 0, 0, "linear"});
    expect_synthetic(&e, CIT_ERR_NOT_FOUND, "rope.scaling.factor", NULL);
    e = with_kv((struct kv){"llama.context_length", KV_F32, 0, 64.0f, NULL});
    expect_synthetic(&e, CIT_ERR_TYPE, "llama.context_length", NULL);
}

static void test_synthetic_tensors(void **state)
{
    (void)state;
    struct edits e = without_tensor("blk.0.ffn_up.weight");
    expect_synthetic(&e, CIT_ERR_NOT_FOUND, "missing tensor blk.0.ffn_up.weight", NULL);
    e = without_tensor("output_norm.weight");
    expect_synthetic(&e, CIT_ERR_NOT_FOUND, "missing tensor output_norm.weight", NULL);
    e = with_tensor((struct tensor){"blk.0.attn_k.weight", 32, 32, CIT_TYPE_F32});
    expect_synthetic(&e, CIT_ERR_FORMAT, "blk.0.attn_k.weight has shape [32, 32]", "expected [32, 16]");
    e = with_tensor((struct tensor){"blk.0.attn_norm.weight", 16, 0, CIT_TYPE_F32});
    expect_synthetic(&e, CIT_ERR_FORMAT, "blk.0.attn_norm.weight has shape [16]", "expected [32]");
    e = with_tensor((struct tensor){"blk.0.ffn_norm.weight", 32, 0, CIT_TYPE_F16});
    expect_synthetic(&e, CIT_ERR_UNSUPPORTED, "blk.0.ffn_norm.weight has type F16", "expected F32");
    e = with_tensor((struct tensor){"blk.0.ffn_gate.weight", 32, 64, CIT_TYPE_Q4_1});
    expect_synthetic(&e, CIT_ERR_UNSUPPORTED, "blk.0.ffn_gate.weight has type Q4_1", NULL);
    e = with_tensor((struct tensor){"token_embd.weight", 32, 16, CIT_TYPE_Q5_0});
    expect_synthetic(&e, CIT_ERR_UNSUPPORTED, "token_embd.weight has type Q5_0", NULL);
    e = with_tensor((struct tensor){"token_embd.weight", 16, 16, CIT_TYPE_F32});
    expect_synthetic(&e, CIT_ERR_FORMAT, "token_embd.weight has shape [16, 16]", NULL);
    e = with_tensor((struct tensor){"rope_freqs.weight", 8, 0, CIT_TYPE_F32});
    expect_synthetic(&e, CIT_ERR_FORMAT, "rope_freqs.weight has shape [8]", "expected [4]");
    /* Qwen2 needs the Q/K/V biases. */
    e = with_kv((struct kv){"general.architecture", KV_STR, 0, 0, "qwen2"});
    expect_synthetic(&e, CIT_ERR_NOT_FOUND, "missing key qwen2.context_length", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threadpool),
        cmocka_unit_test(test_matmul_fused),
        cmocka_unit_test(test_model_info),
        cmocka_unit_test(test_load_errors_files),
        cmocka_unit_test(test_synthetic_valid),
        cmocka_unit_test(test_synthetic_hparams),
        cmocka_unit_test(test_synthetic_tensors),
        cmocka_unit_test(test_context_limits),
        cmocka_unit_test(test_context_scratch_resident),
        cmocka_unit_test(test_decode_validation),
        cmocka_unit_test(test_logits_selection),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_batch_invariance_bf16),
        cmocka_unit_test(test_batch_invariance_large),
        cmocka_unit_test(test_prefill_vs_tokenwise),
        cmocka_unit_test(test_thread_counts),
        cmocka_unit_test(test_repack_same_logits),
        cmocka_unit_test(test_kv_seq_rm),
        cmocka_unit_test(test_kv_seq_cp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
