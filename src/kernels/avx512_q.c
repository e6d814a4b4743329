/* avx512_q.c: Q4_0 and Q8_0 matmul kernels for AVX-512 F/BW/VL/DQ without
 * VNNI: the shared AVX-512 kernels of x86_q_impl.h with the int8 dot done
 * by vpmaddubsw + vpmaddwd (operands kept clear of int16 saturation). */
#define XQ_VNNI 0
/* The build gives this file its -m flags; the target pragmas keep it
 * compiling for its tier wherever those are missing. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq")
#endif
#include "kernels/x86_q_impl.h"


void cit_kernels_avx512_q(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    tab[CIT_TYPE_Q4_0] = &xq_k_q4_0;
    tab[CIT_TYPE_Q8_0] = &xq_k_q8_0;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
