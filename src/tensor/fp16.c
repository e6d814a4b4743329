/* fp16.c: the unquantized float formats. Scalar conversions between fp32 and
 * IEEE binary16 / bfloat16 (bit-exact, independent of compiler support for
 * _Float16), and the F32 / F16 / BF16 row kernels of the traits table.
 *
 * Rounding matches the reference engine: fp32 -> fp16 rounds to nearest even
 * (as the F16C instruction does), keeping subnormals, overflowing to inf,
 * and turning NaN into a quiet NaN with the payload's top bits; fp32 -> bf16
 * rounds to nearest even and quiets NaN. Dot products accumulate in 16 float
 * lanes in a fixed order that SIMD kernels reproduce bit for bit (BF16's is
 * the order of the bf16 dot-product instruction: see cit_ref_vec_dot_bf16). */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "tensor/quants.h"

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float cit_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) /* inf, NaN (payload kept) */
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t cit_fp32_to_fp16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, top payload bits kept */
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u) /* >= 65520 (halfway past 65504, tie to even): inf */
        return (uint16_t)(sign | 0x7c00);
    if (a >= 0x38800000u) { /* normal half (>= 2^-14): rebias, round the 13 dropped bits */
        uint32_t r = a + 0xfffu + ((a >> 13) & 1);
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    }
    if (a <= 0x33000000u) /* <= 2^-25: rounds to (signed) zero */
        return sign;
    /* subnormal half: k * 2^-24 with k = m * 2^(e-126), m the 24-bit significand */
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t k = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (k & 1)))
        k++; /* may carry into the smallest normal, whose encoding is k = 0x400 */
    return (uint16_t)(sign | k);
}

float cit_bf16_to_fp32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t cit_fp32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign and top payload, force quiet */
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* ---- F32 ---- */

void cit_ref_f32_to_float(const void *src, float *dst, int64_t n)
{
    assert(n >= 0);
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void cit_ref_f32_from_float(const float *src, void *dst, int64_t n)
{
    assert(n >= 0);
    memcpy(dst, src, (size_t)n * sizeof(float));
}

/* The F32 and F16 dot products' fixed order (kernels/kernels.h; BF16's is
 * below, with its kernel): element k
 * accumulates into lane k % 16 with one fused multiply-add, in k order, then
 * lanes fold by halves (i += i+8, i += i+4, i += i+2, i += i+1). SIMD kernels
 * of any width reproduce it exactly; the scalar code is its statement. */
#define DOT_LANES 16

static float fold_lanes(float acc[DOT_LANES])
{
    for (int h = DOT_LANES / 2; h >= 1; h /= 2)
        for (int i = 0; i < h; i++)
            acc[i] += acc[i + h];
    return acc[0];
}

static float load_f32(const unsigned char *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

void cit_ref_vec_dot_f32(int64_t n, float *s, const void *x, const void *y)
{
    const unsigned char *xb = x, *yb = y;
    float acc[DOT_LANES] = {0};
    for (int64_t i = 0; i < n; i++)
        acc[i % DOT_LANES] = fmaf(load_f32(xb + 4 * i), load_f32(yb + 4 * i), acc[i % DOT_LANES]);
    *s = fold_lanes(acc);
}

/* ---- F16 / BF16 (rows of uint16 bit patterns, possibly unaligned) ---- */

static uint16_t load_u16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store_u16(unsigned char *p, uint16_t v)
{
    memcpy(p, &v, sizeof v);
}

void cit_ref_f16_to_float(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = cit_fp16_to_fp32(load_u16(p + 2 * i));
}

void cit_ref_f16_from_float(const float *src, void *dst, int64_t n)
{
    unsigned char *p = dst;
    for (int64_t i = 0; i < n; i++)
        store_u16(p + 2 * i, cit_fp32_to_fp16(src[i]));
}

void cit_ref_vec_dot_f16(int64_t n, float *s, const void *x, const void *y)
{
    const unsigned char *xb = x, *yb = y;
    float acc[DOT_LANES] = {0};
    for (int64_t i = 0; i < n; i++)
        acc[i % DOT_LANES] =
            fmaf(cit_fp16_to_fp32(load_u16(xb + 2 * i)), cit_fp16_to_fp32(load_u16(yb + 2 * i)), acc[i % DOT_LANES]);
    *s = fold_lanes(acc);
}

void cit_ref_bf16_to_float(const void *src, float *dst, int64_t n)
{
    const unsigned char *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = cit_bf16_to_fp32(load_u16(p + 2 * i));
}

void cit_ref_bf16_from_float(const float *src, void *dst, int64_t n)
{
    unsigned char *p = dst;
    for (int64_t i = 0; i < n; i++)
        store_u16(p + 2 * i, cit_fp32_to_bf16(src[i]));
}

/* BF16 dot products follow the dot-product instruction (vdpbf16ps), so a
 * tier that has it uses it as is and the others reproduce it: the row in
 * steps of 32 elements (the last one padded with zeros), lane j of a step
 * taking element 2j + 1 and then 2j, each with one fused multiply-add
 * rounded to nearest even (the product of two bf16 values is exact in f32);
 * subnormal inputs count as zero of their sign and tiny results are flushed
 * to zero of theirs, in the fold by halves too (fma_ftz). */

/* a * b + c rounded to nearest even, flushed to zero (of the result's sign)
 * when tiny as x86 decides it with flush-to-zero set: the exact result
 * rounded to 24 bits with an unbounded exponent is below FLT_MIN. That is
 * not the same as the default result being subnormal: a value just under
 * FLT_MIN that rounds up to it on the subnormal grid can still be tiny
 * (tests/unit/test_kernels.c, test_bf16_tininess). Near FLT_MIN both
 * operands of the sum are below 2^-80 (a larger one would leave the sum a
 * multiple of at least 2^-104, so 0 or far above FLT_MIN), and the smaller
 * factor below 2^-40, so scaling c and that factor by 2^64 is exact and
 * puts the rounding in the normal range. */
static float fma_ftz(float a, float b, float c)
{
    float r = fmaf(a, b, c);
    if (!(fabsf(r) < 0x1p-125f))
        return r; /* far from the threshold, or NaN */
    float w = fabsf(a) < fabsf(b) ? fmaf(a * 0x1p64f, b, c * 0x1p64f) : fmaf(a, b * 0x1p64f, c * 0x1p64f);
    return fabsf(w) < 0x1p-62f ? copysignf(0.0f, w) : r;
}

static float bf16_in(const unsigned char *p, int64_t i, int64_t n)
{
    if (i >= n)
        return 0.0f;
    uint16_t h = load_u16(p + 2 * i);
    return (h & 0x7f80u) == 0 ? ((h & 0x8000u) ? -0.0f : 0.0f) : cit_bf16_to_fp32(h);
}

void cit_ref_vec_dot_bf16(int64_t n, float *s, const void *x, const void *y)
{
    const unsigned char *xb = x, *yb = y;
    float acc[DOT_LANES] = {0};
    for (int64_t i0 = 0; i0 < n; i0 += 2 * DOT_LANES)
        for (int j = 0; j < DOT_LANES; j++)
            for (int64_t i = i0 + 2 * j + 1; i >= i0 + 2 * j; i--)
                acc[j] = fma_ftz(bf16_in(xb, i, n), bf16_in(yb, i, n), acc[j]);
    for (int h = DOT_LANES / 2; h >= 1; h /= 2)
        for (int i = 0; i < h; i++)
            acc[i] = fma_ftz(acc[i], 1.0f, acc[i + h]);
    *s = acc[0];
}
