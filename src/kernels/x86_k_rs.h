/* x86_k_rs.h: the row-order decode of the K-quant kernels (Q4_K, Q5_K,
 * Q6_K, AVX-512 with VNNI): each 16-row block's rows read whole, one after
 * another, in file order. Included by x86_k_impl.h inside its 512-bit
 * decode section, after the 16-row kernels whose per-row dots and header
 * transposes it reuses (zrow_affine_vnni, zrow_q6_vnni, kx_affine_headers,
 * zreduce16); it defines kx_rows_rs, which gemm_rows_few calls where
 * cit_row_prefetch()->row_order_k asks for it. */
#if KX_VNNI
/* ---- row-order decode (cit_row_prefetch()->row_order_k) ----
 * The 16 rows of a decode block are consecutive in the file. zblock_* read
 * them side by side, super-block s of every row before s + 1: 16 streams.
 * Here each row is read whole before the next, the block's bytes in file
 * order, one stream, with one prefetch per line `ahead` bytes on (into L2)
 * and each next run of 16 super-blocks from L2 into L1 while this one
 * computes. AMD takes it (dispatch.c); tests, bench/model_ab.c and
 * bench/decode_ab.c set it through cit_row_prefetch_override. The (row,
 * super-block) items are numbered k = r * nsb + s; each run of 16 items is
 * reduced together (lane = item), their float steps done with lanes =
 * items, and the 16 * nsb products summed per row in super-block order, as
 * the reference adds them. */
#define KX_RS_MAXSB 96 /* super-blocks per row at most (n_in 24576): the tables hold 6 vectors of them */
#define KX_RS_NV (KX_RS_MAXSB / 16)
static_assert(KX_RS_NV % 2 == 0, "kx_rs_pick takes the tables' vectors in pairs");

/* Bytes ahead in the row-order stream, 0 where it is not used
 * (cit_row_prefetch); -DKX_RS_AHEAD fixes it. */
static KX_ALWAYS_INLINE size_t kx_rs_ahead(void)
{
#ifdef KX_RS_AHEAD
    return KX_RS_AHEAD;
#else
    return cit_row_prefetch()->row_order_k;
#endif
}

/* The longest rows (in super-blocks) the row-order decode takes: the CPU's
 * (cit_row_prefetch), at most KX_RS_MAXSB. */
static KX_ALWAYS_INLINE size_t kx_rs_max_sb(void)
{
    const size_t sb = cit_row_prefetch()->row_order_k_sb;
    return sb < KX_RS_MAXSB ? sb : KX_RS_MAXSB;
}

/* One token's per-super-block values; yd and bp are tables for kx_rs_pick
 * (vector v, lane L: super-block 16v + L). */
struct kx_rs_tok {
    __m512i yd[KX_RS_NV];     /* the token's Q8_K d (float bits) */
    __m512i bp[4][KX_RS_NV];  /* Q4_K / Q5_K: bsums pair sums as int16 pairs, against the mins' even / odd bytes
                               * (pairs 0, 2 | 1, 3 | 4, 6 | 5, 7); Q6_K: unused */
    size_t nv;                /* vectors in use, even: 2 * ceil(nsb / 32) */
    const uint8_t *act; /* the token's Q8_K row */
    /* Q4_K / Q5_K: each super-block's codes in zrow_affine_vnni's order (yv) */
    _Alignas(64) uint8_t yq[KX_RS_MAXSB][CIT_QK_K];
};

/* Lane L: entry idx[L] of the table t (nv vectors of 16, nv even), each
 * pair of vectors one two-source permute, the pairs past the first blended
 * in where idx reaches them. */
static KX_ALWAYS_INLINE __m512i kx_rs_pick(const __m512i *t, size_t nv, __m512i idx)
{
    __m512i r = _mm512_permutex2var_epi32(t[0], idx, t[1]);
    for (size_t v = 2; v < nv; v += 2)
        r = _mm512_mask_blend_epi32(_mm512_cmpge_epu32_mask(idx, _mm512_set1_epi32((int)(16 * v))), r,
                                    _mm512_permutex2var_epi32(t[v], idx, t[v + 1]));
    return r;
}

/* Which super-block each item is, the same for every token and block. */
struct kx_rs_map {
    __m512i gidx[KX_RS_MAXSB];     /* run g, lane L: item 16g + L's (Q4_K / Q5_K: item 16g + zrow_of(L)'s) */
    uint8_t sk[16 * KX_RS_MAXSB]; /* item k's: k % nsb */
    __m512i shuf[2];               /* the dots' scale shuffles: kx_q6_pidx's or kx_affine_sidx's */
};

static KX_ALWAYS_INLINE void kx_rs_map_init(enum kx_kind kind, struct kx_rs_map *mp, size_t nsb)
{
    for (size_t k = 0, sb = 0; k < 16 * nsb; k++, sb = sb + 1 == nsb ? 0 : sb + 1)
        mp->sk[k] = (uint8_t)sb; /* k % nsb, without a division per item: each pool chunk builds this */
    for (size_t g = 0; g < nsb; g++) {
        _Alignas(64) int32_t ix[16];
        for (int i = 0; i < 16; i++)
            ix[i] = mp->sk[16 * g + (size_t)(kind == KX_Q6K ? i : zrow_of(i))];
        mp->gidx[g] = _mm512_load_si512((const void *)ix);
    }
    if (kind == KX_Q6K)
        kx_q6_pidx(mp->shuf);
    else
        kx_affine_sidx(mp->shuf);
}

static KX_ALWAYS_INLINE void kx_rs_tok_init(enum kx_kind kind, struct kx_rs_tok *tk, const uint8_t *act, size_t nsb)
{
    _Alignas(64) float yd[KX_RS_MAXSB] = {0};
    _Alignas(64) int32_t bp[4][KX_RS_MAXSB] = {{0}};
    for (size_t s = 0; s < nsb; s++) {
        const uint8_t *ys = act + s * SB_ACT;
        memcpy(&yd[s], ys, 4);
        if (kind == KX_Q6K)
            continue;
        int16_t bs[16];
        int32_t pairs[4];
        memcpy(bs, ys + 4 + CIT_QK_K, sizeof bs);
        kx_bsum_pairs(bs, pairs);
        for (int i = 0; i < 4; i++)
            bp[i][s] = pairs[i];
        for (int k = 0; k < 2; k++) /* yv[2k + h]: elements 128k + 32h .. + 31, then 128k + 64 + 32h .. + 31 */
            for (int h = 0; h < 2; h++) {
                memcpy(tk->yq[s] + 128 * k + 64 * h, ys + 4 + 128 * k + 32 * h, 32);
                memcpy(tk->yq[s] + 128 * k + 64 * h + 32, ys + 4 + 128 * k + 64 + 32 * h, 32);
            }
    }
    tk->nv = (nsb + 31) / 32 * 2;
    for (size_t v = 0; v < tk->nv; v++) {
        tk->yd[v] = _mm512_load_si512((const void *)(yd + 16 * v));
        for (int i = 0; i < 4; i++)
            tk->bp[i][v] = _mm512_load_si512((const void *)(bp[i] + 16 * v));
    }
    tk->act = act;
}

/* One line prefetch for each line that starts in [p + ahead, p + ahead + n). */
static KX_ALWAYS_INLINE void kx_rs_prefetch(const uint8_t *p, size_t n, size_t ahead)
{
    const uintptr_t st = (uintptr_t)p + ahead;
    for (uintptr_t x = (st + 63) & ~(uintptr_t)63; x < st + n; x += 64)
        _mm_prefetch((const char *)x, KX_PF_HINT);
}

/* The L1 step of a run of 16 items starting at b (n bytes): the next run
 * taken from L2 (where the stream's prefetch `ahead` bytes on put it) into
 * L1 while this one computes (past the matrix: harmless). On Zen 4, paired
 * from memory: the step against none Q4_K 1.05-1.08x, Q5_K 1.17x (32 KiB
 * ahead; two runs ahead the same as one); at 8 KiB ahead Q6_K 1.025x
 * (quartiles 0.99-1.04; docs/benchmarks.md, sessions 10 and 11). Item i (<
 * 16) issues lines i * nl / 16 .. of the next run's nl, so the prefetches go
 * out among the items' arithmetic with constant offsets, not in one loop
 * ahead of it: on Zen 5 (session 15) from cache Q4_K 1.10x, Q6_K 1.24x, from
 * memory 1.03-1.07x at the high bandwidth level (6 of 6 shapes and runs),
 * 0.99-1.01x at the low one. */
static KX_ALWAYS_INLINE void kx_rs_item_l1(const uint8_t *b, size_t n, int i)
{
    const size_t nl = (n + 63) / 64;
    const uintptr_t next = (uintptr_t)b + n;
#pragma GCC unroll 8
    for (size_t l = (size_t)i * nl / 16; l < ((size_t)i + 1) * nl / 16; l++)
        _mm_prefetch((const char *)(next + 64 * l), _MM_HINT_T0);
}

/* Q6_K's stream prefetch, spread the same way: item i's share of the
 * lines that start in [b + ahead, b + ahead + n), in place of
 * kx_rs_prefetch's loop. On Zen 5 (session 15) from memory at the low
 * level Q6_K 2048x2048 1.049-1.085 and 32000x2048 1.068-1.077 against the
 * loop; Q4_K lost so (0.88-0.93). The affine types take their stream in
 * kx_rs_block_affine, Q4_K in quarters, Q5_K in one loop. */
static KX_ALWAYS_INLINE void kx_rs_item_l2(const uint8_t *b, size_t n, size_t ahead, int i)
{
    const size_t nl = n / 64; /* lines that start in the span: nl or nl + 1 */
    const uintptr_t st = (uintptr_t)b + ahead, x0 = (st + 63) & ~(uintptr_t)63;
#pragma GCC unroll 8
    for (size_t l = (size_t)i * nl / 16; l < ((size_t)i + 1) * nl / 16; l++)
        _mm_prefetch((const char *)(x0 + 64 * l), KX_PF_HINT);
    if (i == 15 && x0 + 64 * nl < st + n)
        _mm_prefetch((const char *)(x0 + 64 * nl), KX_PF_HINT);
}

/* out[r] = the sum over s < nsb, in order, of prod[r * nsb + s] (r < 16):
 * a 16x16 transpose per 16 columns (a gather per s cost a fifth of the
 * decode on Zen 4). */
static KX_ALWAYS_INLINE void kx_rs_sums(const float *prod, size_t nsb, float *out)
{
    __m512 sum = _mm512_setzero_ps();
    for (size_t s0 = 0; s0 < nsb; s0 += 16) {
        const size_t nc = nsb - s0 < 16 ? nsb - s0 : 16;
        const __mmask16 m = (__mmask16)((1u << nc) - 1);
        __m512i rows[16], col[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++)
            rows[r] = _mm512_maskz_loadu_epi32(m, prod + (size_t)r * nsb + s0);
        zmm_transpose16(rows, col);
        for (size_t s = 0; s < nc; s++)
            sum = _mm512_add_ps(sum, _mm512_castsi512_ps(col[s]));
    }
    _mm512_storeu_ps(out, sum);
}

/* Q6_K: rows w0 + r * nsb * 210 (r < 16) against one token: out[r] = the
 * reference's dot. Item by item in file order, its stored codes' bias of 32
 * folded into its dot through the scales (sum_j 32 sc_j * -bsums_j, exact
 * in int16: |32 sc| <= 4096, |bsums| <= 2032); each run of 16 items reduced
 * together, lane = item (gidx[g]: each item's super-block). */
static KX_ALWAYS_INLINE void kx_rs_block_q6(const uint8_t *w0, size_t nsb, size_t ahead, const struct kx_rs_tok *tk,
                                            const struct kx_rs_map *mp, float *out)
{
    const size_t bb = 210;
    _Alignas(64) float prod[16 * KX_RS_MAXSB]; /* item k's product */
    _Alignas(64) uint32_t dd[16];
    for (size_t g = 0; g < nsb; g++) {
        const uint8_t *b = w0 + 16 * g * bb;
        __m512i acc[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            if (ahead) {
                kx_rs_item_l2(b, 16 * bb, ahead, i);
                kx_rs_item_l1(b, 16 * bb, i);
            }
            const uint8_t *blk = b + (size_t)i * bb;
            const uint8_t *ys = tk->act + (size_t)mp->sk[16 * g + (size_t)i] * SB_ACT;
            __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(blk + 192)));
            __m256i nbs = _mm256_sub_epi16(_mm256_setzero_si256(),
                                           _mm256_loadu_si256((const __m256i *)(const void *)(ys + 4 + CIT_QK_K)));
            acc[i] = _mm512_dpwssd_epi32(zrow_q6_vnni(blk, ys + 4, mp->shuf),
                                         _mm512_castsi256_si512(_mm256_slli_epi16(sc16, 5)), _mm512_zextsi256_si512(nbs));
            uint16_t h;
            memcpy(&h, blk + 208, 2);
            dd[i] = h;
        }
        __m512i sumi = zreduce16(acc);
        __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_load_si512((const void *)dd)));
        __m512 yd = _mm512_castsi512_ps(kx_rs_pick(tk->yd, tk->nv, mp->gidx[g]));
        _mm512_store_ps(prod + 16 * g, _mm512_mul_ps(_mm512_mul_ps(d, yd), _mm512_cvtepi32_ps(sumi)));
    }
    kx_rs_sums(prod, nsb, out);
}

/* Q4_K / Q5_K: a block's 16 * nsb super-blocks are consecutive in the file,
 * so each run of 16 is handled as zblock_affine handles 16 rows (lane L =
 * item zrow_of(L), headers transposed with stride bb), each item against its
 * own super-block of the token: gidx[g] lane L = that super-block, and
 * sk[16g + i] item i's. */
static KX_ALWAYS_INLINE void kx_rs_block_affine(enum kx_kind kind, const uint8_t *w0, size_t nsb, size_t ahead,
                                                const struct kx_rs_tok *tk, const struct kx_rs_map *mp, float *out)
{
    const size_t bb = (size_t)kind_bytes(kind);
    _Alignas(64) float prod[16 * KX_RS_MAXSB]; /* item k's product */
    /* The stream's prefetch, lines `ahead` on: Q4_K a quarter of the run
     * every 4 items (the lines that start in items 4q .. 4q + 3's bytes);
     * Q5_K the whole run in one loop before its items. Whole TinyLlama
     * decode steps on Zen 5, the two forms alternating every 8 tokens in
     * one process, quarters against the loop: Q4_K_M 1.017 at the low
     * bandwidth level (93 of 120 rounds higher), 1.028 at the high (46 of
     * 58); Llama-2-7B Q4_K_M 1.021 / 1.007; Q5_K_M 0.948 at the low level
     * (halves 0.988), so Q5_K keeps the loop. Inside the matmul loops
     * (bench/model_ab.c) eighths and single items read slower than the
     * loop at the low level (docs/benchmarks.md, sessions 18 and 19). */
    const bool quarters = kind == KX_Q4K;
    for (size_t g = 0; g < nsb; g++) {
        const uint8_t *b = w0 + 16 * g * bb;
        if (ahead && !quarters)
            kx_rs_prefetch(b, 16 * bb, ahead);
        __m512i dd, m_lo, m_hi;
        uint64_t scl[16] __attribute__((aligned(64)));
        kx_affine_headers(b, bb, &dd, scl, &m_lo, &m_hi);
        const __m512i ix = mp->gidx[g];
        const __m512i pv[4] = {kx_rs_pick(tk->bp[0], tk->nv, ix), kx_rs_pick(tk->bp[1], tk->nv, ix),
                               kx_rs_pick(tk->bp[2], tk->nv, ix), kx_rs_pick(tk->bp[3], tk->nv, ix)};
        __m512i summ = kx_summ_pairs(m_lo, m_hi, pv);
        __m512i acc[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) {
            if (ahead) {
                if (quarters && r % 4 == 0)
                    kx_rs_prefetch(b + (size_t)r * bb, 4 * bb, ahead);
                kx_rs_item_l1(b, 16 * bb, r);
            }
            const int i = zrow_of(r); /* lane r */
            const uint8_t *yq = tk->yq[mp->sk[16 * g + (size_t)i]];
            __m512i yv[4];
            for (int k = 0; k < 4; k++)
                yv[k] = _mm512_load_si512((const void *)(yq + 64 * k));
            int k = (r & 2) * 4 + (r >> 2) * 2 + (r & 1);
            acc[r] = zrow_affine_vnni(kind, b + (size_t)i * bb, yv, scl[k], mp->shuf);
        }
        __m512i sumi = zreduce16(acc);
        __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        __m512 yd = _mm512_castsi512_ps(kx_rs_pick(tk->yd, tk->nv, ix));
        __m512 t1 = _mm512_mul_ps(_mm512_mul_ps(d, yd), _mm512_cvtepi32_ps(sumi));
        __m512 t2 = _mm512_mul_ps(_mm512_mul_ps(dmin, yd), _mm512_cvtepi32_ps(summ));
        _mm512_store_ps(prod + 16 * g, zrow_order(_mm512_sub_ps(t1, t2)));
    }
    kx_rs_sums(prod, nsb, out);
}

/* 16-row blocks from r0 (r0 + 16 <= r1) in row order, nsb <= KX_RS_MAXSB;
 * returns the first row not done. The first token's pass reads the block
 * from memory; the others find it in L1 / L2. */
static KX_ALWAYS_INLINE size_t kx_rows_rs(enum kx_kind kind, const void *w, size_t row_bytes, size_t nsb, size_t r0,
                                          size_t r1, const void *act, size_t n_tokens, float *y, size_t ldy,
                                          size_t ahead)
{
    struct kx_rs_tok tk[GEMM_MIN - 1];
    struct kx_rs_map mp;
    for (size_t t = 0; t < n_tokens; t++)
        kx_rs_tok_init(kind, &tk[t], (const uint8_t *)act + t * nsb * SB_ACT, nsb);
    kx_rs_map_init(kind, &mp, nsb);
    size_t r = r0;
    for (; r + 16 <= r1; r += 16) {
        const uint8_t *w0 = (const uint8_t *)w + r * row_bytes;
        for (size_t t = 0; t < n_tokens; t++)
            if (kind == KX_Q6K)
                kx_rs_block_q6(w0, nsb, t == 0 ? ahead : 0, &tk[t], &mp, y + t * ldy + r);
            else
                kx_rs_block_affine(kind, w0, nsb, t == 0 ? ahead : 0, &tk[t], &mp, y + t * ldy + r);
    }
    return r;
}
static_assert(GEMM_MIN - 1 <= 3, "kx_rows_rs keeps the few tokens' tables on the stack");
#endif
