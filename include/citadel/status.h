/* status.h: the status codes every fallible libcitadel function returns.
 * 0 is success; each code has a fixed human message (cit_status_str). The
 * specifics (field, offset, value, limit) go into the caller's error buffer. */
#ifndef CITADEL_STATUS_H
#define CITADEL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

enum cit_status {
    CIT_OK = 0,
    CIT_ERR_IO,          /* open/read/mmap failed */
    CIT_ERR_FORMAT,      /* input is malformed (bad magic, truncated, out of bounds) */
    CIT_ERR_UNSUPPORTED, /* well-formed but not something we implement */
    CIT_ERR_NOMEM,       /* allocation failed */
    CIT_ERR_INVALID_ARG, /* caller passed a bad argument */
    CIT_ERR_NOT_FOUND,   /* key, tensor or file not present */
    CIT_ERR_TYPE,        /* value present but of another type */
    CIT_ERR_RANGE,       /* value outside its allowed range */
    CIT_ERR_LIMIT,       /* a configured budget or capacity was exceeded */
};

/* Fixed message for a status; never NULL. */
const char *cit_status_str(enum cit_status st);

#ifdef __cplusplus
}
#endif
#endif
