/* avx512bf16_probe.c: the bf16 dot-product probe loop (kernels/probe.h)
 * for AVX512_BF16: vdpbf16ps zmm, one instruction that multiplies 32 bf16
 * pairs and adds each pair's two products into a 32-bit float lane: the
 * instruction avx512bf16_f.c's BF16 kernel is built on. */
#include "kernels/probe.h"

/* The build gives this file its ISA flags; the attribute states them again
 * so the file is correct however it is compiled. */
#define PROBE_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

#define DPBF16(r) "vdpbf16ps %%zmm17, %%zmm16, %%zmm" #r "\n\t"
#define ZERO_Z(r) "vpxord %%zmm" #r ", %%zmm" #r ", %%zmm" #r "\n\t"

/* 16 independent accumulators, as the int8 loop: 16 x 32 multiply-adds x 2
 * = 1024 operations per iteration. The inputs (1.0 and 0.5 in bf16) keep
 * the sums finite for any iteration count a probe runs. */
PROBE_TARGET static void dot_bf16(uint64_t iters)
{
    uint16_t a[32], b[32];
    for (int i = 0; i < 32; i++) {
        a[i] = 0x3f80; /* 1.0 */
        b[i] = 0x3f00; /* 0.5 */
    }
    if (!iters)
        return;
    __asm__ volatile("vmovdqu64 %[a], %%zmm16\n\t"
                     "vmovdqu64 %[b], %%zmm17\n\t" ZERO_Z(0) ZERO_Z(1) ZERO_Z(2) ZERO_Z(3) ZERO_Z(4) ZERO_Z(5)
                         ZERO_Z(6) ZERO_Z(7) ZERO_Z(8) ZERO_Z(9) ZERO_Z(10) ZERO_Z(11) ZERO_Z(12) ZERO_Z(13)
                             ZERO_Z(14) ZERO_Z(15)
                     "1:\n\t" DPBF16(0) DPBF16(1) DPBF16(2) DPBF16(3) DPBF16(4) DPBF16(5) DPBF16(6) DPBF16(7)
                         DPBF16(8) DPBF16(9) DPBF16(10) DPBF16(11) DPBF16(12) DPBF16(13) DPBF16(14) DPBF16(15)
                     "dec %[n]\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper\n\t"
                     : [n] "+r"(iters)
                     : [a] "m"(a), [b] "m"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "cc");
}

void cit_probe_kernels_avx512bf16(struct cit_probe_kernels *k)
{
    k->bf16 = dot_bf16;
    k->bf16_ops_per_iter = 16.0 * 32 * 2;
    k->bf16_insn = "vdpbf16ps zmm";
}
