/* tests/net/test_url.c: proves net/url.c accepts the https URLs jobs use,
 * rejects every malformed kind with its reason, and derives raw-file names
 * that can never leave the raw directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/url.h"

static int parse(const char *s, url_t *u, const char **reason)
{
	*reason = NULL;
	return url_parse(s, strlen(s), u, reason);
}

static void expect_target(const url_t *u, const char *target)
{
	assert_int_equal(u->target_len, strlen(target));
	assert_memory_equal(u->target, target, u->target_len);
}

static void test_good_urls(void **state)
{
	(void)state;
	url_t u;
	const char *why;
	assert_int_equal(parse("https://Example.COM/a/b?x=1&y=%2F#frag", &u, &why), 0);
	assert_string_equal(u.host, "example.com");
	assert_int_equal(u.port, 443);
	assert_int_equal(u.host_is_ipv6, 0);
	expect_target(&u, "/a/b?x=1&y=%2F");

	assert_int_equal(parse("HTTPS://api.example.com:8443", &u, &why), 0);
	assert_string_equal(u.host, "api.example.com");
	assert_int_equal(u.port, 8443);
	expect_target(&u, "/");

	assert_int_equal(parse("https://h/#only-fragment", &u, &why), 0);
	expect_target(&u, "/");
	assert_int_equal(parse("https://h#f", &u, &why), 0);
	expect_target(&u, "/");
	assert_int_equal(parse("https://h?q=1", &u, &why), 0);
	expect_target(&u, "?q=1");

	assert_int_equal(parse("https://10.0.0.255:1/x", &u, &why), 0);
	assert_string_equal(u.host, "10.0.0.255");
	assert_int_equal(u.port, 1);
	assert_int_equal(parse("https://my_host-1.example.org./", &u, &why), 0);
	assert_int_equal(parse("https://h:65535/", &u, &why), 0);
	assert_int_equal(u.port, 65535);
	/* target points into the string, not a copy */
	const char *s = "https://h/p";
	assert_int_equal(url_parse(s, strlen(s), &u, &why), 0);
	assert_ptr_equal(u.target, s + 9);
}

static void test_ipv6(void **state)
{
	(void)state;
	url_t u;
	const char *why;
	assert_int_equal(parse("https://[2001:DB8::1]:8443/v1", &u, &why), 0);
	assert_string_equal(u.host, "2001:db8::1");
	assert_int_equal(u.host_is_ipv6, 1);
	assert_int_equal(u.port, 8443);
	expect_target(&u, "/v1");
	assert_int_equal(parse("https://[::1]/", &u, &why), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 443);
	assert_int_equal(parse("https://[::ffff:192.0.2.1]", &u, &why), 0);
	assert_int_equal(parse("https://[1:2:3:4:5:6:7:8]/", &u, &why), 0);
	assert_int_equal(parse("https://[::]/", &u, &why), 0);

	const char *bad[] = {"https://[::1/", "https://[]/", "https://[1:2:3:4:5:6:7:8:9]/",
	                     "https://[1::2::3]/", "https://[12345::1]/", "https://[fe80::1%25eth0]/",
	                     "https://[g::1]/", "https://[1:2:3:4:5:6:7]/", "https://[:1::2]/"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &u, &why), -1);
		assert_non_null(why);
	}
	assert_int_equal(parse("https://[::1]x/", &u, &why), -1);
}

typedef struct {
	const char *url;
	const char *reason;
} bad_url_t;

static void test_bad_urls(void **state)
{
	(void)state;
	static const bad_url_t cases[] = {
	    {"http://example.com/", "not an https URL"},
	    {"ftp://example.com/", "not an https URL"},
	    {"example.com/a", "not an https URL"},
	    {"https:/example.com", "not an https URL"},
	    {"", "not an https URL"},
	    {"https://user:pw@example.com/", "user information (user@) is not allowed in URLs"},
	    {"https://@example.com/", "user information (user@) is not allowed in URLs"},
	    {"https://exa mple.com/", "space in URL (percent-encode it as %20)"},
	    {"https://example.com/a b", "space in URL (percent-encode it as %20)"},
	    {"https://example.com/\t", "control byte in URL"},
	    {"https://example.com/\x7f", "control byte in URL"},
	    {"https://example.com/\r\nHost: x", "control byte in URL"},
	    {"https://example.com/caf\xc3\xa9", "non-ASCII byte in URL (percent-encode it)"},
	    {"https:///path", "missing host"},
	    {"https://:443/", "missing host"},
	    {"https://", "missing host"},
	    {"https://exa$mple.com/", "bad host name"},
	    {"https://a..b/", "bad host name"},
	    {"https://.a/", "bad host name"},
	    {"https://256.1.1.1/", "bad host name"},
	    {"https://1.2.3/", "bad host name"},
	    {"https://01.2.3.4/", "bad host name"},
	    {"https://example.com:0/", "bad port"},
	    {"https://example.com:65536/", "bad port"},
	    {"https://example.com:/", "bad port"},
	    {"https://example.com:44a/", "bad port"},
	    {"https://example.com:000443/", "bad port"},
	    {"https://example.com:-1/", "bad port"},
	    {"https://example.com/a%2", "bad percent-encoding in URL"},
	    {"https://example.com/a%zz", "bad percent-encoding in URL"},
	    {"https://example.com/a<b", "character not allowed in URL path or query (percent-encode it)"},
	    {"https://example.com/{x}", "character not allowed in URL path or query (percent-encode it)"},
	    {"https://example.com/a\\b", "character not allowed in URL path or query (percent-encode it)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		url_t u;
		const char *why = NULL;
		int rc = url_parse(cases[i].url, strlen(cases[i].url), &u, &why);
		if (rc != -1 || why == NULL || strcmp(why, cases[i].reason) != 0)
			fail_msg("%s: rc %d reason '%s', want '%s'", cases[i].url, rc,
			         why ? why : "(null)", cases[i].reason);
	}
}

static void test_limits(void **state)
{
	(void)state;
	static char s[URL_BYTES_MAX + 2];
	url_t u;
	const char *why;
	/* a NUL inside the given length is a control byte, not an end */
	assert_int_equal(url_parse("https://h/\0x", 12, &u, &why), -1);
	assert_string_equal(why, "control byte in URL");

	memset(s, 'a', sizeof(s) - 1);
	memcpy(s, "https://h/", 10);
	assert_int_equal(url_parse(s, URL_BYTES_MAX, &u, &why), 0);
	assert_int_equal(u.target_len, URL_BYTES_MAX - 9);
	assert_int_equal(url_parse(s, URL_BYTES_MAX + 1, &u, &why), -1);
	assert_string_equal(why, "URL too long");

	/* 255-byte host accepted, 256 rejected (labels of 63) */
	char host[300];
	size_t n = 0;
	while (n < 256) {
		memset(host + n, 'x', 63);
		n += 63;
		host[n++] = '.';
	}
	snprintf(s, sizeof(s), "https://%.*s/", 255, host);
	assert_int_equal(parse(s, &u, &why), 0);
	assert_int_equal(strlen(u.host), 255);
	snprintf(s, sizeof(s), "https://%.*s/", 256, host);
	assert_int_equal(parse(s, &u, &why), -1);
	assert_string_equal(why, "host name too long");
	snprintf(s, sizeof(s), "https://%064d.com/", 0);
	assert_int_equal(parse(s, &u, &why), -1);
	/* NULL reason is allowed */
	assert_int_equal(url_parse("http://x/", 9, &u, NULL), -1);
}

/* ---- raw names -------------------------------------------------------- */

static int name_of(const char *url, char *out, size_t cap)
{
	int n = url_raw_name(url, strlen(url), out, cap);
	if (n >= 0) {
		assert_int_equal((size_t)n, strlen(out));
		assert_true(n > 0 && n <= (int)RAW_NAME_BYTES_MAX);
		assert_null(strchr(out, '/'));
		assert_true(out[0] != '.');
		assert_string_not_equal(out, ".");
		assert_string_not_equal(out, "..");
		for (int i = 0; i < n; i++)
			assert_non_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			                       "0123456789._-",
			                       out[i]));
	}
	return n;
}

static void test_raw_name_basic(void **state)
{
	(void)state;
	char out[RAW_NAME_BYTES_MAX + 1];
	assert_int_equal(name_of("https://h/data/2024/x.json", out, sizeof(out)), 16);
	assert_string_equal(out, "data_2024_x.json");
	name_of("https://h/index", out, sizeof(out));
	assert_string_equal(out, "index");
	/* "" is not "/index": the empty path gets the hash */
	name_of("https://h/", out, sizeof(out));
	assert_memory_equal(out, "index-", 6);
	assert_int_equal(strlen(out), 5 + 1 + 16);
	name_of("https://h/a.json#frag", out, sizeof(out));
	assert_string_equal(out, "a.json");
	/* replaced bytes add the hash, before a short extension */
	name_of("https://h/a b~c.json", out, sizeof(out));
	assert_memory_equal(out, "a_b_c-", 6);
	assert_string_equal(out + 6 + 16, ".json");

	/* with a query: base, '-', 16 hex digits */
	int n = name_of("https://h/list?page=2", out, sizeof(out));
	assert_int_equal(n, 4 + 1 + 16);
	assert_memory_equal(out, "list-", 5);
	name_of("https://h/?page=2", out, sizeof(out));
	assert_memory_equal(out, "index-", 6);

	/* deterministic */
	char again[RAW_NAME_BYTES_MAX + 1];
	name_of("https://h/list?page=2", out, sizeof(out));
	name_of("https://h/list?page=2", again, sizeof(again));
	assert_string_equal(out, again);
}

static void test_raw_name_traversal(void **state)
{
	(void)state;
	static const char *const urls[] = {
	    "https://h/../../etc/passwd", "https://h/..", "https://h/.", "https://h/.hidden",
	    "https://h/%2e%2e", "https://h/%2e%2e/%2e%2e/etc", "https://h/..%2f..%2fetc",
	    "https://h//..//..", "https://h/./", "https://h/...", "https://h/a/../../b",
	    "https://h/..?x=/../", "https://h/?/../..", "../../etc/passwd", "/..", "..", ".",
	    "", "https://h/\x01\xff", "https://h/...#/../..",
	};
	char out[RAW_NAME_BYTES_MAX + 1];
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		assert_true(name_of(urls[i], out, sizeof(out)) > 0);
	name_of("https://h/../../etc/passwd", out, sizeof(out));
	assert_memory_equal(out, "_._.._etc_passwd-", 17);
	name_of("https://h/..", out, sizeof(out));
	assert_int_equal(out[0], '_');
	assert_int_equal(strlen(out), 2 + 1 + 16);
	name_of("https://h/.hidden", out, sizeof(out));
	assert_memory_equal(out, "_hidden-", 8);
	name_of("https://h/%2e%2e", out, sizeof(out));
	assert_memory_equal(out, "_2e_2e-", 7);
}

static void test_raw_name_long_and_queries(void **state)
{
	(void)state;
	static char url[URL_BYTES_MAX];
	char a[RAW_NAME_BYTES_MAX + 1], b[RAW_NAME_BYTES_MAX + 1];
	/* a path of exactly the cap keeps its name; one byte more gets a hash */
	memcpy(url, "https://h/", 10);
	memset(url + 10, 'p', RAW_NAME_BYTES_MAX);
	url[10 + RAW_NAME_BYTES_MAX] = '\0';
	assert_int_equal(name_of(url, a, sizeof(a)), RAW_NAME_BYTES_MAX);
	assert_null(strchr(a, '-'));
	url[10 + RAW_NAME_BYTES_MAX] = 'p';
	url[11 + RAW_NAME_BYTES_MAX] = '\0';
	assert_int_equal(name_of(url, a, sizeof(a)), RAW_NAME_BYTES_MAX);
	assert_int_equal(a[RAW_NAME_BYTES_MAX - 17], '-');

	/* very long paths sharing a prefix stay apart */
	memset(url + 10, 'q', 4000);
	strcpy(url + 4010, "/one");
	name_of(url, a, sizeof(a));
	strcpy(url + 4010, "/two");
	name_of(url, b, sizeof(b));
	assert_string_not_equal(a, b);

	/* same path, different queries: different names */
	name_of("https://h/items?id=1", a, sizeof(a));
	name_of("https://h/items?id=2", b, sizeof(b));
	assert_string_not_equal(a, b);
	/* the fragment is not fetched, so it does not change the name */
	name_of("https://h/items?id=1#x", b, sizeof(b));
	assert_string_equal(a, b);
	/* the query is part of the hash, not of the base name */
	assert_memory_equal(a, "items-", 6);
	assert_null(strchr(a, '='));
	assert_null(strchr(a, '?'));
}

/* Two different URLs on one host never share a raw file. */
static void test_raw_name_one_to_one(void **state)
{
	(void)state;
	static const char *const urls[] = {
	    "https://h/a/b", "https://h/a_b", "https://h/a%2fb", "https://h//a/b", "https://h/a/b/",
	    "https://h/a b", "https://h/a~b", "https://h/", "https://h/index", "https://h/.x",
	    "https://h/_x", "https://h/a/b.json", "https://h/a_b.json", "https://h/a%5fb.json",
	};
	enum { N = sizeof(urls) / sizeof(urls[0]) };
	char names[N][RAW_NAME_BYTES_MAX + 1];
	for (size_t i = 0; i < N; i++)
		name_of(urls[i], names[i], sizeof(names[i]));
	for (size_t i = 0; i < N; i++)
		for (size_t k = i + 1; k < N; k++)
			if (strcmp(names[i], names[k]) == 0)
				fail_msg("%s and %s share the raw name %s", urls[i], urls[k], names[i]);
}

/* A plain path whose name ends as a hashed one does ("-" and 16 hex digits,
 * before an extension or at the end) is hashed as well, so it cannot take
 * the name another URL was given. Before, /a/b-HASH.json (HASH the one
 * /a_b.json gets) was named a_b-HASH.json, the file of /a_b.json. */
static void test_raw_name_plain_path_shaped_like_a_hash(void **state)
{
	(void)state;
	static const char *const exts[] = {".json", "", ".ndjson"};
	for (size_t e = 0; e < sizeof(exts) / sizeof(*exts); e++) {
		char url[128], hashed[RAW_NAME_BYTES_MAX + 1], plain_url[300],
		    plain[RAW_NAME_BYTES_MAX + 1];
		snprintf(url, sizeof(url), "https://h/a_b%s", exts[e]);
		name_of(url, hashed, sizeof(hashed)); /* a_b-HASH.json */
		assert_int_equal(strncmp(hashed, "a_b-", 4), 0);
		snprintf(plain_url, sizeof(plain_url), "https://h/a/%s", hashed + 2);
		name_of(plain_url, plain, sizeof(plain));
		if (strcmp(plain, hashed) == 0)
			fail_msg("%s and %s share the raw name %s", url, plain_url, plain);
		assert_true(strlen(plain) > strlen(hashed)); /* its own hash added */
	}
	/* Names with fewer or other digits stay plain. */
	char out[RAW_NAME_BYTES_MAX + 1];
	name_of("https://h/a/b-0123456789abcde.json", out, sizeof(out));
	assert_string_equal(out, "a_b-0123456789abcde.json");
	name_of("https://h/a/b-0123456789ABCDEF.json", out, sizeof(out));
	assert_string_equal(out, "a_b-0123456789ABCDEF.json");
	name_of("https://h/a/b-0123456789abcdef.json", out, sizeof(out));
	assert_int_not_equal(strcmp(out, "a_b-0123456789abcdef.json"), 0);
}

/* The host's directory under --raw is one to one with (host, port): no two
 * of these share one, none is "", "." or "..", none holds a '/'. Before,
 * bytes outside [a-z0-9.-] became '_', so "a" on 8443 and "a_8443" on 443
 * (or "::1" and "__1") shared a directory, and a raw file another job's. */
static void test_host_dirname_one_to_one(void **state)
{
	(void)state;
	static const struct {
		const char *host;
		uint16_t port;
	} hosts[] = {{"a", 8443},  {"a_8443", 443}, {"a", 443},      {"::1", 443},  {"__1", 443},
	             {".x", 443},  {"_x", 443},     {"%2ex", 443},   {"x", 80},     {"x_80", 443},
	             {"", 443},    {"", 8443},      {"127.0.0.1", 443}, {"a.b-c", 443}};
	enum { N = sizeof(hosts) / sizeof(hosts[0]) };
	char names[N][URL_HOST_DIRNAME_BYTES];
	for (size_t i = 0; i < N; i++) {
		assert_true(url_host_dirname(hosts[i].host, hosts[i].port, names[i],
		                             sizeof(names[i])) > 0);
		assert_null(strchr(names[i], '/'));
		assert_int_not_equal(names[i][0], '.');
	}
	for (size_t i = 0; i < N; i++)
		for (size_t k = i + 1; k < N; k++)
			if (strcmp(names[i], names[k]) == 0)
				fail_msg("%s:%u and %s:%u share the directory %s", hosts[i].host,
				         hosts[i].port, hosts[k].host, hosts[k].port, names[i]);
	/* Plain names stay as they were: earlier runs' directories are found. */
	char out[URL_HOST_DIRNAME_BYTES];
	url_host_dirname("example.com", 443, out, sizeof(out));
	assert_string_equal(out, "example.com");
	url_host_dirname("127.0.0.1", 8443, out, sizeof(out));
	assert_string_equal(out, "127.0.0.1_8443");
	url_host_dirname("::1", 8443, out, sizeof(out));
	assert_string_equal(out, "%3A%3A1_8443");
	/* At most NAME_MAX bytes, two long hosts still apart. */
	char h1[256], h2[256], o1[URL_HOST_DIRNAME_BYTES], o2[URL_HOST_DIRNAME_BYTES];
	memset(h1, '_', 253), h1[253] = 0;
	memcpy(h2, h1, sizeof(h2)), h2[252] = 'x';
	assert_int_equal(url_host_dirname(h1, 443, o1, sizeof(o1)), 255);
	assert_int_equal(url_host_dirname(h2, 443, o2, sizeof(o2)), 255);
	assert_string_not_equal(o1, o2);
	/* A cut name ends in "%h" and its hash, which no host of 255 bytes
	 * spelled out can copy (before: "-" and the hash, which one could). */
	assert_int_equal(memcmp(o1 + 255 - 18, "%h", 2), 0);
	char h3[256], o3[URL_HOST_DIRNAME_BYTES], o4[URL_HOST_DIRNAME_BYTES];
	memset(h3, 'a', 252), h3[252] = 0;
	assert_int_equal(url_host_dirname(h3, 8443, o3, sizeof(o3)), 255);
	char h4[256];
	memcpy(h4, o3, 256); /* the cut name spelled out as a host of its own */
	for (char *q = h4; *q; q++)
		*q = *q == '%' ? '-' : *q;
	assert_true(url_host_dirname(h4, 443, o4, sizeof(o4)) > 0);
	assert_string_not_equal(o3, o4);
	assert_int_equal(url_host_dirname("a", 443, o1, 1), -ENOSPC);
}

static void test_raw_name_capacity(void **state)
{
	(void)state;
	char out[8];
	assert_int_equal(url_raw_name("https://h/abcdefg", 17, out, sizeof(out)), 7);
	assert_int_equal(url_raw_name("https://h/abcdefgh", 18, out, sizeof(out)), -ENOSPC);
	assert_int_equal(url_raw_name("https://h/index", 15, out, 5), -ENOSPC);
	assert_int_equal(url_raw_name("https://h/index", 15, out, 6), 5);
}

/* A template value that would be a whole path segment resolved away:
 * empty, "." or ".." between '/' and '/' (or the path's end, '?', '#');
 * elsewhere (part of a segment, in the query) the same values are fine. */
static bool dot(const char *tmpl, const char *v)
{
	const char *open = strchr(tmpl, '{'), *close = strchr(tmpl, '}');
	return url_template_dot_segment(tmpl, open, close, v, strlen(v));
}

static void test_template_dot_segment(void **state)
{
	(void)state;
	const char *seg = "https://h/users/{name}/archive.json";
	assert_true(dot(seg, ".."));
	assert_true(dot(seg, "."));
	assert_true(dot(seg, ""));
	assert_false(dot(seg, "..."));
	assert_false(dot(seg, ".a"));
	assert_false(dot(seg, "alice"));
	assert_true(dot("https://h/u/{name}", ".."));
	assert_true(dot("https://h/u/{name}?x=1", "."));
	assert_true(dot("https://h/u/{name}#f", ".."));
	assert_false(dot("https://h/u/{name}.json", ".."));
	assert_false(dot("https://h/u/x{name}/a", ".."));
	assert_false(dot("https://h/u?user={name}", ".."));
	assert_false(dot("https://h/u?next=/{name}/", ".."));
	/* The segment with what the template puts around the value. */
	assert_true(dot("https://h/.{name}/x", "."));
	assert_true(dot("https://h/{name}./x", "."));
	assert_true(dot("https://h/.{name}/x", ""));
	assert_false(dot("https://h/.{name}/x", ".."));
	assert_true(dot("https://h/{name}", ".."));
	assert_false(dot("https://{name}/x", ".."));  /* the host: no segment */
	assert_false(dot("https://{name}.h/x", "."));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_urls),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_bad_urls),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_raw_name_basic),
	    cmocka_unit_test(test_raw_name_traversal),
	    cmocka_unit_test(test_raw_name_long_and_queries),
	    cmocka_unit_test(test_raw_name_one_to_one),
	    cmocka_unit_test(test_raw_name_capacity),
	    cmocka_unit_test(test_raw_name_plain_path_shaped_like_a_hash),
	    cmocka_unit_test(test_host_dirname_one_to_one),
	    cmocka_unit_test(test_template_dot_segment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
