/* ops.h: the element-wise and per-row operations of the transformer forward
 * pass other than matmul (scalar reference versions).
 *
 * Each follows the reference engine's float arithmetic (which sums are kept
 * in double, where scaling happens) so that our logits track the golden
 * recordings closely; the comments in ops.c say where that matters. */
#ifndef CITADEL_KERNELS_OPS_H
#define CITADEL_KERNELS_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
