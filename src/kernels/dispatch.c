/* dispatch.c: which kernel runs. CPU features are read once (the compiler's
 * cpuid helpers also check that the OS saves the wide registers); a table
 * per tier is built by letting each ISA file fill in the types it
 * implements over the table of the tier below, so a type without a kernel
 * on some tier falls back to the best one beneath it. */
#include "kernels/kernels.h"

#include <pthread.h>
#include <stdbool.h>
#if defined(__x86_64__) && !defined(CITADEL_NO_SIMD)
#include <cpuid.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

static const char *const isa_names[CIT_ISA_COUNT] = {"scalar", "avx2", "avx2vnni", "avx512", "avx512vnni", "amx"};

static const struct cit_kernel *tables[CIT_ISA_COUNT][CIT_TYPE_COUNT];
static enum cit_isa detected, active;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if CIT_X86_KERNELS
/* F16C is CPUID.1:ECX bit 29 (clang's __builtin_cpu_supports has no name
 * for it; the OS-support check is covered by the AVX2 test beside it). */
static bool has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

/* AMX-TILE and AMX-INT8 (CPUID.7.0:EDX bits 24, 25), the OS saving tile
 * state (XCR0 bits 17, 18), and Linux's per-process permission to use the
 * tile data (arch_prctl ARCH_REQ_XCOMP_PERM, Linux 5.16+; it holds for
 * every thread of the process). */
static bool has_amx_int8(void)
{
#if defined(__linux__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || (d & (3u << 24)) != (3u << 24))
        return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE: xgetbv is allowed */
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17))
        return false;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

/* AVX512_BF16 is CPUID.7.1:EAX bit 5; the OS saving the zmm state is
 * covered by the AVX-512 test it is used with. */
static bool has_avx512_bf16(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

/* AVX-VNNI (the VEX forms of vpdpbusd / vpdpwssd) is CPUID.7.1:EAX bit 4;
 * the OS saving the ymm state is covered by the AVX2 test. */
static bool has_avx_vnni(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
}
#endif

static bool bf16_dot, avx_vnni;

static enum cit_isa detect(void)
{
#if CIT_X86_KERNELS && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c()))
        return CIT_ISA_SCALAR;
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
        return avx_vnni ? CIT_ISA_AVX2_VNNI : CIT_ISA_AVX2;
    if (!__builtin_cpu_supports("avx512vnni"))
        return CIT_ISA_AVX512;
    if (!has_amx_int8())
        return CIT_ISA_AVX512_VNNI;
    return CIT_ISA_AMX;
#else
    return CIT_ISA_SCALAR;
#endif
}

/* The prefetch settings by vendor, each field paired from memory against
 * its neighbours (bench/kernel_ab.c, bench/model_ab.c; the history is in
 * docs/benchmarks.md, "session N" sections). Intel (Sapphire Rapids, the
 * host until session 2): Q4_0 256 bytes ahead (+1.5-6% against 512; 1024
 * -7-10%), the row-order forms unmeasured, so off. AMD (Zen 4 EPYC, sessions
 * 3-11):
 * - q4_0 768 (+7-33% by shape against 256), q8_0 1024 (+2-12% against 512),
 *   k_affine 8 super-blocks (+7-19% against 4; 12 the same as 8);
 * - seq_row_bytes 2048: rows from 2048 bytes take the next 16-row block in
 *   file order (Q4_0 2048x5632 +3-9%, Q8_0 +2-12%);
 * - row_order 8192: Q4_0 rows one after another (256x2048 +8-9%, 5632x2048
 *   +4-9% against 16 side by side; there 4096-16384 bytes ahead gave
 *   1.00-1.07x the 16 streams, 512-2048 only 0.80-0.84x); inside the model
 *   they read as fast as a plain read at the low bandwidth level (session 8);
 * - row_order_k 8192: K-quant rows one after another, each run of 16
 *   super-blocks also taken from L2 into L1 one run ahead (session 10: all
 *   the matmuls of Q4_K_M decode steps 1.03-1.28x as fast as side by side
 *   in 20 of 22 rounds at 32768 ahead; session 9, without that L1
 *   prefetch, had found side by side ahead). With the L1 prefetch, 8192
 *   ahead reads faster than 32768 (session 11: Q4_K 5632x2048 1.09x at the
 *   low level, 1.24x at the high one; all the matmuls 1.08-1.10x at the
 *   high level; 6144 0.92-0.98x and 16384 0.97-0.99x against 8192), and
 *   Q6_K reads faster this way than side by side (session 11: 32000x2048
 *   1.08x, 2048x2048 1.12x, 256x2048 1.24x at the low level).
 * - row_order_k_sb: on Zen 5 (family 0x1a, an EPYC VM, session 15) rows of
 *   up to 96 super-blocks are read one after another too: TinyLlama's
 *   ffn_down (22) read 0.70-0.73 of a plain read side by side and 0.98-1.00
 *   in row order (Q4_K and Q6_K 2048x5632, 1.39x), Q4_K_M tg128 1.09x in 8
 *   of 8 alternating pairs; the 7B models' 4096x11008 and 4096x14336 0.72-
 *   0.74 against 0.98-1.02 (1.33-1.42x). Zen 4 keeps 16 (rows of 22 read
 *   2-8% slower so).
 * - row_order_q8 8192 on Zen 5: Q8_0 rows one after another read 0.98-0.99
 *   of a plain read from memory against 0.84 side by side (2048x2048,
 *   2048x5632, 5632x2048: 1.17-1.18x; from cache 1.06-1.17x); Q8_0 tg128
 *   1.16x in 8 of 8 alternating pairs. Zen 4 keeps the 16 streams (such a
 *   form read 0.94-1.04x by shape there, session 6).
 * - row_order_blocks 640 on Zen 5 (227 elsewhere: Q4_0 rows under 4096
 *   bytes): the 7B models' ffn_down in row order too, from memory Q4_0
 *   4096x11008 1.06x and Q8_0 1.12x at the high level, Q4_0 4096x14336
 *   1.02x at the low one; from cache Q4_0 1.08-1.11x, Q8_0 0.95x.
 * Other CPUs keep Intel's. */
static struct cit_row_prefetch row_prefetch = {256, 512, 4, 0, 0, 0, 16, 0, 227}, cpu_row_prefetch;

static bool cpu_is_amd(void)
{
#if CIT_X86_KERNELS
    unsigned a, b, c, d;
    /* "AuthenticAMD" in EBX, EDX, ECX */
    return __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;
#else
    return false;
#endif
}

/* The CPU's family (CPUID 1: the base family, plus the extended one where
 * the base is 0xf); 0 when unknown. AMD: 0x19 Zen 3 / Zen 4, 0x1a Zen 5. */
static unsigned cpu_family(void)
{
#if CIT_X86_KERNELS
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    unsigned base = (a >> 8) & 0xf;
    return base == 0xf ? base + ((a >> 20) & 0xff) : base;
#else
    return 0;
#endif
}

enum cit_isa cit_isa_cap(enum cit_isa best, enum cit_isa cap, bool has_avx_vnni)
{
    enum cit_isa isa = cap < best ? cap : best;
    return isa == CIT_ISA_AVX2_VNNI && !has_avx_vnni ? CIT_ISA_AVX2 : isa;
}

/* Whether the CPU runs a tier (detected and avx_vnni set by build). */
static bool supported(enum cit_isa isa)
{
    return (unsigned)isa < CIT_ISA_COUNT && isa <= detected && (isa != CIT_ISA_AVX2_VNNI || avx_vnni);
}

static void build(void)
{
    if (cpu_is_amd()) {
        const bool zen5 = cpu_family() >= 0x1a;
        row_prefetch =
            (struct cit_row_prefetch){768, 1024, 8, 2048, 8192, 8192, zen5 ? 96 : 16, zen5 ? 8192 : 0, zen5 ? 640 : 227};
    }
    cpu_row_prefetch = row_prefetch;
    cit_kernels_ref(tables[CIT_ISA_SCALAR]);
#if CIT_X86_KERNELS
    static const cit_kernel_register_fn regs[CIT_ISA_COUNT][3] = {
        [CIT_ISA_AVX2] = {cit_kernels_avx2_f, cit_kernels_avx2_q, cit_kernels_avx2_k},
        [CIT_ISA_AVX2_VNNI] = {cit_kernels_avx2vnni_q, cit_kernels_avx2vnni_k, NULL},
        [CIT_ISA_AVX512] = {cit_kernels_avx512_f, cit_kernels_avx512_q, cit_kernels_avx512_k},
        [CIT_ISA_AVX512_VNNI] = {cit_kernels_avx512vnni_q, cit_kernels_avx512vnni_k, NULL},
        [CIT_ISA_AMX] = {cit_kernels_amx_q, cit_kernels_amx_k, NULL},
    };
    bf16_dot = has_avx512_bf16();
    avx_vnni = has_avx_vnni();
    for (int isa = 1; isa < CIT_ISA_COUNT; isa++) {
        /* AVX-512 CPUs need not have AVX-VNNI: their tiers build on avx2 */
        const int below = isa == CIT_ISA_AVX512 ? CIT_ISA_AVX2 : isa - 1;
        memcpy(tables[isa], tables[below], sizeof tables[isa]);
        for (int i = 0; i < 3; i++)
            if (regs[isa][i])
                regs[isa][i](tables[isa]);
        if (isa == CIT_ISA_AVX512_VNNI && bf16_dot)
            cit_kernels_avx512bf16_f(tables[isa]);
    }
#else
    for (int isa = 1; isa < CIT_ISA_COUNT; isa++)
        memcpy(tables[isa], tables[0], sizeof tables[isa]);
#endif
    detected = detect();
    active = detected;
    const char *cap = getenv("CITADEL_ISA");
    if (cap && *cap) {
        int found = -1;
        for (int i = 0; i < CIT_ISA_COUNT; i++)
            if (!strcmp(cap, isa_names[i]))
                found = i;
        if (found < 0) {
            fprintf(stderr, "citadel: CITADEL_ISA=%s is not one of scalar, avx2, avx2vnni, avx512, avx512vnni, amx; "
                    "ignored\n", cap);
        } else {
            active = cit_isa_cap(detected, (enum cit_isa)found, avx_vnni);
        }
    }
}

const struct cit_row_prefetch *cit_row_prefetch(void)
{
    pthread_once(&once, build);
    return &row_prefetch;
}

void cit_row_prefetch_override(const struct cit_row_prefetch *p)
{
    pthread_once(&once, build);
    row_prefetch = p ? *p : cpu_row_prefetch;
}

enum cit_isa cit_isa_detected(void)
{
    pthread_once(&once, build);
    return detected;
}

bool cit_isa_supported(enum cit_isa isa)
{
    pthread_once(&once, build);
    return supported(isa);
}

enum cit_isa cit_isa_active(void)
{
    pthread_once(&once, build);
    return active;
}

const char *cit_isa_name(enum cit_isa isa)
{
    return (unsigned)isa < CIT_ISA_COUNT ? isa_names[isa] : "?";
}

const struct cit_kernel *cit_kernel_for_isa(uint32_t type, enum cit_isa isa)
{
    pthread_once(&once, build);
    if (type >= CIT_TYPE_COUNT || (unsigned)isa >= CIT_ISA_COUNT)
        return NULL;
    return tables[isa][type];
}

const struct cit_kernel *cit_kernel_handling(const struct cit_kernel *k, size_t n_tokens)
{
    const struct cit_kernel *next;
    while (k->hand_off && (next = k->hand_off(n_tokens)) != NULL)
        k = next;
    return k;
}

bool cit_kernel_same_act(const struct cit_kernel *a, const struct cit_kernel *b, size_t n_tokens)
{
    a = cit_kernel_handling(a, n_tokens);
    b = cit_kernel_handling(b, n_tokens);
    if (a->pack_group != b->pack_group)
        return false;
    if (a->layout || b->layout)
        return a->layout == b->layout;
    return a->pack == b->pack && a->act_bytes == b->act_bytes;
}

bool cit_bf16_dot_active(void)
{
    pthread_once(&once, build);
    return bf16_dot && active >= CIT_ISA_AVX512_VNNI;
}

const struct cit_kernel *cit_kernel_get(uint32_t type)
{
    return cit_kernel_for_isa(type, cit_isa_active());
}

/* One line of a sysfs file, newline dropped; false when unreadable. */
static bool read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* Distinct (package, core) pairs under /sys; the online count where that
 * is unreadable. */
static unsigned physical_cores;
static pthread_once_t cores_once = PTHREAD_ONCE_INIT;

static void count_cores(void)
{
    enum { MAX_CPUS = 4096 };
    unsigned long long *seen = calloc(MAX_CPUS, sizeof *seen);
    unsigned n = 0;
    for (unsigned cpu = 0; seen && cpu < MAX_CPUS; cpu++) {
        char path[128], line[32], *end;
        long core = -1, pkg = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/topology/core_id", cpu);
        if (!read_line(path, line, sizeof line))
            break;
        core = strtol(line, &end, 10);
        if (end == line)
            core = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/topology/physical_package_id", cpu);
        if (read_line(path, line, sizeof line)) {
            pkg = strtol(line, &end, 10);
            if (end == line)
                pkg = -1;
        }
        if (core < 0)
            continue;
        unsigned long long key = ((unsigned long long)(pkg + 1) << 32) | (unsigned long long)core;
        bool dup = false;
        for (unsigned i = 0; i < n && !dup; i++)
            dup = seen[i] == key;
        if (!dup)
            seen[n++] = key;
    }
    free(seen);
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (unsigned)online : 1;
    }
    physical_cores = n;
}

unsigned cit_cpu_physical_cores(void)
{
    pthread_once(&cores_once, count_cores);
    return physical_cores;
}

bool cit_parse_cache_size(const char *s, uint64_t *bytes)
{
    if (!s || !bytes)
        return false;
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case 'K': shift = 10; p++; break;
    case 'M': shift = 20; p++; break;
    case 'G': shift = 30; p++; break;
    default: break;
    }
    if (*p == '\n')
        p++;
    if (*p || v > UINT64_MAX >> shift)
        return false;
    *bytes = v << shift;
    return true;
}

/* The sum over distinct highest-level data or unified caches of the online
 * CPUs, as the kernel lists them (each counted once by its sharing CPUs);
 * 0 when /sys does not tell. Not glibc's sysconf: on a 2-vCPU AMD EPYC
 * (Zen 5) VM it said 384 MiB, the whole package's L3, where /sys listed the
 * one 32 MiB L3 these CPUs share. */
static uint64_t llc_from_sys(void)
{
    enum { MAX_CPUS = 4096 };
    char(*seen)[64] = calloc(MAX_CPUS, sizeof *seen); /* one set at most per CPU */
    uint64_t total = 0;
    unsigned n_seen = 0;
    long top = -1;
    for (unsigned cpu = 0; seen && cpu < MAX_CPUS; cpu++) {
        char path[160], line[64], shared[64] = "";
        long best_level = -1;
        uint64_t best_size = 0;
        bool any = false;
        for (unsigned idx = 0; idx < 16; idx++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/cache/index%u/level", cpu, idx);
            if (!read_line(path, line, sizeof line))
                break;
            any = true;
            long level = strtol(line, NULL, 10);
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/cache/index%u/type", cpu, idx);
            if (!read_line(path, line, sizeof line) || !strcmp(line, "Instruction") || level <= best_level)
                continue;
            uint64_t size;
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/cache/index%u/size", cpu, idx);
            if (!read_line(path, line, sizeof line) || !cit_parse_cache_size(line, &size))
                continue;
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/cache/index%u/shared_cpu_list", cpu, idx);
            if (!read_line(path, shared, sizeof shared))
                snprintf(shared, sizeof shared, "cpu%u", cpu);
            best_level = level;
            best_size = size;
        }
        if (!any) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u", cpu);
            if (access(path, F_OK) != 0)
                break; /* past the last CPU */
            continue;  /* offline, or no cache listing */
        }
        if (best_level < 0 || (top >= 0 && best_level < top))
            continue;
        if (best_level > top) { /* a higher level than counted so far: start again */
            top = best_level;
            total = 0;
            n_seen = 0;
        }
        bool dup = false;
        for (unsigned i = 0; i < n_seen && !dup; i++)
            dup = !strcmp(seen[i], shared);
        if (dup)
            continue;
        snprintf(seen[n_seen++], sizeof seen[0], "%s", shared);
        total = best_size > UINT64_MAX - total ? UINT64_MAX : total + best_size;
    }
    free(seen);
    return total;
}

static uint64_t llc_total;
static pthread_once_t llc_once = PTHREAD_ONCE_INIT;

static void find_llc(void)
{
    llc_total = llc_from_sys();
    long v = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
    if (!llc_total)
        v = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
#ifdef _SC_LEVEL2_CACHE_SIZE
    if (!llc_total && v <= 0)
        v = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (!llc_total && v > 0)
        llc_total = (uint64_t)v;
}

uint64_t cit_cpu_llc_bytes(void)
{
    pthread_once(&llc_once, find_llc);
    return llc_total;
}
