/* quants.c: scalar reference kernels of the 32-element block types Q8_0 and
 * Q4_0 (the K-quants live in quants_k.c). Each quantizer is the reference
 * engine's round-to-nearest scheme, so quantizing an f32 tensor reproduces
 * the reference's Q8_0 / Q4_0 bytes, and quantizing activations to Q8_0 for
 * a dot product rounds exactly as the reference does. Dot products are
 * integer within a block, scaled by the two block scales and summed in float
 * (the reference's arithmetic). */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "tensor/quants.h"

int cit_nearest_int(float x)
{
    if (!(x > -1073741824.0f && x < 1073741824.0f)) /* NaN or out of int range */
        return x > 0 ? 1073741824 : (x < 0 ? -1073741824 : 0);
    return (int)rintf(x); /* default rounding mode: to nearest, ties to even */
}

/* float -> int in [lo, hi] without undefined behaviour on NaN or huge values. */
static int clamp_to_int(float v, int lo, int hi)
{
    if (v >= (float)hi)
        return hi;
    if (v >= (float)lo)
        return (int)v;
    return lo; /* below range, or NaN */
}

/* ---- Q8_0 ---- */

void cit_ref_q8_0_to_float(const void *src, float *dst, int64_t n)
{
    assert(n % CIT_QK == 0);
    const unsigned char *p = src;
    for (int64_t i = 0; i < n / CIT_QK; i++) {
        struct cit_block_q8_0 b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = cit_fp16_to_fp32(b.d);
        for (int j = 0; j < CIT_QK; j++)
            dst[i * CIT_QK + j] = d * (float)b.qs[j];
    }
}

/* d = max|x| / 127 (stored as half); q = round(x / d), half away from zero.
 * The quotient uses the unrounded float d, as the reference does. */
void cit_ref_q8_0_from_float(const float *src, void *dst, int64_t n)
{
    assert(n % CIT_QK == 0);
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / CIT_QK; i++) {
        const float *x = src + i * CIT_QK;
        float amax = 0.0f;
        for (int j = 0; j < CIT_QK; j++) {
            float a = fabsf(x[j]);
            if (a > amax)
                amax = a;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        struct cit_block_q8_0 b;
        b.d = cit_fp32_to_fp16(d);
        for (int j = 0; j < CIT_QK; j++)
            b.qs[j] = (int8_t)clamp_to_int(roundf(x[j] * id), -127, 127);
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void cit_ref_vec_dot_q8_0(int64_t n, float *s, const void *x, const void *y)
{
    assert(n % CIT_QK == 0);
    const unsigned char *xp = x, *yp = y;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / CIT_QK; i++) {
        struct cit_block_q8_0 a, b;
        memcpy(&a, xp + i * (int64_t)sizeof a, sizeof a);
        memcpy(&b, yp + i * (int64_t)sizeof b, sizeof b);
        int32_t sumi = 0;
        for (int j = 0; j < CIT_QK; j++)
            sumi += (int32_t)a.qs[j] * b.qs[j];
        sum += (float)sumi * (cit_fp16_to_fp32(a.d) * cit_fp16_to_fp32(b.d));
    }
    *s = sum;
}

/* ---- Q4_0 ---- */

void cit_ref_q4_0_to_float(const void *src, float *dst, int64_t n)
{
    assert(n % CIT_QK == 0);
    const unsigned char *p = src;
    for (int64_t i = 0; i < n / CIT_QK; i++) {
        struct cit_block_q4_0 b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = cit_fp16_to_fp32(b.d);
        float *y = dst + i * CIT_QK;
        for (int j = 0; j < CIT_QK / 2; j++) {
            y[j] = d * (float)((b.qs[j] & 0xF) - 8);
            y[j + CIT_QK / 2] = d * (float)((b.qs[j] >> 4) - 8);
        }
    }
}

/* The element of largest magnitude, with its sign, maps to q = -8 (the end
 * of the asymmetric range -8..7 that reaches furthest): d = max / -8; then
 * q + 8 = floor(x/d + 8.5) capped at 15, as the reference does. */
void cit_ref_q4_0_from_float(const float *src, void *dst, int64_t n)
{
    assert(n % CIT_QK == 0);
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / CIT_QK; i++) {
        const float *x = src + i * CIT_QK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < CIT_QK; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        struct cit_block_q4_0 b;
        b.d = cit_fp32_to_fp16(d);
        for (int j = 0; j < CIT_QK / 2; j++) {
            int lo = clamp_to_int(x[j] * id + 8.5f, 0, 15);
            int hi = clamp_to_int(x[j + CIT_QK / 2] * id + 8.5f, 0, 15);
            b.qs[j] = (uint8_t)(lo | (hi << 4));
        }
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void cit_ref_vec_dot_q4_0(int64_t n, float *s, const void *x, const void *y)
{
    assert(n % CIT_QK == 0);
    const unsigned char *xp = x, *yp = y;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / CIT_QK; i++) {
        struct cit_block_q4_0 a;
        struct cit_block_q8_0 b;
        memcpy(&a, xp + i * (int64_t)sizeof a, sizeof a);
        memcpy(&b, yp + i * (int64_t)sizeof b, sizeof b);
        int32_t sumi = 0;
        for (int j = 0; j < CIT_QK / 2; j++) {
            sumi += ((a.qs[j] & 0xF) - 8) * (int32_t)b.qs[j];
            sumi += ((a.qs[j] >> 4) - 8) * (int32_t)b.qs[j + CIT_QK / 2];
        }
        sum += (float)sumi * (cit_fp16_to_fp32(a.d) * cit_fp16_to_fp32(b.d));
    }
    *s = sum;
}
