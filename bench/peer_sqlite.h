/* bench/peer_sqlite.h: the `store` suite's peer, a minimal C insert loop
 * (bench/peer_sqlite.c), and the generated rows it shares with the writer
 * run in bench/suite_store.c, so both load exactly the same values. */
#ifndef RF_BENCH_PEER_SQLITE_H
#define RF_BENCH_PEER_SQLITE_H

#include <stdint.h>

#define PEER_SQLITE_ROWS_PER_STMT 50u    /* rows per multi-row INSERT */
#define PEER_SQLITE_ROWS_PER_TX 100000u  /* rows per transaction */
#define PEER_SQLITE_JOURNAL_SIZE_LIMIT_BYTES (64 * 1024 * 1024) /* as store/store.c */

/* One generated row of the 4-column table, plus the job it belongs to (the
 * writer's _job column). Text points into the suite's arena. */
typedef struct {
	int64_t job, id;
	double score;
	const char *name, *note;
	uint32_t name_len, note_len;
} bench_row_t;

/* Creates table records (_job INTEGER, id INTEGER, name TEXT, score REAL,
 * note TEXT) in a new database at db_path (WAL, synchronous=NORMAL) and
 * inserts rows[0..n) in order. *seconds: from CREATE TABLE to the last
 * COMMIT. 0, or -EIO after printing SQLite's message. */
int peer_sqlite_load(const char *db_path, const bench_row_t *rows, uint64_t n,
                     double *seconds);

#endif
