/* jinja_lex.c: template source -> tokens, as Jinja2's lexer does it.
 *
 * The environment is fixed to what chat templates are written for:
 * delimiters {{ }}, {% %}, {# #}; trim_blocks (the first newline after a
 * block or comment tag is dropped) and lstrip_blocks (spaces and tabs
 * before a block or comment tag at the start of a line are dropped) on;
 * "-" at either end of a tag strips all whitespace on that side, "+"
 * disables the trim/lstrip. Newlines are normalized to "\n" and a single
 * trailing newline is removed, as keep_trailing_newline=False does.
 *
 * String literals are decoded the way Jinja2 does it (Python's
 * unicode-escape over the text), quirks included: an unknown escape such
 * as "\d" stays as written. Also here: the parser's arena. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "text/jinja_internal.h"

/* ---------------------------------------------------------------- arena */

struct jachunk {
    struct jachunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *jarena_alloc(struct jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        struct jachunk *c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
        a->total += cap;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

void jarena_free(struct jarena *a)
{
    struct jachunk *c = a->head;
    while (c) {
        struct jachunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

struct jstr *jarena_str(struct jarena *a, const char *p, size_t n)
{
    struct jstr *s = jarena_alloc(a, sizeof *s + n + 1);
    if (!s)
        return NULL;
    s->h.rc = 1;
    s->h.flags = JH_STATIC;
    s->len = n;
    s->ncp = ju_count(p, n);
    if (n)
        memcpy(s->s, p, n);
    s->s[n] = '\0';
    return s;
}

/* ---------------------------------------------------------------- lexer state */

struct lx {
    const char *s; /* normalized source */
    size_t len;
    struct jtoks *out;
    struct jarena *arena;
    size_t loc_pos;  /* incremental position -> line/column */
    uint32_t loc_line, loc_col;
    char balance[256]; /* expected closing brackets */
    int nbal;
    char *err;
    size_t errlen;
    enum cit_status st;
};

static void loc(struct lx *lx, size_t pos, uint32_t *line, uint32_t *col)
{
    if (pos < lx->loc_pos) { /* rare: restart */
        lx->loc_pos = 0;
        lx->loc_line = 1;
        lx->loc_col = 1;
    }
    while (lx->loc_pos < pos && lx->loc_pos < lx->len) {
        unsigned char c = (unsigned char)lx->s[lx->loc_pos++];
        if (c == '\n') {
            lx->loc_line++;
            lx->loc_col = 1;
        } else if ((c & 0xC0) != 0x80) {
            lx->loc_col++;
        }
    }
    *line = lx->loc_line;
    *col = lx->loc_col;
}

static int lx_fail(struct lx *lx, size_t pos, enum cit_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int lx_fail(struct lx *lx, size_t pos, enum cit_status st, const char *fmt, ...)
{
    uint32_t line, col;
    loc(lx, pos, &line, &col);
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lx->st = cit_fail(st, lx->err, lx->errlen, "template line %u, column %u: %s", line, col, msg);
    return -1;
}

static struct jtok *emit(struct lx *lx, enum jtok_kind kind, size_t pos)
{
    struct jtoks *t = lx->out;
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        struct jtok *nv = realloc(t->v, ncap * sizeof *nv);
        if (!nv) {
            lx_fail(lx, pos, CIT_ERR_NOMEM, "out of memory");
            return NULL;
        }
        t->v = nv;
        t->cap = ncap;
    }
    struct jtok *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    k->kind = (uint8_t)kind;
    loc(lx, pos, &k->line, &k->col);
    k->p = lx->s + pos;
    return k;
}

/* Length in bytes of the whitespace run (Python \s) at pos. */
static size_t ws_run(const struct lx *lx, size_t pos)
{
    size_t i = pos;
    while (i < lx->len) {
        size_t j = i;
        uint32_t c = ju_decode(lx->s, lx->len, &j);
        if (!ju_isspace(c))
            break;
        i = j;
    }
    return i - pos;
}

/* End of text [a, b) after Python's rstrip(). */
static size_t rstrip_end(const struct lx *lx, size_t a, size_t b)
{
    while (b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)lx->s[k] & 0xC0) == 0x80)
            k--;
        size_t j = k;
        uint32_t c = ju_decode(lx->s, lx->len, &j);
        if (!ju_isspace(c))
            break;
        b = k;
    }
    return b;
}

/* Applies the tag's left-side whitespace rule to the data [a, b) before it. */
static size_t strip_before_tag(const struct lx *lx, size_t a, size_t b, char sign, bool is_var, bool line_starting)
{
    if (sign == '-')
        return rstrip_end(lx, a, b);
    if (sign == '+' || is_var)
        return b;
    size_t l = b;
    while (l > a && lx->s[l - 1] != '\n')
        l--;
    if (l == b || !(l > a || line_starting))
        return b;
    if (ws_run(lx, l) == b - l)
        return l;
    return b;
}

static int emit_data(struct lx *lx, size_t a, size_t b)
{
    if (b <= a)
        return 0;
    struct jtok *k = emit(lx, JK_DATA, a);
    if (!k)
        return -1;
    k->n = b - a;
    return 0;
}

static bool at(const struct lx *lx, size_t pos, const char *lit)
{
    size_t n = strlen(lit);
    return pos <= lx->len && lx->len - pos >= n && memcmp(lx->s + pos, lit, n) == 0;
}

/* Matches a closing delimiter at pos: "+X", "-X" + whitespace, or "X" (+ one
 * newline when trim). Returns the end position or 0. */
static size_t match_end(const struct lx *lx, size_t pos, const char *delim, bool plus_ok, bool trim)
{
    if (plus_ok && lx->s[pos] == '+' && at(lx, pos + 1, delim))
        return pos + 1 + strlen(delim);
    if (lx->s[pos] == '-' && at(lx, pos + 1, delim)) {
        size_t e = pos + 1 + strlen(delim);
        return e + ws_run(lx, e);
    }
    if (at(lx, pos, delim)) {
        size_t e = pos + strlen(delim);
        if (trim && e < lx->len && lx->s[e] == '\n')
            e++;
        return e;
    }
    return 0;
}

/* ---------------------------------------------------------------- literals */

static bool isdig(char c) { return c >= '0' && c <= '9'; }

/* (\d+_)*\d+ at pos; returns the end or pos when absent. */
static size_t digits_us(const struct lx *lx, size_t pos)
{
    size_t i = pos;
    if (i >= lx->len || !isdig(lx->s[i]))
        return pos;
    for (;;) {
        while (i < lx->len && isdig(lx->s[i]))
            i++;
        if (i + 1 < lx->len && lx->s[i] == '_' && isdig(lx->s[i + 1])) {
            i++;
            continue;
        }
        return i;
    }
}

static size_t match_float(const struct lx *lx, size_t pos)
{
    if (pos > 0 && lx->s[pos - 1] == '.')
        return 0;
    size_t i = digits_us(lx, pos);
    if (i == pos)
        return 0;
    size_t j = i;
    bool frac = false;
    if (j < lx->len && lx->s[j] == '.') {
        size_t k = digits_us(lx, j + 1);
        if (k > j + 1) {
            j = k;
            frac = true;
        }
    }
    if (j < lx->len && (lx->s[j] == 'e' || lx->s[j] == 'E')) {
        size_t k = j + 1;
        if (k < lx->len && (lx->s[k] == '+' || lx->s[k] == '-'))
            k++;
        size_t m = digits_us(lx, k);
        if (m > k)
            return m;
    }
    return frac ? j : 0;
}

static bool is_digit_base(char c, int base)
{
    if (base == 2)
        return c == '0' || c == '1';
    if (base == 8)
        return c >= '0' && c <= '7';
    if (base == 16)
        return isdig(c) || ((c | 32) >= 'a' && (c | 32) <= 'f');
    return isdig(c);
}

/* Integer literal at pos: returns the end (0 when none) and its base. */
static size_t match_int(const struct lx *lx, size_t pos, int *base)
{
    const char *s = lx->s;
    size_t n = lx->len;
    if (pos >= n || !isdig(s[pos]))
        return 0;
    if (s[pos] == '0' && pos + 1 < n) {
        char p = (char)(s[pos + 1] | 32);
        int b = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 0;
        if (b) {
            size_t i = pos + 2, last = 0;
            for (;;) {
                size_t j = i;
                if (j < n && s[j] == '_')
                    j++;
                if (j < n && is_digit_base(s[j], b)) {
                    i = j + 1;
                    last = i;
                } else {
                    break;
                }
            }
            if (last) {
                *base = b;
                return last;
            }
        }
    }
    *base = 10;
    if (s[pos] == '0') {
        size_t i = pos + 1;
        for (;;) {
            size_t j = i;
            if (j < n && s[j] == '_')
                j++;
            if (j < n && s[j] == '0')
                i = j + 1;
            else
                return i;
        }
    }
    size_t i = pos + 1;
    for (;;) {
        size_t j = i;
        if (j < n && s[j] == '_')
            j++;
        if (j < n && isdig(s[j]))
            i = j + 1;
        else
            return i;
    }
}

static int hexval(char c)
{
    if (isdig(c))
        return c - '0';
    c = (char)(c | 32);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes the body of a string literal [a, b) into a static string. */
static int decode_string(struct lx *lx, size_t a, size_t b, struct jstr **out)
{
    char *buf = malloc(b - a + 16);
    if (!buf)
        return lx_fail(lx, a, CIT_ERR_NOMEM, "out of memory");
    size_t o = 0, i = a;
    while (i < b) {
        char c = lx->s[i];
        if (c != '\\') {
            buf[o++] = c;
            i++;
            continue;
        }
        char e = lx->s[i + 1]; /* the regex guarantees a character after '\' */
        i += 2;
        uint32_t cp;
        switch (e) {
        case '\n': continue;
        case '\\': buf[o++] = '\\'; continue;
        case '\'': buf[o++] = '\''; continue;
        case '"': buf[o++] = '"'; continue;
        case 'a': buf[o++] = '\a'; continue;
        case 'b': buf[o++] = '\b'; continue;
        case 'f': buf[o++] = '\f'; continue;
        case 'n': buf[o++] = '\n'; continue;
        case 'r': buf[o++] = '\r'; continue;
        case 't': buf[o++] = '\t'; continue;
        case 'v': buf[o++] = '\v'; continue;
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            cp = 0;
            for (int k = 0; k < nd; k++) {
                int h = i + (size_t)k < b ? hexval(lx->s[i + (size_t)k]) : -1;
                if (h < 0) {
                    free(buf);
                    return lx_fail(lx, i - 2, CIT_ERR_FORMAT, "truncated \\%c escape in string", e);
                }
                cp = cp * 16 + (uint32_t)h;
            }
            i += (size_t)nd;
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                free(buf);
                return lx_fail(lx, i, CIT_ERR_UNSUPPORTED, "escape \\%c%0*X is not a valid code point", e, nd,
                               cp);
            }
            o += (size_t)ju_encode(cp, buf + o);
            continue;
        }
        case 'N':
            free(buf);
            return lx_fail(lx, i - 2, CIT_ERR_UNSUPPORTED, "\\N{...} escapes are not supported");
        default: break;
        }
        if (e >= '0' && e <= '7') {
            cp = (uint32_t)(e - '0');
            for (int k = 0; k < 2 && i < b && lx->s[i] >= '0' && lx->s[i] <= '7'; k++)
                cp = cp * 8 + (uint32_t)(lx->s[i++] - '0');
            o += (size_t)ju_encode(cp, buf + o);
            continue;
        }
        if ((unsigned char)e >= 0x80) {
            /* Python sees the backslashreplace'd form of the character: "\" + "\xe9" -> "\xe9" literally. */
            size_t j = i - 1;
            cp = ju_decode(lx->s, lx->len, &j);
            char esc[16];
            int n = cp < 0x100 ? snprintf(esc, sizeof esc, "\\x%02x", cp)
                   : cp < 0x10000 ? snprintf(esc, sizeof esc, "\\u%04x", cp)
                                  : snprintf(esc, sizeof esc, "\\U%08x", cp);
            char *nb = realloc(buf, (b - a + 16) + (o + (size_t)n));
            if (!nb) {
                free(buf);
                return lx_fail(lx, i, CIT_ERR_NOMEM, "out of memory");
            }
            buf = nb;
            memcpy(buf + o, esc, (size_t)n);
            o += (size_t)n;
            i = j;
            continue;
        }
        buf[o++] = '\\';
        buf[o++] = e;
    }
    *out = jarena_str(lx->arena, buf, o);
    free(buf);
    if (!*out)
        return lx_fail(lx, a, CIT_ERR_NOMEM, "out of memory");
    return 0;
}

/* ---------------------------------------------------------------- inside a tag */

static const char *const ops2[] = {"//", "**", "==", "!=", ">=", "<="};
static const char ops1[] = "+-/*%~[](){}><=.:|,;";

/* Tokenizes from pos inside a {{ }} or {% %} until its end; returns the position after it. */
static int lex_tag(struct lx *lx, size_t *ppos, bool is_block, bool *line_starting)
{
    size_t pos = *ppos;
    lx->nbal = 0;
    while (pos < lx->len) {
        if (lx->nbal == 0) {
            size_t e = is_block ? match_end(lx, pos, "%}", true, true) : match_end(lx, pos, "}}", false, false);
            if (e) {
                if (!emit(lx, is_block ? JK_BLOCK_END : JK_VAR_END, pos))
                    return -1;
                *line_starting = lx->s[e - 1] == '\n';
                *ppos = e;
                return 0;
            }
        }
        size_t w = ws_run(lx, pos);
        if (w) {
            pos += w;
            continue;
        }
        char c = lx->s[pos];
        size_t e;
        int base;
        if ((e = match_float(lx, pos)) != 0) {
            struct jtok *k = emit(lx, JK_FLOAT, pos);
            if (!k)
                return -1;
            char tmp[128];
            size_t m = 0;
            for (size_t i = pos; i < e && m + 1 < sizeof tmp; i++)
                if (lx->s[i] != '_')
                    tmp[m++] = lx->s[i];
            tmp[m] = '\0';
            k->f = strtod(tmp, NULL);
            k->n = e - pos;
            pos = e;
            continue;
        }
        if ((e = match_int(lx, pos, &base)) != 0) {
            struct jtok *k = emit(lx, JK_INT, pos);
            if (!k)
                return -1;
            size_t start = pos + (base == 10 ? 0 : 2);
            uint64_t v = 0;
            for (size_t i = start; i < e; i++) {
                if (lx->s[i] == '_')
                    continue;
                uint64_t d = (uint64_t)hexval(lx->s[i]);
                if (v > (UINT64_MAX - d) / (uint64_t)base || v * (uint64_t)base + d > (uint64_t)INT64_MAX)
                    return lx_fail(lx, pos, CIT_ERR_UNSUPPORTED, "integer literal too large");
                v = v * (uint64_t)base + d;
            }
            k->i = (int64_t)v;
            k->n = e - pos;
            pos = e;
            continue;
        }
        if (c == '_' || ((c | 32) >= 'a' && (c | 32) <= 'z')) {
            e = pos + 1;
            while (e < lx->len && (lx->s[e] == '_' || isdig(lx->s[e]) || ((lx->s[e] | 32) >= 'a' && (lx->s[e] | 32) <= 'z')))
                e++;
            struct jtok *k = emit(lx, JK_NAME, pos);
            if (!k)
                return -1;
            k->n = e - pos;
            pos = e;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t i = pos + 1;
            while (i < lx->len && lx->s[i] != c) {
                if (lx->s[i] == '\\' && i + 1 < lx->len)
                    i++;
                i++;
            }
            if (i >= lx->len)
                return lx_fail(lx, pos, CIT_ERR_FORMAT, "unterminated string literal");
            struct jtok *k = emit(lx, JK_STRING, pos);
            if (!k)
                return -1;
            if (decode_string(lx, pos + 1, i, &k->str))
                return -1;
            k->n = i + 1 - pos;
            pos = i + 1;
            continue;
        }
        const char *op = NULL;
        for (size_t i = 0; i < sizeof ops2 / sizeof ops2[0]; i++)
            if (at(lx, pos, ops2[i]))
                op = ops2[i];
        char one[2] = {c, 0};
        if (!op && c && strchr(ops1, c))
            op = one;
        if (!op) {
            if ((unsigned char)c >= 0x80) {
                size_t j = pos;
                uint32_t cp = ju_decode(lx->s, lx->len, &j);
                return lx_fail(lx, pos, CIT_ERR_FORMAT, "unexpected character U+%04X", cp);
            }
            return lx_fail(lx, pos, CIT_ERR_FORMAT, "unexpected char '%c'", c >= 32 && c < 127 ? c : '?');
        }
        if (op[1] == 0 && (c == '(' || c == '[' || c == '{')) {
            if (lx->nbal >= (int)sizeof lx->balance)
                return lx_fail(lx, pos, CIT_ERR_LIMIT, "brackets nested too deeply");
            lx->balance[lx->nbal++] = c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (op[1] == 0 && (c == ')' || c == ']' || c == '}')) {
            if (lx->nbal == 0)
                return lx_fail(lx, pos, CIT_ERR_FORMAT, "unexpected '%c'", c);
            char want = lx->balance[--lx->nbal];
            if (want != c)
                return lx_fail(lx, pos, CIT_ERR_FORMAT, "unexpected '%c', expected '%c'", c, want);
        }
        struct jtok *k = emit(lx, JK_OP, pos);
        if (!k)
            return -1;
        k->op[0] = op[0];
        k->op[1] = op[1];
        k->n = strlen(op);
        pos += k->n;
    }
    *ppos = pos; /* end of source inside a tag: the parser reports it */
    return 0;
}

/* ---------------------------------------------------------------- root */

/* "{% raw %}" (any of -/+ and whitespace) at pos: returns its end or 0. */
static size_t match_raw_begin(const struct lx *lx, size_t pos, char *sign)
{
    size_t i = pos + 2;
    *sign = 0;
    if (i < lx->len && (lx->s[i] == '-' || lx->s[i] == '+'))
        *sign = lx->s[i++];
    i += ws_run(lx, i);
    if (!at(lx, i, "raw"))
        return 0;
    i += 3;
    i += ws_run(lx, i);
    if (lx->s[i] == '-' && at(lx, i + 1, "%}")) {
        i += 3;
        return i + ws_run(lx, i);
    }
    if (at(lx, i, "%}"))
        return i + 2;
    return 0;
}

static int lex_raw(struct lx *lx, size_t *ppos, bool *line_starting)
{
    size_t pos = *ppos;
    for (size_t q = pos; q + 1 < lx->len; q++) {
        if (lx->s[q] != '{' || lx->s[q + 1] != '%')
            continue;
        size_t i = q + 2;
        char sign = 0;
        if (i < lx->len && (lx->s[i] == '-' || lx->s[i] == '+'))
            sign = lx->s[i++];
        i += ws_run(lx, i);
        if (!at(lx, i, "endraw"))
            continue;
        i += 6;
        i += ws_run(lx, i);
        size_t e = match_end(lx, i, "%}", true, true);
        if (!e)
            continue;
        size_t end = strip_before_tag(lx, pos, q, sign, false, *line_starting);
        if (emit_data(lx, pos, end))
            return -1;
        *line_starting = lx->s[e - 1] == '\n';
        *ppos = e;
        return 0;
    }
    return lx_fail(lx, pos, CIT_ERR_FORMAT, "missing end of raw directive");
}

static int lex_root(struct lx *lx)
{
    size_t pos = 0;
    bool line_starting = true;
    while (pos < lx->len) {
        size_t q = pos;
        while (q + 1 < lx->len && !(lx->s[q] == '{' && (lx->s[q + 1] == '%' || lx->s[q + 1] == '{' || lx->s[q + 1] == '#')))
            q++;
        if (q + 1 >= lx->len)
            return emit_data(lx, pos, lx->len);
        char kind = lx->s[q + 1];
        char rsign;
        size_t raw_end = kind == '%' ? match_raw_begin(lx, q, &rsign) : 0;
        char sign = 0;
        if (q + 2 < lx->len && (lx->s[q + 2] == '-' || lx->s[q + 2] == '+'))
            sign = lx->s[q + 2];
        size_t end = strip_before_tag(lx, pos, q, sign, kind == '{', line_starting);
        if (emit_data(lx, pos, end))
            return -1;
        if (raw_end) {
            line_starting = lx->s[raw_end - 1] == '\n';
            pos = raw_end;
            if (lex_raw(lx, &pos, &line_starting))
                return -1;
            continue;
        }
        size_t body = q + 2 + (sign ? 1 : 0);
        line_starting = false;
        if (kind == '#') {
            size_t c = body, e = 0;
            for (; c < lx->len; c++) {
                if ((lx->s[c] == '+' || lx->s[c] == '-' || lx->s[c] == '#') && (e = match_end(lx, c, "#}", true, true)))
                    break;
            }
            if (!e)
                return lx_fail(lx, q, CIT_ERR_FORMAT, "missing end of comment tag");
            line_starting = lx->s[e - 1] == '\n';
            pos = e;
            continue;
        }
        if (!emit(lx, kind == '%' ? JK_BLOCK_BEGIN : JK_VAR_BEGIN, q))
            return -1;
        pos = body;
        if (lex_tag(lx, &pos, kind == '%', &line_starting))
            return -1;
    }
    return 0;
}

enum cit_status jlex(const char *src, size_t len, struct jarena *arena, struct jtoks *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!ju_valid(src, len))
        return cit_fail(CIT_ERR_FORMAT, err, errlen, "template: source is not valid UTF-8");
    char *s = malloc(len + 1);
    if (!s)
        return cit_fail(CIT_ERR_NOMEM, err, errlen, "template: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n > 0 && s[n - 1] == '\n')
        n--;
    s[n] = '\0';
    out->src = s;
    out->srclen = n;
    struct lx lx = {.s = s, .len = n, .out = out, .arena = arena, .loc_line = 1, .loc_col = 1,
                    .err = err, .errlen = errlen, .st = CIT_OK};
    if (lex_root(&lx) || !emit(&lx, JK_EOF, n)) {
        jtoks_free(out);
        return lx.st != CIT_OK ? lx.st : CIT_ERR_FORMAT;
    }
    return CIT_OK;
}

void jtoks_free(struct jtoks *t)
{
    free(t->v);
    free(t->src);
    memset(t, 0, sizeof *t);
}
