/* test_golden.c: the forward pass against the reference engine's recordings
 * in the JSONL files of shared/golden.
 *
 * Teacher forcing: every line's prompt is decoded as one batch (prefill),
 * then the recorded ids one token per decode, as a real generation does; at
 * each step the log-softmax of our logits (in double) is compared with every
 * [id, logprob] pair of that step's top list. Thresholds depend on the
 * weight type (f32 is near exact; quantized types differ by the rounding of
 * activations). Free greedy: stories260K-free-greedy.jsonl must be
 * reproduced token for token by argmax decoding. */
#include <glob.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "citadel/model.h"
#include "support.h"

struct limits {
    double max, mean;
};

/* Tolerances by the weight type named in the file name. */
static struct limits limits_for(const char *file)
{
    if (strstr(file, "-f32") || strstr(file, "stories260K"))
        return (struct limits){1e-4, 1e-5};
    if (strstr(file, "-F16"))
        return (struct limits){1e-2, 2e-3};
    return (struct limits){0.25, 0.04};
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* One golden file: its lines parsed, the model loaded, a context ready. */
struct golden {
    json_t **lines;
    size_t n_lines;
    struct cit_model *model;
    struct cit_context *ctx;
};

static void golden_free(struct golden *g)
{
    for (size_t i = 0; i < g->n_lines; i++)
        json_decref(g->lines[i]);
    free(g->lines);
    cit_context_free(g->ctx);
    cit_model_free(g->model);
    memset(g, 0, sizeof *g);
}

static void golden_load(const char *path, struct golden *g)
{
    memset(g, 0, sizeof *g);
    size_t len;
    char *text = test_read_file(path, &len);
    assert_non_null(text);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (!*line)
            continue;
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (!j)
            fail_msg("%s: bad JSON line %zu: %s", path, g->n_lines + 1, jerr.text);
        g->lines = realloc(g->lines, (g->n_lines + 1) * sizeof *g->lines);
        assert_non_null(g->lines);
        g->lines[g->n_lines++] = j;
    }
    free(text);
    assert_true(g->n_lines > 0);

    /* Every line of a file names the same model. */
    const char *model = json_string_value(json_object_get(g->lines[0], "model"));
    assert_non_null(model);
    char rel[512], err[512] = "";
    snprintf(rel, sizeof rel, "models/%s", model);
    enum cit_status st = cit_model_load(test_shared_path(rel), &g->model, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("%s: %s", model, err);
    struct cit_context_params p = {0};
    st = cit_context_new(g->model, &p, &g->ctx, err, sizeof err);
    if (st != CIT_OK)
        fail_msg("%s: context: %s", model, err);
}

/* Decodes ids[0..n) of sequence 0 from position pos as one batch with
 * logits for the last item; returns those logits. */
static const float *decode_ids(struct cit_context *c, const int32_t *ids, size_t n, int32_t pos)
{
    struct cit_batch_item *items = calloc(n, sizeof *items);
    assert_non_null(items);
    for (size_t i = 0; i < n; i++)
        items[i] = (struct cit_batch_item){.token = ids[i], .pos = pos + (int32_t)i, .seq = 0, .logits = i + 1 == n};
    char err[256] = "";
    enum cit_status st = cit_decode(c, items, n, err, sizeof err);
    free(items);
    if (st != CIT_OK)
        fail_msg("decode: %s", err);
    const float *logits = cit_logits(c, n - 1);
    assert_non_null(logits);
    return logits;
}

/* Prompt ids of a line into a malloc'd array. */
static int32_t *prompt_ids(json_t *line, size_t *n)
{
    json_t *arr = json_object_get(line, "prompt_ids");
    assert_true(json_is_array(arr));
    *n = json_array_size(arr);
    assert_true(*n > 0);
    int32_t *ids = malloc(*n * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

static void log_softmax(const float *logits, size_t n, double *out)
{
    double max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (logits[i] > max)
            max = logits[i];
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - max);
    double lse = max + log(sum);
    for (size_t i = 0; i < n; i++)
        out[i] = (double)logits[i] - lse;
}

struct stats {
    size_t steps, pairs;
    double max, sum;
};

/* Teacher forcing over one line; accumulates differences into st. */
static void force_line(struct golden *g, json_t *line, struct stats *st)
{
    uint32_t n_vocab = cit_model_info(g->model)->n_vocab;
    double *lp = malloc(n_vocab * sizeof *lp);
    assert_non_null(lp);
    size_t n_prompt;
    int32_t *ids = prompt_ids(line, &n_prompt);
    cit_kv_seq_rm(g->ctx, 0, 0);
    const float *logits = decode_ids(g->ctx, ids, n_prompt, 0);
    json_t *steps = json_object_get(line, "steps");
    assert_true(json_is_array(steps));
    int32_t pos = (int32_t)n_prompt;
    for (size_t k = 0; k < json_array_size(steps); k++) {
        json_t *step = json_array_get(steps, k);
        log_softmax(logits, n_vocab, lp);
        json_t *top = json_object_get(step, "top");
        assert_true(json_is_array(top));
        for (size_t t = 0; t < json_array_size(top); t++) {
            json_t *pair = json_array_get(top, t);
            json_int_t id = json_integer_value(json_array_get(pair, 0));
            double want = json_number_value(json_array_get(pair, 1));
            assert_true(id >= 0 && (uint64_t)id < n_vocab);
            double d = fabs(lp[id] - want);
            if (d > st->max)
                st->max = d;
            st->sum += d;
            st->pairs++;
        }
        st->steps++;
        if (k + 1 == json_array_size(steps))
            break;
        int32_t next = (int32_t)json_integer_value(json_object_get(step, "id"));
        logits = decode_ids(g->ctx, &next, 1, pos++);
    }
    free(ids);
    free(lp);
}

static void test_teacher_forcing(void **state)
{
    (void)state;
    glob_t gl;
    assert_int_equal(glob(test_shared_path("golden/*.jsonl"), 0, NULL, &gl), 0);
    assert_true(gl.gl_pathc > 0);
    int failures = 0;
    printf("%-34s %6s %11s %11s   %s\n", "file", "steps", "max diff", "mean diff", "limits (max / mean)");
    for (size_t f = 0; f < gl.gl_pathc; f++) {
        const char *name = base_name(gl.gl_pathv[f]);
        struct golden g;
        golden_load(gl.gl_pathv[f], &g);
        struct stats st = {0};
        for (size_t i = 0; i < g.n_lines; i++)
            force_line(&g, g.lines[i], &st);
        golden_free(&g);
        struct limits lim = limits_for(name);
        double mean = st.pairs ? st.sum / (double)st.pairs : 0.0;
        bool ok = st.pairs > 0 && st.max <= lim.max && mean <= lim.mean;
        failures += !ok;
        printf("%-34s %6zu %11.3e %11.3e   %.2g / %.2g %s\n", name, st.steps, st.max, mean, lim.max, lim.mean,
               ok ? "ok" : "FAIL");
        fflush(stdout);
    }
    globfree(&gl);
    assert_int_equal(failures, 0);
}

static size_t argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void test_free_greedy(void **state)
{
    (void)state;
    struct golden g;
    golden_load(test_shared_path("golden/stories260K-free-greedy.jsonl"), &g);
    uint32_t n_vocab = cit_model_info(g.model)->n_vocab;
    size_t total = 0, matched_lines = 0;
    for (size_t i = 0; i < g.n_lines; i++) {
        size_t n_prompt;
        int32_t *ids = prompt_ids(g.lines[i], &n_prompt);
        cit_kv_seq_rm(g.ctx, 0, 0);
        const float *logits = decode_ids(g.ctx, ids, n_prompt, 0);
        json_t *steps = json_object_get(g.lines[i], "steps");
        int32_t pos = (int32_t)n_prompt;
        size_t k = 0, n_steps = json_array_size(steps);
        for (; k < n_steps; k++) {
            int32_t want = (int32_t)json_integer_value(json_object_get(json_array_get(steps, k), "id"));
            int32_t got = (int32_t)argmax(logits, n_vocab);
            if (got != want) {
                printf("free greedy line %zu: step %zu: got %d, want %d\n", i, k, got, want);
                break;
            }
            if (k + 1 < n_steps)
                logits = decode_ids(g.ctx, &got, 1, pos++);
        }
        total += k;
        matched_lines += k == n_steps;
        free(ids);
    }
    printf("free greedy: %zu / %zu lines reproduced exactly (%zu tokens)\n", matched_lines, g.n_lines, total);
    size_t n_lines = g.n_lines;
    golden_free(&g);
    assert_int_equal(matched_lines, n_lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_greedy),
        cmocka_unit_test(test_teacher_forcing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
