/* net/url.h: parse the https:// URLs of jobs, and derive raw-file names.
 *
 * Used by the job importer (store/) to reject malformed lines up front, and by
 * the loop (engine/) to pick a host, port and request target. Pure functions
 * over caller memory. */
#ifndef RF_URL_H
#define RF_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define URL_BYTES_MAX 8192u
#define URL_HOST_BYTES_MAX 255u
#define RAW_NAME_BYTES_MAX 200u /* a raw file's name, before ".part" */

typedef struct {
	char host[URL_HOST_BYTES_MAX + 1]; /* lower-cased; IPv6 literal without [] */
	uint16_t port;                     /* 443 when not given */
	int host_is_ipv6;                  /* 1 for a bracketed IPv6 literal */
	const char *target;                /* into the parsed string: path + query, "/" if empty
	                                    * (see target_len); the fragment is dropped */
	size_t target_len;
} url_t;

/* Parses an absolute https URL (scheme and host case-insensitive; userinfo is
 * rejected; port 1..65535; no spaces or control bytes anywhere; at most
 * URL_BYTES_MAX bytes). Returns 0, or -1 with *reason a static readable string
 * such as "not an https URL" or "bad port". u->target points into s. */
int url_parse(const char *s, size_t len, url_t *u, const char **reason);

/* A file name for a raw body, derived from the URL's path: '/' becomes '_',
 * bytes outside [A-Za-z0-9._-] become '_', no leading '.', never "" (it is
 * "index" then), so the name can never leave the raw directory. Names are one
 * to one with URLs of a host: unless the path is plain (one leading '/', then
 * only [A-Za-z0-9.-/], not starting with '.'), short enough, and has no query,
 * "-" and 16 hex digits of a hash of the whole URL are added, before a short
 * extension such as ".json". At most RAW_NAME_BYTES_MAX bytes.
 * Writes a NUL-terminated name into out; returns its length, or -ENOSPC. */
int url_raw_name(const char *s, size_t len, char *out, size_t cap);

/* The directory under --raw for a host and port, one to one with them: the
 * host's lower-case letters, digits, '.' and '-' as they are, every other
 * byte (an IPv6 literal's ':', a '_') and a leading '.' as %XX, then "_PORT"
 * when the port is not 443 (the only '_' a name holds). So it is never "",
 * "." or "..", holds no '/', and cannot leave --raw. A name longer than
 * NAME_MAX keeps its first bytes and ends in "%h" and 16 hex digits of a hash
 * of host and port ("%h" is no escape, so no other name ends so). Writes it NUL-terminated into out (cap at least
 * URL_HOST_DIRNAME_BYTES); returns its length, or -ENOSPC. */
#define URL_HOST_DIRNAME_BYTES 256u /* NAME_MAX and a NUL */
int url_host_dirname(const char *host, uint16_t port, char *out, size_t cap);

/* Percent-encodes s into out (RFC 3986: the unreserved bytes A-Z a-z 0-9
 * - . _ ~ stay, every other byte becomes %XX), so a value put into a URL can
 * never add a path segment, a query or a fragment. NUL-terminates; returns
 * the length, or -1 when it does not fit in cap. */
long url_percent_encode(const char *s, size_t len, char *out, size_t cap);

/* Whether v[0..n), put in place of the template's {NAME} (open and close
 * point at its braces), would make its path segment one that servers
 * resolve away (RFC 3986, 5.2.4): ".", ".." or empty, with what the
 * template has around the placeholder in that segment ("/.{name}/" and "."
 * is ".."). https://h/users/{name}/a.json with ".." names /a.json: no
 * encoding helps, since %2E is a dot too. A placeholder in the host, the
 * query or the fragment is in no segment. */
bool url_template_dot_segment(const char *tmpl, const char *open, const char *close,
                              const char *v, size_t n);

#endif
