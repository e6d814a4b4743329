/* gguf_write.h: writing GGUF v3 files.
 *
 * A writer is filled in two phases: first the metadata (any GGUF value type,
 * including arrays of numbers and of strings) and the tensor table (name,
 * type, dims); then cit_gguf_writer_begin fixes the layout, and the tensor
 * data is streamed in table order with cit_gguf_writer_write, in pieces of
 * any size. Data offsets are aligned to general.alignment (default 32; set
 * it with cit_gguf_writer_set_u32 before begin).
 *
 * The file is written to a temporary file next to the target and renamed
 * over it by cit_gguf_writer_finish, so a failure at any point (or a writer
 * freed before finish) leaves nothing half-written behind. Errors are sticky:
 * after the first failure every call returns that status and
 * cit_gguf_writer_error tells what happened (path and errno for I/O). */
#ifndef CITADEL_GGUF_WRITE_H
#define CITADEL_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/gguf.h"
#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cit_gguf_writer;

enum cit_status cit_gguf_writer_new(struct cit_gguf_writer **out, char *err, size_t errlen);
/* Frees the writer; if finish did not succeed, removes the temporary file.
 * Accepts NULL. */
void cit_gguf_writer_free(struct cit_gguf_writer *w);

/* The message of the first failure ("" when none). */
const char *cit_gguf_writer_error(const struct cit_gguf_writer *w);

/* ---- metadata (before begin). Setting an existing key replaces its value
 * in place (the key keeps its position). Keys: 1..65535 bytes, no NUL. ---- */
enum cit_status cit_gguf_writer_set_u8(struct cit_gguf_writer *w, const char *key, uint8_t v);
enum cit_status cit_gguf_writer_set_i8(struct cit_gguf_writer *w, const char *key, int8_t v);
enum cit_status cit_gguf_writer_set_u16(struct cit_gguf_writer *w, const char *key, uint16_t v);
enum cit_status cit_gguf_writer_set_i16(struct cit_gguf_writer *w, const char *key, int16_t v);
enum cit_status cit_gguf_writer_set_u32(struct cit_gguf_writer *w, const char *key, uint32_t v);
enum cit_status cit_gguf_writer_set_i32(struct cit_gguf_writer *w, const char *key, int32_t v);
enum cit_status cit_gguf_writer_set_u64(struct cit_gguf_writer *w, const char *key, uint64_t v);
enum cit_status cit_gguf_writer_set_i64(struct cit_gguf_writer *w, const char *key, int64_t v);
enum cit_status cit_gguf_writer_set_f32(struct cit_gguf_writer *w, const char *key, float v);
enum cit_status cit_gguf_writer_set_f64(struct cit_gguf_writer *w, const char *key, double v);
enum cit_status cit_gguf_writer_set_bool(struct cit_gguf_writer *w, const char *key, bool v);
/* A NUL-terminated string value. */
enum cit_status cit_gguf_writer_set_str(struct cit_gguf_writer *w, const char *key, const char *v);
/* A string value of len bytes (may contain NUL). */
enum cit_status cit_gguf_writer_set_strn(struct cit_gguf_writer *w, const char *key, const char *v, uint64_t len);
/* An array of count numbers or bools of elem_type, packed little-endian in
 * data (count * cit_gguf_type_size(elem_type) bytes). */
enum cit_status cit_gguf_writer_set_arr(struct cit_gguf_writer *w, const char *key, enum cit_gguf_type elem_type,
                                        const void *data, uint64_t count);
/* An array of count strings. */
enum cit_status cit_gguf_writer_set_arr_str(struct cit_gguf_writer *w, const char *key,
                                            const struct cit_gguf_str *strs, uint64_t count);
/* Copies entry i of an open reader (any type) under the same key. */
enum cit_status cit_gguf_writer_copy_kv(struct cit_gguf_writer *w, const struct cit_gguf *g, size_t i);
/* Removes a key if present. */
void cit_gguf_writer_remove_kv(struct cit_gguf_writer *w, const char *key);
size_t cit_gguf_writer_n_kv(const struct cit_gguf_writer *w);

/* ---- tensors (before begin) ---- */

/* Appends a tensor: n_dims in 1..4, ne[0] innermost, each >= 1, ne[0] a
 * multiple of the type's block size. Names are unique, 1..1024 bytes. */
enum cit_status cit_gguf_writer_add_tensor(struct cit_gguf_writer *w, const char *name, uint32_t type,
                                           uint32_t n_dims, const uint64_t *ne);
size_t cit_gguf_writer_n_tensors(const struct cit_gguf_writer *w);
/* Data bytes of tensor i (0 when out of range). */
uint64_t cit_gguf_writer_tensor_nbytes(const struct cit_gguf_writer *w, size_t i);

/* ---- writing ---- */

/* Creates the temporary file next to path and writes the header, metadata
 * and tensor table. */
enum cit_status cit_gguf_writer_begin(struct cit_gguf_writer *w, const char *path, char *err, size_t errlen);
/* Appends n bytes of tensor data; pieces run across tensor boundaries in
 * table order (alignment padding is inserted between tensors). Writing more
 * than the table describes is an error. */
enum cit_status cit_gguf_writer_write(struct cit_gguf_writer *w, const void *data, size_t n, char *err,
                                      size_t errlen);
/* Checks that every tensor was written in full, flushes, syncs and renames
 * the temporary file to the target. */
enum cit_status cit_gguf_writer_finish(struct cit_gguf_writer *w, char *err, size_t errlen);
/* Total size of the file being written (valid after begin). */
uint64_t cit_gguf_writer_file_size(const struct cit_gguf_writer *w);

#ifdef __cplusplus
}
#endif
#endif
