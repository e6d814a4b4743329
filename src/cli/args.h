/* args.h: strict number parsing for command-line options. Each parser prints
 * a message naming the option, the value and the allowed range on failure. */
#ifndef CITADEL_CLI_ARGS_H
#define CITADEL_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool arg_int(const char *opt, const char *s, long long min, long long max, long long *out);
bool arg_u64(const char *opt, const char *s, uint64_t *out);
bool arg_float(const char *opt, const char *s, double min, double max, double *out);

/* Human-readable byte count ("1.5 MiB") into buf. */
const char *fmt_bytes(uint64_t n, char *buf, int buflen);

/* Reads a whole file (at most `max` bytes, NUL-terminated) into a malloc'd
 * buffer; on failure prints "citadel CMD: cannot open WHAT PATH: reason"
 * (or too large / unreadable) and returns NULL. */
char *cli_read_file(const char *cmd, const char *what, const char *path, size_t max, size_t *len);

struct cit_model;

/* --repack: cit_model_repack with a line on stderr saying what was copied,
 * or why nothing was (then the model is used from the file as usual).
 * False only on a real failure (out of memory), already reported. */
bool cli_repack(const char *cmd, struct cit_model *m, unsigned n_threads);

#endif
