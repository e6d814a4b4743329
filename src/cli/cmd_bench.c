/* cmd_bench.c: `citadel bench`: prompt-processing and generation speed of
 * one or more models over thread counts and batch sizes (in the manner of
 * llama-bench), each figure set against this machine's measured limits:
 * generation against memory-read bandwidth, prompt processing against the
 * peak of the dot-product instruction the weights use (kernels/probe.h,
 * model/roofline.h, docs/bench.md). Results go to stdout as a Markdown
 * table, JSON, or the planner's calibration record; progress goes to stderr
 * when it is a terminal. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "citadel/gguf.h"
#include "citadel/model.h"
#include "citadel/tensor.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "kernels/kernels.h"
#include "kernels/probe.h"
#include "model/roofline.h"

#define BENCH_MAX_LIST 16     /* values per list option, and models */
#define BENCH_MAX_TOKENS 1048576
#define BENCH_MAX_REPS 1000
#define BENCH_SEED 0x5eedULL  /* prompt token ids are pseudo-random but fixed */

enum out_fmt { OUT_MD, OUT_JSON, OUT_CALIBRATE };

struct list {
    long long v[BENCH_MAX_LIST];
    int n;
};

struct bench_opts {
    const char *models[BENCH_MAX_LIST];
    int n_models;
    struct list pp, tg, threads, batch;
    long long reps, n_ctx, probe_mib;
    enum out_fmt fmt;
    int no_probe;
    int repack; /* --repack: cit_model_repack after each load (counted in ttft) */
};

/* One result line: a timed test of one model on one configuration. */
enum row_kind { ROW_PP, ROW_TG, ROW_TTFT };
struct row {
    int model;
    enum row_kind kind;
    unsigned n_threads, n_batch;
    long long n_tokens;  /* prompt length (pp) or generated tokens (tg) */
    double *samples;     /* (reps) tokens/s; ttft: one sample in ms */
    int n_samples;
    double mean, sd;
    double per_token;    /* pp: operations per token; tg: bytes read per token */
    double frac;         /* of the limit; < 0 when not measured */
    double *bw_at;       /* tg: (reps) GB/s read around each repetition (the higher of the probes just before
                          * and just after it), its limit; NULL without the probes */
    double frac_startup; /* tg with bw_at: the fraction against the start-up probe instead; < 0 otherwise */
};

struct model_entry {
    struct cit_model *m;
    struct cit_roofline rl;
    double load_ms;
    uint64_t repacked_bytes; /* --repack: bytes copied into the interleaved layout */
    bool pages_known;        /* the file mapping after the tests: bytes resident, and in 2 MiB pages */
    uint64_t resident_bytes, huge_bytes;
};

struct probe_entry {
    unsigned n_threads;
    struct cit_probe_result r;
    int ok;
    struct cit_bw_probe *around; /* the bandwidth read around tg repetitions (created at the first) */
    int around_failed;
};

/* The bandwidth read around each generation repetition: a shared host's
 * read bandwidth can move by half within seconds (docs/bench.md), so each
 * repetition is measured against what the memory gave just then. */
#define BENCH_AROUND_MIB 256 /* buffer (at most --probe-mib): 8x a large last-level cache */
#define BENCH_AROUND_PASSES 3u

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel bench -m MODEL.gguf [-m MODEL2.gguf ...] [options]\n\n"
            "Measures prompt processing (pp) and generation (tg) speed for every model x thread count x\n"
            "batch size, and how close each comes to this machine's limits, which it measures first:\n"
            "memory read bandwidth (the ceiling of generation) and the peak of the int8 dot-product or\n"
            "f32 FMA instruction (the ceiling of prompt processing). See docs/bench.md.\n\n"
            "options (LIST = comma-separated values, e.g. -t 1,2,4):\n"
            "  -m, --model FILE        GGUF model; repeat for several (at most %d)\n"
            "  -p, --n-prompt LIST     prompt lengths in tokens, 0 = no pp test (default 512)\n"
            "  -n, --n-gen LIST        tokens to generate, 0 = no tg test (default 128)\n"
            "  -t, --threads LIST      thread counts (default: physical cores, %u here)\n"
            "  -b, --batch LIST        prompt tokens per decode call (default 512)\n"
            "  -r, --repetitions N     runs of each test; mean and standard deviation (default 3)\n"
            "  -c, --ctx N             context size (default: the longest test)\n"
            "  -o, --output FORMAT     md (table, default), json (machine + rows), or calibrate\n"
            "                          (the `citadel plan --calibrate` record of the first model: best\n"
            "                          pp and tg rates; needs -p and -n above 0)\n"
            "      --no-probe          skip the machine-limit probes (no %% of limit column)\n"
            "      --probe-mib N       bandwidth probe buffer in MiB (default 1024; halved when the\n"
            "                          memory is not there)\n"
            "      --repack            copy Q4_0 / Q8_0 / Q4_K / Q6_K matrices into the interleaved\n"
            "                          layout of the SIMD decode kernels after loading (same outputs;\n"
            "                          faster generation on some CPUs, slower on others, so compare\n"
            "                          with and without; the copy counted in ttft; docs/engine.md)\n"
            "  -h, --help              this help\n\n"
            "tests: ppP processes P random token ids in batches of -b from an empty cache; tgN\n"
            "generates N tokens one at a time from an empty cache; ttft is load + context + the first\n"
            "one-token decode, in milliseconds. The cache is cleared before every repetition.\n\n"
            "environment: CITADEL_ISA=TIER caps the kernels' instruction-set tier (scalar, avx2,\n"
            "avx2vnni, avx512, avx512vnni, amx; the header names the one in use), to compare tiers\n"
            "on one machine (docs/engine.md).\n",
            BENCH_MAX_LIST, cit_cpu_physical_cores());
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses "v1,v2,..." into l (replacing what it held). */
static bool parse_list(const char *opt, const char *s, long long min, long long max, struct list *l)
{
    char buf[512];
    if (strlen(s) >= sizeof buf || !*s) {
        fprintf(stderr, "citadel: %s expects a comma-separated list of whole numbers, got '%s'\n", opt, s);
        return false;
    }
    strcpy(buf, s);
    l->n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (l->n == BENCH_MAX_LIST) {
            fprintf(stderr, "citadel: %s takes at most %d values, got '%s'\n", opt, BENCH_MAX_LIST, s);
            return false;
        }
        if (!arg_int(opt, tok, min, max, &l->v[l->n]))
            return false;
        l->n++;
    }
    if (l->n == 0 || s[strlen(s) - 1] == ',' || s[0] == ',' || strstr(s, ",,")) {
        fprintf(stderr, "citadel: %s expects a comma-separated list of whole numbers, got '%s'\n", opt, s);
        return false;
    }
    return true;
}

static long long list_max(const struct list *l)
{
    long long m = 0;
    for (int i = 0; i < l->n; i++)
        if (l->v[i] > m)
            m = l->v[i];
    return m;
}

static int parse(int argc, char **argv, struct bench_opts *o)
{
    enum { O_NOPROBE = 256, O_PROBEMIB, O_REPACK };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"n-prompt", required_argument, NULL, 'p'},
        {"n-gen", required_argument, NULL, 'n'}, {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'}, {"repetitions", required_argument, NULL, 'r'},
        {"ctx", required_argument, NULL, 'c'}, {"output", required_argument, NULL, 'o'},
        {"no-probe", no_argument, NULL, O_NOPROBE}, {"probe-mib", required_argument, NULL, O_PROBEMIB},
        {"repack", no_argument, NULL, O_REPACK},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:p:n:t:b:r:c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (o->n_models == BENCH_MAX_LIST) {
                fprintf(stderr, "citadel bench: --model given more than %d times\n", BENCH_MAX_LIST);
                return 2;
            }
            o->models[o->n_models++] = optarg;
            break;
        case 'p': if (!parse_list("--n-prompt", optarg, 0, BENCH_MAX_TOKENS, &o->pp)) return 2; break;
        case 'n': if (!parse_list("--n-gen", optarg, 0, BENCH_MAX_TOKENS, &o->tg)) return 2; break;
        case 't': if (!parse_list("--threads", optarg, 1, CIT_PROBE_MAX_THREADS, &o->threads)) return 2; break;
        case 'b': if (!parse_list("--batch", optarg, 1, BENCH_MAX_TOKENS, &o->batch)) return 2; break;
        case 'r': if (!arg_int("--repetitions", optarg, 1, BENCH_MAX_REPS, &o->reps)) return 2; break;
        case 'c': if (!arg_int("--ctx", optarg, 1, BENCH_MAX_TOKENS, &o->n_ctx)) return 2; break;
        case O_PROBEMIB: if (!arg_int("--probe-mib", optarg, 1, 1 << 20, &o->probe_mib)) return 2; break;
        case O_NOPROBE: o->no_probe = 1; break;
        case O_REPACK: o->repack = 1; break;
        case 'o':
            if (!strcmp(optarg, "md")) o->fmt = OUT_MD;
            else if (!strcmp(optarg, "json")) o->fmt = OUT_JSON;
            else if (!strcmp(optarg, "calibrate")) o->fmt = OUT_CALIBRATE;
            else {
                fprintf(stderr, "citadel bench: --output expects md, json or calibrate, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return -1;
        case ':':
            fprintf(stderr, "citadel bench: option %s needs a value (see citadel bench --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "citadel bench: unknown option '%s' (see citadel bench --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "citadel bench: unexpected argument '%s' (models go after -m)\n", argv[optind]);
        return 2;
    }
    if (!o->n_models) {
        fprintf(stderr, "citadel bench: no model given: use -m MODEL.gguf (see citadel bench --help)\n");
        return 2;
    }
    long long need = list_max(&o->pp) > list_max(&o->tg) ? list_max(&o->pp) : list_max(&o->tg);
    if (need == 0) {
        fprintf(stderr, "citadel bench: nothing to run: --n-prompt and --n-gen are all 0\n");
        return 2;
    }
    if (o->n_ctx && o->n_ctx < need) {
        fprintf(stderr, "citadel bench: --ctx %lld is below the longest test (%lld tokens): raise -c or shorten -p/-n\n",
                o->n_ctx, need);
        return 2;
    }
    if (!o->n_ctx)
        o->n_ctx = need;
    if (o->fmt == OUT_CALIBRATE && (list_max(&o->pp) == 0 || list_max(&o->tg) == 0)) {
        fprintf(stderr, "citadel bench: --output calibrate needs a pp and a tg test (-p and -n above 0)\n");
        return 2;
    }
    return 0;
}

/* ---- progress (stderr, only on a terminal) ---- */

static int progress_on;

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
    if (!progress_on)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

static void progress_end(void)
{
    if (progress_on) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

/* ---- machine description ---- */

static void cpu_name(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ' || *v == '\t')
                    v++;
                v[strcspn(v, "\n")] = '\0';
                snprintf(buf, len, "%s", v);
            }
            break;
        }
    }
    fclose(f);
}

/* The file name without folder and ".gguf", for tables and progress. */
static const char *model_label(const char *path)
{
    static char buf[256];
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    size_t n = strlen(s);
    if (n > 5 && !strcmp(s + n - 5, ".gguf"))
        n -= 5;
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 255 ? n : 255), s);
    return buf;
}

static const char *type_name(uint32_t t)
{
    const struct cit_type_traits *tt = cit_type_traits(t);
    return tt && tt->name ? tt->name : "?";
}

/* ---- measuring ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void mean_sd(const double *x, int n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++)
        q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* Decodes ids[0..n) at positions 0..n-1 of sequence 0 in chunks of b, logits
 * for the last token only, from an empty cache. Returns the seconds taken. */
static bool run_prompt(struct cit_context *ctx, const int32_t *ids, long long n, unsigned b,
                       struct cit_batch_item *items, double *secs, char *err, size_t errlen)
{
    cit_kv_seq_rm(ctx, 0, 0);
    double t0 = now_s();
    for (long long start = 0; start < n; start += b) {
        long long k = n - start < (long long)b ? n - start : (long long)b;
        for (long long i = 0; i < k; i++)
            items[i] = (struct cit_batch_item){.token = ids[start + i], .pos = (int32_t)(start + i), .seq = 0,
                                               .logits = start + i == n - 1};
        if (cit_decode(ctx, items, (size_t)k, err, errlen) != CIT_OK)
            return false;
    }
    *secs = now_s() - t0;
    return true;
}

/* Generates n tokens one decode at a time from an empty cache (the token fed
 * back is taken from a fixed pseudo-random stream, not sampled: sampling is
 * not what is measured). */
static bool run_gen(struct cit_context *ctx, const int32_t *ids, long long n, double *secs, char *err,
                    size_t errlen)
{
    cit_kv_seq_rm(ctx, 0, 0);
    double t0 = now_s();
    for (long long i = 0; i < n; i++) {
        struct cit_batch_item it = {.token = ids[i], .pos = (int32_t)i, .seq = 0, .logits = true};
        if (cit_decode(ctx, &it, 1, err, errlen) != CIT_OK)
            return false;
    }
    *secs = now_s() - t0;
    return true;
}

struct bench_state {
    struct bench_opts *o;
    struct model_entry *models;
    struct probe_entry probes[BENCH_MAX_LIST];
    int n_probes;
    struct row *rows;
    int n_rows, cap_rows;
    int32_t *ids;               /* (max tokens) prompt / generation ids */
    struct cit_batch_item *items; /* (max batch) */
};

static const struct probe_entry *probe_for(const struct bench_state *s, unsigned n_threads)
{
    for (int i = 0; i < s->n_probes; i++)
        if (s->probes[i].n_threads == n_threads && s->probes[i].ok)
            return &s->probes[i];
    return NULL;
}

/* The thread count's around-probe, made at its first use; NULL without
 * the probes or when it cannot be made (then the start-up probe serves). */
static struct cit_bw_probe *around_probe(struct bench_state *s, unsigned n_threads)
{
    struct probe_entry *p = (struct probe_entry *)probe_for(s, n_threads);
    if (!p || p->around || p->around_failed)
        return p ? p->around : NULL;
    long long mib = s->o->probe_mib < BENCH_AROUND_MIB ? s->o->probe_mib : BENCH_AROUND_MIB;
    char err[512];
    if (cit_bw_probe_new(n_threads, (uint64_t)mib << 20, &p->around, err, sizeof err) != CIT_OK) {
        p->around_failed = 1;
        progress_end();
        fprintf(stderr, "citadel bench: the bandwidth probe around tg repetitions failed (the start-up probe is "
                        "used): %s\n", err);
    }
    return p->around;
}

static struct row *add_row(struct bench_state *s, int model, enum row_kind kind, unsigned t, unsigned b,
                           long long n_tokens)
{
    if (s->n_rows == s->cap_rows) {
        int cap = s->cap_rows ? s->cap_rows * 2 : 16;
        struct row *nr = realloc(s->rows, (size_t)cap * sizeof *nr);
        if (!nr)
            return NULL;
        s->rows = nr;
        s->cap_rows = cap;
    }
    struct row *r = &s->rows[s->n_rows];
    *r = (struct row){.model = model, .kind = kind, .n_threads = t, .n_batch = b, .n_tokens = n_tokens,
                      .frac = -1, .frac_startup = -1};
    r->samples = calloc((size_t)s->o->reps, sizeof *r->samples);
    if (!r->samples)
        return NULL;
    if (kind == ROW_TG && !(r->bw_at = calloc((size_t)s->o->reps, sizeof *r->bw_at))) {
        free(r->samples);
        return NULL;
    }
    s->n_rows++;
    return r;
}

/* The limit a pp or tg row is measured against: its JSON name, its suffix
 * in the table and its probed value (GB/s or G operations/s); NULL for other
 * rows. Quantized prompts are measured against the matrix unit where the
 * active tier has one (its prompt kernels run there), else the vector dot. */
struct limit {
    const char *name, *label;
    double (*peak)(const struct cit_probe_result *r);
};
static double peak_read(const struct cit_probe_result *r) { return r->read_gbs; }
static double peak_fma(const struct cit_probe_result *r) { return r->fma_gflops; }
static double peak_dot(const struct cit_probe_result *r) { return r->dot_gops; }
static double peak_tile(const struct cit_probe_result *r) { return r->tile_gops; }
static double peak_bf16(const struct cit_probe_result *r) { return r->bf16_gflops; }

static const struct limit *row_limit(const struct bench_state *s, const struct row *r)
{
    static const struct limit bw = {"bandwidth", "bw", peak_read}, fma = {"f32_fma", "fma", peak_fma},
                              dot = {"int8_dot", "int8", peak_dot}, tile = {"int8_tile", "int8 tile", peak_tile},
                              bf16 = {"bf16_dot", "bf16", peak_bf16};
    if (r->kind == ROW_TG)
        return &bw;
    if (r->kind != ROW_PP)
        return NULL;
    const struct probe_entry *p = probe_for(s, r->n_threads);
    if (s->models[r->model].rl.bf16 && p && p->r.bf16_gflops > 0)
        return &bf16;
    if (!s->models[r->model].rl.quantized)
        return &fma;
    return p && p->r.tile_gops > 0 ? &tile : &dot;
}

/* Sets the row's mean, deviation and fraction of the machine's limit. */
static void finish_row(const struct bench_state *s, struct row *r)
{
    const struct cit_roofline *rl = &s->models[r->model].rl;
    const struct probe_entry *p = probe_for(s, r->n_threads);
    mean_sd(r->samples, r->n_samples, &r->mean, &r->sd);
    if (r->kind == ROW_PP)
        r->per_token = cit_roofline_prompt_ops(rl, (uint64_t)r->n_tokens) / (double)r->n_tokens;
    else if (r->kind == ROW_TG)
        r->per_token = cit_roofline_gen_bytes_per_token(rl, (uint64_t)r->n_tokens, 0);
    const struct limit *lim = row_limit(s, r);
    double peak = lim && p ? lim->peak(&p->r) * 1e9 : 0;
    if (peak > 0)
        r->frac = r->mean * r->per_token / peak;
    bool around = r->kind == ROW_TG && r->n_samples > 0;
    for (int i = 0; around && i < r->n_samples; i++)
        around = r->bw_at[i] > 0;
    if (around) { /* the mean of each repetition's fraction of the bandwidth around it */
        double f = 0;
        for (int i = 0; i < r->n_samples; i++)
            f += r->samples[i] * r->per_token / (r->bw_at[i] * 1e9);
        r->frac_startup = r->frac;
        r->frac = f / r->n_samples;
    }
}

/* Every test of one model on one (threads, batch) context. first: this is
 * the model's first context, whose first decode completes the ttft row. */
static int bench_config(struct bench_state *s, int mi, unsigned t, unsigned b, bool first, bool with_tg,
                        double t_load0)
{
    struct bench_opts *o = s->o;
    char err[1024];
    struct cit_context *ctx = NULL;
    struct cit_context_params cp = {.n_ctx = (uint32_t)o->n_ctx, .n_seq_max = 1, .n_batch_max = b, .n_threads = t};
    const char *label = model_label(o->models[mi]);
    int rc = 1;
    if (cit_context_new(s->models[mi].m, &cp, &ctx, err, sizeof err) != CIT_OK) {
        progress_end();
        fprintf(stderr, "citadel bench: %s: cannot create a context of %lld tokens, batch %u, %u threads: %s\n",
                o->models[mi], o->n_ctx, b, t, err);
        return 1;
    }
    /* The first decode: ttft for the model's first context, a warm-up otherwise. */
    struct cit_batch_item one = {.token = s->ids[0], .pos = 0, .seq = 0, .logits = true};
    if (cit_decode(ctx, &one, 1, err, sizeof err) != CIT_OK)
        goto fail;
    if (first) {
        struct row *r = add_row(s, mi, ROW_TTFT, t, 1, 1);
        if (!r)
            goto oom;
        r->samples[0] = (now_s() - t_load0) * 1e3;
        r->n_samples = 1;
        finish_row(s, r);
    }
    for (int pi = 0; pi < o->pp.n; pi++) {
        long long n = o->pp.v[pi];
        if (n == 0)
            continue;
        struct row *r = add_row(s, mi, ROW_PP, t, b, n);
        if (!r)
            goto oom;
        double secs;
        progress("%s t=%u b=%u pp%lld warm-up", label, t, b, n);
        if (!run_prompt(ctx, s->ids, n < (long long)b ? n : (long long)b, b, s->items, &secs, err, sizeof err))
            goto fail;
        for (long long rep = 0; rep < o->reps; rep++) {
            progress("%s t=%u b=%u pp%lld rep %lld/%lld", label, t, b, n, rep + 1, o->reps);
            if (!run_prompt(ctx, s->ids, n, b, s->items, &secs, err, sizeof err))
                goto fail;
            r->samples[r->n_samples++] = secs > 0 ? (double)n / secs : 0;
        }
        finish_row(s, r);
    }
    for (int gi = 0; with_tg && gi < o->tg.n; gi++) {
        long long n = o->tg.v[gi];
        if (n == 0)
            continue;
        struct row *r = add_row(s, mi, ROW_TG, t, 1, n);
        if (!r)
            goto oom;
        double secs, bw_before = 0, bw_after = 0;
        struct cit_bw_probe *around = around_probe(s, t);
        if (around && cit_bw_probe_read(around, BENCH_AROUND_PASSES, &bw_before, err, sizeof err) != CIT_OK)
            bw_before = 0; /* no limit for this repetition: the start-up probe serves the row */
        for (long long rep = 0; rep < o->reps; rep++) {
            progress("%s t=%u tg%lld rep %lld/%lld", label, t, n, rep + 1, o->reps);
            if (!run_gen(ctx, s->ids, n, &secs, err, sizeof err))
                goto fail;
            if (around && cit_bw_probe_read(around, BENCH_AROUND_PASSES, &bw_after, err, sizeof err) != CIT_OK)
                bw_after = 0;
            r->bw_at[r->n_samples] = bw_before > 0 && bw_after > 0 ? fmax(bw_before, bw_after) : 0;
            bw_before = bw_after;
            r->samples[r->n_samples++] = secs > 0 ? (double)n / secs : 0;
        }
        finish_row(s, r);
    }
    rc = 0;
    goto out;
oom:
    progress_end();
    fprintf(stderr, "citadel bench: out of memory\n");
    goto out;
fail:
    progress_end();
    fprintf(stderr, "citadel bench: %s: decode failed (%u threads, batch %u): %s\n", o->models[mi], t, b, err);
out:
    cit_context_free(ctx);
    return rc;
}

static int bench_model(struct bench_state *s, int mi)
{
    struct bench_opts *o = s->o;
    struct model_entry *me = &s->models[mi];
    char err[1024];
    progress("loading %s", o->models[mi]);
    double t0 = now_s();
    if (cit_model_load(o->models[mi], &me->m, err, sizeof err) != CIT_OK) {
        progress_end();
        fprintf(stderr, "citadel bench: cannot load %s: %s\n", o->models[mi], err);
        return 1;
    }
    if (o->repack) {
        unsigned th = 0; /* the largest thread count of the run */
        for (int i = 0; i < o->threads.n; i++)
            if ((unsigned)o->threads.v[i] > th)
                th = (unsigned)o->threads.v[i];
        enum cit_status st = cit_model_repack(me->m, th, &me->repacked_bytes, err, sizeof err);
        if (st == CIT_ERR_UNSUPPORTED) {
            progress_end();
            fprintf(stderr, "citadel bench: --repack: %s\n", err);
        } else if (st != CIT_OK) {
            progress_end();
            fprintf(stderr, "citadel bench: %s: --repack failed: %s\n", o->models[mi], err);
            return 1;
        }
    }
    me->load_ms = (now_s() - t0) * 1e3;
    const struct cit_model_info *info = cit_model_info(me->m);
    if ((uint64_t)o->n_ctx > info->n_ctx_train) {
        progress_end();
        fprintf(stderr,
                "citadel bench: %s: the tests need a context of %lld tokens but the model was trained for %u: "
                "lower -p/-n/-c\n",
                o->models[mi], o->n_ctx, info->n_ctx_train);
        return 1;
    }
    if (cit_roofline_of_model(me->m, &me->rl, err, sizeof err) != CIT_OK) {
        progress_end();
        fprintf(stderr, "citadel bench: %s: %s\n", o->models[mi], err);
        return 1;
    }
    uint64_t seed = BENCH_SEED;
    for (long long i = 0; i < o->n_ctx; i++)
        s->ids[i] = (int32_t)(splitmix(&seed) % info->n_vocab);
    for (int ti = 0; ti < o->threads.n; ti++)
        for (int bi = 0; bi < o->batch.n; bi++)
            if (bench_config(s, mi, (unsigned)o->threads.v[ti], (unsigned)o->batch.v[bi], ti == 0 && bi == 0,
                             bi == 0, t0))
                return 1;
    me->pages_known = cit_gguf_map_pages(cit_model_gguf(me->m), &me->resident_bytes, &me->huge_bytes);
    return 0;
}

static void run_probes(struct bench_state *s)
{
    struct bench_opts *o = s->o;
    for (int ti = 0; ti < o->threads.n; ti++) {
        unsigned t = (unsigned)o->threads.v[ti];
        bool seen = false;
        for (int i = 0; i < s->n_probes; i++)
            seen |= s->probes[i].n_threads == t;
        if (seen)
            continue;
        struct probe_entry *p = &s->probes[s->n_probes++];
        struct cit_probe_params pp = {.n_threads = t, .read_bytes = (uint64_t)o->probe_mib << 20};
        char err[512];
        p->n_threads = t;
        progress("probing memory bandwidth and instruction peaks on %u thread%s", t, t == 1 ? "" : "s");
        p->ok = cit_probe_run(&pp, &p->r, err, sizeof err) == CIT_OK;
        if (!p->ok) {
            progress_end();
            fprintf(stderr, "citadel bench: probe on %u threads failed (no %% of limit for it): %s\n", t, err);
        }
    }
    progress_end();
}

/* ---- output ---- */


static void fmt_count(double v, char *buf, size_t len)
{
    if (v >= 1e9) snprintf(buf, len, "%.2f B", v / 1e9);
    else if (v >= 1e6) snprintf(buf, len, "%.2f M", v / 1e6);
    else if (v >= 1e3) snprintf(buf, len, "%.2f K", v / 1e3);
    else snprintf(buf, len, "%.0f", v);
}

static void print_md(const struct bench_state *s, const char *cpu)
{
    const struct bench_opts *o = s->o;
    enum cit_isa act = cit_isa_active(), det = cit_isa_detected();
    printf("citadel bench: %s, %u logical CPUs, %u physical cores, ISA %s", cpu, (unsigned)sysconf(_SC_NPROCESSORS_ONLN),
           cit_cpu_physical_cores(), cit_isa_name(act));
    if (act != det)
        printf(" (capped from %s by CITADEL_ISA)", cit_isa_name(det));
    printf("\n");
    for (int i = 0; i < s->n_probes; i++) {
        const struct probe_entry *p = &s->probes[i];
        if (!p->ok)
            continue;
        char b[32];
        printf("probe, %u thread%s: memory read %.2f GB/s (%s buffer, %s); int8 dot %.1f GOPS (%s); "
               "f32 FMA %.1f GFLOPS (%s); best of %u passes\n",
               p->n_threads, p->n_threads == 1 ? "" : "s", p->r.read_gbs, fmt_bytes(p->r.read_bytes, b, sizeof b),
               p->r.read_insn, p->r.dot_gops, p->r.dot_insn, p->r.fma_gflops, p->r.fma_insn, CIT_PROBE_DEFAULT_PASSES);
        if (p->r.tile_gops > 0)
            printf("probe, %u thread%s: int8 matrix unit %.1f GOPS (%s): the ceiling of quantized prompt processing "
                   "on this tier\n",
                   p->n_threads, p->n_threads == 1 ? "" : "s", p->r.tile_gops, p->r.tile_insn);
        if (p->r.bf16_gflops > 0)
            printf("probe, %u thread%s: bf16 dot %.1f GFLOPS (%s): the ceiling of BF16 prompt processing on this "
                   "tier\n",
                   p->n_threads, p->n_threads == 1 ? "" : "s", p->r.bf16_gflops, p->r.bf16_insn);
    }
    const uint64_t llc = cit_cpu_llc_bytes(); /* 0: unknown */
    for (int i = 0; i < s->n_probes; i++)
        if (s->probes[i].ok && llc > 0 && s->probes[i].r.read_bytes < 2 * llc) {
            char b1[32], b2[32];
            printf("  note: the %s bandwidth buffer is not twice the %s last-level cache, so part of it is read "
                   "from cache: raise --probe-mib\n",
                   fmt_bytes(s->probes[i].r.read_bytes, b1, sizeof b1), fmt_bytes(llc, b2, sizeof b2));
            break;
        }
    if (o->no_probe)
        printf("probes skipped (--no-probe)\n");
    printf("\n| model | size | params | type | threads | batch | test | t/s | %% of limit |\n");
    printf("| --- | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |\n");
    for (int i = 0; i < s->n_rows; i++) {
        const struct row *r = &s->rows[i];
        const struct cit_model_info *info = cit_model_info(s->models[r->model].m);
        char sz[32], np[32], test[32], val[64], frac[32];
        fmt_bytes(info->weight_bytes, sz, sizeof sz);
        fmt_count((double)info->n_params, np, sizeof np);
        if (r->kind == ROW_TTFT) {
            snprintf(test, sizeof test, "ttft");
            snprintf(val, sizeof val, "%.2f ms", r->mean);
        } else {
            snprintf(test, sizeof test, "%s%lld", r->kind == ROW_PP ? "pp" : "tg", r->n_tokens);
            snprintf(val, sizeof val, "%.2f ± %.2f", r->mean, r->sd);
        }
        if (r->frac >= 0)
            snprintf(frac, sizeof frac, "%.1f%% %s", r->frac * 100, row_limit(s, r)->label);
        else
            snprintf(frac, sizeof frac, "-");
        printf("| %s | %s | %s | %s | %u | %u | %s | %s | %s |\n", model_label(o->models[r->model]), sz, np,
               type_name(info->weight_type), r->n_threads, r->n_batch, test, val, frac);
    }
    printf("\n");
    for (int mi = 0; mi < o->n_models; mi++) {
        const struct cit_roofline *rl = &s->models[mi].rl;
        char b1[32], b2[32], b3[32];
        printf("%s: %s of weights read per generated token + %s of KV cache per position attended; "
               "%.4g matrix parameters per token (+ %.4g for the output row)\n",
               model_label(o->models[mi]), fmt_bytes(rl->weight_bytes_per_token, b1, sizeof b1),
               fmt_bytes(rl->kv_bytes_per_pos, b2, sizeof b2), (double)rl->layer_matrix_params,
               (double)rl->output_params);
        if (s->models[mi].repacked_bytes)
            printf("%s: --repack copied %s of weights, Q4_0 / Q8_0 / Q4_K / Q6_K interleaved (counted in ttft)\n",
                   model_label(o->models[mi]), fmt_bytes(s->models[mi].repacked_bytes, b3, sizeof b3));
        const struct model_entry *me = &s->models[mi];
        if (me->pages_known && me->resident_bytes > 0) {
            double share = (double)me->huge_bytes / (double)me->resident_bytes;
            printf("%s: file mapping after the tests: %s resident, %.1f%% of it in 2 MiB pages\n",
                   model_label(o->models[mi]), fmt_bytes(me->resident_bytes, b3, sizeof b3), share * 100);
            if (share < 0.9 && me->resident_bytes >= ((uint64_t)64 << 20))
                printf("  note: the page cache holds %.0f%% of this file in 4 KiB pages (it was read or written "
                       "in small pieces, or left the cache and came back so), which costs generation a few %%: "
                       "`dd if=%s iflag=nocache count=0` drops it from the cache, and the next load reads it back "
                       "in 2 MiB pages where the kernel can (docs/engine.md, \"Huge pages\")\n",
                       (1 - share) * 100, o->models[mi]);
        }
        if (llc > 0 && rl->weight_bytes_per_token < llc)
            printf("  note: that fits in the %s last-level cache, so generation reads it from cache, not memory: "
                   "its %% of the memory-bandwidth limit understates the ceiling and can pass 100%%\n",
                   fmt_bytes(llc, b3, sizeof b3));
    }
    bool header = false;
    for (int i = 0; i < s->n_rows; i++) {
        const struct row *r = &s->rows[i];
        if (r->kind != ROW_TG || r->frac_startup < 0)
            continue;
        double lo = r->bw_at[0], hi = r->bw_at[0];
        for (int k = 1; k < r->n_samples; k++) {
            lo = fmin(lo, r->bw_at[k]);
            hi = fmax(hi, r->bw_at[k]);
        }
        if (!header) {
            char b[32];
            printf("tg rows: memory read probed just before and after each repetition (%s, best of %u), the higher "
                   "of the two its limit, as a shared host's bandwidth can move within seconds:\n",
                   fmt_bytes(cit_bw_probe_bytes(probe_for(s, r->n_threads)->around), b, sizeof b), BENCH_AROUND_PASSES);
            header = true;
        }
        printf("  %s t=%u tg%lld: %.2f-%.2f GB/s around its repetitions, %.1f%% of that; %.1f%% of the start-up "
               "probe\n",
               model_label(o->models[r->model]), r->n_threads, r->n_tokens, lo, hi, r->frac * 100,
               r->frac_startup * 100);
    }
    printf("%% of limit: tg = t/s x bytes per token / read bandwidth (bw, probed around each repetition); "
           "pp = t/s x operations per token / "
           "peak of int8 dot or int8 matrix unit where there is one (quantized weights), bf16 dot where there is one "
           "(BF16 weights), or f32 FMA (other float weights). "
           "See docs/bench.md.\n");
}

static json_t *json_probe(const struct probe_entry *p)
{
    json_t *j = json_pack("{s:i, s:f, s:I, s:s, s:f, s:s, s:f, s:s, s:i}", "n_threads", (int)p->n_threads, "read_gbs",
                     p->r.read_gbs, "read_bytes", (json_int_t)p->r.read_bytes, "read_insn", p->r.read_insn,
                     "dot_gops", p->r.dot_gops, "dot_insn", p->r.dot_insn, "fma_gflops", p->r.fma_gflops, "fma_insn",
                     p->r.fma_insn, "passes", (int)CIT_PROBE_DEFAULT_PASSES);
    if (j && p->r.tile_gops > 0) {
        json_object_set_new(j, "tile_gops", json_real(p->r.tile_gops));
        json_object_set_new(j, "tile_insn", json_string(p->r.tile_insn));
    }
    if (j && p->r.bf16_gflops > 0) {
        json_object_set_new(j, "bf16_gflops", json_real(p->r.bf16_gflops));
        json_object_set_new(j, "bf16_insn", json_string(p->r.bf16_insn));
    }
    return j;
}

static int print_json(const struct bench_state *s, const char *cpu)
{
    const struct bench_opts *o = s->o;
    json_t *root = json_object(), *probes = json_array(), *models = json_array(), *rows = json_array();
    const uint64_t llc = cit_cpu_llc_bytes(); /* 0: unknown */
    json_t *machine = json_pack("{s:s, s:i, s:i, s:s, s:s, s:I}", "cpu", cpu, "logical_cpus",
                                (int)sysconf(_SC_NPROCESSORS_ONLN), "physical_cores", (int)cit_cpu_physical_cores(),
                                "isa", cit_isa_name(cit_isa_active()), "isa_detected",
                                cit_isa_name(cit_isa_detected()), "llc_bytes", (json_int_t)llc);
    if (!root || !probes || !models || !rows || !machine)
        goto oom;
    for (int i = 0; i < s->n_probes; i++)
        if (s->probes[i].ok)
            json_array_append_new(probes, json_probe(&s->probes[i]));
    json_object_set_new(machine, "probes", probes);
    probes = NULL;
    json_object_set_new(root, "machine", machine);
    machine = NULL;
    for (int mi = 0; mi < o->n_models; mi++) {
        const struct model_entry *me = &s->models[mi];
        const struct cit_model_info *info = cit_model_info(me->m);
        json_t *jm = json_pack(
            "{s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:b, s:b}", "path", o->models[mi], "name",
            info->name, "arch", info->arch, "type", type_name(info->weight_type), "size_bytes",
            (json_int_t)info->weight_bytes, "n_params", (json_int_t)info->n_params, "load_ms", me->load_ms,
            "repacked_bytes", (json_int_t)me->repacked_bytes, "weight_bytes_per_token",
            (json_int_t)me->rl.weight_bytes_per_token, "kv_bytes_per_pos", (json_int_t)me->rl.kv_bytes_per_pos,
            "layer_matrix_params", (json_int_t)me->rl.layer_matrix_params, "output_params",
            (json_int_t)me->rl.output_params, "quantized", me->rl.quantized, "fits_in_llc",
            llc > 0 && me->rl.weight_bytes_per_token < llc);
        if (!jm)
            goto oom;
        json_object_set_new(jm, "mapped_resident_bytes",
                            me->pages_known ? json_integer((json_int_t)me->resident_bytes) : json_null());
        json_object_set_new(jm, "mapped_huge_bytes",
                            me->pages_known ? json_integer((json_int_t)me->huge_bytes) : json_null());
        json_array_append_new(models, jm);
    }
    json_object_set_new(root, "models", models);
    models = NULL;
    for (int i = 0; i < s->n_rows; i++) {
        const struct row *r = &s->rows[i];
        char test[32];
        json_t *j;
        if (r->kind == ROW_TTFT) {
            j = json_pack("{s:s, s:i, s:i, s:s, s:f}", "model", o->models[r->model], "n_threads", (int)r->n_threads,
                          "n_batch", (int)r->n_batch, "test", "ttft", "ms", r->mean);
        } else {
            snprintf(test, sizeof test, "%s%lld", r->kind == ROW_PP ? "pp" : "tg", r->n_tokens);
            json_t *samples = json_array();
            for (int k = 0; samples && k < r->n_samples; k++)
                json_array_append_new(samples, json_real(r->samples[k]));
            j = json_pack("{s:s, s:i, s:i, s:s, s:s, s:I, s:I, s:o, s:f, s:f, s:f, s:s, s:o}", "model",
                          o->models[r->model], "n_threads", (int)r->n_threads, "n_batch", (int)r->n_batch, "test",
                          test, "kind", r->kind == ROW_PP ? "pp" : "tg", "n_tokens", (json_int_t)r->n_tokens, "reps",
                          (json_int_t)r->n_samples, "samples_ts", samples, "avg_ts", r->mean, "stddev_ts", r->sd,
                          r->kind == ROW_PP ? "ops_per_token" : "bytes_per_token", r->per_token, "limit",
                          row_limit(s, r)->name, "limit_fraction", r->frac >= 0 ? json_real(r->frac) : json_null());
            if (j && r->frac_startup >= 0) { /* tg measured against the bandwidth around each repetition */
                json_t *bw = json_array();
                for (int k = 0; bw && k < r->n_samples; k++)
                    json_array_append_new(bw, json_real(r->bw_at[k]));
                json_object_set_new(j, "limit_gbs_samples", bw ? bw : json_null());
                json_object_set_new(j, "limit_fraction_startup_probe", json_real(r->frac_startup));
            }
        }
        if (!j)
            goto oom;
        json_array_append_new(rows, j);
    }
    json_object_set_new(root, "rows", rows);
    rows = NULL;
    if (json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) != 0)
        goto oom;
    printf("\n");
    json_decref(root);
    return 0;
oom:
    json_decref(root);
    json_decref(probes);
    json_decref(models);
    json_decref(rows);
    json_decref(machine);
    fprintf(stderr, "citadel bench: cannot write the JSON report\n");
    return 1;
}

/* The planner's record (docs/planner.md): the first model's best pp and tg means. */
static int print_calibrate(const struct bench_state *s)
{
    double tg = 0, pp = 0;
    for (int i = 0; i < s->n_rows; i++) {
        const struct row *r = &s->rows[i];
        if (r->model != 0)
            continue;
        if (r->kind == ROW_TG && r->mean > tg)
            tg = r->mean;
        if (r->kind == ROW_PP && r->mean > pp)
            pp = r->mean;
    }
    const struct cit_model_info *info = cit_model_info(s->models[0].m);
    json_t *j = json_pack("{s:I, s:I, s:I, s:f, s:f, s:i}", "weight_bytes", (json_int_t)info->weight_bytes, "n_params",
                          (json_int_t)info->n_params, "n_active", (json_int_t)info->n_params, "tg_tokens_per_s", tg,
                          "pp_tokens_per_s", pp, "n_devices", 1);
    if (!j || json_dumpf(j, stdout, JSON_REAL_PRECISION(10)) != 0) {
        json_decref(j);
        fprintf(stderr, "citadel bench: cannot write the calibration record\n");
        return 1;
    }
    printf("\n");
    json_decref(j);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o = {.pp = {.v = {512}, .n = 1}, .tg = {.v = {128}, .n = 1}, .batch = {.v = {512}, .n = 1},
                           .reps = 3, .probe_mib = 1024, .fmt = OUT_MD};
    o.threads = (struct list){.v = {cit_cpu_physical_cores()}, .n = 1};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    progress_on = isatty(STDERR_FILENO);

    struct bench_state s = {.o = &o};
    s.models = calloc((size_t)o.n_models, sizeof *s.models);
    s.ids = calloc((size_t)o.n_ctx, sizeof *s.ids);
    s.items = calloc((size_t)list_max(&o.batch), sizeof *s.items);
    rc = 1;
    if (!s.models || !s.ids || !s.items) {
        fprintf(stderr, "citadel bench: out of memory\n");
        goto out;
    }
    if (!o.no_probe)
        run_probes(&s);
    for (int mi = 0; mi < o.n_models; mi++)
        if (bench_model(&s, mi))
            goto out;
    progress_end();
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    rc = o.fmt == OUT_MD ? (print_md(&s, cpu), 0) : o.fmt == OUT_JSON ? print_json(&s, cpu) : print_calibrate(&s);
    fflush(stdout);
out:
    progress_end();
    for (int i = 0; i < s.n_rows; i++) {
        free(s.rows[i].samples);
        free(s.rows[i].bw_at);
    }
    for (int i = 0; i < s.n_probes; i++)
        cit_bw_probe_free(s.probes[i].around);
    free(s.rows);
    for (int mi = 0; s.models && mi < o.n_models; mi++)
        cit_model_free(s.models[mi].m);
    free(s.models);
    free(s.ids);
    free(s.items);
    return rc;
}
