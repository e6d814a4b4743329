/* avx512_k.c: Q4_K, Q5_K and Q6_K matmul kernels for the avx512 tier
 * (512-bit many-token tiles, vpmaddubsw + vpmaddwd integer dots).
 * The kernels themselves are shared by the x86 tiers: see x86_k_impl.h. */
#define KX_BITS 512
#define KX_VNNI 0
#define KX_NAME cit_kernels_avx512_k
#define KX_TARGET "avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq"
#include "kernels/x86_k_impl.h"
