/* amx_q.c: Q4_0 and Q8_0 prompt kernels on Intel AMX (Sapphire Rapids and
 * later): the int8 products of a batch go through the tile unit (TDPBSSD,
 * 16 x 16 x 32 multiply-adds per instruction), about six times the int8
 * rate of vpdpbusd on a core of that family (`citadel bench` measures both).
 *
 * Exactness is the contract of kernels/kernels.h, kept the same way as on
 * the vector tiers: one TDPBSSD covers exactly one 32-element block, so its
 * int32 outputs are the reference's block integers (signed weight codes,
 * Q4_0 as nibble - 8, against signed activation codes; exact in any order);
 * the float work then runs per (token, row) in block order with the
 * reference's sequence, sum += (float)sumi * (d_w * d_a), as separately
 * rounded multiplies and adds.
 *
 * Fewer than AX_MIN_Q4 / AX_MIN_Q8 tokens (decode, a few sequences) take the AVX-512 VNNI
 * kernels of the tier below, which this file captures at registration, with
 * their activation format; act_bytes stays non-decreasing across the switch.
 *
 * From there on, activations are packed per group of 16 tokens
 * (the last group padded with zero tokens), per block of 32:
 *   codes [16 tokens][32] int8   (the A tile of a block: 16 rows x 32 bytes)
 *   d     [16] float             (the widened half scale of each token)
 * and weights are unpacked, 16 rows and up to AX_KC blocks at a time, into
 * the tile unit's B layout (four consecutive codes of each row side by side):
 *   codes [block][8 quads][16 rows][4] int8, scales [block][16 rows] float.
 * The output tile of a block then has a token per tile row and the 16 weight
 * rows across its 64 bytes, so each tile row is one vector of 16 row lanes:
 * converted, scaled and added to that token's accumulator, and finally
 * stored into y[token][rows] as it is. Partial sums of a row block go
 * through y between chunks of AX_KC blocks, the same float sequence as
 * keeping them in registers. Weights in the R16 layout (`--repack`,
 * kernels/repack.h) are already in the B layout and need no transpose. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")
#endif
#include "kernels/x86_q_common.h"
#include "kernels/x86_zmm.h"
#include "kernels/amx_common.h"
#include "kernels/repack.h"

/* Tokens from which the tile unit is used: where it overtakes the VNNI
 * kernels (bench/kbench_q.c; docs/benchmarks.md). */
#define AX_MIN_Q4 24
#define AX_MIN_Q8 16
#define AX_KC 64    /* weight blocks unpacked at a time (32 KiB of codes: L1) */
#define AX_GBLK 576 /* bytes per block of a 16-token group: 512 codes + 16 scales */

/* Float multiply and add as separate, explicitly rounded operations (never
 * fused into an FMA, whatever -ffp-contract says). */
#define AX_RN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static const struct cit_kernel *below_q4, *below_q8; /* the VNNI tier's kernels */
static const char ax_layout; /* names this file's activation layout (Q4_0 and Q8_0 share it) */

/* ---- tile configuration ---- */

/* Tiles 0, 3: outputs (16 tokens x 16 int32); 1, 4: activations (16 tokens x
 * 32 bytes); 2, 5: weights (8 quads x 16 rows x 4 bytes). Two of each so
 * consecutive blocks use different tiles and can overlap. */
static void ax_configure(void)
{
    static const struct amx_tilecfg c = {.palette = 1,
                                         .colsb = {64, 32, 64, 64, 32, 64},
                                         .rows = {16, 16, 8, 16, 16, 8}};
    _tile_loadconfig(&c);
}

/* ---- activations ---- */

static inline size_t ax_group_bytes(size_t n_in) { return n_in / CIT_QK * AX_GBLK; }

static void ax_pack(const struct cit_kernel *below, size_t min, const float *x, size_t n_in, size_t n_tokens, size_t t0,
                    size_t t1, void *act)
{
    if (n_tokens < min) {
        below->pack(x, n_in, n_tokens, t0, t1, act);
        return;
    }
    const size_t nb = n_in / CIT_QK, gb = ax_group_bytes(n_in);
    for (size_t t = t0; t < t1; t++) {
        unsigned char *g = (unsigned char *)act + t / AMX_GROUP * gb;
        size_t lane = t % AMX_GROUP;
        for (size_t b = 0; b < nb; b++) {
            int32_t sum;
            unsigned char *blk = g + b * AX_GBLK;
            float d = xq_quant_block(x + t * n_in + b * CIT_QK, (int8_t *)(blk + lane * CIT_QK), &sum);
            memcpy(blk + 512 + lane * 4, &d, 4);
        }
    }
    /* zero tokens pad the last group, written by whoever packs its end */
    if (t1 == n_tokens && n_tokens % AMX_GROUP) {
        unsigned char *g = (unsigned char *)act + (n_tokens - 1) / AMX_GROUP * gb;
        for (size_t lane = n_tokens % AMX_GROUP; lane < AMX_GROUP; lane++)
            for (size_t b = 0; b < nb; b++) {
                memset(g + b * AX_GBLK + lane * CIT_QK, 0, CIT_QK);
                memset(g + b * AX_GBLK + 512 + lane * 4, 0, 4);
            }
    }
}

/* ---- weights ---- */

/* Blocks [b0, b0 + kn) of rows [rb, rb + nr) into the B layout: ws[b][q][i]
 * = codes 4q..4q+3 of row i (signed: Q4_0 nibble - 8), wd[b][i] = the row's
 * widened scale; rows nr..15 are zero. */
static void ax_unpack(const unsigned char *w, size_t row_bytes, size_t rb, size_t nr, size_t b0, size_t kn, int q4,
                      int32_t *ws, float *wd)
{
    const __m128i m4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    _Alignas(64) uint8_t rows[16][64]; /* two blocks of codes per row, transposed into ws */
    if (nr < 16) {
        memset(rows, 0, sizeof rows);
        memset(wd, 0, kn * 16 * sizeof *wd);
    }
    for (size_t b = 0; b < kn; b += 2) {
        const size_t nbk = kn - b < 2 ? 1 : 2;
        for (size_t i = 0; i < nr; i++) {
            for (size_t k = 0; k < nbk; k++) {
                const unsigned char *p = w + (rb + i) * row_bytes + (b0 + b + k) * (q4 ? 18 : 34);
                uint16_t h;
                memcpy(&h, p, 2);
                __m256i codes;
                if (q4) {
                    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
                    __m128i lo = _mm_sub_epi8(_mm_and_si128(v, m4), eight);
                    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m4), eight);
                    codes = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
                } else {
                    codes = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2));
                }
                _mm256_store_si256((__m256i *)(void *)(rows[i] + 32 * k), codes);
                wd[(b + k) * 16 + i] = _cvtsh_ss(h); /* F16C: the reference's value (a signalling NaN comes out quiet) */
            }
        }
        /* dword q of each row's 64 bytes to ws: blocks b and b + 1 (a lone last block writes
         * a second, unused tile, which ws has room for) */
        zmm_transpose16x32(&rows[0][0], ws + b * 128);
    }
}

/* The same from a 16-row group in the R16 layout (kernels/repack.h), whose
 * codes are already in the B layout: dword q of 16 rows side by side. Q8_0
 * is a copy; Q4_0 splits each dword's nibbles into quads q and 4 + q. */
static void ax_unpack_r16(const unsigned char *grp, size_t nb, size_t b0, size_t kn, int q4, int32_t *ws, float *wd)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    const size_t gq = q4 ? 256 : 512;
    for (size_t b = 0; b < kn; b++) {
        const unsigned char *src = grp + gq * (b0 + b);
        int32_t *dst = ws + b * 128;
        for (int q = 0; q < (q4 ? 4 : 8); q++) {
            __m512i v = _mm512_loadu_si512((const void *)(src + 64 * q));
            if (q4) {
                _mm512_store_si512((void *)(dst + 16 * q), _mm512_sub_epi8(_mm512_and_si512(v, m4), eight));
                _mm512_store_si512((void *)(dst + 16 * (4 + q)),
                                   _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), eight));
            } else {
                _mm512_store_si512((void *)(dst + 16 * q), v);
            }
        }
        _mm512_store_ps(wd + b * 16, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(grp + gq * nb +
                                                                                                     32 * (b0 + b)))));
    }
}

/* ---- the product ---- */

/* One block's output tile (16 tokens x 16 rows of int32 in c) into the
 * accumulators: acc[m] += (float)c[m] * (wd * d_a[m]). */
static inline __attribute__((always_inline)) void ax_accumulate(const int32_t *c, const float *wd, const float *da,
                                                               __m512 acc[16])
{
    const __m512 wdv = _mm512_loadu_ps(wd);
    for (int m = 0; m < 16; m++) {
        __m512 s = _mm512_mul_round_ps(wdv, _mm512_set1_ps(da[m]), AX_RN);
        __m512 v = _mm512_cvtepi32_ps(_mm512_loadu_si512(c + 16 * m)); /* exact: |sumi| < 2^24 */
        acc[m] = _mm512_add_round_ps(acc[m], _mm512_mul_round_ps(v, s, AX_RN), AX_RN);
    }
}

/* r16: w is in the R16 layout (whole 16-row groups; rows of a group outside
 * [r0, r1) are computed and not stored). */
static void ax_gemm(const struct cit_kernel *below, size_t min, const void *w, size_t row_bytes, size_t n_in, size_t r0,
                    size_t r1, const void *act, size_t n_tokens, float *y, size_t ldy, int q4, int r16)
{
    if (n_tokens < min) {
        if (r16 && below->gemm_r16)
            below->gemm_r16(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);
        else if (r16)
            cit_r16_gemm_rows(below->gemm, q4 ? CIT_TYPE_Q4_0 : CIT_TYPE_Q8_0, w, row_bytes, n_in, r0, r1, act,
                              n_tokens, y, ldy);
        else
            below->gemm(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);
        return;
    }
    _Alignas(64) int32_t ws[(AX_KC + 1) * 128];
    _Alignas(64) float wd[AX_KC * 16];
    _Alignas(64) int32_t cbuf[2][256];
    const size_t nb = n_in / CIT_QK, gb = ax_group_bytes(n_in), ngroups = (n_tokens + AMX_GROUP - 1) / AMX_GROUP;
    ax_configure();
    for (size_t rb = r16 ? r0 - r0 % 16 : r0; rb < r1; rb += 16) {
        const size_t nr = r1 - rb < 16 ? r1 - rb : 16, lo = r0 > rb ? r0 - rb : 0;
        const __mmask16 rmask = (__mmask16)(((1u << nr) - 1) & ~((1u << lo) - 1));
        for (size_t b0 = 0; b0 < nb; b0 += AX_KC) {
            const size_t kn = nb - b0 < AX_KC ? nb - b0 : AX_KC;
            if (r16)
                ax_unpack_r16((const unsigned char *)w + rb * row_bytes, nb, b0, kn, q4, ws, wd);
            else
                ax_unpack(w, row_bytes, rb, nr, b0, kn, q4, ws, wd);
            for (size_t g = 0; g < ngroups; g++) {
                const unsigned char *ag = (const unsigned char *)act + g * gb + b0 * AX_GBLK;
                const size_t nt = n_tokens - g * AMX_GROUP < AMX_GROUP ? n_tokens - g * AMX_GROUP : AMX_GROUP;
                float *yg = y + g * AMX_GROUP * ldy + rb;
                __m512 acc[16];
                for (int m = 0; m < 16; m++)
                    acc[m] = b0 == 0 || (size_t)m >= nt ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(rmask, yg + m * ldy);
                /* software-pipelined: block b's output tile is stored while block b - 1's,
                 * stored one step earlier, is accumulated (a tile store is slow to reach
                 * the vector loads) */
                for (size_t b = 0; b <= kn; b++) {
                    if (b < kn) {
                        const unsigned char *a = ag + b * AX_GBLK;
                        if (b % 2 == 0) {
                            _tile_loadd(1, a, 32);
                            _tile_loadd(2, ws + b * 128, 64);
                            _tile_zero(0);
                            _tile_dpbssd(0, 1, 2);
                            _tile_stored(0, cbuf[0], 64);
                        } else {
                            _tile_loadd(4, a, 32);
                            _tile_loadd(5, ws + b * 128, 64);
                            _tile_zero(3);
                            _tile_dpbssd(3, 4, 5);
                            _tile_stored(3, cbuf[1], 64);
                        }
                    }
                    if (b > 0)
                        ax_accumulate(cbuf[(b - 1) % 2], wd + (b - 1) * 16,
                                      (const float *)(const void *)(ag + (b - 1) * AX_GBLK + 512), acc);
                }
                for (size_t m = 0; m < nt; m++)
                    _mm512_mask_storeu_ps(yg + m * ldy, rmask, acc[m]);
            }
        }
    }
    _tile_release();
}

#define AX_DEFINE(name, below, min, q4)                                                                               \
    static bool name##_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)                              \
    {                                                                                                            \
        return amx_act_bytes(below, min, n_in, n_tokens, CIT_QK, AX_GBLK, bytes);                                  \
    }                                                                                                            \
    static void name##_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act)       \
    {                                                                                                            \
        ax_pack(below, min, x, n_in, n_tokens, t0, t1, act);                                                     \
    }                                                                                                            \
    static void name##_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act, \
                            size_t n_tokens, float *y, size_t ldy)                                               \
    {                                                                                                            \
        ax_gemm(below, min, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, q4, 0);                          \
    }                                                                                                            \
    static void name##_gemm_r16(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,              \
                                const void *act, size_t n_tokens, float *y, size_t ldy)                          \
    {                                                                                                            \
        ax_gemm(below, min, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy, q4, 1);                          \
    }                                                                                                            \
    static const struct cit_kernel *name##_hand_off(size_t n_tokens)                                            \
    {                                                                                                            \
        return n_tokens < (min) ? below : NULL;                                                                  \
    }                                                                                                            \
    static const struct cit_kernel name = {.act_bytes = name##_act_bytes, .pack_group = AMX_GROUP,                    \
                                           .pack = name##_pack, .gemm = name##_gemm,                                  \
                                           .hand_off = name##_hand_off, .layout = &ax_layout,                          \
                                           .gemm_r16 = name##_gemm_r16};

AX_DEFINE(ax_k_q4_0, below_q4, AX_MIN_Q4, 1)
AX_DEFINE(ax_k_q8_0, below_q8, AX_MIN_Q8, 0)

void cit_kernels_amx_q(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    /* tab holds the tier below (AVX-512 VNNI), whose kernels take the few-token case */
    below_q4 = tab[CIT_TYPE_Q4_0];
    below_q8 = tab[CIT_TYPE_Q8_0];
    if (below_q4 && below_q4->pack_group == AMX_GROUP)
        tab[CIT_TYPE_Q4_0] = &ax_k_q4_0;
    if (below_q8 && below_q8->pack_group == AMX_GROUP)
        tab[CIT_TYPE_Q8_0] = &ax_k_q8_0;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
