/* json_out.c: answer-building helpers (see json_out.h). */
#include "server/json_out.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/utf8.h"

bool srv_buf_add(struct srv_buf *b, const char *s, size_t n)
{
    if (n == 0 && b->data)
        return true;
    if (n > SIZE_MAX / 2 - b->len - 1)
        return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return false;
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

json_t *srv_json_text(const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) { /* the common case: already valid */
        bool valid;
        size_t k = cit_utf8_next(u + i, n - i, NULL, &valid);
        if (!valid)
            break;
        i += k;
    }
    if (i == n)
        return json_stringn(n ? s : "", n);
    struct srv_buf b = {0};
    srv_buf_add(&b, s, i);
    while (i < n) {
        bool valid;
        size_t k = cit_utf8_next(u + i, n - i, NULL, &valid);
        if (valid)
            srv_buf_add(&b, s + i, k);
        else
            srv_buf_add(&b, "\xEF\xBF\xBD", 3);
        i += k;
    }
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    free(b.data);
    return j;
}

json_t *srv_json_bytes(const char *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer((uint8_t)s[i]));
    return a;
}

bool srv_sse_json(struct srv_buf *b, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return false;
    bool ok = srv_buf_add(b, "data: ", 6) && srv_buf_add(b, text, strlen(text)) && srv_buf_add(b, "\n\n", 2);
    free(text);
    return ok;
}
