/* bench/bench.h: `ringfill bench [SUITE...] [--runs N] [--quick] [--corpus DIR]
 * [--json FILE] [--baseline FILE --max-regress PCT]` and `ringfill bench
 * --compare RESULT --baseline FILE --max-regress PCT` (DESIGN §7,
 * docs/benchmarks.md). Called by engine/main.c with argv[0] "bench".
 * Benchmarks measure speed; they are not tests. Exit 0, 1 regressed, 2 usage,
 * 3 a benchmark failed. */
#ifndef RF_BENCH_H
#define RF_BENCH_H

int bench_main(int argc, char **argv);

#endif
