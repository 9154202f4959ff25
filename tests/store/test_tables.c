/* tests/store/test_tables.c: several tables from one document, declared
 * columns and their types, null_if, and the append/upsert/ignore modes.
 *
 * batch_add_doc (store/batch.c) is checked field by field; then the writer
 * (store/writer.c) applies batches for three tables to a real SQLite file,
 * played by this thread as the loop, and the file is read back. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/batch.h"
#include "store/store.h"
#include "store/writer.h"

#define GUARD_MS 20000 /* a broken writer fails the test instead of hanging it */
#define ROW_TEXT_BYTES 2048

/* ---- specs built by hand, as engine/jobfile.c builds them ---------------- */

static void col(column_spec_t *c, const char *name, const char *expr, column_type_t type)
{
	json_error_t e;
	memset(c, 0, sizeof(*c));
	c->name = strdup(name);
	c->expr = strdup(expr);
	c->type = type;
	if (expr[0] == '{') {
		c->from = COLUMN_FROM_VAR;
		c->var = strndup(expr + 1, strlen(expr) - 2);
	} else {
		c->from = expr[0] == '@' ? COLUMN_FROM_ROW : COLUMN_FROM_DOC;
		assert_int_equal(json_path_compile(expr, &c->path, &e), 0);
	}
}

static char **strs(uint32_t n, const char *const *v)
{
	char **out = calloc(n ? n : 1, sizeof(char *));
	for (uint32_t i = 0; i < n; i++)
		out[i] = strdup(v[i]);
	return out;
}

static void table(table_spec_t *t, const char *name, const char *rows, uint32_t n_cols,
                  table_mode_t mode)
{
	json_error_t e;
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	assert_int_equal(json_path_compile(rows, &t->rows, &e), 0);
	t->n_cols = n_cols;
	t->cols = n_cols ? calloc(n_cols, sizeof(column_spec_t)) : NULL;
	t->mode = mode;
}

/* ---- rendering a batch ------------------------------------------------- */

static void render_field(const batch_field_t *f, char *out, size_t cap)
{
	int64_t i;
	double x;
	int n = snprintf(out, cap, " %.*s=", (int)f->name_len, f->name);
	out += n;
	cap -= (size_t)n;
	switch (f->type) {
	case FIELD_NULL: snprintf(out, cap, "n"); break;
	case FIELD_INT:
		memcpy(&i, f->value, 8);
		snprintf(out, cap, "i:%lld", (long long)i);
		break;
	case FIELD_REAL:
		memcpy(&x, f->value, 8);
		snprintf(out, cap, "r:%g", x);
		break;
	case FIELD_TEXT: snprintf(out, cap, "t:%.*s", (int)f->value_len, f->value); break;
	case FIELD_BIGINT: snprintf(out, cap, "g:%.*s", (int)f->value_len, f->value); break;
	case FIELD_JSON: snprintf(out, cap, "j:%.*s", (int)f->value_len, f->value); break;
	case FIELD_BOOL: snprintf(out, cap, "b:%d", f->value[0]); break;
	}
}

/* Every row as "TABLE: name=type:value ...". */
static int render_rows(const batch_t *b, char rows[][ROW_TEXT_BYTES], int max)
{
	batch_iter_t it;
	batch_iter_init(&it, b);
	int n = 0, nf;
	while ((nf = batch_next_row(&it)) >= 0) {
		assert_true(n < max);
		snprintf(rows[n], ROW_TEXT_BYTES, "%u:", it.table);
		for (int i = 0; i < nf; i++) {
			batch_field_t f;
			size_t used = strlen(rows[n]);
			batch_next_field(&it, &f);
			render_field(&f, rows[n] + used, ROW_TEXT_BYTES - used);
		}
		n++;
	}
	assert_int_equal(it.pos, b->rows.len);
	return n;
}

/* Parses json (and vars, when not NULL) and adds its rows for tables. */
static int add_doc(batch_t *b, const table_spec_t *tables, uint32_t n, const char *json,
                   const char *vars, const char **reason)
{
	json_parser_t *p = json_parser_new(0), *pv = json_parser_new(0);
	json_doc_t d, v;
	json_error_t e;
	assert_int_equal(json_parse(p, json, strlen(json), &d, &e), 0);
	if (vars)
		assert_int_equal(json_parse(pv, vars, strlen(vars), &v, &e), 0);
	int rc = batch_add_doc(b, tables, n, &d, vars ? &v : NULL, reason);
	json_parser_free(p);
	json_parser_free(pv);
	return rc;
}

typedef struct {
	const char *v, *want;
} conv_case_t;

/* Each case's value {"v": V} through a table of the declared columns of t,
 * rendered, against its want. */
static void expect_conversions(table_spec_t *t, const conv_case_t *cases, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		size_t cap = strlen(cases[k].v) + 32;
		char *doc = malloc(cap), rows[1][ROW_TEXT_BYTES], want[256];
		snprintf(doc, cap, "[{\"v\":%s}]", cases[k].v);
		const char *reason = NULL;
		batch_t *b = batch_new(BATCH_JOB_DONE, 1);
		assert_int_equal(add_doc(b, t, 1, doc, NULL, &reason), 0);
		assert_int_equal(render_rows(b, rows, 1), 1);
		snprintf(want, sizeof(want), "0: %s", cases[k].want);
		if (strcmp(rows[0], want) != 0)
			fail_msg("%.20s: got \"%s\", want \"%s\"", cases[k].v, rows[0], want);
		batch_free(b);
		free(doc);
	}
}

/* Declared integer and real columns take a whole decimal number (integer)
 * or a finite decimal number (real), exactly as docs/jobfile.md says, the
 * whole decided on the decimal text, not on a double: no hex, no NUL-cut
 * strings, no "inf"; 1e-400 and 1.0000000000000000001 are not whole, and
 * "9223372036854775807.0" is. (On 2c0659b: 16, 1, 0, 1 and NULL.) A whole
 * number beyond int64, as a number or a string of any length, is kept as
 * its text (a BIGINT field, which the writer refuses for an INTEGER
 * column), never NULL: before, "9223372036854775808", 1e19 and 1e30 were
 * NULL, and two such ids in a key column were two NULL keys. */
static void test_integer_and_real_conversions_are_exact(void **state)
{
	(void)state;
	table_spec_t *t = calloc(1, sizeof(*t));
	table(&t[0], "v", "$[*]", 2, TABLE_APPEND);
	col(&t[0].cols[0], "i", "@.v", COLUMN_INTEGER);
	col(&t[0].cols[1], "r", "@.v", COLUMN_REAL);
	static const conv_case_t cases[] = {
		{"\"0x10\"", "i=n r=n"},
		{"\"1\\u0000\"", "i=n r=n"},
		{"1e-400", "i=n r=r:0"},
		{"1.0000000000000000001", "i=n r=r:1"},
		{"\"9223372036854775807.0\"", "i=i:9223372036854775807 r=r:9.22337e+18"},
		{"\"-9223372036854775808\"", "i=i:-9223372036854775808 r=r:-9.22337e+18"},
		{"\"9223372036854775808\"", "i=g:9223372036854775808 r=r:9.22337e+18"},
		{"\"-9223372036854775809\"", "i=g:-9223372036854775809 r=r:-9.22337e+18"},
		{"18446744073709551616", "i=g:18446744073709551616 r=r:1.84467e+19"},
		{"1e30", "i=g:1e30 r=r:1e+30"},
		{"\"1e30\"", "i=g:1e30 r=r:1e+30"},
		{"123456789012345678901234567890.5", "i=n r=r:1.23457e+29"},
		{"\"00000000000000000000000000000000000000000000000000000000000000000042\"",
		 "i=i:42 r=r:42"},
		{"\"1234567890123456789012345678901234567890123456789012345678901234567890\"",
		 "i=g:1234567890123456789012345678901234567890123456789012345678901234567890 "
		 "r=r:1.23457e+69"},
		{"\"1234567890123456789012345678901234567890123456789012345678901234567890.5\"",
		 "i=n r=r:1.23457e+69"},
		/* Long strings that are no number stay NULL (no room is made for
		 * them first); one starting with an escape is unescaped and read. */
		{"\"0.000000000000000000000000000000000000000000000000000000000000000000001x\"",
		 "i=n r=n"},
		{"\"this is a long text that no column of a number type reads at all, ok\"",
		 "i=n r=n"},
		{"\"\\u00312345678901234567890123456789012345678901234567890123456789012345\"",
		 "i=g:12345678901234567890123456789012345678901234567890123456789012345 "
		 "r=r:1.23457e+64"},
		{"\"inf\"", "i=n r=n"},
		{"\"1.5e1\"", "i=i:15 r=r:15"},
		{"\"+5\"", "i=i:5 r=r:5"},
		{"\"12e-1\"", "i=n r=r:1.2"},
		{"\"0.000e9\"", "i=i:0 r=r:0"},
		{"\"1e19\"", "i=g:1e19 r=r:1e+19"},
		{"-0", "i=i:0 r=r:-0"},
	};
	expect_conversions(t, cases, sizeof(cases) / sizeof(*cases));
	table_specs_free(t, 1);
}

/* An exponent too large to read exactly still decides "whole" as the true
 * one would: 1 with 100,000 zeros and e-1000000 is 10^-900000, not 1 (the
 * exponent was read up to 100000 and the number taken for 1). */
static void test_huge_exponents_decide_whole_exactly(void **state)
{
	(void)state;
	table_spec_t *t = calloc(1, sizeof(*t));
	table(&t[0], "v", "$[*]", 1, TABLE_APPEND);
	col(&t[0].cols[0], "i", "@.v", COLUMN_INTEGER);
	size_t zeros = 100000;
	char *tiny = malloc(zeros + 64), *one = malloc(zeros + 64);
	tiny[0] = one[0] = '1';
	memset(tiny + 1, '0', zeros);
	memset(one + 1, '0', zeros);
	strcpy(tiny + 1 + zeros, "e-1000000"); /* 10^-900000 */
	strcpy(one + 1 + zeros, "e-100000");   /* 1 */
	const conv_case_t cases[] = {{tiny, "i=n"}, {one, "i=i:1"}, {"1e99999999999", "i=g:1e99999999999"},
	                             {"0e99999999999", "i=i:0"}, {"1e-99999999999", "i=n"}};
	expect_conversions(t, cases, sizeof(cases) / sizeof(*cases));
	free(tiny);
	free(one);
	table_specs_free(t, 1);
}

/* A boolean column takes a whole 0 or 1 as an integer column would (1.0,
 * 1e0, -0.0): before, only the integers 0 and 1 were, and 1.0 was NULL. */
static void test_boolean_takes_whole_numbers(void **state)
{
	(void)state;
	table_spec_t *t = calloc(1, sizeof(*t));
	table(&t[0], "v", "$[*]", 2, TABLE_APPEND);
	col(&t[0].cols[0], "b", "@.v", COLUMN_BOOLEAN);
	col(&t[0].cols[1], "i", "@.v", COLUMN_INTEGER);
	const conv_case_t cases[] = {
		{"1.0", "b=b:1 i=i:1"}, {"0.0", "b=b:0 i=i:0"},   {"-0.0", "b=b:0 i=i:0"},
		{"1e0", "b=b:1 i=i:1"}, {"10e-1", "b=b:1 i=i:1"}, {"2.0", "b=n i=i:2"},
		{"0.5", "b=n i=n"},     {"\"1.0\"", "b=n i=i:1"},
	};
	expect_conversions(t, cases, sizeof(cases) / sizeof(*cases));
	table_specs_free(t, 1);
}

static void test_types_null_if_and_sources(void **state)
{
	(void)state;
	table_spec_t *t = calloc(2, sizeof(*t));
	table(&t[0], "items", "$.items[*]", 9, TABLE_APPEND);
	col(&t[0].cols[0], "acc", "$.account.id", COLUMN_AUTO);
	col(&t[0].cols[1], "n", "@.n", COLUMN_INTEGER);
	col(&t[0].cols[2], "f", "@.f", COLUMN_REAL);
	col(&t[0].cols[3], "b", "@.b", COLUMN_BOOLEAN);
	col(&t[0].cols[4], "t", "@.t", COLUMN_TEXT);
	col(&t[0].cols[5], "j", "@.j", COLUMN_JSON);
	col(&t[0].cols[6], "x", "@.x", COLUMN_AUTO);
	col(&t[0].cols[7], "u", "{user}", COLUMN_AUTO);
	col(&t[0].cols[8], "nope", "@.missing", COLUMN_INTEGER);
	static const char *const nulls[] = {"N/A", "Not On File", ""};
	t[0].null_if = strs(3, nulls);
	t[0].n_null_if = 3;
	table(&t[1], "account", "$.account", 0, TABLE_APPEND); /* inferred */
	t[1].null_if = strs(1, nulls);
	t[1].n_null_if = 1;

	const char *doc =
		"{\"account\":{\"id\":\"A1\",\"note\":\"N/A\",\"deep\":{\"k\":1}},\"items\":["
		"{\"n\":\"5\",\"f\":\"2.5\",\"b\":\"TRUE\",\"t\":12,\"j\":[1,{\"a\":null}],\"x\":\"N/A\"},"
		"{\"n\":\"x\",\"f\":\"nan\",\"b\":2,\"t\":true,\"j\":\"s\",\"x\":\"ok\"},"
		"{\"n\":7.0,\"f\":3,\"b\":0,\"t\":1.50,\"j\":null,\"x\":{\"o\":1}},"
		"{\"n\":\"1e3\",\"f\":\" 1\",\"b\":\"no\",\"t\":\"Not On File\",\"n2\":1,"
		"\"x\":99999999999999999999}]}";
	char rows[10][ROW_TEXT_BYTES];
	const char *reason = NULL;
	batch_t *b = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(add_doc(b, t, 2, doc, "{\"user\":\"bob\"}", &reason), 0);
	assert_int_equal(render_rows(b, rows, 10), 5);
	assert_string_equal(rows[0], "0: acc=t:A1 n=i:5 f=r:2.5 b=b:1 t=t:12 j=j:[1,{\"a\":null}]"
	                             " x=n u=t:bob nope=n");
	assert_string_equal(rows[1], "0: acc=t:A1 n=n f=n b=n t=t:true j=j:\"s\" x=t:ok u=t:bob"
	                             " nope=n");
	assert_string_equal(rows[2], "0: acc=t:A1 n=i:7 f=r:3 b=b:0 t=t:1.50 j=n x=j:{\"o\":1}"
	                             " u=t:bob nope=n");
	assert_string_equal(rows[3], "0: acc=t:A1 n=i:1000 f=n b=n t=n j=n"
	                             " x=g:99999999999999999999 u=t:bob nope=n");
	assert_string_equal(rows[4], "1: id=t:A1 note=n deep_k=i:1");

	/* Without vars, {user} is NULL; the batch grows by the same rows. */
	assert_int_equal(add_doc(b, t, 1, doc, NULL, &reason), 0);
	assert_int_equal(render_rows(b, rows, 10), 9);
	assert_string_equal(rows[5], "0: acc=t:A1 n=i:5 f=r:2.5 b=b:1 t=t:12 j=j:[1,{\"a\":null}]"
	                             " x=n u=n nope=n");
	batch_free(b);
	table_specs_free(t, 2);
}

/* ---- the writer ----------------------------------------------------------- */

typedef struct {
	char dir[64], db[128];
	store_t *st;
	pipe_t pipe;
	writer_t *w;
	table_spec_t *t;
} fixture_t;

static int setup(void **state)
{
	fixture_t *fx = calloc(1, sizeof(*fx));
	char err[STORE_ERR_BYTES];
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/rf_tables_XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->db, sizeof(fx->db), "%s/t.db", fx->dir);
	assert_int_equal(store_open(fx->db, &fx->st, err, sizeof(err)), 0);
	fx->pipe.loop_eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	fx->pipe.done_eventfd = -1;
	assert_true(fx->pipe.loop_eventfd >= 0);
	/* follow: a two-column key, upsert; tw: typed, null_if, ignore; log: inferred. */
	fx->t = calloc(3, sizeof(table_spec_t));
	table(&fx->t[0], "follow", "$.f[*]", 3, TABLE_UPSERT);
	col(&fx->t[0].cols[0], "acc", "$.acc", COLUMN_TEXT);
	col(&fx->t[0].cols[1], "fid", "@.id", COLUMN_INTEGER);
	col(&fx->t[0].cols[2], "user", "{user}", COLUMN_AUTO);
	static const char *const k0[] = {"acc", "fid"}, *const k1[] = {"id"}, *const n1[] = {"N/A"};
	fx->t[0].key = strs(2, k0);
	fx->t[0].n_key = 2;
	table(&fx->t[1], "tw \"quoted\"", "$.tw[*]", 2, TABLE_IGNORE);
	col(&fx->t[1].cols[0], "id", "@.id", COLUMN_AUTO);
	col(&fx->t[1].cols[1], "fav", "@.fav", COLUMN_INTEGER);
	fx->t[1].key = strs(1, k1);
	fx->t[1].n_key = 1;
	fx->t[1].null_if = strs(1, n1);
	fx->t[1].n_null_if = 1;
	table(&fx->t[2], "log", "$.tw[*]", 0, TABLE_APPEND);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *fx = *state;
	char cmd[256];
	store_close(fx->st);
	close(fx->pipe.loop_eventfd);
	table_specs_free(fx->t, 3);
	snprintf(cmd, sizeof(cmd), getenv("KEEP") ? "true" : "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wait_loop_eventfd(fixture_t *fx, int timeout_ms)
{
	struct pollfd pfd = {.fd = fx->pipe.loop_eventfd, .events = POLLIN};
	uint64_t v;
	if (poll(&pfd, 1, timeout_ms) == 1)
		assert_int_equal(read(fx->pipe.loop_eventfd, &v, sizeof(v)), sizeof(v));
}

static void start(fixture_t *fx, int want_jobs)
{
	writer_config_t cfg = {.source = "src", .tables = fx->t, .n_tables = 3};
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &fx->w), 0);
	int n = 0;
	uint64_t deadline = now_ms() + GUARD_MS;
	for (;;) {
		bool exhausted = atomic_load_explicit(&fx->pipe.jobs_exhausted, memory_order_acquire);
		job_desc_t *j;
		while ((j = ring_pop(&fx->pipe.to_loop))) {
			n++;
			free(j);
		}
		if (exhausted)
			break;
		assert_true(now_ms() < deadline);
		wait_loop_eventfd(fx, 100);
	}
	assert_int_equal(n, want_jobs);
}

static void push(fixture_t *fx, batch_t *b)
{
	uint64_t deadline = now_ms() + GUARD_MS;
	while (!ring_push(&fx->pipe.to_writer, b)) {
		assert_true(now_ms() < deadline);
		wait_loop_eventfd(fx, 10);
	}
	doorbell_ring(&fx->pipe.writer_bell);
}

static void push_doc(fixture_t *fx, int64_t id, const char *json, const char *vars)
{
	const char *reason;
	batch_t *b = batch_new(BATCH_JOB_DONE, id);
	assert_int_equal(add_doc(b, fx->t, 3, json, vars, &reason), 0);
	b->attempts = 1;
	b->http_status = 200;
	push(fx, b);
}

static void finish(fixture_t *fx, int want)
{
	push(fx, batch_new(BATCH_END, 0));
	assert_int_equal(writer_join(fx->w), want);
	ring_destroy(&fx->pipe.to_writer);
	ring_destroy(&fx->pipe.to_loop);
}

static void expect_query(const char *db, const char *sql, const char *want)
{
	sqlite3 *c;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &s, NULL), SQLITE_OK);
	const char *got = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0)
	                      ? (const char *)sqlite3_column_text(s, 0)
	                      : "<none>";
	assert_string_equal(got, want);
	sqlite3_finalize(s);
	sqlite3_close(c);
}

static void import_jobs(fixture_t *fx, int n)
{
	char path[160], err[STORE_ERR_BYTES];
	store_import_t r;
	snprintf(path, sizeof(path), "%s/urls.txt", fx->dir);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < n; i++)
		fprintf(f, "https://example.com/%d\n", i);
	fclose(f);
	assert_int_equal(store_import_urls(fx->st, "src", path, &r, err, sizeof(err)), 0);
}

#define FOLLOW_ROWS "SELECT group_concat(acc||'/'||fid||'/'||user||'/'||_job, ' ') FROM" \
                    " (SELECT * FROM follow ORDER BY acc, fid)"
#define TW_ROWS "SELECT group_concat(id||'/'||coalesce(fav,'-')||'/'||_job, ' ') FROM" \
                " (SELECT * FROM \"tw \"\"quoted\"\"\" ORDER BY id)"

static void test_modes_keys_and_one_transaction_per_job(void **state)
{
	fixture_t *fx = *state;
	import_jobs(fx, 4);
	start(fx, 4);
	const char *doc1 = "{\"acc\":\"A\",\"f\":[{\"id\":1},{\"id\":\"2\"}],"
	                   "\"tw\":[{\"id\":\"t1\",\"fav\":\"3\"},{\"id\":\"t1\",\"fav\":9}]}";
	push_doc(fx, 1, doc1, "{\"user\":\"u1\"}");
	push_doc(fx, 2, "{\"acc\":\"A\",\"f\":[{\"id\":2}],\"tw\":[{\"id\":\"t2\",\"fav\":\"N/A\"}]}",
	         "{\"user\":\"u2\"}");
	/* A replay of job 1 (done already) changes nothing in any table. */
	push_doc(fx, 1, doc1, "{\"user\":\"zz\"}");
	finish(fx, 0);
	expect_query(fx->db, FOLLOW_ROWS, "A/1/u1/1 A/2/u2/2"); /* upsert: job 2 replaced (A,2) */
	expect_query(fx->db, TW_ROWS, "t1/3/1 t2/-/2");         /* ignore: the first t1 stays */
	expect_query(fx->db, "SELECT count(*) FROM log", "3");  /* append: every row */
	expect_query(fx->db, "SELECT group_concat(name || ':' || type, ',')"
	                     " FROM pragma_table_info('follow')",
	             "_job:INTEGER,acc:TEXT,fid:INTEGER,user:TEXT");
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
	                     " WHERE type='index' AND name LIKE '_ringfill_key_%' ORDER BY name)",
	             "_ringfill_key_follow,_ringfill_key_tw \"quoted\"");
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM pragma_index_info("
	                     "'_ringfill_key_follow')", "acc,fid");

	/* A second run: the tables and their keys exist; new rows follow the
	 * same modes. */
	start(fx, 2);
	push_doc(fx, 3, "{\"acc\":\"A\",\"f\":[{\"id\":1}],\"tw\":[{\"id\":\"t2\",\"fav\":5}]}",
	         "{\"user\":\"u3\"}");
	finish(fx, 0);
	expect_query(fx->db, FOLLOW_ROWS, "A/1/u3/3 A/2/u2/2");
	expect_query(fx->db, TW_ROWS, "t1/3/1 t2/-/2");
	expect_query(fx->db, "SELECT count(*) FROM log", "4");
	expect_query(fx->db, "SELECT group_concat(id||':'||state, ' ') FROM"
	             " (SELECT * FROM _ringfill_jobs ORDER BY id)",
	             "1:done 2:done 3:done 4:pending");
}

/* Another process makes a keyed table (by hand, or a run whose job file has
 * no key) after this run's writer started: at its next BEGIN the writer
 * sees it (tables_refresh) and gives it this run's key columns and index,
 * so upserts work. Without that, every job failed for good ("ON CONFLICT
 * clause does not match ..."), as a review of 3ffd1c0 found. */
static void test_table_made_meanwhile_gets_its_key(void **state)
{
	fixture_t *fx = *state;
	import_jobs(fx, 2);
	start(fx, 2);
	sqlite3 *c;
	assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c, "CREATE TABLE follow (acc TEXT, user TEXT, _job INTEGER)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(c);
	push_doc(fx, 1, "{\"acc\":\"A\",\"f\":[{\"id\":1},{\"id\":2}],\"tw\":[]}",
	         "{\"user\":\"u1\"}");
	push_doc(fx, 2, "{\"acc\":\"A\",\"f\":[{\"id\":2}],\"tw\":[]}", "{\"user\":\"u2\"}");
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(id||':'||state, ' ') FROM"
	             " (SELECT * FROM _ringfill_jobs ORDER BY id)", "1:done 2:done");
	expect_query(fx->db, FOLLOW_ROWS, "A/1/u1/1 A/2/u2/2");
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM pragma_index_info("
	                     "'_ringfill_key_follow')", "acc,fid");
}

/* The same, with a job whose rows that table refuses (its CHECK) in the
 * same transaction: the transaction is undone and its jobs applied one by
 * one, and the key column and index the refresh made at its BEGIN went with
 * the ROLLBACK; the writer must make them again, so only the refused job
 * fails. (A review of 0fb106c found all three failing: "table follow has no
 * column named fid".) */
static void test_table_made_meanwhile_keeps_its_key_after_a_refused_job(void **state)
{
	fixture_t *fx = *state;
	import_jobs(fx, 3);
	start(fx, 3);
	sqlite3 *c;
	assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c,
	                              "CREATE TABLE follow (acc TEXT, user TEXT CHECK (user <> 'bad'),"
	                              " _job INTEGER)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(c);
	push_doc(fx, 1, "{\"acc\":\"A\",\"f\":[{\"id\":1}],\"tw\":[]}", "{\"user\":\"bad\"}");
	push_doc(fx, 2, "{\"acc\":\"A\",\"f\":[{\"id\":2}],\"tw\":[]}", "{\"user\":\"u2\"}");
	push_doc(fx, 3, "{\"acc\":\"A\",\"f\":[{\"id\":2}],\"tw\":[]}", "{\"user\":\"u3\"}");
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(id||':'||state, ' ') FROM"
	             " (SELECT * FROM _ringfill_jobs ORDER BY id)", "1:failed 2:done 3:done");
	expect_query(fx->db, FOLLOW_ROWS, "A/2/u3/3");
}

/* A job file's key changed between runs: the table's key index (reserved
 * name) is made again on the new key, so upserts resolve against it; with
 * the key gone (append), the old index goes, so rows are no longer held to
 * it. On 35e9eef the old index stayed, and every new job failed for good
 * ("ON CONFLICT clause does not match", "UNIQUE constraint failed"). */
static void test_changed_key_remakes_its_index(void **state)
{
	fixture_t *fx = *state;
	import_jobs(fx, 3);
	start(fx, 3);
	push_doc(fx, 1, "{\"acc\":\"A\",\"f\":[{\"id\":1}],\"tw\":[{\"id\":\"t1\"}]}",
	         "{\"user\":\"u1\"}");
	finish(fx, 0);
	/* follow: (acc, fid) -> (acc, fid, user); tw: no key, appended. */
	static const char *const k0[] = {"acc", "fid", "user"};
	for (uint32_t k = 0; k < fx->t[0].n_key; k++)
		free(fx->t[0].key[k]);
	free(fx->t[0].key);
	fx->t[0].key = strs(3, k0);
	fx->t[0].n_key = 3;
	for (uint32_t k = 0; k < fx->t[1].n_key; k++)
		free(fx->t[1].key[k]);
	free(fx->t[1].key);
	fx->t[1].key = NULL;
	fx->t[1].n_key = 0;
	fx->t[1].mode = TABLE_APPEND;
	start(fx, 2);
	push_doc(fx, 2, "{\"acc\":\"A\",\"f\":[{\"id\":1}],\"tw\":[{\"id\":\"t1\"}]}",
	         "{\"user\":\"u2\"}");
	push_doc(fx, 3, "{\"acc\":\"A\",\"f\":[{\"id\":1}],\"tw\":[{\"id\":\"t1\"}]}",
	         "{\"user\":\"u2\"}");
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(id||':'||state, ' ') FROM"
	             " (SELECT * FROM _ringfill_jobs ORDER BY id)", "1:done 2:done 3:done");
	expect_query(fx->db, FOLLOW_ROWS, "A/1/u1/1 A/1/u2/3"); /* (A,1,u2) upserted by job 3 */
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM pragma_index_info("
	                     "'_ringfill_key_follow')", "acc,fid,user");
	expect_query(fx->db, "SELECT count(*) || ',' || (SELECT count(*) FROM sqlite_master"
	                     " WHERE name = '_ringfill_key_tw \"quoted\"')"
	                     " FROM \"tw \"\"quoted\"\"\"", "3,0");
	/* A key the rows break ((A,1) twice): the run stops at start, naming
	 * the table, and the old index stays. */
	fx->t[0].n_key = 1;
	writer_config_t cfg = {.source = "src", .tables = fx->t, .n_tables = 3};
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &fx->w), 0);
	assert_int_equal(writer_join(fx->w), -1);
	ring_destroy(&fx->pipe.to_writer);
	ring_destroy(&fx->pipe.to_loop);
	assert_non_null(strstr(fx->pipe.fatal_msg, "table \"follow\": cannot make its key unique"));
	fx->t[0].n_key = 3;
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM pragma_index_info("
	                     "'_ringfill_key_follow')", "acc,fid,user");
}

/* The writer inserts a job's rows with multi-row INSERTs (100 rows, then the
 * rest by powers of two). Duplicate keys inside one statement, across
 * statements and across jobs must come out as with one INSERT per row:
 * upsert keeps the last row, ignore the first, append every row in arrival
 * order, also when a new key changes the row layout half-way (log's rows
 * carry "x" after the first MULTI_PLAIN of a job, so those go in full
 * statements). In tables the writer made, it drops beforehand the keyed
 * rows a later row of the same key replaces (tx_dedup); in tables made by
 * hand it does not, so there every row of every key goes into the
 * statements (by_hand). */
#define MULTI_ROWS 223  /* 100 + 100 + 16 + 4 + 2 + 1 */
#define MULTI_KEYS 40   /* keys repeat within and across statements */
#define MULTI_PLAIN 150 /* log: rows of one layout first */
#define MULTI_X(i) ((i) >= MULTI_PLAIN && (i) % 7 == 3)

static void multi_row_inserts(void **state, bool by_hand)
{
	fixture_t *fx = *state;
	if (by_hand) {
		sqlite3 *c;
		assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
		assert_int_equal(
			sqlite3_exec(c,
		                     "CREATE TABLE follow (acc TEXT, fid INTEGER, user TEXT, _job INTEGER);"
		                     "CREATE TABLE \"tw \"\"quoted\"\"\" (id TEXT, fav INTEGER,"
		                     " _job INTEGER);"
		                     "CREATE TABLE log (id TEXT, fav INTEGER, x INTEGER, _job INTEGER);",
		                     NULL, NULL, NULL),
			SQLITE_OK);
		sqlite3_close(c);
	}
	column_spec_t *user = &fx->t[0].cols[2]; /* from the row, so upserts differ */
	free(user->name);
	free(user->expr);
	free(user->var);
	col(user, "user", "@.u", COLUMN_TEXT);
	import_jobs(fx, 2);
	start(fx, 2);
	size_t cap = 64 * 1024, n = 0;
	char *doc = malloc(cap);
	for (int job = 1; job <= 2; job++) {
		n = (size_t)snprintf(doc, cap, "{\"acc\":\"A\",\"f\":[");
		for (int i = 0; i < MULTI_ROWS; i++)
			n += (size_t)snprintf(doc + n, cap - n, "%s{\"id\":%d,\"u\":\"j%d-%d\"}",
			                      i ? "," : "", i % MULTI_KEYS, job, i);
		n += (size_t)snprintf(doc + n, cap - n, "],\"tw\":[");
		for (int i = 0; i < MULTI_ROWS; i++)
			n += (size_t)snprintf(doc + n, cap - n, "%s{\"id\":\"t%02d\",\"fav\":%d%s}",
			                      i ? "," : "", i % MULTI_KEYS, job * 1000 + i,
			                      MULTI_X(i) ? ",\"x\":true" : "");
		snprintf(doc + n, cap - n, "]}");
		push_doc(fx, job, doc, NULL);
	}
	finish(fx, 0);

	/* upsert: each key holds the last row of the last job; ignore: the first
	 * row of the first job; append: every row, in order. */
	char want[16 * 1024];
	n = 0;
	for (int k = 0; k < MULTI_KEYS; k++) {
		int last = k + MULTI_KEYS * ((MULTI_ROWS - 1 - k) / MULTI_KEYS);
		n += (size_t)snprintf(want + n, sizeof(want) - n, "%sA/%d/j2-%d/2", k ? " " : "", k,
		                      last);
	}
	expect_query(fx->db, "SELECT group_concat(acc||'/'||fid||'/'||user||'/'||_job, ' ') FROM"
	                     " (SELECT * FROM follow ORDER BY fid)", want);
	n = 0;
	for (int k = 0; k < MULTI_KEYS; k++)
		n += (size_t)snprintf(want + n, sizeof(want) - n, "%st%02d/%d/1", k ? " " : "", k,
		                      1000 + k);
	expect_query(fx->db, TW_ROWS, want);
	n = 0;
	for (int job = 1; job <= 2; job++)
		for (int i = 0; i < MULTI_ROWS; i++)
			n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%d%s",
			                      n ? "," : "", job * 1000 + i, MULTI_X(i) ? "x" : "");
	expect_query(fx->db, "SELECT group_concat(fav || iif(x, 'x', ''), ',') FROM"
	                     " (SELECT * FROM log ORDER BY rowid)", want);
	expect_query(fx->db, "SELECT group_concat(id||':'||state, ' ') FROM"
	             " (SELECT * FROM _ringfill_jobs ORDER BY id)", "1:done 2:done");
	free(doc);
}

static void test_multi_row_inserts_behave_row_by_row(void **state)
{
	multi_row_inserts(state, false);
}

static void test_multi_row_inserts_into_tables_made_by_hand(void **state)
{
	multi_row_inserts(state, true);
}

/* A row the database refuses in the second table rolls back the job's rows
 * in the first table too: a job's tables and its state commit together. */
static void test_refused_rows_roll_back_every_table_of_the_job(void **state)
{
	fixture_t *fx = *state;
	import_jobs(fx, 2);
	sqlite3 *c;
	assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c, "CREATE TABLE log (_job INTEGER, id TEXT CHECK (id <> 'bad'),"
	                                 " fav INTEGER)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(c);
	start(fx, 2);
	push_doc(fx, 1, "{\"acc\":\"A\",\"f\":[{\"id\":1}],\"tw\":[{\"id\":\"bad\"}]}", NULL);
	push_doc(fx, 2, "{\"acc\":\"B\",\"f\":[{\"id\":1}],\"tw\":[{\"id\":\"ok\"}]}", NULL);
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(acc||'/'||_job, ' ') FROM follow", "B/2");
	expect_query(fx->db, "SELECT group_concat(id, ' ') FROM \"tw \"\"quoted\"\"\"", "ok");
	expect_query(fx->db, "SELECT group_concat(id||':'||state, ' ') FROM"
	             " (SELECT * FROM _ringfill_jobs ORDER BY id)",
	             "1:failed 2:done");
	expect_query(fx->db, "SELECT error FROM _ringfill_jobs WHERE id=1",
	             "database refused the rows: CHECK constraint failed: id <> 'bad'");
}

static void test_bad_table_sets_are_refused(void **state)
{
	fixture_t *fx = *state;
	writer_t *w;
	free(fx->t[1].name);
	fx->t[1].name = strdup("FOLLOW"); /* the same table as "follow" to SQLite */
	writer_config_t cfg = {.source = "src", .tables = fx->t, .n_tables = 3};
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &w), -EINVAL);
	free(fx->t[1].name);
	fx->t[1].name = strdup("_ringfill_x");
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &w), -EINVAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types_null_if_and_sources),
		cmocka_unit_test(test_integer_and_real_conversions_are_exact),
		cmocka_unit_test(test_huge_exponents_decide_whole_exactly),
		cmocka_unit_test(test_boolean_takes_whole_numbers),
		T(test_modes_keys_and_one_transaction_per_job),
		T(test_changed_key_remakes_its_index),
		T(test_table_made_meanwhile_gets_its_key),
		T(test_table_made_meanwhile_keeps_its_key_after_a_refused_job),
		T(test_multi_row_inserts_behave_row_by_row),
		T(test_multi_row_inserts_into_tables_made_by_hand),
		T(test_refused_rows_roll_back_every_table_of_the_job),
		T(test_bad_table_sets_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
