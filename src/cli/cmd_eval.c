/* cmd_eval.c: `citadel eval`: perplexity of a model on a text or on seeded
 * random tokens, and, given its f32 source with --base, the KL divergence
 * of the model's next-token distributions from the source's, top-1
 * agreement and the perplexity ratio. The measurement is the library's
 * (citadel/eval.h); this file reads options, gets the tokens, and prints a
 * table or JSON on stdout. Progress goes to stderr, only when it is a
 * terminal. */
#include <getopt.h>
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "citadel/eval.h"
#include "citadel/model.h"
#include "citadel/tokenizer.h"
#include "cli/args.h"
#include "cli/cli.h"

#define EVAL_DEFAULT_SEED 1u
#define EVAL_MAX_RANDOM (1ll << 26)
#define EVAL_MAX_FILE ((size_t)1 << 28)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel eval -m MODEL.gguf [--base F32.gguf] (-f TEXT_FILE | --random-tokens N) [options]\n\n"
            "Measures how well MODEL predicts a token sequence (perplexity) and, with --base,\n"
            "how far its next-token distributions are from those of BASE (usually the f32 file\n"
            "MODEL was quantized from): KL(P_base || P_model) per position, top-1 agreement\n"
            "and the perplexity ratio. Both models see exactly the same tokens and windows.\n\n"
            "The tokens are cut into consecutive windows of CTX positions (BOS first when the\n"
            "model's tokenizer adds one); the first half of each window is context and the\n"
            "predictions in the second half are scored. See docs/eval.md.\n\n"
            "options:\n"
            "  -m, --model FILE        GGUF model to evaluate (required)\n"
            "      --base FILE         reference model (same vocabulary) for KL divergence\n"
            "  -f, --file FILE         text to evaluate on, tokenized with MODEL's tokenizer\n"
            "      --random-tokens N   evaluate on N random ordinary tokens instead (uniform over\n"
            "                          the vocabulary without control/unknown/unused tokens); for\n"
            "                          random-weight models, whose text perplexity means nothing\n"
            "  -s, --seed S            seed of --random-tokens (default %u)\n"
            "  -c, --ctx N             window size in positions (default 128, at least %u)\n"
            "      --chunks N          evaluate at most N windows (default: all whole windows)\n"
            "  -t, --threads N         worker threads per model (default: physical cores)\n"
            "  -o, --output FMT        text (default) or json\n"
            "  -h, --help              this help\n\n"
            "exit status: 0 done, 1 the evaluation failed, 2 bad usage\n",
            EVAL_DEFAULT_SEED, CIT_EVAL_MIN_CTX);
}

struct eval_opts {
    const char *model, *base, *file;
    long long n_random, n_ctx, n_chunks, n_threads;
    uint64_t seed;
    int seed_given, json;
};

static int parse(int argc, char **argv, struct eval_opts *o)
{
    enum { O_BASE = 256, O_RANDOM, O_CHUNKS };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"base", required_argument, NULL, O_BASE},
        {"file", required_argument, NULL, 'f'}, {"random-tokens", required_argument, NULL, O_RANDOM},
        {"seed", required_argument, NULL, 's'}, {"ctx", required_argument, NULL, 'c'},
        {"chunks", required_argument, NULL, O_CHUNKS}, {"threads", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:f:s:c:t:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case O_BASE: o->base = optarg; break;
        case 'f': o->file = optarg; break;
        case O_RANDOM: if (!arg_int("--random-tokens", optarg, 1, EVAL_MAX_RANDOM, &o->n_random)) return 2; break;
        case 's': if (!arg_u64("--seed", optarg, &o->seed)) return 2; o->seed_given = 1; break;
        case 'c': if (!arg_int("--ctx", optarg, CIT_EVAL_MIN_CTX, 1 << 24, &o->n_ctx)) return 2; break;
        case O_CHUNKS: if (!arg_int("--chunks", optarg, 1, UINT32_MAX, &o->n_chunks)) return 2; break;
        case 't': if (!arg_int("--threads", optarg, 1, 1024, &o->n_threads)) return 2; break;
        case 'o':
            if (!strcmp(optarg, "json"))
                o->json = 1;
            else if (!strcmp(optarg, "text"))
                o->json = 0;
            else {
                fprintf(stderr, "citadel eval: --output expects text or json, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "citadel eval: unexpected argument '%s' (the text file goes after -f)\n", argv[optind]);
        return 2;
    }
    if (!o->model) {
        fprintf(stderr, "citadel eval: no model given: use -m MODEL.gguf (see citadel eval --help)\n");
        return 2;
    }
    if (!o->file == !o->n_random) {
        fprintf(stderr, "citadel eval: give the tokens with exactly one of -f TEXT_FILE or --random-tokens N\n");
        return 2;
    }
    if (o->seed_given && !o->n_random) {
        fprintf(stderr, "citadel eval: --seed only applies to --random-tokens\n");
        return 2;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct progress {
    double t0;
    int tty;
};

static void on_progress(void *arg, size_t done, size_t total)
{
    struct progress *pr = arg;
    if (!pr->tty)
        return;
    double el = now_s() - pr->t0;
    double eta = done ? el * (double)(total - done) / (double)done : 0.0;
    fprintf(stderr, "\r\033[Kcitadel eval: window %zu/%zu (%3.0f%%), %.1f s left", done, total,
            100.0 * (double)done / (double)total, eta);
    if (done == total)
        fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

/* Loads a model and its tokenizer, naming the option on failure. */
static int load(const char *opt, const char *path, struct cit_model **m, struct cit_tokenizer **tok)
{
    char err[1024];
    if (cit_model_load(path, m, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel eval: %s %s: cannot load: %s\n", opt, path, err);
        return 1;
    }
    if (cit_tokenizer_load(cit_model_gguf(*m), tok, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel eval: %s %s: tokenizer: %s\n", opt, path, err);
        return 1;
    }
    return 0;
}

/* The tokens to evaluate on (malloc'd), from the file or the seeded generator. */
static int32_t *get_tokens(const struct eval_opts *o, const struct cit_tokenizer *tok,
                           const struct cit_tokenizer *base_tok, size_t *n)
{
    char err[1024];
    int32_t *ids = NULL;
    if (o->n_random) {
        ids = malloc((size_t)o->n_random * sizeof *ids);
        if (!ids) {
            fprintf(stderr, "citadel eval: out of memory for %lld tokens\n", o->n_random);
            return NULL;
        }
        if (cit_eval_random_tokens(tok, o->seed, ids, (size_t)o->n_random, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "citadel eval: --random-tokens: %s\n", err);
            free(ids);
            return NULL;
        }
        *n = (size_t)o->n_random;
        return ids;
    }
    size_t len = 0;
    char *text = cli_read_file("eval", "text file", o->file, EVAL_MAX_FILE, &len);
    if (!text)
        return NULL;
    /* BOS goes at the start of every window, not in the text */
    if (cit_tokenize_alloc(tok, text, len, false, false, &ids, n, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel eval: cannot tokenize %s: %s\n", o->file, err);
        free(text);
        return NULL;
    }
    if (base_tok) {
        int32_t *bids = NULL;
        size_t bn = 0;
        if (cit_tokenize_alloc(base_tok, text, len, false, false, &bids, &bn, err, sizeof err) != CIT_OK ||
            bn != *n || (bn && memcmp(bids, ids, bn * sizeof *ids))) {
            fprintf(stderr, "citadel eval: --base %s tokenizes %s differently from -m %s: the models do not share "
                            "a tokenizer\n", o->base, o->file, o->model);
            free(bids);
            free(ids);
            free(text);
            return NULL;
        }
        free(bids);
    }
    free(text);
    return ids;
}

static json_t *ppl_json(const struct cit_eval_ppl *p)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "ppl", p->ppl, "ppl_se", p->ppl_se, "nll", p->nll_mean, "nll_se",
                     p->nll_se);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void print_text(const struct eval_opts *o, size_t n_tokens, const struct cit_eval_params *p,
                       size_t n_windows, const struct cit_eval_ppl *test, const struct cit_eval_kl *kl)
{
    printf("model:       %s\n", o->model);
    if (o->base)
        printf("base:        %s\n", o->base);
    if (o->n_random)
        printf("tokens:      %zu random (seed %" PRIu64 ")\n", n_tokens, o->seed);
    else
        printf("tokens:      %zu from %s\n", n_tokens, o->file);
    printf("windows:     %zu of %u positions%s, %zu scored tokens\n", n_windows, p->n_ctx,
           p->bos >= 0 ? " (BOS first)" : "", test->n);
    printf("\n%-14s %14s %12s\n", "", "value", "std. error");
    if (kl) {
        printf("%-14s %14.6g %12.3g\n", "ppl base", kl->base.ppl, kl->base.ppl_se);
        printf("%-14s %14.6g %12.3g\n", "ppl model", kl->test.ppl, kl->test.ppl_se);
        printf("%-14s %14.6f %12.3g\n", "ppl ratio", kl->ppl_ratio, kl->ppl_ratio_se);
        printf("%-14s %14.6g %12.3g\n", "KL mean", kl->kl_mean, kl->kl_se);
        printf("%-14s %14.6g\n", "KL median", kl->kl_median);
        printf("%-14s %14.6g\n", "KL p99", kl->kl_p99);
        printf("%-14s %14.6g\n", "KL max", kl->kl_max);
        printf("%-14s %13.3f%%\n", "top-1 agree", 100.0 * kl->top1);
        printf("\nKL in nats per token: KL(P_base || P_model)\n");
    } else {
        printf("%-14s %14.6g %12.3g\n", "perplexity", test->ppl, test->ppl_se);
        printf("%-14s %14.6g %12.3g\n", "nll (nats)", test->nll_mean, test->nll_se);
    }
}

static int print_json(const struct eval_opts *o, size_t n_tokens, const struct cit_eval_params *p,
                      size_t n_windows, const struct cit_eval_ppl *test, const struct cit_eval_kl *kl,
                      double seconds)
{
    json_t *j = json_object();
    json_t *src = o->n_random ? json_pack("{s:s, s:I}", "kind", "random", "seed", (json_int_t)o->seed)
                              : json_pack("{s:s, s:s}", "kind", "file", "path", o->file);
    if (!j || !src) {
        json_decref(j);
        json_decref(src);
        fprintf(stderr, "citadel eval: out of memory\n");
        return 1;
    }
    json_object_set_new(j, "model", json_string(base_name(o->model)));
    json_object_set_new(j, "model_path", json_string(o->model));
    if (o->base) {
        json_object_set_new(j, "base", json_string(base_name(o->base)));
        json_object_set_new(j, "base_path", json_string(o->base));
    }
    json_object_set_new(j, "tokens", src);
    json_object_set_new(j, "n_tokens", json_integer((json_int_t)n_tokens));
    json_object_set_new(j, "n_ctx", json_integer(p->n_ctx));
    json_object_set_new(j, "bos", json_boolean(p->bos >= 0));
    json_object_set_new(j, "n_windows", json_integer((json_int_t)n_windows));
    json_object_set_new(j, "n_scored", json_integer((json_int_t)test->n));
    json_object_set_new(j, "test", ppl_json(kl ? &kl->test : test));
    if (kl) {
        json_object_set_new(j, "base_ppl", ppl_json(&kl->base));
        json_object_set_new(j, "ppl_ratio", json_real(kl->ppl_ratio));
        json_object_set_new(j, "ppl_ratio_se", json_real(kl->ppl_ratio_se));
        json_object_set_new(j, "kl", json_pack("{s:f, s:f, s:f, s:f, s:f}", "mean", kl->kl_mean, "se", kl->kl_se,
                                               "median", kl->kl_median, "p99", kl->kl_p99, "max", kl->kl_max));
        json_object_set_new(j, "top1", json_real(kl->top1));
    }
    json_object_set_new(j, "seconds", json_real(seconds));
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s) {
        fprintf(stderr, "citadel eval: out of memory\n");
        return 1;
    }
    puts(s);
    free(s);
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    struct eval_opts o = {.n_ctx = 128, .seed = EVAL_DEFAULT_SEED};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;

    char err[1024];
    struct cit_model *model = NULL, *base = NULL;
    struct cit_tokenizer *tok = NULL, *base_tok = NULL;
    int32_t *ids = NULL;
    double *lp = NULL;
    size_t n_ids = 0;
    rc = 1;

    if (load("-m", o.model, &model, &tok) || (o.base && load("--base", o.base, &base, &base_tok)))
        goto out;
    if (base && cit_model_info(base)->n_vocab != cit_model_info(model)->n_vocab) {
        fprintf(stderr, "citadel eval: --base %s has a vocabulary of %u tokens but -m %s has %u\n", o.base,
                cit_model_info(base)->n_vocab, o.model, cit_model_info(model)->n_vocab);
        goto out;
    }
    ids = get_tokens(&o, tok, base_tok, &n_ids);
    if (!ids)
        goto out;

    struct cit_eval_params p;
    cit_eval_params_default(&p);
    p.n_ctx = (uint32_t)o.n_ctx;
    p.n_chunks = (uint32_t)o.n_chunks;
    p.n_threads = (uint32_t)o.n_threads;
    p.bos = cit_tokenizer_add_bos(tok) ? cit_tokenizer_bos(tok) : CIT_EVAL_NO_BOS;
    uint32_t n_train = cit_model_info(model)->n_ctx_train;
    if (base && cit_model_info(base)->n_ctx_train < n_train)
        n_train = cit_model_info(base)->n_ctx_train;
    if (p.n_ctx > n_train) {
        fprintf(stderr, "citadel eval: --ctx %u is above the model's training context of %u\n", p.n_ctx, n_train);
        goto out;
    }
    size_t n_windows = 0, n_scored = 0;
    if (cit_eval_count(&p, n_ids, &n_windows, &n_scored, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel eval: %s\n", err);
        goto out;
    }
    if (n_windows == 0) {
        fprintf(stderr, "citadel eval: %zu tokens do not fill one window of --ctx %u: give more text or a smaller "
                        "--ctx\n", n_ids, p.n_ctx);
        rc = o.n_random ? 2 : 1;
        goto out;
    }
    struct progress pr = {.t0 = now_s(), .tty = isatty(STDERR_FILENO)};
    p.progress = on_progress;
    p.progress_arg = &pr;

    struct cit_eval_ppl test = {0};
    struct cit_eval_kl kl = {0};
    if (base) {
        if (cit_eval_kl(base, model, ids, n_ids, &p, &kl, NULL, 0, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "citadel eval: %s\n", err);
            goto out;
        }
        test = kl.test;
    } else {
        lp = malloc((n_scored ? n_scored : 1) * sizeof *lp);
        size_t n_out = 0;
        if (!lp) {
            fprintf(stderr, "citadel eval: out of memory for %zu log-probabilities\n", n_scored);
            goto out;
        }
        if (cit_eval_logprobs(model, ids, n_ids, &p, lp, n_scored, NULL, NULL, &n_out, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "citadel eval: %s\n", err);
            goto out;
        }
        cit_eval_ppl_summary(lp, n_out, &test);
    }
    double secs = now_s() - pr.t0;
    if (o.json) {
        rc = print_json(&o, n_ids, &p, n_windows, &test, base ? &kl : NULL, secs);
    } else {
        print_text(&o, n_ids, &p, n_windows, &test, base ? &kl : NULL);
        rc = 0;
    }
    fprintf(stderr, "citadel eval: %zu windows x %u positions%s in %.2f s\n", n_windows, p.n_ctx,
            base ? " x 2 models" : "", secs);
out:
    free(lp);
    free(ids);
    cit_tokenizer_free(base_tok);
    cit_tokenizer_free(tok);
    cit_model_free(base);
    cit_model_free(model);
    return rc;
}
