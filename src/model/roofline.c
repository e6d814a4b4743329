/* roofline.c: per-token bytes and operations of a model (model/roofline.h),
 * read from its GGUF tensor table so a quantized file is charged exactly
 * the bytes it stores. */
#include "model/roofline.h"

#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "citadel/gguf.h"
#include "citadel/tensor.h"

static bool tensor_elems(const struct cit_gguf_tensor *t, uint64_t *n)
{
    uint64_t e = 1;
    for (uint32_t d = 0; d < CIT_GGUF_MAX_DIMS; d++)
        if (!cit_mul_u64(e, t->ne[d], &e))
            return false;
    *n = e;
    return true;
}

enum cit_status cit_roofline_of_model(const struct cit_model *m, struct cit_roofline *out, char *err,
                                      size_t errlen)
{
    if (!m || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_roofline_of_model: NULL argument");
    memset(out, 0, sizeof *out);
    const struct cit_model_info *info = cit_model_info(m);
    const struct cit_gguf *g = cit_model_gguf(m);
    const struct cit_gguf_tensor *embd = cit_gguf_find_tensor(g, "token_embd.weight");
    const struct cit_gguf_tensor *outm = info->tied_output ? embd : cit_gguf_find_tensor(g, "output.weight");
    if (!embd || !outm || embd->ne[1] == 0)
        return cit_fail(CIT_ERR_NOT_FOUND, err, errlen, "roofline: missing tensor %s",
                        embd ? "output.weight" : "token_embd.weight");
    uint64_t bytes = embd->nbytes / embd->ne[1], params = 0, n;
    bool ok = cit_add_u64(bytes, outm->nbytes, &bytes) && tensor_elems(outm, &out->output_params);
    for (size_t i = 0; ok && i < cit_gguf_n_tensors(g); i++) {
        const struct cit_gguf_tensor *t = cit_gguf_tensor_at(g, i);
        bool layer = !strncmp(t->name, "blk.", 4);
        if (!layer && strcmp(t->name, "output_norm.weight") && strcmp(t->name, "rope_freqs.weight"))
            continue;
        ok = cit_add_u64(bytes, t->nbytes, &bytes);
        if (ok && layer && t->n_dims >= 2 && t->ne[1] > 1)
            ok = tensor_elems(t, &n) && cit_add_u64(params, n, &params);
    }
    if (!ok)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "roofline: tensor sizes overflow 64 bits");
    /* The cache of one position of one sequence, as the context lays it out. */
    struct cit_context_params cp = {.n_ctx = 1, .n_seq_max = 1, .n_batch_max = 1, .n_threads = 1};
    uint64_t kv = 0, scratch = 0;
    enum cit_status st = cit_context_memory(m, &cp, &kv, &scratch, err, errlen);
    if (st != CIT_OK)
        return st;
    const struct cit_type_traits *tt = cit_type_traits(info->weight_type);
    out->weight_bytes_per_token = bytes;
    out->kv_bytes_per_pos = kv;
    out->layer_matrix_params = params;
    out->n_layer = info->n_layer;
    out->n_embd = info->n_embd;
    out->quantized = tt && tt->is_quantized;
    out->bf16 = info->weight_type == CIT_TYPE_BF16;
    return CIT_OK;
}

double cit_roofline_gen_bytes_per_token(const struct cit_roofline *r, uint64_t n_gen, uint64_t depth0)
{
    double depth_avg = (double)depth0 + ((double)n_gen + 1.0) / 2.0;
    return (double)r->weight_bytes_per_token + (double)r->kv_bytes_per_pos * depth_avg;
}

double cit_roofline_prompt_ops(const struct cit_roofline *r, uint64_t n)
{
    double dn = (double)n;
    return 2.0 * (double)r->layer_matrix_params * dn + 2.0 * (double)r->output_params +
           2.0 * (double)r->n_layer * (double)r->n_embd * dn * (dn + 1.0);
}
