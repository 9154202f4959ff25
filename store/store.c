/* store/store.c: the SQLite database: pragmas, the bookkeeping tables, job
 * import from a URL list or NDJSON manifest, and job queries.
 *
 * engine/main.c opens the store and imports URLs on the main thread; during a
 * run the writer thread (store/writer.c) owns the connection and calls
 * store_jobs_fetch to feed the loop. URLs are checked with net/url.h, manifest
 * lines parsed with parse/json.h. */
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <sqlite3.h>

#include "net/url.h"
#include "parse/json.h"
#include "store/batch.h"

#define STORE_BUSY_TIMEOUT_MS 5000
/* Page size of a new database: 16 KiB instead of SQLite's 4 KiB. Appended
 * rows fill a quarter as many pages, so a transaction writes a quarter as
 * many WAL frames, B-tree splits and interior cells (docs/store.md). */
#define STORE_PAGE_BYTES_STR "16384"
#define STORE_JOURNAL_SIZE_LIMIT_BYTES (64 * 1024 * 1024)
/* A URL line longer than this is recorded as malformed instead of read whole,
 * so a file without newlines cannot make the import use unbounded memory. */
#define STORE_LINE_BYTES_MAX (64u * 1024u)
/* The key of an over-long malformed line: its first bytes, enough to find it. */
#define STORE_LONG_LINE_KEY_BYTES 1024u

struct store {
	sqlite3 *db;
	uint32_t patience_ms; /* store_set_patience */
	uint64_t page_limit;  /* store_set_page_limit; 0: none */
	int64_t pages_max;    /* at least as many page jobs as exist; -1 unknown */
	sqlite3_stmt *fetch; /* prepared once; the writer calls fetch repeatedly */
	sqlite3_stmt *emit;  /* store_jobs_emit's INSERT, prepared at its first use */
	char path[STORE_ERR_BYTES / 2];
};

/* The page jobs of a paginate source (engine/sources.h keys them), as the
 * partial index below and the queries that must use it spell the condition:
 * SQLite uses a partial index only for a query that repeats its WHERE. */
#define PAGE_JOBS "(key='" STORE_PAGE_FIRST_KEY "' OR key GLOB '" STORE_PAGE_KEY_PREFIX "*')"

/* The CHECK on state is spelled with OR, not IN: SQLite 3.40 evaluates an
 * IN list of three or more constants in a CHECK by building a temporary
 * B-tree of them, for every row an UPDATE that sets state touches, which was
 * more than half of the instructions of the writer's done mark (about 30,000
 * a job, callgrind). The same constraint; databases made before 2026-12-07
 * keep IN and work as before, only slower. */
static const char *const schema_sql =
	"CREATE TABLE IF NOT EXISTS _ringfill_jobs ("
	" id INTEGER PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, url TEXT,"
	" state TEXT NOT NULL DEFAULT 'pending'"
	"  CHECK (state='pending' OR state='done' OR state='failed'),"
	" attempts INTEGER NOT NULL DEFAULT 0, http_status INTEGER,"
	" error_class TEXT CHECK (error_class IN ('transient','permanent')),"
	" error TEXT, bytes INTEGER, sha256 TEXT, raw_path TEXT, vars TEXT,"
	" updated_at REAL, ckpt_offset INTEGER, ckpt_records INTEGER, ckpt_validator TEXT,"
	" content_encoding TEXT, UNIQUE(source, key));"
	/* The jobs not done, by source: what the feed (store_jobs_fetch), the
	 * requeue of transient failures and store_job_counts look up. Partial,
	 * so the writer's done mark deletes the job's entry instead of moving it
	 * within a full (source, state, id) index; done jobs, nearly all of a
	 * finished source, are not indexed. Written as an OR (the CHECK allows
	 * no third value) so that `state='pending'` or `state='failed'` alone
	 * lets SQLite use it. */
	"CREATE INDEX IF NOT EXISTS _ringfill_jobs_not_done"
	" ON _ringfill_jobs(source, state, id) WHERE state='pending' OR state='failed';"
	/* The full index of databases made before 2026-12-07: the one above
	 * replaces it (created first, so a query always has one). */
	"DROP INDEX IF EXISTS _ringfill_jobs_source_state;"
	/* A page whose body an earlier page of its chain had (store_jobs_emit). */
	"CREATE INDEX IF NOT EXISTS _ringfill_jobs_page_sha256"
	" ON _ringfill_jobs(source, sha256) WHERE " PAGE_JOBS ";"
	"CREATE TABLE IF NOT EXISTS _ringfill_columns ("
	" tbl TEXT NOT NULL, key TEXT NOT NULL, col TEXT NOT NULL,"
	" PRIMARY KEY(tbl, key));";

/* SQLite's own busy wait per try; store_exec_busy adds its backoff on top. */
#define STORE_BUSY_PAUSE_MS_FIRST 50
#define STORE_BUSY_PAUSE_MS_MAX 1000

uint32_t store_busy_patience_ms(void)
{
	const char *env = getenv("RINGFILL_DB_TIMEOUT");
	if (!env || !*env)
		return STORE_BUSY_PATIENCE_MS_DEFAULT;
	char *end;
	double s = strtod(env, &end);
	if (*end || !(s >= 0.0) || s > 86400.0)
		return STORE_BUSY_PATIENCE_MS_DEFAULT;
	return (uint32_t)(s * 1000.0);
}

void store_set_patience(store_t *st, uint32_t patience_ms)
{
	st->patience_ms = patience_ms;
	sqlite3_busy_timeout(st->db, patience_ms < STORE_BUSY_TIMEOUT_MS ? (int)patience_ms
	                                                                : STORE_BUSY_TIMEOUT_MS);
}

uint32_t store_patience(const store_t *st)
{
	return st->patience_ms;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int store_exec_busy(sqlite3 *db, const char *sql, uint32_t patience_ms,
                    const _Atomic bool *cancel)
{
	uint64_t start = mono_ms();
	long pause_ms = STORE_BUSY_PAUSE_MS_FIRST;
	for (;;) {
		int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if ((rc & 0xff) != SQLITE_BUSY)
			return rc;
		uint64_t elapsed = mono_ms() - start;
		if (elapsed >= patience_ms ||
		    (cancel && atomic_load_explicit(cancel, memory_order_acquire)))
			return rc;
		if ((uint64_t)pause_ms > patience_ms - elapsed)
			pause_ms = (long)(patience_ms - elapsed);
		struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		pause_ms = pause_ms * 2 > STORE_BUSY_PAUSE_MS_MAX ? STORE_BUSY_PAUSE_MS_MAX : pause_ms * 2;
	}
}

static void db_err(const store_t *st, char *err, size_t cap)
{
	snprintf(err, cap, "%s: %s", st->path, sqlite3_errmsg(st->db));
}

static double unix_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* journal_mode answers with the mode it ended up in: WAL can be refused (a
 * read-only directory, a file system without shared memory). */
static int set_pragmas(store_t *st, char *err, size_t cap)
{
	/* The busy timeout first: switching to WAL (and reading the schema)
	 * needs a lock that a reader polling the new file can hold for a moment. */
	store_set_patience(st, store_busy_patience_ms());
	/* A new file gets STORE_PAGE_BYTES_STR pages (see the define); SQLite
	 * ignores the pragma for a database that has pages already, and a WAL
	 * database keeps its page size for good, so an existing one is left as
	 * it is. It must come before WAL is set, which writes the header. */
	if (sqlite3_exec(st->db, "PRAGMA page_size=" STORE_PAGE_BYTES_STR, NULL, NULL, NULL) !=
	    SQLITE_OK) {
		db_err(st, err, cap);
		return -1;
	}
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK) {
		db_err(st, err, cap);
		return -1;
	}
	int rc = sqlite3_step(s);
	const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
	/* A database in memory (a dry run's import) has no WAL: "memory". */
	int wal = mode && (strcmp(mode, "wal") == 0 ||
	                   (strcmp(st->path, ":memory:") == 0 && strcmp(mode, "memory") == 0));
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW) {
		db_err(st, err, cap);
		return -1;
	}
	if (!wal) {
		snprintf(err, cap, "%s: cannot switch the database to WAL mode", st->path);
		return -1;
	}
	char sql[128];
	snprintf(sql, sizeof(sql),
	         "PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=%d; PRAGMA secure_delete=OFF;",
	         STORE_JOURNAL_SIZE_LIMIT_BYTES);
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		db_err(st, err, cap);
		return -1;
	}
	return 0;
}

/* A database made before checkpoints (issue 5) lacks their columns, one
 * made before the coding was recorded lacks content_encoding: each missing
 * column is added, NULL for every existing job. */
static int columns_add(store_t *st)
{
	static const char *const cols[][2] = {
		{"ckpt_offset", "INTEGER"},
		{"ckpt_records", "INTEGER"},
		{"ckpt_validator", "TEXT"},
		{"content_encoding", "TEXT"},
	};
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(st->db, "SELECT 1 FROM pragma_table_info('_ringfill_jobs')"
	                                    " WHERE name=?1",
	                            -1, &s, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < sizeof(cols) / sizeof(cols[0]); i++) {
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, cols[i][0], -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			rc = SQLITE_OK;
			continue;
		}
		if (rc != SQLITE_DONE)
			break;
		char sql[128];
		snprintf(sql, sizeof(sql), "ALTER TABLE _ringfill_jobs ADD COLUMN %s %s", cols[i][0],
		         cols[i][1]);
		rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	}
	sqlite3_finalize(s);
	return rc;
}

int store_open(const char *path, store_t **out, char *err, size_t err_cap)
{
	store_t *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, err_cap, "%s: out of memory", path);
		return -1;
	}
	snprintf(st->path, sizeof(st->path), "%s", path);
	st->pages_max = -1;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		if (st->db)
			db_err(st, err, err_cap);
		else
			snprintf(err, err_cap, "%s: out of memory", path);
		store_close(st);
		return -1;
	}
	sqlite3_extended_result_codes(st->db, 1);
	if (set_pragmas(st, err, err_cap) != 0)
		goto fail;
	if (sqlite3_exec(st->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    columns_add(st) != SQLITE_OK ||
	    sqlite3_prepare_v3(st->db,
	                       "SELECT id, attempts, url, key, vars, ckpt_offset, ckpt_records,"
	                       " ckpt_validator FROM _ringfill_jobs"
	                       " WHERE source=?1 AND state='pending' AND id>?2"
	                       " ORDER BY id LIMIT ?3",
	                       -1, SQLITE_PREPARE_PERSISTENT, &st->fetch, NULL) != SQLITE_OK) {
		db_err(st, err, err_cap);
		goto fail;
	}
	*out = st;
	return 0;
fail:
	store_close(st);
	return -1;
}

void store_close(store_t *st)
{
	if (!st)
		return;
	sqlite3_finalize(st->fetch);
	sqlite3_finalize(st->emit);
	sqlite3_close(st->db);
	free(st);
}

struct sqlite3 *store_db(store_t *st)
{
	return st->db;
}

/* ---- import ----------------------------------------------------------- */

/* Pending jobs go in IMPORT_GROUP_ROWS at a time, one statement of that
 * many rows: a statement per job cost about 4 us, most of it opening and
 * closing the cursors of the table and its three indexes (4,000 jobs: 16 ms
 * before the first job could start; in groups of 64: about 7 ms). */
#define IMPORT_GROUP_ROWS 64u

/* A pending job waiting for its group: offsets of its copies in group_buf. */
typedef struct {
	size_t key, key_len, url, url_len, vars, vars_len;
	size_t line, line_len; /* a manifest line's text (line_len 0: none) */
	unsigned long lineno;
} import_row_t;

/* One import in progress. */
typedef struct {
	store_t *st;
	const char *file, *source;
	sqlite3_stmt *ins;
	sqlite3_stmt *ins_group; /* IMPORT_GROUP_ROWS rows; made on first use */
	import_row_t group[IMPORT_GROUP_ROWS];
	uint32_t n_group;
	json_buf_t group_buf;    /* the group's keys, urls and vars */
	sqlite3_stmt *sel_known, *upd_known; /* known_row's; made on first use */
	sqlite3_stmt *ins_seen, *sel_seen;   /* manifest_key_seen's; made on first use */
	/* The manifest line whose job insert_job is given (NULL: not one). */
	const char *line;
	size_t line_len;
	unsigned long lineno;
	json_parser_t *parser;
	json_buf_t vars;
	store_import_t *res;
	double now;
	char *err;
	size_t err_cap;
} import_t;

/* Reads one line (without its '\n') into buf, which holds STORE_LINE_BYTES_MAX
 * bytes. Returns its length or -1 at end of file; sets *too_long when the line
 * did not fit (the rest of it is skipped, buf holds its start). NUL bytes are
 * kept, so url_parse sees and rejects them. */
static long read_line(FILE *f, char *buf, int *too_long)
{
	size_t n = 0;
	int c;
	*too_long = 0;
	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (n < STORE_LINE_BYTES_MAX)
			buf[n++] = (char)c;
		else
			*too_long = 1;
	}
	if (c == EOF && n == 0 && !*too_long)
		return -1;
	return (long)n;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Binds p[0..n) as text, or NULL when it is empty (a job's absent vars). */
static void bind_text_or_null(sqlite3_stmt *s, int i, const char *p, size_t n)
{
	if (n)
		sqlite3_bind_text(s, i, p, (int)n, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static int insert_one(import_t *im, const char *key, size_t key_len, const char *url,
                      size_t url_len, const char *vars, size_t vars_len, const char *reason);

static int known_prepare(import_t *im)
{
	static const char sel[] =
		"SELECT id, url IS ?3 AND vars IS ?4, state,"
		" coalesce(ckpt_records, 0) + coalesce(ckpt_offset, 0) > 0"
		" FROM _ringfill_jobs WHERE source = ?1 AND key = ?2";
	static const char upd[] =
		"UPDATE _ringfill_jobs SET url = ?2, vars = ?3, state = 'pending', attempts = 0,"
		" http_status = NULL, error_class = NULL, error = NULL, updated_at = ?4"
		" WHERE id = ?1 AND state <> 'done'";
	if (sqlite3_prepare_v2(im->st->db, sel, -1, &im->sel_known, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(im->st->db, upd, -1, &im->upd_known, NULL) != SQLITE_OK) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	return 0;
}

/* Whether an earlier manifest line of this import gave w's key: SEEN_NO
 * (the key, URL and variables are remembered now), SEEN_SAME (with the same
 * URL and variables), SEEN_OTHER; -1 on a database error. Only a manifest
 * can give one key two URLs or two sets of variables (a URL line's key is
 * its URL, a template's URL is made from its key, files have one path
 * each), so only its keys are remembered, in a TEMP table of the
 * connection that lives as long as the import. */
enum { SEEN_NO = 0, SEEN_SAME = 1, SEEN_OTHER = 2 };

static int manifest_key_seen(import_t *im, const import_row_t *w, const char *b)
{
	if (!w->line_len)
		return SEEN_NO;
	if (!im->ins_seen &&
	    (sqlite3_exec(im->st->db,
	                  "CREATE TEMP TABLE IF NOT EXISTS _ringfill_import_keys"
	                  " (key TEXT PRIMARY KEY, url TEXT, vars TEXT) WITHOUT ROWID",
	                  NULL, NULL, NULL) != SQLITE_OK ||
	     sqlite3_prepare_v2(im->st->db,
	                        "INSERT INTO temp._ringfill_import_keys (key, url, vars)"
	                        " VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING"
	                        " RETURNING 0",
	                        -1, &im->ins_seen, NULL) != SQLITE_OK ||
	     sqlite3_prepare_v2(im->st->db,
	                        "SELECT url IS ?2 AND vars IS ?3 FROM temp._ringfill_import_keys"
	                        " WHERE key = ?1",
	                        -1, &im->sel_seen, NULL) != SQLITE_OK)) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	sqlite3_stmt *st[2] = {im->ins_seen, im->sel_seen};
	for (int k = 0; k < 2; k++) {
		sqlite3_reset(st[k]);
		sqlite3_bind_text(st[k], 1, b + w->key, (int)w->key_len, SQLITE_STATIC);
		sqlite3_bind_text(st[k], 2, b + w->url, (int)w->url_len, SQLITE_STATIC);
		bind_text_or_null(st[k], 3, b + w->vars, w->vars_len);
	}
	int rc = sqlite3_step(im->ins_seen); /* a row: inserted, the key is new here */
	int inserted = rc == SQLITE_ROW;
	while (rc == SQLITE_ROW)
		rc = sqlite3_step(im->ins_seen);
	sqlite3_reset(im->ins_seen);
	if (rc != SQLITE_DONE) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	if (inserted)
		return SEEN_NO;
	rc = sqlite3_step(im->sel_seen);
	int same = rc == SQLITE_ROW && sqlite3_column_int(im->sel_seen, 0);
	sqlite3_reset(im->sel_seen);
	if (rc != SQLITE_ROW) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	return same ? SEEN_SAME : SEEN_OTHER;
}

/* A pending job the INSERT found known (its source and key): the same URL
 * and variables, nothing to do. Else, when an earlier line of this import
 * gave the key (seen), the later line is recorded as a malformed one,
 * naming the key (the first line wins); when the job is not done, it takes
 * the new URL and variables and is pending again, unless a committed
 * checkpoint holds rows of the old URL. A done job keeps its URL: it is not
 * fetched again. */
static int known_row(import_t *im, const import_row_t *w, const char *b, int seen)
{
	if (seen == SEEN_SAME) /* the line again: what the first did stands */
		return 0;
	if (!im->sel_known && known_prepare(im) != 0)
		return -1;
	sqlite3_stmt *s = im->sel_known;
	sqlite3_reset(s);
	sqlite3_bind_text(s, 1, im->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, b + w->key, (int)w->key_len, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, b + w->url, (int)w->url_len, SQLITE_STATIC);
	bind_text_or_null(s, 4, b + w->vars, w->vars_len);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) { /* the INSERT found it: it is there */
		if (rc != SQLITE_DONE)
			db_err(im->st, im->err, im->err_cap);
		else
			snprintf(im->err, im->err_cap, "%s: a known job vanished", im->file);
		sqlite3_reset(s);
		return -1;
	}
	int64_t id = sqlite3_column_int64(s, 0);
	bool same = sqlite3_column_int(s, 1);
	bool done = strcmp((const char *)sqlite3_column_text(s, 2), "done") == 0;
	bool ckpt = sqlite3_column_int(s, 3);
	sqlite3_reset(s);
	if (same)
		return 0;
	if (seen == SEEN_OTHER) {
		char reason[STORE_ERR_BYTES];
		snprintf(reason, sizeof(reason),
		         "%s:%lu: bad manifest line: key \"%.*s\" was given by an earlier line with "
		         "another url or other fields; the first is kept",
		         im->file, w->lineno, (int)(w->key_len < 256 ? w->key_len : 256), b + w->key);
		im->res->existing--;
		return insert_one(im, b + w->line, w->line_len, NULL, 0, NULL, 0, reason);
	}
	if (done)
		return 0;
	if (ckpt) {
		im->res->kept++;
		return 0;
	}
	s = im->upd_known;
	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, b + w->url, (int)w->url_len, SQLITE_STATIC);
	bind_text_or_null(s, 3, b + w->vars, w->vars_len);
	sqlite3_bind_double(s, 4, im->now);
	if (sqlite3_step(s) != SQLITE_DONE) {
		db_err(im->st, im->err, im->err_cap);
		sqlite3_reset(s);
		return -1;
	}
	im->res->changed += (uint64_t)sqlite3_changes(im->st->db);
	sqlite3_reset(s);
	return 0;
}

/* Inserts one job now. A NULL reason: a valid pending job (vars: its
 * variables as JSON, or none when vars_len is 0); else a failed one. */
static int insert_one(import_t *im, const char *key, size_t key_len, const char *url,
                      size_t url_len, const char *vars, size_t vars_len, const char *reason)
{
	sqlite3_stmt *s = im->ins;
	sqlite3_reset(s);
	sqlite3_bind_text(s, 2, key, (int)key_len, SQLITE_STATIC);
	if (reason) {
		sqlite3_bind_null(s, 3);
		sqlite3_bind_text(s, 4, "failed", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, "permanent", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 6, reason, -1, SQLITE_STATIC);
		sqlite3_bind_null(s, 7);
	} else {
		sqlite3_bind_text(s, 3, url, (int)url_len, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, "pending", -1, SQLITE_STATIC);
		sqlite3_bind_null(s, 5);
		sqlite3_bind_null(s, 6);
		bind_text_or_null(s, 7, vars, vars_len);
	}
	sqlite3_bind_double(s, 8, im->now);
	if (sqlite3_step(s) != SQLITE_DONE) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	if (reason)
		im->res->malformed++;
	else if (sqlite3_changes(im->st->db) == 1)
		im->res->added++;
	else
		im->res->existing++;
	return 0;
}

/* INSERT OR IGNORE of IMPORT_GROUP_ROWS pending jobs, the columns of
 * import_sql's pending rows: ?1 the source, ?2 the time, then each row's
 * key, url and vars. */
static int group_stmt(import_t *im, const char *source)
{
	char sql[256 + IMPORT_GROUP_ROWS * 64];
	size_t n = (size_t)snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO _ringfill_jobs"
	                                             " (source, key, url, state, attempts, vars,"
	                                             " updated_at) VALUES ");
	for (uint32_t r = 0; r < IMPORT_GROUP_ROWS && n < sizeof sql; r++)
		n += (size_t)snprintf(sql + n, sizeof sql - n, "%s(?1, ?%u, ?%u, 'pending', 0, ?%u, ?2)",
		                      r ? "," : "", 3 + 3 * r, 4 + 3 * r, 5 + 3 * r);
	if (n >= sizeof sql || sqlite3_prepare_v2(im->st->db, sql, -1, &im->ins_group, NULL) != SQLITE_OK) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	sqlite3_bind_text(im->ins_group, 1, source, -1, SQLITE_STATIC);
	sqlite3_bind_double(im->ins_group, 2, im->now);
	return 0;
}

/* The waiting pending jobs into the table, in the order they came: a full
 * group in one statement, fewer one by one. */
static int group_flush(import_t *im)
{
	const char *b = im->group_buf.data;
	uint32_t n = im->n_group;
	im->n_group = 0;
	im->group_buf.len = 0;
	if (n == IMPORT_GROUP_ROWS) {
		sqlite3_stmt *s = im->ins_group;
		sqlite3_reset(s);
		for (uint32_t r = 0; r < n; r++) {
			const import_row_t *w = &im->group[r];
			sqlite3_bind_text(s, (int)(3 + 3 * r), b + w->key, (int)w->key_len, SQLITE_STATIC);
			sqlite3_bind_text(s, (int)(4 + 3 * r), b + w->url, (int)w->url_len, SQLITE_STATIC);
			bind_text_or_null(s, (int)(5 + 3 * r), b + w->vars, w->vars_len);
		}
		if (sqlite3_step(s) != SQLITE_DONE) {
			db_err(im->st, im->err, im->err_cap);
			return -1;
		}
		uint64_t added = (uint64_t)sqlite3_changes(im->st->db); /* the rest were known */
		im->res->added += added;
		im->res->existing += n - added;
		/* Which rows were known, the statement does not say: each is
		 * looked up (a row this statement added is found the same). */
		for (uint32_t r = 0; r < n; r++) {
			int seen = manifest_key_seen(im, &im->group[r], b);
			if (seen < 0 || (added < n && known_row(im, &im->group[r], b, seen) != 0))
				return -1;
		}
		return 0;
	}
	for (uint32_t r = 0; r < n; r++) {
		const import_row_t *w = &im->group[r];
		uint64_t known = im->res->existing;
		int seen = manifest_key_seen(im, w, b);
		if (seen < 0 ||
		    insert_one(im, b + w->key, w->key_len, b + w->url, w->url_len, b + w->vars,
		               w->vars_len, NULL) ||
		    (im->res->existing != known && known_row(im, w, b, seen) != 0))
			return -1;
	}
	return 0;
}

/* One job. A NULL reason: a valid pending job (its variables in im->vars),
 * copied to wait for its group; else a failed one, inserted now, after the
 * jobs waiting (ids follow the input's order either way). */
static int insert_job(import_t *im, const char *key, size_t key_len, const char *url,
                      size_t url_len, const char *reason)
{
	if (reason)
		return group_flush(im) ? -1 : insert_one(im, key, key_len, url, url_len, NULL, 0, reason);
	json_buf_t *b = &im->group_buf;
	import_row_t *w = &im->group[im->n_group];
	w->key = b->len, w->key_len = key_len;
	w->url = b->len + key_len, w->url_len = url_len;
	w->vars = w->url + url_len, w->vars_len = im->vars.len;
	w->line = w->vars + w->vars_len, w->line_len = im->line ? im->line_len : 0;
	w->lineno = im->lineno;
	if (json_buf_append(b, key, key_len) || json_buf_append(b, url, url_len) ||
	    json_buf_append(b, im->vars.data, im->vars.len) ||
	    (w->line_len && json_buf_append(b, im->line, im->line_len))) {
		snprintf(im->err, im->err_cap, "%s: out of memory", im->file);
		return -1;
	}
	return ++im->n_group == IMPORT_GROUP_ROWS ? group_flush(im) : 0;
}

/* Collects the manifest line's fields other than url and key into im->vars as
 * a JSON object; im->vars stays empty when there are none. */
static int manifest_vars(import_t *im, const json_doc_t *d)
{
	im->vars.len = 0;
	uint32_t key = 1;
	for (uint32_t i = 0; i < d->nodes[0].count; i++) {
		uint32_t val = d->nodes[key].next;
		char name[4];
		size_t n = json_string_get(d, key, name, sizeof(name));
		int skip = (n == 3 && memcmp(name, "url", 3) == 0) ||
		           (n == 3 && memcmp(name, "key", 3) == 0);
		if (!skip) {
			const char *sep = im->vars.len ? "," : "{";
			if (json_buf_append(&im->vars, sep, 1) != 0 || json_write(d, key, &im->vars) != 0 ||
			    json_buf_append(&im->vars, ":", 1) != 0 || json_write(d, val, &im->vars) != 0)
				return -ENOMEM;
		}
		key = d->nodes[val].next;
	}
	if (im->vars.len && json_buf_append(&im->vars, "}", 1) != 0)
		return -ENOMEM;
	return 0;
}

long store_json_text(const json_doc_t *d, uint32_t v, bool allow_number, char *out, size_t cap)
{
	if (v == JSON_NONE)
		return -1;
	size_t n;
	if (json_type(d, v) == JSON_STRING) {
		n = json_string_get(d, v, out, cap - 1);
	} else if (allow_number && json_type(d, v) == JSON_NUMBER) {
		n = d->nodes[v].len;
		if (n < cap)
			memcpy(out, d->src + d->nodes[v].start, n);
	} else {
		return -1;
	}
	if (n >= cap)
		return -2;
	out[n] = '\0';
	return (long)n;
}

/* A string field of the manifest, unescaped into out (NUL-terminated).
 * Numbers are accepted for "key" as their literal text. Returns the length,
 * -1 when absent or of another type, -2 when longer than cap - 1. */
static long manifest_field(const json_doc_t *d, const char *name, int allow_number, char *out,
                           size_t cap)
{
	return store_json_text(d, json_object_get(d, 0, name, strlen(name)), allow_number, out, cap);
}

/* {"url": ..., "key": ..., other fields → vars}. line is NUL-terminated. */
static int import_manifest(import_t *im, unsigned long lineno, const char *line, size_t len)
{
	char reason[STORE_ERR_BYTES], url[URL_BYTES_MAX + 1], key[URL_BYTES_MAX + 1];
	json_doc_t d;
	json_error_t je;
	im->vars.len = 0;
	if (json_parse(im->parser, line, len, &d, &je) != 0) {
		if (strcmp(je.reason, "out of memory") == 0)
			goto nomem;
		snprintf(reason, sizeof(reason), "%s:%lu: bad manifest line: %s at byte %zu",
		         im->file, lineno, je.reason, je.offset);
		return insert_job(im, line, len, NULL, 0, reason);
	}
	if (json_type(&d, 0) != JSON_OBJECT) {
		snprintf(reason, sizeof(reason), "%s:%lu: bad manifest line: not a JSON object",
		         im->file, lineno);
		return insert_job(im, line, len, NULL, 0, reason);
	}
	long url_len = manifest_field(&d, "url", 0, url, sizeof(url));
	if (url_len < 0) {
		snprintf(reason, sizeof(reason), "%s:%lu: bad manifest line: %s", im->file, lineno,
		         url_len == -2 ? "\"url\" too long" : "no \"url\" string");
		return insert_job(im, line, len, NULL, 0, reason);
	}
	long key_len = manifest_field(&d, "key", 1, key, sizeof(key));
	url_t u;
	const char *why = NULL;
	if (key_len == -2 || (key_len == -1 && json_object_get(&d, 0, "key", 3) != JSON_NONE)) {
		snprintf(reason, sizeof(reason), "%s:%lu: bad manifest line: %s", im->file, lineno,
		         key_len == -2 ? "\"key\" too long" : "\"key\" is not a string or number");
		return insert_job(im, line, len, NULL, 0, reason);
	}
	if (url_parse(url, (size_t)url_len, &u, &why) != 0) {
		snprintf(reason, sizeof(reason), "%s:%lu: malformed URL: %s", im->file, lineno, why);
		return insert_job(im, line, len, NULL, 0, reason);
	}
	if (manifest_vars(im, &d) != 0)
		goto nomem;
	im->line = line, im->line_len = len, im->lineno = lineno; /* for known_row */
	int rc = key_len < 0 ? insert_job(im, url, (size_t)url_len, url, (size_t)url_len, NULL)
	                     : insert_job(im, key, (size_t)key_len, url, (size_t)url_len, NULL);
	im->line = NULL;
	return rc;
nomem:
	snprintf(im->err, im->err_cap, "%s: out of memory", im->file);
	return -1;
}

/* One trimmed, non-blank, non-comment line. line is NUL-terminated. */
static int import_line(import_t *im, unsigned long lineno, const char *line, size_t len,
                       int too_long)
{
	char reason[STORE_ERR_BYTES];
	url_t u;
	const char *why = NULL;
	im->res->lines++;
	if (too_long) {
		snprintf(reason, sizeof(reason), "%s:%lu: malformed URL: line longer than %u bytes",
		         im->file, lineno, STORE_LINE_BYTES_MAX);
		size_t klen = len < STORE_LONG_LINE_KEY_BYTES ? len : STORE_LONG_LINE_KEY_BYTES;
		return insert_job(im, line, klen, NULL, 0, reason);
	}
	if (line[0] == '{')
		return import_manifest(im, lineno, line, len);
	im->vars.len = 0;
	if (url_parse(line, len, &u, &why) != 0) {
		snprintf(reason, sizeof(reason), "%s:%lu: malformed URL: %s", im->file, lineno, why);
		return insert_job(im, line, len, NULL, 0, reason);
	}
	return insert_job(im, line, len, line, len, NULL);
}

static int import_key(import_t *im, const store_template_t *t, unsigned long lineno,
                      const char *key, size_t len, int too_long);

static int import_stream(import_t *im, const store_template_t *t, FILE *f, char *buf)
{
	unsigned long lineno = 0;
	long n;
	int too_long;
	while ((n = read_line(f, buf, &too_long)) >= 0) {
		lineno++;
		size_t a = 0, b = (size_t)n;
		while (a < b && is_space(buf[a]))
			a++;
		while (b > a && is_space(buf[b - 1]))
			b--;
		if (a == b || buf[a] == '#')
			continue;
		buf[b] = '\0';
		int rc = t ? import_key(im, t, lineno, buf + a, b - a, too_long)
		           : import_line(im, lineno, buf + a, b - a, too_long);
		if (rc != 0)
			return -1;
	}
	if (ferror(f)) {
		snprintf(im->err, im->err_cap, "%s: %s", im->file, strerror(errno));
		return -1;
	}
	return 0;
}

/* A re-run picks up pending and transient jobs (DESIGN §5): this source's
 * jobs that ran out of attempts on a transient failure get a fresh set of
 * attempts. error and http_status stay as the last failure's history (see
 * docs/store.md); permanent failures stay failed. */
static int requeue_transient(import_t *im, const char *source)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(im->st->db,
	                       "UPDATE _ringfill_jobs SET state='pending', attempts=0,"
	                       " error_class=NULL, updated_at=?2"
	                       " WHERE source=?1 AND state='failed' AND error_class='transient'",
	                       -1, &s, NULL) != SQLITE_OK) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 2, im->now);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		db_err(im->st, im->err, im->err_cap);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return -1;
	im->res->requeued = (uint64_t)sqlite3_changes(im->st->db);
	return 0;
}

static const char import_sql[] =
	"INSERT OR IGNORE INTO _ringfill_jobs"
	" (source, key, url, state, attempts, error_class, error, vars,"
	"  updated_at) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8)";

/* The insert statement and BEGIN IMMEDIATE; then import_finish. */
static int import_begin(import_t *im, const char *source)
{
	if (sqlite3_prepare_v2(im->st->db, import_sql, -1, &im->ins, NULL) != SQLITE_OK) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	sqlite3_bind_text(im->ins, 1, source, -1, SQLITE_STATIC);
	if (group_stmt(im, source))
		return -1;
	if (store_exec_busy(im->st->db, "BEGIN IMMEDIATE", im->st->patience_ms, NULL) != SQLITE_OK) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	return 0;
}

/* After the jobs (rc 0): the requeue and COMMIT; else ROLLBACK. */
static int import_finish(import_t *im, const char *source, int rc)
{
	if (rc == 0)
		rc = group_flush(im);
	sqlite3_finalize(im->ins_group);
	im->ins_group = NULL;
	sqlite3_finalize(im->sel_known);
	sqlite3_finalize(im->upd_known);
	im->sel_known = im->upd_known = NULL;
	if (im->ins_seen) {
		sqlite3_finalize(im->ins_seen);
		sqlite3_finalize(im->sel_seen);
		im->ins_seen = im->sel_seen = NULL;
		if (rc == 0 && sqlite3_exec(im->st->db, "DROP TABLE temp._ringfill_import_keys", NULL,
		                            NULL, NULL) != SQLITE_OK) {
			db_err(im->st, im->err, im->err_cap);
			rc = -1;
		}
	}
	json_buf_free(&im->group_buf);
	if (rc == 0)
		rc = requeue_transient(im, source);
	if (rc == 0 && sqlite3_exec(im->st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_err(im->st, im->err, im->err_cap);
		rc = -1;
	}
	if (rc != 0)
		sqlite3_exec(im->st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int store_import(store_t *st, const char *source, const char *file,
                 const store_template_t *tmpl, store_import_t *res, char *err, size_t err_cap)
{
	memset(res, 0, sizeof(*res));
	import_t im = {.st = st, .file = file, .source = source, .res = res, .now = unix_now(),
	               .err = err, .err_cap = err_cap};
	FILE *f = fopen(file, "r");
	if (!f) {
		snprintf(err, err_cap, "%s: %s", file, strerror(errno));
		return -1;
	}
	int rc = -1;
	char *buf = malloc(STORE_LINE_BYTES_MAX + 1);
	im.parser = json_parser_new(0);
	if (!buf || !im.parser) {
		snprintf(err, err_cap, "%s: out of memory", file);
		goto out;
	}
	if (import_begin(&im, source) != 0)
		goto out;
	rc = import_finish(&im, source, import_stream(&im, tmpl, f, buf));
out:
	sqlite3_finalize(im.ins);
	sqlite3_finalize(im.ins_group); /* import_begin failed after making it */
	json_buf_free(&im.vars);
	json_parser_free(im.parser);
	free(buf);
	fclose(f);
	return rc;
}

/* For store_import_files, when the source has jobs already: a TEMP table
 * of their URLs and keys, and *probe on it (NULL when the source has none:
 * a first import pays nothing). 0, or -1 with the error in im. */
static int known_urls(import_t *im, sqlite3_stmt **probe)
{
	*probe = NULL;
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(im->st->db,
	                       "SELECT EXISTS (SELECT 1 FROM _ringfill_jobs WHERE source = ?1)", -1,
	                       &s, NULL) != SQLITE_OK)
		goto db;
	sqlite3_bind_text(s, 1, im->source, -1, SQLITE_STATIC);
	int has = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (has < 0)
		goto db;
	if (has == 0)
		return 0;
	if (sqlite3_exec(im->st->db,
	                 "CREATE TEMP TABLE IF NOT EXISTS _ringfill_import_urls"
	                 " (url TEXT PRIMARY KEY, key TEXT) WITHOUT ROWID",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(im->st->db,
	                       "INSERT OR IGNORE INTO temp._ringfill_import_urls (url, key)"
	                       " SELECT url, key FROM _ringfill_jobs WHERE source = ?1"
	                       " AND url IS NOT NULL",
	                       -1, &s, NULL) != SQLITE_OK)
		goto db;
	sqlite3_bind_text(s, 1, im->source, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE ||
	    sqlite3_prepare_v2(im->st->db,
	                       "SELECT key IS NOT ?2 FROM temp._ringfill_import_urls WHERE url = ?1",
	                       -1, probe, NULL) != SQLITE_OK)
		goto db;
	return 0;
db:
	db_err(im->st, im->err, im->err_cap);
	return -1;
}

/* 1 when the probe finds url known under a key other than key, else 0; -1
 * on a database error. */
static int known_elsewhere(import_t *im, sqlite3_stmt *probe, const char *url, const char *key)
{
	sqlite3_reset(probe);
	sqlite3_bind_text(probe, 1, url, -1, SQLITE_STATIC);
	sqlite3_bind_text(probe, 2, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(probe);
	int other = rc == SQLITE_ROW && sqlite3_column_int(probe, 0);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_err(im->st, im->err, im->err_cap);
		return -1;
	}
	sqlite3_reset(probe);
	return other;
}

static int import_list(store_t *st, const char *source, const store_job_t *jobs, size_t n,
                       bool files, store_import_t *res, char *err, size_t err_cap)
{
	memset(res, 0, sizeof(*res));
	import_t im = {.st = st, .file = source, .source = source, .res = res, .now = unix_now(),
	               .err = err, .err_cap = err_cap};
	sqlite3_stmt *probe = NULL;
	int rc = import_begin(&im, source);
	if (rc == 0 && files)
		rc = known_urls(&im, &probe);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		res->lines++;
		int other = probe ? known_elsewhere(&im, probe, jobs[i].url, jobs[i].key) : 0;
		if (other > 0) {
			res->existing++;
			res->same_file++;
			continue;
		}
		rc = other < 0 ? -1
		               : insert_job(&im, jobs[i].key, strlen(jobs[i].key), jobs[i].url,
		                            strlen(jobs[i].url), NULL);
	}
	if (probe) {
		sqlite3_finalize(probe);
		if (rc == 0 && sqlite3_exec(st->db, "DROP TABLE temp._ringfill_import_urls", NULL, NULL,
		                            NULL) != SQLITE_OK) {
			db_err(st, err, err_cap);
			rc = -1;
		}
	}
	if (rc == 0 || im.ins)
		rc = import_finish(&im, source, rc);
	sqlite3_finalize(im.ins);
	return rc;
}

int store_import_list(store_t *st, const char *source, const store_job_t *jobs, size_t n,
                      store_import_t *res, char *err, size_t err_cap)
{
	return import_list(st, source, jobs, n, false, res, err, err_cap);
}

int store_import_files(store_t *st, const char *source, const store_job_t *jobs, size_t n,
                       store_import_t *res, char *err, size_t err_cap)
{
	return import_list(st, source, jobs, n, true, res, err, err_cap);
}

int store_pages_rebase(store_t *st, const char *source,
                       int (*url_of)(void *ctx, const char *cursor, char *out, size_t cap),
                       void *ctx, uint64_t *changed, char *err, size_t err_cap)
{
	static const char sel[] =
		"SELECT id, key, url FROM _ringfill_jobs WHERE source = ?1 AND key GLOB '"
		STORE_PAGE_KEY_PREFIX "*' AND url IS NOT NULL AND state <> 'done'"
		" AND coalesce(ckpt_records, 0) = 0 AND coalesce(ckpt_offset, 0) = 0";
	static const char upd[] =
		"UPDATE _ringfill_jobs SET url = ?2, state = 'pending', attempts = 0,"
		" http_status = NULL, error_class = NULL, error = NULL, updated_at = ?3"
		" WHERE id = ?1";
	*changed = 0;
	sqlite3_stmt *s = NULL, *u = NULL;
	if (store_exec_busy(st->db, "BEGIN IMMEDIATE", st->patience_ms, NULL) != SQLITE_OK) {
		db_err(st, err, err_cap);
		return -1;
	}
	int rc = sqlite3_prepare_v2(st->db, sel, -1, &s, NULL) == SQLITE_OK &&
	                 sqlite3_prepare_v2(st->db, upd, -1, &u, NULL) == SQLITE_OK
	             ? SQLITE_OK
	             : SQLITE_ERROR;
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
		double now = unix_now();
		char url[URL_BYTES_MAX + 1];
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			const char *key = (const char *)sqlite3_column_text(s, 1);
			const char *old = (const char *)sqlite3_column_text(s, 2);
			if (url_of(ctx, key + strlen(STORE_PAGE_KEY_PREFIX), url, sizeof url) < 0 ||
			    !strcmp(url, old))
				continue; /* no URL for it now: it stays as it is */
			sqlite3_reset(u);
			sqlite3_bind_int64(u, 1, sqlite3_column_int64(s, 0));
			sqlite3_bind_text(u, 2, url, -1, SQLITE_TRANSIENT);
			sqlite3_bind_double(u, 3, now);
			if (sqlite3_step(u) != SQLITE_DONE) {
				rc = SQLITE_ERROR;
				break;
			}
			(*changed)++;
		}
	}
	if (rc != SQLITE_DONE)
		db_err(st, err, err_cap);
	sqlite3_finalize(s);
	sqlite3_finalize(u);
	if (rc == SQLITE_DONE && sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	if (rc == SQLITE_DONE)
		db_err(st, err, err_cap);
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* ---- jobs made during the run (paginate) ------------------------------- */

void store_set_page_limit(store_t *st, uint64_t max_pages)
{
	st->page_limit = max_pages;
}

/* A query of one value on source; returns the step's result code, the
 * column in *out_text (copied, cap bytes) or *out_int. */
static int page_query(store_t *st, const char *sql, const char *source, const char *sha,
                      int64_t id, char *out_text, size_t cap, int64_t *out_int)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
	if (sha) {
		sqlite3_bind_text(s, 2, sha, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, id);
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && out_text)
		snprintf(out_text, cap, "%s", (const char *)sqlite3_column_text(s, 0));
	if (rc == SQLITE_ROW && out_int)
		*out_int = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc;
}

/* Before a page names its next page: 0 when it may, 1 (why set) when it
 * repeats another page's body or the chain would pass the page limit, -1 on
 * a database error. The body lookup names its index: without statistics the
 * planner prefers the OR of two ranges of UNIQUE(source, key), which reads
 * every page of the chain, for every page. Identical pages cannot happen in a chain that goes on:
 * each page holds the cursor of the next. The page count is kept as an upper
 * bound (a rolled-back page's next page stays counted) and queried exactly
 * only when that bound reaches the limit. */
static int page_check(store_t *st, const char *source, const batch_t *b, char *why,
                      size_t why_cap)
{
	char key[sizeof(STORE_PAGE_KEY_PREFIX) + 2048];
	int rc = !b->sha256_hex[0] ? SQLITE_DONE
	         : page_query(st, "SELECT key FROM _ringfill_jobs"
	                          " INDEXED BY _ringfill_jobs_page_sha256 WHERE source=?1"
	                          " AND sha256=?2 AND id<>?3 AND " PAGE_JOBS " LIMIT 1",
	                      source, b->sha256_hex, b->job_id, key, sizeof(key), NULL);
	if (rc == SQLITE_ROW) {
		snprintf(why, why_cap, "page repeats page \"%.300s\" (same content): the server loops",
		         key);
		return 1;
	}
	if (rc != SQLITE_DONE)
		return -1;
	if (!st->page_limit || (st->pages_max >= 0 && (uint64_t)st->pages_max < st->page_limit))
		return 0;
	/* Pages only: an item a page could not make a job of is recorded as a
	 * failed job keyed "PAGEKEY item N" (engine/paginate.c), which PAGE_JOBS
	 * matches too, but it has no URL. Counted, they cut a chain short of
	 * max_pages once a run resumed it (the count is taken per run). */
	rc = page_query(st, "SELECT count(*) FROM _ringfill_jobs WHERE source=?1 AND " PAGE_JOBS
	                    " AND url IS NOT NULL",
	                source, NULL, 0, NULL, 0, &st->pages_max);
	if (rc != SQLITE_ROW)
		return -1;
	if ((uint64_t)st->pages_max < st->page_limit)
		return 0;
	snprintf(why, why_cap, "more than max_pages (%llu) pages: the next page is not fetched",
	         (unsigned long long)st->page_limit);
	return 1;
}

int store_jobs_emit(store_t *st, const char *source, const batch_t *b, char *why,
                    size_t why_cap)
{
	if (!st->emit && sqlite3_prepare_v3(st->db, import_sql, -1, SQLITE_PREPARE_PERSISTENT,
	                                    &st->emit, NULL) != SQLITE_OK)
		return -1;
	sqlite3_stmt *s = st->emit;
	double now = unix_now();
	batch_job_t j;
	for (size_t pos = 0; batch_next_job(b, &pos, &j);) {
		bool failed = j.flags & BATCH_EMIT_FAILED;
		int rc;
		if ((j.flags & BATCH_EMIT_NEXT_PAGE) && (rc = page_check(st, source, b, why, why_cap)))
			return rc;
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, j.key, (int)j.key_len, SQLITE_STATIC);
		if (j.url)
			sqlite3_bind_text(s, 3, j.url, (int)j.url_len, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, failed ? "failed" : "pending", -1, SQLITE_STATIC);
		if (failed) {
			sqlite3_bind_text(s, 5, "permanent", -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 6, j.text, (int)j.text_len, SQLITE_STATIC);
		} else if (j.text_len) {
			sqlite3_bind_text(s, 7, j.text, (int)j.text_len, SQLITE_STATIC);
		}
		sqlite3_bind_double(s, 8, now);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return -1;
		if (!(j.flags & BATCH_EMIT_NEXT_PAGE))
			continue;
		if (sqlite3_changes(st->db) == 0) {
			snprintf(why, why_cap, "repeated cursor: the next page's cursor (job key "
			         "\"%.*s\") was already seen in this pagination", (int)j.key_len, j.key);
			return 1;
		}
		if (st->pages_max >= 0)
			st->pages_max++;
	}
	return 0;
}

/* ---- URL template x key list ------------------------------------------- */

/* {"NAME":"key"}, the key escaped as a JSON string. */
static int template_vars(json_buf_t *vars, const char *name, size_t name_len, const char *key,
                         size_t key_len)
{
	vars->len = 0;
	if (json_buf_append(vars, "{\"", 2) || json_buf_append(vars, name, name_len) ||
	    json_buf_append(vars, "\":\"", 3))
		return -ENOMEM;
	for (size_t i = 0; i < key_len; i++) {
		unsigned char c = (unsigned char)key[i];
		char esc[8];
		int n = 0;
		if (c == '"' || c == '\\')
			n = snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c < 0x20)
			n = snprintf(esc, sizeof(esc), "\\u%04x", c);
		if (n ? json_buf_append(vars, esc, (size_t)n) : json_buf_append(vars, key + i, 1))
			return -ENOMEM;
	}
	return json_buf_append(vars, "\"}", 2);
}

/* One key line: the template's {NAME} replaced by the encoded key. */
static int import_key(import_t *im, const store_template_t *t, unsigned long lineno,
                      const char *key, size_t len, int too_long)
{
	char reason[STORE_ERR_BYTES], enc[URL_BYTES_MAX + 1], url[URL_BYTES_MAX + 1];
	const char *open = strchr(t->url, '{'), *close = strchr(t->url, '}');
	assert(open && close && close > open);
	size_t name_len = (size_t)(close - open - 1);
	im->res->lines++;
	im->vars.len = 0;
	long n = too_long ? -1 : url_percent_encode(key, len, enc, sizeof(enc));
	int u = n < 0 ? -1 : snprintf(url, sizeof(url), "%.*s%s%s", (int)(open - t->url), t->url,
	                              enc, close + 1);
	const char *why = "longer than 8192 bytes";
	url_t parsed;
	if (!too_long && url_template_dot_segment(t->url, open, close, key, len)) {
		u = -1;
		why = "the key is a path segment of its own (empty, \".\" or \"..\") that would "
		      "name another path";
	}
	if (u < 0 || (size_t)u >= sizeof(url) || url_parse(url, (size_t)u, &parsed, &why) != 0) {
		snprintf(reason, sizeof(reason), "%s:%lu: malformed URL from the template: %s",
		         im->file, lineno, why);
		size_t klen = len < STORE_LONG_LINE_KEY_BYTES ? len : STORE_LONG_LINE_KEY_BYTES;
		return insert_job(im, key, klen, NULL, 0, reason);
	}
	if (template_vars(&im->vars, open + 1, name_len, key, len) != 0) {
		snprintf(im->err, im->err_cap, "%s: out of memory", im->file);
		return -1;
	}
	return insert_job(im, key, len, url, (size_t)u, NULL);
}

/* ---- import: one transaction ------------------------------------------- */

int store_import_urls(store_t *st, const char *source, const char *file,
                      store_import_t *res, char *err, size_t err_cap)
{
	return store_import(st, source, file, NULL, res, err, err_cap);
}

/* ---- queries ---------------------------------------------------------- */

static job_desc_t *job_desc_new(sqlite3_stmt *s)
{
	const char *url = (const char *)sqlite3_column_text(s, 2);
	size_t url_len = url ? (size_t)sqlite3_column_bytes(s, 2) : 0;
	const char *key = (const char *)sqlite3_column_text(s, 3);
	size_t key_len = (size_t)sqlite3_column_bytes(s, 3);
	const char *vars = (const char *)sqlite3_column_text(s, 4);
	size_t vars_len = vars ? (size_t)sqlite3_column_bytes(s, 4) : 0;
	const char *val = (const char *)sqlite3_column_text(s, 7);
	size_t val_len = val ? (size_t)sqlite3_column_bytes(s, 7) : 0;
	job_desc_t *j = malloc(sizeof(*j) + url_len + 1 + key_len + 1 + vars_len + 1 + val_len + 1);
	if (!j)
		return NULL;
	char *p = (char *)(j + 1);
	j->id = sqlite3_column_int64(s, 0);
	j->attempts = sqlite3_column_int(s, 1);
	j->url = p;
	if (url_len)
		memcpy(p, url, url_len);
	p[url_len] = '\0';
	p += url_len + 1;
	j->key = p;
	memcpy(p, key, key_len);
	p[key_len] = '\0';
	p += key_len + 1;
	j->vars = NULL;
	if (vars) {
		j->vars = p;
		memcpy(p, vars, vars_len);
		p[vars_len] = '\0';
		p += vars_len + 1;
	}
	int64_t off = sqlite3_column_int64(s, 5), rec = sqlite3_column_int64(s, 6);
	j->ckpt_offset = off > 0 ? (uint64_t)off : 0;
	j->ckpt_records = rec > 0 ? (uint64_t)rec : 0;
	j->ckpt_validator = NULL;
	if (val) {
		j->ckpt_validator = p;
		memcpy(p, val, val_len);
		p[val_len] = '\0';
	}
	return j;
}

int store_jobs_fetch(store_t *st, const char *source, int64_t after_id, job_desc_t **out,
                     int max, char *err, size_t err_cap)
{
	assert(max >= 0);
	sqlite3_stmt *s = st->fetch;
	sqlite3_reset(s);
	sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, after_id);
	sqlite3_bind_int(s, 3, max);
	int n = 0, rc = SQLITE_DONE;
	while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		out[n] = job_desc_new(s);
		if (!out[n]) {
			snprintf(err, err_cap, "%s: out of memory", st->path);
			goto fail;
		}
		n++;
	}
	if (n < max && rc != SQLITE_DONE) {
		db_err(st, err, err_cap);
		goto fail;
	}
	sqlite3_reset(s);
	return n;
fail:
	sqlite3_reset(s);
	while (n > 0)
		free(out[--n]);
	return -1;
}

int store_job_counts(store_t *st, const char *source, store_counts_t *c, char *err,
                     size_t err_cap)
{
	memset(c, 0, sizeof(*c));
	sqlite3_stmt *s;
	/* Done jobs are not in _ringfill_jobs_not_done: pending and failed are
	 * counted there, all jobs in UNIQUE(source, key)'s index, and done is
	 * the rest (the CHECK allows no other state). */
	const char *sql =
		source ? "SELECT (SELECT count(*) FROM _ringfill_jobs WHERE source=?1 AND state='pending'),"
		         " (SELECT count(*) FROM _ringfill_jobs WHERE source=?1 AND state='failed'),"
		         " (SELECT count(*) FROM _ringfill_jobs WHERE source=?1)"
		       : "SELECT (SELECT count(*) FROM _ringfill_jobs WHERE state='pending'),"
		         " (SELECT count(*) FROM _ringfill_jobs WHERE state='failed'),"
		         " (SELECT count(*) FROM _ringfill_jobs)";
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_err(st, err, err_cap);
		return -1;
	}
	if (source)
		sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		c->pending = (uint64_t)sqlite3_column_int64(s, 0);
		c->failed = (uint64_t)sqlite3_column_int64(s, 1);
		c->total = (uint64_t)sqlite3_column_int64(s, 2);
		c->done = c->total - c->pending - c->failed;
	} else {
		db_err(st, err, err_cap);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}
