/* avx2_probe.c: the machine-limit probe loops (kernels/probe.h) for AVX2:
 * ymm streaming loads, vfmadd231ps ymm, and the vpmaddubsw + vpmaddwd +
 * vpaddd sequence an AVX2 quantized kernel uses for int8 dot products.
 * The compute loops are inline assembly so the compiler can neither hoist
 * nor fold them: what runs is exactly the instruction reported. */
#include <immintrin.h>

#include "kernels/probe.h"

/* The build gives this file its ISA flags; the attribute states them again
 * so the file is correct however it is compiled. */
#define PROBE_TARGET __attribute__((target("avx2,fma")))

/* Sums bytes (a multiple of 256) with 8 independent 64-bit accumulators. */
PROBE_TARGET static uint64_t read_ymm(const void *buf, size_t bytes)
{
    const __m256i *p = (const __m256i *)buf; /* (bytes / 32) ymm words */
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0, n = bytes / 32; i < n; i += 8) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(p + i));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(p + i + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(p + i + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(p + i + 3));
        a4 = _mm256_add_epi64(a4, _mm256_load_si256(p + i + 4));
        a5 = _mm256_add_epi64(a5, _mm256_load_si256(p + i + 5));
        a6 = _mm256_add_epi64(a6, _mm256_load_si256(p + i + 6));
        a7 = _mm256_add_epi64(a7, _mm256_load_si256(p + i + 7));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)),
                                 _mm256_add_epi64(_mm256_add_epi64(a4, a5), _mm256_add_epi64(a6, a7)));
    return (uint64_t)_mm256_extract_epi64(s, 0) + (uint64_t)_mm256_extract_epi64(s, 1) +
           (uint64_t)_mm256_extract_epi64(s, 2) + (uint64_t)_mm256_extract_epi64(s, 3);
}

#define FMA_Y(r) "vfmadd231ps %%ymm13, %%ymm12, %%ymm" #r "\n\t"
#define ZERO_Y(r) "vpxor %%ymm" #r ", %%ymm" #r ", %%ymm" #r "\n\t"

/* 12 independent accumulators (FMA latency 4 x 2 ports = 8 in flight needed):
 * 12 x 8 lanes x 2 = 192 FLOPs per iteration. */
PROBE_TARGET static void fma_ymm(uint64_t iters)
{
    static const float a[8] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    static const float b[8] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    if (!iters)
        return;
    __asm__ volatile("vmovups %[a], %%ymm12\n\t"
                     "vmovups %[b], %%ymm13\n\t" ZERO_Y(0) ZERO_Y(1) ZERO_Y(2) ZERO_Y(3) ZERO_Y(4) ZERO_Y(5)
                         ZERO_Y(6) ZERO_Y(7) ZERO_Y(8) ZERO_Y(9) ZERO_Y(10) ZERO_Y(11)
                     "1:\n\t" FMA_Y(0) FMA_Y(1) FMA_Y(2) FMA_Y(3) FMA_Y(4) FMA_Y(5) FMA_Y(6) FMA_Y(7) FMA_Y(8)
                         FMA_Y(9) FMA_Y(10) FMA_Y(11)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : [n] "+r"(iters)
                     : [a] "m"(a), [b] "m"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "cc");
}

/* One int8 dot step as an AVX2 quantized kernel does it: u8 x s8 pairs
 * summed to s16 (vpmaddubsw), pairs of those to s32 (vpmaddwd with ones),
 * then accumulated (vpaddd). Temp t, accumulator acc. */
#define DOT_Y(t, acc)                                                                                          \
    "vpmaddubsw %%ymm1, %%ymm0, %%ymm" #t "\n\t"                                                               \
    "vpmaddwd %%ymm2, %%ymm" #t ", %%ymm" #t "\n\t"                                                            \
    "vpaddd %%ymm" #t ", %%ymm" #acc ", %%ymm" #acc "\n\t"

/* 6 independent steps: 6 x 32 multiply-adds x 2 = 384 int8 ops per iteration. */
PROBE_TARGET static void dot_ymm(uint64_t iters)
{
    static const uint8_t a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const int8_t b[32] = {-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1,
                                 -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1};
    static const int16_t ones[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    if (!iters)
        return;
    __asm__ volatile("vmovdqu %[a], %%ymm0\n\t"
                     "vmovdqu %[b], %%ymm1\n\t"
                     "vmovdqu %[o], %%ymm2\n\t" ZERO_Y(9) ZERO_Y(10) ZERO_Y(11) ZERO_Y(12) ZERO_Y(13) ZERO_Y(14)
                     "1:\n\t" DOT_Y(3, 9) DOT_Y(4, 10) DOT_Y(5, 11) DOT_Y(6, 12) DOT_Y(7, 13) DOT_Y(8, 14)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : [n] "+r"(iters)
                     : [a] "m"(a), [b] "m"(b), [o] "m"(ones)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "cc");
}

void cit_probe_kernels_avx2(struct cit_probe_kernels *k)
{
    k->read = read_ymm;
    k->read_insn = "ymm loads (vpaddq ymm, mem)";
    k->fma = fma_ymm;
    k->fma_ops_per_iter = 12.0 * 8 * 2;
    k->fma_insn = "vfmadd231ps ymm";
    k->dot = dot_ymm;
    k->dot_ops_per_iter = 6.0 * 32 * 2;
    k->dot_insn = "vpmaddubsw+vpmaddwd+vpaddd ymm";
}
