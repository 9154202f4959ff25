/* net/http.h: HTTP/1.1 client side, without I/O: build a GET request, parse a
 * response head, decode chunked framing in place.
 *
 * The loop (engine/loop.c) feeds these with decrypted bytes from net/tls.c.
 * Everything here is a pure function over caller buffers with the tri-state
 * result of picohttpparser: done (>= 0), need more (HTTP_INCOMPLETE), or error
 * (HTTP_ERROR, with a static reason). Fuzzable. */
#ifndef RF_HTTP_H
#define RF_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_INCOMPLETE (-2)
#define HTTP_ERROR (-1)

#define HTTP_HEAD_BYTES_MAX 16384u /* status line + headers + blank line */
#define HTTP_HEADERS_MAX 100u
#define HTTP_E_TOO_MANY_HEADERS "too many headers" /* the reason past HTTP_HEADERS_MAX */
#define HTTP_CHUNK_LINE_BYTES_MAX 1024u /* chunk-size line incl. extensions */
#define HTTP_VALIDATOR_BYTES_MAX 256u   /* an ETag or Last-Modified we keep */
#define HTTP_CODINGS_BYTES_MAX 32u      /* the Content-Encoding list we keep */

typedef struct {
	int status;             /* 100..599 */
	int minor_version;      /* 0 or 1 (HTTP/1.x) */
	int64_t content_length; /* -1 when absent */
	bool chunked;           /* Transfer-Encoding: chunked (last coding) */
	bool close;             /* connection closes after this response */
	bool gzip;              /* Content-Encoding: gzip */
	/* The codings of Content-Encoding as sent, identity left out, lower-cased,
	 * ", "-separated ("unknown" when longer); "" for identity. */
	char content_encoding[HTTP_CODINGS_BYTES_MAX];
	char content_type[128]; /* media type, lower-cased, parameters dropped; "" if none */
	char retry_after[64];   /* Retry-After verbatim; "" if none */
	char location[2048];    /* Location verbatim; "" if none (truncated: error) */
	/* For resuming a body with Range (engine/ndstream.c): */
	char etag[HTTP_VALIDATOR_BYTES_MAX];          /* ETag verbatim ("" if none or too long) */
	char last_modified[HTTP_VALIDATOR_BYTES_MAX]; /* Last-Modified verbatim, "" if none */
	bool accept_ranges;     /* Accept-Ranges: bytes */
	bool content_range;     /* a Content-Range header was seen ... */
	bool content_range_ok;  /* ... and it read "bytes FIRST-LAST/(TOTAL|*)" */
	uint64_t range_first, range_last; /* Content-Range's byte positions */
	int64_t range_total;    /* Content-Range's complete length, -1 for '*' */
	const char *reason;     /* on HTTP_ERROR: why, static */
} http_response_t;

/* The bytes a parsed Content-Range (content_range_ok) says the body holds. */
static inline uint64_t http_range_bytes(const http_response_t *r)
{
	return r->range_last + 1 - r->range_first;
}

/* Parses the response head at buf[0..len). Returns the head's length in bytes
 * (through the blank line) when complete, HTTP_INCOMPLETE when more bytes are
 * needed (and len < HTTP_HEAD_BYTES_MAX), HTTP_ERROR otherwise with r->reason
 * ("header too large", "too many headers", "bad status line", "conflicting
 * Content-Length", ...). Handles HTTP/1.0 and 1.1 keep-alive defaults. */
ssize_t http_parse_response(const char *buf, size_t len, http_response_t *r);

/* True when the response has no body whatever its headers (1xx, 204, 304;
 * HEAD requests are not used). */
bool http_no_body(const http_response_t *r);

/* Chunked decoder state; zero it (or http_chunked_init) before a body. */
typedef struct {
	uint64_t remaining; /* bytes left in the current chunk */
	uint32_t state;     /* internal */
	uint32_t line_len;  /* bytes of the current size/trailer line seen */
	uint64_t total;     /* decoded bytes so far */
} http_chunked_t;

void http_chunked_init(http_chunked_t *c);

/* Decodes buf[0..*len) in place: on return buf[0..*len) holds the body bytes
 * it contained. Returns HTTP_INCOMPLETE when the body continues in later
 * input, HTTP_ERROR on bad framing (c->... reason via *reason), or, when the
 * terminating zero chunk and trailers ended, the number of bytes after the
 * body's end that were not consumed (they start at buf + input length - that
 * number; keep-alive callers may see the next response there). */
ssize_t http_chunked_decode(http_chunked_t *c, char *buf, size_t *len, const char **reason);

/* Writes "GET target HTTP/1.1" with Host (port only when not 443), User-Agent,
 * Accept, Accept-Encoding: gzip (net/gzip.c decodes it), and extra_headers (already formatted
 * "Name: value\r\n" lines, may be NULL). Returns the length, or -ENOSPC. */
ssize_t http_build_get(char *out, size_t cap, const char *host, int host_is_ipv6,
                       uint16_t port, const char *target, size_t target_len,
                       const char *extra_headers);

/* True when the ETag is strong (not W/"..."): only a strong one may be sent
 * in If-Range (RFC 9110 §13.1.5). */
bool http_etag_strong(const char *etag);

/* Adds "Range: bytes=FROM-" and, when validator is not empty, "If-Range:
 * VALIDATOR" to the request req[0..len) that http_build_get made (before
 * its blank line). Returns the new length, or -ENOSPC / -EINVAL (a
 * validator with bytes that would split the header). */
ssize_t http_add_range(char *req, size_t len, size_t cap, uint64_t from, const char *validator);

#endif
