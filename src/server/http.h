/* http.h: what the request handlers share with the HTTP core (http.c):
 * the server state, one request's state, and the ways to answer it.
 *
 * Every handler runs on its connection's own thread (libmicrohttpd's
 * thread-per-connection mode), so it may block while the engine generates;
 * a streamed answer is produced by a reader callback on that same thread. */
#ifndef CITADEL_SERVER_HTTP_H
#define CITADEL_SERVER_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <microhttpd.h>

#include "citadel/engine.h"
#include "server/json_out.h"
#include "server/metrics.h"
#include "server/params.h"
#include "server/server.h"

struct cit_model;
struct cit_tokenizer;
struct cit_template;

/* One served model. */
struct srv_model {
    char *id;
    const char *path;
    struct cit_model *model;
    struct cit_tokenizer *tok;
    struct cit_template *tmpl;
    struct cit_engine *eng;
    uint32_t n_ctx;  /* positions per slot */
    uint32_t n_vocab, n_embd;
    long created;    /* file mtime, for /v1/models */
};

enum srv_state { SRV_LOADING, SRV_READY, SRV_DRAINING };

struct srv {
    struct srv_config cfg;
    struct srv_model models[SRV_MAX_MODELS];
    size_t n_models;
    _Atomic int state;         /* enum srv_state */
    _Atomic int in_flight;     /* generation requests not yet answered */
    struct srv_metrics *metrics;
    struct MHD_Daemon *daemon;
};

/* One HTTP request, from its first byte to the response's end. */
struct srv_req {
    struct srv *srv;
    struct MHD_Connection *conn;
    const struct srv_route *route;
    struct srv_buf body;     /* the request body as it arrives */
    bool too_large;
    double t_start;          /* monotonic seconds at the first byte */
    int status;              /* the status answered (for metrics) */
    bool counted_in_flight;
};

#define SRV_BODY_CONFIG SIZE_MAX

typedef enum MHD_Result (*srv_handler)(struct srv_req *r, json_t *body);

struct srv_route {
    const char *method;
    const char *path;
    srv_handler handler;
    size_t body_limit; /* 0: no body (any is discarded); SRV_BODY_CONFIG: --max-body; else bytes.
                        * A body is a JSON object, parsed before the handler runs. */
};

/* Monotonic clock, seconds. */
double srv_now(void);

/* Answers with a JSON document (stolen: decref'd here) and status. */
enum MHD_Result srv_reply_json(struct srv_req *r, int status, json_t *doc);
/* Answers with an OpenAI error document built from e. */
enum MHD_Result srv_reply_error(struct srv_req *r, const struct srv_error *e);
/* Answers with a text body (copied). */
enum MHD_Result srv_reply_text(struct srv_req *r, int status, const char *content_type, const char *text,
                               size_t len);
/* Queues a response object, counting it in the metrics. */
enum MHD_Result srv_queue(struct srv_req *r, int status, struct MHD_Response *resp);

/* True when the client has closed its connection (checked without blocking). */
bool srv_client_gone(struct MHD_Connection *conn);

/* The model a request names ("" or absent: the only one, or the first); NULL
 * and e filled (404 model_not_found) when unknown. */
struct srv_model *srv_find_model(struct srv *s, const char *name, struct srv_error *e);

/* The model a request body names, and the body validated against the
 * parameter table for endpoint ep into q. NULL with e filled (and q
 * cleared) on the first problem. */
struct srv_model *srv_parse_request(struct srv_req *r, const json_t *body, enum srv_endpoint ep,
                                    struct srv_request *q, struct srv_error *e);

/* A fresh random hex id with prefix ("chatcmpl-", "cmpl-"), into buf. */
void srv_make_id(char *buf, size_t cap, const char *prefix);

/* Handlers (openai.c: generation; routes.c: the rest). */
enum MHD_Result srv_handle_chat(struct srv_req *r, json_t *body);
enum MHD_Result srv_handle_completion(struct srv_req *r, json_t *body);
enum MHD_Result srv_handle_embeddings(struct srv_req *r, json_t *body);
enum MHD_Result srv_handle_tokenize(struct srv_req *r, json_t *body);
enum MHD_Result srv_handle_detokenize(struct srv_req *r, json_t *body);
enum MHD_Result srv_handle_models(struct srv_req *r, json_t *body);
enum MHD_Result srv_handle_health(struct srv_req *r, json_t *body);
enum MHD_Result srv_handle_metrics(struct srv_req *r, json_t *body);

#endif
