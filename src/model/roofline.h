/* roofline.h: what one token of a model demands of the machine, for
 * `citadel bench`'s "% of limit" column (docs/bench.md):
 *  - generation is bounded by memory bandwidth: every weight a token passes
 *    through is read once per token, plus the KV cache up to its depth;
 *  - prompt processing is bounded by arithmetic: the weights are reused
 *    across the batch, so the cost is the multiply-adds.
 * Sizes come from the model's own tensor table, so a quantized file is
 * charged its real bytes (block scales included). */
#ifndef CITADEL_KERNELS_ROOFLINE_H
#define CITADEL_KERNELS_ROOFLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/model.h"

struct cit_roofline {
    /* Bytes of weights read to generate one token: every blk.* tensor
     * (matrices, norms, biases), output_norm, rope_freqs if present, the
     * output matrix (token_embd when tied), and one row of token_embd. */
    uint64_t weight_bytes_per_token;
    uint64_t kv_bytes_per_pos;    /* K and V of one position over all layers, as the context stores them */
    uint64_t layer_matrix_params; /* elements of the 2-D blk.* tensors */
    uint64_t output_params;       /* elements of the output matrix: n_vocab x n_embd */
    uint32_t n_layer, n_embd;
    bool quantized;               /* the model's main weight type is block-quantized (int8 dot peak applies) */
    bool bf16;                    /* the model's main weight type is BF16 (the bf16 dot peak applies where
                                   * the kernels use one: cit_bf16_dot_active) */
};

/* Fills *out from the model's tensor table and context layout. Errors:
 * CIT_ERR_NOT_FOUND (no token_embd.weight, or no output matrix when the
 * output is not tied), CIT_ERR_RANGE (a size overflows 64 bits), and those
 * of cit_context_memory. */
enum cit_status cit_roofline_of_model(const struct cit_model *m, struct cit_roofline *out, char *err,
                                      size_t errlen);

/* Mean bytes read per token while generating n_gen tokens one at a time
 * into a cache that already holds depth0 positions: token i (0-based)
 * attends over depth0 + i + 1 positions, so
 *   weight_bytes_per_token + kv_bytes_per_pos x (depth0 + (n_gen + 1) / 2). */
double cit_roofline_gen_bytes_per_token(const struct cit_roofline *r, uint64_t n_gen, uint64_t depth0);

/* Floating-point (or int8) operations, a multiply-add counted as 2, to
 * process a prompt of n tokens from an empty cache with logits for the last
 * token only:
 *   2 x layer_matrix_params x n            (projections and feed-forward)
 * + 2 x output_params                      (logits of the last token)
 * + 2 x n_layer x n_embd x n x (n + 1)     (attention: token i does
 *     q.k and p.v over i + 1 positions, 2 x 2 x n_embd each, per layer). */
double cit_roofline_prompt_ops(const struct cit_roofline *r, uint64_t n);

#endif
