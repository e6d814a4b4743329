/* gguf_impl.h: the reader's private state, shared by gguf.c (parsing and
 * validation) and gguf_get.c (typed getters and display formatting).
 * Everything here is filled by cit_gguf_open and read-only afterwards. */
#ifndef CITADEL_GGUF_IMPL_H
#define CITADEL_GGUF_IMPL_H

#include <stdint.h>
#include <string.h>

#include "citadel/gguf.h"

/* Limits on names copied out of the file (bytes, excluding the NUL). The
 * spec caps keys at 65535 bytes; tensor names are 64 bytes in the reference
 * engine, we allow more so that unusual converters still load. */
#define GGUF_MAX_KEY_LEN 65535u
#define GGUF_MAX_TENSOR_NAME_LEN 1024u

/* One metadata entry. All pointers into the file lie inside the mapping. */
struct gguf_kv {
    char *key; /* owned, NUL-terminated, no embedded NUL */
    size_t key_len;
    uint64_t entry_off;          /* file offset where the entry (its key) starts */
    enum cit_gguf_type type;
    const uint8_t *val;          /* scalars: the value bytes; STRING: the string bytes */
    uint64_t len;                /* STRING: length in bytes */
    enum cit_gguf_type elem_type; /* ARRAY only */
    uint64_t count;              /* ARRAY only: number of elements */
    const uint8_t *elems;        /* ARRAY of numbers: packed elements; strings: first length field */
    uint64_t *str_off;           /* ARRAY of strings: file offset of each element's bytes (count) */
};

/* Open-addressing hash from a name to index + 1 (0 = empty slot); one over
 * the metadata keys, one over the tensor names. */
struct gguf_index {
    uint32_t *slots;
    size_t mask; /* slot count - 1 (a power of two) */
};
enum gguf_index_kind { GGUF_IDX_KV = 0, GGUF_IDX_TENSOR = 1 };

struct cit_gguf {
    const uint8_t *base; /* file bytes [0, size) */
    uint64_t size;
    void *map; /* non-NULL when we mmapped the file ourselves */
    size_t map_len;

    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;

    struct gguf_kv *kvs;
    size_t n_kv;

    struct cit_gguf_tensor *tensors;
    uint64_t *tensor_info_off; /* file offset of each tensor info (for messages) */
    size_t n_tensors;

    struct gguf_index index[2]; /* by enum gguf_index_kind */
};

static inline uint16_t gguf_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t gguf_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t gguf_le64(const uint8_t *p) { return (uint64_t)gguf_le32(p) | (uint64_t)gguf_le32(p + 4) << 32; }

/* Position of the key or tensor called name[0, len) (no NUL inside), or -1. */
int64_t gguf_index_find(const struct cit_gguf *g, enum gguf_index_kind kind, const char *name, size_t len);

#endif
