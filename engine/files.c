/* engine/files.c: a `files` job on the loop thread: the local file is
 * checked (statx), opened into a slot of the ring's registered file table,
 * read and closed, every step through io_uring as raw files are written
 * (engine/job.c), never a blocking read(). A single JSON document whose
 * tables can stream (engine/docstream.c) is read LOCAL_STREAM_BYTES at a
 * time into one buffer, each piece hashed and fed to the job's json_stream;
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

typedef enum { LOCAL_STAT = 1, LOCAL_OPEN, LOCAL_READ, LOCAL_CLOSE } local_step_t;

/* One read in progress. Owned by its job (job_abandon frees it); the
 * kernel writes stx while LOCAL_STAT is in flight. */
struct local_file {
	op_t op;
	job_t *job;
	local_step_t step;
	const char *path; /* into the job's url, after "file:" */
	struct statx stx;
	bool streamed;    /* pieces go to the job's json_stream (j->ds) */
	bool one_piece;   /* to stream, but smaller than a piece: read whole first */
	uint64_t off;     /* streamed: bytes read so far */
	unsigned asked;   /* bytes the read in flight asked for */
};

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
		io_uring_prep_statx(sqe, AT_FDCWD, f->path, 0, STATX_TYPE | STATX_SIZE, &f->stx);
		break;
	case LOCAL_OPEN:
		/* No O_CLOEXEC: a direct descriptor is in no fd table (EINVAL). */
		io_uring_prep_openat_direct(sqe, AT_FDCWD, f->path, O_RDONLY, 0, (unsigned)j->file_fd);
		break;
	case LOCAL_READ: {
		/* Streamed: the whole buffer again for each piece. */
		size_t at = f->streamed ? 0 : j->body.len, room = j->body.cap - at;
		f->asked = (unsigned)(room < LOCAL_READ_BYTES_MAX ? room : LOCAL_READ_BYTES_MAX);
		io_uring_prep_read(sqe, j->file_fd, j->body.data + at, f->asked,
		                   f->streamed ? f->off : j->body.len);
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

/* The body is whole: its bytes, SHA-256, rows, as a download's; a failure
 * names the file, and raw_path says where the body is kept: the file. */
static void local_done(loop_t *l, job_t *j)
{
	char path[BATCH_PATH_BYTES_MAX];
	snprintf(path, sizeof path, "%s", j->local->path);
	job_body_ok(l, j); /* frees j only on out of memory, which makes the loop fatal */
	if (!l->fatal) {
		batch_t *b = j->batch;
		snprintf(b->raw_path, sizeof b->raw_path, "%s", path);
		if (b->kind == BATCH_JOB_FAILED) {
			char why[BATCH_ERROR_BYTES_MAX];
			snprintf(why, sizeof why, "%s", b->error);
			batch_fail(b, b->error_class, "%s: %s", path, why);
		}
	}
}

/* Out of memory is the run's problem: stop, the job stays pending. Every
 * failure of a file job is permanent or fatal: it has no host to wait on. */
static void local_nomem(loop_t *l, job_t *j)
{
	job_abandon(l, j);
	loop_fatal(l, "out of memory");
}

/* A single document the run's tables can stream: its batch, digest and
 * json_stream now, and a buffer of a piece or of the file, if smaller (many
 * small files are read at once). -1 on out of memory (what was made goes
 * with the job: j->nd makes nd_reset free it). */
static int local_stream_begin(loop_t *l, job_t *j, uint64_t size)
{
	size_t buf = size < LOCAL_STREAM_BYTES ? (size_t)size + 1 : LOCAL_STREAM_BYTES;
	j->local->streamed = true;
	j->nd = true;
	j->batch = batch_new(BATCH_JOB_DONE, j->desc->id);
	j->sha = EVP_MD_CTX_new();
	if (!j->batch || !j->sha || EVP_DigestInit_ex(j->sha, l->sha256, NULL) != 1 ||
	    ds_begin(l, j) || json_buf_reserve(&j->body, buf))
		return -1;
	return 0;
}

/* The streamed document is read: its last rows (docstream.c), the digest,
 * and the batch as local_done makes it. The stream goes back to the pool at
 * once (ds_free): the rows are in the batch, and the job may wait a while
 * for ring space. */
static void local_stream_done(loop_t *l, job_t *j)
{
	struct local_file *f = j->local;
	ds_finish(l, j);
	ds_free(l, j);
	batch_t *b = j->batch;
	if (j->sha) { /* else local_piece_done took it */
		unsigned char md[32];
		unsigned int n = 0;
		EVP_DigestFinal_ex(j->sha, md, &n);
		hex_digest(md, b->sha256_hex);
	}
	b->attempts = j->desc->attempts + (int)j->attempts_run;
	b->body_bytes = f->off;
	snprintf(b->raw_path, sizeof b->raw_path, "%s", f->path);
	if (b->kind == BATCH_JOB_FAILED) {
		char why[BATCH_ERROR_BYTES_MAX];
		snprintf(why, sizeof why, "%s", b->error);
		batch_fail(b, b->error_class, "%s: %s", f->path, why);
	}
	job_ready(l, j);
}

/* A document to stream that is smaller than a piece was read whole into
 * the body buffer: it goes through the stream now, in one go, with a
 * json_stream from the pool that is back there before this returns. Taken
 * at the stat instead, as a larger file's is, each of the --concurrency
 * files in flight would hold one while its reads wait, and a stream's
 * set-up cost as much as the rows of a small document. */
static void local_piece_done(loop_t *l, job_t *j)
{
	struct local_file *f = j->local;
	f->streamed = true;
	f->off = j->body.len;
	j->nd = true;
	if (!(j->batch = batch_new(BATCH_JOB_DONE, j->desc->id)) || ds_begin(l, j)) {
		local_nomem(l, j);
		return;
	}
	sha256_hex(l, &j->body, j->batch->sha256_hex);
	ds_feed(l, j, j->body.data, j->body.len);
	local_stream_done(l, j);
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
		bool stream = !job_is_ndjson(l, j) && ds_plan_ok(l);
		f->one_piece = stream && f->stx.stx_size < LOCAL_STREAM_BYTES;
		if (stream && !f->one_piece ? local_stream_begin(l, j, f->stx.stx_size) != 0
		                            : local_room(l, j, f->stx.stx_size) != 0) {
			local_nomem(l, j);
			return;
		}
		/* Slots are sized for a file per active job: there is always one. */
		j->file_fd = loop_slot_get(l);
		assert(j->file_fd >= 0);
		f->step = LOCAL_OPEN;
		break;
	case LOCAL_OPEN: f->step = LOCAL_READ; break;
	case LOCAL_READ:
		if (res == 0) {
			f->step = LOCAL_CLOSE;
			break;
		}
		if (f->streamed) {
			f->off += (uint64_t)res;
			l->bytes += (uint64_t)res;
			if (f->off > l->o->body_bytes_max) {
				job_fail(l, j, ERROR_CLASS_PERMANENT, 0,
				         "%s: larger than --max-body (%llu bytes)", f->path,
				         (unsigned long long)l->o->body_bytes_max);
				return;
			}
			EVP_DigestUpdate(j->sha, j->body.data, (size_t)res);
			ds_feed(l, j, j->body.data, (size_t)res);
			if ((unsigned)res < f->asked && f->off == f->stx.stx_size)
				f->step = LOCAL_CLOSE; /* at the end: see below */
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
		if (f->streamed)
			local_stream_done(l, j);
		else if (f->one_piece)
			local_piece_done(l, j);
		else
			local_done(l, j);
		return;
	}
	local_submit(l, f);
}
