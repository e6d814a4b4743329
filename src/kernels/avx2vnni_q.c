/* avx2vnni_q.c: Q4_0 and Q8_0 matmul kernels for AVX2 with AVX-VNNI: the
 * 256-bit kernels of x86_q256_impl.h with the VEX vpdpbusd / vpdpwssd as
 * the int8 dots. */
#define X2_VNNI 1
#define X2_NAME cit_kernels_avx2vnni_q
#define X2_TARGET "avx2,fma,f16c,bmi2,avxvnni"
#include "kernels/x86_q256_impl.h"
