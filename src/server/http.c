/* http.c: the HTTP core of citadel serve: the route table, request bodies
 * (size-limited while they arrive), answers, client liveness, model loading
 * and the SIGTERM drain.
 *
 * libmicrohttpd runs one thread per connection, so a handler may block on
 * its request's engine channel; the engines do the batching. Connections
 * are capped (max_connections, and max_connections_per_ip per client
 * address) and closed after idle_timeout_s without a byte in either
 * direction, which is what protects the threads from slow or idle clients.
 * libmicrohttpd 0.9.75 has no absolute deadline for a request's headers: a
 * client that sends a byte every idle_timeout_s - 1 seconds holds its
 * connection, and the caps bound how many such connections one address or
 * all of them can hold. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "citadel/model.h"
#include "citadel/template.h"
#include "citadel/tokenizer.h"
#include "server/json_out.h"

static const struct srv_route ROUTES[] = {
    /* method, path, handler, body limit */
    {"POST", "/v1/chat/completions", srv_handle_chat, SRV_BODY_CONFIG},
    {"POST", "/v1/completions", srv_handle_completion, SRV_BODY_CONFIG},
    {"POST", "/v1/embeddings", srv_handle_embeddings, SRV_BODY_CONFIG},
    {"GET", "/v1/models", srv_handle_models, 0},
    {"POST", "/tokenize", srv_handle_tokenize, SRV_BODY_CONFIG},
    {"POST", "/detokenize", srv_handle_detokenize, (size_t)1 << 20}, /* token ids only */
    {"GET", "/health", srv_handle_health, 0},
    {"GET", "/metrics", srv_handle_metrics, 0},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

void srv_config_default(struct srv_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8080;
    cit_engine_params_default(&c->engine);
    c->max_body = (size_t)8 << 20;
    c->idle_timeout_s = 60;
    c->drain_timeout_s = 30;
    c->max_connections = 256;
    c->max_connections_per_ip = 64;
    c->log = stderr;
}

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void srv_make_id(char *buf, size_t cap, const char *prefix)
{
    uint8_t rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint64_t t = (uint64_t)(srv_now() * 1e9);
        memcpy(rnd, &t, 8);
        memset(rnd + 8, 0, 4);
    }
    int n = snprintf(buf, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof rnd && n > 0 && (size_t)n + 2 < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, "%02x", rnd[i]);
}

enum MHD_Result srv_queue(struct srv_req *r, int status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    r->status = status;
    /* How long an idle connection lives here, so a keep-alive pool that reads
     * the hint (undici: Node's fetch and the openai npm client) retires it
     * before the server closes it, instead of sending a request into a socket
     * that is being closed. */
    char keep_alive[32];
    snprintf(keep_alive, sizeof keep_alive, "timeout=%u", r->srv->cfg.idle_timeout_s);
    MHD_add_response_header(resp, "Keep-Alive", keep_alive);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result srv_reply_text(struct srv_req *r, int status, const char *content_type, const char *text,
                               size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return srv_queue(r, status, resp);
}

enum MHD_Result srv_reply_json(struct srv_req *r, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}";
        return srv_reply_text(r, 500, "application/json", oom, sizeof oom - 1);
    }
    size_t len = strlen(text);
    text[len] = '\0';
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return srv_queue(r, status, resp);
}

static json_t *nullable_string(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* The error document of e, with one extra header when name is not NULL. */
static enum MHD_Result reply_error_with(struct srv_req *r, const struct srv_error *e, const char *name,
                                        const char *value)
{
    json_t *doc = json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", srv_json_text(e->message, strlen(e->message)),
                            "type", e->type ? e->type : "server_error", "param", nullable_string(e->param), "code",
                            nullable_string(e->code));
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    struct MHD_Response *resp = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (name)
        MHD_add_response_header(resp, name, value);
    return srv_queue(r, e->status ? e->status : 500, resp);
}

enum MHD_Result srv_reply_error(struct srv_req *r, const struct srv_error *e)
{
    /* Overloaded: tell clients (the openai package honours it) when to retry. */
    if (e->status == 429 || e->status == 503)
        return reply_error_with(r, e, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return reply_error_with(r, e, NULL, NULL);
}

bool srv_client_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return true;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

struct srv_model *srv_find_model(struct srv *s, const char *name, struct srv_error *e)
{
    if (!name || !*name)
        return &s->models[0];
    for (size_t i = 0; i < s->n_models; i++)
        if (strcmp(s->models[i].id, name) == 0)
            return &s->models[i];
    char known[256] = "";
    size_t k = 0;
    for (size_t i = 0; i < s->n_models && k < sizeof known - 1; i++)
        k += (size_t)snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "", s->models[i].id);
    srv_fail(e, 404, "invalid_request_error", "model", "model_not_found",
             "The model '%.200s' does not exist; this server has: %s", name, known);
    return NULL;
}

struct srv_model *srv_parse_request(struct srv_req *r, const json_t *body, enum srv_endpoint ep,
                                    struct srv_request *q, struct srv_error *e)
{
    /* The model first: its vocabulary bounds the token ids the table checks. */
    const json_t *jm = json_object_get(body, "model");
    if (jm && !json_is_string(jm) && !json_is_null(jm)) {
        srv_fail(e, 400, "invalid_request_error", "model", "invalid_type", "model must be a string");
        srv_request_clear(q);
        return NULL;
    }
    struct srv_model *sm = srv_find_model(r->srv, json_is_string(jm) ? json_string_value(jm) : "", e);
    if (sm && srv_params_parse(ep, body, sm->n_vocab, q, e))
        return sm;
    srv_request_clear(q);
    return NULL;
}

/* ---- the access handler ---- */

/* The body limit of r's route, in bytes (0: no body). */
static size_t body_limit(const struct srv_req *r)
{
    size_t lim = r->route->body_limit;
    return lim == SRV_BODY_CONFIG ? r->srv->cfg.max_body : lim;
}

static const struct srv_route *find_route(const char *url, const char *method, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (strcmp(ROUTES[i].path, url) != 0)
            continue;
        *path_known = true;
        if (strcmp(ROUTES[i].method, method) == 0)
            return &ROUTES[i];
    }
    return NULL;
}

static enum MHD_Result reply_simple_error(struct srv_req *r, int status, const char *type, const char *code,
                                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum MHD_Result reply_simple_error(struct srv_req *r, int status, const char *type, const char *code,
                                          const char *fmt, ...)
{
    struct srv_error e = {.status = status, .type = type};
    snprintf(e.code, sizeof e.code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return srv_reply_error(r, &e);
}

/* The key compare takes the same time wherever the first difference is. */
static bool authorized(const struct srv *s, struct MHD_Connection *conn)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t n = strlen(h), k = strlen(s->cfg.api_key);
    return n == k && sodium_memcmp(h, s->cfg.api_key, k) == 0;
}

/* 405 with the Allow header listing the path's methods. */
static enum MHD_Result reply_not_allowed(struct srv_req *r, const char *url, const char *method)
{
    char allow[64] = "";
    size_t k = 0;
    for (size_t i = 0; i < N_ROUTES; i++)
        if (strcmp(ROUTES[i].path, url) == 0 && k < sizeof allow)
            k += (size_t)snprintf(allow + k, sizeof allow - k, "%s%s", k ? ", " : "", ROUTES[i].method);
    struct srv_error e;
    srv_fail(&e, 405, "invalid_request_error", "", "method_not_allowed", "%.16s is not allowed on %.200s; use %s",
             method, url, allow);
    return reply_error_with(r, &e, MHD_HTTP_HEADER_ALLOW, allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct srv *s = cls;
    struct srv_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->t_start = srv_now();
        *con_cls = r;
        bool path_known;
        r->route = find_route(url, method, &path_known);
        if (!r->route) {
            if (path_known)
                return reply_not_allowed(r, url, method);
            return reply_simple_error(r, 404, "invalid_request_error", "not_found", "no route %.16s %.200s",
                                      method, url);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && body_limit(r)) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno == 0 && *end == '\0' && n > body_limit(r))
                return reply_simple_error(r, 413, "invalid_request_error", "request_too_large",
                                          "request body is %llu bytes; the limit for %s is %zu", n,
                                          r->route->path, body_limit(r));
        }
        return MHD_YES;
    }
    if (r->status) /* answered already (an early error): discard the rest */
        return MHD_YES;
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || !body_limit(r))
            return MHD_YES;
        if (n > body_limit(r) - r->body.len) {
            r->too_large = true;
            return MHD_YES;
        }
        if (!srv_buf_add(&r->body, upload, n))
            return MHD_NO;
        return MHD_YES;
    }
    /* The whole request is in. */
    if (s->cfg.api_key && strcmp(r->route->path, "/health") != 0 && !authorized(s, conn))
        return reply_simple_error(r, 401, "invalid_request_error", "invalid_api_key",
                                  "missing or wrong API key: send the header \"Authorization: Bearer KEY\"");
    if (r->too_large)
        return reply_simple_error(r, 413, "invalid_request_error", "request_too_large",
                                  "request body is over the limit of %zu bytes for %s", body_limit(r),
                                  r->route->path);
    int state = atomic_load(&s->state);
    bool needs_model = strcmp(r->route->path, "/health") != 0 && strcmp(r->route->path, "/metrics") != 0;
    if (needs_model && state == SRV_LOADING)
        return reply_simple_error(r, 503, "server_error", "loading", "the models are still loading; retry shortly");
    if (needs_model && state == SRV_DRAINING)
        return reply_simple_error(r, 503, "server_error", "shutting_down", "the server is shutting down");
    json_t *body = NULL;
    if (body_limit(r)) {
        struct srv_error e = {0};
        if (!srv_json_parse(r->body.data ? r->body.data : "", r->body.len, body_limit(r), &body, &e))
            return srv_reply_error(r, &e);
    }
    enum MHD_Result ret = r->route->handler(r, body);
    json_decref(body);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct srv *s = cls;
    struct srv_req *r = *con_cls;
    if (!r)
        return;
    srv_metrics_request(s->metrics, r->route ? r->route->path : "other", r->status ? r->status : 499);
    free(r->body.data);
    free(r);
    *con_cls = NULL;
}

/* ---- start, load, drain ---- */

static enum cit_status load_model(struct srv *s, size_t i, char *err, size_t errlen)
{
    struct srv_model *sm = &s->models[i];
    const struct srv_model_spec *spec = &s->cfg.models[i];
    enum cit_status st = cit_model_load(spec->path, &sm->model, err, errlen);
    if (st == CIT_OK && s->cfg.repack) {
        uint64_t bytes = 0;
        st = cit_model_repack(sm->model, s->cfg.engine.n_threads, &bytes, err, errlen);
        if (st == CIT_ERR_UNSUPPORTED && s->cfg.log) /* served from the file layout, as without --repack */
            fprintf(s->cfg.log, "citadel serve: %s: --repack: %s\n", spec->path, err);
        else if (st == CIT_OK && s->cfg.log)
            fprintf(s->cfg.log, "citadel serve: %s: --repack: %.1f MiB of weights copied, Q4_0 / Q8_0 / Q4_K / Q6_K interleaved\n", spec->path,
                    (double)bytes / (1024.0 * 1024.0));
        if (st == CIT_ERR_UNSUPPORTED)
            st = CIT_OK;
    }
    if (st == CIT_OK)
        st = cit_tokenizer_load(cit_model_gguf(sm->model), &sm->tok, err, errlen);
    if (st == CIT_OK)
        st = cit_template_from_gguf(cit_model_gguf(sm->model), &sm->tmpl, err, errlen);
    if (st != CIT_OK)
        return st;
    const struct cit_model_info *info = cit_model_info(sm->model);
    struct cit_engine_params ep = s->cfg.engine;
    if (ep.n_ctx == 0)
        ep.n_ctx = info->n_ctx_train < 4096 ? info->n_ctx_train : 4096;
    st = cit_engine_new(sm->model, sm->tok, &ep, &sm->eng, err, errlen);
    if (st != CIT_OK)
        return st;
    sm->n_ctx = cit_engine_params(sm->eng)->n_ctx;
    sm->n_vocab = info->n_vocab;
    sm->n_embd = info->n_embd;
    return CIT_OK;
}

/* Model ids become JSON strings and Prometheus label values: keep them plain. */
static bool valid_id(const char *id)
{
    if (!*id || strlen(id) > 128)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("._-:/+@", *p)))
            return false;
    return true;
}

static bool set_ids(struct srv *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n_models; i++) {
        const struct srv_model_spec *spec = &s->cfg.models[i];
        const char *id = spec->alias;
        char base[256];
        if (!id) {
            const char *slash = strrchr(spec->path, '/');
            snprintf(base, sizeof base, "%s", slash ? slash + 1 : spec->path);
            size_t n = strlen(base);
            if (n > 5 && strcmp(base + n - 5, ".gguf") == 0)
                base[n - 5] = '\0';
            id = base;
        }
        if (!valid_id(id)) {
            snprintf(err, errlen,
                     "model id '%.128s' (from %s) must be 1-128 characters of letters, digits and ._-:/+@; "
                     "give it a name with --alias",
                     id, spec->alias ? "--alias" : "the file name");
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->models[j].id, id) == 0) {
                snprintf(err, errlen, "two models are named '%s'; give one of them another --alias", id);
                return false;
            }
        s->models[i].id = strdup(id);
        s->models[i].path = spec->path;
        struct stat st;
        s->models[i].created = stat(spec->path, &st) == 0 ? (long)st.st_mtime : 0;
        if (!s->models[i].id) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
    }
    return true;
}

static void free_models(struct srv *s)
{
    for (size_t i = 0; i < s->n_models; i++) {
        struct srv_model *sm = &s->models[i];
        cit_engine_free(sm->eng);
        cit_template_free(sm->tmpl);
        cit_tokenizer_free(sm->tok);
        cit_model_free(sm->model);
        free(sm->id);
    }
}

static struct MHD_Daemon *start_daemon(struct srv *s, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    const char *host = strcmp(s->cfg.host, "localhost") == 0 ? "127.0.0.1" : s->cfg.host;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(s->cfg.port);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(s->cfg.port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "--host '%s' is not an IPv4 or IPv6 address (or localhost)", s->cfg.host);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->cfg.idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections_per_ip,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    if (!d)
        snprintf(err, errlen, "cannot listen on %s port %u: %s (is another server using it? try --port 0)",
                 s->cfg.host, s->cfg.port, errno ? strerror(errno) : "libmicrohttpd failed to start");
    return d;
}

static int count_in_flight(struct srv *s)
{
    return atomic_load(&s->in_flight);
}

int srv_run(const struct srv_config *c, char *err, size_t errlen)
{
    struct srv *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    s->cfg = *c;
    s->n_models = c->n_models;
    atomic_store(&s->state, SRV_LOADING);
    int rc = 1;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        free(s);
        return 1;
    }
    /* Signals are taken by sigwait below; no other thread sees them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (c->n_models == 0) {
        snprintf(err, errlen, "no model given: add -m FILE.gguf");
        goto out;
    }
    if (!set_ids(s, err, errlen))
        goto out;
    s->metrics = srv_metrics_new(s->n_models);
    if (!s->metrics) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    s->daemon = start_daemon(s, err, errlen);
    if (!s->daemon)
        goto out;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = di ? di->port : c->port;
    bool v6 = strchr(c->host, ':') != NULL;
    fprintf(c->log, "citadel serve: listening on http://%s%s%s:%u\n", v6 ? "[" : "", c->host, v6 ? "]" : "", port);
    fflush(c->log);
    for (size_t i = 0; i < s->n_models; i++) {
        double t0 = srv_now();
        if (load_model(s, i, err, errlen) != CIT_OK)
            goto out;
        const struct cit_engine_params *ep = cit_engine_params(s->models[i].eng);
        fprintf(c->log, "citadel serve: model %s ready (%s; %u slots x %u positions, %u threads) in %.2f s\n",
                s->models[i].id, s->models[i].path, ep->n_slots, ep->n_ctx, ep->n_threads, srv_now() - t0);
        fflush(c->log);
    }
    atomic_store(&s->state, SRV_READY);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(c->log, "citadel serve: %s: no new requests; draining %d in flight (up to %u s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", count_in_flight(s), c->drain_timeout_s);
    fflush(c->log);
    atomic_store(&s->state, SRV_DRAINING);
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    double deadline = srv_now() + c->drain_timeout_s;
    while (count_in_flight(s) > 0 && srv_now() < deadline)
        usleep(10000);
    if (count_in_flight(s) > 0) {
        fprintf(c->log, "citadel serve: drain timeout: cancelling %d requests\n", count_in_flight(s));
        for (size_t i = 0; i < s->n_models; i++)
            cit_engine_cancel_all(s->models[i].eng);
        for (int k = 0; k < 500 && count_in_flight(s) > 0; k++)
            usleep(10000);
    }
    rc = 0;
out:
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    free_models(s);
    srv_metrics_free(s->metrics);
    free(s);
    if (rc == 0)
        fprintf(c->log, "citadel serve: stopped\n");
    return rc;
}
