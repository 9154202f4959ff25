/* tests/net/test_gzip.c: streaming gzip decoding (net/gzip.c): any split of
 * the input decodes to the same bytes, concatenated members decode in order,
 * corrupt and oversized data are refused with a reason and an offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/gzip.h"

static unsigned char *gz_make(const char *data, size_t n, size_t *out_len)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, (uLong)n);
	unsigned char *out = malloc(cap);
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

static char *sample(size_t *n)
{
	size_t cap = 200000, len = 0;
	char *s = malloc(cap);
	for (int i = 0; len + 64 < cap; i++)
		len += (size_t)snprintf(s + len, cap - len, "{\"n\":%d,\"t\":\"caf\xc3\xa9 %d\"},", i, i * 7);
	*n = len;
	return s;
}

/* Feeds enc in pieces of `piece` bytes; returns the last gzip_feed result. */
static int decode(const unsigned char *enc, size_t n, size_t piece, json_buf_t *out,
                  uint64_t max, gzip_dec_t *g, const char **why, uint64_t *at)
{
	assert_int_equal(gzip_init(g), 0);
	int r = 0;
	for (size_t off = 0; off < n && r == 0; off += piece)
		r = gzip_feed(g, enc + off, off + piece <= n ? piece : n - off, out, max, why, at);
	return r;
}

static void test_any_split_decodes_the_same(void **state)
{
	(void)state;
	size_t n, en;
	char *doc = sample(&n);
	unsigned char *enc = gz_make(doc, n, &en);
	static const size_t pieces[] = {1, 2, 3, 7, 64, 1000, 4096, 65536, 1 << 30};
	for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
		json_buf_t out = {0};
		gzip_dec_t g;
		const char *why = NULL;
		uint64_t at = 0;
		assert_int_equal(decode(enc, en, pieces[i], &out, UINT64_MAX, &g, &why, &at), 0);
		assert_true(g.ended);
		assert_int_equal(out.len, n);
		assert_memory_equal(out.data, doc, n);
		gzip_end(&g);
		json_buf_free(&out);
	}
	free(enc);
	free(doc);
}

static void test_members_concatenate(void **state)
{
	(void)state;
	size_t n, e1, e2;
	char *doc = sample(&n);
	unsigned char *a = gz_make(doc, n / 3, &e1);
	unsigned char *b = gz_make(doc + n / 3, n - n / 3, &e2);
	unsigned char *both = malloc(e1 + e2);
	memcpy(both, a, e1);
	memcpy(both + e1, b, e2);
	json_buf_t out = {0};
	gzip_dec_t g;
	const char *why;
	uint64_t at;
	assert_int_equal(decode(both, e1 + e2, 777, &out, UINT64_MAX, &g, &why, &at), 0);
	assert_true(g.ended);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.data, doc, n);
	gzip_end(&g);
	json_buf_free(&out);
	free(a);
	free(b);
	free(both);
	free(doc);
}

static void test_corrupt_data_names_a_byte(void **state)
{
	(void)state;
	size_t n, en;
	char *doc = sample(&n);
	unsigned char *enc = gz_make(doc, n, &en);
	memset(enc + 100, 0xff, 64); /* inside the deflate data */
	json_buf_t out = {0};
	gzip_dec_t g;
	const char *why = NULL;
	uint64_t at = 0;
	assert_int_equal(decode(enc, en, 50, &out, UINT64_MAX, &g, &why, &at), GZIP_ERROR);
	assert_non_null(why);
	assert_true(at >= 100 && at <= en);
	gzip_end(&g);
	json_buf_free(&out);

	/* not gzip at all: refused at the header */
	memset(&out, 0, sizeof out);
	assert_int_equal(decode((const unsigned char *)"{\"a\":1}", 7, 7, &out, UINT64_MAX, &g,
	                        &why, &at),
	                 GZIP_ERROR);
	assert_true(at <= 2);
	gzip_end(&g);
	json_buf_free(&out);
	free(enc);
	free(doc);
}

static void test_output_is_bounded(void **state)
{
	(void)state;
	size_t n = 4u << 20, en; /* 4 MiB of zeros compress to a few KiB */
	char *zeros = calloc(1, n);
	unsigned char *enc = gz_make(zeros, n, &en);
	assert_true(en < 64 * 1024);
	json_buf_t out = {0};
	gzip_dec_t g;
	const char *why;
	uint64_t at;
	assert_int_equal(decode(enc, en, en, &out, 1u << 20, &g, &why, &at), GZIP_TOO_LARGE);
	assert_true(out.len <= 1u << 20);
	gzip_end(&g);
	json_buf_free(&out);
	free(enc);
	free(zeros);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_any_split_decodes_the_same),
	    cmocka_unit_test(test_members_concatenate),
	    cmocka_unit_test(test_corrupt_data_names_a_byte),
	    cmocka_unit_test(test_output_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
