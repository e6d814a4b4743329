/* ops.h: the element-wise and per-row operations of the transformer forward
 * pass other than matmul, and attention of one query head.
 *
 * Each follows the reference engine's float arithmetic (which sums are kept
 * in double, where scaling happens) so that our logits track the golden
 * recordings closely; the comments in ops.c say where that matters. The
 * functions run the scalar code or an AVX2 / AVX-512 version chosen once by
 * cit_isa_active() (kernels/kernels.h). The SIMD versions are not bit-equal
 * to the scalar ones (different summation orders, a vectorised exp within
 * 2 ulp), but each is deterministic and computes an element (or a row) the
 * same way wherever it lies in the array, so a result never depends on the
 * batch or the thread it was computed in. */
#ifndef CITADEL_KERNELS_OPS_H
#define CITADEL_KERNELS_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* y = x / sqrt(mean(x^2) + eps) * w; x, y, w: (n). y may alias x. */
void cit_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps);

/* The RoPE angles of position pos: cs[2i] = cos(theta_i), cs[2i+1] =
 * sin(theta_i) for i < n_rot/2, theta_i = pos * freq_scale * base^(-2i/n_rot)
 * / freq_factors[i] (freq_factors may be NULL). cs: (n_rot). */
void cit_rope_angles(float *cs, int32_t pos, uint32_t n_rot, float base, float freq_scale,
                     const float *freq_factors);

/* Rotates the first n_rot dims of each of n_heads heads of x (n_heads,
 * head_dim) in place by the angles cs (n_rot). neox: pairs (x[i],
 * x[i + n_rot/2]); otherwise adjacent pairs (x[2i], x[2i+1]). */
void cit_rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, const float *cs, bool neox);

/* x = softmax(x * scale) in place; x: (n), n >= 1. */
void cit_softmax(float *x, size_t n, float scale);

/* g = silu(g) * u; g, u: (n). */
void cit_swiglu(float *g, const float *u, size_t n);

/* y += x; (n). */
void cit_add(float *y, const float *x, size_t n);

/* Dot product of two f32 vectors (n), accumulated in double. */
float cit_dot_f32(const float *a, const float *b, size_t n);

/* Attention of n_q query heads of one token that share a key/value head
 * (grouped-query attention): for g < n_q, with q_g = q + g * head_dim,
 * s_p = q_g . k_p * scale for p < n_keys and
 * out + g * head_dim = sum_p softmax(s)_p v_p. Key and value rows are
 * head_dim floats, kv_stride floats apart (k, v point at row 0 of this
 * head); q, out: (n_q, head_dim); scores: scratch (n_keys). n_keys >= 1.
 * A head's result depends only on its own inputs (not on n_q or the other
 * heads); passing the heads together lets SIMD versions read each key and
 * value once for all of them. */
void cit_attn_heads(float *out, const float *q, size_t n_q, const float *k, const float *v, size_t n_keys,
                    size_t kv_stride, size_t head_dim, float scale, float *scores);

/* y[i] = exp(x[i]); (n); y may alias x. Within 2 ulp of the exact value on
 * the SIMD tiers (-inf and inputs below about -104 give 0, above about 88.7
 * inf, NaN stays NaN); libm's expf on the scalar tier. */
void cit_exp(float *y, const float *x, size_t n);

/* The ops of one tier (the public functions above call the active tier's). */
struct cit_ops {
    void (*rmsnorm)(float *y, const float *x, const float *w, size_t n, float eps);
    void (*rope)(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, const float *cs, bool neox);
    void (*softmax)(float *x, size_t n, float scale);
    void (*swiglu)(float *g, const float *u, size_t n);
    void (*add)(float *y, const float *x, size_t n);
    void (*attn_heads)(float *out, const float *q, size_t n_q, const float *k, const float *v, size_t n_keys,
                       size_t kv_stride, size_t head_dim, float scale, float *scores);
    void (*exp)(float *y, const float *x, size_t n);
};

/* The ops of a tier (falling back to lower tiers for what a tier does not
 * implement); NULL for an unknown tier. Only tiers up to
 * cit_isa_detected() may be called. Tests compare tiers with it. */
const struct cit_ops *cit_ops_for_isa(enum cit_isa isa);

#if CIT_X86_KERNELS
/* Each SIMD file overrides the entries it implements. */
void cit_ops_avx2(struct cit_ops *o);
void cit_ops_avx512(struct cit_ops *o);
#endif

#endif
