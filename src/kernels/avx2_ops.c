/* avx2_ops.c: AVX2 + FMA versions of the forward pass's element-wise ops
 * and of one attention head (kernels/ops.h states the contract).
 *
 * The same algorithms as avx512_ops.c on 8 lanes: array tails go through
 * masked loads and stores of the same vector code (so an element's result
 * does not depend on where it lies), exp is Cody-Waite reduction, a
 * degree-7 Taylor polynomial and 2^n applied as two exact powers of two
 * (n split in halves, each a normal float) so the one rounding of the
 * second product also covers subnormal results. */
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

static const int32_t mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* The lane mask of the first min(n, 8) lanes. */
INLINE __m256i first(size_t n)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)(mask_tab + 8 - (n >= 8 ? 8 : n)));
}

INLINE __m256 ld(const float *p, __m256i m)
{
    return _mm256_maskload_ps(p, m);
}

INLINE void st(float *p, __m256i m, __m256 v)
{
    _mm256_maskstore_ps(p, m, v);
}

INLINE __m256 pow2i(__m256i e)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
}

INLINE __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x); /* NaN passes: second operand */
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r); /* exp(r) - 1 */
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    /* n in [-150, 129]: 2^n = 2^n1 * 2^n2 with n1, n2 in [-75, 65] */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2i(n1)), pow2i(n2));
}

static void exp_n(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = first(n - i);
        st(y + i, m, exp8(ld(x + i, m)));
    }
}

INLINE double hsum_pd(__m256d a)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

INLINE float hsum_ps(__m256 a)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* Adds the 8 floats of v, converted to double, to acc0 (lanes 0-3) and acc1. */
INLINE void add_pd(__m256d *acc0, __m256d *acc1, __m256 v)
{
    *acc0 = _mm256_add_pd(*acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    *acc1 = _mm256_add_pd(*acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

static void rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (size_t i = 0; i < n; i += 8) {
        __m256 v = ld(x + i, first(n - i));
        add_pd(&acc0, &acc1, _mm256_mul_ps(v, v)); /* squares rounded to float, as the scalar code */
    }
    float mean = (float)(hsum_pd(_mm256_add_pd(acc0, acc1)) / (double)n);
    __m256 scale = _mm256_set1_ps(1.0f / sqrtf(mean + eps));
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = first(n - i);
        st(y + i, m, _mm256_mul_ps(_mm256_mul_ps(ld(x + i, m), scale), ld(w + i, m)));
    }
}

static void rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, const float *cs, bool neox)
{
    uint32_t half = n_rot / 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim; /* (head_dim) */
        if (neox) {
            for (uint32_t i = 0; i < half; i += 8) {
                __m256i m = first(half - i);
                size_t nf = 2 * (size_t)(half - i); /* floats of cs left */
                __m256 a = ld(cs + 2 * i, first(nf));
                __m256 b = ld(cs + 2 * i + 8, first(nf > 8 ? nf - 8 : 0));
                __m256 c = _mm256_castpd_ps(_mm256_permute4x64_pd(
                    _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
                __m256 s = _mm256_castpd_ps(_mm256_permute4x64_pd(
                    _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
                __m256 x0 = ld(v + i, m), x1 = ld(v + half + i, m);
                st(v + i, m, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
                st(v + half + i, m, _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c)));
            }
        } else {
            for (uint32_t i = 0; i < 2 * half; i += 8) {
                __m256i m = first(2 * half - i);
                __m256 pair = ld(cs + i, m); /* c0 s0 c1 s1 ... */
                __m256 c = _mm256_moveldup_ps(pair), s = _mm256_movehdup_ps(pair);
                __m256 xv = ld(v + i, m);
                __m256 xs = _mm256_permute_ps(xv, 0xb1); /* pairs swapped */
                /* even lanes x0 c - x1 s, odd lanes x1 c + x0 s */
                st(v + i, m, _mm256_fmaddsub_ps(xv, c, _mm256_mul_ps(xs, s)));
            }
        }
    }
}

/* Scales x and returns its maximum. */
static float scale_max(float *x, size_t n, float scale)
{
    __m256 mx = _mm256_set1_ps(-INFINITY), sc = _mm256_set1_ps(scale);
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = first(n - i);
        __m256 v = _mm256_mul_ps(ld(x + i, m), sc);
        st(x + i, m, v);
        mx = _mm256_blendv_ps(mx, _mm256_max_ps(mx, v), _mm256_castsi256_ps(m));
    }
    __m128 q = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    q = _mm_max_ps(q, _mm_movehl_ps(q, q));
    q = _mm_max_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* x[i] = exp(x[i] - max) for i < n; returns their sum (in double). */
static double exp_sum(float *x, size_t n, float max)
{
    __m256 mv = _mm256_set1_ps(max);
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = first(n - i);
        __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(ld(x + i, m), mv)), _mm256_castsi256_ps(m));
        st(x + i, m, e);
        add_pd(&acc0, &acc1, e);
    }
    return hsum_pd(_mm256_add_pd(acc0, acc1));
}

static void softmax(float *x, size_t n, float scale)
{
    float max = scale_max(x, n, scale);
    __m256 inv = _mm256_set1_ps((float)(1.0 / exp_sum(x, n, max)));
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = first(n - i);
        st(x + i, m, _mm256_mul_ps(ld(x + i, m), inv));
    }
}

static void swiglu(float *g, const float *u, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = first(n - i);
        __m256 gv = ld(g + i, m);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        st(g + i, m, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), ld(u + i, m)));
    }
}

static void add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        __m256i m = first(n - i);
        st(y + i, m, _mm256_add_ps(ld(y + i, m), ld(x + i, m)));
    }
}

/* The 8 horizontal sums of a[0..7], in order, by a transposing tree. */
INLINE __m256 sum8(const __m256 a[8])
{
    __m256 b[4], c[2];
    #pragma GCC unroll 16
    for (int i = 0; i < 4; i++) /* per 128-bit lane: keys 2i, 2i+1, 2i, 2i+1 */
        b[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    #pragma GCC unroll 16
    for (int i = 0; i < 2; i++) /* per lane: keys 4i .. 4i+3 */
        c[i] = _mm256_add_ps(_mm256_shuffle_ps(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm256_add_ps(_mm256_permute2f128_ps(c[0], c[1], 0x20), _mm256_permute2f128_ps(c[0], c[1], 0x31));
}

/* scores[p] = q . k_p, 8 keys at a time. */
static void qk_scores(float *scores, const float *q, const float *k, size_t n_keys, size_t kv_stride, size_t hd,
                      struct attn_pf *pf)
{
    size_t p = 0;
    for (; p + 8 <= n_keys; p += 8) {
        attn_pf_step(pf);
        __m256 acc[8];
        #pragma GCC unroll 16
        for (int j = 0; j < 8; j++)
            acc[j] = _mm256_setzero_ps();
        const float *kp = k + p * kv_stride;
        for (size_t d = 0; d < hd; d += 8) {
            __m256i m = first(hd - d);
            __m256 qv = ld(q + d, m);
            #pragma GCC unroll 16
            for (int j = 0; j < 8; j++)
                acc[j] = _mm256_fmadd_ps(qv, ld(kp + (size_t)j * kv_stride + d, m), acc[j]);
        }
        _mm256_storeu_ps(scores + p, sum8(acc));
    }
    for (; p < n_keys; p++) {
        __m256 acc = _mm256_setzero_ps();
        for (size_t d = 0; d < hd; d += 8) {
            __m256i m = first(hd - d);
            acc = _mm256_fmadd_ps(ld(q + d, m), ld(k + p * kv_stride + d, m), acc);
        }
        scores[p] = hsum_ps(acc);
    }
}

/* out = alpha * out + sum_p w[p] v_p, 32 dims at a time, even and odd keys
 * in separate accumulators. */
static void weighted_sum(float *out, float alpha, const float *w, const float *v, size_t n_keys, size_t kv_stride,
                         size_t hd)
{
    __m256 al = _mm256_set1_ps(alpha);
    for (size_t d0 = 0; d0 < hd; d0 += 32) {
        __m256i m[4];
        __m256 a0[4], a1[4];
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++) {
            size_t d = d0 + 8 * (size_t)c;
            m[c] = first(d < hd ? hd - d : 0);
            a0[c] = _mm256_mul_ps(al, ld(out + d, m[c]));
            a1[c] = _mm256_setzero_ps();
        }
        const float *vp = v + d0;
        size_t p = 0;
        for (; p + 2 <= n_keys; p += 2, vp += 2 * kv_stride) {
            __m256 w0 = _mm256_set1_ps(w[p]), w1 = _mm256_set1_ps(w[p + 1]);
#pragma GCC unroll 16
            for (int c = 0; c < 4; c++) {
                a0[c] = _mm256_fmadd_ps(w0, ld(vp + 8 * c, m[c]), a0[c]);
                a1[c] = _mm256_fmadd_ps(w1, ld(vp + kv_stride + 8 * c, m[c]), a1[c]);
            }
        }
        if (p < n_keys) {
            __m256 w0 = _mm256_set1_ps(w[p]);
#pragma GCC unroll 16
            for (int c = 0; c < 4; c++)
                a0[c] = _mm256_fmadd_ps(w0, ld(vp + 8 * c, m[c]), a0[c]);
        }
#pragma GCC unroll 16
        for (int c = 0; c < 4; c++)
            st(out + d0 + 8 * c, m[c], _mm256_add_ps(a0[c], a1[c]));
    }
}

/* Keys per block: a block of keys and values (KEY_BLOCK rows of head_dim)
 * stays in L1 while every head of the group passes over it. */
#define KEY_BLOCK 64
#define MAX_GROUP 16

/* Online softmax over key blocks, as in avx512_ops.c: a head's sequence of
 * operations depends only on n_keys, never on the other heads. */
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
            /* the next block's keys and values, over this block's 8-key steps */
            size_t p1 = p0 + nb, nb1 = n_keys - p1 < KEY_BLOCK ? n_keys - p1 : KEY_BLOCK;
            struct attn_pf pf;
            attn_pf_init(&pf, k, v, p1, nb1, kv_stride, hd, ng * (nb / 8));
            for (size_t g = 0; g < ng; g++) {
                float s[KEY_BLOCK];
                qk_scores(s, q + (g0 + g) * hd, kp, nb, kv_stride, hd, &pf);
                float bm = scale_max(s, nb, scale);
                float m_new = bm > mx[g] ? bm : mx[g];
                float alpha = _mm256_cvtss_f32(exp8(_mm256_set1_ps(mx[g] - m_new))); /* 0 for the first block */
                sum[g] = sum[g] * (double)alpha + exp_sum(s, nb, m_new);
                mx[g] = m_new;
                weighted_sum(out + (g0 + g) * hd, alpha, s, vp, nb, kv_stride, hd);
            }
            attn_pf_finish(&pf);
        }
        for (size_t g = 0; g < ng; g++) {
            float *o = out + (g0 + g) * hd;
            __m256 inv = _mm256_set1_ps((float)(1.0 / sum[g]));
            for (size_t d = 0; d < hd; d += 8) {
                __m256i m = first(hd - d);
                st(o + d, m, _mm256_mul_ps(ld(o + d, m), inv));
            }
        }
    }
}

void cit_ops_avx2(struct cit_ops *o)
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
