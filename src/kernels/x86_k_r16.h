/* x86_k_r16.h: the K-quant kernels that read the 16-row interleaved layout
 * (kernels/repack.h, `--repack`): Q4_K and Q6_K, AVX-512 with VNNI, up to
 * KX_R16_MAX tokens. Included by x86_k_impl.h (after its tile vocabulary and
 * decode kernels); it defines KX_Q4K_R16 and KX_Q6K_R16, the gemm_r16 of the
 * two kernels, NULL on the tiers without them.
 *
 * Lanes = the 16 rows of a group, as the file layout's 16-row decode blocks,
 * but with nothing to shuffle: each 64-byte load holds the same 4 bytes of
 * all 16 rows, so one vpdpbusd against a broadcast activation dword adds to
 * every row's own lane, and the per-row scales load as one vector per field.
 * Every lane computes the reference's exact integer sum of its super-block,
 * then the reference's float steps, so logits do not change. */
#if KX_BITS == 512 && KX_VNNI
#define ZR16_T 3 /* tokens per pass over a group */
#ifndef KX_R16_MAX
#define KX_R16_MAX 32 /* most tokens the R16 path takes natively (then: through rows); paired runs from
                        * memory against the file layout (Q4_K): 17 tokens 1.57x, 24 1.21x, 32 1.00x, 48 0.93x */
#endif
#ifndef KX_R16_PF
#define KX_R16_PF 4096 /* bytes ahead in the group's stream that the R16 path prefetches (into L2, KX_PF_HINT:
                        * paired against L1 from memory, Q4_K 2048x2048 1.135, 5632x2048 1.127) */
#endif

#ifndef KX_R16_PF_Q6
/* Q6_K's distance. Paired from memory (2 MiB pages, 2 threads, 5632x2048, against 4096; each round's
 * plain read of the same bytes split the AMD EPYC (Zen 4) host's two bandwidth levels, 34-37 and 55-59
 * GB/s): 8192 1.07 / 1.15 (low / high level), 16384 1.11 / 1.15, 24576 1.07 / 1.13, 32768 1.11 / 1.14.
 * Q4_K lost at 8192 (0.83 / 0.66) and 16384 (0.87 / 0.70), so it keeps KX_R16_PF. */
#define KX_R16_PF_Q6 16384
#endif

#ifndef KX_R16_PF_L1
#define KX_R16_PF_L1 1024 /* ... and then, closer, into L1 (as XQ_R16_PF_L1). Paired from memory (2 MiB pages, 2
                          * threads) against none, Q4_K / Q6_K at 4 shapes: 1024 +2-8%, 2048 -2-+5% */
#endif

/* The line at p of a group's stream: prefetched `ahead` bytes on into L2
 * (KX_R16_PF, Q6_K: KX_R16_PF_Q6) and KX_R16_PF_L1 ahead into L1. */
static KX_ALWAYS_INLINE void zr16_prefetch(const uint8_t *p, const size_t ahead)
{
    _mm_prefetch((const char *)p + ahead, KX_PF_HINT);
    if (KX_R16_PF_L1)
        _mm_prefetch((const char *)p + KX_R16_PF_L1, _MM_HINT_T0);
}

/* Token tk's activations for super-block s: its first code dword *qa (the
 * next dword `stride` bytes on, see zr16_stride), bsums and scale; from the
 * reference rows (tiled 0, fewer than GEMM_MIN tokens) or the
 * token-interleaved tile format (tiled 1). */
static KX_ALWAYS_INLINE void zr16_act(const uint8_t *act, size_t nsb, size_t s, size_t tk, const int tiled,
                                      const uint8_t **qa, int16_t bs[16], float *yd)
{
    if (tiled) {
        const uint8_t *o = act + ((tk / KX_W) * nsb + s) * TILE_SB;
        size_t lane = tk % KX_W;
        *qa = o + 4 * lane;
        for (int i = 0; i < 8; i++)
            memcpy(bs + 2 * i, o + TILE_BS + (i * KX_W + lane) * 4, 4);
        memcpy(yd, o + TILE_D + 4 * lane, 4);
    } else {
        const uint8_t *ys = act + (tk * nsb + s) * SB_ACT;
        *qa = ys + 4;
        memcpy(bs, ys + 4 + CIT_QK_K, 16 * sizeof bs[0]);
        memcpy(yd, ys, 4);
    }
}

/* The NT tokens' activations of super-block s (zr16_act for each). */
struct zr16_toks {
    const uint8_t *qa[ZR16_T]; /* dword 0 of the token's codes */
    int16_t bs[ZR16_T][16];
    float yd[ZR16_T];
};
static KX_ALWAYS_INLINE void zr16_acts(const uint8_t *act, size_t nsb, size_t s, size_t tok0, const int NT,
                                       const int tiled, struct zr16_toks *tk)
{
    for (int t = 0; t < NT; t++)
        zr16_act(act, nsb, s, tok0 + (size_t)t, tiled, &tk->qa[t], tk->bs[t], &tk->yd[t]);
}

/* Bytes from one activation dword of a token to the next. */
#define zr16_stride(tiled) ((tiled) ? (size_t)4 * KX_W : (size_t)4)

/* Stores lanes [lo, hi) of the NT tokens' sums (lane r: yg[t * ldy + r]). */
static KX_ALWAYS_INLINE void zr16_store(const __m512 *sum, unsigned lo, unsigned hi, size_t tok0, float *yg,
                                        size_t ldy, const int NT)
{
    const __mmask16 mask = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
    for (int t = 0; t < NT; t++)
        _mm512_mask_storeu_ps(yg + (tok0 + (size_t)t) * ldy, mask, sum[t]);
}

/* ---- Q4_K ----
 * The headers load as d|dmin and three scale dwords per lane. The high
 * nibbles are used in place (code * 16, masked with 0xf0): their sums are
 * exact multiples of 16, shifted back before the scale, so there is one
 * mask per nibble and no shift per load. Per (row, token, super-block): sumi
 * = sum_j sc_j * dot_j exactly (vpmulld), summ by kx_summ_rows_bs, then the
 * reference's float steps as in zblock_affine. */
static KX_ALWAYS_INLINE void zr16_q4k(const uint8_t *grp, size_t nsb, unsigned lo, unsigned hi, const uint8_t *act,
                                      size_t tok0, float *yg, size_t ldy, const int NT, const int tiled)
{
    const __m512i m0f = _mm512_set1_epi8(0x0f), mf0 = _mm512_set1_epi8((char)0xf0), mff = _mm512_set1_epi32(0xff);
    const size_t stride = zr16_stride(tiled);
    __m512 sum[ZR16_T];
    for (int t = 0; t < NT; t++)
        sum[t] = _mm512_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const uint8_t *g = grp + 2304 * s;
        for (int q = 0; q < 4; q++)
            zr16_prefetch(g + 64 * q, KX_R16_PF);
        __m512i dd = _mm512_loadu_si512((const void *)g), s_lo, s_hi, m_lo, m_hi;
        kx_scales_rows(_mm512_loadu_si512((const void *)(g + 64)), _mm512_loadu_si512((const void *)(g + 128)),
                       _mm512_loadu_si512((const void *)(g + 192)), &s_lo, &s_hi, &m_lo, &m_hi);
        struct zr16_toks tk;
        zr16_acts(act, nsb, s, tok0, NT, tiled, &tk);
        __m512i sumi[ZR16_T];
        for (int t = 0; t < NT; t++)
            sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int gi = 0; gi < 4; gi++) { /* elements 64 gi ..: sub-blocks 2 gi (low nibbles), 2 gi + 1 (high) */
            const __m512i sx = gi < 2 ? s_lo : s_hi;
            const __m512i sc_a = _mm512_and_si512(_mm512_srli_epi32(sx, 16 * (gi & 1)), mff);
            const __m512i sc_b = _mm512_and_si512(_mm512_srli_epi32(sx, 16 * (gi & 1) + 8), mff);
            __m512i al[ZR16_T], ah[ZR16_T];
            for (int t = 0; t < NT; t++)
                al[t] = ah[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                const uint8_t *q = g + 256 + 64 * (8 * gi + k);
                zr16_prefetch(q, KX_R16_PF);
                __m512i v = _mm512_loadu_si512((const void *)q);
                __m512i cl = _mm512_and_si512(v, m0f), ch = _mm512_and_si512(v, mf0);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    const uint8_t *ya = tk.qa[t] + stride * (size_t)(16 * gi + k); /* elements 64 gi + 4k .. */
                    al[t] = _mm512_dpbusd_epi32(al[t], cl, _mm512_broadcastd_epi32(_mm_loadu_si32(ya)));
                    ah[t] = _mm512_dpbusd_epi32(ah[t], ch, _mm512_broadcastd_epi32(_mm_loadu_si32(ya + 8 * stride)));
                }
            }
            for (int t = 0; t < NT; t++)
                sumi[t] = _mm512_add_epi32(sumi[t], _mm512_add_epi32(_mm512_mullo_epi32(al[t], sc_a),
                                                                     _mm512_mullo_epi32(_mm512_srai_epi32(ah[t], 4), sc_b)));
        }
        const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        for (int t = 0; t < NT; t++) {
            __m512i summ = kx_summ_rows_bs(m_lo, m_hi, tk.bs[t]);
            __m512 yd = _mm512_set1_ps(tk.yd[t]);
            __m512 t1 = _mm512_mul_ps(_mm512_mul_ps(d, yd), _mm512_cvtepi32_ps(sumi[t]));
            __m512 t2 = _mm512_mul_ps(_mm512_mul_ps(dmin, yd), _mm512_cvtepi32_ps(summ));
            sum[t] = _mm512_add_ps(sum[t], _mm512_sub_ps(t1, t2));
        }
    }
    zr16_store(sum, lo, hi, tok0, yg, ldy, NT);
}

/* ---- Q6_K ----
 * A group's super-block is 52 dwords per lane (ql 0-31, qh 32-47, scales
 * 48-51) and its half scales sit in the d region after the codes. For half
 * n and dword j (0-7) of it, ql dwords A = 16n + j and B = 16n + 8 + j and
 * qh dword H = 32 + 8n + j hold elements e = 128n + 4j + 32i .. + 3 for i =
 * 0..3: the low nibbles of A (i 0) and B (i 1), the high nibbles of A (i 2)
 * and B (i 3), each with bits 2i, 2i + 1 of H as bits 4-5. Element e is in
 * sub-block e / 16 = 8n + 2i + j / 4, so dwords j = 0-3 fill four whole
 * sub-blocks and j = 4-7 the next four. Each sub-block's accumulator starts
 * at -32 * bsum (the codes are stored + 32), so after its four vpdpbusd it
 * holds the exact sum of (code - 32) * y; times its scale (vpmulld) into
 * sumi; then (d * yd) * sumi, the reference's float steps (zblock_q6). */
static KX_ALWAYS_INLINE void zr16_q6k(const uint8_t *grp, size_t nsb, unsigned lo, unsigned hi, const uint8_t *act,
                                      size_t tok0, float *yg, size_t ldy, const int NT, const int tiled)
{
    const __m512i m0f = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const size_t stride = zr16_stride(tiled);
    const uint8_t *dreg = grp + 3328 * nsb; /* [nsb][16 rows] half scales */
    __m512 sum[ZR16_T];
    for (int t = 0; t < NT; t++)
        sum[t] = _mm512_setzero_ps();
    for (size_t s = 0; s < nsb; s++) {
        const uint8_t *g = grp + 3328 * s;
        _mm_prefetch((const char *)dreg + 32 * s + 128, KX_PF_HINT);
        __m512i scw[4]; /* dword k of a lane: the row's scales 4k .. 4k + 3 */
        for (int k = 0; k < 4; k++) {
            zr16_prefetch(g + 64 * (48 + k), KX_R16_PF_Q6);
            scw[k] = _mm512_loadu_si512((const void *)(g + 64 * (48 + k)));
        }
        struct zr16_toks tk;
        zr16_acts(act, nsb, s, tok0, NT, tiled, &tk);
        __m512i sumi[ZR16_T];
        for (int t = 0; t < NT; t++)
            sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int hq = 0; hq < 4; hq++) { /* half n = hq / 2, dwords j = 4 (hq % 2) .. + 3 */
            const int n = hq >> 1, jb = 4 * (hq & 1);
            __m512i acc[ZR16_T][4]; /* sub-block 8n + 2i + jb / 4 */
            for (int t = 0; t < NT; t++)
                for (int i = 0; i < 4; i++)
                    acc[t][i] = _mm512_set1_epi32(-32 * (int32_t)tk.bs[t][8 * n + 2 * i + jb / 4]);
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; jj++) {
                const int j = jb + jj;
                const uint8_t *pa = g + 64 * (16 * n + j), *pb = pa + 64 * 8, *ph = g + 64 * (32 + 8 * n + j);
                zr16_prefetch(pa, KX_R16_PF_Q6);
                zr16_prefetch(pb, KX_R16_PF_Q6);
                zr16_prefetch(ph, KX_R16_PF_Q6);
                const __m512i a = _mm512_loadu_si512((const void *)pa), b = _mm512_loadu_si512((const void *)pb);
                const __m512i h = _mm512_loadu_si512((const void *)ph);
                __m512i w[4];
                w[0] = _mm512_or_si512(_mm512_and_si512(a, m0f), _mm512_and_si512(_mm512_slli_epi16(h, 4), m30));
                w[1] = _mm512_or_si512(_mm512_and_si512(b, m0f), _mm512_and_si512(_mm512_slli_epi16(h, 2), m30));
                w[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a, 4), m0f), _mm512_and_si512(h, m30));
                w[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(b, 4), m0f),
                                       _mm512_and_si512(_mm512_srli_epi16(h, 2), m30));
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++)
                    for (int t = 0; t < NT; t++) {
                        const uint8_t *ya = tk.qa[t] + stride * (size_t)(32 * n + 8 * i + j); /* element 128n+32i+4j */
                        acc[t][i] = _mm512_dpbusd_epi32(acc[t][i], w[i], _mm512_broadcastd_epi32(_mm_loadu_si32(ya)));
                    }
            }
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const int sb = 8 * n + 2 * i + jb / 4;
                const __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(scw[sb >> 2], 24 - 8 * (sb & 3)), 24);
                for (int t = 0; t < NT; t++)
                    sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(acc[t][i], sc));
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(dreg + 32 * s)));
        for (int t = 0; t < NT; t++) {
            __m512 tt = _mm512_mul_ps(d, _mm512_set1_ps(tk.yd[t]));
            sum[t] = _mm512_add_ps(sum[t], _mm512_mul_ps(tt, _mm512_cvtepi32_ps(sumi[t])));
        }
    }
    zr16_store(sum, lo, hi, tok0, yg, ldy, NT);
}

static void kx_q4_k_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                         size_t n_tokens, float *y, size_t ldy);
static void kx_q6_k_gemm(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,
                         size_t n_tokens, float *y, size_t ldy);

/* gemm_r16 of Q4_K and Q6_K: natively up to KX_R16_MAX tokens (a server's
 * decode batches, short prompts), in passes of up to ZR16_T tokens over each
 * group (its codes stay in L1 / L2 between passes); larger batches (prompts)
 * through rows (cit_r16_gemm_rows), where the tile kernels unpack each
 * weight once for many tokens. One token reads one group at a time: the
 * decode pairs of the Q4_0 / Q8_0 kernels (cit_r16_decode_pairs), two
 * groups' super-blocks in lockstep, lost 5-9% here (paired from memory). */
struct zr16_ctx {
    size_t nsb, ldy;
    const uint8_t *act;
    float *y;
    int tiled;
};

/* One pass (1 to ZR16_T tokens, the decode or the tile format) of the
 * kernel fn, instantiated for each case so the loops unroll. */
#define ZR16_PASS_FN(name, fn)                                                                                      \
    static void name(const unsigned char *grp, size_t g0, unsigned lo, unsigned hi, size_t t0, size_t n,            \
                     const void *ctx)                                                                               \
    {                                                                                                               \
        const struct zr16_ctx *c = ctx;                                                                             \
        if (c->tiled)                                                                                               \
            n == 3 ? fn(grp, c->nsb, lo, hi, c->act, t0, c->y + g0, c->ldy, 3, 1)                                   \
            : n == 2 ? fn(grp, c->nsb, lo, hi, c->act, t0, c->y + g0, c->ldy, 2, 1)                                 \
                     : fn(grp, c->nsb, lo, hi, c->act, t0, c->y + g0, c->ldy, 1, 1);                                \
        else                                                                                                        \
            n == 3 ? fn(grp, c->nsb, lo, hi, c->act, t0, c->y + g0, c->ldy, 3, 0)                                   \
            : n == 2 ? fn(grp, c->nsb, lo, hi, c->act, t0, c->y + g0, c->ldy, 2, 0)                                 \
                     : fn(grp, c->nsb, lo, hi, c->act, t0, c->y + g0, c->ldy, 1, 0);                                \
    }
ZR16_PASS_FN(zr16_pass_q4k, zr16_q4k)
ZR16_PASS_FN(zr16_pass_q6k, zr16_q6k)
static_assert(ZR16_T == 3, "ZR16_PASS_FN instantiates 1 to 3 tokens");

#define ZR16_GEMM_FN(name, type, pass, rows_gemm)                                                                   \
    static void name(const void *w, size_t row_bytes, size_t n_in, size_t r0, size_t r1, const void *act,          \
                     size_t n_tokens, float *y, size_t ldy)                                                         \
    {                                                                                                               \
        if (r0 >= r1 || n_tokens == 0)                                                                              \
            return;                                                                                                 \
        if (n_tokens > KX_R16_MAX) {                                                                                \
            cit_r16_gemm_rows(rows_gemm, type, w, row_bytes, n_in, r0, r1, act, n_tokens, y, ldy);                 \
            return;                                                                                                 \
        }                                                                                                           \
        const struct zr16_ctx c = {n_in / CIT_QK_K, ldy, act, y, n_tokens >= GEMM_MIN};                             \
        cit_r16_passes(w, row_bytes, r0, r1, n_tokens, ZR16_T, pass, &c);                                           \
    }
ZR16_GEMM_FN(kx_q4_k_gemm_r16, CIT_TYPE_Q4_K, zr16_pass_q4k, kx_q4_k_gemm)
ZR16_GEMM_FN(kx_q6_k_gemm_r16, CIT_TYPE_Q6_K, zr16_pass_q6k, kx_q6_k_gemm)
#define KX_Q4K_R16 kx_q4_k_gemm_r16
#define KX_Q6K_R16 kx_q6_k_gemm_r16
#else
#define KX_Q4K_R16 NULL
#define KX_Q6K_R16 NULL
#endif
