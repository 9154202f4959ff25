/* bench/suite_parse.c: the `parse` suite (issue 3): GB/s of parse/json.h's
 * full validating parse per file, and of selector extraction on twitter-like
 * documents, each next to simdjson measured in the same run by the peer
 * program bench/peer_simdjson.cpp (run without a shell, on the same file and
 * iteration count). Files come from --corpus DIR, or are generated here
 * deterministically (plus ../shared/data/json/corpus when it is present). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/harness.h"
#include "bench/read_file.h"
#include "parse/json.h"
#include "parse/json_internal.h" /* the stage-1 kernels, to measure each */
#include "parse/json_stream.h"

#define PARSE_FILES_MAX 64u
#define PARSE_FILE_BYTES_MAX (512u << 20) /* larger corpus files are skipped */
#define PARSE_RUN_SECONDS 0.2             /* a timed run repeats the parse this long */
#define PARSE_RUN_SECONDS_QUICK 0.01
#define PARSE_PEER_OUT_BYTES_MAX 8192u   /* the peer prints a few short lines */
#define PARSE_NAME_BUF_BYTES 256u        /* scratch for unescaping screen names */
#define PARSE_STREAM_PIECE_BYTES (4u << 20) /* stream cases feed the file in pieces this big */
#define GEN_TWITTER_STATUSES 400u
#define GEN_CANADA_POINTS 56000u
#define GEN_NDJSON_EVENTS 8000u
#define GEN_SEED 0x7a11f111ULL

extern char **environ;

typedef enum { MODE_PARSE, MODE_IDS, MODE_NAMES, MODE_STREAM, MODE_ITEMS } parse_mode_t;

typedef struct {
	char name[BENCH_NAME_BYTES_MAX]; /* case name: gen/... or corpus/... */
	char path[4096];
	bool ndjson, twitter;
} parse_file_t;

typedef struct {
	json_parser_t *parser;
	json_path_t *sel;
	const parse_file_t *file;
	char *data;
	size_t len;
	parse_mode_t mode;
	double target_s;
	uint64_t iters; /* fixed by the warm-up, then passed to the peer */
	uint64_t check; /* documents, id sum or name bytes of one pass */
	char *scratch;  /* MODE_ITEMS: strings unescape here (the file's size) */
} parse_case_t;

static parse_file_t files[PARSE_FILES_MAX];
static uint32_t n_files;
static char corpus_desc[4200] = "not run";

const char *bench_parse_corpus_desc(void)
{
	return corpus_desc;
}

/* ---- deterministic documents -------------------------------------------- */

static uint64_t gen_state;

static uint64_t gen_next(void)
{
	uint64_t z = (gen_state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint32_t gen_below(uint32_t n)
{
	return (uint32_t)(gen_next() % n);
}

/* String contents as they appear in JSON source: ASCII, multi-byte UTF-8,
 * and escapes of every kind, so the parser meets what real text holds. */
static void gen_text(FILE *f, uint32_t words)
{
	static const char *const frags[] = {
		"backfill", "the", "ring", "json", "of", "and", "café", "naïve", "日本語",
		"テスト", "Привет", "😀", "\\n", "\\\"quoted\\\"", "\\u00e9", "\\ud83d\\ude00",
		"https:\\/\\/t.co\\/x1Yz", "#bench", "@user", "\\t", "100%", "a\\\\b"};
	for (uint32_t i = 0; i < words; i++)
		fprintf(f, "%s%s", i ? " " : "", frags[gen_below(sizeof(frags) / sizeof(*frags))]);
}

static void gen_user(FILE *f, uint64_t uid)
{
	fprintf(f, "{\"id\":%llu,\"id_str\":\"%llu\",\"name\":\"", (unsigned long long)uid,
	        (unsigned long long)uid);
	gen_text(f, 2);
	fprintf(f, "\",\"screen_name\":\"user_%llu\",\"location\":\"\",\"description\":\"",
	        (unsigned long long)(uid % 100000));
	gen_text(f, 8 + gen_below(20));
	fprintf(f, "\",\"url\":null,\"protected\":false,\"followers_count\":%u,"
	           "\"friends_count\":%u,\"listed_count\":%u,\"created_at\":\"Sun Aug 31 "
	           "00:29:15 +0000 2014\",\"favourites_count\":%u,\"utc_offset\":null,"
	           "\"geo_enabled\":%s,\"verified\":false,\"statuses_count\":%u,\"lang\":\"ja\","
	           "\"profile_background_color\":\"C0DEED\",\"default_profile\":true}",
	        gen_below(100000), gen_below(5000), gen_below(100), gen_below(10000),
	        gen_below(2) ? "true" : "false", gen_below(100000));
}

static void gen_twitter(FILE *f)
{
	fputs("{\"statuses\":[", f);
	for (uint32_t i = 0; i < GEN_TWITTER_STATUSES; i++) {
		uint64_t id = 505874924095815681ULL + gen_next() % 1000000000ULL;
		fprintf(f, "%s{\"metadata\":{\"result_type\":\"recent\",\"iso_language_code\":\"ja\"},"
		           "\"created_at\":\"Sun Aug 31 00:29:15 +0000 2014\",\"id\":%llu,"
		           "\"id_str\":\"%llu\",\"text\":\"", i ? "," : "",
		        (unsigned long long)id, (unsigned long long)id);
		gen_text(f, 6 + gen_below(30));
		fputs("\",\"source\":\"<a href=\\\"https:\\/\\/mobile.twitter.com\\\" "
		      "rel=\\\"nofollow\\\">Mobile Web<\\/a>\",\"truncated\":false,"
		      "\"in_reply_to_status_id\":null,\"user\":", f);
		gen_user(f, 1000000 + gen_next() % 3000000000ULL);
		fprintf(f, ",\"geo\":null,\"coordinates\":null,\"retweet_count\":%u,"
		           "\"favorite_count\":%u,\"entities\":{\"hashtags\":[{\"text\":\"",
		        gen_below(1000), gen_below(1000));
		gen_text(f, 1);
		fprintf(f, "\",\"indices\":[%u,%u]}],\"symbols\":[],\"urls\":[],\"user_mentions\":"
		           "[{\"screen_name\":\"user_%u\",\"id\":%u,\"indices\":[3,10]}]},"
		           "\"favorited\":false,\"retweeted\":false,\"lang\":\"ja\"}",
		        gen_below(10), 10 + gen_below(100), gen_below(100000), gen_below(1u << 30));
	}
	fputs("],\"search_metadata\":{\"completed_in\":0.087,\"max_id\":505874924095815681,"
	      "\"query\":\"%E4%B8%80\",\"count\":100,\"since_id\":0}}\n", f);
}

/* Number-heavy, like canada.json: polygons of signed doubles. */
static void gen_canada(FILE *f)
{
	const uint32_t rings = 40, per_ring = GEN_CANADA_POINTS / rings;
	fputs("{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
	      "\"properties\":{\"name\":\"Canada\"},\"geometry\":{\"type\":\"Polygon\","
	      "\"coordinates\":[", f);
	for (uint32_t r = 0; r < rings; r++) {
		fputs(r ? ",[" : "[", f);
		for (uint32_t i = 0; i < per_ring; i++) {
			double lon = -141.0 + (double)(gen_next() % 8000000000ULL) / 1e8;
			double lat = 41.0 + (double)(gen_next() % 4300000000ULL) / 1e8;
			fprintf(f, "%s[%.15g,%.15g]", i ? "," : "", lon, lat);
		}
		fputc(']', f);
	}
	fputs("]}}]}\n", f);
}

/* GitHub-event-like NDJSON lines. */
static void gen_ndjson(FILE *f)
{
	static const char *const types[] = {"PushEvent", "WatchEvent", "IssuesEvent",
	                                    "CreateEvent", "PullRequestEvent"};
	for (uint32_t i = 0; i < GEN_NDJSON_EVENTS; i++) {
		fprintf(f, "{\"id\":\"%llu\",\"type\":\"%s\",\"actor\":{\"id\":%u,\"login\":\"dev%u\","
		           "\"url\":\"https://api.github.com/users/dev%u\"},\"repo\":{\"id\":%u,"
		           "\"name\":\"org%u/repo%u\"},\"payload\":{\"push_id\":%u,\"size\":%u,"
		           "\"commits\":[",
		        (unsigned long long)(2489651045ULL + i), types[gen_below(5)], gen_below(1u << 24),
		        gen_below(50000), gen_below(50000), gen_below(1u << 26), gen_below(900),
		        gen_below(9000), gen_below(1u << 30), 1 + gen_below(3));
		for (uint32_t c = 0, n = 1 + gen_below(3); c < n; c++) {
			fprintf(f, "%s{\"sha\":\"%016llx%016llx%08x\",\"message\":\"", c ? "," : "",
			        (unsigned long long)gen_next(), (unsigned long long)gen_next(),
			        gen_below(0xffffffffu));
			gen_text(f, 4 + gen_below(16));
			fputs("\",\"distinct\":true}", f);
		}
		fprintf(f, "]},\"public\":true,\"score\":%.6f,\"created_at\":\"2015-01-01T15:%02u:%02uZ\"}\n",
		        (double)gen_below(1000000) / 7.0, gen_below(60), gen_below(60));
	}
}

/* The generated documents by name, as the suite writes them to gen/NAME. */
static const struct {
	const char *name;
	void (*fn)(FILE *);
} gens[] = {{"twitter-like.json", gen_twitter},
            {"canada-like.json", gen_canada},
            {"events.ndjson", gen_ndjson}};

int bench_parse_generate(const char *name, char **data, size_t *len)
{
	for (size_t i = 0; i < sizeof(gens) / sizeof(*gens); i++) {
		if (strcmp(gens[i].name, name) != 0)
			continue;
		FILE *f = open_memstream(data, len);
		if (!f)
			return -errno;
		gen_state = GEN_SEED; /* each document starts from the seed, as in generate() */
		gens[i].fn(f);
		return fclose(f) == 0 ? 0 : -errno;
	}
	return -ENOENT;
}

static int add_file(const char *name, const char *path)
{
	if (n_files == PARSE_FILES_MAX)
		return -ENOSPC;
	parse_file_t *pf = &files[n_files++];
	size_t nl = strlen(name);
	snprintf(pf->name, sizeof(pf->name), "%s", name);
	snprintf(pf->path, sizeof(pf->path), "%s", path);
	pf->ndjson = (nl > 7 && !strcmp(name + nl - 7, ".ndjson")) ||
	             (nl > 6 && !strcmp(name + nl - 6, ".jsonl"));
	pf->twitter = strstr(name, "twitter") != NULL && !pf->ndjson;
	return 0;
}

static int generate(const bench_opts_t *opts)
{
	for (size_t i = 0; i < sizeof(gens) / sizeof(*gens); i++) {
		char path[4096], name[BENCH_NAME_BYTES_MAX];
		gen_state = GEN_SEED;
		snprintf(path, sizeof(path), "%s/%s", opts->tmpdir, gens[i].name);
		snprintf(name, sizeof(name), "gen/%s", gens[i].name);
		FILE *f = fopen(path, "w");
		if (!f)
			return -errno;
		gens[i].fn(f);
		if (fclose(f) != 0)
			return -errno;
		int rc = add_file(name, path);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every regular file of dir, in name order, as corpus/NAME. */
static int add_dir(const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0) {
		int err = errno;
		fprintf(stderr, "ringfill bench: --corpus %s: %s\n", dir, strerror(err));
		return -err;
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char path[4096], name[BENCH_NAME_BYTES_MAX];
		struct stat sb;
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		snprintf(name, sizeof(name), "corpus/%.120s", ents[i]->d_name);
		if (rc == 0 && ents[i]->d_name[0] != '.' && stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
			rc = add_file(name, path);
		free(ents[i]);
	}
	free(ents);
	return rc;
}

static int files_collect(const bench_opts_t *opts)
{
	n_files = 0;
	if (opts->corpus) {
		snprintf(corpus_desc, sizeof(corpus_desc), "--corpus %s", opts->corpus);
		return add_dir(opts->corpus);
	}
	int rc = generate(opts);
	snprintf(corpus_desc, sizeof(corpus_desc), "generated (gen/*)");
#ifdef RF_SHARED_CORPUS
	struct stat sb;
	char shared[PATH_MAX];
	if (rc == 0 && realpath(RF_SHARED_CORPUS, shared) && stat(shared, &sb) == 0 &&
	    S_ISDIR(sb.st_mode)) {
		rc = add_dir(shared);
		snprintf(corpus_desc, sizeof(corpus_desc), "generated (gen/*) and %s (corpus/*)",
		         shared);
	}
#endif
	return rc;
}

/* ---- the clock ---------------------------------------------------------------- */

/* RINGFILL_BENCH_CLOCK=cpu makes every parse case time CPU seconds instead of
 * wall seconds: the bench thread's own (CLOCK_THREAD_CPUTIME_ID), the peer's
 * likewise (it reads the same variable), and the children's user + system
 * time for the whole-process case. On a machine shared with other work, a
 * side that waits for a CPU is not charged for it, so the ratios stop
 * depending on which side ran in a busier moment. */
static bool clock_is_cpu(void)
{
	static int cpu = -1;
	if (cpu < 0) {
		const char *e = getenv("RINGFILL_BENCH_CLOCK");
		cpu = e && strcmp(e, "cpu") == 0;
	}
	return cpu;
}

static double parse_now_s(void)
{
	if (!clock_is_cpu())
		return bench_now_s();
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- ringfill's side ------------------------------------------------------- */

/* Visitors shared with the instruction-count suite (harness.h): each adds
 * what it saw to a uint64_t, so a pass can be checked. */
int bench_count_doc(void *ctx, const json_doc_t *doc, size_t line_offset)
{
	(void)doc;
	(void)line_offset;
	(*(uint64_t *)ctx)++;
	return 0;
}

int bench_add_id(void *ctx, const json_doc_t *d, uint32_t node)
{
	int64_t v;
	if (json_type(d, node) != JSON_NUMBER || json_number_int64(d, node, &v) != 0)
		return -EINVAL;
	*(uint64_t *)ctx += (uint64_t)v;
	return 0;
}

int bench_add_name(void *ctx, const json_doc_t *d, uint32_t node)
{
	char buf[PARSE_NAME_BUF_BYTES];
	if (json_type(d, node) != JSON_STRING)
		return -EINVAL;
	*(uint64_t *)ctx += json_string_get(d, node, buf, sizeof(buf));
	return 0;
}

/* The same for json_select, which names the path (the bench has one). */
static int select_add_id(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	(void)path;
	return bench_add_id(ctx, d, node);
}

static int select_add_name(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	(void)path;
	return bench_add_name(ctx, d, node);
}

/* MODE_ITEMS, one selected value as simdjson's "ondemand-ndjson-items" reads
 * it: a string unescaped whole (its bytes counted), a number as a double,
 * anything else counted once. */
static int items_visit(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	(void)path;
	parse_case_t *c = ctx;
	double x;
	switch (json_type(d, node)) {
	case JSON_STRING:
		c->check += json_string_get(d, node, c->scratch, c->len);
		return 0;
	case JSON_NUMBER:
		if (json_number_double(d, node, &x) == -ENOMEM)
			return -ENOMEM;
		break;
	default:
		break;
	}
	c->check++;
	return 0;
}

/* One streaming pass: the document from memory in pieces through
 * json_stream, c->sel as the rows path; c->check counts the records. */
static int stream_pass(parse_case_t *c, json_error_t *err)
{
	json_stream_t *s = json_stream_new(c->sel, NULL);
	if (!s)
		return -ENOMEM;
	size_t at = 0;
	int r;
	for (;;) {
		size_t n = c->len - at < PARSE_STREAM_PIECE_BYTES ? c->len - at : PARSE_STREAM_PIECE_BYTES;
		if (n)
			json_stream_feed(s, c->data + at, n);
		else
			json_stream_finish(s);
		at += n;
		json_stream_record_t rec;
		while ((r = json_stream_next(s, &rec, err)) == JSON_STREAM_RECORD)
			c->check++;
		if (r != JSON_STREAM_MORE)
			break;
	}
	json_stream_free(s);
	return r == JSON_STREAM_END ? 0 : -1;
}

/* One pass over the document; sets c->check. */
static int parse_pass(parse_case_t *c)
{
	json_doc_t doc;
	json_error_t err;
	c->check = 0;
	int rc;
	if (c->mode == MODE_STREAM)
		rc = stream_pass(c, &err);
	else if (c->mode == MODE_PARSE && c->file->ndjson)
		rc = json_ndjson_each(c->parser, c->data, c->len, bench_count_doc, &c->check, &err);
	else if (c->mode == MODE_ITEMS) /* on demand, line by line, as On-Demand's iterate_many */
		rc = json_select_ndjson(c->parser, c->data, c->len, (const json_path_t *const *)&c->sel,
		                        1, items_visit, c, &err);
	else if (c->mode != MODE_PARSE) /* selectors: on demand, as simdjson's On-Demand */
		rc = json_select(c->parser, c->data, c->len, (const json_path_t *const *)&c->sel, 1,
		                 c->mode == MODE_IDS ? select_add_id : select_add_name, &c->check, &err);
	else if ((rc = json_parse(c->parser, c->data, c->len, &doc, &err)) == 0)
		c->check = 1;
	if (rc != 0)
		fprintf(stderr, "ringfill bench: %s: %s at byte %zu\n", c->file->name,
		        rc == -1 ? err.reason : "selected value of an unexpected type",
		        rc == -1 ? err.offset : 0);
	return rc ? -EINVAL : 0;
}

static int parse_run(void *arg, double *value)
{
	parse_case_t *c = arg;
	uint64_t done = 0;
	double t0 = parse_now_s(), dt;
	/* The warm-up finds how many passes fill target_s; timed runs and the
	 * peer then all do exactly that many. */
	do {
		if (parse_pass(c) != 0)
			return -EINVAL;
		done++;
		dt = parse_now_s() - t0;
	} while (c->iters ? done < c->iters : dt < c->target_s);
	c->iters = done;
	*value = (double)c->len * (double)done / dt / 1e9;
	return 0;
}

/* Two ways of parsing c's file, for a ratio of two of our own paths: the
 * mode, and the stage-1 kernel (NULL: the one in use). */
typedef struct {
	parse_mode_t mode;
	const char *kernel;
} parse_side_t;

/* One run of both sides in turns, pass by pass, each side's passes timed
 * alone: value[k] is side k's GB/s. As parse_run, the warm-up (c->iters 0)
 * fixes the pass count. Taking turns by whole runs of 0.2 s was not enough
 * on a shared 2-CPU VM: the same two paths' ratio moved from 0.57 to 1.30
 * between consecutive runs (a throwaway driver, 2026-12-07). */
static int parse_turns(parse_case_t *c, const parse_side_t side[2], double value[2])
{
	double t[2] = {0, 0};
	uint64_t done = 0;
	do {
		for (int k = 0; k < 2; k++) {
			c->mode = side[k].mode;
			if (side[k].kernel && json_stage1_use(side[k].kernel) != 0)
				return -EINVAL;
			double t0 = parse_now_s();
			if (parse_pass(c) != 0)
				return -EINVAL;
			t[k] += parse_now_s() - t0;
		}
		done++;
	} while (c->iters ? done < c->iters : t[0] + t[1] < c->target_s);
	c->iters = done;
	for (int k = 0; k < 2; k++)
		value[k] = (double)c->len * (double)done / t[k] / 1e9;
	return 0;
}

/* Side 0 as `metric`, next to side 1 as peer `peer_name`, in turns
 * (parse_turns): a warm-up, then opts->runs runs. */
static bench_record_t *measure_turns(const bench_opts_t *opts, parse_case_t *c,
                                     const char *metric, const parse_side_t side[2],
                                     const char *peer_name)
{
	double runs[2][BENCH_RUNS_MAX], v[2];
	c->iters = 0;
	bench_progress("parse %s %s: warm-up", c->file->name, metric);
	if (parse_turns(c, side, v) != 0)
		return NULL;
	for (uint32_t i = 0; i < opts->runs && i < BENCH_RUNS_MAX; i++) {
		bench_progress("parse %s %s: run %u/%u, in turns with %s", c->file->name, metric,
		               i + 1, opts->runs, peer_name);
		if (parse_turns(c, side, v) != 0)
			return NULL;
		runs[0][i] = v[0];
		runs[1][i] = v[1];
	}
	bench_record_t *r = bench_add("parse", c->file->name, metric, "GB/s", runs[0], opts->runs);
	if (r)
		bench_set_peer(r, peer_name, runs[1], opts->runs);
	return r;
}

/* ---- the simdjson peer ------------------------------------------------------ */

static const char *peer_path(void)
{
#ifdef RF_PEER_SIMDJSON
	return access(RF_PEER_SIMDJSON, X_OK) == 0 ? RF_PEER_SIMDJSON : NULL;
#else
	return NULL;
#endif
}

/* Runs the peer; fills runs[] (the first, a warm-up, dropped) as GB/s.
 * Returns the number of runs, or -errno. */
static int peer_measure(const parse_case_t *c, const char *mode, const char *force,
                        uint32_t runs_n, double *runs, char *impl, size_t impl_cap,
                        uint64_t *check)
{
	char iters[32], nruns[32], out[PARSE_PEER_OUT_BYTES_MAX];
	snprintf(iters, sizeof(iters), "%llu", (unsigned long long)c->iters);
	snprintf(nruns, sizeof(nruns), "%u", runs_n + 1);
	char *argv[] = {(char *)peer_path(), (char *)mode, (char *)c->file->path, iters, nruns,
	                (char *)force, NULL};
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -errno;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	size_t len = 0;
	ssize_t n;
	while (rc == 0 && len < sizeof(out) - 1 && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	close(fds[0]);
	out[len] = '\0';
	int status = 0;
	if (rc != 0)
		return -rc;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EPROTO;
	int got = -1; /* the first "run" line is the warm-up */
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		double s;
		unsigned long long ck;
		if (!strncmp(line, "impl ", 5))
			snprintf(impl, impl_cap, "%s", line + 5);
		else if (!strncmp(line, "version ", 8))
			bench_env_set("simdjson", line + 8); /* the environment line names the peer */
		else if (sscanf(line, "run %lf", &s) == 1 && s > 0 && got < (int)runs_n)
			got >= 0 ? (void)(runs[got++] = (double)c->len * (double)c->iters / s / 1e9)
			         : (void)got++;
		else if (sscanf(line, "checksum %llu", &ck) == 1)
			*check = ck;
	}
	return got == (int)runs_n ? got : -EPROTO;
}

/* One peer of a paired measurement: simdjson in `mode`, forced to kernel
 * `force` (DOM only; NULL: the one simdjson picks), named "simdjson-LABEL/
 * KERNEL" in the record. measure_paired fills the rest. */
typedef struct {
	const char *mode, *label, *force;
	double runs[BENCH_RUNS_MAX];
	int n; /* runs so far, or -errno once the peer failed */
	char impl[32];
	uint64_t check;
} parse_peer_t;

/* c's pass in its current mode as `metric`: a warm-up, then opts->runs
 * timed runs, each followed at once by one run of every peer (a process of
 * its own, which warms up first and then makes exactly c->iters passes).
 * The two sides of a ratio thus take turns through the same minutes of a
 * shared machine's load, instead of ringfill's runs and then simdjson's:
 * run apart, the same binaries' ratio moved by up to 30% between suite runs
 * on a 2-CPU VM (docs/benchmarks.md). */
static bench_record_t *measure_paired(const bench_opts_t *opts, parse_case_t *c,
                                      const char *metric, parse_peer_t *peers, uint32_t n_peers)
{
	double runs[BENCH_RUNS_MAX], v;
	bench_progress("parse %s %s: warm-up", c->file->name, metric);
	c->iters = 0;
	if (parse_run(c, &v) != 0) /* fixes c->iters for every run and peer */
		return NULL;
	for (uint32_t p = 0; p < n_peers; p++) {
		peers[p].n = peer_path() ? 0 : -ENOENT;
		peers[p].check = UINT64_MAX;
		snprintf(peers[p].impl, sizeof(peers[p].impl), "?");
	}
	for (uint32_t i = 0; i < opts->runs && i < BENCH_RUNS_MAX; i++) {
		bench_progress("parse %s %s: run %u/%u, then simdjson's", c->file->name, metric, i + 1,
		               opts->runs);
		if (parse_run(c, &v) != 0)
			return NULL;
		runs[i] = v;
		for (uint32_t p = 0; p < n_peers; p++) {
			parse_peer_t *pp = &peers[p];
			if (pp->n < 0)
				continue;
			int k = peer_measure(c, pp->mode, pp->force, 1, &pp->runs[pp->n], pp->impl,
			                     sizeof(pp->impl), &pp->check);
			pp->n = k < 0 ? k : pp->n + 1;
		}
	}
	return bench_add("parse", c->file->name, metric, "GB/s", runs, opts->runs);
}

/* The peer's runs as r's, unless it failed or found another answer. */
static void peer_set(bench_record_t *r, const parse_case_t *c, const parse_peer_t *p)
{
	char name[BENCH_PEER_NAME_BYTES_MAX];
	if (p->n == -ENOENT) /* no peer built: said once, at the start */
		return;
	if (p->n < 0 || (uint32_t)p->n != r->n_runs) {
		fprintf(stderr, "ringfill bench: simdjson peer failed on %s (%s); no ratio\n",
		        c->file->name, strerror(p->n < 0 ? -p->n : EPROTO));
		return;
	}
	if (p->check != c->check) {
		fprintf(stderr, "ringfill bench: %s: simdjson found %llu, ringfill %llu; no ratio\n",
		        c->file->name, (unsigned long long)p->check, (unsigned long long)c->check);
		return;
	}
	snprintf(name, sizeof(name), "simdjson-%s/%s", p->label, p->impl);
	bench_set_peer(r, name, p->runs, (uint32_t)p->n);
}

/* ---- the suite ---------------------------------------------------------------- */

/* Stage-1 kernels measured besides the one in use (issue 3's other targets),
 * each with the peer its target names. */
#define PARSE_KERNELS_MAX 8u

/* The full-parse records of each file, for the geometric means: [0] the
 * kernel in use (the headline), [1 + i] the other kernels, in
 * json_stage1_kernels order. */
static bench_record_t *parse_records[1 + PARSE_KERNELS_MAX][PARSE_FILES_MAX];
static uint32_t n_parse_records[1 + PARSE_KERNELS_MAX];

/* Run i of the summary is the geometric mean of run i over every file, for
 * ringfill and (when every file has one) for the peer: issue 3's targets are
 * stated on this mean. Nothing here is timed again. */
static int add_geomean(bench_record_t *const *recs, uint32_t n_recs)
{
	double runs[BENCH_RUNS_MAX] = {0}, peer[BENCH_RUNS_MAX] = {0};
	bool peers = true;
	if (n_recs < 2)
		return 0;
	uint32_t n = recs[0]->n_runs;
	for (uint32_t i = 0; i < n; i++) {
		double lr = 0, lp = 0;
		for (uint32_t f = 0; f < n_recs; f++) {
			const bench_record_t *r = recs[f];
			lr += log(r->runs[i]);
			peers = peers && r->has_peer && r->n_peer_runs == n &&
			        strcmp(r->peer_name, recs[0]->peer_name) == 0;
			lp += peers ? log(r->peer_runs[i]) : 0;
		}
		runs[i] = exp(lr / n_recs);
		peer[i] = exp(lp / n_recs);
	}
	bench_record_t *g = bench_add("parse", "geomean", recs[0]->metric, "GB/s", runs, n);
	if (!g)
		return -EIO;
	if (peers)
		bench_set_peer(g, recs[0]->peer_name, peer, n);
	return 0;
}

/* The simdjson kernel whose target a stage-1 kernel of ours is held to:
 * haswell for avx2, fallback for scalar, simdjson's own choice (NULL) for
 * avx512; sse42's peer is our avx2 (*none: no simdjson peer). */
static const char *kernel_peer(const char *kernel, bool *none)
{
	*none = strcmp(kernel, "sse42") == 0;
	return strcmp(kernel, "avx2") == 0 ? "haswell" : strcmp(kernel, "scalar") == 0 ? "fallback" : NULL;
}

/* The full parse of c's file with every other stage-1 kernel this CPU has,
 * as metric parse_gbps_KERNEL, next to: simdjson forced to `haswell` for
 * avx2 (plus a row parse_gbps_avx2_dflt with the same runs next to simdjson's
 * own choice, measured with them), our avx2 for sse42 (issue 3: at least
 * 0.75x; measured in turns with it, parse_turns), simdjson's
 * `fallback` for scalar, simdjson's own choice for avx512. The kernel in use
 * is restored. */
static int measure_kernels(const bench_opts_t *opts, parse_case_t *c)
{
	const json_stage1_kernel_t *k;
	size_t n_k = json_stage1_kernels(&k);
	const char *active = json_stage1_name();
	char metric[48];
	int rc = 0;
	const char *dom = c->file->ndjson ? "dom-ndjson" : "dom";
	for (size_t i = 0; i < n_k && i < PARSE_KERNELS_MAX && rc == 0; i++) {
		if (strcmp(k[i].name, active) == 0 || json_stage1_use(k[i].name) != 0)
			continue;
		snprintf(metric, sizeof(metric), "parse_gbps_%s", k[i].name);
		c->mode = MODE_PARSE;
		bool none;
		parse_peer_t peers[2] = {{.mode = dom, .label = "dom",
		                          .force = kernel_peer(k[i].name, &none)},
		                         {.mode = dom, .label = "dom", .force = NULL}};
		bool is_avx2 = strcmp(k[i].name, "avx2") == 0;
		bench_record_t *r;
		if (none && json_stage1_use("avx2") == 0) { /* sse42: in turns with our avx2 */
			const parse_side_t side[2] = {{MODE_PARSE, k[i].name}, {MODE_PARSE, "avx2"}};
			r = measure_turns(opts, c, metric, side, "ringfill-avx2");
		}
		else if (json_stage1_use(k[i].name) == 0)
			r = measure_paired(opts, c, metric, peers, none ? 0 : is_avx2 ? 2 : 1);
		else
			r = NULL;
		if (!r) {
			rc = -EIO;
			break;
		}
		if (is_avx2) {
			peer_set(r, c, &peers[0]);
			snprintf(metric, sizeof(metric), "parse_gbps_%s_dflt", k[i].name);
			bench_record_t *d = bench_add("parse", c->file->name, metric, "GB/s", r->runs,
			                              r->n_runs);
			if (!d) {
				rc = -EIO;
				break;
			}
			peer_set(d, c, &peers[1]);
		} else if (none) {
			/* measure_turns gave it its peer */
		} else {
			peer_set(r, c, &peers[0]);
		}
		parse_records[1 + i][n_parse_records[1 + i]++] = r;
	}
	if (json_stage1_use(active) != 0)
		rc = -EINVAL;
	return rc;
}

/* ---- whole process: `ringfill parse FILE` against a minimal simdjson
 * program validating the same file (bench/peer_simdjson.cpp validate) */

/* Runs argv with standard output and error on /dev/null; its exit status,
 * or -errno. Adds the child's user + system seconds to *cpu_s. */
static int spawn_quiet(char *const argv[], double *cpu_s)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -rc;
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR)
			return -errno;
	*cpu_s += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

/* Seconds (wall, or the children's CPU: RINGFILL_BENCH_CLOCK) of `times`
 * runs of each of argv[0] and argv[1], started in turns (one of each, then
 * the next pair), each of which must exit 0: secs[0] and secs[1]. -1 on a
 * failure. */
static int time_processes(char *const *const argv[2], uint64_t times, double secs[2])
{
	secs[0] = secs[1] = 0;
	for (uint64_t i = 0; i < times; i++)
		for (int k = 0; k < 2; k++) {
			double t0 = bench_now_s(), cpu = 0;
			if (spawn_quiet(argv[k], &cpu) != 0)
				return -1;
			secs[k] += clock_is_cpu() ? cpu : bench_now_s() - t0;
		}
	return 0;
}

/* process_gbps: file bytes x processes / seconds, the file read from the
 * page cache by each process. The two sides take turns process by process,
 * so a burst of load hits both; each run starts `times` pairs, the count
 * that filled target_s in the warm-up. */
static int measure_process(const bench_opts_t *opts, parse_case_t *c)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || !peer_path())
		return 0;
	self[n] = '\0';
	char *ours[] = {self, "parse", c->file->ndjson ? "--ndjson" : "--", (char *)c->file->path,
	                NULL};
	char *peer[] = {(char *)peer_path(), c->file->ndjson ? "validate-ndjson" : "validate",
	                (char *)c->file->path, NULL};
	bench_progress("parse %s process_gbps: warm-up", c->file->name);
	uint64_t times = 0;
	double t0 = bench_now_s(), cpu = 0;
	do {
		if (spawn_quiet(ours, &cpu) != 0 || spawn_quiet(peer, &cpu) != 0) {
			fprintf(stderr, "ringfill bench: %s: a parse process failed; no process case\n",
			        c->file->name);
			return 0;
		}
		times++;
	} while ((clock_is_cpu() ? cpu : bench_now_s() - t0) < 2 * c->target_s);
	double mine[BENCH_RUNS_MAX], theirs[BENCH_RUNS_MAX];
	bench_progress("parse %s process_gbps: %llu processes a run, %u runs each", c->file->name,
	               (unsigned long long)times, opts->runs);
	char *const *const both[2] = {ours, peer};
	for (uint32_t r = 0; r < opts->runs; r++) {
		double secs[2];
		if (time_processes(both, times, secs) != 0 || secs[0] <= 0 || secs[1] <= 0)
			return -EIO;
		mine[r] = (double)c->len * (double)times / secs[0] / 1e9;
		theirs[r] = (double)c->len * (double)times / secs[1] / 1e9;
	}
	bench_record_t *rec = bench_add("parse", c->file->name, "process_gbps", "GB/s", mine,
	                                opts->runs);
	if (!rec)
		return -EIO;
	bench_set_peer(rec, "simdjson-validate", theirs, opts->runs);
	return 0;
}

/* The same bytes streamed (records $.statuses[*]), next to the in-memory
 * full parse as the peer, in turns pass by pass (parse_turns): the ratio is
 * streaming's throughput over json_parse's on the document held whole.
 * Taken from the headline's runs, measured minutes earlier, it moved between
 * 0.81 and 0.95 on a loaded machine while the two paths' CPU over 300
 * alternating passes stayed 0.97-0.99 apart (2026-12-07). */
static int measure_stream(const bench_opts_t *opts, parse_case_t *c)
{
	json_error_t e;
	if (json_path_compile("$.statuses[*]", &c->sel, &e) != 0)
		return -EINVAL;
	const parse_side_t side[2] = {{MODE_STREAM, NULL}, {MODE_PARSE, NULL}};
	bench_record_t *r = measure_turns(opts, c, "stream_statuses_gbps", side,
	                                  "ringfill-in-memory");
	json_path_free(c->sel);
	c->sel = NULL;
	c->mode = MODE_PARSE;
	return r ? 0 : -EIO;
}

/* NDJSON files: `$[*]` on every line (each element of an array line, each
 * member's value of an object line: [*] takes both), read by items_visit,
 * against On-Demand's iterate_many reading the same values. */
static int measure_items(const bench_opts_t *opts, parse_case_t *c)
{
	json_error_t e;
	if (json_path_compile("$[*]", &c->sel, &e) != 0)
		return -EINVAL;
	if (!(c->scratch = malloc(c->len ? c->len : 1))) {
		json_path_free(c->sel);
		c->sel = NULL;
		return -ENOMEM;
	}
	c->mode = MODE_ITEMS;
	parse_peer_t od = {.mode = "ondemand-ndjson-items", .label = "ondemand", .force = NULL};
	bench_record_t *r = measure_paired(opts, c, "select_items_gbps", &od, 1);
	if (r)
		peer_set(r, c, &od);
	json_path_free(c->sel);
	c->sel = NULL;
	free(c->scratch);
	c->scratch = NULL;
	return r ? 0 : -EIO;
}

static int measure_file(const bench_opts_t *opts, parse_case_t *c)
{
	int rc;
	static const struct {
		parse_mode_t mode;
		const char *path, *metric, *peer_mode;
	} sels[] = {{MODE_IDS, "$.statuses[*].id", "select_statuses_id_gbps", "ondemand-ids"},
	            {MODE_NAMES, "$.statuses[*].user.screen_name", "select_screen_name_gbps",
	             "ondemand-names"}};
	c->mode = MODE_PARSE;
	c->iters = 0;
	if (parse_pass(c) != 0) {
		fprintf(stderr, "ringfill bench: %s is not valid JSON%s; skipped\n", c->file->name,
		        c->file->ndjson ? " lines" : "");
		return 0;
	}
	/* The kernel in use, next to simdjson's own choice and, when it is avx2
	 * or scalar, to the simdjson kernel its target names, as
	 * parse_gbps_KERNEL with the same runs (measure_kernels for the rest). */
	const char *active = json_stage1_name(), *dom = c->file->ndjson ? "dom-ndjson" : "dom";
	bool none, own = strcmp(active, "avx2") == 0 || strcmp(active, "scalar") == 0;
	parse_peer_t peers[2] = {{.mode = dom, .label = "dom", .force = NULL},
	                         {.mode = dom, .label = "dom", .force = kernel_peer(active, &none)}};
	bench_record_t *r = measure_paired(opts, c, "parse_gbps", peers, own ? 2 : 1);
	if (!r)
		return -EIO;
	peer_set(r, c, &peers[0]);
	parse_records[0][n_parse_records[0]++] = r;
	if (own) {
		char metric[48];
		snprintf(metric, sizeof(metric), "parse_gbps_%s", active);
		bench_record_t *d = bench_add("parse", c->file->name, metric, "GB/s", r->runs,
		                              r->n_runs);
		if (!d)
			return -EIO;
		peer_set(d, c, &peers[1]);
	}
	if ((rc = measure_kernels(opts, c)) != 0 || (rc = measure_process(opts, c)) != 0)
		return rc;
	if (c->file->twitter && (rc = measure_stream(opts, c)) != 0)
		return rc;
	for (size_t i = 0; c->file->twitter && i < sizeof(sels) / sizeof(*sels); i++) {
		json_error_t e;
		if (json_path_compile(sels[i].path, &c->sel, &e) != 0)
			return -EINVAL;
		c->mode = sels[i].mode;
		parse_peer_t od = {.mode = sels[i].peer_mode, .label = "ondemand", .force = NULL};
		r = measure_paired(opts, c, sels[i].metric, &od, 1);
		if (r)
			peer_set(r, c, &od);
		json_path_free(c->sel);
		c->sel = NULL;
		if (!r)
			return -EIO;
	}
	if (c->file->ndjson)
		return measure_items(opts, c);
	return 0;
}

int bench_suite_parse(const bench_opts_t *opts)
{
	int rc = files_collect(opts);
	if (rc != 0)
		return rc;
	if (!peer_path())
		fprintf(stderr, "ringfill bench: simdjson peer not available (built without "
		                "libsimdjson-dev, or moved); parse results have no ratio\n");
	parse_case_t c = {.target_s = opts->quick ? PARSE_RUN_SECONDS_QUICK : PARSE_RUN_SECONDS};
	if (clock_is_cpu())
		fprintf(stderr, "ringfill bench: parse: timing CPU seconds (RINGFILL_BENCH_CLOCK=cpu), "
		                "ringfill and simdjson alike\n");
	if (!(c.parser = json_parser_new(0)))
		return -ENOMEM;
	memset(n_parse_records, 0, sizeof(n_parse_records));
	/* The geomean is made of every file measured: --case geomean measures them all. */
	bool geomean = bench_case_selected(opts, "geomean");
	for (uint32_t i = 0; i < n_files && rc == 0; i++) {
		c.file = &files[i];
		if (!geomean && !bench_case_selected(opts, files[i].name))
			continue;
		rc = bench_read_file(files[i].path, PARSE_FILE_BYTES_MAX, &c.data, &c.len);
		if (rc != 0) {
			fprintf(stderr, "ringfill bench: %s: %s; skipped\n", files[i].path, strerror(-rc));
			rc = 0;
			continue;
		}
		rc = measure_file(opts, &c);
		free(c.data);
	}
	json_parser_free(c.parser);
	for (uint32_t k = 0; k <= PARSE_KERNELS_MAX && rc == 0 && geomean; k++)
		rc = add_geomean(parse_records[k], n_parse_records[k]);
	if (rc == 0 && n_files == 0)
		fprintf(stderr, "ringfill bench: parse: no files to measure\n");
	return rc;
}
