/* support.c: helpers shared by the test binaries. */
#include "support.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

static char tmpdir[256];

int test_tmpdir_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/citadel-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

int test_tmpdir_teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

const char *test_tmpdir(void)
{
    return tmpdir;
}

struct test_cli test_cli_run(const char *args)
{
    const char *bin = getenv("CITADEL_BIN");
    if (!bin || !tmpdir[0]) {
        fprintf(stderr, "test_cli_run: CITADEL_BIN unset or no temporary directory (group setup missing)\n");
        abort();
    }
    char out_path[512], err_path[512], cmd[8192];
    snprintf(out_path, sizeof out_path, "%s/stdout", tmpdir);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s' </dev/null", bin, args, out_path, err_path);
    int st = system(cmd);
    struct test_cli r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1};
    r.out = test_read_file(out_path, NULL);
    r.err = test_read_file(err_path, NULL);
    if (!r.out || !r.err) {
        fprintf(stderr, "test_cli_run: cannot read the output of: %s\n", cmd);
        abort();
    }
    return r;
}

void test_cli_free(struct test_cli *r)
{
    free(r->out);
    free(r->err);
}

int test_cli_check(const char *args, int status, const char *needle)
{
    struct test_cli r = test_cli_run(args);
    bool status_ok = status == TEST_CLI_FAILED ? r.status != 0 : r.status == status;
    const char *where = status == 0 ? r.out : r.err;
    bool ok = status_ok && (!needle || strstr(where, needle));
    if (!ok)
        fprintf(stderr, "citadel %s: exit %d (wanted %d)\nstdout: %s\nstderr: %s\n(wanted '%s' in %s)\n", args,
                r.status, status, r.out, r.err, needle ? needle : "", status == 0 ? "stdout" : "stderr");
    test_cli_free(&r);
    return ok ? 0 : -1;
}

const char *test_shared_quoted(const char *rel)
{
    static char buf[4][1100];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "'%.1000s'", test_shared_path(rel));
    return buf[k];
}
