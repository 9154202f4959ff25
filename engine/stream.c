/* engine/stream.c: --download-only bodies stream to their raw file as they
 * arrive, through a pool of CHUNK_BYTES chunks bounded by STREAM_POOL_BYTES
 * for all jobs together, with the SHA-256 taken on the way. When the pool is
 * empty a connection stops reading (conn.c marks it starved) until a write
 * gives a chunk back: memory stays bounded whatever the file sizes.
 *
 * The same pool carries --raw bodies of NDJSON jobs parsed as they arrive
 * (ndstream.c). Neighbours: conn.c feeds body bytes (stream_room, stream_append); job.c
 * owns the raw file's open/close/rename steps and calls back here when the
 * file is open and after each write. */
#include "engine/loop_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* --direct: a new chunk of the pool takes the next slot of the registered
 * buffers (loop.c, loop_fixed_bufs_init). A chunk beyond the pool's size is
 * never registered: it is freed when it comes back (chunk_put). When the
 * kernel refuses one (RLIMIT_MEMLOCK without CAP_IPC_LOCK), it and every
 * later chunk are written as before. */
static void chunk_register(loop_t *l, chunk_t *c)
{
	c->buf_index = -1;
	if (l->fixed_used >= l->fixed_bufs || l->chunks_made >= l->chunks_max)
		return;
	struct iovec iov = {.iov_base = c->data, .iov_len = CHUNK_BYTES};
	if (io_uring_register_buffers_update_tag(&l->ring, l->fixed_used, &iov, NULL, 1) == 1)
		c->buf_index = (int32_t)l->fixed_used++;
	else
		l->fixed_bufs = 0;
}

static chunk_t *chunk_get(loop_t *l, bool overdraw)
{
	chunk_t *c = l->chunks_free;
	if (c) {
		l->chunks_free = c->next;
	} else {
		if (l->chunks_made >= l->chunks_max && !overdraw)
			return NULL;
		if (!(c = aligned_alloc(CHUNK_ALIGN, sizeof *c)))
			return NULL;
		chunk_register(l, c);
		l->chunks_made++;
	}
	c->next = NULL;
	c->len = 0;
	return c;
}

/* Back to the pool, and the connections that waited for it read again. A
 * chunk made beyond the pool's size (a job's first) is freed instead: an
 * unregistered one, so that a registered buffer is never freed under the
 * kernel's table (the pool then keeps a registered chunk in its place). */
static void chunk_put(loop_t *l, chunk_t *c)
{
	if (l->chunks_made > l->chunks_max && c->buf_index < 0) {
		free(c);
		l->chunks_made--;
	} else {
		c->next = l->chunks_free;
		l->chunks_free = c;
	}
	if (!l->starved_conns || l->ring_gone)
		return;
	/* Resuming may finish a response and free connections: start over then. */
	for (conn_t *k = l->conns, *next; k && l->chunks_free; k = next) {
		uint64_t frees = l->conn_frees;
		next = k->all_next;
		if (k->starved)
			conn_resume(l, k);
		if (l->conn_frees != frees)
			next = l->conns;
	}
}

void stream_free_pool(loop_t *l)
{
	while (l->chunks_free) {
		chunk_t *c = l->chunks_free;
		l->chunks_free = c->next;
		free(c);
	}
}

/* The pool's chunks: STREAM_POOL_BYTES of them, or for tests fewer, from
 * $RINGFILL_STREAM_CHUNKS (1 up to that), so that a test can be sure bodies
 * start while the pool is empty (docs/testing.md). */
static uint32_t stream_chunks_max(void)
{
	uint32_t n = STREAM_POOL_BYTES / CHUNK_BYTES;
	const char *env = getenv("RINGFILL_STREAM_CHUNKS");
	if (env && *env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);
		if (!*end && v >= 1 && v < n)
			n = (uint32_t)v;
	}
	return n;
}

/* The head said 2xx: from here the body goes to the raw file. A job gets
 * its first chunk only when the pool has one: when it has none, the body
 * bytes that came with the head wait in the connection's head buffer
 * (conn.c, stash), so that memory stays within the pool however many
 * connections are in flight (512 first chunks were 128 MiB). */
int stream_start(loop_t *l, job_t *j)
{
	if (!l->chunks_max)
		l->chunks_max = stream_chunks_max();
	j->sha = EVP_MD_CTX_new();
	j->cur = chunk_get(l, false);
	bool oom = !j->cur && (l->chunks_free || l->chunks_made < l->chunks_max);
	if (!j->sha || oom || EVP_DigestInit_ex(j->sha, l->sha256, NULL) != 1) {
		stream_release(l, j);
		return -1;
	}
	j->streaming = true;
	j->op_tail.kind = OP_FILE_TAIL;
	j->tail_step = 0;
	j->stream_done = j->write_busy = false;
	j->stream_bytes = 0;
	j->wq_off = 0;
	job_raw_names(l, j);
	host_rawdir(l, j->origin, j);
	return 0;
}

static void queue_chunk(job_t *j, chunk_t *c)
{
	c->next = NULL;
	if (j->wq_tail)
		j->wq_tail->next = c;
	else
		j->wq_head = c;
	j->wq_tail = c;
}

/* Bytes the job can take now without waiting: what is left in its chunk,
 * or a new chunk's worth; 0 when the pool is empty. */
size_t stream_room(loop_t *l, job_t *j)
{
	if (j->cur && j->cur->len < CHUNK_BYTES)
		return CHUNK_BYTES - j->cur->len;
	if (j->cur) {
		queue_chunk(j, j->cur);
		j->cur = NULL;
		stream_pump(l, j);
	}
	j->cur = chunk_get(l, false);
	return j->cur ? CHUNK_BYTES : 0;
}

/* Where the next body bytes go, and how many fit, or NULL when the pool is
 * empty: conn.c decrypts straight into it. */
char *stream_tail(loop_t *l, job_t *j, size_t *room)
{
	*room = stream_room(l, j);
	return *room ? j->cur->data + j->cur->len : NULL;
}

/* Bytes that are already at the chunk's tail (decrypted there, see
 * stream_tail; chunked framing removed in place) are only counted. */
void stream_append(loop_t *l, job_t *j, const char *p, size_t n)
{
	if (n && j->cur && p == j->cur->data + j->cur->len && n <= CHUNK_BYTES - j->cur->len) {
		j->cur->len += n;
		j->stream_bytes += n;
		return;
	}
	while (n) {
		size_t room = stream_room(l, j);
		assert(room > 0); /* callers ask stream_room first */
		size_t take = n < room ? n : room;
		memcpy(j->cur->data + j->cur->len, p, take);
		COPY_COUNT(l, COPY_PLAIN, take);
		j->cur->len += take;
		j->stream_bytes += take;
		p += take;
		n -= take;
	}
}

/* A checkpoint waits for bytes still in the chunk being filled: it goes out
 * now, partly full, rather than when it fills (which may be never, if the
 * connection waits for that checkpoint). */
void stream_flush_partial(loop_t *l, job_t *j)
{
	if (!j->cur || !j->cur->len)
		return;
	queue_chunk(j, j->cur);
	j->cur = NULL;
	stream_pump(l, j);
}

/* The response ended: what is left goes out, then the file is closed. */
void stream_finish(loop_t *l, job_t *j)
{
	if (j->cur && j->cur->len) {
		queue_chunk(j, j->cur);
		j->cur = NULL;
	}
	j->stream_done = true;
	stream_pump(l, j);
}

/* A write of chunk bytes [off, off + len) to a file slot at file_off: from
 * the registered buffer when the chunk has one. */
static void chunk_prep_write(loop_t *l, struct io_uring_sqe *sqe, int slot, chunk_t *c,
                             size_t off, size_t len, uint64_t file_off)
{
	if (c->buf_index >= 0) {
		io_uring_prep_write_fixed(sqe, slot, c->data + off, (unsigned)len, file_off,
		                          c->buf_index);
		l->fixed_writes++;
	} else {
		io_uring_prep_write(sqe, slot, c->data + off, (unsigned)len, file_off);
	}
	sqe->flags |= IOSQE_FIXED_FILE;
}

/* --direct: the last bytes of the body, fewer than the alignment, cannot be
 * written through the O_DIRECT descriptor. A second descriptor of the same
 * .part, opened without O_DIRECT into its own slot, writes them and is
 * closed; one step at a time (open, write, close), each completing in
 * stream_tail_complete, with write_busy held all along so that a failure
 * waits for it. */
static void tail_submit(loop_t *l, job_t *j)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	switch (j->tail_step) {
	case FILE_OPEN:
		io_uring_prep_openat_direct(sqe, l->raw_dirfd, j->raw_rel_part, O_WRONLY, 0,
		                            (unsigned)j->tail_fd);
		break;
	case FILE_WRITE:
		chunk_prep_write(l, sqe, j->tail_fd, j->wq_head, j->wq_off, j->tail_len, j->file_off);
		break;
	default:
		io_uring_prep_close_direct(sqe, (unsigned)j->tail_fd);
		break;
	}
	io_uring_sqe_set_data(sqe, &j->op_tail);
}

void stream_tail_complete(loop_t *l, job_t *j, int res)
{
	file_step_t step = (file_step_t)j->tail_step;
	if (res < 0 || (step == FILE_WRITE && (size_t)res != j->tail_len)) {
		if (step == FILE_WRITE) { /* the slot holds the file: close it, no answer needed */
			loop_slot_close(l, j->tail_fd);
		} else {
			loop_slot_put(l, j->tail_fd);
		}
		j->tail_step = 0;
		j->write_busy = false;
		loop_fatal(l, "%s/%s: %s the last %zu bytes: %s", l->o->raw, j->raw_rel_part,
		           step == FILE_OPEN ? "cannot reopen for" : step == FILE_WRITE ?
		           "cannot write" : "cannot close after", j->tail_len,
		           res < 0 ? strerror(-res) : "short write");
		job_abandon(l, j);
		return;
	}
	if (step == FILE_CLOSE) {
		loop_slot_put(l, j->tail_fd);
		j->tail_step = 0;
		job_file_complete(l, j, (int)j->tail_len); /* as the write's own completion */
		return;
	}
	j->tail_step = step == FILE_OPEN ? FILE_WRITE : FILE_CLOSE;
	tail_submit(l, j);
}

/* One write at a time per file, in order. Runs when the file is open, when a
 * chunk fills or a write completes. With --direct every write but the last
 * is a whole number of alignment units (chunks fill completely before they
 * are written; only the last one is short): the last chunk's aligned part
 * goes through the O_DIRECT descriptor, its remainder through tail_submit. */
void stream_pump(loop_t *l, job_t *j)
{
	if (j->file_step != FILE_WRITE || j->write_busy || j->aborting)
		return;
	if (j->wq_head) {
		size_t len = j->wq_head->len - j->wq_off;
		if (l->o->direct && len % l->dio_align) {
			/* Not the last chunk only after a short write of an odd size:
			 * its rest goes the same way (a later unaligned O_DIRECT
			 * write then fails the run with EINVAL, as a disk error). */
			bool last = j->wq_head == j->wq_tail && j->stream_done;
			if (len < l->dio_align || !last) {
				j->write_busy = true;
				j->tail_len = len;
				j->tail_fd = loop_slot_get(l); /* a file per active job and spares */
				assert(j->tail_fd >= 0);
				j->tail_step = FILE_OPEN;
				tail_submit(l, j);
				return;
			}
			len -= len % l->dio_align;
		}
		j->write_busy = true;
		struct io_uring_sqe *sqe = loop_sqe(l);
		chunk_prep_write(l, sqe, j->file_fd, j->wq_head, j->wq_off, len, j->file_off);
		io_uring_sqe_set_data(sqe, &j->op_file);
		return;
	}
	if (j->stream_done)
		job_stream_done(l, j);
}

void stream_written(loop_t *l, job_t *j, size_t n)
{
	j->write_busy = false;
	/* Hashed as written, in file order: a resumed .part's first bytes were
	 * hashed before the first write (job.c, FILE_REHASH). */
	EVP_DigestUpdate(j->sha, j->wq_head->data + j->wq_off, n);
	j->file_off += n;
	j->wq_off += n;
	if (j->wq_off == j->wq_head->len) {
		chunk_t *c = j->wq_head;
		j->wq_head = c->next;
		if (!j->wq_head)
			j->wq_tail = NULL;
		j->wq_off = 0;
		chunk_put(l, c);
	}
	if (j->aborting)
		return; /* job.c finishes the failure now that nothing is in flight */
	stream_pump(l, j);
	if (j->ck_batch)
		nd_ck_try(l, j); /* a checkpoint may wait for these bytes */
}

/* A streaming job failed. While one of its file requests is in flight the
 * failure waits (the request points into its chunks); job.c calls job_fail
 * again when it completes. Returns true when the failure was deferred. */
bool stream_defer_failure(loop_t *l, job_t *j, error_class_t cls, uint64_t delay_ms,
                          const char *msg)
{
	(void)l;
	bool in_flight = j->write_busy || j->file_step == FILE_OPEN || j->file_step == FILE_CLOSE ||
	                 j->file_step == FILE_REHASH ||
	                 j->file_step == FILE_RENAME || (j->file_step == 0 && j->file_fd < 0);
	if (!in_flight)
		return false;
	j->aborting = true;
	j->abort_cls = cls;
	j->abort_delay_ms = delay_ms;
	snprintf(j->abort_msg, sizeof j->abort_msg, "%s", msg);
	return true;
}

/* Gives back everything the stream holds: chunks, the digest, the open file
 * (its .part stays behind and is written anew by the next attempt). */
void stream_release(loop_t *l, job_t *j)
{
	assert(!j->write_busy || l->ring_gone);
	if (j->cur)
		chunk_put(l, j->cur);
	while (j->wq_head) {
		chunk_t *c = j->wq_head;
		j->wq_head = c->next;
		chunk_put(l, c);
	}
	j->cur = j->wq_tail = NULL;
	if (j->sha)
		EVP_MD_CTX_free(j->sha);
	j->sha = NULL;
	if (j->file_fd >= 0 && !l->ring_gone)
		loop_slot_close(l, j->file_fd);
	j->file_fd = -1;
	j->file_step = 0;
	j->streaming = j->stream_done = j->write_busy = j->aborting = false;
}
