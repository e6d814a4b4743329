/* test_bench.c: `citadel bench` as a user runs it ($CITADEL_BIN through the
 * shell: help, every kind of bad argument, the JSON and calibration reports
 * of a real run on the shared models) and the roofline formulas behind its
 * "% of limit" column, checked against sizes worked out by hand from the
 * shared models' published shapes (tests/../shared/README.md). Nothing here
 * asserts on speed: measured rates are only required to be positive. */
#include <math.h>
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

#include "citadel/model.h"
#include "citadel/plan.h"
#include "kernels/kernels.h"
#include "kernels/probe.h"
#include "model/roofline.h"
#include "support.h"

#define STORIES "models/stories260K.gguf"
#define MICRO_Q4 "models/micro-llama-Q4_0.gguf"

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fprintf(stderr, "invalid JSON (line %d: %s):\n%s\n", je.line, je.text, text);
    assert_non_null(j);
    return j;
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fprintf(stderr, "missing number '%s'\n", key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        fprintf(stderr, "missing string '%s'\n", key);
    assert_non_null(s);
    return s;
}

/* ---- command line ---- */

static void test_help(void **state)
{
    (void)state;
    struct test_cli r = test_cli_run("bench --help");
    assert_int_equal(r.status, 0);
    static const char *const want[] = {"--model", "--n-prompt", "--n-gen", "--threads", "--batch", "--repetitions",
                                       "--ctx", "--output", "calibrate", "json", "--no-probe", "--probe-mib", "ttft"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(r.out, want[i]))
            fprintf(stderr, "help lacks %s\n", want[i]);
        assert_non_null(strstr(r.out, want[i]));
    }
    assert_string_equal(r.err, "");
    test_cli_free(&r);
}

/* Each bad invocation exits 2 with a message naming the offending option. */
static void test_bad_args(void **state)
{
    (void)state;
    char args[2048];
    const char *m = test_shared_quoted(STORIES);
    static const struct {
        const char *args, *named;
    } cases[] = {
        {"-p abc", "--n-prompt"},       {"-p -1", "--n-prompt"},         {"-n 1x", "--n-gen"},
        {"-t 0", "--threads"},          {"-t 1,,2", "--threads"},        {"-t 1,", "--threads"},
        {"-b 0", "--batch"},            {"-r 0", "--repetitions"},       {"-c 0", "--ctx"},
        {"-o xml", "--output"},         {"--probe-mib 0", "--probe-mib"}, {"--bogus", "--bogus"},
        {"-p 64 -c 16", "--ctx"},       {"-p 0 -n 0", "--n-prompt"},     {"-o calibrate -n 0", "calibrate"},
        {"stray", "stray"},             {"-t 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "--threads"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "bench -m %s %s", m, cases[i].args);
        struct test_cli r = test_cli_run(args);
        if (r.status != 2 || !strstr(r.err, cases[i].named))
            fprintf(stderr, "case '%s': status %d, stderr: %s\n", cases[i].args, r.status, r.err);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, cases[i].named));
        assert_string_equal(r.out, "");
        test_cli_free(&r);
    }
    struct test_cli r = test_cli_run("bench -p 16"); /* no model */
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "-m"));
    test_cli_free(&r);
    r = test_cli_run("bench -m"); /* option without its value */
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "-m"));
    test_cli_free(&r);
}

static void test_missing_model_file(void **state)
{
    (void)state;
    assert_int_equal(test_cli_check("bench -m /nonexistent/x.gguf -p 8 -n 0 -r 1 --no-probe", 1, "/nonexistent/x.gguf"), 0);
}

/* A context longer than the model's training context is refused by name. */
static void test_ctx_beyond_training(void **state)
{
    (void)state;
    char args[2048];
    snprintf(args, sizeof args, "bench -m %s -p 8 -n 4 -c 100000 -r 1 --no-probe", test_shared_quoted(MICRO_Q4));
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "100000"));
    assert_non_null(strstr(r.err, "512"));
    test_cli_free(&r);
}

/* --repack interleaves the micro model's Q4_0 layer matrices and copies the
 * rest the forward pass reads but the embedding (only looked up): the report
 * says how much, and
 * the run still produces its rows. Without an interleaved kernel (scalar
 * tier) it says why and goes on with the file's layout. */
static void test_repack_reported(void **state)
{
    (void)state;
    char args[2048];
    snprintf(args, sizeof args, "bench -m %s -p 8 -n 4 -r 1 --no-probe -o json --repack", test_shared_quoted(MICRO_Q4));
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    json_t *j = parse_json(r.out);
    json_t *m0 = json_array_get(json_object_get(j, "models"), 0);
    long long bytes = (long long)num(m0, "repacked_bytes");
    if (cit_isa_active() == CIT_ISA_SCALAR) {
        assert_int_equal(bytes, 0);
        assert_non_null(strstr(r.err, "--repack"));
    } else {
        /* micro-llama: 2 layers of wq, wo (256 x 256), wk, wv (128 x 256), gate, up (768 x 256) and down
         * (256 x 768), all Q4_0 (18 bytes per 32 elements), interleaved; the Q6_K output (512 x 256, 210
         * bytes per 256) copied as it is; and the 5 norm vectors the forward pass reads (2 per layer and the
         * output's, 256 floats each) */
        long long elems = 2LL * (2 * 256 * 256 + 2 * 128 * 256 + 3 * 768 * 256);
        assert_int_equal(bytes, elems / 32 * 18 + 512 * 256 / 256 * 210 + 5 * 256 * 4);
    }
    assert_int_equal(json_array_size(json_object_get(j, "rows")), 3);
    json_decref(j);
    test_cli_free(&r);
}

/* ---- reports ---- */

/* The brief's quick run: rows present with positive numbers; the per-token
 * figures equal the hand-computed stories260K values (see test_roofline_*). */
static void test_json_quick_run(void **state)
{
    (void)state;
    char args[2048];
    snprintf(args, sizeof args, "bench -m %s -p 16 -n 8 -r 1 --no-probe -o json", test_shared_quoted(STORIES));
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    json_t *j = parse_json(r.out);
    json_t *machine = json_object_get(j, "machine");
    assert_true(json_is_object(machine));
    assert_true(strlen(str(machine, "cpu")) > 0);
    assert_true(strlen(str(machine, "isa")) > 0);
    assert_true(num(machine, "physical_cores") >= 1);
    assert_int_equal(json_array_size(json_object_get(machine, "probes")), 0); /* --no-probe */

    json_t *models = json_object_get(j, "models");
    assert_int_equal(json_array_size(models), 1);
    json_t *m0 = json_array_get(models, 0);
    assert_string_equal(str(m0, "type"), "F32");
    assert_true(num(m0, "load_ms") > 0);
    assert_int_equal((long long)num(m0, "repacked_bytes"), 0); /* no --repack */
    assert_int_equal((long long)num(m0, "weight_bytes_per_token"), 1040384);
    assert_int_equal((long long)num(m0, "kv_bytes_per_pos"), 1280);
    /* the file mapping after the tests: all of its 1,185,376 bytes were touched, so the
     * pages they span, less any the kernel has since reclaimed (clean file pages can leave
     * a mapping at any time: one CI run saw a page short), so whole pages, at most the
     * file's and at least half of them; none in 2 MiB pages since the file is smaller than
     * one. test_gguf checks the exact count right after touching. */
    long long pg = sysconf(_SC_PAGESIZE);
    long long all = (1185376 + pg - 1) / pg * pg, res = (long long)num(m0, "mapped_resident_bytes");
    assert_int_equal(res % pg, 0);
    assert_in_range(res, all / 2, all);
    assert_int_equal((long long)num(m0, "mapped_huge_bytes"), 0);

    json_t *rows = json_object_get(j, "rows");
    assert_int_equal(json_array_size(rows), 3);
    int seen_ttft = 0, seen_pp = 0, seen_tg = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        const char *test = str(row, "test");
        assert_non_null(strstr(str(row, "model"), "stories260K.gguf"));
        assert_true(num(row, "n_threads") >= 1);
        if (!strcmp(test, "ttft")) {
            seen_ttft++;
            assert_true(num(row, "ms") > 0);
            continue;
        }
        assert_true(num(row, "avg_ts") > 0);
        assert_true(num(row, "stddev_ts") >= 0);
        assert_int_equal((long long)num(row, "reps"), 1);
        json_t *samples = json_object_get(row, "samples_ts");
        assert_int_equal(json_array_size(samples), 1);
        assert_true(json_number_value(json_array_get(samples, 0)) > 0);
        assert_true(json_is_null(json_object_get(row, "limit_fraction")));
        assert_null(json_object_get(row, "limit_gbs_samples")); /* no reads around tg without the probes */
        assert_null(json_object_get(row, "limit_fraction_startup_probe"));
        if (!strcmp(test, "pp16")) {
            seen_pp++;
            assert_string_equal(str(row, "kind"), "pp");
            assert_string_equal(str(row, "limit"), "f32_fma");
            assert_int_equal((long long)num(row, "n_tokens"), 16);
            assert_int_equal((long long)num(row, "n_batch"), 512);
            assert_true(num(row, "ops_per_token") == 7489536.0 / 16);
        } else if (!strcmp(test, "tg8")) {
            seen_tg++;
            assert_string_equal(str(row, "kind"), "tg");
            assert_string_equal(str(row, "limit"), "bandwidth");
            assert_true(num(row, "bytes_per_token") == 1046144.0);
        } else {
            fail_msg("unexpected test %s", test);
        }
    }
    assert_int_equal(seen_ttft + seen_pp + seen_tg, 3);
    assert_int_equal(seen_pp, 1);
    assert_int_equal(seen_tg, 1);
    json_decref(j);
    test_cli_free(&r);
}

/* Two models x 2 thread counts x 2 batch sizes: one ttft per model, pp for
 * every (threads, batch), tg once per thread count. */
static void test_json_grid(void **state)
{
    (void)state;
    char args[2048];
    snprintf(args, sizeof args, "bench -m %s -m %s -p 8 -n 4 -t 1,2 -b 4,8 -r 2 --no-probe -o json", test_shared_quoted(STORIES),
             test_shared_quoted(MICRO_Q4));
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    json_t *j = parse_json(r.out);
    json_t *rows = json_object_get(j, "rows");
    assert_int_equal(json_array_size(rows), 2 * (1 + 4 + 2));
    int q4_pp = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        if (!strcmp(str(row, "test"), "ttft"))
            continue;
        assert_int_equal(json_array_size(json_object_get(row, "samples_ts")), 2);
        if (strstr(str(row, "model"), "Q4_0") && !strcmp(str(row, "kind"), "pp")) {
            q4_pp++;
            assert_string_equal(str(row, "limit"), "int8_dot");
            assert_true(num(row, "ops_per_token") == 25501696.0 / 8);
        }
    }
    assert_int_equal(q4_pp, 4);
    json_t *m1 = json_array_get(json_object_get(j, "models"), 1);
    assert_true(json_is_true(json_object_get(m1, "quantized")));
    assert_int_equal((long long)num(m1, "weight_bytes_per_token"), 997520);
    json_decref(j);
    test_cli_free(&r);
}

/* With a small probe buffer the limits are measured and every row gets a
 * positive fraction; the markdown table carries the header and columns. */
static void test_probe_and_markdown(void **state)
{
    (void)state;
    char args[2048];
    snprintf(args, sizeof args, "bench -m %s -p 8 -n 4 -t 1 -r 2 --probe-mib 8 -o json", test_shared_quoted(MICRO_Q4));
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    json_t *j = parse_json(r.out);
    json_t *probes = json_object_get(json_object_get(j, "machine"), "probes");
    assert_int_equal(json_array_size(probes), 1);
    json_t *p = json_array_get(probes, 0);
    assert_int_equal((long long)num(p, "n_threads"), 1);
    assert_true(num(p, "read_gbs") > 0);
    assert_true(num(p, "read_bytes") >= 4 * 1048576.0 && num(p, "read_bytes") <= 8 * 1048576.0);
    assert_true(num(p, "dot_gops") > 0);
    assert_true(num(p, "fma_gflops") > 0);
    assert_true(strlen(str(p, "read_insn")) > 0 && strlen(str(p, "dot_insn")) > 0 && strlen(str(p, "fma_insn")) > 0);
    /* the matrix unit is probed exactly where the kernels use it, and beats the vector dot */
    bool tiles = cit_isa_active() == CIT_ISA_AMX;
    assert_int_equal(json_object_get(p, "tile_gops") != NULL, tiles);
    if (tiles) {
        assert_true(num(p, "tile_gops") > num(p, "dot_gops"));
        assert_non_null(strstr(str(p, "tile_insn"), "tdpbssd"));
    }
    json_t *rows = json_object_get(j, "rows");
    int seen_tg = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        if (!strcmp(str(row, "test"), "ttft"))
            continue;
        assert_true(num(row, "limit_fraction") > 0);
        if (strcmp(str(row, "kind"), "tg"))
            continue;
        /* tg: one bandwidth per repetition, read around it, and the row's fraction is the mean of
         * each repetition's rate x bytes per token / its bandwidth */
        seen_tg++;
        json_t *bw = json_object_get(row, "limit_gbs_samples"), *ts = json_object_get(row, "samples_ts");
        assert_int_equal(json_array_size(bw), 2);
        double f = 0;
        for (size_t k = 0; k < 2; k++) {
            double g = json_number_value(json_array_get(bw, k));
            assert_true(g > 0);
            f += json_number_value(json_array_get(ts, k)) * num(row, "bytes_per_token") / (g * 1e9) / 2;
        }
        assert_true(fabs(f - num(row, "limit_fraction")) <= 1e-9 * f);
        /* the start-up probe's fraction is kept beside it */
        double startup = num(row, "avg_ts") * num(row, "bytes_per_token") / (num(p, "read_gbs") * 1e9);
        assert_true(fabs(startup - num(row, "limit_fraction_startup_probe")) <= 1e-9 * startup);
    }
    assert_int_equal(seen_tg, 1);
    json_decref(j);
    test_cli_free(&r);

    snprintf(args, sizeof args, "bench -m %s -p 8 -n 4 -t 1 -r 2 --probe-mib 8", test_shared_quoted(MICRO_Q4));
    r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "| model | size | params | type | threads | batch | test | t/s | % of limit |"));
    assert_non_null(strstr(r.out, "| pp8 |"));
    assert_non_null(strstr(r.out, "| tg4 |"));
    assert_non_null(strstr(r.out, "| ttft |"));
    assert_non_null(strstr(r.out, tiles ? "% int8 tile |" : "% int8 |"));
    assert_int_equal(strstr(r.out, "GOPS (tdpbssd") != NULL, tiles);
    assert_non_null(strstr(r.out, "% bw |"));
    assert_non_null(strstr(r.out, "memory read"));
    assert_non_null(strstr(r.out, "t=1 tg4: "));
    assert_non_null(strstr(r.out, "GB/s around its repetitions"));
    assert_non_null(strstr(r.out, " ± "));
    assert_string_equal(r.err, ""); /* progress only on a terminal */
    test_cli_free(&r);
}

/* -o calibrate writes exactly the planner's schema, and the planner accepts it. */
static void test_calibrate(void **state)
{
    (void)state;
    char args[2048];
    snprintf(args, sizeof args, "bench -m %s -m %s -p 16 -n 8 -r 1 --no-probe -o calibrate", test_shared_quoted(STORIES),
             test_shared_quoted(MICRO_Q4));
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    json_t *j = parse_json(r.out);
    assert_int_equal(json_object_size(j), 6);
    assert_int_equal((long long)num(j, "weight_bytes"), 1171200); /* stories260K, the first model: 292800 floats (see test_roofline_stories260k + token_embd) */
    assert_int_equal((long long)num(j, "n_params"), 292800);
    assert_true(num(j, "n_active") == num(j, "n_params"));
    assert_true(num(j, "tg_tokens_per_s") > 0);
    assert_true(num(j, "pp_tokens_per_s") > 0);
    assert_true(num(j, "n_devices") == 1);
    json_decref(j);

    /* A device fast enough that a CPU's measurement is below its peak. */
    struct cit_plan_hw hw = {.id = "test", .bw_gbs = 1e9, .fp16_tflops = 1e9};
    struct cit_plan_eff eff;
    char err[512];
    assert_int_equal(cit_plan_calibrate(r.out, &hw, &eff, err, sizeof err), CIT_OK);
    assert_true(eff.bandwidth > 0 && eff.compute > 0);
    test_cli_free(&r);
}

/* ---- formulas ---- */

/* stories260K (all F32): dim 64, 5 layers, 8 heads of 8, 4 KV heads, FFN 172,
 * vocab 512, untied output.
 *   per layer: q 64x64 + k 64x32 + v 64x32 + o 64x64 + gate, up 64x172 +
 *   down 172x64 = 4096 + 2048 + 2048 + 4096 + 3 x 11008 = 45312 elements,
 *   + two norms of 64: 45440 floats = 181760 bytes; 5 layers 908800 bytes,
 *   226560 matrix elements.
 *   output 512 x 64 = 32768 elements = 131072 bytes; output_norm 256 bytes;
 *   one token_embd row 256 bytes. Weights per token: 1040384 bytes.
 *   KV per position: 5 layers x (K + V) x 4 heads x 8 x 4 bytes = 1280. */
static void test_roofline_stories260k(void **state)
{
    (void)state;
    struct cit_model *m = NULL;
    char err[512];
    assert_int_equal(cit_model_load(test_shared_path(STORIES), &m, err, sizeof err), CIT_OK);
    struct cit_roofline rl;
    assert_int_equal(cit_roofline_of_model(m, &rl, err, sizeof err), CIT_OK);
    assert_int_equal(rl.weight_bytes_per_token, 1040384);
    assert_int_equal(rl.kv_bytes_per_pos, 1280);
    assert_int_equal(rl.layer_matrix_params, 226560);
    assert_int_equal(rl.output_params, 32768);
    assert_int_equal(rl.n_layer, 5);
    assert_int_equal(rl.n_embd, 64);
    assert_false(rl.quantized);
    assert_false(rl.bf16); /* F32 */
    /* tg8 from an empty cache: tokens attend 1..8 positions, 4.5 on average. */
    assert_true(cit_roofline_gen_bytes_per_token(&rl, 8, 0) == 1040384.0 + 1280.0 * 4.5);
    /* one token after 100 positions: 101 positions read. */
    assert_true(cit_roofline_gen_bytes_per_token(&rl, 1, 100) == 1040384.0 + 1280.0 * 101);
    /* pp16: 2 x 226560 x 16 + 2 x 32768 + 2 x 5 x 64 x 16 x 17
     *     = 7249920 + 65536 + 174080 = 7489536 */
    assert_true(cit_roofline_prompt_ops(&rl, 16) == 7489536.0);
    /* pp1: attention over the single position: 4 x 64 x 5 = 1280. */
    assert_true(cit_roofline_prompt_ops(&rl, 1) == 2.0 * 226560 + 2.0 * 32768 + 1280.0);
    cit_model_free(m);
}

/* A BF16 model (micro-llama-f32 through `citadel quantize ... BF16`): its
 * prompt rows are measured against the bf16 dot-product peak exactly where
 * the kernels use that instruction (cit_bf16_dot_active), probed only there,
 * and against f32 FMA elsewhere. */
static void test_bf16_limit(void **state)
{
    (void)state;
    char out[1024], args[2048];
    snprintf(out, sizeof out, "%s/micro-bf16.gguf", test_tmpdir());
    snprintf(args, sizeof args, "quantize %s '%s' BF16 -q", test_shared_quoted("models/micro-llama-f32.gguf"), out);
    assert_int_equal(test_cli_check(args, 0, ""), 0);
    struct cit_model *m = NULL;
    char err[512];
    assert_int_equal(cit_model_load(out, &m, err, sizeof err), CIT_OK);
    struct cit_roofline rl;
    assert_int_equal(cit_roofline_of_model(m, &rl, err, sizeof err), CIT_OK);
    assert_true(rl.bf16);
    assert_false(rl.quantized);
    cit_model_free(m);

    snprintf(args, sizeof args, "bench -m '%s' -p 8 -n 0 -t 1 -r 1 --probe-mib 8 -o json", out);
    struct test_cli r = test_cli_run(args);
    assert_int_equal(r.status, 0);
    json_t *j = parse_json(r.out);
    json_t *p = json_array_get(json_object_get(json_object_get(j, "machine"), "probes"), 0);
    const bool dot = cit_bf16_dot_active();
    assert_int_equal(json_object_get(p, "bf16_gflops") != NULL, dot);
    if (dot) {
        assert_true(num(p, "bf16_gflops") > 0);
        assert_non_null(strstr(str(p, "bf16_insn"), "vdpbf16ps"));
    }
    json_t *rows = json_object_get(j, "rows");
    int seen_pp = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        const char *kind = json_string_value(json_object_get(row, "kind")); /* none on the ttft row */
        if (!kind || strcmp(kind, "pp"))
            continue;
        seen_pp++;
        assert_string_equal(str(row, "limit"), dot ? "bf16_dot" : "f32_fma");
        double peak = dot ? num(p, "bf16_gflops") : num(p, "fma_gflops");
        double f = num(row, "avg_ts") * num(row, "ops_per_token") / (peak * 1e9);
        assert_true(fabs(f - num(row, "limit_fraction")) <= 1e-9 * f);
    }
    assert_int_equal(seen_pp, 1);
    json_decref(j);
    test_cli_free(&r);
}

/* micro-llama-Q4_0: dim 256, 2 layers, 4 heads of 64, 2 KV heads, FFN 768,
 * vocab 512; matrices Q4_0 (18 bytes per 32 weights), output Q6_K (107520
 * bytes as stored), embeddings Q4_0 (73728 bytes / 512 rows = 144 per row).
 *   per layer: (256x256 x 2 + 256x128 x 2 + 256x768 x 3) = 786432 weights
 *   = 442368 bytes + two F32 norms of 256 (2048 bytes) = 444416; x 2 layers
 *   = 888832; + output 107520 + output_norm 1024 + a row 144 = 997520.
 *   KV per position: 2 x 2 x 2 heads x 64 x 4 bytes = 2048. */
static void test_roofline_micro_q4_0(void **state)
{
    (void)state;
    struct cit_model *m = NULL;
    char err[512];
    assert_int_equal(cit_model_load(test_shared_path(MICRO_Q4), &m, err, sizeof err), CIT_OK);
    struct cit_roofline rl;
    assert_int_equal(cit_roofline_of_model(m, &rl, err, sizeof err), CIT_OK);
    assert_int_equal(rl.weight_bytes_per_token, 997520);
    assert_int_equal(rl.kv_bytes_per_pos, 2048);
    assert_int_equal(rl.layer_matrix_params, 2 * 786432);
    assert_int_equal(rl.output_params, 131072);
    assert_true(rl.quantized);
    /* pp8: 2 x 1572864 x 8 + 2 x 131072 + 2 x 2 x 256 x 8 x 9 = 25501696 */
    assert_true(cit_roofline_prompt_ops(&rl, 8) == 25501696.0);
    cit_model_free(m);
}

static void test_probe_bad_params(void **state)
{
    (void)state;
    struct cit_probe_result r;
    char err[256] = "";
    struct cit_probe_params p = {.n_threads = 1, .read_bytes = 4096};
    assert_int_equal(cit_probe_run(&p, &r, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "4096"));
    p = (struct cit_probe_params){.n_threads = CIT_PROBE_MAX_THREADS + 1};
    assert_int_equal(cit_probe_run(&p, &r, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "threads"));
    assert_int_equal(cit_probe_run(NULL, NULL, err, sizeof err), CIT_ERR_INVALID_ARG);
}

/* The probe kept between reads: the same limits as cit_probe_run, a buffer
 * split evenly across the threads, and a positive rate on every read. */
static void test_bw_probe(void **state)
{
    (void)state;
    char err[256] = "";
    struct cit_bw_probe *bw = (struct cit_bw_probe *)&err; /* must be cleared on failure */
    assert_int_equal(cit_bw_probe_new(1, 4096, &bw, err, sizeof err), CIT_ERR_RANGE);
    assert_null(bw);
    assert_non_null(strstr(err, "4096"));
    assert_int_equal(cit_bw_probe_new(CIT_PROBE_MAX_THREADS + 1, 0, &bw, err, sizeof err), CIT_ERR_RANGE);
    assert_int_equal(cit_bw_probe_new(1, 0, NULL, err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_int_equal(cit_bw_probe_new(3, (uint64_t)6 << 20, &bw, err, sizeof err), CIT_OK);
    /* three slices, each a multiple of 4 KiB: 2 MiB each */
    assert_int_equal(cit_bw_probe_bytes(bw), (uint64_t)6 << 20);
    for (int i = 0; i < 2; i++) {
        double g = 0;
        assert_int_equal(cit_bw_probe_read(bw, 2, &g, err, sizeof err), CIT_OK);
        assert_true(g > 0);
    }
    assert_int_equal(cit_bw_probe_read(bw, 1, NULL, err, sizeof err), CIT_ERR_INVALID_ARG);
    cit_bw_probe_free(bw);
    cit_bw_probe_free(NULL);
    assert_int_equal(cit_bw_probe_bytes(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_missing_model_file),
        cmocka_unit_test(test_ctx_beyond_training),
        cmocka_unit_test(test_json_quick_run),
        cmocka_unit_test(test_repack_reported),
        cmocka_unit_test(test_json_grid),
        cmocka_unit_test(test_probe_and_markdown),
        cmocka_unit_test(test_calibrate),
        cmocka_unit_test(test_roofline_stories260k),
        cmocka_unit_test(test_roofline_micro_q4_0),
        cmocka_unit_test(test_bf16_limit),
        cmocka_unit_test(test_probe_bad_params),
        cmocka_unit_test(test_bw_probe),
    };
    return cmocka_run_group_tests(tests, test_tmpdir_setup, test_tmpdir_teardown);
}
