/* model_impl.h: the private state of a model (bound weights) and of a
 * context (KV cache, scratch, thread pool), shared by model.c (loading),
 * context.c (allocation and cache management) and forward.c (decode).
 *
 * Shapes are written as in the reference engine's row-major view: (rows,
 * columns), the last index contiguous. A weight matrix stored in GGUF with
 * ne = [n_in, n_out] is (n_out, n_in) here. */
#ifndef CITADEL_MODEL_IMPL_H
#define CITADEL_MODEL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "citadel/model.h"
#include "kernels/matmul.h"
#include "model/arch.h"

struct cit_gguf;
struct cit_threadpool;

/* Weights of one transformer block, all inside the file mapping. */
struct cit_layer {
    const float *attn_norm;  /* (n_embd) */
    struct cit_matrix wq;    /* (q_dim, n_embd) */
    struct cit_matrix wk;    /* (kv_dim, n_embd) */
    struct cit_matrix wv;    /* (kv_dim, n_embd) */
    const float *bq;         /* (q_dim), NULL without qkv_bias */
    const float *bk;         /* (kv_dim), NULL without qkv_bias */
    const float *bv;         /* (kv_dim), NULL without qkv_bias */
    struct cit_matrix wo;    /* (n_embd, q_dim) */
    const float *ffn_norm;   /* (n_embd) */
    struct cit_matrix wgate; /* (n_ff, n_embd) */
    struct cit_matrix wup;   /* (n_ff, n_embd) */
    struct cit_matrix wdown; /* (n_embd, n_ff) */
};

struct cit_model {
    struct cit_gguf *gguf;
    const struct cit_arch *arch;
    struct cit_model_info info;
    char name[128];              /* general.name, truncated, NUL-terminated */
    uint32_t q_dim;              /* n_head * head_dim */
    uint32_t kv_dim;             /* n_head_kv * head_dim */
    struct cit_matrix tok_embd;  /* (n_vocab, n_embd) */
    const float *output_norm;    /* (n_embd) */
    struct cit_matrix output;    /* (n_vocab, n_embd); a copy of tok_embd when tied */
    const float *rope_freqs;     /* (n_rot / 2) frequency divisors, or NULL */
    struct cit_layer *layers;    /* (n_layer) */
    void *repacked;              /* cit_model_repack's copy of the R16 matrices (anonymous mapping), or NULL */
    size_t repacked_len;         /* its length in bytes */
};

/* Unmaps cit_model_repack's copy (model/repack.c); for cit_model_free. */
void cit_model_repack_free(struct cit_model *m);

struct cit_context {
    const struct cit_model *m;
    struct cit_context_params p; /* defaults resolved */
    struct cit_threadpool *pool;

    /* KV cache, f32, head-major: element (l, s, h, p, d) at
     * (((l * n_seq_max + s) * n_head_kv + h) * n_ctx + p) * head_dim + d. */
    float *k_cache;   /* (n_layer, n_seq_max, n_head_kv, n_ctx, head_dim) */
    float *v_cache;   /* (n_layer, n_seq_max, n_head_kv, n_ctx, head_dim) */
    size_t kv_map_bytes; /* k_cache's mapping, which holds v_cache after K */
    int32_t *seq_len; /* (n_seq_max) positions each sequence holds */

    /* Scratch: one mapping of scratch_bytes, carved up by context.c's layout,
     * zeroed by the kernel and committed as touched (cit_map_anon). */
    void *scratch;
    size_t scratch_bytes;
    int32_t *seq_next;  /* (n_seq_max) next position per sequence while validating a batch */
    float *x;           /* (n_batch, n_embd) residual stream */
    float *xn;          /* (n_batch, n_embd) normalised input of a sub-layer */
    float *q;           /* (n_batch, q_dim) */
    float *k;           /* (n_batch, kv_dim) */
    float *v;           /* (n_batch, kv_dim) */
    float *att;         /* (n_batch, q_dim) attention output, heads concatenated */
    float *proj;        /* (n_batch, n_embd) sub-layer output before the residual add */
    float *gate;        /* (n_batch, n_ff) */
    float *up;          /* (n_batch, n_ff) */
    float *rope_cs;     /* (n_batch, n_rot) cos/sin pairs of each item's position */
    float *scores;      /* (n_threads, n_ctx) attention weights, one row per thread */
    void *act;          /* activations packed for the matmul kernels, sized for n_batch */
    float *logits;      /* (n_batch, n_vocab), rows packed in item order */
    int32_t *logit_row; /* (n_batch) row of `logits` for each item of the last decode, -1 if none */
    size_t n_last;      /* items of the last successful decode */
};

/* Offset (in floats) of (layer, seq, KV head, pos) in the K or V cache:
 * each KV head's keys of a sequence are contiguous, so attention reads one
 * dense stream per KV head. */
static inline size_t cit_kv_offset(const struct cit_context *c, size_t layer, size_t seq, size_t kvh, size_t pos)
{
    return (((layer * c->p.n_seq_max + seq) * c->m->info.n_head_kv + kvh) * c->p.n_ctx + pos) * c->m->info.head_dim;
}

/* Runs one validated batch (forward.c). */
void cit_forward(struct cit_context *c, const struct cit_batch_item *items, size_t n);

#endif
