/* tests/store/test_store_jobs.c: the job store on a real SQLite file.
 *
 * store_open's schema and pragmas, store_import_urls on plain and NDJSON
 * manifest lines (store/store.c, with net/url.c and parse/json.c), and the
 * queries the writer uses to feed the loop. Results are checked through a
 * second, independent sqlite3 connection. */
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
	char dir[64], db[128], urls[128];
	store_t *st;
} fixture_t;

static const char urls_text[] =
	"# a comment\n"
	"\n"
	"https://example.com/a\n"
	"  https://example.com/b \r\n"
	"not a url\n"
	"http://example.com/insecure\n"
	"{\"url\":\"https://example.com/c\",\"key\":\"c1\",\"page\":3,\"tag\":[\"x\"]}\n"
	"{\"url\":\"https://example.com/d\"}\n"
	"{\"url\": 5}\n"
	"{\"url\":\"https://example.com/e\",\"oops\n"
	"https://example.com/a\n";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	fixture_t *fx = calloc(1, sizeof(*fx));
	char err[STORE_ERR_BYTES];
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/rf_store_XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->db, sizeof(fx->db), "%s/jobs.db", fx->dir);
	snprintf(fx->urls, sizeof(fx->urls), "%s/urls.txt", fx->dir);
	write_file(fx->urls, urls_text);
	assert_int_equal(store_open(fx->db, &fx->st, err, sizeof(err)), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *fx = *state;
	char cmd[256];
	store_close(fx->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* The first column of the first row of sql, as text, via its own connection. */
static char *query1(const char *db, const char *sql)
{
	sqlite3 *c;
	sqlite3_stmt *s;
	char *out = NULL;
	assert_int_equal(sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		out = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(c);
	return out ? out : strdup("<none>");
}

static void expect_query(const char *db, const char *sql, const char *want)
{
	char *got = query1(db, sql);
	assert_string_equal(got, want);
	free(got);
}

static void test_open_creates_schema_and_wal(void **state)
{
	fixture_t *fx = *state;
	expect_query(fx->db, "PRAGMA journal_mode", "wal");
	expect_query(fx->db, "PRAGMA page_size", "16384"); /* a new file's (store/store.c) */
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
	                     " WHERE name LIKE '\\_ringfill%' ESCAPE '\\' AND type<>'index'"
	                     " ORDER BY name)",
	             "_ringfill_columns,_ringfill_jobs");
	/* The state index holds the jobs not done only (store/store.c). */
	expect_query(fx->db, "SELECT sql FROM sqlite_master WHERE type='index'"
	                     " AND name='_ringfill_jobs_not_done'",
	             "CREATE INDEX _ringfill_jobs_not_done ON _ringfill_jobs(source, state, id)"
	             " WHERE state='pending' OR state='failed'");
	/* The CHECK on state, spelled with OR, still refuses other states. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "INSERT INTO _ringfill_jobs (source, key, state)"
	                              " VALUES ('s', 'k', 'running')",
	                              NULL, NULL, NULL),
	                 SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(db,
	                              "INSERT INTO _ringfill_jobs (source, key, state)"
	                              " VALUES ('s', 'k', 'failed')",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	/* The store's connection (the writer's) does not zero freed space nor
	 * each new page (store/store.c), whatever SQLite was built with. */
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(store_db(fx->st), "PRAGMA secure_delete", -1, &s, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), 0);
	sqlite3_finalize(s);
	/* Opening again keeps what is there. */
	store_t *again;
	char err[STORE_ERR_BYTES];
	assert_int_equal(store_open(fx->db, &again, err, sizeof(err)), 0);
	store_close(again);
}

static void test_open_error_names_the_file(void **state)
{
	(void)state;
	store_t *st = NULL;
	char err[STORE_ERR_BYTES];
	assert_int_equal(store_open("/nonexistent-dir/x.db", &st, err, sizeof(err)), -1);
	assert_null(st);
	assert_non_null(strstr(err, "/nonexistent-dir/x.db: "));
}

static void test_import_lines(void **state)
{
	fixture_t *fx = *state;
	store_import_t r;
	char err[STORE_ERR_BYTES], sql[512];
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.lines, 9);
	assert_int_equal(r.added, 4);
	assert_int_equal(r.existing, 1); /* the repeated /a */
	assert_int_equal(r.malformed, 4);
	expect_query(fx->db, "SELECT group_concat(key, ' ') FROM (SELECT key FROM _ringfill_jobs"
	                     " WHERE state='pending' ORDER BY id)",
	             "https://example.com/a https://example.com/b c1 https://example.com/d");
	expect_query(fx->db, "SELECT url || ' ' || vars FROM _ringfill_jobs WHERE key='c1'",
	             "https://example.com/c {\"page\":3,\"tag\":[\"x\"]}");
	expect_query(fx->db, "SELECT vars IS NULL FROM _ringfill_jobs WHERE key LIKE '%/d'", "1");
	snprintf(sql, sizeof(sql),
	         "SELECT error_class || '|' || key || '|' || error FROM _ringfill_jobs"
	         " WHERE error LIKE '%%:5: %%'");
	char want[512];
	snprintf(want, sizeof(want), "permanent|not a url|%s:5: malformed URL: ", fx->urls);
	char *got = query1(fx->db, sql);
	assert_memory_equal(got, want, strlen(want));
	free(got);
	snprintf(want, sizeof(want), "%s:6: malformed URL: ", fx->urls);
	got = query1(fx->db, "SELECT error FROM _ringfill_jobs WHERE key LIKE 'http:%'");
	assert_memory_equal(got, want, strlen(want));
	free(got);
	snprintf(want, sizeof(want), "%s:9: bad manifest line: no \"url\" string", fx->urls);
	expect_query(fx->db, "SELECT error FROM _ringfill_jobs WHERE key='{\"url\": 5}'", want);
	got = query1(fx->db, "SELECT error FROM _ringfill_jobs WHERE key LIKE '%oops%'");
	snprintf(want, sizeof(want), "%s:10: bad manifest line: ", fx->urls);
	assert_memory_equal(got, want, strlen(want));
	assert_non_null(strstr(got, " at byte "));
	free(got);
	expect_query(fx->db, "SELECT count(*) FROM _ringfill_jobs WHERE state='failed'"
	                     " AND url IS NULL AND error_class='permanent'", "4");
}

static void test_reimport_adds_nothing(void **state)
{
	fixture_t *fx = *state;
	store_import_t r;
	char err[STORE_ERR_BYTES];
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.added, 0);
	assert_int_equal(r.existing, 5);
	assert_int_equal(r.malformed, 4);
	expect_query(fx->db, "SELECT count(*) FROM _ringfill_jobs", "8");
	/* Another source gets its own jobs from the same file. */
	assert_int_equal(store_import_urls(fx->st, "other", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.added, 4);
	expect_query(fx->db, "SELECT count(*) FROM _ringfill_jobs", "16");
}

/* A re-run picks up pending and transient jobs: importing again requeues this
 * source's failed/transient jobs with attempts 0 and keeps their last error as
 * history; permanent failures and other sources' jobs stay as they were. */
static void test_reimport_requeues_transient_only(void **state)
{
	fixture_t *fx = *state;
	store_import_t r;
	char err[STORE_ERR_BYTES];
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(store_import_urls(fx->st, "other", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.requeued, 0);
	sqlite3 *c;
	assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c,
	                              "UPDATE _ringfill_jobs SET state='failed', attempts=3,"
	                              " http_status=503, error_class='transient', error='HTTP 503'"
	                              " WHERE key LIKE '%/a';"
	                              "UPDATE _ringfill_jobs SET state='failed', attempts=1,"
	                              " http_status=404, error_class='permanent', error='HTTP 404'"
	                              " WHERE key LIKE '%/b';",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(c);
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.requeued, 1);
	expect_query(fx->db, "SELECT state || ',' || attempts || ',' || coalesce(error_class, '-')"
	                     " || ',' || error || ',' || http_status FROM _ringfill_jobs"
	                     " WHERE source='src' AND key LIKE '%/a'",
	             "pending,0,-,HTTP 503,503");
	expect_query(fx->db, "SELECT state || ',' || error_class FROM _ringfill_jobs"
	                     " WHERE source='src' AND key LIKE '%/b'",
	             "failed,permanent");
	expect_query(fx->db, "SELECT state FROM _ringfill_jobs WHERE source='other'"
	                     " AND key LIKE '%/a'",
	             "failed");
	store_counts_t n;
	assert_int_equal(store_job_counts(fx->st, "src", &n, err, sizeof(err)), 0);
	assert_int_equal(n.pending, 3); /* a, c1, d; b failed for good */
}

/* A manifest of n keys k0.. with URLs https://h/kI-vV, V from ver(I), plus
 * the extra lines. */
static void write_manifest(const char *path, int n, int (*ver)(int), const char *extra)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < n; i++)
		fprintf(f, "{\"url\":\"https://h/k%d-v%d\",\"key\":\"k%d\"}\n", i, ver(i), i);
	fputs(extra, f);
	fclose(f);
}

static int ver_first(int i)
{
	(void)i;
	return 1;
}

/* k3 (in the first group of 64), k100 (in the second) and k129 (a tail row,
 * inserted one by one) change; so do k5 and k7, done and checkpointed. */
static int ver_fixed(int i)
{
	return i == 3 || i == 100 || i == 129 || i == 5 || i == 7 ? 2 : 1;
}

/* A line whose key is known gives the job not done yet its new URL (pending
 * again, its failure forgotten); a done job keeps its URL, and so does one
 * whose committed checkpoint holds rows of the old URL (counted as kept). A
 * key a manifest gives twice with another URL is a malformed line, the
 * first kept, in this import and the next; the same line twice is not. */
static void test_reimport_takes_changed_urls(void **state)
{
	fixture_t *fx = *state;
	store_import_t r;
	char err[STORE_ERR_BYTES];
	enum { N = 130 }; /* two groups of 64, then two rows one by one */
	write_manifest(fx->urls, N, ver_first, "");
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.added, N);
	sqlite3 *c;
	assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c,
	                              "UPDATE _ringfill_jobs SET state='failed', attempts=1,"
	                              " http_status=404, error_class='permanent', error='HTTP 404'"
	                              " WHERE key IN ('k3', 'k129');"
	                              "UPDATE _ringfill_jobs SET state='done' WHERE key='k5';"
	                              "UPDATE _ringfill_jobs SET ckpt_records=40 WHERE key='k7';",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(c);
	const char *extra = "{\"url\":\"https://h/k3-v2\",\"key\":\"k3\"}\n"  /* the same again */
	                    "{\"url\":\"https://h/k5-v2\",\"key\":\"k5\"}\n"  /* the same, k5 done */
	                    "{\"url\":\"https://h/k9-v9\",\"key\":\"k9\"}\n"; /* k9 again, another URL */
	write_manifest(fx->urls, N, ver_fixed, extra);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
		assert_int_equal(r.lines, N + 3);
		assert_int_equal(r.added, 0);
		assert_int_equal(r.changed, round == 0 ? 3 : 0); /* k3, k100, k129 */
		assert_int_equal(r.kept, 1);                     /* k7 */
		assert_int_equal(r.malformed, 1);                /* the second k9 */
		assert_int_equal(r.existing, N + 2);
		expect_query(fx->db,
		             "SELECT group_concat(key || '=' || url || ',' || state || ',' ||"
		             " coalesce(error, '-'), ' ') FROM (SELECT * FROM _ringfill_jobs"
		             " WHERE key IN ('k3', 'k5', 'k7', 'k9', 'k100', 'k129') ORDER BY id)",
		             "k3=https://h/k3-v2,pending,- k5=https://h/k5-v1,done,-"
		             " k7=https://h/k7-v1,pending,- k9=https://h/k9-v1,pending,-"
		             " k100=https://h/k100-v2,pending,- k129=https://h/k129-v2,pending,-");
		char *why = query1(fx->db, "SELECT state || ',' || error_class || ',' || error"
		                           " FROM _ringfill_jobs WHERE key LIKE '%k9-v9%'");
		assert_non_null(strstr(why, "failed,permanent,"));
		assert_non_null(strstr(why, ":133: bad manifest line: key \"k9\" was given by an earlier"));
		free(why);
	}
}

/* store_import_files: a file known by its URL under another key (the
 * pattern's base moved, so its key did) is not a new job; one of the same
 * key, or a new file, goes as store_import_list has it. */
static void test_import_files_known_by_url(void **state)
{
	fixture_t *fx = *state;
	store_import_t r;
	char err[STORE_ERR_BYTES];
	const store_job_t first[] = {{"a.json", "file:/d/h/a.json"}, {"b.json", "file:/d/h/b.json"}};
	assert_int_equal(store_import_files(fx->st, "src", first, 2, &r, err, sizeof err), 0);
	assert_int_equal(r.added, 2);
	const store_job_t wider[] = {{"h/a.json", "file:/d/h/a.json"},
	                             {"h/b.json", "file:/d/h/b.json"},
	                             {"g/a.json", "file:/d/g/a.json"},
	                             {"a.json", "file:/d/h/a.json"}};
	for (int round = 0; round < 2; round++) {
		assert_int_equal(store_import_files(fx->st, "src", wider, 4, &r, err, sizeof err), 0);
		assert_int_equal(r.lines, 4);
		assert_int_equal(r.added, round == 0 ? 1 : 0); /* g/a.json */
		assert_int_equal(r.same_file, 2);              /* h/a.json, h/b.json */
		assert_int_equal(r.existing, round == 0 ? 3 : 4);
		expect_query(fx->db, "SELECT group_concat(key, ' ') FROM _ringfill_jobs",
		             "a.json b.json g/a.json");
	}
	/* Another source, or store_import_list, knows nothing of it. (Two paths
	 * of one file in one list are files_expand's to leave out.) */
	assert_int_equal(store_import_files(fx->st, "other", wider, 3, &r, err, sizeof err), 0);
	assert_int_equal(r.added, 3);
	assert_int_equal(r.same_file, 0);
	assert_int_equal(store_import_list(fx->st, "src", wider, 1, &r, err, sizeof err), 0);
	assert_int_equal(r.added, 1);
}

/* A template key that would be a path segment of its own, "." or "..",
 * names another path once servers resolve it (users/../archive.json is
 * /archive.json): a malformed line, not a job. */
static void test_template_dot_keys_are_malformed(void **state)
{
	fixture_t *fx = *state;
	store_import_t r;
	char err[STORE_ERR_BYTES];
	write_file(fx->urls, "alice\n..\n.\n...\n");
	store_template_t t = {.url = "https://h/users/{name}/archive.json"};
	assert_int_equal(store_import(fx->st, "tpl", fx->urls, &t, &r, err, sizeof err), 0);
	assert_int_equal(r.added, 2); /* alice, ... */
	assert_int_equal(r.malformed, 2);
	expect_query(fx->db, "SELECT group_concat(key || '=' || state || '=' || coalesce(url, '-'), ' ')"
	                     " FROM (SELECT * FROM _ringfill_jobs ORDER BY id)",
	             "alice=pending=https://h/users/alice/archive.json ..=failed=- .=failed=-"
	             " ...=pending=https://h/users/.../archive.json");
	char *why = query1(fx->db, "SELECT error FROM _ringfill_jobs WHERE key = '..'");
	assert_non_null(strstr(why, ":2: malformed URL from the template: the key is a path segment"));
	free(why);
}

static void test_fetch_pages_by_id_and_counts(void **state)
{
	fixture_t *fx = *state;
	store_import_t r;
	char err[STORE_ERR_BYTES];
	job_desc_t *jobs[4];
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(store_import_urls(fx->st, "other", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(store_jobs_fetch(fx->st, "src", 0, jobs, 2, err, sizeof(err)), 2);
	assert_string_equal(jobs[0]->url, "https://example.com/a");
	assert_string_equal(jobs[0]->key, "https://example.com/a");
	assert_int_equal(jobs[0]->attempts, 0);
	assert_string_equal(jobs[1]->url, "https://example.com/b");
	assert_true(jobs[0]->id < jobs[1]->id);
	int64_t last = jobs[1]->id;
	free(jobs[0]);
	free(jobs[1]);
	assert_int_equal(store_jobs_fetch(fx->st, "src", last, jobs, 4, err, sizeof(err)), 2);
	assert_string_equal(jobs[0]->key, "c1");
	assert_string_equal(jobs[0]->url, "https://example.com/c");
	assert_string_equal(jobs[1]->url, "https://example.com/d");
	last = jobs[1]->id;
	free(jobs[0]);
	free(jobs[1]);
	assert_int_equal(store_jobs_fetch(fx->st, "src", last, jobs, 4, err, sizeof(err)), 0);

	store_counts_t c;
	assert_int_equal(store_job_counts(fx->st, "src", &c, err, sizeof(err)), 0);
	assert_int_equal(c.pending, 4);
	assert_int_equal(c.failed, 4);
	assert_int_equal(c.done, 0);
	assert_int_equal(c.total, 8);
	assert_int_equal(store_job_counts(fx->st, NULL, &c, err, sizeof(err)), 0);
	assert_int_equal(c.total, 16);
	assert_int_equal(store_job_counts(fx->st, "nobody", &c, err, sizeof(err)), 0);
	assert_int_equal(c.total, 0);

	/* Done jobs leave the state index: they are counted, never fetched. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "UPDATE _ringfill_jobs SET state='done'"
	                              " WHERE source='src' AND key IN ('c1', 'https://example.com/a')",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_job_counts(fx->st, "src", &c, err, sizeof(err)), 0);
	assert_int_equal(c.pending, 2);
	assert_int_equal(c.failed, 4);
	assert_int_equal(c.done, 2);
	assert_int_equal(c.total, 8);
	assert_int_equal(store_job_counts(fx->st, NULL, &c, err, sizeof(err)), 0);
	assert_int_equal(c.pending, 6);
	assert_int_equal(c.done, 2);
	assert_int_equal(c.total, 16);
	assert_int_equal(store_jobs_fetch(fx->st, "src", 0, jobs, 4, err, sizeof(err)), 2);
	assert_string_equal(jobs[0]->url, "https://example.com/b");
	assert_string_equal(jobs[1]->url, "https://example.com/d");
	free(jobs[0]);
	free(jobs[1]);
}

/* A database made before the partial state index (2026-12-07) has the full
 * one: store_open replaces it, and its jobs are fetched and counted as
 * before. */
static void test_open_replaces_full_state_index(void **state)
{
	(void)state;
	char dir[] = "/tmp/rf_store_old_XXXXXX", path[64], err[STORE_ERR_BYTES];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/old.db", dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db,
	                     "CREATE TABLE _ringfill_jobs ("
	                     " id INTEGER PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL,"
	                     " url TEXT, state TEXT NOT NULL DEFAULT 'pending'"
	                     "  CHECK (state IN ('pending','done','failed')),"
	                     " attempts INTEGER NOT NULL DEFAULT 0, http_status INTEGER,"
	                     " error_class TEXT CHECK (error_class IN ('transient','permanent')),"
	                     " error TEXT, bytes INTEGER, sha256 TEXT, raw_path TEXT, vars TEXT,"
	                     " updated_at REAL, ckpt_offset INTEGER, ckpt_records INTEGER,"
	                     " ckpt_validator TEXT, content_encoding TEXT, UNIQUE(source, key));"
	                     "CREATE INDEX _ringfill_jobs_source_state"
	                     " ON _ringfill_jobs(source, state, id);"
	                     "INSERT INTO _ringfill_jobs (source, key, url, state) VALUES"
	                     " ('s', '1', 'https://h/1', 'done'), ('s', '2', 'https://h/2', 'pending'),"
	                     " ('s', '3', 'https://h/3', 'failed'), ('s', '4', 'https://h/4', 'pending');",
	                     NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	store_t *st;
	assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
	expect_query(path, "PRAGMA page_size", "4096"); /* an existing file keeps its pages */
	expect_query(path, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
	                   " WHERE type='index' AND (name LIKE '%state%' OR name LIKE '%done%')"
	                   " ORDER BY name)",
	             "_ringfill_jobs_not_done");
	store_counts_t c;
	assert_int_equal(store_job_counts(st, "s", &c, err, sizeof(err)), 0);
	assert_int_equal(c.pending, 2);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.failed, 1);
	assert_int_equal(c.total, 4);
	job_desc_t *jobs[4];
	assert_int_equal(store_jobs_fetch(st, "s", 0, jobs, 4, err, sizeof(err)), 2);
	assert_string_equal(jobs[0]->key, "2");
	assert_string_equal(jobs[1]->key, "4");
	free(jobs[0]);
	free(jobs[1]);
	store_close(st);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_missing_file_is_named(void **state)
{
	fixture_t *fx = *state;
	store_import_t r;
	char err[STORE_ERR_BYTES], path[160];
	snprintf(path, sizeof(path), "%s/missing.txt", fx->dir);
	assert_int_equal(store_import_urls(fx->st, "src", path, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
	expect_query(fx->db, "SELECT count(*) FROM _ringfill_jobs", "0");
}

static void test_long_line_is_malformed_not_fatal(void **state)
{
	fixture_t *fx = *state;
	size_t n = 100 * 1024;
	char *text = malloc(n + 64);
	memcpy(text, "https://example.com/", 20);
	memset(text + 20, 'x', n);
	strcpy(text + 20 + n, "\nhttps://example.com/ok\n");
	write_file(fx->urls, text);
	free(text);
	store_import_t r;
	char err[STORE_ERR_BYTES];
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.lines, 2);
	assert_int_equal(r.added, 1);
	assert_int_equal(r.malformed, 1);
	expect_query(fx->db, "SELECT key FROM _ringfill_jobs WHERE state='pending'",
	             "https://example.com/ok");
}

/* store_import_list (the files source): 150 jobs go in 64 at a time and one
 * by one for the rest, each pending with its key, url, no vars, in order;
 * a second list repeating the first 150 (and a key twice within one group
 * of 64) adds only the new ones and counts the rest as existing. */
static void test_import_list_groups(void **state)
{
	fixture_t *fx = *state;
	char err[STORE_ERR_BYTES];
	enum { FIRST = 150, SECOND = 230 };
	static char keys[SECOND][16], urls[SECOND][40];
	store_job_t jobs[SECOND + 1];
	for (int i = 0; i < SECOND; i++) {
		snprintf(keys[i], sizeof keys[i], "k%03d.json", i);
		snprintf(urls[i], sizeof urls[i], "file:/data/k%03d.json", i);
		jobs[i] = (store_job_t){keys[i], urls[i]};
	}
	store_import_t res;
	assert_int_equal(store_import_list(fx->st, "src", jobs, FIRST, &res, err, sizeof err), 0);
	assert_int_equal(res.lines, FIRST);
	assert_int_equal(res.added, FIRST);
	assert_int_equal(res.existing, 0);
	expect_query(fx->db, "SELECT count(*) FROM _ringfill_jobs WHERE source = 'src' AND "
	                     "state = 'pending' AND attempts = 0 AND vars IS NULL AND "
	                     "error IS NULL AND error_class IS NULL AND updated_at > 0 AND "
	                     "url = 'file:/data/' || key AND id = 1 + CAST(substr(key, 2, 3) AS INT)",
	             "150");
	/* 230 more rows with k200 again inside the group of rows 192..255. */
	memmove(&jobs[201], &jobs[200], (SECOND - 200) * sizeof jobs[0]);
	assert_int_equal(store_import_list(fx->st, "src", jobs, SECOND + 1, &res, err, sizeof err), 0);
	assert_int_equal(res.lines, SECOND + 1);
	assert_int_equal(res.added, SECOND - FIRST);
	assert_int_equal(res.existing, FIRST + 1);
	expect_query(fx->db, "SELECT count(*) || ' ' || max(id) FROM _ringfill_jobs", "230 230");
}

/* A URL list of 200 lines through the grouped inserts: plain URLs, manifest
 * lines with variables, and a malformed line every 45th, which goes in at
 * once; every job's id still follows its line, and each keeps its vars. */
static void test_import_groups_keep_line_order(void **state)
{
	fixture_t *fx = *state;
	char err[STORE_ERR_BYTES];
	FILE *f = fopen(fx->urls, "w");
	assert_non_null(f);
	for (int i = 0; i < 200; i++) {
		if (i % 45 == 44)
			fprintf(f, "bad line %d\n", i);
		else if (i % 3 == 0)
			fprintf(f, "{\"url\": \"https://h/%d\", \"key\": \"k%d\", \"n\": %d}\n", i, i, i);
		else
			fprintf(f, "https://h/%d\n", i);
	}
	fclose(f);
	store_import_t r;
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.lines, 200);
	assert_int_equal(r.malformed, 4);
	assert_int_equal(r.added, 196);
	/* Line i (0-based) is job i + 1: its url, or its failure naming line i + 1. */
	expect_query(fx->db, "SELECT count(*) FROM _ringfill_jobs WHERE "
	                     "(state = 'pending' AND url = 'https://h/' || (id - 1) AND "
	                     " (((id - 1) % 3 = 0 AND key = 'k' || (id - 1) AND "
	                     "   vars = '{\"n\":' || (id - 1) || '}') OR "
	                     "  ((id - 1) % 3 != 0 AND key = url AND vars IS NULL))) OR "
	                     "(state = 'failed' AND (id - 1) % 45 = 44 AND key = 'bad line ' || (id - 1)"
	                     " AND error LIKE '%:' || id || ': malformed URL: %')",
	             "200");
	/* Again: every line known, the failed ones included. */
	assert_int_equal(store_import_urls(fx->st, "src", fx->urls, &r, err, sizeof(err)), 0);
	assert_int_equal(r.added, 0);
	assert_int_equal(r.existing, 196);
	expect_query(fx->db, "SELECT count(*) FROM _ringfill_jobs", "200");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_schema_and_wal, setup, teardown),
		cmocka_unit_test(test_open_error_names_the_file),
		cmocka_unit_test(test_open_replaces_full_state_index),
		cmocka_unit_test_setup_teardown(test_import_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reimport_adds_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reimport_requeues_transient_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reimport_takes_changed_urls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_files_known_by_url, setup, teardown),
		cmocka_unit_test_setup_teardown(test_template_dot_keys_are_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_pages_by_id_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file_is_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line_is_malformed_not_fatal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_list_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_groups_keep_line_order, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
