/* tests/store/test_writer.c: the writer thread against a real database.
 *
 * The test thread plays the loop: it takes jobs from pipe.to_loop, pushes
 * batches (built with store/batch.c from parsed JSON) into pipe.to_writer,
 * rings the writer's doorbell and ends with BATCH_END. The database is then
 * read through a second sqlite3 connection: rows, columns, job states. */
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

typedef struct {
	char dir[64], db[128];
	store_t *st;
	pipe_t pipe;
	writer_t *w;
	uint32_t keyed_chunk_rows; /* start_keyed's writer_config_t.keyed_chunk_rows */
} fixture_t;

static int setup(void **state)
{
	fixture_t *fx = calloc(1, sizeof(*fx));
	char err[STORE_ERR_BYTES];
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/rf_writer_XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->db, sizeof(fx->db), "%s/w.db", fx->dir);
	assert_int_equal(store_open(fx->db, &fx->st, err, sizeof(err)), 0);
	fx->pipe.loop_eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	fx->pipe.done_eventfd = -1;
	assert_true(fx->pipe.loop_eventfd >= 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *fx = *state;
	char cmd[256];
	store_close(fx->st);
	close(fx->pipe.loop_eventfd);
	snprintf(cmd, sizeof(cmd), getenv("KEEP") ? "true" : "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void import_n(fixture_t *fx, const char *source, int n)
{
	char path[160], err[STORE_ERR_BYTES];
	store_import_t r;
	snprintf(path, sizeof(path), "%s/%s.txt", fx->dir, source);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < n; i++)
		fprintf(f, "https://example.com/%s/%d\n", source, i);
	fclose(f);
	assert_int_equal(store_import_urls(fx->st, source, path, &r, err, sizeof(err)), 0);
	assert_int_equal(r.added, n);
}

static void start(fixture_t *fx, uint32_t commit_rows)
{
	writer_config_t cfg = {.table = "records", .source = "src", .commit_rows = commit_rows};
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &fx->w), 0);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits for the writer's eventfd, as the loop would. */
static void wait_loop_eventfd(fixture_t *fx, int timeout_ms)
{
	struct pollfd pfd = {.fd = fx->pipe.loop_eventfd, .events = POLLIN};
	uint64_t v;
	if (poll(&pfd, 1, timeout_ms) == 1)
		assert_int_equal(read(fx->pipe.loop_eventfd, &v, sizeof(v)), sizeof(v));
}

/* Takes every job the writer feeds until it flags exhaustion; ids go to out. */
static int take_all_jobs(fixture_t *fx, int64_t *out, int max)
{
	int n = 0;
	uint64_t deadline = now_ms() + GUARD_MS;
	for (;;) {
		/* Read the flag first: jobs pushed before it was set are then visible. */
		bool exhausted = atomic_load_explicit(&fx->pipe.jobs_exhausted, memory_order_acquire);
		job_desc_t *j;
		int got = 0;
		while ((j = ring_pop(&fx->pipe.to_loop))) {
			assert_true(n < max);
			out[n++] = j->id;
			free(j);
			got++;
		}
		if (got)
			doorbell_ring(&fx->pipe.writer_bell); /* room in to_loop again */
		else if (exhausted)
			return n;
		assert_true(now_ms() < deadline);
		assert_false(atomic_load(&fx->pipe.fatal));
		if (!got)
			wait_loop_eventfd(fx, 100);
	}
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

static batch_t *done_batch(int64_t id, const char *json, const char *path)
{
	batch_t *b = batch_new(BATCH_JOB_DONE, id);
	json_parser_t *p = json_parser_new(0);
	json_path_t *jp;
	json_doc_t d;
	json_error_t e;
	const char *reason;
	assert_int_equal(json_parse(p, json, strlen(json), &d, &e), 0);
	assert_int_equal(json_path_compile(path, &jp, &e), 0);
	assert_int_equal(batch_add_rows(b, &d, jp, &reason), 0);
	json_path_free(jp);
	json_parser_free(p);
	b->attempts = 1;
	b->http_status = 200;
	b->body_bytes = strlen(json);
	strcpy(b->sha256_hex, "ab12");
	return b;
}

static void finish(fixture_t *fx, int want)
{
	push(fx, batch_new(BATCH_END, 0));
	assert_int_equal(writer_join(fx->w), want);
	ring_destroy(&fx->pipe.to_writer);
	ring_destroy(&fx->pipe.to_loop);
}

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

static void test_jobs_fed_in_id_order_and_exhausted(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "other", 3); /* another source's jobs are never fed */
	import_n(fx, "src", 1500); /* more than the ring holds */
	static int64_t ids[2000];
	start(fx, 0);
	int n = take_all_jobs(fx, ids, 2000);
	assert_int_equal(n, 1500);
	for (int i = 1; i < n; i++)
		assert_true(ids[i - 1] < ids[i]);
	assert_int_equal(ids[0], 4);
	finish(fx, 0);
}

static void test_rows_states_and_columns(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 4);
	int64_t ids[8];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 8), 4);
	push(fx, done_batch(1, "{\"id\":1,\"Name\":\"a\",\"name\":\"b\",\"user\":{\"x\":1.5}}", "$"));
	push(fx, done_batch(2, "[{\"id\":2,\"extra\":\"new\",\"tags\":[1,2]},{\"id\":3,\"ok\":true}]",
	                    "$[*]"));
	batch_t *f = batch_new(BATCH_JOB_DONE, 3);
	batch_fail(f, ERROR_CLASS_PERMANENT, "HTTP 404 Not Found");
	f->http_status = 404;
	f->attempts = 1;
	push(fx, f);
	f = batch_new(BATCH_JOB_FAILED, 4);
	batch_fail(f, ERROR_CLASS_TRANSIENT, "connection reset");
	f->attempts = 5;
	push(fx, f);
	finish(fx, 0);
	assert_int_equal(atomic_load(&fx->pipe.rows_committed), 3);
	assert_int_equal(atomic_load(&fx->pipe.jobs_done_committed), 2);
	assert_int_equal(atomic_load(&fx->pipe.jobs_failed_committed), 2);

	expect_query(fx->db, "SELECT group_concat(name || ':' || type, ',')"
	                     " FROM pragma_table_info('records')",
	             "_job:INTEGER,id:INTEGER,Name:TEXT,name_2:TEXT,user_x:REAL,"
	             "extra:TEXT,tags:TEXT,ok:INTEGER");
	expect_query(fx->db, "SELECT group_concat(_job||'/'||id||'/'||coalesce(Name,'-')||'/'||"
	                     "coalesce(name_2,'-')||'/'||coalesce(extra,'-')||'/'||"
	                     "coalesce(tags,'-')||'/'||coalesce(ok,'-'), ' ')"
	                     " FROM (SELECT * FROM records ORDER BY id)",
	             "1/1/a/b/-/-/- 2/2/-/-/new/[1,2]/- 2/3/-/-/-/-/1");
	expect_query(fx->db, "SELECT typeof(user_x) || typeof(ok) FROM records WHERE id=1",
	             "realnull");
	expect_query(fx->db, "SELECT group_concat(key || '=' || col, ',') FROM"
	                     " (SELECT * FROM _ringfill_columns WHERE tbl='records' ORDER BY rowid)",
	             "id=id,Name=Name,name=name_2,user_x=user_x,extra=extra,tags=tags,ok=ok");
	expect_query(fx->db, "SELECT group_concat(id||':'||state||':'||coalesce(error_class,'-')||':'"
	                     "||coalesce(error,'-')||':'||attempts||':'||coalesce(http_status,'-')||"
	                     "':'||coalesce(sha256,'-'), ' ') FROM _ringfill_jobs",
	             "1:done:-:-:1:200:ab12 2:done:-:-:1:200:ab12 "
	             "3:failed:permanent:HTTP 404 Not Found:1:404:- "
	             "4:failed:transient:connection reset:5:-:-");
}

/* A rowid table's row whose fields name its table's last layout is matched
 * in place (names of up to 8 bytes as one word): names of the same length
 * that differ in their last byte, at 8 and at 10 bytes, in another order,
 * and a last field whose name and value end the batch must each land in
 * their own column, across the rows of one job and two. */
static void test_rowid_rows_of_near_layouts(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 2);
	int64_t ids[4];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 4), 2);
	push(fx, done_batch(1, "[{\"ab\":1,\"ac\":2},{\"ab\":3,\"ac\":4},{\"ab\":5,\"ad\":6},"
	                       "{\"ac\":7,\"ab\":8},{\"abcdefgh\":9,\"abcdefgi\":10},"
	                       "{\"abcdefgh\":11,\"abcdefgj\":12},{\"abcdefghij\":13},"
	                       "{\"abcdefghik\":14},{\"abcdefghik\":15},{\"b\":\"\"},{\"c\":\"\"}]",
	                    "$[*]"));
	push(fx, done_batch(2, "[{\"c\":\"x\"},{\"ab\":16,\"ac\":17},{\"ab\":18,\"ad\":19},"
	                       "{\"ad\":20,\"ab\":21},{\"b\":\"y\"}]",
	                    "$[*]"));
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM pragma_table_info('records')",
	             "_job,ab,ac,ad,abcdefgh,abcdefgi,abcdefgj,abcdefghij,abcdefghik,b,c");
	expect_query(fx->db, "SELECT group_concat(_job||':'||ifnull(ab,'')||','||ifnull(ac,'')||','"
	                     "||ifnull(ad,'')||','||ifnull(abcdefgh,'')||','||ifnull(abcdefgi,'')||','"
	                     "||ifnull(abcdefgj,'')||','||ifnull(abcdefghij,'')||','"
	                     "||ifnull(abcdefghik,'')||','||ifnull(b,'-')||','||ifnull(c,'-'), ' ')"
	                     " FROM (SELECT * FROM records ORDER BY rowid)",
	             "1:1,2,,,,,,,-,- 1:3,4,,,,,,,-,- 1:5,,6,,,,,,-,- 1:8,7,,,,,,,-,- "
	             "1:,,,9,10,,,,-,- 1:,,,11,,12,,,-,- 1:,,,,,,13,,-,- 1:,,,,,,,14,-,- "
	             "1:,,,,,,,15,-,- 1:,,,,,,,,,- 1:,,,,,,,,-, "
	             "2:,,,,,,,,-,x 2:16,17,,,,,,,-,- 2:18,,19,,,,,,-,- 2:21,,20,,,,,,-,- "
	             "2:,,,,,,,,y,-");
}

/* A statement whose rows are all of one job binds the job once (?1), one
 * whose rows come from several jobs binds each row's: jobs of 120, 80, 3
 * and 1 rows in one transaction (statements of 100 rows and powers of two
 * across them), and the same in the one-job-at-a-time path (a refused
 * job's transaction, replayed), give every row its own job. Another
 * connection holds the write lock while the batches are pushed, so the
 * writer, waiting for it, finds them all in the ring and puts their rows
 * into one transaction, instead of inserting the first job's rows alone
 * before the next batch comes. */
static void rows_carry_their_jobs(void **state, bool refuse)
{
	fixture_t *fx = *state;
	static const int sizes[] = {120, 80, 3, 1};
	import_n(fx, "src", 5);
	int64_t ids[8];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 8), 5);
	sqlite3 *lock;
	assert_int_equal(sqlite3_open(fx->db, &lock), SQLITE_OK);
	assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	static char json[32768];
	for (int j = 0; j < 4; j++) {
		size_t len = 0;
		json[len++] = '[';
		for (int r = 0; r < sizes[j]; r++)
			len += (size_t)snprintf(json + len, sizeof(json) - len, "%s{\"j\":%d,\"r\":%d}",
			                        r ? "," : "", j + 1, r);
		snprintf(json + len, sizeof(json) - len, "]");
		push(fx, done_batch(ids[j], json, "$[*]"));
	}
	if (refuse) { /* more columns than SQLite allows: the transaction goes jobwise */
		size_t len = 0;
		json[len++] = '{';
		for (int c = 0; c < 2100; c++)
			len += (size_t)snprintf(json + len, sizeof(json) - len, "%s\"c%d\":1", c ? "," : "",
			                        c);
		snprintf(json + len, sizeof(json) - len, "}");
	} else {
		snprintf(json, sizeof(json), "{\"j\":5,\"r\":0}");
	}
	push(fx, done_batch(ids[4], json, "$"));
	assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(lock);
	finish(fx, 0);
	expect_query(fx->db, "SELECT count(*) || '/' || sum(_job <> j) || '/' || count(DISTINCT _job)"
	                     " FROM records WHERE j IS NOT NULL",
	             refuse ? "204/0/4" : "205/0/5");
	expect_query(fx->db, "SELECT group_concat(n, ',') FROM (SELECT count(*) AS n FROM records"
	                     " WHERE j IS NOT NULL GROUP BY _job ORDER BY _job)",
	             refuse ? "120,80,3,1" : "120,80,3,1,1");
	expect_query(fx->db, "SELECT group_concat(state, ',') FROM _ringfill_jobs",
	             refuse ? "done,done,done,done,failed" : "done,done,done,done,done");
}

static void test_rows_carry_their_jobs(void **state)
{
	rows_carry_their_jobs(state, false);
}

static void test_rows_carry_their_jobs_jobwise(void **state)
{
	rows_carry_their_jobs(state, true);
}

static void test_rerun_reuses_columns_and_never_duplicates(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 3);
	int64_t ids[8];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 8), 3);
	push(fx, done_batch(1, "{\"name\":\"a\",\"Name\":\"b\"}", "$"));
	finish(fx, 0);

	/* A second run: job 1 arrives again (a replay after a crash, say). */
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 8), 2);
	push(fx, done_batch(1, "{\"name\":\"again\"}", "$"));
	push(fx, done_batch(2, "{\"Name\":\"c\",\"NAME\":\"d\",\"n\":null}", "$"));
	finish(fx, 0);
	assert_int_equal(atomic_load(&fx->pipe.jobs_done_committed), 1);
	assert_int_equal(atomic_load(&fx->pipe.rows_committed), 1);
	expect_query(fx->db, "SELECT count(*) FROM records WHERE _job=1", "1");
	expect_query(fx->db, "SELECT group_concat(name || ':' || type, ',')"
	                     " FROM pragma_table_info('records')",
	             "_job:INTEGER,name:TEXT,Name_2:TEXT,NAME_3:TEXT,n:");
	expect_query(fx->db, "SELECT name || Name_2 FROM records WHERE _job=1", "ab");
	expect_query(fx->db, "SELECT Name_2 || NAME_3 || typeof(n) FROM records WHERE _job=2",
	             "cdnull");
}

static batch_t *ckpt_batch(int64_t id, const char *json, uint64_t from, uint64_t records,
                           uint64_t offset)
{
	batch_t *b = done_batch(id, json, "$[*]");
	b->kind = BATCH_JOB_CHECKPOINT;
	b->ckpt_from = from;
	b->ckpt_records = records;
	b->ckpt_offset = offset;
	strcpy(b->ckpt_validator, "\"v1\"");
	return b;
}

/* A streamed job's checkpoints: rows and checkpoint together, the job still
 * pending (and fed again with its checkpoint); a checkpoint that does not
 * continue the committed one (a replay) adds nothing; the done batch ends it. */
static void test_checkpoints_apply_once(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 2);
	int64_t ids[8];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 8), 2);
	push(fx, ckpt_batch(1, "[{\"i\":1},{\"i\":2}]", 0, 2, 20));
	push(fx, ckpt_batch(1, "[{\"i\":1},{\"i\":2}]", 0, 2, 20)); /* again: ignored */
	push(fx, ckpt_batch(1, "[{\"i\":3}]", 2, 3, 30));
	push(fx, ckpt_batch(1, "[{\"i\":9}]", 2, 4, 40)); /* does not continue 3: ignored */
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(i) FROM (SELECT i FROM records ORDER BY i)",
	             "1,2,3");
	expect_query(fx->db, "SELECT state||':'||ckpt_offset||':'||ckpt_records||':'||ckpt_validator"
	                     " FROM _ringfill_jobs WHERE id=1",
	             "pending:30:3:\"v1\"");
	expect_query(fx->db, "SELECT count(*) FROM _ringfill_jobs WHERE ckpt_offset IS NULL", "1");

	/* The next run gets the checkpoint with the job, and finishes it. */
	job_desc_t *jobs[4];
	char err[STORE_ERR_BYTES];
	assert_int_equal(store_jobs_fetch(fx->st, "src", 0, jobs, 4, err, sizeof(err)), 2);
	assert_int_equal(jobs[0]->ckpt_offset, 30);
	assert_int_equal(jobs[0]->ckpt_records, 3);
	assert_string_equal(jobs[0]->ckpt_validator, "\"v1\"");
	assert_int_equal(jobs[1]->ckpt_offset, 0);
	assert_null(jobs[1]->ckpt_validator);
	free(jobs[0]);
	free(jobs[1]);
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 8), 2);
	push(fx, done_batch(1, "[{\"i\":4}]", "$[*]"));
	push(fx, ckpt_batch(1, "[{\"i\":5}]", 3, 5, 50)); /* after done: ignored */
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(i) FROM (SELECT i FROM records ORDER BY i)",
	             "1,2,3,4");
	expect_query(fx->db, "SELECT state FROM _ringfill_jobs WHERE id=1", "done");
}

/* A checkpoint the database refuses fails its job; the rest of the stream
 * (its done batch) must not mark it done or add rows after the hole. */
static void test_refused_checkpoint_fails_the_stream(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 1);
	int64_t ids[4];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 4), 1);
	push(fx, ckpt_batch(1, "[{\"i\":1}]", 0, 1, 10));
	size_t cap = 64 * 1024, n = 0;
	char *json = malloc(cap);
	n += (size_t)snprintf(json, cap, "[{");
	for (int i = 0; i < 2100; i++) /* more columns than SQLite allows */
		n += (size_t)snprintf(json + n, cap - n, "%s\"c%d\":%d", i ? "," : "", i, i);
	snprintf(json + n, cap - n, "}]");
	push(fx, ckpt_batch(1, json, 1, 2, 20));
	free(json);
	batch_t *end = done_batch(1, "[{\"i\":3}]", "$[*]");
	end->streamed = true;
	end->ckpt_from = 2; /* what the loop believes was committed */
	push(fx, end);
	finish(fx, 0);
	expect_query(fx->db, "SELECT state||':'||error_class||':'||ckpt_records FROM _ringfill_jobs",
	             "failed:permanent:1");
	expect_query(fx->db, "SELECT group_concat(i) FROM records", "1");
}

/* A database made before checkpoints gets their columns when opened. */
static void test_old_database_gets_checkpoint_columns(void **state)
{
	fixture_t *fx = *state;
	char path[160], err[STORE_ERR_BYTES];
	sqlite3 *c;
	snprintf(path, sizeof(path), "%s/old.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c,
	                              "CREATE TABLE _ringfill_jobs (id INTEGER PRIMARY KEY,"
	                              " source TEXT NOT NULL, key TEXT NOT NULL, url TEXT,"
	                              " state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER"
	                              " NOT NULL DEFAULT 0, http_status INTEGER, error_class TEXT,"
	                              " error TEXT, bytes INTEGER, sha256 TEXT, raw_path TEXT,"
	                              " vars TEXT, updated_at REAL, UNIQUE(source, key));"
	                              "INSERT INTO _ringfill_jobs (source, key, url) VALUES"
	                              " ('s', 'k', 'https://example.com/a.ndjson');",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(c);
	store_t *st;
	assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
	job_desc_t *jobs[2];
	assert_int_equal(store_jobs_fetch(st, "s", 0, jobs, 2, err, sizeof(err)), 1);
	assert_int_equal(jobs[0]->ckpt_offset, 0);
	free(jobs[0]);
	store_close(st);
	assert_int_equal(store_open(path, &st, err, sizeof(err)), 0); /* twice: no error */
	store_close(st);
	expect_query(path, "SELECT count(*) FROM pragma_table_info('_ringfill_jobs')"
	                   " WHERE name LIKE 'ckpt_%'",
	             "3");
}

/* The writer with both commit triggers set. */
static void start_triggers(fixture_t *fx, uint32_t commit_rows, uint32_t commit_ms)
{
	writer_config_t cfg = {.table = "records", .source = "src", .commit_rows = commit_rows,
	                       .commit_ms = commit_ms};
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &fx->w), 0);
}

/* An hour: a commit before END that the row count did not trigger would
 * have to wait this long, far past GUARD_MS. */
#define TRIGGER_NEVER_MS 3600000u

/* One batch, then a commit before END, which the triggers set must make:
 * another connection sees the job done and its row. */
static void commits_before_end(fixture_t *fx, uint32_t commit_rows, uint32_t commit_ms)
{
	import_n(fx, "src", 2);
	int64_t ids[4];
	start_triggers(fx, commit_rows, commit_ms);
	assert_int_equal(take_all_jobs(fx, ids, 4), 2);
	push(fx, done_batch(1, "{\"v\":1}", "$"));
	uint64_t deadline = now_ms() + GUARD_MS;
	while (atomic_load(&fx->pipe.rows_committed) < 1)
		assert_true(now_ms() < deadline);
	expect_query(fx->db, "SELECT state FROM _ringfill_jobs WHERE id=1", "done");
	expect_query(fx->db, "SELECT count(*) FROM records", "1");
	finish(fx, 0);
}

/* commit_rows alone commits: the timer is an hour away. */
static void test_commits_every_commit_rows(void **state)
{
	commits_before_end(*state, 1, TRIGGER_NEVER_MS);
}

/* commit_ms alone commits: the row count (a million) is never reached. */
static void test_commits_every_commit_ms(void **state)
{
	commits_before_end(*state, 1000000, 50);
}

/* Neither trigger set to fire: nothing is committed before END, even after
 * three times WRITER_COMMIT_MS_DEFAULT (a writer that ignored commit_ms
 * would have committed on its default timer by then); END commits. */
static void test_no_trigger_no_commit_before_end(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 2);
	int64_t ids[4];
	start_triggers(fx, 1000000, TRIGGER_NEVER_MS);
	assert_int_equal(take_all_jobs(fx, ids, 4), 2);
	push(fx, done_batch(1, "{\"v\":1}", "$"));
	struct timespec wait = {.tv_sec = 3 * WRITER_COMMIT_MS_DEFAULT / 1000,
	                        .tv_nsec = 3 * WRITER_COMMIT_MS_DEFAULT % 1000 * 1000000L};
	nanosleep(&wait, NULL);
	assert_int_equal(atomic_load(&fx->pipe.rows_committed), 0);
	expect_query(fx->db, "SELECT state FROM _ringfill_jobs WHERE id=1", "pending");
	finish(fx, 0);
	expect_query(fx->db, "SELECT state FROM _ringfill_jobs WHERE id=1", "done");
	expect_query(fx->db, "SELECT count(*) FROM records", "1");
}

/* Neither commit_rows nor commit_ms would fire: the held batches' bytes do.
 * Batches just under WRITER_HELD_BYTES_MAX in all stay uncommitted; the
 * one that reaches it is committed with them before END. */
static void test_commits_at_held_bytes(void **state)
{
	fixture_t *fx = *state;
	enum { BIG = 3 << 20, JOBS_MAX = 64 };
	import_n(fx, "src", JOBS_MAX);
	int64_t ids[JOBS_MAX];
	start_triggers(fx, 1000000, TRIGGER_NEVER_MS);
	assert_int_equal(take_all_jobs(fx, ids, JOBS_MAX), JOBS_MAX);
	uint64_t held = 0;
	int pushed = 0;
	for (;; pushed++) {
		assert_true(pushed < JOBS_MAX);
		char json[32];
		snprintf(json, sizeof(json), "{\"j\":%d}", pushed + 1);
		batch_t *b = done_batch(ids[pushed], json, "$");
		assert_int_equal(batch_rows_reserve(b, BIG), 0);
		uint64_t bytes = batch_mem_bytes(b);
		if (held + bytes >= WRITER_HELD_BYTES_MAX) {
			/* Under the bound, even after three default commit periods:
			 * nothing committed. */
			struct timespec wait = {.tv_sec = 3 * WRITER_COMMIT_MS_DEFAULT / 1000,
			                        .tv_nsec = 3 * WRITER_COMMIT_MS_DEFAULT % 1000 * 1000000L};
			nanosleep(&wait, NULL);
			assert_int_equal(atomic_load(&fx->pipe.rows_committed), 0);
			push(fx, b);
			pushed++;
			break;
		}
		held += bytes;
		push(fx, b);
	}
	assert_true(pushed > 1);
	uint64_t deadline = now_ms() + GUARD_MS;
	while (atomic_load(&fx->pipe.rows_committed) < (uint64_t)pushed)
		assert_true(now_ms() < deadline);
	char want[64];
	snprintf(want, sizeof(want), "%d/%d", pushed, pushed);
	expect_query(fx->db,
	             "SELECT count(*) || '/' || (SELECT count(*) FROM _ringfill_jobs"
	             " WHERE state = 'done') FROM records",
	             want);
	finish(fx, 0);
}

/* Two writers on one database (two sources, one inferred table): b's
 * writer starts before the table exists, a's then makes it, mapping "name"
 * to name and "Name" to Name_2; b's first row must use that map. Before
 * tables_refresh, b "created" the table again (wiping a's map) and put "Name"
 * in name: later runs stored the two keys' values swapped. */
static void test_second_writer_sees_a_table_made_meanwhile(void **state)
{
	fixture_t *fx = *state;
	fixture_t b = {.keyed_chunk_rows = 0};
	char err[STORE_ERR_BYTES];
	memcpy(b.dir, fx->dir, sizeof(b.dir));
	memcpy(b.db, fx->db, sizeof(b.db));
	assert_int_equal(store_open(b.db, &b.st, err, sizeof(err)), 0);
	b.pipe.loop_eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	b.pipe.done_eventfd = -1;
	import_n(fx, "a", 1);
	import_n(&b, "b", 1);
	int64_t ida, idb;
	writer_config_t cb = {.table = "records", .source = "b"};
	assert_int_equal(writer_start(b.st, &cb, &b.pipe, &b.w), 0);
	assert_int_equal(take_all_jobs(&b, &idb, 1), 1);
	writer_config_t ca = {.table = "records", .source = "a"};
	assert_int_equal(writer_start(fx->st, &ca, &fx->pipe, &fx->w), 0);
	assert_int_equal(take_all_jobs(fx, &ida, 1), 1);
	push(fx, done_batch(ida, "{\"id\":\"a1\",\"name\":\"lower-a\",\"Name\":\"UPPER-a\"}", "$"));
	finish(fx, 0);
	push(&b, done_batch(idb, "{\"Name\":\"UPPER-b\",\"name\":\"lower-b\",\"id\":\"b1\"}", "$"));
	finish(&b, 0);
	store_close(b.st);
	close(b.pipe.loop_eventfd);
	expect_query(fx->db, "SELECT group_concat(id || '=' || name || '/' || Name_2, ' ')"
	                     " FROM (SELECT * FROM records ORDER BY id)",
	             "a1=lower-a/UPPER-a b1=lower-b/UPPER-b");
	expect_query(fx->db, "SELECT group_concat(key || '>' || col, ' ') FROM"
	                     " (SELECT * FROM _ringfill_columns WHERE tbl = 'records' ORDER BY key)",
	             "Name>Name_2 id>id name>name");
}

/* A column of TEXT affinity (its first value was a string) later given
 * doubles: each is stored as the shortest text that reads back as the same
 * double, not SQLite's 15 digits (3.141592653589793 as "3.14159265358979");
 * a whole one with ".0" as SQLite writes it; integers as before. */
static void test_doubles_in_a_text_column_keep_their_digits(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 2);
	int64_t ids[2];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 2), 2);
	push(fx, done_batch(ids[0],
	                    "[{\"v\":\"N/A\"},{\"v\":3.141592653589793},{\"v\":0.30000000000000004},"
	                    "{\"v\":123456.78901234567},{\"v\":1e3},{\"v\":-2.5e-300},{\"v\":7}]",
	                    "$[*]"));
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(v || ':' || typeof(v), ' ') FROM"
	                     " (SELECT v FROM records ORDER BY rowid)",
	             "N/A:text 3.141592653589793:text 0.30000000000000004:text"
	             " 123456.78901234567:text 1000.0:text -2.5e-300:text 7:text");
}

static long file_bytes(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	return n;
}

/* Checkpoints run while the writer goes on (store/writer.c, the
 * checkpointer): the database file grows before the run ends, and the WAL
 * stays bounded: at most the size at which the writer checkpoints itself
 * (set to 32 MiB here, less than the default) and a commit more, where
 * all the commits would take 64 MiB. */
static void test_checkpoints_run_during_the_run(void **state)
{
	fixture_t *fx = *state;
	enum { JOBS = 32, BLOB = 2 << 20 }; /* 512 pages and more per commit */
	import_n(fx, "src", JOBS);
	int64_t ids[JOBS + 2];
	writer_config_t cfg = {.table = "records", .source = "src", .commit_rows = 1,
	                       .wal_self_bytes = 32u << 20};
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &fx->w), 0);
	assert_int_equal(take_all_jobs(fx, ids, JOBS + 2), JOBS);
	char *json = malloc(BLOB + 32), wal[160];
	snprintf(wal, sizeof(wal), "%s-wal", fx->db);
	long wal_max = 0;
	for (int i = 0; i < JOBS; i++) {
		snprintf(json, 32, "{\"blob\":\"");
		memset(json + 9, 'a' + i % 26, BLOB);
		strcpy(json + 9 + BLOB, "\"}");
		push(fx, done_batch(ids[i], json, "$"));
		uint64_t deadline = now_ms() + GUARD_MS;
		while (atomic_load(&fx->pipe.rows_committed) < (uint64_t)i + 1)
			assert_true(now_ms() < deadline);
		long n = file_bytes(wal);
		wal_max = n > wal_max ? n : wal_max;
	}
	uint64_t deadline = now_ms() + GUARD_MS;
	while (file_bytes(fx->db) < (long)JOBS / 2 * BLOB) /* copied before END */
		assert_true(now_ms() < deadline);
	assert_true(wal_max < (8192L + 1024) * 4096);
	finish(fx, 0);
	free(json);
	expect_query(fx->db, "SELECT count(*) FROM records", "32");
}

/* More columns than SQLite allows (2000): the job fails alone, and its
 * reason names the table and the limit, whether the table was being made
 * (job 1) or widened (job 3, after job 2 made it). Before, a widened
 * table's reason named SQLite's temporary "sqlite_altertab_t". */
static void test_rows_the_database_refuses_fail_only_their_job(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 3);
	int64_t ids[5];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 5), 3);
	size_t cap = 64 * 1024, n = 0;
	char *json = malloc(cap);
	n += (size_t)snprintf(json, cap, "{");
	for (int i = 0; i < 2100; i++)
		n += (size_t)snprintf(json + n, cap - n, "%s\"c%d\":%d", i ? "," : "", i, i);
	snprintf(json + n, cap - n, "}");
	push(fx, done_batch(1, json, "$"));
	push(fx, done_batch(2, "{\"fine\":1}", "$"));
	push(fx, done_batch(3, json, "$"));
	free(json);
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(state || ':' || error_class, ',') FROM"
	             " _ringfill_jobs WHERE id IN (1, 3)", "failed:permanent,failed:permanent");
	for (int id = 1; id <= 3; id += 2) {
		char sql[96];
		snprintf(sql, sizeof(sql), "SELECT error FROM _ringfill_jobs WHERE id=%d", id);
		char *err = query1(fx->db, sql);
		assert_string_equal(err, "database refused the rows: table \"records\" would have more"
		                         " than 2000 columns, SQLite's limit (name the columns to keep"
		                         " in the job file's \"columns\")");
		free(err);
	}
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM pragma_table_info('records')",
	             "_job,fine");
	expect_query(fx->db, "SELECT _job || ':' || fine FROM records", "2:1");
}

/* A refused row inside a full multi-row INSERT fails only its job, with the
 * rows of that statement and of the statements before it; rows wide enough
 * that a full statement's would pass SQLite's parameter limit go in smaller
 * statements. */
#define WIDE_COLUMNS 1000 /* 32766 parameters / 1001 per row: 32 rows a statement */
#define WIDE_ROWS 45

static void test_refused_row_mid_statement_and_wide_rows(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 3);
	sqlite3 *c;
	assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c, "CREATE TABLE records (_job INTEGER,"
	                                 " v INTEGER CHECK (v <> 77))", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(c);
	int64_t ids[4];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 4), 3);
	size_t cap = 16 * 1024 * 1024, n = 0;
	char *json = malloc(cap);
	n = (size_t)snprintf(json, cap, "[");
	for (int i = 50; i < 200; i++) /* v = 77 is the 28th row of the first statement */
		n += (size_t)snprintf(json + n, cap - n, "%s{\"v\":%d}", i > 50 ? "," : "", i);
	snprintf(json + n, cap - n, "]");
	push(fx, done_batch(1, json, "$[*]"));
	push(fx, done_batch(2, "[{\"v\":1},{\"v\":2},{\"v\":3}]", "$[*]"));
	n = (size_t)snprintf(json, cap, "[");
	for (int r = 0; r < WIDE_ROWS; r++) {
		n += (size_t)snprintf(json + n, cap - n, "%s{", r ? "," : "");
		for (int k = 0; k < WIDE_COLUMNS; k++)
			n += (size_t)snprintf(json + n, cap - n, "%s\"c%d\":%d", k ? "," : "", k,
			                      r * WIDE_COLUMNS + k);
		n += (size_t)snprintf(json + n, cap - n, "}");
	}
	snprintf(json + n, cap - n, "]");
	push(fx, done_batch(3, json, "$[*]"));
	free(json);
	finish(fx, 0);
	expect_query(fx->db, "SELECT state || ':' || error FROM _ringfill_jobs WHERE id=1",
	             "failed:database refused the rows: CHECK constraint failed: v <> 77");
	expect_query(fx->db, "SELECT group_concat(v, ',') FROM"
	                     " (SELECT v FROM records WHERE _job=2 ORDER BY rowid)", "1,2,3");
	long long sum = 0;
	for (int r = 0; r < WIDE_ROWS; r++)
		sum += (long long)r * WIDE_COLUMNS + (WIDE_COLUMNS - 1);
	char want[64];
	snprintf(want, sizeof(want), "%d:%lld:0:%d", WIDE_ROWS, sum, (WIDE_ROWS - 1) * WIDE_COLUMNS);
	expect_query(fx->db, "SELECT count(*) || ':' || sum(c999) || ':' ||"
	                     " (SELECT c0 FROM records WHERE _job=3 ORDER BY rowid LIMIT 1) || ':' ||"
	                     " (SELECT c0 FROM records WHERE _job=3 ORDER BY rowid DESC LIMIT 1)"
	                     " FROM records WHERE _job=3", want);
	expect_query(fx->db, "SELECT group_concat(state, ',') FROM"
	                     " (SELECT state FROM _ringfill_jobs ORDER BY id)", "failed,done,done");
}

static void test_full_disk_is_fatal_and_keeps_jobs_pending(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 2);
	int64_t ids[4];
	/* A page limit stands in for a full disk: SQLite reports SQLITE_FULL.
	 * 160 KiB in all, whatever the page size (store_open's: 16 KiB). */
	char sql[64], *page = query1(fx->db, "PRAGMA page_size");
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%d", 160 * 1024 / atoi(page));
	free(page);
	assert_int_equal(sqlite3_exec(store_db(fx->st), sql, NULL, NULL, NULL), SQLITE_OK);
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, 4), 2);
	size_t big = 512 * 1024;
	char *json = malloc(big + 32);
	strcpy(json, "{\"blob\":\"");
	memset(json + 9, 'x', big);
	strcpy(json + 9 + big, "\"}");
	push(fx, done_batch(1, json, "$"));
	free(json);
	uint64_t deadline = now_ms() + GUARD_MS;
	while (!atomic_load_explicit(&fx->pipe.fatal, memory_order_acquire)) {
		assert_true(now_ms() < deadline);
		wait_loop_eventfd(fx, 100);
	}
	assert_non_null(strstr(fx->pipe.fatal_msg, "database or disk is full"));
	assert_non_null(strstr(fx->pipe.fatal_msg, fx->db));
	assert_int_equal(writer_join(fx->w), -1);
	ring_destroy(&fx->pipe.to_writer);
	ring_destroy(&fx->pipe.to_loop);
	expect_query(fx->db, "SELECT group_concat(state, ',') FROM _ringfill_jobs", "pending,pending");
	expect_query(fx->db, "SELECT count(*) FROM sqlite_master WHERE name='records'", "0");
}

/* ---- keyed tables: one transaction's rows in key order ------------------ */

/* `jobs` jobs, the table made by hand with create_sql (unless NULL), and a
 * writer for one table "kv", columns inferred, keyed on `key` (n_key names)
 * in `mode`, whose jobs the test has taken; every batch of the test lands in
 * one transaction (committed at BATCH_END). */
static table_spec_t *start_keyed(fixture_t *fx, int jobs, const char *create_sql,
                                 table_mode_t mode, uint32_t n_key, const char *const *key)
{
	json_error_t e;
	int64_t ids[8];
	import_n(fx, "src", jobs);
	if (create_sql) {
		sqlite3 *c;
		assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
		assert_int_equal(sqlite3_exec(c, create_sql, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(c);
	}
	table_spec_t *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->name = strdup("kv");
	assert_int_equal(json_path_compile("$[*]", &t->rows, &e), 0);
	t->mode = mode;
	t->n_key = n_key;
	t->key = calloc(n_key, sizeof(char *));
	for (uint32_t k = 0; k < n_key; k++)
		t->key[k] = strdup(key[k]);
	writer_config_t cfg = {.source = "src", .tables = t, .n_tables = 1,
	                       .commit_rows = 1000000, .commit_ms = 600000,
	                       .keyed_chunk_rows = fx->keyed_chunk_rows};
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &fx->w), 0);
	assert_int_equal(take_all_jobs(fx, ids, 8), jobs);
	return t; /* freed by the test with table_specs_free once the writer has stopped */
}

/* Rows are inserted in key order across the jobs of a transaction, so rowids
 * (given at a key's first insert) follow the key; the same key in two jobs
 * ends as in arrival order: the later row wins an upsert. */
static void test_upsert_in_key_order_later_job_wins(void **state)
{
	fixture_t *fx = *state;
	static const char *const key[] = {"a", "b"};
	table_spec_t *t = start_keyed(fx, 3, NULL, TABLE_UPSERT, 2, key);
	push(fx, done_batch(1, "[{\"a\":2,\"b\":\"x\",\"v\":\"j1 first\"},"
	                       "{\"a\":1,\"b\":\"y\",\"v\":\"j1\"},"
	                       "{\"a\":2,\"b\":\"x\",\"v\":\"j1 second\"},"
	                       "{\"a\":1,\"b\":\"x\",\"v\":\"j1\"}]", "$[*]"));
	push(fx, done_batch(2, "[{\"a\":3,\"b\":\"a\",\"v\":\"j2\"},"
	                       "{\"a\":2,\"b\":\"x\",\"v\":\"j2 wins\"}]", "$[*]"));
	push(fx, done_batch(3, "[{\"a\":0,\"b\":\"z\",\"v\":\"j3\"}]", "$[*]"));
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(a||b||':'||v||':'||_job, ' ') FROM"
	                     " (SELECT * FROM kv ORDER BY rowid)",
	             "0z:j3:3 1x:j1:1 1y:j1:1 2x:j2 wins:2 3a:j2:2");
	expect_query(fx->db, "SELECT group_concat(state, ',') FROM"
	                     " (SELECT state FROM _ringfill_jobs ORDER BY id)", "done,done,done");
	assert_int_equal(atomic_load(&fx->pipe.rows_committed), 7);
	table_specs_free(t, 1);
}

/* ignore keeps the first row of a key, whichever job and position it came in. */
static void test_ignore_in_key_order_first_row_wins(void **state)
{
	fixture_t *fx = *state;
	static const char *const key[] = {"k"};
	table_spec_t *t = start_keyed(fx, 2, NULL, TABLE_IGNORE, 1, key);
	push(fx, done_batch(1, "[{\"k\":\"m\",\"v\":1},{\"k\":\"c\",\"v\":2},{\"k\":\"m\",\"v\":3}]",
	                    "$[*]"));
	push(fx, done_batch(2, "[{\"k\":\"c\",\"v\":4},{\"k\":\"a\",\"v\":5},{\"k\":\"m\",\"v\":6}]",
	                    "$[*]"));
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(k||v||':'||_job, ' ') FROM"
	                     " (SELECT * FROM kv ORDER BY rowid)", "a5:2 c2:1 m1:1");
	table_specs_free(t, 1);
}

/* Keys of mixed types sort as SQLite orders them in the key's index: NULL,
 * then numbers by value (integers against reals exactly: the real 2^53
 * before the integer 2^53 + 1), then text byte by byte. The column has no
 * type, so SQLite keeps every value as it came. */
static void test_mixed_type_keys_sort_as_sqlite_orders_them(void **state)
{
	fixture_t *fx = *state;
	static const char *const key[] = {"k"};
	table_spec_t *t = start_keyed(fx, 2, "CREATE TABLE kv (_job INTEGER, k, v INTEGER)",
	                              TABLE_UPSERT, 1, key);
	push(fx, done_batch(1, "[{\"k\":\"b\",\"v\":1},{\"k\":3,\"v\":2},"
	                       "{\"k\":9007199254740993,\"v\":3},{\"k\":1.5,\"v\":4},"
	                       "{\"k\":null,\"v\":5},{\"k\":\"ab\",\"v\":6}]", "$[*]"));
	push(fx, done_batch(2, "[{\"k\":\"a\",\"v\":7},{\"k\":-7,\"v\":8},{\"k\":true,\"v\":9},"
	                       "{\"k\":9007199254740992.0,\"v\":10},{\"k\":\"\",\"v\":11},"
	                       "{\"k\":2,\"v\":12},{\"k\":\"caf\\u00e9\",\"v\":13},"
	                       "{\"k\":\"cafe\",\"v\":14}]", "$[*]"));
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(v, ',') FROM (SELECT v FROM kv ORDER BY rowid)",
	             "5,8,9,4,12,2,10,3,11,7,6,1,14,13");
	/* The same as SQLite's own order of the key. */
	expect_query(fx->db, "SELECT group_concat(v, ',') FROM (SELECT v FROM kv ORDER BY k)",
	             "5,8,9,4,12,2,10,3,11,7,6,1,14,13");
	table_specs_free(t, 1);
}

/* A job whose rows the database refuses, in a transaction with other jobs
 * whose rows go in key order: it fails alone, with its reason; the others'
 * rows and states are committed, and nothing of the failed job remains. */
static void test_refused_job_in_sorted_transaction_fails_alone(void **state)
{
	fixture_t *fx = *state;
	static const char *const key[] = {"k"};
	table_spec_t *t = start_keyed(fx, 3, "CREATE TABLE kv (_job INTEGER, k INTEGER,"
	                                     " v INTEGER CHECK (v <> 77))", TABLE_UPSERT, 1, key);
	push(fx, done_batch(1, "[{\"k\":5,\"v\":1},{\"k\":2,\"v\":2}]", "$[*]"));
	push(fx, done_batch(2, "[{\"k\":4,\"v\":3},{\"k\":2,\"v\":77,\"new\":1}]", "$[*]"));
	push(fx, done_batch(3, "[{\"k\":2,\"v\":4},{\"k\":1,\"v\":5}]", "$[*]"));
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(id||':'||state||':'||coalesce(error,'-'), ' ') FROM"
	                     " (SELECT * FROM _ringfill_jobs ORDER BY id)",
	             "1:done:- 2:failed:database refused the rows: CHECK constraint failed: v <> 77 "
	             "3:done:-");
	expect_query(fx->db, "SELECT group_concat(k||'='||v||'/'||_job, ' ') FROM"
	                     " (SELECT * FROM kv ORDER BY k)", "1=5/3 2=4/3 5=1/1");
	/* The column the failed job brought was rolled back with it. */
	expect_query(fx->db, "SELECT group_concat(name, ',') FROM pragma_table_info('kv')",
	             "_job,k,v");
	assert_int_equal(atomic_load(&fx->pipe.rows_committed), 4);
	assert_int_equal(atomic_load(&fx->pipe.jobs_done_committed), 2);
	assert_int_equal(atomic_load(&fx->pipe.jobs_failed_committed), 1);
	table_specs_free(t, 1);
}

/* A rowid table receives a transaction's rows while later batches are still
 * arriving (a few thousand at a time); a job refused after some of them went
 * in still fails alone, and the others' rows keep arrival order. */
#define STAGED_JOBS 30
#define STAGED_ROWS 100 /* per job: 3000 rows, more than are staged at a time */
#define STAGED_BAD_JOB 27

static void test_refused_job_after_rows_went_in_fails_alone(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", STAGED_JOBS);
	sqlite3 *c;
	assert_int_equal(sqlite3_open(fx->db, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c, "CREATE TABLE records (_job INTEGER,"
	                                 " v INTEGER CHECK (v <> -1))", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(c);
	static int64_t ids[STAGED_JOBS];
	writer_config_t cfg = {.table = "records", .source = "src", .commit_rows = 1000000,
	                       .commit_ms = 600000};
	assert_int_equal(writer_start(fx->st, &cfg, &fx->pipe, &fx->w), 0);
	assert_int_equal(take_all_jobs(fx, ids, STAGED_JOBS), STAGED_JOBS);
	char json[STAGED_ROWS * 16];
	for (int job = 1; job <= STAGED_JOBS; job++) {
		size_t n = (size_t)snprintf(json, sizeof(json), "[");
		for (int i = 0; i < STAGED_ROWS; i++)
			n += (size_t)snprintf(json + n, sizeof(json) - n, "%s{\"v\":%d}", i ? "," : "",
			                      job == STAGED_BAD_JOB && i == 50 ? -1 : job * 1000 + i);
		snprintf(json + n, sizeof(json) - n, "]");
		push(fx, done_batch(job, json, "$[*]"));
	}
	finish(fx, 0);
	char want[64];
	snprintf(want, sizeof(want), "%d:%d", (STAGED_JOBS - 1) * STAGED_ROWS, STAGED_JOBS - 1);
	expect_query(fx->db, "SELECT count(*) || ':' || count(DISTINCT _job) FROM records", want);
	/* Arrival order: v grows with the rowid. */
	expect_query(fx->db, "SELECT count(*) FROM records a JOIN records b ON b.rowid = a.rowid + 1"
	                     " WHERE b.v < a.v", "0");
	snprintf(want, sizeof(want), "%d:failed", STAGED_BAD_JOB);
	expect_query(fx->db, "SELECT group_concat(id || ':' || state) FROM _ringfill_jobs"
	                     " WHERE state <> 'done'", want);
}

/* ---- keyed tables: rows that a later row of the transaction replaces ------ */


/* The value of each column of every row as SQLite's quote() writes it (so
 * the integer 1 and the real 1.0 differ), rows sorted: the table's content
 * whatever order the rows went in. */
static char *table_content(const char *db)
{
	sqlite3 *c;
	sqlite3_stmt *s;
	char sql[1024] = "SELECT group_concat(e, ' | ') FROM (SELECT quote(\"_job\")";
	assert_int_equal(sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(c, "SELECT name FROM pragma_table_info('kv')"
	                                       " WHERE name <> '_job' ORDER BY name", -1, &s, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		size_t n = strlen(sql);
		snprintf(sql + n, sizeof(sql) - n, " || ',' || quote(\"%s\")", sqlite3_column_text(s, 0));
	}
	sqlite3_finalize(s);
	sqlite3_close(c);
	size_t n = strlen(sql);
	snprintf(sql + n, sizeof(sql) - n, " AS e FROM kv ORDER BY e)");
	return query1(db, sql);
}

/* Applies the jobs' rows (JSON arrays of flat objects) to a copy of the
 * schema of kv in `db` made in `ref`, one INSERT per row in arrival order,
 * with the conflict clause of `mode` naming the row's own columns: what the
 * writer must leave, written without it. */
static void apply_in_order(const char *db, const char *ref, const char *const *jobs, int n_jobs,
                           table_mode_t mode, uint32_t n_key, const char *const *key)
{
	sqlite3 *c, *src;
	sqlite3_stmt *s, *cols;
	assert_int_equal(sqlite3_open_v2(db, &src, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_open(ref, &c), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(src, "SELECT sql FROM sqlite_master WHERE tbl_name = 'kv'"
	                                         " AND sql NOT NULL ORDER BY type DESC", -1, &s, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) /* the table, then its key's index */
		assert_int_equal(sqlite3_exec(c, (const char *)sqlite3_column_text(s, 0), NULL, NULL,
		                              NULL), SQLITE_OK);
	sqlite3_finalize(s);
	sqlite3_close(src);
	/* One transaction: not a sync per row (some tests have thousands). */
	assert_int_equal(sqlite3_exec(c, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(c, "SELECT r.value, f.key, f.value FROM json_each(?1) r,"
	                                       " json_each(r.value) f ORDER BY r.key, f.id", -1, &cols,
	                                    NULL), SQLITE_OK);
	for (int j = 0; j < n_jobs; j++) {
		sqlite3_bind_text(cols, 1, jobs[j], -1, SQLITE_STATIC);
		int rc = sqlite3_step(cols);
		while (rc == SQLITE_ROW) {
			char row[512], names[512] = "\"_job\"", params[512] = "?", set[512] = "";
			snprintf(row, sizeof(row), "%s", sqlite3_column_text(cols, 0));
			sqlite3_value *vals[16];
			int nv = 0;
			for (; rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(cols, 0), row) == 0;
			     rc = sqlite3_step(cols)) {
				const char *name = (const char *)sqlite3_column_text(cols, 1);
				bool is_key = false;
				for (uint32_t k = 0; k < n_key; k++)
					is_key |= strcmp(name, key[k]) == 0;
				size_t n = strlen(names);
				snprintf(names + n, sizeof(names) - n, ", \"%s\"", name);
				n = strlen(params);
				snprintf(params + n, sizeof(params) - n, ", ?");
				n = strlen(set);
				if (!is_key)
					snprintf(set + n, sizeof(set) - n, ", \"%s\" = excluded.\"%s\"", name, name);
				assert_true(nv < 16);
				vals[nv++] = sqlite3_value_dup(sqlite3_column_value(cols, 2));
			}
			char sql[2048], target[128] = "";
			for (uint32_t k = 0; k < n_key; k++) {
				size_t n = strlen(target);
				snprintf(target + n, sizeof(target) - n, "%s\"%s\"", k ? ", " : "", key[k]);
			}
			snprintf(sql, sizeof(sql), "INSERT INTO kv (%s) VALUES (%s) ON CONFLICT (%s) %s%s",
			         names, params, target,
			         mode == TABLE_IGNORE ? "DO NOTHING" : "DO UPDATE SET \"_job\" = excluded._job",
			         mode == TABLE_IGNORE ? "" : set);
			assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &s, NULL), SQLITE_OK);
			sqlite3_bind_int64(s, 1, j + 1);
			for (int i = 0; i < nv; i++) {
				sqlite3_bind_value(s, i + 2, vals[i]);
				sqlite3_value_free(vals[i]);
			}
			assert_int_equal(sqlite3_step(s), SQLITE_DONE);
			sqlite3_finalize(s);
		}
		assert_int_equal(rc, SQLITE_DONE);
		sqlite3_reset(cols);
	}
	sqlite3_finalize(cols);
	assert_int_equal(sqlite3_exec(c, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(c);
}

/* The jobs' rows through the writer, all in one transaction (job i has id
 * i + 1), and then in arrival order one row at a time: the same content.
 * create_sql (unless NULL) makes the table by hand first. */
static void expect_as_in_order(void **state, const char *create_sql, table_mode_t mode,
                               uint32_t n_key, const char *const *key, const char *const *jobs,
                               int n_jobs, uint64_t rows)
{
	fixture_t *fx = *state;
	table_spec_t *t = start_keyed(fx, n_jobs, create_sql, mode, n_key, key);
	for (int j = 0; j < n_jobs; j++)
		push(fx, done_batch(j + 1, jobs[j], "$[*]"));
	finish(fx, 0);
	/* Statistics count the rows received, skipped ones included. */
	assert_int_equal(atomic_load(&fx->pipe.rows_committed), rows);
	char ref[160];
	snprintf(ref, sizeof(ref), "%s/ref.db", fx->dir);
	apply_in_order(fx->db, ref, jobs, n_jobs, mode, n_key, key);
	char *got = table_content(fx->db), *want = table_content(ref);
	assert_string_equal(got, want);
	free(got);
	free(want);
	table_specs_free(t, 1);
}

/* A transaction with more keyed rows than a chunk (keyed_chunk_rows, here
 * 4): rows are sorted and inserted a chunk at a time as batches arrive (a
 * chunk closes after the batch that fills it), the rest at the commit. Keys
 * repeat across chunks, with the same columns and with fewer ("w" stays),
 * and later chunks bring keys below all earlier ones: the table ends as
 * applying every row in arrival order leaves it, and each chunk's rows come
 * after the earlier chunks' (rowids follow the chunks). Without chunks the
 * keys 1..3 of the last jobs would get the first rowids. */
static const char *const chunk_jobs[] = {
	"[{\"k\":40,\"v\":1,\"w\":\"a\"},{\"k\":30,\"v\":2,\"w\":\"b\"},{\"k\":20,\"v\":3}]",
	"[{\"k\":10,\"v\":4,\"w\":\"c\"},{\"k\":40,\"v\":5,\"w\":\"d\"}]", /* chunk 1 ends */
	"[{\"k\":30,\"v\":6},{\"k\":9,\"v\":7},{\"k\":40,\"v\":8,\"w\":\"e\"},"
	"{\"k\":8,\"v\":9}]", /* chunk 2 */
	"[{\"k\":3,\"v\":10},{\"k\":40,\"v\":11,\"w\":\"f\"},{\"k\":2,\"v\":12},"
	"{\"k\":3,\"v\":13}]", /* chunk 3 */
	"[{\"k\":1,\"v\":14},{\"k\":10,\"v\":15}]", /* at the commit */
};

static void keyed_chunks_as_in_order(void **state, table_mode_t mode, const char *want)
{
	fixture_t *fx = *state;
	static const char *const key[] = {"k"};
	fx->keyed_chunk_rows = 4;
	expect_as_in_order(state, NULL, mode, 1, key, chunk_jobs, 5, 15);
	/* Each chunk's new keys, in key order, after the earlier chunks'. */
	expect_query(fx->db, "SELECT group_concat(k, ',') FROM (SELECT k FROM kv ORDER BY rowid)",
	             "10,20,30,40,8,9,2,3,1");
	expect_query(fx->db, "SELECT group_concat(k||':'||v||':'||coalesce(w,'-')||':'||_job, ' ')"
	                     " FROM (SELECT * FROM kv WHERE k IN (3, 10, 30, 40) ORDER BY k)", want);
}

static void test_upsert_keyed_rows_go_in_chunks_as_in_order(void **state)
{
	keyed_chunks_as_in_order(state, TABLE_UPSERT, "3:13:-:4 10:15:c:5 30:6:b:3 40:11:f:4");
}

static void test_ignore_keyed_rows_go_in_chunks_as_in_order(void **state)
{
	keyed_chunks_as_in_order(state, TABLE_IGNORE, "3:10:-:4 10:4:c:2 30:2:b:1 40:1:a:1");
}

/* A job refused after chunks of keyed rows went in: the transaction is
 * applied again one job at a time, the job fails alone, and the others'
 * rows are all there (the chunks' included). */
static void test_refused_job_after_keyed_chunk_fails_alone(void **state)
{
	fixture_t *fx = *state;
	static const char *const key[] = {"k"};
	fx->keyed_chunk_rows = 4;
	table_spec_t *t = start_keyed(fx, 5, "CREATE TABLE kv (_job INTEGER, k INTEGER, v INTEGER"
	                                     " CHECK (v <> 12), w TEXT)", TABLE_UPSERT, 1, key);
	for (int j = 0; j < 5; j++)
		push(fx, done_batch(j + 1, chunk_jobs[j], "$[*]"));
	finish(fx, 0);
	expect_query(fx->db, "SELECT group_concat(id||':'||state, ' ') FROM"
	                     " (SELECT * FROM _ringfill_jobs ORDER BY id)",
	             "1:done 2:done 3:done 4:failed 5:done");
	expect_query(fx->db, "SELECT group_concat(k||':'||v||':'||coalesce(w,'-')||':'||_job, ' ')"
	                     " FROM (SELECT * FROM kv ORDER BY k)",
	             "1:14:-:5 8:9:-:3 9:7:-:3 10:15:c:5 20:3:-:1 30:6:b:3 40:8:e:3");
	table_specs_free(t, 1);
}

/* Repeated keys within and across jobs: rows with the same columns (the
 * earlier ones are skipped), rows of the same key with fewer or other
 * columns than the next (they must all go in: the earlier row's "w" or "x"
 * survives the later row's DO UPDATE), keys equal under the sort but stored
 * differently (1 and 1.0, 0.0 and -0.0: the first stored wins), the same
 * value as another type (1, "1", true), NULL keys (never a conflict). The
 * first row's NULL gives "k" no type: SQLite keeps 1 and "1" apart. */
static const char *const dedup_jobs[] = {
	"[{\"k\":null,\"k2\":\"n\",\"v\":0},"
	"{\"k\":1,\"k2\":\"a\",\"v\":1},{\"k\":1,\"k2\":\"a\",\"v\":2},"
	"{\"k\":2,\"k2\":\"a\",\"v\":3,\"w\":\"w3\"},{\"k\":1,\"k2\":\"a\",\"v\":4},"
	"{\"k\":1.0,\"k2\":\"a\",\"v\":5},{\"k\":0.0,\"k2\":\"z\",\"v\":6},"
	"{\"k\":-0.0,\"k2\":\"z\",\"v\":7},{\"k\":null,\"k2\":\"n\",\"v\":8}]",
	"[{\"k\":2,\"k2\":\"a\",\"v\":9},{\"k\":\"1\",\"k2\":\"a\",\"v\":10},"
	"{\"k\":true,\"k2\":\"a\",\"v\":11},{\"k\":null,\"k2\":\"n\",\"v\":12},"
	"{\"k\":3,\"k2\":\"b\",\"x\":\"x13\",\"v\":14},{\"k\":3,\"k2\":\"b\",\"v\":15}]",
	"[{\"k\":3,\"k2\":\"b\",\"v\":16},{\"k\":2,\"k2\":\"a\",\"v\":17,\"w\":\"w17\"},"
	"{\"k\":\"1\",\"k2\":\"a\",\"v\":18},{\"k\":1,\"k2\":\"a\",\"v\":19},"
	"{\"k2\":\"n\",\"v\":20},{\"k\":4,\"k2\":\"c\",\"v\":21},{\"k\":4,\"k2\":\"c\",\"v\":22}]",
};

static void test_upsert_skips_replaced_rows_as_in_order(void **state)
{
	static const char *const key[] = {"k", "k2"};
	expect_as_in_order(state, NULL, TABLE_UPSERT, 2, key, dedup_jobs, 3, 22);
}

static void test_ignore_skips_later_rows_as_in_order(void **state)
{
	static const char *const key[] = {"k", "k2"};
	expect_as_in_order(state, NULL, TABLE_IGNORE, 2, key, dedup_jobs, 3, 22);
}

/* Keys that SQLite's conversions make equal although they sort apart as
 * they arrive: "1" after 1 (text after numbers) in a column of INTEGER
 * affinity, 1 before "1" in a TEXT column, "a" after "B" but equal to "A"
 * under NOCASE. Sorted, the wrong row of each key would win; such a
 * transaction keeps arrival order. */
static const char *const affinity_jobs[] = {
	"[{\"k\":\"1\",\"v\":1},{\"k\":2,\"v\":2},{\"k\":\"a\",\"v\":3}]",
	"[{\"k\":1,\"v\":4},{\"k\":\"2\",\"v\":5},{\"k\":\"B\",\"v\":6},{\"k\":\"A\",\"v\":7}]",
};

static void test_integer_key_column_gets_text_keys_in_order(void **state)
{
	static const char *const key[] = {"k"};
	static const char *const jobs[] = {
		"[{\"k\":3,\"v\":1},{\"k\":\"1\",\"v\":2},{\"k\":1,\"v\":3}]"};
	expect_as_in_order(state, NULL, TABLE_UPSERT, 1, key, jobs, 1, 3);
	fixture_t *fx = *state;
	/* The writer made "k" INTEGER from the first row's 3. */
	expect_query(fx->db, "SELECT type FROM pragma_table_info('kv') WHERE name = 'k'", "INTEGER");
}

static void test_key_conversions_keep_arrival_order_upsert(void **state)
{
	static const char *const key[] = {"k"};
	expect_as_in_order(state, "CREATE TABLE kv (_job INTEGER, k INTEGER, v)", TABLE_UPSERT, 1,
	                   key, affinity_jobs, 2, 7);
}

static void test_key_conversions_keep_arrival_order_text(void **state)
{
	static const char *const key[] = {"k"};
	expect_as_in_order(state, "CREATE TABLE kv (_job INTEGER, k TEXT, v)", TABLE_IGNORE, 1,
	                   key, affinity_jobs, 2, 7);
}

static void test_key_conversions_keep_arrival_order_nocase(void **state)
{
	static const char *const key[] = {"k"};
	expect_as_in_order(state, "CREATE TABLE kv (_job INTEGER, k COLLATE NOCASE, v)",
	                   TABLE_UPSERT, 1, key, affinity_jobs, 2, 7);
}

/* A REAL column stores integers as doubles: 2^53 + 1 arrives first and
 * becomes 2^53, which the later integer 2^53 then replaces; sorted, the
 * later row would go in first and lose. */
static void test_key_conversions_keep_arrival_order_real(void **state)
{
	static const char *const key[] = {"k"};
	static const char *const jobs[] = {
		"[{\"k\":9007199254740993,\"v\":1},{\"k\":9007199254740992,\"v\":2}]"};
	expect_as_in_order(state, "CREATE TABLE kv (_job INTEGER, k REAL, v)", TABLE_UPSERT, 1,
	                   key, jobs, 1, 2);
}

/* Transactions of more keyed rows than WRITER_RADIX_ROWS_MIN (256), sorted
 * by the radix sort on key prefixes (store/writer.c, radix_run): integer
 * keys repeated, negative, and differing only in the two low bits the
 * prefix drops; text keys whose first 8 bytes agree (a group of equal
 * prefixes longer than the insertion sort takes) or not. The table ends as
 * in arrival order, and in one chunk the rowids follow the key order. */
static void radix_sorted_as_in_order(void **state, bool text)
{
	fixture_t *fx = *state;
	enum { JOBS = 8, ROWS = 60 }; /* start_keyed takes up to 8 jobs */
	static const char *const key[] = {"k"};
	char *jobs[JOBS];
	uint64_t seed = 12345;
	for (int j = 0; j < JOBS; j++) {
		char buf[ROWS * 64] = "[", *at = buf + 1;
		for (int r = 0; r < ROWS; r++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t x = (uint32_t)(seed >> 33);
			if (text)
				at += sprintf(at, "%s{\"k\":\"%s%u\",\"v\":%d}", r ? "," : "",
				              x % 3 ? "shared_prefix_" : "", x % 400, j * ROWS + r);
			else
				at += sprintf(at, "%s{\"k\":%lld,\"v\":%d}", r ? "," : "",
				              x % 2 ? (long long)(x % 500) - 250 : (1ll << 40) + x % 16,
				              j * ROWS + r);
		}
		strcpy(at, "]");
		jobs[j] = strdup(buf);
	}
	expect_as_in_order(state, text ? "CREATE TABLE kv (_job INTEGER, k TEXT, v)" : NULL,
	                   TABLE_UPSERT, 1, key, (const char *const *)jobs, JOBS,
	                   (uint64_t)JOBS * ROWS);
	char *by_rowid = query1(fx->db, "SELECT group_concat(k, ',') FROM"
	                                " (SELECT k FROM kv ORDER BY rowid)");
	char *by_key = query1(fx->db, "SELECT group_concat(k, ',') FROM (SELECT k FROM kv ORDER BY k)");
	assert_string_equal(by_rowid, by_key);
	free(by_rowid);
	free(by_key);
	for (int j = 0; j < JOBS; j++)
		free(jobs[j]);
}

static void test_radix_sorted_integer_keys_as_in_order(void **state)
{
	radix_sorted_as_in_order(state, false);
}

static void test_radix_sorted_text_keys_as_in_order(void **state)
{
	radix_sorted_as_in_order(state, true);
}

/* A key of several columns sorted the way the graph's edges come (an
 * account, then each account it follows): the radix sort's groups of one
 * first-key prefix are sorted on by the next column when the whole group
 * holds one value of the column before, by a radix sort of the next
 * column's prefixes (256 rows or more: "zeta_account"; with three columns
 * also "zeta_account" / "hub") or qsort_r (the integer 7), and by the whole
 * key when it does not ("same_prefix_A" and "same_prefix_B" agree in their
 * first 8 bytes, in a group of 256 rows or more). Later columns repeat
 * (upserts), mix integers and text, and differ only in the two low bits the
 * prefix drops. The table ends as in arrival order, and the rowids follow
 * the key order. Two jobs of 450 rows: the writer inserts held keyed rows
 * early only from 500 (WRITER_IDLE_INSERT_ROWS_MIN), so all 900 are sorted
 * together, in one chunk. */
static void multi_column_keys_sorted_as_in_order(void **state, uint32_t n_key)
{
	fixture_t *fx = *state;
	enum { JOBS = 2, ROWS = 450 };
	static const char *const key[] = {"a", "b", "c"};
	static const char *const first[] = {"\"zeta_account\"",  "\"zeta_account\"",
	                                    "\"zeta_account\"",  "\"zeta_account\"",
	                                    "\"same_prefix_A\"", "\"same_prefix_A\"",
	                                    "\"same_prefix_A\"", "\"same_prefix_B\"",
	                                    "7",                  "-3"};
	char *jobs[JOBS];
	uint64_t seed = 777;
	int zeta = 0, zeta_hub = 0, same_prefix = 0, seven = 0;
	for (int j = 0; j < JOBS; j++) {
		char buf[ROWS * 96] = "[", *at = buf + 1;
		for (int r = 0; r < ROWS; r++) {
			char later[2][32];
			for (int c = 0; c < 2; c++) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				uint32_t y = (uint32_t)(seed >> 33);
				if (y >> 8 & 1)
					snprintf(later[c], sizeof(later[c]), "\"t%u\"", y >> 12 & 63);
				else
					snprintf(later[c], sizeof(later[c]), "%lld",
					         y >> 9 & 1 ? (long long)(y >> 12 & 255) - 128
					                    : (1ll << 40) + (y >> 12 & 7));
			}
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t x = (uint32_t)(seed >> 33);
			bool hub = n_key == 3 && x >> 20 & 3; /* b: one value, 3 rows in 4 */
			at += sprintf(at, "%s{\"a\":%s,\"b\":%s,\"c\":%s,\"v\":%d}", r ? "," : "",
			              first[x % 10], hub ? "\"hub\"" : later[0], later[1], j * ROWS + r);
			zeta += x % 10 < 4;
			zeta_hub += x % 10 < 4 && hub;
			same_prefix += x % 10 >= 4 && x % 10 < 8;
			seven += x % 10 == 8;
		}
		strcpy(at, "]");
		jobs[j] = strdup(buf);
	}
	/* The groups the comment names are there. */
	assert_true(zeta >= 256 && same_prefix >= 256 && seven > 16 && seven < 256);
	assert_true(n_key == 2 || zeta_hub >= 256);
	/* Columns without a type: nothing converts a key (which would keep the
	 * rows in arrival order). */
	expect_as_in_order(state, "CREATE TABLE kv (_job INTEGER, a, b, c, v)", TABLE_UPSERT, n_key,
	                   key, (const char *const *)jobs, JOBS, (uint64_t)JOBS * ROWS);
	const char *order = n_key == 2 ? "a, b" : "a, b, c";
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT group_concat(%s, ',') FROM (SELECT * FROM kv ORDER BY rowid)",
	         n_key == 2 ? "a || '/' || b" : "a || '/' || b || '/' || c");
	char *by_rowid = query1(fx->db, sql);
	snprintf(sql, sizeof(sql), "SELECT group_concat(%s, ',') FROM (SELECT * FROM kv ORDER BY %s)",
	         n_key == 2 ? "a || '/' || b" : "a || '/' || b || '/' || c", order);
	char *by_key = query1(fx->db, sql);
	assert_string_equal(by_rowid, by_key);
	expect_query(fx->db, "SELECT count(DISTINCT a) FROM kv WHERE a LIKE 'same_prefix_%'", "2");
	free(by_rowid);
	free(by_key);
	for (int j = 0; j < JOBS; j++)
		free(jobs[j]);
}

static void test_radix_sorted_two_column_keys_as_in_order(void **state)
{
	multi_column_keys_sorted_as_in_order(state, 2);
}

static void test_radix_sorted_three_column_keys_as_in_order(void **state)
{
	multi_column_keys_sorted_as_in_order(state, 3);
}

static void expect_cache_kib(fixture_t *fx, int want)
{
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(store_db(fx->st), "PRAGMA cache_size", -1, &s, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), want);
	sqlite3_finalize(s);
}

/* The writer's page cache (its connection is the store's) is sized for a
 * transaction whatever the tables: 512 bytes per commit_rows row, within
 * 16..256 MiB. */
static void test_cache_sized_for_a_transaction(void **state)
{
	fixture_t *fx = *state;
	import_n(fx, "src", 3);
	int64_t ids[4];
	start(fx, 100000); /* 100000 rows x 512 bytes: 50000 KiB */
	assert_int_equal(take_all_jobs(fx, ids, 4), 3);
	push(fx, done_batch(1, "{\"a\":1}", "$"));
	finish(fx, 0);
	expect_cache_kib(fx, -50000);

	/* A small commit_rows: the floor. */
	start(fx, 1000);
	assert_int_equal(take_all_jobs(fx, ids, 4), 2);
	push(fx, done_batch(2, "{\"a\":2}", "$"));
	finish(fx, 0);
	expect_cache_kib(fx, -16384);

	/* A rowid table with an index made by hand. */
	assert_int_equal(sqlite3_exec(store_db(fx->st), "CREATE INDEX records_a ON records(a)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	start(fx, 200000);
	assert_int_equal(take_all_jobs(fx, ids, 4), 1);
	push(fx, done_batch(3, "{\"a\":3}", "$"));
	finish(fx, 0);
	expect_cache_kib(fx, -100000);
	expect_query(fx->db, "SELECT group_concat(a, ',') FROM records", "1,2,3");
}

/* The loop's push (pipe_push_batch) holds a batch back once the batches in
 * the ring would pass WRITER_BATCH_BYTES_MAX, long before the ring's 256
 * slots run out. The writer, once it has taken them, wakes the loop through
 * its eventfd (nothing else wakes it here: every job was taken, and the ring
 * never gets half full of batches), and every batch's row arrives. Another
 * connection holds the write lock, so that the writer stops at its first
 * batch and the others stay in the ring. */
static void test_batch_ring_bounded_in_bytes(void **state)
{
	fixture_t *fx = *state;
	enum { BIG = 3 << 20, JOBS_MAX = 64 };
	int jobs = (int)(WRITER_BATCH_BYTES_MAX / BIG) + 4;
	assert_true(jobs < JOBS_MAX);
	import_n(fx, "src", jobs);
	int64_t ids[JOBS_MAX];
	batch_t *b[JOBS_MAX];
	start(fx, 0);
	assert_int_equal(take_all_jobs(fx, ids, JOBS_MAX), jobs);
	sqlite3 *lock;
	assert_int_equal(sqlite3_open(fx->db, &lock), SQLITE_OK);
	assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	uint64_t v;
	(void)!read(fx->pipe.loop_eventfd, &v, sizeof(v)); /* the feed's wake-ups, taken */
	int pushed = 0;
	for (; pushed < jobs; pushed++) {
		char json[32];
		snprintf(json, sizeof(json), "{\"j\":%d}", pushed + 1);
		b[pushed] = done_batch(ids[pushed], json, "$");
		assert_int_equal(batch_rows_reserve(b[pushed], BIG), 0);
		if (!pipe_push_batch(&fx->pipe, b[pushed]))
			break;
		doorbell_ring(&fx->pipe.writer_bell);
	}
	uint64_t queued = atomic_load(&fx->pipe.to_writer_bytes);
	assert_true(pushed > 0 && pushed < jobs);
	assert_true(ring_count(&fx->pipe.to_writer) < 32); /* held back for bytes, not slots */
	assert_true(queued > 0 && queued <= WRITER_BATCH_BYTES_MAX);
	assert_true(queued + batch_mem_bytes(b[pushed]) > WRITER_BATCH_BYTES_MAX);
	assert_int_equal(b[pushed]->ring_bytes, 0);

	assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(lock);
	struct pollfd pfd = {.fd = fx->pipe.loop_eventfd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, GUARD_MS), 1); /* the writer made room and said so */
	for (uint64_t deadline = now_ms() + GUARD_MS; pushed < jobs;) {
		if (!pipe_push_batch(&fx->pipe, b[pushed])) {
			assert_true(now_ms() < deadline);
			wait_loop_eventfd(fx, 100);
			continue;
		}
		doorbell_ring(&fx->pipe.writer_bell);
		if (++pushed == jobs)
			break;
		char json[32];
		snprintf(json, sizeof(json), "{\"j\":%d}", pushed + 1);
		b[pushed] = done_batch(ids[pushed], json, "$");
		assert_int_equal(batch_rows_reserve(b[pushed], BIG), 0);
	}
	finish(fx, 0);
	assert_int_equal(atomic_load(&fx->pipe.to_writer_bytes), 0);
	char want[64];
	snprintf(want, sizeof(want), "%d/%d/%d", jobs, jobs * (jobs + 1) / 2, jobs);
	expect_query(fx->db,
	             "SELECT count(*) || '/' || sum(j) || '/' ||"
	             " (SELECT count(*) FROM _ringfill_jobs WHERE state = 'done') FROM records",
	             want);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_jobs_fed_in_id_order_and_exhausted),
		T(test_rows_states_and_columns),
		T(test_rerun_reuses_columns_and_never_duplicates),
		T(test_rowid_rows_of_near_layouts),
		T(test_rows_carry_their_jobs),
		T(test_rows_carry_their_jobs_jobwise),
		T(test_commits_every_commit_rows),
		T(test_commits_every_commit_ms),
		T(test_no_trigger_no_commit_before_end),
		T(test_commits_at_held_bytes),
		T(test_second_writer_sees_a_table_made_meanwhile),
		T(test_doubles_in_a_text_column_keep_their_digits),
		T(test_checkpoints_run_during_the_run),
		T(test_rows_the_database_refuses_fail_only_their_job),
		T(test_refused_row_mid_statement_and_wide_rows),
		T(test_full_disk_is_fatal_and_keeps_jobs_pending),
		T(test_upsert_in_key_order_later_job_wins),
		T(test_ignore_in_key_order_first_row_wins),
		T(test_mixed_type_keys_sort_as_sqlite_orders_them),
		T(test_refused_job_in_sorted_transaction_fails_alone),
		T(test_refused_job_after_rows_went_in_fails_alone),
		T(test_upsert_skips_replaced_rows_as_in_order),
		T(test_ignore_skips_later_rows_as_in_order),
		T(test_upsert_keyed_rows_go_in_chunks_as_in_order),
		T(test_ignore_keyed_rows_go_in_chunks_as_in_order),
		T(test_refused_job_after_keyed_chunk_fails_alone),
		T(test_integer_key_column_gets_text_keys_in_order),
		T(test_key_conversions_keep_arrival_order_upsert),
		T(test_key_conversions_keep_arrival_order_text),
		T(test_key_conversions_keep_arrival_order_nocase),
		T(test_key_conversions_keep_arrival_order_real),
		T(test_radix_sorted_integer_keys_as_in_order),
		T(test_radix_sorted_text_keys_as_in_order),
		T(test_radix_sorted_two_column_keys_as_in_order),
		T(test_radix_sorted_three_column_keys_as_in_order),
		T(test_checkpoints_apply_once),
		T(test_old_database_gets_checkpoint_columns),
		T(test_refused_checkpoint_fails_the_stream),
		T(test_cache_sized_for_a_transaction),
		T(test_batch_ring_bounded_in_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
