/* err.h: filling the caller-supplied error buffer.
 * Every fallible function takes (char *err, size_t errlen); either may be
 * NULL/0. cit_fail writes the formatted message and returns st, so error paths
 * read as `return cit_fail(CIT_ERR_FORMAT, err, errlen, "...", ...);`. */
#ifndef CITADEL_BASE_ERR_H
#define CITADEL_BASE_ERR_H

#include <stddef.h>

#include "citadel/status.h"

enum cit_status cit_fail(enum cit_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
