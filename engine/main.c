/* engine/main.c: the `ringfill` command: dispatches to run, status, parse,
 * and runs a backfill: options → database and job import (store/) → the
 * writer thread → the io_uring loop (engine/loop.c) → exit code (DESIGN §3). */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <sqlite3.h>

#include "bench/bench.h"
#include "engine/alloc.h"
#include "engine/jobfile.h"
#include "engine/loop.h"
#include "engine/options.h"
#include "net/tls.h"
#include "net/url.h"
#include "parse/json.h"
#include "rf_config.h"
#include "store/batch.h"
#include "store/store.h"
#include "store/writer.h"

#define EXIT_OK 0
#define EXIT_JOBS_FAILED 1
#define EXIT_USAGE 2
#define EXIT_FATAL 3

static void print_version(void)
{
	printf("ringfill %s\n", RINGFILL_VERSION);
	printf("  json stage 1: %s\n", json_stage1_name());
	printf("  OpenSSL %s, SQLite %s, liburing %s\n", OpenSSL_version(OPENSSL_VERSION_STRING),
	       sqlite3_libversion(), LIBURING_VERSION);
	char alloc[192];
	printf("  allocator: %s\n", alloc_describe(alloc, sizeof alloc));
}

/* mkdir -p, at start-up on the main thread, before the loop runs. */
static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == 0) {
			char c = *p;
			*p = 0;
			if (mkdir(buf, 0755) && errno != EEXIST)
				return -errno;
			*p = c;
			if (!c)
				break;
		}
	}
	struct stat st;
	if (stat(path, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* What a run works on: its source, where the jobs come from, its tables. */
typedef struct {
	jobfile_t *jf;        /* NULL without a job file */
	char source[PATH_MAX + 8];
	const char *input;    /* the URL list or the key list */
	store_template_t tmpl; /* .url set for a template source */
	table_spec_t *tables; /* the job file's, or single (one inferred --table) */
	uint32_t n_tables;
	table_spec_t *single;
	files_list_t files;             /* a `files` source, expanded */
	const paginate_spec_t *page;    /* a `paginate` source */
} plan_t;

/* --dry-run with a template: the key list and the first URLs' shape. */
static int dry_run_keys(const plan_t *p)
{
	FILE *f = fopen(p->input, "r");
	if (!f) {
		fprintf(stderr, "ringfill run: %s: %s\n", p->input, strerror(errno));
		return EXIT_USAGE;
	}
	char *line = NULL;
	size_t cap = 0, keys = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s = line + strspn(line, " \t\r\n");
		if (*s && *s != '#')
			keys++;
	}
	free(line);
	fclose(f);
	printf("dry run: %zu keys in %s, each fetched as %s\n", keys, p->input, p->tmpl.url);
	return EXIT_OK;
}

/* --dry-run of a files or paginate source: what would be read or fetched. */
static int dry_run_source(const run_opts_t *o, const plan_t *p)
{
	if (p->page) {
		printf("dry run: pages from %s, the cursor at %s sent as ?%s=, items at %s",
		       p->page->url, json_path_text(p->page->cursor_path), p->page->cursor_param,
		       json_path_text(p->page->items));
		if (p->page->emit)
			printf(", each fetched as %s", p->page->emit);
		else
			printf(" are the rows");
		printf("; at most %llu pages\n", (unsigned long long)p->page->max_pages);
	} else {
		for (size_t i = 0; i < p->files.n && i < 10; i++)
			printf("  READ %s\n", p->files.jobs[i].url + strlen(FILES_URL_PREFIX));
		printf("dry run: %zu files%s from %s\n", p->files.n, p->files.n > 10 ? " (first 10 shown)"
		                                                                     : "", p->input);
	}
	jobfile_print_plan(stdout, o, p->source, p->tables, p->n_tables);
	printf("nothing was changed\n");
	return EXIT_OK;
}

/* --dry-run: says what would be fetched, reading only the URL file. */
static int dry_run(const run_opts_t *o, const plan_t *p)
{
	if (p->page || p->files.n)
		return dry_run_source(o, p);
	if (p->tmpl.url) {
		int r = dry_run_keys(p);
		if (r == EXIT_OK)
			jobfile_print_plan(stdout, o, p->source, p->tables, p->n_tables);
		if (r == EXIT_OK)
			printf("nothing was changed\n");
		return r;
	}
	/* The list goes through the run's own import, into a database in
	 * memory: the URLs and malformed lines are the ones a run would find
	 * (before 2026-12-08 a reading of its own disagreed: a URL ending in a
	 * tab was malformed, a bad manifest line was not). */
	store_t *mem;
	store_import_t imp;
	char err[STORE_ERR_BYTES];
	if (store_open(":memory:", &mem, err, sizeof err) ||
	    store_import(mem, p->source, o->urls, NULL, &imp, err, sizeof err)) {
		fprintf(stderr, "ringfill run: %s\n", err);
		return EXIT_FATAL;
	}
	sqlite3_stmt *q;
	uint64_t ok = 0;
	if (sqlite3_prepare_v2(store_db(mem),
	                       "SELECT url, error FROM _ringfill_jobs ORDER BY id", -1, &q,
	                       NULL) == SQLITE_OK) {
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char *url = (const char *)sqlite3_column_text(q, 0);
			if (url && ok++ < 10)
				printf("  GET %s\n", url);
			else if (!url)
				printf("  %s\n", (const char *)sqlite3_column_text(q, 1));
		}
		sqlite3_finalize(q);
	}
	store_close(mem);
	printf("dry run: %llu URLs%s, %llu malformed lines in %s\n", (unsigned long long)ok,
	       ok > 10 ? " (first 10 shown)" : "", (unsigned long long)imp.malformed, o->urls);
	if (p->jf) {
		jobfile_print_plan(stdout, o, p->source, p->tables, p->n_tables);
		printf("nothing was changed\n");
		return EXIT_OK;
	}
	printf("  into %s, table \"%s\", rows %s%s%s; nothing was changed\n", o->db, o->table, o->rows,
	       o->raw ? ", raw bodies under " : "", o->raw ? o->raw : "");
	return EXIT_OK;
}

/* The source (DESIGN §4: "job:" + the job file, or "urls:" + the list),
 * the list to import, and the tables: the job file's, or one inferred table
 * from --rows/--table. */
static int plan_make(run_opts_t *o, plan_t *p)
{
	const jobfile_t *jf = p->jf;
	if (jf && !(o->set & OPT_SET_URLS) && jf->kind == JOBFILE_SOURCE_TEMPLATE) {
		p->tmpl.url = jf->template_url;
		o->urls = jf->keys;
	} else if (jf && !(o->set & OPT_SET_URLS) && jf->kind == JOBFILE_SOURCE_URLS) {
		o->urls = jf->urls;
	}
	p->input = o->urls;
	if (jf && !(o->set & OPT_SET_URLS) && jf->kind == JOBFILE_SOURCE_FILES)
		p->input = jf->files;
	if (jf && !(o->set & OPT_SET_URLS) && jf->kind == JOBFILE_SOURCE_PAGINATE) {
		p->page = &jf->page;
		p->input = jf->page.url;
	}
	if (jf) {
		snprintf(p->source, sizeof(p->source), "%s", jf->source);
	} else {
		char real[PATH_MAX];
		if (!realpath(o->urls, real))
			snprintf(real, sizeof real, "%s", o->urls);
		snprintf(p->source, sizeof(p->source), "urls:%s", real);
	}
	if (jf && jf->n_tables) {
		p->tables = jf->tables;
		p->n_tables = jf->n_tables;
		return 0;
	}
	p->single = calloc(1, sizeof(*p->single));
	if (!p->single || !(p->single->name = strdup(o->table))) {
		fprintf(stderr, "ringfill run: out of memory\n");
		return EXIT_FATAL;
	}
	json_error_t e;
	/* Pages without an emit template: their items are the rows. */
	const char *rows = p->page && !p->page->emit && !(o->set & OPT_SET_ROWS)
	                       ? json_path_text(p->page->items)
	                       : o->rows;
	if (json_path_compile(rows, &p->single->rows, &e)) {
		fprintf(stderr, "ringfill run: --rows '%s': at byte %zu: %s\n", rows, e.offset,
		        e.reason);
		return EXIT_USAGE;
	}
	if (rows[0] != '$') { /* as a job file's rows */
		fprintf(stderr, "ringfill run: --rows '%s': a rows path starts at the document, "
		        "'$' (an '@' path has no row to start from)\n", rows);
		return EXIT_USAGE;
	}
	p->tables = p->single;
	p->n_tables = 1;
	return 0;
}

static void plan_free(plan_t *p)
{
	table_specs_free(p->single, p->single ? 1 : 0);
	files_list_free(&p->files);
	jobfile_free(p->jf);
}

/* Checks everything a usage error could be before anything is written. */
/* An input file that cannot be read as one: not there, not readable, or a
 * directory (which access() lets through, and whose read then failed as a
 * fatal error after the database was made). True with errno set. */
static bool unreadable(const char *path)
{
	struct stat st;
	if (access(path, R_OK) || stat(path, &st))
		return true;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		return true;
	}
	return false;
}

static int run_check_inputs(run_opts_t *o, plan_t *p)
{
	int r = plan_make(o, p);
	if (r)
		return r;
	bool files = p->jf && !(o->set & OPT_SET_URLS) && p->jf->kind == JOBFILE_SOURCE_FILES;
	if (o->download_only && (files || p->page)) {
		/* Either would end with jobs done and no rows: a file marked done
		 * unread, a first page done with no cursor followed. */
		fprintf(stderr,
		        files ? "ringfill run: %s: --download-only: the files source has nothing "
		                "to download; load the files without it\n"
		              : "ringfill run: %s: --download-only: the paginate source cannot be "
		                "followed without parsing its pages; run it without --download-only\n",
		        p->jf->path);
		return EXIT_USAGE;
	}
	if (files) {
		char err[STORE_ERR_BYTES];
		if (files_expand(p->input, &p->files, err, sizeof err)) {
			fprintf(stderr, "ringfill run: %s: source.files: %s\n", p->jf->path, err);
			return EXIT_USAGE;
		}
	} else if (!p->page && unreadable(p->input)) {
		fprintf(stderr, "ringfill run: %s: %s\n", p->input, strerror(errno));
		return EXIT_USAGE;
	}
	if (o->cacert) {
		/* Loaded once here, as the loop will: a file that holds no
		 * certificate is a usage error before anything is written. (A
		 * files run never connects, and never loads it.) */
		tls_client_t tls;
		char err[400];
		if (unreadable(o->cacert)) {
			fprintf(stderr, "ringfill run: --cacert %s: %s\n", o->cacert, strerror(errno));
			return EXIT_USAGE;
		}
		if (!files) {
			if (tls_client_init(&tls, o->cacert, err, sizeof err)) {
				fprintf(stderr, "ringfill run: --cacert %s\n", err);
				return EXIT_USAGE;
			}
			tls_client_free(&tls);
		}
	}
	return 0;
}

/* The loop has ended, but the writer may still be committing, or waiting
 * for another process's write lock (up to --db-timeout). SIGINT and SIGTERM
 * are blocked in every thread, so read them here: the first stops that wait
 * (the writer gives up, uncommitted jobs stay pending), a second exits at
 * once, as during the run. The writer's end wakes the wait at once through
 * done_eventfd (a 50 ms tick looks again if an fd could not be made).
 * Returns the signal seen, or 0. */
static int writer_await(pipe_t *pipe)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN},
	                        {.fd = pipe->done_eventfd, .events = POLLIN}};
	int seen = 0;
	while (!atomic_load_explicit(&pipe->writer_done, memory_order_acquire)) {
		if (poll(fds, 2, 50) <= 0)
			continue; /* the tick, EINTR */
		uint64_t count;
		if (fds[1].revents && read(pipe->done_eventfd, &count, sizeof count) < 0)
			assert(errno == EAGAIN || errno == EINTR);
		struct signalfd_siginfo si;
		if (!fds[0].revents || read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
			continue;
		int sig = (int)si.ssi_signo;
		if (seen) {
			fprintf(stderr, "\nringfill: second signal, exiting at once\n");
			_exit(128 + sig);
		}
		seen = sig;
		atomic_store_explicit(&pipe->stopping, true, memory_order_release);
		fprintf(stderr, "\nringfill: %s: stopping the wait for the database; "
		                "signal again to exit at once\n", strsignal(sig));
	}
	if (sfd >= 0)
		close(sfd);
	return seen;
}

/* The run proper: the writer thread and the loop, then the exit code. */
static int run_backfill(const run_opts_t *o, store_t *st, const plan_t *p, uint64_t pending,
                        int64_t run_id)
{
	pipe_t *pipe = calloc(1, sizeof *pipe);
	json_parser_t *vars_parser = json_parser_new(0);
	if (!pipe || !vars_parser) {
		free(pipe);
		json_parser_free(vars_parser);
		return EXIT_FATAL;
	}
	pipe->loop_eventfd = eventfd(0, EFD_CLOEXEC);
	pipe->done_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	writer_config_t wc = {.table = p->tables[0].name, .source = p->source,
	                      .commit_rows = o->commit_rows, .commit_ms = o->commit_ms,
	                      .run_id = run_id, .tables = p->tables, .n_tables = p->n_tables};
	writer_t *w = NULL;
	int r = pipe->loop_eventfd < 0 ? -errno : writer_start(st, &wc, pipe, &w);
	if (r) {
		fprintf(stderr, "ringfill run: cannot start the writer: %s\n", strerror(-r));
		free(pipe);
		json_parser_free(vars_parser);
		return EXIT_FATAL;
	}
	loop_config_t lc = {.opts = o, .pipe = pipe, .tables = p->tables, .n_tables = p->n_tables,
	                    .vars_parser = vars_parser, .jobs_total = pending,
	                    .local_files = p->files.n > 0, .paginate = p->page};
	loop_result_t res;
	memset(&res, 0, sizeof res);
	int lr = loop_run(&lc, &res);
	if (lr) { /* the loop never started: tell the writer to finish */
		batch_t *end = batch_new(BATCH_END, 0);
		while (end && !ring_push(&pipe->to_writer, end))
			doorbell_ring(&pipe->writer_bell);
		doorbell_ring(&pipe->writer_bell);
	}
	int late = writer_await(pipe);
	if (!res.signal)
		res.signal = late;
	int wr = writer_join(w);
	/* Job descriptors the loop never took back belong to us now. */
	for (job_desc_t *d; (d = ring_pop(&pipe->to_loop));)
		free(d);
	if (!lr)
		progress_final(o, &res, atomic_load(&pipe->jobs_done_committed),
		               atomic_load(&pipe->jobs_failed_committed),
		               atomic_load(&pipe->rows_committed));
	int code = EXIT_OK;
	if (lr) {
		run_say(o, "error", "ringfill run: %s", res.message);
		code = lr == -EINVAL ? EXIT_USAGE : EXIT_FATAL;
	} else if (wr && res.signal && atomic_load(&pipe->lock_wait_cancelled)) {
		run_say(o, "stopped", "ringfill run: stopped: %s", pipe->fatal_msg);
		code = 128 + res.signal;
	} else if (wr || res.outcome == LOOP_FATAL) {
		run_say(o, "stopped", "ringfill run: stopped: %s", wr ? pipe->fatal_msg : res.message);
		if (wr && pipe->fatal_hint[0])
			run_say(o, "stopped", "ringfill run: %s", pipe->fatal_hint);
		else
			run_say(o, "stopped", "ringfill run: completed jobs are committed; run the same "
			                      "command again to resume");
		code = EXIT_FATAL;
	} else if (res.outcome == LOOP_INTERRUPTED) {
		code = 128 + res.signal;
	}
	ring_destroy(&pipe->to_writer);
	ring_destroy(&pipe->to_loop);
	close(pipe->loop_eventfd);
	if (pipe->done_eventfd >= 0)
		close(pipe->done_eventfd);
	free(pipe);
	json_parser_free(vars_parser);
	return code;
}

/* store_pages_rebase's URL of a page: the job file's, for its cursor. */
static int page_url_of(void *ctx, const char *cursor, char *out, size_t cap)
{
	return paginate_page_url(ctx, cursor, strlen(cursor), out, cap);
}

/* The database, the import of the source, the run, the exit code. */
static int run_store(run_opts_t *o, const plan_t *p)
{
	char err[STORE_ERR_BYTES];
	store_t *st;
	if (store_open(o->db, &st, err, sizeof err)) {
		fprintf(stderr, "ringfill run: %s\n", err);
		return EXIT_FATAL;
	}
	if (o->db_timeout_s >= 0.0)
		store_set_patience(st, (uint32_t)(o->db_timeout_s * 1000.0));
	if (p->page)
		store_set_page_limit(st, p->page->max_pages);
	store_import_t imp;
	store_counts_t counts;
	int code;
	store_job_t first = {PAGINATE_FIRST_KEY, p->page ? p->page->url : NULL};
	const char *noun = p->page ? "first pages" : p->files.n ? "files" : p->tmpl.url ? "keys"
	                                                                                : "URLs";
	int ir = p->page      ? store_import_list(st, p->source, &first, 1, &imp, err, sizeof err)
	         : p->files.n ? store_import_files(st, p->source, p->files.jobs, p->files.n, &imp, err,
	                                           sizeof err)
	                      : store_import(st, p->source, p->input, p->tmpl.url ? &p->tmpl : NULL,
	                                     &imp, err, sizeof err);
	uint64_t pages_changed = 0;
	if (!ir && p->page) /* an edited url or cursor_param reaches the pages not done too */
		ir = store_pages_rebase(st, p->source, page_url_of, (void *)p->page, &pages_changed,
		                        err, sizeof err);
	imp.changed += pages_changed;
	if (ir ||
	    store_job_counts(st, p->source, &counts, err, sizeof err)) {
		run_say(o, "error", "ringfill run: %s", err);
		code = EXIT_FATAL;
	} else {
		run_say(o, "import",
		        "ringfill: %s: %llu %s (%llu new, %llu malformed); %llu jobs to fetch, "
		        "%llu already done",
		        p->input, (unsigned long long)imp.lines, noun, (unsigned long long)imp.added,
		        (unsigned long long)imp.malformed, (unsigned long long)counts.pending,
		        (unsigned long long)counts.done);
		if (p->files.links)
			run_say(o, "import",
			        "ringfill: %s: %zu paths name a file another path names too (a link): "
			        "it is loaded once",
			        p->input, p->files.links);
		if (imp.same_file)
			run_say(o, "import",
			        "ringfill: %s: %llu files are known already under another path (the "
			        "pattern changed): not loaded again",
			        p->input, (unsigned long long)imp.same_file);
		if (imp.changed)
			run_say(o, "import",
			        "ringfill: %s: %llu jobs not done yet take their new URL or fields from "
			        "it, and are pending again",
			        p->input, (unsigned long long)imp.changed);
		/* A kept URL is said even with --quiet: the user may not expect it. */
		if (imp.kept)
			run_say(o, "kept",
			        "ringfill: %s: %llu jobs keep their old URL: part of their rows is "
			        "committed from it (a checkpoint); `ringfill status` lists them",
			        p->input, (unsigned long long)imp.kept);
		int64_t run_id = 0;
		if (store_run_begin(st, p->source, &run_id, err, sizeof err)) {
			run_say(o, "error", "ringfill run: %s", err);
			store_close(st);
			return EXIT_FATAL;
		}
		code = run_backfill(o, st, p, counts.pending, run_id);
		if (code == EXIT_OK) {
			if (store_job_counts(st, p->source, &counts, err, sizeof err)) {
				run_say(o, "error", "ringfill run: %s", err);
				code = EXIT_FATAL;
			} else if (counts.failed || counts.pending) {
				/* Pending after a whole run: made pending while it went,
				 * behind the jobs it had fetched (`ringfill retry`, or
				 * another run importing into this source). */
				code = EXIT_JOBS_FAILED;
				if (counts.failed)
					run_say(o, "summary", "ringfill: %llu jobs failed (see: ringfill status %s)",
					        (unsigned long long)counts.failed, o->db);
				if (counts.pending)
					run_say(o, "summary",
					        "ringfill: %llu jobs became pending while this run went (ringfill "
					        "retry, or another run of this source): the next run fetches "
					        "them",
					        (unsigned long long)counts.pending);
			}
		}
		/* The run's row gets its end even when the run failed; when even
		 * that cannot be written, status shows the run as not finished. */
		if (store_run_end(st, run_id, code, err, sizeof err))
			run_say(o, "error", "ringfill run: %s", err);
	}
	store_close(st);
	return code;
}

static int run_main(int argc, char **argv)
{
	run_opts_t o;
	int r = options_parse_run(argc, argv, &o);
	if (r)
		return r == 1 ? EXIT_OK : EXIT_USAGE;
	plan_t plan;
	memset(&plan, 0, sizeof plan);
	if (o.jobfile) {
		char err[JOBFILE_ERR_BYTES];
		if (jobfile_load(o.jobfile, &plan.jf, err, sizeof err)) {
			fprintf(stderr, "ringfill run: %s\n", err);
			return EXIT_USAGE;
		}
		if (jobfile_apply(plan.jf, &o)) {
			plan_free(&plan);
			return EXIT_USAGE;
		}
	}
	if (options_proxy_from_env(&o) || (r = run_check_inputs(&o, &plan))) {
		plan_free(&plan);
		return r ? r : EXIT_USAGE;
	}
	if (o.dry_run) {
		r = dry_run(&o, &plan);
		plan_free(&plan);
		return r;
	}
	static char raw[PATH_MAX];
	if (o.raw) {
		snprintf(raw, sizeof raw, "%s", o.raw);
		for (size_t n = strlen(raw); n > 1 && raw[n - 1] == '/';)
			raw[--n] = 0;
		o.raw = raw;
		if ((r = make_dirs(o.raw))) {
			fprintf(stderr, "ringfill run: --raw %s: %s\n", o.raw, strerror(-r));
			plan_free(&plan);
			return EXIT_FATAL;
		}
	}
	r = run_store(&o, &plan);
	plan_free(&plan);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		options_usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		options_usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		print_version();
		return EXIT_OK;
	}
	/* The loop takes SIGINT/SIGTERM through a signalfd; every thread
	 * started from here on inherits the blocked mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (!strcmp(cmd, "run")) {
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		return run_main(argc - 1, argv + 1);
	}
	if (!strcmp(cmd, "status"))
		return status_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "parse"))
		return parse_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "retry"))
		return retry_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "bench"))
		return bench_main(argc - 1, argv + 1);
	fprintf(stderr, "ringfill: unknown command '%s' (see ringfill --help)\n", cmd);
	return EXIT_USAGE;
}
