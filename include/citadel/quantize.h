/* quantize.h: converting a model's weights to another type, whole-file
 * presets ("file types") and the per-tensor type each preset picks.
 *
 * The presets follow the reference engine's published description: the
 * _M mixtures keep the tensors that quantization hurts most at Q6_K (the
 * output projection always; attn_v and ffn_down on the first and last
 * eighth of the layers and every third layer in between); Q4_0 keeps the
 * output at Q6_K; vectors (norms, biases) stay F32. cit_quantize_tensor_type
 * is shared by `citadel quantize` and `citadel synth`. */
#ifndef CITADEL_QUANTIZE_H
#define CITADEL_QUANTIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"
#include "citadel/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Values as stored in general.file_type (the reference engine's numbering). */
enum cit_ftype {
    CIT_FTYPE_F32 = 0,
    CIT_FTYPE_F16 = 1,
    CIT_FTYPE_Q4_0 = 2,
    CIT_FTYPE_Q8_0 = 7,
    CIT_FTYPE_Q4_K_M = 15,
    CIT_FTYPE_Q5_K_M = 17,
    CIT_FTYPE_Q6_K = 18,
    CIT_FTYPE_BF16 = 32,
};

/* Parses a preset name (case-insensitive: "Q4_K_M", "q8_0", "f16"); false
 * when unknown. */
bool cit_ftype_parse(const char *s, enum cit_ftype *out);
const char *cit_ftype_name(enum cit_ftype ft);
/* "Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K, F16, BF16, F32" for messages. */
const char *cit_ftype_list(void);

/* The tensor type preset ft gives the tensor called name with n_dims
 * dimensions and rows of ne0 elements, in a model of n_layer blocks;
 * has_output tells whether the model has its own output.weight (when not,
 * token_embd.weight doubles as the output and is treated as one). When the
 * preferred type's block size does not divide ne0, a compatible type is
 * returned instead and *fallback (may be NULL) is set true; *wanted (may be
 * NULL) receives the preferred type. */
uint32_t cit_quantize_tensor_type(enum cit_ftype ft, const char *name, uint32_t n_dims, uint64_t ne0,
                                  uint32_t n_layer, bool has_output, uint32_t *wanted, bool *fallback);

/* For notes: true the first time a fallback for rows of ne0 elements from
 * type wanted is seen in seen[2 * 16] (n_seen entries, starts at 0), so a
 * message is printed once per kind of row rather than once per layer. */
bool cit_quantize_first_fallback(uint64_t *seen, size_t *n_seen, uint64_t ne0, uint32_t wanted);

/* Progress: done out of total weights processed so far. */
typedef void (*cit_progress_fn)(void *arg, uint64_t done, uint64_t total);
/* A one-line notice for the user (a fallback type, a padded vocabulary). */
typedef void (*cit_note_fn)(void *arg, const char *msg);

/* Formats a notice and hands it to note (nothing when note is NULL). */
void cit_notef(cit_note_fn note, void *arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct cit_quantize_params {
    enum cit_ftype ftype;
    unsigned n_threads;       /* 0 = all CPUs */
    cit_progress_fn progress; /* may be NULL */
    cit_note_fn note;         /* may be NULL */
    void *cb_arg;             /* passed to progress and note */
};

struct cit_quantize_stats {
    uint64_t in_bytes, out_bytes;   /* file sizes */
    uint64_t n_weights;             /* elements of all tensors */
    uint64_t tensor_bytes;          /* output tensor data */
    size_t n_tensors;
    size_t type_count[CIT_TYPE_COUNT]; /* output tensors per type */
    size_t n_fallback;
};

/* Reads in_path (every tensor F32, F16 or BF16), writes out_path with the
 * preset's types, all metadata copied and general.file_type set. Refuses an
 * already-quantized input and an output that is the input. */
enum cit_status cit_quantize_file(const char *in_path, const char *out_path, const struct cit_quantize_params *p,
                                  struct cit_quantize_stats *stats, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
