/* quants_k.c: scalar reference kernels of the K-quants (Q4_K, Q5_K, Q6_K)
 * and of Q8_K, the activation format their dot products read. Layouts are
 * described in quants.h.
 *
 * Dequantization and dot products are exact to the reference engine's
 * arithmetic: integer dot products per sub-block, weighted by the integer
 * sub-block scales, then scaled by the super-block scales and summed in
 * float; the min term of Q4_K / Q5_K uses the Q8_K block sums.
 *
 * The weight quantizers are ours, not the reference's: per sub-block a short
 * search over candidate step sizes, each refitted by least squares (the
 * RMS error is the objective), then the sub-block scales are quantized to
 * the block's integer scale format and the values re-rounded against the
 * scales as stored. Good enough for roundtrips and tests; refining quality
 * (importance weights, joint search of super-block scales) is later work. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "tensor/quants.h"

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- 6-bit scale / min packing of Q4_K and Q5_K ----
 * scales[12] holds sc[8] and m[8], 6 bits each. For j < 4 the low 6 bits of
 * bytes j and j+4 are sc[j] and m[j]. For j >= 4 byte j+4 holds the low
 * nibbles (sc in bits 0-3, m in bits 4-7); the top two bits of sc[j] and
 * m[j] sit in bits 6-7 of bytes j-4 and j respectively. */

static void k_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
        *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

static void k_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[12])
{
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        scales[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        scales[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
}

/* ---- unpacking to integer codes (shared by to_float and vec_dot) ---- */

/* q[256]: codes 0..15, in element order. */
static void q4k_unpack(const struct cit_block_q4_k *b, uint8_t q[CIT_QK_K])
{
    for (int g = 0; g < 4; g++) {
        for (int l = 0; l < 32; l++) {
            q[64 * g + l] = b->qs[32 * g + l] & 0xF;
            q[64 * g + 32 + l] = b->qs[32 * g + l] >> 4;
        }
    }
}

/* q[256]: codes 0..31, in element order. */
static void q5k_unpack(const struct cit_block_q5_k *b, uint8_t q[CIT_QK_K])
{
    for (int g = 0; g < 4; g++) {
        for (int l = 0; l < 32; l++) {
            uint8_t hi0 = (uint8_t)(((b->qh[l] >> (2 * g)) & 1) << 4);
            uint8_t hi1 = (uint8_t)(((b->qh[l] >> (2 * g + 1)) & 1) << 4);
            q[64 * g + l] = (uint8_t)((b->qs[32 * g + l] & 0xF) | hi0);
            q[64 * g + 32 + l] = (uint8_t)((b->qs[32 * g + l] >> 4) | hi1);
        }
    }
}

/* q[256]: signed codes -32..31, in element order. */
static void q6k_unpack(const struct cit_block_q6_k *b, int8_t q[CIT_QK_K])
{
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h;
        const uint8_t *qh = b->qh + 32 * h;
        int8_t *y = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            y[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            y[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            y[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            y[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

/* ---- sub-block fitting (quantizers) ---- */

/* cit_nearest_int, inlined for the quantizers' inner loops: adding 1.5 * 2^23
 * leaves the integer nearest to x (ties to even, as the FPU rounds) in the
 * low mantissa bits whenever |x| < 2^22; anything else takes the general
 * path. Results are identical to cit_nearest_int's. */
static inline int round_q(float x)
{
    if (!(fabsf(x) < 4194304.0f))
        return cit_nearest_int(x);
    float v = x + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* Least-squares affine fit x ~ s*L + b with b <= 0 (the format stores a
 * non-negative min m = -b). Returns the squared error. */
static float affine_lsq(const float *x, const uint8_t *L, int n, float sx, float sxx, float *s, float *b)
{
    /* sx = sum x and sxx = sum x^2 are the caller's (they do not depend on
     * L); the code sums are exact in integers; four partial sums break the
     * dependency chain of the one float sum that remains */
    int isl = 0, isll = 0;
    float p[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        isl += L[i];
        isll += L[i] * L[i];
        p[i & 3] += x[i] * (float)L[i];
    }
    float sl = (float)isl, sll = (float)isll, sxl = (p[0] + p[1]) + (p[2] + p[3]);
    float det = n * sll - sl * sl;
    float ss = 0, bb = 0;
    if (det > 0) {
        ss = (n * sxl - sl * sx) / det;
        bb = (sll * sx - sl * sxl) / det;
    }
    if (!(det > 0) || bb > 0) { /* constrained: b = 0 */
        bb = 0;
        ss = sll > 0 ? sxl / sll : 0;
    }
    if (ss < 0)
        ss = 0;
    *s = ss;
    *b = bb;
    /* sum (ss*L + bb - x)^2 from the sums (one pass over the data instead of
     * two); double keeps the cancellation harmless */
    double S = ss, B = bb;
    double err = (double)sxx + S * S * sll + (double)n * B * B + 2 * S * B * sl - 2 * S * sxl - 2 * B * sx;
    return (float)(err > 0 ? err : 0);
}

/* Codes for a given step s and offset b. */
static void affine_codes(const float *x, int n, int nmax, float s, float b, uint8_t *L)
{
    float is = s > 0 ? 1.0f / s : 0;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)clampi(round_q((x[i] - b) * is), 0, nmax);
}

/* Best (scale >= 0, min >= 0) for n values with codes 0..nmax, so that
 * x ~ scale*q - min: candidate steps around range/nmax, each refitted. */
static void fit_affine(const float *x, int n, int nmax, float *scale, float *min)
{
    float lo = 0, hi = x[0];
    for (int i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (!(hi > lo)) { /* constant (or NaN) sub-block: the min alone is exact */
        *scale = 0;
        *min = lo < 0 ? -lo : 0;
        return;
    }
    float sx = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        sx += x[i];
        sxx += x[i] * x[i];
    }
    uint8_t L[32];
    float best_err = INFINITY, best_s = (hi - lo) / nmax, best_b = lo;
    for (int k = -10; k <= 10; k++) {
        float step = (hi - lo) / (nmax + 0.1f * k);
        affine_codes(x, n, nmax, step, lo, L);
        float s, b;
        float err = affine_lsq(x, L, n, sx, sxx, &s, &b);
        if (err < best_err) {
            best_err = err;
            best_s = s;
            best_b = b;
        }
    }
    for (int it = 0; it < 4 && best_s > 0; it++) { /* re-round against the fit, refit */
        affine_codes(x, n, nmax, best_s, best_b, L);
        float s, b;
        float err = affine_lsq(x, L, n, sx, sxx, &s, &b);
        if (!(err < best_err))
            break;
        best_err = err;
        best_s = s;
        best_b = b;
    }
    *scale = best_s;
    *min = -best_b;
}

/* Best signed scale for n values with codes -32..31 so that x ~ scale*q:
 * the largest magnitude element goes near -32 or near +31, refitted. */
static float fit_symmetric6(const float *x, int n)
{
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            vmax = x[i];
        }
    }
    if (!(amax > 0))
        return 0;
    float best_s = vmax / -32.0f, best_q = -1; /* quality: sxl^2 / sll */
    for (int side = 0; side < 2; side++) {
        for (int k = -10; k <= 10; k++) {
            float target = side == 0 ? -(32 + 0.1f * k) : 31 + 0.1f * k;
            float is = target / vmax;
            float sxl = 0, sll = 0;
            for (int i = 0; i < n; i++) {
                int l = clampi(round_q(is * x[i]), -32, 31);
                sxl += x[i] * l;
                sll += (float)(l * l);
            }
            if (sll > 0 && sxl * sxl / sll > best_q) {
                best_q = sxl * sxl / sll;
                best_s = sxl / sll;
            }
        }
    }
    return best_s;
}

/* Shared by Q4_K and Q5_K: fits the eight sub-blocks of 32, quantizes their
 * scales and mins to 6 bits, and returns the final codes (0..nmax) against
 * the stored scales. */
static void quantize_k_affine(const float *x, int nmax, uint16_t *d_out, uint16_t *dmin_out,
                              uint8_t scales[12], uint8_t L[CIT_QK_K])
{
    float s[8], m[8], smax = 0, mmax = 0;
    for (int j = 0; j < 8; j++) {
        fit_affine(x + 32 * j, 32, nmax, &s[j], &m[j]);
        smax = s[j] > smax ? s[j] : smax;
        mmax = m[j] > mmax ? m[j] : mmax;
    }
    float d = smax / 63, dmin = mmax / 63;
    float id = d > 0 ? 1 / d : 0, idmin = dmin > 0 ? 1 / dmin : 0;
    uint8_t sc[8], mq[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)clampi(round_q(s[j] * id), 0, 63);
        mq[j] = (uint8_t)clampi(round_q(m[j] * idmin), 0, 63);
    }
    k_pack_scale_min(sc, mq, scales);
    *d_out = cit_fp32_to_fp16(d);
    *dmin_out = cit_fp32_to_fp16(dmin);
    float dd = cit_fp16_to_fp32(*d_out), dm = cit_fp16_to_fp32(*dmin_out);
    for (int j = 0; j < 8; j++) {
        float step = dd * sc[j], off = dm * mq[j];
        for (int l = 0; l < 32; l++) {
            int v = step > 0 ? round_q((x[32 * j + l] + off) / step) : 0;
            L[32 * j + l] = (uint8_t)clampi(v, 0, nmax);
        }
    }
}

/* ---- Q4_K ---- */

/* Shared tail of the Q4_K / Q5_K dequantization: codes q (0..nmax) of 8
 * sub-blocks of 32 with 6-bit scales and mins -> d*sc*q - dmin*m. */
static void expand_k_affine(const uint8_t q[CIT_QK_K], const uint8_t *scales, float d, float dmin, float *y)
{
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        k_scale_min(j, scales, &sc, &m);
        float step = d * sc, off = dmin * m;
        for (int l = 0; l < 32; l++)
            y[32 * j + l] = step * q[32 * j + l] - off;
    }
}

void cit_ref_q4_k_to_float(const void *src, float *dst, int64_t n)
{
    assert(n % CIT_QK_K == 0);
    const unsigned char *p = src;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q4_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        uint8_t q[CIT_QK_K];
        q4k_unpack(&b, q);
        expand_k_affine(q, b.scales, cit_fp16_to_fp32(b.d), cit_fp16_to_fp32(b.dmin), dst + i * CIT_QK_K);
    }
}

void cit_ref_q4_k_from_float(const float *src, void *dst, int64_t n)
{
    assert(n % CIT_QK_K == 0);
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q4_k b;
        uint8_t L[CIT_QK_K];
        quantize_k_affine(src + i * CIT_QK_K, 15, &b.d, &b.dmin, b.scales, L);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                b.qs[32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

/* Shared tail of the Q4_K / Q5_K dot: codes q (0..nmax), 6-bit scales and
 * mins, against one Q8_K block. Returns the block's contribution. */
static float dot_k_affine(const uint8_t q[CIT_QK_K], const uint8_t *scales, float d, float dmin,
                          const struct cit_block_q8_k *y)
{
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        k_scale_min(j, scales, &sc, &m);
        int32_t dot = 0;
        for (int l = 0; l < 32; l++)
            dot += (int32_t)q[32 * j + l] * y->qs[32 * j + l];
        sumi += sc * dot;
        summ += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    return d * y->d * (float)sumi - dmin * y->d * (float)summ;
}

void cit_ref_vec_dot_q4_k(int64_t n, float *s, const void *x, const void *y)
{
    assert(n % CIT_QK_K == 0);
    const unsigned char *xp = x, *yp = y;
    float sum = 0;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q4_k a;
        struct cit_block_q8_k b;
        memcpy(&a, xp + i * (int64_t)sizeof a, sizeof a);
        memcpy(&b, yp + i * (int64_t)sizeof b, sizeof b);
        uint8_t q[CIT_QK_K];
        q4k_unpack(&a, q);
        sum += dot_k_affine(q, a.scales, cit_fp16_to_fp32(a.d), cit_fp16_to_fp32(a.dmin), &b);
    }
    *s = sum;
}

/* ---- Q5_K ---- */

void cit_ref_q5_k_to_float(const void *src, float *dst, int64_t n)
{
    assert(n % CIT_QK_K == 0);
    const unsigned char *p = src;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q5_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        uint8_t q[CIT_QK_K];
        q5k_unpack(&b, q);
        expand_k_affine(q, b.scales, cit_fp16_to_fp32(b.d), cit_fp16_to_fp32(b.dmin), dst + i * CIT_QK_K);
    }
}

void cit_ref_q5_k_from_float(const float *src, void *dst, int64_t n)
{
    assert(n % CIT_QK_K == 0);
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q5_k b;
        uint8_t L[CIT_QK_K];
        quantize_k_affine(src + i * CIT_QK_K, 31, &b.d, &b.dmin, b.scales, L);
        memset(b.qh, 0, sizeof b.qh);
        for (int g = 0; g < 4; g++) {
            for (int l = 0; l < 32; l++) {
                uint8_t lo = L[64 * g + l], hi = L[64 * g + 32 + l];
                b.qs[32 * g + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
                b.qh[l] |= (uint8_t)(((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
            }
        }
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void cit_ref_vec_dot_q5_k(int64_t n, float *s, const void *x, const void *y)
{
    assert(n % CIT_QK_K == 0);
    const unsigned char *xp = x, *yp = y;
    float sum = 0;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q5_k a;
        struct cit_block_q8_k b;
        memcpy(&a, xp + i * (int64_t)sizeof a, sizeof a);
        memcpy(&b, yp + i * (int64_t)sizeof b, sizeof b);
        uint8_t q[CIT_QK_K];
        q5k_unpack(&a, q);
        sum += dot_k_affine(q, a.scales, cit_fp16_to_fp32(a.d), cit_fp16_to_fp32(a.dmin), &b);
    }
    *s = sum;
}

/* ---- Q6_K ---- */

void cit_ref_q6_k_to_float(const void *src, float *dst, int64_t n)
{
    assert(n % CIT_QK_K == 0);
    const unsigned char *p = src;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q6_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        int8_t q[CIT_QK_K];
        q6k_unpack(&b, q);
        float d = cit_fp16_to_fp32(b.d);
        float *y = dst + i * CIT_QK_K;
        for (int e = 0; e < CIT_QK_K; e++)
            y[e] = d * b.scales[e / 16] * q[e];
    }
}

/* Sub-block scales are fitted in float, then quantized to int8 against a
 * block scale chosen so that the largest-magnitude one maps to -128. */
void cit_ref_q6_k_from_float(const float *src, void *dst, int64_t n)
{
    assert(n % CIT_QK_K == 0);
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        const float *x = src + i * CIT_QK_K;
        struct cit_block_q6_k b;
        float s[16], amax = 0, smax = 0;
        for (int j = 0; j < 16; j++) {
            s[j] = fit_symmetric6(x + 16 * j, 16);
            if (fabsf(s[j]) > amax) {
                amax = fabsf(s[j]);
                smax = s[j];
            }
        }
        float is = amax > 0 ? -128.0f / smax : 0;
        b.d = cit_fp32_to_fp16(is != 0 ? 1 / is : smax / -128.0f); /* the latter for smax inf */
        for (int j = 0; j < 16; j++)
            b.scales[j] = (int8_t)clampi(round_q(is * s[j]), -128, 127);
        float d = cit_fp16_to_fp32(b.d);
        uint8_t L[CIT_QK_K];
        for (int e = 0; e < CIT_QK_K; e++) {
            float step = d * b.scales[e / 16];
            int v = step != 0 ? round_q(x[e] / step) : 0;
            L[e] = (uint8_t)(clampi(v, -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = b.ql + 64 * h, *qh = b.qh + 32 * h;
            const uint8_t *q = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((q[l] & 0xF) | ((q[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((q[l + 32] & 0xF) | ((q[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) |
                                  ((q[l + 96] >> 4) << 6));
            }
        }
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void cit_ref_vec_dot_q6_k(int64_t n, float *s, const void *x, const void *y)
{
    assert(n % CIT_QK_K == 0);
    const unsigned char *xp = x, *yp = y;
    float sum = 0;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q6_k a;
        struct cit_block_q8_k b;
        memcpy(&a, xp + i * (int64_t)sizeof a, sizeof a);
        memcpy(&b, yp + i * (int64_t)sizeof b, sizeof b);
        int8_t q[CIT_QK_K];
        q6k_unpack(&a, q);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += (int32_t)q[16 * j + l] * b.qs[16 * j + l];
            sumi += a.scales[j] * dot;
        }
        sum += cit_fp16_to_fp32(a.d) * b.d * (float)sumi;
    }
    *s = sum;
}

/* ---- Q8_K ---- */

void cit_ref_q8_k_to_float(const void *src, float *dst, int64_t n)
{
    assert(n % CIT_QK_K == 0);
    const unsigned char *p = src;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        struct cit_block_q8_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        for (int e = 0; e < CIT_QK_K; e++)
            dst[i * CIT_QK_K + e] = b.d * b.qs[e];
    }
}

/* As the reference: the element of largest magnitude, with its sign, maps to
 * exactly -127 (iscale = -127 / max, d = 1 / iscale kept as float); every
 * other q = nearest_int(iscale * x) (ties to even), capped to [-127, 127]
 * so the format stays symmetric. An all-zero block has d = 0, q = 0. */
void cit_ref_q8_k_from_float(const float *src, void *dst, int64_t n)
{
    assert(n % CIT_QK_K == 0);
    unsigned char *p = dst;
    for (int64_t i = 0; i < n / CIT_QK_K; i++) {
        const float *x = src + i * CIT_QK_K;
        struct cit_block_q8_k b;
        float amax = 0, max = 0;
        for (int e = 0; e < CIT_QK_K; e++) {
            if (fabsf(x[e]) > amax) {
                amax = fabsf(x[e]);
                max = x[e];
            }
        }
        if (!(amax > 0)) {
            memset(&b, 0, sizeof b);
        } else {
            float is = -127.0f / max;
            for (int e = 0; e < CIT_QK_K; e++)
                b.qs[e] = (int8_t)clampi(cit_nearest_int(is * x[e]), -127, 127);
            for (int j = 0; j < CIT_QK_K / 16; j++) {
                int sum = 0;
                for (int l = 0; l < 16; l++)
                    sum += b.qs[16 * j + l];
                b.bsums[j] = (int16_t)sum;
            }
            b.d = is != 0 ? 1 / is : max / -127.0f; /* is == 0 only for max = inf */
        }
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}
