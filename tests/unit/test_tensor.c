/* test_tensor.c: the tensor-type traits table and the scalar reference
 * kernels (src/tensor). Table-driven where possible: every type whose traits
 * have to_float is exercised by the generic tests. Covers fp16 / bf16
 * conversion edge cases (exhaustive over all 65536 half values), known
 * answers of hand-built blocks of every supported block type, quantize /
 * dequantize roundtrip bounds, dot products against a double-precision dot
 * of the dequantized operands, and the real micro-llama GGUF files: each
 * quantized tensor must dequantize close to the same tensor of the f32 file
 * that it was made from. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "citadel/gguf.h"
#include "citadel/tensor.h"
#include "support.h"
#include "tensor/quants.h"

/* ---- helpers ---- */

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Relative RMS error of a against the reference b. */
static double rel_rms(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        num += e * e;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static size_t row_bytes(uint32_t type, int64_t n)
{
    uint64_t b;
    assert_true(cit_type_row_size(type, (uint64_t)n, &b));
    return (size_t)b;
}

/* The type ids the generic tests loop over: every id with to_float. */
static int supported_types(uint32_t *out)
{
    int k = 0;
    for (uint32_t t = 0; t < CIT_TYPE_COUNT; t++) {
        const struct cit_type_traits *tr = cit_type_traits(t);
        if (tr && tr->to_float)
            out[k++] = t;
    }
    return k;
}

/* ---- traits table, row sizes ---- */

static void test_traits_table(void **state)
{
    (void)state;
    static const uint32_t unknown[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 41, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_null(cit_type_traits(unknown[i]));

    static const struct {
        uint32_t id;
        const char *name;
        uint32_t bs, ts;
        uint32_t vdt;
    } want[] = {
        {CIT_TYPE_F32, "F32", 1, 4, CIT_TYPE_F32},     {CIT_TYPE_F16, "F16", 1, 2, CIT_TYPE_F16},
        {CIT_TYPE_BF16, "BF16", 1, 2, CIT_TYPE_BF16},  {CIT_TYPE_Q8_0, "Q8_0", 32, 34, CIT_TYPE_Q8_0},
        {CIT_TYPE_Q4_0, "Q4_0", 32, 18, CIT_TYPE_Q8_0}, {CIT_TYPE_Q4_K, "Q4_K", 256, 144, CIT_TYPE_Q8_K},
        {CIT_TYPE_Q5_K, "Q5_K", 256, 176, CIT_TYPE_Q8_K}, {CIT_TYPE_Q6_K, "Q6_K", 256, 210, CIT_TYPE_Q8_K},
        {CIT_TYPE_Q8_K, "Q8_K", 256, 292, CIT_TYPE_Q8_K},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct cit_type_traits *t = cit_type_traits(want[i].id);
        assert_non_null(t);
        assert_string_equal(t->name, want[i].name);
        assert_int_equal(t->block_size, want[i].bs);
        assert_int_equal(t->type_size, want[i].ts);
        assert_int_equal(t->is_quantized, want[i].bs > 1);
        assert_non_null(t->to_float);
        assert_non_null(t->from_float);
        assert_int_equal(t->vec_dot_type, want[i].vdt);
        assert_true((t->vec_dot != NULL) == (want[i].id != CIT_TYPE_Q8_K));
        /* the activation format must itself be convertible */
        const struct cit_type_traits *v = cit_type_traits(t->vec_dot_type);
        assert_non_null(v);
        assert_non_null(v->from_float);
        assert_non_null(v->to_float);
        assert_int_equal(v->block_size, t->block_size);
    }
    /* known but not computed */
    const struct cit_type_traits *q41 = cit_type_traits(CIT_TYPE_Q4_1);
    assert_non_null(q41);
    assert_null(q41->to_float);
    assert_int_equal(q41->type_size, 20);
    assert_null(cit_type_traits(CIT_TYPE_Q2_K)->to_float);

    uint32_t ids[CIT_TYPE_COUNT];
    assert_int_equal(supported_types(ids), 9);
}

static void test_row_size(void **state)
{
    (void)state;
    uint64_t b = 12345;
    assert_true(cit_type_row_size(CIT_TYPE_F32, 10, &b));
    assert_int_equal(b, 40);
    assert_true(cit_type_row_size(CIT_TYPE_F32, 0, &b));
    assert_int_equal(b, 0);
    assert_true(cit_type_row_size(CIT_TYPE_BF16, 3, &b));
    assert_int_equal(b, 6);
    assert_true(cit_type_row_size(CIT_TYPE_Q4_0, 64, &b));
    assert_int_equal(b, 36);
    assert_true(cit_type_row_size(CIT_TYPE_Q4_K, 768, &b));
    assert_int_equal(b, 432);
    assert_true(cit_type_row_size(CIT_TYPE_Q6_K, 256, &b));
    assert_int_equal(b, 210);
    assert_true(cit_type_row_size(CIT_TYPE_Q4_1, 32, &b)); /* sizes of uncomputed types too */
    assert_int_equal(b, 20);
    /* non-multiples of the block size */
    assert_false(cit_type_row_size(CIT_TYPE_Q4_0, 33, &b));
    assert_false(cit_type_row_size(CIT_TYPE_Q8_0, 16, &b));
    assert_false(cit_type_row_size(CIT_TYPE_Q4_K, 32, &b));
    assert_false(cit_type_row_size(CIT_TYPE_Q6_K, 257, &b));
    /* unknown type */
    assert_false(cit_type_row_size(4, 32, &b));
    assert_false(cit_type_row_size(UINT32_MAX, 1, &b));
    /* overflow */
    assert_false(cit_type_row_size(CIT_TYPE_F32, UINT64_MAX, &b));
    assert_false(cit_type_row_size(CIT_TYPE_F32, 1ull << 62, &b));
    assert_true(cit_type_row_size(CIT_TYPE_F32, (1ull << 62) - 1, &b));
    assert_int_equal(b, ((1ull << 62) - 1) * 4);
    assert_false(cit_type_row_size(CIT_TYPE_F16, 1ull << 63, &b));
    /* fewer bytes than elements: the largest multiple cannot overflow */
    assert_true(cit_type_row_size(CIT_TYPE_Q4_K, (UINT64_MAX / 256) * 256, &b));
    assert_int_equal(b, (UINT64_MAX / 256) * 144);
    assert_false(cit_type_row_size(CIT_TYPE_Q8_0, (UINT64_MAX / 32) * 32, &b));
    /* largest Q8_0 row that fits: blocks * 34 <= UINT64_MAX */
    uint64_t blocks = UINT64_MAX / 34;
    assert_true(cit_type_row_size(CIT_TYPE_Q8_0, blocks * 32, &b));
    assert_int_equal(b, blocks * 34);
    assert_false(cit_type_row_size(CIT_TYPE_Q8_0, (blocks + 1) * 32, &b));
}

/* ---- fp16 / bf16 ---- */

/* Independent decode of a half: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals
 * 2^-14 * m/1024. */
static double half_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -24);
    else
        v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_fp16_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cit_fp16_to_fp32((uint16_t)h);
        double want = half_value((uint16_t)h);
        uint16_t back = cit_fp32_to_fp16(f);
        if (isnan(want)) {
            assert_true(isnan(f));
            assert_int_equal(fbits(f) >> 31, h >> 15);          /* sign kept */
            assert_int_equal((fbits(f) >> 13) & 0x3ff, h & 0x3ff); /* payload kept */
            assert_int_equal(back & 0x7c00, 0x7c00);              /* still NaN ... */
            assert_true((back & 0x3ff) != 0);
            assert_true((back & 0x200) != 0); /* ... and quiet */
            assert_int_equal(back & 0x8000, h & 0x8000);
            continue;
        }
        assert_true((double)f == want);
        assert_int_equal(signbit(f) != 0, (h >> 15) != 0);
        assert_int_equal(back, h);
    }
}

/* Rounding of fp32 -> fp16 at every tie: for each pair of adjacent finite
 * halves (same sign), the exact midpoint rounds to the even one, and one
 * float ulp either side rounds to the nearer one. (The step from 65504 to
 * inf is checked in test_fp16_edges.) */
static void test_fp16_rounding_ties(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        for (int sgn = 0; sgn < 2; sgn++) {
            uint16_t a = (uint16_t)(h | (sgn << 15)), b = (uint16_t)(a + 1);
            double mid = (half_value(a) + half_value(b)) / 2; /* exact in float */
            float fm = (float)mid;
            assert_true((double)fm == mid);
            uint16_t even = (a & 1) ? b : a;
            assert_int_equal(cit_fp32_to_fp16(fm), even);
            float below = nextafterf(fm, 0.0f), above = nextafterf(fm, sgn ? -INFINITY : INFINITY);
            assert_int_equal(cit_fp32_to_fp16(below), a);
            assert_int_equal(cit_fp32_to_fp16(above), b);
        }
    }
}

static void test_fp16_edges(void **state)
{
    (void)state;
    assert_int_equal(cit_fp32_to_fp16(0.0f), 0x0000);
    assert_int_equal(cit_fp32_to_fp16(-0.0f), 0x8000);
    assert_int_equal(cit_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(cit_fp32_to_fp16(-2.0f), 0xc000);
    assert_int_equal(cit_fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(cit_fp32_to_fp16(65519.996f), 0x7bff);
    assert_int_equal(cit_fp32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(cit_fp32_to_fp16(1e9f), 0x7c00);
    assert_int_equal(cit_fp32_to_fp16(-1e9f), 0xfc00);
    assert_int_equal(cit_fp32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(cit_fp32_to_fp16(-INFINITY), 0xfc00);
    assert_int_equal(cit_fp32_to_fp16(0x1p-14f), 0x0400);    /* smallest normal */
    assert_int_equal(cit_fp32_to_fp16(0x1p-24f), 0x0001);    /* smallest subnormal */
    assert_int_equal(cit_fp32_to_fp16(0x1p-25f), 0x0000);    /* tie to even: 0 */
    assert_int_equal(cit_fp32_to_fp16(0x1.000002p-25f), 0x0001);
    assert_int_equal(cit_fp32_to_fp16(0x3p-25f), 0x0002);    /* 1.5 units: tie to even 2 */
    assert_int_equal(cit_fp32_to_fp16(0x1.ffcp-15f), 0x0400); /* 1023.5 units: to the normal */
    assert_int_equal(cit_fp32_to_fp16(-0x1p-30f), 0x8000);
    assert_int_equal(cit_fp32_to_fp16(0x1p-149f), 0x0000);   /* float subnormal */
    assert_int_equal(cit_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00); /* tie: even */
    assert_int_equal(cit_fp32_to_fp16(1.0f + 0x3p-11f), 0x3c02);
    uint16_t qn = cit_fp32_to_fp16(NAN);
    assert_int_equal(qn & 0x7e00, 0x7e00);
    /* a signalling NaN whose payload sits below the kept bits stays NaN */
    uint16_t sn = cit_fp32_to_fp16(bitsf(0xff800001u));
    assert_int_equal(sn & 0xfe00, 0xfe00);
    assert_float_equal(cit_fp16_to_fp32(0x3555), 0.333251953125f, 0);
    assert_float_equal(cit_fp16_to_fp32(0x0001), 0x1p-24f, 0);
    assert_float_equal(cit_fp16_to_fp32(0x83ff), -0x1.ff8p-15f, 0);
    assert_true(isinf(cit_fp16_to_fp32(0xfc00)) && cit_fp16_to_fp32(0xfc00) < 0);

#ifdef __FLT16_MAX__
    /* cross-check against the compiler's conversion on random float bits */
    test_rng_seed(7);
    for (int i = 0; i < 1000000; i++) {
        float f = bitsf((uint32_t)test_rng_next());
        if (isnan(f))
            continue;
        _Float16 h = (_Float16)f;
        uint16_t hb;
        memcpy(&hb, &h, 2);
        assert_int_equal(cit_fp32_to_fp16(f), hb);
    }
#endif
}

static void test_bf16(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cit_bf16_to_fp32((uint16_t)h);
        assert_int_equal(fbits(f), h << 16);
        uint16_t back = cit_fp32_to_bf16(f);
        if (isnan(f)) {
            assert_true(isnan(cit_bf16_to_fp32(back)));
            assert_int_equal(back & 0x8040, (h & 0x8000) | 0x40); /* sign kept, quiet */
        } else {
            assert_int_equal(back, h);
        }
    }
    assert_int_equal(cit_fp32_to_bf16(bitsf(0x3f808000u)), 0x3f80); /* tie to even (down) */
    assert_int_equal(cit_fp32_to_bf16(bitsf(0x3f818000u)), 0x3f82); /* tie to even (up) */
    assert_int_equal(cit_fp32_to_bf16(bitsf(0x3f808001u)), 0x3f81);
    assert_int_equal(cit_fp32_to_bf16(bitsf(0x3f807fffu)), 0x3f80);
    assert_int_equal(cit_fp32_to_bf16(bitsf(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds to inf */
    assert_int_equal(cit_fp32_to_bf16(-0.0f), 0x8000);
    assert_int_equal(cit_fp32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(cit_fp32_to_bf16(bitsf(0x00008000u)), 0x0000); /* subnormal tie: even */
    assert_int_equal(cit_fp32_to_bf16(bitsf(0x00018000u)), 0x0002);
    /* NaN with payload only in the dropped bits must not become inf */
    uint16_t n = cit_fp32_to_bf16(bitsf(0x7f800001u));
    assert_true(isnan(cit_bf16_to_fp32(n)));
    n = cit_fp32_to_bf16(bitsf(0xffffffffu));
    assert_int_equal(n, 0xffff);
}

/* ---- known answers from hand-built blocks ---- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static void test_known_q8_0_q4_0(void **state)
{
    (void)state;
    /* Q8_0: d = 0.5 (half 0x3800) at bytes 0-1, qs[j] = j - 16 at 2 + j. */
    uint8_t b8[2 * 34];
    for (int k = 0; k < 2; k++) {
        put16(b8 + 34 * k, k ? 0xc000 : 0x3800); /* second block: d = -2 */
        for (int j = 0; j < 32; j++)
            b8[34 * k + 2 + j] = (uint8_t)(int8_t)(j - 16);
    }
    float y[64];
    cit_type_traits(CIT_TYPE_Q8_0)->to_float(b8, y, 64);
    for (int j = 0; j < 32; j++) {
        assert_float_equal(y[j], 0.5f * (j - 16), 0);
        assert_float_equal(y[32 + j], -2.0f * (j - 16), 0);
    }
    /* Q4_0: d = 2.0 (0x4000); qs[j] = j | (15 - j) << 4: element j = 2*(j - 8),
     * element j + 16 = 2*(7 - j). */
    uint8_t b4[18];
    put16(b4, 0x4000);
    for (int j = 0; j < 16; j++)
        b4[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    cit_type_traits(CIT_TYPE_Q4_0)->to_float(b4, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_float_equal(y[j], 2.0f * (j - 8), 0);
        assert_float_equal(y[j + 16], 2.0f * (7 - j), 0);
    }
    assert_float_equal(y[0], -16.0f, 0);
    assert_float_equal(y[16], 14.0f, 0);
    assert_float_equal(y[31], -16.0f, 0);

    /* dot: Q4_0 block against a Q8_0 block of ones (d = 1): sum of values / 1 */
    uint8_t ones[34];
    put16(ones, 0x3c00);
    memset(ones + 2, 1, 32);
    float s = 0;
    cit_type_traits(CIT_TYPE_Q4_0)->vec_dot(32, &s, b4, ones);
    float want = 0;
    for (int j = 0; j < 32; j++)
        want += y[j];
    assert_float_equal(s, want, 0);
    assert_float_equal(s, -32.0f, 0); /* 2 * (sum(j-8) + sum(7-j)) over j < 16 = 2 * (-8 + -8) */
}

/* Scales and mins shared by the Q4_K / Q5_K known-answer blocks, and their
 * 12-byte packing worked out by hand from the layout: bytes 0-3 = sc[0..3] |
 * (sc[4..7] >> 4) << 6, bytes 4-7 = m[0..3] | (m[4..7] >> 4) << 6, bytes 8-11
 * = (sc[4..7] & 15) | (m[4..7] & 15) << 4. */
static const int ks_sc[8] = {1, 2, 3, 4, 17, 33, 50, 63};
static const int ks_m[8] = {0, 1, 5, 7, 20, 40, 62, 63};
static const uint8_t ks_bytes[12] = {0x41, 0x82, 0xC3, 0xC4, 0x40, 0x81, 0xC5, 0xC7, 0x41, 0x81, 0xE2, 0xFF};

static void test_known_q4_k(void **state)
{
    (void)state;
    /* d = 1.0, dmin = 0.5; qs[b] = (b & 15) | ((7b + 3) & 15) << 4 */
    uint8_t blk[144];
    put16(blk, 0x3c00);
    put16(blk + 2, 0x3800);
    memcpy(blk + 4, ks_bytes, 12);
    for (int b = 0; b < 128; b++)
        blk[16 + b] = (uint8_t)((b & 15) | (((7 * b + 3) & 15) << 4));
    float y[256];
    cit_type_traits(CIT_TYPE_Q4_K)->to_float(blk, y, 256);
    for (int e = 0; e < 256; e++) {
        int g = e / 64, r = e % 64, byte = 32 * g + (r % 32);
        int q = r < 32 ? (blk[16 + byte] & 15) : (blk[16 + byte] >> 4);
        int j = e / 32;
        assert_float_equal(y[e], 1.0f * ks_sc[j] * q - 0.5f * ks_m[j], 0);
    }
    /* a few worked by hand */
    assert_float_equal(y[0], 0.0f, 0);     /* q 0, sc 1, m 0 */
    assert_float_equal(y[33], 19.5f, 0);   /* byte 1 high: (7+3)&15 = 10; 2*10 - 0.5*1 */
    assert_float_equal(y[130], 24.0f, 0);  /* byte 66 low: 2; 17*2 - 0.5*20 */
    assert_float_equal(y[255], 724.5f, 0); /* byte 127 high: 892&15 = 12; 63*12 - 0.5*63 */
}

static void test_known_q5_k(void **state)
{
    (void)state;
    uint8_t blk[176];
    put16(blk, 0x3c00);
    put16(blk + 2, 0x3800);
    memcpy(blk + 4, ks_bytes, 12);
    for (int l = 0; l < 32; l++)
        blk[16 + l] = (uint8_t)(37 * l + 5); /* qh */
    for (int b = 0; b < 128; b++)
        blk[48 + b] = (uint8_t)((b & 15) | (((7 * b + 3) & 15) << 4));
    float y[256];
    cit_type_traits(CIT_TYPE_Q5_K)->to_float(blk, y, 256);
    for (int e = 0; e < 256; e++) {
        int g = e / 64, r = e % 64, l = r % 32, byte = 32 * g + l;
        int lo = r < 32 ? (blk[48 + byte] & 15) : (blk[48 + byte] >> 4);
        int hi = (blk[16 + l] >> (2 * g + (r >= 32))) & 1;
        int j = e / 32;
        assert_float_equal(y[e], 1.0f * ks_sc[j] * (lo + 16 * hi) - 0.5f * ks_m[j], 0);
    }
    /* element 33: qs byte 1 high nibble 10, qh[1] = 42 = 0b101010 bit 1 set: q = 26 */
    assert_float_equal(y[33], 2 * 26 - 0.5f, 0);
    /* element 0: qs 0, qh[0] = 5 bit 0 set: q = 16 -> 1*16 - 0 */
    assert_float_equal(y[0], 16.0f, 0);
    /* element 255: qs byte 127 high = 12, qh[31] = 1152 & 255 = 128, bit 7 set: q = 28 */
    assert_float_equal(y[255], 63 * 28 - 0.5f * 63, 0);
}

static void test_known_q6_k(void **state)
{
    (void)state;
    /* ql[b] = 5b + 1, qh[b] = 11b + 7, scales[j] = j - 8, d = 0.25 */
    uint8_t blk[210];
    for (int b = 0; b < 128; b++)
        blk[b] = (uint8_t)(5 * b + 1);
    for (int b = 0; b < 64; b++)
        blk[128 + b] = (uint8_t)(11 * b + 7);
    for (int j = 0; j < 16; j++)
        blk[192 + j] = (uint8_t)(int8_t)(j - 8);
    put16(blk + 208, 0x3400);
    float y[256];
    cit_type_traits(CIT_TYPE_Q6_K)->to_float(blk, y, 256);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
        const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
        int lo = quarter == 0 ? ql[l] & 15 : quarter == 1 ? ql[l + 32] & 15 : quarter == 2 ? ql[l] >> 4 : ql[l + 32] >> 4;
        int hi = (qh[l] >> (2 * quarter)) & 3;
        int q = (lo | hi << 4) - 32;
        assert_float_equal(y[e], 0.25f * (e / 16 - 8) * q, 0);
    }
    assert_float_equal(y[0], -34.0f, 0);  /* ql 1, qh 7 bits 0-1 = 3: q = 49 - 32 = 17; scale -8 */
    assert_float_equal(y[100], 10.5f, 0); /* ql[36] = 181 >> 4 = 11, qh[4] = 51 bits 6-7 = 0: -21; scale -2 */
    assert_float_equal(y[200], 22.0f, 0); /* ql[72] = 105 >> 4 = 6, qh[40] = 191 bits 4-5 = 3: 22; scale 4 */
}

static void test_known_q8_k(void **state)
{
    (void)state;
    uint8_t blk[292];
    float d = 0.5f;
    memcpy(blk, &d, 4);
    for (int e = 0; e < 256; e++)
        blk[4 + e] = (uint8_t)(int8_t)(e - 128);
    memset(blk + 260, 0, 32);
    float y[256];
    cit_type_traits(CIT_TYPE_Q8_K)->to_float(blk, y, 256);
    for (int e = 0; e < 256; e++)
        assert_float_equal(y[e], 0.5f * (e - 128), 0);

    /* quantizer: the largest magnitude maps to -127 with its sign inverted
     * into d; bsums are the sums of each 16 codes. */
    float x[256];
    for (int e = 0; e < 256; e++)
        x[e] = (float)(e % 17) - 4.0f;
    x[77] = 25.4f;
    struct cit_block_q8_k b;
    cit_ref_q8_k_from_float(x, &b, 256);
    assert_float_equal(b.d, -25.4f / 127.0f, 1e-7);
    assert_int_equal(b.qs[77], -127);
    for (int j = 0; j < 16; j++) {
        int s = 0;
        for (int l = 0; l < 16; l++)
            s += b.qs[16 * j + l];
        assert_int_equal(b.bsums[j], s);
    }
    float zero[256] = {0};
    cit_ref_q8_k_from_float(zero, &b, 256);
    assert_float_equal(b.d, 0.0f, 0);
    for (int e = 0; e < 256; e++)
        assert_int_equal(b.qs[e], 0);
}

/* Reference quantizer rules for Q8_0 / Q4_0 on a hand-made block. */
static void test_known_quantizers(void **state)
{
    (void)state;
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 10) * 0.25f; /* -2.5 .. 5.25 */
    struct cit_block_q8_0 b8;
    cit_ref_q8_0_from_float(x, &b8, 32);
    assert_int_equal(b8.d, cit_fp32_to_fp16(5.25f / 127));
    assert_int_equal(b8.qs[31], 127);
    for (int j = 0; j < 32; j++)
        assert_int_equal(b8.qs[j], (int)roundf(x[j] * (127 / 5.25f)));
    /* Q4_0: max by magnitude is +5.25 -> d = -5.25/8, its code 0 (value -8 * d) */
    struct cit_block_q4_0 b4;
    cit_ref_q4_0_from_float(x, &b4, 32);
    assert_int_equal(b4.d, cit_fp32_to_fp16(-5.25f / 8));
    assert_int_equal(b4.qs[15] >> 4, 0);
    float y[32];
    cit_ref_q4_0_to_float(&b4, y, 32);
    assert_float_equal(y[31], 5.25f, 1e-3);
    assert_float_equal(y[10], 0.0f, 0.33f); /* within half a step */
}

/* ---- generic: roundtrip bounds ---- */

static void fill_gauss(float *x, int64_t n, float scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * test_rng_gauss();
}

static double roundtrip_err(uint32_t type, const float *x, int64_t n)
{
    const struct cit_type_traits *t = cit_type_traits(type);
    void *q = malloc(row_bytes(type, n));
    float *y = malloc((size_t)n * sizeof *y);
    assert_non_null(q);
    assert_non_null(y);
    t->from_float(x, q, n);
    t->to_float(q, y, n);
    double e = rel_rms(y, x, n);
    free(q);
    free(y);
    return e;
}

static double roundtrip_bound(uint32_t type)
{
    switch (type) {
    case CIT_TYPE_F32: return 0;
    case CIT_TYPE_F16: return 3e-4;
    case CIT_TYPE_BF16: return 3e-3;
    case CIT_TYPE_Q8_0: return 0.01;
    case CIT_TYPE_Q8_K: return 0.01;
    case CIT_TYPE_Q4_0: return 0.12;
    case CIT_TYPE_Q4_K: return 0.09;
    case CIT_TYPE_Q5_K: return 0.045;
    case CIT_TYPE_Q6_K: return 0.022;
    default: return 0;
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    uint32_t ids[CIT_TYPE_COUNT];
    int nt = supported_types(ids);
    const int64_t n = 256 * 64;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (int k = 0; k < nt; k++) {
        const struct cit_type_traits *t = cit_type_traits(ids[k]);
        assert_non_null(t->from_float);
        test_rng_seed(1000 + ids[k]);
        fill_gauss(x, n, 0.02f);
        double e1 = roundtrip_err(ids[k], x, n);
        /* uniform, with an outlier per 256 */
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(test_rng_unif() * 2 - 1) * (i % 256 == 17 ? 8 : 1);
        double e2 = roundtrip_err(ids[k], x, n);
        /* all values of one sign (exercises the K-quant mins) */
        for (int64_t i = 0; i < n; i++)
            x[i] = -fabsf(test_rng_gauss()) - 0.5f;
        double e3 = roundtrip_err(ids[k], x, n);
        print_message("roundtrip %-5s gauss %.5f  uniform+outliers %.5f  negative %.5f\n", t->name, e1, e2, e3);
        double bound = roundtrip_bound(ids[k]);
        assert_true(e1 <= bound);
        assert_true(e2 <= bound * 2);
        assert_true(e3 <= bound);

        /* all zero: exact */
        memset(x, 0, n * sizeof *x);
        assert_true(roundtrip_err(ids[k], x, n) == 0);
        /* a constant block: the scale/min machinery reproduces it closely */
        for (int64_t i = 0; i < 256; i++)
            x[i] = 0.75f;
        assert_true(roundtrip_err(ids[k], x, 256) < 2e-3);
    }
    free(x);
}

/* ---- generic: dot products ---- */

/* Half-precision scale fields per block (byte offsets), for building random
 * raw blocks: random bytes elsewhere are valid codes, but a random half may
 * be inf/NaN, so these get a sane random scale. */
static void fix_scales(uint32_t type, uint8_t *blk)
{
    float d = (float)(test_rng_unif() * 0.01 + 1e-4) * (test_rng_next() & 1 ? 1 : -1);
    switch (type) {
    case CIT_TYPE_Q8_0:
    case CIT_TYPE_Q4_0:
        put16(blk, cit_fp32_to_fp16(d));
        break;
    case CIT_TYPE_Q4_K:
    case CIT_TYPE_Q5_K:
        put16(blk, cit_fp32_to_fp16(fabsf(d)));
        put16(blk + 2, cit_fp32_to_fp16((float)test_rng_unif() * 0.01f));
        break;
    case CIT_TYPE_Q6_K:
        put16(blk + 208, cit_fp32_to_fp16(d));
        break;
    default:
        break;
    }
}

/* Checks vec_dot(x, y) against the double dot of the dequantized rows. */
static void check_dot(uint32_t type, const void *xq, const void *yq, int64_t n, double *worst)
{
    const struct cit_type_traits *t = cit_type_traits(type);
    const struct cit_type_traits *v = cit_type_traits(t->vec_dot_type);
    float *xf = malloc(n * sizeof *xf), *yf = malloc(n * sizeof *yf);
    assert_non_null(xf);
    assert_non_null(yf);
    t->to_float(xq, xf, n);
    v->to_float(yq, yf, n);
    double ref = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        ref += (double)xf[i] * yf[i];
        mag += fabs((double)xf[i] * yf[i]);
    }
    float s = NAN;
    t->vec_dot(n, &s, xq, yq);
    double rel = fabs(s - ref) / (mag > 0 ? mag : 1);
    if (rel > *worst)
        *worst = rel;
    if (!(rel <= 2e-6))
        print_message("%s n=%lld: dot %.9g ref %.9g (rel %.3g)\n", t->name, (long long)n, s, ref, rel);
    assert_true(rel <= 2e-6);
    free(xf);
    free(yf);
}

static void test_vec_dot(void **state)
{
    (void)state;
    uint32_t ids[CIT_TYPE_COUNT];
    int nt = supported_types(ids);
    static const int64_t float_lens[] = {1, 2, 3, 17, 33, 255, 1000, 4096};
    static const int64_t block_counts[] = {1, 2, 7, 13};
    for (int k = 0; k < nt; k++) {
        const struct cit_type_traits *t = cit_type_traits(ids[k]);
        if (!t->vec_dot)
            continue;
        const struct cit_type_traits *v = cit_type_traits(t->vec_dot_type);
        int nl = t->block_size == 1 ? 8 : 4;
        double worst = 0;
        test_rng_seed(42 + ids[k]);
        for (int li = 0; li < nl; li++) {
            int64_t n = t->block_size == 1 ? float_lens[li] : block_counts[li] * t->block_size;
            float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
            uint8_t *xq = malloc(row_bytes(ids[k], n)), *yq = malloc(row_bytes(t->vec_dot_type, n));
            assert_true(x && y && xq && yq);
            for (int rep = 0; rep < 4; rep++) {
                fill_gauss(x, n, 0.5f);
                fill_gauss(y, n, rep == 3 ? 1e3f : 2.0f);
                t->from_float(x, xq, n);
                v->from_float(y, yq, n);
                check_dot(ids[k], xq, yq, n, &worst);
                if (t->is_quantized) { /* arbitrary codes, not only our quantizer's */
                    size_t bs = t->type_size;
                    for (size_t i = 0; i < row_bytes(ids[k], n); i++)
                        xq[i] = (uint8_t)test_rng_next();
                    for (int64_t b = 0; b < n / t->block_size; b++)
                        fix_scales(ids[k], xq + b * bs);
                    check_dot(ids[k], xq, yq, n, &worst);
                }
            }
            free(x);
            free(y);
            free(xq);
            free(yq);
        }
        print_message("vec_dot %-5s x %-5s worst relative error %.3g\n", t->name, v->name, worst);
    }
}

/* Rows inside a mapped file need not be aligned for the block structs:
 * every kernel gives the same answer on a row placed at an odd address
 * (and UBSan would flag a misaligned access). Non-finite inputs to the
 * quantizers must not be undefined behaviour either. */
static void test_unaligned_and_special(void **state)
{
    (void)state;
    uint32_t ids[CIT_TYPE_COUNT];
    int nt = supported_types(ids);
    const int64_t n = 512;
    float x[512], y[512], a[512], b[512];
    for (int k = 0; k < nt; k++) {
        const struct cit_type_traits *t = cit_type_traits(ids[k]);
        const struct cit_type_traits *v = cit_type_traits(t->vec_dot_type);
        size_t xb = row_bytes(ids[k], n), yb = row_bytes(t->vec_dot_type, n);
        uint8_t *xq = malloc(xb + 1), *yq = malloc(yb + 1);
        assert_true(xq && yq);
        test_rng_seed(3 + ids[k]);
        fill_gauss(x, n, 1.0f);
        fill_gauss(y, n, 1.0f);
        t->from_float(x, xq + 1, n); /* odd addresses throughout */
        v->from_float(y, yq + 1, n);
        t->to_float(xq + 1, a, n);
        memmove(xq, xq + 1, xb);
        t->to_float(xq, b, n);
        assert_memory_equal(a, b, sizeof a);
        if (t->vec_dot) {
            float s1, s2;
            t->vec_dot(n, &s1, xq, yq + 1);
            memmove(yq, yq + 1, yb);
            memmove(xq + 1, xq, xb);
            t->vec_dot(n, &s2, xq + 1, yq);
            assert_memory_equal(&s1, &s2, sizeof s1);
        }
        /* special values: no crash, no UB; finite blocks elsewhere unaffected */
        for (int i = 0; i < 256; i++)
            x[i] = (i % 4 == 0) ? NAN : (i % 4 == 1) ? INFINITY : (i % 4 == 2) ? -INFINITY : 3e38f;
        t->from_float(x, xq, n);
        t->to_float(xq, a, n);
        assert_true(rel_rms(a + 256, x + 256, 256) <= roundtrip_bound(ids[k]) * 1.5);
        free(xq);
        free(yq);
    }
}

/* Activations converted to the vec_dot type round as the reference does:
 * Q8_0 to within half a step of d = max/127, F16 exactly as cit_fp32_to_fp16. */
static void test_activation_rounding(void **state)
{
    (void)state;
    test_rng_seed(99);
    float x[256], y[256];
    fill_gauss(x, 256, 3.0f);
    struct cit_block_q8_0 b[8];
    cit_ref_q8_0_from_float(x, b, 256);
    cit_ref_q8_0_to_float(b, y, 256);
    for (int i = 0; i < 8; i++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * i + j]));
        float d = amax / 127;
        for (int j = 0; j < 32; j++)
            assert_int_equal(b[i].qs[j], (int)roundf(x[32 * i + j] / d));
        (void)y;
    }
    struct cit_block_q8_k k;
    cit_ref_q8_k_from_float(x, &k, 256);
    cit_ref_q8_k_to_float(&k, y, 256);
    assert_true(rel_rms(y, x, 256) < 0.01);
    for (int e = 0; e < 256; e++)
        assert_true(fabsf(y[e] - x[e]) <= fabsf(k.d) * 0.5f * 1.0001f);
}

/* ---- real GGUF files ---- */

/* Bound on the relative RMS error of each type against the f32 source. */
static double file_bound(uint32_t type)
{
    switch (type) {
    case CIT_TYPE_F16: return 5e-4;
    case CIT_TYPE_Q8_0: return 0.01;
    case CIT_TYPE_Q4_0: return 0.10;
    case CIT_TYPE_Q4_K: return 0.08;
    case CIT_TYPE_Q5_K: return 0.04;
    case CIT_TYPE_Q6_K: return 0.02;
    default: return 0;
    }
}

static struct cit_gguf *open_shared(const char *rel)
{
    char err[256] = "";
    struct cit_gguf *g = NULL;
    enum cit_status st = cit_gguf_open(test_shared_path(rel), &g, err, sizeof err);
    if (st != CIT_OK)
        print_message("cannot open %s: %s\n", rel, err);
    assert_int_equal(st, CIT_OK);
    return g;
}

static void test_real_files(void **state)
{
    (void)state;
    static const char *files[] = {"models/micro-llama-F16.gguf", "models/micro-llama-Q8_0.gguf",
                                  "models/micro-llama-Q4_0.gguf", "models/micro-llama-Q4_K_M.gguf",
                                  "models/micro-llama-Q5_K_M.gguf", "models/micro-llama-Q6_K.gguf"};
    struct cit_gguf *ref = open_shared("models/micro-llama-f32.gguf");
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        struct cit_gguf *g = open_shared(files[f]);
        int checked = 0;
        double worst_by_type[CIT_TYPE_COUNT] = {0};
        double ours_by_type[CIT_TYPE_COUNT] = {0};
        for (size_t i = 0; i < cit_gguf_n_tensors(g); i++) {
            const struct cit_gguf_tensor *qt = cit_gguf_tensor_at(g, i);
            const struct cit_gguf_tensor *rt = cit_gguf_find_tensor(ref, qt->name);
            assert_non_null(rt);
            assert_int_equal(rt->type, CIT_TYPE_F32);
            int64_t n = 1;
            for (int d = 0; d < CIT_GGUF_MAX_DIMS; d++) {
                assert_int_equal(qt->ne[d], rt->ne[d]);
                n *= (int64_t)qt->ne[d];
            }
            if (qt->type == CIT_TYPE_F32) { /* norms stay f32: identical */
                assert_memory_equal(qt->data, rt->data, (size_t)n * 4);
                continue;
            }
            const struct cit_type_traits *t = cit_type_traits(qt->type);
            assert_non_null(t);
            assert_non_null(t->to_float);
            uint64_t nb;
            assert_true(cit_type_row_size(qt->type, (uint64_t)n, &nb));
            assert_int_equal(nb, qt->nbytes);
            float *y = malloc((size_t)n * sizeof *y);
            assert_non_null(y);
            t->to_float(qt->data, y, n);
            const float *x = rt->data;
            double e = rel_rms(y, x, n);
            if (e > worst_by_type[qt->type])
                worst_by_type[qt->type] = e;
            if (!(e < file_bound(qt->type)))
                print_message("%s %s (%s): rel RMS %.5f\n", files[f], qt->name, t->name, e);
            assert_true(e < file_bound(qt->type));

            /* our quantizer on the same source: Q8_0 / Q4_0 use the
             * reference's rounding rules, so the bytes must be identical;
             * the K-quants use our own search, which must be about as good. */
            void *mine = malloc(qt->nbytes);
            assert_non_null(mine);
            t->from_float(x, mine, n);
            if (qt->type == CIT_TYPE_Q8_0 || qt->type == CIT_TYPE_Q4_0 || qt->type == CIT_TYPE_F16) {
                assert_memory_equal(mine, qt->data, qt->nbytes);
            } else {
                t->to_float(mine, y, n);
                double em = rel_rms(y, x, n);
                if (em > ours_by_type[qt->type])
                    ours_by_type[qt->type] = em;
                assert_true(em < e * 1.25);
            }

            /* the dot product on real rows, against the dequantized dot */
            int64_t ne0 = (int64_t)qt->ne[0];
            const struct cit_type_traits *v = cit_type_traits(t->vec_dot_type);
            float *act = malloc((size_t)ne0 * sizeof *act);
            void *actq = malloc(row_bytes(t->vec_dot_type, ne0));
            assert_true(act && actq);
            test_rng_seed(5 + i);
            fill_gauss(act, ne0, 1.0f);
            v->from_float(act, actq, ne0);
            uint64_t rb = (uint64_t)row_bytes(qt->type, ne0);
            double worst = 0;
            for (int64_t r = 0; r < n / ne0; r += 37)
                check_dot(qt->type, (const uint8_t *)qt->data + r * rb, actq, ne0, &worst);
            free(act);
            free(actq);
            free(mine);
            free(y);
            checked++;
        }
        for (uint32_t ty = 0; ty < CIT_TYPE_COUNT; ty++) {
            if (!(worst_by_type[ty] > 0))
                continue;
            if (ours_by_type[ty] > 0)
                print_message("%-32s %-5s worst rel RMS vs f32: file %.5f, our quantizer %.5f\n", files[f],
                              cit_type_traits(ty)->name, worst_by_type[ty], ours_by_type[ty]);
            else
                print_message("%-32s %-5s worst rel RMS vs f32: file %.5f, our quantizer byte-identical\n",
                              files[f], cit_type_traits(ty)->name, worst_by_type[ty]);
        }
        assert_true(checked > 0);
        cit_gguf_free(g);
    }
    cit_gguf_free(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits_table),
        cmocka_unit_test(test_row_size),
        cmocka_unit_test(test_fp16_exhaustive),
        cmocka_unit_test(test_fp16_rounding_ties),
        cmocka_unit_test(test_fp16_edges),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_known_q8_0_q4_0),
        cmocka_unit_test(test_known_q4_k),
        cmocka_unit_test(test_known_q5_k),
        cmocka_unit_test(test_known_q6_k),
        cmocka_unit_test(test_known_q8_k),
        cmocka_unit_test(test_known_quantizers),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_unaligned_and_special),
        cmocka_unit_test(test_activation_rounding),
        cmocka_unit_test(test_real_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
