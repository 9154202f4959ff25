/* parse/json_path.c: the JSONPath subset ringfill uses to pick rows and
 * columns out of a parsed document: $ or @, then .name, ['name'], [N], [*].
 *
 * Compiled once from a job file or --rows/--select (engine/, parse_cli.c),
 * then applied to the tape of every document json_parse builds. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json_internal.h"

/* Longest expression accepted; a path is a few steps, never a document. */
#define JSON_PATH_BYTES_MAX 4096u
/* Largest [N] accepted (tape indexes are 32 bit). */
#define JSON_PATH_INDEX_MAX 0xFFFFFFFEu

#define STEP_NAME JSON_STEP_NAME
#define STEP_INDEX JSON_STEP_INDEX
#define STEP_ALL JSON_STEP_ALL

typedef struct {
	json_step_kind_t kind;
	uint32_t index;   /* STEP_INDEX */
	size_t name_len;  /* STEP_NAME: unescaped name, points into names */
	const char *name;
} path_step_t;

struct json_path {
	char *text;         /* the expression as given, NUL-terminated */
	char *names;        /* unescaped names, back to back */
	bool from_current;  /* '@': start at the caller's node, not the root */
	uint32_t n_steps;
	path_step_t steps[];
};

static int path_fail(json_error_t *err, size_t offset, const char *reason)
{
	err->offset = offset;
	err->line = 1;
	err->reason = reason;
	return -1;
}

static bool is_name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '$' || c >= 0x80;
}

/* ['name'] or ["name"]: e[i] is the quote. Unescapes \<quote> and \\ into
 * *names; returns the offset just past the closing ']' or -1. */
static long parse_quoted(const char *e, size_t len, size_t i, char **names, path_step_t *st,
                         json_error_t *err)
{
	char q = e[i++];
	st->kind = STEP_NAME;
	st->name = *names;
	for (;;) {
		if (i >= len)
			return path_fail(err, len, "unterminated name");
		char c = e[i];
		if (c == q)
			break;
		if (c == '\\') {
			if (i + 1 >= len || (e[i + 1] != q && e[i + 1] != '\\'))
				return path_fail(err, i, "invalid escape");
			c = e[++i];
		}
		*(*names)++ = c;
		i++;
	}
	st->name_len = (size_t)(*names - st->name);
	if (i + 1 >= len || e[i + 1] != ']')
		return path_fail(err, i + 1, "expected ']'");
	return (long)(i + 2);
}

/* [N]: e[i] is the first digit. Returns the offset past ']' or -1. */
static long parse_index(const char *e, size_t len, size_t i, path_step_t *st, json_error_t *err)
{
	size_t start = i;
	uint64_t v = 0;
	while (i < len && e[i] >= '0' && e[i] <= '9') {
		v = v * 10 + (uint64_t)(e[i] - '0');
		if (v > JSON_PATH_INDEX_MAX)
			return path_fail(err, start, "index too large");
		i++;
	}
	if (e[start] == '0' && i - start > 1)
		return path_fail(err, start, "invalid index"); /* leading zero, as in RFC 9535 */
	if (i >= len || e[i] != ']')
		return path_fail(err, i, "expected ']'");
	st->kind = STEP_INDEX;
	st->index = (uint32_t)v;
	return (long)(i + 1);
}

/* One step starting at e[i]; returns the offset just past it or -1. */
static long parse_step(const char *e, size_t len, size_t i, char **names, path_step_t *st,
                       json_error_t *err)
{
	if (e[i] == '.') {
		i++;
		if (i < len && e[i] == '*') {
			st->kind = STEP_ALL;
			return (long)(i + 1);
		}
		size_t start = i;
		while (i < len && is_name_byte((unsigned char)e[i]))
			i++;
		if (i == start)
			return path_fail(err, i, "expected a name");
		st->kind = STEP_NAME;
		st->name = *names;
		st->name_len = i - start;
		memcpy(*names, e + start, st->name_len);
		*names += st->name_len;
		return (long)i;
	}
	if (e[i] != '[')
		return path_fail(err, i, "expected '.' or '['");
	i++;
	if (i < len && (e[i] == '\'' || e[i] == '"'))
		return parse_quoted(e, len, i, names, st, err);
	if (i < len && e[i] == '*') {
		if (i + 1 >= len || e[i + 1] != ']')
			return path_fail(err, i + 1, "expected ']'");
		st->kind = STEP_ALL;
		return (long)(i + 2);
	}
	if (i < len && e[i] >= '0' && e[i] <= '9')
		return parse_index(e, len, i, st, err);
	if (i < len && e[i] == '-')
		return path_fail(err, i, "negative index");
	return path_fail(err, i, "expected a name, an index or '*'");
}

int json_path_compile(const char *expr, json_path_t **out, json_error_t *err)
{
	assert(expr && out && err);
	size_t len = strlen(expr);
	if (len > JSON_PATH_BYTES_MAX)
		return path_fail(err, JSON_PATH_BYTES_MAX, "expression too long");
	if (len == 0 || (expr[0] != '$' && expr[0] != '@'))
		return path_fail(err, 0, "expected '$' or '@'");
	/* Each step takes at least two bytes and no name is longer than the
	 * expression, so len bounds both arrays. */
	json_path_t *p = calloc(1, sizeof *p + len * sizeof p->steps[0]);
	char *text = malloc(len + 1);
	char *names = malloc(len + 1);
	if (!p || !text || !names) {
		free(p);
		free(text);
		free(names);
		return path_fail(err, 0, JSON_E_NOMEM);
	}
	memcpy(text, expr, len + 1);
	p->text = text;
	p->names = names;
	p->from_current = expr[0] == '@';
	for (size_t i = 1; i < len;) {
		long next = parse_step(expr, len, i, &names, &p->steps[p->n_steps], err);
		if (next < 0) {
			json_path_free(p);
			return -1;
		}
		assert((size_t)next > i && p->n_steps < len);
		p->n_steps++;
		i = (size_t)next;
	}
	*out = p;
	return 0;
}

void json_path_free(json_path_t *p)
{
	if (!p)
		return;
	free(p->text);
	free(p->names);
	free(p);
}

const char *json_path_text(const json_path_t *p)
{
	return p->text;
}

bool json_path_is_rooted(const json_path_t *p)
{
	return !p->from_current;
}

uint32_t json_path_n_steps(const json_path_t *p)
{
	return p->n_steps;
}

json_step_t json_path_step(const json_path_t *p, uint32_t i)
{
	assert(i < p->n_steps);
	const path_step_t *st = &p->steps[i];
	return (json_step_t){.kind = st->kind, .index = st->index, .name = st->name,
	                     .name_len = st->name_len};
}

/* Depth-first over the steps: each step only descends, so visiting children
 * in tape order yields matches in document order. Recursion depth is the
 * number of steps, bounded by JSON_PATH_BYTES_MAX / 2. */
static int walk(const json_path_t *path, uint32_t step, const json_doc_t *d, uint32_t node,
                json_visit_fn fn, void *ctx)
{
	if (step == path->n_steps)
		return fn(ctx, d, node);
	const path_step_t *st = &path->steps[step];
	const json_node_t *nd = &d->nodes[node];
	if (st->kind == STEP_NAME) {
		if (nd->type != JSON_OBJECT)
			return 0;
		uint32_t v = json_object_get(d, node, st->name, st->name_len);
		return v == JSON_NONE ? 0 : walk(path, step + 1, d, v, fn, ctx);
	}
	if (nd->type != JSON_ARRAY && nd->type != JSON_OBJECT)
		return 0;
	if (st->kind == STEP_INDEX && (nd->type != JSON_ARRAY || st->index >= nd->count))
		return 0;
	bool object = nd->type == JSON_OBJECT;
	uint32_t child = node + 1;
	for (uint32_t i = 0; i < nd->count; i++) {
		uint32_t value = object ? child + 1 : child; /* objects: skip the key */
		if (st->kind == STEP_ALL || i == st->index) {
			int r = walk(path, step + 1, d, value, fn, ctx);
			if (r != 0 || st->kind == STEP_INDEX)
				return r;
		}
		child = d->nodes[value].next;
	}
	return 0;
}

int json_path_each(const json_path_t *path, const json_doc_t *d, uint32_t from,
                   json_visit_fn fn, void *ctx)
{
	assert(path && d && fn);
	uint32_t start = path->from_current ? from : 0;
	if (start >= d->n_nodes)
		return -EINVAL;
	return walk(path, 0, d, start, fn, ctx);
}

static bool repeats(const json_path_t *path, uint32_t step, const json_doc_t *d, uint32_t node,
                    uint32_t *key)
{
	if (step == path->n_steps)
		return false;
	const path_step_t *st = &path->steps[step];
	const json_node_t *nd = &d->nodes[node];
	if (nd->type != JSON_ARRAY && nd->type != JSON_OBJECT)
		return false;
	if (st->kind == STEP_NAME && nd->type != JSON_OBJECT)
		return false;
	if (st->kind == STEP_INDEX && (nd->type != JSON_ARRAY || st->index >= nd->count))
		return false;
	bool object = nd->type == JSON_OBJECT;
	uint32_t child = node + 1, taken = JSON_NONE;
	for (uint32_t i = 0; i < nd->count; i++) {
		uint32_t value = object ? child + 1 : child;
		if (st->kind == STEP_NAME) {
			if (json_key_equals(d->src, &d->nodes[child], st->name, st->name_len)) {
				if (taken != JSON_NONE) {
					*key = child;
					return true;
				}
				taken = value;
			}
		} else if (st->kind == STEP_ALL || i == st->index) {
			if (repeats(path, step + 1, d, value, key))
				return true;
		}
		child = d->nodes[value].next;
	}
	return taken != JSON_NONE && repeats(path, step + 1, d, taken, key);
}

bool json_path_repeats(const json_path_t *path, const json_doc_t *d, uint32_t from,
                       uint32_t *key)
{
	assert(path && d && key);
	uint32_t start = path->from_current ? from : 0;
	return start < d->n_nodes && repeats(path, 0, d, start, key);
}

const char *json_path_first_name(const json_path_t *path, size_t *len)
{
	if (path->n_steps == 0 || path->steps[0].kind != STEP_NAME)
		return NULL;
	*len = path->steps[0].name_len;
	return path->steps[0].name;
}

int json_path_each_after_first(const json_path_t *path, const json_doc_t *d, uint32_t value,
                               json_visit_fn fn, void *ctx)
{
	assert(path && d && fn && path->n_steps > 0 && path->steps[0].kind == STEP_NAME);
	if (value >= d->n_nodes)
		return -EINVAL;
	return walk(path, 1, d, value, fn, ctx);
}
