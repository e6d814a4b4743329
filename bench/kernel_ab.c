/* kernel_ab.c: two builds of the AVX-512 VNNI Q4_0 / Q8_0 kernel file
 * (src/kernels/avx512vnni_q.c, e.g. with a changed x86_q_impl.h or other
 * -D settings) against each other, alternating within one process, so the
 * drift of a shared host hits both alike. Not part of the build:
 *
 *   F="-O3 -std=c17 -ffp-contract=off -D_GNU_SOURCE -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw \
 *      -mavx512vl -mavx512dq -mavx512vnni"
 *   gcc $FLAGS_A $F -I src -I include -Dcit_kernels_avx512vnni_q=kernels_a -c src/kernels/avx512vnni_q.c -o /tmp/a.o
 *   gcc $FLAGS_B $F -I src -I include -Dcit_kernels_avx512vnni_q=kernels_b -c src/kernels/avx512vnni_q.c -o /tmp/b.o
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -I src -I include bench/kernel_ab.c /tmp/a.o /tmp/b.o build/libcitadel.a \
 *       -lpthread -lm -lpcre2-8 -ljansson -lmicrohttpd -lsodium -o /tmp/kernel_ab
 *   /tmp/kernel_ab TYPE N_OUT N_IN THREADS ROUNDS WHERE [TOKENS]
 *
 * (FLAGS_B may put `-I dir` first to take a modified header from dir/kernels/.)
 * The AVX2 file works the same way: src/kernels/avx2_q.c with
 * -Dcit_kernels_avx2_q=kernels_a / kernels_b and only the AVX2 flags.
 * TYPE 0 = Q4_0, 1 = Q8_0; 2 = Q4_K, 3 = Q6_K, 4 = Q5_K (build the two
 * objects from src/kernels/avx512vnni_k.c with
 * -Dcit_kernels_avx512vnni_k=kernels_a / _b); WHERE 0 = from memory (weights rotate over >= 512
 * MiB of distinct copies, one matmul per copy), 1 = from cache (one matrix,
 * 200 matmuls per round). Prints each build's median and best GB/s of weight
 * bytes and the median (and quartiles) of the per-round speed ratio B/A;
 * exits 1 if the two builds' outputs differ.
 * KAB_R16=1: B reads a copy of the weights in the R16 layout
 * (kernels/repack.h, `--repack`) through cit_r16_gemm; A and B may then be
 * the same build (a.o and b.o from one source), which compares layouts.
 * KAB_R16=2: both read the R16 copy (two builds of the R16 kernel).
 * KAB_NOCHECK=1: print even when the outputs differ (a B stripped of its
 * arithmetic, to time the loads alone).
 * KAB_PLAIN=1: a third arm per round reads B's weight bytes with plain zmm
 * loads (the probe's loop, split by rows as B is), so each round also gives
 * B's share of what a plain read of the same bytes reached at that moment;
 * the rounds are split at 45 GB/s of plain read, for hosts whose bandwidth
 * swings between two levels (docs/benchmarks.md). KAB_PLAIN_PF=BYTES: that
 * read also prefetches every line BYTES ahead into L2, as the row-order
 * decodes do (the ceiling for a kernel with their prefetch). */
#include <immintrin.h>
#include <stdio.h>
#include <sys/mman.h>

#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "tensor/quants.h"
#include "qbench.h"

/* Weights in 2 MiB pages where the kernel gives them (KAB_HUGE=0: 4 KiB
 * pages, as a file mapping may be): `--repack` maps its copy so, and the
 * TLB misses of 4 KiB pages change what the kernels' prefetches buy. */
static unsigned char *weights_alloc(size_t bytes)
{
    const char *e = getenv("KAB_HUGE");
    if (e && *e == '0')
        return malloc(bytes);
    size_t huge = (size_t)2 << 20, padded = (bytes + huge - 1) / huge * huge;
    unsigned char *p = aligned_alloc(huge, padded);
    if (p)
        madvise(p, padded, MADV_HUGEPAGE);
    return p;
}

struct plain_job {
    const unsigned char *w;
    size_t row_bytes, ahead;
    uint64_t sink[64];
};

/* A cit_parallel_fn: rows [begin, end) of plain_job's matrix read plainly. */
static void plain_fn(void *arg, size_t begin, size_t end, unsigned tid)
{
    struct plain_job *j = arg;
    j->sink[tid % 64] ^= plain_read(j->w + begin * j->row_bytes, j->w + end * j->row_bytes, j->ahead);
}

void kernels_a(const struct cit_kernel *tab[CIT_TYPE_COUNT]);
void kernels_b(const struct cit_kernel *tab[CIT_TYPE_COUNT]);

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: kernel_ab TYPE(0 Q4_0, 1 Q8_0, 2 Q4_K, 3 Q6_K, 4 Q5_K) N_OUT N_IN THREADS ROUNDS WHERE(0 memory, 1 cache) "
                        "[TOKENS]\n");
        return 2;
    }
    const int ti = atoi(argv[1]);
    static const uint32_t types[] = {CIT_TYPE_Q4_0, CIT_TYPE_Q8_0, CIT_TYPE_Q4_K, CIT_TYPE_Q6_K, CIT_TYPE_Q5_K};
    if (ti < 0 || ti > 4) {
        fprintf(stderr, "kernel_ab: TYPE 0-4\n");
        return 2;
    }
    const uint32_t type = types[ti];
    const size_t n_out = (size_t)atol(argv[2]), n_in = (size_t)atol(argv[3]);
    const unsigned threads = (unsigned)atoi(argv[4]);
    const int rounds = atoi(argv[5]), cache = atoi(argv[6]);
    const size_t nt = argc > 7 ? (size_t)atol(argv[7]) : 1;
    if (!n_out || !n_in || n_in % (ti >= 2 ? 256 : 32) || !threads || rounds < 1 || rounds > 1000 || !nt || nt > 512) {
        fprintf(stderr, "kernel_ab: bad arguments (N_IN a multiple of 32, ROUNDS 1-1000, TOKENS 1-512)\n");
        return 2;
    }
    const struct cit_kernel *tab_a[CIT_TYPE_COUNT] = {0}, *tab_b[CIT_TYPE_COUNT] = {0};
    kernels_a(tab_a);
    kernels_b(tab_b);
    const struct cit_kernel *ks[2] = {tab_a[type], tab_b[type]};
    const struct cit_type_traits *tr = cit_type_traits(type);
    char err[256];
    struct cit_threadpool *pool = NULL;
    if (cit_threadpool_new(threads, &pool, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "kernel_ab: %s\n", err);
        return 1;
    }
    uint64_t rb = 0;
    cit_type_row_size(type, n_in, &rb);
    const size_t mat = (size_t)rb * n_out, copies = cache ? 1 : (((size_t)512 << 20) + mat - 1) / mat;
    const int inner = cache ? 200 : 1;
    unsigned char *w = weights_alloc(mat * copies);
    float *x = malloc(n_in * nt * sizeof(float));
    float *y[2] = {malloc(n_out * nt * sizeof(float)), malloc(n_out * nt * sizeof(float))};
    void *act[2] = {NULL, NULL};
    double *gbs[2] = {malloc((size_t)rounds * sizeof(double)), malloc((size_t)rounds * sizeof(double))};
    double *ratio = malloc((size_t)rounds * sizeof(double));
    if (!w || !x || !y[0] || !y[1] || !gbs[0] || !gbs[1] || !ratio)
        return 1;
    fill_weights(type, w, mat * copies, tr->type_size);
    fill_inputs(x, n_in * nt);
    const char *r16e = getenv("KAB_R16");
    const int r16 = r16e && (*r16e == '1' || *r16e == '2') && n_out % CIT_R16_ROWS == 0;
    const int r16a = r16 && *r16e == '2';
    unsigned char *wb = w; /* B's weights */
    if (r16) {
        if (!(wb = weights_alloc(mat * copies)))
            return 1;
        for (size_t g = 0; g < n_out * copies; g += CIT_R16_ROWS)
            cit_r16_pack_group(type, w + g * rb, (size_t)rb, wb + g * rb);
    }
    for (int v = 0; v < 2; v++) {
        uint64_t ab = 0;
        ks[v]->act_bytes(n_in, nt, &ab);
        if (!(act[v] = malloc(ab)))
            return 1;
        ks[v]->pack(x, n_in, nt, 0, nt, act[v]);
    }
    const char *plaine = getenv("KAB_PLAIN");
    const int plain = plaine && *plaine == '1';
    double *share = malloc((size_t)rounds * sizeof(double)), *pgbs = malloc((size_t)rounds * sizeof(double));
    if (!share || !pgbs)
        return 1;
    struct plain_job pj = {.row_bytes = (size_t)rb,
                           .ahead = env_size("KAB_PLAIN_PF", 0)};
    for (int r = -2; r < rounds; r++) { /* two rounds of warm-up */
        double dt[2], dp = 0;
        if (plain) {
            double t0 = now();
            for (int it = 0; it < inner; it++)
                for (size_t c = 0; c < copies; c++) {
                    pj.w = (r16 ? wb : w) + c * mat;
                    cit_threadpool_for(pool, n_out, 16, plain_fn, &pj);
                }
            dp = now() - t0;
        }
        for (int o = 0; o < 2; o++) {
            int v = (r & 1) ? 1 - o : o; /* which build goes first flips every round */
            const int rv = v == 1 ? r16 : r16a;
            struct job j = {ks[v], w, (size_t)rb, n_in, n_out, nt, act[v], y[v], rv, type};
            double t0 = now();
            for (int it = 0; it < inner; it++)
                for (size_t c = 0; c < copies; c++) {
                    j.w = (rv ? wb : w) + c * mat;
                    cit_threadpool_for(pool, n_out, 16, rows_fn, &j);
                }
            dt[v] = now() - t0;
        }
        if (r < 0)
            continue;
        for (int v = 0; v < 2; v++)
            gbs[v][r] = (double)mat * (double)copies * inner / dt[v] * 1e-9;
        ratio[r] = dt[0] / dt[1];
        pgbs[r] = plain ? (double)mat * (double)copies * inner / dp * 1e-9 : 0;
        share[r] = plain ? dp / dt[1] : 0;
    }
    const char *nocheck = getenv("KAB_NOCHECK"); /* 1: time a B that computes something else (a bound) */
    if (memcmp(y[0], y[1], n_out * nt * sizeof(float)) && !(nocheck && *nocheck == '1')) {
        fprintf(stderr, "kernel_ab: the two builds gave different outputs\n");
        return 1;
    }
    if (plain) { /* A's and B's shares of the plain read, per round, split by the host's level */
        for (int lvl = 0; lvl < 2; lvl++) {
            double sa[1000], sb[1000], pg[1000], ba[1000];
            int n = 0;
            for (int r = 0; r < rounds; r++)
                if ((pgbs[r] >= 45.0) == lvl) {
                    sb[n] = share[r];
                    sa[n] = share[r] / ratio[r]; /* dp / dt[0] */
                    ba[n] = ratio[r];
                    pg[n++] = pgbs[r];
                }
            if (!n)
                continue;
            qsort(sa, (size_t)n, sizeof(double), cmp_double);
            qsort(sb, (size_t)n, sizeof(double), cmp_double);
            qsort(pg, (size_t)n, sizeof(double), cmp_double);
            qsort(ba, (size_t)n, sizeof(double), cmp_double);
            printf("plain read %s 45 GB/s: %d round(s), plain %.2f GB/s, A/plain %.3f, B/plain %.3f (quartiles "
                   "%.3f-%.3f), B/A %.3f (quartiles %.3f-%.3f)\n",
                   lvl ? ">=" : "<", n, pg[n / 2], sa[n / 2], sb[n / 2], sb[n / 4], sb[(3 * n) / 4], ba[n / 2],
                   ba[n / 4], ba[(3 * n) / 4]);
        }
    }
    qsort(gbs[0], (size_t)rounds, sizeof(double), cmp_double);
    qsort(gbs[1], (size_t)rounds, sizeof(double), cmp_double);
    qsort(ratio, (size_t)rounds, sizeof(double), cmp_double);
    printf("%s%s %zux%zu, %u threads, %s, %zu token(s): A %.2f GB/s (best %.2f), B %.2f GB/s (best %.2f), "
           "B/A %.3f (quartiles %.3f-%.3f)\n",
           tr->name, r16a ? " (A, B: R16)" : r16 ? " (B: R16)" : "", n_out, n_in, threads, cache ? "cache" : "memory", nt, gbs[0][rounds / 2], gbs[0][rounds - 1],
           gbs[1][rounds / 2], gbs[1][rounds - 1], ratio[rounds / 2], ratio[rounds / 4], ratio[(3 * rounds) / 4]);
    cit_threadpool_free(pool);
    return 0;
}
