/* avx2_q.c: Q4_0 and Q8_0 matmul kernels for AVX2 (no VNNI: the int8 dot
 * is vpmaddubsw + vpmaddwd). The kernels are shared with the avx2vnni
 * tier: see x86_q256_impl.h. */
#define X2_VNNI 0
#define X2_NAME cit_kernels_avx2_q
#define X2_TARGET "avx2,fma,f16c,bmi2"
#include "kernels/x86_q256_impl.h"
