/* file_read.c: how fast a model file's weights read where citadel maps them,
 * against an anonymous buffer of the same size in 2 MiB pages (what the
 * bench's bandwidth probe reads, and what --repack copies into). Plain zmm
 * loads, one pool loop over the span of the matrices a decode step reads
 * (output and every layer's), 2 threads, the two buffers alternating (which
 * goes first flips every round). Afterwards it prints how much of each
 * mapping the kernel maps in 2 MiB pages (FilePmdMapped / AnonHugePages in
 * /proc/self/smaps): file pages the page cache holds in small folios (after
 * other work churned it) read slower. Not part of the build:
 *
 *   gcc -O2 -std=c17 -D_GNU_SOURCE -I src -I include bench/file_read.c build/libcitadel.a -lpthread -lm \
 *       -lpcre2-8 -ljansson -lmicrohttpd -lsodium -o /tmp/file_read
 *   /tmp/file_read MODEL.gguf ROUNDS
 *
 * Each round reads each buffer 4 times; prints both GB/s and file/anon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/threadpool.h"
#include "model/model_impl.h"
#include "qbench.h"

#define ROW 4096 /* bytes per pool item */

struct span_job {
    const unsigned char *p;
    uint64_t sink[64];
};

static void span_fn(void *arg, size_t begin, size_t end, unsigned tid)
{
    struct span_job *j = arg;
    j->sink[(tid * 8) % 64] ^= plain_read(j->p + begin * ROW, j->p + end * ROW, 0);
}

static void widen(const struct cit_matrix *w, const unsigned char **lo, const unsigned char **hi)
{
    const unsigned char *a = w->data, *b = a + (size_t)w->n_out * w->row_bytes;
    if (a < *lo)
        *lo = a;
    if (b > *hi)
        *hi = b;
}

/* The smaps lines that say how the mapping holding p is mapped. */
static void print_mapping(const char *what, const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return;
    char line[512];
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char c;
        if (sscanf(line, "%lx-%lx%c", &a, &b, &c) == 3 && c == ' ')
            in = (uintptr_t)p >= a && (uintptr_t)p < b;
        else if (in && (!strncmp(line, "Rss:", 4) || !strncmp(line, "FilePmdMapped:", 14) ||
                        !strncmp(line, "AnonHugePages:", 14)))
            printf("%s %s", what, line);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: file_read MODEL.gguf ROUNDS\n");
        return 2;
    }
    char err[256];
    struct cit_model *m = NULL;
    if (cit_model_load(argv[1], &m, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "file_read: %s\n", err);
        return 1;
    }
    const int rounds = atoi(argv[2]);
    const unsigned char *lo = m->output.data, *hi = lo;
    widen(&m->output, &lo, &hi);
    for (uint32_t l = 0; l < m->info.n_layer; l++) {
        const struct cit_layer *L = &m->layers[l];
        const struct cit_matrix *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (int i = 0; i < 7; i++)
            widen(ws[i], &lo, &hi);
    }
    const size_t n = (size_t)(hi - lo) / ROW, bytes = n * ROW, huge = (size_t)2 << 20;
    const size_t padded = (bytes + huge - 1) / huge * huge;
    unsigned char *anon = aligned_alloc(huge, padded);
    struct cit_threadpool *pool = NULL;
    if (!anon || rounds < 1 || cit_threadpool_new(2, &pool, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "file_read: out of memory, bad ROUNDS, or no pool\n");
        return 1;
    }
    madvise(anon, padded, MADV_HUGEPAGE);
    memset(anon, 1, bytes);
    struct span_job jobs[2] = {{.p = lo}, {.p = anon}};
    printf("%.1f MB of weights\n", (double)bytes / 1e6);
    for (int r = 0; r < rounds; r++) {
        double t[2];
        for (int k = 0; k < 2; k++) {
            const int which = r % 2 ? 1 - k : k;
            const double t0 = now();
            for (int pass = 0; pass < 4; pass++)
                cit_threadpool_for(pool, n, 16, span_fn, &jobs[which]);
            t[which] = now() - t0;
        }
        printf("round %d: file %.2f GB/s, anon %.2f GB/s, file/anon %.3f\n", r, 4.0 * (double)bytes / t[0] / 1e9,
               4.0 * (double)bytes / t[1] / 1e9, t[1] / t[0]);
    }
    print_mapping("file", lo);
    print_mapping("anon", anon);
    cit_threadpool_free(pool);
    cit_model_free(m);
    free(anon);
    return 0;
}
