/* threadpool.c: persistent pthread workers for parallel-for loops.
 *
 * Handing out a loop costs a wake-up per worker and a wait for the last one;
 * a decode step runs a hundred loops or more (TinyLlama: 111), so both
 * sides first spin on atomics for SPIN_NS (1 ms) before they block on a
 * condition variable. Spinning keeps the hand-off near a microsecond while
 * loops come back to back; blocking after the spin keeps idle workers from
 * stealing cores from an HTTP server or other processes. The spin outlasts
 * the pauses inside a decode step: on a KVM guest (2 vCPUs of a Zen 5 EPYC)
 * a 30 us spin let the worker block at 700-849 of a 128-token run's 14,319
 * loops, and with 1 ms Q4_K_M tg128 ran 1.035-1.049x as fast at the host's
 * high bandwidth level (docs/benchmarks.md, session 18). The sleeper counts
 * are checked after publishing (sequentially consistent atomics on both
 * sides), so a sleeper is never missed. Every thread claims chunks of the
 * range from an atomic cursor until it runs dry (shrinking chunks: see
 * run_chunks), which keeps all threads busy when one of them is
 * descheduled. */
#include "base/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"

#ifndef SPIN_NS
#define SPIN_NS 1000000ull
#endif

struct worker {
    struct cit_threadpool *pool;
    unsigned tid;
};

struct cit_threadpool {
    unsigned n_threads;
    unsigned n_started; /* workers actually running (n_threads - 1 once built) */
    pthread_t *threads; /* (n_threads - 1) */
    struct worker *workers; /* (n_threads - 1) */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    atomic_uint_fast64_t gen;   /* job generation, bumped after the job fields are written */
    atomic_uint pending;        /* workers still inside the current job */
    atomic_uint sleepers;       /* workers blocked (or about to block) on work_cv */
    atomic_bool caller_asleep;  /* the caller blocked (or about to) on done_cv */
    atomic_bool quit;

    /* The current job: written by the caller before gen is bumped, read by
     * workers after they observe the new gen. */
    cit_parallel_fn fn;
    void *arg;
    size_t n;
    size_t grain;
    atomic_size_t next; /* first index not yet claimed */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Guided self-scheduling: each claim takes 1 / n_threads of what is left
 * in whole grains (at least one), so the first chunks are large (few
 * claims, long contiguous runs of rows) and the last ones one grain: the
 * threads finish within about one grain of each other, instead of one
 * idling for up to a whole fixed-size chunk (measured on decode: see
 * docs/engine.md). Chunks start at multiples of the grain. Each chunk is a
 * new stream for the row kernels to start, so fewer are better: on an AMD
 * EPYC (Zen 5) VM, 2 threads, a claim of 1 / n_threads read TinyLlama's
 * decode matmuls 1.03-1.09x as fast as 1 / (2 n_threads), and two static
 * halves fell between (docs/benchmarks.md, session 17). */
static void run_chunks(struct cit_threadpool *p, unsigned tid)
{
    const size_t n = p->n, g = p->grain, div = (size_t)p->n_threads;
    size_t begin = atomic_load_explicit(&p->next, memory_order_relaxed);
    while (begin < n) {
        size_t size = (n - begin) / div;
        size = size < g ? g : size - size % g; /* whole grains, rounded down: cannot overflow */
        size_t end = n - begin <= size ? n : begin + size;
        if (!atomic_compare_exchange_weak_explicit(&p->next, &begin, end, memory_order_relaxed,
                                                   memory_order_relaxed))
            continue; /* begin now holds the cursor another thread moved */
        p->fn(p->arg, begin, end, tid);
        begin = atomic_load_explicit(&p->next, memory_order_relaxed);
    }
}

/* Spins until a new job (or quit) is published or SPIN_NS pass; true when one was. */
static bool spin_until_gen_changes(struct cit_threadpool *p, uint64_t seen)
{
    uint64_t start = now_ns();
    for (unsigned i = 1;; i++) {
        if (atomic_load(&p->gen) != seen || atomic_load(&p->quit))
            return true;
        cpu_relax();
        if (i % 64 == 0 && now_ns() - start > SPIN_NS)
            return false;
    }
}

static void *worker_main(void *varg)
{
    struct worker *w = varg;
    struct cit_threadpool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_until_gen_changes(p, seen)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->work_cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit))
            break;
        seen = atomic_load(&p->gen);

        run_chunks(p, w->tid);

        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_asleep)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

unsigned cit_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    if ((unsigned long)n > CIT_THREADPOOL_MAX_THREADS)
        return CIT_THREADPOOL_MAX_THREADS;
    return (unsigned)n;
}

enum cit_status cit_threadpool_new(unsigned n_threads, struct cit_threadpool **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > CIT_THREADPOOL_MAX_THREADS)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "n_threads %u out of range [1, %u]", n_threads,
                        CIT_THREADPOOL_MAX_THREADS);
    struct cit_threadpool *p = calloc(1, sizeof *p);
    if (!p)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "thread pool: out of memory");
    p->n_threads = n_threads;
    atomic_init(&p->next, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_asleep, false);
    atomic_init(&p->quit, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    unsigned n_workers = n_threads - 1;
    if (n_workers > 0) {
        p->threads = calloc(n_workers, sizeof *p->threads);
        p->workers = calloc(n_workers, sizeof *p->workers);
        if (!p->threads || !p->workers) {
            cit_threadpool_free(p);
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "thread pool: out of memory");
        }
    }
    for (unsigned i = 0; i < n_workers; i++) {
        p->workers[i] = (struct worker){p, i + 1};
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
            cit_threadpool_free(p);
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "thread pool: cannot start worker %u of %u", i + 1,
                            n_workers);
        }
        p->n_started++;
    }
    *out = p;
    return CIT_OK;
}

void cit_threadpool_free(struct cit_threadpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p->threads);
    free(p);
}

unsigned cit_threadpool_size(const struct cit_threadpool *p)
{
    return p->n_threads;
}

void cit_threadpool_for(struct cit_threadpool *p, size_t n, size_t grain, cit_parallel_fn fn, void *arg)
{
    if (n == 0)
        return;
    if (grain == 0)
        grain = 1;
    if (p->n_threads == 1 || n <= grain) {
        fn(arg, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->grain = grain;
    atomic_store(&p->next, 0);
    atomic_store(&p->pending, p->n_threads - 1);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->work_cv);
        pthread_mutex_unlock(&p->mu);
    }

    run_chunks(p, 0);

    uint64_t start = now_ns();
    for (unsigned i = 1; atomic_load(&p->pending) > 0; i++) {
        cpu_relax();
        if (i % 64 == 0 && now_ns() - start > SPIN_NS) {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->caller_asleep, true);
            while (atomic_load(&p->pending) > 0)
                pthread_cond_wait(&p->done_cv, &p->mu);
            atomic_store(&p->caller_asleep, false);
            pthread_mutex_unlock(&p->mu);
            break;
        }
    }
}
