/* cmd_template.c: `citadel template`: show the exact prompt a chat template makes.
 *
 * Renders a template (a .jinja file, or the one inside a GGUF model) over a
 * context given as JSON: the same keys as the conformance fixtures
 * (messages, add_generation_prompt, bos_token, eos_token, date_string, and
 * anything else the template reads, such as tools). The rendering goes to
 * stdout byte for byte, with no newline added, so it can be diffed or piped
 * into a tokenizer. Errors (syntax, a raise_exception, a budget) go to stderr
 * with the template line and column. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "citadel/gguf.h"
#include "citadel/template.h"
#include "cli/args.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel template (FILE.jinja | -m MODEL.gguf) [--context FILE.json]\n\n"
            "Prints what a chat template renders for a conversation, exactly: no newline is\n"
            "added, so the output is the prompt text the model would see.\n\n"
            "The context is a JSON object of the template's variables, e.g.\n"
            "  {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}],\n"
            "   \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}\n"
            "Without --context a single user message \"Hello!\" with add_generation_prompt is used.\n"
            "With -m, bos_token and eos_token default to the model's own token texts, and a\n"
            "model without a template gets the ChatML fallback (noted on stderr).\n\n"
            "options:\n"
            "  -m, --model FILE     take the template from a GGUF model (tokenizer.chat_template)\n"
            "  -c, --context FILE   JSON object of variables ('-' reads stdin)\n"
            "      --now SECONDS    clock for strftime_now, Unix time in UTC (default: now)\n"
            "      --check          only parse the template and report errors\n"
            "  -h, --help           this help\n");
}

/* Reads a whole file (or stdin for "-") up to max bytes. */
static char *read_all(const char *path, size_t max, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "citadel template: cannot open '%s'\n", path);
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap >= max)
                break;
            cap = cap * 2 > max ? max : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    bool too_big = buf && n == cap && cap >= max && !feof(f);
    if (f != stdin)
        fclose(f);
    if (!buf) {
        fprintf(stderr, "citadel template: out of memory reading '%s'\n", path);
        return NULL;
    }
    if (too_big) {
        fprintf(stderr, "citadel template: '%s' is larger than %zu bytes\n", path, max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static json_t *default_context(void)
{
    return json_pack("{s:[{s:s,s:s}],s:b}", "messages", "role", "user", "content", "Hello!", "add_generation_prompt", 1);
}

int cmd_template(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"context", required_argument, NULL, 'c'},
        {"now", required_argument, NULL, 'n'},   {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *ctx_path = NULL;
    bool check_only = false;
    struct cit_template_options topts;
    cit_template_options_default(&topts);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': ctx_path = optarg; break;
        case 'k': check_only = true; break;
        case 'n': {
            long long v;
            if (!arg_int("--now", optarg, 1, (long long)1 << 40, &v))
                return 2;
            topts.now = v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    const char *file = optind < argc ? argv[optind] : NULL;
    if ((file == NULL) == (model == NULL) || optind + (file ? 1 : 0) < argc) {
        fprintf(stderr, "citadel template: give either a template FILE or -m MODEL.gguf\n\n");
        usage(stderr);
        return 2;
    }

    char err[1024];
    struct cit_template *t = NULL;
    if (model) {
        struct cit_gguf *g = NULL;
        if (cit_gguf_open(model, &g, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "citadel template: %s: %s\n", model, err);
            return 1;
        }
        enum cit_status st = cit_template_from_gguf(g, &t, err, sizeof err);
        cit_gguf_free(g);
        if (st != CIT_OK) {
            fprintf(stderr, "citadel template: %s: %s\n", model, err);
            return 1;
        }
        if (cit_template_is_fallback(t))
            fprintf(stderr, "citadel template: %s has no chat template; using the ChatML fallback\n", model);
    } else {
        size_t len = 0;
        char *src = read_all(file, CIT_TEMPLATE_MAX_SOURCE, &len);
        if (!src)
            return 1;
        enum cit_status st = cit_template_parse(src, len, &t, err, sizeof err);
        free(src);
        if (st != CIT_OK) {
            fprintf(stderr, "citadel template: %s: %s\n", file, err);
            return 1;
        }
    }
    if (check_only) {
        fprintf(stderr, "citadel template: %s parses\n", file ? file : model);
        cit_template_free(t);
        return 0;
    }

    json_t *ctx = NULL;
    if (ctx_path) {
        size_t len = 0;
        char *text = read_all(ctx_path, (size_t)256 << 20, &len);
        if (!text) {
            cit_template_free(t);
            return 1;
        }
        json_error_t je;
        ctx = json_loadb(text, len, 0, &je);
        free(text);
        if (!ctx || !json_is_object(ctx)) {
            if (ctx)
                fprintf(stderr, "citadel template: %s: the context must be a JSON object\n", ctx_path);
            else
                fprintf(stderr, "citadel template: %s:%d:%d: %s\n", ctx_path, je.line, je.column, je.text);
            json_decref(ctx);
            cit_template_free(t);
            return 1;
        }
    } else {
        ctx = default_context();
    }
    /* The model's BOS/EOS texts unless the context names its own. */
    if (!ctx || (!json_object_get(ctx, "bos_token") &&
                 json_object_set_new(ctx, "bos_token", json_string(cit_template_bos(t)))) ||
        (!json_object_get(ctx, "eos_token") && json_object_set_new(ctx, "eos_token", json_string(cit_template_eos(t))))) {
        fprintf(stderr, "citadel template: out of memory\n");
        json_decref(ctx);
        cit_template_free(t);
        return 1;
    }

    char *out = NULL;
    size_t outlen = 0;
    enum cit_status st = cit_template_render(t, ctx, &topts, &out, &outlen, err, sizeof err);
    json_decref(ctx);
    cit_template_free(t);
    if (st != CIT_OK) {
        fprintf(stderr, "citadel template: %s\n", err);
        return 1;
    }
    int rc = fwrite(out, 1, outlen, stdout) == outlen && fflush(stdout) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "citadel template: writing the output failed\n");
    free(out);
    return rc;
}
