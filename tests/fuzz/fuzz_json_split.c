/* tests/fuzz/fuzz_json_split.c: libFuzzer target for documents fed in pieces.
 *
 * The first byte picks a rows path, the next two the split pattern (a seed
 * and the largest piece size), the rest is the document. json_stream fed the
 * document in those pieces must give json_parse's verdict and error (offset,
 * line, reason) on the whole input, and for a valid document the records
 * json_path_each selects, in order; and the same bytes and pieces read as
 * NDJSON by json_ndjson_stream must give json_ndjson_each's. Built by tests/parse/meson.build (clang
 * only) and run by scripts/test.sh with seeds from ../shared/data/json. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json.h"
#include "parse/json_stream.h"
#include "tests/parse/json_stream_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SPLIT_HEADER_BYTES 3u

static const char *const rows_paths[] = {"$", "$[*]", "$.*", "$.*[*]", "$[1]", "$.a[*]",
                                         "$[*].b", "$.a.b[*]"};
#define N_ROWS (sizeof rows_paths / sizeof rows_paths[0])

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_json_split: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_parser_t *p;
	static json_path_t *rows[N_ROWS];
	if (!p) {
		json_error_t err;
		if (!(p = json_parser_new(0)))
			fuzz_fail("out of memory");
		for (size_t i = 0; i < N_ROWS; i++)
			if (json_path_compile(rows_paths[i], &rows[i], &err) < 0)
				fuzz_fail("path");
	}
	if (size < SPLIT_HEADER_BYTES)
		return 0;
	const json_path_t *path = rows[data[0] % N_ROWS];
	uint64_t seed = (uint64_t)data[1] << 8 | data[2] | 1;
	size_t max_piece = (size_t)1 << (data[1] % 12);
	size_t len = size - SPLIT_HEADER_BYTES;
	char *src = malloc(len ? len : 1); /* exact size: ASan sees overreads */
	size_t *cuts = malloc((len ? len : 1) * sizeof *cuts);
	if (!src || !cuts)
		fuzz_fail("out of memory");
	memcpy(src, data + SPLIT_HEADER_BYTES, len);
	size_t n = 0, at = 0;
	for (;;) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		at += 1 + seed % max_piece;
		if (at >= len)
			break;
		cuts[n++] = at;
	}
	sc_result_t want, got;
	sc_whole(p, path, src, len, &want);
	sc_stream(path, NULL, src, len, cuts, n, &got);
	const char *what = sc_differs(&want, &got);
	if (what) {
		fprintf(stderr, "rows %s: whole %s at %zu line %zu, %zu records; stream %s at %zu "
		        "line %zu, %zu records\n", rows_paths[data[0] % N_ROWS],
		        want.r ? want.err.reason : "valid", want.err.offset, want.err.line,
		        want.n_recs, got.r ? got.err.reason : "valid", got.err.offset, got.err.line,
		        got.n_recs);
		fuzz_fail(what);
	}
	sc_result_free(&want);
	sc_result_free(&got);
	/* The same bytes and pieces as NDJSON. */
	sc_ndjson_whole(p, src, len, &want);
	sc_ndjson_stream(p, src, len, cuts, n, &got);
	if ((what = sc_differs(&want, &got)) != NULL) {
		fprintf(stderr, "ndjson: whole %s at %zu line %zu, %zu documents; stream %s at %zu "
		        "line %zu, %zu documents\n", want.r ? want.err.reason : "valid",
		        want.err.offset, want.err.line, want.n_recs,
		        got.r ? got.err.reason : "valid", got.err.offset, got.err.line, got.n_recs);
		fuzz_fail(what);
	}
	sc_result_free(&want);
	sc_result_free(&got);
	free(cuts);
	free(src);
	return 0;
}
