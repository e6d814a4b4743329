/* x86_q_common.h: the activation formats of the x86 Q4_0 / Q8_0 kernels
 * (avx2_q.c, avx512_q.c, avx512vnni_q.c) and the SIMD quantizer that fills
 * them. Included only by files compiled with at least AVX2 + F16C.
 *
 * Activations are quantized exactly as cit_ref_q8_0_from_float does (same
 * amax, d = amax / 127 rounded to half, q = roundf(x / d_unrounded) clamped
 * to +-127), then laid out for one of two gemm paths, picked by n_tokens:
 *
 *   decode (n_tokens < XQ_SMALL), per token, blocks in chunks of 4 (the
 *   last chunk zero-padded):
 *     codes  [n_chunks][128] int8: Q8_0 weights: the 4 blocks' 32 codes in
 *            order; Q4_0 weights ("split"): elements 0..15 of the 4 blocks
 *            (64 bytes), then elements 16..31 of the 4 blocks, matching the
 *            low / high nibbles of 4 weight blocks loaded side by side;
 *     d      [n_chunks * 4] float (the half scale, widened);
 *     asum   [n_chunks * 4] int32 (sum of the block's codes, for kernels
 *            that feed unsigned weight bytes to the integer dot);
 *   tiled (n_tokens >= XQ_SMALL), tokens in groups of 16 (the last group
 *   padded with zero tokens), per group and block:
 *     codes  byte form: [8][16 tokens][4] uint8 = code + 128 (codes 4k..4k+3
 *            of the 16 tokens in one 64-byte row);
 *            word form: [16][16 tokens][2] int16 (codes 2k, 2k+1);
 *     d      [16] float.
 * The word form is for tiers whose integer dot would saturate int16 on
 * (code + 128) * Q8_0 weight. */
#ifndef CITADEL_KERNELS_X86_Q_COMMON_H
#define CITADEL_KERNELS_X86_Q_COMMON_H

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/checked.h"
#include "kernels/kernels.h"
#include "tensor/quants.h"

#define XQ_SMALL 12  /* token counts below this take the decode path */
#define XQ_SMALL_IL 17 /* the same for the few-token Q4_0 path (VNNI): up to 16 tokens */
#define XQ_DEC_T 3   /* tokens per pass of the decode kernels over a block of rows */
#define XQ_GROUP 16  /* tokens per group of the tiled format (= pack_group) */

/* ---- decode format ---- */

static inline size_t xq_chunks(size_t n_in) { return (n_in / CIT_QK + 3) / 4; }
static inline size_t xq_dec_token_bytes(size_t n_in) { return xq_chunks(n_in) * (128 + 16 + 16); }
static inline const int8_t *xq_dec_codes(const void *act, size_t n_in, size_t t)
{
    return (const int8_t *)act + t * xq_dec_token_bytes(n_in);
}
static inline const float *xq_dec_d(const void *act, size_t n_in, size_t t)
{
    return (const float *)((const char *)act + t * xq_dec_token_bytes(n_in) + xq_chunks(n_in) * 128);
}
static inline const int32_t *xq_dec_asum(const void *act, size_t n_in, size_t t)
{
    return (const int32_t *)((const char *)act + t * xq_dec_token_bytes(n_in) + xq_chunks(n_in) * 144);
}
/* The three parts of tokens tok0 .. tok0 + nt - 1, per token. */
static inline void xq_dec_tokens(const void *act, size_t n_in, size_t tok0, int nt, const int8_t **codes,
                                 const float **d, const int32_t **asum)
{
    for (int t = 0; t < nt; t++) {
        codes[t] = xq_dec_codes(act, n_in, tok0 + (size_t)t);
        d[t] = xq_dec_d(act, n_in, tok0 + (size_t)t);
        asum[t] = xq_dec_asum(act, n_in, tok0 + (size_t)t);
    }
}

/* ---- tiled format: esz = 1 (byte form) or 2 (word form) ---- */

static inline size_t xq_blk_stride(int esz) { return (size_t)512 * (size_t)esz + 64; }
static inline size_t xq_group_bytes(size_t n_in, int esz) { return n_in / CIT_QK * xq_blk_stride(esz); }

/* small: the kernel's threshold, below which the decode format is used
 * (XQ_SMALL, or XQ_SMALL_IL for the few-token Q4_0 path). */
static inline bool xq_act_bytes(uint64_t n_in, uint64_t n_tokens, int esz, size_t small, uint64_t *bytes)
{
    if (n_in > (uint64_t)1 << 40 || n_tokens > (uint64_t)1 << 40)
        return false;
    if (n_tokens < small)
        return cit_mul_u64(xq_dec_token_bytes((size_t)n_in), n_tokens, bytes);
    /* never less than the decode format of small - 1 tokens: non-decreasing in n_tokens */
    uint64_t groups = (n_tokens + XQ_GROUP - 1) / XQ_GROUP, floor = xq_dec_token_bytes((size_t)n_in) * (small - 1);
    if (!cit_mul_u64(xq_group_bytes((size_t)n_in, esz), groups, bytes))
        return false;
    if (*bytes < floor)
        *bytes = floor;
    return true;
}

/* Round half away from zero (roundf) of 8 floats, then clamp to [-127, 127]
 * with NaN going to -127 (the reference's clamp_to_int). */
static inline __m256i xq_round_clamp8(__m256 v)
{
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 diff = _mm256_sub_ps(v, t); /* exact */
    __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 ge = _mm256_cmp_ps(_mm256_and_ps(diff, absmask), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 one = _mm256_or_ps(_mm256_andnot_ps(absmask, v), _mm256_set1_ps(1.0f)); /* copysign(1, v) */
    t = _mm256_add_ps(t, _mm256_and_ps(ge, one));
    t = _mm256_max_ps(t, _mm256_set1_ps(-127.0f)); /* NaN -> -127 (second operand) */
    t = _mm256_min_ps(t, _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(t);
}

/* One block of 32 floats to 32 codes (element order), like the reference;
 * returns the widened half scale, and the codes' sum in *sum. */
static inline float xq_quant_block(const float *x, int8_t q[CIT_QK], int32_t *sum)
{
    __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 v[4];
    __m256 am = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        am = _mm256_max_ps(_mm256_and_ps(v[i], absmask), am); /* a NaN element is skipped */
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    float amax = _mm_cvtss_f32(m4);
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    __m256 vid = _mm256_set1_ps(id);
    __m256i c[4];
    for (int i = 0; i < 4; i++) {
        __m256 p = _mm256_mul_ps(v[i], vid);
        __asm__("" : "+x"(p)); /* the rounded product: never fused with the rounding's subtraction */
        c[i] = xq_round_clamp8(p);
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(c[0], c[1]), _mm256_add_epi32(c[2], c[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    *sum = _mm_cvtsi128_si32(s4);
    /* int32 -> int8 in order: packs works per 128-bit lane, fixed by a permute */
    __m256i w01 = _mm256_packs_epi32(c[0], c[1]); /* elements 0-3 8-11 | 4-7 12-15 */
    __m256i w23 = _mm256_packs_epi32(c[2], c[3]);
    __m256i b = _mm256_packs_epi16(w01, w23);     /* dwords: 0-3 8-11 16-19 24-27 | 4-7 12-15 20-23 28-31 */
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(void *)q, b);
    return cit_fp16_to_fp32(cit_fp32_to_fp16(d));
}

/* Packs tokens [t0, t1) of x. split: Q4_0 decode order; esz: tiled form;
 * small: as in xq_act_bytes. */
static inline void xq_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act,
                           bool split, int esz, size_t small)
{
    size_t nb = n_in / CIT_QK;
    if (n_tokens < small) {
        size_t nch = xq_chunks(n_in);
        for (size_t t = t0; t < t1; t++) {
            int8_t *codes = (int8_t *)xq_dec_codes(act, n_in, t);
            float *d = (float *)xq_dec_d(act, n_in, t);
            int32_t *asum = (int32_t *)xq_dec_asum(act, n_in, t);
            memset(codes, 0, nch * 128);
            memset(d, 0, nch * 4 * sizeof *d);
            memset(asum, 0, nch * 4 * sizeof *asum);
            for (size_t b = 0; b < nb; b++) {
                int8_t q[CIT_QK];
                d[b] = xq_quant_block(x + t * n_in + b * CIT_QK, q, &asum[b]);
                int8_t *dst = codes + b / 4 * 128;
                if (split) {
                    memcpy(dst + (b % 4) * 16, q, 16);
                    memcpy(dst + 64 + (b % 4) * 16, q + 16, 16);
                } else {
                    memcpy(dst + (b % 4) * 32, q, 32);
                }
            }
        }
        return;
    }
    size_t bs = xq_blk_stride(esz), gb = xq_group_bytes(n_in, esz);
    for (size_t t = t0; t < t1; t++) {
        unsigned char *g = (unsigned char *)act + t / XQ_GROUP * gb;
        size_t lane = t % XQ_GROUP;
        for (size_t b = 0; b < nb; b++) {
            int8_t q[CIT_QK];
            int32_t sum;
            float d = xq_quant_block(x + t * n_in + b * CIT_QK, q, &sum);
            unsigned char *blk = g + b * bs;
            if (esz == 1) {
                for (int k = 0; k < 8; k++) {
                    uint32_t u;
                    memcpy(&u, q + 4 * k, 4);
                    u ^= 0x80808080u; /* code + 128 as uint8 */
                    memcpy(blk + k * 64 + lane * 4, &u, 4);
                }
            } else {
                __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)q));
                __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(q + 16)));
                uint32_t pairs[16];
                _mm256_storeu_si256((__m256i *)(void *)pairs, w0);
                _mm256_storeu_si256((__m256i *)(void *)(pairs + 8), w1);
                for (int k = 0; k < 16; k++)
                    memcpy(blk + k * 64 + lane * 4, &pairs[k], 4);
            }
            memcpy(blk + 512 * (size_t)esz + lane * 4, &d, 4);
        }
    }
    /* Zero tokens pad the last group, written by whoever packs its end. */
    if (t1 == n_tokens && n_tokens % XQ_GROUP) {
        unsigned char *g = (unsigned char *)act + (n_tokens - 1) / XQ_GROUP * gb;
        uint32_t zero_code = esz == 1 ? 0x80808080u : 0;
        float zd = 0.0f;
        for (size_t lane = n_tokens % XQ_GROUP; lane < XQ_GROUP; lane++)
            for (size_t b = 0; b < nb; b++) {
                unsigned char *blk = g + b * bs;
                for (int k = 0; k < 8 * esz; k++)
                    memcpy(blk + k * 64 + lane * 4, &zero_code, 4);
                memcpy(blk + 512 * (size_t)esz + lane * 4, &zd, 4);
            }
    }
}

/* ---- weights of the tiled path ---- */

/* Unpacks blocks [b0, b0 + kn) of a row into signed codes (esz bytes each),
 * the integer each block's dot starts from, and the widened scales. */
static inline void xq_unpack(const unsigned char *wr, size_t b0, size_t kn, int q4, int esz, unsigned char *ws,
                         int32_t *corr, float *wd)
{
    const __m128i m4 = _mm_set1_epi8(0x0f);
    for (size_t b = 0; b < kn; b++) {
        uint16_t h;
        if (q4) {
            const unsigned char *p = wr + (b0 + b) * 18;
            memcpy(&h, p, 2);
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
            __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
            __m128i sad = _mm_add_epi64(_mm_sad_epu8(lo, _mm_setzero_si128()), _mm_sad_epu8(hi, _mm_setzero_si128()));
            int32_t sum = _mm_cvtsi128_si32(sad) + _mm_extract_epi32(sad, 2) - 8 * 32;
            __m128i eight = _mm_set1_epi8(8);
            _mm_storeu_si128((__m128i *)(void *)(ws + b * 32), _mm_sub_epi8(lo, eight));
            _mm_storeu_si128((__m128i *)(void *)(ws + b * 32 + 16), _mm_sub_epi8(hi, eight));
            corr[b] = -128 * sum;
        } else {
            const unsigned char *p = wr + (b0 + b) * 34;
            memcpy(&h, p, 2);
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2));
            if (esz == 1) {
                __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)),
                                              _mm256_setzero_si256());
                __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
                int32_t sum = _mm_cvtsi128_si32(s2) + _mm_extract_epi32(s2, 2) - 128 * 32;
                _mm256_storeu_si256((__m256i *)(void *)(ws + b * 32), v);
                corr[b] = -128 * sum;
            } else {
                _mm256_storeu_si256((__m256i *)(void *)(ws + b * 64), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)));
                _mm256_storeu_si256((__m256i *)(void *)(ws + b * 64 + 32),
                                    _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)));
                corr[b] = 0;
            }
        }
        /* F16C: the reference's value for every half but a signalling NaN,
         * which comes out quiet (as the first float operation makes it anyway) */
        wd[b] = _cvtsh_ss(h);
    }
}

#endif
