/* tests/store/test_status.c: `ringfill status [--json] DB` (store/status.c).
 *
 * Builds a database with store/store.c (jobs in two sources, some failed),
 * adds a data table as the writer would, runs status_main with stdout sent
 * to a file, and checks the report's figures and exit codes. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"

typedef struct {
	char dir[64], db[128], out[128];
} fixture_t;

static void import(store_t *st, const char *dir, const char *source, const char *text)
{
	char path[160], err[STORE_ERR_BYTES];
	store_import_t r;
	snprintf(path, sizeof(path), "%s/%s.txt", dir, source);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(store_import_urls(st, source, path, &r, err, sizeof(err)), 0);
}

static int setup(void **state)
{
	fixture_t *fx = calloc(1, sizeof(*fx));
	char err[STORE_ERR_BYTES];
	store_t *st;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/rf_status_XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->db, sizeof(fx->db), "%s/s.db", fx->dir);
	snprintf(fx->out, sizeof(fx->out), "%s/out.txt", fx->dir);
	assert_int_equal(store_open(fx->db, &st, err, sizeof(err)), 0);
	import(st, fx->dir, "a", "https://h/1\nhttps://h/2\nhttps://h/3\nnope\n");
	import(st, fx->dir, "b", "https://h/4\n");
	const char *sql =
		"UPDATE _ringfill_jobs SET state='done', bytes=1000 WHERE url IN ('https://h/1','https://h/4');"
		"UPDATE _ringfill_jobs SET state='failed', error_class='transient',"
		" error='HTTP 503 \"busy\"' WHERE url='https://h/2';"
		"CREATE TABLE \"my \"\"recs\" (_job INTEGER, x INTEGER);"
		"INSERT INTO \"my \"\"recs\" VALUES (1, 1), (1, 2), (4, 3);"
		"INSERT INTO _ringfill_columns VALUES ('my \"recs', 'x', 'x');"
		/* The same table named by a job file in capitals, and a table
		 * dropped by hand since: "my \"recs" is listed once, "gone" not. */
		"INSERT INTO _ringfill_columns VALUES ('MY \"Recs', 'y', 'y');"
		"INSERT INTO _ringfill_columns VALUES ('gone', 'x', 'x');";
	assert_int_equal(sqlite3_exec(store_db(st), sql, NULL, NULL, NULL), SQLITE_OK);
	store_close(st);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *fx = *state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* Runs status_main with stdout in fx->out; returns the exit code and the
 * output (malloc'd) in *text. */
static int run_status(fixture_t *fx, int argc, char **argv, char **text)
{
	fflush(stdout);
	int saved = dup(1), fd = open(fx->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 1);
	close(fd);
	int rc = status_main(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	FILE *f = fopen(fx->out, "r");
	*text = calloc(1, 65536);
	assert_true(fread(*text, 1, 65535, f) < 65536);
	fclose(f);
	return rc;
}

static void test_text_report(void **state)
{
	fixture_t *fx = *state;
	char *argv[] = {"status", fx->db, NULL}, *out;
	assert_int_equal(run_status(fx, 2, argv, &out), 0);
	/* source, pending, done, failed, total */
	assert_non_null(strstr(out, "  a                                         1          1          2          4\n"));
	assert_non_null(strstr(out, "  b                                         0          1          0          1\n"));
	assert_non_null(strstr(out, "  total                                     1          2          2          5\n"));
	assert_non_null(strstr(out, "bytes downloaded: 2000"));
	assert_non_null(strstr(out, "transient        1  HTTP 503 \"busy\""));
	assert_non_null(strstr(out, "e.g. https://h/2"));
	assert_non_null(strstr(out, "malformed URL"));
	assert_non_null(strstr(out, "my \"recs                                    3 rows"));
	assert_null(strstr(out, "MY \"Recs"));
	assert_null(strstr(out, "gone"));
	assert_null(strstr(out, "committed checkpoints")); /* none: no line */
	free(out);
}

static void test_json_report(void **state)
{
	fixture_t *fx = *state;
	char *argv[] = {"status", "--json", fx->db, NULL}, *out;
	assert_int_equal(run_status(fx, 3, argv, &out), 0);
	assert_non_null(strstr(out, "\"sources\":[{\"source\":\"a\",\"pending\":1,\"done\":1,"
	                            "\"failed\":2,\"total\":4},{\"source\":\"b\""));
	assert_non_null(strstr(out, "\"total\":{\"source\":\"total\",\"pending\":1,\"done\":2,"
	                            "\"failed\":2,\"total\":5},\"bytes\":2000"));
	assert_non_null(strstr(out, "{\"class\":\"transient\",\"reason\":\"HTTP 503 \\\"busy\\\"\","
	                            "\"count\":1,\"example\":\"https://h/2\"}"));
	/* No run recorded in this database (it was written by hand). */
	assert_non_null(strstr(out, "\"tables\":[{\"table\":\"my \\\"recs\",\"rows\":3}],"
	                            "\"last_run\":null,\"last_runs\":[]}\n"));
	/* No body was stored with a content coding. */
	assert_non_null(strstr(out, "\"bytes\":2000,\"content_encodings\":{},"
	                            "\"checkpointed\":{\"jobs\":0,\"records\":0},\"failures\":["));
	/* The failures array is closed before the tables begin. */
	assert_non_null(strstr(out, "\"}],\"tables\":["));
	assert_int_equal(out[0], '{');
	free(out);
}

/* Runs of sources a and b (and of a source without jobs here), and one
 * body stored gzip-coded: each source with jobs shows its own last run,
 * newest first; the coding is counted. */
static void test_runs_per_source_and_codings(void **state)
{
	fixture_t *fx = *state;
	char err[STORE_ERR_BYTES];
	store_t *st;
	int64_t id;
	assert_int_equal(store_open(fx->db, &st, err, sizeof(err)), 0);
	static const struct {
		const char *source;
		int code;
	} runs[] = {{"a", 0}, {"b", 1}, {"a", 130}, {"gone", 0}};
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		assert_int_equal(store_run_begin(st, runs[i].source, &id, err, sizeof(err)), 0);
		assert_int_equal(store_run_end(st, id, runs[i].code, err, sizeof(err)), 0);
	}
	assert_int_equal(sqlite3_exec(store_db(st), "UPDATE _ringfill_jobs SET content_encoding="
	                                            "'gzip' WHERE url='https://h/1'",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	/* Jobs not done that committed checkpoints (stopped or failed part-way):
	 * counted with their records; a done job's checkpoint columns are not. */
	assert_int_equal(sqlite3_exec(store_db(st),
	                              "UPDATE _ringfill_jobs SET ckpt_records = CASE state"
	                              " WHEN 'pending' THEN 40 WHEN 'done' THEN 1000 ELSE 1 END,"
	                              " ckpt_offset = 0",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	store_close(st);
	char *argv[] = {"status", fx->db, NULL}, *out;
	assert_int_equal(run_status(fx, 2, argv, &out), 0);
	char *a = strstr(out, "last run: #3 of a, started ");
	char *b = strstr(out, "last run of another source: #2 of b, ");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(a < b);
	assert_non_null(strstr(a, "exit 130 (interrupted by a signal; resumable)"));
	assert_non_null(strstr(b, "exit 1 (some jobs failed for good)"));
	assert_null(strstr(out, "#1 of"));
	assert_null(strstr(out, "gone"));
	assert_non_null(strstr(out, "bodies stored with a content coding: gzip 1\n"));
	assert_non_null(strstr(out, "jobs not done with committed checkpoints: 3 (42 records' "));
	free(out);
	char *jargv[] = {"status", "--json", fx->db, NULL};
	assert_int_equal(run_status(fx, 3, jargv, &out), 0);
	assert_non_null(strstr(out, "\"content_encodings\":{\"gzip\":1},"
	                            "\"checkpointed\":{\"jobs\":3,\"records\":42}"));
	a = strstr(out, "\"last_run\":{\"id\":3,\"source\":\"a\",");
	b = strstr(out, "\"last_runs\":[{\"id\":3,\"source\":\"a\",");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(strstr(b, "},{\"id\":2,\"source\":\"b\","));
	assert_null(strstr(out, "gone"));
	assert_non_null(strstr(out, "}]}\n"));
	free(out);
}

static void test_missing_database_and_usage(void **state)
{
	fixture_t *fx = *state;
	char path[160], *out;
	snprintf(path, sizeof(path), "%s/none.db", fx->dir);
	char *argv[] = {"status", path, NULL};
	assert_int_equal(run_status(fx, 2, argv, &out), 2);
	free(out);
	assert_int_equal(access(path, F_OK), -1); /* never created */
	char *usage[] = {"status", "--bogus", fx->db, NULL};
	assert_int_equal(run_status(fx, 3, usage, &out), 2);
	free(out);
	char *none[] = {"status", NULL};
	assert_int_equal(run_status(fx, 1, none, &out), 2);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_text_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_per_source_and_codings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_database_and_usage, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
