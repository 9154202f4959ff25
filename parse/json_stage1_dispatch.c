/* parse/json_stage1_dispatch.c: picks the stage-1 kernel once per process.
 *
 * json_parse (json.c) calls json_stage1 here, which runs the best kernel this
 * CPU supports (json_stage1_avx512.c, json_stage1_avx2.c, json_stage1_sse42.c,
 * json_stage1.c), or the one RINGFILL_ISA names. `ringfill --version` prints json_stage1_name(). */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/json_internal.h"

#define ISA_ENV "RINGFILL_ISA"

/* Every kernel this build has, best first. */
static const json_stage1_kernel_t built[] = {
#if defined(JSON_STAGE1_X86)
	{"avx512", json_stage1_avx512},
	{"avx2", json_stage1_avx2},
	{"sse42", json_stage1_sse42},
#endif
	{"scalar", json_stage1_scalar},
};
#define BUILT_N (sizeof built / sizeof built[0])

static json_stage1_kernel_t usable[BUILT_N]; /* filled once by choose() */
static size_t usable_n;
static _Atomic(const json_stage1_kernel_t *) active;
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

/* The CPU features each kernel was compiled for (parse/meson.build). */
static bool cpu_runs(const json_stage1_kernel_t *k)
{
#if defined(JSON_STAGE1_X86)
	__builtin_cpu_init();
	/* __builtin_cpu_supports reports AVX-512 only when the kernel saves the
	 * 512-bit registers (XCR0), as it does AVX only with the YMM state. */
	if (strcmp(k->name, "avx512") == 0)
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("avx2") &&
		       __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
		       __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("popcnt");
	if (strcmp(k->name, "avx2") == 0)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
		       __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("pclmul") &&
		       __builtin_cpu_supports("popcnt");
	if (strcmp(k->name, "sse42") == 0)
		return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul") &&
		       __builtin_cpu_supports("popcnt");
#endif
	return k->fn == json_stage1_scalar;
}

static const json_stage1_kernel_t *find(const json_stage1_kernel_t *set, size_t n,
                                        const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(set[i].name, name) == 0)
			return &set[i];
	return NULL;
}

/* The best usable kernel, unless RINGFILL_ISA names another usable one. A
 * name that is unknown or not usable here is not fatal (the result is the
 * same on every kernel, only the speed differs): one line on stderr says so. */
static void choose(void)
{
	for (size_t i = 0; i < BUILT_N; i++)
		if (cpu_runs(&built[i]))
			usable[usable_n++] = built[i];
	assert(usable_n > 0 && usable[usable_n - 1].fn == json_stage1_scalar);
	const json_stage1_kernel_t *k = &usable[0];
	const char *want = getenv(ISA_ENV);
	if (want && *want) {
		const json_stage1_kernel_t *w = find(usable, usable_n, want);
		if (w)
			k = w;
		else
			fprintf(stderr, "ringfill: %s=%s: %s; using %s\n", ISA_ENV, want,
			        find(built, BUILT_N, want) ? "not supported by this CPU"
			                                   : "unknown (avx512, avx2, sse42 or scalar)",
			        k->name);
	}
	atomic_store_explicit(&active, k, memory_order_release);
}

static const json_stage1_kernel_t *current(void)
{
	pthread_once(&chosen, choose);
	/* Acquire pairs with the release in choose() and json_stage1_use(). */
	return atomic_load_explicit(&active, memory_order_acquire);
}

int json_stage1(const char *src, uint32_t len, uint32_t *idx, uint32_t *n_out,
                uint64_t *bslash, bool newlines, json_error_t *err)
{
	return current()->fn(src, len, idx, n_out, bslash, newlines, err);
}

const char *json_stage1_name(void)
{
	return current()->name;
}

size_t json_stage1_kernels(const json_stage1_kernel_t **out)
{
	pthread_once(&chosen, choose);
	*out = usable;
	return usable_n;
}

int json_stage1_use(const char *name)
{
	pthread_once(&chosen, choose);
	const json_stage1_kernel_t *k = find(usable, usable_n, name);
	if (!k)
		return find(built, BUILT_N, name) ? -ENOTSUP : -EINVAL;
	atomic_store_explicit(&active, k, memory_order_release);
	return 0;
}
