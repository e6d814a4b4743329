/* model.h: loading a decoder-only transformer (Llama, Qwen2) from a GGUF
 * file and running its forward pass over a batch of tokens.
 *
 * A model (struct cit_model) is the read-only part: hyper-parameters and the
 * weights, used in place from the file mapping. A context (struct
 * cit_context) is what inference writes: the per-sequence KV cache, scratch
 * buffers and a thread pool, all allocated once by cit_context_new so that
 * decoding never allocates. Several contexts may share one model; a context
 * is driven by one thread at a time.
 *
 * A batch is a list of (token, position, sequence) items. Items of different
 * sequences may be mixed in any order (that is how a continuous-batching
 * scheduler serves many requests with one pass over the weights); the items
 * of one sequence must continue its cache with consecutive positions. The
 * logits of a sequence do not depend on what else is in the batch: they are
 * bit-identical whether it is decoded alone or with others, and independent
 * of the thread count. */
#ifndef CITADEL_MODEL_H
#define CITADEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cit_gguf;
struct cit_model;
struct cit_context;

/* Hyper-parameters and sizes of a loaded model (owned by the model). */
struct cit_model_info {
    const char *arch;       /* "llama" or "qwen2" */
    const char *name;       /* general.name, or "" */
    uint32_t n_vocab;       /* from token_embd.weight */
    uint32_t n_ctx_train;   /* <arch>.context_length */
    uint32_t n_embd;        /* <arch>.embedding_length */
    uint32_t n_layer;       /* <arch>.block_count */
    uint32_t n_head;        /* <arch>.attention.head_count */
    uint32_t n_head_kv;     /* <arch>.attention.head_count_kv */
    uint32_t n_ff;          /* <arch>.feed_forward_length */
    uint32_t head_dim;      /* n_embd / n_head */
    uint32_t n_rot;         /* <arch>.rope.dimension_count: leading dims of a head that RoPE rotates */
    float rope_theta;       /* <arch>.rope.freq_base */
    float rope_scale;       /* linear position scaling factor (positions are divided by it); 1 = none */
    float rms_eps;          /* <arch>.attention.layer_norm_rms_epsilon */
    bool rope_neox;         /* pairs (x[i], x[i + n_rot/2]) instead of (x[2i], x[2i+1]) */
    bool rope_freqs;        /* per-dimension frequency divisors (rope_freqs.weight, Llama 3.1) */
    bool qkv_bias;          /* Q, K, V projections have biases (Qwen2) */
    bool tied_output;       /* no output.weight: logits use token_embd.weight */
    uint32_t weight_type;   /* GGML type id of most matrix weights (by bytes), see citadel/tensor.h */
    uint64_t n_params;      /* elements of all bound tensors (tied output counted once) */
    uint64_t weight_bytes;  /* bytes of all bound tensors in the file */
};

/* Maps the GGUF file and binds its weights (used in place, not copied).
 * Errors, each with a message naming the file, key or tensor, what was
 * found and what was expected:
 *  - from the GGUF reader: CIT_ERR_NOT_FOUND (no such file), CIT_ERR_IO
 *    (cannot read or map it), CIT_ERR_FORMAT (not a valid GGUF);
 *  - CIT_ERR_UNSUPPORTED: another architecture, RoPE scaling type, or a
 *    tensor type we cannot compute with;
 *  - CIT_ERR_NOT_FOUND: a required key or tensor is missing ("missing
 *    tensor token_embd.weight" for a vocab-only file);
 *  - CIT_ERR_RANGE: a hyper-parameter out of range or inconsistent with
 *    another; CIT_ERR_TYPE: a key of the wrong type;
 *  - CIT_ERR_FORMAT: a tensor whose shape disagrees with the hyper-parameters. */
enum cit_status cit_model_load(const char *path, struct cit_model **out, char *err, size_t errlen);

/* Opt-in (`--repack`): copies the model's Q4_0, Q8_0, Q4_K and Q6_K matrices into
 * the layout the decode kernels read fastest (16 rows interleaved,
 * kernels/repack.h), and the other matrices the forward pass multiplies by,
 * norms and biases as they are; then gives the file's pages of all of them
 * back to the kernel, so resident memory stays about the file's size.
 * Outputs do not change by a bit. Costs the copy at load (TinyLlama Q4_0:
 * about 0.2 s on 2 cores) and gives up the no-copy load. Call it after
 * cit_model_load and before any context exists, once. *repacked_bytes (may
 * be NULL) gets the bytes copied (0 when nothing was). Only matrices whose
 * kernel on this tier reads the layout are interleaved (Q4_0: AVX2 and up;
 * Q8_0, Q4_K and Q6_K: AVX-512 VNNI and up); when none is, nothing is copied.
 * Errors: CIT_ERR_UNSUPPORTED when the model has such matrices but none of
 * them has that kernel here (the model stays as it was), CIT_ERR_NOMEM. */
enum cit_status cit_model_repack(struct cit_model *m, unsigned n_threads, uint64_t *repacked_bytes, char *err,
                                 size_t errlen);

/* Frees the model and unmaps the file; accepts NULL. Free contexts first. */
void cit_model_free(struct cit_model *m);

const struct cit_model_info *cit_model_info(const struct cit_model *m);

/* The open GGUF file (for the tokenizer and `citadel inspect`); owned by the model. */
const struct cit_gguf *cit_model_gguf(const struct cit_model *m);

/* Context settings; 0 picks the default. */
struct cit_context_params {
    uint32_t n_ctx;       /* positions per sequence; default n_ctx_train, at most n_ctx_train */
    uint32_t n_seq_max;   /* sequences with their own cache, ids [0, n_seq_max); default 1 */
    uint32_t n_batch_max; /* items per cit_decode call; default min(n_ctx * n_seq_max, 512) */
    uint32_t n_threads;   /* threads per decode; 0 = the number of physical cores */
};

/* Bytes cit_context_new allocates for these parameters: the KV cache
 * (n_layer * n_seq_max * n_ctx * 2 * n_head_kv * head_dim floats) and the
 * scratch buffers (activations of n_batch_max items, logits, per-thread
 * attention rows). For `citadel inspect` and the capacity planner. */
enum cit_status cit_context_memory(const struct cit_model *m, const struct cit_context_params *p,
                                   uint64_t *kv_bytes, uint64_t *scratch_bytes, char *err, size_t errlen);

/* Allocates the KV cache and scratch and starts the thread pool. p may be
 * NULL (all defaults). Errors: CIT_ERR_RANGE (n_ctx above n_ctx_train, a
 * parameter beyond its limit), CIT_ERR_LIMIT (more memory than the machine
 * has), CIT_ERR_NOMEM. */
enum cit_status cit_context_new(const struct cit_model *m, const struct cit_context_params *p,
                                struct cit_context **out, char *err, size_t errlen);

/* Accepts NULL. */
void cit_context_free(struct cit_context *c);

/* The parameters in effect (defaults resolved). */
const struct cit_context_params *cit_context_params(const struct cit_context *c);

/* One token of a batch: its position in its sequence, the sequence id, and
 * whether its logits are wanted (the last prompt token, every generated one). */
struct cit_batch_item {
    int32_t token;
    int32_t pos;
    int32_t seq;
    bool logits;
};

/* Runs the model over n items, appending each item's keys and values to its
 * sequence's cache. Before anything is computed, every item is checked:
 * token in [0, n_vocab), seq in [0, n_seq_max), pos in [0, n_ctx), n <=
 * n_batch_max, and the items of one sequence must hold positions len, len+1,
 * ... where len = cit_kv_seq_len(seq). A violation returns CIT_ERR_RANGE
 * naming the item index, field, value and limit, and changes nothing.
 * n == 0 is a no-op. */
enum cit_status cit_decode(struct cit_context *c, const struct cit_batch_item *items, size_t n, char *err,
                           size_t errlen);

/* Logits (n_vocab) of item `item` of the last successful cit_decode, if that
 * item asked for them; NULL otherwise. Valid until the next cit_decode. */
const float *cit_logits(const struct cit_context *c, size_t item);

/* Final hidden state (n_embd floats, after the output norm, i.e. what the
 * output matrix multiplies) of item `item` of the last successful
 * cit_decode, if that item asked for logits; NULL otherwise. Valid until the
 * next cit_decode. Embeddings are pooled from these. */
const float *cit_hidden(const struct cit_context *c, size_t item);

/* Forgets positions >= pos_from of sequence seq (pos_from 0: the whole
 * sequence); the next item of seq must then have pos == pos_from. Out of
 * range seq, or pos_from beyond the sequence length, is a no-op. */
void cit_kv_seq_rm(struct cit_context *c, int32_t seq, int32_t pos_from);

/* Number of positions sequence seq holds (0 for an out of range seq). */
int32_t cit_kv_seq_len(const struct cit_context *c, int32_t seq);

/* Makes dst hold the first n_pos positions of src (a shared prompt prefix);
 * n_pos < 0 copies all of src. Errors: CIT_ERR_RANGE for bad ids or n_pos
 * beyond src's length. */
enum cit_status cit_kv_seq_cp(struct cit_context *c, int32_t src, int32_t dst, int32_t n_pos, char *err,
                              size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
