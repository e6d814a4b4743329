/* model.c: loading a Llama-family model from GGUF: architecture lookup,
 * hyper-parameters, and binding every weight tensor in place.
 *
 * Everything read from the file is untrusted: each hyper-parameter is
 * checked against a sane range and against the others (head counts divide
 * the width, ...), and each tensor for presence, exact shape and a type we
 * can compute with, with an error that names the key or tensor, what was
 * found and what was expected. After a successful load the forward pass can
 * rely on every shape without further checks. */
#include "citadel/model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "citadel/gguf.h"
#include "citadel/tensor.h"
#include "model/model_impl.h"

/* Sanity limits on hyper-parameters (far above any released model). */
#define MAX_CTX_TRAIN (1u << 24)
#define MAX_EMBD (1u << 20)
#define MAX_LAYER 4096u
#define MAX_HEAD 4096u
#define MAX_FF (1u << 22)
#define MAX_VOCAB (1u << 24)

struct loader {
    const struct cit_gguf *g;
    const char *arch;
    struct cit_model *m;
    uint64_t type_bytes[CIT_TYPE_COUNT]; /* bytes of matrix weights per type */
    char *err;
    size_t errlen;
};

/* ---- hyper-parameters ---- */

static void arch_key(const struct loader *L, const char *name, char *key, size_t keylen)
{
    snprintf(key, keylen, "%s.%s", L->arch, name);
}

/* Reads <arch>.<name> as an integer in [lo, hi]; *present tells whether the
 * key exists (when present is NULL the key is required). */
static enum cit_status key_u32(struct loader *L, const char *name, uint32_t lo, uint32_t hi, uint32_t *out,
                               bool *present)
{
    char key[160];
    arch_key(L, name, key, sizeof key);
    uint64_t v;
    enum cit_status st = cit_gguf_get_uint(L->g, key, &v, L->err, L->errlen);
    if (st == CIT_ERR_NOT_FOUND) {
        if (present) {
            *present = false;
            return CIT_OK;
        }
        return cit_fail(CIT_ERR_NOT_FOUND, L->err, L->errlen, "missing key %s", key);
    }
    if (st != CIT_OK)
        return st;
    if (v < lo || v > hi)
        return cit_fail(CIT_ERR_RANGE, L->err, L->errlen, "%s = %" PRIu64 " out of range [%u, %u]", key, v, lo,
                        hi);
    if (present)
        *present = true;
    *out = (uint32_t)v;
    return CIT_OK;
}

/* Reads <arch>.<name> as a finite float in (lo, hi]; absent -> def unless required. */
static enum cit_status key_f32(struct loader *L, const char *name, bool required, float def, float lo, float hi,
                               float *out)
{
    char key[160];
    arch_key(L, name, key, sizeof key);
    float v;
    enum cit_status st = cit_gguf_get_f32(L->g, key, &v, L->err, L->errlen);
    if (st == CIT_ERR_NOT_FOUND) {
        if (required)
            return cit_fail(CIT_ERR_NOT_FOUND, L->err, L->errlen, "missing key %s", key);
        *out = def;
        return CIT_OK;
    }
    if (st != CIT_OK)
        return st;
    if (!isfinite(v) || !(v > lo) || !(v <= hi))
        return cit_fail(CIT_ERR_RANGE, L->err, L->errlen, "%s = %g out of range (%g, %g]", key, (double)v,
                        (double)lo, (double)hi);
    *out = v;
    return CIT_OK;
}

/* RoPE scaling: none, or linear (positions divided by the factor). */
static enum cit_status load_rope_scaling(struct loader *L, struct cit_model_info *hp)
{
    char key[160];
    hp->rope_scale = 1.0f;
    float factor = 0.0f;
    bool has_factor = false;
    static const char *const factor_keys[] = {"rope.scaling.factor", "rope.scale_linear"};
    for (size_t i = 0; i < 2 && !has_factor; i++) {
        arch_key(L, factor_keys[i], key, sizeof key);
        if (cit_gguf_find_key(L->g, key) < 0)
            continue;
        enum cit_status st = key_f32(L, factor_keys[i], true, 0.0f, 0.0f, 1e6f, &factor);
        if (st != CIT_OK)
            return st;
        has_factor = true;
    }

    arch_key(L, "rope.scaling.type", key, sizeof key);
    struct cit_gguf_str type = {"", 0};
    enum cit_status st = cit_gguf_get_str(L->g, key, &type, L->err, L->errlen);
    if (st == CIT_ERR_NOT_FOUND)
        type = has_factor ? (struct cit_gguf_str){"linear", 6} : (struct cit_gguf_str){"none", 4};
    else if (st != CIT_OK)
        return st;

    if (type.len == 4 && memcmp(type.ptr, "none", 4) == 0)
        return CIT_OK;
    if (type.len == 6 && memcmp(type.ptr, "linear", 6) == 0) {
        if (!has_factor)
            return cit_fail(CIT_ERR_NOT_FOUND, L->err, L->errlen, "%s = \"linear\" but %s.rope.scaling.factor is missing",
                            key, L->arch);
        hp->rope_scale = factor;
        return CIT_OK;
    }
    int shown = type.len > 64 ? 64 : (int)type.len;
    return cit_fail(CIT_ERR_UNSUPPORTED, L->err, L->errlen,
                    "%s = \"%.*s\" is not supported (supported: none, linear)", key, shown, type.ptr);
}

static enum cit_status load_hparams(struct loader *L)
{
    struct cit_model_info *hp = &L->m->info;
    enum cit_status st;
    if ((st = key_u32(L, "context_length", 1, MAX_CTX_TRAIN, &hp->n_ctx_train, NULL)) ||
        (st = key_u32(L, "embedding_length", 1, MAX_EMBD, &hp->n_embd, NULL)) ||
        (st = key_u32(L, "block_count", 1, MAX_LAYER, &hp->n_layer, NULL)) ||
        (st = key_u32(L, "feed_forward_length", 1, MAX_FF, &hp->n_ff, NULL)) ||
        (st = key_u32(L, "attention.head_count", 1, MAX_HEAD, &hp->n_head, NULL)))
        return st;
    bool present;
    if ((st = key_u32(L, "attention.head_count_kv", 1, hp->n_head, &hp->n_head_kv, &present)))
        return st;
    if (!present)
        hp->n_head_kv = hp->n_head;
    if (hp->n_embd % hp->n_head != 0)
        return cit_fail(CIT_ERR_RANGE, L->err, L->errlen,
                        "%s.embedding_length = %u is not a multiple of %s.attention.head_count = %u", L->arch,
                        hp->n_embd, L->arch, hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return cit_fail(CIT_ERR_RANGE, L->err, L->errlen,
                        "%s.attention.head_count = %u is not a multiple of %s.attention.head_count_kv = %u",
                        L->arch, hp->n_head, L->arch, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;

    static const char *const dim_keys[] = {"attention.key_length", "attention.value_length"};
    for (size_t i = 0; i < 2; i++) {
        uint32_t v;
        if ((st = key_u32(L, dim_keys[i], hp->head_dim, hp->head_dim, &v, &present)))
            return st;
    }

    if ((st = key_u32(L, "rope.dimension_count", 2, hp->head_dim, &hp->n_rot, &present)))
        return st;
    if (!present)
        hp->n_rot = hp->head_dim;
    if (hp->n_rot % 2 != 0)
        return cit_fail(CIT_ERR_RANGE, L->err, L->errlen, "%s.rope.dimension_count = %u is not even", L->arch,
                        hp->n_rot);
    if ((st = key_f32(L, "rope.freq_base", false, 10000.0f, 0.0f, 1e12f, &hp->rope_theta)) ||
        (st = key_f32(L, "attention.layer_norm_rms_epsilon", true, 0.0f, 0.0f, 1.0f, &hp->rms_eps)) ||
        (st = load_rope_scaling(L, hp)))
        return st;
    L->m->q_dim = hp->n_head * hp->head_dim;
    L->m->kv_dim = hp->n_head_kv * hp->head_dim;
    return CIT_OK;
}

/* ---- tensors ---- */

static const char *type_name(uint32_t type, char *buf, size_t len)
{
    const struct cit_type_traits *tr = cit_type_traits(type);
    if (tr)
        return tr->name;
    snprintf(buf, len, "type %u", type);
    return buf;
}

static void shape_str(const struct cit_gguf_tensor *t, char *buf, size_t len)
{
    int k = snprintf(buf, len, "[");
    for (uint32_t d = 0; d < t->n_dims && k > 0 && (size_t)k < len; d++)
        k += snprintf(buf + k, len - (size_t)k, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
    if (k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, "]");
}

/* Finds a tensor and checks that its shape is exactly [ne0] (ne1 == 0) or [ne0, ne1]. */
static enum cit_status find_shaped(struct loader *L, const char *name, uint64_t ne0, uint64_t ne1,
                                   const struct cit_gguf_tensor **out)
{
    const struct cit_gguf_tensor *t = cit_gguf_find_tensor(L->g, name);
    if (!t)
        return cit_fail(CIT_ERR_NOT_FOUND, L->err, L->errlen, "missing tensor %s", name);
    uint64_t want[CIT_GGUF_MAX_DIMS] = {ne0, ne1 ? ne1 : 1, 1, 1};
    bool ok = true;
    for (int d = 0; d < CIT_GGUF_MAX_DIMS; d++)
        ok = ok && t->ne[d] == want[d];
    if (!ok) {
        char shape[128], tb[32];
        shape_str(t, shape, sizeof shape);
        if (ne1)
            return cit_fail(CIT_ERR_FORMAT, L->err, L->errlen,
                            "tensor %s has shape %s (%s); expected [%" PRIu64 ", %" PRIu64 "]", name, shape,
                            type_name(t->type, tb, sizeof tb), ne0, ne1);
        return cit_fail(CIT_ERR_FORMAT, L->err, L->errlen, "tensor %s has shape %s (%s); expected [%" PRIu64 "]",
                        name, shape, type_name(t->type, tb, sizeof tb), ne0);
    }
    *out = t;
    return CIT_OK;
}

static enum cit_status account(struct loader *L, const struct cit_gguf_tensor *t)
{
    struct cit_model_info *hp = &L->m->info;
    uint64_t n = 1;
    for (int d = 0; d < CIT_GGUF_MAX_DIMS; d++)
        if (!cit_mul_u64(n, t->ne[d], &n))
            return cit_fail(CIT_ERR_FORMAT, L->err, L->errlen, "tensor %s: element count overflows", t->name);
    if (!cit_add_u64(hp->n_params, n, &hp->n_params) || !cit_add_u64(hp->weight_bytes, t->nbytes, &hp->weight_bytes))
        return cit_fail(CIT_ERR_FORMAT, L->err, L->errlen, "tensor %s: model size overflows", t->name);
    return CIT_OK;
}

/* An F32 vector of n elements (norm weights, biases, rope_freqs). */
static enum cit_status bind_vector(struct loader *L, const char *name, uint64_t n, const float **out)
{
    const struct cit_gguf_tensor *t;
    enum cit_status st = find_shaped(L, name, n, 0, &t);
    if (st != CIT_OK)
        return st;
    if (t->type != CIT_TYPE_F32) {
        char tb[32];
        return cit_fail(CIT_ERR_UNSUPPORTED, L->err, L->errlen, "tensor %s has type %s; expected F32", name,
                        type_name(t->type, tb, sizeof tb));
    }
    if ((uintptr_t)t->data % _Alignof(float) != 0)
        return cit_fail(CIT_ERR_FORMAT, L->err, L->errlen, "tensor %s: data is not 4-byte aligned", name);
    *out = t->data;
    return account(L, t);
}

/* Fills a matrix view of tensor t, (n_out, n_in); the caller checked the shape. */
static enum cit_status make_matrix(struct loader *L, const struct cit_gguf_tensor *t, bool for_matmul,
                                   struct cit_matrix *out)
{
    const struct cit_type_traits *tr = cit_type_traits(t->type);
    uint64_t n_in = t->ne[0], n_out = t->ne[1];
    bool usable = for_matmul ? cit_matmul_supported(t->type, n_in)
                             : (tr && tr->to_float && n_in % tr->block_size == 0);
    if (!usable) {
        char tb[32];
        return cit_fail(CIT_ERR_UNSUPPORTED, L->err, L->errlen,
                        "tensor %s has type %s, which is not supported for a %s with rows of %" PRIu64
                        " elements (supported: F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q5_K, Q6_K)",
                        t->name, type_name(t->type, tb, sizeof tb), for_matmul ? "weight matrix" : "embedding",
                        n_in);
    }
    uint64_t row_bytes, total;
    if (!cit_type_row_size(t->type, n_in, &row_bytes) || !cit_mul_u64(row_bytes, n_out, &total) ||
        total != t->nbytes)
        return cit_fail(CIT_ERR_FORMAT, L->err, L->errlen, "tensor %s: size %" PRIu64 " does not match its shape",
                        t->name, t->nbytes);
    *out = (struct cit_matrix){.data = t->data, .tr = tr, .type = t->type, .n_in = (uint32_t)n_in,
                               .n_out = (uint32_t)n_out, .row_bytes = (size_t)row_bytes};
    return CIT_OK;
}

/* A weight matrix (n_out, n_in): GGUF shape [n_in, n_out]. */
static enum cit_status bind_matrix(struct loader *L, const char *name, uint64_t n_in, uint64_t n_out,
                                   struct cit_matrix *out)
{
    const struct cit_gguf_tensor *t;
    enum cit_status st = find_shaped(L, name, n_in, n_out, &t);
    if (st == CIT_OK)
        st = make_matrix(L, t, true, out);
    if (st == CIT_OK) {
        L->type_bytes[t->type] += t->nbytes; /* no overflow: account() bounds the sum */
        st = account(L, t);
    }
    return st;
}

enum dim { D_NONE, D_EMBD, D_Q, D_KV, D_FF };
enum kind { K_VEC, K_MAT, K_BIAS };

/* The tensors of one block: GGUF name suffix, kind, shape (GGUF order) and
 * where the binding goes in struct cit_layer. Biases are bound only for
 * architectures with qkv_bias. */
static const struct layer_tensor {
    const char *suffix;
    enum kind kind;
    enum dim ne0, ne1;
    size_t off;
} layer_tensors[] = {
    {"attn_norm.weight", K_VEC, D_EMBD, D_NONE, offsetof(struct cit_layer, attn_norm)},
    {"attn_q.weight", K_MAT, D_EMBD, D_Q, offsetof(struct cit_layer, wq)},
    {"attn_k.weight", K_MAT, D_EMBD, D_KV, offsetof(struct cit_layer, wk)},
    {"attn_v.weight", K_MAT, D_EMBD, D_KV, offsetof(struct cit_layer, wv)},
    {"attn_q.bias", K_BIAS, D_Q, D_NONE, offsetof(struct cit_layer, bq)},
    {"attn_k.bias", K_BIAS, D_KV, D_NONE, offsetof(struct cit_layer, bk)},
    {"attn_v.bias", K_BIAS, D_KV, D_NONE, offsetof(struct cit_layer, bv)},
    {"attn_output.weight", K_MAT, D_Q, D_EMBD, offsetof(struct cit_layer, wo)},
    {"ffn_norm.weight", K_VEC, D_EMBD, D_NONE, offsetof(struct cit_layer, ffn_norm)},
    {"ffn_gate.weight", K_MAT, D_EMBD, D_FF, offsetof(struct cit_layer, wgate)},
    {"ffn_up.weight", K_MAT, D_EMBD, D_FF, offsetof(struct cit_layer, wup)},
    {"ffn_down.weight", K_MAT, D_FF, D_EMBD, offsetof(struct cit_layer, wdown)},
};

static uint64_t dim_value(const struct cit_model *m, enum dim d)
{
    switch (d) {
    case D_EMBD: return m->info.n_embd;
    case D_Q: return m->q_dim;
    case D_KV: return m->kv_dim;
    case D_FF: return m->info.n_ff;
    case D_NONE: break;
    }
    return 0;
}

static enum cit_status bind_layer(struct loader *L, uint32_t il, struct cit_layer *layer)
{
    struct cit_model *m = L->m;
    for (size_t i = 0; i < sizeof layer_tensors / sizeof layer_tensors[0]; i++) {
        const struct layer_tensor *lt = &layer_tensors[i];
        if (lt->kind == K_BIAS && !m->arch->qkv_bias)
            continue;
        char name[96];
        snprintf(name, sizeof name, "blk.%u.%s", il, lt->suffix);
        char *slot = (char *)layer + lt->off;
        enum cit_status st;
        if (lt->kind == K_MAT)
            st = bind_matrix(L, name, dim_value(m, lt->ne0), dim_value(m, lt->ne1), (struct cit_matrix *)slot);
        else
            st = bind_vector(L, name, dim_value(m, lt->ne0), (const float **)slot);
        if (st != CIT_OK)
            return st;
    }
    return CIT_OK;
}

static enum cit_status bind_weights(struct loader *L)
{
    struct cit_model *m = L->m;
    struct cit_model_info *hp = &m->info;
    enum cit_status st;

    /* token_embd fixes n_vocab: [n_embd, n_vocab]. */
    const struct cit_gguf_tensor *te = cit_gguf_find_tensor(L->g, "token_embd.weight");
    if (!te)
        return cit_fail(CIT_ERR_NOT_FOUND, L->err, L->errlen, "missing tensor token_embd.weight");
    if (te->ne[1] < 1 || te->ne[1] > MAX_VOCAB)
        return cit_fail(CIT_ERR_RANGE, L->err, L->errlen,
                        "tensor token_embd.weight: vocabulary size %" PRIu64 " out of range [1, %u]", te->ne[1],
                        MAX_VOCAB);
    hp->n_vocab = (uint32_t)te->ne[1];
    if ((st = find_shaped(L, "token_embd.weight", hp->n_embd, hp->n_vocab, &te)))
        return st;

    const struct cit_gguf_tensor *out = cit_gguf_find_tensor(L->g, "output.weight");
    hp->tied_output = out == NULL;
    if ((st = make_matrix(L, te, hp->tied_output, &m->tok_embd)) || (st = account(L, te)))
        return st;
    if (hp->tied_output) {
        m->output = m->tok_embd;
        L->type_bytes[te->type] += te->nbytes;
    } else if ((st = bind_matrix(L, "output.weight", hp->n_embd, hp->n_vocab, &m->output))) {
        return st;
    }
    if ((st = bind_vector(L, "output_norm.weight", hp->n_embd, &m->output_norm)))
        return st;

    if (cit_gguf_find_tensor(L->g, "rope_freqs.weight")) {
        if ((st = bind_vector(L, "rope_freqs.weight", hp->n_rot / 2, &m->rope_freqs)))
            return st;
        for (uint32_t i = 0; i < hp->n_rot / 2; i++)
            if (!isfinite(m->rope_freqs[i]) || !(m->rope_freqs[i] > 0.0f))
                return cit_fail(CIT_ERR_RANGE, L->err, L->errlen,
                                "tensor rope_freqs.weight: element %u = %g is not a positive number", i,
                                (double)m->rope_freqs[i]);
        hp->rope_freqs = true;
    }

    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return cit_fail(CIT_ERR_NOMEM, L->err, L->errlen, "out of memory for %u layers", hp->n_layer);
    for (uint32_t il = 0; il < hp->n_layer; il++)
        if ((st = bind_layer(L, il, &m->layers[il])))
            return st;

    uint64_t best = 0;
    for (uint32_t t = 0; t < CIT_TYPE_COUNT; t++)
        if (L->type_bytes[t] > best) {
            best = L->type_bytes[t];
            hp->weight_type = t;
        }
    return CIT_OK;
}

/* ---- public ---- */

enum cit_status cit_model_load(const char *path, struct cit_model **out, char *err, size_t errlen)
{
    if (!out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_model_load: path is NULL");
    struct cit_gguf *g;
    enum cit_status st = cit_gguf_open(path, &g, err, errlen);
    if (st != CIT_OK)
        return st;

    struct cit_gguf_str arch;
    st = cit_gguf_get_str(g, "general.architecture", &arch, err, errlen);
    if (st != CIT_OK) {
        cit_gguf_free(g);
        if (st == CIT_ERR_NOT_FOUND)
            return cit_fail(st, err, errlen, "missing key general.architecture");
        return st;
    }
    const struct cit_arch *desc = cit_arch_find(arch.ptr, arch.len);
    if (!desc) {
        int shown = arch.len > 64 ? 64 : (int)arch.len;
        st = cit_fail(CIT_ERR_UNSUPPORTED, err, errlen,
                      "general.architecture = \"%.*s\" is not supported (supported: %s)", shown, arch.ptr,
                      cit_arch_list());
        cit_gguf_free(g); /* after formatting: arch points into the mapping */
        return st;
    }

    struct cit_model *m = calloc(1, sizeof *m);
    if (!m) {
        cit_gguf_free(g);
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory");
    }
    m->gguf = g;
    m->arch = desc;
    m->info.arch = desc->name;
    m->info.rope_neox = desc->rope_neox;
    m->info.qkv_bias = desc->qkv_bias;
    struct cit_gguf_str name;
    if (cit_gguf_get_str(g, "general.name", &name, NULL, 0) == CIT_OK) {
        size_t n = name.len < sizeof m->name - 1 ? (size_t)name.len : sizeof m->name - 1;
        for (size_t i = 0; i < n; i++)
            m->name[i] = name.ptr[i] ? name.ptr[i] : '?';
    }
    m->info.name = m->name;

    struct loader L = {.g = g, .arch = desc->name, .m = m, .err = err, .errlen = errlen};
    if ((st = load_hparams(&L)) || (st = bind_weights(&L))) {
        cit_model_free(m);
        return st;
    }
    *out = m;
    return CIT_OK;
}

void cit_model_free(struct cit_model *m)
{
    if (!m)
        return;
    free(m->layers);
    cit_model_repack_free(m);
    cit_gguf_free(m->gguf);
    free(m);
}

const struct cit_model_info *cit_model_info(const struct cit_model *m)
{
    return &m->info;
}

const struct cit_gguf *cit_model_gguf(const struct cit_model *m)
{
    return m->gguf;
}
