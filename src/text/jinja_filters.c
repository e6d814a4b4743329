/* jinja_filters.c: Jinja2's builtin filters, as chat templates use them.
 *
 * (Tests live in jinja_tests.c, the str operations filters share with
 * methods in jinja_strops.c.) Each filter is a row in a table (name, parameter names, handler); the
 * parser resolves names to rows at load time, so an unknown filter is a
 * load error. Arguments bind positionally or by keyword as in Python.
 * Behaviour follows Jinja2 3.1: e.g. `unique` and `sort` ignore case by
 * default, `default` replaces only Undefined unless its second argument is
 * true, `int` falls back to int(float(x)) and then to its default. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_internal.h"


/* ---------------------------------------------------------------- argument binding */

int jargs_bind(struct jrt *rt, const struct jn *at, const char *fname, const char *const *names, size_t nslots,
               struct jv *args, size_t nargs, struct jstr **kwnames, struct jv *kwvals, size_t nkw,
               struct jv *slots)
{
    for (size_t i = 0; i < nslots; i++)
        slots[i] = JV_UNDEFINED;
    if (nargs > nslots)
        return jerr(rt, at, CIT_ERR_TYPE, "%s takes at most %zu argument(s) (%zu given)", fname, nslots, nargs);
    for (size_t i = 0; i < nargs; i++)
        slots[i] = args[i];
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        while (i < nslots && strcmp(names[i], kwnames[k]->s) != 0)
            i++;
        if (i == nslots)
            return jerr(rt, at, CIT_ERR_TYPE, "%s got an unexpected keyword argument '%s'", fname, kwnames[k]->s);
        if (i < nargs)
            return jerr(rt, at, CIT_ERR_TYPE, "%s got multiple values for argument '%s'", fname, kwnames[k]->s);
        slots[i] = kwvals[k];
    }
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static int to_int_arg(struct jrt *rt, const struct jn *at, const char *what, struct jv v, int64_t dflt, int64_t *out)
{
    if (!jslot_set(v) || v.t == JT_NONE) {
        *out = dflt;
        return 0;
    }
    if (v.t == JT_INT || v.t == JT_BOOL) {
        *out = v.t == JT_BOOL ? v.u.b : v.u.i;
        return 0;
    }
    return jerr(rt, at, CIT_ERR_TYPE, "%s must be an integer, not '%s'", what, jv_type_name(v));
}

static bool arg_true(struct jv v) { return jslot_set(v) && jv_truthy(v); }

/* str(v) as a borrowed-or-new string: the caller drops *out. */
static int strv(struct jrt *rt, const struct jn *at, struct jv v, struct jv *out) { return jv_to_str(rt, at, v, out); }

/* Jinja's attribute getter: "a.b.0" -> getitem per part (digits become ints). */
static int attr_get(struct jrt *rt, const struct jn *at, struct jv item, const struct jstr *path, struct jv *out)
{
    struct jv cur = jv_ref(item);
    size_t i = 0;
    while (i <= path->len) {
        size_t j = i;
        while (j < path->len && path->s[j] != '.')
            j++;
        struct jv key;
        bool digits = j > i;
        for (size_t k = i; k < j; k++)
            digits &= path->s[k] >= '0' && path->s[k] <= '9';
        if (digits && j - i < 18) {
            key = jv_int(strtoll(path->s + i, NULL, 10));
        } else if (js_new(rt, at, path->s + i, j - i, &key)) {
            jv_drop(rt, cur);
            return -1;
        }
        struct jv nxt;
        int rc = jop_getitem(rt, at, cur, key, &nxt);
        jv_drop(rt, key);
        jv_drop(rt, cur);
        if (rc)
            return -1;
        cur = nxt;
        i = j + 1;
    }
    *out = cur;
    return 0;
}

static int need_str_arg(struct jrt *rt, const struct jn *at, const char *what, struct jv v)
{
    if (v.t != JT_STR)
        return jerr(rt, at, CIT_ERR_TYPE, "%s must be a string, not '%s'", what, jv_type_name(v));
    return 0;
}

/* ---------------------------------------------------------------- sorting */

struct sort_ctx {
    struct jrt *rt;
    const struct jn *at;
    struct jv *keys;
    bool reverse;
    int failed;
};

static int key_cmp(struct sort_ctx *c, size_t x, size_t y)
{
    int r = 0;
    if (!c->failed && jv_cmp(c->rt, c->at, c->keys[x], c->keys[y], &r))
        c->failed = 1;
    return c->reverse ? -r : r;
}

/* Stable merge sort of idx[0..n) by keys. */
static void merge_sort(struct sort_ctx *c, size_t *idx, size_t *tmp, size_t n)
{
    if (n < 2 || c->failed)
        return;
    size_t h = n / 2;
    merge_sort(c, idx, tmp, h);
    merge_sort(c, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = key_cmp(c, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* Sort key for an item: attribute / dict position, then lower-cased when case-insensitive. */
static int sort_key(struct jrt *rt, const struct jn *at, struct jv item, const struct jstr *attr, int pos, bool ci,
                    struct jv *out)
{
    struct jv k;
    if (attr) {
        if (attr_get(rt, at, item, attr, &k))
            return -1;
    } else if (pos >= 0) {
        k = jv_ref(item.u.l->v[pos]);
    } else {
        k = jv_ref(item);
    }
    if (ci && k.t == JT_STR) {
        struct jv low;
        int rc = jstr_case(rt, at, k.u.s, false, &low);
        jv_drop(rt, k);
        if (rc)
            return -1;
        k = low;
    }
    *out = k;
    return 0;
}

static int sorted_list(struct jrt *rt, const struct jn *at, struct jv seq, bool reverse, bool ci, const struct jstr *attr,
                       int pos, struct jv *out)
{
    struct jv items;
    if (jv_iter_list(rt, at, seq, &items))
        return -1;
    size_t n = items.u.l->len;
    struct jv *keys = jmem_alloc(rt, at, (n + 1) * sizeof *keys);
    size_t *idx = jmem_alloc(rt, at, (n + 1) * sizeof *idx), *tmp = jmem_alloc(rt, at, (n + 1) * sizeof *tmp);
    int rc = (keys && idx && tmp) ? 0 : -1;
    size_t made = 0;
    for (; rc == 0 && made < n; made++) {
        idx[made] = made;
        rc = sort_key(rt, at, items.u.l->v[made], attr, pos, ci, &keys[made]);
        if (rc)
            break;
    }
    if (rc == 0)
        rc = jstep(rt, at, n * 8);
    if (rc == 0) {
        struct sort_ctx c = {rt, at, keys, reverse, 0};
        merge_sort(&c, idx, tmp, n);
        rc = c.failed ? -1 : 0;
    }
    struct jlist *l = rc == 0 ? jl_new(rt, at, n) : NULL;
    if (rc == 0 && !l)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = jl_push(rt, at, l, jv_ref(items.u.l->v[idx[i]]));
    for (size_t i = 0; keys && i < made; i++)
        jv_drop(rt, keys[i]);
    jmem_free(rt, keys, keys ? (n + 1) * sizeof *keys : 0);
    jmem_free(rt, idx, idx ? (n + 1) * sizeof *idx : 0);
    jmem_free(rt, tmp, tmp ? (n + 1) * sizeof *tmp : 0);
    jv_drop(rt, items);
    if (rc) {
        if (l)
            jv_drop(rt, jv_list(l));
        return -1;
    }
    *out = jv_list(l);
    return 0;
}

/* ---------------------------------------------------------------- filters */

#define BIND JCALL_BIND
#define NOARGS() JCALL_NOARGS("filter '%s' takes no arguments")

static int f_safe(struct jcall *c, struct jv *out)
{
    NOARGS();
    if (strv(c->rt, c->at, c->recv, out))
        return -1;
    out->m = 1;
    return 0;
}

/* Results of str-like filters stay Markup when their input was Markup (markupsafe wraps str methods). */
static int keep_markup(struct jcall *c, int rc, struct jv *out)
{
    if (rc == 0 && out->t == JT_STR && c->recv.t == JT_STR && c->recv.m)
        out->m = 1;
    return rc;
}

static int f_string(struct jcall *c, struct jv *out)
{
    NOARGS();
    return strv(c->rt, c->at, c->recv, out);
}

static int f_case(struct jcall *c, struct jv *out, uint32_t (*fn)(uint32_t))
{
    NOARGS();
    struct jv s;
    if (strv(c->rt, c->at, c->recv, &s))
        return -1;
    int rc = jstr_case(c->rt, c->at, s.u.s, fn == ju_upper, out);
    jv_drop(c->rt, s);
    return keep_markup(c, rc, out);
}

static int f_upper(struct jcall *c, struct jv *out) { return f_case(c, out, ju_upper); }
static int f_lower(struct jcall *c, struct jv *out) { return f_case(c, out, ju_lower); }

/* capitalize: first code point upper, the rest lower; title: the same per word (Jinja's word split). */
static int f_capitalize_title(struct jcall *c, struct jv *out, bool title)
{
    NOARGS();
    struct jv s;
    if (strv(c->rt, c->at, c->recv, &s))
        return -1;
    const struct jstr *str = s.u.s;
    struct jbuf b = {0};
    size_t i = 0;
    bool start = true;
    int rc = 0;
    while (i < str->len && rc == 0) {
        uint32_t cp = ju_decode(str->s, str->len, &i);
        bool sep = title && (cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || ju_isspace(cp));
        char enc[8];
        int n;
        if (sep) {
            n = ju_encode(cp, enc);
            start = true;
        } else if (start) {
            n = cp == 0xDF ? (enc[0] = 'S', enc[1] = 's', 2) : ju_encode(ju_upper(cp), enc);
            start = false;
        } else {
            n = ju_encode(ju_lower(cp), enc);
        }
        rc = jb_put(c->rt, c->at, &b, enc, (size_t)n);
    }
    jv_drop(c->rt, s);
    if (rc) {
        jb_free(c->rt, &b);
        return -1;
    }
    return jb_take(c->rt, c->at, &b, out);
}

static int f_capitalize(struct jcall *c, struct jv *out)
{
    return keep_markup(c, f_capitalize_title(c, out, false), out);
}
static int f_title(struct jcall *c, struct jv *out) { return f_capitalize_title(c, out, true); }

static int f_trim(struct jcall *c, struct jv *out)
{
    BIND("chars");
    if (jslot_set(a[0]) && a[0].t != JT_NONE && need_str_arg(c->rt, c->at, "trim chars", a[0]))
        return -1;
    struct jv s;
    if (strv(c->rt, c->at, c->recv, &s))
        return -1;
    int rc = jstr_strip(c->rt, c->at, s.u.s, (jslot_set(a[0]) && a[0].t == JT_STR) ? a[0].u.s : NULL, 0, out);
    jv_drop(c->rt, s);
    return keep_markup(c, rc, out);
}

static int f_length(struct jcall *c, struct jv *out)
{
    NOARGS();
    int64_t n;
    if (c->recv.t == JT_NS)
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "object of type 'Namespace' has no len()");
    if (jv_len(c->rt, c->at, c->recv, &n))
        return -1;
    *out = jv_int(n);
    return 0;
}

static int f_default(struct jcall *c, struct jv *out)
{
    BIND("default_value", "boolean");
    bool use = c->recv.t == JT_UNDEF || (arg_true(a[1]) && !jv_truthy(c->recv));
    if (!use) {
        *out = jv_ref(c->recv);
    } else if (jslot_set(a[0])) {
        *out = jv_ref(a[0]);
    } else {
        return js_new(c->rt, c->at, "", 0, out);
    }
    return 0;
}

static int f_first_last(struct jcall *c, struct jv *out, bool last)
{
    NOARGS();
    struct jv items;
    if (jv_iter_list(c->rt, c->at, c->recv, &items))
        return -1;
    const struct jlist *l = items.u.l;
    if (last && l->kind == JL_GEN) {
        jv_drop(c->rt, items);
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "'generator' object is not reversible");
    }
    if (l->len)
        *out = jv_ref(l->v[last ? l->len - 1 : 0]);
    else
        *out = jv_undef(c->rt, "No %s item, sequence was empty.", last ? "last" : "first");
    jv_drop(c->rt, items);
    return 0;
}

static int f_first(struct jcall *c, struct jv *out) { return f_first_last(c, out, false); }
static int f_last(struct jcall *c, struct jv *out) { return f_first_last(c, out, true); }

static int f_list(struct jcall *c, struct jv *out)
{
    NOARGS();
    struct jv items;
    if (jv_iter_list(c->rt, c->at, c->recv, &items))
        return -1;
    if (items.u.l->kind == JL_LIST) {
        *out = items;
        return 0;
    }
    struct jlist *l = jl_new(c->rt, c->at, items.u.l->len);
    for (size_t i = 0; l && i < items.u.l->len; i++)
        if (jl_push(c->rt, c->at, l, jv_ref(items.u.l->v[i]))) {
            jv_drop(c->rt, jv_list(l));
            l = NULL;
        }
    jv_drop(c->rt, items);
    if (!l)
        return -1;
    *out = jv_list(l);
    return 0;
}

static int f_items(struct jcall *c, struct jv *out)
{
    NOARGS();
    struct jrt *rt = c->rt;
    if (c->recv.t == JT_UNDEF) {
        struct jlist *l = jl_new(rt, c->at, 0);
        if (!l)
            return -1;
        *out = jv_list(l);
        return 0;
    }
    if (c->recv.t != JT_DICT)
        return jerr(rt, c->at, CIT_ERR_TYPE, "can only get item pairs from a mapping");
    const struct jdict *d = c->recv.u.d;
    struct jlist *l = jl_new(rt, c->at, d->len);
    if (!l)
        return -1;
    for (size_t i = 0; i < d->len; i++) {
        struct jlist *p = jl_new(rt, c->at, 2);
        if (!p) {
            jv_drop(rt, jv_list(l));
            return -1;
        }
        p->kind = JL_TUPLE;
        if (jl_push(rt, c->at, p, jv_ref(d->e[i].k)) || jl_push(rt, c->at, p, jv_ref(d->e[i].v)) ||
            jl_push(rt, c->at, l, jv_list(p))) {
            jv_drop(rt, jv_list(l));
            return -1;
        }
    }
    l->kind = JL_GEN;
    *out = jv_list(l);
    return 0;
}

static int f_join(struct jcall *c, struct jv *out)
{
    BIND("d", "attribute");
    struct jrt *rt = c->rt;
    if (jslot_set(a[0]) && need_str_arg(rt, c->at, "join separator", a[0]))
        return -1;
    if (jslot_set(a[1]) && a[1].t != JT_NONE && need_str_arg(rt, c->at, "join attribute", a[1]))
        return -1;
    struct jv items;
    if (jv_iter_list(rt, c->at, c->recv, &items))
        return -1;
    struct jbuf b = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < items.u.l->len; i++) {
        if (i && jslot_set(a[0]))
            rc = jb_put(rt, c->at, &b, a[0].u.s->s, a[0].u.s->len);
        struct jv v = items.u.l->v[i], got;
        if (rc == 0 && jslot_set(a[1]) && a[1].t == JT_STR) {
            rc = attr_get(rt, c->at, v, a[1].u.s, &got);
            if (rc == 0) {
                rc = jv_write_str(rt, c->at, &b, got);
                jv_drop(rt, got);
            }
        } else if (rc == 0) {
            rc = jv_write_str(rt, c->at, &b, v);
        }
    }
    jv_drop(rt, items);
    if (rc) {
        jb_free(rt, &b);
        return -1;
    }
    return jb_take(rt, c->at, &b, out);
}

static int f_replace(struct jcall *c, struct jv *out)
{
    BIND("old", "new", "count");
    struct jrt *rt = c->rt;
    if (!jslot_set(a[0]) || !jslot_set(a[1]))
        return jerr(rt, c->at, CIT_ERR_TYPE, "replace() needs the old and new strings");
    int64_t count = 0;
    if (to_int_arg(rt, c->at, "replace count", a[2], -1, &count))
        return -1;
    struct jv s, o, n;
    if (strv(rt, c->at, c->recv, &s))
        return -1;
    if (strv(rt, c->at, a[0], &o)) {
        jv_drop(rt, s);
        return -1;
    }
    if (strv(rt, c->at, a[1], &n)) {
        jv_drop(rt, s);
        jv_drop(rt, o);
        return -1;
    }
    int rc = jstr_replace(rt, c->at, s.u.s, o.u.s, n.u.s, count, out);
    jv_drop(rt, s);
    jv_drop(rt, o);
    jv_drop(rt, n);
    return rc;
}

static int f_tojson(struct jcall *c, struct jv *out)
{
    BIND("indent");
    int64_t indent;
    if (to_int_arg(c->rt, c->at, "tojson indent", a[0], -1, &indent))
        return -1;
    if (indent > 64)
        indent = 64;
    struct jbuf b = {0};
    if (jtojson(c->rt, c->at, &b, c->recv, (int)indent, 0) || jb_take(c->rt, c->at, &b, out)) {
        jb_free(c->rt, &b);
        return -1;
    }
    out->m = 1;
    return 0;
}

static int parse_py_int(const struct jstr *s, int64_t base, int64_t *out)
{
    size_t i = 0, n = s->len;
    while (i < n && (s->s[i] == ' ' || (s->s[i] >= '\t' && s->s[i] <= '\r')))
        i++;
    while (n > i && (s->s[n - 1] == ' ' || (s->s[n - 1] >= '\t' && s->s[n - 1] <= '\r')))
        n--;
    bool neg = false;
    if (i < n && (s->s[i] == '+' || s->s[i] == '-'))
        neg = s->s[i++] == '-';
    if (base == 16 && i + 1 < n && s->s[i] == '0' && (s->s[i + 1] | 32) == 'x')
        i += 2;
    if (i >= n || base < 2 || base > 36)
        return -1;
    uint64_t v = 0;
    bool prev_digit = false;
    for (; i < n; i++) {
        char ch = s->s[i];
        if (ch == '_' && prev_digit && i + 1 < n) {
            prev_digit = false;
            continue;
        }
        int d = (ch >= '0' && ch <= '9') ? ch - '0' : ((ch | 32) >= 'a' && (ch | 32) <= 'z') ? (ch | 32) - 'a' + 10 : 99;
        if (d >= base)
            return -1;
        if (v > ((uint64_t)INT64_MAX + 1 - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
        prev_digit = true;
    }
    if (!prev_digit || v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int parse_py_float(const struct jstr *s, double *out)
{
    char buf[128];
    size_t i = 0, n = s->len, o = 0;
    while (i < n && (s->s[i] == ' ' || (s->s[i] >= '\t' && s->s[i] <= '\r')))
        i++;
    while (n > i && (s->s[n - 1] == ' ' || (s->s[n - 1] >= '\t' && s->s[n - 1] <= '\r')))
        n--;
    if (i >= n || n - i >= sizeof buf)
        return -1;
    for (; i < n; i++)
        if (s->s[i] != '_')
            buf[o++] = s->s[i];
    buf[o] = '\0';
    if (strchr(buf, 'x') || strchr(buf, 'X'))
        return -1; /* strtod would accept hex floats; Python does not */
    char *end;
    *out = strtod(buf, &end);
    return *end == '\0' ? 0 : -1;
}

static int f_int(struct jcall *c, struct jv *out)
{
    BIND("default", "base");
    int64_t base, v;
    if (to_int_arg(c->rt, c->at, "int base", a[1], 10, &base))
        return -1;
    struct jv in = c->recv;
    double f;
    if (in.t == JT_INT || in.t == JT_BOOL) {
        *out = jv_int(in.t == JT_BOOL ? in.u.b : in.u.i);
        return 0;
    }
    if (in.t == JT_STR && parse_py_int(in.u.s, base, &v) == 0) {
        *out = jv_int(v);
        return 0;
    }
    bool have_f = in.t == JT_FLOAT ? (f = in.u.f, true) : (in.t == JT_STR && parse_py_float(in.u.s, &f) == 0);
    if (have_f && isfinite(f) && fabs(f) < 9.2e18) {
        *out = jv_int((int64_t)f);
        return 0;
    }
    *out = jslot_set(a[0]) ? jv_ref(a[0]) : jv_int(0);
    return 0;
}

static int f_float(struct jcall *c, struct jv *out)
{
    BIND("default");
    struct jv in = c->recv;
    double f;
    if (in.t == JT_FLOAT || in.t == JT_INT || in.t == JT_BOOL) {
        *out = jv_float(in.t == JT_FLOAT ? in.u.f : in.t == JT_INT ? (double)in.u.i : in.u.b);
        return 0;
    }
    if (in.t == JT_STR && parse_py_float(in.u.s, &f) == 0) {
        *out = jv_float(f);
        return 0;
    }
    *out = jslot_set(a[0]) ? jv_ref(a[0]) : jv_float(0.0);
    return 0;
}

static int f_abs(struct jcall *c, struct jv *out)
{
    NOARGS();
    struct jv in = c->recv;
    if (in.t == JT_INT || in.t == JT_BOOL) {
        int64_t i = in.t == JT_BOOL ? in.u.b : in.u.i;
        if (i == INT64_MIN)
            return jerr(c->rt, c->at, CIT_ERR_RANGE, "integer overflow");
        *out = jv_int(i < 0 ? -i : i);
        return 0;
    }
    if (in.t == JT_FLOAT) {
        *out = jv_float(fabs(in.u.f));
        return 0;
    }
    return jerr(c->rt, c->at, CIT_ERR_TYPE, "bad operand type for abs(): '%s'", jv_type_name(in));
}

static int f_round(struct jcall *c, struct jv *out)
{
    BIND("precision", "method");
    int64_t prec;
    if (to_int_arg(c->rt, c->at, "round precision", a[0], 0, &prec))
        return -1;
    const char *method = "common";
    if (jslot_set(a[1])) {
        if (need_str_arg(c->rt, c->at, "round method", a[1]))
            return -1;
        method = a[1].u.s->s;
    }
    if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
        return jerr(c->rt, c->at, CIT_ERR_INVALID_ARG, "method must be common, ceil or floor");
    struct jv in = c->recv;
    if (in.t != JT_INT && in.t != JT_BOOL && in.t != JT_FLOAT)
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "type %s doesn't define __round__ method", jv_type_name(in));
    double x = in.t == JT_FLOAT ? in.u.f : (double)(in.t == JT_INT ? in.u.i : in.u.b);
    if (prec < -308 || prec > 308)
        prec = prec < 0 ? -308 : 308;
    if (!strcmp(method, "common")) {
        if (in.t != JT_FLOAT) {
            *out = jv_ref(in.t == JT_BOOL ? jv_int(in.u.b) : in);
            return 0;
        }
        if (!isfinite(x)) {
            *out = jv_float(x);
            return 0;
        }
        if (prec >= 0) {
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
            *out = jv_float(strtod(buf, NULL));
        } else {
            double m = pow(10.0, (double)-prec);
            *out = jv_float(nearbyint(x / m) * m);
        }
        return 0;
    }
    double m = pow(10.0, (double)prec);
    *out = jv_float((method[0] == 'c' ? ceil(x * m) : floor(x * m)) / m);
    return 0;
}

static int f_indent(struct jcall *c, struct jv *out)
{
    BIND("width", "first", "blank");
    struct jrt *rt = c->rt;
    char pad_buf[256];
    const char *pad;
    size_t padn;
    if (jslot_set(a[0]) && a[0].t == JT_STR) {
        pad = a[0].u.s->s;
        padn = a[0].u.s->len;
    } else {
        int64_t w = 0;
        if (to_int_arg(rt, c->at, "indent width", a[0], 4, &w))
            return -1;
        if (w < 0)
            w = 0;
        if (w > (int64_t)sizeof pad_buf)
            return jerr(rt, c->at, CIT_ERR_LIMIT, "indent width %lld too large", (long long)w);
        memset(pad_buf, ' ', (size_t)w);
        pad = pad_buf;
        padn = (size_t)w;
    }
    bool first = arg_true(a[1]), blank = arg_true(a[2]);
    struct jv s;
    if (strv(rt, c->at, c->recv, &s))
        return -1;
    /* Jinja appends "\n" before splitting so a trailing newline survives. */
    struct jbuf tmp = {0};
    struct jv sn;
    if (jb_put(rt, c->at, &tmp, s.u.s->s, s.u.s->len) || jb_putc(rt, c->at, &tmp, '\n') ||
        jb_take(rt, c->at, &tmp, &sn)) {
        jb_free(rt, &tmp);
        jv_drop(rt, s);
        return -1;
    }
    jv_drop(rt, s);
    struct jline *lines = NULL;
    size_t nl = 0, lcap = 0;
    if (jstr_splitlines(rt, c->at, sn.u.s, &lines, &nl, &lcap)) {
        jv_drop(rt, sn);
        return -1;
    }
    const char *src = sn.u.s->s;
    struct jbuf b = {0};
    int rc = 0;
    if (first)
        rc = jb_put(rt, c->at, &b, pad, padn);
    for (size_t i = 0; rc == 0 && i < nl; i++) {
        bool empty = lines[i].a == lines[i].b;
        if (i > 0) {
            rc = jb_putc(rt, c->at, &b, '\n');
            if (rc == 0 && (blank || !empty))
                rc = jb_put(rt, c->at, &b, pad, padn);
        }
        if (rc == 0)
            rc = jb_put(rt, c->at, &b, src + lines[i].a, lines[i].b - lines[i].a);
    }
    jmem_free(rt, lines, lcap * sizeof *lines);
    jv_drop(rt, sn);
    if (rc) {
        jb_free(rt, &b);
        return -1;
    }
    return keep_markup(c, jb_take(rt, c->at, &b, out), out);
}

static int f_reverse(struct jcall *c, struct jv *out)
{
    NOARGS();
    struct jrt *rt = c->rt;
    if (c->recv.t == JT_STR) {
        const struct jstr *s = c->recv.u.s;
        struct jbuf b = {0};
        size_t i = s->len;
        while (i > 0) {
            size_t k = i - 1;
            while (k > 0 && ((unsigned char)s->s[k] & 0xC0) == 0x80)
                k--;
            if (jb_put(rt, c->at, &b, s->s + k, i - k)) {
                jb_free(rt, &b);
                return -1;
            }
            i = k;
        }
        return keep_markup(c, jb_take(rt, c->at, &b, out), out);
    }
    struct jv items;
    if (jv_iter_list(rt, c->at, c->recv, &items))
        return -1;
    struct jlist *l = jl_new(rt, c->at, items.u.l->len);
    /* reversed() of a sequence is an iterator; a generator is materialized into a list first. */
    if (l)
        l->kind = items.u.l->kind == JL_GEN ? JL_LIST : JL_GEN;
    for (size_t i = items.u.l->len; l && i > 0; i--)
        if (jl_push(rt, c->at, l, jv_ref(items.u.l->v[i - 1]))) {
            jv_drop(rt, jv_list(l));
            l = NULL;
        }
    jv_drop(rt, items);
    if (!l)
        return -1;
    *out = jv_list(l);
    return 0;
}

static int f_sort(struct jcall *c, struct jv *out)
{
    BIND("reverse", "case_sensitive", "attribute");
    if (jslot_set(a[2]) && a[2].t != JT_NONE && need_str_arg(c->rt, c->at, "sort attribute", a[2]))
        return -1;
    return sorted_list(c->rt, c->at, c->recv, arg_true(a[0]), !arg_true(a[1]),
                       (jslot_set(a[2]) && a[2].t == JT_STR) ? a[2].u.s : NULL, -1, out);
}

static int f_dictsort(struct jcall *c, struct jv *out)
{
    BIND("case_sensitive", "by", "reverse");
    struct jv pairs;
    struct jcall ic = *c;
    ic.nargs = ic.nk = 0;
    if (c->recv.t != JT_DICT)
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "dictsort needs a mapping");
    if (f_items(&ic, &pairs))
        return -1;
    int pos = 0;
    if (jslot_set(a[1])) {
        if (need_str_arg(c->rt, c->at, "dictsort by", a[1]))
            return -1;
        if (!strcmp(a[1].u.s->s, "value"))
            pos = 1;
        else if (strcmp(a[1].u.s->s, "key")) {
            jv_drop(c->rt, pairs);
            return jerr(c->rt, c->at, CIT_ERR_INVALID_ARG, "you can only sort by either \"key\" or \"value\"");
        }
    }
    int rc = sorted_list(c->rt, c->at, pairs, arg_true(a[2]), !arg_true(a[0]), NULL, pos, out);
    jv_drop(c->rt, pairs);
    return rc;
}

static int f_unique(struct jcall *c, struct jv *out)
{
    BIND("case_sensitive", "attribute");
    struct jrt *rt = c->rt;
    if (jslot_set(a[1]) && a[1].t != JT_NONE && need_str_arg(rt, c->at, "unique attribute", a[1]))
        return -1;
    const struct jstr *attr = (jslot_set(a[1]) && a[1].t == JT_STR) ? a[1].u.s : NULL;
    bool ci = !arg_true(a[0]);
    struct jv items;
    if (jv_iter_list(rt, c->at, c->recv, &items))
        return -1;
    struct jlist *res = jl_new(rt, c->at, 0), *seen = jl_new(rt, c->at, 0);
    int rc = (res && seen) ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < items.u.l->len; i++) {
        struct jv k;
        if ((rc = sort_key(rt, c->at, items.u.l->v[i], attr, -1, ci, &k)))
            break;
        bool dup = false;
        for (size_t j = 0; rc == 0 && j < seen->len && !dup; j++)
            rc = jv_eq(rt, c->at, seen->v[j], k, &dup);
        if (rc == 0 && !dup) {
            rc = jl_push(rt, c->at, seen, k);
            if (rc == 0)
                rc = jl_push(rt, c->at, res, jv_ref(items.u.l->v[i]));
        } else {
            jv_drop(rt, k);
        }
    }
    jv_drop(rt, items);
    if (seen)
        jv_drop(rt, jv_list(seen));
    if (rc) {
        if (res)
            jv_drop(rt, jv_list(res));
        return -1;
    }
    res->kind = JL_GEN;
    *out = jv_list(res);
    return 0;
}

static int f_minmax(struct jcall *c, struct jv *out, bool want_max)
{
    BIND("case_sensitive", "attribute");
    struct jrt *rt = c->rt;
    if (jslot_set(a[1]) && a[1].t != JT_NONE && need_str_arg(rt, c->at, "attribute", a[1]))
        return -1;
    struct jv sorted;
    if (sorted_list(rt, c->at, c->recv, false, !arg_true(a[0]), (jslot_set(a[1]) && a[1].t == JT_STR) ? a[1].u.s : NULL,
                    -1, &sorted))
        return -1;
    const struct jlist *l = sorted.u.l;
    if (l->len == 0)
        *out = jv_undef(rt, "No aggregated item, sequence was empty.");
    else
        *out = jv_ref(l->v[want_max ? l->len - 1 : 0]);
    /* sorted() is stable; Python's max() returns the first maximal item. */
    if (want_max && l->len > 1) {
        size_t k = l->len - 1;
        int cmp = 0;
        struct jv best = l->v[k];
        while (k > 0) {
            struct jv ka, kb;
            const struct jstr *attr = (jslot_set(a[1]) && a[1].t == JT_STR) ? a[1].u.s : NULL;
            if (sort_key(rt, c->at, l->v[k - 1], attr, -1, !arg_true(a[0]), &ka))
                break;
            if (sort_key(rt, c->at, best, attr, -1, !arg_true(a[0]), &kb)) {
                jv_drop(rt, ka);
                break;
            }
            int rc = jv_cmp(rt, c->at, ka, kb, &cmp);
            jv_drop(rt, ka);
            jv_drop(rt, kb);
            if (rc || cmp != 0)
                break;
            k--;
        }
        jv_drop(rt, *out);
        *out = jv_ref(l->v[k]);
    }
    jv_drop(rt, sorted);
    return rt->failed ? -1 : 0;
}

static int f_max(struct jcall *c, struct jv *out) { return f_minmax(c, out, true); }
static int f_min(struct jcall *c, struct jv *out) { return f_minmax(c, out, false); }

static int f_sum(struct jcall *c, struct jv *out)
{
    BIND("attribute", "start");
    struct jrt *rt = c->rt;
    if (jslot_set(a[0]) && a[0].t != JT_NONE && need_str_arg(rt, c->at, "sum attribute", a[0]))
        return -1;
    struct jv items;
    if (jv_iter_list(rt, c->at, c->recv, &items))
        return -1;
    struct jv acc = jslot_set(a[1]) ? jv_ref(a[1]) : jv_int(0);
    if (acc.t == JT_STR) {
        jv_drop(rt, items);
        jv_drop(rt, acc);
        return jerr(rt, c->at, CIT_ERR_TYPE, "sum() can't sum strings [use ''.join(seq) instead]");
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < items.u.l->len; i++) {
        struct jv v, r;
        if (jslot_set(a[0]) && a[0].t == JT_STR)
            rc = attr_get(rt, c->at, items.u.l->v[i], a[0].u.s, &v);
        else
            v = jv_ref(items.u.l->v[i]);
        if (rc)
            break;
        rc = jop_binary(rt, c->at, JOP_ADD, acc, v, &r);
        jv_drop(rt, v);
        jv_drop(rt, acc);
        acc = rc ? JV_UNDEFINED : r;
    }
    jv_drop(rt, items);
    if (rc) {
        jv_drop(rt, acc);
        return -1;
    }
    *out = acc;
    return 0;
}

static int f_escape(struct jcall *c, struct jv *out)
{
    NOARGS();
    return jstr_escape(c->rt, c->at, c->recv, out);
}

static int f_wordcount(struct jcall *c, struct jv *out)
{
    NOARGS();
    struct jv s;
    if (strv(c->rt, c->at, c->recv, &s))
        return -1;
    int64_t n = 0;
    bool in_word = false;
    size_t i = 0;
    while (i < s.u.s->len) {
        uint32_t cp = ju_decode(s.u.s->s, s.u.s->len, &i);
        bool w = cp == '_' || ju_isalpha(cp) || ju_isdigit(cp);
        if (w && !in_word)
            n++;
        in_word = w;
    }
    jv_drop(c->rt, s);
    *out = jv_int(n);
    return 0;
}

static int f_center(struct jcall *c, struct jv *out)
{
    BIND("width");
    int64_t w;
    if (to_int_arg(c->rt, c->at, "center width", a[0], 80, &w))
        return -1;
    struct jv s;
    if (strv(c->rt, c->at, c->recv, &s))
        return -1;
    int64_t len = (int64_t)s.u.s->ncp;
    if (w > (int64_t)c->rt->max_str)
        w = (int64_t)c->rt->max_str;
    int64_t marg = w - len, left = marg / 2 + (marg & w & 1);
    struct jbuf b = {0};
    int rc = 0;
    for (int64_t i = 0; rc == 0 && marg > 0 && i < left; i++)
        rc = jb_putc(c->rt, c->at, &b, ' ');
    if (rc == 0)
        rc = jb_put(c->rt, c->at, &b, s.u.s->s, s.u.s->len);
    for (int64_t i = 0; rc == 0 && marg > 0 && i < marg - left; i++)
        rc = jb_putc(c->rt, c->at, &b, ' ');
    jv_drop(c->rt, s);
    if (rc) {
        jb_free(c->rt, &b);
        return -1;
    }
    return keep_markup(c, jb_take(c->rt, c->at, &b, out), out);
}

static int f_attr(struct jcall *c, struct jv *out)
{
    BIND("name");
    if (!jslot_set(a[0]) || need_str_arg(c->rt, c->at, "attr name", a[0]))
        return jslot_set(a[0]) ? -1 : jerr(c->rt, c->at, CIT_ERR_TYPE, "attr() needs a name");
    if (c->recv.t == JT_DICT) {
        *out = jv_undef(c->rt, "'dict object' has no attribute '%.200s'", a[0].u.s->s);
        return 0;
    }
    return jop_getattr(c->rt, c->at, c->recv, a[0].u.s->s, a[0].u.s->len, out);
}

static int f_format(struct jcall *c, struct jv *out)
{
    if (c->nk)
        return jerr(c->rt, c->at, CIT_ERR_UNSUPPORTED, "format() with keyword arguments is not supported");
    struct jv s;
    if (strv(c->rt, c->at, c->recv, &s))
        return -1;
    struct jlist *l = jl_new(c->rt, c->at, c->nargs);
    int rc = l ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < c->nargs; i++)
        rc = jl_push(c->rt, c->at, l, jv_ref(c->args[i]));
    if (rc == 0) {
        l->kind = JL_TUPLE;
        rc = jop_binary(c->rt, c->at, JOP_MOD, s, jv_list(l), out);
    }
    if (l)
        jv_drop(c->rt, jv_list(l));
    jv_drop(c->rt, s);
    return rc;
}

/* select / reject / selectattr / rejectattr / map share their iteration. */
static int f_select_like(struct jcall *c, struct jv *out, bool by_attr, bool keep_when)
{
    struct jrt *rt = c->rt;
    size_t skip = by_attr ? 1 : 0;
    if (c->nk)
        return jerr(rt, c->at, CIT_ERR_TYPE, "%s() takes no keyword arguments", c->name);
    if (by_attr && (c->nargs < 1 || need_str_arg(rt, c->at, "attribute", c->args[0])))
        return c->nargs < 1 ? jerr(rt, c->at, CIT_ERR_TYPE, "%s() needs an attribute name", c->name) : -1;
    int test = -1;
    if (c->nargs > skip) {
        if (need_str_arg(rt, c->at, "test name", c->args[skip]))
            return -1;
        test = jtest_find(c->args[skip].u.s->s, c->args[skip].u.s->len);
        if (test < 0)
            return jerr(rt, c->at, CIT_ERR_NOT_FOUND, "no test named '%.100s'", c->args[skip].u.s->s);
    }
    struct jv *targs = c->nargs > skip + 1 ? c->args + skip + 1 : NULL;
    size_t ntargs = c->nargs > skip + 1 ? c->nargs - skip - 1 : 0;
    struct jv items;
    /* Jinja2 yields nothing for a falsy input (None included) instead of iterating it. */
    if (jv_iter_list(rt, c->at, jv_truthy(c->recv) ? c->recv : JV_UNDEFINED, &items))
        return -1;
    struct jlist *l = jl_new(rt, c->at, 0);
    int rc = l ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < items.u.l->len; i++) {
        struct jv item = items.u.l->v[i], v;
        if (by_attr)
            rc = attr_get(rt, c->at, item, c->args[0].u.s, &v);
        else
            v = jv_ref(item);
        if (rc)
            break;
        bool ok;
        if (test >= 0)
            rc = jtest_apply(rt, c->at, test, v, targs, ntargs, &ok);
        else
            ok = jv_truthy(v);
        jv_drop(rt, v);
        if (rc == 0 && ok == keep_when)
            rc = jl_push(rt, c->at, l, jv_ref(item));
    }
    jv_drop(rt, items);
    if (rc) {
        if (l)
            jv_drop(rt, jv_list(l));
        return -1;
    }
    l->kind = JL_GEN;
    *out = jv_list(l);
    return 0;
}

static int f_select(struct jcall *c, struct jv *out) { return f_select_like(c, out, false, true); }
static int f_reject(struct jcall *c, struct jv *out) { return f_select_like(c, out, false, false); }
static int f_selectattr(struct jcall *c, struct jv *out) { return f_select_like(c, out, true, true); }
static int f_rejectattr(struct jcall *c, struct jv *out) { return f_select_like(c, out, true, false); }

static int f_map(struct jcall *c, struct jv *out)
{
    struct jrt *rt = c->rt;
    const struct jstr *attr = NULL;
    struct jv dflt = JV_UNDEFINED;
    int filter = -1;
    for (size_t k = 0; k < c->nk; k++) {
        if (!strcmp(c->kn[k]->s, "attribute")) {
            if (need_str_arg(rt, c->at, "map attribute", c->kv[k]))
                return -1;
            attr = c->kv[k].u.s;
        } else if (!strcmp(c->kn[k]->s, "default")) {
            dflt = c->kv[k];
        } else if (!attr && c->nargs) {
            continue; /* keyword arguments for the mapped filter */
        } else {
            return jerr(rt, c->at, CIT_ERR_TYPE, "map() got an unexpected keyword argument '%s'", c->kn[k]->s);
        }
    }
    if (!attr) {
        if (c->nargs < 1)
            return jerr(rt, c->at, CIT_ERR_TYPE, "map() needs a filter name or attribute=");
        if (need_str_arg(rt, c->at, "filter name", c->args[0]))
            return -1;
        filter = jfilter_find(c->args[0].u.s->s, c->args[0].u.s->len);
        if (filter < 0)
            return jerr(rt, c->at, CIT_ERR_NOT_FOUND, "no filter named '%.100s'", c->args[0].u.s->s);
    } else if (c->nargs) {
        return jerr(rt, c->at, CIT_ERR_TYPE, "map() with attribute= takes no positional arguments");
    }
    struct jv items;
    if (jv_iter_list(rt, c->at, jv_truthy(c->recv) ? c->recv : JV_UNDEFINED, &items))
        return -1;
    struct jlist *l = jl_new(rt, c->at, items.u.l->len);
    int rc = l ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < items.u.l->len; i++) {
        struct jv v;
        if (attr) {
            rc = attr_get(rt, c->at, items.u.l->v[i], attr, &v);
            if (rc == 0 && v.t == JT_UNDEF && jslot_set(dflt)) {
                jv_drop(rt, v);
                v = jv_ref(dflt);
            }
        } else {
            rc = jfilter_apply(rt, c->at, filter, items.u.l->v[i], c->args + 1, c->nargs - 1, c->kn, c->kv, c->nk,
                               &v);
        }
        if (rc == 0)
            rc = jl_push(rt, c->at, l, v);
    }
    jv_drop(rt, items);
    if (rc) {
        if (l)
            jv_drop(rt, jv_list(l));
        return -1;
    }
    l->kind = JL_GEN;
    *out = jv_list(l);
    return 0;
}

static int f_truncate(struct jcall *c, struct jv *out)
{
    BIND("length", "killwords", "end", "leeway");
    struct jrt *rt = c->rt;
    int64_t length = 0, leeway = 0;
    if (to_int_arg(rt, c->at, "truncate length", a[0], 255, &length) ||
        to_int_arg(rt, c->at, "truncate leeway", a[3], 5, &leeway))
        return -1;
    if (jslot_set(a[2]) && need_str_arg(rt, c->at, "truncate end", a[2]))
        return -1;
    const char *end = jslot_set(a[2]) ? a[2].u.s->s : "...";
    size_t endlen = jslot_set(a[2]) ? a[2].u.s->len : 3, endcp = ju_count(end, endlen);
    if (length < (int64_t)endcp || leeway < 0)
        return jerr(rt, c->at, CIT_ERR_INVALID_ARG, "expected length >= %zu and leeway >= 0", endcp);
    struct jv s;
    if (strv(rt, c->at, c->recv, &s))
        return -1;
    const struct jstr *str = s.u.s;
    if ((int64_t)str->ncp <= length + leeway) {
        *out = s;
        return 0;
    }
    size_t cut = ju_offset(str->s, str->len, (size_t)(length - (int64_t)endcp));
    if (!arg_true(a[1])) {
        /* s[:length - len(end)].rsplit(" ", 1)[0] */
        for (size_t k = cut; k-- > 0;)
            if (str->s[k] == ' ') {
                cut = k;
                break;
            }
    }
    struct jbuf b = {0};
    int rc = jb_put(rt, c->at, &b, str->s, cut) || jb_put(rt, c->at, &b, end, endlen);
    jv_drop(rt, s);
    if (rc) {
        jb_free(rt, &b);
        return -1;
    }
    return keep_markup(c, jb_take(rt, c->at, &b, out), out);
}

static int f_batch(struct jcall *c, struct jv *out)
{
    BIND("linecount", "fill_with");
    struct jrt *rt = c->rt;
    int64_t per;
    if (to_int_arg(rt, c->at, "batch linecount", a[0], 0, &per))
        return -1;
    if (per <= 0)
        return jerr(rt, c->at, CIT_ERR_INVALID_ARG, "batch size must be positive");
    struct jv items;
    if (jv_iter_list(rt, c->at, c->recv, &items))
        return -1;
    struct jlist *l = jl_new(rt, c->at, 0), *cur = NULL;
    int rc = l ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < items.u.l->len; i++) {
        if (!cur && !(cur = jl_new(rt, c->at, 0))) {
            rc = -1;
            break;
        }
        rc = jl_push(rt, c->at, cur, jv_ref(items.u.l->v[i]));
        if (rc == 0 && (int64_t)cur->len == per) {
            rc = jl_push(rt, c->at, l, jv_list(cur));
            cur = NULL;
        }
    }
    if (rc == 0 && cur) {
        while (rc == 0 && jslot_set(a[1]) && (int64_t)cur->len < per)
            rc = jl_push(rt, c->at, cur, jv_ref(a[1]));
        if (rc == 0)
            rc = jl_push(rt, c->at, l, jv_list(cur));
        cur = NULL;
    }
    if (cur)
        jv_drop(rt, jv_list(cur));
    jv_drop(rt, items);
    if (rc) {
        if (l)
            jv_drop(rt, jv_list(l));
        return -1;
    }
    l->kind = JL_GEN;
    *out = jv_list(l);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(struct jcall *c, struct jv *out);
} filters[] = {
    {"abs", f_abs},         {"attr", f_attr},           {"batch", f_batch},           {"truncate", f_truncate},           {"capitalize", f_capitalize}, {"center", f_center},
    {"count", f_length},    {"d", f_default},           {"default", f_default},       {"dictsort", f_dictsort},
    {"e", f_escape},        {"escape", f_escape},       {"first", f_first},           {"float", f_float},
    {"forceescape", f_escape}, {"format", f_format},    {"indent", f_indent},         {"int", f_int},
    {"items", f_items},     {"join", f_join},           {"last", f_last},             {"length", f_length},
    {"list", f_list},       {"lower", f_lower},         {"map", f_map},               {"max", f_max},
    {"min", f_min},         {"reject", f_reject},       {"rejectattr", f_rejectattr}, {"replace", f_replace},
    {"reverse", f_reverse}, {"round", f_round},         {"safe", f_safe},             {"select", f_select},
    {"selectattr", f_selectattr}, {"sort", f_sort},     {"string", f_string},         {"sum", f_sum},
    {"title", f_title},     {"tojson", f_tojson},       {"trim", f_trim},             {"unique", f_unique},
    {"upper", f_upper},     {"wordcount", f_wordcount},
};

int jfilter_find(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (strlen(filters[i].name) == n && memcmp(filters[i].name, name, n) == 0)
            return (int)i;
    return -1;
}

int jfilter_apply(struct jrt *rt, const struct jn *at, int id, struct jv in, struct jv *args, size_t nargs,
                  struct jstr **kwnames, struct jv *kwvals, size_t nkw, struct jv *out)
{
    if (id < 0 || (size_t)id >= sizeof filters / sizeof filters[0])
        return jerr(rt, at, CIT_ERR_NOT_FOUND, "unknown filter");
    /* Filters do work linear in their input: charge for it up front. */
    uint64_t cost = 1 + (in.t == JT_STR ? in.u.s->len / 64 : in.t == JT_LIST ? in.u.l->len : 0);
    if (jstep(rt, at, cost))
        return -1;
    char name[48];
    snprintf(name, sizeof name, "filter '%s'", filters[id].name);
    struct jcall c = {rt, at, in, args, nargs, kwnames, kwvals, nkw, name};
    return filters[id].fn(&c, out);
}
