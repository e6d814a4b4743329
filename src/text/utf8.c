/* utf8.c: strict UTF-8 decoding and encoding (RFC 3629 well-formed table). */
#include "text/utf8.h"

/* Bounds of the second byte for each lead byte (the rest are 0x80..0xBF);
 * this is the table of RFC 3629 section 4 and rules out overlong forms,
 * surrogates and code points past U+10FFFF in one place. */
static bool second_ok(uint8_t lead, uint8_t b)
{
    switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
    }
}

/* Sequence length announced by a lead byte; 0 when it cannot lead. */
static size_t lead_len(uint8_t c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

size_t cit_utf8_next(const uint8_t *s, size_t n, uint32_t *cp, bool *valid)
{
    uint8_t c = s[0];
    size_t len = lead_len(c);
    bool ok = len != 0 && len <= n;
    if (ok && len > 1)
        ok = second_ok(c, s[1]);
    for (size_t i = 2; ok && i < len; i++)
        ok = (s[i] & 0xC0) == 0x80;
    if (!ok) {
        if (cp)
            *cp = c;
        if (valid)
            *valid = false;
        return 1;
    }
    uint32_t v;
    switch (len) {
    case 1: v = c; break;
    case 2: v = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F); break;
    case 3: v = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F); break;
    default:
        v = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
            (s[3] & 0x3F);
        break;
    }
    if (cp)
        *cp = v;
    if (valid)
        *valid = true;
    return len;
}

size_t cit_utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

size_t cit_utf8_incomplete_tail(const uint8_t *s, size_t n)
{
    /* A pending character started at most 3 bytes back. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t c = s[n - back];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation byte: look further back for the lead */
        size_t len = lead_len(c);
        if (len <= back)
            return 0; /* ASCII, a bad lead, or a sequence already complete */
        /* The bytes present so far must be a valid prefix. */
        if (back >= 2 && !second_ok(c, s[n - back + 1]))
            return 0;
        return back;
    }
    return 0;
}
