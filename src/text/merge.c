/* merge.c: binary min-heap of candidate merges (see merge.h). */
#include "text/merge.h"

#include <stdlib.h>

static inline bool less(const struct bigram *a, const struct bigram *b)
{
    return a->key < b->key;
}

bool bigram_push(struct bigram_heap *h, const struct bigram *b)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        if (nc > SIZE_MAX / sizeof *h->v)
            return false;
        struct bigram *v = realloc(h->v, nc * sizeof *v);
        if (!v)
            return false;
        h->v = v;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(b, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = *b;
    return true;
}

bool bigram_pop(struct bigram_heap *h, struct bigram *out)
{
    if (h->n == 0)
        return false;
    *out = h->v[0];
    struct bigram last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && less(&h->v[c + 1], &h->v[c]))
            c++;
        if (!less(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n)
        h->v[i] = last;
    return true;
}

void bigram_heap_free(struct bigram_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
