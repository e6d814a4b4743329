/* decode_ab.c: whole one-token decode steps of a real model (cit_decode: the
 * matmuls and everything between them, attention over a growing cache
 * included) under two settings of the row kernels' prefetch
 * (cit_row_prefetch), alternating every BLOCK tokens within one process, so
 * the drift of a shared host hits both alike. bench/model_ab.c times the
 * matmul loops alone; this times what `citadel bench`'s tg rows time. Not
 * part of the build:
 *
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -I src -I include bench/decode_ab.c build/libcitadel.a -lpthread -lm \
 *       -lpcre2-8 -ljansson -lmicrohttpd -lsodium -o /tmp/decode_ab
 *   /tmp/decode_ab MODEL.gguf ROUNDS [BLOCK] [BLOCKS]
 *
 * Settings A and B: the CPU's own with the fields named by A_ROW_ORDER,
 * A_ROW_ORDER_K, A_ROW_ORDER_Q8, A_ROW_ORDER_K_SB, A_ROW_ORDER_BLOCKS (B_...)
 * replaced, as in model_ab.c. A round is 2 x BLOCKS blocks of BLOCK tokens
 * (defaults 8 and 8), the arms taking turns, the first arm flipping every
 * round; one sequence of up to 500 positions, cleared when full. Before and
 * after each round citadel bench's bandwidth probe runs (256 MiB in 2 MiB
 * pages, best of 3 passes); each round prints both arms' t/s, B/A, the two
 * probes and each arm's share of the higher probe (t/s x the weight bytes a
 * token reads / bandwidth, as citadel bench's tg rows, less the KV cache).
 * For a form that no field selects, build a variant kernel object whose
 * form reads one field that the model does not otherwise use (session 19:
 * the Q4_K prefetch's parts from row_order_q8 on a Q4_K_M file) and link it
 * before libcitadel.a. */
#include <stdio.h>

#include "citadel/model.h"
#include "kernels/probe.h"
#include "model/roofline.h"
#include "qbench.h"

static int fail(const char *what, const char *err)
{
    fprintf(stderr, "decode_ab: %s: %s\n", what, err);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf ROUNDS [BLOCK] [BLOCKS]\n", argv[0]);
        return 2;
    }
    const int rounds = atoi(argv[2]), block = argc > 3 ? atoi(argv[3]) : 8, blocks = argc > 4 ? atoi(argv[4]) : 8;
    if (rounds < 1 || block < 1 || blocks < 1)
        return fail("arguments", "ROUNDS, BLOCK and BLOCKS must be positive");
    char err[256];
    struct cit_model *m = NULL;
    if (cit_model_load(argv[1], &m, err, sizeof err) != CIT_OK)
        return fail(argv[1], err);
    struct cit_roofline rl;
    if (cit_roofline_of_model(m, &rl, err, sizeof err) != CIT_OK)
        return fail("roofline", err);
    const double gb_per_token = (double)rl.weight_bytes_per_token / 1e9;
    const struct cit_context_params cp = {.n_ctx = 512, .n_threads = 2};
    struct cit_context *c = NULL;
    if (cit_context_new(m, &cp, &c, err, sizeof err) != CIT_OK)
        return fail("context", err);
    struct cit_row_prefetch set[2] = {*cit_row_prefetch(), *cit_row_prefetch()};
    qb_row_prefetch_setting(&set[0], "A");
    qb_row_prefetch_setting(&set[1], "B");
    struct cit_bw_probe *probe = NULL;
    if (cit_bw_probe_new(2, (uint64_t)256 << 20, &probe, err, sizeof err) != CIT_OK)
        return fail("probe", err);
    const int32_t n_vocab = (int32_t)cit_model_info(m)->n_vocab;
    int32_t pos = 0;
    for (int r = 0; r < rounds; r++) {
        double bw[2] = {0, 0}, secs[2] = {0, 0};
        if (cit_bw_probe_read(probe, 3, &bw[0], err, sizeof err) != CIT_OK)
            return fail("probe", err);
        for (int k = 0; k < 2 * blocks; k++) {
            const int arm = (k + r) % 2;
            cit_row_prefetch_override(&set[arm]);
            const double t0 = now();
            for (int i = 0; i < block; i++, pos++) {
                if (pos == 500) {
                    cit_kv_seq_rm(c, 0, 0);
                    pos = 0;
                }
                const struct cit_batch_item it = {(int32_t)(((int64_t)pos * 7919 + 13) % n_vocab), pos, 0, true};
                if (cit_decode(c, &it, 1, err, sizeof err) != CIT_OK)
                    return fail("decode", err);
            }
            secs[arm] += now() - t0;
        }
        if (cit_bw_probe_read(probe, 3, &bw[1], err, sizeof err) != CIT_OK)
            return fail("probe", err);
        const double n = (double)block * blocks, ta = n / secs[0], tb = n / secs[1];
        const double top = bw[0] > bw[1] ? bw[0] : bw[1];
        printf("round %d: A %.2f t/s, B %.2f t/s, B/A %.3f; probe %.2f / %.2f GB/s, A %.3f and B %.3f of the higher\n",
               r, ta, tb, tb / ta, bw[0], bw[1], ta * gb_per_token / top, tb * gb_per_token / top);
        fflush(stdout);
    }
    cit_row_prefetch_override(NULL);
    cit_bw_probe_free(probe);
    cit_context_free(c);
    cit_model_free(m);
    return 0;
}
