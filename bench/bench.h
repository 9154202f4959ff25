/* bench/bench.h: `ringfill bench [SUITE...] [--json FILE] [--baseline FILE
 * --max-regress PCT]` (DESIGN §7). Benchmarks measure speed; they are not
 * tests. */
#ifndef RF_BENCH_H
#define RF_BENCH_H

int bench_main(int argc, char **argv);

#endif
