/* strtab.c: string pool with a content hash, and the merge pair table.
 *
 * Both are open-addressing tables with linear probing kept at most half
 * full, so a lookup touches a couple of slots; the tokenizer does one per
 * symbol pair, which keeps 150k-token vocabularies fast. */
#include "text/strtab.h"

#include <stdlib.h>
#include <string.h>

#include "base/checked.h"

/* FNV-1a, folded to 32 bits: strings are short (a token), so a simple
 * byte-at-a-time hash costs less than anything that needs setup. */
uint32_t strtab_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static bool grow_slots(struct strtab *t, uint32_t want_entries)
{
    uint64_t need = (uint64_t)want_entries * 2 + 16;
    if (need <= t->n_slots)
        return true;
    uint64_t ns = 16;
    while (ns < need)
        ns <<= 1;
    if (ns > 0x80000000ull)
        return false;
    uint32_t *slots = calloc(ns, sizeof *slots);
    uint32_t *hashes = calloc(ns, sizeof *hashes);
    if (!slots || !hashes) {
        free(slots);
        free(hashes);
        return false;
    }
    uint32_t mask = (uint32_t)ns - 1;
    for (uint32_t i = 0; i < t->n_slots; i++) {
        if (!t->slots[i])
            continue;
        uint32_t j = t->hashes[i] & mask;
        while (slots[j])
            j = (j + 1) & mask;
        slots[j] = t->slots[i];
        hashes[j] = t->hashes[i];
    }
    free(t->slots);
    free(t->hashes);
    t->slots = slots;
    t->hashes = hashes;
    t->n_slots = (uint32_t)ns;
    return true;
}

bool strtab_init(struct strtab *t, uint32_t n_entries, uint64_t pool_bytes)
{
    memset(t, 0, sizeof *t);
    if (n_entries > STRTAB_MAX_ENTRIES || pool_bytes > STRTAB_MAX_BYTES)
        return false;
    t->cap = n_entries ? n_entries : 1;
    t->pool_cap = pool_bytes ? pool_bytes : 1;
    t->off = malloc((size_t)t->cap * sizeof *t->off);
    t->len = malloc((size_t)t->cap * sizeof *t->len);
    t->pool = malloc((size_t)t->pool_cap);
    if (!t->off || !t->len || !t->pool || !grow_slots(t, n_entries)) {
        strtab_free(t);
        return false;
    }
    return true;
}

void strtab_free(struct strtab *t)
{
    free(t->pool);
    free(t->off);
    free(t->len);
    free(t->slots);
    free(t->hashes);
    memset(t, 0, sizeof *t);
}

bool strtab_append(struct strtab *t, const char *s, size_t len, uint32_t *idx)
{
    uint64_t end;
    if (t->n >= STRTAB_MAX_ENTRIES || !cit_add_u64(t->pool_len, len, &end) || end > STRTAB_MAX_BYTES)
        return false;
    if (t->n == t->cap) {
        uint32_t nc = t->cap < STRTAB_MAX_ENTRIES / 2 ? t->cap * 2 : STRTAB_MAX_ENTRIES;
        uint32_t *off = realloc(t->off, (size_t)nc * sizeof *off);
        if (!off)
            return false;
        t->off = off;
        uint32_t *ln = realloc(t->len, (size_t)nc * sizeof *ln);
        if (!ln)
            return false;
        t->len = ln;
        t->cap = nc;
    }
    if (end > t->pool_cap) {
        uint64_t nc = t->pool_cap * 2 > end ? t->pool_cap * 2 : end;
        if (nc > STRTAB_MAX_BYTES)
            nc = STRTAB_MAX_BYTES;
        char *p = realloc(t->pool, (size_t)nc);
        if (!p)
            return false;
        t->pool = p;
        t->pool_cap = nc;
    }
    if (len)
        memcpy(t->pool + t->pool_len, s, len);
    t->off[t->n] = (uint32_t)t->pool_len;
    t->len[t->n] = (uint32_t)len;
    t->pool_len = end;
    *idx = t->n++;
    return true;
}

/* Slot holding s, or the empty slot where it would go. */
static uint32_t probe(const struct strtab *t, const char *s, size_t len, uint32_t h)
{
    uint32_t mask = t->n_slots - 1;
    uint32_t j = h & mask;
    for (;;) {
        uint32_t e = t->slots[j];
        if (!e)
            return j;
        e--;
        if (t->hashes[j] == h && t->len[e] == len && memcmp(t->pool + t->off[e], s, len) == 0)
            return j;
        j = (j + 1) & mask;
    }
}

bool strtab_index(struct strtab *t, uint32_t idx)
{
    if (t->len[idx] == 0)
        return true;
    if (!grow_slots(t, t->n_used + 1))
        return false;
    const char *s = t->pool + t->off[idx];
    uint32_t h = strtab_hash(s, t->len[idx]);
    uint32_t j = probe(t, s, t->len[idx], h);
    if (!t->slots[j])
        t->n_used++;
    t->slots[j] = idx + 1;
    t->hashes[j] = h;
    return true;
}

int64_t strtab_find(const struct strtab *t, const char *s, size_t len)
{
    if (len == 0 || len > UINT32_MAX || t->n_slots == 0)
        return -1;
    uint32_t j = probe(t, s, len, strtab_hash(s, len));
    return t->slots[j] ? (int64_t)t->slots[j] - 1 : -1;
}

bool strtab_intern(struct strtab *t, const char *s, size_t len, uint32_t *idx)
{
    int64_t e = strtab_find(t, s, len);
    if (e >= 0) {
        *idx = (uint32_t)e;
        return true;
    }
    /* s may point into the pool, which append can move: copy it first. */
    char small[256];
    char *tmp = len <= sizeof small ? small : malloc(len ? len : 1);
    if (!tmp)
        return false;
    memcpy(tmp, s, len);
    bool ok = strtab_append(t, tmp, len, idx) && strtab_index(t, *idx);
    if (tmp != small)
        free(tmp);
    return ok;
}

static uint64_t pair_hash(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ull;
    key ^= key >> 33;
    return key;
}

bool pairmap_init(struct pairmap *m, uint32_t n_expected)
{
    memset(m, 0, sizeof *m);
    uint64_t need = (uint64_t)n_expected * 2 + 16;
    uint64_t ns = 16;
    while (ns < need)
        ns <<= 1;
    if (ns > 0x80000000ull)
        return false;
    m->slots = malloc(ns * sizeof *m->slots);
    if (!m->slots)
        return false;
    for (uint64_t i = 0; i < ns; i++)
        m->slots[i].key = UINT64_MAX;
    m->n_slots = (uint32_t)ns;
    return true;
}

void pairmap_free(struct pairmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

bool pairmap_add(struct pairmap *m, uint32_t left, uint32_t right, uint32_t rank, uint32_t result)
{
    /* Sized at init for every merge; refuse rather than fill up. */
    if ((uint64_t)(m->n_used + 1) * 2 > m->n_slots)
        return false;
    uint64_t key = ((uint64_t)left << 32) | right;
    uint32_t mask = m->n_slots - 1;
    uint32_t j = (uint32_t)pair_hash(key) & mask;
    while (m->slots[j].key != UINT64_MAX) {
        if (m->slots[j].key == key)
            return true;
        j = (j + 1) & mask;
    }
    m->slots[j].key = key;
    m->slots[j].rank = rank;
    m->slots[j].result = result;
    m->n_used++;
    return true;
}

const struct pairmap_slot *pairmap_find(const struct pairmap *m, uint32_t left, uint32_t right)
{
    if (!m->n_slots)
        return NULL;
    uint64_t key = ((uint64_t)left << 32) | right;
    uint32_t mask = m->n_slots - 1;
    uint32_t j = (uint32_t)pair_hash(key) & mask;
    while (m->slots[j].key != UINT64_MAX) {
        if (m->slots[j].key == key)
            return &m->slots[j];
        j = (j + 1) & mask;
    }
    return NULL;
}
