/* parse/json.c: the JSON parser's driver and stage 2, and NDJSON.
 *
 * json_parse runs stage 1 (json_stage1*.c: bytes -> structural index), then
 * walks the index here to check the RFC 8259 grammar and build the tape that
 * store/batch.c and json_path.c read. Reading values back off the tape is in
 * json_value.c. Everything here is pure: caller's bytes in, tape out. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json_internal.h"

/* The stack of open containers starts this deep and doubles up to depth_max,
 * so a parser allowed deep nesting pays for it only when it meets it. */
#define JSON_STACK_INITIAL 64u

struct json_parser {
	uint32_t depth_max;
	uint32_t *idx; /* structural index, idx_cap entries */
	size_t idx_cap;
	json_node_t *tape; /* tape_cap nodes */
	size_t tape_cap;
	uint32_t *stack; /* tape index of each open container */
	size_t stack_cap;
};

json_parser_t *json_parser_new(uint32_t depth_max)
{
	json_parser_t *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->depth_max = depth_max ? depth_max : JSON_DEPTH_MAX;
	p->stack_cap = p->depth_max < JSON_STACK_INITIAL ? p->depth_max : JSON_STACK_INITIAL;
	p->stack = malloc(p->stack_cap * sizeof *p->stack);
	if (!p->stack) {
		free(p);
		return NULL;
	}
	return p;
}

void json_parser_free(json_parser_t *p)
{
	if (!p)
		return;
	free(p->idx);
	free(p->tape);
	free(p->stack);
	free(p);
}

/* Grows *buf to hold at least `need` elements of `size` bytes; keeps the old
 * memory on failure. Buffers only grow, so a parser reused for documents of
 * similar size stops allocating after the first. */
static int grow(void **buf, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap * 2 > need ? *cap * 2 : need;
	void *m = realloc(*buf, n * size);
	if (!m)
		return -ENOMEM;
	*buf = m;
	*cap = n;
	return 0;
}

size_t json_line_of(const char *src, size_t len, size_t offset)
{
	size_t line = 1;
	const char *p = src, *end = src + (offset < len ? offset : len);
	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		line++;
		p++;
	}
	return line;
}

/* ---- Stage 2: index -> tape, checking the grammar. */

typedef struct {
	json_parser_t *p;
	const char *src;
	uint32_t len;
	const uint32_t *idx;
	uint32_t n_idx;
	uint32_t k; /* next unread index entry */
	json_node_t *tape;
	uint32_t n_nodes;
	uint32_t depth;              /* open containers, p->stack[0, depth) */
	const json_error_t *s1_err;  /* stage 1's error, or NULL */
	json_error_t *err;
} stage2_t;

/* Bytes that may end a scalar: whitespace, structure, or a quote (which the
 * grammar then rejects with a better offset than the scalar's). */
static const uint8_t ends_scalar[256] = {
	[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [','] = 1, [':'] = 1,
	['['] = 1, [']'] = 1,  ['{'] = 1,  ['}'] = 1,  ['"'] = 1,
};

static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int fail(stage2_t *s, uint32_t offset, const char *reason)
{
	s->err->offset = offset;
	s->err->reason = reason;
	return -1;
}

/* The index ran out: either the input really ended, or stage 1 stopped at an
 * error and stage 2 has now checked everything before it. */
static int fail_end(stage2_t *s)
{
	if (s->s1_err) {
		*s->err = *s->s1_err;
		return -1;
	}
	return fail(s, s->len, JSON_E_END);
}

static inline uint32_t push_node(stage2_t *s, uint32_t start, uint32_t len, json_type_t type,
                                 uint8_t flags)
{
	/* Every node starts at its own index entry, so the tape (sized to the
	 * index) cannot overflow. */
	assert(s->n_nodes < s->n_idx);
	uint32_t n = s->n_nodes++;
	s->tape[n] = (json_node_t){.start = start, .len = len, .next = n + 1, .count = 0,
	                           .type = (uint8_t)type, .flags = flags};
	return n;
}

/* Checks every escape in src(from, close); src[from] is the first backslash. */
static int check_escapes(stage2_t *s, uint32_t from, uint32_t close)
{
	const char *src = s->src;
	uint32_t i = from;
	while (i < close) {
		if (src[i] != '\\') {
			i++;
			continue;
		}
		assert(i + 1 < close); /* stage 1: a backslash never escapes the closing quote */
		switch (src[i + 1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			i += 2;
			continue;
		case 'u':
			break;
		default:
			return fail(s, i, JSON_E_ESCAPE);
		}
		int32_t cp = close - i >= 6 ? json_hex4(src + i + 2) : -1;
		if (cp < 0)
			return fail(s, i, JSON_E_ESCAPE);
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			return fail(s, i, JSON_E_SURROGATE);
		if (cp < 0xD800 || cp > 0xDBFF) {
			i += 6;
			continue;
		}
		/* A high surrogate must be followed at once by an escaped low one. */
		if (close - i < 12 || src[i + 6] != '\\' || src[i + 7] != 'u')
			return fail(s, i, JSON_E_SURROGATE);
		int32_t lo = json_hex4(src + i + 8);
		if (lo < 0)
			return fail(s, i + 6, JSON_E_ESCAPE);
		if (lo < 0xDC00 || lo > 0xDFFF)
			return fail(s, i, JSON_E_SURROGATE);
		i += 12;
	}
	return 0;
}

static int parse_string(stage2_t *s, uint32_t open)
{
	if (s->k == s->n_idx)
		return fail_end(s);
	uint32_t close = s->idx[s->k++];
	assert(close > open && s->src[close] == '"');
	uint8_t flags = 0;
	const char *bs = memchr(s->src + open + 1, '\\', close - open - 1);
	if (bs) {
		flags = JSON_F_ESCAPED;
		if (check_escapes(s, (uint32_t)(bs - s->src), close) < 0)
			return -1;
	}
	push_node(s, open, close - open + 1, JSON_STRING, flags);
	return 0;
}

/* RFC 8259: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int parse_number(stage2_t *s, uint32_t off)
{
	const unsigned char *p = (const unsigned char *)s->src;
	uint32_t i = off, len = s->len;
	uint8_t flags = JSON_F_INTEGER;
	if (p[i] == '-') {
		flags |= JSON_F_NEGATIVE;
		i++;
	}
	if (i < len && p[i] == '0')
		i++;
	else if (i < len && is_digit(p[i]))
		while (i < len && is_digit(p[i]))
			i++;
	else
		return fail(s, i, JSON_E_NUMBER);
	if (i < len && p[i] == '.') {
		flags &= (uint8_t)~JSON_F_INTEGER;
		if (++i >= len || !is_digit(p[i]))
			return fail(s, i, JSON_E_NUMBER);
		while (i < len && is_digit(p[i]))
			i++;
	}
	if (i < len && (p[i] | 0x20) == 'e') {
		flags &= (uint8_t)~JSON_F_INTEGER;
		if (++i < len && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= len || !is_digit(p[i]))
			return fail(s, i, JSON_E_NUMBER);
		while (i < len && is_digit(p[i]))
			i++;
	}
	if (i < len && !ends_scalar[p[i]])
		return fail(s, i, JSON_E_NUMBER); /* "01", "1.2.3", "1x" */
	push_node(s, off, i - off, JSON_NUMBER, flags);
	return 0;
}

static int parse_literal(stage2_t *s, uint32_t off, const char *word, uint32_t word_len,
                         json_type_t type)
{
	for (uint32_t j = 0; j < word_len; j++) {
		if (off + j >= s->len)
			return fail(s, s->len, JSON_E_END);
		if (s->src[off + j] != word[j])
			return fail(s, off + j, JSON_E_UNEXPECTED);
	}
	uint32_t end = off + word_len;
	if (end < s->len && !ends_scalar[(unsigned char)s->src[end]])
		return fail(s, end, JSON_E_UNEXPECTED);
	push_node(s, off, word_len, type, 0);
	return 0;
}

static int open_container(stage2_t *s, uint32_t off, json_type_t type)
{
	json_parser_t *p = s->p;
	if (s->depth >= p->depth_max)
		return fail(s, off, JSON_E_DEPTH);
	if (s->depth == p->stack_cap) {
		size_t want = p->stack_cap * 2 < p->depth_max ? p->stack_cap * 2 : p->depth_max;
		if (grow((void **)&p->stack, &p->stack_cap, want, sizeof *p->stack) < 0)
			return fail(s, 0, JSON_E_NOMEM);
	}
	p->stack[s->depth++] = push_node(s, off, 0, type, 0);
	return 0;
}

static void close_container(stage2_t *s, uint32_t off)
{
	assert(s->depth > 0);
	json_node_t *c = &s->tape[s->p->stack[--s->depth]];
	c->len = off + 1 - c->start;
	c->next = s->n_nodes;
}

/* One scalar or container start at index entry `off` (state VALUE). */
static int parse_value_start(stage2_t *s, uint32_t off, uint32_t comma)
{
	switch (s->src[off]) {
	case '{':
		return open_container(s, off, JSON_OBJECT);
	case '[':
		return open_container(s, off, JSON_ARRAY);
	case '"':
		return parse_string(s, off);
	case 't':
		return parse_literal(s, off, "true", 4, JSON_TRUE);
	case 'f':
		return parse_literal(s, off, "false", 5, JSON_FALSE);
	case 'n':
		return parse_literal(s, off, "null", 4, JSON_NULL);
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return parse_number(s, off);
	case ']':
		if (comma != JSON_NONE)
			return fail(s, comma, JSON_E_TRAILING_COMMA);
		return fail(s, off, JSON_E_UNEXPECTED);
	default:
		return fail(s, off, JSON_E_UNEXPECTED);
	}
}

/* The grammar as a three-state machine over the index. `comma` remembers the
 * comma that led to the current state, so "[1,]" can be called a trailing
 * comma at the comma rather than an unexpected bracket. */
static int stage2_run(stage2_t *s)
{
	enum { ST_VALUE, ST_KEY, ST_AFTER } st = ST_VALUE;
	uint32_t comma = JSON_NONE;
	if (s->n_idx == 0)
		return fail(s, s->len, JSON_E_EMPTY);
	for (;;) {
		if (st == ST_AFTER && s->depth == 0) {
			if (s->k < s->n_idx)
				return fail(s, s->idx[s->k], JSON_E_TRAILING_DATA);
			assert(!s->s1_err); /* a stage 1 error leaves an unclosed string */
			return 0;
		}
		if (s->k == s->n_idx)
			return fail_end(s);
		uint32_t off = s->idx[s->k++];
		char c = s->src[off];
		json_node_t *parent = s->depth ? &s->tape[s->p->stack[s->depth - 1]] : NULL;
		switch (st) {
		case ST_VALUE: {
			if (parent && parent->type == JSON_ARRAY)
				parent->count++;
			if (parse_value_start(s, off, comma) < 0)
				return -1;
			st = ST_AFTER;
			comma = JSON_NONE;
			if (c == '[' || c == '{') {
				/* Empty containers close at once; others expect a first child. */
				char closer = c == '[' ? ']' : '}';
				if (s->k < s->n_idx && s->src[s->idx[s->k]] == closer)
					close_container(s, s->idx[s->k++]);
				else
					st = c == '[' ? ST_VALUE : ST_KEY;
			}
			break;
		}
		case ST_KEY:
			if (c != '"') {
				if (c == '}' && comma != JSON_NONE)
					return fail(s, comma, JSON_E_TRAILING_COMMA);
				return fail(s, off, JSON_E_UNEXPECTED);
			}
			parent->count++;
			if (parse_string(s, off) < 0)
				return -1;
			if (s->k == s->n_idx)
				return fail_end(s);
			off = s->idx[s->k++];
			if (s->src[off] != ':')
				return fail(s, off, JSON_E_UNEXPECTED);
			st = ST_VALUE;
			comma = JSON_NONE;
			break;
		case ST_AFTER: {
			bool is_obj = parent->type == JSON_OBJECT;
			if (c == ',') {
				comma = off;
				st = is_obj ? ST_KEY : ST_VALUE;
			} else if (c == (is_obj ? '}' : ']')) {
				close_container(s, off);
			} else {
				return fail(s, off, JSON_E_UNEXPECTED);
			}
			break;
		}
		}
	}
}

static int fail_early(const char *src, size_t len, size_t offset, const char *reason,
                      json_error_t *err)
{
	err->offset = offset;
	err->reason = reason;
	err->line = json_line_of(src, len, offset);
	return -1;
}

int json_parse(json_parser_t *p, const char *src, size_t len, json_doc_t *doc,
               json_error_t *err)
{
	assert(p && (src || len == 0) && doc && err);
	if (len > JSON_DOC_BYTES_MAX)
		return fail_early(src, len, JSON_DOC_BYTES_MAX, JSON_E_TOO_LARGE, err);
	/* Sized for the worst case (every byte structural): about 4 bytes of
	 * index per input byte, and a tape node per index entry. */
	if (grow((void **)&p->idx, &p->idx_cap, len + JSON_STAGE1_IDX_SLACK, sizeof *p->idx) < 0)
		return fail_early(src, len, 0, JSON_E_NOMEM, err);
	uint32_t n_idx = 0;
	json_error_t s1 = {0};
	int r1 = json_stage1(src, (uint32_t)len, p->idx, &n_idx, &s1);
	if (grow((void **)&p->tape, &p->tape_cap, n_idx ? n_idx : 1, sizeof *p->tape) < 0)
		return fail_early(src, len, 0, JSON_E_NOMEM, err);
	stage2_t s = {
		.p = p, .src = src, .len = (uint32_t)len, .idx = p->idx, .n_idx = n_idx,
		.tape = p->tape, .s1_err = r1 < 0 ? &s1 : NULL, .err = err,
	};
	if (stage2_run(&s) < 0) {
		err->line = json_line_of(src, len, err->offset);
		return -1;
	}
	*doc = (json_doc_t){.src = src, .len = len, .nodes = p->tape, .n_nodes = s.n_nodes};
	return 0;
}

/* ---- NDJSON */

static bool is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

int json_ndjson_each(json_parser_t *p, const char *src, size_t len, json_ndjson_fn fn,
                     void *ctx, json_error_t *err)
{
	size_t pos = 0, line = 1;
	while (pos < len) {
		const char *nl = memchr(src + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - src) : len;
		size_t stop = end > pos && src[end - 1] == '\r' ? end - 1 : end;
		if (!is_blank(src + pos, stop - pos)) {
			json_doc_t doc;
			if (json_parse(p, src + pos, stop - pos, &doc, err) < 0) {
				err->offset += pos;
				err->line = line;
				return -1;
			}
			int r = fn(ctx, &doc, pos);
			if (r != 0)
				return r;
		}
		pos = nl ? end + 1 : len;
		line++;
	}
	return 0;
}
