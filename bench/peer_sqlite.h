/* bench/peer_sqlite.h: the `store` suite's peer, a minimal C insert loop
 * (bench/peer_sqlite.c), and the generated rows it shares with the writer
 * run in bench/suite_store.c, so both load exactly the same values. */
#ifndef RF_BENCH_PEER_SQLITE_H
#define RF_BENCH_PEER_SQLITE_H

#include <stdbool.h>
#include <stdint.h>

#define PEER_SQLITE_ROWS_PER_STMT 50u    /* rows per multi-row INSERT */
#define PEER_SQLITE_ROWS_PER_TX 100000u  /* rows per transaction */
#define PEER_SQLITE_JOURNAL_SIZE_LIMIT_BYTES (64 * 1024 * 1024) /* as store/store.c */

/* The two tables of the `store` suite (issue 6):
 * - PEER_SQLITE_ROWID: records (_job INTEGER, id INTEGER, name TEXT,
 *   score REAL, note TEXT), a rowid table; rows appended.
 * - PEER_SQLITE_UPSERT: records (_job INTEGER, user INTEGER, id INTEGER,
 *   score REAL, note TEXT, PRIMARY KEY (user, id)), a rowid table whose key
 *   is a UNIQUE index (the B-trees the writer makes for a job-file key);
 *   rows go in with ON CONFLICT (user, id) DO UPDATE SET the other columns,
 *   so a later row of a key replaces the earlier one. */
typedef enum {
	PEER_SQLITE_ROWID = 0,
	PEER_SQLITE_UPSERT = 1,
} peer_sqlite_table_t;

/* One generated row, plus the job it belongs to (the writer's _job column).
 * `user` is used by the upsert table only, `name` by the rowid table only.
 * Text points into the suite's arena. */
typedef struct {
	int64_t job, user, id;
	double score;
	const char *name, *note;
	uint32_t name_len, note_len;
} bench_row_t;

/* RINGFILL_BENCH_CLOCK=cpu (docs/benchmarks.md, "store"): both sides are
 * charged CPU seconds, not wall seconds: the loop its thread's, the writer
 * its thread's. On a shared machine a side that waits for a CPU is then not
 * charged for it; neither is charged for waiting on the disk (fdatasync). */
bool peer_sqlite_clock_cpu(void);
/* Seconds on the suite's clock: wall (CLOCK_MONOTONIC), or with
 * RINGFILL_BENCH_CLOCK=cpu the calling thread's CPU seconds. */
double peer_sqlite_now_s(void);

/* Creates the table in a new database at db_path (WAL, synchronous=NORMAL)
 * and inserts rows[0..n) in that order. *seconds: from CREATE TABLE to the
 * last COMMIT, on peer_sqlite_now_s's clock. 0, or -EIO after printing
 * SQLite's message. */
int peer_sqlite_load(const char *db_path, peer_sqlite_table_t table, const bench_row_t *rows,
                     uint64_t n, double *seconds);

#endif
