/* cmd_plan.c: `citadel plan`: which model and quantization fits on which
 * hardware, how fast it will run there and what a million tokens will cost,
 * against cloud API prices. Readable tables on stdout, --json for machines,
 * --svg for a chart of cost against utilisation. The arithmetic lives in the
 * library (citadel/plan.h); this file parses options, loops over the
 * options asked for and formats. docs/planner.md explains every figure. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "citadel/plan.h"
#include "cli/args.h"
#include "cli/cli.h"

#define MAX_ITEMS 16

/* Defaults, each explained with its source in docs/planner.md. */
#define DEF_CTX 4096
#define DEF_UTIL 0.5
#define DEF_KWH 0.15
#define DEF_PUE 1.5
#define DEF_YEARS 4.0
#define DEF_RESIDUAL 0.10
#define DEF_MAINT 0.10
#define DEF_INPUT_SHARE 0.75
#define DEF_PROMPT 1024

static void usage(FILE *f)
{
    fprintf(f,
            "usage: citadel plan --model FILE|ID --hardware ID[xN][,...] [options]\n\n"
            "Estimates memory, speed and cost of serving a model on some hardware, against cloud\n"
            "API prices. Every figure is an estimate; docs/planner.md gives each formula,\n"
            "assumption and default with its source.\n\n"
            "model and load:\n"
            "  -m, --model FILE|ID       a GGUF file (exact weights) or a catalog model id\n"
            "  -q, --quant LIST          quantizations for a catalog model, e.g. Q4_K_M,Q8_0 (default Q4_K_M)\n"
            "  -c, --ctx N               context per sequence in tokens (default %d, at most the model's own)\n"
            "  -b, --concurrency N       sequences served at once (default 1)\n"
            "      --kv-type T           KV cache element: f16 (default), q8_0, f32 (Citadel's CPU engine today)\n"
            "      --prompt-len N        prompt tokens for time to first token (default %d)\n"
            "hardware:\n"
            "  -H, --hardware LIST       catalog ids, each optionally xN devices: h100-sxmx2,l40s\n"
            "      --calibrate FILE      `citadel bench` JSON measured on the first hardware: use its\n"
            "                            measured efficiency instead of the default (bandwidth %.2f, compute %.2f)\n"
            "cost:\n"
            "  -u, --utilization U       busy fraction of the year, 0..1 (default %.2f)\n"
            "      --electricity P       USD per kWh (default %.2f)\n"
            "      --pue P               power usage effectiveness, >= 1 (default %.1f)\n"
            "      --years Y             amortisation period (default %.0f)\n"
            "      --residual F          resale value after Y years, fraction of price (default %.2f)\n"
            "      --maintenance F       per year, fraction of price (default %.2f)\n"
            "      --staff USD           staff cost per year per deployment (default 0)\n"
            "      --price USD           hardware price per device, overriding the catalog's indicative one\n"
            "      --cloud LIST          cloud ids or prices (USD per million tokens: P or IN/OUT)\n"
            "      --monthly-tokens N    tokens per month, input + output (default 1e9)\n"
            "      --input-share F       fraction of the tokens that are input (default %.2f)\n"
            "output:\n"
            "      --json                machine-readable output\n"
            "      --svg FILE            chart of cost per million tokens against utilisation\n"
            "      --catalog FILE        JSON catalog whose entries replace or add to the built-in ones\n"
            "      --list                list the catalogs (models, hardware, cloud prices) and exit\n"
            "  -h, --help                this help\n\n"
            "example:\n"
            "  citadel plan -m llama-3.1-70b -q Q4_K_M,Q8_0 -c 8192 -b 16 -H h100-sxmx2,h200x2 \\\n"
            "               --cloud together-llama-3.1-70b,gpt-4o --monthly-tokens 1e9\n",
            DEF_CTX, DEF_PROMPT, CIT_PLAN_DEFAULT_BW_EFF, CIT_PLAN_DEFAULT_COMPUTE_EFF, DEF_UTIL, DEF_KWH, DEF_PUE,
            DEF_YEARS, DEF_RESIDUAL, DEF_MAINT, DEF_INPUT_SHARE);
}

struct plan_opts {
    const char *model, *quant, *hardware, *cloud, *calibrate, *svg, *catalog;
    long long ctx, conc, prompt_len;
    enum cit_plan_kv_type kv;
    double util, kwh, pue, years, residual, maint, staff, price, monthly, share;
    int json, list;
};

/* Splits s (modified in place) at commas into at most MAX_ITEMS items. */
static int split(char *s, char **items)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == MAX_ITEMS)
            return -1;
        items[n++] = tok;
    }
    return n;
}

static int parse(int argc, char **argv, struct plan_opts *o)
{
    enum { O_KV = 256, O_PROMPT, O_CAL, O_KWH, O_PUE, O_YEARS, O_RES, O_MAINT, O_STAFF, O_PRICE, O_CLOUD,
           O_MONTH, O_SHARE, O_JSON, O_SVG, O_CAT, O_LIST };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"quant", required_argument, NULL, 'q'},
        {"ctx", required_argument, NULL, 'c'}, {"concurrency", required_argument, NULL, 'b'},
        {"hardware", required_argument, NULL, 'H'}, {"utilization", required_argument, NULL, 'u'},
        {"kv-type", required_argument, NULL, O_KV}, {"prompt-len", required_argument, NULL, O_PROMPT},
        {"calibrate", required_argument, NULL, O_CAL}, {"electricity", required_argument, NULL, O_KWH},
        {"pue", required_argument, NULL, O_PUE}, {"years", required_argument, NULL, O_YEARS},
        {"residual", required_argument, NULL, O_RES}, {"maintenance", required_argument, NULL, O_MAINT},
        {"staff", required_argument, NULL, O_STAFF}, {"price", required_argument, NULL, O_PRICE},
        {"cloud", required_argument, NULL, O_CLOUD}, {"monthly-tokens", required_argument, NULL, O_MONTH},
        {"input-share", required_argument, NULL, O_SHARE}, {"json", no_argument, NULL, O_JSON},
        {"svg", required_argument, NULL, O_SVG}, {"catalog", required_argument, NULL, O_CAT},
        {"list", no_argument, NULL, O_LIST}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    char err[256];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:q:c:b:H:u:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'q': o->quant = optarg; break;
        case 'c': if (!arg_int("--ctx", optarg, 1, 1 << 24, &o->ctx)) return 2; break;
        case 'b': if (!arg_int("--concurrency", optarg, 1, 1 << 20, &o->conc)) return 2; break;
        case 'H': o->hardware = optarg; break;
        case 'u': if (!arg_float("--utilization", optarg, 0.001, 1, &o->util)) return 2; break;
        case O_KV:
            if (cit_plan_kv_type_parse(optarg, &o->kv, err, sizeof err) != CIT_OK) {
                fprintf(stderr, "citadel plan: --kv-type: %s\n", err);
                return 2;
            }
            break;
        case O_PROMPT: if (!arg_int("--prompt-len", optarg, 1, 1 << 24, &o->prompt_len)) return 2; break;
        case O_CAL: o->calibrate = optarg; break;
        case O_KWH: if (!arg_float("--electricity", optarg, 0, 100, &o->kwh)) return 2; break;
        case O_PUE: if (!arg_float("--pue", optarg, 1, 10, &o->pue)) return 2; break;
        case O_YEARS: if (!arg_float("--years", optarg, 0.1, 50, &o->years)) return 2; break;
        case O_RES: if (!arg_float("--residual", optarg, 0, 1, &o->residual)) return 2; break;
        case O_MAINT: if (!arg_float("--maintenance", optarg, 0, 10, &o->maint)) return 2; break;
        case O_STAFF: if (!arg_float("--staff", optarg, 0, 1e12, &o->staff)) return 2; break;
        case O_PRICE: if (!arg_float("--price", optarg, 0, 1e12, &o->price)) return 2; break;
        case O_CLOUD: o->cloud = optarg; break;
        case O_MONTH: if (!arg_float("--monthly-tokens", optarg, 0, 1e18, &o->monthly)) return 2; break;
        case O_SHARE: if (!arg_float("--input-share", optarg, 0, 1, &o->share)) return 2; break;
        case O_JSON: o->json = 1; break;
        case O_SVG: o->svg = optarg; break;
        case O_CAT: o->catalog = optarg; break;
        case O_LIST: o->list = 1; break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "citadel plan: unexpected argument '%s' (see citadel plan --help)\n", argv[optind]);
        return 2;
    }
    if (!o->list && (!o->model || !o->hardware)) {
        fprintf(stderr, "citadel plan: give a model (-m FILE|ID) and hardware (-H ID[xN]); "
                        "`citadel plan --list` shows the catalog ids\n");
        return 2;
    }
    return 0;
}

/* "h100-sxmx2" -> id "h100-sxm", n 2; "mi300x" -> id "mi300x", n 1. */
static int parse_hw_item(const char *item, char *id, size_t idcap, unsigned *n)
{
    const char *x = strrchr(item, 'x');
    *n = 1;
    size_t len = strlen(item);
    if (x && x[1] && strspn(x + 1, "0123456789") == strlen(x + 1)) {
        long v = strtol(x + 1, NULL, 10);
        if (v < 1 || v > 4096)
            return -1;
        *n = (unsigned)v;
        len = (size_t)(x - item);
    }
    if (len == 0 || len >= idcap)
        return -1;
    memcpy(id, item, len);
    id[len] = '\0';
    return 0;
}

/* A cloud item: a catalog id, or "P" / "IN/OUT" in USD per million tokens. */
static int parse_cloud_item(const struct cit_plan_catalog *cat, const char *item, struct cit_plan_cloud *out)
{
    const struct cit_plan_cloud *c = cit_plan_find_cloud(cat, item);
    if (c) {
        *out = *c;
        return 0;
    }
    char *end;
    double in = strtod(item, &end), o = in;
    if (end == item || !(in >= 0))
        return -1;
    if (*end == '/') {
        const char *s = end + 1;
        o = strtod(s, &end);
        if (end == s || !(o >= 0))
            return -1;
    }
    if (*end)
        return -1;
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", item);
    snprintf(out->name, sizeof out->name, "price %s USD/M", item);
    snprintf(out->source, sizeof out->source, "command line");
    snprintf(out->date, sizeof out->date, "-");
    out->usd_per_m_input = in;
    out->usd_per_m_output = o;
    return 0;
}

/* One hardware option for one quantization, computed in full. */
struct option_result {
    const char *quant;
    double bpw;
    struct cit_plan_hw hw;
    unsigned n_dev;
    struct cit_plan_mem mem;
    struct cit_plan_speed speed;
    struct cit_plan_cost_params cp;
    struct cit_plan_cost cost;
    struct cit_plan_eff eff;
    bool calibrated;
};

static const double sens_util[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
#define N_SENS (sizeof sens_util / sizeof sens_util[0])

static double blended(double in, double out, double share) { return share * in + (1.0 - share) * out; }

static const char *gib(uint64_t b, char *buf, int n) { return fmt_bytes(b, buf, n); }

static void print_tables(const struct plan_opts *o, const struct cit_plan_model *m, struct option_result *r,
                         int nr, const struct cit_plan_cloud *clouds, int nc)
{
    char a[32], b[32], c[32], d[32], e[32], f[32];
    printf("Model %s (%s): %.2fB parameters, %.2fB active; %u layers, %u KV heads x %u dims\n", m->name, m->id,
           m->n_params / 1e9, m->n_active / 1e9, m->n_layer, m->n_head_kv, m->head_dim);
    printf("Load: context %lld x %lld sequences, KV cache %s (%llu B per token per sequence)\n", o->ctx, o->conc,
           cit_plan_kv_type_name(o->kv), (unsigned long long)r[0].mem.kv_per_token);
    printf("\nMEMORY\n%-22s %-10s %10s %10s %10s %10s %12s %12s  %-4s %10s %9s\n", "option", "quant", "weights", "KV cache",
           "compute", "overhead", "total", "capacity", "fits", "max ctx", "max conc");
    for (int i = 0; i < nr; i++) {
        char opt[160];
        snprintf(opt, sizeof opt, "%s x%u", r[i].hw.id, r[i].n_dev);
        printf("%-22s %-10s %10s %10s %10s %10s %12s %12s  %-4s %10llu %9llu\n", opt, r[i].quant,
               gib(r[i].mem.weight_bytes, a, 32), gib(r[i].mem.kv_bytes, b, 32), gib(r[i].mem.compute_bytes * r[i].n_dev, c, 32),
               gib(r[i].mem.overhead_bytes, d, 32), gib(r[i].mem.total_bytes, e, 32),
               gib(r[i].mem.capacity_bytes, f, 32), r[i].mem.fits ? "yes" : "NO",
               (unsigned long long)r[i].mem.max_ctx, (unsigned long long)r[i].mem.max_seq);
    }
    printf("\nSPEED (roofline estimates; average position %lld; prompt %lld tokens)\n", o->ctx / 2, o->prompt_len);
    printf("%-22s %-10s %11s %13s %11s %8s %11s %9s  %s\n", "option", "quant", "1 stream", "all streams", "per stream",
           "bound", "prompt", "TTFT", "efficiency (bw, compute)");
    for (int i = 0; i < nr; i++) {
        char opt[160];
        snprintf(opt, sizeof opt, "%s x%u", r[i].hw.id, r[i].n_dev);
        printf("%-22s %-10s %9.1f/s %11.1f/s %9.1f/s %8s %9.0f/s %8.2fs  %.2f, %.2f%s\n", opt, r[i].quant,
               r[i].speed.gen_tps_single, r[i].speed.agg_tps, r[i].speed.per_stream_tps,
               r[i].speed.compute_bound ? "compute" : "memory", r[i].speed.prompt_tps, r[i].speed.ttft_s,
               r[i].eff.bandwidth, r[i].eff.compute, r[i].calibrated ? " (calibrated)" : " (default)");
    }
    printf("\nCOST (utilisation %.0f%%, %.2f USD/kWh, PUE %.2f, %.0f years, residual %.0f%%, maintenance %.0f%%/yr)\n",
           o->util * 100, o->kwh, o->pue, o->years, o->residual * 100, o->maint * 100);
    printf("%-22s %-10s %12s %11s %10s %10s %10s %11s %11s\n", "option", "quant", "capex", "amort/yr", "power/yr",
           "maint/yr", "staff/yr", "USD/M in", "USD/M out");
    for (int i = 0; i < nr; i++) {
        char opt[160];
        snprintf(opt, sizeof opt, "%s x%u", r[i].hw.id, r[i].n_dev);
        printf("%-22s %-10s %12.0f %11.0f %10.0f %10.0f %10.0f %11.4f %11.4f\n", opt, r[i].quant, r[i].cp.capex_usd,
               r[i].cost.amort_year, r[i].cost.power_year, r[i].cost.maint_year, r[i].cost.staff_year,
               r[i].cost.usd_per_m_input, r[i].cost.usd_per_m_output);
    }
    if (nc > 0) {
        printf("\nAGAINST THE CLOUD (%.3g tokens/month, %.0f%% input)\n", o->monthly, o->share * 100);
        bool starred = false;
        printf("%-22s %-10s %-26s %9s %13s %13s %16s\n", "option", "quant", "cloud", "replicas", "on-prem/mo",
               "cloud/mo", "break-even/mo");
        for (int i = 0; i < nr; i++)
            for (int k = 0; k < nc; k++) {
                struct cit_plan_compare cmp;
                char err[256], opt[160], be[32];
                snprintf(opt, sizeof opt, "%s x%u", r[i].hw.id, r[i].n_dev);
                if (cit_plan_compare_cloud(&r[i].cp, r[i].speed.prompt_tps, r[i].speed.agg_tps, &clouds[k],
                                           o->monthly, o->share, &cmp, err, sizeof err) != CIT_OK)
                    continue;
                if (cmp.breakeven_tokens_month < 0)
                    snprintf(be, sizeof be, "never");
                else {
                    bool beyond = cmp.breakeven_tokens_month > cmp.capacity_tokens_month;
                    starred = starred || beyond;
                    snprintf(be, sizeof be, "%.3g tok%s", cmp.breakeven_tokens_month, beyond ? "*" : "");
                }
                printf("%-22s %-10s %-26s %9u %13.0f %13.0f %16s\n", opt, r[i].quant, clouds[k].id, cmp.replicas,
                       cmp.onprem_month, cmp.cloud_month, be);
            }
        if (starred)
            printf("(* beyond one deployment's monthly capacity at this mix)\n");
    }
    printf("\nSENSITIVITY: USD per million tokens (%.0f%% input) against utilisation\n%-8s", o->share * 100, "util");
    for (int i = 0; i < nr; i++) {
        char opt[160];
        snprintf(opt, sizeof opt, "%s x%u %.16s", r[i].hw.id, r[i].n_dev, r[i].quant);
        printf(" %24s", opt);
    }
    printf("\n");
    for (size_t s = 0; s < N_SENS; s++) {
        printf("%6.0f%% ", sens_util[s] * 100);
        for (int i = 0; i < nr; i++) {
            struct cit_plan_cost_params cp = r[i].cp;
            struct cit_plan_cost cost;
            char err[128];
            cp.utilization = sens_util[s];
            if (cit_plan_cost(&cp, r[i].speed.prompt_tps, r[i].speed.agg_tps, &cost, err, sizeof err) == CIT_OK)
                printf(" %24.4f", blended(cost.usd_per_m_input, cost.usd_per_m_output, o->share));
        }
        printf("\n");
    }
    for (int k = 0; k < nc; k++)
        printf("cloud %-26s %.4f USD per million tokens (%.2f in / %.2f out; %s, %s)\n", clouds[k].id,
               blended(clouds[k].usd_per_m_input, clouds[k].usd_per_m_output, o->share), clouds[k].usd_per_m_input,
               clouds[k].usd_per_m_output, clouds[k].source, clouds[k].date);
    printf("\nEstimates, not measurements: see docs/planner.md for every formula and assumption.\n");
}

static json_t *json_result(const struct plan_opts *o, const struct cit_plan_model *m, struct option_result *r,
                           int nr, const struct cit_plan_cloud *clouds, int nc)
{
    json_t *root = json_object(), *opts = json_array();
    json_object_set_new(root, "model",
                        json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "id", m->id, "name", m->name, "n_params",
                                  (json_int_t)m->n_params, "n_active", (json_int_t)m->n_active, "source", m->source,
                                  "date", m->date));
    json_object_set_new(root, "assumptions",
                        json_pack("{s:I, s:I, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "ctx",
                                  (json_int_t)o->ctx, "concurrency", (json_int_t)o->conc, "kv_type",
                                  cit_plan_kv_type_name(o->kv), "prompt_len", (json_int_t)o->prompt_len, "utilization",
                                  o->util, "usd_per_kwh", o->kwh, "pue", o->pue, "years", o->years, "residual",
                                  o->residual, "maintenance", o->maint, "staff_usd_year", o->staff, "monthly_tokens",
                                  o->monthly, "input_share", o->share));
    for (int i = 0; i < nr; i++) {
        json_t *sens = json_array(), *cl = json_array();
        for (size_t s = 0; s < N_SENS; s++) {
            struct cit_plan_cost_params cp = r[i].cp;
            struct cit_plan_cost cost;
            cp.utilization = sens_util[s];
            if (cit_plan_cost(&cp, r[i].speed.prompt_tps, r[i].speed.agg_tps, &cost, NULL, 0) == CIT_OK)
                json_array_append_new(sens, json_pack("{s:f, s:f, s:f}", "utilization", sens_util[s],
                                                      "usd_per_m_input", cost.usd_per_m_input, "usd_per_m_output",
                                                      cost.usd_per_m_output));
        }
        for (int k = 0; k < nc; k++) {
            struct cit_plan_compare cmp;
            if (cit_plan_compare_cloud(&r[i].cp, r[i].speed.prompt_tps, r[i].speed.agg_tps, &clouds[k], o->monthly,
                                       o->share, &cmp, NULL, 0) == CIT_OK)
                json_array_append_new(cl, json_pack("{s:s, s:f, s:f, s:i, s:f, s:f, s:f, s:f}", "cloud", clouds[k].id,
                                                    "usd_per_m_input", clouds[k].usd_per_m_input, "usd_per_m_output",
                                                    clouds[k].usd_per_m_output, "replicas", (int)cmp.replicas,
                                                    "onprem_usd_month", cmp.onprem_month, "cloud_usd_month",
                                                    cmp.cloud_month, "breakeven_tokens_month",
                                                    cmp.breakeven_tokens_month, "capacity_tokens_month",
                                                    cmp.capacity_tokens_month));
        }
        json_t *mem = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I}", "weight_bytes",
                                (json_int_t)r[i].mem.weight_bytes, "kv_bytes_per_token", (json_int_t)r[i].mem.kv_per_token,
                                "kv_bytes", (json_int_t)r[i].mem.kv_bytes, "compute_bytes_per_device",
                                (json_int_t)r[i].mem.compute_bytes, "overhead_bytes", (json_int_t)r[i].mem.overhead_bytes,
                                "total_bytes", (json_int_t)r[i].mem.total_bytes, "capacity_bytes",
                                (json_int_t)r[i].mem.capacity_bytes, "per_device_bytes",
                                (json_int_t)r[i].mem.per_device_bytes, "fits", r[i].mem.fits, "max_ctx",
                                (json_int_t)r[i].mem.max_ctx, "max_concurrency", (json_int_t)r[i].mem.max_seq);
        json_t *spd = json_pack("{s:f, s:f, s:f, s:f, s:f, s:s, s:f, s:f, s:f, s:f, s:b}", "gen_tokens_per_s_single",
                                r[i].speed.gen_tps_single, "gen_tokens_per_s_total", r[i].speed.agg_tps,
                                "gen_tokens_per_s_per_stream", r[i].speed.per_stream_tps, "bandwidth_bound",
                                r[i].speed.agg_bw_bound, "compute_bound", r[i].speed.agg_compute_bound, "bound",
                                r[i].speed.compute_bound ? "compute" : "memory", "prompt_tokens_per_s",
                                r[i].speed.prompt_tps, "ttft_s", r[i].speed.ttft_s, "bandwidth_efficiency",
                                r[i].eff.bandwidth, "compute_efficiency", r[i].eff.compute, "calibrated",
                                r[i].calibrated);
        json_t *cost = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "capex_usd", r[i].cp.capex_usd,
                                 "amortisation_usd_year", r[i].cost.amort_year, "power_usd_year", r[i].cost.power_year,
                                 "maintenance_usd_year", r[i].cost.maint_year, "staff_usd_year", r[i].cost.staff_year,
                                 "total_usd_year", r[i].cost.total_year, "usd_per_m_input", r[i].cost.usd_per_m_input,
                                 "usd_per_m_output", r[i].cost.usd_per_m_output);
        json_array_append_new(opts, json_pack("{s:s, s:f, s:s, s:i, s:s, s:o, s:o, s:o, s:o, s:o}", "quant",
                                              r[i].quant, "bits_per_weight", r[i].bpw, "hardware", r[i].hw.id,
                                              "devices", (int)r[i].n_dev, "hardware_source", r[i].hw.source,
                                              "memory", mem, "speed", spd, "cost", cost, "cloud", cl,
                                              "sensitivity", sens));
    }
    json_object_set_new(root, "options", opts);
    return root;
}

/* Cost per million tokens (blended at the input share) against utilisation
 * on a log scale, one line per option, cloud prices as dashed lines, and a
 * ring where an option's line crosses a cloud price (the break-even
 * utilisation). */
static int write_svg(const char *path, const struct plan_opts *o, struct option_result *r, int nr,
                     const struct cit_plan_cloud *clouds, int nc)
{
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
                                         "#e377c2", "#17becf"};
    enum { W = 900, H = 560, L = 80, R = 260, T = 50, B = 60, STEPS = 91 };
    double ymin = 1e300, ymax = 0, curve[MAX_ITEMS * MAX_ITEMS][STEPS];
    for (int i = 0; i < nr; i++)
        for (int s = 0; s < STEPS; s++) {
            struct cit_plan_cost_params cp = r[i].cp;
            struct cit_plan_cost cost;
            cp.utilization = 0.1 + 0.01 * s;
            curve[i][s] = 0;
            if (cit_plan_cost(&cp, r[i].speed.prompt_tps, r[i].speed.agg_tps, &cost, NULL, 0) == CIT_OK)
                curve[i][s] = blended(cost.usd_per_m_input, cost.usd_per_m_output, o->share);
            if (curve[i][s] > 0 && curve[i][s] < ymin) ymin = curve[i][s];
            if (curve[i][s] > ymax) ymax = curve[i][s];
        }
    for (int k = 0; k < nc; k++) {
        double p = blended(clouds[k].usd_per_m_input, clouds[k].usd_per_m_output, o->share);
        if (p > 0 && p < ymin) ymin = p;
        if (p > ymax) ymax = p;
    }
    if (!(ymax > 0) || !(ymin < 1e300)) {
        fprintf(stderr, "citadel plan: nothing to draw in %s\n", path);
        return 1;
    }
    double lo = floor(log10(ymin)), hi = ceil(log10(ymax));
    if (hi <= lo)
        hi = lo + 1;
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
#define X(u) (L + ((u) - 0.1) / 0.9 * (W - L - R))
#define Y(v) (T + (hi - log10(v)) / (hi - lo) * (H - T - B))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"25\" font-size=\"15\">Cost per million tokens (%.0f%% input) against "
               "utilisation (estimate)</text>\n", L, o->share * 100);
    for (double dec = lo; dec <= hi; dec += 1) {
        double v = pow(10, dec);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n<text x=\"%d\" y=\"%.1f\" "
                   "text-anchor=\"end\">%g</text>\n", L, W - R, Y(v), Y(v), L - 6, Y(v) + 4, v);
    }
    for (int u = 10; u <= 100; u += 10)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#eee\"/>\n<text x=\"%.1f\" y=\"%d\" "
                   "text-anchor=\"middle\">%d%%</text>\n", X(u / 100.0), X(u / 100.0), T, H - B, X(u / 100.0),
                H - B + 18, u);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">utilisation</text>\n<text x=\"20\" y=\"%d\" "
               "transform=\"rotate(-90 20 %d)\" text-anchor=\"middle\">USD per million tokens (log)</text>\n",
            (L + W - R) / 2, H - 20, (T + H - B) / 2, (T + H - B) / 2);
    for (int k = 0; k < nc; k++) {
        double p = blended(clouds[k].usd_per_m_input, clouds[k].usd_per_m_output, o->share);
        if (!(p > 0))
            continue;
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"6 4\"/>\n"
                   "<text x=\"%d\" y=\"%.1f\" fill=\"#555\">%s %.3g</text>\n", L, W - R, Y(p), Y(p), W - R + 6,
                Y(p) + 4, clouds[k].id, p);
    }
    for (int i = 0; i < nr; i++) {
        const char *col = colors[i % 8];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int s = 0; s < STEPS; s++)
            if (curve[i][s] > 0)
                fprintf(f, "%.1f,%.1f ", X(0.1 + 0.01 * s), Y(curve[i][s]));
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s x%u %s</text>\n", W - R + 6, T + 14 * i, col,
                r[i].hw.id, r[i].n_dev, r[i].quant);
        for (int k = 0; k < nc; k++) {
            double p = blended(clouds[k].usd_per_m_input, clouds[k].usd_per_m_output, o->share);
            for (int s = 1; s < STEPS; s++)
                if (curve[i][s - 1] > p && curve[i][s] <= p) {
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"none\" stroke=\"%s\" "
                               "stroke-width=\"2\"><title>break-even with %s at %.0f%% utilisation</title></circle>\n",
                            X(0.1 + 0.01 * s), Y(p), col, clouds[k].id, (0.1 + 0.01 * s) * 100);
                    break;
                }
        }
    }
#undef X
#undef Y
    fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#777\">rings: break-even with a cloud price. Roofline estimates; "
               "see docs/planner.md</text>\n</svg>\n", L, H - 4);
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

static void list_catalog(const struct cit_plan_catalog *cat)
{
    printf("MODELS\n");
    for (size_t i = 0; i < cit_plan_n_models(cat); i++) {
        const struct cit_plan_model *m = cit_plan_model_at(cat, i);
        printf("  %-18s %-20s %8.2fB (%6.2fB active) %3u layers %3u KV heads x %3u  [%s, %s]\n", m->id, m->name,
               m->n_params / 1e9, m->n_active / 1e9, m->n_layer, m->n_head_kv, m->head_dim, m->source, m->date);
    }
    printf("HARDWARE\n");
    for (size_t i = 0; i < cit_plan_n_hw(cat); i++) {
        const struct cit_plan_hw *h = cit_plan_hw_at(cat, i);
        printf("  %-18s %6.0f GiB %7.1f GB/s %7.1f TFLOPS %5.0f W  ~%6.0f USD  %s  [%s, %s]\n", h->id, h->mem_gib,
               h->bw_gbs, h->fp16_tflops, h->watts_load, h->price_usd, h->name, h->source, h->date);
    }
    printf("CLOUD (USD per million tokens)\n");
    for (size_t i = 0; i < cit_plan_n_cloud(cat); i++) {
        const struct cit_plan_cloud *c = cit_plan_cloud_at(cat, i);
        printf("  %-26s in %6.2f out %6.2f  %s  [%s, %s]\n", c->id, c->usd_per_m_input, c->usd_per_m_output, c->name,
               c->source, c->date);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

int cmd_plan(int argc, char **argv)
{
    struct plan_opts o = {.ctx = 0, .conc = 1, .prompt_len = DEF_PROMPT, .kv = CIT_PLAN_KV_F16,
                          .util = DEF_UTIL, .kwh = DEF_KWH, .pue = DEF_PUE, .years = DEF_YEARS,
                          .residual = DEF_RESIDUAL, .maint = DEF_MAINT, .price = -1, .monthly = 1e9,
                          .share = DEF_INPUT_SHARE};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    char err[512];
    struct cit_plan_catalog *cat = NULL;
    if (cit_plan_catalog_builtin(&cat, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel plan: %s\n", err);
        return 1;
    }
    rc = 1;
    struct option_result *res = NULL;
    char quant_buf[256], hw_buf[512], cloud_buf[512];
    char *quants[MAX_ITEMS], *hws[MAX_ITEMS], *cls[MAX_ITEMS];
    struct cit_plan_cloud clouds[MAX_ITEMS];
    int nq = 1, nh, nc = 0, nr = 0;
    struct cit_plan_model model;
    struct stat st;
    if (o.catalog && cit_plan_catalog_merge_file(cat, o.catalog, err, sizeof err) != CIT_OK) {
        fprintf(stderr, "citadel plan: %s\n", err);
        goto out;
    }
    if (o.list) {
        list_catalog(cat);
        rc = 0;
        goto out;
    }
    if (stat(o.model, &st) == 0) {
        if (cit_plan_model_from_file(o.model, &model, err, sizeof err) != CIT_OK) {
            fprintf(stderr, "citadel plan: %s\n", err);
            goto out;
        }
        if (o.quant)
            fprintf(stderr, "citadel plan: note: --quant ignored for a file; its exact tensor bytes are used\n");
        snprintf(quant_buf, sizeof quant_buf, "%s", model.file_quant);
        quants[0] = quant_buf;
    } else {
        const struct cit_plan_model *cm = cit_plan_find_model(cat, o.model);
        if (!cm) {
            fprintf(stderr, "citadel plan: no file and no catalog model '%s'; `citadel plan --list` shows the ids\n",
                    o.model);
            goto out;
        }
        model = *cm;
        snprintf(quant_buf, sizeof quant_buf, "%s", o.quant ? o.quant : "Q4_K_M");
        nq = split(quant_buf, quants);
    }
    snprintf(hw_buf, sizeof hw_buf, "%s", o.hardware);
    nh = split(hw_buf, hws);
    if (o.cloud) {
        snprintf(cloud_buf, sizeof cloud_buf, "%s", o.cloud);
        nc = split(cloud_buf, cls);
    }
    if (nq <= 0 || nh <= 0 || nc < 0) {
        fprintf(stderr, "citadel plan: give 1 to %d comma-separated items to --quant, --hardware and --cloud\n",
                MAX_ITEMS);
        goto out;
    }
    for (int k = 0; k < nc; k++)
        if (parse_cloud_item(cat, cls[k], &clouds[k]) != 0) {
            fprintf(stderr, "citadel plan: --cloud '%s' is neither a catalog id nor a price (P or IN/OUT USD per "
                            "million tokens)\n", cls[k]);
            goto out;
        }
    if (o.ctx == 0)
        o.ctx = model.n_ctx_max && model.n_ctx_max < DEF_CTX ? model.n_ctx_max : DEF_CTX;
    if (model.n_ctx_max && o.ctx > model.n_ctx_max)
        fprintf(stderr, "citadel plan: warning: --ctx %lld exceeds %s's trained context %u\n", o.ctx, model.id,
                model.n_ctx_max);
    res = calloc((size_t)(nq * nh), sizeof *res);
    if (!res) {
        fprintf(stderr, "citadel plan: out of memory\n");
        goto out;
    }
    struct cit_plan_eff cal = {0, 0};
    bool have_cal = false;
    for (int h = 0; h < nh; h++) {
        char id[CIT_PLAN_ID_MAX];
        unsigned n_dev;
        const struct cit_plan_hw *hw = NULL;
        if (parse_hw_item(hws[h], id, sizeof id, &n_dev) != 0 || !(hw = cit_plan_find_hw(cat, id))) {
            /* an id that itself ends in x<digits> */
            n_dev = 1;
            hw = cit_plan_find_hw(cat, hws[h]);
        }
        if (!hw) {
            fprintf(stderr, "citadel plan: unknown hardware '%s' (ID or IDxN); `citadel plan --list` shows the ids\n",
                    hws[h]);
            goto out;
        }
        if (h == 0 && o.calibrate) {
            char *text = slurp(o.calibrate);
            if (!text) {
                fprintf(stderr, "citadel plan: cannot read --calibrate %s\n", o.calibrate);
                goto out;
            }
            enum cit_status cs = cit_plan_calibrate(text, hw, &cal, err, sizeof err);
            free(text);
            if (cs != CIT_OK) {
                fprintf(stderr, "citadel plan: --calibrate %s: %s\n", o.calibrate, err);
                goto out;
            }
            have_cal = true;
        }
        for (int q = 0; q < nq; q++) {
            struct option_result *r = &res[nr];
            r->quant = quants[q];
            r->hw = *hw;
            r->n_dev = n_dev;
            if (!model.weight_bytes && cit_plan_quant_bpw(quants[q], &r->bpw, err, sizeof err) != CIT_OK) {
                fprintf(stderr, "citadel plan: --quant: %s\n", err);
                goto out;
            }
            if (model.weight_bytes)
                r->bpw = 8.0 * (double)model.weight_bytes / (double)model.n_params;
            struct cit_plan_mem_params mp = {.n_ctx = (uint32_t)o.ctx, .n_seq = (uint32_t)o.conc,
                                             .kv_type = o.kv, .bpw = r->bpw, .n_dev = n_dev};
            if (cit_plan_memory(&model, hw, &mp, &r->mem, err, sizeof err) != CIT_OK) {
                fprintf(stderr, "citadel plan: %s\n", err);
                goto out;
            }
            r->calibrated = have_cal;
            r->eff = have_cal ? cal : (struct cit_plan_eff){CIT_PLAN_DEFAULT_BW_EFF, CIT_PLAN_DEFAULT_COMPUTE_EFF};
            struct cit_plan_speed_params sp = {.n_dev = n_dev, .n_seq = (uint32_t)o.conc,
                                               .ctx_avg = (uint32_t)(o.ctx / 2), .prompt_len = (uint32_t)o.prompt_len,
                                               .eff = r->eff};
            if (cit_plan_speed(&model, r->mem.weight_bytes, r->mem.kv_per_token, hw, &sp, &r->speed, err,
                               sizeof err) != CIT_OK) {
                fprintf(stderr, "citadel plan: %s\n", err);
                goto out;
            }
            r->cp = (struct cit_plan_cost_params){
                .capex_usd = (o.price >= 0 ? o.price : hw->price_usd) * n_dev, .years = o.years,
                .residual_frac = o.residual, .watts_load = hw->watts_load * n_dev,
                .watts_idle = hw->watts_idle * n_dev, .pue = o.pue, .usd_per_kwh = o.kwh, .utilization = o.util,
                .maintenance_frac = o.maint, .staff_usd_year = o.staff};
            if (cit_plan_cost(&r->cp, r->speed.prompt_tps, r->speed.agg_tps, &r->cost, err, sizeof err) != CIT_OK) {
                fprintf(stderr, "citadel plan: %s\n", err);
                goto out;
            }
            nr++;
        }
    }
    if (o.json) {
        json_t *j = json_result(&o, &model, res, nr, clouds, nc);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        json_decref(j);
        if (!s) {
            fprintf(stderr, "citadel plan: out of memory\n");
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        print_tables(&o, &model, res, nr, clouds, nc);
    }
    if (o.svg) {
        /* without --cloud, draw every catalog price */
        struct cit_plan_cloud all[MAX_ITEMS];
        int na = nc;
        if (nc == 0)
            for (size_t k = 0; k < cit_plan_n_cloud(cat) && na < MAX_ITEMS; k++)
                all[na++] = *cit_plan_cloud_at(cat, k);
        if (write_svg(o.svg, &o, res, nr, nc ? clouds : all, na) != 0)
            goto out;
    }
    rc = 0;
out:
    free(res);
    cit_plan_catalog_free(cat);
    return rc;
}
