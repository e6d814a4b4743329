/* jinja_strops.c: Python str operations shared by filters, methods and operators.
 *
 * upper/lower (with Python's two-code-point cases), strip over Unicode
 * whitespace or a character set, replace (an empty pattern inserts between
 * every code point, as Python does), splitlines' line boundaries,
 * markupsafe's HTML escape, and printf-style `fmt % args`. Every piece of
 * output goes through the budgeted buffers of jinja_value.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_internal.h"

/* Calls fn(cp) over each code point of s into a new string (ß and İ map to two code points, as in Python). */
static int map_cps(struct jrt *rt, const struct jn *at, const struct jstr *s, uint32_t (*fn)(uint32_t), struct jv *out)
{
    struct jbuf b = {0};
    size_t i = 0;
    while (i < s->len) {
        uint32_t c = ju_decode(s->s, s->len, &i);
        char enc[8];
        int n;
        if (fn == ju_upper && c == 0xDF) {
            n = 2;
            enc[0] = enc[1] = 'S';
        } else if (fn == ju_lower && c == 0x130) {
            n = ju_encode('i', enc);
            n += ju_encode(0x307, enc + n);
        } else {
            n = ju_encode(fn(c), enc);
        }
        if (jb_put(rt, at, &b, enc, (size_t)n)) {
            jb_free(rt, &b);
            return -1;
        }
    }
    return jb_take(rt, at, &b, out);
}

int jstr_case(struct jrt *rt, const struct jn *at, const struct jstr *s, bool upper, struct jv *out)
{
    return map_cps(rt, at, s, upper ? ju_upper : ju_lower, out);
}

/* Python's str.strip family over code points; chars NULL means whitespace. */
static int strip_str(struct jrt *rt, const struct jn *at, const struct jstr *s, const struct jstr *chars, bool left,
                     bool right, struct jv *out)
{
    size_t a = 0, b = s->len;
    while (left && a < b) {
        size_t j = a;
        uint32_t c = ju_decode(s->s, s->len, &j);
        bool strip = false;
        if (!chars) {
            strip = ju_isspace(c);
        } else {
            size_t k = 0;
            while (k < chars->len && !strip)
                strip = ju_decode(chars->s, chars->len, &k) == c;
        }
        if (!strip)
            break;
        a = j;
    }
    while (right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)s->s[k] & 0xC0) == 0x80)
            k--;
        size_t j = k;
        uint32_t c = ju_decode(s->s, s->len, &j);
        bool strip = false;
        if (!chars) {
            strip = ju_isspace(c);
        } else {
            size_t m = 0;
            while (m < chars->len && !strip)
                strip = ju_decode(chars->s, chars->len, &m) == c;
        }
        if (!strip)
            break;
        b = k;
    }
    return js_new(rt, at, s->s + a, b - a, out);
}

int jstr_strip(struct jrt *rt, const struct jn *at, const struct jstr *s, const struct jstr *chars, int which,
               struct jv *out)
{
    return strip_str(rt, at, s, chars, which != 2, which != 1, out);
}

/* Python's str.replace(old, new, count). */
int jstr_replace(struct jrt *rt, const struct jn *at, const struct jstr *s, const struct jstr *old, const struct jstr *nw,
                 int64_t count, struct jv *out)
{
    struct jbuf b = {0};
    int64_t done = 0;
    size_t i = 0;
    if (old->len == 0) {
        while (count < 0 || done < count) {
            if (jb_put(rt, at, &b, nw->s, nw->len))
                goto fail;
            done++;
            if (i >= s->len)
                break;
            size_t j = i;
            ju_decode(s->s, s->len, &j);
            if (jb_put(rt, at, &b, s->s + i, j - i))
                goto fail;
            i = j;
        }
        if (jb_put(rt, at, &b, s->s + i, s->len - i))
            goto fail;
        return jb_take(rt, at, &b, out);
    }
    while (i <= s->len && (count < 0 || done < count)) {
        const char *hit = memmem(s->s + i, s->len - i, old->s, old->len);
        if (!hit)
            break;
        size_t h = (size_t)(hit - s->s);
        if (jb_put(rt, at, &b, s->s + i, h - i) || jb_put(rt, at, &b, nw->s, nw->len))
            goto fail;
        i = h + old->len;
        done++;
    }
    if (jb_put(rt, at, &b, s->s + i, s->len - i))
        goto fail;
    return jb_take(rt, at, &b, out);
fail:
    jb_free(rt, &b);
    return -1;
}

int jstr_splitlines(struct jrt *rt, const struct jn *at, const struct jstr *s, struct jline **out, size_t *n,
                    size_t *capp)
{
    size_t cap = 16, cnt = 0;
    struct jline *v = jmem_alloc(rt, at, cap * sizeof *v);
    if (!v)
        return -1;
    size_t i = 0, start = 0;
    for (;;) {
        bool at_end = i >= s->len;
        size_t j = i;
        uint32_t c = at_end ? 0 : ju_decode(s->s, s->len, &j);
        if (at_end ? start < s->len : ju_islinebreak(c)) {
            if (cnt == cap) {
                struct jline *nv = jmem_realloc(rt, at, v, cap * sizeof *v, cap * 2 * sizeof *v);
                if (!nv) {
                    jmem_free(rt, v, cap * sizeof *v);
                    return -1;
                }
                v = nv;
                cap *= 2;
            }
            v[cnt++] = (struct jline){start, at_end ? s->len : i};
            if (!at_end && c == '\r' && j < s->len && s->s[j] == '\n')
                j++;
            start = j;
        }
        if (at_end)
            break;
        i = j;
    }
    *out = v;
    *n = cnt;
    *capp = cap;
    return 0;
}

int jstr_escape(struct jrt *rt, const struct jn *at, struct jv v, struct jv *out)
{
    if (v.t == JT_STR && v.m) {
        *out = jv_ref(v);
        return 0;
    }
    struct jv s;
    if (jv_to_str(rt, at, v, &s))
        return -1;
    struct jbuf b = {0};
    int rc = 0;
    size_t run = 0;
    for (size_t i = 0; rc == 0 && i < s.u.s->len; i++) {
        char ch = s.u.s->s[i];
        const char *e = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '"' ? "&#34;"
                       : ch == '\'' ? "&#39;" : NULL;
        if (e) {
            rc = jb_put(rt, at, &b, s.u.s->s + run, i - run) || jb_puts(rt, at, &b, e);
            run = i + 1;
        }
    }
    if (rc == 0)
        rc = jb_put(rt, at, &b, s.u.s->s + run, s.u.s->len - run);
    jv_drop(rt, s);
    if (rc || jb_take(rt, at, &b, out)) {
        jb_free(rt, &b);
        return -1;
    }
    out->m = 1;
    return 0;
}

/* ---------------------------------------------------------------- printf-style % */

static int pct_fail(struct jrt *rt, const struct jn *at, const char *msg) { return jerr(rt, at, CIT_ERR_TYPE, "%s", msg); }

/* Pads [p, p+n) (ncp code points) to width, left- or right-aligned. */
static int pct_pad(struct jrt *rt, const struct jn *at, struct jbuf *b, const char *p, size_t n, size_t ncp, long width,
                   bool left)
{
    size_t pad = width > 0 && (size_t)width > ncp ? (size_t)width - ncp : 0;
    for (size_t i = 0; !left && i < pad; i++)
        if (jb_putc(rt, at, b, ' '))
            return -1;
    if (jb_put(rt, at, b, p, n))
        return -1;
    for (size_t i = 0; left && i < pad; i++)
        if (jb_putc(rt, at, b, ' '))
            return -1;
    return 0;
}

int jstr_percent(struct jrt *rt, const struct jn *at, const struct jstr *f, struct jv args, struct jv *out)
{
    const struct jv *items = &args;
    size_t nitems = 1, next = 0;
    bool mapping = args.t == JT_DICT;
    if (args.t == JT_LIST && args.u.l->kind == JL_TUPLE) {
        items = args.u.l->v;
        nitems = args.u.l->len;
    }
    struct jbuf b = {0};
    size_t i = 0;
    bool used_mapping = false;
    while (i < f->len) {
        const char *pc = memchr(f->s + i, '%', f->len - i);
        size_t lit = pc ? (size_t)(pc - f->s) - i : f->len - i;
        if (jb_put(rt, at, &b, f->s + i, lit))
            goto fail;
        if (!pc)
            break;
        i += lit + 1;
        struct jv val = JV_UNDEFINED;
        bool have = false;
        if (i < f->len && f->s[i] == '(') {
            const char *close = memchr(f->s + i, ')', f->len - i);
            if (!close || !mapping) {
                pct_fail(rt, at, close ? "format requires a mapping" : "incomplete format key");
                goto fail;
            }
            struct jv *v = jd_get_s(args.u.d, f->s + i + 1, (size_t)(close - f->s) - i - 1);
            if (!v) {
                jerr(rt, at, CIT_ERR_NOT_FOUND, "format key '%.*s' not found", (int)((size_t)(close - f->s) - i - 1),
                     f->s + i + 1);
                goto fail;
            }
            val = *v;
            have = used_mapping = true;
            i = (size_t)(close - f->s) + 1;
        }
        char flags[8];
        int nf = 0;
        while (i < f->len && strchr("-+ #0", f->s[i]) && nf < 7)
            flags[nf++] = f->s[i++];
        flags[nf] = '\0';
        long width = -1, prec = -1;
        if (i < f->len && f->s[i] >= '0' && f->s[i] <= '9') {
            width = 0;
            while (i < f->len && f->s[i] >= '0' && f->s[i] <= '9' && width < 100000)
                width = width * 10 + (f->s[i++] - '0');
        }
        if (i < f->len && f->s[i] == '.') {
            i++;
            prec = 0;
            while (i < f->len && f->s[i] >= '0' && f->s[i] <= '9' && prec < 100000)
                prec = prec * 10 + (f->s[i++] - '0');
        }
        if (width > 4096 || prec > 4096) {
            jerr(rt, at, CIT_ERR_LIMIT, "format width or precision too large");
            goto fail;
        }
        while (i < f->len && strchr("hlL", f->s[i]))
            i++;
        if (i >= f->len) {
            jerr(rt, at, CIT_ERR_FORMAT, "incomplete format");
            goto fail;
        }
        char conv = f->s[i++];
        if (conv == '%') {
            if (jb_putc(rt, at, &b, '%'))
                goto fail;
            continue;
        }
        if (!have) {
            if (mapping && nitems == 1 && !(args.t == JT_LIST)) {
                val = args;
                used_mapping = true;
            } else if (next >= nitems) {
                pct_fail(rt, at, "not enough arguments for format string");
                goto fail;
            } else {
                val = items[next++];
            }
        }
        bool left = strchr(flags, '-') != NULL;
        char spec[32], tmp[4200];
        int n;
        switch (conv) {
        case 's':
        case 'r':
        case 'a': {
            struct jbuf sb = {0};
            if ((conv == 's' ? jv_write_str(rt, at, &sb, val) : jv_write_repr(rt, at, &sb, val, 0))) {
                jb_free(rt, &sb);
                goto fail;
            }
            const char *p = sb.p ? sb.p : "";
            size_t len = sb.len, ncp = ju_count(p, len);
            if (prec >= 0 && (size_t)prec < ncp) {
                len = ju_offset(p, len, (size_t)prec);
                ncp = (size_t)prec;
            }
            int rc = pct_pad(rt, at, &b, p, len, ncp, width, left);
            jb_free(rt, &sb);
            if (rc)
                goto fail;
            continue;
        }
        case 'c': {
            char enc[8];
            int en;
            if (val.t == JT_STR && val.u.s->ncp == 1) {
                en = (int)val.u.s->len;
                memcpy(enc, val.u.s->s, val.u.s->len);
            } else if (val.t == JT_INT && val.u.i >= 0 && val.u.i <= 0x10FFFF && !(val.u.i >= 0xD800 && val.u.i <= 0xDFFF)) {
                en = ju_encode((uint32_t)val.u.i, enc);
            } else {
                pct_fail(rt, at, "%c requires an int or a single character");
                goto fail;
            }
            if (pct_pad(rt, at, &b, enc, (size_t)en, 1, width, left))
                goto fail;
            continue;
        }
        case 'd':
        case 'i':
        case 'u':
        case 'o':
        case 'x':
        case 'X': {
            int64_t iv;
            if (val.t == JT_INT || val.t == JT_BOOL)
                iv = val.t == JT_BOOL ? val.u.b : val.u.i;
            else if (val.t == JT_FLOAT && conv != 'o' && conv != 'x' && conv != 'X' && isfinite(val.u.f) &&
                     fabs(val.u.f) < 9.2e18)
                iv = (int64_t)val.u.f;
            else {
                jerr(rt, at, CIT_ERR_TYPE, "%%%c format: a real number is required, not %s", conv, jv_type_name(val));
                goto fail;
            }
            char cc = conv == 'i' || conv == 'u' ? 'd' : conv;
            bool alt_o = conv == 'o' && strchr(flags, '#');
            snprintf(spec, sizeof spec, "%%%s%s%.0ld%s%.0ld%s%c", flags, "", width > 0 ? width : 0L,
                     prec >= 0 ? "." : "", prec > 0 ? prec : 0L, "ll", cc);
            if (cc == 'd')
                n = snprintf(tmp, sizeof tmp, spec, (long long)iv);
            else if (iv < 0) {
                /* Python formats the magnitude with a sign; C would print two's complement. */
                snprintf(spec, sizeof spec, "-%%%s%c", "ll", cc);
                n = snprintf(tmp, sizeof tmp, spec, (unsigned long long)(-(iv + 1)) + 1ULL);
            } else
                n = snprintf(tmp, sizeof tmp, spec, (unsigned long long)iv);
            if (n < 0)
                goto fail;
            if (alt_o && tmp[0] == '0' && n > 1) {
                memmove(tmp + 2, tmp + 1, (size_t)n);
                tmp[1] = 'o';
                n++;
            }
            if (jb_put(rt, at, &b, tmp, (size_t)n))
                goto fail;
            continue;
        }
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G': {
            double dv;
            if (val.t == JT_FLOAT || val.t == JT_INT || val.t == JT_BOOL)
                dv = val.t == JT_FLOAT ? val.u.f : val.t == JT_INT ? (double)val.u.i : val.u.b;
            else {
                jerr(rt, at, CIT_ERR_TYPE, "must be real number, not %s", jv_type_name(val));
                goto fail;
            }
            snprintf(spec, sizeof spec, "%%%s%.0ld.%ld%c", flags, width > 0 ? width : 0L, prec >= 0 ? prec : 6L, conv);
            n = snprintf(tmp, sizeof tmp, spec, dv);
            if (n < 0 || (size_t)n >= sizeof tmp || jb_put(rt, at, &b, tmp, (size_t)n))
                goto fail;
            continue;
        }
        default:
            jerr(rt, at, CIT_ERR_FORMAT, "unsupported format character '%c'", conv);
            goto fail;
        }
    }
    if (!used_mapping && !mapping && next < nitems) {
        pct_fail(rt, at, "not all arguments converted during string formatting");
        goto fail;
    }
    return jb_take(rt, at, &b, out);
fail:
    jb_free(rt, &b);
    return -1;
}
