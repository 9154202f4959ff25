/* tests/fuzz/fuzz_json_doc.c: libFuzzer target for a whole document.
 *
 * Every stage-1 kernel the CPU runs must give the scalar kernel's index and
 * error exactly; json_parse must accept or reject with an offset inside the
 * input; an accepted document must survive json_write -> json_parse ->
 * json_write unchanged. json_select (on demand) with the path `$` must give
 * json_parse's verdict and error exactly, and on an accepted document every
 * path of a small set must select what json_path_each selects on the tape,
 * and every number must convert to strtod's double.
 * Built by tests/parse/meson.build (clang only) and run
 * by scripts/test.sh with seeds from ../shared/data/json. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json.h"
#include "parse/json_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops the run with a message; libFuzzer saves the input as a crash. */
static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_json_doc: %s\n", what);
	abort();
}

static void kernels_agree(const char *src, uint32_t len)
{
	const json_stage1_kernel_t *kernels;
	size_t n_kernels = json_stage1_kernels(&kernels);
	uint32_t *ref = malloc(((size_t)len + JSON_STAGE1_IDX_SLACK) * sizeof *ref);
	uint32_t *got = malloc(((size_t)len + JSON_STAGE1_IDX_SLACK) * sizeof *got);
	size_t words = JSON_BSLASH_MAP_WORDS(len);
	uint64_t *bs_ref = calloc(words ? words : 1, sizeof *bs_ref);
	uint64_t *bs_got = malloc((words + 1) * sizeof *bs_got);
	if (!ref || !got || !bs_ref || !bs_got)
		fuzz_fail("out of memory");
	for (uint32_t i = 0; i < len; i++)
		if (src[i] == '\\')
			bs_ref[i / JSON_BSLASH_MAP_BYTES] |= 1ull << (i % JSON_BSLASH_MAP_BYTES);
	/* Both index modes: plain, and with '\n' entries (NDJSON batches). */
	for (int newlines = 0; newlines <= 1; newlines++) {
		json_error_t e_ref = {0};
		uint32_t n_ref = 0;
		int r_ref = json_stage1_scalar(src, len, ref, &n_ref, NULL, newlines, &e_ref);
		for (size_t k = 0; k < n_kernels; k++) {
			json_error_t e = {0};
			uint32_t n = 0;
			bs_got[words] = 0xA5A5A5A5A5A5A5A5ull; /* no kernel writes past the map */
			int r = kernels[k].fn(src, len, got, &n, bs_got, newlines, &e);
			if (memcmp(bs_got, bs_ref, words * sizeof *bs_got) != 0 ||
			    bs_got[words] != 0xA5A5A5A5A5A5A5A5ull) {
				fprintf(stderr, "kernel %s\n", kernels[k].name);
				fuzz_fail("a stage-1 kernel's backslash map is wrong");
			}
			if (r != r_ref || n != n_ref || memcmp(got, ref, n * sizeof *got) != 0 ||
			    (r < 0 && (e.offset != e_ref.offset || e.reason != e_ref.reason))) {
				fprintf(stderr, "kernel %s%s\n", kernels[k].name,
				        newlines ? " (newlines)" : "");
				fuzz_fail("a stage-1 kernel differs from scalar");
			}
		}
	}
	free(ref);
	free(got);
	free(bs_ref);
	free(bs_got);
}

static int add_text(void *ctx, const json_doc_t *d, uint32_t node)
{
	return json_write(d, node, ctx) == 0 && json_buf_append(ctx, "\n", 1) == 0 ? 0 : -1;
}

static int add_selected(void *ctx, uint32_t path, const json_doc_t *d, uint32_t node)
{
	(void)path;
	return add_text(ctx, d, node);
}

/* json_select against json_parse (+ json_path_each when valid). */
static void select_agrees(const char *src, size_t size)
{
	static const char *const exprs[] = {"$", "$[*]", "$.*", "$[1][*]", "$.*.a", "$[*][0]",
	                                    "$.a[*].b"};
	static json_parser_t *full, *sel;
	static json_path_t *paths[sizeof exprs / sizeof *exprs];
	if (!full) {
		json_error_t e;
		full = json_parser_new(0);
		sel = json_parser_new(0);
		for (size_t i = 0; i < sizeof exprs / sizeof *exprs; i++)
			if (json_path_compile(exprs[i], &paths[i], &e) != 0)
				fuzz_fail("path does not compile");
		if (!full || !sel)
			fuzz_fail("out of memory");
	}
	json_doc_t doc;
	json_error_t want = {0}, got = {0};
	json_buf_t a = {0}, b = {0};
	int rf = json_parse(full, src, size, &doc, &want);
	int rs = json_select(sel, src, size, (const json_path_t *const *)paths, 1, add_selected, &b,
	                     &got);
	if (rf != rs || (rf < 0 && (want.offset != got.offset || want.line != got.line ||
	                            strcmp(want.reason, got.reason) != 0)))
		fuzz_fail("json_select with $ differs from json_parse");
	if (rf == 0) {
		b.len = 0;
		for (size_t i = 0; i < sizeof exprs / sizeof *exprs; i++)
			if (json_path_each(paths[i], &doc, 0, add_text, &a) != 0)
				fuzz_fail("json_path_each failed");
		if (json_select(sel, src, size, (const json_path_t *const *)paths,
		                sizeof exprs / sizeof *exprs, add_selected, &b, &got) != 0)
			fuzz_fail("json_select rejects a valid document");
		if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
			fuzz_fail("json_select selects other values than json_path_each");
	}
	json_buf_free(&a);
	json_buf_free(&b);
}

/* Every number of an accepted document: json_number_double gives strtod's
 * double bit for bit (its fast path, or strtod itself), and -ERANGE exactly
 * when strtod overflows. */
static void numbers_agree(const json_doc_t *d)
{
	for (uint32_t i = 0; i < d->n_nodes; i++) {
		if (d->nodes[i].type != JSON_NUMBER)
			continue;
		char *text = malloc((size_t)d->nodes[i].len + 1);
		if (!text)
			fuzz_fail("out of memory");
		memcpy(text, d->src + d->nodes[i].start, d->nodes[i].len);
		text[d->nodes[i].len] = '\0';
		double want = strtod(text, NULL), got;
		int r = json_number_double(d, i, &got);
		if (r != (isinf(want) ? -ERANGE : 0) || memcmp(&got, &want, sizeof got) != 0) {
			fprintf(stderr, "number %s\n", text);
			fuzz_fail("json_number_double differs from strtod");
		}
		free(text);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_parser_t *p;
	if (!p && !(p = json_parser_new(0)))
		fuzz_fail("out of memory");
	/* An exact-size copy, so ASan sees any read past the end. */
	char *src = malloc(size ? size : 1);
	if (!src)
		fuzz_fail("out of memory");
	memcpy(src, data, size);
	kernels_agree(src, (uint32_t)size);
	select_agrees(src, size);

	json_doc_t doc;
	json_error_t err;
	if (json_parse(p, src, size, &doc, &err) != 0) {
		if (!err.reason || err.offset > size)
			fuzz_fail("error without a reason or past the end");
		free(src);
		return 0;
	}
	if (doc.n_nodes < 1 || doc.nodes[0].next != doc.n_nodes)
		fuzz_fail("tape does not cover the document");
	numbers_agree(&doc);
	uint32_t nodes = doc.n_nodes;
	json_buf_t a = {0}, b = {0};
	if (json_write(&doc, 0, &a) != 0)
		fuzz_fail("json_write failed");
	if (json_parse(p, a.data, a.len, &doc, &err) != 0)
		fuzz_fail("json_write output does not parse");
	if (doc.n_nodes != nodes)
		fuzz_fail("round trip changed the node count");
	if (json_write(&doc, 0, &b) != 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		fuzz_fail("round trip changed the text");
	json_buf_free(&a);
	json_buf_free(&b);
	free(src);
	return 0;
}
