/* bench/suite_ring.c: the `ring` suite: items per second through store/ring.h
 * between two threads, as the loop (producer) and the writer (consumer) use
 * it. The consumer sleeps on the doorbell when the ring is empty; the
 * producer yields when it is full. Items are checked, so a lost or doubled
 * item fails the run instead of inflating it. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "bench/harness.h"
#include "store/ring.h"

#define RING_BENCH_CAPACITY 1024u     /* slots: four times the writer's batch ring */
#define RING_BENCH_BATCH 64u          /* items per doorbell and per ring_pop_many */
/* Items per run. One-at-a-time hand-off wakes the consumer far more often,
 * so it moves fewer items to keep a run around a second. */
#define RING_BENCH_ITEMS_BATCHED 20000000u
#define RING_BENCH_ITEMS_SINGLE 2000000u
#define RING_BENCH_ITEMS_QUICK 100000u
#define RING_BENCH_WAIT_MS 100        /* the consumer's longest sleep between checks */

typedef struct {
	ring_t ring;
	doorbell_t bell;
	uint64_t items;
	bool batched;
	uint64_t got, sum; /* consumer side */
} ring_case_t;

static void *consumer(void *arg)
{
	ring_case_t *c = arg;
	void *buf[RING_BENCH_BATCH];
	while (c->got < c->items) {
		/* The sequence is read before looking, so a push after the look
		 * moves it and the wait returns at once (no lost wake-up). */
		uint32_t seen = doorbell_seq(&c->bell);
		uint32_t n;
		if (c->batched) {
			n = ring_pop_many(&c->ring, buf, RING_BENCH_BATCH);
		} else {
			buf[0] = ring_pop(&c->ring);
			n = buf[0] != NULL;
		}
		if (n == 0) {
			doorbell_wait(&c->bell, seen, RING_BENCH_WAIT_MS);
			continue;
		}
		for (uint32_t i = 0; i < n; i++)
			c->sum += (uintptr_t)buf[i];
		c->got += n;
	}
	return NULL;
}

/* Batched: runs of RING_BENCH_BATCH items, each published with one
 * ring_push_many and one doorbell ring. */
static void produce_batched(ring_case_t *c)
{
	void *run[RING_BENCH_BATCH];
	for (uint64_t i = 1; i <= c->items;) {
		uint32_t n = c->items - i + 1 < RING_BENCH_BATCH ? (uint32_t)(c->items - i + 1)
		                                                 : RING_BENCH_BATCH;
		for (uint32_t k = 0; k < n; k++)
			run[k] = (void *)(uintptr_t)(i + k);
		for (uint32_t done = 0; done < n;) {
			uint32_t got = ring_push_many(&c->ring, run + done, n - done);
			if (got == 0)
				sched_yield(); /* full: the consumer was rung after the last run */
			done += got;
		}
		doorbell_ring(&c->bell);
		i += n;
	}
}

static void produce(ring_case_t *c)
{
	if (c->batched) {
		produce_batched(c);
		return;
	}
	for (uint64_t i = 1; i <= c->items; i++) {
		while (!ring_push(&c->ring, (void *)(uintptr_t)i)) {
			doorbell_ring(&c->bell); /* whatever is queued is the consumer's now */
			sched_yield();
		}
		doorbell_ring(&c->bell);
	}
}

static int ring_run(void *arg, double *value)
{
	ring_case_t *c = arg;
	pthread_t t;
	int rc = ring_init(&c->ring, RING_BENCH_CAPACITY);
	if (rc != 0) {
		fprintf(stderr, "ringfill bench: ring_init: %s\n", strerror(-rc));
		return rc;
	}
	doorbell_init(&c->bell);
	c->got = c->sum = 0;
	if ((rc = pthread_create(&t, NULL, consumer, c)) != 0) {
		ring_destroy(&c->ring);
		fprintf(stderr, "ringfill bench: pthread_create: %s\n", strerror(rc));
		return -rc;
	}
	double t0 = bench_now_s();
	produce(c);
	pthread_join(t, NULL);
	double dt = bench_now_s() - t0;
	ring_destroy(&c->ring);
	uint64_t want = c->items * (c->items + 1) / 2;
	if (c->got != c->items || c->sum != want) {
		fprintf(stderr, "ringfill bench: ring moved %llu items (sum %llu), expected %llu\n",
		        (unsigned long long)c->got, (unsigned long long)c->sum,
		        (unsigned long long)c->items);
		return -EIO;
	}
	*value = (double)c->items / dt;
	return 0;
}

int bench_suite_ring(const bench_opts_t *opts)
{
	static ring_case_t c; /* the ring's indices want their cache-line alignment */
	const char *names[] = {"single", "batched"};
	for (int i = 0; i < 2; i++) {
		if (!bench_case_selected(opts, names[i]))
			continue;
		memset(&c, 0, sizeof(c));
		c.batched = i == 1;
		c.items = opts->quick     ? RING_BENCH_ITEMS_QUICK
		          : c.batched     ? RING_BENCH_ITEMS_BATCHED
		                          : RING_BENCH_ITEMS_SINGLE;
		if (!bench_measure(opts, "ring", names[i], "items_per_s", "items/s", ring_run, &c))
			return -EIO;
	}
	return 0;
}
