/* repack.h: the 16-row interleaved layout (R16) of Q4_0, Q8_0, Q4_K and
 * Q6_K weights, an opt-in copy made at load (cit_model_repack) for the decode
 * kernels.
 *
 * Why: with the file's layout a decode kernel that computes 16 rows at
 * once (lanes = rows) has to move every row's blocks into lanes and
 * reduce across them; that shuffling costs about as much as the memory
 * read of the weights (docs/benchmarks.md). Interleaved once at load, one
 * 64-byte load holds 4 bytes of each of 16 rows and the integer dot
 * product lands in the right lane directly.
 *
 * Layout. A matrix of n_out rows (a multiple of 16) is n_out / 16 groups
 * of 16 * row_bytes bytes (so the matrix keeps its size); group g holds
 * rows 16g .. 16g + 15 of nb blocks each. The bytes of a block are moved,
 * never changed:
 *  - Q4_0 / Q8_0 / Q6_K (a half scale and QS = 16 / 32 / 208 other bytes
 *    per block: the codes, and for Q6_K ql[128] qh[64] scales[16]):
 *      qs [nb][QS / 4][16 rows][4 bytes]  block b, bytes 4q .. 4q + 3 of the
 *                                         QS of row r at 16 QS b + 64 q + 4 r
 *      d  [nb][16 rows]                   half scales: row r of block b at
 *                                         16 QS nb + 32 b + 2 r
 *  - Q4_K (144-byte super-blocks: d, dmin, 12 scale bytes, 128 code bytes):
 *      [nb][36][16 rows][4 bytes]         dword q of super-block b of row r
 *                                         at 2304 b + 64 q + 4 r (q = 0: d
 *                                         and dmin, 1-3: scales, 4-35: codes)
 * The numbers are the file's, moved: every kernel still computes exactly
 * the reference's dot (kernels/kernels.h), so logits are bit-identical
 * with and without repacking. Kernels that do not read R16 natively get
 * each group turned back into rows in a scratch (cit_r16_gemm_rows). */
#ifndef CITADEL_KERNELS_REPACK_H
#define CITADEL_KERNELS_REPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/matmul.h"

#define CIT_R16_ROWS 16
/* Largest row (bytes) that is repacked: the scratch of the row fallback is
 * one such row on the stack. 16 KiB is n_in 29,127 (Q4_0), 19,968 (Q6_K). */
#define CIT_R16_MAX_ROW_BYTES 16384

struct cit_kernel;

/* True when a matrix can be stored as R16: Q4_0, Q8_0, Q4_K or Q6_K, rows a
 * multiple of 16, rows of at most CIT_R16_MAX_ROW_BYTES, not yet repacked. */
bool cit_r16_eligible(const struct cit_matrix *m);

/* Group: 16 rows of row_bytes of `type` starting at rows -> grp (16 *
 * row_bytes bytes); and back. */
void cit_r16_pack_group(uint32_t type, const unsigned char *rows, size_t row_bytes, unsigned char *grp);
void cit_r16_unpack_group(uint32_t type, const unsigned char *grp, size_t row_bytes, unsigned char *rows);
/* The same in plain C (what cit_r16_unpack_group runs below the avx512 tier). */
void cit_r16_unpack_group_plain(uint32_t type, const unsigned char *grp, size_t row_bytes, unsigned char *rows);

#if CIT_X86_KERNELS
/* avx512_repack.c: ndw (a multiple of 4) dwords of each of 16 rows, laid
 * out [ndw][16 rows][4 bytes] at src, to dst + r * row_bytes (row r). Only
 * after run-time detection of AVX-512. */
void cit_r16_unpack_dwords_avx512(const unsigned char *src, size_t ndw, unsigned char *dst, size_t row_bytes);
#endif

/* The gemm contract (kernels.h) for an R16 matrix w of `type`, activations
 * packed by k: k's handling kernel's gemm_r16 where it has one, else
 * cit_r16_gemm_rows over k's gemm. */
void cit_r16_gemm(const struct cit_kernel *k, uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0,
                  size_t r1, const void *act, size_t n_tokens, float *y, size_t ldy);

/* The loop of every native R16 gemm: each 16-row group meeting [r0, r1)
 * (group rows g0 .. g0 + 15 at grp, lanes [lo, hi) of it wanted), the
 * n_tokens tokens in passes of at most max_pass, as even as possible (the
 * group stays in L1 / L2 between passes). pass computes one (group, pass). */
typedef void (*cit_r16_pass_fn)(const unsigned char *grp, size_t g0, unsigned lo, unsigned hi, size_t t0, size_t n,
                                const void *ctx);
static inline void cit_r16_passes(const void *w, size_t row_bytes, size_t r0, size_t r1, size_t n_tokens,
                                  size_t max_pass, cit_r16_pass_fn pass, const void *ctx)
{
    const size_t passes = (n_tokens + max_pass - 1) / max_pass;
    for (size_t g0 = r0 - r0 % CIT_R16_ROWS; g0 < r1; g0 += CIT_R16_ROWS) {
        const unsigned char *grp = (const unsigned char *)w + g0 * row_bytes;
        unsigned lo = r0 > g0 ? (unsigned)(r0 - g0) : 0;
        unsigned hi = r1 - g0 < CIT_R16_ROWS ? (unsigned)(r1 - g0) : CIT_R16_ROWS;
        for (size_t p = 0, t0 = 0; p < passes; p++) {
            size_t n = (n_tokens - t0) / (passes - p);
            pass(grp, g0, lo, hi, t0, n, ctx);
            t0 += n;
        }
    }
}

/* The one-token (decode) loop of a native R16 gemm: the whole groups in
 * [r0, r1) in pairs, group i with group i + n / 2 of the n, each pair read
 * in lockstep by pair (two streams from memory at once, in the same order
 * as one group at a time within each); the cut groups at the ends and an
 * odd last one by pass, as cit_r16_passes. */
typedef void (*cit_r16_pair_fn)(const unsigned char *ga, size_t ga0, const unsigned char *gb, size_t gb0,
                                const void *ctx);
static inline void cit_r16_decode_pairs(const void *w, size_t row_bytes, size_t r0, size_t r1, cit_r16_pass_fn pass,
                                        cit_r16_pair_fn pair, const void *ctx)
{
    const size_t f0 = (r0 + CIT_R16_ROWS - 1) / CIT_R16_ROWS * CIT_R16_ROWS, f1 = r1 / CIT_R16_ROWS * CIT_R16_ROWS;
    if (f0 >= f1) { /* no whole group */
        cit_r16_passes(w, row_bytes, r0, r1, 1, 1, pass, ctx);
        return;
    }
    if (r0 < f0)
        cit_r16_passes(w, row_bytes, r0, f0, 1, 1, pass, ctx);
    const size_t n = (f1 - f0) / CIT_R16_ROWS, half = n / 2;
    for (size_t i = 0; i < half; i++) {
        const size_t a0 = f0 + i * CIT_R16_ROWS, b0 = f0 + (i + half) * CIT_R16_ROWS;
        pair((const unsigned char *)w + a0 * row_bytes, a0, (const unsigned char *)w + b0 * row_bytes, b0, ctx);
    }
    if (n % 2)
        cit_r16_passes(w, row_bytes, f1 - CIT_R16_ROWS, f1, 1, 1, pass, ctx);
    if (f1 < r1)
        cit_r16_passes(w, row_bytes, f1, r1, 1, 1, pass, ctx);
}

/* True when k reads R16 natively for a batch of n_tokens (so repacking
 * speeds it up rather than adding a copy per group). */
bool cit_r16_native(const struct cit_kernel *k, size_t n_tokens);

/* The same for an R16 matrix w through gemm, a kernel
 * that reads the file layout: each group meeting [r0, r1) is turned back
 * into rows in a scratch first. Used for the batches no R16 kernel
 * handles (prompt processing on tiers without one). */
void cit_r16_gemm_rows(void (*gemm)(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                                    const void *act, size_t n_tokens, float *y, size_t ldy),
                       uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                       const void *act, size_t n_tokens, float *y, size_t ldy);

#endif
