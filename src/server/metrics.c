/* metrics.c: Prometheus counters and histograms for citadel serve (see
 * metrics.h). The text is built in one growing buffer with open_memstream,
 * under the metrics lock, so a scrape sees one consistent snapshot. */
#include "server/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTE_STATUS 128
#define N_BUCKETS 11

/* Upper bounds in seconds; +Inf is implicit. */
static const double TTFT_BUCKETS[N_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double ITL_BUCKETS[N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

struct histogram {
    uint64_t counts[N_BUCKETS + 1]; /* per bucket (not cumulative); last = above every bound */
    uint64_t n;
    double sum;
};

struct route_status {
    const char *route; /* static strings from the route table */
    int status;
    uint64_t n;
};

struct srv_metrics {
    pthread_mutex_t mu;
    struct route_status rs[MAX_ROUTE_STATUS];
    size_t n_rs;
    uint64_t rs_overflow; /* (route, status) pairs beyond the table, counted under "other" */
    size_t n_models;
    struct histogram *ttft, *itl; /* (n_models) */
};

struct srv_metrics *srv_metrics_new(size_t n_models)
{
    struct srv_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->n_models = n_models;
    m->ttft = calloc(n_models ? n_models : 1, sizeof *m->ttft);
    m->itl = calloc(n_models ? n_models : 1, sizeof *m->itl);
    if (!m->ttft || !m->itl) {
        srv_metrics_free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void srv_metrics_free(struct srv_metrics *m)
{
    if (!m)
        return;
    if (m->ttft && m->itl)
        pthread_mutex_destroy(&m->mu);
    free(m->ttft);
    free(m->itl);
    free(m);
}

void srv_metrics_request(struct srv_metrics *m, const char *route, int status)
{
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->n_rs && !(m->rs[i].status == status && strcmp(m->rs[i].route, route) == 0))
        i++;
    if (i == m->n_rs && m->n_rs < MAX_ROUTE_STATUS)
        m->rs[m->n_rs++] = (struct route_status){.route = route, .status = status};
    if (i < m->n_rs)
        m->rs[i].n++;
    else
        m->rs_overflow++;
    pthread_mutex_unlock(&m->mu);
}

static void observe(pthread_mutex_t *mu, struct histogram *h, const double *bounds, double v)
{
    size_t b = 0;
    while (b < N_BUCKETS && v > bounds[b])
        b++;
    pthread_mutex_lock(mu);
    h->counts[b]++;
    h->n++;
    h->sum += v;
    pthread_mutex_unlock(mu);
}

void srv_metrics_ttft(struct srv_metrics *m, size_t model, double seconds)
{
    if (model < m->n_models)
        observe(&m->mu, &m->ttft[model], TTFT_BUCKETS, seconds);
}

void srv_metrics_itl(struct srv_metrics *m, size_t model, double seconds)
{
    if (model < m->n_models)
        observe(&m->mu, &m->itl[model], ITL_BUCKETS, seconds);
}

static void render_histogram(FILE *f, const char *name, const char *model, const struct histogram *h,
                             const double *bounds)
{
    uint64_t cum = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cum += h->counts[b];
        fprintf(f, "%s_bucket{model=\"%s\",le=\"%g\"} %" PRIu64 "\n", name, model, bounds[b], cum);
    }
    fprintf(f, "%s_bucket{model=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name, model, h->n);
    fprintf(f, "%s_sum{model=\"%s\"} %.9g\n", name, model, h->sum);
    fprintf(f, "%s_count{model=\"%s\"} %" PRIu64 "\n", name, model, h->n);
}

/* One per-model series family: HELP, TYPE, then a line per model. */
#define FAMILY(f, NAME_, TYPE_, HELP_, MODELS_, N_, FMT_, EXPR_)                                           \
    do {                                                                                                   \
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", NAME_, HELP_, NAME_, TYPE_);                              \
        for (size_t i_ = 0; i_ < (N_); i_++) {                                                             \
            const struct cit_engine_stats *s = &(MODELS_)[i_].stats;                                       \
            fprintf(f, "%s{model=\"%s\"} " FMT_ "\n", NAME_, (MODELS_)[i_].name, EXPR_);                    \
        }                                                                                                  \
    } while (0)

char *srv_metrics_render(struct srv_metrics *m, const struct srv_metrics_model *models, size_t n_models)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    pthread_mutex_lock(&m->mu);
    fprintf(f, "# HELP citadel_requests_total HTTP requests answered, by route and status.\n"
               "# TYPE citadel_requests_total counter\n");
    for (size_t i = 0; i < m->n_rs; i++)
        fprintf(f, "citadel_requests_total{route=\"%s\",status=\"%d\"} %" PRIu64 "\n", m->rs[i].route,
                m->rs[i].status, m->rs[i].n);
    if (m->rs_overflow)
        fprintf(f, "citadel_requests_total{route=\"other\",status=\"other\"} %" PRIu64 "\n", m->rs_overflow);
    FAMILY(f, "citadel_prompt_tokens_total", "counter", "Prompt tokens computed.", models, n_models, "%" PRIu64,
           s->prompt_tokens);
    FAMILY(f, "citadel_cached_tokens_total", "counter", "Prompt tokens reused from the KV cache instead of computed.",
           models, n_models, "%" PRIu64, s->cached_tokens);
    FAMILY(f, "citadel_generated_tokens_total", "counter", "Tokens generated.", models, n_models, "%" PRIu64,
           s->generated_tokens);
    FAMILY(f, "citadel_engine_steps_total", "counter", "Batches run by the engine.", models, n_models,
           "%" PRIu64, s->steps);
    FAMILY(f, "citadel_queue_depth", "gauge", "Requests waiting for a slot.", models, n_models, "%u",
           s->queue_depth);
    FAMILY(f, "citadel_slots_busy", "gauge", "Slots holding a request.", models, n_models, "%u", s->busy_slots);
    FAMILY(f, "citadel_slots_total", "gauge", "Slots (concurrent sequences).", models, n_models, "%u",
           s->n_slots);
    FAMILY(f, "citadel_kv_cache_used_ratio", "gauge", "Share of KV cache positions held by busy slots.", models,
           n_models, "%.6f", s->kv_total ? (double)s->kv_used / (double)s->kv_total : 0.0);
    fprintf(f, "# HELP citadel_time_to_first_token_seconds From request arrival to the first generated token.\n"
               "# TYPE citadel_time_to_first_token_seconds histogram\n");
    for (size_t i = 0; i < n_models && i < m->n_models; i++)
        render_histogram(f, "citadel_time_to_first_token_seconds", models[i].name, &m->ttft[i], TTFT_BUCKETS);
    fprintf(f, "# HELP citadel_inter_token_latency_seconds Between consecutive generated tokens of a sequence.\n"
               "# TYPE citadel_inter_token_latency_seconds histogram\n");
    for (size_t i = 0; i < n_models && i < m->n_models; i++)
        render_histogram(f, "citadel_inter_token_latency_seconds", models[i].name, &m->itl[i], ITL_BUCKETS);
    pthread_mutex_unlock(&m->mu);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
