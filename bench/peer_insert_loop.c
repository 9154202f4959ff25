/* bench/peer_insert_loop.c: rf_peer_insert_loop, the `e2e` suite's floor
 * (docs/benchmarks.md, issue 7): the time a minimal C loop needs just to
 * insert the same rows into SQLite. bench/netbench.py runs it after every
 * ringfill run:
 *
 *     rf_peer_insert_loop SRC.db DST.db [ROWS.db]
 *
 * Untimed: every table of SRC, ringfill's finished database (not its own
 * _ringfill* tables), with its CREATE TABLE and its key index as SRC has
 * them, and its rows read into memory in rowid order: SRC's own rows (the
 * rows ringfill stored, each key once), or with ROWS.db the rows of ROWS.db's
 * table of the same name, SRC's columns by name (bench/peer_importer.py's
 * dump of every row the documents hold, in document order: issue 6's "the
 * same rows in arrival order", a key that comes again upserted again). Timed,
 * into a fresh DST: the same tables and indexes, then every row through
 * prepared 50-row INSERTs (plus one remainder statement per table), values
 * bound from memory, `ON CONFLICT (key) DO UPDATE` every other column where
 * the table has a key index (ringfill's upsert mode, _ringfill_key_TABLE),
 * 100,000 rows per transaction, WAL and synchronous=NORMAL. Tables are loaded
 * one after the other. No job state, no parsing, no network: the reference
 * ringfill's whole backfill is measured against (with ROWS.db the issues'
 * naive loop, which ringfill's key-sorting writer is meant to beat). Prints {"rows": N,
 * "tables": N, "insert_s": S, "close_s": S} on stdout (close_s: the final
 * sqlite3_close, which copies what the WAL holds into the file and deletes
 * the WAL, as ringfill's own end does); exit 0, or 1 with the reason on
 * stderr. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#define LOOP_ROWS_PER_STMT 50u
#define LOOP_ROWS_PER_TX 100000u
#define LOOP_TABLES_MAX 64u     /* a job file has at most 64 tables */
#define LOOP_COLUMNS_MAX 1000u  /* below SQLite's default SQLITE_MAX_COLUMN (2000) */
#define LOOP_SQL_BYTES_MAX (1u << 20)
#define LOOP_KEY_PREFIX "_ringfill_key_"

/* One table of SRC. Owns its strings, and its values (sqlite3_value_dup
 * copies: n_rows * n_cols, row-major). */
typedef struct {
	char *name, *create_sql, *index_sql;
	char **cols;
	uint32_t n_cols;
	bool *is_key;
	sqlite3_value **vals;
	uint64_t n_rows;
} loop_table_t;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(sqlite3 *db, const char *what)
{
	fprintf(stderr, "rf_peer_insert_loop: %s: %s\n", what,
	        db ? sqlite3_errmsg(db) : "out of memory");
	return -EIO;
}

static char *dup_text(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? strdup((const char *)t) : NULL;
}

/* Appends formatted text to sql[*len..cap). What does not fit is cut and
 * *len stops at cap - 1, so a statement that ran out of room is seen by
 * *len + 1 >= cap afterwards, and no append ever writes past cap. */
__attribute__((format(printf, 4, 5))) static void put(char *sql, size_t cap, size_t *len,
                                                     const char *fmt, ...)
{
	if (*len + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(sql + *len, cap - *len, fmt, ap);
	va_end(ap);
	*len = n < 0 || (size_t)n >= cap - *len ? cap - 1 : *len + (size_t)n;
}

/* Appends "name" as a quoted SQL identifier (quotes doubled). */
static void ident(char *sql, size_t cap, size_t *len, const char *name)
{
	put(sql, cap, len, "\"");
	const char *p = name;
	for (; *p && *len + 3 < cap; p++) {
		if (*p == '"')
			sql[(*len)++] = '"';
		sql[(*len)++] = *p;
	}
	if (*p) { /* cut: as put does, so the caller sees it */
		*len = cap - 1;
		sql[*len] = '\0';
		return;
	}
	sql[*len] = '\0';
	put(sql, cap, len, "\"");
}

/* The columns of t, and which of them its key index covers. */
static int read_columns(sqlite3 *db, loop_table_t *t)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?, 'main')", -1, &s, NULL) !=
	    SQLITE_OK)
		return fail(db, "table_info");
	sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
	t->cols = calloc(LOOP_COLUMNS_MAX, sizeof(*t->cols));
	t->is_key = calloc(LOOP_COLUMNS_MAX, sizeof(*t->is_key));
	int rc = t->cols && t->is_key ? 0 : fail(NULL, "columns");
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW && t->n_cols < LOOP_COLUMNS_MAX)
		t->cols[t->n_cols++] = dup_text(s, 0);
	sqlite3_finalize(s);
	if (rc != 0 || !t->index_sql)
		return rc;
	char iname[600];
	snprintf(iname, sizeof(iname), LOOP_KEY_PREFIX "%s", t->name);
	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_index_info(?, 'main')", -1, &s, NULL) !=
	    SQLITE_OK)
		return fail(db, "index_info");
	sqlite3_bind_text(s, 1, iname, -1, SQLITE_TRANSIENT);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *c = (const char *)sqlite3_column_text(s, 0);
		for (uint32_t i = 0; c && i < t->n_cols; i++)
			t->is_key[i] |= !strcmp(t->cols[i], c);
	}
	sqlite3_finalize(s);
	return 0;
}

/* Every row of t in rowid order, copied into memory: from SRC's table, or
 * with ROWS.db (attached as "r") from r's table of the same name, t's
 * columns by name. */
static int read_rows(sqlite3 *db, loop_table_t *t, bool from_rows_db)
{
	char *sql = malloc(LOOP_SQL_BYTES_MAX);
	if (!sql)
		return fail(NULL, "select");
	size_t len = 0;
	put(sql, LOOP_SQL_BYTES_MAX, &len, "SELECT ");
	for (uint32_t c = 0; c < t->n_cols; c++) {
		if (c)
			put(sql, LOOP_SQL_BYTES_MAX, &len, ", ");
		ident(sql, LOOP_SQL_BYTES_MAX, &len, t->cols[c]);
	}
	put(sql, LOOP_SQL_BYTES_MAX, &len, " FROM %s", from_rows_db ? "r." : "");
	ident(sql, LOOP_SQL_BYTES_MAX, &len, t->name);
	put(sql, LOOP_SQL_BYTES_MAX, &len, " ORDER BY rowid");
	sqlite3_stmt *s = NULL;
	int prc = len + 1 < LOOP_SQL_BYTES_MAX ? sqlite3_prepare_v2(db, sql, -1, &s, NULL)
	                                       : SQLITE_TOOBIG;
	free(sql);
	if (prc != SQLITE_OK)
		return fail(db, from_rows_db ? "select from ROWS.db" : "select");
	uint64_t cap = 0;
	int rc = 0, step;
	while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
		if (t->n_rows == cap) {
			cap = cap ? cap * 2 : 4096;
			sqlite3_value **v = realloc(t->vals, cap * t->n_cols * sizeof(*v));
			if (!v) {
				rc = fail(NULL, "rows");
				break;
			}
			t->vals = v;
		}
		sqlite3_value **row = t->vals + t->n_rows * t->n_cols;
		for (uint32_t c = 0; c < t->n_cols; c++)
			row[c] = sqlite3_value_dup(sqlite3_column_value(s, (int)c));
		t->n_rows++;
		for (uint32_t c = 0; c < t->n_cols && rc == 0; c++)
			rc = row[c] ? 0 : fail(NULL, "row values");
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = fail(db, "select");
	sqlite3_finalize(s);
	return rc;
}

static int read_source(const char *path, const char *rows_path, loop_table_t *tabs,
                       uint32_t *n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK ? 0
	                                                                            : fail(db, path);
	if (rc == 0 && rows_path) {
		sqlite3_stmt *a = NULL;
		if (sqlite3_prepare_v2(db, "ATTACH ? AS r", -1, &a, NULL) != SQLITE_OK)
			rc = fail(db, "attach");
		else {
			sqlite3_bind_text(a, 1, rows_path, -1, SQLITE_STATIC);
			if (sqlite3_step(a) != SQLITE_DONE)
				rc = fail(db, rows_path);
		}
		sqlite3_finalize(a);
	}
	/* The key index of a table is _ringfill_key_TABLE (docs/jobfile.md). */
	if (rc == 0 && sqlite3_prepare_v2(db,
	                                  "SELECT t.name, t.sql, i.sql FROM main.sqlite_master t "
	                                  "LEFT JOIN main.sqlite_master i ON i.type = 'index' AND "
	                                  "i.tbl_name = t.name AND i.name = '" LOOP_KEY_PREFIX
	                                  "' || t.name WHERE t.type = 'table' AND t.name NOT "
	                                  "LIKE '\\_ringfill%' ESCAPE '\\' AND t.name NOT LIKE "
	                                  "'sqlite\\_%' ESCAPE '\\' ORDER BY t.rowid",
	                                  -1, &s, NULL) != SQLITE_OK)
		rc = fail(db, "sqlite_master");
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		if (*n == LOOP_TABLES_MAX) {
			fprintf(stderr, "rf_peer_insert_loop: more than %u tables\n", LOOP_TABLES_MAX);
			rc = -E2BIG;
			break;
		}
		loop_table_t *t = &tabs[(*n)++];
		t->name = dup_text(s, 0);
		t->create_sql = dup_text(s, 1);
		t->index_sql = dup_text(s, 2);
		rc = !t->name || !t->create_sql ? fail(NULL, "schema") : read_columns(db, t);
		if (rc == 0)
			rc = read_rows(db, t, rows_path != NULL);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return rc;
}

/* INSERT INTO "t" ("c", ...) VALUES (?, ...) x rows [ON CONFLICT ("k", ...)
 * DO UPDATE SET "c" = excluded."c", ...]. */
static int prepare(sqlite3 *db, const loop_table_t *t, uint32_t rows, sqlite3_stmt **out)
{
	char *sql = malloc(LOOP_SQL_BYTES_MAX);
	size_t len = 0, cap = LOOP_SQL_BYTES_MAX;
	if (!sql)
		return fail(NULL, "prepare");
	put(sql, cap, &len, "INSERT INTO ");
	ident(sql, cap, &len, t->name);
	for (uint32_t c = 0; c < t->n_cols; c++) {
		put(sql, cap, &len, c ? ", " : " (");
		ident(sql, cap, &len, t->cols[c]);
	}
	put(sql, cap, &len, ") VALUES ");
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < t->n_cols; c++)
			put(sql, cap, &len, "%s?%s", c ? "" : r ? ", (" : "(",
			    c + 1 < t->n_cols ? ", " : ")");
	if (t->index_sql) {
		const char *sep = " ON CONFLICT (";
		for (uint32_t c = 0; c < t->n_cols; c++)
			if (t->is_key[c]) {
				put(sql, cap, &len, "%s", sep);
				ident(sql, cap, &len, t->cols[c]);
				sep = ", ";
			}
		sep = ") DO UPDATE SET ";
		for (uint32_t c = 0; c < t->n_cols; c++)
			if (!t->is_key[c]) {
				put(sql, cap, &len, "%s", sep);
				ident(sql, cap, &len, t->cols[c]);
				put(sql, cap, &len, " = excluded.");
				ident(sql, cap, &len, t->cols[c]);
				sep = ", ";
			}
	}
	int rc = len + 1 < cap && sqlite3_prepare_v2(db, sql, -1, out, NULL) == SQLITE_OK
	                 ? 0
	                 : fail(db, "prepare insert");
	free(sql);
	return rc;
}

static int insert(sqlite3 *db, sqlite3_stmt *s, const loop_table_t *t, uint64_t first,
                  uint32_t rows)
{
	sqlite3_value *const *v = t->vals + first * t->n_cols;
	for (uint32_t i = 0; i < rows * t->n_cols; i++)
		sqlite3_bind_value(s, (int)i + 1, v[i]);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(db, "insert");
}

/* The timed part for one table; *in_tx carries the transaction's row count
 * from one table to the next. */
static int load_table(sqlite3 *db, const loop_table_t *t, uint64_t *in_tx)
{
	uint32_t per = LOOP_ROWS_PER_STMT;
	if (per * t->n_cols > 32766) /* SQLITE_MAX_VARIABLE_NUMBER */
		per = 32766 / t->n_cols;
	sqlite3_stmt *full = NULL, *rest = NULL;
	uint32_t rest_n = (uint32_t)(t->n_rows % per);
	int rc = t->n_rows >= per ? prepare(db, t, per, &full) : 0;
	if (rc == 0 && rest_n)
		rc = prepare(db, t, rest_n, &rest);
	for (uint64_t i = 0; rc == 0 && i < t->n_rows;) {
		uint32_t k = t->n_rows - i >= per ? per : rest_n;
		rc = insert(db, k == per ? full : rest, t, i, k);
		i += k;
		*in_tx += k;
		if (rc == 0 && *in_tx >= LOOP_ROWS_PER_TX) {
			if (sqlite3_exec(db, "COMMIT; BEGIN", NULL, NULL, NULL) != SQLITE_OK)
				rc = fail(db, "commit");
			*in_tx = 0;
		}
	}
	sqlite3_finalize(full);
	sqlite3_finalize(rest);
	return rc;
}

static int load(const char *path, const loop_table_t *tabs, uint32_t n, double *seconds,
                double *close_seconds)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                                            SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK
	                 ? 0
	                 : fail(db, path);
	if (rc == 0 && sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
	                            NULL, NULL, NULL) != SQLITE_OK)
		rc = fail(db, "pragmas");
	double t0 = now_s();
	if (rc == 0 && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		rc = fail(db, "begin");
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		if (sqlite3_exec(db, tabs[i].create_sql, NULL, NULL, NULL) != SQLITE_OK ||
		    (tabs[i].index_sql &&
		     sqlite3_exec(db, tabs[i].index_sql, NULL, NULL, NULL) != SQLITE_OK))
			rc = fail(db, "create");
	uint64_t in_tx = 0;
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		rc = load_table(db, &tabs[i], &in_tx);
	if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = fail(db, "commit");
	double t1 = now_s();
	*seconds = t1 - t0;
	/* The last connection's close copies what the WAL still holds into the
	 * database file and deletes the WAL: the rest of getting the rows
	 * into the file, which ringfill's own time includes. */
	if (sqlite3_close(db) != SQLITE_OK && rc == 0)
		rc = fail(db, "close");
	*close_seconds = now_s() - t1;
	return rc;
}

static void tables_free(loop_table_t *tabs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		loop_table_t *t = &tabs[i];
		for (uint64_t v = 0; t->vals && v < t->n_rows * t->n_cols; v++)
			sqlite3_value_free(t->vals[v]);
		for (uint32_t c = 0; t->cols && c < t->n_cols; c++)
			free(t->cols[c]);
		free(t->vals);
		free(t->cols);
		free(t->is_key);
		free(t->name);
		free(t->create_sql);
		free(t->index_sql);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: rf_peer_insert_loop SRC.db DST.db [ROWS.db]\n");
		return 2;
	}
	static loop_table_t tabs[LOOP_TABLES_MAX];
	uint32_t n = 0;
	double seconds = 0, close_seconds = 0;
	int rc = read_source(argv[1], argc == 4 ? argv[3] : NULL, tabs, &n);
	if (rc == 0 && n == 0) {
		fprintf(stderr, "rf_peer_insert_loop: %s: no tables to copy\n", argv[1]);
		rc = -ENOENT;
	}
	if (rc == 0)
		rc = load(argv[2], tabs, n, &seconds, &close_seconds);
	uint64_t rows = 0;
	for (uint32_t i = 0; i < n; i++)
		rows += tabs[i].n_rows;
	tables_free(tabs, n);
	if (rc != 0)
		return 1;
	printf("{\"rows\": %llu, \"tables\": %u, \"insert_s\": %.6f, \"close_s\": %.6f}\n",
	       (unsigned long long)rows, n, seconds, close_seconds);
	return 0;
}
