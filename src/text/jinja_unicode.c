/* jinja_unicode.c: the slice of Unicode that Python's str semantics need.
 *
 * Jinja templates run on Python strings: len() counts code points, strip()
 * and split() know Unicode whitespace, upper()/lower() map cases, and repr()
 * escapes unprintable characters. This file gives the interpreter those
 * rules over UTF-8 without a full Unicode database: whitespace and line
 * breaks are exact; case mapping covers Latin, Greek, Cyrillic, Armenian
 * and fullwidth Latin (the scripts of chat-template keywords and roles);
 * printability is exact for Latin-1 and the common format/space characters.
 * The float repr follows Python's shortest round-trip rule exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_internal.h"

uint32_t ju_decode(const char *s, size_t len, size_t *i)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = u[k];
    if (c < 0x80 || k + 1 >= len) {
        *i = k + 1;
        return c;
    }
    if (c < 0xE0) {
        *i = k + 2;
        return ((c & 0x1F) << 6) | (u[k + 1] & 0x3F);
    }
    if (c < 0xF0) {
        if (k + 2 >= len) {
            *i = len;
            return 0xFFFD;
        }
        *i = k + 3;
        return ((c & 0x0F) << 12) | ((uint32_t)(u[k + 1] & 0x3F) << 6) | (u[k + 2] & 0x3F);
    }
    if (k + 3 >= len) {
        *i = len;
        return 0xFFFD;
    }
    *i = k + 4;
    return ((c & 0x07) << 18) | ((uint32_t)(u[k + 1] & 0x3F) << 12) | ((uint32_t)(u[k + 2] & 0x3F) << 6) |
           (u[k + 3] & 0x3F);
}

int ju_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

bool ju_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((u[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

size_t ju_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

size_t ju_offset(const char *s, size_t len, size_t cp)
{
    size_t i = 0;
    while (cp > 0 && i < len) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        cp--;
    }
    return i;
}

bool ju_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

bool ju_islinebreak(uint32_t c)
{
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
}

/* Ranges where upper and lower case alternate: even code point upper, odd lower
 * (or the reverse when odd_upper is set). */
struct alt_range {
    uint32_t lo, hi;
    bool odd_upper;
};

static const struct alt_range alt_ranges[] = {
    {0x0100, 0x012F, false}, {0x0132, 0x0137, false}, {0x0139, 0x0148, true}, {0x014A, 0x0177, false},
    {0x0179, 0x017E, true},  {0x01A0, 0x01A5, false}, {0x01DE, 0x01EF, false}, {0x01F8, 0x021F, false},
    {0x0222, 0x0233, false}, {0x03D8, 0x03EF, false}, {0x0460, 0x0481, false}, {0x048A, 0x04BF, false},
    {0x04C1, 0x04CE, true},  {0x04D0, 0x052F, false}, {0x1E00, 0x1E95, false}, {0x1EA0, 0x1EFF, false},
};

/* Blocks where lower = upper + delta. */
struct shift_range {
    uint32_t lo, hi; /* upper-case range */
    uint32_t delta;
};

static const struct shift_range shift_ranges[] = {
    {'A', 'Z', 32},         {0x00C0, 0x00D6, 32},   {0x00D8, 0x00DE, 32},   {0x0391, 0x03A1, 32},
    {0x03A3, 0x03AB, 32},   {0x0388, 0x038A, 37},   {0x038E, 0x038F, 63},   {0x0410, 0x042F, 32},
    {0x0400, 0x040F, 80},   {0x0531, 0x0556, 48},   {0xFF21, 0xFF3A, 32},
};

uint32_t ju_lower(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    for (size_t i = 0; i < sizeof shift_ranges / sizeof shift_ranges[0]; i++)
        if (c >= shift_ranges[i].lo && c <= shift_ranges[i].hi)
            return c + shift_ranges[i].delta;
    for (size_t i = 0; i < sizeof alt_ranges / sizeof alt_ranges[0]; i++)
        if (c >= alt_ranges[i].lo && c <= alt_ranges[i].hi) {
            bool is_upper = ((c & 1) != 0) == alt_ranges[i].odd_upper;
            return is_upper ? c + 1 : c;
        }
    if (c >= 0x01C4 && c <= 0x01CC)
        return c - (c - 0x01C4) % 3 + 2; /* DŽ/Dž/dž, LJ/Lj/lj, NJ/Nj/nj -> the lower form */
    if (c == 0x01F1 || c == 0x01F2)
        return 0x01F3;
    switch (c) {
    case 0x0178: return 0x00FF;
    case 0x0386: return 0x03AC;
    case 0x038C: return 0x03CC;
    case 0x0130: return 'i';
    default: return c;
    }
}

uint32_t ju_upper(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') ? c - 32 : c;
    for (size_t i = 0; i < sizeof shift_ranges / sizeof shift_ranges[0]; i++) {
        uint32_t lo = shift_ranges[i].lo + shift_ranges[i].delta, hi = shift_ranges[i].hi + shift_ranges[i].delta;
        if (c >= lo && c <= hi)
            return c - shift_ranges[i].delta;
    }
    for (size_t i = 0; i < sizeof alt_ranges / sizeof alt_ranges[0]; i++)
        if (c >= alt_ranges[i].lo && c <= alt_ranges[i].hi) {
            bool is_upper = ((c & 1) != 0) == alt_ranges[i].odd_upper;
            return is_upper ? c : c - 1;
        }
    if (c >= 0x01C4 && c <= 0x01CC)
        return c - (c - 0x01C4) % 3;
    if (c == 0x01F2 || c == 0x01F3)
        return 0x01F1;
    switch (c) {
    case 0x00FF: return 0x0178;
    case 0x00B5: return 0x039C;
    case 0x0131: return 'I';
    case 0x017F: return 'S';
    case 0x03C2: return 0x03A3;
    case 0x03AC: return 0x0386;
    case 0x03CC: return 0x038C;
    default: return c;
    }
}

bool ju_isupper(uint32_t c) { return ju_lower(c) != c; }
bool ju_islower(uint32_t c) { return ju_upper(c) != c || c == 0xDF; }

bool ju_isalpha(uint32_t c)
{
    if (c < 0x80)
        return (c | 32) >= 'a' && (c | 32) <= 'z';
    if (c == 0xAA || c == 0xBA || c == 0xDF)
        return true;
    if (ju_isupper(c) || ju_islower(c))
        return true;
    /* Scripts without case, roughly: Arabic, Hebrew, Indic, Thai, CJK, Hangul, kana. */
    return (c >= 0x05D0 && c <= 0x05EA) || (c >= 0x0620 && c <= 0x064A) || (c >= 0x0904 && c <= 0x0939) ||
           (c >= 0x0E01 && c <= 0x0E30) || (c >= 0x3041 && c <= 0x3096) || (c >= 0x30A1 && c <= 0x30FA) ||
           (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0x3400 && c <= 0x4DBF);
}

bool ju_isdigit(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 0xFF10 && c <= 0xFF19) || (c >= 0x0660 && c <= 0x0669) ||
           c == 0xB2 || c == 0xB3 || c == 0xB9;
}

bool ju_isprintable(uint32_t c)
{
    if (c == ' ')
        return true;
    if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD)
        return false;
    if (ju_isspace(c))
        return false;
    if ((c >= 0x0600 && c <= 0x0605) || c == 0x061C || c == 0x06DD || c == 0x070F || c == 0x180E ||
        (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x206F) ||
        c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) || (c >= 0xD800 && c <= 0xDFFF) ||
        (c >= 0xE000 && c <= 0xF8FF) || c >= 0xF0000 || c == 0xE0001 || (c >= 0xE0020 && c <= 0xE007F) ||
        c == 0xFFFE || c == 0xFFFF || c == 0x110BD || c == 0x1D173)
        return false;
    return true;
}

void ju_float_repr(double f, char *buf, size_t n)
{
    if (isnan(f)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, n, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    if (prec > 17)
        prec = 17;
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
    /* tmp = [-]d[.ddd]e[+-]XX: pull the digits and the exponent. */
    char digits[24];
    int nd = 0, neg = 0;
    const char *p = tmp;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    while (*p && *p != 'e') {
        if (*p >= '0' && *p <= '9' && nd < 20)
            digits[nd++] = *p;
        p++;
    }
    int exp10 = (*p == 'e') ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int decpt = exp10 + 1;
    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -decpt; i++)
                out[o++] = '0';
            for (int i = 0; i < nd; i++)
                out[o++] = digits[i];
        } else if (decpt >= nd) {
            for (int i = 0; i < nd; i++)
                out[o++] = digits[i];
            for (int i = nd; i < decpt; i++)
                out[o++] = '0';
            out[o++] = '.';
            out[o++] = '0';
        } else {
            for (int i = 0; i < decpt; i++)
                out[o++] = digits[i];
            out[o++] = '.';
            for (int i = decpt; i < nd; i++)
                out[o++] = digits[i];
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++)
                out[o++] = digits[i];
        }
        int e = decpt - 1;
        snprintf(out + o, sizeof out - o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    snprintf(buf, n, "%s", out);
}
