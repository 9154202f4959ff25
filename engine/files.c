/* engine/files.c: a `files` job on the loop thread: the local file is
 * checked (statx), opened into a slot of the ring's registered file table,
 * read and closed, every step through io_uring as raw files are written
 * (engine/job.c), never a blocking read(). A single JSON document whose
 * tables can stream (engine/docstream.c) is read LOCAL_STREAM_BYTES at a
 * time into one buffer, each piece hashed and fed to the job's json_stream;
 * an NDJSON file of a piece or more goes the same way through
 * engine/ndstream.c, as a downloaded NDJSON body does (rows as lines
 * complete, checkpoints, a resumed run reading on from the last one);
 * anything else is read into the job's body buffer whole, which then goes
 * the way of a downloaded one (job_body_ok: SHA-256, parse, rows, batch).
 * Jobs come from engine/sources.c (files_expand) via the store. */
#include "engine/loop_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

/* One read request asks for at most this much: io_uring takes a 32-bit
 * length, and a read that returns 0 must mean the end, never a wrapped 0. */
#define LOCAL_READ_BYTES_MAX (64u << 20)
/* A streamed document is read this much at a time. */
#define LOCAL_STREAM_BYTES (1u << 20)
/* Documents of a piece or more streamed at once; the others wait, in the
 * order their stat came back (files_wake). Rows reach the writer as each
 * document ends: read side by side, documents all end late, and SQLite
 * waits meanwhile with their batches held (docs/engine.md). Two: one is
 * parsed while the other's read is in flight. */
#define LOCAL_STREAMS_MAX 2u

typedef enum { LOCAL_STAT = 1, LOCAL_OPEN, LOCAL_READ, LOCAL_CLOSE } local_step_t;

/* One read in progress. Owned by its job (job_abandon frees it); the
 * kernel writes stx while LOCAL_STAT is in flight. */
struct local_file {
	op_t op;
	job_t *job;
	local_step_t step;
	const char *path; /* into the job's url, after "file:" */
	struct statx stx;
	bool streamed;    /* read in pieces (nd), or a one-piece document streamed whole */
	bool nd;          /* pieces go to nd_feed: NDJSON, or a document (j->ds); checkpoints */
	bool starved;     /* nd: a checkpoint waits and the next is due; reading paused */
	bool one_piece;   /* to stream, but smaller than a piece: read whole first */
	bool restream;    /* read whole, found gzip: read again streamed (local_restream) */
	bool counted;     /* streamed, one of loop_t.local_streams */
	bool waits;       /* streamed, on loop_t.stream_wait until there is room */
	struct local_file *wait_next;
	uint64_t off;     /* streamed: bytes read so far */
	unsigned asked;   /* bytes the read in flight asked for */
};

/* A gzip file (a raw body that --download-only kept as sent by a server
 * that gzips): gzip's magic, 1f 8b, which no JSON text starts with (nor a
 * UTF-8 byte order mark, EF BB BF). */
static bool local_is_gzip(const char *p, size_t n)
{
	return n >= 2 && (unsigned char)p[0] == 0x1f && (unsigned char)p[1] == 0x8b;
}

/* Where the file's bytes are read to: the job's body buffer, or for a
 * streamed gzip file its wire buffer (nd_feed decodes each piece into the
 * body buffer). */
static json_buf_t *local_in(job_t *j)
{
	return j->local->streamed && j->resp.gzip ? &j->wire : &j->body;
}

/* The file is gzip: its body as stored is the gzip (the digest, `bytes`,
 * content_encoding), decoded on the way to the parser as a download's. */
static int local_gzip_begin(job_t *j)
{
	j->resp.gzip = true;
	snprintf(j->resp.content_encoding, sizeof j->resp.content_encoding, "gzip");
	return gzip_init(&j->gz);
}

static void swap_bufs(json_buf_t *a, json_buf_t *b)
{
	json_buf_t t = *a;
	*a = *b;
	*b = t;
}

/* A gzip file read whole into the body buffer: moved to the wire buffer (the
 * body as stored) and decoded into the body buffer, at most --max-body.
 * Bad or truncated data, or too much of it, is the job's gz_error (a
 * permanent failure, as for a download). 0, or -1 on out of memory. */
static int local_gunzip_whole(loop_t *l, job_t *j)
{
	swap_bufs(&j->body, &j->wire);
	j->body.len = 0;
	if (local_gzip_begin(j) != 0)
		return -1;
	const char *why = "corrupt data";
	uint64_t at = 0;
	int r = gzip_feed(&j->gz, j->wire.data, j->wire.len, &j->body, l->o->body_bytes_max, &why,
	                  &at);
	if (r == -ENOMEM)
		return -1;
	if (r == GZIP_TOO_LARGE)
		snprintf(j->gz_error, sizeof j->gz_error,
		         "gzip file decodes to more than --max-body (%llu bytes)",
		         (unsigned long long)l->o->body_bytes_max);
	else if (r == GZIP_ERROR)
		snprintf(j->gz_error, sizeof j->gz_error, "bad gzip data at byte %llu: %s",
		         (unsigned long long)at, why);
	else if (!j->gz.ended)
		snprintf(j->gz_error, sizeof j->gz_error, "bad gzip data at byte %zu: the stream ends early",
		         j->wire.len);
	j->gz_failed = r != 0 || !j->gz.ended;
	return 0;
}

bool files_job(const loop_t *l, const job_desc_t *d)
{
	return l->cfg->local_files && !strncmp(d->url, FILES_URL_PREFIX, strlen(FILES_URL_PREFIX));
}

static void local_submit(loop_t *l, struct local_file *f)
{
	job_t *j = f->job;
	struct io_uring_sqe *sqe = loop_sqe(l);
	switch (f->step) {
	case LOCAL_STAT:
		io_uring_prep_statx(sqe, AT_FDCWD, f->path, 0, STATX_TYPE | STATX_SIZE | STATX_MTIME,
		                    &f->stx);
		break;
	case LOCAL_OPEN:
		/* No O_CLOEXEC: a direct descriptor is in no fd table (EINVAL). */
		io_uring_prep_openat_direct(sqe, AT_FDCWD, f->path, O_RDONLY, 0, (unsigned)j->file_fd);
		break;
	case LOCAL_READ: {
		/* Streamed: the whole buffer again for each piece. */
		json_buf_t *in = local_in(j);
		size_t at = f->streamed ? 0 : in->len, room = in->cap - at;
		f->asked = (unsigned)(room < LOCAL_READ_BYTES_MAX ? room : LOCAL_READ_BYTES_MAX);
		io_uring_prep_read(sqe, j->file_fd, in->data + at, f->asked,
		                   f->streamed ? f->off : in->len);
		sqe->flags |= IOSQE_FIXED_FILE;
		break;
	}
	case LOCAL_CLOSE: io_uring_prep_close_direct(sqe, (unsigned)j->file_fd); break;
	}
	io_uring_sqe_set_data(sqe, &f->op);
}

void files_start(loop_t *l, job_t *j)
{
	struct local_file *f = calloc(1, sizeof(*f));
	if (!f) {
		job_abandon(l, j);
		loop_fatal(l, "out of memory");
		return;
	}
	j->local = f;
	f->op.kind = OP_LOCAL;
	f->job = j;
	f->path = j->desc->url + strlen(FILES_URL_PREFIX);
	/* job_is_ndjson looks at the target's suffix: .ndjson, .jsonl */
	j->url.target = f->path;
	j->url.target_len = strlen(f->path);
	f->step = LOCAL_STAT;
	local_submit(l, f);
}

/* Room for the rest of the file, and a byte more: a read that returns 0
 * there is the end, one that fills it means the file grew. */
static int local_room(loop_t *l, job_t *j, uint64_t size)
{
	uint64_t want = size + 1, max = l->o->body_bytes_max + 1;
	if (want > max)
		want = max;
	return want > j->body.len ? json_buf_reserve(&j->body, (size_t)(want - j->body.len)) : 0;
}

/* The file is the batch's raw body; a failure's reason starts with its path.
 * Out of memory for the path stops the run, and the job goes as failed
 * (transient: the next run does it again), never done without its path. */
static void local_batch_path(loop_t *l, batch_t *b, const char *path)
{
	if (batch_set_raw_path(b, NULL, path) != 0) {
		batch_fail(b, ERROR_CLASS_TRANSIENT, "out of memory");
		loop_fatal(l, "out of memory");
	}
	if (b->kind == BATCH_JOB_FAILED) {
		char why[BATCH_ERROR_BYTES_MAX];
		snprintf(why, sizeof why, "%s", b->error);
		batch_fail(b, b->error_class, "%s: %s", path, why);
	}
}

static void local_nomem(loop_t *l, job_t *j);
static void local_open(loop_t *l, job_t *j, struct local_file *f, bool nd, bool stream);
static void local_wait(loop_t *l, struct local_file *f);

/* A gzip file read whole because it is small as stored, that is NDJSON or a
 * document to stream: read again the streamed way, a piece at a time from
 * the start, decoded by nd_feed with its checkpoints and backpressure, as
 * a larger one. Its decoded size is not bounded by its own: decoded whole it
 * would be one batch of up to --max-body. Read twice, it is small and in
 * the page cache. */
static void local_restream(loop_t *l, job_t *j, bool doc)
{
	struct local_file *f = j->local;
	l->bytes -= j->body.len; /* counted again as it is read again */
	j->body.len = 0;
	f->one_piece = false;
	f->restream = true;
	if (doc && l->local_streams >= LOCAL_STREAMS_MAX) { /* as a large document */
		local_wait(l, f);
		return;
	}
	local_open(l, j, f, !doc, doc);
}

/* The body is whole: its bytes, SHA-256, rows, as a download's; a failure
 * names the file, and raw_path says where the body is kept: the file. */
static void local_done(loop_t *l, job_t *j)
{
	char path[BATCH_PATH_BYTES_MAX];
	snprintf(path, sizeof path, "%s", j->local->path);
	bool gz = local_is_gzip(j->body.data, j->body.len);
	if (gz && job_is_ndjson(l, j)) {
		local_restream(l, j, false);
		return;
	}
	if (gz && local_gunzip_whole(l, j) != 0) { /* tables that cannot stream: whole */
		local_nomem(l, j);
		return;
	}
	job_body_ok(l, j); /* frees j only on out of memory, which makes the loop fatal */
	if (!l->fatal)
		local_batch_path(l, j->batch, path);
}

/* Out of memory is the run's problem: stop, the job stays pending. Every
 * failure of a file job is permanent or fatal: it has no host to wait on. */
static void local_nomem(loop_t *l, job_t *j)
{
	job_abandon(l, j);
	loop_fatal(l, "out of memory");
}

/* A document to stream that is smaller than a piece was read whole into
 * the body buffer: it goes through the stream now, in one go, with a
 * json_stream from the pool that is back there before this returns (its
 * rows are in the batch, and the job may wait a while for ring space).
 * Taken at the stat instead, as a larger file's is, each of the
 * --concurrency files in flight would hold one while its reads wait, and a
 * stream's set-up cost as much as the rows of a small document. */
static void local_piece_done(loop_t *l, job_t *j)
{
	struct local_file *f = j->local;
	f->off = j->body.len;
	if (local_is_gzip(j->body.data, j->body.len)) {
		local_restream(l, j, true);
		return;
	}
	f->streamed = true;
	j->nd = true;
	if (!(j->batch = batch_new(BATCH_JOB_DONE, j->desc->id)) || ds_begin(l, j)) {
		local_nomem(l, j);
		return;
	}
	batch_t *b = j->batch;
	sha256_hex(l, &j->body, b->sha256_hex);
	ds_feed(l, j, j->body.data, j->body.len);
	ds_finish(l, j);
	ds_free(l, j);
	b->attempts = j->desc->attempts + (int)j->attempts_run;
	b->body_bytes = f->off;
	local_batch_path(l, b, f->path);
	job_ready(l, j);
}

/* An NDJSON file of a piece or more: read a piece at a time and parsed as
 * lines complete (engine/ndstream.c), with checkpoints as a download's. Its
 * size and modification time name this version of the file: a checkpoint
 * made on the same version is read on from; on another, the file is read
 * from the start and the records committed already are skipped, as for a
 * download whose validator changed. A single document of a piece or more
 * (`doc`) goes the same way with its json_stream (docstream.c): its
 * checkpoints have offset 0, so it is always read from the start, its
 * committed records skipped. -1 on out of memory (what was made goes with
 * the job: j->nd makes nd_reset free it). */
static int local_nd_begin(loop_t *l, job_t *j, struct local_file *f, bool doc)
{
	char validator[BATCH_VALIDATOR_BYTES_MAX];
	snprintf(validator, sizeof validator, "file %llu %lld.%09u",
	         (unsigned long long)f->stx.stx_size, (long long)f->stx.stx_mtime.tv_sec,
	         (unsigned)f->stx.stx_mtime.tv_nsec);
	f->streamed = f->nd = true;
	if (nd_begin_local(l, j, validator, doc, &f->off) != 0 || (doc && ds_begin(l, j)))
		return -1;
	return json_buf_reserve(&j->body, LOCAL_STREAM_BYTES);
}

/* The NDJSON file or document is read: its last line or rows, a waiting
 * checkpoint's rows and the digest go into the final batch (nd_finish), as
 * for a download. A document's stream goes back to the pool at once
 * (ds_free): the job may wait a while for ring space. */
static void local_nd_done(loop_t *l, job_t *j)
{
	struct local_file *f = j->local;
	nd_finish(l, j);
	ds_free(l, j);
	local_batch_path(l, j->batch, f->path);
	job_ready(l, j);
}

/* A piece of the NDJSON file: its lines to rows, and a checkpoint cut when
 * one is due. Reading pauses while the job's last checkpoint waits for the
 * ring and the next is due already (nd_blocked), as a connection's does;
 * files_resume goes on. False when the job failed. */
static bool local_nd_piece(loop_t *l, job_t *j, struct local_file *f, size_t n)
{
	char err[BATCH_ERROR_BYTES_MAX];
	error_class_t cls;
	if (nd_feed(l, j, local_in(j)->data, n, &cls, err, sizeof err) != 0) {
		job_fail(l, j, cls == ERROR_CLASS_TRANSIENT ? ERROR_CLASS_PERMANENT : cls, 0, "%s: %s",
		         f->path, err);
		return false;
	}
	if (j->nd_failed) /* the rest cannot be parsed: the batch says why */
		f->step = LOCAL_CLOSE;
	return true;
}

/* The document no longer counts among the streamed ones (it is read, or
 * its job ends); files_wake, at the top of the loop, starts the next. */
static void local_stream_end(loop_t *l, struct local_file *f)
{
	if (f->counted) {
		f->counted = false;
		l->local_streams--;
	}
	if (!f->waits)
		return;
	struct local_file **p = &l->stream_wait;
	while (*p != f)
		p = &(*p)->wait_next;
	*p = f->wait_next;
	if (l->stream_wait_tail == &f->wait_next)
		l->stream_wait_tail = p;
	f->waits = false;
}

void files_free(loop_t *l, job_t *j)
{
	if (j->local && j->local->starved)
		l->starved_files--;
	if (j->local)
		local_stream_end(l, j->local);
	free(j->local);
	j->local = NULL;
}

bool files_resume(loop_t *l, job_t *j)
{
	struct local_file *f = j->local;
	if (!f || !f->starved || nd_blocked(l, j))
		return false;
	f->starved = false;
	l->starved_files--;
	local_submit(l, f);
	return true;
}

/* A job with a committed checkpoint (an earlier run, stopped) goes the
 * checkpoint's way (nd_begin_local: its records skipped) whatever its size
 * now: read whole, a file that shrank under a piece since would be
 * inserted whole again on top of the checkpoint's rows. */
static bool local_has_ckpt(const job_t *j)
{
	return j->desc->ckpt_records > 0;
}

/* The stat is in: buffers for the way the file is read, a slot, and the
 * open. */
static void local_open(loop_t *l, job_t *j, struct local_file *f, bool nd, bool stream)
{
	if (stream && !f->one_piece) {
		f->counted = true;
		if (++l->local_streams > l->local_streams_peak)
			l->local_streams_peak = l->local_streams;
	}
	bool nd_way = nd && (f->stx.stx_size >= LOCAL_STREAM_BYTES || local_has_ckpt(j) ||
	                     f->restream);
	int bad = nd_way || (stream && !f->one_piece)
	              ? local_nd_begin(l, j, f, stream)
	              : local_room(l, j, f->stx.stx_size);
	if (bad) {
		local_nomem(l, j);
		return;
	}
	/* Slots are sized for a file per active job: there is always one. */
	j->file_fd = loop_slot_get(l);
	assert(j->file_fd >= 0);
	f->step = LOCAL_OPEN;
	local_submit(l, f);
}

/* The document waits for room among the streamed ones (files_wake). */
static void local_wait(loop_t *l, struct local_file *f)
{
	f->waits = true; /* files_wake opens it */
	l->local_stream_waits++;
	f->wait_next = NULL;
	if (!l->stream_wait)
		l->stream_wait_tail = &l->stream_wait;
	*l->stream_wait_tail = f;
	l->stream_wait_tail = &f->wait_next;
}

void files_wake(loop_t *l)
{
	while (l->stream_wait && l->local_streams < LOCAL_STREAMS_MAX && !l->stopping) {
		struct local_file *f = l->stream_wait;
		local_stream_end(l, f); /* off the list */
		local_open(l, f->job, f, false, true);
	}
}

void files_complete(loop_t *l, op_t *op, int res)
{
	struct local_file *f = container_of(op, struct local_file, op);
	job_t *j = f->job;
	const char *what = f->step == LOCAL_STAT ? "cannot read" : f->step == LOCAL_OPEN ? "cannot open"
	                   : f->step == LOCAL_READ ? "cannot read" : "cannot close";
	if (res < 0) {
		if (f->step == LOCAL_OPEN || f->step == LOCAL_CLOSE) {
			loop_slot_put(l, j->file_fd); /* nothing (left) in it */
			j->file_fd = -1;
		}
		job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "%s: %s: %s", f->path, what, strerror(-res));
		return;
	}
	switch (f->step) {
	case LOCAL_STAT:
		if (!S_ISREG(f->stx.stx_mode)) {
			job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "%s: not a regular file", f->path);
			return;
		}
		if (f->stx.stx_size > l->o->body_bytes_max) {
			job_fail(l, j, ERROR_CLASS_PERMANENT, 0,
			         "%s: %llu bytes, larger than --max-body (%llu bytes)", f->path,
			         (unsigned long long)f->stx.stx_size,
			         (unsigned long long)l->o->body_bytes_max);
			return;
		}
		bool nd = job_is_ndjson(l, j);
		bool stream = !nd && ds_plan_ok(l);
		char why[ERR_BYTES];
		if (nd_ckpt_kind_refused(j, !nd, why, sizeof why) ||
		    (!nd && ds_ckpt_refused(l, j, stream, why, sizeof why))) {
			job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "%s: %s", f->path, why);
			return;
		}
		f->one_piece = stream && f->stx.stx_size < LOCAL_STREAM_BYTES && !local_has_ckpt(j);
		if (stream && !f->one_piece && l->local_streams >= LOCAL_STREAMS_MAX) {
			local_wait(l, f);
			return;
		}
		local_open(l, j, f, nd, stream);
		return;
	case LOCAL_OPEN: f->step = LOCAL_READ; break;
	case LOCAL_READ:
		if (res == 0) {
			f->step = LOCAL_CLOSE;
			break;
		}
		if (f->streamed) {
			if (f->off == 0 && !j->resp.gzip && local_is_gzip(j->body.data, (size_t)res)) {
				/* The first piece says gzip: it, and the pieces after it,
				 * are read to the wire buffer and decoded into the body
				 * buffer (nd_feed). A decoded offset is no place to read
				 * the file on from: an NDJSON file's checkpoints name
				 * no version (nd_validator empty), so a resumed run
				 * reads it from the start and skips the records
				 * committed, as a download's gzip body. A document's
				 * keep the rows paths they count (ds_rows_key). */
				swap_bufs(&j->body, &j->wire);
				j->body.len = 0;
				if (!j->ds)
					j->nd_validator[0] = '\0';
				if (local_gzip_begin(j) != 0) {
					local_nomem(l, j);
					return;
				}
			}
			f->off += (uint64_t)res;
			l->bytes += (uint64_t)res;
			if (f->off > l->o->body_bytes_max) {
				job_fail(l, j, ERROR_CLASS_PERMANENT, 0,
				         "%s: larger than --max-body (%llu bytes)", f->path,
				         (unsigned long long)l->o->body_bytes_max);
				return;
			}
			if (!local_nd_piece(l, j, f, (size_t)res))
				return;
			if ((unsigned)res < f->asked && f->off == f->stx.stx_size)
				f->step = LOCAL_CLOSE; /* at the end: see below */
			if (f->step == LOCAL_READ && nd_blocked(l, j)) {
				f->starved = true; /* files_resume reads on */
				l->starved_files++;
				return;
			}
			break;
		}
		j->body.len += (size_t)res;
		l->bytes += (uint64_t)res;
		if (j->body.len > l->o->body_bytes_max) {
			job_fail(l, j, ERROR_CLASS_PERMANENT, 0, "%s: larger than --max-body (%llu bytes)",
			         f->path, (unsigned long long)l->o->body_bytes_max);
			return;
		}
		/* A short read that ends at the size the stat gave is the end: the
		 * read that would return 0 is not made (one request fewer per
		 * file). Room was asked for a byte more, so a file that grew since
		 * fills it and is read on; a short read before that size (a file
		 * system that returns less than asked, e.g. FUSE) reads on too, to
		 * the read that returns 0. */
		if ((unsigned)res < f->asked && j->body.len == f->stx.stx_size) {
			f->step = LOCAL_CLOSE;
			break;
		}
		if (j->body.len == j->body.cap && local_room(l, j, 2 * j->body.len) != 0) {
			local_nomem(l, j);
			return;
		}
		break;
	case LOCAL_CLOSE:
		loop_slot_put(l, j->file_fd);
		j->file_fd = -1;
		local_stream_end(l, f);
		if (f->nd)
			local_nd_done(l, j);
		else if (f->one_piece)
			local_piece_done(l, j);
		else
			local_done(l, j);
		return;
	}
	local_submit(l, f);
}
