/* cands.h: the candidate list the sampler's filters work on, and the
 * selection and sorting primitives behind them (internal to src/sample).
 *
 * Candidates are ordered by logit, higher first, then by id, lower first:
 * a total order (ids are unique), so every selection and sort below gives
 * the same result whatever the input permutation, and ties always favour
 * the lowest id. None of these functions allocates. */
#ifndef CITADEL_SAMPLE_CANDS_H
#define CITADEL_SAMPLE_CANDS_H

#include <stddef.h>
#include <stdint.h>

struct cit_cand {
    float logit; /* finite: banned tokens never become candidates */
    int32_t id;
};

/* Sorts c[0, n) best first. O(n log n) worst case (introsort). */
void cit_cand_sort(struct cit_cand *c, size_t n);

/* Rearranges c[0, n) so that c[0, k) hold its k best entries, in no
 * particular order. k <= n. A k-entry heap scan when k is small, else
 * quickselect: expected O(n), O(n log n) worst case. */
void cit_cand_select(struct cit_cand *c, size_t n, size_t k);

/* Sum over c[0, n) of exp(logit - lmax): the softmax denominator at
 * temperature 1, relative to lmax (the largest logit of the set). */
double cit_cand_mass(const struct cit_cand *c, size_t n, float lmax);

/* Applies top-k, top-p and min-p (each off as in cit_sampler_params) to
 * c[0, n), n >= 1, whose largest logit is lmax, and returns how many remain
 * at the front of c (at least 1). The probabilities are temperature-1
 * softmax over the set left by the previous filter. The survivors come
 * back in an order that depends only on the input (not necessarily sorted). */
size_t cit_cand_filter(struct cit_cand *c, size_t n, float lmax, int32_t top_k, float top_p,
                       float min_p);

#endif
