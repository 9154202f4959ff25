/* store/store.h: the SQLite database: pragmas, the _ringfill_jobs table, job
 * import from a URL list, and job queries.
 *
 * Opened by engine/main.c before the loop starts (import runs on the main
 * thread then); during a run only the writer thread (store/writer.c) uses the
 * connection. SQLite specifics stay inside store/ (DESIGN §1 "sink").
 *
 * _ringfill_jobs (DESIGN §4):
 *   id INTEGER PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, url TEXT,
 *   state TEXT NOT NULL ('pending','done','failed'), attempts INTEGER,
 *   http_status INTEGER, error_class TEXT ('transient','permanent',NULL),
 *   error TEXT, bytes INTEGER, sha256 TEXT, raw_path TEXT, vars TEXT (JSON),
 *   updated_at REAL (unix seconds), ckpt_offset INTEGER, ckpt_records INTEGER,
 *   ckpt_validator TEXT (a streamed NDJSON job's checkpoint), content_encoding TEXT
 *   (the body's Content-Encoding as sent, e.g. "gzip"; NULL for identity),
 *   UNIQUE(source, key). */
#ifndef RF_STORE_H
#define RF_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "parse/json.h"

typedef struct store store_t;

#define STORE_ERR_BYTES 512u

/* Opens (creating) the database: WAL, synchronous=NORMAL, busy_timeout,
 * journal_size_limit, the jobs table. 0, or -1 with a message in err. */
int store_open(const char *path, store_t **out, char *err, size_t err_cap);
void store_close(store_t *st);
struct sqlite3 *store_db(store_t *st); /* for the writer thread */

typedef struct {
	uint64_t lines;     /* URL lines read (blank and # lines not counted) */
	uint64_t added;     /* new jobs */
	uint64_t existing;  /* already known for this source */
	uint64_t malformed; /* recorded as failed/permanent with the line's reason */
	uint64_t requeued;  /* failed/transient jobs of this source set pending again */
	/* Of existing: jobs not done whose line now gives another URL or other
	 * variables: given them and set pending (changed), or, when they hold a
	 * committed checkpoint, left as they were (kept: their committed rows
	 * came from the old URL). A done job keeps its URL and is not counted. */
	uint64_t changed, kept;
	uint64_t same_file; /* of existing: files known by their URL under another key */
} store_import_t;

/* How long a writer of this database waits for another process's write lock
 * in total (SQLite's busy_timeout plus our own backoff) before it gives up:
 * STORE_BUSY_PATIENCE_MS_DEFAULT, or $RINGFILL_DB_TIMEOUT seconds when set. */
#define STORE_BUSY_PATIENCE_MS_DEFAULT 60000u
uint32_t store_busy_patience_ms(void);

/* The patience of this database's writers: store_busy_patience_ms() when
 * opened; --db-timeout sets it (also lowering SQLite's busy_timeout when it
 * is shorter than that). */
void store_set_patience(store_t *st, uint32_t patience_ms);
uint32_t store_patience(const store_t *st);

/* _ringfill_runs (store/runs.c; made on first use): id, source, started_at,
 * updated_at, ended_at and exit_code (NULL while running or after a kill),
 * jobs_done, jobs_failed, rows, bytes (what the run committed; the writer adds
 * to them in its transactions). Both return 0, or -1 with a message in err. */
int store_run_begin(store_t *st, const char *source, int64_t *id, char *err, size_t cap);
int store_run_end(store_t *st, int64_t id, int exit_code, char *err, size_t cap);

/* Runs sql (BEGIN IMMEDIATE, COMMIT...) again while it reports SQLITE_BUSY,
 * pausing 50 ms doubling to 1 s, until patience_ms have passed since the
 * first try, or until *cancel (when not NULL) becomes true: a signal asked
 * the run to stop, and waiting on for another process's lock would keep the
 * user waiting. Returns the last SQLite result code. */
int store_exec_busy(struct sqlite3 *db, const char *sql, uint32_t patience_ms,
                    const _Atomic bool *cancel);

/* Streams a URL list into jobs of `source` in one transaction: one URL per
 * line (blank lines and lines starting with '#' ignored, surrounding
 * whitespace trimmed), or NDJSON lines {"url": ..., "key": ..., ...} where
 * other fields are kept as the job's vars (JSON). The job key is "key" when
 * given, else the URL. A malformed line becomes a job that is already
 * failed/permanent with a reason naming FILE:LINE. In the same transaction,
 * jobs of `source` that failed with class 'transient' become pending again
 * with attempts 0 (a re-run picks up pending and transient jobs; permanent
 * failures stay failed until `ringfill retry --all`). Memory stays bounded
 * whatever the file's size. 0, or -1 with err ("FILE: No such file..."). */
int store_import_urls(store_t *st, const char *source, const char *file,
                      store_import_t *res, char *err, size_t err_cap);

/* A URL template: url holds exactly one {NAME} (checked by the caller). */
typedef struct {
	const char *url;
} store_template_t;

/* store_import_urls when tmpl is NULL. With a template, file is a key list:
 * one key per line (surrounding whitespace trimmed, blank lines and lines
 * starting with '#' skipped); each key makes a job whose key is the key, whose
 * URL is the template with {NAME} replaced by the key percent-encoded (every
 * byte but A-Z a-z 0-9 - . _ ~ as %XX), and whose vars are {"NAME": key}. A
 * key whose URL is not a valid https URL becomes a failed/permanent job. The
 * rest (one transaction, re-imports, requeue) is as store_import_urls. */
int store_import(store_t *st, const char *source, const char *file,
                 const store_template_t *tmpl, store_import_t *res, char *err, size_t err_cap);

/* One job of a list the caller made (the `files` and `paginate` sources,
 * engine/files.c and engine/paginate.c): key and url NUL-terminated. */
typedef struct {
	const char *key, *url;
} store_job_t;

/* Inserts the jobs (one whose key this source has already is left as it
 * is, or takes its new URL as store_import says) and requeues this source's
 * transient failures, in one transaction, as store_import does. res->lines
 * counts the jobs given. 0, or -1 with err. */
int store_import_list(store_t *st, const char *source, const store_job_t *jobs, size_t n,
                      store_import_t *res, char *err, size_t err_cap);
/* store_import_list for the `files` source: a file whose URL (file: and its
 * resolved path) this source has already under another key (the pattern
 * was widened or moved, so its key, the path under the pattern's base,
 * changed) is not a new job: it counts as existing (and in res->same_file),
 * and is not loaded twice. */
int store_import_files(store_t *st, const char *source, const store_job_t *jobs, size_t n,
                       store_import_t *res, char *err, size_t err_cap);

/* A paginate source's pages not done and without a committed checkpoint take
 * the URL url_of gives for their cursor (their key past "page:") when it is
 * another than theirs (the job file's url or cursor_param changed): set
 * pending again, as store_import does for a changed line; *changed counts
 * them. One transaction. 0, or -1 with err. */
int store_pages_rebase(store_t *st, const char *source,
                       int (*url_of)(void *ctx, const char *cursor, char *out, size_t cap),
                       void *ctx, uint64_t *changed, char *err, size_t err_cap);

/* Job keys of a paginate source's pages (engine/sources.h): the first page
 * is "page", the page of cursor C "page:" C. */
#define STORE_PAGE_FIRST_KEY "page"
#define STORE_PAGE_KEY_PREFIX "page:"

/* At most this many page jobs per source: a next page beyond it fails the
 * page that names it (store_jobs_emit). 0: no limit (the default). */
void store_set_page_limit(store_t *st, uint64_t max_pages);

struct batch;
/* Inserts the jobs a page made (store/batch.h: b->emit) as jobs of source,
 * in the caller's open transaction: the writer calls it in the transaction
 * that marks the page done, so a page's jobs exist exactly when the page is
 * done. A key that exists already is left alone (idempotent), except for
 * the next page (BATCH_EMIT_NEXT_PAGE): its key is its cursor, so an
 * existing one means the cursor was seen before in this chain. A page that
 * names a next page must also differ in content (b->sha256_hex) from every
 * other page of the source (a loop back under new cursors), and stay within
 * the page limit. Returns 0; 1 for a repeated cursor or page or the limit,
 * with a reason in why (the caller rolls back and fails the page); -1 on a
 * database error (sqlite3_errmsg). */
int store_jobs_emit(store_t *st, const char *source, const struct batch *b, char *why,
                    size_t why_cap);

/* Node n of d as text into out (NUL-terminated): a string unescaped, a
 * number as written when allow_number. Returns the length; -1 when n is
 * JSON_NONE or of another type, -2 when longer than cap - 1. Used for
 * manifest fields and for paginate cursors and item fields. */
long store_json_text(const json_doc_t *d, uint32_t n, bool allow_number, char *out,
                     size_t cap);

/* One job handed to the loop. Ownership: allocated by store_jobs_fetch (one
 * malloc: url, key and vars point into the same block), freed by whoever
 * holds it last with free(). */
typedef struct job_desc {
	int64_t id;
	int attempts; /* attempts made by earlier runs */
	const char *url;
	const char *key;
	const char *vars; /* the job's variables as a JSON object, or NULL */
	/* The last committed checkpoint of a streamed NDJSON body (0, 0, NULL
	 * when none): bytes of the decoded body and records consumed, and the
	 * If-Range validator when the body may be resumed with Range. */
	uint64_t ckpt_offset, ckpt_records;
	const char *ckpt_validator;
} job_desc_t;

/* Up to max pending jobs of source with id > after_id, in id order. Returns
 * the number, or -1 with err. */
int store_jobs_fetch(store_t *st, const char *source, int64_t after_id, job_desc_t **out,
                     int max, char *err, size_t err_cap);

typedef struct {
	uint64_t pending, done, failed, total;
} store_counts_t;

int store_job_counts(store_t *st, const char *source, store_counts_t *c, char *err,
                     size_t err_cap); /* source NULL: all sources */

/* `ringfill retry DB [--all]`: requeues failed jobs (transient ones; --all:
 * every one) as pending. Exit code 0, 2 usage, 3 database error. */
int retry_main(int argc, char **argv);

/* `ringfill status [--json] DB`: exit code 0, 2 usage, 3 database error. */
int status_main(int argc, char **argv);

#endif
