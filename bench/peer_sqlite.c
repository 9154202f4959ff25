/* bench/peer_sqlite.c: the minimal C loop that the `store` suite measures the
 * writer (store/writer.c) against: what a careful person writes by hand to
 * bulk-load rows into SQLite. Prepared 50-row INSERTs plus one remainder
 * statement, values bound SQLITE_STATIC, 100k rows per transaction, WAL,
 * synchronous=NORMAL; timed from CREATE TABLE through the close, which
 * checkpoints the WAL into the file. It does no job bookkeeping and no
 * schema inference.
 * Two tables (peer_sqlite.h): a rowid table, and one with a two-column key
 * loaded with upserts. */
#include "bench/peer_sqlite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "bench/harness.h"

#define PEER_SQLITE_COLUMNS 5u /* _job, id, name, score, note; or _job, user, id, score, note */

bool peer_sqlite_clock_cpu(void)
{
	static int cpu = -1;
	if (cpu < 0) {
		const char *e = getenv("RINGFILL_BENCH_CLOCK");
		cpu = e && strcmp(e, "cpu") == 0;
	}
	return cpu;
}

double peer_sqlite_now_s(void)
{
	if (!peer_sqlite_clock_cpu())
		return bench_now_s();
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(sqlite3 *db, const char *what)
{
	fprintf(stderr, "ringfill bench: sqlite peer: %s: %s\n", what,
	        db ? sqlite3_errmsg(db) : "out of memory");
	return -EIO;
}

static const char *const create_sql[] = {
	[PEER_SQLITE_ROWID] = "CREATE TABLE records (_job INTEGER, id INTEGER, name TEXT,"
	                      " score REAL, note TEXT)",
	[PEER_SQLITE_UPSERT] = "CREATE TABLE records (_job INTEGER, user INTEGER, id INTEGER,"
	                       " score REAL, note TEXT, PRIMARY KEY (user, id))",
};

/* INSERT INTO records VALUES (?,?,?,?,?),... for n rows, with the upsert
 * clause for the keyed table. */
static int prepare_insert(sqlite3 *db, peer_sqlite_table_t table, uint32_t n,
                          sqlite3_stmt **out)
{
	static char sql[256 + PEER_SQLITE_ROWS_PER_STMT * 16];
	size_t len = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO records VALUES ");
	for (uint32_t i = 0; i < n; i++)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s(?,?,?,?,?)", i ? "," : "");
	if (table == PEER_SQLITE_UPSERT)
		snprintf(sql + len, sizeof(sql) - len,
		         " ON CONFLICT (user, id) DO UPDATE SET _job = excluded._job,"
		         " score = excluded.score, note = excluded.note");
	return sqlite3_prepare_v2(db, sql, -1, out, NULL) == SQLITE_OK ? 0 : fail(db, "prepare");
}

static int insert_rows(sqlite3 *db, peer_sqlite_table_t table, sqlite3_stmt *s,
                       const bench_row_t *rows, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const bench_row_t *r = &rows[i];
		int p = (int)(i * PEER_SQLITE_COLUMNS);
		sqlite3_bind_int64(s, p + 1, r->job);
		if (table == PEER_SQLITE_UPSERT) {
			sqlite3_bind_int64(s, p + 2, r->user);
			sqlite3_bind_int64(s, p + 3, r->id);
		} else {
			sqlite3_bind_int64(s, p + 2, r->id);
			sqlite3_bind_text(s, p + 3, r->name, (int)r->name_len, SQLITE_STATIC);
		}
		sqlite3_bind_double(s, p + 4, r->score);
		sqlite3_bind_text(s, p + 5, r->note, (int)r->note_len, SQLITE_STATIC);
	}
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(db, "insert");
}

static int load(sqlite3 *db, peer_sqlite_table_t table, const bench_row_t *rows, uint64_t n)
{
	sqlite3_stmt *full = NULL, *rest = NULL;
	uint32_t rest_n = (uint32_t)(n % PEER_SQLITE_ROWS_PER_STMT);
	if (sqlite3_exec(db, create_sql[table], NULL, NULL, NULL) != SQLITE_OK)
		return fail(db, "create table");
	int rc = prepare_insert(db, table, PEER_SQLITE_ROWS_PER_STMT, &full);
	if (rc == 0 && rest_n)
		rc = prepare_insert(db, table, rest_n, &rest);
	uint64_t in_tx = 0;
	if (rc == 0 && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		rc = fail(db, "begin");
	for (uint64_t i = 0; rc == 0 && i < n;) {
		uint32_t k = n - i >= PEER_SQLITE_ROWS_PER_STMT ? PEER_SQLITE_ROWS_PER_STMT : rest_n;
		rc = insert_rows(db, table, k == PEER_SQLITE_ROWS_PER_STMT ? full : rest, rows + i, k);
		i += k;
		in_tx += k;
		if (rc == 0 && (in_tx >= PEER_SQLITE_ROWS_PER_TX || i == n)) {
			if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
				rc = fail(db, "commit");
			else if (i < n && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
				rc = fail(db, "begin");
			in_tx = 0;
		}
	}
	sqlite3_finalize(full);
	sqlite3_finalize(rest);
	return rc;
}

int peer_sqlite_load(const char *db_path, peer_sqlite_table_t table, const bench_row_t *rows,
                     uint64_t n, double *seconds)
{
	sqlite3 *db = NULL;
	char pragmas[128];
	double t0 = 0;
	snprintf(pragmas, sizeof(pragmas),
	         "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=%d;",
	         PEER_SQLITE_JOURNAL_SIZE_LIMIT_BYTES);
	int rc = sqlite3_open_v2(db_path, &db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                         NULL);
	if (rc != SQLITE_OK)
		rc = fail(db, db_path);
	else if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
		rc = fail(db, "pragmas");
	else {
		t0 = peer_sqlite_now_s();
		rc = load(db, table, rows, n);
	}
	/* The close is timed: it copies what the WAL holds into the file and
	 * deletes the WAL, as the writer's own end does (wal_truncate), and as
	 * the e2e suite's loop (bench/peer_insert_loop.c) is timed. */
	if (sqlite3_close(db) != SQLITE_OK && rc == 0)
		rc = fail(db, "close");
	*seconds = peer_sqlite_now_s() - t0;
	return rc;
}
