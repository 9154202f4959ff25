/* engine/jobfile.c: reads and checks a job file (engine/jobfile.h,
 * docs/jobfile.md): // comments are blanked out (byte offsets kept, so a
 * message names the right line), the JSON is parsed with parse/json.h, and
 * every key is checked against what it may be before main.c opens anything. */
#include "engine/jobfile.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "net/url.h"

/* The state of one load: the text, its parsed document, and where the
 * first error goes. */
typedef struct {
	const char *path;
	char *dir;   /* the job file's directory, for relative paths */
	char *text;  /* comments blanked */
	size_t len;
	json_doc_t doc;
	jobfile_t *jf;
	char *err;
	size_t err_cap;
	uint64_t rows_given; /* bit i: tables[i] has its own "rows" */
} load_t;

/* A key path for messages: "tables[1].columns.x". */
typedef struct {
	char s[512];
} keypath_t;

static size_t line_of(const load_t *ld, size_t offset)
{
	size_t line = 1;
	for (size_t i = 0; i < offset && i < ld->len; i++)
		line += ld->text[i] == '\n';
	return line;
}

/* "FILE:LINE: KEY: reason" for node n; returns -1 for the caller to pass up. */
static int fail(load_t *ld, uint32_t n, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(load_t *ld, uint32_t n, const char *key, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	size_t line = line_of(ld, n == JSON_NONE ? 0 : ld->doc.nodes[n].start);
	snprintf(ld->err, ld->err_cap, "%s:%zu: %s%s%s", ld->path, line, key, *key ? ": " : "",
	         why);
	return -1;
}

/* base.name, cut to fit: a message key, nothing depends on it whole. */
static void key_join(keypath_t *out, const char *base, const char *name)
{
	size_t n = 0, cap = sizeof(out->s) - 1;
	for (const char *p = base; *p && n < cap; p++)
		out->s[n++] = *p;
	if (*base && n < cap)
		out->s[n++] = '.';
	for (const char *p = name; *p && n < cap; p++)
		out->s[n++] = *p;
	out->s[n] = '\0';
}

/* ---- text: comments out, offsets kept ----------------------------------- */

/* Replaces every // comment outside strings with spaces up to the end of its
 * line: the JSON parser then sees plain JSON, and every byte keeps its
 * offset, so error lines stay right. */
static void blank_comments(char *s, size_t len)
{
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		if (in_string) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_string = false;
		} else if (s[i] == '"') {
			in_string = true;
		} else if (s[i] == '/' && i + 1 < len && s[i + 1] == '/') {
			while (i < len && s[i] != '\n')
				s[i++] = ' ';
		}
	}
}

static int read_text(load_t *ld)
{
	FILE *f = fopen(ld->path, "rb");
	if (!f) {
		snprintf(ld->err, ld->err_cap, "%s: %s", ld->path, strerror(errno));
		return -1;
	}
	ld->text = malloc(JOBFILE_BYTES_MAX + 1);
	if (!ld->text) {
		fclose(f);
		snprintf(ld->err, ld->err_cap, "%s: out of memory", ld->path);
		return -1;
	}
	ld->len = fread(ld->text, 1, JOBFILE_BYTES_MAX + 1, f);
	int bad = ferror(f);
	fclose(f);
	if (bad || ld->len > JOBFILE_BYTES_MAX) {
		snprintf(ld->err, ld->err_cap, "%s: %s", ld->path,
		         bad ? "read error" : "larger than 16 MiB; not a job file");
		return -1;
	}
	blank_comments(ld->text, ld->len);
	return 0;
}

/* ---- values ------------------------------------------------------------- */

static const char *type_word(const json_doc_t *d, uint32_t n)
{
	switch (json_type(d, n)) {
	case JSON_NULL: return "null";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NUMBER: return "a number";
	case JSON_STRING: return "a string";
	case JSON_ARRAY: return "an array";
	case JSON_OBJECT: return "an object";
	}
	return "?";
}

/* A string value, unescaped into a new allocation. NUL bytes are refused:
 * every string here becomes a C string (a path, a name, a URL). */
static int get_string(load_t *ld, uint32_t n, const char *key, char **out)
{
	if (json_type(&ld->doc, n) != JSON_STRING)
		return fail(ld, n, key, "expected a string, not %s", type_word(&ld->doc, n));
	size_t len = json_string_get(&ld->doc, n, NULL, 0);
	char *s = malloc(len + 1);
	if (!s)
		return fail(ld, n, key, "out of memory");
	json_string_get(&ld->doc, n, s, len);
	s[len] = '\0';
	if (strlen(s) != len) {
		free(s);
		return fail(ld, n, key, "contains a NUL byte");
	}
	*out = s;
	return 0;
}

static int get_nonempty(load_t *ld, uint32_t n, const char *key, char **out)
{
	if (get_string(ld, n, key, out) != 0)
		return -1;
	if (!**out) {
		free(*out);
		*out = NULL;
		return fail(ld, n, key, "must not be empty");
	}
	return 0;
}

/* A path relative to the job file's directory (absolute ones stay). */
static int get_path(load_t *ld, uint32_t n, const char *key, char **out)
{
	char *p;
	if (get_nonempty(ld, n, key, &p) != 0)
		return -1;
	if (p[0] == '/' || !strcmp(ld->dir, ".")) {
		*out = p;
		return 0;
	}
	size_t len = strlen(ld->dir) + 1 + strlen(p) + 1;
	*out = malloc(len);
	if (*out)
		snprintf(*out, len, "%s/%s", ld->dir, p);
	free(p);
	return *out ? 0 : fail(ld, n, key, "out of memory");
}

static int get_u32(load_t *ld, uint32_t n, const char *key, uint32_t lo, uint32_t hi,
                   uint32_t *out)
{
	int64_t v;
	if (json_type(&ld->doc, n) != JSON_NUMBER || json_number_int64(&ld->doc, n, &v) != 0 ||
	    v < lo || v > hi)
		return fail(ld, n, key, "expected a whole number from %u to %u", lo, hi);
	*out = (uint32_t)v;
	return 0;
}

/* Seconds from lo to hi, fractions allowed (like the flags' values). */
static int get_secs(load_t *ld, uint32_t n, const char *key, double lo, double hi, double *out)
{
	double x;
	if (json_type(&ld->doc, n) != JSON_NUMBER || json_number_double(&ld->doc, n, &x) != 0 ||
	    !(x >= lo && x <= hi))
		return fail(ld, n, key, "expected seconds from %g to %g", lo, hi);
	*out = x;
	return 0;
}

/* Walks an object's members: for each, *name (unescaped, NUL-terminated,
 * at most name_cap - 1 bytes) and its value node. Duplicate names are
 * refused: the second would silently win otherwise. */
typedef int (*member_fn)(load_t *ld, const char *key, const char *name, uint32_t val,
                         void *ctx);

static int each_member(load_t *ld, uint32_t obj, const char *key, member_fn fn, void *ctx)
{
	const json_doc_t *d = &ld->doc;
	if (json_type(d, obj) != JSON_OBJECT)
		return fail(ld, obj, key, "expected an object, not %s", type_word(d, obj));
	uint32_t k = obj + 1;
	for (uint32_t i = 0; i < d->nodes[obj].count; i++) {
		uint32_t val = d->nodes[k].next;
		char name[BATCH_COLUMN_NAME_BYTES_MAX + 1];
		size_t len = json_string_get(d, k, name, sizeof(name) - 1);
		keypath_t kp;
		if (len >= sizeof(name)) {
			key_join(&kp, key, "...");
			return fail(ld, k, kp.s, "name longer than %u bytes", BATCH_COLUMN_NAME_BYTES_MAX);
		}
		name[len] = '\0';
		key_join(&kp, key, name);
		if (strlen(name) != len)
			return fail(ld, k, kp.s, "name contains a NUL byte");
		for (uint32_t j = 0, k2 = obj + 1; j < i; j++) {
			char other[BATCH_COLUMN_NAME_BYTES_MAX + 1];
			size_t ol = json_string_get(d, k2, other, sizeof(other) - 1);
			if (ol == len && !memcmp(other, name, len))
				return fail(ld, k, kp.s, "given twice");
			k2 = d->nodes[d->nodes[k2].next].next;
		}
		int rc = fn(ld, kp.s, name, val, ctx);
		if (rc != 0)
			return rc;
		k = d->nodes[val].next;
	}
	return 0;
}

static int unknown_key(load_t *ld, uint32_t val, const char *key, const char *expected)
{
	/* The key itself sits just before its value in the tape. */
	(void)val;
	return fail(ld, val, key, "unknown key (expected one of: %s)", expected);
}

/* ---- source ------------------------------------------------------------- */

/* The template's one {NAME}: NAME is letters, digits and '_' (not first a
 * digit), and no other brace appears. The rest must make an https URL. */
static int check_template(load_t *ld, uint32_t n, const char *key, const char *t, char **var)
{
	const char *open = strchr(t, '{'), *close = strchr(t, '}');
	if (!open || !close || close < open || strrchr(t, '{') != open || strrchr(t, '}') != close)
		return fail(ld, n, key, "expected exactly one {name} in the URL template");
	size_t name_len = (size_t)(close - open - 1);
	if (name_len == 0 || name_len >= JOBFILE_VAR_NAME_BYTES_MAX ||
	    isdigit((unsigned char)open[1]))
		return fail(ld, n, key, "expected exactly one {name} in the URL template");
	for (const char *p = open + 1; p < close; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return fail(ld, n, key, "{%.*s}: a variable name is letters, digits and '_'",
			            (int)name_len, open + 1);
	char probe[URL_BYTES_MAX + 1];
	int len = snprintf(probe, sizeof(probe), "%.*sx%s", (int)(open - t), t, close + 1);
	url_t u;
	const char *why = "longer than 8192 bytes";
	if (len < 0 || (size_t)len >= sizeof(probe) || url_parse(probe, (size_t)len, &u, &why))
		return fail(ld, n, key, "not a valid https URL template: %s", why);
	*var = strndup(open + 1, name_len);
	return *var ? 0 : fail(ld, n, key, "out of memory");
}

/* An object whose members may be the names in names[]: each value's node
 * goes to nodes[i] (JSON_NONE when absent); any other name is an unknown
 * key, and expected lists the names for the message. */
typedef struct {
	const char *const *names;
	uint32_t *nodes;
	size_t n;
	const char *expected;
} slots_t;

static int slot_member(load_t *ld, const char *key, const char *name, uint32_t val, void *ctx)
{
	const slots_t *sl = ctx;
	for (size_t i = 0; i < sl->n; i++)
		if (!strcmp(name, sl->names[i])) {
			sl->nodes[i] = val;
			return 0;
		}
	return unknown_key(ld, val, key, sl->expected);
}

static int load_slots(load_t *ld, uint32_t obj, const char *key, const char *const *names,
                      uint32_t *nodes, size_t n, const char *expected)
{
	for (size_t i = 0; i < n; i++)
		nodes[i] = JSON_NONE;
	slots_t sl = {names, nodes, n, expected};
	return each_member(ld, obj, key, slot_member, &sl);
}

static int compile_path(load_t *ld, uint32_t n, const char *key, const char *expr,
                        json_path_t **out);
static bool path_has_wildcard(const char *e);

/* A JSONPath from the page's root; one value unless many is set. */
static int page_path(load_t *ld, uint32_t n, const char *key, bool many, json_path_t **out)
{
	char *e;
	if (get_nonempty(ld, n, key, &e) != 0)
		return -1;
	int rc = 0;
	if (e[0] != '$')
		rc = fail(ld, n, key, "expected a JSONPath from the page's root ('$...')");
	else if (!many && path_has_wildcard(e))
		rc = fail(ld, n, key, "the cursor is one value: no wildcard in '%s'", e);
	else
		rc = compile_path(ld, n, key, e, out);
	free(e);
	return rc;
}

/* {"url", "cursor_param", "cursor_path", "items", "emit", "max_pages"}: the
 * first page's URL must be https and hold no fragment; the cursor
 * parameter's name is unreserved URL bytes, so it needs no encoding. */
static int load_paginate(load_t *ld, uint32_t n)
{
	static const char *const names[] = {"url",  "cursor_param", "cursor_path",
	                                    "items", "emit",        "max_pages"};
	enum { URL, PARAM, CURSOR, ITEMS, EMIT, MAX_PAGES, N_NAMES };
	uint32_t pn[N_NAMES];
	if (load_slots(ld, n, "source.paginate", names, pn, N_NAMES,
	               "url, cursor_param, cursor_path, items, emit, max_pages") != 0)
		return -1;
	paginate_spec_t *p = &ld->jf->page;
	uint32_t max_pages = PAGINATE_MAX_PAGES_DEFAULT;
	if (pn[MAX_PAGES] != JSON_NONE &&
	    get_u32(ld, pn[MAX_PAGES], "source.paginate.max_pages", 1, UINT32_MAX, &max_pages) != 0)
		return -1;
	p->max_pages = max_pages;
	static const char *const required[] = {"url", "cursor_path", "items"};
	uint32_t nodes[] = {pn[URL], pn[CURSOR], pn[ITEMS]};
	for (size_t i = 0; i < 3; i++)
		if (nodes[i] == JSON_NONE) {
			keypath_t kp;
			key_join(&kp, "source.paginate", required[i]);
			return fail(ld, n, kp.s, "missing (a paginate source needs url, cursor_path, items)");
		}
	url_t u;
	const char *why = "";
	if (get_nonempty(ld, pn[URL], "source.paginate.url", &p->url) != 0)
		return -1;
	if (url_parse(p->url, strlen(p->url), &u, &why) != 0 || strchr(p->url, '#'))
		return fail(ld, pn[URL], "source.paginate.url", "not a valid https URL: %s",
		            *why ? why : "it has a fragment");
	if (pn[PARAM] == JSON_NONE) {
		if (!(p->cursor_param = strdup("cursor")))
			return fail(ld, n, "source.paginate", "out of memory");
	} else {
		if (get_nonempty(ld, pn[PARAM], "source.paginate.cursor_param", &p->cursor_param) != 0)
			return -1;
		for (const char *c = p->cursor_param; *c; c++)
			if (!isalnum((unsigned char)*c) && !strchr("-._~", *c))
				return fail(ld, pn[PARAM], "source.paginate.cursor_param",
				            "a parameter name is letters, digits and - . _ ~");
	}
	if (page_path(ld, pn[CURSOR], "source.paginate.cursor_path", false, &p->cursor_path) != 0 ||
	    page_path(ld, pn[ITEMS], "source.paginate.items", true, &p->items) != 0)
		return -1;
	if (pn[EMIT] == JSON_NONE)
		return 0;
	if (get_nonempty(ld, pn[EMIT], "source.paginate.emit", &p->emit) != 0)
		return -1;
	return check_template(ld, pn[EMIT], "source.paginate.emit", p->emit, &p->emit_var);
}

static int load_source(load_t *ld, uint32_t n)
{
	static const char *const names[] = {"urls", "template", "keys", "files", "paginate"};
	enum { URLS, TMPL, KEYS, FILES, PAGE };
	uint32_t sn[5];
	if (load_slots(ld, n, "source", names, sn, 5, "urls, template, keys, files, paginate") != 0)
		return -1;
	jobfile_t *jf = ld->jf;
	int given = (sn[URLS] != JSON_NONE) + (sn[TMPL] != JSON_NONE || sn[KEYS] != JSON_NONE) +
	            (sn[FILES] != JSON_NONE) + (sn[PAGE] != JSON_NONE);
	if (given > 1)
		return fail(ld, n, "source", "give one of: urls, template and keys, files, paginate");
	if (sn[FILES] != JSON_NONE) {
		jf->kind = JOBFILE_SOURCE_FILES;
		return get_path(ld, sn[FILES], "source.files", &jf->files);
	}
	if (sn[PAGE] != JSON_NONE) {
		jf->kind = JOBFILE_SOURCE_PAGINATE;
		return load_paginate(ld, sn[PAGE]);
	}
	if (sn[URLS] != JSON_NONE) {
		jf->kind = JOBFILE_SOURCE_URLS;
		return get_path(ld, sn[URLS], "source.urls", &jf->urls);
	}
	if (sn[TMPL] == JSON_NONE && sn[KEYS] == JSON_NONE)
		return fail(ld, n, "source", "missing: urls, template and keys, files, or paginate");
	if (sn[TMPL] == JSON_NONE)
		return fail(ld, n, "source.template", "missing (keys needs a template)");
	if (sn[KEYS] == JSON_NONE)
		return fail(ld, n, "source.keys", "missing (a template needs a key list)");
	jf->kind = JOBFILE_SOURCE_TEMPLATE;
	if (get_nonempty(ld, sn[TMPL], "source.template", &jf->template_url) != 0 ||
	    check_template(ld, sn[TMPL], "source.template", jf->template_url, &jf->template_var))
		return -1;
	return get_path(ld, sn[KEYS], "source.keys", &jf->keys);
}

/* ---- http --------------------------------------------------------------- */

static int header_member(load_t *ld, const char *key, const char *name, uint32_t val, void *ctx)
{
	(void)ctx;
	jobfile_t *jf = ld->jf;
	if (!*name)
		return fail(ld, val, key, "empty header name");
	for (const char *p = name; *p; p++)
		if (!isgraph((unsigned char)*p) || *p == ':')
			return fail(ld, val, key, "bad character in header name");
	if (jf->n_headers == JOBFILE_HEADERS_MAX)
		return fail(ld, val, key, "more than %u headers", JOBFILE_HEADERS_MAX);
	char *v;
	if (get_string(ld, val, key, &v) != 0)
		return -1;
	if (strpbrk(v, "\r\n")) {
		free(v);
		return fail(ld, val, key, "header value contains a line break");
	}
	jf->header_values[jf->n_headers] = v;
	jf->header_lines[jf->n_headers] = line_of(ld, ld->doc.nodes[val].start);
	if (!(jf->header_names[jf->n_headers] = strdup(name))) {
		free(v);
		return fail(ld, val, key, "out of memory");
	}
	jf->n_headers++;
	return 0;
}

static int http_member(load_t *ld, const char *key, const char *name, uint32_t val, void *ctx)
{
	(void)ctx;
	jobfile_t *jf = ld->jf;
	if (!strcmp(name, "concurrency")) {
		jf->has_concurrency = true;
		return get_u32(ld, val, key, 1, 65536, &jf->concurrency);
	}
	if (!strcmp(name, "per_host")) {
		jf->has_per_host = true;
		return get_u32(ld, val, key, 1, 65536, &jf->per_host);
	}
	if (!strcmp(name, "retries")) {
		jf->has_retries = true;
		return get_u32(ld, val, key, 1, 1000, &jf->retries);
	}
	if (!strcmp(name, "timeout_s")) {
		jf->has_timeout = true;
		return get_secs(ld, val, key, 0.01, 86400.0, &jf->timeout_s);
	}
	if (!strcmp(name, "cacert"))
		return get_path(ld, val, key, &jf->cacert);
	if (!strcmp(name, "headers"))
		return each_member(ld, val, key, header_member, NULL);
	return unknown_key(ld, val, key,
	                   "concurrency, per_host, retries, timeout_s, cacert, headers");
}

/* ---- tables ------------------------------------------------------------- */

static int compile_path(load_t *ld, uint32_t n, const char *key, const char *expr,
                        json_path_t **out)
{
	json_error_t e;
	if (json_path_compile(expr, out, &e) != 0)
		return fail(ld, n, key, "bad JSONPath '%s': at byte %zu: %s", expr, e.offset,
		            e.reason);
	return 0;
}

/* A '*' outside a quoted name is a wildcard ('.*' or '[*]'): '*' is not a
 * name byte in the JSONPath subset. */
static bool path_has_wildcard(const char *e)
{
	char quote = 0;
	for (; *e; e++) {
		if (quote) {
			if (*e == '\\' && e[1])
				e++;
			else if (*e == quote)
				quote = 0;
		} else if (*e == '\'' || *e == '"') {
			quote = *e;
		} else if (*e == '*') {
			return true;
		}
	}
	return false;
}

/* "@.x", "$.x" or "{name}" into a column spec. */
static int column_expr(load_t *ld, uint32_t n, const char *key, column_spec_t *c)
{
	const char *e = c->expr;
	size_t len = strlen(e);
	if (e[0] == '{') {
		if (len < 3 || e[len - 1] != '}' || len - 2 >= JOBFILE_VAR_NAME_BYTES_MAX ||
		    memchr(e + 1, '{', len - 2) || memchr(e + 1, '}', len - 2))
			return fail(ld, n, key, "expected {variable}, '@.path' or '$.path'");
		c->from = COLUMN_FROM_VAR;
		c->var = strndup(e + 1, len - 2);
		return c->var ? 0 : fail(ld, n, key, "out of memory");
	}
	if (e[0] != '@' && e[0] != '$')
		return fail(ld, n, key,
		            "expected '@.path' (in the row), '$.path' (in the document) or {variable}");
	if (path_has_wildcard(e))
		return fail(ld, n, key, "a column holds one value: no wildcard in '%s' (select the "
		                        "array itself, with type json)", e);
	c->from = e[0] == '@' ? COLUMN_FROM_ROW : COLUMN_FROM_DOC;
	return compile_path(ld, n, key, e, &c->path);
}

static const char *const type_names[] = {"text", "integer", "real", "json", "boolean"};
static const column_type_t type_values[] = {COLUMN_TEXT, COLUMN_INTEGER, COLUMN_REAL,
                                            COLUMN_JSON, COLUMN_BOOLEAN};

typedef struct {
	column_spec_t *c;
	uint32_t path, type;
} colobj_t;

static int colobj_member(load_t *ld, const char *key, const char *name, uint32_t val, void *ctx)
{
	colobj_t *co = ctx;
	if (!strcmp(name, "path"))
		co->path = val;
	else if (!strcmp(name, "type"))
		co->type = val;
	else
		return unknown_key(ld, val, key, "path, type");
	return 0;
}

static int column_type(load_t *ld, uint32_t n, const char *key, column_spec_t *c)
{
	char *t;
	if (get_string(ld, n, key, &t) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (!strcmp(t, type_names[i])) {
			c->type = type_values[i];
			free(t);
			return 0;
		}
	free(t);
	return fail(ld, n, key, "expected one of text, integer, real, json, boolean");
}

typedef struct {
	table_spec_t *t;
} tblctx_t;

static int column_member(load_t *ld, const char *key, const char *name, uint32_t val, void *ctx)
{
	table_spec_t *t = ((tblctx_t *)ctx)->t;
	if (!*name)
		return fail(ld, val, key, "empty column name");
	if (!strcasecmp(name, "_job"))
		return fail(ld, val, key, "_job is the column of the job id; choose another name");
	for (uint32_t i = 0; i < t->n_cols; i++)
		if (!strcasecmp(t->cols[i].name, name))
			return fail(ld, val, key, "same name as column %s (names ignore letter case)",
			            t->cols[i].name);
	if (t->n_cols == BATCH_TABLE_COLUMNS_MAX)
		return fail(ld, val, key, "more than %u columns", BATCH_TABLE_COLUMNS_MAX);
	column_spec_t *c = &t->cols[t->n_cols++];
	if (!(c->name = strdup(name)))
		return fail(ld, val, key, "out of memory");
	uint32_t expr_node = val;
	char sub[600];
	if (json_type(&ld->doc, val) == JSON_OBJECT) {
		colobj_t co = {c, JSON_NONE, JSON_NONE};
		if (each_member(ld, val, key, colobj_member, &co) != 0)
			return -1;
		snprintf(sub, sizeof(sub), "%s.path", key);
		if (co.path == JSON_NONE)
			return fail(ld, val, sub, "missing");
		expr_node = co.path;
		if (co.type != JSON_NONE) {
			char tk[600];
			snprintf(tk, sizeof(tk), "%s.type", key);
			if (column_type(ld, co.type, tk, c) != 0)
				return -1;
		}
		key = sub;
	} else if (json_type(&ld->doc, val) != JSON_STRING) {
		return fail(ld, val, key, "expected a path string or {\"path\": ..., \"type\": ...}, "
		                          "not %s", type_word(&ld->doc, val));
	}
	if (get_nonempty(ld, expr_node, key, &c->expr) != 0)
		return -1;
	return column_expr(ld, expr_node, key, c);
}

/* An array of distinct non-empty strings, at most max of them. */
static int string_list(load_t *ld, uint32_t n, const char *key, uint32_t max, size_t bytes_max,
                       bool nonempty, char ***out, uint32_t *count)
{
	const json_doc_t *d = &ld->doc;
	if (json_type(d, n) != JSON_ARRAY)
		return fail(ld, n, key, "expected an array of strings, not %s", type_word(d, n));
	if (d->nodes[n].count > max)
		return fail(ld, n, key, "more than %u values", max);
	if (nonempty && d->nodes[n].count == 0)
		return fail(ld, n, key, "must not be empty");
	*out = calloc(d->nodes[n].count ? d->nodes[n].count : 1, sizeof(char *));
	if (!*out)
		return fail(ld, n, key, "out of memory");
	uint32_t e = n + 1;
	for (uint32_t i = 0; i < d->nodes[n].count; i++, e = d->nodes[e].next) {
		char item[64];
		snprintf(item, sizeof(item), "[%u]", i);
		char ik[600];
		snprintf(ik, sizeof(ik), "%s%s", key, item);
		char *s;
		if ((nonempty ? get_nonempty(ld, e, ik, &s) : get_string(ld, e, ik, &s)) != 0)
			return -1;
		(*out)[(*count)++] = s;
		if (strlen(s) > bytes_max)
			return fail(ld, e, ik, "longer than %zu bytes", bytes_max);
		for (uint32_t j = 0; j + 1 < *count; j++)
			if (!strcmp((*out)[j], s))
				return fail(ld, e, ik, "\"%s\" is given twice", s);
	}
	return 0;
}

typedef struct {
	table_spec_t *t;
	uint32_t name, rows, columns, key, mode, null_if;
} tnodes_t;

static int table_member(load_t *ld, const char *key, const char *name, uint32_t val, void *ctx)
{
	tnodes_t *tn = ctx;
	uint32_t *slot = !strcmp(name, "name")      ? &tn->name
	                 : !strcmp(name, "rows")    ? &tn->rows
	                 : !strcmp(name, "columns") ? &tn->columns
	                 : !strcmp(name, "key")     ? &tn->key
	                 : !strcmp(name, "mode")    ? &tn->mode
	                 : !strcmp(name, "null_if") ? &tn->null_if
	                                            : NULL;
	if (!slot)
		return unknown_key(ld, val, key, "name, rows, columns, key, mode, null_if");
	*slot = val;
	return 0;
}

static int table_mode(load_t *ld, uint32_t n, const char *key, table_spec_t *t)
{
	char *m;
	if (get_string(ld, n, key, &m) != 0)
		return -1;
	int rc = 0;
	if (!strcmp(m, "append"))
		t->mode = TABLE_APPEND;
	else if (!strcmp(m, "upsert"))
		t->mode = TABLE_UPSERT;
	else if (!strcmp(m, "ignore"))
		t->mode = TABLE_IGNORE;
	else
		rc = fail(ld, n, key, "expected one of append, upsert, ignore");
	free(m);
	return rc;
}

static int table_name(load_t *ld, uint32_t obj, uint32_t n, const char *base, uint32_t idx)
{
	keypath_t kp;
	key_join(&kp, base, "name");
	table_spec_t *t = &ld->jf->tables[idx];
	if (n == JSON_NONE)
		return fail(ld, obj, kp.s, "missing (every table needs a name)");
	if (get_nonempty(ld, n, kp.s, &t->name) != 0)
		return -1;
	if (strlen(t->name) > JOBFILE_TABLE_NAME_BYTES_MAX)
		return fail(ld, n, kp.s, "longer than %u bytes", JOBFILE_TABLE_NAME_BYTES_MAX);
	if (!strncasecmp(t->name, "_ringfill", 9))
		return fail(ld, n, kp.s, "names starting with _ringfill are reserved");
	if (!strncasecmp(t->name, "sqlite_", 7))
		return fail(ld, n, kp.s, "names starting with sqlite_ are SQLite's own");
	for (uint32_t i = 0; i < idx; i++)
		if (!strcasecmp(ld->jf->tables[i].name, t->name))
			return fail(ld, n, kp.s, "same name as tables[%u] (names ignore letter case)", i);
	return 0;
}

/* Key columns must be columns of the table when its columns are declared;
 * upsert and ignore need a key to decide what a conflict is. */
static int table_keys(load_t *ld, const tnodes_t *tn, uint32_t obj, const char *base)
{
	table_spec_t *t = tn->t;
	keypath_t kp;
	if (tn->key != JSON_NONE) {
		key_join(&kp, base, "key");
		if (string_list(ld, tn->key, kp.s, BATCH_KEY_COLUMNS_MAX, BATCH_COLUMN_NAME_BYTES_MAX,
		                true, &t->key, &t->n_key) != 0)
			return -1;
		uint32_t e = tn->key + 1;
		for (uint32_t i = 0; i < t->n_key; i++, e = ld->doc.nodes[e].next) {
			bool found = t->n_cols == 0;
			for (uint32_t c = 0; c < t->n_cols && !found; c++)
				found = !strcmp(t->cols[c].name, t->key[i]);
			if (!found)
				return fail(ld, e, kp.s, "\"%s\" is not one of the table's columns", t->key[i]);
		}
	}
	if (t->mode != TABLE_APPEND && !t->n_key) {
		key_join(&kp, base, "key");
		return fail(ld, tn->mode, kp.s, "mode %s needs a key: the columns that identify a row",
		            table_mode_name(t->mode));
	}
	(void)obj;
	return 0;
}

static int load_table(load_t *ld, uint32_t obj, uint32_t idx)
{
	keypath_t base;
	snprintf(base.s, sizeof(base.s), "tables[%u]", idx);
	table_spec_t *t = &ld->jf->tables[idx];
	tnodes_t tn = {t, JSON_NONE, JSON_NONE, JSON_NONE, JSON_NONE, JSON_NONE, JSON_NONE};
	if (each_member(ld, obj, base.s, table_member, &tn) != 0 ||
	    table_name(ld, obj, tn.name, base.s, idx) != 0)
		return -1;
	keypath_t kp;
	key_join(&kp, base.s, "rows");
	char *rows = NULL;
	if (tn.rows != JSON_NONE && get_nonempty(ld, tn.rows, kp.s, &rows) != 0)
		return -1;
	if (rows && rows[0] != '$') {
		free(rows);
		return fail(ld, tn.rows, kp.s, "expected a JSONPath from the document root ('$...')");
	}
	if (rows)
		ld->rows_given |= 1ull << idx;
	int rc = compile_path(ld, tn.rows == JSON_NONE ? obj : tn.rows, kp.s, rows ? rows : "$",
	                      &t->rows);
	free(rows);
	if (rc != 0)
		return -1;
	if (tn.columns != JSON_NONE) {
		key_join(&kp, base.s, "columns");
		uint32_t n = ld->doc.nodes[tn.columns].count;
		if (json_type(&ld->doc, tn.columns) == JSON_OBJECT && n == 0)
			return fail(ld, tn.columns, kp.s, "must not be empty (leave it out to infer them)");
		if (json_type(&ld->doc, tn.columns) == JSON_OBJECT &&
		    !(t->cols = calloc(n < BATCH_TABLE_COLUMNS_MAX ? n : BATCH_TABLE_COLUMNS_MAX,
		                       sizeof(*t->cols))))
			return fail(ld, tn.columns, kp.s, "out of memory");
		tblctx_t tc = {t};
		if (each_member(ld, tn.columns, kp.s, column_member, &tc) != 0)
			return -1;
	}
	if (tn.mode != JSON_NONE) {
		key_join(&kp, base.s, "mode");
		if (table_mode(ld, tn.mode, kp.s, t) != 0)
			return -1;
	}
	if (tn.null_if != JSON_NONE) {
		key_join(&kp, base.s, "null_if");
		if (string_list(ld, tn.null_if, kp.s, BATCH_NULL_IF_MAX, BATCH_NULL_IF_BYTES_MAX, false,
		                &t->null_if, &t->n_null_if) != 0)
			return -1;
	}
	return table_keys(ld, &tn, obj, base.s);
}

static int load_tables(load_t *ld, uint32_t n)
{
	const json_doc_t *d = &ld->doc;
	if (json_type(d, n) != JSON_ARRAY)
		return fail(ld, n, "tables", "expected an array of tables, not %s", type_word(d, n));
	uint32_t count = d->nodes[n].count;
	if (count == 0)
		return fail(ld, n, "tables", "must not be empty (leave it out to use --rows/--table)");
	if (count > BATCH_TABLES_MAX)
		return fail(ld, n, "tables", "more than %u tables", BATCH_TABLES_MAX);
	ld->jf->tables = calloc(count, sizeof(table_spec_t));
	if (!ld->jf->tables)
		return fail(ld, n, "tables", "out of memory");
	uint32_t e = n + 1;
	for (uint32_t i = 0; i < count; i++, e = d->nodes[e].next) {
		ld->jf->n_tables = i + 1; /* so jobfile_free frees what was filled */
		if (json_type(d, e) != JSON_OBJECT) {
			char k[32];
			snprintf(k, sizeof(k), "tables[%u]", i);
			return fail(ld, e, k, "expected an object, not %s", type_word(d, e));
		}
		if (load_table(ld, e, i) != 0)
			return -1;
	}
	return 0;
}

/* ---- the file ------------------------------------------------------------ */

static int root_member(load_t *ld, const char *key, const char *name, uint32_t val, void *ctx)
{
	(void)ctx;
	jobfile_t *jf = ld->jf;
	if (!strcmp(name, "source"))
		return load_source(ld, val);
	if (!strcmp(name, "db"))
		return get_path(ld, val, key, &jf->db);
	if (!strcmp(name, "raw"))
		return get_path(ld, val, key, &jf->raw);
	if (!strcmp(name, "http"))
		return each_member(ld, val, key, http_member, NULL);
	if (!strcmp(name, "tables"))
		return load_tables(ld, val);
	if (!strcmp(name, "db_timeout_s")) { /* as --db-timeout */
		jf->has_db_timeout = true;
		return get_secs(ld, val, key, 0.0, 86400.0, &jf->db_timeout_s);
	}
	return unknown_key(ld, val, key, "source, db, raw, http, tables, db_timeout_s");
}

/* The directory part of path ("." for a bare name) and "job:" + the
 * absolute path (the jobs' source). */
static int file_names(load_t *ld)
{
	const char *slash = strrchr(ld->path, '/');
	ld->dir = slash ? strndup(ld->path, slash == ld->path ? 1 : (size_t)(slash - ld->path))
	                : strdup(".");
	char abs[PATH_MAX];
	if (!realpath(ld->path, abs))
		snprintf(abs, sizeof(abs), "%s", ld->path);
	size_t n = strlen(abs) + 5;
	ld->jf->path = strdup(ld->path);
	ld->jf->source = malloc(n);
	if (!ld->dir || !ld->jf->path || !ld->jf->source) {
		snprintf(ld->err, ld->err_cap, "%s: out of memory", ld->path);
		return -1;
	}
	snprintf(ld->jf->source, n, "job:%s", abs);
	return 0;
}

/* A paginate source without "emit": the items are the rows, so a table
 * without its own "rows" takes the items path. */
static int page_rows(load_t *ld)
{
	jobfile_t *jf = ld->jf;
	if (jf->kind != JOBFILE_SOURCE_PAGINATE || jf->page.emit)
		return 0;
	for (uint32_t i = 0; i < jf->n_tables; i++) {
		if (ld->rows_given & (1ull << i))
			continue;
		json_path_free(jf->tables[i].rows);
		jf->tables[i].rows = NULL;
		if (compile_path(ld, 0, "source.paginate.items", json_path_text(jf->page.items),
		                 &jf->tables[i].rows) != 0)
			return -1;
	}
	return 0;
}

int jobfile_load(const char *path, jobfile_t **out, char *err, size_t err_cap)
{
	load_t ld = {.path = path, .err = err, .err_cap = err_cap};
	ld.jf = calloc(1, sizeof(*ld.jf));
	json_parser_t *p = json_parser_new(0);
	int rc = -1;
	if (!ld.jf || !p) {
		snprintf(err, err_cap, "%s: out of memory", path);
		goto out;
	}
	if (file_names(&ld) != 0 || read_text(&ld) != 0)
		goto out;
	json_error_t e;
	if (json_parse(p, ld.text, ld.len, &ld.doc, &e) != 0) {
		snprintf(err, err_cap, "%s:%zu: not valid JSON: %s at byte %zu", path, line_of(&ld, e.offset),
		         e.reason, e.offset);
		goto out;
	}
	if (json_type(&ld.doc, 0) != JSON_OBJECT) {
		fail(&ld, 0, "", "expected a JSON object");
		goto out;
	}
	rc = each_member(&ld, 0, "", root_member, NULL);
	if (rc == 0)
		rc = page_rows(&ld);
out:
	json_parser_free(p);
	free(ld.text);
	free(ld.dir);
	if (rc != 0) {
		jobfile_free(ld.jf);
		return -1;
	}
	*out = ld.jf;
	return 0;
}

void jobfile_free(jobfile_t *jf)
{
	if (!jf)
		return;
	free(jf->path);
	free(jf->source);
	free(jf->urls);
	free(jf->template_url);
	free(jf->template_var);
	free(jf->keys);
	free(jf->files);
	paginate_spec_free(&jf->page);
	free(jf->db);
	free(jf->raw);
	free(jf->cacert);
	for (uint32_t i = 0; i < jf->n_headers; i++) {
		free(jf->header_names[i]);
		free(jf->header_values[i]);
	}
	table_specs_free(jf->tables, jf->n_tables);
	free(jf);
}

/* ---- the command line over the file --------------------------------------- */

int jobfile_apply(const jobfile_t *jf, run_opts_t *o)
{
	if (jf->db && !(o->set & OPT_SET_DB))
		o->db = jf->db;
	if (jf->raw && !(o->set & OPT_SET_RAW))
		o->raw = jf->raw;
	if (jf->cacert && !(o->set & OPT_SET_CACERT))
		o->cacert = jf->cacert;
	if (jf->has_concurrency && !(o->set & OPT_SET_CONCURRENCY))
		o->concurrency = jf->concurrency;
	if (jf->has_per_host && !(o->set & OPT_SET_PER_HOST))
		o->per_host = jf->per_host;
	if (jf->has_retries && !(o->set & OPT_SET_RETRIES))
		o->retries = jf->retries;
	if (jf->has_timeout && !(o->set & OPT_SET_TIMEOUT))
		o->timeout_s = jf->timeout_s;
	if (jf->has_db_timeout && o->db_timeout_s < 0.0) /* < 0: no --db-timeout */
		o->db_timeout_s = jf->db_timeout_s;
	if (jf->kind == JOBFILE_SOURCE_NONE && !(o->set & OPT_SET_URLS)) {
		fprintf(stderr, "ringfill run: %s: no \"source\" in the job file and no --urls\n",
		        jf->path);
		return 2;
	}
	if (jf->n_tables && (o->set & (OPT_SET_ROWS | OPT_SET_TABLE))) {
		fprintf(stderr, "ringfill run: %s: --rows and --table cannot be combined with the "
		                "job file's \"tables\"\n", jf->path);
		return 2;
	}
	/* A --header wins over the file's header of the same name; the headers
	 * of the command line are already in o->headers. */
	size_t cli_len = o->headers_len;
	char from[600];
	for (uint32_t i = 0; i < jf->n_headers; i++) {
		const char *name = jf->header_names[i];
		char save = o->headers[cli_len];
		o->headers[cli_len] = '\0'; /* look among the command line's only */
		bool given = options_has_header(o, name, strlen(name));
		o->headers[cli_len] = save;
		if (given)
			continue;
		size_t n = strlen(name) + 2 + strlen(jf->header_values[i]) + 1;
		char *h = malloc(n);
		if (!h) {
			fprintf(stderr, "ringfill run: out of memory\n");
			return 2;
		}
		snprintf(h, n, "%s: %s", name, jf->header_values[i]);
		snprintf(from, sizeof(from), "%s:%zu: http.headers.%s", jf->path, jf->header_lines[i],
		         name);
		int rc = options_add_header(o, from, h);
		free(h);
		if (rc)
			return rc;
	}
	return options_check_run(o);
}

void jobfile_print_plan(FILE *f, const run_opts_t *o, const char *source_desc,
                        const table_spec_t *tables, uint32_t n_tables)
{
	fprintf(f, "plan:\n  source: %s\n  database: %s\n", source_desc, o->db);
	if (o->raw)
		fprintf(f, "  raw bodies: %s\n", o->raw);
	fprintf(f, "  http: concurrency %u, per host %u, %u attempts, timeout %g s\n",
	        o->concurrency, o->per_host, o->retries, o->timeout_s);
	for (uint32_t i = 0; i < n_tables; i++) {
		const table_spec_t *t = &tables[i];
		fprintf(f, "  table \"%s\": rows %s, mode %s", t->name, json_path_text(t->rows),
		        table_mode_name(t->mode));
		for (uint32_t k = 0; k < t->n_key; k++)
			fprintf(f, "%s%s", k ? ", " : ", key (", t->key[k]);
		fprintf(f, "%s\n", t->n_key ? ")" : "");
		if (!t->n_cols)
			fprintf(f, "    columns: inferred from the rows\n");
		for (uint32_t c = 0; c < t->n_cols; c++)
			fprintf(f, "    %-24s %-8s %s\n", t->cols[c].name,
			        column_type_name(t->cols[c].type), t->cols[c].expr);
		for (uint32_t k = 0; k < t->n_null_if; k++)
			fprintf(f, "%s\"%s\"%s", k ? ", " : "    null_if: ", t->null_if[k],
			        k + 1 == t->n_null_if ? "\n" : "");
	}
}
