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
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "parse/json_internal.h"

/* The stack of open containers starts this deep and doubles up to depth_max,
 * so a parser allowed deep nesting pays for it only when it meets it. */
#define JSON_STACK_INITIAL 64u
/* NDJSON is indexed by stage 1 in batches of whole lines of about this many
 * bytes (a longer line is a batch of its own): few stage-1 calls, and an
 * index of 4 bytes per batch byte rather than per file byte. */
#define JSON_NDJSON_BATCH_BYTES (1u << 20)

/* json_select: a value a path selected, found by the walk and handed over
 * after it. */
struct select_hit {
	uint32_t k;       /* its first index entry */
	uint32_t depth;   /* containers around it */
	uint32_t path;    /* which of the paths selected it */
	uint32_t n_nodes; /* a container: its tape, from p->tape + k - k0 (select_hit) */
	bool scalar;      /* a string, number or literal: its tape is `node` */
	json_node_t node;
};

/* One open container during stage 2. */
typedef struct {
	uint32_t node;         /* its tape index */
	uint32_t parent_count; /* the enclosing container's count, restored at the close */
	bool parent_is_array;  /* the enclosing container's kind, likewise */
} json_frame_t;

struct json_parser {
	uint32_t depth_max;
	uint32_t *idx; /* structural index, idx_cap entries */
	size_t idx_cap;
	uint64_t *bslash; /* the backslash map of the input idx indexes, bslash_cap words */
	size_t bslash_cap;
	uint32_t *batch_idx; /* NDJSON: the index of a batch of lines */
	size_t batch_idx_cap;
	uint64_t *batch_bslash; /* NDJSON: the batch's backslash map */
	size_t batch_bslash_cap;
	json_node_t *tape; /* tape_cap nodes */
	size_t tape_cap;
	json_frame_t *stack; /* open containers, grows up to depth_max */
	size_t stack_cap;
	struct select_hit *hits; /* json_select: the values found, hits_cap entries */
	size_t hits_cap;
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
	free(p->bslash);
	free(p->batch_idx);
	free(p->batch_bslash);
	free(p->tape);
	free(p->stack);
	free(p->hits);
	free(p);
}

size_t json_parser_bytes(const json_parser_t *p)
{
	return sizeof *p + p->idx_cap * sizeof *p->idx + p->batch_idx_cap * sizeof *p->batch_idx +
	       p->tape_cap * sizeof *p->tape + p->stack_cap * sizeof *p->stack +
	       p->hits_cap * sizeof *p->hits;
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

/* ---- Stage 2: index -> tape, checking the grammar.
 *
 * What stage 1 already guarantees is not checked again: every string's
 * closing quote is the next index entry after its opening one, and the bytes
 * between are valid UTF-8 without raw control characters, so a string costs
 * a search for a backslash (escapes are the only thing left to check).
 * Scalars are checked at their first byte, several bytes at a time on
 * little-endian machines, without converting anything: the tape only records
 * where a number is and whether it is an integer. */

#if defined(__GNUC__)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
/* For the per-value helpers of the walk: gcc stops inlining string_node
 * once it reads the backslash map, and the call costs more than the rest. */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
#else
#define likely(x) (x)
#define unlikely(x) (x)
#define ALWAYS_INLINE inline
#define NOINLINE
#endif

/* The 8-byte tricks below find the first matching byte with a count of
 * trailing zeros, which is the first byte in memory only on little-endian
 * machines; elsewhere the plain loops do the same job a byte at a time. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define JSON_SWAR 1
#else
#define JSON_SWAR 0
#endif

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* What the grammar checks need besides the walk's own locals. */
typedef struct {
	const char *src; /* the document (for NDJSON, the batch of lines) */
	uint32_t len;    /* where the document ends in src (NDJSON: its line's end) */
	/* Subtracted from the offsets written to the tape, which are relative to
	 * the document: NDJSON walks a line in its batch's index, whose offsets
	 * are relative to the batch (0 elsewhere). */
	uint32_t base;
	/* Stage 1's backslash map of src (json_stage1_fn), or NULL: then
	 * strings are searched for backslashes byte by byte. */
	const uint64_t *bslash;
	const json_error_t *s1_err; /* stage 1's error, or NULL */
	json_error_t *err;
} stage2_t;

/* Bytes that may end a scalar: whitespace, structure, or a quote (which the
 * grammar then rejects with a better offset than the scalar's). */
static const uint8_t ends_scalar[256] = {
	[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [','] = 1, [':'] = 1,
	['['] = 1, [']'] = 1,  ['{'] = 1,  ['}'] = 1,  ['"'] = 1,
};

static inline uint64_t load64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline uint32_t load32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return v;
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

/* The first backslash in [p, end), or NULL; limit is the end of the input,
 * so whole-word loads may run past `end` (into the closing quote and beyond)
 * as long as they stay inside the input, with the bytes past `end` masked
 * off. Most strings are short: one or two loads answer for them. SSE2 is
 * part of x86-64, so it needs no run-time check; other machines use 8-byte
 * words (little-endian) or memchr. */
static inline const char *find_backslash(const char *p, const char *end, const char *limit)
{
#if defined(__SSE2__)
	const __m128i bslash = _mm_set1_epi8('\\');
	for (; p < end; p += 16) {
		if (unlikely(limit - p < 16))
			return memchr(p, '\\', (size_t)(end - p));
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		uint32_t hit = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, bslash));
		size_t left = (size_t)(end - p);
		if (left < 16)
			hit &= (1u << left) - 1;
		if (hit)
			return p + __builtin_ctz(hit);
	}
	return NULL;
#elif JSON_SWAR
	for (; p < end; p += 8) {
		if (unlikely(limit - p < 8))
			return memchr(p, '\\', (size_t)(end - p));
		uint64_t x = load64(p) ^ (ONES * '\\');
		/* High bit of each zero byte of x, plus possibly bytes after a
		 * true zero: the lowest one set is exact. */
		uint64_t hit = (x - ONES) & ~x & HIGHS;
		size_t left = (size_t)(end - p);
		if (left < 8)
			hit &= (1ull << (8 * left)) - 1;
		if (hit)
			return p + __builtin_ctzll(hit) / 8;
	}
	return NULL;
#else
	(void)limit;
	return memchr(p, '\\', (size_t)(end - p));
#endif
}

/* Offset of the first backslash in src[from, to), or UINT32_MAX: from stage
 * 1's backslash map, a word (64 bytes) at a time, or else from the bytes. */
static inline uint32_t next_backslash(const stage2_t *s, uint32_t from, uint32_t to)
{
	if (from >= to)
		return UINT32_MAX;
	if (likely(s->bslash != NULL)) {
		uint32_t w = from / JSON_BSLASH_MAP_BYTES, last = (to - 1) / JSON_BSLASH_MAP_BYTES;
		uint64_t bits = s->bslash[w] & (~0ull << (from % JSON_BSLASH_MAP_BYTES));
		while (bits == 0) {
			if (w == last)
				return UINT32_MAX;
			bits = s->bslash[++w];
		}
		uint32_t at = w * JSON_BSLASH_MAP_BYTES + (uint32_t)__builtin_ctzll(bits);
		return at < to ? at : UINT32_MAX;
	}
	const char *bs = find_backslash(s->src + from, s->src + to, s->src + s->len);
	return bs ? (uint32_t)(bs - s->src) : UINT32_MAX;
}

/* Checks every escape in src(from, close); src[from] is the first backslash.
 * Out of line: most strings have none. */
static NOINLINE int check_escapes(stage2_t *s, uint32_t from, uint32_t close)
{
	const char *src = s->src;
	uint32_t i = from;
	while (i < close) {
		if (src[i] != '\\') {
			i = next_backslash(s, i, close);
			if (i == UINT32_MAX)
				return 0;
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
		if (likely((cp & 0xF800) != 0xD800)) { /* not a surrogate */
			i += 6;
			continue;
		}
		if (cp >= 0xDC00)
			return fail(s, i, JSON_E_SURROGATE);
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

/* A string node from its opening quote `open` and closing quote `close`. */
static ALWAYS_INLINE int string_node(stage2_t *s, json_node_t *tape, uint32_t n,
                                     uint32_t open, uint32_t close, uint32_t base)
{
	assert(close > open && s->src[close] == '"');
	uint8_t flags = 0;
	uint32_t bs = next_backslash(s, open + 1, close);
	if (unlikely(bs != UINT32_MAX)) {
		flags = JSON_F_ESCAPED;
		if (check_escapes(s, bs, close) < 0)
			return -1;
	}
	tape[n] = (json_node_t){.start = open - base, .len = close - open + 1, .next = n + 1,
	                        .type = JSON_STRING, .flags = flags};
	return 0;
}

/* Offset of the first non-digit at or after i (len if the input ends first). */
static inline uint32_t skip_digits(const unsigned char *p, uint32_t i, uint32_t len)
{
#if JSON_SWAR
	while (len - i >= 8) {
		/* Digits become 0..9; the high bit of a byte is set when it was
		 * not a digit (adding 0x76 carries into bit 7 from 10 up, and the
		 * mask keeps one byte's sum from reaching the next). */
		uint64_t a = load64(p + i) ^ (ONES * '0');
		uint64_t not_digit = (((a & (ONES * 0x7F)) + ONES * 0x76) | a) & HIGHS;
		if (not_digit)
			return i + (uint32_t)__builtin_ctzll(not_digit) / 8;
		i += 8;
	}
#endif
	while (i < len && is_digit(p[i]))
		i++;
	return i;
}

/* RFC 8259: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * Always inlined: once json_select's hits called it too, gcc stopped
 * inlining it into stage2_run (9.7 % more instructions on canada-like). */
static ALWAYS_INLINE int number_node(stage2_t *s, json_node_t *tape, uint32_t n, uint32_t off,
                              uint32_t base)
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
	else if (likely(i < len && is_digit(p[i])))
		i = skip_digits(p, i + 1, len);
	else
		return fail(s, i, JSON_E_NUMBER);
	if (i < len && p[i] == '.') {
		flags &= (uint8_t)~JSON_F_INTEGER;
		if (++i >= len || !is_digit(p[i]))
			return fail(s, i, JSON_E_NUMBER);
		i = skip_digits(p, i + 1, len);
	}
	if (i < len && (p[i] | 0x20) == 'e') {
		flags &= (uint8_t)~JSON_F_INTEGER;
		if (++i < len && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= len || !is_digit(p[i]))
			return fail(s, i, JSON_E_NUMBER);
		i = skip_digits(p, i + 1, len);
	}
	if (unlikely(i < len && !ends_scalar[p[i]]))
		return fail(s, i, JSON_E_NUMBER); /* "01", "1.2.3", "1x" */
	tape[n] = (json_node_t){.start = off - base, .len = i - off, .next = n + 1,
	                        .type = JSON_NUMBER, .flags = flags};
	return 0;
}

/* The literal at off is misspelt or cut short: find the error byte by byte. */
static int literal_error(stage2_t *s, uint32_t off, const char *word, uint32_t word_len)
{
	for (uint32_t j = 0; j < word_len; j++) {
		if (off + j >= s->len)
			return fail(s, s->len, JSON_E_END);
		if (s->src[off + j] != word[j])
			return fail(s, off + j, JSON_E_UNEXPECTED);
	}
	assert(!"literal_error called on a correct literal");
	return fail(s, off, JSON_E_UNEXPECTED);
}

/* true, false or null at off (src[off] is 't', 'f' or 'n'), compared four
 * bytes at a time; the first byte was matched by the caller's dispatch. */
static ALWAYS_INLINE int literal_node(stage2_t *s, json_node_t *tape, uint32_t n, uint32_t off,
                               uint32_t base)
{
	const char *p = s->src + off;
	uint32_t left = s->len - off;
	const char *word;
	uint32_t word_len;
	json_type_t type;
	bool ok;
	if (*p == 't') {
		word = "true", word_len = 4, type = JSON_TRUE;
		ok = left >= 4 && load32(p) == load32("true");
	} else if (*p == 'f') {
		word = "false", word_len = 5, type = JSON_FALSE;
		ok = left >= 5 && load32(p + 1) == load32("alse");
	} else {
		word = "null", word_len = 4, type = JSON_NULL;
		ok = left >= 4 && load32(p) == load32("null");
	}
	if (unlikely(!ok))
		return literal_error(s, off, word, word_len);
	uint32_t end = off + word_len;
	if (unlikely(end < s->len && !ends_scalar[(unsigned char)s->src[end]]))
		return fail(s, end, JSON_E_UNEXPECTED);
	tape[n] = (json_node_t){.start = off - base, .len = word_len, .next = n + 1,
	                        .type = (uint8_t)type};
	return 0;
}

/* Makes room for one more open container (the stack grows to depth_max). */
static int grow_stack(json_parser_t *p)
{
	size_t want = p->stack_cap * 2 < p->depth_max ? p->stack_cap * 2 : p->depth_max;
	return grow((void **)&p->stack, &p->stack_cap, want, sizeof *p->stack);
}

/* The next index entry into off; the end of the index is the end of the
 * input or stage 1's error. */
#define NEXT_ENTRY(off)                                                                            \
	do {                                                                                       \
		if (unlikely(k == n_idx))                                                          \
			return fail_end(s);                                                        \
		(off) = idx[k++];                                                                  \
	} while (0)

/* A ']' or '}' where a value or key was expected, at idx[k - 1]: a trailing
 * comma if the entry before it is a comma (the walk does not track commas,
 * the index remembers them), an unexpected character otherwise. */
static int fail_closer(stage2_t *s, const uint32_t *idx, uint32_t k)
{
	if (k >= 2 && s->src[idx[k - 2]] == ',')
		return fail(s, idx[k - 2], JSON_E_TRAILING_COMMA);
	return fail(s, idx[k - 1], JSON_E_UNEXPECTED);
}

/* Walks idx[0, n_idx) and writes the tape into `tape` (p->tape, or a part
 * of it), which has room for n_idx nodes: every node starts at an index
 * entry of its own, so the writes need no bounds checks. Each label is one
 * state of the grammar; the open container's element (or pair) count and
 * kind live in registers, saved in its child's frame while a child is open,
 * and the count is stored when the container closes. Sets *n_nodes and
 * returns 0, or -1 with s->err set. */
static int stage2_run(json_parser_t *p, json_node_t *tape, stage2_t *s, const uint32_t *idx,
                      uint32_t n_idx, uint32_t *n_nodes, uint32_t *used)
{
	const char *src = s->src;
	json_frame_t *stack = p->stack;
	uint32_t k = 0, n = 0, depth = 0, count = 0, off, close;
	const uint32_t base = s->base;
	bool in_array = false; /* the open container is an array (meaningless at depth 0) */
	if (n_idx == 0)
		return fail(s, s->len, JSON_E_EMPTY);

value: /* a value starts at the next entry */
	NEXT_ENTRY(off);
	assert(n < k);
	switch (src[off]) {
	case '{':
	case '[':
		if (unlikely(depth >= p->depth_max))
			return fail(s, off, JSON_E_DEPTH);
		if (unlikely(depth == p->stack_cap)) {
			if (grow_stack(p) < 0)
				return fail(s, 0, JSON_E_NOMEM);
			stack = p->stack;
		}
		stack[depth++] = (json_frame_t){.node = n, .parent_count = count,
		                                .parent_is_array = in_array};
		in_array = src[off] == '[';
		tape[n++] = (json_node_t){.start = off - base,
		                          .type = in_array ? JSON_ARRAY : JSON_OBJECT};
		count = 0;
		/* Empty containers close at once; others expect a first child. */
		if (k < n_idx && src[idx[k]] == (in_array ? ']' : '}')) {
			off = idx[k++];
			goto close_container;
		}
		if (in_array)
			goto array_element;
		goto object_key;
	case '"':
		NEXT_ENTRY(close);
		if (string_node(s, tape, n++, off, close, base) < 0)
			return -1;
		goto after_value;
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		if (number_node(s, tape, n++, off, base) < 0)
			return -1;
		goto after_value;
	case 't':
	case 'f':
	case 'n':
		if (literal_node(s, tape, n++, off, base) < 0)
			return -1;
		goto after_value;
	case ']':
		return fail_closer(s, idx, k);
	default:
		return fail(s, off, JSON_E_UNEXPECTED);
	}

array_element: /* a value is expected in the open array */
	count++;
	goto value;

object_key: /* a key is expected in the open object */
	NEXT_ENTRY(off);
	if (unlikely(src[off] != '"')) {
		if (src[off] == '}')
			return fail_closer(s, idx, k);
		return fail(s, off, JSON_E_UNEXPECTED);
	}
	count++;
	NEXT_ENTRY(close);
	if (string_node(s, tape, n++, off, close, base) < 0)
		return -1;
	NEXT_ENTRY(off);
	if (unlikely(src[off] != ':'))
		return fail(s, off, JSON_E_UNEXPECTED);
	goto value;

close_container: /* off is the bracket that closes stack[depth - 1] */
	{
		const json_frame_t *f = &stack[--depth];
		json_node_t *c = &tape[f->node];
		c->len = off - base + 1 - c->start;
		c->next = n; /* just past the subtree */
		c->count = count;
		count = f->parent_count;
		in_array = f->parent_is_array;
	}

after_value: /* a value just ended: what may follow depends on its parent */
	if (unlikely(depth == 0))
		goto document_end;
	NEXT_ENTRY(off);
	if (likely(src[off] == ',')) {
		if (in_array)
			goto array_element;
		goto object_key;
	}
	if (src[off] == (in_array ? ']' : '}'))
		goto close_container;
	return fail(s, off, JSON_E_UNEXPECTED);

document_end:
	if (used) { /* one value of several (json_parse_value_indexed) */
		*used = k;
		*n_nodes = n;
		return 0;
	}
	if (k < n_idx)
		return fail(s, idx[k], JSON_E_TRAILING_DATA);
	assert(!s->s1_err); /* a stage 1 error leaves an unclosed string */
	*n_nodes = n;
	return 0;
}

static int fail_early(const char *src, size_t len, size_t offset, const char *reason,
                      json_error_t *err)
{
	err->offset = offset;
	err->reason = reason;
	err->line = json_line_of(src, len, offset);
	return -1;
}

/* Stage 1 of a whole document into p->idx and p->bslash, and a tape with a
 * node per index entry. Returns stage 1's result (0, or -1 with *s1), or -2
 * with *err set (document too large, out of memory). */
static int index_doc(json_parser_t *p, const char *src, size_t len, uint32_t *n_idx,
                     json_error_t *s1, json_error_t *err)
{
	if (len > JSON_DOC_BYTES_MAX) {
		fail_early(src, len, JSON_DOC_BYTES_MAX, JSON_E_TOO_LARGE, err);
		return -2;
	}
	/* Sized for the worst case (every byte structural): about 4 bytes of
	 * index per input byte, and a tape node per index entry. */
	if (grow((void **)&p->idx, &p->idx_cap, len + JSON_STAGE1_IDX_SLACK, sizeof *p->idx) < 0 ||
	    grow((void **)&p->bslash, &p->bslash_cap, JSON_BSLASH_MAP_WORDS(len) + 1,
	         sizeof *p->bslash) < 0) {
		fail_early(src, len, 0, JSON_E_NOMEM, err);
		return -2;
	}
	*n_idx = 0;
	int r1 = json_stage1(src, (uint32_t)len, p->idx, n_idx, p->bslash, false, s1);
	if (grow((void **)&p->tape, &p->tape_cap, *n_idx ? *n_idx : 1, sizeof *p->tape) < 0) {
		fail_early(src, len, 0, JSON_E_NOMEM, err);
		return -2;
	}
	return r1;
}

int json_parse(json_parser_t *p, const char *src, size_t len, json_doc_t *doc,
               json_error_t *err)
{
	assert(p && (src || len == 0) && doc && err);
	uint32_t n_idx;
	json_error_t s1 = {0};
	int r1 = index_doc(p, src, len, &n_idx, &s1, err);
	if (r1 == -2)
		return -1;
	stage2_t s = {.src = src, .len = (uint32_t)len, .bslash = p->bslash,
	              .s1_err = r1 < 0 ? &s1 : NULL, .err = err};
	uint32_t n_nodes = 0;
	if (stage2_run(p, p->tape, &s, p->idx, n_idx, &n_nodes, NULL) < 0) {
		err->line = json_line_of(src, len, err->offset);
		return -1;
	}
	*doc = (json_doc_t){.src = src, .len = len, .nodes = p->tape, .n_nodes = n_nodes};
	return 0;
}

int json_parse_nested(json_parser_t *p, uint32_t depth_used, const char *src, size_t len,
                      json_doc_t *doc, json_error_t *err)
{
	/* The limit is the parser's own; lowering it for one call keeps one
	 * parser (and its buffers) for values at every depth. A value at or past
	 * the limit still parses as a scalar, or fails at its first bracket. */
	uint32_t saved = p->depth_max;
	p->depth_max = depth_used < saved ? saved - depth_used : 0;
	int r = json_parse(p, src, len, doc, err);
	p->depth_max = saved;
	return r;
}

int json_parse_value_indexed(json_parser_t *p, uint32_t depth_used, const char *src, size_t len,
                             const uint32_t *idx, uint32_t n_idx, const uint64_t *bslash,
                             json_doc_t *doc, uint32_t *used, json_error_t *err)
{
	assert(len <= JSON_DOC_BYTES_MAX && n_idx > 0);
	if (grow((void **)&p->tape, &p->tape_cap, n_idx, sizeof *p->tape) < 0) {
		err->offset = 0;
		err->reason = JSON_E_NOMEM;
		return -1;
	}
	uint32_t saved = p->depth_max, n_nodes = 0;
	p->depth_max = depth_used < saved ? saved - depth_used : 0;
	stage2_t s = {.src = src, .len = (uint32_t)len, .bslash = bslash, .err = err};
	int r = stage2_run(p, p->tape, &s, idx, n_idx, &n_nodes, used);
	p->depth_max = saved;
	if (r < 0)
		return err->offset >= len ? 1 : -1; /* cut by the end of src: look further */
	const json_node_t *v = &p->tape[0];
	/* A number or literal that ends with src may go on past it. */
	if (v->start + v->len >= len && v->type != JSON_STRING && v->type != JSON_ARRAY &&
	    v->type != JSON_OBJECT)
		return 1;
	*doc = (json_doc_t){.src = src, .len = len, .nodes = p->tape, .n_nodes = n_nodes};
	return 0;
}

uint32_t json_parser_depth_max(const json_parser_t *p)
{
	return p->depth_max;
}

/* ---- Selection on demand (json_select)
 *
 * After stage 1, only the containers a path goes through are walked with
 * stage 2's grammar checks (keys, colons, commas, closers; keys are checked
 * as strings, escapes included); every value the path does not enter is
 * skipped by counting brackets over its index entries, and every value it
 * selects is checked by stage 2 proper, which makes its tape (select_hit).
 * The selected values are handed over only after every path has been
 * walked, so an error found by the walk comes before any callback; and a
 * later duplicate key replaces what an earlier one selected, as
 * json_object_get's last-wins. */

/* Bracket depth change of an index entry's first byte. Strings cannot hide
 * a bracket: stage 1 indexes only their quotes. A '\n' (an entry only in
 * an NDJSON batch's index, where it ends a line) is no value's byte: its
 * INT16_MIN makes skip_value's fast loop stop, and its exact loop fails on
 * it, so a skipped container never runs on into the next line. */
static const int16_t depth_delta[256] = {['{'] = 1,  ['['] = 1, ['}'] = -1, [']'] = -1,
                                         ['\n'] = INT16_MIN};
/* skip_value's fast loop keeps the relative depth under this, so one '\n'
 * always takes a sum below zero. */
#define JSON_SKIP_ROOM_MAX 32768u

typedef struct {
	json_parser_t *p;
	stage2_t *s;
	const uint32_t *idx;
	uint32_t n_idx;
	const json_path_t *path;
	uint32_t path_i;
	uint32_t n_steps;
	size_t n_hits;
	uint32_t k0; /* the document's first entry: a hit at entry k has tape from k - k0 */
	bool ndjson; /* a line of an NDJSON batch: its value ends at a '\n' entry */
	bool nested; /* several paths: hits may nest, and their tapes overlap */
} select_t;

/* The value at idx[*kp], `depth` containers deep, without looking inside:
 * a container is skipped to its matching bracket (checking the nesting
 * limit on the way), a scalar is not checked at all. *kp: the next entry. */
static int skip_value(select_t *w, uint32_t *kp, uint32_t depth)
{
	const char *src = w->s->src;
	const uint32_t *idx = w->idx;
	uint32_t k = *kp, n = w->n_idx;
	if (unlikely(k >= n))
		return fail_end(w->s);
	switch (src[idx[k]]) {
	case '"':
		*kp = k + 2; /* stage 1 succeeded: the closing quote is the next entry */
		return 0;
	case '{':
	case '[':
		break;
	case ']':
		return fail_closer(w->s, idx, k + 1);
	case '}':
	case ',':
	case ':':
	case '\n': /* an NDJSON line ends where its value should be */
		return fail(w->s, idx[k], JSON_E_UNEXPECTED);
	default:
		*kp = k + 1;
		return 0;
	}
	uint32_t max = w->p->depth_max;
	if (unlikely(depth >= max))
		return fail(w->s, idx[k], JSON_E_DEPTH);
	k++;
	/* Four entries a step while the depth stays inside (depth, max]. It is
	 * kept as r, the depth less depth + 1, so that range is r in [0, room),
	 * and one unsigned compare of the four sums OR-ed together checks them
	 * all (a negative one wraps to huge; the OR is at least the largest).
	 * The OR can exceed room when no sum does, which only sends a step that
	 * was inside to the exact loop below, never keeps one that was not. */
	uint64_t room = (uint64_t)max - depth;
	if (room > JSON_SKIP_ROOM_MAX)
		room = JSON_SKIP_ROOM_MAX; /* deeper goes by the exact loop */
	int64_t r = 0;
	const unsigned char *b = (const unsigned char *)src;
	const uint32_t *q = idx + k, *q_end = idx + n - (n - k) % 4; /* whole steps */
	for (; q != q_end; q += 4) {
		int64_t r1 = r + depth_delta[b[q[0]]];
		int64_t r2 = r1 + depth_delta[b[q[1]]];
		int64_t r3 = r2 + depth_delta[b[q[2]]];
		int64_t r4 = r3 + depth_delta[b[q[3]]];
		if (unlikely((uint64_t)(r1 | r2 | r3 | r4) >= room))
			break; /* the container closes, or may nest too deep, among these four */
		r = r4;
	}
	k = (uint32_t)(q - idx);
	int64_t d = (int64_t)depth + 1 + r;
	for (; k < n; k++) {
		unsigned char c = (unsigned char)src[idx[k]];
		if (unlikely(c == '\n'))
			return fail(w->s, idx[k], JSON_E_UNEXPECTED);
		d += depth_delta[c];
		if (unlikely(d > (int64_t)max))
			return fail(w->s, idx[k], JSON_E_DEPTH);
		if (d == (int64_t)depth) {
			*kp = k + 1;
			return 0;
		}
	}
	return fail_end(w->s);
}

/* Entries a walked container's loop (skip_member, select_members) steps over
 * by itself: a string (two entries) or the first byte of a number or literal
 * (one); every other byte goes to skip_value, for a container or an error. */
static const uint8_t skip_entries[256] = {
	['"'] = 2, ['-'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['t'] = 1, ['f'] = 1, ['n'] = 1,
};

/* skip_value, with the scalars (most elements of a walked array) done here
 * without a call. */
static ALWAYS_INLINE int skip_member(select_t *w, uint32_t *kp, uint32_t depth)
{
	uint32_t k = *kp;
	if (likely(k < w->n_idx)) {
		/* Branches, not k + step: as in select_members. */
		uint32_t step = skip_entries[(unsigned char)w->s->src[w->idx[k]]];
		if (likely(step == 2)) {
			*kp = k + 2;
			return 0;
		}
		if (likely(step == 1)) {
			*kp = k + 1;
			return 0;
		}
	}
	return skip_value(w, kp, depth);
}

/* How many of `entries` index entries stage2_run may walk into the tape as
 * it is, from node `at` on: all of them, or as many as it has nodes for past
 * `at` (json_parse sizes it for the whole document; an NDJSON batch leaves a
 * line too big for it to be parsed alone, which grows it). */
static inline uint32_t tape_room(const json_parser_t *p, uint32_t at, uint32_t entries)
{
	size_t left = at < p->tape_cap ? p->tape_cap - at : 0;
	return entries < left ? entries : (uint32_t)left;
}

/* A selected value at idx[*kp]: checked whole by stage 2 now (which also
 * finds its end). A container's tape goes where its first index entry is,
 * counted from the document's (k - k0): a node per entry at most, so the
 * tapes of values that do not nest never overlap, and with one path
 * (!w->nested) select_deliver hands each over as it was made. */
static int select_hit(select_t *w, uint32_t *kp, uint32_t depth)
{
	json_parser_t *p = w->p;
	if (w->n_hits == p->hits_cap &&
	    grow((void **)&p->hits, &p->hits_cap, w->n_hits + 1, sizeof *p->hits) < 0)
		return fail(w->s, 0, JSON_E_NOMEM);
	struct select_hit *hit = &p->hits[w->n_hits];
	*hit = (struct select_hit){.k = *kp, .depth = depth, .path = w->path_i};
	/* A scalar's one node is what stage2_run would make of it, kept so the
	 * hit is not walked a second time (ids, names: every hit). */
	stage2_t *s = w->s;
	uint32_t k = *kp, n = w->n_idx, off = k < n ? w->idx[k] : 0, used = 1;
	int r = 1;
	if (k < n) {
		switch (s->src[off]) {
		case '"':
			if (k + 1 < n) {
				r = string_node(s, &hit->node, 0, off, w->idx[k + 1], s->base);
				used = 2;
			}
			break;
		case '-': case '0': case '1': case '2': case '3': case '4':
		case '5': case '6': case '7': case '8': case '9':
			r = number_node(s, &hit->node, 0, off, s->base);
			break;
		case 't':
		case 'f':
		case 'n':
			r = literal_node(s, &hit->node, 0, off, s->base);
			break;
		}
	}
	if (r < 0)
		return -1;
	if (r == 0) {
		hit->scalar = true;
	} else { /* a container, or an error stage2_run reports */
		/* At most as many entries as the tape holds past `at`:
		 * json_select's is sized for the whole document; in an NDJSON
		 * batch a value too big for it fails here, and its line goes to
		 * json_select alone. Several paths: at 0, as select_deliver makes
		 * the tape again there. */
		uint32_t saved = p->depth_max, at = w->nested ? 0 : k - w->k0;
		uint32_t room = tape_room(p, at, n - k);
		p->depth_max = depth < saved ? saved - depth : 0;
		/* No room (a batch's parser may have no tape yet): stage2_run
		 * fails before it writes, and p->tape may be NULL. */
		json_node_t *tape = room ? p->tape + at : p->tape;
		r = stage2_run(p, tape, s, w->idx + k, room, &hit->n_nodes, &used);
		p->depth_max = saved;
		if (r < 0)
			return -1;
	}
	w->n_hits++;
	*kp = k + used;
	return 0;
}

static int select_walk(select_t *w, uint32_t step, uint32_t *kp, uint32_t depth);

/* The members of an object that step `step` (.name or .*) enters, from the
 * entry after its '{' at idx[k] (not its '}': the caller took an empty
 * object), `depth` containers deep counting it. The loop of select_walk for
 * objects, apart so that k stays in a register (only the calls see a copy)
 * and each member costs what its key and a scalar's skip need. */
static int select_members(select_t *w, uint32_t step, const json_step_t *st, uint32_t k,
                          uint32_t *kp, uint32_t depth)
{
	stage2_t *s = w->s;
	const char *src = s->src;
	const uint32_t *idx = w->idx;
	const uint32_t n = w->n_idx;
	const bool all = st->kind == JSON_STEP_ALL;
	const char *name = st->name;
	const size_t name_len = all ? SIZE_MAX : st->name_len;
	size_t mark = SIZE_MAX; /* .name: hits before the first matching member's */
	for (;;) {
		if (unlikely(k >= n))
			return fail_end(s);
		uint32_t off = idx[k];
		if (unlikely(src[off] != '"')) {
			if (src[off] == '}')
				return fail_closer(s, idx, k + 1);
			return fail(s, off, JSON_E_UNEXPECTED);
		}
		/* The key: its escapes checked, compared without a call
		 * unless it has one (most keys differ in length). Stage 1's
		 * backslash map says whether it has one in a word or two. */
		uint32_t close = idx[k + 1], raw = close - off - 1;
		bool match;
		if (likely(next_backslash(s, off + 1, close) == UINT32_MAX)) {
			match = raw == name_len && memcmp(src + off + 1, name, raw) == 0;
		} else {
			json_node_t key;
			if (string_node(s, &key, 0, off, close, 0) < 0)
				return -1;
			match = !all && json_key_equals(src, &key, name, name_len);
		}
		k += 2;
		if (unlikely(k >= n))
			return fail_end(s);
		if (unlikely(src[idx[k]] != ':'))
			return fail(s, idx[k], JSON_E_UNEXPECTED);
		k++;
		/* The next k from a branch on the value's kind, not from a table
		 * load: k then waits on the branch's prediction rather than on
		 * three loads in a row (idx, src, table), so the next member's
		 * loads start before this one's are back. */
		uint32_t scalar = k < n ? skip_entries[(unsigned char)src[idx[k]]] : 0;
		if (likely(!(match | all) && scalar == 2)) {
			k += 2;
		} else if (likely(!(match | all) && scalar == 1)) {
			k += 1;
		} else {
			if (match) {
				if (mark == SIZE_MAX)
					mark = w->n_hits;
				w->n_hits = mark; /* a later duplicate wins */
			}
			uint32_t next = k;
			int r = !(match || all)         ? skip_value(w, &next, depth)
			        : step + 1 == w->n_steps ? select_hit(w, &next, depth)
			                                 : select_walk(w, step + 1, &next, depth);
			if (r != 0)
				return r;
			k = next;
		}
		if (unlikely(k >= n))
			return fail_end(s);
		off = idx[k++];
		if (likely(src[off] == ','))
			continue;
		if (src[off] == '}') {
			*kp = k;
			return 0;
		}
		return fail(s, off, JSON_E_UNEXPECTED);
	}
}

/* The value at idx[*kp] for steps [step, n_steps) of the path. */
static int select_walk(select_t *w, uint32_t step, uint32_t *kp, uint32_t depth)
{
	if (step == w->n_steps)
		return select_hit(w, kp, depth);
	stage2_t *s = w->s;
	const char *src = s->src;
	const uint32_t *idx = w->idx;
	uint32_t k = *kp, n = w->n_idx;
	if (unlikely(k >= n))
		return fail_end(s);
	json_step_t st = json_path_step(w->path, step);
	char open = src[idx[k]];
	bool object = open == '{';
	if ((!object && open != '[') || (st.kind == JSON_STEP_NAME && !object) ||
	    (st.kind == JSON_STEP_INDEX && object))
		return skip_value(w, kp, depth); /* the step selects nothing here */
	if (unlikely(depth >= w->p->depth_max))
		return fail(s, idx[k], JSON_E_DEPTH);
	char closer = object ? '}' : ']';
	depth++;
	if (++k < n && src[idx[k]] == closer) {
		*kp = k + 1;
		return 0;
	}
	if (object)
		return select_members(w, step, &st, k, kp, depth);
	for (uint32_t i = 0;; i++) { /* an array's elements: [*] takes each, [N] one */
		bool take = st.kind == JSON_STEP_ALL || i == st.index;
		int r = !take                       ? skip_member(w, &k, depth)
		        : step + 1 == w->n_steps ? select_hit(w, &k, depth) /* [*] last: no call */
		                                 : select_walk(w, step + 1, &k, depth);
		if (r != 0)
			return r;
		if (unlikely(k >= n))
			return fail_end(s);
		uint32_t off = idx[k++];
		if (likely(src[off] == ','))
			continue;
		if (src[off] == closer) {
			*kp = k;
			return 0;
		}
		return fail(s, off, JSON_E_UNEXPECTED);
	}
}

/* Every path (none: the value's brackets only) over the value at idx[*kp],
 * each walk followed by the check that the value ends the document (or the
 * NDJSON line). *kp: the entry after the value. */
static int select_paths(select_t *w, const json_path_t *const *paths, uint32_t n_paths,
                        uint32_t *kp)
{
	uint32_t k = *kp;
	for (uint32_t i = 0; i < (n_paths ? n_paths : 1); i++) {
		int r;
		k = *kp;
		if (n_paths == 0) {
			r = skip_value(w, &k, 0);
		} else {
			w->path = paths[i];
			w->path_i = i;
			w->n_steps = json_path_n_steps(paths[i]);
			r = select_walk(w, 0, &k, 0);
		}
		if (r != 0)
			return r;
		if (k < w->n_idx && !(w->ndjson && w->s->src[w->idx[k]] == '\n'))
			return fail(w->s, w->idx[k], JSON_E_TRAILING_DATA);
	}
	*kp = k;
	return 0;
}

/* Everything is checked: hand each hit of w to fn, in the document
 * [src, src + len) their offsets count from. */
static int select_deliver(select_t *w, const char *src, size_t len, json_select_fn fn,
                          void *ctx)
{
	json_parser_t *p = w->p;
	for (size_t h = 0; h < w->n_hits; h++) {
		struct select_hit hit = p->hits[h]; /* fn must not use p: later hits read its index */
		json_doc_t doc = {.src = src, .len = len, .nodes = &hit.node, .n_nodes = 1};
		if (!hit.scalar && !w->nested) { /* as select_hit made it */
			doc.nodes = p->tape + (hit.k - w->k0);
			doc.n_nodes = hit.n_nodes;
		} else if (!hit.scalar) { /* a nested hit may have written over it */
			uint32_t saved = p->depth_max, used, n_nodes;
			uint32_t room = tape_room(p, 0, w->n_idx - hit.k);
			p->depth_max = hit.depth < saved ? saved - hit.depth : 0;
			int r = stage2_run(p, p->tape, w->s, w->idx + hit.k, room, &n_nodes, &used);
			p->depth_max = saved;
			assert(r == 0);
			(void)r;
			doc.nodes = p->tape;
			doc.n_nodes = n_nodes;
		}
		int r = fn(ctx, hit.path, &doc, 0);
		if (r != 0)
			return r;
	}
	return 0;
}

/* json_select up to the callbacks: stage 1 of src and every path walked.
 * 0 with *w's hits ready for select_deliver, or -1 with *err. *s and *s1
 * are w's, kept by the caller until the hits are delivered. */
static int select_doc(json_parser_t *p, const char *src, size_t len,
                      const json_path_t *const *paths, uint32_t n_paths, stage2_t *s,
                      json_error_t *s1, select_t *w, json_error_t *err)
{
	uint32_t n_idx, n_nodes = 0;
	int r1 = index_doc(p, src, len, &n_idx, s1, err);
	if (r1 == -2)
		return -1;
	*s = (stage2_t){.src = src, .len = (uint32_t)len, .bslash = p->bslash,
	                .s1_err = r1 < 0 ? s1 : NULL, .err = err};
	*w = (select_t){.p = p, .s = s, .idx = p->idx, .n_idx = n_idx, .nested = n_paths > 1};
	int r = 0;
	if (r1 < 0 || n_idx == 0) {
		/* Invalid at stage 1 (or empty): the whole walk finds json_parse's
		 * error, whatever comes first. */
		r = stage2_run(p, p->tape, s, p->idx, n_idx, &n_nodes, NULL);
		assert(r < 0);
	}
	uint32_t k = 0;
	if (r == 0)
		r = select_paths(w, paths, n_paths, &k);
	if (r < 0) {
		err->line = json_line_of(src, len, err->offset);
		return -1;
	}
	return 0;
}

int json_select(json_parser_t *p, const char *src, size_t len, const json_path_t *const *paths,
                uint32_t n_paths, json_select_fn fn, void *ctx, json_error_t *err)
{
	assert(p && (src || len == 0) && (paths || n_paths == 0) && fn && err);
	stage2_t s;
	json_error_t s1 = {0};
	select_t w;
	if (select_doc(p, src, len, paths, n_paths, &s, &s1, &w, err) != 0)
		return -1;
	return select_deliver(&w, src, len, fn, ctx);
}

/* ---- NDJSON
 *
 * Stage 1 runs once over a batch of whole lines rather than once per line,
 * and stage 2 walks each line's slice of that index. This gives the same
 * result as parsing each line alone whenever stage 1 accepts the batch: it
 * then found every string closed before its line's end (a raw newline inside
 * a string is a control character), so each line's entries are exactly those
 * a stage 1 of that line alone would make. A batch stage 1 rejects is parsed
 * again line by line, which finds the first bad line and its error as before.
 * The batch index is the parser's own, apart from the one json_parse uses, so
 * a json_ndjson_each callback may parse with the same parser (not a
 * json_select_ndjson one: a line walked alone reads json_select's index).
 *
 * The loops are shared by json_ndjson_each (each line parsed whole, its tape
 * handed over) and json_select_ndjson (each line walked on demand, as
 * json_select walks a document): an ndjson_op_t says what is done with a
 * line, alone or in the batch's index. */

typedef struct ndjson_op ndjson_op_t;
struct ndjson_op {
	/* The line [pos, stop) of src, number `line`, alone, with a stage 1 of
	 * its own: the reference path, which also finds a bad line's error
	 * (its offset made absolute, its line the file's). */
	int (*alone)(const ndjson_op_t *op, json_parser_t *p, const char *src, size_t pos,
	             size_t stop, size_t line, json_error_t *err);
	/* The line whose value starts at idx[*kp] of batch b[0, n) (stage 1
	 * accepted it), at byte `at` of b, b at byte pos of the input: 0 once
	 * the line is done, *kp then at the '\n' that ends it (or n_idx), or
	 * what the callback returned; or 0 with *alone set, touching nothing,
	 * to leave the line to alone() (an error, more on the line, no room).
	 * Not a return value: a callback may return anything. */
	int (*indexed)(const ndjson_op_t *op, json_parser_t *p, const char *b, uint32_t n,
	               const uint32_t *idx, uint32_t n_idx, uint32_t *kp, uint32_t at, size_t pos,
	               bool *alone);
};

typedef struct {
	ndjson_op_t op;
	json_ndjson_fn fn;
	void *ctx;
} ndjson_each_t;

/* Where the line [start, eol) of s ends without a '\r' before its '\n'. */
static inline size_t line_stop(const char *s, size_t start, size_t eol)
{
	return eol > start && s[eol - 1] == '\r' ? eol - 1 : eol;
}

static bool is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* json_ndjson_each's line alone: json_parse, then the callback. */
static int each_alone(const ndjson_op_t *op, json_parser_t *p, const char *src, size_t pos,
                      size_t stop, size_t line, json_error_t *err)
{
	const ndjson_each_t *e = (const ndjson_each_t *)op;
	json_doc_t doc;
	if (json_parse(p, src + pos, stop - pos, &doc, err) < 0) {
		err->offset += pos;
		err->line = line;
		return -1;
	}
	return e->fn(e->ctx, &doc, pos);
}

/* json_ndjson_each's line in the batch: its document, walked in the batch's
 * index as it is (the tape subtracts the line's start, so it is json_parse's
 * tape of the line alone), over at most as many entries as the tape has room
 * for. It is the whole line when the next entry ends the line. */
static int each_indexed(const ndjson_op_t *op, json_parser_t *p, const char *b, uint32_t n,
                        const uint32_t *idx, uint32_t n_idx, uint32_t *kp, uint32_t at,
                        size_t pos, bool *alone)
{
	const ndjson_each_t *e = (const ndjson_each_t *)op;
	uint32_t k = *kp;
	uint32_t room = tape_room(p, 0, n_idx - k);
	json_error_t ignored;
	stage2_t s = {.src = b, .len = n, .base = at, .bslash = p->batch_bslash, .err = &ignored};
	uint32_t used = 0, n_nodes = 0;
	if (unlikely(room == 0 || stage2_run(p, p->tape, &s, idx + k, room, &n_nodes, &used) != 0 ||
	             (k + used < n_idx && b[idx[k + used]] != '\n'))) {
		*alone = true;
		return 0;
	}
	k += used;
	*kp = k;
	uint32_t eol = k < n_idx ? idx[k] : n;
	uint32_t stop = (uint32_t)line_stop(b, at, eol);
	json_doc_t doc = {.src = b + at, .len = stop - at, .nodes = p->tape, .n_nodes = n_nodes};
	return e->fn(e->ctx, &doc, pos + at);
}

/* End of the line starting at pos: the offset of its '\n', or len. */
static size_t line_end(const char *src, size_t pos, size_t len)
{
	const char *nl = memchr(src + pos, '\n', len - pos);
	return nl ? (size_t)(nl - src) : len;
}

/* Lines [pos, end) one at a time (the reference path). */
static int ndjson_lines(json_parser_t *p, const char *src, size_t pos, size_t end, size_t *line,
                        const ndjson_op_t *op, json_error_t *err)
{
	while (pos < end) {
		size_t eol = line_end(src, pos, end);
		size_t stop = line_stop(src, pos, eol);
		if (!is_blank(src + pos, stop - pos)) {
			int r = op->alone(op, p, src, pos, stop, *line, err);
			if (r != 0)
				return r;
		}
		pos = eol < end ? eol + 1 : end;
		(*line)++;
	}
	return 0;
}

/* Where the batch starting at pos ends: just past the last '\n' within
 * JSON_NDJSON_BATCH_BYTES, just past the first '\n' after that when one
 * line is longer, or len. */
static size_t batch_end(const char *src, size_t pos, size_t len)
{
	if (len - pos <= JSON_NDJSON_BATCH_BYTES)
		return len;
	const char *nl = memrchr(src + pos, '\n', JSON_NDJSON_BATCH_BYTES);
	if (nl)
		return (size_t)(nl - src) + 1;
	size_t eol = line_end(src, pos + JSON_NDJSON_BATCH_BYTES, len);
	return eol < len ? eol + 1 : len;
}

/* First k in [from, n) with idx[k] >= bound, or n (idx is increasing).
 * Gallops from `from`, since a line's entries are few next to the batch's. */
static uint32_t idx_lower_bound(const uint32_t *idx, uint32_t from, uint32_t n, uint32_t bound)
{
	uint32_t lo = from, step = 8;
	while (n - lo > step && idx[lo + step] < bound) {
		lo += step;
		step *= 2;
	}
	uint32_t hi = n - lo > step ? lo + step : n; /* idx[hi] >= bound, or hi == n */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (idx[mid] < bound)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The lines [pos, end) with one stage 1 over all of them, which also indexes
 * every '\n' (outside strings: one inside is an error), so a line's entries
 * run up to its '\n' entry and no search for line ends is needed. */
static int ndjson_batch(json_parser_t *p, const char *src, size_t pos, size_t end, size_t *line,
                        const ndjson_op_t *op, json_error_t *err)
{
	size_t n = end - pos;
	if (n > JSON_DOC_BYTES_MAX)
		return ndjson_lines(p, src, pos, end, line, op, err);
	if (grow((void **)&p->batch_idx, &p->batch_idx_cap, n + JSON_STAGE1_IDX_SLACK,
	         sizeof *p->batch_idx) < 0 ||
	    grow((void **)&p->batch_bslash, &p->batch_bslash_cap, JSON_BSLASH_MAP_WORDS(n) + 1,
	         sizeof *p->batch_bslash) < 0)
		return ndjson_lines(p, src, pos, end, line, op, err);
	uint32_t n_idx = 0;
	json_error_t s1;
	if (json_stage1(src + pos, (uint32_t)n, p->batch_idx, &n_idx, p->batch_bslash, true,
	                &s1) < 0)
		return ndjson_lines(p, src, pos, end, line, op, err);
	const char *b = src + pos; /* the batch: the index's offsets are into it */
	const uint32_t *idx = p->batch_idx;
	uint32_t k = 0, at = 0; /* the next entry; where its line starts */
	while (k < n_idx) {
		if (b[idx[k]] == '\n') { /* the end of a line (a blank one if nothing came before) */
			at = idx[k++] + 1;
			(*line)++;
			continue;
		}
		/* The line, in the batch's index. Anything op->indexed leaves (an
		 * error, a '\n' inside the value, more on the line, a tape too
		 * short) goes to op->alone, which finds the error, or grows the
		 * tape and parses the line. */
		bool alone = false;
		int r = op->indexed(op, p, b, (uint32_t)n, idx, n_idx, &k, at, pos, &alone);
		if (r != 0)
			return r;
		if (!alone)
			continue;
		size_t eol = line_end(src, pos + at, end);
		size_t stop = line_stop(src, pos + at, eol);
		r = op->alone(op, p, src, pos + at, stop, *line, err);
		if (r != 0)
			return r;
		k = idx_lower_bound(idx, k, n_idx, (uint32_t)(eol - pos)); /* the line's '\n' */
	}
	return 0;
}

typedef struct {
	ndjson_op_t op;
	const json_path_t *const *paths;
	uint32_t n_paths;
	json_select_fn fn;
	void *ctx;
} ndjson_select_t;

/* json_select_ndjson's line alone: json_select of it. */
static int select_alone(const ndjson_op_t *op, json_parser_t *p, const char *src, size_t pos,
                        size_t stop, size_t line, json_error_t *err)
{
	const ndjson_select_t *e = (const ndjson_select_t *)op;
	stage2_t s;
	json_error_t s1 = {0};
	select_t w;
	if (select_doc(p, src + pos, stop - pos, e->paths, e->n_paths, &s, &s1, &w, err) != 0) {
		err->offset += pos;
		err->line = line;
		return -1;
	}
	return select_deliver(&w, src + pos, stop - pos, e->fn, e->ctx);
}

/* json_select_ndjson's line in the batch: the paths walked in the batch's
 * index. A '\n' inside the line's value fails the walk (skip_value, and the
 * grammar checks of walked containers), so a value that does not end on its
 * line is left to select_alone, as is any other error. */
static int select_indexed(const ndjson_op_t *op, json_parser_t *p, const char *b, uint32_t n,
                          const uint32_t *idx, uint32_t n_idx, uint32_t *kp, uint32_t at,
                          size_t pos, bool *alone)
{
	(void)pos;
	const ndjson_select_t *e = (const ndjson_select_t *)op;
	json_error_t ignored;
	stage2_t s = {.src = b, .len = n, .base = at, .bslash = p->batch_bslash, .err = &ignored};
	select_t w = {.p = p, .s = &s, .idx = idx, .n_idx = n_idx, .k0 = *kp, .ndjson = true,
	              .nested = e->n_paths > 1};
	uint32_t k = *kp;
	if (select_paths(&w, e->paths, e->n_paths, &k) != 0) {
		*alone = true;
		return 0;
	}
	*kp = k;
	uint32_t eol = k < n_idx ? idx[k] : n;
	uint32_t stop = (uint32_t)line_stop(b, at, eol);
	return select_deliver(&w, b + at, stop - at, e->fn, e->ctx);
}

/* Every batch of src[0, len) through op; *newlines: the '\n's seen. */
static int ndjson_run_op(json_parser_t *p, const char *src, size_t len, const ndjson_op_t *op,
                         json_error_t *err, size_t *newlines)
{
	size_t pos = 0, line = 1;
	while (pos < len) {
		size_t end = batch_end(src, pos, len);
		int r = ndjson_batch(p, src, pos, end, &line, op, err);
		if (r != 0)
			return r;
		pos = end;
	}
	*newlines = line - 1;
	return 0;
}

int json_ndjson_each_counted(json_parser_t *p, const char *src, size_t len, json_ndjson_fn fn,
                             void *ctx, json_error_t *err, size_t *newlines)
{
	assert(p && (src || len == 0) && fn && err && newlines);
	ndjson_each_t e = {.op = {.alone = each_alone, .indexed = each_indexed}, .fn = fn, .ctx = ctx};
	return ndjson_run_op(p, src, len, &e.op, err, newlines);
}

int json_select_ndjson(json_parser_t *p, const char *src, size_t len,
                       const json_path_t *const *paths, uint32_t n_paths, json_select_fn fn,
                       void *ctx, json_error_t *err)
{
	assert(p && (src || len == 0) && (paths || n_paths == 0) && fn && err);
	ndjson_select_t e = {.op = {.alone = select_alone, .indexed = select_indexed},
	                     .paths = paths, .n_paths = n_paths, .fn = fn, .ctx = ctx};
	size_t newlines;
	return ndjson_run_op(p, src, len, &e.op, err, &newlines);
}

int json_ndjson_each(json_parser_t *p, const char *src, size_t len, json_ndjson_fn fn,
                     void *ctx, json_error_t *err)
{
	size_t newlines;
	return json_ndjson_each_counted(p, src, len, fn, ctx, err, &newlines);
}
