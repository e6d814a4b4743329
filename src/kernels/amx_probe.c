/* amx_probe.c: the int8 tile probe loop (kernels/probe.h) for AMX: TDPBSSD,
 * one instruction that multiplies a 16 x 64 int8 tile by a 64 x 16 one into
 * a 16 x 16 int32 tile (16,384 multiply-adds). The prompt kernels of the amx
 * tier (amx_q.c, amx_k.c) run their int8 products on it, so it is their
 * ceiling; the vector probes stay those of AVX-512 VNNI. */
#include "kernels/probe.h"

#include <string.h>

#define PROBE_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")))

#include <immintrin.h>

#include "kernels/amx_common.h"

/* Four independent output tiles (0-3) from two A (4, 5) and two B (6, 7)
 * tiles, all 16 rows x 64 bytes: 4 x 16,384 x 2 ops per iteration. */
PROBE_TARGET static void dot_amx(uint64_t iters)
{
    static const struct amx_tilecfg cfg = {.palette = 1,
                                           .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
                                           .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
    _Alignas(64) int8_t a[16 * 64];
    for (int i = 0; i < 16 * 64; i++)
        a[i] = (int8_t)(i % 7 - 3);
    if (!iters)
        return;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, a, 64);
    _tile_loadd(7, a, 64);
    for (uint64_t i = 0; i < iters; i++) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
    _tile_release();
}

void cit_probe_kernels_amx(struct cit_probe_kernels *k)
{
    cit_probe_kernels_avx512vnni(k);
    k->tile = dot_amx;
    k->tile_ops_per_iter = 4.0 * 16 * 16 * 64 * 2;
    k->tile_insn = "tdpbssd (AMX tiles)";
}
