/* cmd_run.c: `citadel run`: load a model, tokenize a prompt, generate with
 * the sampler chain and stream the text to stdout as it is produced. Speed
 * figures go to stderr so stdout holds only text. */
#include <getopt.h>
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "citadel/gguf.h"
#include "citadel/model.h"
#include "citadel/sampler.h"
#include "citadel/template.h"
#include "citadel/tokenizer.h"
#include "cli/args.h"
#include "cli/cli.h"

#define RUN_DEFAULT_MAX_CTX 4096u
#define RUN_BATCH 512u

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel run -m MODEL.gguf (-p TEXT | -f FILE) [options]\n\n"
            "Generates text from a prompt and streams it to stdout; speed goes to stderr.\n\n"
            "options:\n"
            "  -m, --model FILE          GGUF model to load (required)\n"
            "  -p, --prompt TEXT         prompt text\n"
            "  -f, --file FILE           read the prompt from FILE\n"
            "  -n, --n-predict N         tokens to generate (default 128; stops early at end of text)\n"
            "  -c, --ctx N               context size in tokens (default: training context, at most %u)\n"
            "  -t, --threads N           worker threads (default: physical cores)\n"
            "      --temp T              temperature, 0 = greedy (default 0.8)\n"
            "      --top-k K             keep the K most likely tokens, 0 = off (default 40)\n"
            "      --top-p P             nucleus sampling, 1 = off (default 0.95)\n"
            "      --min-p P             drop tokens below P x the top probability, 0 = off (default 0.05)\n"
            "      --repeat-penalty R    penalise recent tokens, 1 = off (default 1.0)\n"
            "      --repeat-last-n N     penalty window in tokens, -1 = all (default 64)\n"
            "      --presence-penalty P  (default 0)\n"
            "      --frequency-penalty P (default 0)\n"
            "  -s, --seed S              random seed; the same seed gives the same text (default: from the clock, printed)\n"
            "      --ignore-eos          keep generating past end-of-text tokens\n"
            "      --no-echo             do not print the prompt before the generated text\n"
            "      --chat                treat the prompt as a user message and render it with the model's\n"
            "                            chat template (ChatML when the model has none; see docs/templates.md)\n"
            "      --system TEXT         system message for --chat\n"
            "      --repack              copy Q4_0 / Q8_0 / Q4_K / Q6_K weights into the interleaved layout\n"
            "                            of the SIMD decode kernels at load: same text; faster generation\n"
            "                            on some CPUs, slower on others (measure with citadel bench\n"
            "                            --repack; docs/engine.md)\n"
            "  -h, --help                this help\n",
            RUN_DEFAULT_MAX_CTX);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct run_opts {
    const char *model, *prompt, *prompt_file, *system;
    long long n_predict, n_ctx, n_threads;
    struct cit_sampler_params sp;
    int seed_given, ignore_eos, echo, chat, repack;
};

static int parse(int argc, char **argv, struct run_opts *o)
{
    enum { O_TEMP = 256, O_TOPK, O_TOPP, O_MINP, O_REP, O_REPN, O_PRES, O_FREQ, O_IGN, O_NOECHO, O_CHAT, O_SYSTEM, O_REPACK };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"prompt", required_argument, NULL, 'p'},
        {"file", required_argument, NULL, 'f'}, {"n-predict", required_argument, NULL, 'n'},
        {"ctx", required_argument, NULL, 'c'}, {"threads", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 's'}, {"temp", required_argument, NULL, O_TEMP},
        {"top-k", required_argument, NULL, O_TOPK}, {"top-p", required_argument, NULL, O_TOPP},
        {"min-p", required_argument, NULL, O_MINP}, {"repeat-penalty", required_argument, NULL, O_REP},
        {"repeat-last-n", required_argument, NULL, O_REPN},
        {"presence-penalty", required_argument, NULL, O_PRES},
        {"frequency-penalty", required_argument, NULL, O_FREQ},
        {"ignore-eos", no_argument, NULL, O_IGN}, {"no-echo", no_argument, NULL, O_NOECHO},
        {"chat", no_argument, NULL, O_CHAT}, {"system", required_argument, NULL, O_SYSTEM},
        {"repack", no_argument, NULL, O_REPACK},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    long long v;
    double d;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:f:n:c:t:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'f': o->prompt_file = optarg; break;
        case 'n': if (!arg_int("--n-predict", optarg, 0, 1 << 24, &o->n_predict)) return 2; break;
        case 'c': if (!arg_int("--ctx", optarg, 1, 1 << 24, &o->n_ctx)) return 2; break;
        case 't': if (!arg_int("--threads", optarg, 1, 1024, &o->n_threads)) return 2; break;
        case 's': if (!arg_u64("--seed", optarg, &o->sp.seed)) return 2; o->seed_given = 1; break;
        case O_TEMP: if (!arg_float("--temp", optarg, 0, 100, &d)) return 2; o->sp.temperature = (float)d; break;
        case O_TOPK: if (!arg_int("--top-k", optarg, 0, INT32_MAX, &v)) return 2; o->sp.top_k = (int32_t)v; break;
        case O_TOPP: if (!arg_float("--top-p", optarg, 1e-9, 1, &d)) return 2; o->sp.top_p = (float)d; break;
        case O_MINP: if (!arg_float("--min-p", optarg, 0, 1, &d)) return 2; o->sp.min_p = (float)d; break;
        case O_REP: if (!arg_float("--repeat-penalty", optarg, 1e-6, 100, &d)) return 2; o->sp.repeat_penalty = (float)d; break;
        case O_REPN: if (!arg_int("--repeat-last-n", optarg, -1, CIT_SAMPLER_MAX_PENALTY_WINDOW, &v)) return 2; o->sp.penalty_last_n = (int32_t)v; break;
        case O_PRES: if (!arg_float("--presence-penalty", optarg, -100, 100, &d)) return 2; o->sp.presence_penalty = (float)d; break;
        case O_FREQ: if (!arg_float("--frequency-penalty", optarg, -100, 100, &d)) return 2; o->sp.frequency_penalty = (float)d; break;
        case O_IGN: o->ignore_eos = 1; break;
        case O_NOECHO: o->echo = 0; break;
        case O_CHAT: o->chat = 1; break;
        case O_SYSTEM: o->system = optarg; break;
        case O_REPACK: o->repack = 1; break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "citadel run: unexpected argument '%s' (the prompt goes after -p)\n", argv[optind]);
        return 2;
    }
    if (!o->model) {
        fprintf(stderr, "citadel run: no model given: use -m MODEL.gguf (see citadel run --help)\n");
        return 2;
    }
    if (o->system && !o->chat) {
        fprintf(stderr, "citadel run: --system needs --chat\n");
        return 2;
    }
    if (!o->prompt == !o->prompt_file) {
        fprintf(stderr, "citadel run: give the prompt with exactly one of -p TEXT or -f FILE\n");
        return 2;
    }
    return 0;
}

/* Renders [system?, user] through the model's chat template (parsed here,
 * so a broken template is reported before any generation) into a malloc'd
 * prompt (the BOS is added at tokenization when the template does not write it). */
static char *render_chat(const struct cit_model *model, const char *system, const char *user, size_t user_len,
                         size_t *out_len)
{
    char err[1024];
    struct cit_template *t = NULL;
    char *out = NULL;
    json_t *msgs = json_array();
    json_t *u = json_stringn(user, user_len);
    if (!msgs || !u) {
        fprintf(stderr, "citadel run: out of memory\n");
        json_decref(u);
        goto done;
    }
    if (system)
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", system));
    json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", "user", "content", u));
    if (cit_template_from_gguf(cit_model_gguf(model), &t, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel run: the model's chat template cannot be used: %s\n", err);
        goto done;
    }
    if (cit_template_is_fallback(t))
        fprintf(stderr, "citadel run: the model has no chat template; using the ChatML fallback\n");
    if (cit_template_render_chat(t, msgs, true, NULL, NULL, NULL, NULL, &out, out_len, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel run: chat template: %s\n", err);
        out = NULL;
    }
done:
    cit_template_free(t);
    json_decref(msgs);
    return out;
}

/* Streams the piece of one token through the UTF-8-aware detokenizer. */
static void emit(struct cit_detok *dt, int32_t id, char *buf, size_t cap)
{
    size_t n = 0;
    if (cit_detok_push(dt, id, buf, cap, &n, NULL, 0) == CIT_OK && n) {
        fwrite(buf, 1, n, stdout);
        fflush(stdout);
    }
}

int cmd_run(int argc, char **argv)
{
    struct run_opts o = {.n_predict = 128, .echo = 1};
    cit_sampler_params_default(&o.sp);
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!o.seed_given)
        o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    char err[1024];
    struct cit_model *model = NULL;
    struct cit_tokenizer *tok = NULL;
    struct cit_context *ctx = NULL;
    struct cit_sampler *smp = NULL;
    int32_t *ids = NULL;
    struct cit_batch_item *batch = NULL;
    char *text = NULL, *piece = NULL;
    size_t text_len = 0, n_ids = 0;
    rc = 1;

    double t0 = now_s();
    if (cit_model_load(o.model, &model, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel run: cannot load %s: %s\n", o.model, err);
        goto out;
    }
    if (o.repack && !cli_repack("run", model, (unsigned)o.n_threads))
        goto out;
    if (cit_tokenizer_load(cit_model_gguf(model), &tok, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel run: %s: tokenizer: %s\n", o.model, err);
        goto out;
    }
    const struct cit_model_info *info = cit_model_info(model);
    uint32_t n_ctx = o.n_ctx ? (uint32_t)o.n_ctx
                             : (info->n_ctx_train < RUN_DEFAULT_MAX_CTX ? info->n_ctx_train : RUN_DEFAULT_MAX_CTX);
    struct cit_context_params cp = {.n_ctx = n_ctx, .n_seq_max = 1, .n_batch_max = RUN_BATCH,
                                    .n_threads = (uint32_t)o.n_threads};
    if (cit_context_new(model, &cp, &ctx, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel run: cannot create a context of %u tokens: %s\n", n_ctx, err);
        goto out;
    }
    if (cit_sampler_new(&o.sp, (int32_t)info->n_vocab, &smp, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel run: sampler: %s\n", err);
        goto out;
    }
    double t_load = now_s() - t0;

    if (o.prompt_file) {
        text = cli_read_file("run", "prompt file", o.prompt_file, ((size_t)1 << 28), &text_len);
        if (!text)
            goto out;
    }
    const char *prompt = o.prompt_file ? text : o.prompt;
    size_t prompt_len = o.prompt_file ? text_len : strlen(o.prompt);
    if (o.chat) {
        size_t chat_len = 0;
        char *chat = render_chat(model, o.system, prompt, prompt_len, &chat_len);
        if (!chat)
            goto out;
        free(text);
        text = chat;
        prompt = chat;
        prompt_len = chat_len;
    }
    /* One BOS, whether or not a rendered template writes it (as citadel serve). */
    if (cit_tokenize_prompt(tok, prompt, prompt_len, &ids, &n_ids, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel run: cannot tokenize the prompt: %s\n", err);
        goto out;
    }
    if (n_ids == 0) {
        fprintf(stderr, "citadel run: the prompt is empty and the model adds no BOS token: give some text\n");
        goto out;
    }
    if (n_ids >= n_ctx) {
        fprintf(stderr, "citadel run: the prompt has %zu tokens but the context holds %u: shorten it or raise -c\n",
                n_ids, n_ctx);
        goto out;
    }
    long long room = (long long)n_ctx - (long long)n_ids;
    if (o.n_predict > room) {
        fprintf(stderr, "citadel run: note: generating at most %lld tokens, what the context of %u leaves after the prompt\n",
                room, n_ctx);
        o.n_predict = room;
    }
    if (!o.seed_given && o.sp.temperature > 0)
        fprintf(stderr, "citadel run: seed %" PRIu64 " (pass --seed to repeat this output)\n", o.sp.seed);

    size_t piece_cap = cit_tokenizer_max_piece_len(tok) + 8;
    piece = malloc(piece_cap);
    batch = calloc(RUN_BATCH, sizeof *batch);
    if (!piece || !batch) {
        fprintf(stderr, "citadel run: out of memory\n");
        goto out;
    }
    if (o.echo) {
        fwrite(prompt, 1, prompt_len, stdout);
        fflush(stdout);
    }
    if (cit_sampler_accept_many(smp, ids, n_ids, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel run: sampler: %s\n", err);
        goto out;
    }

    /* Prefill in chunks of RUN_BATCH; only the last token's logits are needed. */
    double t1 = now_s();
    for (size_t start = 0; start < n_ids; start += RUN_BATCH) {
        size_t n = n_ids - start < RUN_BATCH ? n_ids - start : RUN_BATCH;
        for (size_t i = 0; i < n; i++)
            batch[i] = (struct cit_batch_item){.token = ids[start + i], .pos = (int32_t)(start + i), .seq = 0,
                                               .logits = start + i == n_ids - 1};
        if (cit_decode(ctx, batch, n, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "\ncitadel run: prompt evaluation failed: %s\n", err);
            goto out;
        }
    }
    const float *logits = cit_logits(ctx, (n_ids - 1) % RUN_BATCH);
    double t2 = now_s();

    struct cit_detok dt;
    cit_detok_init(&dt, tok, false);
    long long n_gen = 0;
    int32_t pos = (int32_t)n_ids;
    while (n_gen < o.n_predict) {
        int32_t id;
        if (cit_sampler_sample(smp, logits, &id, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "\ncitadel run: sampling failed: %s\n", err);
            goto out;
        }
        n_gen++;
        if (!o.ignore_eos && cit_tokenizer_is_eog(tok, id))
            break;
        cit_sampler_accept(smp, id, NULL, 0);
        emit(&dt, id, piece, piece_cap);
        if (n_gen == o.n_predict)
            break;
        batch[0] = (struct cit_batch_item){.token = id, .pos = pos++, .seq = 0, .logits = true};
        if (cit_decode(ctx, batch, 1, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "\ncitadel run: generation failed: %s\n", err);
            goto out;
        }
        logits = cit_logits(ctx, 0);
    }
    size_t tail = cit_detok_flush(&dt, piece, piece_cap);
    fwrite(piece, 1, tail, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    double t3 = now_s();

    double pp = t2 - t1, tg = t3 - t2;
    fprintf(stderr, "\nload:       %8.1f ms\n", t_load * 1e3);
    fprintf(stderr, "prompt:     %8zu tokens in %8.1f ms = %9.2f tokens/s\n", n_ids, pp * 1e3,
            pp > 0 ? (double)n_ids / pp : 0.0);
    fprintf(stderr, "generation: %8lld tokens in %8.1f ms = %9.2f tokens/s\n", n_gen, tg * 1e3,
            tg > 0 ? (double)n_gen / tg : 0.0);
    rc = 0;
out:
    free(piece);
    free(batch);
    free(ids);
    free(text);
    cit_sampler_free(smp);
    cit_context_free(ctx);
    cit_tokenizer_free(tok);
    cit_model_free(model);
    return rc;
}
