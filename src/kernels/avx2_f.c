/* avx2_f.c: F32, F16 and BF16 weight kernels for AVX2 + FMA + F16C (BF16
 * in the bf16 dot-product instruction's order: see the BF16 section).
 *
 * Two ymm registers hold the reference's 16 float lanes (tensor/fp16.c):
 * lanes 0-7 and 8-15. Element k of a row lands in lane k % 16 by one FMA
 * per 16-element step, in k order, and the final halving fold adds the same
 * pairs as the reference. The row's last partial step reads its weights
 * from a zero-padded copy and meets zero padding in the activations, so the
 * lanes past the row end gain +0 * 0, which leaves any accumulator value
 * unchanged (an accumulator that starts at +0 and only receives FMAs is
 * never -0).
 *
 * Activations are packed as f32 rows padded to a multiple of 16 with zeros,
 * holding exactly the values the reference from_float produces (F16: round
 * to nearest even through vcvtps2ph, the reference's rounding), so gemm
 * converts only weights: F16 by vcvtph2ps, exactly.
 *
 * gemm computes tiles of rows x tokens, each (row, token) in its own pair
 * of accumulators: 4 rows x 1 token when decoding (four weight streams in
 * flight), 2 rows x 3 tokens for batches (12 accumulators of the 16 ymm
 * registers). Tokens are taken in chunks whose activations stay in cache
 * while the thread's rows pass over them. */
/* The build compiles this file with the AVX2 flags; should it not (an
 * older build script), the target is set here so the file still builds. */
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi2"))), apply_to = function)
#define CIT_TARGET_PUSHED
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c,bmi2")
#endif
#endif
#include <immintrin.h>
#include <string.h>

#include "base/checked.h"
#include "kernels/kernels.h"
#include "kernels/x86_bf16_act.h"

enum wtype { W_F32, W_F16 };

#define LANES 16
#define MAX_R 4
#define MAX_T 3
/* Activation bytes a token chunk aims to keep cache-resident. */
#define CHUNK_BYTES (192u * 1024u)

#define INLINE static inline __attribute__((always_inline))

/* Floats per packed activation row. */
static size_t act_stride(size_t n_in)
{
    return (n_in + LANES - 1) & ~(size_t)(LANES - 1);
}

static bool act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    uint64_t stride;
    return cit_align_up_u64(n_in, LANES, &stride) && cit_mul_u64(stride, n_tokens, bytes) &&
           cit_mul_u64(*bytes, sizeof(float), bytes);
}

/* x rounded as the activation format of weight type wt, back in f32. */
INLINE __m256 round_act(__m256 x, int wt)
{
    if (wt == W_F16)
        return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return x;
}

INLINE void pack_rows(const float *x, size_t n_in, size_t t0, size_t t1, void *act, int wt)
{
    size_t stride = act_stride(n_in);
    for (size_t t = t0; t < t1; t++) {
        const float *src = x + t * n_in;        /* (n_in) */
        float *dst = (float *)act + t * stride; /* (stride) */
        size_t k = 0;
        for (; k + 8 <= n_in; k += 8)
            _mm256_storeu_ps(dst + k, round_act(_mm256_loadu_ps(src + k), wt));
        if (k < stride) {
            float buf[LANES] = {0};
            memcpy(buf, src + k, (n_in - k) * sizeof(float));
            for (size_t i = 0; k + i < stride; i += 8)
                _mm256_storeu_ps(dst + k + i, round_act(_mm256_loadu_ps(buf + i), wt));
        }
    }
}

/* 8 weights of a row from element k as f32. */
INLINE __m256 load_w(const unsigned char *row, size_t k, int wt)
{
    if (wt == W_F32)
        return _mm256_loadu_ps((const float *)(const void *)row + k);
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(row + 2 * k));
    return _mm256_cvtph_ps(h);
}

/* The reference fold: lane i += lane i + 8 (lo + hi), then + 4, + 2, + 1. */
INLINE float fold16(__m256 lo, __m256 hi)
{
    __m256 h = _mm256_add_ps(lo, hi);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* One 16-element step of a tile: weights from wr[i] + k, activations from a[j] + k. */
#define TILE_STEP(WROW, WK)                                                                 \
    do {                                                                                    \
        _Pragma("GCC unroll 2") for (int hf = 0; hf < 2; hf++)                              \
        {                                                                                   \
            __m256 wv[MAX_R];                                                               \
            _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) wv[i] =                     \
                load_w(WROW, (WK) + 8 * (size_t)hf, wt);                                    \
            _Pragma("GCC unroll 4") for (int j = 0; j < T; j++)                             \
            {                                                                               \
                __m256 av = _mm256_loadu_ps(a[j] + k + 8 * (size_t)hf);                     \
                _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) acc[i][j][hf] =         \
                    _mm256_fmadd_ps(wv[i], av, acc[i][j][hf]);                              \
            }                                                                               \
        }                                                                                   \
    } while (0)

/* y[(t + j) * ldy + r + i] for i < R, j < T. */
INLINE void tile(const unsigned char *w, size_t row_bytes, size_t n_in, size_t r, const float *act, size_t stride,
                 size_t t, float *y, size_t ldy, int wt, int R, int T)
{
    __m256 acc[MAX_R][MAX_T][2];
    const unsigned char *wr[MAX_R];
    const float *a[MAX_T];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        wr[i] = w + (r + (size_t)i) * row_bytes;
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++)
        a[j] = act + (t + (size_t)j) * stride;
    size_t k = 0;
    for (; k + LANES <= n_in; k += LANES)
        TILE_STEP(wr[i], k);
    if (k < n_in) {
        /* zero-padded copies of the rows' last partial step */
        size_t es = wt == W_F32 ? 4 : 2;
        unsigned char tail[MAX_R][LANES * 4];
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            memset(tail[i], 0, sizeof tail[i]);
            memcpy(tail[i], wr[i] + k * es, (n_in - k) * es);
        }
        TILE_STEP(tail[i], 0);
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            y[(t + (size_t)j) * ldy + r + (size_t)i] = fold16(acc[i][j][0], acc[i][j][1]);
}

/* Tokens [t0, t1) of R rows from r, in tiles of MAX_T and one remainder. */
INLINE void token_tiles(const unsigned char *w, size_t row_bytes, size_t n_in, size_t r, const float *act,
                        size_t stride, size_t t0, size_t t1, float *y, size_t ldy, int wt, int R)
{
    size_t t = t0;
    for (; t + MAX_T <= t1; t += MAX_T)
        tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, MAX_T);
    if (t1 - t == 2)
        tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, 2);
    else if (t1 - t == 1)
        tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, 1);
}

INLINE void gemm_rows(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                      size_t n_tokens, float *y, size_t ldy, int wt)
{
    const unsigned char *wb = w;
    const float *a = act; /* (n_tokens, stride) */
    size_t stride = act_stride(n_in);
    size_t r = r0;
    if (n_tokens == 1) {
        for (; r + 4 <= r1; r += 4)
            tile(wb, row_bytes, n_in, r, a, stride, 0, y, ldy, wt, 4, 1);
        for (; r < r1; r++)
            tile(wb, row_bytes, n_in, r, a, stride, 0, y, ldy, wt, 1, 1);
        return;
    }
    size_t chunk = CHUNK_BYTES / (stride * sizeof(float)) / MAX_T * MAX_T;
    if (chunk < MAX_T)
        chunk = MAX_T;
    for (size_t t0 = 0; t0 < n_tokens; t0 += chunk) {
        size_t t1 = n_tokens - t0 < chunk ? n_tokens : t0 + chunk;
        for (r = r0; r + 2 <= r1; r += 2)
            token_tiles(wb, row_bytes, n_in, r, a, stride, t0, t1, y, ldy, wt, 2);
        if (r < r1)
            token_tiles(wb, row_bytes, n_in, r, a, stride, t0, t1, y, ldy, wt, 1);
    }
}

#define FLOAT_KERNEL(name, wt)                                                                            \
    static void name##_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act) \
    {                                                                                                     \
        (void)n_tokens;                                                                                   \
        pack_rows(x, n_in, t0, t1, act, wt);                                                              \
    }                                                                                                     \
    static void name##_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,            \
                            const void *act, size_t n_tokens, float *y, size_t ldy)                       \
    {                                                                                                     \
        gemm_rows(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, wt);                                 \
    }                                                                                                     \
    static const struct cit_kernel name = {.act_bytes = act_bytes, .pack_group = 1, \
                                           .pack = name##_pack, .gemm = name##_gemm};

FLOAT_KERNEL(k_f32, W_F32)
FLOAT_KERNEL(k_f16, W_F16)

/* ---- BF16 ----
 * The reference order (tensor/fp16.c, cit_ref_vec_dot_bf16) is the bf16
 * dot-product instruction's: 32 elements a step, lane j taking element
 * 2j + 1 then 2j, each by an FMA rounded to nearest even, with subnormal
 * inputs read as zero and tiny results flushed to zero (x86's rule: fma_ftz
 * in tensor/fp16.c; the fold included). Here lanes 0-7 take the step's first 32 bytes and 8-15 the
 * next; a word's upper half (masked) is its odd element, the lower half
 * (shifted up) its even one, both exact in f32, so each FMA rounds once as
 * the instruction does; and MXCSR's flush-to-zero and denormals-are-zero
 * bits, set for the call (restored on return), give the flushes.
 * Activations are packed as bf16 rows (the reference's rounding) padded
 * with zeros to a multiple of 32; the last partial step reads the weights
 * from a zero-padded copy, so lanes past the row end gain +0 * +0 as in
 * the reference's padding. */

/* 8 floats to bf16 as cit_fp32_to_bf16 rounds them (nearest even; NaN
 * quieted, payload truncated), in the upper halves of 32-bit lanes. */
INLINE __m256i bf_round8(__m256 x)
{
    __m256i u = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
    /* NaN (|u| > inf as signed ints, since |u| < 2^31) */
    __m256i nan =
        _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
}

void cit_bf16_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)
{
    (void)n_tokens;
    const size_t stride = bf_stride(n_in);
    for (size_t t = t0; t < t1; t++) {
        const float *src = x + t * n_in;               /* (n_in) */
        uint16_t *dst = (uint16_t *)act + t * stride; /* (stride) */
        size_t k = 0;
        for (; k + 16 <= stride; k += 16) {
            float buf[16] = {0};
            const float *p = src + k;
            if (k + 16 > n_in) {
                if (k < n_in)
                    memcpy(buf, src + k, (n_in - k) * sizeof(float));
                p = buf;
            }
            __m256i lo = _mm256_srli_epi32(bf_round8(_mm256_loadu_ps(p)), 16);
            __m256i hi = _mm256_srli_epi32(bf_round8(_mm256_loadu_ps(p + 8)), 16);
            /* packus works per 128-bit half: restore the order with a permute */
            __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8);
            _mm256_storeu_si256((__m256i *)(void *)(dst + k), w);
        }
    }
}

/* One 32-element step: weights from wr[i] + 2 * wk bytes, activations a[j] + k. */
#define BF_TILE_STEP(WROW, WK)                                                                       \
    do {                                                                                             \
        _Pragma("GCC unroll 2") for (int hf = 0; hf < 2; hf++)                                       \
        {                                                                                            \
            __m256i wq[MAX_R];                                                                       \
            _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) wq[i] =                              \
                _mm256_loadu_si256((const __m256i *)(const void *)((WROW) + 2 * (WK) + 32 * hf));    \
            _Pragma("GCC unroll 2") for (int e = 0; e < 2; e++)                                      \
            {                                                                                        \
                __m256 wv[MAX_R];                                                                    \
                _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) wv[i] = bf_half(wq[i], e);       \
                _Pragma("GCC unroll 4") for (int j = 0; j < T; j++)                                  \
                {                                                                                    \
                    __m256 av = bf_half(                                                             \
                        _mm256_loadu_si256((const __m256i *)(const void *)(a[j] + k + 16 * hf)), e); \
                    _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) acc[i][j][hf] =              \
                        _mm256_fmadd_ps(wv[i], av, acc[i][j][hf]);                                   \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
    } while (0)

/* The odd elements of 16 bf16 (e = 0: each word's upper half) or the even
 * ones (e = 1: the lower half) as f32. */
INLINE __m256 bf_half(__m256i v, int e)
{
    return _mm256_castsi256_ps(e ? _mm256_slli_epi32(v, 16) : _mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

/* y[(t + j) * ldy + r + i] for i < R, j < T. */
INLINE void bf_tile(const unsigned char *w, size_t row_bytes, size_t n_in, size_t r, const uint16_t *act,
                    size_t stride, size_t t, float *y, size_t ldy, int R, int T)
{
    __m256 acc[MAX_R][MAX_T][2];
    const unsigned char *wr[MAX_R];
    const uint16_t *a[MAX_T];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        wr[i] = w + (r + (size_t)i) * row_bytes;
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
    }
#pragma GCC unroll 4
    for (int j = 0; j < T; j++)
        a[j] = act + (t + (size_t)j) * stride;
    size_t k = 0;
    for (; k + BF_STEP <= n_in; k += BF_STEP)
        BF_TILE_STEP(wr[i], k);
    if (k < n_in) {
        unsigned char tail[MAX_R][2 * BF_STEP]; /* zero-padded copies of the rows' last partial step */
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            memset(tail[i], 0, sizeof tail[i]);
            memcpy(tail[i], wr[i] + 2 * k, 2 * (n_in - k));
        }
        BF_TILE_STEP(tail[i], 0);
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            y[(t + (size_t)j) * ldy + r + (size_t)i] = fold16(acc[i][j][0], acc[i][j][1]);
}

INLINE void bf_token_tiles(const unsigned char *w, size_t row_bytes, size_t n_in, size_t r, const uint16_t *act,
                           size_t stride, size_t t0, size_t t1, float *y, size_t ldy, int R)
{
    size_t t = t0;
    for (; t + MAX_T <= t1; t += MAX_T)
        bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, MAX_T);
    if (t1 - t == 2)
        bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, 2);
    else if (t1 - t == 1)
        bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, 1);
}

/* Out of line: bf_gemm runs it under the flush bits (x86_bf16_act.h). */
static __attribute__((noinline)) void bf_gemm_rows(const void *w, size_t row_bytes, size_t n_in, size_t r0,
                                                   size_t r1, const void *act, size_t n_tokens, float *y, size_t ldy)
{
    const unsigned char *wb = w;
    const uint16_t *a = act; /* (n_tokens, stride) */
    const size_t stride = bf_stride(n_in);
    size_t r = r0;
    if (n_tokens == 1) {
        for (; r + 4 <= r1; r += 4)
            bf_tile(wb, row_bytes, n_in, r, a, stride, 0, y, ldy, 4, 1);
        for (; r < r1; r++)
            bf_tile(wb, row_bytes, n_in, r, a, stride, 0, y, ldy, 1, 1);
        return;
    }
    size_t chunk = CHUNK_BYTES / (stride * sizeof(uint16_t)) / MAX_T * MAX_T;
    if (chunk < MAX_T)
        chunk = MAX_T;
    for (size_t t0 = 0; t0 < n_tokens; t0 += chunk) {
        size_t t1 = n_tokens - t0 < chunk ? n_tokens : t0 + chunk;
        for (r = r0; r + 2 <= r1; r += 2)
            bf_token_tiles(wb, row_bytes, n_in, r, a, stride, t0, t1, y, ldy, 2);
        if (r < r1)
            bf_token_tiles(wb, row_bytes, n_in, r, a, stride, t0, t1, y, ldy, 1);
    }
}

BF_GEMM_UNDER_FLUSH(bf_gemm, bf_gemm_rows)

static const struct cit_kernel k_bf16 = {.act_bytes = bf_act_bytes, .pack_group = 1, .pack = cit_bf16_pack, .gemm = bf_gemm};

void cit_kernels_avx2_f(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    tab[CIT_TYPE_F32] = &k_f32;
    tab[CIT_TYPE_F16] = &k_f16;
    tab[CIT_TYPE_BF16] = &k_bf16;
}

#ifdef CIT_TARGET_PUSHED
#pragma clang attribute pop
#endif
