/* avx512bf16_f.c: the BF16 weight kernel with AVX512_BF16's dot-product
 * instruction (vdpbf16ps: 32 bf16 multiply-adds into 16 f32 lanes, twice
 * an f32 FMA's), in x86_bf16.h. dispatch.c adds it to the AVX-512 VNNI
 * tier (and so to AMX's) where the CPU has AVX512_BF16; the reference order
 * is the instruction's, so its results are those of every other tier. */
/* The build compiles this file with the AVX-512 BF16 flags; should it not
 * (an older build script), the target is set here so the file still builds. */
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512BF16__)
#if defined(__clang__)
#pragma clang attribute push(                                                                                       \
    __attribute__((target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16"))), apply_to = function)
#define CIT_TARGET_PUSHED
#elif defined(__GNUC__)
#pragma GCC target("avx2,fma,f16c,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
#endif
#endif
#define BF16_DOT 1
#include "kernels/x86_bf16.h"

void cit_kernels_avx512bf16_f(const struct cit_kernel *tab[CIT_TYPE_COUNT])
{
    tab[CIT_TYPE_BF16] = &k_bf16;
}

#ifdef CIT_TARGET_PUSHED
#pragma clang attribute pop
#endif
