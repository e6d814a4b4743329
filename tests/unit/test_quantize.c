/* test_quantize.c: `citadel quantize`'s library against the reference
 * quantizer's output, and `citadel synth`'s files.
 *
 * The shared folder holds micro-llama/micro-qwen2 at f32 and the reference
 * quantizer's siblings (Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K, F16) made from
 * them. We quantize the same f32 files and check, tensor by tensor, that
 * our types equal the reference's, that our file is no larger, and that the
 * relative RMS error of our dequantized weights against f32 is at most 1.1x
 * the reference sibling's (both dequantized by our to_float, which
 * test_tensor checks against the reference). Synth files must load, be
 * reproducible for a seed whatever the thread count, and pad a small
 * vocabulary as documented. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "citadel/gguf.h"
#include "citadel/model.h"
#include "citadel/quantize.h"
#include "citadel/synth.h"
#include "citadel/tensor.h"
#include "support.h"

static const char *tmp_path(const char *name)
{
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_tmpdir(), name);
    return buf[k];
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* All elements of a tensor as f32 (malloc'd). */
static float *dequant(const struct cit_gguf_tensor *t, uint64_t *n_out)
{
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    const struct cit_type_traits *tr = cit_type_traits(t->type);
    assert_non_null(tr);
    assert_non_null(tr->to_float);
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    tr->to_float(t->data, x, (int64_t)n);
    *n_out = n;
    return x;
}

/* sqrt(sum (a-b)^2 / sum b^2). */
static double rel_rms(const float *a, const float *b, uint64_t n)
{
    double e = 0, s = 0;
    for (uint64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        e += d * d;
        s += (double)b[i] * b[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static void quantize_ok(const char *in, const char *out, enum cit_ftype ft, unsigned threads)
{
    struct cit_quantize_params p = {.ftype = ft, .n_threads = threads};
    struct cit_quantize_stats s;
    char err[512] = "";
    enum cit_status st = cit_quantize_file(in, out, &p, &s, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("quantize %s -> %s: %s", in, out, err);
    assert_true(s.out_bytes > 0 && s.out_bytes < s.in_bytes);
}

/* Compares our quantization of micro-<model>-f32 at preset `name` with the
 * reference sibling. */
static void compare_with_reference(const char *model, const char *name)
{
    char rel[128], in[512], ref_path[512], out_name[128];
    snprintf(rel, sizeof rel, "models/micro-%s-f32.gguf", model);
    snprintf(in, sizeof in, "%s", test_shared_path(rel));
    snprintf(rel, sizeof rel, "models/micro-%s-%s.gguf", model, name);
    snprintf(ref_path, sizeof ref_path, "%s", test_shared_path(rel));
    snprintf(out_name, sizeof out_name, "%s-%s.gguf", model, name);
    const char *out = tmp_path(out_name);
    enum cit_ftype ft;
    assert_true(cit_ftype_parse(name, &ft));
    quantize_ok(in, out, ft, 2);

    struct cit_gguf *f32 = NULL, *ours = NULL, *ref = NULL;
    char err[512];
    assert_int_equal(cit_gguf_open(in, &f32, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_open(out, &ours, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_open(ref_path, &ref, err, sizeof err), CIT_OK);
    assert_true(cit_gguf_file_size(ours) <= cit_gguf_file_size(ref));
    uint64_t ft_ours, ft_ref;
    assert_int_equal(cit_gguf_get_uint(ours, "general.file_type", &ft_ours, NULL, 0), CIT_OK);
    assert_int_equal(cit_gguf_get_uint(ref, "general.file_type", &ft_ref, NULL, 0), CIT_OK);
    assert_int_equal(ft_ours, ft_ref);
    /* every metadata key of the input is carried over */
    for (size_t i = 0; i < cit_gguf_n_kv(f32); i++)
        assert_true(cit_gguf_find_key(ours, cit_gguf_kv_key(f32, i)) >= 0);
    assert_int_equal(cit_gguf_n_tensors(ours), cit_gguf_n_tensors(ref));
    double worst = 0;
    for (size_t i = 0; i < cit_gguf_n_tensors(ours); i++) {
        const struct cit_gguf_tensor *to = cit_gguf_tensor_at(ours, i);
        const struct cit_gguf_tensor *tr = cit_gguf_find_tensor(ref, to->name);
        const struct cit_gguf_tensor *tf = cit_gguf_find_tensor(f32, to->name);
        assert_non_null(tr);
        assert_non_null(tf);
        if (to->type != tr->type)
            fail_msg("%s %s: tensor %s is %s, the reference's is %s", model, name, to->name,
                     cit_type_traits(to->type)->name, cit_type_traits(tr->type)->name);
        assert_memory_equal(to->ne, tr->ne, sizeof to->ne);
        uint64_t n, n2, n3;
        float *xo = dequant(to, &n), *xr = dequant(tr, &n2), *xf = dequant(tf, &n3);
        assert_true(n == n2 && n == n3);
        double eo = rel_rms(xo, xf, n), er = rel_rms(xr, xf, n);
        if (to->type == CIT_TYPE_F32)
            assert_true(eo == 0);
        if (!(eo <= 1.1 * er + 1e-7))
            fail_msg("%s %s: tensor %s (%s): our relative RMS error %.6f > 1.1 x the reference's %.6f", model, name,
                     to->name, cit_type_traits(to->type)->name, eo, er);
        if (er > 0 && eo / er > worst)
            worst = eo / er;
        free(xo);
        free(xr);
        free(xf);
    }
    print_message("  %s %-6s: file %llu bytes (reference %llu), worst error ratio ours/reference %.3f\n", model, name,
                  (unsigned long long)cit_gguf_file_size(ours), (unsigned long long)cit_gguf_file_size(ref), worst);
    cit_gguf_free(f32);
    cit_gguf_free(ours);
    cit_gguf_free(ref);
    unlink(out);
}

static void test_matches_reference_llama(void **state)
{
    (void)state;
    static const char *const presets[] = {"Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "F16"};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        compare_with_reference("llama", presets[i]);
}

static void test_matches_reference_qwen2(void **state)
{
    (void)state;
    static const char *const presets[] = {"Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "F16"};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        compare_with_reference("qwen2", presets[i]);
}

/* The quantized model loads and the layer rule picks the layers the
 * published description names. */
static void test_tensor_type_rules(void **state)
{
    (void)state;
    /* 32 layers: first and last eighth (0-3, 28-31) and every third between
     * (4 + 2, 4 + 5, ...), written out by hand */
    static const int more[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (int il = 0; il < 32; il++) {
        bool expect = false;
        for (size_t k = 0; k < sizeof more / sizeof more[0]; k++)
            expect |= more[k] == il;
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", il);
        bool fb = true;
        uint32_t t = cit_quantize_tensor_type(CIT_FTYPE_Q4_K_M, name, 2, 4096, 32, true, NULL, &fb);
        assert_false(fb);
        assert_int_equal(t, expect ? CIT_TYPE_Q6_K : CIT_TYPE_Q4_K);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", il);
        t = cit_quantize_tensor_type(CIT_FTYPE_Q5_K_M, name, 2, 14336, 32, true, NULL, NULL);
        assert_int_equal(t, expect ? CIT_TYPE_Q6_K : CIT_TYPE_Q5_K);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", il);
        assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_Q4_K_M, name, 2, 4096, 32, true, NULL, NULL), CIT_TYPE_Q4_K);
    }
    /* outputs, tied embeddings, vectors */
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_Q4_0, "output.weight", 2, 4096, 32, true, NULL, NULL), CIT_TYPE_Q6_K);
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_Q4_0, "token_embd.weight", 2, 4096, 32, true, NULL, NULL), CIT_TYPE_Q4_0);
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_Q4_K_M, "token_embd.weight", 2, 4096, 32, false, NULL, NULL), CIT_TYPE_Q6_K);
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_Q8_0, "output.weight", 2, 4096, 32, true, NULL, NULL), CIT_TYPE_Q8_0);
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_Q4_K_M, "blk.0.attn_norm.weight", 1, 4096, 32, true, NULL, NULL), CIT_TYPE_F32);
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_F16, "blk.0.attn_q.bias", 1, 4096, 32, true, NULL, NULL), CIT_TYPE_F32);
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_BF16, "blk.0.attn_q.weight", 2, 4096, 32, true, NULL, NULL), CIT_TYPE_BF16);
    /* fallbacks: 896 is a multiple of 32, not of 256; 100 of neither */
    uint32_t wanted;
    bool fb;
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_Q4_K_M, "blk.0.attn_q.weight", 2, 896, 24, true, &wanted, &fb), CIT_TYPE_Q8_0);
    assert_true(fb);
    assert_int_equal(wanted, CIT_TYPE_Q4_K);
    assert_int_equal(cit_quantize_tensor_type(CIT_FTYPE_Q4_0, "blk.0.attn_q.weight", 2, 100, 24, true, NULL, &fb), CIT_TYPE_F16);
    assert_true(fb);
    enum cit_ftype ft;
    assert_true(cit_ftype_parse("q4_k_m", &ft));
    assert_int_equal(ft, CIT_FTYPE_Q4_K_M);
    assert_false(cit_ftype_parse("Q3_K_S", &ft));
}

static void test_quantized_model_loads(void **state)
{
    (void)state;
    const char *out = tmp_path("load.gguf");
    quantize_ok(test_shared_path("models/micro-qwen2-f32.gguf"), out, CIT_FTYPE_Q4_K_M, 1);
    struct cit_model *m = NULL;
    char err[512];
    assert_int_equal(cit_model_load(out, &m, err, sizeof err), CIT_OK);
    cit_model_free(m);
    /* thread count does not change the bytes */
    const char *out2 = tmp_path("load2.gguf");
    quantize_ok(test_shared_path("models/micro-qwen2-f32.gguf"), out2, CIT_FTYPE_Q4_K_M, 3);
    size_t l1, l2;
    char *a = test_read_file(out, &l1), *b = test_read_file(out2, &l2);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    free(a);
    free(b);
}

static void test_refusals(void **state)
{
    (void)state;
    struct cit_quantize_params p = {.ftype = CIT_FTYPE_Q4_0, .n_threads = 1};
    struct cit_quantize_stats s;
    char err[512] = "";
    const char *out = tmp_path("refused.gguf");
    assert_int_equal(cit_quantize_file(test_shared_path("models/micro-llama-Q4_0.gguf"), out, &p, &s, err, sizeof err),
                     CIT_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "already quantized"));
    assert_false(exists(out));
    /* the output is the input (same path, and another name for the same file) */
    const char *in = test_shared_path("models/micro-llama-f32.gguf");
    assert_int_equal(cit_quantize_file(in, in, &p, &s, err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "input"));
    const char *link = tmp_path("link.gguf");
    assert_int_equal(symlink(test_shared_path("models/micro-llama-f32.gguf"), link), 0);
    assert_int_equal(cit_quantize_file(test_shared_path("models/micro-llama-f32.gguf"), link, &p, &s, err, sizeof err),
                     CIT_ERR_INVALID_ARG);
    unlink(link);
    /* a missing input names the path */
    assert_int_not_equal(cit_quantize_file(tmp_path("missing.gguf"), out, &p, &s, err, sizeof err), CIT_OK);
    assert_non_null(strstr(err, "missing.gguf"));
    assert_false(exists(out));
}

/* ---- synth ---- */

static void synth_ok(struct cit_synth_params *p, const char *out)
{
    char err[512] = "";
    struct cit_quantize_stats s;
    enum cit_status st = cit_synth_write(p, out, &s, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("synth %s: %s", out, err);
}

static void test_synth_loads_and_repeats(void **state)
{
    (void)state;
    struct cit_synth_params p = {.vocab_path = test_shared_path("models/stories260K.gguf"),
                                 .ftype = CIT_FTYPE_Q4_K_M, .seed = 5, .n_threads = 1};
    char err[512];
    assert_int_equal(cit_synth_find_shape("micro", &p.shape, err, sizeof err), CIT_OK);
    const char *a = tmp_path("s1.gguf");
    synth_ok(&p, a);
    p.n_threads = 3;
    const char *b = tmp_path("s2.gguf");
    synth_ok(&p, b);
    size_t la, lb;
    char *da = test_read_file(a, &la), *db = test_read_file(b, &lb);
    assert_non_null(da);
    assert_non_null(db);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    free(da);
    free(db);

    struct cit_model *m = NULL;
    assert_int_equal(cit_model_load(a, &m, err, sizeof err), CIT_OK);
    const struct cit_model_info *info = cit_model_info(m);
    assert_int_equal(info->n_layer, 2);
    assert_int_equal(info->n_embd, 256);
    assert_int_equal(info->n_vocab, 512);
    cit_model_free(m);

    /* the weights have the documented scale: std ~0.02, norms 1 */
    struct cit_gguf *g = NULL;
    assert_int_equal(cit_gguf_open(a, &g, err, sizeof err), CIT_OK);
    uint64_t n;
    float *x = dequant(cit_gguf_find_tensor(g, "blk.0.ffn_gate.weight"), &n);
    double ss = 0, sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        ss += (double)x[i] * x[i];
        sum += x[i];
    }
    double sd = sqrt(ss / (double)n);
    assert_true(sd > 0.018 && sd < 0.022);
    assert_true(fabs(sum / (double)n) < 0.001);
    free(x);
    x = dequant(cit_gguf_find_tensor(g, "blk.1.ffn_norm.weight"), &n);
    for (uint64_t i = 0; i < n; i++)
        assert_true(x[i] == 1.0f);
    free(x);
    /* the mixture of the preset, as quantize makes it */
    assert_int_equal(cit_gguf_find_tensor(g, "output.weight")->type, CIT_TYPE_Q6_K);
    assert_int_equal(cit_gguf_find_tensor(g, "blk.1.attn_v.weight")->type, CIT_TYPE_Q6_K);
    assert_int_equal(cit_gguf_find_tensor(g, "blk.0.attn_v.weight")->type, CIT_TYPE_Q4_K);
    cit_gguf_free(g);

    /* another seed, other weights */
    p.seed = 6;
    synth_ok(&p, b);
    da = test_read_file(a, &la);
    db = test_read_file(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_not_equal(da, db, la);
    free(da);
    free(db);
}

static void test_synth_pads_vocab(void **state)
{
    (void)state;
    struct cit_synth_params p = {.vocab_path = test_shared_path("models/stories260K.gguf"), .ftype = CIT_FTYPE_Q8_0,
                                 .seed = 1, .n_threads = 2};
    char err[512];
    assert_int_equal(cit_synth_find_shape("micro-qwen2", &p.shape, err, sizeof err), CIT_OK);
    p.shape.n_vocab = 600;
    const char *out = tmp_path("pad.gguf");
    synth_ok(&p, out);
    struct cit_gguf *g = NULL;
    assert_int_equal(cit_gguf_open(out, &g, err, sizeof err), CIT_OK);
    enum cit_gguf_type et;
    uint64_t count;
    const void *data;
    assert_int_equal(cit_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_int_equal(count, 600);
    struct cit_gguf_str s;
    assert_int_equal(cit_gguf_arr_str(g, "tokenizer.ggml.tokens", 1, &s, err, sizeof err), CIT_OK);
    assert_true(s.len == 3 && memcmp(s.ptr, "<s>", 3) == 0);
    assert_int_equal(cit_gguf_arr_str(g, "tokenizer.ggml.tokens", 599, &s, err, sizeof err), CIT_OK);
    assert_true(s.len == 11 && memcmp(s.ptr, "<synth_599>", 11) == 0);
    assert_int_equal(cit_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_int_equal(count, 600);
    int32_t ty;
    memcpy(&ty, (const char *)data + 4 * 599, 4);
    assert_int_equal(ty, 1);
    assert_int_equal(cit_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_int_equal(count, 600);
    assert_null(cit_gguf_find_tensor(g, "output.weight")); /* tied */
    assert_int_equal(cit_gguf_find_tensor(g, "token_embd.weight")->ne[1], 600);
    assert_non_null(cit_gguf_find_tensor(g, "blk.1.attn_k.bias"));
    cit_gguf_free(g);
    struct cit_model *m = NULL;
    assert_int_equal(cit_model_load(out, &m, err, sizeof err), CIT_OK);
    cit_model_free(m);

    /* a vocabulary larger than the shape's is refused with both sizes */
    p.shape.n_vocab = 100;
    assert_int_equal(cit_synth_write(&p, tmp_path("big.gguf"), NULL, err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "512"));
    assert_false(exists(tmp_path("big.gguf")));
    /* catalog shapes carry the catalog's figures */
    assert_int_equal(cit_synth_find_shape("qwen2.5-7b", &p.shape, err, sizeof err), CIT_OK);
    assert_int_equal(p.shape.n_layer, 28);
    assert_int_equal(p.shape.n_vocab, 152064);
    assert_false(p.shape.tied);
    assert_int_equal(cit_synth_find_shape("LLAMA-3-8B", &p.shape, err, sizeof err), CIT_OK);
    assert_int_equal(p.shape.n_ctx, 8192);
    assert_int_equal(p.shape.n_ff, 14336);
    assert_int_equal(cit_synth_find_shape("gpt-5", &p.shape, err, sizeof err), CIT_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "tinyllama-1.1b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_type_rules),
        cmocka_unit_test(test_matches_reference_llama),
        cmocka_unit_test(test_matches_reference_qwen2),
        cmocka_unit_test(test_quantized_model_loads),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_synth_loads_and_repeats),
        cmocka_unit_test(test_synth_pads_vocab),
    };
    return cmocka_run_group_tests(tests, test_tmpdir_setup, test_tmpdir_teardown);
}
