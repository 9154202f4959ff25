/* parse/json_value.c: reading values back off a parsed tape.
 *
 * The tape comes from json_parse (json.c) and points into the caller's bytes;
 * row extraction (store/batch.c), JSONPath (json_path.c) and `ringfill parse`
 * use these accessors and the compact writer. The input was validated when it
 * was parsed, so nothing here re-checks the grammar. */
#include <assert.h>
#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json_internal.h"

const uint8_t json_hex_digit[256] = {
	['0'] = 0x10, ['1'] = 0x11, ['2'] = 0x12, ['3'] = 0x13, ['4'] = 0x14, ['5'] = 0x15,
	['6'] = 0x16, ['7'] = 0x17, ['8'] = 0x18, ['9'] = 0x19, ['A'] = 0x1A, ['B'] = 0x1B,
	['C'] = 0x1C, ['D'] = 0x1D, ['E'] = 0x1E, ['F'] = 0x1F, ['a'] = 0x1A, ['b'] = 0x1B,
	['c'] = 0x1C, ['d'] = 0x1D, ['e'] = 0x1E, ['f'] = 0x1F,
};

/* Numbers up to this many bytes are converted from a copy on the stack; longer
 * ones (legal, but rare: "0.000...1" with hundreds of digits) from the heap. */
#define JSON_NUMBER_LOCAL_BYTES 64u
/* json_write keeps this many open containers on its own stack before it
 * borrows heap memory for deeper documents. */
#define JSON_WRITE_STACK_LOCAL 64u

/* ---- Strings */

static size_t utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decodes the (validated) escape at p[0] == '\\' into out; returns the input
 * bytes it used and sets *n to the output bytes. */
static size_t unescape_one(const char *p, char out[4], size_t *n)
{
	assert(p[0] == '\\');
	char c = p[1];
	*n = 1;
	switch (c) {
	case 'b': out[0] = '\b'; return 2;
	case 'f': out[0] = '\f'; return 2;
	case 'n': out[0] = '\n'; return 2;
	case 'r': out[0] = '\r'; return 2;
	case 't': out[0] = '\t'; return 2;
	case 'u': break;
	default: out[0] = c; return 2; /* " \ / */
	}
	uint32_t cp = (uint32_t)json_hex4(p + 2);
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		/* Stage 2 guaranteed the escaped low surrogate that follows. */
		uint32_t lo = (uint32_t)json_hex4(p + 8);
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		*n = utf8_encode(cp, out);
		return 12;
	}
	*n = utf8_encode(cp, out);
	return 6;
}

/* Calls sink(ctx, bytes, n) for each piece of the unescaped string in node;
 * stops early when sink returns false. */
typedef bool (*piece_fn)(void *ctx, const char *bytes, size_t n);

static void string_pieces(const json_doc_t *d, const json_node_t *node, piece_fn sink, void *ctx)
{
	const char *p = d->src + node->start + 1;
	const char *end = d->src + node->start + node->len - 1;
	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		const char *stop = bs ? bs : end;
		if (stop > p && !sink(ctx, p, (size_t)(stop - p)))
			return;
		if (!bs)
			return;
		char u[4];
		size_t n;
		p = bs + unescape_one(bs, u, &n);
		if (!sink(ctx, u, n))
			return;
	}
}

typedef struct {
	char *out;
	size_t cap, total;
} copy_ctx_t;

static bool copy_piece(void *vctx, const char *bytes, size_t n)
{
	copy_ctx_t *c = vctx;
	if (c->total < c->cap) {
		size_t room = c->cap - c->total;
		memcpy(c->out + c->total, bytes, n < room ? n : room);
	}
	c->total += n;
	return true;
}

size_t json_string_get(const json_doc_t *d, uint32_t n, char *out, size_t cap)
{
	assert(n < d->n_nodes && d->nodes[n].type == JSON_STRING);
	const json_node_t *node = &d->nodes[n];
	if (!(node->flags & JSON_F_ESCAPED)) {
		size_t len = node->len - 2u;
		if (cap)
			memcpy(out, d->src + node->start + 1, len < cap ? len : cap);
		return len;
	}
	copy_ctx_t c = {.out = out, .cap = cap};
	string_pieces(d, node, copy_piece, &c);
	return c.total;
}

typedef struct {
	const char *key;
	size_t key_len, pos;
	bool equal;
} cmp_ctx_t;

static bool cmp_piece(void *vctx, const char *bytes, size_t n)
{
	cmp_ctx_t *c = vctx;
	if (n > c->key_len - c->pos || memcmp(c->key + c->pos, bytes, n) != 0) {
		c->equal = false;
		return false;
	}
	c->pos += n;
	return true;
}

static inline bool key_equals(const char *src, const json_node_t *k, const char *key,
                              size_t key_len)
{
	size_t raw = k->len - 2u;
	if (!(k->flags & JSON_F_ESCAPED))
		return raw == key_len && memcmp(src + k->start + 1, key, key_len) == 0;
	if (raw < key_len)
		return false; /* unescaping never makes a string longer */
	cmp_ctx_t c = {.key = key, .key_len = key_len, .equal = true};
	json_doc_t d = {.src = src};
	string_pieces(&d, k, cmp_piece, &c);
	return c.equal && c.pos == key_len;
}

/* For json_select (json.c); json_object_get keeps its inlined copy. */
bool json_key_equals(const char *src, const json_node_t *k, const char *key, size_t key_len)
{
	return key_equals(src, k, key, key_len);
}

/* With duplicate keys the last one wins, as in JavaScript, Python and jq; so
 * the whole object is always scanned (O(members)). */
uint32_t json_object_get(const json_doc_t *d, uint32_t obj, const char *key, size_t key_len)
{
	assert(obj < d->n_nodes && d->nodes[obj].type == JSON_OBJECT);
	uint32_t found = JSON_NONE;
	uint32_t i = obj + 1;
	for (uint32_t m = 0; m < d->nodes[obj].count; m++) {
		if (key_equals(d->src, &d->nodes[i], key, key_len))
			found = i + 1;
		i = d->nodes[i + 1].next;
	}
	assert(i == d->nodes[obj].next);
	return found;
}

/* ---- Several names in one pass */

/* Names of up to NAME_WORDS_MAX bytes are compared as two words read from
 * their two ends (overlapping when shorter than twice a word, so every byte
 * is in one of them): equal lengths and equal words are equal names. Longer
 * ones go to memcmp. Each read stays inside the name. */
#define NAME_WORDS_MAX 16u

static inline void name_words(const char *p, size_t len, uint64_t *a, uint64_t *b)
{
	if (len >= 8) {
		memcpy(a, p, 8);
		memcpy(b, p + len - 8, 8);
	} else if (len >= 4) {
		uint32_t x, y;
		memcpy(&x, p, 4);
		memcpy(&y, p + len - 4, 4);
		*a = x, *b = y;
	} else {
		*a = len ? (uint64_t)(uint8_t)p[0] | (uint64_t)(uint8_t)p[len / 2] << 8 |
		           (uint64_t)(uint8_t)p[len - 1] << 16
		         : 0;
		*b = 0;
	}
}

static inline uint32_t name_hash(uint64_t a, uint64_t b, size_t len)
{
	uint64_t h = (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full) ^ len;
	return (uint32_t)(h >> 32 ^ h);
}

typedef struct {
	uint64_t a, b;   /* name_words, when len <= NAME_WORDS_MAX */
	size_t len;
	const char *s;   /* into json_names.text */
	uint32_t out;    /* its first index in the caller's names */
} name_t;

struct json_names {
	uint32_t n;      /* names as given */
	uint32_t n_uniq; /* distinct names */
	uint32_t mask;   /* slots - 1 (a power of two, at least twice n) */
	uint32_t *slots; /* distinct name + 1, 0: empty */
	uint32_t *same;  /* per name given: the first index of its distinct name */
	name_t *uniq;
	char *text;      /* the distinct names, back to back */
};

void json_names_free(json_names_t *ns)
{
	if (!ns)
		return;
	free(ns->slots);
	free(ns->same);
	free(ns->uniq);
	free(ns->text);
	free(ns);
}

static inline bool name_is(const name_t *nm, const char *key, size_t len, uint64_t a, uint64_t b)
{
	if (nm->len != len)
		return false;
	return len <= NAME_WORDS_MAX ? nm->a == a && nm->b == b : memcmp(nm->s, key, len) == 0;
}

json_names_t *json_names_new(const char *const *names, const size_t *lens, uint32_t n)
{
	json_names_t *ns = calloc(1, sizeof *ns);
	if (!ns)
		return NULL;
	size_t bytes = 0;
	for (uint32_t i = 0; i < n; i++)
		bytes += lens[i];
	uint32_t cap = 4;
	while (cap < 2u * n)
		cap *= 2;
	ns->n = n;
	ns->mask = cap - 1;
	ns->slots = calloc(cap, sizeof *ns->slots);
	ns->same = calloc(n ? n : 1, sizeof *ns->same);
	ns->uniq = calloc(n ? n : 1, sizeof *ns->uniq);
	ns->text = malloc(bytes ? bytes : 1);
	if (!ns->slots || !ns->same || !ns->uniq || !ns->text) {
		json_names_free(ns);
		return NULL;
	}
	char *at = ns->text;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a, b;
		name_words(names[i], lens[i], &a, &b);
		uint32_t h = name_hash(a, b, lens[i]) & ns->mask;
		while (ns->slots[h] && !name_is(&ns->uniq[ns->slots[h] - 1], names[i], lens[i], a, b))
			h = (h + 1) & ns->mask;
		if (!ns->slots[h]) { /* a new distinct name */
			memcpy(at, names[i], lens[i]);
			ns->uniq[ns->n_uniq] = (name_t){.a = a, .b = b, .len = lens[i], .s = at, .out = i};
			ns->slots[h] = ++ns->n_uniq;
			at += lens[i];
		}
		ns->same[i] = ns->uniq[ns->slots[h] - 1].out;
	}
	return ns;
}

/* Each distinct name's value goes to its first index, then to the others
 * given with the same name. A key without escapes is looked up by hash; one
 * with escapes is compared, unescaped, with every name. */
void json_object_get_all(const json_doc_t *d, uint32_t obj, const json_names_t *ns,
                         uint32_t *out)
{
	assert(obj < d->n_nodes && d->nodes[obj].type == JSON_OBJECT);
	for (uint32_t i = 0; i < ns->n; i++)
		out[i] = JSON_NONE;
	uint32_t i = obj + 1;
	for (uint32_t m = 0; m < d->nodes[obj].count; m++) {
		const json_node_t *k = &d->nodes[i];
		if (!(k->flags & JSON_F_ESCAPED)) {
			const char *key = d->src + k->start + 1;
			size_t len = k->len - 2u;
			uint64_t a, b;
			name_words(key, len, &a, &b);
			for (uint32_t h = name_hash(a, b, len) & ns->mask; ns->slots[h];
			     h = (h + 1) & ns->mask) {
				const name_t *nm = &ns->uniq[ns->slots[h] - 1];
				if (name_is(nm, key, len, a, b)) {
					out[nm->out] = i + 1;
					break;
				}
			}
		} else {
			for (uint32_t u = 0; u < ns->n_uniq; u++)
				if (key_equals(d->src, k, ns->uniq[u].s, ns->uniq[u].len)) {
					out[ns->uniq[u].out] = i + 1;
					break;
				}
		}
		i = d->nodes[i + 1].next;
	}
	assert(i == d->nodes[obj].next);
	for (uint32_t j = 0; j < ns->n; j++)
		out[j] = out[ns->same[j]];
}

/* ---- Numbers */

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* The value of the eight ASCII digits at p: pairs, then fours, then the
 * eight, with three multiplies rather than eight dependent multiply-adds
 * (simdjson's parse_eight_digits_unrolled). Little-endian loads only. */
static inline uint64_t eight_digits(const char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	v -= 0x3030303030303030ull;
	v = v * 10 + (v >> 8);
	return (((v & 0x000000FF000000FFull) * (100 + (1000000ull << 32))) +
	        (((v >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32)))) >>
	       32;
}
#define JSON_EIGHT_DIGITS 1
#else
#define JSON_EIGHT_DIGITS 0
#endif

/* The digits of a validated integer have no leading zero, so more than 19 of
 * them are at least 10^19, past every int64; 19 or fewer fit a uint64, and
 * one compare with the limit replaces an overflow check per digit. */
#define JSON_INT64_DIGITS_MAX 19u

/* 2^64 - 1 has 20 digits: 20 of them may still overflow, so the last one is
 * added with a check. */
#define JSON_UINT64_DIGITS_MAX 20u

/* The value of the digits [p, end), at most JSON_INT64_DIGITS_MAX of them. */
static inline uint64_t digits_value(const char *p, const char *end)
{
	uint64_t v = 0;
#if JSON_EIGHT_DIGITS
	for (; end - p >= 8; p += 8)
		v = v * 100000000u + eight_digits(p);
#endif
	for (; p < end; p++)
		v = v * 10u + (uint64_t)(*p - '0');
	return v;
}

int json_number_uint64(const json_doc_t *d, uint32_t n, uint64_t *out)
{
	assert(n < d->n_nodes && d->nodes[n].type == JSON_NUMBER);
	const json_node_t *node = &d->nodes[n];
	if (!(node->flags & JSON_F_INTEGER))
		return -ERANGE;
	const char *p = d->src + node->start, *end = p + node->len;
	if (node->flags & JSON_F_NEGATIVE) { /* the grammar's only negative zero is "-0" */
		if (node->len != 2 || p[1] != '0')
			return -ERANGE;
		*out = 0;
		return 0;
	}
	size_t digits = (size_t)(end - p);
	if (digits > JSON_UINT64_DIGITS_MAX)
		return -ERANGE;
	if (digits <= JSON_INT64_DIGITS_MAX) {
		*out = digits_value(p, end);
		return 0;
	}
	uint64_t v = digits_value(p, end - 1);
	if (__builtin_mul_overflow(v, 10u, &v) ||
	    __builtin_add_overflow(v, (uint64_t)(end[-1] - '0'), &v))
		return -ERANGE;
	*out = v;
	return 0;
}

int json_number_int64(const json_doc_t *d, uint32_t n, int64_t *out)
{
	assert(n < d->n_nodes && d->nodes[n].type == JSON_NUMBER);
	const json_node_t *node = &d->nodes[n];
	if (!(node->flags & JSON_F_INTEGER))
		return -ERANGE;
	const char *p = d->src + node->start, *end = p + node->len;
	bool neg = node->flags & JSON_F_NEGATIVE;
	if (neg)
		p++;
	if ((size_t)(end - p) > JSON_INT64_DIGITS_MAX)
		return -ERANGE;
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
	uint64_t v = digits_value(p, end);
	if (v > limit)
		return -ERANGE;
	if (neg)
		*out = v == limit ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

/* strtod follows LC_NUMERIC; JSON always uses '.', whatever the process
 * locale, so convert under a private "C" locale made once (lock-free: two
 * threads racing both make one and the loser frees its own). */
static locale_t c_numeric_locale(void)
{
	static _Atomic(locale_t) cached;
	locale_t l = atomic_load_explicit(&cached, memory_order_acquire);
	if (l)
		return l;
	locale_t fresh = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (!fresh)
		return (locale_t)0;
	locale_t expected = (locale_t)0;
	if (!atomic_compare_exchange_strong_explicit(&cached, &expected, fresh, memory_order_acq_rel,
	                                             memory_order_acquire)) {
		freelocale(fresh);
		return expected;
	}
	return fresh;
}

#if FLT_EVAL_METHOD == 0
/* Clinger's fast path ("How to read floating point numbers accurately",
 * 1990): a decimal w x 10^q whose significand w is at most 2^53 and whose
 * |q| is at most 22 converts exactly with one IEEE multiply or divide, since
 * w and 10^|q| are both exact doubles and the one operation rounds once,
 * correctly (round to nearest, and no wider intermediate: FLT_EVAL_METHOD 0).
 * That covers most numbers data holds (prices, ratings, coordinates of up
 * to 15 or 16 digits); every other one goes to strtod. */
static const double exact_pow10[] = {
	1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};
#define JSON_FAST_POW10_MAX 22
#define JSON_FAST_SIGNIFICAND_MAX (1ull << 53)
/* An exponent this large goes to strtod: a fraction's leading zeros could
 * bring a capped exponent back into the fast range (0.000...1e1000000). */
#define JSON_FAST_EXPONENT_CAP 100000

/* The validated number [p, end) through the fast path: true with *out set,
 * or false when it needs strtod. Leading zeros are not significant digits;
 * more than 19 significant ones could overflow w and go to strtod. */
static bool double_fast(const char *p, const char *end, double *out)
{
	bool neg = *p == '-';
	p += neg;
	uint64_t w = 0;
	unsigned sig = 0;
	int64_t frac = 0; /* digits after the '.' */
	bool point = false;
	/* The integer and fraction digits, one run (the grammar has at most one '.'). */
	for (; p < end && (is_digit((unsigned char)*p) || *p == '.'); p++) {
		if (*p == '.') {
			point = true;
			continue;
		}
		frac += point;
		if (sig == 0 && *p == '0')
			continue;
		if (++sig > JSON_INT64_DIGITS_MAX)
			return false;
		w = w * 10u + (uint64_t)(*p - '0');
	}
	int64_t e = 0;
	if (p < end) { /* 'e' or 'E': the grammar allows nothing else here */
		p++;
		bool eneg = *p == '-';
		p += *p == '-' || *p == '+';
		for (; p < end; p++)
			if ((e = e * 10 + (*p - '0')) >= JSON_FAST_EXPONENT_CAP)
				return false;
		if (eneg)
			e = -e;
	}
	if (w == 0) {
		*out = neg ? -0.0 : 0.0;
		return true;
	}
	int64_t q = e - frac;
	if (w > JSON_FAST_SIGNIFICAND_MAX || q < -JSON_FAST_POW10_MAX || q > JSON_FAST_POW10_MAX)
		return false;
	double x = (double)w; /* exact: w <= 2^53 */
	x = q < 0 ? x / exact_pow10[-q] : x * exact_pow10[q];
	*out = neg ? -x : x;
	return true;
}
#else
static bool double_fast(const char *p, const char *end, double *out)
{
	(void)p, (void)end, (void)out;
	return false; /* wider intermediates round twice: strtod for every number */
}
#endif

/* 0, or -ERANGE when the magnitude overflows a double (*out is then +-inf);
 * values too small for a double round to 0 without an error. -ENOMEM if the
 * locale or a long number's copy cannot be allocated. */
int json_number_double(const json_doc_t *d, uint32_t n, double *out)
{
	assert(n < d->n_nodes && d->nodes[n].type == JSON_NUMBER);
	const json_node_t *node = &d->nodes[n];
	const char *text = d->src + node->start;
	if (double_fast(text, text + node->len, out))
		return 0;
	locale_t loc = c_numeric_locale();
	if (!loc)
		return -ENOMEM;
	char local[JSON_NUMBER_LOCAL_BYTES];
	char *buf = local;
	if (node->len >= sizeof local) {
		buf = malloc((size_t)node->len + 1);
		if (!buf)
			return -ENOMEM;
	}
	memcpy(buf, d->src + node->start, node->len);
	buf[node->len] = '\0';
	double v = strtod_l(buf, NULL, loc);
	if (buf != local)
		free(buf);
	*out = v;
	return isinf(v) ? -ERANGE : 0;
}

/* ---- Output buffer and compact writer */

int json_buf_reserve(json_buf_t *b, size_t extra)
{
	if (extra <= b->cap - b->len)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	size_t need = b->len + extra;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	char *m = realloc(b->data, cap);
	if (!m)
		return -ENOMEM;
	b->data = m;
	b->cap = cap;
	return 0;
}

int json_buf_append(json_buf_t *b, const void *p, size_t n)
{
	int r = json_buf_reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void json_buf_free(json_buf_t *b)
{
	free(b->data);
	*b = (json_buf_t){0};
}

typedef struct {
	uint32_t end;   /* tape index just past the container */
	uint32_t child; /* children written so far */
	bool object;
} write_frame_t;

/* Compact output is never longer than the node's own text (it only drops
 * whitespace), so one reserve covers the whole walk. */
int json_write(const json_doc_t *d, uint32_t n, json_buf_t *out)
{
	assert(n < d->n_nodes);
	const json_node_t *nodes = d->nodes;
	if (json_buf_reserve(out, nodes[n].len) < 0)
		return -ENOMEM;
	write_frame_t local[JSON_WRITE_STACK_LOCAL], *stack = local;
	size_t stack_cap = JSON_WRITE_STACK_LOCAL, depth = 0;
	char *w = out->data + out->len;
	for (uint32_t i = n, end = nodes[n].next; i < end; i++) {
		const json_node_t *node = &nodes[i];
		if (depth > 0) {
			write_frame_t *f = &stack[depth - 1];
			if (f->child > 0)
				*w++ = f->object && (f->child & 1) ? ':' : ',';
			f->child++;
		}
		if (node->type == JSON_ARRAY || node->type == JSON_OBJECT) {
			if (depth == stack_cap) {
				size_t cap2 = stack_cap * 2;
				write_frame_t *m = stack == local ? malloc(cap2 * sizeof *m)
				                                  : realloc(stack, cap2 * sizeof *m);
				if (!m) {
					if (stack != local)
						free(stack);
					return -ENOMEM; /* out->len unchanged: nothing was appended */
				}
				if (stack == local)
					memcpy(m, local, sizeof local);
				stack = m;
				stack_cap = cap2;
			}
			*w++ = node->type == JSON_ARRAY ? '[' : '{';
			stack[depth++] = (write_frame_t){.end = node->next, .object = node->type == JSON_OBJECT};
		} else {
			memcpy(w, d->src + node->start, node->len);
			w += node->len;
		}
		while (depth > 0 && stack[depth - 1].end == i + 1)
			*w++ = stack[--depth].object ? '}' : ']';
	}
	assert(depth == 0 && (size_t)(w - out->data) <= out->len + nodes[n].len);
	out->len = (size_t)(w - out->data);
	if (stack != local)
		free(stack);
	return 0;
}
