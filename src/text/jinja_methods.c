/* jinja_methods.c: Python methods templates call, the globals, and tojson.
 *
 * Methods: str (startswith, split, strip, replace, find, format, ...),
 * dict (items, keys, values, get), list (index, count) and loop.cycle.
 * Globals: range (capped at 100000 items as Jinja2's sandbox caps it),
 * namespace, dict, raise_exception (its message becomes the render error,
 * verbatim) and strftime_now (formatted here, in the C locale, from the
 * render's clock; no libc locale or timezone database is consulted beyond
 * localtime_r).
 *
 * tojson is Jinja2's: json.dumps(sort_keys=True) with ensure_ascii, then
 * <, >, & and ' escaped as \u003c, \u003e, \u0026, \u0027. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "text/jinja_internal.h"


#define MAX_RANGE 100000

#define BIND JCALL_BIND
#define NOARGS() JCALL_NOARGS("%s takes no arguments")

static int need_str(struct jcall *c, struct jv v, const char *what)
{
    if (v.t != JT_STR)
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "%s: %s must be str, not %s", c->name, what, jv_type_name(v));
    return 0;
}

static int new_list(struct jcall *c, struct jlist **l)
{
    *l = jl_new(c->rt, c->at, 0);
    return *l ? 0 : -1;
}

static int push_span(struct jcall *c, struct jlist *l, const char *p, size_t n)
{
    struct jv v;
    if (js_new(c->rt, c->at, p, n, &v))
        return -1;
    return jl_push(c->rt, c->at, l, v);
}

static int ret_list(struct jcall *c, struct jlist *l, int rc, struct jv *out)
{
    if (rc) {
        if (l)
            jv_drop(c->rt, jv_list(l));
        return -1;
    }
    *out = jv_list(l);
    return 0;
}

/* ---------------------------------------------------------------- str methods */

static bool ws_at(const struct jstr *s, size_t i, size_t *next)
{
    size_t j = i;
    uint32_t c = ju_decode(s->s, s->len, &j);
    *next = j;
    return ju_isspace(c);
}

static int s_split(struct jcall *c, struct jv *out, bool from_right)
{
    BIND("sep", "maxsplit");
    const struct jstr *s = c->recv.u.s;
    int64_t maxsplit = -1;
    if (jslot_set(a[1])) {
        if (a[1].t != JT_INT)
            return jerr(c->rt, c->at, CIT_ERR_TYPE, "%s: maxsplit must be an integer", c->name);
        maxsplit = a[1].u.i;
    }
    bool ws = !jslot_set(a[0]) || a[0].t == JT_NONE;
    if (!ws && need_str(c, a[0], "sep"))
        return -1;
    if (!ws && a[0].u.s->len == 0)
        return jerr(c->rt, c->at, CIT_ERR_INVALID_ARG, "empty separator");
    struct jlist *l;
    if (new_list(c, &l))
        return -1;
    int rc = 0;
    int64_t splits = 0;
    if (ws) {
        /* Runs of whitespace separate; leading/trailing whitespace yields nothing. */
        struct line {
            size_t a, b;
        } *parts = NULL;
        size_t np = 0, cap = 0, i = 0;
        while (i < s->len && rc == 0) {
            size_t nx;
            while (i < s->len && ws_at(s, i, &nx))
                i = nx;
            if (i >= s->len)
                break;
            size_t st = i;
            while (i < s->len && !ws_at(s, i, &nx))
                i = nx;
            if (np == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                void *p = jmem_realloc(c->rt, c->at, parts, cap * sizeof *parts, ncap * sizeof *parts);
                if (!p) {
                    rc = -1;
                    break;
                }
                parts = p;
                cap = ncap;
            }
            parts[np].a = st;
            parts[np].b = i;
            np++;
        }
        if (rc == 0 && np) {
            if (maxsplit >= 0 && (size_t)maxsplit < np - 1) {
                /* Merge the tail (or head, for rsplit) back into one piece. */
                if (!from_right) {
                    for (size_t k = 0; rc == 0 && k < (size_t)maxsplit; k++)
                        rc = push_span(c, l, s->s + parts[k].a, parts[k].b - parts[k].a);
                    /* the rest, as written (trailing whitespace included), is the last piece */
                    if (rc == 0)
                        rc = push_span(c, l, s->s + parts[maxsplit].a, s->len - parts[maxsplit].a);
                } else {
                    size_t first = np - (size_t)maxsplit;
                    rc = push_span(c, l, s->s, parts[first - 1].b);
                    for (size_t k = first; rc == 0 && k < np; k++)
                        rc = push_span(c, l, s->s + parts[k].a, parts[k].b - parts[k].a);
                }
            } else {
                for (size_t k = 0; rc == 0 && k < np; k++)
                    rc = push_span(c, l, s->s + parts[k].a, parts[k].b - parts[k].a);
            }
        }
        jmem_free(c->rt, parts, cap * sizeof *parts);
        return ret_list(c, l, rc, out);
    }
    const struct jstr *sep = a[0].u.s;
    if (!from_right) {
        size_t i = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || splits < maxsplit) ? memmem(s->s + i, s->len - i, sep->s, sep->len) : NULL;
            if (!hit) {
                rc = push_span(c, l, s->s + i, s->len - i);
                break;
            }
            size_t h = (size_t)(hit - s->s);
            if ((rc = push_span(c, l, s->s + i, h - i)))
                break;
            i = h + sep->len;
            splits++;
        }
        return ret_list(c, l, rc, out);
    }
    /* rsplit with a separator: collect from the right, then reverse. */
    size_t end = s->len;
    struct jlist *rev;
    if (new_list(c, &rev)) {
        jv_drop(c->rt, jv_list(l));
        return -1;
    }
    for (;;) {
        size_t hit = SIZE_MAX;
        if ((maxsplit < 0 || splits < maxsplit) && end >= sep->len)
            for (size_t k = end - sep->len + 1; k-- > 0;)
                if (memcmp(s->s + k, sep->s, sep->len) == 0) {
                    hit = k;
                    break;
                }
        if (hit == SIZE_MAX) {
            rc = push_span(c, rev, s->s, end);
            break;
        }
        if ((rc = push_span(c, rev, s->s + hit + sep->len, end - hit - sep->len)))
            break;
        end = hit;
        splits++;
    }
    for (size_t k = rev->len; rc == 0 && k > 0; k--)
        rc = jl_push(c->rt, c->at, l, jv_ref(rev->v[k - 1]));
    jv_drop(c->rt, jv_list(rev));
    return ret_list(c, l, rc, out);
}

static int s_affix(struct jcall *c, struct jv *out, bool ends)
{
    BIND("prefix", "start", "end");
    const struct jstr *s = c->recv.u.s;
    if (jslot_set(a[1]) || jslot_set(a[2]))
        return jerr(c->rt, c->at, CIT_ERR_UNSUPPORTED, "%s: start/end arguments are not supported", c->name);
    if (!jslot_set(a[0]))
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "%s takes at least 1 argument", c->name);
    size_t n = 1;
    const struct jv *cands = &a[0];
    if (a[0].t == JT_LIST && a[0].u.l->kind == JL_TUPLE) {
        n = a[0].u.l->len;
        cands = a[0].u.l->v;
    }
    bool hit = false;
    for (size_t i = 0; i < n && !hit; i++) {
        if (cands[i].t != JT_STR)
            return jerr(c->rt, c->at, CIT_ERR_TYPE, "%s first arg must be str or a tuple of str", c->name);
        const struct jstr *p = cands[i].u.s;
        hit = p->len <= s->len && memcmp(s->s + (ends ? s->len - p->len : 0), p->s, p->len) == 0;
    }
    *out = jv_bool(hit);
    return 0;
}

static int s_strip(struct jcall *c, struct jv *out, int which)
{
    BIND("chars");
    if (jslot_set(a[0]) && a[0].t != JT_NONE && need_str(c, a[0], "chars"))
        return -1;
    return jstr_strip(c->rt, c->at, c->recv.u.s, (jslot_set(a[0]) && a[0].t == JT_STR) ? a[0].u.s : NULL, which,
                      out);
}

static int s_case(struct jcall *c, struct jv *out, int mode)
{
    NOARGS();
    const struct jstr *s = c->recv.u.s;
    if (mode < 2)
        return jstr_case(c->rt, c->at, s, mode == 0, out);
    struct jbuf b = {0};
    size_t i = 0;
    bool prev_cased = false;
    int rc = 0;
    while (i < s->len && rc == 0) {
        uint32_t cp = ju_decode(s->s, s->len, &i), m;
        switch (mode) {
        case 0: m = ju_upper(cp); break;
        case 1: m = ju_lower(cp); break;
        case 2: m = i == 0 || !prev_cased ? ju_upper(cp) : ju_lower(cp); break; /* title */
        default: m = prev_cased || b.len ? ju_lower(cp) : ju_upper(cp); break;  /* capitalize */
        }
        if (mode == 2)
            prev_cased = ju_isupper(cp) || ju_islower(cp);
        if (mode == 3)
            prev_cased = true;
        char enc[8];
        int n = (m == 0xDF && mode == 0) ? (enc[0] = 'S', enc[1] = 'S', 2) : ju_encode(m, enc);
        rc = jb_put(c->rt, c->at, &b, enc, (size_t)n);
    }
    if (rc) {
        jb_free(c->rt, &b);
        return -1;
    }
    return jb_take(c->rt, c->at, &b, out);
}

static int s_replace(struct jcall *c, struct jv *out)
{
    BIND("old", "new", "count");
    if (!jslot_set(a[0]) || !jslot_set(a[1]) || need_str(c, a[0], "old") || need_str(c, a[1], "new"))
        return jslot_set(a[0]) && jslot_set(a[1]) ? -1 : jerr(c->rt, c->at, CIT_ERR_TYPE, "replace needs 2 arguments");
    int64_t count = -1;
    if (jslot_set(a[2])) {
        if (a[2].t != JT_INT)
            return jerr(c->rt, c->at, CIT_ERR_TYPE, "replace count must be an integer");
        count = a[2].u.i;
    }
    return jstr_replace(c->rt, c->at, c->recv.u.s, a[0].u.s, a[1].u.s, count, out);
}

static int s_find(struct jcall *c, struct jv *out, int mode) /* 0 find, 1 rfind, 2 count, 3 index */
{
    BIND("sub");
    if (!jslot_set(a[0]) || need_str(c, a[0], "sub"))
        return jslot_set(a[0]) ? -1 : jerr(c->rt, c->at, CIT_ERR_TYPE, "%s needs an argument", c->name);
    const struct jstr *s = c->recv.u.s, *sub = a[0].u.s;
    if (mode == 2) {
        int64_t n = 0;
        if (sub->len == 0) {
            n = (int64_t)s->ncp + 1;
        } else {
            size_t i = 0;
            const char *h;
            while (i <= s->len && (h = memmem(s->s + i, s->len - i, sub->s, sub->len))) {
                n++;
                i = (size_t)(h - s->s) + sub->len;
            }
        }
        *out = jv_int(n);
        return 0;
    }
    int64_t pos = -1;
    if (mode == 1) {
        if (sub->len <= s->len)
            for (size_t k = s->len - sub->len + 1; k-- > 0;)
                if (memcmp(s->s + k, sub->s, sub->len) == 0) {
                    pos = (int64_t)ju_count(s->s, k);
                    break;
                }
    } else {
        const char *h = memmem(s->s, s->len, sub->s, sub->len);
        if (h || sub->len == 0)
            pos = h ? (int64_t)ju_count(s->s, (size_t)(h - s->s)) : 0;
    }
    if (mode == 3 && pos < 0)
        return jerr(c->rt, c->at, CIT_ERR_NOT_FOUND, "substring not found");
    *out = jv_int(pos);
    return 0;
}

static int s_join(struct jcall *c, struct jv *out)
{
    BIND("iterable");
    if (!jslot_set(a[0]))
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "join() takes exactly one argument");
    struct jv items;
    if (jv_iter_list(c->rt, c->at, a[0], &items))
        return -1;
    struct jbuf b = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < items.u.l->len; i++) {
        struct jv v = items.u.l->v[i];
        if (v.t != JT_STR) {
            rc = jerr(c->rt, c->at, CIT_ERR_TYPE, "sequence item %zu: expected str instance, %s found", i,
                      jv_type_name(v));
            break;
        }
        if (i)
            rc = jb_put(c->rt, c->at, &b, c->recv.u.s->s, c->recv.u.s->len);
        if (rc == 0)
            rc = jb_put(c->rt, c->at, &b, v.u.s->s, v.u.s->len);
    }
    jv_drop(c->rt, items);
    if (rc) {
        jb_free(c->rt, &b);
        return -1;
    }
    return jb_take(c->rt, c->at, &b, out);
}

static int s_splitlines(struct jcall *c, struct jv *out)
{
    BIND("keepends");
    bool keep = jslot_set(a[0]) && jv_truthy(a[0]);
    const struct jstr *s = c->recv.u.s;
    struct jlist *l;
    if (new_list(c, &l))
        return -1;
    size_t i = 0, start = 0;
    int rc = 0;
    while (i < s->len && rc == 0) {
        size_t j = i;
        uint32_t cp = ju_decode(s->s, s->len, &j);
        if (ju_islinebreak(cp)) {
            if (cp == '\r' && j < s->len && s->s[j] == '\n')
                j++;
            rc = push_span(c, l, s->s + start, (keep ? j : i) - start);
            start = j;
        }
        i = j;
    }
    if (rc == 0 && start < s->len)
        rc = push_span(c, l, s->s + start, s->len - start);
    return ret_list(c, l, rc, out);
}

static int s_is(struct jcall *c, struct jv *out, int kind) /* 0 digit 1 alpha 2 alnum 3 space 4 upper 5 lower */
{
    NOARGS();
    const struct jstr *s = c->recv.u.s;
    bool ok = s->len > 0, cased = false;
    size_t i = 0;
    while (i < s->len && ok) {
        uint32_t cp = ju_decode(s->s, s->len, &i);
        switch (kind) {
        case 0: ok = ju_isdigit(cp); break;
        case 1: ok = ju_isalpha(cp); break;
        case 2: ok = ju_isalpha(cp) || ju_isdigit(cp); break;
        case 3: ok = ju_isspace(cp); break;
        case 4:
            ok = !ju_islower(cp);
            cased |= ju_isupper(cp);
            break;
        default:
            ok = !ju_isupper(cp);
            cased |= ju_islower(cp);
            break;
        }
    }
    *out = jv_bool(ok && (kind < 4 || cased));
    return 0;
}

/* str.format: {} / {0} / {name} with optional !s / !r; no format specs. */
static int s_format(struct jcall *c, struct jv *out)
{
    const struct jstr *f = c->recv.u.s;
    struct jbuf b = {0};
    size_t auto_idx = 0, i = 0;
    int rc = 0;
    while (i < f->len && rc == 0) {
        char ch = f->s[i];
        if ((ch == '{' || ch == '}') && i + 1 < f->len && f->s[i + 1] == ch) {
            rc = jb_putc(c->rt, c->at, &b, ch);
            i += 2;
            continue;
        }
        if (ch == '}') {
            rc = jerr(c->rt, c->at, CIT_ERR_FORMAT, "single '}' encountered in format string");
            break;
        }
        if (ch != '{') {
            rc = jb_putc(c->rt, c->at, &b, ch);
            i++;
            continue;
        }
        const char *close = memchr(f->s + i, '}', f->len - i);
        if (!close) {
            rc = jerr(c->rt, c->at, CIT_ERR_FORMAT, "single '{' encountered in format string");
            break;
        }
        size_t fs = i + 1, fe = (size_t)(close - f->s);
        i = fe + 1;
        bool repr = false;
        size_t ne = fs;
        while (ne < fe && f->s[ne] != '!' && f->s[ne] != ':')
            ne++;
        if (ne < fe && f->s[ne] == '!' && ne + 1 < fe)
            repr = f->s[ne + 1] == 'r';
        const char *spec = memchr(f->s + fs, ':', fe - fs);
        if (spec && (size_t)(spec - f->s) + 1 < fe) {
            rc = jerr(c->rt, c->at, CIT_ERR_UNSUPPORTED, "format specs in str.format are not supported");
            break;
        }
        struct jv v = JV_UNDEFINED;
        bool found = false;
        if (ne == fs) {
            if (auto_idx < c->nargs) {
                v = c->args[auto_idx++];
                found = true;
            }
        } else if (f->s[fs] >= '0' && f->s[fs] <= '9') {
            size_t k = (size_t)strtoul(f->s + fs, NULL, 10);
            if (k < c->nargs) {
                v = c->args[k];
                found = true;
            }
        } else {
            for (size_t k = 0; k < c->nk && !found; k++)
                if (c->kn[k]->len == ne - fs && memcmp(c->kn[k]->s, f->s + fs, ne - fs) == 0) {
                    v = c->kv[k];
                    found = true;
                }
        }
        if (!found) {
            rc = jerr(c->rt, c->at, CIT_ERR_INVALID_ARG, "format field '%.*s' has no matching argument",
                      (int)(ne - fs), f->s + fs);
            break;
        }
        rc = repr ? jv_write_repr(c->rt, c->at, &b, v, 0) : jv_write_str(c->rt, c->at, &b, v);
    }
    if (rc) {
        jb_free(c->rt, &b);
        return -1;
    }
    return jb_take(c->rt, c->at, &b, out);
}

/* ---------------------------------------------------------------- dict / list / loop methods */

static int d_view(struct jcall *c, struct jv *out, int which) /* 0 items 1 keys 2 values */
{
    NOARGS();
    const struct jdict *d = c->recv.u.d;
    struct jlist *l = jl_new(c->rt, c->at, d->len);
    if (!l)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < d->len; i++) {
        if (which == 1) {
            rc = jl_push(c->rt, c->at, l, jv_ref(d->e[i].k));
        } else if (which == 2) {
            rc = jl_push(c->rt, c->at, l, jv_ref(d->e[i].v));
        } else {
            struct jlist *p = jl_new(c->rt, c->at, 2);
            if (!p) {
                rc = -1;
                break;
            }
            p->kind = JL_TUPLE;
            rc = jl_push(c->rt, c->at, p, jv_ref(d->e[i].k));
            if (rc == 0)
                rc = jl_push(c->rt, c->at, p, jv_ref(d->e[i].v));
            if (rc == 0)
                rc = jl_push(c->rt, c->at, l, jv_list(p));
            else
                jv_drop(c->rt, jv_list(p));
        }
    }
    if (rc == 0)
        l->kind = (uint8_t)(JL_ITEMS + which);
    return ret_list(c, l, rc, out);
}

static int d_get(struct jcall *c, struct jv *out)
{
    BIND("key", "default");
    if (!jslot_set(a[0]))
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "get expected at least 1 argument");
    struct jv *v = jd_get(c->recv.u.d, a[0]);
    *out = v ? jv_ref(*v) : jslot_set(a[1]) ? jv_ref(a[1]) : JV_NONE_V;
    return 0;
}

static int l_index_count(struct jcall *c, struct jv *out, bool count)
{
    BIND("value");
    if (!jslot_set(a[0]))
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "%s takes exactly one argument", c->name);
    const struct jlist *l = c->recv.u.l;
    int64_t n = 0;
    for (size_t i = 0; i < l->len; i++) {
        bool eq;
        if (jv_eq(c->rt, c->at, l->v[i], a[0], &eq))
            return -1;
        if (eq && !count) {
            *out = jv_int((int64_t)i);
            return 0;
        }
        n += eq;
    }
    if (!count)
        return jerr(c->rt, c->at, CIT_ERR_NOT_FOUND, "value is not in list");
    *out = jv_int(n);
    return 0;
}

static int loop_cycle(struct jcall *c, struct jv *out)
{
    if (c->nk)
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "cycle takes no keyword arguments");
    if (c->nargs == 0)
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "no items for cycling given");
    *out = jv_ref(c->args[c->recv.u.lp->index0 % c->nargs]);
    return 0;
}

enum {
    M_STARTSWITH, M_ENDSWITH, M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_SPLITLINES, M_UPPER, M_LOWER,
    M_TITLE, M_CAPITALIZE, M_REPLACE, M_FIND, M_RFIND, M_COUNT, M_INDEX, M_JOIN, M_ISDIGIT, M_ISALPHA, M_ISALNUM,
    M_ISSPACE, M_ISUPPER, M_ISLOWER, M_FORMAT,
};

static const char *const str_methods[] = {
    "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "upper",
    "lower", "title", "capitalize", "replace", "find", "rfind", "count", "index", "join", "isdigit",
    "isalpha", "isalnum", "isspace", "isupper", "islower", "format",
};
static const char *const dict_methods[] = {"items", "keys", "values", "get"};
static const char *const list_methods[] = {"index", "count"};
static const char *const loop_methods[] = {"cycle"};

static bool find_in(const char *const *tab, size_t n, const char *name, size_t len, uint16_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(tab[i]) == len && memcmp(tab[i], name, len) == 0) {
            *id = (uint16_t)i;
            return true;
        }
    return false;
}

bool jmethod_find(struct jv recv, const char *name, size_t n, uint16_t *owner, uint16_t *id)
{
    switch (recv.t) {
    case JT_STR: *owner = JM_STR; return find_in(str_methods, sizeof str_methods / sizeof *str_methods, name, n, id);
    case JT_DICT:
        *owner = JM_DICT;
        return find_in(dict_methods, sizeof dict_methods / sizeof *dict_methods, name, n, id);
    case JT_LIST:
        *owner = JM_LIST;
        return find_in(list_methods, sizeof list_methods / sizeof *list_methods, name, n, id);
    case JT_LOOP:
        *owner = JM_LOOP;
        return find_in(loop_methods, sizeof loop_methods / sizeof *loop_methods, name, n, id);
    default: return false;
    }
}

static int plain_method(struct jrt *rt, const struct jn *at, struct jv recv, uint16_t owner, uint16_t id,
                        struct jv *args, size_t nargs, struct jstr **kn, struct jv *kv, size_t nk, struct jv *out);

/* Escapes the str values among n (into fresh references); non-strings are shared. */
static int escape_all(struct jrt *rt, const struct jn *at, const struct jv *in, size_t n, struct jv *out)
{
    for (size_t i = 0; i < n; i++) {
        if (in[i].t == JT_STR ? jstr_escape(rt, at, in[i], &out[i]) : (out[i] = jv_ref(in[i]), 0)) {
            while (i-- > 0)
                jv_drop(rt, out[i]);
            return -1;
        }
    }
    return 0;
}

/* Markup's str methods: string arguments are escaped first, string results
 * (and the pieces split returns) are Markup again. */
int jmethod_call(struct jrt *rt, const struct jn *at, struct jv recv, uint16_t owner, uint16_t id, struct jv *args,
                 size_t nargs, struct jstr **kn, struct jv *kv, size_t nk, struct jv *out)
{
    if (owner != JM_STR || !recv.m)
        return plain_method(rt, at, recv, owner, id, args, nargs, kn, kv, nk, out);
    /* markupsafe 3 escapes replace()'s replacement and format()'s arguments, nothing else. */
    bool esc_args = (id == M_REPLACE || id == M_FORMAT) && nargs <= 8 && nk <= 8;
    struct jv ea[8], ek[8];
    if (esc_args) {
        if (id == M_FORMAT) {
            if (escape_all(rt, at, args, nargs, ea))
                return -1;
            if (escape_all(rt, at, kv, nk, ek)) {
                for (size_t i = 0; i < nargs; i++)
                    jv_drop(rt, ea[i]);
                return -1;
            }
        } else {
            for (size_t i = 0; i < nargs; i++)
                ea[i] = jv_ref(args[i]);
            for (size_t i = 0; i < nk; i++)
                ek[i] = jv_ref(kv[i]);
            struct jv *newv = nargs > 1 ? &ea[1] : NULL;
            for (size_t i = 0; i < nk; i++)
                if (!strcmp(kn[i]->s, "new"))
                    newv = &ek[i];
            struct jv e;
            if (newv && newv->t == JT_STR) {
                if (jstr_escape(rt, at, *newv, &e)) {
                    for (size_t i = 0; i < nargs; i++)
                        jv_drop(rt, ea[i]);
                    for (size_t i = 0; i < nk; i++)
                        jv_drop(rt, ek[i]);
                    return -1;
                }
                jv_drop(rt, *newv);
                *newv = e;
            }
        }
    }
    struct jv joined = JV_UNDEFINED;
    int rc;
    if (id == M_JOIN && nargs == 1 && nk == 0) {
        struct jv items;
        rc = jv_iter_list(rt, at, args[0], &items);
        struct jlist *l = rc == 0 ? jl_new(rt, at, items.u.l->len) : NULL;
        for (size_t i = 0; l && i < items.u.l->len; i++) {
            struct jv e;
            if ((items.u.l->v[i].t == JT_STR ? jstr_escape(rt, at, items.u.l->v[i], &e)
                                              : (e = jv_ref(items.u.l->v[i]), 0)) ||
                jl_push(rt, at, l, e)) {
                jv_drop(rt, jv_list(l));
                l = NULL;
            }
        }
        if (rc == 0)
            jv_drop(rt, items);
        if (!l)
            return -1;
        joined = jv_list(l);
        rc = plain_method(rt, at, recv, owner, id, &joined, 1, kn, kv, nk, out);
        jv_drop(rt, joined);
    } else {
        rc = plain_method(rt, at, recv, owner, id, esc_args ? ea : args, nargs, kn, esc_args ? ek : kv, nk, out);
    }
    if (esc_args) {
        for (size_t i = 0; i < nargs; i++)
            jv_drop(rt, ea[i]);
        for (size_t i = 0; i < nk; i++)
            jv_drop(rt, ek[i]);
    }
    if (rc)
        return -1;
    if (out->t == JT_STR && id != M_FIND && id != M_COUNT)
        out->m = 1;
    if (out->t == JT_LIST)
        for (size_t i = 0; i < out->u.l->len; i++)
            if (out->u.l->v[i].t == JT_STR)
                out->u.l->v[i].m = 1;
    return 0;
}

static int plain_method(struct jrt *rt, const struct jn *at, struct jv recv, uint16_t owner, uint16_t id,
                        struct jv *args, size_t nargs, struct jstr **kn, struct jv *kv, size_t nk, struct jv *out)
{
    uint64_t cost = 1 + (recv.t == JT_STR ? recv.u.s->len / 64 : recv.t == JT_LIST ? recv.u.l->len : 0);
    if (jstep(rt, at, cost))
        return -1;
    char name[48];
    const char *mname = owner == JM_STR ? str_methods[id] : owner == JM_DICT ? dict_methods[id]
                        : owner == JM_LIST ? list_methods[id] : loop_methods[id];
    snprintf(name, sizeof name, "%s()", mname);
    struct jcall cx = {rt, at, recv, args, nargs, kn, kv, nk, name}, *c = &cx;
    if (owner == JM_DICT)
        return id == 3 ? d_get(c, out) : d_view(c, out, id);
    if (owner == JM_LIST)
        return l_index_count(c, out, id == 1);
    if (owner == JM_LOOP)
        return loop_cycle(c, out);
    switch (id) {
    case M_STARTSWITH: return s_affix(c, out, false);
    case M_ENDSWITH: return s_affix(c, out, true);
    case M_STRIP: return s_strip(c, out, 0);
    case M_LSTRIP: return s_strip(c, out, 1);
    case M_RSTRIP: return s_strip(c, out, 2);
    case M_SPLIT: return s_split(c, out, false);
    case M_RSPLIT: return s_split(c, out, true);
    case M_SPLITLINES: return s_splitlines(c, out);
    case M_UPPER: return s_case(c, out, 0);
    case M_LOWER: return s_case(c, out, 1);
    case M_TITLE: return s_case(c, out, 2);
    case M_CAPITALIZE: return s_case(c, out, 3);
    case M_REPLACE: return s_replace(c, out);
    case M_FIND: return s_find(c, out, 0);
    case M_RFIND: return s_find(c, out, 1);
    case M_COUNT: return s_find(c, out, 2);
    case M_INDEX: return s_find(c, out, 3);
    case M_JOIN: return s_join(c, out);
    case M_ISDIGIT: return s_is(c, out, 0);
    case M_ISALPHA: return s_is(c, out, 1);
    case M_ISALNUM: return s_is(c, out, 2);
    case M_ISSPACE: return s_is(c, out, 3);
    case M_ISUPPER: return s_is(c, out, 4);
    case M_ISLOWER: return s_is(c, out, 5);
    case M_FORMAT: return s_format(c, out);
    default: return jerr(rt, at, CIT_ERR_NOT_FOUND, "unknown method");
    }
}

/* ---------------------------------------------------------------- globals */

const char *jfunc_name(int id)
{
    static const char *const names[] = {"range", "namespace", "dict", "raise_exception", "strftime_now"};
    return id >= 0 && id < JF_COUNT_ ? names[id] : "?";
}

static int g_range(struct jcall *c, struct jv *out)
{
    if (c->nk)
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "range() takes no keyword arguments");
    if (c->nargs < 1 || c->nargs > 3)
        return jerr(c->rt, c->at, CIT_ERR_TYPE, "range expected 1 to 3 arguments, got %zu", c->nargs);
    int64_t v[3] = {0, 0, 1};
    for (size_t i = 0; i < c->nargs; i++) {
        struct jv x = c->args[i];
        if (x.t != JT_INT && x.t != JT_BOOL)
            return x.t == JT_UNDEF ? jundef_fail(c->rt, c->at, x)
                                   : jerr(c->rt, c->at, CIT_ERR_TYPE, "'%s' object cannot be interpreted as an integer",
                                          jv_type_name(x));
        v[c->nargs == 1 ? 1 : i] = x.t == JT_BOOL ? x.u.b : x.u.i;
    }
    int64_t start = v[0], stop = v[1], step = v[2];
    if (step == 0)
        return jerr(c->rt, c->at, CIT_ERR_INVALID_ARG, "range() arg 3 must not be zero");
    /* Count in 128 bits' worth of care: the bounds are arbitrary int64s. */
    long double span = step > 0 ? (long double)stop - (long double)start : (long double)start - (long double)stop;
    long double cnt = span <= 0 ? 0 : ceill(span / (step > 0 ? (long double)step : -(long double)step));
    if (cnt > MAX_RANGE)
        return jerr(c->rt, c->at, CIT_ERR_LIMIT,
                    "range too big: the sandbox blocks ranges larger than %d items", MAX_RANGE);
    size_t n = (size_t)cnt;
    struct jlist *l = jl_new(c->rt, c->at, n);
    if (!l)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (jl_push(c->rt, c->at, l, jv_int(start + (int64_t)i * step))) {
            jv_drop(c->rt, jv_list(l));
            return -1;
        }
    *out = jv_list(l);
    return 0;
}

static int g_namespace(struct jcall *c, struct jv *out, bool is_ns)
{
    struct jdict *d = is_ns ? jns_new(c->rt, c->at) : jd_new(c->rt, c->at);
    if (!d)
        return -1;
    struct jv dv = {.t = (uint8_t)(is_ns ? JT_NS : JT_DICT)};
    dv.u.d = d;
    int rc = 0;
    if (c->nargs > 1)
        rc = jerr(c->rt, c->at, CIT_ERR_TYPE, "%s expected at most 1 positional argument", c->name);
    if (rc == 0 && c->nargs == 1) {
        struct jv src = c->args[0];
        if (src.t == JT_DICT || src.t == JT_NS) {
            for (size_t i = 0; rc == 0 && i < src.u.d->len; i++)
                rc = jd_set(c->rt, c->at, d, jv_ref(src.u.d->e[i].k), jv_ref(src.u.d->e[i].v));
        } else if (src.t == JT_LIST) {
            for (size_t i = 0; rc == 0 && i < src.u.l->len; i++) {
                struct jv p = src.u.l->v[i];
                if (p.t != JT_LIST || p.u.l->len != 2)
                    rc = jerr(c->rt, c->at, CIT_ERR_TYPE, "%s: sequence elements must be pairs", c->name);
                else
                    rc = jd_set(c->rt, c->at, d, jv_ref(p.u.l->v[0]), jv_ref(p.u.l->v[1]));
            }
        } else {
            rc = jerr(c->rt, c->at, CIT_ERR_TYPE, "%s: cannot convert '%s' to a mapping", c->name,
                      jv_type_name(src));
        }
    }
    for (size_t k = 0; rc == 0 && k < c->nk; k++)
        rc = jd_set(c->rt, c->at, d, jv_str(c->kn[k]), jv_ref(c->kv[k]));
    if (rc) {
        jv_drop(c->rt, dv);
        return -1;
    }
    *out = dv;
    return 0;
}

static int g_raise(struct jcall *c)
{
    struct jv msg = c->nargs ? c->args[0] : JV_UNDEFINED;
    struct jv s;
    if (jv_to_str(c->rt, c->at, msg, &s))
        return -1;
    jerr(c->rt, c->at, CIT_ERR_INVALID_ARG, "%s", s.u.s->s);
    jv_drop(c->rt, s);
    c->rt->raised = true;
    return -1;
}

static const char *const wday_names[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                         "Saturday"};
static const char *const mon_names[] = {"January", "February", "March",     "April",   "May",      "June",
                                        "July",    "August",   "September", "October", "November", "December"};

static int g_strftime(struct jcall *c, struct jv *out)
{
    BIND("format");
    if (!jslot_set(a[0]) || need_str(c, a[0], "format"))
        return jslot_set(a[0]) ? -1 : jerr(c->rt, c->at, CIT_ERR_TYPE, "strftime_now needs a format");
    struct tm tm;
    time_t now = c->rt->now;
    if (!gmtime_r(&now, &tm))
        return jerr(c->rt, c->at, CIT_ERR_RANGE, "clock out of range");
    const struct jstr *f = a[0].u.s;
    struct jbuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < f->len && rc == 0; i++) {
        if (f->s[i] != '%' || i + 1 >= f->len) {
            rc = jb_putc(c->rt, c->at, &b, f->s[i]);
            continue;
        }
        char d = f->s[++i];
        bool nopad = false;
        if (d == '-' && i + 1 < f->len) {
            nopad = true;
            d = f->s[++i];
        }
        int num = -1, width = 2;
        int hour12 = tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12;
        switch (d) {
        case 'a': rc = jb_printf(c->rt, c->at, &b, "%.3s", wday_names[tm.tm_wday % 7]); break;
        case 'A': rc = jb_puts(c->rt, c->at, &b, wday_names[tm.tm_wday % 7]); break;
        case 'b':
        case 'h': rc = jb_printf(c->rt, c->at, &b, "%.3s", mon_names[tm.tm_mon % 12]); break;
        case 'B': rc = jb_puts(c->rt, c->at, &b, mon_names[tm.tm_mon % 12]); break;
        case 'd': num = tm.tm_mday; break;
        case 'e': rc = jb_printf(c->rt, c->at, &b, nopad ? "%d" : "%2d", tm.tm_mday); break;
        case 'm': num = tm.tm_mon + 1; break;
        case 'Y': rc = jb_printf(c->rt, c->at, &b, "%d", tm.tm_year + 1900); break;
        case 'y': num = (tm.tm_year + 1900) % 100; break;
        case 'H': num = tm.tm_hour; break;
        case 'I': num = hour12; break;
        case 'M': num = tm.tm_min; break;
        case 'S': num = tm.tm_sec; break;
        case 'j': num = tm.tm_yday + 1, width = 3; break;
        case 'p': rc = jb_puts(c->rt, c->at, &b, tm.tm_hour < 12 ? "AM" : "PM"); break;
        case 'Z': rc = jb_puts(c->rt, c->at, &b, "UTC"); break;
        case 'z': rc = jb_puts(c->rt, c->at, &b, "+0000"); break;
        case 'F':
            rc = jb_printf(c->rt, c->at, &b, "%d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
            break;
        case 'T': rc = jb_printf(c->rt, c->at, &b, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec); break;
        case '%': rc = jb_putc(c->rt, c->at, &b, '%'); break;
        default: rc = jb_printf(c->rt, c->at, &b, "%%%s%c", nopad ? "-" : "", d); break;
        }
        if (num >= 0 && rc == 0)
            rc = jb_printf(c->rt, c->at, &b, nopad ? "%d" : "%0*d", nopad ? num : width, num);
    }
    if (rc) {
        jb_free(c->rt, &b);
        return -1;
    }
    return jb_take(c->rt, c->at, &b, out);
}

int jfunc_call(struct jrt *rt, const struct jn *at, int id, struct jv *args, size_t nargs, struct jstr **kn, struct jv *kv,
               size_t nk, struct jv *out)
{
    if (jstep(rt, at, 1))
        return -1;
    char name[48];
    snprintf(name, sizeof name, "%s()", jfunc_name(id));
    struct jcall cx = {rt, at, JV_UNDEFINED, args, nargs, kn, kv, nk, name};
    switch (id) {
    case JF_RANGE: return g_range(&cx, out);
    case JF_NAMESPACE: return g_namespace(&cx, out, true);
    case JF_DICT: return g_namespace(&cx, out, false);
    case JF_RAISE: return g_raise(&cx);
    case JF_STRFTIME: return g_strftime(&cx, out);
    default: return jerr(rt, at, CIT_ERR_NOT_FOUND, "unknown function");
    }
}

/* ---------------------------------------------------------------- tojson */

static int json_str(struct jrt *rt, const struct jn *at, struct jbuf *b, const char *s, size_t len)
{
    if (jb_putc(rt, at, b, '"'))
        return -1;
    size_t i = 0, run = 0;
    while (i < len) {
        size_t st = i;
        uint32_t cp = ju_decode(s, len, &i);
        char esc[16];
        const char *e = NULL;
        switch (cp) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '<': e = "\\u003c"; break;
        case '>': e = "\\u003e"; break;
        case '&': e = "\\u0026"; break;
        case '\'': e = "\\u0027"; break;
        default:
            if (cp < 0x20 || (cp > 0x7f && cp < 0x10000)) {
                snprintf(esc, sizeof esc, "\\u%04x", cp);
                e = esc;
            } else if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
                e = esc;
            }
            break;
        }
        if (e) {
            if (jb_put(rt, at, b, s + run, st - run) || jb_puts(rt, at, b, e))
                return -1;
            run = i;
        }
    }
    if (jb_put(rt, at, b, s + run, len - run))
        return -1;
    return jb_putc(rt, at, b, '"');
}

static int json_newline(struct jrt *rt, const struct jn *at, struct jbuf *b, int indent, int level)
{
    if (jb_putc(rt, at, b, '\n'))
        return -1;
    for (int i = 0; i < indent * level; i++)
        if (jb_putc(rt, at, b, ' '))
            return -1;
    return 0;
}

/* A dict key as json.dumps writes it (keys that are not strings are converted). */
static int json_key(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv k)
{
    char tmp[48];
    switch (k.t) {
    case JT_STR: return json_str(rt, at, b, k.u.s->s, k.u.s->len);
    case JT_INT: snprintf(tmp, sizeof tmp, "%" PRId64, k.u.i); break;
    case JT_BOOL: snprintf(tmp, sizeof tmp, "%s", k.u.b ? "true" : "false"); break;
    case JT_NONE: snprintf(tmp, sizeof tmp, "null"); break;
    case JT_FLOAT:
        if (isnan(k.u.f))
            snprintf(tmp, sizeof tmp, "NaN");
        else if (isinf(k.u.f))
            snprintf(tmp, sizeof tmp, k.u.f < 0 ? "-Infinity" : "Infinity");
        else
            ju_float_repr(k.u.f, tmp, sizeof tmp);
        break;
    default: return jerr(rt, at, CIT_ERR_TYPE, "keys must be str, int, float, bool or None, not %s", jv_type_name(k));
    }
    return json_str(rt, at, b, tmp, strlen(tmp));
}

int jtojson(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv v, int indent, int depth)
{
    if (depth > 500)
        return jerr(rt, at, CIT_ERR_LIMIT, "value nested too deeply for tojson");
    if (jstep(rt, at, 1))
        return -1;
    char tmp[48];
    switch (v.t) {
    case JT_NONE: return jb_puts(rt, at, b, "null");
    case JT_BOOL: return jb_puts(rt, at, b, v.u.b ? "true" : "false");
    case JT_INT: return jb_printf(rt, at, b, "%" PRId64, v.u.i);
    case JT_FLOAT:
        if (isnan(v.u.f))
            return jb_puts(rt, at, b, "NaN");
        if (isinf(v.u.f))
            return jb_puts(rt, at, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        ju_float_repr(v.u.f, tmp, sizeof tmp);
        return jb_puts(rt, at, b, tmp);
    case JT_STR: return json_str(rt, at, b, v.u.s->s, v.u.s->len);
    case JT_LIST: {
        const struct jlist *l = v.u.l;
        if (!jl_seq(l))
            return jerr(rt, at, CIT_ERR_TYPE, "Object of type %s is not JSON serializable", jv_type_name(v));
        if (l->len == 0)
            return jb_puts(rt, at, b, "[]");
        if (jb_putc(rt, at, b, '['))
            return -1;
        for (size_t i = 0; i < l->len; i++) {
            if (i && jb_puts(rt, at, b, indent >= 0 ? "," : ", "))
                return -1;
            if (indent >= 0 && json_newline(rt, at, b, indent, depth + 1))
                return -1;
            if (jtojson(rt, at, b, l->v[i], indent, depth + 1))
                return -1;
        }
        if (indent >= 0 && json_newline(rt, at, b, indent, depth))
            return -1;
        return jb_putc(rt, at, b, ']');
    }
    case JT_DICT: {
        const struct jdict *d = v.u.d;
        if (d->len == 0)
            return jb_puts(rt, at, b, "{}");
        /* sort_keys=True: order entry indices by key (insertion sort keeps it simple and stable). */
        size_t *ord = jmem_alloc(rt, at, d->len * sizeof *ord);
        if (!ord)
            return -1;
        int rc = jstep(rt, at, d->len);
        for (size_t i = 0; rc == 0 && i < d->len; i++) {
            size_t j = i;
            ord[i] = i;
            while (rc == 0 && j > 0) {
                int cmp;
                rc = jv_cmp(rt, at, d->e[ord[j - 1]].k, d->e[ord[j]].k, &cmp);
                if (rc || cmp <= 0)
                    break;
                size_t t = ord[j - 1];
                ord[j - 1] = ord[j];
                ord[j] = t;
                j--;
            }
            if (rc == 0 && i % 64 == 0)
                rc = jstep(rt, at, i);
        }
        if (rc == 0)
            rc = jb_putc(rt, at, b, '{');
        for (size_t i = 0; rc == 0 && i < d->len; i++) {
            const struct jkv *e = &d->e[ord[i]];
            if (i)
                rc = jb_puts(rt, at, b, indent >= 0 ? "," : ", ");
            if (rc == 0 && indent >= 0)
                rc = json_newline(rt, at, b, indent, depth + 1);
            if (rc == 0)
                rc = json_key(rt, at, b, e->k);
            if (rc == 0)
                rc = jb_puts(rt, at, b, ": ");
            if (rc == 0)
                rc = jtojson(rt, at, b, e->v, indent, depth + 1);
        }
        if (rc == 0 && indent >= 0)
            rc = json_newline(rt, at, b, indent, depth);
        if (rc == 0)
            rc = jb_putc(rt, at, b, '}');
        jmem_free(rt, ord, d->len * sizeof *ord);
        return rc;
    }
    default:
        return jerr(rt, at, CIT_ERR_TYPE, "Object of type %s is not JSON serializable", jv_type_name(v));
    }
}
