/* bench/read_file.c: see read_file.h. */
#include "bench/read_file.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int bench_read_file(const char *path, size_t max_bytes, char **out, size_t *len)
{
	struct stat sb;
	FILE *f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &sb) != 0) {
		int err = errno;
		if (f)
			fclose(f);
		return -err;
	}
	if ((uint64_t)sb.st_size > max_bytes) {
		fclose(f);
		return -EFBIG;
	}
	char *buf = malloc((size_t)sb.st_size + 1);
	size_t n = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
	int rc = !buf ? -ENOMEM : n != (size_t)sb.st_size ? -EIO : 0;
	fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*len = n;
	return 0;
}
