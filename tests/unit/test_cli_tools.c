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

struct result {
    int status;
    char *out, *err;
};

static char tmpdir[256];

static struct result run(const char *args)
{
    const char *bin = getenv("CITADEL_BIN");
    assert_non_null(bin);
    char out_path[512], err_path[512], cmd[8192];
    snprintf(out_path, sizeof out_path, "%s/stdout", tmpdir);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s' </dev/null", bin, args, out_path, err_path);
    int st = system(cmd);
    struct result r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1};
    r.out = test_read_file(out_path, NULL);
    r.err = test_read_file(err_path, NULL);
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}

static void done(struct result *r)
{
    free(r->out);
    free(r->err);
}

/* Runs and checks the exit status and that `needle` is in stdout (where
 * 0) or stderr (otherwise). */
static void expect(const char *args, int status, const char *needle)
{
    struct result r = run(args);
    const char *where = status == 0 ? r.out : r.err;
    if (r.status != status || (needle && !strstr(where, needle)))
        fail_msg("citadel %s: exit %d (want %d)\nstdout: %s\nstderr: %s\n(wanted '%s')", args, r.status, status, r.out,
                 r.err, needle ? needle : "");
    done(&r);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/citadel-test-cli-tools-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *shared(const char *rel)
{
    static char buf[4][1100];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "'%.1000s'", test_shared_path(rel));
    return buf[k];
}

static const char *tmp(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "'%s/%s'", tmpdir, name);
    return buf[k];
}

static bool exists(const char *name)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return stat(p, &st) == 0;
}

static void test_help_and_list(void **state)
{
    (void)state;
    expect("synth --help", 0, "usage: citadel synth");
    expect("quantize --help", 0, "usage: citadel quantize");
    expect("quantize -h", 0, "Q4_K_M");
    struct result r = run("synth --list");
    assert_int_equal(r.status, 0);
    static const char *const models[] = {"tinyllama-1.1b", "llama-2-7b", "llama-3-8b", "mistral-7b", "qwen2.5-0.5b",
                                         "qwen2.5-7b"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        assert_non_null(strstr(r.out, models[i]));
    done(&r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char a[4096];
    expect("synth", 2, "--model is required");
    snprintf(a, sizeof a, "synth -m micro -o %s", tmp("x.gguf"));
    expect(a, 2, "--vocab is required");
    snprintf(a, sizeof a, "synth -m gpt-9 -v %s -o %s", shared("models/stories260K.gguf"), tmp("x.gguf"));
    expect(a, 2, "unknown model 'gpt-9' (known: tinyllama-1.1b");
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s -q Q3_K_S", shared("models/stories260K.gguf"), tmp("x.gguf"));
    expect(a, 2, "unknown type 'Q3_K_S' (choose one of Q8_0");
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s --seed -4", shared("models/stories260K.gguf"), tmp("x.gguf"));
    expect(a, 2, "--seed");
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s --n-layer 0", shared("models/stories260K.gguf"), tmp("x.gguf"));
    expect(a, 2, "--n-layer expects a whole number from 1");
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s extra", shared("models/stories260K.gguf"), tmp("x.gguf"));
    expect(a, 2, "unexpected argument 'extra'");
    expect("synth --bogus", 2, "usage:");

    expect("quantize a.gguf b.gguf", 2, "expected IN.gguf OUT.gguf TYPE (got 2 arguments)");
    snprintf(a, sizeof a, "quantize %s %s Q2_K", shared("models/micro-llama-f32.gguf"), tmp("x.gguf"));
    expect(a, 2, "unknown TYPE 'Q2_K' (choose one of");
    snprintf(a, sizeof a, "quantize %s %s Q4_0", shared("models/micro-llama-f32.gguf"),
             shared("models/micro-llama-f32.gguf"));
    expect(a, 2, "the input is never overwritten");
    snprintf(a, sizeof a, "quantize %s %s Q4_0 -t 0", shared("models/micro-llama-f32.gguf"), tmp("x.gguf"));
    expect(a, 2, "--threads");
    assert_false(exists("x.gguf"));
}

static void test_runtime_failures(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "quantize %s %s Q4_K_M", shared("models/micro-llama-Q4_0.gguf"), tmp("x.gguf"));
    expect(a, 1, "already quantized (tensor");
    snprintf(a, sizeof a, "quantize %s %s Q4_K_M", tmp("missing.gguf"), tmp("x.gguf"));
    expect(a, 1, "missing.gguf");
    snprintf(a, sizeof a, "quantize %s %s Q8_0", shared("models/micro-llama-f32.gguf"), tmp("nodir/x.gguf"));
    expect(a, 1, "nodir/x.gguf");
    snprintf(a, sizeof a, "synth -m micro -v %s -o %s", shared("golden/stories260K-free-greedy.jsonl"), tmp("x.gguf"));
    expect(a, 1, "vocabulary");
    snprintf(a, sizeof a, "synth -m tinyllama-1.1b -v %s -o %s", shared("vocab/ggml-vocab-gpt-2.gguf"), tmp("x.gguf"));
    expect(a, 1, "choose a vocabulary of at most 32000 tokens");
    assert_false(exists("x.gguf"));
}

static void test_synth_then_run(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "synth -m micro -v %s -q Q4_0 -o %s --seed 3", shared("models/stories260K.gguf"),
             tmp("s.gguf"));
    expect(a, 0, "Q4_0");
    snprintf(a, sizeof a, "run -m %s -p hi -n 8", tmp("s.gguf"));
    struct result r = run(a);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "generation:"));
    done(&r);
    /* a qwen2 shape with the layer count overridden, a BPE vocabulary padded */
    snprintf(a, sizeof a, "synth -m micro-qwen2 -v %s -q Q5_K_M -o %s --n-layer 3 --ctx 256",
             shared("models/stories260K.gguf"), tmp("q.gguf"));
    expect(a, 0, "layer count overridden");
    snprintf(a, sizeof a, "inspect %s --no-tensors", tmp("q.gguf"));
    expect(a, 0, "3 layers");
    snprintf(a, sizeof a, "run -m %s -p hi -n 8", tmp("q.gguf"));
    expect(a, 0, NULL);
}

static void test_quantize_then_run(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "quantize %s %s Q4_K_M -t 2", shared("models/micro-llama-f32.gguf"), tmp("m.gguf"));
    struct result r = run(a);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "bits per weight"));
    assert_non_null(strstr(r.out, "13 Q4_K 3 Q6_K"));
    assert_non_null(strstr(r.out, "input"));
    assert_non_null(strstr(r.out, "time"));
    done(&r);
    snprintf(a, sizeof a, "run -m %s -p 'Once upon a time' -n 8 --temp 0", tmp("m.gguf"));
    r = run(a);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Once upon a time"));
    done(&r);
    /* BF16 keeps vectors F32 */
    snprintf(a, sizeof a, "quantize %s %s bf16", shared("models/micro-qwen2-f32.gguf"), tmp("b.gguf"));
    expect(a, 0, "11 F32 16 BF16");
    snprintf(a, sizeof a, "run -m %s -p hi -n 4", tmp("b.gguf"));
    expect(a, 0, NULL);
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
    return cmocka_run_group_tests(tests, setup, teardown);
}
