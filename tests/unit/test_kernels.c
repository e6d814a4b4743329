/* test_kernels.c: every matmul kernel on every instruction-set tier this
 * machine supports must reproduce the scalar reference bit for bit
 * (kernels/kernels.h states the contract). For each type with a kernel:
 * random weights (quantizer output, and raw random codes with finite
 * scales), random activations with zero blocks and outliers, awkward row
 * lengths, row counts and token counts; activations packed in group-sized
 * pieces and rows computed in split ranges; each output compared with the
 * reference vec_dot of the weight row and the reference-converted token,
 * and the padding of the output left untouched. Exact equality across tile
 * shapes is what makes a sequence's logits independent of its batch. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#if defined(__x86_64__) && !defined(CITADEL_NO_SIMD)
#include <cpuid.h>
#endif

#include "kernels/kernels.h"
#include "kernels/repack.h"
#include "support.h"
#include "tensor/quants.h"

static const uint32_t weight_types[] = {CIT_TYPE_F32,  CIT_TYPE_F16,  CIT_TYPE_BF16, CIT_TYPE_Q8_0,
                                        CIT_TYPE_Q4_0, CIT_TYPE_Q4_K, CIT_TYPE_Q5_K, CIT_TYPE_Q6_K};

static void put_half(unsigned char *p, float v)
{
    uint16_t h = cit_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Random codes with finite, moderate scales: the bytes of every block are
 * random except the half-precision scale fields. Q8_0 codes stay in
 * [-127, 127], the range every quantizer writes. */
static void random_codes(uint32_t type, unsigned char *row, size_t n_blocks)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    for (size_t b = 0; b < n_blocks; b++) {
        unsigned char *blk = row + b * tr->type_size;
        for (uint32_t i = 0; i < tr->type_size; i++)
            blk[i] = (unsigned char)test_rng_next();
        float d = (float)(test_rng_unif() * 0.02 + 1e-4) * (test_rng_next() & 1 ? 1 : -1);
        switch (type) {
        case CIT_TYPE_Q8_0:
            for (int i = 2; i < 34; i++)
                if (blk[i] == 0x80)
                    blk[i] = 0x81;
            put_half(blk, d);
            break;
        case CIT_TYPE_Q4_0: put_half(blk, d); break;
        case CIT_TYPE_Q4_K:
        case CIT_TYPE_Q5_K:
            put_half(blk, fabsf(d));
            put_half(blk + 2, (float)test_rng_unif() * 0.01f);
            break;
        case CIT_TYPE_Q6_K: put_half(blk + 208, d); break;
        default: break;
        }
    }
}

/* BF16 weights of every magnitude, random signs and mantissas, by the
 * row's class: 0, exponents from subnormal (0) to about 2^13; 1, subnormal
 * or barely normal (exponent field 0-4); 2, about 2^-60 (field 64-70). With
 * tiny_activations' tokens, products and lane sums fall on both sides of
 * the smallest normal: the reference reads subnormal inputs as zero and
 * flushes tiny results, the fold's included (the bf16 dot-product
 * instruction's arithmetic), and every tier must match it. */
static void random_bf16_tiny(unsigned char *row, size_t n, int cls)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = test_rng_next();
        unsigned e = cls == 1 ? (unsigned)((r >> 8) % 5)
                     : cls == 2 ? 64 + (unsigned)((r >> 8) % 7)
                                : (unsigned)(r % 3 == 0 ? (r >> 8) % 67 : 100 + (r >> 8) % 40);
        uint16_t h = (uint16_t)(((r >> 20) & 1) << 15 | e << 7 | ((r >> 24) & 0x7f));
        memcpy(row + 2 * i, &h, 2);
    }
}

/* A token's activations for random_bf16_tiny's rows, by its class: 0, some
 * scaled to about 1e-20, 1e-38 or 1e-40 (subnormal); 1, all scaled by 1e6
 * (subnormal weights times these are normal); 2, all by 1e-20. */
static void tiny_activations(float *x, size_t n, int cls)
{
    static const float scale[5] = {1.0f, 1e-20f, 1e-38f, 1e-40f, 1.0f};
    for (size_t i = 0; i < n; i++)
        x[i] *= cls == 1 ? 1e6f : cls == 2 ? 1e-20f : scale[test_rng_next() % 5];
}

static void random_activations(float *x, size_t n_in, size_t n_tokens)
{
    for (size_t t = 0; t < n_tokens; t++) {
        float scale = (float)(0.1 + 4 * test_rng_unif());
        for (size_t i = 0; i < n_in; i++) {
            float v = scale * test_rng_gauss();
            if (i % 97 == 13)
                v *= 30; /* outliers */
            if (t % 3 == 1 && i >= 32 && i < 64)
                v = 0; /* a zero block */
            x[t * n_in + i] = v;
        }
    }
}

struct shape {
    size_t n_in, n_out, n_tokens;
};

/* Checks every supported tier on one shape; `raw` picks random codes;
 * `r16` gives the kernels the matrix in the R16 layout (kernels/repack.h). */
static void check_shape_layout(uint32_t type, struct shape s, bool raw, bool r16)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    const struct cit_type_traits *vt = cit_type_traits(tr->vec_dot_type);
    uint64_t row_bytes = 0, act_row = 0;
    assert_true(cit_type_row_size(type, s.n_in, &row_bytes));
    assert_true(cit_type_row_size(tr->vec_dot_type, s.n_in, &act_row));

    unsigned char *w = malloc(row_bytes * s.n_out);
    float *x = malloc(s.n_in * s.n_tokens * sizeof(float));
    float *tmp = malloc(s.n_in * sizeof(float));
    unsigned char *ref_act = malloc(act_row * s.n_tokens);
    size_t ldy = s.n_out + 3;
    float *want = malloc(ldy * s.n_tokens * sizeof(float));
    float *got = malloc(ldy * s.n_tokens * sizeof(float));
    assert_non_null(w);
    assert_non_null(x);
    assert_non_null(tmp);
    assert_non_null(ref_act);
    assert_non_null(want);
    assert_non_null(got);

    for (size_t r = 0; r < s.n_out; r++) {
        if (raw && tr->is_quantized) {
            random_codes(type, w + r * row_bytes, s.n_in / tr->block_size);
        } else if (raw && type == CIT_TYPE_BF16) {
            random_bf16_tiny(w + r * row_bytes, s.n_in, (int)(r % 3));
        } else {
            float scale = (float)(0.01 + test_rng_unif());
            for (size_t i = 0; i < s.n_in; i++)
                tmp[i] = scale * test_rng_gauss();
            tr->from_float(tmp, w + r * row_bytes, (int64_t)s.n_in);
        }
    }
    unsigned char *w_used = w;
    if (r16) {
        assert_true(s.n_out % CIT_R16_ROWS == 0);
        w_used = malloc(row_bytes * s.n_out);
        unsigned char *back = malloc(row_bytes * CIT_R16_ROWS);
        assert_non_null(w_used);
        assert_non_null(back);
        for (size_t g = 0; g < s.n_out; g += CIT_R16_ROWS) {
            cit_r16_pack_group(type, w + g * row_bytes, row_bytes, w_used + g * row_bytes);
            cit_r16_unpack_group(type, w_used + g * row_bytes, row_bytes, back);
            assert_memory_equal(back, w + g * row_bytes, row_bytes * CIT_R16_ROWS);
            memset(back, 0, row_bytes * CIT_R16_ROWS);
            cit_r16_unpack_group_plain(type, w_used + g * row_bytes, row_bytes, back);
            assert_memory_equal(back, w + g * row_bytes, row_bytes * CIT_R16_ROWS);
        }
        free(back);
    }
    random_activations(x, s.n_in, s.n_tokens);
    if (raw && type == CIT_TYPE_BF16)
        for (size_t t = 0; t < s.n_tokens; t++)
            tiny_activations(x + t * s.n_in, s.n_in, (int)(t % 3));
    for (size_t t = 0; t < s.n_tokens; t++)
        vt->from_float(x + t * s.n_in, ref_act + t * act_row, (int64_t)s.n_in);
    for (size_t t = 0; t < s.n_tokens; t++)
        for (size_t r = 0; r < s.n_out; r++)
            tr->vec_dot((int64_t)s.n_in, &want[t * ldy + r], w + r * row_bytes, ref_act + t * act_row);

    for (int isa = 0; isa <= (int)cit_isa_detected(); isa++) {
        if (!cit_isa_supported((enum cit_isa)isa))
            continue;
        const struct cit_kernel *k = cit_kernel_for_isa(type, (enum cit_isa)isa);
        assert_non_null(k);
        uint64_t bytes = 0, fewer = 0;
        assert_true(k->act_bytes(s.n_in, s.n_tokens, &bytes));
        assert_true(k->act_bytes(s.n_in, s.n_tokens - 1, &fewer));
        assert_true(fewer <= bytes);
        unsigned char *act = malloc(bytes ? bytes : 1);
        assert_non_null(act);
        /* Pack in pieces of one or two groups, as threads would. */
        size_t g = k->pack_group;
        assert_true(g > 0);
        for (size_t t0 = 0, piece = 0; t0 < s.n_tokens; piece++) {
            size_t t1 = t0 + g * (1 + piece % 2);
            if (t1 > s.n_tokens)
                t1 = s.n_tokens;
            k->pack(x, s.n_in, s.n_tokens, t0, t1, act);
            t0 = t1;
        }
        /* Rows in three uneven ranges. */
        for (size_t i = 0; i < ldy * s.n_tokens; i++)
            got[i] = -12345.0f;
        size_t cut1 = s.n_out / 3, cut2 = s.n_out - s.n_out / 4;
        size_t cuts[4] = {0, cut1, cut2, s.n_out};
        for (int c = 0; c < 3; c++)
            if (cuts[c] < cuts[c + 1] && r16)
                cit_r16_gemm(k, type, w_used, row_bytes, s.n_in, cuts[c], cuts[c + 1], act, s.n_tokens, got, ldy);
            else if (cuts[c] < cuts[c + 1])
                k->gemm(w, row_bytes, s.n_in, cuts[c], cuts[c + 1], act, s.n_tokens, got, ldy);
        for (size_t t = 0; t < s.n_tokens; t++) {
            for (size_t r = 0; r < ldy; r++) {
                float a = got[t * ldy + r];
                float b = r < s.n_out ? want[t * ldy + r] : -12345.0f;
                if (memcmp(&a, &b, sizeof a) != 0) {
                    fail_msg("%s%s on %s: n_in %zu n_out %zu n_tokens %zu%s: y[token %zu][row %zu] = %.9g, "
                             "reference %.9g",
                             tr->name, r16 ? " (R16)" : "", cit_isa_name((enum cit_isa)isa), s.n_in, s.n_out,
                             s.n_tokens, !raw ? "" : type == CIT_TYPE_BF16 ? " (tiny values)" : " (random codes)", t, r,
                             (double)a, (double)b);
                }
            }
        }
        free(act);
    }
    if (w_used != w)
        free(w_used);
    free(w);
    free(x);
    free(tmp);
    free(ref_act);
    free(want);
    free(got);
}

static void check_shape(uint32_t type, struct shape s, bool raw)
{
    check_shape_layout(type, s, raw, false);
}

/* Q4_0, Q8_0, Q4_K and Q6_K repacked by 16 rows (cit_model_repack's layout): every tier, native
 * R16 kernel or the fallback through rows, must still give the reference's
 * bits; uneven row ranges cut groups; token counts cover each pass split of
 * the decode format and the tiled batches. */
static void test_r16_matches_reference(void **state)
{
    (void)state;
    static const size_t ins[] = {32, 96, 160, 32 * 65};
    static const size_t outs[] = {16, 48};
    static const size_t toks[] = {1, 2, 3, 4, 5, 7, 9, 16, 17, 40};
    test_rng_seed(4242);
    for (size_t a = 0; a < sizeof ins / sizeof ins[0]; a++)
        for (size_t b = 0; b < sizeof outs / sizeof outs[0]; b++)
            for (size_t c = 0; c < sizeof toks / sizeof toks[0]; c++) {
                struct shape s = {ins[a], outs[b], toks[c]};
                for (int q8 = 0; q8 < 2; q8++) {
                    uint32_t type = q8 ? CIT_TYPE_Q8_0 : CIT_TYPE_Q4_0;
                    check_shape_layout(type, s, true, true);
                    if (c % 3 == 0)
                        check_shape_layout(type, s, false, true);
                }
                /* Q4_K, Q6_K: super-blocks of 256 */
                struct shape k = {ins[a] * 8, outs[b], toks[c]};
                for (int q6 = 0; q6 < 2; q6++) {
                    uint32_t type = q6 ? CIT_TYPE_Q6_K : CIT_TYPE_Q4_K;
                    if (a < 3 || toks[c] < 17)
                        check_shape_layout(type, k, true, true);
                    if (c % 3 == 0 && a < 3)
                        check_shape_layout(type, k, false, true);
                }
            }
    /* one token over ranges of several whole groups: Q4_0 / Q8_0 read them in decode pairs
     * (group i with i + n / 2, an odd one and the cut ends alone) */
    static const uint32_t r16_types[] = {CIT_TYPE_Q4_0, CIT_TYPE_Q8_0, CIT_TYPE_Q4_K, CIT_TYPE_Q6_K};
    for (size_t ti = 0; ti < sizeof r16_types / sizeof r16_types[0]; ti++)
        for (size_t n_out = 256; n_out <= 400; n_out += 144) {
            bool k = r16_types[ti] == CIT_TYPE_Q4_K || r16_types[ti] == CIT_TYPE_Q6_K;
            check_shape_layout(r16_types[ti], (struct shape){k ? 512 : 160, n_out, 1}, true, true);
        }
    /* a batch for the tiled and matrix-unit paths */
    check_shape_layout(CIT_TYPE_Q4_0, (struct shape){288, 64, 131}, true, true);
    check_shape_layout(CIT_TYPE_Q8_0, (struct shape){288, 64, 131}, true, true);
    check_shape_layout(CIT_TYPE_Q4_K, (struct shape){768, 48, 100}, true, true);
    check_shape_layout(CIT_TYPE_Q6_K, (struct shape){768, 48, 100}, true, true);
}

static void test_every_kernel_matches_reference(void **state)
{
    (void)state;
    static const size_t outs[] = {1, 3, 16, 17, 37};
    static const size_t toks[] = {1, 2, 5, 16, 17, 40};
    for (size_t ti = 0; ti < sizeof weight_types / sizeof weight_types[0]; ti++) {
        uint32_t type = weight_types[ti];
        const struct cit_type_traits *tr = cit_type_traits(type);
        size_t bs = tr->block_size > 1 ? tr->block_size : 1;
        const struct cit_type_traits *vt = cit_type_traits(tr->vec_dot_type);
        if (vt->block_size > bs)
            bs = vt->block_size;
        size_t ins[5];
        if (bs == 1) {
            size_t v[5] = {1, 15, 33, 100, 257};
            memcpy(ins, v, sizeof v);
        } else if (bs == 32) {
            size_t v[5] = {32, 64, 96, 160, 32 * 65};
            memcpy(ins, v, sizeof v);
        } else {
            size_t v[5] = {256, 512, 768, 1280, 256 * 11};
            memcpy(ins, v, sizeof v);
        }
        test_rng_seed(1234 + type);
        for (size_t a = 0; a < 5; a++)
            for (size_t b = 0; b < sizeof outs / sizeof outs[0]; b++)
                for (size_t c = 0; c < sizeof toks / sizeof toks[0]; c++) {
                    /* Skip the largest combinations to keep the run short. */
                    if (a == 4 && (outs[b] > 17 || toks[c] > 17))
                        continue;
                    struct shape s = {ins[a], outs[b], toks[c]};
                    check_shape(type, s, false);
                    if (tr->is_quantized || type == CIT_TYPE_BF16)
                        check_shape(type, s, true);
                }
    }
}

/* A batch big enough for tiled paths (several full tiles plus remainders). */
static void test_large_batch_matches_reference(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < sizeof weight_types / sizeof weight_types[0]; ti++) {
        uint32_t type = weight_types[ti];
        size_t n_in = cit_type_traits(type)->block_size > 32 ? 512 : 96;
        test_rng_seed(77 + type);
        check_shape(type, (struct shape){n_in, 70, 131}, false);
        /* past every tier's switch to its batch path (the amx tier's is up to 96 tokens),
         * with a ragged last token group and row block */
        check_shape(type, (struct shape){n_in * 3, 33, 100},
                    cit_type_traits(type)->is_quantized || type == CIT_TYPE_BF16);
    }
    /* rows long enough that the float kernels' token chunks (768 KiB of
     * activations on AVX-512) end inside the batch: 24 tokens for F32 */
    static const uint32_t floats[] = {CIT_TYPE_F32, CIT_TYPE_F16, CIT_TYPE_BF16};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
        check_shape(floats[i], (struct shape){8192 + 3, 5, 61}, floats[i] == CIT_TYPE_BF16);
}

/* Where two weight types' kernels may share packed activations
 * (cit_kernel_same_act), the second computed from the first's packing must
 * still give its own reference outputs exactly; and the sharing the engine
 * relies on (Q/K/V and gate/up mixing K-quants, both Q4_0/Q8_0 on the tile
 * unit) must be there. */
static void test_shared_activations(void **state)
{
    (void)state;
    static const uint32_t types[] = {CIT_TYPE_Q8_0, CIT_TYPE_Q4_0, CIT_TYPE_Q4_K, CIT_TYPE_Q5_K, CIT_TYPE_Q6_K};
    static const size_t toks[] = {1, 5, 20, 40, 70, 100};
    enum { N_IN = 512, N_OUT = 19, NT = (sizeof types / sizeof types[0]) };
    test_rng_seed(4242);
    size_t max_tok = toks[sizeof toks / sizeof toks[0] - 1];
    float *x = malloc(N_IN * max_tok * sizeof(float)), *tmp = malloc(N_IN * sizeof(float));
    float *want = malloc(N_OUT * max_tok * sizeof(float)), *got = malloc(N_OUT * max_tok * sizeof(float));
    unsigned char *w[NT];
    uint64_t row_bytes[NT];
    assert_non_null(x);
    assert_non_null(tmp);
    assert_non_null(want);
    assert_non_null(got);
    random_activations(x, N_IN, max_tok);
    for (size_t i = 0; i < NT; i++) {
        const struct cit_type_traits *tr = cit_type_traits(types[i]);
        assert_true(cit_type_row_size(types[i], N_IN, &row_bytes[i]));
        w[i] = malloc(row_bytes[i] * N_OUT);
        assert_non_null(w[i]);
        for (size_t r = 0; r < N_OUT; r++) {
            for (size_t e = 0; e < N_IN; e++)
                tmp[e] = test_rng_gauss();
            tr->from_float(tmp, w[i] + r * row_bytes[i], N_IN);
        }
    }
    for (int isa = 0; isa <= (int)cit_isa_detected(); isa++) {
        if (!cit_isa_supported((enum cit_isa)isa))
            continue;
        for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++) {
            size_t n = toks[ti];
            for (size_t a = 0; a < NT; a++)
                for (size_t b = 0; b < NT; b++) {
                    const struct cit_kernel *ka = cit_kernel_for_isa(types[a], (enum cit_isa)isa);
                    const struct cit_kernel *kb = cit_kernel_for_isa(types[b], (enum cit_isa)isa);
                    if (a == b || !cit_kernel_same_act(ka, kb, n))
                        continue;
                    uint64_t bytes_a = 0, bytes_b = 0;
                    assert_true(ka->act_bytes(N_IN, n, &bytes_a) && kb->act_bytes(N_IN, n, &bytes_b));
                    unsigned char *act = malloc(bytes_a > bytes_b ? bytes_a : bytes_b);
                    assert_non_null(act);
                    ka->pack(x, N_IN, n, 0, n, act);
                    kb->gemm(w[b], row_bytes[b], N_IN, 0, N_OUT, act, n, got, N_OUT);
                    const struct cit_type_traits *tr = cit_type_traits(types[b]);
                    const struct cit_type_traits *vt = cit_type_traits(tr->vec_dot_type);
                    uint64_t act_row = 0;
                    assert_true(cit_type_row_size(tr->vec_dot_type, N_IN, &act_row));
                    unsigned char *ref = malloc(act_row);
                    assert_non_null(ref);
                    for (size_t t = 0; t < n; t++) {
                        vt->from_float(x + t * N_IN, ref, N_IN);
                        for (size_t r = 0; r < N_OUT; r++)
                            tr->vec_dot(N_IN, &want[t * N_OUT + r], w[b] + r * row_bytes[b], ref);
                    }
                    if (memcmp(got, want, n * N_OUT * sizeof(float)) != 0)
                        fail_msg("%s packed for %s on %s, %zu tokens: outputs differ from the reference",
                                 cit_type_traits(types[a])->name, tr->name, cit_isa_name((enum cit_isa)isa), n);
                    free(ref);
                    free(act);
                }
        }
    }
    enum cit_isa d = cit_isa_detected();
#define SAME(t1, t2, n) cit_kernel_same_act(cit_kernel_for_isa(t1, d), cit_kernel_for_isa(t2, d), n)
    if (d >= CIT_ISA_AVX2) /* the x86 K-quant kernels share one activation format */
        assert_true(SAME(CIT_TYPE_Q4_K, CIT_TYPE_Q6_K, 1) && SAME(CIT_TYPE_Q4_K, CIT_TYPE_Q6_K, 300));
    if (d == CIT_ISA_AMX) {
        assert_true(SAME(CIT_TYPE_Q4_0, CIT_TYPE_Q8_0, 300)); /* one tile layout */
        assert_false(SAME(CIT_TYPE_Q4_0, CIT_TYPE_Q8_0, 1));  /* the VNNI decode layouts differ */
        assert_false(SAME(CIT_TYPE_Q4_K, CIT_TYPE_Q6_K, 40)); /* tiles for Q4_K, VNNI for Q6_K */
    }
#undef SAME
    for (size_t i = 0; i < NT; i++)
        free(w[i]);
    free(x);
    free(tmp);
    free(want);
    free(got);
}

/* The flush of a tiny BF16 result, worked by hand from the bf16 dot-product
 * instruction's definition (x86 decides tininess on the result rounded to 24
 * bits with an unbounded exponent): one row of 64, weights x and tokens'
 * activations y zero but for
 *   lane 0: x1 y1 = 2^-63 2^-63 = FLT_MIN, then x0 y0 = 1.25 2^-75 x -2^-76:
 *           FLT_MIN - 1.25 2^-151, which rounds to FLT_MIN on the subnormal
 *           grid but to FLT_MIN - 2^-150 in 24 bits: tiny, so 0;
 *   lane 1: x3 y3 = FLT_MIN, then x2 y2 = 1.25 2^-75 x -2^-77: FLT_MIN -
 *           1.25 2^-153, which rounds to FLT_MIN in 24 bits: kept;
 * so the dot is FLT_MIN (a flush on the subnormal grid alone would give
 * 2 FLT_MIN). On AVX512_BF16 hardware that is the instruction's own answer. */
static void test_bf16_tininess(void **state)
{
    (void)state;
    enum { N = 64, T = 3 };
    const float xs[4] = {0x1.4p-75f, 0x1p-63f, 0x1.4p-75f, 0x1p-63f}, ys[4] = {-0x1p-76f, 0x1p-63f, -0x1p-77f, 0x1p-63f};
    unsigned char w[2 * N] = {0}, ya[2 * N] = {0};
    float x[T * N] = {0}, got[T];
    for (int i = 0; i < 4; i++) {
        uint16_t h = cit_fp32_to_bf16(xs[i]);
        memcpy(w + 2 * i, &h, 2);
        for (int t = 0; t < T; t++)
            x[t * N + i] = ys[i];
    }
    const struct cit_type_traits *tr = cit_type_traits(CIT_TYPE_BF16);
    tr->from_float(x, ya, N);
    float want;
    tr->vec_dot(N, &want, w, ya);
    if (want != 0x1p-126f)
        fail_msg("reference: %a, by hand 0x1p-126", (double)want);
    for (int isa = 0; isa <= (int)cit_isa_detected(); isa++) {
        if (!cit_isa_supported((enum cit_isa)isa))
            continue;
        const struct cit_kernel *k = cit_kernel_for_isa(CIT_TYPE_BF16, (enum cit_isa)isa);
        uint64_t bytes = 0;
        assert_true(k->act_bytes(N, T, &bytes));
        unsigned char *act = malloc(bytes);
        assert_non_null(act);
        for (size_t n = 1; n <= T; n += T - 1) { /* the decode and the batch paths */
            k->pack(x, N, n, 0, n, act);
            k->gemm(w, 2 * N, N, 0, 1, act, n, got, 1);
            for (size_t t = 0; t < n; t++)
                if (got[t] != 0x1p-126f)
                    fail_msg("BF16 on %s, %zu tokens: token %zu gives %a, by hand 0x1p-126",
                             cit_isa_name((enum cit_isa)isa), n, t, (double)got[t]);
        }
        free(act);
    }
}

static void test_dispatch(void **state)
{
    (void)state;
    enum cit_isa d = cit_isa_detected();
    assert_true(cit_isa_active() <= d);
    for (int i = 0; i < CIT_ISA_COUNT; i++)
        assert_string_not_equal(cit_isa_name((enum cit_isa)i), "?");
    assert_string_equal(cit_isa_name(CIT_ISA_COUNT), "?");
    assert_null(cit_kernel_for_isa(CIT_TYPE_Q8_K, CIT_ISA_SCALAR)); /* an activation format, not a weight */
    assert_null(cit_kernel_for_isa(CIT_TYPE_Q4_1, d));               /* known but not computed */
    assert_null(cit_kernel_for_isa(999, d));
    assert_true(cit_cpu_physical_cores() >= 1);
    /* BF16 takes vdpbf16ps from the VNNI tier up exactly where the CPU has
     * AVX512_BF16 (the compiler's own CPUID reading agrees); the tiers
     * below keep the FMA form of the same arithmetic. */
    bool bf16_cpu = false;
#if defined(__x86_64__) && !defined(CITADEL_NO_SIMD)
    __builtin_cpu_init();
    bf16_cpu = __builtin_cpu_supports("avx512bf16");
#endif
    const bool dot = d >= CIT_ISA_AVX512_VNNI && bf16_cpu;
    assert_int_equal(cit_bf16_dot_active(), dot && cit_isa_active() >= CIT_ISA_AVX512_VNNI);
    for (int isa = 0; isa <= (int)d; isa++) {
        bool uses = cit_kernel_for_isa(CIT_TYPE_BF16, (enum cit_isa)isa) !=
                    cit_kernel_for_isa(CIT_TYPE_BF16, isa >= CIT_ISA_AVX512 ? CIT_ISA_AVX512 : (enum cit_isa)isa);
        assert_int_equal(uses, dot && isa >= CIT_ISA_AVX512_VNNI);
    }
    /* avx2vnni is supported exactly where the CPU has AVX-VNNI (GCC's
     * CPUID reading; clang 14 has no name for it), with AVX2 */
    bool vnni_cpu = false;
#if defined(__x86_64__) && !defined(CITADEL_NO_SIMD)
#if defined(__clang__)
    unsigned a, b, c, e;
    vnni_cpu = __get_cpuid_count(7, 1, &a, &b, &c, &e) && (a & (1u << 4));
#else
    vnni_cpu = __builtin_cpu_supports("avxvnni");
#endif
#endif
    assert_int_equal(cit_isa_supported(CIT_ISA_AVX2_VNNI), vnni_cpu && d >= CIT_ISA_AVX2);
    for (int isa = 0; isa < CIT_ISA_COUNT; isa++)
        if (isa != CIT_ISA_AVX2_VNNI)
            assert_int_equal(cit_isa_supported((enum cit_isa)isa), isa <= (int)d);
    assert_false(cit_isa_supported(CIT_ISA_COUNT));
    /* CITADEL_ISA caps: the lower tier, avx2vnni only with AVX-VNNI (Ice Lake:
     * avx512vnni without it; Alder Lake: avx2vnni, no AVX-512) */
    assert_int_equal(cit_isa_cap(CIT_ISA_AVX512_VNNI, CIT_ISA_AVX2_VNNI, false), CIT_ISA_AVX2);
    assert_int_equal(cit_isa_cap(CIT_ISA_AVX512_VNNI, CIT_ISA_AVX2_VNNI, true), CIT_ISA_AVX2_VNNI);
    assert_int_equal(cit_isa_cap(CIT_ISA_AMX, CIT_ISA_AVX512, true), CIT_ISA_AVX512);
    assert_int_equal(cit_isa_cap(CIT_ISA_AVX2_VNNI, CIT_ISA_AMX, true), CIT_ISA_AVX2_VNNI);
    assert_int_equal(cit_isa_cap(CIT_ISA_AVX2_VNNI, CIT_ISA_AVX512, true), CIT_ISA_AVX2_VNNI);
    assert_int_equal(cit_isa_cap(CIT_ISA_AVX2, CIT_ISA_AVX2_VNNI, false), CIT_ISA_AVX2);
    assert_int_equal(cit_isa_cap(CIT_ISA_AVX512, CIT_ISA_SCALAR, false), CIT_ISA_SCALAR);
    assert_true(cit_isa_supported(cit_isa_active()));
    /* It replaces exactly the int8 kernels; the tiers above build on avx2,
     * so none of them holds an AVX-VNNI kernel. */
    for (uint32_t t = 0; t < CIT_TYPE_COUNT; t++) {
        const struct cit_kernel *k = cit_kernel_for_isa(t, CIT_ISA_AVX2_VNNI);
        if (!k)
            continue;
        const bool int8 = t == CIT_TYPE_Q4_0 || t == CIT_TYPE_Q8_0 || t == CIT_TYPE_Q4_K || t == CIT_TYPE_Q5_K ||
                          t == CIT_TYPE_Q6_K;
        assert_int_equal(k != cit_kernel_for_isa(t, CIT_ISA_AVX2), int8 && CIT_X86_KERNELS);
        for (int isa = CIT_ISA_AVX512; int8 && CIT_X86_KERNELS && isa < CIT_ISA_COUNT; isa++)
            assert_ptr_not_equal(cit_kernel_for_isa(t, (enum cit_isa)isa), k);
    }
    fprintf(stderr, "kernels: detected %s, active %s, %u physical cores; BF16 by %s; AVX-VNNI %s\n",
            cit_isa_name(d), cit_isa_name(cit_isa_active()), cit_cpu_physical_cores(),
            cit_bf16_dot_active() ? "vdpbf16ps" : "f32 FMAs", vnni_cpu ? "yes" : "no");
}

static void test_cache_size_parse(void **state)
{
    (void)state;
    uint64_t b = 1;
    assert_true(cit_parse_cache_size("32768K\n", &b));
    assert_int_equal(b, (uint64_t)32 << 20);
    assert_true(cit_parse_cache_size("1M", &b));
    assert_int_equal(b, (uint64_t)1 << 20);
    assert_true(cit_parse_cache_size("2G", &b));
    assert_int_equal(b, (uint64_t)2 << 30);
    assert_true(cit_parse_cache_size("512", &b));
    assert_int_equal(b, 512);
    b = 7;
    const char *bad[] = {"", "K", "-1K", "12Q", "12K ", "1KK", "99999999999999999999", "18014398509481984K", NULL};
    for (int i = 0; bad[i]; i++)
        assert_false(cit_parse_cache_size(bad[i], &b));
    assert_int_equal(b, 7); /* untouched on failure */
    assert_false(cit_parse_cache_size(NULL, &b));
    assert_false(cit_parse_cache_size("1K", NULL));
}

/* The last-level cache: where /sys lists cpu0's caches, at least cpu0's
 * highest data or unified one, and at most one such per online CPU. */
static void test_llc_bytes(void **state)
{
    (void)state;
    uint64_t llc = cit_cpu_llc_bytes(), top_size = 0;
    long top_level = -1;
    for (unsigned idx = 0; idx < 16; idx++) {
        char path[128], line[64];
        long level;
        uint64_t size;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%u/level", idx);
        FILE *f = fopen(path, "r");
        if (!f)
            break;
        bool ok = fscanf(f, "%ld", &level) == 1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%u/type", idx);
        if (!ok || !(f = fopen(path, "r")))
            continue;
        ok = fgets(line, sizeof line, f) != NULL && strncmp(line, "Instruction", 11) != 0;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%u/size", idx);
        if (!ok || level <= top_level || !(f = fopen(path, "r")))
            continue;
        ok = fgets(line, sizeof line, f) != NULL && cit_parse_cache_size(line, &size);
        fclose(f);
        if (ok) {
            top_level = level;
            top_size = size;
        }
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(stderr, "kernels: last-level cache %llu bytes (cpu0's level-%ld cache %llu bytes, %ld CPUs online)\n",
            (unsigned long long)llc, top_level, (unsigned long long)top_size, online);
    if (top_level < 0)
        return; /* no /sys listing: glibc's figure or 0, nothing to check it against */
    assert_true(llc >= top_size);
    assert_true(llc <= top_size * (uint64_t)(online > 0 ? online : 1));
}

/* The row kernels' prefetch distances follow the CPU's vendor, here read
 * from the kernel's /proc/cpuinfo rather than cpuid: AMD's, or the rest's. */
static void test_row_prefetch_by_vendor(void **state)
{
    (void)state;
    const struct cit_row_prefetch *t = cit_row_prefetch();
    assert_non_null(t);
    assert_ptr_equal(t, cit_row_prefetch());
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        skip();
    char line[256];
    int amd = -1;
    long family = -1;
    while ((amd < 0 || family < 0) && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "vendor_id", 9))
            amd = strstr(line, "AuthenticAMD") != NULL;
        else if (!strncmp(line, "cpu family", 10) && strchr(line, ':'))
            family = strtol(strchr(line, ':') + 1, NULL, 10);
    }
    fclose(f);
    if (amd < 0)
        skip(); /* not an x86 /proc/cpuinfo */
    /* AMD family 26 (0x1a, Zen 5) and later take the session-15 settings */
    const bool zen5 = amd && CIT_X86_KERNELS && family >= 26;
    fprintf(stderr,
            "kernels: row prefetch Q4_0 %u, Q8_0 %u bytes, Q4_K / Q5_K %u super-blocks, next block in file order "
            "from %u-byte rows, rows one after another %u (Q4_0) / %u (Q8_0; rows up to %u blocks) / %u (K-quants, "
            "rows up to %u super-blocks) bytes ahead (%s, family %ld)\n",
            t->q4_0, t->q8_0, t->k_affine, t->seq_row_bytes, t->row_order, t->row_order_q8, t->row_order_blocks,
            t->row_order_k, t->row_order_k_sb, amd ? "AMD" : "not AMD", family);
    assert_int_equal(t->q4_0, amd && CIT_X86_KERNELS ? 768 : 256);
    assert_int_equal(t->q8_0, amd && CIT_X86_KERNELS ? 1024 : 512);
    assert_int_equal(t->k_affine, amd && CIT_X86_KERNELS ? 8 : 4);
    assert_int_equal(t->seq_row_bytes, amd && CIT_X86_KERNELS ? 2048 : 0);
    assert_int_equal(t->row_order, amd && CIT_X86_KERNELS ? 8192 : 0);
    assert_int_equal(t->row_order_k, amd && CIT_X86_KERNELS ? 8192 : 0);
    assert_true(t->row_order_q8 == 0 || (amd && CIT_X86_KERNELS && t->row_order_q8 == 8192));
    assert_true(t->row_order_blocks == 227 || (amd && CIT_X86_KERNELS && t->row_order_blocks == 640));
    assert_true(t->row_order_k_sb == 16 || (amd && CIT_X86_KERNELS && t->row_order_k_sb == 96));
    assert_int_equal(t->row_order_q8, zen5 ? 8192 : 0);
    assert_int_equal(t->row_order_blocks, zen5 ? 640 : 227);
    assert_int_equal(t->row_order_k_sb, zen5 ? 96 : 16);
}

/* The row kernels' settings for the next checks: *form in place of the
 * CPU's (all of it taken), and the generator seeded. */
static void use_form(const struct cit_row_prefetch *form, unsigned seed)
{
    cit_row_prefetch_override(form);
    assert_memory_equal(cit_row_prefetch(), form, sizeof *form);
    test_rng_seed(seed);
}

/* Back to the CPU's own settings, which must be what they were (*cpu). */
static void restore_form(const struct cit_row_prefetch *cpu)
{
    cit_row_prefetch_override(NULL);
    assert_memory_equal(cit_row_prefetch(), cpu, sizeof *cpu);
}

/* Every form of the Q4_0 / Q8_0 row decode, whichever the CPU picks: rows
 * side by side (per-row prefetch, or the next block in file order from
 * short rows on), or one whole row after another at a near and a far
 * distance, must give the reference's bits; row lengths cover one block, partial
 * chunks and 16-block groups, and rows just short of the row-order forms'
 * limits and just past them; 1 to 11 tokens (Q8_0's row order in passes of
 * up to 3; 12 and more take the tiled path). */
static void test_row_forms_match_reference(void **state)
{
    (void)state;
    const struct cit_row_prefetch cpu = *cit_row_prefetch();
    struct cit_row_prefetch forms[4] = {cpu, cpu, cpu, cpu};
    forms[0].row_order = 0;
    forms[0].row_order_q8 = 0;
    forms[0].seq_row_bytes = 0;
    forms[1].row_order = 0;
    forms[1].row_order_q8 = 0;
    forms[1].seq_row_bytes = 64;
    forms[2].row_order = 64;
    forms[2].row_order_q8 = 64;
    forms[2].row_order_blocks = 227;
    forms[3].row_order = 8192;
    forms[3].row_order_q8 = 8192;
    forms[3].row_order_blocks = 1000; /* past the scratch: rows over 640 blocks side by side */
    /* rows on either side of the row-order limits: 227 / 228 blocks (7264 / 7296), 640 / 641
     * (20480 / 20512) */
    static const size_t ins[] = {32, 160, 544, 3872, 7264, 7296, 20480, 20512};
    static const size_t outs[] = {1, 17, 37};
    static const size_t toks[] = {1, 2, 3, 4, 5, 11};
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        use_form(&forms[f], 900 + (unsigned)f);
        for (size_t a = 0; a < sizeof ins / sizeof ins[0]; a++)
            for (size_t b = 0; b < sizeof outs / sizeof outs[0]; b++)
                for (size_t c = 0; c < sizeof toks / sizeof toks[0]; c++) {
                    struct shape sh = {ins[a], outs[b], toks[c]};
                    check_shape(CIT_TYPE_Q4_0, sh, true);
                    check_shape(CIT_TYPE_Q8_0, sh, c % 2 == 1);
                }
    }
    restore_form(&cpu);
}

/* Both forms of the K-quant row decode (rows side by side, or with VNNI
 * one whole row after another at a near and a far distance, for rows of up
 * to 16 or 32 super-blocks, or asked for longer ones than its tables hold)
 * must give the reference's bits: rows of 1 to 97 super-blocks (a block's
 * runs of 16 items then span row ends or wrap the super-block index more
 * than once; past 16 and 32, the per-token tables' later vectors; 96 the
 * tables' end), row counts with and without whole 16-row blocks, and 1 to
 * 3 tokens (5: the tile path). */
static void test_k_row_forms_match_reference(void **state)
{
    (void)state;
    const struct cit_row_prefetch cpu = *cit_row_prefetch();
    struct cit_row_prefetch forms[4] = {cpu, cpu, cpu, cpu};
    forms[0].row_order_k = 0;
    forms[1].row_order_k = 64;
    forms[1].row_order_k_sb = 16;
    forms[2].row_order_k = 32768;
    forms[2].row_order_k_sb = 32;
    forms[3].row_order_k = 8192;
    forms[3].row_order_k_sb = 1000; /* past the tables: rows over 96 super-blocks side by side */
    static const uint32_t types[] = {CIT_TYPE_Q4_K, CIT_TYPE_Q5_K, CIT_TYPE_Q6_K};
    static const size_t sbs[] = {1, 3, 8, 15, 16, 17, 22, 31, 32, 33, 43, 64, 65, 96, 97};
    static const size_t outs[] = {17, 48};
    static const size_t toks[] = {1, 2, 3, 5};
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        use_form(&forms[f], 950 + (unsigned)f);
        for (size_t ty = 0; ty < sizeof types / sizeof types[0]; ty++)
            for (size_t a = 0; a < sizeof sbs / sizeof sbs[0]; a++)
                for (size_t b = 0; b < sizeof outs / sizeof outs[0]; b++)
                    for (size_t c = 0; c < sizeof toks / sizeof toks[0]; c++) {
                        if (sbs[a] > 33 && (b > 0 || c > 1))
                            continue; /* long rows: 17 rows, 1 or 2 tokens keep the test short */
                        struct shape sh = {sbs[a] * CIT_QK_K, outs[b], toks[c]};
                        check_shape(types[ty], sh, (a + c) % 2 == 1);
                    }
    }
    restore_form(&cpu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_bf16_tininess),
        cmocka_unit_test(test_cache_size_parse),
        cmocka_unit_test(test_llc_bytes),
        cmocka_unit_test(test_row_prefetch_by_vendor),
        cmocka_unit_test(test_row_forms_match_reference),
        cmocka_unit_test(test_k_row_forms_match_reference),
        cmocka_unit_test(test_every_kernel_matches_reference),
        cmocka_unit_test(test_large_batch_matches_reference),
        cmocka_unit_test(test_r16_matches_reference),
        cmocka_unit_test(test_shared_activations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
