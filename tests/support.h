/* support.h: helpers shared by the test binaries (paths to ../shared, files). */
#ifndef CITADEL_TESTS_SUPPORT_H
#define CITADEL_TESTS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* Path of a file under the shared reference folder ($CITADEL_SHARED, set by
 * ctest). Returns a pointer to a static buffer, overwritten by the next call. */
const char *test_shared_path(const char *rel);

/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL on error. */
char *test_read_file(const char *path, size_t *len);

/* A deterministic random stream for test inputs (splitmix64). */
void test_rng_seed(uint64_t seed);
uint64_t test_rng_next(void);
double test_rng_unif(void); /* [0, 1) */
float test_rng_gauss(void); /* standard normal */

#endif
