/* repack.c: cit_model_repack, the opt-in copy of a model's Q4_0, Q8_0,
 * Q4_K and Q6_K matrices into the 16-row interleaved layout (kernels/repack.h) that
 * the SIMD decode kernels read without shuffles.
 *
 * The copy lives in one anonymous mapping (huge pages asked for: the
 * decode streams it whole every token). Once a matrix is copied, the file
 * pages it came from are dropped from this process (MADV_DONTNEED on a
 * read-only private file mapping only unmaps them; they stay in the page
 * cache and fault back in from the file if anything reads them), so the
 * resident size stays about the file's, as without repacking (a model is
 * always a file mapping: cit_model_load opens a path with cit_gguf_open, and
 * the GGUF reader refuses overlapping tensors). Everything else the forward
 * pass reads from the layer region (the other matrices, norms, biases) is
 * copied as it is: reading it in the file would map back the whole large
 * page-cache folio around it, megabytes of the released matrices
 * (measured: +85 MiB resident on TinyLlama Q4_0 with the norms left, +38
 * MiB on Q4_K_M with its Q6_K matrices left). */
#define _DEFAULT_SOURCE /* madvise */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/pages.h"
#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "kernels/repack.h"
#include "model/model_impl.h"

struct repack_job {
    const struct cit_matrix *src;
    unsigned char *dst;
};

static void repack_groups(void *arg, size_t begin, size_t end, unsigned tid)
{
    (void)tid;
    const struct repack_job *j = arg;
    const size_t gb = CIT_R16_ROWS * j->src->row_bytes;
    for (size_t g = begin; g < end; g++)
        cit_r16_pack_group(j->src->type, (const unsigned char *)j->src->data + g * gb, j->src->row_bytes,
                           j->dst + g * gb);
}

/* The file pages wholly inside [p, p + len): given back. */
static void release_pages(const void *p, size_t len)
{
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0)
        return;
    uintptr_t a = (uintptr_t)p, e = a + len, page = (uintptr_t)ps;
    uintptr_t lo = (a + page - 1) / page * page, hi = e / page * page;
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* The per-layer and final vectors the forward pass reads from the file:
 * pointers to them (NULL ones skipped by the callers) and their lengths. */
static size_t model_vectors(struct cit_model *m, const float ***ptrs, size_t *lens)
{
    size_t n = 0;
    for (uint32_t il = 0; il < m->info.n_layer; il++) {
        struct cit_layer *l = &m->layers[il];
        const float **ps[] = {&l->attn_norm, &l->ffn_norm, &l->bq, &l->bk, &l->bv};
        const size_t ls[] = {m->info.n_embd, m->info.n_embd, m->q_dim, m->kv_dim, m->kv_dim};
        for (size_t i = 0; i < 5; i++, n++)
            if (ptrs) {
                ptrs[n] = ps[i];
                lens[n] = ls[i];
            }
    }
    if (ptrs) {
        ptrs[n] = &m->output_norm;
        lens[n] = m->info.n_embd;
        ptrs[n + 1] = &m->rope_freqs;
        lens[n + 1] = m->info.n_rot / 2;
    }
    return n + 2;
}

/* Every matrix the forward pass multiplies by, in one list. */
static size_t model_matrices(struct cit_model *m, struct cit_matrix **out)
{
    size_t n = 0;
    for (uint32_t il = 0; il < m->info.n_layer; il++) {
        struct cit_layer *l = &m->layers[il];
        struct cit_matrix *ms[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->wgate, &l->wup, &l->wdown};
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
            if (out)
                out[n++] = ms[i];
            else
                n++;
    }
    if (out)
        out[n] = &m->output;
    return n + 1;
}

enum cit_status cit_model_repack(struct cit_model *m, unsigned n_threads, uint64_t *repacked_bytes, char *err,
                                 size_t errlen)
{
    if (repacked_bytes)
        *repacked_bytes = 0;
    if (!m)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_model_repack: model is NULL");
    if (m->repacked)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_model_repack: the model is already repacked");
    size_t n = model_matrices(m, NULL);
    struct cit_matrix **mats = calloc(n, sizeof *mats);
    if (!mats)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory");
    model_matrices(m, mats);
    /* Which matrices: those with an R16 layout whose kernel on this tier reads
     * it natively are interleaved (elsewhere the copy would only add work);
     * once any is, the other matrices are copied as they are, so that the
     * forward pass never touches the file's layer region again (reading one
     * matrix there would map back the page-cache folios around it, part of
     * the released neighbours: +38 MiB resident on TinyLlama Q4_K_M). A tied
     * output stays with tok_embd, whose rows are looked up in the file. */
    enum { SKIP, COPY, R16 };
    unsigned char *kind = calloc(n, 1);
    if (!kind) {
        free(mats);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory");
    }
    uint64_t total = 0;
    bool any_r16 = false;
    const struct cit_matrix *refused = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!cit_r16_eligible(mats[i]))
            kind[i] = mats[i] == &m->output && m->info.tied_output ? SKIP : COPY;
        else if (cit_r16_native(cit_kernel_get(mats[i]->type), 1))
            kind[i] = R16;
        else {
            kind[i] = COPY;
            refused = refused ? refused : mats[i]; /* the first, a layer matrix: named in the error */
        }
        if (kind[i] == SKIP)
            continue;
        uint64_t bytes;
        if (!cit_mul_u64(mats[i]->row_bytes, mats[i]->n_out, &bytes) || !cit_add_u64(bytes, 63, &bytes) ||
            !cit_add_u64(total, bytes / 64 * 64, &total)) {
            free(kind);
            free(mats);
            return cit_fail(CIT_ERR_RANGE, err, errlen, "repack: matrix sizes overflow");
        }
        if (kind[i] == R16)
            any_r16 = true;
    }
    if (!any_r16) {
        free(kind);
        free(mats);
        if (refused)
            return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen,
                            "the %s kernel tier has no interleaved %s kernel (Q4_0 needs AVX2, Q8_0, Q4_K and Q6_K "
                            "AVX-512 VNNI), so the weights stay as they are in the file",
                            cit_isa_name(cit_isa_active()), refused->tr->name);
        return CIT_OK;
    }
    size_t nv = model_vectors(m, NULL, NULL);
    const float ***vecs = calloc(nv, sizeof *vecs);
    size_t *vlen = calloc(nv, sizeof *vlen);
    if (!vecs || !vlen) {
        free(vecs);
        free(vlen);
        free(kind);
        free(mats);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory");
    }
    model_vectors(m, vecs, vlen);
    const uint64_t vec_off = total; /* vectors after the matrices, each 64-byte aligned */
    for (size_t i = 0; i < nv; i++)
        if (*vecs[i] && !cit_add_u64(total, ((uint64_t)vlen[i] * sizeof(float) + 63) / 64 * 64, &total))
            total = UINT64_MAX; /* the mapping below then fails: out of memory */
    void *buf = total <= SIZE_MAX ? cit_map_anon_huge((size_t)total) : NULL;
    if (!buf) {
        free(vecs);
        free(vlen);
        free(kind);
        free(mats);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "repack: cannot map %llu bytes for the interleaved weights",
                        (unsigned long long)total);
    }
    struct cit_threadpool *pool = NULL;
    enum cit_status st = cit_threadpool_new(n_threads ? n_threads : cit_cpu_physical_cores(), &pool, err, errlen);
    if (st != CIT_OK) {
        cit_unmap_anon(buf, (size_t)total);
        free(vecs);
        free(vlen);
        free(kind);
        free(mats);
        return st;
    }
    unsigned char *dst = buf;
    for (size_t i = 0; i < n; i++) {
        struct cit_matrix *w = mats[i];
        if (kind[i] == SKIP)
            continue;
        size_t bytes = w->row_bytes * w->n_out;
        if (kind[i] == R16) {
            struct repack_job j = {w, dst};
            cit_threadpool_for(pool, w->n_out / CIT_R16_ROWS, 1, repack_groups, &j);
            w->layout = CIT_LAYOUT_R16;
        } else {
            memcpy(dst, w->data, bytes);
        }
        if (w != &m->output || !m->info.tied_output)
            release_pages(w->data, bytes);
        w->data = dst;
        dst += (bytes + 63) / 64 * 64;
    }
    cit_threadpool_free(pool);
    dst = (unsigned char *)buf + vec_off;
    for (size_t i = 0; i < nv; i++) {
        if (!*vecs[i])
            continue;
        size_t bytes = vlen[i] * sizeof(float);
        memcpy(dst, *vecs[i], bytes);
        release_pages(*vecs[i], bytes);
        *vecs[i] = (const float *)(const void *)dst;
        dst += (bytes + 63) / 64 * 64;
    }
    free(vecs);
    free(vlen);
    free(kind);
    free(mats);
    m->repacked = buf;
    m->repacked_len = (size_t)total;
    if (repacked_bytes)
        *repacked_bytes = total;
    return CIT_OK;
}

void cit_model_repack_free(struct cit_model *m)
{
    if (m)
        cit_unmap_anon(m->repacked, m->repacked_len);
}
