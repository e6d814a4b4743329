/* gguf_get.c: typed access to GGUF metadata and its display form.
 *
 * Values were validated by cit_gguf_open; here they are decoded from the
 * little-endian bytes in the mapping (with memcpy-free byte assembly, so
 * unaligned values are fine) and converted only where the conversion is
 * exact (integers) or documented (float64 rounded to float). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "gguf/gguf_impl.h"

size_t cit_gguf_type_size(enum cit_gguf_type t)
{
    switch (t) {
    case CIT_GGUF_UINT8:
    case CIT_GGUF_INT8:
    case CIT_GGUF_BOOL: return 1;
    case CIT_GGUF_UINT16:
    case CIT_GGUF_INT16: return 2;
    case CIT_GGUF_UINT32:
    case CIT_GGUF_INT32:
    case CIT_GGUF_FLOAT32: return 4;
    case CIT_GGUF_UINT64:
    case CIT_GGUF_INT64:
    case CIT_GGUF_FLOAT64: return 8;
    case CIT_GGUF_STRING:
    case CIT_GGUF_ARRAY: return 0;
    }
    return 0;
}

const char *cit_gguf_type_name(enum cit_gguf_type t)
{
    switch (t) {
    case CIT_GGUF_UINT8: return "uint8";
    case CIT_GGUF_INT8: return "int8";
    case CIT_GGUF_UINT16: return "uint16";
    case CIT_GGUF_INT16: return "int16";
    case CIT_GGUF_UINT32: return "uint32";
    case CIT_GGUF_INT32: return "int32";
    case CIT_GGUF_FLOAT32: return "float32";
    case CIT_GGUF_BOOL: return "bool";
    case CIT_GGUF_STRING: return "string";
    case CIT_GGUF_ARRAY: return "array";
    case CIT_GGUF_UINT64: return "uint64";
    case CIT_GGUF_INT64: return "int64";
    case CIT_GGUF_FLOAT64: return "float64";
    }
    return "unknown";
}

/* ---- scalar decoding ---- */

static bool is_signed_int(enum cit_gguf_type t)
{
    return t == CIT_GGUF_INT8 || t == CIT_GGUF_INT16 || t == CIT_GGUF_INT32 || t == CIT_GGUF_INT64;
}

static bool is_unsigned_int(enum cit_gguf_type t)
{
    return t == CIT_GGUF_UINT8 || t == CIT_GGUF_UINT16 || t == CIT_GGUF_UINT32 || t == CIT_GGUF_UINT64;
}

static uint64_t dec_unsigned(enum cit_gguf_type t, const uint8_t *p)
{
    switch (cit_gguf_type_size(t)) {
    case 1: return p[0];
    case 2: return gguf_le16(p);
    case 4: return gguf_le32(p);
    default: return gguf_le64(p);
    }
}

static int64_t dec_signed(enum cit_gguf_type t, const uint8_t *p)
{
    switch (cit_gguf_type_size(t)) {
    case 1: return (int8_t)p[0];
    case 2: return (int16_t)gguf_le16(p);
    case 4: return (int32_t)gguf_le32(p);
    default: return (int64_t)gguf_le64(p);
    }
}

static float dec_f32(const uint8_t *p)
{
    uint32_t u = gguf_le32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double dec_f64(const uint8_t *p)
{
    uint64_t u = gguf_le64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* ---- typed getters ---- */

static enum cit_status lookup(const struct cit_gguf *g, const char *key, const struct gguf_kv **kv, char *err, size_t errlen)
{
    if (!g || !key)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "gguf: NULL %s", g ? "key" : "reader");
    int64_t i = gguf_index_find(g, GGUF_IDX_KV, key, strlen(key));
    if (i < 0)
        return cit_fail(CIT_ERR_NOT_FOUND, err, errlen, "gguf: key '%s' not found", key);
    *kv = &g->kvs[i];
    return CIT_OK;
}

static enum cit_status mismatch(const struct gguf_kv *kv, const char *wanted, char *err, size_t errlen)
{
    if (kv->type == CIT_GGUF_ARRAY)
        return cit_fail(CIT_ERR_TYPE, err, errlen, "gguf: key '%s' has type array of %s, wanted %s", kv->key,
                        cit_gguf_type_name(kv->elem_type), wanted);
    return cit_fail(CIT_ERR_TYPE, err, errlen, "gguf: key '%s' has type %s, wanted %s", kv->key, cit_gguf_type_name(kv->type),
                    wanted);
}

enum cit_status cit_gguf_get_uint(const struct cit_gguf *g, const char *key, uint64_t *out, char *err, size_t errlen)
{
    const struct gguf_kv *kv = NULL;
    enum cit_status st = lookup(g, key, &kv, err, errlen);
    if (st)
        return st;
    if (is_unsigned_int(kv->type)) {
        *out = dec_unsigned(kv->type, kv->val);
        return CIT_OK;
    }
    if (is_signed_int(kv->type)) {
        int64_t v = dec_signed(kv->type, kv->val);
        if (v < 0)
            return cit_fail(CIT_ERR_TYPE, err, errlen, "gguf: key '%s' has type %s and value %" PRId64 ", wanted unsigned integer",
                            kv->key, cit_gguf_type_name(kv->type), v);
        *out = (uint64_t)v;
        return CIT_OK;
    }
    return mismatch(kv, "unsigned integer", err, errlen);
}

enum cit_status cit_gguf_get_int(const struct cit_gguf *g, const char *key, int64_t *out, char *err, size_t errlen)
{
    const struct gguf_kv *kv = NULL;
    enum cit_status st = lookup(g, key, &kv, err, errlen);
    if (st)
        return st;
    if (is_signed_int(kv->type)) {
        *out = dec_signed(kv->type, kv->val);
        return CIT_OK;
    }
    if (is_unsigned_int(kv->type)) {
        uint64_t v = dec_unsigned(kv->type, kv->val);
        if (v > (uint64_t)INT64_MAX)
            return cit_fail(CIT_ERR_TYPE, err, errlen, "gguf: key '%s' has type %s and value %" PRIu64 ", wanted int64", kv->key,
                            cit_gguf_type_name(kv->type), v);
        *out = (int64_t)v;
        return CIT_OK;
    }
    return mismatch(kv, "integer", err, errlen);
}

enum cit_status cit_gguf_get_f32(const struct cit_gguf *g, const char *key, float *out, char *err, size_t errlen)
{
    const struct gguf_kv *kv = NULL;
    enum cit_status st = lookup(g, key, &kv, err, errlen);
    if (st)
        return st;
    if (kv->type == CIT_GGUF_FLOAT32) {
        *out = dec_f32(kv->val);
        return CIT_OK;
    }
    if (kv->type == CIT_GGUF_FLOAT64) {
        *out = (float)dec_f64(kv->val);
        return CIT_OK;
    }
    return mismatch(kv, "float32", err, errlen);
}

enum cit_status cit_gguf_get_bool(const struct cit_gguf *g, const char *key, bool *out, char *err, size_t errlen)
{
    const struct gguf_kv *kv = NULL;
    enum cit_status st = lookup(g, key, &kv, err, errlen);
    if (st)
        return st;
    if (kv->type != CIT_GGUF_BOOL)
        return mismatch(kv, "bool", err, errlen);
    *out = kv->val[0] != 0;
    return CIT_OK;
}

enum cit_status cit_gguf_get_str(const struct cit_gguf *g, const char *key, struct cit_gguf_str *out, char *err, size_t errlen)
{
    const struct gguf_kv *kv = NULL;
    enum cit_status st = lookup(g, key, &kv, err, errlen);
    if (st)
        return st;
    if (kv->type != CIT_GGUF_STRING)
        return mismatch(kv, "string", err, errlen);
    out->ptr = (const char *)kv->val;
    out->len = kv->len;
    return CIT_OK;
}

enum cit_status cit_gguf_get_arr(const struct cit_gguf *g, const char *key, enum cit_gguf_type *elem_type, uint64_t *count,
                                 const void **data, char *err, size_t errlen)
{
    const struct gguf_kv *kv = NULL;
    enum cit_status st = lookup(g, key, &kv, err, errlen);
    if (st)
        return st;
    if (kv->type != CIT_GGUF_ARRAY)
        return mismatch(kv, "array", err, errlen);
    if (elem_type)
        *elem_type = kv->elem_type;
    if (count)
        *count = kv->count;
    if (data)
        *data = kv->elem_type == CIT_GGUF_STRING ? NULL : kv->elems;
    return CIT_OK;
}

enum cit_status cit_gguf_arr_str(const struct cit_gguf *g, const char *key, uint64_t idx, struct cit_gguf_str *out, char *err,
                                 size_t errlen)
{
    const struct gguf_kv *kv = NULL;
    enum cit_status st = lookup(g, key, &kv, err, errlen);
    if (st)
        return st;
    if (kv->type != CIT_GGUF_ARRAY || kv->elem_type != CIT_GGUF_STRING)
        return mismatch(kv, "array of string", err, errlen);
    if (idx >= kv->count)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "gguf: key '%s': index %" PRIu64 " out of range (array of %" PRIu64 " strings)",
                        key, idx, kv->count);
    uint64_t off = kv->str_off[idx];
    out->ptr = (const char *)g->base + off;
    out->len = gguf_le64(g->base + off - 8);
    return CIT_OK;
}

/* ---- display ---- */

/* Appends to a fixed buffer; on overflow remembers it and, at the end,
 * replaces the tail with "..." on a UTF-8 character boundary. */
struct out {
    char *buf;
    size_t cap, len;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full)
        return;
    size_t room = o->cap - 1 - o->len;
    if (n > room) {
        n = room;
        o->full = true;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void finish(struct out *o)
{
    if (o->full && o->cap >= 4) {
        size_t l = o->cap - 4;
        while (l > 0 && ((unsigned char)o->buf[l] & 0xc0) == 0x80)
            l--;
        memcpy(o->buf + l, "...", 3);
        o->len = l + 3;
    }
    o->buf[o->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_len(const uint8_t *s, uint64_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    if (cp >= 0x80 && cp < 0xa0) /* C1 controls: escape them too */
        return 0;
    return len;
}

/* A quoted string: printable ASCII and valid UTF-8 as is, the rest escaped. */
static void put_quoted(struct out *o, const uint8_t *s, uint64_t n)
{
    put(o, "\"", 1);
    for (uint64_t i = 0; i < n && !o->full;) {
        uint8_t c = s[i];
        size_t ul;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
            i++;
        } else if (c >= 0x20 && c < 0x7f) {
            put(o, (const char *)&s[i], 1);
            i++;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            put(o, c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\r", 2);
            i++;
        } else if (c >= 0x80 && (ul = utf8_len(s + i, n - i)) > 0) {
            put(o, (const char *)&s[i], ul);
            i += ul;
        } else {
            putf(o, "\\x%02x", c);
            i++;
        }
    }
    put(o, "\"", 1);
}

/* Shortest %g form that reads back as the same value (1e-05, not 9.99999975e-06). */
static void put_float(struct out *o, double v, bool single)
{
    char tmp[40];
    for (int prec = single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (single ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v)
            break;
    }
    puts_(o, tmp); /* NaN never compares equal: the 9/17-digit form is kept, which prints "nan" */
}

static void put_scalar(struct out *o, enum cit_gguf_type t, const uint8_t *p)
{
    if (is_unsigned_int(t))
        putf(o, "%" PRIu64, dec_unsigned(t, p));
    else if (is_signed_int(t))
        putf(o, "%" PRId64, dec_signed(t, p));
    else if (t == CIT_GGUF_FLOAT32)
        put_float(o, dec_f32(p), true);
    else if (t == CIT_GGUF_FLOAT64)
        put_float(o, dec_f64(p), false);
    else if (t == CIT_GGUF_BOOL)
        puts_(o, p[0] ? "true" : "false");
}

void cit_gguf_kv_format(const struct cit_gguf *g, size_t i, char *buf, size_t buflen, size_t max_items)
{
    if (!buf || buflen == 0)
        return;
    struct out o = {buf, buflen, 0, false};
    if (!g || i >= g->n_kv) {
        finish(&o);
        return;
    }
    const struct gguf_kv *kv = &g->kvs[i];
    if (kv->type == CIT_GGUF_STRING) {
        put_quoted(&o, kv->val, kv->len);
    } else if (kv->type == CIT_GGUF_ARRAY) {
        putf(&o, "[%s x %" PRIu64 "]", cit_gguf_type_name(kv->elem_type), kv->count);
        uint64_t shown = kv->count < max_items ? kv->count : max_items;
        size_t esz = cit_gguf_type_size(kv->elem_type);
        for (uint64_t j = 0; j < shown && !o.full; j++) {
            puts_(&o, j ? ", " : " ");
            if (kv->elem_type == CIT_GGUF_STRING) {
                uint64_t off = kv->str_off[j];
                put_quoted(&o, g->base + off, gguf_le64(g->base + off - 8));
            } else {
                put_scalar(&o, kv->elem_type, kv->elems + j * esz);
            }
        }
        if (shown < kv->count)
            puts_(&o, shown ? ", ..." : " ...");
    } else {
        put_scalar(&o, kv->type, kv->val);
    }
    finish(&o);
}
