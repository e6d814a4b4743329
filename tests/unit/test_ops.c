/* test_ops.c: the SIMD versions of the forward pass's ops (kernels/ops.h)
 * on every tier this machine supports, against the scalar versions (which
 * use libm's expf and sum in double) on random inputs of awkward sizes,
 * within tolerances a few float roundings wide; the vectorised exp against
 * exp computed in double over a dense sweep and its edge cases; and the
 * property the forward pass relies on: an element's result does not depend
 * on where in the array it lies, and outputs never spill past their ends. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "support.h"

#define GUARD 16
#define GUARD_VAL 1234.5f

static const size_t sizes[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, 1000};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

/* Distance in units in the last place between two finite floats of any sign. */
static int64_t ulp_diff(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia;
    int64_t ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return oa > ob ? oa - ob : ob - oa;
}

/* A buffer of n floats followed by GUARD guard values. */
static float *alloc_guarded(size_t n)
{
    float *p = malloc((n + GUARD) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < GUARD; i++)
        p[n + i] = GUARD_VAL;
    return p;
}

static void check_guard(const float *p, size_t n, const char *what)
{
    for (size_t i = 0; i < GUARD; i++)
        if (p[n + i] != GUARD_VAL)
            fail_msg("%s: wrote past the end (n %zu, index %zu)", what, n, n + i);
}

static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * test_rng_gauss();
}

/* |got - want| <= tol * max(|want|, floor), or both the same non-finite value. */
static void expect_close(float got, float want, double tol, double floor, const char *what, const char *isa, size_t n,
                         size_t i)
{
    if (isnan(want) && isnan(got))
        return;
    if (isinf(want) && got == want)
        return;
    double err = fabs((double)got - (double)want);
    double lim = tol * fmax(fabs((double)want), floor);
    if (!(err <= lim))
        fail_msg("%s on %s: n %zu, element %zu: %.9g, scalar %.9g (error %.3g, limit %.3g)", what, isa, n, i,
                 (double)got, (double)want, err, lim);
}

static void check_exp_value(const struct cit_ops *o, const char *isa, float x)
{
    float y;
    o->exp(&y, &x, 1);
    if (isnan(x)) {
        assert_true(isnan(y));
        return;
    }
    double e = exp((double)x);
    float want = (float)e; /* correctly rounded for all but the rarest ties */
    if (isinf(want) || want == 0.0f) {
        /* overflow: inf; deep underflow: 0 (or the smallest subnormal near the boundary) */
        if (isinf(want) ? y != want : ulp_diff(y, 0.0f) > 1)
            fail_msg("exp on %s: exp(%.9g) = %.9g, want %.9g", isa, (double)x, (double)y, (double)want);
        return;
    }
    if (ulp_diff(y, want) > 2)
        fail_msg("exp on %s: exp(%.9g) = %.9g, want %.9g (%lld ulp)", isa, (double)x, (double)y, (double)want,
                 (long long)ulp_diff(y, want));
}

static void test_exp(void **state)
{
    (void)state;
    static const float edges[] = {0.0f,      -0.0f,     1.0f,        -1.0f,      1e-30f,      -1e-30f,     0.3465736f,
                                  -0.3465736f, 88.72283f, 88.72284f, 88.8f,      89.0f,      100.0f,      -87.33654f,
                                  -87.4f,      -100.0f,   -103.2789f,  -103.97f,   -104.0f,     -110.0f,     -1e30f,
                                  1e30f,       INFINITY,  -INFINITY,   NAN,        -NAN};
    for (int isa = 0; isa <= (int)cit_isa_detected(); isa++) {
        const struct cit_ops *o = cit_ops_for_isa((enum cit_isa)isa);
        const char *name = cit_isa_name((enum cit_isa)isa);
        assert_non_null(o);
        for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
            check_exp_value(o, name, edges[i]);
        float y;
        float x = -INFINITY;
        o->exp(&y, &x, 1);
        assert_true(y == 0.0f);
        x = INFINITY;
        o->exp(&y, &x, 1);
        assert_true(isinf(y) && y > 0);
        /* a dense sweep, in one call so the vector body and tails both run */
        enum { N = 200003 };
        float *xs = malloc(N * sizeof *xs), *ys = alloc_guarded(N);
        assert_non_null(xs);
        for (size_t i = 0; i < N; i++)
            xs[i] = -106.0f + 196.0f * (float)i / (float)N;
        o->exp(ys, xs, N);
        check_guard(ys, N, "exp");
        for (size_t i = 0; i < N; i++) {
            float want = (float)exp((double)xs[i]);
            if (isinf(want) ? ys[i] != want : ulp_diff(ys[i], want) > 2)
                fail_msg("exp on %s: exp(%.9g) = %.9g, want %.9g", name, (double)xs[i], (double)ys[i],
                         (double)want);
        }
        /* small arguments, where the polynomial does all the work */
        for (size_t i = 0; i < N; i++)
            xs[i] = -0.75f + 1.5f * (float)i / (float)N;
        o->exp(ys, xs, N);
        for (size_t i = 0; i < N; i++)
            if (ulp_diff(ys[i], (float)exp((double)xs[i])) > 2)
                fail_msg("exp on %s: exp(%.9g) = %.9g", name, (double)xs[i], (double)ys[i]);
        free(xs);
        free(ys);
    }
}

static void test_elementwise(void **state)
{
    (void)state;
    const struct cit_ops *ref = cit_ops_for_isa(CIT_ISA_SCALAR);
    test_rng_seed(99);
    for (int isa = 1; isa <= (int)cit_isa_detected(); isa++) {
        const struct cit_ops *o = cit_ops_for_isa((enum cit_isa)isa);
        const char *name = cit_isa_name((enum cit_isa)isa);
        for (size_t si = 0; si < N_SIZES; si++) {
            size_t n = sizes[si];
            float *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w), *u = malloc(n * sizeof *u);
            float *a = alloc_guarded(n), *b = alloc_guarded(n);
            assert_non_null(x);
            assert_non_null(w);
            assert_non_null(u);
            fill(x, n, 3.0f);
            fill(w, n, 1.0f);
            fill(u, n, 2.0f);
            x[n / 2] = 40.0f; /* an outlier */

            ref->rmsnorm(a, x, w, n, 1e-5f);
            o->rmsnorm(b, x, w, n, 1e-5f);
            check_guard(b, n, "rmsnorm");
            for (size_t i = 0; i < n; i++)
                expect_close(b[i], a[i], 4e-7, 0, "rmsnorm", name, n, i);
            memcpy(b, x, n * sizeof *b); /* in place */
            o->rmsnorm(b, b, w, n, 1e-5f);
            for (size_t i = 0; i < n; i++)
                expect_close(b[i], a[i], 4e-7, 0, "rmsnorm in place", name, n, i);

            /* softmax: large spread, so exp underflows for some entries */
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = 20.0f * x[i];
            ref->softmax(a, n, 0.125f);
            o->softmax(b, n, 0.125f);
            check_guard(b, n, "softmax");
            for (size_t i = 0; i < n; i++)
                expect_close(b[i], a[i], 4e-6, 1e-30, "softmax", name, n, i);

            /* swiglu with gates up to about +-50 (exp over- and underflow paths) */
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = 5.0f * x[i];
            ref->swiglu(a, u, n);
            o->swiglu(b, u, n);
            check_guard(b, n, "swiglu");
            for (size_t i = 0; i < n; i++)
                expect_close(b[i], a[i], 6e-7, 1e-30, "swiglu", name, n, i);

            memcpy(a, x, n * sizeof *a);
            memcpy(b, x, n * sizeof *b);
            ref->add(a, w, n);
            o->add(b, w, n);
            check_guard(b, n, "add");
            assert_memory_equal(a, b, n * sizeof *a);

            free(x), free(w), free(u), free(a), free(b);
        }
    }
}

/* An element's result is the same wherever it lies in the array (the
 * forward pass runs swiglu and add over a whole batch at once). */
static void test_position_independent(void **state)
{
    (void)state;
    enum { N = 150 };
    float g[N], u[N], all[N], part[N];
    test_rng_seed(7);
    fill(g, N, 4.0f);
    fill(u, N, 1.0f);
    for (int isa = 0; isa <= (int)cit_isa_detected(); isa++) {
        const struct cit_ops *o = cit_ops_for_isa((enum cit_isa)isa);
        memcpy(all, g, sizeof all);
        o->swiglu(all, u, N);
        for (size_t off = 0; off < 20; off++) {
            size_t len = N - off - off % 7;
            memcpy(part, g + off, len * sizeof *part);
            o->swiglu(part, u + off, len);
            assert_memory_equal(part, all + off, len * sizeof *part);
            o->exp(part, g + off, len);
            float one;
            for (size_t i = 0; i < len; i += 13) {
                o->exp(&one, g + off + i, 1);
                assert_memory_equal(&one, &part[i], sizeof one);
            }
        }
    }
}

static void test_rope(void **state)
{
    (void)state;
    static const uint32_t dims[][2] = {{8, 8}, {64, 64}, {64, 32}, {80, 80}, {128, 64}, {96, 96}, {34, 34}, {34, 18}};
    const struct cit_ops *ref = cit_ops_for_isa(CIT_ISA_SCALAR);
    test_rng_seed(5);
    for (int isa = 1; isa <= (int)cit_isa_detected(); isa++) {
        const struct cit_ops *o = cit_ops_for_isa((enum cit_isa)isa);
        const char *name = cit_isa_name((enum cit_isa)isa);
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (int neox = 0; neox < 2; neox++) {
                uint32_t hd = dims[di][0], n_rot = dims[di][1], n_heads = 3;
                size_t n = (size_t)n_heads * hd;
                float *cs = malloc(n_rot * sizeof *cs);
                float *x = malloc(n * sizeof *x), *a = alloc_guarded(n), *b = alloc_guarded(n);
                assert_non_null(cs);
                assert_non_null(x);
                cit_rope_angles(cs, 1234, n_rot, 10000.0f, 1.0f, NULL);
                fill(x, n, 2.0f);
                memcpy(a, x, n * sizeof *a);
                memcpy(b, x, n * sizeof *b);
                ref->rope(a, n_heads, hd, n_rot, cs, neox);
                o->rope(b, n_heads, hd, n_rot, cs, neox);
                check_guard(b, n, "rope");
                for (size_t i = 0; i < n; i++) {
                    if (i % hd >= n_rot) /* dims past n_rot are untouched */
                        assert_memory_equal(&b[i], &x[i], sizeof(float));
                    expect_close(b[i], a[i], 1e-6, 2.0, neox ? "rope neox" : "rope", name, n, i);
                }
                free(cs), free(x), free(a), free(b);
            }
    }
}

/* Grouped heads against the scalar version, and each head of a group
 * bit-identical to the same head passed alone. Key counts straddle the
 * SIMD key blocks (16 keys, 64-key blocks of the online softmax). */
static void test_attention(void **state)
{
    (void)state;
    static const size_t keys[] = {1, 2, 7, 8, 15, 16, 17, 33, 63, 64, 65, 100, 129, 300};
    static const size_t hds[] = {8, 20, 64, 80, 128};
    enum { G = 5 };
    const struct cit_ops *ref = cit_ops_for_isa(CIT_ISA_SCALAR);
    test_rng_seed(11);
    for (int isa = 1; isa <= (int)cit_isa_detected(); isa++) {
        const struct cit_ops *o = cit_ops_for_isa((enum cit_isa)isa);
        const char *name = cit_isa_name((enum cit_isa)isa);
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
            for (size_t ki = 0; ki < 2 * (sizeof keys / sizeof keys[0]); ki++) {
                /* rows interleaved with other data, and rows packed (the KV cache's layout) */
                size_t hd = hds[hi], n_keys = keys[ki / 2], stride = ki % 2 ? hd : 2 * hd + 3;
                /* this head's rows end exactly at the buffer end, so reads past them would be caught by ASan */
                size_t len = (n_keys - 1) * stride + hd;
                float *k = malloc(len * sizeof *k), *v = malloc(len * sizeof *v), *q = malloc(G * hd * sizeof *q);
                float *sc = alloc_guarded(n_keys);
                float *a = alloc_guarded(G * hd), *b = alloc_guarded(G * hd), *one = alloc_guarded(hd);
                assert_non_null(k);
                assert_non_null(v);
                assert_non_null(q);
                fill(k, len, 1.0f);
                fill(v, len, 1.0f);
                fill(q, G * hd, 3.0f);
                if (n_keys > 40) /* a late key that dominates: the running maximum grows between blocks */
                    for (size_t d = 0; d < hd; d++)
                        k[(n_keys - 2) * stride + d] = q[d] * 2.0f;
                float scale = 1.0f / sqrtf((float)hd);
                ref->attn_heads(a, q, G, k, v, n_keys, stride, hd, scale, sc);
                o->attn_heads(b, q, G, k, v, n_keys, stride, hd, scale, sc);
                check_guard(b, G * hd, "attention output");
                check_guard(sc, n_keys, "attention scores");
                for (size_t i = 0; i < G * hd; i++)
                    expect_close(b[i], a[i], 1e-5, 1.0, "attention", name, n_keys, i); /* v ~ N(0, 1) */
                for (size_t g = 0; g < G; g++) {
                    o->attn_heads(one, q + g * hd, 1, k, v, n_keys, stride, hd, scale, sc);
                    check_guard(one, hd, "attention output");
                    assert_memory_equal(one, b + g * hd, hd * sizeof *one);
                }
                free(k), free(v), free(q), free(sc), free(a), free(b), free(one);
            }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_position_independent),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
