/* rng.h: the sampler's pseudo-random generator, xoshiro256** (Blackman and
 * Vigna, 2018), seeded through splitmix64 as its authors recommend so that
 * any 64-bit seed, 0 included, gives a well-mixed non-zero state.
 * Written from the published algorithm; tests check the reference outputs. */
#ifndef CITADEL_SAMPLE_RNG_H
#define CITADEL_SAMPLE_RNG_H

#include <stdint.h>

struct cit_rng {
    uint64_t s[4];
};

/* Advances *state and returns the next splitmix64 output. */
static inline uint64_t cit_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void cit_rng_seed(struct cit_rng *r, uint64_t seed)
{
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = cit_splitmix64(&sm);
}

static inline uint64_t cit_rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t cit_rng_next(struct cit_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = cit_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = cit_rng_rotl(s[3], 45);
    return result;
}

/* Uniform double in [0, 1) from the top 53 bits. */
static inline double cit_rng_uniform(struct cit_rng *r)
{
    return (double)(cit_rng_next(r) >> 11) * 0x1.0p-53;
}

#endif
