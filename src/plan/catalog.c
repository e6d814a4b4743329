/* catalog.c: the planner's catalogs of models, hardware and cloud prices.
 * Each is a JSON array of entries keyed by id; the built-in texts
 * (catalog_data.c) are merged first, then any user file, whose entries
 * replace built-in ones with the same id. Every entry must say where its
 * figures come from ("source") and when ("date"): a figure without a source
 * cannot be defended, so it is refused. */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "plan/plan_impl.h"

static enum cit_status get_str(json_t *e, const char *what, size_t idx, const char *key, char *dst, size_t cap,
                               bool required, char *err, size_t errlen)
{
    json_t *v = json_object_get(e, key);
    if (!v) {
        if (!required) {
            dst[0] = '\0';
            return CIT_OK;
        }
        return cit_fail(CIT_ERR_NOT_FOUND, err, errlen, "%s[%zu]: missing \"%s\"", what, idx, key);
    }
    if (!json_is_string(v))
        return cit_fail(CIT_ERR_TYPE, err, errlen, "%s[%zu].%s: expected a string", what, idx, key);
    const char *s = json_string_value(v);
    if (strlen(s) >= cap || (required && s[0] == '\0'))
        return cit_fail(CIT_ERR_RANGE, err, errlen, "%s[%zu].%s: empty or longer than %zu bytes", what, idx, key,
                        cap - 1);
    memcpy(dst, s, strlen(s) + 1);
    return CIT_OK;
}

static enum cit_status get_num(json_t *e, const char *what, size_t idx, const char *key, double min, double max,
                               double *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(e, key);
    if (!v)
        return cit_fail(CIT_ERR_NOT_FOUND, err, errlen, "%s[%zu]: missing \"%s\"", what, idx, key);
    if (!json_is_number(v))
        return cit_fail(CIT_ERR_TYPE, err, errlen, "%s[%zu].%s: expected a number", what, idx, key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "%s[%zu].%s: %g out of range [%g, %g]", what, idx, key, d, min,
                        max);
    *out = d;
    return CIT_OK;
}

static enum cit_status get_u32(json_t *e, const char *what, size_t idx, const char *key, uint32_t *out, char *err,
                               size_t errlen)
{
    double d = 0;
    enum cit_status st = get_num(e, what, idx, key, 1, 1 << 24, &d, err, errlen);
    if (st == CIT_OK && d != floor(d))
        st = cit_fail(CIT_ERR_RANGE, err, errlen, "%s[%zu].%s: %g is not a whole number", what, idx, key, d);
    if (st == CIT_OK)
        *out = (uint32_t)d;
    return st;
}

static enum cit_status parse_model(json_t *e, size_t i, struct cit_plan_model *m, char *err, size_t errlen)
{
    const char *w = "models";
    double np, na;
    memset(m, 0, sizeof *m);
    enum cit_status st;
    if ((st = get_str(e, w, i, "id", m->id, sizeof m->id, true, err, errlen)) ||
        (st = get_str(e, w, i, "name", m->name, sizeof m->name, false, err, errlen)) ||
        (st = get_str(e, w, i, "source", m->source, sizeof m->source, true, err, errlen)) ||
        (st = get_str(e, w, i, "date", m->date, sizeof m->date, true, err, errlen)) ||
        (st = get_num(e, w, i, "n_params", 1, 1e15, &np, err, errlen)) ||
        (st = get_num(e, w, i, "n_active", 1, 1e15, &na, err, errlen)) ||
        (st = get_u32(e, w, i, "n_layer", &m->n_layer, err, errlen)) ||
        (st = get_u32(e, w, i, "n_embd", &m->n_embd, err, errlen)) ||
        (st = get_u32(e, w, i, "n_head", &m->n_head, err, errlen)) ||
        (st = get_u32(e, w, i, "n_head_kv", &m->n_head_kv, err, errlen)) ||
        (st = get_u32(e, w, i, "head_dim", &m->head_dim, err, errlen)) ||
        (st = get_u32(e, w, i, "n_ff", &m->n_ff, err, errlen)) ||
        (st = get_u32(e, w, i, "n_vocab", &m->n_vocab, err, errlen)) ||
        (st = get_u32(e, w, i, "n_ctx_max", &m->n_ctx_max, err, errlen)))
        return st;
    if (na > np)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "models[%zu] (%s): n_active %g exceeds n_params %g", i, m->id,
                        na, np);
    if (m->n_head_kv > m->n_head)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "models[%zu] (%s): n_head_kv %u exceeds n_head %u", i, m->id,
                        m->n_head_kv, m->n_head);
    m->n_params = (uint64_t)np;
    m->n_active = (uint64_t)na;
    if (!m->name[0])
        memcpy(m->name, m->id, sizeof m->id);
    return CIT_OK;
}

static enum cit_status parse_hw(json_t *e, size_t i, struct cit_plan_hw *h, char *err, size_t errlen)
{
    const char *w = "hardware";
    memset(h, 0, sizeof *h);
    enum cit_status st;
    if ((st = get_str(e, w, i, "id", h->id, sizeof h->id, true, err, errlen)) ||
        (st = get_str(e, w, i, "name", h->name, sizeof h->name, false, err, errlen)) ||
        (st = get_str(e, w, i, "kind", h->kind, sizeof h->kind, true, err, errlen)) ||
        (st = get_str(e, w, i, "source", h->source, sizeof h->source, true, err, errlen)) ||
        (st = get_str(e, w, i, "date", h->date, sizeof h->date, true, err, errlen)) ||
        (st = get_num(e, w, i, "mem_gib", 1e-3, 1e7, &h->mem_gib, err, errlen)) ||
        (st = get_num(e, w, i, "bw_gbs", 1e-3, 1e7, &h->bw_gbs, err, errlen)) ||
        (st = get_num(e, w, i, "fp16_tflops", 1e-3, 1e7, &h->fp16_tflops, err, errlen)) ||
        (st = get_num(e, w, i, "int8_tops", 0, 1e7, &h->int8_tops, err, errlen)) ||
        (st = get_num(e, w, i, "watts_load", 0, 1e7, &h->watts_load, err, errlen)) ||
        (st = get_num(e, w, i, "watts_idle", 0, 1e7, &h->watts_idle, err, errlen)) ||
        (st = get_num(e, w, i, "price_usd", 0, 1e12, &h->price_usd, err, errlen)) ||
        (st = get_num(e, w, i, "reserved_gib", 0, 1e7, &h->reserved_gib, err, errlen)))
        return st;
    if (strcmp(h->kind, "gpu") != 0 && strcmp(h->kind, "cpu") != 0)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "hardware[%zu].kind: \"%s\", expected \"gpu\" or \"cpu\"", i,
                        h->kind);
    if (h->watts_idle > h->watts_load)
        return cit_fail(CIT_ERR_RANGE, err, errlen, "hardware[%zu] (%s): watts_idle %g exceeds watts_load %g", i,
                        h->id, h->watts_idle, h->watts_load);
    if (!h->name[0])
        memcpy(h->name, h->id, sizeof h->id);
    return CIT_OK;
}

static enum cit_status parse_cloud(json_t *e, size_t i, struct cit_plan_cloud *c, char *err, size_t errlen)
{
    const char *w = "cloud";
    memset(c, 0, sizeof *c);
    enum cit_status st;
    if ((st = get_str(e, w, i, "id", c->id, sizeof c->id, true, err, errlen)) ||
        (st = get_str(e, w, i, "name", c->name, sizeof c->name, false, err, errlen)) ||
        (st = get_str(e, w, i, "source", c->source, sizeof c->source, true, err, errlen)) ||
        (st = get_str(e, w, i, "date", c->date, sizeof c->date, true, err, errlen)) ||
        (st = get_num(e, w, i, "usd_per_m_input", 0, 1e6, &c->usd_per_m_input, err, errlen)) ||
        (st = get_num(e, w, i, "usd_per_m_output", 0, 1e6, &c->usd_per_m_output, err, errlen)))
        return st;
    if (!c->name[0])
        memcpy(c->name, c->id, sizeof c->id);
    return CIT_OK;
}

/* Finds id in an array of entries whose first member is char id[]; stride is the entry size. */
static ptrdiff_t find_id(const void *arr, size_t n, size_t stride, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp((const char *)arr + i * stride, id) == 0)
            return (ptrdiff_t)i;
    return -1;
}

/* Replaces the entry with the same id or appends a copy of it. */
static enum cit_status upsert(void **arr, size_t *n, size_t *cap, size_t stride, const void *entry, char *err,
                              size_t errlen)
{
    ptrdiff_t at = find_id(*arr, *n, stride, entry);
    if (at >= 0) {
        memcpy((char *)*arr + (size_t)at * stride, entry, stride);
        return CIT_OK;
    }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        void *p = realloc(*arr, nc * stride);
        if (!p)
            return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for the catalog");
        *arr = p;
        *cap = nc;
    }
    memcpy((char *)*arr + *n * stride, entry, stride);
    (*n)++;
    return CIT_OK;
}

enum cit_status cit_plan_catalog_merge_json(struct cit_plan_catalog *c, const char *json, const char *origin,
                                            char *err, size_t errlen)
{
    if (!c || !json)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_catalog_merge_json: NULL argument");
    if (!origin)
        origin = "catalog";
    json_error_t je;
    json_t *root = json_loads(json, 0, &je);
    if (!root)
        return cit_fail(CIT_ERR_FORMAT, err, errlen, "%s: invalid JSON at line %d column %d: %s", origin, je.line,
                        je.column, je.text);
    enum cit_status st = CIT_OK;
    if (!json_is_object(root)) {
        st = cit_fail(CIT_ERR_FORMAT, err, errlen, "%s: expected an object with \"models\", \"hardware\" or \"cloud\"",
                      origin);
        goto out;
    }
    /* Parse everything first, so a bad file changes nothing. */
    static const char *const keys[] = {"models", "hardware", "cloud"};
    for (int pass = 0; pass < 2 && st == CIT_OK; pass++) {
        for (size_t k = 0; k < 3 && st == CIT_OK; k++) {
            json_t *a = json_object_get(root, keys[k]);
            if (!a)
                continue;
            if (!json_is_array(a)) {
                st = cit_fail(CIT_ERR_TYPE, err, errlen, "%s: \"%s\" must be an array", origin, keys[k]);
                break;
            }
            for (size_t i = 0; i < json_array_size(a) && st == CIT_OK; i++) {
                json_t *e = json_array_get(a, i);
                if (!json_is_object(e)) {
                    st = cit_fail(CIT_ERR_TYPE, err, errlen, "%s: %s[%zu] must be an object", origin, keys[k], i);
                    break;
                }
                if (k == 0) {
                    struct cit_plan_model m;
                    st = parse_model(e, i, &m, err, errlen);
                    if (st == CIT_OK && pass == 1)
                        st = upsert((void **)&c->models, &c->n_models, &c->cap_models, sizeof m, &m, err, errlen);
                } else if (k == 1) {
                    struct cit_plan_hw h;
                    st = parse_hw(e, i, &h, err, errlen);
                    if (st == CIT_OK && pass == 1)
                        st = upsert((void **)&c->hw, &c->n_hw, &c->cap_hw, sizeof h, &h, err, errlen);
                } else {
                    struct cit_plan_cloud cl;
                    st = parse_cloud(e, i, &cl, err, errlen);
                    if (st == CIT_OK && pass == 1)
                        st = upsert((void **)&c->cloud, &c->n_cloud, &c->cap_cloud, sizeof cl, &cl, err, errlen);
                }
            }
        }
    }
    if (st != CIT_OK && err && errlen) {
        /* prefix the origin when the message does not have it */
        if (strncmp(err, origin, strlen(origin)) != 0) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s: %s", origin, err);
            snprintf(err, errlen, "%s", tmp);
        }
    }
out:
    json_decref(root);
    return st;
}

enum cit_status cit_plan_catalog_merge_file(struct cit_plan_catalog *c, const char *path, char *err, size_t errlen)
{
    if (!c || !path)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_catalog_merge_file: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return cit_fail(CIT_ERR_NOT_FOUND, err, errlen, "cannot open catalog %s", path);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    enum cit_status st = CIT_OK;
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
        if (len + 1 == cap) {
            if (cap >= (64u << 20)) {
                st = cit_fail(CIT_ERR_LIMIT, err, errlen, "catalog %s is larger than 64 MiB", path);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory reading %s", path);
    if (st == CIT_OK && rerr)
        st = cit_fail(CIT_ERR_IO, err, errlen, "cannot read catalog %s", path);
    if (st == CIT_OK) {
        buf[len] = '\0';
        st = cit_plan_catalog_merge_json(c, buf, path, err, errlen);
    }
    free(buf);
    return st;
}

enum cit_status cit_plan_catalog_builtin(struct cit_plan_catalog **out, char *err, size_t errlen)
{
    if (!out)
        return cit_fail(CIT_ERR_INVALID_ARG, err, errlen, "cit_plan_catalog_builtin: NULL argument");
    *out = NULL;
    struct cit_plan_catalog *c = calloc(1, sizeof *c);
    if (!c)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "out of memory for the catalog");
    enum cit_status st = cit_plan_catalog_merge_json(c, cit_plan_catalog_models, "built-in models", err, errlen);
    if (st == CIT_OK)
        st = cit_plan_catalog_merge_json(c, cit_plan_catalog_hardware, "built-in hardware", err, errlen);
    if (st == CIT_OK)
        st = cit_plan_catalog_merge_json(c, cit_plan_catalog_cloud, "built-in cloud", err, errlen);
    if (st != CIT_OK) {
        cit_plan_catalog_free(c);
        return st;
    }
    *out = c;
    return CIT_OK;
}

void cit_plan_catalog_free(struct cit_plan_catalog *c)
{
    if (!c)
        return;
    free(c->models);
    free(c->hw);
    free(c->cloud);
    free(c);
}

const struct cit_plan_model *cit_plan_find_model(const struct cit_plan_catalog *c, const char *id)
{
    ptrdiff_t i = (c && id) ? find_id(c->models, c->n_models, sizeof *c->models, id) : -1;
    return i < 0 ? NULL : &c->models[i];
}

const struct cit_plan_hw *cit_plan_find_hw(const struct cit_plan_catalog *c, const char *id)
{
    ptrdiff_t i = (c && id) ? find_id(c->hw, c->n_hw, sizeof *c->hw, id) : -1;
    return i < 0 ? NULL : &c->hw[i];
}

const struct cit_plan_cloud *cit_plan_find_cloud(const struct cit_plan_catalog *c, const char *id)
{
    ptrdiff_t i = (c && id) ? find_id(c->cloud, c->n_cloud, sizeof *c->cloud, id) : -1;
    return i < 0 ? NULL : &c->cloud[i];
}

size_t cit_plan_n_models(const struct cit_plan_catalog *c) { return c ? c->n_models : 0; }
size_t cit_plan_n_hw(const struct cit_plan_catalog *c) { return c ? c->n_hw : 0; }
size_t cit_plan_n_cloud(const struct cit_plan_catalog *c) { return c ? c->n_cloud : 0; }

const struct cit_plan_model *cit_plan_model_at(const struct cit_plan_catalog *c, size_t i)
{
    return c && i < c->n_models ? &c->models[i] : NULL;
}

const struct cit_plan_hw *cit_plan_hw_at(const struct cit_plan_catalog *c, size_t i)
{
    return c && i < c->n_hw ? &c->hw[i] : NULL;
}

const struct cit_plan_cloud *cit_plan_cloud_at(const struct cit_plan_catalog *c, size_t i)
{
    return c && i < c->n_cloud ? &c->cloud[i] : NULL;
}
