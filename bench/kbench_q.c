/* kbench_q.c: micro-benchmark of the Q4_0 / Q8_0 matmul kernels of one
 * instruction-set tier at the TinyLlama-1.1B shapes. Not part of the build:
 *
 *   gcc -O2 -I src -I include bench/kbench_q.c build/libcitadel.a -lpthread -lm -lpcre2-8 -ljansson -o kbench_q
 *   ./kbench_q [scalar|avx2|avx2vnni|avx512|avx512vnni] [decode|gemm|all] [tokens] [shape 0-4|-1] [type 0|1|-1]
 *
 * decode: one token; the weights rotate over enough copies (>= 512 MiB) that
 * they come from memory, not cache; prints GB/s of weight bytes streamed.
 * gemm: `tokens` tokens (default 512); prints GOPS = 2 * rows * n_in *
 * tokens / s. Each for 1 and 2 threads (rows split over the thread pool as
 * cit_matmul does), best of several runs. Before timing, the first rows of
 * the output are checked against the reference vec_dot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "tensor/quants.h"
#include "qbench.h"

/* Rows split over the pool in 16-row tiles, as cit_matmul_packed does. */
static void run(struct cit_threadpool *pool, struct job *j)
{
    cit_threadpool_for(pool, j->n_out, 16, rows_fn, j);
}

struct rd_job {
    const unsigned char *p;
    size_t bytes;
    uint64_t sink[2 * 8];
};

/* Streaming read of [begin, end) 4 KiB pages: the memory-bandwidth baseline. */
static void read_fn(void *arg, size_t begin, size_t end, unsigned tid)
{
    struct rd_job *j = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t lo = begin * 4096, hi = end * 4096 < j->bytes ? end * 4096 : j->bytes;
    for (size_t i = lo; i + 32 <= hi; i += 32) {
        uint64_t v[4];
        memcpy(v, j->p + i, 32);
        a += v[0];
        b += v[1];
        c += v[2];
        d += v[3];
    }
    j->sink[tid * 8] += a + b + c + d;
}

int main(int argc, char **argv)
{
    const char *isa_name = argc > 1 ? argv[1] : "avx512vnni";
    const char *mode = argc > 2 ? argv[2] : "all";
    size_t gemm_tokens = argc > 3 ? (size_t)atoi(argv[3]) : 512;
    int only_shape = argc > 4 ? atoi(argv[4]) : -1; /* index into shapes[], -1: all */
    int only_type = argc > 5 ? atoi(argv[5]) : -1;  /* 0: Q4_0, 1: Q8_0, -1: both */
    enum cit_isa isa = CIT_ISA_COUNT;
    for (int i = 0; i < CIT_ISA_COUNT; i++)
        if (!strcmp(isa_name, cit_isa_name((enum cit_isa)i)))
            isa = (enum cit_isa)i;
    if (isa == CIT_ISA_COUNT || !cit_isa_supported(isa)) {
        fprintf(stderr, "kbench_q: tier %s unknown or unsupported here (detected %s)\n", isa_name,
                cit_isa_name(cit_isa_detected()));
        return 1;
    }
    struct cit_threadpool *pools[2];
    char err[256];
    for (unsigned i = 0; i < 2; i++)
        if (cit_threadpool_new(i + 1, &pools[i], err, sizeof err) != CIT_OK) {
            fprintf(stderr, "kbench_q: %s\n", err);
            return 1;
        }
    static const size_t shapes[][2] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};
    static const uint32_t types[] = {CIT_TYPE_Q4_0, CIT_TYPE_Q8_0};
    printf("tier %s\n", cit_isa_name(isa));
    for (size_t ti = 0; ti < 2; ti++) {
        uint32_t type = types[ti];
        const struct cit_type_traits *tr = cit_type_traits(type);
        const struct cit_kernel *k = cit_kernel_for_isa(type, isa);
        if (only_type >= 0 && (size_t)only_type != ti)
            continue;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            if (only_shape >= 0 && (size_t)only_shape != si)
                continue;
            size_t n_out = shapes[si][0], n_in = shapes[si][1];
            uint64_t rb64 = 0;
            cit_type_row_size(type, n_in, &rb64);
            size_t row_bytes = (size_t)rb64, mat = row_bytes * n_out;
            for (int pass = 0; pass < 2; pass++) {
                int decode = pass == 0;
                if ((decode && !strcmp(mode, "gemm")) || (!decode && !strcmp(mode, "decode")))
                    continue;
                size_t nt = decode ? 1 : gemm_tokens;
                const char *hot = getenv("KBENCH_HOT");
                size_t copies = decode && !(hot && *hot == '1') ? (((size_t)512 << 20) + mat - 1) / mat : 1;
                unsigned char *w = malloc(mat * copies);
                float *x = malloc(n_in * nt * sizeof(float));
                float *y = malloc(n_out * nt * sizeof(float));
                uint64_t ab = 0;
                k->act_bytes(n_in, nt, &ab);
                void *act = malloc(ab);
                uint64_t rab = 0;
                cit_type_row_size(CIT_TYPE_Q8_0, n_in, &rab);
                unsigned char *ref_act = malloc(rab);
                if (!w || !x || !y || !act || !ref_act)
                    return 1;
                fill_weights(type, w, mat, tr->type_size);
                for (size_t c = 1; c < copies; c++)
                    memcpy(w + c * mat, w, mat);
                fill_inputs(x, n_in * nt);
                k->pack(x, n_in, nt, 0, nt, act);
                const char *r16e = getenv("KBENCH_R16");
                int r16 = r16e && *r16e == '1';
                unsigned char *wref = w;
                if (r16) { /* every copy repacked; the first kept in rows for the check */
                    wref = malloc(mat);
                    if (!wref)
                        return 1;
                    memcpy(wref, w, mat);
                    for (size_t c = 0; c < copies; c++)
                        for (size_t g = 0; g < n_out; g += CIT_R16_ROWS)
                            cit_r16_pack_group(type, wref + g * row_bytes, row_bytes, w + c * mat + g * row_bytes);
                }
                struct job j = {k, w, row_bytes, n_in, n_out, nt, act, y, r16, type};
                run(pools[1], &j);
                /* check a few outputs against the reference */
                for (size_t t = 0; t < nt && t < 3; t++) {
                    cit_ref_q8_0_from_float(x + t * n_in, ref_act, (int64_t)n_in);
                    for (size_t r = 0; r < n_out; r += n_out / 7 + 1) {
                        float want;
                        tr->vec_dot((int64_t)n_in, &want, wref + r * row_bytes, ref_act);
                        if (memcmp(&want, &y[t * n_out + r], 4)) {
                            fprintf(stderr, "MISMATCH %s %zux%zu t %zu r %zu: %g vs %g\n", tr->name, n_out, n_in, t,
                                    r, (double)y[t * n_out + r], (double)want);
                            return 1;
                        }
                    }
                }
                double res[2], base[2] = {0, 0};
                for (int th = 0; th < 2 && decode; th++) {
                    struct rd_job rj = {w, mat * copies, {0}};
                    double best = 1e30;
                    for (int rep = 0; rep < 3; rep++) {
                        double t0 = now();
                        cit_threadpool_for(pools[th], (mat * copies + 4095) / 4096, 256, read_fn, &rj);
                        double dt = now() - t0;
                        if (dt < best)
                            best = dt;
                    }
                    base[th] = (double)(mat * copies) / best * 1e-9;
                }
                for (int th = 0; th < 2; th++) {
                    double best = 1e30;
                    double t_start = now();
                    for (int rep = 0; rep < 20 && (rep < 3 || now() - t_start < 1.0); rep++) {
                        double t0 = now();
                        for (size_t c = 0; c < copies; c++) {
                            j.w = w + c * mat;
                            run(pools[th], &j);
                        }
                        double dt = (now() - t0) / (double)copies;
                        if (dt < best)
                            best = dt;
                    }
                    res[th] = decode ? (double)mat / best * 1e-9 : 2.0 * (double)n_out * (double)n_in * (double)nt / best * 1e-9;
                }
                if (wref != w)
                    free(wref);
                printf("%-5s%s %5zux%-5zu %-6s %s: 1 thread %7.1f  2 threads %7.1f", tr->name, r16 ? " R16" : "", n_out, n_in,
                       decode ? "decode" : "gemm", decode ? "GB/s" : "GOPS", res[0], res[1]);
                if (decode)
                    printf("   (plain read of the same buffers: %5.1f / %5.1f GB/s)", base[0], base[1]);
                printf("\n");
                fflush(stdout);
                free(w);
                free(x);
                free(y);
                free(act);
                free(ref_act);
            }
        }
    }
    cit_threadpool_free(pools[0]);
    cit_threadpool_free(pools[1]);
    return 0;
}
