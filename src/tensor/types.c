/* types.c: the traits table of every GGML tensor type id, and the row-size
 * arithmetic the GGUF reader uses to validate tensor extents. Sizes of the
 * types we do not compute with are still listed so that a file holding them
 * can be inspected and rejected with a clear "unsupported type" message. */
#include "citadel/tensor.h"

#include "base/checked.h"
#include "tensor/quants.h"

#define NOT_COMPUTED NULL, NULL, NULL, CIT_TYPE_F32

static const struct cit_type_traits table[CIT_TYPE_COUNT] = {
    [0] = {"F32", 1, 4, false, cit_ref_f32_to_float, cit_ref_f32_from_float, cit_ref_vec_dot_f32, CIT_TYPE_F32},
    [1] = {"F16", 1, 2, false, cit_ref_f16_to_float, cit_ref_f16_from_float, cit_ref_vec_dot_f16, CIT_TYPE_F16},
    [2] = {"Q4_0", 32, 18, true, cit_ref_q4_0_to_float, cit_ref_q4_0_from_float, cit_ref_vec_dot_q4_0, CIT_TYPE_Q8_0},
    [3] = {"Q4_1", 32, 20, true, NOT_COMPUTED},
    [6] = {"Q5_0", 32, 22, true, NOT_COMPUTED},
    [7] = {"Q5_1", 32, 24, true, NOT_COMPUTED},
    [8] = {"Q8_0", 32, 34, true, cit_ref_q8_0_to_float, cit_ref_q8_0_from_float, cit_ref_vec_dot_q8_0, CIT_TYPE_Q8_0},
    [9] = {"Q8_1", 32, 36, true, NOT_COMPUTED},
    [10] = {"Q2_K", 256, 84, true, NOT_COMPUTED},
    [11] = {"Q3_K", 256, 110, true, NOT_COMPUTED},
    [12] = {"Q4_K", 256, 144, true, cit_ref_q4_k_to_float, cit_ref_q4_k_from_float, cit_ref_vec_dot_q4_k, CIT_TYPE_Q8_K},
    [13] = {"Q5_K", 256, 176, true, cit_ref_q5_k_to_float, cit_ref_q5_k_from_float, cit_ref_vec_dot_q5_k, CIT_TYPE_Q8_K},
    [14] = {"Q6_K", 256, 210, true, cit_ref_q6_k_to_float, cit_ref_q6_k_from_float, cit_ref_vec_dot_q6_k, CIT_TYPE_Q8_K},
    [15] = {"Q8_K", 256, 292, true, cit_ref_q8_k_to_float, cit_ref_q8_k_from_float, NULL, CIT_TYPE_Q8_K},
    [16] = {"IQ2_XXS", 256, 66, true, NOT_COMPUTED},
    [17] = {"IQ2_XS", 256, 74, true, NOT_COMPUTED},
    [18] = {"IQ3_XXS", 256, 98, true, NOT_COMPUTED},
    [19] = {"IQ1_S", 256, 50, true, NOT_COMPUTED},
    [20] = {"IQ4_NL", 32, 18, true, NOT_COMPUTED},
    [21] = {"IQ3_S", 256, 110, true, NOT_COMPUTED},
    [22] = {"IQ2_S", 256, 82, true, NOT_COMPUTED},
    [23] = {"IQ4_XS", 256, 136, true, NOT_COMPUTED},
    [24] = {"I8", 1, 1, false, NOT_COMPUTED},
    [25] = {"I16", 1, 2, false, NOT_COMPUTED},
    [26] = {"I32", 1, 4, false, NOT_COMPUTED},
    [27] = {"I64", 1, 8, false, NOT_COMPUTED},
    [28] = {"F64", 1, 8, false, NOT_COMPUTED},
    [29] = {"IQ1_M", 256, 56, true, NOT_COMPUTED},
    [30] = {"BF16", 1, 2, false, cit_ref_bf16_to_float, cit_ref_bf16_from_float, cit_ref_vec_dot_bf16, CIT_TYPE_BF16},
    [34] = {"TQ1_0", 256, 54, true, NOT_COMPUTED},
    [35] = {"TQ2_0", 256, 66, true, NOT_COMPUTED},
    [39] = {"MXFP4", 32, 17, true, NOT_COMPUTED},
};

const struct cit_type_traits *cit_type_traits(uint32_t type)
{
    if (type >= CIT_TYPE_COUNT || table[type].name == NULL)
        return NULL;
    return &table[type];
}

bool cit_type_row_size(uint32_t type, uint64_t n, uint64_t *bytes)
{
    const struct cit_type_traits *t = cit_type_traits(type);
    if (!t || n % t->block_size != 0)
        return false;
    return cit_mul_u64(n / t->block_size, t->type_size, bytes);
}
