/* cmd_inspect.c: `citadel inspect FILE`: what is inside a GGUF file (header,
 * metadata, tensor table) and how much memory the model needs at a context
 * size. Works on any valid GGUF; the memory section needs a model the engine
 * can load. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "citadel/gguf.h"
#include "citadel/model.h"
#include "citadel/tensor.h"
#include "cli/args.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel inspect FILE.gguf [options]\n\n"
            "Prints the file's header, metadata, tensor table (name, type, shape, bytes)\n"
            "and the memory the model needs at a context size.\n\n"
            "options:\n"
            "  -c, --ctx N        context size for the memory estimate (default: the model's training context)\n"
            "  -s, --seqs N       concurrent sequences sharing the KV cache (default 1)\n"
            "      --items N      array elements shown per metadata value (default 8)\n"
            "      --no-tensors   skip the tensor table\n"
            "  -h, --help         this help\n");
}

static void print_shape(const struct cit_gguf_tensor *t, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = 0;
    for (uint32_t d = 0; d < t->n_dims && off < len; d++)
        off += (size_t)snprintf(buf + off, len - off, d ? " x %" PRIu64 : "%" PRIu64, t->ne[d]);
}

static void print_memory(const char *path, uint64_t ctx, uint64_t seqs, uint64_t weight_bytes)
{
    char err[512], b1[32], b2[32], b3[32], b4[32];
    struct cit_model *m = NULL;
    if (cit_model_load(path, &m, err, sizeof err) != CIT_OK) {
        printf("\nmemory: not estimated: %s\n", err);
        return;
    }
    const struct cit_model_info *info = cit_model_info(m);
    if (ctx == 0)
        ctx = info->n_ctx_train;
    struct cit_context_params p = {
        .n_ctx = (uint32_t)ctx, .n_seq_max = (uint32_t)seqs, .n_batch_max = 512, .n_threads = 1};
    uint64_t kv = 0, scratch = 0;
    if (ctx > UINT32_MAX || seqs > UINT32_MAX ||
        cit_context_memory(m, &p, &kv, &scratch, err, sizeof err) != CIT_OK) {
        printf("\nmemory at context %" PRIu64 ": not possible: %s\n", ctx, err);
        cit_model_free(m);
        return;
    }
    printf("\nmodel: %s, %u layers, embedding %u, %u heads (%u KV heads, head dim %u), FFN %u, vocab %u, trained context %u\n",
           info->arch, info->n_layer, info->n_embd, info->n_head, info->n_head_kv, info->head_dim, info->n_ff,
           info->n_vocab, info->n_ctx_train);
    printf("memory at context %" PRIu64 " x %" PRIu64 " sequence(s):\n", ctx, seqs);
    printf("  weights (mapped from the file) %12s\n", fmt_bytes(weight_bytes, b1, sizeof b1));
    printf("  KV cache (f32)                 %12s\n", fmt_bytes(kv, b2, sizeof b2));
    printf("  compute scratch                %12s\n", fmt_bytes(scratch, b3, sizeof b3));
    printf("  total                          %12s\n", fmt_bytes(weight_bytes + kv + scratch, b4, sizeof b4));
    cit_model_free(m);
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"ctx", required_argument, NULL, 'c'}, {"seqs", required_argument, NULL, 's'},
        {"items", required_argument, NULL, 'i'}, {"no-tensors", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    long long ctx = 0, seqs = 1, items = 8;
    int show_tensors = 1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': if (!arg_int("--ctx", optarg, 1, 16777216, &ctx)) return 2; break;
        case 's': if (!arg_int("--seqs", optarg, 1, 4096, &seqs)) return 2; break;
        case 'i': if (!arg_int("--items", optarg, 0, 1000000, &items)) return 2; break;
        case 'T': show_tensors = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "citadel inspect: expected exactly one FILE.gguf\n\n");
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    char err[512], b1[32];
    struct cit_gguf *g = NULL;
    if (cit_gguf_open(path, &g, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel inspect: %s: %s\n", path, err);
        return 1;
    }
    printf("file: %s\n  size %s, GGUF v%u, %zu metadata keys, %zu tensors, alignment %u, data at offset %" PRIu64 "\n",
           path, fmt_bytes(cit_gguf_file_size(g), b1, sizeof b1), cit_gguf_version(g), cit_gguf_n_kv(g),
           cit_gguf_n_tensors(g), cit_gguf_alignment(g), cit_gguf_data_offset(g));

    printf("\nmetadata:\n");
    static char val[4096];
    for (size_t i = 0; i < cit_gguf_n_kv(g); i++) {
        cit_gguf_kv_format(g, i, val, sizeof val, (size_t)items);
        printf("  %-44s %-7s %s\n", cit_gguf_kv_key(g, i), cit_gguf_type_name(cit_gguf_kv_type(g, i)), val);
    }

    uint64_t n_params = 0, n_bytes = 0;
    if (show_tensors && cit_gguf_n_tensors(g))
        printf("\ntensors:\n  %-40s %-8s %-24s %12s\n", "name", "type", "shape", "bytes");
    for (size_t i = 0; i < cit_gguf_n_tensors(g); i++) {
        const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, i);
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            ne *= t->ne[d]; /* the reader has checked the product fits */
        n_params += ne;
        n_bytes += t->nbytes;
        if (show_tensors) {
            char shape[96];
            const struct cit_type_traits *tt = cit_type_traits(t->type);
            print_shape(t, shape, sizeof shape);
            printf("  %-40s %-8s %-24s %12" PRIu64 "\n", t->name, tt ? tt->name : "?", shape, t->nbytes);
        }
    }
    if (cit_gguf_n_tensors(g))
        printf("\n%" PRIu64 " parameters (%.2f M), %s of tensor data, %.2f bits per weight\n", n_params,
               (double)n_params / 1e6, fmt_bytes(n_bytes, b1, sizeof b1),
               n_params ? 8.0 * (double)n_bytes / (double)n_params : 0.0);
    cit_gguf_free(g);
    if (n_params)
        print_memory(path, (uint64_t)ctx, (uint64_t)seqs, n_bytes);
    return 0;
}
