/* parse/parse_cli.c: `ringfill parse [--select PATH]... [--on-demand]
 * [--rows PATH [--count]] [--ndjson] FILE`.
 *
 * engine/main.c dispatches the subcommand here. Reads FILE whole (mmap for
 * regular files, read() for stdin and pipes), validates it with json_parse or
 * json_ndjson_each, and prints each value the --select paths pick as compact
 * JSON, one per line. With --rows, FILE is read in pieces through
 * json_stream (json_stream.c) instead, so a document of any size parses in
 * bounded memory, and the --select paths apply to each record ('@') or to the
 * envelope before the records ('$'). --on-demand selects with json_select
 * instead of building the whole tape (less is validated). Exit codes: 0 valid, 1 invalid,
 * 2 usage/file, 3 output. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parse/json_internal.h"
#include "parse/json_stream.h"

#define PARSE_SELECT_MAX 64u               /* --select options per run */
#define PARSE_OUT_FLUSH_BYTES (64u * 1024) /* stdout is written in chunks this big */
#define PARSE_READ_CHUNK_BYTES (64u * 1024)
#define PARSE_STREAM_READ_BYTES (4u << 20) /* --rows: FILE is read this much at a time */
/* Without --select, a regular FILE at least this big is validated streamed. */
#define PARSE_STREAM_VALIDATE_BYTES (16u << 20)

enum { EXIT_VALID = 0, EXIT_INVALID = 1, EXIT_USAGE = 2, EXIT_OUTPUT = 3 };

static const char usage_text[] =
	"usage: ringfill parse [--select PATH]... [--on-demand] [--rows PATH [--count]]\n"
	"                      [--ndjson] FILE\n"
	"Validate FILE as JSON (RFC 8259) and print each value PATH selects as compact\n"
	"JSON, one per line. FILE '-' reads standard input.\n"
	"  --select PATH  JSONPath subset: $ .name ['name'] [N] [*] (repeatable, max 64)\n"
	"  --rows PATH    stream FILE in bounded memory: each record PATH selects ($...)\n"
	"                 is printed as it completes, or each --select on it: @... from\n"
	"                 the record, $... from the values before the first record\n"
	"  --count        with --rows: print the number of records at the end\n"
	"  --on-demand    with --select: walk only what the paths need; values off the\n"
	"                 paths are skipped, not fully validated (docs/parse.md); NDJSON\n"
	"                 is then read whole rather than in pieces\n"
	"  --ndjson       one document per line (automatic for *.ndjson and *.jsonl)\n"
	"  --help         this text\n"
	"Exit: 0 valid, 1 invalid (FILE:OFFSET: reason (line L) on stderr), 2 usage or\n"
	"unreadable file, 3 output error.\n";

typedef struct {
	json_path_t *paths[PARSE_SELECT_MAX];
	unsigned n_paths;
	json_path_t *rows; /* --rows, or NULL */
	bool count;        /* --count */
	bool on_demand;    /* --on-demand */
	json_buf_t out;
	int out_error; /* 0 or -errno from writing stdout */
} cli_t;

typedef struct {
	char *data;
	size_t len;
	bool mapped;
} input_t;

static int flush_out(cli_t *c)
{
	size_t done = 0;
	while (done < c->out.len) {
		ssize_t w = write(STDOUT_FILENO, c->out.data + done, c->out.len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return c->out_error = -errno;
		done += (size_t)w;
	}
	c->out.len = 0;
	return 0;
}

static int print_value(void *ctx, const json_doc_t *d, uint32_t node)
{
	cli_t *c = ctx;
	int r = json_write(d, node, &c->out);
	if (r == 0)
		r = json_buf_append(&c->out, "\n", 1);
	if (r < 0)
		return c->out_error = r;
	if (c->out.len >= PARSE_OUT_FLUSH_BYTES)
		return flush_out(c);
	return 0;
}

static int print_selected(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	(void)path; /* json_select goes path by path, in the order given */
	return print_value(ctx, d, node);
}

static int select_doc(void *ctx, const json_doc_t *d, size_t line_offset)
{
	cli_t *c = ctx;
	(void)line_offset;
	for (unsigned i = 0; i < c->n_paths; i++) {
		int r = json_path_each(c->paths[i], d, 0, print_value, c);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Reads all of fd into a malloc'd buffer (stdin, pipes, empty files). */
static int read_all(int fd, input_t *in)
{
	json_buf_t b = {0};
	for (;;) {
		if (json_buf_reserve(&b, PARSE_READ_CHUNK_BYTES) < 0) {
			json_buf_free(&b);
			return -ENOMEM;
		}
		ssize_t r = read(fd, b.data + b.len, b.cap - b.len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			json_buf_free(&b);
			return e;
		}
		if (r == 0)
			break;
		b.len += (size_t)r;
	}
	*in = (input_t){.data = b.data, .len = b.len, .mapped = false};
	return 0;
}

static int load_input(const char *name, input_t *in)
{
	if (strcmp(name, "-") == 0)
		return read_all(STDIN_FILENO, in);
	int fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
	} else if (S_ISREG(st.st_mode) && st.st_size > 0) {
		/* MAP_POPULATE: the whole file is read anyway, and one call maps
		 * what the page cache holds instead of a fault per 16 pages. */
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (m == MAP_FAILED)
			r = -errno;
		else
			*in = (input_t){.data = m, .len = (size_t)st.st_size, .mapped = true};
	} else {
		r = read_all(fd, in);
	}
	close(fd);
	return r;
}

static void free_input(input_t *in)
{
	if (in->mapped)
		munmap(in->data, in->len);
	else
		free(in->data);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("ringfill parse: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n", stderr);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static int add_select(cli_t *c, const char *expr)
{
	if (c->n_paths == PARSE_SELECT_MAX)
		return usage_error("too many --select options (max 64), at '%s'", expr);
	json_error_t err;
	if (json_path_compile(expr, &c->paths[c->n_paths], &err) < 0) {
		fprintf(stderr, "ringfill parse: --select '%s': %s at offset %zu\n", expr, err.reason,
		        err.offset);
		return EXIT_USAGE;
	}
	c->n_paths++;
	return 0;
}

static int set_rows(cli_t *c, const char *expr)
{
	if (c->rows)
		return usage_error("more than one --rows given, at '%s'", expr);
	json_error_t err;
	if (json_path_compile(expr, &c->rows, &err) < 0) {
		fprintf(stderr, "ringfill parse: --rows '%s': %s at offset %zu\n", expr, err.reason,
		        err.offset);
		return EXIT_USAGE;
	}
	if (!json_path_is_rooted(c->rows))
		return usage_error("--rows '%s': a rows path starts with '$'", expr);
	return 0;
}

/* Parses argv into c; returns 0, or the exit code to return (-1: --help). */
static int parse_args(int argc, char **argv, cli_t *c, const char **file, bool *ndjson)
{
	bool options_done = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = 0;
		if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
			if (*file)
				return usage_error("more than one FILE given: '%s'", a);
			*file = a;
		} else if (strcmp(a, "--") == 0) {
			options_done = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			return -1;
		} else if (strcmp(a, "--ndjson") == 0) {
			*ndjson = true;
		} else if (strcmp(a, "--select") == 0) {
			if (i + 1 >= argc)
				return usage_error("%s needs a PATH", a);
			r = add_select(c, argv[++i]);
		} else if (strncmp(a, "--select=", 9) == 0) {
			r = add_select(c, a + 9);
		} else if (strcmp(a, "--rows") == 0) {
			if (i + 1 >= argc)
				return usage_error("%s needs a PATH", a);
			r = set_rows(c, argv[++i]);
		} else if (strncmp(a, "--rows=", 7) == 0) {
			r = set_rows(c, a + 7);
		} else if (strcmp(a, "--count") == 0) {
			c->count = true;
		} else if (strcmp(a, "--on-demand") == 0) {
			c->on_demand = true;
		} else {
			return usage_error("unknown option '%s'", a);
		}
		if (r != 0)
			return r;
	}
	if (!*file)
		return usage_error("%s", "no FILE given");
	if (c->count && !c->rows)
		return usage_error("%s", "--count needs --rows");
	if (c->on_demand && (c->n_paths == 0 || c->rows))
		return usage_error("%s", "--on-demand needs --select, and does not go with --rows");
	return 0;
}

/* Prints what is left, then says how the run ended: r is 0, -1 for invalid
 * input (*err), or a positive errno for FILE. Returns the exit code. */
static int report(cli_t *c, const char *file, int r, const json_error_t *err)
{
	if (c->out_error == 0)
		flush_out(c);
	if (c->out_error != 0) {
		fprintf(stderr, "ringfill parse: writing output: %s\n", strerror(-c->out_error));
		return EXIT_OUTPUT;
	}
	if (r < 0) {
		fprintf(stderr, "%s:%zu: %s (line %zu)\n", file, err->offset, err->reason, err->line);
		return EXIT_INVALID;
	}
	if (r > 0) {
		fprintf(stderr, "%s: %s\n", file, strerror(r));
		return EXIT_USAGE;
	}
	return EXIT_VALID;
}

/* The streaming paths (--rows, NDJSON) read FILE in pieces and hand each
 * to a sink; n == 0 is the end of the input. The sink returns 0, -1 for
 * invalid input (*err) or a negative errno from writing (c->out_error). */
typedef int (*sink_fn)(cli_t *c, void *sink, const char *piece, size_t n, json_error_t *err);

/* Returns 0, -1 (invalid or output error), or a positive errno for FILE. */
static int read_pieces(cli_t *c, const char *file, sink_fn fn, void *sink, json_error_t *err)
{
	int fd = strcmp(file, "-") == 0 ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
	struct stat st = {0}; /* if fstat fails: no mode, so read() as before */
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		fd = -1;
		errno = EISDIR;
	}
	if (fd < 0)
		return errno;
	if (fd != STDIN_FILENO && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size <= PARSE_STREAM_READ_BYTES) {
		/* A file no bigger than one piece is mapped and handed over whole:
		 * no copy into a fresh buffer, whose pages would each fault (68 of
		 * the 284 faults of `ringfill parse` on a 277 KB NDJSON file).
		 * Bigger files are read, so the pages they pass through are not
		 * counted in the process's memory. */
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (m != MAP_FAILED) {
			close(fd);
			int r = fn(c, sink, m, (size_t)st.st_size, err) != 0 ||
			                fn(c, sink, NULL, 0, err) != 0
			            ? -1
			            : 0;
			munmap(m, (size_t)st.st_size);
			return r;
		}
	}
	char *buf = malloc(PARSE_STREAM_READ_BYTES);
	int r = buf ? 0 : ENOMEM;
	for (bool eof = false; r == 0 && !eof;) {
		ssize_t n = read(fd, buf, PARSE_STREAM_READ_BYTES);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = errno;
			break;
		}
		eof = n == 0;
		r = fn(c, sink, buf, (size_t)n, err) != 0 ? -1 : 0;
	}
	free(buf);
	if (fd != STDIN_FILENO)
		close(fd);
	return r;
}

typedef struct {
	json_stream_t *s;
	size_t n_recs;
	bool quiet; /* validate only: nothing is printed per record */
} rows_sink_t;

/* --rows: the --select paths on one record; '$' paths read the envelope. */
static int select_record(cli_t *c, json_stream_t *s, const json_doc_t *rec)
{
	for (unsigned i = 0; i < c->n_paths; i++) {
		const json_doc_t *d = rec;
		json_doc_t env;
		if (json_path_is_rooted(c->paths[i])) {
			if (json_stream_envelope(s, &env) < 0)
				continue; /* nothing kept before the first record */
			d = &env;
		}
		int r = json_path_each(c->paths[i], d, 0, print_value, c);
		if (r != 0)
			return r;
	}
	if (c->n_paths == 0 && !c->count)
		return print_value(c, rec, 0);
	return 0;
}

static int rows_piece(cli_t *c, void *sink, const char *piece, size_t n, json_error_t *err)
{
	rows_sink_t *rs = sink;
	if (n)
		json_stream_feed(rs->s, piece, n);
	else
		json_stream_finish(rs->s);
	json_stream_record_t rec;
	int r;
	while ((r = json_stream_next(rs->s, &rec, err)) == JSON_STREAM_RECORD) {
		rs->n_recs++;
		if (!rs->quiet && (r = select_record(c, rs->s, &rec.doc)) != 0)
			return r;
	}
	return r < 0 ? -1 : 0;
}

/* --rows PATH: FILE through json_stream. */
static int run_rows(cli_t *c, const char *file)
{
	bool dollar = false;
	for (unsigned i = 0; i < c->n_paths; i++)
		dollar |= json_path_is_rooted(c->paths[i]);
	json_stream_opts_t o = {.keep_envelope = dollar};
	rows_sink_t rs = {.s = json_stream_new(c->rows, &o)};
	json_error_t err;
	int r = rs.s ? read_pieces(c, file, rows_piece, &rs, &err) : ENOMEM;
	json_stream_free(rs.s);
	if (r == 0 && c->count) {
		char line[32];
		int k = snprintf(line, sizeof line, "%zu\n", rs.n_recs);
		if (json_buf_append(&c->out, line, (size_t)k) < 0)
			c->out_error = -ENOMEM;
	}
	return report(c, file, r, &err);
}

static int ndjson_piece(cli_t *c, void *sink, const char *piece, size_t n, json_error_t *err)
{
	if (n)
		return json_ndjson_stream_feed(sink, piece, n, select_doc, c, err);
	return json_ndjson_stream_finish(sink, select_doc, c, err);
}

/* NDJSON: FILE in pieces through json_ndjson_stream (bounded by the
 * longest line, not the file). */
static int run_ndjson(cli_t *c, const char *file)
{
	json_parser_t *p = json_parser_new(0);
	json_ndjson_stream_t *st = p ? json_ndjson_stream_new(p, 0) : NULL;
	json_error_t err;
	int r = st ? read_pieces(c, file, ndjson_piece, st, &err) : ENOMEM;
	json_ndjson_stream_free(st);
	json_parser_free(p);
	return report(c, file, r, &err);
}

/* Whether FILE is a regular file big enough to validate streamed. */
static bool worth_streaming(const char *file)
{
	struct stat st;
	return strcmp(file, "-") != 0 && stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_size >= PARSE_STREAM_VALIDATE_BYTES;
}

/* Validation only (no --select) of a big file, streamed with the rows path
 * $.*[*]: a {"meta":...,"items":[...]} or [[...],...] document then needs
 * memory for one grandchild of the root at a time, and the verdict and error
 * are json_parse's. Returns the exit code, or -1 when a value was over the
 * stream's limit (or memory ran out): the caller then parses FILE whole. */
static int validate_streamed(cli_t *c, const char *file)
{
	json_path_t *rows;
	json_error_t err;
	if (json_path_compile("$.*[*]", &rows, &err) < 0)
		return -1;
	rows_sink_t rs = {.s = json_stream_new(rows, NULL), .quiet = true};
	int r = rs.s ? read_pieces(c, file, rows_piece, &rs, &err) : ENOMEM;
	json_stream_free(rs.s);
	json_path_free(rows);
	if (r == ENOMEM || (r < 0 && strcmp(err.reason, JSON_E_VALUE_TOO_LARGE) == 0))
		return -1;
	return report(c, file, r, &err);
}

/* A whole JSON document, validated before anything is printed; or, with
 * --on-demand and NDJSON, each line's values once that line is walked. */
static int run(cli_t *c, const char *file, bool ndjson)
{
	input_t in = {0};
	int r = load_input(file, &in);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", file, strerror(-r));
		return EXIT_USAGE;
	}
	json_parser_t *p = json_parser_new(0);
	if (!p) {
		free_input(&in);
		fprintf(stderr, "ringfill parse: %s\n", strerror(ENOMEM));
		return EXIT_OUTPUT;
	}
	json_error_t err;
	json_doc_t doc;
	if (c->on_demand && ndjson)
		r = json_select_ndjson(p, in.data, in.len, (const json_path_t *const *)c->paths,
		                       c->n_paths, print_selected, c, &err);
	else if (c->on_demand)
		r = json_select(p, in.data, in.len, (const json_path_t *const *)c->paths, c->n_paths,
		                print_selected, c, &err);
	else if ((r = json_parse(p, in.data, in.len, &doc, &err)) == 0)
		r = select_doc(c, &doc, 0);
	int code = report(c, file, r < 0 ? -1 : 0, &err);
	json_parser_free(p);
	free_input(&in);
	return code;
}

int parse_main(int argc, char **argv)
{
	cli_t c = {0};
	const char *file = NULL;
	bool ndjson = false;
	int code = parse_args(argc, argv, &c, &file, &ndjson);
	if (code == -1) {
		fputs(usage_text, stdout);
		code = EXIT_VALID;
	} else if (code == 0) {
		if (ends_with(file, ".ndjson") || ends_with(file, ".jsonl"))
			ndjson = true;
		if (c.rows && ndjson)
			code = usage_error("%s", "--rows reads one JSON document, not NDJSON");
		else if (c.rows)
			code = run_rows(&c, file);
		else if (ndjson && c.on_demand)
			code = run(&c, file, true);
		else if (ndjson)
			code = run_ndjson(&c, file);
		else if (c.n_paths == 0 && worth_streaming(file) &&
		         (code = validate_streamed(&c, file)) >= 0)
			; /* done */
		else
			code = run(&c, file, false);
	}
	for (unsigned i = 0; i < c.n_paths; i++)
		json_path_free(c.paths[i]);
	json_path_free(c.rows);
	json_buf_free(&c.out);
	return code;
}
