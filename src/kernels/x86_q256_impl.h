/* x86_q256_impl.h: Q4_0 and Q8_0 matmul kernels for the 256-bit tiers,
 * written once and included by avx2_q.c and avx2vnni_q.c, which set
 *   X2_VNNI    1: the int8 dots are AVX-VNNI's vpdpbusd / vpdpwssd (VEX);
 *              0: vpmaddubsw + vpmaddwd, with operands that cannot saturate
 *              int16 (the integers are the same either way);
 *   X2_NAME    the registration function's name;
 *   X2_TARGET  the tier's instruction sets, for the target pragma.
 * Same two paths and activation formats as the AVX-512 kernels
 * (x86_q_common.h, x86_q_impl.h), 8 lanes wide:
 *
 * decode (n_tokens < XQ_SMALL), lanes = 8 weight rows: per row and pair of
 * blocks one vector of int32 partials (128-bit lane = block), 8 rows
 * transposed-and-summed into one vector per block; Q4_0 nibbles against
 * the codes (minus 8 * sum(codes)), Q8_0 |w| against sign(w) * code;
 * up to XQ_DEC_T tokens per pass over each 8-row block.
 *
 * tiled (n_tokens >= XQ_SMALL), lanes = 8 tokens: XQ2_R rows unpacked to
 * signed codes per chunk of blocks, each 4-byte (Q4_0, and Q8_0 with VNNI:
 * code + 128 against the weight byte) or 2-word (Q8_0 without VNNI: int16
 * codes, vpmaddwd) group broadcast against a 16-token group held in two
 * vectors. */
#ifndef CITADEL_KERNELS_X86_Q256_IMPL_H
#define CITADEL_KERNELS_X86_Q256_IMPL_H
#if !defined(X2_VNNI) || !defined(X2_NAME) || !defined(X2_TARGET)
#error "define X2_VNNI, X2_NAME and X2_TARGET before including x86_q256_impl.h"
#endif
/* The build gives the including file its -m flags; the target pragmas keep
 * it compiling for its tier wherever those are missing. */
#define X2_DO_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define X2_PUSH_TARGET(t) X2_DO_PRAGMA(clang attribute push(__attribute__((target(t))), apply_to = function))
X2_PUSH_TARGET(X2_TARGET)
#elif defined(__GNUC__)
#define X2_PUSH_TARGET(t) X2_DO_PRAGMA(GCC target(t))
#pragma GCC push_options
X2_PUSH_TARGET(X2_TARGET)
#endif
#include "kernels/repack.h"
#include "kernels/x86_q_common.h"

#define X2_INLINE static inline __attribute__((always_inline))
#ifndef XQ2_R
#define XQ2_R 4 /* weight rows per tile of the tiled path */
#endif
/* Q8_0's tiled form: with VNNI, code + 128 against the weight bytes as Q4_0
 * (vpdpbusd sums in int32, nothing saturates); without, int16 words. */
#define XQ2_Q8_ESZ (X2_VNNI ? 1 : 2)
#define XQ2_KCH 64  /* blocks unpacked at a time */
/* Bytes ahead in each row that the decode path prefetches: about four
 * chunks of 4 blocks of the type (bench/kernel_ab.c on the 2-core VM, from
 * memory: Q4_0 at 256 against 512 +5-10%, 128 and 768 lost; Q8_0 best at
 * 512, 256 lost 4%). */
#ifndef XQ2_PF_HINT
#define XQ2_PF_HINT _MM_HINT_T1 /* into L2: see XQ_PF_HINT in x86_q_impl.h */
#endif
#ifndef XQ2_PF_Q4
#define XQ2_PF_Q4 256
#endif
#ifndef XQ2_PF_Q8
#define XQ2_PF_Q8 512
#endif

/* a * b rounded, kept apart from any following add (no FMA contraction). */
X2_INLINE __m256 x2_mul(__m256 a, __m256 b)
{
    __m256 p = _mm256_mul_ps(a, b);
    __asm__("" : "+x"(p));
    return p;
}

/* acc + the u8 x s8 products of u and s summed by fours: vpdpbusd, or
 * vpmaddubsw + vpmaddwd against ones (the callers' operands keep the int16
 * pair sums clear of saturation, so the integers are the same). */
X2_INLINE __m256i x2_dpbusd(__m256i acc, __m256i u, __m256i s)
{
#if X2_VNNI
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* acc + the s16 x s16 products of a and b summed by pairs. */
X2_INLINE __m256i x2_dpwssd(__m256i acc, __m256i a, __m256i b)
{
#if X2_VNNI
    return _mm256_dpwssd_avx_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

/* ---- decode path ---- */

X2_INLINE __m256i x2_load2x128(const unsigned char *p0, const unsigned char *p1, int n)
{
    __m256i v = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p0));
    if (n > 1)
        v = _mm256_inserti128_si256(v, _mm_loadu_si128((const __m128i *)(const void *)p1), 1);
    return v;
}

/* Four rows' partial vectors -> per 128-bit lane j: the 4 rows' sums of lane j. */
X2_INLINE __m256i x2_reduce4(__m256i p0, __m256i p1, __m256i p2, __m256i p3)
{
    __m256i a = _mm256_add_epi32(_mm256_unpacklo_epi32(p0, p1), _mm256_unpackhi_epi32(p0, p1));
    __m256i b = _mm256_add_epi32(_mm256_unpacklo_epi32(p2, p3), _mm256_unpackhi_epi32(p2, p3));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}

/* Rows [r0, min(r0 + 8, r1)) for tokens tok0 .. tok0 + NT - 1. */
X2_INLINE void x2_decode(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                         size_t tok0, float *y, size_t ldy, const int NT, const int q4)
{
    const size_t nb = n_in / CIT_QK, bsz = q4 ? 18 : 34;
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const int8_t *codes[XQ_DEC_T];
    const float *da[XQ_DEC_T];
    const int32_t *asum[XQ_DEC_T];
    xq_dec_tokens(act, n_in, tok0, NT, codes, da, asum);
    {
        const size_t rb = r0;
        size_t nr = r1 - rb < 8 ? r1 - rb : 8;
        const unsigned char *rows[8];
        for (size_t i = 0; i < 8; i++)
            rows[i] = (const unsigned char *)w + (rb + (i < nr ? i : nr - 1)) * row_bytes;
        __m256 facc[XQ_DEC_T];
        for (int t = 0; t < NT; t++)
            facc[t] = _mm256_setzero_ps();
        for (size_t b0 = 0; b0 < nb; b0 += 4) {
            const int nblk = nb - b0 < 4 ? (int)(nb - b0) : 4;
            uint16_t hs[4][8];
            __m256i vsum[XQ_DEC_T][2][2]; /* [token][row quad][block pair] */
#pragma GCC unroll 2
            for (int g = 0; g < 2; g++) {
                __m256i part[XQ_DEC_T][2][4]; /* [token][block pair][row] */
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    const unsigned char *wr = rows[4 * g + k];
                    for (size_t off = 0; off < 4 * bsz; off += 64)
                        _mm_prefetch((const char *)wr + b0 * bsz + (q4 ? XQ2_PF_Q4 : XQ2_PF_Q8) + off, XQ2_PF_HINT);
                    for (int j = 0; j < nblk; j++)
                        memcpy(&hs[j][4 * g + k], wr + (b0 + (size_t)j) * bsz, 2);
#pragma GCC unroll 2
                    for (int h = 0; h < 2; h++) {
                        int n = nblk - 2 * h; /* blocks in this pair, may be <= 0 */
                        if (n <= 0) {
                            for (int t = 0; t < NT; t++)
                                part[t][h][k] = _mm256_setzero_si256();
                            continue;
                        }
                        const unsigned char *p = wr + (b0 + 2 * (size_t)h) * bsz + 2;
                        if (q4) {
                            __m256i v = x2_load2x128(p, p + 18, n);
                            __m256i lo = _mm256_and_si256(v, m4);
                            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
#pragma GCC unroll 4
                            for (int t = 0; t < NT; t++) {
                                const int8_t *a = codes[t] + b0 / 4 * 128 + 32 * h;
                                __m256i alo = _mm256_loadu_si256((const __m256i *)(const void *)a);
                                __m256i ahi = _mm256_loadu_si256((const __m256i *)(const void *)(a + 64));
                                /* the two halves' pair sums added in int16 (<= 4 * 15 * 127),
                                 * one vpmaddwd; with VNNI too: two chained vpdpbusd made
                                 * Q4_0 tg128 2-3% slower (docs/benchmarks.md, session 21) */
                                __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, alo),
                                                               _mm256_maddubs_epi16(hi, ahi));
                                part[t][h][k] = _mm256_madd_epi16(s16, ones);
                            }
                        } else {
                            __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)p);
                            __m256i v1 = n > 1 ? _mm256_loadu_si256((const __m256i *)(const void *)(p + 34))
                                               : _mm256_setzero_si256();
                            __m256i u0 = _mm256_sign_epi8(v0, v0), u1 = _mm256_sign_epi8(v1, v1);
#pragma GCC unroll 4
                            for (int t = 0; t < NT; t++) {
                                const int8_t *a = codes[t] + b0 / 4 * 128 + 64 * h;
                                __m256i a0 = _mm256_loadu_si256((const __m256i *)(const void *)a);
                                __m256i a1 = _mm256_loadu_si256((const __m256i *)(const void *)(a + 32));
                                __m256i p0 = x2_dpbusd(_mm256_setzero_si256(), u0, _mm256_sign_epi8(a0, v0));
                                __m256i p1 = x2_dpbusd(_mm256_setzero_si256(), u1, _mm256_sign_epi8(a1, v1));
                                part[t][h][k] = _mm256_add_epi32(_mm256_permute2x128_si256(p0, p1, 0x20),
                                                                 _mm256_permute2x128_si256(p0, p1, 0x31));
                            }
                        }
                    }
                }
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++)
                    for (int h = 0; h < 2; h++)
                        vsum[t][g][h] = x2_reduce4(part[t][h][0], part[t][h][1], part[t][h][2], part[t][h][3]);
            }
            __m256 dw[4];
            for (int j = 0; j < nblk; j++)
                dw[j] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)hs[j]));
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                __m256i s[4];
                for (int h = 0; h < 2; h++) {
                    s[2 * h] = _mm256_permute2x128_si256(vsum[t][0][h], vsum[t][1][h], 0x20);
                    s[2 * h + 1] = _mm256_permute2x128_si256(vsum[t][0][h], vsum[t][1][h], 0x31);
                }
                for (int j = 0; j < nblk; j++) {
                    __m256i si = s[j];
                    if (q4)
                        si = _mm256_sub_epi32(si, _mm256_set1_epi32(8 * asum[t][b0 + (size_t)j]));
                    __m256 sc = x2_mul(dw[j], _mm256_set1_ps(da[t][b0 + (size_t)j]));
                    facc[t] = _mm256_add_ps(facc[t], x2_mul(_mm256_cvtepi32_ps(si), sc));
                }
            }
        }
        for (int t = 0; t < NT; t++) {
            if (nr == 8) {
                _mm256_storeu_ps(y + (tok0 + (size_t)t) * ldy + rb, facc[t]);
            } else {
                float buf[8];
                _mm256_storeu_ps(buf, facc[t]);
                memcpy(y + (tok0 + (size_t)t) * ldy + rb, buf, nr * sizeof(float));
            }
        }
    }
}

/* ---- tiled path ---- */

/* XQ2_R rows x one group of 16 tokens (two vectors) over kn blocks. */
X2_INLINE void x2_tile(const unsigned char *ws, const int32_t *corr, const float *wd, size_t kn,
                       const unsigned char *a0, const int esz, __m256 facc[XQ2_R][2])
{
    const size_t bs = xq_blk_stride(esz), wstride = (size_t)XQ2_KCH * 32 * (size_t)esz;
    for (size_t b = 0; b < kn; b++) {
        const unsigned char *ab = a0 + b * bs;
        const unsigned char *wb = ws + b * 32 * (size_t)esz;
        __m256i acc[XQ2_R][2];
#pragma GCC unroll 4
        for (int r = 0; r < XQ2_R; r++)
            acc[r][0] = acc[r][1] = _mm256_set1_epi32(corr[(size_t)r * XQ2_KCH + b]);
#pragma GCC unroll 16
        for (int k = 0; k < 8 * esz; k++) {
            __m256i a[2];
            a[0] = _mm256_loadu_si256((const __m256i *)(const void *)(ab + (size_t)k * 64));
            a[1] = _mm256_loadu_si256((const __m256i *)(const void *)(ab + (size_t)k * 64 + 32));
#pragma GCC unroll 4
            for (int r = 0; r < XQ2_R; r++) {
                int32_t wv;
                memcpy(&wv, wb + (size_t)r * wstride + (size_t)k * 4, 4);
                __m256i wbc = _mm256_set1_epi32(wv);
                for (int h = 0; h < 2; h++)
                    acc[r][h] = esz == 1 ? x2_dpbusd(acc[r][h], a[h], wbc) : x2_dpwssd(acc[r][h], a[h], wbc);
            }
        }
        for (int h = 0; h < 2; h++) {
            __m256 dat = _mm256_loadu_ps((const float *)(const void *)(ab + 512 * (size_t)esz + 32 * (size_t)h));
#pragma GCC unroll 4
            for (int r = 0; r < XQ2_R; r++) {
                __m256 sc = x2_mul(_mm256_set1_ps(wd[(size_t)r * XQ2_KCH + b]), dat);
                facc[r][h] = _mm256_add_ps(facc[r][h], x2_mul(_mm256_cvtepi32_ps(acc[r][h]), sc));
            }
        }
    }
}

X2_INLINE void x2_tiled(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                        size_t n_tokens, float *y, size_t ldy, const int q4, const int esz)
{
    const size_t nb = n_in / CIT_QK, gbytes = xq_group_bytes(n_in, esz), bs = xq_blk_stride(esz);
    const size_t ngroups = (n_tokens + XQ_GROUP - 1) / XQ_GROUP;
    _Alignas(32) unsigned char ws[XQ2_R * XQ2_KCH * 32 * 2];
    int32_t corr[XQ2_R * XQ2_KCH];
    float wd[XQ2_R * XQ2_KCH];
    for (size_t rg = r0; rg < r1; rg += XQ2_R) {
        size_t nr = r1 - rg < XQ2_R ? r1 - rg : XQ2_R;
        for (size_t b0 = 0; b0 < nb; b0 += XQ2_KCH) {
            size_t kn = nb - b0 < XQ2_KCH ? nb - b0 : XQ2_KCH;
            for (size_t r = 0; r < XQ2_R; r++) {
                const unsigned char *wr = (const unsigned char *)w + (rg + (r < nr ? r : nr - 1)) * row_bytes;
                xq_unpack(wr, b0, kn, q4, esz, ws + r * XQ2_KCH * 32 * (size_t)esz, corr + r * XQ2_KCH,
                          wd + r * XQ2_KCH);
            }
            for (size_t g = 0; g < ngroups; g++) {
                size_t tok0 = g * XQ_GROUP;
                size_t nv = n_tokens - tok0 < XQ_GROUP ? n_tokens - tok0 : XQ_GROUP;
                __m256 facc[XQ2_R][2];
                float buf[XQ_GROUP];
                for (size_t r = 0; r < XQ2_R; r++) {
                    for (size_t l = 0; l < XQ_GROUP; l++)
                        buf[l] = b0 > 0 && r < nr && l < nv ? y[(tok0 + l) * ldy + rg + r] : 0.0f;
                    facc[r][0] = _mm256_loadu_ps(buf);
                    facc[r][1] = _mm256_loadu_ps(buf + 8);
                }
                x2_tile(ws, corr, wd, kn, (const unsigned char *)act + g * gbytes + b0 * bs, esz, facc);
                for (size_t r = 0; r < nr; r++) {
                    _mm256_storeu_ps(buf, facc[r][0]);
                    _mm256_storeu_ps(buf + 8, facc[r][1]);
                    for (size_t l = 0; l < nv; l++)
                        y[(tok0 + l) * ldy + rg + r] = buf[l];
                }
            }
        }
    }
}

/* ---- R16 path (Q4_0 interleaved by 16 rows, kernels/repack.h) ----
 * Decode format, lanes = 8 rows: each 64-byte piece of a group's block holds
 * 4 code bytes of all 16 rows, rows 0-7 in its first 32 bytes and 8-15 in
 * the second, so a vpmaddubsw against a broadcast activation dword adds
 * into the right row's lane pair. A block's eight vpmaddubsw results are
 * summed in int16 (each <= 2 * 15 * 127, eight of them <= 30480: no
 * overflow), then one vpmaddwd gives the row's exact block integer before
 * the -8 * asum. Float steps as x2_decode. */
#ifndef XQ2_R16_PF
/* Bytes ahead in the group's code stream that the R16 path prefetches (its
 * scales 1/8 as far). Paired runs from memory (bench/kernel_ab.c, KAB_R16=2):
 * 1024 lost 10-13% and 2048 4-7% against 4096; 6144 was even, 8192 lost 4-7%. */
#define XQ2_R16_PF 4096
#endif
#ifndef XQ2_R16_PF_L1
#define XQ2_R16_PF_L1 2048 /* ... and then, closer, into L1 (as XQ_R16_PF_L1 in x86_q_impl.h); paired against
                           * none at 4 shapes: +2-9%, 1024 +3-6% */
#endif

/* Lanes [lo, hi) of the G groups at grp[0 .. G - 1] (G = 2: two groups in
 * lockstep, cit_r16_decode_pairs) for tokens tok0 .. tok0 + NT - 1 into
 * yg[g] (lane r: yg[g][t * ldy + r]). */
X2_INLINE void x2_r16_group(const unsigned char *const grps[2], size_t nb, size_t n_in, unsigned lo, unsigned hi,
                            const void *act, size_t tok0, float *const ygs[2], size_t ldy, const int NT, const int G)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
#if !X2_VNNI
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    const int8_t *codes[XQ_DEC_T];
    const float *da[XQ_DEC_T];
    const int32_t *asum[XQ_DEC_T];
    __m256 facc[2][XQ_DEC_T][2];
    for (int t = 0; t < NT; t++) {
        codes[t] = xq_dec_codes(act, n_in, tok0 + (size_t)t);
        da[t] = xq_dec_d(act, n_in, tok0 + (size_t)t);
        asum[t] = xq_dec_asum(act, n_in, tok0 + (size_t)t);
        for (int g = 0; g < G; g++)
            facc[g][t][0] = facc[g][t][1] = _mm256_setzero_ps();
    }
    for (size_t b = 0; b < nb; b++) {
        const size_t aoff = (b >> 2) * 128 + (b & 3) * 16; /* block b's codes in the decode format */
        for (int g = 0; g < G; g++) {
            const unsigned char *q = grps[g] + 256 * b, *dreg = grps[g] + 256 * nb;
            for (int k = 0; k < 4; k++) {
                _mm_prefetch((const char *)q + XQ2_R16_PF + 64 * k, XQ2_PF_HINT);
                if (XQ2_R16_PF_L1)
                    _mm_prefetch((const char *)q + XQ2_R16_PF_L1 + 64 * k, _MM_HINT_T0);
            }
            _mm_prefetch((const char *)dreg + 32 * b + XQ2_R16_PF / 8, XQ2_PF_HINT);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i bsum[XQ_DEC_T]; /* the block's sums: int16 pairs, or int32 with VNNI */
                for (int t = 0; t < NT; t++)
                    bsum[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(q + 64 * k + 32 * h));
                    __m256i cl = _mm256_and_si256(v, m4), ch = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
#pragma GCC unroll 3
                    for (int t = 0; t < NT; t++) {
                        const int8_t *a = codes[t] + aoff + 4 * k;
                        __m256i al = _mm256_broadcastd_epi32(_mm_loadu_si32(a));
                        __m256i ah = _mm256_broadcastd_epi32(_mm_loadu_si32(a + 64));
#if X2_VNNI
                        bsum[t] = x2_dpbusd(x2_dpbusd(bsum[t], cl, al), ch, ah);
#else
                        bsum[t] = _mm256_add_epi16(bsum[t], _mm256_add_epi16(_mm256_maddubs_epi16(cl, al),
                                                                             _mm256_maddubs_epi16(ch, ah)));
#endif
                    }
                }
                const __m256 dw =
                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(dreg + 32 * b + 16 * h)));
#pragma GCC unroll 3
                for (int t = 0; t < NT; t++) {
#if X2_VNNI
                    __m256i si = _mm256_sub_epi32(bsum[t], _mm256_set1_epi32(8 * asum[t][b]));
#else
                    __m256i si = _mm256_sub_epi32(_mm256_madd_epi16(bsum[t], ones), _mm256_set1_epi32(8 * asum[t][b]));
#endif
                    __m256 sc = x2_mul(dw, _mm256_set1_ps(da[t][b]));
                    facc[g][t][h] = _mm256_add_ps(facc[g][t][h], x2_mul(_mm256_cvtepi32_ps(si), sc));
                }
            }
        }
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int h = 0; h < 2; h++) {
        __m256i l = _mm256_add_epi32(lane, _mm256_set1_epi32(8 * h));
        __m256i mask = _mm256_and_si256(_mm256_cmpgt_epi32(l, _mm256_set1_epi32((int)lo - 1)),
                                        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), l));
        for (int g = 0; g < G; g++)
            for (int t = 0; t < NT; t++)
                _mm256_maskstore_ps(ygs[g] + (tok0 + (size_t)t) * ldy + 8 * h, mask, facc[g][t][h]);
    }
}

static void x2_q4_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy);

struct x2_r16_ctx {
    size_t nb, n_in, ldy;
    const void *act;
    float *y;
};

static void x2_r16_pass(const unsigned char *grp, size_t g0, unsigned lo, unsigned hi, size_t t0, size_t n,
                        const void *ctx)
{
    const struct x2_r16_ctx *c = ctx;
    const unsigned char *const gs[2] = {grp, grp};
    float *const ys[2] = {c->y + g0, c->y + g0};
    if (n == 3)
        x2_r16_group(gs, c->nb, c->n_in, lo, hi, c->act, t0, ys, c->ldy, 3, 1);
    else if (n == 2)
        x2_r16_group(gs, c->nb, c->n_in, lo, hi, c->act, t0, ys, c->ldy, 2, 1);
    else
        x2_r16_group(gs, c->nb, c->n_in, lo, hi, c->act, t0, ys, c->ldy, 1, 1);
}

/* Two whole groups for one token (cit_r16_decode_pairs). */
static void x2_r16_pair(const unsigned char *ga, size_t a0, const unsigned char *gb, size_t b0, const void *ctx)
{
    const struct x2_r16_ctx *c = ctx;
    const unsigned char *const gs[2] = {ga, gb};
    float *const ys[2] = {c->y + a0, c->y + b0};
    x2_r16_group(gs, c->nb, c->n_in, 0, CIT_R16_ROWS, c->act, 0, ys, c->ldy, 1, 2);
}

/* gemm_r16 of the Q4_0 kernel: natively for the decode format's batches,
 * through rows (cit_r16_gemm_rows) for the tiled format's. */
static void x2_q4_gemm_r16(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                           size_t n_tokens, float *y, size_t ldy)
{
    if (n_tokens >= XQ_SMALL) {
        cit_r16_gemm_rows(x2_q4_gemm, CIT_TYPE_Q4_0, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);
        return;
    }
    const struct x2_r16_ctx c = {n_in / CIT_QK, n_in, ldy, act, y};
    if (n_tokens == 1)
        cit_r16_decode_pairs(w, row_bytes, r0, r1, x2_r16_pass, x2_r16_pair, &c);
    else
        cit_r16_passes(w, row_bytes, r0, r1, n_tokens, XQ_DEC_T, x2_r16_pass, &c);
}

/* ---- the kernels ---- */

X2_INLINE void x2_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy, const int q4)
{
    if (n_tokens >= XQ_SMALL) {
        x2_tiled(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, q4, q4 ? 1 : XQ2_Q8_ESZ);
        return;
    }
    /* decode: each 8-row block once from memory, for up to XQ_DEC_T tokens at a time */
    for (size_t rb = r0; rb < r1; rb += 8)
        for (size_t t0 = 0, n; t0 < n_tokens; t0 += n) {
            n = n_tokens - t0 == 4 ? 2 : (n_tokens - t0 < 3 ? n_tokens - t0 : 3); /* 4 = 2 + 2, not 3 + 1 */
            if (n == 3)
                x2_decode(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 3, q4);
            else if (n == 2)
                x2_decode(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 2, q4);
            else
                x2_decode(w, row_bytes, n_in, rb, r1, act, t0, y, ldy, 1, q4);
        }
}
static_assert(XQ_DEC_T == 3, "the decode dispatch above instantiates 1 to 3 tokens");

static bool x2_q4_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    return xq_act_bytes(n_in, n_tokens, 1, XQ_SMALL, bytes);
}
static void x2_q4_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)
{
    xq_pack(x, n_in, n_tokens, t0, t1, act, true, 1, XQ_SMALL);
}
static void x2_q4_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy)
{
    x2_gemm(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, 1);
}
static bool x2_q8_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    return xq_act_bytes(n_in, n_tokens, XQ2_Q8_ESZ, XQ_SMALL, bytes);
}
static void x2_q8_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)
{
    xq_pack(x, n_in, n_tokens, t0, t1, act, false, XQ2_Q8_ESZ, XQ_SMALL);
}
static void x2_q8_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy)
{
    x2_gemm(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, 0);
}

static const struct cit_kernel x2_k_q4_0 = {.act_bytes = x2_q4_act_bytes,
                                           .pack_group = XQ_GROUP,
                                           .pack = x2_q4_pack,
                                           .gemm = x2_q4_gemm,
                                           .gemm_r16 = x2_q4_gemm_r16};
static const struct cit_kernel x2_k_q8_0 = {
    .act_bytes = x2_q8_act_bytes, .pack_group = XQ_GROUP, .pack = x2_q8_pack, .gemm = x2_q8_gemm};

void X2_NAME(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    tab[CIT_TYPE_Q4_0] = &x2_k_q4_0;
    tab[CIT_TYPE_Q8_0] = &x2_k_q8_0;
}

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif
