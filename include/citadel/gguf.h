/* gguf.h: bounds-checked reader for GGUF model files (versions 2 and 3).
 *
 * The file is mapped read-only; metadata, the tensor table and tensor data
 * are validated in full by cit_gguf_open before any of it is returned, so
 * every pointer handed out afterwards lies inside the mapping. The reader
 * knows no model: it returns typed values and raw tensor bytes. */
#ifndef CITADEL_GGUF_H
#define CITADEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CIT_GGUF_MAX_DIMS 4
#define CIT_GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types, numbered as in the GGUF specification. */
enum cit_gguf_type {
    CIT_GGUF_UINT8 = 0,
    CIT_GGUF_INT8 = 1,
    CIT_GGUF_UINT16 = 2,
    CIT_GGUF_INT16 = 3,
    CIT_GGUF_UINT32 = 4,
    CIT_GGUF_INT32 = 5,
    CIT_GGUF_FLOAT32 = 6,
    CIT_GGUF_BOOL = 7,
    CIT_GGUF_STRING = 8,
    CIT_GGUF_ARRAY = 9,
    CIT_GGUF_UINT64 = 10,
    CIT_GGUF_INT64 = 11,
    CIT_GGUF_FLOAT64 = 12,
};

/* A string inside the mapping: NOT NUL-terminated, may contain NUL bytes. */
struct cit_gguf_str {
    const char *ptr;
    uint64_t len;
};

/* One tensor of the table. name is NUL-terminated (owned by the reader).
 * ne[0] is the innermost (contiguous) dimension; unused dims are 1.
 * type is the raw GGML type id (see citadel/tensor.h); nbytes is the exact
 * size computed from the type's block layout; data = base + offset, aligned. */
struct cit_gguf_tensor {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[CIT_GGUF_MAX_DIMS];
    uint32_t type;
    uint64_t offset; /* relative to the start of the data section */
    uint64_t nbytes;
    const void *data;
};

struct cit_gguf;

/* Maps and validates a GGUF file. On failure returns a status and writes a
 * message naming the field and byte offset into err (may be NULL). */
enum cit_status cit_gguf_open(const char *path, struct cit_gguf **out, char *err, size_t errlen);

/* Same over a caller-owned buffer (tests, fuzzing). The buffer must outlive
 * the handle; it is not copied. */
enum cit_status cit_gguf_open_memory(const void *data, size_t size, struct cit_gguf **out,
                                     char *err, size_t errlen);

/* Unmaps and frees; accepts NULL. */
void cit_gguf_free(struct cit_gguf *g);

uint32_t cit_gguf_version(const struct cit_gguf *g);
uint64_t cit_gguf_file_size(const struct cit_gguf *g);
uint32_t cit_gguf_alignment(const struct cit_gguf *g);
uint64_t cit_gguf_data_offset(const struct cit_gguf *g); /* file offset of the data section */

/* Of the file mapping of cit_gguf_open: *resident = its bytes now in memory,
 * *huge = how many of them are mapped in 2 MiB pages (the kernel does so
 * where the page cache holds the file in 2 MiB folios; docs/engine.md, "Huge
 * pages"), from /proc/self/smaps. False where that is unknown: a handle of
 * cit_gguf_open_memory, or no /proc. */
bool cit_gguf_map_pages(const struct cit_gguf *g, uint64_t *resident, uint64_t *huge);

/* ---- metadata ---- */

size_t cit_gguf_n_kv(const struct cit_gguf *g);
/* Index of a key, or -1 when absent. */
int64_t cit_gguf_find_key(const struct cit_gguf *g, const char *key);
/* Key name (NUL-terminated) and value type of entry i (i < n_kv). */
const char *cit_gguf_kv_key(const struct cit_gguf *g, size_t i);
enum cit_gguf_type cit_gguf_kv_type(const struct cit_gguf *g, size_t i);

/* Typed getters by key. Each returns CIT_ERR_NOT_FOUND when the key is
 * absent and CIT_ERR_TYPE (naming the key, stored type and wanted type) when
 * the stored type does not fit:
 *  - get_uint accepts any integer type whose value is >= 0;
 *  - get_int accepts any integer type whose value fits in int64;
 *  - get_f32 accepts FLOAT32 and FLOAT64 (rounded);
 *  - get_bool accepts BOOL only; get_str accepts STRING only. */
enum cit_status cit_gguf_get_uint(const struct cit_gguf *g, const char *key, uint64_t *out, char *err, size_t errlen);
enum cit_status cit_gguf_get_int(const struct cit_gguf *g, const char *key, int64_t *out, char *err, size_t errlen);
enum cit_status cit_gguf_get_f32(const struct cit_gguf *g, const char *key, float *out, char *err, size_t errlen);
enum cit_status cit_gguf_get_bool(const struct cit_gguf *g, const char *key, bool *out, char *err, size_t errlen);
enum cit_status cit_gguf_get_str(const struct cit_gguf *g, const char *key, struct cit_gguf_str *out, char *err, size_t errlen);

/* Arrays. get_arr returns the element type and count. For numeric element
 * types *data points at the packed little-endian elements in the mapping
 * (count * element size bytes; may be unaligned: read with memcpy). For
 * string arrays *data is NULL; use cit_gguf_arr_str. Nested arrays are
 * rejected at open time (no model uses them). */
enum cit_status cit_gguf_get_arr(const struct cit_gguf *g, const char *key, enum cit_gguf_type *elem_type,
                                 uint64_t *count, const void **data, char *err, size_t errlen);
/* Element idx of the string array under key (O(1): offsets are indexed at open). */
enum cit_status cit_gguf_arr_str(const struct cit_gguf *g, const char *key, uint64_t idx,
                                 struct cit_gguf_str *out, char *err, size_t errlen);

/* Size in bytes of one scalar of a metadata type (0 for STRING/ARRAY). */
size_t cit_gguf_type_size(enum cit_gguf_type t);
const char *cit_gguf_type_name(enum cit_gguf_type t);

/* Renders the value of entry i for display (numbers, quoted strings, arrays
 * abbreviated after max_items elements) into buf; always NUL-terminates. */
void cit_gguf_kv_format(const struct cit_gguf *g, size_t i, char *buf, size_t buflen, size_t max_items);

/* ---- tensors ---- */

size_t cit_gguf_n_tensors(const struct cit_gguf *g);
const struct cit_gguf_tensor *cit_gguf_tensor_at(const struct cit_gguf *g, size_t i);
/* NULL when absent. */
const struct cit_gguf_tensor *cit_gguf_find_tensor(const struct cit_gguf *g, const char *name);

#ifdef __cplusplus
}
#endif
#endif
