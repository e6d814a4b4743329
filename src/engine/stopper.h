/* stopper.h: stop-string matching over streamed text, with hold-back.
 *
 * Generated text arrives in pieces; a stop string may straddle several of
 * them. The stopper releases only text that can no longer be the start of a
 * stop string: the longest suffix of what it has seen that is a proper
 * prefix of some stop string is held until the next piece decides it. On a
 * match, only the text before the earliest occurrence is released and the
 * stop string itself (and anything after it) never is. Private to the engine. */
#ifndef CITADEL_ENGINE_STOPPER_H
#define CITADEL_ENGINE_STOPPER_H

#include <stdbool.h>
#include <stddef.h>

#include "citadel/engine.h"

struct cit_stopper {
    const char *stop[CIT_ENGINE_MAX_STOP]; /* borrowed: must outlive the stopper */
    size_t stop_len[CIT_ENGINE_MAX_STOP];  /* each 1..CIT_ENGINE_MAX_STOP_LEN */
    size_t n_stop;
    char held[CIT_ENGINE_MAX_STOP_LEN];    /* (n_held) a proper prefix of some stop string */
    size_t n_held;
};

void cit_stopper_init(struct cit_stopper *s, const char *const *stop, const size_t *stop_len, size_t n_stop);

/* Feeds text[0..len). out must hold n_held + len bytes (at most
 * CIT_ENGINE_MAX_STOP_LEN + len): it gets the text now released, *n_out its
 * length. Returns true when a stop string matched; the stopper is then spent
 * (its held text is dropped). */
bool cit_stopper_feed(struct cit_stopper *s, const char *text, size_t len, char *out, size_t *n_out);

/* The held text, released at the end of the stream (out: CIT_ENGINE_MAX_STOP_LEN
 * bytes); clears it and returns its length. */
size_t cit_stopper_flush(struct cit_stopper *s, char *out);

#endif
