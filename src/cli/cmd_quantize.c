/* cmd_quantize.c: `citadel quantize IN.gguf OUT.gguf TYPE`: converts an
 * F32/F16/BF16 model to one of the presets of citadel/quantize.h and prints
 * what it did (sizes, bits per weight, tensors per type, time). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "citadel/quantize.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/progress.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel quantize IN.gguf OUT.gguf TYPE [options]\n\n"
            "Converts a model with F32, F16 or BF16 weights to TYPE, one of:\n"
            "  Q8_0    8.5 bits per weight; every matrix Q8_0\n"
            "  Q6_K    6.6 bits; every matrix Q6_K\n"
            "  Q5_K_M  ~5.7 bits; Q5_K, with output, and attn_v/ffn_down of some layers, at Q6_K\n"
            "  Q4_K_M  ~4.9 bits; Q4_K, with output, and attn_v/ffn_down of some layers, at Q6_K\n"
            "  Q4_0    ~4.6 bits; Q4_0, output at Q6_K\n"
            "  F16, BF16, F32  unquantized\n"
            "Norms and biases stay F32. All metadata is copied; OUT is written to a\n"
            "temporary file and renamed when complete. See docs/quantize.md.\n\n"
            "options:\n"
            "  -t, --threads N    threads (default: all CPUs)\n"
            "  -q, --quiet        no progress line or notes\n"
            "  -h, --help         this help\n");
}

int cmd_quantize(int argc, char **argv)
{
    static const struct option opts[] = {{"threads", required_argument, NULL, 't'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    long long threads = 0;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 't': if (!arg_int("--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "citadel quantize: expected IN.gguf OUT.gguf TYPE (got %d argument%s)\n\n", argc - optind,
                argc - optind == 1 ? "" : "s");
        usage(stderr);
        return 2;
    }
    const char *in = argv[optind], *out = argv[optind + 1], *tname = argv[optind + 2];
    enum cit_ftype ft;
    if (!cit_ftype_parse(tname, &ft)) {
        fprintf(stderr, "citadel quantize: unknown TYPE '%s' (choose one of %s)\n", tname, cit_ftype_list());
        return 2;
    }
    if (strcmp(in, out) == 0) {
        fprintf(stderr, "citadel quantize: OUT is the same path as IN (%s): the input is never overwritten; "
                        "choose another output path\n", in);
        return 2;
    }

    struct progress pr;
    progress_init(&pr, "quantize");
    struct cit_quantize_params p = {.ftype = ft, .n_threads = (unsigned)threads,
                                    .progress = quiet ? NULL : progress_update,
                                    .note = quiet ? NULL : progress_note, .cb_arg = &pr};
    struct cit_quantize_stats s;
    char err[768];
    enum cit_status st = cit_quantize_file(in, out, &p, &s, err, sizeof err);
    progress_end(&pr);
    if (st != CIT_OK) {
        fprintf(stderr, "citadel quantize: %s\n", err);
        return 1;
    }
    double secs = progress_elapsed(&pr);
    char b1[32], b2[32];
    printf("wrote %s (%s)\n", out, cit_ftype_name(ft));
    printf("  input  %s\n  output %s (%.1f%% of the input)\n", fmt_bytes(s.in_bytes, b1, sizeof b1),
           fmt_bytes(s.out_bytes, b2, sizeof b2), s.in_bytes ? 100.0 * (double)s.out_bytes / (double)s.in_bytes : 0.0);
    printf("  %" PRIu64 " weights, %.2f bits per weight (tensor data)\n", s.n_weights,
           s.n_weights ? 8.0 * (double)s.tensor_bytes / (double)s.n_weights : 0.0);
    printf("  tensors:");
    for (uint32_t t = 0; t < CIT_TYPE_COUNT; t++)
        if (s.type_count[t])
            printf(" %zu %s", s.type_count[t], cit_type_traits(t)->name);
    printf(" (%zu in all", s.n_tensors);
    if (s.n_fallback)
        printf(", %zu with a fallback type", s.n_fallback);
    printf(")\n  time %.2f s\n", secs);
    return 0;
}
