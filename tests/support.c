/* support.c: helpers shared by the test binaries. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const char *test_shared_path(const char *rel)
{
    static char buf[4096];
    const char *base = getenv("CITADEL_SHARED");
    if (!base || !*base)
        base = "../shared";
    snprintf(buf, sizeof buf, "%s/%s", base, rel);
    return buf;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

static uint64_t rng_state = 1;

void test_rng_seed(uint64_t seed)
{
    rng_state = seed;
}

uint64_t test_rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double test_rng_unif(void)
{
    return (double)(test_rng_next() >> 11) * 0x1p-53;
}

float test_rng_gauss(void)
{
    double u = test_rng_unif(), v = test_rng_unif();
    return (float)(sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v));
}
