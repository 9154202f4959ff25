/* engine/loop.h: the io_uring loop thread (DESIGN §1).
 *
 * It takes job descriptors from the writer's job ring, resolves hosts off the
 * loop (getaddrinfo_a), connects, speaks TLS and HTTP/1.1 with every socket
 * operation on io_uring, writes raw bodies through io_uring, parses the JSON,
 * and hands each job's outcome and rows to the writer as one batch. */
#ifndef RF_LOOP_H
#define RF_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/options.h"
#include "engine/sources.h"
#include "parse/json.h"
#include "store/writer.h"

typedef struct {
	const run_opts_t *opts;
	pipe_t *pipe;           /* shared with the writer thread */
	const table_spec_t *tables; /* what to extract from each body (store/batch.h) */
	uint32_t n_tables;
	json_parser_t *vars_parser; /* the loop thread's own, for jobs' variables */
	uint64_t jobs_total;    /* pending jobs at start, for progress and ETA */
	bool local_files;       /* a `files` source: "file:" jobs are read from disk */
	const paginate_spec_t *paginate; /* a `paginate` source, or NULL */
} loop_config_t;

typedef enum {
	LOOP_FINISHED = 0, /* every job was handed to the writer */
	LOOP_INTERRUPTED,  /* a signal stopped it; signal says which */
	LOOP_FATAL,        /* disk or writer failure; message says what */
} loop_outcome_t;

typedef struct {
	loop_outcome_t outcome;
	int signal;
	char message[600];
	uint64_t jobs_done, jobs_failed, bytes, rows;
	uint64_t jobs_total; /* the run's jobs, the pages' too */
	double seconds;
} loop_result_t;

/* The run's last progress line (or --log-json "finished" event), once the
 * writer has committed everything: the jobs and rows it committed, which
 * leave out those the database refused (the loop's own count, taken as it
 * hands batches over, counted them as done). Nothing with --quiet. */
void progress_final(const run_opts_t *o, const loop_result_t *res, uint64_t done,
                    uint64_t failed, uint64_t rows);

/* One line of what a run says besides its progress: the text as it is, or
 * with --log-json a JSON line {"event": kind, "message": text}, so that
 * stderr stays JSON lines. kind "error", "stopped" and "kept" are said even
 * with --quiet; the others ("import", "summary", "signal", "hint") not. */
void run_say(const run_opts_t *o, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Runs on the calling thread until the jobs are exhausted, a signal arrives,
 * or a fatal error. Expects SIGINT and SIGTERM blocked in every thread.
 * Returns 0, or -errno when the loop could not even start (message set). */
int loop_run(const loop_config_t *cfg, loop_result_t *res);

#endif
