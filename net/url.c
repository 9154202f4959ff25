/* net/url.c: strict parsing of the https:// URLs jobs name, and the raw-file
 * names derived from them.
 *
 * The job importer (store/) calls url_parse to reject bad lines before they
 * become jobs; the loop (engine/) takes host, port and target from it and
 * hands them to net/http.c's http_build_get. Pure functions, no allocation. */
#include "net/url.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define URL_SCHEME "https://"
#define URL_SCHEME_BYTES (sizeof(URL_SCHEME) - 1)
#define URL_LABEL_BYTES_MAX 63u   /* one DNS label */
#define URL_PORT_DIGITS_MAX 5u    /* "65535" */
#define URL_PORT_DEFAULT 443u
#define RAW_HASH_HEX_DIGITS 16u   /* 64-bit FNV-1a */
#define RAW_SUFFIX_BYTES (1u + RAW_HASH_HEX_DIGITS) /* "-" + hex */
#define RAW_EXT_BYTES_MAX 10u     /* ".json", ".ndjson": kept after the hash */
#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME 0x100000001b3ull

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char to_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* RFC 3986 pchar minus pct-encoded (checked separately), plus '/' and '?',
 * which may appear anywhere in path and query. */
static bool is_target_char(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return true;
	return strchr("-._~!$&'()*+,;=:@/?%", c) != NULL && c != '\0';
}

/* ---- host ------------------------------------------------------------- */

/* A dotted quad, each part 0..255 without leading zeros (a leading zero means
 * octal to some resolvers, so it is ambiguous and refused). */
static bool ipv4_valid(const char *h, size_t n)
{
	unsigned parts = 0;
	size_t i = 0;
	while (i < n) {
		size_t start = i;
		unsigned v = 0;
		while (i < n && is_digit((unsigned char)h[i]) && i - start < 3)
			v = v * 10u + (unsigned)(h[i++] - '0');
		size_t digits = i - start;
		if (digits == 0 || v > 255 || (digits > 1 && h[start] == '0'))
			return false;
		parts++;
		if (i == n)
			break;
		if (h[i] != '.' || i + 1 == n)
			return false;
		i++;
	}
	return parts == 4;
}

/* A bracketed IPv6 literal's inside: hex groups and colons, with at most one
 * "::", and an optional dotted-quad tail. Zone ids ("%25eth0") are refused. */
static bool ipv6_valid(const char *h, size_t n)
{
	unsigned groups = 0;
	bool compressed = false;
	size_t i = 0;
	if (n >= 2 && h[0] == ':' && h[1] == ':') {
		compressed = true;
		i = 2;
	} else if (n >= 1 && h[0] == ':') {
		return false;
	}
	while (i < n) {
		size_t start = i;
		while (i < n && is_hex((unsigned char)h[i]) && i - start < 4)
			i++;
		if (i < n && h[i] == '.') /* IPv4 tail, counts as two groups */
			return ipv4_valid(h + start, n - start) && groups + 2 <= (compressed ? 7u : 8u);
		if (i == start)
			return false;
		groups++;
		if (i == n)
			break;
		if (h[i] != ':' || i + 1 == n)
			return false;
		i++;
		if (h[i] == ':') {
			if (compressed)
				return false;
			compressed = true;
			i++;
		}
	}
	return compressed ? groups <= 7 : groups == 8;
}

/* A registered name: labels of letters, digits, '-' and '_', 1..63 bytes,
 * separated by single dots; one trailing dot (a fully qualified name) is
 * allowed. */
static bool reg_name_valid(const char *h, size_t n)
{
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_')
			return false;
		if (++label > URL_LABEL_BYTES_MAX)
			return false;
	}
	return n > 0;
}

static bool all_digits_and_dots(const char *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit((unsigned char)h[i]) && h[i] != '.')
			return false;
	return true;
}

/* Parses what follows the host: nothing, or ':' and 1..65535 in at most
 * five digits. */
static int parse_port(const char *p, size_t n, url_t *u, const char **reason)
{
	unsigned long port = 0;
	u->port = URL_PORT_DEFAULT;
	if (n == 0)
		return 0;
	if (p[0] != ':') {
		*reason = "bad host name";
		return -1;
	}
	if (n == 1 || n - 1 > URL_PORT_DIGITS_MAX) {
		*reason = "bad port";
		return -1;
	}
	for (size_t k = 1; k < n; k++) {
		if (!is_digit((unsigned char)p[k])) {
			*reason = "bad port";
			return -1;
		}
		port = port * 10u + (unsigned long)(p[k] - '0');
	}
	if (port == 0 || port > 65535) {
		*reason = "bad port";
		return -1;
	}
	u->port = (uint16_t)port;
	return 0;
}

/* Parses "host[:port]" in a[0..n) into u. */
static int parse_authority(const char *a, size_t n, url_t *u, const char **reason)
{
	const char *host = a;
	size_t host_len;
	size_t i;
	if (memchr(a, '@', n) != NULL) {
		*reason = "user information (user@) is not allowed in URLs";
		return -1;
	}
	if (n > 0 && a[0] == '[') {
		const char *close = memchr(a, ']', n);
		if (close == NULL) {
			*reason = "bad IPv6 address";
			return -1;
		}
		host = a + 1;
		host_len = (size_t)(close - host);
		i = (size_t)(close - a) + 1;
		if (!ipv6_valid(host, host_len)) {
			*reason = "bad IPv6 address";
			return -1;
		}
		u->host_is_ipv6 = 1;
	} else {
		const char *colon = memchr(a, ':', n);
		host_len = colon ? (size_t)(colon - a) : n;
		i = host_len;
		if (host_len == 0) {
			*reason = "missing host";
			return -1;
		}
		if (all_digits_and_dots(host, host_len) ? !ipv4_valid(host, host_len)
		                                        : !reg_name_valid(host, host_len)) {
			*reason = "bad host name";
			return -1;
		}
	}
	if (host_len > URL_HOST_BYTES_MAX) {
		*reason = "host name too long";
		return -1;
	}
	for (size_t k = 0; k < host_len; k++)
		u->host[k] = to_lower(host[k]);
	u->host[host_len] = '\0';

	return parse_port(a + i, n - i, u, reason);
}

/* ---- whole URL -------------------------------------------------------- */

/* Checks bytes every part of a URL must obey: printable ASCII only. */
static int check_bytes(const char *s, size_t len, const char **reason)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ') {
			*reason = "space in URL (percent-encode it as %20)";
			return -1;
		}
		if (c < 0x20 || c == 0x7f) {
			*reason = "control byte in URL";
			return -1;
		}
		if (c >= 0x80) {
			*reason = "non-ASCII byte in URL (percent-encode it)";
			return -1;
		}
	}
	return 0;
}

/* Path and query: RFC 3986 characters, and '%' only before two hex digits. */
static int check_target(const char *t, size_t n, const char **reason)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (!is_target_char(c)) {
			*reason = "character not allowed in URL path or query (percent-encode it)";
			return -1;
		}
		if (c == '%' && (i + 2 >= n || !is_hex((unsigned char)t[i + 1]) ||
		                 !is_hex((unsigned char)t[i + 2]))) {
			*reason = "bad percent-encoding in URL";
			return -1;
		}
	}
	return 0;
}

int url_parse(const char *s, size_t len, url_t *u, const char **reason)
{
	const char *reason_unused;
	assert(s != NULL && u != NULL);
	if (reason == NULL)
		reason = &reason_unused;
	memset(u, 0, sizeof(*u));
	if (len > URL_BYTES_MAX) {
		*reason = "URL too long";
		return -1;
	}
	if (check_bytes(s, len, reason) != 0)
		return -1;
	if (len < URL_SCHEME_BYTES || strncasecmp(s, URL_SCHEME, URL_SCHEME_BYTES) != 0) {
		*reason = "not an https URL";
		return -1;
	}
	const char *auth = s + URL_SCHEME_BYTES;
	const char *end = s + len;
	const char *p = auth;
	while (p < end && *p != '/' && *p != '?' && *p != '#')
		p++;
	if (parse_authority(auth, (size_t)(p - auth), u, reason) != 0)
		return -1;

	const char *frag = memchr(p, '#', (size_t)(end - p));
	const char *target_end = frag ? frag : end;
	if (check_target(p, (size_t)(target_end - p), reason) != 0)
		return -1;
	if (target_end == p) {
		u->target = "/";
		u->target_len = 1;
	} else {
		/* "https://h?q" leaves a target starting with '?': it cannot point into
		 * s with a '/' in front, so http_build_get writes the '/'. */
		u->target = p;
		u->target_len = (size_t)(target_end - p);
	}
	return 0;
}

/* ---- raw-file names --------------------------------------------------- */

static uint64_t fnv1a64(const char *s, size_t n)
{
	uint64_t h = FNV64_OFFSET;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= FNV64_PRIME;
	}
	return h;
}

static bool is_name_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '-';
}

/* Finds the path of s (between the authority and '?' or '#'); tolerant, so a
 * name can be made for any string. *has_query says a query follows. */
static void locate_path(const char *s, size_t len, const char **path, size_t *path_len,
                        bool *has_query, size_t *hashed_len)
{
	const char *end = s + len;
	const char *frag = memchr(s, '#', len);
	const char *p = s;
	if (frag != NULL)
		end = frag;
	*hashed_len = (size_t)(end - s);
	for (const char *q = s; q + 3 <= end; q++) {
		if (q[0] == ':' && q[1] == '/' && q[2] == '/') {
			p = q + 3;
			while (p < end && *p != '/' && *p != '?')
				p++;
			break;
		}
		if (q[0] == '/' || q[0] == '?')
			break;
	}
	const char *query = memchr(p, '?', (size_t)(end - p));
	*has_query = query != NULL;
	*path = p;
	*path_len = (size_t)((query ? query : end) - p);
}

/* Puts "-" and the hash's hex digits before a short extension (".json"
 * stays last, for the tools that go by it), or at the end. */
static size_t insert_hash(char *name, size_t n, uint64_t h)
{
	static const char hex[] = "0123456789abcdef";
	size_t at = n;
	for (size_t i = n; i > 1 && n - i < RAW_EXT_BYTES_MAX; i--) {
		char c = name[i - 1];
		if (c == '.') {
			at = i - 1;
			break;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			break;
	}
	memmove(name + at + RAW_SUFFIX_BYTES, name + at, n - at);
	name[at] = '-';
	for (unsigned d = 0; d < RAW_HASH_HEX_DIGITS; d++)
		name[at + 1 + d] = hex[(h >> (60u - 4u * d)) & 0xfu];
	return n + RAW_SUFFIX_BYTES;
}

/* True when name[0..n) ends with "-" and 16 lowercase hex digits at the end
 * or before an extension ('.' and up to 9 letters or digits): as every name
 * insert_hash made does. A plain path whose name looks so is hashed too, or
 * /a/b-HASH.json could take the name /a_b.json was given. */
static bool looks_hashed(const char *name, size_t n)
{
	size_t ends[2] = {n, n};
	for (size_t i = n; i > 1 && n - i < RAW_EXT_BYTES_MAX; i--) { /* as insert_hash */
		char c = name[i - 1];
		if (c == '.') {
			ends[1] = i - 1;
			break;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			break;
	}
	for (unsigned e = 0; e < 2; e++) {
		size_t end = ends[e];
		if (end < RAW_SUFFIX_BYTES || name[end - RAW_SUFFIX_BYTES] != '-')
			continue;
		bool hex = true;
		for (size_t i = end - RAW_HASH_HEX_DIGITS; i < end && hex; i++)
			hex = (name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f');
		if (hex)
			return true;
	}
	return false;
}

int url_raw_name(const char *s, size_t len, char *out, size_t cap)
{
	const char *path;
	size_t path_len, hashed_len, n = 0;
	bool has_query;
	char name[RAW_NAME_BYTES_MAX + 1];
	assert(s != NULL && out != NULL);

	locate_path(s, len, &path, &path_len, &has_query, &hashed_len);
	size_t slashes = 0;
	while (path_len > 0 && path[0] == '/') { /* "/a/b" names "a_b", not "_a_b" */
		path++;
		path_len--;
		slashes++;
	}
	/* Names must be one-to-one with paths, or two jobs would share a file.
	 * Mapping '/' to '_' is one-to-one only on paths made of name bytes
	 * other than '_'; any other path (a '_', a replaced byte, a leading
	 * '.', "" or "//x") gets the URL's hash as well. */
	bool altered = slashes != 1 || path_len == 0 || path[0] == '.';
	for (size_t i = 0; i < path_len && !altered; i++) {
		unsigned char c = (unsigned char)path[i];
		altered = c == '_' || (c != '/' && !is_name_char(c));
	}
	bool cut = path_len > RAW_NAME_BYTES_MAX;
	bool suffix = cut || has_query || altered;
	size_t base_max = suffix ? RAW_NAME_BYTES_MAX - RAW_SUFFIX_BYTES : RAW_NAME_BYTES_MAX;
	for (size_t i = 0; i < path_len && n < base_max; i++) {
		unsigned char c = (unsigned char)path[i];
		name[n++] = is_name_char(c) ? (char)c : '_';
	}
	if (n == 0) {
		memcpy(name, "index", 5);
		n = 5;
	}
	/* A leading '.' could make ".", ".." or a hidden file. */
	if (name[0] == '.')
		name[0] = '_';
	if (!suffix && looks_hashed(name, n)) {
		suffix = true;
		if (n > RAW_NAME_BYTES_MAX - RAW_SUFFIX_BYTES)
			n = RAW_NAME_BYTES_MAX - RAW_SUFFIX_BYTES;
	}
	if (suffix)
		n = insert_hash(name, n, fnv1a64(s, hashed_len));
	assert(n > 0 && n <= RAW_NAME_BYTES_MAX && name[0] != '.');
	if (n + 1 > cap)
		return -ENOSPC;
	memcpy(out, name, n);
	out[n] = '\0';
	return (int)n;
}

int url_host_dirname(const char *host, uint16_t port, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	char d[3 * URL_HOST_BYTES_MAX + 8];
	size_t n = 0;
	for (const char *p = host; *p && n + 3 < 3 * URL_HOST_BYTES_MAX; p++) {
		unsigned char c = (unsigned char)*p;
		bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		            (c == '.' && p != host);
		if (keep) {
			d[n++] = (char)c;
		} else {
			d[n++] = '%';
			d[n++] = hex[c >> 4];
			d[n++] = hex[c & 15];
		}
	}
	if (n == 0)
		d[n++] = '%'; /* no host: a name no host spells */
	if (port != 443)
		n += (size_t)snprintf(d + n, 8, "_%u", port);
	if (n > URL_HOST_DIRNAME_BYTES - 1) {
		/* "%h": no name of bytes kept or escaped (%XX, XX upper-case hex)
		 * spells it, so a cut name never meets another name. */
		uint64_t f = fnv1a64(host, strlen(host));
		f = (f ^ port) * 1099511628211u;
		n = URL_HOST_DIRNAME_BYTES - 1;
		snprintf(d + n - 2 - RAW_HASH_HEX_DIGITS, 3 + RAW_HASH_HEX_DIGITS, "%%h%016llx",
		         (unsigned long long)f);
	}
	if (n + 1 > cap)
		return -ENOSPC;
	memcpy(out, d, n);
	out[n] = '\0';
	return (int)n;
}

long url_percent_encode(const char *s, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		            c == '-' || c == '.' || c == '_' || c == '~';
		if (n + (keep ? 1 : 3) >= cap)
			return -1;
		if (keep) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
	return (long)n;
}

bool url_template_dot_segment(const char *tmpl, const char *open, const char *close,
                              const char *v, size_t n)
{
	/* The path starts at the first '/' after "scheme://host"; a placeholder
	 * before it (in the host) or after a '?' or '#' is in no segment. */
	const char *auth = strstr(tmpl, "://");
	const char *path = auth ? strchr(auth + 3, '/') : strchr(tmpl, '/');
	if (!path || open < path)
		return false;
	for (const char *p = tmpl; p < open; p++)
		if (*p == '?' || *p == '#')
			return false;
	/* The segment: from the last '/' before the placeholder to the first
	 * '/', '?' or '#' after it, the value in its place. */
	const char *a = open;
	while (a[-1] != '/')
		a--;
	const char *b = close + 1;
	while (*b && *b != '/' && *b != '?' && *b != '#')
		b++;
	size_t pre = (size_t)(open - a), post = (size_t)(b - close - 1), len = pre + n + post;
	if (len > 2)
		return false;
	char seg[3];
	memcpy(seg, a, pre);
	memcpy(seg + pre, v, n);
	memcpy(seg + pre + n, close + 1, post);
	return len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.');
}
