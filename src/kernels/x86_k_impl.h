/* x86_k_impl.h: the K-quant (Q4_K, Q5_K, Q6_K) matmul kernels of the x86
 * tiers, written once and included by avx2_k.c, avx2vnni_k.c, avx512_k.c
 * and avx512vnni_k.c, which set
 *   KX_BITS    256 or 512: vector width (512 also widens the decode dots);
 *   KX_VNNI    1 to use vpdpbusd / vpdpwssd (256 bits: AVX-VNNI's VEX forms,
 *              512: AVX512_VNNI), 0 for the vpmaddubsw + vpmaddwd
 *              form (identical integers: the weight codes are unsigned 4/5/6-bit,
 *              so vpmaddubsw of codes and int8 activations never saturates);
 *   KX_NAME    the registration function's name;
 *   KX_TARGET  the tier's instruction sets, for the target pragma.
 *
 * Exactness (kernels/kernels.h): per (row, token, super-block) the integer
 * sums of the reference (sumi and summ, exact in any order) are formed with
 * SIMD, then the reference's float operations of that super-block run in its
 * order, super-blocks in order:
 *   Q4_K/Q5_K: sum += ((d*yd)*(float)sumi) - ((dmin*yd)*(float)summ)
 *   Q6_K:      sum += (d*yd)*(float)sumi
 * (no contraction: the library builds with -std=c17, i.e. -ffp-contract=off
 * under GCC; scalar tails are split into single-operation statements and
 * the vector forms use separate mul/sub/add intrinsics). Activations are
 * quantized by quant_sb, which reproduces cit_ref_q8_k_from_float exactly
 * (and calls it for the blocks it does not cover).
 *
 * Two paths, chosen by n_tokens (GEMM_MIN), each with its own activation
 * layout (act_bytes is non-decreasing across the switch):
 *   - few tokens (decode): activations are the reference Q8_K rows. The
 *     512-bit tiers take 16 rows at a time per token (zblock_affine,
 *     zblock_q6), the 256-bit tier 8 (yblock_affine, yblock_q6): lanes =
 *     rows for the reduction and the float steps. Rows left over do one
 *     (row, token) super-block dot at a time, vectorised over its 256
 *     elements, reduced to sumi / summ, with a scalar float tail. The point
 *     is to keep up with the weight stream. With VNNI, a CPU may instead
 *     read a block's rows one after another (kx_rows_rs, row_order_k in
 *     cit_row_prefetch: AMD does).
 *   - many tokens: activations are packed token-interleaved in groups of
 *     KX_W tokens (one vector of 32-bit lanes), per super-block
 *       qs    [64 quads][KX_W tokens][4]  int8  (one vector = 4 codes of all tokens)
 *       bsums [8 pairs][KX_W tokens][2]   int16 (bsums 2i, 2i+1 of a token)
 *       d     [KX_W tokens]               float
 *     For each chunk of KC super-blocks (the chunk's activations of all
 *     tokens stay in L2), each block of KX_R weight rows is unpacked into an
 *     L1 scratch (u8 codes; Q6_K codes biased to 0..63, the bias removed
 *     with the bsums; scales as int32 and int16 pairs), then per 4-code quad
 *     the rows' codes are broadcast against the token vector, KX_R rows x
 *     KX_W tokens held in registers. The per-sub-block scale multiplies the
 *     int32 dot (VNNI: vpmulld per sub-block) or the int16 pair sums
 *     (vpmaddwd); the min / bias term is a vpdpwssd of scale pairs against
 *     bsums pairs. Partial row sums go through y between chunks, which is
 *     the same float sequence as keeping them in a register. */
#ifndef CITADEL_KERNELS_X86_K_IMPL_H
#define CITADEL_KERNELS_X86_K_IMPL_H

#include <string.h>

#include "base/checked.h"
#include "kernels/kernels.h"
#include "kernels/repack.h"
#include "tensor/quants.h"

#if !defined(KX_BITS) || !defined(KX_VNNI) || !defined(KX_NAME) || !defined(KX_TARGET)
#error "define KX_BITS, KX_VNNI, KX_NAME and KX_TARGET before including x86_k_impl.h"
#endif

/* The build gives this file its -m flags; the target pragma states them
 * again so the code still compiles for its tier if a build forgets them
 * (it is only ever called after run-time detection). */
#define KX_DO_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define KX_PUSH_TARGET(t) KX_DO_PRAGMA(clang attribute push(__attribute__((target(t))), apply_to = function))
KX_PUSH_TARGET(KX_TARGET)
#elif defined(__GNUC__)
#define KX_PUSH_TARGET(t) KX_DO_PRAGMA(GCC target(t))
#pragma GCC push_options
KX_PUSH_TARGET(KX_TARGET)
#endif
#include <immintrin.h>

/* ---- the many-token tile's vector vocabulary ---- */
#if KX_BITS == 512
#define KX_W 16
#ifndef KX_R
#define KX_R 8
#endif
typedef __m512i kvi;
typedef __m512 kvf;
#define vi_zero() _mm512_setzero_si512()
#define vi_load(p) _mm512_loadu_si512((const void *)(p))
#define vi_set1(x) _mm512_set1_epi32(x)
#define vi_add(a, b) _mm512_add_epi32(a, b)
#define vi_sub(a, b) _mm512_sub_epi32(a, b)
#define vi_mullo(a, b) _mm512_mullo_epi32(a, b)
#define vi_slli(a, n) _mm512_slli_epi32(a, n)
#define vi_maddubs(a, b) _mm512_maddubs_epi16(a, b)
#define vi_madd(a, b) _mm512_madd_epi16(a, b)
#define vi_and(a, b) _mm512_and_si512(a, b)
#define vi_or(a, b) _mm512_or_si512(a, b)
#define vi_srli32(a, n) _mm512_srli_epi32(a, n)
#define vi_unpacklo32(a, b) _mm512_unpacklo_epi32(a, b)
#define vi_unpackhi32(a, b) _mm512_unpackhi_epi32(a, b)
#define vi_unpacklo64(a, b) _mm512_unpacklo_epi64(a, b)
#define vi_unpackhi64(a, b) _mm512_unpackhi_epi64(a, b)
#define vf_load(p) _mm512_loadu_ps(p)
#define vf_store(p, v) _mm512_storeu_ps(p, v)
#define vf_set1(x) _mm512_set1_ps(x)
#define vf_zero() _mm512_setzero_ps()
#define vf_mul(a, b) _mm512_mul_ps(a, b)
#define vf_sub(a, b) _mm512_sub_ps(a, b)
#define vf_add(a, b) _mm512_add_ps(a, b)
#define vf_cvt(a) _mm512_cvtepi32_ps(a)
#if KX_VNNI
#define vi_dpbusd(acc, u, s) _mm512_dpbusd_epi32(acc, u, s)
#define vi_dpwssd(acc, a, b) _mm512_dpwssd_epi32(acc, a, b)
#endif
#elif KX_BITS == 256
#define KX_W 8
#ifndef KX_R
#define KX_R 4
#endif
typedef __m256i kvi;
typedef __m256 kvf;
#define vi_zero() _mm256_setzero_si256()
#define vi_load(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define vi_set1(x) _mm256_set1_epi32(x)
#define vi_add(a, b) _mm256_add_epi32(a, b)
#define vi_sub(a, b) _mm256_sub_epi32(a, b)
#define vi_mullo(a, b) _mm256_mullo_epi32(a, b)
#define vi_slli(a, n) _mm256_slli_epi32(a, n)
#define vi_maddubs(a, b) _mm256_maddubs_epi16(a, b)
#define vi_madd(a, b) _mm256_madd_epi16(a, b)
#define vi_and(a, b) _mm256_and_si256(a, b)
#define vi_or(a, b) _mm256_or_si256(a, b)
#define vi_srli32(a, n) _mm256_srli_epi32(a, n)
#define vi_unpacklo32(a, b) _mm256_unpacklo_epi32(a, b)
#define vi_unpackhi32(a, b) _mm256_unpackhi_epi32(a, b)
#define vi_unpacklo64(a, b) _mm256_unpacklo_epi64(a, b)
#define vi_unpackhi64(a, b) _mm256_unpackhi_epi64(a, b)
#define vf_load(p) _mm256_loadu_ps(p)
#define vf_store(p, v) _mm256_storeu_ps(p, v)
#define vf_set1(x) _mm256_set1_ps(x)
#define vf_zero() _mm256_setzero_ps()
#define vf_mul(a, b) _mm256_mul_ps(a, b)
#define vf_sub(a, b) _mm256_sub_ps(a, b)
#define vf_add(a, b) _mm256_add_ps(a, b)
#define vf_cvt(a) _mm256_cvtepi32_ps(a)
#if KX_VNNI /* AVX-VNNI: the VEX forms (the tier has no AVX-512) */
#define vi_dpbusd(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define vi_dpwssd(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#endif
#else
#error "KX_BITS must be 256 or 512"
#endif
#if KX_VNNI /* vpdpwssd on ymm: EVEX (AVX512_VNNI + VL) on the 512-bit tiers, VEX (AVX-VNNI) on the 256-bit one */
#if KX_BITS == 512
#define kx_dpwssd256(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#else
#define kx_dpwssd256(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#endif
#endif
#if !KX_VNNI
#define vi_dpwssd(acc, a, b) vi_add(acc, vi_madd(a, b))
#endif

#define KX_ALWAYS_INLINE inline __attribute__((always_inline))

#ifndef KX_KC /* overridable to test the chunked paths */
#define KX_KC 32
#endif
#ifndef KX_ACT_BAND
#define KX_ACT_BAND (1280 * 1024)
#endif
enum {
    SB_ACT = (int)sizeof(struct cit_block_q8_k), /* 292: reference row bytes per super-block */
    TILE_SB = 292 * KX_W,                        /* bytes per (token group, super-block) */
    TILE_BS = 256 * KX_W,                        /* offset of the bsums pairs in it */
    TILE_D = 288 * KX_W,                         /* offset of the d vector in it */
    KC = KX_KC,                                  /* super-blocks per unpacked chunk */
    ACT_BAND = KX_ACT_BAND,                      /* activation bytes of a band of token groups */
    GEMM_MIN = 4,                                /* tokens from which the tile path runs */
};

#include "kernels/x86_k_common.h"

/* ---- few-token path: one (row, token) super-block at a time ---- */

static KX_ALWAYS_INLINE int32_t hsum8(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static KX_ALWAYS_INLINE __m256i acc_madd(__m256i acc, __m256i p16, __m256i s16)
{
#if KX_VNNI
    return kx_dpwssd256(acc, p16, s16);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, s16));
#endif
}

/* One super-block of a Q4_K / Q5_K row against one Q8_K block: the
 * reference's float contribution. */
static KX_ALWAYS_INLINE float sb_affine(enum kx_kind kind, const uint8_t *blk, const uint8_t *y)
{
    uint64_t sc64, m64;
    k_scales(blk + 4, &sc64, &m64);
    int16_t sc[8];
    _mm_storeu_si128((__m128i *)(void *)sc, _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc64)));
    const uint8_t *qs = blk + (kind == KX_Q5K ? 48 : 16);
    const uint8_t *yq = y + 4;
    __m256i hb = affine_qh(kind, blk);
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m256i a, b;
        affine_codes(kind, _mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * g)), &hb, &a, &b);
        __m256i pa = _mm256_maddubs_epi16(a, _mm256_loadu_si256((const __m256i *)(const void *)(yq + 64 * g)));
        __m256i pb = _mm256_maddubs_epi16(b, _mm256_loadu_si256((const __m256i *)(const void *)(yq + 64 * g + 32)));
        acc = acc_madd(acc, pa, _mm256_set1_epi16(sc[2 * g]));
        acc = acc_madd(acc, pb, _mm256_set1_epi16(sc[2 * g + 1]));
    }
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m64));
    __m256i mdup = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(y + 4 + CIT_QK_K));
    int32_t sumi = hsum8(acc), summ = hsum8(_mm256_madd_epi16(bs, mdup));
    float yd;
    memcpy(&yd, y, 4);
    float d = half_at(blk), dmin = half_at(blk + 2);
    float t1 = d * yd;
    t1 = t1 * (float)sumi;
    float t2 = dmin * yd;
    t2 = t2 * (float)summ;
    return t1 - t2;
}

/* One super-block of a Q6_K row against one Q8_K block. The stored codes
 * are q + 32: sumi = sum_j sc_j * (dot(stored_j, y_j) - 32 * bsums_j). */
static KX_ALWAYS_INLINE float sb_q6(const uint8_t *blk, const uint8_t *y)
{
    const uint8_t *yq = y + 4;
    __m256i acc = _mm256_setzero_si256();
    /* scales as int16, each duplicated over the two 8-lane halves of a
     * 16-element sub-block's maddubs result */
    __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(blk + 192)));
    int16_t scl[16];
    _mm256_storeu_si256((__m256i *)(void *)scl, sc16);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const uint8_t *yh = yq + 128 * h;
        __m256i c[4];
        q6_codes(blk, h, c);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            /* elements 128h + 32i .. +31: sub-blocks 8h + 2i, 8h + 2i + 1 */
            __m256i p = _mm256_maddubs_epi16(c[i], _mm256_loadu_si256((const __m256i *)(const void *)(yh + 32 * i)));
            int j = 8 * h + 2 * i;
            __m256i s = _mm256_set_m128i(_mm_set1_epi16(scl[j + 1]), _mm_set1_epi16(scl[j]));
            acc = acc_madd(acc, p, s);
        }
    }
    __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(y + 4 + CIT_QK_K));
    int32_t sumi = hsum8(acc) - 32 * hsum8(_mm256_madd_epi16(bs, sc16));
    float yd;
    memcpy(&yd, y, 4);
    float t = half_at(blk + 208) * yd;
    return t * (float)sumi;
}

/* Software prefetch distance of the row decode in super-blocks (0: none):
 * Q6_K's, and Q4_K / Q5_K's unless the CPU asks for more (kx_pf_affine).
 * -DKX_PF fixes both at build time, for bench/kernel_ab.c. */
#ifdef KX_PF
#define KX_PF_FIXED 1
#else
#define KX_PF 4
#define KX_PF_FIXED 0
#endif
#ifndef KX_PF_HINT
/* Into L2, not L1: a prefetch to L1 holds one of the core's few L1 fill
 * buffers until memory answers, which caps the reads in flight; paired runs
 * from memory (bench/kernel_ab.c, 2 threads, T1 against T0): Q4_K 2048x2048
 * 1.097, 32000x2048 1.087; Q5_K 1.139, 1.152; Q6_K 1.02-1.04. */
#define KX_PF_HINT _MM_HINT_T1
#endif

/* int32 lane pair (lo | hi << 16) of two int16 values, as vpdpwssd / vpmaddwd read it */
static KX_ALWAYS_INLINE int32_t pair16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xffffu) | ((uint32_t)hi << 16));
}

/* Q4_K / Q5_K's distance: per CPU (cit_row_prefetch, kernels.h). */
static KX_ALWAYS_INLINE size_t kx_pf_affine(void)
{
    return KX_PF_FIXED ? (size_t)KX_PF : cit_row_prefetch()->k_affine;
}

/* Prefetch the super-block pf steps ahead in the order a decode block
 * consumes it, of its n_rows rows or, past their end, of the next block
 * (n_rows * row_bytes further on): a steady distance whatever the row
 * length. Past the matrix the hints are harmless (they never fault).
 * once (Q6_K): each line once, those that start inside the super-block (the
 * line it starts in came with the one before it; at a row's first
 * super-block, that line too). Otherwise every 64 bytes of the super-block
 * and its last byte: 5 prefetches per 210-byte Q6_K super-block where 3.3
 * lines are new. Paired from memory on Zen 4 (4 KiB pages, 2 threads), the
 * once form read Q6_K 1.09-1.57x as fast by shape, but Q4_K 0.98-0.995x, so
 * the affine types keep the other. */
static KX_ALWAYS_INLINE void kx_prefetch_rows(const uint8_t *w0, size_t row_bytes, size_t s, size_t nsb, size_t bb,
                                              int n_rows, size_t pf, const int once)
{
    if (!pf)
        return;
    size_t ahead = s + pf;
    const char *p = (const char *)w0 + ahead * bb;
    if (ahead >= nsb) {
        ahead -= nsb;
        p = (const char *)w0 + (size_t)n_rows * row_bytes + ahead * bb;
    }
    if (once) {
        const uintptr_t up = ahead ? 63 : 0;
        for (int r = 0; r < n_rows; r++, p += row_bytes)
            for (uintptr_t x = ((uintptr_t)p + up) & ~(uintptr_t)63, e = (uintptr_t)p + bb; x < e; x += 64)
                _mm_prefetch((const char *)x, KX_PF_HINT);
        return;
    }
    for (int r = 0; r < n_rows; r++, p += row_bytes) {
        for (size_t i = 0; i < bb; i += 64)
            _mm_prefetch(p + i, KX_PF_HINT);
        _mm_prefetch(p + bb - 1, KX_PF_HINT);
    }
}

/* 4x4 dword transpose within each 128-bit lane: out[j] dword i of a lane =
 * dword j of h[i] in that lane (the decode blocks' header loads). */
static KX_ALWAYS_INLINE void kx_transpose4(const kvi h[4], kvi out[4])
{
    kvi t0 = vi_unpacklo32(h[0], h[1]), t1 = vi_unpackhi32(h[0], h[1]);
    kvi t2 = vi_unpacklo32(h[2], h[3]), t3 = vi_unpackhi32(h[2], h[3]);
    out[0] = vi_unpacklo64(t0, t2);
    out[1] = vi_unpackhi64(t0, t2);
    out[2] = vi_unpacklo64(t1, t3);
    out[3] = vi_unpackhi64(t1, t3);
}

/* The decode blocks' header math, at either width (lane = row): from dwords
 * 1..3 of the rows' Q4_K / Q5_K headers (ga, gb, gc), the scales (bytes of
 * s_lo: sc 0..3, s_hi: sc 4..7) and mins (m_lo, m_hi), as k_scales does for
 * one row; and the rows' summ = sum_j m_j * (bsums_2j + bsums_2j+1) against
 * the token's Q8_K block ys. */
static KX_ALWAYS_INLINE void kx_scales_rows(kvi ga, kvi gb, kvi gc, kvi *s_lo, kvi *s_hi, kvi *m_lo, kvi *m_hi)
{
    const kvi m3f = vi_set1(0x3f3f3f3f), m0f = vi_set1(0x0f0f0f0f), m30 = vi_set1(0x30303030);
    *s_lo = vi_and(ga, m3f);
    *s_hi = vi_or(vi_and(gc, m0f), vi_and(vi_srli32(ga, 2), m30));
    *m_lo = vi_and(gb, m3f);
    *m_hi = vi_or(vi_and(vi_srli32(gc, 4), m0f), vi_and(vi_srli32(gb, 2), m30));
}

/* the same from the token's 16 bsums */
/* The token's bsums pair sums p_j = bsums_2j + bsums_2j+1 as the int16 pairs
 * kx_summ_pairs takes: (p0, p2), (p1, p3), (p4, p6), (p5, p7). */
static KX_ALWAYS_INLINE void kx_bsum_pairs(const int16_t bs[16], int32_t out[4])
{
    int32_t bp[8];
    for (int j = 0; j < 8; j++)
        bp[j] = (int32_t)bs[2 * j] + (int32_t)bs[2 * j + 1];
    out[0] = pair16(bp[0], bp[2]);
    out[1] = pair16(bp[1], bp[3]);
    out[2] = pair16(bp[4], bp[6]);
    out[3] = pair16(bp[5], bp[7]);
}

/* summ per lane: m_j is byte j of m_lo:m_hi; its even and odd bytes against
 * the lane's pairs pv (kx_bsum_pairs' order). */
static KX_ALWAYS_INLINE kvi kx_summ_pairs(kvi m_lo, kvi m_hi, const kvi pv[4])
{
    const kvi m00ff = vi_set1(0x00ff00ff);
    kvi summ = vi_dpwssd(vi_zero(), vi_and(m_lo, m00ff), pv[0]);
    summ = vi_dpwssd(summ, vi_and(vi_srli32(m_lo, 8), m00ff), pv[1]);
    summ = vi_dpwssd(summ, vi_and(m_hi, m00ff), pv[2]);
    return vi_dpwssd(summ, vi_and(vi_srli32(m_hi, 8), m00ff), pv[3]);
}

static KX_ALWAYS_INLINE kvi kx_summ_rows_bs(kvi m_lo, kvi m_hi, const int16_t bs[16])
{
    int32_t bp[4];
    kx_bsum_pairs(bs, bp);
    const kvi pv[4] = {vi_set1(bp[0]), vi_set1(bp[1]), vi_set1(bp[2]), vi_set1(bp[3])};
    return kx_summ_pairs(m_lo, m_hi, pv);
}

static KX_ALWAYS_INLINE kvi kx_summ_rows(kvi m_lo, kvi m_hi, const uint8_t *ys)
{
    int16_t bs[16];
    memcpy(bs, ys + 4 + CIT_QK_K, sizeof bs);
    return kx_summ_rows_bs(m_lo, m_hi, bs);
}

#if KX_BITS == 512
#include "kernels/x86_zmm.h"

/* 512-bit forms of the two super-block dots: each zmm covers 64 consecutive
 * elements, so the activations are read in their natural order. A Q4_K
 * group of 64 elements is its 32 bytes of qs broadcast to both halves and
 * shifted right by 0 (low half: elements 0..31) or 4 (high half: 32..63). */

static KX_ALWAYS_INLINE __m512i zacc_madd(__m512i acc, __m512i p16, __m512i s16)
{
#if KX_VNNI
    return _mm512_dpwssd_epi32(acc, p16, s16);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, s16));
#endif
}

/* sum of the 16 lanes of a and of the 8 lanes of b */
static KX_ALWAYS_INLINE void hsum2(__m512i a, __m256i b, int32_t *sa, int32_t *sb)
{
    __m256i a8 = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
    __m256i h = _mm256_hadd_epi32(a8, b); /* a01 a23 b01 b23 | a45 a67 b45 b67 */
    __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    q = _mm_hadd_epi32(q, q); /* A B A B */
    *sa = _mm_cvtsi128_si32(q);
    *sb = _mm_extract_epi32(q, 1);
}

static KX_ALWAYS_INLINE float zsb_affine(enum kx_kind kind, const uint8_t *blk, const uint8_t *y)
{
    uint64_t sc64, m64;
    k_scales(blk + 4, &sc64, &m64);
    const __m512i lo4 = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
    const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc64)));
    const uint8_t *qs = blk + (kind == KX_Q5K ? 48 : 16);
    const uint8_t *yq = y + 4;
    __m512i hb = _mm512_setzero_si512(), hshift = _mm512_setzero_si512();
    if (kind == KX_Q5K) {
        hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 16)));
        hshift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1);
    }
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * g)));
        __m512i c = _mm512_and_si512(_mm512_srlv_epi16(v, shift), lo4);
        if (kind == KX_Q5K) {
            __m512i hbit = _mm512_and_si512(_mm512_srlv_epi16(hb, hshift), one);
            c = _mm512_or_si512(c, _mm512_slli_epi16(hbit, 4));
            hb = _mm512_srli_epi16(hb, 2);
        }
        __m512i p = _mm512_maddubs_epi16(c, _mm512_loadu_si512((const void *)(yq + 64 * g)));
        __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(2 * g))),
                                         _mm256_set1_epi16((short)(2 * g + 1)), 1);
        acc = zacc_madd(acc, p, _mm512_permutexvar_epi16(idx, sc16));
    }
    __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m64));
    __m256i mdup = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
    __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(y + 4 + CIT_QK_K));
    int32_t sumi, summ;
    hsum2(acc, _mm256_madd_epi16(bs, mdup), &sumi, &summ);
    float yd;
    memcpy(&yd, y, 4);
    float d = half_at(blk), dmin = half_at(blk + 2);
    float t1 = d * yd;
    t1 = t1 * (float)sumi;
    float t2 = dmin * yd;
    t2 = t2 * (float)summ;
    return t1 - t2;
}

static KX_ALWAYS_INLINE float zsb_q6(const uint8_t *blk, const uint8_t *y)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f), three = _mm512_set1_epi8(3);
    const uint8_t *yq = y + 4;
    __m256i sc16y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(blk + 192)));
    __m512i sc16 = _mm512_castsi256_si512(sc16y);
    const __m512i sh01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i sh23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(4)), _mm256_set1_epi16(6), 1);
    /* scale index of int16 lane l of a zmm of 64 elements: sub-block l / 8 */
    const __m512i lane_sub = _mm512_srli_epi16(
        _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                         6, 5, 4, 3, 2, 1, 0),
        3);
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m512i l = _mm512_loadu_si512((const void *)(blk + 64 * h));
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 128 + 32 * h)));
        __m512i c01 = _mm512_or_si512(_mm512_and_si512(l, lo4),
                                      _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, sh01), three), 4));
        __m512i c23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), lo4),
                                      _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, sh23), three), 4));
        __m512i p0 = _mm512_maddubs_epi16(c01, _mm512_loadu_si512((const void *)(yq + 128 * h)));
        __m512i p1 = _mm512_maddubs_epi16(c23, _mm512_loadu_si512((const void *)(yq + 128 * h + 64)));
        __m512i i0 = _mm512_add_epi16(lane_sub, _mm512_set1_epi16((short)(8 * h)));
        __m512i i1 = _mm512_add_epi16(lane_sub, _mm512_set1_epi16((short)(8 * h + 4)));
        acc = zacc_madd(acc, p0, _mm512_permutexvar_epi16(i0, sc16));
        acc = zacc_madd(acc, p1, _mm512_permutexvar_epi16(i1, sc16));
    }
    __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(y + 4 + CIT_QK_K));
    int32_t sumi, corr;
    hsum2(acc, _mm256_madd_epi16(bs, sc16y), &sumi, &corr);
    sumi -= 32 * corr;
    float yd;
    memcpy(&yd, y, 4);
    float t = half_at(blk + 208) * yd;
    return t * (float)sumi;
}

/* ---- 16-row decode blocks (512-bit tiers) ----
 * Sixteen rows of one token at a time, lanes = rows: per super-block the
 * rows' headers (d, dmin and the packed scales; Q6_K: scales and d) are
 * loaded and transposed (zheaders), each row's 256 products go into one
 * zmm of partial sums (in-row scales via a byte shuffle of the row's scale
 * bytes), the sixteen zmm are reduced together (zreduce16: lane = row),
 * the min / bias term is one vpdpwssd chain over the transposed scale
 * words against the token's bsums pairs, and the reference's float steps
 * of the super-block run with a lane holding its row's operations (each
 * lane is exactly the scalar sequence). Rows of a block are software
 * prefetched KX_PF super-blocks ahead (kx_prefetch_rows). Measured on the
 * 2-core AVX-512 VNNI machine: about 2x the weight GB/s of one row at a
 * time. */


/* lane r = the sum of v[r]'s 16 lanes. Pairs, then quads, then 128-bit
 * segments: after the second level, segment s of w[i] holds the segment-s
 * partial sums of rows 4i..4i+3. */
static KX_ALWAYS_INLINE __m512i zreduce16(const __m512i v[16])
{
    __m512i u[8], w[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        w[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(u[2 * i], u[2 * i + 1]),
                                _mm512_unpackhi_epi64(u[2 * i], u[2 * i + 1]));
    __m512i x0 = _mm512_add_epi32(_mm512_shuffle_i32x4(w[0], w[1], 0x88), _mm512_shuffle_i32x4(w[0], w[1], 0xdd));
    __m512i x1 = _mm512_add_epi32(_mm512_shuffle_i32x4(w[2], w[3], 0x88), _mm512_shuffle_i32x4(w[2], w[3], 0xdd));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(x0, x1, 0x88), _mm512_shuffle_i32x4(x0, x1, 0xdd));
}

/* The 16 bytes at b0 + off of the 16 rows b0 + r * row_bytes, transposed:
 * lane L of out[j] = dword j of row zrow_of(L) (a 4x4 transpose of
 * 128-bit rows, so lane 4s + i holds row 4i + s; the map is its own
 * inverse). Plain loads: a vpgatherdd costs more than these shuffles. */
static KX_ALWAYS_INLINE int zrow_of(int lane)
{
    return 4 * (lane & 3) + (lane >> 2);
}

static KX_ALWAYS_INLINE void zheaders(const uint8_t *b0, size_t row_bytes, __m512i out[4])
{
    __m512i h[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const uint8_t *p = b0 + (size_t)(4 * i) * row_bytes;
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)p));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + row_bytes)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * row_bytes)), 2);
        h[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + 3 * row_bytes)), 3);
    }
    kx_transpose4(h, out);
}

/* lanes back to row order (zrow_of is an involution) */
static KX_ALWAYS_INLINE __m512 zrow_order(__m512 v)
{
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), v);
}

#if KX_VNNI
/* VNNI form of zrow_affine: 64 bytes of qs (groups 2k, 2k+1) at once; the
 * low nibbles are elements 128k + 0..31 and 128k + 64..95, the high ones
 * 128k + 32..63 and 128k + 96..127, against the token's activations in
 * that order (yv[2k], yv[2k + 1], built once per super-block). vpdpbusd
 * gives sums of 4 products (|.| <= 4 * 31 * 127, so int16 holds them);
 * vpackssdw of the two interleaves them per 128-bit segment, and one
 * vpdpwssd applies the scales: segment s, int16 lanes 0..3 / 4..7 are
 * sub-blocks 4k / 4k + 1 (s < 2) or 4k + 2 / 4k + 3 (s >= 2). */
static KX_ALWAYS_INLINE __m512i zrow_affine_vnni(enum kx_kind kind, const uint8_t *blk, const __m512i yv[4],
                                                 uint64_t sc8, const __m512i sidx[2])
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
    const __m512i scb = _mm512_set1_epi64((long long)sc8);
    const uint8_t *qs = blk + (kind == KX_Q5K ? 48 : 16);
    __m512i hb = _mm512_setzero_si512();
    if (kind == KX_Q5K)
        hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 16)));
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int k = 0; k < 2; k++) {
        __m512i v = _mm512_loadu_si512((const void *)(qs + 64 * k));
        __m512i cl = _mm512_and_si512(v, lo4), ch = _mm512_and_si512(_mm512_srli_epi16(v, 4), lo4);
        if (kind == KX_Q5K) { /* element 64g + l: bit 2g of qh[l]; 64g + 32 + l: bit 2g + 1 */
            const __m512i shl = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(4 * k))),
                                                   _mm256_set1_epi16((short)(4 * k + 2)), 1);
            const __m512i shh = _mm512_add_epi16(shl, _mm512_set1_epi16(1));
            cl = _mm512_or_si512(cl, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, shl), one), 4));
            ch = _mm512_or_si512(ch, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, shh), one), 4));
        }
        __m512i dl = _mm512_dpbusd_epi32(_mm512_setzero_si512(), cl, yv[2 * k]);
        __m512i dh = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ch, yv[2 * k + 1]);
        acc = _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(dl, dh), _mm512_shuffle_epi8(scb, sidx[k]));
    }
    return acc;
}
#endif

/* One row's scaled partial sums of a Q4_K / Q5_K super-block (lanes sum to
 * sumi); sc8 = its 8 scale bytes. */
static KX_ALWAYS_INLINE __m512i zrow_affine(enum kx_kind kind, const uint8_t *blk, const uint8_t *yq, uint64_t sc8,
                                            const __m512i sidx[4])
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
    const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    const __m512i scb = _mm512_set1_epi64((long long)sc8);
    const uint8_t *qs = blk + (kind == KX_Q5K ? 48 : 16);
    __m512i hb = _mm512_setzero_si512(), hshift = _mm512_setzero_si512();
    if (kind == KX_Q5K) {
        hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 16)));
        hshift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1);
    }
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * g)));
        __m512i c = _mm512_and_si512(_mm512_srlv_epi16(v, shift), lo4);
        if (kind == KX_Q5K) {
            __m512i hbit = _mm512_and_si512(_mm512_srlv_epi16(hb, hshift), one);
            c = _mm512_or_si512(c, _mm512_slli_epi16(hbit, 4));
            hb = _mm512_srli_epi16(hb, 2);
        }
        __m512i p = _mm512_maddubs_epi16(c, _mm512_loadu_si512((const void *)(yq + 64 * g)));
        acc = zacc_madd(acc, p, _mm512_shuffle_epi8(scb, sidx[g]));
    }
    return acc;
}

#if KX_VNNI
/* zrow_affine_vnni's scale shuffles: segments 0, 1 of sidx[k]: bytes 4k, 4k + 1;
 * 2, 3: bytes 4k + 2, 4k + 3 (each x4). */
static KX_ALWAYS_INLINE void kx_affine_sidx(__m512i sidx[2])
{
    for (int k = 0; k < 2; k++) {
        short b0s = (short)(0x8000 | (4 * k)), b1s = (short)(0x8000 | (4 * k + 1));
        __m128i lo = _mm_setr_epi16(b0s, b0s, b0s, b0s, b1s, b1s, b1s, b1s);
        __m128i hi = _mm_add_epi16(lo, _mm_set1_epi16(2));
        sidx[k] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(lo, lo)), _mm256_set_m128i(hi, hi), 1);
    }
}
#endif

/* The headers of the 16 Q4_K / Q5_K super-blocks at b0 + r * stride (r <
 * 16): *dd = d | dmin << 16 and the mins (kx_scales_rows), lane L holding
 * super-block zrow_of(L); qword k of scl holds the scale bytes of
 * super-block 4(k/2) + k%2 (k < 8) or 4((k-8)/2) + 2 + k%2 (k >= 8). */
static KX_ALWAYS_INLINE void kx_affine_headers(const uint8_t *b0, size_t stride, __m512i *dd, uint64_t scl[16],
                                               __m512i *m_lo, __m512i *m_hi)
{
    __m512i hd[4], s_lo, s_hi;
    zheaders(b0, stride, hd);
    *dd = hd[0];
    kx_scales_rows(hd[1], hd[2], hd[3], &s_lo, &s_hi, m_lo, m_hi);
    _mm512_store_si512((void *)scl, _mm512_unpacklo_epi32(s_lo, s_hi));
    _mm512_store_si512((void *)(scl + 8), _mm512_unpackhi_epi32(s_lo, s_hi));
}

/* Rows w0 + r * row_bytes (r < 16) of a Q4_K /
 * Q5_K matrix against one token's Q8_K row y: out[r] = the reference's dot. */
static KX_ALWAYS_INLINE void zblock_affine(enum kx_kind kind, const uint8_t *w0, size_t row_bytes, size_t nsb,
                                           size_t pf, const uint8_t *y, float *out)
{
    const int bb = kind_bytes(kind);
#if !KX_VNNI
    __m512i sidx[4];
    for (int g = 0; g < 4; g++) /* int16 lanes 0..15: byte 2g, 16..31: byte 2g + 1 */
        sidx[g] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)(0x8000 | (2 * g)))),
                                     _mm256_set1_epi16((short)(0x8000 | (2 * g + 1))), 1);
#else
    __m512i vidx2[2];
    kx_affine_sidx(vidx2);
#endif
    __m512 sum = _mm512_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const uint8_t *b0 = w0 + s * (size_t)bb, *ys = y + s * SB_ACT;
        kx_prefetch_rows(w0, row_bytes, s, nsb, (size_t)bb, 16, pf, 0);
        __m512i dd, m_lo, m_hi;
        uint64_t scl[16] __attribute__((aligned(64)));
        kx_affine_headers(b0, row_bytes, &dd, scl, &m_lo, &m_hi);
        __m512i summ = kx_summ_rows(m_lo, m_hi, ys);
#if KX_VNNI
        __m512i yv[4];
        for (int k = 0; k < 2; k++) {
            const uint8_t *yk = ys + 4 + 128 * k;
            for (int h = 0; h < 2; h++)
                yv[2 * k + h] = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(yk + 32 * h))),
                    _mm256_loadu_si256((const __m256i *)(const void *)(yk + 64 + 32 * h)), 1);
        }
#endif
        __m512i acc[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) {
            const uint8_t *blk = b0 + (size_t)zrow_of(r) * row_bytes; /* lane r */
            int k = (r & 2) * 4 + (r >> 2) * 2 + (r & 1);
#if KX_VNNI
            acc[r] = zrow_affine_vnni(kind, blk, yv, scl[k], vidx2);
#else
            acc[r] = zrow_affine(kind, blk, ys + 4, scl[k], sidx);
#endif
        }
        __m512i sumi = zreduce16(acc);
        __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        float ydf;
        memcpy(&ydf, ys, 4);
        __m512 yd = _mm512_set1_ps(ydf);
        __m512 t1 = _mm512_mul_ps(_mm512_mul_ps(d, yd), _mm512_cvtepi32_ps(sumi));
        __m512 t2 = _mm512_mul_ps(_mm512_mul_ps(dmin, yd), _mm512_cvtepi32_ps(summ));
        sum = _mm512_add_ps(sum, _mm512_sub_ps(t1, t2));
    }
    _mm512_storeu_ps(out, zrow_order(sum));
}

/* One row's partial sums of a Q6_K super-block over the stored codes (lanes
 * sum to sum_j sc_j * dot(stored_j, y_j)). */
static KX_ALWAYS_INLINE __m512i zrow_q6(const uint8_t *blk, const uint8_t *yq)
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f), three = _mm512_set1_epi8(3);
    __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(blk + 192))));
    const __m512i sh01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i sh23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(4)), _mm256_set1_epi16(6), 1);
    const __m512i lane_sub = _mm512_srli_epi16(
        _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                         6, 5, 4, 3, 2, 1, 0),
        3);
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m512i l = _mm512_loadu_si512((const void *)(blk + 64 * h));
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 128 + 32 * h)));
        __m512i c01 = _mm512_or_si512(_mm512_and_si512(l, lo4),
                                      _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, sh01), three), 4));
        __m512i c23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), lo4),
                                      _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, sh23), three), 4));
        __m512i p0 = _mm512_maddubs_epi16(c01, _mm512_loadu_si512((const void *)(yq + 128 * h)));
        __m512i p1 = _mm512_maddubs_epi16(c23, _mm512_loadu_si512((const void *)(yq + 128 * h + 64)));
        __m512i i0 = _mm512_add_epi16(lane_sub, _mm512_set1_epi16((short)(8 * h)));
        __m512i i1 = _mm512_add_epi16(lane_sub, _mm512_set1_epi16((short)(8 * h + 4)));
        acc = zacc_madd(acc, p0, _mm512_permutexvar_epi16(i0, sc16));
        acc = zacc_madd(acc, p1, _mm512_permutexvar_epi16(i1, sc16));
    }
    return acc;
}

#if KX_VNNI
/* VNNI form of zrow_q6: per half h, vpdpbusd of elements 128h + 0..63 and
 * 128h + 64..127 (sums of 4 products, |.| <= 4 * 63 * 127 < 32768),
 * vpackssdw interleaves them per 128-bit segment s (int16 lanes 0..3:
 * sub-block 8h + s, 4..7: 8h + 4 + s), one vpdpwssd applies the scales. */
static KX_ALWAYS_INLINE __m512i zrow_q6_vnni(const uint8_t *blk, const uint8_t *yq, const __m512i pidx[2])
{
    const __m512i lo4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    /* the two high bits to bits 4..5: elements 0..31 of a 64 from qh bits
     * 0..1 / 4..5, elements 32..63 from bits 2..3 / 6..7 */
    const __m512i sl01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(4)), _mm256_set1_epi16(2), 1);
    const __m512i sr23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(blk + 192))));
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m512i l = _mm512_loadu_si512((const void *)(blk + 64 * h));
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 128 + 32 * h)));
        __m512i c01 = _mm512_or_si512(_mm512_and_si512(l, lo4), _mm512_and_si512(_mm512_sllv_epi16(hb, sl01), m30));
        __m512i c23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), lo4),
                                      _mm512_and_si512(_mm512_srlv_epi16(hb, sr23), m30));
        __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c01, _mm512_loadu_si512((const void *)(yq + 128 * h)));
        __m512i d1 =
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), c23, _mm512_loadu_si512((const void *)(yq + 128 * h + 64)));
        acc = _mm512_dpwssd_epi32(acc, _mm512_packs_epi32(d0, d1), _mm512_permutexvar_epi16(pidx[h], sc16));
    }
    return acc;
}
#endif

#if KX_VNNI
/* zrow_q6_vnni's scale permutes: int16 lane 8s + j of pidx[h] is sub-block
 * 8h + s (j < 4) or 8h + 4 + s. */
static KX_ALWAYS_INLINE void kx_q6_pidx(__m512i pidx[2])
{
    for (int h = 0; h < 2; h++) {
        short ix[32];
        for (int l = 0; l < 32; l++)
            ix[l] = (short)(8 * h + (l >> 3) + ((l & 7) >= 4 ? 4 : 0));
        pidx[h] = _mm512_loadu_si512((const void *)ix);
    }
}
#endif

static KX_ALWAYS_INLINE void zblock_q6(const uint8_t *w0, size_t row_bytes, size_t nsb, size_t pf, const uint8_t *y,
                                       float *out)
{
    const int bb = 210;
#if KX_VNNI
    __m512i pidx[2];
    kx_q6_pidx(pidx);
#endif
    __m512 sum = _mm512_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const uint8_t *b0 = w0 + s * (size_t)bb, *ys = y + s * SB_ACT;
        kx_prefetch_rows(w0, row_bytes, s, nsb, (size_t)bb, 16, pf, 1);
        int16_t bs[16];
        memcpy(bs, ys + 4 + CIT_QK_K, sizeof bs);
        /* corr = sum_j sc_j * bsums_j: word i of the scales holds sc 4i..4i+3 */
        __m512i corr = _mm512_setzero_si512();
        __m512i hs[4];
        zheaders(b0 + 192, row_bytes, hs);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512i x = hs[i];
            __m512i ev = _mm512_srai_epi16(_mm512_slli_epi16(x, 8), 8), od = _mm512_srai_epi16(x, 8);
            corr = zacc_madd(corr, ev, _mm512_set1_epi32(pair16(bs[4 * i], bs[4 * i + 2])));
            corr = zacc_madd(corr, od, _mm512_set1_epi32(pair16(bs[4 * i + 1], bs[4 * i + 3])));
        }
        /* d: the high half of the last dword of the 16 bytes ending it */
        __m512i hdd[4];
        zheaders(b0 + 194, row_bytes, hdd);
        __m512i dd = hdd[3];
        __m512i acc[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) {
            const uint8_t *blk = b0 + (size_t)zrow_of(r) * row_bytes; /* lane r */
#if KX_VNNI
            acc[r] = zrow_q6_vnni(blk, ys + 4, pidx);
#else
            acc[r] = zrow_q6(blk, ys + 4);
#endif
        }
        __m512i sumi = _mm512_sub_epi32(zreduce16(acc), _mm512_slli_epi32(corr, 5));
        __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        float ydf;
        memcpy(&ydf, ys, 4);
        __m512 t = _mm512_mul_ps(d, _mm512_set1_ps(ydf));
        sum = _mm512_add_ps(sum, _mm512_mul_ps(t, _mm512_cvtepi32_ps(sumi)));
    }
    _mm512_storeu_ps(out, zrow_order(sum));
}
#include "kernels/x86_k_rs.h" /* kx_rows_rs: the row-order decode (VNNI) */
#define SB_AFFINE zsb_affine
#define SB_Q6 zsb_q6
#define DEC_ROWS 16 /* rows of a decode block, and its two kernels */
#define BLOCK_AFFINE zblock_affine
#define BLOCK_Q6 zblock_q6
#else
#define SB_AFFINE sb_affine
#define SB_Q6 sb_q6
#define DEC_ROWS 8
#define BLOCK_AFFINE yblock_affine
#define BLOCK_Q6 yblock_q6

/* ---- 8-row decode blocks (the 256-bit tier) ----
 * The 16-row blocks above at half the width: eight rows of one token at a
 * time, lane r = row r. Per super-block the rows' headers are loaded and
 * transposed (yheaders), each row's 256 products go into one ymm of scaled
 * partial sums (in-row scales by a byte shuffle of the row's scale bytes),
 * the eight ymm are reduced together (yreduce8), the min / bias term is a
 * vpmaddwd chain over the transposed scale bytes against the token's bsums
 * pairs, and the reference's float steps of the super-block run with each
 * lane holding its row's operations (each lane is exactly the scalar
 * sequence of sb_affine / sb_q6). In place of a horizontal sum and a scalar
 * float tail per (row, super-block). */

/* lane r = the sum of v[r]'s 8 lanes */
static KX_ALWAYS_INLINE __m256i yreduce8(const __m256i v[8])
{
    __m256i u[4], w[2];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* per 128-bit lane: rows 2i, 2i + 1, 2i, 2i + 1 */
        u[i] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* per 128-bit lane: rows 4i .. 4i + 3 */
        w[i] = _mm256_add_epi32(_mm256_unpacklo_epi64(u[2 * i], u[2 * i + 1]),
                                _mm256_unpackhi_epi64(u[2 * i], u[2 * i + 1]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(w[0], w[1], 0x20), _mm256_permute2x128_si256(w[0], w[1], 0x31));
}

/* The 16 bytes at b0 of the 8 rows b0 + r * row_bytes, transposed: lane r
 * of out[j] = dword j of row r. */
static KX_ALWAYS_INLINE void yheaders(const uint8_t *b0, size_t row_bytes, __m256i out[4])
{
    __m256i h[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) { /* row i in the low half, row i + 4 in the high half */
        const uint8_t *p = b0 + (size_t)i * row_bytes;
        h[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p)),
                                       _mm_loadu_si128((const __m128i *)(const void *)(p + 4 * row_bytes)), 1);
    }
    kx_transpose4(h, out);
}

/* The half in the low 16 bits of each lane, as a float. */
static KX_ALWAYS_INLINE __m256 yhalves(__m256i v)
{
    __m256i p = _mm256_packus_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), _mm256_setzero_si256());
    return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08)));
}

/* One row's scaled partial sums of a Q4_K / Q5_K super-block (lanes sum to
 * sumi, the same integers as sb_affine); sc8 = its 8 scale bytes. */
static KX_ALWAYS_INLINE __m256i yrow_affine(enum kx_kind kind, const uint8_t *blk, const uint8_t *yq, uint64_t sc8,
                                            const __m256i sidx[8])
{
    const __m256i scb = _mm256_set1_epi64x((long long)sc8);
    const uint8_t *qs = blk + (kind == KX_Q5K ? 48 : 16);
    __m256i hb = affine_qh(kind, blk);
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m256i a, b;
        affine_codes(kind, _mm256_loadu_si256((const __m256i *)(const void *)(qs + 32 * g)), &hb, &a, &b);
        __m256i pa = _mm256_maddubs_epi16(a, _mm256_loadu_si256((const __m256i *)(const void *)(yq + 64 * g)));
        __m256i pb = _mm256_maddubs_epi16(b, _mm256_loadu_si256((const __m256i *)(const void *)(yq + 64 * g + 32)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pa, _mm256_shuffle_epi8(scb, sidx[2 * g])));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pb, _mm256_shuffle_epi8(scb, sidx[2 * g + 1])));
    }
    return acc;
}

/* Rows w0 + r * row_bytes (r < 8) of a Q4_K / Q5_K matrix against one
 * token's Q8_K row y: out[r] = the reference's dot. */
static KX_ALWAYS_INLINE void yblock_affine(enum kx_kind kind, const uint8_t *w0, size_t row_bytes, size_t nsb,
                                           size_t pf, const uint8_t *y, float *out)
{
    const int bb = kind_bytes(kind);
    __m256i sidx[8]; /* int16 lanes: scale byte j, zero-extended */
    for (int j = 0; j < 8; j++)
        sidx[j] = _mm256_set1_epi16((short)(0x8000 | j));
    __m256 sum = _mm256_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const uint8_t *b0 = w0 + s * (size_t)bb, *ys = y + s * SB_ACT;
        kx_prefetch_rows(w0, row_bytes, s, nsb, (size_t)bb, 8, pf, 0);
        __m256i hd[4];
        yheaders(b0, row_bytes, hd);
        __m256i dd = hd[0], s_lo, s_hi, m_lo, m_hi;
        kx_scales_rows(hd[1], hd[2], hd[3], &s_lo, &s_hi, &m_lo, &m_hi);
        /* qword k of scl: the scale bytes of rows 0, 1, 4, 5, 2, 3, 6, 7 */
        uint64_t scl[8] __attribute__((aligned(32)));
        _mm256_store_si256((__m256i *)(void *)scl, _mm256_unpacklo_epi32(s_lo, s_hi));
        _mm256_store_si256((__m256i *)(void *)(scl + 4), _mm256_unpackhi_epi32(s_lo, s_hi));
        __m256i summ = kx_summ_rows(m_lo, m_hi, ys);
        __m256i acc[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            acc[r] = yrow_affine(kind, b0 + (size_t)r * row_bytes, ys + 4,
                                 scl[(r & 1) + ((r & 2) ? 4 : 0) + ((r & 4) ? 2 : 0)], sidx);
        __m256i sumi = yreduce8(acc);
        float ydf;
        memcpy(&ydf, ys, 4);
        __m256 yd = _mm256_set1_ps(ydf);
        __m256 t1 = _mm256_mul_ps(_mm256_mul_ps(yhalves(dd), yd), _mm256_cvtepi32_ps(sumi));
        __m256 t2 = _mm256_mul_ps(_mm256_mul_ps(yhalves(_mm256_srli_epi32(dd, 16)), yd), _mm256_cvtepi32_ps(summ));
        sum = _mm256_add_ps(sum, _mm256_sub_ps(t1, t2));
    }
    _mm256_storeu_ps(out, sum);
}

/* One row's partial sums of a Q6_K super-block, bias included (lanes sum to
 * sumi = sum_j sc_j * (dot(stored_j, y_j) - 32 * bsums_j), as sb_q6). The
 * scale pairs come from a byte shuffle of the row's 16 scale bytes (both
 * bytes of an int16 lane, then an arithmetic shift: sign-extended). */
static KX_ALWAYS_INLINE __m256i yrow_q6(const uint8_t *blk, const uint8_t *yq, const __m256i bs, const __m256i pidx[8])
{
    const __m128i scb128 = _mm_loadu_si128((const __m128i *)(const void *)(blk + 192));
    const __m256i scb = _mm256_broadcastsi128_si256(scb128);
    __m256i acc = _mm256_slli_epi32(_mm256_madd_epi16(bs, _mm256_cvtepi8_epi16(scb128)), 5);
    acc = _mm256_sub_epi32(_mm256_setzero_si256(), acc);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const uint8_t *yh = yq + 128 * h;
        __m256i c[4];
        q6_codes(blk, h, c);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            /* elements 128h + 32i .. +31: sub-blocks 8h + 2i (low half), 8h + 2i + 1 (high half) */
            __m256i p = _mm256_maddubs_epi16(c[i], _mm256_loadu_si256((const __m256i *)(const void *)(yh + 32 * i)));
            __m256i s = _mm256_srai_epi16(_mm256_shuffle_epi8(scb, pidx[4 * h + i]), 8);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
        }
    }
    return acc;
}

static KX_ALWAYS_INLINE void yblock_q6(const uint8_t *w0, size_t row_bytes, size_t nsb, size_t pf, const uint8_t *y,
                                       float *out)
{
    const int bb = 210;
    __m256i pidx[8]; /* both bytes of every int16 lane: scale 2k (low half), 2k + 1 (high half) */
    for (int k = 0; k < 8; k++)
        pidx[k] = _mm256_set_m128i(_mm_set1_epi8((char)(2 * k + 1)), _mm_set1_epi8((char)(2 * k)));
    __m256 sum = _mm256_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const uint8_t *b0 = w0 + s * (size_t)bb, *ys = y + s * SB_ACT;
        kx_prefetch_rows(w0, row_bytes, s, nsb, (size_t)bb, 8, pf, 1);
        const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(ys + 4 + CIT_QK_K));
        __m256i acc[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            acc[r] = yrow_q6(b0 + (size_t)r * row_bytes, ys + 4, bs, pidx);
        __m256i sumi = yreduce8(acc);
        /* d: the high half of the last dword of the 16 bytes ending at byte 210 */
        __m256i hdd[4];
        yheaders(b0 + 194, row_bytes, hdd);
        float ydf;
        memcpy(&ydf, ys, 4);
        __m256 t = _mm256_mul_ps(yhalves(_mm256_srli_epi32(hdd[3], 16)), _mm256_set1_ps(ydf));
        sum = _mm256_add_ps(sum, _mm256_mul_ps(t, _mm256_cvtepi32_ps(sumi)));
    }
    _mm256_storeu_ps(out, sum);
}
#endif

#include "kernels/x86_k_r16.h" /* KX_Q4K_R16, KX_Q6K_R16: the R16 layout's kernels */

static KX_ALWAYS_INLINE void gemm_rows_few(enum kx_kind kind, const void *w, size_t row_bytes, size_t n_in, size_t r0,
                                          size_t r1, const void *act, size_t n_tokens, float *y, size_t ldy)
{
    size_t nsb = n_in / CIT_QK_K;
    int bb = kind_bytes(kind);
    size_t r = r0;
#if KX_BITS == 512 && KX_VNNI
    /* rows one after another where the CPU asks for it (its blocks' rows must be one span) */
    const size_t rs_ahead = kx_rs_ahead();
    if (rs_ahead && nsb <= kx_rs_max_sb() && row_bytes == nsb * (size_t)bb)
        r = kx_rows_rs(kind, w, row_bytes, nsb, r0, r1, act, n_tokens, y, ldy, rs_ahead);
#endif
    /* The first block's first pf super-blocks: the blocks prefetch pf ahead, so nothing
     * asked for these, and each call (a chunk of the pool's rows) starts cold. */
    const size_t pf = kind == KX_Q6K ? (size_t)KX_PF : kx_pf_affine();
    if (r == r0 && r0 + DEC_ROWS <= r1)
        cit_prefetch_row_heads(w, row_bytes, r0, DEC_ROWS, pf * (size_t)bb);
    for (; r + DEC_ROWS <= r1; r += DEC_ROWS) {
        const uint8_t *w0 = (const uint8_t *)w + r * row_bytes;
        for (size_t t = 0; t < n_tokens; t++) {
            const uint8_t *yt = (const uint8_t *)act + t * nsb * SB_ACT;
            if (kind == KX_Q6K)
                BLOCK_Q6(w0, row_bytes, nsb, pf, yt, y + t * ldy + r);
            else
                BLOCK_AFFINE(kind, w0, row_bytes, nsb, pf, yt, y + t * ldy + r);
        }
    }
    for (; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)w + r * row_bytes;
        for (size_t t = 0; t < n_tokens; t++) {
            const uint8_t *yt = (const uint8_t *)act + t * nsb * SB_ACT;
            float sum = 0;
            for (size_t s = 0; s < nsb; s++) {
                if (kind == KX_Q6K)
                    sum += SB_Q6(wr + s * (size_t)bb, yt + s * SB_ACT);
                else
                    sum += SB_AFFINE(kind, wr + s * (size_t)bb, yt + s * SB_ACT);
            }
            y[t * ldy + r] = sum;
        }
    }
}

/* ---- many-token path ---- */

/* One row's unpacked chunk of KC super-blocks. */
struct wrow {
    uint8_t q[KC][CIT_QK_K];  /* codes, element order */
    int32_t sc[KC][16];       /* sub-block scales (8 used by Q4_K/Q5_K) */
    int32_t sc16[KC][16];     /* the same as an int16 pair (s | s << 16) */
    int32_t mp[KC][8];        /* int16 pairs against bsums pair i: (m_i, m_i) or (sc_2i, sc_2i+1) */
    float d[KC], dmin[KC];
};

static KX_ALWAYS_INLINE void unpack_row(enum kx_kind kind, const uint8_t *wr, size_t s0, size_t ns, struct wrow *o)
{
    int bb = kind_bytes(kind);
    for (size_t s = 0; s < ns; s++) {
        const uint8_t *blk = wr + (s0 + s) * (size_t)bb;
        unpack_codes(kind, blk, o->q[s]);
        if (kind == KX_Q6K) {
            const int8_t *scl = (const int8_t *)(blk + 192);
            for (int j = 0; j < 16; j++) {
                o->sc[s][j] = scl[j];
                o->sc16[s][j] = (int32_t)(((uint32_t)(uint16_t)scl[j]) * 0x10001u);
            }
            for (int i = 0; i < 8; i++)
                o->mp[s][i] = (int32_t)((uint32_t)(uint16_t)scl[2 * i] | ((uint32_t)(uint16_t)scl[2 * i + 1] << 16));
            o->d[s] = half_at(blk + 208);
            o->dmin[s] = 0;
        } else {
            uint64_t sc, m;
            k_scales(blk + 4, &sc, &m);
            for (int j = 0; j < 8; j++) {
                uint32_t scj = (uint32_t)(sc >> 8 * j) & 0xff, mj = (uint32_t)(m >> 8 * j) & 0xff;
                o->sc[s][j] = (int32_t)scj;
                o->sc16[s][j] = (int32_t)(scj * 0x10001u);
                o->mp[s][j] = (int32_t)(mj * 0x10001u);
            }
            o->d[s] = half_at(blk);
            o->dmin[s] = half_at(blk + 2);
        }
    }
}

/* KX_R rows x KX_W tokens over ns super-blocks; sumf carries each row's
 * running float sum (token lanes). */
static KX_ALWAYS_INLINE void tile(enum kx_kind kind, const struct wrow *ws, size_t ns, const uint8_t *a0,
                                  kvf sumf[KX_R])
{
    const int nsub = kind == KX_Q6K ? 16 : 8, subk = kind == KX_Q6K ? 4 : 8;
    for (size_t s = 0; s < ns; s++) {
        const uint8_t *a = a0 + s * TILE_SB;
        kvi sumi[KX_R], summ[KX_R];
#pragma GCC unroll 8
        for (int r = 0; r < KX_R; r++)
            sumi[r] = vi_zero();
        for (int j = 0; j < nsub; j++) {
#if KX_VNNI
            kvi acc[KX_R];
#pragma GCC unroll 8
            for (int r = 0; r < KX_R; r++)
                acc[r] = vi_zero();
#pragma GCC unroll 8
            for (int k = 0; k < subk; k++) {
                int kk = j * subk + k;
                kvi av = vi_load(a + kk * 4 * KX_W);
#pragma GCC unroll 8
                for (int r = 0; r < KX_R; r++)
                    acc[r] = vi_dpbusd(acc[r], vi_set1((int32_t)ld32(ws[r].q[s] + 4 * kk)), av);
            }
#pragma GCC unroll 8
            for (int r = 0; r < KX_R; r++)
                sumi[r] = vi_add(sumi[r], vi_mullo(acc[r], vi_set1(ws[r].sc[s][j])));
#else
#pragma GCC unroll 8
            for (int k = 0; k < subk; k++) {
                int kk = j * subk + k;
                kvi av = vi_load(a + kk * 4 * KX_W);
#pragma GCC unroll 8
                for (int r = 0; r < KX_R; r++)
                    sumi[r] = vi_add(sumi[r], vi_madd(vi_maddubs(vi_set1((int32_t)ld32(ws[r].q[s] + 4 * kk)), av),
                                                      vi_set1(ws[r].sc16[s][j])));
            }
#endif
        }
#pragma GCC unroll 8
        for (int r = 0; r < KX_R; r++)
            summ[r] = vi_zero();
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            kvi bv = vi_load(a + TILE_BS + i * 4 * KX_W);
#pragma GCC unroll 8
            for (int r = 0; r < KX_R; r++)
                summ[r] = vi_dpwssd(summ[r], bv, vi_set1(ws[r].mp[s][i]));
        }
        kvf yd = vf_load((const float *)(const void *)(a + TILE_D));
#pragma GCC unroll 8
        for (int r = 0; r < KX_R; r++) {
            kvf c;
            if (kind == KX_Q6K) {
                kvi t = vi_sub(sumi[r], vi_slli(summ[r], 5));
                c = vf_mul(vf_mul(vf_set1(ws[r].d[s]), yd), vf_cvt(t));
            } else {
                kvf t1 = vf_mul(vf_mul(vf_set1(ws[r].d[s]), yd), vf_cvt(sumi[r]));
                kvf t2 = vf_mul(vf_mul(vf_set1(ws[r].dmin[s]), yd), vf_cvt(summ[r]));
                c = vf_sub(t1, t2);
            }
            sumf[r] = vf_add(sumf[r], c);
        }
    }
}

/* Loop order: chunks of KC super-blocks (one for n_in <= KC * 256); within
 * a chunk, bands of token groups whose activations fit in L2 (about
 * ACT_BAND bytes); within a band, blocks of KX_R rows, unpacked once per
 * band (about 100 KiB of scratch, read from L1/L2), then every token group
 * of the band runs the whole chunk with its sums in registers. */
static KX_ALWAYS_INLINE void gemm_rows_many(enum kx_kind kind, const void *w, size_t row_bytes, size_t n_in,
                                           size_t r0, size_t r1, const void *act, size_t n_tokens, float *y,
                                           size_t ldy)
{
    size_t nsb = n_in / CIT_QK_K, groups = (n_tokens + KX_W - 1) / KX_W;
    struct wrow ws[KX_R]; /* (KX_R rows) x KC super-blocks */
    for (size_t s0 = 0; s0 < nsb; s0 += KC) {
        size_t ns = nsb - s0 < KC ? nsb - s0 : KC;
        size_t band = ACT_BAND / (ns * TILE_SB);
        band = band ? band : 1;
        for (size_t g0 = 0; g0 < groups; g0 += band) {
            size_t g1 = groups - g0 < band ? groups : g0 + band;
            for (size_t rb = r0; rb < r1; rb += KX_R) {
                size_t nr = r1 - rb < KX_R ? r1 - rb : KX_R;
                for (size_t r = 0; r < KX_R; r++) /* rows past r1 repeat the last: computed, not stored */
                    unpack_row(kind, (const uint8_t *)w + (rb + (r < nr ? r : nr - 1)) * row_bytes, s0, ns, &ws[r]);
                for (size_t g = g0; g < g1; g++) {
                    size_t t0 = g * KX_W, nt = n_tokens - t0 < KX_W ? n_tokens - t0 : KX_W;
                    kvf sumf[KX_R];
                    for (size_t r = 0; r < KX_R; r++) {
                        if (s0 == 0 || r >= nr) {
                            sumf[r] = vf_zero();
                        } else {
                            float tmp[KX_W] = {0};
                            for (size_t t = 0; t < nt; t++)
                                tmp[t] = y[(t0 + t) * ldy + rb + r];
                            sumf[r] = vf_load(tmp);
                        }
                    }
                    const uint8_t *a0 = (const uint8_t *)act + (g * nsb + s0) * TILE_SB;
                    tile(kind, ws, ns, a0, sumf);
                    for (size_t r = 0; r < nr; r++) {
                        float tmp[KX_W];
                        vf_store(tmp, sumf[r]);
                        for (size_t t = 0; t < nt; t++)
                            y[(t0 + t) * ldy + rb + r] = tmp[t];
                    }
                }
            }
        }
    }
}

/* ---- activations ---- */


static bool k_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    uint64_t per_token;
    if (!cit_mul_u64(n_in / CIT_QK_K, SB_ACT, &per_token))
        return false;
    if (n_tokens < GEMM_MIN)
        return cit_mul_u64(per_token, n_tokens, bytes);
    uint64_t padded;
    if (!cit_add_u64(n_tokens, KX_W - 1, &padded))
        return false;
    return cit_mul_u64(per_token, padded / KX_W * KX_W, bytes);
}

static void k_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)
{
    size_t nsb = n_in / CIT_QK_K;
    uint8_t *out = act;
    if (n_tokens < GEMM_MIN) {
        for (size_t t = t0; t < t1; t++) {
            for (size_t s = 0; s < nsb; s++) {
                struct cit_block_q8_k b;
                quant_sb(x + t * n_in + s * CIT_QK_K, &b);
                memcpy(out + (t * nsb + s) * SB_ACT, &b, sizeof b);
            }
        }
        return;
    }
    /* pack_group (16) is a multiple of KX_W: a call owns whole token groups. */
    size_t t_end = t1 == n_tokens ? (n_tokens + KX_W - 1) / KX_W * KX_W : t1;
    for (size_t t = t0; t < t_end; t++) {
        size_t g = t / KX_W, lane = t % KX_W;
        for (size_t s = 0; s < nsb; s++) {
            struct cit_block_q8_k b;
            if (t < n_tokens)
                quant_sb(x + t * n_in + s * CIT_QK_K, &b);
            else
                memset(&b, 0, sizeof b); /* padding lanes: d = 0, codes 0 */
            uint8_t *o = out + (g * nsb + s) * TILE_SB;
            for (int k = 0; k < 64; k++)
                memcpy(o + (k * KX_W + lane) * 4, b.qs + 4 * k, 4);
            for (int i = 0; i < 8; i++)
                memcpy(o + TILE_BS + (i * KX_W + lane) * 4, b.bsums + 2 * i, 4);
            memcpy(o + TILE_D + lane * 4, &b.d, 4);
        }
    }
}

#define KX_DEFINE(name, kind, r16)                                                                               \
    static void name##_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act, \
                            size_t n_tokens, float *y, size_t ldy)                                               \
    {                                                                                                            \
        if (r0 >= r1 || n_tokens == 0)                                                                           \
            return;                                                                                              \
        if (n_tokens < GEMM_MIN)                                                                                 \
            gemm_rows_few(kind, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);                             \
        else                                                                                                     \
            gemm_rows_many(kind, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);                            \
    }                                                                                                            \
    static const struct cit_kernel name = {.act_bytes = k_act_bytes, .pack_group = 16, \
                                           .pack = k_pack, .gemm = name##_gemm, .gemm_r16 = (r16)};

KX_DEFINE(kx_q4_k, KX_Q4K, KX_Q4K_R16)
KX_DEFINE(kx_q5_k, KX_Q5K, NULL)
KX_DEFINE(kx_q6_k, KX_Q6K, KX_Q6K_R16)

void KX_NAME(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    tab[CIT_TYPE_Q4_K] = &kx_q4_k;
    tab[CIT_TYPE_Q5_K] = &kx_q5_k;
    tab[CIT_TYPE_Q6_K] = &kx_q6_k;
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif
