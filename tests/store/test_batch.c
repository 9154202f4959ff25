/* tests/store/test_batch.c: row flattening and the batch encoding.
 *
 * Parses JSON with parse/json.h, selects rows with a JSONPath, flattens them
 * with batch_add_rows (store/batch.c) and reads them back with the iterator
 * the writer uses. Each row is rendered as "name=type:value ..." so a test
 * states the expected columns and types in one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse/json.h"
#include "store/batch.h"

#define ROW_TEXT_BYTES 8192

static void render_field(const batch_field_t *f, char *out, size_t cap)
{
	int64_t i;
	double x;
	int n = snprintf(out, cap, " %.*s=", (int)f->name_len, f->name);
	out += n;
	cap -= (size_t)n;
	switch (f->type) {
	case FIELD_NULL:
		snprintf(out, cap, "n");
		break;
	case FIELD_INT:
		assert_int_equal(f->value_len, 8);
		memcpy(&i, f->value, 8);
		snprintf(out, cap, "i:%lld", (long long)i);
		break;
	case FIELD_REAL:
		assert_int_equal(f->value_len, 8);
		memcpy(&x, f->value, 8);
		snprintf(out, cap, "r:%g", x);
		break;
	case FIELD_TEXT:
		snprintf(out, cap, "t:%.*s", (int)f->value_len, f->value);
		break;
	case FIELD_BIGINT:
		snprintf(out, cap, "g:%.*s", (int)f->value_len, f->value);
		break;
	case FIELD_JSON:
		snprintf(out, cap, "j:%.*s", (int)f->value_len, f->value);
		break;
	case FIELD_BOOL:
		assert_int_equal(f->value_len, 1);
		snprintf(out, cap, "b:%d", f->value[0]);
		break;
	}
}

/* Renders every row of b, one string per row, into rows[]. Returns the count. */
static int render_rows(const batch_t *b, char rows[][ROW_TEXT_BYTES], int max)
{
	batch_iter_t it;
	batch_iter_init(&it, b);
	int n = 0, nf;
	while ((nf = batch_next_row(&it)) >= 0) {
		assert_true(n < max);
		rows[n][0] = '\0';
		for (int i = 0; i < nf; i++) {
			batch_field_t f;
			size_t used = strlen(rows[n]);
			batch_next_field(&it, &f);
			render_field(&f, rows[n] + used, ROW_TEXT_BYTES - used);
		}
		n++;
	}
	assert_int_equal(it.pos, b->rows.len);
	return n;
}

/* Adds the rows path selects from json to b; returns batch_add_rows' result. */
static int add(batch_t *b, const char *json, const char *path, const char **reason)
{
	json_parser_t *p = json_parser_new(0);
	json_path_t *jp;
	json_doc_t d;
	json_error_t e;
	assert_non_null(p);
	assert_int_equal(json_parse(p, json, strlen(json), &d, &e), 0);
	assert_int_equal(json_path_compile(path, &jp, &e), 0);
	int rc = batch_add_rows(b, &d, jp, reason);
	json_path_free(jp);
	json_parser_free(p);
	return rc;
}

/* One document, root selected: the single rendered row. */
static void expect_row(const char *json, const char *want)
{
	char rows[2][ROW_TEXT_BYTES];
	const char *reason = NULL;
	batch_t *b = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(add(b, json, "$", &reason), 0);
	assert_int_equal(b->n_rows, 1);
	assert_int_equal(render_rows(b, rows, 2), 1);
	assert_string_equal(rows[0], want);
	batch_free(b);
}

static void test_scalars(void **state)
{
	(void)state;
	expect_row("{\"a\":1,\"b\":\"x\\ty\\u00e9\",\"c\":1.5,\"d\":true,\"e\":false,\"f\":null}",
	           " a=i:1 b=t:x\ty\xc3\xa9 c=r:1.5 d=b:1 e=b:0 f=n");
}

static void test_nested_objects_flatten_with_underscore(void **state)
{
	(void)state;
	expect_row("{\"user\":{\"name\":\"A\",\"addr\":{\"city\":\"B\"}},\"id\":2}",
	           " user_name=t:A user_addr_city=t:B id=i:2");
	/* An empty object would otherwise leave no column at all. */
	expect_row("{\"meta\":{},\"k\":1}", " meta=j:{} k=i:1");
}

static void test_arrays_become_compact_json(void **state)
{
	(void)state;
	expect_row("{\"tags\": [ \"a\" , 1, {\"x\" : null} ], \"e\": [ ]}",
	           " tags=j:[\"a\",1,{\"x\":null}] e=j:[]");
	/* Compact already (copied whole), spaces inside strings only, escapes
	 * and numbers as written; one space deep inside is still taken out. */
	expect_row("{\"a\":[\"x y\",-1.50e3,true,{\"k\":[[],{}],\"\\u00e9\":\"\\\"\"}],\"b\":[{}]}",
	           " a=j:[\"x y\",-1.50e3,true,{\"k\":[[],{}],\"\\u00e9\":\"\\\"\"}] b=j:[{}]");
	expect_row("{\"a\":[1,{\"k\": 2}],\"b\":[1\n]}", " a=j:[1,{\"k\":2}] b=j:[1]");
}

static void test_numbers(void **state)
{
	(void)state;
	expect_row("{\"max\":9223372036854775807,\"min\":-9223372036854775808}",
	           " max=i:9223372036854775807 min=i:-9223372036854775808");
	/* Integers beyond int64 keep every digit as text. */
	expect_row("{\"big\":12345678901234567890,\"low\":-9223372036854775809}",
	           " big=g:12345678901234567890 low=g:-9223372036854775809");
	expect_row("{\"e\":1e3,\"f\":-0.25,\"g\":2.0}", " e=r:1000 f=r:-0.25 g=r:2");
}

static void test_non_object_rows_use_value_column(void **state)
{
	(void)state;
	char rows[8][ROW_TEXT_BYTES];
	const char *reason = NULL;
	batch_t *b = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(add(b, "[1,\"s\",[2,3],null,true,{\"a\":1}]", "$[*]", &reason), 0);
	assert_int_equal(render_rows(b, rows, 8), 6);
	assert_string_equal(rows[0], " value=i:1");
	assert_string_equal(rows[1], " value=t:s");
	assert_string_equal(rows[2], " value=j:[2,3]");
	assert_string_equal(rows[3], " value=n");
	assert_string_equal(rows[4], " value=b:1");
	assert_string_equal(rows[5], " a=i:1");
	/* A second document appends to the same batch. */
	assert_int_equal(add(b, "{\"z\":\"q\"}", "$", &reason), 0);
	assert_int_equal(render_rows(b, rows, 8), 7);
	assert_string_equal(rows[6], " z=t:q");
	batch_free(b);
}

static void test_names_keep_case_and_escapes(void **state)
{
	(void)state;
	/* Mapping "Name" and "name" to distinct columns is the writer's job. */
	expect_row("{\"Name\":1,\"name\":2,\"a\\\"b\":3,\"\":4}", " Name=i:1 name=i:2 a\"b=i:3 =i:4");
}

static void test_colliding_names_are_refused(void **state)
{
	(void)state;
	const char *reason = NULL;
	batch_t *b = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(add(b, "{\"x\":1}", "$", &reason), 0);
	size_t len = b->rows.len;
	assert_int_equal(add(b, "{\"a_b\":1,\"a\":{\"b\":2}}", "$", &reason), -1);
	/* The reason names the column (before 2026-12-08 it named none). */
	assert_string_equal(reason, "two fields of a record flatten to the column name \"a_b\" "
	                            "(a key written so, and a nested one or a repeated key)");
	/* The batch is as it was before the failed call. */
	assert_int_equal(b->n_rows, 1);
	assert_int_equal(b->rows.len, len);
	assert_int_equal(add(b, "{\"k\\u0000\\n\":1,\"k\\u0000\\n\":2}", "$", &reason), -1);
	assert_non_null(strstr(reason, "column name \"k??\""));
	/* A long name is cut at 64 bytes, not inside a UTF-8 character. */
	char doc[300], want[100];
	char a63[64];
	memset(a63, 'a', 63), a63[63] = 0;
	snprintf(doc, sizeof(doc), "{\"%s\u00e9_x\":1,\"%s\u00e9\":{\"x\":2}}", a63, a63);
	assert_int_equal(add(b, doc, "$", &reason), -1);
	snprintf(want, sizeof(want), "column name \"%s...\"", a63);
	assert_non_null(strstr(reason, want));
	batch_free(b);
}

static void test_long_names_are_refused(void **state)
{
	(void)state;
	char json[1024], key[300];
	const char *reason = NULL;
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"a\":{\"%s\":1}}", key);
	batch_t *b = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(add(b, json, "$", &reason), -1);
	assert_non_null(strstr(reason, "longer than"));
	assert_int_equal(b->n_rows, 0);
	/* Exactly the limit is fine. */
	key[BATCH_COLUMN_NAME_BYTES_MAX] = '\0';
	snprintf(json, sizeof(json), "{\"%s\":1}", key);
	assert_int_equal(add(b, json, "$", &reason), 0);
	batch_free(b);
}

static void test_many_fields(void **state)
{
	(void)state;
	char json[16384];
	size_t n = 0;
	const char *reason = NULL;
	n += (size_t)snprintf(json + n, sizeof(json) - n, "{");
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"f%d\":%d", i ? "," : "", i, i);
	snprintf(json + n, sizeof(json) - n, "}");
	batch_t *b = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(add(b, json, "$", &reason), 0);
	batch_iter_t it;
	batch_iter_init(&it, b);
	assert_int_equal(batch_next_row(&it), 500);
	for (int i = 0; i < 500; i++) {
		batch_field_t f;
		char want[16];
		int64_t v;
		batch_next_field(&it, &f);
		snprintf(want, sizeof(want), "f%d", i);
		assert_int_equal(f.name_len, strlen(want));
		assert_memory_equal(f.name, want, f.name_len);
		memcpy(&v, f.value, 8);
		assert_int_equal(v, i);
	}
	assert_int_equal(batch_next_row(&it), -1);
	batch_free(b);
}

/* Rows past the size where the buffer moves to huge pages (a checkpoint
 * batch of an NDJSON page) come back intact, whether the buffer grew row by
 * row or was made big enough at once with batch_rows_reserve. */
static void test_big_rows_grow_and_reserve(void **state)
{
	(void)state;
	enum { DOCS = 6000 }; /* about 6 MB of rows: past 2 MiB and grown again after */
	static char json[4096];
	const char *reason = NULL;
	batch_t *grown = batch_new(BATCH_JOB_DONE, 1), *reserved = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(batch_rows_reserve(reserved, 8u << 20), 0);
	assert_true(reserved->rows.cap >= 8u << 20);
	char *before = reserved->rows.data;
	for (int i = 0; i < DOCS; i++) {
		size_t n = (size_t)snprintf(json, sizeof json, "{\"id\":%d,\"pad\":[", i);
		for (int k = 0; k < 200; k++)
			n += (size_t)snprintf(json + n, sizeof json - n, "%s%d", k ? "," : "", i + k);
		snprintf(json + n, sizeof json - n, "],\"s\":\"x%d\"}", i);
		assert_int_equal(add(grown, json, "$", &reason), 0);
		assert_int_equal(add(reserved, json, "$", &reason), 0);
	}
	assert_true(grown->rows.len > 4u << 20);
	assert_ptr_equal(reserved->rows.data, before); /* never moved */
	assert_int_equal(grown->rows.len, reserved->rows.len);
	assert_memory_equal(grown->rows.data, reserved->rows.data, grown->rows.len);
	batch_iter_t it;
	batch_iter_init(&it, grown);
	for (int i = 0; i < DOCS; i++) {
		batch_field_t f;
		int64_t v;
		char want[16];
		assert_int_equal(batch_next_row(&it), 3);
		batch_next_field(&it, &f);
		memcpy(&v, f.value, 8);
		assert_int_equal(v, i);
		batch_next_field(&it, &f);
		assert_int_equal(f.type, FIELD_JSON);
		batch_next_field(&it, &f);
		snprintf(want, sizeof want, "x%d", i);
		assert_int_equal(f.value_len, strlen(want));
		assert_memory_equal(f.value, want, f.value_len);
	}
	assert_int_equal(batch_next_row(&it), -1);
	batch_free(grown);
	batch_free(reserved);
}

static void test_fail_sets_kind_class_and_one_line(void **state)
{
	(void)state;
	const char *reason = NULL;
	batch_t *b = batch_new(BATCH_JOB_DONE, 7);
	assert_int_equal(add(b, "{\"x\":1}", "$", &reason), 0);
	batch_fail(b, ERROR_CLASS_PERMANENT, "HTTP %d: %s", 404, "Not\nFound");
	assert_int_equal(b->kind, BATCH_JOB_FAILED);
	assert_int_equal(b->error_class, ERROR_CLASS_PERMANENT);
	assert_string_equal(b->error, "HTTP 404: Not Found");
	assert_int_equal(b->n_rows, 0);
	assert_int_equal(b->job_id, 7);
	batch_free(b);
	batch_free(NULL);
}

/* ---- batch_docvals_t and batch_add_record (the streamed document's way,
 * engine/docstream.c) give batch_add_doc's rows byte for byte. */

static json_path_t *path_of(const char *expr)
{
	json_path_t *p = NULL;
	json_error_t e;
	assert_int_equal(json_path_compile(expr, &p, &e), 0);
	return p;
}

static void column(column_spec_t *c, const char *name, const char *expr, column_type_t type)
{
	*c = (column_spec_t){.name = strdup(name), .expr = strdup(expr),
	                     .from = expr[0] == '$' ? COLUMN_FROM_DOC : COLUMN_FROM_ROW,
	                     .path = path_of(expr), .type = type};
}

static void test_doc_values_once_equal_whole_doc(void **state)
{
	(void)state;
	static const char doc_text[] =
		"{\"meta\":{\"x\":\"a\",\"y\":\"7\",\"z\":\"N/A\"},"
		"\"items\":[{\"id\":1},{\"id\":2,\"w\":[1]}]}";
	table_spec_t *t = calloc(2, sizeof *t);
	assert_non_null(t);
	/* items: rows $.items[*]; a `$` table whose `@` columns read the root */
	t[0].name = strdup("items");
	t[0].rows = path_of("$.items[*]");
	t[0].n_cols = 5;
	t[0].cols = calloc(5, sizeof *t[0].cols);
	column(&t[0].cols[0], "id", "@.id", COLUMN_INTEGER);
	column(&t[0].cols[1], "x", "$.meta.x", COLUMN_AUTO);
	column(&t[0].cols[2], "y", "$.meta.y", COLUMN_INTEGER);
	column(&t[0].cols[3], "z", "$.meta.z", COLUMN_TEXT);
	column(&t[0].cols[4], "none", "$.nowhere", COLUMN_AUTO);
	t[0].null_if = calloc(1, sizeof *t[0].null_if);
	t[0].null_if[0] = strdup("N/A");
	t[0].n_null_if = 1;
	t[1].name = strdup("doc");
	t[1].rows = path_of("$");
	t[1].n_cols = 2;
	t[1].cols = calloc(2, sizeof *t[1].cols);
	column(&t[1].cols[0], "x", "@.meta.x", COLUMN_AUTO);
	column(&t[1].cols[1], "y", "$.meta.y", COLUMN_REAL);

	json_parser_t *p = json_parser_new(0);
	json_doc_t doc;
	json_error_t e;
	const char *reason = NULL;
	assert_int_equal(json_parse(p, doc_text, sizeof doc_text - 1, &doc, &e), 0);
	batch_t *whole = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(batch_add_doc(whole, t, 2, &doc, NULL, &reason), 0);
	assert_int_equal(whole->n_rows, 3);

	/* The same rows from the records and the values, as a stream has them:
	 * `$` values set once, before the records; "none" never set. */
	batch_t *streamed = batch_new(BATCH_JOB_DONE, 1);
	batch_names_t names = {0};
	batch_docvals_t *dv0 = batch_docvals_new(&t[0]), *dv1 = batch_docvals_new(&t[1]);
	uint32_t meta = json_object_get(&doc, 0, "meta", 4);
	assert_int_equal(batch_docvals_set(dv0, 1, &doc, json_object_get(&doc, meta, "x", 1), &reason), 0);
	assert_int_equal(batch_docvals_set(dv0, 2, &doc, json_object_get(&doc, meta, "y", 1), &reason), 0);
	assert_int_equal(batch_docvals_set(dv0, 3, &doc, json_object_get(&doc, meta, "z", 1), &reason), 0);
	assert_true(batch_docvals_has(dv0, 1));
	assert_false(batch_docvals_has(dv0, 4));
	uint32_t items = json_object_get(&doc, 0, "items", 5);
	for (uint32_t n = items + 1, i = 0; i < 2; i++, n = doc.nodes[n].next)
		assert_int_equal(batch_add_record(streamed, &t[0], 0, &doc, n, dv0, NULL, &names, &reason), 0);
	assert_int_equal(batch_docvals_set(dv1, 0, &doc, json_object_get(&doc, meta, "x", 1), &reason), 0);
	assert_int_equal(batch_docvals_set(dv1, 1, &doc, json_object_get(&doc, meta, "y", 1), &reason), 0);
	assert_int_equal(batch_add_record(streamed, &t[1], 1, NULL, 0, dv1, NULL, NULL, &reason), 0);

	assert_int_equal(streamed->n_rows, whole->n_rows);
	assert_int_equal(streamed->rows.len, whole->rows.len);
	assert_memory_equal(streamed->rows.data, whole->rows.data, whole->rows.len);
	char rows[3][ROW_TEXT_BYTES];
	assert_int_equal(render_rows(streamed, rows, 3), 3);
	assert_string_equal(rows[0], " id=i:1 x=t:a y=i:7 z=n none=n");
	assert_string_equal(rows[2], " x=t:a y=r:7");

	batch_docvals_clear(dv0);
	assert_false(batch_docvals_has(dv0, 1));
	batch_docvals_free(dv0);
	batch_docvals_free(dv1);
	batch_names_free(&names);
	batch_free(whole);
	batch_free(streamed);
	json_parser_free(p);
	table_specs_free(t, 2);
}

/* Row columns whose paths share a first name are found in one pass over
 * the row (store/batch.c, struct batch_row_plan) with what json_path_each
 * would select: the last of duplicate members, escaped keys, the rest of a
 * path walked from the member, rows that are no object, and string ids as
 * integers (18 digits and fewer without strtoll, longer ones through it;
 * one beyond int64 kept as its digits, a BIGINT field). */
static void test_declared_columns_of_a_row(void **state)
{
	(void)state;
	static const char doc_text[] =
		"{\"rows\":[{\"a\":{\"b\":1,\"c\":\"x\"},\"id\":\"0012\",\"a\":{\"b\":2},"
		"\"k\\u0065y\":\"v\",\"n\":\"-123456789012345678\",\"big\":\"12345678901234567890\"},"
		"5,{\"id\":\"-7\",\"key\":1,\"a\":[{\"b\":3}]},{\"a\":[{\"b\":4}],\"id\":\"9.0\"}]}";
	table_spec_t *t = calloc(1, sizeof *t);
	assert_non_null(t);
	t->name = strdup("r");
	t->rows = path_of("$.rows[*]");
	t->n_cols = 9;
	t->cols = calloc(9, sizeof *t->cols);
	column(&t->cols[0], "ab", "@.a.b", COLUMN_INTEGER);
	column(&t->cols[1], "ac", "@.a.c", COLUMN_AUTO);
	column(&t->cols[2], "id", "@.id", COLUMN_INTEGER);
	column(&t->cols[3], "key", "@.key", COLUMN_TEXT);
	column(&t->cols[4], "a0b", "@.a[0].b", COLUMN_INTEGER);
	column(&t->cols[5], "n", "@.n", COLUMN_INTEGER);
	column(&t->cols[6], "big", "@.big", COLUMN_INTEGER);
	column(&t->cols[7], "first", "$.rows[0].id", COLUMN_TEXT);
	column(&t->cols[8], "self", "@", COLUMN_AUTO);

	json_parser_t *p = json_parser_new(0);
	json_doc_t doc;
	json_error_t e;
	const char *reason = NULL;
	assert_int_equal(json_parse(p, doc_text, sizeof doc_text - 1, &doc, &e), 0);
	batch_t *b = batch_new(BATCH_JOB_DONE, 1);
	assert_int_equal(batch_add_doc(b, t, 1, &doc, NULL, &reason), 0);
	char rows[4][ROW_TEXT_BYTES];
	assert_int_equal(render_rows(b, rows, 4), 4);
	assert_string_equal(rows[0], " ab=i:2 ac=n id=i:12 key=t:v a0b=n n=i:-123456789012345678"
	                             " big=g:12345678901234567890 first=t:0012"
	                             " self=j:{\"a\":{\"b\":1,\"c\":\"x\"},"
	                             "\"id\":\"0012\",\"a\":{\"b\":2},\"k\\u0065y\":\"v\","
	                             "\"n\":\"-123456789012345678\",\"big\":\"12345678901234567890\"}");
	assert_string_equal(rows[1], " ab=n ac=n id=n key=n a0b=n n=n big=n first=t:0012 self=i:5");
	assert_string_equal(rows[2], " ab=n ac=n id=i:-7 key=t:1 a0b=i:3 n=n big=n first=t:0012"
	                             " self=j:{\"id\":\"-7\",\"key\":1,\"a\":[{\"b\":3}]}");
	assert_string_equal(rows[3], " ab=n ac=n id=i:9 key=n a0b=i:4 n=n big=n first=t:0012"
	                             " self=j:{\"a\":[{\"b\":4}],\"id\":\"9.0\"}");
	batch_free(b);
	json_parser_free(p);
	table_specs_free(t, 1);
}

/* The raw path: none until set, "dir/name" or the name alone, whole however
 * long, a second set replacing the first (ASan/valgrind see a leak or a
 * double free), freed with the batch. */
static void test_raw_path_is_set_whole_and_replaced(void **state)
{
	(void)state;
	batch_t *b = batch_new(BATCH_JOB_DONE, 1);
	assert_non_null(b);
	assert_null(b->raw_path);
	assert_int_equal(batch_set_raw_path(b, "raw", "example.com/a.json"), 0);
	assert_string_equal(b->raw_path, "raw/example.com/a.json");
	char name[3 * BATCH_PATH_BYTES_MAX];
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	assert_int_equal(batch_set_raw_path(b, NULL, name), 0);
	assert_int_equal(strlen(b->raw_path), sizeof name - 1);
	assert_string_equal(b->raw_path, name);
	batch_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_nested_objects_flatten_with_underscore),
		cmocka_unit_test(test_arrays_become_compact_json),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_non_object_rows_use_value_column),
		cmocka_unit_test(test_names_keep_case_and_escapes),
		cmocka_unit_test(test_colliding_names_are_refused),
		cmocka_unit_test(test_long_names_are_refused),
		cmocka_unit_test(test_many_fields),
		cmocka_unit_test(test_big_rows_grow_and_reserve),
		cmocka_unit_test(test_fail_sets_kind_class_and_one_line),
		cmocka_unit_test(test_doc_values_once_equal_whole_doc),
		cmocka_unit_test(test_declared_columns_of_a_row),
		cmocka_unit_test(test_raw_path_is_set_whole_and_replaced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
