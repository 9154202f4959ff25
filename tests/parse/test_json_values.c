/* tests/parse/test_json_values.c: what the tape says about a document.
 *
 * Numbers, string unescaping, object lookup, tape shape, error offsets,
 * NDJSON, and compact-writer round trips over the real-world corpus
 * (argv[1] is the corpus directory: twitter.json, citm_catalog.json,
 * canada.json, amazon_cellphones.ndjson). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse/json.h"

static const char *corpus_dir;
static json_parser_t *parser;

static int setup(void **state)
{
	(void)state;
	parser = json_parser_new(0);
	return parser ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	json_parser_free(parser);
	return 0;
}

static json_doc_t parse_ok(const char *s)
{
	json_doc_t doc;
	json_error_t err;
	int r = json_parse(parser, s, strlen(s), &doc, &err);
	if (r != 0)
		fail_msg("'%s': %s at %zu", s, err.reason, err.offset);
	return doc;
}

/* ---- Numbers */

static int int64_of(const char *s, int64_t *v)
{
	json_doc_t d = parse_ok(s);
	assert_int_equal(json_type(&d, 0), JSON_NUMBER);
	return json_number_int64(&d, 0, v);
}

static void int64_edges(void **state)
{
	(void)state;
	int64_t v;
	assert_int_equal(int64_of("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(int64_of("-0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(int64_of(" 42 ", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(int64_of("9223372036854775807", &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(int64_of("-9223372036854775808", &v), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(int64_of("-9223372036854775807", &v), 0);
	assert_true(v == -INT64_MAX);
	assert_int_equal(int64_of("9223372036854775808", &v), -ERANGE);
	assert_int_equal(int64_of("-9223372036854775809", &v), -ERANGE);
	assert_int_equal(int64_of("18446744073709551616", &v), -ERANGE);
	assert_int_equal(int64_of("123456789012345678901234567890", &v), -ERANGE);
	assert_int_equal(int64_of("1.0", &v), -ERANGE);
	assert_int_equal(int64_of("1e2", &v), -ERANGE);
	assert_int_equal(int64_of("9999999999999999999", &v), -ERANGE); /* 19 digits, too big */
	assert_int_equal(int64_of("-9999999999999999999", &v), -ERANGE);
}

static int uint64_of(const char *s, uint64_t *v)
{
	json_doc_t d = parse_ok(s);
	assert_int_equal(json_type(&d, 0), JSON_NUMBER);
	return json_number_uint64(&d, 0, v);
}

static void uint64_edges(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(uint64_of("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(uint64_of("-0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(uint64_of("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(uint64_of("18446744073709551614", &v), 0);
	assert_true(v == UINT64_MAX - 1);
	assert_int_equal(uint64_of("9223372036854775808", &v), 0);
	assert_true(v == (uint64_t)INT64_MAX + 1);
	assert_int_equal(uint64_of("9999999999999999999", &v), 0);
	assert_true(v == 9999999999999999999ull);
	assert_int_equal(uint64_of("10000000000000000000", &v), 0);
	assert_true(v == 10000000000000000000ull);
	assert_int_equal(uint64_of("18446744073709551616", &v), -ERANGE);
	assert_int_equal(uint64_of("18446744073709551620", &v), -ERANGE);
	assert_int_equal(uint64_of("99999999999999999999", &v), -ERANGE);
	assert_int_equal(uint64_of("100000000000000000000", &v), -ERANGE);
	assert_int_equal(uint64_of("-1", &v), -ERANGE);
}

/* Every length from 1 to 20 digits of several patterns against strtoull. */
static void uint64_every_length(void **state)
{
	(void)state;
	static const char *const patterns[] = {"12345678901234567890", "99999999999999999999",
	                                       "18446744073709551615", "18446744073709551616",
	                                       "10000000000000000001", "5"};
	for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
		for (size_t len = 1; len <= strlen(patterns[i]); len++) {
			char text[32];
			snprintf(text, sizeof text, "%.*s", (int)len, patterns[i]);
			errno = 0;
			unsigned long long want = strtoull(text, NULL, 10);
			bool fits = errno != ERANGE;
			uint64_t v = 0;
			int r = uint64_of(text, &v);
			if (fits != (r == 0) || (fits && v != want))
				fail_msg("%s: got %d %llu", text, r, (unsigned long long)v);
		}
	}
}

/* Eight digits are converted at once: every length from 1 to 19 digits, and
 * digit patterns that carry between the bytes, against strtoll. */
static void int64_every_length(void **state)
{
	(void)state;
	static const char *const patterns[] = {"1234567890123456789", "9999999999999999999",
	                                       "1000000000000000001", "9080706050403020109",
	                                       "5"};
	for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
		for (size_t len = 1; len <= strlen(patterns[i]); len++) {
			for (int neg = 0; neg < 2; neg++) {
				char text[32];
				snprintf(text, sizeof text, "%s%.*s", neg ? "-" : "", (int)len, patterns[i]);
				errno = 0;
				long long want = strtoll(text, NULL, 10);
				bool fits = errno != ERANGE;
				int64_t v = 0;
				int r = int64_of(text, &v);
				if (fits != (r == 0) || (fits && v != want))
					fail_msg("%s: got %d %lld", text, r, (long long)v);
			}
		}
	}
}

static void number_flags_and_doubles(void **state)
{
	(void)state;
	json_doc_t d = parse_ok("[1, -2, 1.5, -2.5e3, 1E+2, 1e400, -1e400, 1e-400, 0.1]");
	const uint8_t want_flags[] = {
		JSON_F_INTEGER, JSON_F_INTEGER | JSON_F_NEGATIVE, 0, JSON_F_NEGATIVE, 0, 0,
		JSON_F_NEGATIVE, 0, 0,
	};
	for (uint32_t i = 0; i < 9; i++)
		assert_int_equal(d.nodes[1 + i].flags, want_flags[i]);
	double x;
	assert_int_equal(json_number_double(&d, 1, &x), 0);
	assert_true(x == 1.0);
	assert_int_equal(json_number_double(&d, 3, &x), 0);
	assert_true(x == 1.5);
	assert_int_equal(json_number_double(&d, 4, &x), 0);
	assert_true(x == -2500.0);
	assert_int_equal(json_number_double(&d, 5, &x), 0);
	assert_true(x == 100.0);
	assert_int_equal(json_number_double(&d, 6, &x), -ERANGE);
	assert_true(isinf(x) && x > 0);
	assert_int_equal(json_number_double(&d, 7, &x), -ERANGE);
	assert_true(isinf(x) && x < 0);
	assert_int_equal(json_number_double(&d, 8, &x), 0);
	assert_true(x == 0.0);
	assert_int_equal(json_number_double(&d, 9, &x), 0);
	assert_true(x == 0.1);
}

/* Longer than the on-stack copy: converted from the heap, still exact. */
static void long_number_double(void **state)
{
	(void)state;
	char s[400] = "0.";
	memset(s + 2, '0', 300);
	strcpy(s + 302, "15e301");
	json_doc_t d = parse_ok(s);
	double x;
	assert_int_equal(json_number_double(&d, 0, &x), 0);
	assert_true(x == 1.5);
}

/* Every double json_number_double gives is strtod's, bit for bit: 2,000,000
 * numbers from a fixed seed (random digits, fraction and exponent; decimals
 * just inside and outside the exact-conversion fast path, 2^53 and 10^22 on
 * either side; edge cases), parsed as JSON arrays of 100,000. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t put_digits(char *out, unsigned n, bool lead_nonzero)
{
	for (unsigned i = 0; i < n; i++)
		out[i] = (char)('0' + (i == 0 && lead_nonzero ? 1 + rng() % 9 : rng() % 10));
	return n;
}

/* One random JSON number into out (at most 80 bytes), NUL-terminated. */
static size_t random_number(char *out)
{
	static const char *const edges[] = {
		"0", "-0", "0.0", "-0.0", "0e999999999", "1e22", "1e23", "-1e22", "9e22",
		"9007199254740992", "9007199254740993", "9007199254740991", "9007199254740992e22",
		"9007199254740993e-22", "4.9e-324", "2.4703282292062327e-324", "5e-324",
		"2.2250738585072011e-308", "2.2250738585072014e-308", "1.7976931348623157e308",
		"1.7976931348623159e308", "1e309", "-1e-400", "0.1", "0.3", "1.5e-22", "3e-23",
		"123456789012345678901234567890", "0.000000000000000000000000000001e30",
		"1e-22", "1E+22", "4503599627370496.5", "4503599627370497.5",
	};
	size_t n = 0;
	switch (rng() % 4) {
	case 0: /* edge cases */
		return (size_t)sprintf(out, "%s", edges[rng() % (sizeof(edges) / sizeof(*edges))]);
	case 1: { /* 2^53 give or take 3, the point anywhere, q around +-22 */
		if (rng() % 2)
			out[n++] = '-';
		char w[24];
		int len = sprintf(w, "%llu", (unsigned long long)((1ull << 53) - 3 + rng() % 7));
		int point = (int)(rng() % (unsigned)(len + 1));
		for (int i = 0; i < len; i++) {
			if (i == point && i > 0)
				out[n++] = '.';
			out[n++] = w[i];
		}
		int frac = point > 0 && point < len ? len - point : 0;
		n += (size_t)sprintf(out + n, "e%d", frac + (int)(rng() % 49) - 24);
		return n;
	}
	default: { /* random digits, fraction and exponent */
		if (rng() % 2)
			out[n++] = '-';
		unsigned int_digits = (unsigned)(rng() % 21);
		if (int_digits == 0)
			out[n++] = '0';
		else
			n += put_digits(out + n, int_digits, true);
		unsigned frac_digits = (unsigned)(rng() % 21);
		if (frac_digits) {
			out[n++] = '.';
			n += put_digits(out + n, frac_digits, false);
		}
		if (rng() % 3 != 0) {
			int e = (int)(rng() % 701) - 350;
			n += (size_t)sprintf(out + n, "%s%d", e < 0 ? "e" : rng() % 2 ? "E+" : "e", e);
		}
		out[n] = '\0';
		return n;
	}
	}
}

static void doubles_match_strtod(void **state)
{
	(void)state;
	enum { BATCHES = 20, PER_BATCH = 100000, NUMBER_BYTES_MAX = 80 };
	char *text = malloc((size_t)PER_BATCH * (NUMBER_BYTES_MAX + 1) + 2);
	assert_non_null(text);
	for (int b = 0; b < BATCHES; b++) {
		size_t len = 0;
		text[len++] = '[';
		for (int i = 0; i < PER_BATCH; i++) {
			if (i)
				text[len++] = ',';
			len += random_number(text + len);
			assert_true(len < (size_t)PER_BATCH * (NUMBER_BYTES_MAX + 1));
		}
		text[len++] = ']';
		json_doc_t d;
		json_error_t err;
		if (json_parse(parser, text, len, &d, &err) != 0)
			fail_msg("batch %d: %s at %zu", b, err.reason, err.offset);
		assert_int_equal(d.n_nodes, PER_BATCH + 1);
		for (uint32_t i = 1; i <= PER_BATCH; i++) {
			const json_node_t *node = &d.nodes[i];
			char one[NUMBER_BYTES_MAX + 1];
			memcpy(one, d.src + node->start, node->len);
			one[node->len] = '\0';
			double want = strtod(one, NULL), got;
			int r = json_number_double(&d, i, &got);
			if (r != (isinf(want) ? -ERANGE : 0) || memcmp(&got, &want, sizeof got) != 0)
				fail_msg("%s: got %.17g (%d), strtod %.17g", one, got, r, want);
		}
	}
	free(text);
}

/* A fraction's leading zeros and a huge exponent: 10^900000, which
 * overflows (a capped exponent must not bring it back into range). */
static void huge_exponent_after_zeros(void **state)
{
	(void)state;
	enum { ZEROS = 99999 };
	char *s = malloc(ZEROS + 32);
	assert_non_null(s);
	for (int neg = 0; neg < 2; neg++) {
		size_t n = (size_t)sprintf(s, "%s0.", neg ? "-" : "");
		memset(s + n, '0', ZEROS);
		strcpy(s + n + ZEROS, "1e1000000");
		json_doc_t d = parse_ok(s);
		double x, want = strtod(s, NULL);
		assert_true(isinf(want));
		assert_int_equal(json_number_double(&d, 0, &x), -ERANGE);
		assert_memory_equal(&x, &want, sizeof x);
		/* and the other way: 10^-900000 underflows to (signed) zero */
		strcpy(s + n + ZEROS, "1e-800000");
		d = parse_ok(s);
		want = strtod(s, NULL);
		assert_int_equal(json_number_double(&d, 0, &x), 0);
		assert_memory_equal(&x, &want, sizeof x);
	}
	free(s);
}

/* ---- Strings */

static void string_unescaping(void **state)
{
	(void)state;
	json_doc_t d = parse_ok("[\"plain\", \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\","
	                        " \"\\u00e9\\u20AC\\ud83d\\ude00\", \"h\xc3\xa9llo \xf0\x9f\x98\x80\","
	                        " \"\\u0000x\", \"\"]");
	char buf[64];
	size_t n = json_string_get(&d, 1, buf, sizeof buf);
	assert_int_equal(d.nodes[1].flags, 0);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "plain", 5);

	n = json_string_get(&d, 2, buf, sizeof buf);
	assert_int_equal(d.nodes[2].flags, JSON_F_ESCAPED);
	assert_int_equal(n, 12);
	assert_memory_equal(buf, "a\"b\\c/d\b\f\n\r\t", 12);

	n = json_string_get(&d, 3, buf, sizeof buf);
	assert_int_equal(n, 2 + 3 + 4);
	assert_memory_equal(buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", n);

	n = json_string_get(&d, 4, buf, sizeof buf);
	assert_int_equal(n, 11);
	assert_memory_equal(buf, "h\xc3\xa9llo \xf0\x9f\x98\x80", n);

	n = json_string_get(&d, 5, buf, sizeof buf);
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "\0x", 2);

	assert_int_equal(json_string_get(&d, 6, buf, sizeof buf), 0);
}

/* A short buffer gets a prefix, nothing past cap, and the full length back. */
static void string_get_truncates(void **state)
{
	(void)state;
	json_doc_t d = parse_ok("[\"abcdef\", \"\\u20ac\\u20ac\"]");
	char buf[8];
	memset(buf, '#', sizeof buf);
	assert_int_equal(json_string_get(&d, 1, buf, 3), 6);
	assert_memory_equal(buf, "abc#", 4);
	memset(buf, '#', sizeof buf);
	assert_int_equal(json_string_get(&d, 2, buf, 4), 6);
	assert_memory_equal(buf, "\xe2\x82\xac\xe2#", 5);
	assert_int_equal(json_string_get(&d, 2, NULL, 0), 6);
}

/* ---- Objects and the tape */

static void object_lookup(void **state)
{
	(void)state;
	json_doc_t d = parse_ok("{\"a\":1, \"b\":{\"c\":[1,2]}, \"d\\u00e9\":3, \"a\\\"\":5,"
	                        " \"a\":4, \"\":6}");
	int64_t v;
	uint32_t n = json_object_get(&d, 0, "a", 1);
	assert_int_not_equal(n, JSON_NONE);
	assert_int_equal(json_number_int64(&d, n, &v), 0);
	assert_int_equal(v, 4); /* duplicate keys: the last one wins */
	n = json_object_get(&d, 0, "b", 1);
	assert_int_equal(json_type(&d, n), JSON_OBJECT);
	assert_int_equal(json_type(&d, json_object_get(&d, n, "c", 1)), JSON_ARRAY);
	n = json_object_get(&d, 0, "d\xc3\xa9", 3);
	assert_int_equal(json_number_int64(&d, n, &v), 0);
	assert_int_equal(v, 3);
	n = json_object_get(&d, 0, "a\"", 2);
	assert_int_equal(json_number_int64(&d, n, &v), 0);
	assert_int_equal(v, 5);
	n = json_object_get(&d, 0, "", 0);
	assert_int_equal(json_number_int64(&d, n, &v), 0);
	assert_int_equal(v, 6);
	assert_int_equal(json_object_get(&d, 0, "x", 1), JSON_NONE);
	assert_int_equal(json_object_get(&d, 0, "d", 1), JSON_NONE);
	assert_int_equal(json_object_get(&d, 0, "d\xc3\xa9x", 4), JSON_NONE);
	assert_int_equal(json_object_get(&d, 0, "ab", 2), JSON_NONE);
}

/* json_object_get_all gives, for every name, what json_object_get gives:
 * duplicate members (the last wins), keys written with escapes, names of
 * every length class (0-3, 4-7, 8-16, longer), a name asked twice, names
 * no member has, and several objects read with the same set. */
static void object_lookup_all(void **state)
{
	(void)state;
	const char *names[] = {"a", "", "ab", "abc", "abcd", "abcdefg", "abcdefgh",
	                       "abcdefghijklmnop", "abcdefghijklmnopq",
	                       "abcdefghijklmnopqrstuvwxyz_0123456789", "d\xc3\xa9", "a\"",
	                       "b", "a", "abce", "abcdefghijklmnoq", "x", "id", "di"};
	enum { N = sizeof(names) / sizeof(names[0]) };
	size_t lens[N];
	for (uint32_t i = 0; i < N; i++)
		lens[i] = strlen(names[i]);
	json_names_t *ns = json_names_new(names, lens, N);
	assert_non_null(ns);
	const char *docs[] = {
		"{\"a\":1, \"b\":{\"c\":[1,2]}, \"d\\u00e9\":3, \"a\\\"\":5, \"a\":4, \"\":6}",
		"{\"abc\":1, \"abcd\":2, \"abcdefg\":3, \"abcdefgh\":4, \"abcdefghijklmnop\":5,"
		" \"abcdefghijklmnopq\":6, \"abcdefghijklmnopqrstuvwxyz_0123456789\":7,"
		" \"abce\":8, \"abcdefghijklmnoq\":9, \"ab\":10, \"abcd\":11}",
		"{\"\\u0061\":1, \"i\\u0064\":2, \"\\u0064i\":3, \"id\":4, \"abcdefghijklmnop\\u0071\":5}",
		"{}",
		"{\"y\":[], \"z\":{\"a\":1}}",
	};
	uint32_t out[N];
	for (size_t k = 0; k < sizeof(docs) / sizeof(docs[0]); k++) {
		json_doc_t d = parse_ok(docs[k]);
		json_object_get_all(&d, 0, ns, out);
		for (uint32_t i = 0; i < N; i++)
			assert_int_equal(out[i], json_object_get(&d, 0, names[i], lens[i]));
	}
	json_doc_t d = parse_ok(docs[2]);
	json_object_get_all(&d, 0, ns, out);
	assert_int_not_equal(out[17], JSON_NONE); /* "id": the last of i\u0064 and id */
	assert_int_equal(out[17], json_object_get(&d, 0, "id", 2));
	json_names_free(ns);
}

static void tape_shape(void **state)
{
	(void)state;
	const char *s = "[1, [2, 3], {\"a\": [4], \"b\": {}}, \"s\", true, false, null]";
	json_doc_t d = parse_ok(s);
	/* 0:[ 1:1 2:[ 3:2 4:3 5:{ 6:"a" 7:[ 8:4 9:"b" 10:{ 11:"s" 12:t 13:f 14:n */
	const uint8_t types[] = {
		JSON_ARRAY, JSON_NUMBER, JSON_ARRAY, JSON_NUMBER, JSON_NUMBER, JSON_OBJECT,
		JSON_STRING, JSON_ARRAY, JSON_NUMBER, JSON_STRING, JSON_OBJECT, JSON_STRING,
		JSON_TRUE, JSON_FALSE, JSON_NULL,
	};
	const uint32_t next[] = {15, 2, 5, 4, 5, 11, 7, 9, 9, 10, 11, 12, 13, 14, 15};
	assert_int_equal(d.n_nodes, 15);
	for (uint32_t i = 0; i < 15; i++) {
		assert_int_equal(d.nodes[i].type, types[i]);
		assert_int_equal(d.nodes[i].next, next[i]);
	}
	assert_int_equal(d.nodes[0].count, 7);
	assert_int_equal(d.nodes[2].count, 2);
	assert_int_equal(d.nodes[5].count, 2); /* pairs */
	assert_int_equal(d.nodes[7].count, 1);
	assert_int_equal(d.nodes[10].count, 0);
	assert_int_equal(d.nodes[0].start, 0);
	assert_int_equal(d.nodes[0].len, strlen(s));
	assert_int_equal(d.nodes[2].start, 4);
	assert_int_equal(d.nodes[2].len, 6); /* "[2, 3]" */
	assert_int_equal(d.nodes[6].start, 13);
	assert_int_equal(d.nodes[6].len, 3); /* "\"a\"" with quotes */
	assert_int_equal(d.nodes[12].len, 4);
	assert_int_equal(d.nodes[13].len, 5);
}

/* ---- Errors */

typedef struct {
	const char *text;
	size_t len; /* 0: strlen(text) */
	size_t offset, line;
	const char *reason;
} bad_case_t;

static const bad_case_t bad_cases[] = {
	{"", 0, 0, 1, "empty document"},
	{"  \n ", 0, 4, 2, "empty document"},
	{"[1,2,]", 0, 4, 1, "trailing comma"},
	{"{\"a\":1,\n}", 0, 6, 1, "trailing comma"},
	{"[01]", 0, 2, 1, "invalid number"},
	{"[1.]", 0, 3, 1, "invalid number"},
	{"[-]", 0, 2, 1, "invalid number"},
	{"[1.5e]", 0, 5, 1, "invalid number"},
	{"[1x]", 0, 2, 1, "invalid number"},
	{"\n\"abc", 0, 1, 2, "unterminated string"},
	{"[\"a\x01\"]", 0, 3, 1, "control character in string"},
	{"[\"a\tb\"]", 0, 3, 1, "control character in string"},
	{"[\"\xc0\xaf\"]", 0, 2, 1, "invalid UTF-8"},
	{"[\"\xed\xa0\x80\"]", 0, 2, 1, "invalid UTF-8"},
	{"[\"\xf4\x90\x80\x80\"]", 0, 2, 1, "invalid UTF-8"},
	{"[\"ab\xe2\x82\"]", 0, 4, 1, "invalid UTF-8"},
	{"[\"\\x\"]", 0, 2, 1, "invalid escape"},
	{"[\"\\u12G4\"]", 0, 2, 1, "invalid escape"},
	{"[\"\\ud800\"]", 0, 2, 1, "lone surrogate"},
	{"[\"\\udc00\\ud800\"]", 0, 2, 1, "lone surrogate"},
	{"[1]\n x", 0, 5, 2, "trailing data after document"},
	{"[1] // c", 0, 4, 1, "trailing data after document"},
	{"{\"a\" 1}", 0, 5, 1, "unexpected character"},
	{"{1:2}", 0, 1, 1, "unexpected character"},
	{"[1,\n2,\n tru]", 0, 11, 3, "unexpected character"},
	{"NaN", 0, 0, 1, "unexpected character"},
	{"[Infinity]", 0, 1, 1, "unexpected character"},
	{"\f[]", 0, 0, 1, "unexpected character"},
	{"\xef\xbb\xbf{}", 0, 0, 1, "unexpected character"}, /* a BOM is not JSON */
	{"[1,2", 0, 4, 1, "unexpected end of input"},
	{"{\"a\":", 0, 5, 1, "unexpected end of input"},
	/* The earliest error wins even when stage 1 finds a later one first. */
	{"[1 2, \"\x01\"]", 0, 3, 1, "unexpected character"},
	{"[\"a\", \"b\x01\", 1 2]", 0, 8, 1, "control character in string"},
	{"[1]\0", 4, 3, 1, "trailing data after document"},
};

static void error_offsets_lines_reasons(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const bad_case_t *c = &bad_cases[i];
		json_doc_t doc;
		json_error_t err = {0};
		size_t len = c->len ? c->len : strlen(c->text);
		if (json_parse(parser, c->text, len, &doc, &err) == 0)
			fail_msg("case %zu accepted", i);
		if (err.offset != c->offset || err.line != c->line || strcmp(err.reason, c->reason))
			fail_msg("case %zu: got %zu line %zu '%s', want %zu line %zu '%s'", i, err.offset,
			         err.line, err.reason, c->offset, c->line, c->reason);
	}
}

static char *nested(unsigned depth)
{
	char *s = malloc(2 * depth + 1);
	assert_non_null(s);
	memset(s, '[', depth);
	memset(s + depth, ']', depth);
	s[2 * depth] = '\0';
	return s;
}

static void depth_limit(void **state)
{
	(void)state;
	json_doc_t doc;
	json_error_t err;
	char *ok = nested(JSON_DEPTH_MAX), *deep = nested(JSON_DEPTH_MAX + 1);
	assert_int_equal(json_parse(parser, ok, strlen(ok), &doc, &err), 0);
	assert_int_equal(doc.n_nodes, JSON_DEPTH_MAX);
	assert_int_equal(json_parse(parser, deep, strlen(deep), &doc, &err), -1);
	assert_string_equal(err.reason, "nesting too deep");
	assert_int_equal(err.offset, JSON_DEPTH_MAX);

	json_parser_t *shallow = json_parser_new(2);
	assert_non_null(shallow);
	assert_int_equal(json_parse(shallow, "[{}]", 4, &doc, &err), 0);
	assert_int_equal(json_parse(shallow, "[{\"a\":[]}]", 10, &doc, &err), -1);
	assert_int_equal(err.offset, 6);
	assert_string_equal(err.reason, "nesting too deep");
	json_parser_free(shallow);

	/* A parser allowed deeper nesting grows its stack on demand. */
	json_parser_t *roomy = json_parser_new(5000);
	char *deeper = nested(4000);
	assert_non_null(roomy);
	assert_int_equal(json_parse(roomy, deeper, strlen(deeper), &doc, &err), 0);
	json_buf_t out = {0};
	assert_int_equal(json_write(&doc, 0, &out), 0); /* past the writer's local stack */
	assert_int_equal(out.len, strlen(deeper));
	assert_memory_equal(out.data, deeper, out.len);
	json_buf_free(&out);
	json_parser_free(roomy);
	free(ok);
	free(deep);
	free(deeper);
}

/* ---- NDJSON */

typedef struct {
	unsigned docs;
	size_t offsets[8];
	char text[8][32];
	unsigned stop_after;
	int stop_code; /* what the callback returns then (0: 7) */
} nd_ctx_t;

static int nd_collect(void *vctx, const json_doc_t *d, size_t line_offset)
{
	nd_ctx_t *c = vctx;
	json_buf_t b = {0};
	assert_int_equal(json_write(d, 0, &b), 0);
	assert_true(c->docs < 8 && b.len < 32);
	memcpy(c->text[c->docs], b.data, b.len);
	c->text[c->docs][b.len] = '\0';
	c->offsets[c->docs++] = line_offset;
	json_buf_free(&b);
	if (!c->stop_after || c->docs != c->stop_after)
		return 0;
	return c->stop_code ? c->stop_code : 7;
}

static void ndjson_lines(void **state)
{
	(void)state;
	const char *s = "{\"a\": 1}\n\n  \r\n[2, 3]\r\n\t\"x\" \n4";
	nd_ctx_t c = {0};
	json_error_t err;
	assert_int_equal(json_ndjson_each(parser, s, strlen(s), nd_collect, &c, &err), 0);
	assert_int_equal(c.docs, 4);
	assert_string_equal(c.text[0], "{\"a\":1}");
	assert_string_equal(c.text[1], "[2,3]");
	assert_string_equal(c.text[2], "\"x\"");
	assert_string_equal(c.text[3], "4");
	assert_int_equal(c.offsets[0], 0);
	assert_int_equal(c.offsets[1], 14);
	assert_int_equal(c.offsets[2], 22);
	assert_int_equal(c.offsets[3], 28);

	nd_ctx_t empty = {0};
	assert_int_equal(json_ndjson_each(parser, "\n\r\n", 3, nd_collect, &empty, &err), 0);
	assert_int_equal(empty.docs, 0);
}

static void ndjson_error_is_absolute(void **state)
{
	(void)state;
	const char *s = "1\r\n[2]\n[3,]\n4\n";
	nd_ctx_t c = {0};
	json_error_t err;
	assert_int_equal(json_ndjson_each(parser, s, strlen(s), nd_collect, &c, &err), -1);
	assert_int_equal(c.docs, 2);
	assert_int_equal(err.offset, 9); /* line 3 starts at 7, its comma is at +2 */
	assert_int_equal(err.line, 3);
	assert_string_equal(err.reason, "trailing comma");

	nd_ctx_t stop = {.stop_after = 2};
	assert_int_equal(json_ndjson_each(parser, "1\n2\n3\n", 6, nd_collect, &stop, &err), 7);
	assert_int_equal(stop.docs, 2);
	/* Whatever the callback returns stops the walk at once, 1 and -1 too
	 * (the batch's own "parse this line alone" is not a return value). */
	static const int codes[] = {1, -1, 2};
	for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
		nd_ctx_t once = {.stop_after = 1, .stop_code = codes[i]};
		assert_int_equal(json_ndjson_each(parser, "1\n2\n3\n", 6, nd_collect, &once, &err),
		                 codes[i]);
		assert_int_equal(once.docs, 1);
	}
}

/* ---- Compact writer */

static void write_compact(void **state)
{
	(void)state;
	json_doc_t d = parse_ok(" { \"a\" : [ 1 , 2.50 , \"x\\u0041 y\" , -0E+1 ] ,\n \"b\":{ } ,"
	                        " \"c\" :[ ] , \"d\": {\"e\" : null} } ");
	json_buf_t b = {0};
	assert_int_equal(json_write(&d, 0, &b), 0);
	const char *want = "{\"a\":[1,2.50,\"x\\u0041 y\",-0E+1],\"b\":{},\"c\":[],\"d\":{\"e\":null}}";
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	/* A sub-node, appended after what the buffer already holds. */
	assert_int_equal(json_write(&d, 1 + 1, &b), 0); /* the value of "a" */
	const char *sub = "[1,2.50,\"x\\u0041 y\",-0E+1]";
	assert_int_equal(b.len, strlen(want) + strlen(sub));
	assert_memory_equal(b.data + strlen(want), sub, strlen(sub));
	json_buf_free(&b);
	assert_null(b.data);
}

static char *read_file(const char *name, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", corpus_dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	char *data = malloc(*len ? *len : 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, *len, f), *len);
	fclose(f);
	return data;
}

/* parse -> write -> parse -> write: identical bytes, the same node count. */
static void round_trip(const char *src, size_t len)
{
	json_doc_t d;
	json_error_t err;
	if (json_parse(parser, src, len, &d, &err) != 0)
		fail_msg("%s at %zu (line %zu)", err.reason, err.offset, err.line);
	uint32_t nodes = d.n_nodes;
	json_buf_t a = {0}, b = {0};
	assert_int_equal(json_write(&d, 0, &a), 0);
	assert_true(a.len <= len);
	assert_int_equal(json_parse(parser, a.data, a.len, &d, &err), 0);
	assert_int_equal(d.n_nodes, nodes);
	assert_int_equal(json_write(&d, 0, &b), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	json_buf_free(&a);
	json_buf_free(&b);
}

static void corpus_round_trip(void **state)
{
	(void)state;
	const char *files[] = {"twitter.json", "citm_catalog.json", "canada.json"};
	for (size_t i = 0; i < 3; i++) {
		size_t len;
		char *data = read_file(files[i], &len);
		assert_true(len > 100000);
		round_trip(data, len);
		free(data);
	}
}

static int nd_round_trip(void *ctx, const json_doc_t *d, size_t line_offset)
{
	unsigned *lines = ctx;
	(*lines)++;
	/* d belongs to the shared parser, so round-trip a copy of the line. */
	json_buf_t copy = {0};
	assert_int_equal(json_buf_append(&copy, d->src, d->len), 0);
	(void)line_offset;
	round_trip(copy.data, copy.len);
	json_buf_free(&copy);
	return 0;
}

static void corpus_ndjson_round_trip(void **state)
{
	(void)state;
	size_t len;
	char *data = read_file("amazon_cellphones.ndjson", &len);
	json_parser_t *outer = json_parser_new(0);
	assert_non_null(outer);
	unsigned lines = 0;
	json_error_t err;
	assert_int_equal(json_ndjson_each(outer, data, len, nd_round_trip, &lines, &err), 0);
	assert_true(lines > 100);
	json_parser_free(outer);
	free(data);
}

static void buf_basics(void **state)
{
	(void)state;
	json_buf_t b = {0};
	assert_int_equal(json_buf_append(&b, "ab", 2), 0);
	assert_int_equal(json_buf_append(&b, "", 0), 0);
	assert_int_equal(json_buf_reserve(&b, 1000), 0);
	assert_true(b.cap >= b.len + 1000);
	assert_int_equal(json_buf_append(&b, "cd", 2), 0);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "abcd", 4);
	assert_int_equal(json_buf_reserve(&b, SIZE_MAX), -ENOMEM);
	json_buf_free(&b);
	assert_int_equal(b.len, 0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	corpus_dir = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(int64_edges), cmocka_unit_test(int64_every_length),
		cmocka_unit_test(uint64_edges), cmocka_unit_test(uint64_every_length),
		cmocka_unit_test(number_flags_and_doubles),
		cmocka_unit_test(long_number_double),
		cmocka_unit_test(doubles_match_strtod),
		cmocka_unit_test(huge_exponent_after_zeros),
		cmocka_unit_test(string_unescaping),
		cmocka_unit_test(string_get_truncates),
		cmocka_unit_test(object_lookup),
		cmocka_unit_test(object_lookup_all),
		cmocka_unit_test(tape_shape),
		cmocka_unit_test(error_offsets_lines_reasons),
		cmocka_unit_test(depth_limit),
		cmocka_unit_test(ndjson_lines),
		cmocka_unit_test(ndjson_error_is_absolute),
		cmocka_unit_test(write_compact),
		cmocka_unit_test(corpus_round_trip),
		cmocka_unit_test(corpus_ndjson_round_trip),
		cmocka_unit_test(buf_basics),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
