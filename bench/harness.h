/* bench/harness.h: what the suites (bench/suite_*.c) share with the harness
 * (bench/bench.c): the run settings, the timing loop with warm-up and
 * progress, and the result records that become the table and the --json file.
 * A suite measures, adds records, and never prints numbers itself. */
#ifndef RF_BENCH_HARNESS_H
#define RF_BENCH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parse/json.h"

#define BENCH_RUNS_MAX 101u         /* --runs limit; runs are kept for the JSON file */
#define BENCH_RUNS_DEFAULT 5u
#define BENCH_RECORDS_MAX 256u      /* suite/case/metric records in one invocation */
#define BENCH_NAME_BYTES_MAX 128u   /* a case name (a corpus file name, shortened) */
#define BENCH_PEER_NAME_BYTES_MAX 48u

/* Settings from the command line, read by the suites. */
typedef struct {
	uint32_t runs;      /* timed runs per case, after one warm-up */
	bool quick;         /* small sizes: for tests and smoke runs, not for numbers */
	const char *corpus; /* --corpus DIR, or NULL */
	const char *tmpdir; /* a private directory the suites may write into */
	bool instructions;  /* --instructions: counts (suite_instr.c), not timing */
	uint32_t ndjson_pages;  /* e2e: --ndjson-pages N, 0 for the default */
	double ndjson_page_mb;  /* e2e: --ndjson-page-mb MB, 0 for the default */
	const char *const *cases; /* --case GLOB...: the cases to run (fnmatch); 0: all */
	uint32_t n_cases;
} bench_opts_t;

/* Whether --case selects the case (every case without --case). A suite
 * skips the work of cases nobody selected; records of unselected cases that
 * a selected one needed (the files under parse's geomean, an e2e workload's
 * other case) are dropped before the table, the JSON and the gate. */
bool bench_case_selected(const bench_opts_t *opts, const char *case_name);

/* One suite/case/metric. value is the median of runs; every metric is a rate,
 * so higher is better unless higher_better is false. ratio is ringfill's
 * median over the peer's median, inverted for lower-is-better metrics, so a
 * ratio above 1 always means ringfill did better. */
typedef struct {
	char suite[16];
	char case_name[BENCH_NAME_BYTES_MAX];
	char metric[48];
	char unit[16];
	/* What value measures when it is not ringfill ("curl" for e2e's
	 * curl_download_s, whose peer is the insert loop); "" for ringfill. */
	char subject[BENCH_PEER_NAME_BYTES_MAX];
	bool higher_better;
	uint32_t n_runs;
	double runs[BENCH_RUNS_MAX];
	double value, min, max;
	bool has_peer;
	char peer_name[BENCH_PEER_NAME_BYTES_MAX];
	uint32_t n_peer_runs;
	double peer_runs[BENCH_RUNS_MAX];
	double peer_value, peer_min, peer_max;
	double ratio; /* valid when has_peer */
} bench_record_t;

/* One timed run of a case. It returns 0 and sets *value to the run's rate
 * (in the record's unit), or -errno after printing why to stderr. */
typedef int (*bench_run_fn)(void *arg, double *value);

/* Runs fn once as a warm-up and then opts->runs times, shows progress on
 * stderr, and adds a record (peer fields empty). Returns the record, or NULL
 * when a run failed or the record table is full. */
bench_record_t *bench_measure(const bench_opts_t *opts, const char *suite,
                              const char *case_name, const char *metric, const char *unit,
                              bench_run_fn fn, void *arg);

/* Adds a record from runs measured (or derived from measured runs) elsewhere;
 * NULL when the record table is full. */
bench_record_t *bench_add(const char *suite, const char *case_name, const char *metric,
                          const char *unit, const double *runs, uint32_t n);

/* Attaches a peer's runs (warm-up already dropped) to a record and computes
 * its median, min, max and the ratio. */
void bench_set_peer(bench_record_t *r, const char *peer_name, const double *runs, uint32_t n);

/* A line of progress on stderr (overwritten in place on a terminal). */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

double bench_now_s(void); /* CLOCK_MONOTONIC seconds */
double bench_median(const double *v, uint32_t n);

/* The suites. Each returns 0, -ENOTSUP when it had nothing to measure, or
 * another -errno after printing the reason. */
int bench_suite_parse(const bench_opts_t *opts);
int bench_suite_ring(const bench_opts_t *opts);
int bench_suite_store(const bench_opts_t *opts);
int bench_suite_net(const bench_opts_t *opts); /* both run bench/netbench.py */
int bench_suite_e2e(const bench_opts_t *opts);

/* Adds (or replaces) a line of the environment, printed after the run and
 * written into the JSON "env" object, e.g. the TLS cipher a suite saw. */
void bench_env_set(const char *key, const char *value);

/* A case this run could not measure here (a stage-1 kernel the CPU or
 * valgrind lacks): the regression gate names it and does not count it as
 * missing from the result. */
void bench_case_skipped(const char *suite, const char *case_name, const char *metric,
                        const char *why);

/* Reads and parses a result file (at most 64 MiB): 0 with *doc valid until
 * the caller frees *src (free) and *p (json_parser_free); or -errno after
 * naming the file and why on stderr (-EINVAL: not JSON), nothing to free. */
int bench_json_load(const char *path, char **src, json_parser_t **p, json_doc_t *doc);

/* The string (copied, NUL-terminated) or number at key k of object obj:
 * 0, or -EINVAL when it is missing, of another type, or does not fit. */
int bench_json_str(const json_doc_t *d, uint32_t obj, const char *k, char *out, size_t cap);
int bench_json_num(const json_doc_t *d, uint32_t obj, const char *k, double *out);

/* --report (bench/report.c): draws the --json results at paths (1 to 256,
 * any order: sorted by their env.date) as one self-contained HTML page at
 * out_path, replaced only when complete. 0; -EINVAL when a result file is
 * unreadable or malformed (said on stderr, naming it); another -errno when
 * the page could not be written (said too). */
int bench_report(const char *out_path, const char *const *paths, uint32_t n);

/* How the parse suite found its files, for the environment record. */
const char *bench_parse_corpus_desc(void);

/* One of the parse suite's generated documents ("twitter-like.json",
 * "canada-like.json", "events.ndjson"), made from its fixed seed into a
 * malloc'd buffer the caller frees. 0, -ENOENT for another name, or -errno. */
int bench_parse_generate(const char *name, char **data, size_t *len);

/* --instructions (bench/suite_instr.c): instruction counts of the parse and
 * ring hot paths under callgrind, one child process per case. suites: "parse"
 * and/or "ring". Adds one "instructions" record per case; returns 0 or -errno
 * after printing why. */
int bench_instructions(const bench_opts_t *opts, const char *const *suites, uint32_t n);

/* The hidden `ringfill bench --instructions-child CASE ISA` that
 * bench_instructions runs under valgrind: one warm-up pass and one measured
 * pass of CASE. Returns the process's exit status. */
int bench_instr_child(int argc, char **argv);

/* JSON visitors of the parse suite (suite_parse.c), shared with the
 * instruction counts (suite_instr.c): each adds to the uint64_t at ctx. */
int bench_count_doc(void *ctx, const json_doc_t *doc, size_t line_offset); /* +1 per document */
int bench_add_id(void *ctx, const json_doc_t *d, uint32_t node);   /* + the integer */
int bench_add_name(void *ctx, const json_doc_t *d, uint32_t node); /* + the string's bytes */

#endif
