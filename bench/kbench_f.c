/* kbench_f.c: micro-benchmark of the F32/F16/BF16 matmul kernels and of the
 * attention op. Built by hand (not part of the build):
 *   gcc -O2 -I src -I include bench/kbench_f.c build/libcitadel.a -lpthread -lm -lpcre2-8 -ljansson
 * Prints, for the active tier (cap it with CITADEL_ISA), decode GB/s of weight
 * streaming (1 token) and batch GFLOP/s (n tokens) for 1 and 2 threads, the
 * best of several runs (wall clock), and the time (wall and thread CPU) of
 * causal attention over 512 tokens x 32 heads x 64 dims (4 KV heads). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "tensor/quants.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of the calling thread: on a shared machine, time spent
 * descheduled does not count. */
static double cpu_now(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static float frand(void)
{
    return (float)rand() / (float)RAND_MAX - 0.5f;
}

static void bench_matmul(uint32_t type, uint32_t n_out, uint32_t n_in, size_t n_tok, unsigned threads, int reps)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    size_t row = (size_t)n_in * tr->type_size;
    unsigned char *w = aligned_alloc(64, row * n_out);
    float *tmp = malloc(n_in * sizeof(float));
    for (uint32_t r = 0; r < n_out; r++) {
        for (uint32_t i = 0; i < n_in; i++)
            tmp[i] = frand();
        tr->from_float(tmp, w + r * row, n_in);
    }
    float *x = malloc((size_t)n_in * n_tok * sizeof(float));
    for (size_t i = 0; i < (size_t)n_in * n_tok; i++)
        x[i] = frand();
    float *y = malloc((size_t)n_out * n_tok * sizeof(float));
    uint64_t ab = 0;
    cit_matmul_act_bytes(type, n_in, n_tok, &ab);
    void *act = aligned_alloc(64, (ab + 63) / 64 * 64);
    struct cit_matrix m = {w, tr, type, n_in, n_out, row};
    struct cit_threadpool *pool = NULL;
    char err[128];
    cit_threadpool_new(threads, &pool, err, sizeof err);
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
        int inner = n_tok == 1 ? 20 : 1;
        for (int i = 0; i < inner; i++)
            cit_matmul(pool, &m, x, n_tok, y, act);
        double dt = (now() - t0) / inner;
        if (dt < best)
            best = dt;
    }
    if (n_tok == 1)
        printf("%-4s %5ux%-5u 1 tok   %u thr: %7.3f ms  %6.2f GB/s\n", tr->name, n_out, n_in, threads, best * 1e3,
               (double)row * n_out / best / 1e9);
    else
        printf("%-4s %5ux%-5u %zu tok %u thr: %7.3f ms  %6.1f GFLOP/s\n", tr->name, n_out, n_in, n_tok, threads,
               best * 1e3, 2.0 * n_out * n_in * n_tok / best / 1e9);
    cit_threadpool_free(pool);
    free(w), free(tmp), free(x), free(y), free(act);
}

/* Causal attention of 512 tokens, 32 heads of 64 dims, 4 KV heads: what the
 * forward pass runs per layer for a 512-token prompt (one thread). */
static void bench_attention(int reps)
{
    enum { N = 512, H = 32, HKV = 4, D = 64 };
    size_t kv_dim = HKV * D;
    float *q = malloc(sizeof(float) * N * H * D), *k = malloc(sizeof(float) * N * kv_dim);
    float *v = malloc(sizeof(float) * N * kv_dim), *out = malloc(sizeof(float) * N * H * D);
    float *scores = malloc(sizeof(float) * N);
    for (size_t i = 0; i < (size_t)N * H * D; i++)
        q[i] = frand() * 4;
    for (size_t i = 0; i < N * kv_dim; i++)
        k[i] = frand() * 4, v[i] = frand();
    double best = 1e30, best_cpu = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now(), c0 = cpu_now();
        for (size_t t = 0; t < N; t++)
            for (size_t h = 0; h < H; h += H / HKV) /* a KV head's query heads together, as the forward pass */
                cit_attn_heads(out + (t * H + h) * D, q + (t * H + h) * D, H / HKV, k + (h / (H / HKV)) * D,
                               v + (h / (H / HKV)) * D, t + 1, kv_dim, D, 0.125f, scores);
        double dt = now() - t0, dc = cpu_now() - c0;
        if (dt < best)
            best = dt;
        if (dc < best_cpu)
            best_cpu = dc;
    }
    printf("attention 512 tok x 32 heads x 64 (4 kv heads), causal, 1 thr: %.2f ms wall, %.2f ms cpu\n",
           best * 1e3, best_cpu * 1e3);
    free(q), free(k), free(v), free(out), free(scores);
}

int main(int argc, char **argv)
{
    int what = argc > 1 ? atoi(argv[1]) : 0; /* 0 all, 1 matmul, 2 attention */
    printf("tier %s\n", cit_isa_name(cit_isa_active()));
    if (what != 2) {
        uint32_t types[3] = {CIT_TYPE_F16, CIT_TYPE_F32, CIT_TYPE_BF16};
        for (int ti = 0; ti < 3; ti++)
            for (unsigned th = 1; th <= 2; th++) {
                bench_matmul(types[ti], 2048, 2048, 1, th, 30);
                bench_matmul(types[ti], 5632, 2048, 1, th, 30);
            }
        for (unsigned th = 1; th <= 2; th++)
            bench_matmul(CIT_TYPE_F16, 2048, 2048, 128, th, 4);
    }
    if (what != 1)
        bench_attention(5);
    return 0;
}
