/* engine/loop_internal.h: the structures shared by loop.c (the ring and its
 * dispatch, hosts, DNS, timers), conn.c (connections: connect, TLS, HTTP) and
 * job.c (a job's life: retries, raw file, parse, batch). One thread only.
 *
 * Ownership, stage by stage: a job_desc_t comes from the writer and belongs to
 * its job_t until the job ends (freed there). A job's body buffer belongs to
 * the job. A connection belongs to the loop (all-connections list) and lends
 * itself to one job at a time. A batch belongs to its job until ring_push
 * succeeds, then to the writer. A document's stream (docstream.c) belongs to
 * its job until the document is done, then, reset, to loop.ds_pool: the
 * writer never reads it (rows are copied into the batch). */
#ifndef RF_LOOP_INTERNAL_H
#define RF_LOOP_INTERNAL_H

#include <liburing.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/signalfd.h>

#include "engine/loop.h"
#include "net/gzip.h"
#include "net/http.h"
#include "net/tls.h"
#include "net/url.h"
#include "store/batch.h"
#include "store/store.h"

#define LOOP_RING_ENTRIES 1024u
#define CONN_RECV_BYTES (64u * 1024u) /* a connection's own buffer, without a buffer ring */
#define RECV_BUF_BYTES (16u * 1024u)  /* a provided receive buffer: about one TLS record */
#define RECV_BUFS_MIN 256u            /* buffers in the ring: 4 x --concurrency, rounded */
#define RECV_BUFS_MAX 256u            /* up to a power of 2, within these bounds */
/* MAX = MIN (4 MiB): 512 buffers cost 512 connections 4 MiB more peak RSS
 * (issue 4: <= 128 MB) and did not make that run faster; a connection that
 * finds the ring dry waits on loop.nobufs_head (docs/benchmarks.md). */
#define RECV_BGID 0                   /* the ring's buffer group */
#define CONN_SEND_BYTES (16u * 1024u + 512u) /* one TLS record and change */
#define LOOP_PLAIN_BYTES (64u * 1024u)
#define LOOP_TICK_MS 50u
/* While a DNS lookup is pending, the loop looks for its answer after 1 ms,
 * then after twice as long each time, up to LOOP_TICK_MS: glibc's resolver
 * thread tells no one when it is done (getaddrinfo_a, SIGEV_NONE), and an
 * answer from /etc/hosts takes about a millisecond. */
#define DNS_POLL_FIRST_MS 1u
#define CONN_IDLE_KEEP_MS 15000u /* idle keep-alive connections closed after this */
#define TLS_PROBE_WAIT_MS 1000u  /* a host's other connections wait this long at most for its first (host_t.tls_probed) */
#define HOSTS_MAX 65536u
#define FILE_WRITE_CHUNK (8u << 20)
#define ERR_BYTES 512u
#define REDIRECTS_MAX 5u /* followed per attempt; one more is an error */
#define CHUNK_BYTES (256u * 1024u)       /* a piece of a streamed body */
#define CHUNK_ALIGN 4096u                /* of chunk data: enough for any O_DIRECT */
#define STREAM_POOL_BYTES (48u << 20)   /* streamed bytes on their way to disk, all jobs */
#define ND_RECORD_BYTES_MAX (16u << 20) /* a streamed NDJSON line (or --max-body if smaller) */
#define ND_CKPT_ROW_BYTES (16u << 20)   /* encoded rows that make a checkpoint due */
#define DS_CKPT_ROW_BYTES (1u << 20)    /* ... in a single document (docs/engine.md) */
#define ND_STOP_WAIT_MS 2000u           /* on a signal, how long checkpoints may wait */
#define DS_GZIP_PIECE_BYTES (1u << 20)  /* a gzip document is decoded this much at a time */
/* Idle document streams kept for the next documents (docstream.c), so that
 * a small document costs no stream set-up: at most this many, holding at
 * most this much together, whatever --concurrency is. One stream may hold
 * it all: documents one after another reuse the same stream, whose buffers
 * have grown to the largest of them. */
#define DS_POOL_MAX 64u
#define DS_POOL_BYTES_MAX (16u << 20)

/* Every io_uring request carries a pointer to one of these, embedded in its
 * owner; container_of gets the owner back. */
typedef enum {
	OP_TICK = 1, OP_DNS_TICK, OP_EVENTFD, OP_SIGNAL,
	OP_SOCKET, OP_CONNECT, OP_CONNECT_TIMEOUT, OP_SEND, OP_RECV, OP_CANCEL, OP_CLOSE,
	OP_MKDIR, OP_FILE, OP_SLOT_CLOSE,
	OP_LOCAL, /* a `files` job's read (files.c) */
	OP_FILE_TAIL, /* --direct: the last bytes of a raw file, without O_DIRECT (stream.c) */
} op_kind_t;

typedef struct {
	op_kind_t kind;
} op_t;

/* Provided receive buffers: a buffer ring registered with the kernel, from
 * which each recv completion takes one buffer (IOSQE_BUFFER_SELECT), so the
 * memory for received bytes scales with the ring, not with connections x a
 * buffer each. A buffer is the kernel's while in the ring, then the
 * connection's that received into it (queued at conn.rq_*) until OpenSSL
 * has pulled every byte of it (conn.c), then back in the ring
 * (loop_recvbuf_put). Absent (n == 0) when the kernel refused the ring or
 * RINGFILL_RECV_BUFS=0: each connection then receives into its own rbuf. */
typedef struct {
	struct io_uring_buf_ring *br; /* mmap'd, br_bytes */
	size_t br_bytes;
	char *base;      /* n x RECV_BUF_BYTES; owned */
	uint32_t n, mask;
	uint32_t free;   /* buffers in the ring now */
	uint32_t *len;   /* bytes received into buffer [bid] */
	int32_t *next;   /* the next buffer in the same connection's queue, or -1 */
	bool multishot;  /* one recv armed per connection; false once the kernel refused it */
	uint64_t nobufs; /* recvs that ended on an empty ring (re-armed later) */
} recvbufs_t;

/* Bytes copied on the body path, per stage; counted in every build (an
 * addition per copy) and written at exit to $RINGFILL_COPY_STATS. */
typedef enum {
	COPY_TLS_IN,   /* received ciphertext into OpenSSL's record buffer */
	COPY_PLAIN,    /* decrypted bytes into the body's destination (chunk, buffer) */
	COPY_HEAD,     /* response head bytes into conn.head */
	COPY_STAGES
} copy_stage_t;
#define COPY_COUNT(l, stage, n) ((l)->copied[(stage)] += (n))

/* A piece of a body streamed to its raw file (--download-only). Owned by
 * the loop's pool when free, by one job while it fills and waits for its
 * write, and back to the pool once written. */
typedef struct chunk {
	struct chunk *next;
	size_t len;
	int32_t buf_index; /* --direct: its slot of the ring's registered buffers, or -1 */
	_Alignas(CHUNK_ALIGN) char data[CHUNK_BYTES]; /* O_DIRECT writes it (--direct) */
} chunk_t;

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

typedef struct loop loop_t;
typedef struct host host_t;
typedef struct conn conn_t;
typedef struct job job_t;

typedef enum { DNS_NONE = 0, DNS_PENDING, DNS_OK, DNS_FAILED } dns_state_t;
typedef enum { RAWDIR_NONE = 0, RAWDIR_PENDING, RAWDIR_READY } rawdir_state_t;

struct host {
	host_t *hash_next;
	char name[URL_HOST_BYTES_MAX + 1];
	uint16_t port;
	bool is_ip;       /* the URL's host is an IP literal (TLS checks the IP) */
	bool via_proxy;   /* connections go to HTTPS_PROXY and CONNECT to here */
	const char *dns_name; /* what is resolved: name, or the proxy's */
	dns_state_t dns;
	struct gaicb gcb; /* getaddrinfo_a request; polled on ticks */
	struct addrinfo hints;
	char port_str[8];
	host_t *dns_next; /* list of hosts with a lookup in progress */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char dns_err[URL_HOST_BYTES_MAX + 256];
	bool dns_transient;
	uint32_t conns;  /* open connections, busy or idle */
	conn_t *idle;    /* idle keep-alive connections */
	job_t *wait_head, *wait_tail; /* jobs waiting for a connection */
	SSL_SESSION *session;         /* for resumption; owned */
	/* Its first connection got an answer head, or ended without one: until
	 * then no second connection opens, so that the others resume that
	 * connection's session instead of each making a full handshake. */
	bool tls_probed;
	rawdir_state_t rawdir;
	op_t op_mkdir;
	char dirname[URL_HOST_DIRNAME_BYTES]; /* under --raw: url_host_dirname */
	job_t *rawdir_waiters;
	host_t *blocked_next; /* waiting for a free slot under --concurrency */
	bool blocked;
	uint64_t paused_until_ms; /* after a 429/503: no new request before this */
	host_t *paused_next;      /* on loop->paused_hosts while paused */
	bool paused;
	bool dispatching, dispatch_again; /* host_dispatch is not re-entered */
};

typedef enum {
	CONN_CONNECTING = 1, CONN_PROXY, CONN_HANDSHAKE, CONN_RESPONSE, CONN_IDLE,
} conn_state_t;

struct conn {
	conn_t *all_prev, *all_next; /* every open connection, for deadlines */
	conn_t *idle_next;
	loop_t *loop;       /* for OpenSSL's pulls (tls_source_t) */
	host_t *host;
	job_t *job;
	int fd;             /* a slot of the ring's registered file table */
	int sock_err;       /* the socket's creation failed: connect is cancelled */
	conn_state_t state;
	bool dead;          /* closing: no new requests, completions only counted */
	bool starved;       /* its job waits for a free chunk: reading paused */
	bool recv_busy, send_busy, reused, close_after;
	uint32_t inflight;  /* io_uring requests not completed yet */
	tls_conn_t tls;
	op_t op_socket, op_connect, op_send, op_recv, op_cancel, op_close;
	/* The connect's deadline is a timeout linked behind it (conn_open), so
	 * the kernel cancels a connect that hangs; the tick does not scan for it.
	 * The kernel reads connect_ts when the chain is submitted. */
	op_t op_connect_timeout;
	struct __kernel_timespec connect_ts;
	uint64_t deadline_ms, idle_since_ms;
	uint64_t opened_ms; /* when conn_open made it */
	const char *phase;  /* for timeout messages */
	size_t wlen;        /* bytes at wbuf waiting to be sent */
	size_t head_len;    /* response head bytes collected */
	/* Received ciphertext not yet pulled by OpenSSL: the queue of provided
	 * buffers rq_head..rq_tail (loop.rb.next links them; rq_off bytes of
	 * the first are consumed), or rbuf[rq_off..rq_off+rq_bytes) without a
	 * buffer ring. */
	int32_t rq_head, rq_tail;
	uint32_t rq_off;
	size_t rq_bytes;
	char *rbuf;         /* CONN_RECV_BYTES, owned; only without a buffer ring */
	char *spill;        /* owned: what was queued in provided buffers when it was starved */
	size_t spill_len, spill_off; /* pulled before the queue */
	int rx_end;         /* while starved: 1 the peer closed, < 0 a receive error */
	uint32_t stash_len; /* body bytes that came with the head, waiting in head[] for a chunk */
	bool nobufs;        /* on loop.nobufs_head: its recv waits for free buffers */
	conn_t *nobufs_next;
	/* Last and not zeroed by conn_open (only what comes before head is):
	 * read only below head_len / wlen. */
	char head[HTTP_HEAD_BYTES_MAX];
	char wbuf[CONN_SEND_BYTES];
};

typedef enum { FILE_OPEN = 1, FILE_REHASH, FILE_WRITE, FILE_CLOSE, FILE_RENAME } file_step_t;

struct job {
	job_t *next;              /* on one list at a time: waiting, retry, ready, raw dir */
	job_t *all_prev, *all_next; /* every live job, for teardown */
	job_desc_t *desc;
	host_t *host;           /* where the request goes (changes on redirects) */
	host_t *origin;         /* the job's own URL's host: its raw directory */
	url_t url;
	uint32_t attempts_run;  /* attempts in this run */
	uint32_t redirects;     /* followed in this attempt */
	uint64_t seen_urls[REDIRECTS_MAX + 1]; /* hashes of the chain, for loops */
	char *redirect_url;     /* owned; url points into it after a redirect */
	bool fresh_only;        /* re-sent after a reused connection died: a new one */
	conn_t *conn;           /* the connection carrying it, or NULL (c->job's mirror) */
	uint64_t retry_at_ms;
	/* the response */
	http_response_t resp;
	bool head_done, body_done, got_bytes;
	http_chunked_t chunk;
	json_buf_t body;        /* decoded: what is parsed */
	json_buf_t wire;        /* gzip only: the body as sent (raw file, SHA-256) */
	gzip_dec_t gz;
	bool gz_failed;
	char gz_error[160];
	/* the outcome */
	batch_t *batch;
	/* --download-only: the body streams to the raw file in chunks */
	bool streaming, stream_done, write_busy;
	chunk_t *cur;               /* filling */
	chunk_t *wq_head, *wq_tail; /* full, waiting for their write, in order */
	size_t wq_off;              /* bytes of wq_head already written */
	uint64_t stream_bytes;      /* received so far */
	struct evp_md_ctx_st *sha;  /* SHA-256 of the bytes as received */
	bool aborting;              /* failed while a file request was in flight */
	error_class_t abort_cls;
	uint64_t abort_delay_ms;
	char abort_msg[BATCH_ERROR_BYTES_MAX];
	/* NDJSON parsed as it arrives (engine/ndstream.c). body holds only the
	 * trailing partial line; batch collects the rows since the last cut. */
	bool nd;                    /* this response streams through the NDJSON parser */
	bool nd_failed;             /* batch failed (invalid JSON...): nothing more is parsed */
	bool nd_loaded;             /* ck_* read from desc */
	bool no_range;              /* do not ask Range (the .part was short, a 206 was wrong) */
	bool range_sent;            /* this request asked Range: bytes=ck_offset- */
	bool sha_partial;           /* a 206 without --raw: the first bytes were never hashed */
	uint64_t nd_base;           /* where this response's bytes start in the body (206: N) */
	uint64_t nd_pos;            /* decoded-body offset just past the last whole line */
	uint64_t nd_records;        /* records consumed (parsed or skipped) */
	uint64_t nd_skip;           /* records still to skip (a 200 after a checkpoint) */
	uint64_t nd_skip_part;      /* bytes of the line being skipped so far */
	bool nd_skip_seen;          /* that line is not blank */
	bool bom_done;              /* the body's start is past a UTF-8 BOM or known to have none */
	uint8_t bom_held;           /* bytes of a BOM seen at the start, not passed on yet (0-2) */
	uint8_t bom_skipped;        /* 3 when a BOM was passed over: a document's offsets add it */
	struct json_ndjson_stream *nd_stream; /* the lines after the skipped ones; owned */
	uint64_t nd_stream_base;    /* decoded-body offset of the stream's first byte */
	char nd_validator[BATCH_VALIDATOR_BYTES_MAX]; /* this response's If-Range value, or "" */
	uint64_t ck_offset, ck_records; /* the last checkpoint handed to the writer */
	char ck_validator[BATCH_VALIDATOR_BYTES_MAX];
	batch_t *ck_batch;          /* a cut checkpoint waiting for its raw bytes or ring space */
	job_t *ck_next;             /* on loop->ck_head while ck_batch waits */
	uint64_t file_resume;       /* --raw after a 206: .part bytes to re-hash, then write on */
	struct ds_job *ds;          /* a single JSON body streamed (engine/docstream.c); owned */
	char *rehash_buf;           /* owned while FILE_REHASH reads the .part */
	/* the raw file: NAME.part written, closed, renamed */
	op_t op_file;
	file_step_t file_step;
	int file_fd;            /* a registered file slot while the file is open, or -1 */
	/* --direct: the unaligned last bytes go through a second descriptor of
	 * the .part without O_DIRECT: open, write, close (stream.c) */
	op_t op_tail;
	int tail_fd;            /* its slot while open, or -1 */
	uint8_t tail_step;      /* 0 none, else the FILE_OPEN/WRITE/CLOSE in flight */
	size_t tail_len;
	size_t file_off;
	char raw_rel_part[URL_HOST_BYTES_MAX + RAW_NAME_BYTES_MAX + 64];
	struct job *raw_next; /* in loop_t.raw_parts[] while raw_part_held */
	bool raw_part_held;
	char raw_rel_final[URL_HOST_BYTES_MAX + RAW_NAME_BYTES_MAX + 48];
	struct local_file *local; /* a `files` job's read (files.c); owned */
};

#define RAW_PART_BUCKETS 256u /* loop_t.raw_parts */

struct loop {
	struct io_uring ring;
	const loop_config_t *cfg;
	const run_opts_t *o;
	pipe_t *pipe;
	tls_client_t tls;
	/* SHA-256, fetched once: EVP_sha256() makes OpenSSL 3 look the
	 * algorithm up in its providers again at every digest's start (a lock
	 * and a search per job). */
	const EVP_MD *sha256;
	json_parser_t *parser;
	int raw_dirfd;
	/* The .part names jobs of this run write (job_raw_names): a job whose
	 * NAME.part another job holds (two manifest keys on one URL, two
	 * spellings of one host) writes NAME.ID.part instead, so the two never
	 * write one file nor rename it from under each other. Chained by
	 * job_t.raw_next, RAW_PART_BUCKETS heads. */
	struct job *raw_parts[RAW_PART_BUCKETS];
	int signal_fd;
	uint64_t now_ms, start_ms;
	/* hosts */
	host_t **host_tab;
	uint32_t host_mask, n_hosts;
	host_t *dns_list;
	host_t *blocked_hosts; /* hosts whose jobs wait for a connection slot */
	host_t *paused_hosts;  /* hosts told to slow down (429/503) */
	/* jobs and connections */
	uint32_t jobs_active, conns_open;
	job_t *retry_list;
	job_t *ready_head, *ready_tail; /* finished jobs whose batch waits for ring space */
	conn_t *conns;
	uint64_t conn_frees; /* bumped by every conn_free: loops over conns restart */
	job_t *jobs; /* every live job */
	/* stopping */
	bool stopping, fatal, end_pushed;
	batch_t *end_batch; /* BATCH_END waiting for ring space */
	int signal;
	char fatal_msg[600];
	/* the ring's registered file table: sockets and raw files live in its
	 * slots (direct descriptors), never in the process's fd table */
	uint32_t *slots_free;
	uint32_t n_slots, n_slots_free;
	bool ring_gone; /* teardown: the ring and its file table are closed */
	/* io_uring requests of the loop itself */
	op_t op_tick, op_dns_tick, op_eventfd, op_signal, op_slot_close;
	bool tick_armed, dns_tick_armed;
	struct __kernel_timespec tick_ts, dns_tick_ts;
	uint32_t dns_wait_ms; /* the next DNS poll's wait (DNS_POLL_FIRST_MS) */
	uint64_t eventfd_buf;
	struct signalfd_siginfo sig_buf;
	job_t *ck_head;      /* jobs whose checkpoint batch waits (engine/ndstream.c) */
	uint64_t stop_ms;    /* when stopping began */
	bool stop_ckpt_done; /* streams were checkpointed for the stop */
	bool ck_unblocked;   /* a checkpoint went out: a connection may read on */
	struct ds_plan *ds_plan; /* which paths a streamed document follows (docstream.c); owned */
	struct ds_job *ds_pool;  /* idle streams for the next documents (docstream.c); owned */
	uint32_t ds_pooled;      /* on ds_pool, at most DS_POOL_MAX */
	size_t ds_pool_bytes;    /* what they hold, at most DS_POOL_BYTES_MAX */
	chunk_t *chunks_free;
	uint32_t chunks_made, chunks_max, starved_conns;
	uint32_t starved_files; /* NDJSON files whose reading waits for a checkpoint (files.c) */
	/* Local documents streamed (a piece or more) being read, at most
	 * LOCAL_STREAMS_MAX, and the ones past that waiting, oldest first
	 * (files.c: files_wake starts them). */
	uint32_t local_streams, local_streams_peak;
	uint64_t local_stream_waits; /* documents that waited (RINGFILL_COPY_STATS) */
	struct local_file *stream_wait, **stream_wait_tail;
	recvbufs_t rb;
	uint32_t dio_align;  /* --direct: file offset and length alignment (statx) */
	/* --direct: slots of the ring's (sparse) registered-buffer table for the
	 * pool's chunks; 0 when there is none or RLIMIT_MEMLOCK refused a chunk. */
	uint32_t fixed_bufs, fixed_used;
	uint64_t fixed_writes; /* writes from registered buffers (write_fixed) */
	conn_t *nobufs_head; /* connections whose recv waits for a free buffer */
	uint64_t copied[COPY_STAGES];
	uint64_t stashes; /* heads whose body bytes waited for a chunk (conn.c) */
	char plain[LOOP_PLAIN_BYTES]; /* decrypted bytes, consumed before the next read */
	char request[HTTP_HEAD_BYTES_MAX];
	uint64_t rng;
	/* counters for progress and the summary */
	uint64_t jobs_done, jobs_failed, bytes, rows;
};

/* loop.c */
struct io_uring_sqe *loop_sqe(loop_t *l);
void loop_sqe_room(loop_t *l, unsigned n);    /* n SQEs free: a linked chain stays whole */
int loop_slot_get(loop_t *l);                  /* a free slot, or -1 */
void loop_slot_put(loop_t *l, int slot);       /* frees a slot already empty */
void loop_slot_close(loop_t *l, int slot);     /* closes what it holds, frees it */
uint64_t loop_now_ms(void);
void loop_fatal(loop_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void loop_recvbuf_put(loop_t *l, int32_t bid); /* back into the buffer ring */
void host_enqueue(loop_t *l, host_t *h, job_t *j);
void host_enqueue_front(loop_t *l, host_t *h, job_t *j);
void job_stale_retry(loop_t *l, job_t *j);
void host_dispatch(loop_t *l, host_t *h);
host_t *host_get(loop_t *l, const url_t *u);
void host_rawdir(loop_t *l, host_t *h, job_t *j);
void host_pause(loop_t *l, host_t *h, uint64_t until_ms);

/* conn.c */
conn_t *conn_open(loop_t *l, host_t *h, job_t *j);
void conn_assign(loop_t *l, conn_t *c, job_t *j);
void conn_complete(loop_t *l, conn_t *c, op_t *op, int res, unsigned cqe_flags);
void conn_rearm_nobufs(loop_t *l); /* recvs that waited for buffers, while some are free */
void conn_close(loop_t *l, conn_t *c);
void conn_check_deadline(loop_t *l, conn_t *c);

/* job.c */
void job_start(loop_t *l, job_desc_t *d);
void job_response_done(loop_t *l, job_t *j);
void job_fail(loop_t *l, job_t *j, error_class_t cls, uint64_t delay_ms, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void job_file_complete(loop_t *l, job_t *j, int res);
void job_rawdir_ready(loop_t *l, job_t *j);
void job_retry_due(loop_t *l);
void loop_flush_ready(loop_t *l);
void job_abandon(loop_t *l, job_t *j);
void job_range_fallback(loop_t *l, job_t *j); /* the whole body again, at once */
/* The body is gzip and ended before its gzip data did (no bad data seen). */
static inline bool job_gzip_unended(const job_t *j)
{
	return j->resp.gzip && j->gz.active && !j->gz_failed && !j->gz.ended;
}

void conn_resume(loop_t *l, conn_t *c);

/* stream.c */
int stream_start(loop_t *l, job_t *j);
size_t stream_room(loop_t *l, job_t *j);
char *stream_tail(loop_t *l, job_t *j, size_t *room); /* where the next bytes go, or NULL */
void stream_append(loop_t *l, job_t *j, const char *p, size_t n);
void stream_finish(loop_t *l, job_t *j);
void stream_flush_partial(loop_t *l, job_t *j);
void stream_pump(loop_t *l, job_t *j);
void stream_written(loop_t *l, job_t *j, size_t n);
bool stream_defer_failure(loop_t *l, job_t *j, error_class_t cls, uint64_t delay_ms,
                          const char *msg);
void stream_release(loop_t *l, job_t *j);
void stream_tail_complete(loop_t *l, job_t *j, int res);
void stream_free_pool(loop_t *l);

/* job.c, for stream.c */
void job_raw_names(loop_t *l, job_t *j);
void job_raw_part_release(loop_t *l, job_t *j);
void job_stream_done(loop_t *l, job_t *j);
void hex_digest(const unsigned char md[32], char out[65]);
void sha256_hex(loop_t *l, const json_buf_t *body, char out[65]); /* of the bytes, as hex_digest */

/* ndstream.c: NDJSON bodies parsed as they arrive, checkpoints, resume */
bool job_is_ndjson(loop_t *l, job_t *j); /* job.c */
/* For an invalid-JSON reason: "" or why the body was parsed as sent (job.c),
 * into a buffer of JOB_CODING_NOTE_BYTES. */
#define JOB_CODING_NOTE_BYTES (96u + HTTP_CODINGS_BYTES_MAX)
const char *job_coding_note(const job_t *j, char *buf, size_t cap);
void job_fail_repeated(batch_t *b, size_t offset, size_t line);
/* The UTF-8 byte order mark a body may start with (RFC 8259 §8.1 lets a
 * parser ignore it, as Python's json and simdjson do): its length at the
 * start of p[0..n), 3 or 0. */
#define JOB_BOM "\xEF\xBB\xBF"
static inline size_t job_bom_len(const char *p, size_t n)
{
	return n >= 3 && memcmp(p, JOB_BOM, 3) == 0 ? 3 : 0;
}
void nd_load(job_t *j);
int nd_request(loop_t *l, job_t *j, char *req, size_t len, size_t cap); /* new length or <0 */
int nd_begin(loop_t *l, job_t *j, error_class_t *cls, char *err, size_t cap);
/* The same for a local NDJSON file (files.c): *from is where reading starts. */
int nd_begin_local(loop_t *l, job_t *j, const char *validator, bool doc, uint64_t *from);
int nd_feed(loop_t *l, job_t *j, const char *p, size_t n, error_class_t *cls, char *err,
            size_t cap);
void nd_finish(loop_t *l, job_t *j);
bool nd_blocked(loop_t *l, const job_t *j);
void nd_ck_try(loop_t *l, job_t *j);
void nd_ck_flush(loop_t *l);
void nd_reset(loop_t *l, job_t *j);
bool nd_stop(loop_t *l); /* true once the stop's checkpoints are handed over (or given up) */
/* A committed checkpoint of the other kind (an NDJSON one, with its byte
 * offset, for a body now read as a single document, or a document's, offset
 * 0, for one now read as NDJSON: the --ndjson flag or the content type
 * changed): its records cannot be skipped, so the job fails (permanent) with
 * *why instead of losing or repeating rows. */
bool nd_ckpt_kind_refused(job_t *j, bool doc, char *why, size_t cap);
/* whether a 2xx body goes through nd_begin: NDJSON, or a single document
 * when the run's tables can stream (docstream.c) */
bool nd_streams(loop_t *l, job_t *j);

/* docstream.c: a single JSON body parsed as it arrives (under ndstream.c's
 * byte path: nd_begin/nd_feed/nd_finish call these when j->ds) */
bool ds_plan_ok(loop_t *l);
void ds_plan_free(loop_t *l);
int ds_begin(loop_t *l, job_t *j); /* -1: out of memory */
void ds_feed(loop_t *l, job_t *j, const char *p, size_t n); /* decoded bytes */
void ds_finish(loop_t *l, job_t *j);
void ds_free(loop_t *l, job_t *j); /* its ds_job back to loop.ds_pool, or freed */
/* A document this run parses whole although its job has a committed
 * checkpoint (an earlier run, whose tables could stream, was stopped in it):
 * the whole body would insert the checkpoint's rows again, so the job fails
 * (permanent) with *why. False when the job has no checkpoint. */
/* A document's committed checkpoint this run cannot go on from: read whole
 * (!stream: the tables cannot stream), its records would be inserted again;
 * streamed by tables whose rows paths differ from the run that made it
 * (ds_rows_key), other records would be skipped. True with the reason. */
bool ds_ckpt_refused(loop_t *l, job_t *j, bool stream, char *why, size_t cap);
/* What a streamed document's checkpoints keep as their validator: the set of
 * the run's rows paths ("" when its tables cannot stream). */
#define DS_ROWS_KEY_PREFIX "rows-paths:"
#define DS_ROWS_KEY_BYTES 32u
const char *ds_rows_key(loop_t *l);
/* Whether the rows so far may be cut into a checkpoint: not while a table
 * holds records for the end (they count as consumed, but have no rows yet). */
bool ds_can_cut(const job_t *j);

/* job.c, for files.c: a whole body, from the network or a local file */
void job_body_ok(loop_t *l, job_t *j);
void job_ready(loop_t *l, job_t *j); /* its batch is complete: on to the writer, in order */

/* files.c: the `files` source; paginate.c: the `paginate` source */
bool files_job(const loop_t *l, const job_desc_t *d);
void files_start(loop_t *l, job_t *j);
void files_complete(loop_t *l, op_t *op, int res);
/* A paused NDJSON file reads on if its checkpoint went out; true if it did. */
bool files_resume(loop_t *l, job_t *j);
void files_free(loop_t *l, job_t *j); /* the job's read state, with the job */
void files_wake(loop_t *l); /* starts waiting streamed documents there is room for */
bool paginate_is_page(const loop_t *l, const job_t *j);
void paginate_page(loop_t *l, job_t *j, batch_t *b, const json_doc_t *vars);

/* progress.c */
void progress_report(loop_t *l);

#endif
