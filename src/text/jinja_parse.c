/* jinja_parse.c: tokens -> AST, following Jinja2's grammar and precedence.
 *
 * Precedence, loosest first: `a if c else b`, or, and, not, comparisons
 * (== != < <= > >= in, not in), + -, ~, * / // %, **, unary - +, then
 * postfix (.attr, [index], [a:b:c], call) with filters (|f) and tests
 * (is t) binding to the unary expression they follow.
 *
 * Everything a template might do to the host is refused here, at load
 * time: extends/include/import (no file access), unknown filters and tests,
 * recursive loops, *args / **kwargs. So a template that parses renders
 * with nothing but the variables it is given.
 *
 * Node field use by kind (see struct jn):
 *   TEXT cval | OUTPUT a | IF a=test args=body body2=else (an elif is an IF in body2)
 *   FOR a=target b=iter c=filter args=body body2=else | SET a=target b=value
 *   SETBLOCK a=target b=filter chain (innermost input NULL) args=body
 *   MACRO name kwargs=params args=body | CALLBLOCK a=call kwargs=params args=body
 *   FILTERBLOCK b=filter chain args=body | WITH kwargs=assignments args=body
 *   CONST cval | NAME name | NSREF a=NAME name=attr | GETATTR a name | GETITEM a b
 *   SLICE b c d (each may be NULL) | CALL a args kwargs | FILTER a name fid args kwargs
 *   TEST a name fid op=negated args | BINOP op a b | NOT/NEG/POS a | AND/OR a b
 *   COMPARE a args=OPERAND(op, a) | CONCAT args | COND a=test b=then c=else (may be NULL)
 *   LIST/TUPLE args | DICT args=PAIR(a, b) | KWARG name a | PARAM name a=default */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "text/jinja_internal.h"

struct ps {
    struct jtoks toks;
    size_t i;
    struct jarena *arena;
    int depth;
    int loops; /* enclosing for loops (break/continue are legal inside) */
    char *err;
    size_t errlen;
    enum cit_status st;
    bool failed;
};


static const struct jtok *cur(const struct ps *p) { return &p->toks.v[p->i]; }
static const struct jtok *peek(const struct ps *p)
{
    return p->i + 1 < p->toks.n ? &p->toks.v[p->i + 1] : &p->toks.v[p->toks.n - 1];
}
static void next(struct ps *p)
{
    if (p->i + 1 < p->toks.n)
        p->i++;
}

static void describe(const struct jtok *t, char *buf, size_t n)
{
    switch (t->kind) {
    case JK_EOF: snprintf(buf, n, "end of template"); break;
    case JK_DATA: snprintf(buf, n, "template data"); break;
    case JK_VAR_BEGIN: snprintf(buf, n, "'{{'"); break;
    case JK_VAR_END: snprintf(buf, n, "end of print statement"); break;
    case JK_BLOCK_BEGIN: snprintf(buf, n, "'{%%'"); break;
    case JK_BLOCK_END: snprintf(buf, n, "end of statement block"); break;
    case JK_STRING: snprintf(buf, n, "string literal"); break;
    default: snprintf(buf, n, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p); break;
    }
}

static struct jn *fail_at(struct ps *p, const struct jtok *t, enum cit_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static struct jn *fail_at(struct ps *p, const struct jtok *t, enum cit_status st, const char *fmt, ...)
{
    if (p->failed)
        return NULL;
    p->failed = true;
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->st = cit_fail(st, p->err, p->errlen, "template line %u, column %u: %s", t->line, t->col, msg);
    return NULL;
}

static struct jn *unexpected(struct ps *p, const char *wanted)
{
    char d[64];
    describe(cur(p), d, sizeof d);
    if (wanted)
        return fail_at(p, cur(p), CIT_ERR_FORMAT, "expected %s, got %s", wanted, d);
    return fail_at(p, cur(p), CIT_ERR_FORMAT, "unexpected %s", d);
}

static bool is_op(const struct jtok *t, const char *op) { return t->kind == JK_OP && strcmp(t->op, op) == 0; }

static bool is_name(const struct jtok *t, const char *name)
{
    return t->kind == JK_NAME && t->n == strlen(name) && memcmp(t->p, name, t->n) == 0;
}

static bool skip_op(struct ps *p, const char *op)
{
    if (!is_op(cur(p), op))
        return false;
    next(p);
    return true;
}

static bool skip_name(struct ps *p, const char *name)
{
    if (!is_name(cur(p), name))
        return false;
    next(p);
    return true;
}

static bool expect_op(struct ps *p, const char *op)
{
    if (skip_op(p, op))
        return true;
    char want[16];
    snprintf(want, sizeof want, "'%s'", op);
    unexpected(p, want);
    return false;
}

static bool expect_kind(struct ps *p, enum jtok_kind k)
{
    if (cur(p)->kind == k) {
        next(p);
        return true;
    }
    unexpected(p, k == JK_BLOCK_END ? "end of statement block" : k == JK_VAR_END ? "end of print statement" : "token");
    return false;
}

static struct jn *node(struct ps *p, enum jn_kind kind, const struct jtok *t)
{
    struct jn *n = jarena_alloc(p->arena, sizeof *n);
    if (!n)
        return fail_at(p, t, CIT_ERR_NOMEM, "out of memory");
    n->kind = (uint8_t)kind;
    n->line = t->line;
    n->col = t->col;
    return n;
}

static struct jstr *tok_name(struct ps *p, const struct jtok *t)
{
    struct jstr *s = jarena_str(p->arena, t->p, t->n);
    if (!s)
        fail_at(p, t, CIT_ERR_NOMEM, "out of memory");
    return s;
}

/* Growable node vector built in malloc'd scratch, then moved into the arena. */
struct vb {
    struct jn **v;
    uint32_t n, cap;
};

static bool vb_push(struct ps *p, struct vb *b, struct jn *n)
{
    if (!n)
        return false;
    if (b->n == b->cap) {
        uint32_t ncap = b->cap ? b->cap * 2 : 8;
        struct jn **nv = realloc(b->v, ncap * sizeof *nv);
        if (!nv) {
            fail_at(p, cur(p), CIT_ERR_NOMEM, "out of memory");
            return false;
        }
        b->v = nv;
        b->cap = ncap;
    }
    b->v[b->n++] = n;
    return true;
}

static bool vb_done(struct ps *p, struct vb *b, struct jnvec *out)
{
    out->n = 0;
    out->v = NULL;
    if (b->n) {
        out->v = jarena_alloc(p->arena, b->n * sizeof *out->v);
        if (!out->v) {
            free(b->v);
            fail_at(p, cur(p), CIT_ERR_NOMEM, "out of memory");
            return false;
        }
        memcpy(out->v, b->v, b->n * sizeof *out->v);
        out->n = b->n;
    }
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
    return true;
}

static bool enter(struct ps *p)
{
    if (++p->depth > JINJA_MAX_NEST) {
        fail_at(p, cur(p), CIT_ERR_LIMIT, "template nested too deeply (limit %d)", JINJA_MAX_NEST);
        return false;
    }
    return true;
}

static struct jn *leave(struct ps *p, struct jn *n)
{
    p->depth--;
    return n;
}

/* ---------------------------------------------------------------- expressions */

static struct jn *parse_expression(struct ps *p, bool with_condexpr);
static struct jn *parse_tuple(struct ps *p, bool simplified, bool with_condexpr, const char *extra_end,
                       bool explicit_parens, bool with_namespace);
static struct jn *parse_unary(struct ps *p, bool with_filter);
static struct jn *parse_primary(struct ps *p, bool with_namespace);
static struct jn *parse_postfix(struct ps *p, struct jn *n);
static struct jn *parse_filter(struct ps *p, struct jn *n, bool start_inline);

static bool parse_call_args(struct ps *p, struct jn *call)
{
    const struct jtok *open = cur(p);
    if (!expect_op(p, "("))
        return false;
    struct vb args = {0}, kwargs = {0};
    bool need_comma = false;
    while (!is_op(cur(p), ")")) {
        if (need_comma) {
            if (!expect_op(p, ","))
                goto fail;
            if (is_op(cur(p), ")"))
                break;
        }
        if (is_op(cur(p), "*") || is_op(cur(p), "**")) {
            fail_at(p, cur(p), CIT_ERR_UNSUPPORTED, "*args and **kwargs in calls are not supported");
            goto fail;
        }
        if (cur(p)->kind == JK_NAME && is_op(peek(p), "=")) {
            struct jn *kw = node(p, JN_KWARG, cur(p));
            if (!kw || !(kw->name = tok_name(p, cur(p))))
                goto fail;
            next(p);
            next(p);
            if (!(kw->a = parse_expression(p, true)) || !vb_push(p, &kwargs, kw))
                goto fail;
        } else {
            if (kwargs.n) {
                fail_at(p, open, CIT_ERR_FORMAT, "invalid syntax for function call expression");
                goto fail;
            }
            if (!vb_push(p, &args, parse_expression(p, true)))
                goto fail;
        }
        need_comma = true;
    }
    next(p);
    return vb_done(p, &args, &call->args) && vb_done(p, &kwargs, &call->kwargs);
fail:
    free(args.v);
    free(kwargs.v);
    return false;
}

static struct jn *parse_subscribed(struct ps *p)
{
    const struct jtok *t = cur(p);
    struct jn *start = NULL;
    if (!is_op(cur(p), ":")) {
        start = parse_expression(p, true);
        if (!start)
            return NULL;
        if (!is_op(cur(p), ":"))
            return start;
    }
    next(p); /* ':' */
    struct jn *sl = node(p, JN_SLICE, t);
    if (!sl)
        return NULL;
    sl->b = start;
    if (!is_op(cur(p), ":") && !is_op(cur(p), "]") && !is_op(cur(p), ",")) {
        if (!(sl->c = parse_expression(p, true)))
            return NULL;
    }
    if (skip_op(p, ":")) {
        if (!is_op(cur(p), "]") && !is_op(cur(p), ",")) {
            if (!(sl->d = parse_expression(p, true)))
                return NULL;
        }
    }
    return sl;
}

static struct jn *parse_subscript(struct ps *p, struct jn *obj)
{
    const struct jtok *t = cur(p);
    if (skip_op(p, ".")) {
        const struct jtok *a = cur(p);
        if (a->kind == JK_NAME) {
            struct jn *g = node(p, JN_GETATTR, t);
            if (!g || !(g->name = tok_name(p, a)))
                return NULL;
            g->a = obj;
            next(p);
            return g;
        }
        if (a->kind == JK_INT) {
            struct jn *g = node(p, JN_GETITEM, t), *k = node(p, JN_CONST, a);
            if (!g || !k)
                return NULL;
            k->cval = jv_int(a->i);
            g->a = obj;
            g->b = k;
            next(p);
            return g;
        }
        return unexpected(p, "name or number");
    }
    next(p); /* '[' */
    struct vb items = {0};
    while (!is_op(cur(p), "]")) {
        if (items.n && !expect_op(p, ","))
            goto fail;
        if (is_op(cur(p), "]"))
            break;
        if (!vb_push(p, &items, parse_subscribed(p)))
            goto fail;
    }
    next(p);
    struct jn *g = node(p, JN_GETITEM, t);
    if (!g)
        goto fail;
    g->a = obj;
    if (items.n == 1) {
        g->b = items.v[0];
        free(items.v);
    } else {
        struct jn *tu = node(p, JN_TUPLE, t);
        if (!tu || !vb_done(p, &items, &tu->args))
            goto fail;
        g->b = tu;
    }
    return g;
fail:
    free(items.v);
    return NULL;
}

/* n(...): a call node whose errors point at what is called, not at its '('. */
static struct jn *parse_call(struct ps *p, struct jn *n)
{
    struct jn *c = node(p, JN_CALL, cur(p));
    if (!c)
        return NULL;
    c->line = n->line;
    c->col = n->col;
    c->a = n;
    return parse_call_args(p, c) ? c : NULL;
}

static struct jn *parse_postfix(struct ps *p, struct jn *n)
{
    while (n) {
        if (is_op(cur(p), ".") || is_op(cur(p), "[")) {
            n = parse_subscript(p, n);
        } else if (is_op(cur(p), "(")) {
            n = parse_call(p, n);
        } else {
            break;
        }
    }
    return n;
}

/* Dotted filter / test names ("a.b") are joined as Jinja does. */
static struct jstr *dotted_name(struct ps *p)
{
    const struct jtok *t = cur(p);
    if (t->kind != JK_NAME) {
        unexpected(p, "name");
        return NULL;
    }
    char buf[128];
    size_t n = 0;
    for (;;) {
        const struct jtok *k = cur(p);
        if (n + k->n + 1 >= sizeof buf) {
            fail_at(p, k, CIT_ERR_FORMAT, "name too long");
            return NULL;
        }
        memcpy(buf + n, k->p, k->n);
        n += k->n;
        next(p);
        if (!is_op(cur(p), ".") || peek(p)->kind != JK_NAME)
            break;
        buf[n++] = '.';
        next(p);
    }
    struct jstr *s = jarena_str(p->arena, buf, n);
    if (!s)
        fail_at(p, t, CIT_ERR_NOMEM, "out of memory");
    return s;
}

static struct jn *parse_filter(struct ps *p, struct jn *n, bool start_inline)
{
    while (is_op(cur(p), "|") || start_inline) {
        if (!start_inline)
            next(p);
        start_inline = false;
        const struct jtok *t = cur(p);
        struct jn *f = node(p, JN_FILTER, t);
        if (!f || !(f->name = dotted_name(p)))
            return NULL;
        int id = jfilter_find(f->name->s, f->name->len);
        if (id < 0)
            return fail_at(p, t, CIT_ERR_UNSUPPORTED, "no filter named '%s'", f->name->s);
        f->fid = (uint16_t)id;
        f->a = n;
        if (is_op(cur(p), "(") && !parse_call_args(p, f))
            return NULL;
        n = f;
    }
    return n;
}

static struct jn *parse_test(struct ps *p, struct jn *n)
{
    const struct jtok *t = cur(p);
    next(p); /* 'is' */
    struct jn *te = node(p, JN_TEST, t);
    if (!te)
        return NULL;
    if (skip_name(p, "not"))
        te->op = 1;
    const struct jtok *nt = cur(p);
    if (!(te->name = dotted_name(p)))
        return NULL;
    int id = jtest_find(te->name->s, te->name->len);
    if (id < 0)
        return fail_at(p, nt, CIT_ERR_UNSUPPORTED, "no test named '%s'", te->name->s);
    te->fid = (uint16_t)id;
    te->a = n;
    const struct jtok *c = cur(p);
    if (is_op(c, "(")) {
        if (!parse_call_args(p, te))
            return NULL;
    } else if ((c->kind == JK_NAME || c->kind == JK_STRING || c->kind == JK_INT || c->kind == JK_FLOAT ||
                is_op(c, "(") || is_op(c, "[") || is_op(c, "{")) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is"))
            return fail_at(p, c, CIT_ERR_FORMAT, "you cannot chain multiple tests with is");
        struct jn *arg = parse_postfix(p, parse_primary(p, false));
        if (!arg)
            return NULL;
        te->args.v = jarena_alloc(p->arena, sizeof *te->args.v);
        if (!te->args.v)
            return fail_at(p, c, CIT_ERR_NOMEM, "out of memory");
        te->args.v[0] = arg;
        te->args.n = 1;
    }
    return te;
}

static struct jn *parse_filter_expr(struct ps *p, struct jn *n)
{
    while (n) {
        if (is_op(cur(p), "|")) {
            n = parse_filter(p, n, false);
        } else if (is_name(cur(p), "is")) {
            n = parse_test(p, n);
        } else if (is_op(cur(p), "(")) {
            n = parse_call(p, n);
        } else {
            break;
        }
    }
    return n;
}

static struct jn *parse_list(struct ps *p)
{
    struct jn *l = node(p, JN_LIST, cur(p));
    if (!l)
        return NULL;
    next(p);
    struct vb items = {0};
    while (!is_op(cur(p), "]")) {
        if (items.n && !expect_op(p, ","))
            goto fail;
        if (is_op(cur(p), "]"))
            break;
        if (!vb_push(p, &items, parse_expression(p, true)))
            goto fail;
    }
    next(p);
    return vb_done(p, &items, &l->args) ? l : NULL;
fail:
    free(items.v);
    return NULL;
}

static struct jn *parse_dict(struct ps *p)
{
    struct jn *d = node(p, JN_DICT, cur(p));
    if (!d)
        return NULL;
    next(p);
    struct vb items = {0};
    while (!is_op(cur(p), "}")) {
        if (items.n && !expect_op(p, ","))
            goto fail;
        if (is_op(cur(p), "}"))
            break;
        struct jn *pair = node(p, JN_PAIR, cur(p));
        if (!pair || !(pair->a = parse_expression(p, true)) || !expect_op(p, ":") ||
            !(pair->b = parse_expression(p, true)) || !vb_push(p, &items, pair))
            goto fail;
    }
    next(p);
    return vb_done(p, &items, &d->args) ? d : NULL;
fail:
    free(items.v);
    return NULL;
}

static struct jn *parse_primary(struct ps *p, bool with_namespace)
{
    if (!enter(p))
        return NULL;
    const struct jtok *t = cur(p);
    struct jn *n = NULL;
    if (t->kind == JK_NAME) {
        if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") || is_name(t, "False")) {
            if ((n = node(p, JN_CONST, t)))
                n->cval = jv_bool(t->p[0] == 't' || t->p[0] == 'T');
            next(p);
        } else if (is_name(t, "none") || is_name(t, "None")) {
            if ((n = node(p, JN_CONST, t)))
                n->cval = JV_NONE_V;
            next(p);
        } else if (with_namespace && is_op(peek(p), ".")) {
            struct jn *var = node(p, JN_NAME, t);
            n = node(p, JN_NSREF, t);
            if (!var || !n || !(var->name = tok_name(p, t)))
                return leave(p, NULL);
            next(p);
            next(p);
            if (cur(p)->kind != JK_NAME)
                return leave(p, unexpected(p, "name"));
            if (!(n->name = tok_name(p, cur(p))))
                return leave(p, NULL);
            n->a = var;
            next(p);
        } else {
            if ((n = node(p, JN_NAME, t)) && !(n->name = tok_name(p, t)))
                n = NULL;
            next(p);
        }
    } else if (t->kind == JK_STRING) {
        /* Adjacent literals concatenate, as in Python. */
        size_t total = 0, k = p->i;
        while (p->toks.v[k].kind == JK_STRING)
            total += p->toks.v[k++].str->len;
        if ((n = node(p, JN_CONST, t))) {
            if (k == p->i + 1) {
                n->cval = jv_str(t->str);
            } else {
                char *buf = malloc(total + 1);
                if (!buf)
                    return leave(p, fail_at(p, t, CIT_ERR_NOMEM, "out of memory"));
                size_t o = 0;
                for (size_t j = p->i; j < k; j++) {
                    memcpy(buf + o, p->toks.v[j].str->s, p->toks.v[j].str->len);
                    o += p->toks.v[j].str->len;
                }
                struct jstr *s = jarena_str(p->arena, buf, o);
                free(buf);
                if (!s)
                    return leave(p, fail_at(p, t, CIT_ERR_NOMEM, "out of memory"));
                n->cval = jv_str(s);
            }
        }
        p->i = k;
    } else if (t->kind == JK_INT || t->kind == JK_FLOAT) {
        if ((n = node(p, JN_CONST, t)))
            n->cval = t->kind == JK_INT ? jv_int(t->i) : jv_float(t->f);
        next(p);
    } else if (is_op(t, "(")) {
        next(p);
        n = parse_tuple(p, false, true, NULL, true, false);
        if (n && !expect_op(p, ")"))
            n = NULL;
    } else if (is_op(t, "[")) {
        n = parse_list(p);
    } else if (is_op(t, "{")) {
        n = parse_dict(p);
    } else {
        n = unexpected(p, NULL);
    }
    return leave(p, n);
}

static struct jn *parse_unary(struct ps *p, bool with_filter)
{
    if (!enter(p))
        return NULL;
    const struct jtok *t = cur(p);
    struct jn *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(p);
        n = node(p, t->op[0] == '-' ? JN_NEG : JN_POS, t);
        if (n && !(n->a = parse_unary(p, false)))
            n = NULL;
    } else {
        n = parse_primary(p, false);
    }
    n = parse_postfix(p, n);
    if (with_filter)
        n = parse_filter_expr(p, n);
    return leave(p, n);
}

static struct jn *binop(struct ps *p, const struct jtok *t, int op, struct jn *a, struct jn *b)
{
    if (!a || !b)
        return NULL;
    struct jn *n = node(p, JN_BINOP, t);
    if (!n)
        return NULL;
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    return n;
}

static struct jn *parse_pow(struct ps *p)
{
    struct jn *left = parse_unary(p, true);
    while (left && is_op(cur(p), "**")) {
        const struct jtok *t = cur(p);
        next(p);
        left = binop(p, t, JOP_POW, left, parse_unary(p, true));
    }
    return left;
}

static struct jn *parse_math2(struct ps *p)
{
    struct jn *left = parse_pow(p);
    for (;;) {
        const struct jtok *t = cur(p);
        int op = is_op(t, "*") ? JOP_MUL : is_op(t, "/") ? JOP_DIV : is_op(t, "//") ? JOP_FLOORDIV
                 : is_op(t, "%") ? JOP_MOD : -1;
        if (!left || op < 0)
            return left;
        next(p);
        left = binop(p, t, op, left, parse_pow(p));
    }
}

static struct jn *parse_concat(struct ps *p)
{
    const struct jtok *t = cur(p);
    struct jn *first = parse_math2(p);
    if (!first || !is_op(cur(p), "~"))
        return first;
    struct vb items = {0};
    vb_push(p, &items, first);
    while (is_op(cur(p), "~")) {
        next(p);
        if (!vb_push(p, &items, parse_math2(p))) {
            free(items.v);
            return NULL;
        }
    }
    struct jn *c = node(p, JN_CONCAT, t);
    if (!c || !vb_done(p, &items, &c->args)) {
        free(items.v);
        return NULL;
    }
    return c;
}

static struct jn *parse_math1(struct ps *p)
{
    struct jn *left = parse_concat(p);
    for (;;) {
        const struct jtok *t = cur(p);
        int op = is_op(t, "+") ? JOP_ADD : is_op(t, "-") ? JOP_SUB : -1;
        if (!left || op < 0)
            return left;
        next(p);
        left = binop(p, t, op, left, parse_concat(p));
    }
}

static struct jn *parse_compare(struct ps *p)
{
    const struct jtok *t = cur(p);
    struct jn *expr = parse_math1(p);
    if (!expr)
        return NULL;
    struct vb ops = {0};
    for (;;) {
        const struct jtok *o = cur(p);
        int op = is_op(o, "==") ? JOP_EQ : is_op(o, "!=") ? JOP_NE : is_op(o, "<") ? JOP_LT : is_op(o, "<=") ? JOP_LE
                 : is_op(o, ">") ? JOP_GT : is_op(o, ">=") ? JOP_GE : -1;
        if (op >= 0) {
            next(p);
        } else if (is_name(o, "in")) {
            op = JOP_IN;
            next(p);
        } else if (is_name(o, "not") && is_name(peek(p), "in")) {
            op = JOP_NOTIN;
            next(p);
            next(p);
        } else {
            break;
        }
        struct jn *operand = node(p, JN_OPERAND, o);
        if (!operand || !(operand->a = parse_math1(p)) || !vb_push(p, &ops, operand)) {
            free(ops.v);
            return NULL;
        }
        operand->op = (uint8_t)op;
    }
    if (!ops.n)
        return expr;
    struct jn *c = node(p, JN_COMPARE, t);
    if (!c || !vb_done(p, &ops, &c->args)) {
        free(ops.v);
        return NULL;
    }
    c->a = expr;
    return c;
}

static struct jn *parse_not(struct ps *p)
{
    if (!enter(p))
        return NULL;
    const struct jtok *t = cur(p);
    if (is_name(t, "not")) {
        next(p);
        struct jn *n = node(p, JN_NOT, t);
        if (n && !(n->a = parse_not(p)))
            n = NULL;
        return leave(p, n);
    }
    return leave(p, parse_compare(p));
}

static struct jn *parse_logic(struct ps *p, bool is_or)
{
    const struct jtok *t = cur(p);
    struct jn *left = is_or ? parse_logic(p, false) : parse_not(p);
    while (left && is_name(cur(p), is_or ? "or" : "and")) {
        next(p);
        struct jn *right = is_or ? parse_logic(p, false) : parse_not(p);
        struct jn *n = right ? node(p, is_or ? JN_OR : JN_AND, t) : NULL;
        if (!n)
            return NULL;
        n->a = left;
        n->b = right;
        left = n;
        t = cur(p);
    }
    return left;
}

static struct jn *parse_condexpr(struct ps *p)
{
    const struct jtok *t = cur(p);
    struct jn *expr1 = parse_logic(p, true);
    while (expr1 && is_name(cur(p), "if")) {
        next(p);
        struct jn *c = node(p, JN_COND, t);
        if (!c || !(c->a = parse_logic(p, true)))
            return NULL;
        c->b = expr1;
        if (skip_name(p, "else") && !(c->c = parse_condexpr(p)))
            return NULL;
        expr1 = c;
        t = cur(p);
    }
    return expr1;
}

static struct jn *parse_expression(struct ps *p, bool with_condexpr)
{
    if (!enter(p))
        return NULL;
    return leave(p, with_condexpr ? parse_condexpr(p) : parse_logic(p, true));
}

static bool tuple_end(const struct ps *p, const char *extra_end)
{
    const struct jtok *t = cur(p);
    if (t->kind == JK_VAR_END || t->kind == JK_BLOCK_END || is_op(t, ")"))
        return true;
    return extra_end && is_name(t, extra_end);
}

static struct jn *parse_tuple(struct ps *p, bool simplified, bool with_condexpr, const char *extra_end,
                       bool explicit_parens, bool with_namespace)
{
    const struct jtok *t = cur(p);
    struct vb items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n && !expect_op(p, ","))
            goto fail;
        if (tuple_end(p, extra_end))
            break;
        struct jn *e = simplified ? parse_primary(p, with_namespace) : parse_expression(p, with_condexpr);
        if (!vb_push(p, &items, e))
            goto fail;
        if (is_op(cur(p), ","))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (items.n) {
            struct jn *e = items.v[0];
            free(items.v);
            return e;
        }
        if (!explicit_parens) {
            unexpected(p, "an expression");
            goto fail;
        }
    }
    struct jn *tu = node(p, JN_TUPLE, t);
    if (!tu || !vb_done(p, &items, &tu->args))
        goto fail;
    return tu;
fail:
    free(items.v);
    return NULL;
}

/* ---------------------------------------------------------------- statements */

static bool subparse(struct ps *p, const char *const *end_names, struct jnvec *out);

static bool check_target(struct ps *p, struct jn *t, bool allow_ns)
{
    if (!t)
        return false;
    if (t->kind == JN_NAME || (allow_ns && t->kind == JN_NSREF))
        return true;
    if (t->kind == JN_TUPLE) {
        for (uint32_t i = 0; i < t->args.n; i++)
            if (t->args.v[i]->kind != JN_NAME && !(allow_ns && t->args.v[i]->kind == JN_NSREF)) {
                fail_at(p, cur(p), CIT_ERR_FORMAT, "can't assign to this expression");
                return false;
            }
        return true;
    }
    fail_at(p, cur(p), CIT_ERR_FORMAT, "can't assign to this expression");
    return false;
}

/* Body of a block statement: optional ':', block end, statements up to one of end_names. */
static bool parse_body(struct ps *p, const char *const *end_names, struct jnvec *out, bool drop_needle)
{
    skip_op(p, ":");
    if (!expect_kind(p, JK_BLOCK_END) || !subparse(p, end_names, out))
        return false;
    if (drop_needle)
        next(p);
    return true;
}

static bool parse_signature(struct ps *p, struct jn *n)
{
    if (!expect_op(p, "("))
        return false;
    struct vb params = {0};
    bool defaults = false;
    while (!is_op(cur(p), ")")) {
        if (params.n && !expect_op(p, ","))
            goto fail;
        if (cur(p)->kind != JK_NAME) {
            unexpected(p, "parameter name");
            goto fail;
        }
        struct jn *par = node(p, JN_PARAM, cur(p));
        if (!par || !(par->name = tok_name(p, cur(p))))
            goto fail;
        next(p);
        if (skip_op(p, "=")) {
            if (!(par->a = parse_expression(p, true)))
                goto fail;
            defaults = true;
        } else if (defaults) {
            fail_at(p, cur(p), CIT_ERR_FORMAT, "non-default argument follows default argument");
            goto fail;
        }
        if (!vb_push(p, &params, par))
            goto fail;
    }
    next(p);
    return vb_done(p, &params, &n->kwargs);
fail:
    free(params.v);
    return false;
}

static struct jn *parse_statement(struct ps *p);

static struct jn *parse_for(struct ps *p, const struct jtok *t)
{
    struct jn *n = node(p, JN_FOR, t);
    if (!n)
        return NULL;
    n->a = parse_tuple(p, true, true, "in", false, false);
    if (!check_target(p, n->a, false))
        return NULL;
    if (!skip_name(p, "in"))
        return unexpected(p, "'in'");
    if (!(n->b = parse_tuple(p, false, false, "recursive", false, false)))
        return NULL;
    if (skip_name(p, "if") && !(n->c = parse_expression(p, true)))
        return NULL;
    if (is_name(cur(p), "recursive"))
        return fail_at(p, cur(p), CIT_ERR_UNSUPPORTED, "recursive loops are not supported");
    static const char *const ends[] = {"endfor", "else", NULL};
    p->loops++;
    bool ok = parse_body(p, ends, &n->args, false);
    p->loops--;
    if (!ok)
        return NULL;
    bool is_else = is_name(cur(p), "else");
    next(p);
    if (is_else) {
        static const char *const ends2[] = {"endfor", NULL};
        if (!parse_body(p, ends2, &n->body2, true))
            return NULL;
    }
    return n;
}

static struct jn *parse_if(struct ps *p, const struct jtok *t)
{
    struct jn *root = node(p, JN_IF, t), *n = root;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const ends2[] = {"endif", NULL};
    while (n) {
        if (!(n->a = parse_tuple(p, false, false, NULL, false, false)) || !parse_body(p, ends, &n->args, false))
            return NULL;
        const struct jtok *k = cur(p);
        next(p);
        if (is_name(k, "elif")) {
            struct jn *e = node(p, JN_IF, cur(p));
            if (!e)
                return NULL;
            n->body2.v = jarena_alloc(p->arena, sizeof *n->body2.v);
            if (!n->body2.v)
                return fail_at(p, k, CIT_ERR_NOMEM, "out of memory");
            n->body2.v[0] = e;
            n->body2.n = 1;
            n = e;
            continue;
        }
        if (is_name(k, "else") && !parse_body(p, ends2, &n->body2, true))
            return NULL;
        break;
    }
    return root;
}

static struct jn *parse_set(struct ps *p, const struct jtok *t)
{
    struct jn *target = parse_tuple(p, true, true, NULL, false, true);
    if (!check_target(p, target, true))
        return NULL;
    if (skip_op(p, "=")) {
        struct jn *n = node(p, JN_SET, t);
        if (!n || !(n->b = parse_tuple(p, false, true, NULL, false, false)))
            return NULL;
        n->a = target;
        return n;
    }
    struct jn *n = node(p, JN_SETBLOCK, t);
    if (!n)
        return NULL;
    n->a = target;
    if (is_op(cur(p), "|") && !(n->b = parse_filter(p, NULL, false)))
        return NULL;
    static const char *const ends[] = {"endset", NULL};
    return parse_body(p, ends, &n->args, true) ? n : NULL;
}

static struct jn *parse_macro_like(struct ps *p, const struct jtok *t, bool is_call)
{
    struct jn *n = node(p, is_call ? JN_CALLBLOCK : JN_MACRO, t);
    if (!n)
        return NULL;
    int saved_loops = p->loops;
    p->loops = 0;
    if (is_call) {
        if (is_op(cur(p), "(") && !parse_signature(p, n))
            return NULL;
        const struct jtok *ct = cur(p);
        if (!(n->a = parse_expression(p, true)))
            return NULL;
        if (n->a->kind != JN_CALL)
            return fail_at(p, ct, CIT_ERR_FORMAT, "expected a call after 'call'");
    } else {
        if (cur(p)->kind != JK_NAME)
            return unexpected(p, "macro name");
        if (!(n->name = tok_name(p, cur(p))))
            return NULL;
        next(p);
        if (!parse_signature(p, n))
            return NULL;
    }
    static const char *const mends[] = {"endmacro", NULL};
    static const char *const cends[] = {"endcall", NULL};
    bool ok = parse_body(p, is_call ? cends : mends, &n->args, true);
    p->loops = saved_loops;
    return ok ? n : NULL;
}

static struct jn *parse_with(struct ps *p, const struct jtok *t)
{
    struct jn *n = node(p, JN_WITH, t);
    if (!n)
        return NULL;
    struct vb assigns = {0};
    while (cur(p)->kind != JK_BLOCK_END) {
        if (assigns.n && !expect_op(p, ","))
            goto fail;
        if (cur(p)->kind != JK_NAME) {
            unexpected(p, "name");
            goto fail;
        }
        struct jn *kw = node(p, JN_KWARG, cur(p));
        if (!kw || !(kw->name = tok_name(p, cur(p))))
            goto fail;
        next(p);
        if (!expect_op(p, "=") || !(kw->a = parse_expression(p, true)) || !vb_push(p, &assigns, kw))
            goto fail;
    }
    if (!vb_done(p, &assigns, &n->kwargs))
        return NULL;
    static const char *const ends[] = {"endwith", NULL};
    return parse_body(p, ends, &n->args, true) ? n : NULL;
fail:
    free(assigns.v);
    return NULL;
}

static struct jn *parse_statement(struct ps *p)
{
    const struct jtok *t = cur(p);
    if (t->kind != JK_NAME)
        return fail_at(p, t, CIT_ERR_FORMAT, "tag name expected");
    if (!enter(p))
        return NULL;
    next(p);
    struct jn *n;
    if (is_name(t, "for")) {
        n = parse_for(p, t);
    } else if (is_name(t, "if")) {
        n = parse_if(p, t);
    } else if (is_name(t, "set")) {
        n = parse_set(p, t);
    } else if (is_name(t, "macro")) {
        n = parse_macro_like(p, t, false);
    } else if (is_name(t, "call")) {
        n = parse_macro_like(p, t, true);
    } else if (is_name(t, "filter")) {
        n = node(p, JN_FILTERBLOCK, t);
        static const char *const ends[] = {"endfilter", NULL};
        if (n && (!(n->b = parse_filter(p, NULL, true)) || !parse_body(p, ends, &n->args, true)))
            n = NULL;
    } else if (is_name(t, "with")) {
        n = parse_with(p, t);
    } else if (is_name(t, "break") || is_name(t, "continue")) {
        if (!p->loops)
            n = fail_at(p, t, CIT_ERR_FORMAT, "'%.*s' outside of a loop", (int)t->n, t->p);
        else
            n = node(p, t->p[0] == 'b' ? JN_BREAK : JN_CONTINUE, t);
    } else if (is_name(t, "extends") || is_name(t, "include") || is_name(t, "import") || is_name(t, "from") ||
               is_name(t, "block")) {
        n = fail_at(p, t, CIT_ERR_UNSUPPORTED, "'%.*s' is not supported: templates have no file access", (int)t->n,
                    t->p);
    } else {
        n = fail_at(p, t, CIT_ERR_FORMAT, "unknown tag '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
    }
    return leave(p, n);
}

static bool subparse(struct ps *p, const char *const *end_names, struct jnvec *out)
{
    struct vb body = {0};
    for (;;) {
        const struct jtok *t = cur(p);
        if (t->kind == JK_EOF) {
            if (end_names) {
                char want[128];
                size_t o = 0;
                for (int i = 0; end_names[i] && o < sizeof want - 24; i++)
                    o += (size_t)snprintf(want + o, sizeof want - o, "%s'%s'", i ? " or " : "", end_names[i]);
                fail_at(p, t, CIT_ERR_FORMAT, "unexpected end of template, expected %s", want);
                goto fail;
            }
            break;
        }
        if (t->kind == JK_DATA) {
            struct jn *n = node(p, JN_TEXT, t);
            struct jstr *s = n ? jarena_str(p->arena, t->p, t->n) : NULL;
            if (!s) {
                fail_at(p, t, CIT_ERR_NOMEM, "out of memory");
                goto fail;
            }
            n->cval = jv_str(s);
            if (!vb_push(p, &body, n))
                goto fail;
            next(p);
        } else if (t->kind == JK_VAR_BEGIN) {
            next(p);
            struct jn *n = node(p, JN_OUTPUT, t);
            if (!n || !(n->a = parse_tuple(p, false, true, NULL, false, false)) || !expect_kind(p, JK_VAR_END) ||
                !vb_push(p, &body, n))
                goto fail;
        } else if (t->kind == JK_BLOCK_BEGIN) {
            next(p);
            bool is_end = false;
            for (int i = 0; end_names && end_names[i]; i++)
                is_end |= is_name(cur(p), end_names[i]);
            if (is_end)
                break;
            struct jn *n = parse_statement(p);
            if (!n || !expect_kind(p, JK_BLOCK_END) || !vb_push(p, &body, n))
                goto fail;
        } else {
            unexpected(p, NULL);
            goto fail;
        }
    }
    return vb_done(p, &body, out);
fail:
    free(body.v);
    return false;
}

enum cit_status jparse(const char *src, size_t len, struct jtpl **out, char *err, size_t errlen)
{
    *out = NULL;
    struct jtpl *t = calloc(1, sizeof *t);
    if (!t)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "template: out of memory");
    struct ps p = {.arena = &t->arena, .err = err, .errlen = errlen, .st = CIT_OK};
    enum cit_status st = jlex(src, len, &t->arena, &p.toks, err, errlen);
    if (st != CIT_OK) {
        jtpl_free(t);
        return st;
    }
    bool ok = subparse(&p, NULL, &t->body);
    jtoks_free(&p.toks);
    if (ok) {
        t->s_loop = jarena_str(&t->arena, "loop", 4);
        t->s_caller = jarena_str(&t->arena, "caller", 6);
        if (!t->s_loop || !t->s_caller) {
            ok = false;
            p.st = cit_fail(CIT_ERR_NOMEM, err, errlen, "template: out of memory");
        }
    }
    if (!ok) {
        jtpl_free(t);
        return p.st != CIT_OK ? p.st : CIT_ERR_FORMAT;
    }
    *out = t;
    return CIT_OK;
}

void jtpl_free(struct jtpl *t)
{
    if (!t)
        return;
    jarena_free(&t->arena);
    free(t);
}
