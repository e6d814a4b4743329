/* probe.h: measuring this machine's limits for `citadel bench`: streaming
 * memory-read bandwidth, the peak rate of the integer dot-product
 * instruction the quantized kernels use, and the peak rate of f32 fused
 * multiply-add. A benchmark divides what a model achieves by these to say
 * how close to the machine's ceiling it runs (docs/bench.md).
 *
 * Each probe runs one loop per thread on n_threads threads started together
 * (a barrier), times the slowest, and keeps the best of several passes, so
 * an interruption by another process costs a pass, not the result. The
 * compute loops are inline assembly with enough independent accumulators to
 * keep every execution port busy, so the instruction measured is exactly
 * the one named in the result. */
#ifndef CITADEL_KERNELS_PROBE_H
#define CITADEL_KERNELS_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"
#include "kernels/kernels.h"

#define CIT_PROBE_DEFAULT_READ_BYTES ((uint64_t)1 << 30) /* 1 GiB: far beyond any last-level cache */
#define CIT_PROBE_MIN_READ_BYTES ((uint64_t)1 << 20)
#define CIT_PROBE_DEFAULT_PASSES 5u

struct cit_probe_params {
    unsigned n_threads;  /* 0 = physical cores */
    uint64_t read_bytes; /* bandwidth buffer; 0 = CIT_PROBE_DEFAULT_READ_BYTES; halved while it cannot be had */
    unsigned passes;     /* best of; 0 = CIT_PROBE_DEFAULT_PASSES */
};

struct cit_probe_result {
    unsigned n_threads;
    enum cit_isa isa;      /* tier whose instructions were measured (cit_isa_active) */
    double read_gbs;       /* memory read, 1e9 bytes/s, best pass */
    uint64_t read_bytes;   /* buffer actually used (may be below the request) */
    const char *read_insn; /* e.g. "zmm loads (vpaddq zmm, mem)" */
    double dot_gops;       /* int8 multiply-adds x 2, 1e9/s */
    const char *dot_insn;  /* e.g. "vpdpbusd zmm" */
    double fma_gflops;     /* f32 multiply-adds x 2, 1e9/s */
    const char *fma_insn;  /* e.g. "vfmadd231ps zmm" */
    double tile_gops;      /* int8 multiply-adds x 2 on a matrix unit (AMX), 1e9/s; 0 without one */
    const char *tile_insn; /* e.g. "tdpbssd (AMX tiles)"; NULL without one */
    double bf16_gflops;    /* bf16 multiply-adds x 2 where the BF16 kernel has a dot instruction
                            * (cit_bf16_dot_active), 1e9/s; 0 elsewhere */
    const char *bf16_insn; /* e.g. "vdpbf16ps zmm"; NULL where there is none */
};

/* Runs the probes (a few seconds with the default buffer): read, dot, FMA,
 * tile where the active tier has a matrix unit, and bf16 where its BF16
 * kernel has a dot instruction. Errors:
 * CIT_ERR_RANGE (n_threads above CIT_PROBE_MAX_THREADS, read_bytes below
 * CIT_PROBE_MIN_READ_BYTES), CIT_ERR_NOMEM (no buffer of even the minimum
 * size), CIT_ERR_IO (a thread could not be started). */
#define CIT_PROBE_MAX_THREADS 1024u
enum cit_status cit_probe_run(const struct cit_probe_params *p, struct cit_probe_result *out, char *err,
                              size_t errlen);

/* A bandwidth probe kept ready between tests: the buffer (read_bytes, 0 =
 * the default; halved while it cannot be had) is mapped, touched and read
 * once by cit_bw_probe_new, so each cit_bw_probe_read costs only its passes
 * (best of; 0 = the default). `citadel bench` reads one around every
 * generation repetition, because the bandwidth a shared host gives can
 * change within seconds (docs/bench.md). Errors as cit_probe_run's. */
struct cit_bw_probe;
enum cit_status cit_bw_probe_new(unsigned n_threads, uint64_t read_bytes, struct cit_bw_probe **out, char *err,
                                 size_t errlen);
enum cit_status cit_bw_probe_read(struct cit_bw_probe *p, unsigned passes, double *gbs, char *err, size_t errlen);
uint64_t cit_bw_probe_bytes(const struct cit_bw_probe *p); /* bytes one pass reads */
void cit_bw_probe_free(struct cit_bw_probe *p);

/* ---- per-ISA loops (internal; called only after run-time dispatch) ----
 * read: sums `bytes` (a multiple of 256) from buf, 64-byte aligned.
 * fma / dot: run `iters` iterations of the unrolled body. Each kernel set
 * gives the operations one iteration performs and the instruction names. */
struct cit_probe_kernels {
    uint64_t (*read)(const void *buf, size_t bytes);
    void (*fma)(uint64_t iters);
    void (*dot)(uint64_t iters);
    void (*tile)(uint64_t iters); /* NULL on tiers without a matrix unit */
    void (*bf16)(uint64_t iters); /* NULL where BF16 weights have no dot instruction */
    double fma_ops_per_iter, dot_ops_per_iter, tile_ops_per_iter, bf16_ops_per_iter;
    const char *read_insn, *fma_insn, *dot_insn, *tile_insn, *bf16_insn;
};

void cit_probe_kernels_scalar(struct cit_probe_kernels *k);
#if CIT_X86_KERNELS
void cit_probe_kernels_avx2(struct cit_probe_kernels *k);
void cit_probe_kernels_avx2vnni(struct cit_probe_kernels *k); /* fills dot only, over avx2's */
void cit_probe_kernels_avx512(struct cit_probe_kernels *k);
void cit_probe_kernels_avx512vnni(struct cit_probe_kernels *k); /* fills dot only, over avx512's */
void cit_probe_kernels_amx(struct cit_probe_kernels *k);        /* adds tile, over avx512vnni's */
void cit_probe_kernels_avx512bf16(struct cit_probe_kernels *k); /* adds bf16 (cit_bf16_dot_active) */
#endif

#endif
