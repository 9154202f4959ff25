/* tests/fuzz/fuzz_json_ndjson.c: libFuzzer target for NDJSON + JSONPath.
 *
 * The input's first line is a JSONPath expression (compiled, or rejected with
 * an offset inside it; "$" is used then), the rest NDJSON. Every value the
 * path selects in every record must write as JSON that parses again, an
 * NDJSON error must point inside the text, and json_ndjson_each must give,
 * with every stage-1 kernel, exactly the documents (line offsets, tapes) and
 * the first error (offset, line, reason) of json_parse on each line alone
 * (it indexes batches of lines at once); and json_select_ndjson with the
 * path must give, with every kernel, exactly the values (with their lines)
 * and the first error of json_select on each line alone. Built by tests/parse/meson.build
 * (clang only), run by scripts/test.sh with seeds from ../shared/data/json. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json_internal.h"
#include "tests/parse/ndjson_lines_alone.h"

#define PATH_BYTES_MAX 128u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_json_ndjson: %s\n", what);
	abort();
}

typedef struct {
	const json_path_t *path;
	json_parser_t *check; /* a second parser: the record's tape stays in use */
	json_buf_t out;
	unsigned records;
	const char *src;
	uint64_t sum; /* FNV-1a over every document: line offset, bounds, nodes */
} walk_t;

static uint64_t mix(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		h = (h ^ (v & 0xFF)) * 0x100000001b3ull;
	return h;
}

static void sum_doc(walk_t *w, const json_doc_t *d, size_t line_offset)
{
	uint64_t h = mix(mix(mix(w->sum, line_offset), (uint64_t)(d->src - w->src)), d->len);
	for (uint32_t n = 0; n < d->n_nodes; n++) {
		const json_node_t *x = &d->nodes[n];
		h = mix(mix(mix(h, x->start), x->len), x->next);
		h = mix(mix(mix(h, x->count), x->type), x->flags);
	}
	w->sum = mix(h, d->n_nodes);
}

static void sum_ref(void *ctx, const json_doc_t *d, size_t line_offset)
{
	sum_doc(ctx, d, line_offset);
}

static int visit(void *ctx, const json_doc_t *d, uint32_t node)
{
	walk_t *w = ctx;
	if (node >= d->n_nodes)
		fuzz_fail("selected node out of range");
	w->out.len = 0;
	if (json_write(d, node, &w->out) != 0)
		fuzz_fail("json_write failed");
	json_doc_t again;
	json_error_t err;
	if (json_parse(w->check, w->out.data, w->out.len, &again, &err) != 0)
		fuzz_fail("a selected value does not parse again");
	return 0;
}

static int record(void *ctx, const json_doc_t *d, size_t line_offset)
{
	walk_t *w = ctx;
	w->records++;
	sum_doc(w, d, line_offset);
	return json_path_each(w->path, d, 0, visit, w);
}

/* "line offset, path, value" of each value json_select passes on. */
typedef struct {
	json_buf_t out;
	const char *src;
} sel_t;

static int sel_visit(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	sel_t *c = ctx;
	char tag[48];
	int n = snprintf(tag, sizeof tag, "%zu %u ", (size_t)(d->src - c->src), path);
	if (json_buf_append(&c->out, tag, (size_t)n) != 0 || json_write(d, node, &c->out) != 0 ||
	    json_buf_append(&c->out, "\n", 1) != 0)
		fuzz_fail("out of memory");
	return 0;
}

/* json_select_ndjson against json_select on each line alone. */
static void select_agrees(json_parser_t *p, json_parser_t *check, const char *src, size_t len,
                          const json_path_t *path)
{
	const json_path_t *const *paths = &path;
	sel_t ref = {.src = src};
	json_error_t ref_err = {0};
	int r_ref = ndjson_select_lines_alone(check, src, len, paths, 1, sel_visit, &ref, &ref_err);
	const json_stage1_kernel_t *kernels;
	size_t n_kernels = json_stage1_kernels(&kernels);
	for (size_t k = 0; k < n_kernels; k++) {
		if (json_stage1_use(kernels[k].name) != 0)
			fuzz_fail("cannot select a stage-1 kernel");
		sel_t got = {.src = src};
		json_error_t err = {0};
		int r = json_select_ndjson(p, src, len, paths, 1, sel_visit, &got, &err);
		if (r != r_ref || got.out.len != ref.out.len ||
		    (got.out.len && memcmp(got.out.data, ref.out.data, got.out.len) != 0))
			fuzz_fail("json_select_ndjson differs from json_select on each line alone");
		if (r < 0 && (err.offset != ref_err.offset || err.line != ref_err.line ||
		              strcmp(err.reason, ref_err.reason) != 0))
			fuzz_fail("json_select_ndjson's error differs from each line alone");
		json_buf_free(&got.out);
	}
	json_buf_free(&ref.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_parser_t *p, *check;
	if (!p && (!(p = json_parser_new(0)) || !(check = json_parser_new(0))))
		fuzz_fail("out of memory");
	const uint8_t *nl = memchr(data, '\n', size < PATH_BYTES_MAX ? size : PATH_BYTES_MAX);
	size_t expr_len = nl ? (size_t)(nl - data) : 0;
	char expr[PATH_BYTES_MAX + 1];
	memcpy(expr, data, expr_len);
	expr[expr_len] = '\0';
	json_path_t *path;
	json_error_t err;
	if (json_path_compile(expr, &path, &err) != 0) {
		if (!err.reason || err.offset > expr_len)
			fuzz_fail("path error without a reason or past the end");
		if (json_path_compile("$", &path, &err) != 0)
			fuzz_fail("cannot compile $");
	}
	size_t skip = nl ? expr_len + 1 : 0;
	size_t len = size - skip;
	char *src = malloc(len ? len : 1); /* exact size: ASan sees overreads */
	if (!src)
		fuzz_fail("out of memory");
	memcpy(src, data + skip, len);
	walk_t w = {.path = path, .check = check, .src = src};
	walk_t ref = {.src = src};
	json_error_t ref_err;
	int r_ref = ndjson_lines_alone(check, src, len, sum_ref, &ref, &ref_err);
	const json_stage1_kernel_t *kernels;
	size_t n_kernels = json_stage1_kernels(&kernels);
	for (size_t k = 0; k < n_kernels; k++) {
		if (json_stage1_use(kernels[k].name) != 0)
			fuzz_fail("cannot select a stage-1 kernel");
		w.sum = 0;
		int r = json_ndjson_each(p, src, len, record, &w, &err);
		if (r < 0 && (!err.reason || err.offset > len || err.line < 1))
			fuzz_fail("NDJSON error without a reason or past the end");
		if (r != r_ref || w.sum != ref.sum)
			fuzz_fail("NDJSON documents differ from parsing each line alone");
		if (r < 0 && (err.offset != ref_err.offset || err.line != ref_err.line ||
		              strcmp(err.reason, ref_err.reason) != 0))
			fuzz_fail("NDJSON error differs from parsing each line alone");
	}
	/* The input's path, and two that skip most values by their brackets
	 * (seeds seldom start with a path that does). */
	static json_path_t *skipping[2];
	if (!skipping[0] && (json_path_compile("$.a", &skipping[0], &err) != 0 ||
	                     json_path_compile("$[1]", &skipping[1], &err) != 0))
		fuzz_fail("cannot compile the skipping paths");
	select_agrees(p, check, src, len, path);
	select_agrees(p, check, src, len, skipping[0]);
	select_agrees(p, check, src, len, skipping[1]);
	if (json_stage1_use(kernels[0].name) != 0)
		fuzz_fail("cannot select a stage-1 kernel");
	json_buf_free(&w.out);
	json_path_free(path);
	free(src);
	return 0;
}
