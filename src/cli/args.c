/* args.c: strict number parsing for command-line options (no silent
 * truncation: trailing junk, overflow and out-of-range values are errors). */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citadel/model.h"

bool arg_int(const char *opt, const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "citadel: %s expects a whole number from %lld to %lld, got '%s'\n", opt, min, max, s);
        return false;
    }
    *out = v;
    return true;
}

bool arg_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (s[0] == '-') {
        fprintf(stderr, "citadel: %s expects a non-negative whole number, got '%s'\n", opt, s);
        return false;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0') {
        fprintf(stderr, "citadel: %s expects a non-negative whole number below 2^64, got '%s'\n", opt, s);
        return false;
    }
    *out = v;
    return true;
}

bool arg_float(const char *opt, const char *s, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || isnan(v) || v < min || v > max) {
        fprintf(stderr, "citadel: %s expects a number from %g to %g, got '%s'\n", opt, min, max, s);
        return false;
    }
    *out = v;
    return true;
}

const char *fmt_bytes(uint64_t n, char *buf, int buflen)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, (size_t)buflen, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, (size_t)buflen, "%.2f %s", v, units[u]);
    return buf;
}

char *cli_read_file(const char *cmd, const char *what, const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "citadel %s: cannot open %s %s: %s\n", cmd, what, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            char *nb = cap >= max ? NULL : realloc(buf, cap * 2 + 1);
            if (!nb) {
                fprintf(stderr, "citadel %s: %s %s is larger than %zu MiB\n", cmd, what, path, max >> 20);
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        fprintf(stderr, "citadel %s: cannot read %s %s\n", cmd, what, path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

bool cli_repack(const char *cmd, struct cit_model *m, unsigned n_threads)
{
    char err[512] = "", sz[32];
    uint64_t bytes = 0;
    enum cit_status st = cit_model_repack(m, n_threads, &bytes, err, sizeof err);
    if (st == CIT_ERR_UNSUPPORTED) {
        fprintf(stderr, "citadel %s: --repack: %s\n", cmd, err);
        return true;
    }
    if (st != CIT_OK) {
        fprintf(stderr, "citadel %s: --repack failed: %s\n", cmd, err);
        return false;
    }
    if (bytes)
        fprintf(stderr, "citadel %s: --repack: %s of weights copied, Q4_0 / Q8_0 / Q4_K / Q6_K interleaved for the decode kernels\n", cmd,
                fmt_bytes(bytes, sz, sizeof sz));
    else
        fprintf(stderr, "citadel %s: --repack: no Q4_0 or Q8_0 matrix to interleave; the weights stay in the file\n", cmd);
    return true;
}
