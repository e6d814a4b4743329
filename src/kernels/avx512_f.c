/* avx512_f.c: F32, F16 and BF16 weight kernels for AVX-512 (BF16's in
 * x86_bf16.h, in the bf16 dot-product instruction's order).
 *
 * One zmm register holds the reference's 16 float lanes (tensor/fp16.c):
 * element k of a row lands in lane k % 16 by one FMA per 16-element step,
 * in k order, and the final halving fold is done with the same pairs. The
 * row's last partial step loads its weights under a mask (zeros elsewhere)
 * and meets zero padding in the activations, so the untouched lanes gain
 * +0 * 0, which leaves any accumulator value unchanged (an accumulator that
 * starts at +0 and only receives FMAs is never -0).
 *
 * Activations are packed as f32 rows padded to a multiple of 16 with zeros,
 * holding exactly the values the reference from_float produces (F16: round
 * to nearest even through vcvtps2ph, which is the reference's rounding), so
 * gemm converts only weights: F16 by vcvtph2ps, exactly.
 *
 * gemm computes tiles of ZF_TILE_R rows x up to ZF_TILE_T tokens, each
 * (row, token) in its own accumulator, which reuses each loaded weight
 * vector ZF_TILE_T times and each activation vector ZF_TILE_R times; one
 * token (decode) streams ZF_TILE_R rows at once. Tokens are taken in chunks
 * whose activations stay in cache while the thread's rows pass over them. */
/* The build compiles this file with the AVX-512 flags; should it not (an
 * older build script), the target is set here so the file still builds. */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq"))), \
                             apply_to = function)
#define CIT_TARGET_PUSHED
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq")
#endif
#endif
#include <immintrin.h>
#include <string.h>

#include "base/checked.h"
#include "kernels/kernels.h"

#define BF16_DOT 0
#include "kernels/x86_bf16.h"

enum wtype { W_F32, W_F16 };

#define LANES 16
/* Tile shape and token chunk: ZF_TILE_R, ZF_TILE_T, ZF_CHUNK_BYTES (x86_bf16.h). */

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
INLINE __m512 round_act(__m512 x, int wt)
{
    if (wt == W_F16)
        return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return x;
}

INLINE void pack_rows(const float *x, size_t n_in, size_t t0, size_t t1, void *act, int wt)
{
    size_t stride = act_stride(n_in);
    for (size_t t = t0; t < t1; t++) {
        const float *src = x + t * n_in; /* (n_in) */
        float *dst = (float *)act + t * stride; /* (stride) */
        size_t k = 0;
        for (; k + LANES <= n_in; k += LANES)
            _mm512_storeu_ps(dst + k, round_act(_mm512_loadu_ps(src + k), wt));
        if (k < stride) {
            __mmask16 m = (__mmask16)((1u << (n_in - k)) - 1);
            _mm512_storeu_ps(dst + k, round_act(_mm512_maskz_loadu_ps(m, src + k), wt));
        }
    }
}

/* 16 weights of a row from element k as f32. */
INLINE __m512 load_w(const unsigned char *row, size_t k, int wt)
{
    if (wt == W_F32)
        return _mm512_loadu_ps((const float *)(const void *)row + k);
    __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * k));
    return _mm512_cvtph_ps(h);
}

/* The same for the lanes of m only (zeros elsewhere; nothing read there). */
INLINE __m512 load_w_mask(const unsigned char *row, size_t k, __mmask16 m, int wt)
{
    if (wt == W_F32)
        return _mm512_maskz_loadu_ps(m, (const float *)(const void *)row + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * k);
    return _mm512_cvtph_ps(h);
}

/* y[(t + j) * ldy + r + i] for i < R, j < T. */
INLINE void tile(const unsigned char *w, size_t row_bytes, size_t n_in, size_t r, const float *act, size_t stride,
                 size_t t, float *y, size_t ldy, int wt, int R, int T)
{
    __m512 acc[ZF_TILE_R][ZF_TILE_T];
    const unsigned char *wr[ZF_TILE_R];
    const float *a[ZF_TILE_T];
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
        wr[i] = w + (r + (size_t)i) * row_bytes;
#pragma GCC unroll 8
        for (int j = 0; j < T; j++)
            acc[i][j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; j++)
        a[j] = act + (t + (size_t)j) * stride;
    size_t k = 0;
    for (; k + LANES <= n_in; k += LANES) {
        __m512 wv[ZF_TILE_R];
#pragma GCC unroll 8
        for (int i = 0; i < R; i++)
            wv[i] = load_w(wr[i], k, wt);
#pragma GCC unroll 8
        for (int j = 0; j < T; j++) {
            __m512 av = _mm512_loadu_ps(a[j] + k);
#pragma GCC unroll 8
            for (int i = 0; i < R; i++)
                acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
        }
    }
    if (k < n_in) {
        __mmask16 m = (__mmask16)((1u << (n_in - k)) - 1);
        __m512 wv[ZF_TILE_R];
#pragma GCC unroll 8
        for (int i = 0; i < R; i++)
            wv[i] = load_w_mask(wr[i], k, m, wt);
#pragma GCC unroll 8
        for (int j = 0; j < T; j++) {
            __m512 av = _mm512_loadu_ps(a[j] + k); /* zero padded */
#pragma GCC unroll 8
            for (int i = 0; i < R; i++)
                acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; i++)
#pragma GCC unroll 8
        for (int j = 0; j < T; j++)
            y[(t + (size_t)j) * ldy + r + (size_t)i] = zfold16(acc[i][j]); /* x86_bf16.h */
}

/* Tokens [t0, t1) of R rows from r, in tiles of ZF_TILE_T and one remainder. */
INLINE void token_tiles(const unsigned char *w, size_t row_bytes, size_t n_in, size_t r, const float *act,
                        size_t stride, size_t t0, size_t t1, float *y, size_t ldy, int wt, int R)
{
    size_t t = t0;
    for (; t + ZF_TILE_T <= t1; t += ZF_TILE_T)
        tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, ZF_TILE_T);
    switch (t1 - t) {
    case 1: tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, 1); break;
    case 2: tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, 2); break;
    case 3: tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, 3); break;
    case 4: tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, 4); break;
    case 5: tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, wt, R, 5); break;
    default: break;
    }
}

INLINE void gemm_rows(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                      size_t n_tokens, float *y, size_t ldy, int wt)
{
    const unsigned char *wb = w;
    const float *a = act; /* (n_tokens, stride) */
    size_t stride = act_stride(n_in);
    size_t chunk = ZF_CHUNK_BYTES / (stride * sizeof(float)) / ZF_TILE_T * ZF_TILE_T;
    if (chunk < ZF_TILE_T)
        chunk = ZF_TILE_T;
    for (size_t t0 = 0; t0 < n_tokens; t0 += chunk) {
        size_t t1 = n_tokens - t0 < chunk ? n_tokens : t0 + chunk;
        size_t r = r0;
        for (; r + ZF_TILE_R <= r1; r += ZF_TILE_R)
            token_tiles(wb, row_bytes, n_in, r, a, stride, t0, t1, y, ldy, wt, ZF_TILE_R);
        for (; r < r1; r++)
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

void cit_kernels_avx512_f(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    tab[CIT_TYPE_F32] = &k_f32;
    tab[CIT_TYPE_F16] = &k_f16;
    tab[CIT_TYPE_BF16] = &k_bf16;
}

#ifdef CIT_TARGET_PUSHED
#pragma clang attribute pop
#endif
