/* x86_zmm.h: register shuffles shared by the 512-bit kernel files
 * (x86_q_impl.h, amx_k.c). Include only after an AVX-512 target pragma. */
#ifndef CITADEL_KERNELS_X86_ZMM_H
#define CITADEL_KERNELS_X86_ZMM_H

#include <immintrin.h>
#include <stdint.h>

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

/* 16x16 dword transpose in registers: out[c] dword i = r[i] dword c. */
static inline __attribute__((always_inline)) void zmm_transpose16(const __m512i r[16], __m512i out[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* rows 4G..4G+3: u[4G + k] lane L = column 4L + k of those rows */
    for (int G = 0; G < 4; G++) {
        __m512i *tt = t + 4 * G;
        u[4 * G + 0] = _mm512_unpacklo_epi64(tt[0], tt[2]);
        u[4 * G + 1] = _mm512_unpackhi_epi64(tt[0], tt[2]);
        u[4 * G + 2] = _mm512_unpacklo_epi64(tt[1], tt[3]);
        u[4 * G + 3] = _mm512_unpackhi_epi64(tt[1], tt[3]);
    }
    for (int k = 0; k < 4; k++) {
        __m512i v[4] = {u[k], u[4 + k], u[8 + k], u[12 + k]}, o[4];
        zmm_transpose4x128(v, o);
        for (int L = 0; L < 4; L++)
            out[4 * L + k] = o[L];
    }
}

/* 16 rows of 16 dwords (row i at in + 64 i) to columns: out[16 q + i] =
 * dword q of row i (the B layout of an AMX tile). */
static inline void zmm_transpose16x32(const uint8_t *in, int32_t *out)
{
    __m512i r[16], c[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_si512(in + 64 * i);
    zmm_transpose16(r, c);
    for (int q = 0; q < 16; q++)
        _mm512_storeu_si512(out + 16 * q, c[q]);
}

#endif
