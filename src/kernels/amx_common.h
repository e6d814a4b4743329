/* amx_common.h: what the AMX kernel files (amx_q.c, amx_k.c, amx_probe.c)
 * share: the tile configuration record, and the size of an activation
 * buffer for kernels that hand small batches to the tier below. Include
 * after the amx target pragma. */
#ifndef CITADEL_KERNELS_AMX_COMMON_H
#define CITADEL_KERNELS_AMX_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "base/checked.h"
#include "kernels/kernels.h"

#define AMX_GROUP 16 /* tokens per tile of activations (= pack_group) */

/* The LDTILECFG record (palette 1). Keep instances static const: GCC 12
 * drops stores to a local record that only LDTILECFG reads. */
struct amx_tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* Bytes of activations for n_tokens: below min, the tier below's; from min
 * on, groups of AMX_GROUP tokens of (n_in / block) units of unit_bytes,
 * never less than below's size for min - 1 tokens (so the size does not
 * decrease across the switch). False on overflow. */
static inline bool amx_act_bytes(const struct cit_kernel *below, size_t min, uint64_t n_in, uint64_t n_tokens,
                                 uint64_t block, uint64_t unit_bytes, uint64_t *bytes)
{
    if (n_tokens < min)
        return below->act_bytes(n_in, n_tokens, bytes);
    uint64_t floor, per_group, groups = n_tokens / AMX_GROUP + (n_tokens % AMX_GROUP != 0);
    if (!below->act_bytes(n_in, min - 1, &floor) || !cit_mul_u64(n_in / block, unit_bytes, &per_group) ||
        !cit_mul_u64(per_group, groups, bytes))
        return false;
    if (*bytes < floor)
        *bytes = floor;
    return true;
}

#endif
