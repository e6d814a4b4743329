/* test_gguf.c: unit tests of the GGUF reader (src/gguf).
 *
 * A tiny in-test writer builds valid files and one handcrafted corruption
 * per class of malformed input; each corruption must give a clean error
 * naming the field. Every buffer handed to cit_gguf_open_memory is a heap
 * copy of exactly its length, so ASan reports any over-read. The real
 * models and vocab files under $CITADEL_SHARED must open, and the first
 * model truncated at every header offset must fail cleanly. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "citadel/gguf.h"
#include "citadel/tensor.h"
#include "support.h"

/* ---- byte writer ---- */

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void b_put(struct buf *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void b_u8(struct buf *b, uint8_t v) { b_put(b, &v, 1); }
static void b_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    b_put(b, x, 4);
}
static void b_u64(struct buf *b, uint64_t v)
{
    b_u32(b, (uint32_t)v);
    b_u32(b, (uint32_t)(v >> 32));
}
static void b_strn(struct buf *b, const char *s, size_t n)
{
    b_u64(b, n);
    b_put(b, s, n);
}
static void b_str(struct buf *b, const char *s) { b_strn(b, s, strlen(s)); }
static void b_zeros(struct buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b_u8(b, 0);
}
static void b_pad(struct buf *b, size_t align)
{
    while (b->len % align)
        b_u8(b, 0);
}
static void b_patch_u32(struct buf *b, size_t at, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    memcpy(b->p + at, x, 4);
}
static void b_patch_u64(struct buf *b, size_t at, uint64_t v)
{
    b_patch_u32(b, at, (uint32_t)v);
    b_patch_u32(b, at + 4, (uint32_t)(v >> 32));
}

static void header(struct buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    b_put(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}

static void kv_head(struct buf *b, const char *key, enum cit_gguf_type t)
{
    b_str(b, key);
    b_u32(b, t);
}
static void kv_u32(struct buf *b, const char *key, uint32_t v)
{
    kv_head(b, key, CIT_GGUF_UINT32);
    b_u32(b, v);
}
static void kv_str(struct buf *b, const char *key, const char *v)
{
    kv_head(b, key, CIT_GGUF_STRING);
    b_str(b, v);
}

static void tensor_info(struct buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset)
{
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        b_u64(b, ne[d]);
    b_u32(b, type);
    b_u64(b, offset);
}

/* ---- opening helpers ---- */

static enum cit_status open_copy(const void *data, size_t len, struct cit_gguf **g, char *err, size_t errlen, void **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    if (len)
        memcpy(*copy, data, len);
    return cit_gguf_open_memory(*copy, len, g, err, errlen);
}

/* Opens b (exact-size heap copy) and expects status want with every needle in the message. */
static void expect_fail(struct buf *b, enum cit_status want, ...)
{
    struct cit_gguf *g = (struct cit_gguf *)0x1;
    char err[512] = "";
    void *copy;
    enum cit_status st = open_copy(b->p, b->len, &g, err, sizeof err, &copy);
    if (st != want)
        fail_msg("status %d (%s), wanted %d: %s", st, cit_status_str(st), want, err);
    assert_null(g);
    assert_true(strncmp(err, "gguf: ", 6) == 0);
    if (getenv("GGUF_TEST_VERBOSE"))
        print_message("  %s\n", err);
    va_list ap;
    va_start(ap, want);
    for (const char *needle; (needle = va_arg(ap, const char *)) != NULL;)
        if (!strstr(err, needle))
            fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
    va_end(ap);
    free(copy);
    free(b->p);
    b->p = NULL;
}

static struct cit_gguf *expect_ok(struct buf *b, void **copy)
{
    struct cit_gguf *g = NULL;
    char err[512] = "";
    enum cit_status st = open_copy(b->p, b->len, &g, err, sizeof err, copy);
    if (st != CIT_OK)
        fail_msg("open failed: %s", err);
    return g;
}

/* A valid file: 8 metadata entries and two tensors (F32 8x2 at 0, Q8_0 32x1 at 64). */
static const uint64_t NE_A[2] = {8, 2}, NE_B[1] = {32};
static struct buf valid_file(void)
{
    struct buf b = {0};
    header(&b, 3, 2, 9);
    kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "general.alignment", 32);
    kv_u32(&b, "llama.embedding_length", 64);
    kv_head(&b, "neg", CIT_GGUF_INT32);
    b_u32(&b, (uint32_t)-5);
    kv_head(&b, "big", CIT_GGUF_UINT64);
    b_u64(&b, UINT64_MAX);
    kv_head(&b, "eps", CIT_GGUF_FLOAT64);
    double d = 1e-5;
    uint64_t du;
    memcpy(&du, &d, 8);
    b_u64(&b, du);
    kv_head(&b, "flag", CIT_GGUF_BOOL);
    b_u8(&b, 1);
    kv_head(&b, "tokens", CIT_GGUF_ARRAY);
    b_u32(&b, CIT_GGUF_STRING);
    b_u64(&b, 4);
    b_str(&b, "<unk>");
    b_str(&b, "he said \"hi\"\n");
    b_strn(&b, "a\0b", 3);
    b_str(&b, "\xc3\xa9\xff");
    kv_head(&b, "ids", CIT_GGUF_ARRAY);
    b_u32(&b, CIT_GGUF_INT32);
    b_u64(&b, 5);
    for (int32_t i = -2; i < 3; i++)
        b_u32(&b, (uint32_t)i);
    tensor_info(&b, "a", 2, NE_A, CIT_TYPE_F32, 0);
    tensor_info(&b, "b", 1, NE_B, CIT_TYPE_Q8_0, 64);
    b_pad(&b, 32);
    for (int i = 0; i < 64 + 34; i++)
        b_u8(&b, (uint8_t)i);
    return b;
}

/* A file with no metadata and the given tensor infos written by fn, then data. */
static struct buf tensors_file(uint64_t n, void (*fn)(struct buf *), size_t data_bytes)
{
    struct buf b = {0};
    header(&b, 3, n, 0);
    fn(&b);
    b_pad(&b, 32);
    b_zeros(&b, data_bytes);
    return b;
}

/* ---- valid files ---- */

static void test_valid_file(void **state)
{
    (void)state;
    struct buf b = valid_file();
    void *copy;
    struct cit_gguf *g = expect_ok(&b, &copy);
    assert_int_equal(cit_gguf_version(g), 3);
    assert_int_equal(cit_gguf_alignment(g), 32);
    assert_int_equal(cit_gguf_file_size(g), b.len);
    assert_int_equal(cit_gguf_data_offset(g) % 32, 0);
    assert_int_equal(cit_gguf_data_offset(g) + 64 + 34, b.len);
    assert_int_equal(cit_gguf_n_kv(g), 9);
    assert_string_equal(cit_gguf_kv_key(g, 0), "general.architecture");
    assert_int_equal(cit_gguf_kv_type(g, 0), CIT_GGUF_STRING);
    assert_null(cit_gguf_kv_key(g, 9));
    assert_int_equal(cit_gguf_find_key(g, "llama.embedding_length"), 2);
    assert_int_equal(cit_gguf_find_key(g, "llama.embedding"), -1);
    assert_int_equal(cit_gguf_find_key(g, "nope"), -1);

    assert_int_equal(cit_gguf_n_tensors(g), 2);
    const struct cit_gguf_tensor *a = cit_gguf_find_tensor(g, "a"), *t = cit_gguf_find_tensor(g, "b");
    assert_non_null(a);
    assert_non_null(t);
    assert_null(cit_gguf_find_tensor(g, "c"));
    assert_ptr_equal(cit_gguf_tensor_at(g, 0), a);
    assert_null(cit_gguf_tensor_at(g, 2));
    assert_int_equal(a->n_dims, 2);
    assert_int_equal(a->ne[0], 8);
    assert_int_equal(a->ne[1], 2);
    assert_int_equal(a->ne[2], 1);
    assert_int_equal(a->ne[3], 1);
    assert_int_equal(a->nbytes, 64);
    assert_int_equal(t->type, CIT_TYPE_Q8_0);
    assert_int_equal(t->nbytes, 34);
    assert_int_equal(t->offset, 64);
    const uint8_t *base = copy;
    assert_ptr_equal(a->data, base + cit_gguf_data_offset(g));
    assert_ptr_equal(t->data, base + cit_gguf_data_offset(g) + 64);
    assert_int_equal(((const uint8_t *)t->data)[0], 64);
    cit_gguf_free(g);
    free(copy);
    free(b.p);
}

static void test_alignment_honoured(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 2, 2, 1);
    kv_u32(&b, "general.alignment", 256);
    tensor_info(&b, "a", 2, NE_A, CIT_TYPE_F32, 0);
    tensor_info(&b, "b", 1, NE_B, CIT_TYPE_F32, 256);
    b_pad(&b, 256);
    b_zeros(&b, 256 + 128);
    void *copy;
    struct cit_gguf *g = expect_ok(&b, &copy);
    assert_int_equal(cit_gguf_version(g), 2);
    assert_int_equal(cit_gguf_alignment(g), 256);
    assert_int_equal(cit_gguf_data_offset(g), 256);
    cit_gguf_free(g);
    free(copy);
    free(b.p);
}

static void test_empty_file_ok(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 0);
    void *copy;
    struct cit_gguf *g = expect_ok(&b, &copy);
    assert_int_equal(cit_gguf_n_kv(g), 0);
    assert_int_equal(cit_gguf_n_tensors(g), 0);
    assert_int_equal(cit_gguf_find_key(g, "x"), -1);
    assert_null(cit_gguf_find_tensor(g, "x"));
    cit_gguf_free(g);
    free(copy);
    free(b.p);
    cit_gguf_free(NULL);
}

static void test_open_errors(void **state)
{
    (void)state;
    struct cit_gguf *g = NULL;
    char err[256];
    assert_int_equal(cit_gguf_open("/nonexistent/x.gguf", &g, err, sizeof err), CIT_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "/nonexistent/x.gguf"));
    assert_int_equal(cit_gguf_open("/tmp", &g, err, sizeof err), CIT_ERR_IO);
    assert_int_equal(cit_gguf_open(NULL, &g, err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_int_equal(cit_gguf_open_memory(NULL, 4, &g, err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_int_equal(cit_gguf_open_memory(NULL, 0, &g, NULL, 0), CIT_ERR_FORMAT);
    assert_null(g);
}

/* ---- corruptions: header ---- */

static void test_bad_magic(void **state)
{
    (void)state;
    struct buf b = valid_file();
    b.p[0] = 'X';
    expect_fail(&b, CIT_ERR_FORMAT, "magic", "offset 0", NULL);
    b = (struct buf){0};
    b_put(&b, "GG", 2);
    expect_fail(&b, CIT_ERR_FORMAT, "magic", "past end of file", NULL);
}

static void test_bad_version(void **state)
{
    (void)state;
    static const uint32_t bad[] = {0, 1, 4, 0x03000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct buf b = valid_file();
        b_patch_u32(&b, 4, bad[i]);
        expect_fail(&b, CIT_ERR_UNSUPPORTED, "version", "offset 4", NULL);
    }
}

static void test_absurd_tensor_count(void **state)
{
    (void)state;
    struct buf b = valid_file();
    b_patch_u64(&b, 8, 1ull << 60);
    expect_fail(&b, CIT_ERR_LIMIT, "tensor_count", "offset 8", NULL);
    b = valid_file();
    b_patch_u64(&b, 8, 1000); /* under the limit, still more than the file can hold */
    expect_fail(&b, CIT_ERR_FORMAT, "tensor_count 1000", "offset 8", "impossible", NULL);
}

static void test_absurd_kv_count(void **state)
{
    (void)state;
    struct buf b = valid_file();
    b_patch_u64(&b, 16, UINT64_MAX);
    expect_fail(&b, CIT_ERR_LIMIT, "kv_count", "offset 16", NULL);
    b = valid_file();
    b_patch_u64(&b, 16, 100000);
    expect_fail(&b, CIT_ERR_FORMAT, "kv_count", "offset 16", "impossible", NULL);
    b = valid_file();
    b_patch_u64(&b, 16, 12); /* plausible alone: the 10th entry starts inside the tensor infos */
    expect_fail(&b, CIT_ERR_FORMAT, "metadata", NULL);
}

/* ---- corruptions: metadata ---- */

static void test_string_past_eof(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 1);
    kv_head(&b, "general.name", CIT_GGUF_STRING);
    b_u64(&b, 1000);
    b_put(&b, "abc", 3);
    expect_fail(&b, CIT_ERR_FORMAT, "general.name", "string value", "length 1000", "offset 48", "past end of file", NULL);

    b = (struct buf){0};
    header(&b, 3, 0, 1);
    b_u64(&b, 1ull << 62); /* key length */
    b_put(&b, "abcdefgh", 8);
    expect_fail(&b, CIT_ERR_FORMAT, "metadata entry 0", "key", "offset 24", "past end of file", NULL);
}

static void test_array_past_eof(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 1);
    kv_head(&b, "ids", CIT_GGUF_ARRAY);
    b_u32(&b, CIT_GGUF_INT32);
    b_u64(&b, 10);
    for (int i = 0; i < 3; i++)
        b_u32(&b, 7);
    expect_fail(&b, CIT_ERR_FORMAT, "'ids'", "array count 10", "past end of file", NULL);

    b = (struct buf){0};
    header(&b, 3, 0, 1);
    kv_head(&b, "toks", CIT_GGUF_ARRAY);
    b_u32(&b, CIT_GGUF_STRING);
    b_u64(&b, 3);
    b_str(&b, "one");
    b_u64(&b, 50);
    b_put(&b, "two", 3);
    b_zeros(&b, 8);
    expect_fail(&b, CIT_ERR_FORMAT, "'toks'", "string element 1", "length 50", "past end of file", NULL);
}

static void test_absurd_array_count(void **state)
{
    (void)state;
    static const enum cit_gguf_type types[] = {CIT_GGUF_UINT8, CIT_GGUF_INT32, CIT_GGUF_UINT64, CIT_GGUF_STRING};
    static const uint64_t counts[] = {1ull << 60, 1ull << 62, UINT64_MAX};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 3; j++) {
            struct buf b = {0};
            header(&b, 3, 0, 1);
            kv_head(&b, "arr", CIT_GGUF_ARRAY);
            b_u32(&b, types[i]);
            b_u64(&b, counts[j]);
            b_zeros(&b, 64);
            expect_fail(&b, CIT_ERR_FORMAT, "'arr'", "array count", "offset 43", NULL);
        }
    }
}

static void test_duplicate_key(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 3);
    kv_u32(&b, "a.b", 1);
    kv_u32(&b, "c", 2);
    kv_u32(&b, "a.b", 3);
    expect_fail(&b, CIT_ERR_FORMAT, "duplicate key", "'a.b'", "entry 2", "offset 24", NULL);
}

static void test_empty_key(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 1);
    kv_u32(&b, "", 1);
    expect_fail(&b, CIT_ERR_FORMAT, "key", "offset 24", "empty", NULL);
}

static void test_key_with_nul(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 1);
    b_strn(&b, "ab\0c", 4);
    b_u32(&b, CIT_GGUF_UINT8);
    b_u8(&b, 1);
    expect_fail(&b, CIT_ERR_FORMAT, "key", "NUL", "offset 34", NULL);
}

static void test_unknown_value_type(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 1);
    kv_head(&b, "x", 13);
    b_zeros(&b, 8);
    expect_fail(&b, CIT_ERR_FORMAT, "'x'", "value type 13", "offset 33", NULL);
}

static void test_bool_value(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 1);
    kv_head(&b, "flag", CIT_GGUF_BOOL);
    b_u8(&b, 2);
    expect_fail(&b, CIT_ERR_FORMAT, "'flag'", "bool value 2", "offset 40", NULL);

    b = (struct buf){0};
    header(&b, 3, 0, 1);
    kv_head(&b, "flags", CIT_GGUF_ARRAY);
    b_u32(&b, CIT_GGUF_BOOL);
    b_u64(&b, 3);
    b_u8(&b, 0);
    b_u8(&b, 1);
    b_u8(&b, 0xff);
    expect_fail(&b, CIT_ERR_FORMAT, "'flags'", "bool element 2", "offset 55", NULL);
}

static void test_nested_array(void **state)
{
    (void)state;
    struct buf b = {0};
    header(&b, 3, 0, 1);
    kv_head(&b, "nest", CIT_GGUF_ARRAY);
    b_u32(&b, CIT_GGUF_ARRAY);
    b_u64(&b, 1);
    b_u32(&b, CIT_GGUF_UINT8);
    b_u64(&b, 1);
    b_u8(&b, 0);
    expect_fail(&b, CIT_ERR_UNSUPPORTED, "'nest'", "nested array", "offset 40", NULL);
}

static void test_bad_alignment(void **state)
{
    (void)state;
    static const uint32_t bad[] = {0, 3, 48, 0x80000001u};
    for (size_t i = 0; i < 4; i++) {
        struct buf b = {0};
        header(&b, 3, 0, 1);
        kv_u32(&b, "general.alignment", bad[i]);
        char want[64];
        snprintf(want, sizeof want, "alignment %u at offset 53", bad[i]);
        expect_fail(&b, CIT_ERR_FORMAT, "general.alignment", want, "power of two", NULL);
    }
    struct buf b = {0};
    header(&b, 3, 0, 1);
    kv_head(&b, "general.alignment", CIT_GGUF_UINT64);
    b_u64(&b, 32);
    expect_fail(&b, CIT_ERR_FORMAT, "general.alignment", "uint64", "must be uint32", NULL);
    b = (struct buf){0};
    header(&b, 3, 0, 1);
    kv_str(&b, "general.alignment", "32");
    expect_fail(&b, CIT_ERR_FORMAT, "general.alignment", "string", NULL);
}

/* ---- corruptions: tensor infos ---- */

static void ti_dup(struct buf *b)
{
    tensor_info(b, "w", 2, NE_A, CIT_TYPE_F32, 0);
    tensor_info(b, "w", 2, NE_A, CIT_TYPE_F32, 64);
}
static void ti_unknown_type(struct buf *b) { tensor_info(b, "w", 2, NE_A, 99, 0); }
static void ti_hole_type(struct buf *b) { tensor_info(b, "w", 2, NE_A, 4, 0); }
static void ti_ndims0(struct buf *b) { tensor_info(b, "w", 0, NE_A, CIT_TYPE_F32, 0); }
static void ti_ndims5(struct buf *b)
{
    static const uint64_t ne[5] = {1, 1, 1, 1, 1};
    tensor_info(b, "w", 5, ne, CIT_TYPE_F32, 0);
}
static void ti_ne_zero(struct buf *b)
{
    static const uint64_t ne[2] = {8, 0};
    tensor_info(b, "w", 2, ne, CIT_TYPE_F32, 0);
}
static void ti_overflow_u64(struct buf *b)
{
    static const uint64_t ne[2] = {1ull << 32, 1ull << 32};
    tensor_info(b, "w", 2, ne, CIT_TYPE_F32, 0);
}
static void ti_overflow_i64(struct buf *b)
{
    static const uint64_t ne[3] = {2, 1ull << 31, 1ull << 31};
    tensor_info(b, "w", 3, ne, CIT_TYPE_F32, 0);
}
static void ti_bytes_overflow(struct buf *b)
{
    static const uint64_t ne[1] = {1ull << 62}; /* fine as a count, * 4 bytes overflows */
    tensor_info(b, "w", 1, ne, CIT_TYPE_F32, 0);
}
static void ti_block(struct buf *b)
{
    static const uint64_t ne[2] = {33, 2};
    tensor_info(b, "blk.0.attn_q.weight", 2, ne, CIT_TYPE_Q8_0, 0);
}
static void ti_past_eof(struct buf *b)
{
    tensor_info(b, "a", 2, NE_A, CIT_TYPE_F32, 0);
    tensor_info(b, "blk.0.attn_q.weight", 2, NE_A, CIT_TYPE_F32, 64);
}
static void ti_huge_offset(struct buf *b) { tensor_info(b, "w", 2, NE_A, CIT_TYPE_F32, UINT64_MAX - 31); }
static void ti_misaligned(struct buf *b) { tensor_info(b, "w", 2, NE_A, CIT_TYPE_F32, 4); }
static void ti_overlap(struct buf *b)
{
    tensor_info(b, "first", 2, NE_A, CIT_TYPE_F32, 32); /* [32, 96) */
    tensor_info(b, "second", 2, NE_A, CIT_TYPE_F32, 0); /* [0, 64) */
}
static void ti_empty_name(struct buf *b) { tensor_info(b, "", 2, NE_A, CIT_TYPE_F32, 0); }
static void ti_long_name(struct buf *b)
{
    char name[1100];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    tensor_info(b, name, 2, NE_A, CIT_TYPE_F32, 0);
}

static void test_duplicate_tensor(void **state)
{
    (void)state;
    struct buf b = tensors_file(2, ti_dup, 128);
    expect_fail(&b, CIT_ERR_FORMAT, "duplicate tensor name", "'w'", "offset 24", NULL);
}

static void test_unknown_tensor_type(void **state)
{
    (void)state;
    struct buf b = tensors_file(1, ti_unknown_type, 64);
    expect_fail(&b, CIT_ERR_UNSUPPORTED, "'w'", "type id 99", "offset 53", NULL);
    b = tensors_file(1, ti_hole_type, 64);
    expect_fail(&b, CIT_ERR_UNSUPPORTED, "type id 4", NULL);
}

static void test_n_dims(void **state)
{
    (void)state;
    struct buf b = tensors_file(1, ti_ndims0, 64);
    expect_fail(&b, CIT_ERR_FORMAT, "'w'", "n_dims 0", "offset 33", NULL);
    b = tensors_file(1, ti_ndims5, 64);
    expect_fail(&b, CIT_ERR_FORMAT, "'w'", "n_dims 5", "offset 33", NULL);
}

static void test_dims(void **state)
{
    (void)state;
    struct buf b = tensors_file(1, ti_ne_zero, 64);
    expect_fail(&b, CIT_ERR_FORMAT, "ne[1]", "is 0", "offset 45", NULL);
    b = tensors_file(1, ti_overflow_u64, 64);
    expect_fail(&b, CIT_ERR_FORMAT, "overflows", "ne[1]", NULL);
    b = tensors_file(1, ti_overflow_i64, 64);
    expect_fail(&b, CIT_ERR_FORMAT, "overflows int64", "ne[2]", NULL);
    b = tensors_file(1, ti_bytes_overflow, 64);
    expect_fail(&b, CIT_ERR_FORMAT, "data size", "overflows", NULL);
    b = tensors_file(1, ti_block, 128);
    expect_fail(&b, CIT_ERR_FORMAT, "'blk.0.attn_q.weight'", "ne[0] = 33", "Q8_0 block size 32", NULL);
}

static void test_tensor_data_past_eof(void **state)
{
    (void)state;
    struct buf b = tensors_file(2, ti_past_eof, 100);
    /* header 24 + infos 41 + 59 = 124 -> data at 128, file 228; tensor 2 is [192, +64) */
    expect_fail(&b, CIT_ERR_FORMAT, "tensor 'blk.0.attn_q.weight' (tensor info at offset 65)", "data [offset 192, +64)",
                "past end of file (size 228)", NULL);
    b = tensors_file(1, ti_huge_offset, 64);
    expect_fail(&b, CIT_ERR_FORMAT, "'w'", "overflows", NULL);
}

static void test_misaligned_offset(void **state)
{
    (void)state;
    struct buf b = tensors_file(1, ti_misaligned, 128);
    expect_fail(&b, CIT_ERR_FORMAT, "'w'", "data offset 4", "offset 57", "alignment 32", NULL);
}

static void test_overlapping_tensors(void **state)
{
    (void)state;
    struct buf b = tensors_file(2, ti_overlap, 128);
    expect_fail(&b, CIT_ERR_FORMAT, "overlaps", "'first'", "'second'", NULL);
}

static void test_tensor_names(void **state)
{
    (void)state;
    struct buf b = tensors_file(1, ti_empty_name, 64);
    expect_fail(&b, CIT_ERR_FORMAT, "tensor name", "empty", "offset 24", NULL);
    b = tensors_file(1, ti_long_name, 64);
    expect_fail(&b, CIT_ERR_LIMIT, "tensor name", "limit 1024", NULL);
}

/* ---- getters ---- */

static void test_getters(void **state)
{
    (void)state;
    struct buf b = valid_file();
    void *copy;
    struct cit_gguf *g = expect_ok(&b, &copy);
    char err[256];
    uint64_t u;
    int64_t i;
    float f;
    bool flag;
    struct cit_gguf_str s;

    assert_int_equal(cit_gguf_get_uint(g, "llama.embedding_length", &u, err, sizeof err), CIT_OK);
    assert_int_equal(u, 64);
    assert_int_equal(cit_gguf_get_int(g, "llama.embedding_length", &i, err, sizeof err), CIT_OK);
    assert_int_equal(i, 64);
    assert_int_equal(cit_gguf_get_int(g, "neg", &i, err, sizeof err), CIT_OK);
    assert_int_equal(i, -5);
    assert_int_equal(cit_gguf_get_uint(g, "neg", &u, err, sizeof err), CIT_ERR_TYPE);
    assert_non_null(strstr(err, "'neg'"));
    assert_non_null(strstr(err, "int32"));
    assert_non_null(strstr(err, "-5"));
    assert_int_equal(cit_gguf_get_uint(g, "big", &u, err, sizeof err), CIT_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(cit_gguf_get_int(g, "big", &i, err, sizeof err), CIT_ERR_TYPE);
    assert_non_null(strstr(err, "uint64"));
    assert_int_equal(cit_gguf_get_f32(g, "eps", &f, err, sizeof err), CIT_OK);
    assert_true(f == 1e-5f);
    assert_int_equal(cit_gguf_get_f32(g, "llama.embedding_length", &f, err, sizeof err), CIT_ERR_TYPE);
    assert_non_null(strstr(err, "'llama.embedding_length' has type uint32, wanted float32"));
    assert_int_equal(cit_gguf_get_bool(g, "flag", &flag, err, sizeof err), CIT_OK);
    assert_true(flag);
    assert_int_equal(cit_gguf_get_bool(g, "neg", &flag, err, sizeof err), CIT_ERR_TYPE);
    assert_int_equal(cit_gguf_get_uint(g, "flag", &u, err, sizeof err), CIT_ERR_TYPE);
    assert_non_null(strstr(err, "has type bool, wanted unsigned integer"));
    assert_int_equal(cit_gguf_get_str(g, "general.architecture", &s, err, sizeof err), CIT_OK);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "llama", 5);
    assert_int_equal(cit_gguf_get_str(g, "tokens", &s, err, sizeof err), CIT_ERR_TYPE);
    assert_non_null(strstr(err, "'tokens' has type array of string, wanted string"));
    assert_int_equal(cit_gguf_get_uint(g, "general.architecture", &u, err, sizeof err), CIT_ERR_TYPE);
    assert_non_null(strstr(err, "has type string"));
    assert_int_equal(cit_gguf_get_uint(g, "missing", &u, err, sizeof err), CIT_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "'missing'"));
    assert_int_equal(cit_gguf_get_str(g, "missing", &s, NULL, 0), CIT_ERR_NOT_FOUND);

    enum cit_gguf_type et;
    uint64_t count;
    const void *data;
    assert_int_equal(cit_gguf_get_arr(g, "ids", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_int_equal(et, CIT_GGUF_INT32);
    assert_int_equal(count, 5);
    int32_t v;
    memcpy(&v, (const uint8_t *)data + 4 * 4, 4);
    assert_int_equal(v, 2);
    assert_int_equal(cit_gguf_get_arr(g, "tokens", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_int_equal(et, CIT_GGUF_STRING);
    assert_int_equal(count, 4);
    assert_null(data);
    assert_int_equal(cit_gguf_get_arr(g, "neg", &et, &count, &data, err, sizeof err), CIT_ERR_TYPE);
    assert_non_null(strstr(err, "wanted array"));

    assert_int_equal(cit_gguf_arr_str(g, "tokens", 0, &s, err, sizeof err), CIT_OK);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "<unk>", 5);
    assert_int_equal(cit_gguf_arr_str(g, "tokens", 2, &s, err, sizeof err), CIT_OK);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "a\0b", 3);
    assert_int_equal(cit_gguf_arr_str(g, "tokens", 4, &s, err, sizeof err), CIT_ERR_RANGE);
    assert_non_null(strstr(err, "index 4"));
    assert_int_equal(cit_gguf_arr_str(g, "ids", 0, &s, err, sizeof err), CIT_ERR_TYPE);
    assert_non_null(strstr(err, "'ids' has type array of int32, wanted array of string"));
    assert_int_equal(cit_gguf_arr_str(g, "nope", 0, &s, err, sizeof err), CIT_ERR_NOT_FOUND);
    cit_gguf_free(g);
    free(copy);
    free(b.p);
}

static void test_type_helpers(void **state)
{
    (void)state;
    assert_int_equal(cit_gguf_type_size(CIT_GGUF_UINT8), 1);
    assert_int_equal(cit_gguf_type_size(CIT_GGUF_INT16), 2);
    assert_int_equal(cit_gguf_type_size(CIT_GGUF_FLOAT32), 4);
    assert_int_equal(cit_gguf_type_size(CIT_GGUF_FLOAT64), 8);
    assert_int_equal(cit_gguf_type_size(CIT_GGUF_STRING), 0);
    assert_int_equal(cit_gguf_type_size(CIT_GGUF_ARRAY), 0);
    assert_string_equal(cit_gguf_type_name(CIT_GGUF_BOOL), "bool");
    assert_string_equal(cit_gguf_type_name((enum cit_gguf_type)77), "unknown");
}

static void format_kv(const struct cit_gguf *g, const char *key, char *buf, size_t len, size_t max_items)
{
    int64_t i = cit_gguf_find_key(g, key);
    assert_true(i >= 0);
    cit_gguf_kv_format(g, (size_t)i, buf, len, max_items);
}

static void test_format(void **state)
{
    (void)state;
    struct buf b = valid_file();
    void *copy;
    struct cit_gguf *g = expect_ok(&b, &copy);
    char buf[256];
    format_kv(g, "general.architecture", buf, sizeof buf, 4);
    assert_string_equal(buf, "\"llama\"");
    format_kv(g, "llama.embedding_length", buf, sizeof buf, 4);
    assert_string_equal(buf, "64");
    format_kv(g, "neg", buf, sizeof buf, 4);
    assert_string_equal(buf, "-5");
    format_kv(g, "big", buf, sizeof buf, 4);
    assert_string_equal(buf, "18446744073709551615");
    format_kv(g, "eps", buf, sizeof buf, 4);
    assert_string_equal(buf, "1e-05");
    format_kv(g, "flag", buf, sizeof buf, 4);
    assert_string_equal(buf, "true");
    format_kv(g, "ids", buf, sizeof buf, 3);
    assert_string_equal(buf, "[int32 x 5] -2, -1, 0, ...");
    format_kv(g, "ids", buf, sizeof buf, 5);
    assert_string_equal(buf, "[int32 x 5] -2, -1, 0, 1, 2");
    format_kv(g, "ids", buf, sizeof buf, 0);
    assert_string_equal(buf, "[int32 x 5] ...");
    format_kv(g, "tokens", buf, sizeof buf, 10);
    assert_string_equal(buf, "[string x 4] \"<unk>\", \"he said \\\"hi\\\"\\n\", \"a\\x00b\", \"\xc3\xa9\\xff\"");

    /* truncation: always NUL-terminated, ends with "...", never splits a UTF-8 character */
    format_kv(g, "tokens", buf, 16, 10);
    assert_string_equal(buf, "[string x 4]...");
    for (size_t len = 1; len < 80; len++) {
        char small[80];
        memset(small, 'Z', sizeof small);
        format_kv(g, "tokens", small, len, 10);
        assert_true(strlen(small) < len);
        assert_int_equal(small[len], (int)'Z');
    }
    char tiny[4];
    format_kv(g, "general.architecture", tiny, sizeof tiny, 1);
    assert_string_equal(tiny, "...");
    cit_gguf_kv_format(g, 99, buf, sizeof buf, 4);
    assert_string_equal(buf, "");
    cit_gguf_free(g);
    free(copy);
    free(b.p);
}

/* ---- real files ---- */

static void test_stories260k(void **state)
{
    (void)state;
    struct cit_gguf *g = NULL;
    char err[512];
    const char *path = test_shared_path("models/stories260K.gguf");
    enum cit_status st = cit_gguf_open(path, &g, err, sizeof err);
    if (st)
        fail_msg("%s: %s", path, err);
    struct cit_gguf_str s;
    assert_int_equal(cit_gguf_get_str(g, "general.architecture", &s, err, sizeof err), CIT_OK);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "llama", 5);
    uint64_t u;
    assert_int_equal(cit_gguf_get_uint(g, "llama.embedding_length", &u, err, sizeof err), CIT_OK);
    assert_int_equal(u, 64);
    assert_int_equal(cit_gguf_get_uint(g, "llama.block_count", &u, err, sizeof err), CIT_OK);
    assert_int_equal(u, 5);
    assert_int_equal(cit_gguf_get_str(g, "tokenizer.ggml.model", &s, err, sizeof err), CIT_OK);
    assert_memory_equal(s.ptr, "llama", 5);
    enum cit_gguf_type et;
    uint64_t count;
    const void *data;
    assert_int_equal(cit_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_int_equal(et, CIT_GGUF_STRING);
    assert_int_equal(count, 512);
    assert_int_equal(cit_gguf_arr_str(g, "tokenizer.ggml.tokens", 1, &s, err, sizeof err), CIT_OK);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "<s>", 3);

    const struct cit_gguf_tensor *t = cit_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 512);
    assert_int_equal(t->type, CIT_TYPE_F32);
    assert_int_equal(t->nbytes, 64 * 512 * 4);
    uint64_t size = cit_gguf_file_size(g), doff = cit_gguf_data_offset(g);
    const uint8_t *base = (const uint8_t *)t->data - doff - t->offset;
    for (size_t i = 0; i < cit_gguf_n_tensors(g); i++) {
        const struct cit_gguf_tensor *ti = cit_gguf_tensor_at(g, i);
        const uint8_t *p = ti->data;
        assert_true(p >= base + doff);
        assert_true(p + ti->nbytes <= base + size);
        assert_int_equal((uint64_t)(p - base) % cit_gguf_alignment(g), 0);
        assert_ptr_equal(cit_gguf_find_tensor(g, ti->name), ti);
    }
    cit_gguf_free(g);
}

/* A file of 2 MiB or more is mapped at a 2 MiB boundary (so the kernel can
 * use 2 MiB pages for it), and cit_gguf_map_pages accounts for its pages:
 * every byte read is resident; a memory buffer has no mapping to report. */
static void test_map_pages(void **state)
{
    (void)state;
    struct cit_gguf *g = NULL;
    char err[512];
    const char *path = test_shared_path("models/micro-llama-f32.gguf");
    if (cit_gguf_open(path, &g, err, sizeof err))
        fail_msg("%s: %s", path, err);
    uint64_t size = cit_gguf_file_size(g);
    assert_true(size >= ((uint64_t)2 << 20));
    const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, 0);
    const uint8_t *base = (const uint8_t *)t->data - cit_gguf_data_offset(g) - t->offset;
    assert_int_equal((uintptr_t)base % ((uintptr_t)2 << 20), 0);
    volatile uint8_t sink = 0;
    long pg = sysconf(_SC_PAGESIZE);
    for (uint64_t off = 0; off < size; off += (uint64_t)pg)
        sink ^= base[off];
    (void)sink;
    uint64_t resident = 0, huge = 0;
    assert_true(cit_gguf_map_pages(g, &resident, &huge));
    assert_int_equal(resident, (size + (uint64_t)pg - 1) / (uint64_t)pg * (uint64_t)pg);
    assert_true(huge <= resident);
    assert_int_equal(huge % ((uint64_t)2 << 20), 0);
    cit_gguf_free(g);

    size_t len;
    char *file = test_read_file(path, &len);
    assert_non_null(file);
    assert_int_equal(cit_gguf_open_memory(file, len, &g, err, sizeof err), CIT_OK);
    assert_false(cit_gguf_map_pages(g, &resident, &huge));
    assert_false(cit_gguf_map_pages(NULL, &resident, &huge));
    cit_gguf_free(g);
    free(file);
}

/* Every prefix of the header, and a sample of prefixes in the data section,
 * must be rejected cleanly (exact-size heap copies, so ASan sees over-reads). */
static void test_truncations(void **state)
{
    (void)state;
    size_t len;
    char *file = test_read_file(test_shared_path("models/stories260K.gguf"), &len);
    assert_non_null(file);
    struct cit_gguf *g = NULL;
    char err[512];
    assert_int_equal(cit_gguf_open_memory(file, len, &g, err, sizeof err), CIT_OK);
    uint64_t doff = cit_gguf_data_offset(g), end = 0;
    for (size_t i = 0; i < cit_gguf_n_tensors(g); i++) {
        const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, i);
        if (doff + t->offset + t->nbytes > end)
            end = doff + t->offset + t->nbytes;
    }
    cit_gguf_free(g);
    assert_true(doff < len && end <= len);

    size_t n_checked = 0;
    for (uint64_t cut = 0; cut < end; cut += cut <= doff ? 1 : 997) {
        void *copy;
        g = (struct cit_gguf *)0x1;
        err[0] = '\0';
        enum cit_status st = open_copy(file, (size_t)cut, &g, err, sizeof err, &copy);
        if (st == CIT_OK)
            fail_msg("truncation at %llu of %zu bytes opened", (unsigned long long)cut, len);
        assert_int_equal(st, CIT_ERR_FORMAT);
        assert_null(g);
        assert_true(strncmp(err, "gguf: ", 6) == 0 && (strstr(err, "past end of file") || strstr(err, "impossible")));
        free(copy);
        n_checked++;
    }
    print_message("truncations checked: %zu (data section at %llu)\n", n_checked, (unsigned long long)doff);
    free(file);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void open_all_in(const char *dir, size_t *n_opened)
{
    const char *dpath = test_shared_path(dir);
    DIR *d = opendir(dpath);
    if (!d)
        fail_msg("cannot list %s", dpath);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".gguf") != 0)
            continue;
        char rel[512];
        snprintf(rel, sizeof rel, "%s/%s", dir, e->d_name);
        struct cit_gguf *g = NULL;
        char err[512];
        double t0 = now_ms();
        enum cit_status st = cit_gguf_open(test_shared_path(rel), &g, err, sizeof err);
        double ms = now_ms() - t0;
        if (st)
            fail_msg("%s: %s", rel, err);
        /* every metadata value renders */
        char buf[512];
        for (size_t i = 0; i < cit_gguf_n_kv(g); i++)
            cit_gguf_kv_format(g, i, buf, sizeof buf, 8);
        uint64_t count = 0;
        enum cit_gguf_type et;
        const void *data;
        if (cit_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &data, NULL, 0) == CIT_OK && et == CIT_GGUF_STRING) {
            struct cit_gguf_str s;
            for (uint64_t k = 0; k < count; k++)
                assert_int_equal(cit_gguf_arr_str(g, "tokenizer.ggml.tokens", k, &s, NULL, 0), CIT_OK);
        }
        print_message("%-40s v%u %4zu kv %4zu tensors %7llu tokens  open %.2f ms\n", rel, cit_gguf_version(g), cit_gguf_n_kv(g),
                      cit_gguf_n_tensors(g), (unsigned long long)count, ms);
        /* generous even under sanitizers: the real cost is a few ms */
        assert_true(ms < 500.0);
        cit_gguf_free(g);
        (*n_opened)++;
    }
    closedir(d);
}

static void test_open_all_shared(void **state)
{
    (void)state;
    size_t n = 0;
    open_all_in("models", &n);
    open_all_in("vocab", &n);
    assert_true(n >= 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_alignment_honoured),
        cmocka_unit_test(test_empty_file_ok),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_absurd_tensor_count),
        cmocka_unit_test(test_absurd_kv_count),
        cmocka_unit_test(test_string_past_eof),
        cmocka_unit_test(test_array_past_eof),
        cmocka_unit_test(test_absurd_array_count),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_empty_key),
        cmocka_unit_test(test_key_with_nul),
        cmocka_unit_test(test_unknown_value_type),
        cmocka_unit_test(test_bool_value),
        cmocka_unit_test(test_nested_array),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_map_pages),
        cmocka_unit_test(test_duplicate_tensor),
        cmocka_unit_test(test_unknown_tensor_type),
        cmocka_unit_test(test_n_dims),
        cmocka_unit_test(test_dims),
        cmocka_unit_test(test_tensor_data_past_eof),
        cmocka_unit_test(test_misaligned_offset),
        cmocka_unit_test(test_overlapping_tensors),
        cmocka_unit_test(test_tensor_names),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_type_helpers),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_open_all_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
