/* repack.c: the R16 layout's byte moves (kernels/repack.h). Plain C: it
 * runs once per matrix at load, and per 16-row group in the fallback,
 * where the product that follows costs far more. */
#include "kernels/repack.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tensor/quants.h"

#define Q4_BYTES 18 /* sizeof(struct cit_block_q4_0): half scale + 16 bytes */

bool cit_r16_eligible(const struct cit_matrix *m)
{
    return m->type == CIT_TYPE_Q4_0 && m->n_out % CIT_R16_ROWS == 0 && m->row_bytes > 0 &&
           m->row_bytes % Q4_BYTES == 0 && m->row_bytes <= CIT_R16_MAX_ROW_BYTES && m->layout == CIT_LAYOUT_ROWS;
}

void cit_r16_pack_group(const unsigned char *rows, size_t row_bytes, unsigned char *grp)
{
    const size_t nb = row_bytes / Q4_BYTES;
    unsigned char *dreg = grp + 256 * nb;
    for (size_t r = 0; r < CIT_R16_ROWS; r++) {
        const unsigned char *row = rows + r * row_bytes;
        for (size_t b = 0; b < nb; b++) {
            const unsigned char *blk = row + b * Q4_BYTES;
            memcpy(dreg + 32 * b + 2 * r, blk, 2);
            for (size_t q = 0; q < 4; q++)
                memcpy(grp + 256 * b + 64 * q + 4 * r, blk + 2 + 4 * q, 4);
        }
    }
}

/* Row r of a group back in the file's layout. */
static void unpack_row(const unsigned char *grp, size_t nb, size_t r, unsigned char *row)
{
    const unsigned char *dreg = grp + 256 * nb;
    for (size_t b = 0; b < nb; b++) {
        unsigned char *blk = row + b * Q4_BYTES;
        memcpy(blk, dreg + 32 * b + 2 * r, 2);
        for (size_t q = 0; q < 4; q++)
            memcpy(blk + 2 + 4 * q, grp + 256 * b + 64 * q + 4 * r, 4);
    }
}

void cit_r16_unpack_group(const unsigned char *grp, size_t row_bytes, unsigned char *rows)
{
    for (size_t r = 0; r < CIT_R16_ROWS; r++)
        unpack_row(grp, row_bytes / Q4_BYTES, r, rows + r * row_bytes);
}

void cit_r16_gemm_rows(void (*gemm)(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                                    const void *act, size_t n_tokens, float *y, size_t ldy),
                       const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                       size_t n_tokens, float *y, size_t ldy)
{
    const size_t group_bytes = CIT_R16_ROWS * row_bytes;
    /* One scratch for the call (the batch's product dwarfs the allocation);
     * without memory, one row at a time from a stack row. */
    unsigned char *scratch = malloc(group_bytes);
    for (size_t g0 = r0 - r0 % CIT_R16_ROWS; g0 < r1; g0 += CIT_R16_ROWS) {
        const unsigned char *grp = (const unsigned char *)w + g0 * row_bytes;
        size_t lo = r0 > g0 ? r0 - g0 : 0, hi = r1 - g0 < CIT_R16_ROWS ? r1 - g0 : CIT_R16_ROWS;
        if (scratch) {
            cit_r16_unpack_group(grp, row_bytes, scratch);
            gemm(scratch, row_bytes, n_in, lo, hi, act, n_tokens, y + g0, ldy);
            continue;
        }
        unsigned char row[CIT_R16_MAX_ROW_BYTES];
        for (size_t r = lo; r < hi; r++) {
            unpack_row(grp, row_bytes / Q4_BYTES, r, row);
            gemm(row, row_bytes, n_in, 0, 1, act, n_tokens, y + g0 + r, ldy);
        }
    }
    free(scratch);
}

void cit_r16_gemm(const struct cit_kernel *k, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                  const void *act, size_t n_tokens, float *y, size_t ldy)
{
    const struct cit_kernel *h = cit_kernel_handling(k, n_tokens);
    if (h->gemm_r16)
        h->gemm_r16(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);
    else
        cit_r16_gemm_rows(k->gemm, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);
}

bool cit_r16_native(const struct cit_kernel *k, size_t n_tokens)
{
    return k && cit_kernel_handling(k, n_tokens)->gemm_r16 != NULL;
}
