/* tests/parse/json_stream_check.h: the streaming parser against json_parse
 * on the whole input, shared by tests/parse/test_json_stream.c and
 * tests/fuzz/fuzz_json_split.c.
 *
 * A result is the verdict, the error (offset, line, reason) and the records
 * the rows path selects, each written as compact JSON on a line of its own:
 * json_path_each over json_parse's tape for the whole input, the records
 * json_stream_next returns for the input fed in pieces. Each piece is an
 * exact-size copy, freed as soon as the stream is done with it, so ASan
 * catches a read past a piece or a record kept after its piece is gone. */
#ifndef RF_TEST_JSON_STREAM_CHECK_H
#define RF_TEST_JSON_STREAM_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json.h"
#include "parse/json_stream.h"

typedef struct {
	int r; /* 0 valid, -1 invalid */
	json_error_t err;
	json_buf_t recs; /* records, one per line */
	size_t n_recs;
	int oom; /* json_write or a copy failed: the result means nothing */
} sc_result_t;

static void sc_result_free(sc_result_t *res)
{
	json_buf_free(&res->recs);
	memset(res, 0, sizeof *res);
}

/* One record as "OFFSET JSON\n": where it starts in the whole input, and
 * its compact text. */
static void sc_add(sc_result_t *res, const json_doc_t *d, uint32_t node, size_t offset)
{
	char at[32];
	int n = snprintf(at, sizeof at, "%zu ", offset);
	if (json_buf_append(&res->recs, at, (size_t)n) < 0 || json_write(d, node, &res->recs) < 0 ||
	    json_buf_append(&res->recs, "\n", 1) < 0)
		res->oom = 1;
	res->n_recs++;
}

/* json_path_each's visitor over the whole input, where offsets are absolute. */
static int sc_collect(void *ctx, const json_doc_t *d, uint32_t node)
{
	sc_add(ctx, d, node, d->nodes[node].start);
	return 0;
}

static void sc_whole(json_parser_t *p, const json_path_t *rows, const char *src, size_t len,
                     sc_result_t *res)
{
	json_doc_t doc;
	memset(res, 0, sizeof *res);
	res->r = json_parse(p, src, len, &doc, &res->err);
	if (res->r == 0)
		json_path_each(rows, &doc, 0, sc_collect, res);
}

/* Pulls everything the stream has; returns 1 when it needs the next piece,
 * 0 when it ended (res->r set). */
static int sc_drain(json_stream_t *s, sc_result_t *res)
{
	for (;;) {
		json_stream_record_t rec;
		int r = json_stream_next(s, &rec, &res->err);
		if (r == JSON_STREAM_RECORD) {
			sc_add(res, &rec.doc, 0, rec.offset);
			continue;
		}
		if (r == JSON_STREAM_MORE)
			return 1;
		res->r = r < 0 ? -1 : 0;
		return 0;
	}
}

/* src fed in pieces that end at cuts[0..n_cuts) (increasing, each <= len),
 * then the rest. */
static void sc_stream(const json_path_t *rows, const json_stream_opts_t *opts, const char *src,
                      size_t len, const size_t *cuts, size_t n_cuts, sc_result_t *res)
{
	memset(res, 0, sizeof *res);
	json_stream_t *s = json_stream_new(rows, opts);
	if (!s) {
		res->oom = 1;
		return;
	}
	size_t at = 0;
	for (size_t i = 0; i <= n_cuts; i++) {
		size_t end = i < n_cuts ? cuts[i] : len;
		char *piece = malloc(end - at ? end - at : 1);
		if (!piece) {
			res->oom = 1;
			break;
		}
		memcpy(piece, src + at, end - at);
		json_stream_feed(s, piece, end - at);
		int more = sc_drain(s, res);
		free(piece);
		at = end;
		if (!more)
			break;
		if (i == n_cuts) {
			json_stream_finish(s);
			sc_drain(s, res);
		}
	}
	json_stream_free(s);
}

/* ---- NDJSON: json_ndjson_each on the whole input against
 * json_ndjson_stream fed in pieces; a "record" is each line's document with
 * the offset of its line. */

static int sc_ndjson_line(void *ctx, const json_doc_t *doc, size_t line_offset)
{
	sc_add(ctx, doc, 0, line_offset);
	return 0;
}

static void sc_ndjson_whole(json_parser_t *p, const char *src, size_t len, sc_result_t *res)
{
	memset(res, 0, sizeof *res);
	res->r = json_ndjson_each(p, src, len, sc_ndjson_line, res, &res->err) ? -1 : 0;
}

static void sc_ndjson_stream(json_parser_t *p, const char *src, size_t len, const size_t *cuts,
                             size_t n_cuts, sc_result_t *res)
{
	memset(res, 0, sizeof *res);
	json_ndjson_stream_t *st = json_ndjson_stream_new(p, 0);
	if (!st) {
		res->oom = 1;
		return;
	}
	size_t at = 0;
	int r = 0;
	for (size_t i = 0; i <= n_cuts && r == 0; i++) {
		size_t end = i < n_cuts ? cuts[i] : len;
		char *piece = malloc(end - at ? end - at : 1);
		if (!piece) {
			res->oom = 1;
			break;
		}
		memcpy(piece, src + at, end - at);
		r = json_ndjson_stream_feed(st, piece, end - at, sc_ndjson_line, res, &res->err);
		free(piece);
		at = end;
	}
	if (r == 0)
		r = json_ndjson_stream_finish(st, sc_ndjson_line, res, &res->err);
	res->r = r ? -1 : 0;
	json_ndjson_stream_free(st);
}

/* NULL when a and b agree, else what differs. */
static const char *sc_differs(const sc_result_t *a, const sc_result_t *b)
{
	if (a->oom || b->oom)
		return NULL;
	if (a->r != b->r)
		return "verdict";
	if (a->r != 0) {
		if (a->err.offset != b->err.offset)
			return "error offset";
		if (a->err.line != b->err.line)
			return "error line";
		if (strcmp(a->err.reason, b->err.reason) != 0)
			return "error reason";
		return NULL;
	}
	if (a->n_recs != b->n_recs)
		return "record count";
	if (a->recs.len != b->recs.len ||
	    (a->recs.len && memcmp(a->recs.data, b->recs.data, a->recs.len) != 0))
		return "records";
	return NULL;
}

#endif
