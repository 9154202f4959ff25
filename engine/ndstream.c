/* engine/ndstream.c: NDJSON bodies parsed as they arrive. Complete lines are
 * parsed and turned into rows as soon as they are in, through
 * json_ndjson_stream (parse/json_stream.h), which keeps only a line cut by a
 * piece's end. When a job's rows since its last checkpoint
 * pass --checkpoint-records records or ND_CKPT_ROW_BYTES bytes, they are cut
 * into a checkpoint batch (rows + the byte offset just past the last
 * complete line + the record count + the If-Range validator), which the
 * writer commits in one transaction while the job stays pending. A later
 * attempt or run resumes from the last checkpoint: Range: bytes=N- with
 * If-Range when the server allows it, else the body again with its first
 * records skipped.
 *
 * Neighbours: conn.c feeds body bytes (nd_feed) and asks before each read
 * whether the job may take more (nd_blocked); with --raw the bytes as sent
 * also go through stream.c's chunk pool to the .part file; job.c finishes the
 * job (nd_finish, then the raw file or the ready list). */
#include "engine/loop_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "parse/json_stream.h"

static uint64_t nd_record_max(const loop_t *l)
{
	return l->o->body_bytes_max < ND_RECORD_BYTES_MAX ? l->o->body_bytes_max
	                                                  : ND_RECORD_BYTES_MAX;
}

/* The checkpoint the database holds for the job, once per job. */
void nd_load(job_t *j)
{
	if (j->nd_loaded)
		return;
	j->nd_loaded = true;
	j->ck_offset = j->desc->ckpt_offset;
	j->ck_records = j->desc->ckpt_records;
	snprintf(j->ck_validator, sizeof j->ck_validator, "%s",
	         j->desc->ckpt_validator ? j->desc->ckpt_validator : "");
}

/* Adds Range and If-Range to the GET when the job has a checkpoint whose
 * response allowed it (Accept-Ranges: bytes, a strong ETag or a
 * Last-Modified, no content coding). Without a validator a Range would risk
 * gluing two versions of the body together, so none is asked then. */
int nd_request(loop_t *l, job_t *j, char *req, size_t len, size_t cap)
{
	(void)l;
	nd_load(j);
	j->range_sent = false;
	if (!j->ck_offset || !j->ck_validator[0] || j->no_range)
		return (int)len;
	ssize_t n = http_add_range(req, len, cap, j->ck_offset, j->ck_validator);
	if (n < 0)
		return (int)len; /* no room: the whole body again, skipping records */
	j->range_sent = true;
	return (int)n;
}

/* The response's validator, if it may be resumed with Range later. */
static void nd_validator(job_t *j)
{
	const http_response_t *r = &j->resp;
	j->nd_validator[0] = 0;
	if (!r->accept_ranges || r->gzip)
		return;
	if (r->etag[0] && http_etag_strong(r->etag))
		snprintf(j->nd_validator, sizeof j->nd_validator, "%s", r->etag);
	else if (r->last_modified[0])
		snprintf(j->nd_validator, sizeof j->nd_validator, "%s", r->last_modified);
}

/* Where the body's parse starts: at byte `base` (a checkpoint's offset,
 * whose records are committed), or at 0 skipping the first `skip` records. */
static void nd_start_at(job_t *j, uint64_t base, uint64_t skip)
{
	j->nd_base = base;
	j->nd_skip = skip;
	j->nd_pos = base;
	j->nd_records = base ? j->ck_records : 0;
	j->bom_done = base > 0; /* only the body's first bytes can be a BOM */
	j->bom_held = 0;
	j->bom_skipped = 0;
	j->sha_partial = false;
	j->stream_bytes = 0;
	j->body.len = 0;
}

/* The body's digest, over the bytes from nd_base on (partial when that is
 * not 0). 0, or -1 on out of memory. */
static int nd_digest_begin(loop_t *l, job_t *j)
{
	j->sha_partial = j->nd_base > 0;
	j->sha = EVP_MD_CTX_new();
	return j->sha && EVP_DigestInit_ex(j->sha, l->sha256, NULL) == 1 ? 0 : -1;
}

bool nd_ckpt_kind_refused(job_t *j, bool doc, char *why, size_t cap)
{
	/* The job's checkpoint as this run knows it: the database's, or the
	 * last one an earlier attempt of this run handed over (a retry may get
	 * another content type). */
	nd_load(j);
	uint64_t records = j->ck_records, offset = j->ck_offset;
	if (!records || doc == (offset == 0))
		return false;
	snprintf(why, cap,
	         "%llu records were committed by an earlier run or attempt that read this body "
	         "as %s, but this attempt reads it as %s: its records cannot be matched to skip "
	         "them (run it as before)",
	         (unsigned long long)records, doc ? "NDJSON" : "a single JSON document",
	         doc ? "a single JSON document" : "NDJSON");
	return true;
}

/* A 206 that names a validator of the kind the checkpoint holds (a strong
 * ETag, or a Last-Modified) must name the checkpoint's: a server that
 * ignores If-Range would otherwise glue the rest of another version onto
 * the committed records. One that names none is taken on If-Range's word. */
static bool nd_206_other_version(const job_t *j)
{
	const http_response_t *r = &j->resp;
	const char *v = j->ck_validator[0] == '"' ? r->etag : r->last_modified;
	return v[0] && strcmp(v, j->ck_validator) != 0;
}

/* A 2xx head of an NDJSON job arrived: from here its body is parsed as it
 * comes. A 206 must answer our Range exactly, to the body's end (a shorter
 * one would end the job with the rest missing; conn.c checks that its body
 * does), of the same version; a 200 is the whole body, whose
 * first ck_records records were committed already and are skipped (also
 * when the validator changed: see docs/engine.md). 0, or -1 with a reason. */
int nd_begin(loop_t *l, job_t *j, error_class_t *cls, char *err, size_t cap)
{
	const http_response_t *r = &j->resp;
	bool doc = !job_is_ndjson(l, j); /* a single document: docstream.c */
	nd_load(j);
	if (nd_ckpt_kind_refused(j, doc, err, cap) ||
	    (doc && r->status != 206 && ds_ckpt_refused(l, j, true, err, cap))) {
		*cls = ERROR_CLASS_PERMANENT;
		return -1;
	}
	*cls = ERROR_CLASS_TRANSIENT;
	if (r->status == 206) {
		const char *why = NULL;
		if (!j->range_sent)
			why = "HTTP 206 to a request without Range";
		else if (!r->content_range_ok)
			why = r->content_range ? "HTTP 206 with a bad Content-Range"
			                       : "HTTP 206 without Content-Range";
		else if (r->range_first != j->ck_offset)
			why = "HTTP 206 whose Content-Range does not start at the checkpoint";
		else if (r->range_total < 0)
			why = "HTTP 206 whose Content-Range does not say the body's length";
		else if (r->range_last + 1 != (uint64_t)r->range_total)
			why = "HTTP 206 whose Content-Range ends before the body does";
		else if (nd_206_other_version(j))
			why = "HTTP 206 of another version of the body (its validator is not the "
			      "checkpoint's)";
		else if (r->content_length >= 0 &&
		         (uint64_t)r->content_length != http_range_bytes(r))
			why = "HTTP 206 whose Content-Length is not its Content-Range's";
		else if (r->gzip)
			why = "HTTP 206 with a content coding";
		if (why) {
			j->no_range = true; /* the next attempt asks for the whole body */
			snprintf(err, cap, "%s (asked bytes=%llu-)", why,
			         (unsigned long long)j->ck_offset);
			return -1;
		}
		nd_start_at(j, j->ck_offset, 0);
	} else {
		nd_start_at(j, 0, j->ck_records);
	}
	nd_validator(j);
	if (doc) /* its checkpoints resume from the start, by records: no Range */
		snprintf(j->nd_validator, sizeof j->nd_validator, "%s", ds_rows_key(l));
	j->batch = batch_new(BATCH_JOB_DONE, j->desc->id);
	if (!j->batch) {
		snprintf(err, cap, "out of memory for a row batch");
		return -1;
	}
	j->nd = true;
	if (doc && ds_begin(l, j)) {
		snprintf(err, cap, "out of memory for a JSON stream");
		return -1;
	}
	if (l->o->raw) {
		/* The .part continues at N after a 206 (its first N bytes are
		 * hashed again first); else it is written anew. */
		j->file_resume = j->nd_base;
		if (stream_start(l, j)) {
			snprintf(err, cap, "out of memory for a body stream");
			return -1;
		}
		return 0;
	}
	if (nd_digest_begin(l, j) != 0) {
		snprintf(err, cap, "out of memory for a digest");
		return -1;
	}
	return 0;
}

/* nd_begin for a local NDJSON file (engine/files.c), which names its version
 * with `validator` (size and modification time): from a checkpoint made on
 * the same version reading goes on at its offset; else the file is read
 * from the start and the records committed already are skipped. A single
 * document (`doc`) is always read from the start, its committed records
 * skipped (files.c refuses a checkpoint of the other kind first:
 * nd_ckpt_kind_refused). *from is where to read. 0, or -1 on out of memory
 * (nd_reset frees what was made). */
int nd_begin_local(loop_t *l, job_t *j, const char *validator, bool doc, uint64_t *from)
{
	nd_load(j);
	bool on = !doc && j->ck_offset && !strcmp(j->ck_validator, validator);
	nd_start_at(j, on ? j->ck_offset : 0, on ? 0 : j->ck_records);
	snprintf(j->nd_validator, sizeof j->nd_validator, "%s", doc ? ds_rows_key(l) : validator);
	*from = j->nd_base;
	j->batch = batch_new(BATCH_JOB_DONE, j->desc->id);
	j->nd = true;
	return j->batch && nd_digest_begin(l, j) == 0 ? 0 : -1;
}

typedef struct {
	loop_t *l;
	job_t *j;
	const json_doc_t *vars;
	const char *reason;
} nd_ctx_t;

static int nd_row(void *ctx, const json_doc_t *doc, size_t line_offset)
{
	(void)line_offset;
	nd_ctx_t *c = ctx;
	const loop_config_t *cfg = c->l->cfg;
	if (batch_add_doc(c->j->batch, cfg->tables, cfg->n_tables, doc, c->vars, &c->reason))
		return 1;
	c->j->nd_records++;
	return 0;
}

/* Skips the body's first lines while records remain to skip (a 200 after a
 * checkpoint: they are committed already), without parsing or keeping
 * them; a blank line is no record. Returns the bytes of p[0..n) used. */
static size_t nd_skip_lines(job_t *j, const char *p, size_t n)
{
	size_t at = 0;
	while (j->nd_skip && at < n) {
		const char *nl = memchr(p + at, '\n', n - at);
		size_t end = nl ? (size_t)(nl - p) + 1 : n;
		for (size_t i = at; i < end && !j->nd_skip_seen; i++)
			j->nd_skip_seen = p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n';
		j->nd_skip_part += end - at;
		at = end;
		if (!nl)
			break; /* the line goes on in the next piece */
		if (j->nd_skip_seen) {
			j->nd_skip--;
			j->nd_records++;
		}
		j->nd_pos += j->nd_skip_part;
		j->nd_skip_part = 0;
		j->nd_skip_seen = false;
	}
	return at;
}

/* The stream's error or fn's refusal: the batch fails (permanent), naming
 * the byte offset; a line over the record limit fails the connection. */
static int nd_failure(loop_t *l, job_t *j, int r, const json_error_t *e, const char *reason,
                      error_class_t *cls, char *err, size_t cap)
{
	j->nd_failed = true;
	if (r == -1 && json_ndjson_stream_too_long(e)) {
		*cls = ERROR_CLASS_PERMANENT;
		snprintf(err, cap, "NDJSON record at byte offset %llu is longer than %llu bytes",
		         (unsigned long long)(j->nd_stream_base + e->offset),
		         (unsigned long long)nd_record_max(l));
		return -1;
	}
	char note[JOB_CODING_NOTE_BYTES];
	if (r == -1)
		batch_fail(j->batch, ERROR_CLASS_PERMANENT,
		           "invalid JSON at byte offset %llu (record %llu): %s%s",
		           (unsigned long long)(j->nd_stream_base + e->offset),
		           (unsigned long long)j->nd_records + 1, e->reason ? e->reason : "syntax error",
		           job_coding_note(j, note, sizeof note));
	else
		batch_fail(j->batch, ERROR_CLASS_PERMANENT,
		           "cannot turn record %llu into rows: %s", (unsigned long long)j->nd_records + 1,
		           reason ? reason : "unknown reason");
	return 0;
}

/* Decoded body bytes p[0..n) (p NULL: the end of the body): the lines to
 * skip first, then json_ndjson_stream, which hands over each complete line
 * and keeps only one cut by the piece's end. Rows go into the job's batch. */
static int nd_parse(loop_t *l, job_t *j, const char *p, size_t n, error_class_t *cls, char *err,
                    size_t cap)
{
	size_t skipped = p ? nd_skip_lines(j, p, n) : 0;
	if (!p && j->nd_skip && j->nd_skip_seen) { /* the last line, without a newline */
		j->nd_skip--;
		j->nd_records++;
	}
	if (!p && !j->nd_stream) {
		j->nd_pos += j->nd_skip_part;
		j->nd_skip_part = 0;
		return 0;
	}
	if (skipped == n && p)
		return 0;
	if (!j->nd_stream) {
		j->nd_stream = json_ndjson_stream_new(l->parser, nd_record_max(l));
		if (!j->nd_stream) {
			snprintf(err, cap, "out of memory for an NDJSON stream");
			return -1;
		}
		j->nd_stream_base = j->nd_pos;
	}
	json_doc_t vars;
	json_error_t e = {0, 0, NULL};
	nd_ctx_t c = {l, j, NULL, NULL};
	const char *v = j->desc->vars;
	if (v && l->cfg->vars_parser && json_parse(l->cfg->vars_parser, v, strlen(v), &vars, &e) == 0)
		c.vars = &vars;
	int r = p ? json_ndjson_stream_feed(j->nd_stream, p + skipped, n - skipped, nd_row, &c, &e)
	          : json_ndjson_stream_finish(j->nd_stream, nd_row, &c, &e);
	j->nd_pos = j->nd_stream_base + json_ndjson_stream_offset(j->nd_stream);
	return r ? nd_failure(l, j, r, &e, c.reason, cls, err, cap) : 0;
}

static void ck_unlist(loop_t *l, job_t *j)
{
	for (job_t **pp = &l->ck_head; *pp; pp = &(*pp)->ck_next)
		if (*pp == j) {
			*pp = j->ck_next;
			break;
		}
	j->ck_next = NULL;
}

/* Hands the job's cut checkpoint to the writer, once its bytes are in the
 * .part file (with --raw and no content coding, the offset is a file offset:
 * a committed checkpoint never points past what was written) and the ring
 * has room. The job's connection reads on if it waited for this. */
void nd_ck_try(loop_t *l, job_t *j)
{
	batch_t *b = j->ck_batch;
	if (!b)
		return;
	if (j->streaming && !j->resp.gzip &&
	    (j->file_step < FILE_WRITE || j->file_off < b->ckpt_offset)) {
		stream_flush_partial(l, j);
		return;
	}
	/* Read before the push: from then on the writer may free it any time. */
	uint64_t offset = b->ckpt_offset, records = b->ckpt_records, rows = b->n_rows;
	char validator[BATCH_VALIDATOR_BYTES_MAX];
	snprintf(validator, sizeof validator, "%s", b->ckpt_validator);
	if (!pipe_push_batch(l->pipe, b))
		return;
	doorbell_ring(&l->pipe->writer_bell);
	l->rows += rows;
	j->ck_offset = offset;
	j->ck_records = records;
	snprintf(j->ck_validator, sizeof j->ck_validator, "%s", validator);
	j->ck_batch = NULL; /* the writer's now */
	ck_unlist(l, j);
	l->ck_unblocked = true; /* nd_ck_flush lets its connection read on */
}

/* Tries every waiting checkpoint in the order they were cut. */
void nd_ck_flush(loop_t *l)
{
	job_t *list = l->ck_head, *retry = NULL;
	l->ck_head = NULL;
	while (list) {
		job_t *j = list;
		list = j->ck_next;
		j->ck_next = retry;
		retry = j;
	}
	while (retry) { /* back in their order, each re-listed first */
		job_t *j = retry;
		retry = j->ck_next;
		j->ck_next = l->ck_head;
		l->ck_head = j;
		nd_ck_try(l, j);
	}
	/* From the top of the loop, never from inside a completion: resuming
	 * may finish (or free) jobs and connections; start over when it did. */
	if (!l->ck_unblocked || l->ring_gone)
		return;
	l->ck_unblocked = false;
	for (job_t *j = l->jobs; j && l->starved_files; j = j->all_next)
		if (j->local)
			files_resume(l, j);
	for (conn_t *k = l->conns, *next; k && l->starved_conns; k = next) {
		uint64_t frees = l->conn_frees;
		next = k->all_next;
		if (k->starved && k->job && k->job->nd && !nd_blocked(l, k->job))
			conn_resume(l, k);
		if (l->conn_frees != frees)
			next = l->conns;
	}
}

/* The rows since the last checkpoint become a checkpoint batch (one at a
 * time per job: while one waits, rows gather in the next). */
static int nd_cut(loop_t *l, job_t *j)
{
	if (j->ck_batch || j->nd_failed)
		return 0;
	batch_t *b = j->batch;
	batch_t *next = batch_new(BATCH_JOB_DONE, j->desc->id);
	/* The next checkpoint's rows are likely as many bytes as these: made
	 * room for at once, they are never copied to a bigger buffer. */
	if (!next || batch_rows_reserve(next, b->rows.len + b->rows.len / 8) != 0) {
		batch_free(next);
		return -1;
	}
	b->kind = BATCH_JOB_CHECKPOINT;
	/* A document's parse cannot start half-way: its checkpoints say 0, and
	 * a later attempt reads from the start and skips the records. */
	b->ckpt_offset = j->ds ? 0 : j->nd_pos;
	b->ckpt_records = j->nd_records;
	b->ckpt_from = j->ck_records;
	snprintf(b->ckpt_validator, sizeof b->ckpt_validator, "%s", j->nd_validator);
	j->ck_batch = b;
	j->batch = next;
	j->ck_next = l->ck_head;
	l->ck_head = j;
	nd_ck_try(l, j);
	return 0;
}

/* NDJSON: every --checkpoint-records records or ND_CKPT_ROW_BYTES of rows.
 * A single document: every DS_CKPT_ROW_BYTES of rows (a document under it,
 * nearly all, is committed whole with its done mark, one batch, as ever),
 * and not while one of its tables holds records for the end. */
static bool nd_due(const loop_t *l, const job_t *j)
{
	if (!j->batch || j->nd_failed || j->nd_records <= j->ck_records)
		return false;
	if (j->ds)
		return j->batch->rows.len >= DS_CKPT_ROW_BYTES && ds_can_cut(j);
	return j->nd_records - j->ck_records >= l->o->ckpt_records ||
	       j->batch->rows.len >= ND_CKPT_ROW_BYTES;
}

/* A connection stops reading while its job's checkpoint waits and the next
 * one is due already: rows never pile up without bound. */
bool nd_blocked(loop_t *l, const job_t *j)
{
	return j->nd && j->ck_batch && nd_due(l, j);
}

/* Decoded bytes: parsed at once, then a checkpoint cut if one is due. */
static int nd_lines(loop_t *l, job_t *j, const char *p, size_t n, error_class_t *cls, char *err,
                    size_t cap)
{
	if (!j->nd_failed && nd_parse(l, j, p, n, cls, err, cap))
		return -1;
	if (nd_due(l, j) && nd_cut(l, j)) {
		*cls = ERROR_CLASS_TRANSIENT;
		snprintf(err, cap, "out of memory for a row batch");
		return -1;
	}
	return 0;
}

/* A single document's decoded bytes went to its stream: a checkpoint cut
 * if one is due. 0, or -1 on out of memory. */
static int nd_ds_cut(loop_t *l, job_t *j, error_class_t *cls, char *err, size_t cap)
{
	if (!nd_due(l, j) || nd_cut(l, j) == 0)
		return 0;
	*cls = ERROR_CLASS_TRANSIENT;
	snprintf(err, cap, "out of memory for a row batch");
	return -1;
}

/* Decoded body bytes to the parser: the document's stream, or the lines. */
static int nd_take(loop_t *l, job_t *j, const char *p, size_t n, error_class_t *cls, char *err,
                   size_t cap)
{
	if (j->ds) {
		ds_feed(l, j, p, n); /* the stream borrows p until it has read it */
		return nd_ds_cut(l, j, cls, err, cap);
	}
	return nd_lines(l, j, p, n, cls, err, cap);
}

/* nd_take, past a UTF-8 byte order mark at the body's start (JOB_BOM) however
 * the pieces cut it: up to two bytes of one are held until the third says
 * whether it is one (then all three are dropped: an NDJSON body's offsets
 * still count them, a document's errors add them) or not (then they go on
 * first). */
static int nd_decoded(loop_t *l, job_t *j, const char *p, size_t n, error_class_t *cls,
                      char *err, size_t cap)
{
	if (!j->bom_done && n) {
		size_t k = j->bom_held, i = 0;
		while (k < 3 && i < n && p[i] == JOB_BOM[k])
			k++, i++;
		if (k < 3 && i == n) { /* the piece ends inside what may be one */
			j->bom_held = (uint8_t)k;
			return 0;
		}
		uint8_t held = j->bom_held;
		j->bom_done = true;
		j->bom_held = 0;
		if (k == 3) {
			j->bom_skipped = 3;
			if (!j->ds)
				j->nd_pos += 3; /* the lines' offsets are the body's */
			p += i, n -= i;
		} else if (held && nd_take(l, j, JOB_BOM, held, cls, err, cap)) {
			return -1;
		}
	}
	return n ? nd_take(l, j, p, n, cls, err, cap) : 0;
}

/* Body bytes as sent. With --raw, stream.c has them already (chunks, digest
 * at write time); without, they are hashed here. Decoded bytes join the
 * partial line, complete lines are parsed at once. */
int nd_feed(loop_t *l, job_t *j, const char *p, size_t n, error_class_t *cls, char *err,
            size_t cap)
{
	if (!j->streaming) {
		j->stream_bytes += n;
		EVP_DigestUpdate(j->sha, p, n);
	}
	if (j->nd_failed || j->gz_failed)
		return 0; /* read to the end all the same (the raw file keeps it) */
	*cls = ERROR_CLASS_TRANSIENT;
	if (!j->resp.gzip)
		return nd_decoded(l, j, p, n, cls, err, cap);
	/* gzip: decoded a bounded piece at a time, each parsed before the
	 * next, so a small piece that inflates a lot cannot grow the buffer. */
	for (;;) {
		const char *why = "corrupt data";
		uint64_t at = 0;
		uint64_t piece_max = DS_GZIP_PIECE_BYTES;
		int r = gzip_feed(&j->gz, p, n, &j->body, piece_max, &why, &at);
		if (r == GZIP_ERROR) {
			j->gz_failed = true;
			snprintf(j->gz_error, sizeof j->gz_error, "bad gzip data at byte %llu: %s",
			         (unsigned long long)at, why);
			return 0;
		}
		if (r == -ENOMEM) {
			snprintf(err, cap, "out of memory while decoding gzip");
			return -1;
		}
		if (j->ds) {
			/* The decoded piece goes to the stream, which keeps only a
			 * value that crosses its end; --max-body bounds the decoded
			 * total as it bounds a whole body's. */
			j->nd_pos += j->body.len;
			if (j->nd_pos > l->o->body_bytes_max) {
				*cls = ERROR_CLASS_PERMANENT;
				snprintf(err, cap, "gzip body decodes to more than --max-body (%llu bytes)",
				         (unsigned long long)l->o->body_bytes_max);
				return -1;
			}
		}
		/* The decoded piece is parsed before the next is decoded into
		 * the same buffer; its bytes are not needed after. */
		int bad = nd_decoded(l, j, j->body.data, j->body.len, cls, err, cap);
		j->body.len = 0;
		if (bad)
			return -1;
		if (r != GZIP_TOO_LARGE)
			return 0;
		/* The piece is parsed: the rest of the input decodes on from
		 * where zlib stopped. */
		p = (const char *)j->gz.z.next_in;
		n = j->gz.z.avail_in;
	}
}

/* The body ended: its last line (without a newline) is parsed, a pending
 * checkpoint's rows join the final batch (one batch: the order of the rows
 * and the done mark cannot be mixed up), and the batch gets the body's size
 * and digest. With --raw the digest is finished when the file is complete
 * (job.c). */
void nd_finish(loop_t *l, job_t *j)
{
	/* Its batch is the final one now (a local file's too, which no
	 * connection marks). Defensive: nd_stop runs only once the ready list
	 * is empty, but a finished local document's j->ds is freed at once
	 * (local_nd_done) and would otherwise look like an NDJSON job there. */
	j->body_done = true;
	if (job_gzip_unended(j)) {
		j->gz_failed = true;
		snprintf(j->gz_error, sizeof j->gz_error,
		         "bad gzip data at byte %llu: the stream ends early",
		         (unsigned long long)j->stream_bytes);
	}
	if (j->gz_failed && !j->nd_failed) {
		j->nd_failed = true;
		batch_fail(j->batch, ERROR_CLASS_PERMANENT, "%s", j->gz_error);
	}
	if (!j->bom_done && j->bom_held) { /* the body ended inside what began as a BOM */
		char err[ERR_BYTES];
		error_class_t cls;
		uint8_t held = j->bom_held;
		j->bom_done = true;
		j->bom_held = 0;
		if (nd_take(l, j, JOB_BOM, held, &cls, err, sizeof err))
			batch_fail(j->batch, cls, "%s", err);
	}
	if (j->ds) {
		ds_finish(l, j);
	} else if (!j->nd_failed) {
		char err[ERR_BYTES];
		error_class_t cls;
		/* The last line is whole now: no line limit is left to pass. */
		if (nd_parse(l, j, NULL, 0, &cls, err, sizeof err))
			batch_fail(j->batch, cls, "%s", err);
	}
	if (j->ck_batch) {
		batch_t *ck = j->ck_batch;
		if (j->batch->kind == BATCH_JOB_DONE &&
		    json_buf_append(&ck->rows, j->batch->rows.data, j->batch->rows.len) == 0) {
			ck->n_rows += j->batch->n_rows;
			ck->kind = BATCH_JOB_DONE;
			batch_free(j->batch);
			j->batch = ck;
		} else {
			batch_free(ck); /* the job fails: its rows are not committed */
		}
		j->ck_batch = NULL;
		ck_unlist(l, j);
	}
	batch_t *b = j->batch;
	b->attempts = j->desc->attempts + (int)j->attempts_run;
	b->http_status = j->resp.status;
	b->body_bytes = j->nd_base + j->stream_bytes;
	/* Done only on top of the checkpoint it continues; a document without
	 * one (most) as any whole body. */
	b->streamed = !j->ds || j->ck_records > 0;
	b->ckpt_from = j->ck_records;
	if (!j->streaming) {
		unsigned char md[32];
		unsigned int mdn = 0;
		EVP_DigestFinal_ex(j->sha, md, &mdn);
		EVP_MD_CTX_free(j->sha);
		j->sha = NULL;
		hex_digest(md, b->sha256_hex);
		if (j->sha_partial) /* its first bytes were never seen: no digest */
			b->sha256_hex[0] = 0;
	}
}

/* Forgets this response's parse (a retry starts again from the last
 * checkpoint handed over; a cut one still waiting is dropped with its rows,
 * which the retry parses again). */
void nd_reset(loop_t *l, job_t *j)
{
	if (j->ck_batch) {
		batch_free(j->ck_batch);
		j->ck_batch = NULL;
		ck_unlist(l, j);
	}
	if (j->nd) {
		batch_free(j->batch);
		j->batch = NULL;
		if (j->sha && !j->streaming) {
			EVP_MD_CTX_free(j->sha);
			j->sha = NULL;
		}
	}
	ds_free(l, j);
	json_ndjson_stream_free(j->nd_stream);
	j->nd_stream = NULL;
	j->nd_skip_part = 0;
	j->nd_skip_seen = false;
	j->nd = j->nd_failed = false;
	j->file_resume = 0;
	free(j->rehash_buf);
	j->rehash_buf = NULL;
}

/* SIGINT/SIGTERM: every streaming job's rows so far become a checkpoint, so
 * the next run resumes from here. Waits (the loop keeps turning) while
 * checkpoints wait for their raw bytes or ring space, at most
 * ND_STOP_WAIT_MS; whatever is left then is dropped, never half-applied. */
bool nd_stop(loop_t *l)
{
	if (!l->stop_ckpt_done) {
		l->stop_ckpt_done = true;
		l->stop_ms = l->now_ms;
		for (job_t *j = l->jobs; j; j = j->all_next)
			if (j->nd && (!j->ds || ds_can_cut(j)) && !j->body_done && !j->nd_failed &&
			    j->batch && j->nd_records > j->ck_records && !j->ck_batch)
				nd_cut(l, j);
	}
	nd_ck_flush(l);
	return !l->ck_head || l->now_ms - l->stop_ms > ND_STOP_WAIT_MS;
}
