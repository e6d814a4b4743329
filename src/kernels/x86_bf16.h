/* x86_bf16.h: the BF16 weight kernel for AVX-512, included by avx512_f.c
 * (BF16_DOT 0) and avx512bf16_f.c (BF16_DOT 1, AVX512_BF16 present).
 *
 * The reference order (tensor/fp16.c, cit_ref_vec_dot_bf16) is the bf16
 * dot-product instruction's: 32 elements a step, lane j taking element
 * 2j + 1 then 2j by fused multiply-adds rounded to nearest even, subnormal
 * inputs read as zero, tiny results flushed to zero (x86's rule: fma_ftz in
 * tensor/fp16.c), and the fold by halves flushed the same way. With BF16_DOT each step is one vdpbf16ps per
 * (row, token); without it, two f32 FMAs, the odd elements (a word's upper
 * half, masked) then the even ones (the lower half, shifted up). Both run
 * with MXCSR's flush-to-zero and denormals-are-zero bits set (restored on
 * return): that is the instruction's own arithmetic for the FMAs, and it
 * flushes the fold's sums for both. Products of two bf16 values are exact
 * in f32, so each FMA rounds once, as the instruction does.
 *
 * Activations are packed as bf16 rows (the reference's from_float
 * rounding) padded with zeros to a multiple of 32; the last partial step
 * loads its weights under a mask (zeros elsewhere), so the lanes past the
 * row end gain +0 * +0, as in the reference's zero padding.
 *
 * gemm computes tiles of ZF_TILE_R rows x up to ZF_TILE_T tokens, each
 * (row, token) in its own accumulator, as avx512_f.c's float tiles do. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/x86_bf16_act.h"

/* The tiles and token chunks of all the AVX-512 float kernels (F32 and F16
 * in avx512_f.c too): ZF_TILE_R rows x up to ZF_TILE_T tokens. */
#define ZF_TILE_R 4
#define ZF_TILE_T 6
/* Activation bytes a token chunk keeps in cache: 3/4 of the 1 MiB L2 of
 * the smallest AVX-512 cores (Skylake-SP, Zen 4 and 5), so a thread's rows
 * pass over the weights once per chunk. On the Zen 5 VM, 2 threads, pp512
 * (t/s, two runs each): Llama-2-7B BF16 192 KiB 31.9-32.1, 512 KiB
 * 43.7-45.2, 768 KiB 47.8-49.3, 1024 KiB 44.5-44.9; TinyLlama BF16 311,
 * 337-351, 350-351; TinyLlama F16 (avx512_f.c) 178-184 at 192 KiB, 194-196
 * at 768 (docs/benchmarks.md, session 20). */
#ifndef ZF_CHUNK_BYTES
#define ZF_CHUNK_BYTES (768u * 1024u)
#endif

#define BF_INLINE static inline __attribute__((always_inline))

/* The reference fold of the float dots (lane i += lane i + 8, + 4, + 2,
 * + 1); BF16's runs under bf_gemm's flush-to-zero. avx512_f.c's F32 and F16
 * tiles use it too. */
BF_INLINE float zfold16(__m512 a)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

#if !BF16_DOT
/* A step's odd elements (h = 0: each word's upper half) or even ones (h =
 * 1: the lower half) as f32. */
BF_INLINE __m512 bf_half(__m512i v, int h)
{
    return _mm512_castsi512_ps(h ? _mm512_slli_epi32(v, 16) : _mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}
#endif

/* One step of R rows x T tokens: weights wv (32 bf16 each), tokens' at a[j] + k. */
BF_INLINE void bf_step(__m512 acc[ZF_TILE_R][ZF_TILE_T], const __m512i *wv, const uint16_t *const *a, size_t k,
                       int R, int T)
{
#if BF16_DOT
#pragma GCC unroll 8
    for (int j = 0; j < T; j++) {
        __m512i av = _mm512_loadu_si512((const void *)(a[j] + k));
#pragma GCC unroll 8
        for (int i = 0; i < R; i++)
            acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)wv[i], (__m512bh)av);
    }
#else
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m512 w[ZF_TILE_R];
#pragma GCC unroll 8
        for (int i = 0; i < R; i++)
            w[i] = bf_half(wv[i], h);
#pragma GCC unroll 8
        for (int j = 0; j < T; j++) {
            __m512 av = bf_half(_mm512_loadu_si512((const void *)(a[j] + k)), h);
#pragma GCC unroll 8
            for (int i = 0; i < R; i++)
                acc[i][j] = _mm512_fmadd_ps(w[i], av, acc[i][j]);
        }
    }
#endif
}

/* y[(t + j) * ldy + r + i] for i < R, j < T. */
BF_INLINE void bf_tile(const unsigned char *w, size_t row_bytes, size_t n_in, size_t r, const uint16_t *act,
                       size_t stride, size_t t, float *y, size_t ldy, int R, int T)
{
    __m512 acc[ZF_TILE_R][ZF_TILE_T];
    const unsigned char *wr[ZF_TILE_R];
    const uint16_t *a[ZF_TILE_T];
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
    for (; k + BF_STEP <= n_in; k += BF_STEP) {
        __m512i wv[ZF_TILE_R];
#pragma GCC unroll 8
        for (int i = 0; i < R; i++)
            wv[i] = _mm512_loadu_si512((const void *)(wr[i] + 2 * k));
        bf_step(acc, wv, a, k, R, T);
    }
    if (k < n_in) {
        const __mmask32 m = (__mmask32)((1ull << (n_in - k)) - 1);
        __m512i wv[ZF_TILE_R];
#pragma GCC unroll 8
        for (int i = 0; i < R; i++)
            wv[i] = _mm512_maskz_loadu_epi16(m, wr[i] + 2 * k);
        bf_step(acc, wv, a, k, R, T); /* the activations are zero padded */
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; i++)
#pragma GCC unroll 8
        for (int j = 0; j < T; j++)
            y[(t + (size_t)j) * ldy + r + (size_t)i] = zfold16(acc[i][j]);
}

BF_INLINE void bf_token_tiles(const unsigned char *w, size_t row_bytes, size_t n_in, size_t r, const uint16_t *act,
                              size_t stride, size_t t0, size_t t1, float *y, size_t ldy, int R)
{
    size_t t = t0;
    for (; t + ZF_TILE_T <= t1; t += ZF_TILE_T)
        bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, ZF_TILE_T);
    switch (t1 - t) {
    case 1: bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, 1); break;
    case 2: bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, 2); break;
    case 3: bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, 3); break;
    case 4: bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, 4); break;
    case 5: bf_tile(w, row_bytes, n_in, r, act, stride, t, y, ldy, R, 5); break;
    default: break;
    }
}

/* Out of line: bf_gemm runs it under the flush bits (x86_bf16_act.h). */
static __attribute__((noinline)) void bf_gemm_rows(const void *w, size_t row_bytes, size_t n_in, size_t r0,
                                                   size_t r1, const void *act, size_t n_tokens, float *y, size_t ldy)
{
    const unsigned char *wb = w;
    const uint16_t *a = act; /* (n_tokens, stride) */
    const size_t stride = bf_stride(n_in);
    size_t chunk = ZF_CHUNK_BYTES / (stride * sizeof(uint16_t)) / ZF_TILE_T * ZF_TILE_T;
    if (chunk < ZF_TILE_T)
        chunk = ZF_TILE_T;
    for (size_t t0 = 0; t0 < n_tokens; t0 += chunk) {
        size_t t1 = n_tokens - t0 < chunk ? n_tokens : t0 + chunk;
        size_t r = r0;
        for (; r + ZF_TILE_R <= r1; r += ZF_TILE_R)
            bf_token_tiles(wb, row_bytes, n_in, r, a, stride, t0, t1, y, ldy, ZF_TILE_R);
        for (; r < r1; r++)
            bf_token_tiles(wb, row_bytes, n_in, r, a, stride, t0, t1, y, ldy, 1);
    }
}

BF_GEMM_UNDER_FLUSH(bf_gemm, bf_gemm_rows)

static const struct cit_kernel k_bf16 = {.act_bytes = bf_act_bytes, .pack_group = 1, .pack = cit_bf16_pack, .gemm = bf_gemm};
