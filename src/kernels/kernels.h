/* kernels.h: the per-ISA matrix kernels behind cit_matmul, and how one is
 * chosen at run time.
 *
 * The contract that makes every path interchangeable: for each (weight row,
 * token) pair a kernel produces EXACTLY the float the scalar reference
 * vec_dot of the type's traits produces for that row and that token's
 * activations converted by the traits' from_float (bit for bit, any tile
 * shape, any row range, any number of tokens). That is possible because the
 * reference is written in an order SIMD can follow:
 *   - quantized types: the integer dot of each block (super-block for the
 *     K-quants) is exact whatever order it is summed in; the float work is
 *     done per block, in block order, with the reference's exact sequence of
 *     float operations (see cit_ref_vec_dot_* in tensor/quants*.c);
 *   - F32/F16: 16 float lanes, element k accumulates into lane k % 16
 *     with one fused multiply-add in k order, then a fixed halving tree
 *     (lane i += lane i+8, +4, +2, +1) gives the sum (tensor/fp16.c);
 *   - BF16: the bf16 dot-product instruction's order (vdpbf16ps: steps of
 *     32, lane j taking element 2j + 1 then 2j, subnormals flushed), which
 *     the tiers without it follow with f32 FMAs (cit_ref_vec_dot_bf16).
 * So a sequence's logits are bit-identical alone or in a batch of any size,
 * under any thread count and on every ISA of the same machine, and the test
 * of a SIMD kernel is an exact comparison with the reference
 * (tests/unit/test_kernels.c) on random inputs of awkward sizes.
 *
 * A kernel owns its activation format: pack() converts f32 activations into
 * whatever layout its gemm() wants (the reference format, or e.g. blocks of
 * tokens interleaved for a token-parallel tile), as long as the numbers it
 * derives from them equal the reference from_float's. */
#ifndef CITADEL_KERNELS_KERNELS_H
#define CITADEL_KERNELS_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/tensor.h"

/* Whether the x86 SIMD files are part of the build: on x86-64, unless the
 * build defines CITADEL_NO_SIMD (the fuzzing build does: its harnesses do
 * not exercise the kernels, which are slow to instrument). */
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(CITADEL_NO_SIMD)
#define CIT_X86_KERNELS 1
#else
#define CIT_X86_KERNELS 0
#endif

/* Instruction-set tiers. Each is a superset of the one before, except
 * avx2vnni: AVX2 with the VEX-encoded int8 dot products of AVX-VNNI
 * (Alder Lake and later client cores, Sierra Forest's E-cores, Zen 5),
 * which CPUs with AVX-512 may lack (Skylake-SP, Ice Lake). The tiers above
 * it are built on avx2, not on it; cit_isa_supported says which tiers a
 * CPU can run. */
enum cit_isa {
    CIT_ISA_SCALAR = 0,  /* portable C: the reference kernels */
    CIT_ISA_AVX2,        /* AVX2 + FMA + F16C (Haswell, Zen 1+) */
    CIT_ISA_AVX2_VNNI,   /* + AVX-VNNI vpdpbusd / vpdpwssd on ymm, for the int8 kernels */
    CIT_ISA_AVX512,      /* AVX2 tier + AVX-512 F/BW/VL/DQ (Skylake-SP) */
    CIT_ISA_AVX512_VNNI, /* + AVX-512 VNNI int8 dot products (Cascade Lake, Ice Lake, Zen 4+) */
    CIT_ISA_AMX,         /* + AMX tiles with int8 (Sapphire Rapids+), granted by the OS */
    CIT_ISA_COUNT
};

/* One weight type's kernels on one tier. All functions are pure: they
 * read their inputs and write only their outputs, so any number of threads
 * may call them on disjoint outputs. */
struct cit_kernel {
    /* Bytes of packed activations for n_tokens rows of n_in elements; false
     * on overflow. n_in is a multiple of the type's block size. */
    bool (*act_bytes)(uint64_t n_in, uint64_t n_tokens, uint64_t *bytes);
    /* Tokens per pack() unit: pack is called on [t0, t1) with t0 a multiple
     * of it (t1 may end anywhere up to n_tokens). 1 for row formats. */
    uint32_t pack_group;
    /* Converts tokens [t0, t1) of x (n_tokens rows of n_in f32) into act,
     * whose layout may depend on n_tokens. */
    void (*pack)(const float *x, size_t n_in, size_t n_tokens, size_t t0, size_t t1, void *act);
    /* y[t * ldy + r] = dot(weight row r, token t) for r in [r0, r1),
     * t in [0, n_tokens); w is the whole matrix (rows of row_bytes). */
    void (*gemm)(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                 size_t n_tokens, float *y, size_t ldy);
    /* Optional (NULL: this kernel handles every batch): the kernel this one
     * hands a batch of n_tokens to, whole (act_bytes, pack and gemm), or
     * NULL when it handles that batch itself. */
    const struct cit_kernel *(*hand_off)(size_t n_tokens);
    /* Optional: names the activation layout of the batches this kernel
     * handles itself, so kernels of different types with the same layout
     * can share packed activations (cit_kernel_same_act). NULL: the layout
     * is named by the pack function. */
    const void *layout;
    /* Optional: gemm over weights in the R16 layout (kernels/repack.h),
     * same activations and the same results, for the batches this kernel
     * handles itself. NULL: matmul turns R16 groups back into rows for
     * gemm (cit_r16_gemm_rows). */
    void (*gemm_r16)(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                     size_t n_tokens, float *y, size_t ldy);
};

/* The kernel that actually handles a batch of n_tokens given to k (k
 * itself, or where its hand_off chain leads). */
const struct cit_kernel *cit_kernel_handling(const struct cit_kernel *k, size_t n_tokens);

/* True when activations that a packs for n_tokens tokens are what b reads
 * for that batch (so one packed input can feed both). */
bool cit_kernel_same_act(const struct cit_kernel *a, const struct cit_kernel *b, size_t n_tokens);

/* Fills tab[type] for the types a file implements on its tier (leaving the
 * others untouched). Each ISA file defines one of these. */
typedef void (*cit_kernel_register_fn)(const struct cit_kernel *tab[CIT_TYPE_COUNT]);

void cit_kernels_ref(const struct cit_kernel *tab[CIT_TYPE_COUNT]);
#if CIT_X86_KERNELS
void cit_kernels_avx2_q(const struct cit_kernel *tab[CIT_TYPE_COUNT]);       /* Q4_0, Q8_0 */
void cit_kernels_avx2_k(const struct cit_kernel *tab[CIT_TYPE_COUNT]);       /* Q4_K, Q5_K, Q6_K */
void cit_kernels_avx2_f(const struct cit_kernel *tab[CIT_TYPE_COUNT]);       /* F32, F16, BF16 */
void cit_kernels_avx2vnni_q(const struct cit_kernel *tab[CIT_TYPE_COUNT]);   /* Q4_0, Q8_0 by AVX-VNNI */
void cit_kernels_avx2vnni_k(const struct cit_kernel *tab[CIT_TYPE_COUNT]);   /* Q4_K, Q5_K, Q6_K by AVX-VNNI */
void cit_kernels_avx512_q(const struct cit_kernel *tab[CIT_TYPE_COUNT]);
void cit_kernels_avx512_k(const struct cit_kernel *tab[CIT_TYPE_COUNT]);
void cit_kernels_avx512_f(const struct cit_kernel *tab[CIT_TYPE_COUNT]);
void cit_kernels_avx512vnni_q(const struct cit_kernel *tab[CIT_TYPE_COUNT]);
void cit_kernels_avx512vnni_k(const struct cit_kernel *tab[CIT_TYPE_COUNT]);
void cit_kernels_avx512bf16_f(const struct cit_kernel *tab[CIT_TYPE_COUNT]); /* BF16 by vdpbf16ps; VNNI tier, if present */
void cit_kernels_amx_q(const struct cit_kernel *tab[CIT_TYPE_COUNT]); /* batches only; keeps the tier below for decode */
void cit_kernels_amx_k(const struct cit_kernel *tab[CIT_TYPE_COUNT]); /* the same for Q4_K, Q5_K, Q6_K */
#endif

/* The best tier this CPU (and OS) supports, detected once. The environment
 * variable CITADEL_ISA (scalar, avx2, avx2vnni, avx512, avx512vnni, amx)
 * caps it, for comparisons and for reproducing a result of a smaller
 * machine: the active tier is the best supported one at or below the cap. */
enum cit_isa cit_isa_detected(void);
enum cit_isa cit_isa_active(void);
/* True when this CPU can run the tier's kernels (every tier up to the
 * detected one, but avx2vnni only with AVX-VNNI). */
bool cit_isa_supported(enum cit_isa isa);
/* The tier a cap leaves on a CPU whose best tier is best: the lower of the
 * two, and avx2 for avx2vnni where the CPU lacks AVX-VNNI. */
enum cit_isa cit_isa_cap(enum cit_isa best, enum cit_isa cap, bool has_avx_vnni);
const char *cit_isa_name(enum cit_isa isa);

/* The kernel for a weight type on a tier (falling back to lower tiers for
 * types a tier does not implement); NULL when the type cannot be a weight.
 * Its functions may only run where cit_isa_supported(isa). cit_kernel_get
 * uses the active tier. */
const struct cit_kernel *cit_kernel_for_isa(uint32_t type, enum cit_isa isa);
const struct cit_kernel *cit_kernel_get(uint32_t type);

/* Whether the active tier takes BF16 weights with vdpbf16ps
 * (avx512bf16_f.c): the tiers from avx512vnni up do where the CPU has
 * AVX512_BF16 (CPUID.7.1:EAX bit 5). citadel bench then measures BF16
 * prompts against that instruction's peak. */
bool cit_bf16_dot_active(void);

/* Software prefetch distances of the file-layout (row) decode kernels: Q4_0
 * and Q8_0 of the AVX-512 tiers in bytes ahead within each weight row, Q4_K
 * and Q5_K of every x86 tier in super-blocks. The best distance belongs to
 * the memory system, so it is chosen once from the CPU's vendor (measured in
 * docs/benchmarks.md): AMD's Zen 4 wants two to three times the distances
 * that suit Intel's Sapphire Rapids. */
struct cit_row_prefetch {
    uint32_t q4_0, q8_0; /* bytes */
    uint32_t k_affine;   /* Q4_K / Q5_K: super-blocks (Q6_K keeps 4 everywhere) */
    /* Q4_0 / Q8_0 rows of at least this many bytes (0: none) take the next
     * 16-row block's bytes in file order, a share per step of the current
     * block, in place of each row's bytes ahead: one stream for the memory
     * system, not 16 (AMD: 2048, which puts all TinyLlama's large Q8_0
     * matrices there, and Q4_0 rows where the row-order form below is off;
     * Intel unmeasured, so none). */
    uint32_t seq_row_bytes;
    /* Q4_0 decode with VNNI, rows under 4096 bytes: bytes ahead in the
     * stream of a block's rows read one whole row after another, every line
     * prefetched; 0: the rows are read side by side, 16 streams (AMD:
     * 8192; Intel unmeasured, so 0). */
    uint32_t row_order;
    /* The same for the Q4_K / Q5_K / Q6_K decode with VNNI, rows of at
     * most row_order_k_sb super-blocks, each run of 16 super-blocks also
     * taken from L2 into L1 one run ahead (AMD: 8192; Intel unmeasured, so
     * 0). */
    uint32_t row_order_k;
    /* ... for rows of at most this many super-blocks (at most 96; longer
     * rows are read side by side): 16 on Zen 4, where rows of 22 read 2-8%
     * slower so inside a model; 96 on AMD's later families (Zen 5), where
     * rows of 22 read 1.39x as fast so from memory (Q4_K_M tg128 1.09x) and
     * the 7B models' 43 and 56 1.33-1.42x. */
    uint32_t row_order_k_sb;
    /* The row-order decode for Q8_0 with VNNI, bytes ahead as row_order;
     * 0: side by side (Zen 4, where such a form read 0.94-1.04x by shape). */
    uint32_t row_order_q8;
    /* The longest Q4_0 / Q8_0 rows, in blocks, that the row-order decode
     * takes (at most 640): 227 (Q4_0 rows under 4096 bytes) but on Zen 5,
     * where rows of up to 640 read 1.02-1.12x as fast so. */
    uint32_t row_order_blocks;
};
const struct cit_row_prefetch *cit_row_prefetch(void);

/* Replaces the CPU's settings with *p, or restores them (NULL): for tests,
 * which run every form of the row kernels on any CPU. Not thread-safe:
 * call it only while no kernel runs. */
void cit_row_prefetch_override(const struct cit_row_prefetch *p);

/* Prefetch into L2 (prefetcht1) the first min(len, row_bytes) bytes of
 * rows r0 .. r0 + n - 1 of a row-major matrix: the heads that a decode
 * block's own prefetches, running ahead within each row, never ask for. */
static inline void cit_prefetch_row_heads(const void *w, size_t row_bytes, size_t r0, size_t n, size_t len)
{
    if (len > row_bytes)
        len = row_bytes;
    for (size_t r = r0; r < r0 + n; r++)
        for (size_t o = 0; o < len; o += 64)
            __builtin_prefetch((const char *)w + r * row_bytes + o, 0, 2);
}

/* Physical cores of this machine (hyper-threads of one core counted once),
 * at least 1: the default thread count. */
unsigned cit_cpu_physical_cores(void);

/* Bytes of last-level cache of this machine: the distinct highest-level
 * data or unified caches of the online CPUs in /sys, added (so a package of
 * several L3s counts each once); glibc's sysconf where /sys does not tell;
 * 0 when unknown. For judging whether a buffer is read from memory. */
uint64_t cit_cpu_llc_bytes(void);

/* A /sys cache size ("32768K", "1M", "512", an optional newline) in bytes;
 * false when it is malformed or overflows. */
bool cit_parse_cache_size(const char *s, uint64_t *bytes);

#endif
