/* amx_k.c: Q4_K, Q5_K and Q6_K prompt kernels on Intel AMX (see amx_q.c
 * for the tile unit and why it pays).
 *
 * Exactness (kernels/kernels.h): per (row, token, super-block) the
 * reference forms the integer sumi = sum_j sc_j * dot_j (sub-block scales
 * sc_j times the sub-block's integer dot) and, for Q4_K / Q5_K, summ =
 * sum_j m_j * bsum_j; both are exact in any order. The tile unit cannot
 * scale inside a product, and a 6-bit scale times a code does not fit an
 * int8 operand, so each scale is split into digits small enough that digit
 * times code does:
 *   Q4_K: sc = 8 h + l          (h, l in 0..7; codes 0..15: products <= 105)
 *   Q5_K: sc = 16 a + 4 b + c   (digits 0..3; codes 0..31: <= 93)
 *   Q6_K: sc = 64 a + 16 b + 4 c + e (a in -2..1 from the arithmetic shift
 *         of the signed scale, the rest 0..3; codes -32..31: |.| <= 96)
 * and one tile of weights per digit holds digit(sc_j) * code for every
 * element. A super-block is then 4 TDPBSSDs (K = 64 each) per digit, into
 * one int32 output tile per digit, and sumi = sum_k C_k << (k * shift)
 * exactly (|sumi| < 2^31). summ is a vpdpwssd of the rows' min pairs
 * against the token's sub-block sums. The float step is the reference's:
 *   Q4_K/Q5_K: sum += ((d*yd)*(float)sumi) - ((dmin*yd)*(float)summ)
 *   Q6_K:      sum += (d*yd)*(float)sumi
 * as separately rounded operations, super-blocks in order.
 *
 * Batches below a per-kind size (32 / 64 / 96 tokens: the more digits, the
 * more unpacking to amortise) take the AVX-512 VNNI kernels captured at
 * registration, with their activation format.
 *
 * Activations, per group of 16 tokens (zero tokens pad the last) and
 * super-block (AK_SB bytes):
 *   codes [4 chunks][16 tokens][64] int8  (an A tile per chunk of 64)
 *   bsum  [16 tokens][8] int16            (sum of each sub-block's 32 codes)
 *   d     [16] float
 * Weights, 16 rows and AK_KC super-blocks at a time, in the B layout:
 *   codes [super-block][4 chunks][digit][16 quads][16 rows][4] int8,
 * with per super-block and row d, dmin (floats) and the mins in int16
 * pairs. An output tile has a token per row and the 16 weight rows across,
 * so every step is lanes = rows and the result is stored into y as it is. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")
#endif
#include <stdbool.h>
#include <stddef.h>

#include "base/checked.h"
#include "kernels/kernels.h"
#include "kernels/x86_k_common.h"
#include "kernels/x86_zmm.h"
#include "kernels/amx_common.h"

#define AK_KC 4      /* super-blocks of weights unpacked at a time */
#define AK_SB 4416   /* activation bytes per (group, super-block): 4096 codes + 256 bsums + 64 d */
#define AK_RN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define AK_MUL(a, b) _mm512_mul_round_ps(a, b, AK_RN)
#define AK_ADD(a, b) _mm512_add_round_ps(a, b, AK_RN)
#define AK_SUB(a, b) _mm512_sub_round_ps(a, b, AK_RN)

static const struct cit_kernel *below[3]; /* the VNNI tier's Q4_K, Q5_K, Q6_K kernels */
static const char ak_layout; /* names this file's activation layout (the three kinds share it) */

static inline int ndigits(enum kx_kind kind) { return kind == KX_Q4K ? 2 : kind == KX_Q5K ? 3 : 4; }
static inline int digit_shift(enum kx_kind kind) { return kind == KX_Q4K ? 3 : 2; }

/* Every tile is 16 rows x 64 bytes: 0-3 outputs (one per digit), 4 and 6
 * activations, 5 and 7 weights. */
static void ak_configure(void)
{
    static const struct amx_tilecfg c = {.palette = 1,
                                         .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
                                         .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
    _tile_loadconfig(&c);
}

/* ---- activations ---- */

static inline size_t ak_group_bytes(size_t n_in) { return n_in / CIT_QK_K * AK_SB; }

static void ak_pack(size_t min, const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)
{
    if (n_tokens < min) {
        below[0]->pack(x, n_in, n_tokens, t0, t1, act);
        return;
    }
    const size_t nsb = n_in / CIT_QK_K, gb = ak_group_bytes(n_in);
    /* pack_group is AMX_GROUP: a call owns whole groups, and the one that ends
     * the batch writes the padding tokens */
    size_t t_end = t1 == n_tokens ? (n_tokens + AMX_GROUP - 1) / AMX_GROUP * AMX_GROUP : t1;
    for (size_t t = t0; t < t_end; t++) {
        uint8_t *g = (uint8_t *)act + t / AMX_GROUP * gb;
        size_t m = t % AMX_GROUP;
        for (size_t s = 0; s < nsb; s++) {
            struct cit_block_q8_k b;
            if (t < n_tokens)
                quant_sb(x + t * n_in + s * CIT_QK_K, &b);
            else
                memset(&b, 0, sizeof b);
            uint8_t *o = g + s * AK_SB;
            for (int c = 0; c < 4; c++)
                memcpy(o + c * 1024 + m * 64, b.qs + 64 * c, 64);
            int16_t bs[8];
            for (int j = 0; j < 8; j++)
                bs[j] = (int16_t)(b.bsums[2 * j] + b.bsums[2 * j + 1]); /* |.| <= 32 * 127 */
            memcpy(o + 4096 + m * 16, bs, 16);
            memcpy(o + 4096 + 256 + m * 4, &b.d, 4);
        }
    }
}

/* ---- weights ---- */

struct ak_sbw {            /* one super-block of 16 rows */
    float d[16], dmin[16]; /* per row */
    int32_t mpair[4][16];  /* (m_2p, m_2p+1) int16 pairs per row (Q4_K / Q5_K) */
};

/* Super-blocks [s0, s0 + kn) of rows [rb, rb + nr) into ws (the digit
 * tiles: [kn][4][nd][256] int32) and sw; rows nr..15 are zero. */
static inline __attribute__((always_inline)) void ak_unpack(enum kx_kind kind, const uint8_t *w, size_t row_bytes,
                                                           size_t rb, size_t nr, size_t s0, size_t kn, int32_t *ws,
                                                           struct ak_sbw *sw)
{
    const int nd = ndigits(kind), sh = digit_shift(kind), bb = kind_bytes(kind);
    _Alignas(64) uint8_t rows[4][4][16][64]; /* [chunk][digit][row][64 products] */
    if (nr < 16)
        memset(rows, 0, sizeof rows); /* rows nr..15 are never written: zero tiles */
    for (size_t s = 0; s < kn; s++) {
        struct ak_sbw *o = sw + s;
        memset(o, 0, sizeof *o);
        for (size_t i = 0; i < nr; i++) {
            const uint8_t *blk = w + (rb + i) * row_bytes + (s0 + s) * (size_t)bb;
            _Alignas(64) uint8_t q[CIT_QK_K];
            unpack_codes(kind, blk, q);
            int16_t sc16[16]; /* scale of each run of 16 elements */
            if (kind == KX_Q6K) {
                const int8_t *scales = (const int8_t *)(blk + 192);
                for (int j = 0; j < 16; j++)
                    sc16[j] = scales[j];
                o->d[i] = half_at(blk + 208);
            } else {
                uint64_t sc, mn;
                k_scales(blk + 4, &sc, &mn);
                for (int j = 0; j < 8; j++) {
                    sc16[2 * j] = sc16[2 * j + 1] = (int16_t)((sc >> (8 * j)) & 0xff);
                }
                for (int p = 0; p < 4; p++)
                    o->mpair[p][i] = (int32_t)((uint32_t)((mn >> (16 * p)) & 0xff) |
                                               (uint32_t)((mn >> (16 * p + 8)) & 0xff) << 16);
                o->d[i] = half_at(blk);
                o->dmin[i] = half_at(blk + 2);
            }
            for (int c = 0; c < 4; c++) {
                /* the chunk's 64 codes as two vectors of 32 int16 (Q6_K: signed) */
                __m256i lo8 = _mm256_loadu_si256((const __m256i *)(const void *)(q + 64 * c));
                __m256i hi8 = _mm256_loadu_si256((const __m256i *)(const void *)(q + 64 * c + 32));
                __m512i z0 = _mm512_cvtepu8_epi16(lo8), z1 = _mm512_cvtepu8_epi16(hi8);
                if (kind == KX_Q6K) {
                    z0 = _mm512_sub_epi16(z0, _mm512_set1_epi16(32));
                    z1 = _mm512_sub_epi16(z1, _mm512_set1_epi16(32));
                }
                /* per element the scale of its run of 16: runs 4c .. 4c + 3 */
                __m512i s0v = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(sc16[4 * c]),
                                                      _mm512_set1_epi16(sc16[4 * c + 1]));
                __m512i s1v = _mm512_mask_blend_epi16(0xffff0000u, _mm512_set1_epi16(sc16[4 * c + 2]),
                                                      _mm512_set1_epi16(sc16[4 * c + 3]));
                for (int k = 0; k < nd; k++) {
                    /* digit k: arithmetic shift, masked except the top digit (Q6_K's is signed) */
                    __m512i d0 = _mm512_srai_epi16(s0v, (unsigned)(k * sh)), d1 = _mm512_srai_epi16(s1v, (unsigned)(k * sh));
                    if (k < nd - 1) {
                        const __m512i mask = _mm512_set1_epi16((short)((1 << sh) - 1));
                        d0 = _mm512_and_si512(d0, mask);
                        d1 = _mm512_and_si512(d1, mask);
                    }
                    __m256i p0 = _mm512_cvtepi16_epi8(_mm512_mullo_epi16(z0, d0));
                    __m256i p1 = _mm512_cvtepi16_epi8(_mm512_mullo_epi16(z1, d1));
                    _mm256_store_si256((__m256i *)(void *)rows[c][k][i], p0);
                    _mm256_store_si256((__m256i *)(void *)(rows[c][k][i] + 32), p1);
                }
            }
        }
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < nd; k++)
                zmm_transpose16x32(&rows[c][k][0][0], ws + ((s * 4 + (size_t)c) * (size_t)nd + (size_t)k) * 256);
    }
}

/* ---- the product ---- */

/* One super-block's output tiles (c[k]: 16 tokens x 16 rows of int32 per
 * digit) into the accumulators, with the reference's float steps. */
static inline __attribute__((always_inline)) void ak_accumulate(enum kx_kind kind, int32_t c[4][256],
                                                               const struct ak_sbw *sw, const uint8_t *a,
                                                               __m512 acc[16])
{
    const int nd = ndigits(kind), sh = digit_shift(kind);
    const float *da = (const float *)(const void *)(a + 4096 + 256);
    const int32_t *bs = (const int32_t *)(const void *)(a + 4096);
    const __m512 dv = _mm512_loadu_ps(sw->d), dmv = _mm512_loadu_ps(sw->dmin);
    __m512i mp[4];
    if (kind != KX_Q6K)
        for (int p = 0; p < 4; p++)
            mp[p] = _mm512_loadu_si512(sw->mpair[p]);
    for (int m = 0; m < 16; m++) {
        __m512i sumi = _mm512_loadu_si512(c[nd - 1] + 16 * m);
        for (int k = nd - 2; k >= 0; k--)
            sumi = _mm512_add_epi32(_mm512_slli_epi32(sumi, (unsigned)sh), _mm512_loadu_si512(c[k] + 16 * m));
        const __m512 yd = _mm512_set1_ps(da[m]);
        __m512 t = AK_MUL(AK_MUL(dv, yd), _mm512_cvtepi32_ps(sumi));
        if (kind != KX_Q6K) {
            __m512i summ = _mm512_setzero_si512();
            for (int p = 0; p < 4; p++)
                summ = _mm512_dpwssd_epi32(summ, mp[p], _mm512_set1_epi32(bs[4 * m + p]));
            t = AK_SUB(t, AK_MUL(AK_MUL(dmv, yd), _mm512_cvtepi32_ps(summ)));
        }
        acc[m] = AK_ADD(acc[m], t);
    }
}

/* The 4 chunks of one super-block: for each chunk an activation tile and
 * one weight tile per digit into that digit's output tile. Tile numbers
 * must be constants, hence the spelled-out digits. */
#define AK_DIGIT(c, k, A, B)                                                                                         \
    if (nd > (k)) {                                                                                                  \
        _tile_loadd(B, wsb + ((c) * nd + (k)) * 256, 64);                                                            \
        _tile_dpbssd(k, A, B);                                                                                       \
    }
static inline __attribute__((always_inline)) void ak_superblock(enum kx_kind kind, const uint8_t *a,
                                                               const int32_t *wsb, int32_t cbuf[4][256])
{
    const int nd = ndigits(kind);
    _tile_zero(0);
    _tile_zero(1);
    if (nd > 2)
        _tile_zero(2);
    if (nd > 3)
        _tile_zero(3);
    for (int c = 0; c < 4; c += 2) {
        _tile_loadd(4, a + c * 1024, 64);
        AK_DIGIT(c, 0, 4, 5)
        AK_DIGIT(c, 1, 4, 7)
        AK_DIGIT(c, 2, 4, 5)
        AK_DIGIT(c, 3, 4, 7)
        _tile_loadd(6, a + (c + 1) * 1024, 64);
        AK_DIGIT(c + 1, 0, 6, 5)
        AK_DIGIT(c + 1, 1, 6, 7)
        AK_DIGIT(c + 1, 2, 6, 5)
        AK_DIGIT(c + 1, 3, 6, 7)
    }
    _tile_stored(0, cbuf[0], 64);
    _tile_stored(1, cbuf[1], 64);
    if (nd > 2)
        _tile_stored(2, cbuf[2], 64);
    if (nd > 3)
        _tile_stored(3, cbuf[3], 64);
}

static inline __attribute__((always_inline)) void ak_gemm(enum kx_kind kind, const void *w, size_t row_bytes,
                                                         size_t n_in, size_t r0, size_t r1, const void *act,
                                                         size_t n_tokens, float *y, size_t ldy)
{
    _Alignas(64) int32_t ws[AK_KC * 4 * 4 * 256];
    _Alignas(64) int32_t cbuf[4][256];
    struct ak_sbw sw[AK_KC];
    const int nd = ndigits(kind);
    const size_t nsb = n_in / CIT_QK_K, gb = ak_group_bytes(n_in), ngroups = (n_tokens + AMX_GROUP - 1) / AMX_GROUP;
    ak_configure();
    for (size_t rb = r0; rb < r1; rb += 16) {
        const size_t nr = r1 - rb < 16 ? r1 - rb : 16;
        const __mmask16 rmask = (__mmask16)((1u << nr) - 1);
        for (size_t s0 = 0; s0 < nsb; s0 += AK_KC) {
            const size_t kn = nsb - s0 < AK_KC ? nsb - s0 : AK_KC;
            ak_unpack(kind, w, row_bytes, rb, nr, s0, kn, ws, sw);
            for (size_t g = 0; g < ngroups; g++) {
                const uint8_t *ag = (const uint8_t *)act + g * gb + s0 * AK_SB;
                const size_t nt = n_tokens - g * AMX_GROUP < AMX_GROUP ? n_tokens - g * AMX_GROUP : AMX_GROUP;
                float *yg = y + g * AMX_GROUP * ldy + rb;
                __m512 acc[16];
                for (int m = 0; m < 16; m++)
                    acc[m] = s0 == 0 || (size_t)m >= nt ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(rmask, yg + m * ldy);
                for (size_t s = 0; s < kn; s++) {
                    ak_superblock(kind, ag + s * AK_SB, ws + s * 4 * (size_t)nd * 256, cbuf);
                    ak_accumulate(kind, cbuf, sw + s, ag + s * AK_SB, acc);
                }
                for (size_t m = 0; m < nt; m++)
                    _mm512_mask_storeu_ps(yg + m * ldy, rmask, acc[m]);
            }
        }
    }
    _tile_release();
}

/* Each kind has its own switch point (where the tile unit overtakes the
 * VNNI kernels, bench/kbench_k.c: the digit tiles cost more to unpack the
 * more digits there are), so each has its own act_bytes and pack; hand_off
 * and layout let kinds share packed activations where they read the same
 * layout at a batch size (cit_kernel_same_act). */
#define AK_DEFINE(name, kind, idx, min)                                                                              \
    static bool name##_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)                                \
    {                                                                                                              \
        return amx_act_bytes(below[idx], min, n_in, n_tokens, CIT_QK_K, AK_SB, bytes);                             \
    }                                                                                                              \
    static void name##_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)         \
    {                                                                                                              \
        ak_pack(min, x, n_in, n_tokens, t0, t1, act);                                                              \
    }                                                                                                              \
    static void name##_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,   \
                            size_t n_tokens, float *y, size_t ldy)                                                 \
    {                                                                                                              \
        if (n_tokens < (min))                                                                                      \
            below[idx]->gemm(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);                                   \
        else if (r0 < r1)                                                                                          \
            ak_gemm(kind, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);                                      \
    }                                                                                                              \
    static const struct cit_kernel *name##_hand_off(size_t n_tokens)                                              \
    {                                                                                                              \
        return n_tokens < (min) ? below[idx] : NULL;                                                               \
    }                                                                                                              \
    static const struct cit_kernel name = {.act_bytes = name##_act_bytes, .pack_group = AMX_GROUP,                   \
                                           .pack = name##_pack, .gemm = name##_gemm,                                 \
                                           .hand_off = name##_hand_off, .layout = &ak_layout};

AK_DEFINE(ak_q4_k, KX_Q4K, 0, 32)
AK_DEFINE(ak_q5_k, KX_Q5K, 1, 64)
AK_DEFINE(ak_q6_k, KX_Q6K, 2, 96)

void cit_kernels_amx_k(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    /* tab holds the tier below (AVX-512 VNNI), whose kernels take the few-token case;
     * the three share one activation format there, as they do here */
    const struct cit_kernel *b4 = tab[CIT_TYPE_Q4_K], *b5 = tab[CIT_TYPE_Q5_K], *b6 = tab[CIT_TYPE_Q6_K];
    if (!b4 || !b5 || !b6 || b4->pack != b5->pack || b4->pack != b6->pack || b4->act_bytes != b6->act_bytes ||
        b4->act_bytes != b5->act_bytes || b4->pack_group != AMX_GROUP)
        return;
    below[0] = b4, below[1] = b5, below[2] = b6;
    tab[CIT_TYPE_Q4_K] = &ak_q4_k;
    tab[CIT_TYPE_Q5_K] = &ak_q5_k;
    tab[CIT_TYPE_Q6_K] = &ak_q6_k;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
