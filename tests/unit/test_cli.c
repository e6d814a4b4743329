/* test_cli.c: the citadel binary as a user runs it. Each case starts the real
 * executable ($CITADEL_BIN, set by ctest) through the shell, captures stdout,
 * stderr and the exit status, and checks what a user would see: greedy
 * generation reproducing the reference engine's text, seeds repeating
 * output, and every documented failure (missing file, not GGUF, unsupported
 * architecture, context too large, bad arguments) giving a message and a
 * non-zero exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "support.h"

/* Greedy `citadel run` prints prompt + the reference engine's content for
 * every line of the free-greedy golden file (64 tokens, no early stop). */
static void test_run_greedy_matches_reference(void **state)
{
    (void)state;
    size_t len;
    char *data = test_read_file(test_shared_path("golden/stories260K-free-greedy.jsonl"), &len);
    assert_non_null(data);
    int lines = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        assert_non_null(j);
        const char *prompt = json_string_value(json_object_get(j, "prompt"));
        const char *content = json_string_value(json_object_get(j, "content"));
        int n = (int)json_integer_value(json_object_get(j, "n_predict"));
        assert_non_null(prompt);
        assert_non_null(content);
        assert_null(strchr(prompt, '\''));
        char args[4096];
        snprintf(args, sizeof args, "run -m %s -p '%s' -n %d --temp 0", test_shared_quoted("models/stories260K.gguf"), prompt, n);
        struct test_cli r = test_cli_run(args);
        assert_int_equal(r.status, 0);
        size_t pl = strlen(prompt), cl = strlen(content);
        assert_true(strlen(r.out) == pl + cl + 1); /* + the final newline */
        assert_memory_equal(r.out, prompt, pl);
        assert_memory_equal(r.out + pl, content, cl);
        assert_non_null(strstr(r.err, "generation:"));
        assert_non_null(strstr(r.err, "tokens/s"));
        test_cli_free(&r);
        json_decref(j);
        lines++;
    }
    assert_true(lines >= 1);
    free(data);
}

static void test_run_seed_repeats(void **state)
{
    (void)state;
    char args[4096];
    snprintf(args, sizeof args, "run -m %s -p 'Tom had a dog' -n 48 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 --seed 7 --no-echo",
             test_shared_quoted("models/stories260K.gguf"));
    struct test_cli a = test_cli_run(args), b = test_cli_run(args);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_true(strlen(a.out) > 10);
    assert_string_equal(a.out, b.out);
    /* Another seed: over 48 tokens at temperature 1 the texts differ. */
    snprintf(args, sizeof args, "run -m %s -p 'Tom had a dog' -n 48 --temp 1.0 --top-k 0 --top-p 1 --min-p 0 --seed 8 --no-echo",
             test_shared_quoted("models/stories260K.gguf"));
    struct test_cli c = test_cli_run(args);
    assert_int_equal(c.status, 0);
    assert_string_not_equal(a.out, c.out);
    test_cli_free(&a);
    test_cli_free(&b);
    test_cli_free(&c);
}

static void test_run_chat_uses_template(void **state)
{
    (void)state;
    char args[4096];
    snprintf(args, sizeof args, "run -m %s --chat --system 'Be brief' -p 'Hi' -n 4 --temp 0",
             test_shared_quoted("models/stories260K.gguf"));
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    /* stories260K has no template: the documented ChatML fallback is used. */
    assert_non_null(strstr(r.out, "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    assert_non_null(strstr(r.err, "fallback"));
    test_cli_free(&r);
}

/* Writes a tiny valid GGUF whose architecture the engine does not support. */
static const char *write_foreign_arch(void)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/foreign.gguf", test_tmpdir());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    const char *key = "general.architecture", *val = "mamba";
    uint32_t version = 3, vtype = 8;
    uint64_t n_tensors = 0, n_kv = 1, klen = strlen(key), vlen = strlen(val);
    fwrite("GGUF", 1, 4, f);
    fwrite(&version, 4, 1, f);
    fwrite(&n_tensors, 8, 1, f);
    fwrite(&n_kv, 8, 1, f);
    fwrite(&klen, 8, 1, f);
    fwrite(key, 1, klen, f);
    fwrite(&vtype, 4, 1, f);
    fwrite(&vlen, 8, 1, f);
    fwrite(val, 1, vlen, f);
    fclose(f);
    return path;
}

static void test_run_errors(void **state)
{
    (void)state;
    char args[4096];

    assert_int_equal(test_cli_check("run -m /nonexistent/model.gguf -p hi", TEST_CLI_FAILED, "/nonexistent/model.gguf"), 0);

    snprintf(args, sizeof args, "run -m %s -p hi", test_shared_quoted("golden/stories260K.jsonl"));
    assert_int_equal(test_cli_check(args, TEST_CLI_FAILED, "magic"), 0);

    snprintf(args, sizeof args, "run -m '%s' -p hi", write_foreign_arch());
    assert_int_equal(test_cli_check(args, TEST_CLI_FAILED, "mamba"), 0);

    snprintf(args, sizeof args, "run -m %s -p hi -c 100000", test_shared_quoted("models/stories260K.gguf"));
    assert_int_equal(test_cli_check(args, TEST_CLI_FAILED, "100000"), 0);

    snprintf(args, sizeof args, "run -m %s -p hi -n lots", test_shared_quoted("models/stories260K.gguf"));
    assert_int_equal(test_cli_check(args, 2, "--n-predict"), 0);

    assert_int_equal(test_cli_check("run -p hi", 2, "-m"), 0);

    assert_int_equal(test_cli_check("frobnicate", 2, "unknown command"), 0);
}

static void test_help(void **state)
{
    (void)state;
    static const char *cmds[] = {"--help", "run --help", "inspect --help", "template --help", "plan --help"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        struct test_cli r = test_cli_run(cmds[i]);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "usage"));
        test_cli_free(&r);
    }
}

static void test_inspect(void **state)
{
    (void)state;
    char args[4096];
    snprintf(args, sizeof args, "inspect %s -c 256", test_shared_quoted("models/micro-llama-Q4_K_M.gguf"));
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "general.architecture"));
    assert_non_null(strstr(r.out, "blk.0.attn_q.weight"));
    assert_non_null(strstr(r.out, "Q4_K"));
    assert_non_null(strstr(r.out, "Q6_K"));
    assert_non_null(strstr(r.out, "memory at context 256"));
    /* KV cache at 256 positions: 2 layers x 2 (K,V) x 2 KV heads x 64 dims x 256 x 4 bytes = 512 KiB */
    const char *kv = strstr(r.out, "KV cache (f32)");
    assert_non_null(kv);
    const char *eol = strchr(kv, '\n');
    assert_non_null(eol);
    const char *val = strstr(kv, "512.00 KiB");
    assert_true(val && val < eol);
    test_cli_free(&r);

    snprintf(args, sizeof args, "inspect %s", test_shared_quoted("golden/stories260K.jsonl"));
    assert_int_equal(test_cli_check(args, 1, "stories260K.jsonl"), 0);
}

/* `citadel template FILE --context CTX` prints a fixture's rendering byte for
 * byte (no added newline); a refused fixture exits non-zero with the
 * template's own message. Uses the first line of the Llama 3.1 fixtures, with
 * --now fixed to the fixtures' clock (2026-01-02 03:04:05 UTC). */
static void test_template_cli(void **state)
{
    (void)state;
    size_t len;
    char *data = test_read_file(test_shared_path("templates/meta-llama-Llama-3.1-8B-Instruct.expected.jsonl"), &len);
    assert_non_null(data);
    int checked = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        assert_non_null(j);
        const char *expected = json_string_value(json_object_get(j, "expected"));
        char ctx_path[512], args[4096];
        snprintf(ctx_path, sizeof ctx_path, "%s/ctx.json", test_tmpdir());
        assert_int_equal(json_dump_file(json_object_get(j, "context"), ctx_path, 0), 0);
        snprintf(args, sizeof args, "template %s --context '%s' --now 1767323045",
                 test_shared_quoted("templates/meta-llama-Llama-3.1-8B-Instruct.jinja"), ctx_path);
        struct test_cli r = test_cli_run(args);
        if (expected) {
            assert_int_equal(r.status, 0);
            assert_string_equal(r.out, expected);
        } else {
            assert_int_not_equal(r.status, 0);
            assert_true(strlen(r.err) > 0);
        }
        checked++;
        test_cli_free(&r);
        json_decref(j);
    }
    assert_int_equal(checked, 5);
    free(data);
}

/* `citadel plan`: a GGUF file's exact weights (stories260K: 292,800 F32
 * parameters = 1,171,200 bytes; KV per token at f16 = 5 layers x 2 (K,V)
 * x 4 KV heads x 8 dims x 2 bytes = 640 B), JSON and SVG output, and errors. */
static void test_plan_cli(void **state)
{
    (void)state;
    char args[4096], svg[512];
    snprintf(svg, sizeof svg, "%s/plan.svg", test_tmpdir());
    snprintf(args, sizeof args, "plan -m %s -H l4 --json --svg '%s'", test_shared_quoted("models/stories260K.gguf"), svg);
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    json_error_t jerr;
    json_t *j = json_loads(r.out, 0, &jerr);
    assert_non_null(j);
    json_t *opt = json_array_get(json_object_get(j, "options"), 0);
    json_t *mem = json_object_get(opt, "memory");
    assert_int_equal(json_integer_value(json_object_get(mem, "weight_bytes")), 1171200);
    assert_int_equal(json_integer_value(json_object_get(mem, "kv_bytes_per_token")), 640);
    assert_string_equal(json_string_value(json_object_get(opt, "hardware")), "l4");
    json_decref(j);
    test_cli_free(&r);
    char *pic = test_read_file(svg, NULL);
    assert_non_null(pic);
    assert_non_null(strstr(pic, "<svg"));
    assert_non_null(strstr(pic, "</svg>"));
    free(pic);

    r = test_cli_run("plan -m llama-3.1-70b -q Q4_K_M -c 8192 -b 8 -H h100-sxmx2 --cloud gpt-4o");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "MEMORY"));
    assert_non_null(strstr(r.out, "SENSITIVITY"));
    assert_non_null(strstr(r.out, "break-even"));
    test_cli_free(&r);

    assert_int_equal(test_cli_check("plan -m llama-3.1-8b -H nosuch", TEST_CLI_FAILED, "nosuch"), 0);

    assert_int_equal(test_cli_check("plan -m llama-3.1-8b -H l4 -u 2", 2, "--utilization"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_greedy_matches_reference),
        cmocka_unit_test(test_run_seed_repeats),
        cmocka_unit_test(test_run_chat_uses_template),
        cmocka_unit_test(test_run_errors),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_template_cli),
        cmocka_unit_test(test_plan_cli),
    };
    return cmocka_run_group_tests(tests, test_tmpdir_setup, test_tmpdir_teardown);
}
