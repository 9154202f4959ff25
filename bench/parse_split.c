/* bench/parse_split.c: rf_parse_split, where a parse's time goes between
 * stage 1 and stage 2, per stage-1 kernel.
 *
 *   usage: rf_parse_split [--iters N] FILE...
 *
 * For each FILE (read whole) and each kernel this build and CPU have, times
 * json_stage1 alone and json_parse (stage 1 + stage 2) N times each
 * (default 300), alternating, on the thread's CPU clock, and prints the
 * fastest of each: the minimum is the figure least disturbed by other work
 * on a shared machine. Stage 2 is their difference. simdjson's stage 1 alone
 * is `rf_peer_simdjson stage1 FILE 1 N [IMPL]` (the smallest "run" line);
 * docs/parse.md has figures of both. Exit 0, 1 if a file cannot be read or
 * does not parse, 2 on bad usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/read_file.h"
#include "parse/json.h"
#include "parse/json_internal.h"

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One file, one kernel (already in use): prints its line; 0 or -1. */
static int split(const char *path, const char *src, size_t len, unsigned iters,
                 json_parser_t *p, uint32_t *idx, uint64_t *bslash)
{
	double best1 = 1e30, best = 1e30;
	for (unsigned i = 0; i < iters; i++) {
		uint32_t n_idx;
		json_error_t err;
		double t0 = cpu_s();
		int r1 = json_stage1(src, (uint32_t)len, idx, &n_idx, bslash, false, &err);
		double t1 = cpu_s();
		json_doc_t doc;
		int r = json_parse(p, src, len, &doc, &err);
		double t2 = cpu_s();
		if (r1 < 0 || r < 0) {
			fprintf(stderr, "rf_parse_split: %s:%zu: %s\n", path, err.offset, err.reason);
			return -1;
		}
		if (t1 - t0 < best1)
			best1 = t1 - t0;
		if (t2 - t1 < best)
			best = t2 - t1;
	}
	const char *base = strrchr(path, '/');
	printf("%-28s %-7s %10.1f %10.1f %10.1f %8.2f %8.2f\n", base ? base + 1 : path,
	       json_stage1_name(),
	       best1 * 1e6, best * 1e6, (best - best1) * 1e6, (double)len / best1 / 1e9,
	       (double)len / best / 1e9);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned iters = 300;
	int first = 1;
	if (argc > 2 && !strcmp(argv[1], "--iters")) {
		char *end;
		unsigned long v = strtoul(argv[2], &end, 10);
		if (*end || v == 0 || v > 1000000) {
			fprintf(stderr, "rf_parse_split: --iters: a number from 1 to 1000000\n");
			return 2;
		}
		iters = (unsigned)v;
		first = 3;
	}
	if (first >= argc) {
		fprintf(stderr, "usage: rf_parse_split [--iters N] FILE...\n");
		return 2;
	}
	const json_stage1_kernel_t *kernels;
	size_t n_kernels = json_stage1_kernels(&kernels);
	json_parser_t *p = json_parser_new(0);
	if (!p) {
		fprintf(stderr, "rf_parse_split: out of memory\n");
		return 1;
	}
	printf("%-28s %-7s %10s %10s %10s %8s %8s\n", "file", "kernel", "stage1_us", "parse_us",
	       "stage2_us", "s1_GB/s", "GB/s");
	int rc = 0;
	for (int a = first; a < argc && rc == 0; a++) {
		size_t len = 0;
		char *src = NULL;
		int e = bench_read_file(argv[a], JSON_DOC_BYTES_MAX, &src, &len);
		uint32_t *idx = src ? malloc((len + JSON_STAGE1_IDX_SLACK) * sizeof *idx) : NULL;
		uint64_t *bslash = src ? malloc((JSON_BSLASH_MAP_WORDS(len) + 1) * sizeof *bslash)
		                       : NULL;
		if (!src || !idx || !bslash) {
			fprintf(stderr, "rf_parse_split: %s: %s\n", argv[a],
			        e ? strerror(-e) : "out of memory");
			rc = 1;
		}
		for (size_t k = 0; rc == 0 && k < n_kernels; k++) {
			json_stage1_use(kernels[k].name);
			if (split(argv[a], src, len, iters, p, idx, bslash) < 0)
				rc = 1;
		}
		free(bslash);
		free(idx);
		free(src);
	}
	json_parser_free(p);
	return rc;
}
