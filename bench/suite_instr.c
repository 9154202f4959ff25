/* bench/suite_instr.c: `ringfill bench --instructions [parse] [ring]`
 * (issue 7, item 4): instructions executed by the parse and ring hot paths on
 * fixed inputs, counted by valgrind's callgrind, so a CI gate can compare
 * runs without timing noise (docs/benchmarks.md, "Instruction counts").
 *
 * Each case runs in its own child process, started with posix_spawn (no
 * shell): valgrind --tool=callgrind running this same binary as the hidden
 * `ringfill bench --instructions-child CASE ISA`, with RINGFILL_ISA=ISA in
 * its environment. The child generates its input from a fixed seed (the
 * parse suite's documents) or sets up a ring, runs one warm-up pass, then one
 * pass inside rf_bench_instr_measured; callgrind collects only inside that
 * function (--toggle-collect), so start-up, input generation and the warm-up
 * are not counted. The parent reads the "totals:" line of callgrind's output
 * file. Counts depend on the binary: compiler, its version and flags, the
 * build type, and the libc functions the hot path calls. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/harness.h"
#include "parse/json.h"
#include "parse/json_internal.h"
#include "store/ring.h"

#define INSTR_MEASURED_FN "rf_bench_instr_measured" /* callgrind's --toggle-collect */
#define INSTR_RING_ITEMS 1000000u                    /* items per ring pass */
#define INSTR_RING_CAPACITY 1024u                    /* as the ring suite */
#define INSTR_RING_BATCH 64u                         /* items per doorbell and pop_many */
#define INSTR_JOBS_MAX 4u                            /* callgrind children at once */
#define INSTR_CASES_MAX 32u
#define INSTR_EXIT_NO_KERNEL 77 /* child: the kernel asked for is not usable here */
#define INSTR_LOG_SHOWN_BYTES 4096u
#define INSTR_VERSION_BYTES 128u

extern char **environ;

typedef enum { W_PARSE, W_NDJSON, W_IDS, W_NAMES, W_RING_SINGLE, W_RING_BATCHED } work_kind_t;

typedef struct {
	const char *suite;
	const char *name; /* the record's case is NAME/ISA for parse, NAME for ring */
	const char *doc;  /* generated document (bench_parse_generate), or NULL */
	const char *path; /* JSONPath for W_IDS and W_NAMES */
	work_kind_t kind;
	bool every_kernel; /* a case per usable stage-1 kernel; else the best one */
} instr_case_t;

/* Full validation of each generated document with every kernel; the
 * selectors with the best kernel (their walk does not depend on it); the
 * ring's two hand-off patterns of the ring suite, in one thread. */
static const instr_case_t cases[] = {
	{"parse", "twitter-like.json/full", "twitter-like.json", NULL, W_PARSE, true},
	{"parse", "canada-like.json/full", "canada-like.json", NULL, W_PARSE, true},
	{"parse", "events.ndjson/full", "events.ndjson", NULL, W_NDJSON, true},
	{"parse", "twitter-like.json/statuses_id", "twitter-like.json", "$.statuses[*].id", W_IDS,
	 false},
	{"parse", "twitter-like.json/screen_name", "twitter-like.json",
	 "$.statuses[*].user.screen_name", W_NAMES, false},
	{"ring", "single", NULL, NULL, W_RING_SINGLE, false},
	{"ring", "batched", NULL, NULL, W_RING_BATCHED, false},
};
#define N_CASES (sizeof(cases) / sizeof(*cases))
#define RING_ISA "scalar" /* ring cases parse nothing; the variable is pinned anyway */

/* ---- the child: one case, counted ------------------------------------------ */

typedef struct {
	work_kind_t kind;
	json_parser_t *parser;
	json_path_t *sel;
	const char *data;
	size_t len;
	ring_t *ring;
	doorbell_t *bell;
	uint64_t check; /* documents, id sum, name bytes, or item sum of one pass */
} instr_work_t;

/* One item at a time, as the ring suite's `single`: push, ring, pop. */
static int ring_single(instr_work_t *w)
{
	for (uint64_t i = 1; i <= INSTR_RING_ITEMS; i++) {
		if (!ring_push(w->ring, (void *)(uintptr_t)i))
			return -EIO;
		doorbell_ring(w->bell);
		w->check += (uintptr_t)ring_pop(w->ring);
	}
	return 0;
}

/* As `batched`: 64 items, one ring_push_many, one doorbell, one ring_pop_many. */
static int ring_batched(instr_work_t *w)
{
	void *buf[INSTR_RING_BATCH];
	for (uint64_t i = 1; i <= INSTR_RING_ITEMS;) {
		uint32_t k = 0;
		for (; k < INSTR_RING_BATCH && i <= INSTR_RING_ITEMS; k++, i++)
			buf[k] = (void *)(uintptr_t)i;
		if (ring_push_many(w->ring, buf, k) != k)
			return -EIO;
		doorbell_ring(w->bell);
		if (ring_pop_many(w->ring, buf, INSTR_RING_BATCH) != k)
			return -EIO;
		for (uint32_t j = 0; j < k; j++)
			w->check += (uintptr_t)buf[j];
	}
	return 0;
}

static int instr_work(instr_work_t *w)
{
	json_doc_t doc;
	json_error_t err;
	w->check = 0;
	switch (w->kind) {
	case W_PARSE:
		w->check = 1;
		return json_parse(w->parser, w->data, w->len, &doc, &err) == 0 ? 0 : -EINVAL;
	case W_NDJSON:
		return json_ndjson_each(w->parser, w->data, w->len, bench_count_doc, &w->check, &err) == 0
		               ? 0
		               : -EINVAL;
	case W_IDS:
	case W_NAMES:
		if (json_parse(w->parser, w->data, w->len, &doc, &err) != 0)
			return -EINVAL;
		return json_path_each(w->sel, &doc, 0, w->kind == W_IDS ? bench_add_id : bench_add_name,
		                      &w->check) == 0
		               ? 0
		               : -EINVAL;
	case W_RING_SINGLE:
		return ring_single(w);
	case W_RING_BATCHED:
		return ring_batched(w);
	}
	return -EINVAL;
}

/* Callgrind counts what runs inside this function (and what it calls) and
 * nothing else. It is global, called only through a volatile pointer so the
 * compiler keeps it, under this name, out of line. */
int rf_bench_instr_measured(instr_work_t *w);
int rf_bench_instr_measured(instr_work_t *w)
{
	return instr_work(w);
}

static const instr_case_t *case_find(const char *name)
{
	for (size_t i = 0; i < N_CASES; i++)
		if (strcmp(cases[i].name, name) == 0)
			return &cases[i];
	return NULL;
}

static int child_run(const instr_case_t *c)
{
	static ring_t ring; /* the ring's indices want their cache-line alignment */
	static doorbell_t bell;
	int (*volatile warm_up)(instr_work_t *) = instr_work;
	int (*volatile measured)(instr_work_t *) = rf_bench_instr_measured;
	instr_work_t w = {.kind = c->kind, .ring = &ring, .bell = &bell};
	char *data = NULL;
	json_error_t e;
	int rc = 0;
	if (c->doc) {
		rc = bench_parse_generate(c->doc, &data, &w.len);
		w.data = data;
		if (rc == 0 && !(w.parser = json_parser_new(0)))
			rc = -ENOMEM;
		if (rc == 0 && c->path && json_path_compile(c->path, &w.sel, &e) != 0)
			rc = -EINVAL;
	} else {
		rc = ring_init(&ring, INSTR_RING_CAPACITY);
		doorbell_init(&bell);
	}
	/* The warm-up grows the parser's buffers and runs one-time set-up, so
	 * the measured pass does exactly the steady-state work. */
	uint64_t warm_check = 0;
	if (rc == 0 && (rc = warm_up(&w)) == 0) {
		warm_check = w.check;
		rc = measured(&w);
	}
	uint64_t want = c->doc ? warm_check : (uint64_t)INSTR_RING_ITEMS * (INSTR_RING_ITEMS + 1) / 2;
	if (rc == 0 && (w.check != want || w.check == 0)) {
		fprintf(stderr, "ringfill bench: %s: measured pass checked %llu, expected %llu\n",
		        c->name, (unsigned long long)w.check, (unsigned long long)want);
		rc = -EIO;
	} else if (rc != 0) {
		fprintf(stderr, "ringfill bench: %s: %s\n", c->name, strerror(-rc));
	}
	if (c->doc) {
		json_path_free(w.sel);
		json_parser_free(w.parser);
		free(data);
	} else if (ring.slots) {
		ring_destroy(&ring);
	}
	return rc == 0 ? 0 : 3;
}

int bench_instr_child(int argc, char **argv)
{
	const instr_case_t *c = argc == 2 ? case_find(argv[0]) : NULL;
	if (!c) {
		fprintf(stderr, "ringfill bench: --instructions-child CASE ISA: no such case\n");
		return 2;
	}
	/* RINGFILL_ISA was set by the parent; a kernel the (virtual) CPU lacks
	 * makes the dispatcher fall back, which would count another kernel. */
	if (strcmp(json_stage1_name(), argv[1]) != 0) {
		fprintf(stderr, "ringfill bench: stage-1 kernel %s is not usable here (%s is)\n",
		        argv[1], json_stage1_name());
		return INSTR_EXIT_NO_KERNEL;
	}
	return child_run(c);
}

/* ---- the parent: one callgrind child per case -------------------------------- */

typedef struct {
	const instr_case_t *c;
	char isa[16];
	char record_case[BENCH_NAME_BYTES_MAX];
	char out[PATH_MAX], log[PATH_MAX];
	pid_t pid;
	int status;
} instr_job_t;

static instr_job_t jobs[INSTR_CASES_MAX];

/* $RINGFILL_VALGRIND, else the first valgrind in PATH; NULL when none. */
static const char *valgrind_find(char *buf, size_t cap)
{
	const char *env = getenv("RINGFILL_VALGRIND");
	if (env && *env)
		return access(env, X_OK) == 0 ? env : NULL;
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		if (n > 0 && (size_t)snprintf(buf, cap, "%.*s/valgrind", (int)n, path) < cap &&
		    access(buf, X_OK) == 0)
			return buf;
		path += n + (path[n] == ':');
	}
	return NULL;
}

/* The environment with RINGFILL_ISA=isa and without VALGRIND_OPTS (which
 * would change what callgrind does). Freed by the caller (the array only). */
static char **env_for(const char *isa_assign)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = calloc(n + 2, sizeof(*envp));
	if (!envp)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "RINGFILL_ISA=", 13) != 0 &&
		    strncmp(environ[i], "VALGRIND_OPTS=", 14) != 0)
			envp[k++] = environ[i];
	envp[k] = (char *)isa_assign;
	return envp;
}

static int job_spawn(instr_job_t *j, const char *valgrind, const char *self)
{
	char out_arg[PATH_MAX + 32], isa_assign[32];
	snprintf(out_arg, sizeof(out_arg), "--callgrind-out-file=%s", j->out);
	snprintf(isa_assign, sizeof(isa_assign), "RINGFILL_ISA=%s", j->isa);
	char *argv[] = {(char *)valgrind,
	                "--tool=callgrind",
	                "--quiet",
	                out_arg,
	                "--toggle-collect=" INSTR_MEASURED_FN,
	                "--collect-atstart=no",
	                (char *)self,
	                "bench",
	                "--instructions-child",
	                (char *)j->c->name,
	                j->isa,
	                NULL};
	char **envp = env_for(isa_assign);
	if (!envp)
		return -ENOMEM;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, j->log, O_WRONLY | O_CREAT | O_TRUNC,
	                                 0600);
	posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
	int rc = posix_spawn(&j->pid, valgrind, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	if (rc != 0) {
		fprintf(stderr, "ringfill bench: %s: %s\n", valgrind, strerror(rc));
		return -rc;
	}
	return 0;
}

/* The count on callgrind's "totals:" line (or "summary:"); 0 when absent. */
static unsigned long long count_read(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	unsigned long long totals = 0, summary = 0, v;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "totals: %llu", &v) == 1)
			totals = v;
		else if (sscanf(line, "summary: %llu", &v) == 1)
			summary = v;
	}
	if (f)
		fclose(f);
	return totals ? totals : summary;
}

static void log_show(const char *path)
{
	char buf[INSTR_LOG_SHOWN_BYTES];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	fprintf(stderr, "%s%s", buf, n && buf[n - 1] != '\n' ? "\n" : "");
}

/* valgrind --version, e.g. "valgrind-3.19.0"; "valgrind" when it says nothing. */
static void valgrind_version(const char *valgrind, char *out, size_t cap)
{
	snprintf(out, cap, "valgrind");
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return;
	char *argv[] = {(char *)valgrind, "--version", NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	pid_t pid;
	int rc = posix_spawn(&pid, valgrind, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	char buf[INSTR_VERSION_BYTES];
	size_t len = 0;
	ssize_t n;
	while (rc == 0 && len < sizeof(buf) - 1 &&
	       (n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (rc == 0)
		waitpid(pid, NULL, 0);
	if (len > 0)
		snprintf(out, cap, "%s", buf);
}

static bool suite_wanted(const char *suite, const char *const *suites, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(suites[i], suite) == 0)
			return true;
	return n == 0;
}

/* The cases of c that a CPU with other kernels (an AVX2 machine, where
 * baselines are made) would record and this one cannot: named to the gate
 * as not measurable here rather than missing. */
static void plan_skips(const instr_case_t *c, const json_stage1_kernel_t *k, size_t n_k)
{
	static const char *const all[] = {"avx512", "avx2", "sse42", "scalar"};
	char name[BENCH_NAME_BYTES_MAX];
	for (size_t a = 0; a < sizeof(all) / sizeof(*all); a++) {
		bool here = false;
		for (size_t ki = 0; ki < n_k && !here; ki++)
			here = strcmp(k[ki].name, all[a]) == 0;
		/* A one-kernel case is only ever named after avx2. */
		if (here || (!c->every_kernel && strcmp(all[a], "avx2") != 0))
			continue;
		snprintf(name, sizeof(name), "%s/%s", c->name, all[a]);
		bench_case_skipped(c->suite, name, "instructions", "this CPU has no such kernel");
	}
}

/* Every case of the chosen suites, with the kernels it runs on. */
static uint32_t jobs_plan(const bench_opts_t *opts, const char *const *suites, uint32_t n)
{
	const json_stage1_kernel_t *k;
	size_t n_k = json_stage1_kernels(&k);
	uint32_t n_jobs = 0;
	for (size_t i = 0; i < N_CASES; i++) {
		const instr_case_t *c = &cases[i];
		if (!suite_wanted(c->suite, suites, n))
			continue;
		if (c->kind < W_RING_SINGLE)
			plan_skips(c, k, n_k);
		size_t kernels = c->kind >= W_RING_SINGLE ? 1 : c->every_kernel ? n_k : 1;
		/* A one-kernel case takes the best kernel below avx512: valgrind
		 * has no AVX-512, and the case keeps the name (and count) it has
		 * in baselines made on AVX2 machines. */
		size_t first = !c->every_kernel && n_k > 1 && strcmp(k[0].name, "avx512") == 0;
		for (size_t ki = first; ki < first + kernels && n_jobs < INSTR_CASES_MAX; ki++) {
			instr_job_t *j = &jobs[n_jobs++];
			memset(j, 0, sizeof(*j));
			j->c = c;
			bool ring = c->kind >= W_RING_SINGLE;
			snprintf(j->isa, sizeof(j->isa), "%s", ring ? RING_ISA : k[ki].name);
			if (ring)
				snprintf(j->record_case, sizeof(j->record_case), "%s", c->name);
			else
				snprintf(j->record_case, sizeof(j->record_case), "%s/%s", c->name, j->isa);
			snprintf(j->out, sizeof(j->out), "%s/callgrind.%u.out", opts->tmpdir, n_jobs);
			snprintf(j->log, sizeof(j->log), "%s/callgrind.%u.log", opts->tmpdir, n_jobs);
			j->status = -1;
		}
	}
	return n_jobs;
}

/* Runs the jobs, up to `parallel` at once; 0, or -errno when one could not
 * be started (the others are still waited for). */
static int jobs_run(uint32_t n_jobs, uint32_t parallel, const char *valgrind, const char *self)
{
	uint32_t next = 0, running = 0, finished = 0;
	int rc = 0;
	while (finished < next || (rc == 0 && next < n_jobs)) {
		while (rc == 0 && running < parallel && next < n_jobs) {
			instr_job_t *j = &jobs[next];
			bench_progress("%s %s instructions: callgrind (%u/%u)", j->c->suite,
			               j->record_case, next + 1, n_jobs);
			if ((rc = job_spawn(j, valgrind, self)) != 0)
				break;
			next++;
			running++;
		}
		if (running == 0)
			break;
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			rc = rc ? rc : -errno;
			break;
		}
		for (uint32_t i = 0; i < next; i++)
			if (jobs[i].pid == pid && jobs[i].status == -1) {
				jobs[i].status = status;
				running--;
				finished++;
			}
	}
	return rc;
}

int bench_instructions(const bench_opts_t *opts, const char *const *suites, uint32_t n)
{
	char vg_buf[PATH_MAX], self[PATH_MAX], version[INSTR_VERSION_BYTES];
	const char *valgrind = valgrind_find(vg_buf, sizeof(vg_buf));
	if (!valgrind) {
		fprintf(stderr, "ringfill bench: --instructions needs valgrind (callgrind): not in "
		                "PATH nor $RINGFILL_VALGRIND (apt-get install valgrind)\n");
		return -ENOENT;
	}
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return -errno;
	self[len] = '\0';
	valgrind_version(valgrind, version, sizeof(version));
	char desc[256];
	snprintf(desc, sizeof(desc), "%s --tool=callgrind, instructions of one pass after a "
	         "warm-up pass", version);
	bench_env_set("instructions", desc);
	uint32_t n_jobs = jobs_plan(opts, suites, n);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t parallel = cpus < 1 ? 1 : cpus > (long)INSTR_JOBS_MAX ? INSTR_JOBS_MAX : (uint32_t)cpus;
	int rc = jobs_run(n_jobs, parallel, valgrind, self);
	for (uint32_t i = 0; rc == 0 && i < n_jobs; i++) {
		instr_job_t *j = &jobs[i];
		int st = j->status;
		if (WIFEXITED(st) && WEXITSTATUS(st) == INSTR_EXIT_NO_KERNEL) {
			fprintf(stderr, "ringfill bench: %s %s skipped: kernel %s does not run under "
			                "valgrind here\n", j->c->suite, j->record_case, j->isa);
			bench_case_skipped(j->c->suite, j->record_case, "instructions",
			                   "the kernel does not run under valgrind here");
			continue;
		}
		unsigned long long count = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || (count = count_read(j->out)) == 0) {
			fprintf(stderr, "ringfill bench: %s %s: callgrind run failed (%s); its output:\n",
			        j->c->suite, j->record_case,
			        !WIFEXITED(st)           ? "killed by a signal"
			        : WEXITSTATUS(st) != 0   ? "non-zero exit"
			                                 : "no count of " INSTR_MEASURED_FN
			                                   " (a stripped binary?)");
			log_show(j->log);
			rc = -EPROTO;
			break;
		}
		double v = (double)count;
		bench_record_t *r = bench_add(j->c->suite, j->record_case, "instructions", "instr", &v, 1);
		if (!r) {
			rc = -EIO;
			break;
		}
		r->higher_better = false;
	}
	return rc;
}
