/* tests/parse/test_json_stage1_diff.c: every stage-1 kernel this CPU runs
 * gives exactly the scalar kernel's index and error (offset and reason), with
 * and without '\n' entries (NDJSON), and every kernel (scalar too) the
 * backslash map of the input, valid or not. The scalar kernel's '\n' entries
 * are checked against the bytes: its plain index plus every '\n'.
 *
 * Inputs: JSONTestSuite (argv[1]) and every prefix of each case, the corpus
 * (argv[2]) whole, its prefixes around 64-byte block edges and random windows
 * of it, then seeded random and mutated inputs built to straddle block edges
 * (backslash runs, quotes, multi-byte and broken UTF-8, control bytes).
 * Each input sits in a buffer of exactly its size, so ASan sees overreads.
 * DIFF_SEED and DIFF_RANDOM_INPUTS in the environment change the random part. */
#include <dirent.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse/json.h"
#include "parse/json_internal.h"

#define FILES_MAX 1024u
#define SUITE_FILES_MIN 300u    /* so the test cannot pass on an empty directory */
#define CORPUS_FILES_MIN 3u
#define INPUT_BYTES_MAX (8u << 20) /* the biggest file the test loads */
#define BLOCK_BYTES 64u
#define EDGE_PREFIX_BYTES (32u << 10) /* prefixes near every block edge up to here */
#define WINDOWS_PER_FILE 3000u
#define WINDOW_BYTES_MAX 1024u
#define RANDOM_INPUTS_DEFAULT 300000u
#define RANDOM_BYTES_MAX 400u
#define SEED_DEFAULT 0x5eed0f1e1d5ull

typedef struct {
	char *data;
	size_t len;
	char name[256];
} file_t;

typedef struct {
	file_t files[FILES_MAX];
	size_t n;
} fileset_t;

static fileset_t suite, corpus;
static const json_stage1_kernel_t *kernels;
static size_t n_kernels;
static uint32_t *idx_ref, *idx_got; /* INPUT_BYTES_MAX + slack entries each */
static uint64_t *bs_ref, *bs_got;   /* backslash maps of INPUT_BYTES_MAX bytes (+ 1 word) */
static uint32_t *idx_plain;         /* the scalar index without '\n' entries */
static unsigned long long compared;
static unsigned long long clean; /* inputs the SIMD kernels finish without the scalar one */

static int load_dir(const char *dir, fileset_t *set)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "cannot open %s\n", dir);
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL && set->n < FILES_MAX) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof set->files[0].name)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		rewind(f);
		file_t *fl = &set->files[set->n];
		fl->len = (size_t)n;
		fl->data = malloc(fl->len ? fl->len : 1);
		if (n >= 0 && (size_t)n <= INPUT_BYTES_MAX && fl->data &&
		    fread(fl->data, 1, fl->len, f) == fl->len) {
			strcpy(fl->name, e->d_name);
			set->n++;
		} else {
			free(fl->data);
		}
		fclose(f);
	}
	closedir(d);
	return 0;
}

static void print_input(const char *what, const char *src, size_t len)
{
	fprintf(stderr, "input (%s, %zu bytes):", what, len);
	for (size_t i = 0; i < len && i < 512; i++)
		fprintf(stderr, " %02x", (unsigned char)src[i]);
	fprintf(stderr, "\n");
}

/* Length of the valid UTF-8 sequence at s[i] (non-ASCII), or 0: Unicode
 * table 3-7, written independently of the parser's own check. */
static size_t utf8_len(const unsigned char *s, size_t i, size_t len)
{
	static const struct { unsigned char lo, hi, lo2, hi2; size_t n; } forms[] = {
		{0xC2, 0xDF, 0x80, 0xBF, 2}, {0xE0, 0xE0, 0xA0, 0xBF, 3}, {0xE1, 0xEC, 0x80, 0xBF, 3},
		{0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3}, {0xF0, 0xF0, 0x90, 0xBF, 4},
		{0xF1, 0xF3, 0x80, 0xBF, 4}, {0xF4, 0xF4, 0x80, 0x8F, 4},
	};
	for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
		if (s[i] < forms[f].lo || s[i] > forms[f].hi)
			continue;
		size_t n = forms[f].n;
		if (len - i < n || s[i + 1] < forms[f].lo2 || s[i + 1] > forms[f].hi2)
			return 0;
		for (size_t k = 2; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		return n;
	}
	return 0;
}

/* True when a SIMD kernel never needs the scalar kernel for this input:
 * all of it valid UTF-8, no backslash outside a string, and (checked by
 * the caller) no stage-1 error. Counting these shows the SIMD code itself
 * is what the test compares, not the hand-over. */
static bool simd_only(const char *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src;
	bool in_string = false;
	for (size_t i = 0; i < len;) {
		if (s[i] >= 0x80) {
			size_t n = utf8_len(s, i, len);
			if (n == 0)
				return false;
			i += n;
		} else if (s[i] == '\\') {
			if (!in_string)
				return false;
			i += 2;
		} else {
			in_string ^= s[i] == '"';
			i++;
		}
	}
	return true;
}

/* The scalar kernel's index with '\n' entries (idx_ref[0, n_ref)) is its
 * index without them (idx_plain[0, n_plain)) with every '\n' of src merged
 * in, for a valid input (where no '\n' can sit inside a string). */
static void check_newline_entries(const char *what, const char *src, size_t len, uint32_t n_ref,
                                  uint32_t n_plain)
{
	uint32_t a = 0, b = 0;
	for (uint32_t i = 0; i < len; i++) {
		bool nl = src[i] == '\n', plain = b < n_plain && idx_plain[b] == i;
		if (!nl && !plain)
			continue;
		if (a == n_ref || idx_ref[a] != i) {
			fprintf(stderr, "scalar: entry %u with newlines is not byte %u\n", a, i);
			print_input(what, src, len);
			fail();
		}
		a++;
		b += plain;
	}
	if (a != n_ref) {
		fprintf(stderr, "scalar: %u entries with newlines, expected %u\n", n_ref, a);
		print_input(what, src, len);
		fail();
	}
}

/* Every kernel on src, with or without '\n' entries (the plain run first:
 * it leaves its index in idx_plain). */
static void compare_mode(const char *what, const char *src, size_t len, bool newlines)
{
	static uint32_t n_plain;
	json_error_t e_ref = {0};
	uint32_t n_ref = 0;
	size_t words = JSON_BSLASH_MAP_WORDS(len);
	memset(bs_ref, 0, (words + 1) * sizeof *bs_ref);
	for (size_t i = 0; i < len; i++)
		if (src[i] == '\\')
			bs_ref[i / JSON_BSLASH_MAP_BYTES] |= 1ull << (i % JSON_BSLASH_MAP_BYTES);
	int r_ref = json_stage1_scalar(src, (uint32_t)len, idx_ref, &n_ref, NULL, newlines, &e_ref);
	if (!newlines) {
		clean += r_ref == 0 && simd_only(src, len);
		memcpy(idx_plain, idx_ref, n_ref * sizeof *idx_ref);
		n_plain = n_ref;
	} else if (r_ref == 0) {
		check_newline_entries(what, src, len, n_ref, n_plain);
	}
	for (size_t k = 0; k < n_kernels; k++) {
		json_error_t e = {0};
		uint32_t n = 0;
		/* A word past the map that no kernel may write. */
		memset(bs_got, 0xA5, (words + 1) * sizeof *bs_got);
		int r = kernels[k].fn(src, (uint32_t)len, idx_got, &n, bs_got, newlines, &e);
		if (memcmp(bs_got, bs_ref, words * sizeof *bs_got) != 0 ||
		    bs_got[words] != 0xA5A5A5A5A5A5A5A5ull) {
			fprintf(stderr, "%s: wrong backslash map\n", kernels[k].name);
			print_input(what, src, len);
			fail();
		}
		if (kernels[k].fn == json_stage1_scalar)
			continue;
		bool same = r == r_ref && n == n_ref &&
		            memcmp(idx_got, idx_ref, n * sizeof *idx_got) == 0;
		if (same && r < 0)
			same = e.offset == e_ref.offset && e.reason == e_ref.reason;
		if (!same) {
			fprintf(stderr, "%s%s differs from scalar: r %d/%d, n %u/%u, error %zu %s / %zu %s\n",
			        kernels[k].name, newlines ? " (newlines)" : "", r, r_ref, n, n_ref,
			        e.offset, e.reason ? e.reason : "-",
			        e_ref.offset, e_ref.reason ? e_ref.reason : "-");
			for (uint32_t i = 0; i < n && i < n_ref; i++)
				if (idx_got[i] != idx_ref[i]) {
					fprintf(stderr, "first index difference: entry %u: %u / %u\n", i,
					        idx_got[i], idx_ref[i]);
					break;
				}
			print_input(what, src, len);
			fail();
		}
	}
}

/* Runs every kernel on src (which must be an exact-size allocation) and
 * fails the test at the first difference from scalar. */
static void compare_at(const char *what, const char *src, size_t len)
{
	compare_mode(what, src, len, false);
	compare_mode(what, src, len, true);
	compared++;
}

/* The same on a fresh exact-size copy of src[0, len). */
static void compare_copy(const char *what, const char *src, size_t len)
{
	char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, src, len);
	compare_at(what, copy, len);
	free(copy);
}

static int setup(void **state)
{
	(void)state;
	n_kernels = json_stage1_kernels(&kernels);
	idx_ref = malloc((INPUT_BYTES_MAX + JSON_STAGE1_IDX_SLACK) * sizeof *idx_ref);
	idx_got = malloc((INPUT_BYTES_MAX + JSON_STAGE1_IDX_SLACK) * sizeof *idx_got);
	bs_ref = malloc((JSON_BSLASH_MAP_WORDS(INPUT_BYTES_MAX) + 1) * sizeof *bs_ref);
	bs_got = malloc((JSON_BSLASH_MAP_WORDS(INPUT_BYTES_MAX) + 1) * sizeof *bs_got);
	idx_plain = malloc((INPUT_BYTES_MAX + JSON_STAGE1_IDX_SLACK) * sizeof *idx_plain);
	if (!idx_ref || !idx_got || !bs_ref || !bs_got || !idx_plain)
		return -1;
	printf("kernels:");
	for (size_t k = 0; k < n_kernels; k++)
		printf(" %s", kernels[k].name);
	printf("\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < suite.n; i++)
		free(suite.files[i].data);
	for (size_t i = 0; i < corpus.n; i++)
		free(corpus.files[i].data);
	free(idx_ref);
	free(idx_got);
	free(bs_ref);
	free(bs_got);
	free(idx_plain);
	return 0;
}

static void inputs_are_there(void **state)
{
	(void)state;
	assert_true(suite.n >= SUITE_FILES_MIN);
	assert_true(corpus.n >= CORPUS_FILES_MIN);
	assert_true(n_kernels >= 1 && kernels[n_kernels - 1].fn == json_stage1_scalar);
}

/* Whole JSONTestSuite cases and every prefix of each (up to a few blocks
 * past the first 4 KiB of the big ones), and json_parse giving the same
 * result through each kernel. */
static void suite_cases_agree(void **state)
{
	(void)state;
	json_parser_t *p = json_parser_new(0);
	assert_non_null(p);
	for (size_t i = 0; i < suite.n; i++) {
		const file_t *f = &suite.files[i];
		compare_at(f->name, f->data, f->len);
		size_t max = f->len < 4096 ? f->len : 4096;
		for (size_t len = 0; len < max; len++)
			compare_copy(f->name, f->data, len);
		json_error_t e_ref = {0};
		json_doc_t doc;
		assert_int_equal(json_stage1_use("scalar"), 0);
		int r_ref = json_parse(p, f->data, f->len, &doc, &e_ref);
		for (size_t k = 0; k < n_kernels; k++) {
			json_error_t e = {0};
			assert_int_equal(json_stage1_use(kernels[k].name), 0);
			int r = json_parse(p, f->data, f->len, &doc, &e);
			assert_int_equal(r, r_ref);
			if (r < 0) {
				assert_int_equal(e.offset, e_ref.offset);
				assert_string_equal(e.reason, e_ref.reason);
				assert_int_equal(e.line, e_ref.line);
			}
		}
	}
	assert_int_equal(json_stage1_use(kernels[0].name), 0);
	json_parser_free(p);
}

/* Each of these byte strings at every position around the first two block
 * edges, inside a string and outside, followed by ASCII or by more of the
 * same: UTF-8 of every length, every kind of invalid UTF-8 (including a lead
 * byte left last in a block before an all-ASCII block), backslash runs of
 * both parities before a quote, and control bytes. */
static void edges_agree(void **state)
{
	(void)state;
	static const char *const probes[] = {
		"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf",
		"\xc0", "\xc1\xbf", "\xc2", "\xdf", "\xe0", "\xe0\x80\x80", "\xe0\xa0", "\xed\xa0\x80",
		"\xef\xbf", "\xf0", "\xf0\x80\x80\x80", "\xf0\x9f", "\xf0\x9f\x98", "\xf4\x90\x80\x80",
		"\xf5", "\xf8", "\xff", "\x80", "\xbf", "\xc3\xa9\x80", "\x01", "\x1f", "\x0c", "\x1a",
		"\x7f", "\\", "\\\\", "\\\\\\", "\\\"", "\\\\\"", "\\u12", "\"", "\"\"",
	};
	static const char *const after[] = {"", "\"", "abc\"", "\xc3\xa9\"", "\\\"\""};
	char buf[4 * BLOCK_BYTES];
	for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
		size_t plen = strlen(probes[p]);
		for (size_t at = 1; at < 3 * BLOCK_BYTES - 8; at++) {
			for (size_t a = 0; a < sizeof after / sizeof after[0]; a++) {
				for (int quoted = 0; quoted < 2; quoted++) {
					size_t len = 0;
					buf[len++] = quoted ? '"' : '[';
					while (len < at)
						buf[len++] = quoted ? 'a' : ' ';
					memcpy(buf + len, probes[p], plen);
					len += plen;
					size_t alen = strlen(after[a]);
					memcpy(buf + len, after[a], alen);
					len += alen;
					compare_copy("edge probe", buf, len);
					/* And padded to the next block edge with ASCII. */
					while (len % BLOCK_BYTES != 0)
						buf[len++] = quoted ? ' ' : 'x';
					compare_copy("edge probe, padded", buf, len);
				}
			}
		}
	}
}

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64: small, seedable, good enough to spread test inputs. */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return rng() % n;
}

/* The whole corpus, prefixes ending within 2 bytes of every block edge in
 * the first EDGE_PREFIX_BYTES, and random windows (which start anywhere:
 * inside strings, escapes and UTF-8 sequences). */
static void corpus_agrees(void **state)
{
	(void)state;
	rng_state = SEED_DEFAULT;
	for (size_t i = 0; i < corpus.n; i++) {
		const file_t *f = &corpus.files[i];
		compare_at(f->name, f->data, f->len);
		size_t max = f->len < EDGE_PREFIX_BYTES ? f->len : EDGE_PREFIX_BYTES;
		for (size_t edge = BLOCK_BYTES; edge <= max; edge += BLOCK_BYTES)
			for (size_t len = edge - 2; len <= edge + 2 && len <= f->len; len++)
				compare_copy(f->name, f->data, len);
		for (unsigned w = 0; w < WINDOWS_PER_FILE; w++) {
			size_t start = below(f->len);
			size_t len = below(WINDOW_BYTES_MAX + 1);
			if (len > f->len - start)
				len = f->len - start;
			compare_copy(f->name, f->data + start, len);
		}
	}
}

/* Pieces random inputs are built from: JSON punctuation, the bytes stage 1
 * treats specially, and UTF-8 sequences valid, overlong, surrogate, too
 * large, truncated, and stray continuation bytes. */
static const char *const pieces[] = {
	"\"", "\"", "\"", "\\", "\\", "\\\\", "\\\"", "\\\\\\", "{", "}", "[", "]", ":", ",",
	" ", "\n", "\t", "\r", "a", "0", "-1.5e3", "true", "null", "\\u00e9", "\\ud83d\\ude00",
	"\x01", "\x1f", "\x0c", "\x1a", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
	"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xc3",
	"\xe2\x82", "\xf0\x9f\x98", "\x80", "\xbf", "\xff", "\xfe", "/", "\\/", "'",
};
#define N_PIECES (sizeof pieces / sizeof pieces[0])

static size_t random_input(char *buf, size_t cap)
{
	size_t target = below(cap + 1), len = 0;
	int mode = (int)below(4);
	while (len < target) {
		if (mode == 0 && below(8) == 0) {
			/* A run of backslashes, often long, so runs cross block edges
			 * with either parity. */
			size_t run = 1 + below(70);
			while (run-- && len < target)
				buf[len++] = '\\';
			continue;
		}
		if (mode == 1 && below(4) == 0) {
			/* Filler that moves the next piece across a block edge. */
			size_t run = below(64);
			while (run-- && len < target)
				buf[len++] = (char)(below(2) ? 'x' : ' ');
			continue;
		}
		if (mode == 2 && below(16) == 0) {
			buf[len++] = (char)below(256);
			continue;
		}
		const char *p = pieces[below(N_PIECES)];
		size_t n = strlen(p);
		if (len + n > target)
			break;
		memcpy(buf + len, p, n);
		len += n;
	}
	return len;
}

/* Mutates a copy of a JSONTestSuite case or a corpus window: flips,
 * inserts and deletes a few bytes, biased to the special ones. */
static size_t mutated_input(char *buf, size_t cap)
{
	const fileset_t *set = below(2) ? &suite : &corpus;
	const file_t *f = &set->files[below(set->n)];
	size_t start = f->len ? below(f->len) : 0, len = below(cap / 2 + 1);
	if (set == &suite)
		start = 0;
	if (len > f->len - start)
		len = f->len - start;
	memcpy(buf, f->data + start, len);
	static const char special[] = "\"\\{}[]:, \n\x01\x80\xc3\xe2\xf0\xed\xf4";
	unsigned edits = 1 + (unsigned)below(4);
	for (unsigned e = 0; e < edits; e++) {
		size_t at = below(len + 1);
		char c = below(2) ? special[below(sizeof special - 1)] : (char)below(256);
		switch (below(3)) {
		case 0:
			if (at < len)
				buf[at] = c;
			break;
		case 1:
			if (len < cap) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = c;
				len++;
			}
			break;
		default:
			if (at < len) {
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
			break;
		}
	}
	return len;
}

/* Valid-looking JSON text: strings with escapes, even and odd backslash
 * runs and multi-byte UTF-8, between punctuation, numbers and whitespace runs
 * of random length, so string edges, escapes and sequences fall on every
 * position of a block. One in four gets one bad byte somewhere. */
static size_t structured_input(char *buf, size_t cap)
{
	static const char *const in_string[] = {
		"a", "bc", " ", "\\\\", "\\\"", "\\n", "\\u00e9", "\\\\\\\\",
		"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf",
		"{", "]", ":", ",", "'", "/",
	};
	static const char *const between[] = {
		"{", "}", "[", "]", ":", ",", "0", "-12.5e+3", "true", "false", "null", "x", "\xc3\xa9",
	};
	size_t target = below(cap + 1), len = 0;
	while (len + 16 < target) {
		if (below(3) == 0) {
			buf[len++] = '"';
			size_t parts = below(12);
			for (size_t k = 0; k < parts && len + 8 < target; k++) {
				const char *p = in_string[below(sizeof in_string / sizeof in_string[0])];
				memcpy(buf + len, p, strlen(p));
				len += strlen(p);
			}
			buf[len++] = '"';
		} else if (below(2) == 0) {
			const char *p = between[below(sizeof between / sizeof between[0])];
			memcpy(buf + len, p, strlen(p));
			len += strlen(p);
		} else {
			size_t run = below(70);
			while (run-- && len + 8 < target)
				buf[len++] = " \n\t\r"[below(4)];
		}
	}
	if (len > 0 && below(4) == 0) {
		static const char bad[] = "\x01\x1f\x80\xc3\xe0\xed\xf4\xff\\\"";
		buf[below(len)] = bad[below(sizeof bad - 1)];
	}
	return len;
}

static void random_inputs_agree(void **state)
{
	(void)state;
	const char *s = getenv("DIFF_SEED");
	const char *n = getenv("DIFF_RANDOM_INPUTS");
	uint64_t seed = s ? strtoull(s, NULL, 0) : SEED_DEFAULT;
	unsigned long count = n ? strtoul(n, NULL, 0) : RANDOM_INPUTS_DEFAULT;
	printf("DIFF_SEED=0x%" PRIx64 " DIFF_RANDOM_INPUTS=%lu\n", seed, count);
	rng_state = seed;
	char buf[RANDOM_BYTES_MAX];
	unsigned long long clean_before = clean;
	for (unsigned long i = 0; i < count; i++) {
		switch (i % 3) {
		case 0:
			compare_copy("random", buf, random_input(buf, sizeof buf));
			break;
		case 1:
			compare_copy("mutated", buf, mutated_input(buf, sizeof buf));
			break;
		default:
			compare_copy("structured", buf, structured_input(buf, sizeof buf));
			break;
		}
	}
	unsigned long long simd = clean - clean_before;
	printf("%llu inputs compared in all; of the %lu random ones, %llu ran on the SIMD code "
	       "alone\n", compared, count, simd);
	/* Most structured inputs are clean; if none were, the kernels would
	 * only ever have been compared through the scalar hand-over. */
	assert_true(simd >= count / 6);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s JSONTestSuite/test_parsing CORPUS_DIR\n", argv[0]);
		return 2;
	}
	if (load_dir(argv[1], &suite) < 0 || load_dir(argv[2], &corpus) < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(inputs_are_there),
		cmocka_unit_test(suite_cases_agree),
		cmocka_unit_test(corpus_agrees),
		cmocka_unit_test(edges_agree),
		cmocka_unit_test(random_inputs_agree),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
