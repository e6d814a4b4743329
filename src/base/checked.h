/* checked.h: overflow-safe arithmetic for every length and offset that comes
 * from untrusted input. Each returns true on success and stores the result;
 * on overflow it returns false and leaves *out unspecified. */
#ifndef CITADEL_BASE_CHECKED_H
#define CITADEL_BASE_CHECKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool cit_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool cit_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool cit_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool cit_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }

/* Round v up to a multiple of align (align a power of two). */
static inline bool cit_align_up_u64(uint64_t v, uint64_t align, uint64_t *out)
{
    uint64_t t;
    if (align == 0 || (align & (align - 1)) != 0 || !cit_add_u64(v, align - 1, &t))
        return false;
    *out = t & ~(align - 1);
    return true;
}

/* True when [off, off+len) lies within [0, size). */
static inline bool cit_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
    uint64_t end;
    return cit_add_u64(off, len, &end) && end <= size;
}

#endif
