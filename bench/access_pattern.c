/* access_pattern.c: how fast this machine streams weights in the order the
 * decode kernels read them, with no arithmetic, against plain sequential
 * reads: the ceiling that access order alone puts on generation speed.
 * Not part of the build:
 *
 *   gcc -O2 -mavx512f bench/access_pattern.c -o access_pattern -lpthread
 *   ./access_pattern MODE THREADS
 *
 * MODE 0: sequential 64-byte loads; 1: 16 rows of 1152 bytes (a Q4_0 row of
 * 2048 elements) side by side, 72 bytes of each in turn, as the Q4_0 decode
 * kernel reads them; 2: as 1 with each row prefetched 512 bytes ahead; 3 and
 * 4: as 1 with the next 16-row block prefetched sequentially into L1 (3) or
 * L2 (4) while this one is read; 5: each row whole, one after another, 72
 * bytes at a time with one prefetch per line 8 KiB ahead (L2), as the Q4_0
 * row-order decode reads them. 1 GiB split over THREADS threads started
 * together; prints the best of 5 passes in GB/s. The buffer is anonymous
 * memory in 4 KiB pages; HUGE=1 asks for 2 MiB pages (as citadel bench's
 * probe does); FILE=path maps that file instead (read-only, as a model is
 * mapped; it should be in the page cache: read it once before). */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROW 1152 /* bytes per row */

static size_t n_rows;
static unsigned char *buf;
static int mode;
static pthread_barrier_t bar;
static volatile long long sink;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void run(size_t r0, size_t r1)
{
    __m512i acc = _mm512_setzero_si512();
    if (mode == 0) {
        for (const unsigned char *p = buf + r0 * ROW, *e = buf + r1 * ROW; p < e; p += 64)
            acc = _mm512_add_epi64(acc, _mm512_loadu_si512(p));
    } else if (mode == 5) {
        for (const unsigned char *p = buf + r0 * ROW, *e = buf + r1 * ROW; p < e; p += 72) {
            /* the lines that start in these 72 bytes, 8 KiB on */
            for (uintptr_t x = ((uintptr_t)p + 8192 + 63) & ~(uintptr_t)63; x < (uintptr_t)p + 8192 + 72; x += 64)
                _mm_prefetch((const char *)x, _MM_HINT_T1);
            acc = _mm512_add_epi64(acc, _mm512_loadu_si512(p));
            acc = _mm512_add_epi64(acc, _mm512_loadu_si512(p + 8));
        }
    } else {
        const size_t steps = ROW / 72, lines = 16 * ROW / 64, per = (lines + steps - 1) / steps;
        for (size_t rb = r0; rb < r1; rb += 16) {
            const unsigned char *blk = buf + rb * ROW, *next = blk + 16 * ROW;
            for (size_t s = 0; s < steps; s++) {
                if (mode >= 3)
                    for (size_t k = 0; k < per && s * per + k < lines; k++) {
                        const char *q = (const char *)next + (s * per + k) * 64;
                        if (mode == 3)
                            _mm_prefetch(q, _MM_HINT_T0);
                        else
                            _mm_prefetch(q, _MM_HINT_T2);
                    }
                for (int i = 0; i < 16; i++) {
                    const unsigned char *p = blk + (size_t)i * ROW + s * 72;
                    if (mode == 2)
                        _mm_prefetch((const char *)p + 512, _MM_HINT_T0);
                    acc = _mm512_add_epi64(acc, _mm512_loadu_si512(p));
                    acc = _mm512_add_epi64(acc, _mm512_loadu_si512(p + 8));
                }
            }
        }
    }
    sink += _mm512_reduce_add_epi64(acc);
}

struct range {
    size_t r0, r1;
};

static void *thread_main(void *arg)
{
    const struct range *r = arg;
    pthread_barrier_wait(&bar);
    run(r->r0, r->r1);
    pthread_barrier_wait(&bar);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODE(0-5) THREADS(1-64)\n", argv[0]);
        return 2;
    }
    mode = atoi(argv[1]);
    int nt = atoi(argv[2]);
    if (mode < 0 || mode > 5 || nt < 1 || nt > 64) {
        fprintf(stderr, "MODE is 0-5 and THREADS 1-64\n");
        return 2;
    }
    size_t want = (size_t)1 << 30;
    const char *file = getenv("FILE");
    int fd = -1;
    if (file) {
        struct stat st;
        fd = open(file, O_RDONLY);
        if (fd < 0 || fstat(fd, &st) != 0) {
            perror(file);
            return 1;
        }
        want = (size_t)st.st_size;
    }
    size_t block = 16 * ROW * (size_t)nt;
    if (want < 3 * block) {
        fprintf(stderr, "too small\n");
        return 1;
    }
    n_rows = (want - 2 * 16 * ROW) / block * (16 * (size_t)nt); /* room for the last block's look-ahead */
    size_t bytes = file ? want : (n_rows + 32) * ROW;
    buf = file ? mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0)
               : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    if (!file) {
        if (getenv("HUGE"))
            madvise(buf, bytes, MADV_HUGEPAGE);
        memset(buf, 1, bytes);
    }
    double best = 0;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t th[64];
        struct range r[64];
        pthread_barrier_init(&bar, NULL, (unsigned)nt + 1);
        for (int i = 0; i < nt; i++) {
            r[i] = (struct range){n_rows / (size_t)nt * (size_t)i, n_rows / (size_t)nt * (size_t)(i + 1)};
            pthread_create(&th[i], NULL, thread_main, &r[i]);
        }
        pthread_barrier_wait(&bar);
        double t0 = now();
        pthread_barrier_wait(&bar);
        double gbs = (double)(n_rows * ROW) / (now() - t0) / 1e9;
        for (int i = 0; i < nt; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&bar);
        if (gbs > best)
            best = gbs;
    }
    printf("mode %d, %d thread%s: %.2f GB/s\n", mode, nt, nt == 1 ? "" : "s", best);
    return 0;
}
