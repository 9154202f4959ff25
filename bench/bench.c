/* bench/bench.c: `ringfill bench` (DESIGN §7): the command line, the timing
 * harness the suites (bench/suite_*.c) call, the environment record, the
 * table on stdout, the --json result file, and the --baseline regression gate.
 * Called from engine/main.c; docs/benchmarks.md describes the output. */
#include "bench/bench.h"

#include <errno.h>
#include <fnmatch.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <sqlite3.h>

#include "bench/harness.h"
#include "parse/json.h"
#include "rf_bench_vcs.h"
#include "rf_config.h"

#define EXIT_OK 0
#define EXIT_REGRESSED 1
#define EXIT_USAGE 2
#define EXIT_FATAL 3

#define BENCH_SCHEMA "ringfill-bench/1"
#define BENCH_SUITES_MAX 8u
#define BENCH_CASES_MAX 16u /* --case options */
#define BENCH_RESULT_BYTES_MAX (64u << 20) /* a result file bigger than this is not ours */
#define BENCH_ENV_BYTES_MAX 256u
#define BENCH_NFTW_FDS 16
#define BENCH_ENV_EXTRA_MAX 8u /* environment lines a suite may add (bench_env_set) */
#define BENCH_COMPILER_BYTES_MAX 128u

/* What built this binary: instruction counts depend on it. */
#define BENCH_STR_(x) #x
#define BENCH_STR(x) BENCH_STR_(x)
#if defined(__clang__)
#define BENCH_COMPILER                                                                         \
	"clang " BENCH_STR(__clang_major__) "." BENCH_STR(__clang_minor__) "." BENCH_STR(         \
	        __clang_patchlevel__)
#elif defined(__GNUC__)
#define BENCH_COMPILER "gcc " __VERSION__
#else
#define BENCH_COMPILER "unknown"
#endif
#ifndef RF_BENCH_BUILD
#define RF_BENCH_BUILD "unknown"
#endif

static bench_record_t records[BENCH_RECORDS_MAX];
static uint32_t n_records;
static int progress_tty = -1;

/* Environment facts only a suite learns (the TLS cipher nginx saw), printed
 * after the run and written into the JSON "env" object. */
static struct {
	char key[32], value[BENCH_ENV_BYTES_MAX * 2];
} env_extra[BENCH_ENV_EXTRA_MAX];
static uint32_t n_env_extra;

static const char usage_text[] =
	"usage: ringfill bench [SUITE...] [--runs N] [--quick] [--corpus DIR] [--case GLOB]\n"
	"                      [--json FILE]\n"
	"                      [--baseline FILE --max-regress PCT]\n"
	"       ringfill bench --instructions [parse] [ring] [--json FILE]\n"
	"                      [--baseline FILE --max-regress PCT]\n"
	"       ringfill bench --compare RESULT --baseline FILE --max-regress PCT\n"
	"       ringfill bench --report OUT.html RESULT.json...\n"
	"suites: parse ring store net e2e (default: parse ring store); net and e2e start\n"
	"        nginx over TLS on loopback and take minutes (docs/benchmarks.md)\n"
	"  --runs N          timed runs per case after one warm-up (default 5, at most 101)\n"
	"  --quick           small sizes, for smoke tests; not for numbers you keep\n"
	"  --corpus DIR      parse suite: the files of DIR instead of generated documents\n"
	"  --ndjson-pages N, --ndjson-page-mb MB\n"
	"                    e2e suite: the NDJSON workload's size (default 3 pages of 20 MB;\n"
	"                    --quick: 2 of 2 MB), at most 1000 pages of 1000 MB\n"
	"  --case GLOB       run only the cases whose name matches GLOB ('*', '?', '[...]',\n"
	"                    '[!...]'; repeatable, up to 16): e.g. --case 'graph*' in e2e,\n"
	"                    --case 'corpus/twitter*' in parse; a gate ignores the others\n"
	"  --json FILE       write every result as JSON (schema in docs/benchmarks.md)\n"
	"  --baseline FILE   compare with a saved --json result; exit 1 naming every case\n"
	"  --max-regress PCT   that got worse by more than PCT percent (ratios to peers\n"
	"                    are compared where both results have one)\n"
	"  --compare RESULT  gate a saved result instead of running the suites\n"
	"  --report OUT.html after a run: draw its result as one self-contained HTML page\n"
	"                    (a chart per suite, ringfill against its peers); with result\n"
	"                    files instead of suites: draw those, and a chart over time per\n"
	"                    case and metric when there are several\n"
	"  --instructions    count instructions (valgrind's callgrind) of the parse and ring\n"
	"                    hot paths on fixed inputs instead of timing them; deterministic\n"
	"                    for one binary, so CI can gate on it (docs/benchmarks.md)\n";

/* ---- timing and progress ------------------------------------------------ */

double bench_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(const double *v, uint32_t n)
{
	double s[BENCH_RUNS_MAX];
	if (n == 0)
		return 0;
	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void min_max(const double *v, uint32_t n, double *lo, double *hi)
{
	*lo = *hi = n ? v[0] : 0;
	for (uint32_t i = 1; i < n; i++) {
		*lo = v[i] < *lo ? v[i] : *lo;
		*hi = v[i] > *hi ? v[i] : *hi;
	}
}

/* On a terminal each message replaces the previous one; in a log (a test, CI)
 * every message is its own line, so the log shows how far a run got. */
void bench_progress(const char *fmt, ...)
{
	va_list ap;
	if (progress_tty < 0)
		progress_tty = isatty(STDERR_FILENO);
	fputs(progress_tty ? "\r\033[K" : "bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (!progress_tty)
		fputc('\n', stderr);
	fflush(stderr);
}

static void progress_done(void)
{
	if (progress_tty > 0)
		fputs("\r\033[K", stderr);
}

static void record_stats(bench_record_t *r)
{
	r->value = bench_median(r->runs, r->n_runs);
	min_max(r->runs, r->n_runs, &r->min, &r->max);
}

bool bench_case_selected(const bench_opts_t *opts, const char *case_name)
{
	if (!opts->n_cases)
		return true;
	/* FNM_NOESCAPE: a backslash is itself, as in Python's fnmatchcase,
	 * which bench/netbench.py matches the net and e2e cases with. */
	for (uint32_t i = 0; i < opts->n_cases; i++)
		if (fnmatch(opts->cases[i], case_name, FNM_NOESCAPE) == 0)
			return true;
	return false;
}

/* Drops the records of cases --case did not select (made only because a
 * selected one needed them). Pointers into records are stale afterwards. */
static void records_keep_selected(const bench_opts_t *opts)
{
	uint32_t kept = 0;
	for (uint32_t i = 0; i < n_records; i++)
		if (bench_case_selected(opts, records[i].case_name))
			records[kept++] = records[i];
	n_records = kept;
}

bench_record_t *bench_add(const char *suite, const char *case_name, const char *metric,
                          const char *unit, const double *runs, uint32_t n)
{
	if (n_records == BENCH_RECORDS_MAX) {
		fprintf(stderr, "ringfill bench: more than %u results\n", BENCH_RECORDS_MAX);
		return NULL;
	}
	bench_record_t *r = &records[n_records++];
	memset(r, 0, sizeof(*r));
	snprintf(r->suite, sizeof(r->suite), "%s", suite);
	snprintf(r->case_name, sizeof(r->case_name), "%s", case_name);
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	r->higher_better = true;
	r->n_runs = n < BENCH_RUNS_MAX ? n : BENCH_RUNS_MAX;
	memcpy(r->runs, runs, r->n_runs * sizeof(*runs));
	record_stats(r);
	return r;
}

bench_record_t *bench_measure(const bench_opts_t *opts, const char *suite,
                              const char *case_name, const char *metric, const char *unit,
                              bench_run_fn fn, void *arg)
{
	double runs[BENCH_RUNS_MAX], v;
	bench_progress("%s %s %s: warm-up", suite, case_name, metric);
	if (fn(arg, &v) != 0)
		return NULL;
	for (uint32_t i = 0; i < opts->runs && i < BENCH_RUNS_MAX; i++) {
		if (progress_tty > 0)
			bench_progress("%s %s %s: run %u/%u (last %.4g %s)", suite, case_name, metric,
			               i + 1, opts->runs, v, unit);
		if (fn(arg, &v) != 0)
			return NULL;
		runs[i] = v;
	}
	return bench_add(suite, case_name, metric, unit, runs, opts->runs);
}

void bench_set_peer(bench_record_t *r, const char *peer_name, const double *runs, uint32_t n)
{
	if (n > BENCH_RUNS_MAX)
		n = BENCH_RUNS_MAX;
	r->has_peer = n > 0;
	snprintf(r->peer_name, sizeof(r->peer_name), "%s", peer_name);
	memcpy(r->peer_runs, runs, n * sizeof(*runs));
	r->n_peer_runs = n;
	r->peer_value = bench_median(runs, n);
	min_max(runs, n, &r->peer_min, &r->peer_max);
	if (r->peer_value > 0 && r->value > 0)
		r->ratio = r->higher_better ? r->value / r->peer_value : r->peer_value / r->value;
	else
		r->has_peer = false;
}

/* ---- environment --------------------------------------------------------- */

void bench_env_set(const char *key, const char *value)
{
	uint32_t i = 0;
	while (i < n_env_extra && strcmp(env_extra[i].key, key) != 0)
		i++;
	if (i == BENCH_ENV_EXTRA_MAX)
		return;
	n_env_extra += i == n_env_extra;
	snprintf(env_extra[i].key, sizeof(env_extra[i].key), "%s", key);
	snprintf(env_extra[i].value, sizeof(env_extra[i].value), "%s", value);
}

typedef struct {
	char cpu[BENCH_ENV_BYTES_MAX], kernel[BENCH_ENV_BYTES_MAX], date[32];
	long cpus;
} env_t;

static void env_read(env_t *e)
{
	snprintf(e->cpu, sizeof(e->cpu), "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) == 0 && colon) {
			colon += 1 + strspn(colon + 1, " \t");
			colon[strcspn(colon, "\n")] = '\0';
			snprintf(e->cpu, sizeof(e->cpu), "%s", colon);
			break;
		}
	}
	if (f)
		fclose(f);
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(e->kernel, sizeof(e->kernel), "%s %s %s", u.sysname, u.release, u.machine);
	else
		snprintf(e->kernel, sizeof(e->kernel), "unknown");
	e->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(e->date, sizeof(e->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void env_print(const env_t *e, FILE *out)
{
	fprintf(out, "ringfill %s (%s) bench\n", RINGFILL_VERSION, RF_BENCH_COMMIT);
	fprintf(out, "  cpu: %s (%ld online)\n  kernel: %s\n", e->cpu, e->cpus, e->kernel);
	fprintf(out, "  json stage 1: %s\n  SQLite %s, %s\n", json_stage1_name(),
	        sqlite3_libversion(), OpenSSL_version(OPENSSL_VERSION));
	fprintf(out, "  compiler: %s (%s build)\n", BENCH_COMPILER, RF_BENCH_BUILD);
}

/* ---- the table ------------------------------------------------------------ */

static const char *fmt_num(double v, char *buf, size_t cap)
{
	if (v >= 1e9)
		snprintf(buf, cap, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, cap, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(buf, cap, "%.1fk", v / 1e3);
	else
		snprintf(buf, cap, "%.3f", v);
	return buf;
}

/* The table's metric column: a value that is not ringfill's names whose it
 * is ("curl_download_s (curl)"). */
static const char *metric_label(const bench_record_t *r, char *buf, size_t cap)
{
	if (!r->subject[0])
		return r->metric;
	snprintf(buf, cap, "%s (%s)", r->metric, r->subject);
	return buf;
}

static void table_print(const bench_opts_t *opts)
{
	char a[32], b[32], c[32], d[32];
	char label[sizeof(((bench_record_t *)0)->metric) + BENCH_PEER_NAME_BYTES_MAX + 4];
	bool subjects = false;
	if (opts->instructions)
		printf("\ninstructions of one measured pass per case (callgrind; exact, so "
		       "min..max is the value)\n");
	else
		printf("\nmedians of %u runs (min..max)\n", opts->runs);
	printf("%-6s %-34s %-24s %10s %21s %-8s  %-26s %10s %7s\n", "suite", "case", "metric",
	       "median", "min..max", "unit", "peer", "peer med", "ratio");
	for (uint32_t i = 0; i < n_records; i++) {
		const bench_record_t *r = &records[i];
		char range[80]; /* two numbers of at most 32 bytes and ".." */
		snprintf(range, sizeof(range), "%s..%s", fmt_num(r->min, b, sizeof(b)),
		         fmt_num(r->max, c, sizeof(c)));
		subjects |= r->subject[0] != 0;
		printf("%-6s %-34s %-24s %10s %21s %-8s", r->suite, r->case_name,
		       metric_label(r, label, sizeof(label)), fmt_num(r->value, a, sizeof(a)), range,
		       r->unit);
		if (r->has_peer)
			printf("  %-26s %10s %6.2fx\n", r->peer_name,
			       fmt_num(r->peer_value, d, sizeof(d)), r->ratio);
		else
			printf("  %-26s %10s %7s\n", "-", "-", "-");
	}
	if (!opts->instructions)
		printf("ratio: ringfill / peer; above 1 means ringfill did better%s\n",
		       subjects ? " (a metric with a name in parentheses: that one / peer)" : "");
}

/* ---- JSON output ------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void json_runs(FILE *f, const double *v, uint32_t n)
{
	fputc('[', f);
	for (uint32_t i = 0; i < n; i++)
		fprintf(f, "%s%.9g", i ? ", " : "", v[i]);
	fputc(']', f);
}

static void json_record(FILE *f, const bench_record_t *r)
{
	fputs("    {\"suite\": ", f);
	json_str(f, r->suite);
	fputs(", \"case\": ", f);
	json_str(f, r->case_name);
	fputs(", \"metric\": ", f);
	json_str(f, r->metric);
	if (r->subject[0]) {
		fputs(", \"subject\": ", f);
		json_str(f, r->subject);
	}
	fprintf(f, ", \"value\": %.9g, \"unit\": ", r->value);
	json_str(f, r->unit);
	fprintf(f, ", \"direction\": \"%s\",\n     \"runs\": ", r->higher_better ? "higher" : "lower");
	json_runs(f, r->runs, r->n_runs);
	fprintf(f, ", \"min\": %.9g, \"max\": %.9g,\n     \"peer\": ", r->min, r->max);
	if (r->has_peer) {
		fputs("{\"name\": ", f);
		json_str(f, r->peer_name);
		fprintf(f, ", \"value\": %.9g, \"runs\": ", r->peer_value);
		json_runs(f, r->peer_runs, r->n_peer_runs);
		fprintf(f, ", \"min\": %.9g, \"max\": %.9g}, \"ratio\": %.9g}", r->peer_min,
		        r->peer_max, r->ratio);
	} else {
		fputs("null, \"ratio\": null}", f);
	}
}

static int json_write_file(const char *path, const bench_opts_t *opts, const env_t *e)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		int err = errno;
		fprintf(stderr, "ringfill bench: %s: %s\n", path, strerror(err));
		return -err;
	}
	fprintf(f, "{\n  \"schema\": \"%s\",\n  \"env\": {\"ringfill\": ", BENCH_SCHEMA);
	json_str(f, RINGFILL_VERSION);
	fputs(", \"commit\": ", f);
	json_str(f, RF_BENCH_COMMIT);
	fputs(", \"date\": ", f);
	json_str(f, e->date);
	fputs(", \"cpu\": ", f);
	json_str(f, e->cpu);
	fprintf(f, ", \"cpus\": %ld, \"kernel\": ", e->cpus);
	json_str(f, e->kernel);
	fputs(",\n          \"json_stage1\": ", f);
	json_str(f, json_stage1_name());
	fputs(", \"sqlite\": ", f);
	json_str(f, sqlite3_libversion());
	fputs(", \"openssl\": ", f);
	json_str(f, OpenSSL_version(OPENSSL_VERSION));
	fputs(", \"parse_corpus\": ", f);
	json_str(f, bench_parse_corpus_desc());
	fputs(",\n          \"compiler\": ", f);
	json_str(f, BENCH_COMPILER);
	fputs(", \"build\": ", f);
	json_str(f, RF_BENCH_BUILD);
	for (uint32_t i = 0; i < n_env_extra; i++) {
		fputs(", ", f);
		json_str(f, env_extra[i].key);
		fputs(": ", f);
		json_str(f, env_extra[i].value);
	}
	fprintf(f, ",\n          \"runs\": %u, \"quick\": %s},\n  \"results\": [\n", opts->runs,
	        opts->quick ? "true" : "false");
	for (uint32_t i = 0; i < n_records; i++) {
		json_record(f, &records[i]);
		fputs(i + 1 < n_records ? ",\n" : "\n", f);
	}
	fputs("  ]\n}\n", f);
	if (fclose(f) != 0) {
		int err = errno;
		fprintf(stderr, "ringfill bench: %s: %s\n", path, strerror(err));
		return -err;
	}
	return 0;
}

/* ---- reading a result file and the regression gate ----------------------- */

typedef struct {
	char key[BENCH_NAME_BYTES_MAX + 128]; /* "suite/case metric" */
	double value, ratio;
	bool has_ratio, higher_better;
} gate_row_t;

typedef struct {
	gate_row_t *rows;
	uint32_t n;
	char compiler[BENCH_COMPILER_BYTES_MAX]; /* env.compiler, "" when absent */
} gate_set_t;

static void gate_key(char *out, size_t cap, const char *suite, const char *c, const char *m)
{
	snprintf(out, cap, "%.15s/%.127s %.63s", suite, c, m);
}

static void gate_from_records(gate_set_t *s)
{
	s->rows = calloc(n_records ? n_records : 1, sizeof(gate_row_t));
	s->n = 0;
	snprintf(s->compiler, sizeof(s->compiler), "%s", BENCH_COMPILER);
	for (uint32_t i = 0; s->rows && i < n_records; i++) {
		const bench_record_t *r = &records[i];
		gate_row_t *g = &s->rows[s->n++];
		gate_key(g->key, sizeof(g->key), r->suite, r->case_name, r->metric);
		g->value = r->value;
		g->ratio = r->ratio;
		g->has_ratio = r->has_peer;
		g->higher_better = r->higher_better;
	}
}

static int read_whole(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	char *buf = malloc(BENCH_RESULT_BYTES_MAX);
	size_t n = buf ? fread(buf, 1, BENCH_RESULT_BYTES_MAX, f) : 0;
	int err = !buf ? -ENOMEM : ferror(f) ? -EIO : n == BENCH_RESULT_BYTES_MAX ? -EFBIG : 0;
	fclose(f);
	if (err) {
		free(buf);
		return err;
	}
	*out = buf;
	*len = n;
	return 0;
}

int bench_json_load(const char *path, char **src, json_parser_t **p, json_doc_t *doc)
{
	size_t len = 0;
	json_error_t e = {0};
	*p = NULL;
	*src = NULL;
	int rc = read_whole(path, src, &len);
	if (rc == 0 && !(*p = json_parser_new(0)))
		rc = -ENOMEM;
	if (rc != 0) {
		fprintf(stderr, "ringfill bench: %s: %s\n", path, strerror(-rc));
	} else if (json_parse(*p, *src, len, doc, &e) != 0) {
		fprintf(stderr, "ringfill bench: %s:%zu: not a ringfill bench result (%s)\n", path,
		        e.line, e.reason);
		rc = -EINVAL;
	}
	if (rc != 0) {
		json_parser_free(*p);
		free(*src);
		*p = NULL;
		*src = NULL;
	}
	return rc;
}

int bench_json_str(const json_doc_t *d, uint32_t obj, const char *k, char *out, size_t cap)
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

int bench_json_num(const json_doc_t *d, uint32_t obj, const char *k, double *out)
{
	uint32_t n = json_object_get(d, obj, k, strlen(k));
	if (n == JSON_NONE || json_type(d, n) != JSON_NUMBER)
		return -EINVAL;
	return json_number_double(d, n, out);
}

static int gate_row_read(const json_doc_t *d, uint32_t rec, gate_row_t *g)
{
	char suite[32], cname[BENCH_NAME_BYTES_MAX], metric[64], dir[16];
	if (json_type(d, rec) != JSON_OBJECT ||
	    bench_json_str(d, rec, "suite", suite, sizeof(suite)) ||
	    bench_json_str(d, rec, "case", cname, sizeof(cname)) ||
	    bench_json_str(d, rec, "metric", metric, sizeof(metric)) ||
	    bench_json_str(d, rec, "direction", dir, sizeof(dir)) ||
	    bench_json_num(d, rec, "value", &g->value))
		return -EINVAL;
	gate_key(g->key, sizeof(g->key), suite, cname, metric);
	g->higher_better = strcmp(dir, "lower") != 0;
	g->has_ratio = bench_json_num(d, rec, "ratio", &g->ratio) == 0;
	return 0;
}

/* Loads the results of a --json file. 0, or -errno after saying why. */
static int gate_load(const char *path, gate_set_t *s)
{
	char *src;
	json_parser_t *p;
	json_doc_t d;
	int rc = bench_json_load(path, &src, &p, &d);
	if (rc != 0)
		return rc;
	rc = -EINVAL;
	if (json_type(&d, 0) == JSON_OBJECT) {
		uint32_t env = json_object_get(&d, 0, "env", 3);
		if (env == JSON_NONE || json_type(&d, env) != JSON_OBJECT ||
		    bench_json_str(&d, env, "compiler", s->compiler, sizeof(s->compiler)) != 0)
			s->compiler[0] = '\0';
		uint32_t arr = json_object_get(&d, 0, "results", 7);
		if (arr != JSON_NONE && json_type(&d, arr) == JSON_ARRAY) {
			s->n = 0;
			s->rows = calloc(d.nodes[arr].count + 1, sizeof(gate_row_t));
			rc = s->rows ? 0 : -ENOMEM;
			for (uint32_t n = arr + 1; rc == 0 && n < d.nodes[arr].next; n = d.nodes[n].next)
				rc = gate_row_read(&d, n, &s->rows[s->n++]);
		}
	}
	if (rc != 0)
		fprintf(stderr, "ringfill bench: %s: not a ringfill bench result (missing or "
		                "malformed \"results\" record)\n", path);
	json_parser_free(p);
	free(src);
	return rc;
}

/* Percent by which now is worse than base in the metric's direction
 * (negative: better). Throughputs: the fraction of the baseline lost. */
static double worse_pct(double base, double now, bool higher_better)
{
	if (base == 0)
		return 0;
	return higher_better ? (base - now) / base * 100.0 : (now - base) / base * 100.0;
}

/* Cases this run could not measure (bench_case_skipped), by gate key. */
#define BENCH_SKIPPED_MAX 32u
static struct {
	char key[BENCH_NAME_BYTES_MAX + 128];
	char why[128];
} skipped[BENCH_SKIPPED_MAX];
static uint32_t n_skipped;

void bench_case_skipped(const char *suite, const char *case_name, const char *metric,
                        const char *why)
{
	if (n_skipped == BENCH_SKIPPED_MAX)
		return;
	gate_key(skipped[n_skipped].key, sizeof(skipped[n_skipped].key), suite, case_name, metric);
	snprintf(skipped[n_skipped].why, sizeof(skipped[n_skipped].why), "%s", why);
	n_skipped++;
}

static const char *skip_reason(const char *key)
{
	for (uint32_t i = 0; i < n_skipped; i++)
		if (strcmp(skipped[i].key, key) == 0)
			return skipped[i].why;
	return NULL;
}

/* The case of a gate key, "suite/case metric", selected by --case. */
static bool gate_key_selected(const bench_opts_t *o, const char *key)
{
	const char *slash = strchr(key, '/'), *space = slash ? strchr(slash, ' ') : NULL;
	if (!space || !o->n_cases)
		return true;
	char name[BENCH_NAME_BYTES_MAX];
	snprintf(name, sizeof(name), "%.*s", (int)(space - slash - 1), slash + 1);
	return bench_case_selected(o, name);
}

/* Prints every comparison; returns how many cases regressed beyond max_pct
 * or are missing, plus one when nothing was compared (0: the gate passes).
 * Baseline cases --case did not select are neither compared nor missing. */
static uint32_t gate_compare(const gate_set_t *base, const gate_set_t *now, double max_pct,
                             const char *base_path, const bench_opts_t *o)
{
	uint32_t bad = 0, compared = 0;
	printf("\nregression gate against %s (max %.1f%% worse)\n", base_path, max_pct);
	if (base->compiler[0] && now->compiler[0] && strcmp(base->compiler, now->compiler) != 0)
		printf("  note: baseline built by %s, this result by %s; instruction counts "
		       "depend on the compiler\n", base->compiler, now->compiler);
	for (uint32_t i = 0; i < now->n; i++) {
		const gate_row_t *c = &now->rows[i], *b = NULL;
		for (uint32_t j = 0; j < base->n && !b; j++)
			if (strcmp(base->rows[j].key, c->key) == 0)
				b = &base->rows[j];
		if (!b) {
			printf("  %-60s not in the baseline\n", c->key);
			continue;
		}
		bool by_ratio = b->has_ratio && c->has_ratio;
		/* A ratio is ringfill over its peer and is always higher-is-better. */
		double pct = by_ratio ? worse_pct(b->ratio, c->ratio, true)
		                      : worse_pct(b->value, c->value, c->higher_better);
		bool regressed = pct > max_pct;
		compared++;
		printf("  %-60s %s %.4g -> %.4g  %+.1f%%%s\n", c->key, by_ratio ? "ratio" : "value",
		       by_ratio ? b->ratio : b->value, by_ratio ? c->ratio : c->value, -pct,
		       regressed ? "  REGRESSED" : "");
		if (regressed) {
			fprintf(stderr, "ringfill bench: regressed %.1f%% (limit %.1f%%): %s\n", pct,
			        max_pct, c->key);
			bad++;
		}
	}
	/* A baseline case this run should have had (its suite ran) but has not:
	 * renamed, dropped or failed, it is no longer guarded, so it fails the
	 * gate, as does a gate that compared nothing at all. */
	uint32_t missing = 0;
	for (uint32_t j = 0; j < base->n; j++) {
		const char *key = base->rows[j].key, *slash = strchr(key, '/');
		size_t suite_len = slash ? (size_t)(slash - key) + 1 : 0;
		bool in_now = false, suite_ran = false;
		for (uint32_t i = 0; i < now->n && !in_now; i++) {
			in_now = strcmp(now->rows[i].key, key) == 0;
			suite_ran = suite_ran || (suite_len && strncmp(now->rows[i].key, key, suite_len) == 0);
		}
		if (in_now || !suite_ran)
			continue;
		if (!gate_key_selected(o, key)) {
			printf("  %-60s not selected (--case)\n", key);
			continue;
		}
		const char *why = skip_reason(key);
		if (why) {
			printf("  %-60s not measured here: %s\n", key, why);
			continue;
		}
		printf("  %-60s missing from this result  MISSING\n", key);
		fprintf(stderr, "ringfill bench: missing from this result: %s\n", key);
		missing++;
	}
	printf("  %u compared, %u regressed, %u missing\n", compared, bad, missing);
	if (compared == 0)
		fprintf(stderr, "ringfill bench: nothing compared: the result and %s share no case\n",
		        base_path);
	return bad + missing + (compared == 0);
}

/* ---- command line ---------------------------------------------------------- */

typedef struct {
	bench_opts_t o;
	const char *suites[BENCH_SUITES_MAX];
	const char *cases[BENCH_CASES_MAX];
	bool no_case; /* --case matched no case of the suites run */
	uint32_t n_suites;
	const char **files; /* --report's result files: argv strings, in a malloc'd array */
	uint32_t n_files;
	const char *json_path, *baseline, *compare, *report;
	double max_regress;
	bool have_max_regress, help, runs_given;
	int argc; /* the command line as given, for the line that repeats the run */
	char **argv;
} cli_t;

/* An argument as the shell would need it: bare when plain, else in single
 * quotes (a quote inside closed, escaped and reopened). */
static void shell_word(const char *a, FILE *out)
{
	bool plain = *a != '\0';
	for (const char *p = a; *p && plain; p++)
		plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		               "-_./=:,+@%", *p) != NULL;
	if (plain) {
		fputs(a, out);
		return;
	}
	fputc('\'', out);
	for (const char *p = a; *p; p++)
		fputs(*p == '\'' ? "'\\''" : (char[]){*p, '\0'}, out);
	fputc('\'', out);
}

/* The command that repeats this run, with the environment that changes
 * what is measured. */
static void command_print(const cli_t *c)
{
	static const char *const vars[] = {"RINGFILL_BENCH_CLOCK", "RINGFILL_ISA"};
	printf("command: ");
	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++) {
		const char *v = getenv(vars[i]);
		if (v) {
			printf("%s=", vars[i]);
			shell_word(v, stdout);
			putchar(' ');
		}
	}
	printf("ringfill");
	for (int i = 0; i < c->argc; i++) {
		putchar(' ');
		shell_word(c->argv[i], stdout);
	}
	putchar('\n');
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "ringfill bench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage_text);
	return -EINVAL;
}

static const char *const known_suites[] = {"parse", "ring", "store", "net", "e2e"};
#define BENCH_DEFAULT_SUITES 3u /* parse ring store: net and e2e need nginx, take minutes */

static bool suite_known(const char *name)
{
	for (size_t i = 0; i < sizeof(known_suites) / sizeof(*known_suites); i++)
		if (strcmp(name, known_suites[i]) == 0)
			return true;
	return false;
}

/* Result files (arguments that name no suite) are only for drawing saved
 * results: `--report OUT.html RESULT.json...`, with nothing that would run
 * or gate anything. */
static int files_check(const cli_t *c)
{
	if (c->n_files == 0)
		return 0;
	if (!c->report)
		return usage_error("unknown suite '%s'", c->files[0]);
	if (c->n_suites)
		return usage_error("--report draws either a new run of suites or saved result "
		                   "files, not both ('%s' is not a suite)", c->files[0]);
	if (c->json_path || c->baseline || c->compare || c->o.instructions || c->runs_given ||
	    c->o.quick || c->o.corpus || c->o.ndjson_pages || c->o.ndjson_page_mb > 0 ||
	    c->o.n_cases)
		return usage_error("%s", "drawing saved results (--report OUT.html RESULT.json...) "
		                         "takes no other option");
	return 0;
}

static int parse_number(const char *flag, const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = s ? strtod(s, &end) : 0;
	if (!s || errno || end == s || *end || !(v >= lo && v <= hi))
		return usage_error("%s needs a number in range", flag);
	*out = v;
	return 0;
}

static int cli_parse(int argc, char **argv, cli_t *c)
{
	c->o.runs = BENCH_RUNS_DEFAULT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
		double v;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			c->help = true;
			return 0;
		} else if (!strcmp(a, "--quick")) {
			c->o.quick = true;
		} else if (!strcmp(a, "--instructions")) {
			c->o.instructions = true;
		} else if (!strcmp(a, "--runs")) {
			if (parse_number(a, next, 1, BENCH_RUNS_MAX, &v) || v != floor(v))
				return usage_error("--runs needs a whole number from 1 to %s", "101");
			c->o.runs = (uint32_t)v;
			c->runs_given = true;
			i++;
		} else if (!strcmp(a, "--ndjson-pages") || !strcmp(a, "--ndjson-page-mb")) {
			bool pages = !strcmp(a, "--ndjson-pages");
			if (parse_number(a, next, pages ? 1 : 0.01, 1000, &v) ||
			    (pages && v != floor(v)))
				return usage_error("%s needs a number from 1 to 1000", a);
			if (pages)
				c->o.ndjson_pages = (uint32_t)v;
			else
				c->o.ndjson_page_mb = v;
			i++;
		} else if (!strcmp(a, "--case")) {
			if (!next || !*next)
				return usage_error("%s", "--case needs a name or a glob of names");
			if (c->o.n_cases == BENCH_CASES_MAX)
				return usage_error("more than 16 --case options (from '%s')", next);
			c->cases[c->o.n_cases++] = next;
			c->o.cases = c->cases;
			i++;
		} else if (!strcmp(a, "--max-regress")) {
			if (parse_number(a, next, 0, 1e6, &c->max_regress))
				return -EINVAL;
			c->have_max_regress = true;
			i++;
		} else if (!strcmp(a, "--json") || !strcmp(a, "--baseline") || !strcmp(a, "--corpus") ||
		           !strcmp(a, "--compare") || !strcmp(a, "--report")) {
			if (!next)
				return usage_error("%s needs a value", a);
			const char **dst = !strcmp(a, "--json")       ? &c->json_path
			                   : !strcmp(a, "--baseline") ? &c->baseline
			                   : !strcmp(a, "--corpus")   ? &c->o.corpus
			                   : !strcmp(a, "--report")   ? &c->report
			                                              : &c->compare;
			*dst = next;
			i++;
		} else if (a[0] == '-') {
			return usage_error("unknown option '%s'", a);
		} else if (!suite_known(a)) {
			/* Not a suite: a result file for --report (checked below). */
			if (!c->files && !(c->files = calloc((size_t)argc, sizeof(*c->files))))
				return -ENOMEM;
			c->files[c->n_files++] = a;
		} else {
			if (c->n_suites == BENCH_SUITES_MAX)
				return usage_error("too many suites (from '%s')", a);
			c->suites[c->n_suites++] = a;
		}
	}
	int rc = files_check(c);
	if (rc)
		return rc;
	if (c->report && c->compare)
		return usage_error("%s", "--report draws a run or saved results, not --compare");
	if (!!c->baseline != c->have_max_regress)
		return usage_error("%s", "--baseline and --max-regress go together");
	if (c->compare && (!c->baseline || c->n_suites || c->json_path || c->o.instructions))
		return usage_error("%s", "--compare takes --baseline and --max-regress, and no suite");
	if (c->o.n_cases && (c->o.instructions || c->compare))
		return usage_error("%s", "--case selects cases to run: not with --instructions "
		                         "(a fixed set of counts) or --compare");
	if (c->o.instructions) {
		if (c->runs_given || c->o.quick || c->o.corpus)
			return usage_error("%s", "--instructions counts one pass over fixed inputs; "
			                         "--runs, --quick and --corpus do not apply");
		for (uint32_t i = 0; i < c->n_suites; i++)
			if (strcmp(c->suites[i], "parse") != 0 && strcmp(c->suites[i], "ring") != 0)
				return usage_error("--instructions measures parse and ring, not '%s'",
				                   c->suites[i]);
		c->o.runs = 1;
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int run_suites(cli_t *c)
{
	if (c->n_suites == 0 && !c->o.instructions)
		for (size_t i = 0; i < BENCH_DEFAULT_SUITES; i++)
			c->suites[c->n_suites++] = known_suites[i];
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char tmpdir[PATH_MAX];
	snprintf(tmpdir, sizeof(tmpdir), "%s/ringfill-bench-XXXXXX", base);
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "ringfill bench: %s: %s\n", tmpdir, strerror(errno));
		return -errno;
	}
	c->o.tmpdir = tmpdir;
	int rc = 0;
	if (c->o.instructions)
		rc = bench_instructions(&c->o, c->suites, c->n_suites);
	for (uint32_t i = 0; i < c->n_suites && rc == 0 && !c->o.instructions; i++) {
		const char *s = c->suites[i];
		rc = !strcmp(s, "parse")   ? bench_suite_parse(&c->o)
		     : !strcmp(s, "ring")  ? bench_suite_ring(&c->o)
		     : !strcmp(s, "store") ? bench_suite_store(&c->o)
		     : !strcmp(s, "net")   ? bench_suite_net(&c->o)
		                           : bench_suite_e2e(&c->o);
	}
	progress_done();
	nftw(tmpdir, rm_entry, BENCH_NFTW_FDS, FTW_DEPTH | FTW_PHYS);
	records_keep_selected(&c->o);
	if (rc == 0 && c->o.n_cases && n_records == 0) {
		fprintf(stderr, "ringfill bench: --case %s%s selected no case of the suites run\n",
		        c->o.cases[0], c->o.n_cases > 1 ? " (nor did the others)" : "");
		c->no_case = true;
		return -ENOENT;
	}
	return rc;
}

/* Compares the results (of this run, or of --compare) with the baseline,
 * which the caller loaded. An unreadable file is an input error (exit 2). */
static int gate(const cli_t *c, gate_set_t *base)
{
	gate_set_t now = {0};
	int rc = 0;
	if (c->compare)
		rc = gate_load(c->compare, &now);
	else
		gate_from_records(&now);
	if (rc == 0 && !now.rows)
		rc = -ENOMEM;
	uint32_t bad = rc == 0 ? gate_compare(base, &now, c->max_regress, c->baseline, &c->o) : 0;
	free(now.rows);
	if (rc != 0)
		return rc == -ENOMEM ? EXIT_FATAL : EXIT_USAGE;
	return bad ? EXIT_REGRESSED : EXIT_OK;
}

/* --report after a run draws the run's JSON result: the --json file, or a
 * temporary one removed afterwards. EXIT_OK or EXIT_FATAL (said why). */
static int report_run(const cli_t *c, const env_t *env)
{
	char tmp[PATH_MAX];
	const char *path = c->json_path;
	if (!path) {
		const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(tmp, sizeof(tmp), "%s/ringfill-bench-result-XXXXXX", base);
		int fd = mkstemp(tmp);
		if (fd < 0) {
			fprintf(stderr, "ringfill bench: %s: %s\n", tmp, strerror(errno));
			return EXIT_FATAL;
		}
		close(fd);
		path = tmp;
		if (json_write_file(tmp, &c->o, env) != 0) {
			unlink(tmp);
			return EXIT_FATAL;
		}
	}
	int rc = bench_report(c->report, &path, 1);
	if (!c->json_path)
		unlink(tmp);
	if (rc == 0)
		printf("report: %s\n", c->report);
	return rc == 0 ? EXIT_OK : EXIT_FATAL;
}

static int bench_cli(cli_t *c)
{
	if (c->help) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (c->n_files) {
		int rc = bench_report(c->report, c->files, c->n_files);
		return rc == 0 ? EXIT_OK : rc == -EINVAL ? EXIT_USAGE : EXIT_FATAL;
	}
	/* The baseline is read first, so a wrong path fails before minutes of work. */
	gate_set_t base = {0};
	if (c->baseline && gate_load(c->baseline, &base) != 0)
		return EXIT_USAGE;
	if (c->compare) {
		int rc = gate(c, &base);
		free(base.rows);
		return rc;
	}
	env_t env;
	env_read(&env);
	env_print(&env, stdout);
	fflush(stdout);
	int rc = run_suites(c);
	if (c->no_case) {
		free(base.rows);
		return EXIT_USAGE;
	}
	if (rc != 0) {
		fprintf(stderr, "ringfill bench: stopped: %s\n", strerror(-rc));
		free(base.rows);
		return EXIT_FATAL;
	}
	if (strcmp(bench_parse_corpus_desc(), "not run") != 0)
		printf("  parse corpus: %s\n", bench_parse_corpus_desc());
	for (uint32_t i = 0; i < n_env_extra; i++)
		printf("  %s: %s\n", env_extra[i].key, env_extra[i].value);
	table_print(&c->o);
	command_print(c);
	rc = c->json_path && json_write_file(c->json_path, &c->o, &env) != 0 ? EXIT_FATAL
	     : c->report && report_run(c, &env) != EXIT_OK                    ? EXIT_FATAL
	     : c->baseline                                                    ? gate(c, &base)
	                                                                      : EXIT_OK;
	free(base.rows);
	return rc;
}

int bench_main(int argc, char **argv)
{
	/* The child bench_instructions runs under callgrind (not in --help). */
	if (argc >= 2 && !strcmp(argv[1], "--instructions-child"))
		return bench_instr_child(argc - 2, argv + 2);
	cli_t c = {.argc = argc, .argv = argv};
	int rc = cli_parse(argc, argv, &c);
	rc = rc == 0 ? bench_cli(&c) : rc == -ENOMEM ? EXIT_FATAL : EXIT_USAGE;
	free(c.files);
	return rc;
}
