/* tests/parse/ndjson_lines_alone.h: the references for json_ndjson_each and
 * json_select_ndjson, shared by tests/parse/test_json_ndjson_batch.c,
 * tests/parse/test_json_select.c and tests/fuzz/fuzz_json_ndjson.c.
 *
 * json_ndjson_each indexes a batch of lines at once; the reference parses
 * every non-blank line with json_parse on its own, as NDJSON is defined
 * (docs/parse.md): the documents (with their line offsets) and the first
 * error (offset absolute, 1-based line) must be the same. */
#ifndef RF_TEST_NDJSON_LINES_ALONE_H
#define RF_TEST_NDJSON_LINES_ALONE_H

#include <stdbool.h>
#include <string.h>

#include "parse/json.h"

/* The line of src[0, len) that starts at *pos: true with [*start, *stop)
 * its text without the '\n' and a '\r' before it, *blank when that is only
 * spaces, tabs and '\r's, and *pos moved past its '\n'; false at the end. */
static inline bool ndjson_next_line(const char *src, size_t len, size_t *pos, size_t *start,
                                    size_t *stop, bool *blank)
{
	if (*pos >= len)
		return false;
	const char *nl = memchr(src + *pos, '\n', len - *pos);
	size_t end = nl ? (size_t)(nl - src) : len;
	*start = *pos;
	*stop = end > *pos && src[end - 1] == '\r' ? end - 1 : end;
	size_t i = *pos;
	while (i < *stop && (src[i] == ' ' || src[i] == '\t' || src[i] == '\r'))
		i++;
	*blank = i == *stop;
	*pos = nl ? end + 1 : len;
	return true;
}

/* Calls fn for every document of src[0, len), one json_parse per line.
 * Returns 0, or -1 with *err for the first invalid line. */
static inline int ndjson_lines_alone(json_parser_t *p, const char *src, size_t len,
                                     void (*fn)(void *ctx, const json_doc_t *d, size_t line_offset),
                                     void *ctx, json_error_t *err)
{
	size_t pos = 0, start, stop;
	bool blank;
	for (size_t line = 1; ndjson_next_line(src, len, &pos, &start, &stop, &blank); line++) {
		if (blank)
			continue;
		json_doc_t doc;
		if (json_parse(p, src + start, stop - start, &doc, err) < 0) {
			err->offset += start;
			err->line = line;
			return -1;
		}
		fn(ctx, &doc, start);
	}
	return 0;
}

/* Calls fn for every value json_select picks on each non-blank line of
 * src[0, len) alone: the reference for json_select_ndjson. Returns 0, -1
 * with *err for the first line json_select rejects, or fn's non-zero. */
static inline int ndjson_select_lines_alone(json_parser_t *p, const char *src, size_t len,
                                            const json_path_t *const *paths, uint32_t n_paths,
                                            json_select_fn fn, void *ctx, json_error_t *err)
{
	size_t pos = 0, start, stop;
	bool blank;
	for (size_t line = 1; ndjson_next_line(src, len, &pos, &start, &stop, &blank); line++) {
		if (blank)
			continue;
		int r = json_select(p, src + start, stop - start, paths, n_paths, fn, ctx, err);
		if (r == -1) {
			err->offset += start;
			err->line = line;
		}
		if (r != 0)
			return r;
	}
	return 0;
}

#endif
