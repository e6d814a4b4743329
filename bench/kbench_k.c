/* kbench_k.c: micro-benchmark of the K-quant matmul kernels (Q4_K, Q5_K,
 * Q6_K) on the active tier (cap it with CITADEL_ISA=avx2|avx512|...).
 * Not part of the CMake build:
 *   gcc -O2 -I src -I include bench/kbench_k.c build/libcitadel.a -lpthread -lm -lpcre2-8 -ljansson -o build/kbench_k
 *   build/kbench_k [decode|gemm|all] [threads...]
 * decode: n_tokens = 1, weight GB/s; the matrix is one of several copies
 *   (together over 1 GiB, beyond the last-level cache) used in turn, so the
 *   weights stream from memory.
 *   KBENCH_TYPES=q4_k,q6_k and KBENCH_SHAPE=2048x2048 select; KBENCH_HOT=1 uses one copy instead (cache-resident when it fits: the
 *   kernel's compute rate rather than the memory's).
 * gemm: n_tokens = 512 or $KBENCH_TOKENS (after packing, which is timed apart), GOPS =
 *   2 * rows * n_in * tokens / s; with one thread also "sliced": the sum of
 *   the best times of 256-row slices (the rate when not preempted).
 * Every figure is the best of several timed repetitions. Weights are random
 * codes with moderate finite scales; speed does not depend on the values. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c17 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "kernels/matmul.h"
#include "tensor/quants.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void put_half(unsigned char *p, float v)
{
    uint16_t h = cit_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

static void fill(uint32_t type, unsigned char *w, size_t bytes)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t v = next();
        memcpy(w + i, &v, 8);
    }
    for (size_t b = 0; b + tr->type_size <= bytes; b += tr->type_size) {
        unsigned char *blk = w + b;
        if (type == CIT_TYPE_Q6_K) {
            put_half(blk + 208, 0.01f);
        } else {
            put_half(blk, 0.01f);
            put_half(blk + 2, 0.003f);
        }
    }
}

struct shape {
    unsigned rows, n_in;
};
static const struct shape shapes[] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};

static void bench(uint32_t type, struct cit_threadpool *pool, unsigned threads, bool decode)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    const char *only = getenv("KBENCH_SHAPE"); /* e.g. "2048x2048" */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        struct shape s = shapes[si];
        char sname[32];
        snprintf(sname, sizeof sname, "%ux%u", s.rows, s.n_in);
        if (only && strcmp(only, sname) != 0)
            continue;
        size_t row_bytes = s.n_in / tr->block_size * tr->type_size, mat = row_bytes * s.rows;
        size_t copies = decode && !getenv("KBENCH_HOT") ? (size_t)(1u << 30) / mat + 1 : 1;
        unsigned char *w = malloc(mat * copies);
        size_t n_tokens = decode ? 1 : getenv("KBENCH_TOKENS") ? (size_t)atoi(getenv("KBENCH_TOKENS")) : 512;
        float *x = malloc(sizeof(float) * s.n_in * n_tokens);
        float *y = malloc(sizeof(float) * s.rows * n_tokens);
        uint64_t ab = 0;
        cit_matmul_act_bytes(type, s.n_in, n_tokens, &ab);
        void *act = malloc(ab);
        if (!w || !x || !y || !act) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        fill(type, w, mat * copies);
        for (size_t i = 0; i < s.n_in * n_tokens; i++)
            x[i] = (float)((int64_t)(next() % 2001) - 1000) * 0.001f;
        struct cit_matrix m = {w, tr, type, s.n_in, s.rows, row_bytes};
        double best = 1e30, best_pack = 1e30;
        int reps = decode ? (int)(copies * 3 > 40 ? copies * 3 : 40) : 8;
        for (int r = 0; r < reps; r++) {
            m.data = w + (size_t)r % copies * mat;
            double t0 = now();
            cit_matmul_pack(pool, &m, x, n_tokens, act);
            double t1 = now();
            cit_matmul_packed(pool, &m, act, n_tokens, y);
            double t2 = now();
            if (t2 - t1 < best)
                best = t2 - t1;
            if (t1 - t0 < best_pack)
                best_pack = t1 - t0;
        }
        /* On a shared machine a run of tens of ms is rarely left alone; for
         * one thread also time 256-row slices (best of several each) and
         * sum them: the rate when not preempted. */
        double sliced = 0;
        if (!decode && threads == 1) {
            const struct cit_kernel *k = cit_kernel_get(type);
            m.data = w;
            for (unsigned r0 = 0; r0 < s.rows; r0 += 256) {
                unsigned r1 = r0 + 256 < s.rows ? r0 + 256 : s.rows;
                double b = 1e30;
                for (int r = 0; r < 12; r++) {
                    double t1 = now();
                    k->gemm(w, row_bytes, s.n_in, r0, r1, act, n_tokens, y, s.rows);
                    double t2 = now();
                    b = t2 - t1 < b ? t2 - t1 : b;
                }
                sliced += b;
            }
        }
        if (decode)
            printf("%-5s %-10s decode  %5ux%-5u threads %u: %7.1f us  %6.2f GB/s\n", tr->name,
                   cit_isa_name(cit_isa_active()), s.rows, s.n_in, threads, best * 1e6, (double)mat / best * 1e-9);
        else
        {
            printf("%-5s %-10s gemm%-4zu %5ux%-5u threads %u: %7.2f ms  %6.1f GOPS  (pack %.2f ms)", tr->name,
                   cit_isa_name(cit_isa_active()), n_tokens, s.rows, s.n_in, threads, best * 1e3,
                   2.0 * s.rows * s.n_in * (double)n_tokens / best * 1e-9, best_pack * 1e3);
            if (sliced > 0)
                printf("  sliced %6.1f GOPS", 2.0 * s.rows * s.n_in * (double)n_tokens / sliced * 1e-9);
            printf("\n");
        }
        fflush(stdout);
        free(w);
        free(x);
        free(y);
        free(act);
    }
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    unsigned tlist[8] = {1, 2};
    int nt = 2;
    if (argc > 2) {
        nt = 0;
        for (int i = 2; i < argc && nt < 8; i++)
            tlist[nt++] = (unsigned)atoi(argv[i]);
    }
    const char *types_env = getenv("KBENCH_TYPES"); /* e.g. "q4_k,q6_k" */
    static const uint32_t types[] = {CIT_TYPE_Q4_K, CIT_TYPE_Q6_K, CIT_TYPE_Q5_K};
    for (int ti = 0; ti < nt; ti++) {
        struct cit_threadpool *pool = NULL;
        char err[256];
        if (cit_threadpool_new(tlist[ti], &pool, err, sizeof err) != 0) {
            fprintf(stderr, "threadpool: %s\n", err);
            return 1;
        }
        for (size_t k = 0; k < 3; k++) {
            const char *name = cit_type_traits(types[k])->name;
            if (types_env) {
                char lower[16];
                size_t n = strlen(name);
                for (size_t i = 0; i <= n && i < sizeof lower; i++)
                    lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
                lower[sizeof lower - 1] = 0;
                if (!strstr(types_env, lower))
                    continue;
            }
            if (!strcmp(what, "decode") || !strcmp(what, "all"))
                bench(types[k], pool, tlist[ti], true);
            if (!strcmp(what, "gemm") || !strcmp(what, "all"))
                bench(types[k], pool, tlist[ti], false);
        }
        cit_threadpool_free(pool);
    }
    return 0;
}
