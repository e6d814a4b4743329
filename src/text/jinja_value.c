/* jinja_value.c: the interpreter's value model, with Python's semantics.
 *
 * Strings, lists and dicts are refcounted heap objects. Every byte a render
 * allocates is charged to its memory budget (struct jrt) and every container
 * records its nesting depth, so a hostile template can neither exhaust
 * memory nor build a structure whose release would overflow the C stack.
 * Namespaces and scopes can form reference cycles (a namespace stored in
 * itself, a macro stored in the scope it closes over); they are kept in a
 * registry and torn down explicitly when the render ends.
 *
 * Also here: truthiness, equality, ordering, str() and repr() exactly as
 * Python prints them (Jinja prints lists of strings with Python's quotes). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "text/jinja_internal.h"

#define JV_MAX_DEPTH 500 /* deepest container nesting a render may build */

const struct jv JV_UNDEFINED = {.t = JT_UNDEF};
const struct jv JV_NONE_V = {.t = JT_NONE};

/* ---------------------------------------------------------------- errors, budget */

int jerr(struct jrt *rt, const struct jn *at, enum cit_status st, const char *fmt, ...)
{
    if (rt->failed)
        return -1;
    rt->failed = true;
    rt->st = st;
    if (rt->err && rt->errlen) {
        char msg[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (at)
            snprintf(rt->err, rt->errlen, "template line %u, column %u: %s", at->line, at->col, msg);
        else
            snprintf(rt->err, rt->errlen, "template: %s", msg);
    }
    return -1;
}

int jstep(struct jrt *rt, const struct jn *at, uint64_t n)
{
    if (rt->failed)
        return -1;
    rt->steps += n;
    if (rt->steps > rt->max_steps)
        return jerr(rt, at, CIT_ERR_LIMIT, "evaluation step budget exhausted (%" PRIu64 " steps)", rt->max_steps);
    return 0;
}

void *jmem_alloc(struct jrt *rt, const struct jn *at, size_t n)
{
    if (rt->failed)
        return NULL;
    if (n > rt->mem_limit || rt->mem_used > rt->mem_limit - n) {
        jerr(rt, at, CIT_ERR_LIMIT, "memory budget exceeded (limit %zu bytes)", rt->mem_limit);
        return NULL;
    }
    void *p = malloc(n ? n : 1);
    if (!p) {
        jerr(rt, at, CIT_ERR_NOMEM, "out of memory allocating %zu bytes", n);
        return NULL;
    }
    rt->mem_used += n;
    return p;
}

void *jmem_realloc(struct jrt *rt, const struct jn *at, void *p, size_t oldn, size_t newn)
{
    if (rt->failed)
        return NULL;
    if (newn > oldn) {
        size_t extra = newn - oldn;
        if (extra > rt->mem_limit || rt->mem_used > rt->mem_limit - extra) {
            jerr(rt, at, CIT_ERR_LIMIT, "memory budget exceeded (limit %zu bytes)", rt->mem_limit);
            return NULL;
        }
    }
    void *q = realloc(p, newn ? newn : 1);
    if (!q) {
        jerr(rt, at, CIT_ERR_NOMEM, "out of memory allocating %zu bytes", newn);
        return NULL;
    }
    rt->mem_used = rt->mem_used - oldn + newn;
    return q;
}

void jmem_free(struct jrt *rt, void *p, size_t n)
{
    if (!p)
        return;
    free(p);
    rt->mem_used -= n;
}

/* ---------------------------------------------------------------- refcounting */

struct jv jv_ref(struct jv v)
{
    if (jv_is_obj(v) && !(v.u.o->flags & JH_STATIC))
        v.u.o->rc++;
    return v;
}

static void dict_clear(struct jrt *rt, struct jdict *d)
{
    /* Detach first: dropping a value may re-enter this dict (a namespace in itself). */
    struct jkv *e = d->e;
    size_t n = d->len;
    d->len = 0;
    for (size_t i = 0; i < n; i++) {
        jv_drop(rt, e[i].k);
        jv_drop(rt, e[i].v);
    }
    d->len = 0;
    if (d->idx)
        memset(d->idx, 0, d->icap * sizeof *d->idx);
}

void jd_clear(struct jrt *rt, struct jdict *d) { dict_clear(rt, d); }

static void dict_free(struct jrt *rt, struct jdict *d)
{
    dict_clear(rt, d);
    free(d->e);
    free(d->idx);
    rt->mem_used -= d->h.charged;
    free(d);
}

void jv_drop(struct jrt *rt, struct jv v)
{
    if (!jv_is_obj(v))
        return;
    struct jhdr *h = v.u.o;
    if (h->flags & JH_STATIC)
        return;
    if (--h->rc > 0)
        return;
    switch (v.t) {
    case JT_STR:
    case JT_UNDEF:
        rt->mem_used -= h->charged;
        free(h);
        break;
    case JT_LIST:
        for (size_t i = 0; i < v.u.l->len; i++)
            jv_drop(rt, v.u.l->v[i]);
        free(v.u.l->v);
        rt->mem_used -= h->charged;
        free(h);
        break;
    case JT_NS: {
        struct jdict *d = v.u.d;
        if (d->rprev)
            d->rprev->rnext = d->rnext;
        else
            rt->nss = d->rnext;
        if (d->rnext)
            d->rnext->rprev = d->rprev;
        dict_free(rt, d);
        break;
    }
    case JT_DICT:
        dict_free(rt, v.u.d);
        break;
    case JT_MACRO:
        jscope_release(rt, v.u.m->closure);
        jv_drop(rt, v.u.m->caller);
        rt->mem_used -= h->charged;
        free(h);
        break;
    case JT_METHOD:
        jv_drop(rt, v.u.me->recv);
        rt->mem_used -= h->charged;
        free(h);
        break;
    case JT_LOOP:
        jv_drop(rt, v.u.lp->items);
        rt->mem_used -= h->charged;
        free(h);
        break;
    default:
        break;
    }
}

void jscope_release(struct jrt *rt, struct jscope *sc)
{
    while (sc && --sc->h.rc == 0) {
        struct jscope *parent = sc->parent;
        if (sc->rprev)
            sc->rprev->rnext = sc->rnext;
        else
            rt->scopes = sc->rnext;
        if (sc->rnext)
            sc->rnext->rprev = sc->rprev;
        if (sc->vars) {
            struct jv d = {.t = JT_DICT};
            d.u.d = sc->vars;
            jv_drop(rt, d);
        }
        rt->mem_used -= sc->h.charged;
        free(sc);
        sc = parent; /* iterative: a deep scope chain does not recurse */
    }
}

void jrt_release_all(struct jrt *rt)
{
    /* Pin everything, empty everything (breaking cycles), then unpin. */
    for (struct jdict *d = rt->nss; d; d = d->rnext)
        d->h.rc++;
    for (struct jscope *s = rt->scopes; s; s = s->rnext)
        s->h.rc++;
    for (struct jdict *d = rt->nss; d; d = d->rnext)
        dict_clear(rt, d);
    for (struct jscope *s = rt->scopes; s; s = s->rnext)
        if (s->vars)
            dict_clear(rt, s->vars);
    while (rt->nss) {
        struct jv v = {.t = JT_NS};
        v.u.d = rt->nss;
        v.u.d->h.rc = 1;
        jv_drop(rt, v);
    }
    while (rt->scopes) {
        /* Parents are in the registry too and are released by this loop. */
        struct jscope *s = rt->scopes;
        s->h.rc = 1;
        s->parent = NULL;
        jscope_release(rt, s);
    }
}

struct jv jv_undef(struct jrt *rt, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return JV_UNDEFINED;
    size_t len = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    size_t sz = sizeof(struct jstr) + len + 1;
    if (rt->failed || rt->mem_used > rt->mem_limit || rt->mem_limit - rt->mem_used < sz)
        return JV_UNDEFINED;
    struct jstr *s = malloc(sz);
    if (!s)
        return JV_UNDEFINED;
    rt->mem_used += sz;
    s->h = (struct jhdr){.rc = 1, .charged = sz};
    s->len = len;
    s->ncp = ju_count(msg, len);
    memcpy(s->s, msg, len);
    s->s[len] = '\0';
    struct jv v = {.t = JT_UNDEF};
    v.u.s = s;
    return v;
}

/* ---------------------------------------------------------------- strings */

int js_new(struct jrt *rt, const struct jn *at, const char *p, size_t n, struct jv *out)
{
    if (n > rt->max_str)
        return jerr(rt, at, CIT_ERR_LIMIT, "string of %zu bytes exceeds the %zu-byte limit", n, rt->max_str);
    if (jstep(rt, at, 1 + n / 64))
        return -1;
    size_t sz = sizeof(struct jstr) + n + 1;
    struct jstr *s = jmem_alloc(rt, at, sz);
    if (!s)
        return -1;
    s->h = (struct jhdr){.rc = 1, .charged = sz};
    s->len = n;
    s->ncp = ju_count(p, n);
    if (n)
        memcpy(s->s, p, n);
    s->s[n] = '\0';
    *out = jv_str(s);
    return 0;
}

/* ---------------------------------------------------------------- containers */

static uint16_t obj_depth(struct jv v)
{
    if (!jv_is_obj(v) || v.t == JT_STR || v.t == JT_UNDEF)
        return 0;
    return v.u.o->depth;
}

int jv_note_child(struct jrt *rt, const struct jn *at, struct jhdr *parent, struct jv c)
{
    uint32_t d = (uint32_t)obj_depth(c) + 1;
    if (d > JV_MAX_DEPTH)
        return jerr(rt, at, CIT_ERR_LIMIT, "values nested more than %d deep", JV_MAX_DEPTH);
    if (d > parent->depth)
        parent->depth = (uint16_t)d;
    return 0;
}

struct jlist *jl_new(struct jrt *rt, const struct jn *at, size_t cap)
{
    size_t bytes;
    if (!cit_mul_size(cap, sizeof(struct jv), &bytes) || bytes > rt->mem_limit) {
        jerr(rt, at, CIT_ERR_LIMIT, "memory budget exceeded (limit %zu bytes)", rt->mem_limit);
        return NULL;
    }
    struct jlist *l = jmem_alloc(rt, at, sizeof *l);
    if (!l)
        return NULL;
    *l = (struct jlist){.h = {.rc = 1, .depth = 1, .charged = sizeof *l}};
    if (cap) {
        l->v = jmem_alloc(rt, at, bytes);
        if (!l->v) {
            jmem_free(rt, l, sizeof *l);
            return NULL;
        }
        l->cap = cap;
        l->h.charged += bytes;
    }
    return l;
}

int jl_push(struct jrt *rt, const struct jn *at, struct jlist *l, struct jv v)
{
    if (jstep(rt, at, 1) || jv_note_child(rt, at, &l->h, v)) {
        jv_drop(rt, v);
        return -1;
    }
    if (l->len == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4;
        void *nv = jmem_realloc(rt, at, l->v, l->cap * sizeof(struct jv), ncap * sizeof(struct jv));
        if (!nv) {
            jv_drop(rt, v);
            return -1;
        }
        l->h.charged += (ncap - l->cap) * sizeof(struct jv);
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->len++] = v;
    return 0;
}

struct jdict *jd_new(struct jrt *rt, const struct jn *at)
{
    struct jdict *d = jmem_alloc(rt, at, sizeof *d);
    if (!d)
        return NULL;
    *d = (struct jdict){.h = {.rc = 1, .depth = 1, .charged = sizeof *d}};
    return d;
}

struct jdict *jns_new(struct jrt *rt, const struct jn *at)
{
    struct jdict *d = jd_new(rt, at);
    if (!d)
        return NULL;
    d->rnext = rt->nss;
    if (rt->nss)
        rt->nss->rprev = d;
    rt->nss = d;
    return d;
}

bool jv_hashable(struct jv v)
{
    return v.t == JT_STR || v.t == JT_INT || v.t == JT_BOOL || v.t == JT_FLOAT || v.t == JT_NONE;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static uint64_t key_hash(struct jv k)
{
    switch (k.t) {
    case JT_STR: return hash_bytes(k.u.s->s, k.u.s->len);
    case JT_BOOL: return mix64((uint64_t)k.u.b);
    case JT_INT: return mix64((uint64_t)k.u.i);
    case JT_FLOAT:
        if (k.u.f == floor(k.u.f) && fabs(k.u.f) < 9.2e18)
            return mix64((uint64_t)(int64_t)k.u.f);
        {
            uint64_t bits;
            memcpy(&bits, &k.u.f, sizeof bits);
            return mix64(bits);
        }
    default: return 0x9e3779b97f4a7c15ULL;
    }
}

static bool num_of(struct jv v, double *f, int64_t *i, bool *is_int)
{
    if (v.t == JT_BOOL) {
        *i = v.u.b;
        *f = v.u.b;
        *is_int = true;
        return true;
    }
    if (v.t == JT_INT) {
        *i = v.u.i;
        *f = (double)v.u.i;
        *is_int = true;
        return true;
    }
    if (v.t == JT_FLOAT) {
        *f = v.u.f;
        *is_int = false;
        return true;
    }
    return false;
}

/* Python == between two scalars (the key comparison). */
static bool scalar_eq(struct jv a, struct jv b)
{
    double fa, fb;
    int64_t ia = 0, ib = 0;
    bool inta, intb;
    if (num_of(a, &fa, &ia, &inta) && num_of(b, &fb, &ib, &intb)) {
        if (inta && intb)
            return ia == ib;
        if (inta)
            return (double)ia == fb && fabs(fb) < 9.3e18 && (int64_t)fb == ia;
        if (intb)
            return (double)ib == fa && fabs(fa) < 9.3e18 && (int64_t)fa == ib;
        return fa == fb;
    }
    if (a.t == JT_STR && b.t == JT_STR)
        return a.u.s->len == b.u.s->len && memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0;
    if (a.t == JT_NONE && b.t == JT_NONE)
        return true;
    return false;
}

static void index_insert(struct jdict *d, size_t e)
{
    size_t s = key_hash(d->e[e].k) & (d->icap - 1);
    while (d->idx[s])
        s = (s + 1) & (d->icap - 1);
    d->idx[s] = (uint32_t)(e + 1);
}

static int dict_reindex(struct jrt *rt, const struct jn *at, struct jdict *d, size_t icap)
{
    uint32_t *idx = jmem_alloc(rt, at, icap * sizeof *idx);
    if (!idx)
        return -1;
    memset(idx, 0, icap * sizeof *idx);
    if (d->idx) {
        d->h.charged -= d->icap * sizeof *d->idx;
        jmem_free(rt, d->idx, d->icap * sizeof *d->idx);
    }
    d->idx = idx;
    d->icap = icap;
    d->h.charged += icap * sizeof *idx;
    for (size_t e = 0; e < d->len; e++)
        index_insert(d, e);
    return 0;
}

static struct jv *dict_find(const struct jdict *d, struct jv k)
{
    if (d->idx) {
        size_t s = key_hash(k) & (d->icap - 1);
        while (d->idx[s]) {
            size_t e = d->idx[s] - 1;
            if (scalar_eq(d->e[e].k, k))
                return &d->e[e].v;
            s = (s + 1) & (d->icap - 1);
        }
        return NULL;
    }
    for (size_t e = 0; e < d->len; e++)
        if (scalar_eq(d->e[e].k, k))
            return &d->e[e].v;
    return NULL;
}

struct jv *jd_get(const struct jdict *d, struct jv k)
{
    if (!jv_hashable(k))
        return NULL;
    return dict_find(d, k);
}

static bool key_is(struct jv k, const char *p, size_t n)
{
    return k.t == JT_STR && k.u.s->len == n && memcmp(k.u.s->s, p, n) == 0;
}

struct jv *jd_get_s(const struct jdict *d, const char *k, size_t n)
{
    if (d->idx) {
        size_t s = hash_bytes(k, n) & (d->icap - 1);
        while (d->idx[s]) {
            size_t e = d->idx[s] - 1;
            if (key_is(d->e[e].k, k, n))
                return &d->e[e].v;
            s = (s + 1) & (d->icap - 1);
        }
        return NULL;
    }
    for (size_t e = 0; e < d->len; e++)
        if (key_is(d->e[e].k, k, n))
            return &d->e[e].v;
    return NULL;
}

int jd_set(struct jrt *rt, const struct jn *at, struct jdict *d, struct jv k, struct jv v)
{
    if (!jv_hashable(k)) {
        jerr(rt, at, CIT_ERR_TYPE, "unhashable type: '%s'", jv_type_name(k));
        goto fail;
    }
    if (jv_note_child(rt, at, &d->h, v))
        goto fail;
    struct jv *slot = dict_find(d, k);
    if (slot) {
        jv_drop(rt, k);
        jv_drop(rt, *slot);
        *slot = v;
        return 0;
    }
    if (d->len == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 4;
        if (ncap > UINT32_MAX / 2) {
            jerr(rt, at, CIT_ERR_LIMIT, "dict too large");
            goto fail;
        }
        void *ne = jmem_realloc(rt, at, d->e, d->cap * sizeof(struct jkv), ncap * sizeof(struct jkv));
        if (!ne)
            goto fail;
        d->e = ne;
        d->h.charged += (ncap - d->cap) * sizeof(struct jkv);
        d->cap = ncap;
    }
    d->e[d->len].k = k;
    d->e[d->len].v = v;
    d->len++;
    if (d->len > 8 && d->len * 2 > d->icap) {
        size_t icap = 32;
        while (icap < d->len * 4)
            icap *= 2;
        if (dict_reindex(rt, at, d, icap)) {
            d->len--;
            goto fail;
        }
    } else if (d->idx) {
        index_insert(d, d->len - 1);
    }
    return 0;
fail:
    jv_drop(rt, k);
    jv_drop(rt, v);
    return -1;
}

/* ---------------------------------------------------------------- buffers */

int jb_put(struct jrt *rt, const struct jn *at, struct jbuf *b, const char *p, size_t n)
{
    if (rt->failed)
        return -1;
    if (n > rt->max_str || b->len > rt->max_str - n)
        return jerr(rt, at, CIT_ERR_LIMIT, "output exceeds the %zu-byte limit", rt->max_str);
    if (jstep(rt, at, 1 + n / 64))
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = jmem_realloc(rt, at, b->p, b->cap, ncap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int jb_putc(struct jrt *rt, const struct jn *at, struct jbuf *b, char c) { return jb_put(rt, at, b, &c, 1); }

int jb_puts(struct jrt *rt, const struct jn *at, struct jbuf *b, const char *s)
{
    return jb_put(rt, at, b, s, strlen(s));
}

int jb_printf(struct jrt *rt, const struct jn *at, struct jbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return jerr(rt, at, CIT_ERR_FORMAT, "formatting failed");
    return jb_put(rt, at, b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

int jb_take(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv *out)
{
    int rc = js_new(rt, at, b->p ? b->p : "", b->len, out);
    jb_free(rt, b);
    return rc;
}

void jb_free(struct jrt *rt, struct jbuf *b)
{
    if (b->p)
        jmem_free(rt, b->p, b->cap);
    *b = (struct jbuf){0};
}

/* ---------------------------------------------------------------- Python semantics */

bool jv_truthy(struct jv v)
{
    switch (v.t) {
    case JT_UNDEF:
    case JT_NONE: return false;
    case JT_BOOL: return v.u.b;
    case JT_INT: return v.u.i != 0;
    case JT_FLOAT: return v.u.f != 0.0;
    case JT_STR: return v.u.s->len != 0;
    case JT_LIST: return v.u.l->len != 0 || v.u.l->kind == JL_GEN;
    case JT_DICT: return v.u.d->len != 0;
    default: return true;
    }
}

const char *jv_type_name(struct jv v)
{
    switch (v.t) {
    case JT_UNDEF: return "Undefined";
    case JT_NONE: return "NoneType";
    case JT_BOOL: return "bool";
    case JT_INT: return "int";
    case JT_FLOAT: return "float";
    case JT_STR: return "str";
    case JT_LIST: {
        static const char *const kinds[] = {"list", "tuple", "generator", "dict_items", "dict_keys", "dict_values"};
        return kinds[v.u.l->kind < 6 ? v.u.l->kind : 0];
    }
    case JT_DICT: return "dict";
    case JT_NS: return "Namespace";
    case JT_MACRO: return "Macro";
    case JT_FUNC: return "function";
    case JT_METHOD: return "builtin_function_or_method";
    case JT_LOOP: return "LoopContext";
    default: return "object";
    }
}

static int write_str_repr(struct jrt *rt, const struct jn *at, struct jbuf *b, const struct jstr *s)
{
    bool has_sq = memchr(s->s, '\'', s->len) != NULL, has_dq = memchr(s->s, '"', s->len) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    if (jb_putc(rt, at, b, q))
        return -1;
    size_t i = 0, run = 0;
    while (i < s->len) {
        size_t start = i;
        uint32_t c = ju_decode(s->s, s->len, &i);
        const char *esc = NULL;
        char tmp[16];
        if (c == (uint32_t)q || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            tmp[2] = '\0';
            esc = tmp;
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (!ju_isprintable(c)) {
            if (c < 0x100)
                snprintf(tmp, sizeof tmp, "\\x%02x", c);
            else if (c < 0x10000)
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
            else
                snprintf(tmp, sizeof tmp, "\\U%08x", c);
            esc = tmp;
        }
        if (esc) {
            if (jb_put(rt, at, b, s->s + run, start - run) || jb_puts(rt, at, b, esc))
                return -1;
            run = i;
        }
    }
    if (jb_put(rt, at, b, s->s + run, s->len - run))
        return -1;
    return jb_putc(rt, at, b, q);
}

static int write_scalar(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv v)
{
    char tmp[48];
    switch (v.t) {
    case JT_NONE: return jb_puts(rt, at, b, "None");
    case JT_BOOL: return jb_puts(rt, at, b, v.u.b ? "True" : "False");
    case JT_INT: return jb_printf(rt, at, b, "%" PRId64, v.u.i);
    case JT_FLOAT:
        ju_float_repr(v.u.f, tmp, sizeof tmp);
        return jb_puts(rt, at, b, tmp);
    default: return jb_puts(rt, at, b, "?");
    }
}

int jv_write_repr(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv v, int depth)
{
    if (depth > JV_MAX_DEPTH)
        return jerr(rt, at, CIT_ERR_LIMIT, "value nested too deeply to print");
    if (jstep(rt, at, 1))
        return -1;
    switch (v.t) {
    case JT_UNDEF: return jb_puts(rt, at, b, "Undefined");
    case JT_STR:
        if (v.m)
            return jb_puts(rt, at, b, "Markup(") || write_str_repr(rt, at, b, v.u.s) || jb_putc(rt, at, b, ')');
        return write_str_repr(rt, at, b, v.u.s);
    case JT_LIST: {
        const struct jlist *l = v.u.l;
        bool tuple = l->kind == JL_TUPLE;
        if (l->kind == JL_GEN)
            return jb_puts(rt, at, b, "<generator object>");
        if (l->kind > JL_GEN && (jb_puts(rt, at, b, jv_type_name(v)) || jb_putc(rt, at, b, '(')))
            return -1;
        if (jb_putc(rt, at, b, tuple ? '(' : '['))
            return -1;
        for (size_t i = 0; i < l->len; i++) {
            if (i && jb_puts(rt, at, b, ", "))
                return -1;
            if (jv_write_repr(rt, at, b, l->v[i], depth + 1))
                return -1;
        }
        if (tuple && l->len == 1 && jb_putc(rt, at, b, ','))
            return -1;
        if (jb_putc(rt, at, b, tuple ? ')' : ']'))
            return -1;
        return l->kind > JL_GEN ? jb_putc(rt, at, b, ')') : 0;
    }
    case JT_DICT:
    case JT_NS: {
        const struct jdict *d = v.u.d;
        if (v.t == JT_NS && jb_puts(rt, at, b, "<Namespace "))
            return -1;
        if (jb_putc(rt, at, b, '{'))
            return -1;
        for (size_t i = 0; i < d->len; i++) {
            if (i && jb_puts(rt, at, b, ", "))
                return -1;
            if (jv_write_repr(rt, at, b, d->e[i].k, depth + 1) || jb_puts(rt, at, b, ": ") ||
                jv_write_repr(rt, at, b, d->e[i].v, depth + 1))
                return -1;
        }
        if (jb_putc(rt, at, b, '}'))
            return -1;
        return v.t == JT_NS ? jb_putc(rt, at, b, '>') : 0;
    }
    case JT_MACRO: {
        const struct jn *def = v.u.m->def;
        if (def->kind == JN_MACRO)
            return jb_printf(rt, at, b, "<Macro '%.200s'>", def->name->s);
        return jb_puts(rt, at, b, "<Macro 'caller'>");
    }
    case JT_FUNC: return jb_printf(rt, at, b, "<function %s>", jfunc_name((int)v.u.i));
    case JT_METHOD: return jb_puts(rt, at, b, "<built-in method>");
    case JT_LOOP: {
        const struct jloop *lp = v.u.lp;
        return jb_printf(rt, at, b, "<LoopContext %zu/%zu>", lp->index0 + 1, lp->items.u.l->len);
    }
    default: return write_scalar(rt, at, b, v);
    }
}

int jv_write_str(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv v)
{
    if (v.t == JT_STR)
        return jb_put(rt, at, b, v.u.s->s, v.u.s->len);
    if (v.t == JT_UNDEF)
        return 0;
    return jv_write_repr(rt, at, b, v, 0);
}

int jv_to_str(struct jrt *rt, const struct jn *at, struct jv v, struct jv *out)
{
    if (v.t == JT_STR) {
        *out = jv_ref(v);
        return 0;
    }
    struct jbuf b = {0};
    if (jv_write_str(rt, at, &b, v)) {
        jb_free(rt, &b);
        return -1;
    }
    return jb_take(rt, at, &b, out);
}

static int eq_rec(struct jrt *rt, const struct jn *at, struct jv a, struct jv b, bool *res, int depth)
{
    if (depth > JV_MAX_DEPTH)
        return jerr(rt, at, CIT_ERR_LIMIT, "values nested too deeply to compare");
    if (jstep(rt, at, 1))
        return -1;
    if (jv_hashable(a) && jv_hashable(b)) {
        if (a.t == JT_STR && b.t == JT_STR && a.u.s->len >= 64 && jstep(rt, at, a.u.s->len / 64))
            return -1;
        *res = scalar_eq(a, b);
        return 0;
    }
    if (a.t != b.t) {
        *res = false;
        return 0;
    }
    switch (a.t) {
    case JT_UNDEF: *res = true; return 0;
    case JT_LIST: {
        const struct jlist *x = a.u.l, *y = b.u.l;
        if (x->kind != y->kind || x->len != y->len || x->kind == JL_GEN) {
            *res = x == y; /* generators compare by identity */
            return 0;
        }
        for (size_t i = 0; i < x->len; i++) {
            if (eq_rec(rt, at, x->v[i], y->v[i], res, depth + 1))
                return -1;
            if (!*res)
                return 0;
        }
        *res = true;
        return 0;
    }
    case JT_DICT: {
        const struct jdict *x = a.u.d, *y = b.u.d;
        if (x->len != y->len) {
            *res = false;
            return 0;
        }
        for (size_t i = 0; i < x->len; i++) {
            struct jv *o = dict_find(y, x->e[i].k);
            if (!o) {
                *res = false;
                return 0;
            }
            if (eq_rec(rt, at, x->e[i].v, *o, res, depth + 1))
                return -1;
            if (!*res)
                return 0;
        }
        *res = true;
        return 0;
    }
    case JT_FUNC: *res = a.u.i == b.u.i; return 0;
    default: *res = a.u.o == b.u.o; return 0;
    }
}

int jv_eq(struct jrt *rt, const struct jn *at, struct jv a, struct jv b, bool *res)
{
    return eq_rec(rt, at, a, b, res, 0);
}

static int cmp_rec(struct jrt *rt, const struct jn *at, struct jv a, struct jv b, int *res, int depth)
{
    if (depth > JV_MAX_DEPTH)
        return jerr(rt, at, CIT_ERR_LIMIT, "values nested too deeply to compare");
    if (jstep(rt, at, 1))
        return -1;
    if (a.t == JT_UNDEF)
        return jundef_fail(rt, at, a);
    if (b.t == JT_UNDEF)
        return jundef_fail(rt, at, b);
    double fa, fb;
    int64_t ia = 0, ib = 0;
    bool inta, intb;
    if (num_of(a, &fa, &ia, &inta) && num_of(b, &fb, &ib, &intb)) {
        if (inta && intb)
            *res = ia < ib ? -1 : ia > ib;
        else
            *res = fa < fb ? -1 : fa > fb;
        return 0;
    }
    if (a.t == JT_STR && b.t == JT_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        if (n >= 64 && jstep(rt, at, n / 64))
            return -1;
        int c = memcmp(a.u.s->s, b.u.s->s, n);
        *res = c ? (c < 0 ? -1 : 1) : (a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len);
        return 0;
    }
    if (a.t == JT_LIST && b.t == JT_LIST && a.u.l->kind == b.u.l->kind && jl_seq(a.u.l)) {
        const struct jlist *x = a.u.l, *y = b.u.l;
        for (size_t i = 0; i < x->len && i < y->len; i++) {
            bool eq;
            if (eq_rec(rt, at, x->v[i], y->v[i], &eq, depth + 1))
                return -1;
            if (!eq)
                return cmp_rec(rt, at, x->v[i], y->v[i], res, depth + 1);
        }
        *res = x->len < y->len ? -1 : x->len > y->len;
        return 0;
    }
    return jerr(rt, at, CIT_ERR_TYPE, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a),
                jv_type_name(b));
}

int jv_cmp(struct jrt *rt, const struct jn *at, struct jv a, struct jv b, int *res)
{
    return cmp_rec(rt, at, a, b, res, 0);
}

int jv_iter_list(struct jrt *rt, const struct jn *at, struct jv v, struct jv *out)
{
    switch (v.t) {
    case JT_LIST: *out = jv_ref(v); return 0;
    case JT_UNDEF: {
        struct jlist *l = jl_new(rt, at, 0);
        if (!l)
            return -1;
        *out = jv_list(l);
        return 0;
    }
    case JT_STR: {
        const struct jstr *s = v.u.s;
        struct jlist *l = jl_new(rt, at, s->ncp);
        if (!l)
            return -1;
        size_t i = 0;
        while (i < s->len) {
            size_t st = i;
            ju_decode(s->s, s->len, &i);
            struct jv c;
            if (js_new(rt, at, s->s + st, i - st, &c) || jl_push(rt, at, l, c)) {
                jv_drop(rt, jv_list(l));
                return -1;
            }
        }
        *out = jv_list(l);
        return 0;
    }
    case JT_DICT: {
        const struct jdict *d = v.u.d;
        struct jlist *l = jl_new(rt, at, d->len);
        if (!l)
            return -1;
        for (size_t i = 0; i < d->len; i++)
            if (jl_push(rt, at, l, jv_ref(d->e[i].k))) {
                jv_drop(rt, jv_list(l));
                return -1;
            }
        *out = jv_list(l);
        return 0;
    }
    default: return jerr(rt, at, CIT_ERR_TYPE, "'%s' object is not iterable", jv_type_name(v));
    }
}

int jv_len(struct jrt *rt, const struct jn *at, struct jv v, int64_t *out)
{
    switch (v.t) {
    case JT_STR: *out = (int64_t)v.u.s->ncp; return 0;
    case JT_LIST:
        if (v.u.l->kind == JL_GEN)
            return jerr(rt, at, CIT_ERR_TYPE, "object of type 'generator' has no len()");
        *out = (int64_t)v.u.l->len;
        return 0;
    case JT_DICT: *out = (int64_t)v.u.d->len; return 0;
    case JT_UNDEF: *out = 0; return 0;
    default: return jerr(rt, at, CIT_ERR_TYPE, "object of type '%s' has no len()", jv_type_name(v));
    }
}
