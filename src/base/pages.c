/* pages.c: see pages.h. */
#define _DEFAULT_SOURCE /* madvise, MAP_ANONYMOUS */
#include "base/pages.h"

#include "base/asan.h"

#include <stdlib.h>
#include <sys/mman.h>

/* Under AddressSanitizer the memory comes from its allocator instead, so
 * reads and writes past the end are caught (a mapping has no red zone). */
static void *map_anon(size_t bytes, int huge)
{
    if (bytes == 0)
        return NULL;
#if CIT_ASAN
    (void)huge;
    return calloc(1, bytes);
#else
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* advisory: an error leaves the system's default */
#ifdef MADV_HUGEPAGE
    if (huge)
        madvise(p, bytes, MADV_HUGEPAGE);
#endif
#ifdef MADV_NOHUGEPAGE
    if (!huge)
        madvise(p, bytes, MADV_NOHUGEPAGE);
#endif
    return p;
#endif
}

void *cit_map_anon_huge(size_t bytes)
{
    return map_anon(bytes, 1);
}

void *cit_map_anon(size_t bytes)
{
    return map_anon(bytes, 0);
}

void cit_unmap_anon(void *p, size_t bytes)
{
#if CIT_ASAN
    (void)bytes;
    free(p);
#else
    if (p)
        munmap(p, bytes);
#endif
}
