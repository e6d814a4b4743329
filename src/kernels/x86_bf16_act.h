/* x86_bf16_act.h: what the x86 BF16 kernels (avx2_f.c, x86_bf16.h) share:
 * their activation rows (bf16, padded with zeros to a multiple of BF_STEP
 * elements, the steps of the bf16 dot-product instruction's order) and the
 * MXCSR setting they compute under (flush-to-zero and denormals-are-zero,
 * that instruction's arithmetic), set around a call and restored. */
#ifndef CITADEL_KERNELS_X86_BF16_ACT_H
#define CITADEL_KERNELS_X86_BF16_ACT_H

#include <immintrin.h>
#include <stdint.h>

#include "base/checked.h"
#include "kernels/kernels.h"

#define BF_STEP 32             /* elements per step: a pair per f32 lane */
#define BF_MXCSR_FLUSH 0x8040u /* flush-to-zero | denormals-are-zero */

/* Elements per packed activation row. */
static inline size_t bf_stride(size_t n_in)
{
    return (n_in + BF_STEP - 1) & ~(size_t)(BF_STEP - 1);
}

static inline bool bf_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    uint64_t stride;
    return cit_align_up_u64(n_in, BF_STEP, &stride) && cit_mul_u64(stride, n_tokens, bytes) &&
           cit_mul_u64(*bytes, sizeof(uint16_t), bytes);
}

/* Packs tokens [t0, t1) of x into those rows (cit_kernel.pack), rounding as
 * cit_fp32_to_bf16. One AVX2 function (avx2_f.c) for every x86 tier: the
 * layout is theirs in common, and packing is a small part of a matmul. */
void cit_bf16_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act);

/* Defines NAME, a gemm that runs ROWS (a noinline gemm of the same
 * signature, so no arithmetic moves across the MXCSR writes) with the flush
 * bits set. */
#define BF_GEMM_UNDER_FLUSH(NAME, ROWS)                                                                     \
    static void NAME(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act, \
                     size_t n_tokens, float *y, size_t ldy)                                                \
    {                                                                                                      \
        const unsigned csr = _mm_getcsr();                                                                 \
        _mm_setcsr(csr | BF_MXCSR_FLUSH);                                                                  \
        ROWS(w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);                                           \
        _mm_setcsr(csr);                                                                                   \
    }

#endif
