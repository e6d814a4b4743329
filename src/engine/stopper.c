/* stopper.c: stop-string hold-back (see stopper.h).
 *
 * Strings are short (at most CIT_ENGINE_MAX_STOP of at most
 * CIT_ENGINE_MAX_STOP_LEN bytes) and each feed only looks at the held text
 * plus one token's piece, so plain scans are enough. */
#include "engine/stopper.h"

#include <string.h>

void cit_stopper_init(struct cit_stopper *s, const char *const *stop, const size_t *stop_len, size_t n_stop)
{
    memset(s, 0, sizeof *s);
    if (n_stop > CIT_ENGINE_MAX_STOP)
        n_stop = CIT_ENGINE_MAX_STOP;
    for (size_t i = 0; i < n_stop; i++) {
        s->stop[i] = stop[i];
        s->stop_len[i] = stop_len[i];
    }
    s->n_stop = n_stop;
}

/* Whether buf[0..n) is a proper prefix of some stop string. */
static bool is_partial(const struct cit_stopper *s, const char *buf, size_t n)
{
    for (size_t i = 0; i < s->n_stop; i++)
        if (n < s->stop_len[i] && memcmp(buf, s->stop[i], n) == 0)
            return true;
    return false;
}

bool cit_stopper_feed(struct cit_stopper *s, const char *text, size_t len, char *out, size_t *n_out)
{
    /* out: (n) the held text followed by the new text */
    size_t n = s->n_held;
    memcpy(out, s->held, s->n_held);
    if (len)
        memcpy(out + n, text, len);
    n += len;
    s->n_held = 0;
    if (s->n_stop == 0) {
        *n_out = n;
        return false;
    }
    /* The earliest occurrence of any stop string. A match cannot start in
     * text released earlier: that text had no suffix that was a prefix. */
    for (size_t at = 0; at < n; at++)
        for (size_t i = 0; i < s->n_stop; i++)
            if (s->stop_len[i] <= n - at && memcmp(out + at, s->stop[i], s->stop_len[i]) == 0) {
                *n_out = at;
                return true;
            }
    /* Hold the longest suffix that could still become a stop string. */
    size_t max_hold = 0;
    for (size_t i = 0; i < s->n_stop; i++)
        if (s->stop_len[i] - 1 > max_hold)
            max_hold = s->stop_len[i] - 1;
    size_t from = n > max_hold ? n - max_hold : 0;
    for (; from < n; from++)
        if (is_partial(s, out + from, n - from))
            break;
    s->n_held = n - from;
    memcpy(s->held, out + from, s->n_held);
    *n_out = from;
    return false;
}

size_t cit_stopper_flush(struct cit_stopper *s, char *out)
{
    size_t n = s->n_held;
    memcpy(out, s->held, n);
    s->n_held = 0;
    return n;
}
