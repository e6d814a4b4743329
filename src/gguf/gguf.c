/* gguf.c: opening a GGUF file (v2/v3) and validating all of it up front.
 *
 * The whole header is walked once: every count, length and offset read from
 * the file is checked against the bytes that remain (through base/checked.h)
 * before it is used or anything is allocated for it, so a hostile file can
 * neither read out of bounds nor make us allocate more than it could
 * describe. After cit_gguf_open succeeds, every key, value, string element
 * and tensor extent handed out lies inside the file, keys and tensor names
 * are unique, and tensors' data are aligned and pairwise disjoint.
 *
 * Limits (all documented in gguf_impl.h or below): keys 1..65535 bytes,
 * tensor names 1..1024 bytes, neither containing NUL; at most 2^24 keys and
 * 2^24 tensors; 1..4 dimensions, each >= 1, element count <= INT64_MAX.
 *
 * Statuses: CIT_ERR_FORMAT for malformed or truncated input; UNSUPPORTED for
 * well-formed things we do not read (versions other than 2 and 3, tensor
 * type ids unknown to cit_type_traits, nested arrays); LIMIT for names and
 * counts beyond the limits above; NOT_FOUND / IO when the file cannot be
 * opened or mapped. Types known to the table but not computable (to_float
 * NULL) are accepted: the model loader rejects them. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/checked.h"
#include "base/err.h"
#include "citadel/tensor.h"
#include "gguf/gguf_impl.h"

/* Smallest encodings, used to reject absurd counts before allocating: an
 * entry is a key (u64 length + >= 1 byte), a u32 type and >= 1 value byte;
 * a tensor info is a name (u64 length + >= 1 byte), u32 n_dims, >= 1 u64
 * dimension, u32 type and u64 offset. */
#define MIN_KV_BYTES 14u
#define MIN_TENSOR_INFO_BYTES 33u
#define MAX_ITEMS (1u << 24) /* keys or tensors: far above any real model */
#define HEADER_BYTES 24u     /* magic, version, tensor_count, kv_count */

struct parser {
    struct cit_gguf *g;
    const uint8_t *p;
    uint64_t size;
    uint64_t pos;
    char *err;
    size_t errlen;
    char where[192]; /* the item being parsed, prefixed to every message */
};

static enum cit_status perr(struct parser *ps, enum cit_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum cit_status perr(struct parser *ps, enum cit_status st, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cit_fail(st, ps->err, ps->errlen, "gguf: %s: %s", ps->where, msg);
}

/* Copies a name from the file for use in messages: printable ASCII only,
 * long names cut with "...", so a hostile name cannot garble a terminal. */
static void describe_name(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = 0, keep = len > 96 ? 93 : len;
    for (size_t i = 0; i < keep && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    for (size_t i = keep; i < len && i < keep + 3 && n + 1 < cap; i++)
        dst[n++] = '.';
    dst[n] = '\0';
}

/* ---- primitive reads: each checks the bytes exist before reading ---- */

static enum cit_status need(struct parser *ps, uint64_t n, const char *field)
{
    if (cit_range_ok(ps->pos, n, ps->size))
        return CIT_OK;
    return perr(ps, CIT_ERR_FORMAT, "%s at offset %" PRIu64 " runs past end of file (needs %" PRIu64 " bytes, size %" PRIu64 ")",
                field, ps->pos, n, ps->size);
}

static enum cit_status rd_u32(struct parser *ps, const char *field, uint32_t *v)
{
    enum cit_status st = need(ps, 4, field);
    if (st)
        return st;
    *v = gguf_le32(ps->p + ps->pos);
    ps->pos += 4;
    return CIT_OK;
}

static enum cit_status rd_u64(struct parser *ps, const char *field, uint64_t *v)
{
    enum cit_status st = need(ps, 8, field);
    if (st)
        return st;
    *v = gguf_le64(ps->p + ps->pos);
    ps->pos += 8;
    return CIT_OK;
}

/* A GGUF string: u64 length then the bytes, which must lie in the file. */
static enum cit_status rd_str(struct parser *ps, const char *field, const uint8_t **s, uint64_t *len)
{
    uint64_t at = ps->pos;
    if (!cit_range_ok(at, 8, ps->size))
        return perr(ps, CIT_ERR_FORMAT, "%s length at offset %" PRIu64 " runs past end of file (size %" PRIu64 ")", field,
                    at, ps->size);
    *len = gguf_le64(ps->p + at);
    if (!cit_range_ok(at + 8, *len, ps->size))
        return perr(ps, CIT_ERR_FORMAT,
                    "%s of length %" PRIu64 " (at offset %" PRIu64 ") runs past end of file (size %" PRIu64 ")", field, *len,
                    at, ps->size);
    *s = ps->p + at + 8;
    ps->pos = at + 8 + *len;
    return CIT_OK;
}

/* A key or tensor name, copied into an owned NUL-terminated string. */
static enum cit_status rd_name(struct parser *ps, const char *field, uint64_t max, char **out, size_t *out_len)
{
    uint64_t at = ps->pos, len = 0;
    const uint8_t *s = NULL;
    enum cit_status st = rd_str(ps, field, &s, &len);
    if (st)
        return st;
    if (len == 0)
        return perr(ps, CIT_ERR_FORMAT, "%s at offset %" PRIu64 " is empty", field, at);
    if (len > max)
        return perr(ps, CIT_ERR_LIMIT, "%s at offset %" PRIu64 " is %" PRIu64 " bytes long (limit %" PRIu64 ")", field, at,
                    len, max);
    const uint8_t *nul = memchr(s, 0, (size_t)len);
    if (nul)
        return perr(ps, CIT_ERR_FORMAT, "%s at offset %" PRIu64 " contains a NUL byte (at offset %" PRIu64 ")", field, at,
                    (uint64_t)(nul - ps->p));
    char *c = malloc((size_t)len + 1);
    if (!c)
        return perr(ps, CIT_ERR_NOMEM, "cannot allocate %s", field);
    memcpy(c, s, (size_t)len);
    c[len] = '\0';
    *out = c;
    *out_len = (size_t)len;
    return CIT_OK;
}

/* ---- name index (open addressing, FNV-1a) ---- */

static uint64_t hash_name(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    return h;
}

static const char *index_name(const struct cit_gguf *g, enum gguf_index_kind kind, size_t i)
{
    return kind == GGUF_IDX_KV ? g->kvs[i].key : g->tensors[i].name;
}

int64_t gguf_index_find(const struct cit_gguf *g, enum gguf_index_kind kind, const char *name, size_t len)
{
    const struct gguf_index *idx = &g->index[kind];
    if (!idx->slots)
        return -1;
    for (size_t h = (size_t)hash_name(name, len) & idx->mask;; h = (h + 1) & idx->mask) {
        uint32_t v = idx->slots[h];
        if (v == 0)
            return -1;
        const char *cand = index_name(g, kind, v - 1);
        if (strncmp(cand, name, len) == 0 && cand[len] == '\0')
            return (int64_t)(v - 1);
    }
}

/* Builds the index over n names; on a duplicate returns its position in
 * *dup and that of the first occurrence in *first. */
static enum cit_status index_build(struct cit_gguf *g, enum gguf_index_kind kind, size_t n, size_t *first, size_t *dup)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap <<= 1;
    struct gguf_index *idx = &g->index[kind];
    idx->slots = calloc(cap, sizeof *idx->slots);
    if (!idx->slots)
        return CIT_ERR_NOMEM;
    idx->mask = cap - 1;
    for (size_t i = 0; i < n; i++) {
        const char *name = index_name(g, kind, i);
        size_t len = strlen(name);
        size_t h = (size_t)hash_name(name, len) & idx->mask;
        for (; idx->slots[h] != 0; h = (h + 1) & idx->mask) {
            if (strcmp(index_name(g, kind, idx->slots[h] - 1), name) == 0) {
                *first = idx->slots[h] - 1;
                *dup = i;
                return CIT_ERR_FORMAT;
            }
        }
        idx->slots[h] = (uint32_t)(i + 1);
    }
    return CIT_OK;
}

/* ---- metadata ---- */

/* String array: every element's length and bytes checked, then a table of
 * element offsets built so cit_gguf_arr_str is O(1). */
static enum cit_status parse_str_array(struct parser *ps, struct gguf_kv *kv, uint64_t count_at)
{
    uint64_t remaining = ps->size - ps->pos;
    if (kv->count > remaining / 8)
        return perr(ps, CIT_ERR_FORMAT,
                    "array count %" PRIu64 " at offset %" PRIu64 " is impossible: each string needs at least 8 bytes and only %" PRIu64
                    " bytes remain",
                    kv->count, count_at, remaining);
    const uint8_t *p = ps->p;
    uint64_t pos = ps->pos;
    for (uint64_t j = 0; j < kv->count; j++) {
        if (!cit_range_ok(pos, 8, ps->size))
            return perr(ps, CIT_ERR_FORMAT,
                        "string element %" PRIu64 " length at offset %" PRIu64 " runs past end of file (size %" PRIu64 ")", j, pos,
                        ps->size);
        uint64_t len = gguf_le64(p + pos);
        if (!cit_range_ok(pos + 8, len, ps->size))
            return perr(ps, CIT_ERR_FORMAT,
                        "string element %" PRIu64 " of length %" PRIu64 " (at offset %" PRIu64 ") runs past end of file (size %" PRIu64
                        ")",
                        j, len, pos, ps->size);
        pos += 8 + len;
    }
    kv->elems = p + ps->pos;
    if (kv->count > 0) {
        /* count * 8 <= remaining, so this neither overflows nor exceeds the file size */
        kv->str_off = malloc((size_t)kv->count * sizeof *kv->str_off);
        if (!kv->str_off)
            return perr(ps, CIT_ERR_NOMEM, "cannot index %" PRIu64 " strings", kv->count);
        pos = ps->pos;
        for (uint64_t j = 0; j < kv->count; j++) {
            kv->str_off[j] = pos + 8;
            pos += 8 + gguf_le64(p + pos);
        }
    }
    ps->pos = pos;
    return CIT_OK;
}

static enum cit_status parse_array(struct parser *ps, struct gguf_kv *kv)
{
    uint32_t et;
    uint64_t et_at = ps->pos, count_at;
    enum cit_status st = rd_u32(ps, "array element type", &et);
    if (st)
        return st;
    if (et == CIT_GGUF_ARRAY)
        return perr(ps, CIT_ERR_UNSUPPORTED, "nested array (element type array at offset %" PRIu64 ") is not supported", et_at);
    if (et > CIT_GGUF_FLOAT64)
        return perr(ps, CIT_ERR_FORMAT, "array element type %" PRIu32 " at offset %" PRIu64 " is unknown", et, et_at);
    kv->elem_type = (enum cit_gguf_type)et;
    count_at = ps->pos;
    if ((st = rd_u64(ps, "array count", &kv->count)))
        return st;
    if (et == CIT_GGUF_STRING)
        return parse_str_array(ps, kv, count_at);

    uint64_t esz = cit_gguf_type_size(kv->elem_type), bytes, remaining = ps->size - ps->pos;
    if (!cit_mul_u64(kv->count, esz, &bytes) || bytes > remaining)
        return perr(ps, CIT_ERR_FORMAT,
                    "array count %" PRIu64 " at offset %" PRIu64 " runs past end of file: %" PRIu64
                    " %s elements of %" PRIu64 " bytes each, only %" PRIu64 " bytes remain",
                    kv->count, count_at, kv->count, cit_gguf_type_name(kv->elem_type), esz, remaining);
    kv->elems = ps->p + ps->pos;
    if (et == CIT_GGUF_BOOL) {
        for (uint64_t j = 0; j < kv->count; j++)
            if (kv->elems[j] > 1)
                return perr(ps, CIT_ERR_FORMAT, "bool element %" PRIu64 " at offset %" PRIu64 " has value %u (must be 0 or 1)", j,
                            ps->pos + j, kv->elems[j]);
    }
    ps->pos += bytes;
    return CIT_OK;
}

static enum cit_status parse_value(struct parser *ps, struct gguf_kv *kv)
{
    if (kv->type == CIT_GGUF_STRING)
        return rd_str(ps, "string value", &kv->val, &kv->len);
    if (kv->type == CIT_GGUF_ARRAY)
        return parse_array(ps, kv);
    enum cit_status st = need(ps, cit_gguf_type_size(kv->type), "value");
    if (st)
        return st;
    kv->val = ps->p + ps->pos;
    if (kv->type == CIT_GGUF_BOOL && kv->val[0] > 1)
        return perr(ps, CIT_ERR_FORMAT, "bool value %u at offset %" PRIu64 " is not 0 or 1", kv->val[0], ps->pos);
    ps->pos += cit_gguf_type_size(kv->type);
    return CIT_OK;
}

static enum cit_status parse_kvs(struct parser *ps, uint64_t count)
{
    struct cit_gguf *g = ps->g;
    size_t cap = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (g->n_kv == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct gguf_kv *n = realloc(g->kvs, ncap * sizeof *n);
            if (!n)
                return perr(ps, CIT_ERR_NOMEM, "cannot allocate metadata table");
            g->kvs = n;
            cap = ncap;
        }
        struct gguf_kv *kv = &g->kvs[g->n_kv];
        memset(kv, 0, sizeof *kv);
        kv->entry_off = ps->pos;
        snprintf(ps->where, sizeof ps->where, "metadata entry %" PRIu64 " (at offset %" PRIu64 ")", i, kv->entry_off);
        enum cit_status st = rd_name(ps, "key", GGUF_MAX_KEY_LEN, &kv->key, &kv->key_len);
        if (st)
            return st;
        g->n_kv++; /* from here on cit_gguf_free releases the key */

        char name[100];
        describe_name(name, sizeof name, kv->key, kv->key_len);
        snprintf(ps->where, sizeof ps->where, "metadata '%s' (entry %" PRIu64 " at offset %" PRIu64 ")", name, i, kv->entry_off);
        uint32_t type;
        uint64_t type_at = ps->pos;
        if ((st = rd_u32(ps, "value type", &type)))
            return st;
        if (type > CIT_GGUF_FLOAT64)
            return perr(ps, CIT_ERR_FORMAT, "value type %" PRIu32 " at offset %" PRIu64 " is unknown", type, type_at);
        kv->type = (enum cit_gguf_type)type;
        if ((st = parse_value(ps, kv)))
            return st;
    }
    return CIT_OK;
}

/* general.alignment: optional, uint32, a nonzero power of two. */
static enum cit_status resolve_alignment(struct parser *ps)
{
    struct cit_gguf *g = ps->g;
    static const char key[] = "general.alignment";
    g->alignment = CIT_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = gguf_index_find(g, GGUF_IDX_KV, key, sizeof key - 1);
    if (i < 0)
        return CIT_OK;
    const struct gguf_kv *kv = &g->kvs[i];
    snprintf(ps->where, sizeof ps->where, "metadata '%s' (entry at offset %" PRIu64 ")", key, kv->entry_off);
    if (kv->type != CIT_GGUF_UINT32)
        return perr(ps, CIT_ERR_FORMAT, "alignment has type %s, must be uint32", cit_gguf_type_name(kv->type));
    uint32_t a = gguf_le32(kv->val);
    if (a == 0 || (a & (a - 1)) != 0)
        return perr(ps, CIT_ERR_FORMAT, "alignment %" PRIu32 " at offset %" PRIu64 " is not a nonzero power of two", a,
                    (uint64_t)(kv->val - ps->p));
    g->alignment = a;
    return CIT_OK;
}

/* ---- tensor infos ---- */

static enum cit_status parse_tensor_info(struct parser *ps, uint64_t i)
{
    struct cit_gguf *g = ps->g;
    struct cit_gguf_tensor *t = &g->tensors[g->n_tensors];
    uint64_t info_at = ps->pos, at;
    memset(t, 0, sizeof *t);
    g->tensor_info_off[g->n_tensors] = info_at;
    snprintf(ps->where, sizeof ps->where, "tensor info %" PRIu64 " (at offset %" PRIu64 ")", i, info_at);
    char *name;
    size_t name_len;
    enum cit_status st = rd_name(ps, "tensor name", GGUF_MAX_TENSOR_NAME_LEN, &name, &name_len);
    if (st)
        return st;
    t->name = name;
    g->n_tensors++; /* from here on cit_gguf_free releases the name */

    char shown[100];
    describe_name(shown, sizeof shown, name, name_len);
    snprintf(ps->where, sizeof ps->where, "tensor '%s' (tensor info at offset %" PRIu64 ")", shown, info_at);

    at = ps->pos;
    if ((st = rd_u32(ps, "n_dims", &t->n_dims)))
        return st;
    if (t->n_dims < 1 || t->n_dims > CIT_GGUF_MAX_DIMS)
        return perr(ps, CIT_ERR_FORMAT, "n_dims %" PRIu32 " at offset %" PRIu64 " is out of range (1..%d)", t->n_dims, at,
                    CIT_GGUF_MAX_DIMS);
    uint64_t nelem = 1, ne0_at = ps->pos;
    for (uint32_t d = 0; d < CIT_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = ps->pos;
        if ((st = rd_u64(ps, "dimension", &t->ne[d])))
            return st;
        if (t->ne[d] == 0)
            return perr(ps, CIT_ERR_FORMAT, "ne[%" PRIu32 "] at offset %" PRIu64 " is 0 (empty tensors are not supported)", d, at);
        if (!cit_mul_u64(nelem, t->ne[d], &nelem) || nelem > (uint64_t)INT64_MAX)
            return perr(ps, CIT_ERR_FORMAT,
                        "element count overflows int64 at ne[%" PRIu32 "] = %" PRIu64 " (offset %" PRIu64 ")", d, t->ne[d], at);
    }

    at = ps->pos;
    if ((st = rd_u32(ps, "type", &t->type)))
        return st;
    const struct cit_type_traits *tr = cit_type_traits(t->type);
    if (!tr)
        return perr(ps, CIT_ERR_UNSUPPORTED, "type id %" PRIu32 " at offset %" PRIu64 " is not a known GGML tensor type", t->type,
                    at);
    if (t->ne[0] % tr->block_size != 0)
        return perr(ps, CIT_ERR_FORMAT, "ne[0] = %" PRIu64 " (at offset %" PRIu64 ") is not a multiple of the %s block size %" PRIu32,
                    t->ne[0], ne0_at, tr->name, tr->block_size);
    uint64_t row;
    if (!cit_type_row_size(t->type, t->ne[0], &row) || !cit_mul_u64(row, t->ne[1], &t->nbytes) ||
        !cit_mul_u64(t->nbytes, t->ne[2], &t->nbytes) || !cit_mul_u64(t->nbytes, t->ne[3], &t->nbytes))
        return perr(ps, CIT_ERR_FORMAT, "data size of %" PRIu64 " %s elements overflows", nelem, tr->name);

    at = ps->pos;
    if ((st = rd_u64(ps, "data offset", &t->offset)))
        return st;
    if (t->offset % g->alignment != 0)
        return perr(ps, CIT_ERR_FORMAT, "data offset %" PRIu64 " (at offset %" PRIu64 ") is not a multiple of the alignment %" PRIu32,
                    t->offset, at, g->alignment);
    return CIT_OK;
}

struct extent {
    uint64_t begin, end;
    size_t idx;
};

static int cmp_extent(const void *a, const void *b)
{
    const struct extent *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Places every tensor in the data section: inside the file, no overlaps. */
static enum cit_status place_tensors(struct parser *ps)
{
    struct cit_gguf *g = ps->g;
    char shown[100];
    for (size_t i = 0; i < g->n_tensors; i++) {
        struct cit_gguf_tensor *t = &g->tensors[i];
        uint64_t abs;
        bool in_range = cit_add_u64(g->data_offset, t->offset, &abs);
        if (!in_range || !cit_range_ok(abs, t->nbytes, g->size)) {
            describe_name(shown, sizeof shown, t->name, strlen(t->name));
            snprintf(ps->where, sizeof ps->where, "tensor '%s' (tensor info at offset %" PRIu64 ")", shown, g->tensor_info_off[i]);
            if (!in_range)
                return perr(ps, CIT_ERR_FORMAT,
                            "data offset %" PRIu64 " past the data section start %" PRIu64 " overflows (file size %" PRIu64 ")",
                            t->offset, g->data_offset, g->size);
            return perr(ps, CIT_ERR_FORMAT, "data [offset %" PRIu64 ", +%" PRIu64 ") runs past end of file (size %" PRIu64 ")",
                        abs, t->nbytes, g->size);
        }
        t->data = g->base + abs;
    }
    if (g->n_tensors < 2)
        return CIT_OK;
    struct extent *ex = malloc(g->n_tensors * sizeof *ex);
    if (!ex)
        return perr(ps, CIT_ERR_NOMEM, "cannot allocate %zu tensor extents", g->n_tensors);
    for (size_t i = 0; i < g->n_tensors; i++)
        ex[i] = (struct extent){g->tensors[i].offset, g->tensors[i].offset + g->tensors[i].nbytes, i};
    qsort(ex, g->n_tensors, sizeof *ex, cmp_extent);
    for (size_t k = 1; k < g->n_tensors; k++) {
        if (ex[k].begin < ex[k - 1].end) {
            const struct cit_gguf_tensor *a = &g->tensors[ex[k - 1].idx], *b = &g->tensors[ex[k].idx];
            char other[100];
            describe_name(shown, sizeof shown, b->name, strlen(b->name));
            describe_name(other, sizeof other, a->name, strlen(a->name));
            snprintf(ps->where, sizeof ps->where, "tensor '%s' (tensor info at offset %" PRIu64 ")", shown,
                     g->tensor_info_off[ex[k].idx]);
            enum cit_status st = perr(ps, CIT_ERR_FORMAT,
                                      "data [offset %" PRIu64 ", +%" PRIu64 ") overlaps tensor '%s' data [offset %" PRIu64
                                      ", +%" PRIu64 ")",
                                      g->data_offset + b->offset, b->nbytes, other, g->data_offset + a->offset, a->nbytes);
            free(ex);
            return st;
        }
    }
    free(ex);
    return CIT_OK;
}

static enum cit_status parse_tensors(struct parser *ps, uint64_t count)
{
    struct cit_gguf *g = ps->g;
    size_t cap = 0;
    /* grown as infos are read, so memory follows the bytes actually parsed */
    for (uint64_t i = 0; i < count; i++) {
        if (g->n_tensors == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct cit_gguf_tensor *nt = realloc(g->tensors, ncap * sizeof *nt);
            if (nt)
                g->tensors = nt;
            uint64_t *no = realloc(g->tensor_info_off, ncap * sizeof *no);
            if (no)
                g->tensor_info_off = no;
            if (!nt || !no)
                return perr(ps, CIT_ERR_NOMEM, "cannot allocate tensor table");
            cap = ncap;
        }
        enum cit_status st = parse_tensor_info(ps, i);
        if (st)
            return st;
    }
    return CIT_OK;
}

/* ---- header ---- */

static enum cit_status check_count(struct parser *ps, const char *field, uint64_t at, uint64_t count, uint64_t min_bytes,
                                   uint64_t remaining)
{
    if (count > MAX_ITEMS)
        return perr(ps, CIT_ERR_LIMIT, "%s %" PRIu64 " at offset %" PRIu64 " exceeds the limit of %u", field, count, at, MAX_ITEMS);
    if (count > remaining / min_bytes)
        return perr(ps, CIT_ERR_FORMAT,
                    "%s %" PRIu64 " at offset %" PRIu64 " is impossible: each needs at least %" PRIu64 " bytes and only %" PRIu64
                    " bytes remain",
                    field, count, at, min_bytes, remaining);
    return CIT_OK;
}

static enum cit_status parse(struct parser *ps)
{
    struct cit_gguf *g = ps->g;
    enum cit_status st;
    snprintf(ps->where, sizeof ps->where, "header");
    if ((st = need(ps, 4, "magic")))
        return st;
    const uint8_t *m = ps->p;
    if (memcmp(m, "GGUF", 4) != 0)
        return perr(ps, CIT_ERR_FORMAT, "bad magic at offset 0: expected \"GGUF\" (47 47 55 46), found %02x %02x %02x %02x", m[0],
                    m[1], m[2], m[3]);
    ps->pos = 4;
    if ((st = rd_u32(ps, "version", &g->version)))
        return st;
    if (g->version != 2 && g->version != 3) {
        if (g->version == 0x02000000u || g->version == 0x03000000u)
            return perr(ps, CIT_ERR_UNSUPPORTED, "version at offset 4 reads 0x%08" PRIx32 ": big-endian GGUF files are not supported",
                        g->version);
        return perr(ps, CIT_ERR_UNSUPPORTED, "version %" PRIu32 " at offset 4 is not supported (only versions 2 and 3)",
                    g->version);
    }
    uint64_t n_tensors, n_kv;
    if ((st = rd_u64(ps, "tensor_count", &n_tensors)) || (st = rd_u64(ps, "kv_count", &n_kv)))
        return st;
    uint64_t remaining = ps->size - HEADER_BYTES;
    if ((st = check_count(ps, "tensor_count", 8, n_tensors, MIN_TENSOR_INFO_BYTES, remaining)) ||
        (st = check_count(ps, "kv_count", 16, n_kv, MIN_KV_BYTES, remaining)))
        return st;
    /* both counts are <= MAX_ITEMS here, so this cannot overflow */
    uint64_t min_total = n_tensors * MIN_TENSOR_INFO_BYTES + n_kv * MIN_KV_BYTES;
    if (min_total > remaining)
        return perr(ps, CIT_ERR_FORMAT,
                    "tensor_count %" PRIu64 " and kv_count %" PRIu64 " are impossible together: they need at least %" PRIu64
                    " bytes and only %" PRIu64 " remain",
                    n_tensors, n_kv, min_total, remaining);

    if ((st = parse_kvs(ps, n_kv)))
        return st;
    size_t first, dup;
    if ((st = index_build(g, GGUF_IDX_KV, g->n_kv, &first, &dup))) {
        if (st != CIT_ERR_FORMAT)
            return perr(ps, st, "cannot allocate key index");
        char name[100];
        describe_name(name, sizeof name, g->kvs[dup].key, g->kvs[dup].key_len);
        snprintf(ps->where, sizeof ps->where, "metadata '%s' (entry %zu at offset %" PRIu64 ")", name, dup, g->kvs[dup].entry_off);
        return perr(ps, CIT_ERR_FORMAT, "duplicate key (first defined by entry %zu at offset %" PRIu64 ")", first,
                    g->kvs[first].entry_off);
    }
    if ((st = resolve_alignment(ps)))
        return st;

    if ((st = parse_tensors(ps, n_tensors)))
        return st;
    if ((st = index_build(g, GGUF_IDX_TENSOR, g->n_tensors, &first, &dup))) {
        if (st != CIT_ERR_FORMAT)
            return perr(ps, st, "cannot allocate tensor index");
        char name[100];
        describe_name(name, sizeof name, g->tensors[dup].name, strlen(g->tensors[dup].name));
        snprintf(ps->where, sizeof ps->where, "tensor '%s' (tensor info at offset %" PRIu64 ")", name, g->tensor_info_off[dup]);
        return perr(ps, CIT_ERR_FORMAT, "duplicate tensor name (first defined by the tensor info at offset %" PRIu64 ")",
                    g->tensor_info_off[first]);
    }

    snprintf(ps->where, sizeof ps->where, "header");
    if (!cit_align_up_u64(ps->pos, g->alignment, &g->data_offset))
        return perr(ps, CIT_ERR_FORMAT, "data section start (header end %" PRIu64 " aligned to %" PRIu32 ") overflows", ps->pos,
                    g->alignment);
    return place_tensors(ps);
}

/* Takes ownership of map (munmapped on failure). */
static enum cit_status open_common(const void *data, uint64_t size, void *map, size_t map_len, struct cit_gguf **out,
                                   char *err, size_t errlen)
{
    static const uint8_t empty[1];
    struct cit_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        if (map)
            munmap(map, map_len);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "gguf: cannot allocate reader");
    }
    g->base = size ? data : empty;
    g->size = size;
    g->map = map;
    g->map_len = map_len;
    struct parser ps = {.g = g, .p = g->base, .size = size, .pos = 0, .err = err, .errlen = errlen};
    enum cit_status st = parse(&ps);
    if (st) {
        cit_gguf_free(g);
        return st;
    }
    *out = g;
    return CIT_OK;
}

enum cit_status cit_gguf_open_memory(const void *data, size_t size, struct cit_gguf **out, char *err, size_t errlen)
{
    if (!out || (!data && size))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "gguf: open_memory: NULL %s", out ? "data" : "out");
    *out = NULL;
    return open_common(data, size, NULL, 0, out, err, errlen);
}

/* The file read-only at an address aligned to 2 MiB, with MADV_HUGEPAGE:
 * where the page cache holds the file in 2 MiB folios (Linux 6.16+ on ext4
 * and XFS reads a file so when a mapping asks for huge pages), the kernel
 * then maps them whole, and a decode pass over the weights takes a TLB miss
 * per 2 MiB rather than per 4 KiB (docs/engine.md, "Huge pages"). Both are
 * requests the kernel may ignore; any failure falls back to a plain
 * mapping. MAP_FAILED when even that fails (errno set). */
static void *map_file(int fd, size_t size)
{
    const size_t huge = (size_t)2 << 20;
    long pg = sysconf(_SC_PAGESIZE);
    size_t len = 0;
    if (pg > 0 && (size_t)pg <= huge && huge % (size_t)pg == 0 && size >= huge &&
        cit_add_size(size, (size_t)pg - 1, &len) && cit_add_size(len / (size_t)pg * (size_t)pg, huge, &len)) {
        /* reserve len = size rounded to pages + 2 MiB, then place the file at the first 2 MiB boundary in it */
        unsigned char *res = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (res != MAP_FAILED) {
            size_t head = (huge - (uintptr_t)res % huge) % huge, body = len - huge;
            void *map = mmap(res + head, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
            if (map != MAP_FAILED) {
                if (head)
                    munmap(res, head);
                if (huge - head)
                    munmap(res + head + body, huge - head);
#ifdef MADV_HUGEPAGE
                madvise(map, size, MADV_HUGEPAGE); /* advisory: an error leaves 4 KiB pages */
#endif
                return map;
            }
            munmap(res, len);
        }
    }
    return mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
}

enum cit_status cit_gguf_open(const char *path, struct cit_gguf **out, char *err, size_t errlen)
{
    if (!path || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "gguf: open: NULL %s", out ? "path" : "out");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return cit_fail(e == ENOENT ? CIT_ERR_NOT_FOUND : CIT_ERR_IO, err, errlen, "gguf: cannot open '%s': %s", path,
                        strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return cit_fail(CIT_ERR_IO, err, errlen, "gguf: '%s': %s", path,
                        S_ISREG(sb.st_mode) ? strerror(e) : "not a regular file");
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return cit_fail(CIT_ERR_LIMIT, err, errlen, "gguf: '%s' is too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = map_file(fd, size);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return cit_fail(CIT_ERR_IO, err, errlen, "gguf: cannot map '%s' (%zu bytes): %s", path, size, strerror(e));
        }
    }
    close(fd);
    return open_common(map, size, map, size, out, err, errlen);
}

void cit_gguf_free(struct cit_gguf *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].str_off);
    }
    free(g->kvs);
    for (size_t i = 0; i < g->n_tensors; i++)
        free((char *)g->tensors[i].name);
    free(g->tensors);
    free(g->tensor_info_off);
    free(g->index[GGUF_IDX_KV].slots);
    free(g->index[GGUF_IDX_TENSOR].slots);
    if (g->map)
        munmap(g->map, g->map_len);
    free(g);
}

bool cit_gguf_map_pages(const struct cit_gguf *g, uint64_t *resident, uint64_t *huge)
{
    if (!g || !g->map || !resident || !huge)
        return false;
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f)
        return false;
    /* The mapping's areas (one, unless something split it) and their Rss and
     * FilePmdMapped lines, in kB; of the lines, only the area headers parse
     * as two hex numbers joined by '-'. */
    const uintptr_t lo = (uintptr_t)g->map, end = lo + g->map_len;
    uint64_t rss = 0, pmd = 0;
    bool in = false, seen = false;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b, kb;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2) {
            in = a >= lo && a < end; /* areas are disjoint: one starting inside is part of it */
            seen |= in;
        } else if (in && sscanf(line, "Rss: %lu kB", &kb) == 1) {
            rss += (uint64_t)kb * 1024;
        } else if (in && sscanf(line, "FilePmdMapped: %lu kB", &kb) == 1) {
            pmd += (uint64_t)kb * 1024;
        }
    }
    fclose(f);
    if (!seen)
        return false;
    *resident = rss;
    *huge = pmd < rss ? pmd : rss;
    return true;
}

/* ---- accessors ---- */

uint32_t cit_gguf_version(const struct cit_gguf *g) { return g->version; }
uint64_t cit_gguf_file_size(const struct cit_gguf *g) { return g->size; }
uint32_t cit_gguf_alignment(const struct cit_gguf *g) { return g->alignment; }
uint64_t cit_gguf_data_offset(const struct cit_gguf *g) { return g->data_offset; }
size_t cit_gguf_n_kv(const struct cit_gguf *g) { return g->n_kv; }
size_t cit_gguf_n_tensors(const struct cit_gguf *g) { return g->n_tensors; }

int64_t cit_gguf_find_key(const struct cit_gguf *g, const char *key)
{
    if (!g || !key)
        return -1;
    return gguf_index_find(g, GGUF_IDX_KV, key, strlen(key));
}

const char *cit_gguf_kv_key(const struct cit_gguf *g, size_t i) { return i < g->n_kv ? g->kvs[i].key : NULL; }

enum cit_gguf_type cit_gguf_kv_type(const struct cit_gguf *g, size_t i)
{
    return i < g->n_kv ? g->kvs[i].type : (enum cit_gguf_type)-1;
}

const struct cit_gguf_tensor *cit_gguf_tensor_at(const struct cit_gguf *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct cit_gguf_tensor *cit_gguf_find_tensor(const struct cit_gguf *g, const char *name)
{
    if (!g || !name)
        return NULL;
    int64_t i = gguf_index_find(g, GGUF_IDX_TENSOR, name, strlen(name));
    return i < 0 ? NULL : &g->tensors[i];
}
