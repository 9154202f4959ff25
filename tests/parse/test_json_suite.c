/* tests/parse/test_json_suite.c: json_parse against JSONTestSuite.
 *
 * argv[1] is JSONTestSuite/test_parsing: y_* must be accepted, n_* rejected,
 * i_* may go either way (the outcome is printed, docs/parse.md records it).
 * Every prefix of every case must also parse or fail cleanly: each file is
 * loaded into a buffer of exactly its size, so ASan catches any overread.
 * The whole group runs once per stage-1 kernel this CPU supports (avx512,
 * avx2, sse42, scalar); test_json_stage1_diff.c checks that they agree exactly. */
#include <dirent.h>
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
#include "tests/parse/each_kernel.h"

#define SUITE_FILES_MIN 300u /* so the test cannot pass on an empty directory */
#define SUITE_FILES_MAX 1024u
#define SUITE_NAME_BYTES_MAX 256u

static const char *suite_dir;

typedef struct {
	char name[SUITE_NAME_BYTES_MAX];
	char *data;
	size_t len;
} case_t;

static case_t cases[SUITE_FILES_MAX];
static size_t n_cases;

static int cmp_case(const void *a, const void *b)
{
	return strcmp(((const case_t *)a)->name, ((const case_t *)b)->name);
}

static int load_cases(void **state)
{
	(void)state;
	DIR *d = opendir(suite_dir);
	if (!d) {
		fprintf(stderr, "cannot open %s\n", suite_dir);
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n_cases < SUITE_FILES_MAX) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= SUITE_NAME_BYTES_MAX)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", suite_dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		case_t *c = &cases[n_cases];
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		rewind(f);
		c->len = (size_t)n;
		c->data = malloc(c->len ? c->len : 1); /* exactly its size: overreads trip ASan */
		if (c->data && fread(c->data, 1, c->len, f) == c->len) {
			strcpy(c->name, e->d_name);
			n_cases++;
		} else {
			free(c->data);
		}
		fclose(f);
	}
	closedir(d);
	qsort(cases, n_cases, sizeof cases[0], cmp_case);
	return 0;
}

static int free_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_cases; i++)
		free(cases[i].data);
	n_cases = 0; /* the group runs again for the next kernel */
	return 0;
}

static void suite_is_not_empty(void **state)
{
	(void)state;
	assert_true(n_cases >= SUITE_FILES_MIN);
}

/* An error must point inside the input (or just past it) with a reason and
 * a line that matches the newlines before the offset. */
static void check_error(const case_t *c, const json_error_t *err)
{
	assert_non_null(err->reason);
	assert_true(err->offset <= c->len);
	size_t line = 1;
	for (size_t i = 0; i < err->offset; i++)
		line += c->data[i] == '\n';
	assert_int_equal(err->line, line);
}

static void y_accepted_n_rejected(void **state)
{
	(void)state;
	json_parser_t *p = json_parser_new(0);
	assert_non_null(p);
	unsigned wrong = 0, y = 0, n = 0, i_accepted = 0, i_rejected = 0;
	for (size_t k = 0; k < n_cases; k++) {
		const case_t *c = &cases[k];
		json_doc_t doc;
		json_error_t err;
		int r = json_parse(p, c->data, c->len, &doc, &err);
		if (r != 0)
			check_error(c, &err);
		if (c->name[0] == 'y') {
			y++;
			if (r != 0) {
				printf("WRONG: %s rejected: %s at %zu\n", c->name, err.reason, err.offset);
				wrong++;
			}
		} else if (c->name[0] == 'n') {
			n++;
			if (r == 0) {
				printf("WRONG: %s accepted\n", c->name);
				wrong++;
			}
		} else {
			if (r == 0)
				i_accepted++;
			else
				i_rejected++;
			printf("%s: %s%s%s\n", c->name, r == 0 ? "accepted" : "rejected (",
			       r == 0 ? "" : err.reason, r == 0 ? "" : ")");
		}
	}
	printf("y=%u n=%u i: %u accepted, %u rejected; wrong=%u\n", y, n, i_accepted, i_rejected,
	       wrong);
	assert_true(y > 0 && n > 0);
	assert_int_equal(wrong, 0);
	json_parser_free(p);
}

/* Accepted documents survive json_write -> json_parse -> json_write unchanged. */
static void y_round_trip(void **state)
{
	(void)state;
	json_parser_t *p = json_parser_new(0);
	assert_non_null(p);
	for (size_t k = 0; k < n_cases; k++) {
		const case_t *c = &cases[k];
		json_doc_t doc;
		json_error_t err;
		if (c->name[0] != 'y' || json_parse(p, c->data, c->len, &doc, &err) != 0)
			continue;
		uint32_t nodes = doc.n_nodes;
		json_buf_t a = {0}, b = {0};
		assert_int_equal(json_write(&doc, 0, &a), 0);
		assert_int_equal(json_parse(p, a.data, a.len, &doc, &err), 0);
		assert_int_equal(doc.n_nodes, nodes);
		assert_int_equal(json_write(&doc, 0, &b), 0);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len);
		json_buf_free(&a);
		json_buf_free(&b);
	}
	json_parser_free(p);
}

/* A truncated document never crashes the parser and never reads past its end. */
static void every_prefix_is_handled(void **state)
{
	(void)state;
	json_parser_t *p = json_parser_new(0);
	assert_non_null(p);
	for (size_t k = 0; k < n_cases; k++) {
		const case_t *c = &cases[k];
		size_t max = c->len < 4096 ? c->len : 4096;
		for (size_t len = 0; len < max; len++) {
			char *copy = malloc(len ? len : 1);
			assert_non_null(copy);
			memcpy(copy, c->data, len);
			json_doc_t doc;
			json_error_t err;
			case_t prefix = {.data = copy, .len = len};
			if (json_parse(p, copy, len, &doc, &err) != 0)
				check_error(&prefix, &err);
			else
				assert_true(doc.n_nodes >= 1 && doc.nodes[0].next == doc.n_nodes);
			free(copy);
		}
	}
	json_parser_free(p);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s JSONTestSuite/test_parsing\n", argv[0]);
		return 2;
	}
	suite_dir = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(suite_is_not_empty),
		cmocka_unit_test(y_accepted_n_rejected),
		cmocka_unit_test(y_round_trip),
		cmocka_unit_test(every_prefix_is_handled),
	};
	return RUN_ON_EACH_KERNEL("json_suite", tests, load_cases, free_cases);
}
