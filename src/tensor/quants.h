/* quants.h: block layouts of the supported quantized types (exactly GGML's,
 * as stored in GGUF files) and the scalar reference kernels for every
 * supported tensor type. These kernels are the specification that SIMD
 * kernels are tested against. Internal to libcitadel: callers go through the
 * traits table in citadel/tensor.h.
 *
 * Blocks are little-endian byte images; `half` fields hold IEEE binary16
 * bits. Kernels never dereference a block pointer into caller memory (rows
 * inside a mapped file need not be aligned to the struct's alignment): they
 * memcpy each block into a local struct, which the compiler turns into
 * plain loads. */
#ifndef CITADEL_TENSOR_QUANTS_H
#define CITADEL_TENSOR_QUANTS_H

#include <assert.h>
#include <stdint.h>

#include "citadel/tensor.h"

#define CIT_QK 32    /* elements per block of Q4_0 / Q8_0 */
#define CIT_QK_K 256 /* elements per super-block of the K-quants */

/* Q8_0: x = d * qs[i]. */
struct cit_block_q8_0 {
    uint16_t d;          /* half: scale */
    int8_t qs[CIT_QK];
};
static_assert(sizeof(struct cit_block_q8_0) == 34, "Q8_0 block must be 34 bytes");

/* Q4_0: element j (0..15) = d * ((qs[j] & 0xF) - 8), element j + 16 =
 * d * ((qs[j] >> 4) - 8). */
struct cit_block_q4_0 {
    uint16_t d;          /* half: scale */
    uint8_t qs[CIT_QK / 2];
};
static_assert(sizeof(struct cit_block_q4_0) == 18, "Q4_0 block must be 18 bytes");

/* Q4_K: 8 sub-blocks of 32; sub-block j has a 6-bit scale sc[j] and a 6-bit
 * min m[j] packed in scales[12] (see k_scale_min in quants_k.c);
 * x = d*sc[j]*q - dmin*m[j], q in 0..15. qs: for each group of 64 elements
 * (32 bytes), the low nibbles are the group's first 32 elements, the high
 * nibbles its next 32. */
struct cit_block_q4_k {
    uint16_t d;          /* half: scale of the sub-block scales */
    uint16_t dmin;       /* half: scale of the sub-block mins */
    uint8_t scales[12];
    uint8_t qs[CIT_QK_K / 2];
};
static_assert(sizeof(struct cit_block_q4_k) == 144, "Q4_K block must be 144 bytes");

/* Q5_K: as Q4_K with q in 0..31; bit 4 of element l + 64*g + 32*h (g group
 * of 64, h half of it) is bit (2*g + h) of qh[l]. */
struct cit_block_q5_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[CIT_QK_K / 8];
    uint8_t qs[CIT_QK_K / 2];
};
static_assert(sizeof(struct cit_block_q5_k) == 176, "Q5_K block must be 176 bytes");

/* Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; x = d*scales[j]*q,
 * q = (6-bit value) - 32. Each half of 128 elements uses 64 bytes of ql and
 * 32 of qh: for l in 0..31, elements l, l+32, l+64, l+96 take low bits
 * ql[l]&0xF, ql[l+32]&0xF, ql[l]>>4, ql[l+32]>>4 and high bits from qh[l]
 * at bit pairs 0-1, 2-3, 4-5, 6-7. */
struct cit_block_q6_k {
    uint8_t ql[CIT_QK_K / 2];
    uint8_t qh[CIT_QK_K / 4];
    int8_t scales[CIT_QK_K / 16];
    uint16_t d;          /* half */
};
static_assert(sizeof(struct cit_block_q6_k) == 210, "Q6_K block must be 210 bytes");

/* Q8_K: activation format of the K-quant dot products; x = d * qs[i];
 * bsums[j] = sum of qs[16j .. 16j+15] (for the min term of Q4_K/Q5_K). */
struct cit_block_q8_k {
    float d;
    int8_t qs[CIT_QK_K];
    int16_t bsums[CIT_QK_K / 16];
};
static_assert(sizeof(struct cit_block_q8_k) == 292, "Q8_K block must be 292 bytes");

#define CIT_DECLARE_REF(t)                                                   \
    void cit_ref_##t##_to_float(const void *src, float *dst, int64_t n);   \
    void cit_ref_##t##_from_float(const float *src, void *dst, int64_t n); \
    void cit_ref_vec_dot_##t(int64_t n, float *s, const void *x, const void *y);

CIT_DECLARE_REF(f32)
CIT_DECLARE_REF(f16)
CIT_DECLARE_REF(bf16)
CIT_DECLARE_REF(q8_0)
CIT_DECLARE_REF(q4_0)
CIT_DECLARE_REF(q4_k)
CIT_DECLARE_REF(q5_k)
CIT_DECLARE_REF(q6_k)
void cit_ref_q8_k_to_float(const void *src, float *dst, int64_t n);
void cit_ref_q8_k_from_float(const float *src, void *dst, int64_t n);

/* Round to nearest, ties to even (the reference engine's nearest_int), for
 * |x| < 2^22; used wherever the reference rounds with it. */
int cit_nearest_int(float x);

#endif
