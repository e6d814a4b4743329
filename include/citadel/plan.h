/* plan.h: the capacity and cost planner behind `citadel plan`.
 *
 * Three questions, answered with formulas that docs/planner.md derives one by
 * one: does a model at a quantization fit on some hardware at a context and
 * concurrency (memory), how fast will it run there (a roofline estimate), and
 * what does a million tokens cost on-premise against a cloud price list.
 *
 * The figures come from catalogs (models, hardware, cloud prices) held as
 * JSON with a source and a date on every entry: built into the library and
 * overridable entry by entry from a user's file. A model can also be read
 * from a GGUF file, which gives the exact weight bytes of its tensor table.
 *
 * Every function is pure arithmetic over its arguments (no I/O) except the
 * catalog loaders and cit_plan_model_from_file. */
#ifndef CITADEL_PLAN_H
#define CITADEL_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "citadel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CIT_PLAN_ID_MAX 64
#define CIT_PLAN_TEXT_MAX 256

/* Element type of the KV cache. F32 is what Citadel's CPU engine stores
 * today; F16 is the usual GPU runtime default; Q8_0 is 34 bytes per 32
 * elements (8.5 bits). */
enum cit_plan_kv_type { CIT_PLAN_KV_F32 = 0, CIT_PLAN_KV_F16, CIT_PLAN_KV_Q8_0 };

/* Parses "f32", "f16", "q8_0" (any case). */
enum cit_status cit_plan_kv_type_parse(const char *s, enum cit_plan_kv_type *out, char *err, size_t errlen);
const char *cit_plan_kv_type_name(enum cit_plan_kv_type t);

/* Shape of a model: from a catalog entry or a GGUF file. */
struct cit_plan_model {
    char id[CIT_PLAN_ID_MAX];
    char name[CIT_PLAN_TEXT_MAX];
    char source[CIT_PLAN_TEXT_MAX]; /* where the figures come from */
    char date[16];                  /* when they were taken, YYYY-MM-DD */
    uint64_t n_params;              /* all weights */
    uint64_t n_active;              /* weights used per token (MoE: shared + top-k experts); = n_params for dense */
    uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_max;
    uint64_t weight_bytes;   /* exact tensor bytes when read from a file; 0 for a catalog entry */
    uint64_t metadata_bytes; /* file bytes before the tensor data (parsed, hence resident); 0 for a catalog entry */
    char file_quant[16];     /* most common weight type of the file ("Q4_K"), "" for a catalog entry */
};

/* One accelerator or CPU server. All figures per device. */
struct cit_plan_hw {
    char id[CIT_PLAN_ID_MAX];
    char name[CIT_PLAN_TEXT_MAX];
    char kind[8]; /* "gpu" or "cpu" */
    char source[CIT_PLAN_TEXT_MAX];
    char date[16];
    double mem_gib;        /* memory usable for weights and cache, GiB */
    double bw_gbs;         /* peak memory bandwidth, GB/s (1e9 B/s) */
    double fp16_tflops;    /* dense FP16/BF16 peak, TFLOP/s (no sparsity) */
    double int8_tops;      /* dense INT8 peak, TOP/s */
    double watts_load;     /* board power at load (TDP/TBP), W */
    double watts_idle;     /* indicative idle power, W */
    double price_usd;      /* indicative purchase price per device, USD */
    double reserved_gib;   /* runtime overhead per device (driver context, OS), GiB */
};

/* One cloud API offer, USD per million tokens. */
struct cit_plan_cloud {
    char id[CIT_PLAN_ID_MAX];
    char name[CIT_PLAN_TEXT_MAX];
    char source[CIT_PLAN_TEXT_MAX];
    char date[16];
    double usd_per_m_input;
    double usd_per_m_output;
};

/* ---- catalogs ---- */

struct cit_plan_catalog;

/* The built-in catalogs (models, hardware, cloud prices). */
enum cit_status cit_plan_catalog_builtin(struct cit_plan_catalog **out, char *err, size_t errlen);

/* Merges JSON text {"models":[...],"hardware":[...],"cloud":[...]} (any of
 * the three arrays may be absent): an entry whose id exists replaces it, a
 * new id is appended. Every entry needs "id", "source" and "date" and all
 * the numbers of its kind; errors name the entry and the field. */
enum cit_status cit_plan_catalog_merge_json(struct cit_plan_catalog *c, const char *json, const char *origin,
                                            char *err, size_t errlen);
enum cit_status cit_plan_catalog_merge_file(struct cit_plan_catalog *c, const char *path, char *err, size_t errlen);
void cit_plan_catalog_free(struct cit_plan_catalog *c);

/* Lookups by id (case-insensitive); NULL when absent. */
const struct cit_plan_model *cit_plan_find_model(const struct cit_plan_catalog *c, const char *id);
const struct cit_plan_hw *cit_plan_find_hw(const struct cit_plan_catalog *c, const char *id);
const struct cit_plan_cloud *cit_plan_find_cloud(const struct cit_plan_catalog *c, const char *id);
size_t cit_plan_n_models(const struct cit_plan_catalog *c);
size_t cit_plan_n_hw(const struct cit_plan_catalog *c);
size_t cit_plan_n_cloud(const struct cit_plan_catalog *c);
const struct cit_plan_model *cit_plan_model_at(const struct cit_plan_catalog *c, size_t i);
const struct cit_plan_hw *cit_plan_hw_at(const struct cit_plan_catalog *c, size_t i);
const struct cit_plan_cloud *cit_plan_cloud_at(const struct cit_plan_catalog *c, size_t i);

/* Reads the shape and exact tensor bytes of a GGUF model (through
 * cit_model_load; the weights are mapped, not read). */
enum cit_status cit_plan_model_from_file(const char *path, struct cit_plan_model *out, char *err, size_t errlen);

/* ---- memory ---- */

/* Bits per weight of a quantization: exact for single-type formats from the
 * type table (Q8_0 = 34 B / 32 weights = 8.5); for llama.cpp's mixes (Q4_K_M,
 * ...) the indicative average of llama-quantize's Llama-3-8B file sizes. */
enum cit_status cit_plan_quant_bpw(const char *quant, double *bpw, char *err, size_t errlen);

/* Weight bytes: the exact file figure when the model has one, else
 * n_params x bpw / 8 rounded up. */
uint64_t cit_plan_weight_bytes(const struct cit_plan_model *m, double bpw);

/* KV cache bytes per token of one sequence:
 * 2 (K and V) x n_layer x n_head_kv x head_dim x bytes per element (Q8_0:
 * 34 bytes per 32 elements of a row). */
uint64_t cit_plan_kv_bytes_per_token(const struct cit_plan_model *m, enum cit_plan_kv_type t);

struct cit_plan_mem_params {
    uint32_t n_ctx;         /* positions per sequence */
    uint32_t n_seq;         /* concurrent sequences (each with its own cache) */
    uint32_t n_batch;       /* tokens per forward pass; 0 = min(n_ctx x n_seq, 512) */
    uint32_t n_threads;     /* CPU engine: threads with their own attention row; 0 = 1 */
    enum cit_plan_kv_type kv_type;
    double bpw;             /* bits per weight when the model has no exact weight_bytes */
    uint32_t n_dev;         /* devices the model is split across; 0 = 1 */
};

struct cit_plan_mem {
    uint64_t weight_bytes;
    uint64_t kv_per_token;  /* one sequence */
    uint64_t kv_bytes;      /* kv_per_token x n_ctx x n_seq */
    uint64_t compute_bytes; /* activations of one batch, logits, attention rows */
    uint64_t overhead_bytes;/* reserved_gib x n_dev + the file's metadata */
    uint64_t total_bytes;
    uint64_t capacity_bytes;   /* mem_gib x n_dev */
    uint64_t per_device_bytes; /* total / n_dev, rounded up (even split: layer or tensor parallel) */
    bool fits;
    uint64_t max_ctx;       /* largest n_ctx that fits at n_seq (0: not even one token) */
    uint64_t max_seq;       /* largest n_seq that fits at n_ctx */
};

/* Compute buffer of the Citadel engine's layout, f32 activations:
 * 4 x n_batch x (3 n_embd + 2 q_dim + 2 kv_dim + 2 n_ff + n_vocab + max(n_embd, n_ff))
 * + 4 x n_threads x n_ctx. */
uint64_t cit_plan_compute_bytes(const struct cit_plan_model *m, const struct cit_plan_mem_params *p);

/* hw may be NULL (no capacity: fits = false, max_* = 0). */
enum cit_status cit_plan_memory(const struct cit_plan_model *m, const struct cit_plan_hw *hw,
                                const struct cit_plan_mem_params *p, struct cit_plan_mem *out, char *err,
                                size_t errlen);

/* ---- speed (roofline estimates) ---- */

/* Fractions of peak that a real runtime reaches; measured with --calibrate. */
struct cit_plan_eff {
    double bandwidth; /* achieved / peak memory bandwidth during generation */
    double compute;   /* achieved / peak FP16 FLOP/s during prompt processing */
};
#define CIT_PLAN_DEFAULT_BW_EFF 0.70
#define CIT_PLAN_DEFAULT_COMPUTE_EFF 0.40

struct cit_plan_speed_params {
    uint32_t n_dev;        /* 0 = 1; bandwidth and compute add up (tensor parallel, ideal) */
    uint32_t n_seq;        /* concurrent streams; 0 = 1 */
    uint32_t ctx_avg;      /* positions in the cache while generating (on average) */
    uint32_t prompt_len;   /* for time to first token */
    struct cit_plan_eff eff;
};

struct cit_plan_speed {
    double bytes_per_token;  /* one stream: active weight bytes + its KV cache at ctx_avg */
    double gen_tps_single;   /* one stream alone */
    double agg_bw_bound;     /* all streams, memory bound */
    double agg_compute_bound;/* all streams, compute bound */
    double agg_tps;          /* min of the two */
    double per_stream_tps;   /* agg_tps / n_seq */
    bool compute_bound;
    double prompt_tps;       /* prompt tokens per second (compute bound) */
    double ttft_s;           /* prompt_len / prompt_tps + one generation step */
};

enum cit_status cit_plan_speed(const struct cit_plan_model *m, uint64_t weight_bytes, uint64_t kv_per_token,
                               const struct cit_plan_hw *hw, const struct cit_plan_speed_params *p,
                               struct cit_plan_speed *out, char *err, size_t errlen);

/* Efficiencies from a `citadel bench` JSON report measured on the hardware
 * `hw` (schema in docs/planner.md): bandwidth = tg_tokens_per_s x
 * weight_bytes / peak; compute = pp_tokens_per_s x 2 n_params / peak. */
enum cit_status cit_plan_calibrate(const char *json, const struct cit_plan_hw *hw, struct cit_plan_eff *out,
                                   char *err, size_t errlen);

/* ---- cost ---- */

struct cit_plan_cost_params {
    double capex_usd;        /* purchase price of all devices */
    double years;            /* amortisation period */
    double residual_frac;    /* resale value at the end, fraction of capex */
    double watts_load;       /* all devices at load */
    double watts_idle;       /* all devices idle */
    double pue;              /* facility power / IT power (cooling) */
    double usd_per_kwh;
    double utilization;      /* busy fraction of the hours in a year, (0, 1] */
    double maintenance_frac; /* per year, fraction of capex */
    double staff_usd_year;
};

struct cit_plan_cost {
    double amort_year, power_year, maint_year, staff_year, total_year;
    double busy_hours_year;
    double usd_per_busy_hour;
    double usd_per_m_input;  /* 1e6 / prompt_tps seconds of busy time */
    double usd_per_m_output; /* 1e6 / gen_tps seconds of busy time */
};

/* Hours in a year used throughout: 8760. */
enum cit_status cit_plan_cost(const struct cit_plan_cost_params *p, double prompt_tps, double gen_tps,
                              struct cit_plan_cost *out, char *err, size_t errlen);

struct cit_plan_compare {
    double tokens_month;     /* input + output */
    double input_share;      /* fraction of them that are input */
    double busy_hours_month; /* at this volume on one replica */
    uint32_t replicas;       /* deployments needed (busy hours / 730, rounded up, at least 1) */
    double onprem_month;     /* replicas x fixed month + energy of the busy hours */
    double cloud_month;
    double breakeven_tokens_month; /* volume where one replica costs the cloud price; < 0: never */
    double capacity_tokens_month;  /* one replica busy all month at this mix */
};

/* A month is 730 hours (8760 / 12). */
enum cit_status cit_plan_compare_cloud(const struct cit_plan_cost_params *p, double prompt_tps, double gen_tps,
                                       const struct cit_plan_cloud *cloud, double tokens_month,
                                       double input_share, struct cit_plan_compare *out, char *err,
                                       size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
