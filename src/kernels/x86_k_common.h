/* x86_k_common.h: the pieces of the x86 K-quant kernels that more than one
 * kernel file uses: the super-block kinds, their scale and code unpacking,
 * and the SIMD Q8_K activation quantizer (equal to the reference's). Included
 * by x86_k_impl.h (the AVX2 / AVX-512 tiers) and amx_k.c, each after its
 * target pragma: everything here needs AVX2 + F16C at most. */
#ifndef CITADEL_KERNELS_X86_K_COMMON_H
#define CITADEL_KERNELS_X86_K_COMMON_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "tensor/quants.h"

#ifndef KX_ALWAYS_INLINE
#define KX_ALWAYS_INLINE inline __attribute__((always_inline))
#endif

enum kx_kind { KX_Q4K, KX_Q5K, KX_Q6K };

/* ---- shared scalar helpers ---- */

static KX_ALWAYS_INLINE uint32_t ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* F16C conversion: equal to cit_fp16_to_fp32 except that a signalling NaN
 * comes out quiet, which the first float operation on it does anyway, so
 * every result is the same. */
static KX_ALWAYS_INLINE float half_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* The 6-bit scales and mins of a Q4_K / Q5_K super-block (layout in
 * quants_k.c): byte j of *sc / *m is sc[j] / m[j]. Kept in registers (a
 * store of halves reloaded whole would stall store forwarding). */
static KX_ALWAYS_INLINE void k_scales(const uint8_t *s12, uint64_t *sc, uint64_t *m)
{
    uint32_t a = ld32(s12), b = ld32(s12 + 4), c = ld32(s12 + 8);
    uint32_t s_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
    uint32_t s_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    *sc = s_lo | (uint64_t)s_hi << 32;
    *m = m_lo | (uint64_t)m_hi << 32;
}

/* The codes of group g of a Q4_K / Q5_K super-block from its 32 qs bytes v:
 * *a = elements 64g .. 64g + 31 (low nibbles), *b = 64g + 32 .. 64g + 63
 * (high nibbles). Q5_K: each gets its fifth bit from *hb (the 32 qh bytes,
 * shifted on for the next group by this call); Q4_K ignores *hb. */
static KX_ALWAYS_INLINE void affine_codes(enum kx_kind kind, __m256i v, __m256i *hb, __m256i *a, __m256i *b)
{
    const __m256i lo4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    *a = _mm256_and_si256(v, lo4);
    *b = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4);
    if (kind == KX_Q5K) {
        *a = _mm256_or_si256(*a, _mm256_slli_epi16(_mm256_and_si256(*hb, one), 4));
        *b = _mm256_or_si256(*b, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(*hb, 1), one), 4));
        *hb = _mm256_srli_epi16(*hb, 2);
    }
}

/* The stored codes (signed code + 32) of half h of a Q6_K super-block:
 * c[i] = elements 128h + 32i .. 128h + 32i + 31. */
static KX_ALWAYS_INLINE void q6_codes(const uint8_t *blk, int h, __m256i c[4])
{
    const __m256i lo4 = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3);
    const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
    __m256i l0 = _mm256_loadu_si256((const __m256i *)(const void *)ql);
    __m256i l1 = _mm256_loadu_si256((const __m256i *)(const void *)(ql + 32));
    __m256i hb = _mm256_loadu_si256((const __m256i *)(const void *)qh);
    c[0] = _mm256_or_si256(_mm256_and_si256(l0, lo4), _mm256_slli_epi16(_mm256_and_si256(hb, three), 4));
    c[1] = _mm256_or_si256(_mm256_and_si256(l1, lo4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), three), 4));
    c[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), lo4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), three), 4));
    c[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), lo4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), three), 4));
}

/* The 32 qh bytes of a Q5_K super-block (zero for the other kinds). */
static KX_ALWAYS_INLINE __m256i affine_qh(enum kx_kind kind, const uint8_t *blk)
{
    return kind == KX_Q5K ? _mm256_loadu_si256((const __m256i *)(const void *)(blk + 16)) : _mm256_setzero_si256();
}

/* Weight codes of one super-block in element order: Q4_K 0..15, Q5_K
 * 0..31, Q6_K 0..63 (the stored value, i.e. the signed code + 32). */
static KX_ALWAYS_INLINE void unpack_codes(enum kx_kind kind, const uint8_t *blk, uint8_t q[CIT_QK_K])
{
    if (kind == KX_Q6K) {
        for (int h = 0; h < 2; h++) {
            __m256i c[4];
            q6_codes(blk, h, c);
            for (int i = 0; i < 4; i++)
                _mm256_storeu_si256((__m256i *)(void *)(q + 128 * h + 32 * i), c[i]);
        }
        return;
    }
    const uint8_t *qs = blk + (kind == KX_Q5K ? 48 : 16);
    __m256i hb = affine_qh(kind, blk);
    for (int g = 0; g < 4; g++) {
        __m256i a, b;
        affine_codes(kind, _mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * g)), &hb, &a, &b);
        _mm256_storeu_si256((__m256i *)(void *)(q + 64 * g), a);
        _mm256_storeu_si256((__m256i *)(void *)(q + 64 * g + 32), b);
    }
}

static KX_ALWAYS_INLINE int kind_bytes(enum kx_kind kind)
{
    return kind == KX_Q4K ? 144 : kind == KX_Q5K ? 176 : 210;
}

/* Q8_K of one super-block, equal to cit_ref_q8_k_from_float's (which is
 * called for the rare blocks it does not cover: a NaN or infinity, or a
 * maximum so small that -127 / max overflows). As the reference: max is the
 * first element of largest magnitude, is = -127 / max, q = nearest-even of
 * is * x (the default rounding mode, as rintf; |is * x| < 127.5 so no clamp
 * bites), d = 1 / is. */
static KX_ALWAYS_INLINE void quant_sb(const float *x, struct cit_block_q8_k *b)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(__builtin_inff());
    __m256 amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int i = 0; i < 32; i++) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + 8 * i), absmask);
        amax = _mm256_max_ps(a, amax);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ)); /* inf or NaN */
    }
    if (_mm256_movemask_ps(bad)) {
        cit_ref_q8_k_from_float(x, b, CIT_QK_K);
        return;
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ps(m4, _mm_shuffle_ps(m4, m4, 1));
    float am = _mm_cvtss_f32(m4);
    if (!(am > 0)) {
        memset(b, 0, sizeof *b);
        return;
    }
    float max = am;
    const __m256 vam = _mm256_set1_ps(am);
    for (int i = 0; i < 32; i++) {
        int msk = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * i), absmask), vam, _CMP_EQ_OQ));
        if (msk) {
            max = x[8 * i + __builtin_ctz((unsigned)msk)];
            break;
        }
    }
    float is = -127.0f / max;
    if (!(is > -3.0e38f && is < 3.0e38f)) {
        cit_ref_q8_k_from_float(x, b, CIT_QK_K);
        return;
    }
    const __m256 vis = _mm256_set1_ps(is);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int c = 0; c < 8; c++) {
        __m256i v[4];
        for (int k = 0; k < 4; k++) {
            __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + 32 * c + 8 * k)));
            v[k] = _mm256_min_epi32(_mm256_max_epi32(r, lo), hi);
        }
        __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        q = _mm256_permutevar8x32_epi32(q, perm);
        _mm256_storeu_si256((__m256i *)(void *)(b->qs + 32 * c), q);
        __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16); /* sums of 4 */
        __m128i s = _mm_hadd_epi32(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
        s = _mm_hadd_epi32(s, s); /* sum 0..15, sum 16..31 */
        b->bsums[2 * c] = (int16_t)_mm_cvtsi128_si32(s);
        b->bsums[2 * c + 1] = (int16_t)_mm_extract_epi32(s, 1);
    }
    b->d = 1 / is;
}

#endif
