/* store/retry.c: `ringfill retry DB [--all]`, the operator's requeue.
 *
 * Sets failed jobs back to 'pending' so the next `ringfill run` of their
 * source fetches them again: jobs that failed with class 'transient' (they
 * ran out of attempts), or with --all every failed job that has a URL. It
 * writes _ringfill_jobs (store/store.c made it) in one BEGIN IMMEDIATE
 * transaction, waiting for a running writer (store/writer.c) as long as
 * busy_timeout allows. docs/store.md describes what a requeue keeps. */
#include "store/store.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#define RETRY_BUSY_TIMEOUT_MS 10000

/* Which jobs a requeue takes. Malformed URL-file lines (url IS NULL) can
 * never succeed, so even --all leaves them failed: fix the line instead. */
#define RETRY_WHERE_TRANSIENT " WHERE state='failed' AND error_class='transient'"
#define RETRY_WHERE_ALL " WHERE state='failed' AND url IS NOT NULL"

typedef struct {
	sqlite3 *db;
	const char *path;
	bool all;
} retry_t;

static void retry_usage(FILE *f)
{
	fprintf(f, "usage: ringfill retry DB [--all]\n"
	                "  requeues failed jobs with class 'transient' (--all: every failed job\n"
	                "  that has a URL); the next `ringfill run` of their source fetches them\n");
}

static int db_fail(retry_t *r)
{
	fprintf(stderr, "ringfill retry: %s: %s\n", r->path, sqlite3_errmsg(r->db));
	return 3;
}

/* A database ringfill never opened has no jobs table: say so plainly. */
static int retry_check(retry_t *r)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(r->db, "SELECT count(*) FROM sqlite_master WHERE type='table'"
	                              " AND name='_ringfill_jobs'",
	                       -1, &q, NULL) != SQLITE_OK)
		return db_fail(r);
	int rc = sqlite3_step(q);
	long long n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW)
		return db_fail(r);
	if (n != 1) {
		fprintf(stderr, "ringfill retry: %s: not a ringfill database\n", r->path);
		return 3;
	}
	return 0;
}

/* Prints the jobs about to be requeued, per source, inside the transaction
 * (so the figures are exactly what the UPDATE changes). */
static int retry_report(retry_t *r, long long *total)
{
	const char *sql = r->all ? "SELECT source, count(*) FROM _ringfill_jobs" RETRY_WHERE_ALL
	                           " GROUP BY source ORDER BY source"
	                         : "SELECT source, count(*) FROM _ringfill_jobs" RETRY_WHERE_TRANSIENT
	                           " GROUP BY source ORDER BY source";
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(r->db, sql, -1, &q, NULL) != SQLITE_OK)
		return db_fail(r);
	int rc;
	*total = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		long long n = sqlite3_column_int64(q, 1);
		printf("  %-48s %10lld requeued\n", (const char *)sqlite3_column_text(q, 0), n);
		*total += n;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : db_fail(r);
}

/* The requeue: state back to pending, attempts to 0 (the next run has its
 * full --retries again), error_class cleared (it describes a final failure);
 * error and http_status stay as the last failure's history until the job is
 * done (which clears the error) or fails again (which overwrites both). */
static int retry_apply(retry_t *r)
{
	const char *sql = r->all ? "UPDATE _ringfill_jobs SET state='pending', attempts=0,"
	                           " error_class=NULL" RETRY_WHERE_ALL
	                         : "UPDATE _ringfill_jobs SET state='pending', attempts=0,"
	                           " error_class=NULL" RETRY_WHERE_TRANSIENT;
	if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(r);
	long long total;
	printf("database: %s\n", r->path);
	int rc = retry_report(r, &total);
	if (rc == 0 && sqlite3_exec(r->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(r);
	if (rc == 0 && sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_fail(r);
	if (rc != 0) {
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	printf("requeued %lld %s job%s; run the same `ringfill run` command again to fetch "
	       "them\n",
	       total, r->all ? "failed" : "transient", total == 1 ? "" : "s");
	return 0;
}

int retry_main(int argc, char **argv)
{
	retry_t r = {0};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0) {
			r.all = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			retry_usage(stdout);
			return 0;
		} else if ((argv[i][0] == '-' && argv[i][1] != '\0') || r.path) {
			retry_usage(stderr);
			return 2;
		} else {
			r.path = argv[i];
		}
	}
	if (!r.path) {
		retry_usage(stderr);
		return 2;
	}
	/* Never create a database: a typo must not leave an empty file behind. */
	struct stat sb;
	if (stat(r.path, &sb) != 0) {
		fprintf(stderr, "ringfill retry: %s: no such database\n", r.path);
		return 2;
	}
	if (sqlite3_open_v2(r.path, &r.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		int rc = db_fail(&r);
		sqlite3_close(r.db);
		return rc;
	}
	sqlite3_busy_timeout(r.db, RETRY_BUSY_TIMEOUT_MS);
	int rc = retry_check(&r);
	if (rc == 0)
		rc = retry_apply(&r);
	sqlite3_close(r.db);
	return rc;
}
