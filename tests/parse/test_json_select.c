/* tests/parse/test_json_select.c: selection on demand (json_select) against
 * json_parse + json_path_each on the whole tape.
 *
 * argv[1] is JSONTestSuite/test_parsing, argv[2] the corpus directory. For
 * every y_ file and every corpus document (each line of an NDJSON file), and
 * for a fixed set of paths plus paths made from the document's own keys, the
 * values json_select passes on (compact JSON, in order, per path) must equal
 * what json_path_each selects on the full tape. With the path `$` the whole
 * root is checked, so every n_ file must fail exactly as json_parse does;
 * errors stage 1 finds are json_parse's whatever the paths. The group runs
 * once per stage-1 kernel this CPU supports. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse/json.h"
#include "parse/json_internal.h"
#include "tests/parse/each_kernel.h"
#include "tests/parse/ndjson_lines_alone.h"

#define SUITE_FILES_MIN 300u /* so the test cannot pass on an empty directory */
#define CORPUS_FILES_MIN 4u
#define FILES_MAX 1024u
#define NAME_BYTES_MAX 256u
#define PATHS_MAX 48u
#define KEY_PATHS_MAX 6u     /* root keys turned into paths, per document */
#define KEY_BYTES_MAX 200u
#define EXPR_BYTES_MAX 512u

typedef struct {
	char name[NAME_BYTES_MAX];
	char *data;
	size_t len;
} file_t;

typedef struct {
	file_t files[FILES_MAX];
	size_t n;
} fileset_t;

static const char *suite_dir, *corpus_dir;
static fileset_t suite, corpus;
static json_parser_t *parser_full, *parser_sel;
static unsigned long long n_compared, n_values;

/* Paths tried on every document: they cover every step kind, nesting, and
 * the twitter selectors the benchmark uses. */
static const char *const fixed_paths[] = {
	"$", "@", "$[*]", "$.*", "$[0]", "$[1]", "$[2]", "$[*][*]", "$.*.*", "$.*[*]", "$[*].*",
	"$[0][0]", "$[*][0]", "$.a", "$.a.b", "$[*].a", "$.statuses[*].id",
	"$.statuses[*].user.screen_name", "$.statuses[*].entities.hashtags[*].text",
	"$.features[*].geometry.coordinates[0][0]", "$.performances[*].seatCategories[*]",
	"$.topics", "$['']", "$[0][*].*", "$.*[1]",
};

static int load_dir(const char *dir, fileset_t *set, const char *prefix)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "cannot open %s\n", dir);
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL && set->n < FILES_MAX) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= NAME_BYTES_MAX ||
		    strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		rewind(f);
		file_t *fl = &set->files[set->n];
		fl->len = n > 0 ? (size_t)n : 0;
		fl->data = malloc(fl->len ? fl->len : 1); /* exactly its size: overreads trip ASan */
		if (n >= 0 && fl->data && fread(fl->data, 1, fl->len, f) == fl->len) {
			strcpy(fl->name, e->d_name);
			set->n++;
		} else {
			free(fl->data);
		}
		fclose(f);
	}
	closedir(d);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	suite.n = corpus.n = 0;
	if (load_dir(suite_dir, &suite, "") < 0 || load_dir(corpus_dir, &corpus, "") < 0)
		return -1;
	parser_full = json_parser_new(0);
	parser_sel = json_parser_new(0);
	return parser_full && parser_sel ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < suite.n; i++)
		free(suite.files[i].data);
	for (size_t i = 0; i < corpus.n; i++)
		free(corpus.files[i].data);
	json_parser_free(parser_full);
	json_parser_free(parser_sel);
	return 0;
}

/* ---- what each side selected, as text: "path#\tvalue\n" per value */

typedef struct {
	json_buf_t *out;
	uint32_t path;
} full_ctx_t;

static int append_value(json_buf_t *out, uint32_t path, const json_doc_t *d, uint32_t node)
{
	char tag[16];
	int n = snprintf(tag, sizeof tag, "%u\t", path);
	if (json_buf_append(out, tag, (size_t)n) < 0 || json_write(d, node, out) < 0 ||
	    json_buf_append(out, "\n", 1) < 0)
		return -1;
	return 0;
}

static int full_visit(void *ctx, const json_doc_t *d, uint32_t node)
{
	full_ctx_t *c = ctx;
	return append_value(c->out, c->path, d, node);
}

static int select_visit(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	assert_int_equal(node, 0);
	return append_value(ctx, path, d, node);
}

/* `$['key']` with ' and \ escaped; false for keys a path cannot hold here. */
static bool key_path(char *expr, const char *key, size_t len, const char *suffix)
{
	if (len > KEY_BYTES_MAX || memchr(key, '\0', len))
		return false;
	size_t o = 0;
	o += (size_t)snprintf(expr, EXPR_BYTES_MAX, "$['");
	for (size_t i = 0; i < len; i++) {
		if (key[i] == '\'' || key[i] == '\\')
			expr[o++] = '\\';
		expr[o++] = key[i];
	}
	snprintf(expr + o, EXPR_BYTES_MAX - o, "']%s", suffix);
	return true;
}

/* Compiles the fixed paths and the root keys' paths of doc into paths[]. */
static uint32_t make_paths(const json_doc_t *doc, json_path_t **paths)
{
	uint32_t n = 0;
	json_error_t e;
	for (size_t i = 0; i < sizeof fixed_paths / sizeof *fixed_paths; i++)
		assert_int_equal(json_path_compile(fixed_paths[i], &paths[n++], &e), 0);
	if (json_type(doc, 0) != JSON_OBJECT)
		return n;
	uint32_t key = 1;
	for (uint32_t m = 0; m < doc->nodes[0].count && m < KEY_PATHS_MAX; m++) {
		char name[KEY_BYTES_MAX + 1], expr[EXPR_BYTES_MAX];
		size_t len = json_string_get(doc, key, name, sizeof name);
		static const char *const suffixes[] = {"", "[*]", ".*", "[0]"};
		for (size_t s = 0; s < 4 && len <= KEY_BYTES_MAX; s++)
			if (key_path(expr, name, len, suffixes[s]) && n < PATHS_MAX)
				assert_int_equal(json_path_compile(expr, &paths[n++], &e), 0);
		key = doc->nodes[key + 1].next;
	}
	return n;
}

/* One valid document: json_select of every path at once equals
 * json_path_each path by path. */
static void compare_doc(const char *what, const char *src, size_t len)
{
	json_doc_t doc;
	json_error_t e;
	if (json_parse(parser_full, src, len, &doc, &e) != 0)
		fail_msg("%s: json_parse: %s at %zu", what, e.reason, e.offset);
	json_path_t *paths[PATHS_MAX];
	uint32_t n_paths = make_paths(&doc, paths);
	json_buf_t want = {0}, got = {0};
	for (uint32_t i = 0; i < n_paths; i++) {
		full_ctx_t c = {.out = &want, .path = i};
		assert_int_equal(json_path_each(paths[i], &doc, 0, full_visit, &c), 0);
	}
	int r = json_select(parser_sel, src, len, (const json_path_t *const *)paths, n_paths,
	                    select_visit, &got, &e);
	if (r != 0)
		fail_msg("%s: json_select: %s at %zu", what, r < 0 ? e.reason : "visitor", e.offset);
	if (want.len != got.len || (want.len && memcmp(want.data, got.data, want.len) != 0)) {
		fprintf(stderr, "%s: full tape:\n%.*s\non demand:\n%.*s\n", what, (int)want.len,
		        want.data ? want.data : "", (int)got.len, got.data ? got.data : "");
		fail_msg("%s: json_select differs from json_path_each", what);
	}
	/* Path by path too: one path's walk must not depend on another's. */
	for (uint32_t i = 0; i < n_paths; i += 7) {
		json_buf_t one = {0}, ref = {0};
		full_ctx_t c = {.out = &ref, .path = 0};
		assert_int_equal(json_path_each(paths[i], &doc, 0, full_visit, &c), 0);
		assert_int_equal(json_select(parser_sel, src, len,
		                             (const json_path_t *const *)&paths[i], 1, select_visit,
		                             &one, &e),
		                 0);
		assert_true(one.len == ref.len && (!one.len || memcmp(one.data, ref.data, one.len) == 0));
		json_buf_free(&one);
		json_buf_free(&ref);
	}
	n_compared++;
	n_values += want.len ? 1 : 0;
	json_buf_free(&want);
	json_buf_free(&got);
	for (uint32_t i = 0; i < n_paths; i++)
		json_path_free(paths[i]);
}

static void inputs_are_there(void **state)
{
	(void)state;
	assert_true(suite.n >= SUITE_FILES_MIN);
	assert_true(corpus.n >= CORPUS_FILES_MIN);
}

static void y_files_agree(void **state)
{
	(void)state;
	size_t n_y = 0;
	for (size_t i = 0; i < suite.n; i++) {
		if (strncmp(suite.files[i].name, "y_", 2) != 0)
			continue;
		compare_doc(suite.files[i].name, suite.files[i].data, suite.files[i].len);
		n_y++;
	}
	assert_true(n_y >= 90);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void corpus_agrees(void **state)
{
	(void)state;
	for (size_t i = 0; i < corpus.n; i++) {
		const file_t *f = &corpus.files[i];
		if (!ends_with(f->name, ".ndjson")) {
			compare_doc(f->name, f->data, f->len);
			continue;
		}
		size_t lines = 0;
		for (size_t at = 0; at < f->len;) {
			const char *nl = memchr(f->data + at, '\n', f->len - at);
			size_t end = nl ? (size_t)(nl - f->data) : f->len;
			if (end > at) {
				compare_doc(f->name, f->data + at, end - at);
				lines++;
			}
			at = end + 1;
		}
		assert_true(lines > 0);
	}
}

static int nothing(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	(void)path;
	(void)d;
	(void)node;
	(*(int *)ctx)++;
	return 0;
}

/* Every JSONTestSuite file with `$` (the root checked whole), and with a path
 * that skips nearly everything: with `$` the verdict and error are exactly
 * json_parse's; otherwise a valid file is accepted, and an error stage 1
 * finds, or an empty document, is json_parse's. */
static void errors_match(void **state)
{
	(void)state;
	json_path_t *root, *skip;
	json_error_t e;
	assert_int_equal(json_path_compile("$", &root, &e), 0);
	assert_int_equal(json_path_compile("$.no_such_key[3]", &skip, &e), 0);
	for (size_t i = 0; i < suite.n; i++) {
		const file_t *f = &suite.files[i];
		json_doc_t doc;
		json_error_t want = {0}, got = {0};
		int calls = 0;
		int rf = json_parse(parser_full, f->data, f->len, &doc, &want);
		int rs = json_select(parser_sel, f->data, f->len, (const json_path_t *const *)&root, 1,
		                     nothing, &calls, &got);
		if (rf != rs || (rf < 0 && (want.offset != got.offset || want.line != got.line ||
		                            strcmp(want.reason, got.reason) != 0)))
			fail_msg("%s with $: json_parse %d %s@%zu, json_select %d %s@%zu", f->name, rf,
			         rf ? want.reason : "", want.offset, rs, rs ? got.reason : "", got.offset);
		assert_int_equal(calls, rf == 0 ? 1 : 0);
		rs = json_select(parser_sel, f->data, f->len, (const json_path_t *const *)&skip, 1,
		                 nothing, &calls, &got);
		if (rf == 0)
			assert_int_equal(rs, 0);
		bool stage1 = rf < 0 && (strcmp(want.reason, JSON_E_UTF8) == 0 ||
		                         strcmp(want.reason, JSON_E_CONTROL) == 0 ||
		                         strcmp(want.reason, JSON_E_UNTERMINATED) == 0 ||
		                         strcmp(want.reason, JSON_E_EMPTY) == 0);
		if (stage1 && (rs >= 0 || want.offset != got.offset ||
		               strcmp(want.reason, got.reason) != 0))
			fail_msg("%s: stage-1 error %s@%zu, json_select %d %s@%zu", f->name, want.reason,
			         want.offset, rs, rs ? got.reason : "", got.offset);
	}
	json_path_free(root);
	json_path_free(skip);
}

typedef struct {
	const char *doc, *path;
	const char *values;          /* expected values, each followed by '\n' (NULL: error) */
	const char *reason;          /* the error's reason */
	size_t offset;               /* and offset */
} case_t;

/* What is and is not checked off the path (docs/parse.md), and duplicates. */
static void documented_cases(void **state)
{
	(void)state;
	static const case_t cases[] = {
		/* Skipped values are not checked inside ... */
		{"{\"a\":[1,2},\"b\":1}", "$.b", "0\t1\n", NULL, 0},
		{"{\"a\":01,\"b\":true}", "$.b", "0\ttrue\n", NULL, 0},
		{"{\"a\":[1 2 nul],\"b\":\"x\"}", "$.b", "0\t\"x\"\n", NULL, 0},
		{"{\"a\":\"\\q\",\"b\":2}", "$.b", "0\t2\n", NULL, 0},
		/* ... but selected ones are, whole ... */
		{"{\"a\":01,\"b\":true}", "$.a", NULL, JSON_E_NUMBER, 6},
		{"{\"a\":[1,2,],\"b\":1}", "$.a", NULL, JSON_E_TRAILING_COMMA, 9},
		{"{\"a\":\"\\q\",\"b\":2}", "$.a", NULL, JSON_E_ESCAPE, 6},
		/* ... and so are the containers on the path, and their keys ... */
		{"{\"a\":1 \"b\":2}", "$.b", NULL, JSON_E_UNEXPECTED, 7},
		{"{\"a\" 1,\"b\":2}", "$.b", NULL, JSON_E_UNEXPECTED, 5},
		{"{\"a\":1,\"b\":2,}", "$.b", NULL, JSON_E_TRAILING_COMMA, 12},
		{"{\"\\x\":1,\"b\":2}", "$.b", NULL, JSON_E_ESCAPE, 2},
		{"[[1],[2],}", "$[1][0]", NULL, JSON_E_UNEXPECTED, 9},
		{"[[1],[2],]", "$[*][0]", NULL, JSON_E_TRAILING_COMMA, 8},
		/* ... the brackets of the whole document, and what follows it. */
		{"{\"a\":[[[1]],\"b\":2}", "$.b", NULL, JSON_E_END, 18},
		{"{\"b\":2} x", "$.b", NULL, JSON_E_TRAILING_DATA, 8},
		{"{\"b\":2}]", "$.zz", NULL, JSON_E_TRAILING_DATA, 7},
		{"[1,[2,[3]]]", "$[0]", "0\t1\n", NULL, 0},
		/* Stage 1 still sees everything. */
		{"{\"a\":\"\x01\",\"b\":2}", "$.b", NULL, JSON_E_CONTROL, 6},
		{"{\"a\":\"\xc3\",\"b\":2}", "$.b", NULL, JSON_E_UTF8, 6},
		/* The last duplicate wins, at every level. */
		{"{\"a\":{\"b\":1},\"a\":{\"b\":2}}", "$.a.b", "0\t2\n", NULL, 0},
		{"{\"a\":[1,2],\"a\":[3]}", "$.a[*]", "0\t3\n", NULL, 0},
		{"{\"a\":{\"b\":1,\"b\":5},\"c\":0}", "$.a.b", "0\t5\n", NULL, 0},
		{"[{\"a\":1,\"a\":2},{\"a\":3}]", "$[*].a", "0\t2\n0\t3\n", NULL, 0},
		{"{\"a\\u0062\":7}", "$.ab", "0\t7\n", NULL, 0},
		{"{\"a\\\\nb\":7}", "$['a\\\\nb']", "0\t7\n", NULL, 0},
		{"{\"a\\nb\":7}", "$['a\\\\nb']", "", NULL, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const case_t *c = &cases[i];
		json_path_t *path;
		json_error_t e;
		assert_int_equal(json_path_compile(c->path, &path, &e), 0);
		json_buf_t got = {0};
		int r = json_select(parser_sel, c->doc, strlen(c->doc),
		                    (const json_path_t *const *)&path, 1, select_visit, &got, &e);
		if (c->values) {
			if (r != 0)
				fail_msg("case %zu %s %s: %s at %zu", i, c->doc, c->path, e.reason, e.offset);
			if (got.len != strlen(c->values) ||
			    (got.len && memcmp(got.data, c->values, got.len) != 0))
				fail_msg("case %zu %s %s: got '%.*s'", i, c->doc, c->path, (int)got.len,
				         got.data ? got.data : "");
		} else {
			if (r != -1 || strcmp(e.reason, c->reason) != 0 || e.offset != c->offset)
				fail_msg("case %zu %s %s: want %s@%zu, got %d %s@%zu", i, c->doc, c->path,
				         c->reason, c->offset, r, r ? e.reason : "", e.offset);
			assert_int_equal(got.len, 0); /* nothing before the error */
		}
		json_buf_free(&got);
		json_path_free(path);
	}
}

/* The nesting limit holds in skipped values too. */
static void depth_limit(void **state)
{
	(void)state;
	json_parser_t *p = json_parser_new(4);
	assert_non_null(p);
	json_path_t *path;
	json_error_t e;
	assert_int_equal(json_path_compile("$.b", &path, &e), 0);
	const char *ok = "{\"a\":[[[1]]],\"b\":1}", *deep = "{\"a\":[[[[1]]]],\"b\":1}";
	int calls = 0;
	assert_int_equal(json_select(p, ok, strlen(ok), (const json_path_t *const *)&path, 1,
	                             nothing, &calls, &e),
	                 0);
	assert_int_equal(calls, 1);
	assert_int_equal(json_select(p, deep, strlen(deep), (const json_path_t *const *)&path, 1,
	                             nothing, &calls, &e),
	                 -1);
	assert_string_equal(e.reason, JSON_E_DEPTH);
	assert_int_equal(e.offset, 8);
	json_path_free(path);
	json_parser_free(p);
}

/* Skipping a container checks its entries four at a time and falls back to
 * one at a time near the end or the limit: over nested arrays and objects of
 * every shape up to a few levels past the limit, a skipped value must fail
 * (or pass) exactly as json_parse does, whichever of the four entries closes
 * it or crosses the limit. */
static uint32_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return (uint32_t)(*x >> 32);
}

static size_t random_value(char *out, size_t at, size_t cap, uint64_t *x, uint32_t depth_left)
{
	uint32_t r = rng_next(x) % 8;
	if (depth_left == 0 || at + 16 >= cap || r < 3) {
		static const char *const scalars[] = {"1", "\"s\"", "true", "-2.5", "null"};
		const char *v = scalars[rng_next(x) % 5];
		memcpy(out + at, v, strlen(v));
		return at + strlen(v);
	}
	bool object = r < 5;
	out[at++] = object ? '{' : '[';
	uint32_t n = rng_next(x) % 4;
	for (uint32_t i = 0; i < n && at + 24 < cap; i++) {
		if (i)
			out[at++] = ',';
		if (object) {
			memcpy(out + at, "\"k\":", 4);
			at += 4;
		}
		at = random_value(out, at, cap, x, depth_left - 1);
	}
	out[at++] = object ? '}' : ']';
	return at;
}

static void skips_match_parse_depths(void **state)
{
	(void)state;
	json_path_t *path;
	json_error_t e;
	assert_int_equal(json_path_compile("$.b", &path, &e), 0);
	uint64_t x = 0x9E3779B97F4A7C15ull;
	char doc[4096];
	for (uint32_t depth_max = 1; depth_max <= 9; depth_max++) {
		json_parser_t *full = json_parser_new(depth_max), *sel = json_parser_new(depth_max);
		assert_true(full && sel);
		for (int i = 0; i < 2000; i++) {
			size_t at = 0;
			memcpy(doc, "{\"a\":", 5);
			at = random_value(doc, 5, sizeof doc - 16, &x, depth_max + 2);
			memcpy(doc + at, ",\"b\":7}", 8);
			at += 8;
			json_doc_t d;
			json_error_t want = {0}, got = {0};
			int calls = 0;
			int rf = json_parse(full, doc, at, &d, &want);
			int rs = json_select(sel, doc, at, (const json_path_t *const *)&path, 1, nothing,
			                     &calls, &got);
			if (rf != rs || (rf < 0 && (want.offset != got.offset ||
			                            strcmp(want.reason, got.reason) != 0)))
				fail_msg("depth_max %u, %.*s: json_parse %d %s@%zu, json_select %d %s@%zu",
				         depth_max, (int)at, doc, rf, rf ? want.reason : "", want.offset, rs,
				         rs ? got.reason : "", got.offset);
			assert_int_equal(calls, rf == 0 ? 1 : 0);
		}
		json_parser_free(full);
		json_parser_free(sel);
	}
	json_path_free(path);
}

/* ---- json_select_ndjson against json_select on each line alone */

/* "line offset\tpath\tvalue\n" per value, the line found from d->src. */
typedef struct {
	json_buf_t out;
	const char *src;
} lines_ctx_t;

static int lines_visit(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	lines_ctx_t *c = ctx;
	char tag[32];
	int n = snprintf(tag, sizeof tag, "%zu\t", (size_t)(d->src - c->src));
	if (json_buf_append(&c->out, tag, (size_t)n) < 0)
		return -1;
	return append_value(&c->out, path, d, node);
}

/* json_select_ndjson of src with paths equals the reference line by line:
 * the values (with their lines) and the first error. Returns its result. */
static int compare_ndjson(const char *what, const char *src, size_t len,
                          const json_path_t *const *paths, uint32_t n_paths)
{
	lines_ctx_t want = {.src = src}, got = {.src = src};
	json_error_t e_want = {0}, e_got = {0};
	int r_want = ndjson_select_lines_alone(parser_full, src, len, paths, n_paths, lines_visit,
	                                       &want, &e_want);
	int r_got = json_select_ndjson(parser_sel, src, len, paths, n_paths, lines_visit, &got,
	                               &e_got);
	if (r_want != r_got ||
	    (r_want < 0 && (e_want.offset != e_got.offset || e_want.line != e_got.line ||
	                    strcmp(e_want.reason, e_got.reason) != 0)))
		fail_msg("%s: json_select_ndjson %d (%s at %zu, line %zu), lines alone %d (%s at "
		         "%zu, line %zu)",
		         what, r_got, r_got ? e_got.reason : "-", e_got.offset, e_got.line, r_want,
		         r_want ? e_want.reason : "-", e_want.offset, e_want.line);
	if (want.out.len != got.out.len ||
	    (want.out.len && memcmp(want.out.data, got.out.data, want.out.len) != 0)) {
		fprintf(stderr, "%s: lines alone:\n%.*s\nbatch:\n%.*s\n", what, (int)want.out.len,
		        want.out.data ? want.out.data : "", (int)got.out.len,
		        got.out.data ? got.out.data : "");
		fail_msg("%s: json_select_ndjson selects other values than each line alone", what);
	}
	json_buf_free(&want.out);
	json_buf_free(&got.out);
	n_compared++;
	return r_got;
}

static const char *const ndjson_paths[] = {"$", "$[*]", "$.a", "$.no_such_key[3]", "$.*[*]"};
#define N_NDJSON_PATHS (sizeof ndjson_paths / sizeof *ndjson_paths)

/* Each JSONTestSuite file between two good lines, so its own newlines split
 * it (values that run on into the next line, lines with more after their
 * value), and the corpus's NDJSON whole: each path alone and all at once. */
static void ndjson_agrees_with_lines(void **state)
{
	(void)state;
	json_path_t *paths[N_NDJSON_PATHS];
	json_error_t e;
	for (size_t i = 0; i < N_NDJSON_PATHS; i++)
		assert_int_equal(json_path_compile(ndjson_paths[i], &paths[i], &e), 0);
	json_buf_t text = {0};
	size_t n_bad = 0;
	for (size_t f = 0; f < suite.n; f++) {
		text.len = 0;
		static const char head[] = "[1, {\"a\": 2}]\r\n\n", tail[] = "\n{\"a\": [3]}\n";
		assert_int_equal(json_buf_append(&text, head, sizeof head - 1), 0);
		assert_int_equal(json_buf_append(&text, suite.files[f].data, suite.files[f].len), 0);
		assert_int_equal(json_buf_append(&text, tail, sizeof tail - 1), 0);
		for (size_t i = 0; i <= N_NDJSON_PATHS; i++) {
			const json_path_t *const *ps = (const json_path_t *const *)paths;
			int r = i < N_NDJSON_PATHS ? compare_ndjson(suite.files[f].name, text.data,
			                                            text.len, ps + i, 1)
			                           : compare_ndjson(suite.files[f].name, text.data,
			                                            text.len, ps, N_NDJSON_PATHS);
			n_bad += r != 0;
		}
	}
	assert_true(n_bad > 0); /* the n_ files: errors were compared too */
	for (size_t f = 0; f < corpus.n; f++)
		if (ends_with(corpus.files[f].name, ".ndjson"))
			assert_int_equal(compare_ndjson(corpus.files[f].name, corpus.files[f].data,
			                                corpus.files[f].len,
			                                (const json_path_t *const *)paths, N_NDJSON_PATHS),
			                 0);
	json_buf_free(&text);
	for (size_t i = 0; i < N_NDJSON_PATHS; i++)
		json_path_free(paths[i]);
}

/* A value skipped by its brackets must not run on into the next line:
 * `{"a":[1,` ends its line, whatever the next line closes. */
static void ndjson_skip_stops_at_line_end(void **state)
{
	(void)state;
	static const char *const cases[] = {
		"{\"a\":[1,\n2],\"b\":3}\n", "{\"a\":{\"x\":\n1},\"b\":3}\n",
		"[[1,\n2],3]\n",               "{\"b\":1,\"a\":\n}\n",
		"{\"a\":[[[[\n]]]],\"b\":0}\n",
	};
	json_path_t *path;
	json_error_t e;
	assert_int_equal(json_path_compile("$.b", &path, &e), 0);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		int r = compare_ndjson(cases[i], cases[i], strlen(cases[i]),
		                       (const json_path_t *const *)&path, 1);
		if (r != -1)
			fail_msg("'%s': accepted a value across lines", cases[i]);
	}
	json_path_free(path);
}

static int stop_at_first(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	(void)path;
	(void)d;
	(void)node;
	int *calls = ctx;
	return ++*calls == 1 ? 1 : 0;
}

/* A callback's return stops json_select_ndjson at once, 1 included. */
static void ndjson_callback_stops(void **state)
{
	(void)state;
	json_path_t *path;
	json_error_t e;
	assert_int_equal(json_path_compile("$[*]", &path, &e), 0);
	int calls = 0;
	assert_int_equal(json_select_ndjson(parser_sel, "[1, 2]\n[3]\n", 11,
	                                    (const json_path_t *const *)&path, 1, stop_at_first,
	                                    &calls, &e),
	                 1);
	assert_int_equal(calls, 1);
	json_path_free(path);
}

static void report(void **state)
{
	(void)state;
	printf("compared %llu documents (%llu with values selected)\n", n_compared, n_values);
	assert_true(n_compared > 0 && n_values > 0);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s JSONTestSuite/test_parsing CORPUS_DIR\n", argv[0]);
		return 2;
	}
	suite_dir = argv[1];
	corpus_dir = argv[2];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(inputs_are_there), cmocka_unit_test(y_files_agree),
		cmocka_unit_test(corpus_agrees),    cmocka_unit_test(errors_match),
		cmocka_unit_test(documented_cases), cmocka_unit_test(depth_limit),
		cmocka_unit_test(skips_match_parse_depths), cmocka_unit_test(ndjson_agrees_with_lines),
		cmocka_unit_test(ndjson_skip_stops_at_line_end), cmocka_unit_test(ndjson_callback_stops),
		cmocka_unit_test(report),
	};
	return RUN_ON_EACH_KERNEL("json_select", tests, setup, teardown);
}
