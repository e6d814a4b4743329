/* jinja_eval.c: runs a parsed template: statements, expressions, scopes, macros.
 *
 * Scoping follows Jinja2: the root scope holds the render's variables; a
 * for loop runs each iteration in a fresh child scope (so `set` inside a
 * loop does not leak out, which is why templates use namespace()); a macro
 * call runs in a child of the scope the macro was defined in and sees that
 * scope's variables as they are at call time; `if` opens no scope.
 *
 * Every node evaluated costs one step and one level of nesting, both
 * budgeted (struct jrt); output and strings are capped in bytes and every
 * allocation is charged against the memory budget (jinja_value.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_internal.h"

enum { X_OK = 0, X_ERR = -1, X_BREAK = 1, X_CONTINUE = 2 };

#define ARGS_INLINE 6


static int eval(struct jrt *rt, struct jscope *sc, const struct jn *n, struct jv *out);
static int exec_body(struct jrt *rt, struct jscope *sc, const struct jnvec *body, struct jbuf *out);

static int enter(struct jrt *rt, const struct jn *n)
{
    if (++rt->depth > rt->max_depth) {
        rt->depth--;
        return jerr(rt, n, CIT_ERR_LIMIT, "recursion depth limit exceeded (%u)", rt->max_depth);
    }
    return jstep(rt, n, 1);
}

/* ---------------------------------------------------------------- scopes */

static struct jscope *scope_new(struct jrt *rt, const struct jn *at, struct jscope *parent)
{
    struct jscope *s = jmem_alloc(rt, at, sizeof *s);
    if (!s)
        return NULL;
    *s = (struct jscope){.h = {.rc = 1, .charged = sizeof *s}, .parent = parent};
    if (parent)
        parent->h.rc++;
    s->rnext = rt->scopes;
    if (rt->scopes)
        rt->scopes->rprev = s;
    rt->scopes = s;
    return s;
}

static int scope_set(struct jrt *rt, const struct jn *at, struct jscope *s, struct jstr *name, struct jv v)
{
    if (!s->vars && !(s->vars = jd_new(rt, at))) {
        jv_drop(rt, v);
        return -1;
    }
    return jd_set(rt, at, s->vars, jv_ref(jv_str(name)), v);
}

static const struct {
    const char *name;
    int id;
} globals[] = {
    {"range", JF_RANGE},       {"namespace", JF_NAMESPACE}, {"dict", JF_DICT},
    {"raise_exception", JF_RAISE}, {"strftime_now", JF_STRFTIME},
};

static int lookup(struct jrt *rt, struct jscope *sc, const struct jstr *name, struct jv *out)
{
    for (struct jscope *s = sc; s; s = s->parent) {
        if (!s->vars)
            continue;
        struct jv *v = jd_get_s(s->vars, name->s, name->len);
        if (v) {
            *out = jv_ref(*v);
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (strcmp(globals[i].name, name->s) == 0) {
            *out = (struct jv){.t = JT_FUNC};
            out->u.i = globals[i].id;
            return 0;
        }
    *out = jv_undef(rt, "'%.200s' is undefined", name->s);
    return 0;
}

/* ---------------------------------------------------------------- arguments */

struct argv {
    struct jv *v;
    struct jstr **kn;
    struct jv *kv;
    size_t n, nk;
    struct jv vi[ARGS_INLINE], kvi[ARGS_INLINE];
    struct jstr *kni[ARGS_INLINE];
};

static void args_free(struct jrt *rt, struct argv *a)
{
    for (size_t i = 0; i < a->n; i++)
        jv_drop(rt, a->v[i]);
    for (size_t i = 0; i < a->nk; i++)
        jv_drop(rt, a->kv[i]);
    if (a->v != a->vi)
        free(a->v);
    if (a->kv != a->kvi)
        free(a->kv);
    if (a->kn != a->kni)
        free(a->kn);
}

/* Evaluates n's args/kwargs; extra positional slots (npre) are reserved in front. */
static int args_eval(struct jrt *rt, struct jscope *sc, const struct jn *n, size_t npre, struct argv *a)
{
    a->v = a->vi;
    a->kv = a->kvi;
    a->kn = a->kni;
    a->n = a->nk = 0;
    size_t np = npre + n->args.n, nk = n->kwargs.n;
    if (np > ARGS_INLINE && !(a->v = calloc(np, sizeof *a->v)))
        return jerr(rt, n, CIT_ERR_NOMEM, "out of memory");
    if (nk > ARGS_INLINE) {
        a->kv = calloc(nk, sizeof *a->kv);
        a->kn = calloc(nk, sizeof *a->kn);
        if (!a->kv || !a->kn) {
            if (a->kv != a->kvi)
                free(a->kv);
            a->kv = a->kvi;
            if (a->kn != a->kni)
                free(a->kn);
            a->kn = a->kni;
            args_free(rt, a);
            return jerr(rt, n, CIT_ERR_NOMEM, "out of memory");
        }
    }
    a->n = npre;
    for (size_t i = 0; i < npre; i++)
        a->v[i] = JV_UNDEFINED;
    for (uint32_t i = 0; i < n->args.n; i++) {
        if (eval(rt, sc, n->args.v[i], &a->v[a->n]))
            goto fail;
        a->n++;
    }
    for (uint32_t i = 0; i < nk; i++) {
        const struct jn *kw = n->kwargs.v[i];
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(n->kwargs.v[j]->name->s, kw->name->s) == 0) {
                jerr(rt, kw, CIT_ERR_FORMAT, "keyword argument '%s' repeated", kw->name->s);
                goto fail;
            }
        a->kn[a->nk] = kw->name;
        if (eval(rt, sc, kw->a, &a->kv[a->nk]))
            goto fail;
        a->nk++;
    }
    return 0;
fail:
    args_free(rt, a);
    return -1;
}

/* ---------------------------------------------------------------- macros */

static int call_macro(struct jrt *rt, const struct jn *at, struct jmacro *m, struct jv *args, size_t nargs,
                      struct jstr **kn, struct jv *kv, size_t nk, struct jv *out)
{
    const struct jn *def = m->def;
    const char *mname = def->kind == JN_MACRO ? def->name->s : "caller";
    const struct jnvec *params = &def->kwargs;
    if (nargs > params->n)
        return jerr(rt, at, CIT_ERR_TYPE, "macro '%s' takes not more than %u argument(s)", mname, params->n);
    for (size_t k = 0; k < nk; k++) {
        bool found = false;
        for (uint32_t i = 0; i < params->n && !found; i++)
            found = strcmp(params->v[i]->name->s, kn[k]->s) == 0;
        if (!found)
            return jerr(rt, at, CIT_ERR_TYPE, "macro '%s' takes no keyword argument '%s'", mname, kn[k]->s);
    }
    if (rt->depth + 1 > rt->max_depth)
        return jerr(rt, at, CIT_ERR_LIMIT, "recursion depth limit exceeded (%u) calling macro '%s'", rt->max_depth,
                    mname);
    struct jscope *s = scope_new(rt, at, m->closure);
    if (!s)
        return -1;
    int rc = 0;
    for (uint32_t i = 0; i < params->n && rc == 0; i++) {
        const struct jn *par = params->v[i];
        struct jv v;
        bool have = false;
        if (i < nargs) {
            v = jv_ref(args[i]);
            have = true;
            for (size_t k = 0; k < nk; k++)
                if (strcmp(par->name->s, kn[k]->s) == 0) {
                    rc = jerr(rt, at, CIT_ERR_TYPE, "macro '%s' got multiple values for argument '%s'", mname,
                              par->name->s);
                    jv_drop(rt, v);
                    have = false;
                }
            if (rc)
                break;
        }
        for (size_t k = 0; k < nk && !have; k++)
            if (strcmp(par->name->s, kn[k]->s) == 0) {
                v = jv_ref(kv[k]);
                have = true;
            }
        if (!have) {
            if (par->a) {
                if (eval(rt, s, par->a, &v)) {
                    rc = -1;
                    break;
                }
            } else {
                v = jv_undef(rt, "parameter '%.200s' was not provided", par->name->s);
            }
        }
        rc = scope_set(rt, par, s, par->name, v);
    }
    if (rc == 0 && m->caller.t == JT_MACRO) {
        rc = scope_set(rt, at, s, rt->tpl->s_caller, jv_ref(m->caller));
    }
    struct jbuf b = {0};
    if (rc == 0) {
        rt->depth++;
        rc = exec_body(rt, s, &def->args, &b);
        rt->depth--;
    }
    jscope_release(rt, s);
    if (rc != X_OK) {
        jb_free(rt, &b);
        return -1;
    }
    return jb_take(rt, at, &b, out);
}

static int call_value(struct jrt *rt, const struct jn *at, struct jv fn, struct argv *a, struct jv *out)
{
    switch (fn.t) {
    case JT_MACRO: return call_macro(rt, at, fn.u.m, a->v, a->n, a->kn, a->kv, a->nk, out);
    case JT_FUNC: return jfunc_call(rt, at, (int)fn.u.i, a->v, a->n, a->kn, a->kv, a->nk, out);
    case JT_METHOD:
        return jmethod_call(rt, at, fn.u.me->recv, fn.u.me->owner, fn.u.me->id, a->v, a->n, a->kn, a->kv, a->nk,
                            out);
    case JT_UNDEF: return jundef_fail(rt, at, fn);
    default: return jerr(rt, at, CIT_ERR_TYPE, "'%s' object is not callable", jv_type_name(fn));
    }
}

/* ---------------------------------------------------------------- expressions */

static __attribute__((noinline)) int eval_call(struct jrt *rt, struct jscope *sc, const struct jn *n, struct jv caller,
                                               struct jv *out)
{
    struct jv fn;
    const struct jn *callee = n->a;
    if (callee->kind == JN_GETATTR) {
        /* obj.method(...): call directly without materializing a bound method. */
        struct jv obj;
        if (eval(rt, sc, callee->a, &obj))
            return -1;
        uint16_t owner, id;
        if (obj.t != JT_UNDEF && jmethod_find(obj, callee->name->s, callee->name->len, &owner, &id)) {
            struct argv a;
            if (args_eval(rt, sc, n, 0, &a)) {
                jv_drop(rt, obj);
                return -1;
            }
            int rc = jmethod_call(rt, n, obj, owner, id, a.v, a.n, a.kn, a.kv, a.nk, out);
            args_free(rt, &a);
            jv_drop(rt, obj);
            return rc;
        }
        int rc = jop_getattr(rt, callee, obj, callee->name->s, callee->name->len, &fn);
        jv_drop(rt, obj);
        if (rc)
            return -1;
    } else if (eval(rt, sc, callee, &fn)) {
        return -1;
    }
    struct argv a;
    if (args_eval(rt, sc, n, 0, &a)) {
        jv_drop(rt, fn);
        return -1;
    }
    int rc;
    if (caller.t == JT_MACRO) {
        if (fn.t != JT_MACRO) {
            rc = jerr(rt, n, CIT_ERR_TYPE, "a call block must call a macro");
        } else {
            struct jmacro bound = *fn.u.m;
            bound.h.flags = JH_STATIC;
            bound.caller = caller;
            rc = call_macro(rt, n, &bound, a.v, a.n, a.kn, a.kv, a.nk, out);
        }
    } else {
        rc = call_value(rt, n, fn, &a, out);
    }
    args_free(rt, &a);
    jv_drop(rt, fn);
    return rc;
}

/* Applies a filter node to an already evaluated input (takes `in`). */
static int apply_filter(struct jrt *rt, struct jscope *sc, const struct jn *f, struct jv in, struct jv *out)
{
    struct argv a;
    if (args_eval(rt, sc, f, 0, &a)) {
        jv_drop(rt, in);
        return -1;
    }
    int rc = jfilter_apply(rt, f, f->fid, in, a.v, a.n, a.kn, a.kv, a.nk, out);
    args_free(rt, &a);
    jv_drop(rt, in);
    return rc;
}

/* A filter chain whose innermost input is `in` (filter blocks, set blocks). */
static int apply_chain(struct jrt *rt, struct jscope *sc, const struct jn *f, struct jv in, struct jv *out)
{
    if (!f) {
        *out = in;
        return 0;
    }
    if (enter(rt, f)) {
        jv_drop(rt, in);
        return -1;
    }
    struct jv mid;
    int rc = apply_chain(rt, sc, f->a, in, &mid);
    if (rc == 0)
        rc = apply_filter(rt, sc, f, mid, out);
    rt->depth--;
    return rc;
}

static __attribute__((noinline)) int eval_compare(struct jrt *rt, struct jscope *sc, const struct jn *n, struct jv *out)
{
    struct jv left;
    if (eval(rt, sc, n->a, &left))
        return -1;
    bool result = true;
    for (uint32_t i = 0; i < n->args.n && result; i++) {
        const struct jn *o = n->args.v[i];
        struct jv right;
        if (eval(rt, sc, o->a, &right)) {
            jv_drop(rt, left);
            return -1;
        }
        int rc = 0, c;
        bool b;
        switch (o->op) {
        case JOP_EQ:
        case JOP_NE:
            rc = jv_eq(rt, o, left, right, &b);
            result = o->op == JOP_EQ ? b : !b;
            break;
        case JOP_IN:
        case JOP_NOTIN:
            rc = jop_contains(rt, o, right, left, &b);
            result = o->op == JOP_IN ? b : !b;
            break;
        default:
            rc = jv_cmp(rt, o, left, right, &c);
            result = o->op == JOP_LT ? c < 0 : o->op == JOP_LE ? c <= 0 : o->op == JOP_GT ? c > 0 : c >= 0;
            break;
        }
        jv_drop(rt, left);
        left = right;
        if (rc) {
            jv_drop(rt, left);
            return -1;
        }
    }
    jv_drop(rt, left);
    *out = jv_bool(result);
    return 0;
}

static __attribute__((noinline)) int eval_collection(struct jrt *rt, struct jscope *sc, const struct jn *n,
                                                     struct jv *out)
{
    if (n->kind == JN_DICT) {
        struct jdict *d = jd_new(rt, n);
        if (!d)
            return -1;
        for (uint32_t i = 0; i < n->args.n; i++) {
            struct jv k, v;
            if (eval(rt, sc, n->args.v[i]->a, &k))
                goto dfail;
            if (eval(rt, sc, n->args.v[i]->b, &v)) {
                jv_drop(rt, k);
                goto dfail;
            }
            if (jd_set(rt, n->args.v[i], d, k, v))
                goto dfail;
        }
        *out = jv_dict(d);
        return 0;
    dfail:
        jv_drop(rt, jv_dict(d));
        return -1;
    }
    struct jlist *l = jl_new(rt, n, n->args.n);
    if (!l)
        return -1;
    l->kind = n->kind == JN_TUPLE ? JL_TUPLE : JL_LIST;
    for (uint32_t i = 0; i < n->args.n; i++) {
        struct jv v;
        if (eval(rt, sc, n->args.v[i], &v) || jl_push(rt, n, l, v)) {
            jv_drop(rt, jv_list(l));
            return -1;
        }
    }
    *out = jv_list(l);
    return 0;
}

static __attribute__((noinline)) int eval_misc(struct jrt *rt, struct jscope *sc, const struct jn *n, struct jv *out)
{
    struct jv a, b;
    switch (n->kind) {
    case JN_GETITEM: {
        if (eval(rt, sc, n->a, &a))
            return -1;
        int rc;
        if (n->b->kind == JN_SLICE) {
            struct jv p[3] = {JV_NONE_V, JV_NONE_V, JV_NONE_V};
            const struct jn *parts[3] = {n->b->b, n->b->c, n->b->d};
            rc = 0;
            for (int i = 0; i < 3 && rc == 0; i++)
                if (parts[i])
                    rc = eval(rt, sc, parts[i], &p[i]);
            if (rc == 0)
                rc = jop_slice(rt, n, a, p[0], p[1], p[2], out);
            for (int i = 0; i < 3; i++)
                jv_drop(rt, p[i]);
        } else {
            rc = eval(rt, sc, n->b, &b);
            if (rc == 0) {
                rc = jop_getitem(rt, n, a, b, out);
                jv_drop(rt, b);
            }
        }
        jv_drop(rt, a);
        return rc;
    }
    case JN_FILTER:
        if (eval(rt, sc, n->a, &a))
            return -1;
        return apply_filter(rt, sc, n, a, out);
    case JN_TEST: {
        if (eval(rt, sc, n->a, &a))
            return -1;
        struct argv av;
        if (args_eval(rt, sc, n, 0, &av)) {
            jv_drop(rt, a);
            return -1;
        }
        bool res = false;
        int rc = av.nk ? jerr(rt, n, CIT_ERR_TYPE, "tests take no keyword arguments")
                       : jtest_apply(rt, n, n->fid, a, av.v, av.n, &res);
        args_free(rt, &av);
        jv_drop(rt, a);
        *out = jv_bool(n->op ? !res : res);
        return rc;
    }
    case JN_BINOP: {
        if (eval(rt, sc, n->a, &a))
            return -1;
        if (eval(rt, sc, n->b, &b)) {
            jv_drop(rt, a);
            return -1;
        }
        int rc = jop_binary(rt, n, n->op, a, b, out);
        jv_drop(rt, a);
        jv_drop(rt, b);
        return rc;
    }
    case JN_NEG:
    case JN_POS: {
        if (eval(rt, sc, n->a, &a))
            return -1;
        int rc = 0;
        if (a.t == JT_UNDEF)
            rc = jundef_fail(rt, n, a);
        else if (a.t == JT_INT || a.t == JT_BOOL) {
            int64_t i = a.t == JT_BOOL ? a.u.b : a.u.i;
            if (n->kind == JN_NEG && i == INT64_MIN)
                rc = jerr(rt, n, CIT_ERR_RANGE, "integer overflow");
            else
                *out = jv_int(n->kind == JN_NEG ? -i : i);
        } else if (a.t == JT_FLOAT) {
            *out = jv_float(n->kind == JN_NEG ? -a.u.f : a.u.f);
        } else {
            rc = jerr(rt, n, CIT_ERR_TYPE, "bad operand type for unary %c: '%s'", n->kind == JN_NEG ? '-' : '+',
                      jv_type_name(a));
        }
        jv_drop(rt, a);
        return rc;
    }
    case JN_CONCAT: {
        struct jbuf buf = {0};
        for (uint32_t i = 0; i < n->args.n; i++) {
            if (eval(rt, sc, n->args.v[i], &a))
                goto cfail;
            int rc = jv_write_str(rt, n, &buf, a);
            jv_drop(rt, a);
            if (rc)
                goto cfail;
        }
        return jb_take(rt, n, &buf, out);
    cfail:
        jb_free(rt, &buf);
        return -1;
    }
    case JN_COND:
        if (eval(rt, sc, n->a, &a))
            return -1;
        {
            bool t = jv_truthy(a);
            jv_drop(rt, a);
            if (t)
                return eval(rt, sc, n->b, out);
            if (n->c)
                return eval(rt, sc, n->c, out);
            *out = jv_undef(rt, "the inline if-expression on line %u evaluated to false and no else section was defined.",
                            n->line);
            return 0;
        }
    case JN_LIST:
    case JN_TUPLE:
    case JN_DICT: return eval_collection(rt, sc, n, out);
    case JN_COMPARE: return eval_compare(rt, sc, n, out);
    case JN_CALL: return eval_call(rt, sc, n, JV_UNDEFINED, out);
    case JN_SLICE: return jerr(rt, n, CIT_ERR_FORMAT, "a slice is only valid inside [ ]");
    default: return jerr(rt, n, CIT_ERR_FORMAT, "cannot evaluate this node as an expression");
    }
}

static int eval(struct jrt *rt, struct jscope *sc, const struct jn *n, struct jv *out)
{
    if (enter(rt, n))
        return -1;
    int rc = 0;
    struct jv a;
    switch (n->kind) {
    case JN_CONST: *out = jv_ref(n->cval); break;
    case JN_NAME: rc = lookup(rt, sc, n->name, out); break;
    case JN_GETATTR:
        if ((rc = eval(rt, sc, n->a, &a)) == 0) {
            rc = jop_getattr(rt, n, a, n->name->s, n->name->len, out);
            jv_drop(rt, a);
        }
        break;
    case JN_NOT:
        if ((rc = eval(rt, sc, n->a, &a)) == 0) {
            *out = jv_bool(!jv_truthy(a));
            jv_drop(rt, a);
        }
        break;
    case JN_AND:
    case JN_OR:
        if ((rc = eval(rt, sc, n->a, &a)) == 0) {
            bool t = jv_truthy(a);
            if ((n->kind == JN_AND) == t) {
                jv_drop(rt, a);
                rc = eval(rt, sc, n->b, out);
            } else {
                *out = a;
            }
        }
        break;
    default: rc = eval_misc(rt, sc, n, out); break;
    }
    rt->depth--;
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- assignment */

static int unpack_into(struct jrt *rt, const struct jn *at, struct jscope *sc, const struct jn *target, struct jv v);

static int assign(struct jrt *rt, const struct jn *at, struct jscope *sc, const struct jn *target, struct jv v)
{
    if (target->kind == JN_NAME)
        return scope_set(rt, at, sc, target->name, v);
    if (target->kind == JN_NSREF) {
        struct jv ns;
        lookup(rt, sc, target->a->name, &ns);
        if (ns.t != JT_NS) {
            jv_drop(rt, ns);
            jv_drop(rt, v);
            return jerr(rt, at, CIT_ERR_TYPE, "cannot assign attribute on non-namespace object '%s'",
                        target->a->name->s);
        }
        int rc = jd_set(rt, at, ns.u.d, jv_str(target->name), v);
        jv_drop(rt, ns);
        return rc;
    }
    return unpack_into(rt, at, sc, target, v);
}

static int unpack_into(struct jrt *rt, const struct jn *at, struct jscope *sc, const struct jn *target, struct jv v)
{
    struct jv items;
    if (jv_iter_list(rt, at, v, &items)) {
        jv_drop(rt, v);
        return -1;
    }
    jv_drop(rt, v);
    const struct jlist *l = items.u.l;
    int rc = 0;
    if (l->len != target->args.n)
        rc = jerr(rt, at, CIT_ERR_TYPE, "%s values to unpack (expected %u, got %zu)",
                  l->len > target->args.n ? "too many" : "not enough", target->args.n, l->len);
    for (uint32_t i = 0; rc == 0 && i < target->args.n; i++)
        rc = assign(rt, at, sc, target->args.v[i], jv_ref(l->v[i]));
    jv_drop(rt, items);
    return rc;
}

/* ---------------------------------------------------------------- statements */

static __attribute__((noinline)) int exec_for(struct jrt *rt, struct jscope *sc, const struct jn *n, struct jbuf *out)
{
    struct jv seq, items;
    if (eval(rt, sc, n->b, &seq))
        return X_ERR;
    int rc = jv_iter_list(rt, n->b, seq, &items);
    jv_drop(rt, seq);
    if (rc)
        return X_ERR;
    if (n->c) {
        /* `for x in xs if cond`: filter first, so loop.length/last see only kept items. */
        struct jlist *kept = jl_new(rt, n, 0);
        if (!kept) {
            jv_drop(rt, items);
            return X_ERR;
        }
        for (size_t i = 0; i < items.u.l->len; i++) {
            struct jscope *fs = scope_new(rt, n, sc);
            struct jv c;
            bool keep = false;
            rc = fs ? assign(rt, n, fs, n->a, jv_ref(items.u.l->v[i])) : -1;
            if (rc == 0 && (rc = eval(rt, fs, n->c, &c)) == 0) {
                keep = jv_truthy(c);
                jv_drop(rt, c);
            }
            jscope_release(rt, fs);
            if (rc == 0 && keep)
                rc = jl_push(rt, n, kept, jv_ref(items.u.l->v[i]));
            if (rc) {
                jv_drop(rt, jv_list(kept));
                jv_drop(rt, items);
                return X_ERR;
            }
        }
        jv_drop(rt, items);
        items = jv_list(kept);
    }
    size_t len = items.u.l->len;
    if (len == 0) {
        jv_drop(rt, items);
        if (!n->body2.n)
            return X_OK;
        struct jscope *es = scope_new(rt, n, sc);
        if (!es)
            return X_ERR;
        rc = exec_body(rt, es, &n->body2, out);
        jscope_release(rt, es);
        return rc == X_ERR ? X_ERR : X_OK;
    }
    struct jloop *lp = jmem_alloc(rt, n, sizeof *lp);
    if (!lp) {
        jv_drop(rt, items);
        return X_ERR;
    }
    *lp = (struct jloop){.h = {.rc = 1, .depth = (uint16_t)(items.u.l->h.depth + 1), .charged = sizeof *lp},
                         .items = items};
    struct jv loopv = {.t = JT_LOOP};
    loopv.u.lp = lp;
    rc = X_OK;
    struct jscope *is = NULL;
    for (size_t i = 0; i < len; i++) {
        lp->index0 = i;
        /* Each iteration starts from a fresh scope; when nothing captured the
         * previous one (a macro defined in the body would), it is emptied and reused. */
        if (is && is->h.rc == 1 && is->vars) {
            jd_clear(rt, is->vars);
        } else {
            jscope_release(rt, is);
            is = scope_new(rt, n, sc);
        }
        if (!is || jstep(rt, n, 1) || scope_set(rt, n, is, rt->tpl->s_loop, jv_ref(loopv)) ||
            assign(rt, n, is, n->a, jv_ref(items.u.l->v[i]))) {
            rc = X_ERR;
            break;
        }
        rc = exec_body(rt, is, &n->args, out);
        if (rc == X_ERR)
            break;
        if (rc == X_BREAK) {
            rc = X_OK;
            break;
        }
        rc = X_OK;
    }
    jscope_release(rt, is);
    jv_drop(rt, loopv);
    return rc;
}

/* Renders a body into a fresh string (macro calls, set/filter blocks). */
static int capture(struct jrt *rt, struct jscope *sc, const struct jn *at, const struct jnvec *body, struct jv *out)
{
    struct jbuf b = {0};
    if (exec_body(rt, sc, body, &b) == X_ERR) {
        jb_free(rt, &b);
        return -1;
    }
    return jb_take(rt, at, &b, out);
}

static __attribute__((noinline)) int exec_misc(struct jrt *rt, struct jscope *sc, const struct jn *n, struct jbuf *out)
{
    struct jv v, r;
    switch (n->kind) {
    case JN_SET:
        if (eval(rt, sc, n->b, &v))
            return X_ERR;
        return assign(rt, n, sc, n->a, v) ? X_ERR : X_OK;
    case JN_SETBLOCK:
        if (capture(rt, sc, n, &n->args, &v) || apply_chain(rt, sc, n->b, v, &r))
            return X_ERR;
        return assign(rt, n, sc, n->a, r) ? X_ERR : X_OK;
    case JN_FILTERBLOCK: {
        if (capture(rt, sc, n, &n->args, &v) || apply_chain(rt, sc, n->b, v, &r))
            return X_ERR;
        int rc = jv_write_str(rt, n, out, r);
        jv_drop(rt, r);
        return rc ? X_ERR : X_OK;
    }
    case JN_MACRO:
    case JN_CALLBLOCK: {
        struct jmacro *m = jmem_alloc(rt, n, sizeof *m);
        if (!m)
            return X_ERR;
        *m = (struct jmacro){.h = {.rc = 1, .depth = 1, .charged = sizeof *m}, .def = n, .closure = sc,
                             .caller = JV_UNDEFINED};
        sc->h.rc++;
        struct jv mv = {.t = JT_MACRO};
        mv.u.m = m;
        if (n->kind == JN_MACRO)
            return scope_set(rt, n, sc, n->name, mv) ? X_ERR : X_OK;
        int rc = eval_call(rt, sc, n->a, mv, &r);
        jv_drop(rt, mv);
        if (rc)
            return X_ERR;
        rc = jv_write_str(rt, n, out, r);
        jv_drop(rt, r);
        return rc ? X_ERR : X_OK;
    }
    case JN_WITH: {
        struct jscope *ws = scope_new(rt, n, sc);
        if (!ws)
            return X_ERR;
        int rc = X_OK;
        for (uint32_t i = 0; i < n->kwargs.n && rc == X_OK; i++) {
            const struct jn *kw = n->kwargs.v[i];
            if (eval(rt, sc, kw->a, &v) || scope_set(rt, kw, ws, kw->name, v))
                rc = X_ERR;
        }
        if (rc == X_OK)
            rc = exec_body(rt, ws, &n->args, out);
        jscope_release(rt, ws);
        return rc;
    }
    default: return jerr(rt, n, CIT_ERR_FORMAT, "cannot execute this node as a statement");
    }
}

static int exec_stmt(struct jrt *rt, struct jscope *sc, const struct jn *n, struct jbuf *out)
{
    if (enter(rt, n))
        return X_ERR;
    int rc = X_OK;
    struct jv v;
    switch (n->kind) {
    case JN_TEXT: rc = jb_put(rt, n, out, n->cval.u.s->s, n->cval.u.s->len) ? X_ERR : X_OK; break;
    case JN_OUTPUT:
        if (eval(rt, sc, n->a, &v)) {
            rc = X_ERR;
            break;
        }
        rc = jv_write_str(rt, n, out, v) ? X_ERR : X_OK;
        jv_drop(rt, v);
        break;
    case JN_IF:
        if (eval(rt, sc, n->a, &v)) {
            rc = X_ERR;
            break;
        }
        rc = exec_body(rt, sc, jv_truthy(v) ? &n->args : &n->body2, out);
        jv_drop(rt, v);
        break;
    case JN_FOR: rc = exec_for(rt, sc, n, out); break;
    case JN_BREAK: rc = X_BREAK; break;
    case JN_CONTINUE: rc = X_CONTINUE; break;
    default: rc = exec_misc(rt, sc, n, out); break;
    }
    rt->depth--;
    return rc;
}

static int exec_body(struct jrt *rt, struct jscope *sc, const struct jnvec *body, struct jbuf *out)
{
    for (uint32_t i = 0; i < body->n; i++) {
        int rc = exec_stmt(rt, sc, body->v[i], out);
        if (rc != X_OK)
            return rc;
    }
    return X_OK;
}

int jrender(struct jrt *rt, const struct jtpl *t, struct jdict *vars, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    struct jscope *root = scope_new(rt, NULL, NULL);
    if (!root) {
        jv_drop(rt, jv_dict(vars));
        return -1;
    }
    root->vars = vars; /* the root scope takes the caller's reference */
    rt->root = root;
    rt->tpl = t;
    struct jbuf b = {0};
    int rc = exec_body(rt, root, &t->body, &b);
    jscope_release(rt, root);
    rt->root = NULL;
    jrt_release_all(rt);
    if (rc != X_OK) {
        jb_free(rt, &b);
        if (!rt->failed)
            jerr(rt, NULL, CIT_ERR_FORMAT, "'break' or 'continue' outside of a loop");
        return -1;
    }
    /* Hand the buffer over as a plain malloc'd string. */
    if (!b.p) {
        b.p = malloc(1);
        if (!b.p)
            return jerr(rt, NULL, CIT_ERR_NOMEM, "out of memory");
        b.p[0] = '\0';
    } else {
        rt->mem_used -= b.cap;
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
}
