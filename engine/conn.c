/* engine/conn.c: one HTTPS connection on io_uring: connect, receive (one
 * multishot recv into provided buffers, or a recv at a time into the
 * connection's own buffer), the TLS handshake (net/tls.c; OpenSSL pulls the
 * ciphertext straight from the receive buffers), one GET at a time with keep-alive,
 * the response head (net/http.c) and the body framing (Content-Length,
 * chunked, or until close) into the job's body buffer.
 *
 * Neighbours: loop.c dispatches completions here and owns the host table;
 * job.c takes over when a response is complete or a connection fails.
 * A connection is freed only when none of its requests is in flight. */
#include "engine/loop_internal.h"
#include "rf_config.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t timeout_ms(loop_t *l)
{
	return (uint64_t)(l->o->timeout_s * 1000.0);
}

static void conn_set_phase(loop_t *l, conn_t *c, const char *phase)
{
	c->phase = phase;
	c->deadline_ms = l->now_ms + timeout_ms(l);
}

/* Received bytes that were never pulled go back to the buffer ring. */
static void conn_drop_input(loop_t *l, conn_t *c)
{
	while (c->rq_head >= 0) {
		int32_t bid = c->rq_head;
		c->rq_head = l->rb.next[bid];
		loop_recvbuf_put(l, bid);
	}
	c->rq_tail = -1;
	c->rq_off = 0;
	c->rq_bytes = 0;
}

static void conn_free(loop_t *l, conn_t *c)
{
	assert(c->inflight == 0 && c->dead);
	if (c->nobufs) {
		conn_t **pp = &l->nobufs_head;
		while (*pp != c)
			pp = &(*pp)->nobufs_next;
		*pp = c->nobufs_next;
	}
	conn_drop_input(l, c);
	free(c->rbuf);
	free(c->spill);
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		l->conns = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	loop_slot_close(l, c->fd);
	tls_conn_free(&c->tls);
	host_t *h = c->host;
	h->conns--;
	h->tls_probed = true; /* ended before an answer: the others need not wait */
	l->conns_open--;
	l->conn_frees++;
	free(c);
	host_dispatch(l, h);
	while (l->blocked_hosts && l->conns_open < l->o->concurrency) {
		host_t *b = l->blocked_hosts;
		l->blocked_hosts = b->blocked_next;
		b->blocked = false;
		host_dispatch(l, b);
	}
}

void conn_close(loop_t *l, conn_t *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->starved) {
		c->starved = false;
		l->starved_conns--;
	}
	if (c->state == CONN_IDLE) {
		conn_t **pp = &c->host->idle;
		while (*pp && *pp != c)
			pp = &(*pp)->idle_next;
		if (*pp)
			*pp = c->idle_next;
	}
	if (c->inflight == 0) {
		conn_free(l, c);
		return;
	}
	/* Requests still in flight complete with -ECANCELED; the last one to
	 * complete frees the connection. */
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
	io_uring_sqe_set_data(sqe, &c->op_cancel);
	c->inflight++;
}

/* Fails the connection's job (if any) and closes the connection. A request
 * that died on a reused keep-alive connection before any byte of the answer
 * came back is sent again without counting an attempt, first in the host's
 * queue and on a new connection: the server most likely closed the idle
 * connection just as we used it. A new connection failing counts. */
static void conn_fail(loop_t *l, conn_t *c, error_class_t cls, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void conn_fail(loop_t *l, conn_t *c, error_class_t cls, const char *fmt, ...)
{
	job_t *j = c->job;
	bool reused = c->reused;
	c->job = NULL;
	if (j)
		j->conn = NULL;
	conn_close(l, c); /* may free c */
	if (!j)
		return;
	if (reused && !j->got_bytes && cls == ERROR_CLASS_TRANSIENT) {
		job_stale_retry(l, j);
		return;
	}
	char msg[ERR_BYTES];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	job_fail(l, j, cls, 0, "%s", msg);
}

/* Sends wbuf[0..wlen): one send in flight per connection. */
static void conn_send_wbuf(loop_t *l, conn_t *c)
{
	assert(!c->send_busy && c->wlen > 0);
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_send(sqe, c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, &c->op_send);
	c->send_busy = true;
	c->inflight++;
}

/* Sends what OpenSSL has written, if anything and no send is in flight. */
static void conn_flush(loop_t *l, conn_t *c)
{
	if (c->send_busy || c->dead || !c->tls.ssl)
		return;
	size_t n = tls_take_out(&c->tls, c->wbuf, sizeof c->wbuf);
	if (!n)
		return;
	c->wlen = n;
	conn_send_wbuf(l, c);
}

/* With a buffer ring: one multishot recv stays armed (it ends on an empty
 * ring, an error, EOF, or when the kernel decides; then this is called
 * again), or a recv at a time on kernels that refuse multishot. An empty
 * ring puts the connection on the wait list instead (conn_rearm_nobufs).
 * Without: one recv at a time into rbuf, once OpenSSL pulled what it held. */
static void conn_arm_recv(loop_t *l, conn_t *c)
{
	if (c->recv_busy || c->dead || c->nobufs || c->rx_end || c->starved)
		return;
	struct io_uring_sqe *sqe;
	if (l->rb.n) {
		if (!l->rb.free) {
			c->nobufs = true;
			c->nobufs_next = l->nobufs_head;
			l->nobufs_head = c;
			return;
		}
		sqe = loop_sqe(l);
		if (l->rb.multishot)
			io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		else
			io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
		sqe->buf_group = RECV_BGID;
	} else {
		if (c->rq_bytes)
			return; /* OpenSSL has not pulled it all yet */
		sqe = loop_sqe(l);
		io_uring_prep_recv(sqe, c->fd, c->rbuf, CONN_RECV_BYTES, 0);
		sqe->flags |= IOSQE_FIXED_FILE;
	}
	io_uring_sqe_set_data(sqe, &c->op_recv);
	c->recv_busy = true;
	c->inflight++;
}

void conn_rearm_nobufs(loop_t *l)
{
	while (l->nobufs_head && l->rb.free) {
		conn_t *c = l->nobufs_head;
		l->nobufs_head = c->nobufs_next;
		c->nobufs = false;
		c->deadline_ms = l->now_ms + timeout_ms(l); /* it waited for us, not the server */
		conn_arm_recv(l, c);
	}
}

/* OpenSSL's read BIO (tls_source_t): copies received ciphertext out of the
 * queue; a provided buffer goes back to the ring as soon as it is empty. */
static size_t conn_pull(void *arg, void *dst, size_t cap)
{
	conn_t *c = arg;
	loop_t *l = c->loop;
	char *out = dst;
	size_t got = 0;
	if (c->spill_len) { /* queued before the queue's bytes */
		size_t take = c->spill_len - c->spill_off < cap ? c->spill_len - c->spill_off : cap;
		memcpy(out, c->spill + c->spill_off, take);
		got = take;
		c->spill_off += take;
		c->rq_bytes -= take;
		if (c->spill_off == c->spill_len) {
			free(c->spill);
			c->spill = NULL;
			c->spill_len = c->spill_off = 0;
		}
	}
	while (got < cap && c->rq_bytes) {
		const char *p;
		size_t avail;
		int32_t bid = c->rq_head;
		if (l->rb.n) {
			p = l->rb.base + (size_t)bid * RECV_BUF_BYTES + c->rq_off;
			avail = l->rb.len[bid] - c->rq_off;
		} else {
			p = c->rbuf + c->rq_off;
			avail = c->rq_bytes;
		}
		size_t take = avail < cap - got ? avail : cap - got;
		memcpy(out + got, p, take);
		got += take;
		c->rq_off += (uint32_t)take;
		c->rq_bytes -= take;
		if (take < avail)
			break;
		c->rq_off = 0;
		if (l->rb.n) {
			c->rq_head = l->rb.next[bid];
			if (c->rq_head < 0)
				c->rq_tail = -1;
			loop_recvbuf_put(l, bid);
		}
	}
	COPY_COUNT(l, COPY_TLS_IN, got);
	return got;
}

static size_t conn_pending(void *arg)
{
	return ((conn_t *)arg)->rq_bytes;
}

/* The connection's job cannot take bytes now (no free chunk, or its
 * checkpoint waits). It must not sit on provided buffers meanwhile: the
 * jobs that hold the chunks may need those buffers to fill them and give
 * them back (with every buffer on starved connections, nothing moves). So
 * its multishot recv is cancelled (completions already on their way are
 * queued as usual), and what it queued is copied into a buffer of its own
 * (spill, at most what the ring held for it) and the buffers go back. The
 * bytes stay in the socket until conn_resume reads on. */
static void conn_starve(loop_t *l, conn_t *c)
{
	c->starved = true;
	l->starved_conns++;
	if (!l->rb.n)
		return;
	if (c->recv_busy) {
		struct io_uring_sqe *sqe = loop_sqe(l);
		io_uring_prep_cancel(sqe, &c->op_recv, 0);
		io_uring_sqe_set_data(sqe, &c->op_cancel);
		c->inflight++;
	}
	size_t n = c->rq_bytes - (c->spill_len - c->spill_off);
	if (!n)
		return;
	size_t keep = c->spill_len - c->spill_off;
	char *p = malloc(keep + n);
	if (!p)
		return; /* the buffers stay with it: slower, not wrong, unless all are */
	if (keep) /* spill is NULL when nothing was kept: no memcpy from NULL */
		memcpy(p, c->spill + c->spill_off, keep);
	free(c->spill);
	c->spill = NULL;
	c->spill_len = c->spill_off = 0;
	size_t rq = c->rq_bytes;
	c->rq_bytes = n;
	size_t got = conn_pull(c, p + keep, n); /* gives the buffers back */
	assert(got == n);
	c->spill = p;
	c->spill_len = keep + got;
	c->rq_bytes = rq;
}

/* A new connection: the socket is created straight into a slot of the
 * ring's file table, the connect is linked behind it and a timeout of
 * --timeout behind the connect, so all three go in one submission. If the
 * socket cannot be made the connect is cancelled and reports the socket's
 * error; if the timeout fires first the connect comes back cancelled with no
 * socket error (conn_complete). */
conn_t *conn_open(loop_t *l, host_t *h, job_t *j)
{
	/* Not calloc: that would zero (touch) head[] and wbuf[], 32 KiB that
	 * are always written before they are read (head_len, wlen) and of
	 * which a connection uses a page or two: with 512 connections, calloc
	 * made about 12 MiB resident for nothing (docs/benchmarks.md). */
	conn_t *c = malloc(sizeof *c);
	if (c)
		memset(c, 0, offsetof(conn_t, head));
	int slot = c ? loop_slot_get(l) : -1;
	if (slot < 0) {
		free(c);
		job_fail(l, j, ERROR_CLASS_TRANSIENT, 0, "cannot open a connection: %s",
		         c ? "no free file slot" : strerror(ENOMEM));
		return NULL;
	}
	c->fd = slot;
	c->loop = l;
	c->rq_head = c->rq_tail = -1;
	if (!l->rb.n && !(c->rbuf = malloc(CONN_RECV_BYTES))) {
		loop_slot_put(l, slot);
		free(c);
		job_fail(l, j, ERROR_CLASS_TRANSIENT, 0, "cannot open a connection: %s",
		         strerror(ENOMEM));
		return NULL;
	}
	c->host = h;
	c->job = j;
	j->conn = c;
	c->op_socket.kind = OP_SOCKET;
	c->op_connect.kind = OP_CONNECT;
	c->op_connect_timeout.kind = OP_CONNECT_TIMEOUT;
	c->op_send.kind = OP_SEND;
	c->op_recv.kind = OP_RECV;
	c->op_cancel.kind = OP_CANCEL;
	c->op_close.kind = OP_CLOSE;
	c->all_next = l->conns;
	if (l->conns)
		l->conns->all_prev = c;
	l->conns = c;
	h->conns++;
	l->conns_open++;
	c->state = CONN_CONNECTING;
	c->opened_ms = l->now_ms;
	conn_set_phase(l, c, "connecting");
	uint64_t ms = timeout_ms(l);
	c->connect_ts.tv_sec = (long long)(ms / 1000);
	c->connect_ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	loop_sqe_room(l, 3);
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_socket_direct(sqe, h->addr.ss_family, SOCK_STREAM, 0, (unsigned)slot, 0);
	io_uring_sqe_set_data(sqe, &c->op_socket);
	sqe->flags |= IOSQE_IO_LINK;
	sqe = loop_sqe(l);
	io_uring_prep_connect(sqe, slot, (struct sockaddr *)&h->addr, h->addr_len);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_LINK;
	io_uring_sqe_set_data(sqe, &c->op_connect);
	sqe = loop_sqe(l);
	io_uring_prep_link_timeout(sqe, &c->connect_ts, 0);
	io_uring_sqe_set_data(sqe, &c->op_connect_timeout);
	c->inflight += 3;
	return c;
}

/* Sends the job's GET. --header lines go only to the job's own host: a
 * redirect elsewhere must not carry the user's credentials along. Returns
 * false when the connection failed (and may be freed). */
static bool conn_send_request(loop_t *l, conn_t *c)
{
	job_t *j = c->job;
	char err[TLS_ERR_BYTES];
	bool own_host = j->host == j->origin;
	ssize_t n = http_build_get(l->request, sizeof l->request, j->url.host, j->url.host_is_ipv6,
	                           j->url.port, j->url.target, j->url.target_len,
	                           l->o->headers_len && own_host ? l->o->headers : NULL);
	if (n < 0) {
		conn_fail(l, c, ERROR_CLASS_PERMANENT, "request too large (URL and headers over %u bytes)",
		          HTTP_HEAD_BYTES_MAX);
		return false;
	}
	n = nd_request(l, j, l->request, (size_t)n, sizeof l->request); /* Range after a checkpoint */
	if (tls_write(&c->tls, l->request, (size_t)n, err, sizeof err)) {
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "%s", err);
		return false;
	}
	c->head_len = 0;
	c->close_after = false;
	conn_set_phase(l, c, "waiting for the response");
	conn_flush(l, c);
	conn_arm_recv(l, c);
	return true;
}

void conn_assign(loop_t *l, conn_t *c, job_t *j)
{
	assert(c->state == CONN_IDLE && !c->job);
	c->job = j;
	j->conn = c;
	c->reused = true;
	c->state = CONN_RESPONSE;
	conn_send_request(l, c);
}

/* The host keeps this connection's session for the next ones to resume,
 * when it has none or this connection made a full handshake (its session
 * was refused: a server that rotated its ticket keys, say). */
static void conn_keep_session(conn_t *c)
{
	host_t *h = c->host;
	if (h->session && tls_resumed(&c->tls))
		return;
	SSL_SESSION *s = tls_session_get(&c->tls);
	if (s) {
		if (h->session)
			SSL_SESSION_free(h->session);
		h->session = s;
	}
}

/* The response is complete: the connection goes back to its host's idle list
 * (or closes), and the job moves on to job.c. */
static void conn_response_done(loop_t *l, conn_t *c)
{
	job_t *j = c->job;
	host_t *h = c->host;
	bool reused = c->reused;
	c->job = NULL;
	j->conn = NULL;
	j->body_done = true;
	conn_keep_session(c);
	/* Bytes beyond the response would be read as the next one's: such a
	 * connection is not reused. */
	if (j->resp.close || c->close_after || c->dead || tls_has_input(&c->tls)) {
		conn_close(l, c);
	} else {
		c->state = CONN_IDLE;
		c->idle_since_ms = l->now_ms;
		c->idle_next = h->idle;
		h->idle = c;
		conn_arm_recv(l, c); /* anything arriving while idle closes it */
	}
	if (reused && j->resp.status == 408 && !l->stopping)
		job_stale_retry(l, j); /* the server timed out the idle connection, not us */
	else
		job_response_done(l, j);
	host_dispatch(l, h);
}

/* Decodes gzip as it arrives. Bad gzip data does not end the transfer: the
 * body as sent is read to its end so that --raw keeps it for inspection, and
 * job.c fails the job (permanent) with the reason and the byte. */
static int body_inflate(loop_t *l, conn_t *c, const char *p, size_t n)
{
	job_t *j = c->job;
	if (j->gz_failed)
		return 0;
	const char *why = "corrupt data";
	uint64_t at = 0;
	int r = gzip_feed(&j->gz, p, n, &j->body, l->o->body_bytes_max, &why, &at);
	if (r == GZIP_ERROR) {
		j->gz_failed = true;
		snprintf(j->gz_error, sizeof j->gz_error, "bad gzip data at byte %llu: %s",
		         (unsigned long long)at, why);
		return 0;
	}
	if (r == GZIP_TOO_LARGE) {
		conn_fail(l, c, ERROR_CLASS_PERMANENT,
		          "gzip body decodes to more than --max-body (%llu bytes)",
		          (unsigned long long)l->o->body_bytes_max);
		return -1;
	}
	if (r) {
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "out of memory while decoding gzip");
		return -1;
	}
	return 0;
}

/* Body bytes received so far, as sent. */
static uint64_t body_len(const job_t *j)
{
	return j->streaming || j->nd ? j->stream_bytes : j->resp.gzip ? j->wire.len : j->body.len;
}

static int body_append(loop_t *l, conn_t *c, const char *p, size_t n)
{
	job_t *j = c->job;
	if (j->streaming || j->nd) {
		const http_response_t *r = &j->resp;
		if (j->nd && r->status == 206 && j->stream_bytes + n > http_range_bytes(r)) {
			/* chunked or close-delimited, more than its range: not the
			 * rest of the body, and stopped before it is parsed */
			j->no_range = true;
			conn_fail(l, c, ERROR_CLASS_TRANSIENT,
			          "HTTP 206 body longer than the %llu bytes its Content-Range announced",
			          (unsigned long long)http_range_bytes(r));
			return -1;
		}
		/* after a 206, the body's first nd_base bytes came before */
		if ((j->nd ? j->nd_base : 0) + j->stream_bytes + n > l->o->body_bytes_max) {
			conn_fail(l, c, ERROR_CLASS_PERMANENT, "body larger than --max-body (%llu bytes)",
			          (unsigned long long)l->o->body_bytes_max);
			return -1;
		}
		if (j->streaming)
			stream_append(l, j, p, n); /* conn_read_plain read no more than there is room */
		char err[ERR_BYTES];
		error_class_t cls;
		if (j->nd && nd_feed(l, j, p, n, &cls, err, sizeof err)) {
			conn_fail(l, c, cls, "%s", err);
			return -1;
		}
		return 0;
	}
	json_buf_t *dst = j->resp.gzip ? &j->wire : &j->body;
	if (dst->len + n > l->o->body_bytes_max) {
		conn_fail(l, c, ERROR_CLASS_PERMANENT, "body larger than --max-body (%llu bytes)",
		          (unsigned long long)l->o->body_bytes_max);
		return -1;
	}
	if (json_buf_append(dst, p, n)) {
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "out of memory for a body of %zu bytes",
		          dst->len + n);
		return -1;
	}
	return j->resp.gzip ? body_inflate(l, c, p, n) : 0;
}

/* Body bytes p[0..n) (writable: chunked framing is decoded in place).
 * Returns 1 when the response ended (or the connection failed), else 0. */
/* A 206 nd_begin took ends where its Content-Range does: a chunked or
 * close-delimited body that ends before it was cut (a proxy whose upstream
 * died), and taken as the rest it would end the job with records missing.
 * 1 when the connection failed for it (transient: the next attempt resumes
 * from the last checkpoint). */
static int range_cut_short(loop_t *l, conn_t *c)
{
	job_t *j = c->job;
	const http_response_t *r = &j->resp;
	if (r->status != 206 || !j->nd || j->stream_bytes == http_range_bytes(r))
		return 0;
	if (j->ck_offset <= j->nd_base)
		j->no_range = true; /* not one checkpoint further: the whole body next */
	conn_fail(l, c, ERROR_CLASS_TRANSIENT,
	          "HTTP 206 body ended after %llu of the %llu bytes its Content-Range announced",
	          (unsigned long long)j->stream_bytes,
	          (unsigned long long)http_range_bytes(r));
	return 1;
}

static int conn_body(loop_t *l, conn_t *c, char *p, size_t n)
{
	job_t *j = c->job;
	const http_response_t *r = &j->resp;
	if (r->chunked) {
		size_t dl = n;
		const char *why = "bad framing";
		ssize_t left = http_chunked_decode(&j->chunk, p, &dl, &why);
		if (left == HTTP_ERROR) {
			conn_fail(l, c, ERROR_CLASS_TRANSIENT, "bad chunked encoding: %s", why);
			return 1;
		}
		if (body_append(l, c, p, dl))
			return 1;
		if (left == HTTP_INCOMPLETE)
			return 0;
		if (range_cut_short(l, c))
			return 1;
		c->close_after |= left > 0; /* bytes nobody asked for: do not reuse */
		conn_response_done(l, c);
		return 1;
	}
	if (r->content_length >= 0) {
		uint64_t want = (uint64_t)r->content_length - body_len(j);
		size_t take = n < want ? n : (size_t)want;
		if (body_append(l, c, p, take))
			return 1;
		if (body_len(j) < (uint64_t)r->content_length)
			return 0;
		c->close_after |= n > take;
		conn_response_done(l, c);
		return 1;
	}
	return body_append(l, c, p, n) ? 1 : 0; /* until the server closes */
}

static int conn_head_done(loop_t *l, conn_t *c, char *a, size_t an, char *b, size_t bn);

/* Collects the response head; then hands what follows it to conn_body. A
 * head that arrives whole in one piece (the usual case) is parsed where it
 * is, and the body bytes after it are not copied: only a head split across
 * pieces (or an interim answer) is collected in c->head. */
static int conn_head(loop_t *l, conn_t *c, char *p, size_t n)
{
	job_t *j = c->job;
	if (c->head_len == 0) {
		size_t len = n < sizeof c->head ? n : sizeof c->head; /* the same limit */
		ssize_t hl = http_parse_response(p, len, &j->resp);
		if (hl > 0 && j->resp.status >= 200)
			return conn_head_done(l, c, p + hl, n - (size_t)hl, NULL, 0);
	}
	size_t room = sizeof c->head - c->head_len;
	size_t take = n < room ? n : room;
	memcpy(c->head + c->head_len, p, take);
	COPY_COUNT(l, COPY_HEAD, take);
	c->head_len += take;
	ssize_t hl = http_parse_response(c->head, c->head_len, &j->resp);
	if (hl == HTTP_INCOMPLETE)
		return 0;
	if (hl == HTTP_ERROR) {
		/* A head past a limit (its size, or HTTP_HEADERS_MAX fields) would
		 * come again: permanent. A malformed one may be a glitch. */
		bool limit = c->head_len >= sizeof c->head ||
		             (j->resp.reason && strcmp(j->resp.reason, HTTP_E_TOO_MANY_HEADERS) == 0);
		conn_fail(l, c, limit ? ERROR_CLASS_PERMANENT : ERROR_CLASS_TRANSIENT,
		          "bad HTTP response: %s", j->resp.reason ? j->resp.reason : "malformed head");
		return 1;
	}
	size_t in_head = c->head_len - (size_t)hl; /* body bytes already copied */
	if (j->resp.status < 200) {
		/* An interim answer (100 Continue): drop it, parse what follows. */
		memmove(c->head, c->head + hl, in_head);
		c->head_len = in_head;
		memset(&j->resp, 0, sizeof j->resp);
		return conn_head(l, c, p + take, n - take);
	}
	return conn_head_done(l, c, c->head + hl, in_head, p + take, n - take);
}

/* --max-body caps the whole body, of which `before` bytes came in an
 * earlier response (a checkpoint's, resumed by a 206). 1 when this head's
 * Content-Length makes it larger: the job fails. */
static int head_over_max_body(loop_t *l, conn_t *c, uint64_t before)
{
	const job_t *j = c->job;
	if (j->resp.content_length <= 0 ||
	    before + (uint64_t)j->resp.content_length <= l->o->body_bytes_max)
		return 0;
	conn_fail(l, c, ERROR_CLASS_PERMANENT, "body of %llu bytes is larger than --max-body (%llu bytes)",
	          (unsigned long long)(before + (uint64_t)j->resp.content_length),
	          (unsigned long long)l->o->body_bytes_max);
	return 1;
}

/* The head is parsed into j->resp; what came after it is a[0..an) (in
 * c->head or in the piece itself) then b[0..bn). */
static int conn_head_done(loop_t *l, conn_t *c, char *a, size_t an, char *b, size_t bn)
{
	job_t *j = c->job;
	j->head_done = true;
	host_t *h = c->host;
	if (!h->tls_probed) {
		/* The host's first answer: a TLS 1.3 ticket comes before it, so the
		 * session is there now, and the jobs that waited for it open their
		 * connections resuming it (host_dispatch_once). */
		h->tls_probed = true;
		conn_keep_session(c);
		host_dispatch(l, h);
	}
	http_chunked_init(&j->chunk);
	c->phase = "reading the body";
	if (http_no_body(&j->resp) || j->resp.content_length == 0) {
		c->close_after |= an + bn > 0;
		conn_response_done(l, c);
		return 1;
	}
	/* --download-only keeps 2xx bodies as sent: they stream to disk, and
	 * nothing decodes them. */
	bool ok = j->resp.status >= 200 && j->resp.status < 300;
	bool nd = ok && !l->o->download_only && nd_streams(l, j); /* NDJSON, or a streamed document */
	if (!nd && head_over_max_body(l, c, 0))
		return 1;
	char why[ERR_BYTES];
	if (nd) {
		char err[ERR_BYTES];
		error_class_t cls;
		if (nd_begin(l, j, &cls, err, sizeof err)) {
			if (j->range_sent && j->no_range) {
				/* A 206 that cannot continue the checkpoint: as a 416,
				 * the whole body at once, no attempt spent (a server that
				 * always answers so would use them all up, run after run) */
				if (l->stopping)
					job_abandon(l, j);
				else
					job_range_fallback(l, j);
				return 1;
			}
			conn_fail(l, c, cls, "%s", err);
			return 1;
		}
		/* a 206 it took continues the body at nd_base (a bad 206 is
		 * refused first: transient, the next attempt asks for it whole) */
		if (head_over_max_body(l, c, j->nd_base))
			return 1;
	} else if (ok && !l->o->download_only &&
	           (nd_ckpt_kind_refused(j, true, why, sizeof why) ||
	            (j->resp.status != 206 && ds_ckpt_refused(l, j, false, why, sizeof why)))) {
		/* Read whole (tables that cannot stream, a page), or a 206 for an
		 * NDJSON checkpoint answered as a document: a checkpoint this body
		 * cannot go on from. (A 206 nobody asked for stays transient,
		 * below: the next attempt asks for the whole body.) */
		conn_fail(l, c, ERROR_CLASS_PERMANENT, "%s", why);
		return 1;
	} else if (j->resp.status == 206) { /* only an NDJSON checkpoint asks for a range */
		j->no_range = true;
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "HTTP 206 for a body that is not NDJSON");
		return 1;
	} else if (ok && l->o->download_only) {
		if (stream_start(l, j)) {
			conn_fail(l, c, ERROR_CLASS_TRANSIENT, "out of memory for a body stream");
			return 1;
		}
		j->resp.gzip = false;
	} else if (j->resp.content_length > 0) {
		json_buf_reserve(j->resp.gzip ? &j->wire : &j->body, (size_t)j->resp.content_length);
	}
	if (j->resp.gzip && gzip_init(&j->gz)) {
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "out of memory for a gzip decoder");
		return 1;
	}
	if (j->streaming && an + bn && an + bn <= sizeof c->head && !stream_room(l, j)) {
		/* The chunk pool is empty: the body bytes that came with the head
		 * (less than a TLS record) wait in c->head, the connection reads
		 * no more, and conn_resume hands them on when a chunk is free. */
		if (an) /* a or b is NULL when empty: no copy from NULL */
			memmove(c->head, a, an);
		if (bn)
			memcpy(c->head + an, b, bn);
		COPY_COUNT(l, COPY_HEAD, an + bn);
		c->stash_len = (uint32_t)(an + bn);
		l->stashes++;
		conn_starve(l, c);
		return 1;
	}
	if (an && conn_body(l, c, a, an))
		return 1;
	return bn ? conn_body(l, c, b, bn) : 0;
}

/* Decrypted bytes arrived for the current response. 1: stop reading. */
static int conn_plain(loop_t *l, conn_t *c, char *p, size_t n)
{
	job_t *j = c->job;
	j->got_bytes = true;
	c->deadline_ms = l->now_ms + timeout_ms(l);
	return j->head_done ? conn_body(l, c, p, n) : conn_head(l, c, p, n);
}

/* The peer closed (EOF or close_notify). Completes a close-delimited body;
 * anything else is a truncated answer, which a retry may get whole. */
static void conn_eof(loop_t *l, conn_t *c, const char *how, bool close_notify)
{
	job_t *j = c->job;
	if (!j) {
		conn_close(l, c);
		return;
	}
	const http_response_t *r = &j->resp;
	if (j->head_done && !r->chunked && r->content_length < 0) {
		/* Without a length, only TLS close_notify tells the end of the body
		 * from a cut-off one (a truncation attack or a dropped link). */
		if (!close_notify) {
			conn_fail(l, c, ERROR_CLASS_TRANSIENT,
			          "truncated body: connection closed without TLS close_notify after "
			          "%llu bytes of a body with no length",
			          (unsigned long long)body_len(j));
			return;
		}
		if (range_cut_short(l, c))
			return;
		c->close_after = true;
		conn_response_done(l, c);
		return;
	}
	if (c->state == CONN_PROXY)
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "connection to the proxy %s before its answer",
		          how);
	else if (c->state == CONN_HANDSHAKE)
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "connection %s during the TLS handshake", how);
	else if (!j->head_done)
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "connection %s before the response head", how);
	else if (r->content_length >= 0)
		conn_fail(l, c, ERROR_CLASS_TRANSIENT,
		          "truncated body: connection %s after %zu of %lld bytes", how,
		          r->gzip ? j->wire.len : j->body.len, (long long)r->content_length);
	else
		conn_fail(l, c, ERROR_CLASS_TRANSIENT,
		          "truncated body: connection %s inside chunked data after %zu bytes", how,
		          j->body.len);
}

/* The peer closed or the socket failed (c->rx_end), once every byte
 * received before was consumed. */
static void conn_rx_end(loop_t *l, conn_t *c)
{
	if (c->rx_end < 0)
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "receive from %s: %s", c->host->name,
		          strerror(-c->rx_end));
	else
		conn_eof(l, c, "closed", false);
}

static void conn_read_plain(loop_t *l, conn_t *c)
{
	char err[TLS_ERR_BYTES];
	while (!c->dead) {
		size_t cap = sizeof l->plain;
		if (c->job && nd_blocked(l, c->job)) { /* its checkpoint waits: rows would pile up */
			conn_starve(l, c);
			conn_flush(l, c);
			return;
		}
		char *dst = l->plain;
		if (c->job && c->job->streaming) {
			/* Decrypted straight into the chunk that is written to disk:
			 * stream_append sees the bytes already in place. */
			size_t room;
			char *tail = stream_tail(l, c->job, &room);
			if (!tail) { /* the pool is empty: read on when a chunk comes back */
				conn_starve(l, c);
				conn_flush(l, c);
				return;
			}
			dst = tail;
			cap = room;
		}
		ssize_t n = tls_read(&c->tls, dst, cap, err, sizeof err);
		if (n == TLS_WANT) {
			if (c->rx_end) { /* the end came while it was starved */
				conn_rx_end(l, c);
				return;
			}
			break;
		}
		if (n == TLS_CLOSED) {
			conn_eof(l, c, "closed", true);
			return;
		}
		if (n == TLS_ERROR) {
			conn_fail(l, c, ERROR_CLASS_TRANSIENT, "%s", err);
			return;
		}
		if (!c->job) { /* bytes nobody asked for */
			conn_close(l, c);
			return;
		}
		if (conn_plain(l, c, dst, (size_t)n))
			return;
	}
	conn_flush(l, c);
	if (c->job)
		conn_arm_recv(l, c);
}

static void conn_handshake(loop_t *l, conn_t *c)
{
	char err[TLS_ERR_BYTES];
	bool verify_failed;
	int r = tls_handshake(&c->tls, &verify_failed, err, sizeof err);
	if (r == TLS_DONE) {
		c->state = CONN_RESPONSE;
		if (conn_send_request(l, c))
			conn_read_plain(l, c);
		return;
	}
	conn_flush(l, c);
	if (r == TLS_WANT) {
		conn_arm_recv(l, c);
		return;
	}
	/* A certificate problem will not go away on a retry (and is never
	 * worked around); other handshake failures (a corrupt record, an
	 * alert from an overloaded server) may (DESIGN §5). */
	conn_fail(l, c, verify_failed ? ERROR_CLASS_PERMANENT : ERROR_CLASS_TRANSIENT, "%s: %s",
	          c->host->name, err);
}

static void conn_start_tls(loop_t *l, conn_t *c)
{
	host_t *h = c->host;
	char err[TLS_ERR_BYTES];
	tls_source_t src = {.pull = conn_pull, .pending = conn_pending, .arg = c};
	if (tls_conn_init(&c->tls, &l->tls, &src, h->name, h->is_ip, h->session, err, sizeof err)) {
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "%s", err);
		return;
	}
	c->state = CONN_HANDSHAKE;
	conn_set_phase(l, c, "in the TLS handshake");
	conn_handshake(l, c);
}

/* Through HTTPS_PROXY: ask for a tunnel in plain HTTP; TLS runs inside it,
 * end to end with the target, once the proxy says 2xx. */
static void conn_proxy_connect(loop_t *l, conn_t *c)
{
	host_t *h = c->host;
	const char *lb = strchr(h->name, ':') ? "[" : "", *rb = *lb ? "]" : "";
	int n = snprintf(c->wbuf, sizeof c->wbuf,
	                 "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n"
	                 "User-Agent: ringfill/" RINGFILL_VERSION "\r\n%s%s%s\r\n",
	                 lb, h->name, rb, h->port, lb, h->name, rb, h->port,
	                 l->o->proxy_auth[0] ? "Proxy-Authorization: " : "", l->o->proxy_auth,
	                 l->o->proxy_auth[0] ? "\r\n" : "");
	assert(n > 0 && (size_t)n < sizeof c->wbuf);
	c->wlen = (size_t)n;
	c->state = CONN_PROXY;
	c->head_len = 0;
	conn_set_phase(l, c, "waiting for the proxy");
	conn_send_wbuf(l, c);
	conn_arm_recv(l, c);
}

/* The proxy's answer to CONNECT, in the receive queue. */
static void conn_proxy_reply(loop_t *l, conn_t *c)
{
	host_t *h = c->host;
	c->head_len += conn_pull(c, c->head + c->head_len, sizeof c->head - c->head_len);
	bool more = c->rq_bytes > 0; /* beyond the head's room, or after the answer */
	http_response_t r;
	ssize_t hl = http_parse_response(c->head, c->head_len, &r);
	if (hl == HTTP_INCOMPLETE && c->head_len == sizeof c->head)
		hl = HTTP_ERROR;
	if (hl == HTTP_INCOMPLETE) {
		conn_arm_recv(l, c);
		return;
	}
	if (hl == HTTP_ERROR) {
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "proxy %s port %u: bad answer to CONNECT: %s",
		          l->o->proxy_host, l->o->proxy_port, r.reason ? r.reason : "malformed");
		return;
	}
	if (r.status < 200 || r.status > 299) {
		/* 407 and 403 are the proxy's policy; 5xx may pass. */
		bool policy = r.status == 407 || r.status == 403 || r.status == 405;
		conn_fail(l, c, policy ? ERROR_CLASS_PERMANENT : ERROR_CLASS_TRANSIENT,
		          "proxy %s port %u refused CONNECT to %s:%u: HTTP %d", l->o->proxy_host,
		          l->o->proxy_port, h->name, h->port, r.status);
		return;
	}
	if ((size_t)hl != c->head_len || more) {
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "proxy %s port %u sent bytes after its answer",
		          l->o->proxy_host, l->o->proxy_port);
		return;
	}
	c->head_len = 0;
	conn_start_tls(l, c);
}

static void conn_connected(loop_t *l, conn_t *c, int res)
{
	host_t *h = c->host;
	if (res == -ECANCELED) { /* not by us: c is not dead, so the linked timeout fired */
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "timed out after %gs %s (--timeout)",
		          l->o->timeout_s, c->phase);
		return;
	}
	if (res < 0) {
		if (h->via_proxy)
			conn_fail(l, c, ERROR_CLASS_TRANSIENT, "connect to proxy %s port %u: %s",
			          l->o->proxy_host, l->o->proxy_port, strerror(-res));
		else
			conn_fail(l, c, ERROR_CLASS_TRANSIENT, "connect to %s port %u: %s", h->name,
			          h->port, strerror(-res));
		return;
	}
	if (h->via_proxy)
		conn_proxy_connect(l, c);
	else
		conn_start_tls(l, c);
}

/* A recv completion's buffer: queued on the connection with its bytes, or
 * straight back into the ring. */
static void conn_recv_buffer(loop_t *l, conn_t *c, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_BUFFER)) {
		if (res > 0 && !l->rb.n) {
			c->rq_off = 0;
			c->rq_bytes = (size_t)res;
		}
		return;
	}
	int32_t bid = (int32_t)(flags >> IORING_CQE_BUFFER_SHIFT);
	assert((uint32_t)bid < l->rb.n && l->rb.free > 0);
	l->rb.free--;
	if (res <= 0 || c->dead) {
		loop_recvbuf_put(l, bid);
		return;
	}
	l->rb.len[bid] = (uint32_t)res;
	l->rb.next[bid] = -1;
	if (c->rq_tail >= 0)
		l->rb.next[c->rq_tail] = bid;
	else
		c->rq_head = bid;
	c->rq_tail = bid;
	c->rq_bytes += (size_t)res;
}

static void conn_received(loop_t *l, conn_t *c, int res)
{
	if (res == -ENOBUFS && l->rb.n) {
		/* The ring ran dry: the bytes wait in the socket, and the recv is
		 * armed again once buffers come back. */
		l->rb.nobufs++;
		conn_arm_recv(l, c);
		return;
	}
	if (res == -ECANCELED && l->rb.n) { /* conn_starve's cancel: arms again once fed */
		conn_arm_recv(l, c);
		return;
	}
	if (res == -EINVAL && l->rb.n && l->rb.multishot) {
		l->rb.multishot = false; /* a kernel without multishot recv: one at a time */
		conn_arm_recv(l, c);
		return;
	}
	if (res <= 0) {
		c->rx_end = res < 0 ? res : 1;
		if (!c->starved) /* else the bytes queued before it are read first */
			conn_rx_end(l, c);
		return;
	}
	if (c->starved)
		return; /* queued; read when the job can take it (conn_resume) */
	if (c->state == CONN_PROXY) {
		conn_proxy_reply(l, c);
		return;
	}
	if (c->state == CONN_HANDSHAKE)
		conn_handshake(l, c);
	else if (c->state == CONN_RESPONSE)
		conn_read_plain(l, c);
	else
		conn_close(l, c); /* idle: the server said something unasked (a 408?) */
}

static void conn_sent(loop_t *l, conn_t *c, int res)
{
	c->send_busy = false;
	if (res <= 0) {
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "send to %s: %s", c->host->name,
		          res ? strerror(-res) : "nothing sent");
		return;
	}
	if ((size_t)res < c->wlen) { /* a short send: the rest goes next */
		memmove(c->wbuf, c->wbuf + res, c->wlen - (size_t)res);
		c->wlen -= (size_t)res;
		conn_send_wbuf(l, c);
		return;
	}
	conn_flush(l, c);
}

void conn_complete(loop_t *l, conn_t *c, op_t *op, int res, unsigned cqe_flags)
{
	if (op == &c->op_recv) {
		conn_recv_buffer(l, c, res, cqe_flags);
		if (cqe_flags & IORING_CQE_F_MORE) { /* the multishot recv stays armed */
			if (!c->dead)
				conn_received(l, c, res);
			return;
		}
	}
	assert(c->inflight > 0);
	c->inflight--;
	if (op == &c->op_recv)
		c->recv_busy = false;
	if (op == &c->op_send)
		c->send_busy = false;
	if (c->dead) {
		if (c->inflight == 0)
			conn_free(l, c);
		return;
	}
	switch (op->kind) {
	case OP_SOCKET:
		if (res < 0)
			c->sock_err = res; /* the linked connect comes back cancelled */
		break;
	case OP_CONNECT: conn_connected(l, c, res == -ECANCELED && c->sock_err ? c->sock_err : res);
		break;
	case OP_CONNECT_TIMEOUT: break; /* -ETIME (fired) or -ECANCELED: the connect reports it */
	case OP_SEND: conn_sent(l, c, res); break;
	case OP_RECV: conn_received(l, c, res); break;
	default: break;
	}
}

void conn_resume(loop_t *l, conn_t *c)
{
	assert(c->starved);
	if (c->stash_len && !stream_room(l, c->job))
		return; /* another connection took the chunk: wait on */
	c->starved = false;
	l->starved_conns--;
	c->deadline_ms = l->now_ms + timeout_ms(l);
	if (c->stash_len) {
		size_t n = c->stash_len;
		c->stash_len = 0;
		if (conn_body(l, c, c->head, n))
			return;
	}
	conn_read_plain(l, c);
}

void conn_check_deadline(loop_t *l, conn_t *c)
{
	/* A starved connection waits for our disk, one on the buffer wait list
	 * for our buffers; neither for the server. */
	if (c->dead || c->starved || c->nobufs)
		return;
	if (!c->host->tls_probed && l->now_ms - c->opened_ms > TLS_PROBE_WAIT_MS) {
		/* A slow first answer does not hold the host's other jobs back. */
		c->host->tls_probed = true;
		host_dispatch(l, c->host);
	}
	if (c->state == CONN_CONNECTING)
		return; /* the timeout linked behind the connect (conn_open) */
	if (c->state == CONN_IDLE) {
		if (l->now_ms - c->idle_since_ms > CONN_IDLE_KEEP_MS)
			conn_close(l, c);
		return;
	}
	if (c->job && l->now_ms > c->deadline_ms) {
		/* A server that is slow to answer did not drop an idle connection:
		 * the attempt counts. */
		c->reused = false;
		conn_fail(l, c, ERROR_CLASS_TRANSIENT, "timed out after %gs %s (--timeout)",
		          l->o->timeout_s, c->phase);
	}
}
