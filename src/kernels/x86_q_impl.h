/* x86_q_impl.h: the AVX-512 Q4_0 / Q8_0 kernels, included by avx512_q.c
 * (XQ_VNNI 0: the u8 x s8 dot is vpmaddubsw + vpmaddwd) and
 * avx512vnni_q.c (XQ_VNNI 1: vpdpbusd). Activation formats: x86_q_common.h.
 *
 * Both paths keep the reference's float sequence per (row, token): the
 * exact int32 of each block, then sum += (float)sumi * (d_w * d_a), blocks
 * in order, in one SIMD lane.
 *
 * decode (n_tokens < XQ_SMALL), lanes = 16 weight rows: per row and chunk
 * of 4 blocks, one vector of int32 partials (128-bit lane j = block j);
 * 16 such vectors are transposed-and-summed into 4 vectors, one per block,
 * lanes = rows, and the float work is then done for 16 rows at once.
 * The 4 half scales of a row's chunk come out of the same two loads as its
 * codes (one word permute), and 16 rows' scales are transposed with two
 * more. Weight bytes are the unsigned operand: Q4_0 nibbles as they are (then
 * sumi = dot - 8 * sum(codes)); Q8_0 with VNNI: code + 128 (then
 * - 128 * sum(codes)); Q8_0 without: |w| against sign(w) * code.
 * Several tokens go in passes of up to XQ_DEC_T over each 16-row block,
 * so its weights come from memory once and from cache after. The
 * correction -K * sum(codes) is the starting value of one int32 of each
 * block's dot, so the reduction yields the exact block integer. Prefetch:
 * each row xq_pf_dist bytes ahead (set per CPU), and as many first bytes of the
 * next block's rows while this block runs (nothing else asks for them
 * early, and with 1-2 KiB rows they are a third to a half of the bytes);
 * rows of xq_seq_row_bytes or more take the whole next block in file order
 * instead (set per CPU).
 *
 * row order (Q4_0 and Q8_0 with VNNI, Q4_0 below XQ_IL_MIN tokens, rows of
 * at most xq_rs_max_blocks(), where cit_row_prefetch asks for it): the
 * decode's work with each row read whole before the next: see xq_decode_rs.
 *
 * few tokens (Q4_0 with VNNI, XQ_IL_MIN <= n_tokens < XQ_SMALL_IL), lanes =
 * 16 weight rows with the rows transposed in registers, so nothing is
 * reduced across lanes: see xq_decode_il.
 *
 * tiled (n_tokens >= XQ_SMALL), lanes = 16 tokens: XQ_R weight rows are
 * unpacked (a chunk of blocks at a time) to signed codes in a small
 * scratch with -128 * (block sum) as the starting integer; then per 4-byte
 * weight group one broadcast against the 16-token vector of activation
 * codes + 128. Without VNNI, Q8_0 uses int16 codes (word form) and
 * vpmaddwd, since (code + 128) * w would saturate vpmaddubsw. */
#ifndef CITADEL_KERNELS_X86_Q_IMPL_H
#define CITADEL_KERNELS_X86_Q_IMPL_H

#include "kernels/repack.h"
#include "kernels/x86_q_common.h"
#include "kernels/x86_zmm.h"

#ifndef XQ_VNNI
#error "define XQ_VNNI to 0 or 1 before including x86_q_impl.h"
#endif

#define XQ_INLINE static inline __attribute__((always_inline))
#ifndef XQ_R
#define XQ_R 6      /* weight rows per tile of the tiled path */
#endif
#ifndef XQ_TMAX
#define XQ_TMAX 2   /* token groups of 16 per tile */
#endif
#define XQ_KCH 64   /* blocks unpacked at a time (scratch size) */
#define XQ_Q8_ESZ (XQ_VNNI ? 1 : 2)
/* Float multiply and add as separate, explicitly rounded operations: the
 * reference's sequence; the rounding forms are never fused into an FMA,
 * whatever -ffp-contract says. */
#define XQ_RN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define XQ_MUL(a, b) _mm512_mul_round_ps(a, b, XQ_RN)
#define XQ_ADD(a, b) _mm512_add_round_ps(a, b, XQ_RN)
#ifndef XQ_PF_HINT
/* Cache level of the software prefetches: L2, not L1, which would hold one
 * of the core's few L1 fill buffers per line until memory answers (as
 * KX_PF_HINT; measured below at each use). */
#define XQ_PF_HINT _MM_HINT_T1
#endif
/* Bytes ahead in each weight row that the decode path prefetches: chosen
 * per CPU (cit_row_prefetch, kernels.h); -DXQ_PF_DIST (Q8_0) and
 * -DXQ_PF_DIST_Q4 fix them at build time, for bench/kernel_ab.c. */
XQ_INLINE size_t xq_pf_dist(const int q4)
{
#ifdef XQ_PF_DIST_Q4
    if (q4)
        return XQ_PF_DIST_Q4;
#endif
#ifdef XQ_PF_DIST
    if (!q4)
        return XQ_PF_DIST;
#endif
    const struct cit_row_prefetch *t = cit_row_prefetch();
    return q4 ? t->q4_0 : t->q8_0;
}
/* The row length from which the decode path prefetches the next 16-row
 * block in file order (cit_row_prefetch); -DXQ_SEQ_ROW_BYTES fixes it. */
XQ_INLINE size_t xq_seq_row_bytes(void)
{
#ifdef XQ_SEQ_ROW_BYTES
    return XQ_SEQ_ROW_BYTES;
#else
    return cit_row_prefetch()->seq_row_bytes;
#endif
}
/* Bytes ahead in the row-order decode's stream (xq_decode_rs), 0 where it
 * is not used (cit_row_prefetch); -DXQ_RS_AHEAD fixes it. */
XQ_INLINE size_t xq_rs_ahead(void)
{
#ifdef XQ_RS_AHEAD
    return XQ_RS_AHEAD;
#else
    return cit_row_prefetch()->row_order;
#endif
}
/* The same for Q8_0 (row_order_q8); -DXQ_RS_AHEAD_Q8 fixes it. */
XQ_INLINE size_t xq_rs_ahead_q8(void)
{
#ifdef XQ_RS_AHEAD_Q8
    return XQ_RS_AHEAD_Q8;
#else
    return cit_row_prefetch()->row_order_q8;
#endif
}
#ifndef XQ_IL_PF
#define XQ_IL_PF 512 /* the same for the few-token Q4_0 path (xq_decode_il) */
#endif

/* acc + sum over each 4-byte group of u8 * s8 (no int16 saturation for
 * the operands used here). */
XQ_INLINE __m512i xq_dot(__m512i acc, __m512i u, __m512i s)
{
#if XQ_VNNI
    return _mm512_dpbusd_epi32(acc, u, s);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

/* ---- decode path ---- */

/* qs of Q8_0 blocks b0, b0 + 1 (n = 1 or 2) of a row. */
XQ_INLINE __m512i xq_load_q8(const unsigned char *wr, size_t b0, int n)
{
    const unsigned char *p = wr + b0 * 34 + 2;
    __m512i v = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)p));
    if (n > 1)
        v = _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)(const void *)(p + 34)), 1);
    return v;
}

/* qs of Q8_0 blocks b0 .. b0 + n - 1 (n <= 4) of a row as two pair vectors:
 * v[0] blocks b0, b0 + 1; v[1] b0 + 2, b0 + 3 (zero past n). */
XQ_INLINE void xq_load_q8_4(const unsigned char *wr, size_t b0, int n, __m512i v[2])
{
    v[0] = xq_load_q8(wr, b0, n < 2 ? n : 2);
    v[1] = n > 2 ? xq_load_q8(wr, b0 + 2, n - 2) : _mm512_setzero_si512();
}

/* The 4 blocks' dots of a Q8_0 chunk from its two pair vectors (p0: blocks
 * b0, b0 + 1 in 128-bit lanes 0-1, 2-3; p1: b0 + 2, b0 + 3): block b0 + j's
 * partial sums in 128-bit lane j. */
XQ_INLINE __m512i xq_q8_join(__m512i p0, __m512i p1)
{
    return _mm512_add_epi32(_mm512_shuffle_i32x4(p0, p1, 0x88), _mm512_shuffle_i32x4(p0, p1, 0xdd));
}

/* Q4_0 blocks b0 .. b0 + n - 1 (n <= 4) of a row: the qs (block j in
 * 128-bit lane j), and in *raw the row's first 64 bytes from b0, whose words
 * 0, 9, 18, 27 are the 4 half scales (zero past n: see xq_q4_scales4).
 * Four blocks: each block's 16 qs bytes broadcast into its lane (a load and
 * a merge each), not two 64-byte loads joined by a word permute: paired on
 * an AMD EPYC (Zen 5) VM, 2 threads, from cache 1.027 (5632x2048) and 1.047
 * (2048x2048); whole TinyLlama Q4_0 tg128 at 85-92 GB/s, 8 alternating
 * pairs, median 1.024 (docs/benchmarks.md, session 15). Fewer blocks:
 * masked loads, which never touch bytes past the blocks. */
XQ_INLINE __m512i xq_load_q4(const unsigned char *wr, size_t b0, int n, __m512i *raw)
{
    const unsigned char *p = wr + b0 * 18;
    if (n == 4) {
        *raw = _mm512_loadu_si512(p);
        __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(p + 2)));
        q = _mm512_mask_broadcast_i32x4(q, 0x00f0, _mm_loadu_si128((const __m128i *)(const void *)(p + 20)));
        q = _mm512_mask_broadcast_i32x4(q, 0x0f00, _mm_loadu_si128((const __m128i *)(const void *)(p + 38)));
        return _mm512_mask_broadcast_i32x4(q, 0xf000, _mm_loadu_si128((const __m128i *)(const void *)(p + 56)));
    }
    unsigned len = 18u * (unsigned)n; /* < 64 */
    __m512i a = _mm512_maskz_loadu_epi8((__mmask64)((1ull << len) - 1), p);
    __m512i b = _mm512_maskz_loadu_epi8((__mmask64)((1ull << (len - 8)) - 1), p + 8);
    /* word 9j + 1 + w of the blocks (w < 8): from a below word 32, else word - 4 of b */
    const __m512i qidx = _mm512_set_epi16(32 + 31, 32 + 30, 32 + 29, 32 + 28, 31, 30, 29, 28, 26, 25, 24, 23,
                                          22, 21, 20, 19, 17, 16, 15, 14, 13, 12, 11, 10, 8, 7, 6, 5, 4, 3, 2, 1);
    *raw = a;
    return _mm512_permutex2var_epi16(a, qidx, b);
}

/* Four rows' half scales from their first loads (xq_load_q4's raw), in the
 * low 256 bits, row-major: word 4k + j = block j of row k. Two permutes pair
 * the rows, one insert joins the pairs; in registers, where one permute and
 * a store per row then two 64-byte loads (a store-forwarding miss) were. */
XQ_INLINE __m512i xq_q4_scales4(const __m512i raw[4])
{
    const __m512i pidx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          32 + 27, 32 + 18, 32 + 9, 32 + 0, 27, 18, 9, 0);
    __m512i x01 = _mm512_permutex2var_epi16(raw[0], pidx, raw[1]);
    __m512i x23 = _mm512_permutex2var_epi16(raw[2], pidx, raw[3]);
    return _mm512_inserti32x4(x01, _mm512_castsi512_si128(x23), 1);
}

/* The 4 half scales of Q8_0 blocks b0 .. b0 + n - 1 in the low 64 bits. */
XQ_INLINE __m128i xq_load_q8_d(const unsigned char *wr, size_t b0, int n)
{
    const unsigned char *p = wr + b0 * 34;
    __m512i a, b;
    if (n == 4) {
        a = _mm512_loadu_si512(p);
        b = _mm512_loadu_si512(p + 64);
    } else {
        unsigned len = 34u * (unsigned)n;
        a = _mm512_maskz_loadu_epi8(len >= 64 ? ~(__mmask64)0 : (__mmask64)((1ull << len) - 1), p);
        b = len > 64 ? _mm512_maskz_loadu_epi8((__mmask64)((1ull << (len - 64)) - 1), p + 64)
                     : _mm512_setzero_si512();
    }
    const __m512i didx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 51, 34, 17, 0);
    return _mm512_castsi512_si128(_mm512_permutex2var_epi16(a, didx, b));
}

/* 16 rows x 4 half scales (row-major, 64-bit per row: rows 0-7 in lo, 8-15
 * in hi) -> dw[j] = 16 rows' block j, widened. */
XQ_INLINE void xq_scales16_v(__m512i lo, __m512i hi, __m512 dw[4])
{
    /* output word m: block j = m / 16 (+ 2 for the second), row i = m % 16: source word 4i + j */
    const __m512i i01 = _mm512_set_epi16(61, 57, 53, 49, 45, 41, 37, 33, 29, 25, 21, 17, 13, 9, 5, 1, 60, 56, 52, 48,
                                         44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0);
    const __m512i i23 = _mm512_set_epi16(63, 59, 55, 51, 47, 43, 39, 35, 31, 27, 23, 19, 15, 11, 7, 3, 62, 58, 54, 50,
                                         46, 42, 38, 34, 30, 26, 22, 18, 14, 10, 6, 2);
    __m512i d01 = _mm512_permutex2var_epi16(lo, i01, hi), d23 = _mm512_permutex2var_epi16(lo, i23, hi);
    dw[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(d01));
    dw[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(d01, 1));
    dw[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(d23));
    dw[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(d23, 1));
}
XQ_INLINE void xq_scales16(const uint64_t hrow[16], __m512 dw[4])
{
    xq_scales16_v(_mm512_loadu_si512(hrow), _mm512_loadu_si512(hrow + 8), dw);
}

/* Four rows' partial vectors -> per 128-bit lane j: the 4 rows' sums of lane j. */
XQ_INLINE __m512i xq_reduce4(__m512i p0, __m512i p1, __m512i p2, __m512i p3)
{
    __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(p0, p1), _mm512_unpackhi_epi32(p0, p1));
    __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(p2, p3), _mm512_unpackhi_epi32(p2, p3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}

/* Rows [r0, min(r0 + 16, r1)) for tokens tok0 .. tok0 + NT - 1. */
XQ_INLINE void xq_decode(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                         size_t tok0, float *y, size_t ldy, const int NT, const int q4, size_t ahead,
                         const unsigned char *pf, size_t pf_nrows, const int seq)
{
    const size_t nb = n_in / CIT_QK, bsz = q4 ? 18 : 34;
    const int K = q4 ? 8 : (XQ_VNNI ? 128 : 0);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const int8_t *codes[XQ_DEC_T];
    const float *da[XQ_DEC_T];
    const int32_t *asum[XQ_DEC_T];
    xq_dec_tokens(act, n_in, tok0, NT, codes, da, asum);
    {
        const size_t rb = r0;
        size_t nr = r1 - rb < 16 ? r1 - rb : 16;
        const unsigned char *rows[16];
        for (size_t i = 0; i < 16; i++)
            rows[i] = (const unsigned char *)w + (rb + (i < nr ? i : nr - 1)) * row_bytes;
        __m512 facc[XQ_DEC_T];
        for (int t = 0; t < NT; t++)
            facc[t] = _mm512_setzero_ps();
        /* The next block (pf_nrows rows from pf), a share per chunk. With seq, all of it in
         * file order (measured on Zen 4 against the per-row form, from memory:
         * docs/benchmarks.md, session 5); the caller then passes ahead 0 for every block but
         * its first, which the block before has fetched. Otherwise its rows' first `ahead`
         * bytes, which nothing else asks for early since the per-row prefetch runs `ahead`
         * bytes ahead (measured: Q4_0 at n_in 2048, one thread, from memory, 6.7 -> 8.5 GB/s). */
        const size_t nsteps = (nb + 3) / 4;
        const size_t rps = (pf_nrows + nsteps - 1) / nsteps;                   /* rows per chunk */
        const size_t nlines = (pf_nrows * row_bytes + 63) / 64, lps = (nlines + nsteps - 1) / nsteps;
        for (size_t b0 = 0; b0 < nb; b0 += 4) {
            const int nblk = nb - b0 < 4 ? (int)(nb - b0) : 4;
            const size_t pr = b0 / 4 * rps, pl = b0 / 4 * lps;
            if (seq && pl < nlines)
                for (size_t l = pl; l < pl + lps && l < nlines; l++)
                    _mm_prefetch((const char *)pf + 64 * l, XQ_PF_HINT);
            else if (!seq && pr < pf_nrows)
                cit_prefetch_row_heads(pf, row_bytes, pr, rps < pf_nrows - pr ? rps : pf_nrows - pr, ahead);
            uint64_t hrow[16];   /* Q8_0's scales, row-major */
            __m512i q4s[4];      /* Q4_0's, 4 rows each (xq_q4_scales4) */
            __m512i vsum[XQ_DEC_T][4];
            /* -K * asum of each block, in one int32 of the block's lanes: the dot's starting value,
             * so the reduction yields the exact block integer with nothing to subtract after */
            __m512i cinit[XQ_DEC_T][2];
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int sh = q4 ? 3 : 7;
                if (q4) {
                    __mmask16 m = (__mmask16)(0x1111u & ((1u << (4 * nblk)) - 1));
                    cinit[t][0] = _mm512_sub_epi32(
                        _mm512_setzero_si512(),
                        _mm512_slli_epi32(_mm512_maskz_expandloadu_epi32(m, asum[t] + b0), sh));
                    cinit[t][1] = cinit[t][0];
                } else {
                    __mmask16 m0 = (__mmask16)(nblk >= 2 ? 0x0101u : 0x0001u);
                    __mmask16 m1 = (__mmask16)(nblk >= 4 ? 0x0101u : (nblk == 3 ? 0x0001u : 0));
                    cinit[t][0] = K ? _mm512_sub_epi32(_mm512_setzero_si512(),
                                                       _mm512_slli_epi32(
                                                           _mm512_maskz_expandloadu_epi32(m0, asum[t] + b0), sh))
                                    : _mm512_setzero_si512();
                    cinit[t][1] = K ? _mm512_sub_epi32(
                                          _mm512_setzero_si512(),
                                          _mm512_slli_epi32(_mm512_maskz_expandloadu_epi32(m1, asum[t] + b0 + 2), sh))
                                    : _mm512_setzero_si512();
                }
            }
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                __m512i part[XQ_DEC_T][4], raw[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const unsigned char *wr = rows[4 * g + k];
                    for (size_t off = 0; ahead && off < 4 * bsz; off += 64)
                        _mm_prefetch((const char *)wr + b0 * bsz + ahead + off, XQ_PF_HINT);
                    if (q4) {
                        __m512i v = xq_load_q4(wr, b0, nblk, &raw[k]);
                        __m512i lo = _mm512_and_si512(v, m4);
                        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
#pragma GCC unroll 4
                        for (int t = 0; t < NT; t++) {
                            const int8_t *a = codes[t] + b0 / 4 * 128;
                            __m512i alo = _mm512_loadu_si512(a), ahi = _mm512_loadu_si512(a + 64);
#if XQ_VNNI
                            part[t][k] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(cinit[t][0], lo, alo),
                                                             hi, ahi);
#else
                            __m512i s16 = _mm512_add_epi16(_mm512_maddubs_epi16(lo, alo),
                                                           _mm512_maddubs_epi16(hi, ahi));
                            part[t][k] = _mm512_add_epi32(_mm512_madd_epi16(s16, _mm512_set1_epi16(1)), cinit[t][0]);
#endif
                        }
                    } else {
                        __m512i v[2];
                        xq_load_q8_4(wr, b0, nblk, v);
                        _mm_storel_epi64((__m128i *)(void *)&hrow[4 * g + k], xq_load_q8_d(wr, b0, nblk));
#if XQ_VNNI
                        __m512i u0 = _mm512_xor_si512(v[0], _mm512_set1_epi8((char)0x80));
                        __m512i u1 = _mm512_xor_si512(v[1], _mm512_set1_epi8((char)0x80));
#else
                        __m512i u0 = _mm512_abs_epi8(v[0]), u1 = _mm512_abs_epi8(v[1]);
                        __mmask64 n0 = _mm512_movepi8_mask(v[0]), n1 = _mm512_movepi8_mask(v[1]);
#endif
#pragma GCC unroll 4
                        for (int t = 0; t < NT; t++) {
                            const int8_t *a = codes[t] + b0 / 4 * 128;
                            __m512i a0 = _mm512_loadu_si512(a), a1 = _mm512_loadu_si512(a + 64);
#if !XQ_VNNI
                            a0 = _mm512_mask_sub_epi8(a0, n0, _mm512_setzero_si512(), a0);
                            a1 = _mm512_mask_sub_epi8(a1, n1, _mm512_setzero_si512(), a1);
#endif
                            part[t][k] = xq_q8_join(xq_dot(cinit[t][0], u0, a0), xq_dot(cinit[t][1], u1, a1));
                        }
                    }
                }
                if (q4)
                    q4s[g] = xq_q4_scales4(raw);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++)
                    vsum[t][g] = xq_reduce4(part[t][0], part[t][1], part[t][2], part[t][3]);
            }
            __m512 dw[4];
            if (q4)
                xq_scales16_v(_mm512_inserti64x4(q4s[0], _mm512_castsi512_si256(q4s[1]), 1),
                              _mm512_inserti64x4(q4s[2], _mm512_castsi512_si256(q4s[3]), 1), dw);
            else
                xq_scales16(hrow, dw);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m512i s[4];
                zmm_transpose4x128(vsum[t], s);
                for (int j = 0; j < nblk; j++) {
                    __m512i si = s[j];
                    __m512 sc = XQ_MUL(dw[j], _mm512_set1_ps(da[t][b0 + (size_t)j]));
                    facc[t] = XQ_ADD(facc[t], XQ_MUL(_mm512_cvtepi32_ps(si), sc));
                }
            }
        }
        __mmask16 mask = (__mmask16)((1u << nr) - 1);
        for (int t = 0; t < NT; t++)
            _mm512_mask_storeu_ps(y + (tok0 + (size_t)t) * ldy + rb, mask, facc[t]);
    }
}

#if XQ_VNNI
/* The rows the row-order decode takes, in blocks: the CPU's
 * (cit_row_prefetch()->row_order_blocks), at most what the scratch holds,
 * XQ_RS_MAXQ groups of 16 (n_in 20480). Paired on Zen 4 from memory
 * against the 16 streams: Q4_0 rows of 1152 and 3168 bytes read
 * 0.985-1.09x as fast by shape, so rows under 4096 bytes (227 blocks);
 * Q8_0 stayed with the streams there (rows of 2176 bytes 0.96-1.04x,
 * 5984 bytes 0.94-0.97x). On Zen 5 both take rows of up to 640 blocks
 * (Q4_0 4096x11008 1.06x, Q8_0 1.12x from memory at the high level). */
#define XQ_RS_MAXQ 40
XQ_INLINE size_t xq_rs_max_blocks(void)
{
    const size_t b = cit_row_prefetch()->row_order_blocks;
    return b < 16 * XQ_RS_MAXQ ? b : 16 * XQ_RS_MAXQ;
}

/* Q4_0 (q4) or Q8_0 rows [r0, min(r0 + 16, r1)) for tokens tok0 .. tok0 +
 * NT - 1, each row read whole before the next: the block's bytes in file order, one
 * stream, which the hardware prefetcher follows, helped by prefetches of
 * every line `ahead` bytes on (16 rows read side by side are 16 streams; measured
 * on Zen 4: docs/benchmarks.md, session 6). Per row and group of 16 blocks:
 * the 4-block chunks' dots as xq_decode's, their 4 partial vectors reduced
 * together (lane j, dword c: block 4c + j), put in block order, less
 * 8 * asum (Q8_0: its codes + 128 against the token's, less 128 * asum),
 * and the reference's first two float steps with lanes = blocks:
 * (float)sumi * (d_w * d_a). Those products go to a scratch; a 16x16
 * transpose per group then gives lanes = rows for the sums, added in block
 * order as the reference adds them. */
XQ_INLINE void xq_decode_rs(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                            size_t tok0, float *y, size_t ldy, const int NT, size_t ahead, const int q4)
{
    const size_t nb = n_in / CIT_QK, nq = (nb + 15) / 16, bsz = q4 ? 18 : 34;
    const size_t nr = r1 - r0 < 16 ? r1 - r0 : 16;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    /* block 4c + j of a reduced group sits at dword 4j + c */
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    _Alignas(64) float prod[XQ_DEC_T][XQ_RS_MAXQ][16][16]; /* [token][group][row][block of the group]: 120 KiB */
    const int8_t *codes[XQ_DEC_T];
    const float *da[XQ_DEC_T];
    const int32_t *asum[XQ_DEC_T];
    xq_dec_tokens(act, n_in, tok0, NT, codes, da, asum);
    for (size_t i = 0; i < 16; i++) {
        const unsigned char *wr = (const unsigned char *)w + (r0 + (i < nr ? i : nr - 1)) * row_bytes;
        for (size_t q = 0; q < nq; q++) {
            __m512i part[XQ_DEC_T][4], raw[4];
            __m128i d8[4]; /* Q8_0: each chunk's 4 half scales (low 64 bits) */
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const size_t b0 = 16 * q + 4 * (size_t)c;
                if (b0 >= nb) {
                    raw[c] = _mm512_setzero_si512(); /* scales 0 */
                    d8[c] = _mm_setzero_si128();
                    for (int t = 0; t < NT; t++)
                        part[t][c] = _mm512_setzero_si512();
                    continue;
                }
                const int nblk = nb - b0 < 4 ? (int)(nb - b0) : 4;
                /* the lines of the chunk's first and last byte, ahead bytes on: every line of
                 * the stream, some twice. A loop over the lines that start in the chunk (1 or
                 * 2, by alignment) issued each once but cost a sixth of the decode from cache
                 * (Zen 4; its exit is hard to predict), and from memory (2 threads, 2 MiB
                 * pages) this form read 1.03x at n_in 2048 and 1.16-1.20x at 5632 (session 8,
                 * docs/benchmarks.md). */
                const char *st = (const char *)wr + b0 * bsz + ahead;
                _mm_prefetch(st, XQ_PF_HINT);
                if (!q4) /* 136 bytes: up to 3 lines */
                    _mm_prefetch(st + 64, XQ_PF_HINT);
                _mm_prefetch(st + bsz * (size_t)nblk - 1, XQ_PF_HINT);
                if (!q4) {
                    /* blocks b0, b0 + 1 in p0's 128-bit lanes 0-1, 2-3 (b0 + 2, b0 + 3 in p1), their
                     * codes + 128 against the token's: lane j of the sum below is block b0 + j */
                    __m512i v[2];
                    xq_load_q8_4(wr, b0, nblk, v);
                    const __m512i u0 = _mm512_xor_si512(v[0], _mm512_set1_epi8((char)0x80));
                    const __m512i u1 = _mm512_xor_si512(v[1], _mm512_set1_epi8((char)0x80));
                    d8[c] = xq_load_q8_d(wr, b0, nblk);
#pragma GCC unroll 4
                    for (int t = 0; t < NT; t++) {
                        const int8_t *a = codes[t] + b0 / 4 * 128;
                        const __m512i z = _mm512_setzero_si512();
                        part[t][c] = xq_q8_join(xq_dot(z, u0, _mm512_loadu_si512(a)),
                                                xq_dot(z, u1, _mm512_loadu_si512(a + 64)));
                    }
                    continue;
                }
                __m512i v = xq_load_q4(wr, b0, nblk, &raw[c]);
                __m512i lo = _mm512_and_si512(v, m4);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const int8_t *a = codes[t] + b0 / 4 * 128;
                    part[t][c] = _mm512_dpbusd_epi32(
                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(a)), hi,
                        _mm512_loadu_si512(a + 64));
                }
            }
            /* the row's 16 half scales in block order */
            const __m512 dw =
                q4 ? _mm512_cvtph_ps(_mm512_castsi512_si256(xq_q4_scales4(raw)))
                   : _mm512_cvtph_ps(_mm256_inserti128_si256(
                         _mm256_castsi128_si256(_mm_unpacklo_epi64(d8[0], d8[1])), _mm_unpacklo_epi64(d8[2], d8[3]), 1));
            const size_t nv = nb - 16 * q < 16 ? nb - 16 * q : 16;
            const __mmask16 m = (__mmask16)((1u << nv) - 1);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m512i si = xq_reduce4(part[t][0], part[t][1], part[t][2], part[t][3]);
                si = _mm512_permutexvar_epi32(order, si);
                si = _mm512_sub_epi32(si, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, asum[t] + 16 * q), q4 ? 3 : 7));
                __m512 sc = XQ_MUL(dw, _mm512_maskz_loadu_ps(m, da[t] + 16 * q));
                _mm512_store_ps(prod[t][q][i], XQ_MUL(_mm512_cvtepi32_ps(si), sc));
            }
        }
    }
    for (int t = 0; t < NT; t++) {
        __m512 facc = _mm512_setzero_ps();
        for (size_t q = 0; q < nq; q++) {
            __m512i rows[16], col[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                rows[i] = _mm512_load_si512(prod[t][q][i]);
            zmm_transpose16(rows, col);
            const size_t nv = nb - 16 * q < 16 ? nb - 16 * q : 16;
            for (size_t b = 0; b < nv; b++)
                facc = XQ_ADD(facc, _mm512_castsi512_ps(col[b]));
        }
        _mm512_mask_storeu_ps(y + (tok0 + (size_t)t) * ldy + r0, (__mmask16)((1u << nr) - 1), facc);
    }
}
#endif

/* ---- tiled path ---- */

/* XQ_R rows x T groups of 16 tokens over kn blocks; facc carries the sums. */
XQ_INLINE void xq_tile(const unsigned char *ws, const int32_t *corr, const float *wd, size_t kn,
                       const unsigned char *a0, size_t gbytes, const int T, const int esz, __m512 facc[XQ_R][2])
{
    const size_t bs = xq_blk_stride(esz), wstride = (size_t)XQ_KCH * 32 * (size_t)esz;
    for (size_t b = 0; b < kn; b++) {
        const unsigned char *ab = a0 + b * bs;
        const unsigned char *wb = ws + b * 32 * (size_t)esz;
        __m512i acc[XQ_R][2];
#pragma GCC unroll 8
        for (int r = 0; r < XQ_R; r++)
#pragma GCC unroll 2
            for (int t = 0; t < T; t++)
                acc[r][t] = _mm512_set1_epi32(corr[(size_t)r * XQ_KCH + b]);
#pragma GCC unroll 16
        for (int k = 0; k < 8 * esz; k++) {
            __m512i a[2];
#pragma GCC unroll 2
            for (int t = 0; t < T; t++)
                a[t] = _mm512_loadu_si512(ab + (size_t)t * gbytes + (size_t)k * 64);
#pragma GCC unroll 8
            for (int r = 0; r < XQ_R; r++) {
                int32_t wv;
                memcpy(&wv, wb + (size_t)r * wstride + (size_t)k * 4, 4);
                __m512i wbc = _mm512_set1_epi32(wv);
#pragma GCC unroll 2
                for (int t = 0; t < T; t++)
                    acc[r][t] = esz == 1 ? xq_dot(acc[r][t], a[t], wbc)
                                         : _mm512_add_epi32(acc[r][t], _mm512_madd_epi16(a[t], wbc));
            }
        }
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            __m512 dat = _mm512_loadu_ps(ab + (size_t)t * gbytes + 512 * (size_t)esz);
#pragma GCC unroll 8
            for (int r = 0; r < XQ_R; r++) {
                __m512 sc = XQ_MUL(_mm512_set1_ps(wd[(size_t)r * XQ_KCH + b]), dat);
                facc[r][t] = XQ_ADD(facc[r][t], XQ_MUL(_mm512_cvtepi32_ps(acc[r][t]), sc));
            }
        }
    }
}

XQ_INLINE void xq_tiled(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                        size_t n_tokens, float *y, size_t ldy, const int q4, const int esz)
{
    const size_t nb = n_in / CIT_QK, gbytes = xq_group_bytes(n_in, esz), bs = xq_blk_stride(esz);
    const size_t ngroups = (n_tokens + XQ_GROUP - 1) / XQ_GROUP;
    _Alignas(64) unsigned char ws[XQ_R * XQ_KCH * 32 * 2];
    int32_t corr[XQ_R * XQ_KCH];
    float wd[XQ_R * XQ_KCH];
    for (size_t rg = r0; rg < r1; rg += XQ_R) {
        size_t nr = r1 - rg < XQ_R ? r1 - rg : XQ_R;
        for (size_t b0 = 0; b0 < nb; b0 += XQ_KCH) {
            size_t kn = nb - b0 < XQ_KCH ? nb - b0 : XQ_KCH;
            for (size_t r = 0; r < XQ_R; r++) {
                const unsigned char *wr = (const unsigned char *)w + (rg + (r < nr ? r : nr - 1)) * row_bytes;
                xq_unpack(wr, b0, kn, q4, esz, ws + r * XQ_KCH * 32 * (size_t)esz, corr + r * XQ_KCH,
                          wd + r * XQ_KCH);
            }
            for (size_t g = 0; g < ngroups; g += XQ_TMAX) {
                const int T = ngroups - g >= XQ_TMAX ? XQ_TMAX : 1;
                __m512 facc[XQ_R][2];
                float buf[XQ_GROUP];
                for (size_t r = 0; r < XQ_R; r++)
                    for (int t = 0; t < T; t++) {
                        size_t tok0 = (g + (size_t)t) * XQ_GROUP;
                        size_t nv = n_tokens - tok0 < XQ_GROUP ? n_tokens - tok0 : XQ_GROUP;
                        for (size_t l = 0; l < XQ_GROUP; l++)
                            buf[l] = b0 > 0 && r < nr && l < nv ? y[(tok0 + l) * ldy + rg + r] : 0.0f;
                        facc[r][t] = _mm512_loadu_ps(buf);
                    }
                const unsigned char *a0 = (const unsigned char *)act + g * gbytes + b0 * bs;
                if (T == 2 && XQ_TMAX == 2)
                    xq_tile(ws, corr, wd, kn, a0, gbytes, 2, esz, facc);
                else
                    xq_tile(ws, corr, wd, kn, a0, gbytes, 1, esz, facc);
                for (size_t r = 0; r < nr; r++)
                    for (int t = 0; t < T; t++) {
                        size_t tok0 = (g + (size_t)t) * XQ_GROUP;
                        size_t nv = n_tokens - tok0 < XQ_GROUP ? n_tokens - tok0 : XQ_GROUP;
                        _mm512_storeu_ps(buf, facc[r][t]);
                        for (size_t l = 0; l < nv; l++)
                            y[(tok0 + l) * ldy + rg + r] = buf[l];
                    }
            }
        }
    }
}

#if XQ_VNNI
/* Q4_0 for a few tokens (XQ_IL_MIN .. XQ_SMALL_IL - 1), lanes = 16 weight rows
 * with no horizontal reduction: each block's 16 rows are transposed in
 * registers so that vector g holds dword g of the block's codes for every
 * row (lane = row); one vpdpbusd with a broadcast activation dword then
 * adds 4 products to each row's own lane, and 8 of them (4 dwords x low
 * and high nibbles) give each row's exact block integer, started at
 * -8 * (block sum of the activation codes). The rows' block loads, the
 * transpose and the nibble split are done once per block for up to
 * XQ_IL_T tokens, which is what makes this cheaper than the decode path's
 * per-token reductions once there are several tokens. Float work per
 * block as the reference: sum += (float)sumi * (d_w * d_a). */
#define XQ_IL_MIN 4
#define XQ_Q4_SMALL XQ_SMALL_IL /* Q4_0 stays in the decode format up to 16 tokens */
#define XQ_IL_T 8 /* tokens per pass, <= 8 (measured: one pass of 8 beats two of 4) */

XQ_INLINE void xq_decode_il(const void *w, size_t row_bytes, size_t n_in, size_t rb, size_t r1, const void *act,
                            size_t tok0, float *y, size_t ldy, const int NT)
{
    const size_t nb = n_in / CIT_QK;
    const size_t nr = r1 - rb < 16 ? r1 - rb : 16;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const unsigned char *rows[16];
    int32_t off[16];
    for (size_t i = 0; i < 16; i++) {
        rows[i] = (const unsigned char *)w + (rb + (i < nr ? i : nr - 1)) * row_bytes;
        off[i] = (int32_t)(rows[i] - rows[0]); /* < 16 rows of a matrix: fits */
    }
    const __m512i voff = _mm512_loadu_si512(off);
    const int8_t *codes[8];
    const float *da[8];
    const int32_t *asum[8];
    __m512 facc[8];
    for (int t = 0; t < NT; t++) {
        codes[t] = xq_dec_codes(act, n_in, tok0 + (size_t)t);
        da[t] = xq_dec_d(act, n_in, tok0 + (size_t)t);
        asum[t] = xq_dec_asum(act, n_in, tok0 + (size_t)t);
        facc[t] = _mm512_setzero_ps();
    }
    for (size_t b = 0; b < nb; b++) {
        const size_t bo = b * 18;
        if ((b & 3) == 0)
            for (int i = 0; i < 16; i++)
                _mm_prefetch((const char *)rows[i] + bo + XQ_IL_PF, XQ_PF_HINT);
        /* A[q] lane l = the 16 code bytes of row q + 4l */
        __m512i A[4];
        for (int q = 0; q < 4; q++) {
            __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)(rows[q] + bo + 2)));
            v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[q + 4] + bo + 2)), 1);
            v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[q + 8] + bo + 2)), 2);
            A[q] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[q + 12] + bo + 2)), 3);
        }
        /* 4x4 dword transpose in each 128-bit lane: T[g] dword 4l + q = dword g of row 4l + q */
        __m512i t0 = _mm512_unpacklo_epi32(A[0], A[1]), t1 = _mm512_unpackhi_epi32(A[0], A[1]);
        __m512i t2 = _mm512_unpacklo_epi32(A[2], A[3]), t3 = _mm512_unpackhi_epi32(A[2], A[3]);
        __m512i T[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2), _mm512_unpacklo_epi64(t1, t3),
                        _mm512_unpackhi_epi64(t1, t3)};
        __m512i lo[4], hi[4];
        for (int g = 0; g < 4; g++) {
            lo[g] = _mm512_and_si512(T[g], m4);
            hi[g] = _mm512_and_si512(_mm512_srli_epi16(T[g], 4), m4);
        }
        /* the 16 half scales (the block's first 2 bytes; the gather reads 4, all inside the block) */
        __m512i dd = _mm512_i32gather_epi32(voff, (const void *)(rows[0] + bo), 1);
        __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        const size_t co = b / 4 * 128 + (b % 4) * 16;
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            const int8_t *a = codes[t] + co;
            /* two chains (low and high nibbles) halve the dependent vpdpbusd latency */
            __m512i acc = _mm512_set1_epi32(-8 * asum[t][b]), acc2 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                int32_t al, ah;
                memcpy(&al, a + 4 * g, 4);
                memcpy(&ah, a + 64 + 4 * g, 4);
                acc = _mm512_dpbusd_epi32(acc, lo[g], _mm512_set1_epi32(al));
                acc2 = _mm512_dpbusd_epi32(acc2, hi[g], _mm512_set1_epi32(ah));
            }
            acc = _mm512_add_epi32(acc, acc2);
            __m512 sc = XQ_MUL(dw, _mm512_set1_ps(da[t][b]));
            facc[t] = XQ_ADD(facc[t], XQ_MUL(_mm512_cvtepi32_ps(acc), sc));
        }
    }
    __mmask16 mask = (__mmask16)((1u << nr) - 1);
    for (int t = 0; t < NT; t++)
        _mm512_mask_storeu_ps(y + (tok0 + (size_t)t) * ldy + rb, mask, facc[t]);
}

/* Tokens [t0, t0 + n), 1 <= n <= 8, over one 16-row block. */
static void xq_decode_il_n(const void *w, size_t row_bytes, size_t n_in, size_t rb, size_t r1, const void *act,
                           size_t t0, float *y, size_t ldy, size_t n)
{
    switch (n) {
    case 8: xq_decode_il(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 8); break;
    case 7: xq_decode_il(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 7); break;
    case 6: xq_decode_il(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 6); break;
    case 5: xq_decode_il(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 5); break;
    case 4: xq_decode_il(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 4); break;
    case 3: xq_decode_il(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 3); break;
    case 2: xq_decode_il(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 2); break;
    default: xq_decode_il(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 1); break;
    }
}
#else
#define XQ_Q4_SMALL XQ_SMALL
#endif

/* ---- R16 path (Q4_0 interleaved by 16 rows, kernels/repack.h) ----
 * Decode-format activations, lanes = the 16 rows of a group. Per block one
 * 64-byte load holds 4 code bytes of every row, so each vpdpbusd against a
 * broadcast activation dword adds to the right lane: no row shuffles, no
 * reduction, one half-scale load for 16 rows. Per (row, token) the block
 * integer starts at -K * asum, so it is exact; the float steps are the
 * reference's, as in xq_decode. */
#define XQ_R16_T 4 /* tokens per pass over a group (its qs stay in L1 / L2 between passes) */
#ifndef XQ_R16_MAX
#define XQ_R16_MAX 32 /* most tokens the R16 path takes natively (then: through rows); paired runs from
                       * memory against the file layout, Q4_0: 17 tokens 1.30x, 24 1.05x, 32 0.94x (through
                       * rows: 0.84x); Q8_0: 12 1.58x, 16 1.33x, 32 0.99x */
#endif
#ifndef XQ_R16_PF
/* Bytes ahead in the group's code stream that the R16 path prefetches into
 * L2 (XQ_PF_HINT; its scales 1/8 as far). Paired runs from memory, 2
 * threads (bench/kernel_ab.c, KAB_R16=2), then into L1: 1024 lost 12%, 2048
 * 2%, 8192 5-6% against 4096; into L2 (with the L1 prefetch below), 2048
 * lost 6-12% and 8192 3-7%. */
#define XQ_R16_PF 4096
#endif
#ifndef XQ_R16_PF_L1
/* ... and then, closer, into L1. Paired from memory (2 MiB pages, 2 threads) against the
 * L2 prefetch alone: 2048 +5-14% (2048x2048, 5632x2048, 2048x5632), 1536 +8-10%, 3072
 * +3%, 1024 +4-6%, 512 even. */
#define XQ_R16_PF_L1 2048
#endif

/* The R16 kernels' prefetches for block codes q (nq lines) and its half
 * scales at d: the codes XQ_R16_PF ahead into L2 and XQ_R16_PF_L1 into
 * L1, the scales as far ahead in their own stream (gq code bytes per
 * block, 32 scale bytes). */
XQ_INLINE void xq_r16_prefetch(const unsigned char *q, const unsigned char *d, int nq, size_t gq)
{
    for (int k = 0; k < nq; k++) {
        _mm_prefetch((const char *)q + XQ_R16_PF + 64 * k, XQ_PF_HINT);
        _mm_prefetch((const char *)q + XQ_R16_PF_L1 + 64 * k, _MM_HINT_T0);
    }
    _mm_prefetch((const char *)d + XQ_R16_PF * 32 / gq, XQ_PF_HINT);
}

/* Block b's codes in the decode format: Q4_0 elements 0..15 at this offset, 16..31 at it + 64. */
XQ_INLINE size_t xq_r16_aoff(size_t b, const int q4) { return (b >> 2) * 128 + (b & 3) * (q4 ? 16 : 32); }

/* The start of a block's integer in the decode format, from its activation
 * sum: -K * asum (K = 8 for Q4_0, 128 for Q8_0), so the dots against
 * unsigned codes end exact. */
XQ_INLINE __m512i xq_r16_dec_init(int32_t asum, const int q4)
{
    return _mm512_set1_epi32(-asum * (1 << (q4 ? 3 : 7))); /* (a negative asum must not be shifted in C) */
}

/* Lanes [lo, hi) of the group at grp (nb blocks) for tokens tok0 ..
 * tok0 + NT - 1 into yg (lane r: yg[t * ldy + r]). Decode-format
 * activations (tiled 0): Q4_0 nibbles against the codes from -8 * asum;
 * Q8_0 (VNNI only) code + 128 against the codes from -128 * asum.
 * Tiled-format activations (tiled 1, code + 128 for 16 tokens side by side):
 * the weights as signed codes (Q4_0: nibble - 8) against them, minus 128 *
 * the block's weight sum (one dot against 128s per block, shared by the
 * tokens). Either way the block integer is exact. */
XQ_INLINE void xq_r16_group(const unsigned char *grp, size_t nb, size_t n_in, unsigned lo, unsigned hi,
                            const void *act, size_t tok0, float *yg, size_t ldy, const int NT, const int q4,
                            const int tiled)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), bias = _mm512_set1_epi8((char)0x80), eight = _mm512_set1_epi8(8);
    const size_t gq = q4 ? 256 : 512; /* a block's code bytes in the group */
    const int nq = q4 ? 4 : 8;
    const unsigned char *dreg = grp + gq * nb; /* the half scales, after the codes */
    const int8_t *codes[XQ_R16_T];
    const float *da[XQ_R16_T];
    const int32_t *asum[XQ_R16_T];
    const unsigned char *tb[XQ_R16_T]; /* tiled: the token's dword 0 of block 0 */
    __m512 facc[XQ_R16_T];
    for (int t = 0; t < NT; t++) {
        const size_t tk = tok0 + (size_t)t;
        if (tiled) {
            tb[t] = (const unsigned char *)act + tk / XQ_GROUP * xq_group_bytes(n_in, 1) + 4 * (tk % XQ_GROUP);
        } else {
            codes[t] = xq_dec_codes(act, n_in, tk);
            da[t] = xq_dec_d(act, n_in, tk);
            asum[t] = xq_dec_asum(act, n_in, tk);
        }
        facc[t] = _mm512_setzero_ps();
    }
    for (size_t b = 0; b < nb; b++) {
        /* q4: cw[k] low nibbles (elements 4k..), cw[4 + k] high (16 + 4k..); q8: cw[k] elements 4k..;
         * unsigned for the decode format, signed for the tiled one */
        __m512i cw[8];
        const unsigned char *q = grp + gq * b;
        xq_r16_prefetch(q, dreg + 32 * b, nq, gq);
#pragma GCC unroll 8
        for (int k = 0; k < nq; k++) {
            __m512i v = _mm512_loadu_si512(q + 64 * k);
            if (q4) {
                cw[k] = _mm512_and_si512(v, m4);
                cw[4 + k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                if (tiled) {
                    cw[k] = _mm512_sub_epi8(cw[k], eight);
                    cw[4 + k] = _mm512_sub_epi8(cw[4 + k], eight);
                }
            } else {
                cw[k] = tiled ? v : _mm512_xor_si512(v, bias);
            }
        }
        __m512i negc = _mm512_setzero_si512(); /* tiled: -128 * the rows' weight sums of the block */
        if (tiled) {
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++)
                negc = xq_dot(negc, bias, cw[k]);
            negc = _mm512_sub_epi32(_mm512_setzero_si512(), negc);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(dreg + 32 * b)));
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            /* two chains so a block is not one long vpdpbusd dependency */
            __m512i s0, s1 = _mm512_setzero_si512();
            float dat;
            if (tiled) {
                const unsigned char *a = tb[t] + b * xq_blk_stride(1); /* dword k at a + 64 k */
                s0 = negc;
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    s0 = xq_dot(s0, _mm512_broadcastd_epi32(_mm_loadu_si32(a + 64 * k)), cw[k]);
                    s1 = xq_dot(s1, _mm512_broadcastd_epi32(_mm_loadu_si32(a + 64 * (4 + k))), cw[4 + k]);
                }
                memcpy(&dat, a + 512, 4);
            } else {
                s0 = xq_r16_dec_init(asum[t][b], q4);
                const int8_t *a = codes[t] + xq_r16_aoff(b, q4);
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const int8_t *a1 = q4 ? a + 64 + 4 * k : a + 16 + 4 * k;
                    s0 = xq_dot(s0, cw[k], _mm512_broadcastd_epi32(_mm_loadu_si32(a + 4 * k)));
                    s1 = xq_dot(s1, cw[4 + k], _mm512_broadcastd_epi32(_mm_loadu_si32(a1)));
                }
                dat = da[t][b];
            }
            __m512 sc = XQ_MUL(dw, _mm512_set1_ps(dat));
            facc[t] = XQ_ADD(facc[t], XQ_MUL(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), sc));
        }
    }
    const __mmask16 mask = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
    for (int t = 0; t < NT; t++)
        _mm512_mask_storeu_ps(yg + (tok0 + (size_t)t) * ldy, mask, facc[t]);
}

/* Two whole groups, ga and gb (nb blocks each), for one token in the decode
 * format into ya and yb: the two are two streams from memory at once
 * (cit_r16_decode_pairs). Each block of each group is unpacked and dotted
 * before the next is loaded, so the loads of the two streams interleave
 * with little held in registers. Paired against one group at a time (one
 * token, 2 threads, TinyLlama's shapes, Intel host) Q4_0 +4-6%, Q8_0 +1-5%;
 * this order against unpacking both groups' blocks before the dots (AMD
 * EPYC host, 2 MiB pages, each round split by the plain read's level of
 * the moment, 34 / 51-58 GB/s): Q4_0 5632x2048 1.012 / 1.033, 2048x2048
 * 1.017 / 1.027, 256x2048 1.014 (low level only), Q8_0 5632x2048 1.012 /
 * 1.047. The integers and float steps are xq_r16_group's. */
XQ_INLINE void xq_r16_pair_dec(const unsigned char *ga, const unsigned char *gb, size_t nb, size_t n_in,
                               const void *act, float *ya, float *yb, const int q4)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), bias = _mm512_set1_epi8((char)0x80);
    const size_t gq = q4 ? 256 : 512;
    const int nq = q4 ? 4 : 8;
    const int8_t *codes = xq_dec_codes(act, n_in, 0);
    const float *da = xq_dec_d(act, n_in, 0);
    const int32_t *asum = xq_dec_asum(act, n_in, 0);
    const unsigned char *const grps[2] = {ga, gb};
    __m512 facc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t b = 0; b < nb; b++) {
        const int8_t *a = codes + xq_r16_aoff(b, q4);
        const __m512 dat = _mm512_set1_ps(da[b]);
#pragma GCC unroll 2
        for (int g = 0; g < 2; g++) {
            const unsigned char *q = grps[g] + gq * b, *dreg = grps[g] + gq * nb;
            xq_r16_prefetch(q, dreg + 32 * b, nq, gq);
            __m512i s0 = xq_r16_dec_init(asum[b], q4), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const int8_t *a1 = q4 ? a + 64 + 4 * k : a + 16 + 4 * k;
                __m512i c0, c1;
                if (q4) {
                    const __m512i v = _mm512_loadu_si512(q + 64 * k);
                    c0 = _mm512_and_si512(v, m4);
                    c1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                } else {
                    c0 = _mm512_xor_si512(_mm512_loadu_si512(q + 64 * k), bias);
                    c1 = _mm512_xor_si512(_mm512_loadu_si512(q + 64 * (4 + k)), bias);
                }
                s0 = xq_dot(s0, c0, _mm512_broadcastd_epi32(_mm_loadu_si32(a + 4 * k)));
                s1 = xq_dot(s1, c1, _mm512_broadcastd_epi32(_mm_loadu_si32(a1)));
            }
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(dreg + 32 * b)));
            facc[g] = XQ_ADD(facc[g], XQ_MUL(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), XQ_MUL(dw, dat)));
        }
    }
    _mm512_storeu_ps(ya, facc[0]);
    _mm512_storeu_ps(yb, facc[1]);
}

static void xq_q4_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy);
static void xq_q8_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy);

/* gemm_r16: natively up to XQ_R16_MAX tokens, in passes of up to XQ_R16_T
 * tokens over each group (its codes stay in L1 / L2 between passes), from
 * either activation format; larger batches (prompts) through rows
 * (cit_r16_gemm_rows), where the tiled kernel unpacks each weight once for
 * many tokens. */
struct xq_r16_ctx {
    size_t nb, n_in, ldy;
    const void *act;
    float *y;
    int tiled;
};

XQ_INLINE void xq_r16_pass(const unsigned char *grp, size_t g0, unsigned lo, unsigned hi, size_t t0, size_t n,
                           const struct xq_r16_ctx *c, const int q4)
{
#define XQ_R16_PASS(nt)                                                                                              \
    (c->tiled ? xq_r16_group(grp, c->nb, c->n_in, lo, hi, c->act, t0, c->y + g0, c->ldy, nt, q4, 1)                   \
              : xq_r16_group(grp, c->nb, c->n_in, lo, hi, c->act, t0, c->y + g0, c->ldy, nt, q4, 0))
    switch (n) {
    case 4: XQ_R16_PASS(4); break;
    case 3: XQ_R16_PASS(3); break;
    case 2: XQ_R16_PASS(2); break;
    default: XQ_R16_PASS(1); break;
    }
#undef XQ_R16_PASS
}
static void xq_r16_pass_q4(const unsigned char *grp, size_t g0, unsigned lo, unsigned hi, size_t t0, size_t n,
                           const void *ctx)
{
    xq_r16_pass(grp, g0, lo, hi, t0, n, ctx, 1);
}
/* Two whole groups for one token in the decode format (cit_r16_decode_pairs). */
static void xq_r16_pair_q4(const unsigned char *ga, size_t a0, const unsigned char *gb, size_t b0, const void *ctx)
{
    const struct xq_r16_ctx *c = ctx;
    xq_r16_pair_dec(ga, gb, c->nb, c->n_in, c->act, c->y + a0, c->y + b0, 1);
}
#if XQ_VNNI /* without VNNI, code + 128 against the codes would saturate vpmaddubsw: Q8_0 is not read as R16 */
static void xq_r16_pair_q8(const unsigned char *ga, size_t a0, const unsigned char *gb, size_t b0, const void *ctx)
{
    const struct xq_r16_ctx *c = ctx;
    xq_r16_pair_dec(ga, gb, c->nb, c->n_in, c->act, c->y + a0, c->y + b0, 0);
}
static void xq_r16_pass_q8(const unsigned char *grp, size_t g0, unsigned lo, unsigned hi, size_t t0, size_t n,
                           const void *ctx)
{
    xq_r16_pass(grp, g0, lo, hi, t0, n, ctx, 0);
}
#define XQ_R16_PASS_Q8 xq_r16_pass_q8
#define XQ_R16_PAIR_Q8 xq_r16_pair_q8
#else
#define XQ_R16_PASS_Q8 NULL
#define XQ_R16_PAIR_Q8 NULL
#endif

XQ_INLINE void xq_gemm_r16(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                           size_t n_tokens, float *y, size_t ldy, const int q4)
{
    if (n_tokens > XQ_R16_MAX) {
        cit_r16_gemm_rows(q4 ? xq_q4_gemm : xq_q8_gemm, q4 ? CIT_TYPE_Q4_0 : CIT_TYPE_Q8_0, w, row_bytes, n_in, r0,
                          r1, act, n_tokens, y, ldy);
        return;
    }
    const struct xq_r16_ctx c = {n_in / CIT_QK, n_in, ldy, act, y, n_tokens >= (q4 ? XQ_Q4_SMALL : XQ_SMALL)};
    if (n_tokens == 1)
        cit_r16_decode_pairs(w, row_bytes, r0, r1, q4 ? xq_r16_pass_q4 : XQ_R16_PASS_Q8,
                             q4 ? xq_r16_pair_q4 : XQ_R16_PAIR_Q8, &c);
    else
        cit_r16_passes(w, row_bytes, r0, r1, n_tokens, XQ_R16_T, q4 ? xq_r16_pass_q4 : XQ_R16_PASS_Q8, &c);
}
static void xq_q4_gemm_r16(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                           size_t n_tokens, float *y, size_t ldy)
{
    xq_gemm_r16(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, 1);
}
#if XQ_VNNI
static void xq_q8_gemm_r16(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                           size_t n_tokens, float *y, size_t ldy)
{
    xq_gemm_r16(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, 0);
}
#define XQ_Q8_GEMM_R16 xq_q8_gemm_r16
#else
#define XQ_Q8_GEMM_R16 NULL
#endif
static_assert(XQ_R16_T == 4, "xq_q4_gemm_r16 instantiates 1 to 4 tokens");

/* ---- the kernels ---- */

XQ_INLINE void xq_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy, const int q4)
{
    if (n_tokens >= (q4 ? XQ_Q4_SMALL : XQ_SMALL)) {
        xq_tiled(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, q4, q4 ? 1 : XQ_Q8_ESZ);
        return;
    }
#if XQ_VNNI
    if (q4 && n_tokens >= XQ_IL_MIN) {
        /* passes of at most XQ_IL_T tokens, as even as possible */
        const size_t passes = (n_tokens + XQ_IL_T - 1) / XQ_IL_T;
        for (size_t rb = r0; rb < r1; rb += 16)
            for (size_t p = 0, t0 = 0; p < passes; p++) {
                size_t n = (n_tokens - t0) / (passes - p);
                xq_decode_il_n(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, n);
                t0 += n;
            }
        return;
    }
#endif
#if XQ_VNNI
    /* On CPUs where it was measured (cit_row_prefetch): each row whole before the next */
    const size_t rs_ahead = q4 ? xq_rs_ahead() : xq_rs_ahead_q8();
    if (rs_ahead && n_in / CIT_QK <= xq_rs_max_blocks()) {
        /* n_tokens < XQ_IL_MIN for Q4_0 (one pass); Q8_0 in passes of at most 3 */
        for (size_t rb = r0; rb < r1; rb += 16)
            for (size_t t0 = 0, n; t0 < n_tokens; t0 += n) {
                n = n_tokens - t0 < 3 ? n_tokens - t0 : 3;
                if (n == 3)
                    xq_decode_rs(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 3, rs_ahead, q4);
                else if (n == 2)
                    xq_decode_rs(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 2, rs_ahead, q4);
                else
                    xq_decode_rs(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 1, rs_ahead, q4);
            }
        return;
    }
    static_assert(XQ_IL_MIN == 4, "Q4_0 reaches the row-order dispatch above with 1 to 3 tokens, one pass");
#endif
    /* decode: each 16-row block once from memory, for up to XQ_DEC_T tokens at a time */
    /* The first block's row heads: nothing before this call asked for them, and each call
     * (a chunk of the pool's rows) starts cold. Measured on Zen 4, Q4_0 256x2048 at 1024 bytes
     * ahead, paired against 256 bytes without them: 0.91 without, 1.03 with. */
    const size_t ahead = xq_pf_dist(q4), seq_min = xq_seq_row_bytes();
    /* long rows, one token: the next block in file order, and each row's bytes ahead only in
     * the call's first block, which no block before fetched */
    const bool seq = n_tokens == 1 && seq_min && row_bytes >= seq_min;
    cit_prefetch_row_heads(w, row_bytes, r0, r1 - r0 < 16 ? r1 - r0 : 16, ahead);
    for (size_t rb = r0; rb < r1; rb += 16) {
        const size_t rows_ahead = seq && rb > r0 ? 0 : ahead;
        /* the next block is prefetched during the first pass */
        const size_t nx = rb + 16 < r1 ? (r1 - rb - 16 < 16 ? r1 - rb - 16 : 16) : 0;
        const unsigned char *pf = (const unsigned char *)w + (nx ? (rb + 16) * row_bytes : 0);
        for (size_t t0 = 0, n; t0 < n_tokens; t0 += n) {
            n = n_tokens - t0 == 4 ? 2 : (n_tokens - t0 < 3 ? n_tokens - t0 : 3); /* 4 = 2 + 2, not 3 + 1 */
            size_t pfn = t0 == 0 ? nx : 0;
            /* seq (n 1) a constant in each instance: the per-row form's code stays as it was */
            if (n == 3)
                xq_decode(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 3, q4, rows_ahead, pf, pfn, 0);
            else if (n == 2)
                xq_decode(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 2, q4, rows_ahead, pf, pfn, 0);
            else if (seq)
                xq_decode(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 1, q4, rows_ahead, pf, pfn, 1);
            else
                xq_decode(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 1, q4, rows_ahead, pf, pfn, 0);
        }
    }
}
static_assert(XQ_DEC_T == 3, "the decode dispatch above instantiates 1 to 3 tokens");

static bool xq_q4_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    return xq_act_bytes(n_in, n_tokens, 1, XQ_Q4_SMALL, bytes);
}
static void xq_q4_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)
{
    xq_pack(x, n_in, n_tokens, t0, t1, act, true, 1, XQ_Q4_SMALL);
}
static void xq_q4_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy)
{
    xq_gemm(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, 1);
}
static bool xq_q8_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    return xq_act_bytes(n_in, n_tokens, XQ_Q8_ESZ, XQ_SMALL, bytes);
}
static void xq_q8_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)
{
    xq_pack(x, n_in, n_tokens, t0, t1, act, false, XQ_Q8_ESZ, XQ_SMALL);
}
static void xq_q8_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy)
{
    xq_gemm(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, 0);
}

static const struct cit_kernel xq_k_q4_0 = {.act_bytes = xq_q4_act_bytes,
                                           .pack_group = XQ_GROUP,
                                           .pack = xq_q4_pack,
                                           .gemm = xq_q4_gemm,
                                           .gemm_r16 = xq_q4_gemm_r16};
static const struct cit_kernel xq_k_q8_0 = {.act_bytes = xq_q8_act_bytes,
                                           .pack_group = XQ_GROUP,
                                           .pack = xq_q8_pack,
                                           .gemm = xq_q8_gemm,
                                           .gemm_r16 = XQ_Q8_GEMM_R16};

#endif
