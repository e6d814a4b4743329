/* asan.h: CIT_ASAN is 1 in a build under AddressSanitizer (gcc defines
 * __SANITIZE_ADDRESS__, clang answers __has_feature), else 0. Code whose
 * memory comes from mappings takes the allocator instead there, so accesses
 * past the end are caught, and tests of resident memory skip. */
#ifndef CITADEL_BASE_ASAN_H
#define CITADEL_BASE_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define CIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CIT_ASAN 1
#endif
#endif
#ifndef CIT_ASAN
#define CIT_ASAN 0
#endif

#endif
