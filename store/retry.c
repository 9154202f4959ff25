/* store/retry.c: `ringfill retry DB [--all]`. Written with issue 5; until
 * then it says so plainly. */
#include "store/store.h"

#include <stdio.h>

int retry_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "ringfill retry: not available in this build yet (issue 5)\n");
	return 2;
}
