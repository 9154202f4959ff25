/* tests/parse/test_json_path.c: the JSONPath subset.
 *
 * Compile errors name the offending byte; selections come back in document
 * order as compact JSON; missing keys and out-of-range indexes select nothing;
 * '@' starts from the node the caller passes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse/json.h"

static json_parser_t *parser;
static json_doc_t doc;

static const char doc_text[] =
	"{\"a\": [{\"b\": 1}, {\"c\": 2}, {\"b\": [3]}],"
	" \"x y\": [\"p\", \"q\"],"
	" \"o\": {\"k1\": 1, \"k2\": {\"z\": true}},"
	" \"it's\": \"apos\", \"a\\\\b\": \"bslash\", \"q\\\"\": \"quote\","
	" \"\\u00e9t\\u00e9\": \"summer\"}";

static int setup(void **state)
{
	(void)state;
	parser = json_parser_new(0);
	json_error_t err;
	if (!parser || json_parse(parser, doc_text, strlen(doc_text), &doc, &err) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	json_parser_free(parser);
	return 0;
}

typedef struct {
	json_buf_t out; /* selections, each followed by '\n' */
	unsigned n, stop_after;
	uint32_t last;
} sel_t;

static int collect(void *ctx, const json_doc_t *d, uint32_t node)
{
	sel_t *s = ctx;
	assert_int_equal(json_write(d, node, &s->out), 0);
	assert_int_equal(json_buf_append(&s->out, "\n", 1), 0);
	s->last = node;
	s->n++;
	return s->stop_after && s->n == s->stop_after ? 9 : 0;
}

/* Selects expr from `from` and compares the compact output with want. */
static uint32_t select_eq(const char *expr, uint32_t from, const char *want)
{
	json_path_t *p;
	json_error_t err;
	if (json_path_compile(expr, &p, &err) != 0)
		fail_msg("'%s': %s at %zu", expr, err.reason, err.offset);
	assert_string_equal(json_path_text(p), expr);
	sel_t s = {0};
	assert_int_equal(json_path_each(p, &doc, from, collect, &s), 0);
	assert_int_equal(json_buf_append(&s.out, "", 1), 0);
	if (strcmp(s.out.data, want) != 0)
		fail_msg("'%s': got\n%s\nwant\n%s", expr, s.out.data, want);
	json_buf_free(&s.out);
	json_path_free(p);
	return s.last;
}

static void selections(void **state)
{
	(void)state;
	select_eq("$.a[*].b", 0, "1\n[3]\n");
	select_eq("$['x y'][0]", 0, "\"p\"\n");
	select_eq("$[\"x y\"][1]", 0, "\"q\"\n");
	select_eq("$.o[*]", 0, "1\n{\"z\":true}\n");
	select_eq("$.o.*", 0, "1\n{\"z\":true}\n");
	select_eq("$.o.k2.z", 0, "true\n");
	select_eq("$.a[*][*]", 0, "1\n2\n[3]\n");
	select_eq("$['it\\'s']", 0, "\"apos\"\n");
	select_eq("$['a\\\\b']", 0, "\"bslash\"\n");
	select_eq("$[\"q\\\"\"]", 0, "\"quote\"\n");
	select_eq("$.\xc3\xa9t\xc3\xa9", 0, "\"summer\"\n");
	select_eq("$.a[2]", 0, "{\"b\":[3]}\n");
}

static void root_selects_document(void **state)
{
	(void)state;
	json_path_t *p;
	json_error_t err;
	assert_int_equal(json_path_compile("$", &p, &err), 0);
	sel_t s = {0};
	assert_int_equal(json_path_each(p, &doc, 0, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.last, 0);
	json_buf_free(&s.out);
	json_path_free(p);
}

static void wildcard_on_root_object(void **state)
{
	(void)state;
	json_path_t *p;
	json_error_t err;
	assert_int_equal(json_path_compile("$[*]", &p, &err), 0);
	sel_t s = {0};
	assert_int_equal(json_path_each(p, &doc, 0, collect, &s), 0);
	assert_int_equal(s.n, doc.nodes[0].count);
	json_buf_free(&s.out);
	json_path_free(p);
}

static void missing_selects_nothing(void **state)
{
	(void)state;
	const char *none[] = {
		"$.nope", "$.a[3]", "$.a.b", "$.o[0]", "$.a[0].b.c", "$['x y'][*].p", "$.o.k1[*]",
		"$.A", "$.a[4294967294]",
	};
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
		select_eq(none[i], 0, "");
}

/* '@' is the node passed as `from`; '$' is always the document root. */
static void current_node(void **state)
{
	(void)state;
	uint32_t third = select_eq("$.a[2]", 0, "{\"b\":[3]}\n");
	select_eq("@.b", third, "[3]\n");
	select_eq("@.b[0]", third, "3\n");
	select_eq("@", third, "{\"b\":[3]}\n");
	select_eq("$.o.k1", third, "1\n");
	select_eq("@.c", third, "");
}

static void visitor_can_stop(void **state)
{
	(void)state;
	json_path_t *p;
	json_error_t err;
	assert_int_equal(json_path_compile("$.a[*]", &p, &err), 0);
	sel_t s = {.stop_after = 2};
	assert_int_equal(json_path_each(p, &doc, 0, collect, &s), 9);
	assert_int_equal(s.n, 2);
	json_buf_free(&s.out);
	json_path_free(p);
}

static void compile_errors(void **state)
{
	(void)state;
	const struct {
		const char *expr;
		size_t offset;
		const char *reason;
	} bad[] = {
		{"", 0, "expected '$' or '@'"},
		{"a.b", 0, "expected '$' or '@'"},
		{"$.", 2, "expected a name"},
		{"$..a", 2, "expected a name"},
		{"$.a b", 3, "expected '.' or '['"},
		{"$a", 1, "expected '.' or '['"},
		{"$[", 2, "expected a name, an index or '*'"},
		{"$[]", 2, "expected a name, an index or '*'"},
		{"$['abc", 6, "unterminated name"},
		{"$['a\\q']", 4, "invalid escape"},
		{"$['a'", 5, "expected ']'"},
		{"$['a'x", 5, "expected ']'"},
		{"$[1", 3, "expected ']'"},
		{"$[1x]", 3, "expected ']'"},
		{"$[01]", 2, "invalid index"},
		{"$[-1]", 2, "negative index"},
		{"$[99999999999]", 2, "index too large"},
		{"$[*", 3, "expected ']'"},
		{"@.a[*]x", 6, "expected '.' or '['"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_path_t *p = NULL;
		json_error_t err = {0};
		if (json_path_compile(bad[i].expr, &p, &err) == 0)
			fail_msg("'%s' compiled", bad[i].expr);
		if (err.offset != bad[i].offset || strcmp(err.reason, bad[i].reason) != 0)
			fail_msg("'%s': got %zu '%s', want %zu '%s'", bad[i].expr, err.offset, err.reason,
			         bad[i].offset, bad[i].reason);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(selections),
		cmocka_unit_test(root_selects_document),
		cmocka_unit_test(wildcard_on_root_object),
		cmocka_unit_test(missing_selects_nothing),
		cmocka_unit_test(current_node),
		cmocka_unit_test(visitor_can_stop),
		cmocka_unit_test(compile_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
