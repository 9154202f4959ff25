/* bench/suite_net.c: the `net` and `e2e` suites. The work (nginx over TLS on
 * loopback, generated files, running ringfill and its peers, checking every
 * byte and row) lives in bench/netbench.py; this file starts it with python3
 * through posix_spawn (no shell), reads its stdout, one JSON object per line,
 * and turns those lines into progress, environment lines and records for the
 * harness (bench/bench.c). docs/benchmarks.md describes both suites. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/harness.h"
#include "parse/json.h"

extern char **environ;

#define NETBENCH_LINE_BYTES_MAX (1u << 20) /* a record with 101 runs fits many times */
#define NETBENCH_ARGS_MAX 56u /* 20 fixed at most, and 16 --case GLOB */

#ifndef RF_BENCH_SRC_DIR
#error "RF_BENCH_SRC_DIR (the bench/ source directory) is set by bench/meson.build"
#endif
#ifndef RF_BENCH_EXEC
#error "RF_BENCH_EXEC (the rf_bench_exec launcher) is set by bench/meson.build"
#endif
#ifndef RF_PEER_INSERT_LOOP
#error "RF_PEER_INSERT_LOOP (the e2e suite's C insert loop) is set by bench/meson.build"
#endif

/* python3 without a shell or a PATH shim (pyenv's python3 is a shell script):
 * $RINGFILL_PYTHON, then /usr/bin/python3, then the first python3 in PATH. */
static int find_python(char *out, size_t cap)
{
	const char *env = getenv("RINGFILL_PYTHON");
	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return access(out, X_OK) == 0 ? 0 : -ENOENT;
	}
	snprintf(out, cap, "/usr/bin/python3");
	if (access(out, X_OK) == 0)
		return 0;
	const char *path = getenv("PATH");
	while (path && *path) {
		size_t n = strcspn(path, ":");
		snprintf(out, cap, "%.*s/python3", (int)n, path);
		if (n && access(out, X_OK) == 0)
			return 0;
		path += n + (path[n] == ':');
	}
	return -ENOENT;
}

static int str_of(const json_doc_t *d, uint32_t obj, const char *k, char *out, size_t cap)
{
	uint32_t n = json_object_get(d, obj, k, strlen(k));
	if (n == JSON_NONE || json_type(d, n) != JSON_STRING)
		return -EINVAL;
	size_t len = json_string_get(d, n, out, cap - 1);
	if (len >= cap)
		return -EINVAL;
	out[len] = '\0';
	return 0;
}

/* Like str_of, but a longer string is cut to fit (messages for people). */
static int text_of(const json_doc_t *d, uint32_t obj, const char *k, char *out, size_t cap)
{
	uint32_t n = json_object_get(d, obj, k, strlen(k));
	if (n == JSON_NONE || json_type(d, n) != JSON_STRING)
		return -EINVAL;
	size_t len = json_string_get(d, n, out, cap - 1);
	out[len < cap - 1 ? len : cap - 1] = '\0';
	return 0;
}

/* The numbers of array node arr into v (at most BENCH_RUNS_MAX); their count. */
static uint32_t runs_of(const json_doc_t *d, uint32_t arr, double *v)
{
	uint32_t n = 0;
	if (arr == JSON_NONE || json_type(d, arr) != JSON_ARRAY)
		return 0;
	for (uint32_t i = arr + 1; i < d->nodes[arr].next && n < BENCH_RUNS_MAX;
	     i = d->nodes[i].next)
		if (json_type(d, i) != JSON_NUMBER || json_number_double(d, i, &v[n++]) != 0)
			return 0;
	return n;
}

static int take_record(const json_doc_t *d, uint32_t rec)
{
	char suite[16], cname[BENCH_NAME_BYTES_MAX], metric[48], unit[16], dir[16];
	char peer_name[BENCH_PEER_NAME_BYTES_MAX];
	double runs[BENCH_RUNS_MAX], peer_runs[BENCH_RUNS_MAX];
	if (json_type(d, rec) != JSON_OBJECT || str_of(d, rec, "suite", suite, sizeof(suite)) ||
	    str_of(d, rec, "case", cname, sizeof(cname)) ||
	    str_of(d, rec, "metric", metric, sizeof(metric)) ||
	    str_of(d, rec, "unit", unit, sizeof(unit)) ||
	    str_of(d, rec, "direction", dir, sizeof(dir)))
		return -EINVAL;
	uint32_t n = runs_of(d, json_object_get(d, rec, "runs", 4), runs);
	if (n == 0)
		return -EINVAL;
	bench_record_t *r = bench_add(suite, cname, metric, unit, runs, n);
	if (!r)
		return -ENOSPC;
	r->higher_better = strcmp(dir, "lower") != 0;
	if (json_object_get(d, rec, "subject", 7) != JSON_NONE &&
	    str_of(d, rec, "subject", r->subject, sizeof(r->subject)) != 0)
		return -EINVAL;
	uint32_t peer = json_object_get(d, rec, "peer", 4);
	if (peer != JSON_NONE && json_type(d, peer) == JSON_OBJECT &&
	    str_of(d, peer, "name", peer_name, sizeof(peer_name)) == 0) {
		uint32_t pn = runs_of(d, json_object_get(d, peer, "runs", 4), peer_runs);
		if (pn)
			bench_set_peer(r, peer_name, peer_runs, pn);
	}
	return 0;
}

/* One line from netbench.py. 0, 1 for an error line (already printed), or
 * -EINVAL for a line that is not the protocol. */
static int take_line(json_parser_t *p, const char *line, size_t len)
{
	json_doc_t d;
	json_error_t e = {0};
	char text[8192], key[32];
	if (json_parse(p, line, len, &d, &e) != 0 || json_type(&d, 0) != JSON_OBJECT)
		return -EINVAL;
	if (text_of(&d, 0, "progress", text, sizeof(text)) == 0) {
		bench_progress("%s", text);
		return 0;
	}
	if (text_of(&d, 0, "error", text, sizeof(text)) == 0) {
		fprintf(stderr, "\nringfill bench: %s\n", text);
		return 1;
	}
	uint32_t n = json_object_get(&d, 0, "record", 6);
	if (n != JSON_NONE)
		return take_record(&d, n);
	n = json_object_get(&d, 0, "env", 3);
	if (n == JSON_NONE || json_type(&d, n) != JSON_OBJECT)
		return -EINVAL;
	for (uint32_t k = n + 1; k < d.nodes[n].next; k = d.nodes[k + 1].next) {
		size_t kl = json_string_get(&d, k, key, sizeof(key) - 1);
		key[kl < sizeof(key) - 1 ? kl : sizeof(key) - 1] = '\0';
		if (json_type(&d, k + 1) == JSON_STRING) {
			size_t tl = json_string_get(&d, k + 1, text, sizeof(text) - 1);
			text[tl < sizeof(text) - 1 ? tl : sizeof(text) - 1] = '\0';
			bench_env_set(key, text);
		}
	}
	return 0;
}

/* Reads the protocol from fd until EOF. 0, or -EIO when the suite reported an
 * error or wrote something that is not the protocol. */
static int read_lines(int fd)
{
	FILE *f = fdopen(fd, "r");
	json_parser_t *p = json_parser_new(0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = f && p ? 0 : -ENOMEM;
	while (f && (len = getline(&line, &cap, f)) > 0) {
		if ((size_t)len > NETBENCH_LINE_BYTES_MAX)
			len = 0; /* counted as not the protocol below */
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		int r = len ? take_line(p, line, (size_t)len) : -EINVAL;
		if (r == -EINVAL)
			fprintf(stderr, "ringfill bench: netbench.py wrote an unexpected line: %.200s\n",
			        line);
		if (r != 0 && rc == 0)
			rc = r == -ENOSPC ? -ENOSPC : -EIO;
	}
	free(line);
	json_parser_free(p);
	if (f)
		fclose(f);
	else
		close(fd);
	return rc;
}

static int run_netbench(const bench_opts_t *opts, const char *suite)
{
	char python[PATH_MAX], exe[PATH_MAX], runs[16], pages[16], page_mb[32];
	if (find_python(python, sizeof(python)) != 0) {
		fprintf(stderr, "ringfill bench %s: python3 not found (set RINGFILL_PYTHON);"
		                " nothing was measured\n", suite);
		return -ENOENT;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "ringfill bench %s: /proc/self/exe: %s\n", suite, strerror(errno));
		return -errno;
	}
	exe[n] = '\0';
	snprintf(runs, sizeof(runs), "%u", opts->runs);
	const char *argv[NETBENCH_ARGS_MAX] = {
		python, RF_BENCH_SRC_DIR "/netbench.py", suite,
		"--ringfill", exe,
		"--exec-helper", RF_BENCH_EXEC,
		"--insert-loop", RF_PEER_INSERT_LOOP,
		"--gen-dataset", RF_BENCH_SRC_DIR "/../scripts/gen_dataset.py",
		"--runs", runs,
		"--tmpdir", opts->tmpdir};
	size_t argc = 15;
	if (opts->quick)
		argv[argc++] = "--quick";
	if (opts->ndjson_pages) {
		snprintf(pages, sizeof(pages), "%u", opts->ndjson_pages);
		argv[argc++] = "--ndjson-pages";
		argv[argc++] = pages;
	}
	for (uint32_t i = 0; i < opts->n_cases && argc + 2 < NETBENCH_ARGS_MAX; i++) {
		argv[argc++] = "--case";
		argv[argc++] = opts->cases[i];
	}
	if (opts->ndjson_page_mb > 0) {
		snprintf(page_mb, sizeof(page_mb), "%g", opts->ndjson_page_mb);
		argv[argc++] = "--ndjson-page-mb";
		argv[argc++] = page_mb;
	}
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -errno;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	pid_t pid;
	int rc = -posix_spawn(&pid, python, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		fprintf(stderr, "ringfill bench %s: %s: %s\n", suite, python, strerror(-rc));
		return rc;
	}
	rc = read_lines(pipefd[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		fprintf(stderr, "ringfill bench %s: netbench.py exited with status %d\n", suite,
		        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		rc = -EIO;
	}
	return rc;
}

int bench_suite_net(const bench_opts_t *opts)
{
	return run_netbench(opts, "net");
}

int bench_suite_e2e(const bench_opts_t *opts)
{
	return run_netbench(opts, "e2e");
}
