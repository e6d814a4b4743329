/* threadpool.h: a persistent pool of pthread workers running parallel-for
 * loops. The pool is created once (per inference context) so the hot path
 * never spawns threads; each cit_threadpool_for call hands a range [0, n) to
 * the workers in chunks and returns when the whole range is done. The
 * calling thread works too, so a pool of n threads starts n - 1 workers.
 *
 * Which thread runs which chunk is not fixed, so a loop body must produce
 * the same result for an index whoever runs it (write disjoint outputs; use
 * `tid` only to pick per-thread scratch). One loop runs at a time: the pool
 * is driven by one thread. */
#ifndef CITADEL_BASE_THREADPOOL_H
#define CITADEL_BASE_THREADPOOL_H

#include <stddef.h>

#include "citadel/status.h"

/* Upper bound on threads per pool (a sanity limit on caller input). */
#define CIT_THREADPOOL_MAX_THREADS 1024u

struct cit_threadpool;

/* Body of a parallel loop: handles indices [begin, end); tid in [0, n_threads). */
typedef void (*cit_parallel_fn)(void *arg, size_t begin, size_t end, unsigned tid);

/* Starts n_threads - 1 workers (n_threads in [1, CIT_THREADPOOL_MAX_THREADS]). */
enum cit_status cit_threadpool_new(unsigned n_threads, struct cit_threadpool **out, char *err, size_t errlen);

/* Stops and joins the workers; accepts NULL. */
void cit_threadpool_free(struct cit_threadpool *p);

/* Number of threads that run loop bodies (workers + the caller). */
unsigned cit_threadpool_size(const struct cit_threadpool *p);

/* Runs fn over [0, n) and returns when all is done. Chunks start at
 * multiples of `grain` (0 counts as 1) and are whole multiples of it except
 * the one that ends at n; they shrink as the range runs out, so threads
 * finish together. Ranges of at most one grain run inline on the caller. */
void cit_threadpool_for(struct cit_threadpool *p, size_t n, size_t grain, cit_parallel_fn fn, void *arg);

/* Number of online CPUs (at least 1). */
unsigned cit_cpu_count(void);

#endif
