/* synth.h: random-weight GGUF models at the exact shape of real ones.
 *
 * For benchmarks: the speed of a forward pass depends on the shapes and the
 * weight types, not on the weight values, so a file with random weights at a
 * real model's shape measures what the real model would, without
 * downloading it. Shapes come from the planner's catalog (citadel/plan.h);
 * what the catalog does not hold (architecture, RoPE base, norm epsilon,
 * tied embeddings, context) is a small table in synth.c keyed by the same
 * ids. The tokenizer is borrowed from any GGUF that has one. */
#ifndef CITADEL_SYNTH_H
#define CITADEL_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/quantize.h"
#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cit_synth_shape {
    char id[64];
    const char *arch;  /* "llama" or "qwen2" */
    uint32_t n_layer, n_embd, n_head, n_head_kv, n_ff;
    uint32_t n_vocab;  /* 0: the vocabulary file's size (test shapes) */
    uint32_t n_ctx;    /* training context written to the file */
    float rope_theta, rms_eps;
    bool tied;         /* no output.weight: token_embd doubles as the output */
};

/* Number of shapes synth knows, and the id of shape i (for --list). */
size_t cit_synth_n_shapes(void);
const char *cit_synth_shape_id(size_t i);
/* The shape called id (case-insensitive). CIT_ERR_NOT_FOUND names the
 * known ids. */
enum cit_status cit_synth_find_shape(const char *id, struct cit_synth_shape *out, char *err, size_t errlen);

struct cit_synth_params {
    struct cit_synth_shape shape;
    const char *vocab_path;   /* GGUF whose tokenizer.ggml.* keys are copied */
    enum cit_ftype ftype;     /* weight types (presets of citadel/quantize.h) */
    uint64_t seed;
    unsigned n_threads;       /* 0 = all CPUs */
    cit_progress_fn progress; /* may be NULL */
    cit_note_fn note;         /* may be NULL */
    void *cb_arg;
};

/* Writes the model to out_path (temporary file + rename). Weights are
 * normal with std 0.02 (norm weights 1), generated and converted row by row
 * in parallel, so memory stays at a few rows per thread plus one output
 * chunk. The same seed gives the same file whatever the thread count. If
 * the vocabulary is smaller than the shape's, it is padded with tokens
 * "<synth_N>" (score 0, type normal) and a note says so; a larger one is an
 * error. stats (may be NULL) receives sizes and types. */
enum cit_status cit_synth_write(const struct cit_synth_params *p, const char *out_path,
                                struct cit_quantize_stats *stats, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
