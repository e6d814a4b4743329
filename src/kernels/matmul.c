/* matmul.c: cit_matmul over the dispatched kernels.
 *
 * Two parallel phases: pack the activations (split over token groups), then
 * compute outputs split over weight rows, every thread taking all tokens
 * for its rows so a weight row is read from memory once per batch. The
 * loops never allocate, with one exception: a `--repack` (R16) matrix in a
 * batch its kernel does not read natively takes a scratch of up to 512 KiB
 * per row range (cit_r16_gemm_rows), freed before it returns. */
#include "kernels/matmul.h"

#include <assert.h>

#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "kernels/repack.h"

bool cit_matmul_supported(uint32_t type, uint64_t n_in)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    if (!tr || !tr->to_float || !tr->vec_dot || !cit_kernel_get(type) || n_in == 0 || n_in % tr->block_size != 0)
        return false;
    const struct cit_type_traits *vt = cit_type_traits(tr->vec_dot_type);
    return vt && vt->from_float && n_in % vt->block_size == 0;
}

bool cit_matmul_act_bytes(uint32_t type, uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    const struct cit_kernel *k = cit_kernel_get(type);
    return k && k->act_bytes(n_in, n_tokens, bytes);
}

bool cit_matmul_same_act(const struct cit_matrix *a, const struct cit_matrix *b, size_t n_tokens)
{
    return a->n_in == b->n_in && cit_kernel_same_act(cit_kernel_get(a->type), cit_kernel_get(b->type), n_tokens);
}

struct pack_job {
    const struct cit_kernel *k;
    const float *x; /* (n_tokens, n_in) */
    size_t n_in, n_tokens;
    void *act;
};

static void pack_groups(void *arg, size_t begin, size_t end, unsigned tid)
{
    const struct pack_job *j = arg;
    size_t g = j->k->pack_group;
    size_t t1 = end * g < j->n_tokens ? end * g : j->n_tokens;
    j->k->pack(j->x, j->n_in, j->n_tokens, begin * g, t1, j->act);
}

void cit_matmul_pack(struct cit_threadpool *pool, const struct cit_matrix *w, const float *x, size_t n_tokens,
                     void *act)
{
    if (n_tokens == 0)
        return;
    const struct cit_kernel *k = cit_kernel_get(w->type);
    assert(k && k->pack_group > 0);
    struct pack_job j = {k, x, w->n_in, n_tokens, act};
    size_t groups = (n_tokens + k->pack_group - 1) / k->pack_group;
    /* Small inputs (decode) pack inline: waking the pool costs more. */
    if ((size_t)w->n_in * n_tokens < 16384)
        pack_groups(&j, 0, groups, 0);
    else
        cit_threadpool_for(pool, groups, 1, pack_groups, &j);
}

struct gemm_job {
    const struct cit_kernel *k;
    const struct cit_matrix *w;
    const void *act;
    size_t n_tokens;
    float *y; /* (n_tokens, n_out) */
};

static void gemm_rows(void *arg, size_t begin, size_t end, unsigned tid)
{
    const struct gemm_job *j = arg;
    if (j->w->layout == CIT_LAYOUT_R16) {
        cit_r16_gemm(j->k, j->w->type, j->w->data, j->w->row_bytes, j->w->n_in, begin, end, j->act, j->n_tokens, j->y,
                     j->w->n_out);
        return;
    }
    j->k->gemm(j->w->data, j->w->row_bytes, j->w->n_in, begin, end, j->act, j->n_tokens, j->y, j->w->n_out);
}

void cit_matmul_packed(struct cit_threadpool *pool, const struct cit_matrix *w, const void *act, size_t n_tokens,
                       float *y)
{
    cit_matmul_packed_n(pool, &w, 1, act, n_tokens, &y);
}

struct gemm_multi_job {
    struct gemm_job m[CIT_MATMUL_MAX_FUSED];
    size_t start[CIT_MATMUL_MAX_FUSED + 1]; /* first index of each matrix's rows, in whole tiles */
    size_t n_mats;
};

/* Indices [begin, end) of the matrices' rows laid end to end, each matrix's
 * rows rounded up to whole tiles so that every matrix's chunks start at its
 * own multiples of the tile, as when it runs alone. */
static void gemm_multi_rows(void *arg, size_t begin, size_t end, unsigned tid)
{
    struct gemm_multi_job *j = arg;
    for (size_t i = 0; i < j->n_mats && begin < end; i++) {
        if (begin >= j->start[i + 1])
            continue;
        size_t n_out = j->m[i].w->n_out;
        size_t b = begin - j->start[i], e = (end < j->start[i + 1] ? end : j->start[i + 1]) - j->start[i];
        if (e > n_out)
            e = n_out;
        if (b < e)
            gemm_rows(&j->m[i], b, e, tid);
        begin = j->start[i + 1];
    }
}

void cit_matmul_packed_n(struct cit_threadpool *pool, const struct cit_matrix *const *w, size_t n_mats,
                         const void *act, size_t n_tokens, float *const *y)
{
    assert(n_mats >= 1 && n_mats <= CIT_MATMUL_MAX_FUSED);
    if (n_tokens == 0)
        return;
    struct gemm_multi_job j = {.n_mats = n_mats};
    for (size_t i = 0; i < n_mats; i++) {
        j.m[i] = (struct gemm_job){cit_kernel_get(w[i]->type), w[i], act, n_tokens, y[i]};
        j.start[i + 1] = j.start[i] + ((size_t)w[i]->n_out + 15) / 16 * 16;
    }
    /* Chunks of whole 16-row tiles (the decode kernels' blocks); the pool
     * shrinks them as the rows run out, so the threads finish within a tile
     * of each other. */
    cit_threadpool_for(pool, j.start[n_mats], 16, gemm_multi_rows, &j);
}

void cit_matmul(struct cit_threadpool *pool, const struct cit_matrix *w, const float *x, size_t n_tokens,
                float *y, void *act)
{
    cit_matmul_pack(pool, w, x, n_tokens, act);
    cit_matmul_packed(pool, w, act, n_tokens, y);
}

void cit_matrix_row(const struct cit_matrix *w, size_t row, float *dst)
{
    assert(row < w->n_out && w->layout == CIT_LAYOUT_ROWS);
    w->tr->to_float((const unsigned char *)w->data + row * w->row_bytes, dst, w->n_in);
}
