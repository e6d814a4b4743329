/* context.c: inference contexts: resolving parameters, sizing and
 * allocating the KV cache and scratch once, and the per-sequence cache
 * operations (length, remove, copy).
 *
 * The KV cache gives each sequence its own n_ctx positions per layer, so a
 * sequence's keys are contiguous and attention never searches for them.
 * All sizes come from one layout function, used both to allocate and to
 * answer cit_context_memory, so the reported figures are exactly what gets
 * allocated. */
#include "citadel/model.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/pages.h"
#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "model/model_impl.h"

#define MAX_SEQ (1u << 20)
#define MAX_BATCH (1u << 16)
#define DEFAULT_BATCH 512u
#define SCRATCH_ALIGN 64u

/* Byte offsets of the scratch buffers inside one allocation. */
struct layout {
    uint64_t seq_len, seq_next, x, xn, q, k, v, att, proj, gate, up, rope_cs, scores, act, logits, logit_row;
    uint64_t scratch_bytes; /* total, a multiple of SCRATCH_ALIGN */
    uint64_t kv_elems;      /* floats of one of the K and V caches */
    uint64_t kv_bytes;      /* both caches */
};

static bool reserve(uint64_t *total, uint64_t count, uint64_t elem_size, uint64_t *off)
{
    uint64_t start, bytes, end;
    if (!cit_align_up_u64(*total, SCRATCH_ALIGN, &start) || !cit_mul_u64(count, elem_size, &bytes) ||
        !cit_add_u64(start, bytes, &end))
        return false;
    *off = start;
    *total = end;
    return true;
}

/* Largest packed-activation buffer for n_batch tokens over every matrix the
 * forward pass uses. */
static bool act_bytes_max(const struct cit_model *m, uint64_t n_batch, uint64_t *out)
{
    uint64_t best = 0, b;
    if (!cit_matmul_act_bytes(m->output.type, m->output.n_in, n_batch, &b))
        return false;
    best = b;
    for (uint32_t il = 0; il < m->info.n_layer; il++) {
        const struct cit_layer *l = &m->layers[il];
        const struct cit_matrix *mats[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->wgate, &l->wup, &l->wdown};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            if (!cit_matmul_act_bytes(mats[i]->type, mats[i]->n_in, n_batch, &b))
                return false;
            if (b > best)
                best = b;
        }
    }
    *out = best;
    return true;
}

static enum cit_status resolve_params(const struct cit_model *m, const struct cit_context_params *in,
                                      struct cit_context_params *p, char *err, size_t errlen)
{
    const struct cit_model_info *hp = &m->info;
    *p = in ? *in : (struct cit_context_params){0};
    if (p->n_ctx == 0)
        p->n_ctx = hp->n_ctx_train;
    if (p->n_ctx > hp->n_ctx_train)
        return cit_fail(CIT_ERR_RANGE, err, errlen,
                        "n_ctx %u exceeds the model's training context %u (%s.context_length)", p->n_ctx,
                        hp->n_ctx_train, hp->arch);
    if (p->n_seq_max == 0)
        p->n_seq_max = 1;
    if (p->n_seq_max > MAX_SEQ)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "n_seq_max %u out of range [1, %u]", p->n_seq_max, MAX_SEQ);
    if (p->n_batch_max == 0) {
        uint64_t cap = (uint64_t)p->n_ctx * p->n_seq_max;
        p->n_batch_max = cap < DEFAULT_BATCH ? (uint32_t)cap : DEFAULT_BATCH;
    }
    if (p->n_batch_max > MAX_BATCH)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "n_batch_max %u out of range [1, %u]", p->n_batch_max,
                        MAX_BATCH);
    if (p->n_threads == 0)
        p->n_threads = cit_cpu_physical_cores();
    if (p->n_threads > CIT_THREADPOOL_MAX_THREADS)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "n_threads %u out of range [1, %u]", p->n_threads,
                        CIT_THREADPOOL_MAX_THREADS);
    return CIT_OK;
}

static enum cit_status plan(const struct cit_model *m, const struct cit_context_params *p, struct layout *lo,
                            char *err, size_t errlen)
{
    const struct cit_model_info *hp = &m->info;
    uint64_t nb = p->n_batch_max, t = 0, act_bytes;
    memset(lo, 0, sizeof *lo);
    bool ok = act_bytes_max(m, nb, &act_bytes) &&
              reserve(&t, p->n_seq_max, sizeof(int32_t), &lo->seq_len) &&
              reserve(&t, p->n_seq_max, sizeof(int32_t), &lo->seq_next) &&
              reserve(&t, nb * hp->n_embd, sizeof(float), &lo->x) &&
              reserve(&t, nb * hp->n_embd, sizeof(float), &lo->xn) &&
              reserve(&t, nb * m->q_dim, sizeof(float), &lo->q) &&
              reserve(&t, nb * m->kv_dim, sizeof(float), &lo->k) &&
              reserve(&t, nb * m->kv_dim, sizeof(float), &lo->v) &&
              reserve(&t, nb * m->q_dim, sizeof(float), &lo->att) &&
              reserve(&t, nb * hp->n_embd, sizeof(float), &lo->proj) &&
              reserve(&t, nb * hp->n_ff, sizeof(float), &lo->gate) &&
              reserve(&t, nb * hp->n_ff, sizeof(float), &lo->up) &&
              reserve(&t, nb * hp->n_rot, sizeof(float), &lo->rope_cs) &&
              reserve(&t, (uint64_t)p->n_threads * p->n_ctx, sizeof(float), &lo->scores) &&
              reserve(&t, 1, act_bytes, &lo->act) &&
              reserve(&t, nb * hp->n_vocab, sizeof(float), &lo->logits) &&
              reserve(&t, nb, sizeof(int32_t), &lo->logit_row) &&
              cit_align_up_u64(t, SCRATCH_ALIGN, &lo->scratch_bytes);
    /* KV: n_layer * n_seq_max * n_ctx * kv_dim floats, twice. */
    ok = ok && cit_mul_u64(hp->n_layer, p->n_seq_max, &lo->kv_elems) &&
         cit_mul_u64(lo->kv_elems, p->n_ctx, &lo->kv_elems) && cit_mul_u64(lo->kv_elems, m->kv_dim, &lo->kv_elems) &&
         cit_mul_u64(lo->kv_elems, 2 * sizeof(float), &lo->kv_bytes) && lo->kv_bytes <= SIZE_MAX &&
         lo->scratch_bytes <= SIZE_MAX;
    if (!ok)
        return cit_fail(CIT_ERR_LIMIT, err, errlen,
                        "context size overflows (n_ctx %u, n_seq_max %u, n_batch_max %u, n_threads %u)", p->n_ctx,
                        p->n_seq_max, p->n_batch_max, p->n_threads);
    return CIT_OK;
}

/* Defaults filled in and checked, then the allocation laid out: what both
 * cit_context_memory and cit_context_new start from. */
static enum cit_status resolve_and_plan(const struct cit_model *m, const struct cit_context_params *p,
                                        struct cit_context_params *rp, struct layout *lo, char *err, size_t errlen)
{
    enum cit_status st = resolve_params(m, p, rp, err, errlen);
    return st == CIT_OK ? plan(m, rp, lo, err, errlen) : st;
}

enum cit_status cit_context_memory(const struct cit_model *m, const struct cit_context_params *p,
                                   uint64_t *kv_bytes, uint64_t *scratch_bytes, char *err, size_t errlen)
{
    struct cit_context_params rp;
    struct layout lo;
    enum cit_status st = resolve_and_plan(m, p, &rp, &lo, err, errlen);
    if (st != CIT_OK)
        return st;
    if (kv_bytes)
        *kv_bytes = lo.kv_bytes;
    if (scratch_bytes)
        *scratch_bytes = lo.scratch_bytes;
    return CIT_OK;
}

static uint64_t physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0)
        return UINT64_MAX;
    uint64_t bytes;
    return cit_mul_u64((uint64_t)pages, (uint64_t)page, &bytes) ? bytes : UINT64_MAX;
}

enum cit_status cit_context_new(const struct cit_model *m, const struct cit_context_params *p,
                                struct cit_context **out, char *err, size_t errlen)
{
    if (!out || !m)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_context_new: NULL argument");
    *out = NULL;
    struct cit_context_params rp;
    struct layout lo;
    enum cit_status st = resolve_and_plan(m, p, &rp, &lo, err, errlen);
    if (st != CIT_OK)
        return st;
    uint64_t need, phys = physical_memory();
    if (!cit_add_u64(lo.kv_bytes, lo.scratch_bytes, &need) || need > phys)
        return cit_fail(CIT_ERR_LIMIT, err, errlen,
                        "context needs %" PRIu64 " MiB (KV cache %" PRIu64 " MiB + scratch %" PRIu64
                        " MiB) but the machine has %" PRIu64 " MiB; lower n_ctx (%u) or n_seq_max (%u)",
                        (lo.kv_bytes >> 20) + (lo.scratch_bytes >> 20), lo.kv_bytes >> 20, lo.scratch_bytes >> 20,
                        phys >> 20, rp.n_ctx, rp.n_seq_max);

    struct cit_context *c = calloc(1, sizeof *c);
    if (!c)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory");
    c->m = m;
    c->p = rp;
    size_t half = (size_t)(lo.kv_bytes / 2);
    /* K then V in one mapping in 2 MiB pages: attention streams the cache,
     * and fewer TLB misses made a KV head's read 1.5-4.8 us faster of about
     * 23 and tg1024 up to 7.7% faster (docs/benchmarks.md, sessions 12 and
     * 14). Memory is committed as touched, 2 MiB at a time. */
    c->kv_map_bytes = 2 * (half ? half : 64);
    c->k_cache = cit_map_anon_huge(c->kv_map_bytes);
    c->v_cache = c->k_cache ? (float *)((char *)c->k_cache + c->kv_map_bytes / 2) : NULL;
    /* Sized for the largest batch (the logits of 512 items alone are 62.5 MiB
     * for a 32,000-token vocabulary), while a decode step uses a row of each
     * buffer: mapped, not written, so only what is used becomes resident.
     * Zeroed by the kernel; page-aligned, so SCRATCH_ALIGN holds. */
    c->scratch_bytes = (size_t)lo.scratch_bytes;
    c->scratch = cit_map_anon(c->scratch_bytes);
    if (!c->k_cache || !c->scratch) {
        cit_context_free(c);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for the context (KV cache %" PRIu64
                        " MiB, scratch %" PRIu64 " MiB)", lo.kv_bytes >> 20, lo.scratch_bytes >> 20);
    }
    char *s = c->scratch;
    c->seq_len = (int32_t *)(s + lo.seq_len);
    c->seq_next = (int32_t *)(s + lo.seq_next);
    c->x = (float *)(s + lo.x);
    c->xn = (float *)(s + lo.xn);
    c->q = (float *)(s + lo.q);
    c->k = (float *)(s + lo.k);
    c->v = (float *)(s + lo.v);
    c->att = (float *)(s + lo.att);
    c->proj = (float *)(s + lo.proj);
    c->gate = (float *)(s + lo.gate);
    c->up = (float *)(s + lo.up);
    c->rope_cs = (float *)(s + lo.rope_cs);
    c->scores = (float *)(s + lo.scores);
    c->act = s + lo.act;
    c->logits = (float *)(s + lo.logits);
    c->logit_row = (int32_t *)(s + lo.logit_row);
    c->n_last = 0;

    st = cit_threadpool_new(rp.n_threads, &c->pool, err, errlen);
    if (st != CIT_OK) {
        cit_context_free(c);
        return st;
    }
    *out = c;
    return CIT_OK;
}

void cit_context_free(struct cit_context *c)
{
    if (!c)
        return;
    cit_threadpool_free(c->pool);
    cit_unmap_anon(c->scratch, c->scratch_bytes);
    cit_unmap_anon(c->k_cache, c->kv_map_bytes);
    free(c);
}

const struct cit_context_params *cit_context_params(const struct cit_context *c)
{
    return &c->p;
}

const float *cit_hidden(const struct cit_context *c, size_t item)
{
    if (!c || item >= c->n_last || c->logit_row[item] < 0)
        return NULL;
    return c->xn + (size_t)c->logit_row[item] * c->m->info.n_embd;
}

const float *cit_logits(const struct cit_context *c, size_t item)
{
    if (!c || item >= c->n_last || c->logit_row[item] < 0)
        return NULL;
    return c->logits + (size_t)c->logit_row[item] * c->m->info.n_vocab;
}

/* ---- per-sequence cache ---- */

void cit_kv_seq_rm(struct cit_context *c, int32_t seq, int32_t pos_from)
{
    if (pos_from < 0)
        pos_from = 0;
    if (seq < 0) { /* every sequence */
        for (uint32_t s = 0; s < c->p.n_seq_max; s++)
            if (c->seq_len[s] > pos_from)
                c->seq_len[s] = pos_from;
        return;
    }
    if ((uint32_t)seq >= c->p.n_seq_max)
        return;
    if (c->seq_len[seq] > pos_from)
        c->seq_len[seq] = pos_from;
}

int32_t cit_kv_seq_len(const struct cit_context *c, int32_t seq)
{
    if (seq < 0 || (uint32_t)seq >= c->p.n_seq_max)
        return 0;
    return c->seq_len[seq];
}

enum cit_status cit_kv_seq_cp(struct cit_context *c, int32_t src, int32_t dst, int32_t n_pos, char *err,
                              size_t errlen)
{
    uint32_t n_seq = c->p.n_seq_max;
    if (src < 0 || (uint32_t)src >= n_seq)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "src seq %d out of range [0, %u)", src, n_seq);
    if (dst < 0 || (uint32_t)dst >= n_seq)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "dst seq %d out of range [0, %u)", dst, n_seq);
    if (n_pos < 0)
        n_pos = c->seq_len[src];
    if (n_pos > c->seq_len[src])
        return cit_fail(CIT_ERR_RANGE, err, errlen, "n_pos %d exceeds the %d positions of seq %d", n_pos,
                        c->seq_len[src], src);
    if (src != dst) {
        /* one run of n_pos rows per (layer, KV head) */
        size_t bytes = (size_t)n_pos * c->m->info.head_dim * sizeof(float);
        for (size_t l = 0; l < c->m->info.n_layer; l++)
            for (size_t h = 0; h < c->m->info.n_head_kv; h++) {
                size_t so = cit_kv_offset(c, l, (size_t)src, h, 0), d_o = cit_kv_offset(c, l, (size_t)dst, h, 0);
                memcpy(c->k_cache + d_o, c->k_cache + so, bytes);
                memcpy(c->v_cache + d_o, c->v_cache + so, bytes);
            }
    }
    c->seq_len[dst] = n_pos;
    return CIT_OK;
}
