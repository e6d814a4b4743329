/* avx512_probe.c: the machine-limit probe loops (kernels/probe.h) for
 * AVX-512 without VNNI: zmm streaming loads, vfmadd231ps zmm, and the
 * vpmaddubsw + vpmaddwd + vpaddd zmm sequence of an AVX-512BW int8 dot
 * product. Inline assembly, so exactly the reported instruction runs. */
#include <immintrin.h>

#include "kernels/probe.h"

/* The build gives this file its ISA flags; the attribute states them again
 * so the file is correct however it is compiled. */
#define PROBE_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

/* Sums bytes (a multiple of 256) with 4 independent zmm accumulators. */
PROBE_TARGET static uint64_t read_zmm(const void *buf, size_t bytes)
{
    const __m512i *p = (const __m512i *)buf; /* (bytes / 64) zmm words */
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0, n = bytes / 64; i < n; i += 4) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 3));
    }
    /* the lanes summed as unsigned: _mm512_reduce_add_epi64 adds them as
     * signed long long, which overflows (undefined) on a large buffer */
    uint64_t lane[8], s = 0;
    _mm512_storeu_si512(lane, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    for (int i = 0; i < 8; i++)
        s += lane[i];
    return s;
}

#define FMA_Z(r) "vfmadd231ps %%zmm17, %%zmm16, %%zmm" #r "\n\t"
#define ZERO_Z(r) "vpxord %%zmm" #r ", %%zmm" #r ", %%zmm" #r "\n\t"

/* 16 independent accumulators: 16 x 16 lanes x 2 = 512 FLOPs per iteration. */
PROBE_TARGET static void fma_zmm(uint64_t iters)
{
    static const float a[16] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f,
                                0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    static const float b[16] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
                                0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    if (!iters)
        return;
    __asm__ volatile("vmovups %[a], %%zmm16\n\t"
                     "vmovups %[b], %%zmm17\n\t" ZERO_Z(0) ZERO_Z(1) ZERO_Z(2) ZERO_Z(3) ZERO_Z(4) ZERO_Z(5)
                         ZERO_Z(6) ZERO_Z(7) ZERO_Z(8) ZERO_Z(9) ZERO_Z(10) ZERO_Z(11) ZERO_Z(12) ZERO_Z(13)
                             ZERO_Z(14) ZERO_Z(15)
                     "1:\n\t" FMA_Z(0) FMA_Z(1) FMA_Z(2) FMA_Z(3) FMA_Z(4) FMA_Z(5) FMA_Z(6) FMA_Z(7) FMA_Z(8)
                         FMA_Z(9) FMA_Z(10) FMA_Z(11) FMA_Z(12) FMA_Z(13) FMA_Z(14) FMA_Z(15)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : [n] "+r"(iters)
                     : [a] "m"(a), [b] "m"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "cc");
}

#define DOT_Z(t, acc)                                                                                          \
    "vpmaddubsw %%zmm1, %%zmm0, %%zmm" #t "\n\t"                                                               \
    "vpmaddwd %%zmm2, %%zmm" #t ", %%zmm" #t "\n\t"                                                            \
    "vpaddd %%zmm" #t ", %%zmm" #acc ", %%zmm" #acc "\n\t"

/* 8 independent steps: 8 x 64 multiply-adds x 2 = 1024 int8 ops per iteration. */
PROBE_TARGET static void dot_zmm(uint64_t iters)
{
    uint8_t a[64];
    int8_t b[64];
    int16_t ones[32];
    for (int i = 0; i < 64; i++) {
        a[i] = (uint8_t)(1 + i % 16);
        b[i] = (int8_t)(i % 2 ? 1 : -1);
    }
    for (int i = 0; i < 32; i++)
        ones[i] = 1;
    if (!iters)
        return;
    __asm__ volatile("vmovdqu64 %[a], %%zmm0\n\t"
                     "vmovdqu64 %[b], %%zmm1\n\t"
                     "vmovdqu64 %[o], %%zmm2\n\t" ZERO_Z(11) ZERO_Z(12) ZERO_Z(13) ZERO_Z(14) ZERO_Z(15) ZERO_Z(16)
                         ZERO_Z(17) ZERO_Z(18)
                     "1:\n\t" DOT_Z(3, 11) DOT_Z(4, 12) DOT_Z(5, 13) DOT_Z(6, 14) DOT_Z(7, 15) DOT_Z(8, 16)
                         DOT_Z(9, 17) DOT_Z(10, 18)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : [n] "+r"(iters)
                     : [a] "m"(a), [b] "m"(b), [o] "m"(ones)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "cc");
}

void cit_probe_kernels_avx512(struct cit_probe_kernels *k)
{
    k->read = read_zmm;
    k->read_insn = "zmm loads (vpaddq zmm, mem)";
    k->fma = fma_zmm;
    k->fma_ops_per_iter = 16.0 * 16 * 2;
    k->fma_insn = "vfmadd231ps zmm";
    k->dot = dot_zmm;
    k->dot_ops_per_iter = 8.0 * 64 * 2;
    k->dot_insn = "vpmaddubsw+vpmaddwd+vpaddd zmm";
}
