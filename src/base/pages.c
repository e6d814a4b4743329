/* pages.c: see pages.h. */
#define _DEFAULT_SOURCE /* madvise, MAP_ANONYMOUS */
#include "base/pages.h"

#include <stdlib.h>
#include <sys/mman.h>

/* Under AddressSanitizer the memory comes from its allocator instead, so
 * reads and writes past the end are caught (a mapping has no red zone). */
#if defined(__SANITIZE_ADDRESS__)
#define PAGES_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PAGES_ASAN 1
#endif
#endif

void *cit_map_anon_huge(size_t bytes)
{
    if (bytes == 0)
        return NULL;
#ifdef PAGES_ASAN
    return calloc(1, bytes);
#else
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE); /* advisory: an error leaves 4 KiB pages */
#endif
    return p;
#endif
}

void cit_unmap_anon(void *p, size_t bytes)
{
#ifdef PAGES_ASAN
    (void)bytes;
    free(p);
#else
    if (p)
        munmap(p, bytes);
#endif
}
