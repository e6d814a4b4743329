/* sched_ab.c: how the way rows are shared between threads changes the speed
 * of the one-token (decode) matmul: the pool's guided chunks (what
 * cit_matmul_packed does) against the fixed chunks of eb302c8, claimed one
 * at a time: n_out / (4 x threads) rows, or n_out / (8 x threads) rounded up
 * to whole 16-row tiles where that is larger. Not part of the build:
 *
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -I src -I include bench/sched_ab.c build/libcitadel.a -lpthread -lm \
 *       -lpcre2-8 -ljansson -lmicrohttpd -lsodium -o /tmp/sched_ab && /tmp/sched_ab 2 12
 *
 * Arguments: THREADS (default 2), ROUNDS (default 12). For Q4_0 and Q8_0 at
 * the TinyLlama-1.1B shapes, weights rotate over >= 512 MiB of distinct
 * copies (from memory, not cache), one matmul per copy as in a decode step.
 * The two schedules alternate within one process (which goes first flips
 * every round), so the drift of a shared host hits both alike; prints the
 * median GB/s of each and the median of the per-round speed ratios. The
 * outputs of both are checked to be identical. */
#include <stdatomic.h>
#include <stdio.h>

#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "tensor/quants.h"
#include "qbench.h"

/* The fixed schedule: one loop item per thread, each claiming chunks from
 * its own cursor until the rows run out. */
struct fixed_job {
    const struct job *j;
    size_t chunk;
    atomic_size_t next;
};

static void fixed_fn(void *arg, size_t begin, size_t end, unsigned tid)
{
    (void)begin;
    (void)end;
    struct fixed_job *f = arg;
    for (;;) {
        size_t r0 = atomic_fetch_add(&f->next, f->chunk);
        if (r0 >= f->j->n_out)
            return;
        size_t r1 = f->j->n_out - r0 < f->chunk ? f->j->n_out : r0 + f->chunk;
        rows_fn((void *)f->j, r0, r1, tid);
    }
}

static void run(struct cit_threadpool *pool, struct job *j, int guided)
{
    if (guided) {
        cit_threadpool_for(pool, j->n_out, 16, rows_fn, j);
        return;
    }
    /* exactly what eb302c8 did: cit_matmul_packed's grain (an eighth of the
     * rows per thread, in whole tiles), and the pool's chunk of n / (4
     * threads) where that is larger */
    size_t threads = cit_threadpool_size(pool);
    size_t grain = (j->n_out + threads * 8 - 1) / (threads * 8);
    grain = (grain + 15) / 16 * 16;
    size_t chunk = j->n_out / (threads * 4);
    struct fixed_job f = {j, chunk > grain ? chunk : grain, 0};
    cit_threadpool_for(pool, threads, 1, fixed_fn, &f);
}

int main(int argc, char **argv)
{
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 12;
    if (threads < 1 || rounds < 1 || rounds > 1000) {
        fprintf(stderr, "usage: sched_ab [THREADS] [ROUNDS <= 1000]\n");
        return 2;
    }
    char err[256];
    struct cit_threadpool *pool = NULL;
    if (cit_threadpool_new(threads, &pool, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "sched_ab: %s\n", err);
        return 1;
    }
    static const size_t shapes[][2] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}};
    static const uint32_t types[] = {CIT_TYPE_Q4_0, CIT_TYPE_Q8_0};
    printf("tier %s, %u threads, %d rounds\n", cit_isa_name(cit_isa_active()), threads, rounds);
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const uint32_t type = types[ti];
            const struct cit_type_traits *tr = cit_type_traits(type);
            const struct cit_kernel *k = cit_kernel_get(type);
            size_t n_out = shapes[si][0], n_in = shapes[si][1];
            uint64_t rb = 0, ab = 0;
            cit_type_row_size(type, n_in, &rb);
            size_t mat = (size_t)rb * n_out, copies = (((size_t)512 << 20) + mat - 1) / mat;
            k->act_bytes(n_in, 1, &ab);
            unsigned char *w = malloc(mat * copies);
            float *x = malloc(n_in * sizeof(float)), *y[2] = {malloc(n_out * sizeof(float)), malloc(n_out * sizeof(float))};
            void *act = malloc(ab);
            double *gbs[2] = {malloc((size_t)rounds * sizeof(double)), malloc((size_t)rounds * sizeof(double))};
            double *ratio = malloc((size_t)rounds * sizeof(double));
            if (!w || !x || !y[0] || !y[1] || !act || !gbs[0] || !gbs[1] || !ratio)
                return 1;
            fill_weights(type, w, mat * copies, tr->type_size);
            fill_inputs(x, n_in);
            k->pack(x, n_in, 1, 0, 1, act);
            for (int r = -1; r < rounds; r++) { /* round -1 warms up */
                double dt[2];
                for (int o = 0; o < 2; o++) {
                    int guided = (r & 1) ? 1 - o : o;
                    struct job j = {k, w, (size_t)rb, n_in, n_out, 1, act, y[guided]};
                    double t0 = now();
                    for (size_t c = 0; c < copies; c++) {
                        j.w = w + c * mat;
                        run(pool, &j, guided);
                    }
                    dt[guided] = now() - t0;
                }
                if (r < 0)
                    continue;
                for (int g = 0; g < 2; g++)
                    gbs[g][r] = (double)(mat * copies) / dt[g] * 1e-9;
                ratio[r] = dt[0] / dt[1];
            }
            if (memcmp(y[0], y[1], n_out * sizeof(float))) {
                fprintf(stderr, "sched_ab: the two schedules gave different outputs\n");
                return 1;
            }
            qsort(gbs[0], (size_t)rounds, sizeof(double), cmp_double);
            qsort(gbs[1], (size_t)rounds, sizeof(double), cmp_double);
            qsort(ratio, (size_t)rounds, sizeof(double), cmp_double);
            printf("%-5s %5zux%-5zu fixed %6.2f GB/s  guided %6.2f GB/s  guided/fixed %.3f (quartiles %.3f-%.3f)\n",
                   tr->name, n_out, n_in, gbs[0][rounds / 2], gbs[1][rounds / 2], ratio[rounds / 2],
                   ratio[rounds / 4], ratio[(3 * rounds) / 4]);
            fflush(stdout);
            free(w);
            free(x);
            free(y[0]);
            free(y[1]);
            free(act);
            free(gbs[0]);
            free(gbs[1]);
            free(ratio);
        }
    cit_threadpool_free(pool);
    return 0;
}
