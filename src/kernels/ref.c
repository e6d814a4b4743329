/* ref.c: the scalar kernels, straight from the type traits: activations are
 * converted one token row at a time by the vec_dot_type's from_float, and
 * each output is one reference vec_dot. This is the specification every
 * SIMD kernel must reproduce exactly, and the path of CPUs without one. */
#include <string.h>

#include "base/checked.h"
#include "kernels/kernels.h"

/* Bytes of one token's activation row for weights of `type`. */
static bool act_row(uint32_t type, uint64_t n_in, uint64_t *bytes)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    return tr && cit_type_row_size(tr->vec_dot_type, n_in, bytes);
}

static bool act_bytes_of(uint32_t type, uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)
{
    uint64_t row;
    return act_row(type, n_in, &row) && cit_mul_u64(row, n_tokens, bytes);
}

static void pack_of(uint32_t type, const float *x, size_t n_in, size_t t0, size_t t1, void *act)
{
    const struct cit_type_traits *vt = cit_type_traits(cit_type_traits(type)->vec_dot_type);
    uint64_t row = 0;
    act_row(type, n_in, &row);
    for (size_t t = t0; t < t1; t++)
        vt->from_float(x + t * n_in, (unsigned char *)act + t * row, (int64_t)n_in);
}

static void gemm_of(uint32_t type, const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,
                    const void *act, size_t n_tokens, float *y, size_t ldy)
{
    cit_vec_dot_fn dot = cit_type_traits(type)->vec_dot;
    uint64_t row = 0;
    act_row(type, n_in, &row);
    for (size_t r = r0; r < r1; r++) {
        const unsigned char *wr = (const unsigned char *)w + r * row_bytes;
        for (size_t t = 0; t < n_tokens; t++)
            dot((int64_t)n_in, &y[t * ldy + r], wr, (const unsigned char *)act + t * row);
    }
}

#define REF_KERNEL(name, type)                                                                           \
    static bool name##_act_bytes(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes)                      \
    {                                                                                                    \
        return act_bytes_of(type, n_in, n_tokens, bytes);                                                \
    }                                                                                                    \
    static void name##_pack(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act) \
    {                                                                                                    \
        (void)n_tokens;                                                                                  \
        pack_of(type, x, n_in, t0, t1, act);                                                             \
    }                                                                                                    \
    static void name##_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1,           \
                            const void *act, size_t n_tokens, float *y, size_t ldy)                      \
    {                                                                                                    \
        gemm_of(type, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);                                \
    }                                                                                                    \
    static const struct cit_kernel name = {.act_bytes = name##_act_bytes, .pack_group = 1, \
                                           .pack = name##_pack, .gemm = name##_gemm};

REF_KERNEL(k_f32, CIT_TYPE_F32)
REF_KERNEL(k_f16, CIT_TYPE_F16)
REF_KERNEL(k_bf16, CIT_TYPE_BF16)
REF_KERNEL(k_q8_0, CIT_TYPE_Q8_0)
REF_KERNEL(k_q4_0, CIT_TYPE_Q4_0)
REF_KERNEL(k_q4_k, CIT_TYPE_Q4_K)
REF_KERNEL(k_q5_k, CIT_TYPE_Q5_K)
REF_KERNEL(k_q6_k, CIT_TYPE_Q6_K)

void cit_kernels_ref(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    tab[CIT_TYPE_F32] = &k_f32;
    tab[CIT_TYPE_F16] = &k_f16;
    tab[CIT_TYPE_BF16] = &k_bf16;
    tab[CIT_TYPE_Q8_0] = &k_q8_0;
    tab[CIT_TYPE_Q4_0] = &k_q4_0;
    tab[CIT_TYPE_Q4_K] = &k_q4_k;
    tab[CIT_TYPE_Q5_K] = &k_q5_k;
    tab[CIT_TYPE_Q6_K] = &k_q6_k;
}
