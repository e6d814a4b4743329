/* test_quant_quality.c: our quantizer against the reference engine's, on
 * the measure that matters to users: how far the quantized model's
 * next-token distributions move from the f32 original's.
 *
 * For micro-llama and micro-qwen2 (../shared/models), every preset the
 * issue names (Q4_0, Q4_K_M, Q5_K_M, Q6_K) is made from the -f32 file by
 * `cit_quantize_file`; both our file and the reference-quantized sibling
 * are run against the f32 model over the same seeded random tokens, and
 * ours must have KL(P_f32 || P_ours) no worse than 1.1x the sibling's, at a
 * file size no larger. The KL comes from cit_eval_kl (itself tested against
 * an independent token-by-token computation in test_eval). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "citadel/eval.h"
#include "citadel/gguf.h"
#include "citadel/model.h"
#include "citadel/quantize.h"
#include "citadel/tokenizer.h"
#include "support.h"

#define N_TOKENS 2032 /* 16 windows of 128 */

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static struct cit_model *load(const char *path)
{
    char err[512];
    struct cit_model *m = NULL;
    if (cit_model_load(path, &m, err, sizeof err) != CIT_OK)
        fail_msg("load %s: %s", path, err);
    return m;
}

static double kl_mean(const struct cit_model *base, const struct cit_model *test, const int32_t *tokens)
{
    char err[512];
    struct cit_eval_params p;
    cit_eval_params_default(&p);
    p.n_ctx = 128;
    struct cit_eval_kl kl;
    if (cit_eval_kl(base, test, tokens, N_TOKENS, &p, &kl, NULL, 0, err, sizeof err) != CIT_OK)
        fail_msg("eval: %s", err);
    assert_true(kl.n_scored > 500);
    return kl.kl_mean;
}

static void check_family(const char *family)
{
    static const char *const presets[] = {"Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"};
    char dir[] = "/tmp/citadel-qq-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char f32_path[1024], ref_path[1024], ours_path[1100], err[512];
    snprintf(f32_path, sizeof f32_path, "%s", test_shared_path("models/"));
    size_t base_len = strlen(f32_path);
    snprintf(f32_path + base_len, sizeof f32_path - base_len, "%s-f32.gguf", family);
    struct cit_model *base = load(f32_path);

    struct cit_tokenizer *tok = NULL;
    if (cit_tokenizer_load(cit_model_gguf(base), &tok, err, sizeof err) != CIT_OK)
        fail_msg("tokenizer: %s", err);
    int32_t *tokens = malloc(N_TOKENS * sizeof *tokens);
    assert_non_null(tokens);
    assert_int_equal(cit_eval_random_tokens(tok, 1, tokens, N_TOKENS, err, sizeof err), CIT_OK);

    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        snprintf(ref_path, sizeof ref_path, "%.*s%s-%s.gguf", (int)base_len, f32_path, family, presets[i]);
        snprintf(ours_path, sizeof ours_path, "%s/%s.gguf", dir, presets[i]);
        struct cit_quantize_params qp = {0};
        assert_true(cit_ftype_parse(presets[i], &qp.ftype));
        struct cit_quantize_stats st;
        if (cit_quantize_file(f32_path, ours_path, &qp, &st, err, sizeof err) != CIT_OK)
            fail_msg("quantize %s: %s", presets[i], err);
        struct cit_model *ref = load(ref_path), *ours = load(ours_path);
        double kl_ref = kl_mean(base, ref, tokens), kl_ours = kl_mean(base, ours, tokens);
        long long sz_ref = file_size(ref_path), sz_ours = file_size(ours_path);
        fprintf(stderr, "%s %-7s KL ours %.4e  reference %.4e  ratio %.3f  size ours %lld reference %lld\n",
                family, presets[i], kl_ours, kl_ref, kl_ours / kl_ref, sz_ours, sz_ref);
        assert_true(kl_ref > 0);
        if (!(kl_ours <= 1.1 * kl_ref))
            fail_msg("%s %s: KL %.4e is more than 1.1x the reference's %.4e", family, presets[i], kl_ours, kl_ref);
        assert_true(sz_ours > 0 && sz_ours <= sz_ref);
        cit_model_free(ref);
        cit_model_free(ours);
        unlink(ours_path);
    }
    free(tokens);
    cit_tokenizer_free(tok);
    cit_model_free(base);
    rmdir(dir);
}

static void test_micro_llama(void **state)
{
    (void)state;
    check_family("micro-llama");
}

static void test_micro_qwen2(void **state)
{
    (void)state;
    check_family("micro-qwen2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_micro_llama),
        cmocka_unit_test(test_micro_qwen2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
