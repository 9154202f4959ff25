/* store/writer.c: the writer thread, the only connection that writes.
 *
 * It pops row batches that the loop (engine/loop.c) pushed into
 * pipe->to_writer (store/ring.h), widens the target table as new keys appear,
 * inserts the rows, and marks each job done or failed in the same transaction
 * (DESIGN §4, exactly once). The other way it feeds pending jobs from
 * _ringfill_jobs (store/store.c) into pipe->to_loop and wakes the loop
 * through its eventfd. docs/store.md explains the policies. */
#include "store/writer.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/batch.h"

#define WRITER_POP_MAX 64u          /* batches taken from the ring at a time */
#define WRITER_IDLE_WAIT_MS 100     /* longest sleep without a commit due */
#define WRITER_CHECKPOINT_MS 1000   /* a PASSIVE checkpoint at most this often */
#define WRITER_TRUNCATE_WAIT_MS 200 /* how long the final TRUNCATE waits for readers */
/* WAL sizes, in bytes because new databases have 16 KiB pages and older
 * ones 4 KiB (store.c): a commit leaving this much asks for a checkpoint
 * (SQLite's own auto-checkpoint size at 4 KiB pages) ... */
#define WRITER_WAL_CHECKPOINT_BYTES (1000 * 4096)
/* ... and this much: the writer waits for the checkpointer and copies the
 * rest itself, so that the next transaction rewinds the WAL (the only way
 * it is rewound while the writer runs: a transaction begins right after
 * the commit before it, before the checkpoint that commit asked for ends).
 * The wait is as long as a checkpoint's copying and syncing (55-145 ms on
 * the events load), whatever this size, so a larger size makes it rarer;
 * but below journal_size_limit (64 MiB, store.c) by a commit or so, a
 * rewound WAL is written over in the file blocks and page-cache pages it
 * has already, and never cut back. A WAL that only grows makes every frame
 * a new block and a new cached page, and its final TRUNCATE frees them
 * all: at 128 MiB the 106 MB of the `bench store` rowid_4col load are
 * never rewound. 48 MiB (branch rowid2) gave that load's writer about 4%
 * more rows/s, but the events load 3-7% more wall time, so 128 MiB it
 * stays (docs/store.md). */
#define WRITER_WAL_SELF_BYTES (128ull << 20)
#define WRITER_BUSY_TRY_MS 250      /* SQLite's own busy wait per try (exec_retry) */
#define WRITER_STMT_CACHE_MAX 64u   /* INSERT statements kept, per column set and row count */
#define WRITER_ROWS_PER_STMT 100u   /* rows one INSERT carries, fewer for very wide rows */
#define WRITER_ROWID_PENDING_MAX 2000u /* rowid-table rows staged before they are inserted */
/* ... and keyed rows an idle writer (nothing in the ring) inserts rather
 * than wait for the chunk (WRITER_KEYED_PENDING_MAX) to fill: the sort
 * orders fewer rows, but a writer that starts late finishes late. */
#define WRITER_IDLE_INSERT_ROWS_MIN 500u
#define WRITER_CACHE_BYTES_PER_ROW 512u     /* page cache per commit_rows row ... */
#define WRITER_CACHE_KIB_MIN (16u * 1024u)  /* ... at least 16 MiB ... */
#define WRITER_CACHE_KIB_MAX (256u * 1024u) /* ... at most 256 MiB */
#define WRITER_COLUMN_SUFFIX_MAX 1000000u
#define WRITER_KEY_INDEX_PREFIX "_ringfill_key_" /* + table: the UNIQUE index of its key */
/* A keyed run of at least this many rows is sorted by a radix sort on the
 * rows' 64-bit key prefixes (radix_run), RADIX_BITS at a time; shorter
 * runs, and rows whose prefixes are equal, by qsort_r or insertion, or, when
 * such rows share the whole key value, by the next key column the same way
 * (sort_ties). */
#define WRITER_RADIX_ROWS_MIN 256u
#define RADIX_BITS 11u
#define RADIX_PASSES 6u /* 6 x 11 bits cover the 64 */
#define RADIX_TIE_INSERTION_MAX 16u

/* Open-addressing map from a byte string to a value. Strings are owned. */
typedef struct {
	char *s;
	uint32_t len;
	uint32_t val;
} slot_t;

typedef struct {
	slot_t *slots;
	uint32_t used, cap; /* cap: a power of two, or 0 */
} strmap_t;

#define MAP_ABSENT UINT32_MAX /* a slot whose entry was rolled back */

/* Values in writer_t.taken: who holds a (lower-cased) column name. */
enum { TAKEN_UNMAPPED = 0, TAKEN_MAPPED = 1 };

typedef struct {
	char *key, *col;
	uint64_t key8, key8_mask; /* the key's first 8 bytes (fewer: zero above), host
	                           * order, and the mask of those bytes */
	uint32_t key_len;
	uint32_t taken_before; /* its name's writer_t.taken entry before: what a rollback restores */
	int8_t aff;      /* its declared type's affinity (AFF_*), or -1 not looked up */
} column_t;

/* One target table: its spec, and which flattened key (or declared column)
 * is stored in which of its columns. */
typedef struct {
	char *name;
	const table_spec_t *spec; /* the caller's; NULL for the single --table of old */
	column_t *cols;           /* index = column number in the stmt cache keys */
	uint32_t n_cols, cap_cols;
	strmap_t keys;  /* flattened key → column index */
	strmap_t taken; /* lower-cased column name → TAKEN_* */
	bool exists;
	/* Created by this writer (table_create): no constraint, trigger or index
	 * but the key's, so a row that a later row replaces cannot fail or fire
	 * anything, and tx_dedup may skip it. A table that exists at start may
	 * have been made or changed by hand: its rows are all inserted. */
	bool ours;
	/* This transaction's rows may be sorted by key (tx_key_order): set at
	 * each commit; else they keep arrival order. */
	bool by_key;
	uint32_t sp_n_cols; /* n_cols and exists at the job's savepoint */
	bool sp_exists;
} wtable_t;

typedef struct {
	uint64_t hash, used;
	uint32_t table;
	uint32_t n;    /* columns per row, besides _job */
	uint32_t rows; /* rows the statement inserts */
	bool one_job;  /* its rows share one _job parameter, ?1 (insert_sql) */
	uint32_t *cols;
	sqlite3_stmt *stmt;
} stmt_entry_t;

typedef struct {
	uint32_t col, field;
} pair_t;

/* ---- the open transaction's rows (held until its commit) ----
 * One held row: where its fields start in its batch, its layout and its
 * key. Rows of keyed tables (upsert, ignore) are sorted by key before they
 * are inserted; `seq` (arrival order) breaks ties, so the sort is stable. */
typedef struct {
	const batch_t *b;
	size_t pos;      /* offset of its first field in b->rows */
	uint64_t prefix; /* key_prefix of its first key value: decides most comparisons */
	uint32_t seq;    /* arrival order within the transaction */
	uint32_t layout; /* index into writer_t.layouts */
	uint32_t table;
	uint32_t key;    /* index of its first key value in writer_t.hkeys */
} hrow_t;

/* A key value as SQLite orders values in an index with BINARY collation:
 * NULL < numbers (integers and reals by value) < text (memcmp, then length). */
enum { KEY_NULL = 0, KEY_NUM = 1, KEY_TEXT = 2 };

typedef struct {
	union {
		int64_t i;
		double r;
		const char *s; /* into the batch */
	} v;
	uint32_t len; /* KEY_TEXT: bytes */
	uint8_t cls;  /* KEY_* */
	bool real;    /* KEY_NUM: v.r, else v.i */
} hkey_t;

/* The columns of a row's fields, in field order, as resolved once for a
 * run of rows with the same fields; and, for a keyed table, which field
 * holds each key column (LAYOUT_NONE: the row has no such field, NULL). */
typedef struct {
	uint32_t table, n;
	size_t cols_at; /* n column numbers in writer_t.lay_u32 */
	size_t key_at;  /* n_key field indices in writer_t.lay_u32 */
} layout_t;

#define LAYOUT_NONE UINT32_MAX

struct writer {
	store_t *st;
	sqlite3 *db;
	pipe_t *pipe;
	char *source;
	uint32_t commit_rows, commit_ms;
	uint32_t keyed_chunk_rows; /* writer_config_t.keyed_chunk_rows, default applied */
	uint64_t wal_self_bytes;   /* writer_config_t.wal_self_bytes, default applied */
	pthread_t thread;
	int result;

	wtable_t *tables; /* indexed like the rows' table index */
	uint32_t n_tables;
	table_spec_t single; /* the spec of the one inferred --table (cfg->n_tables 0) */

	stmt_entry_t cache[WRITER_STMT_CACHE_MAX];
	uint64_t cache_clock;
	sqlite3_stmt *upd_done, *upd_failed, *colmap_ins;
	sqlite3_stmt *upd_run; /* this run's row of _ringfill_runs, when run_id is set */
	int64_t run_id;
	sqlite3_stmt *sp_begin, *sp_release, *sp_rollback; /* the per-job savepoint */
	sqlite3_stmt *upd_ckpt, *upd_done_ckpt; /* a streamed job's checkpoint, its end */
	uint32_t vars_max; /* SQLite's limit on bound parameters per statement */

	bool in_tx;
	/* PRAGMA data_version when this writer last knew the tables' columns
	 * (tables_refresh): another connection's commit changes it. */
	sqlite3_stmt *data_version_stmt;
	int64_t data_version;
	uint64_t tx_rows, tx_done, tx_failed, tx_bytes;
	uint32_t busy_patience_ms; /* total wait for another process's write lock */
	uint64_t checkpoint_ms;    /* when the last PASSIVE checkpoint ran */
	/* The checkpointer thread (see there): its own connection, and what
	 * it shares with the writer, under ck_mu. */
	sqlite3 *ck_db;
	pthread_t ck_thread;
	bool ck_running;
	pthread_mutex_t ck_mu;
	pthread_cond_t ck_cv;
	pthread_cond_t ck_idle_cv; /* signalled when a checkpoint ends */
	bool ck_due, ck_stop, ck_failed, ck_busy;
	int ck_ask_pages, ck_self_pages; /* WRITER_WAL_*_BYTES in the database's pages */
	char ck_msg[512];

	int64_t last_fed;
	bool exhausted;
	job_desc_t **jobs; /* scratch for store_jobs_fetch, ring capacity long */

	/* The rows of one group: consecutive rows of a job for the same table
	 * with the same fields in the same order, inserted together by
	 * multi-row statements (rows_insert). */
	batch_field_t *fields; /* the group's fields, row after row (g_n per row) */
	size_t cap_fields;
	pair_t *pairs;      /* the group's columns, sorted, with the field that fills each */
	uint32_t *g_cols;   /* the group's column of each field, in field order */
	uint32_t *row_cols; /* the same for the row being resolved */
	uint32_t *g_param;  /* tx_insert: each field's parameter, counted from the row's _job */
	uint8_t *g_aff;     /* per field of the group: its column's affinity (AFF_*) */
	uint32_t cap_cols;  /* entries of pairs, g_cols, row_cols and g_param */
	uint32_t g_table, g_n;
	bool g_valid; /* g_cols names live columns (false after a rollback) */
	int64_t g_jobs[WRITER_ROWS_PER_STMT]; /* the job (_job) of each row of the group */
	json_buf_t sql;

	/* The batches of the open transaction, in arrival order, linked by
	 * batch_t.next: the writer owns them from the pop until they are
	 * committed (or the run stops), then frees them. At most commit_rows
	 * rows plus one batch are held (tx_due). */
	batch_t *held, **held_tail;
	uint64_t held_rows, held_bytes, held_start_ms;
	/* Scratch of tx_apply, reused by every transaction (grows only). */
	hrow_t *hrows; /* rows of keyed tables, inserted sorted at the commit */
	size_t n_hrows, cap_hrows;
	hrow_t *arows; /* rows of rowid tables, inserted a few thousand at a time */
	size_t n_arows, cap_arows;
	hrow_t *srows; /* tx_sort's scratch */
	size_t cap_srows;
	struct rkey *rkeys; /* radix_run's scratch: two arrays of a run's length */
	size_t cap_rkeys;
	uint32_t radix_count[RADIX_PASSES][1u << RADIX_BITS];
	bool jobwise; /* the transaction went one job at a time (tx_apply_jobwise) */
	const char *wide; /* the table a column could not be added to (-E2BIG): its name */
	hkey_t *hkeys;
	size_t n_hkeys, cap_hkeys;
	layout_t *layouts;
	size_t n_layouts, cap_layouts;
	uint32_t *lay_u32;
	size_t n_lay_u32, cap_lay_u32;
	uint32_t *last_layout; /* per table: the layout of its latest row, or LAYOUT_NONE */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wake_loop(writer_t *w)
{
	uint64_t one = 1;
	if (w->pipe->loop_eventfd >= 0 && write(w->pipe->loop_eventfd, &one, sizeof(one)) < 0)
		assert(errno == EAGAIN); /* the counter is saturated: the loop is awake anyway */
}

/* Stops the run: the message goes to the loop, the transaction is undone so
 * nothing half-written is committed, and the jobs stay pending (resumable). */
static int fatal(writer_t *w, const char *msg)
{
	snprintf(w->pipe->fatal_msg, sizeof(w->pipe->fatal_msg), "%s", msg);
	if (w->in_tx)
		sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	w->in_tx = false;
	w->result = -1;
	/* Release: fatal_msg is written before the loop can see fatal set. */
	atomic_store_explicit(&w->pipe->fatal, true, memory_order_release);
	wake_loop(w);
	return -1;
}

static int fatal_db(writer_t *w)
{
	char msg[sizeof(w->pipe->fatal_msg)];
	snprintf(msg, sizeof(msg), "%s: %s", sqlite3_db_filename(w->db, "main"),
	         sqlite3_errmsg(w->db));
	return fatal(w, msg);
}

/* ---- string maps ------------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
	const uint8_t *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211u; /* FNV-1a */
	return h;
}

static slot_t *map_slot(strmap_t *m, const char *s, uint32_t len)
{
	assert(m->cap && (m->cap & (m->cap - 1)) == 0);
	uint32_t i = (uint32_t)hash_bytes(s, len, 14695981039346656037u) & (m->cap - 1);
	for (; m->slots[i].s; i = (i + 1) & (m->cap - 1))
		if (m->slots[i].len == len && memcmp(m->slots[i].s, s, len) == 0)
			break;
	return &m->slots[i];
}

/* The value for s, or MAP_ABSENT. */
static uint32_t map_get(strmap_t *m, const char *s, uint32_t len)
{
	if (!m->cap)
		return MAP_ABSENT;
	slot_t *sl = map_slot(m, s, len);
	return sl->s ? sl->val : MAP_ABSENT;
}

static int map_put(strmap_t *m, const char *s, uint32_t len, uint32_t val)
{
	if ((m->used + 1) * 2 > m->cap) {
		strmap_t bigger = {.cap = m->cap ? m->cap * 2 : 64};
		bigger.slots = calloc(bigger.cap, sizeof(slot_t));
		if (!bigger.slots)
			return -ENOMEM;
		for (uint32_t i = 0; i < m->cap; i++)
			if (m->slots[i].s)
				*map_slot(&bigger, m->slots[i].s, m->slots[i].len) = m->slots[i];
		bigger.used = m->used;
		free(m->slots);
		*m = bigger;
	}
	slot_t *sl = map_slot(m, s, len);
	if (!sl->s) {
		if (!(sl->s = malloc(len ? len : 1)))
			return -ENOMEM;
		memcpy(sl->s, s, len);
		sl->len = len;
		m->used++;
	}
	sl->val = val;
	return 0;
}

/* Sets the value of an entry known to exist (never allocates). */
static void map_mark(strmap_t *m, const char *s, uint32_t len, uint32_t val)
{
	slot_t *sl = map_slot(m, s, len);
	assert(sl->s);
	sl->val = val;
}

static void map_free(strmap_t *m)
{
	for (uint32_t i = 0; i < m->cap; i++)
		free(m->slots[i].s);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* SQLite folds identifier case for ASCII letters only. */
static void ascii_lower(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32) : src[i];
}

static uint32_t taken_get(wtable_t *t, const char *name, size_t n)
{
	char low[BATCH_COLUMN_NAME_BYTES_MAX + 16];
	assert(n <= sizeof(low));
	ascii_lower(low, name, n);
	return map_get(&t->taken, low, (uint32_t)n);
}

static int taken_put(wtable_t *t, const char *name, size_t n, uint32_t val)
{
	char low[BATCH_COLUMN_NAME_BYTES_MAX + 16];
	assert(n <= sizeof(low));
	ascii_lower(low, name, n);
	return map_put(&t->taken, low, (uint32_t)n, val);
}

/* ---- SQL text ---------------------------------------------------------- */

/* Appends a double-quoted identifier, embedded quotes doubled. */
static int sql_ident(json_buf_t *b, const char *s, size_t n)
{
	if (json_buf_append(b, "\"", 1) != 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if ((s[i] == '"' && json_buf_append(b, "\"", 1) != 0) ||
		    json_buf_append(b, s + i, 1) != 0)
			return -ENOMEM;
	return json_buf_append(b, "\"", 1);
}

static int sql_str(json_buf_t *b, const char *s)
{
	return json_buf_append(b, s, strlen(s));
}

/* The SQL text in w->sql, NUL-terminated for sqlite3_prepare. */
static const char *sql_end(writer_t *w)
{
	if (json_buf_append(&w->sql, "", 1) != 0)
		return NULL;
	return w->sql.data;
}

static const char *decl_type(field_type_t t)
{
	switch (t) {
	case FIELD_INT:
	case FIELD_BOOL:
		return " INTEGER";
	case FIELD_REAL:
		return " REAL";
	case FIELD_TEXT:
	case FIELD_JSON:
	case FIELD_BIGINT:
		return " TEXT";
	case FIELD_NULL:
		break;
	}
	return "";
}

/* The declared type of a job file column, or of the field's value when the
 * column has none (inferred tables, type "auto"). */
static const char *column_decl(const wtable_t *t, const batch_field_t *f)
{
	const table_spec_t *sp = t->spec;
	for (uint32_t i = 0; sp && i < sp->n_cols; i++) {
		const column_spec_t *c = &sp->cols[i];
		if (strlen(c->name) != f->name_len || memcmp(c->name, f->name, f->name_len) != 0)
			continue;
		switch (c->type) {
		case COLUMN_TEXT:
		case COLUMN_JSON: return " TEXT";
		case COLUMN_INTEGER:
		case COLUMN_BOOLEAN: return " INTEGER";
		case COLUMN_REAL: return " REAL";
		case COLUMN_AUTO: break;
		}
		break;
	}
	return decl_type(f->type);
}

static int exec_sql(writer_t *w, const char *sql)
{
	if (!sql)
		return fatal(w, "writer: out of memory");
	if (sqlite3_exec(w->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return fatal_db(w);
	return 0;
}

/* ---- transactions ----------------------------------------------------- */

/* Another process (`ringfill retry`, a script, a backup) may hold the write
 * lock. BEGIN/COMMIT wait SQLite's busy_timeout (short: WRITER_BUSY_TRY_MS),
 * then store_exec_busy backs off and tries again until the writer's patience
 * is spent (--db-timeout, 60 s by default) or a signal stops the run (then it
 * gives up within about a second); meanwhile the loop stops reading once the
 * batch ring is full, so nothing is lost, only delayed. */
static int exec_retry(writer_t *w, const char *sql)
{
	int rc = store_exec_busy(w->db, sql, w->busy_patience_ms, &w->pipe->stopping);
	if (rc == SQLITE_OK)
		return 0;
	if ((rc & 0xff) != SQLITE_BUSY)
		return fatal_db(w);
	char msg[sizeof(w->pipe->fatal_msg)];
	if (atomic_load_explicit(&w->pipe->stopping, memory_order_acquire)) {
		/* Interrupted: the user asked to stop, and the lock may be held for
		 * a long time yet. What is not committed stays pending. */
		atomic_store_explicit(&w->pipe->lock_wait_cancelled, true, memory_order_relaxed);
		snprintf(msg, sizeof(msg),
		         "%s: database is locked by another process; stopped waiting for it "
		         "because of the signal (uncommitted jobs stay pending)",
		         sqlite3_db_filename(w->db, "main"));
		return fatal(w, msg);
	}
	snprintf(msg, sizeof(msg),
	         "%s: database is locked: another process held the write lock for more than "
	         "%.1f s (--db-timeout SECONDS waits longer)",
	         sqlite3_db_filename(w->db, "main"), w->busy_patience_ms / 1000.0);
	return fatal(w, msg);
}

static void busy_try_set(writer_t *w)
{
	uint32_t p = w->busy_patience_ms;
	sqlite3_busy_timeout(w->db, p < WRITER_BUSY_TRY_MS ? (int)p : WRITER_BUSY_TRY_MS);
}

/* ---- the checkpointer ---------------------------------------------------
 * Copying the WAL's pages into the database file took about a fifth of the
 * writer thread's time on the events load, where the writer is the longer
 * thread (docs/benchmarks.md, branch `events`). So a thread of its own,
 * with its own connection, runs the PASSIVE checkpoints while the writer
 * goes on inserting: in WAL mode a checkpoint and a write transaction run
 * side by side. A commit that leaves WRITER_WAL_CHECKPOINT_BYTES or more in
 * the WAL asks for one (SQLite's own auto-checkpoint at that size, whose
 * hook this replaces); a commit that leaves WRITER_WAL_SELF_BYTES, because
 * the checkpointer lags or a reader holds frames back, waits for the
 * checkpoint in progress and copies the rest on the writer's connection
 * (ck_wal_hook), so the WAL stays bounded as before. An error
 * other than busy in the checkpointer stops the run at the writer's next
 * commit, as the same error in the writer would. */

static void *ck_main(void *arg)
{
	writer_t *w = arg;
	pthread_setname_np(pthread_self(), "rf-checkpoint"); /* for top and perf */
	pthread_mutex_lock(&w->ck_mu);
	for (;;) {
		while (!w->ck_due && !w->ck_stop)
			pthread_cond_wait(&w->ck_cv, &w->ck_mu);
		if (w->ck_stop)
			break;
		w->ck_due = false;
		w->ck_busy = true;
		pthread_mutex_unlock(&w->ck_mu);
		int rc = sqlite3_wal_checkpoint_v2(w->ck_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
		                                   NULL);
		pthread_mutex_lock(&w->ck_mu);
		w->ck_busy = false;
		pthread_cond_broadcast(&w->ck_idle_cv);
		if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) {
			snprintf(w->ck_msg, sizeof(w->ck_msg), "%s: %s",
			         sqlite3_db_filename(w->ck_db, "main"), sqlite3_errmsg(w->ck_db));
			w->ck_failed = true;
			break;
		}
	}
	pthread_mutex_unlock(&w->ck_mu);
	return NULL;
}

static void ck_ask(writer_t *w)
{
	pthread_mutex_lock(&w->ck_mu);
	w->ck_due = true;
	pthread_cond_signal(&w->ck_cv);
	pthread_mutex_unlock(&w->ck_mu);
}

/* Runs on the writer's connection after each commit, with the WAL's pages.
 * The WAL is rewound only when a transaction starts with every frame
 * copied; while commits follow each other faster than the checkpointer
 * copies, it grows. At WRITER_WAL_SELF_BYTES the writer waits for the
 * checkpoint in progress to end and copies the rest itself, as SQLite's
 * own hook would have at once: the next transaction rewinds the WAL
 * unless a reader still needs it. */
static int ck_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	writer_t *w = arg;
	if (pages >= w->ck_self_pages) {
		pthread_mutex_lock(&w->ck_mu);
		while (w->ck_busy)
			pthread_cond_wait(&w->ck_idle_cv, &w->ck_mu);
		pthread_mutex_unlock(&w->ck_mu);
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	} else if (pages >= w->ck_ask_pages) {
		ck_ask(w);
	}
	return SQLITE_OK; /* as SQLite's own hook: a failed checkpoint is no failed commit */
}

/* Without a checkpointer (its connection or thread could not be made) the
 * writer checkpoints as SQLite does by default: nothing is lost but time. */
static void ck_start(writer_t *w)
{
	sqlite3_stmt *ps;
	int page = 4096;
	if (sqlite3_prepare_v2(w->db, "PRAGMA page_size", -1, &ps, NULL) == SQLITE_OK) {
		if (sqlite3_step(ps) == SQLITE_ROW && sqlite3_column_int(ps, 0) >= 512)
			page = sqlite3_column_int(ps, 0);
		sqlite3_finalize(ps);
	}
	w->ck_ask_pages = (int)(WRITER_WAL_CHECKPOINT_BYTES / page);
	w->ck_self_pages = (int)(w->wal_self_bytes / (unsigned)page);
	const char *path = sqlite3_db_filename(w->db, "main");
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	if (!path || !path[0] || sqlite3_open_v2(path, &w->ck_db, flags, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_extended_result_codes(w->ck_db, 1);
	/* A read opens the connection's WAL, which the checkpoint works on. */
	if (sqlite3_exec(w->ck_db, "PRAGMA schema_version", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (pthread_mutex_init(&w->ck_mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&w->ck_cv, NULL) != 0) {
		pthread_mutex_destroy(&w->ck_mu);
		goto fail;
	}
	if (pthread_cond_init(&w->ck_idle_cv, NULL) != 0) {
		pthread_cond_destroy(&w->ck_cv);
		pthread_mutex_destroy(&w->ck_mu);
		goto fail;
	}
	w->ck_due = w->ck_stop = w->ck_failed = w->ck_busy = false;
	if (pthread_create(&w->ck_thread, NULL, ck_main, w) != 0) {
		pthread_cond_destroy(&w->ck_idle_cv);
		pthread_cond_destroy(&w->ck_cv);
		pthread_mutex_destroy(&w->ck_mu);
		goto fail;
	}
	w->ck_running = true;
	sqlite3_wal_hook(w->db, ck_wal_hook, w);
	return;
fail:
	sqlite3_close(w->ck_db);
	w->ck_db = NULL;
}

/* Stops the checkpointer (waiting for a checkpoint it is in) and gives the
 * checkpoints back to the writer's connection. Safe to call twice. */
static void ck_stop(writer_t *w)
{
	if (!w->ck_running)
		return;
	sqlite3_wal_autocheckpoint(w->db, w->ck_ask_pages);
	pthread_mutex_lock(&w->ck_mu);
	w->ck_stop = true;
	pthread_cond_signal(&w->ck_cv);
	pthread_mutex_unlock(&w->ck_mu);
	pthread_join(w->ck_thread, NULL);
	pthread_cond_destroy(&w->ck_idle_cv);
	pthread_cond_destroy(&w->ck_cv);
	pthread_mutex_destroy(&w->ck_mu);
	sqlite3_close(w->ck_db);
	w->ck_db = NULL;
	w->ck_running = false;
}

/* The checkpointer's error, if it stopped on one: fatal for the run. */
static int ck_check(writer_t *w)
{
	if (!w->ck_running)
		return 0;
	char msg[sizeof(w->ck_msg)];
	pthread_mutex_lock(&w->ck_mu);
	bool failed = w->ck_failed;
	if (failed)
		snprintf(msg, sizeof(msg), "%s", w->ck_msg);
	pthread_mutex_unlock(&w->ck_mu);
	return failed ? fatal(w, msg) : 0;
}

/* Keeps the WAL bounded: besides the checkpoints after large commits (the
 * checkpointer, above), one runs at most every WRITER_CHECKPOINT_MS.
 * PASSIVE never waits: frames a reader still needs
 * stay, and the WAL is rewound from the start (and cut back to
 * journal_size_limit) once every reader has moved on. Busy is not an error
 * here; anything else (a full disk while copying pages into the database
 * file) stops the run like any other database error. */
static int wal_checkpoint(writer_t *w, uint64_t now)
{
	if (ck_check(w) != 0)
		return -1;
	if (now - w->checkpoint_ms < WRITER_CHECKPOINT_MS)
		return 0;
	w->checkpoint_ms = now;
	if (w->ck_running) {
		ck_ask(w);
		return 0;
	}
	int rc = sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc == SQLITE_OK || (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return 0;
	return fatal_db(w);
}

/* At the end of a run: copy everything into the database file and cut the
 * WAL to zero bytes when no reader needs it, waiting for readers only
 * briefly; otherwise a PASSIVE checkpoint does what it can. */
static void wal_truncate(writer_t *w)
{
	ck_stop(w);
	sqlite3_busy_timeout(w->db, WRITER_TRUNCATE_WAIT_MS);
	int rc = sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (rc != SQLITE_OK)
		sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	busy_try_set(w);
}

static int tables_refresh(writer_t *w);
static int key_ensure(writer_t *w, wtable_t *t);

static int tx_begin(writer_t *w)
{
	if (w->in_tx)
		return 0;
	if (exec_retry(w, "BEGIN IMMEDIATE") != 0)
		return -1;
	w->in_tx = true;
	if (tables_refresh(w) != 0)
		return -1;
	w->tx_rows = w->tx_done = w->tx_failed = w->tx_bytes = 0;
	return 0;
}

/* The run's figures (`ringfill status`, "last run") move with the data they
 * count, in the same transaction. */
static int run_update(writer_t *w)
{
	sqlite3_stmt *s = w->upd_run;
	if (!s || !(w->tx_done || w->tx_failed || w->tx_rows))
		return 0;
	sqlite3_bind_double(s, 1, unix_now());
	sqlite3_bind_int64(s, 2, (int64_t)w->tx_done);
	sqlite3_bind_int64(s, 3, (int64_t)w->tx_failed);
	sqlite3_bind_int64(s, 4, (int64_t)w->tx_rows);
	sqlite3_bind_int64(s, 5, (int64_t)w->tx_bytes);
	sqlite3_bind_int64(s, 6, w->run_id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fatal_db(w);
}

/* Counters are relaxed: they are progress figures, read for display only and
 * never used to decide anything about the data. */
static int tx_commit(writer_t *w)
{
	if (!w->in_tx)
		return 0;
	if (run_update(w) != 0 || exec_retry(w, "COMMIT") != 0)
		return -1;
	w->in_tx = false;
	atomic_fetch_add_explicit(&w->pipe->rows_committed, w->tx_rows, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->pipe->jobs_done_committed, w->tx_done, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->pipe->jobs_failed_committed, w->tx_failed,
	                          memory_order_relaxed);
	return wal_checkpoint(w, now_ms());
}

/* The held batches are due for their commit (tx_held). */
static bool tx_due(const writer_t *w, uint64_t now)
{
	return w->held && (w->held_rows >= w->commit_rows || w->held_bytes >= WRITER_HELD_BYTES_MAX ||
	                   now - w->held_start_ms >= w->commit_ms);
}

/* ---- columns ----------------------------------------------------------- */

/* Remembers key → col as column number n_cols. taken: the column name's
 * entry in t->taken until now (MAP_ABSENT for a column we add). */
static int column_push(wtable_t *t, const char *key, size_t klen, const char *col, size_t clen,
                       uint32_t taken)
{
	if (t->n_cols == t->cap_cols) {
		uint32_t cap = t->cap_cols ? t->cap_cols * 2 : 64;
		column_t *c = realloc(t->cols, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		t->cols = c;
		t->cap_cols = cap;
	}
	column_t *c = &t->cols[t->n_cols];
	c->key = malloc(klen + 1);
	c->col = malloc(clen + 1);
	if (!c->key || !c->col || map_put(&t->keys, key, (uint32_t)klen, t->n_cols) != 0 ||
	    taken_put(t, col, clen, TAKEN_MAPPED) != 0) {
		free(c->key);
		free(c->col);
		return -ENOMEM;
	}
	memcpy(c->key, key, klen);
	c->key[klen] = '\0';
	memcpy(c->col, col, clen);
	c->col[clen] = '\0';
	c->key_len = (uint32_t)klen;
	c->aff = -1;
	c->key8 = 0;
	memcpy(&c->key8, key, klen < sizeof(c->key8) ? klen : sizeof(c->key8));
	c->key8_mask = klen < sizeof(c->key8) ? (UINT64_C(1) << (8 * klen)) - 1 : UINT64_MAX;
	c->taken_before = taken;
	t->n_cols++;
	return 0;
}

/* The column for a new key: the key itself (NUL bytes as '_', "" as "_"),
 * or with "_2", "_3"... when another key already holds that name in any
 * letter case (SQLite names are case-insensitive). A column of the table that
 * no key holds yet (a table made by hand) is adopted as it is, and so is, in
 * a table with declared columns, one that another spelling of the name
 * holds: there the names are the columns' (the job file keeps them apart
 * ignoring case), so "ID" is the column an earlier run's "id" made. Before
 * 2026-12-08 it got ID_2, the key's index moved to it, and upsert stored
 * every record again. *taken: the name's writer_t.taken entry, MAP_ABSENT
 * for a new column. */
static int column_name(wtable_t *t, const char *key, size_t klen, char *out, size_t *out_len,
                       uint32_t *taken)
{
	assert(klen <= BATCH_COLUMN_NAME_BYTES_MAX);
	size_t base = klen ? klen : 1;
	for (size_t i = 0; i < klen; i++)
		out[i] = key[i] ? key[i] : '_';
	if (!klen)
		out[0] = '_';
	*out_len = base;
	for (uint32_t suffix = 2; suffix < WRITER_COLUMN_SUFFIX_MAX; suffix++) {
		uint32_t held = taken_get(t, out, *out_len);
		bool declared = t->spec && t->spec->n_cols && suffix == 2;
		if (held == MAP_ABSENT || held == TAKEN_UNMAPPED || declared) {
			*taken = held;
			return 0;
		}
		*out_len = base + (size_t)snprintf(out + base, 12, "_%u", suffix);
	}
	return -ENOSPC;
}

/* A CREATE TABLE or ALTER TABLE ADD COLUMN of t failed: -E2BIG when it was
 * for SQLite's limit on columns (whose message would name the temporary
 * table of an ALTER, "sqlite_altertab_t", not t), else -1 with the error
 * in the connection. */
static int columns_refused(writer_t *w, wtable_t *t)
{
	if (strncmp(sqlite3_errmsg(w->db), "too many columns", 16) != 0)
		return -1;
	w->wide = t->name;
	return -E2BIG;
}

/* Adds the field's key to the map and returns its column number; with
 * alter, also adds the column to the table. The caller is inside the job's
 * savepoint, so columns_restore can undo all of it. */
static int column_add(writer_t *w, wtable_t *t, const batch_field_t *f, bool alter,
                      uint32_t *idx)
{
	char col[BATCH_COLUMN_NAME_BYTES_MAX + 16];
	size_t clen;
	uint32_t taken;
	int rc = column_name(t, f->name, f->name_len, col, &clen, &taken);
	if (rc == 0)
		rc = column_push(t, f->name, f->name_len, col, clen, taken);
	if (rc != 0)
		return rc;
	*idx = t->n_cols - 1;
	if (alter && taken == MAP_ABSENT) {
		w->sql.len = 0;
		if (sql_str(&w->sql, "ALTER TABLE ") || sql_ident(&w->sql, t->name, strlen(t->name)) ||
		    sql_str(&w->sql, " ADD COLUMN ") || sql_ident(&w->sql, col, clen) ||
		    sql_str(&w->sql, column_decl(t, f)) || !sql_end(w))
			return -ENOMEM;
		if (sqlite3_exec(w->db, w->sql.data, NULL, NULL, NULL) != SQLITE_OK)
			return columns_refused(w, t);
	}
	sqlite3_stmt *s = w->colmap_ins;
	sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, f->name, f->name_len, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, col, (int)clen, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void cache_flush(writer_t *w)
{
	for (uint32_t i = 0; i < WRITER_STMT_CACHE_MAX; i++) {
		sqlite3_finalize(w->cache[i].stmt);
		free(w->cache[i].cols);
	}
	memset(w->cache, 0, sizeof(w->cache));
	w->g_valid = false;
}

/* Remembers every table's columns at the job's savepoint. */
static void columns_mark(writer_t *w)
{
	for (uint32_t i = 0; i < w->n_tables; i++) {
		w->tables[i].sp_n_cols = w->tables[i].n_cols;
		w->tables[i].sp_exists = w->tables[i].exists;
	}
}

/* Forgets the columns added since a job's savepoint, which was rolled back. */
static void columns_restore(writer_t *w)
{
	for (uint32_t i = 0; i < w->n_tables; i++) {
		wtable_t *t = &w->tables[i];
		while (t->n_cols > t->sp_n_cols) {
			column_t *c = &t->cols[--t->n_cols];
			char low[BATCH_COLUMN_NAME_BYTES_MAX + 16];
			size_t clen = strlen(c->col);
			ascii_lower(low, c->col, clen);
			map_mark(&t->keys, c->key, c->key_len, MAP_ABSENT);
			map_mark(&t->taken, low, (uint32_t)clen, c->taken_before);
			free(c->key);
			free(c->col);
		}
		t->exists = t->sp_exists;
	}
	/* Cached statements name columns by number; the numbers will be reused. */
	cache_flush(w);
}

/* Reads the table's columns and, when the table exists, the key → column map
 * of earlier runs, so a re-run writes into the same columns. */
static int columns_load(writer_t *w, wtable_t *t)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(w->db, "SELECT name FROM pragma_table_info(?1)", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			t->exists = true;
			if (taken_put(t, (const char *)sqlite3_column_text(s, 0),
			              (size_t)sqlite3_column_bytes(s, 0), TAKEN_UNMAPPED) != 0)
				return fatal(w, "writer: out of memory");
		}
	}
	sqlite3_finalize(s);
	s = NULL;
	if (rc != SQLITE_DONE)
		return fatal_db(w);
	if (taken_put(t, "_job", 4, TAKEN_MAPPED) != 0)
		return fatal(w, "writer: out of memory");
	if (!t->exists)
		return 0;
	/* SQLite's table names ignore ASCII case, so "T" and "t" are one
	 * table: its map is found under either (NOCASE folds ASCII only, as
	 * SQLite's names do). A key mapped twice (a database with both) keeps
	 * its first column; an entry whose column the table no longer has (a
	 * table dropped and made again by hand) names nothing and is skipped. */
	rc = sqlite3_prepare_v2(w->db, "SELECT key, col FROM _ringfill_columns WHERE tbl=?1"
	                               " COLLATE NOCASE AND col IN (SELECT name FROM"
	                               " pragma_table_info(?1)) ORDER BY rowid", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			const char *key = (const char *)sqlite3_column_text(s, 0);
			size_t klen = (size_t)sqlite3_column_bytes(s, 0);
			if (map_get(&t->keys, key, (uint32_t)klen) != MAP_ABSENT)
				continue;
			if (column_push(t, key, klen, (const char *)sqlite3_column_text(s, 1),
			                (size_t)sqlite3_column_bytes(s, 1), MAP_ABSENT) != 0) {
				sqlite3_finalize(s);
				return fatal(w, "writer: out of memory");
			}
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fatal_db(w);
}

/* Forgets the table's columns and key map (the array stays, for reuse). */
static void table_columns_free(wtable_t *t)
{
	for (uint32_t c = 0; c < t->n_cols; c++) {
		free(t->cols[c].key);
		free(t->cols[c].col);
	}
	t->n_cols = 0;
	map_free(&t->keys);
	map_free(&t->taken);
}

/* PRAGMA data_version: 0 and *v, or -1 with the error in the connection. */
static int data_version_get(writer_t *w, int64_t *v)
{
	sqlite3_stmt *s = w->data_version_stmt;
	if (!s && sqlite3_prepare_v3(w->db, "PRAGMA data_version", -1, SQLITE_PREPARE_PERSISTENT,
	                             &w->data_version_stmt, NULL) != SQLITE_OK)
		return -1;
	s = w->data_version_stmt;
	int rc = sqlite3_step(s);
	*v = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Another process (a second ringfill on the same database, another source
 * with the same table) may have made a table, added columns or mapped keys
 * to them since this writer read them. Its view would then be wrong: a
 * table it thinks new would be "created" again, its column map wiped and
 * rebuilt (later values in the wrong columns), or a column added twice
 * (every such job failed for good, "duplicate column name"). So at each
 * BEGIN IMMEDIATE, which holds the write lock until COMMIT, a data_version
 * other than the last one known means some other connection committed:
 * every table's columns and map are read again (columns_load), and the
 * statements made for the old column numbers dropped. A run alone never
 * sees it change (its own commits do not count). 0, or -1 after a fatal
 * error. */
static int tables_refresh(writer_t *w)
{
	int64_t v;
	if (data_version_get(w, &v) != 0)
		return fatal_db(w);
	if (v == w->data_version)
		return 0;
	w->data_version = v;
	cache_flush(w);
	for (uint32_t i = 0; i < w->n_tables; i++) {
		wtable_t *t = &w->tables[i];
		table_columns_free(t);
		bool existed = t->exists;
		t->exists = false;
		if (columns_load(w, t) != 0)
			return -1;
		if (t->exists && !existed)
			t->ours = false; /* made by another: maybe not only by ringfill */
		/* Made or changed by another run (with another key, or none):
		 * this run's key, as at its start (keys_prepare); a table this
		 * run gives no key keeps whatever index another run made. */
		if (t->exists && t->spec->n_key && key_ensure(w, t) != 0)
			return -1;
	}
	return 0;
}

/* ---- keys --------------------------------------------------------------- */

/* The column that holds key column k of the table's spec (mapped by the
 * time the table exists: key_columns_add runs with its creation). */
static const char *key_col(const wtable_t *t, uint32_t k)
{
	const char *key = t->spec->key[k];
	uint32_t idx = map_get((strmap_t *)&t->keys, key, (uint32_t)strlen(key));
	return idx == MAP_ABSENT ? key : t->cols[idx].col;
}

/* Gives every key column a column even if no row has had it yet, so the
 * UNIQUE index can be made with the table. With alter, the table exists
 * and the columns are added to it. */
static int key_columns_add(writer_t *w, wtable_t *t, bool alter)
{
	for (uint32_t k = 0; k < t->spec->n_key; k++) {
		const char *key = t->spec->key[k];
		size_t len = strlen(key);
		if (map_get(&t->keys, key, (uint32_t)len) != MAP_ABSENT)
			continue;
		batch_field_t f = {.type = FIELD_NULL, .name = key, .name_len = (uint16_t)len};
		uint32_t idx;
		int rc = column_add(w, t, &f, alter, &idx);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* The name of table t's key index (WRITER_KEY_INDEX_PREFIX + its name),
 * malloc'd; NULL on out of memory. */
static char *key_index_name(const wtable_t *t)
{
	size_t tl = strlen(t->name);
	char *index = malloc(sizeof(WRITER_KEY_INDEX_PREFIX) + tl);
	if (!index)
		return NULL;
	memcpy(index, WRITER_KEY_INDEX_PREFIX, sizeof(WRITER_KEY_INDEX_PREFIX) - 1);
	memcpy(index + sizeof(WRITER_KEY_INDEX_PREFIX) - 1, t->name, tl + 1);
	return index;
}

/* An existing table's key index made for another key than the job file's
 * now (a key changed, or no key any more) is dropped: upsert and ignore
 * would find no index of their ON CONFLICT columns, and every other row
 * would still be held to the old key's uniqueness, failing every job for
 * good. key_index_create then makes the new one. 0, -ENOMEM, or -1 with
 * the error in the connection. */
static int key_index_refresh(writer_t *w, wtable_t *t)
{
	char *index = key_index_name(t);
	if (!index)
		return -ENOMEM;
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(w->db,
	                            "SELECT name FROM pragma_index_info(?1) ORDER BY seqno", -1,
	                            &s, NULL) == SQLITE_OK
	             ? 0
	             : -1;
	uint32_t n = 0;
	bool same = true;
	if (rc == 0) {
		sqlite3_bind_text(s, 1, index, -1, SQLITE_STATIC);
		int step;
		while ((step = sqlite3_step(s)) == SQLITE_ROW) {
			const char *col = (const char *)sqlite3_column_text(s, 0);
			same = same && n < t->spec->n_key && col &&
			       sqlite3_stricmp(col, key_col(t, n)) == 0;
			n++;
		}
		rc = step == SQLITE_DONE ? 0 : -1;
		sqlite3_finalize(s);
	}
	if (rc == 0 && n > 0 && (!same || n != t->spec->n_key)) { /* n 0: no such index */
		w->sql.len = 0;
		if (sql_str(&w->sql, "DROP INDEX ") || sql_ident(&w->sql, index, strlen(index)) ||
		    !sql_end(w))
			rc = -ENOMEM;
		else if (sqlite3_exec(w->db, w->sql.data, NULL, NULL, NULL) != SQLITE_OK)
			rc = -1;
	}
	free(index);
	return rc;
}

/* CREATE UNIQUE INDEX on the key columns: what upsert and ignore resolve
 * conflicts against. Its name is reserved (_ringfill_key_TABLE). */
static int key_index_create(writer_t *w, wtable_t *t)
{
	if (!t->spec->n_key)
		return 0;
	char *index = key_index_name(t);
	if (!index)
		return -ENOMEM;
	w->sql.len = 0;
	int rc = sql_str(&w->sql, "CREATE UNIQUE INDEX IF NOT EXISTS ") ||
	         sql_ident(&w->sql, index, strlen(index));
	free(index);
	if (rc || sql_str(&w->sql, " ON ") ||
	    sql_ident(&w->sql, t->name, strlen(t->name)) || sql_str(&w->sql, " ("))
		return -ENOMEM;
	for (uint32_t k = 0; k < t->spec->n_key; k++) {
		const char *col = key_col(t, k);
		if ((k && sql_str(&w->sql, ", ")) || sql_ident(&w->sql, col, strlen(col)))
			return -ENOMEM;
	}
	if (sql_str(&w->sql, ")") || !sql_end(w))
		return -ENOMEM;
	return sqlite3_exec(w->db, w->sql.data, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Tables that exist before the run (an earlier run, or made by hand) get
 * their key columns and index at start, in one transaction of their own. */
/* An existing table's key as the job file says: its index remade if it was
 * made for another key (or none now), missing key columns added, the index
 * made. Inside a transaction. 0, or -1 after a fatal error (the rows break
 * the key, or out of memory). */
static int key_ensure(writer_t *w, wtable_t *t)
{
	int rc = key_index_refresh(w, t);
	if (rc == 0)
		rc = key_columns_add(w, t, true);
	if (rc == 0)
		rc = key_index_create(w, t);
	if (rc == -ENOMEM)
		return fatal(w, "writer: out of memory");
	if (rc == -E2BIG) { /* the key's columns would pass SQLite's column limit */
		char msg[sizeof(w->pipe->fatal_msg)];
		snprintf(msg, sizeof(msg), "%s: table \"%s\": its key's columns would give it more "
		         "than %d columns, SQLite's limit", sqlite3_db_filename(w->db, "main"), t->name,
		         sqlite3_limit(w->db, SQLITE_LIMIT_COLUMN, -1));
		snprintf(w->pipe->fatal_hint, sizeof(w->pipe->fatal_hint),
		         "key the table by columns it has, or drop some of its columns, before "
		         "running it again");
		return fatal(w, msg);
	}
	if (rc != 0) {
		char msg[sizeof(w->pipe->fatal_msg)];
		snprintf(msg, sizeof(msg), "%s: table \"%s\": cannot make its key unique: %s",
		         sqlite3_db_filename(w->db, "main"), t->name, sqlite3_errmsg(w->db));
		if ((sqlite3_errcode(w->db) & 0xff) == SQLITE_CONSTRAINT)
			snprintf(w->pipe->fatal_hint, sizeof(w->pipe->fatal_hint),
			         "its rows hold the same key more than once: remove those rows, or the "
			         "table's \"key\" from the job file, before running it again");
		return fatal(w, msg);
	}
	return 0;
}

static int keys_prepare(writer_t *w)
{
	for (uint32_t i = 0; i < w->n_tables; i++) {
		wtable_t *t = &w->tables[i];
		if (!t->exists)
			continue;
		if (tx_begin(w) != 0 || key_ensure(w, t) != 0)
			return -1;
	}
	return tx_commit(w);
}

/* ---- rows -------------------------------------------------------------- */

/* Creates the target table from its first row: "_job" and one column per
 * field (a declared table's rows carry every column), each declared with
 * its job-file type or the type of its first value; then key columns no
 * row has yet, and the key's UNIQUE index. */
static int table_create(writer_t *w, wtable_t *t, const batch_field_t *fields, uint32_t nf)
{
	sqlite3_stmt *s;
	/* Map entries of a table that was dropped since would name columns the
	 * new table does not have. */
	if (sqlite3_prepare_v2(w->db, "DELETE FROM _ringfill_columns WHERE tbl=?1 COLLATE NOCASE",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return -1;
	t->exists = true;
	for (uint32_t i = 0; i < nf; i++)
		if ((rc = column_add(w, t, &fields[i], false, &w->row_cols[i])) != 0)
			return rc;
	uint32_t row_cols = t->n_cols;
	if ((rc = key_columns_add(w, t, false)) != 0)
		return rc;
	w->sql.len = 0;
	if (sql_str(&w->sql, "CREATE TABLE IF NOT EXISTS ") ||
	    sql_ident(&w->sql, t->name, strlen(t->name)) || sql_str(&w->sql, " (\"_job\" INTEGER"))
		return -ENOMEM;
	for (uint32_t i = 0; i < t->n_cols; i++) {
		const column_t *c = &t->cols[i];
		batch_field_t key_only = {.type = FIELD_NULL, .name = c->key,
		                          .name_len = (uint16_t)c->key_len};
		const batch_field_t *f = i < row_cols ? &fields[i] : &key_only;
		if (i < row_cols)
			c = &t->cols[w->row_cols[i]];
		if (sql_str(&w->sql, ", ") || sql_ident(&w->sql, c->col, strlen(c->col)) ||
		    sql_str(&w->sql, column_decl(t, f)))
			return -ENOMEM;
	}
	if (sql_str(&w->sql, ")") || !sql_end(w))
		return -ENOMEM;
	if (sqlite3_exec(w->db, w->sql.data, NULL, NULL, NULL) != SQLITE_OK)
		return columns_refused(w, t);
	t->ours = true;
	return key_index_create(w, t);
}

static int pair_cmp(const void *a, const void *b)
{
	const pair_t *x = a, *y = b;
	return (x->col > y->col) - (x->col < y->col);
}

/* Room for `entries` fields in w->fields and for rows of nf fields in the
 * column arrays. Grows only: after the first few jobs nothing is allocated. */
static int scratch_reserve(writer_t *w, size_t entries, uint32_t nf)
{
	entries = entries ? entries : 1; /* a row without fields still needs valid pointers */
	nf = nf ? nf : 1;
	if (entries > w->cap_fields) {
		size_t cap = entries > 2 * w->cap_fields ? entries : 2 * w->cap_fields;
		batch_field_t *f = realloc(w->fields, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		w->fields = f;
		w->cap_fields = cap;
	}
	if (nf > w->cap_cols) {
		pair_t *p = realloc(w->pairs, nf * sizeof(*p));
		if (p)
			w->pairs = p;
		uint32_t *g = realloc(w->g_cols, nf * sizeof(*g));
		if (g)
			w->g_cols = g;
		uint32_t *r = realloc(w->row_cols, nf * sizeof(*r));
		if (r)
			w->row_cols = r;
		uint32_t *q = realloc(w->g_param, nf * sizeof(*q));
		if (q)
			w->g_param = q;
		uint8_t *x = realloc(w->g_aff, nf);
		if (x)
			w->g_aff = x;
		if (!p || !g || !r || !q || !x)
			return -ENOMEM;
		w->cap_cols = nf;
	}
	return 0;
}

/* True when the row's fields name the group's columns in the group's order:
 * then the row joins the group without a map lookup (a memcmp per field). */
static bool layout_same(const writer_t *w, uint32_t table, const batch_field_t *f, uint32_t nf)
{
	if (!w->g_valid || table != w->g_table || nf != w->g_n)
		return false;
	const wtable_t *t = &w->tables[table];
	for (uint32_t i = 0; i < nf; i++) {
		const column_t *c = &t->cols[w->g_cols[i]];
		if (c->key_len != f[i].name_len || memcmp(c->key, f[i].name, c->key_len) != 0)
			return false;
	}
	return true;
}

/* The column numbers of the row's fields, in field order, into w->row_cols,
 * creating the table or adding columns for new keys. */
static int row_columns(writer_t *w, wtable_t *t, const batch_field_t *f, uint32_t nf)
{
	if (!t->exists)
		return table_create(w, t, f, nf);
	for (uint32_t i = 0; i < nf; i++) {
		uint32_t idx = map_get(&t->keys, f[i].name, f[i].name_len);
		int rc;
		if (idx == MAP_ABSENT && (rc = column_add(w, t, &f[i], true, &idx)) != 0)
			return rc;
		w->row_cols[i] = idx;
	}
	return 0;
}

/* The affinity SQLite gives a column declared `type` (its rules, in order). */
enum { AFF_BLOB, AFF_TEXT, AFF_NUMERIC, AFF_REAL };

static int affinity(const char *type)
{
	if (!type)
		type = "";
	if (strcasestr(type, "INT"))
		return AFF_NUMERIC;
	if (strcasestr(type, "CHAR") || strcasestr(type, "CLOB") || strcasestr(type, "TEXT"))
		return AFF_TEXT;
	if (!*type || strcasestr(type, "BLOB"))
		return AFF_BLOB;
	if (strcasestr(type, "REAL") || strcasestr(type, "FLOA") || strcasestr(type, "DOUB"))
		return AFF_REAL;
	return AFF_NUMERIC;
}

/* The affinity of column col of t, looked up once (declared types do not
 * change). A lookup that fails says BLOB: the value is bound as it is. */
static uint8_t column_aff(writer_t *w, wtable_t *t, uint32_t col)
{
	column_t *c = &t->cols[col];
	if (c->aff < 0) {
		const char *type = NULL;
		c->aff = sqlite3_table_column_metadata(w->db, "main", t->name, c->col, &type, NULL, NULL,
		                                       NULL, NULL) == SQLITE_OK
		             ? (int8_t)affinity(type)
		             : AFF_BLOB;
	}
	return (uint8_t)c->aff;
}

/* Makes the row just resolved (w->row_cols) the layout of a new group: its
 * column numbers sorted, each with the field that fills it. */
static void group_start(writer_t *w, uint32_t table, uint32_t nf)
{
	uint32_t *swap = w->g_cols;
	w->g_cols = w->row_cols;
	w->row_cols = swap;
	for (uint32_t i = 0; i < nf; i++)
		w->pairs[i] = (pair_t){w->g_cols[i], i};
	qsort(w->pairs, nf, sizeof(*w->pairs), pair_cmp);
	/* batch_add_rows never emits a name twice in a row; keys map to columns
	 * one to one, so columns cannot repeat either. */
	for (uint32_t i = 1; i < nf; i++)
		assert(w->pairs[i - 1].col < w->pairs[i].col);
	wtable_t *t = &w->tables[table];
	for (uint32_t i = 0; i < nf; i++)
		w->g_aff[i] = column_aff(w, t, w->g_cols[i]);
	w->g_table = table;
	w->g_n = nf;
	w->g_valid = true;
}

static bool is_key_col(const wtable_t *t, uint32_t col)
{
	for (uint32_t k = 0; k < t->spec->n_key; k++) {
		const char *key = t->spec->key[k];
		if (map_get((strmap_t *)&t->keys, key, (uint32_t)strlen(key)) == col)
			return true;
	}
	return false;
}

/* The conflict clause of the table's mode: upsert overwrites the stored
 * row's other columns (those this statement names, and _job) with the new
 * values; ignore keeps the stored row. */
static int insert_conflict(writer_t *w, const wtable_t *t, uint32_t n)
{
	if (t->spec->mode == TABLE_APPEND)
		return 0;
	if (sql_str(&w->sql, " ON CONFLICT ("))
		return -ENOMEM;
	for (uint32_t k = 0; k < t->spec->n_key; k++) {
		const char *col = key_col(t, k);
		if ((k && sql_str(&w->sql, ", ")) || sql_ident(&w->sql, col, strlen(col)))
			return -ENOMEM;
	}
	if (t->spec->mode == TABLE_IGNORE)
		return sql_str(&w->sql, ") DO NOTHING");
	if (sql_str(&w->sql, ") DO UPDATE SET \"_job\" = excluded.\"_job\""))
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		if (is_key_col(t, w->pairs[i].col))
			continue;
		const char *col = t->cols[w->pairs[i].col].col;
		if (sql_str(&w->sql, ", ") || sql_ident(&w->sql, col, strlen(col)) ||
		    sql_str(&w->sql, " = excluded.") || sql_ident(&w->sql, col, strlen(col)))
			return -ENOMEM;
	}
	return 0;
}

/* Rows per statement for rows of n columns: WRITER_ROWS_PER_STMT, or as
 * many as SQLite's parameter limit allows (1 when even one row passes it:
 * that statement then fails like any refused row). */
static uint32_t rows_per_stmt(const writer_t *w, uint32_t n)
{
	uint32_t m = w->vars_max / (n + 1);
	return m == 0 ? 1 : m < WRITER_ROWS_PER_STMT ? m : WRITER_ROWS_PER_STMT;
}

/* Appends "INSERT INTO t ("_job", cols...) VALUES (?, ...), ..." for `rows`
 * rows of the column set in w->pairs[0..n), and the mode's conflict clause.
 * With one_job, the rows of one job: every row's _job is ?1, bound once,
 * and row r's columns are ?(2 + r * n) on: (?1, ?2, ?3), (?1, ?4, ?5). */
static int insert_sql(writer_t *w, const wtable_t *t, uint32_t n, uint32_t rows, bool one_job)
{
	w->sql.len = 0;
	if (sql_str(&w->sql, "INSERT INTO ") || sql_ident(&w->sql, t->name, strlen(t->name)) ||
	    sql_str(&w->sql, " (\"_job\""))
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const char *col = t->cols[w->pairs[i].col].col;
		if (sql_str(&w->sql, ", ") || sql_ident(&w->sql, col, strlen(col)))
			return -ENOMEM;
	}
	if (sql_str(&w->sql, ") VALUES "))
		return -ENOMEM;
	for (uint32_t r = 0; r < rows; r++) {
		if (sql_str(&w->sql, r ? ", (?" : "(?") || (one_job && sql_str(&w->sql, "1")))
			return -ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			char num[16] = ", ?";
			if (one_job)
				snprintf(num, sizeof(num), ", ?%u", 2 + r * n + i);
			if (sql_str(&w->sql, num))
				return -ENOMEM;
		}
		if (sql_str(&w->sql, ")"))
			return -ENOMEM;
	}
	return insert_conflict(w, t, n) || !sql_end(w) ? -ENOMEM : 0;
}

/* The INSERT of `rows` rows for the table and the column set in
 * w->pairs[0..n), cached (LRU). Each column set needs at most one
 * statement per row count that insert_group uses (100, 64, 32, ..., 1), one
 * for rows of one job and one for rows of several (none for a single row). */
static int insert_stmt(writer_t *w, uint32_t table, uint32_t n, uint32_t rows, bool one_job,
                       sqlite3_stmt **out)
{
	const wtable_t *t = &w->tables[table];
	uint64_t h = hash_bytes(&table, sizeof(table), 14695981039346656037u);
	h = hash_bytes(&rows, sizeof(rows), h) ^ one_job;
	for (uint32_t i = 0; i < n; i++)
		h = hash_bytes(&w->pairs[i].col, sizeof(uint32_t), h);
	stmt_entry_t *victim = &w->cache[0];
	for (uint32_t i = 0; i < WRITER_STMT_CACHE_MAX; i++) {
		stmt_entry_t *e = &w->cache[i];
		if (e->stmt && e->hash == h && e->n == n && e->rows == rows && e->table == table &&
		    e->one_job == one_job) {
			uint32_t k = 0;
			while (k < n && e->cols[k] == w->pairs[k].col)
				k++;
			if (k == n) {
				e->used = ++w->cache_clock;
				*out = e->stmt;
				return 0;
			}
		}
		if (e->used < victim->used)
			victim = e;
	}
	sqlite3_finalize(victim->stmt);
	free(victim->cols);
	memset(victim, 0, sizeof(*victim));
	if (insert_sql(w, t, n, rows, one_job) != 0 || !(victim->cols = malloc((n + 1) * 4)))
		return -ENOMEM;
	if (sqlite3_prepare_v3(w->db, w->sql.data, -1, SQLITE_PREPARE_PERSISTENT, &victim->stmt,
	                       NULL) != SQLITE_OK)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		victim->cols[i] = w->pairs[i].col;
	victim->n = n;
	victim->rows = rows;
	victim->one_job = one_job;
	victim->table = table;
	victim->hash = h;
	victim->used = ++w->cache_clock;
	*out = victim->stmt;
	return 0;
}

/* Binds one field's value as parameter p. Text is bound SQLITE_STATIC: it
 * points into the batch, which lives until after the step, and every
 * parameter is bound again before the next step. */
/* A double bound to a column of TEXT affinity: SQLite would store it as
 * text of 15 significant digits (3.141592653589793 as "3.14159265358979"),
 * silently another value. Bound as the shortest text that reads back as
 * the same double instead, ".0" added to a whole number as SQLite writes
 * one. Infinities go as they are. */
static void bind_real_as_text(sqlite3_stmt *s, int p, double x)
{
	char buf[40];
	if (!isfinite(x)) {
		sqlite3_bind_double(s, p, x);
		return;
	}
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(buf, sizeof buf, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	if (!strpbrk(buf, ".e"))
		n += snprintf(buf + n, sizeof buf - (size_t)n, ".0");
	sqlite3_bind_text(s, p, buf, n, SQLITE_TRANSIENT);
}

static inline bool sql_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r'); /* sqlite3Isspace */
}

/* SQLite's own reading of numeric text (sqlite3AtoF, as REAL affinity and
 * CAST read it), for text whose size the estimate below cannot trust:
 * whether it makes infinity. */
static bool sqlite_reads_infinite(sqlite3 *db, const char *s, size_t n)
{
	sqlite3_stmt *q;
	bool inf = false;
	if (n > INT32_MAX ||
	    sqlite3_prepare_v2(db, "SELECT CAST(?1 AS REAL)", -1, &q, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(q, 1, s, (int)n, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		inf = isinf(sqlite3_column_double(q, 0));
	sqlite3_finalize(q);
	return inf;
}

/* Whether SQLite reads the decimal number s[0..n) (no spaces around it) as
 * infinity: estimated from its digits and exponent, or asked of db where
 * the text is too long, or its exponent too large, for the estimate to match
 * SQLite's reading (which stops at exponent 10000 and counts the digits past
 * 19). False for text that is no number ("12abc", "1e"). */
static bool number_infinite(sqlite3 *db, const char *s, size_t n)
{
	size_t i = s[0] == '-' || s[0] == '+';
	while (i < n && s[i] == '0')
		i++;
	size_t d0 = i; /* the first significant digit of the integer part */
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	size_t int_digits = i - d0, zeros = 0; /* zeros: the fraction's before its first digit */
	bool any = i > (size_t)(s[0] == '-' || s[0] == '+');
	const char *sig = int_digits ? s + d0 : NULL; /* the first significant digit */
	if (i < n && s[i] == '.') {
		size_t f0 = ++i;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
			if (!sig && s[i] != '0')
				sig = s + i;
			else if (!sig)
				zeros++;
		}
		any = any || i > f0;
	}
	if (!any)
		return false;
	long long exp = 0;
	size_t exp_digits = 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		bool eneg = i < n && s[i] == '-';
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, exp_digits++)
			if (exp < 100000)
				exp = exp * 10 + (s[i] - '0');
		if (!exp_digits)
			return false; /* "1e" is text */
		exp = eneg ? -exp : exp;
	}
	if (i != n || !sig)
		return false; /* "12abc" is text; zero is zero */
	if (n > 300 || exp_digits > 4)
		return sqlite_reads_infinite(db, s, n);
	/* The decimal exponent of the first significant digit: 10^mag <= |x|. */
	long long mag = (int_digits ? (long long)int_digits - 1 : -(long long)zeros - 1) + exp;
	if (mag != DBL_MAX_10_EXP)
		return mag > DBL_MAX_10_EXP;
	/* 1e308 to 9.99e308: the first digits decide, through strtod. */
	char buf[48];
	size_t k = 0;
	for (const char *p = sig; p < s + n && k < 40; p++) {
		if (*p == '.')
			continue;
		if (*p < '0' || *p > '9')
			break;
		buf[k++] = *p;
		if (k == 1)
			buf[k++] = '.'; /* d.ddd */
	}
	snprintf(buf + k, sizeof(buf) - k, "e%d", DBL_MAX_10_EXP);
	return isinf(strtod(buf, NULL));
}

/* Text s[0..n) bound into a column of numeric affinity (aff AFF_NUMERIC or
 * AFF_REAL), which SQLite turns into a number when it reads as one
 * (sqlite3AtoF: spaces around, a sign, digits with an optional '.', an
 * optional exponent): -EDOM when its magnitude is beyond a double's (SQLite
 * keeps infinity); -ERANGE when it is a whole number beyond int64 and the
 * column is INTEGER or NUMERIC ("18446744073709551615", or with ".0" or an
 * exponent: SQLite keeps a REAL of its first 15 digits); else 0. Either
 * way distinct strings (ids) would meet. */
static int text_number_lossy(sqlite3 *db, const char *s, size_t n, uint8_t aff)
{
	size_t a = 0, b = n;
	while (a < b && sql_space(s[a]))
		a++;
	if (a == b || !((s[a] >= '0' && s[a] <= '9') || s[a] == '-' || s[a] == '+' || s[a] == '.'))
		return 0; /* the usual text: not a number */
	while (b > a && sql_space(s[b - 1]))
		b--;
	if (number_infinite(db, s + a, b - a))
		return -EDOM;
	int64_t v;
	if (aff == AFF_NUMERIC && batch_decimal_whole(s + a, b - a, &v) == BATCH_WHOLE_BEYOND)
		return -ERANGE;
	return 0;
}

/* aff: the affinity of the field's column (w->g_aff). -ERANGE: the digits
 * of an integer beyond int64 for a column of INTEGER or NUMERIC affinity,
 * where SQLite would keep only a REAL of 15 digits (distinct keys would
 * meet), whether they came as a JSON number or as a string; a REAL column
 * takes its double, as it takes any number's. -EDOM: a number beyond a
 * double's range (1e500, or 400 digits) for a column of REAL, INTEGER or
 * NUMERIC affinity, which would keep infinity: every such value would be
 * one. A TEXT column keeps both as written. -ENOMEM: no memory for a long
 * number's digits. */
#define BIGINT_REAL_DIGITS_MAX 400u /* digits strtod reads from the stack */
static inline int field_bind(sqlite3_stmt *s, int p, const batch_field_t *f, uint8_t aff)
{
	int64_t v;
	double x;
	switch (f->type) {
	case FIELD_INT:
		memcpy(&v, f->value, sizeof(v));
		sqlite3_bind_int64(s, p, v);
		break;
	case FIELD_REAL:
		memcpy(&x, f->value, sizeof(x));
		if (aff == AFF_TEXT)
			bind_real_as_text(s, p, x);
		else
			sqlite3_bind_double(s, p, x);
		break;
	case FIELD_BIGINT: /* its digits, as text; a REAL column's double */
		if (aff == AFF_NUMERIC)
			return -ERANGE;
		if (aff == AFF_REAL) {
			/* Its double, as for any number (the text may be long: a
			 * declared integer's "000...1e30"). */
			char small[BIGINT_REAL_DIGITS_MAX + 1];
			char *digits = f->value_len < sizeof(small) ? small : malloc(f->value_len + 1);
			if (!digits)
				return -ENOMEM;
			memcpy(digits, f->value, f->value_len);
			digits[f->value_len] = '\0';
			x = strtod(digits, NULL);
			if (digits != small)
				free(digits);
			if (isinf(x))
				return -EDOM;
			sqlite3_bind_double(s, p, x);
			break;
		}
		if (f->value_len > INT32_MAX)
			return -EFBIG;
		sqlite3_bind_text(s, p, f->value, (int)f->value_len, SQLITE_STATIC);
		break;
	case FIELD_TEXT:
	case FIELD_JSON: /* a number of a `json` column, in a table made by hand */
		if (aff == AFF_NUMERIC || aff == AFF_REAL) {
			int lossy = text_number_lossy(sqlite3_db_handle(s), f->value, f->value_len, aff);
			if (lossy)
				return lossy;
		}
		if (f->value_len > INT32_MAX)
			return -EFBIG;
		sqlite3_bind_text(s, p, f->value, (int)f->value_len, SQLITE_STATIC);
		break;
	case FIELD_BOOL:
		sqlite3_bind_int(s, p, f->value[0] != 0);
		break;
	case FIELD_NULL:
		sqlite3_bind_null(s, p);
		break;
	}
	return 0;
}

/* Binds one decoded row's fields (rows_insert) from parameter p + 1 on, in
 * the statement's column order, and its job as parameter p unless job_id is
 * NULL (a one_job statement). */
static int row_bind(writer_t *w, sqlite3_stmt *s, int p, const int64_t *job_id,
                    const batch_field_t *row)
{
	if (job_id)
		sqlite3_bind_int64(s, p, *job_id);
	p++;
	for (uint32_t i = 0; i < w->g_n; i++, p++) {
		uint32_t field = w->pairs[i].field;
		int rc = field_bind(s, p, &row[field], w->g_aff[field]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Binds a held row (tx_insert) straight from its batch's encoding: the
 * fields in their order, each to its parameter p + w->g_param[field], with
 * no decoded copy in between; and its job as parameter p unless the
 * statement is one_job. */
static int row_bind_held(writer_t *w, sqlite3_stmt *s, int p, bool job, const hrow_t *r)
{
	const char *d = r->b->rows.data + r->pos;
	if (job)
		sqlite3_bind_int64(s, p, r->b->job_id);
	for (uint32_t i = 0; i < w->g_n; i++) {
		batch_field_t f;
		d = batch_field_at(d, &f);
		int rc = field_bind(s, p + (int)w->g_param[i], &f, w->g_aff[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Inserts the group's rows [first, first + rows) with one statement: the
 * held rows held[first..] (tx_insert), or with held NULL the decoded rows
 * in w->fields, each with its job in w->g_jobs (rows_insert). Rows go in
 * the group's order, so rowids and upsert/ignore outcomes are those of one
 * INSERT per row: SQLite applies a multi-row VALUES row by row, and a row
 * sees the rows inserted before it by the same statement. */
static int insert_rows(writer_t *w, const hrow_t *held, uint32_t first, uint32_t rows)
{
	/* Rows of one job (most statements: a document's records are
	 * consecutive) bind it once, as ?1, not once per row. */
	int64_t job = held ? held[first].b->job_id : w->g_jobs[first];
	bool one_job = rows > 1;
	for (uint32_t r = 1; r < rows && one_job; r++)
		one_job = (held ? held[first + r].b->job_id : w->g_jobs[first + r]) == job;
	sqlite3_stmt *s;
	int rc = insert_stmt(w, w->g_table, w->g_n, rows, one_job, &s);
	if (rc != 0)
		return rc;
	if (one_job)
		sqlite3_bind_int64(s, 1, job);
	int per_row = (int)w->g_n + !one_job;
	for (uint32_t r = 0; r < rows; r++)
		if ((rc = held ? row_bind_held(w, s, 1 + (int)r * per_row, !one_job, &held[first + r])
		               : row_bind(w, s, 1 + (int)r * per_row,
		                          one_job ? NULL : &w->g_jobs[first + r],
		                          w->fields + (size_t)(first + r) * w->g_n)) != 0)
			return rc;
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Inserts the group's first `rows` rows (held: as insert_rows): full
 * statements of rows_per_stmt rows, then the rest by powers of two (99 =
 * 64 + 32 + 2 + 1), so each column set needs at most eight row counts, 15
 * cached statements (insert_stmt)
 * whatever the job sizes. */
static int insert_group(writer_t *w, const hrow_t *held, uint32_t rows)
{
	uint32_t full = rows_per_stmt(w, w->g_n);
	assert(rows <= full && full <= WRITER_ROWS_PER_STMT);
	for (uint32_t done = 0; done < rows;) {
		uint32_t left = rows - done;
		uint32_t k = left >= full ? full : 1u << (31 - __builtin_clz(left));
		int rc = insert_rows(w, held, done, k);
		if (rc != 0)
			return rc;
		done += k;
	}
	return 0;
}

/* Inserts the batch's rows. Consecutive rows for one table with the same
 * fields in the same order form a group, inserted rows_per_stmt at a time;
 * a row with another layout first inserts the group before it, so every
 * table receives its rows in batch order. A row is read straight after the
 * group's rows in w->fields and moved to the front when it starts a group. */
static int rows_insert(writer_t *w, const batch_t *b)
{
	batch_iter_t it;
	int nf, rc;
	uint32_t g_rows = 0; /* rows of the current group in w->fields */
	batch_iter_init(&it, b);
	while ((nf = batch_next_row(&it)) >= 0) {
		assert(it.table < w->n_tables);
		uint32_t n = (uint32_t)nf;
		size_t base = (size_t)g_rows * w->g_n;
		if ((rc = scratch_reserve(w, base + n, n)) != 0)
			return rc;
		batch_field_t *f = w->fields + base;
		for (uint32_t i = 0; i < n; i++)
			batch_next_field(&it, &f[i]);
		if (!layout_same(w, it.table, f, n)) {
			if ((rc = row_columns(w, &w->tables[it.table], f, n)) != 0)
				return rc;
			if (g_rows && (rc = insert_group(w, NULL, g_rows)) != 0)
				return rc;
			memmove(w->fields, f, n * sizeof(*f));
			group_start(w, it.table, n);
			g_rows = 0;
		}
		w->g_jobs[g_rows++] = b->job_id;
		w->tx_rows++;
		if (g_rows == rows_per_stmt(w, w->g_n)) {
			if ((rc = insert_group(w, NULL, g_rows)) != 0)
				return rc;
			g_rows = 0;
		}
	}
	return g_rows ? insert_group(w, NULL, g_rows) : 0;
}

/* ---- jobs -------------------------------------------------------------- */

static void bind_text_or_null(sqlite3_stmt *s, int p, const char *t)
{
	if (t && *t)
		sqlite3_bind_text(s, p, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, p);
}

static void bind_status(sqlite3_stmt *s, int p, int http_status)
{
	if (http_status > 0)
		sqlite3_bind_int(s, p, http_status);
	else
		sqlite3_bind_null(s, p);
}

/* Marks the job failed unless it is already done; cls and error may differ
 * from the batch's when the database refused the job's rows. */
static int job_failed(writer_t *w, const batch_t *b, error_class_t cls, const char *error)
{
	sqlite3_stmt *s = w->upd_failed;
	sqlite3_bind_int(s, 1, b->attempts);
	bind_status(s, 2, b->http_status);
	sqlite3_bind_text(s, 3, cls == ERROR_CLASS_TRANSIENT ? "transient" : "permanent", -1,
	                  SQLITE_STATIC);
	sqlite3_bind_text(s, 4, *error ? error : "failed (no reason given)", -1, SQLITE_STATIC);
	bind_text_or_null(s, 5, b->raw_path);
	sqlite3_bind_double(s, 6, unix_now());
	sqlite3_bind_int64(s, 7, b->job_id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return fatal_db(w);
	w->tx_failed += (uint64_t)sqlite3_changes(w->db);
	return 0;
}

/* Errors that concern this job's rows (too many columns, a value too big, a
 * constraint of a hand-made table) fail the job; the others stop the run. */
static bool job_level_error(int rc, int sqlite_rc)
{
	if (rc == -EFBIG || rc == -ERANGE || rc == -EDOM || rc == -ELOOP || rc == -E2BIG)
		return true;
	if (rc != -1)
		return false;
	switch (sqlite_rc & 0xff) {
	case SQLITE_ERROR:
	case SQLITE_TOOBIG:
	case SQLITE_RANGE:
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
		return true;
	}
	return false;
}

/* 1 when this statement moved the job to done, 0 when it was done already,
 * -1 on a database error (left in the connection). */
static int job_mark_done(writer_t *w, const batch_t *b)
{
	sqlite3_stmt *s = b->streamed ? w->upd_done_ckpt : w->upd_done;
	if (b->streamed)
		sqlite3_bind_int64(s, 8, (int64_t)b->ckpt_from);
	sqlite3_bind_int(s, 1, b->attempts);
	bind_status(s, 2, b->http_status);
	sqlite3_bind_int64(s, 3, (int64_t)b->body_bytes);
	bind_text_or_null(s, 4, b->sha256_hex);
	bind_text_or_null(s, 5, b->raw_path);
	sqlite3_bind_double(s, 6, unix_now());
	sqlite3_bind_int64(s, 7, b->job_id);
	bind_text_or_null(s, 9, b->content_encoding);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return -1;
	if (sqlite3_changes(w->db) != 1)
		return 0;
	w->tx_done++;
	w->tx_bytes += b->body_bytes;
	return 1;
}

/* A streamed NDJSON job's checkpoint: 1 when this statement moved it from
 * the checkpoint the batch continues (ckpt_from records) to the new one, 0
 * when it had moved already or is no longer pending (the rows must not go in
 * twice), -1 on a database error. The job stays pending. */
static int job_mark_ckpt(writer_t *w, const batch_t *b)
{
	sqlite3_stmt *s = w->upd_ckpt;
	sqlite3_bind_int64(s, 1, (int64_t)b->ckpt_offset);
	sqlite3_bind_int64(s, 2, (int64_t)b->ckpt_records);
	bind_text_or_null(s, 3, b->ckpt_validator);
	sqlite3_bind_double(s, 4, unix_now());
	sqlite3_bind_int64(s, 5, b->job_id);
	sqlite3_bind_int64(s, 6, (int64_t)b->ckpt_from);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return -1;
	return sqlite3_changes(w->db) == 1 ? 1 : 0;
}

/* Runs one of the prepared savepoint statements. */
static int savepoint_step(writer_t *w, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fatal_db(w);
}

/* The job's state update and its rows, inside a savepoint: rows the database
 * rejects half-way (too many columns, a value too big) leave nothing behind,
 * and the job is recorded as failed instead. The savepoint statements are
 * prepared once: a job costs three small statements besides its INSERTs. */
static int job_rows(writer_t *w, const batch_t *b)
{
	columns_mark(w);
	uint64_t tx_rows = w->tx_rows, tx_done = w->tx_done, tx_bytes = w->tx_bytes;
	if (savepoint_step(w, w->sp_begin) != 0)
		return -1;
	bool ckpt = b->kind == BATCH_JOB_CHECKPOINT;
	int rc = ckpt ? job_mark_ckpt(w, b) : job_mark_done(w, b);
	bool made_done = !ckpt && rc == 1;
	if (rc == 1)
		rc = rows_insert(w, b);
	char loop_why[BATCH_ERROR_BYTES_MAX];
	if (rc == 0 && made_done && b->n_emit) { /* the page's jobs, with its done state */
		int er = store_jobs_emit(w->st, w->source, b, loop_why, sizeof(loop_why));
		rc = er == 1 ? -ELOOP : er;
	}
	if (rc >= 0)
		return savepoint_step(w, w->sp_release);
	if (rc == -ENOMEM)
		return fatal(w, "writer: out of memory");
	if (!job_level_error(rc, sqlite3_errcode(w->db)))
		return fatal_db(w);
	char error[BATCH_ERROR_BYTES_MAX];
	if (rc == -ELOOP)
		snprintf(error, sizeof(error), "%s", loop_why);
	else if (rc == -E2BIG)
		snprintf(error, sizeof(error),
		         "database refused the rows: table \"%s\" would have more than %d columns, "
		         "SQLite's limit (name the columns to keep in the job file's \"columns\")",
		         w->wide, sqlite3_limit(w->db, SQLITE_LIMIT_COLUMN, -1));
	else
		snprintf(error, sizeof(error), "database refused the rows: %s",
		         rc == -EFBIG    ? "value longer than 2 GiB"
		         : rc == -ERANGE ? "an integer beyond 64 bits for a column of INTEGER or "
		                           "NUMERIC affinity, which would keep only its first 15 "
		                           "digits; declare the column \"type\": \"text\" to keep "
		                           "them all"
		         : rc == -EDOM ? "a number beyond the range of a double (about 1.8e308) for a "
		                         "column of REAL, INTEGER or NUMERIC affinity, which would keep "
		                         "infinity; declare the column \"type\": \"text\" to keep it"
		                       : sqlite3_errmsg(w->db));
	if (savepoint_step(w, w->sp_rollback) != 0 || savepoint_step(w, w->sp_release) != 0)
		return -1;
	columns_restore(w);
	w->tx_rows = tx_rows;
	w->tx_done = tx_done;
	w->tx_bytes = tx_bytes;
	return job_failed(w, b, ERROR_CLASS_PERMANENT, error);
}

/* The state first, and the rows only when this transaction is the one that
 * made the job done: a job can never have its rows inserted twice. */
static int job_done(writer_t *w, const batch_t *b)
{
	if (b->n_rows || b->n_emit)
		return job_rows(w, b);
	int rc = job_mark_done(w, b);
	return rc < 0 ? fatal_db(w) : 0;
}

/* Applies one batch on its own in the open transaction: the path of a
 * transaction whose rows the database refused (tx_apply_jobwise). 0, or -1
 * after a fatal error. */
static int batch_apply(writer_t *w, const batch_t *b)
{
	assert(w->in_tx && b->kind != BATCH_END);
	if (b->kind == BATCH_JOB_DONE)
		return job_done(w, b);
	if (b->kind == BATCH_JOB_CHECKPOINT) /* rows and checkpoint in this transaction */
		return job_rows(w, b);
	assert(b->kind == BATCH_JOB_FAILED);
	return job_failed(w, b, b->error_class, b->error);
}

/* ---- the transaction: held batches, rows in key order ------------------------
 * A transaction begins at its first batch and keeps every batch until its
 * commit (tx_hold, tx_held). As a batch arrives: its job's state, then its
 * rows resolved to columns in arrival order (so columns are added and named
 * as one job at a time would); rowid-table rows are inserted in arrival
 * order a few thousand at a time, across jobs; keyed-table (upsert, ignore)
 * rows wait. At the commit they are sorted by key, stably (the same key
 * keeps arrival order, so the last row wins an upsert and the first an
 * ignore, as in arrival order), inserted, and the transaction commits.
 * Sorted rows walk the key's index B-tree in order instead of jumping around
 * it. When the database refuses a row, the whole transaction is undone and
 * the held batches are applied again one job at a time, each in a savepoint
 * (the path above), so only the jobs at fault fail. */

#define GROW(arr, n, cap, want)                                                         \
	grow((void **)&(arr), &(cap), (n) + (want), sizeof(*(arr)))

/* Room for `need` elements of `size` bytes in *arr (doubling). */
static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 1024;
	while (c < need)
		c *= 2;
	void *p = realloc(*arr, c * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

static int int_real_cmp(int64_t i, double r)
{
	/* Exact, as SQLite compares an INTEGER with a REAL: comparing through a
	 * double would call 2^53 + 1 equal to both 2^53 and 2^53 + 2.0. */
	if (r < -9223372036854775808.0)
		return 1;
	if (r >= 9223372036854775808.0)
		return -1;
	int64_t y = (int64_t)r; /* toward zero; exact when r has a fraction */
	if (i != y)
		return i < y ? -1 : 1;
	return r > (double)y ? -1 : r < (double)y ? 1 : 0;
}

static int key_cmp(const hkey_t *a, const hkey_t *b)
{
	if (a->cls != b->cls)
		return a->cls < b->cls ? -1 : 1;
	if (a->cls == KEY_NULL)
		return 0;
	if (a->cls == KEY_NUM) {
		if (!a->real && !b->real)
			return (a->v.i > b->v.i) - (a->v.i < b->v.i);
		if (a->real && b->real)
			return (a->v.r > b->v.r) - (a->v.r < b->v.r);
		return a->real ? -int_real_cmp(b->v.i, a->v.r) : int_real_cmp(a->v.i, b->v.r);
	}
	uint32_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->v.s, b->v.s, n) : 0;
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* A 64-bit image of a key value that never orders two values against
 * key_cmp (a < b by prefix means a < b), so most comparisons of the sort end
 * on it: the class in the top two bits, then for numbers the floor of the
 * value (sign bit flipped, so unsigned order is numeric order) and for text
 * its first bytes, each cut to 62 bits. Equal prefixes fall back to key_cmp. */
static uint64_t key_prefix(const hkey_t *k)
{
	uint64_t v = 0;
	if (k->cls == KEY_NUM) {
		int64_t i = k->v.i;
		if (k->real) /* floor, clamped to int64 (NaN never comes from JSON) */
			i = k->v.r < -9223372036854775808.0   ? INT64_MIN
			    : k->v.r >= 9223372036854775808.0 ? INT64_MAX
			    : (int64_t)k->v.r - ((double)(int64_t)k->v.r > k->v.r);
		v = ((uint64_t)i ^ (1ull << 63)) >> 2;
	} else if (k->cls == KEY_TEXT) {
		if (k->len >= 8) { /* one load, bytes in memcmp order */
			memcpy(&v, k->v.s, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			v = __builtin_bswap64(v);
#endif
		} else {
			for (uint32_t j = 0; j < 8; j++)
				v = v << 8 | (j < k->len ? (uint8_t)k->v.s[j] : 0);
		}
		v >>= 2;
	}
	return (uint64_t)k->cls << 62 | v;
}

/* Table, then (keyed tables) key, then arrival: a total order, so qsort
 * sorts stably. */
static int hrow_cmp(const void *pa, const void *pb, void *ctx)
{
	const writer_t *w = ctx;
	const hrow_t *a = pa, *b = pb;
	if (a->table != b->table)
		return a->table < b->table ? -1 : 1;
	if (!w->tables[a->table].by_key)
		return (a->seq > b->seq) - (a->seq < b->seq);
	if (a->prefix != b->prefix)
		return a->prefix < b->prefix ? -1 : 1;
	const table_spec_t *sp = w->tables[a->table].spec;
	for (uint32_t k = 0; sp->mode != TABLE_APPEND && k < sp->n_key; k++) {
		int c = key_cmp(&w->hkeys[a->key + k], &w->hkeys[b->key + k]);
		if (c)
			return c;
	}
	return (a->seq > b->seq) - (a->seq < b->seq);
}

static bool table_sorted(const wtable_t *t)
{
	return t->spec->mode != TABLE_APPEND && t->spec->n_key > 0;
}

static hkey_t key_of(const batch_field_t *f)
{
	hkey_t k = {.cls = KEY_NULL};
	switch (f ? f->type : FIELD_NULL) {
	case FIELD_INT:
		k.cls = KEY_NUM;
		memcpy(&k.v.i, f->value, sizeof(k.v.i));
		break;
	case FIELD_BOOL:
		k.cls = KEY_NUM;
		k.v.i = f->value[0] != 0;
		break;
	case FIELD_REAL:
		k.cls = KEY_NUM;
		k.real = true;
		memcpy(&k.v.r, f->value, sizeof(k.v.r));
		break;
	case FIELD_TEXT:
	case FIELD_JSON:
	case FIELD_BIGINT:
		k.cls = KEY_TEXT;
		k.v.s = f->value;
		k.len = f->value_len;
		break;
	case FIELD_NULL:
		break;
	}
	return k;
}

/* True when the fields name the layout's columns in its order. */
static bool layout_match(const writer_t *w, const layout_t *l, const batch_field_t *f,
                         uint32_t nf)
{
	if (nf != l->n)
		return false;
	const wtable_t *t = &w->tables[l->table];
	const uint32_t *cols = w->lay_u32 + l->cols_at;
	for (uint32_t i = 0; i < nf; i++) {
		const column_t *c = &t->cols[cols[i]];
		if (c->key_len != f[i].name_len || memcmp(c->key, f[i].name, c->key_len) != 0)
			return false;
	}
	return true;
}

/* Like layout_match, on a row's encoding at p (its first field; end: the
 * end of the batch's encoding) without decoding it: the byte after the row
 * when its fields name the layout's columns in its order, else NULL. A
 * name of up to 8 bytes is compared as one word (column_t.key8) when 8
 * bytes can be read there; the encoding after a name (its value's length,
 * then the value) is in the batch, so only the batch's last field may not. */
static const char *layout_walk(const writer_t *w, const layout_t *l, const char *p,
                               const char *end, uint32_t nf)
{
	static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "key8 masks the low bytes");
	if (nf != l->n)
		return NULL;
	const wtable_t *t = &w->tables[l->table];
	const uint32_t *cols = w->lay_u32 + l->cols_at;
	for (uint32_t i = 0; i < nf; i++) {
		const column_t *c = &t->cols[cols[i]];
		uint16_t name_len;
		uint32_t value_len;
		memcpy(&name_len, p + 1, sizeof(name_len));
		if (name_len != c->key_len)
			return NULL;
		const char *name = p + 3;
		if (name_len <= sizeof(uint64_t) && end - name >= (ptrdiff_t)sizeof(uint64_t)) {
			uint64_t v;
			memcpy(&v, name, sizeof(v));
			if ((v & c->key8_mask) != c->key8)
				return NULL;
		} else if (memcmp(name, c->key, name_len) != 0) {
			return NULL;
		}
		memcpy(&value_len, name + name_len, sizeof(value_len));
		p = name + name_len + sizeof(value_len) + value_len;
	}
	return p;
}

/* Two layouts that insert the same columns from the same field positions
 * share statements, so their rows may share a group. */
static bool layout_equal(const writer_t *w, uint32_t a, uint32_t b)
{
	const layout_t *x = &w->layouts[a], *y = &w->layouts[b];
	return a == b || (x->table == y->table && x->n == y->n &&
	                  memcmp(w->lay_u32 + x->cols_at, w->lay_u32 + y->cols_at,
	                         x->n * sizeof(uint32_t)) == 0);
}

/* Records the row just resolved (w->row_cols) as a new layout of the table. */
static int layout_add(writer_t *w, uint32_t table, uint32_t nf)
{
	const wtable_t *t = &w->tables[table];
	uint32_t n_key = table_sorted(t) ? t->spec->n_key : 0;
	if (GROW(w->layouts, w->n_layouts, w->cap_layouts, 1) ||
	    GROW(w->lay_u32, w->n_lay_u32, w->cap_lay_u32, (size_t)nf + n_key))
		return -ENOMEM;
	layout_t *l = &w->layouts[w->n_layouts];
	*l = (layout_t){.table = table, .n = nf, .cols_at = w->n_lay_u32,
	                .key_at = w->n_lay_u32 + nf};
	memcpy(w->lay_u32 + l->cols_at, w->row_cols, nf * sizeof(uint32_t));
	for (uint32_t k = 0; k < n_key; k++) {
		const char *key = t->spec->key[k];
		uint32_t col = map_get((strmap_t *)&t->keys, key, (uint32_t)strlen(key));
		uint32_t field = LAYOUT_NONE;
		for (uint32_t i = 0; col != MAP_ABSENT && i < nf && field == LAYOUT_NONE; i++)
			if (w->row_cols[i] == col)
				field = i;
		w->lay_u32[l->key_at + k] = field;
	}
	w->n_lay_u32 += (size_t)nf + n_key;
	w->last_layout[table] = (uint32_t)w->n_layouts++;
	return 0;
}

/* Resolves the batch's rows to columns (adding columns, creating tables)
 * and appends them to w->hrows (keyed tables, with their keys) or w->arows
 * (rowid tables). Returns 0, -ENOMEM, or -1 with a database error in the
 * connection (a job-level one fails the job in tx_apply_jobwise). */
static int tx_resolve(writer_t *w, const batch_t *b)
{
	batch_iter_t it;
	int nf;
	batch_iter_init(&it, b);
	if (GROW(w->hrows, w->n_hrows, w->cap_hrows, b->n_rows) != 0 ||
	    GROW(w->arows, w->n_arows, w->cap_arows, b->n_rows) != 0)
		return -ENOMEM;
	while ((nf = batch_next_row(&it)) >= 0) {
		assert(it.table < w->n_tables);
		uint32_t n = (uint32_t)nf, table = it.table;
		size_t pos = it.pos;
		uint32_t lay = w->last_layout[table];
		const char *end;
		/* The usual row of a rowid table: the fields of the table's last
		 * row, whose names are compared where they lie (no key to read). */
		if (lay != LAYOUT_NONE && !table_sorted(&w->tables[table]) &&
		    (end = layout_walk(w, &w->layouts[lay], b->rows.data + pos,
		                       b->rows.data + b->rows.len, n)) != NULL) {
			it.pos = (size_t)(end - b->rows.data);
			w->arows[w->n_arows++] = (hrow_t){.b = b, .pos = pos,
			                                  .seq = (uint32_t)w->tx_rows, .layout = lay,
			                                  .table = table, .key = (uint32_t)w->n_hkeys};
			w->tx_rows++;
			continue;
		}
		int rc = scratch_reserve(w, n, n);
		if (rc != 0)
			return -ENOMEM;
		for (uint32_t i = 0; i < n; i++)
			batch_next_field(&it, &w->fields[i]);
		if (lay == LAYOUT_NONE || !layout_match(w, &w->layouts[lay], w->fields, n)) {
			if ((rc = row_columns(w, &w->tables[table], w->fields, n)) != 0 ||
			    (rc = layout_add(w, table, n)) != 0)
				return rc;
			lay = w->last_layout[table];
		}
		const layout_t *l = &w->layouts[lay];
		uint32_t n_key = table_sorted(&w->tables[table]) ? w->tables[table].spec->n_key : 0;
		if (GROW(w->hkeys, w->n_hkeys, w->cap_hkeys, n_key) != 0)
			return -ENOMEM;
		hrow_t r = {.b = b, .pos = pos, .seq = (uint32_t)w->tx_rows, .layout = lay,
		            .table = table, .key = (uint32_t)w->n_hkeys};
		for (uint32_t k = 0; k < n_key; k++) {
			uint32_t field = w->lay_u32[l->key_at + k];
			const batch_field_t *f = field == LAYOUT_NONE ? NULL : &w->fields[field];
			w->hkeys[w->n_hkeys++] = key_of(f);
		}
		if (n_key) {
			r.prefix = key_prefix(&w->hkeys[r.key]);
			w->hrows[w->n_hrows++] = r;
		} else {
			w->arows[w->n_arows++] = r;
		}
		w->tx_rows++;
	}
	return 0;
}

/* Inserts rows[0..n) in their order: consecutive rows of one layout form a
 * group, rows_per_stmt of them bound at a time straight from their batches
 * (row_bind_held). The group's column order and parameter map are made
 * once per run of rows of one layout, not once per statement. */
static int tx_insert(writer_t *w, const hrow_t *rows, size_t n)
{
	uint32_t g_lay = LAYOUT_NONE;
	for (size_t i = 0; i < n;) {
		uint32_t lay = rows[i].layout;
		const layout_t *l = &w->layouts[lay];
		uint32_t per = rows_per_stmt(w, l->n), g = 0;
		if (g_lay == LAYOUT_NONE || !layout_equal(w, g_lay, lay)) {
			int rc = scratch_reserve(w, 0, l->n);
			if (rc != 0)
				return rc;
			memcpy(w->row_cols, w->lay_u32 + l->cols_at, l->n * sizeof(uint32_t));
			group_start(w, l->table, l->n);
			for (uint32_t k = 0; k < l->n; k++)
				w->g_param[w->pairs[k].field] = k + 1; /* + 1: after the row's _job */
			g_lay = lay;
		}
		size_t first = i;
		while (i < n && g < per && layout_equal(w, g_lay, rows[i].layout)) {
			i++;
			g++;
		}
		int rc = insert_group(w, rows + first, g);
		if (rc != 0)
			return rc;
	}
	return 0;
}


/* Decides for each keyed table whether this transaction's rows may be
 * sorted by key. key_cmp orders values as they arrive, and keeps arrival
 * order only among values it calls equal; SQLite compares them after the
 * key column's affinity converted them, with the column's collation. Where
 * those can differ, two rows that conflict in the index could be sorted
 * out of arrival order and the wrong one win: text in a column of numeric
 * affinity ("1" is stored as 1), a number in a TEXT column (1 is stored as
 * "1"), an integer beyond 2^53 in a REAL column (2^53 + 1 is stored as
 * 2^53), a collation other than BINARY ("a" = "A" under NOCASE). Such a
 * table's rows then go in arrival order. */
static int tx_key_order(writer_t *w)
{
	/* Per key column: 1 << KEY_* of the values seen, and BIG_INT. */
	enum { BIG_INT = 1u << 3 }; /* an integer a double cannot hold exactly */
	uint8_t cls_seen[64];
	for (uint32_t ti = 0; ti < w->n_tables; ti++) {
		wtable_t *t = &w->tables[ti];
		t->by_key = table_sorted(t) && t->exists && t->spec->n_key <= 64;
		if (!t->by_key)
			continue;
		memset(cls_seen, 0, sizeof(cls_seen));
		for (size_t i = 0; i < w->n_hrows; i++)
			if (w->hrows[i].table == ti)
				for (uint32_t k = 0; k < t->spec->n_key; k++) {
					const hkey_t *v = &w->hkeys[w->hrows[i].key + k];
					bool big = v->cls == KEY_NUM && !v->real &&
					           (v->v.i > (1ll << 53) || v->v.i < -(1ll << 53));
					cls_seen[k] |= (uint8_t)(1u << v->cls | (big ? BIG_INT : 0));
				}
		for (uint32_t k = 0; k < t->spec->n_key && t->by_key; k++) {
			const char *type = NULL, *coll = NULL;
			if (sqlite3_table_column_metadata(w->db, "main", t->name, key_col(t, k), &type,
			                                  &coll, NULL, NULL, NULL) != SQLITE_OK)
				return -1;
			int aff = affinity(type);
			t->by_key = (!coll || strcasecmp(coll, "BINARY") == 0) &&
			            !((aff == AFF_NUMERIC || aff == AFF_REAL) &&
			              (cls_seen[k] & 1u << KEY_TEXT)) &&
			            !(aff == AFF_REAL && (cls_seen[k] & BIG_INT)) &&
			            !(aff == AFF_TEXT && (cls_seen[k] & 1u << KEY_NUM));
		}
	}
	return 0;
}

/* True when the two keys are the same values of the same types, none NULL:
 * bound alike, SQLite stores them alike and they conflict in the UNIQUE
 * index whatever the columns' affinity. key_cmp's equality is not enough:
 * the integer 1 equals the real 1.0 (which SQLite keeps as a real in a
 * column without a type), 0.0 equals -0.0, and NULL keys never conflict. */
static bool key_same(const hkey_t *a, const hkey_t *b, uint32_t n_key)
{
	for (uint32_t k = 0; k < n_key; k++) {
		if (a[k].cls != b[k].cls || a[k].cls == KEY_NULL)
			return false;
		if (a[k].cls == KEY_TEXT) {
			if (a[k].len != b[k].len || (a[k].len && memcmp(a[k].v.s, b[k].v.s, a[k].len)))
				return false;
		} else if (a[k].real != b[k].real ||
		           memcmp(&a[k].v, &b[k].v, a[k].real ? sizeof(double) : sizeof(int64_t))) {
			return false;
		}
	}
	return true;
}

/* Drops from rows[0..n), sorted by hrow_cmp, the rows whose insert cannot
 * change what the transaction leaves, and returns how many are kept:
 * - upsert: a row followed by a row of the same key (key_same) and the same
 *   columns (layout_equal). The later row's DO UPDATE sets every column the
 *   earlier one named, and _job; the row is inserted at the same place of
 *   the order, so it gets the same rowid. A later row with other columns
 *   may leave some of the earlier row's values: both are kept.
 * - ignore: a row after a kept row of the same key: it would do nothing.
 * Only in tables this writer created (wtable_t.ours). */
static size_t tx_dedup(writer_t *w, hrow_t *rows, size_t n)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		const hrow_t *r = &rows[i];
		const wtable_t *t = &w->tables[r->table];
		const hkey_t *k = &w->hkeys[r->key];
		bool skip = false;
		if (t->ours && t->spec->mode == TABLE_UPSERT && i + 1 < n) {
			const hrow_t *next = &rows[i + 1];
			skip = next->table == r->table && layout_equal(w, r->layout, next->layout) &&
			       key_same(k, &w->hkeys[next->key], t->spec->n_key);
		} else if (t->ours && t->spec->mode == TABLE_IGNORE && kept) {
			const hrow_t *prev = &rows[kept - 1];
			skip = prev->table == r->table &&
			       key_same(k, &w->hkeys[prev->key], t->spec->n_key);
		}
		if (!skip)
			rows[kept++] = *r;
	}
	return kept;
}

struct rkey {
	uint64_t prefix;
	uint32_t at; /* the row's place in the run */
};

/* Where the keys of a run's rows start to differ: rows of one keyed table
 * whose key values before `k` are all equal (key_cmp). */
typedef struct {
	const writer_t *w;
	uint32_t k;
} from_key_t;

/* hrow_cmp for such rows: key values k.. then arrival. */
static int hrow_cmp_from(const void *pa, const void *pb, void *ctx)
{
	const from_key_t *c = ctx;
	const hrow_t *a = pa, *b = pb;
	const table_spec_t *sp = c->w->tables[a->table].spec;
	for (uint32_t k = c->k; k < sp->n_key; k++) {
		int d = key_cmp(&c->w->hkeys[a->key + k], &c->w->hkeys[b->key + k]);
		if (d)
			return d;
	}
	return (a->seq > b->seq) - (a->seq < b->seq);
}

/* key_prefix of key value k of a row (its own prefix for the first). */
static uint64_t row_prefix(const writer_t *w, const hrow_t *r, uint32_t k)
{
	return k ? key_prefix(&w->hkeys[r->key + k]) : r->prefix;
}

/* True when rows[0..n) hold the same key value k. */
static bool same_key_value(const writer_t *w, const hrow_t *rows, size_t n, uint32_t k)
{
	const hkey_t *first = &w->hkeys[rows[0].key + k];
	for (size_t i = 1; i < n; i++)
		if (key_cmp(first, &w->hkeys[rows[i].key + k]) != 0)
			return false;
	return true;
}

static bool radix_run(writer_t *w, hrow_t *rows, size_t n, uint32_t k);

/* Sorts rows[0..n), whose key values before k are equal and whose key
 * value k has one prefix, as hrow_cmp would. Where key value k is the same
 * in all of them too (a multi-column key's first column: the account all
 * the edges of one document belong to), by the next value: a radix sort
 * on its prefixes, or qsort_r from it on; else from key value k on. */
static void sort_ties(writer_t *w, hrow_t *rows, size_t n, uint32_t k)
{
	from_key_t c = {w, k};
	if (n > RADIX_TIE_INSERTION_MAX) {
		if (k + 1 < w->tables[rows[0].table].spec->n_key && same_key_value(w, rows, n, k)) {
			c.k = k + 1;
			if (n >= WRITER_RADIX_ROWS_MIN && radix_run(w, rows, n, k + 1))
				return;
		}
		qsort_r(rows, n, sizeof(*rows), hrow_cmp_from, &c);
		return;
	}
	for (size_t i = 1; i < n; i++) { /* insertion: stable, and mostly in order */
		hrow_t r = rows[i];
		size_t m = i;
		for (; m > 0 && hrow_cmp_from(&rows[m - 1], &r, &c) > 0; m--)
			rows[m] = rows[m - 1];
		rows[m] = r;
	}
}

/* Sorts a keyed table's run rows[0..n), in arrival order, whose key values
 * before k are equal (none for k = 0), as qsort_r with hrow_cmp would: an
 * LSD radix sort on the prefixes of key value k, which is stable, so rows
 * of equal prefix stay in arrival order; then each group of equal prefixes
 * by sort_ties. hrow_cmp is a total order, so the result is the same order.
 * Passes whose digit is the same in every row (the high bits of ids in one
 * range) are skipped. False, with the rows as they were, when scratch
 * memory cannot be had. The scratch is free again once the rows are
 * permuted, so sort_ties may use it for a group. */
static bool radix_run(writer_t *w, hrow_t *rows, size_t n, uint32_t k)
{
	if (n > UINT32_MAX || GROW(w->rkeys, 0, w->cap_rkeys, 2 * n) != 0 ||
	    GROW(w->srows, 0, w->cap_srows, n) != 0)
		return false;
	struct rkey *a = w->rkeys, *b = w->rkeys + n;
	const uint64_t mask = (1u << RADIX_BITS) - 1;
	memset(w->radix_count, 0, sizeof(w->radix_count));
	for (size_t i = 0; i < n; i++) {
		uint64_t p = row_prefix(w, &rows[i], k);
		a[i] = (struct rkey){.prefix = p, .at = (uint32_t)i};
		for (uint32_t d = 0; d < RADIX_PASSES; d++)
			w->radix_count[d][p >> (d * RADIX_BITS) & mask]++;
	}
	for (uint32_t d = 0; d < RADIX_PASSES; d++) {
		uint32_t *cnt = w->radix_count[d];
		if (cnt[a[0].prefix >> (d * RADIX_BITS) & mask] == n)
			continue; /* one digit for all: this pass moves nothing */
		uint32_t sum = 0;
		for (uint32_t v = 0; v <= mask; v++) {
			uint32_t c = cnt[v];
			cnt[v] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			b[cnt[a[i].prefix >> (d * RADIX_BITS) & mask]++] = a[i];
		struct rkey *t = a;
		a = b, b = t;
	}
	for (size_t i = 0; i < n; i++)
		w->srows[i] = rows[a[i].at];
	memcpy(rows, w->srows, n * sizeof(*rows));
	for (size_t i = 0, j; i < n; i = j) {
		uint64_t p = row_prefix(w, &rows[i], k);
		for (j = i + 1; j < n && row_prefix(w, &rows[j], k) == p; j++)
			;
		if (j - i > 1)
			sort_ties(w, rows + i, j - i, k);
	}
	return true;
}

/* Sorts rows[first..end), all of one table, unless they are in order. */
static void sort_run(writer_t *w, hrow_t *rows, size_t first, size_t end)
{
	for (size_t i = first + 1; i < end; i++)
		if (hrow_cmp(&rows[i - 1], &rows[i], w) > 0) {
			size_t n = end - first;
			if (n >= WRITER_RADIX_ROWS_MIN && w->tables[rows[first].table].by_key &&
			    radix_run(w, rows + first, n, 0))
				return;
			qsort_r(rows + first, n, sizeof(*rows), hrow_cmp, w);
			return;
		}
}

/* Sorts rows[0..n) by hrow_cmp (table, then key for keyed tables, then
 * arrival). A batch's rows interleave the tables (an event, its actor, its
 * repository, its commits), so the rows are first moved into runs, one per
 * table, in arrival order (a counting sort on the table: stable); then a
 * run is sorted only when its own rows are out of order (the events come
 * in key order). 0 or -ENOMEM. */
static int tx_sort(writer_t *w, hrow_t *rows, size_t n)
{
	/* Rows are staged in arrival order, so two rows of one table that is
	 * not sorted by key (a rowid table's, or a keyed one's that keeps
	 * arrival order) are in hrow_cmp's order already: only the tables and
	 * the keys of by_key tables need comparing. */
	if (w->n_tables == 1 && !w->tables[0].by_key)
		return 0;
	bool sort = false;
	for (size_t i = 1; i < n && !sort; i++) {
		uint32_t ta = rows[i - 1].table, tb = rows[i].table;
		sort = ta > tb || (ta == tb && w->tables[ta].by_key &&
		                   hrow_cmp(&rows[i - 1], &rows[i], w) > 0);
	}
	if (!sort)
		return 0;
	if (GROW(w->srows, 0, w->cap_srows, n) != 0)
		return -ENOMEM;
	size_t at[BATCH_TABLES_MAX + 1] = {0};
	assert(w->n_tables <= BATCH_TABLES_MAX);
	for (size_t i = 0; i < n; i++)
		at[rows[i].table + 1]++;
	for (uint32_t t = 0; t < w->n_tables; t++)
		at[t + 1] += at[t];
	for (size_t i = 0; i < n; i++)
		w->srows[at[rows[i].table]++] = rows[i];
	memcpy(rows, w->srows, n * sizeof(*rows));
	/* at[t] is now the end of table t's run, which is where t + 1's starts. */
	size_t first = 0;
	for (uint32_t t = 0; t < w->n_tables; t++) {
		sort_run(w, rows, first, at[t]);
		first = at[t];
	}
	return 0;
}

/* Sorts rows[0..n) (tx_sort) and inserts them; with dedup (keyed tables'
 * rows), not those that tx_dedup drops. */
static int tx_insert_sorted(writer_t *w, hrow_t *rows, size_t n, bool dedup)
{
	int rc = tx_sort(w, rows, n);
	if (rc != 0)
		return rc;
	return tx_insert(w, rows, dedup ? tx_dedup(w, rows, n) : n);
}

/* Rows of rowid tables go in as they come, brought together table by table
 * a few thousand at a time, so SQLite works while the loop is still
 * producing the transaction's later batches. */
static int tx_insert_rowid_rows(writer_t *w)
{
	int rc = tx_insert_sorted(w, w->arows, w->n_arows, false);
	w->n_arows = 0;
	return rc;
}

/* Rows of keyed tables go in sorted by key (where tx_key_order allows), a
 * chunk of keyed_chunk_rows at a time and the rest at the commit, so
 * SQLite works while the loop is still producing the transaction's later
 * batches. Chunks go in arrival order and each sort is stable, so every
 * key's rows are still applied in the order they arrived: the last row of a
 * key wins an upsert, the first an ignore. */
static int tx_insert_keyed_rows(writer_t *w)
{
	int rc = tx_key_order(w);
	if (rc == 0)
		rc = tx_insert_sorted(w, w->hrows, w->n_hrows, true);
	w->n_hrows = w->n_hkeys = 0;
	return rc;
}

/* A batch's part of the fast path: its job's state (the state first, and
 * the rows only when this transaction is the one that made the job done:
 * exactly once, as job_done), its rows resolved, and rowid-table rows
 * inserted once enough are pending. 0; -ECANCELED after a fatal error
 * (already reported); else -ENOMEM, -EFBIG or -1 with the database error in
 * the connection. */
static int tx_stage(writer_t *w, const batch_t *b)
{
	int rc;
	if (b->kind == BATCH_JOB_FAILED)
		return job_failed(w, b, b->error_class, b->error) != 0 ? -ECANCELED : 0;
	/* A streamed job's checkpoint: its rows go in only when this statement
	 * moved the checkpoint on (exactly once, as job_rows); it stays pending. */
	bool ckpt = b->kind == BATCH_JOB_CHECKPOINT;
	assert(ckpt || b->kind == BATCH_JOB_DONE);
	if ((rc = ckpt ? job_mark_ckpt(w, b) : job_mark_done(w, b)) < 0)
		return rc;
	bool made_done = !ckpt && rc == 1;
	if (rc == 1 && b->n_rows && (rc = tx_resolve(w, b)) != 0)
		return rc;
	if (made_done && b->n_emit) { /* a page's jobs, with its done state */
		char why[BATCH_ERROR_BYTES_MAX];
		/* A repeated cursor fails the page alone: jobwise, job_rows says why. */
		if ((rc = store_jobs_emit(w->st, w->source, b, why, sizeof(why))) != 0)
			return rc == 1 ? -ELOOP : rc;
	}
	if (w->n_arows >= WRITER_ROWID_PENDING_MAX && (rc = tx_insert_rowid_rows(w)) != 0)
		return rc;
	return w->n_hrows >= w->keyed_chunk_rows ? tx_insert_keyed_rows(w) : 0;
}

/* The database refused a row of the transaction: undo all of it, and apply
 * the held batches again one job at a time, each in its savepoint, so that
 * the jobs at fault fail alone and the others are committed. The rest of
 * the transaction goes the same way (w->jobwise). */
static int tx_apply_jobwise(writer_t *w)
{
	if (exec_sql(w, "ROLLBACK") != 0)
		return -1;
	w->in_tx = false;
	columns_restore(w);
	/* A refresh at this transaction's BEGIN may have made key columns and
	 * an index (key_ensure) that the ROLLBACK took back, which this
	 * connection's data_version does not show: look again. */
	w->data_version = INT64_MIN;
	if (tx_begin(w) != 0)
		return -1;
	w->jobwise = true;
	w->n_hrows = w->n_arows = 0;
	for (batch_t *b = w->held; b; b = b->next)
		if (batch_apply(w, b) != 0)
			return -1;
	return 0;
}

/* The outcome of a fast-path step: 0, or -1 after a fatal error. */
static int tx_settle(writer_t *w, int rc)
{
	if (rc == 0)
		return 0;
	if (rc == -ECANCELED)
		return -1;
	if (rc == -ENOMEM)
		return fatal(w, "writer: out of memory");
	if (rc != -ELOOP && !job_level_error(rc, sqlite3_errcode(w->db)))
		return fatal_db(w);
	return tx_apply_jobwise(w);
}

static void held_free(writer_t *w)
{
	while (w->held) {
		batch_t *b = w->held;
		w->held = b->next;
		batch_free(b);
	}
	w->held_tail = &w->held;
	w->held_rows = w->held_bytes = 0;
}

/* Takes a popped batch into the transaction (begun at its first batch) and
 * stages it. 0, or -1 after a fatal error. */
static int tx_hold(writer_t *w, batch_t *b)
{
	b->next = NULL;
	*w->held_tail = b;
	w->held_tail = &b->next;
	w->held_rows += b->n_rows;
	w->held_bytes += batch_mem_bytes(b);
	if (!w->in_tx) {
		w->held_start_ms = now_ms();
		if (tx_begin(w) != 0)
			return -1;
		columns_mark(w); /* for tx_apply_jobwise */
		w->jobwise = false;
		w->n_hrows = w->n_arows = w->n_hkeys = w->n_layouts = w->n_lay_u32 = 0;
		for (uint32_t t = 0; t < w->n_tables; t++)
			w->last_layout[t] = LAYOUT_NONE;
	}
	if (w->jobwise)
		return batch_apply(w, b);
	return tx_settle(w, tx_stage(w, b));
}

/* A batch that carried new jobs is committed: there may be pending jobs past
 * the last one fed, so the feed looks again before the loop may end the run
 * (exhausted is cleared before the count drops: pipe_t.emits_unsettled). */
static void emits_settled(writer_t *w, const batch_t *b)
{
	if (!b->n_emit)
		return;
	w->exhausted = false;
	atomic_store_explicit(&w->pipe->jobs_exhausted, false, memory_order_relaxed);
	/* Release: a loop that sees the count drop also sees exhausted cleared. */
	atomic_fetch_sub_explicit(&w->pipe->emits_unsettled, 1, memory_order_release);
}

/* Inserts what is pending (keyed tables' rows sorted by key), commits, and
 * frees the held batches. 0, or -1 after a fatal error. */
static int tx_held(writer_t *w)
{
	if (!w->held)
		return 0;
	int rc = 0;
	if (!w->jobwise) {
		rc = tx_insert_rowid_rows(w);
		if (rc == 0)
			rc = tx_insert_keyed_rows(w);
		w->n_hrows = 0;
		rc = tx_settle(w, rc);
	}
	if (rc == 0)
		rc = tx_commit(w);
	for (batch_t *b = w->held; rc == 0 && b; b = b->next)
		emits_settled(w, b);
	held_free(w);
	return rc;
}

/* ---- feeding jobs to the loop ------------------------------------------ */

/* Tops up to_loop once it is at least half empty, so the loop never runs
 * dry and the database is asked for pages, not single jobs. */
static int jobs_feed(writer_t *w)
{
	ring_t *r = &w->pipe->to_loop;
	uint32_t cap = r->mask + 1, free_slots = ring_free_slots(r);
	if (w->exhausted || free_slots < cap / 2)
		return 0;
	char err[STORE_ERR_BYTES];
	int n = store_jobs_fetch(w->st, w->source, w->last_fed, w->jobs, (int)free_slots, err,
	                         sizeof(err));
	if (n < 0)
		return fatal(w, err);
	for (int i = 0; i < n; i++) {
		bool pushed = ring_push(r, w->jobs[i]);
		assert(pushed); /* free_slots is a lower bound and we are the only producer */
		(void)pushed;
		w->last_fed = w->jobs[i]->id;
	}
	if ((uint32_t)n < free_slots) {
		w->exhausted = true;
		/* Release: the loop that sees exhausted also sees every job pushed. */
		atomic_store_explicit(&w->pipe->jobs_exhausted, true, memory_order_release);
	}
	if (n > 0 || w->exhausted)
		wake_loop(w);
	return 0;
}

/* ---- the thread -------------------------------------------------------- */

/* A transaction's dirty pages stay in the page cache until COMMIT; when
 * they do not fit, SQLite spills them into the WAL mid-transaction. Rows
 * that land all over an index are read back after a spill, which costs
 * more than the inserts. Rows appended to a rowid table are not, but the
 * B-tree pages above the leaves are written again after their spill, and
 * COMMIT then reads every frame the transaction wrote since the first one
 * written twice to checksum them again (sqlite3WalFrames: walRewriteChecksums;
 * 0.94 of the minimal loop's rows/s on bench store rowid_4col with SQLite's
 * 2 MB against 0.97 with this size, CPU clock, docs/store.md). So the
 * cache holds one transaction's rows (WRITER_CACHE_BYTES_PER_ROW each,
 * within WRITER_CACHE_KIB_MIN..MAX), for every table. Pages are allocated
 * only as they are used. */
static int cache_size_set(writer_t *w)
{
	uint64_t kib = (uint64_t)w->commit_rows * WRITER_CACHE_BYTES_PER_ROW / 1024u;
	kib = kib < WRITER_CACHE_KIB_MIN ? WRITER_CACHE_KIB_MIN
	      : kib > WRITER_CACHE_KIB_MAX ? WRITER_CACHE_KIB_MAX : kib;
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%llu", (unsigned long long)kib);
	return exec_sql(w, sql);
}

static int writer_prepare(writer_t *w)
{
#define DONE_SET                                                                        \
	"UPDATE _ringfill_jobs SET state='done', attempts=?1, http_status=?2, bytes=?3,"    \
	" sha256=?4, raw_path=?5, error=NULL, error_class=NULL, updated_at=?6,"             \
	" content_encoding=?9 WHERE id=?7"
	static const char done_sql[] = DONE_SET " AND state<>'done'";
	static const char done_ckpt_sql[] =
		DONE_SET " AND state='pending' AND coalesce(ckpt_records, 0)=?8";
#undef DONE_SET
	static const char failed_sql[] =
		"UPDATE _ringfill_jobs SET state='failed', attempts=?1, http_status=?2,"
		" error_class=?3, error=?4, raw_path=?5, updated_at=?6"
		" WHERE id=?7 AND state<>'done'";
	static const char ckpt_sql[] =
		"UPDATE _ringfill_jobs SET ckpt_offset=?1, ckpt_records=?2, ckpt_validator=?3,"
		" updated_at=?4 WHERE id=?5 AND state='pending' AND coalesce(ckpt_records, 0)=?6";
	static const char colmap_sql[] =
		"INSERT OR REPLACE INTO _ringfill_columns (tbl, key, col) VALUES (?1, ?2, ?3)";
	static const char run_sql[] =
		"UPDATE _ringfill_runs SET updated_at=?1, jobs_done=jobs_done+?2,"
		" jobs_failed=jobs_failed+?3, rows=rows+?4, bytes=bytes+?5 WHERE id=?6";
	unsigned flags = SQLITE_PREPARE_PERSISTENT;
	if (w->run_id &&
	    sqlite3_prepare_v3(w->db, run_sql, -1, flags, &w->upd_run, NULL) != SQLITE_OK)
		return fatal_db(w);
	if (sqlite3_prepare_v3(w->db, done_sql, -1, flags, &w->upd_done, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(w->db, failed_sql, -1, flags, &w->upd_failed, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(w->db, colmap_sql, -1, flags, &w->colmap_ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(w->db, ckpt_sql, -1, flags, &w->upd_ckpt, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(w->db, done_ckpt_sql, -1, flags, &w->upd_done_ckpt, NULL) !=
	        SQLITE_OK ||
	    sqlite3_prepare_v3(w->db, "SAVEPOINT ringfill_job", -1, flags, &w->sp_begin,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(w->db, "RELEASE ringfill_job", -1, flags, &w->sp_release,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(w->db, "ROLLBACK TO ringfill_job", -1, flags, &w->sp_rollback,
	                       NULL) != SQLITE_OK)
		return fatal_db(w);
	w->vars_max = (uint32_t)sqlite3_limit(w->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
	busy_try_set(w);
	return 0;
}

/* How long to sleep: until the open transaction is due, at most the idle
 * period (so a clock step or a missed deadline costs at most that). */
static int idle_timeout_ms(const writer_t *w, uint64_t now)
{
	uint64_t t = WRITER_IDLE_WAIT_MS;
	if (w->held) {
		uint64_t elapsed = now - w->held_start_ms;
		uint64_t left = elapsed < w->commit_ms ? w->commit_ms - elapsed : 0;
		t = left < t ? left : t;
	}
	return (int)t;
}

bool pipe_push_batch(pipe_t *p, batch_t *b)
{
	uint64_t bytes = batch_mem_bytes(b);
	uint64_t queued = atomic_load(&p->to_writer_bytes);
	if (queued && queued + bytes > WRITER_BATCH_BYTES_MAX) {
		/* The flag first, then a second look. The writer takes bytes off,
		 * then reads the flag (all four sequentially consistent): either
		 * this look sees the room, or the writer sees the flag and wakes
		 * the loop, which tries again. */
		atomic_store(&p->to_writer_waits, true);
		queued = atomic_load(&p->to_writer_bytes);
		if (queued && queued + bytes > WRITER_BATCH_BYTES_MAX)
			return false;
	}
	b->ring_bytes = bytes;
	/* Added before the push (release): the writer's subtraction, after its
	 * pop, always comes after it. */
	atomic_fetch_add_explicit(&p->to_writer_bytes, bytes, memory_order_relaxed);
	if (ring_push(&p->to_writer, b))
		return true;
	atomic_fetch_sub_explicit(&p->to_writer_bytes, bytes, memory_order_relaxed);
	b->ring_bytes = 0;
	return false;
}

/* The popped batches' bytes come off to_writer_bytes, and a loop that held
 * a batch back for them is woken at once, before this turn's SQLite work:
 * it refills the ring while the writer inserts. */
static void batches_popped(writer_t *w, void *const *items, uint32_t n)
{
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < n; i++)
		bytes += ((const batch_t *)items[i])->ring_bytes;
	if (bytes)
		atomic_fetch_sub(&w->pipe->to_writer_bytes, bytes);
	if (n && atomic_load(&w->pipe->to_writer_waits) &&
	    atomic_exchange(&w->pipe->to_writer_waits, false))
		wake_loop(w);
}

/* Returns after BATCH_END was committed, or after a fatal error. */
static void writer_run(writer_t *w)
{
	pipe_t *p = w->pipe;
	void *items[WRITER_POP_MAX];
	uint32_t cap = p->to_writer.mask + 1;
	if (writer_prepare(w) != 0)
		return;
	/* data_version first: a commit by another connection between the two
	 * reads then costs a refresh at the first BEGIN, never a stale view. */
	if (data_version_get(w, &w->data_version) != 0) {
		fatal_db(w);
		return;
	}
	for (uint32_t i = 0; i < w->n_tables; i++)
		if (columns_load(w, &w->tables[i]) != 0)
			return;
	if (cache_size_set(w) != 0 || keys_prepare(w) != 0 || jobs_feed(w) != 0)
		return;
	ck_start(w);
	for (;;) {
		/* The sequence is read before looking for work: a batch pushed after
		 * this point changes it, so the wait below cannot miss it. */
		uint32_t seen = doorbell_seq(&p->writer_bell);
		uint32_t queued = ring_count(&p->to_writer);
		uint32_t n = ring_pop_many(&p->to_writer, items, WRITER_POP_MAX);
		batches_popped(w, items, n);
		int rc = 0;
		for (uint32_t i = 0; i < n; i++) {
			batch_t *b = items[i];
			if (rc != 0 || b->kind == BATCH_END) {
				assert(rc <= 0); /* nothing follows BATCH_END */
				rc = rc ? rc : 1;
				batch_free(b);
				continue;
			}
			bool emits = b->n_emit != 0;
			rc = tx_hold(w, b);
			/* Held rows never pass commit_rows (nor held bytes
			 * WRITER_HELD_BYTES_MAX) by more than one batch. A page's new
			 * jobs are committed at once, so the feed hands the next page
			 * to the loop without waiting for the timer. */
			if (rc == 0 && (w->held_rows >= w->commit_rows ||
			                w->held_bytes >= WRITER_HELD_BYTES_MAX || emits))
				rc = tx_held(w);
		}
		if (rc < 0)
			return;
		/* The loop stops reading sockets while this ring is full; tell it
		 * there is room again. */
		if (queued >= cap / 2)
			wake_loop(w);
		if (rc == 1) {
			if (tx_held(w) == 0)
				wal_truncate(w);
			return;
		}
		uint64_t now = now_ms();
		if ((tx_due(w, now) && tx_held(w) != 0) || jobs_feed(w) != 0)
			return;
		/* Nothing queued: rather than wait for more, the rows pending go
		 * in now (keyed ones once there are enough to sort), so SQLite
		 * works while the loop produces the rest. */
		bool keyed = w->n_hrows >= WRITER_IDLE_INSERT_ROWS_MIN;
		if (n == 0 && w->in_tx && !w->jobwise && (w->n_arows || keyed)) {
			int r = w->n_arows ? tx_insert_rowid_rows(w) : 0;
			if (r == 0 && keyed)
				r = tx_insert_keyed_rows(w);
			if (tx_settle(w, r) != 0)
				return;
			continue;
		}
		if (n == 0)
			doorbell_wait(&p->writer_bell, seen, idle_timeout_ms(w, now));
	}
}

static void *writer_thread(void *arg)
{
	writer_t *w = arg;
	pthread_setname_np(pthread_self(), "rf-writer"); /* for top and perf */
	writer_run(w);
	ck_stop(w);
	held_free(w); /* after a fatal error: batches never committed */
	cache_flush(w);
	sqlite3_finalize(w->upd_done);
	sqlite3_finalize(w->upd_failed);
	sqlite3_finalize(w->colmap_ins);
	sqlite3_finalize(w->upd_run);
	w->upd_run = NULL;
	sqlite3_finalize(w->data_version_stmt);
	w->data_version_stmt = NULL;
	atomic_store_explicit(&w->pipe->writer_done, true, memory_order_release);
	uint64_t one = 1;
	if (w->pipe->done_eventfd >= 0 && write(w->pipe->done_eventfd, &one, sizeof(one)) < 0)
		assert(errno == EAGAIN); /* saturated: the waiter wakes anyway */
	sqlite3_finalize(w->sp_begin);
	sqlite3_finalize(w->sp_release);
	sqlite3_finalize(w->sp_rollback);
	sqlite3_finalize(w->upd_ckpt);
	sqlite3_finalize(w->upd_done_ckpt);
	w->upd_ckpt = w->upd_done_ckpt = NULL;
	w->upd_done = w->upd_failed = w->colmap_ins = NULL;
	w->sp_begin = w->sp_release = w->sp_rollback = NULL;
	return NULL;
}

static void writer_free(writer_t *w)
{
	for (uint32_t t = 0; w->tables && t < w->n_tables; t++) {
		wtable_t *wt = &w->tables[t];
		table_columns_free(wt);
		free(wt->cols);
		free(wt->name);
	}
	free(w->tables);
	json_buf_free(&w->sql);
	free(w->fields);
	free(w->pairs);
	free(w->g_cols);
	free(w->row_cols);
	free(w->g_param);
	free(w->g_aff);
	free(w->hrows);
	free(w->arows);
	free(w->srows);
	free(w->rkeys);
	free(w->hkeys);
	free(w->layouts);
	free(w->lay_u32);
	free(w->last_layout);
	free(w->jobs);
	free(w->source);
	free(w);
}

int writer_start(store_t *st, const writer_config_t *cfg, pipe_t *pipe, writer_t **out)
{
	assert(st && cfg && cfg->source && pipe && out);
	assert(cfg->n_tables ? cfg->tables != NULL : cfg->table != NULL);
	if (cfg->n_tables > BATCH_TABLES_MAX)
		return -EINVAL;
	/* The bookkeeping tables are not a place for records. */
	for (uint32_t i = 0; i < (cfg->n_tables ? cfg->n_tables : 1); i++) {
		const char *name = cfg->n_tables ? cfg->tables[i].name : cfg->table;
		if (strncmp(name, "_ringfill_", 10) == 0 || name[0] == '\0')
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++)
			if (strcasecmp(cfg->tables[j].name, name) == 0)
				return -EINVAL;
	}
	writer_t *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->st = st;
	w->db = store_db(st);
	w->pipe = pipe;
	w->commit_rows = cfg->commit_rows ? cfg->commit_rows : WRITER_COMMIT_ROWS_DEFAULT;
	w->commit_ms = cfg->commit_ms ? cfg->commit_ms : WRITER_COMMIT_MS_DEFAULT;
	w->keyed_chunk_rows = cfg->keyed_chunk_rows ? cfg->keyed_chunk_rows : WRITER_KEYED_PENDING_MAX;
	w->wal_self_bytes = cfg->wal_self_bytes ? cfg->wal_self_bytes : WRITER_WAL_SELF_BYTES;
	w->busy_patience_ms = store_patience(st);
	w->run_id = cfg->run_id;
	w->checkpoint_ms = now_ms();
	w->source = strdup(cfg->source);
	w->jobs = calloc(WRITER_JOB_RING_DEFAULT, sizeof(*w->jobs));
	w->n_tables = cfg->n_tables ? cfg->n_tables : 1;
	w->tables = calloc(w->n_tables, sizeof(*w->tables));
	w->last_layout = calloc(w->n_tables, sizeof(*w->last_layout));
	w->held_tail = &w->held;
	if (!w->source || !w->jobs || !w->tables || !w->last_layout) {
		writer_free(w);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < w->n_tables; i++) {
		wtable_t *t = &w->tables[i];
		t->spec = cfg->n_tables ? &cfg->tables[i] : &w->single;
		if (!(t->name = strdup(cfg->n_tables ? cfg->tables[i].name : cfg->table))) {
			writer_free(w);
			return -ENOMEM;
		}
	}
	/* The one inferred table of --table: append mode, no key. */
	w->single.name = w->tables[0].name;
	int rc = ring_init(&pipe->to_writer, WRITER_BATCH_RING_DEFAULT);
	if (rc == 0 && (rc = ring_init(&pipe->to_loop, WRITER_JOB_RING_DEFAULT)) != 0)
		ring_destroy(&pipe->to_writer);
	if (rc != 0) {
		writer_free(w);
		return rc;
	}
	doorbell_init(&pipe->writer_bell);
	pipe->fatal_msg[0] = '\0';
	pipe->fatal_hint[0] = '\0';
	atomic_store(&pipe->jobs_exhausted, false);
	atomic_store(&pipe->fatal, false);
	atomic_store(&pipe->stopping, false);
	atomic_store(&pipe->lock_wait_cancelled, false);
	atomic_store(&pipe->writer_done, false);
	atomic_store(&pipe->to_writer_bytes, 0);
	atomic_store(&pipe->to_writer_waits, false);
	atomic_store(&pipe->rows_committed, 0);
	atomic_store(&pipe->jobs_done_committed, 0);
	atomic_store(&pipe->jobs_failed_committed, 0);
	if ((rc = pthread_create(&w->thread, NULL, writer_thread, w)) != 0) {
		ring_destroy(&pipe->to_writer);
		ring_destroy(&pipe->to_loop);
		writer_free(w);
		return -rc;
	}
	*out = w;
	return 0;
}

/* The caller's loop has stopped using the pipe, so this thread may drain
 * both rings as their consumer: batches the writer never applied (after a
 * fatal error) and job descriptors the loop never took. The rings stay
 * initialised (empty) for the caller to destroy. */
int writer_join(writer_t *w)
{
	pthread_join(w->thread, NULL);
	pipe_t *p = w->pipe;
	void *item;
	while ((item = ring_pop(&p->to_writer)))
		batch_free(item);
	while ((item = ring_pop(&p->to_loop)))
		free(item);
	int result = w->result;
	writer_free(w);
	return result;
}
