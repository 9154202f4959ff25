/* tests/fuzz/fuzz_json_ndjson.c: libFuzzer target for NDJSON + JSONPath.
 *
 * The input's first line is a JSONPath expression (compiled, or rejected with
 * an offset inside it; "$" is used then), the rest NDJSON. Every value the
 * path selects in every record must write as JSON that parses again, and an
 * NDJSON error must point inside the text. Built by tests/parse/meson.build
 * (clang only), run by scripts/test.sh with seeds from ../shared/data/json. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json.h"

#define PATH_BYTES_MAX 128u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_json_ndjson: %s\n", what);
	abort();
}

typedef struct {
	const json_path_t *path;
	json_parser_t *check; /* a second parser: the record's tape stays in use */
	json_buf_t out;
	unsigned records;
} walk_t;

static int visit(void *ctx, const json_doc_t *d, uint32_t node)
{
	walk_t *w = ctx;
	if (node >= d->n_nodes)
		fuzz_fail("selected node out of range");
	w->out.len = 0;
	if (json_write(d, node, &w->out) != 0)
		fuzz_fail("json_write failed");
	json_doc_t again;
	json_error_t err;
	if (json_parse(w->check, w->out.data, w->out.len, &again, &err) != 0)
		fuzz_fail("a selected value does not parse again");
	return 0;
}

static int record(void *ctx, const json_doc_t *d, size_t line_offset)
{
	walk_t *w = ctx;
	(void)line_offset;
	w->records++;
	return json_path_each(w->path, d, 0, visit, w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_parser_t *p, *check;
	if (!p && (!(p = json_parser_new(0)) || !(check = json_parser_new(0))))
		fuzz_fail("out of memory");
	const uint8_t *nl = memchr(data, '\n', size < PATH_BYTES_MAX ? size : PATH_BYTES_MAX);
	size_t expr_len = nl ? (size_t)(nl - data) : 0;
	char expr[PATH_BYTES_MAX + 1];
	memcpy(expr, data, expr_len);
	expr[expr_len] = '\0';
	json_path_t *path;
	json_error_t err;
	if (json_path_compile(expr, &path, &err) != 0) {
		if (!err.reason || err.offset > expr_len)
			fuzz_fail("path error without a reason or past the end");
		if (json_path_compile("$", &path, &err) != 0)
			fuzz_fail("cannot compile $");
	}
	size_t skip = nl ? expr_len + 1 : 0;
	size_t len = size - skip;
	char *src = malloc(len ? len : 1); /* exact size: ASan sees overreads */
	if (!src)
		fuzz_fail("out of memory");
	memcpy(src, data + skip, len);
	walk_t w = {.path = path, .check = check};
	if (json_ndjson_each(p, src, len, record, &w, &err) < 0 &&
	    (!err.reason || err.offset > len || err.line < 1))
		fuzz_fail("NDJSON error without a reason or past the end");
	json_buf_free(&w.out);
	json_path_free(path);
	free(src);
	return 0;
}
