/* status.c: messages for enum cit_status and the error-buffer helper. */
#include <stdarg.h>
#include <stdio.h>

#include "base/err.h"
#include "citadel/status.h"

const char *cit_status_str(enum cit_status st)
{
    switch (st) {
    case CIT_OK: return "ok";
    case CIT_ERR_IO: return "I/O error";
    case CIT_ERR_FORMAT: return "malformed input";
    case CIT_ERR_UNSUPPORTED: return "unsupported";
    case CIT_ERR_NOMEM: return "out of memory";
    case CIT_ERR_INVALID_ARG: return "invalid argument";
    case CIT_ERR_NOT_FOUND: return "not found";
    case CIT_ERR_TYPE: return "type mismatch";
    case CIT_ERR_RANGE: return "value out of range";
    case CIT_ERR_LIMIT: return "limit exceeded";
    }
    return "unknown status";
}

enum cit_status cit_fail(enum cit_status st, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}
