/* quantize.c: whole-file weight conversion (citadel/quantize.h).
 *
 * The input is mapped by the GGUF reader; each tensor is converted in chunks
 * of rows (dequantize the source row to f32, quantize it to the target type)
 * by the thread pool and streamed to the GGUF writer, so memory stays at one
 * chunk of output whatever the model size. Metadata is copied entry by entry
 * in its original order; general.file_type (and general.quantization_version
 * for quantized presets) describe the result. */
#include "citadel/quantize.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/err.h"
#include "citadel/gguf.h"
#include "citadel/gguf_write.h"
#include "model/rowwrite.h"

#define QUANT_VERSION 2u        /* general.quantization_version of the block layouts we write */

static const struct {
    const char *name;
    enum cit_ftype ft;
} ftypes[] = {
    {"Q8_0", CIT_FTYPE_Q8_0}, {"Q4_0", CIT_FTYPE_Q4_0}, {"Q4_K_M", CIT_FTYPE_Q4_K_M}, {"Q5_K_M", CIT_FTYPE_Q5_K_M},
    {"Q6_K", CIT_FTYPE_Q6_K}, {"F16", CIT_FTYPE_F16},   {"BF16", CIT_FTYPE_BF16},     {"F32", CIT_FTYPE_F32},
};

bool cit_ftype_parse(const char *s, enum cit_ftype *out)
{
    for (size_t i = 0; s && i < sizeof ftypes / sizeof ftypes[0]; i++) {
        if (strcasecmp(s, ftypes[i].name) == 0) {
            *out = ftypes[i].ft;
            return true;
        }
    }
    return false;
}

const char *cit_ftype_name(enum cit_ftype ft)
{
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (ftypes[i].ft == ft)
            return ftypes[i].name;
    return "?";
}

const char *cit_ftype_list(void) { return "Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K, F16, BF16, F32"; }

/* ---- per-tensor type choice ---- */

/* Layer index of "blk.N.<...>", or -1. */
static long layer_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    char *end = NULL;
    long v = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && v >= 0 ? v : -1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The "use more bits" rule: the first and last eighth of the layers, and
 * every third layer in between. */
static bool more_bits(long i, long n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static uint32_t base_type(enum cit_ftype ft)
{
    switch (ft) {
    case CIT_FTYPE_F16: return CIT_TYPE_F16;
    case CIT_FTYPE_BF16: return CIT_TYPE_BF16;
    case CIT_FTYPE_Q4_0: return CIT_TYPE_Q4_0;
    case CIT_FTYPE_Q8_0: return CIT_TYPE_Q8_0;
    case CIT_FTYPE_Q4_K_M: return CIT_TYPE_Q4_K;
    case CIT_FTYPE_Q5_K_M: return CIT_TYPE_Q5_K;
    case CIT_FTYPE_Q6_K: return CIT_TYPE_Q6_K;
    case CIT_FTYPE_F32: break;
    }
    return CIT_TYPE_F32;
}

uint32_t cit_quantize_tensor_type(enum cit_ftype ft, const char *name, uint32_t n_dims, uint64_t ne0,
                                  uint32_t n_layer, bool has_output, uint32_t *wanted, bool *fallback)
{
    uint32_t t = base_type(ft);
    bool is_output = strcmp(name, "output.weight") == 0 || (!has_output && strcmp(name, "token_embd.weight") == 0);
    bool mixture = ft == CIT_FTYPE_Q4_K_M || ft == CIT_FTYPE_Q5_K_M;
    if (n_dims < 2) {
        t = CIT_TYPE_F32;
    } else if (is_output) {
        if (ft == CIT_FTYPE_Q4_0 || mixture)
            t = CIT_TYPE_Q6_K;
    } else if (mixture && (ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight"))) {
        long il = layer_of(name);
        if (il >= 0 && more_bits(il, n_layer))
            t = CIT_TYPE_Q6_K;
    }
    if (wanted)
        *wanted = t;
    if (fallback)
        *fallback = false;
    const struct cit_type_traits *tr = cit_type_traits(t);
    if (ne0 % tr->block_size == 0)
        return t;
    if (fallback)
        *fallback = true;
    /* the K-quants' rows come in 256s, Q4_0/Q8_0's in 32s: the next type
     * that fits and loses no more precision */
    if (tr->block_size == 256 && ne0 % 32 == 0)
        return CIT_TYPE_Q8_0;
    return CIT_TYPE_F16;
}

/* A linear scan: a model has a handful of distinct row lengths. */
bool cit_quantize_first_fallback(uint64_t *seen, size_t *n_seen, uint64_t ne0, uint32_t wanted)
{
    for (size_t k = 0; k < *n_seen; k++)
        if (seen[2 * k] == ne0 && seen[2 * k + 1] == wanted)
            return false;
    if (*n_seen < 16) {
        seen[2 * *n_seen] = ne0;
        seen[2 * *n_seen + 1] = wanted;
        ++*n_seen;
    }
    return true;
}

/* ---- conversion ---- */

/* One row of a tensor converted from the source type to the target type. */
struct convert_src {
    const uint8_t *data; /* the source tensor, rows of src_row_bytes */
    uint64_t src_row_bytes, ne0;
    const struct cit_type_traits *from, *to;
};

static void convert_row(const void *arg, uint64_t row, uint8_t *dst, float *scratch)
{
    const struct convert_src *c = arg;
    c->from->to_float(c->data + row * c->src_row_bytes, scratch, (int64_t)c->ne0);
    c->to->from_float(scratch, dst, (int64_t)c->ne0);
}

/* The block count of the model, from <arch>.block_count or the tensor names. */
static uint32_t model_layers(const struct cit_gguf *g)
{
    struct cit_gguf_str arch;
    char key[128];
    uint64_t v;
    if (cit_gguf_get_str(g, "general.architecture", &arch, NULL, 0) == CIT_OK && arch.len < 64) {
        snprintf(key, sizeof key, "%.*s.block_count", (int)arch.len, arch.ptr);
        if (cit_gguf_get_uint(g, key, &v, NULL, 0) == CIT_OK && v > 0 && v < (1u << 20))
            return (uint32_t)v;
    }
    long n = 0;
    for (size_t i = 0; i < cit_gguf_n_tensors(g); i++) {
        long il = layer_of(cit_gguf_tensor_at(g, i)->name);
        n = il + 1 > n ? il + 1 : n;
    }
    return (uint32_t)(n < (1 << 20) ? n : 0);
}

static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void cit_notef(cit_note_fn note, void *arg, const char *fmt, ...)
{
    if (!note)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    note(arg, msg);
}

/* Converts and writes every tensor in table order. */
static enum cit_status write_tensors(const struct cit_gguf *g, struct cit_gguf_writer *w, const uint32_t *types,
                                     const struct cit_quantize_params *p, uint64_t total, char *err, size_t errlen)
{
    uint64_t max_ne0 = 1;
    for (size_t i = 0; i < cit_gguf_n_tensors(g); i++)
        max_ne0 = cit_gguf_tensor_at(g, i)->ne[0] > max_ne0 ? cit_gguf_tensor_at(g, i)->ne[0] : max_ne0;
    struct cit_row_writer rw;
    enum cit_status st = cit_row_writer_init(&rw, p->n_threads, max_ne0, total, p->progress, p->cb_arg, err, errlen);
    for (size_t i = 0; i < cit_gguf_n_tensors(g) && st == CIT_OK; i++) {
        const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, i);
        uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3]; /* the reader checked the product fits */
        uint64_t src_row = 0, dst_row = 0;
        cit_type_row_size(t->type, t->ne[0], &src_row);
        cit_type_row_size(types[i], t->ne[0], &dst_row);
        struct convert_src c = {t->data, src_row, t->ne[0], cit_type_traits(t->type), cit_type_traits(types[i])};
        st = cit_row_writer_tensor(&rw, w, rows, t->ne[0], dst_row, convert_row, &c, err, errlen);
    }
    cit_row_writer_free(&rw);
    return st;
}

enum cit_status cit_quantize_file(const char *in_path, const char *out_path, const struct cit_quantize_params *p,
                                  struct cit_quantize_stats *stats, char *err, size_t errlen)
{
    memset(stats, 0, sizeof *stats);
    if (!in_path || !out_path || !p)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_quantize_file: NULL argument");
    if (strcmp(in_path, out_path) == 0 || same_file(in_path, out_path))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "output %s is the input file: choose another output path",
                        out_path);
    struct cit_gguf *g = NULL;
    char msg[384];
    enum cit_status st = cit_gguf_open(in_path, &g, msg, sizeof msg);
    if (st)
        return cit_fail(st, err, errlen, "%s: %s", in_path, msg);

    size_t nt = cit_gguf_n_tensors(g);
    uint32_t *types = calloc(nt ? nt : 1, sizeof *types);
    struct cit_gguf_writer *w = NULL;
    if (!types) {
        st = cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nt; i++) {
        const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, i);
        if (t->type != CIT_TYPE_F32 && t->type != CIT_TYPE_F16 && t->type != CIT_TYPE_BF16) {
            const struct cit_type_traits *tr = cit_type_traits(t->type);
            st = cit_fail(CIT_ERR_UNSUPPORTED, err, errlen,
                          "%s is already quantized (tensor %s is %s): quantize from the F32, F16 or BF16 original",
                          in_path, t->name, tr ? tr->name : "?");
            goto done;
        }
    }
    uint32_t n_layer = model_layers(g);
    bool has_output = cit_gguf_find_tensor(g, "output.weight") != NULL;

    if ((st = cit_gguf_writer_new(&w, err, errlen)))
        goto done;
    for (size_t i = 0; i < cit_gguf_n_kv(g); i++)
        cit_gguf_writer_copy_kv(w, g, i);
    cit_gguf_writer_set_u32(w, "general.file_type", (uint32_t)p->ftype);
    if (p->ftype != CIT_FTYPE_F32 && p->ftype != CIT_FTYPE_F16 && p->ftype != CIT_FTYPE_BF16)
        cit_gguf_writer_set_u32(w, "general.quantization_version", QUANT_VERSION);

    uint64_t total = 0, seen[2 * 16];
    size_t n_seen = 0;
    for (size_t i = 0; i < nt; i++) {
        const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, i);
        uint32_t wanted;
        bool fb;
        types[i] = cit_quantize_tensor_type(p->ftype, t->name, t->n_dims, t->ne[0], n_layer, has_output, &wanted, &fb);
        if (fb) {
            stats->n_fallback++;
            if (cit_quantize_first_fallback(seen, &n_seen, t->ne[0], wanted))
                cit_notef(p->note, p->cb_arg, "%s: rows of %" PRIu64 " elements do not fit %s blocks of %u; using %s (and for every "
                     "other such tensor)", t->name, t->ne[0], cit_type_traits(wanted)->name,
                     cit_type_traits(wanted)->block_size, cit_type_traits(types[i])->name);
        }
        cit_gguf_writer_add_tensor(w, t->name, types[i], t->n_dims, t->ne);
        stats->type_count[types[i]]++;
        uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* the reader checked this fits */
        total += n;
    }
    stats->n_tensors = nt;
    stats->n_weights = total;
    if ((st = cit_gguf_writer_begin(w, out_path, err, errlen)))
        goto done;
    for (size_t i = 0; i < nt; i++)
        stats->tensor_bytes += cit_gguf_writer_tensor_nbytes(w, i);
    if ((st = write_tensors(g, w, types, p, total, err, errlen)))
        goto done;
    if ((st = cit_gguf_writer_finish(w, err, errlen)))
        goto done;
    stats->in_bytes = cit_gguf_file_size(g);
    stats->out_bytes = cit_gguf_writer_file_size(w);
done:
    cit_gguf_writer_free(w);
    free(types);
    cit_gguf_free(g);
    return st;
}
