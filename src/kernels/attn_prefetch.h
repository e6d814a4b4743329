/* attn_prefetch.h: the next key block's keys and values fetched into L2
 * while the current block is computed (attention in both SIMD tiers).
 *
 * Attention reads a block of keys and values in the first head's pass and
 * runs the group's other passes from L1, so without help memory idles for
 * most of a block. Spreading the next block's lines over the current
 * block's q . k steps keeps reads in flight the whole time. Every line with
 * the T1 hint measured best (docs/benchmarks.md, sessions 12 and 13):
 * every 2nd, 4th or 8th line only, the T0 hint, and the whole block in one
 * burst were all slower. Prefetches never fault and change no result. */
#ifndef CITADEL_KERNELS_ATTN_PREFETCH_H
#define CITADEL_KERNELS_ATTN_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

struct attn_pf {
    uintptr_t k, v; /* first line of the next block's keys and of its values (addresses:
                     * the last line may lie past the rows, which a prefetch allows) */
    size_t n;          /* 64-byte lines of each */
    size_t per;        /* lines of each issued per step */
    size_t i;          /* lines issued so far */
};

/* Sets up the fetch of rows [p, p + n_rows) of k and v (rows kv_stride
 * floats apart, hd used), spread over `steps` calls of attn_pf_step;
 * n_rows 0 fetches nothing. */
static inline void attn_pf_init(struct attn_pf *pf, const float *k, const float *v, size_t p, size_t n_rows,
                                size_t kv_stride, size_t hd, size_t steps)
{
    pf->i = pf->n = pf->per = 0;
    pf->k = pf->v = 0;
    if (n_rows == 0)
        return;
    uintptr_t ks = (uintptr_t)(k + p * kv_stride), vs = (uintptr_t)(v + p * kv_stride);
    size_t bytes = ((n_rows - 1) * kv_stride + hd) * sizeof(float);
    size_t lk = (ks % 64 + bytes + 63) / 64, lv = (vs % 64 + bytes + 63) / 64;
    pf->k = ks - ks % 64;
    pf->v = vs - vs % 64;
    pf->n = lk > lv ? lk : lv;
    pf->per = steps ? (pf->n + steps - 1) / steps : pf->n;
}

static inline void attn_pf_step(struct attn_pf *pf)
{
    size_t e = pf->n - pf->i < pf->per ? pf->n : pf->i + pf->per;
    for (; pf->i < e; pf->i++) {
        __builtin_prefetch((const void *)(pf->k + 64 * pf->i), 0, 2); /* prefetcht1 on x86 */
        __builtin_prefetch((const void *)(pf->v + 64 * pf->i), 0, 2);
    }
}

/* Issues whatever the steps left. */
static inline void attn_pf_finish(struct attn_pf *pf)
{
    pf->per = pf->n;
    attn_pf_step(pf);
}

#endif
