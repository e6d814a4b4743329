/* pool.c: the cost of handing a parallel loop to the thread pool, the
 * synchronisation a decode step pays a few hundred times per token.
 *
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -I src -I include bench/pool.c build/libcitadel.a -lpthread -lm \
 *       -lpcre2-8 -ljansson -o /tmp/pool && /tmp/pool 2
 *
 * Prints microseconds per cit_threadpool_for over an (almost) empty body,
 * back to back, and with 50 us of serial work between loops (as between
 * the matmuls of a layer). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/threadpool.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile unsigned long sink;

static void body(void *arg, size_t begin, size_t end, unsigned tid)
{
    (void)arg;
    (void)tid;
    sink += end - begin;
}

static void serial_work(double seconds)
{
    double end = now_s() + seconds;
    while (now_s() < end)
        sink++;
}

int main(int argc, char **argv)
{
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    struct cit_threadpool *pool;
    char err[256];
    if (cit_threadpool_new(threads, &pool, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const double gaps[] = {0, 50e-6, 500e-6};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        int iters = gaps[g] > 100e-6 ? 2000 : 20000;
        double best = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            double busy = 0, t0 = now_s();
            for (int i = 0; i < iters; i++) {
                double s = now_s();
                cit_threadpool_for(pool, 64, 1, body, NULL);
                busy += now_s() - s;
                if (gaps[g] > 0)
                    serial_work(gaps[g]);
            }
            (void)t0;
            if (busy / iters < best)
                best = busy / iters;
        }
        printf("threads %u, serial gap %4.0f us: %.2f us per parallel loop (best of 3 x %d)\n", threads,
               gaps[g] * 1e6, best * 1e6, iters);
    }
    cit_threadpool_free(pool);
    return 0;
}
