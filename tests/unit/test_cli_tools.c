/* test_cli_tools.c: `citadel synth` and `citadel quantize` as a user runs
 * them ($CITADEL_BIN through the shell): help, every argument mistake
 * exiting 2 with a message that says what to do, runtime failures exiting 1
 * naming the file, and the files they write loading in `citadel run`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"

static const char *tmp(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "'%s/%s'", test_tmpdir(), name);
    return buf[k];
}

static bool exists(const char *name)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", test_tmpdir(), name);
    return stat(p, &st) == 0;
}

static void test_help_and_list(void **state)
{
    (void)state;
    assert_int_equal(test_cli_check("synth --help", 0, "usage: citadel synth"), 0);
    assert_int_equal(test_cli_check("quantize --help", 0, "usage: citadel quantize"), 0);
    assert_int_equal(test_cli_check("quantize -h", 0, "Q4_K_M"), 0);
    struct test_cli r = test_cli_run("synth --list");
    assert_int_equal(r.status, 0);
    static const char *const models[] = {"tinyllama-1.1b", "llama-2-7b", "llama-3-8b", "mistral-7b", "qwen2.5-0.5b",
                                         "qwen2.5-7b"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        assert_non_null(strstr(r.out, models[i]));
    test_cli_free(&r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char a[4096];
    assert_int_equal(test_cli_check("synth", 2, "--model is required"), 0);
    snprintf(a, sizeof a, "synth -m micro -o %s", tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 2, "--vocab is required"), 0);
    snprintf(a, sizeof a, "synth -m gpt-9 -v %s -o %s", test_shared_quoted("models/stories260K.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 2, "unknown model 'gpt-9' (known: tinyllama-1.1b"), 0);
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s -q Q3_K_S", test_shared_quoted("models/stories260K.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 2, "unknown type 'Q3_K_S' (choose one of Q8_0"), 0);
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s --seed -4", test_shared_quoted("models/stories260K.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 2, "--seed"), 0);
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s --n-layer 0", test_shared_quoted("models/stories260K.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 2, "--n-layer expects a whole number from 1"), 0);
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s extra", test_shared_quoted("models/stories260K.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 2, "unexpected argument 'extra'"), 0);
    assert_int_equal(test_cli_check("synth --bogus", 2, "usage:"), 0);

    assert_int_equal(test_cli_check("quantize a.gguf b.gguf", 2, "expected IN.gguf OUT.gguf TYPE (got 2 arguments)"), 0);
    snprintf(a, sizeof a, "quantize %s %s Q2_K", test_shared_quoted("models/micro-llama-f32.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 2, "unknown TYPE 'Q2_K' (choose one of"), 0);
    snprintf(a, sizeof a, "quantize %s %s Q4_0", test_shared_quoted("models/micro-llama-f32.gguf"),
             test_shared_quoted("models/micro-llama-f32.gguf"));
    assert_int_equal(test_cli_check(a, 2, "the input is never overwritten"), 0);
    snprintf(a, sizeof a, "quantize %s %s Q4_0 -t 0", test_shared_quoted("models/micro-llama-f32.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 2, "--threads"), 0);
    assert_false(exists("x.gguf"));
}

static void test_runtime_failures(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "quantize %s %s Q4_K_M", test_shared_quoted("models/micro-llama-Q4_0.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 1, "already quantized (tensor"), 0);
    snprintf(a, sizeof a, "quantize %s %s Q4_K_M", tmp("missing.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 1, "missing.gguf"), 0);
    snprintf(a, sizeof a, "quantize %s %s Q8_0", test_shared_quoted("models/micro-llama-f32.gguf"), tmp("nodir/x.gguf"));
    assert_int_equal(test_cli_check(a, 1, "nodir/x.gguf"), 0);
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s", test_shared_quoted("golden/stories260K-free-greedy.jsonl"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 1, "vocabulary"), 0);
    snprintf(a, sizeof a, "synth -m tinyllama-1.1b -v %s -o %s", test_shared_quoted("vocab/ggml-vocab-gpt-2.gguf"), tmp("x.gguf"));
    assert_int_equal(test_cli_check(a, 1, "choose a vocabulary of at most 32000 tokens"), 0);
    assert_false(exists("x.gguf"));
}

static void test_synth_then_run(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "synth -m micro -v %s -q Q4_0 -o %s --seed 3", test_shared_quoted("models/stories260K.gguf"),
             tmp("s.gguf"));
    assert_int_equal(test_cli_check(a, 0, "Q4_0"), 0);
    snprintf(a, sizeof a, "run -m %s -p hi -n 8", tmp("s.gguf"));
    struct test_cli r = test_cli_run(a);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "generation:"));
    test_cli_free(&r);
    /* a qwen2 shape with the layer count overridden, a BPE vocabulary padded */
    snprintf(a, sizeof a, "synth -m micro-qwen2 -v %s -q Q5_K_M -o %s --n-layer 3 --ctx 256",
             test_shared_quoted("models/stories260K.gguf"), tmp("q.gguf"));
    assert_int_equal(test_cli_check(a, 0, "layer count overridden"), 0);
    snprintf(a, sizeof a, "inspect %s --no-tensors", tmp("q.gguf"));
    assert_int_equal(test_cli_check(a, 0, "3 layers"), 0);
    snprintf(a, sizeof a, "run -m %s -p hi -n 8", tmp("q.gguf"));
    assert_int_equal(test_cli_check(a, 0, NULL), 0);
}

static void test_quantize_then_run(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "quantize %s %s Q4_K_M -t 2", test_shared_quoted("models/micro-llama-f32.gguf"), tmp("m.gguf"));
    struct test_cli r = test_cli_run(a);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "bits per weight"));
    assert_non_null(strstr(r.out, "13 Q4_K 3 Q6_K"));
    assert_non_null(strstr(r.out, "input"));
    assert_non_null(strstr(r.out, "time"));
    test_cli_free(&r);
    snprintf(a, sizeof a, "run -m %s -p 'Once upon a time' -n 8 --temp 0", tmp("m.gguf"));
    r = test_cli_run(a);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Once upon a time"));
    test_cli_free(&r);
    /* BF16 keeps vectors F32 */
    snprintf(a, sizeof a, "quantize %s %s bf16", test_shared_quoted("models/micro-qwen2-f32.gguf"), tmp("b.gguf"));
    assert_int_equal(test_cli_check(a, 0, "11 F32 16 BF16"), 0);
    snprintf(a, sizeof a, "run -m %s -p hi -n 4", tmp("b.gguf"));
    assert_int_equal(test_cli_check(a, 0, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_list),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_runtime_failures),
        cmocka_unit_test(test_synth_then_run),
        cmocka_unit_test(test_quantize_then_run),
    };
    return cmocka_run_group_tests(tests, test_tmpdir_setup, test_tmpdir_teardown);
}
