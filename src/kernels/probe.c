/* probe.c: the machine-limit probes of kernels/probe.h: the thread harness
 * (threads released together by a barrier, the pass timed until the last
 * one finishes, best of several passes), buffer sizing for the bandwidth
 * probe, and the portable scalar loops used where no SIMD tier is active. */
#include "kernels/probe.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/pages.h"

/* A compute pass is grown until it lasts at least this long, so timer
 * resolution and thread start-up are noise. */
#define PROBE_MIN_PASS_S 0.05

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- portable loops ---- */

static uint64_t read_scalar(const void *buf, size_t bytes)
{
    const uint64_t *p = (const uint64_t *)buf; /* (bytes / 8) words */
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0, n = bytes / 8; i < n; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    return s0 + s1 + s2 + s3;
}

/* Per thread, so threads running the same loop do not race on the sink. */
static _Thread_local volatile float scalar_fsink;
static _Thread_local volatile int32_t scalar_isink;

/* 8 independent multiply-add chains of 4 lanes: 64 FLOPs per iteration. */
static void fma_scalar(uint64_t iters)
{
    float acc[32] = {0};
    float a = 0.5f, b = 0.25f;
    for (uint64_t it = 0; it < iters; it++)
        for (int j = 0; j < 32; j++)
            acc[j] = acc[j] + a * b;
    float s = 0;
    for (int j = 0; j < 32; j++)
        s += acc[j];
    scalar_fsink = s;
}

/* 32 u8 x s8 multiply-adds into 8 accumulators: 64 ops per iteration. The
 * multiplier is reloaded through a volatile so the loop is not folded. */
static void dot_scalar(uint64_t iters)
{
    int32_t acc[8] = {0};
    for (uint64_t it = 0; it < iters; it++) {
        int32_t b = scalar_isink | 1;
        for (int j = 0; j < 32; j++)
            acc[j % 8] += (int32_t)(uint8_t)(j + 1) * (int32_t)(int8_t)b;
    }
    scalar_isink = acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

void cit_probe_kernels_scalar(struct cit_probe_kernels *k)
{
    k->read = read_scalar;
    k->read_insn = "64-bit scalar loads";
    k->fma = fma_scalar;
    k->fma_ops_per_iter = 32.0 * 2;
    k->fma_insn = "scalar f32 multiply-add (C)";
    k->dot = dot_scalar;
    k->dot_ops_per_iter = 32.0 * 2;
    k->dot_insn = "scalar int8 multiply-add (C)";
    k->tile = NULL;
    k->tile_ops_per_iter = 0;
    k->tile_insn = NULL;
    k->bf16 = NULL;
    k->bf16_ops_per_iter = 0;
    k->bf16_insn = NULL;
}

static void pick_kernels(enum cit_isa isa, struct cit_probe_kernels *k)
{
    cit_probe_kernels_scalar(k);
#if CIT_X86_KERNELS
    switch (isa) {
    case CIT_ISA_AVX2: cit_probe_kernels_avx2(k); break;
    case CIT_ISA_AVX2_VNNI: cit_probe_kernels_avx2vnni(k); break;
    case CIT_ISA_AVX512: cit_probe_kernels_avx512(k); break;
    case CIT_ISA_AVX512_VNNI: cit_probe_kernels_avx512vnni(k); break;
    case CIT_ISA_AMX: cit_probe_kernels_amx(k); break;
    default: break;
    }
    if (cit_bf16_dot_active())
        cit_probe_kernels_avx512bf16(k);
#else
    (void)isa;
#endif
}

/* ---- thread harness ---- */

enum job_kind { JOB_TOUCH, JOB_READ, JOB_FMA, JOB_DOT, JOB_TILE, JOB_BF16 };

/* Threads wait at the gate until every one has been started, so they
 * begin together (go = 1), or leave without working (go = -1) when one of
 * them could not be started. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go;
};

struct job {
    const struct cit_probe_kernels *k;
    struct gate *gate;
    enum job_kind kind;
    unsigned char *buf; /* this thread's slice (JOB_TOUCH, JOB_READ) */
    size_t bytes;
    uint64_t iters;
    uint64_t sink;
};

static void run_job(struct job *j)
{
    switch (j->kind) {
    case JOB_TOUCH: memset(j->buf, 1, j->bytes); break;
    case JOB_READ: j->sink += j->k->read(j->buf, j->bytes); break;
    case JOB_FMA: j->k->fma(j->iters); break;
    case JOB_DOT: j->k->dot(j->iters); break;
    case JOB_TILE: j->k->tile(j->iters); break;
    case JOB_BF16: j->k->bf16(j->iters); break;
    }
}

static void *worker(void *arg)
{
    struct job *j = (struct job *)arg;
    pthread_mutex_lock(&j->gate->mu);
    while (j->gate->go == 0)
        pthread_cond_wait(&j->gate->cv, &j->gate->mu);
    int go = j->gate->go;
    pthread_mutex_unlock(&j->gate->mu);
    if (go > 0)
        run_job(j);
    return NULL;
}

static void open_gate(struct gate *g, int go)
{
    pthread_mutex_lock(&g->mu);
    g->go = go;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Runs jobs[0..n) on n threads (the caller runs jobs[0]) released together;
 * *secs is the time from the release until the last one ends. */
static enum cit_status run_pass(struct job *jobs, unsigned n, double *secs, char *err, size_t errlen)
{
    struct gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .go = 0};
    pthread_t th[CIT_PROBE_MAX_THREADS];
    unsigned started = 1;
    for (unsigned i = 0; i < n; i++)
        jobs[i].gate = &g;
    while (started < n && pthread_create(&th[started], NULL, worker, &jobs[started]) == 0)
        started++;
    if (started < n) {
        open_gate(&g, -1);
        for (unsigned i = 1; i < started; i++)
            pthread_join(th[i], NULL);
        return cit_fail(CIT_ERR_IO, err, errlen, "probe: could start only %u of %u threads", started, n);
    }
    open_gate(&g, 1);
    double t0 = now_s();
    run_job(&jobs[0]);
    for (unsigned i = 1; i < n; i++)
        pthread_join(th[i], NULL);
    *secs = now_s() - t0;
    return CIT_OK;
}

/* Bytes for the bandwidth buffer: the request, halved while it exceeds
 * half the memory now available or cannot be mapped. */
static unsigned char *map_buffer(uint64_t want, uint64_t *got)
{
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t avail = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    while (want >= CIT_PROBE_MIN_READ_BYTES) {
        if (!avail || want <= avail / 2) {
            void *p = cit_map_anon_huge((size_t)want);
            if (p) {
                *got = want;
                return (unsigned char *)p;
            }
        }
        want /= 2;
    }
    return NULL;
}

/* A bandwidth buffer kept mapped and touched between reads, so a read
 * costs only its passes. */
struct cit_bw_probe {
    struct cit_probe_kernels k;
    unsigned n;
    struct job *jobs;
    unsigned char *buf;
    uint64_t mapped; /* bytes mapped (the buffer) */
    size_t slice;    /* bytes each thread reads */
};

enum cit_status cit_bw_probe_new(unsigned n_threads, uint64_t read_bytes, struct cit_bw_probe **out, char *err,
                                 size_t errlen)
{
    if (!out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_bw_probe_new: NULL result");
    *out = NULL;
    unsigned n = n_threads ? n_threads : cit_cpu_physical_cores();
    uint64_t want = read_bytes ? read_bytes : CIT_PROBE_DEFAULT_READ_BYTES;
    if (n > CIT_PROBE_MAX_THREADS)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "probe: %u threads, at most %u", n, CIT_PROBE_MAX_THREADS);
    if (want < CIT_PROBE_MIN_READ_BYTES)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "probe: read buffer of %llu bytes, at least %llu",
                        (unsigned long long)want, (unsigned long long)CIT_PROBE_MIN_READ_BYTES);
    if (want > SIZE_MAX / 2)
        want = SIZE_MAX / 2;
    struct cit_bw_probe *p = calloc(1, sizeof *p);
    if (!p || !(p->jobs = calloc(n, sizeof *p->jobs))) {
        free(p);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "probe: out of memory for %u thread jobs", n);
    }
    p->n = n;
    pick_kernels(cit_isa_active(), &p->k);
    if (!(p->buf = map_buffer(want, &p->mapped))) {
        cit_bw_probe_free(p);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "probe: cannot map a bandwidth buffer of even %llu bytes",
                        (unsigned long long)CIT_PROBE_MIN_READ_BYTES);
    }
    /* Equal slices, each a multiple of 4 KiB (so of 256 and of 64-byte alignment). */
    p->slice = (size_t)(p->mapped / n) & ~(size_t)4095;
    for (unsigned i = 0; i < n; i++)
        p->jobs[i] =
            (struct job){.k = &p->k, .kind = JOB_TOUCH, .buf = p->buf + (size_t)i * p->slice, .bytes = p->slice};
    double t;
    enum cit_status st = run_pass(p->jobs, n, &t, err, errlen); /* first touch by the thread that reads it (NUMA) */
    for (unsigned i = 0; i < n; i++)
        p->jobs[i].kind = JOB_READ;
    if (st == CIT_OK) /* a first read warms the TLB and the threads */
        st = run_pass(p->jobs, n, &t, err, errlen);
    if (st != CIT_OK) {
        cit_bw_probe_free(p);
        return st;
    }
    *out = p;
    return CIT_OK;
}

enum cit_status cit_bw_probe_read(struct cit_bw_probe *p, unsigned passes, double *gbs, char *err, size_t errlen)
{
    if (!p || !gbs)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_bw_probe_read: NULL argument");
    double t, best = 0;
    for (unsigned i = 0; i < (passes ? passes : CIT_PROBE_DEFAULT_PASSES); i++) {
        enum cit_status st = run_pass(p->jobs, p->n, &t, err, errlen);
        if (st != CIT_OK)
            return st;
        if (t > 0 && (double)p->slice * p->n / t > best)
            best = (double)p->slice * p->n / t;
    }
    *gbs = best / 1e9;
    return CIT_OK;
}

uint64_t cit_bw_probe_bytes(const struct cit_bw_probe *p) { return p ? (uint64_t)p->slice * p->n : 0; }

void cit_bw_probe_free(struct cit_bw_probe *p)
{
    if (!p)
        return;
    cit_unmap_anon(p->buf, (size_t)p->mapped);
    free(p->jobs);
    free(p);
}

/* Best rate (ops/s) of an ops_per_iter loop on n threads. */
static enum cit_status probe_compute(const struct cit_probe_kernels *k, struct job *jobs, unsigned n,
                                     enum job_kind kind, double ops_per_iter, unsigned passes, double *rate,
                                     char *err, size_t errlen)
{
    uint64_t iters = 1u << 12;
    double t = 0, best = 0;
    enum cit_status st;
    for (;;) { /* grow the pass until it is long enough to time */
        for (unsigned i = 0; i < n; i++)
            jobs[i] = (struct job){.k = k, .kind = kind, .iters = iters};
        if ((st = run_pass(jobs, n, &t, err, errlen)) != CIT_OK)
            return st;
        if (t >= PROBE_MIN_PASS_S || iters >= ((uint64_t)1 << 40))
            break;
        iters = t > PROBE_MIN_PASS_S / 64 ? (uint64_t)((double)iters * PROBE_MIN_PASS_S * 1.2 / t) : iters * 16;
    }
    for (unsigned p = 0; p < passes; p++) {
        if ((st = run_pass(jobs, n, &t, err, errlen)) != CIT_OK)
            return st;
        double r = t > 0 ? ops_per_iter * (double)iters * n / t : 0;
        if (r > best)
            best = r;
    }
    *rate = best;
    return CIT_OK;
}

enum cit_status cit_probe_run(const struct cit_probe_params *p, struct cit_probe_result *out, char *err,
                              size_t errlen)
{
    if (!out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_probe_run: NULL result");
    memset(out, 0, sizeof *out);
    unsigned n = p && p->n_threads ? p->n_threads : cit_cpu_physical_cores();
    unsigned passes = p && p->passes ? p->passes : CIT_PROBE_DEFAULT_PASSES;
    struct cit_bw_probe *bw = NULL; /* checks n and the buffer size */
    enum cit_status st = cit_bw_probe_new(n, p ? p->read_bytes : 0, &bw, err, errlen);
    if (st == CIT_OK)
        st = cit_bw_probe_read(bw, passes, &out->read_gbs, err, errlen);
    out->read_bytes = cit_bw_probe_bytes(bw);
    cit_bw_probe_free(bw);
    if (st != CIT_OK)
        return st;
    struct cit_probe_kernels k;
    out->isa = cit_isa_active();
    out->n_threads = n;
    pick_kernels(out->isa, &k);
    out->read_insn = k.read_insn;
    struct job *jobs = calloc(n, sizeof *jobs);
    if (!jobs)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "probe: out of memory for %u thread jobs", n);
    double r = 0;
    if ((st = probe_compute(&k, jobs, n, JOB_DOT, k.dot_ops_per_iter, passes, &r, err, errlen)) == CIT_OK)
        out->dot_gops = r / 1e9;
    if (st == CIT_OK && (st = probe_compute(&k, jobs, n, JOB_FMA, k.fma_ops_per_iter, passes, &r, err, errlen)) == CIT_OK)
        out->fma_gflops = r / 1e9;
    if (st == CIT_OK && k.tile &&
        (st = probe_compute(&k, jobs, n, JOB_TILE, k.tile_ops_per_iter, passes, &r, err, errlen)) == CIT_OK) {
        out->tile_gops = r / 1e9;
        out->tile_insn = k.tile_insn;
    }
    if (st == CIT_OK && k.bf16 &&
        (st = probe_compute(&k, jobs, n, JOB_BF16, k.bf16_ops_per_iter, passes, &r, err, errlen)) == CIT_OK) {
        out->bf16_gflops = r / 1e9;
        out->bf16_insn = k.bf16_insn;
    }
    out->dot_insn = k.dot_insn;
    out->fma_insn = k.fma_insn;
    free(jobs);
    return st;
}
