/* json_out.h: building answers: a growing byte buffer, JSON strings from
 * model text (which may hold invalid UTF-8: a byte token, half a
 * character), and Server-Sent Events. */
#ifndef CITADEL_SERVER_JSON_OUT_H
#define CITADEL_SERVER_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct srv_buf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len, cap;
};

/* Appends n bytes (s may be NULL when n is 0); false when out of memory
 * (the buffer is then unchanged). */
bool srv_buf_add(struct srv_buf *b, const char *s, size_t n);

/* A JSON string of s[0..n) with every byte that is not part of a valid
 * UTF-8 character replaced by U+FFFD (jansson accepts only valid UTF-8). */
json_t *srv_json_text(const char *s, size_t n);

/* The bytes as a JSON array of integers (OpenAI's logprobs "bytes"). */
json_t *srv_json_bytes(const char *s, size_t n);

/* Appends "data: <compact json>\n\n" and decrefs doc. */
bool srv_sse_json(struct srv_buf *b, json_t *doc);

#endif
