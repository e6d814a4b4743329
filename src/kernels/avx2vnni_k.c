/* avx2vnni_k.c: Q4_K, Q5_K and Q6_K matmul kernels for the avx2vnni tier
 * (256-bit many-token tiles, integer dots by AVX-VNNI's VEX vpdpbusd).
 * The kernels themselves are shared by the x86 tiers: see x86_k_impl.h. */
#define KX_BITS 256
#define KX_VNNI 1
#define KX_R 6
#define KX_NAME cit_kernels_avx2vnni_k
#define KX_TARGET "avx2,fma,f16c,bmi2,avxvnni"
#include "kernels/x86_k_impl.h"
