/* engine/loop.c: the io_uring loop: setup, the submit-and-wait cycle, the
 * dispatch of completions, hosts (DNS, per-host connection limits, raw
 * directories) and the tick that drives deadlines, retries and progress.
 *
 * Neighbours: jobs arrive from the writer (store/writer.c) through
 * pipe->to_loop; conn.c runs each connection; job.c turns a response into a
 * batch for pipe->to_writer. Nothing here blocks: sockets, files and timers go
 * through io_uring, DNS through getaddrinfo_a (glibc's resolver threads). */
#include "engine/loop_internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

uint64_t loop_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* An SQE, submitting what is queued when the submission queue is full. */
struct io_uring_sqe *loop_sqe(loop_t *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	while (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

/* A linked chain must go in one submission: io_uring ends a chain at the
 * end of a submission, and a lone LINK_TIMEOUT is refused. So a chain of n
 * SQEs first makes room for all n (submitting what is queued if need be). */
void loop_sqe_room(loop_t *l, unsigned n)
{
	assert(n <= LOOP_RING_ENTRIES);
	if (io_uring_sq_space_left(&l->ring) < n)
		io_uring_submit(&l->ring);
}

int loop_slot_get(loop_t *l)
{
	return l->n_slots_free ? (int)l->slots_free[--l->n_slots_free] : -1;
}

void loop_slot_put(loop_t *l, int slot)
{
	assert(slot >= 0 && (uint32_t)slot < l->n_slots && l->n_slots_free < l->n_slots);
	l->slots_free[l->n_slots_free++] = (uint32_t)slot;
}

/* The close runs inline when submitted, before any later request could
 * install a new file in the same slot; its success needs no completion. */
void loop_slot_close(loop_t *l, int slot)
{
	assert(slot >= 0 && (uint32_t)slot < l->n_slots && l->n_slots_free < l->n_slots);
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_close_direct(sqe, (unsigned)slot);
	io_uring_sqe_set_data(sqe, &l->op_slot_close);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	loop_slot_put(l, slot);
}

void loop_fatal(loop_t *l, const char *fmt, ...)
{
	if (l->fatal)
		return; /* the first cause is the one worth reporting */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->fatal_msg, sizeof l->fatal_msg, fmt, ap);
	va_end(ap);
	l->fatal = true;
	l->stopping = true;
}

/* ---- provided receive buffers ----------------------------------------- */

/* The buffer ring (recvbufs_t): liburing 2.3 can register one but has no
 * io_uring_setup_buf_ring, so the ring's memory is mapped here (page
 * aligned, as the kernel wants) and filled with every buffer. How many:
 * $RINGFILL_RECV_BUFS (0: none, each connection receives into its own
 * buffer; tests use a tiny ring to run dry on purpose), else 4 x
 * --concurrency; a power of 2 within RECV_BUFS_MIN..RECV_BUFS_MAX. A kernel
 * that refuses the ring (before 5.19) leaves n at 0. */
static void loop_recvbufs_init(loop_t *l)
{
	recvbufs_t *rb = &l->rb;
	uint32_t want = 4 * l->o->concurrency, lo = RECV_BUFS_MIN, hi = RECV_BUFS_MAX;
	const char *env = getenv("RINGFILL_RECV_BUFS");
	if (env && *env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);
		if (*end || v > 32768)
			v = 0;
		if (!v)
			return;
		want = (uint32_t)v;
		lo = 1;
		hi = 32768;
	}
	uint32_t n = lo;
	while (n < want && n < hi)
		n *= 2;
	rb->br_bytes = n * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, rb->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	                 -1, 0);
	if (mem == MAP_FAILED)
		return;
	rb->br = mem;
	rb->base = malloc((size_t)n * RECV_BUF_BYTES);
	rb->len = calloc(n, sizeof *rb->len);
	rb->next = calloc(n, sizeof *rb->next);
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	reg.ring_entries = n;
	reg.bgid = RECV_BGID;
	if (!rb->base || !rb->len || !rb->next ||
	    io_uring_register_buf_ring(&l->ring, &reg, 0) < 0) {
		free(rb->base);
		free(rb->len);
		free(rb->next);
		munmap(mem, rb->br_bytes);
		memset(rb, 0, sizeof *rb);
		return;
	}
	io_uring_buf_ring_init(rb->br);
	rb->n = n;
	rb->mask = (uint32_t)io_uring_buf_ring_mask(n);
	rb->multishot = true;
	for (uint32_t i = 0; i < n; i++)
		io_uring_buf_ring_add(rb->br, rb->base + (size_t)i * RECV_BUF_BYTES, RECV_BUF_BYTES,
		                      (unsigned short)i, (int)rb->mask, (int)i);
	io_uring_buf_ring_advance(rb->br, (int)n);
	rb->free = n;
}

/* Called after the ring is gone: the kernel no longer reads the memory. */
static void loop_recvbufs_free(loop_t *l)
{
	recvbufs_t *rb = &l->rb;
	if (!rb->n)
		return;
	free(rb->base);
	free(rb->len);
	free(rb->next);
	munmap(rb->br, rb->br_bytes);
	memset(rb, 0, sizeof *rb);
}

void loop_recvbuf_put(loop_t *l, int32_t bid)
{
	recvbufs_t *rb = &l->rb;
	assert((uint32_t)bid < rb->n && rb->free < rb->n);
	if (l->ring_gone)
		return;
	io_uring_buf_ring_add(rb->br, rb->base + (size_t)bid * RECV_BUF_BYTES, RECV_BUF_BYTES,
	                      (unsigned short)bid, (int)rb->mask, 0);
	io_uring_buf_ring_advance(rb->br, 1);
	rb->free++;
}

/* With $RINGFILL_COPY_STATS set, the bytes copied on the body path per
 * stage go there as one JSON line, for `bench net` and the tests. */
static void loop_copy_stats(loop_t *l)
{
	const char *path = getenv("RINGFILL_COPY_STATS");
	if (!path || !*path)
		return;
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f,
	        "{\"body_bytes\": %llu, \"tls_in\": %llu, \"plain\": %llu, \"head\": %llu, "
	        "\"recv_bufs\": %u, \"multishot\": %s, \"nobufs\": %llu, \"stashes\": %llu, "
	        "\"fixed_writes\": %llu, \"local_streams_peak\": %u, \"local_stream_waits\": %llu}\n",
	        (unsigned long long)l->bytes, (unsigned long long)l->copied[COPY_TLS_IN],
	        (unsigned long long)l->copied[COPY_PLAIN], (unsigned long long)l->copied[COPY_HEAD],
	        l->rb.n, l->rb.multishot ? "true" : "false", (unsigned long long)l->rb.nobufs,
	        (unsigned long long)l->stashes, (unsigned long long)l->fixed_writes,
	        l->local_streams_peak, (unsigned long long)l->local_stream_waits);
	fclose(f);
}

/* ---- hosts ------------------------------------------------------------ */

static uint32_t host_hash(const char *name, uint16_t port)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return (h ^ port) * 16777619u;
}

host_t *host_get(loop_t *l, const url_t *u)
{
	uint32_t b = host_hash(u->host, u->port) & l->host_mask;
	for (host_t *h = l->host_tab[b]; h; h = h->hash_next)
		if (h->port == u->port && strcmp(h->name, u->host) == 0)
			return h;
	if (l->n_hosts >= HOSTS_MAX)
		return NULL;
	host_t *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	snprintf(h->name, sizeof h->name, "%s", u->host);
	h->port = u->port;
	url_host_dirname(h->name, h->port, h->dirname, sizeof h->dirname);
	h->op_mkdir.kind = OP_MKDIR;
	unsigned char ip[sizeof(struct in6_addr)];
	h->is_ip = inet_pton(AF_INET, h->name, ip) == 1 || inet_pton(AF_INET6, h->name, ip) == 1;
	/* Through a proxy, the proxy's address is the one to find; the name in
	 * the URL is only what TLS verifies and CONNECT asks for. */
	h->via_proxy = options_use_proxy(l->o, h->name);
	h->dns_name = h->via_proxy ? l->o->proxy_host : h->name;
	uint16_t port = h->via_proxy ? l->o->proxy_port : h->port;
	snprintf(h->port_str, sizeof h->port_str, "%u", port);
	struct sockaddr_in *a4 = (struct sockaddr_in *)&h->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&h->addr;
	if (inet_pton(AF_INET, h->dns_name, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		h->addr_len = sizeof *a4;
		h->dns = DNS_OK;
	} else if (inet_pton(AF_INET6, h->dns_name, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		h->addr_len = sizeof *a6;
		h->dns = DNS_OK;
	}
	h->hash_next = l->host_tab[b];
	l->host_tab[b] = h;
	l->n_hosts++;
	return h;
}

static void host_free_all(loop_t *l)
{
	for (uint32_t b = 0; b <= l->host_mask; b++) {
		host_t *h = l->host_tab[b];
		while (h) {
			host_t *next = h->hash_next;
			if (h->dns == DNS_PENDING && gai_cancel(&h->gcb) == EAI_NOTCANCELED) {
				/* glibc's resolver thread still writes to h->gcb: wait. */
				const struct gaicb *list[1] = {&h->gcb};
				while (gai_error(&h->gcb) == EAI_INPROGRESS)
					gai_suspend(list, 1, NULL);
			}
			if (h->gcb.ar_result)
				freeaddrinfo(h->gcb.ar_result);
			if (h->session)
				SSL_SESSION_free(h->session);
			free(h);
			h = next;
		}
	}
	free(l->host_tab);
}

static void arm_dns_tick(loop_t *l);

/* Starts an asynchronous lookup; glibc resolves on a thread of its own and
 * the DNS tick polls for the answer, so the loop never waits on DNS. */
static void host_resolve(loop_t *l, host_t *h)
{
	memset(&h->gcb, 0, sizeof h->gcb);
	memset(&h->hints, 0, sizeof h->hints);
	h->hints.ai_family = AF_UNSPEC;
	h->hints.ai_socktype = SOCK_STREAM;
	h->hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
	h->gcb.ar_name = h->dns_name;
	h->gcb.ar_service = h->port_str;
	h->gcb.ar_request = &h->hints;
	struct gaicb *list[1] = {&h->gcb};
	struct sigevent sev = {.sigev_notify = SIGEV_NONE};
	int r = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
	if (r != 0) {
		h->dns = DNS_FAILED;
		h->dns_transient = true;
		snprintf(h->dns_err, sizeof h->dns_err, "DNS lookup of %s%s could not start: %s",
		         h->via_proxy ? "proxy " : "", h->dns_name, gai_strerror(r));
		return;
	}
	h->dns = DNS_PENDING;
	h->dns_next = l->dns_list;
	l->dns_list = h;
	arm_dns_tick(l);
}

static void host_dns_result(loop_t *l, host_t *h, int r)
{
	if (r == 0 && h->gcb.ar_result) {
		struct addrinfo *ai = h->gcb.ar_result;
		memcpy(&h->addr, ai->ai_addr, ai->ai_addrlen);
		h->addr_len = ai->ai_addrlen;
		h->dns = DNS_OK;
	} else {
		h->dns = DNS_FAILED;
		/* A name that does not exist will not exist on the next attempt
		 * either; a resolver that did not answer may. */
		h->dns_transient = !(r == EAI_NONAME || r == EAI_FAIL
#ifdef EAI_NODATA
		                     || r == EAI_NODATA
#endif
		);
		snprintf(h->dns_err, sizeof h->dns_err, "DNS lookup of %s%s failed: %s",
		         h->via_proxy ? "proxy " : "", h->dns_name,
		         r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
	}
	if (h->gcb.ar_result)
		freeaddrinfo(h->gcb.ar_result);
	h->gcb.ar_result = NULL;
	host_dispatch(l, h);
}

static void dns_poll(loop_t *l)
{
	host_t **pp = &l->dns_list;
	while (*pp) {
		host_t *h = *pp;
		int r = gai_error(&h->gcb);
		if (r == EAI_INPROGRESS) {
			pp = &h->dns_next;
			continue;
		}
		*pp = h->dns_next;
		host_dns_result(l, h, r);
	}
	if (!l->dns_list)
		l->dns_wait_ms = 0; /* the next lookup is polled from 1 ms again */
}

void host_enqueue(loop_t *l, host_t *h, job_t *j)
{
	j->next = NULL;
	if (h->wait_tail)
		h->wait_tail->next = j;
	else
		h->wait_head = j;
	h->wait_tail = j;
	host_dispatch(l, h);
}

void host_enqueue_front(loop_t *l, host_t *h, job_t *j)
{
	j->next = h->wait_head;
	h->wait_head = j;
	if (!h->wait_tail)
		h->wait_tail = j;
	host_dispatch(l, h);
}

static job_t *host_pop_waiting(host_t *h)
{
	job_t *j = h->wait_head;
	if (j) {
		h->wait_head = j->next;
		if (!h->wait_head)
			h->wait_tail = NULL;
		j->next = NULL;
	}
	return j;
}

/* The TLS context, made now if loop_init did not (a `files` run: none of
 * its jobs is expected here). false: it cannot be made, and the run stops
 * as loop_init would have stopped it; the waiting jobs stay pending. */
static bool loop_tls_ready(loop_t *l)
{
	if (l->tls.ctx)
		return true;
	char err[sizeof l->fatal_msg];
	if (tls_client_init(&l->tls, l->o->cacert, err, sizeof err) == 0)
		return true;
	loop_fatal(l, "%s", err);
	return false;
}

/* With every connection slot taken, an idle connection of another host is
 * the one to give up, so that waiting jobs can make progress. */
static bool loop_close_some_idle(loop_t *l)
{
	for (conn_t *c = l->conns; c; c = c->all_next)
		if (c->state == CONN_IDLE && !c->dead) {
			conn_close(l, c);
			return true;
		}
	return false;
}

/* Gives waiting jobs connections: idle ones first, then new ones within
 * --per-host and --concurrency. A job marked fresh_only gets a new one,
 * closing an idle connection of the host to make room if it must.
 * Costs O(waiting jobs of this host). */
static void host_dispatch_once(loop_t *l, host_t *h)
{
	while (h->wait_head) {
		if (h->paused)
			return; /* the tick dispatches it when the pause ends */
		if (h->dns == DNS_NONE) {
			host_resolve(l, h);
			continue;
		}
		if (h->dns == DNS_PENDING)
			return;
		if (h->dns == DNS_FAILED) {
			job_t *j = host_pop_waiting(h);
			job_fail(l, j, h->dns_transient ? ERROR_CLASS_TRANSIENT : ERROR_CLASS_PERMANENT,
			         0, "%s", h->dns_err);
			if (!h->wait_head && h->dns_transient)
				h->dns = DNS_NONE; /* look it up again for the retries */
			continue;
		}
		if (h->idle && !h->wait_head->fresh_only) {
			conn_t *c = h->idle;
			h->idle = c->idle_next;
			conn_assign(l, c, host_pop_waiting(h));
			continue;
		}
		if (h->conns >= l->o->per_host) {
			if (!h->idle)
				return;
			conn_close(l, h->idle); /* its recv is cancelled; when it is freed, */
			return;                 /* the slot opens and this host is dispatched */
		}
		if (l->conns_open >= l->o->concurrency) {
			/* An idle connection elsewhere closes asynchronously; this host
			 * is dispatched again when a slot frees (conn.c). */
			loop_close_some_idle(l);
			if (!h->blocked) {
				h->blocked = true;
				h->blocked_next = l->blocked_hosts;
				l->blocked_hosts = h;
			}
			return;
		}
		if (!h->session && !h->tls_probed && h->conns > 0)
			return; /* conn_head_done or conn_free dispatches it again */
		if (!loop_tls_ready(l))
			return;
		job_t *j = host_pop_waiting(h);
		j->fresh_only = false;
		if (!conn_open(l, h, j))
			return; /* the job was failed or requeued by conn_open */
	}
}

void host_dispatch(loop_t *l, host_t *h)
{
	/* Closing a connection frees a slot and dispatches again: that nested
	 * call only asks the running one to take another turn. */
	if (h->dispatching) {
		h->dispatch_again = true;
		return;
	}
	h->dispatching = true;
	do {
		h->dispatch_again = false;
		host_dispatch_once(l, h);
	} while (h->dispatch_again);
	h->dispatching = false;
}

/* A 429 or 503 speaks for the whole host: no new request goes to it until
 * until_ms (DESIGN §5), whichever job got the answer. Requests already on
 * the wire finish. A later, longer pause extends the current one. */
void host_pause(loop_t *l, host_t *h, uint64_t until_ms)
{
	if (until_ms <= l->now_ms)
		return;
	if (until_ms > h->paused_until_ms)
		h->paused_until_ms = until_ms;
	if (!h->paused) {
		h->paused = true;
		h->paused_next = l->paused_hosts;
		l->paused_hosts = h;
	}
}

static void hosts_unpause_due(loop_t *l)
{
	host_t **pp = &l->paused_hosts;
	while (*pp) {
		host_t *h = *pp;
		if (h->paused_until_ms > l->now_ms) {
			pp = &h->paused_next;
			continue;
		}
		*pp = h->paused_next;
		h->paused = false;
		host_dispatch(l, h);
	}
}

/* Makes DIR/HOST once per host, through io_uring; jobs that finish before the
 * directory exists wait on the host. */
void host_rawdir(loop_t *l, host_t *h, job_t *j)
{
	if (h->rawdir == RAWDIR_READY) {
		job_rawdir_ready(l, j);
		return;
	}
	j->next = h->rawdir_waiters;
	h->rawdir_waiters = j;
	if (h->rawdir == RAWDIR_PENDING)
		return;
	h->rawdir = RAWDIR_PENDING;
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_mkdirat(sqe, l->raw_dirfd, h->dirname, 0755);
	io_uring_sqe_set_data(sqe, &h->op_mkdir);
}

static void host_mkdir_done(loop_t *l, host_t *h, int res)
{
	if (res < 0 && res != -EEXIST) {
		loop_fatal(l, "%s/%s: cannot create directory: %s", l->o->raw, h->dirname,
		           strerror(-res));
		h->rawdir = RAWDIR_NONE;
	} else {
		h->rawdir = RAWDIR_READY;
	}
	job_t *j = h->rawdir_waiters;
	h->rawdir_waiters = NULL;
	while (j) {
		job_t *next = j->next;
		if (h->rawdir == RAWDIR_READY)
			job_rawdir_ready(l, j);
		else
			job_abandon(l, j);
		j = next;
	}
}

/* ---- the loop's own requests ------------------------------------------ */

static void arm_tick(loop_t *l)
{
	l->tick_ts.tv_sec = 0;
	l->tick_ts.tv_nsec = (long long)LOOP_TICK_MS * 1000000;
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_timeout(sqe, &l->tick_ts, 0, 0);
	io_uring_sqe_set_data(sqe, &l->op_tick);
	l->tick_armed = true;
}

static void arm_eventfd(loop_t *l)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_read(sqe, l->pipe->loop_eventfd, &l->eventfd_buf, sizeof l->eventfd_buf, 0);
	io_uring_sqe_set_data(sqe, &l->op_eventfd);
}

static void arm_signal(loop_t *l)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_read(sqe, l->signal_fd, &l->sig_buf, sizeof l->sig_buf, 0);
	io_uring_sqe_set_data(sqe, &l->op_signal);
}

/* A short timeout while lookups are pending (DNS_POLL_FIRST_MS, doubling up
 * to LOOP_TICK_MS): the first connection to a host waits about as long as
 * its lookup, not up to a whole tick. The only poller of dns_list: armed
 * whenever the list is not empty. The wait is shared: a lookup started
 * while a slow one is pending is polled at that one's wait, at most
 * LOOP_TICK_MS, as before. Each poll walks the pending lookups
 * (gai_error: a load under glibc's lock each). */
static void arm_dns_tick(loop_t *l)
{
	if (l->dns_tick_armed || !l->dns_list)
		return;
	if (!l->dns_wait_ms)
		l->dns_wait_ms = DNS_POLL_FIRST_MS;
	l->dns_tick_ts.tv_sec = 0;
	l->dns_tick_ts.tv_nsec = (long long)l->dns_wait_ms * 1000000;
	struct io_uring_sqe *sqe = loop_sqe(l);
	io_uring_prep_timeout(sqe, &l->dns_tick_ts, 0, 0);
	io_uring_sqe_set_data(sqe, &l->op_dns_tick);
	l->dns_tick_armed = true;
}

static void on_dns_tick(loop_t *l)
{
	assert(l->dns_tick_armed);
	l->dns_tick_armed = false;
	dns_poll(l);
	if (l->dns_list) {
		l->dns_wait_ms = l->dns_wait_ms * 2 < LOOP_TICK_MS ? l->dns_wait_ms * 2 : LOOP_TICK_MS;
		arm_dns_tick(l);
	}
}

static void on_signal(loop_t *l, int res)
{
	if (res != (int)sizeof l->sig_buf)
		return;
	int sig = (int)l->sig_buf.ssi_signo;
	if (l->signal) {
		/* Second signal: leave now. SQLite's WAL keeps the database whole;
		 * what was not committed is simply pending again. */
		if (l->o->out != OUT_LOG_JSON)
			fputc('\n', stderr); /* off the live line */
		run_say(l->o, "signal", "ringfill: second signal, exiting at once");
		_exit(128 + sig);
	}
	l->signal = sig;
	/* The writer stops waiting for another process's write lock. */
	atomic_store_explicit(&l->pipe->stopping, true, memory_order_release);
	l->stopping = true;
	if (l->o->out != OUT_QUIET && l->o->out != OUT_LOG_JSON)
		fputc('\n', stderr); /* off the live line */
	run_say(l->o, "signal", "ringfill: %s: finishing what is complete; signal again to exit "
	                        "at once", strsignal(sig));
	arm_signal(l);
}

static void on_tick(loop_t *l)
{
	l->tick_armed = false;
	/* No dns_poll here: a pending lookup always has the DNS tick armed
	 * (arm_dns_tick), which polls it at most LOOP_TICK_MS apart. */
	assert(!l->dns_list || l->dns_tick_armed);
	hosts_unpause_due(l);
	job_retry_due(l);
	/* A deadline may close connections, and freeing one dispatches its
	 * host, which may free others: start over when that happened. */
	for (conn_t *c = l->conns, *next; c; c = next) {
		uint64_t frees = l->conn_frees;
		next = c->all_next;
		conn_check_deadline(l, c);
		if (l->conn_frees != frees)
			next = l->conns;
	}
	progress_report(l);
}

/* Takes jobs from the writer while there is room. The writer is rung after
 * taking some so that it refills the ring before it runs dry. */
static void pull_jobs(loop_t *l)
{
	bool took = false;
	while (!l->stopping && l->jobs_active < l->o->concurrency && !l->ready_head) {
		job_desc_t *d = ring_pop(&l->pipe->to_loop);
		if (!d)
			break;
		took = true;
		job_start(l, d);
	}
	if (took)
		doorbell_ring(&l->pipe->writer_bell);
}

static void dispatch(loop_t *l, struct io_uring_cqe *cqe)
{
	op_t *op = io_uring_cqe_get_data(cqe);
	int res = cqe->res;
	unsigned fl = cqe->flags;
	switch (op->kind) {
	case OP_TICK: on_tick(l); break;
	case OP_DNS_TICK: on_dns_tick(l); break;
	case OP_EVENTFD:
		if (!l->end_pushed)
			arm_eventfd(l);
		break;
	case OP_SIGNAL: on_signal(l, res); break;
	case OP_SLOT_CLOSE: break; /* a slot that held nothing: nothing to do */
	case OP_SOCKET: conn_complete(l, container_of(op, conn_t, op_socket), op, res, fl);
		break;
	case OP_CONNECT_TIMEOUT:
		conn_complete(l, container_of(op, conn_t, op_connect_timeout), op, res, fl);
		break;
	case OP_CONNECT: conn_complete(l, container_of(op, conn_t, op_connect), op, res, fl);
		break;
	case OP_SEND: conn_complete(l, container_of(op, conn_t, op_send), op, res, fl);
		break;
	case OP_RECV: conn_complete(l, container_of(op, conn_t, op_recv), op, res, fl);
		break;
	case OP_CANCEL: conn_complete(l, container_of(op, conn_t, op_cancel), op, res, fl);
		break;
	case OP_CLOSE: conn_complete(l, container_of(op, conn_t, op_close), op, res, fl);
		break;
	case OP_MKDIR: host_mkdir_done(l, container_of(op, host_t, op_mkdir), res); break;
	case OP_FILE: job_file_complete(l, container_of(op, job_t, op_file), res); break;
	case OP_LOCAL: files_complete(l, op, res); break;
	case OP_FILE_TAIL: stream_tail_complete(l, container_of(op, job_t, op_tail), res); break;
	}
}

/* True when nothing is left to do: every job handed over and END pushed.
 * Stopping (signal or fatal error), jobs still in flight are abandoned: they
 * stay pending in the database and resume next run; what is complete is
 * still handed over first. */
static bool loop_finished(loop_t *l)
{
	if (atomic_load_explicit(&l->pipe->fatal, memory_order_acquire)) {
		if (!l->fatal)
			loop_fatal(l, "%s", l->pipe->fatal_msg);
		return true; /* the writer is gone: nothing more can be handed over */
	}
	if (l->end_pushed)
		return true;
	if (l->ready_head)
		return false;
	/* Acquire, and before exhausted: a page the writer has applied cleared
	 * exhausted first (pipe_t.emits_unsettled). */
	bool settled = !atomic_load_explicit(&l->pipe->emits_unsettled, memory_order_acquire);
	bool exhausted = atomic_load_explicit(&l->pipe->jobs_exhausted, memory_order_acquire);
	bool drained = settled && exhausted && ring_count(&l->pipe->to_loop) == 0 && l->jobs_active == 0;
	if (!drained && !l->stopping)
		return false;
	if (l->stopping && !nd_stop(l))
		return false; /* streams' checkpoints first (bounded wait) */
	if (!l->end_batch && !(l->end_batch = batch_new(BATCH_END, 0))) {
		snprintf(l->fatal_msg, sizeof l->fatal_msg, "out of memory");
		l->fatal = true;
		return true;
	}
	if (ring_push(&l->pipe->to_writer, l->end_batch)) {
		l->end_batch = NULL; /* the writer's now */
		l->end_pushed = true;
	}
	doorbell_ring(&l->pipe->writer_bell);
	return l->end_pushed; /* ring full: the tick tries again */
}

/* ---- setup, run, teardown --------------------------------------------- */

static int loop_ring_init(loop_t *l)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
#if defined(IORING_SETUP_SINGLE_ISSUER) && defined(IORING_SETUP_DEFER_TASKRUN)
	/* One thread submits and reaps: completions run when we ask for them. */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	if (io_uring_queue_init_params(LOOP_RING_ENTRIES, &l->ring, &p) == 0)
		return 0;
	memset(&p, 0, sizeof p);
#endif
	return io_uring_queue_init_params(LOOP_RING_ENTRIES, &l->ring, &p);
}

/* Why the ring could not be made, in words a user can act on: io_uring is
 * often switched off (containers' seccomp profiles, the kernel.io_uring_disabled
 * sysctl), and before Linux 5.12 its memory counts against RLIMIT_MEMLOCK. */
static void loop_ring_error(loop_result_t *res, int r)
{
	struct rlimit rl;
	if (r == -ENOSYS) {
		snprintf(res->message, sizeof res->message,
		         "io_uring: not in this kernel (%s); ringfill needs Linux 5.19 or later",
		         strerror(-r));
	} else if (r == -EPERM) {
		snprintf(res->message, sizeof res->message,
		         "io_uring: not allowed for this process (%s): see the kernel.io_uring_disabled "
		         "sysctl, or the container's seccomp profile", strerror(-r));
	} else if (r == -ENOMEM && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		snprintf(res->message, sizeof res->message,
		         "io_uring: cannot allocate the ring (%s); the locked-memory limit is %llu KiB "
		         "(ulimit -l), which older kernels charge it to", strerror(-r),
		         (unsigned long long)(rl.rlim_cur / 1024));
	} else {
		snprintf(res->message, sizeof res->message, "io_uring: %s", strerror(-r));
	}
}

/* A registered file table with a slot for every connection and every open
 * raw file (at most one per active job). Its size counts against
 * RLIMIT_NOFILE, so the soft limit is raised towards the hard one. */
static int loop_slots_init(loop_t *l, loop_result_t *res)
{
	uint32_t n = (l->o->direct ? 3 : 2) * l->o->concurrency + 64; /* --direct: a file's tail */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n + 64) {
		rl.rlim_cur = rl.rlim_max < n + 64 ? rl.rlim_max : n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int r = io_uring_register_files_sparse(&l->ring, n);
	if (r < 0) {
		snprintf(res->message, sizeof res->message,
		         "io_uring: cannot register %u file slots: %s (raise ulimit -n or lower "
		         "--concurrency)", n, strerror(-r));
		return r;
	}
	l->slots_free = malloc(n * sizeof *l->slots_free);
	if (!l->slots_free)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		l->slots_free[i] = n - 1 - i; /* low slots first */
	l->n_slots = l->n_slots_free = n;
	return 0;
}

/* --direct: the pool's chunks are written from registered buffers
 * (write_fixed), so an O_DIRECT write does not pin its 64 pages each time.
 * The table starts sparse: a chunk is registered when it is made (stream.c),
 * so only chunks in use are pinned, and with --direct every chunk is filled
 * whole before it is written, so pinning makes nothing resident that the
 * write would not. Without --direct the writes go through the page cache,
 * where the copy dominates and a registered chunk of a small body would pin
 * 256 KiB for a few KiB used: no table then. */
static void loop_fixed_bufs_init(loop_t *l)
{
	uint32_t n = STREAM_POOL_BYTES / CHUNK_BYTES;
	if (io_uring_register_buffers_sparse(&l->ring, n) == 0)
		l->fixed_bufs = n;
}

/* --direct: an unnamed file in --raw (O_TMPFILE, nothing left behind) says
 * whether its file system takes O_DIRECT, and statx its alignment
 * (STATX_DIOALIGN, Linux 6.1; else 4096, which every file system accepts).
 * Once, at start, before the loop turns. */
static int loop_dio_align(loop_t *l, loop_result_t *res)
{
	int fd = open(l->o->raw, O_TMPFILE | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EINVAL) {
		int e = errno;
		snprintf(res->message, sizeof res->message,
		         "%s: --direct: the file system refuses O_DIRECT: %s", l->o->raw, strerror(e));
		return -e;
	}
	l->dio_align = 4096;
#ifdef STATX_DIOALIGN
	struct statx st;
	if (fd >= 0 && statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) == 0 &&
	    (st.stx_mask & STATX_DIOALIGN) && st.stx_dio_offset_align &&
	    st.stx_dio_offset_align <= CHUNK_ALIGN && st.stx_dio_mem_align <= CHUNK_ALIGN &&
	    CHUNK_BYTES % st.stx_dio_offset_align == 0)
		l->dio_align = st.stx_dio_offset_align;
#endif
	if (fd >= 0)
		close(fd);
	loop_fixed_bufs_init(l);
	return 0;
}

static int loop_init(loop_t *l, const loop_config_t *cfg, loop_result_t *res)
{
	memset(l, 0, sizeof *l);
	l->cfg = cfg;
	l->o = cfg->opts;
	l->pipe = cfg->pipe;
	l->raw_dirfd = -1;
	l->signal_fd = -1;
	l->op_tick.kind = OP_TICK;
	l->op_dns_tick.kind = OP_DNS_TICK;
	l->op_eventfd.kind = OP_EVENTFD;
	l->op_signal.kind = OP_SIGNAL;
	l->op_slot_close.kind = OP_SLOT_CLOSE;
	l->start_ms = l->now_ms = loop_now_ms();
	l->rng = l->start_ms ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
	int r = loop_ring_init(l);
	if (r < 0) {
		loop_ring_error(res, r);
		return r;
	}
	if ((r = loop_slots_init(l, res)))
		return r;
	loop_recvbufs_init(l);
	/* A `files` run reads local files only: its jobs never connect, and
	 * loading the CA store (the system one: about 25 ms of CPU) was the
	 * longest step before its first job. Any other run loads it here, so
	 * that a bad --cacert stops the run before any job starts (exit 2). */
	if (!cfg->local_files &&
	    tls_client_init(&l->tls, l->o->cacert, res->message, sizeof res->message))
		return -EINVAL;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	l->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
	l->sha256 = EVP_sha256();
#endif
	l->parser = json_parser_new(0);
	l->host_mask = 1023;
	l->host_tab = calloc(l->host_mask + 1, sizeof *l->host_tab);
	if (!l->sha256 || !l->parser || !l->host_tab) {
		snprintf(res->message, sizeof res->message, "out of memory");
		return -ENOMEM;
	}
	if (l->o->raw) {
		l->raw_dirfd = open(l->o->raw, O_DIRECTORY | O_PATH | O_CLOEXEC);
		if (l->raw_dirfd < 0) {
			snprintf(res->message, sizeof res->message, "%s: %s", l->o->raw, strerror(errno));
			return -errno;
		}
		if (l->o->direct && (r = loop_dio_align(l, res)))
			return r;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	l->signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (l->signal_fd < 0) {
		snprintf(res->message, sizeof res->message, "signalfd: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void loop_teardown(loop_t *l)
{
	/* Exiting the ring cancels what is still in flight before any of the
	 * memory those requests point at is freed below. */
	if (l->ring.ring_fd > 0)
		io_uring_queue_exit(&l->ring);
	l->ring_gone = true;
	while (l->conns) { /* their sockets closed with the ring's file table */
		conn_t *c = l->conns;
		l->conns = c->all_next;
		if (c->job)
			c->job->conn = NULL;
		tls_conn_free(&c->tls);
		free(c->rbuf);
		free(c->spill);
		free(c);
	}
	loop_recvbufs_free(l);
	while (l->jobs)
		job_abandon(l, l->jobs);
	stream_free_pool(l);
	if (l->end_batch)
		batch_free(l->end_batch);
	if (l->host_tab)
		host_free_all(l);
	if (l->parser)
		json_parser_free(l->parser);
	ds_plan_free(l);
	tls_client_free(&l->tls);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	EVP_MD_free((EVP_MD *)l->sha256);
#endif
	if (l->raw_dirfd >= 0)
		close(l->raw_dirfd);
	if (l->signal_fd >= 0)
		close(l->signal_fd);
	free(l->slots_free);
}

static void loop_cycle(loop_t *l)
{
	if (!l->tick_armed)
		arm_tick(l);
	io_uring_submit_and_wait(&l->ring, 1);
	l->now_ms = loop_now_ms();
	unsigned head, seen = 0;
	struct io_uring_cqe *cqe;
	io_uring_for_each_cqe(&l->ring, head, cqe) {
		dispatch(l, cqe);
		seen++;
	}
	io_uring_cq_advance(&l->ring, seen);
	conn_rearm_nobufs(l);
}

int loop_run(const loop_config_t *cfg, loop_result_t *res)
{
	memset(res, 0, sizeof *res);
	loop_t *l = calloc(1, sizeof *l);
	if (!l) {
		snprintf(res->message, sizeof res->message, "out of memory");
		return -ENOMEM;
	}
	int r = loop_init(l, cfg, res);
	if (r == 0) {
		arm_eventfd(l);
		arm_signal(l);
		for (;;) {
			/* Hand finished jobs over first: their slots under --concurrency
			 * are free for new jobs in the same turn, not a tick later. */
			loop_flush_ready(l);
			files_wake(l);
			pull_jobs(l);
			if (loop_finished(l))
				break;
			loop_cycle(l);
		}
		loop_copy_stats(l);
		res->outcome = l->fatal ? LOOP_FATAL : l->signal ? LOOP_INTERRUPTED : LOOP_FINISHED;
		res->signal = l->signal;
		snprintf(res->message, sizeof res->message, "%s", l->fatal_msg);
		res->jobs_done = l->jobs_done;
		res->jobs_failed = l->jobs_failed;
		res->jobs_total = l->cfg->jobs_total;
		res->bytes = l->bytes;
		res->rows = l->rows;
		res->seconds = (double)(loop_now_ms() - l->start_ms) / 1000.0;
	}
	loop_teardown(l);
	free(l);
	return r;
}
