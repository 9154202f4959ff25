/* tests/parse/each_kernel.h: runs a cmocka group once per stage-1 kernel
 * this CPU has (parse/json_internal.h: json_stage1_kernels), as group
 * "SUITE/KERNEL", for the parse tests whose every case must hold on every
 * kernel (test_json_suite.c, test_json_stream.c, test_json_select.c).
 * Include after <cmocka.h> and parse/json_internal.h. */
#ifndef RF_TEST_EACH_KERNEL_H
#define RF_TEST_EACH_KERNEL_H

#include <stdio.h>

/* The number of failed tests over all kernels; 1 when a kernel the CPU
 * listed cannot be selected. */
static int run_on_each_kernel(const char *suite, const struct CMUnitTest *tests, size_t n_tests,
                              CMFixtureFunction setup, CMFixtureFunction teardown)
{
	const json_stage1_kernel_t *kernels;
	size_t n_kernels = json_stage1_kernels(&kernels);
	int failed = 0;
	for (size_t i = 0; i < n_kernels; i++) {
		if (json_stage1_use(kernels[i].name) != 0)
			return 1;
		char group[64];
		snprintf(group, sizeof group, "%s/%s", suite, kernels[i].name);
		printf("== stage-1 kernel: %s\n", kernels[i].name);
		failed += _cmocka_run_group_tests(group, tests, n_tests, setup, teardown);
	}
	return failed;
}

#define RUN_ON_EACH_KERNEL(suite, tests, setup, teardown) \
	run_on_each_kernel((suite), (tests), sizeof(tests) / sizeof((tests)[0]), (setup), (teardown))

#endif
