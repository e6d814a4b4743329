/* matmul.h: weight-matrix times activations, the operation that dominates
 * inference time.
 *
 * A weight matrix is used in place from the model file: n_out rows of n_in
 * elements of any type whose traits have to_float and vec_dot. Activations
 * (f32) are first converted, one row per token, to the weight type's
 * vec_dot_type (Q8_0 for Q4_0/Q8_0, Q8_K for the K-quants, F16 for F16),
 * exactly as the reference engine does, and each output is one vec_dot of a
 * weight row with a converted activation row. The result of one (row,
 * token) pair therefore does not depend on the batch size or on the thread
 * that computed it: batching and threading change speed, never bits.
 *
 * The kernels come from the type traits (today the scalar reference
 * kernels); a later SIMD path slots in behind cit_matmul without changing
 * callers. */
#ifndef CITADEL_KERNELS_MATMUL_H
#define CITADEL_KERNELS_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/tensor.h"

struct cit_threadpool;

/* A weight matrix inside the file mapping: (n_out, n_in) of `type`. */
struct cit_matrix {
    const void *data;                /* (n_out, row_bytes) */
    const struct cit_type_traits *tr; /* traits of type (to_float and vec_dot non-NULL) */
    uint32_t type;
    uint32_t n_in;    /* elements per row (GGUF ne[0]) */
    uint32_t n_out;   /* rows (GGUF ne[1]) */
    size_t row_bytes; /* bytes per row */
};

/* True when a matrix of this type and row length can be multiplied: the
 * type has to_float and vec_dot, its vec_dot_type has from_float, and n_in
 * is a multiple of both block sizes. */
bool cit_matmul_supported(uint32_t type, uint64_t n_in);

/* Bytes of one activation row of n_in elements converted for `type`'s
 * vec_dot (0 when the activations are used as f32 directly); false on
 * overflow or an unsupported type. */
bool cit_matmul_act_row_bytes(uint32_t type, uint64_t n_in, uint64_t *bytes);

/* y = x * W^T: y[t][r] = dot(W row r, x row t) for t < n_tokens, r < n_out.
 * x: (n_tokens, n_in) f32; y: (n_tokens, n_out) f32; act: scratch of at
 * least n_tokens * cit_matmul_act_row_bytes bytes (may be NULL when that is
 * 0). Rows are split across the pool; each weight row is read once for all
 * tokens. */
void cit_matmul(struct cit_threadpool *pool, const struct cit_matrix *w, const float *x, size_t n_tokens,
                float *y, void *act);

/* Row `row` of W as f32 into dst (n_in), e.g. an embedding lookup. */
void cit_matrix_row(const struct cit_matrix *w, size_t row, float *dst);

#endif
