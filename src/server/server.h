/* server.h: `citadel serve`, an OpenAI-compatible HTTP server.
 *
 * srv_run starts libmicrohttpd (one thread per connection), loads the models
 * (GET /health answers 503 until they are ready), creates one engine per
 * model (citadel/engine.h) and serves until SIGTERM or SIGINT. Then it stops
 * accepting connections, lets in-flight requests finish for up to
 * drain_timeout_s seconds, cancels what is left (clients get a clean end: a
 * 503 "cancelled" error, or an SSE error event ending the stream) and
 * returns 0. */
#ifndef CITADEL_SERVER_SERVER_H
#define CITADEL_SERVER_SERVER_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "citadel/engine.h"

#define SRV_MAX_MODELS 16

struct srv_model_spec {
    const char *path;  /* GGUF file */
    const char *alias; /* model id in the API; NULL: the file's base name without .gguf */
};

struct srv_config {
    struct srv_model_spec models[SRV_MAX_MODELS];
    size_t n_models;
    const char *host;        /* IPv4 or IPv6 literal, or "localhost"; default 127.0.0.1 */
    uint16_t port;           /* 0: any free port (printed) */
    struct cit_engine_params engine;
    size_t max_body;         /* bytes; larger bodies get 413 */
    unsigned idle_timeout_s; /* a connection silent this long is closed (slow clients) */
    unsigned drain_timeout_s;
    unsigned max_connections;
    unsigned max_connections_per_ip; /* 0: no cap per client address */
    const char *api_key;     /* NULL: none; else every route but /health needs "Authorization: Bearer KEY" */
    FILE *log;               /* where the listening line and errors go (stderr) */
    bool repack;             /* --repack: cit_model_repack each model after loading */
};

void srv_config_default(struct srv_config *c);

/* Runs the server until SIGTERM/SIGINT. Returns 0 after a clean drain, 1 when
 * it cannot start (message in err: port in use, model that fails to load). */
int srv_run(const struct srv_config *c, char *err, size_t errlen);

#endif
