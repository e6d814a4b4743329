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

/* Black-box runs of the citadel binary ($CITADEL_BIN, set by ctest). The
 * group setup makes a fresh temporary directory for the run's output files
 * (and for the test's own files: test_tmpdir()); the teardown removes it. */
struct test_cli {
    int status;     /* exit status, -1 when killed by a signal */
    char *out, *err; /* whole stdout and stderr, NUL-terminated */
};
int test_tmpdir_setup(void **state);
int test_tmpdir_teardown(void **state);
const char *test_tmpdir(void);
/* Runs `citadel ARGS` (ARGS already shell-quoted) with stdin from /dev/null;
 * aborts the test binary if the binary or its output cannot be had. */
struct test_cli test_cli_run(const char *args);
void test_cli_free(struct test_cli *r);
/* Runs `citadel ARGS` and checks its exit status (TEST_CLI_FAILED: any
 * nonzero one) and that `needle` (NULL: no check) is in stdout when the
 * status wanted is 0, in stderr otherwise. Returns 0 when both hold, else
 * prints what came back and returns -1: use as
 * assert_int_equal(test_cli_check(...), 0). */
#define TEST_CLI_FAILED (-1)
int test_cli_check(const char *args, int status, const char *needle);
/* The shell-quoted path of a file under the shared folder, in one of four
 * rotating buffers (so a few can be used in one command line). */
const char *test_shared_quoted(const char *rel);

/* A deterministic random stream for test inputs (splitmix64). */
void test_rng_seed(uint64_t seed);
uint64_t test_rng_next(void);
double test_rng_unif(void); /* [0, 1) */
float test_rng_gauss(void); /* standard normal */

#endif
