/* bench/read_file.h: a whole file into memory, for the parse suite
 * (bench/suite_parse.c) and rf_parse_split (bench/parse_split.c). */
#ifndef RF_BENCH_READ_FILE_H
#define RF_BENCH_READ_FILE_H

#include <stddef.h>

/* Reads the regular file at path whole into a malloc'd buffer (*out, one
 * spare byte past *len). 0, or -errno: -EFBIG when it holds more than
 * max_bytes. */
int bench_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

#endif
