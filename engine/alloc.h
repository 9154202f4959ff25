/* The process's allocator, as `ringfill --version` names it (engine/alloc.c). */
#ifndef RINGFILL_ENGINE_ALLOC_H
#define RINGFILL_ENGINE_ALLOC_H

#include <stddef.h>

/* "jemalloc VERSION (transparent huge pages: ASKED, the kernel's mode MODE;
 * arenas: N)" or "glibc malloc", into buf; returns buf. */
const char *alloc_describe(char *buf, size_t len);

#endif
