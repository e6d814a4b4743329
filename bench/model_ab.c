/* model_ab.c: the matmuls of whole one-token decode steps of a real model
 * file, under two settings of the row kernels' prefetch (cit_row_prefetch),
 * alternating within one process so the drift of a shared host hits both
 * alike. bench/kernel_ab.c compares one matrix shape at a time; this runs
 * the model's own sequence (per layer: Q/K/V as one loop, attn_output,
 * gate/up as one loop, ffn_down; then output), the matrices mapped from the
 * file as citadel maps them, so the costs between loops and between shapes
 * count too. Attention and the other element-wise work are left out: the
 * input of every matmul is a fixed vector. Not part of the build:
 *
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -I src -I include bench/model_ab.c build/libcitadel.a -lpthread -lm \
 *       -lpcre2-8 -ljansson -lmicrohttpd -lsodium -o /tmp/model_ab
 *   /tmp/model_ab MODEL.gguf ROUNDS [STEPS] [WHICH]
 *
 * Setting A is the CPU's own with the fields named by the environment
 * variables A_ROW_ORDER, A_ROW_ORDER_K, A_ROW_ORDER_Q8, A_ROW_ORDER_K_SB and
 * A_ROW_ORDER_BLOCKS replaced, B likewise with B_...
 * (bytes ahead, 0 turning that row-order form off; for _K_SB and _BLOCKS the
 * longest rows the forms take). STEPS decode steps per
 * setting and round (default 16); WHICH (default 0) runs all the matmuls, or
 * only 1: gate/up, 2: ffn_gate alone, 3: output, 4: Q/K/V, 5: attn_output,
 * 6: ffn_down. Prints per round each setting's GB/s of weight bytes and B/A;
 * which setting goes first flips every round. Each round also reads the same
 * bytes plainly (zmm loads, as the bandwidth probe) in the same loops and
 * prints A's and B's share of that. The first round also faults the mapping
 * in: leave it out. MAB_PROBE=1 also runs citadel bench's bandwidth probe
 * (an anonymous 256 MiB buffer in 2 MiB pages, best of 3 passes) before
 * and after each round, and prints the plain read's and A's share of the
 * higher of the two: the limit `citadel bench` measures tg against.
 * MAB_PF=BYTES: the plain read also prefetches every line BYTES ahead into
 * L2, as the row-order decodes do (8192 for theirs): what the loops and the
 * mapping allow a kernel with no arithmetic. MAB_COPY=1: every arm reads an
 * anonymous copy of the matrices in 2 MiB pages (the file's layout, as
 * the probe's buffer is mapped) in place of the file mapping. */
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/pages.h"
#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "kernels/probe.h"
#include "model/model_impl.h"
#include "qbench.h"

static size_t bytes_of(const struct cit_matrix *m)
{
    return (size_t)m->n_out * m->row_bytes;
}

/* The step's matrices in file order: each layer's 7, then output; NULL past the end. */
static struct cit_matrix *nth_matrix(struct cit_model *m, size_t k)
{
    if (k / 7 < m->info.n_layer) {
        struct cit_layer *L = &m->layers[k / 7];
        struct cit_matrix *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        return w[k % 7];
    }
    return k == 7 * (size_t)m->info.n_layer ? &m->output : NULL;
}

/* A matrix's bytes rounded up to a 4 KiB boundary: its room in the copy. */
static size_t copy_room(const struct cit_matrix *w)
{
    return (bytes_of(w) + 4095) / 4096 * 4096;
}

/* MAB_COPY: those matrices moved into one anonymous 2 MiB-page mapping (never
 * given back: the process ends first), each at a 4 KiB boundary. */
static bool copy_weights(struct cit_model *m)
{
    size_t total = 0;
    struct cit_matrix *w;
    for (size_t k = 0; (w = nth_matrix(m, k)); k++)
        total += copy_room(w);
    unsigned char *p = cit_map_anon_huge(total);
    if (!p)
        return false;
    for (size_t k = 0; (w = nth_matrix(m, k)); k++) {
        memcpy(p, w->data, bytes_of(w));
        w->data = p;
        p += copy_room(w);
    }
    return true;
}

/* The plain-read arm: rows [begin, end) of a loop's matrices laid end to
 * end as cit_matmul_packed_n lays them (whole 16-row tiles), read with four
 * zmm accumulators. */
struct plain_job {
    const struct cit_matrix *const *w;
    size_t n, start[4], ahead;
    uint64_t sink[64];
};

static void plain_fn(void *arg, size_t begin, size_t end, unsigned tid)
{
    struct plain_job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        size_t b = begin > j->start[i] ? begin : j->start[i], e = end < j->start[i + 1] ? end : j->start[i + 1];
        const struct cit_matrix *w = j->w[i];
        if (e > j->start[i] + w->n_out)
            e = j->start[i] + w->n_out;
        if (b < e) {
            const unsigned char *d = w->data;
            const unsigned char *p = d + (b - j->start[i]) * w->row_bytes, *q = d + (e - j->start[i]) * w->row_bytes;
            j->sink[(tid * 8) % 64] ^= plain_read(p, q, j->ahead);
        }
    }
}

struct run {
    const struct cit_model *m;
    struct cit_threadpool *pool;
    const float *x;
    float *y[3];
    void *act;
    int which;
    bool plain;   /* read the weights plainly in place of the matmuls */
    size_t ahead; /* MAB_PF: the plain read prefetches each line this many bytes ahead (L2) */
};

/* One loop of n matrices sharing an input, if `which` asks for it. */
static void loop(const struct run *r, int id, const struct cit_matrix *const *w, size_t n)
{
    if (r->which != id && (r->which || id == 2)) /* 0: all but ffn_gate alone */
        return;
    if (r->plain) {
        struct plain_job j = {.w = w, .n = n, .ahead = r->ahead};
        for (size_t i = 0; i < n; i++)
            j.start[i + 1] = j.start[i] + ((size_t)w[i]->n_out + 15) / 16 * 16;
        cit_threadpool_for(r->pool, j.start[n], 16, plain_fn, &j);
        return;
    }
    cit_matmul_pack(r->pool, w[0], r->x, 1, r->act);
    cit_matmul_packed_n(r->pool, w, n, r->act, 1, r->y);
}

static size_t step(const struct run *r, bool count_only)
{
    const struct cit_model *m = r->m;
    size_t bytes = 0;
    for (uint32_t l = 0; l < m->info.n_layer; l++) {
        const struct cit_layer *L = &m->layers[l];
        const struct cit_matrix *qkv[3] = {&L->wq, &L->wk, &L->wv}, *gu[2] = {&L->wgate, &L->wup};
        const struct cit_matrix *o[1] = {&L->wo}, *down[1] = {&L->wdown}, *gate[1] = {&L->wgate};
        if (count_only) {
            int w = r->which;
            bytes += (!w || w == 4 ? bytes_of(&L->wq) + bytes_of(&L->wk) + bytes_of(&L->wv) : 0) +
                     (!w || w == 5 ? bytes_of(&L->wo) : 0) + (!w || w == 1 ? 2 * bytes_of(&L->wgate) : 0) +
                     (w == 2 ? bytes_of(&L->wgate) : 0) + (!w || w == 6 ? bytes_of(&L->wdown) : 0);
            continue;
        }
        loop(r, 4, qkv, 3);
        loop(r, 5, o, 1);
        loop(r, 1, gu, 2);
        loop(r, 2, gate, 1);
        loop(r, 6, down, 1);
    }
    const struct cit_matrix *out[1] = {&m->output};
    if (count_only)
        return bytes + (!r->which || r->which == 3 ? bytes_of(&m->output) : 0);
    loop(r, 3, out, 1);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: model_ab MODEL.gguf ROUNDS [STEPS] [WHICH 0-6]\n");
        return 2;
    }
    char err[256];
    struct cit_model *m = NULL;
    if (cit_model_load(argv[1], &m, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "model_ab: %s\n", err);
        return 1;
    }
    const int rounds = atoi(argv[2]), steps = argc > 3 ? atoi(argv[3]) : 16, which = argc > 4 ? atoi(argv[4]) : 0;
    if (rounds < 1 || steps < 1 || which < 0 || which > 6) {
        fprintf(stderr, "model_ab: ROUNDS >= 1, STEPS >= 1, WHICH 0-6\n");
        return 2;
    }
    if (getenv("MAB_COPY") && !copy_weights(m)) {
        fprintf(stderr, "model_ab: MAB_COPY: out of memory\n");
        return 1;
    }
    struct run r = {.m = m, .which = which, .ahead = env_size("MAB_PF", 0)};
    if (cit_threadpool_new(2, &r.pool, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "model_ab: %s\n", err);
        return 1;
    }
    /* inputs and outputs sized for the widest matrix; the packed input for the longest row */
    size_t wide = m->output.n_out, in = m->info.n_embd, act_bytes = 0;
    for (uint32_t l = 0; l < m->info.n_layer; l++) {
        const struct cit_layer *L = &m->layers[l];
        if (L->wgate.n_out > wide)
            wide = L->wgate.n_out;
        if (L->wdown.n_in > in)
            in = L->wdown.n_in;
    }
    float *x = malloc(in * sizeof *x);
    for (size_t i = 0; i < 3; i++)
        r.y[i] = malloc(wide * sizeof(float));
    uint64_t need = 0;
    for (uint32_t t = 0; t < CIT_TYPE_COUNT; t++)
        if (cit_matmul_supported(t, in) && cit_matmul_act_bytes(t, in, 1, &need) && need > act_bytes)
            act_bytes = (size_t)need;
    r.act = malloc(act_bytes ? act_bytes : 1);
    if (!x || !r.y[0] || !r.y[1] || !r.y[2] || !r.act) {
        fprintf(stderr, "model_ab: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < in; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    r.x = x;
    const double bytes = (double)step(&r, true) * steps;
    const struct cit_row_prefetch cpu = *cit_row_prefetch();
    struct cit_row_prefetch set[2] = {cpu, cpu};
    qb_row_prefetch_setting(&set[0], "A");
    qb_row_prefetch_setting(&set[1], "B");
    for (int i = 0; i < 2; i++)
        printf("%c: row_order %u, row_order_q8 %u, row_order_blocks %u, row_order_k %u, row_order_k_sb %u\n", 'A' + i,
               set[i].row_order, set[i].row_order_q8, set[i].row_order_blocks, set[i].row_order_k,
               set[i].row_order_k_sb);
    printf("%.1f MB per step\n", bytes / steps / 1e6);
    struct cit_bw_probe *probe = NULL;
    if (getenv("MAB_PROBE") && cit_bw_probe_new(2, (uint64_t)256 << 20, &probe, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "model_ab: %s\n", err);
        return 1;
    }
    for (int i = 0; i < rounds; i++) {
        double t[2], bw[2] = {0, 0};
        if (probe && cit_bw_probe_read(probe, 3, &bw[0], err, sizeof err) != CIT_OK)
            fprintf(stderr, "model_ab: %s\n", err);
        for (int k = 0; k < 2; k++) {
            const int s = i % 2 ? 1 - k : k;
            cit_row_prefetch_override(&set[s]);
            double t0 = now();
            for (int n = 0; n < steps; n++)
                step(&r, false);
            t[s] = now() - t0;
        }
        r.plain = true;
        double t0 = now();
        for (int n = 0; n < steps; n++)
            step(&r, false);
        const double tp = now() - t0;
        r.plain = false;
        printf("round %d: A %.2f GB/s, B %.2f GB/s, B/A %.3f; plain %.2f GB/s, A %.3f and B %.3f of it", i,
               bytes / t[0] / 1e9, bytes / t[1] / 1e9, t[0] / t[1], bytes / tp / 1e9, tp / t[0], tp / t[1]);
        if (probe && cit_bw_probe_read(probe, 3, &bw[1], err, sizeof err) == CIT_OK) {
            const double lim = bw[0] > bw[1] ? bw[0] : bw[1];
            printf("; probe %.2f / %.2f GB/s, plain %.3f and A %.3f of the higher", bw[0], bw[1],
                   bytes / tp / 1e9 / lim, bytes / t[0] / 1e9 / lim);
        }
        printf("\n");
        fflush(stdout);
    }
    cit_bw_probe_free(probe);
    cit_row_prefetch_override(NULL);
    cit_threadpool_free(r.pool);
    cit_model_free(m);
    free(x);
    for (size_t i = 0; i < 3; i++)
        free(r.y[i]);
    free(r.act);
    return 0;
}
