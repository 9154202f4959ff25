/* bench/bench.c: `ringfill bench`. The suites are issue 7's work; until they
 * land this says so plainly and exits 2 rather than printing numbers. */
#include "bench/bench.h"

#include <stdio.h>

int bench_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "ringfill bench: not available in this build yet (issue 7)\n");
	return 2;
}
