/* engine/jobfile.h: `ringfill run JOB.json`: the job file (DESIGN §3,
 * docs/jobfile.md), read and checked completely before anything runs.
 *
 * engine/main.c loads it, lets the command line override it
 * (jobfile_apply), imports its source (store/store.h) and hands its table
 * specs (store/batch.h) to the loop and the writer. */
#ifndef RF_JOBFILE_H
#define RF_JOBFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/options.h"
#include "engine/sources.h"
#include "store/batch.h"

#define JOBFILE_BYTES_MAX (16u << 20)  /* a job file is configuration, not data */
#define JOBFILE_ERR_BYTES 1024u
#define JOBFILE_HEADERS_MAX 64u
#define JOBFILE_TABLE_NAME_BYTES_MAX 256u
#define JOBFILE_VAR_NAME_BYTES_MAX 128u

typedef enum {
	JOBFILE_SOURCE_NONE = 0, /* no "source": --urls must say where the jobs come from */
	JOBFILE_SOURCE_URLS,     /* {"urls": FILE} */
	JOBFILE_SOURCE_TEMPLATE, /* {"template": URL with one {NAME}, "keys": FILE} */
	JOBFILE_SOURCE_FILES,    /* {"files": GLOB or DIRECTORY} */
	JOBFILE_SOURCE_PAGINATE, /* {"paginate": {"url": ..., ...}} */
} jobfile_source_t;

/* Everything the file says. Strings are NUL-terminated and owned; relative
 * paths are already resolved against the job file's directory. */
typedef struct {
	char *path;   /* as given on the command line (messages name it) */
	char *source; /* "job:" + its absolute path: the jobs' source in the database */
	jobfile_source_t kind;
	char *urls;         /* URLS */
	char *template_url; /* TEMPLATE */
	char *template_var; /* TEMPLATE: NAME */
	char *keys;         /* TEMPLATE */
	char *files;        /* FILES: the pattern or directory */
	paginate_spec_t page; /* PAGINATE */
	char *db, *raw, *cacert; /* NULL when absent */
	bool has_concurrency, has_per_host, has_retries, has_timeout;
	uint32_t concurrency, per_host, retries;
	double timeout_s;
	bool has_db_timeout; /* "db_timeout_s": as --db-timeout, which overrides it */
	double db_timeout_s;
	char *header_names[JOBFILE_HEADERS_MAX], *header_values[JOBFILE_HEADERS_MAX];
	size_t header_lines[JOBFILE_HEADERS_MAX]; /* each value's line, for messages */
	uint32_t n_headers;
	table_spec_t *tables; /* NULL (n_tables 0): "tables" absent, --rows/--table decide */
	uint32_t n_tables;
} jobfile_t;

/* Reads and validates path: JSON with // line comments (outside strings).
 * Returns 0, -1 with "FILE:LINE: KEY: reason" in err (a usage error: exit
 * 2), naming the line of the offending value. */
int jobfile_load(const char *path, jobfile_t **out, char *err, size_t err_cap);
void jobfile_free(jobfile_t *jf);

/* Fills the options the command line did not set (o->set) from the job
 * file. Headers: the file's are added except those whose name a --header
 * already gave. Returns 0, or 2 after printing why (e.g. a ${VAR} that is
 * not set). */
int jobfile_apply(const jobfile_t *jf, run_opts_t *o);

/* The plan that --dry-run prints: source, database, each table with its
 * rows path, columns, key and mode. */
void jobfile_print_plan(FILE *f, const run_opts_t *o, const char *source_desc,
                        const table_spec_t *tables, uint32_t n_tables);

#endif
