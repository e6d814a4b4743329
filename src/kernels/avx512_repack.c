/* avx512_repack.c: the R16 layout (kernels/repack.h) turned back into rows
 * with AVX-512, for cit_r16_unpack_group. The batches that no interleaved
 * kernel reads (prompts, and Q4_K / Q6_K on the matrix unit) unpack every
 * group they use once per call; the plain C moves of repack.c copy 4 bytes
 * per load and store, which made that unpack a visible share of a 64-token
 * batch. Here 4 dwords of 16 rows (256 bytes) are a 4x4 dword transpose per
 * 128-bit lane: 8 unpacks, then 16 stores of 16 bytes. */
#include <immintrin.h>

#include "kernels/repack.h"

/* Lane k of v (16 bytes: row 4k + j of the transposed quad) to p. */
#define STORE_LANE(p, v, k) _mm_storeu_si128((__m128i *)(void *)(p), _mm512_extracti32x4_epi32(v, k))

void cit_r16_unpack_dwords_avx512(const unsigned char *src, size_t ndw, unsigned char *dst, size_t row_bytes)
{
    for (size_t q = 0; q < ndw; q += 4) {
        const unsigned char *s = src + 64 * q; /* dwords q .. q + 3, each [16 rows] */
        __m512i v0 = _mm512_loadu_si512((const void *)s), v1 = _mm512_loadu_si512((const void *)(s + 64));
        __m512i v2 = _mm512_loadu_si512((const void *)(s + 128)), v3 = _mm512_loadu_si512((const void *)(s + 192));
        __m512i t0 = _mm512_unpacklo_epi32(v0, v1), t1 = _mm512_unpackhi_epi32(v0, v1);
        __m512i t2 = _mm512_unpacklo_epi32(v2, v3), t3 = _mm512_unpackhi_epi32(v2, v3);
        /* lane k of r[j]: dwords q .. q + 3 of row 4k + j */
        __m512i r[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2), _mm512_unpacklo_epi64(t1, t3),
                        _mm512_unpackhi_epi64(t1, t3)};
        unsigned char *d = dst + 4 * q;
        for (int j = 0; j < 4; j++) {
            STORE_LANE(d + (size_t)j * row_bytes, r[j], 0);
            STORE_LANE(d + (size_t)(4 + j) * row_bytes, r[j], 1);
            STORE_LANE(d + (size_t)(8 + j) * row_bytes, r[j], 2);
            STORE_LANE(d + (size_t)(12 + j) * row_bytes, r[j], 3);
        }
    }
}
