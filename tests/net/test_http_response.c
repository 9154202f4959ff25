/* tests/net/test_http_response.c: proves net/http.c's response-head parser
 * gets framing right (Content-Length, chunked, close-delimited, HTTP/1.0),
 * enforces its limits, refuses malformed heads, and asks for more bytes at
 * every prefix of a valid head. Also covers http_build_get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"

static ssize_t parse(const char *s, http_response_t *r)
{
	return http_parse_response(s, strlen(s), r);
}

static void test_basic_200(void **state)
{
	(void)state;
	http_response_t r;
	const char *h = "HTTP/1.1 200 OK\r\n"
	                "Content-Type: Application/JSON; charset=utf-8\r\n"
	                "Content-Length: 42\r\n"
	                "X-Other:   spaced value \t\r\n"
	                "\r\n"
	                "{\"body\":1}";
	assert_int_equal(parse(h, &r), (ssize_t)(strstr(h, "\r\n\r\n") + 4 - h));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.minor_version, 1);
	assert_int_equal(r.content_length, 42);
	assert_false(r.chunked);
	assert_false(r.close);
	assert_false(r.gzip);
	assert_string_equal(r.content_type, "application/json");
	assert_string_equal(r.retry_after, "");
	assert_string_equal(r.location, "");
}

static void test_status_lines(void **state)
{
	(void)state;
	http_response_t r;
	assert_true(parse("HTTP/1.1 404 Not Found\r\n\r\n", &r) > 0);
	assert_int_equal(r.status, 404);
	assert_true(parse("HTTP/1.1 204\r\n\r\n", &r) > 0); /* no reason, no SP */
	assert_int_equal(r.status, 204);
	assert_true(parse("HTTP/1.1 503 \r\n\r\n", &r) > 0); /* empty reason */
	assert_int_equal(r.status, 503);
	assert_true(parse("HTTP/1.1 200 OK caf\xc3\xa9\tok\r\n\r\n", &r) > 0); /* obs-text */
	assert_true(parse("HTTP/1.0 599 x\r\n\r\n", &r) > 0);
	assert_int_equal(r.minor_version, 0);
	assert_true(parse("HTTP/1.1 100 Continue\r\n\r\n", &r) > 0);

	static const char *const bad[] = {
	    "HTTP/1.1 99 x\r\n\r\n",   "HTTP/1.1 600 x\r\n\r\n",  "HTTP/1.1 2000 x\r\n\r\n",
	    "HTTP/1.1  200 x\r\n\r\n", "HTTP/1.1 20a x\r\n\r\n",  "HTTP/2.0 200 x\r\n\r\n",
	    "http/1.1 200 x\r\n\r\n",  "HTTP/1.1\r\n\r\n",        "HTTP/1.1 200\tx\r\n\r\n",
	    "HTTP/1.1 200 a\x01z\r\n\r\n", "ICY 200 OK\r\n\r\n",  "HTTP/1.x 200 OK\r\n\r\n",
	    "HTTP/1.2 200 OK\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r.reason = NULL;
		if (parse(bad[i], &r) != HTTP_ERROR)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(r.reason);
	}
	parse("HTTP/1.2 200 OK\r\n\r\n", &r);
	assert_string_equal(r.reason, "unsupported HTTP version");
	parse("HTTP/1.1 600 x\r\n\r\n", &r);
	assert_string_equal(r.reason, "bad status code");
	/* not HTTP at all: known before the first line ends */
	assert_int_equal(http_parse_response("SSH-2.0", 7, &r), HTTP_ERROR);
	assert_int_equal(http_parse_response("HTTP/1.", 7, &r), HTTP_INCOMPLETE);
	assert_int_equal(http_parse_response("", 0, &r), HTTP_INCOMPLETE);
	assert_int_equal(http_parse_response(NULL, 0, &r), HTTP_INCOMPLETE);
}

static void test_content_length(void **state)
{
	(void)state;
	http_response_t r;
	assert_true(parse("HTTP/1.1 200 OK\r\ncontent-LENGTH: 0\r\n\r\n", &r) > 0);
	assert_int_equal(r.content_length, 0);
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	                  &r) > 0);
	assert_int_equal(r.content_length, 5);
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n", &r) > 0);
	assert_int_equal(r.content_length, 999999999999999999LL);

	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	                       &r),
	                 HTTP_ERROR);
	assert_string_equal(r.reason, "conflicting Content-Length");
	/* A list of one number, as a proxy joining two equal fields sends it
	 * (RFC 9110 §8.6; refused before 2026-12-08); two numbers conflict. */
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", &r) > 0);
	assert_int_equal(r.content_length, 5);
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 7,7 ,  7\r\n\r\n", &r) > 0);
	assert_int_equal(r.content_length, 7);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", &r), HTTP_ERROR);
	assert_string_equal(r.reason, "conflicting Content-Length");
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 6\r\n\r\n",
	                       &r),
	                 HTTP_ERROR);
	assert_string_equal(r.reason, "conflicting Content-Length");
	static const char *const bad[] = {"-1", "+5", "5,", ",5", "5,,5", "0x10", "1 2", "",
	                                  "1000000000000000000", "5a", "5, 5a", "5;x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char h[128];
		snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n", bad[i]);
		if (parse(h, &r) != HTTP_ERROR)
			fail_msg("accepted Content-Length '%s'", bad[i]);
		assert_string_equal(r.reason, "bad Content-Length");
	}
}

static void test_transfer_encoding(void **state)
{
	(void)state;
	http_response_t r;
	/* chunked wins over Content-Length, which is ignored */
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
	                  "Transfer-Encoding: Chunked\r\n\r\n",
	                  &r) > 0);
	assert_true(r.chunked);
	assert_int_equal(r.content_length, -1);
	assert_false(r.close);
	assert_true(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &r) > 0);
	assert_true(r.chunked);
	assert_true(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
	                  "Transfer-Encoding: chunked ;x=1\r\n\r\n",
	                  &r) > 0);
	assert_true(r.chunked);
	/* chunked not last: read until close */
	assert_true(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n"
	                  "Content-Length: 3\r\n\r\n",
	                  &r) > 0);
	assert_false(r.chunked);
	assert_true(r.close);
	assert_int_equal(r.content_length, -1);
	assert_true(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	                  "Transfer-Encoding: identity\r\n\r\n",
	                  &r) > 0);
	assert_false(r.chunked);
	assert_true(r.close);
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n", &r), HTTP_ERROR);
	assert_string_equal(r.reason, "bad Transfer-Encoding");
}

static void test_connection_semantics(void **state)
{
	(void)state;
	http_response_t r;
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: Close\r\n\r\n", &r) >
	            0);
	assert_true(r.close);
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
	                  "Connection: upgrade, close\r\n\r\n",
	                  &r) > 0);
	assert_true(r.close);
	/* no framing at all: body runs until close */
	assert_true(parse("HTTP/1.1 200 OK\r\n\r\n", &r) > 0);
	assert_true(r.close);
	/* ... unless the status has no body */
	assert_true(parse("HTTP/1.1 304 Not Modified\r\n\r\n", &r) > 0);
	assert_false(r.close);
	assert_true(http_no_body(&r));
	/* HTTP/1.0: close unless keep-alive */
	assert_true(parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", &r) > 0);
	assert_true(r.close);
	assert_true(parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n"
	                  "Connection: Keep-Alive\r\n\r\n",
	                  &r) > 0);
	assert_false(r.close);
	assert_true(parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", &r) > 0);
	assert_true(r.close); /* keep-alive but no length: still close-delimited */
}

static void test_no_body(void **state)
{
	(void)state;
	http_response_t r;
	const int none[] = {100, 101, 103, 199, 204, 304};
	const int some[] = {200, 201, 206, 301, 404, 500, 503};
	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		r.status = none[i];
		assert_true(http_no_body(&r));
	}
	for (size_t i = 0; i < sizeof(some) / sizeof(some[0]); i++) {
		r.status = some[i];
		assert_false(http_no_body(&r));
	}
}

static void test_fields(void **state)
{
	(void)state;
	http_response_t r;
	assert_true(parse("HTTP/1.1 503 Busy\r\nRetry-After:  120 \r\nContent-Length: 0\r\n"
	                  "Content-Encoding: gzip\r\nLocation: /elsewhere?x=1\r\n"
	                  "Content-Type: text/plain\r\n\r\n",
	                  &r) > 0);
	assert_string_equal(r.retry_after, "120");
	assert_string_equal(r.location, "/elsewhere?x=1");
	assert_string_equal(r.content_type, "text/plain");
	assert_true(r.gzip);
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
	                  "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
	                  "Content-Encoding: identity, X-GZIP\r\n\r\n",
	                  &r) > 0);
	assert_string_equal(r.retry_after, "Wed, 21 Oct 2015 07:28:00 GMT");
	assert_true(r.gzip);
	assert_string_equal(r.content_encoding, "x-gzip"); /* identity left out, lower-cased */
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: br\r\n\r\n",
	                  &r) > 0);
	assert_false(r.gzip);
	assert_string_equal(r.content_encoding, "br");
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
	                  "Content-Encoding: gzip, br\r\n\r\n",
	                  &r) > 0);
	assert_false(r.gzip);
	assert_string_equal(r.content_encoding, "gzip, br");
	/* codings: every header's, in order; identity alone or none is "" */
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: Deflate\r\n"
	                  "Content-Encoding: identity\r\nContent-Encoding: GZIP\r\n\r\n",
	                  &r) > 0);
	assert_string_equal(r.content_encoding, "deflate, gzip");
	assert_false(r.gzip); /* gzip over deflate: not one coding we undo */
	/* a later header's identity does not undo an earlier header's gzip */
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: gzip\r\n"
	                  "Content-Encoding: identity\r\n\r\n",
	                  &r) > 0);
	assert_true(r.gzip);
	assert_string_equal(r.content_encoding, "gzip");
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: gzip\r\n"
	                  "Content-Encoding: gzip\r\n\r\n",
	                  &r) > 0);
	assert_false(r.gzip);
	assert_string_equal(r.content_encoding, "gzip, gzip");
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: identity\r\n\r\n",
	                  &r) > 0);
	assert_string_equal(r.content_encoding, "");
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &r) > 0);
	assert_string_equal(r.content_encoding, "");
	/* a list longer than HTTP_CODINGS_BYTES_MAX - 1 bytes: "unknown", never "" */
	assert_true(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: gzip, "
	                  "aaaaaaaaaaaaaaaaaaaaaaaa, br\r\n\r\n",
	                  &r) > 0);
	assert_string_equal(r.content_encoding, "unknown");
	/* empty value is fine */
	assert_true(parse("HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n", &r) > 0);

	/* Location: 2047 bytes fit, 2048 do not */
	size_t cap = sizeof(r.location);
	char *h = malloc(cap + 128);
	assert_non_null(h);
	int n = snprintf(h, cap + 128, "HTTP/1.1 301 Moved\r\nLocation: %0*d\r\n\r\n",
	                 (int)cap - 1, 0);
	assert_int_equal(http_parse_response(h, (size_t)n, &r), n);
	assert_int_equal(strlen(r.location), cap - 1);
	n = snprintf(h, cap + 128, "HTTP/1.1 301 Moved\r\nLocation: %0*d\r\n\r\n", (int)cap, 0);
	assert_int_equal(http_parse_response(h, (size_t)n, &r), HTTP_ERROR);
	assert_string_equal(r.reason, "Location too long");
	/* an over-long Content-Type is treated as absent */
	n = snprintf(h, cap + 128, "HTTP/1.1 200 OK\r\nContent-Type: a/%0*d\r\n\r\n", 200, 0);
	assert_int_equal(http_parse_response(h, (size_t)n, &r), n);
	assert_string_equal(r.content_type, "");
	free(h);
}

static void test_malformed(void **state)
{
	(void)state;
	typedef struct {
		const char *head;
		size_t len; /* 0: strlen */
		const char *reason;
	} bad_t;
	static const bad_t cases[] = {
	    {"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", 0, "obsolete line folding in response head"},
	    {"HTTP/1.1 200 OK\r\n\tA: b\r\n\r\n", 0, "obsolete line folding in response head"},
	    {"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", 0, "bare CR in response head"},
	    {"HTTP/1.1 200 OK\rX\r\n\r\n", 0, "bare CR in response head"},
	    {"HTTP/1.1 200 OK\r\nA: b\n\r\n", 0, "bare LF in response head"},
	    {"HTTP/1.1 200 OK\n\n", 0, "bare LF in response head"},
	    {"HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n", 27, "NUL byte in response head"},
	    {"HTTP/1.1 200 OK\r\nA b: c\r\n\r\n", 0, "bad header name"},
	    {"HTTP/1.1 200 OK\r\nA : c\r\n\r\n", 0, "bad header name"},
	    {"HTTP/1.1 200 OK\r\n: c\r\n\r\n", 0, "bad header name"},
	    {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", 0, "bad header name"},
	    {"HTTP/1.1 200 OK\r\nA(b): c\r\n\r\n", 0, "bad header name"},
	    {"HTTP/1.1 200 OK\r\nA: b\x01\r\n\r\n", 0, "bad header value"},
	    {"HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n", 0, "bad header value"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		http_response_t r;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].head);
		ssize_t rc = http_parse_response(cases[i].head, len, &r);
		if (rc != HTTP_ERROR || strcmp(r.reason, cases[i].reason) != 0)
			fail_msg("case %zu: rc %zd reason '%s', want '%s'", i, rc,
			         rc == HTTP_ERROR ? r.reason : "", cases[i].reason);
	}
}

static void test_limits(void **state)
{
	(void)state;
	http_response_t r;
	char *h = malloc(HTTP_HEAD_BYTES_MAX * 2);
	assert_non_null(h);

	/* exactly HTTP_HEAD_BYTES_MAX bytes of head: accepted */
	size_t n = (size_t)sprintf(h, "HTTP/1.1 200 OK\r\nX: ");
	size_t fill = HTTP_HEAD_BYTES_MAX - n - 4;
	memset(h + n, 'v', fill);
	memcpy(h + n + fill, "\r\n\r\n", 4);
	assert_int_equal(http_parse_response(h, HTTP_HEAD_BYTES_MAX, &r), HTTP_HEAD_BYTES_MAX);
	/* one byte more: incomplete below the limit, an error once the buffer
	 * reaches it (the parser must not ask for more forever) */
	memset(h + n, 'v', fill + 1);
	memcpy(h + n + fill + 1, "\r\n\r\n", 4);
	assert_int_equal(http_parse_response(h, HTTP_HEAD_BYTES_MAX - 1, &r), HTTP_INCOMPLETE);
	assert_int_equal(http_parse_response(h, HTTP_HEAD_BYTES_MAX, &r), HTTP_ERROR);
	assert_string_equal(r.reason, "header too large");
	assert_int_equal(http_parse_response(h, HTTP_HEAD_BYTES_MAX + 5, &r), HTTP_ERROR);
	assert_string_equal(r.reason, "header too large");

	/* HTTP_HEADERS_MAX fields accepted, one more rejected */
	for (unsigned extra = 0; extra <= 1; extra++) {
		n = (size_t)sprintf(h, "HTTP/1.1 200 OK\r\n");
		for (unsigned i = 0; i < HTTP_HEADERS_MAX + extra; i++)
			n += (size_t)sprintf(h + n, "X-%u: v\r\n", i);
		n += (size_t)sprintf(h + n, "\r\n");
		ssize_t rc = http_parse_response(h, n, &r);
		if (extra == 0) {
			assert_int_equal(rc, (ssize_t)n);
		} else {
			assert_int_equal(rc, HTTP_ERROR);
			assert_string_equal(r.reason, "too many headers");
		}
	}
	free(h);
}

/* Every prefix of a valid head needs more bytes; the whole head completes,
 * and trailing body bytes do not change the answer. */
static void test_every_prefix(void **state)
{
	(void)state;
	static const char *const heads[] = {
	    ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
	     "Connection: keep-alive\r\nX-Weird: a:b:c \t\r\n\r\n"),
	    "HTTP/1.0 204\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
		const char *h = heads[k];
		size_t n = strlen(h);
		http_response_t r;
		for (size_t i = 0; i < n; i++) {
			char *copy = malloc(i + 1); /* exact size, so ASan sees over-reads */
			assert_non_null(copy);
			memcpy(copy, h, i);
			ssize_t rc = http_parse_response(copy, i, &r);
			free(copy);
			if (rc != HTTP_INCOMPLETE)
				fail_msg("head %zu prefix %zu: rc %zd", k, i, rc);
		}
		assert_int_equal(http_parse_response(h, n, &r), (ssize_t)n);
		char buf[512];
		snprintf(buf, sizeof(buf), "%sBODYBYTES\r\n\r\n", h);
		assert_int_equal(http_parse_response(buf, strlen(buf), &r), (ssize_t)n);
	}
}

static void test_build_get(void **state)
{
	(void)state;
	char out[512];
	const char *t = "/a/b?x=1";
	ssize_t n = http_build_get(out, sizeof(out), "example.com", 0, 443, t, strlen(t), NULL);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	assert_true(strncmp(out, "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n", 42) == 0);
	assert_non_null(strstr(out, "\r\nUser-Agent: ringfill/"));
	assert_non_null(strstr(out, "\r\nAccept-Encoding: gzip\r\n"));
	assert_non_null(strstr(out, "\r\nAccept: "));
	assert_true(strcmp(out + n - 4, "\r\n\r\n") == 0);
	assert_ptr_equal(strstr(out, "\r\n\r\n"), out + n - 4); /* one blank line, at the end */

	n = http_build_get(out, sizeof(out), "::1", 1, 8443, "?q", 2, "X-A: 1\r\nX-B: 2\r\n");
	assert_true(n > 0);
	assert_true(strncmp(out, "GET /?q HTTP/1.1\r\nHost: [::1]:8443\r\n", 36) == 0);
	assert_non_null(strstr(out, "\r\nX-A: 1\r\nX-B: 2\r\n\r\n"));
	n = http_build_get(out, sizeof(out), "h", 0, 80, "", 0, NULL);
	assert_true(strncmp(out, "GET / HTTP/1.1\r\nHost: h:80\r\n", 28) == 0);

	/* too small at every size below the needed one */
	ssize_t need = http_build_get(out, sizeof(out), "example.com", 0, 443, t, strlen(t), NULL);
	for (size_t cap = 0; cap <= (size_t)need; cap++)
		assert_int_equal(http_build_get(out, cap, "example.com", 0, 443, t, strlen(t), NULL),
		                 -ENOSPC);
	assert_int_equal(http_build_get(out, (size_t)need + 1, "example.com", 0, 443, t,
	                                strlen(t), NULL),
	                 need);
	/* request splitting through the target or host is refused */
	assert_int_equal(http_build_get(out, sizeof(out), "h", 0, 443, "/a\r\nX: y", 9, NULL),
	                 -EINVAL);
	assert_int_equal(http_build_get(out, sizeof(out), "h\r\nX: y", 0, 443, "/", 1, NULL),
	                 -EINVAL);
	assert_int_equal(http_build_get(out, sizeof(out), "", 0, 443, "/", 1, NULL), -EINVAL);
}

/* What a resumed NDJSON body needs: validators, Accept-Ranges, Content-Range
 * in its forms (and the ones refused), and Range/If-Range added to a GET. */
static void test_range_fields(void **state)
{
	(void)state;
	http_response_t r;
	assert_true(parse("HTTP/1.1 206 Partial\r\nETag: \"abc-1\"\r\n"
	                  "Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
	                  "Accept-Ranges: none, Bytes\r\nContent-Range: bytes 100-199/1000\r\n"
	                  "Content-Length: 100\r\n\r\n",
	                  &r) > 0);
	assert_string_equal(r.etag, "\"abc-1\"");
	assert_true(http_etag_strong(r.etag));
	assert_string_equal(r.last_modified, "Wed, 21 Oct 2015 07:28:00 GMT");
	assert_true(r.accept_ranges);
	assert_true(r.content_range && r.content_range_ok);
	assert_int_equal(r.range_first, 100);
	assert_int_equal(r.range_last, 199);
	assert_int_equal(r.range_total, 1000);
	assert_true(parse("HTTP/1.1 206 P\r\nContent-Range: bytes 5-9/*\r\n\r\n", &r) > 0);
	assert_true(r.content_range_ok);
	assert_int_equal(r.range_total, -1);
	assert_true(parse("HTTP/1.1 200 OK\r\nETag: W/\"weak\"\r\nAccept-Ranges: none\r\n\r\n",
	                  &r) > 0);
	assert_false(http_etag_strong(r.etag));
	assert_false(r.accept_ranges);
	assert_false(r.content_range);
	static const char *const bad[] = {
	    "bytes */1000", "bytes 10-5/100", "bytes 0-99/99", "items 0-1/2", "bytes 1-2",
	    "bytes -1-2/3", "bytes 1-2/3x", "bytes 99999999999999999999-1/2", "bytes 0-1/",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char h[256];
		snprintf(h, sizeof(h), "HTTP/1.1 206 P\r\nContent-Range: %s\r\n\r\n", bad[i]);
		assert_true(parse(h, &r) > 0);
		assert_true(r.content_range);
		assert_false(r.content_range_ok);
	}

	char out[512];
	ssize_t n = http_build_get(out, sizeof(out), "h", 0, 443, "/x.ndjson", 9, NULL);
	assert_true(n > 0);
	ssize_t m = http_add_range(out, (size_t)n, sizeof(out), 12345, "\"abc\"");
	assert_true(m > n);
	assert_non_null(strstr(out, "\r\nRange: bytes=12345-\r\nIf-Range: \"abc\"\r\n\r\n"));
	assert_ptr_equal(strstr(out, "\r\n\r\n"), out + m - 4);
	n = http_build_get(out, sizeof(out), "h", 0, 443, "/x", 2, NULL);
	m = http_add_range(out, (size_t)n, sizeof(out), 7, "");
	assert_non_null(strstr(out, "\r\nRange: bytes=7-\r\n\r\n"));
	assert_null(strstr(out, "If-Range"));
	assert_int_equal(http_add_range(out, (size_t)m, (size_t)m + 5, 7, ""), -ENOSPC);
	assert_int_equal(http_add_range(out, (size_t)m, sizeof(out), 7, "\"a\"\r\nX: y"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic_200),        cmocka_unit_test(test_status_lines),
	    cmocka_unit_test(test_content_length),   cmocka_unit_test(test_transfer_encoding),
	    cmocka_unit_test(test_connection_semantics), cmocka_unit_test(test_no_body),
	    cmocka_unit_test(test_fields),           cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_limits),           cmocka_unit_test(test_every_prefix),
	    cmocka_unit_test(test_build_get),        cmocka_unit_test(test_range_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
