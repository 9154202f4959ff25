/* store/status.c: `ringfill status [--json] DB`, a read-only report.
 *
 * Reads what the writer (store/writer.c) and the importer (store/store.c)
 * left in _ringfill_jobs and _ringfill_columns: jobs by state per source,
 * bytes downloaded, failures by class and reason, rows per data table. It
 * opens the database read-only, so it is safe next to a running backfill. */
#include "store/store.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#define STATUS_REASONS_MAX 20 /* failure reasons listed, most frequent first */

typedef struct {
	sqlite3 *db;
	const char *path;
	bool json;
	bool first; /* JSON: no comma before the first element of a list */
} status_t;

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\t')
			fputs("\\t", stdout);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void list_sep(status_t *s)
{
	if (!s->first)
		putchar(',');
	s->first = false;
}

static int db_fail(status_t *s)
{
	fprintf(stderr, "ringfill status: %s: %s\n", s->path, sqlite3_errmsg(s->db));
	return 3;
}

static void counts_print(status_t *s, const char *source, sqlite3_stmt *q)
{
	long long pending = sqlite3_column_int64(q, 1), done = sqlite3_column_int64(q, 2);
	long long failed = sqlite3_column_int64(q, 3), total = sqlite3_column_int64(q, 4);
	if (!s->json) {
		printf("  %-32s %10lld %10lld %10lld %10lld\n", source, pending, done, failed, total);
		return;
	}
	printf("{\"source\":");
	json_str(source);
	printf(",\"pending\":%lld,\"done\":%lld,\"failed\":%lld,\"total\":%lld}", pending, done,
	       failed, total);
}

/* Jobs by state for each source, then the totals and bytes downloaded. */
static int status_jobs(status_t *s)
{
	static const char sql[] =
		"SELECT source, sum(state='pending'), sum(state='done'), sum(state='failed'),"
		" count(*), sum(coalesce(bytes,0)) FROM _ringfill_jobs GROUP BY source"
		" UNION ALL SELECT NULL, sum(state='pending'), sum(state='done'),"
		" sum(state='failed'), count(*), sum(coalesce(bytes,0)) FROM _ringfill_jobs";
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		return db_fail(s);
	if (s->json)
		printf("\"sources\":[");
	else
		printf("jobs:\n  %-32s %10s %10s %10s %10s\n", "source", "pending", "done", "failed",
		       "total");
	s->first = true;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *source = (const char *)sqlite3_column_text(q, 0);
		if (source) {
			if (s->json)
				list_sep(s);
			counts_print(s, source, q);
			continue;
		}
		if (s->json)
			printf("],\"total\":");
		counts_print(s, "total", q);
		long long bytes = sqlite3_column_int64(q, 5);
		if (s->json)
			printf(",\"bytes\":%lld", bytes);
		else
			printf("bytes downloaded: %lld (%.1f MiB)\n", bytes, (double)bytes / 1048576.0);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_fail(s);
}

/* Done jobs whose body is stored as sent with a content coding (the raw file
 * and sha256 are of the coded bytes: `gzip -d` reads a "gzip" one back). A
 * database from before the column has none. */
static int status_codings(status_t *s)
{
	static const char sql[] =
		"SELECT content_encoding, count(*) FROM _ringfill_jobs WHERE state='done'"
		" AND content_encoding IS NOT NULL GROUP BY 1 ORDER BY 1";
	sqlite3_stmt *q = NULL;
	bool old = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK;
	printf(s->json ? ",\"content_encodings\":{" : "");
	s->first = true;
	int rc = SQLITE_DONE;
	while (!old && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *coding = (const char *)sqlite3_column_text(q, 0);
		long long n = sqlite3_column_int64(q, 1);
		if (s->json) {
			list_sep(s);
			json_str(coding);
			printf(":%lld", n);
		} else {
			printf("%s %s %lld", s->first ? "bodies stored with a content coding:" : ",",
			       coding, n);
			s->first = false;
		}
	}
	if (s->json)
		putchar('}');
	else if (!s->first)
		putchar('\n');
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_fail(s);
}

/* Jobs not done whose committed checkpoints already put rows in the tables
 * (a streamed NDJSON body or document stopped, or failed, part-way): a run
 * goes on after each one's last checkpoint. A database from before the
 * columns has none. */
static int status_checkpoints(status_t *s)
{
	static const char sql[] = "SELECT count(*), coalesce(sum(ckpt_records), 0)"
	                          " FROM _ringfill_jobs WHERE state<>'done' AND ckpt_records > 0";
	sqlite3_stmt *q = NULL;
	long long jobs = 0, records = 0;
	int rc = SQLITE_ROW;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) == SQLITE_OK &&
	    (rc = sqlite3_step(q)) == SQLITE_ROW) {
		jobs = sqlite3_column_int64(q, 0);
		records = sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW)
		return db_fail(s);
	if (s->json)
		printf(",\"checkpointed\":{\"jobs\":%lld,\"records\":%lld}", jobs, records);
	else if (jobs)
		printf("jobs not done with committed checkpoints: %lld (%lld records' rows stored; "
		       "a run goes on after each one's last, a failed one after ringfill retry)\n",
		       jobs, records);
	return 0;
}

/* Failures grouped by class and exact reason, with one URL to try by hand. */
static int status_failures(status_t *s)
{
	static const char sql[] =
		"SELECT coalesce(error_class,'unknown'), coalesce(error,''), count(*),"
		" min(coalesce(url,key)) FROM _ringfill_jobs WHERE state='failed'"
		" GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT ?1";
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		return db_fail(s);
	sqlite3_bind_int(q, 1, STATUS_REASONS_MAX);
	printf(s->json ? ",\"failures\":[" : "failures (top %d reasons):\n", STATUS_REASONS_MAX);
	s->first = true;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *cls = (const char *)sqlite3_column_text(q, 0);
		const char *why = (const char *)sqlite3_column_text(q, 1);
		long long n = sqlite3_column_int64(q, 2);
		const char *example = (const char *)sqlite3_column_text(q, 3);
		if (!s->json) {
			printf("  %-9s %8lld  %s\n  %18s e.g. %s\n", cls, n, why, "", example ? example : "");
			s->first = false;
			continue;
		}
		list_sep(s);
		printf("{\"class\":");
		json_str(cls);
		printf(",\"reason\":");
		json_str(why);
		printf(",\"count\":%lld,\"example\":", n);
		json_str(example);
		putchar('}');
	}
	if (s->json)
		putchar(']');
	else if (s->first)
		printf("  none\n");
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_fail(s);
}

static int table_rows(status_t *s, const char *tbl, long long *rows)
{
	char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", tbl); /* %w doubles quotes */
	sqlite3_stmt *q;
	if (!sql)
		return -1;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK)
		return -1; /* the table was dropped by hand: not reported */
	rc = sqlite3_step(q);
	*rows = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Rows in each data table the writer created or widened, once each under
 * the name the database spells it with: the column map may name one table
 * in several letter cases (job files that said "T" and "t"), which SQLite
 * takes as one table; a table dropped since is not listed. */
static int status_tables(status_t *s)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT name FROM sqlite_master AS m WHERE type='table' AND EXISTS"
	                       " (SELECT 1 FROM _ringfill_columns WHERE tbl=m.name COLLATE NOCASE)"
	                       " ORDER BY name", -1, &q, NULL) != SQLITE_OK)
		return db_fail(s);
	printf(s->json ? ",\"tables\":[" : "tables:\n");
	s->first = true;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *tbl = (const char *)sqlite3_column_text(q, 0);
		long long rows;
		if (table_rows(s, tbl, &rows) != 0)
			continue;
		if (!s->json) {
			printf("  %-32s %12lld rows\n", tbl, rows);
			s->first = false;
			continue;
		}
		list_sep(s);
		printf("{\"table\":");
		json_str(tbl);
		printf(",\"rows\":%lld}", rows);
	}
	if (s->first && !s->json)
		printf("  none\n");
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_fail(s);
}

static void rate_line(const char *what, long long n, double secs, const char *unit)
{
	if (secs > 0.0)
		printf("  %-12s %14lld  %12.1f %s/s\n", what, n, (double)n / secs, unit);
	else
		printf("  %-12s %14lld\n", what, n);
}

/* One run's row of runs_sql: when, how long, how it ended, and what it
 * committed per second. A run that has no end recorded is still running or
 * was killed; its figures are what it had committed by its last commit. */
static void run_print(status_t *s, sqlite3_stmt *q, const char *label)
{
	long long id = sqlite3_column_int64(q, 0);
	const char *source = (const char *)sqlite3_column_text(q, 1);
	double started = sqlite3_column_double(q, 2), secs = sqlite3_column_double(q, 3);
	bool open = sqlite3_column_int(q, 4) != 0;
	int code = sqlite3_column_int(q, 5);
	long long done = sqlite3_column_int64(q, 6), failed = sqlite3_column_int64(q, 7);
	long long rows = sqlite3_column_int64(q, 8), bytes = sqlite3_column_int64(q, 9);
	const char *when = (const char *)sqlite3_column_text(q, 10);
	if (s->json) {
		printf("{\"id\":%lld,\"source\":", id);
		json_str(source);
		printf(",\"started_at\":%.3f,\"seconds\":%.3f,\"finished\":%s,\"exit_code\":", started,
		       secs, open ? "false" : "true");
		if (open)
			printf("null");
		else
			printf("%d", code);
		printf(",\"jobs_done\":%lld,\"jobs_failed\":%lld,\"rows\":%lld,\"bytes\":%lld", done,
		       failed, rows, bytes);
		double d = secs > 0.0 ? secs : 0.0;
		printf(",\"jobs_per_s\":%.3f,\"rows_per_s\":%.3f,\"bytes_per_s\":%.3f}",
		       d > 0.0 ? (double)done / d : 0.0, d > 0.0 ? (double)rows / d : 0.0,
		       d > 0.0 ? (double)bytes / d : 0.0);
		return;
	}
	printf("%s: #%lld of %s, started %s UTC, %.1f s, ", label, id, source ? source : "?",
	       when ? when : "?", secs);
	if (open)
		printf("not finished (still running, or killed: its committed work counts)\n");
	else if (code == 0)
		printf("exit 0 (every job done)\n");
	else if (code == 1)
		printf("exit 1 (some jobs failed for good)\n");
	else if (code == 3)
		printf("exit 3 (stopped: database or disk)\n");
	else if (code > 128)
		printf("exit %d (interrupted by a signal; resumable)\n", code);
	else
		printf("exit %d\n", code);
	rate_line("jobs done", done, secs, "jobs");
	rate_line("jobs failed", failed, 0.0, "");
	rate_line("rows", rows, secs, "rows");
	if (secs > 0.0)
		printf("  %-12s %14lld  %12.1f MiB/s\n", "bytes", bytes,
		       (double)bytes / 1048576.0 / secs);
	else
		printf("  %-12s %14lld\n", "bytes", bytes);
}

/* The runs: the newest of each source that has jobs in this database, newest
 * first. Several sources may share a database (a job file and a URL list):
 * each shows its own last run, not only the one that ran last. The JSON
 * keeps "last_run" (the newest of these) and lists them all in "last_runs". */
static int status_last_run(status_t *s)
{
	static const char sql[] =
		"SELECT id, source, started_at, coalesce(ended_at, updated_at, started_at)"
		" - started_at, ended_at IS NULL, exit_code, jobs_done, jobs_failed, rows, bytes,"
		" datetime(started_at, 'unixepoch')"
		" FROM _ringfill_runs WHERE id IN (SELECT max(id) FROM _ringfill_runs GROUP BY source)"
		" AND EXISTS (SELECT 1 FROM _ringfill_jobs j WHERE j.source=_ringfill_runs.source)"
		" ORDER BY id DESC";
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
		/* A database from before runs were recorded. */
		printf(s->json ? ",\"last_run\":null,\"last_runs\":[]" : "last run: none recorded\n");
		return 0;
	}
	int rc, n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (s->json) {
			if (!n) { /* the newest twice: as "last_run" and first of "last_runs" */
				printf(",\"last_run\":");
				run_print(s, q, NULL);
				printf(",\"last_runs\":[");
			} else {
				putchar(',');
			}
			run_print(s, q, NULL);
		} else {
			run_print(s, q, n ? "last run of another source" : "last run");
		}
		n++;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return db_fail(s);
	if (!n)
		printf(s->json ? ",\"last_run\":null,\"last_runs\":[]" : "last run: none recorded\n");
	else if (s->json)
		putchar(']');
	return 0;
}

/* A database that ringfill never opened has no jobs table: say so plainly
 * instead of "no such table". */
static int status_check(status_t *s)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master WHERE type='table'"
	                              " AND name IN ('_ringfill_jobs','_ringfill_columns')",
	                       -1, &q, NULL) != SQLITE_OK)
		return db_fail(s);
	int rc = sqlite3_step(q);
	long long n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW)
		return db_fail(s);
	if (n != 2) {
		fprintf(stderr, "ringfill status: %s: not a ringfill database\n", s->path);
		return 3;
	}
	return 0;
}

static int status_usage(void)
{
	fprintf(stderr, "usage: ringfill status [--json] DB\n");
	return 2;
}

int status_main(int argc, char **argv)
{
	status_t s = {0};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: ringfill status [--json] DB\n"
			       "Jobs by state and source, bytes, failures by class and reason, rows per\n"
			       "table, and each source's last run. --json: the same as one JSON object.\n");
			return 0;
		}
		if (strcmp(argv[i], "--json") == 0)
			s.json = true;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return status_usage();
		else if (s.path)
			return status_usage();
		else
			s.path = argv[i];
	}
	if (!s.path)
		return status_usage();
	struct stat sb;
	if (stat(s.path, &sb) != 0) {
		fprintf(stderr, "ringfill status: %s: no such database\n", s.path);
		return 2;
	}
	if (sqlite3_open_v2(s.path, &s.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		int rc = db_fail(&s);
		sqlite3_close(s.db);
		return rc;
	}
	sqlite3_busy_timeout(s.db, 5000);
	int rc = 0;
	if (sqlite3_exec(s.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(&s);
	if (rc == 0)
		rc = status_check(&s);
	if (rc == 0 && !s.json) {
		printf("database: %s\n", s.path);
	} else if (rc == 0) {
		printf("{\"db\":");
		json_str(s.path);
		putchar(',');
	}
	if (rc == 0)
		rc = status_jobs(&s);
	if (rc == 0)
		rc = status_codings(&s);
	if (rc == 0)
		rc = status_checkpoints(&s);
	if (rc == 0)
		rc = status_failures(&s);
	if (rc == 0)
		rc = status_tables(&s);
	if (rc == 0 && s.json)
		putchar(']');
	if (rc == 0)
		rc = status_last_run(&s);
	if (rc == 0 && s.json)
		printf("}\n");
	sqlite3_close(s.db);
	return rc;
}
