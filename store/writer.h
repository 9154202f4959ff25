/* store/writer.h: the writer thread, the only connection that writes.
 *
 * It drains row batches from the loop's ring (store/ring.h), creates and
 * widens the target tables from the rows (DESIGN §4; several tables per
 * document, each in append, upsert or ignore mode), inserts them with
 * prepared statements, and marks each batch's job done or failed in the same
 * transaction as its rows (exactly once). Transactions are BEGIN IMMEDIATE and
 * commit every commit_rows rows or commit_ms milliseconds, whichever first.
 * It also feeds pending jobs from _ringfill_jobs to the loop, a page at a
 * time, so a million jobs never sit in memory at once. */
#ifndef RF_WRITER_H
#define RF_WRITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/batch.h"
#include "store/ring.h"
#include "store/store.h"

#define WRITER_COMMIT_ROWS_DEFAULT 50000u
#define WRITER_COMMIT_MS_DEFAULT 500u
#define WRITER_JOB_RING_DEFAULT 1024u   /* job descriptors in flight to the loop */
#define WRITER_BATCH_RING_DEFAULT 256u  /* batches in flight to the writer */
/* Bytes of batches in flight to the writer (batch_mem_bytes): past this the
 * loop holds finished jobs back as when the ring is full (pipe_push_batch),
 * so a writer slower than the network does not queue 256 large documents'
 * rows in memory (docs/store.md, The batch ring's bound). */
#define WRITER_BATCH_BYTES_MAX (16ull << 20)
/* Bytes of batches (batch_mem_bytes) one transaction holds until its
 * commit: past this it commits before --commit-rows, so rows of a KB each
 * are not held 50,000 at a time (docs/store.md, Transactions). */
#define WRITER_HELD_BYTES_MAX (32ull << 20)
/* Rows of keyed tables (upsert, ignore) are sorted by key and inserted this
 * many at a time, not only at the commit (docs/store.md, Key order). */
#define WRITER_KEYED_PENDING_MAX 16384u

/* Everything the loop and the writer share. The loop thread is the producer
 * of to_writer and the consumer of to_loop; the writer thread the reverse. */
typedef struct {
	ring_t to_writer;        /* batch_t*: loop → writer */
	ring_t to_loop;          /* job_desc_t*: writer → loop */
	doorbell_t writer_bell;  /* the loop rings after pushing batches or popping jobs */
	int loop_eventfd;        /* the writer writes 1 after pushing jobs, on exhaustion or fatal,
	                          * and after draining to_writer when it was at least half full */
	_Atomic bool jobs_exhausted; /* set (release) after the last pending job was pushed */
	_Atomic bool fatal;          /* set (release) when the writer stopped on an error */
	_Atomic bool stopping;       /* set (release) by the loop on SIGINT/SIGTERM: the writer
	                              * stops waiting for another process's write lock */
	_Atomic bool lock_wait_cancelled; /* the writer's fatal error is that it stopped so */
	_Atomic bool writer_done;    /* set (release) as the writer thread ends */
	int done_eventfd;            /* then written 1, for whoever waits for that (-1: none) */
	/* Batches that carry new jobs (a paginate page), pushed by the loop and
	 * not yet applied: the loop adds one before pushing such a batch, the
	 * writer subtracts one (release) after applying it and clearing
	 * jobs_exhausted, so the loop never ends the run while jobs may appear. */
	_Atomic uint32_t emits_unsettled;
	/* The batches in to_writer, in batch_mem_bytes: pipe_push_batch adds a
	 * batch's before pushing it, the writer takes them off as it pops. */
	_Atomic uint64_t to_writer_bytes;
	/* Set by pipe_push_batch when it held a batch back for to_writer_bytes;
	 * the writer clears it and wakes the loop once it has popped. */
	_Atomic bool to_writer_waits;
	char fatal_msg[512];         /* written before fatal is set */
	char fatal_hint[256];        /* what to do about it, when a re-run alone would not help
	                              * (written before fatal is set; "" otherwise) */
	_Atomic uint64_t rows_committed, jobs_done_committed, jobs_failed_committed;
} pipe_t;

/* The tables: either n_tables specs (store/batch.h; the rows' table index
 * points into them), which must outlive the writer, or, with n_tables 0, the
 * one inferred `table` in append mode (the --rows/--table command line). */
typedef struct {
	const char *table;  /* target table when n_tables is 0; quoted when used */
	const char *source; /* whose jobs to feed */
	uint32_t commit_rows, commit_ms;
	int64_t run_id; /* the run's row in _ringfill_runs (store_run_begin), or 0 */
	const table_spec_t *tables;
	uint32_t n_tables;
	/* Keyed rows sorted and inserted at a time; 0: WRITER_KEYED_PENDING_MAX
	 * (tests set a few rows to cross chunk boundaries cheaply). */
	uint32_t keyed_chunk_rows;
	/* WAL bytes at which a commit waits for the checkpointer and copies the
	 * rest itself; 0: WRITER_WAL_SELF_BYTES (tests set less, to see the
	 * bound kept without writing hundreds of MB). */
	uint64_t wal_self_bytes;
} writer_config_t;

typedef struct writer writer_t;

/* The loop's push of a batch to the writer: false when the ring is full, or
 * when the batches already in it hold WRITER_BATCH_BYTES_MAX bytes with this
 * one added (into an empty ring a batch goes however large it is). Then the
 * batch stays the caller's, and the writer writes loop_eventfd once it has
 * made room. The caller rings writer_bell after its pushes. BATCH_END may go
 * through ring_push itself: what pipe_push_batch did not count is not
 * taken off. */
bool pipe_push_batch(pipe_t *p, batch_t *b);

/* Initialises the pipe's rings and doorbell (the caller creates the eventfds,
 * done_eventfd -1 when nobody waits on it),
 * and starts the thread. 0 or -errno: -EINVAL for an empty table name, one
 * starting with _ringfill_, two tables of the same name, or more than
 * BATCH_TABLES_MAX tables. Tables that already exist and have a key get
 * their key columns and UNIQUE index when the thread starts. */
int writer_start(store_t *st, const writer_config_t *cfg, pipe_t *pipe, writer_t **out);
/* Waits for the thread, which ends after a BATCH_END batch (or on a fatal
 * error). Returns 0, or -1 when it stopped on a fatal error (pipe->fatal_msg).
 * Call it once the loop has stopped using the pipe: it frees the batches and
 * job descriptors still in the two rings; the caller then destroys the rings
 * (ring_destroy) and closes the eventfd. */
int writer_join(writer_t *w);

#endif
