/* bw_levels.c: whether this host's memory read bandwidth moves over time,
 * and whether it moves for all memory at once (the host's level: other
 * tenants, power states) or per buffer (where the pages landed). Reads
 * NBUF buffers of 256 MiB in turn with THREADS threads (zmm loads, as
 * citadel bench's probe) for SECONDS seconds and prints each buffer's mean
 * GB/s every 2 seconds. When every column jumps together, a `tg` row and a
 * probe taken seconds apart can see different machines: what citadel bench's
 * reads around each repetition are for (docs/bench.md). Not part of the
 * build:
 *
 *   gcc -O2 -mavx512f bench/bw_levels.c -o bw_levels -lpthread
 *   ./bw_levels [SECONDS [THREADS [NBUF]]]      (defaults 40, 2, 4)
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BUF_BYTES ((size_t)256 << 20)
#define MAX_BUF 16
#define MAX_THREADS 64

static const unsigned char *cur;
static size_t slice;
static pthread_barrier_t go, done;
static volatile long long sink;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *reader(void *arg)
{
    const size_t id = (size_t)arg;
    for (;;) {
        pthread_barrier_wait(&go);
        const unsigned char *p = cur + id * slice;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t i = 0; i < slice; i += 256) {
            s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
            s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + i + 64));
            s2 = _mm512_add_epi64(s2, _mm512_load_si512(p + i + 128));
            s3 = _mm512_add_epi64(s3, _mm512_load_si512(p + i + 192));
        }
        sink ^= _mm512_reduce_or_epi64(_mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
        pthread_barrier_wait(&done);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const int secs = argc > 1 ? atoi(argv[1]) : 40, nt = argc > 2 ? atoi(argv[2]) : 2;
    const int nb = argc > 3 ? atoi(argv[3]) : 4;
    if (secs < 1 || nt < 1 || nt > MAX_THREADS || nb < 1 || nb > MAX_BUF) {
        fprintf(stderr, "usage: bw_levels [SECONDS >= 1 [THREADS 1-%d [NBUF 1-%d]]]\n", MAX_THREADS, MAX_BUF);
        return 2;
    }
    unsigned char *bufs[MAX_BUF];
    for (int i = 0; i < nb; i++) {
        bufs[i] = mmap(NULL, BUF_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (bufs[i] == MAP_FAILED) {
            perror("bw_levels: mmap");
            return 1;
        }
        madvise(bufs[i], BUF_BYTES, MADV_HUGEPAGE);
        memset(bufs[i], 1, BUF_BYTES);
    }
    slice = BUF_BYTES / (size_t)nt / 256 * 256;
    pthread_barrier_init(&go, NULL, (unsigned)nt + 1);
    pthread_barrier_init(&done, NULL, (unsigned)nt + 1);
    for (int i = 0; i < nt; i++) {
        pthread_t th;
        if (pthread_create(&th, NULL, reader, (void *)(size_t)i) != 0) {
            fprintf(stderr, "bw_levels: cannot start thread %d\n", i);
            return 1;
        }
    }
    printf("seconds: GB/s of buffer 0 .. %d (%d threads)\n", nb - 1, nt);
    double t0 = now(), acc[MAX_BUF] = {0};
    int n[MAX_BUF] = {0}, shown = 0;
    while (now() - t0 < secs) {
        for (int k = 0; k < nb; k++) {
            cur = bufs[k];
            double a = now();
            pthread_barrier_wait(&go);
            pthread_barrier_wait(&done);
            acc[k] += (double)slice * nt / (now() - a) / 1e9;
            n[k]++;
        }
        int s = (int)(now() - t0);
        if (s >= shown + 2) {
            printf("%3d:", s);
            for (int k = 0; k < nb; k++) {
                printf(" %5.1f", acc[k] / n[k]);
                acc[k] = 0;
                n[k] = 0;
            }
            printf("\n");
            fflush(stdout);
            shown = s;
        }
    }
    return 0; /* the readers are still parked at the barrier: exit ends them */
}
