/* avx512_ops.c: AVX-512 versions of the forward pass's element-wise ops and
 * of one attention head (kernels/ops.h states the contract).
 *
 * Array tails are handled by masked loads and stores of the same vector
 * code, so an element's result never depends on where in the array it lies
 * (cit_swiglu runs over a whole batch at once). exp: x = n ln2 + r with n =
 * round(x / ln2) and ln2 split in two (Cody-Waite; the high part has 12
 * trailing zero bits so n * hi is exact), exp(r) for |r| <= ln2/2 by its
 * degree-7 Taylor polynomial (truncation error below 1e-8 relative), and
 * vscalefps for 2^n, which rounds once into the subnormal range and
 * overflows to inf. Inputs are clamped to [-104, 89] first (exp(-104)
 * rounds to 0, exp(89) overflows), which also maps -inf to 0; NaN passes
 * through the clamps (vmaxps/vminps return their second operand on NaN).
 *
 * Attention takes the query heads of one KV head together and walks the
 * keys in blocks of KEY_BLOCK, each block's keys and values staying in L1
 * while every head passes over them: q . k for 16 keys at once (16 partial
 * vectors summed by one transposing tree), an online softmax (scores of a
 * block exponentiated against the running maximum; earlier sum and output
 * rescaled when it grows), and the weighted sum of value rows 64 dims at a
 * time. */
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
#include <math.h>
#include <string.h>

#include "kernels/attn_prefetch.h"
#include "kernels/ops.h"

#define INLINE static inline __attribute__((always_inline))

#define EXP_LO (-104.0f)
#define EXP_HI 89.0f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693145751953125f         /* 0x3f317200 */
#define LN2_LO 1.42860682030941723212e-6f /* ln 2 - LN2_HI */

/* The mask of the first min(n, 16) lanes. */
INLINE __mmask16 first(size_t n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

INLINE __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(EXP_LO), x);
    x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r); /* exp(r) - 1 */
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static void exp_n(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first(n - i);
        _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* Sum of the squares of x's floats, each square rounded to float as the
 * scalar code does, accumulated in double. */
INLINE void add_squares(__m512d *acc0, __m512d *acc1, __m512 x)
{
    __m512 sq = _mm512_mul_ps(x, x);
    *acc0 = _mm512_add_pd(*acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    *acc1 = _mm512_add_pd(*acc1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sq, 1)));
}

static void rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    for (size_t i = 0; i < n; i += 16)
        add_squares(&acc0, &acc1, _mm512_maskz_loadu_ps(first(n - i), x + i));
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
    float mean = (float)(sum / (double)n);
    __m512 scale = _mm512_set1_ps(1.0f / sqrtf(mean + eps));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), scale);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)));
    }
}

static void rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, const float *cs, bool neox)
{
    uint32_t half = n_rot / 2;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (uint32_t h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim; /* (head_dim) */
        if (neox) {
            for (uint32_t i = 0; i < half; i += 16) {
                __mmask16 m = first(half - i);
                size_t nf = 2 * (size_t)(half - i); /* floats of cs left */
                __m512 a = _mm512_maskz_loadu_ps(first(nf), cs + 2 * i);
                __m512 b = _mm512_maskz_loadu_ps(nf > 16 ? first(nf - 16) : 0, cs + 2 * i + 16);
                __m512 c = _mm512_permutex2var_ps(a, even, b), s = _mm512_permutex2var_ps(a, odd, b);
                __m512 x0 = _mm512_maskz_loadu_ps(m, v + i), x1 = _mm512_maskz_loadu_ps(m, v + half + i);
                _mm512_mask_storeu_ps(v + i, m, _mm512_fmsub_ps(x0, c, _mm512_mul_ps(x1, s)));
                _mm512_mask_storeu_ps(v + half + i, m, _mm512_fmadd_ps(x0, s, _mm512_mul_ps(x1, c)));
            }
        } else {
            for (uint32_t i = 0; i < 2 * half; i += 16) {
                __mmask16 m = first(2 * half - i);
                __m512 pair = _mm512_maskz_loadu_ps(m, cs + i); /* c0 s0 c1 s1 ... */
                __m512 c = _mm512_moveldup_ps(pair), s = _mm512_movehdup_ps(pair);
                __m512 xv = _mm512_maskz_loadu_ps(m, v + i);
                __m512 xs = _mm512_permute_ps(xv, 0xb1); /* x1 x0 pairs swapped */
                /* even lanes x0 c - x1 s, odd lanes x1 c + x0 s */
                _mm512_mask_storeu_ps(v + i, m, _mm512_fmaddsub_ps(xv, c, _mm512_mul_ps(xs, s)));
            }
        }
    }
}

/* Scales x and returns its maximum (-inf for n == 0). */
static float scale_max(float *x, size_t n, float scale)
{
    __m512 mx = _mm512_set1_ps(-INFINITY), sc = _mm512_set1_ps(scale);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sc);
        _mm512_mask_storeu_ps(x + i, m, v);
        mx = _mm512_mask_max_ps(mx, m, mx, v);
    }
    return _mm512_reduce_max_ps(mx);
}

/* x[i] = exp(x[i] - max) for i < n; returns their sum (in double). */
static double exp_sum(float *x, size_t n, float max)
{
    __m512 mv = _mm512_set1_ps(max);
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first(n - i);
        __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv)));
        _mm512_mask_storeu_ps(x + i, m, e);
        acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
}

static void softmax(float *x, size_t n, float scale)
{
    float max = scale_max(x, n, scale);
    __m512 inv = _mm512_set1_ps((float)(1.0 / exp_sum(x, n, max)));
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

static void swiglu(float *g, const float *u, size_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first(n - i);
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = first(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* The 16 horizontal sums of a[0..15], in order, by a transposing tree. */
INLINE __m512 sum16(const __m512 a[16])
{
    __m512 b[8], c[4], d[2];
    #pragma GCC unroll 16
    for (int i = 0; i < 8; i++) /* per 128-bit lane: keys 2i, 2i+1, 2i, 2i+1 */
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    #pragma GCC unroll 16
    for (int i = 0; i < 4; i++) /* per lane: keys 4i .. 4i+3 */
        c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    #pragma GCC unroll 16
    for (int i = 0; i < 2; i++) /* lanes 0-1: keys 8i..8i+3, lanes 2-3: keys 8i+4..8i+7 */
        d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* 16 keys' lane vectors for a head of NC * 16 dims, the query in
 * registers: per lane the same sequence of operations (dims in order, one
 * FMA each, from zero) as the general loop below, so results are equal;
 * this form only keeps the key pointers out of memory. */
INLINE void qk16_fixed(float *scores, const __m512 *qv, const float *kp, size_t kv_stride, const int NC)
{
    __m512 acc[16];
    #pragma GCC unroll 16
    for (int j = 0; j < 16; j++) {
        const float *kr = kp + (size_t)j * kv_stride;
        __m512 a = _mm512_setzero_ps();
        #pragma GCC unroll 8
        for (int c = 0; c < NC; c++)
            a = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), a);
        acc[j] = a;
    }
    _mm512_storeu_ps(scores, sum16(acc));
}

/* scores[p] = q . k_p, 16 keys at a time (their products summed per lane,
 * then the 16 lane sums formed together). */
static void qk_scores(float *scores, const float *q, const float *k, size_t n_keys, size_t kv_stride, size_t hd,
                      struct attn_pf *pf)
{
    size_t p = 0;
    if (hd == 64 || hd == 128) {
        __m512 qv[8];
        for (size_t c = 0; c < hd / 16; c++)
            qv[c] = _mm512_loadu_ps(q + 16 * c);
        for (; p + 16 <= n_keys; p += 16) {
            attn_pf_step(pf);
            if (hd == 64)
                qk16_fixed(scores + p, qv, k + p * kv_stride, kv_stride, 4);
            else
                qk16_fixed(scores + p, qv, k + p * kv_stride, kv_stride, 8);
        }
    }
    for (; p + 16 <= n_keys; p += 16) {
        attn_pf_step(pf);
        __m512 acc[16];
        #pragma GCC unroll 16
        for (int j = 0; j < 16; j++)
            acc[j] = _mm512_setzero_ps();
        const float *kp = k + p * kv_stride;
        for (size_t d = 0; d < hd; d += 16) {
            __mmask16 m = first(hd - d);
            __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
            #pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                acc[j] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kp + (size_t)j * kv_stride + d), acc[j]);
        }
        _mm512_storeu_ps(scores + p, sum16(acc));
    }
    for (; p < n_keys; p++) {
        __m512 acc = _mm512_setzero_ps();
        for (size_t d = 0; d < hd; d += 16) {
            __mmask16 m = first(hd - d);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, k + p * kv_stride + d),
                                  acc);
        }
        scores[p] = _mm512_reduce_add_ps(acc);
    }
}

/* For NH heads (1 or 2) over the same keys and values: out[h] = alpha[h] *
 * out[h] + sum_p w[h][p] v_p, 64 dims at a time, even and odd keys in
 * separate accumulators. A value row is loaded once for all NH heads; each
 * head's operations and their order do not depend on NH, so a head gets the
 * same bits alone or in a pair. */
INLINE void weighted_sum_n(float *const *out, const float *alpha, const float *const *w, const float *v,
                           size_t n_keys, size_t kv_stride, size_t hd, const int NH)
{
    for (size_t d0 = 0; d0 < hd; d0 += 64) {
        __mmask16 m[4];
        __m512 a0[2][4], a1[2][4]; /* [head][16 dims]: even keys, odd keys */
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            size_t d = d0 + 16 * (size_t)c;
            m[c] = d < hd ? first(hd - d) : 0;
            for (int h = 0; h < NH; h++) {
                a0[h][c] = _mm512_mul_ps(_mm512_set1_ps(alpha[h]), _mm512_maskz_loadu_ps(m[c], out[h] + d));
                a1[h][c] = _mm512_setzero_ps();
            }
        }
        const float *vp = v + d0;
        size_t p = 0;
        for (; p + 2 <= n_keys; p += 2, vp += 2 * kv_stride) {
#pragma GCC unroll 16
            for (int c = 0; c < 4; c++) {
                __m512 ve = _mm512_maskz_loadu_ps(m[c], vp + 16 * c);
                __m512 vo = _mm512_maskz_loadu_ps(m[c], vp + kv_stride + 16 * c);
                for (int h = 0; h < NH; h++) {
                    a0[h][c] = _mm512_fmadd_ps(_mm512_set1_ps(w[h][p]), ve, a0[h][c]);
                    a1[h][c] = _mm512_fmadd_ps(_mm512_set1_ps(w[h][p + 1]), vo, a1[h][c]);
                }
            }
        }
        if (p < n_keys) {
#pragma GCC unroll 16
            for (int c = 0; c < 4; c++) {
                __m512 ve = _mm512_maskz_loadu_ps(m[c], vp + 16 * c);
                for (int h = 0; h < NH; h++)
                    a0[h][c] = _mm512_fmadd_ps(_mm512_set1_ps(w[h][p]), ve, a0[h][c]);
            }
        }
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++)
            for (int h = 0; h < NH; h++)
                _mm512_mask_storeu_ps(out[h] + d0 + 16 * c, m[c], _mm512_add_ps(a0[h][c], a1[h][c]));
    }
}

/* Keys per block: a block of keys and values (KEY_BLOCK rows of head_dim)
 * stays in L1 while every head of the group passes over it. */
#define KEY_BLOCK 64
#define MAX_GROUP 16

/* Softmax over the keys one block at a time (online: each block's scores
 * are exponentiated against the running maximum, and the sum and output so
 * far are rescaled by exp(old max - new max) when it grows), so only a
 * block of scores is kept per head. A head's sequence of operations depends
 * only on n_keys, never on the other heads. */
static void attn_heads(float *out, const float *q, size_t n_q, const float *k, const float *v, size_t n_keys,
                       size_t kv_stride, size_t hd, float scale, float *scores)
{
    (void)scores;
    for (size_t g0 = 0; g0 < n_q; g0 += MAX_GROUP) {
        size_t ng = n_q - g0 < MAX_GROUP ? n_q - g0 : MAX_GROUP;
        float mx[MAX_GROUP];
        double sum[MAX_GROUP];
        for (size_t g = 0; g < ng; g++) {
            mx[g] = -INFINITY;
            sum[g] = 0.0;
            memset(out + (g0 + g) * hd, 0, hd * sizeof *out);
        }
        for (size_t p0 = 0; p0 < n_keys; p0 += KEY_BLOCK) {
            size_t nb = n_keys - p0 < KEY_BLOCK ? n_keys - p0 : KEY_BLOCK;
            const float *kp = k + p0 * kv_stride, *vp = v + p0 * kv_stride;
            float s[MAX_GROUP][KEY_BLOCK], alpha[MAX_GROUP];
            /* the next block's keys and values, over this block's 16-key steps */
            size_t p1 = p0 + nb, nb1 = n_keys - p1 < KEY_BLOCK ? n_keys - p1 : KEY_BLOCK;
            struct attn_pf pf;
            attn_pf_init(&pf, k, v, p1, nb1, kv_stride, hd, ng * (nb / 16));
            for (size_t g = 0; g < ng; g++) {
                qk_scores(s[g], q + (g0 + g) * hd, kp, nb, kv_stride, hd, &pf);
                float bm = scale_max(s[g], nb, scale);
                float m_new = bm > mx[g] ? bm : mx[g];
                alpha[g] = _mm512_cvtss_f32(exp16(_mm512_set1_ps(mx[g] - m_new))); /* 0 for the first block */
                sum[g] = sum[g] * (double)alpha[g] + exp_sum(s[g], nb, m_new);
                mx[g] = m_new;
            }
            attn_pf_finish(&pf);
            /* the values of the block once per pair of heads */
            for (size_t g = 0; g < ng; g += 2) {
                float *o[2] = {out + (g0 + g) * hd, out + (g0 + g + 1) * hd};
                const float *ws[2] = {s[g], s[g + 1 < ng ? g + 1 : g]};
                if (g + 1 < ng)
                    weighted_sum_n(o, alpha + g, ws, vp, nb, kv_stride, hd, 2);
                else
                    weighted_sum_n(o, alpha + g, ws, vp, nb, kv_stride, hd, 1);
            }
        }
        for (size_t g = 0; g < ng; g++) {
            float *o = out + (g0 + g) * hd;
            __m512 inv = _mm512_set1_ps((float)(1.0 / sum[g]));
            for (size_t d = 0; d < hd; d += 16) {
                __mmask16 m = first(hd - d);
                _mm512_mask_storeu_ps(o + d, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, o + d), inv));
            }
        }
    }
}

void cit_ops_avx512(struct cit_ops *o)
{
    o->rmsnorm = rmsnorm;
    o->rope = rope;
    o->softmax = softmax;
    o->swiglu = swiglu;
    o->add = add;
    o->attn_heads = attn_heads;
    o->exp = exp_n;
}

#ifdef CIT_TARGET_PUSHED
#pragma clang attribute pop
#endif
