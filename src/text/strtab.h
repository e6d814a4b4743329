/* strtab.h: the tokenizer's string table and merge table.
 *
 * struct strtab holds byte strings (any bytes, NUL included) back to back in
 * one pool and finds them by content through an open-addressing hash. Entry
 * i < n_vocab is token i; entries past it are strings that only merges
 * mention. Finding a string that several tokens share gives the last one,
 * as the reference's token-to-id map does.
 *
 * struct pairmap maps a pair of entry indices (left, right) to a merge:
 * its rank and the entry of the concatenated string. */
#ifndef CITADEL_TEXT_STRTAB_H
#define CITADEL_TEXT_STRTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest pool and entry count the table supports (offsets are uint32). */
#define STRTAB_MAX_BYTES 0xFFFFFFF0u
#define STRTAB_MAX_ENTRIES 0x7FFFFFF0u

struct strtab {
    char *pool;       /* [pool_len] bytes of all strings */
    uint64_t pool_len, pool_cap;
    uint32_t *off;    /* [n] offset of each string in pool */
    uint32_t *len;    /* [n] length of each string */
    uint32_t n, cap;
    uint32_t *slots;  /* [n_slots] entry index + 1, 0 = empty */
    uint32_t *hashes; /* [n_slots] hash of the slot's string */
    uint32_t n_slots; /* power of two */
    uint32_t n_used;  /* occupied slots */
};

struct pairmap_slot {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty */
    uint32_t rank;
    uint32_t result;
};

struct pairmap {
    struct pairmap_slot *slots; /* [n_slots] */
    uint32_t n_slots;           /* power of two */
    uint32_t n_used;
};

uint32_t strtab_hash(const char *s, size_t len);

/* Reserves room for n_entries strings and pool_bytes bytes. */
bool strtab_init(struct strtab *t, uint32_t n_entries, uint64_t pool_bytes);
void strtab_free(struct strtab *t);

/* Appends a string as a new entry without indexing it; false on overflow or
 * out of memory. */
bool strtab_append(struct strtab *t, const char *s, size_t len, uint32_t *idx);
/* Indexes entry idx so that finding its text returns idx (replacing an
 * earlier entry with the same text). Empty strings are never indexed. */
bool strtab_index(struct strtab *t, uint32_t idx);
/* Entry of text s, or -1. */
int64_t strtab_find(const struct strtab *t, const char *s, size_t len);
/* Entry of s, appending and indexing it when absent. */
bool strtab_intern(struct strtab *t, const char *s, size_t len, uint32_t *idx);

static inline const char *strtab_str(const struct strtab *t, uint32_t idx, size_t *len)
{
    *len = t->len[idx];
    return t->pool + t->off[idx];
}

bool pairmap_init(struct pairmap *m, uint32_t n_expected);
void pairmap_free(struct pairmap *m);
/* Adds (left, right) -> (rank, result) unless the pair is present (the first
 * merge listed wins, as in the reference). */
bool pairmap_add(struct pairmap *m, uint32_t left, uint32_t right, uint32_t rank, uint32_t result);
/* The merge of (left, right), or NULL. */
const struct pairmap_slot *pairmap_find(const struct pairmap *m, uint32_t left, uint32_t right);

#endif
