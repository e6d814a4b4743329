/* x86_zmm.h: register shuffles shared by the 512-bit kernel files
 * (x86_q_impl.h, amx_k.c). Include only after an AVX-512 target pragma. */
#ifndef CITADEL_KERNELS_X86_ZMM_H
#define CITADEL_KERNELS_X86_ZMM_H

#include <immintrin.h>

/* 4x4 transpose of 128-bit lanes: t[j] lane g = v[g] lane j. */
static inline __attribute__((always_inline)) void zmm_transpose4x128(const __m512i v[4], __m512i t[4])
{
    __m512i a = _mm512_shuffle_i32x4(v[0], v[1], 0x44), b = _mm512_shuffle_i32x4(v[0], v[1], 0xee);
    __m512i c = _mm512_shuffle_i32x4(v[2], v[3], 0x44), d = _mm512_shuffle_i32x4(v[2], v[3], 0xee);
    t[0] = _mm512_shuffle_i32x4(a, c, 0x88);
    t[1] = _mm512_shuffle_i32x4(a, c, 0xdd);
    t[2] = _mm512_shuffle_i32x4(b, d, 0x88);
    t[3] = _mm512_shuffle_i32x4(b, d, 0xdd);
}

#endif
