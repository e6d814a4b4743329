/* qbench.h: what the kernel and model benchmarks share (kbench_q.c,
 * kernel_ab.c, sched_ab.c, model_ab.c, decode_ab.c): a matmul job over a row
 * range, a clock, a plain read, a deterministic generator, weights with sane
 * scales, and prefetch settings from the environment. Header-only, since
 * each benchmark is built on its own from one .c file. */
#ifndef CITADEL_BENCH_QBENCH_H
#define CITADEL_BENCH_QBENCH_H

#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/repack.h"
#include "tensor/quants.h"

struct job {
    const struct cit_kernel *k;
    const unsigned char *w;
    size_t row_bytes, n_in, n_out, n_tokens;
    const void *act;
    float *y; /* (n_tokens, n_out) */
    int r16;  /* w is in the R16 layout (kernels/repack.h) */
    uint32_t type;
};

/* A cit_parallel_fn: rows [begin, end) of the job. */
static inline void rows_fn(void *arg, size_t begin, size_t end, unsigned tid)
{
    (void)tid;
    const struct job *j = arg;
    if (j->r16)
        cit_r16_gemm(j->k, j->type, j->w, j->row_bytes, j->n_in, begin, end, j->act, j->n_tokens, j->y, j->n_out);
    else
        j->k->gemm(j->w, j->row_bytes, j->n_in, begin, end, j->act, j->n_tokens, j->y, j->n_out);
}

/* The environment variable `name` as a whole number, or dflt when unset. */
static inline size_t env_size(const char *name, size_t dflt)
{
    const char *v = getenv(name);
    return v ? (size_t)strtoull(v, NULL, 10) : dflt;
}

/* The fields of *p named by the environment variables PREFIX_ROW_ORDER,
 * PREFIX_ROW_ORDER_K, PREFIX_ROW_ORDER_Q8, PREFIX_ROW_ORDER_K_SB and
 * PREFIX_ROW_ORDER_BLOCKS that are set (model_ab.c, decode_ab.c). */
static inline void qb_row_prefetch_setting(struct cit_row_prefetch *p, const char *prefix)
{
    static const char *const names[5] = {"ROW_ORDER", "ROW_ORDER_K", "ROW_ORDER_Q8", "ROW_ORDER_K_SB",
                                         "ROW_ORDER_BLOCKS"};
    uint32_t *fields[5] = {&p->row_order, &p->row_order_k, &p->row_order_q8, &p->row_order_k_sb,
                           &p->row_order_blocks};
    for (int i = 0; i < 5; i++) {
        char var[32];
        snprintf(var, sizeof var, "%s_%s", prefix, names[i]);
        *fields[i] = (uint32_t)env_size(var, *fields[i]);
    }
}

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* [p, e) read with four zmm accumulators, as the bandwidth probe reads
 * (whole 256-byte steps); returns a value that depends on every load. With
 * ahead > 0, every line is also prefetched into L2 `ahead` bytes on, as the
 * row-order decodes prefetch their stream. */
__attribute__((target("avx512f"))) static inline uint64_t plain_read(const unsigned char *p, const unsigned char *e,
                                                                     size_t ahead)
{
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (; p + 256 <= e; p += 256) {
        if (ahead)
            for (int l = 0; l < 4; l++)
                _mm_prefetch((const char *)p + ahead + 64 * l, _MM_HINT_T1);
        s0 = _mm512_add_epi64(s0, _mm512_loadu_si512(p));
        s1 = _mm512_add_epi64(s1, _mm512_loadu_si512(p + 64));
        s2 = _mm512_add_epi64(s2, _mm512_loadu_si512(p + 128));
        s3 = _mm512_add_epi64(s3, _mm512_loadu_si512(p + 192));
    }
    s0 = _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3));
    return (uint64_t)_mm512_reduce_or_epi64(s0); /* (a signed add of the lanes could overflow) */
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 88172645463325252ull;
static inline uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Random Q4_0 / Q8_0 / Q4_K blocks of bsz bytes with small positive scales (and no
 * -128 Q8_0 codes, which the format never holds). */
static inline void fill_weights(uint32_t type, unsigned char *w, size_t bytes, size_t bsz)
{
    for (size_t i = 0; i < bytes; i++)
        w[i] = (unsigned char)rnd();
    for (size_t b = 0; b < bytes / bsz; b++) {
        unsigned char *blk = w + b * bsz;
        if (type == CIT_TYPE_Q8_0)
            for (size_t i = 2; i < bsz; i++)
                if (blk[i] == 0x80)
                    blk[i] = 0x81;
        uint16_t h = cit_fp32_to_fp16((float)(rnd() % 1000 + 1) * 1e-5f);
        if (type == CIT_TYPE_Q6_K) { /* d closes the block */
            memcpy(blk + bsz - 2, &h, 2);
            continue;
        }
        memcpy(blk, &h, 2);
        if (type == CIT_TYPE_Q4_K || type == CIT_TYPE_Q5_K) /* dmin */
            memcpy(blk + 2, &h, 2);
    }
}

/* Random activations in [-1, 1]. */
static inline void fill_inputs(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
}

#endif
