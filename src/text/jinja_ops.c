/* jinja_ops.c: operators, attribute and item access, slicing, `in`.
 *
 * These mirror what Python does for the values templates handle, with
 * Jinja2's sandboxed lookups on top: `a.b` tries an attribute (a method
 * such as dict.items) and then an item, `a[b]` tries an item and then an
 * attribute, and a miss is an Undefined that only fails when used. Methods
 * that would mutate a value (list.append, dict.update, ...) are refused as
 * Jinja2's immutable sandbox refuses them. Integers are 64-bit: overflow is
 * an error rather than a silent wrap or a bigint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "text/jinja_internal.h"

int jundef_fail(struct jrt *rt, const struct jn *at, struct jv u)
{
    if (u.t == JT_UNDEF && u.u.s)
        return jerr(rt, at, CIT_ERR_NOT_FOUND, "%s", u.u.s->s);
    return jerr(rt, at, CIT_ERR_NOT_FOUND, "undefined value used");
}

/* "'dict object'" as Jinja names an object in its messages. */
static void obj_desc(struct jv v, char *buf, size_t n)
{
    if (v.t == JT_NONE)
        snprintf(buf, n, "None");
    else if (v.t == JT_NS)
        snprintf(buf, n, "jinja2.utils.Namespace object");
    else
        snprintf(buf, n, "%s object", jv_type_name(v));
}

static struct jv undef_attr(struct jrt *rt, struct jv obj, const char *name, size_t n)
{
    char d[64];
    obj_desc(obj, d, sizeof d);
    return jv_undef(rt, "'%s' has no attribute '%.*s'", d, (int)(n > 200 ? 200 : n), name);
}

static bool is_mutator(struct jv obj, const char *name)
{
    static const char *const list_m[] = {"append", "extend", "insert", "remove", "pop", "sort", "reverse", "clear",
                                         NULL};
    static const char *const dict_m[] = {"update", "pop", "popitem", "setdefault", "clear", NULL};
    const char *const *m = obj.t == JT_LIST && obj.u.l->kind == JL_LIST ? list_m : obj.t == JT_DICT ? dict_m : NULL;
    for (; m && *m; m++)
        if (strcmp(*m, name) == 0)
            return true;
    return false;
}

static int loop_attr(struct jrt *rt, const struct jn *at, const struct jloop *lp, const char *name, struct jv *out)
{
    size_t i = lp->index0, len = lp->items.u.l->len;
    const struct jlist *l = lp->items.u.l;
    (void)at;
    if (!strcmp(name, "index"))
        *out = jv_int((int64_t)i + 1);
    else if (!strcmp(name, "index0"))
        *out = jv_int((int64_t)i);
    else if (!strcmp(name, "revindex"))
        *out = jv_int((int64_t)(len - i));
    else if (!strcmp(name, "revindex0"))
        *out = jv_int((int64_t)(len - i - 1));
    else if (!strcmp(name, "first"))
        *out = jv_bool(i == 0);
    else if (!strcmp(name, "last"))
        *out = jv_bool(i + 1 == len);
    else if (!strcmp(name, "length"))
        *out = jv_int((int64_t)len);
    else if (!strcmp(name, "depth"))
        *out = jv_int((int64_t)lp->depth0 + 1);
    else if (!strcmp(name, "depth0"))
        *out = jv_int((int64_t)lp->depth0);
    else if (!strcmp(name, "previtem"))
        *out = i > 0 ? jv_ref(l->v[i - 1]) : jv_undef(rt, "there is no previous item");
    else if (!strcmp(name, "nextitem"))
        *out = i + 1 < len ? jv_ref(l->v[i + 1]) : jv_undef(rt, "there is no next item");
    else
        return 1;
    return 0;
}

static int bound_method(struct jrt *rt, const struct jn *at, struct jv obj, uint16_t owner, uint16_t id,
                        struct jv *out)
{
    struct jmethod *m = jmem_alloc(rt, at, sizeof *m);
    if (!m)
        return -1;
    *m = (struct jmethod){.h = {.rc = 1, .charged = sizeof *m}, .recv = jv_ref(obj), .owner = owner, .id = id};
    if (jv_note_child(rt, at, &m->h, obj)) {
        jv_drop(rt, obj);
        jmem_free(rt, m, sizeof *m);
        return -1;
    }
    out->t = JT_METHOD;
    out->u.me = m;
    return 0;
}

int jop_getattr(struct jrt *rt, const struct jn *at, struct jv obj, const char *name, size_t n, struct jv *out)
{
    if (obj.t == JT_UNDEF)
        return jundef_fail(rt, at, obj);
    if (n && name[0] == '_') {
        *out = jv_undef(rt, "access to attribute '%.100s' of '%s' object is unsafe.", name, jv_type_name(obj));
        return 0;
    }
    if (is_mutator(obj, name)) {
        *out = jv_undef(rt, "access to attribute '%.100s' of '%s' object is unsafe.", name, jv_type_name(obj));
        return 0;
    }
    uint16_t owner, id;
    if (jmethod_find(obj, name, n, &owner, &id))
        return bound_method(rt, at, obj, owner, id, out);
    if (obj.t == JT_DICT || obj.t == JT_NS) {
        struct jv *v = jd_get_s(obj.u.d, name, n);
        *out = v ? jv_ref(*v) : undef_attr(rt, obj, name, n);
        return 0;
    }
    if (obj.t == JT_LOOP && loop_attr(rt, at, obj.u.lp, name, out) == 0)
        return 0;
    *out = undef_attr(rt, obj, name, n);
    return 0;
}

static bool as_index(struct jv k, int64_t *i)
{
    if (k.t == JT_INT) {
        *i = k.u.i;
        return true;
    }
    if (k.t == JT_BOOL) {
        *i = k.u.b;
        return true;
    }
    return false;
}

int jop_getitem(struct jrt *rt, const struct jn *at, struct jv obj, struct jv key, struct jv *out)
{
    if (obj.t == JT_UNDEF)
        return jundef_fail(rt, at, obj);
    /* Hashing a key and finding a code point are linear in the string. */
    if ((key.t == JT_STR && jstep(rt, at, key.u.s->len / 64)) ||
        (obj.t == JT_STR && obj.u.s->len != obj.u.s->ncp && jstep(rt, at, obj.u.s->len / 64)))
        return -1;
    int64_t i;
    if (((obj.t == JT_LIST && jl_seq(obj.u.l)) || obj.t == JT_STR) && as_index(key, &i)) {
        int64_t len = obj.t == JT_LIST ? (int64_t)obj.u.l->len : (int64_t)obj.u.s->ncp;
        if (i < 0)
            i += len;
        if (i >= 0 && i < len) {
            if (obj.t == JT_LIST) {
                *out = jv_ref(obj.u.l->v[i]);
                return 0;
            }
            const struct jstr *s = obj.u.s;
            size_t a = s->len == s->ncp ? (size_t)i : ju_offset(s->s, s->len, (size_t)i), b = a;
            ju_decode(s->s, s->len, &b);
            if (js_new(rt, at, s->s + a, b - a, out))
                return -1;
            out->m = obj.m;
            return 0;
        }
        *out = jv_undef(rt, "%s object has no element %lld", jv_type_name(obj), (long long)(i < 0 ? i - len : i));
        return 0;
    }
    if (obj.t == JT_DICT) {
        struct jv *v = jd_get(obj.u.d, key);
        if (v) {
            *out = jv_ref(*v);
            return 0;
        }
    }
    if (key.t == JT_STR)
        return jop_getattr(rt, at, obj, key.u.s->s, key.u.s->len, out);
    struct jbuf b = {0};
    if (jv_write_repr(rt, at, &b, key, 0)) {
        jb_free(rt, &b);
        return -1;
    }
    *out = jv_undef(rt, "%s object has no element %.200s", jv_type_name(obj), b.p ? b.p : "");
    jb_free(rt, &b);
    return 0;
}

/* Python's slice.indices() for a sequence of length len. */
static int slice_indices(struct jrt *rt, const struct jn *at, struct jv start, struct jv stop, struct jv step,
                         int64_t len, int64_t *ps, int64_t *pe, int64_t *pst)
{
    int64_t st = 1, s = 0, e = 0;
    struct jv parts[3] = {start, stop, step};
    for (int k = 0; k < 3; k++)
        if (parts[k].t != JT_NONE && parts[k].t != JT_INT && parts[k].t != JT_BOOL)
            return jerr(rt, at, CIT_ERR_TYPE, "slice indices must be integers or None");
    if (step.t != JT_NONE) {
        as_index(step, &st);
        if (st == 0)
            return jerr(rt, at, CIT_ERR_RANGE, "slice step cannot be zero");
    }
    if (start.t == JT_NONE) {
        s = st < 0 ? len - 1 : 0;
    } else {
        as_index(start, &s);
        if (s < 0) {
            s += len;
            if (s < 0)
                s = st < 0 ? -1 : 0;
        } else if (s >= len) {
            s = st < 0 ? len - 1 : len;
        }
    }
    if (stop.t == JT_NONE) {
        e = st < 0 ? -1 : len;
    } else {
        as_index(stop, &e);
        if (e < 0) {
            e += len;
            if (e < 0)
                e = st < 0 ? -1 : 0;
        } else if (e >= len) {
            e = st < 0 ? len - 1 : len;
        }
    }
    *ps = s;
    *pe = e;
    *pst = st;
    return 0;
}

static int jop_slice_raw(struct jrt *rt, const struct jn *at, struct jv obj, struct jv start, struct jv stop,
                         struct jv step, struct jv *out);

int jop_slice(struct jrt *rt, const struct jn *at, struct jv obj, struct jv start, struct jv stop, struct jv step,
              struct jv *out)
{
    if (obj.t == JT_UNDEF)
        return jundef_fail(rt, at, obj);
    if (obj.t == JT_LIST && !jl_seq(obj.u.l)) {
        *out = jv_undef(rt, "%s object has no element slice", jv_type_name(obj));
        return 0;
    }
    if (obj.t != JT_LIST && obj.t != JT_STR)
        return jerr(rt, at, CIT_ERR_TYPE, "'%s' object is not subscriptable", jv_type_name(obj));
    int rc = jop_slice_raw(rt, at, obj, start, stop, step, out);
    if (rc == 0 && obj.t == JT_STR)
        out->m = obj.m;
    return rc;
}

static int jop_slice_raw(struct jrt *rt, const struct jn *at, struct jv obj, struct jv start, struct jv stop,
                         struct jv step, struct jv *out)
{
    int64_t len = obj.t == JT_LIST ? (int64_t)obj.u.l->len : (int64_t)obj.u.s->ncp;
    int64_t s = 0, e = 0, st = 1;
    if (obj.t == JT_STR && jstep(rt, at, obj.u.s->len / 64))
        return -1;
    if (slice_indices(rt, at, start, stop, step, len, &s, &e, &st))
        return -1;
    if (obj.t == JT_LIST) {
        struct jlist *l = jl_new(rt, at, 0);
        if (!l)
            return -1;
        l->kind = obj.u.l->kind;
        for (int64_t i = s; st > 0 ? i < e : i > e; i += st)
            if (jl_push(rt, at, l, jv_ref(obj.u.l->v[i]))) {
                jv_drop(rt, jv_list(l));
                return -1;
            }
        *out = jv_list(l);
        return 0;
    }
    const struct jstr *str = obj.u.s;
    if (st == 1) {
        if (e <= s)
            return js_new(rt, at, "", 0, out);
        size_t a = ju_offset(str->s, str->len, (size_t)s);
        size_t b = a + ju_offset(str->s + a, str->len - a, (size_t)(e - s));
        return js_new(rt, at, str->s + a, b - a, out);
    }
    /* General step: collect code point offsets once. */
    size_t *offs = jmem_alloc(rt, at, ((size_t)len + 1) * sizeof *offs);
    if (!offs)
        return -1;
    size_t k = 0, i = 0;
    while (i < str->len) {
        offs[k++] = i;
        ju_decode(str->s, str->len, &i);
    }
    offs[k] = str->len;
    struct jbuf b = {0};
    int rc = 0;
    for (int64_t c = s; rc == 0 && (st > 0 ? c < e : c > e); c += st)
        rc = jb_put(rt, at, &b, str->s + offs[c], offs[c + 1] - offs[c]);
    jmem_free(rt, offs, ((size_t)len + 1) * sizeof *offs);
    if (rc) {
        jb_free(rt, &b);
        return -1;
    }
    return jb_take(rt, at, &b, out);
}

int jop_contains(struct jrt *rt, const struct jn *at, struct jv c, struct jv item, bool *res)
{
    *res = false;
    switch (c.t) {
    case JT_STR:
        if (item.t != JT_STR)
            return jerr(rt, at, CIT_ERR_TYPE, "'in <string>' requires string as left operand, not %s",
                        jv_type_name(item));
        if (jstep(rt, at, 1 + c.u.s->len / 64))
            return -1;
        *res = item.u.s->len == 0 || memmem(c.u.s->s, c.u.s->len, item.u.s->s, item.u.s->len) != NULL;
        return 0;
    case JT_LIST:
        for (size_t i = 0; i < c.u.l->len; i++) {
            if (jv_eq(rt, at, c.u.l->v[i], item, res))
                return -1;
            if (*res)
                return 0;
        }
        return 0;
    case JT_DICT:
        if (!jv_hashable(item) && item.t != JT_UNDEF)
            return jerr(rt, at, CIT_ERR_TYPE, "unhashable type: '%s'", jv_type_name(item));
        *res = jd_get(c.u.d, item) != NULL;
        return 0;
    case JT_UNDEF: return 0;
    default: return jerr(rt, at, CIT_ERR_TYPE, "argument of type '%s' is not iterable", jv_type_name(c));
    }
}

/* ---------------------------------------------------------------- arithmetic */

static bool numeric(struct jv v) { return v.t == JT_INT || v.t == JT_BOOL || v.t == JT_FLOAT; }
static int64_t ival(struct jv v) { return v.t == JT_BOOL ? v.u.b : v.u.i; }
static double fval(struct jv v) { return v.t == JT_FLOAT ? v.u.f : (double)ival(v); }

static const char *op_sym(int op)
{
    static const char *const s[] = {"+", "-", "*", "/", "//", "%", "** or pow()"};
    return op >= 0 && op <= JOP_POW ? s[op] : "?";
}

static int overflow(struct jrt *rt, const struct jn *at)
{
    return jerr(rt, at, CIT_ERR_RANGE, "integer overflow (integers are limited to 64 bits)");
}

static int repeat(struct jrt *rt, const struct jn *at, struct jv seq, int64_t times, struct jv *out)
{
    if (times < 0)
        times = 0;
    if (seq.t == JT_STR) {
        size_t total;
        if (!cit_mul_size(seq.u.s->len, (size_t)times, &total) || total > rt->max_str)
            return jerr(rt, at, CIT_ERR_LIMIT, "string repetition exceeds the %zu-byte limit", rt->max_str);
        struct jbuf b = {0};
        for (int64_t i = 0; i < times; i++)
            if (jb_put(rt, at, &b, seq.u.s->s, seq.u.s->len)) {
                jb_free(rt, &b);
                return -1;
            }
        if (jb_take(rt, at, &b, out))
            return -1;
        out->m = seq.m;
        return 0;
    }
    size_t total;
    if (!cit_mul_size(seq.u.l->len, (size_t)times, &total) || total > rt->max_str)
        return jerr(rt, at, CIT_ERR_LIMIT, "list repetition too large");
    struct jlist *l = jl_new(rt, at, total);
    if (!l)
        return -1;
    l->kind = seq.u.l->kind;
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < seq.u.l->len; j++)
            if (jl_push(rt, at, l, jv_ref(seq.u.l->v[j]))) {
                jv_drop(rt, jv_list(l));
                return -1;
            }
    *out = jv_list(l);
    return 0;
}

static int concat_seq(struct jrt *rt, const struct jn *at, struct jv a, struct jv b, struct jv *out)
{
    if (a.t == JT_STR) {
        struct jbuf buf = {0};
        if (jb_put(rt, at, &buf, a.u.s->s, a.u.s->len) || jb_put(rt, at, &buf, b.u.s->s, b.u.s->len)) {
            jb_free(rt, &buf);
            return -1;
        }
        return jb_take(rt, at, &buf, out);
    }
    struct jlist *l = jl_new(rt, at, a.u.l->len + b.u.l->len);
    if (!l)
        return -1;
    l->kind = a.u.l->kind;
    for (int k = 0; k < 2; k++) {
        const struct jlist *src = k ? b.u.l : a.u.l;
        for (size_t j = 0; j < src->len; j++)
            if (jl_push(rt, at, l, jv_ref(src->v[j]))) {
                jv_drop(rt, jv_list(l));
                return -1;
            }
    }
    *out = jv_list(l);
    return 0;
}

/* Markup + str / str + Markup: the plain side is escaped, the result is Markup. */
static int markup_concat(struct jrt *rt, const struct jn *at, struct jv a, struct jv b, struct jv *out)
{
    struct jv ea, eb;
    if (a.m)
        ea = jv_ref(a);
    else if (jstr_escape(rt, at, a, &ea))
        return -1;
    if (b.m)
        eb = jv_ref(b);
    else if (jstr_escape(rt, at, b, &eb)) {
        jv_drop(rt, ea);
        return -1;
    }
    int rc = concat_seq(rt, at, ea, eb, out);
    jv_drop(rt, ea);
    jv_drop(rt, eb);
    if (rc == 0)
        out->m = 1;
    return rc;
}

static int int_pow(struct jrt *rt, const struct jn *at, int64_t base, int64_t exp, struct jv *out)
{
    int64_t r = 1;
    while (exp > 0) {
        if (exp & 1) {
            if (__builtin_mul_overflow(r, base, &r))
                return overflow(rt, at);
        }
        exp >>= 1;
        if (exp && __builtin_mul_overflow(base, base, &base))
            return overflow(rt, at);
    }
    *out = jv_int(r);
    return 0;
}

int jop_binary(struct jrt *rt, const struct jn *at, int op, struct jv a, struct jv b, struct jv *out)
{
    if (a.t == JT_UNDEF)
        return jundef_fail(rt, at, a);
    if (b.t == JT_UNDEF)
        return jundef_fail(rt, at, b);
    bool both_int = (a.t == JT_INT || a.t == JT_BOOL) && (b.t == JT_INT || b.t == JT_BOOL);
    if (numeric(a) && numeric(b)) {
        int64_t x = ival(a), y = ival(b), r;
        double fx = fval(a), fy = fval(b);
        switch (op) {
        case JOP_ADD:
            if (!both_int)
                break;
            if (__builtin_add_overflow(x, y, &r))
                return overflow(rt, at);
            *out = jv_int(r);
            return 0;
        case JOP_SUB:
            if (!both_int)
                break;
            if (__builtin_sub_overflow(x, y, &r))
                return overflow(rt, at);
            *out = jv_int(r);
            return 0;
        case JOP_MUL:
            if (!both_int)
                break;
            if (__builtin_mul_overflow(x, y, &r))
                return overflow(rt, at);
            *out = jv_int(r);
            return 0;
        case JOP_DIV:
            if (fy == 0.0)
                return jerr(rt, at, CIT_ERR_RANGE, "division by zero");
            *out = jv_float(fx / fy);
            return 0;
        case JOP_FLOORDIV:
        case JOP_MOD:
            if (both_int) {
                if (y == 0)
                    return jerr(rt, at, CIT_ERR_RANGE, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1)
                    return overflow(rt, at);
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    q--;
                    m += y;
                }
                *out = jv_int(op == JOP_FLOORDIV ? q : m);
                return 0;
            }
            if (fy == 0.0)
                return jerr(rt, at, CIT_ERR_RANGE, "float division by zero");
            {
                /* CPython's float divmod. */
                double m = fmod(fx, fy), d = (fx - m) / fy, fd;
                if (m != 0.0) {
                    if ((fy < 0) != (m < 0)) {
                        m += fy;
                        d -= 1.0;
                    }
                } else {
                    m = copysign(0.0, fy);
                }
                if (d != 0.0) {
                    fd = floor(d);
                    if (d - fd > 0.5)
                        fd += 1.0;
                } else {
                    fd = copysign(0.0, fx / fy);
                }
                *out = jv_float(op == JOP_MOD ? m : fd);
            }
            return 0;
        case JOP_POW:
            if (both_int && y >= 0)
                return int_pow(rt, at, x, y, out);
            if (fx == 0.0 && fy < 0)
                return jerr(rt, at, CIT_ERR_RANGE, "0.0 cannot be raised to a negative power");
            *out = jv_float(pow(fx, fy));
            return 0;
        default: break;
        }
        switch (op) {
        case JOP_ADD: *out = jv_float(fx + fy); return 0;
        case JOP_SUB: *out = jv_float(fx - fy); return 0;
        case JOP_MUL: *out = jv_float(fx * fy); return 0;
        default: break;
        }
    }
    if (op == JOP_ADD) {
        if (a.t == JT_STR && b.t == JT_STR && (a.m || b.m))
            return markup_concat(rt, at, a, b, out);
        if ((a.t == JT_STR && b.t == JT_STR) ||
            (a.t == JT_LIST && b.t == JT_LIST && a.u.l->kind == b.u.l->kind && jl_seq(a.u.l)))
            return concat_seq(rt, at, a, b, out);
        if (a.t == JT_STR)
            return jerr(rt, at, CIT_ERR_TYPE, "can only concatenate str (not \"%s\") to str", jv_type_name(b));
        if (a.t == JT_LIST)
            return jerr(rt, at, CIT_ERR_TYPE, "can only concatenate %s (not \"%s\") to %s", jv_type_name(a),
                        jv_type_name(b), jv_type_name(a));
    }
    if (op == JOP_MUL) {
        bool sa = a.t == JT_STR || (a.t == JT_LIST && jl_seq(a.u.l)), sb = b.t == JT_STR || (b.t == JT_LIST && jl_seq(b.u.l));
        if (sa && (b.t == JT_INT || b.t == JT_BOOL))
            return repeat(rt, at, a, ival(b), out);
        if (sb && (a.t == JT_INT || a.t == JT_BOOL))
            return repeat(rt, at, b, ival(a), out);
    }
    if (op == JOP_MOD && a.t == JT_STR) {
        if (!a.m)
            return jstr_percent(rt, at, a.u.s, b, out);
        /* Markup % args: string arguments are escaped, the result is Markup. */
        struct jv eb;
        int rc;
        if (b.t == JT_STR) {
            rc = jstr_escape(rt, at, b, &eb);
        } else if (b.t == JT_LIST && b.u.l->kind == JL_TUPLE) {
            struct jlist *l = jl_new(rt, at, b.u.l->len);
            rc = l ? 0 : -1;
            if (l)
                l->kind = JL_TUPLE;
            for (size_t i = 0; rc == 0 && i < b.u.l->len; i++) {
                struct jv e;
                rc = b.u.l->v[i].t == JT_STR ? jstr_escape(rt, at, b.u.l->v[i], &e) : (e = jv_ref(b.u.l->v[i]), 0);
                if (rc == 0)
                    rc = jl_push(rt, at, l, e);
            }
            if (rc && l)
                jv_drop(rt, jv_list(l));
            if (rc == 0)
                eb = jv_list(l);
        } else {
            rc = 0;
            eb = jv_ref(b);
        }
        if (rc)
            return -1;
        rc = jstr_percent(rt, at, a.u.s, eb, out);
        jv_drop(rt, eb);
        if (rc == 0)
            out->m = 1;
        return rc;
    }
    return jerr(rt, at, CIT_ERR_TYPE, "unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op),
                jv_type_name(a), jv_type_name(b));
}
