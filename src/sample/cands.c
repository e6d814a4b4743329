/* cands.c: selection, sorting and the top-k / top-p / min-p filters over the
 * sampler's candidate list.
 *
 * Vocabularies reach 150k+ tokens, so nothing here sorts the whole list
 * unless it must. top-k keeps a k-entry heap while scanning when k is small
 * (one well-predicted compare per token) and quickselects otherwise. min-p
 * is a linear partition on a logit threshold (p_i >= min_p * p_max  <=>
 * l_i - l_max >= log(min_p)). top-p buckets the tokens by l_max - l_i on a
 * fine grid and sums each bucket's mass: every bucket before the one where
 * the running mass reaches top_p is wholly inside the nucleus, every bucket
 * after it wholly outside, so only that one bucket is sorted. Quickselect
 * and quicksort share one median-of-three partition and fall back to
 * heapsort past a depth budget, so no logit row makes them quadratic. */
#include "sample/cands.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>

/* Ranges at most this long are finished by insertion sort. */
#define INSERTION_MAX 16
/* cit_cand_select keeps a heap instead of quickselecting when k <= n / this. */
#define HEAP_SELECT_RATIO 16
/* top-p buckets: TOP_P_PER_NAT per unit of l_max - l; the last bucket also
 * takes everything further down (p_i / p_max < e^-32, about 1e-14). */
#define TOP_P_BUCKETS 1024
#define TOP_P_PER_NAT 32.0

static inline bool better(struct cit_cand a, struct cit_cand b)
{
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

static inline void swap(struct cit_cand *a, struct cit_cand *b)
{
    struct cit_cand t = *a;
    *a = *b;
    *b = t;
}

/* Depth budget for quicksort/quickselect: 2 * floor(log2(n)) + 2. */
static int depth_budget(size_t n)
{
    int d = 2;
    while (n > 1) {
        n >>= 1;
        d += 2;
    }
    return d;
}

/* Partitions c[lo, hi), hi - lo >= 3, around a median-of-three pivot and
 * returns its final index p: c[lo, p) are better than c[p], c(p, hi) worse. */
static size_t partition(struct cit_cand *c, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (better(c[mid], c[lo]))
        swap(&c[lo], &c[mid]);
    if (better(c[last], c[mid])) {
        swap(&c[mid], &c[last]);
        if (better(c[mid], c[lo]))
            swap(&c[lo], &c[mid]);
    }
    /* c[lo] >= c[mid] >= c[last]: the median goes to the end as the pivot. */
    swap(&c[mid], &c[last]);
    struct cit_cand pivot = c[last];
    size_t store = lo;
    for (size_t i = lo; i < last; i++)
        if (better(c[i], pivot))
            swap(&c[i], &c[store++]);
    swap(&c[store], &c[last]);
    return store;
}

static void insertion_sort(struct cit_cand *c, size_t lo, size_t hi)
{
    for (size_t i = lo + 1; i < hi; i++) {
        struct cit_cand x = c[i];
        size_t j = i;
        while (j > lo && better(x, c[j - 1])) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

/* Heap with the worst entry at the root, over base[0, n). */
static void sift_down(struct cit_cand *base, size_t i, size_t n)
{
    for (;;) {
        size_t l = 2 * i + 1, w = i;
        if (l < n && better(base[w], base[l]))
            w = l;
        if (l + 1 < n && better(base[w], base[l + 1]))
            w = l + 1;
        if (w == i)
            return;
        swap(&base[i], &base[w]);
        i = w;
    }
}

static void heap_sort(struct cit_cand *c, size_t lo, size_t hi)
{
    struct cit_cand *base = c + lo;
    size_t n = hi - lo;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(base, i, n);
    /* The worst goes to the back each round, leaving base best first. */
    for (size_t end = n; end > 1; end--) {
        swap(&base[0], &base[end - 1]);
        sift_down(base, 0, end - 1);
    }
}

static void intro_sort(struct cit_cand *c, size_t lo, size_t hi, int depth)
{
    while (hi - lo > INSERTION_MAX) {
        if (depth-- == 0) {
            heap_sort(c, lo, hi);
            return;
        }
        size_t p = partition(c, lo, hi);
        /* Recurse into the smaller side so the stack stays O(log n). */
        if (p - lo < hi - p - 1) {
            intro_sort(c, lo, p, depth);
            lo = p + 1;
        } else {
            intro_sort(c, p + 1, hi, depth);
            hi = p;
        }
    }
    insertion_sort(c, lo, hi);
}

void cit_cand_sort(struct cit_cand *c, size_t n)
{
    if (n > 1)
        intro_sort(c, 0, n, depth_budget(n));
}

void cit_cand_select(struct cit_cand *c, size_t n, size_t k)
{
    assert(k <= n);
    if (k == 0 || k == n)
        return;
    if (k <= n / HEAP_SELECT_RATIO) {
        /* c[0, k) is a heap with its worst entry at the root; a better entry
         * swaps places with that root, so c stays a permutation of its input. */
        for (size_t i = k / 2; i-- > 0;)
            sift_down(c, i, k);
        for (size_t i = k; i < n; i++)
            if (better(c[i], c[0])) {
                swap(&c[i], &c[0]);
                sift_down(c, 0, k);
            }
        return;
    }
    size_t lo = 0, hi = n;
    int depth = depth_budget(n);
    /* Invariant: c[0, lo) are better than everything in c[lo, n), and c[hi, n)
     * worse than everything before hi; the boundary k lies in [lo, hi]. */
    while (lo < k && k < hi) {
        if (hi - lo <= INSERTION_MAX || depth-- == 0) {
            intro_sort(c, lo, hi, 0);
            return;
        }
        size_t p = partition(c, lo, hi);
        if (p < k)
            lo = p + 1;
        else
            hi = p;
    }
}

double cit_cand_mass(const struct cit_cand *c, size_t n, float lmax)
{
    double z = 0.0;
    for (size_t i = 0; i < n; i++)
        z += exp((double)c[i].logit - (double)lmax);
    return z;
}

/* Keeps the entries with logit - lmax >= log(min_p) at the front; returns
 * their count. The max itself always qualifies (0 >= log(min_p)). */
static size_t filter_min_p(struct cit_cand *c, size_t n, float lmax, float min_p)
{
    double cut = log((double)min_p);
    size_t keep = 0;
    for (size_t i = 0; i < n; i++)
        if ((double)c[i].logit - (double)lmax >= cut)
            swap(&c[i], &c[keep++]);
    return keep;
}

static size_t bucket_of(float logit, float lmax)
{
    double d = ((double)lmax - (double)logit) * TOP_P_PER_NAT;
    return d < (double)(TOP_P_BUCKETS - 1) ? (size_t)d : TOP_P_BUCKETS - 1;
}

/* Moves the entries of c[0, n) whose bucket is below `limit` to the front;
 * returns their count. */
static size_t partition_buckets(struct cit_cand *c, size_t n, float lmax, size_t limit)
{
    size_t keep = 0;
    for (size_t i = 0; i < n; i++)
        if (bucket_of(c[i].logit, lmax) < limit)
            swap(&c[i], &c[keep++]);
    return keep;
}

/* Keeps the shortest best-first prefix of c[0, n) whose mass reaches top_p
 * of z, the mass of the set the probabilities are taken over (which can be
 * larger than c[0, n) when min-p pruned first; z < 0 means c[0, n) itself).
 * Returns the kept count, or n if c[0, n) falls short. */
static size_t filter_top_p(struct cit_cand *c, size_t n, float lmax, double z, float top_p)
{
    double mass[TOP_P_BUCKETS] = { 0 };
    for (size_t i = 0; i < n; i++)
        mass[bucket_of(c[i].logit, lmax)] += exp((double)c[i].logit - (double)lmax);
    if (z < 0.0) {
        z = 0.0;
        for (size_t b = 0; b < TOP_P_BUCKETS; b++)
            z += mass[b];
    }
    double target = (double)top_p * z, cum = 0.0;
    size_t edge = 0;
    while (edge < TOP_P_BUCKETS && cum + mass[edge] < target)
        cum += mass[edge++];
    if (edge == TOP_P_BUCKETS)
        return n;
    /* c[0, inside) lie in buckets before the edge: in the nucleus. The edge
     * bucket c[inside, upto) is sorted and walked to where the mass arrives. */
    size_t upto = partition_buckets(c, n, lmax, edge + 1);
    size_t inside = partition_buckets(c, upto, lmax, edge);
    cit_cand_sort(c + inside, upto - inside);
    for (size_t i = inside; i < upto; i++) {
        cum += exp((double)c[i].logit - (double)lmax);
        if (cum >= target)
            return i + 1;
    }
    return upto; /* rounding: the bucket's mass summed in another order */
}

size_t cit_cand_filter(struct cit_cand *c, size_t n, float lmax, int32_t top_k, float top_p,
                       float min_p)
{
    assert(n >= 1);
    if (top_k > 0 && (size_t)top_k < n) {
        cit_cand_select(c, n, (size_t)top_k);
        n = (size_t)top_k;
    }
    bool use_p = top_p < 1.0f && n > 1;
    bool use_min_p = min_p > 0.0f && n > 1;
    /* top-p's probabilities are over the top-k set, so take its mass before
     * min-p prunes: min-p then shrinks the list top-p has to scan. Both keep
     * a best-first prefix, so applying min-p first gives the same set. */
    double z = use_p && use_min_p ? cit_cand_mass(c, n, lmax) : -1.0;
    if (use_min_p)
        n = filter_min_p(c, n, lmax, min_p);
    if (use_p && n > 1)
        n = filter_top_p(c, n, lmax, z, top_p);
    return n;
}
