/* cmd_synth.c: `citadel synth --model ID --vocab FILE.gguf -q TYPE -o OUT`:
 * writes a random-weight GGUF at a real model's shape for benchmarks (see
 * citadel/synth.h and docs/quantize.md). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "citadel/synth.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/progress.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel synth --model ID --vocab FILE.gguf -o OUT.gguf [options]\n\n"
            "Writes a GGUF with random weights at the exact shape of a known model, for\n"
            "benchmarks (speed does not depend on weight values; the text is gibberish).\n"
            "The tokenizer is copied from FILE.gguf, padded with tokens <synth_N> if it\n"
            "is smaller than the model's vocabulary.\n\n"
            "options:\n"
            "  -m, --model ID     model shape (--list shows them)\n"
            "  -v, --vocab FILE   GGUF to borrow the tokenizer from\n"
            "  -o, --output FILE  where to write\n"
            "  -q, --type TYPE    weight types: Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K, F16, BF16, F32\n"
            "                     (default Q4_K_M; the mixtures as `citadel quantize` makes them)\n"
            "  -s, --seed N       random seed (default 1); the same seed gives the same file\n"
            "  -c, --ctx N        training context written to the file (default: the model's)\n"
            "      --n-layer N    override the layer count (smaller test files)\n"
            "  -t, --threads N    threads (default: all CPUs)\n"
            "      --list         list the known models and exit\n"
            "      --quiet        no progress line or notes\n"
            "  -h, --help         this help\n");
}

static int list_models(void)
{
    printf("%-16s %-6s %7s %6s %6s %8s %7s %8s %8s\n", "model", "arch", "layers", "embd", "heads", "kv heads", "ffn",
           "vocab", "context");
    for (size_t i = 0; i < cit_synth_n_shapes(); i++) {
        struct cit_synth_shape s;
        char err[256];
        if (cit_synth_find_shape(cit_synth_shape_id(i), &s, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "citadel synth: %s\n", err);
            return 1;
        }
        char vocab[16];
        snprintf(vocab, sizeof vocab, s.n_vocab ? "%u" : "(file)", s.n_vocab);
        printf("%-16s %-6s %7u %6u %6u %8u %7u %8s %8u%s\n", s.id, s.arch, s.n_layer, s.n_embd, s.n_head, s.n_head_kv,
               s.n_ff, vocab, s.n_ctx, s.tied ? "  tied embeddings" : "");
    }
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    enum { OPT_LIST = 256, OPT_NLAYER, OPT_QUIET };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"vocab", required_argument, NULL, 'v'},
        {"output", required_argument, NULL, 'o'},  {"type", required_argument, NULL, 'q'},
        {"seed", required_argument, NULL, 's'},    {"ctx", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'}, {"n-layer", required_argument, NULL, OPT_NLAYER},
        {"list", no_argument, NULL, OPT_LIST},     {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *model = NULL, *vocab = NULL, *out = NULL, *type = "Q4_K_M";
    long long ctx = 0, threads = 0, n_layer = 0;
    uint64_t seed = 1;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:v:o:q:s:c:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'v': vocab = optarg; break;
        case 'o': out = optarg; break;
        case 'q': type = optarg; break;
        case 's': if (!arg_u64("--seed", optarg, &seed)) return 2; break;
        case 'c': if (!arg_int("--ctx", optarg, 1, 16777216, &ctx)) return 2; break;
        case 't': if (!arg_int("--threads", optarg, 1, 1024, &threads)) return 2; break;
        case OPT_NLAYER: if (!arg_int("--n-layer", optarg, 1, 4096, &n_layer)) return 2; break;
        case OPT_LIST: return list_models();
        case OPT_QUIET: quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "citadel synth: unexpected argument '%s'\n\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!model || !vocab || !out) {
        fprintf(stderr, "citadel synth: %s is required (see --list for models; any GGUF with a tokenizer, e.g. "
                        "stories260K.gguf, serves as --vocab)\n",
                !model ? "--model" : !vocab ? "--vocab" : "--output");
        return 2;
    }
    struct cit_synth_params p = {.vocab_path = vocab, .seed = seed, .n_threads = (unsigned)threads};
    char err[768];
    if (!cit_ftype_parse(type, &p.ftype)) {
        fprintf(stderr, "citadel synth: unknown type '%s' (choose one of %s)\n", type, cit_ftype_list());
        return 2;
    }
    if (cit_synth_find_shape(model, &p.shape, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel synth: %s\n", err);
        return 2;
    }
    if (ctx)
        p.shape.n_ctx = (uint32_t)ctx;
    if (n_layer)
        p.shape.n_layer = (uint32_t)n_layer;

    struct progress pr;
    progress_init(&pr, "synth");
    p.progress = quiet ? NULL : progress_update;
    p.note = quiet ? NULL : progress_note;
    p.cb_arg = &pr;
    struct cit_quantize_stats s;
    enum cit_status st = cit_synth_write(&p, out, &s, err, sizeof err);
    progress_end(&pr);
    if (st != CIT_OK) {
        fprintf(stderr, "citadel synth: %s\n", err);
        return 1;
    }
    char b1[32];
    printf("wrote %s: %s shape%s, %s, %" PRIu64 " weights (%.2f bits per weight), %s\n", out, p.shape.id,
           n_layer ? " (layer count overridden)" : "", cit_ftype_name(p.ftype), s.n_weights,
           s.n_weights ? 8.0 * (double)s.tensor_bytes / (double)s.n_weights : 0.0,
           fmt_bytes(s.out_bytes, b1, sizeof b1));
    printf("  tensors:");
    for (uint32_t t = 0; t < CIT_TYPE_COUNT; t++)
        if (s.type_count[t])
            printf(" %zu %s", s.type_count[t], cit_type_traits(t)->name);
    printf(" (%zu in all)\n  time %.2f s\n", s.n_tensors, progress_elapsed(&pr));
    return 0;
}
