/* repack.c: the R16 layout's byte moves (kernels/repack.h). Plain C: it
 * runs once per matrix at load, and per 16-row group in the fallback,
 * where the product that follows costs far more. */
#include "kernels/repack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tensor/quants.h"

/* Bytes of one block (super-block) of a row, for the types with an R16 layout. */
static size_t block_bytes(uint32_t type)
{
    switch (type) {
    case CIT_TYPE_Q4_0: return 18;
    case CIT_TYPE_Q8_0: return 34;
    case CIT_TYPE_Q4_K: return 144;
    case CIT_TYPE_Q6_K: return 210;
    default: return 0;
    }
}

/* Offset of the half scale that goes to the d region: Q4_0 / Q8_0 open
 * their blocks with it, Q6_K closes its super-blocks with it. */
static size_t d_offset(uint32_t type)
{
    return type == CIT_TYPE_Q6_K ? 208 : 0;
}

bool cit_r16_eligible(const struct cit_matrix *m)
{
    size_t bsz = block_bytes(m->type);
    return bsz && m->n_out % CIT_R16_ROWS == 0 && m->row_bytes > 0 && m->row_bytes % bsz == 0 &&
           m->row_bytes <= CIT_R16_MAX_ROW_BYTES && m->layout == CIT_LAYOUT_ROWS;
}

/* Moves block b of row r between blk (the row's block in the file layout)
 * and its places in the group grp (nb blocks per row), the direction given
 * by to_grp. Every byte of the block has exactly one place (repack.h). */
static void move_block(uint32_t type, size_t nb, size_t b, size_t r, unsigned char *blk, unsigned char *grp,
                       bool to_grp)
{
#define MV(goff, boff, n)                                                                                             \
    do {                                                                                                             \
        if (to_grp)                                                                                                  \
            memcpy(grp + (goff), blk + (boff), n);                                                                   \
        else                                                                                                         \
            memcpy(blk + (boff), grp + (goff), n);                                                                   \
    } while (0)
    if (type == CIT_TYPE_Q4_K) { /* [d, dmin][scales: 3 dwords][qs: 32 dwords], each [16 rows][4 bytes] */
        size_t base = 2304 * b;
        for (size_t q = 0; q < 36; q++)
            MV(base + 64 * q + 4 * r, 4 * q, 4);
        return;
    }
    /* Q4_0, Q8_0, Q6_K: the code dwords, then the half scale in the d region */
    const size_t qs = block_bytes(type) - 2, gq = CIT_R16_ROWS * qs, doff = d_offset(type), coff = doff ? 0 : 2;
    MV(gq * nb + 32 * b + 2 * r, doff, 2);
    for (size_t q = 0; q < qs / 4; q++)
        MV(gq * b + 64 * q + 4 * r, coff + 4 * q, 4);
#undef MV
}

void cit_r16_pack_group(uint32_t type, const unsigned char *rows, size_t row_bytes, unsigned char *grp)
{
    const size_t bsz = block_bytes(type), nb = row_bytes / bsz;
    for (size_t r = 0; r < CIT_R16_ROWS; r++)
        for (size_t b = 0; b < nb; b++) /* read only: to_grp copies from the row */
            move_block(type, nb, b, r, (unsigned char *)(uintptr_t)(rows + r * row_bytes + b * bsz), grp, true);
}

/* Row r of a group back in the file's layout. */
static void unpack_row(uint32_t type, const unsigned char *grp, size_t row_bytes, size_t r, unsigned char *row)
{
    const size_t bsz = block_bytes(type), nb = row_bytes / bsz;
    for (size_t b = 0; b < nb; b++) /* grp is only read when copying back */
        move_block(type, nb, b, r, row + b * bsz, (unsigned char *)(uintptr_t)grp, false);
}

/* move_block's moves for the types with a d region, block-major with
 * fixed-size copies (bsz, doff constant at each call, so the copies unroll):
 * this runs per batch in cit_r16_gemm_rows, where the generic loop was the
 * bottleneck (one core, Q4_0: 6 -> 14 GB/s). */
static inline void unpack_dregion(const unsigned char *grp, size_t row_bytes, size_t nb, unsigned char *rows,
                                  const size_t bsz, const size_t doff)
{
    const size_t qs = bsz - 2, gq = CIT_R16_ROWS * qs, coff = doff ? 0 : 2;
    const unsigned char *dreg = grp + gq * nb;
    for (size_t b = 0; b < nb; b++) {
        const unsigned char *src = grp + gq * b, *ds = dreg + 32 * b;
        unsigned char *dst = rows + b * bsz;
        for (size_t r = 0; r < CIT_R16_ROWS; r++, dst += row_bytes) {
            memcpy(dst + doff, ds + 2 * r, 2);
            for (size_t q = 0; q < qs / 4; q++)
                memcpy(dst + coff + 4 * q, src + 64 * q + 4 * r, 4);
        }
    }
}

#if CIT_X86_KERNELS
/* The same moves with the AVX-512 transpose for the dwords; the half
 * scales of the d region stay plain copies (2 bytes per row and block). */
static void unpack_group_avx512(uint32_t type, const unsigned char *grp, size_t row_bytes, size_t nb,
                                unsigned char *rows)
{
    const size_t bsz = block_bytes(type);
    if (type == CIT_TYPE_Q4_K) {
        for (size_t b = 0; b < nb; b++)
            cit_r16_unpack_dwords_avx512(grp + 2304 * b, 36, rows + b * bsz, row_bytes);
        return;
    }
    const size_t qs = bsz - 2, gq = CIT_R16_ROWS * qs, doff = d_offset(type), coff = doff ? 0 : 2;
    const unsigned char *dreg = grp + gq * nb;
    for (size_t b = 0; b < nb; b++) {
        cit_r16_unpack_dwords_avx512(grp + gq * b, qs / 4, rows + b * bsz + coff, row_bytes);
        for (size_t r = 0; r < CIT_R16_ROWS; r++)
            memcpy(rows + r * row_bytes + b * bsz + doff, dreg + 32 * b + 2 * r, 2);
    }
}
#endif

void cit_r16_unpack_group(uint32_t type, const unsigned char *grp, size_t row_bytes, unsigned char *rows)
{
#if CIT_X86_KERNELS
    if (cit_isa_active() >= CIT_ISA_AVX512) {
        unpack_group_avx512(type, grp, row_bytes, row_bytes / block_bytes(type), rows);
        return;
    }
#endif
    cit_r16_unpack_group_plain(type, grp, row_bytes, rows);
}

void cit_r16_unpack_group_plain(uint32_t type, const unsigned char *grp, size_t row_bytes, unsigned char *rows)
{
    const size_t bsz = block_bytes(type), nb = row_bytes / bsz;
    switch (type) {
    case CIT_TYPE_Q4_0: unpack_dregion(grp, row_bytes, nb, rows, 18, 0); return;
    case CIT_TYPE_Q8_0: unpack_dregion(grp, row_bytes, nb, rows, 34, 0); return;
    case CIT_TYPE_Q6_K: unpack_dregion(grp, row_bytes, nb, rows, 210, 208); return;
    default: break;
    }
    for (size_t r = 0; r < CIT_R16_ROWS; r++)
        unpack_row(type, grp, row_bytes, r, rows + r * row_bytes);
}

/* Rows turned back per call of gemm: the batch kernels stream the batch's
 * activations once per call, so calls of one 16-row group each would read
 * them 16 rows at a time (measured: pp512 of TinyLlama Q4_0 on the
 * avx512vnni tier fell from 177 to 134 t/s that way). A scratch of about
 * this many bytes stays in L2. */
#define R16_SCRATCH_BYTES (512 * 1024)

void cit_r16_gemm_rows(void (*gemm)(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                                    const void *act, size_t n_tokens, float *y, size_t ldy),
                       uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                       const void *act, size_t n_tokens, float *y, size_t ldy)
{
    const size_t g_first = r0 - r0 % CIT_R16_ROWS;
    const size_t g_end = (r1 + CIT_R16_ROWS - 1) / CIT_R16_ROWS * CIT_R16_ROWS; /* n_out is a multiple of 16 */
    size_t chunk = R16_SCRATCH_BYTES / row_bytes / CIT_R16_ROWS * CIT_R16_ROWS;
    if (chunk < CIT_R16_ROWS)
        chunk = CIT_R16_ROWS;
    if (chunk > g_end - g_first)
        chunk = g_end - g_first;
    /* One scratch for the call (the batch's product dwarfs the allocation);
     * without memory, one row at a time from a stack row. */
    unsigned char *scratch = malloc(chunk * row_bytes);
    for (size_t c0 = g_first; c0 < r1; c0 += chunk) {
        const size_t c1 = c0 + chunk < g_end ? c0 + chunk : g_end;
        const size_t lo = r0 > c0 ? r0 - c0 : 0, hi = (r1 < c1 ? r1 : c1) - c0;
        if (scratch) {
            for (size_t g = c0; g < c1; g += CIT_R16_ROWS)
                cit_r16_unpack_group(type, (const unsigned char *)w + g * row_bytes, row_bytes,
                                     scratch + (g - c0) * row_bytes);
            gemm(scratch, row_bytes, n_in, lo, hi, act, n_tokens, y + c0, ldy);
            continue;
        }
        unsigned char row[CIT_R16_MAX_ROW_BYTES];
        for (size_t r = c0 + lo; r < c0 + hi; r++) {
            size_t g = r - r % CIT_R16_ROWS;
            unpack_row(type, (const unsigned char *)w + g * row_bytes, row_bytes, r - g, row);
            gemm(row, row_bytes, n_in, 0, 1, act, n_tokens, y + r, ldy);
        }
    }
    free(scratch);
}

void cit_r16_gemm(const struct cit_kernel *k, uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0,
                  size_t r1, const void *act, size_t n_tokens, float *y, size_t ldy)
{
    const struct cit_kernel *h = cit_kernel_handling(k, n_tokens);
    if (h->gemm_r16)
        h->gemm_r16(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);
    else
        cit_r16_gemm_rows(k->gemm, type, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);
}

bool cit_r16_native(const struct cit_kernel *k, size_t n_tokens)
{
    return k && cit_kernel_handling(k, n_tokens)->gemm_r16 != NULL;
}
