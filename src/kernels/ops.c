/* ops.c: the scalar element-wise ops of the forward pass, and the dispatch
 * to their SIMD versions (kernels/avx2_ops.c, kernels/avx512_ops.c).
 *
 * Arithmetic choices mirror the reference engine where it changes results
 * measurably: RMSNorm sums squares in double, scales by 1/sqrtf(mean + eps)
 * and multiplies by the weight afterwards; RoPE angles advance by repeated
 * float multiplication by base^(-2/n_rot) from theta = pos; softmax
 * exponentiates in float, sums in double and multiplies by the reciprocal.
 * The SIMD versions keep these choices. */
#include "kernels/ops.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

static void scalar_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] * scale) * w[i];
}

void cit_rope_angles(float *cs, int32_t pos, uint32_t n_rot, float base, float freq_scale,
                     const float *freq_factors)
{
    float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (uint32_t i = 0; i < n_rot / 2; i++) {
        float t = freq_factors ? theta / freq_factors[i] : theta;
        t *= freq_scale;
        cs[2 * i] = cosf(t);
        cs[2 * i + 1] = sinf(t);
        theta *= theta_scale;
    }
}

static void scalar_rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, const float *cs, bool neox)
{
    uint32_t half = n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (uint32_t i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            uint32_t a = neox ? i : 2 * i;
            uint32_t b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

static void scalar_softmax(float *x, size_t n, float scale)
{
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        x[i] *= scale;
        if (x[i] > max)
            max = x[i];
    }
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

static void scalar_swiglu(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void scalar_add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

float cit_dot_f32(const float *a, const float *b, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

static void scalar_attn_head(float *out, const float *q, const float *k, const float *v, size_t n_keys,
                             size_t kv_stride, size_t head_dim, float scale, float *scores)
{
    for (size_t p = 0; p < n_keys; p++)
        scores[p] = cit_dot_f32(q, k + p * kv_stride, head_dim);
    scalar_softmax(scores, n_keys, scale);
    memset(out, 0, head_dim * sizeof *out);
    for (size_t p = 0; p < n_keys; p++) {
        const float *vr = v + p * kv_stride;
        float w = scores[p];
        for (size_t d = 0; d < head_dim; d++)
            out[d] += w * vr[d];
    }
}

static void scalar_attn_heads(float *out, const float *q, size_t n_q, const float *k, const float *v, size_t n_keys,
                              size_t kv_stride, size_t head_dim, float scale, float *scores)
{
    for (size_t g = 0; g < n_q; g++)
        scalar_attn_head(out + g * head_dim, q + g * head_dim, k, v, n_keys, kv_stride, head_dim, scale, scores);
}

static void scalar_exp(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = expf(x[i]);
}

/* ---- dispatch ---- */

static struct cit_ops tables[CIT_ISA_COUNT];
static const struct cit_ops *active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
    tables[CIT_ISA_SCALAR] = (struct cit_ops){scalar_rmsnorm, scalar_rope,      scalar_softmax, scalar_swiglu,
                                              scalar_add,     scalar_attn_heads, scalar_exp};
    for (int isa = 1; isa < CIT_ISA_COUNT; isa++) {
        tables[isa] = tables[isa - 1];
#if CIT_X86_KERNELS
        if (isa == CIT_ISA_AVX2)
            cit_ops_avx2(&tables[isa]);
        else if (isa == CIT_ISA_AVX512)
            cit_ops_avx512(&tables[isa]);
#endif
    }
    active = &tables[cit_isa_active()];
}

const struct cit_ops *cit_ops_for_isa(enum cit_isa isa)
{
    pthread_once(&once, build);
    return (unsigned)isa < CIT_ISA_COUNT ? &tables[isa] : NULL;
}

static const struct cit_ops *ops(void)
{
    pthread_once(&once, build);
    return active;
}

void cit_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
    ops()->rmsnorm(y, x, w, n, eps);
}

void cit_rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, const float *cs, bool neox)
{
    ops()->rope(x, n_heads, head_dim, n_rot, cs, neox);
}

void cit_softmax(float *x, size_t n, float scale)
{
    ops()->softmax(x, n, scale);
}

void cit_swiglu(float *g, const float *u, size_t n)
{
    ops()->swiglu(g, u, n);
}

void cit_add(float *y, const float *x, size_t n)
{
    ops()->add(y, x, n);
}

void cit_attn_heads(float *out, const float *q, size_t n_q, const float *k, const float *v, size_t n_keys,
                    size_t kv_stride, size_t head_dim, float scale, float *scores)
{
    ops()->attn_heads(out, q, n_q, k, v, n_keys, kv_stride, head_dim, scale, scores);
}

void cit_exp(float *y, const float *x, size_t n)
{
    ops()->exp(y, x, n);
}
