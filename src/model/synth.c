/* synth.c: writing random-weight models at real shapes (citadel/synth.h).
 *
 * Shapes: layer count, widths, heads and vocabulary come from the planner's
 * built-in catalog (one source of truth for model shapes); the table below
 * adds only what the catalog has no field for. Weights are generated from a
 * counter-based stream keyed by (seed, tensor, row), so rows can be made by
 * any thread in any order and the file is the same for a seed whatever the
 * thread count; values are approximately normal (sum of four uniforms,
 * rescaled) with std 0.02, which is the scale of trained projection weights;
 * norm weights are 1. Tensor types follow the quantize presets. */
#include "citadel/synth.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/checked.h"
#include "base/err.h"
#include "citadel/gguf.h"
#include "citadel/gguf_write.h"
#include "citadel/plan.h"
#include "model/rowwrite.h"

#define WEIGHT_STD 0.02f
#define MAX_PAD_NAME 24 /* "<synth_4294967295>" + NUL fits */

/* What the planner catalog lacks, per model id. catalog == NULL: a test
 * shape defined here in full. Sources: each model's config.json
 * (rope_theta, rms_norm_eps, tie_word_embeddings, max_position_embeddings). */
static const struct extra {
    const char *id, *catalog, *arch;
    float rope_theta, rms_eps;
    bool tied;
    uint32_t n_ctx; /* 0: the catalog's n_ctx_max */
} extras[] = {
    {"tinyllama-1.1b", "tinyllama-1.1b", "llama", 10000.0f, 1e-5f, false, 0},
    {"llama-2-7b", "llama-2-7b", "llama", 10000.0f, 1e-5f, false, 0},
    /* Llama-3-8B has the shapes of Llama-3.1-8B, an 8K context and no RoPE scaling */
    {"llama-3-8b", "llama-3.1-8b", "llama", 500000.0f, 1e-5f, false, 8192},
    {"llama-3.1-8b", "llama-3.1-8b", "llama", 500000.0f, 1e-5f, false, 0},
    {"llama-3.1-70b", "llama-3.1-70b", "llama", 500000.0f, 1e-5f, false, 0},
    {"llama-3.2-1b", "llama-3.2-1b", "llama", 500000.0f, 1e-5f, true, 0},
    {"llama-3.2-3b", "llama-3.2-3b", "llama", 500000.0f, 1e-5f, true, 0},
    {"mistral-7b", "mistral-7b", "llama", 1000000.0f, 1e-5f, false, 0},
    {"qwen2.5-0.5b", "qwen2.5-0.5b", "qwen2", 1000000.0f, 1e-6f, true, 0},
    {"qwen2.5-1.5b", "qwen2.5-1.5b", "qwen2", 1000000.0f, 1e-6f, true, 0},
    {"qwen2.5-3b", "qwen2.5-3b", "qwen2", 1000000.0f, 1e-6f, true, 0},
    {"qwen2.5-7b", "qwen2.5-7b", "qwen2", 1000000.0f, 1e-6f, false, 0},
    {"qwen2.5-14b", "qwen2.5-14b", "qwen2", 1000000.0f, 1e-6f, false, 0},
    {"micro", NULL, "llama", 10000.0f, 1e-5f, false, 512},
    {"micro-qwen2", NULL, "qwen2", 1000000.0f, 1e-6f, true, 512},
};
#define N_EXTRAS (sizeof extras / sizeof extras[0])

size_t cit_synth_n_shapes(void) { return N_EXTRAS; }
const char *cit_synth_shape_id(size_t i) { return i < N_EXTRAS ? extras[i].id : NULL; }

enum cit_status cit_synth_find_shape(const char *id, struct cit_synth_shape *out, char *err, size_t errlen)
{
    const struct extra *x = NULL;
    for (size_t i = 0; id && i < N_EXTRAS && !x; i++)
        if (strcasecmp(id, extras[i].id) == 0)
            x = &extras[i];
    if (!x) {
        char list[512];
        size_t k = 0;
        for (size_t i = 0; i < N_EXTRAS && k < sizeof list; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", extras[i].id);
        return cit_fail(CIT_ERR_NOT_FOUND, err, errlen, "unknown model '%s' (known: %s)", id ? id : "", list);
    }
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", x->id);
    out->arch = x->arch;
    out->rope_theta = x->rope_theta;
    out->rms_eps = x->rms_eps;
    out->tied = x->tied;
    out->n_ctx = x->n_ctx;
    if (!x->catalog) { /* test shape: two layers of the micro reference models */
        out->n_layer = 2;
        out->n_embd = 256;
        out->n_head = 4;
        out->n_head_kv = 2;
        out->n_ff = 768;
        out->n_vocab = 0;
        return CIT_OK;
    }
    struct cit_plan_catalog *cat = NULL;
    enum cit_status st = cit_plan_catalog_builtin(&cat, err, errlen);
    if (st)
        return st;
    const struct cit_plan_model *m = cit_plan_find_model(cat, x->catalog);
    if (!m) {
        cit_plan_catalog_free(cat);
        return cit_fail(CIT_ERR_NOT_FOUND, err, errlen, "model '%s' is missing from the planner catalog", x->catalog);
    }
    out->n_layer = m->n_layer;
    out->n_embd = m->n_embd;
    out->n_head = m->n_head;
    out->n_head_kv = m->n_head_kv;
    out->n_ff = m->n_ff;
    out->n_vocab = m->n_vocab;
    if (!out->n_ctx)
        out->n_ctx = m->n_ctx_max;
    bool ok = m->n_head && m->head_dim * m->n_head == m->n_embd;
    cit_plan_catalog_free(cat);
    if (!ok)
        return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen, "model '%s': head_dim x n_head != n_embd is not supported", id);
    return CIT_OK;
}

/* ---- random rows ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Row r of tensor ti: n values ~ N(0, std^2) approximately (Irwin-Hall of
 * four 16-bit uniforms: mean 2, variance 1/3), or all `fill` when std == 0. */
static void random_row(uint64_t seed, size_t ti, uint64_t r, float std, float fill, float *x, uint64_t n)
{
    if (std == 0) {
        for (uint64_t i = 0; i < n; i++)
            x[i] = fill;
        return;
    }
    uint64_t s = seed ^ ((uint64_t)ti << 40) ^ (r * 0xd1342543de82ef95u);
    splitmix(&s);
    const float k = std * 1.7320508f / 65536.0f; /* sqrt(3) / 2^16 */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = splitmix(&s);
        uint32_t sum = (uint32_t)(v & 0xffff) + (uint32_t)((v >> 16) & 0xffff) + (uint32_t)((v >> 32) & 0xffff) +
                       (uint32_t)(v >> 48);
        x[i] = ((float)sum - 2.0f * 65535.5f) * k;
    }
}

struct gen_tensor {
    char name[96];
    uint32_t n_dims;
    uint64_t ne[2];
    float std, fill;
    uint32_t type;
};

/* One row of a generated tensor. */
struct gen_src {
    const struct gen_tensor *t;
    size_t ti;
    uint64_t seed;
    const struct cit_type_traits *to;
};

static void gen_row(const void *arg, uint64_t row, uint8_t *dst, float *scratch)
{
    const struct gen_src *g = arg;
    random_row(g->seed, g->ti, row, g->t->std, g->t->fill, scratch, g->t->ne[0]);
    g->to->from_float(scratch, dst, (int64_t)g->t->ne[0]);
}

/* ---- file layout ---- */

static size_t list_tensors(const struct cit_synth_shape *s, uint32_t n_vocab, struct gen_tensor *out)
{
    uint32_t head_dim = s->n_embd / s->n_head;
    uint64_t q = (uint64_t)s->n_head * head_dim, kv = (uint64_t)s->n_head_kv * head_dim;
    bool bias = strcmp(s->arch, "qwen2") == 0;
    size_t n = 0;
#define ADD(nm, d0, d1, sd, fl)                                                                                \
    do {                                                                                                       \
        if (out) {                                                                                             \
            out[n] = (struct gen_tensor){.n_dims = (d1) ? 2 : 1, .ne = {(d0), (d1) ? (d1) : 1}, .std = (sd), \
                                         .fill = (fl)};                                                        \
            snprintf(out[n].name, sizeof out[n].name, "%s", nm);                                               \
        }                                                                                                      \
        n++;                                                                                                   \
    } while (0)
    ADD("token_embd.weight", s->n_embd, n_vocab, WEIGHT_STD, 0);
    ADD("output_norm.weight", s->n_embd, 0, 0, 1);
    if (!s->tied)
        ADD("output.weight", s->n_embd, n_vocab, WEIGHT_STD, 0);
    for (uint32_t il = 0; il < s->n_layer; il++) {
        char nm[96];
#define LAYER(suffix, d0, d1, sd, fl)                              \
    do {                                                           \
        snprintf(nm, sizeof nm, "blk.%u.%s", il, suffix);          \
        ADD(nm, d0, d1, sd, fl);                                   \
    } while (0)
        LAYER("attn_norm.weight", s->n_embd, 0, 0, 1);
        LAYER("attn_q.weight", s->n_embd, q, WEIGHT_STD, 0);
        LAYER("attn_k.weight", s->n_embd, kv, WEIGHT_STD, 0);
        LAYER("attn_v.weight", s->n_embd, kv, WEIGHT_STD, 0);
        if (bias) {
            LAYER("attn_q.bias", q, 0, WEIGHT_STD, 0);
            LAYER("attn_k.bias", kv, 0, WEIGHT_STD, 0);
            LAYER("attn_v.bias", kv, 0, WEIGHT_STD, 0);
        }
        LAYER("attn_output.weight", q, s->n_embd, WEIGHT_STD, 0);
        LAYER("ffn_norm.weight", s->n_embd, 0, 0, 1);
        LAYER("ffn_gate.weight", s->n_embd, s->n_ff, WEIGHT_STD, 0);
        LAYER("ffn_up.weight", s->n_embd, s->n_ff, WEIGHT_STD, 0);
        LAYER("ffn_down.weight", s->n_ff, s->n_embd, WEIGHT_STD, 0);
#undef LAYER
    }
#undef ADD
    return n;
}

/* Copies the tokenizer.* keys of the vocabulary file, padding the per-token
 * arrays to n_vocab. */
static enum cit_status copy_vocab(struct cit_gguf_writer *w, const struct cit_gguf *v, const char *vpath,
                                  uint64_t n_file, uint32_t n_vocab, char *err, size_t errlen)
{
    uint64_t pad = n_vocab - n_file;
    enum cit_status st = CIT_OK;
    for (size_t i = 0; i < cit_gguf_n_kv(v) && st == CIT_OK; i++) {
        const char *key = cit_gguf_kv_key(v, i);
        if (strncmp(key, "tokenizer.", 10) != 0)
            continue;
        bool tokens = strcmp(key, "tokenizer.ggml.tokens") == 0, scores = strcmp(key, "tokenizer.ggml.scores") == 0,
             types = strcmp(key, "tokenizer.ggml.token_type") == 0;
        if (pad == 0 || !(tokens || scores || types)) {
            st = cit_gguf_writer_copy_kv(w, v, i);
            continue;
        }
        enum cit_gguf_type et;
        uint64_t count;
        const void *data;
        if ((st = cit_gguf_get_arr(v, key, &et, &count, &data, err, errlen)))
            return st;
        if (count != n_file)
            return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s: %s has %" PRIu64 " elements for %" PRIu64 " tokens",
                            vpath, key, count, n_file);
        if (tokens) {
            struct cit_gguf_str *strs = malloc(n_vocab * sizeof *strs);
            char *names = malloc(pad * MAX_PAD_NAME);
            if (!strs || !names) {
                free(strs);
                free(names);
                return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for %u tokens", n_vocab);
            }
            for (uint64_t j = 0; j < n_file && st == CIT_OK; j++)
                st = cit_gguf_arr_str(v, key, j, &strs[j], err, errlen);
            for (uint64_t j = n_file; j < n_vocab; j++) {
                char *nm = names + (j - n_file) * MAX_PAD_NAME;
                int len = snprintf(nm, MAX_PAD_NAME, "<synth_%" PRIu64 ">", j);
                strs[j] = (struct cit_gguf_str){nm, (uint64_t)len};
            }
            if (st == CIT_OK)
                st = cit_gguf_writer_set_arr_str(w, key, strs, n_vocab);
            free(strs);
            free(names);
        } else {
            enum cit_gguf_type want = scores ? CIT_GGUF_FLOAT32 : CIT_GGUF_INT32;
            if (et != want)
                return cit_fail(CIT_ERR_UNSUPPORTED, err, errlen, "%s: %s has elements of type %s (expected %s)", vpath,
                                key, cit_gguf_type_name(et), cit_gguf_type_name(want));
            uint8_t *arr = calloc(n_vocab, 4);
            if (!arr)
                return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for %u tokens", n_vocab);
            memcpy(arr, data, (size_t)n_file * 4);
            for (uint64_t j = n_file; j < n_vocab && types; j++) {
                int32_t normal = 1;
                memcpy(arr + 4 * j, &normal, 4);
            }
            st = cit_gguf_writer_set_arr(w, key, et, arr, n_vocab);
            free(arr);
        }
    }
    if (st != CIT_OK && cit_gguf_writer_error(w)[0])
        return cit_fail(st, err, errlen, "%s", cit_gguf_writer_error(w));
    return st;
}

static enum cit_status write_metadata(struct cit_gguf_writer *w, const struct cit_synth_params *p, uint32_t n_vocab)
{
    const struct cit_synth_shape *s = &p->shape;
    char key[128], name[128];
    snprintf(name, sizeof name, "synthetic %s (random weights)", s->id);
    cit_gguf_writer_set_str(w, "general.architecture", s->arch);
    cit_gguf_writer_set_str(w, "general.name", name);
#define AKEY(k) (snprintf(key, sizeof key, "%s.%s", s->arch, k), key)
    cit_gguf_writer_set_u32(w, AKEY("context_length"), s->n_ctx);
    cit_gguf_writer_set_u32(w, AKEY("embedding_length"), s->n_embd);
    cit_gguf_writer_set_u32(w, AKEY("block_count"), s->n_layer);
    cit_gguf_writer_set_u32(w, AKEY("feed_forward_length"), s->n_ff);
    cit_gguf_writer_set_u32(w, AKEY("rope.dimension_count"), s->n_embd / s->n_head);
    cit_gguf_writer_set_u32(w, AKEY("attention.head_count"), s->n_head);
    cit_gguf_writer_set_u32(w, AKEY("attention.head_count_kv"), s->n_head_kv);
    cit_gguf_writer_set_f32(w, AKEY("attention.layer_norm_rms_epsilon"), s->rms_eps);
    cit_gguf_writer_set_f32(w, AKEY("rope.freq_base"), s->rope_theta);
    cit_gguf_writer_set_u32(w, AKEY("vocab_size"), n_vocab);
#undef AKEY
    cit_gguf_writer_set_u32(w, "general.file_type", (uint32_t)p->ftype);
    return cit_gguf_writer_set_u32(w, "general.quantization_version", 2);
}


static enum cit_status check_shape(const struct cit_synth_shape *s, char *err, size_t errlen)
{
    if (!s->arch || (strcmp(s->arch, "llama") != 0 && strcmp(s->arch, "qwen2") != 0))
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "shape '%s': architecture must be llama or qwen2", s->id);
    if (!s->n_layer || !s->n_embd || !s->n_head || !s->n_head_kv || !s->n_ff || !s->n_ctx ||
        s->n_embd % s->n_head || s->n_head % s->n_head_kv || (s->n_embd / s->n_head) % 2)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen,
                        "shape '%s': n_layer %u, n_embd %u, n_head %u, n_head_kv %u, n_ff %u, n_ctx %u are not a "
                        "valid combination", s->id, s->n_layer, s->n_embd, s->n_head, s->n_head_kv, s->n_ff, s->n_ctx);
    return CIT_OK;
}

/* Generates and writes every tensor in table order. */
static enum cit_status write_data(struct cit_gguf_writer *w, const struct gen_tensor *ts, size_t nt,
                                  const struct cit_synth_params *p, uint64_t total, char *err, size_t errlen)
{
    uint64_t max_ne0 = 1;
    for (size_t i = 0; i < nt; i++)
        max_ne0 = ts[i].ne[0] > max_ne0 ? ts[i].ne[0] : max_ne0;
    struct cit_row_writer rw;
    enum cit_status st = cit_row_writer_init(&rw, p->n_threads, max_ne0, total, p->progress, p->cb_arg, err, errlen);
    for (size_t i = 0; i < nt && st == CIT_OK; i++) {
        uint64_t row_bytes = 0;
        cit_type_row_size(ts[i].type, ts[i].ne[0], &row_bytes);
        struct gen_src g = {&ts[i], i, p->seed, cit_type_traits(ts[i].type)};
        st = cit_row_writer_tensor(&rw, w, ts[i].ne[1], ts[i].ne[0], row_bytes, gen_row, &g, err, errlen);
    }
    cit_row_writer_free(&rw);
    return st;
}

enum cit_status cit_synth_write(const struct cit_synth_params *p, const char *out_path,
                                struct cit_quantize_stats *stats, char *err, size_t errlen)
{
    struct cit_quantize_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!p || !out_path || !p->vocab_path)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_synth_write: NULL argument");
    const struct cit_synth_shape *s = &p->shape;
    enum cit_status st = check_shape(s, err, errlen);
    if (st)
        return st;

    struct cit_gguf *v = NULL;
    char msg[384];
    if ((st = cit_gguf_open(p->vocab_path, &v, msg, sizeof msg)))
        return cit_fail(st, err, errlen, "vocabulary %s: %s", p->vocab_path, msg);
    enum cit_gguf_type et;
    uint64_t n_file = 0;
    const void *data;
    st = cit_gguf_get_arr(v, "tokenizer.ggml.tokens", &et, &n_file, &data, msg, sizeof msg);
    if (st == CIT_OK && (et != CIT_GGUF_STRING || n_file == 0))
        st = CIT_ERR_FORMAT, snprintf(msg, sizeof msg, "tokenizer.ggml.tokens is not a non-empty string array");
    if (st) {
        cit_gguf_free(v);
        return cit_fail(st, err, errlen, "vocabulary %s has no usable tokenizer: %s", p->vocab_path, msg);
    }
    uint32_t n_vocab = s->n_vocab ? s->n_vocab : (uint32_t)(n_file < UINT32_MAX ? n_file : UINT32_MAX);
    if (n_file > n_vocab) {
        cit_gguf_free(v);
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen,
                        "vocabulary %s has %" PRIu64 " tokens, more than the %u of %s: choose a vocabulary of at "
                        "most %u tokens", p->vocab_path, n_file, n_vocab, s->id, n_vocab);
    }
    if (n_file < n_vocab)
        cit_notef(p->note, p->cb_arg, "vocabulary %s has %" PRIu64 " tokens; padded to %s's %u with %" PRIu64 " tokens <synth_N>",
             p->vocab_path, n_file, s->id, n_vocab, (uint64_t)n_vocab - n_file);

    size_t nt = list_tensors(s, n_vocab, NULL);
    struct gen_tensor *ts = calloc(nt, sizeof *ts);
    struct cit_gguf_writer *w = NULL;
    if (!ts) {
        st = cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory");
        goto done;
    }
    list_tensors(s, n_vocab, ts);
    if ((st = cit_gguf_writer_new(&w, err, errlen)))
        goto done;
    write_metadata(w, p, n_vocab);
    if ((st = copy_vocab(w, v, p->vocab_path, n_file, n_vocab, err, errlen)))
        goto done;
    uint64_t total = 0, seen[2 * 16];
    size_t n_seen = 0;
    for (size_t i = 0; i < nt; i++) {
        uint32_t wanted;
        bool fb;
        ts[i].type = cit_quantize_tensor_type(p->ftype, ts[i].name, ts[i].n_dims, ts[i].ne[0], s->n_layer, !s->tied,
                                              &wanted, &fb);
        if (fb) {
            stats->n_fallback++;
            if (cit_quantize_first_fallback(seen, &n_seen, ts[i].ne[0], wanted))
                cit_notef(p->note, p->cb_arg, "%s: rows of %" PRIu64 " elements do not fit %s blocks of %u; using %s (and for every "
                     "other such tensor)", ts[i].name, ts[i].ne[0], cit_type_traits(wanted)->name,
                     cit_type_traits(wanted)->block_size, cit_type_traits(ts[i].type)->name);
        }
        cit_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne);
        stats->type_count[ts[i].type]++;
        total += ts[i].ne[0] * ts[i].ne[1];
    }
    stats->n_tensors = nt;
    stats->n_weights = total;
    if ((st = cit_gguf_writer_begin(w, out_path, err, errlen)))
        goto done;
    for (size_t i = 0; i < nt; i++)
        stats->tensor_bytes += cit_gguf_writer_tensor_nbytes(w, i);
    if ((st = write_data(w, ts, nt, p, total, err, errlen)) || (st = cit_gguf_writer_finish(w, err, errlen)))
        goto done;
    stats->out_bytes = cit_gguf_writer_file_size(w);
done:
    cit_gguf_writer_free(w);
    free(ts);
    cit_gguf_free(v);
    return st;
}
