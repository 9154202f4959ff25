/* tests/parse/test_json_ndjson_batch.c: NDJSON indexed a batch of lines at a
 * time gives exactly what parsing each line alone gives.
 *
 * json_ndjson_each (parse/json.c) runs stage 1 once over many lines and walks
 * each line's slice of that index; the reference here calls json_parse on
 * every line. Both must report the same documents (line offsets, tapes) and
 * the same first error (offset, line, reason), on every stage-1 kernel, for
 * hand-made edge cases, for the corpus file with single bytes changed, for
 * an input longer than one batch, for a fresh parser (no tape yet) and for a
 * callback that parses with the same parser (argv[1] is the corpus directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse/json_internal.h"
#include "tests/parse/ndjson_lines_alone.h"

/* Documents remembered per walk; inputs here have fewer lines than this
 * or stop comparing the tapes past it (offsets and counts still compared). */
#define RECORDS_MAX 8192u
/* Single-byte mutations of the corpus file, per kernel. */
#define MUTATIONS 400u
/* Copies of the corpus file in the multi-batch input (> 1 MiB in total). */
#define BIG_COPIES 5u

static const char *corpus_dir;

typedef struct {
	size_t docs;
	size_t line_offset[RECORDS_MAX];
	uint64_t tape_hash[RECORDS_MAX]; /* FNV-1a over the nodes and the doc's bounds */
} walk_t;

static uint64_t hash_doc(const json_doc_t *d, const char *file)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const uint32_t head[3] = {(uint32_t)(d->src - file), (uint32_t)d->len, d->n_nodes};
	const unsigned char *b = (const unsigned char *)head;
	for (size_t i = 0; i < sizeof head; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	for (uint32_t n = 0; n < d->n_nodes; n++) {
		const json_node_t *x = &d->nodes[n];
		const uint32_t f[6] = {x->start, x->len, x->next, x->count, x->type, x->flags};
		b = (const unsigned char *)f;
		for (size_t i = 0; i < sizeof f; i++)
			h = (h ^ b[i]) * 0x100000001b3ull;
	}
	return h;
}

typedef struct {
	walk_t *w;
	const char *file;
} visit_t;

static int record(void *ctx, const json_doc_t *d, size_t line_offset)
{
	visit_t *v = ctx;
	walk_t *w = v->w;
	if (w->docs < RECORDS_MAX) {
		w->line_offset[w->docs] = line_offset;
		w->tape_hash[w->docs] = hash_doc(d, v->file);
	}
	w->docs++;
	return 0;
}

/* The reference: every non-blank line through json_parse on its own. */
static void record_ref(void *ctx, const json_doc_t *d, size_t line_offset)
{
	record(ctx, d, line_offset);
}

static int reference_each(json_parser_t *p, const char *src, size_t len, visit_t *v,
                          json_error_t *err)
{
	return ndjson_lines_alone(p, src, len, record_ref, v, err);
}

static walk_t got_walk, want_walk;

static void check_same(json_parser_t *p, const char *src, size_t len)
{
	memset(&got_walk, 0, sizeof got_walk);
	memset(&want_walk, 0, sizeof want_walk);
	json_error_t got_err = {0}, want_err = {0};
	visit_t got_v = {&got_walk, src}, want_v = {&want_walk, src};
	int got = json_ndjson_each(p, src, len, record, &got_v, &got_err);
	int want = reference_each(p, src, len, &want_v, &want_err);
	if (got != want || got_walk.docs != want_walk.docs)
		fail_msg("'%.60s': rc %d vs %d, %zu vs %zu documents", src, got, want, got_walk.docs,
		         want_walk.docs);
	size_t docs = got_walk.docs < RECORDS_MAX ? got_walk.docs : RECORDS_MAX;
	for (size_t i = 0; i < docs; i++)
		if (got_walk.line_offset[i] != want_walk.line_offset[i] ||
		    got_walk.tape_hash[i] != want_walk.tape_hash[i])
			fail_msg("'%.60s': document %zu differs", src, i);
	if (got < 0 && (got_err.offset != want_err.offset || got_err.line != want_err.line ||
	                strcmp(got_err.reason, want_err.reason) != 0))
		fail_msg("'%.60s': error %zu line %zu %s, want %zu line %zu %s", src, got_err.offset,
		         got_err.line, got_err.reason, want_err.offset, want_err.line,
		         want_err.reason);
}

/* Runs fn once with each stage-1 kernel this CPU has. */
static void each_kernel(void (*fn)(json_parser_t *p))
{
	const json_stage1_kernel_t *k;
	size_t n = json_stage1_kernels(&k);
	json_parser_t *p = json_parser_new(0);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(json_stage1_use(k[i].name), 0);
		fn(p);
	}
	assert_int_equal(json_stage1_use(k[0].name), 0);
	json_parser_free(p);
}

static void edge_cases_with(json_parser_t *p)
{
	static const char *const cases[] = {
		"", "\n", "\n\r\n \t\n", "1", "1\n", "1\r\n2\r\n", "  {\"a\":[1,2]}  \n\n[]\n",
		"tru\n[1]\n", "[1]\ntru", "nul\r\n", "fals", "1.\n", "-\n", "01\n", "1e\n",
		"[1\n]\n", "{\"a\":\n1}\n", "\"abc\n\"\n", "[\"a\",\n\"b\"]", "\"\\u12\n\"",
		"1 2\n", "{} x\n", "[] []\n", "[1,]\n", "{\"a\":1,}\n", "\xff\n", "\"\xff\"\n",
		"[\"\\x\"]\n", "[\"\\ud800\"]\n", "\"a\x01\"\n", "\f\n", "1\n\f\n", "\"open\n",
		"[1]\n\"open", "\\\n", "[1]\n\\", "{\"k\" 1}\n", "[1]\r\r\n[2]\n", "\r\n\r\n\"x\"",
		"[[[[[[[[]]]]]]]]\n[[[\n", "{\"a\":{\"b\":{}}}\n{\"a\"}\n", "[true,false,null]\n",
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		check_same(p, cases[i], strlen(cases[i]));
}

static void edge_cases(void **state)
{
	(void)state;
	each_kernel(edge_cases_with);
}

/* A fresh parser has no tape yet: the walk gives its first line, and each
 * line with more entries than any before, to json_parse of the line alone
 * (which grows the tape). The documents and errors must not change. */
static void fresh_parser_with(json_parser_t *unused)
{
	(void)unused;
	static const char *const cases[] = {
		"[1]\n[1,[2,3]]\n{\"a\":[1,2,{\"b\":[3,4]}]}\n7\n[1,[2,3]]\n\n\"s\"\n",
		"{\"a\":[1,2,{\"b\":[3,4]}]}\n[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]\r\n[]\n",
		"[1]\n1 2 3 4 5 6\n", "[1]\n[1,\n2]\n", "1\n[1,2,3,4,5,6,7,8,[\n",
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		json_parser_t *p = json_parser_new(0);
		assert_non_null(p);
		check_same(p, cases[i], strlen(cases[i]));
		json_parser_free(p);
	}
}

static void fresh_parser(void **state)
{
	(void)state;
	each_kernel(fresh_parser_with);
}

/* The callback parses with the walk's own parser (a big document, then a
 * tiny one), replacing the tape between lines. */
static json_parser_t *shared_parser;

static int record_then_parse(void *ctx, const json_doc_t *d, size_t line_offset)
{
	static const char big[] = "[[1,2,3],{\"a\":[4,5,6,7,8,9]},\"x\",true,null,[[[]]]]";
	record(ctx, d, line_offset);
	json_doc_t doc;
	json_error_t err;
	assert_int_equal(json_parse(shared_parser, big, strlen(big), &doc, &err), 0);
	assert_int_equal(json_parse(shared_parser, "0", 1, &doc, &err), 0);
	return 0;
}

static void callback_parses_with(json_parser_t *unused)
{
	(void)unused;
	static const char src[] = "[1,2]\n{\"a\":\"b\\n\"}\n\n[1,2,[3,4],5]\n\"q\"\n";
	shared_parser = json_parser_new(0);
	assert_non_null(shared_parser);
	memset(&got_walk, 0, sizeof got_walk);
	memset(&want_walk, 0, sizeof want_walk);
	json_error_t got_err = {0}, want_err = {0};
	visit_t got_v = {&got_walk, src}, want_v = {&want_walk, src};
	assert_int_equal(json_ndjson_each(shared_parser, src, strlen(src), record_then_parse,
	                                  &got_v, &got_err), 0);
	assert_int_equal(reference_each(shared_parser, src, strlen(src), &want_v, &want_err), 0);
	assert_int_equal(got_walk.docs, 4);
	assert_int_equal(want_walk.docs, 4);
	for (size_t i = 0; i < got_walk.docs; i++) {
		assert_int_equal(got_walk.line_offset[i], want_walk.line_offset[i]);
		assert_true(got_walk.tape_hash[i] == want_walk.tape_hash[i]);
	}
	json_parser_free(shared_parser);
}

static void callback_parses(void **state)
{
	(void)state;
	each_kernel(callback_parses_with);
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

static void mutations_with(json_parser_t *p)
{
	static const char bytes[] = {'"', '\\', '\n', ',', ']', '}', 'x', ' ', '\x01', '\xc3', '0'};
	size_t len;
	char *data = read_file("amazon_cellphones.ndjson", &len);
	check_same(p, data, len);
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	for (unsigned i = 0; i < MUTATIONS; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		size_t at = (size_t)(rng % len);
		char was = data[at];
		data[at] = bytes[(rng >> 40) % sizeof bytes];
		check_same(p, data, len);
		data[at] = was;
	}
	free(data);
}

static void corpus_mutations(void **state)
{
	(void)state;
	each_kernel(mutations_with);
}

static void several_batches_with(json_parser_t *p)
{
	size_t len;
	char *one = read_file("amazon_cellphones.ndjson", &len);
	char *big = malloc(len * BIG_COPIES);
	assert_non_null(big);
	for (unsigned i = 0; i < BIG_COPIES; i++)
		memcpy(big + i * len, one, len);
	check_same(p, big, len * BIG_COPIES);
	/* An error late in the input, past the first batch. */
	size_t at = len * BIG_COPIES - len / 3;
	while (big[at] != '[')
		at++;
	big[at] = '!';
	check_same(p, big, len * BIG_COPIES);
	free(big);
	free(one);
}

static void several_batches(void **state)
{
	(void)state;
	each_kernel(several_batches_with);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	corpus_dir = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(edge_cases),
		cmocka_unit_test(corpus_mutations),
		cmocka_unit_test(several_batches),
		cmocka_unit_test(fresh_parser),
		cmocka_unit_test(callback_parses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
