/* pages.h: anonymous memory for long sequential reads (the KV cache, the
 * repacked weights, the bandwidth probe's buffer), and for buffers of which
 * most of the time only a few pages are used (the context's scratch). */
#ifndef CITADEL_BASE_PAGES_H
#define CITADEL_BASE_PAGES_H

#include <stddef.h>

/* `bytes` of private, zeroed, read-write memory, advised MADV_HUGEPAGE so
 * the kernel backs it with 2 MiB pages where it can (one TLB entry per
 * 2 MiB read; the advice is only a request). Pages are committed as they
 * are first touched. NULL when it cannot be mapped (or bytes is 0); free
 * with cit_unmap_anon(p, bytes). Under AddressSanitizer it is a calloc, so
 * accesses past the end are caught. */
void *cit_map_anon_huge(size_t bytes);

/* The same advised MADV_NOHUGEPAGE: zeroed 4 KiB pages committed as they
 * are first touched, even where the system backs all anonymous memory with
 * 2 MiB pages. For buffers sized for the largest batch of which a decode
 * step touches a few rows: never written whole, they never become resident
 * whole. */
void *cit_map_anon(size_t bytes);

/* Gives back a mapping of cit_map_anon_huge or cit_map_anon; NULL does
 * nothing. */
void cit_unmap_anon(void *p, size_t bytes);

#endif
