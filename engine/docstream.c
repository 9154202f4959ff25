/* engine/docstream.c: a single JSON body (not NDJSON) parsed as it arrives,
 * so it never sits in memory whole.
 *
 * One json_stream (parse/json_stream.h) follows, in one pass, every path the
 * job's tables read: each table's rows path, and each `$` column's path (and
 * each column of a declared `$` table, `@.x` read as `$.x`). A record of a
 * rows path becomes a row at once; the value of a column path is encoded
 * once into the table's batch_docvals_t (store/batch.h) and copied into each
 * row. A table whose record arrives before every one of its `$` columns has
 * been seen holds its records (compact JSON, in order) until the end of the
 * document, where they become rows with what was seen (a column never seen
 * is NULL, as in the whole document). A declared `$` table makes its one row
 * at the end. Rows go into the job's batch, committed with its done mark;
 * every DS_CKPT_ROW_BYTES of rows, while no table holds records, ndstream.c
 * cuts them into a checkpoint (the count of rows-path records so far, offset
 * 0: a later attempt parses the document again from its start and skips
 * that many records, ds_record). An invalid document fails its job, keeping
 * only the rows of checkpoints committed before (none for a document under
 * DS_CKPT_ROW_BYTES of rows).
 *
 * Whether a job file streams is decided once per run (ds_plan): see
 * docs/engine.md, "Single JSON bodies, streamed". The byte path (gzip,
 * digest, --raw chunks, --max-body) is ndstream.c's: nd_begin, nd_feed and
 * nd_finish call in here for a job with j->ds. */
#include "engine/loop_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json_stream.h"

/* What a path of the stream feeds. */
typedef struct {
	uint32_t path;  /* index into the plan's paths */
	uint32_t table; /* index into cfg->tables */
	uint32_t col;   /* a column's value, or DS_ROWS: the table's rows */
} ds_use_t;

#define DS_ROWS UINT32_MAX

/* The run's plan, made on first use and read-only after (one thread). */
struct ds_plan {
	bool ok; /* every table can stream */
	const json_path_t *paths[JSON_STREAM_PATHS_MAX];
	json_path_t *owned[JSON_STREAM_PATHS_MAX]; /* `$` forms of `@` columns; NULL */
	uint32_t n_paths;
	ds_use_t *uses; /* a table's rows, a column's value: at most tables + columns */
	uint64_t rows_paths; /* bit per path that feeds some table's rows */
	uint32_t n_uses, uses_cap;
	bool doc_table[BATCH_TABLES_MAX]; /* declared, rows `$`: one row at the end */
	uint32_t n_docvals[BATCH_TABLES_MAX]; /* columns fed from the stream */
	char rows_key[DS_ROWS_KEY_BYTES]; /* ds_rows_key: what a checkpoint's records count */
};

/* One document being streamed; owned by its job (j->ds). */
struct ds_job {
	json_stream_t *s;
	batch_docvals_t *dv[BATCH_TABLES_MAX]; /* tables with `$` columns */
	uint32_t got[BATCH_TABLES_MAX];        /* of those, seen so far */
	bool holding[BATCH_TABLES_MAX];        /* records wait for the end */
	json_buf_t held[BATCH_TABLES_MAX];     /* u32 length + compact JSON, each */
	json_parser_t *held_parser;            /* made when a held record is replayed */
	batch_names_t names;                   /* batch_add_record's name set, kept */
	uint64_t decoded;                      /* gzip: decoded bytes so far */
	struct ds_job *pool_next;              /* on loop.ds_pool while idle */
	size_t pool_bytes;                     /* ... holding this much (ds_job_bytes) */
};

static bool same_path(const json_path_t *a, const json_path_t *b)
{
	return strcmp(json_path_text(a), json_path_text(b)) == 0;
}

/* The index of path p in the plan, added if new; UINT32_MAX when full. */
static uint32_t plan_path(struct ds_plan *pl, const json_path_t *p, json_path_t *owned)
{
	for (uint32_t i = 0; i < pl->n_paths; i++)
		if (same_path(pl->paths[i], p)) {
			json_path_free(owned);
			return i;
		}
	if (pl->n_paths == JSON_STREAM_PATHS_MAX) {
		json_path_free(owned);
		return UINT32_MAX;
	}
	pl->owned[pl->n_paths] = owned;
	pl->paths[pl->n_paths] = p;
	return pl->n_paths++;
}

static bool plan_use(struct ds_plan *pl, uint32_t path, uint32_t table, uint32_t col)
{
	if (path == UINT32_MAX)
		return false;
	assert(pl->n_uses < pl->uses_cap);
	pl->uses[pl->n_uses++] = (ds_use_t){path, table, col};
	if (col == DS_ROWS)
		pl->rows_paths |= 1ull << path;
	return true;
}

/* A column of a `$` table: its path from the root. `@` alone (the whole
 * document) cannot stream. */
static json_path_t *root_form(const column_spec_t *col)
{
	const char *t = json_path_text(col->path);
	if (t[0] == '$')
		return NULL; /* used as it is */
	char buf[BATCH_PATH_BYTES_MAX + 2];
	if (strlen(t) < 2 || strlen(t) >= sizeof buf)
		return NULL;
	snprintf(buf, sizeof buf, "$%s", t + 1);
	json_path_t *p = NULL;
	json_error_t e;
	return json_path_compile(buf, &p, &e) == 0 ? p : NULL;
}

static bool plan_table(struct ds_plan *pl, const table_spec_t *t, uint32_t ti)
{
	if (json_path_text(t->rows)[0] != '$')
		return false;
	bool whole = json_stream_path_is_root(t->rows);
	if (whole && t->n_cols == 0)
		return false; /* an inferred `$` table flattens the whole document */
	pl->doc_table[ti] = whole;
	if (!whole && !plan_use(pl, plan_path(pl, t->rows, NULL), ti, DS_ROWS))
		return false;
	for (uint32_t c = 0; c < t->n_cols; c++) {
		const column_spec_t *col = &t->cols[c];
		if (col->from == COLUMN_FROM_VAR || (col->from == COLUMN_FROM_ROW && !whole))
			continue;
		json_path_t *own = NULL;
		if (col->from == COLUMN_FROM_ROW && !(own = root_form(col)))
			return false;
		if (!plan_use(pl, plan_path(pl, own ? own : col->path, own), ti, c))
			return false;
		pl->n_docvals[ti]++;
	}
	return true;
}

static int text_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A document checkpoint's records are those of the plan's rows paths (a
 * record two of them select counts once), so they can be skipped only by a
 * run whose rows paths are the same set: its key is "rows-paths:" and a
 * 64-bit FNV-1a of their sorted texts, kept as the checkpoint's validator
 * (a document's has none: it is read from the start, never with Range). */
static void plan_rows_key(struct ds_plan *pl)
{
	const char *texts[JSON_STREAM_PATHS_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < pl->n_paths; i++)
		if (pl->rows_paths >> i & 1)
			texts[n++] = json_path_text(pl->paths[i]);
	qsort(texts, n, sizeof *texts, text_cmp);
	uint64_t h = 14695981039346656037u;
	for (uint32_t i = 0; i < n; i++)
		for (const char *p = texts[i];; p++) {
			h = (h ^ (unsigned char)*p) * 1099511628211u;
			if (!*p)
				break;
		}
	snprintf(pl->rows_key, sizeof pl->rows_key, DS_ROWS_KEY_PREFIX "%016llx",
	         (unsigned long long)h);
}

static struct ds_plan *plan_make(const loop_config_t *cfg)
{
	struct ds_plan *pl = calloc(1, sizeof *pl);
	if (!pl)
		return NULL;
	for (uint32_t t = 0; t < cfg->n_tables; t++)
		pl->uses_cap += 1 + cfg->tables[t].n_cols;
	pl->uses = calloc(pl->uses_cap ? pl->uses_cap : 1, sizeof *pl->uses);
	if (!pl->uses) {
		free(pl);
		return NULL;
	}
	pl->ok = cfg->n_tables <= BATCH_TABLES_MAX && !cfg->paginate;
	for (uint32_t t = 0; pl->ok && t < cfg->n_tables; t++)
		pl->ok = plan_table(pl, &cfg->tables[t], t);
	for (uint32_t i = 0; pl->ok && i < pl->n_paths; i++)
		for (uint32_t k = 0; pl->ok && k < i; k++)
			pl->ok = !json_stream_paths_overlap(pl->paths[i], pl->paths[k]);
	if (pl->ok)
		plan_rows_key(pl);
	return pl;
}

static void ds_job_free(struct ds_job *d)
{
	json_stream_free(d->s);
	for (uint32_t t = 0; t < BATCH_TABLES_MAX; t++) {
		batch_docvals_free(d->dv[t]);
		json_buf_free(&d->held[t]);
	}
	json_parser_free(d->held_parser);
	batch_names_free(&d->names);
	free(d);
}

/* The idle streams go first: their json_streams point at the plan's paths. */
void ds_plan_free(loop_t *l)
{
	while (l->ds_pool) {
		struct ds_job *d = l->ds_pool;
		l->ds_pool = d->pool_next;
		ds_job_free(d);
	}
	l->ds_pooled = 0;
	l->ds_pool_bytes = 0;
	struct ds_plan *pl = l->ds_plan;
	if (!pl)
		return;
	for (uint32_t i = 0; i < pl->n_paths; i++)
		json_path_free(pl->owned[i]);
	free(pl->uses);
	free(pl);
	l->ds_plan = NULL;
}

bool ds_plan_ok(loop_t *l)
{
	if (!l->ds_plan)
		l->ds_plan = plan_make(l->cfg);
	return l->ds_plan && l->ds_plan->ok;
}

bool nd_streams(loop_t *l, job_t *j)
{
	if (job_is_ndjson(l, j))
		return true;
	/* A 206 is an NDJSON checkpoint's answer: conn.c refuses it for others. */
	return j->resp.status != 206 && !paginate_is_page(l, j) && ds_plan_ok(l);
}

const char *ds_rows_key(loop_t *l)
{
	return ds_plan_ok(l) ? l->ds_plan->rows_key : "";
}

bool ds_ckpt_refused(loop_t *l, job_t *j, bool stream, char *why, size_t cap)
{
	nd_load(j); /* as nd_ckpt_kind_refused: this run's view of the checkpoint */
	if (!j->ck_records || j->ck_offset) /* none, or an NDJSON one: the kind check */
		return false;
	if (stream) {
		/* A checkpoint made before its rows paths were kept ("") is taken
		 * on trust, as all were before 2026-12-08. */
		if (strncmp(j->ck_validator, DS_ROWS_KEY_PREFIX, strlen(DS_ROWS_KEY_PREFIX)) != 0 ||
		    strcmp(j->ck_validator, ds_rows_key(l)) == 0)
			return false;
		snprintf(why, cap,
		         "%llu records of this document were committed by an earlier run whose tables "
		         "read other rows paths, so this run would skip other records than those "
		         "(and insert some twice, or lose some): run it with the earlier tables "
		         "(after ringfill retry --all)",
		         (unsigned long long)j->ck_records);
		return true;
	}
	snprintf(why, cap,
	         "%llu records of this document were committed by an earlier run that streamed "
	         "it, but this run's tables cannot stream a document (docs/engine.md, \"Which "
	         "job files stream\"), so its whole body would insert them again: run it with "
	         "the earlier tables",
	         (unsigned long long)j->ck_records);
	return true;
}

/* What an idle ds_job holds: its stream's buffers, the `$` values' and the
 * name set's. Held records and their parser are freed before it idles. */
static size_t ds_job_bytes(const struct ds_job *d)
{
	size_t n = sizeof *d + json_stream_bytes(d->s) + d->names.slots * sizeof *d->names.set;
	for (uint32_t t = 0; t < BATCH_TABLES_MAX; t++)
		n += batch_docvals_bytes(d->dv[t]);
	return n;
}

/* The document is done with (finished, failed or abandoned): its ds_job is
 * reset and kept on loop.ds_pool for the next document, up to DS_POOL_MAX of
 * them holding at most DS_POOL_BYTES_MAX together, or freed. Nothing of the
 * document outlives this: its rows were copied into the job's batch as they
 * were made. (Until 2026-12-07 each stream kept was limited to 256 KiB:
 * the archives_files_4000 workload, 14.9 MB in 4,000 files, the largest
 * 475 KB, then freed its stream after each of 79 larger documents, and the
 * documents after them grew new buffers 312 times, 26 MB of realloc and
 * page faults: 6.5 % of the loop thread's CPU, 112.6 against 105.2 ms,
 * medians of ten alternating runs.) */
void ds_free(loop_t *l, job_t *j)
{
	struct ds_job *d = j->ds;
	if (!d)
		return;
	j->ds = NULL;
	for (uint32_t t = 0; t < BATCH_TABLES_MAX; t++)
		json_buf_free(&d->held[t]);
	json_parser_free(d->held_parser);
	d->held_parser = NULL;
	size_t bytes = ds_job_bytes(d);
	if (l->ds_pooled >= DS_POOL_MAX || bytes > DS_POOL_BYTES_MAX - l->ds_pool_bytes) {
		ds_job_free(d);
		return;
	}
	json_stream_reset(d->s);
	for (uint32_t t = 0; t < BATCH_TABLES_MAX; t++)
		if (d->dv[t])
			batch_docvals_clear(d->dv[t]);
	memset(d->got, 0, sizeof d->got);
	memset(d->holding, 0, sizeof d->holding);
	d->decoded = 0;
	d->pool_next = l->ds_pool;
	d->pool_bytes = bytes;
	l->ds_pool = d;
	l->ds_pooled++;
	l->ds_pool_bytes += bytes;
}

int ds_begin(loop_t *l, job_t *j)
{
	const struct ds_plan *pl = l->ds_plan;
	if (l->ds_pool) { /* reset by ds_free: as new, its buffers grown */
		struct ds_job *d = l->ds_pool;
		l->ds_pool = d->pool_next;
		l->ds_pooled--;
		l->ds_pool_bytes -= d->pool_bytes;
		d->pool_next = NULL;
		j->ds = d;
		return 0;
	}
	struct ds_job *d = calloc(1, sizeof *d);
	if (!d)
		return -1;
	j->ds = d;
	/* A value may be as large as the body may: the whole-body parse took
	 * any value under --max-body, and so does the stream. */
	uint64_t max = l->o->body_bytes_max;
	json_stream_opts_t o = {.value_bytes_max = max < JSON_DOC_BYTES_MAX ? (size_t)max
	                                                                    : JSON_DOC_BYTES_MAX,
	                        .refuse_repeated_names = true};
	d->s = json_stream_new_paths(pl->paths, pl->n_paths, &o);
	if (!d->s)
		return -1;
	for (uint32_t t = 0; t < l->cfg->n_tables; t++)
		if (pl->n_docvals[t] && !(d->dv[t] = batch_docvals_new(&l->cfg->tables[t])))
			return -1;
	return 0;
}

/* The job's variables, parsed again for each piece: the parser is shared. */
static const json_doc_t *ds_vars(loop_t *l, job_t *j, json_doc_t *vars)
{
	const char *v = j->desc->vars;
	json_error_t e;
	if (v && l->cfg->vars_parser && json_parse(l->cfg->vars_parser, v, strlen(v), vars, &e) == 0)
		return vars; /* the store wrote them as JSON: they parse */
	return NULL;
}

static void ds_fail_rows(job_t *j, const char *reason)
{
	j->nd_failed = true;
	batch_fail(j->batch, ERROR_CLASS_PERMANENT, "cannot turn the records into rows: %s",
	           reason ? reason : "unknown reason");
}

/* Keeps a record of table t for the end, in order. */
static int ds_hold(struct ds_job *d, uint32_t t, const json_doc_t *doc)
{
	json_buf_t *h = &d->held[t];
	size_t at = h->len;
	uint32_t n = 0;
	if (json_buf_append(h, (const char *)&n, sizeof n) || json_write(doc, 0, h))
		return -1;
	if (h->len - at - sizeof n > UINT32_MAX)
		return -1;
	n = (uint32_t)(h->len - at - sizeof n);
	memcpy(h->data + at, &n, sizeof n);
	return 0;
}

bool ds_can_cut(const job_t *j)
{
	const struct ds_job *d = j->ds;
	for (uint32_t t = 0; t < BATCH_TABLES_MAX; t++)
		if (d->holding[t])
			return false;
	return true;
}

/* One record: what each path that selects it feeds. A record of the rows
 * paths counts in j->nd_records (checkpoints count these); the first
 * j->nd_skip of them (committed by an earlier attempt's checkpoints) feed
 * no rows, but still the `$` columns. 0, or -1 (batch failed). */
static int ds_record(loop_t *l, job_t *j, const json_doc_t *doc, uint64_t paths,
                     const json_doc_t *vars)
{
	const struct ds_plan *pl = l->ds_plan;
	struct ds_job *d = j->ds;
	const char *reason = NULL;
	bool skip = false;
	if (paths & pl->rows_paths) { /* feeds rows, not only `$` columns */
		j->nd_records++;
		if (j->nd_skip) {
			j->nd_skip--;
			skip = true;
		}
	}
	for (uint32_t u = 0; u < pl->n_uses; u++) {
		const ds_use_t *use = &pl->uses[u];
		if (!(paths >> use->path & 1))
			continue;
		uint32_t t = use->table;
		if (use->col == DS_ROWS && skip)
			continue;
		if (use->col != DS_ROWS) {
			/* A column holds the first value its path selects. */
			if (batch_docvals_has(d->dv[t], use->col))
				continue;
			if (batch_docvals_set(d->dv[t], use->col, doc, 0, &reason)) {
				ds_fail_rows(j, reason);
				return -1;
			}
			d->got[t]++;
			continue;
		}
		if (d->holding[t] || d->got[t] < pl->n_docvals[t]) {
			d->holding[t] = true;
			if (ds_hold(d, t, doc)) {
				ds_fail_rows(j, "out of memory");
				return -1;
			}
			continue;
		}
		if (batch_add_record(j->batch, &l->cfg->tables[t], t, doc, 0, d->dv[t], vars, &d->names,
		                     &reason)) {
			ds_fail_rows(j, reason);
			return -1;
		}
	}
	return 0;
}

/* An error of the stream, its offset counted from the body's first byte (a
 * BOM passed over by nd_decoded included). */
static void ds_invalid(job_t *j, const json_error_t *e)
{
	j->nd_failed = true;
	size_t at = e->offset + j->bom_skipped;
	if (e->reason && strcmp(e->reason, JSON_STREAM_E_REPEATED) == 0) {
		job_fail_repeated(j->batch, at, e->line);
		return;
	}
	char note[JOB_CODING_NOTE_BYTES];
	batch_fail(j->batch, ERROR_CLASS_PERMANENT, "invalid JSON at byte offset %zu (line %zu): %s%s",
	           at, e->line, e->reason ? e->reason : "syntax error",
	           job_coding_note(j, note, sizeof note));
}

/* Pulls every record the stream has; returns what json_stream_next ended on
 * (JSON_STREAM_MORE, JSON_STREAM_END), or -1 once the batch failed. */
static int ds_drain(loop_t *l, job_t *j)
{
	struct ds_job *d = j->ds;
	json_doc_t vars_doc;
	const json_doc_t *vars = NULL;
	bool vars_parsed = false;
	json_stream_record_t rec;
	json_error_t e;
	int r;
	while ((r = json_stream_next(d->s, &rec, &e)) == JSON_STREAM_RECORD) {
		if (!vars_parsed) {
			vars = ds_vars(l, j, &vars_doc);
			vars_parsed = true;
		}
		if (ds_record(l, j, &rec.doc, rec.paths, vars))
			return -1;
	}
	if (r < 0) {
		ds_invalid(j, &e);
		return -1;
	}
	return r;
}

void ds_feed(loop_t *l, job_t *j, const char *p, size_t n)
{
	if (j->nd_failed)
		return; /* read to the end all the same (the raw file keeps it) */
	json_stream_feed(j->ds->s, p, n);
	ds_drain(l, j); /* a failure is in the batch */
}

/* The rows of a table whose records waited for the end. */
static int ds_replay(loop_t *l, job_t *j, uint32_t t, const json_doc_t *vars)
{
	struct ds_job *d = j->ds;
	json_buf_t *h = &d->held[t];
	if (!d->held_parser && !(d->held_parser = json_parser_new(0))) {
		ds_fail_rows(j, "out of memory");
		return -1;
	}
	for (size_t at = 0; at < h->len;) {
		uint32_t n;
		memcpy(&n, h->data + at, sizeof n);
		at += sizeof n;
		json_doc_t doc;
		json_error_t e;
		const char *reason = NULL;
		/* What json_write wrote from a valid record parses. */
		if (json_parse(d->held_parser, h->data + at, n, &doc, &e) ||
		    batch_add_record(j->batch, &l->cfg->tables[t], t, &doc, 0, d->dv[t], vars, &d->names,
		                     &reason)) {
			ds_fail_rows(j, reason ? reason : "out of memory");
			return -1;
		}
		at += n;
	}
	json_buf_free(h);
	return 0;
}

void ds_finish(loop_t *l, job_t *j)
{
	struct ds_job *d = j->ds;
	if (j->nd_failed)
		return;
	json_stream_finish(d->s);
	if (ds_drain(l, j) != JSON_STREAM_END)
		return;
	json_doc_t vars_doc;
	const json_doc_t *vars = ds_vars(l, j, &vars_doc);
	const struct ds_plan *pl = l->ds_plan;
	for (uint32_t t = 0; t < l->cfg->n_tables; t++) {
		const char *reason = NULL;
		if (d->holding[t] && ds_replay(l, j, t, vars))
			return;
		if (pl->doc_table[t] &&
		    batch_add_record(j->batch, &l->cfg->tables[t], t, NULL, 0, d->dv[t], vars, &d->names,
		                     &reason)) {
			ds_fail_rows(j, reason);
			return;
		}
	}
}
