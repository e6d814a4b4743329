/* fuzz_template.c: libFuzzer harness for the Jinja interpreter (citadel/template.h).
 *
 * Two modes, picked by the first byte of the input:
 *  - template mode (anything but '#'): the input up to the first NUL is a
 *    template source, the rest a JSON object of variables (an empty context
 *    when it does not parse). This explores the lexer, parser and evaluator.
 *  - variables mode ('#'): byte 1 picks one of the real chat templates under
 *    $CITADEL_SHARED/templates (parsed once at start-up; a built-in ChatML
 *    template when none are found) and the rest is the JSON context, so
 *    hostile message lists, tools and odd types reach real templates.
 * Budgets are small (steps, memory, output) so each input runs fast; hitting
 * one must be a clean CIT_ERR_LIMIT.
 *
 * Invariants checked (violations abort): a successful render returns a
 * NUL-terminated, valid UTF-8 string of the reported length and renders the
 * same way twice; a failed one returns no output, a known status and a
 * "template..." message that fits the buffer; parse errors likewise.
 * ASan/UBSan catch memory errors and leaks (including reference cycles).
 *
 * Build: CC=clang cmake -S . -B build-fuzz -DCITADEL_FUZZ=ON && cmake --build build-fuzz --target fuzz_template
 * Run:   CITADEL_SHARED=../shared ./build-fuzz/fuzz_template -max_total_time=60 CORPUS_DIR */
#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "citadel/template.h"

#define CHECK(c)                                                                                                           \
    do {                                                                                                                   \
        if (!(c))                                                                                                          \
            abort();                                                                                                       \
    } while (0)

#define MAX_TEMPLATES 64

static struct cit_template *real[MAX_TEMPLATES];
static size_t n_real;

static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 0 : (c >= 0xC2 && c <= 0xDF) ? 1 : (c >= 0xE0 && c <= 0xEF) ? 2 : (c >= 0xF0 && c <= 0xF4) ? 3 : 9;
        if (k == 9 || n - i <= k)
            return k == 0 && i < n;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

static void load_real_templates(void)
{
    const char *base = getenv("CITADEL_SHARED");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/templates", base && *base ? base : "../shared");
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) && n_real < MAX_TEMPLATES) {
        size_t l = strlen(de->d_name);
        if (l < 7 || strcmp(de->d_name + l - 6, ".jinja"))
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char *buf = malloc(1 << 20);
        size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
        fclose(f);
        char err[256];
        if (buf && cit_template_parse(buf, n, &real[n_real], err, sizeof err) == CIT_OK)
            n_real++;
        free(buf);
    }
    if (d)
        closedir(d);
    if (n_real == 0) {
        const char *fb = cit_template_fallback_source();
        char err[256];
        CHECK(cit_template_parse(fb, strlen(fb), &real[0], err, sizeof err) == CIT_OK);
        n_real = 1;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    load_real_templates();
    return 0;
}

static bool known_status(enum cit_status st)
{
    return st == CIT_ERR_FORMAT || st == CIT_ERR_UNSUPPORTED || st == CIT_ERR_NOMEM || st == CIT_ERR_INVALID_ARG ||
           st == CIT_ERR_NOT_FOUND || st == CIT_ERR_TYPE || st == CIT_ERR_RANGE || st == CIT_ERR_LIMIT;
}

static void render_checked(const struct cit_template *t, const json_t *vars, const struct cit_template_options *o)
{
    char err[512], err2[512];
    char *out = (char *)1, *out2 = NULL;
    size_t len = 7, len2 = 0;
    memset(err, 'Z', sizeof err);
    enum cit_status st = cit_template_render(t, vars, o, &out, &len, err, sizeof err);
    if (st != CIT_OK) {
        CHECK(memchr(err, '\0', sizeof err) != NULL);
        CHECK(known_status(st));
        CHECK(out == NULL && len == 0);
        CHECK(strncmp(err, "template", 8) == 0);
        return;
    }
    CHECK(out != NULL && out[len] == '\0');
    CHECK(valid_utf8((const unsigned char *)out, len));
    CHECK(len <= o->limits.max_output);
    /* Deterministic: the same render gives the same bytes. */
    enum cit_status st2 = cit_template_render(t, vars, o, &out2, &len2, err2, sizeof err2);
    CHECK(st2 == CIT_OK && len2 == len && memcmp(out, out2, len) == 0);
    free(out);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cit_template_options o;
    cit_template_options_default(&o);
    o.limits.max_steps = 200000;
    o.limits.max_memory = (size_t)16 << 20;
    o.limits.max_output = (size_t)1 << 20;
    o.limits.max_depth = 200;
    o.now = 1767323045; /* 2026-01-02 03:04:05 UTC */

    if (size >= 2 && data[0] == '#') {
        const struct cit_template *t = real[data[1] % n_real];
        json_error_t je;
        json_t *vars = json_loadb((const char *)data + 2, size - 2, 0, &je);
        if (vars && json_is_object(vars))
            render_checked(t, vars, &o);
        else if (vars && json_is_array(vars)) {
            /* A bare array is a message list for the chat entry point. */
            char *out = NULL, err[512];
            size_t len = 0;
            enum cit_status st = cit_template_render_chat(t, vars, size % 2, "<s>", "</s>", NULL, &o, &out, &len, err,
                                                          sizeof err);
            CHECK(st == CIT_OK ? (out && out[len] == '\0' && valid_utf8((const unsigned char *)out, len))
                               : (out == NULL && known_status(st)));
            free(out);
        }
        json_decref(vars);
        return 0;
    }

    const uint8_t *nul = memchr(data, '\0', size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    struct cit_template *t = NULL;
    char err[512];
    memset(err, 'Z', sizeof err);
    enum cit_status st = cit_template_parse((const char *)data, tlen, &t, err, sizeof err);
    if (st != CIT_OK) {
        CHECK(memchr(err, '\0', sizeof err) != NULL);
        CHECK(t == NULL && known_status(st));
        CHECK(strncmp(err, "template", 8) == 0);
        return 0;
    }
    json_t *vars = NULL;
    if (nul) {
        json_error_t je;
        vars = json_loadb((const char *)nul + 1, size - tlen - 1, 0, &je);
        if (vars && !json_is_object(vars)) {
            json_decref(vars);
            vars = NULL;
        }
    }
    if (!vars)
        vars = json_pack("{s:[{s:s,s:s},{s:s,s:s}],s:b,s:s,s:s}", "messages", "role", "user", "content", "Hi <&>",
                         "role", "assistant", "content", "Hello", "add_generation_prompt", 1, "bos_token", "<s>",
                         "eos_token", "</s>");
    render_checked(t, vars, &o);
    json_decref(vars);
    cit_template_free(t);
    return 0;
}
