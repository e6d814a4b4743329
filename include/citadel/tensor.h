/* tensor.h: the tensor element types of GGUF files and their traits table.
 *
 * Type ids are GGML's (the numbers stored in GGUF tensor infos), so the enum
 * is append-only. Quantized types store rows as blocks of block_size
 * elements occupying type_size bytes. Each supported type has a scalar
 * reference to_float / from_float and a dot product against the row format
 * named by vec_dot_type (activations are converted to that format first, as
 * the reference engine does); these scalar functions are the specification
 * that SIMD kernels are tested against. */
#ifndef CITADEL_TENSOR_H
#define CITADEL_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cit_type {
    CIT_TYPE_F32 = 0,
    CIT_TYPE_F16 = 1,
    CIT_TYPE_Q4_0 = 2,
    CIT_TYPE_Q4_1 = 3,
    CIT_TYPE_Q5_0 = 6,
    CIT_TYPE_Q5_1 = 7,
    CIT_TYPE_Q8_0 = 8,
    CIT_TYPE_Q8_1 = 9,
    CIT_TYPE_Q2_K = 10,
    CIT_TYPE_Q3_K = 11,
    CIT_TYPE_Q4_K = 12,
    CIT_TYPE_Q5_K = 13,
    CIT_TYPE_Q6_K = 14,
    CIT_TYPE_Q8_K = 15,
    CIT_TYPE_BF16 = 30,
    CIT_TYPE_COUNT = 40 /* upper bound of ids known to the table */
};

/* to_float: n elements (a multiple of block_size) from src to dst.
 * from_float: n floats into blocks (n a multiple of block_size).
 * vec_dot: *s = dot(x, y) over n elements, x of this type, y of vec_dot_type. */
typedef void (*cit_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*cit_from_float_fn)(const float *src, void *dst, int64_t n);
typedef void (*cit_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

struct cit_type_traits {
    const char *name;         /* "Q4_K" */
    uint32_t block_size;      /* elements per block (1 for F32/F16/BF16) */
    uint32_t type_size;       /* bytes per block */
    bool is_quantized;
    cit_to_float_fn to_float;     /* NULL when the type is not supported */
    cit_from_float_fn from_float; /* NULL when we cannot produce it */
    cit_vec_dot_fn vec_dot;       /* NULL when it cannot be a weight */
    enum cit_type vec_dot_type;
};

/* Traits for a raw type id; NULL for ids that are not GGML types at all.
 * A known but unsupported type has traits with to_float == NULL. */
const struct cit_type_traits *cit_type_traits(uint32_t type);

/* Bytes of a row of n elements; false when n is not a multiple of the block
 * size, the type is unknown, or the size overflows. */
bool cit_type_row_size(uint32_t type, uint64_t n, uint64_t *bytes);

/* Half-precision conversions (IEEE binary16, round to nearest even) and bf16. */
float cit_fp16_to_fp32(uint16_t h);
uint16_t cit_fp32_to_fp16(float f);
float cit_bf16_to_fp32(uint16_t h);
uint16_t cit_fp32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
