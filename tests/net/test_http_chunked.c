/* tests/net/test_http_chunked.c: proves net/http.c's in-place chunked
 * decoder yields the same body however the input is split across calls,
 * ignores extensions, skips trailers, reports the bytes after the body, and
 * refuses bad framing with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"

#define PIECES_MAX 8192u

typedef struct {
	ssize_t rc;         /* last decode result */
	size_t rest;        /* on success: input bytes after the body */
	const char *reason; /* on error */
	char *body;         /* malloc'd, decoded bytes */
	size_t body_len;
	uint64_t total;
} result_t;

/* Feeds enc[0..n) to a fresh decoder in pieces ending at cuts[] (ascending,
 * the last being n), each piece in its own exactly-sized heap buffer so ASan
 * catches any read past it. */
static result_t decode_pieces(const char *enc, size_t n, const size_t *cuts, size_t ncuts)
{
	result_t res = {.rc = HTTP_INCOMPLETE, .body = malloc(n + 1)};
	http_chunked_t c;
	size_t start = 0;
	assert_non_null(res.body);
	http_chunked_init(&c);
	for (size_t k = 0; k < ncuts; k++) {
		size_t piece = cuts[k] - start;
		char *buf = malloc(piece ? piece : 1);
		assert_non_null(buf);
		memcpy(buf, enc + start, piece);
		size_t len = piece;
		res.rc = http_chunked_decode(&c, buf, &len, &res.reason);
		assert_true(len <= piece);
		memcpy(res.body + res.body_len, buf, len);
		res.body_len += len;
		free(buf);
		if (res.rc >= 0)
			res.rest = (size_t)res.rc + (n - cuts[k]);
		if (res.rc != HTTP_INCOMPLETE)
			break;
		start = cuts[k];
	}
	res.total = c.total;
	return res;
}

static result_t decode_whole(const char *enc, size_t n)
{
	return decode_pieces(enc, n, &n, 1);
}

static void expect_body(result_t res, const char *body, size_t rest)
{
	assert_true(res.rc >= 0);
	assert_int_equal(res.rest, rest);
	assert_int_equal(res.body_len, strlen(body));
	assert_memory_equal(res.body, body, res.body_len);
	assert_int_equal(res.total, res.body_len);
	free(res.body);
}

static void expect_error(const char *enc, size_t n, const char *reason)
{
	result_t res = decode_whole(enc, n);
	if (res.rc != HTTP_ERROR || strcmp(res.reason, reason) != 0)
		fail_msg("'%.*s': rc %zd reason '%s', want '%s'", (int)n, enc, res.rc,
		         res.rc == HTTP_ERROR ? res.reason : "", reason);
	free(res.body);
}

/* For string literals: the length without the terminating NUL. */
#define EXPECT_ERROR(lit, reason) expect_error(lit, sizeof(lit) - 1, reason)

typedef struct {
	const char *enc;
	const char *body;
	size_t rest;
} known_t;

static const known_t known[] = {
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0},
    {"0\r\n\r\n", "", 0},
    {"000A\r\n0123456789\r\n0000\r\n\r\n", "0123456789", 0},
    {"5;name=val;flag\r\nhello\r\na ; q=\"x;y\"\r\n0123456789\r\n0;last\r\n"
     "Trailer-One: x\r\nT2: y\r\n\r\nHTTP/1.1 200 OK\r\n",
     "hello0123456789", 17},
    {"1\r\n\r\r\n2\r\n\r\n\r\n0\r\n\r\nX", "\r\r\n", 1},
    {"3 \t;e\r\nabc\r\n0 \r\n\r\n", "abc", 0},
};
#define KNOWN_COUNT (sizeof(known) / sizeof(known[0]))

static void test_known_bodies(void **state)
{
	(void)state;
	for (size_t k = 0; k < KNOWN_COUNT; k++)
		expect_body(decode_whole(known[k].enc, strlen(known[k].enc)), known[k].body,
		            known[k].rest);
}

/* Every split into two pieces, and every split into three. */
static void test_every_split(void **state)
{
	(void)state;
	for (size_t k = 0; k < KNOWN_COUNT; k++) {
		const char *enc = known[k].enc;
		size_t n = strlen(enc);
		for (size_t i = 0; i <= n; i++) {
			size_t cuts2[2] = {i, n};
			expect_body(decode_pieces(enc, n, cuts2, 2), known[k].body, known[k].rest);
			for (size_t j = i; j <= n; j++) {
				size_t cuts3[3] = {i, j, n};
				expect_body(decode_pieces(enc, n, cuts3, 3), known[k].body, known[k].rest);
			}
		}
	}
}

static void test_one_byte_pieces(void **state)
{
	(void)state;
	size_t cuts[PIECES_MAX];
	for (size_t k = 0; k < KNOWN_COUNT; k++) {
		const char *enc = known[k].enc;
		size_t n = strlen(enc);
		assert_true(n <= PIECES_MAX);
		for (size_t i = 0; i < n; i++)
			cuts[i] = i + 1;
		expect_body(decode_pieces(enc, n, cuts, n), known[k].body, known[k].rest);
	}
}

/* A body built from many chunks of varied sizes, split into random-length
 * pieces (fixed seed, so a failure reproduces). */
static void test_large_random_pieces(void **state)
{
	(void)state;
	size_t cap = 1 << 20, n = 0, body_len = 0;
	char *enc = malloc(cap), *body = malloc(cap);
	size_t *cuts = malloc(cap * sizeof(*cuts));
	assert_non_null(enc);
	assert_non_null(body);
	assert_non_null(cuts);
	srand(12345);
	for (size_t chunk = 1; chunk < 5000; chunk = chunk * 3 / 2 + 1) {
		n += (size_t)sprintf(enc + n, "%zx\r\n", chunk);
		for (size_t i = 0; i < chunk; i++) {
			char c = (char)('a' + (body_len + i) % 26);
			enc[n + i] = c;
			body[body_len + i] = c;
		}
		n += chunk;
		body_len += chunk;
		memcpy(enc + n, "\r\n", 2);
		n += 2;
	}
	n += (size_t)sprintf(enc + n, "0\r\n\r\ntail");
	body[body_len] = '\0';
	size_t ncuts = 0, at = 0;
	while (at < n) {
		at += 1 + (size_t)rand() % 700;
		cuts[ncuts++] = at < n ? at : n;
	}
	expect_body(decode_pieces(enc, n, cuts, ncuts), body, 4);
	free(enc);
	free(body);
	free(cuts);
}

static void test_bad_framing(void **state)
{
	(void)state;
	EXPECT_ERROR("g\r\n", "bad chunk size line");
	EXPECT_ERROR("\r\n", "bad chunk size line");
	EXPECT_ERROR("-1\r\n", "bad chunk size line");
	EXPECT_ERROR("5 5\r\nhello\r\n", "bad chunk size line");
	EXPECT_ERROR(";ext\r\n", "bad chunk size line");
	EXPECT_ERROR("5\nhello\r\n", "bad chunk size line");
	EXPECT_ERROR("5\r\r\nhello", "bad chunk size line");
	EXPECT_ERROR("5;a\nb\r\n", "bad chunk size line");
	EXPECT_ERROR("0x5\r\n", "bad chunk size line");
	EXPECT_ERROR("5\r\nhelloX\r\n0\r\n\r\n", "missing CRLF after chunk data");
	EXPECT_ERROR("5\r\nhello\rX", "missing CRLF after chunk data");
	EXPECT_ERROR("5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data");
	EXPECT_ERROR("0\r\nA: b\nC", "bad chunked trailer");
	EXPECT_ERROR("0\r\nA: b\rC", "bad chunked trailer");
	EXPECT_ERROR("0\r\n\rX", "bad chunked trailer");
	EXPECT_ERROR("0\r\n\n", "bad chunked trailer");
}

static void test_size_limits(void **state)
{
	(void)state;
	/* 2^62 is the largest accepted size; it then waits for data */
	result_t res = decode_whole("4000000000000000\r\n", 18);
	assert_int_equal(res.rc, HTTP_INCOMPLETE);
	free(res.body);
	EXPECT_ERROR("4000000000000001\r\n", "chunk size too large");
	EXPECT_ERROR("10000000000000000\r\n", "chunk size too large");
	EXPECT_ERROR("FFFFFFFFFFFFFFFFFFFF\r\n", "chunk size too large");
	/* leading zeros do not count towards the size */
	static const char zeros[] = "00000000000000000000001\r\nx\r\n0\r\n\r\n";
	res = decode_whole(zeros, sizeof(zeros) - 1);
	expect_body(res, "x", 0);

	/* a size line of exactly HTTP_CHUNK_LINE_BYTES_MAX bytes (CRLF included)
	 * passes; one byte more fails, even when fed a byte at a time */
	char line[HTTP_CHUNK_LINE_BYTES_MAX + 64];
	size_t n = HTTP_CHUNK_LINE_BYTES_MAX;
	memset(line, 'e', n);
	memcpy(line, "1;", 2);
	memcpy(line + n - 2, "\r\n", 2);
	memcpy(line + n, "x\r\n0\r\n\r\n", 8);
	expect_body(decode_whole(line, n + 8), "x", 0);
	memset(line, 'e', n + 1);
	memcpy(line, "1;", 2);
	memcpy(line + n - 1, "\r\n", 2);
	expect_error(line, n + 1, "chunk size line too long");
	size_t cuts[HTTP_CHUNK_LINE_BYTES_MAX + 1];
	for (size_t i = 0; i < n + 1; i++)
		cuts[i] = i + 1;
	res = decode_pieces(line, n + 1, cuts, n + 1);
	assert_int_equal(res.rc, HTTP_ERROR);
	assert_string_equal(res.reason, "chunk size line too long");
	free(res.body);
}

static void test_trailer_limit(void **state)
{
	(void)state;
	size_t n = 3 + HTTP_HEAD_BYTES_MAX + 16;
	char *enc = malloc(n);
	assert_non_null(enc);
	memcpy(enc, "0\r\n", 3);
	for (size_t i = 3; i < n; i += 8)
		memcpy(enc + i, "X: abc\r\n", n - i < 8 ? n - i : 8);
	expect_error(enc, n, "chunked trailers too large");
	free(enc);
}

static void test_after_end_and_error(void **state)
{
	(void)state;
	http_chunked_t c;
	const char *why = NULL;
	char buf[64];

	/* done: later input is all reported back, nothing decoded */
	http_chunked_init(&c);
	strcpy(buf, "2\r\nok\r\n0\r\n\r\n");
	size_t len = strlen(buf);
	assert_int_equal(http_chunked_decode(&c, buf, &len, &why), 0);
	assert_int_equal(len, 2);
	strcpy(buf, "more");
	len = 4;
	assert_int_equal(http_chunked_decode(&c, buf, &len, &why), 4);
	assert_int_equal(len, 0);

	/* failed: stays failed */
	http_chunked_init(&c);
	strcpy(buf, "zz\r\n");
	len = 4;
	assert_int_equal(http_chunked_decode(&c, buf, &len, &why), HTTP_ERROR);
	strcpy(buf, "0\r\n\r\n");
	len = 5;
	assert_int_equal(http_chunked_decode(&c, buf, &len, &why), HTTP_ERROR);
	assert_int_equal(len, 0);

	/* empty input keeps waiting; a zeroed struct works like init */
	memset(&c, 0, sizeof(c));
	len = 0;
	assert_int_equal(http_chunked_decode(&c, buf, &len, NULL), HTTP_INCOMPLETE);
	strcpy(buf, "1\r\nZ\r\n0\r\n\r\n");
	len = strlen(buf);
	assert_int_equal(http_chunked_decode(&c, buf, &len, NULL), 0);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], 'Z');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_bodies),    cmocka_unit_test(test_every_split),
	    cmocka_unit_test(test_one_byte_pieces), cmocka_unit_test(test_large_random_pieces),
	    cmocka_unit_test(test_bad_framing),     cmocka_unit_test(test_size_limits),
	    cmocka_unit_test(test_trailer_limit),   cmocka_unit_test(test_after_end_and_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
