/* jinja_internal.h: the pieces of the Jinja interpreter shared by its files.
 *
 * The interpreter is split by concept: jinja_unicode.c (UTF-8 and the few
 * Unicode tables Python's str methods need), jinja_value.c (the value model:
 * refcounted strings, lists, dicts, with every byte charged to the render's
 * memory budget), jinja_lex.c and jinja_parse.c (source -> tokens -> AST),
 * jinja_eval.c and jinja_ops.c (statements, expressions, operators),
 * jinja_filters.c and jinja_tests.c (filters, tests), jinja_strops.c (str
 * operations they share) and jinja_methods.c (str/dict methods, globals,
 * tojson). chat_template.c is the public face (citadel/template.h).
 *
 * Conventions inside the interpreter: a function that can fail returns int,
 * 0 on success and -1 on failure, after recording the first error in the
 * render state (struct jrt) or the parser. Values (struct jv) are passed by
 * value; a function that "takes" a value owns one reference to it, one that
 * "borrows" does not. Objects made by the parser are static (never freed by
 * refcounting, shared read-only between concurrent renders). */
#ifndef CITADEL_TEXT_JINJA_INTERNAL_H
#define CITADEL_TEXT_JINJA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "citadel/status.h"

/* ---------------------------------------------------------------- values */

enum jt {
    JT_UNDEF,  /* Jinja's Undefined; u.s optionally holds the reason */
    JT_NONE,
    JT_BOOL,
    JT_INT,    /* int64; overflow is an error, not a bigint */
    JT_FLOAT,
    JT_STR,
    JT_LIST,   /* also tuples (jlist.tuple), which differ only when printed */
    JT_DICT,   /* insertion-ordered mapping */
    JT_NS,     /* namespace(): a mutable dict reached through attributes */
    JT_MACRO,
    JT_FUNC,   /* a builtin global (range, namespace, ...): u.i is its id */
    JT_METHOD, /* a bound str/dict/list method or loop.cycle */
    JT_LOOP,   /* the `loop` variable of a for loop */
};

#define JH_STATIC 1u /* made by the parser: refcounting leaves it alone */

struct jhdr {
    uint32_t rc;
    uint16_t flags;
    uint16_t depth;  /* container nesting depth, bounded so frees stay shallow */
    size_t charged;  /* bytes charged to the render's memory budget */
};

struct jstr;
struct jlist;
struct jdict;
struct jmacro;
struct jmethod;
struct jloop;

struct jv {
    uint8_t t; /* enum jt */
    uint8_t m; /* strings: markupsafe.Markup (from safe/escape/tojson), which escapes what it is joined with */
    union {
        bool b;
        int64_t i;
        double f;
        struct jhdr *o;
        struct jstr *s;
        struct jlist *l;
        struct jdict *d;
        struct jmacro *m;
        struct jmethod *me;
        struct jloop *lp;
    } u;
};

struct jstr {
    struct jhdr h;
    size_t len;   /* bytes, excluding the NUL */
    size_t ncp;   /* code points (Python's len) */
    char s[];     /* valid UTF-8, NUL-terminated */
};

/* What a JT_LIST stands for in Python: they print, compare and index differently. */
enum jl_kind {
    JL_LIST,
    JL_TUPLE,
    JL_GEN,    /* a generator (map, select, ...): always true, no len(), no [i], not JSON */
    JL_ITEMS,  /* dict.items() / keys() / values() views: no [i], not JSON */
    JL_KEYS,
    JL_VALUES,
};

struct jlist {
    struct jhdr h;
    size_t len, cap;
    struct jv *v;
    uint8_t kind; /* enum jl_kind */
};

/* A list or tuple proper (indexable, sliceable, JSON-serializable). */
static inline bool jl_seq(const struct jlist *l) { return l->kind <= JL_TUPLE; }

struct jkv {
    struct jv k, v;
};

struct jdict {
    struct jhdr h;
    size_t len, cap;
    struct jkv *e;
    uint32_t *idx;    /* open-addressing index (slot -> entry+1), built past a few keys */
    size_t icap;      /* power of two, 0 without index */
    struct jdict *rprev, *rnext; /* namespaces: the render's registry */
};

struct jn;
struct jscope;

struct jmacro {
    struct jhdr h;
    const struct jn *def;     /* JN_MACRO or JN_CALLBLOCK node */
    struct jscope *closure;   /* scope the body sees as its parent */
    struct jv caller;         /* for call blocks: the caller() macro; else undefined */
};

enum jmeth_owner { JM_STR, JM_DICT, JM_LIST, JM_LOOP };

struct jmethod {
    struct jhdr h;
    struct jv recv;
    uint16_t owner; /* enum jmeth_owner */
    uint16_t id;    /* index into that owner's method table */
};

struct jloop {
    struct jhdr h;
    struct jv items;   /* the (filtered) list being iterated */
    size_t index0;
    size_t depth0;
};

/* ---------------------------------------------------------------- AST */

enum jn_kind {
    /* statements */
    JN_TEXT, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_MACRO, JN_CALLBLOCK,
    JN_FILTERBLOCK, JN_BREAK, JN_CONTINUE, JN_WITH,
    /* expressions */
    JN_CONST, JN_NAME, JN_NSREF, JN_GETATTR, JN_GETITEM, JN_SLICE, JN_CALL, JN_FILTER,
    JN_TEST, JN_BINOP, JN_NOT, JN_NEG, JN_POS, JN_AND, JN_OR, JN_COMPARE, JN_CONCAT,
    JN_COND, JN_LIST, JN_TUPLE, JN_DICT, JN_PAIR, JN_KWARG, JN_PARAM, JN_OPERAND,
};

enum jop {
    JOP_ADD, JOP_SUB, JOP_MUL, JOP_DIV, JOP_FLOORDIV, JOP_MOD, JOP_POW,
    JOP_EQ, JOP_NE, JOP_LT, JOP_LE, JOP_GT, JOP_GE, JOP_IN, JOP_NOTIN,
};

struct jnvec {
    struct jn **v;
    uint32_t n;
};

/* One AST node. Which fields mean what depends on kind; see jinja_parse.c. */
struct jn {
    uint8_t kind;     /* enum jn_kind */
    uint8_t op;       /* enum jop, or a flag (negated test, ...) */
    uint16_t fid;     /* resolved filter / test id */
    uint32_t line, col;
    struct jstr *name; /* identifier, attribute, filter/test/macro name (static) */
    struct jv cval;    /* JN_CONST / JN_TEXT value (static) */
    struct jn *a, *b, *c, *d;
    struct jnvec args;   /* positional args, items, statements of a body, params */
    struct jnvec kwargs; /* JN_KWARG nodes */
    struct jnvec body2;  /* else branch */
};

/* Bump allocator for everything the parser makes; freed as a whole. */
struct jarena {
    struct jachunk *head;
    size_t total;
};

void *jarena_alloc(struct jarena *a, size_t n); /* zeroed, 16-aligned; NULL on OOM */
void jarena_free(struct jarena *a);
/* A static string (JH_STATIC) in the arena; NULL on OOM. */
struct jstr *jarena_str(struct jarena *a, const char *p, size_t n);

struct jtpl {
    struct jnvec body;
    struct jarena arena;
    struct jstr *s_loop, *s_caller; /* names the evaluator binds itself */
};

/* ---------------------------------------------------------------- render state */

struct jscope {
    struct jhdr h;
    struct jscope *parent;
    struct jdict *vars;
    struct jscope *rprev, *rnext;
};

struct jbuf {
    char *p;
    size_t len, cap;
    size_t charged;
};

struct jrt {
    const struct jtpl *tpl;
    size_t mem_used, mem_limit;
    uint64_t steps, max_steps;
    uint32_t depth, max_depth;
    size_t max_str;          /* largest string / output, bytes */
    time_t now;              /* strftime_now's clock */
    struct jscope *root;
    struct jscope *scopes;   /* registry of live scopes */
    struct jdict *nss;       /* registry of live namespaces */
    enum cit_status st;      /* first error */
    bool failed;
    bool raised;             /* the error came from raise_exception */
    char *err;
    size_t errlen;
};

/* Records the first error (later ones are ignored); returns -1. */
int jerr(struct jrt *rt, const struct jn *at, enum cit_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Charges steps against the budget; -1 (with an error) when exhausted. */
int jstep(struct jrt *rt, const struct jn *at, uint64_t n);

/* ---------------------------------------------------------------- jinja_unicode.c */

/* Decodes one code point of valid UTF-8 at s[*i] (i < len), advancing *i. */
uint32_t ju_decode(const char *s, size_t len, size_t *i);
/* Encodes cp into out (4 bytes room); returns the byte count. */
int ju_encode(uint32_t cp, char *out);
/* True when s is valid UTF-8 (no surrogates, no overlongs). */
bool ju_valid(const char *s, size_t len);
size_t ju_count(const char *s, size_t len);
/* Byte offset of code point index cp (cp <= count). */
size_t ju_offset(const char *s, size_t len, size_t cp);
/* Python str.isspace for one code point. */
bool ju_isspace(uint32_t cp);
/* Python's line boundaries (str.splitlines). */
bool ju_islinebreak(uint32_t cp);
uint32_t ju_upper(uint32_t cp);
uint32_t ju_lower(uint32_t cp);
bool ju_isalpha(uint32_t cp);
bool ju_isdigit(uint32_t cp);
bool ju_isupper(uint32_t cp);
bool ju_islower(uint32_t cp);
/* Python str.isprintable for one code point (approximate outside Latin/BMP punctuation). */
bool ju_isprintable(uint32_t cp);
/* Python float repr (shortest round-trip, "1e+16", "0.5", "inf", "nan") into buf (>= 32 bytes). */
void ju_float_repr(double f, char *buf, size_t n);

/* ---------------------------------------------------------------- jinja_value.c */

extern const struct jv JV_UNDEFINED;
extern const struct jv JV_NONE_V;

static inline struct jv jv_bool(bool b) { struct jv v = {.t = JT_BOOL}; v.u.b = b; return v; }
static inline struct jv jv_int(int64_t i) { struct jv v = {.t = JT_INT}; v.u.i = i; return v; }
static inline struct jv jv_float(double f) { struct jv v = {.t = JT_FLOAT}; v.u.f = f; return v; }
static inline bool jv_is_obj(struct jv v)
{
    return (v.t == JT_STR || v.t == JT_LIST || v.t == JT_DICT || v.t == JT_NS || v.t == JT_MACRO ||
            v.t == JT_METHOD || v.t == JT_LOOP || v.t == JT_UNDEF) && v.u.o != NULL;
}

void *jmem_alloc(struct jrt *rt, const struct jn *at, size_t n);
void *jmem_realloc(struct jrt *rt, const struct jn *at, void *p, size_t oldn, size_t newn);
void jmem_free(struct jrt *rt, void *p, size_t n);

struct jv jv_ref(struct jv v); /* returns v after adding a reference */
void jv_drop(struct jrt *rt, struct jv v);

/* Undefined with a reason ("'x' is undefined"); falls back to a bare one on OOM. */
struct jv jv_undef(struct jrt *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strings. rt may be NULL for static (parse-time) strings. */
int js_new(struct jrt *rt, const struct jn *at, const char *p, size_t n, struct jv *out);
static inline struct jv jv_str(struct jstr *s) { struct jv v = {.t = JT_STR}; v.u.s = s; return v; }

/* Lists. */
struct jlist *jl_new(struct jrt *rt, const struct jn *at, size_t cap);
int jl_push(struct jrt *rt, const struct jn *at, struct jlist *l, struct jv v); /* takes v */
static inline struct jv jv_list(struct jlist *l) { struct jv v = {.t = JT_LIST}; v.u.l = l; return v; }

/* Dicts (also namespaces and scopes' variables). Keys are hashable scalars. */
struct jdict *jd_new(struct jrt *rt, const struct jn *at);
int jd_set(struct jrt *rt, const struct jn *at, struct jdict *d, struct jv k, struct jv v); /* takes both */
struct jv *jd_get(const struct jdict *d, struct jv k);          /* borrowed or NULL */
struct jv *jd_get_s(const struct jdict *d, const char *k, size_t n);
static inline struct jv jv_dict(struct jdict *d) { struct jv v = {.t = JT_DICT}; v.u.d = d; return v; }
/* Updates a container's nesting depth after adding child c; -1 when too deep. */
int jv_note_child(struct jrt *rt, const struct jn *at, struct jhdr *parent, struct jv c);

/* Namespaces live in a registry so reference cycles are broken at the end of a render. */
struct jdict *jns_new(struct jrt *rt, const struct jn *at);
void jrt_release_all(struct jrt *rt);
/* Empties a dict, keeping its storage (a loop reuses its iteration scope). */
void jd_clear(struct jrt *rt, struct jdict *d);
/* Drops one reference to a scope (and its parents, iteratively). */
void jscope_release(struct jrt *rt, struct jscope *s);

/* Buffers: growable byte strings charged to the budget, capped at rt->max_str. */
int jb_put(struct jrt *rt, const struct jn *at, struct jbuf *b, const char *p, size_t n);
int jb_putc(struct jrt *rt, const struct jn *at, struct jbuf *b, char c);
int jb_puts(struct jrt *rt, const struct jn *at, struct jbuf *b, const char *s);
int jb_printf(struct jrt *rt, const struct jn *at, struct jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int jb_take(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv *out); /* -> string, resets b */
void jb_free(struct jrt *rt, struct jbuf *b);

/* Python semantics. */
bool jv_truthy(struct jv v);
const char *jv_type_name(struct jv v); /* Python's type name: "str", "dict", "NoneType" ... */
/* str(v) appended to b (Undefined prints as ""). */
int jv_write_str(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv v);
int jv_write_repr(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv v, int depth);
/* str(v) as a string value (a new reference; strings are returned as is). */
int jv_to_str(struct jrt *rt, const struct jn *at, struct jv v, struct jv *out);
int jv_eq(struct jrt *rt, const struct jn *at, struct jv a, struct jv b, bool *res);
/* Python ordering: -1/0/1; an error for unorderable types. */
int jv_cmp(struct jrt *rt, const struct jn *at, struct jv a, struct jv b, int *res);
bool jv_hashable(struct jv v);
/* Iterates v as Python would (str -> chars, dict -> keys, undefined -> empty). New list. */
int jv_iter_list(struct jrt *rt, const struct jn *at, struct jv v, struct jv *out);
/* len(v); -1 with an error for unsized values. */
int jv_len(struct jrt *rt, const struct jn *at, struct jv v, int64_t *out);

/* ---------------------------------------------------------------- chat_template.c */

struct cit_template_options;
/* Renders a parsed template with JSON variables; *mem_left receives the bytes
 * the render still had charged when it finished (0 unless something leaked). */
int jrender_json(const struct jtpl *t, const json_t *vars, const struct cit_template_options *opts, char **out,
                 size_t *out_len, size_t *mem_left, enum cit_status *st, char *err, size_t errlen);

/* ---------------------------------------------------------------- jinja_lex.c */

enum jtok_kind {
    JK_EOF, JK_DATA, JK_VAR_BEGIN, JK_VAR_END, JK_BLOCK_BEGIN, JK_BLOCK_END,
    JK_NAME, JK_STRING, JK_INT, JK_FLOAT, JK_OP,
};

struct jtok {
    uint8_t kind;
    char op[3];       /* operator text for JK_OP */
    uint32_t line, col;
    const char *p;    /* JK_DATA / JK_NAME: span in the normalized source */
    size_t n;
    struct jstr *str; /* JK_STRING: the decoded value (static) */
    int64_t i;
    double f;
};

struct jtoks {
    struct jtok *v;
    size_t n, cap;
    char *src;        /* the normalized source the spans point into */
    size_t srclen;
};

/* Tokenizes src with trim_blocks and lstrip_blocks on. On failure writes
 * "line L, column C: ..." into err. */
enum cit_status jlex(const char *src, size_t len, struct jarena *arena, struct jtoks *out, char *err,
                     size_t errlen);
void jtoks_free(struct jtoks *t);

/* ---------------------------------------------------------------- jinja_parse.c */

#define JINJA_MAX_NEST 400 /* parser recursion budget: about 100 nested brackets or 390 nested blocks */

enum cit_status jparse(const char *src, size_t len, struct jtpl **out, char *err, size_t errlen);
void jtpl_free(struct jtpl *t);

/* ---------------------------------------------------------------- jinja_eval.c */

/* Renders t with root variables vars (taken: the render releases them) into *out (malloc'd). */
int jrender(struct jrt *rt, const struct jtpl *t, struct jdict *vars, char **out, size_t *outlen);

/* ---------------------------------------------------------------- jinja_ops.c */

int jop_binary(struct jrt *rt, const struct jn *at, int op, struct jv a, struct jv b, struct jv *out);
int jop_getattr(struct jrt *rt, const struct jn *at, struct jv obj, const char *name, size_t n,
                struct jv *out);
int jop_getitem(struct jrt *rt, const struct jn *at, struct jv obj, struct jv key, struct jv *out);
int jop_slice(struct jrt *rt, const struct jn *at, struct jv obj, struct jv start, struct jv stop,
              struct jv step, struct jv *out);
int jop_contains(struct jrt *rt, const struct jn *at, struct jv container, struct jv item, bool *res);
/* Raises the error an Undefined carries when it is used. */
int jundef_fail(struct jrt *rt, const struct jn *at, struct jv u);

/* ---------------------------------------------------------------- jinja_filters.c, jinja_tests.c */

/* Resolves a filter / test name; -1 when unknown. */
int jfilter_find(const char *name, size_t n);
int jtest_find(const char *name, size_t n);
int jfilter_apply(struct jrt *rt, const struct jn *at, int id, struct jv in, struct jv *args, size_t nargs,
                  struct jstr **kwnames, struct jv *kwvals, size_t nkw, struct jv *out);
int jtest_apply(struct jrt *rt, const struct jn *at, int id, struct jv in, struct jv *args, size_t nargs,
                bool *res);

/* ---------------------------------------------------------------- jinja_strops.c */

/* A line of str.splitlines(): [a, b) without its line break. */
struct jline {
    size_t a, b;
};

/* Lines of s into a budget-charged array (*cap entries; free with jmem_free(rt, *out, *cap * sizeof **out)). */
int jstr_splitlines(struct jrt *rt, const struct jn *at, const struct jstr *s, struct jline **out, size_t *n,
                    size_t *cap);
/* str.strip (which: 0 both, 1 left, 2 right; chars NULL = whitespace) and str.replace (count < 0: all). */
int jstr_strip(struct jrt *rt, const struct jn *at, const struct jstr *s, const struct jstr *chars, int which,
               struct jv *out);
int jstr_replace(struct jrt *rt, const struct jn *at, const struct jstr *s, const struct jstr *old,
                 const struct jstr *nw, int64_t count, struct jv *out);
/* markupsafe.escape(s): & < > " ' as entities; the result is Markup. */
int jstr_escape(struct jrt *rt, const struct jn *at, struct jv s, struct jv *out);
/* str.upper() / str.lower(). */
int jstr_case(struct jrt *rt, const struct jn *at, const struct jstr *s, bool upper, struct jv *out);
/* Python's `fmt % args` (args a tuple, a mapping or a single value). */
int jstr_percent(struct jrt *rt, const struct jn *at, const struct jstr *fmt, struct jv args, struct jv *out);

/* ---------------------------------------------------------------- jinja_methods.c */

enum jfunc { JF_RANGE, JF_NAMESPACE, JF_DICT, JF_RAISE, JF_STRFTIME, JF_COUNT_ };

/* Looks up a method of a str/dict/list/loop receiver; false when none. */
bool jmethod_find(struct jv recv, const char *name, size_t n, uint16_t *owner, uint16_t *id);
int jmethod_call(struct jrt *rt, const struct jn *at, struct jv recv, uint16_t owner, uint16_t id,
                 struct jv *args, size_t nargs, struct jstr **kwnames, struct jv *kwvals, size_t nkw,
                 struct jv *out);
int jfunc_call(struct jrt *rt, const struct jn *at, int id, struct jv *args, size_t nargs,
               struct jstr **kwnames, struct jv *kwvals, size_t nkw, struct jv *out);
const char *jfunc_name(int id);
/* json.dumps(v, sort_keys=True) with Jinja's HTML-safe escaping; indent < 0: none. */
int jtojson(struct jrt *rt, const struct jn *at, struct jbuf *b, struct jv v, int indent, int depth);

/* Argument binding shared by filters, tests, methods and globals: fills
 * slot i from positional arg i or from the keyword names[i]; -1 on a
 * duplicate / unknown keyword or too many positionals. Unfilled slots are
 * JT_UNDEF with u.o == NULL (borrowed values; nothing to drop). */
int jargs_bind(struct jrt *rt, const struct jn *at, const char *fname, const char *const *names,
               size_t nslots, struct jv *args, size_t nargs, struct jstr **kwnames, struct jv *kwvals,
               size_t nkw, struct jv *slots);
static inline bool jslot_set(struct jv v) { return !(v.t == JT_UNDEF && v.u.o == NULL); }

/* The arguments of one filter or method call: the receiver (the filtered
 * value, or the object whose method is called), positional and keyword
 * arguments, and the name used in error messages. */
struct jcall {
    struct jrt *rt;
    const struct jn *at;
    struct jv recv;
    struct jv *args;
    size_t nargs;
    struct jstr **kn;
    struct jv *kv;
    size_t nk;
    const char *name;
};

/* Binds c's arguments to the named parameters into a local array `a`
 * (declared by the macro); returns -1 from the caller on a binding error. */
#define JCALL_BIND(...)                                                                                            \
    static const char *const names_[] = {__VA_ARGS__};                                                             \
    struct jv a[sizeof names_ / sizeof names_[0]];                                                                 \
    if (jargs_bind(c->rt, c->at, c->name, names_, sizeof names_ / sizeof names_[0], c->args, c->nargs, c->kn,     \
                   c->kv, c->nk, a))                                                                               \
        return -1;

/* Returns an error from the caller when c has any argument; fmt names c->name. */
#define JCALL_NOARGS(fmt)                                                                                          \
    if (c->nargs || c->nk)                                                                                         \
        return jerr(c->rt, c->at, CIT_ERR_TYPE, fmt, c->name);

#endif
