/* The allocator (docs/ringfill.md, "The allocator").
 *
 * Built with jemalloc (meson's `jemalloc` feature: found by default, never
 * with a sanitizer that has an allocator of its own), every malloc of the
 * process is jemalloc's: ours, SQLite's and OpenSSL's (linked statically
 * beside it by default, or bound to it as the executable's symbols
 * otherwise), and libc's own. It asks for its memory in transparent huge
 * pages (`thp:always`: madvise(MADV_HUGEPAGE) on what it maps, which the
 * kernel follows when its mode is `madvise`; with `always` it does so
 * anyway, with `never` not at all), so a body, a tape or a page of SQLite's
 * cache touched for the first time costs a fault per 2 MiB instead of one
 * per 4 KiB. Where a fault is dear that is a fifth of a run: in the VMs
 * these machines are, a 4 KiB fault takes 10-14 us, and loading the e2e
 * archives from files touched 8,000 of them (docs/benchmarks.md). */
#include "engine/alloc.h"

#include <stdio.h>

#include "rf_config.h"

#if RINGFILL_JEMALLOC
#include <string.h>

#include <jemalloc/jemalloc.h>

/* Read by jemalloc when it starts, at the process's first allocation.
 * One arena: the writer's allocations (SQLite's pages) then reuse the huge
 * pages the loop's freed bodies leave, where an arena of its own would map
 * and fault in new ones. Loading the e2e archives from files: 935 faults
 * instead of 1,830, 0.15 s instead of 0.18 s (median of twelve alternating
 * runs), peak RSS 53 MiB instead of 68 MiB. */
const char *malloc_conf = "thp:always,narenas:1";

/* The kernel's transparent huge page mode, the bracketed word of
 * /sys/kernel/mm/transparent_hugepage/enabled ("always [madvise] never"). */
static void kernel_thp(char *out, size_t cap)
{
	char line[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (f) {
		if (!fgets(line, sizeof line, f))
			line[0] = 0;
		fclose(f);
	}
	const char *open = strchr(line, '['), *close = open ? strchr(open, ']') : NULL;
	if (close)
		snprintf(out, cap, "%.*s", (int)(close - open - 1), open + 1);
	else
		snprintf(out, cap, "unknown");
}

const char *alloc_describe(char *buf, size_t len)
{
	const char *version = NULL, *thp = NULL;
	unsigned arenas = 0;
	size_t n = sizeof version;
	if (mallctl("version", &version, &n, NULL, 0) != 0)
		version = "(version unknown)";
	n = sizeof thp;
	if (mallctl("opt.thp", &thp, &n, NULL, 0) != 0)
		thp = "unknown";
	n = sizeof arenas;
	if (mallctl("opt.narenas", &arenas, &n, NULL, 0) != 0)
		arenas = 0;
	char kernel[32];
	kernel_thp(kernel, sizeof kernel);
	snprintf(buf, len, "jemalloc %s (transparent huge pages: %s, the kernel's mode %s; arenas: %u)",
	         version, thp, kernel, arenas);
	return buf;
}
#else
const char *alloc_describe(char *buf, size_t len)
{
	snprintf(buf, len, "glibc malloc");
	return buf;
}
#endif
