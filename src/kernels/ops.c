/* ops.c: scalar reference element-wise ops of the forward pass.
 *
 * Arithmetic choices mirror the reference engine where it changes results
 * measurably: RMSNorm sums squares in double, scales by 1/sqrtf(mean + eps)
 * and multiplies by the weight afterwards; RoPE angles advance by repeated
 * float multiplication by base^(-2/n_rot) from theta = pos; softmax
 * exponentiates in float, sums in double and multiplies by the reciprocal. */
#include "kernels/ops.h"

#include <math.h>

void cit_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
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

void cit_rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, const float *cs, bool neox)
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

void cit_softmax(float *x, size_t n, float scale)
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

void cit_swiglu(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void cit_add(float *y, const float *x, size_t n)
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
