/* tests/parse/test_parse_cli.c: `ringfill parse` as a user runs it.
 *
 * Calls parse_main (what engine/main.c dispatches to) on files in a fresh
 * temporary directory, with stdout and stderr redirected to files, and checks
 * exit codes and the exact output lines. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "parse/json.h"

#define CLI_OUTPUT_BYTES_MAX 8192

static char dir[] = "/tmp/rf_parse_cli_XXXXXX";

typedef struct {
	int code;
	char out[CLI_OUTPUT_BYTES_MAX];
	char err[CLI_OUTPUT_BYTES_MAX];
} result_t;

static void path_in_dir(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
	char path[512];
	path_in_dir(path, sizeof path, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

static void slurp(const char *path, char *buf)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, CLI_OUTPUT_BYTES_MAX - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
}

static int redirect(int fd, const char *path)
{
	int saved = dup(fd);
	int f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && f >= 0);
	dup2(f, fd);
	close(f);
	return saved;
}

/* Runs parse_main with argv (NULL-terminated, argv[0] = "parse"). */
static void run(result_t *r, const char *const *args)
{
	char *argv[16];
	int argc = 0;
	for (; args[argc]; argc++)
		argv[argc] = (char *)args[argc];
	argv[argc] = NULL;
	char out_path[512], err_path[512];
	path_in_dir(out_path, sizeof out_path, "stdout");
	path_in_dir(err_path, sizeof err_path, "stderr");
	fflush(stdout);
	fflush(stderr);
	int so = redirect(STDOUT_FILENO, out_path), se = redirect(STDERR_FILENO, err_path);
	r->code = parse_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, STDOUT_FILENO);
	dup2(se, STDERR_FILENO);
	close(so);
	close(se);
	slurp(out_path, r->out);
	slurp(err_path, r->err);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	const char *names[] = {"doc.json", "bad.json", "lines.ndjson", "lines.txt", "empty.json",
	                       "big.json"};
	char path[512];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		path_in_dir(path, sizeof path, names[i]);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

static char *file_arg(const char *name)
{
	static char paths[4][512];
	static unsigned next;
	char *p = paths[next++ % 4];
	path_in_dir(p, 512, name);
	return p;
}

static void selects_values(void **state)
{
	(void)state;
	write_file("doc.json", "{\"a\": [ {\"b\": 1}, {\"b\": \"two\"} ],\n \"c\": {\"d\" : [ ]}}\n");
	result_t r;
	const char *args[] = {"parse", "--select", "$.a[*].b", "--select=$.c", file_arg("doc.json"),
	                      NULL};
	run(&r, args);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "1\n\"two\"\n{\"d\":[]}\n");
	assert_string_equal(r.err, "");

	const char *quiet[] = {"parse", file_arg("doc.json"), NULL};
	run(&r, quiet);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "");
}

static void invalid_document(void **state)
{
	(void)state;
	write_file("bad.json", "{\"a\": 1,\n \"b\": [1, 2,]}");
	result_t r;
	char *file = file_arg("bad.json");
	const char *args[] = {"parse", "--select", "$.a", file, NULL};
	run(&r, args);
	assert_int_equal(r.code, 1);
	assert_string_equal(r.out, ""); /* a whole document is validated before printing */
	char want[1024];
	snprintf(want, sizeof want, "%s:20: trailing comma (line 2)\n", file);
	assert_string_equal(r.err, want);
}

/* --on-demand prints what --select prints; a fault off the paths passes,
 * one on them fails; it needs --select on one document. */
static void on_demand(void **state)
{
	(void)state;
	write_file("doc.json", "{\"a\": [ {\"b\": 1}, {\"b\": \"two\"} ],\n \"c\": {\"d\" : [ ]}}\n");
	result_t r;
	const char *args[] = {"parse", "--select", "$.a[*].b", "--on-demand", "--select=$.c",
	                      file_arg("doc.json"), NULL};
	run(&r, args);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "1\n\"two\"\n{\"d\":[]}\n");
	assert_string_equal(r.err, "");

	write_file("bad.json", "{\"a\": 01,\n \"b\": [1, 2]}");
	char *file = file_arg("bad.json");
	const char *off_path[] = {"parse", "--on-demand", "--select", "$.b[1]", file, NULL};
	run(&r, off_path);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "2\n");
	const char *full[] = {"parse", "--select", "$.b[1]", file, NULL};
	run(&r, full);
	assert_int_equal(r.code, 1); /* full validation stays the default */
	const char *on_path[] = {"parse", "--on-demand", "--select", "$.b", "--select", "$.a", file,
	                         NULL};
	run(&r, on_path);
	assert_int_equal(r.code, 1);
	assert_string_equal(r.out, ""); /* every path is walked before anything is printed */
	char want[1024];
	snprintf(want, sizeof want, "%s:7: invalid number (line 1)\n", file);
	assert_string_equal(r.err, want);

	const char *no_select[] = {"parse", "--on-demand", file, NULL};
	run(&r, no_select);
	assert_int_equal(r.code, 2);
	const char *rows[] = {"parse", "--on-demand", "--select", "$", "--rows", "$[*]", file, NULL};
	run(&r, rows);
	assert_int_equal(r.code, 2);
}

/* --on-demand on NDJSON: each line walked on demand (a fault off the paths
 * passes), values printed line by line, an error on a path stops the run
 * with its absolute offset and line. */
static void on_demand_ndjson(void **state)
{
	(void)state;
	write_file("od.ndjson", "{\"a\": 01, \"b\": [1]}\r\n\n{\"b\": 2}\n{\"b\": tru}\n{\"b\": 4}\n");
	char *file = file_arg("od.ndjson");
	result_t r;
	const char *args[] = {"parse", "--on-demand", "--select", "$.b", file, NULL};
	run(&r, args);
	assert_int_equal(r.code, 1);
	assert_string_equal(r.out, "[1]\n2\n");
	char want[1024];
	snprintf(want, sizeof want, "%s:40: unexpected character (line 4)\n", file);
	assert_string_equal(r.err, want);
	const char *full[] = {"parse", "--select", "$.b", file, NULL};
	run(&r, full);
	assert_int_equal(r.code, 1); /* fully validated, line 1 already fails */
	snprintf(want, sizeof want, "%s:7: invalid number (line 1)\n", file);
	assert_string_equal(r.err, want);

	write_file("od.txt", "[1, [2]]\n[3, 4]\n");
	const char *flag[] = {"parse", "--on-demand", "--ndjson", "--select", "$[1]", "--select",
	                      "$[0]", file_arg("od.txt"), NULL};
	run(&r, flag);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "[2]\n1\n4\n3\n");
}

static void ndjson_by_name_and_flag(void **state)
{
	(void)state;
	const char *text = "{\"id\": 1}\r\n\n{\"id\": 2, \"x\": [1]}\n{\"id\": 3}";
	write_file("lines.ndjson", text);
	write_file("lines.txt", text);
	result_t r;
	const char *by_name[] = {"parse", "--select", "$.id", file_arg("lines.ndjson"), NULL};
	run(&r, by_name);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "1\n2\n3\n");

	const char *plain[] = {"parse", "--select", "$.id", file_arg("lines.txt"), NULL};
	run(&r, plain);
	assert_int_equal(r.code, 1); /* not NDJSON: trailing data after the first line */

	const char *flag[] = {"parse", "--ndjson", "--select", "$.x", file_arg("lines.txt"), NULL};
	run(&r, flag);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "[1]\n");
}

static void ndjson_error_on_line_three(void **state)
{
	(void)state;
	write_file("lines.ndjson", "1\n2\n[3 4]\n5\n");
	result_t r;
	char *file = file_arg("lines.ndjson");
	const char *args[] = {"parse", "--select", "$", file, NULL};
	run(&r, args);
	assert_int_equal(r.code, 1);
	assert_string_equal(r.out, "1\n2\n"); /* lines before the bad one were printed */
	char want[1024];
	snprintf(want, sizeof want, "%s:7: unexpected character (line 3)\n", file);
	assert_string_equal(r.err, want);
}

static void usage_and_file_errors(void **state)
{
	(void)state;
	result_t r;
	char *missing = file_arg("missing.json");
	const char *a1[] = {"parse", missing, NULL};
	run(&r, a1);
	assert_int_equal(r.code, 2);
	char want[1024];
	snprintf(want, sizeof want, "%s: No such file or directory\n", missing);
	assert_string_equal(r.err, want);

	const char *a2[] = {"parse", NULL};
	run(&r, a2);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "no FILE given"));

	const char *a3[] = {"parse", "--select", "a.b", file_arg("doc.json"), NULL};
	run(&r, a3);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "expected '$' or '@' at offset 0"));

	const char *a4[] = {"parse", "--frobnicate", file_arg("doc.json"), NULL};
	run(&r, a4);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "unknown option '--frobnicate'"));

	const char *a5[] = {"parse", file_arg("doc.json"), file_arg("bad.json"), NULL};
	run(&r, a5);
	assert_int_equal(r.code, 2);

	const char *a6[] = {"parse", "--select", NULL};
	run(&r, a6);
	assert_int_equal(r.code, 2);

	const char *help[] = {"parse", "--help", NULL};
	run(&r, help);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "usage: ringfill parse"));
}

static void empty_file_is_invalid(void **state)
{
	(void)state;
	write_file("empty.json", "");
	result_t r;
	char *file = file_arg("empty.json");
	const char *args[] = {"parse", file, NULL};
	run(&r, args);
	assert_int_equal(r.code, 1);
	char want[1024];
	snprintf(want, sizeof want, "%s:0: empty document (line 1)\n", file);
	assert_string_equal(r.err, want);
}

/* --rows streams: records print as they complete (so those before an error
 * are out when it is reported), '@' selects read the record, '$' selects the
 * values before the first record. */
static void rows_streams_records(void **state)
{
	(void)state;
	write_file("doc.json", "{\"meta\": {\"v\": 9},\n \"items\": [{\"id\": 1, \"n\": \"a\"},\n"
	                       "  {\"id\": 2}], \"after\": 3}");
	result_t r;
	const char *all[] = {"parse", "--rows", "$.items[*]", file_arg("doc.json"), NULL};
	run(&r, all);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "{\"id\":1,\"n\":\"a\"}\n{\"id\":2}\n");

	const char *sel[] = {"parse", "--rows=$.items[*]", "--select", "@.id", "--select",
	                     "$.meta.v", "--select", "$.after", file_arg("doc.json"), NULL};
	run(&r, sel);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "1\n9\n2\n9\n");

	const char *count[] = {"parse", "--rows", "$.items[*]", "--count", file_arg("doc.json"),
	                       NULL};
	run(&r, count);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "2\n");

	write_file("bad.json", "{\"items\": [1,\n 2,\n ]}");
	const char *bad[] = {"parse", "--rows", "$.items[*]", file_arg("bad.json"), NULL};
	run(&r, bad);
	assert_int_equal(r.code, 1);
	assert_string_equal(r.out, "1\n2\n");
	char want[600];
	snprintf(want, sizeof want, "%s:16: trailing comma (line 2)\n", file_arg("bad.json"));
	assert_string_equal(r.err, want);

	const char *rel[] = {"parse", "--rows", "@.items", file_arg("doc.json"), NULL};
	run(&r, rel);
	assert_int_equal(r.code, 2);
	const char *cnt[] = {"parse", "--count", file_arg("doc.json"), NULL};
	run(&r, cnt);
	assert_int_equal(r.code, 2);
}

/* Writes big.json: `{"meta":{"n":1},"items":[R,R,...]}` past 16 MiB (where
 * validation streams), with `bad` (if not NULL) as record number 100000 and
 * `huge` extra bytes of string in record 10 (a value over the stream limit). */
static void write_big(const char *bad, size_t huge)
{
	char path[512];
	path_in_dir(path, sizeof path, "big.json");
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs("{\"meta\":{\"n\":1},\n\"items\":[", f);
	for (unsigned i = 0; i < 300000; i++) {
		if (i == 100000 && bad)
			fprintf(f, "%s,\n", bad);
		else if (i == 10 && huge) {
			fputs("{\"s\":\"", f);
			for (size_t k = 0; k < huge; k++)
				fputc('y', f);
			fputs("\"},\n", f);
		} else
			fprintf(f, "{\"id\":%u,\"name\":\"record number %u with some padding text\","
			           "\"tags\":[\"a\",\"b\"]},\n", i, i);
	}
	fputs("{}]}\n", f);
	assert_true(ftell(f) > 16 << 20); /* past the streaming threshold */
	fclose(f);
}

/* Without --select, a big file is validated streamed: same verdict and
 * error as parsing it whole (--select forces the whole-file path here). */
static void big_file_validated_streamed(void **state)
{
	(void)state;
	result_t r, whole;
	const char *plain[] = {"parse", file_arg("big.json"), NULL};
	const char *sel[] = {"parse", "--select", "$.none", file_arg("big.json"), NULL};
	write_big(NULL, 0);
	run(&r, plain);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "");
	write_big("{\"id\":1,}", 0);
	run(&r, plain);
	run(&whole, sel);
	assert_int_equal(r.code, 1);
	assert_int_equal(whole.code, 1);
	assert_non_null(strstr(r.err, "trailing comma (line 100002)"));
	assert_string_equal(r.err, whole.err);
	/* A 17 MiB string is over the stream's limit: parsed whole instead. */
	write_big(NULL, 17u << 20);
	run(&r, plain);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(selects_values),
		cmocka_unit_test(invalid_document),
		cmocka_unit_test(on_demand),
		cmocka_unit_test(on_demand_ndjson),
		cmocka_unit_test(ndjson_by_name_and_flag),
		cmocka_unit_test(ndjson_error_on_line_three),
		cmocka_unit_test(usage_and_file_errors),
		cmocka_unit_test(empty_file_is_invalid),
		cmocka_unit_test(rows_streams_records),
		cmocka_unit_test(big_file_validated_streamed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
