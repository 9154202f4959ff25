/* bench/suite_store.c: the `store` suite (issue 6): rows per second that the
 * writer thread (store/writer.c) commits, next to the minimal C loop
 * (bench/peer_sqlite.c) loading the same generated rows, in two cases:
 * (a) rowid_4col, a 4-column rowid table; (b) upsert_2key, a table keyed on
 * two columns in upsert mode, keys in random order, with a second peer that
 * loads the same rows presorted by key. This thread plays the loop: it takes
 * jobs from the writer, builds one batch_t of rows per job and pushes it
 * through the ring, as engine/loop.c does. Each run writes a fresh database
 * in the harness's temporary directory, and every run's table content is
 * checked equal to the peers'. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench/harness.h"
#include "bench/peer_sqlite.h"
#include "store/batch.h"
#include "store/store.h"
#include "store/writer.h"

#define STORE_BENCH_ROWS 1000000u       /* per run */
#define STORE_BENCH_ROWS_QUICK 20000u
#define STORE_BENCH_ROWS_PER_JOB 100u   /* one document of 100 records per job */
#define STORE_BENCH_NOTE_BYTES_MAX 120u /* generated text column, 20..120 bytes */
#define STORE_BENCH_NAME_BYTES 11u      /* "user_" + 6 digits */
#define STORE_BENCH_WAIT_MS 100         /* longest wait for the writer's eventfd */
#define STORE_BENCH_SEED 0x5eed5eedULL
#define STORE_BENCH_USERS 20000u        /* upsert_2key: accounts, the key's first column */
#define STORE_BENCH_REPEAT_EVERY 10u    /* upsert_2key: every 10th row repeats an earlier key */
#define STORE_BENCH_DIGEST_BYTES 256u

typedef struct {
	const bench_opts_t *opts;
	peer_sqlite_table_t table;
	bench_row_t *rows;   /* in arrival order */
	bench_row_t *sorted; /* upsert_2key: the same rows sorted by key (stable), else NULL */
	uint64_t n_rows;
	char *arena;
	char urls[4096];
	uint32_t run;
	char digest[STORE_BENCH_DIGEST_BYTES]; /* the first run's table content, to compare */
} store_case_t;

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Deterministic rows: a tweet-like id, a user name, a score, and some text;
 * for upsert_2key an account and an item id (the key) in random order, every
 * STORE_BENCH_REPEAT_EVERY'th row repeating the key of an earlier row, so
 * upserts replace rows too. */
static int rows_generate(store_case_t *c)
{
	static const char *const words[] = {"ring", "fill", "backfill", "sqlite", "the",
	                                    "json", "archive", "café", "naïve", "of",
	                                    "rows", "fast", "\"quoted\"", "io_uring"};
	const size_t n_words = sizeof(words) / sizeof(*words);
	uint64_t seed = STORE_BENCH_SEED;
	c->rows = calloc(c->n_rows, sizeof(*c->rows));
	c->arena = malloc(c->n_rows * (STORE_BENCH_NAME_BYTES + 1 + STORE_BENCH_NOTE_BYTES_MAX));
	if (!c->rows || !c->arena)
		return -ENOMEM;
	char *p = c->arena;
	for (uint64_t i = 0; i < c->n_rows; i++) {
		bench_row_t *r = &c->rows[i];
		r->job = (int64_t)(i / STORE_BENCH_ROWS_PER_JOB) + 1;
		r->id = (int64_t)(splitmix(&seed) >> 2);
		if (c->table == PEER_SQLITE_UPSERT) {
			r->user = (int64_t)(splitmix(&seed) % STORE_BENCH_USERS);
			r->id >>= 22; /* a 40-bit item id */
			if (i && i % STORE_BENCH_REPEAT_EVERY == 0) {
				const bench_row_t *e = &c->rows[splitmix(&seed) % i];
				r->user = e->user;
				r->id = e->id;
			}
		}
		r->score = (double)(splitmix(&seed) % 1000000u) / 1000.0;
		r->name = p;
		r->name_len = (uint32_t)sprintf(p, "user_%06u", (unsigned)(splitmix(&seed) % 1000000u));
		p += r->name_len + 1;
		uint32_t want = 20 + (uint32_t)(splitmix(&seed) % (STORE_BENCH_NOTE_BYTES_MAX - 40));
		r->note = p;
		while ((uint32_t)(p - r->note) < want) {
			const char *w = words[splitmix(&seed) % n_words];
			size_t wl = strlen(w);
			memcpy(p, w, wl);
			p[wl] = ' ';
			p += wl + 1;
		}
		r->note_len = (uint32_t)(p - r->note);
	}
	return 0;
}

/* By (user, id), then by address: the pointers point into c->rows, so ties
 * keep arrival order (a stable sort). */
static int row_ptr_cmp(const void *pa, const void *pb)
{
	const bench_row_t *a = *(const bench_row_t *const *)pa, *b = *(const bench_row_t *const *)pb;
	if (a->user != b->user)
		return a->user < b->user ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return (a > b) - (a < b);
}

/* The presorted peer's input: the same rows sorted by (user, id), a key's
 * rows in arrival order, so the last one still wins. Not timed. */
static int rows_sort(store_case_t *c)
{
	const bench_row_t **ptrs = malloc(c->n_rows * sizeof(*ptrs));
	c->sorted = malloc(c->n_rows * sizeof(*c->sorted));
	if (!ptrs || !c->sorted) {
		free(ptrs);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < c->n_rows; i++)
		ptrs[i] = &c->rows[i];
	qsort(ptrs, c->n_rows, sizeof(*ptrs), row_ptr_cmp);
	for (uint64_t i = 0; i < c->n_rows; i++)
		c->sorted[i] = *ptrs[i];
	free(ptrs);
	return 0;
}

/* ---- the writer run -------------------------------------------------------- */

static int put(json_buf_t *b, const void *v, size_t n)
{
	return json_buf_append(b, v, n);
}

static int put_field(json_buf_t *b, field_type_t type, const char *name, const void *v,
                     uint32_t vlen)
{
	uint8_t t = (uint8_t)type;
	uint16_t nl = (uint16_t)strlen(name);
	return put(b, &t, 1) || put(b, &nl, 2) || put(b, name, nl) || put(b, &vlen, 4) ||
	       put(b, v, vlen);
}

/* The batch for the job'th job: its rows encoded as store/batch.h says. */
static batch_t *job_batch(const store_case_t *c, int64_t job_id, uint64_t job_index)
{
	batch_t *b = batch_new(BATCH_JOB_DONE, job_id);
	if (!b)
		return NULL;
	uint64_t first = job_index * STORE_BENCH_ROWS_PER_JOB;
	uint64_t end = first + STORE_BENCH_ROWS_PER_JOB < c->n_rows ? first + STORE_BENCH_ROWS_PER_JOB
	                                                            : c->n_rows;
	const uint32_t n_fields = 4;
	bool keyed = c->table == PEER_SQLITE_UPSERT;
	for (uint64_t i = first; i < end; i++) {
		const bench_row_t *r = &c->rows[i];
		const uint32_t table_index = 0; /* each row starts with its table (store/batch.h) */
		if (put(&b->rows, &table_index, 4) || put(&b->rows, &n_fields, 4) ||
		    (keyed ? put_field(&b->rows, FIELD_INT, "user", &r->user, 8) ||
		                 put_field(&b->rows, FIELD_INT, "id", &r->id, 8)
		           : put_field(&b->rows, FIELD_INT, "id", &r->id, 8) ||
		                 put_field(&b->rows, FIELD_TEXT, "name", r->name, r->name_len)) ||
		    put_field(&b->rows, FIELD_REAL, "score", &r->score, 8) ||
		    put_field(&b->rows, FIELD_TEXT, "note", r->note, r->note_len)) {
			batch_free(b);
			return NULL;
		}
		b->n_rows++;
	}
	b->attempts = 1;
	b->http_status = 200;
	b->body_bytes = b->rows.len;
	return b;
}

static bool wait_writer(pipe_t *pipe)
{
	struct pollfd pfd = {.fd = pipe->loop_eventfd, .events = POLLIN};
	uint64_t v;
	if (poll(&pfd, 1, STORE_BENCH_WAIT_MS) == 1 && read(pipe->loop_eventfd, &v, sizeof(v)) < 0)
		return false;
	return !atomic_load_explicit(&pipe->fatal, memory_order_acquire);
}

static int push(pipe_t *pipe, batch_t *b)
{
	while (!ring_push(&pipe->to_writer, b))
		if (!wait_writer(pipe))
			return -EIO;
	doorbell_ring(&pipe->writer_bell);
	return 0;
}

/* Takes every job the writer feeds and answers each with its batch. */
static int feed_writer(const store_case_t *c, pipe_t *pipe, uint64_t n_jobs)
{
	uint64_t taken = 0;
	while (taken < n_jobs) {
		job_desc_t *j = ring_pop(&pipe->to_loop);
		if (!j) {
			doorbell_ring(&pipe->writer_bell); /* room in to_loop: feed more */
			if (!wait_writer(pipe))
				return -EIO;
			continue;
		}
		batch_t *b = job_batch(c, j->id, taken++);
		free(j);
		if (!b || push(pipe, b) != 0) {
			batch_free(b);
			return b ? -EIO : -ENOMEM;
		}
	}
	batch_t *end = batch_new(BATCH_END, 0);
	if (!end || push(pipe, end) != 0) {
		batch_free(end);
		return -EIO;
	}
	return 0;
}

static void db_remove(const char *db)
{
	char p[4200];
	unlink(db);
	snprintf(p, sizeof(p), "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db);
	unlink(p);
}

/* What the table holds, as one line: both sides of a case must load the same
 * content (for upsert_2key: the same row won for every key). Exact sums, so
 * row order does not matter. Not timed. */
static int digest(store_case_t *c, const char *db, const char *who)
{
	static const char sql[] =
		"SELECT count(*) || ':' || sum(_job) || ':' || sum(id % 1000003) || ':' ||"
		" sum(CAST(round(score * 1000) AS INTEGER)) || ':' || sum(length(note)) FROM records";
	char got[STORE_BENCH_DIGEST_BYTES] = "";
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(h, sql, -1, &s, NULL);
	if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		snprintf(got, sizeof(got), "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(h);
	if (!got[0]) {
		fprintf(stderr, "ringfill bench: store: %s: cannot read the table back\n", who);
		return -EIO;
	}
	if (!c->digest[0])
		memcpy(c->digest, got, sizeof(got));
	else if (strcmp(c->digest, got) != 0) {
		fprintf(stderr,
		        "ringfill bench: store: %s loaded other rows (%s) than the first run (%s)\n",
		        who, got, c->digest);
		return -EIO;
	}
	return 0;
}

static double process_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One writer run: from writer_start to writer_join, on the suite's clock
 * (peer_sqlite_clock_cpu: the writer thread's CPU seconds). */
static int writer_run(void *arg, double *value)
{
	store_case_t *c = arg;
	char db[4096], err[STORE_ERR_BYTES];
	store_t *st;
	store_import_t imp;
	snprintf(db, sizeof(db), "%s/writer-%u.db", c->opts->tmpdir, c->run++);
	if (store_open(db, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringfill bench: store: %s\n", err);
		return -EIO;
	}
	if (store_import_urls(st, "bench", c->urls, &imp, err, sizeof(err)) != 0) {
		fprintf(stderr, "ringfill bench: store: %s\n", err);
		store_close(st);
		db_remove(db);
		return -EIO;
	}
	pipe_t pipe;
	memset(&pipe, 0, sizeof(pipe));
	pipe.loop_eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pipe.done_eventfd = -1;
	/* upsert_2key: a job-file table, columns inferred, keyed on (user, id). */
	char *key[] = {"user", "id"};
	table_spec_t spec = {.name = "records", .key = key, .n_key = 2, .mode = TABLE_UPSERT};
	writer_config_t cfg = {.table = "records", .source = "bench",
	                       .commit_rows = PEER_SQLITE_ROWS_PER_TX,
	                       .commit_ms = WRITER_COMMIT_MS_DEFAULT};
	if (c->table == PEER_SQLITE_UPSERT) {
		cfg.tables = &spec;
		cfg.n_tables = 1;
	}
	writer_t *w;
	double wall0 = bench_now_s(), proc0 = process_cpu_s(), self0 = peer_sqlite_now_s();
	int rc = pipe.loop_eventfd < 0 ? -errno : writer_start(st, &cfg, &pipe, &w);
	if (rc == 0) {
		rc = feed_writer(c, &pipe, imp.added);
		if (writer_join(w) != 0 && rc == 0)
			rc = -EIO;
		/* CPU clock: the process's CPU seconds less this thread's (the
		 * loop's part: building and pushing the batches) are the writer
		 * thread's, which has ended and is still counted. */
		double s = peer_sqlite_clock_cpu()
		                   ? (process_cpu_s() - proc0) - (peer_sqlite_now_s() - self0)
		                   : bench_now_s() - wall0;
		*value = (double)c->n_rows / s;
		ring_destroy(&pipe.to_writer);
		ring_destroy(&pipe.to_loop);
	}
	if (rc == 0 && atomic_load(&pipe.rows_committed) != c->n_rows)
		rc = -EIO;
	if (rc != 0)
		fprintf(stderr, "ringfill bench: writer run failed: %s (%llu rows committed)\n",
		        pipe.fatal_msg[0] ? pipe.fatal_msg : strerror(-rc),
		        (unsigned long long)atomic_load(&pipe.rows_committed));
	if (pipe.loop_eventfd >= 0)
		close(pipe.loop_eventfd);
	store_close(st);
	if (rc == 0)
		rc = digest(c, db, "the writer");
	db_remove(db);
	return rc;
}

/* The minimal loop on c->rows (arrival order), or on c->sorted. */
static int peer_run(store_case_t *c, bool presorted, double *value)
{
	char db[4096];
	double s;
	snprintf(db, sizeof(db), "%s/peer-%u.db", c->opts->tmpdir, c->run++);
	int rc = peer_sqlite_load(db, c->table, presorted ? c->sorted : c->rows, c->n_rows, &s);
	if (rc == 0)
		rc = digest(c, db, presorted ? "the presorted loop" : "the minimal loop");
	db_remove(db);
	if (rc == 0)
		*value = (double)c->n_rows / s;
	return rc;
}

static int urls_write(store_case_t *c)
{
	snprintf(c->urls, sizeof(c->urls), "%s/store-jobs.txt", c->opts->tmpdir);
	FILE *f = fopen(c->urls, "w");
	if (!f)
		return -errno;
	uint64_t jobs = (c->n_rows + STORE_BENCH_ROWS_PER_JOB - 1) / STORE_BENCH_ROWS_PER_JOB;
	for (uint64_t i = 0; i < jobs; i++)
		fprintf(f, "https://bench.invalid/archive/%llu.json\n", (unsigned long long)i);
	return fclose(f) == 0 ? 0 : -errno;
}

static const char *case_name(const store_case_t *c)
{
	return c->table == PEER_SQLITE_UPSERT ? "upsert_2key" : "rowid_4col";
}

/* Writer and loop runs alternate, so each set sees the same machine as
 * nearly as possible: the ratio is what this suite is for. */
static int measure(store_case_t *c, double *ours, double *peer, double *sorted)
{
	const bench_opts_t *opts = c->opts;
	double v;
	bench_progress("store %s rows_per_s: warm-up (writer, then minimal C loop%s)",
	               case_name(c), c->sorted ? "s" : "");
	int rc = writer_run(c, &v);
	if (rc == 0)
		rc = peer_run(c, false, &v);
	if (rc == 0 && c->sorted)
		rc = peer_run(c, true, &v);
	for (uint32_t i = 0; rc == 0 && i < opts->runs; i++) {
		bench_progress("store %s rows_per_s: run %u/%u", case_name(c), i + 1, opts->runs);
		rc = writer_run(c, &ours[i]);
		if (rc == 0)
			rc = peer_run(c, false, &peer[i]);
		if (rc == 0 && c->sorted)
			rc = peer_run(c, true, &sorted[i]);
	}
	return rc;
}

/* One case: generate its rows, measure, add its records. */
static int store_case(const bench_opts_t *opts, peer_sqlite_table_t table)
{
	store_case_t c = {.opts = opts, .table = table};
	double ours[BENCH_RUNS_MAX], peer[BENCH_RUNS_MAX], sorted[BENCH_RUNS_MAX];
	c.n_rows = opts->quick ? STORE_BENCH_ROWS_QUICK : STORE_BENCH_ROWS;
	int rc = rows_generate(&c);
	if (rc == 0 && table == PEER_SQLITE_UPSERT)
		rc = rows_sort(&c);
	if (rc == 0)
		rc = urls_write(&c);
	if (rc == 0)
		rc = measure(&c, ours, peer, sorted);
	bench_record_t *r = NULL;
	if (rc == 0 && !(r = bench_add("store", case_name(&c), "rows_per_s", "rows/s", ours,
	                               opts->runs)))
		rc = -EIO;
	if (rc == 0)
		bench_set_peer(r, "sqlite-c-loop", peer, opts->runs);
	/* The same writer runs again, against the loop on presorted rows. */
	if (rc == 0 && c.sorted &&
	    !(r = bench_add("store", "upsert_2key_vs_presorted", "rows_per_s", "rows/s", ours,
	                    opts->runs)))
		rc = -EIO;
	if (rc == 0 && c.sorted)
		bench_set_peer(r, "sqlite-c-loop-presorted", sorted, opts->runs);
	free(c.rows);
	free(c.sorted);
	free(c.arena);
	return rc;
}

/* --case (e.g. --case rowid_4col, for profiling one case and for quicker
 * A/B rounds). */
static bool case_wanted(const bench_opts_t *opts, peer_sqlite_table_t table)
{
	store_case_t c = {.table = table};
	return bench_case_selected(opts, case_name(&c));
}

int bench_suite_store(const bench_opts_t *opts)
{
	if (peer_sqlite_clock_cpu())
		fprintf(stderr, "ringfill bench: store: timing CPU seconds (RINGFILL_BENCH_CLOCK=cpu): "
		                "the writer thread's and the minimal loop's\n");
	int rc = case_wanted(opts, PEER_SQLITE_ROWID) ? store_case(opts, PEER_SQLITE_ROWID) : 0;
	if (rc == 0 && case_wanted(opts, PEER_SQLITE_UPSERT))
		rc = store_case(opts, PEER_SQLITE_UPSERT);
	return rc;
}
