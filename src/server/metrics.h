/* metrics.h: the server's Prometheus metrics.
 *
 * Counters and histograms that only the HTTP side sees (requests by route
 * and status, time to first token, inter-token latency) live here behind a
 * mutex; gauges and token totals that the engines keep (queue depth, busy
 * slots, KV use, prompt/generated/cached tokens) are read from
 * cit_engine_stats when /metrics is scraped, so they are never stale. */
#ifndef CITADEL_SERVER_METRICS_H
#define CITADEL_SERVER_METRICS_H

#include <stddef.h>

#include "citadel/engine.h"

struct srv_metrics;

/* n_models histograms pairs; names are borrowed (must outlive the metrics). */
struct srv_metrics *srv_metrics_new(size_t n_models);
void srv_metrics_free(struct srv_metrics *m);

/* One finished HTTP request: route is the route table's path (or "other"). */
void srv_metrics_request(struct srv_metrics *m, const char *route, int status);
/* Seconds from the request's arrival to its first generated token. */
void srv_metrics_ttft(struct srv_metrics *m, size_t model, double seconds);
/* Seconds between two consecutive generated tokens of one sequence. */
void srv_metrics_itl(struct srv_metrics *m, size_t model, double seconds);

/* One model as the scrape sees it. */
struct srv_metrics_model {
    const char *name;
    struct cit_engine_stats stats; /* zeroed while the model loads */
};

/* Renders the Prometheus text exposition format (version 0.0.4) into a
 * malloc'd NUL-terminated string; NULL when out of memory. */
char *srv_metrics_render(struct srv_metrics *m, const struct srv_metrics_model *models, size_t n_models);

#endif
