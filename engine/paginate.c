/* engine/paginate.c: a `paginate` page on the loop thread. The page's body
 * (fetched like any job's) is parsed; each item the items path selects emits
 * a job from the emit template, or, without one, the page's rows are the
 * tables' rows (their rows path defaults to the items path); the cursor at
 * cursor_path makes the next page's job. The new jobs travel in the page's
 * batch (store/batch.h) and the writer inserts them in the transaction that
 * marks the page done (store_jobs_emit), so a kill -9 can lose or duplicate
 * none. A loop is found there too: a repeated cursor by the next page's
 * key, a repeated page by its body's sha256, an endless chain by the page
 * count (max_pages, store_set_page_limit). */
#include "engine/loop_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGINATE_CURSOR_BYTES_MAX 2048u /* a longer cursor fails the page */
#define PAGINATE_VALUE_BYTES_MAX 2048u  /* an item's {NAME} value, before encoding */

bool paginate_is_page(const loop_t *l, const job_t *j)
{
	const char *k = j->desc->key;
	return l->cfg->paginate && (!strcmp(k, PAGINATE_FIRST_KEY) ||
	                            !strncmp(k, PAGINATE_KEY_PREFIX, strlen(PAGINATE_KEY_PREFIX)));
}

/* One page being read. */
typedef struct {
	const paginate_spec_t *p;
	const job_t *j;
	batch_t *b;
	uint32_t items;
	json_buf_t vars;
	int nomem;
} page_t;

/* An item that makes no job is recorded as a failed job of its own, so it
 * shows in `ringfill status`, and the chain goes on. */
static int item_failed(page_t *pg, const char *why)
{
	char key[512], reason[BATCH_ERROR_BYTES_MAX];
	int kn = snprintf(key, sizeof key, "%.400s item %u", pg->j->desc->key, pg->items);
	int rn = snprintf(reason, sizeof reason, "page %.200s, item %u: %s", pg->j->desc->key,
	                  pg->items, why);
	if (batch_add_job(pg->b, BATCH_EMIT_FAILED, key, (size_t)kn, NULL, 0, reason,
	                  rn < (int)sizeof reason ? (size_t)rn : sizeof reason - 1))
		pg->nomem = 1;
	return pg->nomem;
}

/* One item: its fields become the job's variables ({"value": item} when it
 * is not an object), the template's {NAME} its field NAME, percent-encoded. */
static int page_item(void *ctx, const json_doc_t *d, uint32_t node)
{
	page_t *pg = ctx;
	const paginate_spec_t *p = pg->p;
	pg->items++;
	if (!p->emit)
		return 0;
	bool obj = json_type(d, node) == JSON_OBJECT;
	pg->vars.len = 0;
	if ((!obj && json_buf_append(&pg->vars, "{\"value\":", 9)) || json_write(d, node, &pg->vars) ||
	    (!obj && json_buf_append(&pg->vars, "}", 1)))
		return pg->nomem = 1;
	uint32_t field = obj ? json_object_get(d, node, p->emit_var, strlen(p->emit_var))
	                     : !strcmp(p->emit_var, "value") ? node : JSON_NONE;
	char value[PAGINATE_VALUE_BYTES_MAX + 1], enc[URL_BYTES_MAX + 1], url[URL_BYTES_MAX + 1],
		why[300];
	long vn = store_json_text(d, field, true, value, sizeof value);
	if (vn < 0) {
		if (vn == -2)
			snprintf(why, sizeof why, "field \"%s\" longer than %u bytes", p->emit_var,
			         PAGINATE_VALUE_BYTES_MAX);
		else
			snprintf(why, sizeof why, "no string or number field \"%s\" for the emit template",
			         p->emit_var);
		return item_failed(pg, why);
	}
	const char *open = strchr(p->emit, '{'), *close = strchr(p->emit, '}');
	long en = url_percent_encode(value, (size_t)vn, enc, sizeof enc);
	int un = en < 0 ? -1 : snprintf(url, sizeof url, "%.*s%s%s", (int)(open - p->emit), p->emit,
	                                enc, close + 1);
	url_t u;
	const char *reason = "longer than 8192 bytes";
	if (url_template_dot_segment(p->emit, open, close, value, (size_t)vn)) {
		un = -1;
		reason = "the value is a path segment of its own (empty, \".\" or \"..\") that would "
		         "name another path";
	}
	if (un < 0 || (size_t)un >= sizeof url || url_parse(url, (size_t)un, &u, &reason)) {
		snprintf(why, sizeof why, "malformed URL from the emit template: %s", reason);
		return item_failed(pg, why);
	}
	if (batch_add_job(pg->b, 0, url, (size_t)un, url, (size_t)un, pg->vars.data, pg->vars.len))
		pg->nomem = 1;
	return pg->nomem;
}

int paginate_page_url(const paginate_spec_t *p, const char *cursor, size_t clen, char *out,
                      size_t cap)
{
	char enc[URL_BYTES_MAX + 1];
	if (url_percent_encode(cursor, clen, enc, sizeof enc) < 0)
		return -1;
	const char *q = strchr(p->url, '?');
	size_t plen = strlen(p->cursor_param), n = q ? (size_t)(q - p->url) : strlen(p->url);
	if (n >= cap)
		return -1;
	memcpy(out, p->url, n);
	char sep = '?';
	for (const char *a = q ? q + 1 : NULL; a && *a;) {
		size_t len = strcspn(a, "&");
		size_t name = strcspn(a, "=&");
		if (len && !(name == plen && !memcmp(a, p->cursor_param, plen))) {
			if (n + 1 + len >= cap)
				return -1;
			out[n++] = sep;
			memcpy(out + n, a, len);
			n += len;
			sep = '&';
		}
		a += len + (a[len] == '&');
	}
	int w = snprintf(out + n, cap - n, "%c%s=%s", sep, p->cursor_param, enc);
	return w < 0 || (size_t)w >= cap - n ? -1 : (int)(n + (size_t)w);
}

static int first_node(void *ctx, const json_doc_t *d, uint32_t node)
{
	(void)d;
	*(uint32_t *)ctx = node;
	return 1;
}

/* The next page's job, unless the page ends the chain: no items, or a
 * missing, null or empty cursor. */
static void page_next(loop_t *l, page_t *pg, const json_doc_t *doc)
{
	const paginate_spec_t *p = pg->p;
	(void)l;
	if (!pg->items)
		return;
	uint32_t c = JSON_NONE;
	json_path_each(p->cursor_path, doc, 0, first_node, &c);
	if (c == JSON_NONE || json_type(doc, c) == JSON_NULL)
		return;
	char cursor[PAGINATE_CURSOR_BYTES_MAX + 1], url[URL_BYTES_MAX + 1];
	char key[sizeof(PAGINATE_KEY_PREFIX) + PAGINATE_CURSOR_BYTES_MAX];
	long cn = store_json_text(doc, c, true, cursor, sizeof cursor);
	if (cn < 0) {
		if (cn == -2)
			batch_fail(pg->b, ERROR_CLASS_PERMANENT, "the cursor at %s is longer than %u bytes",
			           json_path_text(p->cursor_path), PAGINATE_CURSOR_BYTES_MAX);
		else
			batch_fail(pg->b, ERROR_CLASS_PERMANENT, "the cursor at %s is not a string or a number",
			           json_path_text(p->cursor_path));
		return;
	}
	if (cn == 0)
		return;
	if (memchr(cursor, '\0', (size_t)cn)) {
		/* The key holds the cursor as text: one with a NUL would be cut
		 * there, and name another page than its URL does. */
		batch_fail(pg->b, ERROR_CLASS_PERMANENT, "the cursor at %s holds a NUL byte",
		           json_path_text(p->cursor_path));
		return;
	}
	url_t u;
	const char *why = "longer than 8192 bytes";
	int un = paginate_page_url(p, cursor, (size_t)cn, url, sizeof url);
	if (un < 0 || url_parse(url, (size_t)un, &u, &why)) {
		batch_fail(pg->b, ERROR_CLASS_PERMANENT, "the next page's URL for cursor \"%.200s\": %s",
		           cursor, why);
		return;
	}
	int kn = snprintf(key, sizeof key, "%s%s", PAGINATE_KEY_PREFIX, cursor);
	if (batch_add_job(pg->b, BATCH_EMIT_NEXT_PAGE, key, (size_t)kn, url, (size_t)un, NULL, 0))
		pg->nomem = 1;
}

void paginate_page(loop_t *l, job_t *j, batch_t *b, const json_doc_t *vars)
{
	const paginate_spec_t *p = l->cfg->paginate;
	json_doc_t doc;
	json_error_t e = {0, 0, NULL};
	const char *body = j->body.data ? j->body.data : "";
	size_t bom = job_bom_len(body, j->body.len); /* passed over; offsets count it */
	if (json_parse(l->parser, body + bom, j->body.len - bom, &doc, &e) != 0) {
		char note[JOB_CODING_NOTE_BYTES];
		batch_fail(b, ERROR_CLASS_PERMANENT, "invalid JSON at byte offset %zu (line %zu): %s%s",
		           bom + e.offset, e.line, e.reason ? e.reason : "syntax error",
		           job_coding_note(j, note, sizeof note));
		return;
	}
	page_t pg = {.p = p, .j = j, .b = b};
	const char *reason = NULL;
	json_path_each(p->items, &doc, 0, page_item, &pg);
	if (!pg.nomem && !p->emit &&
	    batch_add_doc(b, l->cfg->tables, l->cfg->n_tables, &doc, vars, &reason)) {
		batch_fail(b, ERROR_CLASS_PERMANENT, "cannot turn the records into rows: %s",
		           reason ? reason : "unknown reason");
	} else if (!pg.nomem) {
		page_next(l, &pg, &doc);
	}
	json_buf_free(&pg.vars);
	if (pg.nomem)
		batch_fail(b, ERROR_CLASS_TRANSIENT, "out of memory for the page's jobs");
}
