/* net/http.c: HTTP/1.1 client framing without I/O: the GET request, the
 * response head, and in-place chunked decoding.
 *
 * The loop (engine/loop.c) feeds decrypted bytes from net/tls.c here, then
 * passes the body bytes on to the raw-file writer and the JSON parser
 * (parse/). Pure functions over caller buffers; tri-state results. */
#include "net/http.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#if defined(__has_include)
#if __has_include("rf_config.h")
#include "rf_config.h"
#endif
#endif
#ifndef RINGFILL_VERSION
#define RINGFILL_VERSION "0.1.0" /* when built without the generated config */
#endif

#define HTTP_USER_AGENT "ringfill/" RINGFILL_VERSION
#define HTTP_ACCEPT "application/json, application/x-ndjson;q=0.9, */*;q=0.1"
#define HTTP_PORT_DEFAULT 443u
#define HTTP_CL_DIGITS_MAX 18u /* < 2^63 whatever the digits */
#define HTTP_CHUNK_SIZE_MAX (UINT64_C(1) << 62)
#define HTTP_TRAILER_BYTES_MAX HTTP_HEAD_BYTES_MAX
#define HTTP_STATUS_LINE_MIN 12u /* "HTTP/1.1 200" */

/* ---- character classes (RFC 9110 §5.6) -------------------------------- */

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP and HTAB; obs-text (>= 0x80) is allowed as opaque. */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool name_is(const char *name, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(name, lit, n) == 0;
}

/* ---- response head ---------------------------------------------------- */

/* What the head's fields said, resolved into http_response_t at the end. */
typedef struct {
	unsigned headers;
	bool cl_seen;
	bool te_seen;
	bool te_chunked; /* the final transfer coding seen so far is chunked */
	bool conn_close;
	bool conn_keep_alive;
} head_state_t;

static ssize_t fail(http_response_t *r, const char *why)
{
	r->reason = why;
	return HTTP_ERROR;
}

/* Finds the line starting at pos within buf[0..scan). Lines end in CRLF; a
 * bare CR or LF and NUL anywhere are refused (they are how requests get
 * smuggled past proxies that read them differently). Returns 1 and sets
 * *line_len (without CRLF) and *next, 0 when the line is not all there, or
 * HTTP_ERROR. */
static int next_line(const char *buf, size_t scan, size_t pos, size_t *line_len, size_t *next,
                     http_response_t *r)
{
	for (size_t i = pos; i < scan; i++) {
		char c = buf[i];
		if (c == '\0')
			return (int)fail(r, "NUL byte in response head");
		if (c == '\n')
			return (int)fail(r, "bare LF in response head");
		if (c != '\r')
			continue;
		if (i + 1 == scan)
			return 0;
		if (buf[i + 1] != '\n')
			return (int)fail(r, "bare CR in response head");
		*line_len = i - pos;
		*next = i + 2;
		return 1;
	}
	return 0;
}

static ssize_t parse_status_line(const char *l, size_t n, http_response_t *r)
{
	if (n < HTTP_STATUS_LINE_MIN || memcmp(l, "HTTP/1.", 7) != 0 ||
	    !is_digit((unsigned char)l[7]) || l[8] != ' ' || !is_digit((unsigned char)l[9]) ||
	    !is_digit((unsigned char)l[10]) || !is_digit((unsigned char)l[11]) ||
	    (n > HTTP_STATUS_LINE_MIN && l[12] != ' '))
		return fail(r, "bad status line");
	r->minor_version = l[7] - '0';
	if (r->minor_version > 1)
		return fail(r, "unsupported HTTP version");
	r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (r->status < 100 || r->status > 599)
		return fail(r, "bad status code");
	for (size_t i = HTTP_STATUS_LINE_MIN; i < n; i++)
		if (!is_value_char((unsigned char)l[i]))
			return fail(r, "bad status line");
	return 0;
}

/* Steps through a comma-separated list value: the next element without
 * parameters (";...") or surrounding whitespace. Returns false at the end. */
static bool next_element(const char *v, size_t n, size_t *pos, const char **el, size_t *el_len)
{
	size_t i = *pos;
	while (i < n && (v[i] == ',' || is_ows(v[i])))
		i++;
	if (i == n)
		return false;
	size_t start = i;
	while (i < n && v[i] != ',')
		i++;
	*pos = i;
	size_t end = start;
	while (end < i && v[end] != ';')
		end++;
	while (end > start && is_ows(v[end - 1]))
		end--;
	*el = v + start;
	*el_len = end - start;
	return true;
}

/* Digits only, or a list of the same number (`42, 42`, which a proxy that
 * joined two equal fields sends: RFC 9110 §8.6 lets a recipient take it as
 * one); several fields or elements must agree. */
static ssize_t on_content_length(const char *v, size_t n, http_response_t *r, head_state_t *st)
{
	size_t i = 0;
	do {
		while (i < n && is_ows(v[i]))
			i++;
		size_t start = i;
		int64_t value = 0;
		while (i < n && is_digit((unsigned char)v[i]))
			value = value * 10 + (v[i++] - '0'), (void)0;
		size_t digits = i - start;
		while (i < n && is_ows(v[i]))
			i++;
		if (digits == 0 || digits > HTTP_CL_DIGITS_MAX || (i < n && v[i] != ','))
			return fail(r, "bad Content-Length");
		if (st->cl_seen && value != r->content_length)
			return fail(r, "conflicting Content-Length");
		st->cl_seen = true;
		r->content_length = value;
	} while (i++ < n); /* past the ',' */
	return 0;
}

static ssize_t on_transfer_encoding(const char *v, size_t n, http_response_t *r,
                                    head_state_t *st)
{
	const char *el;
	size_t el_len, pos = 0;
	bool any = false;
	while (next_element(v, n, &pos, &el, &el_len)) {
		st->te_chunked = name_is(el, el_len, "chunked");
		any = true;
	}
	if (!any)
		return fail(r, "bad Transfer-Encoding");
	st->te_seen = true;
	return 0;
}

static void on_connection(const char *v, size_t n, head_state_t *st)
{
	const char *el;
	size_t el_len, pos = 0;
	while (next_element(v, n, &pos, &el, &el_len)) {
		if (name_is(el, el_len, "close"))
			st->conn_close = true;
		else if (name_is(el, el_len, "keep-alive"))
			st->conn_keep_alive = true;
	}
}

/* Appends a coding, lower-cased, to the list kept as sent ("gzip",
 * "gzip, br"); a list that does not fit becomes "unknown", still not
 * identity for whoever reads the raw file. */
static void coding_add(char list[HTTP_CODINGS_BYTES_MAX], const char *el, size_t n)
{
	size_t len = strlen(list), sep = len ? 2 : 0;
	if (!strcmp(list, "unknown") || len + sep + n >= HTTP_CODINGS_BYTES_MAX) {
		snprintf(list, HTTP_CODINGS_BYTES_MAX, "unknown");
		return;
	}
	memcpy(list + len, ", ", sep);
	for (size_t i = 0; i < n; i++)
		list[len + sep + i] = el[i] >= 'A' && el[i] <= 'Z' ? (char)(el[i] - 'A' + 'a') : el[i];
	list[len + sep + n] = '\0';
}

/* gzip only when it is the one coding applied (identity aside) over every
 * Content-Encoding header together, so a later "identity" header does not
 * undo an earlier "gzip", nor does "gzip" alone count after "deflate": a body
 * with codings we cannot undo is passed on as is and fails JSON parsing there. */
static void on_content_encoding(const char *v, size_t n, http_response_t *r)
{
	const char *el;
	size_t el_len, pos = 0;
	while (next_element(v, n, &pos, &el, &el_len)) {
		if (!name_is(el, el_len, "identity"))
			coding_add(r->content_encoding, el, el_len);
	}
	r->gzip = !strcmp(r->content_encoding, "gzip") || !strcmp(r->content_encoding, "x-gzip");
}

/* Copies v into dst when it fits; an over-long value leaves dst "" (and is
 * then treated as absent) and returns false. */
static bool copy_value(char *dst, size_t cap, const char *v, size_t n, bool lower)
{
	if (n >= cap) {
		dst[0] = '\0';
		return false;
	}
	for (size_t i = 0; i < n; i++)
		dst[i] = (lower && v[i] >= 'A' && v[i] <= 'Z') ? (char)(v[i] - 'A' + 'a') : v[i];
	dst[n] = '\0';
	return true;
}

/* Reads a decimal number at v[*pos..n) that fits 63 bits. */
static bool read_u63(const char *v, size_t n, size_t *pos, uint64_t *out)
{
	size_t start = *pos;
	uint64_t x = 0;
	while (*pos < n && is_digit((unsigned char)v[*pos])) {
		if (x > (INT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(v[*pos] - '0');
		(*pos)++;
	}
	*out = x;
	return *pos > start;
}

/* "bytes FIRST-LAST/TOTAL" or with an asterisk for TOTAL (RFC 9110 §14.4); an
 * unsatisfied-range form or anything else leaves content_range_ok false. */
static void on_content_range(const char *v, size_t n, http_response_t *r)
{
	size_t pos = 0;
	uint64_t first, last, total = 0;
	r->content_range = true;
	r->content_range_ok = false;
	if (n < 6 || !name_is(v, 5, "bytes") || v[5] != ' ')
		return;
	pos = 6;
	if (!read_u63(v, n, &pos, &first) || pos >= n || v[pos++] != '-' ||
	    !read_u63(v, n, &pos, &last) || pos >= n || v[pos++] != '/' || last < first)
		return;
	if (pos + 1 == n && v[pos] == '*')
		r->range_total = -1;
	else if (read_u63(v, n, &pos, &total) && pos == n && last < total)
		r->range_total = (int64_t)total;
	else
		return;
	r->range_first = first;
	r->range_last = last;
	r->content_range_ok = true;
}

static ssize_t on_field(const char *name, size_t nn, const char *v, size_t vn,
                        http_response_t *r, head_state_t *st)
{
	if (name_is(name, nn, "content-length"))
		return on_content_length(v, vn, r, st);
	if (name_is(name, nn, "transfer-encoding"))
		return on_transfer_encoding(v, vn, r, st);
	if (name_is(name, nn, "connection"))
		on_connection(v, vn, st);
	else if (name_is(name, nn, "content-encoding"))
		on_content_encoding(v, vn, r);
	else if (name_is(name, nn, "content-type")) {
		size_t type_len = 0;
		while (type_len < vn && v[type_len] != ';')
			type_len++;
		while (type_len > 0 && is_ows(v[type_len - 1]))
			type_len--;
		copy_value(r->content_type, sizeof(r->content_type), v, type_len, true);
	} else if (name_is(name, nn, "retry-after")) {
		copy_value(r->retry_after, sizeof(r->retry_after), v, vn, false);
	} else if (name_is(name, nn, "etag")) {
		copy_value(r->etag, sizeof(r->etag), v, vn, false);
	} else if (name_is(name, nn, "last-modified")) {
		copy_value(r->last_modified, sizeof(r->last_modified), v, vn, false);
	} else if (name_is(name, nn, "accept-ranges")) {
		const char *el;
		size_t el_len, pos = 0;
		while (next_element(v, vn, &pos, &el, &el_len))
			r->accept_ranges |= name_is(el, el_len, "bytes");
	} else if (name_is(name, nn, "content-range")) {
		on_content_range(v, vn, r);
	} else if (name_is(name, nn, "location")) {
		if (!copy_value(r->location, sizeof(r->location), v, vn, false))
			return fail(r, "Location too long");
	}
	return 0;
}

static ssize_t parse_field_line(const char *l, size_t n, http_response_t *r, head_state_t *st)
{
	if (is_ows(l[0]))
		return fail(r, "obsolete line folding in response head");
	if (++st->headers > HTTP_HEADERS_MAX)
		return fail(r, HTTP_E_TOO_MANY_HEADERS);
	size_t nn = 0;
	while (nn < n && l[nn] != ':') {
		if (!is_tchar((unsigned char)l[nn]))
			return fail(r, "bad header name");
		nn++;
	}
	if (nn == 0 || nn == n)
		return fail(r, "bad header name");
	size_t vs = nn + 1, ve = n;
	while (vs < ve && is_ows(l[vs]))
		vs++;
	while (ve > vs && is_ows(l[ve - 1]))
		ve--;
	for (size_t i = vs; i < ve; i++)
		if (!is_value_char((unsigned char)l[i]))
			return fail(r, "bad header value");
	return on_field(l, nn, l + vs, ve - vs, r, st);
}

/* Framing per RFC 9112 §6.3: a Transfer-Encoding overrides Content-Length;
 * one that does not end in chunked is read until the connection closes. */
static void resolve_framing(http_response_t *r, const head_state_t *st)
{
	if (st->te_seen) {
		r->chunked = st->te_chunked;
		r->content_length = -1;
	}
	r->close = st->conn_close || (r->minor_version == 0 && !st->conn_keep_alive) ||
	           (!http_no_body(r) && !r->chunked && r->content_length < 0);
}

/* Parses from the start on every call: O(head) each time, fine because the
 * loop calls it once per received buffer, and heads are capped at 16 KiB. */
ssize_t http_parse_response(const char *buf, size_t len, http_response_t *r)
{
	assert(r != NULL && (buf != NULL || len == 0));
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	head_state_t st = {0};
	size_t scan = len < HTTP_HEAD_BYTES_MAX ? len : HTTP_HEAD_BYTES_MAX;
	size_t pos = 0, line_len = 0, next = 0;
	/* A peer that is not speaking HTTP is told apart at once, not at 16 KiB. */
	if (len > 0 && memcmp(buf, "HTTP/1.", len < 7 ? len : 7) != 0)
		return fail(r, "bad status line");
	for (;;) {
		int got = next_line(buf, scan, pos, &line_len, &next, r);
		if (got < 0)
			return HTTP_ERROR;
		if (got == 0)
			return len >= HTTP_HEAD_BYTES_MAX ? fail(r, "header too large")
			                                  : HTTP_INCOMPLETE;
		ssize_t rc;
		if (pos == 0)
			rc = parse_status_line(buf, line_len, r);
		else if (line_len == 0)
			break;
		else
			rc = parse_field_line(buf + pos, line_len, r, &st);
		if (rc < 0)
			return HTTP_ERROR;
		pos = next;
	}
	resolve_framing(r, &st);
	assert(next <= HTTP_HEAD_BYTES_MAX);
	return (ssize_t)next;
}

bool http_no_body(const http_response_t *r)
{
	return r->status < 200 || r->status == 204 || r->status == 304;
}

/* ---- chunked decoding (RFC 9112 §7.1) --------------------------------- */

enum {
	CK_SIZE_START = 0, /* first hex digit of a chunk-size line */
	CK_SIZE,           /* more hex digits */
	CK_SIZE_WS,        /* whitespace after the size, before ';' or CR */
	CK_EXT,            /* a chunk extension, ignored up to CR */
	CK_SIZE_LF,        /* the LF ending a size line */
	CK_DATA,           /* chunk data; remaining > 0 */
	CK_DATA_CR,        /* the CRLF after chunk data */
	CK_DATA_LF,
	CK_TRAILER_START,  /* start of a trailer line, or the final CRLF */
	CK_TRAILER,        /* inside a trailer line, skipped */
	CK_TRAILER_LF,
	CK_END_LF,         /* the LF of the final CRLF */
	CK_DONE,
	CK_FAILED,
};

void http_chunked_init(http_chunked_t *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CK_SIZE_START;
}

/* One byte of a chunk-size line. 0, or -1 with *reason. */
static int size_line_byte(http_chunked_t *c, unsigned char b, const char **reason)
{
	if (++c->line_len > HTTP_CHUNK_LINE_BYTES_MAX) {
		*reason = "chunk size line too long";
		return -1;
	}
	int h = hex_value(b);
	switch (c->state) {
	case CK_SIZE_START:
	case CK_SIZE:
		if (h >= 0) {
			if (c->remaining > (HTTP_CHUNK_SIZE_MAX >> 4) ||
			    (c->remaining << 4 | (uint64_t)h) > HTTP_CHUNK_SIZE_MAX) {
				*reason = "chunk size too large";
				return -1;
			}
			c->remaining = c->remaining << 4 | (uint64_t)h;
			c->state = CK_SIZE;
			return 0;
		}
		if (c->state == CK_SIZE_START)
			break;
		/* The size ended; the rest of the line is read as in CK_SIZE_WS. */
		__attribute__((fallthrough));
	case CK_SIZE_WS:
		if (b == ' ' || b == '\t')
			c->state = CK_SIZE_WS;
		else if (b == ';')
			c->state = CK_EXT;
		else if (b == '\r')
			c->state = CK_SIZE_LF;
		else
			break;
		return 0;
	case CK_EXT:
		if (b == '\r')
			c->state = CK_SIZE_LF;
		else if (b == '\n' || b == '\0')
			break;
		return 0;
	case CK_SIZE_LF:
		if (b != '\n')
			break;
		c->line_len = 0;
		c->state = c->remaining == 0 ? CK_TRAILER_START : CK_DATA;
		return 0;
	default:
		assert(0 && "not a size-line state");
	}
	*reason = "bad chunk size line";
	return -1;
}

/* One byte of the framing after chunk data, or of the trailer section. */
static int framing_byte(http_chunked_t *c, unsigned char b, const char **reason)
{
	if (c->state <= CK_SIZE_LF)
		return size_line_byte(c, b, reason);
	if (c->state >= CK_TRAILER_START && ++c->line_len > HTTP_TRAILER_BYTES_MAX) {
		*reason = "chunked trailers too large";
		return -1;
	}
	switch (c->state) {
	case CK_DATA_CR:
		if (b != '\r')
			break;
		c->state = CK_DATA_LF;
		return 0;
	case CK_DATA_LF:
		if (b != '\n')
			break;
		c->state = CK_SIZE_START;
		c->line_len = 0;
		return 0;
	case CK_TRAILER_START:
	case CK_TRAILER:
		if (b == '\r')
			c->state = c->state == CK_TRAILER_START ? CK_END_LF : CK_TRAILER_LF;
		else if (b == '\n' || b == '\0')
			break;
		else
			c->state = CK_TRAILER;
		return 0;
	case CK_TRAILER_LF:
	case CK_END_LF:
		if (b != '\n')
			break;
		c->state = c->state == CK_END_LF ? CK_DONE : CK_TRAILER_START;
		return 0;
	default:
		assert(0 && "not a framing state");
	}
	*reason = c->state == CK_DATA_CR || c->state == CK_DATA_LF ? "missing CRLF after chunk data"
	                                                            : "bad chunked trailer";
	return -1;
}

ssize_t http_chunked_decode(http_chunked_t *c, char *buf, size_t *len, const char **reason)
{
	const char *reason_unused;
	size_t n = *len, in = 0, out = 0;
	assert(c != NULL && (buf != NULL || n == 0));
	if (reason == NULL)
		reason = &reason_unused;
	if (c->state == CK_FAILED) {
		*len = 0;
		*reason = "chunked body already failed";
		return HTTP_ERROR;
	}
	while (in < n && c->state != CK_DONE) {
		if (c->state == CK_DATA) {
			size_t take = n - in < c->remaining ? n - in : (size_t)c->remaining;
			memmove(buf + out, buf + in, take); /* out <= in: framing only shrinks */
			in += take;
			out += take;
			c->remaining -= take;
			c->total += take;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			continue;
		}
		if (framing_byte(c, (unsigned char)buf[in++], reason) != 0) {
			c->state = CK_FAILED;
			*len = out;
			return HTTP_ERROR;
		}
	}
	*len = out;
	return c->state == CK_DONE ? (ssize_t)(n - in) : HTTP_INCOMPLETE;
}

/* ---- request ---------------------------------------------------------- */

/* Appends to a fixed buffer, remembering overflow instead of failing at
 * every call site. */
typedef struct {
	char *p;
	size_t cap;
	size_t n;
	bool overflow;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
	if (o->overflow || n > o->cap - o->n) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void puts_(out_t *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A byte that would end or split the request line or a header. */
static bool unsafe_bytes(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
			return true;
	return false;
}

ssize_t http_build_get(char *out, size_t cap, const char *host, int host_is_ipv6,
                       uint16_t port, const char *target, size_t target_len,
                       const char *extra_headers)
{
	assert(out != NULL && host != NULL && (target != NULL || target_len == 0));
	if (host[0] == '\0' || unsafe_bytes(host, strlen(host)) || unsafe_bytes(target, target_len))
		return -EINVAL;
	out_t o = {.p = out, .cap = cap};
	puts_(&o, "GET ");
	if (target_len == 0 || target[0] != '/') /* "" or "?query" (see url.c) */
		puts_(&o, "/");
	put(&o, target, target_len);
	puts_(&o, " HTTP/1.1\r\nHost: ");
	if (host_is_ipv6)
		puts_(&o, "[");
	puts_(&o, host);
	if (host_is_ipv6)
		puts_(&o, "]");
	if (port != HTTP_PORT_DEFAULT) {
		char digits[8];
		size_t d = sizeof(digits);
		unsigned p = port;
		do {
			digits[--d] = (char)('0' + p % 10u);
			p /= 10u;
		} while (p != 0);
		puts_(&o, ":");
		put(&o, digits + d, sizeof(digits) - d);
	}
	puts_(&o, "\r\nUser-Agent: " HTTP_USER_AGENT "\r\nAccept: " HTTP_ACCEPT
	          "\r\nAccept-Encoding: gzip\r\n");
	if (extra_headers != NULL)
		puts_(&o, extra_headers);
	puts_(&o, "\r\n");
	if (o.overflow || o.n + 1 > cap)
		return -ENOSPC;
	out[o.n] = '\0';
	return (ssize_t)o.n;
}

bool http_etag_strong(const char *etag)
{
	size_t n = strlen(etag);
	return n >= 2 && etag[0] == '"' && etag[n - 1] == '"';
}

ssize_t http_add_range(char *req, size_t len, size_t cap, uint64_t from, const char *validator)
{
	assert(req != NULL && validator != NULL);
	if (len < 4 || memcmp(req + len - 4, "\r\n\r\n", 4) != 0)
		return -EINVAL;
	for (const char *p = validator; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			return -EINVAL;
	char extra[64 + HTTP_VALIDATOR_BYTES_MAX];
	int n = snprintf(extra, sizeof(extra), "Range: bytes=%llu-\r\n%s%s%s\r\n",
	                 (unsigned long long)from, *validator ? "If-Range: " : "", validator,
	                 *validator ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(extra) || len + (size_t)n + 1 > cap)
		return -ENOSPC;
	/* The blank line moves behind the new fields. */
	memcpy(req + len - 2, extra, (size_t)n);
	len = len - 2 + (size_t)n;
	req[len] = '\0';
	return (ssize_t)len;
}
