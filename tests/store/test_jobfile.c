/* tests/store/test_jobfile.c: the job-file loader (engine/jobfile.c), which
 * makes the table specs that store/batch.c and store/writer.c work from.
 *
 * Good files (comments, comments inside strings kept, relative paths,
 * defaults), each validation error with its FILE:LINE: KEY, and the command
 * line overriding the file (jobfile_apply). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/jobfile.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/rf_jobfile_XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Writes text to DIR/job.json and loads it; returns jobfile_load's result. */
static int load(const char *text, jobfile_t **jf, char *err, size_t cap)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/job.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	err[0] = '\0';
	return jobfile_load(path, jf, err, cap);
}

static void test_good_file(void **state)
{
	(void)state;
	const char *text =
		"{\n"
		"  // a comment: \"quotes\" and { braces } are ignored here\n"
		"  \"source\": { \"urls\": \"lists/urls.txt\" },   // trailing comment\n"
		"  \"db\": \"/abs/out.db\", \"raw\": \"raw\",\n"
		"  \"http\": { \"concurrency\": 8, \"per_host\": 2, \"retries\": 3, \"timeout_s\": 1.5,\n"
		"            \"headers\": { \"X-A\": \"a // not a comment\" } },\n"
		"  \"tables\": [\n"
		"    { \"name\": \"t\", \"rows\": \"$.items[*]\",\n"
		"      \"columns\": { \"a\": \"@.a\", \"b\": \"$.doc['x//y']\", \"c\": \"{user}\",\n"
		"                   \"d\": { \"path\": \"@.d\", \"type\": \"boolean\" } },\n"
		"      \"key\": [\"a\", \"c\"], \"mode\": \"ignore\", \"null_if\": [\"//\", \"\"] },\n"
		"    { \"name\": \"inferred\" }\n"
		"  ]\n"
		"}\n";
	jobfile_t *jf;
	char err[JOBFILE_ERR_BYTES];
	assert_int_equal(load(text, &jf, err, sizeof(err)), 0);
	char want[160];
	snprintf(want, sizeof(want), "%s/lists/urls.txt", dir);
	assert_int_equal(jf->kind, JOBFILE_SOURCE_URLS);
	assert_string_equal(jf->urls, want);
	assert_string_equal(jf->db, "/abs/out.db");
	snprintf(want, sizeof(want), "%s/raw", dir);
	assert_string_equal(jf->raw, want);
	assert_true(jf->has_concurrency && jf->concurrency == 8 && jf->per_host == 2);
	assert_true(jf->retries == 3 && jf->timeout_s == 1.5);
	assert_int_equal(jf->n_headers, 1);
	assert_string_equal(jf->header_values[0], "a // not a comment");
	assert_int_equal(strncmp(jf->source, "job:/", 5), 0);
	assert_int_equal(jf->n_tables, 2);
	const table_spec_t *t = &jf->tables[0];
	assert_string_equal(t->name, "t");
	assert_int_equal(t->n_cols, 4);
	assert_int_equal(t->cols[0].from, COLUMN_FROM_ROW);
	assert_int_equal(t->cols[1].from, COLUMN_FROM_DOC);
	assert_string_equal(t->cols[1].expr, "$.doc['x//y']");
	assert_int_equal(t->cols[2].from, COLUMN_FROM_VAR);
	assert_string_equal(t->cols[2].var, "user");
	assert_int_equal(t->cols[3].type, COLUMN_BOOLEAN);
	assert_int_equal(t->n_key, 2);
	assert_int_equal(t->mode, TABLE_IGNORE);
	assert_int_equal(t->n_null_if, 2);
	assert_string_equal(t->null_if[0], "//");
	assert_string_equal(t->null_if[1], "");
	t = &jf->tables[1];
	assert_int_equal(t->n_cols, 0);
	assert_string_equal(json_path_text(t->rows), "$");
	assert_int_equal(t->mode, TABLE_APPEND);
	jobfile_free(jf);
}

static void test_template_source(void **state)
{
	(void)state;
	jobfile_t *jf;
	char err[JOBFILE_ERR_BYTES];
	assert_int_equal(load("{\"source\": {\"template\": \"https://h/a/{user_name}.json?x=1\","
	                      " \"keys\": \"users.txt\"}}",
	                      &jf, err, sizeof(err)),
	                 0);
	assert_int_equal(jf->kind, JOBFILE_SOURCE_TEMPLATE);
	assert_string_equal(jf->template_var, "user_name");
	assert_int_equal(jf->n_tables, 0);
	jobfile_free(jf);
}

static void expect_error(const char *text, const char *want);

static void test_files_source(void **state)
{
	(void)state;
	jobfile_t *jf;
	char err[JOBFILE_ERR_BYTES], want[160];
	assert_int_equal(load("{\"source\": {\"files\": \"raw/*/*.json\"}}", &jf, err, sizeof(err)),
	                 0);
	assert_int_equal(jf->kind, JOBFILE_SOURCE_FILES);
	snprintf(want, sizeof(want), "%s/raw/*/*.json", dir);
	assert_string_equal(jf->files, want);
	jobfile_free(jf);
}

/* files_expand (engine/sources.c): a directory's regular files, a glob's
 * matches, sorted, keys relative to the base; no match is an error. */
static void test_files_expand(void **state)
{
	(void)state;
	char path[320], err[512];
	const char *names[] = {"d/h1/b.json", "d/h1/a.json", "d/h2/c.json", "d/h2/c.txt", "d/top.json"};
	snprintf(path, sizeof(path), "mkdir -p '%s/d/h1' '%s/d/h2' '%s/d/sub.json'", dir, dir, dir);
	assert_int_equal(system(path), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fclose(f);
	}
	files_list_t l;
	snprintf(path, sizeof(path), "%s/d/*/*.json", dir);
	assert_int_equal(files_expand(path, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.jobs[0].key, "h1/a.json");
	assert_string_equal(l.jobs[1].key, "h1/b.json");
	assert_string_equal(l.jobs[2].key, "h2/c.json");
	assert_true(!strncmp(l.jobs[0].url, "file:/", 6));
	assert_non_null(strstr(l.jobs[0].url, "/d/h1/a.json"));
	files_list_free(&l);
	/* A directory: its regular files only (not sub.json, a directory). */
	snprintf(path, sizeof(path), "%s/d", dir);
	assert_int_equal(files_expand(path, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.jobs[0].key, "top.json");
	files_list_free(&l);
	snprintf(path, sizeof(path), "%s/d/*.ndjson", dir);
	assert_int_equal(files_expand(path, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no regular file matches"));
}

/* Each job's url is file: + the realpath of its file, while the directory
 * is resolved once per directory (abs_of_file): through a symbolic link to
 * the directory, a "." and ".." in the pattern, a link to a file elsewhere
 * (its target's path), and not a dangling link. */
static void test_files_expand_paths(void **state)
{
	(void)state;
	char cmd[1024], err[512], path[PATH_MAX], real[PATH_MAX];
	snprintf(cmd, sizeof(cmd),
	         "set -e; cd '%s'; mkdir -p p/real p/other; : > p/real/a.json; : > p/real/b.json;"
	         " : > p/other/z.json; ln -s real p/link; ln -s ../other/z.json p/real/c.json;"
	         " ln -s nowhere.json p/real/dead.json; mkdir p/real/sub.json",
	         dir);
	assert_int_equal(system(cmd), 0);
	const char *patterns[] = {"%s/p/link", "%s/p/link/", "%s/p/./link/../real/*.json",
	                          "%s/p/l*/*.json"};
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		char pattern[320];
		snprintf(pattern, sizeof(pattern), patterns[i], dir);
		files_list_t l;
		assert_int_equal(files_expand(pattern, &l, err, sizeof(err)), 0);
		assert_int_equal(l.n, 3); /* a, b, c: not the dangling link nor the directory */
		for (size_t j = 0; j < l.n; j++) {
			/* Where each key's file is: under the pattern's base. */
			const char *base[] = {"p/link/", "p/link/", "p/./link/../real/", "p/"};
			snprintf(path, sizeof(path), "%s/%s%s", dir, base[i], l.jobs[j].key);
			assert_non_null(realpath(path, real));
			assert_true(!strncmp(l.jobs[j].url, "file:", 5));
			assert_string_equal(l.jobs[j].url + 5, real);
		}
		assert_non_null(strstr(l.jobs[2].url, "/p/other/z.json"));
		files_list_free(&l);
	}
}

static void test_paginate_source(void **state)
{
	(void)state;
	jobfile_t *jf;
	char err[JOBFILE_ERR_BYTES];
	assert_int_equal(load("{\"source\": {\"paginate\": {\"url\": \"https://r/p?limit=5\","
	                      " \"cursor_path\": \"$.cursor\", \"items\": \"$.repos[*]\","
	                      " \"emit\": \"https://h/repo/{did}.json\"}},"
	                      " \"tables\": [{\"name\": \"t\"}]}",
	                      &jf, err, sizeof(err)),
	                 0);
	assert_int_equal(jf->kind, JOBFILE_SOURCE_PAGINATE);
	assert_string_equal(jf->page.url, "https://r/p?limit=5");
	assert_string_equal(jf->page.cursor_param, "cursor"); /* the default */
	assert_string_equal(json_path_text(jf->page.cursor_path), "$.cursor");
	assert_string_equal(json_path_text(jf->page.items), "$.repos[*]");
	assert_string_equal(jf->page.emit_var, "did");
	assert_int_equal(jf->page.max_pages, PAGINATE_MAX_PAGES_DEFAULT);
	/* With emit, the tables read the emitted documents: rows stay '$'. */
	assert_string_equal(json_path_text(jf->tables[0].rows), "$");
	jobfile_free(jf);
	/* Without emit the items are the rows, unless a table says otherwise. */
	assert_int_equal(load("{\"source\": {\"paginate\": {\"url\": \"https://r/p\","
	                      " \"cursor_param\": \"after\", \"cursor_path\": \"$.next\","
	                      " \"items\": \"$.data[*]\", \"max_pages\": 7}},"
	                      " \"tables\": [{\"name\": \"t\"}, {\"name\": \"u\", \"rows\": \"$\"}]}",
	                      &jf, err, sizeof(err)),
	                 0);
	assert_int_equal(jf->page.max_pages, 7);
	assert_string_equal(jf->page.cursor_param, "after");
	assert_null(jf->page.emit);
	assert_string_equal(json_path_text(jf->tables[0].rows), "$.data[*]");
	assert_string_equal(json_path_text(jf->tables[1].rows), "$");
	jobfile_free(jf);
}

static void test_paginate_errors(void **state)
{
	(void)state;
	char text[1024];
#define PAGE(members, want)                                                          \
	do {                                                                             \
		snprintf(text, sizeof(text), "{\"db\": \"x\",\n\"source\": {\"paginate\": {%s}}}", \
		         members);                                                           \
		expect_error(text, want);                                                    \
	} while (0)
	PAGE("\"cursor_path\": \"$.c\", \"items\": \"$.a[*]\"",
	     "2: source.paginate.url: missing");
	PAGE("\"url\": \"https://h/p\", \"items\": \"$.a[*]\"",
	     "2: source.paginate.cursor_path: missing");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c\"",
	     "2: source.paginate.items: missing");
	PAGE("\"url\": \"https://h/p#f\", \"cursor_path\": \"$.c\", \"items\": \"$.a[*]\"",
	     "2: source.paginate.url: not a valid https URL");
	PAGE("\"url\": \"ftp://h/p\", \"cursor_path\": \"$.c\", \"items\": \"$.a[*]\"",
	     "2: source.paginate.url: not a valid https URL");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c.*\", \"items\": \"$.a[*]\"",
	     "2: source.paginate.cursor_path: the cursor is one value");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"c\", \"items\": \"$.a[*]\"",
	     "2: source.paginate.cursor_path: expected a JSONPath from the page's root");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c\", \"items\": \"$.a[\"",
	     "2: source.paginate.items: bad JSONPath '$.a['");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c\", \"items\": \"$.a[*]\","
	     " \"cursor_param\": \"a&b\"",
	     "2: source.paginate.cursor_param: a parameter name is letters");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c\", \"items\": \"$.a[*]\","
	     " \"emit\": \"https://h/x.json\"",
	     "2: source.paginate.emit: expected exactly one {name}");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c\", \"items\": \"$.a[*]\","
	     " \"emit\": 3", "2: source.paginate.emit: expected a string, not a number");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c\", \"items\": \"$.a[*]\","
	     " \"limit\": 3", "2: source.paginate.limit: unknown key");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c\", \"items\": \"$.a[*]\","
	     " \"max_pages\": 0",
	     "2: source.paginate.max_pages: expected a whole number from 1 to 4294967295");
	PAGE("\"url\": \"https://h/p\", \"cursor_path\": \"$.c\", \"items\": \"$.a[*]\","
	     " \"max_pages\": \"10\"",
	     "2: source.paginate.max_pages: expected a whole number from 1 to 4294967295");
#undef PAGE
}

/* Each broken file: the message it must give (after the directory). */
static void expect_error(const char *text, const char *want)
{
	jobfile_t *jf = NULL;
	char err[JOBFILE_ERR_BYTES], full[JOBFILE_ERR_BYTES + 128];
	assert_int_equal(load(text, &jf, err, sizeof(err)), -1);
	assert_null(jf);
	snprintf(full, sizeof(full), "%s/job.json:%s", dir, want);
	if (strncmp(err, full, strlen(full)) != 0)
		fail_msg("got: %s\nwant: %s", err, full);
}

static void test_errors_name_line_and_key(void **state)
{
	(void)state;
	const char *src = "{\"source\": {\"urls\": \"u.txt\"},\n";
	char text[1024];
#define BAD(tables, want)                                                      \
	do {                                                                       \
		snprintf(text, sizeof(text), "%s\"tables\": [\n%s\n]}", src, tables);  \
		expect_error(text, want);                                              \
	} while (0)
	BAD("{\"name\": \"t\"},\n{\"name\": \"u\", \"mode\": \"merge\"}",
	    "4: tables[1].mode: expected one of append, upsert, ignore");
	BAD("{\"name\": \"t\", \"rows\": \"$.a[\"}", "3: tables[0].rows: bad JSONPath '$.a['");
	BAD("{\"name\": \"t\",\n \"rows\": \"a.b\"}", "4: tables[0].rows: expected a JSONPath");
	BAD("{\"rows\": \"$\"}", "3: tables[0].name: missing");
	BAD("{\"name\": 5}", "3: tables[0].name: expected a string, not a number");
	BAD("{\"name\": \"t\", \"colums\": {}}", "3: tables[0].colums: unknown key");
	BAD("{\"name\": \"t\", \"mode\": \"upsert\"}", "3: tables[0].key: mode upsert needs a key");
	BAD("{\"name\": \"t\", \"columns\": {\"a\": \"@.a\"},\n \"key\": [\"b\"]}",
	    "4: tables[0].key: \"b\" is not one of the table's columns");
	BAD("{\"name\": \"t\", \"columns\": {\n\"a\": \"@.a[*]\"}}",
	    "4: tables[0].columns.a: a column holds one value");
	BAD("{\"name\": \"t\", \"columns\": {\"a\": \"x\"}}", "3: tables[0].columns.a: expected '@.path'");
	BAD("{\"name\": \"t\", \"columns\": {\"a\": {\"path\": \"@.a\", \"type\": \"int\"}}}",
	    "3: tables[0].columns.a.type: expected one of text, integer, real, json, boolean");
	BAD("{\"name\": \"t\", \"columns\": {\"a\": {\"type\": \"text\"}}}",
	    "3: tables[0].columns.a.path: missing");
	BAD("{\"name\": \"t\", \"columns\": {\"a\": \"@.a\", \"A\": \"@.b\"}}",
	    "3: tables[0].columns.A: same name as column a");
	BAD("{\"name\": \"t\", \"columns\": {\"_job\": \"@.a\"}}", "3: tables[0].columns._job:");
	BAD("{\"name\": \"t\"}, {\"name\": \"T\"}", "3: tables[1].name: same name as tables[0]");
	BAD("{\"name\": \"_ringfill_jobs\"}", "3: tables[0].name: names starting with _ringfill");
	BAD("{\"name\": \"t\", \"null_if\": [\"a\", 1]}",
	    "3: tables[0].null_if[1]: expected a string, not a number");
	BAD("{\"name\": \"t\", \"name\": \"u\"}", "3: tables[0].name: given twice");
#undef BAD
	expect_error("{\n\"source\": {\"template\": \"https://h/{a}/{b}\", \"keys\": \"k\"}}",
	             "2: source.template: expected exactly one {name}");
	expect_error("{\n\"source\": {\"template\": \"https://h/{a-b}\", \"keys\": \"k\"}}",
	             "2: source.template: {a-b}: a variable name is letters");
	expect_error("{\n\"source\": {\"template\": \"http://h/{a}\", \"keys\": \"k\"}}",
	             "2: source.template: not a valid https URL template");
	expect_error("{\n\"source\": {\"template\": \"https://h/{a}\"}}", "2: source.keys: missing");
	expect_error("{\n\"source\": {\"files\": \"raw/*.json\", \"urls\": \"u\"}}",
	             "2: source: give one of: urls, template and keys, files, paginate");
	expect_error("{\n\"source\": {\"files\": \"\"}}", "2: source.files: must not be empty");
	expect_error("{\n\"source\": {\"file\": \"x\"}}", "2: source.file: unknown key");
	expect_error("{\"source\": {\"urls\": \"u\"},\n\"http\": {\"retries\": 0}}",
	             "2: http.retries: expected a whole number from 1 to 1000");
	expect_error("{\"source\": {\"urls\": \"u\"},\n\n\"dbb\": \"x\"}", "3: dbb: unknown key");
	expect_error("{\"source\": {\"urls\": \"u\"},\n\"db_timeout_s\": -1}",
	             "2: db_timeout_s: expected seconds from 0 to 86400");
	expect_error("{\"source\": {\"urls\": \"u\"},\n\n\"db_timeout_s\": \"5\"}",
	             "3: db_timeout_s: expected seconds from 0 to 86400");
	expect_error("{\"source\": {\"urls\": \"u\"}, \"db_timeout_s\": 86400.5}",
	             "1: db_timeout_s: expected seconds from 0 to 86400");
	expect_error("{\"source\": {\"urls\": \"u\"}, // fine\n\"db\": \"x\",\n}",
	             "2: not valid JSON: trailing comma");
	expect_error("// only a comment\n[1]", "2: expected a JSON object");
}

static void test_command_line_overrides(void **state)
{
	(void)state;
	jobfile_t *jf;
	char err[JOBFILE_ERR_BYTES];
	assert_int_equal(load("{\"source\": {\"urls\": \"u.txt\"}, \"db\": \"file.db\","
	                      " \"http\": {\"concurrency\": 9, \"retries\": 7,"
	                      " \"headers\": {\"X-A\": \"file\", \"X-B\": \"b\"}}}",
	                      &jf, err, sizeof(err)),
	                 0);
	char *argv[] = {"run", "job.json", "--db", "cli.db", "--retries", "2", "--header",
	                "x-a: cli", NULL};
	run_opts_t o;
	assert_int_equal(options_parse_run(8, argv, &o), 0);
	assert_string_equal(o.jobfile, "job.json");
	assert_int_equal(jobfile_apply(jf, &o), 0);
	assert_string_equal(o.db, "cli.db");
	assert_int_equal(o.retries, 2);
	assert_int_equal(o.concurrency, 9);
	assert_string_equal(o.headers, "x-a: cli\r\nX-B: b\r\n");
	jobfile_free(jf);

	/* db_timeout_s: the file's unless --db-timeout is given. */
	assert_int_equal(load("{\"source\": {\"urls\": \"u\"}, \"db_timeout_s\": 7.5}", &jf, err,
	                      sizeof(err)),
	                 0);
	char *argv_f[] = {"run", "job.json", NULL};
	assert_int_equal(options_parse_run(2, argv_f, &o), 0);
	assert_true(o.db_timeout_s < 0.0);
	assert_int_equal(jobfile_apply(jf, &o), 0);
	assert_true(o.db_timeout_s == 7.5);
	char *argv_c[] = {"run", "job.json", "--db-timeout", "0", NULL};
	assert_int_equal(options_parse_run(4, argv_c, &o), 0);
	assert_int_equal(jobfile_apply(jf, &o), 0);
	assert_true(o.db_timeout_s == 0.0);
	jobfile_free(jf);

	/* --rows/--table and a file's tables: which would win is not obvious. */
	assert_int_equal(load("{\"source\": {\"urls\": \"u\"}, \"tables\": [{\"name\": \"t\"}]}", &jf,
	                      err, sizeof(err)),
	                 0);
	char *argv2[] = {"run", "job.json", "--table", "x", NULL};
	assert_int_equal(options_parse_run(4, argv2, &o), 0);
	assert_int_equal(jobfile_apply(jf, &o), 2);
	jobfile_free(jf);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_good_file),
		T(test_template_source),
		T(test_files_source),
		T(test_files_expand),
		T(test_files_expand_paths),
		T(test_paginate_source),
		T(test_paginate_errors),
		T(test_errors_name_line_and_key),
		T(test_command_line_overrides),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
