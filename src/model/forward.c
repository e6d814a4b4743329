/* forward.c: cit_decode: validating a batch and running the transformer
 * forward pass over it (Llama / Qwen2: pre-norm blocks of grouped-query
 * attention with RoPE and a SwiGLU feed-forward).
 *
 * Every per-item computation reads only that item's activations and its own
 * sequence's cache, and matmuls compute each (row, item) dot product the
 * same way whatever the batch holds, so results are independent of batch
 * composition and thread count. Within a layer all items' keys and values
 * are written to the cache before any attention runs, which is what lets a
 * prompt be processed as one batch: item at position p then sees positions
 * <= p of its sequence, including the ones written by the same batch. */
#include "citadel/model.h"

#include <math.h>
#include <string.h>

#include "base/err.h"
#include "base/threadpool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/model_impl.h"

struct attn_job {
    struct cit_context *c;
    const struct cit_batch_item *items;
    size_t layer;
    float scale; /* 1 / sqrt(head_dim) */
};

/* One (item, head) pair per index: softmax(q . K^T * scale) . V over the
 * item's sequence, positions 0..pos. Consecutive heads of the range that
 * share a KV head go to the op together (each head's result is the same
 * either way), so their keys and values are read once. */
static void attn_heads(void *arg, size_t begin, size_t end, unsigned tid)
{
    const struct attn_job *j = arg;
    struct cit_context *c = j->c;
    const struct cit_model *m = c->m;
    size_t n_head = m->info.n_head, hd = m->info.head_dim;
    size_t group = n_head / m->info.n_head_kv;
    float *scores = c->scores + (size_t)tid * c->p.n_ctx; /* (n_ctx) */
    for (size_t idx = begin; idx < end;) {
        size_t i = idx / n_head, h = idx % n_head;
        const struct cit_batch_item *it = &j->items[i];
        size_t n_keys = (size_t)it->pos + 1;
        size_t kvh = h / group;
        size_t n_q = (kvh + 1) * group - h; /* heads h.. of this KV head */
        if (n_q > end - idx)
            n_q = end - idx;
        const float *qh = c->q + i * m->q_dim + h * hd;             /* (n_q, head_dim) */
        size_t kv0 = cit_kv_offset(c, j->layer, (size_t)it->seq, kvh, 0);
        const float *kb = c->k_cache + kv0, *vb = c->v_cache + kv0; /* (n_keys, head_dim) each */
        float *out = c->att + i * m->q_dim + h * hd;                /* (n_q, head_dim) */
        cit_attn_heads(out, qh, n_q, kb, vb, n_keys, hd, hd, j->scale, scores);
        idx += n_q;
    }
}

static void add_bias(float *y, const float *b, size_t n_rows, size_t dim)
{
    for (size_t i = 0; i < n_rows; i++)
        cit_add(y + i * dim, b, dim);
}

/* Several matrices applied to the same input x (n, n_in): consecutive
 * matrices that share an activation format get the input packed once and
 * run as one parallel loop (cit_matmul_packed_n). */
static void matmul_shared_input(struct cit_context *c, const struct cit_matrix *const *w, float *const *y,
                                size_t n_mats, const float *x, size_t n)
{
    for (size_t i = 0, run; i < n_mats; i += run) {
        cit_matmul_pack(c->pool, w[i], x, n, c->act);
        for (run = 1; i + run < n_mats && run < CIT_MATMUL_MAX_FUSED && cit_matmul_same_act(w[i], w[i + run], n);)
            run++;
        cit_matmul_packed_n(c->pool, w + i, run, c->act, n, y + i);
    }
}

static void layer_forward(struct cit_context *c, const struct cit_batch_item *items, size_t n, size_t il)
{
    const struct cit_model *m = c->m;
    const struct cit_model_info *hp = &m->info;
    const struct cit_layer *L = &m->layers[il];
    size_t E = hp->n_embd, Q = m->q_dim, KV = m->kv_dim, F = hp->n_ff;

    /* Attention block. */
    for (size_t i = 0; i < n; i++)
        cit_rmsnorm(c->xn + i * E, c->x + i * E, L->attn_norm, E, hp->rms_eps);
    const struct cit_matrix *qkv[3] = {&L->wq, &L->wk, &L->wv};
    float *qkv_out[3] = {c->q, c->k, c->v}; /* (n, q_dim), (n, kv_dim), (n, kv_dim) */
    matmul_shared_input(c, qkv, qkv_out, 3, c->xn, n);
    if (L->bq) {
        add_bias(c->q, L->bq, n, Q);
        add_bias(c->k, L->bk, n, KV);
        add_bias(c->v, L->bv, n, KV);
    }
    for (size_t i = 0; i < n; i++) {
        const float *cs = c->rope_cs + i * hp->n_rot;
        cit_rope(c->q + i * Q, hp->n_head, hp->head_dim, hp->n_rot, cs, hp->rope_neox);
        cit_rope(c->k + i * KV, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, hp->rope_neox);
        for (size_t kvh = 0; kvh < hp->n_head_kv; kvh++) {
            size_t off = cit_kv_offset(c, il, (size_t)items[i].seq, kvh, (size_t)items[i].pos), hd = hp->head_dim;
            memcpy(c->k_cache + off, c->k + i * KV + kvh * hd, hd * sizeof(float));
            memcpy(c->v_cache + off, c->v + i * KV + kvh * hd, hd * sizeof(float));
        }
    }
    struct attn_job aj = {c, items, il, 1.0f / sqrtf((float)hp->head_dim)};
    /* Chunks of whole KV heads, so each thread streams a KV head's keys and
     * values once for all its query heads; single heads when there are fewer
     * KV heads than threads. Results do not depend on the grain. */
    size_t group = hp->n_head / hp->n_head_kv;
    size_t grain = n * hp->n_head_kv >= cit_threadpool_size(c->pool) ? group : 1;
    cit_threadpool_for(c->pool, n * hp->n_head, grain, attn_heads, &aj);
    cit_matmul(c->pool, &L->wo, c->att, n, c->proj, c->act); /* (n, n_embd) */
    cit_add(c->x, c->proj, n * E);

    /* Feed-forward block: down(silu(gate(x)) * up(x)). */
    for (size_t i = 0; i < n; i++)
        cit_rmsnorm(c->xn + i * E, c->x + i * E, L->ffn_norm, E, hp->rms_eps);
    const struct cit_matrix *gu[2] = {&L->wgate, &L->wup};
    float *gu_out[2] = {c->gate, c->up}; /* (n, n_ff) each */
    matmul_shared_input(c, gu, gu_out, 2, c->xn, n);
    cit_swiglu(c->gate, c->up, n * F);
    cit_matmul(c->pool, &L->wdown, c->gate, n, c->proj, c->act); /* (n, n_embd) */
    cit_add(c->x, c->proj, n * E);
}

void cit_forward(struct cit_context *c, const struct cit_batch_item *items, size_t n)
{
    const struct cit_model *m = c->m;
    const struct cit_model_info *hp = &m->info;
    size_t E = hp->n_embd;

    for (size_t i = 0; i < n; i++) {
        cit_matrix_row(&m->tok_embd, (size_t)items[i].token, c->x + i * E);
        cit_rope_angles(c->rope_cs + i * hp->n_rot, items[i].pos, hp->n_rot, hp->rope_theta, 1.0f / hp->rope_scale,
                        m->rope_freqs);
    }
    for (size_t il = 0; il < hp->n_layer; il++)
        layer_forward(c, items, n, il);

    /* Logits only for the items that asked: their normalised rows are packed
     * into xn so the output matmul runs over just those. */
    int32_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].logits) {
            c->logit_row[i] = -1;
            continue;
        }
        cit_rmsnorm(c->xn + (size_t)rows * E, c->x + i * E, m->output_norm, E, hp->rms_eps);
        c->logit_row[i] = rows++;
    }
    cit_matmul(c->pool, &m->output, c->xn, (size_t)rows, c->logits, c->act); /* (rows, n_vocab) */
    c->n_last = n;
}

enum cit_status cit_decode(struct cit_context *c, const struct cit_batch_item *items, size_t n, char *err,
                           size_t errlen)
{
    if (!c)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_decode: context is NULL");
    if (n == 0)
        return CIT_OK;
    if (!items)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_decode: items is NULL");
    const struct cit_context_params *p = &c->p;
    uint32_t n_vocab = c->m->info.n_vocab;
    if (n > p->n_batch_max)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "item %u: batch of %zu items exceeds n_batch_max %u",
                        p->n_batch_max, n, p->n_batch_max);
    for (size_t i = 0; i < n; i++) {
        const struct cit_batch_item *it = &items[i];
        if (it->token < 0 || (uint32_t)it->token >= n_vocab)
            return cit_fail(CIT_ERR_RANGE, err, errlen, "item %zu: token %d out of range [0, %u)", i, it->token,
                            n_vocab);
        if (it->seq < 0 || (uint32_t)it->seq >= p->n_seq_max)
            return cit_fail(CIT_ERR_RANGE, err, errlen, "item %zu: seq %d out of range [0, %u)", i, it->seq,
                            p->n_seq_max);
        if (it->pos < 0 || (uint32_t)it->pos >= p->n_ctx)
            return cit_fail(CIT_ERR_RANGE, err, errlen, "item %zu: pos %d out of range [0, %u) (n_ctx)", i,
                            it->pos, p->n_ctx);
        c->seq_next[it->seq] = c->seq_len[it->seq];
    }
    for (size_t i = 0; i < n; i++) {
        const struct cit_batch_item *it = &items[i];
        if (it->pos != c->seq_next[it->seq])
            return cit_fail(CIT_ERR_RANGE, err, errlen,
                            "item %zu: pos %d of seq %d is not consecutive: expected pos %d", i, it->pos, it->seq,
                            c->seq_next[it->seq]);
        c->seq_next[it->seq]++;
    }

    cit_forward(c, items, n);

    for (size_t i = 0; i < n; i++)
        c->seq_len[items[i].seq] = c->seq_next[items[i].seq];
    return CIT_OK;
}
