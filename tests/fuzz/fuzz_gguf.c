/* fuzz_gguf.c: libFuzzer harness for the GGUF reader (src/gguf).
 *
 * Any input must either be rejected with a "gguf: ..." message or open into
 * a reader whose every accessor stays inside the input: we walk all keys,
 * render every value, call each typed getter on each key, read every string
 * element and touch the first and last byte of every tensor, so ASan flags
 * any pointer that escapes the buffer. Invariant violations abort.
 *
 * Build: CC=clang cmake -S . -B build-fuzz -DCITADEL_FUZZ=ON && cmake --build build-fuzz --target fuzz_gguf
 * Run:   ./build-fuzz/fuzz_gguf -max_total_time=60 CORPUS_DIR */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "citadel/gguf.h"
#include "citadel/tensor.h"

#define CHECK(c)                                                                                                           \
    do {                                                                                                                   \
        if (!(c))                                                                                                          \
            abort();                                                                                                       \
    } while (0)

static const uint8_t *lo, *hi; /* the input: every pointer handed out lies in [lo, hi) */

static void check_span(const void *p, uint64_t n)
{
    const uint8_t *b = p;
    CHECK(n == 0 || (b >= lo && b <= hi && n <= (uint64_t)(hi - b)));
}

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n)
{
    check_span(p, n);
    if (n) {
        sink ^= ((const uint8_t *)p)[0];
        sink ^= ((const uint8_t *)p)[n - 1];
    }
}

static void exercise_kv(const struct cit_gguf *g, size_t i)
{
    const char *key = cit_gguf_kv_key(g, i);
    CHECK(key != NULL && key[0] != '\0');
    CHECK(cit_gguf_find_key(g, key) == (int64_t)i);
    enum cit_gguf_type t = cit_gguf_kv_type(g, i);
    CHECK((unsigned)t <= CIT_GGUF_FLOAT64);

    char buf[96], err[256];
    size_t sizes[] = {1, 2, 4, 17, sizeof buf};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        memset(buf, 'Z', sizeof buf);
        cit_gguf_kv_format(g, i, buf, sizes[k], 6);
        CHECK(strlen(buf) < sizes[k]);
    }

    uint64_t u;
    int64_t s;
    float f;
    bool b;
    struct cit_gguf_str str;
    enum cit_status st;
    st = cit_gguf_get_uint(g, key, &u, err, sizeof err);
    CHECK(st == CIT_OK || st == CIT_ERR_TYPE);
    st = cit_gguf_get_int(g, key, &s, err, sizeof err);
    CHECK(st == CIT_OK || st == CIT_ERR_TYPE);
    st = cit_gguf_get_f32(g, key, &f, err, sizeof err);
    CHECK((st == CIT_OK) == (t == CIT_GGUF_FLOAT32 || t == CIT_GGUF_FLOAT64));
    st = cit_gguf_get_bool(g, key, &b, err, sizeof err);
    CHECK((st == CIT_OK) == (t == CIT_GGUF_BOOL));
    st = cit_gguf_get_str(g, key, &str, err, sizeof err);
    CHECK((st == CIT_OK) == (t == CIT_GGUF_STRING));
    if (st == CIT_OK)
        touch(str.ptr, str.len);

    enum cit_gguf_type et;
    uint64_t count;
    const void *data;
    st = cit_gguf_get_arr(g, key, &et, &count, &data, err, sizeof err);
    CHECK((st == CIT_OK) == (t == CIT_GGUF_ARRAY));
    if (st != CIT_OK)
        return;
    CHECK(et != CIT_GGUF_ARRAY && (unsigned)et <= CIT_GGUF_FLOAT64);
    if (et == CIT_GGUF_STRING) {
        CHECK(data == NULL);
        for (uint64_t j = 0; j < count && j < 4096; j++) {
            CHECK(cit_gguf_arr_str(g, key, j, &str, err, sizeof err) == CIT_OK);
            touch(str.ptr, str.len);
        }
        CHECK(cit_gguf_arr_str(g, key, count, &str, err, sizeof err) == CIT_ERR_RANGE);
    } else {
        touch(data, count * cit_gguf_type_size(et));
        CHECK(cit_gguf_arr_str(g, key, 0, &str, err, sizeof err) == CIT_ERR_TYPE);
    }
}

static void exercise_tensor(const struct cit_gguf *g, size_t i)
{
    const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, i);
    CHECK(t != NULL && t->name[0] != '\0');
    CHECK(cit_gguf_find_tensor(g, t->name) == t);
    CHECK(t->n_dims >= 1 && t->n_dims <= CIT_GGUF_MAX_DIMS);
    CHECK(cit_type_traits(t->type) != NULL);
    uint64_t n = 1;
    for (int d = 0; d < CIT_GGUF_MAX_DIMS; d++) {
        CHECK(t->ne[d] >= 1);
        CHECK(!__builtin_mul_overflow(n, t->ne[d], &n) && n <= (uint64_t)INT64_MAX);
    }
    CHECK(t->offset % cit_gguf_alignment(g) == 0);
    CHECK((const uint8_t *)t->data == lo + cit_gguf_data_offset(g) + t->offset);
    touch(t->data, t->nbytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cit_gguf *g = NULL;
    char err[512];
    err[0] = '\0';
    lo = data;
    hi = data + size;
    enum cit_status st = cit_gguf_open_memory(data, size, &g, err, sizeof err);
    if (st != CIT_OK) {
        CHECK(g == NULL);
        CHECK(strncmp(err, "gguf: ", 6) == 0);
        CHECK(strlen(err) < sizeof err);
        return 0;
    }
    CHECK(g != NULL);
    CHECK(cit_gguf_version(g) == 2 || cit_gguf_version(g) == 3);
    CHECK(cit_gguf_file_size(g) == size);
    uint32_t a = cit_gguf_alignment(g);
    CHECK(a != 0 && (a & (a - 1)) == 0);
    CHECK(cit_gguf_data_offset(g) % a == 0);
    for (size_t i = 0; i < cit_gguf_n_kv(g); i++)
        exercise_kv(g, i);
    CHECK(cit_gguf_kv_key(g, cit_gguf_n_kv(g)) == NULL);
    for (size_t i = 0; i < cit_gguf_n_tensors(g); i++)
        exercise_tensor(g, i);
    CHECK(cit_gguf_tensor_at(g, cit_gguf_n_tensors(g)) == NULL);
    cit_gguf_free(g);
    return 0;
}
