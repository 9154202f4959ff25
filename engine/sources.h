/* engine/sources.h: the `files` and `paginate` job-file sources
 * (docs/jobfile.md).
 *
 * engine/jobfile.c fills a paginate_spec_t; engine/main.c expands a files
 * pattern (files_expand, on the main thread before the loop starts) and
 * imports the jobs (store/store.h: store_import_list). On the loop thread,
 * engine/files.c reads a local file through io_uring and engine/paginate.c
 * turns a page into rows and new jobs (engine/loop_internal.h). */
#ifndef RF_SOURCES_H
#define RF_SOURCES_H

#include <stddef.h>

#include "parse/json.h"
#include "store/store.h"

/* A local file's job: its url is this prefix + the file's absolute path. */
#define FILES_URL_PREFIX "file:"
/* Job keys of a paginate source: the first page is "page", the page of
 * cursor C is "page:" C; emitted jobs are keyed by their URL. */
#define PAGINATE_FIRST_KEY STORE_PAGE_FIRST_KEY /* "page" */
#define PAGINATE_KEY_PREFIX STORE_PAGE_KEY_PREFIX /* "page:" */
/* At most this many pages in a chain unless "max_pages" says otherwise: the
 * last guard against a server that loops under ever new cursors. */
#define PAGINATE_MAX_PAGES_DEFAULT 1000000u

/* {"paginate": {...}}: every string owned, paths compiled. */
typedef struct {
	char *url;                /* the first page: an https URL */
	char *cursor_param;       /* the query parameter that carries the cursor */
	json_path_t *cursor_path; /* where a page holds the next cursor (one value) */
	json_path_t *items;       /* the page's items */
	char *emit;               /* URL template with one {NAME}; NULL: items are rows */
	char *emit_var;           /* NAME */
	uint64_t max_pages;       /* pages in the chain at most (store_set_page_limit) */
} paginate_spec_t;

void paginate_spec_free(paginate_spec_t *p);
/* The URL of the page of `cursor`: p->url with the query parameter
 * p->cursor_param set to the percent-encoded cursor (an existing one is
 * replaced, the other parameters keep their order). Its length, or -1 when
 * it does not fit in cap. */
int paginate_page_url(const paginate_spec_t *p, const char *cursor, size_t clen, char *out,
                      size_t cap);

/* The files a `files` source names: a directory (its regular files, not
 * recursing) or a glob(3) pattern (the regular files it matches). Sorted by
 * path. Keys are the paths relative to the directory, or to the pattern's
 * base (its directories before the first one with * ? or [). A file that
 * two paths name (a link and its target, or two links) is listed once,
 * under the first path in that order: its URL is its resolved path, so it
 * would be two jobs loading one file twice. */
typedef struct {
	store_job_t *jobs; /* key and url ("file:" + absolute path), owned */
	size_t n;
	size_t links; /* paths left out: a link to a file listed under another path */
} files_list_t;

/* 0, or -1 with "PATTERN: reason" in err (no match is an error: a typo
 * would otherwise make an empty run). */
int files_expand(const char *pattern, files_list_t *out, char *err, size_t err_cap);
void files_list_free(files_list_t *l);

#endif
