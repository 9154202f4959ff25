/* store/runs.c: _ringfill_runs, one row per `ringfill run`.
 *
 * The main thread adds the row before the writer starts and closes it after
 * the writer has stopped; in between, the writer adds its committed counts in
 * the same transactions as the data they count (store/writer.c, run_update),
 * so a run that was killed still shows what it committed. `ringfill status`
 * reports the last run's figures and rates from it (store/status.c). */
#include "store/store.h"

#include <stdio.h>
#include <sys/time.h>

#include <sqlite3.h>

static const char runs_schema[] =
	"CREATE TABLE IF NOT EXISTS _ringfill_runs ("
	" id INTEGER PRIMARY KEY, source TEXT NOT NULL,"
	" started_at REAL NOT NULL, updated_at REAL, ended_at REAL, exit_code INTEGER,"
	" jobs_done INTEGER NOT NULL DEFAULT 0, jobs_failed INTEGER NOT NULL DEFAULT 0,"
	" rows INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0)";

static double unix_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void bind_named(sqlite3_stmt *s, const char *name, const char *text, int64_t v)
{
	int i = sqlite3_bind_parameter_index(s, name);
	if (i > 0 && text)
		sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
	else if (i > 0)
		sqlite3_bind_int64(s, i, v);
}

/* Runs one statement of _ringfill_runs in its own transaction, creating the
 * table first if needed. Parameters by name: :now, :source, :code, :id. */
static int run_exec(store_t *st, const char *sql, const char *source, int64_t id, int code,
                    uint32_t patience_ms, char *err, size_t cap)
{
	sqlite3 *db = store_db(st);
	sqlite3_stmt *s = NULL;
	int rc = store_exec_busy(db, "BEGIN IMMEDIATE", patience_ms, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_exec(db, runs_schema, NULL, NULL, NULL)) == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		int i = sqlite3_bind_parameter_index(s, ":now");
		if (i > 0)
			sqlite3_bind_double(s, i, unix_now());
		bind_named(s, ":source", source, 0);
		bind_named(s, ":code", NULL, code);
		bind_named(s, ":id", NULL, id);
		rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_OK)
		rc = store_exec_busy(db, "COMMIT", patience_ms, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, cap, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int store_run_begin(store_t *st, const char *source, int64_t *id, char *err, size_t cap)
{
	if (run_exec(st, "INSERT INTO _ringfill_runs (source, started_at, updated_at)"
	                 " VALUES (:source, :now, :now)",
	             source, 0, 0, store_patience(st), err, cap) != 0)
		return -1;
	*id = sqlite3_last_insert_rowid(store_db(st));
	return 0;
}

/* An interrupted run (exit 128 + signal) may have been stopped while another
 * process holds the write lock: it does not keep the user waiting to record
 * its end, and shows as "not finished" when it could not. */
#define RUNS_INTERRUPTED_PATIENCE_MS 500u

int store_run_end(store_t *st, int64_t id, int exit_code, char *err, size_t cap)
{
	uint32_t patience = store_patience(st);
	if (exit_code > 128 && patience > RUNS_INTERRUPTED_PATIENCE_MS)
		patience = RUNS_INTERRUPTED_PATIENCE_MS;
	return run_exec(st, "UPDATE _ringfill_runs SET ended_at=:now, updated_at=:now,"
	                    " exit_code=:code WHERE id=:id",
	                NULL, id, exit_code, patience, err, cap);
}
