/* avx2vnni_probe.c: the int8 dot-product probe loop (kernels/probe.h) for
 * AVX-VNNI: vpdpbusd ymm in its VEX encoding, one instruction that
 * multiplies 32 u8 x s8 pairs and adds each group of four into a 32-bit
 * lane. The read and FMA loops are AVX2's (avx2_probe.c). */
#include "kernels/probe.h"

/* The build gives this file its ISA flags; the attribute states them again
 * so the file is correct however it is compiled. */
#define PROBE_TARGET __attribute__((target("avx2,fma,avxvnni")))

#define DPBUSD_Y(r) "%{vex%} vpdpbusd %%ymm1, %%ymm0, %%ymm" #r "\n\t"
#define ZERO_Y(r) "vpxor %%ymm" #r ", %%ymm" #r ", %%ymm" #r "\n\t"

/* 14 independent accumulators (all the ymm registers but the two operands;
 * latency 4-5 x up to 2 ports): 14 x 32 multiply-adds x 2 = 896 int8 ops
 * per iteration. */
PROBE_TARGET static void dot_avx_vnni(uint64_t iters)
{
    uint8_t a[32];
    int8_t b[32];
    for (int i = 0; i < 32; i++) {
        a[i] = (uint8_t)(1 + i % 16);
        b[i] = (int8_t)(i % 2 ? 1 : -1);
    }
    if (!iters)
        return;
    __asm__ volatile("vmovdqu %[a], %%ymm0\n\t"
                     "vmovdqu %[b], %%ymm1\n\t" ZERO_Y(2) ZERO_Y(3) ZERO_Y(4) ZERO_Y(5) ZERO_Y(6) ZERO_Y(7) ZERO_Y(8)
                         ZERO_Y(9) ZERO_Y(10) ZERO_Y(11) ZERO_Y(12) ZERO_Y(13) ZERO_Y(14) ZERO_Y(15)
                     "1:\n\t" DPBUSD_Y(2) DPBUSD_Y(3) DPBUSD_Y(4) DPBUSD_Y(5) DPBUSD_Y(6) DPBUSD_Y(7) DPBUSD_Y(8)
                         DPBUSD_Y(9) DPBUSD_Y(10) DPBUSD_Y(11) DPBUSD_Y(12) DPBUSD_Y(13) DPBUSD_Y(14) DPBUSD_Y(15)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : [n] "+r"(iters)
                     : [a] "m"(a), [b] "m"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
}

void cit_probe_kernels_avx2vnni(struct cit_probe_kernels *k)
{
    cit_probe_kernels_avx2(k);
    k->dot = dot_avx_vnni;
    k->dot_ops_per_iter = 14.0 * 32 * 2;
    k->dot_insn = "vpdpbusd ymm (AVX-VNNI)";
}
