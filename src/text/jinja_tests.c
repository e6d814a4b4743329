/* jinja_tests.c: Jinja2's builtin tests (`x is defined`, `x is string`, ...).
 *
 * Python's notions apply: `iterable` is true for strings, lists, dicts and
 * Undefined; `sequence` excludes generators and dict views; `integer`
 * excludes booleans while `number` includes them. Names resolve to rows at
 * load time, so an unknown test is a load error. */
#include <stdio.h>
#include <string.h>

#include "text/jinja_internal.h"

/* ---------------------------------------------------------------- tests */

enum {
    T_DEFINED, T_UNDEFINED, T_NONE, T_BOOLEAN, T_FALSE, T_TRUE, T_INTEGER, T_FLOAT, T_NUMBER, T_STRING,
    T_MAPPING, T_ITERABLE, T_SEQUENCE, T_CALLABLE, T_SAMEAS, T_ESCAPED, T_IN, T_EQ, T_NE, T_LT, T_LE, T_GT,
    T_GE, T_ODD, T_EVEN, T_DIVISIBLEBY, T_LOWER, T_UPPER, T_FILTER, T_TEST,
};

static const struct {
    const char *name;
    int id;
    int nargs;
} tests[] = {
    {"defined", T_DEFINED, 0},   {"undefined", T_UNDEFINED, 0}, {"none", T_NONE, 0},
    {"boolean", T_BOOLEAN, 0},   {"false", T_FALSE, 0},         {"true", T_TRUE, 0},
    {"integer", T_INTEGER, 0},   {"float", T_FLOAT, 0},         {"number", T_NUMBER, 0},
    {"string", T_STRING, 0},     {"mapping", T_MAPPING, 0},     {"iterable", T_ITERABLE, 0},
    {"sequence", T_SEQUENCE, 0}, {"callable", T_CALLABLE, 0},   {"sameas", T_SAMEAS, 1},
    {"escaped", T_ESCAPED, 0},   {"in", T_IN, 1},               {"eq", T_EQ, 1},
    {"equalto", T_EQ, 1},        {"==", T_EQ, 1},               {"ne", T_NE, 1},
    {"!=", T_NE, 1},             {"lt", T_LT, 1},               {"lessthan", T_LT, 1},
    {"<", T_LT, 1},              {"le", T_LE, 1},               {"<=", T_LE, 1},
    {"gt", T_GT, 1},             {"greaterthan", T_GT, 1},      {">", T_GT, 1},
    {"ge", T_GE, 1},             {">=", T_GE, 1},               {"odd", T_ODD, 0},
    {"even", T_EVEN, 0},         {"divisibleby", T_DIVISIBLEBY, 1}, {"lower", T_LOWER, 0},
    {"upper", T_UPPER, 0},       {"filter", T_FILTER, 1},       {"test", T_TEST, 1},
};

int jtest_find(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (strlen(tests[i].name) == n && memcmp(tests[i].name, name, n) == 0)
            return (int)i;
    return -1;
}

static bool str_case_test(const struct jstr *s, bool want_upper)
{
    bool cased = false;
    size_t i = 0;
    while (i < s->len) {
        uint32_t c = ju_decode(s->s, s->len, &i);
        if (want_upper ? ju_islower(c) : ju_isupper(c))
            return false;
        cased |= want_upper ? ju_isupper(c) : ju_islower(c);
    }
    return cased;
}

int jtest_apply(struct jrt *rt, const struct jn *at, int row, struct jv v, struct jv *args, size_t nargs, bool *res)
{
    if (row < 0 || (size_t)row >= sizeof tests / sizeof tests[0])
        return jerr(rt, at, CIT_ERR_NOT_FOUND, "unknown test");
    if (nargs != (size_t)tests[row].nargs)
        return jerr(rt, at, CIT_ERR_TYPE, "test '%s' takes %d argument(s), %zu given", tests[row].name,
                    tests[row].nargs, nargs);
    struct jv o = nargs ? args[0] : JV_UNDEFINED;
    int c = 0;
    switch (tests[row].id) {
    case T_DEFINED: *res = v.t != JT_UNDEF; return 0;
    case T_UNDEFINED: *res = v.t == JT_UNDEF; return 0;
    case T_NONE: *res = v.t == JT_NONE; return 0;
    case T_BOOLEAN: *res = v.t == JT_BOOL; return 0;
    case T_FALSE: *res = v.t == JT_BOOL && !v.u.b; return 0;
    case T_TRUE: *res = v.t == JT_BOOL && v.u.b; return 0;
    case T_INTEGER: *res = v.t == JT_INT; return 0;
    case T_FLOAT: *res = v.t == JT_FLOAT; return 0;
    case T_NUMBER: *res = v.t == JT_INT || v.t == JT_FLOAT || v.t == JT_BOOL; return 0;
    case T_STRING: *res = v.t == JT_STR; return 0;
    case T_MAPPING: *res = v.t == JT_DICT; return 0;
    case T_ITERABLE: *res = v.t == JT_STR || v.t == JT_LIST || v.t == JT_DICT || v.t == JT_UNDEF; return 0;
    case T_SEQUENCE:
        *res = v.t == JT_STR || (v.t == JT_LIST && jl_seq(v.u.l)) || v.t == JT_DICT || v.t == JT_UNDEF;
        return 0;
    case T_CALLABLE: *res = v.t == JT_MACRO || v.t == JT_FUNC || v.t == JT_METHOD; return 0;
    case T_ESCAPED: *res = false; return 0;
    case T_SAMEAS:
        if (v.t != o.t)
            *res = false;
        else if (jv_is_obj(v))
            *res = v.u.o == o.u.o;
        else if (v.t == JT_STR)
            *res = v.u.s == o.u.s;
        else
            return jv_eq(rt, at, v, o, res);
        return 0;
    case T_IN: return jop_contains(rt, at, o, v, res);
    case T_EQ: return jv_eq(rt, at, v, o, res);
    case T_NE:
        if (jv_eq(rt, at, v, o, res))
            return -1;
        *res = !*res;
        return 0;
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE:
        if (jv_cmp(rt, at, v, o, &c))
            return -1;
        *res = tests[row].id == T_LT ? c < 0 : tests[row].id == T_LE ? c <= 0 : tests[row].id == T_GT ? c > 0 : c >= 0;
        return 0;
    case T_ODD:
    case T_EVEN: {
        if (v.t != JT_INT && v.t != JT_BOOL)
            return v.t == JT_UNDEF ? jundef_fail(rt, at, v)
                                   : jerr(rt, at, CIT_ERR_TYPE, "odd/even need an integer, not '%s'", jv_type_name(v));
        int64_t i = v.t == JT_BOOL ? v.u.b : v.u.i;
        *res = ((i % 2) != 0) == (tests[row].id == T_ODD);
        return 0;
    }
    case T_DIVISIBLEBY: {
        struct jv r;
        if (jop_binary(rt, at, JOP_MOD, v, o, &r))
            return -1;
        *res = !jv_truthy(r);
        jv_drop(rt, r);
        return 0;
    }
    case T_LOWER:
    case T_UPPER: {
        struct jv s;
        if (jv_to_str(rt, at, v, &s))
            return -1;
        *res = str_case_test(s.u.s, tests[row].id == T_UPPER);
        jv_drop(rt, s);
        return 0;
    }
    case T_FILTER:
    case T_TEST:
        if (o.t != JT_STR)
            return jerr(rt, at, CIT_ERR_TYPE, "filter/test name must be a string");
        *res = (tests[row].id == T_FILTER ? jfilter_find(o.u.s->s, o.u.s->len) : jtest_find(o.u.s->s, o.u.s->len)) >= 0;
        return 0;
    default: return jerr(rt, at, CIT_ERR_NOT_FOUND, "unknown test");
    }
}
