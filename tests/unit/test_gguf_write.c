/* test_gguf_write.c: the GGUF writer, checked by reading its files back with
 * our bounds-checked reader (an independent parser of the format): every
 * key, type and value, every tensor's name, type, dims, alignment and bytes.
 * Failure paths must leave nothing behind (no target, no temporary file)
 * and leave an existing target untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "citadel/gguf.h"
#include "citadel/gguf_write.h"
#include "citadel/tensor.h"
#include "support.h"

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", test_tmpdir(), name);
    return buf;
}

/* Files in the temp dir (to catch left-over temporaries). */
static int dir_entries(void)
{
    DIR *d = opendir(test_tmpdir());
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void clear_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/*", test_tmpdir());
    assert_int_equal(system(cmd), 0);
}

struct tspec {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
};

static const struct tspec tensors[] = {
    {"a.f32", CIT_TYPE_F32, 2, {7, 3, 1, 1}},
    {"b.q4_0", CIT_TYPE_Q4_0, 2, {64, 2, 1, 1}},
    {"c.q6_k", CIT_TYPE_Q6_K, 1, {256, 1, 1, 1}},
    {"d.f16", CIT_TYPE_F16, 3, {5, 1, 3, 1}},
    {"e.q8_0", CIT_TYPE_Q8_0, 4, {32, 1, 1, 2}},
};
#define N_T (sizeof tensors / sizeof tensors[0])

/* Deterministic bytes for tensor i. */
static uint8_t *tensor_bytes(size_t i, uint64_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (uint64_t j = 0; j < n; j++)
        p[j] = (uint8_t)(j * 31 + i * 7 + 1);
    return p;
}

static void fill_metadata(struct cit_gguf_writer *w)
{
    assert_int_equal(cit_gguf_writer_set_u8(w, "t.u8", 200), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_i8(w, "t.i8", -100), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_u16(w, "t.u16", 60000), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_i16(w, "t.i16", -30000), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_u32(w, "t.u32", 4000000000u), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_i32(w, "t.i32", -2000000000), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_u64(w, "t.u64", 0xfedcba9876543210u), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_i64(w, "t.i64", INT64_MIN + 5), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_f32(w, "t.f32", 1.5f), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_f64(w, "t.f64", -2.25), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_bool(w, "t.bool", true), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_str(w, "t.str", "hello"), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_strn(w, "t.strnul", "a\0b", 3), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_str(w, "t.empty", ""), CIT_OK);
    int32_t ia[5] = {1, -2, 3, -4, 5};
    assert_int_equal(cit_gguf_writer_set_arr(w, "t.arr_i32", CIT_GGUF_INT32, ia, 5), CIT_OK);
    float fa[3] = {0.5f, -1.0f, 3.25f};
    assert_int_equal(cit_gguf_writer_set_arr(w, "t.arr_f32", CIT_GGUF_FLOAT32, fa, 3), CIT_OK);
    uint8_t ba[3] = {1, 0, 1};
    assert_int_equal(cit_gguf_writer_set_arr(w, "t.arr_bool", CIT_GGUF_BOOL, ba, 3), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_arr(w, "t.arr_empty", CIT_GGUF_UINT64, NULL, 0), CIT_OK);
    struct cit_gguf_str sa[3] = {{"x", 1}, {"", 0}, {"yz\0w", 4}};
    assert_int_equal(cit_gguf_writer_set_arr_str(w, "t.arr_str", sa, 3), CIT_OK);
}

static void check_metadata(const struct cit_gguf *g)
{
    char err[256];
    uint64_t u;
    int64_t i;
    float f;
    bool b;
    struct cit_gguf_str s;
    static const struct {
        const char *key;
        enum cit_gguf_type type;
    } order[] = {{"t.u8", CIT_GGUF_UINT8},      {"t.i8", CIT_GGUF_INT8},          {"t.u16", CIT_GGUF_UINT16},
                 {"t.i16", CIT_GGUF_INT16},     {"t.u32", CIT_GGUF_UINT32},       {"t.i32", CIT_GGUF_INT32},
                 {"t.u64", CIT_GGUF_UINT64},    {"t.i64", CIT_GGUF_INT64},        {"t.f32", CIT_GGUF_FLOAT32},
                 {"t.f64", CIT_GGUF_FLOAT64},   {"t.bool", CIT_GGUF_BOOL},        {"t.str", CIT_GGUF_STRING},
                 {"t.strnul", CIT_GGUF_STRING}, {"t.empty", CIT_GGUF_STRING},     {"t.arr_i32", CIT_GGUF_ARRAY},
                 {"t.arr_f32", CIT_GGUF_ARRAY}, {"t.arr_bool", CIT_GGUF_ARRAY},   {"t.arr_empty", CIT_GGUF_ARRAY},
                 {"t.arr_str", CIT_GGUF_ARRAY}};
    assert_true(cit_gguf_n_kv(g) >= sizeof order / sizeof order[0]);
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        assert_string_equal(cit_gguf_kv_key(g, k), order[k].key);
        assert_int_equal(cit_gguf_kv_type(g, k), order[k].type);
    }
    assert_int_equal(cit_gguf_get_uint(g, "t.u8", &u, err, sizeof err), CIT_OK);
    assert_int_equal(u, 200);
    assert_int_equal(cit_gguf_get_int(g, "t.i8", &i, err, sizeof err), CIT_OK);
    assert_int_equal(i, -100);
    assert_int_equal(cit_gguf_get_uint(g, "t.u16", &u, err, sizeof err), CIT_OK);
    assert_int_equal(u, 60000);
    assert_int_equal(cit_gguf_get_int(g, "t.i16", &i, err, sizeof err), CIT_OK);
    assert_int_equal(i, -30000);
    assert_int_equal(cit_gguf_get_uint(g, "t.u32", &u, err, sizeof err), CIT_OK);
    assert_int_equal(u, 4000000000u);
    assert_int_equal(cit_gguf_get_int(g, "t.i32", &i, err, sizeof err), CIT_OK);
    assert_int_equal(i, -2000000000);
    assert_int_equal(cit_gguf_get_uint(g, "t.u64", &u, err, sizeof err), CIT_OK);
    assert_true(u == 0xfedcba9876543210u);
    assert_int_equal(cit_gguf_get_int(g, "t.i64", &i, err, sizeof err), CIT_OK);
    assert_true(i == INT64_MIN + 5);
    assert_int_equal(cit_gguf_get_f32(g, "t.f32", &f, err, sizeof err), CIT_OK);
    assert_true(f == 1.5f);
    assert_int_equal(cit_gguf_get_f32(g, "t.f64", &f, err, sizeof err), CIT_OK);
    assert_true(f == -2.25f);
    assert_int_equal(cit_gguf_get_bool(g, "t.bool", &b, err, sizeof err), CIT_OK);
    assert_true(b);
    assert_int_equal(cit_gguf_get_str(g, "t.str", &s, err, sizeof err), CIT_OK);
    assert_true(s.len == 5 && memcmp(s.ptr, "hello", 5) == 0);
    assert_int_equal(cit_gguf_get_str(g, "t.strnul", &s, err, sizeof err), CIT_OK);
    assert_true(s.len == 3 && memcmp(s.ptr, "a\0b", 3) == 0);
    assert_int_equal(cit_gguf_get_str(g, "t.empty", &s, err, sizeof err), CIT_OK);
    assert_int_equal(s.len, 0);

    enum cit_gguf_type et;
    uint64_t count;
    const void *data;
    assert_int_equal(cit_gguf_get_arr(g, "t.arr_i32", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_int_equal(et, CIT_GGUF_INT32);
    assert_int_equal(count, 5);
    int32_t ia[5];
    memcpy(ia, data, sizeof ia);
    assert_int_equal(ia[0], 1);
    assert_int_equal(ia[3], -4);
    assert_int_equal(cit_gguf_get_arr(g, "t.arr_f32", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_int_equal(et, CIT_GGUF_FLOAT32);
    float fa[3];
    memcpy(fa, data, sizeof fa);
    assert_true(count == 3 && fa[2] == 3.25f && fa[1] == -1.0f);
    assert_int_equal(cit_gguf_get_arr(g, "t.arr_bool", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_true(et == CIT_GGUF_BOOL && count == 3 && ((const uint8_t *)data)[1] == 0 && ((const uint8_t *)data)[2] == 1);
    assert_int_equal(cit_gguf_get_arr(g, "t.arr_empty", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_true(et == CIT_GGUF_UINT64 && count == 0);
    assert_int_equal(cit_gguf_get_arr(g, "t.arr_str", &et, &count, &data, err, sizeof err), CIT_OK);
    assert_true(et == CIT_GGUF_STRING && count == 3);
    assert_int_equal(cit_gguf_arr_str(g, "t.arr_str", 0, &s, err, sizeof err), CIT_OK);
    assert_true(s.len == 1 && s.ptr[0] == 'x');
    assert_int_equal(cit_gguf_arr_str(g, "t.arr_str", 1, &s, err, sizeof err), CIT_OK);
    assert_int_equal(s.len, 0);
    assert_int_equal(cit_gguf_arr_str(g, "t.arr_str", 2, &s, err, sizeof err), CIT_OK);
    assert_true(s.len == 4 && memcmp(s.ptr, "yz\0w", 4) == 0);
}

static void add_tensors(struct cit_gguf_writer *w)
{
    for (size_t i = 0; i < N_T; i++)
        assert_int_equal(cit_gguf_writer_add_tensor(w, tensors[i].name, tensors[i].type, tensors[i].n_dims, tensors[i].ne),
                         CIT_OK);
}

/* Streams every tensor's bytes in pieces of `piece` bytes across tensors. */
static void write_all(struct cit_gguf_writer *w, size_t piece)
{
    uint64_t total = 0;
    for (size_t i = 0; i < N_T; i++)
        total += cit_gguf_writer_tensor_nbytes(w, i);
    uint8_t *all = malloc(total), *p = all;
    assert_non_null(all);
    for (size_t i = 0; i < N_T; i++) {
        uint64_t n = cit_gguf_writer_tensor_nbytes(w, i);
        uint8_t *b = tensor_bytes(i, n);
        memcpy(p, b, n);
        p += n;
        free(b);
    }
    char err[256];
    for (uint64_t off = 0; off < total; off += piece) {
        size_t k = total - off < piece ? (size_t)(total - off) : piece;
        assert_int_equal(cit_gguf_writer_write(w, all + off, k, err, sizeof err), CIT_OK);
    }
    free(all);
}

static void check_tensors(const struct cit_gguf *g, uint32_t alignment)
{
    assert_int_equal(cit_gguf_n_tensors(g), N_T);
    assert_int_equal(cit_gguf_alignment(g), alignment);
    assert_int_equal(cit_gguf_data_offset(g) % alignment, 0);
    for (size_t i = 0; i < N_T; i++) {
        const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, i);
        assert_string_equal(t->name, tensors[i].name);
        assert_int_equal(t->type, tensors[i].type);
        assert_int_equal(t->n_dims, tensors[i].n_dims);
        assert_memory_equal(t->ne, tensors[i].ne, sizeof t->ne);
        assert_int_equal(t->offset % alignment, 0);
        uint64_t row, n;
        assert_true(cit_type_row_size(t->type, t->ne[0], &row));
        n = row * t->ne[1] * t->ne[2] * t->ne[3];
        assert_int_equal(t->nbytes, n);
        uint8_t *b = tensor_bytes(i, n);
        assert_memory_equal(t->data, b, n);
        free(b);
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    static const size_t pieces[] = {1, 7, 1u << 20};
    for (size_t k = 0; k < 3; k++) {
        struct cit_gguf_writer *w = NULL;
        char err[256];
        assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
        fill_metadata(w);
        add_tensors(w);
        const char *path = tmp_path("rt.gguf");
        assert_int_equal(cit_gguf_writer_begin(w, path, err, sizeof err), CIT_OK);
        write_all(w, pieces[k]);
        assert_int_equal(cit_gguf_writer_finish(w, err, sizeof err), CIT_OK);
        uint64_t size = cit_gguf_writer_file_size(w);
        cit_gguf_writer_free(w);
        struct cit_gguf *g = NULL;
        if (cit_gguf_open(path, &g, err, sizeof err) != CIT_OK)
            fail_msg("reading back: %s", err);
        assert_int_equal(cit_gguf_version(g), 3);
        assert_int_equal(cit_gguf_file_size(g), size);
        check_metadata(g);
        check_tensors(g, 32);
        cit_gguf_free(g);
        assert_int_equal(dir_entries(), 1); /* no temporary left */
    }
    clear_dir();
}

static void test_alignment_and_replace(void **state)
{
    (void)state;
    struct cit_gguf_writer *w = NULL;
    char err[256];
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_str(w, "general.architecture", "llama"), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_u32(w, "general.alignment", 256), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_u32(w, "x.n", 1), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_str(w, "general.architecture", "qwen2"), CIT_OK); /* replaced in place */
    cit_gguf_writer_remove_kv(w, "x.n");
    assert_int_equal(cit_gguf_writer_n_kv(w), 2);
    add_tensors(w);
    const char *path = tmp_path("al.gguf");
    assert_int_equal(cit_gguf_writer_begin(w, path, err, sizeof err), CIT_OK);
    write_all(w, 100);
    assert_int_equal(cit_gguf_writer_finish(w, err, sizeof err), CIT_OK);
    cit_gguf_writer_free(w);
    struct cit_gguf *g = NULL;
    assert_int_equal(cit_gguf_open(path, &g, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_n_kv(g), 2);
    assert_string_equal(cit_gguf_kv_key(g, 0), "general.architecture");
    struct cit_gguf_str s;
    assert_int_equal(cit_gguf_get_str(g, "general.architecture", &s, err, sizeof err), CIT_OK);
    assert_true(s.len == 5 && memcmp(s.ptr, "qwen2", 5) == 0);
    check_tensors(g, 256);
    cit_gguf_free(g);
    clear_dir();
}

/* Every entry of a real file, copied with copy_kv, reads back identically. */
static void test_copy_kv(void **state)
{
    (void)state;
    struct cit_gguf *src = NULL, *g = NULL;
    char err[256];
    assert_int_equal(cit_gguf_open(test_shared_path("models/stories260K.gguf"), &src, err, sizeof err), CIT_OK);
    struct cit_gguf_writer *w = NULL;
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    for (size_t i = 0; i < cit_gguf_n_kv(src); i++)
        assert_int_equal(cit_gguf_writer_copy_kv(w, src, i), CIT_OK);
    const char *path = tmp_path("copy.gguf");
    assert_int_equal(cit_gguf_writer_begin(w, path, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_writer_finish(w, err, sizeof err), CIT_OK);
    cit_gguf_writer_free(w);
    assert_int_equal(cit_gguf_open(path, &g, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_n_kv(g), cit_gguf_n_kv(src));
    static char a[1 << 16], b[1 << 16];
    for (size_t i = 0; i < cit_gguf_n_kv(src); i++) {
        assert_string_equal(cit_gguf_kv_key(g, i), cit_gguf_kv_key(src, i));
        assert_int_equal(cit_gguf_kv_type(g, i), cit_gguf_kv_type(src, i));
        cit_gguf_kv_format(src, i, a, sizeof a, 1u << 20);
        cit_gguf_kv_format(g, i, b, sizeof b, 1u << 20);
        assert_string_equal(a, b);
    }
    /* string arrays element by element */
    enum cit_gguf_type et;
    uint64_t n1, n2;
    const void *d;
    assert_int_equal(cit_gguf_get_arr(src, "tokenizer.ggml.tokens", &et, &n1, &d, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n2, &d, err, sizeof err), CIT_OK);
    assert_int_equal(n1, n2);
    for (uint64_t j = 0; j < n1; j++) {
        struct cit_gguf_str s1, s2;
        assert_int_equal(cit_gguf_arr_str(src, "tokenizer.ggml.tokens", j, &s1, err, sizeof err), CIT_OK);
        assert_int_equal(cit_gguf_arr_str(g, "tokenizer.ggml.tokens", j, &s2, err, sizeof err), CIT_OK);
        assert_true(s1.len == s2.len && memcmp(s1.ptr, s2.ptr, s1.len) == 0);
    }
    cit_gguf_free(g);
    cit_gguf_free(src);
    clear_dir();
}

static void test_failures(void **state)
{
    (void)state;
    char err[512];
    struct cit_gguf_writer *w = NULL;

    /* a folder that does not exist: the error names the path and errno text */
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    add_tensors(w);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/out.gguf", test_tmpdir());
    assert_int_equal(cit_gguf_writer_begin(w, bad, err, sizeof err), CIT_ERR_IO);
    assert_non_null(strstr(err, "no/such/dir/out.gguf"));
    assert_non_null(strstr(err, "No such file"));
    /* sticky: later calls report the same failure */
    assert_int_equal(cit_gguf_writer_write(w, "x", 1, err, sizeof err), CIT_ERR_IO);
    assert_int_equal(cit_gguf_writer_finish(w, err, sizeof err), CIT_ERR_IO);
    cit_gguf_writer_free(w);
    assert_int_equal(dir_entries(), 0);

    /* a target that is a folder: rename fails, the folder stays, no temporary left */
    assert_int_equal(mkdir(tmp_path("adir"), 0755), 0);
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_writer_begin(w, tmp_path("adir"), err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_writer_finish(w, err, sizeof err), CIT_ERR_IO);
    assert_non_null(strstr(err, "adir"));
    cit_gguf_writer_free(w);
    assert_int_equal(dir_entries(), 1);
    rmdir(tmp_path("adir"));

    /* incomplete data: finish refuses, an existing target is untouched */
    const char *path = tmp_path("keep.gguf");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("original", f);
    fclose(f);
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    add_tensors(w);
    assert_int_equal(cit_gguf_writer_begin(w, path, err, sizeof err), CIT_OK);
    assert_int_equal(dir_entries(), 2); /* the target and our temporary */
    assert_int_equal(cit_gguf_writer_write(w, "abc", 3, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_writer_finish(w, err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "a.f32"));
    cit_gguf_writer_free(w);
    assert_int_equal(dir_entries(), 1);
    char *content = test_read_file(path, NULL);
    assert_string_equal(content, "original");
    free(content);

    /* too much data */
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    uint64_t ne[1] = {4};
    assert_int_equal(cit_gguf_writer_add_tensor(w, "t", CIT_TYPE_F32, 1, ne), CIT_OK);
    assert_int_equal(cit_gguf_writer_begin(w, tmp_path("over.gguf"), err, sizeof err), CIT_OK);
    char data[20] = {0};
    assert_int_equal(cit_gguf_writer_write(w, data, 20, err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "past the last tensor"));
    cit_gguf_writer_free(w);
    assert_int_equal(dir_entries(), 1);

    /* bad tables are refused before anything is written */
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    uint64_t q[2] = {100, 2};
    assert_int_equal(cit_gguf_writer_add_tensor(w, "q", CIT_TYPE_Q4_K, 2, q), CIT_ERR_INVALID_ARG);
    assert_non_null(strstr(cit_gguf_writer_error(w), "block size 256"));
    cit_gguf_writer_free(w);
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_writer_add_tensor(w, "t", CIT_TYPE_F32, 1, ne), CIT_OK);
    assert_int_equal(cit_gguf_writer_add_tensor(w, "t", CIT_TYPE_F32, 1, ne), CIT_ERR_INVALID_ARG);
    cit_gguf_writer_free(w);
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    uint64_t huge[2] = {1ull << 40, 1ull << 40};
    assert_int_equal(cit_gguf_writer_add_tensor(w, "h", CIT_TYPE_F32, 2, huge), CIT_ERR_LIMIT);
    cit_gguf_writer_free(w);
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_u32(w, "general.alignment", 48), CIT_OK);
    assert_int_equal(cit_gguf_writer_begin(w, tmp_path("al.gguf"), err, sizeof err), CIT_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "power of two"));
    cit_gguf_writer_free(w);
    assert_int_equal(cit_gguf_writer_new(&w, err, sizeof err), CIT_OK);
    assert_int_equal(cit_gguf_writer_set_u32(w, "", 1), CIT_ERR_INVALID_ARG);
    cit_gguf_writer_free(w);
    assert_int_equal(dir_entries(), 1);
    cit_gguf_writer_free(NULL);
    clear_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_alignment_and_replace),
        cmocka_unit_test(test_copy_kv),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, test_tmpdir_setup, test_tmpdir_teardown);
}
