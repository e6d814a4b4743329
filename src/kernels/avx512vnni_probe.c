/* avx512vnni_probe.c: the int8 dot-product probe loop (kernels/probe.h) for
 * AVX-512 VNNI: vpdpbusd zmm, one instruction that multiplies 64 u8 x s8
 * pairs and adds each group of four into a 32-bit lane. The read and FMA
 * loops are AVX-512's (avx512_probe.c). */
#include "kernels/probe.h"

/* The build gives this file its ISA flags; the attribute states them again
 * so the file is correct however it is compiled. */
#define PROBE_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

#define DPBUSD(r) "vpdpbusd %%zmm17, %%zmm16, %%zmm" #r "\n\t"
#define ZERO_Z(r) "vpxord %%zmm" #r ", %%zmm" #r ", %%zmm" #r "\n\t"

/* 16 independent accumulators (latency 5 x up to 2 ports, with room):
 * 16 x 64 multiply-adds x 2 = 2048 int8 ops per iteration. */
PROBE_TARGET static void dot_vnni(uint64_t iters)
{
    uint8_t a[64];
    int8_t b[64];
    for (int i = 0; i < 64; i++) {
        a[i] = (uint8_t)(1 + i % 16);
        b[i] = (int8_t)(i % 2 ? 1 : -1);
    }
    if (!iters)
        return;
    __asm__ volatile("vmovdqu64 %[a], %%zmm16\n\t"
                     "vmovdqu64 %[b], %%zmm17\n\t" ZERO_Z(0) ZERO_Z(1) ZERO_Z(2) ZERO_Z(3) ZERO_Z(4) ZERO_Z(5)
                         ZERO_Z(6) ZERO_Z(7) ZERO_Z(8) ZERO_Z(9) ZERO_Z(10) ZERO_Z(11) ZERO_Z(12) ZERO_Z(13)
                             ZERO_Z(14) ZERO_Z(15)
                     "1:\n\t" DPBUSD(0) DPBUSD(1) DPBUSD(2) DPBUSD(3) DPBUSD(4) DPBUSD(5) DPBUSD(6) DPBUSD(7)
                         DPBUSD(8) DPBUSD(9) DPBUSD(10) DPBUSD(11) DPBUSD(12) DPBUSD(13) DPBUSD(14) DPBUSD(15)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : [n] "+r"(iters)
                     : [a] "m"(a), [b] "m"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "cc");
}

void cit_probe_kernels_avx512vnni(struct cit_probe_kernels *k)
{
    cit_probe_kernels_avx512(k);
    k->dot = dot_vnni;
    k->dot_ops_per_iter = 16.0 * 64 * 2;
    k->dot_insn = "vpdpbusd zmm";
}
