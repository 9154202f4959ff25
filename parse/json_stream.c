/* parse/json_stream.c: streaming parse of one JSON document fed in pieces
 * (declared in json_stream.h; ringfill parse --rows is the first caller, the
 * engine's body loop the next).
 *
 * The document is cut into values the stream handles whole, called units: a
 * record the rows path selects, a key, or any other value outside the
 * containers on the path (the envelope). The containers on the path are
 * walked here token by token (the skeleton), applying the same grammar
 * checks, in the same order, as stage 2 in json.c; every unit is found by a
 * scan for its last byte and then parsed by json_parse, the in-memory parser,
 * from the piece itself when it lies inside one and from a copy when it
 * crosses pieces. Why the errors are exactly json_parse's on the whole input:
 * a unit starts outside strings at a value's first byte and ends outside
 * strings, so stage 1 of the unit gives the whole input's index entries for
 * those bytes, and stage 2 walks them in the same states; the cases where the
 * unit alone and the whole input differ (a literal cut by the unit's end, a
 * scan cut short at a stray backslash or at too deep a nesting) are handled
 * where they arise below. Records mostly take a faster way, through one
 * stage-1 index per window of the piece ("Records through the window"),
 * and fall back to the unit way where the window cannot settle them.
 * NDJSON in pieces (json_ndjson_stream_*) is at the end. docs/parse.md,
 * "Streaming", says more. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "parse/json_internal.h"
#include "parse/json_stream.h"

/* Records are parsed from a stage-1 index of a window of the piece this
 * long (4 bytes of index per byte), when they end inside it. */
#define JSON_STREAM_WINDOW_BYTES (256u << 10)

enum { UNIT_NONE, UNIT_STRING, UNIT_CONTAINER, UNIT_SCALAR };

/* Skeleton states: the labels of stage2_run in json.c. */
enum {
	SK_VALUE,  /* a value is expected */
	SK_OPENED, /* just after the top frame's opening bracket */
	SK_KEY,    /* a key is expected in the top frame (an object) */
	SK_COLON,  /* the ':' after a key */
	SK_AFTER,  /* a value just ended */
};

/* A container on the rows path that the skeleton is inside. */
typedef struct {
	bool is_array;
	uint64_t paths;      /* the rows paths this container is on (bit per path) */
	uint64_t child;      /* objects: the paths whose step matches the current key */
	uint64_t named;      /* objects: the paths whose name step a key matched so far */
	uint64_t each;       /* arrays: the paths whose step here is [*] (every element) */
	uint32_t count;      /* elements (or members) begun so far */
} sk_frame_t;

/* The unit being read. Its bytes before the current piece are in `carry`. */
typedef struct {
	int kind;        /* UNIT_* */
	bool is_key;
	bool is_record;
	bool carried;    /* part of it came with an earlier piece */
	size_t start;    /* offset of its first byte in the whole input */
	size_t lines;    /* '\n' before start (set once it is carried) */
	size_t from;     /* where its bytes start in the current piece */
	size_t scan;     /* where the scan goes on in the current piece */
	uint32_t depth;  /* containers: brackets open (the unit's own is 1) */
	uint32_t depth_limit;
	bool in_string;  /* containers: the scan is inside a string */
	bool escaped;    /* the next byte follows a backslash inside a string */
} unit_t;

struct json_stream {
	const json_path_t *rows[JSON_STREAM_PATHS_MAX]; /* the caller's */
	uint32_t steps[JSON_STREAM_PATHS_MAX];          /* json_path_n_steps of each */
	uint32_t n_paths;
	uint32_t n_steps;  /* the most steps of any path */
	uint64_t all;      /* a bit for every path */
	uint64_t rec_mask; /* the paths the value being read is a record of */
	size_t value_max, env_max;
	bool keep_env;
	bool refuse_repeats;       /* json_stream_opts_t.refuse_repeated_names */
	bool window_ok;            /* value_max >= the window: see json_stream_new */
	json_parser_t *parser;     /* units; a record's tape lives here */
	json_parser_t *env_parser; /* the envelope document's tape */

	/* Input: the piece on loan from the caller. */
	const char *piece;
	size_t piece_len, pos; /* pos: next byte of the piece to read */
	size_t piece_base;     /* offset of piece[0] in the whole input */
	size_t piece_lines;    /* '\n' before piece[0] */
	bool finished;

	/* Skeleton. frames has n_steps entries: only containers on the path
	 * are walked here, and the path has n_steps steps. */
	sk_frame_t *frames;
	uint32_t n_frames;
	int state;
	bool last_comma;  /* the last token was a ',' (at comma_off) */
	size_t comma_off;
	size_t comma_lines; /* '\n' before comma_off, once its piece is gone */

	unit_t unit;
	json_buf_t carry; /* the current unit's bytes from earlier pieces */

	/* The window: stage 1 of piece[base, base + len) once, for all the
	 * records that end in it. idx[0, n) are the entries stage 1 is sure
	 * of; k is the first one not yet walked. */
	struct {
		uint32_t *idx; /* idx_cap entries, grown to the windows met */
		size_t idx_cap;
		/* Stage 1's backslash map of the window (json_stage1_fn), for
		 * stage 2 to find escapes without searching strings:
		 * JSON_BSLASH_MAP_WORDS(idx_cap) words in the same allocation,
		 * after idx (see window_grow). */
		uint64_t *bslash;
		size_t base, len;
		uint32_t n, k;
		bool valid;
	} win;

	/* Envelope: the kept text, then (frozen) the document made from it. */
	json_buf_t env;
	bool env_frozen, env_overflow, env_ok;
	json_doc_t env_doc;

	bool failed, ended;
	json_error_t err;
};

/* ---- Scanning for the end of a unit. Each scan goes on from u->scan in the
 * piece and returns the offset in the piece just past the unit's last byte,
 * or SIZE_MAX when the piece ends first (its state is then in *u). */

/* Whitespace as stage 1 knows it (RFC 8259: four bytes). */
static inline bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Bytes that end a run of "other" bytes in stage 1: whitespace, structure,
 * and the quote. */
static const uint8_t ends_run[256] = {
	[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [','] = 1, [':'] = 1,
	['['] = 1, [']'] = 1,  ['{'] = 1,  ['}'] = 1,  ['"'] = 1,
};

static size_t scan_scalar(const char *p, size_t n, unit_t *u)
{
	for (size_t i = u->scan; i < n; i++)
		if (ends_run[(unsigned char)p[i]])
			return i;
	return SIZE_MAX;
}

/* The first '"' or '\\' in p[i, n), or n. */
static inline size_t find_quote_or_bslash(const char *p, size_t i, size_t n)
{
#if defined(__SSE2__)
	const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\');
	for (; n - i >= 16; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		unsigned hit = (unsigned)_mm_movemask_epi8(
			_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, b)));
		if (hit)
			return i + (size_t)__builtin_ctz(hit);
	}
#endif
	for (; i < n; i++)
		if (p[i] == '"' || p[i] == '\\')
			return i;
	return n;
}

/* A string unit: the scan starts after the opening quote and ends past the
 * first quote no backslash escapes (stage 1's rule inside strings). */
static size_t scan_string(const char *p, size_t n, unit_t *u)
{
	size_t i = u->scan;
	if (u->escaped) {
		if (i >= n)
			return SIZE_MAX;
		u->escaped = false;
		i++;
	}
	for (;;) {
		i = find_quote_or_bslash(p, i, n);
		if (i >= n)
			return SIZE_MAX;
		if (p[i] == '"')
			return i + 1;
		if (i + 1 >= n) {
			u->escaped = true;
			return SIZE_MAX;
		}
		i += 2;
	}
}

#define ODD_BITS 0xAAAAAAAAAAAAAAAAull

/* Set bits of x, without the POPCNT instruction this file may not use. */
static inline unsigned popcount64(uint64_t x)
{
	x -= (x >> 1) & 0x5555555555555555ull;
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* Bit i = XOR of bits 0..i (the in-string mask from quote positions),
 * without PCLMULQDQ: this file is built for any x86-64. */
static inline uint64_t prefix_xor(uint64_t x)
{
	x ^= x << 1;
	x ^= x << 2;
	x ^= x << 4;
	x ^= x << 8;
	x ^= x << 16;
	x ^= x << 32;
	return x;
}

/* One bit per byte of p[0, 64): quotes, backslashes, { or [, } or ]. */
static inline void classify64(const char *p, uint64_t *quote, uint64_t *bslash, uint64_t *open,
                              uint64_t *close)
{
	uint64_t q = 0, b = 0, o = 0, c = 0;
#if defined(__SSE2__)
	for (unsigned k = 0; k < 4; k++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
		/* OR 0x20 maps [ onto { and ] onto }, and nothing else onto them. */
		__m128i v20 = _mm_or_si128(v, _mm_set1_epi8(0x20));
		q |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"'))) << (16 * k);
		b |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))) << (16 * k);
		o |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v20, _mm_set1_epi8('{'))) << (16 * k);
		c |= (uint64_t)(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v20, _mm_set1_epi8('}'))) << (16 * k);
	}
#else
	for (unsigned i = 0; i < 64; i++) {
		unsigned char ch = (unsigned char)p[i];
		uint64_t bit = 1ull << i;
		q |= ch == '"' ? bit : 0;
		b |= ch == '\\' ? bit : 0;
		o |= (ch | 0x20) == '{' ? bit : 0;
		c |= (ch | 0x20) == '}' ? bit : 0;
	}
#endif
	*quote = q, *bslash = b, *open = o, *close = c;
}

/* A container unit, byte by byte (the tail of a piece, and the reference
 * for the block loop): stage 1's scalar rules. The scan stops early, past
 * the byte, at a backslash outside a string (stage 2 rejects it, and the
 * block loop's escape rule would read what follows differently) and at a
 * bracket one level past the nesting limit (stage 2 rejects that one): the
 * unit's parse then reports the error the whole input has there or before. */
static size_t scan_container_bytes(const char *p, size_t i, size_t n, unit_t *u)
{
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (u->in_string) {
			if (u->escaped)
				u->escaped = false;
			else if (c == '\\')
				u->escaped = true;
			else if (c == '"')
				u->in_string = false;
		} else if (c == '"') {
			u->in_string = true;
		} else if (c == '\\') {
			return i + 1;
		} else if ((c | 0x20) == '{') {
			if (++u->depth > u->depth_limit)
				return i + 1;
		} else if ((c | 0x20) == '}') {
			if (--u->depth == 0)
				return i + 1;
		}
	}
	return SIZE_MAX;
}

/* The events of one block, in order, when the unit may end in it. */
static size_t block_events(uint64_t opens, uint64_t closes, uint64_t bad, size_t base, unit_t *u)
{
	uint64_t ev = opens | closes | bad;
	while (ev) {
		unsigned b = (unsigned)__builtin_ctzll(ev);
		uint64_t bit = 1ull << b;
		ev &= ev - 1;
		if (bad & bit)
			return base + b + 1;
		if (opens & bit) {
			if (++u->depth > u->depth_limit)
				return base + b + 1;
		} else if (--u->depth == 0) {
			return base + b + 1;
		}
	}
	return SIZE_MAX;
}

/* A container unit, 64 bytes at a time (simdjson's stage-1 masks: escapes
 * from backslash runs, strings from a prefix XOR of the quotes), counting
 * brackets outside strings; a block is looked at bracket by bracket only
 * when it could close the unit, nest too deep or hold a stray backslash. */
static size_t scan_container(const char *p, size_t n, unit_t *u)
{
	size_t i = u->scan;
	uint64_t next_escaped = u->escaped, in_string = u->in_string ? ~0ull : 0;
	for (; n - i >= 64; i += 64) {
		uint64_t quote, bslash, open, close, escaped;
		classify64(p + i, &quote, &bslash, &open, &close);
		if (bslash == 0) {
			escaped = next_escaped;
			next_escaped = 0;
		} else {
			uint64_t potential = bslash & ~next_escaped;
			uint64_t code = (((potential << 1) | ODD_BITS) - potential) ^ ODD_BITS;
			escaped = code ^ (bslash | next_escaped);
			next_escaped = (code & bslash) >> 63;
		}
		quote &= ~escaped;
		uint64_t in_str = prefix_xor(quote) ^ in_string;
		uint64_t outside = ~(in_str | quote);
		uint64_t opens = open & outside, closes = close & outside, bad = bslash & outside;
		unsigned n_open = popcount64(opens);
		unsigned n_close = popcount64(closes);
		if (__builtin_expect(bad != 0 || n_close >= u->depth ||
		                             u->depth + n_open > u->depth_limit,
		                     0)) {
			size_t end = block_events(opens, closes, bad, i, u);
			if (end != SIZE_MAX)
				return end;
		} else {
			u->depth += n_open - n_close;
		}
		in_string = (uint64_t)((int64_t)in_str >> 63);
	}
	u->escaped = next_escaped != 0;
	u->in_string = in_string != 0;
	return scan_container_bytes(p, i, n, u);
}

static size_t scan_unit(const char *p, size_t n, unit_t *u)
{
	switch (u->kind) {
	case UNIT_STRING:
		return scan_string(p, n, u);
	case UNIT_CONTAINER:
		return scan_container(p, n, u);
	default:
		return scan_scalar(p, n, u);
	}
}

/* ---- Lines and errors */

/* '\n' bytes in p[0, n). Every piece passes here once (error lines need
 * them after the piece is gone), so it is a second read of every byte: it
 * counts 64 bytes per step into byte counters, four matches per counter a
 * step, summed every 63 steps before they could wrap (no POPCNT: this file
 * is built for any x86-64). About 0.25 instructions a byte. */
static size_t count_nl(const char *p, size_t n)
{
	size_t lines = 0, i = 0;
#if defined(__SSE2__)
	const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
	while (n - i >= 64) {
		size_t steps = (n - i) / 64 < 63 ? (n - i) / 64 : 63;
		const char *q = p + i, *end = q + steps * 64;
		__m128i acc = zero;
		for (; q < end; q += 64) {
			const __m128i *v = (const __m128i *)(const void *)q;
			__m128i a = _mm_cmpeq_epi8(_mm_loadu_si128(v), nl);
			__m128i b = _mm_cmpeq_epi8(_mm_loadu_si128(v + 1), nl);
			__m128i c = _mm_cmpeq_epi8(_mm_loadu_si128(v + 2), nl);
			__m128i d = _mm_cmpeq_epi8(_mm_loadu_si128(v + 3), nl);
			/* A match is -1: the sum of four is -(matches). */
			__m128i sum = _mm_add_epi8(_mm_add_epi8(a, b), _mm_add_epi8(c, d));
			acc = _mm_sub_epi8(acc, sum);
		}
		__m128i sums = _mm_sad_epu8(acc, zero);
		lines += (size_t)_mm_cvtsi128_si64(sums) + (size_t)_mm_extract_epi16(sums, 4);
		i += steps * 64;
	}
#endif
	for (; i < n; i++)
		lines += p[i] == '\n';
	return lines;
}

/* '\n' bytes before `offset`, which is in the current piece (or its end). */
static size_t lines_before(const json_stream_t *s, size_t offset)
{
	assert(offset >= s->piece_base && offset - s->piece_base <= s->piece_len);
	return s->piece_lines + count_nl(s->piece, offset - s->piece_base);
}

static int stream_fail(json_stream_t *s, size_t offset, size_t line, const char *reason,
                       json_error_t *err)
{
	s->failed = true;
	s->err = (json_error_t){.offset = offset, .line = line, .reason = reason};
	*err = s->err;
	return -1;
}

/* An error at `offset` in the current piece. */
static int fail_here(json_stream_t *s, size_t offset, const char *reason, json_error_t *err)
{
	return stream_fail(s, offset, lines_before(s, offset) + 1, reason, err);
}

/* ---- The envelope */

static bool keeping(const json_stream_t *s)
{
	return s->keep_env && !s->env_frozen && !s->env_overflow && s->n_frames < s->n_steps;
}

static void env_keep(json_stream_t *s, const char *p, size_t n)
{
	if (!keeping(s))
		return;
	if (s->env.len + n > s->env_max || json_buf_append(&s->env, p, n) < 0) {
		s->env_overflow = true;
		json_buf_free(&s->env);
		s->env = (json_buf_t){0};
	}
}

/* Freezes the envelope: closes the containers still open and parses it. */
static void env_freeze(json_stream_t *s)
{
	if (s->env_frozen)
		return;
	for (uint32_t f = s->n_frames; s->keep_env && !s->env_overflow && f-- > 0;) {
		if (json_buf_append(&s->env, s->frames[f].is_array ? "]" : "}", 1) < 0)
			s->env_overflow = true;
	}
	s->env_frozen = true;
	if (!s->keep_env || s->env_overflow || s->env.len == 0)
		return;
	json_error_t e;
	/* The text is what the stream validated, closed: it parses. */
	s->env_ok = json_parse(s->env_parser, s->env.data, s->env.len, &s->env_doc, &e) == 0;
	assert(s->env_ok);
}

/* ---- Records through the window
 *
 * The fast path for records: stage 1 runs once over a window of the piece
 * from a record's first byte, and stage 2 walks each record's entries from
 * that index (json_parse_value_indexed), which also finds where the record
 * ends. When stage 1 rejects the window (a string cut by its end, or a real
 * error), the entries before that string's quote are still exact; a record
 * that needs entries past them, or ends with the window, goes the unit way
 * (scan, then json_parse), which gives the exact result in every case. */

/* Room for the index and backslash map of a window of len bytes: 0, or -1
 * without memory. One allocation for both: with the map in a block of its
 * own, each stream made and freed (as `ringfill bench parse` does) took 32
 * page faults on twitter-like.json, which cost more time than the map saved
 * (likely glibc trimming the heap's top at each free and faulting it in
 * again; not looked into further). */
static int window_grow(json_stream_t *s, size_t len)
{
	if (len + JSON_STAGE1_IDX_SLACK <= s->win.idx_cap)
		return 0;
	/* Grown as windows get longer, so a small document costs a small index. */
	size_t cap = s->win.idx_cap * 2 > len + JSON_STAGE1_IDX_SLACK ? s->win.idx_cap * 2
	                                                            : len + JSON_STAGE1_IDX_SLACK;
	if (cap > JSON_STREAM_WINDOW_BYTES + JSON_STAGE1_IDX_SLACK)
		cap = JSON_STREAM_WINDOW_BYTES + JSON_STAGE1_IDX_SLACK;
	size_t idx_bytes = (cap * sizeof *s->win.idx + sizeof *s->win.bslash - 1) &
	                   ~(sizeof *s->win.bslash - 1);
	size_t map_bytes = JSON_BSLASH_MAP_WORDS(cap) * sizeof *s->win.bslash;
	void *mem = realloc(s->win.idx, idx_bytes + map_bytes);
	if (!mem)
		return -1;
	s->win.idx = mem;
	s->win.bslash = (uint64_t *)(void *)((char *)mem + idx_bytes);
	s->win.idx_cap = cap;
	return 0;
}

static void window_build(json_stream_t *s)
{
	size_t len = s->piece_len - s->pos;
	if (len > JSON_STREAM_WINDOW_BYTES)
		len = JSON_STREAM_WINDOW_BYTES;
	s->win.valid = false;
	if (window_grow(s, len) < 0)
		return; /* records go the unit way */
	uint32_t n = 0;
	json_error_t e;
	/* The map is positional (no escape state), so a window, which starts
	 * outside strings anywhere in the piece, needs nothing carried into it;
	 * values that cross pieces are parsed from a copy by json_parse, which
	 * makes its own. */
	if (json_stage1(s->piece + s->pos, (uint32_t)len, s->win.idx, &n, s->win.bslash, false,
	                &e) < 0 &&
	    n > 0)
		n--; /* the quote of the string that holds the error */
	s->win.base = s->pos;
	s->win.len = len;
	s->win.n = n;
	s->win.k = 0;
	s->win.valid = true;
}

/* The record starting at pos: 1 and *rec, 0 to parse it as a unit, -1. */
static int record_from_window(json_stream_t *s, json_stream_record_t *rec, json_error_t *err)
{
	bool fresh = false;
	if (!s->win.valid || s->pos >= s->win.base + s->win.len) {
		window_build(s);
		fresh = true;
	}
	for (;;) {
		if (!s->win.valid)
			return 0;
		uint32_t rel = (uint32_t)(s->pos - s->win.base), k = s->win.k;
		while (k < s->win.n && s->win.idx[k] < rel)
			k++;
		s->win.k = k;
		int r = 1;
		json_doc_t doc;
		uint32_t used = 0;
		json_error_t e;
		if (k < s->win.n && s->win.idx[k] == rel)
			r = json_parse_value_indexed(s->parser, s->n_frames, s->piece + s->win.base,
			                             s->win.len, s->win.idx + k, s->win.n - k,
			                             s->win.bslash, &doc, &used, &e);
		if (r < 0)
			return fail_here(s, s->piece_base + s->win.base + e.offset, e.reason, err);
		if (r == 1) {
			if (fresh || s->win.base + s->win.len == s->piece_len)
				return 0;
			window_build(s);
			fresh = true;
			continue;
		}
		const json_node_t *v = &doc.nodes[0];
		s->win.k = k + used;
		s->pos = s->win.base + v->start + v->len;
		s->state = SK_AFTER;
		s->last_comma = false;
		env_freeze(s);
		*rec = (json_stream_record_t){.doc = doc,
		                              .offset = s->piece_base + s->win.base + v->start,
		                              .paths = s->rec_mask};
		return 1;
	}
}

/* ---- The skeleton */

/* The paths that select the value about to start, so far. */
static uint64_t value_selected(const json_stream_t *s)
{
	if (s->n_frames == 0)
		return s->all;
	const sk_frame_t *f = &s->frames[s->n_frames - 1];
	if (!f->is_array)
		return f->child;
	/* Once per element: the steps [*] were looked up when the array opened. */
	uint64_t sel = f->each;
	for (uint64_t m = f->paths & ~f->each; m; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		json_step_t st = json_path_step(s->rows[i], s->n_frames - 1);
		if (st.kind == JSON_STEP_INDEX && f->count - 1 == st.index)
			sel |= 1ull << i;
	}
	return sel;
}

/* Of the paths in sel, those that end at the current depth (the value is
 * their record) or, with `longer`, go on into the value. */
static uint64_t paths_ending(const json_stream_t *s, uint64_t sel, bool longer)
{
	uint64_t out = 0;
	for (uint64_t m = sel; m; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		if ((s->steps[i] > s->n_frames) == longer)
			out |= 1ull << i;
	}
	return out;
}

/* Whether the key just read (a JSON_STRING at node 0 of doc) selects its
 * member under step st. */
static bool key_selects(json_step_t st, const json_doc_t *doc)
{
	if (st.kind == JSON_STEP_ALL)
		return true;
	if (st.kind != JSON_STEP_NAME)
		return false;
	const json_node_t *k = &doc->nodes[0];
	if (!(k->flags & JSON_F_ESCAPED))
		return k->len - 2 == st.name_len &&
		       memcmp(doc->src + k->start + 1, st.name, st.name_len) == 0;
	char small[256];
	size_t n = json_string_get(doc, 0, small, sizeof small);
	if (n != st.name_len)
		return false;
	if (n <= sizeof small)
		return memcmp(small, st.name, n) == 0;
	char *big = malloc(n);
	bool eq = big && json_string_get(doc, 0, big, n) == n && memcmp(big, st.name, n) == 0;
	free(big);
	return eq;
}

/* The paths of the top frame whose step selects the member of the key just
 * read. */
static uint64_t key_paths(const json_stream_t *s, const json_doc_t *doc)
{
	const sk_frame_t *f = &s->frames[s->n_frames - 1];
	uint64_t out = 0;
	for (uint64_t m = f->paths; m; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		if (key_selects(json_path_step(s->rows[i], s->n_frames - 1), doc))
			out |= 1ull << i;
	}
	return out;
}

static void unit_begin(json_stream_t *s, int kind, bool is_key, bool is_record)
{
	size_t at = s->pos;
	s->unit = (unit_t){.kind = kind, .is_key = is_key, .is_record = is_record,
	                   .start = s->piece_base + at, .from = at,
	                   .scan = kind == UNIT_SCALAR ? at : at + 1, .depth = 1};
	if (kind == UNIT_CONTAINER) {
		uint32_t max = json_parser_depth_max(s->parser);
		uint32_t used = s->n_frames;
		s->unit.depth_limit = used < max ? max - used : 0;
	}
	s->last_comma = false;
}

/* The bracket at pos opens a container on the paths `on`: walk into it. */
static int frame_push(json_stream_t *s, uint64_t on, json_error_t *err)
{
	char c = s->piece[s->pos];
	if (s->n_frames >= json_parser_depth_max(s->parser))
		return fail_here(s, s->piece_base + s->pos, JSON_E_DEPTH, err);
	env_keep(s, &c, 1);
	uint64_t each = 0;
	for (uint64_t m = c == '[' ? on : 0; m; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		if (json_path_step(s->rows[i], s->n_frames).kind == JSON_STEP_ALL)
			each |= 1ull << i;
	}
	s->frames[s->n_frames++] = (sk_frame_t){.is_array = c == '[', .paths = on, .each = each};
	s->state = SK_OPENED;
	s->last_comma = false;
	s->pos++;
	return 0;
}

static void frame_pop(json_stream_t *s)
{
	char c = s->piece[s->pos];
	s->n_frames--;
	env_keep(s, &c, 1);
	s->state = SK_AFTER;
	s->last_comma = false;
	s->pos++;
}

/* ']' or '}' where a value or key was expected (stage 2's fail_closer). */
static int fail_closer(json_stream_t *s, json_error_t *err)
{
	if (s->last_comma && s->comma_off < s->piece_base)
		return stream_fail(s, s->comma_off, s->comma_lines + 1, JSON_E_TRAILING_COMMA, err);
	if (s->last_comma)
		return fail_here(s, s->comma_off, JSON_E_TRAILING_COMMA, err);
	return fail_here(s, s->piece_base + s->pos, JSON_E_UNEXPECTED, err);
}

/* One token of the skeleton at pos (not whitespace). Returns 0 to go on,
 * 1 with *rec for a record read from the window, -1 on error; a value or
 * key that is not begins a unit instead of being consumed. */
static int skeleton_token(json_stream_t *s, json_stream_record_t *rec, json_error_t *err)
{
	char c = s->piece[s->pos];
	size_t off = s->piece_base + s->pos;
	sk_frame_t *top = s->n_frames ? &s->frames[s->n_frames - 1] : NULL;
	switch (s->state) {
	case SK_OPENED:
		if (c == (top->is_array ? ']' : '}')) {
			frame_pop(s);
			return 0;
		}
		if (!top->is_array) {
			s->state = SK_KEY;
			return 0;
		}
		top->count++;
		s->state = SK_VALUE;
		/* fall through */
	case SK_VALUE: {
		/* json_stream_new refused paths that overlap, so a value is a
		 * record of some paths or on the way of others, never both. */
		uint64_t sel = value_selected(s);
		uint64_t on = paths_ending(s, sel, true);
		bool on_path = on != 0;
		bool selected = sel != 0;
		s->rec_mask = on_path ? 0 : sel;
		bool value = c != ']' && c != '}' && c != ':' && c != ',';
		if (selected && !on_path && value && s->window_ok) {
			int r = record_from_window(s, rec, err);
			if (r != 0)
				return r;
		}
		if (c == '{' || c == '[') {
			if (on_path)
				return frame_push(s, on, err);
			unit_begin(s, UNIT_CONTAINER, false, selected);
		} else if (c == '"') {
			unit_begin(s, UNIT_STRING, false, selected && !on_path);
		} else if (c == ']') {
			return fail_closer(s, err);
		} else if (c == '}' || c == ':' || c == ',') {
			return fail_here(s, off, JSON_E_UNEXPECTED, err);
		} else {
			unit_begin(s, UNIT_SCALAR, false, selected && !on_path);
		}
		return 0;
	}
	case SK_KEY:
		if (c == '"') {
			top->count++;
			unit_begin(s, UNIT_STRING, true, false);
			return 0;
		}
		if (c == '}')
			return fail_closer(s, err);
		return fail_here(s, off, JSON_E_UNEXPECTED, err);
	case SK_COLON:
		if (c != ':')
			return fail_here(s, off, JSON_E_UNEXPECTED, err);
		env_keep(s, &c, 1);
		s->last_comma = false;
		s->state = SK_VALUE;
		s->pos++;
		return 0;
	default: /* SK_AFTER */
		if (!top)
			return fail_here(s, off, JSON_E_TRAILING_DATA, err);
		if (c == ',') {
			env_keep(s, &c, 1);
			s->last_comma = true;
			s->comma_off = off;
			s->pos++;
			if (top->is_array)
				top->count++;
			s->state = top->is_array ? SK_VALUE : SK_KEY;
			return 0;
		}
		if (c == (top->is_array ? ']' : '}')) {
			frame_pop(s);
			return 0;
		}
		return fail_here(s, off, JSON_E_UNEXPECTED, err);
	}
}

/* ---- Units */

/* The unit's bytes end at `end` in the piece (SIZE_MAX: at the end of the
 * input). Parses it; a record goes to *rec (returns 1), anything else 0;
 * -1 on error. */
static int unit_end(json_stream_t *s, size_t end, json_stream_record_t *rec, json_error_t *err)
{
	const unit_t *u = &s->unit;
	bool at_eof = end == SIZE_MAX;
	size_t stop = at_eof ? s->piece_len : end;
	const char *text;
	size_t len;
	if (u->carried) {
		if (s->carry.len + (stop - u->from) > s->value_max)
			return stream_fail(s, u->start, u->lines + 1, JSON_E_VALUE_TOO_LARGE, err);
		/* After json_stream_finish there is no piece (NULL) to add from. */
		if (stop > u->from &&
		    json_buf_append(&s->carry, s->piece + u->from, stop - u->from) < 0)
			return stream_fail(s, 0, 1, JSON_E_NOMEM, err);
		text = s->carry.data, len = s->carry.len;
	} else {
		text = s->piece + u->from, len = stop - u->from;
		if (len > s->value_max)
			return fail_here(s, u->start, JSON_E_VALUE_TOO_LARGE, err);
	}
	s->pos = stop;
	json_doc_t doc;
	json_error_t e;
	if (json_parse_nested(s->parser, s->n_frames, text, len, &doc, &e) < 0) {
		/* A literal cut by the unit's end: the whole input has the byte
		 * that ended the run there, which is not the literal's. */
		if (u->kind == UNIT_SCALAR && !at_eof && e.offset == len &&
		    strcmp(e.reason, JSON_E_END) == 0)
			e.reason = JSON_E_UNEXPECTED;
		size_t before = u->carried ? u->lines : lines_before(s, u->start);
		return stream_fail(s, u->start + e.offset, before + e.line, e.reason, err);
	}
	/* A container scan cut short (see scan_container_bytes) always holds
	 * an error, found above. */
	assert(u->kind != UNIT_CONTAINER || at_eof || text[len - 1] == '}' || text[len - 1] == ']');
	s->unit.kind = UNIT_NONE;
	env_keep(s, text, len);
	s->state = u->is_key ? SK_COLON : SK_AFTER;
	if (u->is_key) {
		sk_frame_t *f = &s->frames[s->n_frames - 1];
		f->child = key_paths(s, &doc);
		if (s->refuse_repeats && f->child) {
			/* The paths whose step here is a name (.* takes every member). */
			uint64_t named = 0;
			for (uint64_t m = f->child; m; m &= m - 1) {
				unsigned i = (unsigned)__builtin_ctzll(m);
				if (json_path_step(s->rows[i], s->n_frames - 1).kind == JSON_STEP_NAME)
					named |= 1ull << i;
			}
			if (named & f->named)
				return stream_fail(s, u->start,
				                   (u->carried ? u->lines : lines_before(s, u->start)) + 1,
				                   JSON_STREAM_E_REPEATED, err);
			f->named |= named;
		}
		return 0;
	}
	if (!u->is_record)
		return 0;
	env_freeze(s);
	*rec = (json_stream_record_t){.doc = doc, .offset = u->start, .paths = s->rec_mask};
	return 1;
}

/* The piece ends inside the unit: keep its bytes for the next one. */
static int unit_carry(json_stream_t *s, json_error_t *err)
{
	unit_t *u = &s->unit;
	if (!u->carried) {
		u->lines = lines_before(s, u->start);
		s->carry.len = 0;
		u->carried = true;
	}
	size_t n = s->piece_len - u->from;
	if (s->carry.len + n > s->value_max)
		return stream_fail(s, u->start, u->lines + 1, JSON_E_VALUE_TOO_LARGE, err);
	if (json_buf_append(&s->carry, s->piece + u->from, n) < 0)
		return stream_fail(s, 0, 1, JSON_E_NOMEM, err);
	s->pos = s->piece_len;
	return 0;
}

/* ---- The API */

/* Whether step a and step b can select the same member or element. */
static bool steps_meet(json_step_t a, json_step_t b)
{
	if (a.kind == JSON_STEP_ALL || b.kind == JSON_STEP_ALL)
		return true;
	if (a.kind != b.kind)
		return false;
	if (a.kind == JSON_STEP_INDEX)
		return a.index == b.index;
	return a.name_len == b.name_len && memcmp(a.name, b.name, a.name_len) == 0;
}

bool json_stream_paths_overlap(const json_path_t *a, const json_path_t *b)
{
	uint32_t na = json_path_n_steps(a), nb = json_path_n_steps(b);
	if (na == nb)
		return false;
	uint32_t n = na < nb ? na : nb;
	for (uint32_t i = 0; i < n; i++)
		if (!steps_meet(json_path_step(a, i), json_path_step(b, i)))
			return false;
	return true;
}

bool json_stream_path_is_root(const json_path_t *p)
{
	return json_path_is_rooted(p) && json_path_n_steps(p) == 0;
}

json_stream_t *json_stream_new(const json_path_t *rows, const json_stream_opts_t *opts)
{
	assert(rows);
	return json_stream_new_paths(&rows, 1, opts);
}

json_stream_t *json_stream_new_paths(const json_path_t *const *rows, uint32_t n_paths,
                                     const json_stream_opts_t *opts)
{
	json_stream_opts_t o = opts ? *opts : (json_stream_opts_t){0};
	bool ok = n_paths >= 1 && n_paths <= JSON_STREAM_PATHS_MAX && (n_paths == 1 || !o.keep_envelope);
	for (uint32_t i = 0; ok && i < n_paths; i++) {
		ok = json_path_is_rooted(rows[i]);
		for (uint32_t k = 0; ok && k < i; k++)
			ok = !json_stream_paths_overlap(rows[i], rows[k]);
	}
	if (!ok) {
		errno = EINVAL;
		return NULL;
	}
	json_stream_t *s = calloc(1, sizeof *s);
	if (!s)
		goto nomem;
	s->n_paths = n_paths;
	for (uint32_t i = 0; i < n_paths; i++) {
		s->rows[i] = rows[i];
		s->steps[i] = json_path_n_steps(rows[i]);
		if (s->steps[i] > s->n_steps)
			s->n_steps = s->steps[i];
		s->all |= 1ull << i;
	}
	s->value_max = o.value_bytes_max ? o.value_bytes_max : JSON_STREAM_VALUE_BYTES_MAX;
	if (s->value_max > JSON_DOC_BYTES_MAX)
		s->value_max = JSON_DOC_BYTES_MAX;
	s->env_max = o.envelope_bytes_max ? o.envelope_bytes_max : JSON_STREAM_ENVELOPE_BYTES_MAX;
	s->keep_env = o.keep_envelope;
	s->refuse_repeats = o.refuse_repeated_names;
	s->parser = json_parser_new(o.depth_max);
	s->env_parser = json_parser_new(0);
	s->frames = calloc(s->n_steps + 1, sizeof *s->frames);
	if (!s->parser || !s->env_parser || !s->frames)
		goto nomem;
	/* A record that ends in the window is then never over the limit, so
	 * both ways of reading records apply the limit alike. */
	s->window_ok = s->value_max >= JSON_STREAM_WINDOW_BYTES;
	s->state = SK_VALUE;
	return s;
nomem:
	json_stream_free(s);
	errno = ENOMEM;
	return NULL;
}

void json_stream_free(json_stream_t *s)
{
	if (!s)
		return;
	json_parser_free(s->parser);
	json_parser_free(s->env_parser);
	free(s->frames);
	free(s->win.idx); /* and the map with it */
	json_buf_free(&s->carry);
	json_buf_free(&s->env);
	free(s);
}

void json_stream_reset(json_stream_t *s)
{
	assert(s);
	json_stream_t old = *s;
	memset(s, 0, sizeof *s);
	/* The paths and options, as json_stream_new_paths set them. */
	memcpy(s->rows, old.rows, sizeof s->rows);
	memcpy(s->steps, old.steps, sizeof s->steps);
	s->n_paths = old.n_paths;
	s->n_steps = old.n_steps;
	s->all = old.all;
	s->value_max = old.value_max;
	s->env_max = old.env_max;
	s->keep_env = old.keep_env;
	s->refuse_repeats = old.refuse_repeats;
	s->window_ok = old.window_ok;
	/* The buffers, emptied: nothing in them is read before it is written
	 * again (frames are zeroed all the same, as calloc gave them). */
	s->parser = old.parser;
	s->env_parser = old.env_parser;
	s->frames = old.frames;
	memset(s->frames, 0, (s->n_steps + 1) * sizeof *s->frames);
	s->win.idx = old.win.idx;
	s->win.idx_cap = old.win.idx_cap;
	s->win.bslash = old.win.bslash;
	s->carry = old.carry;
	s->carry.len = 0;
	s->env = old.env;
	s->env.len = 0;
	s->state = SK_VALUE;
}

size_t json_stream_bytes(const json_stream_t *s)
{
	return sizeof *s + json_parser_bytes(s->parser) + json_parser_bytes(s->env_parser) +
	       (s->n_steps + 1) * sizeof *s->frames + s->win.idx_cap * sizeof *s->win.idx +
	       JSON_BSLASH_MAP_WORDS(s->win.idx_cap) * sizeof *s->win.bslash +
	       s->carry.cap + s->env.cap;
}

void json_stream_feed(json_stream_t *s, const char *piece, size_t len)
{
	assert(s && (piece || len == 0) && !s->finished && s->pos == s->piece_len);
	s->piece = piece;
	s->piece_len = len;
	s->pos = 0;
}

void json_stream_finish(json_stream_t *s)
{
	assert(s && s->pos == s->piece_len);
	s->finished = true;
}

/* The piece is used up: the next one starts where it ended. */
static int piece_done(json_stream_t *s)
{
	if (s->last_comma && s->comma_off >= s->piece_base)
		s->comma_lines = lines_before(s, s->comma_off);
	s->piece_lines += count_nl(s->piece, s->piece_len);
	s->piece_base += s->piece_len;
	s->piece = NULL;
	s->piece_len = s->pos = 0;
	/* A unit that goes on continues at the next piece's first byte. */
	s->unit.from = s->unit.scan = 0;
	s->win.valid = false;
	return JSON_STREAM_MORE;
}

/* The input ended with the skeleton in its current state. */
static int skeleton_eof(json_stream_t *s, json_error_t *err)
{
	size_t end = s->piece_base + s->piece_len;
	if (s->state == SK_AFTER && s->n_frames == 0) {
		env_freeze(s);
		s->ended = true;
		return JSON_STREAM_END;
	}
	if (s->state == SK_VALUE && s->n_frames == 0)
		return fail_here(s, end, JSON_E_EMPTY, err);
	return fail_here(s, end, JSON_E_END, err);
}

int json_stream_next(json_stream_t *s, json_stream_record_t *rec, json_error_t *err)
{
	assert(s && rec && err);
	if (s->failed) {
		*err = s->err;
		return -1;
	}
	if (s->ended)
		return JSON_STREAM_END;
	for (;;) {
		if (s->unit.kind != UNIT_NONE) {
			size_t end = scan_unit(s->piece, s->piece_len, &s->unit);
			if (end == SIZE_MAX && !s->finished) {
				if (unit_carry(s, err) < 0)
					return -1;
				return piece_done(s);
			}
			int r = unit_end(s, end, rec, err);
			if (r != 0)
				return r;
			continue;
		}
		while (s->pos < s->piece_len && is_ws((unsigned char)s->piece[s->pos]))
			s->pos++;
		if (s->pos == s->piece_len) {
			if (!s->finished)
				return piece_done(s);
			return skeleton_eof(s, err);
		}
		int r = skeleton_token(s, rec, err);
		if (r != 0)
			return r;
	}
}

int json_stream_envelope(json_stream_t *s, json_doc_t *out)
{
	if (!s->env_frozen || !s->env_ok)
		return -1;
	*out = s->env_doc;
	return 0;
}

size_t json_stream_offset(const json_stream_t *s)
{
	return s->piece_base + s->pos;
}

/* ---- NDJSON in pieces */

struct json_ndjson_stream {
	json_parser_t *parser; /* the caller's */
	size_t line_max;
	json_buf_t carry;  /* a line cut by the last piece's end */
	size_t carry_at;   /* its offset in the whole input */
	size_t carry_line; /* its 1-based line */
	size_t at;         /* offset of the next piece in the whole input */
	size_t line;       /* 1-based line the next piece starts on */
};

/* Hands fn the line offsets in the whole input. */
typedef struct {
	json_ndjson_fn fn;
	void *ctx;
	size_t base;
} ndjson_shift_t;

static int ndjson_shift(void *ctx, const json_doc_t *doc, size_t line_offset)
{
	const ndjson_shift_t *sh = ctx;
	return sh->fn(sh->ctx, doc, sh->base + line_offset);
}

/* Whole lines src[0, len) at offset `base`, starting on line `line`;
 * *newlines: the '\n' bytes in src when it returns 0 and src ends with one. */
static int ndjson_run(json_ndjson_stream_t *st, const char *src, size_t len, size_t base,
                      size_t line, json_ndjson_fn fn, void *ctx, json_error_t *err,
                      size_t *newlines)
{
	ndjson_shift_t sh = {.fn = fn, .ctx = ctx, .base = base};
	int r = json_ndjson_each_counted(st->parser, src, len, ndjson_shift, &sh, err, newlines);
	if (r < 0) {
		err->offset += base;
		err->line += line - 1;
	}
	return r;
}

json_ndjson_stream_t *json_ndjson_stream_new(json_parser_t *p, size_t line_bytes_max)
{
	json_ndjson_stream_t *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->parser = p;
	st->line_max = line_bytes_max ? line_bytes_max : JSON_STREAM_VALUE_BYTES_MAX;
	st->line = 1;
	return st;
}

void json_ndjson_stream_free(json_ndjson_stream_t *st)
{
	if (!st)
		return;
	json_buf_free(&st->carry);
	free(st);
}

/* Appends piece[0, n) to the cut line. */
static int ndjson_carry(json_ndjson_stream_t *st, const char *piece, size_t n, json_error_t *err)
{
	if (st->carry.len + n > st->line_max) {
		*err = (json_error_t){.offset = st->carry_at, .line = st->carry_line,
		                      .reason = JSON_E_VALUE_TOO_LARGE};
		return -1;
	}
	if (n && json_buf_append(&st->carry, piece, n) < 0) {
		*err = (json_error_t){.offset = 0, .line = 1, .reason = JSON_E_NOMEM};
		return -1;
	}
	return 0;
}

int json_ndjson_stream_feed(json_ndjson_stream_t *st, const char *piece, size_t len,
                            json_ndjson_fn fn, void *ctx, json_error_t *err)
{
	size_t pos = 0;
	int r;
	if (st->carry.len) {
		const char *nl = memchr(piece, '\n', len);
		size_t take = nl ? (size_t)(nl - piece) + 1 : len;
		if ((r = ndjson_carry(st, piece, take, err)) != 0)
			return r;
		pos = take;
		if (!nl)
			goto done;
		size_t newlines;
		r = ndjson_run(st, st->carry.data, st->carry.len, st->carry_at, st->carry_line, fn,
		               ctx, err, &newlines);
		st->carry.len = 0;
		if (r != 0)
			return r;
	}
	const char *last = len > pos ? memrchr(piece + pos, '\n', len - pos) : NULL;
	size_t whole = last ? (size_t)(last - piece) + 1 : pos;
	/* Each byte of the piece is counted once: lines before the run, in
	 * it, then after it. */
	size_t line = st->line + count_nl(piece, pos);
	if (whole > pos) {
		size_t newlines;
		if ((r = ndjson_run(st, piece + pos, whole - pos, st->at + pos, line, fn, ctx, err,
		                    &newlines)) != 0)
			return r;
		line += newlines; /* stage 1 indexed them: no second count */
	}
	if (whole < len) {
		st->carry_at = st->at + whole;
		st->carry_line = line;
		if ((r = ndjson_carry(st, piece + whole, len - whole, err)) != 0)
			return r;
	}
	st->line = line + count_nl(piece + whole, len - whole);
	st->at += len;
	return 0;
done:
	st->line += count_nl(piece, len);
	st->at += len;
	return 0;
}

size_t json_ndjson_stream_offset(const json_ndjson_stream_t *st)
{
	return st->carry.len ? st->carry_at : st->at;
}

bool json_ndjson_stream_too_long(const json_error_t *err)
{
	return err->reason && strcmp(err->reason, JSON_E_VALUE_TOO_LARGE) == 0;
}

int json_ndjson_stream_finish(json_ndjson_stream_t *st, json_ndjson_fn fn, void *ctx,
                              json_error_t *err)
{
	if (!st->carry.len)
		return 0;
	size_t newlines;
	int r = ndjson_run(st, st->carry.data, st->carry.len, st->carry_at, st->carry_line, fn,
	                   ctx, err, &newlines);
	st->carry.len = 0;
	return r;
}
