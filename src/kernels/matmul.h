/* matmul.h: weight-matrix times activations, the operation that dominates
 * inference time.
 *
 * A weight matrix is used in place from the model file: n_out rows of n_in
 * elements of any type with a kernel (kernels/kernels.h). Activations (f32,
 * one row per token) are first packed into the kernel's activation format
 * (which quantizes them to 8 bits for the quantized types, as the reference
 * engine does), then every (row, token) output is computed exactly as the
 * scalar reference vec_dot would: batching, threading and the instruction
 * set change speed, never bits.
 *
 * Packing is separate from the product so one packed input can feed several
 * matrices (Q, K and V; gate and up) when they share a kernel. */
#ifndef CITADEL_KERNELS_MATMUL_H
#define CITADEL_KERNELS_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/tensor.h"

struct cit_threadpool;
struct cit_kernel;

/* How a matrix's bytes are ordered. */
enum cit_layout {
    CIT_LAYOUT_ROWS = 0, /* the file's: row after row */
    CIT_LAYOUT_R16 = 1,  /* Q4_0 rows interleaved by 16 (kernels/repack.h), made by cit_model_repack */
};

/* A weight matrix, in the file mapping or (CIT_LAYOUT_R16) a copy: (n_out, n_in) of `type`. */
struct cit_matrix {
    const void *data;                 /* (n_out, row_bytes), in `layout` order */
    const struct cit_type_traits *tr; /* traits of type (to_float non-NULL) */
    uint32_t type;
    uint32_t n_in;    /* elements per row (GGUF ne[0]) */
    uint32_t n_out;   /* rows (GGUF ne[1]) */
    size_t row_bytes; /* bytes per row */
    uint32_t layout;  /* enum cit_layout */
};

/* True when a matrix of this type and row length can be multiplied: the
 * type has a kernel and to_float, and n_in is a multiple of the block sizes
 * of the type and of its activation format. */
bool cit_matmul_supported(uint32_t type, uint64_t n_in);

/* Bytes of packed activations for n_tokens tokens of n_in elements for a
 * matrix of `type` on the active kernels; non-decreasing in n_tokens. False
 * on overflow or an unsupported type. */
bool cit_matmul_act_bytes(uint32_t type, uint64_t n_in, uint64_t n_tokens, uint64_t *bytes);

/* True when activations packed for a batch of n_tokens for a can be used
 * for b (same n_in, same layout at that batch size). */
bool cit_matmul_same_act(const struct cit_matrix *a, const struct cit_matrix *b, size_t n_tokens);

/* Packs x: (n_tokens, n_in) f32 for w into act (cit_matmul_act_bytes bytes). */
void cit_matmul_pack(struct cit_threadpool *pool, const struct cit_matrix *w, const float *x, size_t n_tokens,
                     void *act);

/* y = x * W^T from packed activations: y[t][r] = dot(W row r, x row t) for
 * t < n_tokens, r < n_out; y: (n_tokens, n_out). Rows are split across the
 * pool; each thread streams its rows once for all tokens. */
void cit_matmul_packed(struct cit_threadpool *pool, const struct cit_matrix *w, const void *act, size_t n_tokens,
                       float *y);

/* Most matrices cit_matmul_packed_n takes at once. */
#define CIT_MATMUL_MAX_FUSED 4

/* cit_matmul_packed for n_mats (1 .. CIT_MATMUL_MAX_FUSED) matrices that
 * share the packed input act (cit_matmul_same_act), y[i] for w[i], in one
 * parallel loop over all their rows: the threads wait for each other once,
 * not once per matrix, and each one's stream of weight rows runs on from
 * one matrix into the next. Each output is the same as cit_matmul_packed's. */
void cit_matmul_packed_n(struct cit_threadpool *pool, const struct cit_matrix *const *w, size_t n_mats,
                         const void *act, size_t n_tokens, float *const *y);

/* Pack then multiply. */
void cit_matmul(struct cit_threadpool *pool, const struct cit_matrix *w, const float *x, size_t n_tokens,
                float *y, void *act);

/* Row `row` of W as f32 into dst (n_in), e.g. an embedding lookup (file
 * layout only: embeddings are never repacked). */
void cit_matrix_row(const struct cit_matrix *w, size_t row, float *dst);

#endif
