/* test_templates.c: real chat templates vs the reference Jinja2 engine.
 *
 * For every ../shared/templates/NAME.jinja, each line of NAME.expected.jsonl
 * holds a context (messages, add_generation_prompt, bos_token, eos_token,
 * date_string) and either the exact text Jinja2 rendered or the error it
 * raised. Every template must parse; every expected text must come out byte
 * for byte (through both the generic and the chat entry points); every
 * refused fixture must be refused, with the reference's message inside ours.
 * The clock is fixed to 2026-01-02 03:04:05 as the reference's was. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "citadel/template.h"
#include "support.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void fixed_clock(struct cit_template_options *o)
{
    cit_template_options_default(o);
    struct tm tm = {.tm_year = 2026 - 1900, .tm_mon = 0, .tm_mday = 2, .tm_hour = 3, .tm_min = 4, .tm_sec = 5};
    o->now = (int64_t)timegm(&tm);
}

/* Shows where two renderings first differ. */
static void show_diff(const char *what, const char *want, size_t wn, const char *got, size_t gn)
{
    size_t i = 0;
    while (i < wn && i < gn && want[i] == got[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "%s: first difference at byte %zu\n  want: %.*s\n  got:  %.*s\n", what, i,
            (int)((wn - from) > 120 ? 120 : wn - from), want + from, (int)((gn - from) > 120 ? 120 : gn - from),
            got + from);
}

static void test_fixtures(void **state)
{
    (void)state;
    const char *dir = test_shared_path("templates");
    char dirpath[4096];
    snprintf(dirpath, sizeof dirpath, "%s", dir);
    DIR *d = opendir(dirpath);
    assert_non_null(d);
    char *names[256];
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 256) {
        size_t l = strlen(de->d_name);
        if (l > 6 && strcmp(de->d_name + l - 6, ".jinja") == 0)
            names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    assert_true(nn > 0);

    struct cit_template_options opts;
    fixed_clock(&opts);
    int total = 0, passed = 0, refused_total = 0, refused_ok = 0;
    for (size_t k = 0; k < nn; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dirpath, names[k]);
        size_t srclen;
        char *src = test_read_file(path, &srclen);
        assert_non_null(src);
        char err[1024] = "";
        struct cit_template *t = NULL;
        enum cit_status st = cit_template_parse(src, srclen, &t, err, sizeof err);
        if (st != CIT_OK)
            fprintf(stderr, "%s: parse failed: %s\n", names[k], err);
        assert_int_equal(st, CIT_OK);

        snprintf(path + strlen(path) - 6, 32, ".expected.jsonl");
        size_t jl;
        char *lines = test_read_file(path, &jl);
        assert_non_null(lines);
        char *save = NULL;
        for (char *line = strtok_r(lines, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            json_error_t jerr;
            json_t *fx = json_loads(line, 0, &jerr);
            assert_non_null(fx);
            const char *fname = json_string_value(json_object_get(fx, "fixture"));
            json_t *ctx = json_object_get(fx, "context");
            json_t *expected = json_object_get(fx, "expected");
            const char *ref_err = json_string_value(json_object_get(fx, "error"));
            total++;
            char *out = NULL;
            size_t outlen = 0;
            err[0] = '\0';
            st = cit_template_render(t, ctx, &opts, &out, &outlen, err, sizeof err);

            /* The chat entry point must agree with the generic one. */
            json_t *extra = json_deep_copy(ctx);
            json_object_del(extra, "messages");
            json_object_del(extra, "add_generation_prompt");
            json_object_del(extra, "bos_token");
            json_object_del(extra, "eos_token");
            char *out2 = NULL, err2[1024] = "";
            size_t outlen2 = 0;
            enum cit_status st2 = cit_template_render_chat(
                t, json_object_get(ctx, "messages"), json_is_true(json_object_get(ctx, "add_generation_prompt")),
                json_string_value(json_object_get(ctx, "bos_token")), json_string_value(json_object_get(ctx, "eos_token")),
                extra, &opts, &out2, &outlen2, err2, sizeof err2);
            json_decref(extra);

            bool ok;
            if (expected) {
                const char *want = json_string_value(expected);
                size_t wn = json_string_length(expected);
                ok = st == CIT_OK && outlen == wn && memcmp(out, want, wn) == 0 && st2 == CIT_OK && outlen2 == wn &&
                     memcmp(out2, want, wn) == 0;
                if (!ok) {
                    fprintf(stderr, "FAIL %s [%s]: status %d (%s)\n", names[k], fname, st, err);
                    if (st == CIT_OK)
                        show_diff("render", want, wn, out, outlen);
                    if (st2 == CIT_OK && st == CIT_OK && (outlen2 != outlen || memcmp(out, out2, outlen)))
                        show_diff("render_chat", want, wn, out2, outlen2);
                }
            } else {
                /* "UndefinedError: 'functions' is undefined" -> our message must carry the part after ": ". */
                const char *why = ref_err ? strstr(ref_err, ": ") : NULL;
                why = why ? why + 2 : (ref_err ? ref_err : "");
                refused_total++;
                ok = st != CIT_OK && out == NULL && strstr(err, why) != NULL && st2 == st;
                if (ok)
                    refused_ok++;
                else
                    fprintf(stderr, "FAIL %s [%s]: wanted an error containing \"%s\", got status %d: %s\n", names[k],
                            fname, why, st, err);
            }
            passed += ok;
            free(out);
            free(out2);
            json_decref(fx);
        }
        free(lines);
        free(src);
        cit_template_free(t);
        free(names[k]);
    }
    printf("template fixtures: %d/%d passed (%d/%d refusals matched) over %zu templates\n", passed, total, refused_ok,
           refused_total, nn);
    assert_int_equal(passed, total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
