/* tests/parse/test_json_stream.c: json_stream (parse/json_stream.c) gives
 * json_parse's answer on the whole input, however the input is split.
 *
 * argv: JSONTestSuite/test_parsing and the corpus directory. For every file
 * and several rows paths, the verdict, the error (offset, line, reason) and
 * the selected records must equal json_parse + json_path_each on the whole
 * input: small files split at every byte and fed a byte at a time, large
 * ones split at seeded random places. The groups run once per stage-1
 * kernel. With --big instead, a 200 MB document is generated piece by piece
 * (never whole), streamed, and the records' count and checksum and the peak
 * RSS are checked. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "parse/json.h"
#include "parse/json_internal.h"
#include "tests/parse/each_kernel.h"
#include "parse/json_stream.h"
#include "tests/parse/json_stream_check.h"

#define FILES_MAX 1024u
#define SUITE_FILES_MIN 300u
#define EVERY_SPLIT_BYTES_MAX 2048u /* files up to this size are split at every byte */
#define RANDOM_PLANS 12u            /* random split plans per large file */
#define CUTS_MAX 4096u              /* cuts per random plan (the rest is one piece) */

typedef struct {
	char name[256];
	char *data;
	size_t len;
} file_t;

static file_t files[FILES_MAX];
static size_t n_files;
static const char *dirs[2];

static const char *const rows_paths[] = {"$", "$[*]", "$.*", "$.*[*]", "$[0]", "$.statuses[*]"};
#define N_ROWS (sizeof rows_paths / sizeof rows_paths[0])

static void load_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n_files < FILES_MAX) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof files[0].name)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		file_t *c = &files[n_files];
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		rewind(f);
		c->len = (size_t)n;
		c->data = malloc(c->len ? c->len : 1);
		if (c->data && fread(c->data, 1, c->len, f) == c->len) {
			snprintf(c->name, sizeof c->name, "%s", e->d_name);
			n_files++;
		} else {
			free(c->data);
		}
		fclose(f);
	}
	closedir(d);
}

static int load_files(void **state)
{
	(void)state;
	load_dir(dirs[0]);
	load_dir(dirs[1]);
	return n_files >= SUITE_FILES_MIN ? 0 : -1;
}

static int free_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_files; i++)
		free(files[i].data);
	n_files = 0;
	return 0;
}

static json_path_t *compile(const char *expr)
{
	json_path_t *p;
	json_error_t err;
	assert_int_equal(json_path_compile(expr, &p, &err), 0);
	return p;
}

/* Fails the test with the file, the path and the split when they differ. */
static void expect_same(const file_t *f, const char *rows, const sc_result_t *want,
                        const sc_result_t *got, const char *split)
{
	const char *what = sc_differs(want, got);
	if (!what)
		return;
	fail_msg("%s, rows %s, split %s: %s differs (whole: %s at %zu line %zu, %zu records; "
	         "stream: %s at %zu line %zu, %zu records)",
	         f->name, rows, split, what, want->r ? want->err.reason : "valid", want->err.offset,
	         want->err.line, want->n_recs, got->r ? got->err.reason : "valid", got->err.offset,
	         got->err.line, got->n_recs);
}

/* xorshift64*: seeded, so a failure names a reproducible plan. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void small_file(json_parser_t *p, const file_t *f, const json_path_t *rows,
                       const char *expr, size_t *cuts)
{
	sc_result_t want, got;
	sc_whole(p, rows, f->data, f->len, &want);
	char split[64];
	for (size_t i = 0; i <= f->len; i++) {
		sc_stream(rows, NULL, f->data, f->len, &i, 1, &got);
		snprintf(split, sizeof split, "at %zu", i);
		expect_same(f, expr, &want, &got, split);
		sc_result_free(&got);
	}
	for (size_t i = 0; i < f->len; i++)
		cuts[i] = i + 1;
	sc_stream(rows, NULL, f->data, f->len, cuts, f->len, &got);
	expect_same(f, expr, &want, &got, "every byte");
	sc_result_free(&got);
	sc_result_free(&want);
}

static void large_file(json_parser_t *p, const file_t *f, const json_path_t *rows,
                       const char *expr, size_t *cuts)
{
	sc_result_t want, got;
	sc_whole(p, rows, f->data, f->len, &want);
	for (uint64_t plan = 1; plan <= RANDOM_PLANS; plan++) {
		uint64_t seed = plan * 0x9E3779B97F4A7C15ull ^ f->len;
		/* Pieces up to 2^k bytes: from a few bytes to whole megabytes. */
		size_t max_piece = (size_t)1 << (1 + plan % 21);
		size_t n = 0, at = 0;
		while (n < CUTS_MAX) {
			at += 1 + rnd(&seed) % max_piece;
			if (at >= f->len)
				break;
			cuts[n++] = at;
		}
		sc_stream(rows, NULL, f->data, f->len, cuts, n, &got);
		char split[64];
		snprintf(split, sizeof split, "plan %llu", (unsigned long long)plan);
		expect_same(f, expr, &want, &got, split);
		sc_result_free(&got);
	}
	sc_result_free(&want);
}

static void every_file_every_split(void **state)
{
	(void)state;
	json_parser_t *p = json_parser_new(0);
	assert_non_null(p);
	size_t *cuts = malloc((EVERY_SPLIT_BYTES_MAX > CUTS_MAX ? EVERY_SPLIT_BYTES_MAX : CUTS_MAX) *
	                      sizeof *cuts);
	assert_non_null(cuts);
	for (size_t k = 0; k < N_ROWS; k++) {
		json_path_t *rows = compile(rows_paths[k]);
		for (size_t i = 0; i < n_files; i++) {
			if (files[i].len <= EVERY_SPLIT_BYTES_MAX)
				small_file(p, &files[i], rows, rows_paths[k], cuts);
			else
				large_file(p, &files[i], rows, rows_paths[k], cuts);
		}
		json_path_free(rows);
	}
	free(cuts);
	json_parser_free(p);
}

/* Every file as NDJSON (most are one line; the corpus has a real NDJSON
 * file), split as above: json_ndjson_stream against json_ndjson_each. */
static void ndjson_every_split(void **state)
{
	(void)state;
	json_parser_t *p = json_parser_new(0), *q = json_parser_new(0);
	assert_true(p && q);
	size_t *cuts = malloc(CUTS_MAX * sizeof *cuts);
	assert_non_null(cuts);
	/* Each file, then a copy of each large one with a control byte two
	 * thirds in: an error far from the first line and the first piece. */
	for (size_t i = 0; i < 2 * n_files; i++) {
		const file_t *f = &files[i % n_files];
		file_t bad;
		if (i >= n_files) {
			if (f->len <= EVERY_SPLIT_BYTES_MAX)
				continue;
			bad = *f;
			snprintf(bad.name, sizeof bad.name, "%.200s (byte %zu set to 0x01)", f->name,
			         f->len / 3 * 2);
			assert_non_null(bad.data = malloc(f->len));
			memcpy(bad.data, f->data, f->len);
			bad.data[f->len / 3 * 2] = 1;
			f = &bad;
		}
		sc_result_t want, got;
		sc_ndjson_whole(p, f->data, f->len, &want);
		char split[64];
		size_t n_plans = f->len <= EVERY_SPLIT_BYTES_MAX ? f->len + 1 : RANDOM_PLANS;
		for (size_t plan = 0; plan < n_plans; plan++) {
			size_t n = 0;
			if (f->len <= EVERY_SPLIT_BYTES_MAX) {
				cuts[n++] = plan;
				snprintf(split, sizeof split, "at %zu", plan);
			} else {
				uint64_t seed = (plan + 1) * 0x9E3779B97F4A7C15ull ^ f->len;
				size_t max_piece = (size_t)1 << (1 + plan % 21), at = 0;
				while (n < CUTS_MAX && (at += 1 + rnd(&seed) % max_piece) < f->len)
					cuts[n++] = at;
				snprintf(split, sizeof split, "plan %zu", plan);
			}
			sc_ndjson_stream(q, f->data, f->len, cuts, n, &got);
			expect_same(f, "(ndjson)", &want, &got, split);
			sc_result_free(&got);
		}
		sc_result_free(&want);
		if (i >= n_files)
			free(bad.data);
	}
	free(cuts);
	json_parser_free(p);
	json_parser_free(q);
}

/* ---- Hand-made cases: what the suite files do not hold. */

static const char env_doc[] =
	"{\"meta\":{\"x\":7,\"name\":\"n\\u0041\"},\"count\":2,\n"
	" \"items\":[{\"id\":1},{\"id\":2}],\"tail\":{\"t\":true}}";

static int first_int(void *ctx, const json_doc_t *d, uint32_t node)
{
	return json_number_int64(d, node, ctx) == 0 ? 1 : -1;
}

static int64_t path_int(const json_doc_t *d, const char *expr)
{
	json_path_t *p = compile(expr);
	int64_t v = -1;
	int r = json_path_each(p, d, 0, first_int, &v);
	json_path_free(p);
	return r == 1 ? v : -1;
}

/* $-fields before the records are in the envelope when the first record
 * comes; fields after them are not (the view is frozen there). */
static void envelope_before_records(void **state)
{
	(void)state;
	json_path_t *rows = compile("$.items[*]");
	json_stream_opts_t o = {.keep_envelope = true};
	json_stream_t *s = json_stream_new(rows, &o);
	assert_non_null(s);
	json_doc_t env;
	assert_int_equal(json_stream_envelope(s, &env), -1);
	/* Fed 5 bytes at a time: the records and the meta cross pieces. */
	size_t len = sizeof env_doc - 1, at = 0, n_recs = 0;
	json_stream_record_t rec;
	json_error_t err;
	int r = JSON_STREAM_MORE;
	while (r != JSON_STREAM_END) {
		if (r == JSON_STREAM_MORE) {
			if (at == len) {
				json_stream_finish(s);
			} else {
				size_t n = len - at < 5 ? len - at : 5;
				json_stream_feed(s, env_doc + at, n);
				at += n;
			}
		}
		r = json_stream_next(s, &rec, &err);
		assert_true(r >= 0);
		if (r == JSON_STREAM_RECORD) {
			n_recs++;
			assert_int_equal(path_int(&rec.doc, "@.id"), (int64_t)n_recs);
			assert_int_equal(json_stream_envelope(s, &env), 0);
			assert_int_equal(path_int(&env, "$.meta.x"), 7);
			assert_int_equal(path_int(&env, "$.count"), 2);
			assert_int_equal(path_int(&env, "$.tail.t"), -1);
		}
	}
	assert_int_equal(n_recs, 2);
	assert_int_equal(json_stream_envelope(s, &env), 0);
	json_buf_t out = {0};
	assert_int_equal(json_write(&env, 0, &out), 0);
	const char want[] = "{\"meta\":{\"x\":7,\"name\":\"n\\u0041\"},\"count\":2,\"items\":[]}";
	assert_int_equal(out.len, sizeof want - 1);
	assert_memory_equal(out.data, want, out.len);
	json_buf_free(&out);
	json_stream_free(s);
	json_path_free(rows);
}

/* Without a record, the envelope at the end is the whole document minus the
 * records' containers' contents. */
static void envelope_without_records(void **state)
{
	(void)state;
	static const char doc[] = "{\"a\":[1,2],\"items\":[],\"z\":{\"k\":5}}";
	json_path_t *rows = compile("$.items[*]");
	json_stream_opts_t o = {.keep_envelope = true};
	json_stream_t *s = json_stream_new(rows, &o);
	json_stream_feed(s, doc, sizeof doc - 1);
	json_stream_record_t rec;
	json_error_t err;
	assert_int_equal(json_stream_next(s, &rec, &err), JSON_STREAM_MORE);
	json_stream_finish(s);
	assert_int_equal(json_stream_next(s, &rec, &err), JSON_STREAM_END);
	json_doc_t env;
	assert_int_equal(json_stream_envelope(s, &env), 0);
	assert_int_equal(path_int(&env, "$.z.k"), 5);
	assert_int_equal(path_int(&env, "$.a[1]"), 2);
	json_stream_free(s);
	json_path_free(rows);
}

/* Every split of doc in two, cut at each byte of [from, to], gives
 * json_parse's answer on the whole of it, for each rows path of paths. */
static void every_cut_same(json_parser_t *p, const char *doc, size_t len, size_t from, size_t to,
                           const char *what, const char *const *paths, size_t n_paths)
{
	file_t f = {.data = (char *)doc, .len = len};
	snprintf(f.name, sizeof f.name, "%s", what);
	for (size_t k = 0; k < n_paths; k++) {
		json_path_t *rows = compile(paths[k]);
		sc_result_t want, got;
		sc_whole(p, rows, doc, len, &want);
		char split[64];
		for (size_t cut = from; cut <= to && cut <= len; cut++) {
			sc_stream(rows, NULL, doc, len, &cut, 1, &got);
			snprintf(split, sizeof split, "at %zu", cut);
			expect_same(&f, paths[k], &want, &got, split);
			sc_result_free(&got);
		}
		sc_result_free(&want);
		json_path_free(rows);
	}
}

/* Records whose strings hold runs of 1 to 9 backslashes, each run starting
 * at a different offset modulo 64 (the backslash map's words and the SIMD
 * kernels' blocks), so that some split of the input falls inside every run
 * and between every backslash and what it escapes: valid, then with one
 * escape made invalid, then with one odd run escaping its string's closing
 * quote (those cut only around the record they break). */
#define BSLASH_RECORDS 70u
static size_t bslash_doc(char *doc, size_t cap, uint32_t broken, int how)
{
	static const char *const after_odd[] = {"\"", "n", "u00e9", "/"};
	size_t n = (size_t)snprintf(doc, cap, "{\"statuses\":[");
	for (uint32_t i = 0; i < BSLASH_RECORDS; i++) {
		uint32_t run = 1 + i % 9;
		static const char dots[] = "................................"
		                           "................................"; /* 64 */
		n += (size_t)snprintf(doc + n, cap - n, "%s{\"k\\\\%u\":\"%.*s", i ? "," : "", i,
		                      (int)(i % 64), dots);
		for (uint32_t b = 0; b < run; b++)
			doc[n++] = '\\';
		const char *tail = run % 2 ? after_odd[i % 4] : "a";
		if (i == broken && how == 1)
			tail = run % 2 ? "x" : "\\q"; /* an invalid escape */
		if (i == broken && how == 2)
			tail = run % 2 ? "" : "\\"; /* an odd run escapes the closing quote */
		n += (size_t)snprintf(doc + n, cap - n, "%s\",\"n\":%u}", tail, i);
	}
	n += (size_t)snprintf(doc + n, cap - n, "]}");
	assert_true(n < cap);
	return n;
}

static void backslash_runs_every_split(void **state)
{
	(void)state;
	static const char *const paths[] = {"$.statuses[*]", "$", "$.statuses[*].k"};
	json_parser_t *p = json_parser_new(0);
	assert_non_null(p);
	char *doc = malloc(16384);
	assert_non_null(doc);
	size_t len = bslash_doc(doc, 16384, UINT32_MAX, 0);
	every_cut_same(p, doc, len, 0, len, "backslash runs", paths, 3);
	json_doc_t d;
	json_error_t e;
	assert_int_equal(json_parse(p, doc, len, &d, &e), 0); /* the valid one is valid */
	for (int how = 1; how <= 2; how++) {
		for (uint32_t broken = 37; broken <= 38; broken++) { /* an odd run and an even one */
			len = bslash_doc(doc, 16384, broken, how);
			assert_int_equal(json_parse(p, doc, len, &d, &e), -1);
			char key[16];
			snprintf(key, sizeof key, "{\"k\\\\%u\"", broken);
			const char *at = strstr(doc, key);
			assert_non_null(at);
			size_t from = (size_t)(at - doc);
			every_cut_same(p, doc, len, from, from + 100,
			               how == 1 ? "invalid escape" : "escaped quote", paths, 1);
		}
	}
	free(doc);
	json_parser_free(p);
}

/* Error lines after many '\n' (the stream counts a piece's lines when it is
 * done with it): a piece of nothing but newlines, and records between runs
 * of them, cut every 61 bytes and at one place, end in an error whose line
 * must be json_parse's. */
static void error_line_after_many_newlines(void **state)
{
	(void)state;
	json_parser_t *p = json_parser_new(0);
	json_path_t *rows = compile("$.statuses[*]");
	assert_non_null(p);
	size_t cap = 200000, len = 0;
	char *doc = malloc(cap);
	size_t *cuts = malloc(cap / 61 * sizeof *cuts);
	assert_non_null(doc);
	assert_non_null(cuts);
	for (int kind = 0; kind < 2; kind++) {
		len = (size_t)snprintf(doc, cap, "{\"statuses\":[");
		if (kind == 0) {
			memset(doc + len, '\n', 70000);
			len += 70000;
		} else {
			for (uint32_t i = 0; i < 3000; i++) {
				memset(doc + len, '\n', i % 40);
				len += i % 40;
				len += (size_t)snprintf(doc + len, cap - len, "{\"a\":%u},", i);
			}
		}
		len += (size_t)snprintf(doc + len, cap - len, "\n{\"a\":tru}]}");
		sc_result_t want, got;
		sc_whole(p, rows, doc, len, &want);
		assert_int_equal(want.r, -1);
		assert_true(want.err.line > 3000);
		size_t n = 0;
		for (size_t at = 61; at < len; at += 61)
			cuts[n++] = at;
		file_t f = {.data = doc, .len = len};
		snprintf(f.name, sizeof f.name, "newlines %d", kind);
		sc_stream(rows, NULL, doc, len, cuts, n, &got);
		expect_same(&f, "$.statuses[*]", &want, &got, "every 61 bytes");
		sc_result_free(&got);
		size_t cut = len - 5;
		sc_stream(rows, NULL, doc, len, &cut, 1, &got);
		expect_same(&f, "$.statuses[*]", &want, &got, "5 bytes before the end");
		sc_result_free(&got);
		sc_result_free(&want);
	}
	free(cuts);
	free(doc);
	json_path_free(rows);
	json_parser_free(p);
}

/* A value past value_bytes_max fails at its first byte, in one piece or
 * across several, and the error stays. */
static void value_limit(void **state)
{
	(void)state;
	static const char doc[] = "[1,\n\"0123456789012345678901234567890123456789\",2]";
	json_path_t *rows = compile("$[*]");
	json_stream_opts_t o = {.value_bytes_max = 16};
	size_t len = sizeof doc - 1;
	for (size_t cut = 0; cut <= len; cut++) {
		sc_result_t got;
		sc_stream(rows, &o, doc, len, &cut, 1, &got);
		assert_int_equal(got.r, -1);
		assert_int_equal(got.err.offset, 4);
		assert_int_equal(got.err.line, 2);
		assert_string_equal(got.err.reason, "value larger than the stream limit");
		assert_int_equal(got.n_recs, 1); /* the 1 before it */
		sc_result_free(&got);
	}
	json_path_free(rows);
}

/* Each member named like the step is followed, where json_path_each takes
 * only the last of duplicate keys: the stream cannot know one comes later. */
static void duplicate_keys_each_followed(void **state)
{
	(void)state;
	static const char doc[] = "{\"items\":[1],\"items\":[2,3]}";
	json_path_t *rows = compile("$.items[*]");
	sc_result_t got;
	sc_stream(rows, NULL, doc, sizeof doc - 1, NULL, 0, &got);
	assert_int_equal(got.r, 0);
	assert_int_equal(got.n_recs, 3);
	static const char want[] = "10 1\n22 2\n24 3\n"; /* offset, record */
	assert_int_equal(got.recs.len, sizeof want - 1);
	assert_memory_equal(got.recs.data, want, sizeof want - 1);
	sc_result_free(&got);
	json_path_free(rows);
}

/* With refuse_repeated_names, a name a path's name step selects twice in
 * one object fails at the second key, wherever the input is cut, with the
 * offset and line json_path_repeats gives on the whole tape; names off the
 * paths, inside records, and under a '*' step may repeat. */
static void repeated_names_refused(void **state)
{
	(void)state;
	static const char bad[] = "{\"a\":{\"x\":1},\n\"items\":[1],\"a\":{},\"items\":[2]}";
	static const char good[] =
	    "{\"o\":1,\"o\":2,\"items\":[{\"k\":1,\"k\":2}],\"a\":{\"y\":1,\"y\":2,\"x\":3}}";
	const json_path_t *paths[2] = {compile("$.items[*]"), compile("$.a.x")};
	json_stream_opts_t o = {.refuse_repeated_names = true};
	size_t at = strstr(bad, "\"a\":{}") - bad; /* the second "a": before the second "items" */
	for (size_t cut = 0; cut <= sizeof bad - 1; cut++) {
		json_stream_t *st = json_stream_new_paths(paths, 2, &o);
		assert_non_null(st);
		json_stream_record_t rec;
		json_error_t err;
		int r = JSON_STREAM_MORE;
		for (int piece = 0; piece < 3 && r == JSON_STREAM_MORE; piece++) {
			if (piece == 0)
				json_stream_feed(st, bad, cut);
			else if (piece == 1)
				json_stream_feed(st, bad + cut, sizeof bad - 1 - cut);
			else
				json_stream_finish(st);
			while ((r = json_stream_next(st, &rec, &err)) == JSON_STREAM_RECORD)
				;
		}
		assert_int_equal(r, -1);
		assert_string_equal(err.reason, JSON_STREAM_E_REPEATED);
		assert_int_equal(err.offset, at);
		assert_int_equal(err.line, 2);
		json_stream_free(st);
	}
	/* The whole tape agrees: the same key. */
	json_parser_t *p = json_parser_new(0);
	json_doc_t doc;
	json_error_t e;
	uint32_t key;
	assert_int_equal(json_parse(p, bad, sizeof bad - 1, &doc, &e), 0);
	assert_true(json_path_repeats(paths[0], &doc, 0, &key));
	assert_int_equal(doc.nodes[key].start, (size_t)(strrchr(bad, 'i') - bad - 1)); /* "items" */
	assert_true(json_path_repeats(paths[1], &doc, 0, &key));
	assert_int_equal(doc.nodes[key].start, at);
	assert_int_equal(json_parse(p, good, sizeof good - 1, &doc, &e), 0);
	assert_false(json_path_repeats(paths[0], &doc, 0, &key));
	assert_false(json_path_repeats(paths[1], &doc, 0, &key));
	json_parser_free(p);
	/* The good document streams whole, its records as without the option. */
	json_stream_t *st = json_stream_new_paths(paths, 2, &o);
	json_stream_feed(st, good, sizeof good - 1);
	json_stream_record_t rec;
	json_error_t err;
	int n = 0, r;
	while ((r = json_stream_next(st, &rec, &err)) == JSON_STREAM_RECORD)
		n++;
	json_stream_finish(st);
	while ((r = json_stream_next(st, &rec, &err)) == JSON_STREAM_RECORD)
		n++;
	assert_int_equal(r, JSON_STREAM_END);
	assert_int_equal(n, 2);
	json_stream_free(st);
	/* Under a '*' step every member is taken, repeated names too. */
	static const char star[] = "{\"a\":[1],\"a\":[2]}";
	const json_path_t *all = compile("$.*[*]");
	st = json_stream_new_paths(&all, 1, &o);
	json_stream_feed(st, star, sizeof star - 1);
	n = 0;
	while ((r = json_stream_next(st, &rec, &err)) == JSON_STREAM_RECORD)
		n++;
	json_stream_finish(st);
	while ((r = json_stream_next(st, &rec, &err)) == JSON_STREAM_RECORD)
		n++;
	assert_int_equal(r, JSON_STREAM_END);
	assert_int_equal(n, 2);
	json_stream_free(st);
	json_path_free((json_path_t *)all);
	/* Without the option, the stream follows both (duplicate_keys_each_followed). */
	for (int i = 0; i < 2; i++)
		json_path_free((json_path_t *)paths[i]);
}

/* A rows path relative to a row ('@') has nothing to be relative to. */
static void rows_path_must_be_rooted(void **state)
{
	(void)state;
	json_path_t *rows = compile("@.x");
	errno = 0;
	assert_null(json_stream_new(rows, NULL));
	assert_int_equal(errno, EINVAL);
	json_path_free(rows);
}

/* ---- Several rows paths in one stream (json_stream_new_paths): the records
 * each path selects are, in order, those of a stream of that path alone, and
 * so json_path_each's on the whole input; the error is the same. */

static const char *const multi_paths[] = {"$.statuses[*]", "$.*[*]", "$[0][0]",
                                          "$.search_metadata.count"};
#define N_MULTI (sizeof multi_paths / sizeof multi_paths[0])

/* The records of src cut at cuts, through s (new or just reset). */
static void multi_stream_with(json_stream_t *s, const char *src, size_t len, const size_t *cuts,
                              size_t n_cuts, sc_result_t res[N_MULTI])
{
	memset(res, 0, N_MULTI * sizeof *res);
	size_t at = 0;
	int r = JSON_STREAM_MORE;
	json_error_t err = {0};
	for (size_t i = 0; i <= n_cuts && r == JSON_STREAM_MORE; i++) {
		size_t end = i < n_cuts ? cuts[i] : len;
		char *piece = malloc(end - at ? end - at : 1);
		assert_non_null(piece);
		memcpy(piece, src + at, end - at);
		json_stream_feed(s, piece, end - at);
		for (;;) {
			json_stream_record_t rec;
			r = json_stream_next(s, &rec, &err);
			if (r == JSON_STREAM_MORE && i == n_cuts) {
				json_stream_finish(s);
				continue;
			}
			if (r != JSON_STREAM_RECORD)
				break;
			assert_true(rec.paths != 0 && rec.paths < (1ull << N_MULTI));
			for (size_t k = 0; k < N_MULTI; k++)
				if (rec.paths >> k & 1)
					sc_add(&res[k], &rec.doc, 0, rec.offset);
		}
		free(piece);
		at = end;
	}
	for (size_t k = 0; k < N_MULTI; k++) {
		res[k].r = r < 0 ? -1 : 0;
		res[k].err = err;
	}
}

static void multi_stream(const json_path_t *const *rows, const char *src, size_t len,
                         const size_t *cuts, size_t n_cuts, sc_result_t res[N_MULTI])
{
	json_stream_t *s = json_stream_new_paths(rows, N_MULTI, NULL);
	assert_non_null(s);
	multi_stream_with(s, src, len, cuts, n_cuts, res);
	json_stream_free(s);
}

static void multi_file(json_parser_t *p, const json_path_t *const *rows, const file_t *f,
                       size_t *cuts, size_t n_cuts, const char *split)
{
	sc_result_t got[N_MULTI];
	multi_stream(rows, f->data, f->len, cuts, n_cuts, got);
	for (size_t k = 0; k < N_MULTI; k++) {
		sc_result_t want;
		sc_whole(p, rows[k], f->data, f->len, &want);
		expect_same(f, multi_paths[k], &want, &got[k], split);
		sc_result_free(&want);
		sc_result_free(&got[k]);
	}
}

/* A parser for the whole-input results, and multi_paths compiled. */
static json_parser_t *multi_begin(const json_path_t *rows[N_MULTI])
{
	json_parser_t *p = json_parser_new(0);
	assert_non_null(p);
	for (size_t k = 0; k < N_MULTI; k++)
		rows[k] = compile(multi_paths[k]);
	return p;
}

static void multi_end(json_parser_t *p, const json_path_t *rows[N_MULTI])
{
	for (size_t k = 0; k < N_MULTI; k++)
		json_path_free((json_path_t *)rows[k]);
	json_parser_free(p);
}

static void several_paths_one_pass(void **state)
{
	(void)state;
	const json_path_t *rows[N_MULTI];
	json_parser_t *p = multi_begin(rows);
	size_t *cuts = malloc(CUTS_MAX * sizeof *cuts);
	assert_non_null(cuts);
	for (size_t i = 0; i < n_files; i++) {
		const file_t *f = &files[i];
		char split[64];
		if (f->len <= EVERY_SPLIT_BYTES_MAX) {
			for (size_t at = 0; at <= f->len; at += 1 + f->len / 64) {
				cuts[0] = at;
				snprintf(split, sizeof split, "at %zu", at);
				multi_file(p, rows, f, cuts, 1, split);
			}
			continue;
		}
		for (uint64_t plan = 1; plan <= 4; plan++) {
			uint64_t seed = plan * 0x9E3779B97F4A7C15ull ^ f->len;
			size_t max_piece = (size_t)1 << (3 + plan * 4), n = 0, at = 0;
			while (n < CUTS_MAX && (at += 1 + rnd(&seed) % max_piece) < f->len)
				cuts[n++] = at;
			snprintf(split, sizeof split, "plan %llu", (unsigned long long)plan);
			multi_file(p, rows, f, cuts, n, split);
		}
	}
	free(cuts);
	multi_end(p, rows);
}

/* json_stream_reset: one stream for every file, reset each time after it
 * was left mid-document (a job abandoned halfway), or after the previous
 * file ended or failed, gives the records and error a new stream gives. */
static void reset_stream_reused(void **state)
{
	(void)state;
	const json_path_t *rows[N_MULTI];
	json_parser_t *p = multi_begin(rows);
	json_stream_t *s = json_stream_new_paths(rows, N_MULTI, NULL);
	assert_non_null(s);
	for (size_t i = 0; i < n_files; i++) {
		const file_t *f = &files[i];
		if (i % 2) { /* half of a document, its records pulled, never finished */
			json_stream_reset(s);
			json_stream_feed(s, f->data, f->len / 2);
			json_stream_record_t rec;
			json_error_t err;
			while (json_stream_next(s, &rec, &err) == JSON_STREAM_RECORD)
				;
		}
		json_stream_reset(s);
		size_t cut = f->len / 3;
		sc_result_t got[N_MULTI];
		multi_stream_with(s, f->data, f->len, &cut, 1, got);
		assert_true(json_stream_bytes(s) > sizeof(void *));
		for (size_t k = 0; k < N_MULTI; k++) {
			sc_result_t want;
			sc_whole(p, rows[k], f->data, f->len, &want);
			expect_same(f, multi_paths[k], &want, &got[k], "reset, a third");
			sc_result_free(&want);
			sc_result_free(&got[k]);
		}
	}
	json_stream_free(s);
	multi_end(p, rows);
}

/* Paths where one value would be a record of one and hold records of the
 * other are refused; two paths may select the same value. */
static void overlapping_paths_refused(void **state)
{
	(void)state;
	static const char *const bad[][2] = {
		{"$.a", "$.a.b[*]"}, {"$.*", "$.a[*]"}, {"$", "$.x"}, {"$[*]", "$[0].y"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const json_path_t *rows[2] = {compile(bad[i][0]), compile(bad[i][1])};
		assert_true(json_stream_paths_overlap(rows[0], rows[1]));
		errno = 0;
		assert_null(json_stream_new_paths(rows, 2, NULL));
		assert_int_equal(errno, EINVAL);
		json_path_free((json_path_t *)rows[0]);
		json_path_free((json_path_t *)rows[1]);
	}
	const json_path_t *rows[3] = {compile("$.a[*]"), compile("$.*[*]"), compile("$.b.c")};
	static const char doc[] = "{\"a\":[1,{\"x\":2}],\"b\":{\"c\":3},\"d\":[4]}";
	json_stream_t *s = json_stream_new_paths(rows, 3, NULL);
	assert_non_null(s);
	json_stream_feed(s, doc, sizeof doc - 1);
	json_stream_record_t rec;
	json_error_t err;
	static const uint64_t want_paths[] = {3, 3, 6, 2}; /* b.c: `[*]` takes members too */
	static const size_t want_offset[] = {6, 8, 26, 34};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(json_stream_next(s, &rec, &err), JSON_STREAM_RECORD);
		assert_int_equal(rec.paths, want_paths[i]);
		assert_int_equal(rec.offset, want_offset[i]);
	}
	assert_int_equal(json_stream_next(s, &rec, &err), JSON_STREAM_MORE);
	json_stream_finish(s);
	assert_int_equal(json_stream_next(s, &rec, &err), JSON_STREAM_END);
	json_stream_free(s);
	for (size_t k = 0; k < 3; k++)
		json_path_free((json_path_t *)rows[k]);
}

/* ---- --big: a document much larger than the stream's buffers. */

#define BIG_BYTES (200ull << 20)
#define BIG_PIECE_BYTES (1u << 20)
#define BIG_RSS_KIB_MAX (64u << 10) /* without sanitizers */

/* Writes the document's bytes [*at, ...) into piece, up to cap, as if the
 * whole document were `{"meta":{...},"items":[r0,r1,...]}` with records
 * until BIG_BYTES; *rec and *rec_at track the record being written. */
typedef struct {
	uint64_t next_id;
	char rec[256];
	size_t rec_len, rec_at;
	int phase; /* 0 head, 1 records, 2 tail, 3 done */
	uint64_t written;
} gen_t;

static size_t gen_piece(gen_t *g, char *piece, size_t cap)
{
	size_t n = 0;
	while (n < cap && g->phase < 3) {
		if (g->rec_at == g->rec_len) {
			int k;
			if (g->phase == 0) {
				k = snprintf(g->rec, sizeof g->rec,
				             "{\"meta\":{\"source\":\"generated\",\"bytes\":%llu},\n"
				             "\"items\":[",
				             BIG_BYTES);
				g->phase = 1;
			} else if (g->phase == 1 && g->written < BIG_BYTES) {
				uint64_t id = g->next_id++;
				k = snprintf(g->rec, sizeof g->rec,
				             "%s{\"id\":%llu,\"name\":\"item \\\"%llu\\\" \\u00e9\","
				             "\"tags\":[\"a\",\"b\",{\"deep\":[[],{}]}],\"v\":%llu.5e-1}\n",
				             id ? "," : "", (unsigned long long)id,
				             (unsigned long long)id, (unsigned long long)(id % 1000));
			} else if (g->phase == 1) {
				k = snprintf(g->rec, sizeof g->rec, "],\"tail\":true}\n");
				g->phase = 2;
			} else {
				g->phase = 3;
				break;
			}
			g->rec_len = (size_t)k;
			g->rec_at = 0;
		}
		size_t take = g->rec_len - g->rec_at;
		if (take > cap - n)
			take = cap - n;
		memcpy(piece + n, g->rec + g->rec_at, take);
		g->rec_at += take;
		n += take;
		g->written += take;
	}
	return n;
}

static void big_document_bounded_memory(void **state)
{
	(void)state;
	json_path_t *rows = compile("$.items[*]");
	json_path_t *id = compile("@.id");
	json_stream_opts_t o = {.keep_envelope = true};
	json_stream_t *s = json_stream_new(rows, &o);
	assert_non_null(s);
	char *piece = malloc(BIG_PIECE_BYTES);
	assert_non_null(piece);
	gen_t g = {0};
	uint64_t n_recs = 0, id_sum = 0, total = 0;
	json_stream_record_t rec;
	json_error_t err;
	int r;
	for (;;) {
		/* Odd piece sizes, so records are cut everywhere. */
		size_t n = gen_piece(&g, piece, BIG_PIECE_BYTES - (size_t)(total % 4093));
		total += n;
		if (n)
			json_stream_feed(s, piece, n);
		else
			json_stream_finish(s);
		while ((r = json_stream_next(s, &rec, &err)) == JSON_STREAM_RECORD) {
			int64_t v = -1;
			assert_int_equal(json_path_each(id, &rec.doc, 0, first_int, &v), 1);
			assert_int_equal((uint64_t)v, n_recs);
			id_sum += (uint64_t)v;
			n_recs++;
		}
		if (r != JSON_STREAM_MORE)
			break;
	}
	if (r < 0)
		fail_msg("%s at %zu", err.reason, err.offset);
	assert_int_equal(r, JSON_STREAM_END);
	assert_true(total > BIG_BYTES);
	assert_int_equal(n_recs, g.next_id);
	assert_int_equal(id_sum, n_recs * (n_recs - 1) / 2);
	json_doc_t env;
	assert_int_equal(json_stream_envelope(s, &env), 0);
	assert_int_equal(path_int(&env, "$.meta.bytes"), (int64_t)BIG_BYTES);
	struct rusage ru;
	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	printf("big: %llu bytes, %llu records, peak RSS %ld KiB\n", (unsigned long long)total,
	       (unsigned long long)n_recs, ru.ru_maxrss);
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's shadow memory and quarantine add their own share. */
	assert_true(ru.ru_maxrss < (long)(4 * BIG_RSS_KIB_MAX));
#else
	assert_true(ru.ru_maxrss < (long)BIG_RSS_KIB_MAX);
#endif
	free(piece);
	json_stream_free(s);
	json_path_free(id);
	json_path_free(rows);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--big") == 0) {
		const struct CMUnitTest big[] = {cmocka_unit_test(big_document_bounded_memory)};
		return cmocka_run_group_tests_name("json_stream_big", big, NULL, NULL);
	}
	if (argc < 3) {
		fprintf(stderr, "usage: %s JSONTestSuite/test_parsing CORPUS_DIR | --big\n", argv[0]);
		return 2;
	}
	dirs[0] = argv[1];
	dirs[1] = argv[2];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_file_every_split),
		cmocka_unit_test(ndjson_every_split),
		cmocka_unit_test(envelope_before_records),
		cmocka_unit_test(envelope_without_records),
		cmocka_unit_test(backslash_runs_every_split),
		cmocka_unit_test(error_line_after_many_newlines),
		cmocka_unit_test(value_limit),
		cmocka_unit_test(duplicate_keys_each_followed),
		cmocka_unit_test(repeated_names_refused),
		cmocka_unit_test(rows_path_must_be_rooted),
		cmocka_unit_test(several_paths_one_pass),
		cmocka_unit_test(reset_stream_reused),
		cmocka_unit_test(overlapping_paths_refused),
	};
	return RUN_ON_EACH_KERNEL("json_stream", tests, load_files, free_files);
}
