/* merge.h: the symbol chain and priority queue both BPE variants run on.
 *
 * A word starts as a chain of symbols (one per character, or per byte for
 * byte-level BPE); candidate merges of neighbours wait in a min-heap keyed
 * by (priority, left index), so the best merge is applied first and ties go
 * to the leftmost pair, as in the reference. A merge that went stale (one
 * side already merged elsewhere) is recognised by the recorded lengths and
 * skipped when popped. */
#ifndef CITADEL_TEXT_MERGE_H
#define CITADEL_TEXT_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sym {
    int32_t prev, next; /* chain neighbours, -1 at the ends */
    uint32_t start, n;  /* extent in the word being merged; n == 0 once merged away */
    int32_t id;         /* string-table entry of the symbol's text, -1 if none */
};

struct bigram {
    uint64_t key;        /* (priority << 32) | left: smaller pops first */
    int32_t left, right; /* symbol indices */
    int32_t result;      /* entry of the merged text */
    uint32_t n_left, n_right; /* lengths when queued: stale if they changed */
};

struct bigram_heap {
    struct bigram *v; /* [cap] */
    size_t n, cap;
};

bool bigram_push(struct bigram_heap *h, const struct bigram *b);
/* Removes the smallest key into *out; false when empty. */
bool bigram_pop(struct bigram_heap *h, struct bigram *out);
void bigram_heap_free(struct bigram_heap *h);

/* Float score -> 32-bit key where a higher score gives a smaller key (a
 * min-heap then pops the highest score first). NaN never reaches here. */
static inline uint32_t score_key(float s)
{
    uint32_t u;
    __builtin_memcpy(&u, &s, sizeof u);
    /* Order-preserving map of IEEE floats onto unsigned integers. */
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}

#endif
