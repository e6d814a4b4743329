/* plan.c: the planner's formulas: weight and KV cache bytes, the memory
 * verdict, roofline speed estimates, total cost of ownership and the
 * comparison with a cloud price list. docs/planner.md derives each one and
 * states its assumptions; tests/unit/test_plan.c checks each against cases
 * worked by hand. Pure arithmetic except cit_plan_model_from_file. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/checked.h"
#include "base/err.h"
#include "citadel/gguf.h"
#include "citadel/model.h"
#include "citadel/tensor.h"
#include "plan/plan_impl.h"

#define GIB 1073741824.0
#define HOURS_YEAR 8760.0
#define HOURS_MONTH (HOURS_YEAR / 12.0)

enum cit_status cit_plan_kv_type_parse(const char *s, enum cit_plan_kv_type *out, char *err, size_t errlen)
{
    if (s && strcasecmp(s, "f32") == 0)
        *out = CIT_PLAN_KV_F32;
    else if (s && strcasecmp(s, "f16") == 0)
        *out = CIT_PLAN_KV_F16;
    else if (s && strcasecmp(s, "q8_0") == 0)
        *out = CIT_PLAN_KV_Q8_0;
    else
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "KV cache type \"%s\": expected f32, f16 or q8_0",
                        s ? s : "(null)");
    return CIT_OK;
}

const char *cit_plan_kv_type_name(enum cit_plan_kv_type t)
{
    switch (t) {
    case CIT_PLAN_KV_F32: return "f32";
    case CIT_PLAN_KV_F16: return "f16";
    case CIT_PLAN_KV_Q8_0: return "q8_0";
    }
    return "?";
}

/* llama.cpp's mixed formats: average bits per weight of the Llama-3-8B files
 * llama-quantize lists (size in GiB x 2^33 / 8,030,261,248 weights), e.g.
 * Q4_K_M 4.58 GiB -> 4.90. Indicative: the mix depends on the model's shape. */
static const struct {
    const char *name;
    double bpw;
} mixes[] = {
    {"Q2_K", 3.17},   {"Q3_K_S", 3.65}, {"Q3_K_M", 4.00}, {"Q3_K", 4.00},   {"Q3_K_L", 4.31},
    {"Q4_K_S", 4.67}, {"Q4_K_M", 4.90}, {"Q4_K", 4.90},   {"Q5_K_S", 5.57}, {"Q5_K_M", 5.70},
    {"Q5_K", 5.70},
};

enum cit_status cit_plan_quant_bpw(const char *quant, double *bpw, char *err, size_t errlen)
{
    if (!quant || !bpw)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_quant_bpw: NULL argument");
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++)
        if (strcasecmp(quant, mixes[i].name) == 0) {
            *bpw = mixes[i].bpw;
            return CIT_OK;
        }
    /* a single-type format: exact from its block layout */
    for (uint32_t t = 0; t < CIT_TYPE_COUNT; t++) {
        const struct cit_type_traits *tr = cit_type_traits(t);
        if (tr && tr->name && strcasecmp(quant, tr->name) == 0 && tr->block_size > 0) {
            *bpw = 8.0 * tr->type_size / tr->block_size;
            return CIT_OK;
        }
    }
    return cit_fail(CIT_ERR_NOT_FOUND, err, errlen,
                    "unknown quantization \"%s\": use F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q6_K, Q2_K, "
                    "Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M",
                    quant);
}

uint64_t cit_plan_weight_bytes(const struct cit_plan_model *m, double bpw)
{
    if (m->weight_bytes)
        return m->weight_bytes;
    return (uint64_t)ceil((double)m->n_params * bpw / 8.0);
}

uint64_t cit_plan_kv_bytes_per_token(const struct cit_plan_model *m, enum cit_plan_kv_type t)
{
    uint64_t row = (uint64_t)m->n_head_kv * m->head_dim, row_bytes;
    switch (t) {
    case CIT_PLAN_KV_F32: row_bytes = row * 4; break;
    case CIT_PLAN_KV_F16: row_bytes = row * 2; break;
    default: row_bytes = (row + 31) / 32 * 34; break; /* Q8_0: 32 int8 + one f16 scale per block */
    }
    return 2 * (uint64_t)m->n_layer * row_bytes;
}

static uint32_t resolve_batch(const struct cit_plan_mem_params *p)
{
    if (p->n_batch)
        return p->n_batch;
    uint64_t cap = (uint64_t)p->n_ctx * (p->n_seq ? p->n_seq : 1);
    return cap < 512 ? (uint32_t)cap : 512u;
}

uint64_t cit_plan_compute_bytes(const struct cit_plan_model *m, const struct cit_plan_mem_params *p)
{
    uint64_t nb = resolve_batch(p), threads = p->n_threads ? p->n_threads : 1;
    uint64_t q_dim = (uint64_t)m->n_head * m->head_dim, kv_dim = (uint64_t)m->n_head_kv * m->head_dim;
    uint64_t widest = m->n_embd > m->n_ff ? m->n_embd : m->n_ff;
    uint64_t per_item = 3ull * m->n_embd + 2 * q_dim + 2 * kv_dim + 2ull * m->n_ff + m->n_vocab + widest + m->head_dim;
    return 4 * nb * per_item + 4 * threads * p->n_ctx;
}

enum cit_status cit_plan_memory(const struct cit_plan_model *m, const struct cit_plan_hw *hw,
                                const struct cit_plan_mem_params *p, struct cit_plan_mem *out, char *err,
                                size_t errlen)
{
    if (!m || !p || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_memory: NULL argument");
    memset(out, 0, sizeof *out);
    if (p->n_ctx == 0 || p->n_seq == 0)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "context (%u) and concurrency (%u) must be at least 1",
                        p->n_ctx, p->n_seq);
    if (!m->weight_bytes && !(p->bpw > 0 && p->bpw <= 32))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "%s: bits per weight %g out of range (0, 32]", m->id, p->bpw);
    uint64_t n_dev = p->n_dev ? p->n_dev : 1;
    out->weight_bytes = cit_plan_weight_bytes(m, p->bpw);
    out->kv_per_token = cit_plan_kv_bytes_per_token(m, p->kv_type);
    out->compute_bytes = cit_plan_compute_bytes(m, p);
    uint64_t compute_all, reserved = 0, fixed;
    bool ok = cit_mul_u64(out->kv_per_token, p->n_ctx, &out->kv_bytes) &&
              cit_mul_u64(out->kv_bytes, p->n_seq, &out->kv_bytes) &&
              cit_mul_u64(out->compute_bytes, n_dev, &compute_all);
    if (ok && hw)
        reserved = (uint64_t)llround(hw->reserved_gib * GIB) * n_dev;
    ok = ok && cit_add_u64(reserved, m->metadata_bytes, &out->overhead_bytes) &&
         cit_add_u64(out->weight_bytes, compute_all, &fixed) && cit_add_u64(fixed, out->overhead_bytes, &fixed) &&
         cit_add_u64(fixed, out->kv_bytes, &out->total_bytes);
    if (!ok)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "%s: memory size overflows (ctx %u, concurrency %u)", m->id,
                        p->n_ctx, p->n_seq);
    out->per_device_bytes = (out->total_bytes + n_dev - 1) / n_dev;
    if (!hw)
        return CIT_OK;
    out->capacity_bytes = (uint64_t)llround(hw->mem_gib * GIB) * n_dev;
    out->fits = out->total_bytes <= out->capacity_bytes;
    /* Largest context at this concurrency: each position costs one KV entry
     * per sequence plus one attention score per thread on every device. */
    uint64_t threads = p->n_threads ? p->n_threads : 1;
    uint64_t scores = 4 * threads * p->n_ctx * n_dev; /* part of compute_all that grows with n_ctx */
    uint64_t base = fixed - scores;
    if (base < out->capacity_bytes) {
        uint64_t free_b = out->capacity_bytes - base;
        uint64_t per_pos = out->kv_per_token * p->n_seq + 4 * threads * n_dev;
        out->max_ctx = free_b / per_pos;
        if (m->n_ctx_max && out->max_ctx > m->n_ctx_max)
            out->max_ctx = m->n_ctx_max;
    }
    if (fixed < out->capacity_bytes)
        out->max_seq = (out->capacity_bytes - fixed) / (out->kv_per_token * p->n_ctx);
    return CIT_OK;
}

enum cit_status cit_plan_speed(const struct cit_plan_model *m, uint64_t weight_bytes, uint64_t kv_per_token,
                               const struct cit_plan_hw *hw, const struct cit_plan_speed_params *p,
                               struct cit_plan_speed *out, char *err, size_t errlen)
{
    if (!m || !hw || !p || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_speed: NULL argument");
    memset(out, 0, sizeof *out);
    if (!(p->eff.bandwidth > 0 && p->eff.bandwidth <= 1) || !(p->eff.compute > 0 && p->eff.compute <= 1))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "efficiencies (bandwidth %g, compute %g) must be in (0, 1]",
                        p->eff.bandwidth, p->eff.compute);
    if (m->n_params == 0 || m->n_active == 0 || weight_bytes == 0)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "%s: no parameters or weight bytes", m->id);
    double n_dev = p->n_dev ? p->n_dev : 1, b = p->n_seq ? p->n_seq : 1;
    double bw = hw->bw_gbs * 1e9 * n_dev * p->eff.bandwidth;
    double flops = hw->fp16_tflops * 1e12 * n_dev * p->eff.compute;
    double w = (double)weight_bytes, active_w = w * (double)m->n_active / (double)m->n_params;
    double kv_read = (double)kv_per_token * p->ctx_avg;
    out->bytes_per_token = active_w + kv_read;
    out->gen_tps_single = bw / out->bytes_per_token;
    /* One step of b streams reads the weights once (a MoE touches more
     * experts as b grows, at most all of them) and every stream's cache. */
    double step_w = active_w * b < w ? active_w * b : w;
    out->agg_bw_bound = b * bw / (step_w + b * kv_read);
    out->agg_compute_bound = flops / (2.0 * (double)m->n_active);
    out->compute_bound = out->agg_compute_bound < out->agg_bw_bound;
    out->agg_tps = out->compute_bound ? out->agg_compute_bound : out->agg_bw_bound;
    out->per_stream_tps = out->agg_tps / b;
    out->prompt_tps = out->agg_compute_bound;
    out->ttft_s = p->prompt_len / out->prompt_tps + 1.0 / out->per_stream_tps;
    return CIT_OK;
}

static double num_or(json_t *o, const char *key, double dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

enum cit_status cit_plan_calibrate(const char *json, const struct cit_plan_hw *hw, struct cit_plan_eff *out,
                                   char *err, size_t errlen)
{
    if (!json || !hw || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_calibrate: NULL argument");
    json_error_t je;
    json_t *r = json_loads(json, 0, &je);
    if (!r)
        return cit_fail(CIT_ERR_FORMAT, err, errlen, "bench report: invalid JSON at line %d: %s", je.line, je.text);
    double wb = num_or(r, "weight_bytes", 0), np = num_or(r, "n_params", 0), na = num_or(r, "n_active", np);
    double tg = num_or(r, "tg_tokens_per_s", 0), pp = num_or(r, "pp_tokens_per_s", 0);
    double nd = num_or(r, "n_devices", 1);
    json_decref(r);
    if (!(wb > 0) || !(na > 0) || !(tg > 0) || !(pp > 0) || !(nd >= 1))
        return cit_fail(CIT_ERR_NOT_FOUND, err, errlen,
                        "bench report needs positive weight_bytes, n_params, tg_tokens_per_s and pp_tokens_per_s "
                        "(and optionally n_active, n_devices); see docs/planner.md");
    out->bandwidth = tg * wb * (na / (np > 0 ? np : na)) / (hw->bw_gbs * 1e9 * nd);
    out->compute = pp * 2.0 * na / (hw->fp16_tflops * 1e12 * nd);
    if (!(out->bandwidth <= 1.0) || !(out->compute <= 1.0))
        return cit_fail(CIT_ERR_RANGE, err, errlen,
                        "measured speed exceeds %s's peak (bandwidth efficiency %.2f, compute %.2f): was the bench "
                        "run on other hardware?",
                        hw->id, out->bandwidth, out->compute);
    return CIT_OK;
}

static enum cit_status check_cost(const struct cit_plan_cost_params *p, double prompt_tps, double gen_tps,
                                  char *err, size_t errlen)
{
    if (!(p->years > 0) || !(p->residual_frac >= 0 && p->residual_frac <= 1) || !(p->pue >= 1) ||
        !(p->usd_per_kwh >= 0) || !(p->utilization > 0 && p->utilization <= 1) || !(p->maintenance_frac >= 0) ||
        !(p->staff_usd_year >= 0) || !(p->capex_usd >= 0) || !(p->watts_idle >= 0) ||
        !(p->watts_load >= p->watts_idle))
        return cit_fail(CIT_ERR_RANGE, err, errlen,
                        "cost parameters out of range: years > 0, residual in [0, 1], PUE >= 1, price >= 0, "
                        "utilisation in (0, 1], idle <= load watts");
    if (!(prompt_tps > 0) || !(gen_tps > 0))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "throughputs must be positive (prompt %g, generation %g)",
                        prompt_tps, gen_tps);
    return CIT_OK;
}

enum cit_status cit_plan_cost(const struct cit_plan_cost_params *p, double prompt_tps, double gen_tps,
                              struct cit_plan_cost *out, char *err, size_t errlen)
{
    if (!p || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_cost: NULL argument");
    memset(out, 0, sizeof *out);
    enum cit_status st = check_cost(p, prompt_tps, gen_tps, err, errlen);
    if (st != CIT_OK)
        return st;
    double u = p->utilization;
    out->amort_year = p->capex_usd * (1.0 - p->residual_frac) / p->years;
    double avg_w = p->watts_idle + (p->watts_load - p->watts_idle) * u;
    out->power_year = avg_w / 1000.0 * p->pue * HOURS_YEAR * p->usd_per_kwh;
    out->maint_year = p->capex_usd * p->maintenance_frac;
    out->staff_year = p->staff_usd_year;
    out->total_year = out->amort_year + out->power_year + out->maint_year + out->staff_year;
    out->busy_hours_year = HOURS_YEAR * u;
    out->usd_per_busy_hour = out->total_year / out->busy_hours_year;
    out->usd_per_m_input = out->usd_per_busy_hour / 3600.0 * 1e6 / prompt_tps;
    out->usd_per_m_output = out->usd_per_busy_hour / 3600.0 * 1e6 / gen_tps;
    return CIT_OK;
}

enum cit_status cit_plan_compare_cloud(const struct cit_plan_cost_params *p, double prompt_tps, double gen_tps,
                                       const struct cit_plan_cloud *cloud, double tokens_month,
                                       double input_share, struct cit_plan_compare *out, char *err,
                                       size_t errlen)
{
    if (!p || !cloud || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_compare_cloud: NULL argument");
    memset(out, 0, sizeof *out);
    enum cit_status st = check_cost(p, prompt_tps, gen_tps, err, errlen);
    if (st != CIT_OK)
        return st;
    if (!(tokens_month >= 0) || !(input_share >= 0 && input_share <= 1))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "monthly tokens %g must be >= 0 and input share %g in [0, 1]",
                        tokens_month, input_share);
    out->tokens_month = tokens_month;
    out->input_share = input_share;
    double s_per_tok = input_share / prompt_tps + (1.0 - input_share) / gen_tps;
    out->busy_hours_month = tokens_month * s_per_tok / 3600.0;
    double r = ceil(out->busy_hours_month / HOURS_MONTH);
    out->replicas = r < 1 ? 1u : (r > 1e9 ? 1000000000u : (uint32_t)r);
    /* fixed: amortisation, maintenance, staff, and idle power every hour;
     * variable: the power above idle during busy hours */
    double kwh_usd = p->pue * p->usd_per_kwh / 1000.0;
    double fixed_month = (p->capex_usd * (1.0 - p->residual_frac) / p->years + p->capex_usd * p->maintenance_frac +
                          p->staff_usd_year) / 12.0 +
                         p->watts_idle * kwh_usd * HOURS_MONTH;
    double busy_hour_usd = (p->watts_load - p->watts_idle) * kwh_usd;
    out->onprem_month = out->replicas * fixed_month + out->busy_hours_month * busy_hour_usd;
    double cloud_tok = (input_share * cloud->usd_per_m_input + (1.0 - input_share) * cloud->usd_per_m_output) / 1e6;
    out->cloud_month = tokens_month * cloud_tok;
    double energy_tok = s_per_tok / 3600.0 * busy_hour_usd;
    out->breakeven_tokens_month = cloud_tok > energy_tok ? fixed_month / (cloud_tok - energy_tok) : -1.0;
    out->capacity_tokens_month = HOURS_MONTH * 3600.0 / s_per_tok;
    return CIT_OK;
}

enum cit_status cit_plan_model_from_file(const char *path, struct cit_plan_model *out, char *err, size_t errlen)
{
    if (!path || !out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_model_from_file: NULL argument");
    memset(out, 0, sizeof *out);
    struct cit_model *model = NULL;
    enum cit_status st = cit_model_load(path, &model, err, errlen);
    if (st != CIT_OK)
        return st;
    const struct cit_model_info *in = cit_model_info(model);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out->id, sizeof out->id, "%s", base);
    snprintf(out->name, sizeof out->name, "%s", in->name[0] ? in->name : base);
    snprintf(out->source, sizeof out->source, "GGUF file %s (tensor table)", path);
    snprintf(out->date, sizeof out->date, "file");
    out->n_params = in->n_params;
    out->n_active = in->n_params;
    out->n_layer = in->n_layer;
    out->n_embd = in->n_embd;
    out->n_head = in->n_head;
    out->n_head_kv = in->n_head_kv;
    out->head_dim = in->head_dim;
    out->n_ff = in->n_ff;
    out->n_vocab = in->n_vocab;
    out->n_ctx_max = in->n_ctx_train;
    out->weight_bytes = in->weight_bytes;
    out->metadata_bytes = cit_gguf_data_offset(cit_model_gguf(model));
    const struct cit_type_traits *tr = cit_type_traits(in->weight_type);
    snprintf(out->file_quant, sizeof out->file_quant, "%s", tr && tr->name ? tr->name : "?");
    cit_model_free(model);
    return CIT_OK;
}
